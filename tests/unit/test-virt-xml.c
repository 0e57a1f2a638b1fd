/* The libvirt layer without libvirtd: device XML builders against golden files, reading domain
 * devices from sample domain XML, ownership and matching, target choice, serial sanitising. */
#include "virt-internal.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

static const char sample_domain[] =
    "<domain type='qemu'><name>win10</name><devices>"
    "<controller type='usb' index='0' model='qemu-xhci'/>"
    "<controller type='scsi' index='0' model='virtio-scsi'/>"
    "<disk type='file' device='disk'><source file='/var/lib/x.qcow2'/>"
    "  <target dev='vda' bus='virtio'/><alias name='virtio-disk0'/></disk>"
    "<disk type='block' device='disk'><driver name='qemu' type='raw'/>"
    "  <source dev='/dev/disk/by-id/usb-Kingston-0:0'/><target dev='sda' bus='usb'/>"
    "  <readonly/><serial>E0D5 5EA5</serial><alias name='ua-usbvm-00000000000000aa'/></disk>"
    "<disk type='block' device='disk'><source dev='/dev/sdz'/><target dev='vdb' bus='virtio'/>"
    "  <alias name='virtio-disk1'/></disk>"
    "<hostdev mode='subsystem' type='usb' managed='no'><source>"
    "  <vendor id='0x0781'/><product id='0x5567'/><address bus='1' device='10'/></source>"
    "  <alias name='ua-usbvm-00000000000000bb'/><address type='usb' bus='0' port='2'/></hostdev>"
    "<hostdev mode='subsystem' type='usb'><source><vendor id='0x046d'/><product id='0xc31c'/>"
    "  </source><alias name='hostdev0'/></hostdev>"
    "<hostdev mode='subsystem' type='pci'><source><address domain='0' bus='1' slot='0' "
    "function='0'/></source><alias name='hostdev1'/></hostdev>"
    "</devices></domain>";

static void test_domdevs(void **state)
{
    UsbvmDomDevList l = { 0 };
    UsbvmError err = { 0 };
    assert_int_equal(usbvm_domdevs_from_xml("win10", sample_domain, &l, &err), 0);
    /* The file disk and the PCI hostdev are not USB-related. */
    assert_int_equal(l.n, 4);

    UsbvmDomDev *d = &l.items[0];
    assert_string_equal(d->domain, "win10");
    assert_int_equal(d->kind, USBVM_DOMDEV_DISK);
    assert_true(d->owned);
    assert_int_equal(d->mode, USBVM_MODE_USB_DISK);
    assert_string_equal(d->source, "/dev/disk/by-id/usb-Kingston-0:0");
    assert_string_equal(d->target, "sda");
    assert_string_equal(d->target_bus, "usb");
    assert_string_equal(d->serial, "E0D5 5EA5");
    assert_true(d->readonly);

    d = &l.items[1];
    assert_false(d->owned);
    assert_int_equal(d->mode, USBVM_MODE_VIRTIO);
    assert_string_equal(d->alias, "virtio-disk1");
    assert_false(d->readonly);

    d = &l.items[2];
    assert_int_equal(d->kind, USBVM_DOMDEV_HOSTDEV);
    assert_true(d->owned);
    assert_int_equal(d->mode, USBVM_MODE_USB);
    assert_int_equal(d->vendor_id, 0x0781);
    assert_int_equal(d->product_id, 0x5567);
    /* The host address, not the guest's <address type='usb'>. */
    assert_int_equal(d->bus, 1);
    assert_int_equal(d->device, 10);

    d = &l.items[3];
    assert_false(d->owned);
    assert_string_equal(d->alias, "hostdev0");
    assert_int_equal(d->bus, 0);
    assert_int_equal(d->device, 0);

    UsbvmDomDevList *heap = xcalloc(1, sizeof(*heap));
    *heap = l;
    usbvm_domdev_list_free(heap);
}

static void test_domdevs_bad_xml(void **state)
{
    UsbvmDomDevList l = { 0 };
    UsbvmError err = { 0 };
    assert_true(usbvm_domdevs_from_xml("x", "<domain><devices>", &l, &err) < 0);
    assert_non_null(strstr(err.message, "cannot parse"));
    assert_int_equal(l.n, 0);
}

static void test_dominfo(void **state)
{
    UsbvmDomInfo info = { 0 };
    UsbvmError err = { 0 };
    assert_int_equal(usbvm_dominfo_from_xml(sample_domain, &info, &err), 0);
    assert_string_equal(info.name, "win10");
    assert_true(info.usb_controller);
    assert_true(info.virtio_scsi);
    assert_true(usbvm_strv_contains(info.targets, "vda"));
    assert_true(usbvm_strv_contains(info.targets, "vdb"));
    assert_true(usbvm_strv_contains(info.targets, "sda"));
    usbvm_dominfo_clear(&info);

    assert_int_equal(usbvm_dominfo_from_xml("<domain><devices><controller type='usb' "
                                            "model='none'/></devices></domain>",
                                            &info, &err),
                     0);
    assert_false(info.usb_controller);
    assert_false(info.virtio_scsi);
    usbvm_dominfo_clear(&info);
}

static void test_next_target(void **state)
{
    char *used[] = { "vda", "vdb", "sda", NULL };
    char *t = usbvm_virt_next_target("vd", used);
    assert_string_equal(t, "vdc");
    free(t);
    t = usbvm_virt_next_target("sd", used);
    assert_string_equal(t, "sdb");
    free(t);
    t = usbvm_virt_next_target("vd", NULL);
    assert_string_equal(t, "vda");
    free(t);

    char **all = NULL;
    for (char c = 'a'; c <= 'z'; c++) {
        char name[4] = { 'v', 'd', c, 0 };
        all = usbvm_strv_push(all, name);
    }
    t = usbvm_virt_next_target("vd", all);
    assert_string_equal(t, "vdaa");
    free(t);
    all = usbvm_strv_push(all, "vdaa");
    t = usbvm_virt_next_target("vd", all);
    assert_string_equal(t, "vdab");
    free(t);
    usbvm_strv_free(all);
}

static void test_serial(void **state)
{
    char *s = usbvm_virt_serial("4C530001230615117092");
    assert_string_equal(s, "4C530001230615117092");
    free(s);
    /* libvirt's pattern [A-Za-z0-9_.+- ], 20 characters, one '_' per UTF-8 sequence. */
    s = usbvm_virt_serial("a'b\"<c>&d\xc3\xa9"
                          "e");
    assert_string_equal(s, "a_b__c__d_e");
    free(s);
    s = usbvm_virt_serial("0123456789ABCDEF0123456789");
    assert_string_equal(s, "0123456789ABCDEF0123");
    free(s);
    s = usbvm_virt_serial("  padded  ");
    assert_string_equal(s, "padded");
    free(s);
    assert_null(usbvm_virt_serial("<<>>"));
    assert_null(usbvm_virt_serial("   "));
    assert_null(usbvm_virt_serial(""));
    assert_null(usbvm_virt_serial(NULL));
}

/* The device of the golden files (tests/golden): 0781:5567 serial GOLD0001 on bus 3 device 10. */
static UsbvmBlock golden_blocks[] = {
    { .type = USBVM_BLOCK_DISK, .name = "sdx", .devnode = "@LOOP@", .size = 16 << 20 },
    { .type = USBVM_BLOCK_PARTITION, .name = "sdx1", .devnode = "/dev/sdx1", .parent = "sdx" },
};
static UsbvmDevice golden_device = {
    .port = "3-1",
    .busnum = 3,
    .devnum = 10,
    .vendor_id = 0x0781,
    .product_id = 0x5567,
    .serial = "GOLD0001",
    .blocks = golden_blocks,
    .n_blocks = 2,
    .identity = "0781:5567:GOLD0001",
    .alias = "ua-usbvm-d04e8b90105d5421",
};

static char *golden(const char *name)
{
    _cleanup_free_ char *path = xasprintf("%s/tests/golden/%s.xml", USBVM_SRCDIR, name);
    char *s = NULL;
    size_t n;
    assert_int_equal(usbvm_read_file(path, &s, &n), 0);
    return s;
}

static void check_golden(const char *name, UsbvmAttachSpec spec, const char *domain_xml)
{
    _cleanup_free_ char *want = golden(name);
    _cleanup_free_ char *got = NULL;
    UsbvmError err = { 0 };
    assert_int_equal(usbvm_virt_device_xml(&golden_device, &spec, domain_xml, &got, &err), 0);
    assert_string_equal(got, want);
}

static void test_golden(void **state)
{
    check_golden("hostdev-usb", (UsbvmAttachSpec){ .mode = USBVM_MODE_USB }, NULL);
    check_golden("hostdev-usb-persistent",
                 (UsbvmAttachSpec){ .mode = USBVM_MODE_USB, .persistent = true }, NULL);
    check_golden("disk-virtio", (UsbvmAttachSpec){ .mode = USBVM_MODE_VIRTIO }, NULL);
    check_golden(
        "disk-virtio-readonly",
        (UsbvmAttachSpec){ .mode = USBVM_MODE_VIRTIO, .readonly = true, .cache = "writeback" },
        NULL);
    check_golden("disk-scsi", (UsbvmAttachSpec){ .mode = USBVM_MODE_SCSI }, NULL);
    check_golden("disk-usb", (UsbvmAttachSpec){ .mode = USBVM_MODE_USB_DISK }, NULL);
}

static void test_target_from_domain(void **state)
{
    UsbvmAttachSpec spec = { .mode = USBVM_MODE_VIRTIO };
    _cleanup_free_ char *xml = NULL;
    UsbvmError err = { 0 };
    assert_int_equal(usbvm_virt_device_xml(&golden_device, &spec, sample_domain, &xml, &err), 0);
    assert_non_null(strstr(xml, "<target dev=\"vdc\" bus=\"virtio\"/>"));
    free(xml);
    spec.mode = USBVM_MODE_SCSI;
    assert_int_equal(usbvm_virt_device_xml(&golden_device, &spec, sample_domain, &xml, &err), 0);
    assert_non_null(strstr(xml, "<target dev=\"sdb\" bus=\"scsi\"/>"));
}

/* SCSI disks get an explicit drive address: the next free unit on the domain's virtio-scsi
 * controller, so libvirt never adds a controller (and takes a PCI slot) per seven disks. */
static void test_scsi_address(void **state)
{
    static const char with_units[] =
        "<domain><name>d</name><devices>"
        "<controller type='scsi' index='0' model='lsilogic'/>"
        "<controller type='scsi' index='2' model='virtio-scsi'/>"
        "<disk type='block'><target dev='sda' bus='scsi'/>"
        "  <address type='drive' controller='2' bus='0' target='0' unit='0'/></disk>"
        "<disk type='block'><target dev='sdb' bus='scsi'/>"
        "  <address type='drive' controller='2' bus='0' target='0' unit='1'/></disk>"
        "<disk type='block'><target dev='sdc' bus='scsi'/>"
        "  <address type='drive' controller='0' bus='0' target='0' unit='2'/></disk>"
        "</devices></domain>";
    static const char without[] = "<domain><name>d</name><devices>"
                                  "<controller type='scsi' index='0' model='lsilogic'/>"
                                  "</devices></domain>";
    UsbvmAttachSpec spec = { .mode = USBVM_MODE_SCSI };
    UsbvmError err = { 0 };
    UsbvmDomInfo info = { 0 };
    _cleanup_free_ char *xml = NULL;

    assert_int_equal(usbvm_dominfo_from_xml(with_units, &info, &err), 0);
    assert_true(info.virtio_scsi);
    assert_int_equal(info.scsi_index, 2);
    usbvm_dominfo_clear(&info);
    assert_int_equal(usbvm_virt_device_xml(&golden_device, &spec, with_units, &xml, &err), 0);
    assert_non_null(strstr(
        xml, "<address type=\"drive\" controller=\"2\" bus=\"0\" target=\"0\" unit=\"2\"/>"));
    free(xml);

    /* No virtio-scsi yet: the one usbvm adds gets the next index. */
    assert_int_equal(usbvm_dominfo_from_xml(without, &info, &err), 0);
    assert_false(info.virtio_scsi);
    assert_int_equal(info.scsi_index, 1);
    usbvm_dominfo_clear(&info);
    assert_int_equal(usbvm_virt_device_xml(&golden_device, &spec, without, &xml, &err), 0);
    assert_non_null(strstr(xml, "controller=\"1\" bus=\"0\" target=\"0\" unit=\"0\""));
    _cleanup_free_ char *ctl = usbvm_virt_scsi_controller_xml(1);
    assert_non_null(strstr(ctl, "index=\"1\""));
}

/* A domain as an attach left it (lib/virt-attach.c's view): the disk adds the target name and
 * SCSI unit its XML took, so that the next attach's XML takes the next ones, as it would from
 * the domain's own XML. */
static void test_dominfo_add_disk(void **state)
{
    static const char dom[] = "<domain><name>d</name><devices>"
                              "<controller type='scsi' index='0' model='virtio-scsi'/>"
                              "</devices></domain>";
    UsbvmAttachSpec spec = { .mode = USBVM_MODE_SCSI };
    UsbvmError err = { 0 };
    UsbvmDomInfo info = { 0 };
    assert_int_equal(usbvm_dominfo_from_xml(dom, &info, &err), 0);
    for (int i = 0; i < 9; i++) {
        _cleanup_free_ char *xml = NULL;
        assert_int_equal(usbvm_virt_device_xml_info(&golden_device, &spec, &info, &xml, &err), 0);
        char want[96];
        snprintf(want, sizeof(want), "controller=\"0\" bus=\"0\" target=\"0\" unit=\"%d\"", i);
        assert_non_null(strstr(xml, want));
        snprintf(want, sizeof(want), "<target dev=\"sd%c\" bus=\"scsi\"/>", 'a' + i);
        assert_non_null(strstr(xml, want));
        usbvm_dominfo_add_disk(&info, spec.mode);
        snprintf(want, sizeof(want), "sd%c", 'a' + i);
        assert_true(usbvm_strv_contains(info.targets, want));
        snprintf(want, sizeof(want), "0:%d", i);
        assert_true(usbvm_strv_contains(info.scsi_units, want));
    }
    /* A USB hostdev takes no disk name. */
    usbvm_dominfo_add_disk(&info, USBVM_MODE_USB);
    assert_int_equal(usbvm_strv_length(info.targets), 9);
    assert_int_equal(usbvm_strv_length(info.scsi_units), 9);
    /* virtio takes the next vdX, after the domain's own. */
    usbvm_dominfo_add_disk(&info, USBVM_MODE_VIRTIO);
    assert_true(usbvm_strv_contains(info.targets, "vda"));
    usbvm_dominfo_clear(&info);
}

static void test_xml_errors(void **state)
{
    UsbvmError err = { 0 };
    char *xml = NULL;
    UsbvmDevice nodisk = golden_device;
    nodisk.n_blocks = 0;
    UsbvmAttachSpec spec = { .mode = USBVM_MODE_USB_DISK };
    assert_true(usbvm_virt_device_xml(&nodisk, &spec, NULL, &xml, &err) < 0);
    assert_int_equal(err.kind, USBVM_E_REFUSED);
    assert_non_null(strstr(err.message, "--mode usb"));
    assert_null(xml);

    UsbvmDevice noalias = golden_device;
    noalias.alias = "hostdev0";
    assert_true(usbvm_virt_device_xml(&noalias, &spec, NULL, &xml, &err) < 0);

    spec.cache = "bogus";
    assert_true(usbvm_virt_device_xml(&golden_device, &spec, NULL, &xml, &err) < 0);
    assert_int_equal(err.kind, USBVM_E_USAGE);
}

static void test_hostile_serial_xml(void **state)
{
    UsbvmDevice d = golden_device;
    d.serial = "x]]></serial><evil/><serial>&amp;";
    UsbvmAttachSpec spec = { .mode = USBVM_MODE_VIRTIO };
    _cleanup_free_ char *xml = NULL;
    UsbvmError err = { 0 };
    assert_int_equal(usbvm_virt_device_xml(&d, &spec, NULL, &xml, &err), 0);
    assert_null(strstr(xml, "<evil"));
    assert_non_null(strstr(xml, "<serial>x_____serial__evil__</serial>"));
}

static UsbvmDomDev domdev(UsbvmDomDevKind kind, const char *alias)
{
    UsbvmDomDev dd = { .kind = kind, .alias = (char *)alias };
    dd.owned = alias && strncmp(alias, "ua-usbvm-", 9) == 0;
    return dd;
}

static void test_matches(void **state)
{
    /* Owned: by alias (and the "-N" suffix reserved for further LUNs). */
    UsbvmDomDev dd = domdev(USBVM_DOMDEV_DISK, "ua-usbvm-d04e8b90105d5421");
    assert_true(usbvm_domdev_matches(&dd, &golden_device));
    dd.alias = "ua-usbvm-d04e8b90105d5421-1";
    assert_true(usbvm_domdev_matches(&dd, &golden_device));
    dd.alias = "ua-usbvm-d04e8b90105d54210";
    assert_false(usbvm_domdev_matches(&dd, &golden_device));

    /* Not owned: a disk by source path. */
    dd = domdev(USBVM_DOMDEV_DISK, "virtio-disk1");
    dd.source = "/dev/sdx1";
    assert_true(usbvm_domdev_matches(&dd, &golden_device));
    dd.source = "/dev/sdy";
    assert_false(usbvm_domdev_matches(&dd, &golden_device));
    dd.source = NULL;
    assert_false(usbvm_domdev_matches(&dd, &golden_device));

    /* Not owned: a hostdev by ids, and by address when it has one. */
    dd = domdev(USBVM_DOMDEV_HOSTDEV, "hostdev0");
    dd.vendor_id = 0x0781;
    dd.product_id = 0x5567;
    assert_true(usbvm_domdev_matches(&dd, &golden_device));
    dd.bus = 3;
    dd.device = 10;
    assert_true(usbvm_domdev_matches(&dd, &golden_device));
    dd.device = 11;
    assert_false(usbvm_domdev_matches(&dd, &golden_device));
    dd.device = 10;
    dd.product_id = 0x5568;
    assert_false(usbvm_domdev_matches(&dd, &golden_device));

    assert_false(usbvm_domdev_matches(NULL, &golden_device));
}

static void test_state_names(void **state)
{
    assert_string_equal(usbvm_state_to_string(USBVM_STATE_ATTACHED), "attached");
    assert_string_equal(usbvm_state_to_string(USBVM_STATE_DETACHED), "detached");
    assert_string_equal(usbvm_state_to_string(USBVM_STATE_PENDING), "pending");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_domdevs),
        cmocka_unit_test(test_domdevs_bad_xml),
        cmocka_unit_test(test_dominfo),
        cmocka_unit_test(test_next_target),
        cmocka_unit_test(test_serial),
        cmocka_unit_test(test_golden),
        cmocka_unit_test(test_target_from_domain),
        cmocka_unit_test(test_scsi_address),
        cmocka_unit_test(test_dominfo_add_disk),
        cmocka_unit_test(test_xml_errors),
        cmocka_unit_test(test_hostile_serial_xml),
        cmocka_unit_test(test_matches),
        cmocka_unit_test(test_state_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
