/* The guest's mounts of attached devices, as the CLI reports them (schema in usbvm(1)). */
#include "guest-json.h"

#include <string.h>

void usbvm_cli_guest_notes(UsbvmResult *res, const char *notes)
{
    if (!notes || !*notes)
        return;
    size_t len = strlen(res->notes);
    snprintf(res->notes + len, sizeof(res->notes) - len, "%s%s", len ? "; " : "", notes);
}

void usbvm_cli_guests_clear(UsbvmCliGuests *g)
{
    for (size_t i = 0; i < g->n; i++) {
        free(g->domains[i]);
        usbvm_guest_info_clear(&g->infos[i]);
    }
    free(g->domains);
    free(g->infos);
    *g = (UsbvmCliGuests){ 0 };
}

static const UsbvmGuestInfo *guest_info(virConnectPtr conn, UsbvmCliGuests *g, const char *domain)
{
    for (size_t i = 0; i < g->n; i++)
        if (streq(g->domains[i], domain))
            return &g->infos[i];
    g->domains = xrealloc(g->domains, (g->n + 1) * sizeof(*g->domains));
    g->infos = xrealloc(g->infos, (g->n + 1) * sizeof(*g->infos));
    UsbvmGuestInfo *gi = &g->infos[g->n];
    g->domains[g->n++] = xstrdup(domain);
    *gi = (UsbvmGuestInfo){ 0 };
    virDomainPtr dom = conn ? virDomainLookupByName(conn, domain) : NULL;
    if (dom) {
        usbvm_guest_read(dom, gi);
        virDomainFree(dom);
    } else
        gi->reason = xstrdup("the domain is gone");
    return gi;
}

json_object *usbvm_cli_guest_json(virConnectPtr conn, UsbvmCliGuests *g, const UsbvmDomDev *dd,
                                  const UsbvmDevice *d)
{
    const UsbvmGuestInfo *gi = guest_info(conn, g, dd->domain);
    json_object *o = json_object_new_object();
    usbvm_json_add_str(o, "domain", dd->domain);
    json_object_object_add(o, "agent", json_object_new_boolean(gi->known));
    json_object *mounts = NULL;
    if (gi->known) {
        const char *target, *serial;
        usbvm_guest_key(dd, d, &target, &serial);
        _cleanup_strv_free_ char **v = usbvm_guest_mounts_of(gi, target, serial, NULL);
        mounts = json_object_new_array();
        for (size_t i = 0; v && v[i]; i++) {
            _cleanup_free_ char *clean = usbvm_utf8_sanitize(v[i]);
            json_object_array_add(mounts, json_object_new_string(clean));
        }
    }
    json_object_object_add(o, "mounts", mounts);
    usbvm_json_add_str(o, "error", gi->known ? NULL : gi->reason);
    return o;
}

char *usbvm_cli_guest_text(json_object *guest)
{
    json_object *mounts = NULL, *error = NULL;
    json_object_object_get_ex(guest, "mounts", &mounts);
    json_object_object_get_ex(guest, "error", &error);
    if (!mounts)
        return xasprintf("unknown: %s", strempty(json_object_get_string(error)));
    size_t n = json_object_array_length(mounts);
    if (n == 0)
        return xstrdup("not mounted");
    UsbvmBuf b = { 0 };
    usbvm_buf_puts(&b, "mounted on ");
    for (size_t i = 0; i < n; i++) {
        if (i)
            usbvm_buf_puts(&b, ", ");
        usbvm_buf_puts(&b, json_object_get_string(json_object_array_get_idx(mounts, i)));
    }
    return usbvm_buf_steal(&b);
}
