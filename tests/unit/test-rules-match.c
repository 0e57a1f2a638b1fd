/* The matcher against tests/rules/match-table.txt (device fixtures x rules x expected
 * decision), first-match-wins over a ruleset, and the reasons "rules test" prints. */
#include "rules-internal.h"
#include "test-rules-fixtures.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

static void test_match_table(void **state)
{
    _cleanup_free_ char *text = NULL;
    size_t len, rows = 0, matches = 0;
    UsbvmDevice **devs = usbvm_test_rule_devices();
    assert_int_equal(usbvm_read_file(USBVM_SRCDIR "/tests/rules/match-table.txt", &text, &len), 0);
    unsigned lineno = 0;
    for (char *p = text; *p;) {
        size_t n = strcspn(p, "\n");
        lineno++;
        char *line = xstrndup(p, n);
        p += n + (p[n] ? 1 : 0);
        if (line[0] == '#' || line[0] == '\0') {
            free(line);
            continue;
        }
        char *bar1 = strstr(line, " | "), *bar2 = bar1 ? strstr(bar1 + 3, " | ") : NULL;
        assert_non_null(bar2);
        *bar1 = *bar2 = '\0';
        const char *dev_name = line, *expect = bar1 + 3, *rule_text = bar2 + 3;
        const UsbvmDevice *d = usbvm_test_rule_device(devs, dev_name);
        if (!d)
            print_error("match-table.txt:%u: unknown device '%s'\n", lineno, dev_name);
        assert_non_null(d);

        UsbvmRuleDiags diags = { 0 };
        _cleanup_(usbvm_ruleset_freep) UsbvmRuleset *rs = NULL;
        int r = usbvm_ruleset_parse("table", rule_text, &rs, &diags);
        if (r != 0)
            print_error("match-table.txt:%u: '%s' does not parse: %s\n", lineno, rule_text,
                        diags.n ? diags.items[0].message : "?");
        assert_int_equal(r, 0);
        usbvm_rule_diags_clear(&diags);
        const UsbvmRule *rule = usbvm_ruleset_get(rs, 0);

        bool want = streq(expect, "match");
        const char *want_attr = want ? NULL : expect + 3;
        assert_true(want || strncmp(expect, "no:", 3) == 0);
        bool got = usbvm_rule_matches(rule, d);
        const char *got_attr = usbvm_rule_failed_attribute(rule, d);
        _cleanup_free_ char *reason = NULL;
        bool explained = usbvm_rule_explain(rule, d, &reason);
        if (got != want || !streq_ptr(got_attr, want_attr))
            print_error("match-table.txt:%u: %s x '%s': got %s (%s), expected %s\n", lineno,
                        dev_name, rule_text, got ? "match" : "no", strempty(got_attr), expect);
        assert_int_equal(got, want);
        assert_true(streq_ptr(got_attr, want_attr));
        assert_int_equal(explained, want);
        assert_int_equal(usbvm_ruleset_match(rs, d) == rule, want);
        if (want)
            assert_null(reason);
        else {
            /* The reason starts with the attribute that failed. */
            assert_non_null(reason);
            assert_int_equal(strncmp(reason, want_attr, strlen(want_attr)), 0);
        }
        rows++;
        matches += want;
        free(line);
    }
    print_message("match table: %zu rows (%zu match, %zu do not)\n", rows, matches, rows - matches);
    assert_true(rows >= 100);
    usbvm_test_rule_devices_free(devs);
}

static void test_first_match_wins(void **state)
{
    UsbvmDevice **devs = usbvm_test_rule_devices();
    _cleanup_(usbvm_ruleset_freep) UsbvmRuleset *rs = NULL;
    const char *text = "ignore id 046d:*\n"                                         /* 0 */
                       "attach id 0781:5567 with-interface 08:*:* to a as virtio\n" /* 1 */
                       "attach id 0781:* to b\n"                                    /* 2 */
                       "attach via-port \"1-2.*\" to c\n"                           /* 3 */
                       "ignore fs-label \"DATA\"\n";                                /* 4 */
    assert_int_equal(usbvm_ruleset_parse("t", text, &rs, NULL), 0);
    assert_ptr_equal(usbvm_ruleset_match(rs, usbvm_test_rule_device(devs, "stick")),
                     usbvm_ruleset_get(rs, 1));
    assert_ptr_equal(usbvm_ruleset_match(rs, usbvm_test_rule_device(devs, "noserial")),
                     usbvm_ruleset_get(rs, 3));
    assert_ptr_equal(usbvm_ruleset_match(rs, usbvm_test_rule_device(devs, "kbd")),
                     usbvm_ruleset_get(rs, 0));
    /* No rule: the device stays on the host. */
    assert_null(usbvm_ruleset_match(rs, usbvm_test_rule_device(devs, "combo")));
    /* Hubs never match, not even "attach to X". */
    assert_null(usbvm_ruleset_match(rs, usbvm_test_rule_device(devs, "hub")));
    assert_null(usbvm_ruleset_match(NULL, usbvm_test_rule_device(devs, "stick")));
    usbvm_test_rule_devices_free(devs);
}

static void expect_reason(const char *rule_text, const char *dev, const char *reason)
{
    UsbvmDevice **devs = usbvm_test_rule_devices();
    _cleanup_(usbvm_ruleset_freep) UsbvmRuleset *rs = NULL;
    assert_int_equal(usbvm_ruleset_parse("t", rule_text, &rs, NULL), 0);
    _cleanup_free_ char *got = NULL;
    assert_false(
        usbvm_rule_explain(usbvm_ruleset_get(rs, 0), usbvm_test_rule_device(devs, dev), &got));
    assert_string_equal(got, reason);
    usbvm_test_rule_devices_free(devs);
}

static void test_reasons(void **state)
{
    expect_reason("ignore serial \"ABC\"", "stick",
                  "serial: device has \"4C530001230330116063\", rule wants \"ABC\"");
    expect_reason("ignore serial \"ABC\"", "kbd",
                  "serial: device has no serial number, rule wants \"ABC\"");
    expect_reason("ignore id 0951:*", "stick", "id: device has 0781:5567, rule wants 0951:*");
    expect_reason("ignore with-interface 08:*:*", "kbd",
                  "with-interface: device has { 03:01:01 03:00:00 }, rule wants 08:*:*");
    expect_reason("ignore fs-label one-of { \"A\" \"B\" }", "noserial",
                  "fs-label: device has { \"DATA\" }, rule wants { \"A\" \"B\" }");
    expect_reason("ignore fs-type \"vfat\"", "kbd",
                  "fs-type: device has no block device with a filesystem type, rule wants "
                  "\"vfat\"");
    expect_reason("ignore size >= 32G", "stick",
                  "size: device has a disk of 16G (16000000000 bytes), rule wants >= 32G");
    expect_reason("ignore size >= 1T", "reader",
                  "size: device has a disk of 8G (8000000000 bytes), 32G (32000000000 bytes), "
                  "rule wants >= 1T");
    expect_reason("ignore size > 0", "combo",
                  "size: device has no disk with a medium, rule "
                  "wants > 0");
    expect_reason("ignore name \"x\"", "combo",
                  "name: device has \"Q\\\"uote\\\\d \\xc3\\x9c\", rule wants \"x\"");
    expect_reason("ignore", "hub", "hub: usbvm never passes a hub to a guest");
}

static void test_generate(void **state)
{
    UsbvmDevice **devs = usbvm_test_rule_devices();
    static const struct {
        const char *dev, *domain;
        UsbvmMode mode;
        const char *rule;
    } t[] = {
        { "stick", "win10", USBVM_MODE_USB,
          "attach id 0781:5567 serial \"4C530001230330116063\" name \"Cruzer Blade\" to win10 "
          "as usb" },
        { "noserial", "my vm", USBVM_MODE_VIRTIO,
          "attach id 0951:1666 name \"DataTraveler 3.0\" via-port \"1-2.4\" with-interface "
          "one-of { 08:*:* } to \"my vm\" as virtio" },
        { "reader", "vm", USBVM_MODE_USB_DISK,
          "attach id 0bda:0158 name \"Card Reader\" via-port \"1-3\" with-interface one-of { "
          "08:*:* } to vm as usb-disk" },
        { "combo", "vm", USBVM_MODE_USB,
          "attach id 1234:5678 serial \"X\" name \"Q\\\"uote\\\\d \\xc3\\x9c\" to vm as usb" },
    };
    for (size_t i = 0; i < ELEMENTSOF(t); i++) {
        const UsbvmDevice *d = usbvm_test_rule_device(devs, t[i].dev);
        _cleanup_free_ char *g = usbvm_rule_generate(d, t[i].domain, t[i].mode);
        assert_string_equal(g, t[i].rule);
        /* It parses without a diagnostic, is already normalised, and matches its device. */
        UsbvmRuleDiags diags = { 0 };
        _cleanup_(usbvm_ruleset_freep) UsbvmRuleset *rs = NULL;
        assert_int_equal(usbvm_ruleset_parse("gen", g, &rs, &diags), 0);
        assert_int_equal(diags.n, 0);
        _cleanup_free_ char *f = usbvm_rule_format(usbvm_ruleset_get(rs, 0));
        assert_string_equal(f, g);
        assert_true(usbvm_rule_matches(usbvm_ruleset_get(rs, 0), d));
        /* ... and only its device among the fixtures. */
        for (size_t j = 0; devs[j]; j++)
            if (devs[j] != d)
                assert_false(usbvm_rule_matches(usbvm_ruleset_get(rs, 0), devs[j]));
    }
    usbvm_test_rule_devices_free(devs);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_match_table),
        cmocka_unit_test(test_first_match_wins),
        cmocka_unit_test(test_reasons),
        cmocka_unit_test(test_generate),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
