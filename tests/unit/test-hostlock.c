/* The host lock (lib/hostlock.c): one device's slot excludes another holder of the same
 * identity, even in the same process (open-file-description locks), but not other identities;
 * a release frees the slot; the generation counter counts changes, and tells this process's
 * own changes (any thread's) from another process's. */
#include "hostlock.h"
#include "util.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <pthread.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
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

/* A bump by another process, which has its own record of bumps (none of ours). */
static void bump_in_child(void)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        UsbvmHostLock l = { .fd = -1 };
        uint64_t g;
        _exit(usbvm_hostlock_acquire(path, "ua-usbvm-00000000000000ff", 0, &l, NULL) == 0 &&
                      usbvm_hostlock_bump(&l, &g) == 0
                  ? 0
                  : 1);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

static void *bump_thread(void *opaque)
{
    UsbvmHostLock l = { .fd = -1 };
    uint64_t g;
    if (usbvm_hostlock_acquire(path, "ua-usbvm-00000000000000fe", 0, &l, NULL) == 0) {
        (void)usbvm_hostlock_bump(&l, &g);
        usbvm_hostlock_release(&l);
    }
    return opaque;
}

static void test_own_changes(void **state)
{
    UsbvmHostLock a = { .fd = -1 };
    UsbvmError err = { 0 };
    assert_int_equal(usbvm_hostlock_acquire(path, "ua-usbvm-0000000000000004", 0, &a, &err), 0);
    uint64_t known = 0, g = 0;
    bool foreign = true;
    assert_int_equal(usbvm_hostlock_generation(&a, &known), 0);
    assert_int_equal(usbvm_hostlock_changed_since(&a, known, &foreign), 0);
    assert_false(foreign);
    /* Our own bumps, from this thread and from another one (a daemon's executor threads): not
     * someone else's change. */
    assert_int_equal(usbvm_hostlock_bump(&a, &g), 0);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, bump_thread, NULL), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(usbvm_hostlock_generation(&a, &g), 0);
    assert_int_equal(g, known + 2);
    assert_int_equal(usbvm_hostlock_changed_since(&a, known, &foreign), 0);
    assert_false(foreign);
    /* Another process's bump among ours: foreign, however many of ours surround it. */
    bump_in_child();
    assert_int_equal(usbvm_hostlock_bump(&a, &g), 0);
    assert_int_equal(usbvm_hostlock_changed_since(&a, known, &foreign), 0);
    assert_true(foreign);
    /* Seen from after it, only our own bump follows. */
    assert_int_equal(usbvm_hostlock_changed_since(&a, g - 1, &foreign), 0);
    assert_false(foreign);
    assert_int_equal(usbvm_hostlock_changed_since(&a, g - 2, &foreign), 0);
    assert_true(foreign);
    /* A counter below what the caller knew (the file was made anew): foreign. */
    assert_int_equal(usbvm_hostlock_changed_since(&a, g + 5, &foreign), 0);
    assert_true(foreign);
    usbvm_hostlock_release(&a);
}

/* A detach asked of libvirt is remembered in the identity's slot for a few seconds, across
 * processes: another asker sees it (with its age), another identity does not, an attach of the
 * identity clears it, and an old one has expired. */
static void test_detach_stamp(void **state)
{
    const char *alias = "ua-usbvm-0000000000000005";
    UsbvmHostLock a = { .fd = -1 }, b = { .fd = -1 };
    UsbvmError err = { 0 };
    uint64_t ms = 12345;
    assert_int_equal(usbvm_hostlock_acquire(path, alias, 0, &a, &err), 0);
    assert_int_equal(usbvm_hostlock_detach_asked(&a, alias, &ms), 0); /* never stamped */
    assert_int_equal(usbvm_hostlock_detach_mark(&a, alias), 0);
    assert_int_equal(usbvm_hostlock_detach_asked(&a, alias, &ms), 1);
    assert_true(ms < USBVM_HOSTLOCK_DETACH_SETTLE_MS);
    /* Another identity hashed to this slot does not take it for its own. */
    assert_int_equal(usbvm_hostlock_detach_asked(&a, "ua-usbvm-0000000000000006", &ms), 0);
    usbvm_hostlock_release(&a);
    /* The next holder (another process would open the file the same way) sees it. */
    assert_int_equal(usbvm_hostlock_acquire(path, alias, 0, &b, &err), 0);
    assert_int_equal(usbvm_hostlock_detach_asked(&b, alias, &ms), 1);
    assert_int_equal(usbvm_hostlock_detach_clear(&b), 0);
    assert_int_equal(usbvm_hostlock_detach_asked(&b, alias, &ms), 0);
    /* A stamp older than the settle time, written as a process would have long ago. */
    struct timespec ts;
    clock_gettime(CLOCK_BOOTTIME, &ts);
    uint64_t now = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
    uint64_t tag = usbvm_hash64(alias, strlen(alias)) & 0xffffff;
    /* Stored as milliseconds + 1 (0 is "none"): this one is SETTLE_MS + 1 ms old. */
    uint64_t old = (now - USBVM_HOSTLOCK_DETACH_SETTLE_MS) << 24 | tag;
    assert_int_equal(pwrite(b.fd, &old, sizeof(old), (off_t)(b.slot * 8)), (ssize_t)sizeof(old));
    assert_int_equal(usbvm_hostlock_detach_asked(&b, alias, &ms), 0);
    /* And one a second inside it still counts. */
    old += (uint64_t)1000 << 24;
    assert_int_equal(pwrite(b.fd, &old, sizeof(old), (off_t)(b.slot * 8)), (ssize_t)sizeof(old));
    assert_int_equal(usbvm_hostlock_detach_asked(&b, alias, &ms), 1);
    usbvm_hostlock_release(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_exclusion, setup, teardown),
        cmocka_unit_test_setup_teardown(test_generation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_own_changes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_detach_stamp, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
