/* The libvirt layer, part 3: device XML, built with libxml2's tree API only (invariant 5):
 * untrusted strings (serials, paths) become attribute values or text nodes and libxml2 escapes
 * them; nothing is pasted into markup. */
#include "virt-internal.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

const UsbvmBlock *usbvm_virt_pick_disk(const UsbvmDevice *d)
{
    const UsbvmBlock *first = NULL;
    for (size_t i = 0; i < d->n_blocks; i++) {
        const UsbvmBlock *b = &d->blocks[i];
        if (b->type != USBVM_BLOCK_DISK)
            continue;
        if (b->size > 0)
            return b;
        if (!first)
            first = b;
    }
    return first;
}

/* What the link leads to now: 1 this disk, 0 another block device (its number in *other),
 * -errno when it does not lead to a block device. */
static int link_leads_to(const char *link, const UsbvmBlock *b, dev_t *other)
{
    struct stat st;
    if (stat(link, &st) < 0)
        return -errno;
    if (!S_ISBLK(st.st_mode))
        return -ENOTBLK;
    *other = st.st_rdev;
    return st.st_rdev == makedev(b->major, b->minor);
}

const char *usbvm_virt_disk_source(const UsbvmBlock *b)
{
    /* The by-id link survives a replug that renames sdb to sdc, but its name is made of what
     * the device reports: a stick that clones another's vendor, model and serial takes the
     * link over (udev gives it to the last one). So it is used only while it leads to this
     * very disk, by major:minor (invariant 8). */
    dev_t other;
    if (b->by_id && link_leads_to(b->by_id, b, &other) == 1)
        return b->by_id;
    return b->devnode;
}

int usbvm_virt_check_persistent_source(const UsbvmBlock *b, const char *dev, const char *domain,
                                       UsbvmError *err)
{
    if (!b->by_id)
        return usbvm_error_set(err, USBVM_E_REFUSED, EINVAL,
                               "cannot add %s to the persistent definition of '%s': it has no "
                               "/dev/disk/by-id link, and %s may name another disk after a "
                               "replug or reboot; attach it with --live",
                               dev, domain, b->devnode);
    dev_t other = 0;
    int r = link_leads_to(b->by_id, b, &other);
    if (r == 1)
        return 0;
    _cleanup_free_ char *link = usbvm_escape(b->by_id);
    if (r == 0)
        return usbvm_error_set(err, USBVM_E_REFUSED, EEXIST,
                               "cannot add %s to the persistent definition of '%s': %s leads to "
                               "another disk (%u:%u), not this one (%u:%u): another device "
                               "reports the same vendor, model and serial, and either could "
                               "take the link at the next start; unplug the other one, or "
                               "attach this one with --live",
                               dev, domain, link, major(other), minor(other), b->major, b->minor);
    return usbvm_error_set(err, USBVM_E_REFUSED, -r,
                           "cannot add %s to the persistent definition of '%s': %s does not "
                           "lead to its disk (%s); wait for udev ('udevadm settle') or attach "
                           "it with --live",
                           dev, domain, link, strerror(-r));
}

char *usbvm_virt_serial(const char *s)
{
    if (!s)
        return NULL;
    /* libvirt's schema: [A-Za-z0-9_.+\- ]+; virtio-blk carries 20 bytes. Anything else
     * becomes '_' so that two different serials rarely collapse into one. */
    char buf[21];
    size_t n = 0;
    bool useful = false;
    for (const unsigned char *p = (const unsigned char *)s; *p && n < 20; p++) {
        unsigned char c = *p;
        if ((c & 0xc0) == 0x80)
            continue; /* one '_' per UTF-8 sequence */
        bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                  c == '_' || c == '.' || c == '+' || c == '-' || c == ' ';
        buf[n++] = ok ? (char)c : '_';
        if (ok && c != ' ')
            useful = true;
    }
    buf[n] = '\0';
    /* Leading/trailing spaces would be trimmed by some guests; keep them out. */
    while (n > 0 && buf[n - 1] == ' ')
        buf[--n] = '\0';
    size_t start = 0;
    while (buf[start] == ' ')
        start++;
    if (!useful || !buf[start])
        return NULL;
    return xstrdup(buf + start);
}

static char *doc_to_string(xmlNodePtr root)
{
    xmlDocPtr doc = xmlNewDoc(BAD_CAST "1.0");
    xmlDocSetRootElement(doc, root);
    xmlBufferPtr buf = xmlBufferCreate();
    xmlNodeDump(buf, doc, root, 0, 1);
    char *s = xasprintf("%s\n", (const char *)xmlBufferContent(buf));
    xmlBufferFree(buf);
    xmlFreeDoc(doc);
    return s;
}

static void add_alias(xmlNodePtr dev, const char *alias)
{
    xmlNodePtr a = xmlNewChild(dev, NULL, BAD_CAST "alias", NULL);
    xmlNewProp(a, BAD_CAST "name", BAD_CAST alias);
}

static xmlNodePtr build_hostdev(const UsbvmDevice *d, const UsbvmAttachSpec *spec)
{
    char buf[32];
    xmlNodePtr hd = xmlNewNode(NULL, BAD_CAST "hostdev");
    xmlNewProp(hd, BAD_CAST "mode", BAD_CAST "subsystem");
    xmlNewProp(hd, BAD_CAST "type", BAD_CAST "usb");
    /* usbvm does not ask libvirt to detach host drivers: USB hostdevs are claimed by QEMU. */
    xmlNewProp(hd, BAD_CAST "managed", BAD_CAST "no");
    xmlNodePtr src = xmlNewChild(hd, NULL, BAD_CAST "source", NULL);
    if (spec->persistent)
        /* The persistent definition must not stop the domain from starting when the device
         * is unplugged. */
        xmlNewProp(src, BAD_CAST "startupPolicy", BAD_CAST "optional");
    snprintf(buf, sizeof(buf), "0x%04x", d->vendor_id);
    xmlNewProp(xmlNewChild(src, NULL, BAD_CAST "vendor", NULL), BAD_CAST "id", BAD_CAST buf);
    snprintf(buf, sizeof(buf), "0x%04x", d->product_id);
    xmlNewProp(xmlNewChild(src, NULL, BAD_CAST "product", NULL), BAD_CAST "id", BAD_CAST buf);
    /* Resolved now, and in decimal: libvirt reads "004" as octal. */
    xmlNodePtr addr = xmlNewChild(src, NULL, BAD_CAST "address", NULL);
    snprintf(buf, sizeof(buf), "%u", d->busnum);
    xmlNewProp(addr, BAD_CAST "bus", BAD_CAST buf);
    snprintf(buf, sizeof(buf), "%u", d->devnum);
    xmlNewProp(addr, BAD_CAST "device", BAD_CAST buf);
    add_alias(hd, d->alias);
    return hd;
}

/* The first free unit on the domain's virtio-scsi controller, target 0. */
static unsigned next_scsi_unit(const UsbvmDomInfo *info)
{
    unsigned unit = 0;
    for (;; unit++) {
        char tu[32];
        snprintf(tu, sizeof(tu), "0:%u", unit);
        if (!usbvm_strv_contains(info->scsi_units, tu))
            return unit;
    }
}

char *usbvm_virt_disk_target(UsbvmMode mode, const UsbvmDomInfo *info)
{
    return usbvm_virt_next_target(mode == USBVM_MODE_VIRTIO ? "vd" : "sd", info->targets);
}

const char *usbvm_virt_disk_bus(UsbvmMode mode)
{
    return mode == USBVM_MODE_SCSI ? "scsi" : mode == USBVM_MODE_USB_DISK ? "usb" : "virtio";
}

static xmlNodePtr build_disk(const UsbvmDevice *d, const UsbvmBlock *b, const UsbvmAttachSpec *spec,
                             const char *target, const UsbvmDomInfo *info)
{
    const char *cache = spec->cache ? spec->cache : "none";
    const char *io = spec->io;
    if (!io)
        /* O_DIRECT (cache none/directsync) lets native AIO work; otherwise QEMU refuses it. */
        io = streq(cache, "none") || streq(cache, "directsync") ? "native" : "threads";
    const char *bus = usbvm_virt_disk_bus(spec->mode);

    xmlNodePtr disk = xmlNewNode(NULL, BAD_CAST "disk");
    xmlNewProp(disk, BAD_CAST "type", BAD_CAST "block");
    xmlNewProp(disk, BAD_CAST "device", BAD_CAST "disk");
    xmlNodePtr drv = xmlNewChild(disk, NULL, BAD_CAST "driver", NULL);
    xmlNewProp(drv, BAD_CAST "name", BAD_CAST "qemu");
    xmlNewProp(drv, BAD_CAST "type", BAD_CAST "raw");
    xmlNewProp(drv, BAD_CAST "cache", BAD_CAST cache);
    xmlNewProp(drv, BAD_CAST "io", BAD_CAST io);
    xmlNodePtr src = xmlNewChild(disk, NULL, BAD_CAST "source", NULL);
    xmlNewProp(src, BAD_CAST "dev", BAD_CAST usbvm_virt_disk_source(b));
    /* Raw, so there is no backing chain: the empty element says so, and libvirt does not open
     * the device to look for one on every attach (and every start of a --config domain). */
    xmlNewChild(disk, NULL, BAD_CAST "backingStore", NULL);
    xmlNodePtr tgt = xmlNewChild(disk, NULL, BAD_CAST "target", NULL);
    xmlNewProp(tgt, BAD_CAST "dev", BAD_CAST target);
    xmlNewProp(tgt, BAD_CAST "bus", BAD_CAST bus);
    if (spec->mode == USBVM_MODE_USB_DISK)
        xmlNewProp(tgt, BAD_CAST "removable", BAD_CAST "on");
    if (spec->readonly || b->readonly)
        xmlNewChild(disk, NULL, BAD_CAST "readonly", NULL);
    _cleanup_free_ char *serial = usbvm_virt_serial(d->serial);
    if (serial)
        /* xmlNewTextChild escapes; the value is also restricted to libvirt's pattern. */
        xmlNewTextChild(disk, NULL, BAD_CAST "serial", BAD_CAST serial);
    add_alias(disk, d->alias);
    if (spec->mode == USBVM_MODE_SCSI && info) {
        /* libvirt derives a SCSI disk's address from its name, seven to a controller, and
         * adds a controller (and takes a PCI slot) for every seven. virtio-scsi has 16384
         * LUNs per target: say where it goes. */
        unsigned unit = next_scsi_unit(info);
        char buf[32];
        xmlNodePtr a = xmlNewChild(disk, NULL, BAD_CAST "address", NULL);
        xmlNewProp(a, BAD_CAST "type", BAD_CAST "drive");
        snprintf(buf, sizeof(buf), "%d", info->scsi_index);
        xmlNewProp(a, BAD_CAST "controller", BAD_CAST buf);
        xmlNewProp(a, BAD_CAST "bus", BAD_CAST "0");
        xmlNewProp(a, BAD_CAST "target", BAD_CAST "0");
        snprintf(buf, sizeof(buf), "%u", unit);
        xmlNewProp(a, BAD_CAST "unit", BAD_CAST buf);
    }
    return disk;
}

char *usbvm_virt_scsi_controller_xml(int index)
{
    char buf[16];
    xmlNodePtr c = xmlNewNode(NULL, BAD_CAST "controller");
    xmlNewProp(c, BAD_CAST "type", BAD_CAST "scsi");
    snprintf(buf, sizeof(buf), "%d", index);
    xmlNewProp(c, BAD_CAST "index", BAD_CAST buf);
    xmlNewProp(c, BAD_CAST "model", BAD_CAST "virtio-scsi");
    return doc_to_string(c);
}

int usbvm_virt_device_xml_info(const UsbvmDevice *d, const UsbvmAttachSpec *spec,
                               const UsbvmDomInfo *info, char **ret, UsbvmError *err)
{
    static const UsbvmDomInfo none = { .scsi_index = 0 };
    if (!info)
        info = &none;
    if (!d->alias || strncmp(d->alias, USBVM_ALIAS_PREFIX, strlen(USBVM_ALIAS_PREFIX)) != 0)
        return usbvm_error_set(err, USBVM_E_FAILED, EINVAL, "device %s has no usbvm alias",
                               strempty(d->port));
    if (spec->mode == USBVM_MODE_USB) {
        *ret = doc_to_string(build_hostdev(d, spec));
        return 0;
    }
    if (!usbvm_mode_is_disk(spec->mode))
        return usbvm_error_set(err, USBVM_E_USAGE, EINVAL, "unknown mode");
    if (spec->cache && !usbvm_cache_valid(spec->cache))
        return usbvm_error_set(err, USBVM_E_USAGE, EINVAL, "unknown disk cache mode '%s'",
                               spec->cache);
    if (spec->io && !usbvm_io_valid(spec->io))
        return usbvm_error_set(err, USBVM_E_USAGE, EINVAL, "unknown disk io mode '%s'", spec->io);
    const UsbvmBlock *b = usbvm_virt_pick_disk(d);
    if (!b || !b->devnode)
        return usbvm_error_set(err, USBVM_E_REFUSED, ENODEV,
                               "%s has no block device to attach as %s; use --mode usb to pass "
                               "the USB device itself",
                               strempty(d->port), usbvm_mode_to_string(spec->mode));
    _cleanup_free_ char *target = usbvm_virt_disk_target(spec->mode, info);
    if (!target)
        return usbvm_error_set(err, USBVM_E_FAILED, ENOSPC, "no free disk target name left");
    *ret = doc_to_string(build_disk(d, b, spec, target, info));
    return 0;
}

void usbvm_dominfo_add_disk(UsbvmDomInfo *info, UsbvmMode mode)
{
    if (!usbvm_mode_is_disk(mode))
        return;
    char *target = usbvm_virt_disk_target(mode, info);
    if (mode == USBVM_MODE_SCSI) {
        char tu[32];
        snprintf(tu, sizeof(tu), "0:%u", next_scsi_unit(info));
        info->scsi_units = usbvm_strv_push(info->scsi_units, tu);
    }
    if (target)
        info->targets = usbvm_strv_push(info->targets, target);
    free(target);
}

int usbvm_virt_device_xml(const UsbvmDevice *d, const UsbvmAttachSpec *spec, const char *domain_xml,
                          char **ret, UsbvmError *err)
{
    UsbvmDomInfo info = { .scsi_index = 0 };
    if (domain_xml) {
        int r = usbvm_dominfo_from_xml(domain_xml, &info, err);
        if (r < 0)
            return r;
    }
    int r = usbvm_virt_device_xml_info(d, spec, &info, ret, err);
    usbvm_dominfo_clear(&info);
    return r;
}
