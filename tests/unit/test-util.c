/* Escaping of hostile device strings for terminals and logs (usbvm_escape,
 * usbvm_escape_controls) and the log layer's one-record-per-line guarantee. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "log.h"
#include "util.h"

#include <string.h>

/* umockdev preloads itself; an ASan build must not insist on coming first. */
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
    return "verify_asan_link_order=0";
}

static void check_escape(const char *in, const char *want)
{
    _cleanup_free_ char *got = usbvm_escape(in);
    assert_string_equal(got, want);
}

static void test_escape_plain(void **state)
{
    check_escape("SanDisk Cruzer Blade", "SanDisk Cruzer Blade");
    check_escape("caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac", "caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac");
    check_escape("a\\b", "a\\\\b");
    check_escape(NULL, "");
}

static void test_escape_c0_del(void **state)
{
    check_escape("a\nb\tc\rd", "a\\nb\\tc\\rd");
    check_escape("\x1b[31mred", "\\x1b[31mred");
    check_escape("a\x7f", "a\\x7f");
    check_escape("\x01\x1f", "\\x01\\x1f");
}

static void test_escape_c1(void **state)
{
    /* U+009B is a one-character CSI: "\xc2\x9b" "2J" clears a VT220-style terminal. */
    check_escape("A\xc2\x9b"
                 "2JB",
                 "A\\u009b2JB");
    check_escape("\xc2\x80\xc2\x9f", "\\u0080\\u009f");
    check_escape("\xc2\xa0", "\xc2\xa0"); /* U+00A0 is printable */
}

static void test_escape_bidi_format(void **state)
{
    check_escape("ABC\xe2\x80\xae"
                 "FED",
                 "ABC\\u202eFED"); /* RLO */
    check_escape("\xe2\x80\xaa\xe2\x80\xab\xe2\x80\xac\xe2\x80\xad",
                 "\\u202a\\u202b\\u202c\\u202d");
    check_escape("\xe2\x81\xa6\xe2\x81\xa7\xe2\x81\xa8\xe2\x81\xa9",
                 "\\u2066\\u2067\\u2068\\u2069"); /* isolates */
    check_escape("\xe2\x80\x8b\xe2\x80\x8c\xe2\x80\x8d\xe2\x80\x8e\xe2\x80\x8f",
                 "\\u200b\\u200c\\u200d\\u200e\\u200f");
    check_escape("\xd8\x9c", "\\u061c");                        /* ALM */
    check_escape("\xef\xbb\xbf", "\\ufeff");                    /* BOM */
    check_escape("\xe2\x80\xa8\xe2\x80\xa9", "\\u2028\\u2029"); /* line/paragraph separators */
    check_escape("\xc2\xad", "\\u00ad");                        /* soft hyphen */
    check_escape("\xf3\xa0\x80\x81", "\\U000e0001");            /* language tag */
    check_escape("\xe2\x80\x90", "\xe2\x80\x90");               /* U+2010 hyphen is printable */
}

static void test_escape_invalid_utf8(void **state)
{
    check_escape("\xff\xfe", "\\xff\\xfe");
    check_escape("\xc3(", "\\xc3(");
    check_escape("\xed\xa0\x80", "\\xed\\xa0\\x80"); /* a surrogate */
    check_escape("\xc0\xaf", "\\xc0\\xaf");          /* overlong '/' */
}

static void test_escape_controls_keeps_backslash(void **state)
{
    _cleanup_free_ char *once = usbvm_escape("a\\b\nc");
    _cleanup_free_ char *twice = usbvm_escape_controls(once);
    assert_string_equal(twice, "a\\\\b\\nc");
    _cleanup_free_ char *raw = usbvm_escape_controls("x\n<0>forged\xe2\x80\xae");
    assert_string_equal(raw, "x\\n<0>forged\\u202e");
}

static void test_escape_hidden_table(void **state)
{
    for (uint32_t cp = 0; cp < 0x20; cp++)
        assert_true(usbvm_char_is_hidden(cp));
    for (uint32_t cp = 0x7f; cp <= 0x9f; cp++)
        assert_true(usbvm_char_is_hidden(cp));
    for (uint32_t cp = 0x20; cp < 0x7f; cp++)
        assert_false(usbvm_char_is_hidden(cp));
    assert_false(usbvm_char_is_hidden(0xe9));
    assert_false(usbvm_char_is_hidden(0x65e5));
}

typedef struct Captured {
    char lines[8][256];
    size_t n;
} Captured;

static void capture(UsbvmLogLevel level, const char *line, json_object *fields, void *userdata)
{
    Captured *c = userdata;
    if (c->n < 8)
        snprintf(c->lines[c->n++], sizeof(c->lines[0]), "%s", line);
}

/* Bytewise, as the kernel's and libvirt's names compare: "sdb" < "sdb1" < "sdc", "Z" < "a",
 * and a non-ASCII byte after all of them. An empty or NULL vector is left alone. */
static void test_strv_sort(void **state)
{
    (void)state;
    _cleanup_strv_free_ char **v = NULL;
    const char *in[] = { "sdc", "sdb1", "a", "\xc3\xa9", "Z", "sdb", "sdb" };
    for (size_t i = 0; i < sizeof(in) / sizeof(in[0]); i++)
        v = usbvm_strv_push(v, in[i]);
    usbvm_strv_sort(v);
    const char *want[] = { "Z", "a", "sdb", "sdb", "sdb1", "sdc", "\xc3\xa9" };
    assert_int_equal(usbvm_strv_length(v), sizeof(want) / sizeof(want[0]));
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
        assert_string_equal(v[i], want[i]);
    usbvm_strv_sort(NULL);
    char *one[] = { "x", NULL };
    usbvm_strv_sort(one);
    assert_string_equal(one[0], "x");
}

static void test_log_one_record_per_line(void **state)
{
    Captured c = { 0 };
    usbvm_log_set_sink(capture, &c);
    usbvm_log_set_max_level(USBVM_LOG_DEBUG);
    /* A serial that reached a format unescaped (as in a debug line naming an identity). */
    usbvm_logf(USBVM_LOG_DEBUG, NULL, "read %s", "0781:5567:X\n<0>usbvm: forged\x1b[2J\xc2\x9b");
    assert_int_equal(c.n, 1);
    assert_null(strchr(c.lines[0], '\n'));
    assert_string_equal(c.lines[0], "read 0781:5567:X\\n<0>usbvm: forged\\x1b[2J\\u009b");
    usbvm_log_set_sink(NULL, NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_escape_plain),
        cmocka_unit_test(test_escape_c0_del),
        cmocka_unit_test(test_escape_c1),
        cmocka_unit_test(test_escape_bidi_format),
        cmocka_unit_test(test_escape_invalid_utf8),
        cmocka_unit_test(test_escape_controls_keeps_backslash),
        cmocka_unit_test(test_escape_hidden_table),
        cmocka_unit_test(test_strv_sort),
        cmocka_unit_test(test_log_one_record_per_line),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
