/* watch's devices (lib/watch-devices.c) on the lab fixture in a umockdev testbed: a uevent only
 * marks a device, and the read before the next plan reads it once, however many events it had.
 * A stick's USB device, its disk, its partitions and its driver's bind come as one burst; each
 * used to be a whole read of the stick (0.5 ms under umockdev) on the way to its attach. And:
 * a block device removed while sysfs still shows it stays removed after the read; a device
 * plugged and pulled before its read leaves nothing; a device that a libvirt call is about is
 * read after the answer, and its events ask for no plan before it. Runs under umockdev-wrapper
 * (tests/CMakeLists.txt). */
#include "watch-state.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <umockdev.h>

#include "test-files.h"

/* umockdev preloads itself; an ASan build must not insist on coming first. */
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
    return "verify_asan_link_order=0";
}

#define LAB  USBVM_SRCDIR "/tests/fixtures/lab.umockdev"
#define USB  "/sys/devices/pci0000:00/0000:00:14.0/usb1"
#define S11  USB "/1-1"
#define SDB  S11 "/1-1:1.0/host6/target6:0:0/6:0:0:0/block/sdb"
#define S12  USB "/1-2"
#define SDC  S12 "/1-2:1.0/host7/target7:0:0/7:0:0:0/block/sdc"
#define READ "read "

/* ---- what watch logs ---------------------------------------------------------------------- */

static unsigned n_reads, n_plugs, n_unplugs;

static void sink(UsbvmLogLevel level, const char *line, json_object *fields, void *userdata)
{
    (void)level;
    (void)userdata;
    json_object *ev = NULL;
    if (fields && json_object_object_get_ex(fields, "event", &ev)) {
        n_plugs += streq(json_object_get_string(ev), "plug");
        n_unplugs += streq(json_object_get_string(ev), "unplug");
    }
    n_reads += strncmp(line, READ, strlen(READ)) == 0;
}

/* ---- a daemon's state on the testbed ------------------------------------------------------ */

typedef struct Fixture {
    Watch w;
    UsbvmWatchSummary summary;
    UsbvmWatchOptions opts;
    UMockdevTestbed *testbed;
    char dir[32];
    UsbvmHostPaths host;
} Fixture;

static int setup(void **state)
{
    Fixture *f = xcalloc(1, sizeof(*f));
    f->testbed = umockdev_testbed_new();
    GError *error = NULL;
    if (!umockdev_testbed_add_from_file(f->testbed, LAB, &error)) {
        fprintf(stderr, "cannot load %s: %s\n", LAB, error->message);
        return -1;
    }
    snprintf(f->dir, sizeof(f->dir), "/tmp/usbvm-test-wd-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    /* No host use: what the reads find must not depend on this machine's mounts. */
    f->host.mountinfo = test_write_file(f->dir, "mountinfo", "");
    f->host.swaps = test_write_file(f->dir, "swaps", "Filename\tType\tSize\tUsed\tPriority\n");
    f->w.opts = &f->opts;
    f->w.summary = &f->summary;
    f->w.udev = udev_new();
    f->w.host_use = usbvm_host_use_cache_new(&f->host);
    f->w.started = true;
    usbvm_log_set_sink(sink, NULL);
    usbvm_log_set_max_level(USBVM_LOG_DEBUG);
    n_reads = n_plugs = n_unplugs = 0;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    Fixture *f = *state;
    usbvm_log_set_sink(NULL, NULL);
    for (size_t i = 0; i < f->w.n_devs; i++)
        usbvm_watch_device_free(f->w.devs[i]);
    free(f->w.devs);
    while (f->w.n_ops)
        usbvm_watch_op_remove(&f->w, &f->w.ops[f->w.n_ops - 1]);
    free(f->w.ops);
    usbvm_host_use_cache_free(f->w.host_use);
    udev_unref(f->w.udev);
    unlink(f->host.mountinfo);
    unlink(f->host.swaps);
    free((char *)f->host.mountinfo);
    free((char *)f->host.swaps);
    rmdir(f->dir);
    g_object_unref(f->testbed);
    free(f);
    return 0;
}

/* A uevent as the monitor hands it over: the device as sysfs shows it, and an action. */
static void uevent(Fixture *f, const char *syspath, const char *action)
{
    struct udev_device *ud = udev_device_new_from_syspath(f->w.udev, syspath);
    assert_non_null(ud);
    usbvm_watch_handle_uevent(&f->w, ud, action);
    udev_device_unref(ud);
}

static WatchDevice *device(Fixture *f, const char *syspath)
{
    for (size_t i = 0; i < f->w.n_devs; i++)
        if (streq(f->w.devs[i]->syspath, syspath))
            return f->w.devs[i];
    return NULL;
}

static bool has_block(const WatchDevice *d, const char *syspath)
{
    for (size_t i = 0; d && d->model && i < d->model->n_blocks; i++)
        if (streq(d->model->blocks[i].syspath, syspath))
            return true;
    return false;
}

/* ---- tests -------------------------------------------------------------------------------- */

static void test_burst_read_once(void **state)
{
    Fixture *f = *state;
    uevent(f, S11, "add");
    uevent(f, SDB, "add");
    uevent(f, SDB "/sdb1", "add");
    uevent(f, SDB "/sdb2", "add");
    uevent(f, S11, "bind");
    assert_true(f->w.dirty);
    assert_int_equal(n_reads, 0); /* marked, not read */
    usbvm_watch_read_marked(&f->w);
    assert_int_equal(n_reads, 1);
    /* Its "plug" record waits until the plan's calls are handed on, then comes once. */
    assert_int_equal(n_plugs, 0);
    usbvm_watch_announce(&f->w);
    assert_int_equal(n_plugs, 1);
    usbvm_watch_announce(&f->w);
    assert_int_equal(n_plugs, 1);
    WatchDevice *d = device(f, S11);
    assert_non_null(d);
    assert_non_null(d->model);
    assert_false(d->stale);
    assert_int_equal(d->model->n_blocks, 3); /* sdb, sdb1, sdb2 */
    usbvm_watch_read_marked(&f->w);
    assert_int_equal(n_reads, 1); /* nothing new: nothing read */
}

static void test_removed_block_stays_removed(void **state)
{
    Fixture *f = *state;
    uevent(f, S11, "add");
    usbvm_watch_read_marked(&f->w);
    WatchDevice *d = device(f, S11);
    assert_true(has_block(d, SDB "/sdb2"));
    /* Its "remove" came; the read after it still finds it in sysfs. */
    uevent(f, SDB "/sdb2", "remove");
    assert_false(has_block(d, SDB "/sdb2")); /* at once, for a plan before the read */
    usbvm_watch_read_marked(&f->w);
    assert_int_equal(n_reads, 2);
    assert_false(has_block(d, SDB "/sdb2"));
    assert_true(has_block(d, SDB "/sdb1"));
    /* Back again (a new partition table): the next read has it. */
    uevent(f, SDB "/sdb2", "remove");
    uevent(f, SDB "/sdb2", "add");
    usbvm_watch_read_marked(&f->w);
    assert_true(has_block(d, SDB "/sdb2"));
    usbvm_watch_announce(&f->w);
    assert_int_equal(n_plugs, 1); /* re-reads of a known device are no plug */
}

static void test_pulled_before_read(void **state)
{
    Fixture *f = *state;
    uevent(f, S12, "add");
    uevent(f, SDC, "add");
    uevent(f, SDC, "remove");
    uevent(f, S12, "remove");
    usbvm_watch_read_marked(&f->w);
    usbvm_watch_forget_gone(&f->w);
    assert_int_equal(n_reads, 0);
    assert_int_equal(n_plugs, 0);
    assert_int_equal(n_unplugs, 0); /* nobody was told of a plug */
    assert_int_equal(f->w.n_devs, 0);
}

static void test_in_flight_read_after_answer(void **state)
{
    Fixture *f = *state;
    uevent(f, S11, "add");
    usbvm_watch_read_marked(&f->w);
    WatchDevice *d = device(f, S11);
    usbvm_watch_op_add(&f->w, USBVM_OP_ATTACH, "guest", d->model->alias, NULL);
    f->w.dirty = false;
    uevent(f, SDB "/sdb1", "change");
    uevent(f, S11, "bind");
    assert_false(f->w.dirty); /* no plan while libvirt works on it */
    usbvm_watch_read_marked(&f->w);
    assert_int_equal(n_reads, 1); /* not while libvirt works on it */
    assert_true(d->stale);
    f->w.ops[0].answered = true;
    usbvm_watch_read_marked(&f->w);
    assert_int_equal(n_reads, 2);
    assert_false(d->stale);
}

static void test_vanished_before_first_read(void **state)
{
    Fixture *f = *state;
    uevent(f, S12, "add");
    umockdev_testbed_remove_device(f->testbed, SDC);
    umockdev_testbed_remove_device(f->testbed, S12 "/1-2:1.0/host7/target7:0:0/7:0:0:0");
    umockdev_testbed_remove_device(f->testbed, S12 "/1-2:1.0/host7/target7:0:0");
    umockdev_testbed_remove_device(f->testbed, S12 "/1-2:1.0/host7");
    umockdev_testbed_remove_device(f->testbed, S12 "/1-2:1.0");
    umockdev_testbed_remove_device(f->testbed, S12);
    usbvm_watch_read_marked(&f->w);
    assert_int_equal(f->w.n_devs, 0); /* its "remove" follows; nothing to keep meanwhile */
    assert_int_equal(n_plugs, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_burst_read_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_removed_block_stays_removed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pulled_before_read, setup, teardown),
        cmocka_unit_test_setup_teardown(test_in_flight_read_after_answer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_vanished_before_first_read, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
