/* usbvm doctor: the device on the host. Drivers, authorisation (the kernel's authorized flag,
 * USBGuard), host use of its disks, the udisks2 auto-mounter, and confinement (device nodes,
 * AppArmor/SELinux denials). Fixes name kernel-made strings only (port paths, ids, device
 * nodes), never descriptor strings, so that a fix copied into a shell cannot run anything a
 * device chose. */
#include "device-internal.h"
#include "doctor.h"

#include <dirent.h>
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <string.h>
#include <sys/stat.h>

static void closedirp(DIR **d)
{
    if (*d)
        closedir(*d);
}

/* Bridges commonly reported to fail under uas (command aborts, resets under load); the
 * usual cure is the usb-storage 'u' quirk that makes the kernel ignore uas for them. */
static const struct {
    uint16_t vid, pid;
    const char *name;
} uas_bad[] = {
    { 0x152d, 0x0578, "JMicron JMS578" },
    { 0x174c, 0x55aa, "ASMedia ASM1051E/ASM1053E" },
};

void usbvm_proc_each(const char *proc, UsbvmProcFn fn, void *userdata)
{
    _cleanup_(closedirp) DIR *dir = opendir(proc);
    if (!dir)
        return;
    struct dirent *de;
    while ((de = readdir(dir))) {
        if (de->d_name[0] < '1' || de->d_name[0] > '9')
            continue;
        _cleanup_free_ char *path = xasprintf("%s/%s/cmdline", proc, de->d_name);
        _cleanup_free_ char *cmd = NULL;
        size_t len = 0;
        if (usbvm_read_file(path, &cmd, &len) < 0 || len == 0)
            continue;
        /* cmdline is argv as NUL-separated strings; make a vector of it. */
        _cleanup_strv_free_ char **argv = NULL;
        for (const char *p = cmd; p < cmd + len; p += strlen(p) + 1)
            argv = usbvm_strv_push(argv, p);
        if (fn(argv, userdata))
            return;
    }
}

typedef struct ProcMatch {
    const char *comm, *arg;
    bool found;
} ProcMatch;

static bool proc_match(char *const *argv, void *userdata)
{
    ProcMatch *m = userdata;
    const char *base = strrchr(argv[0], '/');
    if (!streq(base ? base + 1 : argv[0], m->comm))
        return false;
    m->found = !m->arg || usbvm_strv_contains(argv + 1, m->arg);
    return m->found;
}

bool usbvm_proc_running(const char *proc, const char *comm, const char *arg)
{
    ProcMatch m = { comm, arg, false };
    usbvm_proc_each(proc, proc_match, &m);
    return m.found;
}

static void check_drivers(const UsbvmDevice *d, UsbvmChecks *out)
{
    if (!usbvm_device_is_storage(d)) {
        usbvm_checks_add(out, "drivers", true, NULL, "not a mass-storage device");
        return;
    }
    const char *drv = NULL;
    for (size_t i = 0; i < d->n_interfaces && !drv; i++)
        if (d->interfaces[i].cls == 0x08)
            drv = d->interfaces[i].driver;
    if (!drv) {
        usbvm_checks_add(out, "drivers", false,
                         "Load the drivers: 'modprobe usb-storage uas', then replug the device "
                         "(passthrough in mode usb works without them).",
                         "neither usb-storage nor uas is bound to the mass-storage interface, so "
                         "the host has no disk to give in modes virtio, scsi and usb-disk");
        return;
    }
    for (size_t i = 0; streq(drv, "uas") && i < ELEMENTSOF(uas_bad); i++)
        if (d->vendor_id == uas_bad[i].vid && d->product_id == uas_bad[i].pid) {
            _cleanup_free_ char *fix = usbvm_doctor_uas_fix(d);
            usbvm_checks_add(out, "drivers", false, fix,
                             "uas drives a %s bridge (%04x:%04x), which is known to fail under "
                             "uas",
                             uas_bad[i].name, d->vendor_id, d->product_id);
            return;
        }
    usbvm_checks_add(out, "drivers", true, NULL, "%s is bound to the mass-storage interface", drv);
}

/* USBGuard answers within milliseconds; a daemon that hangs must not hang doctor. */
#define USBGUARD_TIMEOUT_MS 3000

static void report_usbguard(const UsbvmDevice *d, UsbvmChecks *out)
{
    _cleanup_free_ char *fix = xasprintf(
        "Allow it with a rule before the one that blocks it in /etc/usbguard/rules.conf, e.g. "
        "'allow id %04x:%04x via-port \"%s\"', and restart usbguard; 'usbguard allow-device' "
        "with the device's number from 'usbguard list-devices --blocked' allows it until it is "
        "unplugged.",
        d->vendor_id, d->product_id, d->port);
    char *argv[] = { (char *)"usbguard", (char *)"list-rules", NULL };
    _cleanup_free_ char *rules = NULL;
    UsbvmError err = { 0 };
    if (usbvm_spawn_capture(argv, USBGUARD_TIMEOUT_MS, &rules, &err) < 0) {
        usbvm_checks_add(out, "authorized", false, fix,
                         "authorized=0: USBGuard runs and blocks the device; its rules could not "
                         "be read (%s)",
                         err.message);
        return;
    }
    const char *target = NULL;
    _cleanup_free_ char *rule = usbvm_usbguard_deciding_rule(rules, d, &target);
    if (rule && !streq(target, "allow"))
        usbvm_checks_add(out, "authorized", false, fix,
                         "authorized=0: USBGuard rule %s blocks the device", rule);
    else if (rule)
        usbvm_checks_add(out, "authorized", false, fix,
                         "authorized=0 although USBGuard rule %s allows the device (hash, "
                         "parent-hash and conditions were not compared)",
                         rule);
    else
        usbvm_checks_add(out, "authorized", false, fix,
                         "authorized=0: no USBGuard rule matches the device, so "
                         "ImplicitPolicyTarget (usbguard-daemon.conf) blocks it");
}

static void check_authorized(const UsbvmDoctorPaths *paths, const UsbvmDevice *d, UsbvmChecks *out)
{
    bool guard = usbvm_proc_running(paths->proc, "usbguard-daemon", NULL);
    if (d->authorized) {
        usbvm_checks_add(out, "authorized", true, NULL, "the kernel has authorised the device%s",
                         guard ? " (USBGuard runs and allows it)" : "");
        return;
    }
    if (guard) {
        report_usbguard(d, out);
        return;
    }
    _cleanup_free_ char *fix = xasprintf(
        "Authorise it: 'echo 1 > /sys/bus/usb/devices/%s/authorized'; if every new device "
        "comes up unauthorised, check /sys/bus/usb/devices/usb*/authorized_default.",
        d->port);
    usbvm_checks_add(out, "authorized", false, fix,
                     "authorized=0: the kernel keeps the device switched off (USBGuard does not "
                     "run)");
}

static void check_host_use(const UsbvmDoctorPaths *paths, const UsbvmDevice *dev, UsbvmChecks *out)
{
    if (dev->n_blocks == 0) {
        usbvm_checks_add(out, "host-use", true, NULL, "no block devices on the host");
        return;
    }
    /* A copy, so that the host use is re-read as it is now without touching the caller's. */
    UsbvmDevice d = *dev;
    d.blocks = xcalloc(dev->n_blocks, sizeof(UsbvmBlock));
    for (size_t i = 0; i < dev->n_blocks; i++)
        d.blocks[i] = (UsbvmBlock){ .type = dev->blocks[i].type,
                                    .devnode = dev->blocks[i].devnode,
                                    .syspath = dev->blocks[i].syspath,
                                    .major = dev->blocks[i].major,
                                    .minor = dev->blocks[i].minor };
    UsbvmHostUse use = { 0 };
    UsbvmError err = { 0 };
    if (usbvm_host_use_load(&paths->host, &use, &err) == 0) {
        for (size_t i = 0; i < d.n_blocks; i++)
            usbvm_block_apply_host_use(&d.blocks[i], &use);
        if (usbvm_device_check_host_use(&d, &err) == 0)
            usbvm_checks_add(out, "host-use", true, NULL,
                             "%zu block device(s), none mounted, swapped on or held", d.n_blocks);
        else
            usbvm_checks_add(out, "host-use", false,
                             "Unmount it ('umount' the device node), 'swapoff' it, or stop what "
                             "holds it ('dmsetup remove', 'mdadm --stop', 'vgchange -an') before "
                             "passing the device.",
                             "%s", err.message);
    } else
        usbvm_checks_add(out, "host-use", false, "Run usbvm doctor as root.", "%s", err.message);
    for (size_t i = 0; i < d.n_blocks; i++) {
        free(d.blocks[i].mountpoint);
        usbvm_strv_free(d.blocks[i].holders);
    }
    free(d.blocks);
    usbvm_host_use_clear(&use);
}

static bool automounter_present(const UsbvmDoctorPaths *paths)
{
    for (const char *const *p = paths->udisksd; p && *p; p++)
        if (access(*p, X_OK) == 0)
            return true;
    return usbvm_proc_running(paths->proc, "udisksd", NULL);
}

static bool udisks_ignores(const UsbvmBlock *b)
{
    if (!b->syspath)
        return false;
    _cleanup_strv_free_ char **props = usbvm_block_properties(b->syspath);
    return streq(usbvm_udev_property(props, "UDISKS_IGNORE"), "1");
}

static void check_automounter(const UsbvmDoctorPaths *paths, const UsbvmDevice *d, UsbvmChecks *out)
{
    if (d->n_blocks == 0)
        return;
    if (!automounter_present(paths)) {
        usbvm_checks_add(out, "auto-mounter", true, NULL, "no udisks2 auto-mounter on the host");
        return;
    }
    for (size_t i = 0; i < d->n_blocks; i++)
        if (!udisks_ignores(&d->blocks[i])) {
            _cleanup_free_ char *fix = xasprintf(
                "Make udisks2 leave the device alone: put the line\n"
                "  SUBSYSTEM==\"block\", ENV{ID_BUS}==\"usb\", ENV{ID_VENDOR_ID}==\"%04x\", "
                "ENV{ID_MODEL_ID}==\"%04x\", ENV{UDISKS_IGNORE}=\"1\"\n"
                "in /etc/udev/rules.d/61-usbvm-udisks.rules (usbvm's examples have one), run "
                "'udevadm control --reload' and 'udevadm trigger --subsystem-match=block'.",
                d->vendor_id, d->product_id);
            usbvm_checks_add(out, "auto-mounter", false, fix,
                             "udisks2 is installed and does not ignore %s: a desktop session "
                             "may mount it before usbvm passes it",
                             d->blocks[i].devnode ? d->blocks[i].devnode : d->blocks[i].name);
            return;
        }
    usbvm_checks_add(out, "auto-mounter", true, NULL,
                     "udisks2 is installed and ignores the device (UDISKS_IGNORE=1)");
}

void usbvm_doctor_host(const UsbvmDoctorPaths *paths, const UsbvmDoctorQuery *q, UsbvmChecks *out)
{
    check_drivers(q->device, out);
    check_authorized(paths, q->device, out);
    check_host_use(paths, q->device, out);
    check_automounter(paths, q->device, out);
}

/* ---- confinement ---- */

static char *node_text(const char *node)
{
    struct stat st;
    if (stat(node, &st) < 0)
        return NULL;
    struct passwd *pw = getpwuid(st.st_uid);
    struct group *gr = getgrgid(st.st_gid);
    _cleanup_free_ char *u = pw ? xstrdup(pw->pw_name) : xasprintf("%u", (unsigned)st.st_uid);
    _cleanup_free_ char *g = gr ? xstrdup(gr->gr_name) : xasprintf("%u", (unsigned)st.st_gid);
    return xasprintf("%s %s:%s %04o", node, u, g, (unsigned)(st.st_mode & 07777));
}

static void check_nodes(const UsbvmDevice *d, UsbvmChecks *out)
{
    _cleanup_(usbvm_buf_free) UsbvmBuf found = { 0 };
    const char *missing = NULL;
    for (size_t i = 0; i <= d->n_blocks; i++) {
        const char *node = i == 0 ? d->devnode : d->blocks[i - 1].devnode;
        if (!node)
            continue;
        _cleanup_free_ char *t = node_text(node);
        if (!t && !missing)
            missing = node;
        usbvm_buf_printf(&found, "%s%s", found.len ? ", " : "", t ? t : node);
    }
    if (missing) {
        _cleanup_free_ char *fix = xasprintf(
            "udev has not created %s: check 'udevadm info %s' and that systemd-udevd runs; "
            "replug the device.",
            missing, d->syspath);
        usbvm_checks_add(out, "device-node", false, fix, "%s is missing", missing);
        return;
    }
    /* libvirt's dynamic_ownership hands the node to QEMU's user at attach time; what matters
     * here is that the node exists and is a device node QEMU can be given. */
    usbvm_checks_add(out, "device-node", true, NULL, "%s (libvirt hands them to QEMU on attach)",
                     found.len ? found.data : "no device nodes");
}

typedef struct DenialScan {
    const UsbvmDevice *d;
    char **lines;
    bool apparmor, selinux;
} DenialScan;

static bool names_node(const char *line, size_t n, const UsbvmDevice *d)
{
    for (size_t i = 0; i <= d->n_blocks; i++) {
        const char *node = i == 0 ? d->devnode : d->blocks[i - 1].devnode;
        if (!node)
            continue;
        _cleanup_free_ char *quoted = xasprintf("\"%s\"", node);
        if (memmem(line, n, quoted, strlen(quoted)))
            return true;
    }
    return false;
}

static void denial_line(DenialScan *s, const char *line, size_t n)
{
    bool aa = memmem(line, n, "apparmor=\"DENIED\"", 17) != NULL;
    bool se = memmem(line, n, "avc:  denied", 12) != NULL;
    if ((!aa && !se) || !names_node(line, n, s->d))
        return;
    s->apparmor |= aa;
    s->selinux |= se;
    if (usbvm_strv_length(s->lines) < 8) {
        _cleanup_free_ char *l = xstrndup(line, n);
        s->lines = usbvm_strv_push(s->lines, l);
    }
}

static void denial_record(const UsbvmKmsgRecord *r, void *userdata)
{
    denial_line(userdata, r->msg, r->msg_len);
}

static void scan_audit_log(const char *path, DenialScan *s)
{
    _cleanup_fclose_ FILE *f = path ? fopen(path, "re") : NULL;
    if (!f)
        return; /* no auditd: denials go to the kernel log, which was read already */
    _cleanup_free_ char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    while ((n = getline(&line, &cap, f)) > 0)
        denial_line(s, line, (size_t)(line[n - 1] == '\n' ? n - 1 : n));
}

void usbvm_doctor_confinement(const UsbvmDoctorPaths *paths, const UsbvmDoctorQuery *q,
                              UsbvmChecks *out)
{
    const UsbvmDevice *d = q->device;
    check_nodes(d, out);
    DenialScan s = { .d = d };
    usbvm_kmsg_read(paths->kmsg, denial_record, &s, NULL);
    scan_audit_log(paths->audit_log, &s);
    UsbvmCheck *k;
    if (!s.apparmor && !s.selinux)
        k = usbvm_checks_add(out, "confinement", true, NULL,
                             "no AppArmor or SELinux denials for the device's nodes");
    else if (s.apparmor)
        k = usbvm_checks_add(
            out, "confinement", false,
            "libvirt's per-domain AppArmor profile (libvirt-<uuid>, written by virt-aa-helper) "
            "lacks the node: let libvirt manage it (security_driver = \"apparmor\" in "
            "/etc/libvirt/qemu.conf and attach through libvirt), or add the node with 'rw,' to "
            "/etc/apparmor.d/local/abstractions/libvirt-qemu and reload AppArmor.",
            "AppArmor denied QEMU access to the device's node");
    else
        k = usbvm_checks_add(out, "confinement", false,
                             "Allow USB for QEMU with 'setsebool -P virt_use_usb 1'; for other "
                             "denials build a local module: 'ausearch -m avc -ts recent | "
                             "audit2allow -M usbvm-local && semodule -i usbvm-local.pp'.",
                             "SELinux denied QEMU access to the device's node");
    k->log = s.lines;
}
