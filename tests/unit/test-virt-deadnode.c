/* The dead-node cleanup's resolver and remover (lib/virt-deadnode.c) on a directory that
 * plays a domain's private /dev: real block nodes (mknod), libvirt's by-id link, and links
 * that try to lead out of it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "virt-internal.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

/* umockdev preloads itself; an ASan build must not insist on coming first. */
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
    return "verify_asan_link_order=0";
}

static char dir[] = "/tmp/usbvm-test-deadnode-XXXXXX";
static int devfd = -1;

static void node(const char *name, unsigned maj, unsigned min)
{
    assert_int_equal(mknodat(devfd, name, S_IFBLK | 0600, makedev(maj, min)), 0);
}

static bool exists(const char *name)
{
    struct stat st;
    return fstatat(devfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0;
}

static int setup(void **state)
{
    if (!mkdtemp(dir))
        return -1;
    devfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (devfd < 0 || mkdirat(devfd, "disk", 0755) < 0 || mkdirat(devfd, "disk/by-id", 0755) < 0)
        return -1;
    return 0;
}

static int teardown(void **state)
{
    _cleanup_free_ char *cmd = xasprintf("rm -rf '%s'", dir);
    /* Test clean-up only; the product never runs a shell. */
    return system(cmd) == 0 ? 0 : -1;
}

static void test_removes_link_and_node(void **state)
{
    node("sdq", 8, 240);
    assert_int_equal(symlinkat("../../sdq", devfd, "disk/by-id/usb-X-0:0"), 0);
    dev_t rdev;
    assert_int_equal(usbvm_deadnode_stat_at(devfd, "/dev/disk/by-id/usb-X-0:0", &rdev), 0);
    assert_int_equal(rdev, makedev(8, 240));
    _cleanup_free_ char *msg = NULL;
    assert_int_equal(usbvm_deadnode_remove_at(devfd, "/dev/disk/by-id/usb-X-0:0", rdev, NULL, &msg),
                     1);
    assert_non_null(strstr(msg, "removed the dead copy of /dev/disk/by-id/usb-X-0:0 (8:240)"));
    assert_false(exists("sdq"));
    assert_false(exists("disk/by-id/usb-X-0:0"));
    free(msg);
    msg = NULL;
    /* Again: nothing left, and it says so. */
    assert_int_equal(usbvm_deadnode_remove_at(devfd, "/dev/disk/by-id/usb-X-0:0", rdev, NULL, &msg),
                     0);
    assert_non_null(strstr(msg, "no copy"));
}

static void test_keeps_a_reused_name(void **state)
{
    /* Another disk got sdq meanwhile: another major:minor than the one recorded at detach. */
    node("sdq", 8, 16);
    _cleanup_free_ char *msg = NULL;
    assert_int_equal(usbvm_deadnode_remove_at(devfd, "/dev/sdq", makedev(8, 240), NULL, &msg), 0);
    assert_non_null(strstr(msg, "it is now 8:16, not 8:240"));
    assert_true(exists("sdq"));
    assert_int_equal(unlinkat(devfd, "sdq", 0), 0);
}

static void test_keeps_a_shared_node(void **state)
{
    node("sdr", 8, 32);
    assert_int_equal(symlinkat("../../sdr", devfd, "disk/by-id/usb-Y-0:0"), 0);
    char *others[] = { "/dev/vda-nothing", "/dev/disk/by-id/usb-Y-0:0", NULL };
    _cleanup_free_ char *msg = NULL;
    assert_int_equal(usbvm_deadnode_remove_at(devfd, "/dev/sdr", makedev(8, 32), others, &msg), 0);
    assert_non_null(strstr(msg, "the domain's disk /dev/disk/by-id/usb-Y-0:0 uses it"));
    assert_true(exists("sdr"));
    assert_int_equal(unlinkat(devfd, "disk/by-id/usb-Y-0:0", 0), 0);
    assert_int_equal(unlinkat(devfd, "sdr", 0), 0);
}

static void test_never_leaves_dev(void **state)
{
    /* A node outside the directory, with the rdev the caller expects. */
    _cleanup_free_ char *outside = xasprintf("%s.outside", dir);
    assert_int_equal(mknod(outside, S_IFBLK | 0600, makedev(8, 48)), 0);
    _cleanup_free_ char *abs = xasprintf("%s", outside);
    _cleanup_free_ char *rel = xasprintf("../../../%s", strrchr(outside, '/') + 1);
    assert_int_equal(symlinkat(rel, devfd, "disk/by-id/escape-rel"), 0);
    assert_int_equal(symlinkat(abs, devfd, "disk/by-id/escape-abs"), 0);
    assert_int_equal(symlinkat("../..", devfd, "disk/up"), 0);
    static const char *const sources[] = {
        "/dev/disk/by-id/escape-rel",
        "/dev/disk/by-id/escape-abs",
        "/dev/disk/up/x",
        "/dev/../x",
        "/etc/passwd",
    };
    for (size_t i = 0; i < ELEMENTSOF(sources); i++) {
        _cleanup_free_ char *msg = NULL;
        assert_true(usbvm_deadnode_remove_at(devfd, sources[i], makedev(8, 48), NULL, &msg) <= 0);
        assert_null(strstr(msg, "removed"));
    }
    struct stat st;
    assert_int_equal(stat(outside, &st), 0);
    assert_int_equal(unlink(outside), 0);
    /* A link to a link is not followed either. */
    node("sds", 8, 64);
    assert_int_equal(symlinkat("sds", devfd, "hop"), 0);
    assert_int_equal(symlinkat("../../hop", devfd, "disk/by-id/two-hops"), 0);
    dev_t rdev;
    assert_int_equal(usbvm_deadnode_stat_at(devfd, "/dev/disk/by-id/two-hops", &rdev), -ELOOP);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_removes_link_and_node),
        cmocka_unit_test(test_keeps_a_reused_name),
        cmocka_unit_test(test_keeps_a_shared_node),
        cmocka_unit_test(test_never_leaves_dev),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
