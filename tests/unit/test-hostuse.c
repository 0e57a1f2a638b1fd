/* The host use a long-lived process keeps (usbvm_host_use_cache_*): read again when, and only
 * when, the kernel says the mount table changed, and every time from files that cannot say so.
 * Mounts a tmpfs, as root, in a mount namespace of the test's own, so the host sees nothing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "device-internal.h"
#include "device.h"

#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <unistd.h>

const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
    return "verify_asan_link_order=0";
}

static bool has_mountpoint(const UsbvmHostUse *h, const char *path)
{
    for (size_t i = 0; i < h->n_mounts; i++)
        if (streq(h->mounts[i].mountpoint, path))
            return true;
    return false;
}

static const UsbvmHostUse *get(UsbvmHostUseCache *c)
{
    const UsbvmHostUse *h = NULL;
    UsbvmError err = { 0 };
    if (usbvm_host_use_cache_get(c, &h, &err) < 0)
        fail_msg("%s", err.message);
    return h;
}

static void test_procfs_changes(void **state)
{
    /* A namespace of the test's own: its mounts are gone when it exits. */
    if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
        fail_msg("cannot make a mount namespace (the suite runs as root): %s", strerror(errno));
    char dir[] = "/tmp/usbvm-test-hostuse-XXXXXX";
    assert_non_null(mkdtemp(dir));
    _cleanup_(usbvm_host_use_cache_freep) UsbvmHostUseCache *c = usbvm_host_use_cache_new(NULL);

    const UsbvmHostUse *h = get(c);
    assert_int_equal(usbvm_host_use_cache_reads(c), 1);
    assert_false(has_mountpoint(h, dir));
    size_t n = h->n_mounts;
    assert_true(n > 0);
    get(c);
    get(c);
    assert_int_equal(usbvm_host_use_cache_reads(c), 1); /* nothing changed: nothing read */

    if (mount("tmpfs", dir, "tmpfs", 0, "size=1m") < 0)
        fail_msg("mount tmpfs on %s: %s", dir, strerror(errno));
    h = get(c);
    assert_int_equal(usbvm_host_use_cache_reads(c), 2);
    assert_true(has_mountpoint(h, dir));
    assert_int_equal(h->n_mounts, n + 1);
    get(c);
    assert_int_equal(usbvm_host_use_cache_reads(c), 2);

    assert_int_equal(umount(dir), 0);
    h = get(c);
    assert_int_equal(usbvm_host_use_cache_reads(c), 3);
    assert_false(has_mountpoint(h, dir));
    assert_int_equal(h->n_mounts, n);
    rmdir(dir);
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    assert_int_equal(fclose(f), 0);
}

static void test_plain_files(void **state)
{
    char dir[] = "/tmp/usbvm-test-hostuse-XXXXXX";
    assert_non_null(mkdtemp(dir));
    _cleanup_free_ char *mi = xasprintf("%s/mountinfo", dir);
    _cleanup_free_ char *sw = xasprintf("%s/swaps", dir);
    write_file(mi, "");
    write_file(sw, "Filename\tType\tSize\tUsed\tPriority\n");
    UsbvmHostPaths paths = { mi, sw };
    _cleanup_(usbvm_host_use_cache_freep) UsbvmHostUseCache *c = usbvm_host_use_cache_new(&paths);

    assert_int_equal(get(c)->n_mounts, 0);
    /* A file says nothing when it changes: it is read every time. */
    write_file(mi, "36 35 8:17 / /media/x rw - vfat /dev/sdb1 rw\n");
    write_file(sw, "Filename\tType\tSize\tUsed\tPriority\n/dev/sdc1 partition 1 0 -2\n");
    const UsbvmHostUse *h = get(c);
    assert_int_equal(usbvm_host_use_cache_reads(c), 2);
    assert_int_equal(h->n_mounts, 1);
    assert_string_equal(h->mounts[0].mountpoint, "/media/x");
    assert_string_equal(h->swaps[0], "/dev/sdc1");
    /* A missing swaps file (a minimal container) counts as no swap. */
    unlink(sw);
    h = get(c);
    assert_null(h->swaps);
    unlink(mi);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain_files),
        cmocka_unit_test(test_procfs_changes),
    };
    return cmocka_run_group_tests_name("hostuse", tests, NULL, NULL);
}
