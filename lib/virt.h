/* The libvirt layer: connection with a captured error, reading what running domains hold,
 * building device XML (libxml2 tree API only), attaching and detaching by alias. */
#pragma once

#include "device.h"
#include "error.h"
#include "mode.h"

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <sys/types.h>

DEFINE_TRIVIAL_CLEANUP_FUNC(virConnectPtr, virConnectClose)
DEFINE_TRIVIAL_CLEANUP_FUNC(virDomainPtr, virDomainFree)

/* Loads libvirt.so.0 (virt-load.c) unless done already. When it cannot, err says why and what to
 * install, kind USBVM_E_LIBVIRT, and every libvirt function fails as libvirt would. */
int usbvm_virt_load(UsbvmError *err);
/* The same; when libvirt cannot be loaded, why is the dynamic loader's reason alone. */
bool usbvm_virt_loaded(const char **why);

/* Installs an error handler so libvirt never prints on its own (once per process). */
void usbvm_virt_init(void);

/* Opens uri (NULL: libvirt's default). On failure err says which URI and what to do
 * ("is libvirtd running? try 'systemctl start libvirtd'"), kind USBVM_E_LIBVIRT. */
int usbvm_virt_open(const char *uri, virConnectPtr *ret, UsbvmError *err);

/* Fills err from libvirt's last error, prefixed by a sentence start; returns -EIO. Save the
 * error before any vir*Free, which resets it. */
int usbvm_virt_error(UsbvmError *err, UsbvmErrKind kind, const char *fmt, ...) _printf_(3, 4);
/* The code (virErrorNumber) of libvirt's last error, 0 when none. */
int usbvm_virt_last_code(void);

/* Looks a domain up by name or UUID; USBVM_E_NOTFOUND when neither matches. */
int usbvm_virt_lookup(virConnectPtr conn, const char *name, virDomainPtr *ret, UsbvmError *err);

/* A USB-related device found in a domain's live XML: a USB hostdev, or a block disk. */
typedef enum UsbvmDomDevKind {
    USBVM_DOMDEV_HOSTDEV, /* <hostdev type='usb'> */
    USBVM_DOMDEV_DISK,    /* <disk type='block'> */
} UsbvmDomDevKind;

typedef struct UsbvmDomDev {
    char *domain; /* domain name */
    char *alias;  /* <alias name=...>, NULL when libvirt gave none */
    bool owned;   /* alias starts with "ua-usbvm-" */
    UsbvmDomDevKind kind;
    UsbvmMode mode; /* for owned devices: usb, virtio, scsi or usb-disk */
    /* hostdev */
    uint16_t vendor_id, product_id; /* 0 when absent */
    unsigned bus, device;           /* 0 when absent */
    /* disk */
    char *source;     /* <source dev=...> */
    char *target;     /* "vdb", "sda" */
    char *target_bus; /* "virtio", "scsi", "usb" */
    char *serial;     /* <serial> */
    bool readonly;
} UsbvmDomDev;

typedef struct UsbvmDomDevList {
    UsbvmDomDev *items;
    size_t n;
} UsbvmDomDevList;
void usbvm_domdev_clear(UsbvmDomDev *dd);
void usbvm_domdev_copy(UsbvmDomDev *dst, const UsbvmDomDev *src);
UsbvmDomDev *usbvm_domdev_list_add(UsbvmDomDevList *l); /* a zeroed new item */
void usbvm_domdev_list_clear(UsbvmDomDevList *l);       /* the items; l stays */
void usbvm_domdev_list_free(UsbvmDomDevList *l);
DEFINE_TRIVIAL_CLEANUP_FUNC(UsbvmDomDevList *, usbvm_domdev_list_free)

struct UsbvmSnapshot;
/* The USB devices of every running domain but except (NULL: none left out), one XML read
 * each (lib/snapshot.h). */
int usbvm_virt_read_snapshot(virConnectPtr conn, const char *except, struct UsbvmSnapshot *ret,
                             UsbvmError *err);
/* One domain's: *ret_running false (and nothing added) when it does not run (any more). */
int usbvm_virt_read_domain(virDomainPtr dom, UsbvmDomDevList *ret, bool *ret_running,
                           UsbvmError *err);

/* Every USB hostdev and block disk in the live XML of every running domain (owned or not). */
int usbvm_virt_list_domdevs(virConnectPtr conn, UsbvmDomDevList **ret, UsbvmError *err);
/* usbvm_virt_list_domdevs in a child process (virt-ask.c), while the caller does other work:
 * start forks it, finish waits for its answer (or its error, as the child saw it), cancel kills
 * it. Without a pipe or a child, finish asks in this process. uri must live until finish. */
typedef struct UsbvmVirtAsk {
    pid_t pid;
    int fd;
    const char *uri;
} UsbvmVirtAsk;
void usbvm_virt_ask_start(const char *uri, UsbvmVirtAsk *ask);
int usbvm_virt_ask_finish(UsbvmVirtAsk *ask, UsbvmDomDevList **ret, UsbvmError *err);
void usbvm_virt_ask_cancel(UsbvmVirtAsk *ask);
/* The same for one domain's live XML text (for tests and for reconcile on one domain). */
int usbvm_domdevs_from_xml(const char *domain, const char *xml, UsbvmDomDevList *list,
                           UsbvmError *err);

/* Does this domain device refer to this host device? Owned: by alias. Not owned: hostdev by
 * vendor/product (+bus/device when given), disk by source path = one of the device's block
 * nodes or by-id links (resolved with realpath). */
bool usbvm_domdev_matches(const UsbvmDomDev *dd, const UsbvmDevice *d);

/* Device XML (libxml2 tree API), for attach and --print-xml. For disk modes the target is
 * chosen from the domain's live XML (next free vdX / sdX). Returns a new string. */
int usbvm_virt_device_xml(const UsbvmDevice *d, const UsbvmAttachSpec *spec, const char *domain_xml,
                          char **ret, UsbvmError *err);

typedef enum UsbvmState {
    USBVM_STATE_ATTACHED,
    USBVM_STATE_DETACHED,
    USBVM_STATE_PENDING,
} UsbvmState;
const char *usbvm_state_to_string(UsbvmState s);

typedef struct UsbvmResult {
    bool changed;
    UsbvmState state;
    char alias[128];
    char notes[512]; /* e.g. "added a virtio-scsi controller" */
    /* detach: not asked, because a usbvm process asked this many ms before (0: asked). It is
     * safe to ask again USBVM_HOSTLOCK_DETACH_SETTLE_MS after that request. */
    unsigned awaited_ms;
} UsbvmResult;

enum {
    USBVM_ATTACH_LIVE = 1 << 0,
    USBVM_ATTACH_CONFIG = 1 << 1,
    USBVM_ATTACH_CHECK = 1 << 2, /* predict, do not act */
    USBVM_ATTACH_FORCE = 1 << 3, /* detach: touch a device without usbvm's alias */
};

/* Attach with every safety check (invariants 1, 2, 5). Idempotent: already attached to this
 * domain in this mode -> changed=false. */
int usbvm_virt_attach(virConnectPtr conn, virDomainPtr dom, const UsbvmDevice *d,
                      const UsbvmAttachSpec *spec, unsigned flags, UsbvmResult *ret,
                      UsbvmError *err);

/* The target domain as a caller's earlier attaches left it (see virt-attach.c): a caller that
 * attaches to one domain one device after the other keeps one, and forgets it when it learns
 * that someone else changed the domain. */
typedef struct UsbvmDomView UsbvmDomView;
UsbvmDomView *usbvm_domview_new(void);
void usbvm_domview_forget(UsbvmDomView *v); /* the next attach reads the domain's XML */
/* libvirt confirmed that the device with this alias left the domain: out of the view, with
 * its target name (its SCSI unit stays taken: a unit costs nothing, the next one is free). */
void usbvm_domview_drop(UsbvmDomView *v, const char *alias);
void usbvm_domview_free(UsbvmDomView *v);

/* What a caller that keeps its own picture of the domains (watch) gives and gets back. The
 * final check runs under the device's slot of the host lock (lib/hostlock.h). */
typedef struct UsbvmAttachCtx {
    const UsbvmDomDevList *known; /* devices of every running domain, NULL: read them */
    uint64_t known_generation;    /* the host lock's generation that 'known' is current at;
                                   * later bumps of this process do not make it stale */
    bool recheck_host_use;        /* read mountinfo/swaps again for the final check */
    UsbvmHostUseCache *host_use;  /* NULL, or where that read is kept (usbvm_host_use_cache_new) */
    bool lock_nowait;             /* a held slot gives an error instead of waiting */
    const char *lock_path;        /* NULL: the default */
    UsbvmDomView *view;           /* NULL, or the target as the last attach left it (in/out) */
    /* out */
    bool reread;       /* 'known' was stale: the other domains were read again */
    bool from_view;    /* the attach started from the view and did not read the domain */
    UsbvmDomDev added; /* what the domain now holds (when changed) */
    /* When the calls that change the domain began, and when libvirt answered the last one made
     * (the device's, or a refused controller's) (usbvm_now_usec(); 0: no call was made). */
    uint64_t called_usec, answered_usec;
} UsbvmAttachCtx;
int usbvm_virt_attach_ctx(virConnectPtr conn, virDomainPtr dom, const UsbvmDevice *d,
                          const UsbvmAttachSpec *spec, unsigned flags, UsbvmAttachCtx *ctx,
                          UsbvmResult *ret, UsbvmError *err);

/* Detach by alias (invariant 3, 4): waits up to timeout_ms for DEVICE_REMOVED or the alias to
 * disappear from the live XML; else state PENDING with err kind USBVM_E_PENDING. */
int usbvm_virt_detach_alias(virConnectPtr conn, virDomainPtr dom, const char *alias, unsigned flags,
                            int timeout_ms, UsbvmResult *ret, UsbvmError *err);
