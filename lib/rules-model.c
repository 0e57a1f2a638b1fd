/* The rules model every other rules file builds on: names of attributes and operators,
 * the lifetime of rules and rulesets, diagnostics, and size units and string escaping.
 * It calls nothing in the other rules files, so they form no cycle:
 * parser -> lexer, model; format -> model; match -> format, model;
 * load -> parser, model. */
#include "rules-internal.h"

#include <errno.h>
#include <string.h>

/* ---- names ---- */

static const char *const attr_names[_USBVM_ATTR_MAX] = {
    [USBVM_ATTR_ID] = "id",
    [USBVM_ATTR_SERIAL] = "serial",
    [USBVM_ATTR_NAME] = "name",
    [USBVM_ATTR_VENDOR_NAME] = "vendor-name",
    [USBVM_ATTR_VIA_PORT] = "via-port",
    [USBVM_ATTR_WITH_INTERFACE] = "with-interface",
    [USBVM_ATTR_WITH_CONNECT_TYPE] = "with-connect-type",
    [USBVM_ATTR_FS_TYPE] = "fs-type",
    [USBVM_ATTR_FS_LABEL] = "fs-label",
    [USBVM_ATTR_FS_UUID] = "fs-uuid",
    [USBVM_ATTR_SIZE] = "size",
};

static const char *const setop_names[_USBVM_SETOP_MAX] = {
    [USBVM_SETOP_ALL_OF] = "all-of",
    [USBVM_SETOP_ONE_OF] = "one-of",
    [USBVM_SETOP_NONE_OF] = "none-of",
    [USBVM_SETOP_EQUALS] = "equals",
    [USBVM_SETOP_EQUALS_ORDERED] = "equals-ordered",
    [USBVM_SETOP_MATCH_ALL] = "match-all",
};

static const char *const cmpop_names[_USBVM_CMP_MAX] = {
    [USBVM_CMP_LT] = "<",  [USBVM_CMP_LE] = "<=", [USBVM_CMP_GT] = ">",
    [USBVM_CMP_GE] = ">=", [USBVM_CMP_EQ] = "==", [USBVM_CMP_NE] = "!=",
};

const char *usbvm_attr_name(UsbvmAttrKind k)
{
    return (unsigned)k < _USBVM_ATTR_MAX ? attr_names[k] : "?";
}

const char *usbvm_setop_name(UsbvmSetOp op)
{
    return (unsigned)op < _USBVM_SETOP_MAX ? setop_names[op] : "?";
}

const char *usbvm_cmpop_name(UsbvmCmpOp op)
{
    return (unsigned)op < _USBVM_CMP_MAX ? cmpop_names[op] : "?";
}

bool usbvm_attr_is_string(UsbvmAttrKind k)
{
    return k != USBVM_ATTR_ID && k != USBVM_ATTR_WITH_INTERFACE && k != USBVM_ATTR_SIZE;
}

bool usbvm_attr_is_storage(UsbvmAttrKind k)
{
    return k == USBVM_ATTR_FS_TYPE || k == USBVM_ATTR_FS_LABEL || k == USBVM_ATTR_FS_UUID ||
           k == USBVM_ATTR_SIZE;
}

UsbvmSetOp usbvm_attr_default_op(UsbvmAttrKind k)
{
    return usbvm_attr_is_storage(k) ? USBVM_SETOP_ONE_OF : USBVM_SETOP_EQUALS;
}

/* ---- lifetime ---- */

void usbvm_attr_free(UsbvmAttr *a)
{
    if (!a)
        return;
    if (usbvm_attr_is_string(a->kind))
        for (size_t i = 0; i < a->n_values; i++)
            free(a->values[i].str);
    free(a->values);
    free(a);
}

void usbvm_rule_free(UsbvmRule *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < _USBVM_ATTR_MAX; i++)
        usbvm_attr_free(r->attrs[i]);
    free(r->domain);
    free(r->cache);
    free(r->io);
    free(r->file);
    free(r);
}

UsbvmRuleset *usbvm_ruleset_new(void)
{
    return xcalloc(1, sizeof(UsbvmRuleset));
}

void usbvm_ruleset_push(UsbvmRuleset *rs, UsbvmRule *r)
{
    if (rs->n == rs->cap) {
        rs->cap = rs->cap ? rs->cap * 2 : 16;
        rs->rules = xrealloc(rs->rules, rs->cap * sizeof(*rs->rules));
    }
    rs->rules[rs->n++] = r;
}

void usbvm_ruleset_free(UsbvmRuleset *rs)
{
    if (!rs)
        return;
    for (size_t i = 0; i < rs->n; i++)
        usbvm_rule_free(rs->rules[i]);
    free(rs->rules);
    free(rs);
}

size_t usbvm_ruleset_size(const UsbvmRuleset *rs)
{
    return rs ? rs->n : 0;
}

const UsbvmRule *usbvm_ruleset_get(const UsbvmRuleset *rs, size_t i)
{
    return rs && i < rs->n ? rs->rules[i] : NULL;
}

UsbvmTarget usbvm_rule_target(const UsbvmRule *r)
{
    return r->target;
}

const char *usbvm_rule_domain(const UsbvmRule *r)
{
    return r->domain;
}

const UsbvmAttachSpec *usbvm_rule_spec(const UsbvmRule *r)
{
    return &r->spec;
}

const char *usbvm_rule_file(const UsbvmRule *r)
{
    return r->file;
}

unsigned usbvm_rule_line(const UsbvmRule *r)
{
    return r->line;
}

/* ---- diagnostics ---- */

/* Enough to show what is wrong without drowning the admin (or a fuzzer) in errors. */
#define MAX_DIAGS 200

void usbvm_rule_diags_clear(UsbvmRuleDiags *d)
{
    if (!d)
        return;
    for (size_t i = 0; i < d->n; i++) {
        free(d->items[i].file);
        free(d->items[i].message);
        free(d->items[i].source);
    }
    free(d->items);
    *d = (UsbvmRuleDiags){ 0 };
}

static char *source_line(const char *text, unsigned line)
{
    if (!text || line == 0)
        return NULL;
    const char *p = text;
    for (unsigned l = 1; l < line; l++) {
        p = strchr(p, '\n');
        if (!p)
            return NULL;
        p++;
    }
    size_t n = strcspn(p, "\n");
    if (n > 0 && p[n - 1] == '\r')
        n--;
    return xstrndup(p, n);
}

void usbvm_rule_diag_add(UsbvmRuleDiags *d, bool warning, const char *file, const char *text,
                         unsigned line, unsigned column, const char *fmt, ...)
{
    if (!d)
        return;
    if (!warning)
        d->n_errors++;
    if (d->n >= MAX_DIAGS)
        return;
    va_list ap;
    va_start(ap, fmt);
    char *msg = xvasprintf(fmt, ap);
    va_end(ap);
    d->items = xrealloc(d->items, (d->n + 1) * sizeof(*d->items));
    d->items[d->n++] = (UsbvmRuleDiag){
        .warning = warning,
        .file = xstrdup(strempty(file)),
        .line = line,
        .column = column,
        .message = msg,
        .source = source_line(text, line),
    };
}

/* ---- units and escaping ---- */

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
