/* Identity collisions: two present devices that report the same vendor, product and serial.
 * Their identity, and so their alias, is one, so an attachment of either looks like an
 * attachment of both: an unplug of the one, or a stale-address check made on it, would
 * detach the other. usbvm keeps the identity as the device reports it (an attachment made
 * while the device was alone must still be recognised when the clone leaves) and instead
 * marks both devices; nothing acts on a marked device by policy, and the CLI refuses to
 * attach or detach one by anything but its alias. */
#include "device.h"

#include <string.h>

static bool same_identity(const UsbvmDevice *a, const UsbvmDevice *b)
{
    /* The alias too: two identities whose 64-bit hashes meet are as indistinguishable. */
    return (a->identity && b->identity && streq(a->identity, b->identity)) ||
           (a->alias && b->alias && streq(a->alias, b->alias));
}

size_t usbvm_devices_mark_ambiguous(UsbvmDevice *const *devs, size_t n)
{
    size_t marked = 0;
    for (size_t i = 0; i < n; i++) {
        UsbvmDevice *d = devs[i];
        usbvm_strv_free(d->same_identity);
        d->same_identity = NULL;
        for (size_t j = 0; j < n; j++)
            if (j != i && same_identity(d, devs[j]))
                d->same_identity = usbvm_strv_push(d->same_identity, strempty(devs[j]->port));
        if (d->same_identity)
            marked++;
    }
    return marked;
}

char *usbvm_device_ambiguity(const UsbvmDevice *d)
{
    if (!usbvm_device_is_ambiguous(d))
        return NULL;
    _cleanup_free_ char *ident = usbvm_escape(d->identity);
    UsbvmBuf ports = { 0 };
    for (size_t i = 0; d->same_identity[i]; i++) {
        _cleanup_free_ char *p = usbvm_escape(d->same_identity[i]);
        usbvm_buf_printf(&ports, "%s%s", i ? ", " : "", p);
    }
    _cleanup_free_ char *others = usbvm_buf_steal(&ports);
    return xasprintf("its identity %s (vendor:product:serial) is also reported by %s, so their "
                     "attachments would share the alias %s and usbvm could not tell them "
                     "apart; usbvm does not act on either by policy until one is unplugged "
                     "(a clone, or a maker that gives every unit one serial)",
                     ident, others, d->alias);
}
