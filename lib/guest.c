/* The guest's side of an attached device over libvirt's guest agent APIs: which filesystems
 * the guest has mounted from it, and a freeze/thaw that makes their data reach the disk.
 * libvirt maps the agent's disks to the domain's disk targets (by PCI/SCSI address, and by
 * serial); a USB hostdev has no target, so it is recognised by the serial the guest's udev
 * reports for it. */
#include "guest.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void usbvm_guest_info_clear(UsbvmGuestInfo *gi)
{
    for (size_t i = 0; i < gi->n_fs; i++) {
        UsbvmGuestFs *fs = &gi->fs[i];
        free(fs->mountpoint);
        free(fs->fstype);
        for (size_t k = 0; k < fs->n_disks; k++) {
            free(fs->targets[k]);
            free(fs->serials[k]);
        }
        free(fs->targets);
        free(fs->serials);
    }
    free(gi->fs);
    free(gi->reason);
    *gi = (UsbvmGuestInfo){ 0 };
}

/* "fs.3.disk.1.serial" -> fs 3, disk 1, field "serial"; "fs.3.mountpoint" -> disk -1. */
static bool parse_key(const char *key, size_t *ret_fs, long *ret_disk, const char **ret_field)
{
    char *end;
    if (strncmp(key, "fs.", 3) != 0 || key[3] < '0' || key[3] > '9')
        return false;
    unsigned long fs = strtoul(key + 3, &end, 10);
    if (*end != '.' || fs > 4096)
        return false;
    *ret_fs = fs;
    *ret_disk = -1;
    *ret_field = end + 1;
    if (strncmp(end + 1, "disk.", 5) == 0 && end[6] >= '0' && end[6] <= '9') {
        unsigned long disk = strtoul(end + 6, &end, 10);
        if (*end != '.' || disk > 256)
            return false;
        *ret_disk = (long)disk;
        *ret_field = end + 1;
    }
    return true;
}

static UsbvmGuestFs *fs_at(UsbvmGuestInfo *gi, size_t i)
{
    if (i >= gi->n_fs) {
        gi->fs = xrealloc(gi->fs, (i + 1) * sizeof(*gi->fs));
        memset(gi->fs + gi->n_fs, 0, (i + 1 - gi->n_fs) * sizeof(*gi->fs));
        gi->n_fs = i + 1;
    }
    return &gi->fs[i];
}

static void disk_set(UsbvmGuestFs *fs, size_t k, const char *field, const char *value)
{
    if (k >= fs->n_disks) {
        fs->targets = xrealloc(fs->targets, (k + 1) * sizeof(char *));
        fs->serials = xrealloc(fs->serials, (k + 1) * sizeof(char *));
        for (size_t i = fs->n_disks; i <= k; i++)
            fs->targets[i] = fs->serials[i] = NULL;
        fs->n_disks = k + 1;
    }
    char **slot = streq(field, "alias") ? &fs->targets[k] : &fs->serials[k];
    free(*slot);
    *slot = xstrdup(value);
}

void usbvm_guest_info_from_params(virTypedParameterPtr params, int n, UsbvmGuestInfo *gi)
{
    gi->known = true;
    for (int i = 0; i < n; i++) {
        const virTypedParameter *p = &params[i];
        size_t f;
        long disk;
        const char *field;
        if (p->type != VIR_TYPED_PARAM_STRING || !p->value.s ||
            !parse_key(p->field, &f, &disk, &field))
            continue;
        bool disk_field = streq(field, "alias") || streq(field, "serial");
        bool fs_field = streq(field, "mountpoint") || streq(field, "fstype");
        if (disk >= 0 ? !disk_field : !fs_field)
            continue;
        UsbvmGuestFs *fs = fs_at(gi, f);
        if (disk >= 0)
            disk_set(fs, (size_t)disk, field, p->value.s);
        else {
            char **slot = streq(field, "mountpoint") ? &fs->mountpoint : &fs->fstype;
            free(*slot);
            *slot = xstrdup(p->value.s);
        }
    }
}

static void agent_timeout(virDomainPtr dom, int seconds)
{
    /* Bounds every agent command of this domain, ours included; libvirt's own guest-sync
     * before each command is bounded (5 s) already. A failure only leaves libvirt's. */
    if (virDomainAgentSetResponseTimeout(dom, seconds, 0) < 0)
        virResetLastError();
}

static char *last_reason(void)
{
    virErrorPtr e = virGetLastError();
    char *s = xstrdup(e && e->message ? e->message : "the guest agent did not answer");
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '.'))
        s[--n] = '\0';
    return s;
}

void usbvm_guest_read(virDomainPtr dom, UsbvmGuestInfo *gi)
{
    *gi = (UsbvmGuestInfo){ 0 };
    virTypedParameterPtr params = NULL;
    int n = 0;
    agent_timeout(dom, USBVM_GUEST_TIMEOUT_S);
    if (virDomainGetGuestInfo(dom, VIR_DOMAIN_GUEST_INFO_FILESYSTEM, &params, &n, 0) < 0) {
        gi->reason = last_reason();
        virResetLastError();
        return;
    }
    usbvm_guest_info_from_params(params, n, gi);
    virTypedParamsFree(params, n);
}

/* udev's rendering of a serial: anything but [A-Za-z0-9#+.:=@_-] becomes '_'. */
static char *udev_safe(const char *s)
{
    char *r = xstrdup(s);
    for (char *p = r; *p; p++)
        if (!strchr("#+-.:=@_", *p) &&
            !((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9')))
            *p = '_';
    return r;
}

/* The guest's udev composes ID_SERIAL: "<serial>" for virtio (20 bytes at most),
 * "0QEMU_QEMU_HARDDISK_<serial>" for SCSI, "<vendor>_<model>_<serial>-0:0" for USB storage. */
static bool serial_matches(const char *guest, const char *serial)
{
    if (!guest || !serial || !*serial)
        return false;
    _cleanup_free_ char *s = udev_safe(serial);
    size_t gl = strlen(guest), sl = strlen(s);
    if (streq(guest, s) || (gl == 20 && sl > 20 && strncmp(guest, s, 20) == 0))
        return true;
    for (const char *p = strstr(guest, s); p; p = strstr(p + 1, s)) {
        bool left = p == guest || p[-1] == '_';
        const char *r = p + sl;
        bool right = !*r || (r[0] == '-' && r[1] >= '0' && r[1] <= '9');
        if (left && right)
            return true;
    }
    return false;
}

char **usbvm_guest_mounts_of(const UsbvmGuestInfo *gi, const char *target, const char *serial,
                             size_t *ret_n)
{
    char **v = NULL;
    size_t n = 0;
    for (size_t i = 0; gi->known && i < gi->n_fs; i++) {
        const UsbvmGuestFs *fs = &gi->fs[i];
        bool hit = false;
        for (size_t k = 0; k < fs->n_disks && !hit; k++)
            hit =
                (target && streq(fs->targets[k], target)) || serial_matches(fs->serials[k], serial);
        if (hit && fs->mountpoint && !usbvm_strv_contains(v, fs->mountpoint)) {
            v = usbvm_strv_push(v, fs->mountpoint);
            n++;
        }
    }
    if (ret_n)
        *ret_n = n;
    return v;
}

void usbvm_guest_key(const UsbvmDomDev *dd, const UsbvmDevice *d, const char **ret_target,
                     const char **ret_serial)
{
    *ret_target = dd && dd->kind == USBVM_DOMDEV_DISK ? dd->target : NULL;
    *ret_serial = dd && dd->kind == USBVM_DOMDEV_DISK ? dd->serial : d ? d->serial : NULL;
}

int usbvm_guest_flush(virDomainPtr dom, char **mounts, size_t n, UsbvmError *err)
{
    if (n == 0)
        return 0;
    agent_timeout(dom, USBVM_GUEST_FLUSH_TIMEOUT_S);
    int r = virDomainFSFreeze(dom, (const char **)mounts, (unsigned)n, 0);
    if (r < 0) {
        r = usbvm_virt_error(err, USBVM_E_FAILED,
                             "cannot flush the guest's filesystems in "
                             "domain '%s'",
                             virDomainGetName(dom));
        /* A freeze that timed out may have frozen some: never leave the guest frozen. */
        (void)virDomainFSThaw(dom, NULL, 0, 0);
        virResetLastError();
    } else if (virDomainFSThaw(dom, NULL, 0, 0) < 0) {
        /* libvirt's QEMU driver thaws all or nothing; only ours are frozen. */
        r = usbvm_virt_error(err, USBVM_E_FAILED,
                             "cannot thaw the guest's filesystems in domain '%s'; thaw them "
                             "with 'virsh domfsthaw %s'",
                             virDomainGetName(dom), virDomainGetName(dom));
    } else
        r = 0;
    agent_timeout(dom, USBVM_GUEST_TIMEOUT_S);
    return r;
}

static void note(char *notes, size_t size, const char *s)
{
    if (!notes || !size)
        return;
    size_t len = strlen(notes);
    snprintf(notes + len, size - len, "%s%s", len ? "; " : "", s);
}

int usbvm_guest_before_detach(virDomainPtr dom, const UsbvmDomDev *dd, const UsbvmDevice *d,
                              const char *label, unsigned flags, char *notes, size_t notes_size,
                              UsbvmError *err)
{
    const char *target, *serial;
    usbvm_guest_key(dd, d, &target, &serial);
    UsbvmGuestInfo gi;
    usbvm_guest_read(dom, &gi);
    const char *name = virDomainGetName(dom);
    if (!gi.known) {
        _cleanup_free_ char *s =
            xasprintf("the guest's mounts are unknown (%s)", strempty(gi.reason));
        note(notes, notes_size, s);
        usbvm_guest_info_clear(&gi);
        return 0;
    }
    size_t n = 0;
    _cleanup_strv_free_ char **mounts = usbvm_guest_mounts_of(&gi, target, serial, &n);
    usbvm_guest_info_clear(&gi);
    if (n == 0)
        return 0;
    /* The guest names its mount points: they reach the terminal escaped. */
    _cleanup_free_ char *where = usbvm_escape(mounts[0]);
    if (flags & USBVM_GUEST_FLUSH) {
        if (usbvm_guest_flush(dom, mounts, n, err) < 0)
            return -EIO;
        _cleanup_free_ char *s = xasprintf("flushed %s in the guest", where);
        note(notes, notes_size, s);
    }
    if (!(flags & USBVM_GUEST_FORCE))
        return usbvm_error_set(err, USBVM_E_REFUSED, EBUSY,
                               "cannot detach %s from '%s': the guest has it mounted on %s; "
                               "unmount it in the guest first, or add --flush --force to "
                               "flush it and detach anyway",
                               label, name, where);
    _cleanup_free_ char *s =
        xasprintf("the guest had it mounted on %s%s", where,
                  flags & USBVM_GUEST_FLUSH ? "" : " (unflushed data may be lost in the guest)");
    note(notes, notes_size, s);
    return (int)n;
}
