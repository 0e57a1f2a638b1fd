/* usbvm doctor's pure parts: /dev/kmsg records, which kernel lines are about which port and
 * what they mean, the kernel-log check over a file in kmsg format, a domain's hardware from its
 * XML and the verdicts on it, the udisks2 check, and finding "usbvm watch" among processes. */
#include "doctor.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "test-files.h"

static void test_kmsg_parse(void **state)
{
    static const char rec[] = "3,1234,5678901,-;usb 1-2: device descriptor read/64, error -71\n"
                              " SUBSYSTEM=usb\n DEVICE=c189:1\n";
    UsbvmKmsgRecord r;
    assert_int_equal(usbvm_kmsg_parse(rec, strlen(rec), &r), 0);
    assert_int_equal(r.level, 3);
    assert_int_equal(r.seq, 1234);
    assert_int_equal(r.usec, 5678901);
    assert_int_equal(r.msg_len, strlen("usb 1-2: device descriptor read/64, error -71"));
    assert_memory_equal(r.msg, "usb 1-2: device", 15);

    /* Facility bits above the level; extra fields after the flags (newer kernels). */
    static const char rec2[] = "14,7,100,-,caller=T1;hello";
    assert_int_equal(usbvm_kmsg_parse(rec2, strlen(rec2), &r), 0);
    assert_int_equal(r.level, 6);
    assert_int_equal(r.msg_len, 5);

    static const char *const bad[] = { "",        "x,1,2,-;m", "3,1,2;m",
                                       "3,1,2,-", "3,,2,-;m",  "99999999999999999999999,1,2,-;m" };
    for (size_t i = 0; i < ELEMENTSOF(bad); i++)
        assert_int_equal(usbvm_kmsg_parse(bad[i], strlen(bad[i]), &r), -EINVAL);
}

static UsbvmKmsgKind classify(const char *msg, const char *port)
{
    return usbvm_kmsg_classify(msg, strlen(msg), port);
}

static void test_kmsg_classify(void **state)
{
    /* The device, its interfaces, and its port on the root hub. */
    assert_int_equal(classify("usb 1-2: device descriptor read/64, error -71", "1-2"),
                     USBVM_KMSG_PROTOCOL);
    assert_int_equal(classify("usb 1-2: device not accepting address 5, error -71", "1-2"),
                     USBVM_KMSG_PROTOCOL);
    assert_int_equal(classify("usb usb1-port2: unable to enumerate USB device", "1-2"),
                     USBVM_KMSG_PROTOCOL);
    assert_int_equal(classify("usb usb1-port2: Cannot enable. Maybe the USB cable is bad?", "1-2"),
                     USBVM_KMSG_PROTOCOL);
    assert_int_equal(classify("usb usb1-port2: over-current condition", "1-2"),
                     USBVM_KMSG_OVERCURRENT);
    assert_int_equal(
        classify("usb 1-2: reset high-speed USB device number 4 using xhci_hcd", "1-2"),
        USBVM_KMSG_RESET);
    assert_int_equal(classify("usb 1-2: USB disconnect, device number 4", "1-2"),
                     USBVM_KMSG_DISCONNECT);
    assert_int_equal(classify("usb 1-2: new high-speed USB device number 4 using xhci_hcd", "1-2"),
                     USBVM_KMSG_INFO);
    assert_int_equal(classify("usb-storage 1-2:1.0: USB Mass Storage device detected", "1-2"),
                     USBVM_KMSG_INFO);
    assert_int_equal(classify("uas 1-2:1.0: uas_eh_abort_handler 0 uas-tag 1 inflight: CMD", "1-2"),
                     USBVM_KMSG_UAS);

    /* Behind a hub: port 4 of hub 1-2 is "1-2-port4"; the hub's own over-current counts. */
    assert_int_equal(classify("usb 1-2-port4: over-current condition", "1-2.4"),
                     USBVM_KMSG_OVERCURRENT);
    assert_int_equal(classify("hub 1-2:1.0: over-current condition", "1-2.4"),
                     USBVM_KMSG_HUB_OVERCURRENT);
    assert_int_equal(classify("hub 1-0:1.0: over-current condition on port 2", "1-2.4"),
                     USBVM_KMSG_HUB_OVERCURRENT);

    /* Other ports, and look-alike prefixes, are not this one. */
    assert_int_equal(classify("usb 1-20: device descriptor read/64, error -71", "1-2"),
                     USBVM_KMSG_NONE);
    assert_int_equal(classify("usb 1-2.4: device descriptor read/64, error -71", "1-2"),
                     USBVM_KMSG_NONE);
    assert_int_equal(classify("usb usb1-port20: over-current condition", "1-2"), USBVM_KMSG_NONE);
    assert_int_equal(classify("usb usb11-port2: over-current condition", "1-2"), USBVM_KMSG_NONE);
    /* Asked about the hub itself, its own over-current is its own problem. */
    assert_int_equal(classify("hub 1-2:1.0: over-current condition", "1-2"),
                     USBVM_KMSG_OVERCURRENT);
    assert_int_equal(classify("hub 1-3:1.0: over-current condition", "1-2.4"), USBVM_KMSG_NONE);
    assert_int_equal(classify("no subject here", "1-2"), USBVM_KMSG_NONE);
    assert_int_equal(classify("usb 1-2 no colon", "1-2"), USBVM_KMSG_NONE);
}

static char *write_temp(const char *text)
{
    char tmpl[] = "/tmp/usbvm-doctor-test.XXXXXX";
    int fd = mkstemp(tmpl);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    return xstrdup(tmpl);
}

static const UsbvmCheck *find(const UsbvmChecks *c, const char *name)
{
    for (size_t i = 0; i < c->n; i++)
        if (streq(c->items[i].name, name))
            return &c->items[i];
    fail_msg("no check '%s'", name);
    return NULL;
}

static void test_kernel_check(void **state)
{
    _cleanup_free_ char *path =
        write_temp("6,1,100,-;usb 1-2: new high-speed USB device number 4 using xhci_hcd\n"
                   "3,2,200,-;usb 1-2: device descriptor read/64, error -71\n"
                   " SUBSYSTEM=usb\n"
                   "3,3,300,-;usb 1-3: device descriptor read/64, error -71\n"
                   "4,4,1500000,-;usb usb1-port2: over-current condition\n"
                   "garbage line\n");
    UsbvmDoctorPaths paths = usbvm_doctor_paths_default;
    paths.kmsg = path;
    UsbvmDoctorQuery q = { .port = "1-2" };
    UsbvmChecks c = { 0 };
    usbvm_doctor_kernel(&paths, &q, &c);
    const UsbvmCheck *k = find(&c, "kernel-log");
    assert_false(k->ok);
    assert_non_null(strstr(k->found, "power problem"));
    assert_non_null(strstr(k->found, "cable or port problem"));
    assert_non_null(strstr(k->fix, "powered hub"));
    assert_int_equal(usbvm_strv_length(k->log), 2);
    assert_string_equal(k->log[0], "[    0.000200] usb 1-2: device descriptor read/64, error -71");
    assert_string_equal(k->log[1], "[    1.500000] usb usb1-port2: over-current condition");
    usbvm_checks_clear(&c);

    /* Port 1-4 has nothing: fine. */
    q.port = "1-4";
    usbvm_doctor_kernel(&paths, &q, &c);
    assert_true(find(&c, "kernel-log")->ok);
    assert_null(find(&c, "kernel-log")->fix);
    usbvm_checks_clear(&c);
    unlink(path);

    /* A log that cannot be read is a failure that says so. */
    paths.kmsg = "/nonexistent/kmsg";
    usbvm_doctor_kernel(&paths, &q, &c);
    assert_false(find(&c, "kernel-log")->ok);
    assert_non_null(strstr(find(&c, "kernel-log")->found, "/nonexistent/kmsg"));
    usbvm_checks_clear(&c);
}

static void test_kernel_repeats(void **state)
{
    UsbvmBuf b = { 0 };
    for (int i = 0; i < 12; i++)
        usbvm_buf_printf(&b,
                         "6,%d,%d,-;usb 2-1.3: reset SuperSpeed USB device number 9 using "
                         "xhci_hcd\n",
                         i, i * 1000);
    _cleanup_free_ char *path = write_temp(b.data);
    usbvm_buf_free(&b);
    UsbvmDoctorPaths paths = usbvm_doctor_paths_default;
    paths.kmsg = path;
    UsbvmDoctorQuery q = { .port = "2-1.3" };
    UsbvmChecks c = { 0 };
    usbvm_doctor_kernel(&paths, &q, &c);
    const UsbvmCheck *k = find(&c, "kernel-log");
    assert_false(k->ok);
    assert_non_null(strstr(k->found, "hub or power problem: 12 resets"));
    /* Only the last lines are quoted. */
    assert_int_equal(usbvm_strv_length(k->log), 8);
    assert_non_null(strstr(k->log[7], "[    0.011000]"));
    usbvm_checks_clear(&c);
    unlink(path);
}

#define DOM_HEAD                                                                                   \
    "<domain type='qemu'><name>d</name><os><type machine='%s'>hvm</type></os>%s<devices>"
static char *domain_xml(const char *machine, const char *features, const char *devices)
{
    return xasprintf(DOM_HEAD "%s</devices></domain>", machine, features, devices);
}

static void hw_checks(const char *xml, const UsbvmDevice *d, int mode, UsbvmChecks *c)
{
    UsbvmDomHw hw = { 0 };
    UsbvmError err = { 0 };
    assert_int_equal(usbvm_domhw_from_xml(xml, &hw, &err), 0);
    usbvm_doctor_domain_hw(&hw, d, mode, c);
    usbvm_domhw_clear(&hw);
}

static void test_domain_hw(void **state)
{
    UsbvmInterface msc = { .cls = 0x08, .subclass = 0x06, .protocol = 0x50 };
    UsbvmDevice usb3 = {
        .speed = (char *)"5000", .port = (char *)"1-2", .interfaces = &msc, .n_interfaces = 1
    };
    UsbvmDevice usb2 = {
        .speed = (char *)"480", .port = (char *)"1-2", .interfaces = &msc, .n_interfaces = 1
    };
    UsbvmDevice keyboard = { .speed = (char *)"12", .port = (char *)"1-3" };
    UsbvmChecks c = { 0 };

    /* No USB controller at all. */
    _cleanup_free_ char *none =
        domain_xml("pc-q35-8.2", "",
                   "<controller type='usb' model='none'/>"
                   "<controller type='pci' index='1' model='pcie-root-port'/>");
    hw_checks(none, &usb2, -1, &c);
    assert_false(find(&c, "usb-controller")->ok);
    assert_non_null(strstr(find(&c, "usb-controller")->fix, "model='qemu-xhci'"));
    assert_true(find(&c, "hotplug-slot")->ok);
    usbvm_checks_clear(&c);
    /* ... which mode virtio does not need. */
    hw_checks(none, &usb2, USBVM_MODE_VIRTIO, &c);
    assert_true(find(&c, "usb-controller")->ok);
    usbvm_checks_clear(&c);

    /* EHCI only: a USB 3 device is flagged, a USB 2 device is not. */
    _cleanup_free_ char *ehci = domain_xml("pc-q35-8.2", "",
                                           "<controller type='usb' model='ich9-ehci1'/>"
                                           "<controller type='usb' model='ich9-uhci1'/>");
    hw_checks(ehci, &usb3, USBVM_MODE_USB, &c);
    assert_false(find(&c, "usb-controller")->ok);
    assert_non_null(strstr(find(&c, "usb-controller")->found, "ich9-ehci1, ich9-uhci1"));
    usbvm_checks_clear(&c);
    hw_checks(ehci, &usb2, USBVM_MODE_USB, &c);
    assert_true(find(&c, "usb-controller")->ok);
    usbvm_checks_clear(&c);

    /* q35 whose only root port holds the xHCI controller. */
    _cleanup_free_ char *full = domain_xml(
        "pc-q35-8.2", "",
        "<controller type='usb' model='qemu-xhci'><address type='pci' bus='0x01'/></controller>"
        "<controller type='pci' index='0' model='pcie-root'/>"
        "<controller type='pci' index='1' model='pcie-root-port'>"
        "<address type='pci' bus='0x00' slot='0x01'/></controller>");
    hw_checks(full, &usb3, USBVM_MODE_VIRTIO, &c);
    assert_true(find(&c, "usb-controller")->ok);
    assert_false(find(&c, "hotplug-slot")->ok);
    assert_non_null(strstr(find(&c, "hotplug-slot")->fix, "pcie-root-port"));
    usbvm_checks_clear(&c);
    /* No slot needed for a USB device, nor for a device without a disk in an unknown mode. */
    hw_checks(full, &usb3, USBVM_MODE_USB, &c);
    assert_int_equal(c.n, 1);
    usbvm_checks_clear(&c);
    hw_checks(full, &keyboard, -1, &c);
    assert_int_equal(c.n, 1);
    usbvm_checks_clear(&c);

    /* scsi with a virtio-scsi controller already there needs no slot. */
    _cleanup_free_ char *scsi = domain_xml(
        "pc-q35-8.2", "",
        "<controller type='scsi' model='virtio-scsi'><address type='pci' bus='0x01'/></controller>"
        "<controller type='pci' index='1' model='pcie-root-port'/>");
    hw_checks(scsi, NULL, USBVM_MODE_SCSI, &c);
    assert_true(find(&c, "hotplug-slot")->ok);
    usbvm_checks_clear(&c);

    /* i440fx without ACPI cannot hot-plug; with ACPI it can. */
    _cleanup_free_ char *noacpi =
        domain_xml("pc-i440fx-8.2", "", "<controller type='usb' model='piix3-uhci'/>");
    hw_checks(noacpi, NULL, USBVM_MODE_VIRTIO, &c);
    assert_false(find(&c, "hotplug-slot")->ok);
    assert_non_null(strstr(find(&c, "hotplug-slot")->fix, "<acpi/>"));
    usbvm_checks_clear(&c);
    _cleanup_free_ char *acpi = domain_xml("pc-i440fx-8.2", "<features><acpi/></features>",
                                           "<controller type='usb' model='piix3-uhci'/>");
    hw_checks(acpi, NULL, USBVM_MODE_VIRTIO, &c);
    assert_true(find(&c, "hotplug-slot")->ok);
    usbvm_checks_clear(&c);

    UsbvmDomHw hw = { 0 };
    UsbvmError err = { 0 };
    assert_true(usbvm_domhw_from_xml("<domain", &hw, &err) < 0);
}

static void test_automounter(void **state)
{
    /* A device with one disk; udisksd "installed" (any executable will do). */
    UsbvmBlock blk = { .type = USBVM_BLOCK_DISK,
                       .name = (char *)"sdx",
                       .devnode = (char *)"/dev/sdx" };
    UsbvmDevice d = { .port = (char *)"1-2",
                      .vendor_id = 0x0781,
                      .product_id = 0x5567,
                      .authorized = true,
                      .blocks = &blk,
                      .n_blocks = 1 };
    static const char *const present[] = { "/nonexistent/udisksd", "/bin/sh", NULL };
    static const char *const absent[] = { "/nonexistent/udisksd", NULL };
    UsbvmDoctorPaths paths = usbvm_doctor_paths_default;
    paths.udisksd = present;
    paths.proc = "/nonexistent";
    UsbvmDoctorQuery q = { .device = &d, .port = "1-2" };
    UsbvmChecks c = { 0 };
    usbvm_doctor_host(&paths, &q, &c);
    const UsbvmCheck *k = find(&c, "auto-mounter");
    assert_false(k->ok);
    assert_non_null(strstr(k->found, "/dev/sdx"));
    assert_non_null(strstr(k->fix, "ENV{ID_VENDOR_ID}==\"0781\", ENV{ID_MODEL_ID}==\"5567\", "
                                   "ENV{UDISKS_IGNORE}=\"1\""));
    usbvm_checks_clear(&c);

    /* The disk's udev properties say UDISKS_IGNORE=1 (the rule the fix gives): fine. */
    char dir[] = "/tmp/usbvm-doctor-sdx.XXXXXX";
    assert_non_null(mkdtemp(dir));
    _cleanup_free_ char *uevent =
        test_write_file(dir, "uevent", "DEVNAME=sdx\nDEVTYPE=disk\nUDISKS_IGNORE=1\n");
    blk.syspath = dir;
    usbvm_doctor_host(&paths, &q, &c);
    assert_true(find(&c, "auto-mounter")->ok);
    usbvm_checks_clear(&c);
    blk.syspath = NULL;
    unlink(uevent);
    rmdir(dir);

    paths.udisksd = absent;
    usbvm_doctor_host(&paths, &q, &c);
    assert_true(find(&c, "auto-mounter")->ok);
    usbvm_checks_clear(&c);

    /* authorized=0 without USBGuard: the sysfs switch. */
    d.authorized = false;
    usbvm_doctor_host(&paths, &q, &c);
    assert_false(find(&c, "authorized")->ok);
    assert_non_null(strstr(find(&c, "authorized")->fix, "/sys/bus/usb/devices/1-2/authorized"));
    usbvm_checks_clear(&c);
}

static void test_drivers(void **state)
{
    UsbvmInterface intf = { .cls = 0x08, .subclass = 0x06, .protocol = 0x62 };
    UsbvmDevice d = { .port = (char *)"2-1",
                      .vendor_id = 0x152d,
                      .product_id = 0x0578,
                      .authorized = true,
                      .interfaces = &intf,
                      .n_interfaces = 1 };
    UsbvmDoctorPaths paths = usbvm_doctor_paths_default;
    paths.proc = "/nonexistent";
    UsbvmDoctorQuery q = { .device = &d, .port = "2-1" };
    UsbvmChecks c = { 0 };

    /* No driver on the mass-storage interface. */
    usbvm_doctor_host(&paths, &q, &c);
    assert_false(find(&c, "drivers")->ok);
    assert_non_null(strstr(find(&c, "drivers")->fix, "modprobe usb-storage uas"));
    usbvm_checks_clear(&c);

    /* uas on a bridge known to fail with it: the quirk for this very id. */
    intf.driver = (char *)"uas";
    usbvm_doctor_host(&paths, &q, &c);
    assert_false(find(&c, "drivers")->ok);
    assert_non_null(strstr(find(&c, "drivers")->found, "JMicron JMS578"));
    assert_non_null(strstr(find(&c, "drivers")->fix, "quirks=152d:0578:u"));
    usbvm_checks_clear(&c);

    /* usb-storage on it is fine. */
    intf.driver = (char *)"usb-storage";
    usbvm_doctor_host(&paths, &q, &c);
    assert_true(find(&c, "drivers")->ok);
    usbvm_checks_clear(&c);
}

static void test_confinement(void **state)
{
    UsbvmBlock blk = { .type = USBVM_BLOCK_DISK,
                       .name = (char *)"sdx",
                       .devnode = (char *)"/dev/nonexistent-sdx" };
    UsbvmDevice d = { .port = (char *)"1-2",
                      .devnode = (char *)"/dev/null",
                      .blocks = &blk,
                      .n_blocks = 1,
                      .syspath = (char *)"/sys/devices/x/1-2" };
    _cleanup_free_ char *kmsg = write_temp(
        "5,1,100,-;audit: type=1400 audit(1.2:3): avc:  denied  { read write } for pid=9 "
        "comm=\"qemu-kvm\" name=\"sdxx\" path=\"/dev/nonexistent-sdxx\" tclass=blk_file\n");
    _cleanup_free_ char *audit =
        write_temp("type=AVC msg=audit(1.2:4): avc:  denied  { open } for pid=9 comm=\"qemu-kvm\" "
                   "path=\"/dev/nonexistent-sdx\" scontext=system_u:system_r:svirt_t:s0:c1,c2\n");
    UsbvmDoctorPaths paths = usbvm_doctor_paths_default;
    paths.kmsg = kmsg;
    paths.audit_log = "/nonexistent/audit.log";
    UsbvmDoctorQuery q = { .device = &d, .port = "1-2" };
    UsbvmChecks c = { 0 };

    /* A denial of another node (sdxx) is not this device's; the missing node is named. */
    usbvm_doctor_confinement(&paths, &q, &c);
    assert_true(find(&c, "confinement")->ok);
    assert_false(find(&c, "device-node")->ok);
    assert_non_null(strstr(find(&c, "device-node")->found, "/dev/nonexistent-sdx is missing"));
    usbvm_checks_clear(&c);

    /* The audit log's SELinux denial of its node. */
    paths.audit_log = audit;
    usbvm_doctor_confinement(&paths, &q, &c);
    const UsbvmCheck *k = find(&c, "confinement");
    assert_false(k->ok);
    assert_non_null(strstr(k->found, "SELinux"));
    assert_non_null(strstr(k->fix, "virt_use_usb"));
    assert_int_equal(usbvm_strv_length(k->log), 1);
    usbvm_checks_clear(&c);
    unlink(kmsg);
    unlink(audit);
}

/* A fake /proc with one process per argv given. */
static char *fake_proc(const char *const *cmdlines, size_t n)
{
    char tmpl[] = "/tmp/usbvm-doctor-proc.XXXXXX";
    assert_non_null(mkdtemp(tmpl));
    for (size_t i = 0; i < n; i++) {
        _cleanup_free_ char *dir = xasprintf("%s/%zu", tmpl, 100 + i);
        assert_int_equal(mkdir(dir, 0755), 0);
        _cleanup_free_ char *file = xasprintf("%s/cmdline", dir);
        FILE *f = fopen(file, "w");
        assert_non_null(f);
        /* '|' stands for the NUL between arguments. */
        for (const char *p = cmdlines[i]; *p; p++)
            fputc(*p == '|' ? '\0' : *p, f);
        fputc('\0', f);
        fclose(f);
    }
    return xstrdup(tmpl);
}

static void remove_fake_proc(const char *proc, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        _cleanup_free_ char *file = xasprintf("%s/%zu/cmdline", proc, 100 + i);
        _cleanup_free_ char *dir = xasprintf("%s/%zu", proc, 100 + i);
        unlink(file);
        rmdir(dir);
    }
    rmdir(proc);
}

static void test_watch_running(void **state)
{
    static const char *const procs[] = {
        "/usr/sbin/usbguard-daemon|-k",
        "/usr/bin/usbvm|--json|watch|--rules|/etc/usbvm/other.rules",
        "bash|-c|usbvm watch",
    };
    _cleanup_free_ char *proc = fake_proc(procs, ELEMENTSOF(procs));
    assert_true(usbvm_proc_running(proc, "usbguard-daemon", NULL));
    assert_true(usbvm_proc_running(proc, "usbvm", "watch"));
    assert_false(usbvm_proc_running(proc, "udisksd", NULL));

    _cleanup_free_ char *rules = write_temp("ignore id 0781:*\n");
    UsbvmDoctorPaths paths = usbvm_doctor_paths_default;
    paths.proc = proc;
    UsbvmDoctorQuery q = { .rules_path = rules };
    UsbvmChecks c = { 0 };
    assert_int_equal(usbvm_doctor_policy(&paths, &q, &c), -1);
    assert_true(find(&c, "rules")->ok);
    const UsbvmCheck *k = find(&c, "watch");
    assert_false(k->ok);
    assert_non_null(strstr(k->found, "other rules (/etc/usbvm/other.rules)"));
    usbvm_checks_clear(&c);
    remove_fake_proc(proc, ELEMENTSOF(procs));
    unlink(rules);
}

static void test_usbguard_rule(void **state)
{
    UsbvmInterface intf = { .cls = 0x08, .subclass = 0x06, .protocol = 0x50 };
    UsbvmDevice d = { .port = (char *)"1-2",
                      .vendor_id = 0x0781,
                      .product_id = 0x5567,
                      .serial = (char *)"AB12",
                      .interfaces = &intf,
                      .n_interfaces = 1 };
    static const char rules[] =
        "1: allow id 1d6b:* serial \"\" name \"xHCI Host Controller\" hash \"h1\" "
        "parent-hash \"h2\" with-interface 09:00:00\n"
        "2: allow id 0781:5567 serial \"OTHER\"\n"
        "3: block id 0781:* hash \"x y\" via-port \"1-2\" with-interface 08:06:50\n"
        "4: allow id 0781:5567\n";
    const char *target = NULL;
    _cleanup_free_ char *r = usbvm_usbguard_deciding_rule(rules, &d, &target);
    assert_non_null(r);
    assert_string_equal(r, "3: block id 0781:* hash \"x y\" via-port \"1-2\" with-interface "
                           "08:06:50");
    assert_string_equal(target, "block");

    /* A rule usbvm cannot read (a condition it drops still parses; garbage does not). */
    _cleanup_free_ char *r2 =
        usbvm_usbguard_deciding_rule("1: allow id 0781:5567 serial \"AB12\" if true\n"
                                     "2: block {{{\n",
                                     &d, &target);
    assert_non_null(r2);
    assert_string_equal(target, "allow");
    assert_null(usbvm_usbguard_deciding_rule("1: reject id 1234:*\n2: block }\n", &d, &target));
    assert_null(usbvm_usbguard_deciding_rule("", &d, &target));
}

static void test_spawn(void **state)
{
    char *echo[] = { (char *)"echo", (char *)"a b", NULL };
    _cleanup_free_ char *out = NULL;
    UsbvmError err = { 0 };
    assert_int_equal(usbvm_spawn_capture(echo, 5000, &out, &err), 0);
    assert_string_equal(out, "a b\n");

    char *fails[] = { (char *)"false", NULL };
    char *none = NULL;
    assert_true(usbvm_spawn_capture(fails, 5000, &none, &err) < 0);
    assert_null(none);
    char *missing[] = { (char *)"/nonexistent/usbguard", NULL };
    assert_true(usbvm_spawn_capture(missing, 5000, &none, &err) < 0);

    /* A child that never ends is killed at the deadline. */
    char *hangs[] = { (char *)"tail", (char *)"-f", (char *)"/dev/null", NULL };
    uint64_t t0 = usbvm_now_usec();
    assert_int_equal(usbvm_spawn_capture(hangs, 200, &none, &err), -ETIMEDOUT);
    assert_true(usbvm_now_usec() - t0 < 5000000);
    assert_non_null(strstr(err.message, "did not answer in time"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kmsg_parse),    cmocka_unit_test(test_kmsg_classify),
        cmocka_unit_test(test_kernel_check),  cmocka_unit_test(test_kernel_repeats),
        cmocka_unit_test(test_domain_hw),     cmocka_unit_test(test_automounter),
        cmocka_unit_test(test_watch_running), cmocka_unit_test(test_usbguard_rule),
        cmocka_unit_test(test_spawn),         cmocka_unit_test(test_drivers),
        cmocka_unit_test(test_confinement),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
