/* The daemon's records: one call writes one record, whose text line and JSON fields are made
 * from the same facts, so the two cannot drift. Device strings are escaped in the text and
 * made valid UTF-8 in the JSON. */
#include "watch-state.h"

#include <string.h>

char *usbvm_watch_label(const UsbvmDevice *d)
{
    _cleanup_free_ char *name = usbvm_device_display_name(d);
    _cleanup_free_ char *serial = d->serial ? usbvm_escape(d->serial) : NULL;
    _cleanup_free_ char *port = usbvm_escape(d->port);
    return xasprintf("%s%s%s %04x:%04x%s%s", port, name && *name ? " " : "", strempty(name),
                     d->vendor_id, d->product_id, serial ? " sn=" : "", strempty(serial));
}

static void add_str(json_object *o, const char *key, const char *value)
{
    if (!value)
        return;
    _cleanup_free_ char *clean = usbvm_utf8_sanitize(value);
    json_object_object_add(o, key, json_object_new_string(clean));
}

static json_object *steps_fields(const WatchSteps *s)
{
    const struct {
        const char *key;
        uint64_t usec;
    } steps[] = { { "event", s->event },
                  { "planned", s->planned },
                  { "started", s->started },
                  { "called", s->called },
                  { "answered", s->answered } };
    json_object *o = json_object_new_object();
    for (size_t i = 0; i < ELEMENTSOF(steps); i++)
        if (steps[i].usec)
            json_object_object_add(o, steps[i].key, json_object_new_int64((int64_t)steps[i].usec));
    return o;
}

static json_object *record_fields(const WatchRecord *r)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "event", json_object_new_string(r->event));
    json_object_object_add(o, "mono_usec", json_object_new_int64((int64_t)usbvm_now_usec()));
    const UsbvmDevice *d = r->device;
    if (d) {
        char id[16];
        snprintf(id, sizeof(id), "%04x:%04x", d->vendor_id, d->product_id);
        add_str(o, "device", d->port);
        json_object_object_add(o, "id", json_object_new_string(id));
        add_str(o, "name", d->product);
        add_str(o, "serial", d->serial);
    }
    add_str(o, "alias", r->alias ? r->alias : d ? d->alias : NULL);
    add_str(o, "domain", r->domain);
    add_str(o, "mode", r->mode);
    add_str(o, "result", r->result);
    add_str(o, "msg", r->msg);
    add_str(o, "error", r->error);
    if (r->has_ms)
        json_object_object_add(o, "ms", json_object_new_int64(r->ms));
    add_str(o, "notes", r->notes);
    if (r->steps)
        json_object_object_add(o, "steps_usec", steps_fields(r->steps));
    return o;
}

/* "attach 1-2 SanDisk ... -> win10 as usb: ok in 12 ms; notes",
 * "detach 1-2 ... <- win10 (unplugged): requested", "wait 1-2 ...: text". */
static char *record_line(const WatchRecord *r)
{
    UsbvmBuf b = { 0 };
    usbvm_buf_puts(&b, r->event);
    _cleanup_free_ char *label = r->device  ? usbvm_watch_label(r->device)
                                 : r->alias ? usbvm_escape(r->alias)
                                            : NULL;
    if (label)
        usbvm_buf_printf(&b, " %s", label);
    _cleanup_free_ char *dom = r->domain ? usbvm_escape(r->domain) : NULL;
    bool detach = streq(r->event, "detach");
    if (dom && !streq(r->event, "wait"))
        usbvm_buf_printf(&b, " %s %s", detach ? "<-" : "->", dom);
    if (r->mode)
        usbvm_buf_printf(&b, " as %s", r->mode);
    _cleanup_free_ char *msg = r->msg ? usbvm_escape(r->msg) : NULL;
    if (msg && detach)
        usbvm_buf_printf(&b, " (%s)", msg);
    if (r->result || (msg && !detach))
        usbvm_buf_puts(&b, ":");
    if (r->result)
        usbvm_buf_printf(&b, " %s", r->result);
    if (r->has_ms)
        usbvm_buf_printf(&b, " in %lld ms", (long long)r->ms);
    if (msg && !detach)
        usbvm_buf_printf(&b, "%s %s", r->result ? ":" : "", msg);
    _cleanup_free_ char *error = r->error ? usbvm_escape(r->error) : NULL;
    if (error)
        usbvm_buf_printf(&b, ": %s", error);
    _cleanup_free_ char *notes = r->notes ? usbvm_escape(r->notes) : NULL;
    if (notes)
        usbvm_buf_printf(&b, "; %s", notes);
    return usbvm_buf_steal(&b);
}

void usbvm_watch_record(UsbvmLogLevel level, const WatchRecord *r)
{
    if (!usbvm_log_enabled(level))
        return;
    _cleanup_free_ char *line = record_line(r);
    usbvm_logf(level, record_fields(r), "%s", line);
}
