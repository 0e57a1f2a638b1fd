/* Every example in man/usbvm.rules.5 is run: the blocks marked ".\" example: KIND" are
 * extracted and parsed (and matched against the fixtures) as their mark says. The marks are
 * described at the top of the man page. */
#include "rules-internal.h"
#include "test-rules-fixtures.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

/* roff -> text for example blocks: "\e" is a backslash, "\-" a minus, "\&" nothing. */
static void unroff(UsbvmBuf *b, const char *line, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (line[i] == '\\' && i + 1 < n) {
            char c = line[i + 1];
            i++;
            if (c == 'e')
                usbvm_buf_puts(b, "\\");
            else if (c == '-')
                usbvm_buf_puts(b, "-");
            else if (c == '&')
                continue;
            else
                fail_msg("unsupported roff escape '\\%c' in an example", c);
            continue;
        }
        usbvm_buf_append(b, line + i, 1);
    }
    usbvm_buf_puts(b, "\n");
}

static void check_example(const char *kind, const char *text, unsigned man_line,
                          char **last_invalid_message, UsbvmDevice **devs)
{
    UsbvmRuleDiags d = { 0 };
    _cleanup_(usbvm_ruleset_freep) UsbvmRuleset *rs = NULL;
    unsigned l = 0, c = 0;
    char dev[32] = "", which[16] = "";

    if (streq(kind, "diagnostic")) {
        /* "FILE:L:C: error: MESSAGE" + the source line + the caret, as "rules check". */
        assert_non_null(*last_invalid_message);
        const char *p = strchr(text, ':');
        assert_non_null(p);
        assert_int_equal(strncmp(p + 1, *last_invalid_message, strlen(*last_invalid_message)), 0);
        free(*last_invalid_message);
        *last_invalid_message = NULL;
        return;
    }
    int r = usbvm_ruleset_parse("man", text, &rs, &d);
    if (streq(kind, "valid")) {
        if (r != 0 || d.n != 0)
            print_error("usbvm.rules.5:%u: example gives %zu diagnostics: %s\n", man_line, d.n,
                        d.n ? d.items[0].message : "");
        assert_int_equal(r, 0);
        assert_int_equal(d.n, 0);
    } else if (sscanf(kind, "warning %u:%u", &l, &c) == 2) {
        assert_int_equal(r, 0);
        assert_true(d.n >= 1 && d.items[0].warning);
        assert_int_equal(d.items[0].line, l);
        assert_int_equal(d.items[0].column, c);
    } else if (sscanf(kind, "invalid %u:%u", &l, &c) == 2) {
        assert_int_equal(r, -EINVAL);
        assert_true(d.n >= 1 && !d.items[0].warning);
        assert_int_equal(d.items[0].line, l);
        assert_int_equal(d.items[0].column, c);
        free(*last_invalid_message);
        *last_invalid_message =
            xasprintf("%u:%u: error: %s\n    %s\n", l, c, d.items[0].message, d.items[0].source);
    } else if (sscanf(kind, "match %31s %15s", dev, which) == 2) {
        if (r != 0 || d.n != 0)
            print_error("usbvm.rules.5:%u: example gives %zu diagnostics: %s\n", man_line, d.n,
                        d.n ? d.items[0].message : "");
        assert_int_equal(r, 0);
        assert_int_equal(d.n, 0);
        const UsbvmDevice *device = usbvm_test_rule_device(devs, dev);
        assert_non_null(device);
        const UsbvmRule *got = usbvm_ruleset_match(rs, device);
        if (streq(which, "host"))
            assert_null(got);
        else {
            unsigned n = 0;
            assert_int_equal(sscanf(which, "%u", &n), 1);
            if (got != usbvm_ruleset_get(rs, n - 1))
                print_error("usbvm.rules.5:%u: %s is not decided by rule %u\n", man_line, dev, n);
            assert_ptr_equal(got, usbvm_ruleset_get(rs, n - 1));
        }
    } else
        fail_msg("usbvm.rules.5:%u: unknown example kind '%s'", man_line, kind);
    usbvm_rule_diags_clear(&d);
}

static void test_man_examples(void **state)
{
    _cleanup_free_ char *man = NULL;
    size_t len, n_examples = 0, n_untested = 0;
    assert_int_equal(usbvm_read_file(USBVM_SRCDIR "/man/usbvm.rules.5", &man, &len), 0);
    UsbvmDevice **devs = usbvm_test_rule_devices();
    char *kind = NULL, *last_invalid = NULL;
    unsigned lineno = 0, kind_line = 0;
    UsbvmBuf block = { 0 };
    bool in_block = false;

    for (const char *p = man; *p;) {
        size_t n = strcspn(p, "\n");
        lineno++;
        if (n >= 14 && strncmp(p, ".\\\" example: ", 13) == 0 && !in_block) {
            free(kind);
            kind = xstrndup(p + 13, n - 13);
            kind_line = lineno;
        } else if (n == 3 && strncmp(p, ".EX", 3) == 0) {
            in_block = true;
        } else if (n == 3 && strncmp(p, ".EE", 3) == 0) {
            assert_true(in_block);
            in_block = false;
            _cleanup_free_ char *text = usbvm_buf_steal(&block);
            if (kind) {
                check_example(kind, text, kind_line, &last_invalid, devs);
                n_examples++;
                free(kind);
                kind = NULL;
            } else
                n_untested++;
        } else if (in_block && kind) {
            unroff(&block, p, n);
        }
        p += n + (p[n] ? 1 : 0);
    }
    assert_false(in_block);
    assert_null(kind);
    print_message("usbvm.rules.5: %zu examples tested\n", n_examples);
    assert_true(n_examples >= 10);
    /* Only the grammar is not a rule example. */
    assert_int_equal(n_untested, 1);
    free(last_invalid);
    usbvm_test_rule_devices_free(devs);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_man_examples),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
