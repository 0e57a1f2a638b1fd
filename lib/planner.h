/* The planner: what the daemon should do now, as a pure function of what it knows. No I/O, no
 * libvirt, no logging: (devices x rules x snapshot x operations in flight) -> actions. The
 * executor does the actions; its answers and libvirt's events change the inputs, and the next
 * plan follows. The invariants hold on every plan:
 *   - a device is never attached while usbvm knows of it in another domain, nor while another
 *     operation on it is in flight (never two domains);
 *   - a device whose block devices the host mounts, swaps on or holds is never attached;
 *   - only devices with usbvm's alias are ever detached. */
#pragma once

#include "device.h"
#include "rules.h"
#include "snapshot.h"

typedef struct UsbvmPlanDevice {
    const UsbvmDevice *model; /* the last read; for a device that is gone, the last one seen */
    bool gone;                /* unplugged: whatever of it is in a domain must go */
    bool keep;                /* present at start with --present keep: hands off until replugged */
    bool bound;               /* its driver is bound: ready for usb passthrough */
    bool ambiguous;           /* another present device has the same identity */
    bool held_back;           /* the last attempt was refused or failed; retried at its next
                               * event, a reload, a domain start or a reconnect, not in a loop */
} UsbvmPlanDevice;

typedef enum UsbvmOpKind {
    USBVM_OP_ATTACH,
    USBVM_OP_DETACH,
} UsbvmOpKind;

/* An operation the executor is doing, or a detach libvirt has not confirmed yet. */
typedef struct UsbvmPlanOp {
    UsbvmOpKind kind;
    const char *domain;
    const char *alias; /* device alias (attach) or the domain device's alias (detach) */
} UsbvmPlanOp;

typedef struct UsbvmPlanInput {
    const UsbvmPlanDevice *devices;
    size_t n_devices;
    const UsbvmRuleset *rules; /* NULL: no rules */
    const UsbvmSnapshot *snapshot;
    const UsbvmPlanOp *ops;
    size_t n_ops;
    bool connected; /* false: the snapshot is stale; nothing is attached or detached */
    bool stopping;  /* --detach-on-exit: everything usbvm attached for known devices goes */
} UsbvmPlanInput;

typedef enum UsbvmActionKind {
    USBVM_ACTION_ATTACH, /* device -> domain as spec */
    USBVM_ACTION_DETACH, /* alias out of domain; device may be NONE (an orphan) */
    USBVM_ACTION_WAIT,   /* nothing to do yet; reason says why (logged once per reason) */
    USBVM_ACTION_REFUSE, /* the policy wants it, a safety check says no */
} UsbvmActionKind;

typedef enum UsbvmWaitReason {
    USBVM_WAIT_NONE,
    USBVM_WAIT_DOMAIN,    /* the rule's domain does not run */
    USBVM_WAIT_LIBVIRT,   /* no connection */
    USBVM_WAIT_BLOCK,     /* disk mode, no block device yet */
    USBVM_WAIT_BIND,      /* usb mode, driver not bound yet */
    USBVM_WAIT_AMBIGUOUS, /* two present devices share the identity */
    USBVM_WAIT_HOST_USE,  /* REFUSE: mounted, swap or held on the host */
    USBVM_WAIT_IN_FLIGHT, /* an operation on it is in flight */
    USBVM_WAIT_LEAVING,   /* a detach elsewhere has not been confirmed yet */
} UsbvmWaitReason;

#define USBVM_PLAN_NO_DEVICE ((size_t)-1)

typedef struct UsbvmAction {
    UsbvmActionKind kind;
    size_t device;               /* index into the input's devices, or USBVM_PLAN_NO_DEVICE */
    const char *domain;          /* borrowed from the rules or the snapshot */
    const char *alias;           /* detach: the domain device's alias; attach: the device's */
    const UsbvmAttachSpec *spec; /* attach */
    UsbvmWaitReason wait;
    const char *why;         /* detach: static reason ("unplugged", "no rule matches it", ...) */
    const UsbvmDomDev *held; /* detach: the snapshot's entry of domain and alias, borrowed */
} UsbvmAction;

typedef struct UsbvmPlan {
    UsbvmAction *actions;
    size_t n;
} UsbvmPlan;
void usbvm_plan_clear(UsbvmPlan *p);

void usbvm_plan(const UsbvmPlanInput *in, UsbvmPlan *ret);

/* Does a domain device's alias belong to the device with this alias? ("-N" suffixes are a
 * device's further LUNs.) */
bool usbvm_alias_belongs(const char *domdev_alias, const char *device_alias);
/* True when the device's block devices are mounted, swapped on or held by the host, as the
 * model last saw them. */
bool usbvm_plan_host_uses(const UsbvmDevice *d);
