/* The daemon's picture of the hypervisor: for every running domain, the USB hostdevs and block
 * disks in its live XML (usbvm's own, by their ua-usbvm- alias, and anyone else's). Read in
 * full at (re)connect and reload, then kept current from libvirt's events and from the
 * answers to usbvm's own calls. Plain data: no libvirt, no I/O. */
#pragma once

#include "virt.h"

typedef struct UsbvmSnapDomain {
    char *name;
    UsbvmDomDevList devs;
} UsbvmSnapDomain;

typedef struct UsbvmSnapshot {
    UsbvmSnapDomain *domains; /* running domains only */
    size_t n;
} UsbvmSnapshot;

void usbvm_snapshot_clear(UsbvmSnapshot *s);
/* The domain, NULL when it does not run. */
UsbvmSnapDomain *usbvm_snapshot_domain(const UsbvmSnapshot *s, const char *name);
/* Replaces (or adds) a running domain with these devices; devs is taken over (zeroed). */
void usbvm_snapshot_set_domain(UsbvmSnapshot *s, const char *name, UsbvmDomDevList *devs);
void usbvm_snapshot_drop_domain(UsbvmSnapshot *s, const char *name);
/* Adds a copy of dd to its (running) domain; ignored when the domain is not in the picture. */
void usbvm_snapshot_add(UsbvmSnapshot *s, const UsbvmDomDev *dd);
/* Whether the domain holds a device with this alias. */
bool usbvm_snapshot_has(const UsbvmSnapshot *s, const char *domain, const char *alias);
/* Removes the device with this alias from the domain; false when it was not there. */
bool usbvm_snapshot_remove(UsbvmSnapshot *s, const char *domain, const char *alias);
/* Moves src into s (s is cleared first); src is left empty. */
void usbvm_snapshot_take(UsbvmSnapshot *s, UsbvmSnapshot *src);
/* Every device of every domain, as one list (copies), for code that takes a UsbvmDomDevList. */
UsbvmDomDevList *usbvm_snapshot_flatten(const UsbvmSnapshot *s);
