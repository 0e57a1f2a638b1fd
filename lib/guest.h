/* The guest's side of an attached device, through libvirt's guest agent APIs (never raw agent
 * JSON): where the guest has it mounted, and flushing those filesystems (freeze, then thaw)
 * before a detach. Every agent call is bounded (USBVM_GUEST_TIMEOUT_S): an agent that does not
 * answer makes the mounts unknown, it never stalls the caller. */
#pragma once

#include "error.h"
#include "virt.h"

#include <libvirt/libvirt.h>

#define USBVM_GUEST_TIMEOUT_S 5
/* A freeze syncs every dirty page of the filesystem: on a slow stick that takes a while. */
#define USBVM_GUEST_FLUSH_TIMEOUT_S 30

/* One filesystem the guest has mounted and the disks it lives on, as libvirt reports them. */
typedef struct UsbvmGuestFs {
    char *mountpoint;
    char *fstype;
    char **targets; /* libvirt's disk targets ("vdb", "sda"); NULL entries when unmapped */
    char **serials; /* the disks' serials as the guest's udev reports them (ID_SERIAL) */
    size_t n_disks;
} UsbvmGuestFs;

typedef struct UsbvmGuestInfo {
    bool known;   /* the agent answered */
    char *reason; /* !known: libvirt's reason, e.g. "QEMU guest agent is not connected" */
    UsbvmGuestFs *fs;
    size_t n_fs;
} UsbvmGuestInfo;
void usbvm_guest_info_clear(UsbvmGuestInfo *gi);

/* Asks the guest agent for its filesystems. Never fails: when the agent does not answer within
 * USBVM_GUEST_TIMEOUT_S, gi->known is false and gi->reason says why. */
void usbvm_guest_read(virDomainPtr dom, UsbvmGuestInfo *gi);
/* The same from virDomainGetGuestInfo's typed parameters (VIR_DOMAIN_GUEST_INFO_FILESYSTEM). */
void usbvm_guest_info_from_params(virTypedParameterPtr params, int n, UsbvmGuestInfo *gi);

/* The mount points (a new NULL-terminated array, NULL when none) of the filesystems on one
 * attached device: a disk by its target or serial, a USB hostdev by the stick's own serial. */
char **usbvm_guest_mounts_of(const UsbvmGuestInfo *gi, const char *target, const char *serial,
                             size_t *ret_n);
/* The device's target and serial to look for in the guest: a disk's from the domain, a
 * hostdev's serial from the host device (d may be NULL when it is gone). */
void usbvm_guest_key(const UsbvmDomDev *dd, const UsbvmDevice *d, const char **ret_target,
                     const char **ret_serial);

/* Freezes, then thaws, these guest filesystems, so their data has reached the disk. */
int usbvm_guest_flush(virDomainPtr dom, char **mounts, size_t n, UsbvmError *err);

enum {
    USBVM_GUEST_FORCE = 1 << 0, /* detach even while the guest has it mounted */
    USBVM_GUEST_FLUSH = 1 << 1, /* freeze and thaw its filesystems first */
};

/* The guest's side of a detach: with USBVM_GUEST_FLUSH flushes the device's filesystems; then
 * refuses (USBVM_E_REFUSED, -EBUSY) while the guest has it mounted, unless USBVM_GUEST_FORCE.
 * Returns how many of its filesystems the guest has mounted (0 too when unknown) to go ahead;
 * notes (may be NULL) gets what the caller should know: the mounts
 * being unknown, the flush, a forced detach of a mounted disk. */
int usbvm_guest_before_detach(virDomainPtr dom, const UsbvmDomDev *dd, const UsbvmDevice *d,
                              const char *label, unsigned flags, char *notes, size_t notes_size,
                              UsbvmError *err);
