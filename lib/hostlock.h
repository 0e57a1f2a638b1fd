/* The host lock: one file under /run/usbvm that every usbvm process (CLI or daemon) locks from
 * its final check to libvirt's answer, so that no two of them attach one device to two domains.
 *
 * The file is a table of byte ranges, one per device identity (hashed from its alias), locked
 * with open-file-description locks: a call stuck on one device holds up no other device, and
 * threads of one process exclude each other too (each holder opens the file itself). Slot 0
 * holds a generation counter that every holder bumps after changing a domain, so a daemon can
 * tell whether its snapshot of the domains is still current without reading them again.
 *
 * A device's slot also remembers, in its 8 bytes, when a usbvm process last asked libvirt to
 * detach that identity (CLOCK_BOOTTIME, so it holds across processes and is gone with a reboot
 * along with /run). QEMU takes a USB or SCSI disk out at once but may announce it tens of
 * milliseconds later (seen: 50 ms), and libvirt lists it until it has handled that event; a
 * second detach in between finds no device in QEMU, and libvirt 9.0 then reads the disk it has
 * just freed (qemuDomainDetachDeviceLive: libvirtd crashed in virDomainAuditDisk, reproduced
 * with a watch killed and restarted right after its detach). So a detach asked recently is not
 * asked again; it is waited for. */
#pragma once

#include "error.h"

#include <stdint.h>

#define USBVM_HOSTLOCK_PATH "/run/usbvm/lock"

typedef struct UsbvmHostLock {
    int fd;
    uint64_t slot;
} UsbvmHostLock;

enum {
    USBVM_HOSTLOCK_WAIT = 1 << 0, /* wait for the slot, up to USBVM_HOSTLOCK_TIMEOUT_MS */
};
#define USBVM_HOSTLOCK_TIMEOUT_MS 30000

/* Locks the device's slot. Without USBVM_HOSTLOCK_WAIT a slot held by another holder gives
 * -EAGAIN (err says who to wait for). path NULL: USBVM_HOSTLOCK_PATH (or $USBVM_LOCK_PATH). */
int usbvm_hostlock_acquire(const char *path, const char *alias, unsigned flags, UsbvmHostLock *ret,
                           UsbvmError *err);
void usbvm_hostlock_release(UsbvmHostLock *l);

/* The generation counter, read (and for bump, incremented) under a short lock of slot 0. */
int usbvm_hostlock_generation(const UsbvmHostLock *l, uint64_t *ret);
int usbvm_hostlock_bump(const UsbvmHostLock *l, uint64_t *ret);
/* Whether another process bumped the counter after generation 'since': this process's own
 * bumps (any thread's) are told apart from other processes', so a daemon that knows its own
 * changes reads the domains again only for someone else's. */
int usbvm_hostlock_changed_since(const UsbvmHostLock *l, uint64_t since, bool *ret);

/* How long a detach asked of libvirt counts as under way for other askers. */
#define USBVM_HOSTLOCK_DETACH_SETTLE_MS 5000
/* Under the slot's lock: stamps the slot with "alias was asked to detach now", or clears it
 * (an attach of the identity makes the next detach a new one). */
int usbvm_hostlock_detach_mark(const UsbvmHostLock *l, const char *alias);
int usbvm_hostlock_detach_clear(const UsbvmHostLock *l);
/* Under the slot's lock: 1 and the milliseconds since, when a detach of alias was asked less
 * than USBVM_HOSTLOCK_DETACH_SETTLE_MS ago; 0 when none was (or another identity's). */
int usbvm_hostlock_detach_asked(const UsbvmHostLock *l, const char *alias, uint64_t *ret_ms);
