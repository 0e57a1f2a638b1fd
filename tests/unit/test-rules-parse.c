/* The rules parser against data: tests/rules/good.rules (must parse, round-trip through the
 * formatter, and give exactly the annotated warnings), tests/rules/bad.rules (each case's
 * first error at the annotated line:column). USBGuard's own parser judges the shared
 * vocabulary in test-rules-usbguard.c. */
#include "rules-internal.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

typedef struct Case {
    unsigned first_line; /* in the data file */
    char *text;          /* the case, continuation lines included, with a final newline */
    bool has_expect;
    bool expect_warning;
    unsigned line, column;
    char *substring;
} Case;

typedef struct Cases {
    Case *items;
    size_t n;
    char *file_text;
} Cases;

static void cases_free(Cases *c)
{
    for (size_t i = 0; i < c->n; i++) {
        free(c->items[i].text);
        free(c->items[i].substring);
    }
    free(c->items);
    free(c->file_text);
}

static bool ends_with_continuation(const char *line, size_t n)
{
    while (n > 0 && (line[n - 1] == ' ' || line[n - 1] == '\t'))
        n--;
    return n > 0 && line[n - 1] == '\\';
}

/* Splits a data file into cases: "#@ [warning] L:C text" annotates the next case; other
 * comment and blank lines are skipped; a line ending in "\" continues the case. */
static void cases_read(const char *path, Cases *ret)
{
    size_t len;
    *ret = (Cases){ 0 };
    assert_int_equal(usbvm_read_file(path, &ret->file_text, &len), 0);
    Case pending = { 0 };
    UsbvmBuf cur = { 0 };
    unsigned lineno = 0;
    for (const char *p = ret->file_text; *p;) {
        size_t n = strcspn(p, "\n");
        lineno++;
        const char *q = p;
        while (*q == ' ' || *q == '\t')
            q++;
        if (cur.len == 0 && strncmp(p, "#@ ", 3) == 0) {
            char sub[256] = "";
            const char *a = p + 3;
            pending.has_expect = true;
            pending.expect_warning = strncmp(a, "warning ", 8) == 0;
            if (pending.expect_warning)
                a += 8;
            assert_true(sscanf(a, "%u:%u %255[^\n]", &pending.line, &pending.column, sub) >= 2);
            pending.substring = xstrdup(sub);
        } else if (cur.len == 0 && (*q == '#' || (size_t)(q - p) == n)) {
            /* comment or blank line outside a case */
        } else {
            if (cur.len == 0)
                pending.first_line = lineno;
            usbvm_buf_append(&cur, p, n);
            usbvm_buf_puts(&cur, "\n");
            if (!ends_with_continuation(p, n)) {
                pending.text = usbvm_buf_steal(&cur);
                ret->items = xrealloc(ret->items, (ret->n + 1) * sizeof(Case));
                ret->items[ret->n++] = pending;
                pending = (Case){ 0 };
            }
        }
        p += n;
        if (*p)
            p++;
    }
    assert_int_equal(cur.len, 0);
    usbvm_buf_free(&cur);
    assert_null(pending.substring);
}

static void test_good(void **state)
{
    Cases c;
    size_t n_warned = 0;
    cases_read(USBVM_SRCDIR "/tests/rules/good.rules", &c);
    assert_true(c.n >= 80);
    for (size_t i = 0; i < c.n; i++) {
        const Case *k = &c.items[i];
        UsbvmRuleDiags d = { 0 };
        _cleanup_(usbvm_ruleset_freep) UsbvmRuleset *rs = NULL;
        int r = usbvm_ruleset_parse("good", k->text, &rs, &d);
        if (r != 0 || d.n != (k->has_expect ? 1u : 0u))
            print_error("good.rules:%u: %s -> r=%d, %zu diagnostics, first: %u:%u %s\n",
                        k->first_line, k->text, r, d.n, d.n ? d.items[0].line : 0,
                        d.n ? d.items[0].column : 0, d.n ? d.items[0].message : "");
        assert_int_equal(r, 0);
        assert_int_equal(usbvm_ruleset_size(rs), 1);
        if (k->has_expect) {
            assert_int_equal(d.n, 1);
            assert_true(d.items[0].warning && k->expect_warning);
            assert_int_equal(d.items[0].line, k->line);
            assert_int_equal(d.items[0].column, k->column);
            assert_non_null(strstr(d.items[0].message, k->substring));
            n_warned++;
        } else
            assert_int_equal(d.n, 0);
        usbvm_rule_diags_clear(&d);

        /* Round trip: format, parse again, same rule; formatting is idempotent. */
        const UsbvmRule *rule = usbvm_ruleset_get(rs, 0);
        _cleanup_free_ char *f1 = usbvm_rule_format(rule);
        _cleanup_(usbvm_ruleset_freep) UsbvmRuleset *rs2 = NULL;
        r = usbvm_ruleset_parse("formatted", f1, &rs2, NULL);
        if (r != 0)
            print_error("good.rules:%u: formatted '%s' does not parse\n", k->first_line, f1);
        assert_int_equal(r, 0);
        assert_true(usbvm_rule_equal(rule, usbvm_ruleset_get(rs2, 0)));
        _cleanup_free_ char *f2 = usbvm_rule_format(usbvm_ruleset_get(rs2, 0));
        assert_string_equal(f1, f2);
    }
    assert_true(n_warned >= 6);
    print_message("good.rules: %zu cases parsed and round-tripped, %zu with a warning\n", c.n,
                  n_warned);
    cases_free(&c);
}

static void test_bad(void **state)
{
    Cases c;
    cases_read(USBVM_SRCDIR "/tests/rules/bad.rules", &c);
    assert_true(c.n >= 80);
    for (size_t i = 0; i < c.n; i++) {
        const Case *k = &c.items[i];
        UsbvmRuleDiags d = { 0 };
        UsbvmRuleset *rs = NULL;
        assert_true(k->has_expect && !k->expect_warning);
        int r = usbvm_ruleset_parse("bad", k->text, &rs, &d);
        assert_int_equal(r, -EINVAL);
        assert_null(rs);
        assert_true(d.n_errors >= 1);
        const UsbvmRuleDiag *e = NULL;
        for (size_t j = 0; j < d.n && !e; j++)
            if (!d.items[j].warning)
                e = &d.items[j];
        assert_non_null(e);
        if (e->line != k->line || e->column != k->column || !strstr(e->message, k->substring))
            print_error("bad.rules:%u: %s -> %u:%u %s, expected %u:%u %s\n", k->first_line, k->text,
                        e->line, e->column, e->message, k->line, k->column, k->substring);
        assert_int_equal(e->line, k->line);
        assert_int_equal(e->column, k->column);
        assert_non_null(strstr(e->message, k->substring));
        assert_string_equal(e->file, "bad");
        assert_non_null(e->source);
        usbvm_rule_diags_clear(&d);
    }
    print_message("bad.rules: %zu cases rejected at the expected line:column\n", c.n);
    cases_free(&c);
}

/* The whole bad file at once: recovery after each error finds every case's error at its
 * absolute position, and the source line in the diagnostic is that line of the file. */
static void test_bad_whole_file(void **state)
{
    Cases c;
    cases_read(USBVM_SRCDIR "/tests/rules/bad.rules", &c);
    UsbvmRuleDiags d = { 0 };
    assert_int_equal(usbvm_ruleset_parse("bad.rules", c.file_text, NULL, &d), -EINVAL);
    /* Diagnostics are capped at 200; the file stays under that. */
    assert_true(d.n < 200);
    for (size_t i = 0; i < c.n; i++) {
        const Case *k = &c.items[i];
        unsigned line = k->first_line + k->line - 1;
        bool found = false;
        for (size_t j = 0; j < d.n && !found; j++)
            found =
                !d.items[j].warning && d.items[j].line == line && d.items[j].column == k->column;
        if (!found)
            print_error("bad.rules:%u: no error at %u:%u in the whole-file parse\n", k->first_line,
                        line, k->column);
        assert_true(found);
    }
    /* The caret line is the physical line of the file. */
    for (size_t j = 0; j < d.n; j++) {
        const char *p = c.file_text;
        for (unsigned l = 1; l < d.items[j].line; l++)
            p = strchr(p, '\n') + 1;
        assert_non_null(d.items[j].source);
        assert_memory_equal(d.items[j].source, p, strlen(d.items[j].source));
    }
    usbvm_rule_diags_clear(&d);
    cases_free(&c);
}

/* Errors everywhere are all reported, warnings do not fail a file, and a file that ends
 * without a newline or inside a continuation still parses. */
static void test_multiple_errors(void **state)
{
    UsbvmRuleDiags d = { 0 };
    UsbvmRuleset *rs = NULL;
    const char *text = "ignore id 1:2\n"
                       "attach id 0781:5567 to vm as virtio\n"
                       "ignore name \"x\"\n"
                       "ignore bogus\n"
                       "attach id 0781:5567 to vm as nope";
    assert_int_equal(usbvm_ruleset_parse("f", text, &rs, &d), -EINVAL);
    assert_null(rs);
    assert_int_equal(d.n, 4);
    assert_int_equal(d.n_errors, 3);
    assert_int_equal(d.items[0].line, 1);
    assert_int_equal(d.items[0].column, 11);
    assert_true(d.items[1].warning);
    assert_int_equal(d.items[1].line, 2);
    assert_int_equal(d.items[2].line, 4);
    assert_int_equal(d.items[2].column, 8);
    assert_int_equal(d.items[3].line, 5);
    assert_int_equal(d.items[3].column, 30);
    assert_string_equal(d.items[3].source, "attach id 0781:5567 to vm as nope");
    usbvm_rule_diags_clear(&d);

    assert_int_equal(usbvm_ruleset_parse("f", "ignore id 0781:5567 \\", &rs, &d), 0);
    assert_int_equal(usbvm_ruleset_size(rs), 1);
    usbvm_ruleset_free(rs);
    assert_int_equal(usbvm_ruleset_parse("f", "", &rs, &d), 0);
    assert_int_equal(usbvm_ruleset_size(rs), 0);
    usbvm_ruleset_free(rs);
    assert_int_equal(usbvm_ruleset_parse("f", "\r\n# c\r\nignore id 0781:5567\r\n", &rs, &d), 0);
    assert_int_equal(usbvm_ruleset_size(rs), 1);
    assert_int_equal(usbvm_rule_line(usbvm_ruleset_get(rs, 0)), 3);
    usbvm_ruleset_free(rs);
    assert_int_equal(d.n, 0);
}

static void test_accessors(void **state)
{
    _cleanup_(usbvm_ruleset_freep) UsbvmRuleset *rs = NULL;
    const char *text = "\n# header\n"
                       "attach fs-type \"vfat\" to \"my vm\" as virtio readonly cache none io "
                       "native persistent\n"
                       "ignore id 0781:*\n"
                       "attach id 0781:5567 to win10\n";
    assert_int_equal(usbvm_ruleset_parse("t.rules", text, &rs, NULL), 0);
    assert_int_equal(usbvm_ruleset_size(rs), 3);
    const UsbvmRule *r = usbvm_ruleset_get(rs, 0);
    assert_int_equal(usbvm_rule_target(r), USBVM_TARGET_ATTACH);
    assert_string_equal(usbvm_rule_domain(r), "my vm");
    assert_int_equal(usbvm_rule_spec(r)->mode, USBVM_MODE_VIRTIO);
    assert_true(usbvm_rule_spec(r)->readonly);
    assert_true(usbvm_rule_spec(r)->persistent);
    assert_string_equal(usbvm_rule_spec(r)->cache, "none");
    assert_string_equal(usbvm_rule_spec(r)->io, "native");
    assert_string_equal(usbvm_rule_file(r), "t.rules");
    assert_int_equal(usbvm_rule_line(r), 3);
    r = usbvm_ruleset_get(rs, 1);
    assert_int_equal(usbvm_rule_target(r), USBVM_TARGET_IGNORE);
    assert_null(usbvm_rule_domain(r));
    r = usbvm_ruleset_get(rs, 2);
    assert_int_equal(usbvm_rule_spec(r)->mode, USBVM_MODE_USB); /* the default */
    assert_false(usbvm_rule_spec(r)->readonly);
    assert_null(usbvm_rule_spec(r)->cache);
    assert_null(usbvm_ruleset_get(rs, 3));
}

static void expect_format(const char *in, const char *out)
{
    _cleanup_(usbvm_ruleset_freep) UsbvmRuleset *rs = NULL;
    assert_int_equal(usbvm_ruleset_parse("f", in, &rs, NULL), 0);
    _cleanup_free_ char *f = usbvm_rule_format(usbvm_ruleset_get(rs, 0));
    assert_string_equal(f, out);
}

static void test_format(void **state)
{
    expect_format("ignore", "ignore");
    expect_format("ignore 0781:5567", "ignore id 0781:5567");
    expect_format("ignore id ABCD:*", "ignore id abcd:*");
    expect_format("ignore id {0781:5567}", "ignore id 0781:5567");
    expect_format("ignore id equals { 0781:5567 }", "ignore id 0781:5567");
    expect_format("ignore id { 0781:5567 0951:* }", "ignore id { 0781:5567 0951:* }");
    expect_format("ignore id one-of { 0781:5567 }", "ignore id one-of { 0781:5567 }");
    expect_format("ignore with-interface 08:*:* fs-label one-of { \"A\" }",
                  "ignore with-interface 08:*:* fs-label \"A\"");
    expect_format("ignore fs-label equals { \"A\" }", "ignore fs-label equals { \"A\" }");
    expect_format("ignore name \"\\x41\\xc3\\xa9\\\"\\\\\\x7f\tx\"",
                  "ignore name \"A\\xc3\\xa9\\\"\\\\\\x7f\\x09x\"");
    expect_format("ignore size >= 8000000000 < 65536MiB", "ignore size >= 8G < 64GiB");
    expect_format("ignore size > 1.5T", "ignore size > 1500G");
    expect_format("ignore size > 0", "ignore size > 0");
    expect_format("ignore size > 1023", "ignore size > 1023");
    expect_format("ignore size > 1kB", "ignore size > 1K");
    expect_format("ignore size > 2048B", "ignore size > 2KiB");
    expect_format("attach fs-type \"vfat\" id 0781:* to vm persistent as virtio io native "
                  "readonly",
                  "attach id 0781:* fs-type \"vfat\" to vm as virtio readonly io native "
                  "persistent");
    expect_format("attach id 0781:5567 to \"a b\"", "attach id 0781:5567 to \"a b\" as usb");
    expect_format("attach id 0781:5567 to \"as\"", "attach id 0781:5567 to \"as\" as usb");
    expect_format("attach id 0781:5567 to \"w\\xc3\\xa9\"",
                  "attach id 0781:5567 to \"w\\xc3\\xa9\" as usb");
}

static void test_sizes(void **state)
{
    static const struct {
        const char *s;
        int r;
        uint64_t v;
    } t[] = {
        { "0", 0, 0 },
        { "8G", 0, 8000000000ULL },
        { "8GB", 0, 8000000000ULL },
        { "8GiB", 0, 8ULL << 30 },
        { "1.5K", 0, 1500 },
        { "1.5KiB", 0, 1536 },
        { "0.5B", -EINVAL, 0 },
        { "16E", -EINVAL, 0 },
        { "8g", -EINVAL, 0 },
        { "18446744073709551615", 0, UINT64_MAX },
        { "18446744073709551616", -ERANGE, 0 },
        { "16384P", 0, 16384000000000000000ULL },
        { "16385PiB", -ERANGE, 0 },
        { "", -EINVAL, 0 },
        { ".5G", -EINVAL, 0 },
    };
    for (size_t i = 0; i < ELEMENTSOF(t); i++) {
        uint64_t v = 0;
        int r = usbvm_rules_parse_size(t[i].s, strlen(t[i].s), &v);
        if (r != t[i].r)
            print_error("size '%s': %d, expected %d\n", t[i].s, r, t[i].r);
        assert_int_equal(r, t[i].r);
        if (r == 0)
            assert_true(v == t[i].v);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good),           cmocka_unit_test(test_bad),
        cmocka_unit_test(test_bad_whole_file), cmocka_unit_test(test_multiple_errors),
        cmocka_unit_test(test_accessors),      cmocka_unit_test(test_format),
        cmocka_unit_test(test_sizes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
