/* The formatter: one normalised text for every rule, which the parser reads back to the same
 * rule (the round-trip tests hold it to that). Also rule equality and the rules that
 * "usbvm rules generate" proposes. */
#include "rules-internal.h"

#include <errno.h>
#include <string.h>

static void format_value(UsbvmBuf *b, UsbvmAttrKind kind, const UsbvmAttrValue *v)
{
    if (kind == USBVM_ATTR_ID) {
        if (v->id.any_vid)
            usbvm_buf_puts(b, "*:*");
        else if (v->id.any_pid)
            usbvm_buf_printf(b, "%04x:*", v->id.vid);
        else
            usbvm_buf_printf(b, "%04x:%04x", v->id.vid, v->id.pid);
    } else if (kind == USBVM_ATTR_WITH_INTERFACE) {
        usbvm_buf_printf(b, "%02x:", v->iface.cls);
        if (v->iface.any_subclass)
            usbvm_buf_puts(b, "*:");
        else
            usbvm_buf_printf(b, "%02x:", v->iface.subclass);
        if (v->iface.any_protocol)
            usbvm_buf_puts(b, "*");
        else
            usbvm_buf_printf(b, "%02x", v->iface.protocol);
    } else
        usbvm_rules_format_string(b, v->str);
}

void usbvm_rules_format_attr(UsbvmBuf *b, const UsbvmAttr *a)
{
    usbvm_buf_puts(b, usbvm_attr_name(a->kind));
    if (a->kind == USBVM_ATTR_SIZE) {
        for (size_t i = 0; i < a->n_size; i++) {
            usbvm_buf_printf(b, " %s ", usbvm_cmpop_name(a->size[i].op));
            usbvm_rules_format_size(b, a->size[i].bytes);
        }
        return;
    }
    bool default_op = a->op == usbvm_attr_default_op(a->kind);
    bool set = a->n_values != 1 || !default_op;
    usbvm_buf_puts(b, " ");
    if (!default_op)
        usbvm_buf_printf(b, "%s ", usbvm_setop_name(a->op));
    if (set)
        usbvm_buf_puts(b, "{ ");
    for (size_t i = 0; i < a->n_values; i++) {
        format_value(b, a->kind, &a->values[i]);
        usbvm_buf_puts(b, " ");
    }
    if (set)
        usbvm_buf_puts(b, "}");
    else
        b->data[--b->len] = '\0'; /* the trailing blank */
}

static bool domain_is_bare(const char *d)
{
    static const char *const keywords[] = { "as", "readonly", "cache", "io", "persistent", NULL };
    if (!*d)
        return false;
    for (const unsigned char *c = (const unsigned char *)d; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
              strchr("_.+-@:", *c)))
            return false;
    for (size_t i = 0; keywords[i]; i++)
        if (streq(d, keywords[i]))
            return false;
    return true;
}

char *usbvm_rule_format(const UsbvmRule *r)
{
    UsbvmBuf b = { 0 };
    usbvm_buf_puts(&b, r->target == USBVM_TARGET_ATTACH ? "attach" : "ignore");
    for (int k = 0; k < _USBVM_ATTR_MAX; k++)
        if (r->attrs[k]) {
            usbvm_buf_puts(&b, " ");
            usbvm_rules_format_attr(&b, r->attrs[k]);
        }
    if (r->target == USBVM_TARGET_ATTACH) {
        usbvm_buf_puts(&b, " to ");
        if (domain_is_bare(r->domain))
            usbvm_buf_puts(&b, r->domain);
        else
            usbvm_rules_format_string(&b, r->domain);
        usbvm_buf_printf(&b, " as %s", usbvm_mode_to_string(r->spec.mode));
        if (r->spec.readonly)
            usbvm_buf_puts(&b, " readonly");
        if (r->cache)
            usbvm_buf_printf(&b, " cache %s", r->cache);
        if (r->io)
            usbvm_buf_printf(&b, " io %s", r->io);
        if (r->spec.persistent)
            usbvm_buf_puts(&b, " persistent");
    }
    return usbvm_buf_steal(&b);
}

static bool value_equal(UsbvmAttrKind kind, const UsbvmAttrValue *a, const UsbvmAttrValue *b)
{
    if (kind == USBVM_ATTR_ID)
        return a->id.any_vid == b->id.any_vid && a->id.any_pid == b->id.any_pid &&
               (a->id.any_vid || a->id.vid == b->id.vid) &&
               (a->id.any_pid || a->id.pid == b->id.pid);
    if (kind == USBVM_ATTR_WITH_INTERFACE)
        return a->iface.cls == b->iface.cls && a->iface.any_subclass == b->iface.any_subclass &&
               a->iface.any_protocol == b->iface.any_protocol &&
               (a->iface.any_subclass || a->iface.subclass == b->iface.subclass) &&
               (a->iface.any_protocol || a->iface.protocol == b->iface.protocol);
    return streq(a->str, b->str);
}

static bool attr_equal(const UsbvmAttr *a, const UsbvmAttr *b)
{
    if (!a || !b)
        return a == b;
    if (a->kind != b->kind || a->op != b->op || a->n_values != b->n_values ||
        a->n_size != b->n_size)
        return false;
    for (size_t i = 0; i < a->n_values; i++)
        if (!value_equal(a->kind, &a->values[i], &b->values[i]))
            return false;
    for (size_t i = 0; i < a->n_size; i++)
        if (a->size[i].op != b->size[i].op || a->size[i].bytes != b->size[i].bytes)
            return false;
    return true;
}

bool usbvm_rule_equal(const UsbvmRule *a, const UsbvmRule *b)
{
    if (a->target != b->target || !streq_ptr(a->domain, b->domain) ||
        a->spec.mode != b->spec.mode || a->spec.readonly != b->spec.readonly ||
        a->spec.persistent != b->spec.persistent || !streq_ptr(a->cache, b->cache) ||
        !streq_ptr(a->io, b->io))
        return false;
    for (int k = 0; k < _USBVM_ATTR_MAX; k++)
        if (!attr_equal(a->attrs[k], b->attrs[k]))
            return false;
    return true;
}

char *usbvm_rule_generate(const UsbvmDevice *d, const char *domain, UsbvmMode mode)
{
    UsbvmBuf b = { 0 };
    usbvm_buf_printf(&b, "attach id %04x:%04x", d->vendor_id, d->product_id);
    /* Canonical attribute order, so that "rules show" prints what "generate" wrote. */
    bool has_serial = d->serial && d->serial[0];
    if (has_serial) {
        usbvm_buf_puts(&b, " serial ");
        usbvm_rules_format_string(&b, d->serial);
    }
    if (d->product && d->product[0]) {
        usbvm_buf_puts(&b, " name ");
        usbvm_rules_format_string(&b, d->product);
    }
    if (!has_serial) {
        usbvm_buf_puts(&b, " via-port ");
        usbvm_rules_format_string(&b, strempty(d->port));
    }
    if (usbvm_mode_is_disk(mode))
        usbvm_buf_puts(&b, " with-interface one-of { 08:*:* }");
    usbvm_buf_puts(&b, " to ");
    if (domain_is_bare(domain))
        usbvm_buf_puts(&b, domain);
    else
        usbvm_rules_format_string(&b, domain);
    usbvm_buf_printf(&b, " as %s", usbvm_mode_to_string(mode));
    return usbvm_buf_steal(&b);
}
