/* The formatter: one normalised text for every rule, which the parser reads back to the same
 * rule (the round-trip tests hold it to that). Also sizes, rule equality and the rules that
 * "usbvm rules generate" proposes. */
#include "rules-internal.h"

#include <errno.h>
#include <string.h>

/* USBGuard's escaping: '"' and '\' get a backslash, anything that is not printable ASCII
 * becomes \xHH. The output is therefore plain ASCII and safe on any terminal. */
void usbvm_rules_format_string(UsbvmBuf *b, const char *s)
{
    usbvm_buf_puts(b, "\"");
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        if (*c == '"' || *c == '\\') {
            char e[2] = { '\\', (char)*c };
            usbvm_buf_append(b, e, 2);
        } else if (*c < 0x20 || *c >= 0x7f)
            usbvm_buf_printf(b, "\\x%02x", *c);
        else
            usbvm_buf_append(b, (const char *)c, 1);
    }
    usbvm_buf_puts(b, "\"");
}

typedef struct SizeUnit {
    const char *suffix;
    uint64_t mult;
} SizeUnit;

/* Largest first: the formatter picks the first unit that divides the value exactly. */
static const SizeUnit size_units[] = {
    { "PiB", 1ULL << 50 },
    { "P", 1000000000000000ULL },
    { "TiB", 1ULL << 40 },
    { "T", 1000000000000ULL },
    { "GiB", 1ULL << 30 },
    { "G", 1000000000ULL },
    { "MiB", 1ULL << 20 },
    { "M", 1000000ULL },
    { "KiB", 1ULL << 10 },
    { "K", 1000ULL },
    { "PB", 1000000000000000ULL },
    { "TB", 1000000000000ULL },
    { "GB", 1000000000ULL },
    { "MB", 1000000ULL },
    { "KB", 1000ULL },
    { "kB", 1000ULL },
    { "k", 1000ULL },
    { "B", 1ULL },
};

int usbvm_rules_parse_size(const char *s, size_t n, uint64_t *ret)
{
    size_t i = 0;
    uint64_t whole = 0, frac = 0, frac_div = 1;
    bool digits = false;
    while (i < n && s[i] >= '0' && s[i] <= '9') {
        uint64_t digit = (uint64_t)(s[i] - '0');
        if (whole > (UINT64_MAX - digit) / 10)
            return -ERANGE;
        whole = whole * 10 + digit;
        digits = true;
        i++;
    }
    if (!digits)
        return -EINVAL;
    if (i < n && s[i] == '.') {
        i++;
        bool fdigits = false;
        while (i < n && s[i] >= '0' && s[i] <= '9') {
            if (frac_div >= 1000000000000ULL)
                return -EINVAL; /* more precision than any disk needs */
            frac = frac * 10 + (uint64_t)(s[i] - '0');
            frac_div *= 10;
            fdigits = true;
            i++;
        }
        if (!fdigits)
            return -EINVAL;
    }
    uint64_t mult = 1;
    if (i < n) {
        bool found = false;
        for (size_t u = 0; u < ELEMENTSOF(size_units); u++)
            if (strlen(size_units[u].suffix) == n - i &&
                memcmp(size_units[u].suffix, s + i, n - i) == 0) {
                mult = size_units[u].mult;
                found = true;
                break;
            }
        if (!found)
            return -EINVAL;
    }
    if (whole > UINT64_MAX / mult)
        return -ERANGE;
    uint64_t bytes = whole * mult;
    if (frac) {
        /* frac/frac_div * mult must come out in whole bytes. */
        unsigned __int128 f = (unsigned __int128)frac * mult;
        if (f % frac_div)
            return -EINVAL;
        uint64_t add = (uint64_t)(f / frac_div);
        if (bytes > UINT64_MAX - add)
            return -ERANGE;
        bytes += add;
    }
    *ret = bytes;
    return 0;
}

void usbvm_rules_format_size(UsbvmBuf *b, uint64_t bytes)
{
    if (bytes > 0)
        for (size_t u = 0; u < 10; u++) /* the canonical units: PiB ... K */
            if (bytes % size_units[u].mult == 0) {
                usbvm_buf_printf(b, "%llu%s", (unsigned long long)(bytes / size_units[u].mult),
                                 size_units[u].suffix);
                return;
            }
    usbvm_buf_printf(b, "%llu", (unsigned long long)bytes);
}

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
