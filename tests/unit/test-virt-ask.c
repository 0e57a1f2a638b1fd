/* Asking libvirt from a child process (lib/virt-ask.c), against libvirt's own test driver: a
 * node file with running domains whose disks and hostdevs carry hostile strings. No daemon is
 * involved, but libvirt, the fork and the pipe are real. The child's answer must equal what
 * the same question asked in this process returns, field by field, and an error must come
 * back as the child saw it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "virt.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* umockdev preloads itself; an ASan build must not insist on coming first. */
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
    return "verify_asan_link_order=0";
}

/* Two running domains. The serial holds markup, quotes, a shell substitution, U+202E and a
 * DEL; the source path a space and a quote. */
static const char node_xml[] =
    "<node>\n"
    "  <domain type='test'>\n"
    "    <name>win10 &amp; &quot;x&quot;</name>\n"
    "    <memory>1048576</memory>\n"
    "    <os><type>hvm</type></os>\n"
    "    <devices>\n"
    "      <disk type='block' device='disk'>\n"
    "        <source dev='/dev/disk/by-id/usb-A B&apos;C-0:0'/>\n"
    "        <target dev='sdb' bus='usb'/>\n"
    "        <serial>A&lt;B&gt;&amp;\"'$(touch PWNED)&#x202E;&#x7f;</serial>\n"
    "        <readonly/>\n"
    "        <alias name='ua-usbvm-0123456789abcdef'/>\n"
    "      </disk>\n"
    "      <hostdev mode='subsystem' type='usb'>\n"
    "        <source><vendor id='0x0781'/><product id='0x5567'/>"
    "<address bus='1' device='4'/></source>\n"
    "        <alias name='ua-usbvm-fedcba9876543210'/>\n"
    "      </hostdev>\n"
    "    </devices>\n"
    "  </domain>\n"
    "  <domain type='test'>\n"
    "    <name>other</name>\n"
    "    <memory>1048576</memory>\n"
    "    <os><type>hvm</type></os>\n"
    "    <devices>\n"
    "      <disk type='block' device='disk'>\n"
    "        <source dev='/dev/sdc'/>\n"
    "        <target dev='vdb' bus='virtio'/>\n"
    "        <alias name='ua-theirs'/>\n"
    "      </disk>\n"
    "    </devices>\n"
    "  </domain>\n"
    "</node>\n";

static char dir[] = "/tmp/usbvm-test-virt-ask-XXXXXX";
static char uri[sizeof(dir) + 64];

static int setup(void **state)
{
    if (!mkdtemp(dir))
        return -1;
    char path[sizeof(dir) + 16];
    snprintf(path, sizeof(path), "%s/node.xml", dir);
    FILE *f = fopen(path, "w");
    if (!f || fputs(node_xml, f) < 0 || fclose(f) != 0)
        return -1;
    snprintf(uri, sizeof(uri), "test://%s", path);
    return 0;
}

static int teardown(void **state)
{
    char path[sizeof(dir) + 16];
    snprintf(path, sizeof(path), "%s/node.xml", dir);
    unlink(path);
    rmdir(dir);
    return 0;
}

static void assert_same_str(const char *a, const char *b)
{
    if (!a || !b)
        assert_ptr_equal(a, b);
    else
        assert_string_equal(a, b);
}

static void assert_same_domdev(const UsbvmDomDev *a, const UsbvmDomDev *b)
{
    assert_same_str(a->domain, b->domain);
    assert_same_str(a->alias, b->alias);
    assert_int_equal(a->owned, b->owned);
    assert_int_equal(a->kind, b->kind);
    assert_int_equal(a->mode, b->mode);
    assert_int_equal(a->vendor_id, b->vendor_id);
    assert_int_equal(a->product_id, b->product_id);
    assert_int_equal(a->bus, b->bus);
    assert_int_equal(a->device, b->device);
    assert_same_str(a->source, b->source);
    assert_same_str(a->target, b->target);
    assert_same_str(a->target_bus, b->target_bus);
    assert_same_str(a->serial, b->serial);
    assert_int_equal(a->readonly, b->readonly);
}

/* The child's answer is the in-process answer, hostile strings byte for byte. */
static void test_answer_equals_in_process(void **state)
{
    UsbvmError err = { 0 };
    _cleanup_(virConnectClosep) virConnectPtr conn = NULL;
    assert_int_equal(usbvm_virt_open(uri, &conn, &err), 0);
    _cleanup_(usbvm_domdev_list_freep) UsbvmDomDevList *here = NULL;
    assert_int_equal(usbvm_virt_list_domdevs(conn, &here, &err), 0);
    assert_int_equal(here->n, 3);

    UsbvmVirtAsk ask;
    usbvm_virt_ask_start(uri, &ask);
    assert_true(ask.pid > 0);
    _cleanup_(usbvm_domdev_list_freep) UsbvmDomDevList *there = NULL;
    assert_int_equal(usbvm_virt_ask_finish(&ask, &there, &err), 0);
    /* Each open of the test driver lists its domains in an order of its own: match by alias. */
    assert_int_equal(there->n, here->n);
    for (size_t i = 0; i < here->n; i++) {
        const UsbvmDomDev *match = NULL;
        for (size_t k = 0; k < there->n && !match; k++)
            if (streq_ptr(there->items[k].alias, here->items[i].alias))
                match = &there->items[k];
        assert_non_null(match);
        assert_same_domdev(match, &here->items[i]);
    }

    /* The facts the test file put there, as they came through. */
    const UsbvmDomDev *disk = NULL, *hostdev = NULL;
    for (size_t i = 0; i < there->n; i++) {
        if (streq_ptr(there->items[i].alias, "ua-usbvm-0123456789abcdef"))
            disk = &there->items[i];
        if (streq_ptr(there->items[i].alias, "ua-usbvm-fedcba9876543210"))
            hostdev = &there->items[i];
    }
    assert_non_null(disk);
    assert_non_null(hostdev);
    assert_string_equal(disk->domain, "win10 & \"x\"");
    assert_string_equal(disk->serial, "A<B>&\"'$(touch PWNED)\u202e\x7f");
    assert_string_equal(disk->source, "/dev/disk/by-id/usb-A B'C-0:0");
    assert_true(disk->readonly && disk->owned);
    assert_int_equal(hostdev->kind, USBVM_DOMDEV_HOSTDEV);
    assert_int_equal(hostdev->vendor_id, 0x0781);
    assert_int_equal(hostdev->product_id, 0x5567);
    assert_int_equal(hostdev->bus, 1);
    assert_int_equal(hostdev->device, 4);
    /* The child was reaped. */
    assert_int_equal(waitpid(-1, NULL, WNOHANG), -1);
    assert_int_equal(errno, ECHILD);
}

/* A connection that fails comes back with the child's error, as this process would say it. */
static void test_error_as_the_child_saw_it(void **state)
{
    char bad[sizeof(dir) + 64];
    snprintf(bad, sizeof(bad), "test://%s/missing.xml", dir);
    UsbvmError here = { 0 }, there = { 0 };
    virConnectPtr conn = NULL;
    assert_true(usbvm_virt_open(bad, &conn, &here) < 0);

    UsbvmVirtAsk ask;
    usbvm_virt_ask_start(bad, &ask);
    UsbvmDomDevList *l = NULL;
    assert_true(usbvm_virt_ask_finish(&ask, &l, &there) < 0);
    assert_null(l);
    assert_int_equal(there.kind, here.kind);
    assert_int_equal(there.kind, USBVM_E_LIBVIRT);
    assert_string_equal(there.message, here.message);
}

/* Cancel kills and reaps the child; nothing is left behind. */
static void test_cancel_reaps(void **state)
{
    UsbvmVirtAsk ask;
    usbvm_virt_ask_start(uri, &ask);
    assert_true(ask.pid > 0);
    usbvm_virt_ask_cancel(&ask);
    assert_int_equal(ask.pid, -1);
    assert_int_equal(ask.fd, -1);
    assert_int_equal(waitpid(-1, NULL, WNOHANG), -1);
    assert_int_equal(errno, ECHILD);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_answer_equals_in_process),
        cmocka_unit_test(test_error_as_the_child_saw_it),
        cmocka_unit_test(test_cancel_reaps),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
