/* Identity collisions (lib/device-clone.c): devices that report one vendor:product:serial are
 * marked, with the other devices' ports, and the reason reads as one escaped sentence. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "device.h"

#include <string.h>

/* umockdev preloads itself; an ASan build must not insist on coming first. */
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
    return "verify_asan_link_order=0";
}

static UsbvmDevice *dev(const char *port, uint16_t vid, uint16_t pid, const char *serial)
{
    UsbvmDevice *d = xcalloc(1, sizeof(*d));
    d->port = xstrdup(port);
    d->vendor_id = vid;
    d->product_id = pid;
    d->serial = serial ? xstrdup(serial) : NULL;
    d->identity = usbvm_identity_for(vid, pid, serial, port);
    d->alias = usbvm_alias_for_identity(d->identity);
    return d;
}

static void test_clones_marked(void **state)
{
    UsbvmDevice *devs[] = {
        dev("1-1", 0x0781, 0x5567, "4C530001"), dev("1-2", 0x0781, 0x5567, "CLONE\n1"),
        dev("1-3", 0x0781, 0x5567, NULL),       dev("1-4", 0x0781, 0x5567, "CLONE\n1"),
        dev("1-5", 0x0781, 0x5567, NULL),       dev("2-1", 0x0781, 0x5568, "CLONE\n1"),
        dev("2-2", 0x0781, 0x5567, "CLONE\n1"),
    };
    assert_int_equal(usbvm_devices_mark_ambiguous(devs, ELEMENTSOF(devs)), 3);
    assert_false(usbvm_device_is_ambiguous(devs[0]));
    /* No serial: the identity holds the port, so two such devices never collide. */
    assert_false(usbvm_device_is_ambiguous(devs[2]));
    assert_false(usbvm_device_is_ambiguous(devs[4]));
    /* Another product id is another identity. */
    assert_false(usbvm_device_is_ambiguous(devs[5]));
    assert_true(usbvm_device_is_ambiguous(devs[1]));
    assert_string_equal(devs[1]->same_identity[0], "1-4");
    assert_string_equal(devs[1]->same_identity[1], "2-2");
    assert_null(devs[1]->same_identity[2]);
    assert_string_equal(devs[3]->same_identity[0], "1-2");
    assert_null(usbvm_device_ambiguity(devs[0]));
    _cleanup_free_ char *why = usbvm_device_ambiguity(devs[3]);
    assert_non_null(strstr(why, "0781:5567:CLONE\\n1 (vendor:product:serial) is also reported "
                                "by 1-2, 2-2"));
    assert_null(strchr(why, '\n'));
    assert_non_null(strstr(why, devs[3]->alias));

    /* The clone leaves: marking again clears the survivor. */
    UsbvmDevice *left[] = { devs[0], devs[1] };
    assert_int_equal(usbvm_devices_mark_ambiguous(left, 2), 0);
    assert_false(usbvm_device_is_ambiguous(devs[1]));
    assert_null(devs[1]->same_identity);
    for (size_t i = 0; i < ELEMENTSOF(devs); i++)
        usbvm_device_free(devs[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_clones_marked),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
