/* What usbvm takes for the leftovers of an attach libvirtd did not finish (lib/virt-orphan.c):
 * QEMU's query-named-block-nodes answer and a live domain XML, as libvirt 9 and QEMU 7.2 write
 * them, with real block nodes (mknod) for the files. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "virt-internal.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
    return "verify_asan_link_order=0";
}

static char dir[] = "/tmp/usbvm-test-orphan-XXXXXX";
static char stick[PATH_MAX], alias[PATH_MAX], other[PATH_MAX];

static int setup(void **state)
{
    (void)state;
    assert_non_null(mkdtemp(dir));
    snprintf(stick, sizeof(stick), "%s/sdb", dir);
    snprintf(alias, sizeof(alias), "%s/usb-SanDisk_Cruzer_S1-0:0", dir); /* the by-id name */
    snprintf(other, sizeof(other), "%s/sdc", dir);
    assert_int_equal(mknod(stick, S_IFBLK | 0600, makedev(8, 16)), 0);
    assert_int_equal(mknod(alias, S_IFBLK | 0600, makedev(8, 16)), 0);
    assert_int_equal(mknod(other, S_IFBLK | 0600, makedev(8, 32)), 0);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    unlink(stick);
    unlink(alias);
    unlink(other);
    rmdir(dir);
    return 0;
}

/* One node of QEMU's flat list. */
static char *node(const char *name, const char *drv, const char *file)
{
    return xasprintf("{\"node-name\":\"%s\",\"drv\":\"%s\",\"file\":\"%s\",\"ro\":false,"
                     "\"encrypted\":false,\"detect_zeroes\":\"off\",\"bps\":0,\"iops\":0}",
                     name, drv, file);
}

/* The live XML of a domain with the root disk (index 1) and, when attached_index is not 0,
 * the stick as a virtio disk with that index. */
static char *live_xml(unsigned attached_index)
{
    _cleanup_free_ char *stick_disk =
        attached_index ? xasprintf("<disk type='block' device='disk'><driver name='qemu' "
                                   "type='raw'/><source dev='%s' index='%u'/><backingStore/>"
                                   "<target dev='vdb' bus='virtio'/><alias "
                                   "name='ua-usbvm-0123456789abcdef'/></disk>",
                                   alias, attached_index)
                       : xstrdup("");
    return xasprintf("<domain type='qemu' id='3'><name>vm</name><devices>"
                     "<disk type='file' device='disk'><driver name='qemu' type='qcow2'/>"
                     "<source file='/var/lib/libvirt/images/vm.qcow2' index='2'/>"
                     "<backingStore type='file' index='1'><format type='raw'/>"
                     "<source file='/var/lib/libvirt/images/base.img'/></backingStore>"
                     "<target dev='vda' bus='virtio'/></disk>%s</devices></domain>",
                     stick_disk);
}

static char **pick(const char *reply, const char *xml, const char *source)
{
    char **v = NULL;
    UsbvmError err = { 0 };
    assert_int_equal(usbvm_orphan_nodes(reply, xml, source, &v, &err), 0);
    return v;
}

static size_t count(char **v)
{
    size_t n = 0;
    while (v && v[n])
        n++;
    return n;
}

/* The kill between blockdev-add and device_add: nodes 3 on the stick, in no XML. Both count,
 * format first; found by the by-id name QEMU was given and by the node's own name alike. */
static void test_leftover_nodes_of_the_stick(void **state)
{
    (void)state;
    _cleanup_free_ char *a = node("libvirt-1-storage", "file", "/var/lib/libvirt/images/base.img");
    _cleanup_free_ char *b = node("libvirt-1-format", "raw", "/var/lib/libvirt/images/base.img");
    _cleanup_free_ char *c = node("libvirt-3-storage", "host_device", alias);
    _cleanup_free_ char *d = node("libvirt-3-format", "raw", alias);
    _cleanup_free_ char *reply =
        xasprintf("{\"return\":[%s,%s,%s,%s],\"id\":\"libvirt-42\"}", a, b, c, d);
    _cleanup_free_ char *xml = live_xml(0);
    char **v = pick(reply, xml, stick);
    assert_int_equal(count(v), 2);
    assert_string_equal(v[0], "libvirt-3-format");
    assert_string_equal(v[1], "libvirt-3-storage");
    usbvm_strv_free(v);
    v = pick(reply, xml, alias);
    assert_int_equal(count(v), 2);
    usbvm_strv_free(v);
}

/* Nodes a disk of the live XML uses (by its source index) are never picked, nor nodes on
 * another file, nor nodes whose names are not libvirt's. */
static void test_keeps_what_is_in_use_or_not_ours(void **state)
{
    (void)state;
    _cleanup_free_ char *a = node("libvirt-3-storage", "host_device", alias);
    _cleanup_free_ char *b = node("libvirt-3-format", "raw", alias);
    _cleanup_free_ char *c = node("libvirt-4-storage", "host_device", other);
    _cleanup_free_ char *d = node("drive-stick", "raw", stick);
    _cleanup_free_ char *e = node("libvirt-5-storagex", "host_device", stick);
    _cleanup_free_ char *f = node("#block123", "raw", stick);
    _cleanup_free_ char *reply = xasprintf("{\"return\":[%s,%s,%s,%s,%s,%s]}", a, b, c, d, e, f);
    _cleanup_free_ char *attached = live_xml(3);
    char **v = pick(reply, attached, stick);
    assert_null(v);
    /* Without the disk in the XML, only index 3 on the stick qualifies. */
    _cleanup_free_ char *bare = live_xml(0);
    v = pick(reply, bare, stick);
    assert_int_equal(count(v), 2);
    assert_string_equal(v[0], "libvirt-3-format");
    assert_string_equal(v[1], "libvirt-3-storage");
    usbvm_strv_free(v);
    /* The backing store's index (1) counts as in use too. */
    _cleanup_free_ char *g = node("libvirt-1-storage", "host_device", stick);
    _cleanup_free_ char *reply2 = xasprintf("{\"return\":[%s]}", g);
    v = pick(reply2, bare, stick);
    assert_null(v);
}

/* An answer that is not QEMU's list is an error, not "nothing left over". */
static void test_unreadable_answer(void **state)
{
    (void)state;
    _cleanup_free_ char *xml = live_xml(0);
    char **v = NULL;
    UsbvmError err = { 0 };
    assert_true(
        usbvm_orphan_nodes("{\"error\":{\"class\":\"GenericError\"}}", xml, stick, &v, &err) < 0);
    assert_null(v);
    assert_true(usbvm_orphan_nodes("not json", xml, stick, &v, &err) < 0);
    assert_true(usbvm_orphan_nodes("{\"return\":[]}", "<domain", stick, &v, &err) < 0);
}

/* QEMU's peripherals by id: the leftover device is found by its exact alias only. */
static void test_qom_child(void **state)
{
    (void)state;
    const char *reply = "{\"return\":[{\"name\":\"type\",\"type\":\"string\"},"
                        "{\"name\":\"ua-usbvm-41198d0d22ff04c2\",\"type\":\"child<usb-storage>\"},"
                        "{\"name\":\"usb\",\"type\":\"child<qemu-xhci>\"}],\"id\":\"libvirt-11\"}";
    assert_true(usbvm_qom_has_child(reply, "ua-usbvm-41198d0d22ff04c2"));
    assert_false(usbvm_qom_has_child(reply, "ua-usbvm-41198d0d22ff04c"));
    assert_false(usbvm_qom_has_child(reply, "ua-usbvm-0000000000000000"));
    assert_false(usbvm_qom_has_child("{\"error\":{}}", "usb"));
    assert_false(usbvm_qom_has_child(NULL, "usb"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_leftover_nodes_of_the_stick),
        cmocka_unit_test(test_keeps_what_is_in_use_or_not_ours),
        cmocka_unit_test(test_unreadable_answer),
        cmocka_unit_test(test_qom_child),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
