/* The guest's side of attached devices in the CLI's answers (status, show, detach): one JSON
 * object per attached device, from lib/guest.h, each domain's agent asked once. */
#pragma once

#include "cli.h"
#include "guest.h"

/* detach: what the guest check needs (dd NULL: not in a running domain, nothing to check). */
typedef struct UsbvmGuestCheck {
    const UsbvmDomDev *dd;
    const UsbvmDevice *d;
    unsigned flags; /* USBVM_GUEST_FORCE, USBVM_GUEST_FLUSH */
} UsbvmGuestCheck;

/* Appends the guest check's notes to a detach result's. */
void usbvm_cli_guest_notes(UsbvmResult *res, const char *notes);

/* Each domain's guest information, read on first use. */
typedef struct UsbvmCliGuests {
    char **domains;
    UsbvmGuestInfo *infos;
    size_t n;
} UsbvmCliGuests;
void usbvm_cli_guests_clear(UsbvmCliGuests *g);

/* {"domain", "agent": true|false, "mounts": [...]|null, "error": null|"..."} for one attached
 * device (d: the host device when present, for a hostdev's serial). */
json_object *usbvm_cli_guest_json(virConnectPtr conn, UsbvmCliGuests *g, const UsbvmDomDev *dd,
                                  const UsbvmDevice *d);
/* Text of that object, unescaped (the view escapes it): "mounted on /mnt/x", "not mounted",
 * or "unknown: <why>". A new string. */
char *usbvm_cli_guest_text(json_object *guest);
