/* The rules parser: a recursive-descent parser over the lexer's tokens. Every error is
 * recorded with its line:column; parsing resumes at the next rule, so one run reports them
 * all. Semantic checks (disk modes, options) run on each rule once it parsed. */
#include "rules-internal.h"

#include <errno.h>
#include <string.h>

DEFINE_TRIVIAL_CLEANUP_FUNC(UsbvmRule *, usbvm_rule_free)
DEFINE_TRIVIAL_CLEANUP_FUNC(UsbvmAttr *, usbvm_attr_free)

/* ---- parser ---- */

typedef struct Parser {
    UsbvmLexer lx;
    UsbvmToken tok; /* current token (lookahead) */
    const char *file;
    const char *text;
    UsbvmRuleDiags *diags;
    bool failed; /* the current rule has an error */
} Parser;

static void next(Parser *p)
{
    usbvm_lexer_next(&p->lx, &p->tok);
}

static void error_at(Parser *p, unsigned line, unsigned col, const char *fmt, ...) _printf_(4, 5);
static void error_at(Parser *p, unsigned line, unsigned col, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    _cleanup_free_ char *m = xvasprintf(fmt, ap);
    va_end(ap);
    usbvm_rule_diag_add(p->diags, false, p->file, p->text, line, col, "%s", m);
    p->failed = true;
}

static void warning_at(Parser *p, unsigned line, unsigned col, const char *fmt, ...) _printf_(4, 5);
static void warning_at(Parser *p, unsigned line, unsigned col, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    _cleanup_free_ char *m = xvasprintf(fmt, ap);
    va_end(ap);
    usbvm_rule_diag_add(p->diags, true, p->file, p->text, line, col, "%s", m);
}

/* "'foo'" for a word, "a string" for a string, "the end of the rule" ... for messages. */
static char *describe(const UsbvmToken *t)
{
    switch (t->type) {
    case USBVM_TOK_EOF:
    case USBVM_TOK_EOL:
        return xstrdup("the end of the rule");
    case USBVM_TOK_WORD: {
        _cleanup_free_ char *w = xstrndup(t->start, t->len > 40 ? 40 : t->len);
        _cleanup_free_ char *e = usbvm_escape(w);
        return xasprintf("'%s'", e);
    }
    case USBVM_TOK_STRING:
        return xstrdup("a string");
    case USBVM_TOK_LBRACE:
        return xstrdup("'{'");
    case USBVM_TOK_RBRACE:
        return xstrdup("'}'");
    case USBVM_TOK_CMP:
        return xasprintf("'%s'", usbvm_cmpop_name(t->cmp));
    case USBVM_TOK_ERROR:
        break;
    }
    return xstrdup("an error");
}

static void expected(Parser *p, const char *what)
{
    if (p->tok.type == USBVM_TOK_ERROR) {
        error_at(p, p->tok.line, p->tok.column, "%s", p->tok.message);
        return;
    }
    _cleanup_free_ char *d = describe(&p->tok);
    error_at(p, p->tok.line, p->tok.column, "expected %s, found %s", what, d);
}

/* USBGuard requires blanks between values; so do we (a missing blank usually means a typo
 * such as "name"x""). Braces need none. */
static bool check_space(Parser *p)
{
    if (p->tok.space_before || p->tok.type == USBVM_TOK_EOL || p->tok.type == USBVM_TOK_EOF ||
        p->tok.type == USBVM_TOK_RBRACE || p->tok.type == USBVM_TOK_CMP ||
        p->tok.type == USBVM_TOK_ERROR)
        return true;
    error_at(p, p->tok.line, p->tok.column, "expected a blank before this");
    return false;
}

static int attr_from_token(const UsbvmToken *t)
{
    for (int k = 0; k < _USBVM_ATTR_MAX; k++)
        if (usbvm_token_is(t, usbvm_attr_name(k)))
            return k;
    return -1;
}

static int setop_from_token(const UsbvmToken *t)
{
    for (int k = 0; k < _USBVM_SETOP_MAX; k++)
        if (usbvm_token_is(t, usbvm_setop_name(k)))
            return k;
    return -1;
}

static int hex_run(const char *s, size_t n, unsigned *ret)
{
    unsigned v = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        int d = (c >= '0' && c <= '9')   ? c - '0'
                : (c >= 'a' && c <= 'f') ? c - 'a' + 10
                : (c >= 'A' && c <= 'F') ? c - 'A' + 10
                                         : -1;
        if (d < 0)
            return -EINVAL;
        v = v * 16 + (unsigned)d;
    }
    *ret = v;
    return 0;
}

/* "VVVV:PPPP", "VVVV:*" or "*:*". */
static bool parse_id(Parser *p, const UsbvmToken *t, UsbvmIdValue *ret)
{
    const char *s = t->start;
    size_t n = t->len;
    const char *colon = memchr(s, ':', n);
    unsigned v = 0, pr = 0;
    if (!colon) {
        error_at(p, t->line, t->column, "expected a device id VID:PID (e.g. 0781:5567, 0781:*)");
        return false;
    }
    size_t vl = (size_t)(colon - s), pl = n - vl - 1;
    *ret = (UsbvmIdValue){ 0 };
    if (vl == 1 && s[0] == '*')
        ret->any_vid = true;
    else if (vl != 4 || hex_run(s, 4, &v) < 0) {
        error_at(p, t->line, t->column,
                 "invalid vendor id: expected 4 hexadecimal digits or '*' before ':'");
        return false;
    }
    unsigned pcol = t->column + (unsigned)vl + 1;
    if (pl == 1 && colon[1] == '*')
        ret->any_pid = true;
    else if (pl != 4 || hex_run(colon + 1, 4, &pr) < 0) {
        error_at(p, t->line, pcol,
                 "invalid product id: expected 4 hexadecimal digits or '*' after ':'");
        return false;
    }
    if (ret->any_vid && !ret->any_pid) {
        error_at(p, t->line, pcol, "a product id needs a vendor id: write '*:*' or 'VVVV:%.*s'",
                 (int)pl, colon + 1);
        return false;
    }
    ret->vid = (uint16_t)v;
    ret->pid = (uint16_t)pr;
    return true;
}

/* "CC:SS:PP", "CC:SS:*" or "CC:*:*". */
static bool parse_iface(Parser *p, const UsbvmToken *t, UsbvmIfaceValue *ret)
{
    const char *s = t->start;
    size_t n = t->len;
    unsigned v[3] = { 0 };
    bool any[3] = { false };
    size_t off = 0;
    *ret = (UsbvmIfaceValue){ 0 };
    for (int i = 0; i < 3; i++) {
        unsigned col = t->column + (unsigned)off;
        size_t end = off;
        while (end < n && s[end] != ':')
            end++;
        size_t len = end - off;
        if (i > 0 && len == 1 && s[off] == '*')
            any[i] = true;
        else if (len != 2 || hex_run(s + off, 2, &v[i]) < 0) {
            static const char *const part[] = { "class", "subclass", "protocol" };
            error_at(p, t->line, col,
                     "invalid interface %s: expected 2 hexadecimal digits%s (interface types "
                     "are CC:SS:PP, e.g. 08:06:50, 08:*:*)",
                     part[i], i > 0 ? " or '*'" : "");
            return false;
        }
        if (i < 2 && end >= n) {
            error_at(p, t->line, t->column + (unsigned)n,
                     "incomplete interface type: expected CC:SS:PP (e.g. 08:06:50, 08:*:*)");
            return false;
        }
        if (i == 2 && end < n) {
            error_at(p, t->line, t->column + (unsigned)end,
                     "interface type has more than three parts: expected CC:SS:PP");
            return false;
        }
        off = end + 1;
    }
    if (any[1] && !any[2]) {
        error_at(p, t->line, t->column + 6,
                 "with a '*' subclass the protocol must be '*' too (CC:*:*)");
        return false;
    }
    ret->cls = (uint8_t)v[0];
    ret->subclass = (uint8_t)v[1];
    ret->protocol = (uint8_t)v[2];
    ret->any_subclass = any[1];
    ret->any_protocol = any[2];
    return true;
}

static bool parse_value(Parser *p, UsbvmAttr *a)
{
    UsbvmAttrValue v = { 0 };
    const char *an = usbvm_attr_name(a->kind);
    if (p->tok.type == USBVM_TOK_ERROR) {
        expected(p, "");
        return false;
    }
    if (usbvm_attr_is_string(a->kind)) {
        if (p->tok.type != USBVM_TOK_STRING) {
            _cleanup_free_ char *m = xasprintf("a string in double quotes after '%s'", an);
            expected(p, m);
            return false;
        }
        v.str = TAKE_PTR(p->tok.str);
    } else if (p->tok.type != USBVM_TOK_WORD) {
        expected(p, a->kind == USBVM_ATTR_ID ? "a device id VID:PID (e.g. 0781:5567, 0781:*)"
                                             : "an interface type CC:SS:PP (e.g. 08:06:50)");
        return false;
    } else if (a->kind == USBVM_ATTR_ID) {
        if (!parse_id(p, &p->tok, &v.id))
            return false;
    } else if (!parse_iface(p, &p->tok, &v.iface))
        return false;
    a->values = xrealloc(a->values, (a->n_values + 1) * sizeof(*a->values));
    a->values[a->n_values++] = v;
    next(p);
    return true;
}

static bool parse_size_attr(Parser *p, UsbvmAttr *a)
{
    while (a->n_size < 2 && p->tok.type == USBVM_TOK_CMP) {
        UsbvmCmpOp op = p->tok.cmp;
        next(p);
        if (p->tok.type != USBVM_TOK_WORD) {
            expected(p, "a size (e.g. 8G, 64GiB, 500M)");
            return false;
        }
        uint64_t bytes;
        int r = usbvm_rules_parse_size(p->tok.start, p->tok.len, &bytes);
        if (r < 0) {
            _cleanup_free_ char *d = describe(&p->tok);
            if (r == -ERANGE)
                error_at(p, p->tok.line, p->tok.column, "size %s is too large", d);
            else
                error_at(p, p->tok.line, p->tok.column,
                         "invalid size %s: expected a number with an optional unit "
                         "(K, M, G, T, P = powers of 1000; KiB, MiB, GiB, TiB, PiB = powers "
                         "of 1024)",
                         d);
            return false;
        }
        a->size[a->n_size++] = (UsbvmSizeCmp){ .op = op, .bytes = bytes };
        next(p);
        if (!check_space(p))
            return false;
    }
    if (a->n_size == 2 && p->tok.type == USBVM_TOK_CMP) {
        error_at(p, p->tok.line, p->tok.column,
                 "'size' takes one or two comparisons (a range: size >= 8G < 64G)");
        return false;
    }
    if (a->n_size == 0) {
        expected(p, "a comparison after 'size' (e.g. size >= 8G)");
        return false;
    }
    return true;
}

/* "{ v1 v2 ... }", the current token being the '{'. */
static bool parse_set(Parser *p, UsbvmAttr *a)
{
    unsigned oline = p->tok.line, ocol = p->tok.column;
    next(p);
    while (p->tok.type != USBVM_TOK_RBRACE) {
        if (p->tok.type == USBVM_TOK_EOL || p->tok.type == USBVM_TOK_EOF) {
            if (oline != p->tok.line)
                error_at(p, p->tok.line, p->tok.column,
                         "expected '}' to close the set opened at line %u, column %u", oline, ocol);
            else
                error_at(p, p->tok.line, p->tok.column,
                         "expected '}' to close the set opened at column %u", ocol);
            return false;
        }
        if (p->tok.type == USBVM_TOK_LBRACE) {
            error_at(p, p->tok.line, p->tok.column, "sets cannot be nested");
            return false;
        }
        if (a->n_values > 0 && !check_space(p))
            return false;
        if (!parse_value(p, a))
            return false;
    }
    if (a->n_values == 0) {
        error_at(p, p->tok.line, p->tok.column, "empty set: a set needs at least one value");
        return false;
    }
    next(p);
    return true;
}

/* A device has one id, serial, name, vendor name, port and connect type: 'equals' with
 * several values asks that one value to match all of them, which is almost never meant (and
 * with distinct values never matches). The set without operator is the usual slip. */
static void check_single_valued_set(Parser *p, const UsbvmAttr *a, bool explicit_op)
{
    bool single = a->kind != USBVM_ATTR_WITH_INTERFACE && !usbvm_attr_is_storage(a->kind);
    if (!single || a->n_values < 2 ||
        (a->op != USBVM_SETOP_EQUALS && a->op != USBVM_SETOP_EQUALS_ORDERED))
        return;
    const char *name = usbvm_attr_name(a->kind);
    warning_at(p, a->line, a->column,
               "%sthe device's one %s must match all %zu values, so this matches almost "
               "nothing; to match any of them, write '%s one-of { ... }'",
               explicit_op ? "" : "a set without an operator means 'equals': ", name, a->n_values,
               name);
}

static bool duplicate_attr(Parser *p, const UsbvmAttr *first, UsbvmAttrKind kind)
{
    if (first->line != p->tok.line)
        error_at(p, p->tok.line, p->tok.column,
                 "duplicate attribute '%s' (first given at line %u, column %u); join the "
                 "values in a set instead",
                 usbvm_attr_name(kind), first->line, first->column);
    else
        error_at(p, p->tok.line, p->tok.column,
                 "duplicate attribute '%s' (first given at column %u); join the values in "
                 "a set instead",
                 usbvm_attr_name(kind), first->column);
    return false;
}

static bool parse_attr(Parser *p, UsbvmRule *r, UsbvmAttrKind kind)
{
    _cleanup_(usbvm_attr_freep) UsbvmAttr *a = xcalloc(1, sizeof(UsbvmAttr));
    a->kind = kind;
    a->line = p->tok.line;
    a->column = p->tok.column;
    a->op = usbvm_attr_default_op(kind);
    if (r->attrs[kind])
        return duplicate_attr(p, r->attrs[kind], kind);
    next(p);
    if (!check_space(p))
        return false;

    if (kind == USBVM_ATTR_SIZE) {
        if (!parse_size_attr(p, a))
            return false;
        r->attrs[kind] = TAKE_PTR(a);
        return true;
    }

    int op = setop_from_token(&p->tok);
    if (op >= 0) {
        a->op = (UsbvmSetOp)op;
        next(p);
        if (p->tok.type != USBVM_TOK_LBRACE) {
            _cleanup_free_ char *m = xasprintf("'{' after '%s'", usbvm_setop_name(op));
            expected(p, m);
            return false;
        }
        if (!check_space(p))
            return false;
    }
    if (p->tok.type == USBVM_TOK_LBRACE ? !parse_set(p, a) : !parse_value(p, a))
        return false;
    if (!check_space(p))
        return false;
    check_single_valued_set(p, a, op >= 0);
    r->attrs[kind] = TAKE_PTR(a);
    return true;
}

static const char *const usbguard_only[] = { "hash", "parent-hash", "if", "label", NULL };

static bool parse_match(Parser *p, UsbvmRule *r)
{
    /* USBGuard allows a bare device id right after the target: "allow 0781:5567". */
    if (p->tok.type == USBVM_TOK_WORD && memchr(p->tok.start, ':', p->tok.len) &&
        attr_from_token(&p->tok) < 0) {
        _cleanup_(usbvm_attr_freep) UsbvmAttr *a = xcalloc(1, sizeof(UsbvmAttr));
        a->kind = USBVM_ATTR_ID;
        a->op = USBVM_SETOP_EQUALS;
        a->line = p->tok.line;
        a->column = p->tok.column;
        if (!parse_value(p, a) || !check_space(p))
            return false;
        r->attrs[USBVM_ATTR_ID] = TAKE_PTR(a);
    }
    for (;;) {
        if (p->tok.type == USBVM_TOK_EOL || p->tok.type == USBVM_TOK_EOF ||
            usbvm_token_is(&p->tok, "to"))
            return true;
        int k = attr_from_token(&p->tok);
        if (k >= 0) {
            if (!parse_attr(p, r, (UsbvmAttrKind)k))
                return false;
            continue;
        }
        for (size_t i = 0; usbguard_only[i]; i++)
            if (usbvm_token_is(&p->tok, usbguard_only[i])) {
                error_at(p, p->tok.line, p->tok.column,
                         "'%s' is a USBGuard attribute that usbvm does not support; remove it "
                         "(usbguard generate-policy -X leaves out hashes)",
                         usbguard_only[i]);
                return false;
            }
        if (p->tok.type == USBVM_TOK_WORD) {
            _cleanup_free_ char *d = describe(&p->tok);
            error_at(p, p->tok.line, p->tok.column,
                     "unknown attribute %s; expected one of id, serial, name, vendor-name, "
                     "via-port, with-interface, with-connect-type, fs-type, fs-label, fs-uuid, "
                     "size%s",
                     d, r->target == USBVM_TARGET_ATTACH ? ", or 'to DOMAIN'" : "");
            return false;
        }
        expected(p,
                 r->target == USBVM_TARGET_ATTACH ? "an attribute or 'to DOMAIN'" : "an attribute");
        return false;
    }
}

static bool domain_char_ok(unsigned char c)
{
    return c >= 0x20 && c != 0x7f && c != '/';
}

/* Where each option of an attach rule was written, for the semantic checks' messages. */
typedef struct TargetPos {
    unsigned mode_line, mode_col, ro_line, ro_col, cache_line, cache_col, io_line, io_col;
    bool seen_as, seen_persist;
} TargetPos;

static bool parse_domain(Parser *p, UsbvmRule *r)
{
    if (!usbvm_token_is(&p->tok, "to")) {
        expected(p, "'to DOMAIN' after the match of an attach rule");
        return false;
    }
    next(p);
    if (!check_space(p))
        return false;
    if (p->tok.type == USBVM_TOK_WORD)
        r->domain = xstrndup(p->tok.start, p->tok.len);
    else if (p->tok.type == USBVM_TOK_STRING && p->tok.str[0])
        r->domain = TAKE_PTR(p->tok.str);
    else if (p->tok.type == USBVM_TOK_STRING) {
        error_at(p, p->tok.line, p->tok.column, "empty domain name after 'to'");
        return false;
    } else {
        expected(p, "a domain name after 'to'");
        return false;
    }
    for (const char *c = r->domain; *c; c++)
        if (!domain_char_ok((unsigned char)*c)) {
            error_at(p, p->tok.line, p->tok.column,
                     "invalid domain name: libvirt domain names cannot contain '/' or control "
                     "characters");
            return false;
        }
    next(p);
    return true;
}

/* The word after a keyword (as MODE, cache MODE, io MODE), or NULL. New string. */
static char *option_value(Parser *p)
{
    next(p);
    if (!check_space(p))
        return NULL;
    return p->tok.type == USBVM_TOK_WORD ? xstrndup(p->tok.start, p->tok.len) : NULL;
}

static bool parse_cache_io(Parser *p, UsbvmRule *r, TargetPos *pos, const char **dup)
{
    unsigned line = p->tok.line, col = p->tok.column;
    bool is_cache = usbvm_token_is(&p->tok, "cache");
    char **slot = is_cache ? &r->cache : &r->io;
    if (*slot) {
        *dup = is_cache ? "cache" : "io";
        return true;
    }
    _cleanup_free_ char *w = option_value(p);
    if (!w || !(is_cache ? usbvm_cache_valid(w) : usbvm_io_valid(w))) {
        expected(p, is_cache ? "a cache mode after 'cache': " USBVM_CACHE_CHOICES
                             : "an io mode after 'io': " USBVM_IO_CHOICES);
        return false;
    }
    *slot = TAKE_PTR(w);
    *(is_cache ? &pos->cache_line : &pos->io_line) = line;
    *(is_cache ? &pos->cache_col : &pos->io_col) = col;
    return true;
}

static void unknown_option(Parser *p, const UsbvmRule *r)
{
    if (attr_from_token(&p->tok) >= 0) {
        expected(p, "an option (attributes go before 'to')");
        return;
    }
    const char *what = "an option: as MODE, readonly, cache MODE, io MODE, persistent";
    if (p->tok.type != USBVM_TOK_WORD) {
        expected(p, what);
        return;
    }
    /* "to my vm": the name went on past its first word. */
    _cleanup_free_ char *word = xstrndup(p->tok.start, p->tok.len);
    error_at(p, p->tok.line, p->tok.column,
             "expected %s, found '%s'; if the domain is called '%s %s', quote its name: to "
             "\"%s %s\"",
             what, word, r->domain, word, r->domain, word);
}

/* One option after the domain; false on an error (reported). */
static bool parse_target_option(Parser *p, UsbvmRule *r, TargetPos *pos)
{
    unsigned line = p->tok.line, col = p->tok.column;
    const char *dup = NULL;
    if (usbvm_token_is(&p->tok, "as")) {
        if (pos->seen_as)
            dup = "as";
        else {
            _cleanup_free_ char *w = option_value(p);
            if (!w || usbvm_mode_from_string(w, &r->spec.mode) < 0) {
                expected(p, "a mode after 'as': " USBVM_MODE_CHOICES);
                return false;
            }
            pos->seen_as = true;
            pos->mode_line = p->tok.line;
            pos->mode_col = p->tok.column;
        }
    } else if (usbvm_token_is(&p->tok, "readonly")) {
        if (r->spec.readonly)
            dup = "readonly";
        r->spec.readonly = true;
        pos->ro_line = line;
        pos->ro_col = col;
    } else if (usbvm_token_is(&p->tok, "persistent")) {
        if (pos->seen_persist)
            dup = "persistent";
        pos->seen_persist = r->spec.persistent = true;
    } else if (usbvm_token_is(&p->tok, "cache") || usbvm_token_is(&p->tok, "io")) {
        if (!parse_cache_io(p, r, pos, &dup))
            return false;
    } else {
        unknown_option(p, r);
        return false;
    }
    if (dup) {
        error_at(p, line, col, "duplicate option '%s'", dup);
        return false;
    }
    next(p);
    return true;
}

/* Whether every device the rule can match has a block device (what a disk mode needs). */
static bool matches_storage_only(const UsbvmRule *r)
{
    for (int k = 0; k < _USBVM_ATTR_MAX; k++) {
        const UsbvmAttr *a = r->attrs[k];
        if (a && usbvm_attr_is_storage(a->kind) &&
            (a->kind == USBVM_ATTR_SIZE ||
             (a->op != USBVM_SETOP_NONE_OF && a->op != USBVM_SETOP_MATCH_ALL)))
            return true;
    }
    const UsbvmAttr *wi = r->attrs[USBVM_ATTR_WITH_INTERFACE];
    if (wi && wi->op != USBVM_SETOP_NONE_OF && wi->op != USBVM_SETOP_MATCH_ALL) {
        size_t n08 = 0;
        for (size_t i = 0; i < wi->n_values; i++)
            n08 += wi->values[i].iface.cls == 0x08;
        if (wi->op == USBVM_SETOP_ALL_OF ? n08 > 0 : n08 == wi->n_values)
            return true;
    }
    return false;
}

/* Semantic checks on the target, once it parsed. */
static bool check_target(Parser *p, UsbvmRule *r, const TargetPos *pos)
{
    if (!usbvm_mode_is_disk(r->spec.mode)) {
        if (r->spec.readonly) {
            error_at(p, pos->ro_line, pos->ro_col,
                     "'readonly' needs a disk mode (as virtio, scsi or usb-disk): with 'as "
                     "usb' the guest drives the device itself and can write to it");
            return false;
        }
        if (r->cache)
            warning_at(p, pos->cache_line, pos->cache_col, "'cache' has no effect with 'as usb'");
        if (r->io)
            warning_at(p, pos->io_line, pos->io_col, "'io' has no effect with 'as usb'");
    }
    if (r->io && streq(r->io, "native") && r->cache && !streq(r->cache, "none") &&
        !streq(r->cache, "directsync")) {
        error_at(p, pos->io_line, pos->io_col,
                 "'io native' needs 'cache none' or 'cache directsync' (QEMU refuses native "
                 "AIO without O_DIRECT)");
        return false;
    }
    if (usbvm_mode_is_disk(r->spec.mode) && !matches_storage_only(r))
        warning_at(p, pos->mode_line ? pos->mode_line : r->line,
                   pos->mode_line ? pos->mode_col : r->column,
                   "mode '%s' needs a block device, but this rule can also match devices "
                   "without one; add 'with-interface 08:*:*' or a storage attribute "
                   "(fs-type, fs-label, fs-uuid, size)",
                   usbvm_mode_to_string(r->spec.mode));
    return true;
}

static bool parse_attach_target(Parser *p, UsbvmRule *r)
{
    if (!parse_domain(p, r))
        return false;
    TargetPos pos = { 0 };
    r->spec.mode = USBVM_MODE_USB;
    for (;;) {
        if (!check_space(p))
            return false;
        if (p->tok.type == USBVM_TOK_EOL || p->tok.type == USBVM_TOK_EOF)
            break;
        if (!parse_target_option(p, r, &pos))
            return false;
    }
    r->spec.cache = r->cache;
    r->spec.io = r->io;
    return check_target(p, r, &pos);
}

static UsbvmRule *parse_rule(Parser *p)
{
    _cleanup_(usbvm_rule_freep) UsbvmRule *r = xcalloc(1, sizeof(UsbvmRule));
    r->file = xstrdup(strempty(p->file));
    r->line = p->tok.line;
    r->column = p->tok.column;

    if (usbvm_token_is(&p->tok, "attach"))
        r->target = USBVM_TARGET_ATTACH;
    else if (usbvm_token_is(&p->tok, "ignore"))
        r->target = USBVM_TARGET_IGNORE;
    else {
        if (usbvm_token_is(&p->tok, "allow") || usbvm_token_is(&p->tok, "block") ||
            usbvm_token_is(&p->tok, "reject")) {
            _cleanup_free_ char *d = describe(&p->tok);
            error_at(p, p->tok.line, p->tok.column,
                     "%s is a USBGuard target; a usbvm rule starts with 'attach' or 'ignore'", d);
        } else
            expected(p, "a rule ('attach ... to DOMAIN' or 'ignore ...')");
        return NULL;
    }
    next(p);
    if (!check_space(p))
        return NULL;
    if (!parse_match(p, r))
        return NULL;
    if (r->target == USBVM_TARGET_ATTACH) {
        if (!parse_attach_target(p, r))
            return NULL;
        bool any = false;
        for (int k = 0; k < _USBVM_ATTR_MAX; k++)
            any = any || r->attrs[k];
        if (!any)
            warning_at(p, r->line, r->column,
                       "this rule matches every USB device (keyboards and mice too); add "
                       "attributes to narrow it");
    } else if (usbvm_token_is(&p->tok, "to")) {
        error_at(p, p->tok.line, p->tok.column,
                 "an ignore rule has no target; remove 'to ...' or use 'attach'");
        return NULL;
    }
    if (p->tok.type != USBVM_TOK_EOL && p->tok.type != USBVM_TOK_EOF) {
        expected(p, "the end of the rule");
        return NULL;
    }
    return TAKE_PTR(r);
}

/* Parses text into rs (appending). Returns the number of errors found. */
size_t usbvm_rules_parse_into(const char *name, const char *text, size_t len, UsbvmRuleset *rs,
                              UsbvmRuleDiags *diags)
{
    UsbvmRuleDiags local = { 0 };
    Parser p = { .file = name, .text = text, .diags = diags ? diags : &local };
    size_t errors_before = p.diags->n_errors;
    usbvm_lexer_init(&p.lx, text, len);
    next(&p);
    for (;;) {
        while (p.tok.type == USBVM_TOK_EOL)
            next(&p);
        if (p.tok.type == USBVM_TOK_EOF)
            break;
        p.failed = false;
        UsbvmRule *r = parse_rule(&p);
        if (r)
            usbvm_ruleset_push(rs, r);
        else {
            if (!p.failed)
                error_at(&p, p.tok.line, p.tok.column, "invalid rule");
            usbvm_lexer_skip_line(&p.lx);
            /* The lookahead belonged to the broken rule; start the next one afresh. */
            p.tok.type = USBVM_TOK_EOL;
        }
        if (p.tok.type == USBVM_TOK_EOL)
            next(&p);
    }
    usbvm_token_clear(&p.tok);
    size_t errors = p.diags->n_errors - errors_before;
    usbvm_rule_diags_clear(&local);
    return errors;
}

int usbvm_ruleset_parse(const char *name, const char *text, UsbvmRuleset **ret,
                        UsbvmRuleDiags *diags)
{
    _cleanup_(usbvm_ruleset_freep) UsbvmRuleset *rs = usbvm_ruleset_new();
    if (usbvm_rules_parse_into(name, text, strlen(text), rs, diags) > 0)
        return -EINVAL;
    if (ret)
        *ret = TAKE_PTR(rs);
    return 0;
}
