/* usbvm doctor: why a device does not reach a domain. Each check reads the host (kernel log,
 * sysfs and udev's records, /proc, libvirt) and returns a result: whether it is fine, one line of
 * what it found, and for a failure the fix (a command or a config line). The library never
 * prints; strings may hold device-supplied bytes and are escaped by whoever prints them. */
#pragma once

#include "device.h"
#include "error.h"
#include "mode.h"

#include <libvirt/libvirt.h>

typedef struct UsbvmCheck {
    char *name;  /* "kernel-log", "authorized", ... (the JSON key "name") */
    bool ok;     /* false: this check found a reason the device does not reach the domain */
    char *found; /* one line */
    char *fix;   /* what to do, NULL when ok */
    char **log;  /* quoted kernel/audit log lines (raw), NULL-terminated, or NULL */
} UsbvmCheck;

/* ---- the list of results (doctor-checks.c) ---- */
typedef struct UsbvmChecks {
    UsbvmCheck *items;
    size_t n;
} UsbvmChecks;
void usbvm_checks_clear(UsbvmChecks *c);
size_t usbvm_checks_failed(const UsbvmChecks *c);
/* Appends a check; found and fix are printf formats (fix NULL for a passing check). Returns
 * the new check, so that log lines can be added. */
UsbvmCheck *usbvm_checks_add(UsbvmChecks *c, const char *name, bool ok, const char *fix,
                             const char *found_fmt, ...) _printf_(5, 6);

/* Where the checks read the host. Defaults: usbvm_doctor_paths_default. Tests point them at
 * files of their own. */
typedef struct UsbvmDoctorPaths {
    UsbvmHostPaths host;   /* mountinfo, swaps */
    const char *kmsg;      /* "/dev/kmsg"; a regular file in /dev/kmsg's record format works too */
    const char *audit_log; /* "/var/log/audit/audit.log" (SELinux/AppArmor denials) */
    const char *proc;      /* "/proc": running processes (usbguard-daemon, udisksd, watch) */
    const char *const *udisksd; /* udisksd binaries whose presence means an auto-mounter */
} UsbvmDoctorPaths;
extern const UsbvmDoctorPaths usbvm_doctor_paths_default;

/* What the admin asked about. */
typedef struct UsbvmDoctorQuery {
    const UsbvmDevice *device; /* NULL: no device given, or it is not on the bus */
    const char *port;          /* port path for the kernel log: device->port or the given one */
    const char *domain;        /* NULL: no domain given */
    const char *uri;           /* libvirt URI, NULL: libvirt's default */
    const char *rules_path;    /* file or directory */
} UsbvmDoctorQuery;

/* ---- the kernel log (doctor-kmsg.c) ---- */

/* The fix for a UAS disk that misbehaves: drive it with usb-storage (quirk 'u'). New string. */
char *usbvm_doctor_uas_fix(const UsbvmDevice *d);

typedef struct UsbvmKmsgRecord {
    unsigned level; /* syslog level 0..7 */
    uint64_t seq;
    uint64_t usec;   /* since boot */
    const char *msg; /* first line of the message, not NUL-terminated */
    size_t msg_len;
} UsbvmKmsgRecord;

/* Parses one /dev/kmsg record "prio,seq,usec,flags[,...];message\n[ KEY=value\n...]".
 * Returns -EINVAL when it is not one. */
int usbvm_kmsg_parse(const char *rec, size_t len, UsbvmKmsgRecord *ret);

typedef enum UsbvmKmsgKind {
    USBVM_KMSG_NONE = 0,    /* not about this port */
    USBVM_KMSG_INFO,        /* about this port, not a problem */
    USBVM_KMSG_OVERCURRENT, /* power */
    USBVM_KMSG_PROTOCOL,    /* descriptor read, address, enumeration errors: cable or port */
    USBVM_KMSG_RESET,
    USBVM_KMSG_DISCONNECT,
    USBVM_KMSG_HUB_OVERCURRENT, /* a hub in front of the port reports over-current */
    USBVM_KMSG_UAS,             /* uas error handling for the device */
} UsbvmKmsgKind;

/* Classifies one kernel message for a port path ("1-2.4"): messages of the device, its
 * interfaces and its port ("usb usb1-port2: ...", "usb 1-2-port4: ..."), and over-current of
 * the hubs in front of it. */
UsbvmKmsgKind usbvm_kmsg_classify(const char *msg, size_t len, const char *port);

/* Calls fn for every record of the kernel log at path (non-blocking read of /dev/kmsg's ring
 * buffer from the first record to the last, or every line of a regular file). */
typedef void (*UsbvmKmsgFn)(const UsbvmKmsgRecord *r, void *userdata);
int usbvm_kmsg_read(const char *path, UsbvmKmsgFn fn, void *userdata, UsbvmError *err);

/* The kernel-log check: problems of the port named as power, cable/port or hub, with the
 * lines quoted. */
void usbvm_doctor_kernel(const UsbvmDoctorPaths *paths, const UsbvmDoctorQuery *q,
                         UsbvmChecks *out);

/* ---- the device on the host (doctor-host.c) ---- */

/* Drivers (usb-storage/uas, a known-bad UAS bridge), authorisation (authorized=0, USBGuard),
 * host use (mounted, swap, held) and the udisks2 auto-mounter. */
void usbvm_doctor_host(const UsbvmDoctorPaths *paths, const UsbvmDoctorQuery *q, UsbvmChecks *out);
/* Whether a process whose argv[0] basename is comm (and whose argv holds arg, when not NULL)
 * runs; proc is the /proc directory. */
bool usbvm_proc_running(const char *proc, const char *comm, const char *arg);
/* Calls fn with the argv of every process under proc until it returns true. */
typedef bool (*UsbvmProcFn)(char *const *argv, void *userdata);
void usbvm_proc_each(const char *proc, UsbvmProcFn fn, void *userdata);

/* ---- USBGuard (doctor-usbguard.c) ---- */

/* Runs argv[0] (found in PATH, never through a shell) with stdin and stderr on /dev/null,
 * and returns what it printed on stdout. Killed after timeout_ms; a non-zero exit is an
 * error. */
int usbvm_spawn_capture(char *const argv[], int timeout_ms, char **ret_out, UsbvmError *err);
/* The first rule of 'usbguard list-rules' output ("N: allow|block|reject MATCH") that matches
 * d by usbvm's matcher, as "N: rule" (new string), with its target in *ret_target; NULL when
 * none does. hash, parent-hash, label and conditions are not compared. */
char *usbvm_usbguard_deciding_rule(const char *list_rules, const UsbvmDevice *d,
                                   const char **ret_target);

/* ---- libvirt and the domain (doctor-virt.c) ---- */

/* What the hardware check needs from a domain's XML. */
typedef struct UsbvmDomHw {
    char *machine;            /* "pc-q35-8.2", "pc-i440fx-8.2" */
    bool q35;                 /* machine is q35 (PCIe) */
    bool acpi;                /* <features><acpi/> */
    bool usb_any;             /* a USB controller whose model is not 'none' */
    bool usb3;                /* a qemu-xhci/nec-xhci controller */
    char *usb_models;         /* "ich9-ehci1, ich9-uhci1", NULL when none */
    bool virtio_scsi;         /* a virtio-scsi controller */
    unsigned root_ports;      /* pcie-root-port controllers */
    unsigned free_root_ports; /* ... with nothing plugged into them */
} UsbvmDomHw;
int usbvm_domhw_from_xml(const char *xml, UsbvmDomHw *ret, UsbvmError *err);
void usbvm_domhw_clear(UsbvmDomHw *h);
/* The hardware checks of a domain for a device (NULL: any) and mode (-1: not known). */
void usbvm_doctor_domain_hw(const UsbvmDomHw *hw, const UsbvmDevice *d, int mode, UsbvmChecks *out);

/* libvirt reachable (the cause named when not), the domain exists and runs, its hardware,
 * and whether the device is attached to another domain. Returns the connection (or NULL) in
 * *ret_conn for the caller to close. */
void usbvm_doctor_virt(const UsbvmDoctorQuery *q, int mode, virConnectPtr *ret_conn,
                       UsbvmChecks *out);

/* ---- policy (doctor-policy.c) ---- */

/* The rules load; which rule matches the device; whether usbvm watch runs. Returns the mode of
 * the rule that attaches the device to the domain, or -1. */
int usbvm_doctor_policy(const UsbvmDoctorPaths *paths, const UsbvmDoctorQuery *q, UsbvmChecks *out);

/* ---- confinement (doctor-host.c) ---- */

/* Device node owner and mode; AppArmor/SELinux denials naming the device's nodes. */
void usbvm_doctor_confinement(const UsbvmDoctorPaths *paths, const UsbvmDoctorQuery *q,
                              UsbvmChecks *out);

/* Every check, in the order an admin would look. */
void usbvm_doctor_run(const UsbvmDoctorPaths *paths, const UsbvmDoctorQuery *q, UsbvmChecks *out);
