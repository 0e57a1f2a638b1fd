/* The host lock (lib/hostlock.c): one device's slot excludes another holder of the same
 * identity, even in the same process (open-file-description locks), but not other identities;
 * a release frees the slot; the generation counter counts changes. */
#include "hostlock.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

static char path[64];

static int setup(void **state)
{
    snprintf(path, sizeof(path), "/tmp/usbvm-lock-test.XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    return 0;
}

static int teardown(void **state)
{
    unlink(path);
    return 0;
}

static void test_exclusion(void **state)
{
    UsbvmHostLock a = { .fd = -1 }, b = { .fd = -1 }, c = { .fd = -1 };
    UsbvmError err = { 0 };
    assert_int_equal(usbvm_hostlock_acquire(path, "ua-usbvm-0000000000000001", 0, &a, &err), 0);
    /* The same identity from another holder: busy, with a sentence that says so. */
    assert_int_equal(usbvm_hostlock_acquire(path, "ua-usbvm-0000000000000001", 0, &b, &err),
                     -EAGAIN);
    assert_non_null(strstr(err.message, "another usbvm process"));
    /* Another identity: free. */
    assert_int_equal(usbvm_hostlock_acquire(path, "ua-usbvm-0000000000000002", 0, &c, &err), 0);
    usbvm_hostlock_release(&a);
    /* Released: the first identity can be had again, waiting or not. */
    assert_int_equal(
        usbvm_hostlock_acquire(path, "ua-usbvm-0000000000000001", USBVM_HOSTLOCK_WAIT, &b, &err),
        0);
    usbvm_hostlock_release(&b);
    usbvm_hostlock_release(&c);
}

static void test_generation(void **state)
{
    UsbvmHostLock a = { .fd = -1 };
    UsbvmError err = { 0 };
    assert_int_equal(usbvm_hostlock_acquire(path, "ua-usbvm-0000000000000003", 0, &a, &err), 0);
    uint64_t g0 = 99, g1 = 0, g2 = 0;
    assert_int_equal(usbvm_hostlock_generation(&a, &g0), 0);
    assert_int_equal(usbvm_hostlock_bump(&a, &g1), 0);
    assert_int_equal(g1, g0 + 1);
    assert_int_equal(usbvm_hostlock_generation(&a, &g2), 0);
    assert_int_equal(g2, g1);
    usbvm_hostlock_release(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_exclusion, setup, teardown),
        cmocka_unit_test_setup_teardown(test_generation, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
