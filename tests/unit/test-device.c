/* The device model on the lab fixture (tests/fixtures/lab.umockdev) inside a umockdev testbed:
 * enumeration, every specifier form, host use from fixture mountinfo/swaps files, and the
 * libusb descriptors. Runs under umockdev-wrapper (tests/CMakeLists.txt). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "test-files.h"

#include "device-internal.h"
#include "device.h"
#include "usbdesc.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <umockdev.h>
#include <unistd.h>

/* umockdev preloads itself; an ASan build must not insist on coming first. */
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
    return "verify_asan_link_order=0";
}

#define LAB USBVM_SRCDIR "/tests/fixtures/lab.umockdev"

static UMockdevTestbed *testbed;
static char tmpdir[] = "/tmp/usbvm-test-device-XXXXXX";
static UsbvmHostPaths host_none;
static UsbvmHostUseCache *host_cache; /* of host_none */

static int setup(void **state)
{
    /* umockdev_in_mock_environment() says no under ASan although the preload works; the
     * enumeration below fails loudly if the testbed is not in effect. */
    testbed = umockdev_testbed_new();
    GError *error = NULL;
    if (!umockdev_testbed_add_from_file(testbed, LAB, &error)) {
        fprintf(stderr, "cannot load %s: %s\n", LAB, error->message);
        return -1;
    }
    assert_non_null(mkdtemp(tmpdir));
    /* Empty host use, so the enumeration tests do not depend on this machine's mounts. */
    host_none.mountinfo = test_write_file(tmpdir, "mountinfo-empty", "");
    host_none.swaps =
        test_write_file(tmpdir, "swaps-empty", "Filename\tType\tSize\tUsed\tPriority\n");
    host_cache = usbvm_host_use_cache_new(&host_none);
    return 0;
}

static int teardown(void **state)
{
    g_object_unref(testbed);
    usbvm_host_use_cache_free(host_cache);
    unlink(host_none.mountinfo);
    unlink(host_none.swaps);
    free((char *)host_none.mountinfo);
    free((char *)host_none.swaps);
    rmdir(tmpdir);
    return 0;
}

static UsbvmDeviceList *lab_list(const UsbvmHostPaths *paths)
{
    UsbvmDeviceList *l = NULL;
    UsbvmError err = { 0 };
    int r = usbvm_device_list_enumerate(paths, &l, &err);
    if (r < 0)
        fail_msg("enumerate: %s", err.message);
    return l;
}

static UsbvmDevice *by_port(UsbvmDeviceList *l, const char *port)
{
    for (size_t i = 0; i < l->n; i++)
        if (streq(l->devices[i]->port, port))
            return l->devices[i];
    fail_msg("no device %s", port);
    return NULL;
}

static void test_identity_alias(void **state)
{
    _cleanup_free_ char *a = usbvm_identity_for(0x0781, 0x5567, "4C530001230615117092", "1-1");
    assert_string_equal(a, "0781:5567:4C530001230615117092");
    _cleanup_free_ char *b = usbvm_identity_for(0x058f, 0x6387, NULL, "1-2");
    assert_string_equal(b, "058f:6387@1-2");
    _cleanup_free_ char *c = usbvm_identity_for(0x058f, 0x6387, "", "1-2");
    assert_string_equal(c, "058f:6387@1-2");
    /* FNV-1a 64 of the identity, computed independently. */
    _cleanup_free_ char *alias = usbvm_alias_for_identity(a);
    assert_string_equal(alias, "ua-usbvm-ca41819e98ee4367");
}

static void test_enumerate(void **state)
{
    _cleanup_(usbvm_device_list_freep) UsbvmDeviceList *l = lab_list(&host_none);
    static const char *const ports[] = { "usb1", "1-1", "1-2",  "1-3", "1-4",
                                         "1-5",  "1-6", "usb2", "2-1", "2-1.1" };
    assert_int_equal(l->n, ELEMENTSOF(ports));
    for (size_t i = 0; i < l->n; i++)
        assert_string_equal(l->devices[i]->port, ports[i]);

    UsbvmDevice *d = by_port(l, "1-1");
    assert_string_equal(d->syspath, "/sys/devices/pci0000:00/0000:00:14.0/usb1/1-1");
    assert_int_equal(d->busnum, 1);
    assert_int_equal(d->devnum, 2);
    assert_string_equal(d->devnode, "/dev/bus/usb/001/002");
    assert_int_equal(d->vendor_id, 0x0781);
    assert_int_equal(d->product_id, 0x5567);
    assert_int_equal(d->bcd_usb, 0x0200);
    assert_int_equal(d->bcd_device, 0x0100);
    assert_string_equal(d->manufacturer, "SanDisk");
    assert_string_equal(d->product, "Cruzer Blade");
    assert_string_equal(d->serial, "4C530001230615117092");
    assert_string_equal(d->speed, "480");
    assert_string_equal(d->connect_type, "hotplug");
    assert_true(d->authorized);
    assert_false(d->is_hub);
    assert_true(usbvm_device_is_storage(d));
    assert_string_equal(d->alias, "ua-usbvm-ca41819e98ee4367");
    assert_int_equal(d->n_interfaces, 1);
    assert_int_equal(d->interfaces[0].cls, 0x08);
    assert_int_equal(d->interfaces[0].subclass, 0x06);
    assert_int_equal(d->interfaces[0].protocol, 0x50);
    assert_string_equal(d->interfaces[0].driver, "usb-storage");

    assert_int_equal(d->n_blocks, 3);
    const UsbvmBlock *disk = &d->blocks[0], *p1 = &d->blocks[1], *p2 = &d->blocks[2];
    assert_int_equal(disk->type, USBVM_BLOCK_DISK);
    assert_string_equal(disk->name, "sdb");
    assert_null(disk->parent);
    assert_int_equal(disk->size, 30031872ULL * 512);
    assert_true(disk->removable);
    assert_false(disk->readonly);
    assert_int_equal(p1->type, USBVM_BLOCK_PARTITION);
    assert_string_equal(p1->name, "sdb1");
    assert_string_equal(p1->parent, "sdb");
    assert_string_equal(p1->devnode, "/dev/sdb1");
    assert_string_equal(p1->by_id,
                        "/dev/disk/by-id/usb-SanDisk_Cruzer_Blade_4C530001230615117092-0:0-part1");
    assert_int_equal(p1->major, 8);
    assert_int_equal(p1->minor, 17);
    assert_int_equal(p1->size, 2097152ULL * 512);
    assert_true(p1->removable); /* inherited from the disk */
    assert_string_equal(p1->fs_type, "vfat");
    assert_string_equal(p1->fs_uuid, "1A2B-3C4D");
    assert_string_equal(p2->fs_label, "My Files"); /* ID_FS_LABEL_ENC decoded, not My_Files */
    const UsbvmBlock *disks[4];
    assert_int_equal(usbvm_device_disks(d, disks, 4), 1);
    assert_ptr_equal(disks[0], disk);

    d = by_port(l, "1-2");
    assert_null(d->serial);
    assert_string_equal(d->identity, "058f:6387@1-2");
    assert_int_equal(d->n_blocks, 1);
    assert_string_equal(d->blocks[0].fs_type, "vfat");

    d = by_port(l, "1-5");
    assert_false(usbvm_device_is_storage(d));
    assert_int_equal(d->n_interfaces, 2);
    assert_int_equal(d->interfaces[1].number, 1);
    assert_string_equal(d->speed, "1.5");
    assert_int_equal(d->bcd_usb, 0x0110);

    d = by_port(l, "1-6");
    assert_string_equal(d->manufacturer, "ACME \"Quoted\" <b>&amp;");
    assert_string_equal(d->product, "Line1\nLine2 \xff\xfe bad"); /* raw bytes */
    assert_int_equal(strlen(d->serial), 255);
    assert_string_equal(d->blocks[1].fs_label, "a\"b<c&d");
    _cleanup_free_ char *shown = usbvm_device_display_name(d);
    assert_string_equal(shown, "ACME \"Quoted\" <b>&amp; Line1\\nLine2 \\xff\\xfe bad");

    d = by_port(l, "2-1");
    assert_true(d->is_hub);
    assert_string_equal(d->connect_type, "hardwired");
    assert_int_equal(d->n_blocks, 0); /* the disk behind it is the T5's, not the hub's */
    d = by_port(l, "2-1.1");
    assert_int_equal(d->bcd_usb, 0x0310);
    /* Both alternate settings of the T5's interface, as USBGuard sees them, although sysfs
     * shows only the active one (UAS, alt 1), which lends its driver. */
    assert_true(d->described);
    assert_int_equal(d->n_interfaces, 2);
    assert_int_equal(d->interfaces[0].alt, 0);
    assert_int_equal(d->interfaces[0].protocol, 0x50);
    assert_null(d->interfaces[0].driver);
    assert_int_equal(d->interfaces[1].alt, 1);
    assert_int_equal(d->interfaces[1].protocol, 0x62);
    assert_string_equal(d->interfaces[1].driver, "uas");
    assert_int_equal(d->n_blocks, 2);
    assert_false(d->blocks[0].removable);

    d = by_port(l, "usb1");
    assert_true(d->is_hub);
    assert_null(d->connect_type);
}

static void test_new_from_syspath(void **state)
{
    _cleanup_(usbvm_device_freep) UsbvmDevice *d = NULL;
    UsbvmError err = { 0 };
    assert_int_equal(
        usbvm_device_new_from_syspath("/sys/devices/pci0000:00/0000:00:14.0/usb2/2-1/2-1.1",
                                      host_cache, &d, &err),
        0);
    assert_string_equal(d->port, "2-1.1");
    assert_int_equal(d->n_interfaces, 2);
    assert_int_equal(d->n_blocks, 2);
    assert_string_equal(d->blocks[0].name, "sdg");
    assert_string_equal(d->blocks[1].name, "sdg1");

    _cleanup_(usbvm_device_freep) UsbvmDevice *h = NULL;
    assert_int_equal(usbvm_device_new_from_syspath("/sys/devices/pci0000:00/0000:00:14.0/usb2/2-1",
                                                   host_cache, &h, &err),
                     0);
    assert_int_equal(h->n_interfaces, 1); /* its own, not the T5's */
    assert_int_equal(h->n_blocks, 0);

    UsbvmDevice *none = (UsbvmDevice *)0x1;
    assert_int_equal(usbvm_device_new_from_syspath(
                         "/sys/devices/pci0000:00/0000:00:14.0/usb2/2-1/2-1.1/2-1.1:1.0",
                         host_cache, &none, &err),
                     -EINVAL);
    assert_ptr_equal(none, (UsbvmDevice *)0x1); /* not clobbered */
    assert_string_equal(err.message, "'/sys/devices/pci0000:00/0000:00:14.0/usb2/2-1/2-1.1/"
                                     "2-1.1:1.0' is not a USB device");
    assert_int_equal(usbvm_device_new_from_syspath("/sys/devices/pci0000:00/0000:00:14.0/usb2/2-9",
                                                   host_cache, &none, &err),
                     -ENOENT);
    assert_ptr_equal(none, (UsbvmDevice *)0x1);
}

static void expect_resolves(UsbvmDeviceList *l, const char *spec, const char *port)
{
    UsbvmDevice *d = NULL;
    UsbvmError err = { 0 };
    int r = usbvm_device_list_resolve(l, spec, &d, &err);
    if (r < 0)
        fail_msg("'%s': %s", spec, err.message);
    assert_string_equal(d->port, port);
}

static void test_resolve(void **state)
{
    _cleanup_(usbvm_device_list_freep) UsbvmDeviceList *l = lab_list(&host_none);
    expect_resolves(l, "1-1", "1-1");
    expect_resolves(l, "usb2", "usb2");
    expect_resolves(l, "0781:5567", "1-1");
    expect_resolves(l, "0781:5567:4C530001230615117092", "1-1");
    expect_resolves(l, "ua-usbvm-ca41819e98ee4367", "1-1");
    expect_resolves(l, "serial=E0D55EA573F5E3A0B9850F6A", "1-4");
    expect_resolves(l, "/dev/sdb", "1-1");
    expect_resolves(l, "/dev/sdb2", "1-1");
    expect_resolves(l, "/dev/disk/by-id/usb-Kingston_DataTraveler_3.0_E0D55EA573F5E3A0B9850F6A-0:0",
                    "1-4");
    expect_resolves(l, "/dev/sdg1", "2-1.1");
    expect_resolves(l, "/dev/bus/usb/002/003", "2-1.1");
    expect_resolves(l, "/sys/devices/pci0000:00/0000:00:14.0/usb2/2-1", "2-1");
    expect_resolves(l, "/sys/devices/pci0000:00/0000:00:14.0/usb2/2-1/2-1.1/", "2-1.1");
    expect_resolves(l, "/devices/pci0000:00/0000:00:14.0/usb2/2-1/2-1.1/2-1.1:1.0", "2-1.1");
    expect_resolves(l, "/sys/bus/usb/devices/1-5", "1-5");
    expect_resolves(l, "/sys/class/block/sdd1", "1-3");
    expect_resolves(l, "058f:6387@1-2", "1-2");

    UsbvmDevice *keep = (UsbvmDevice *)0x1;
    UsbvmError err = { 0 };
    assert_int_equal(usbvm_device_list_resolve(l, "0951:1666", &keep, &err), -ENOTUNIQ);
    assert_ptr_equal(keep, (UsbvmDevice *)0x1);
    assert_int_equal(err.kind, USBVM_E_NOTFOUND);
    assert_string_equal(err.message,
                        "'0951:1666' matches 2 devices: 1-3 (serial E0D55EA573F5E3A0B9850F5D), "
                        "1-4 (serial E0D55EA573F5E3A0B9850F6A); name one by its port path or "
                        "serial=...");

    static const char *const unknown[] = { "foo",
                                           "ffff:ffff",
                                           "serial=nope",
                                           "/dev/sdz",
                                           "/dev/bus/usb/009/009",
                                           "/sys/devices/virtual",
                                           "ua-usbvm-0000000000000000" };
    for (size_t i = 0; i < ELEMENTSOF(unknown); i++) {
        usbvm_error_clear(&err);
        assert_int_equal(usbvm_device_list_resolve(l, unknown[i], &keep, &err), -ENOENT);
        assert_int_equal(err.kind, USBVM_E_NOTFOUND);
        _cleanup_free_ char *want = xasprintf(
            "no USB device matches '%s': tried port path, VID:PID, serial=, /dev node, "
            "/dev/bus/usb node, sysfs path, identity, alias; run 'usbvm list --all' to see the "
            "devices",
            unknown[i]);
        assert_string_equal(err.message, want);
    }
    /* A hostile specifier is escaped in the message. */
    usbvm_error_clear(&err);
    assert_int_equal(usbvm_device_list_resolve(l, "a\nb", &keep, &err), -ENOENT);
    assert_non_null(strstr(err.message, "'a\\nb'"));
}

static void test_host_use(void **state)
{
    /* sdb1 mounted under another name (by-label) on a path with a space: matched by 8:17.
     * sdb2 on btrfs-style anonymous 0:45: matched by source. sdd1 is swap; sde1 held. */
    _cleanup_free_ char *mi =
        test_write_file(tmpdir, "mountinfo",
                        "22 1 259:2 / / rw,relatime shared:1 - ext4 /dev/nvme0n1p2 rw\n"
                        "80 22 8:17 / /media/my\\040stick rw,nosuid shared:40 - vfat "
                        "/dev/disk/by-label/SANDISK rw,fmask=0022\n"
                        "81 22 0:45 /@data /srv/data rw shared:41 - btrfs /dev/sdb2 rw\n"
                        "82 22 8:17 / /mnt/second rw - vfat /dev/sdb1 rw\n");
    _cleanup_free_ char *sw = test_write_file(tmpdir, "swaps",
                                              "Filename\t\t\t\tType\t\tSize\t\tUsed\tPriority\n"
                                              "/dev/sdd1                               "
                                              "partition\t30217720\t0\t-2\n");
    UsbvmHostPaths paths = { mi, sw };
    _cleanup_(usbvm_device_list_freep) UsbvmDeviceList *l = lab_list(&paths);

    UsbvmDevice *d = by_port(l, "1-1");
    assert_null(d->blocks[0].mountpoint);
    assert_string_equal(d->blocks[1].mountpoint, "/media/my stick"); /* the first one */
    assert_string_equal(d->blocks[2].mountpoint, "/srv/data");
    UsbvmError err = { 0 };
    assert_int_equal(usbvm_device_check_host_use(d, &err), -EBUSY);
    assert_int_equal(err.kind, USBVM_E_REFUSED);
    assert_string_equal(err.message, "/dev/sdb1 is mounted on /media/my stick; unmount it first");

    d = by_port(l, "1-3");
    assert_true(d->blocks[1].swap);
    assert_false(d->blocks[0].swap);
    assert_int_equal(usbvm_device_check_host_use(d, &err), -EBUSY);
    assert_string_equal(err.message, "/dev/sdd1 is in use as swap; run 'swapoff /dev/sdd1' first");

    d = by_port(l, "1-4");
    assert_int_equal(usbvm_strv_length(d->blocks[1].holders), 1);
    assert_int_equal(usbvm_device_check_host_use(d, &err), -EBUSY);
    assert_string_equal(err.message,
                        "/dev/sde1 is held by dm-0 (device-mapper/LVM/md); release it first");

    usbvm_error_clear(&err);
    assert_int_equal(usbvm_device_check_host_use(by_port(l, "1-2"), &err), 0);
    assert_int_equal(err.kind, USBVM_E_OK);
    assert_int_equal(usbvm_device_check_host_use(by_port(l, "1-5"), &err), 0);

    /* Refresh sees the host as it is now. */
    d = by_port(l, "1-1");
    assert_int_equal(usbvm_device_refresh_host_use(d, &host_none, &err), 0);
    assert_null(d->blocks[1].mountpoint);
    assert_int_equal(usbvm_device_check_host_use(d, &err), 0);

    /* A missing swaps file (minimal containers) is empty, not an error. */
    UsbvmHostPaths noswap = { mi, "/nonexistent/swaps" };
    assert_int_equal(usbvm_device_refresh_host_use(d, &noswap, &err), 0);
    assert_string_equal(d->blocks[1].mountpoint, "/media/my stick");
    unlink(mi);
    unlink(sw);
}

static void test_decode(void **state)
{
    _cleanup_free_ char *a = usbvm_decode_hex_escapes("My\\x20Files\\x22\\x3c\\xzz");
    assert_string_equal(a, "My Files\"<\\xzz");
    _cleanup_free_ char *b = usbvm_decode_octal_escapes("/media/a\\040b\\011c\\134d\\9");
    assert_string_equal(b, "/media/a b\tc\\d\\9");
    /* An escaped NUL is dropped; an escape cut short by the end is kept as it is. */
    _cleanup_free_ char *c = usbvm_decode_hex_escapes("a\\x00b\\xff\\x4");
    assert_string_equal(c, "ab\xff\\x4");
    _cleanup_free_ char *d = usbvm_decode_octal_escapes("\\000x\\377\\40");
    assert_string_equal(d, "x\377\\40");
}

/* udev's properties without libudev: the uevent file's, then udev's record of the device,
 * whose "E:" lines win and whose "S:" links are DEVLINKS. Values are kept byte for byte. */
static void test_udev_properties(void **state)
{
    static const char uevent[] = "MAJOR=8\nMINOR=16\nDEVNAME=sdb\nDEVTYPE=disk\n"
                                 "ID_FS_LABEL=FROM_UEVENT\nnot a property\n=nokey\n"
                                 "DEVLINKS=/dev/disk/by-id/umockdev";
    static const char db[] = "S:disk/by-id/usb-SanDisk_X-0:0\nS:disk/by-path/pci-0\nI:1234\n"
                             "E:ID_FS_LABEL=STICK\nE:=x\nG:systemd\nE:EVIL=$(reboot);`x` \\x27\n"
                             "L:0\nE:EMPTY=\n";
    _cleanup_strv_free_ char **p = usbvm_udev_properties(uevent, db);
    assert_string_equal(usbvm_udev_property(p, "ID_FS_LABEL"), "STICK");
    assert_string_equal(usbvm_udev_property(p, "DEVLINKS"),
                        "/dev/disk/by-id/usb-SanDisk_X-0:0 /dev/disk/by-path/pci-0");
    assert_string_equal(usbvm_udev_property(p, "DEVTYPE"), "disk");
    assert_string_equal(usbvm_udev_property(p, "EVIL"), "$(reboot);`x` \\x27");
    assert_string_equal(usbvm_udev_property(p, "EMPTY"), "");
    assert_null(usbvm_udev_property(p, "MAJ"));
    assert_null(usbvm_udev_property(p, "I"));
    assert_null(usbvm_udev_property(p, "not a property"));
    assert_null(usbvm_udev_property(p, ""));

    /* No record (umockdev keeps every property in the uevent file): its DEVLINKS stands. */
    _cleanup_strv_free_ char **q = usbvm_udev_properties(uevent, NULL);
    assert_string_equal(usbvm_udev_property(q, "DEVLINKS"), "/dev/disk/by-id/umockdev");
    assert_string_equal(usbvm_udev_property(q, "ID_FS_LABEL"), "FROM_UEVENT");
    assert_null(usbvm_udev_properties(NULL, NULL));
}

/* Removes the files named (up to a NULL) from dir. */
static void remove_files(const char *dir, ...)
{
    va_list ap;
    va_start(ap, dir);
    for (const char *name; (name = va_arg(ap, const char *));) {
        _cleanup_free_ char *path = xasprintf("%s/%s", dir, name);
        assert_int_equal(unlink(path), 0);
    }
    va_end(ap);
}

static void expect_block(const UsbvmBlock *b, UsbvmBlockType type, const char *name,
                         const char *devnode, unsigned minor, uint64_t sectors)
{
    assert_int_equal(b->type, type);
    assert_string_equal(b->name, name);
    assert_string_equal(b->devnode, devnode);
    assert_int_equal(b->major, 259);
    assert_int_equal(b->minor, minor);
    assert_int_equal(b->size, sectors * 512);
}

/* A block device read from its sysfs directory alone (no testbed: a directory of files). */
static void test_block_read(void **state)
{
    _cleanup_free_ char *blk = xasprintf("%s/block", tmpdir);
    _cleanup_free_ char *disk = xasprintf("%s/sdz", blk);
    _cleanup_free_ char *part = xasprintf("%s/sdz1", disk);
    assert_int_equal(mkdir(blk, 0700), 0);
    assert_int_equal(mkdir(disk, 0700), 0);
    assert_int_equal(mkdir(part, 0700), 0);
    free(
        test_write_file(disk, "uevent",
                        "MAJOR=259\nMINOR=99990\nDEVNAME=sdz\nDEVTYPE=disk\n"
                        "DEVLINKS=/dev/disk/by-path/x /dev/disk/by-id/ata-Y /dev/disk/by-id/usb-Z\n"
                        "ID_FS_LABEL=my_stick\nID_FS_LABEL_ENC=my\\x20stick\n"));
    free(test_write_file(disk, "size", "2048\n"));
    free(test_write_file(disk, "removable", "1\n"));
    free(test_write_file(disk, "ro", "0\n"));
    /* No MAJOR/MINOR in its uevent: the "dev" attribute says. */
    free(test_write_file(part, "uevent",
                         "DEVNAME=/dev/loop7p1\nDEVTYPE=partition\nPARTN=1\n"
                         "ID_FS_TYPE=vfat\nID_FS_UUID=1A2B-3C4D\n"));
    free(test_write_file(part, "dev", "259:99991\n"));
    free(test_write_file(part, "size", "1024\n"));
    free(test_write_file(part, "ro", "1\n"));

    UsbvmBlock d, p;
    assert_int_equal(usbvm_block_read(disk, &d), 0);
    expect_block(&d, USBVM_BLOCK_DISK, "sdz", "/dev/sdz", 99990, 2048);
    assert_string_equal(d.by_id, "/dev/disk/by-id/usb-Z");
    assert_true(d.removable);
    assert_false(d.readonly);
    assert_string_equal(d.fs_label, "my stick");
    assert_null(d.fs_type);
    assert_null(d.parent);

    assert_int_equal(usbvm_block_read(part, &p), 0);
    expect_block(&p, USBVM_BLOCK_PARTITION, "sdz1", "/dev/loop7p1", 99991, 1024);
    assert_string_equal(p.parent, "sdz");
    assert_true(p.readonly);
    assert_string_equal(p.fs_type, "vfat");
    assert_string_equal(p.fs_uuid, "1A2B-3C4D");
    assert_null(p.by_id);
    usbvm_block_clear(&d);
    usbvm_block_clear(&p);

    /* Neither disk nor partition; gone (its files first, then its directory). */
    free(test_write_file(disk, "uevent", "DEVTYPE=usb_device\n"));
    assert_int_equal(usbvm_block_read(disk, &d), -EINVAL);
    remove_files(part, "uevent", "dev", "size", "ro", NULL);
    assert_int_equal(usbvm_block_read(part, &p), -ENOENT);
    assert_int_equal(rmdir(part), 0);
    assert_int_equal(usbvm_block_read(part, &p), -ENOENT);
    remove_files(disk, "uevent", "size", "removable", "ro", NULL);
    assert_int_equal(rmdir(disk), 0);
    assert_int_equal(rmdir(blk), 0);
}

static void test_blocks_sort(void **state)
{
    UsbvmBlock b[5] = {
        { .type = USBVM_BLOCK_PARTITION, .name = "sdb10", .parent = "sdb" },
        { .type = USBVM_BLOCK_PARTITION, .name = "sdaa1", .parent = "sdaa" },
        { .type = USBVM_BLOCK_DISK, .name = "sdaa" },
        { .type = USBVM_BLOCK_PARTITION, .name = "sdb2", .parent = "sdb" },
        { .type = USBVM_BLOCK_DISK, .name = "sdb" },
    };
    usbvm_blocks_sort(b, ELEMENTSOF(b));
    static const char *const want[] = { "sdb", "sdb2", "sdb10", "sdaa", "sdaa1" };
    for (size_t i = 0; i < ELEMENTSOF(want); i++)
        assert_string_equal(b[i].name, want[i]);
}

static void test_descriptors(void **state)
{
    _cleanup_(usbvm_usbdesc_freep) UsbvmUsbDesc *u = NULL;
    UsbvmError err = { 0 };
    int r = usbvm_usbdesc_read(1, 6, &u, &err); /* the keyboard */
    if (r < 0)
        fail_msg("usbdesc: %s", err.message);
    assert_int_equal(u->vendor_id, 0x046d);
    assert_int_equal(u->product_id, 0xc31c);
    assert_int_equal(u->bcd_usb, 0x0110);
    assert_int_equal(u->max_packet_size0, 8);
    assert_int_equal(u->config_value, 1);
    assert_int_equal(u->config_attributes, 0xa0);
    assert_int_equal(u->max_power_ma, 90);
    assert_int_equal(u->n_altsettings, 2);
    assert_int_equal(u->altsettings[0].cls, 3);
    assert_int_equal(u->altsettings[0].protocol, 1);
    assert_int_equal(u->altsettings[1].n_endpoints, 1);
    assert_int_equal(u->altsettings[1].endpoints[0].address, 0x82);
    assert_string_equal(usbvm_usbdesc_transfer_type(u->altsettings[1].endpoints[0].attributes),
                        "interrupt");
    assert_int_equal(u->altsettings[1].endpoints[0].interval, 255);

    UsbvmUsbDesc *keep = (UsbvmUsbDesc *)0x1;
    assert_int_equal(usbvm_usbdesc_read(9, 99, &keep, &err), -ENODEV);
    assert_int_equal(err.kind, USBVM_E_NOTFOUND);
    assert_ptr_equal(keep, (UsbvmUsbDesc *)0x1);
}

/* The raw parser: every configuration, duplicates kept, descriptor order; malformed blobs
 * are refused so that the caller falls back to sysfs. */
static void test_parse_interfaces(void **state)
{
    static const uint8_t two_configs[] = {
        18, 1,    0x00, 0x02, 0, 0,    0,    64,   0x34, 0x12, 0x78, 0x56, 0, 1, 0, 0, 0,
        2,                                             /* device */
        9,  2,    32,   0,    2, 1,    0,    0x80, 50, /* configuration 1, two interfaces */
        9,  4,    1,    0,    0, 0x0e, 0x01, 0x00, 0,  /* interface 1 first: the order is kept */
        9,  4,    0,    0,    0, 0x0e, 0x02, 0x00, 0,    7,    5,    0x81, 1, 0, 2, 1, /* with an
                                                                                          endpoint
                                                                                        */
        9,  4,    0,    1,    0, 0x0e, 0x02, 0x00, 0,  /* a duplicate class, other alt */
        5,  0x24, 1,    2,    3,                       /* class-specific, skipped */
        9,  2,    18,   0,    1, 2,    0,    0x80, 50, /* configuration 2 */
        9,  4,    0,    0,    0, 0xff, 0x00, 0x00, 0,
    };
    UsbvmInterface *ifs = NULL;
    size_t n = 0;
    assert_int_equal(usbvm_usbdesc_parse_interfaces(two_configs, sizeof(two_configs), &ifs, &n), 0);
    assert_int_equal(n, 4);
    static const uint8_t want[][3] = {
        { 1, 0, 0x01 }, { 0, 0, 0x02 }, { 0, 1, 0x02 }, { 0, 0, 0 }
    };
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(ifs[i].number, want[i][0]);
        assert_int_equal(ifs[i].alt, want[i][1]);
        assert_int_equal(ifs[i].subclass, want[i][2]);
        assert_null(ifs[i].driver);
    }
    assert_int_equal(ifs[3].cls, 0xff);
    free(ifs);

    uint8_t bad[sizeof(two_configs)];
    memcpy(bad, two_configs, sizeof(bad));
    bad[18] = 0; /* a zero-length descriptor would loop forever */
    assert_int_equal(usbvm_usbdesc_parse_interfaces(bad, sizeof(bad), &ifs, &n), -EBADMSG);
    assert_int_equal(usbvm_usbdesc_parse_interfaces(two_configs, sizeof(two_configs) - 1, &ifs, &n),
                     -EBADMSG); /* truncated */
    assert_int_equal(usbvm_usbdesc_parse_interfaces(two_configs, 10, &ifs, &n), -EBADMSG);
    memcpy(bad, two_configs, sizeof(bad));
    bad[19] = 4; /* an interface outside any configuration */
    assert_int_equal(usbvm_usbdesc_parse_interfaces(bad, sizeof(bad), &ifs, &n), -EBADMSG);
}

static UsbvmDevice *device_at(const char *syspath)
{
    UsbvmDevice *d = NULL;
    UsbvmError err = { 0 };
    assert_int_equal(usbvm_device_new_from_syspath(syspath, host_cache, &d, &err), 0);
    return d;
}

/* A device USBGuard blocks (authorized=0) has no interface nodes in sysfs, yet
 * with-interface must see its interfaces; a device whose descriptors cannot be read falls
 * back to the nodes, and one whose uevent file lacks BUSNUM and DEVNUM to the attributes. */
static void test_interfaces_without_nodes(void **state)
{
    static const char blocked[] =
        "P: /devices/pci0000:00/0000:00:14.0/usb1/1-9\n"
        "E: DEVTYPE=usb_device\nE: SUBSYSTEM=usb\nE: BUSNUM=001\nE: DEVNUM=020\n"
        "A: authorized=0\nA: busnum=1\nA: devnum=20\n" /* ids, version: descriptor only */
        "H: descriptors=12010002000000408107675500010102030109022000010100806409040000020806"
        "50000705810200020007050202000200\n";
    static const char no_descriptors[] =
        "P: /devices/pci0000:00/0000:00:14.0/usb1/1-10\n"
        "E: DEVTYPE=usb_device\nE: SUBSYSTEM=usb\n"
        "A: authorized=1\nA: busnum=1\nA: devnum=21\nA: idVendor=046d\nA: idProduct=c31c\n"
        "A: bDeviceClass=00\nA: version= 1.10\n\n"
        "P: /devices/pci0000:00/0000:00:14.0/usb1/1-10/1-10:1.0\n"
        "E: DEVTYPE=usb_interface\nE: SUBSYSTEM=usb\nE: DRIVER=usbhid\n"
        "A: bInterfaceNumber=00\nA: bAlternateSetting= 0\nA: bInterfaceClass=03\n"
        "A: bInterfaceSubClass=01\nA: bInterfaceProtocol=01\n"
        "L: driver=../../../../../bus/usb/drivers/usbhid\n";
    GError *error = NULL;
    assert_true(umockdev_testbed_add_from_string(testbed, blocked, &error));
    assert_true(umockdev_testbed_add_from_string(testbed, no_descriptors, &error));

    _cleanup_(usbvm_device_freep) UsbvmDevice *b =
        device_at("/sys/devices/pci0000:00/0000:00:14.0/usb1/1-9");
    assert_false(b->authorized);
    assert_int_equal(b->vendor_id, 0x0781);
    assert_int_equal(b->product_id, 0x5567);
    assert_int_equal(b->bcd_usb, 0x0200);
    assert_int_equal(b->bcd_device, 0x0100);
    assert_true(b->described); /* not authorized: no interface node, all from descriptors */
    assert_int_equal(b->n_interfaces, 1);
    assert_int_equal(b->interfaces[0].cls, 0x08);
    assert_int_equal(b->interfaces[0].protocol, 0x50);
    assert_null(b->interfaces[0].driver);
    assert_true(usbvm_device_is_storage(b));

    _cleanup_(usbvm_device_freep) UsbvmDevice *k =
        device_at("/sys/devices/pci0000:00/0000:00:14.0/usb1/1-10");
    assert_int_equal(k->vendor_id, 0x046d); /* no descriptors: from the attributes */
    assert_int_equal(k->product_id, 0xc31c);
    assert_int_equal(k->bcd_usb, 0x0110);
    assert_false(k->described); /* the interface node is all there is */
    assert_int_equal(k->busnum, 1);
    assert_int_equal(k->devnum, 21);
    assert_int_equal(b->devnum, 20);
    assert_int_equal(k->n_interfaces, 1);
    assert_int_equal(k->interfaces[0].cls, 0x03);
    assert_string_equal(k->interfaces[0].driver, "usbhid");

    umockdev_testbed_remove_device(testbed,
                                   "/sys/devices/pci0000:00/0000:00:14.0/usb1/1-10/1-10:1.0");
    umockdev_testbed_remove_device(testbed, "/sys/devices/pci0000:00/0000:00:14.0/usb1/1-10");
    umockdev_testbed_remove_device(testbed, "/sys/devices/pci0000:00/0000:00:14.0/usb1/1-9");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_identity_alias),   cmocka_unit_test(test_enumerate),
        cmocka_unit_test(test_new_from_syspath), cmocka_unit_test(test_resolve),
        cmocka_unit_test(test_host_use),         cmocka_unit_test(test_decode),
        cmocka_unit_test(test_udev_properties),  cmocka_unit_test(test_block_read),
        cmocka_unit_test(test_blocks_sort),      cmocka_unit_test(test_descriptors),
        cmocka_unit_test(test_parse_interfaces), cmocka_unit_test(test_interfaces_without_nodes),
    };
    return cmocka_run_group_tests_name("device", tests, setup, teardown);
}
