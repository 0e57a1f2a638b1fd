/* Loading rules from files and directories: lexical order, *.rules only, errors in any file
 * reject everything, NUL bytes, and StrictModes. */
#include "rules-internal.h"

#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

static char *tmpdir;

static void write_file(const char *dir, const char *name, const char *text, size_t n, mode_t mode)
{
    _cleanup_free_ char *p = xasprintf("%s/%s", dir, name);
    _cleanup_close_ int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, n), (ssize_t)n);
    assert_int_equal(fchmod(fd, mode), 0);
}

static int setup(void **state)
{
    char t[] = "/tmp/usbvm-rules-XXXXXX";
    assert_non_null(mkdtemp(t));
    tmpdir = xstrdup(t);
    assert_int_equal(chmod(tmpdir, 0755), 0);
    return 0;
}

static int teardown(void **state)
{
    _cleanup_free_ char *cmd = xasprintf("rm -rf '%s'", tmpdir);
    /* Test clean-up only; the product never runs a shell. */
    assert_int_equal(system(cmd), 0);
    free(tmpdir);
    return 0;
}

static void test_directory_order(void **state)
{
    write_file(tmpdir, "20-b.rules", "ignore id 0002:*\n", 17, 0644);
    write_file(tmpdir, "10-a.rules", "ignore id 0001:*\nignore id 0003:*\n", 34, 0644);
    write_file(tmpdir, "30-c.rules.bak", "this is not read\n", 17, 0644);
    write_file(tmpdir, ".hidden.rules", "neither is this\n", 16, 0644);
    write_file(tmpdir, "README", "nor this\n", 9, 0644);
    _cleanup_(usbvm_ruleset_freep) UsbvmRuleset *rs = NULL;
    UsbvmRuleDiags d = { 0 };
    assert_int_equal(usbvm_ruleset_load_flags(tmpdir, USBVM_RULES_NOT_STRICT, &rs, &d), 0);
    assert_int_equal(d.n, 0);
    assert_int_equal(usbvm_ruleset_size(rs), 3);
    static const char *const want[] = { "ignore id 0001:*", "ignore id 0003:*",
                                        "ignore id 0002:*" };
    for (size_t i = 0; i < 3; i++) {
        _cleanup_free_ char *f = usbvm_rule_format(usbvm_ruleset_get(rs, i));
        assert_string_equal(f, want[i]);
    }
    _cleanup_free_ char *a = xasprintf("%s/10-a.rules", tmpdir);
    assert_string_equal(usbvm_rule_file(usbvm_ruleset_get(rs, 1)), a);
    assert_int_equal(usbvm_rule_line(usbvm_ruleset_get(rs, 1)), 2);

    /* One bad file rejects the whole directory, and names its place. */
    write_file(tmpdir, "15-bad.rules", "ignore id 0001:*\n\nignore nope\n", 30, 0644);
    UsbvmRuleset *rs2 = NULL;
    assert_int_equal(usbvm_ruleset_load_flags(tmpdir, USBVM_RULES_NOT_STRICT, &rs2, &d), -EINVAL);
    assert_null(rs2);
    assert_int_equal(d.n_errors, 1);
    _cleanup_free_ char *bad = xasprintf("%s/15-bad.rules", tmpdir);
    assert_string_equal(d.items[0].file, bad);
    assert_int_equal(d.items[0].line, 3);
    assert_int_equal(d.items[0].column, 8);
    assert_string_equal(d.items[0].source, "ignore nope");
    usbvm_rule_diags_clear(&d);

    /* A NUL byte is an error at its position. */
    write_file(tmpdir, "15-bad.rules", "ignore\nign\0re\n", 14, 0644);
    assert_int_equal(usbvm_ruleset_load_flags(bad, USBVM_RULES_NOT_STRICT, &rs2, &d), -EINVAL);
    assert_int_equal(d.items[0].line, 2);
    assert_int_equal(d.items[0].column, 4);
    usbvm_rule_diags_clear(&d);
    _cleanup_free_ char *rm = xasprintf("%s/15-bad.rules", tmpdir);
    assert_int_equal(unlink(rm), 0);
}

static void test_missing(void **state)
{
    UsbvmRuleDiags d = { 0 };
    UsbvmRuleset *rs = NULL;
    assert_int_equal(usbvm_ruleset_load("/nonexistent/usbvm.rules", &rs, &d), -ENOENT);
    assert_null(rs);
    assert_int_equal(d.n_errors, 1);
    assert_int_equal(d.items[0].line, 0);
    assert_non_null(strstr(d.items[0].message, "no such file; write the rules there"));
    usbvm_rule_diags_clear(&d);

    /* A missing directory: the message says how to create it. */
    assert_int_equal(usbvm_ruleset_load("/nonexistent/rules.d", &rs, &d), -ENOENT);
    assert_int_equal(d.n_errors, 1);
    assert_non_null(strstr(d.items[0].message, "mkdir -p /nonexistent/rules.d"));
    usbvm_rule_diags_clear(&d);
}

static size_t lint_warnings(const char *text, const char *want)
{
    UsbvmRuleset *rs = NULL;
    UsbvmRuleDiags d = { 0 };
    assert_int_equal(usbvm_ruleset_parse("lint.rules", text, &rs, &d), 0);
    size_t before = d.n;
    usbvm_ruleset_lint(rs, &d);
    size_t n = d.n - before;
    for (size_t i = before; i < d.n; i++) {
        assert_true(d.items[i].warning);
        assert_non_null(strstr(d.items[i].message, want));
    }
    usbvm_rule_diags_clear(&d);
    usbvm_ruleset_free(rs);
    return n;
}

/* An attach rule keyed only on what the device reports about itself gets advice on pinning;
 * a rule with via-port, and ignore rules, get none. */
static void test_lint_self_chosen(void **state)
{
    assert_int_equal(lint_warnings("attach id 0781:5567 serial \"X\" to vm\n", "via-port"), 1);
    assert_int_equal(lint_warnings("attach fs-label \"BACKUP\" to vm as virtio\n", "(fs-label)"),
                     1);
    assert_int_equal(lint_warnings("attach id 0781:5567 via-port \"1-2\" to vm\n", ""), 0);
    assert_int_equal(lint_warnings("ignore id 0781:5567\n", ""), 0);
    assert_int_equal(lint_warnings("attach to vm\n", ""), 0); /* the parser warns already */
}

static void test_strict_modes(void **state)
{
    _cleanup_free_ char *sub = xasprintf("%s/strict", tmpdir);
    assert_int_equal(mkdir(sub, 0755), 0);
    write_file(sub, "a.rules", "ignore\n", 7, 0644);
    _cleanup_free_ char *file = xasprintf("%s/a.rules", sub);
    UsbvmRuleDiags d = { 0 };
    UsbvmRuleset *rs = NULL;
    bool root = geteuid() == 0;

    int r = usbvm_ruleset_load_flags(file, USBVM_RULES_STRICT, &rs, &d);
    if (root) {
        /* Owned by root, not writable by others: accepted. */
        assert_int_equal(r, 0);
        usbvm_ruleset_free(rs);
        rs = NULL;
        assert_int_equal(chown(file, 65534, 65534), 0);
        assert_int_equal(usbvm_ruleset_load_flags(file, USBVM_RULES_STRICT, &rs, &d), -EPERM);
        assert_non_null(strstr(d.items[0].message, "owned by uid 65534"));
        assert_non_null(strstr(d.items[0].message, "chown root:root"));
        usbvm_rule_diags_clear(&d);
        assert_int_equal(chown(file, 0, 0), 0);
    } else {
        assert_int_equal(r, -EPERM);
        assert_non_null(strstr(d.items[0].message, "not root"));
        usbvm_rule_diags_clear(&d);
    }

    if (root) {
        assert_int_equal(chmod(file, 0664), 0);
        assert_int_equal(usbvm_ruleset_load_flags(file, USBVM_RULES_STRICT, &rs, &d), -EPERM);
        assert_null(rs);
        assert_string_equal(d.items[0].file, file);
        assert_non_null(strstr(d.items[0].message, "writable by its group"));
        _cleanup_free_ char *fix = xasprintf("run 'chmod go-w %s'", file);
        assert_non_null(strstr(d.items[0].message, fix));
        usbvm_rule_diags_clear(&d);
        assert_int_equal(chmod(file, 0644), 0);

        /* A directory others can write to: they could add files. */
        assert_int_equal(chmod(sub, 0777), 0);
        assert_int_equal(usbvm_ruleset_load_flags(sub, USBVM_RULES_STRICT, &rs, &d), -EPERM);
        assert_non_null(strstr(d.items[0].message, "rules directory"));
        assert_non_null(strstr(d.items[0].message, "group and others"));
        usbvm_rule_diags_clear(&d);
        /* ... also as the parent of a single file, unless it has the sticky bit. */
        assert_int_equal(usbvm_ruleset_load_flags(file, USBVM_RULES_STRICT, &rs, &d), -EPERM);
        usbvm_rule_diags_clear(&d);
        assert_int_equal(chmod(sub, 01777), 0);
        assert_int_equal(usbvm_ruleset_load_flags(file, USBVM_RULES_STRICT, &rs, &d), 0);
        usbvm_ruleset_free(rs);
        rs = NULL;
        assert_int_equal(chmod(sub, 0755), 0);
    }
    /* Not strict: anything readable goes. */
    assert_int_equal(chmod(file, 0666), 0);
    assert_int_equal(usbvm_ruleset_load_flags(file, USBVM_RULES_NOT_STRICT, &rs, &d), 0);
    usbvm_ruleset_free(rs);
    assert_int_equal(d.n, 0);
}

/* Every directory up to "/" is checked, through the descriptor that is read, not by name. */
static void test_strict_modes_up_to_root(void **state)
{
    if (geteuid() != 0) {
        /* Ownership cannot be set up without root; StrictModes is off for others anyway. */
        fail_msg("test-rules-load must run as root (the CI does)");
    }
    _cleanup_free_ char *top = xasprintf("%s/top", tmpdir);
    _cleanup_free_ char *mid = xasprintf("%s/mid", top);
    _cleanup_free_ char *dir = xasprintf("%s/rules.d", mid);
    assert_int_equal(mkdir(top, 0755), 0);
    assert_int_equal(mkdir(mid, 0755), 0);
    assert_int_equal(mkdir(dir, 0755), 0);
    write_file(dir, "a.rules", "ignore\n", 7, 0644);
    _cleanup_free_ char *file = xasprintf("%s/a.rules", dir);
    UsbvmRuleDiags d = { 0 };
    UsbvmRuleset *rs = NULL;

    assert_int_equal(usbvm_ruleset_load_flags(dir, USBVM_RULES_STRICT, &rs, &d), 0);
    usbvm_ruleset_free(rs);
    rs = NULL;

    /* Two levels above the file, a group-writable directory: its group could rename mid
     * away and put a rules directory of its own in its place. */
    assert_int_equal(chmod(top, 0775), 0);
    const char *paths[] = { dir, file };
    for (size_t i = 0; i < 2; i++) {
        assert_int_equal(usbvm_ruleset_load_flags(paths[i], USBVM_RULES_STRICT, &rs, &d), -EPERM);
        assert_null(rs);
        assert_string_equal(d.items[0].file, top);
        assert_non_null(strstr(d.items[0].message, "directory above the rules"));
        assert_non_null(strstr(d.items[0].message, "writable by its group"));
        usbvm_rule_diags_clear(&d);
    }
    /* ... with the sticky bit, others cannot replace mid: accepted. */
    assert_int_equal(chmod(top, 01777), 0);
    assert_int_equal(usbvm_ruleset_load_flags(dir, USBVM_RULES_STRICT, &rs, &d), 0);
    usbvm_ruleset_free(rs);
    rs = NULL;
    assert_int_equal(chmod(top, 0755), 0);

    /* Owned by another user, above the rules. */
    assert_int_equal(chown(mid, 65534, 65534), 0);
    assert_int_equal(usbvm_ruleset_load_flags(file, USBVM_RULES_STRICT, &rs, &d), -EPERM);
    assert_string_equal(d.items[0].file, mid);
    assert_non_null(strstr(d.items[0].message, "owned by uid 65534"));
    usbvm_rule_diags_clear(&d);
    assert_int_equal(chown(mid, 0, 0), 0);

    /* A rules file that is a link to a file elsewhere is followed, and the target's own
     * directories are checked: here a directory anyone can write to. */
    _cleanup_free_ char *evil = xasprintf("%s/evil", tmpdir);
    assert_int_equal(mkdir(evil, 0755), 0);
    assert_int_equal(chmod(evil, 0777), 0);
    write_file(evil, "x.rules", "ignore\n", 7, 0644);
    _cleanup_free_ char *target = xasprintf("%s/x.rules", evil);
    _cleanup_free_ char *link = xasprintf("%s/b.rules", dir);
    assert_int_equal(symlink(target, link), 0);
    assert_int_equal(usbvm_ruleset_load_flags(dir, USBVM_RULES_STRICT, &rs, &d), -EPERM);
    assert_string_equal(d.items[0].file, evil);
    usbvm_rule_diags_clear(&d);
    assert_int_equal(chmod(evil, 0755), 0);
    assert_int_equal(usbvm_ruleset_load_flags(dir, USBVM_RULES_STRICT, &rs, &d), 0);
    assert_int_equal(usbvm_ruleset_size(rs), 2);
    usbvm_ruleset_free(rs);
    rs = NULL;
    assert_int_equal(unlink(link), 0);

    /* A FIFO named like a rules file does not block the load; it is skipped. */
    _cleanup_free_ char *fifo = xasprintf("%s/c.rules", dir);
    assert_int_equal(mkfifo(fifo, 0644), 0);
    assert_int_equal(usbvm_ruleset_load_flags(dir, USBVM_RULES_STRICT, &rs, &d), 0);
    assert_true(d.items[0].warning);
    usbvm_rule_diags_clear(&d);
    usbvm_ruleset_free(rs);
    assert_int_equal(unlink(fifo), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_directory_order),         cmocka_unit_test(test_missing),
        cmocka_unit_test(test_lint_self_chosen),        cmocka_unit_test(test_strict_modes),
        cmocka_unit_test(test_strict_modes_up_to_root),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
