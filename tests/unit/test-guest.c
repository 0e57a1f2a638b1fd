/* The guest's mounts (lib/guest.c) from virDomainGetGuestInfo's typed parameters, as libvirt
 * reports them for an agent: a device is found by its disk target, or by the serial the
 * guest's udev composes for each bus, and never by a serial that only contains it. */
#include "guest.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#define P(k, v)                                                                                    \
    {                                                                                              \
        .field = k, .type = VIR_TYPED_PARAM_STRING, .value.s = (char *)(v)                         \
    }

/* Field names are at most VIR_TYPED_PARAM_FIELD_LENGTH: filled by copy. */
static virTypedParameter params[] = {
    P("fs.0.mountpoint", "/"),          P("fs.0.fstype", "ext4"),
    P("fs.0.disk.0.alias", "vda"),      P("fs.1.mountpoint", "/mnt/virtio"),
    P("fs.1.disk.0.alias", "vdb"),      P("fs.1.disk.0.serial", "DISK0001"),
    P("fs.2.mountpoint", "/mnt/usb"),   P("fs.2.disk.0.serial", "QEMU_QEMU_HARDDISK_STICK7-0:0"),
    P("fs.3.mountpoint", "/mnt/scsi"),  P("fs.3.disk.0.serial", "0QEMU_QEMU_HARDDISK_SCSI_1"),
    P("fs.4.mountpoint", "/mnt/again"), P("fs.4.disk.0.alias", "vdb"),
    P("fs.5.mountpoint", "/mnt/long"),  P("fs.5.disk.0.serial", "ABCDEFGHIJKLMNOPQRST"),
};

static void test_map(void **state)
{
    UsbvmGuestInfo gi = { 0 };
    usbvm_guest_info_from_params(params, ELEMENTSOF(params), &gi);
    assert_true(gi.known);
    assert_int_equal(gi.n_fs, 6);

    size_t n;
    char **v = usbvm_guest_mounts_of(&gi, "vdb", "DISK0001", &n);
    assert_int_equal(n, 2);
    assert_string_equal(v[0], "/mnt/virtio");
    assert_string_equal(v[1], "/mnt/again");
    usbvm_strv_free(v);

    /* USB storage: "<vendor>_<model>_<serial>-0:0". */
    v = usbvm_guest_mounts_of(&gi, "sdz", "STICK7", &n);
    assert_int_equal(n, 1);
    assert_string_equal(v[0], "/mnt/usb");
    usbvm_strv_free(v);
    /* A serial inside another word is not the device. */
    v = usbvm_guest_mounts_of(&gi, NULL, "STICK", &n);
    assert_int_equal(n, 0);
    assert_null(v);
    v = usbvm_guest_mounts_of(&gi, NULL, "TICK7", &n);
    assert_int_equal(n, 0);

    /* SCSI, with udev's '_' for the space. */
    v = usbvm_guest_mounts_of(&gi, NULL, "SCSI 1", &n);
    assert_int_equal(n, 1);
    assert_string_equal(v[0], "/mnt/scsi");
    usbvm_strv_free(v);

    /* virtio-blk carries 20 bytes of a longer serial. */
    v = usbvm_guest_mounts_of(&gi, NULL, "ABCDEFGHIJKLMNOPQRSTUVWX", &n);
    assert_int_equal(n, 1);
    usbvm_strv_free(v);

    /* Nothing mounted from a disk the guest does not list. */
    v = usbvm_guest_mounts_of(&gi, "vdc", "OTHER", &n);
    assert_int_equal(n, 0);
    usbvm_guest_info_clear(&gi);
}

static void test_unknown(void **state)
{
    /* An agent that did not answer: no mounts, whatever the key. */
    UsbvmGuestInfo gi = { .known = false };
    size_t n = 7;
    assert_null(usbvm_guest_mounts_of(&gi, "vdb", "DISK0001", &n));
    assert_int_equal(n, 0);
}

static void test_hostile_keys(void **state)
{
    /* Keys libvirt never sends are ignored, not trusted. */
    virTypedParameter bad[] = {
        P("fs.x.mountpoint", "/a"),
        P("fs.99999.mountpoint", "/b"),
        P("fs.1.disk.x.alias", "vdb"),
        P("fs.1.disk.999.alias", "vdb"),
        P("fs.0.mountpoint", "/c\n\x1b[31m"),
        { .field = "fs.0.disk.0.alias", .type = VIR_TYPED_PARAM_UINT, .value.ui = 3 },
    };
    UsbvmGuestInfo gi = { 0 };
    usbvm_guest_info_from_params(bad, ELEMENTSOF(bad), &gi);
    assert_int_equal(gi.n_fs, 1);
    assert_int_equal(gi.fs[0].n_disks, 0);
    usbvm_guest_info_clear(&gi);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_map),
        cmocka_unit_test(test_unknown),
        cmocka_unit_test(test_hostile_keys),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
