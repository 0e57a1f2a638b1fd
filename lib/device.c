/* The USB device model from libudev: every USB device with its interfaces, and for storage its
 * block devices and their host use. Strings are kept as the device reports them (raw bytes);
 * escaping is the printer's job. */
#include "device-internal.h"
#include "usbdesc.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

char *usbvm_identity_for(uint16_t vid, uint16_t pid, const char *serial, const char *port)
{
    if (serial && *serial)
        return xasprintf("%04x:%04x:%s", vid, pid, serial);
    return xasprintf("%04x:%04x@%s", vid, pid, strempty(port));
}

char *usbvm_alias_for_identity(const char *identity)
{
    uint64_t h = usbvm_hash64(identity, strlen(identity));
    return xasprintf("ua-usbvm-%016llx", (unsigned long long)h);
}

void usbvm_device_free(UsbvmDevice *d)
{
    if (!d)
        return;
    free(d->syspath);
    free(d->port);
    free(d->devnode);
    free(d->manufacturer);
    free(d->product);
    free(d->serial);
    free(d->speed);
    free(d->connect_type);
    for (size_t i = 0; i < d->n_interfaces; i++)
        free(d->interfaces[i].driver);
    free(d->interfaces);
    for (size_t i = 0; i < d->n_blocks; i++)
        usbvm_block_clear(&d->blocks[i]);
    free(d->blocks);
    free(d->identity);
    free(d->alias);
    usbvm_strv_free(d->same_identity);
    free(d);
}

static char *dup0(const char *s)
{
    return s ? xstrdup(s) : NULL;
}

static char **strv_dup(char *const *v)
{
    char **r = NULL;
    for (size_t i = 0; v && v[i]; i++)
        r = usbvm_strv_push(r, v[i]);
    return r;
}

UsbvmDevice *usbvm_device_dup(const UsbvmDevice *d)
{
    UsbvmDevice *c = xmalloc(sizeof(*c));
    *c = *d;
    c->syspath = dup0(d->syspath);
    c->port = dup0(d->port);
    c->devnode = dup0(d->devnode);
    c->manufacturer = dup0(d->manufacturer);
    c->product = dup0(d->product);
    c->serial = dup0(d->serial);
    c->speed = dup0(d->speed);
    c->connect_type = dup0(d->connect_type);
    c->identity = dup0(d->identity);
    c->alias = dup0(d->alias);
    c->same_identity = strv_dup(d->same_identity);
    c->interfaces = xcalloc(d->n_interfaces + 1, sizeof(*c->interfaces));
    for (size_t i = 0; i < d->n_interfaces; i++) {
        c->interfaces[i] = d->interfaces[i];
        c->interfaces[i].driver = dup0(d->interfaces[i].driver);
    }
    c->blocks = xcalloc(d->n_blocks + 1, sizeof(*c->blocks));
    for (size_t i = 0; i < d->n_blocks; i++) {
        const UsbvmBlock *b = &d->blocks[i];
        UsbvmBlock *cb = &c->blocks[i];
        *cb = *b;
        cb->name = dup0(b->name);
        cb->devnode = dup0(b->devnode);
        cb->by_id = dup0(b->by_id);
        cb->syspath = dup0(b->syspath);
        cb->parent = dup0(b->parent);
        cb->fs_type = dup0(b->fs_type);
        cb->fs_label = dup0(b->fs_label);
        cb->fs_uuid = dup0(b->fs_uuid);
        cb->mountpoint = dup0(b->mountpoint);
        cb->holders = strv_dup(b->holders);
    }
    return c;
}

void usbvm_device_list_free(UsbvmDeviceList *l)
{
    if (!l)
        return;
    for (size_t i = 0; i < l->n; i++)
        usbvm_device_free(l->devices[i]);
    free(l->devices);
    free(l);
}

static unsigned attr_uint(int dfd, const char *name, int base, unsigned max)
{
    _cleanup_free_ char *v = usbvm_sysfs_attr(dfd, name);
    unsigned n = 0;
    if (!v)
        return 0;
    const char *p = v;
    while (*p == ' ')
        p++;
    if (usbvm_parse_uint(p, base, max, &n) < 0)
        return 0;
    return n;
}

/* The driver bound to the device at dfd: its "driver" link's name, else the DRIVER its uevent
 * file names (umockdev's testbeds may give only that); uevent: the file's text when the caller
 * read it already, else NULL. */
static char *driver_name(int dfd, const char *uevent)
{
    char target[PATH_MAX];
    ssize_t n = readlinkat(dfd, "driver", target, sizeof(target) - 1);
    if (n > 0) {
        target[n] = '\0';
        const char *base = strrchr(target, '/');
        return xstrdup(base ? base + 1 : target);
    }
    _cleanup_free_ char *own = uevent ? NULL : usbvm_sysfs_attr(dfd, "uevent");
    return usbvm_uevent_value(uevent ? uevent : own, "DRIVER");
}

/* "version" is " 2.00" or " 3.10": major.minor as BCD (0x0200, 0x0310). */
static uint16_t parse_bcd_version(const char *v)
{
    unsigned maj = 0, min = 0;
    if (!v || sscanf(v, " %u.%2x", &maj, &min) < 1 || maj > 99)
        return 0;
    return (uint16_t)(((maj / 10) << 12) | ((maj % 10) << 8) | (min & 0xff));
}

static uint16_t le16(const uint8_t *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}

/* with-interface means what it means in USBGuard: every interface and alternate setting the
 * device describes, not only the interface nodes sysfs shows now (one alternate setting per
 * interface, and none at all before the device is configured or while it is not
 * authorized). The interface nodes only lend their drivers to the settings they show (see
 * lend_driver). */
static bool interfaces_from_descriptors(UsbvmDevice *dev, const uint8_t *raw, size_t len)
{
    UsbvmInterface *ifs;
    size_t n;
    if (usbvm_usbdesc_parse_interfaces(raw, len, &ifs, &n) < 0)
        return false;
    dev->interfaces = ifs;
    dev->n_interfaces = n;
    return true;
}

/* The kernel's copy of the device's descriptors ("descriptors"), read once: the device
 * descriptor at its start, from which the kernel also formats idVendor, idProduct, bcdDevice,
 * version and the three class attributes (its 2-byte fields are little-endian, as on the bus),
 * and the configurations' interfaces after it. One read instead of seven attributes and five
 * more per interface. False when the file is missing or does not start with a device
 * descriptor; dev->described says whether the interfaces came from it too. */
static bool device_descriptors(int dfd, UsbvmDevice *dev)
{
    _cleanup_close_ int fd = openat(dfd, "descriptors", O_RDONLY | O_NOCTTY | O_CLOEXEC);
    _cleanup_free_ char *raw = NULL;
    size_t len = 0;
    if (fd < 0 || usbvm_read_fd(fd, &raw, &len) < 0)
        return false;
    const uint8_t *d = (const uint8_t *)raw;
    if (len < 18 || d[0] != 18 || d[1] != 1)
        return false;
    dev->bcd_usb = le16(d + 2);
    dev->dev_class = d[4];
    dev->dev_subclass = d[5];
    dev->dev_protocol = d[6];
    dev->vendor_id = le16(d + 8);
    dev->product_id = le16(d + 10);
    dev->bcd_device = le16(d + 12);
    dev->described = interfaces_from_descriptors(dev, d, len);
    return true;
}

/* The same fields from the attributes the kernel formats them into. */
static void device_descriptor_attrs(int dfd, UsbvmDevice *dev)
{
    dev->vendor_id = (uint16_t)attr_uint(dfd, "idVendor", 16, 0xffff);
    dev->product_id = (uint16_t)attr_uint(dfd, "idProduct", 16, 0xffff);
    dev->bcd_device = (uint16_t)attr_uint(dfd, "bcdDevice", 16, 0xffff);
    _cleanup_free_ char *version = usbvm_sysfs_attr(dfd, "version");
    dev->bcd_usb = parse_bcd_version(version);
    dev->dev_class = (uint8_t)attr_uint(dfd, "bDeviceClass", 16, 0xff);
    dev->dev_subclass = (uint8_t)attr_uint(dfd, "bDeviceSubClass", 16, 0xff);
    dev->dev_protocol = (uint8_t)attr_uint(dfd, "bDeviceProtocol", 16, 0xff);
}

/* A number the uevent file carries ("BUSNUM=001"), else the attribute the kernel formats it
 * into: one file fewer to open. */
static unsigned uevent_uint(const char *uevent, const char *key, int dfd, const char *attr,
                            unsigned max)
{
    _cleanup_free_ char *v = usbvm_uevent_value(uevent, key);
    unsigned n;
    if (v && usbvm_parse_uint(v, 10, max, &n) == 0)
        return n;
    return attr_uint(dfd, attr, 10, max);
}

/* The device's own attributes, and its interfaces when it is described; -EINVAL when syspath
 * is not a USB device (DEVTYPE usb_device). */
static int fill_basic(UsbvmDevice *dev, const char *syspath, UsbvmError *err)
{
    const char *sysname = strrchr(syspath, '/');
    _cleanup_close_ int dfd = open(syspath, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0 || !sysname || !sysname[1])
        return usbvm_error_set(err, USBVM_E_FAILED, dfd < 0 ? errno : EINVAL, "cannot read %s: %s",
                               syspath, dfd < 0 ? strerror(errno) : "not a sysfs path");
    _cleanup_free_ char *uevent = usbvm_sysfs_attr(dfd, "uevent");
    _cleanup_free_ char *devtype = usbvm_uevent_value(uevent, "DEVTYPE");
    if (!streq(devtype, "usb_device"))
        return usbvm_error_set(err, USBVM_E_FAILED, EINVAL, "'%s' is not a USB device", syspath);
    dev->syspath = xstrdup(syspath);
    dev->port = xstrdup(sysname + 1);
    dev->busnum = uevent_uint(uevent, "BUSNUM", dfd, "busnum", 65535);
    dev->devnum = uevent_uint(uevent, "DEVNUM", dfd, "devnum", 65535);
    _cleanup_free_ char *node = usbvm_uevent_value(uevent, "DEVNAME");
    dev->devnode = node && *node ? xasprintf("%s%s", node[0] == '/' ? "" : "/dev/", node)
                                 : xasprintf("/dev/bus/usb/%03u/%03u", dev->busnum, dev->devnum);
    if (!device_descriptors(dfd, dev))
        device_descriptor_attrs(dfd, dev);
    dev->manufacturer = usbvm_sysfs_attr(dfd, "manufacturer");
    dev->product = usbvm_sysfs_attr(dfd, "product");
    dev->serial = usbvm_sysfs_attr(dfd, "serial");
    if (dev->serial && !*dev->serial) {
        free(dev->serial);
        dev->serial = NULL;
    }
    dev->speed = usbvm_sysfs_attr(dfd, "speed");
    dev->connect_type = usbvm_sysfs_attr(dfd, "port/connect_type");
    _cleanup_free_ char *auth = usbvm_sysfs_attr(dfd, "authorized");
    dev->authorized = !auth || !streq(auth, "0");
    _cleanup_free_ char *driver = driver_name(dfd, uevent);
    dev->bound = driver != NULL;
    dev->is_hub = dev->dev_class == 0x09;
    dev->identity = usbvm_identity_for(dev->vendor_id, dev->product_id, dev->serial, dev->port);
    dev->alias = usbvm_alias_for_identity(dev->identity);
    return 0;
}

/* An interface node ("1-2:1.0") of a described device lends its driver to the setting it shows
 * now: its number from its name ("<device>:<config>.<number>", decimal, as the kernel names
 * it), its alternate setting from sysfs. */
static void lend_driver(UsbvmDevice *dev, const char *path)
{
    const char *dot = strrchr(path, '.');
    unsigned number, alt;
    if (!dot || usbvm_parse_uint(dot + 1, 10, 0xff, &number) < 0)
        return;
    _cleanup_close_ int dfd = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
    _cleanup_free_ char *a = dfd >= 0 ? usbvm_sysfs_attr(dfd, "bAlternateSetting") : NULL;
    const char *p = a;
    while (p && *p == ' ')
        p++;
    if (!p || usbvm_parse_uint(p, 10, 0xff, &alt) < 0)
        return; /* unplugged while we looked */
    for (size_t i = 0; i < dev->n_interfaces; i++) {
        UsbvmInterface *s = &dev->interfaces[i];
        if (s->number == number && s->alt == alt && !s->driver) {
            s->driver = driver_name(dfd, NULL);
            return;
        }
    }
}

/* An interface node ("1-2:1.0") of a device whose descriptors could not be read: the setting
 * sysfs shows now, and its driver, are all there is. */
static void add_interface(UsbvmDevice *dev, const char *path)
{
    _cleanup_close_ int dfd = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
    _cleanup_free_ char *cls = dfd >= 0 ? usbvm_sysfs_attr(dfd, "bInterfaceClass") : NULL;
    unsigned c = 0;
    if (!cls || usbvm_parse_uint(cls, 16, 0xff, &c) < 0)
        return; /* not an interface, or unplugged while we looked */
    UsbvmInterface i = {
        .number = (uint8_t)attr_uint(dfd, "bInterfaceNumber", 16, 0xff),
        .alt = (uint8_t)attr_uint(dfd, "bAlternateSetting", 10, 0xff),
        .cls = (uint8_t)c,
        .subclass = (uint8_t)attr_uint(dfd, "bInterfaceSubClass", 16, 0xff),
        .protocol = (uint8_t)attr_uint(dfd, "bInterfaceProtocol", 16, 0xff),
        .driver = driver_name(dfd, NULL),
    };
    dev->interfaces = xrealloc(dev->interfaces, (dev->n_interfaces + 1) * sizeof(i));
    dev->interfaces[dev->n_interfaces++] = i;
}

static void add_block(UsbvmDevice *dev, const char *syspath, const UsbvmHostUse *use)
{
    UsbvmBlock b;
    if (usbvm_block_read(syspath, &b) < 0)
        return; /* not a disk or partition, or unplugged while we looked */
    usbvm_block_apply_host_use(&b, use);
    dev->blocks = xrealloc(dev->blocks, (dev->n_blocks + 1) * sizeof(b));
    dev->blocks[dev->n_blocks++] = b;
}

static int interface_cmp(const void *a, const void *b)
{
    const UsbvmInterface *x = a, *y = b;
    if (x->number != y->number)
        return x->number < y->number ? -1 : 1;
    return (int)x->alt - (int)y->alt;
}

/* The USB device a sysfs path belongs to: the deepest device whose directory contains it. This
 * is the parent chain, walked on strings: creating a udev device per ancestor costs a
 * uevent and database read each, which dominated "list" on a 64-device host. */
static bool is_usb_device_name(const char *s, size_t n)
{
    /* "1-2", "1-2.4.1": bus, '-', then ports joined by '.'. */
    size_t i = 0, digits = 0;
    bool dash = false;
    for (; i < n; i++) {
        if (s[i] >= '0' && s[i] <= '9')
            digits++;
        else if ((s[i] == '-' && !dash) || (s[i] == '.' && dash)) {
            if (!digits)
                return false;
            dash = true;
            digits = 0;
        } else
            return false;
    }
    return dash && digits;
}

/* True when a USB device other than the one at the prefix lies between it and path, e.g.
 * a disk of a stick behind a hub, seen from the hub. */
static bool below_another_device(const char *path, size_t prefix_len)
{
    const char *p = path + prefix_len;
    while (*p == '/') {
        const char *q = strchr(p + 1, '/');
        size_t n = q ? (size_t)(q - p - 1) : strlen(p + 1);
        if (is_usb_device_name(p + 1, n))
            return true;
        if (!q)
            break;
        p = q;
    }
    return false;
}

static UsbvmDevice *owner_of(UsbvmDevice **devs, size_t n, const char *path)
{
    UsbvmDevice *best = NULL;
    size_t best_len = 0;
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(devs[i]->syspath);
        if (len > best_len && strncmp(path, devs[i]->syspath, len) == 0 && path[len] == '/') {
            best = devs[i];
            best_len = len;
        }
    }
    if (best && below_another_device(path, best_len))
        return NULL;
    return best;
}

static void device_finish(UsbvmDevice *dev)
{
    if (!dev->described && dev->n_interfaces > 1)
        qsort(dev->interfaces, dev->n_interfaces, sizeof(UsbvmInterface), interface_cmp);
    usbvm_blocks_sort(dev->blocks, dev->n_blocks);
}

/* "/sys/class/block/sdb" -> "/sys/devices/.../block/sdb", by its link alone: the entries of a
 * class or bus directory are links into /sys/devices. */
static char *sysfs_resolve(const char *dir, const char *name)
{
    _cleanup_free_ char *link = xasprintf("%s/%s", dir, name);
    char target[PATH_MAX];
    ssize_t n = readlink(link, target, sizeof(target) - 1);
    if (n <= 0)
        return NULL;
    target[n] = '\0';
    if (target[0] == '/')
        return xstrdup(target);
    /* Join and fold the "..": the link is relative to its directory. */
    _cleanup_free_ char *joined = xasprintf("%s/%s", dir, target);
    char **parts = NULL;
    _cleanup_free_ char *copy = xstrdup(joined);
    size_t np = 0;
    for (char *save = NULL, *t = strtok_r(copy, "/", &save); t; t = strtok_r(NULL, "/", &save)) {
        if (streq(t, ".."))
            np = np ? np - 1 : 0;
        else if (!streq(t, ".")) {
            parts = xrealloc(parts, (np + 1) * sizeof(*parts));
            parts[np++] = t;
        }
    }
    UsbvmBuf b = { 0 };
    for (size_t i = 0; i < np; i++)
        usbvm_buf_printf(&b, "/%s", parts[i]);
    free(parts);
    return usbvm_buf_steal(&b);
}

/* The syspaths of every entry of a class or bus directory ("/sys/class/block"). libudev's
 * enumerator reads every entry's uevent file to match on it; the names are all that is
 * needed to find the ones below a USB device. */
static char **sysfs_entries(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return NULL;
    char **v = NULL;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        _cleanup_free_ char *path = sysfs_resolve(dir, e->d_name);
        if (path)
            v = usbvm_strv_push(v, path);
    }
    closedir(d);
    return v;
}

static bool is_dir(DIR *d, const struct dirent *e)
{
    if (e->d_type != DT_UNKNOWN)
        return e->d_type == DT_DIR; /* a link (driver, subsystem, device) is not followed */
    struct stat st;
    return fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode);
}

/* The directory name in the directory at dfd (AT_FDCWD: name is a path), for reading. */
static DIR *open_dir_at(int dfd, const char *name)
{
    int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (!d && fd >= 0)
        close(fd);
    return d;
}

/* A disk's partitions: the directories in its own named after it ("sdb1"). */
static void disk_partitions(int dfd, const char *disk, const char *name, char ***v)
{
    DIR *d = open_dir_at(dfd, name);
    if (!d)
        return;
    size_t n = strlen(name);
    struct dirent *e;
    while ((e = readdir(d)))
        if (strncmp(e->d_name, name, n) == 0 && e->d_name[n] && is_dir(d, e)) {
            _cleanup_free_ char *path = xasprintf("%s/%s", disk, e->d_name);
            *v = usbvm_strv_push(*v, path);
        }
    closedir(d);
}

/* The interfaces and block devices in a device's subtree, by its directories alone: an
 * interface is named "<device>:<config>.<number>" (a root hub's "1-0:1.0"), a "block"
 * directory holds disks, a disk's directory its partitions. The walk follows no link, and goes
 * into no other USB device (a hub's children), power/ or endpoint. libudev's enumerator reads
 * the uevent file of every directory in the subtree (1 of the 1.6 ms a plug's read took under
 * umockdev), and the block class lists every disk of the host. Each directory is opened
 * relative to its parent's (dfd, name); dir is its path, for the lists. */
static void subtree_entries(int dfd, const char *name, const char *dir, int depth, char ***usb,
                            char ***blocks)
{
    DIR *d = depth < 16 ? open_dir_at(dfd, name) : NULL;
    if (!d)
        return;
    const char *base = strrchr(dir, '/');
    bool block_dir = base && streq(base + 1, "block");
    struct dirent *e;
    while ((e = readdir(d))) {
        const char *sub = e->d_name;
        if (sub[0] == '.' || streq(sub, "power") || strncmp(sub, "ep_", 3) == 0 ||
            is_usb_device_name(sub, strlen(sub)) || !is_dir(d, e))
            continue;
        _cleanup_free_ char *path = xasprintf("%s/%s", dir, sub);
        if (block_dir) {
            *blocks = usbvm_strv_push(*blocks, path);
            disk_partitions(dirfd(d), path, sub, blocks);
            continue;
        }
        if (depth == 0 && strchr(sub, ':'))
            *usb = usbvm_strv_push(*usb, path);
        subtree_entries(dirfd(d), sub, path, depth + 1, usb, blocks);
    }
    closedir(d);
}

/* Interfaces and block devices below the devices, each handed to the device it is below: for
 * one device (parent), from its subtree; for every device, from usb_all (the usb bus's
 * entries) and the block class's links. */
static void collect_children(const char *parent, char *const *usb_all, UsbvmDevice **devs, size_t n,
                             const UsbvmHostUse *use)
{
    char **usb = NULL, **blocks = NULL;
    if (parent) {
        subtree_entries(AT_FDCWD, parent, parent, 0, &usb, &blocks);
        usb_all = usb;
    } else {
        blocks = sysfs_entries("/sys/class/block");
    }
    for (size_t i = 0; usb_all && usb_all[i]; i++) {
        const char *path = usb_all[i];
        /* Interfaces are named "<device>:<config>.<number>"; devices never hold a ':'. */
        const char *base = strrchr(path, '/');
        if (!base || !strchr(base, ':'))
            continue;
        UsbvmDevice *dev = owner_of(devs, n, path);
        if (dev && dev->described)
            lend_driver(dev, path);
        else if (dev)
            add_interface(dev, path);
    }

    for (size_t i = 0; blocks && blocks[i]; i++) {
        UsbvmDevice *dev = owner_of(devs, n, blocks[i]); /* loop, nvme, dm: none, skipped */
        if (dev)
            add_block(dev, blocks[i], use);
    }
    usbvm_strv_free(blocks);
    usbvm_strv_free(usb);
    for (size_t i = 0; i < n; i++)
        device_finish(devs[i]);
}

int usbvm_device_new_from_syspath(const char *syspath, UsbvmHostUseCache *host, UsbvmDevice **ret,
                                  UsbvmError *err)
{
    _cleanup_(usbvm_device_freep) UsbvmDevice *dev = xcalloc(1, sizeof(UsbvmDevice));
    int r = fill_basic(dev, syspath, err);
    if (r < 0)
        return r;
    const UsbvmHostUse *use;
    r = usbvm_host_use_cache_get(host, &use, err);
    if (r < 0)
        return r;
    collect_children(dev->syspath, NULL, &dev, 1, use);
    *ret = TAKE_PTR(dev);
    return 0;
}

/* Port paths in numeric order: usb1 (root hub) < 1-2 < 1-2.4 < 1-10. */
static int port_cmp(const char *a, const char *b)
{
    bool ra = strncmp(a, "usb", 3) == 0, rb = strncmp(b, "usb", 3) == 0;
    if (ra != rb)
        return ra ? -1 : 1;
    while (*a && *b) {
        bool da = *a >= '0' && *a <= '9', db = *b >= '0' && *b <= '9';
        if (da && db) {
            char *ea, *eb;
            unsigned long na = strtoul(a, &ea, 10), nb = strtoul(b, &eb, 10);
            if (na != nb)
                return na < nb ? -1 : 1;
            a = ea;
            b = eb;
            continue;
        }
        if (*a != *b)
            return (unsigned char)*a < (unsigned char)*b ? -1 : 1;
        a++;
        b++;
    }
    return *a ? 1 : *b ? -1 : 0;
}

static int device_cmp(const void *a, const void *b)
{
    const UsbvmDevice *x = *(UsbvmDevice *const *)a, *y = *(UsbvmDevice *const *)b;
    if (x->busnum != y->busnum)
        return x->busnum < y->busnum ? -1 : 1;
    return port_cmp(x->port, y->port);
}

int usbvm_device_list_enumerate(const UsbvmHostPaths *paths, UsbvmDeviceList **ret, UsbvmError *err)
{
    _cleanup_(usbvm_device_list_freep) UsbvmDeviceList *l = xcalloc(1, sizeof(UsbvmDeviceList));
    /* One listing of the usb bus finds devices and interfaces. */
    _cleanup_(usbvm_strv_freep) char **usb = sysfs_entries("/sys/bus/usb/devices");
    int r;
    for (size_t i = 0; usb && usb[i]; i++) {
        const char *path = usb[i];
        const char *base = strrchr(path, '/');
        if (!base || strchr(base, ':'))
            continue; /* an interface */
        _cleanup_(usbvm_device_freep) UsbvmDevice *dev = xcalloc(1, sizeof(UsbvmDevice));
        if (fill_basic(dev, path, NULL) < 0)
            continue; /* not a USB device, or unplugged while we looked */
        l->devices = xrealloc(l->devices, (l->n + 1) * sizeof(UsbvmDevice *));
        l->devices[l->n++] = TAKE_PTR(dev);
    }
    if (l->n > 1)
        qsort(l->devices, l->n, sizeof(UsbvmDevice *), device_cmp);

    UsbvmHostUse use = { 0 };
    r = usbvm_host_use_load(paths, &use, err);
    if (r < 0)
        return r;
    collect_children(NULL, usb, l->devices, l->n, &use);
    usbvm_host_use_clear(&use);
    usbvm_devices_mark_ambiguous(l->devices, l->n);
    *ret = TAKE_PTR(l);
    return 0;
}

int usbvm_device_refresh_host_use(UsbvmDevice *d, const UsbvmHostPaths *paths, UsbvmError *err)
{
    UsbvmHostUse use = { 0 };
    int r = usbvm_host_use_load(paths, &use, err);
    if (r < 0)
        return r;
    for (size_t i = 0; i < d->n_blocks; i++)
        usbvm_block_apply_host_use(&d->blocks[i], &use);
    usbvm_host_use_clear(&use);
    return 0;
}

bool usbvm_device_is_storage(const UsbvmDevice *d)
{
    if (d->n_blocks > 0)
        return true;
    for (size_t i = 0; i < d->n_interfaces; i++)
        if (d->interfaces[i].cls == 0x08)
            return true;
    return false;
}

size_t usbvm_device_disks(const UsbvmDevice *d, const UsbvmBlock **ret, size_t max)
{
    size_t n = 0;
    for (size_t i = 0; i < d->n_blocks; i++)
        if (d->blocks[i].type == USBVM_BLOCK_DISK) {
            if (n < max)
                ret[n] = &d->blocks[i];
            n++;
        }
    return n;
}

int usbvm_device_check_host_use(const UsbvmDevice *d, UsbvmError *err)
{
    for (size_t i = 0; i < d->n_blocks; i++) {
        const UsbvmBlock *b = &d->blocks[i];
        if (b->mountpoint) {
            _cleanup_free_ char *mp = usbvm_escape(b->mountpoint);
            return usbvm_error_set(err, USBVM_E_REFUSED, EBUSY,
                                   "%s is mounted on %s; unmount it first", b->devnode, mp);
        }
        if (b->swap)
            return usbvm_error_set(err, USBVM_E_REFUSED, EBUSY,
                                   "%s is in use as swap; run 'swapoff %s' first", b->devnode,
                                   b->devnode);
        if (b->holders && b->holders[0]) {
            UsbvmBuf names = { 0 };
            for (size_t k = 0; b->holders[k]; k++)
                usbvm_buf_printf(&names, "%s%s", k ? ", " : "", b->holders[k]);
            _cleanup_free_ char *held = usbvm_buf_steal(&names);
            return usbvm_error_set(err, USBVM_E_REFUSED, EBUSY,
                                   "%s is held by %s (device-mapper/LVM/md); release it first",
                                   b->devnode, held);
        }
    }
    return 0;
}

/* The partitions the kernel has for a disk now, from its sysfs directory ("sdb1", ...), that
 * the model does not list yet (udev may not have told us about them). */
static void add_fresh_partitions(const UsbvmDevice *d, const UsbvmBlock *disk, UsbvmBlock **blocks,
                                 size_t *n)
{
    DIR *dir = disk->syspath ? opendir(disk->syspath) : NULL;
    if (!dir)
        return;
    struct dirent *e;
    size_t len = strlen(disk->name);
    while ((e = readdir(dir))) {
        bool known = false;
        for (size_t i = 0; i < d->n_blocks; i++)
            known |= streq(d->blocks[i].name, e->d_name);
        if (known || strncmp(e->d_name, disk->name, len) != 0 || !e->d_name[len])
            continue;
        _cleanup_free_ char *syspath = xasprintf("%s/%s", disk->syspath, e->d_name);
        _cleanup_free_ char *devpath = xasprintf("%s/dev", syspath), *dev = NULL;
        size_t dl;
        unsigned maj, min;
        if (usbvm_read_file(devpath, &dev, &dl) < 0 || sscanf(dev, "%u:%u", &maj, &min) != 2)
            continue;
        *blocks = xrealloc(*blocks, (*n + 1) * sizeof(**blocks));
        (*blocks)[(*n)++] = (UsbvmBlock){ .type = USBVM_BLOCK_PARTITION,
                                          .name = xstrdup(e->d_name),
                                          .devnode = xasprintf("/dev/%s", e->d_name),
                                          .syspath = xstrdup(syspath),
                                          .major = maj,
                                          .minor = min };
    }
    closedir(dir);
}

int usbvm_device_check_host_use_now(const UsbvmDevice *d, UsbvmHostUseCache *host, UsbvmError *err)
{
    UsbvmHostUse fresh = { 0 };
    const UsbvmHostUse *use = &fresh;
    int r = host ? usbvm_host_use_cache_get(host, &use, err)
                 : usbvm_host_use_load(&usbvm_host_paths_default, &fresh, err);
    if (r < 0)
        return r;
    /* A view of the device whose blocks carry the host's use as it is now, including
     * partitions the model has not seen yet; d is not touched, so another thread may read it
     * meanwhile. */
    UsbvmBlock *blocks = NULL;
    size_t n = 0;
    for (size_t i = 0; i < d->n_blocks; i++) {
        blocks = xrealloc(blocks, (n + 1) * sizeof(*blocks));
        blocks[n] = d->blocks[i];
        blocks[n].mountpoint = NULL;
        blocks[n].holders = NULL;
        blocks[n].name = xstrdup(strempty(d->blocks[i].name));
        blocks[n].devnode = xstrdup(strempty(d->blocks[i].devnode));
        blocks[n].syspath = d->blocks[i].syspath ? xstrdup(d->blocks[i].syspath) : NULL;
        blocks[n].by_id = d->blocks[i].by_id ? xstrdup(d->blocks[i].by_id) : NULL;
        blocks[n].parent = blocks[n].fs_type = blocks[n].fs_label = blocks[n].fs_uuid = NULL;
        n++;
    }
    for (size_t i = 0; i < d->n_blocks; i++)
        if (d->blocks[i].type == USBVM_BLOCK_DISK)
            add_fresh_partitions(d, &d->blocks[i], &blocks, &n);
    for (size_t i = 0; i < n; i++)
        usbvm_block_apply_host_use(&blocks[i], use);
    UsbvmDevice view = *d;
    view.blocks = blocks;
    view.n_blocks = n;
    r = usbvm_device_check_host_use(&view, err);
    for (size_t i = 0; i < n; i++)
        usbvm_block_clear(&blocks[i]);
    free(blocks);
    usbvm_host_use_clear(&fresh);
    return r;
}

char *usbvm_device_name(const UsbvmDevice *d)
{
    const char *m = d->manufacturer && *d->manufacturer ? d->manufacturer : NULL;
    const char *p = d->product && *d->product ? d->product : NULL;
    if (m && p) {
        /* "SanDisk" + "SanDisk Cruzer" would say SanDisk twice. */
        if (strncmp(p, m, strlen(m)) == 0)
            return xstrdup(p);
        return xasprintf("%s %s", m, p);
    }
    if (m || p)
        return xstrdup(m ? m : p);
    return NULL;
}

size_t usbvm_device_drop_blocks(UsbvmDevice *d, const char *syspath)
{
    size_t n = strlen(syspath), kept = 0, dropped = 0;
    for (size_t i = 0; i < d->n_blocks; i++) {
        const char *p = d->blocks[i].syspath;
        if (p && strncmp(p, syspath, n) == 0 && (p[n] == '\0' || p[n] == '/')) {
            usbvm_block_clear(&d->blocks[i]);
            dropped++;
            continue;
        }
        d->blocks[kept++] = d->blocks[i];
    }
    d->n_blocks = kept;
    return dropped;
}

char *usbvm_device_display_name(const UsbvmDevice *d)
{
    _cleanup_free_ char *n = usbvm_device_name(d);
    if (!n)
        return xasprintf("%04x:%04x", d->vendor_id, d->product_id);
    return usbvm_escape(n);
}

/* ---- Identity collisions ----
 *
 * Two present devices that report the same vendor, product and serial.
 * Their identity, and so their alias, is one, so an attachment of either looks like an
 * attachment of both: an unplug of the one, or a stale-address check made on it, would
 * detach the other. usbvm keeps the identity as the device reports it (an attachment made
 * while the device was alone must still be recognised when the clone leaves) and instead
 * marks both devices; nothing acts on a marked device by policy, and the CLI refuses to
 * attach or detach one by anything but its alias. */
static bool same_identity(const UsbvmDevice *a, const UsbvmDevice *b)
{
    /* The alias too: two identities whose 64-bit hashes meet are as indistinguishable. */
    return (a->identity && b->identity && streq(a->identity, b->identity)) ||
           (a->alias && b->alias && streq(a->alias, b->alias));
}

size_t usbvm_devices_mark_ambiguous(UsbvmDevice *const *devs, size_t n)
{
    size_t marked = 0;
    for (size_t i = 0; i < n; i++) {
        UsbvmDevice *d = devs[i];
        usbvm_strv_free(d->same_identity);
        d->same_identity = NULL;
        for (size_t j = 0; j < n; j++)
            if (j != i && same_identity(d, devs[j]))
                d->same_identity = usbvm_strv_push(d->same_identity, strempty(devs[j]->port));
        if (d->same_identity)
            marked++;
    }
    return marked;
}
