/* Block devices of USB storage: disks and partitions from udev, and whether the host uses
 * them (mounted, swap, held by device-mapper/md). Host use is matched by major:minor, not by
 * name: a mount of /dev/disk/by-label/X or of a renamed node is still a mount of sdb1. */
#include "device-internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/magic.h>
#include <poll.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/vfs.h>
#include <unistd.h>

/* The byte a 4-byte escape at p stands for, or -1 when p does not start one. */
static int hex_escape(const char *p)
{
    /* "\xHH", as udev writes labels (ID_FS_LABEL_ENC) */
    if (p[0] != '\\' || p[1] != 'x' || usbvm_hexval(p[2]) < 0 || usbvm_hexval(p[3]) < 0)
        return -1;
    return usbvm_hexval(p[2]) << 4 | usbvm_hexval(p[3]);
}

static int octal_escape(const char *p)
{
    /* "\OOO", as the kernel writes paths in mountinfo and swaps */
    if (p[0] != '\\' || p[1] < '0' || p[1] > '3' || p[2] < '0' || p[2] > '7' || p[3] < '0' ||
        p[3] > '7')
        return -1;
    return (p[1] - '0') << 6 | (p[2] - '0') << 3 | (p[3] - '0');
}

/* s with each escape replaced by its byte; an escaped NUL is dropped. */
static char *decode_escapes(const char *s, int (*escape)(const char *p))
{
    if (!s)
        return NULL;
    UsbvmBuf b = { 0 };
    for (const char *p = s; *p;) {
        int c = escape(p);
        if (c < 0) {
            usbvm_buf_append(&b, p++, 1);
            continue;
        }
        char byte = (char)c;
        if (byte != '\0')
            usbvm_buf_append(&b, &byte, 1);
        p += 4;
    }
    return usbvm_buf_steal(&b);
}

char *usbvm_decode_hex_escapes(const char *s)
{
    return decode_escapes(s, hex_escape);
}

char *usbvm_decode_octal_escapes(const char *s)
{
    return decode_escapes(s, octal_escape);
}

const UsbvmHostPaths usbvm_host_paths_default = { "/proc/self/mountinfo", "/proc/swaps" };

void usbvm_host_use_clear(UsbvmHostUse *h)
{
    for (size_t i = 0; i < h->n_mounts; i++) {
        free(h->mounts[i].source);
        free(h->mounts[i].mountpoint);
    }
    free(h->mounts);
    usbvm_strv_free(h->swaps);
    *h = (UsbvmHostUse){ 0 };
}

/* mountinfo(5): "36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=..."
 * Fields 3 (major:minor) and 5 (mount point); the source follows the " - fstype ". */
static int parse_mountinfo(const char *text, UsbvmHostUse *h)
{
    _cleanup_free_ char *copy = xstrdup(text);
    char *save = NULL;
    for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char *f[5] = { 0 };
        char *lsave = NULL, *tok = strtok_r(line, " ", &lsave);
        for (size_t i = 0; i < 5 && tok; i++, tok = strtok_r(NULL, " ", &lsave))
            f[i] = tok;
        if (!f[4])
            continue;
        unsigned maj, min;
        if (sscanf(f[2], "%u:%u", &maj, &min) != 2)
            continue;
        /* Skip optional fields up to the separator; then fstype, then source. */
        const char *source = NULL;
        for (; tok; tok = strtok_r(NULL, " ", &lsave))
            if (streq(tok, "-")) {
                if (strtok_r(NULL, " ", &lsave))
                    source = strtok_r(NULL, " ", &lsave);
                break;
            }
        h->mounts = xrealloc(h->mounts, (h->n_mounts + 1) * sizeof(UsbvmMount));
        h->mounts[h->n_mounts++] = (UsbvmMount){
            .major = maj,
            .minor = min,
            .source = usbvm_decode_octal_escapes(source),
            .mountpoint = usbvm_decode_octal_escapes(f[4]),
        };
    }
    return 0;
}

/* /proc/swaps: a header line, then "Filename Type Size Used Priority" with the file name
 * octal-escaped as in mountinfo. */
static int parse_swaps(const char *text, UsbvmHostUse *h)
{
    _cleanup_free_ char *copy = xstrdup(text);
    char *save = NULL;
    bool header = true;
    for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (header) {
            header = false;
            if (strncmp(line, "Filename", 8) == 0)
                continue;
        }
        char *end = strpbrk(line, " \t");
        if (end)
            *end = '\0';
        if (!*line)
            continue;
        _cleanup_free_ char *name = usbvm_decode_octal_escapes(line);
        h->swaps = usbvm_strv_push(h->swaps, name);
    }
    return 0;
}

int usbvm_host_use_load(const UsbvmHostPaths *paths, UsbvmHostUse *ret, UsbvmError *err)
{
    if (!paths)
        paths = &usbvm_host_paths_default;
    UsbvmHostUse h = { 0 };
    _cleanup_free_ char *mi = NULL, *sw = NULL;
    int r = usbvm_read_file(paths->mountinfo, &mi, NULL);
    if (r < 0 && r != -ENOENT)
        return usbvm_error_set(err, USBVM_E_FAILED, r, "cannot read '%s': %s", paths->mountinfo,
                               strerror(-r));
    r = usbvm_read_file(paths->swaps, &sw, NULL);
    if (r < 0 && r != -ENOENT)
        return usbvm_error_set(err, USBVM_E_FAILED, r, "cannot read '%s': %s", paths->swaps,
                               strerror(-r));
    if (mi)
        parse_mountinfo(mi, &h);
    if (sw)
        parse_swaps(sw, &h);
    *ret = h;
    return 0;
}

/* ---- the host use, kept ---------------------------------------------------------------------
 * procfs says when mountinfo or swaps change: polled, the file reports POLLPRI once after each
 * mount, unmount, swapon or swapoff since its last poll (or its open). A host running containers
 * has thousands of mounts, which every plug and every final check would otherwise parse. */
struct UsbvmHostUseCache {
    char *path[2]; /* mountinfo, swaps */
    int fd[2];     /* kept open while pollable */
    bool pollable; /* both are procfs files: a poll tells whether they changed */
    bool loaded;
    unsigned reads; /* how often the tables were read (tests) */
    UsbvmHostUse use;
};

UsbvmHostUseCache *usbvm_host_use_cache_new(const UsbvmHostPaths *paths)
{
    if (!paths)
        paths = &usbvm_host_paths_default;
    UsbvmHostUseCache *c = xcalloc(1, sizeof(*c));
    c->path[0] = xstrdup(paths->mountinfo);
    c->path[1] = xstrdup(paths->swaps);
    c->fd[0] = c->fd[1] = -1;
    return c;
}

void usbvm_host_use_cache_free(UsbvmHostUseCache *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < 2; i++) {
        free(c->path[i]);
        if (c->fd[i] >= 0)
            close(c->fd[i]);
    }
    usbvm_host_use_clear(&c->use);
    free(c);
}

unsigned usbvm_host_use_cache_reads(const UsbvmHostUseCache *c)
{
    return c->reads;
}

static bool on_procfs(int fd)
{
    struct statfs sf;
    return fd >= 0 && fstatfs(fd, &sf) == 0 && sf.f_type == PROC_SUPER_MAGIC;
}

static bool host_use_changed(const UsbvmHostUseCache *c)
{
    struct pollfd p[2] = { { .fd = c->fd[0], .events = POLLPRI },
                           { .fd = c->fd[1], .events = POLLPRI } };
    if (poll(p, 2, 0) < 0)
        return true;
    return ((p[0].revents | p[1].revents) & (POLLPRI | POLLERR | POLLNVAL)) != 0;
}

static int read_from_start(int fd, char **ret)
{
    if (lseek(fd, 0, SEEK_SET) < 0)
        return -errno;
    return usbvm_read_fd(fd, ret, NULL);
}

/* Opens both files the first time: they stay open only when both are procfs's. */
static void host_use_open(UsbvmHostUseCache *c)
{
    for (size_t i = 0; i < 2; i++) {
        if (c->fd[i] >= 0)
            close(c->fd[i]);
        c->fd[i] = open(c->path[i], O_RDONLY | O_CLOEXEC);
    }
    c->pollable = on_procfs(c->fd[0]) && on_procfs(c->fd[1]);
    for (size_t i = 0; i < 2 && !c->pollable; i++)
        if (c->fd[i] >= 0) {
            close(c->fd[i]);
            c->fd[i] = -1;
        }
}

int usbvm_host_use_cache_get(UsbvmHostUseCache *c, const UsbvmHostUse **ret, UsbvmError *err)
{
    if (!c->loaded)
        host_use_open(c);
    else if (c->pollable && !host_use_changed(c)) {
        *ret = &c->use;
        return 0;
    }
    UsbvmHostUse h = { 0 };
    if (c->pollable) {
        _cleanup_free_ char *mi = NULL, *sw = NULL;
        int r = read_from_start(c->fd[0], &mi);
        if (r == 0)
            r = read_from_start(c->fd[1], &sw);
        if (r < 0) {
            c->loaded = false; /* the poll that said so is spent: open both again next time */
            return usbvm_error_set(err, USBVM_E_FAILED, -r, "cannot read '%s' or '%s': %s",
                                   c->path[0], c->path[1], strerror(-r));
        }
        parse_mountinfo(mi, &h);
        parse_swaps(sw, &h);
    } else {
        UsbvmHostPaths paths = { c->path[0], c->path[1] };
        int r = usbvm_host_use_load(&paths, &h, err);
        if (r < 0)
            return r;
    }
    usbvm_host_use_clear(&c->use);
    c->use = h;
    c->loaded = true;
    c->reads++;
    *ret = &c->use;
    return 0;
}

void usbvm_block_clear(UsbvmBlock *b)
{
    free(b->name);
    free(b->devnode);
    free(b->by_id);
    free(b->syspath);
    free(b->parent);
    free(b->fs_type);
    free(b->fs_label);
    free(b->fs_uuid);
    free(b->mountpoint);
    usbvm_strv_free(b->holders);
    *b = (UsbvmBlock){ 0 };
}

/* Where udev keeps what its rules learnt of a device: the record libudev reads for a device's
 * properties and /dev links. */
#define UDEV_DB_DIR "/run/udev/data"

/* The line at *p (up to its newline or the end), and *p moved past it. */
static bool next_line(const char **p, const char **line, size_t *len)
{
    if (!*p || !**p)
        return false;
    const char *end = strchrnul(*p, '\n');
    *line = *p;
    *len = (size_t)(end - *p);
    *p = *end ? end + 1 : end;
    return true;
}

static char **strv_push_n(char **v, const char *s, size_t n)
{
    _cleanup_free_ char *copy = xstrndup(s, n);
    return usbvm_strv_push(v, copy);
}

char **usbvm_udev_properties(const char *uevent, const char *db)
{
    char **v = NULL;
    const char *line;
    size_t n;
    for (const char *p = uevent; next_line(&p, &line, &n);)
        if (n > 1 && line[0] != '=' && memchr(line, '=', n))
            v = strv_push_n(v, line, n);
    UsbvmBuf links = { 0 };
    for (const char *p = db; next_line(&p, &line, &n);) {
        if (n > 3 && strncmp(line, "E:", 2) == 0 && line[2] != '=' && memchr(line + 2, '=', n - 2))
            v = strv_push_n(v, line + 2, n - 2);
        else if (n > 2 && strncmp(line, "S:", 2) == 0)
            usbvm_buf_printf(&links, "%s/dev/%.*s", links.len ? " " : "", (int)(n - 2), line + 2);
    }
    if (links.len) {
        _cleanup_free_ char *devlinks = usbvm_buf_steal(&links);
        _cleanup_free_ char *kv = xasprintf("DEVLINKS=%s", devlinks);
        v = usbvm_strv_push(v, kv);
    }
    usbvm_buf_free(&links);
    return v;
}

const char *usbvm_udev_property(char *const *props, const char *key)
{
    const char *found = NULL;
    size_t n = strlen(key);
    for (size_t i = 0; props && props[i]; i++)
        if (strncmp(props[i], key, n) == 0 && props[i][n] == '=')
            found = props[i] + n + 1;
    return found;
}

/* Prefers the usb- link (what libvirt users know), then any other by-id link. */
static char *pick_by_id(const char *links)
{
    if (!links)
        return NULL;
    _cleanup_free_ char *copy = xstrdup(links);
    char *best = NULL, *save = NULL;
    for (char *l = strtok_r(copy, " ", &save); l; l = strtok_r(NULL, " ", &save)) {
        if (strncmp(l, "/dev/disk/by-id/usb-", 20) == 0)
            return (free(best), xstrdup(l));
        if (!best && strncmp(l, "/dev/disk/by-id/", 16) == 0)
            best = xstrdup(l);
    }
    return best;
}

static bool attr_true(int dfd, const char *name)
{
    _cleanup_free_ char *v = usbvm_sysfs_attr(dfd, name);
    return v && streq(v, "1");
}

/* The kernel's name of the block device, as libudev gives it: the last part of its syspath, a
 * '!' standing for a '/' ("cciss!c0d0"). */
static char *block_sysname(const char *syspath)
{
    const char *base = strrchr(syspath, '/');
    char *name = xstrdup(base ? base + 1 : syspath);
    for (char *c = name; (c = strchr(c, '!'));)
        *c = '/';
    return name;
}

static bool parse_devnum(const char *maj, const char *min, unsigned *ret_maj, unsigned *ret_min)
{
    return maj && min && usbvm_parse_uint(maj, 10, UINT_MAX, ret_maj) == 0 &&
           usbvm_parse_uint(min, 10, UINT_MAX, ret_min) == 0;
}

/* The udev properties of the block device at dfd (its uevent file's, then udev's record) and
 * its device number; NULL when it is gone. The uevent's MAJOR and MINOR are the kernel's own
 * number, the one its "dev" attribute shows and mountinfo uses; "dev" is read only when they
 * are missing. */
static char **block_properties(int dfd, unsigned *ret_maj, unsigned *ret_min)
{
    _cleanup_free_ char *uevent = usbvm_sysfs_attr(dfd, "uevent");
    if (!uevent)
        return NULL;
    _cleanup_free_ char *maj = usbvm_uevent_value(uevent, "MAJOR");
    _cleanup_free_ char *min = usbvm_uevent_value(uevent, "MINOR");
    if (!parse_devnum(maj, min, ret_maj, ret_min)) {
        _cleanup_free_ char *dev = usbvm_sysfs_attr(dfd, "dev");
        char *colon = dev ? strchr(dev, ':') : NULL;
        if (colon)
            *colon++ = '\0';
        if (!parse_devnum(dev, colon, ret_maj, ret_min))
            *ret_maj = *ret_min = 0;
    }
    _cleanup_free_ char *db = NULL;
    if (*ret_maj || *ret_min) {
        _cleanup_free_ char *path = xasprintf(UDEV_DB_DIR "/b%u:%u", *ret_maj, *ret_min);
        (void)usbvm_read_file(path, &db, NULL); /* none: udev has not seen it, or no udev */
    }
    return usbvm_udev_properties(uevent, db);
}

char **usbvm_block_properties(const char *syspath)
{
    _cleanup_close_ int dfd = open(syspath, O_PATH | O_DIRECTORY | O_CLOEXEC);
    unsigned maj, min;
    return dfd < 0 ? NULL : block_properties(dfd, &maj, &min);
}

int usbvm_block_read(const char *syspath, UsbvmBlock *ret)
{
    _cleanup_close_ int dfd = open(syspath, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return -errno;
    UsbvmBlock b = { 0 };
    _cleanup_strv_free_ char **props = block_properties(dfd, &b.major, &b.minor);
    if (!props)
        return -ENOENT; /* unplugged while we looked */
    const char *devtype = usbvm_udev_property(props, "DEVTYPE");
    if (streq(devtype, "disk"))
        b.type = USBVM_BLOCK_DISK;
    else if (streq(devtype, "partition"))
        b.type = USBVM_BLOCK_PARTITION;
    else
        return -EINVAL;

    b.name = block_sysname(syspath);
    b.syspath = xstrdup(syspath);
    const char *node = usbvm_udev_property(props, "DEVNAME");
    b.devnode = node && *node ? xasprintf("%s%s", node[0] == '/' ? "" : "/dev/", node)
                              : xasprintf("/dev/%s", b.name);
    b.by_id = pick_by_id(usbvm_udev_property(props, "DEVLINKS"));

    uint64_t sectors = 0;
    _cleanup_free_ char *size = usbvm_sysfs_attr(dfd, "size");
    if (size && usbvm_parse_u64(size, 10, &sectors) == 0 && sectors <= UINT64_MAX / 512)
        b.size = sectors * 512; /* sysfs counts 512-byte sectors whatever the block size */

    b.readonly = attr_true(dfd, "ro");
    if (b.type == USBVM_BLOCK_PARTITION) {
        /* A partition's sysfs directory sits in its disk's: .../block/sdb/sdb1. The disk's
         * removable and ro are inherited in usbvm_blocks_sort(), without another read. */
        const char *end = strrchr(b.syspath, '/');
        const char *start = end;
        while (start && start > b.syspath && start[-1] != '/')
            start--;
        if (end && start && end > start)
            b.parent = xstrndup(start, (size_t)(end - start));
    } else {
        b.removable = attr_true(dfd, "removable");
    }

    const char *v = usbvm_udev_property(props, "ID_FS_TYPE");
    b.fs_type = v && *v ? xstrdup(v) : NULL;
    /* ID_FS_LABEL is mangled (spaces -> '_'); the _ENC form holds the real bytes. */
    v = usbvm_udev_property(props, "ID_FS_LABEL_ENC");
    if (v && *v)
        b.fs_label = usbvm_decode_hex_escapes(v);
    else if ((v = usbvm_udev_property(props, "ID_FS_LABEL")) && *v)
        b.fs_label = xstrdup(v);
    v = usbvm_udev_property(props, "ID_FS_UUID");
    b.fs_uuid = v && *v ? xstrdup(v) : NULL;

    *ret = b;
    return 0;
}

static char **read_holders(const char *syspath)
{
    _cleanup_free_ char *dir = xasprintf("%s/holders", syspath);
    DIR *d = opendir(dir);
    if (!d)
        return NULL;
    char **v = NULL;
    struct dirent *de;
    while ((de = readdir(d)))
        if (de->d_name[0] != '.')
            v = usbvm_strv_push(v, de->d_name);
    closedir(d);
    usbvm_strv_sort(v); /* readdir order is arbitrary; keep messages and output stable */
    return v;
}

static bool same_node(const char *path, const UsbvmBlock *b)
{
    if (!path)
        return false;
    if (streq(path, b->devnode) || streq(path, b->by_id))
        return true;
    struct stat st;
    return stat(path, &st) == 0 && S_ISBLK(st.st_mode) && major(st.st_rdev) == b->major &&
           minor(st.st_rdev) == b->minor;
}

void usbvm_block_apply_host_use(UsbvmBlock *b, const UsbvmHostUse *h)
{
    free(b->mountpoint);
    b->mountpoint = NULL;
    for (size_t i = 0; i < h->n_mounts && !b->mountpoint; i++) {
        const UsbvmMount *m = &h->mounts[i];
        /* major 0 is an anonymous device (btrfs subvolumes, tmpfs): only the source says. */
        if ((m->major != 0 && m->major == b->major && m->minor == b->minor) ||
            (m->source && m->source[0] == '/' && streq(m->source, b->devnode)))
            b->mountpoint = xstrdup(m->mountpoint);
    }
    b->swap = false;
    for (size_t i = 0; h->swaps && h->swaps[i] && !b->swap; i++)
        b->swap = same_node(h->swaps[i], b);
    usbvm_strv_free(b->holders);
    b->holders = read_holders(b->syspath);
}

static unsigned partition_number(const UsbvmBlock *b)
{
    /* Trailing digits of the kernel name: sdb10 -> 10, nvme0n1p2 -> 2. */
    size_t n = strlen(b->name);
    while (n > 0 && b->name[n - 1] >= '0' && b->name[n - 1] <= '9')
        n--;
    return (unsigned)strtoul(b->name + n, NULL, 10);
}

static int block_cmp(const void *a, const void *b)
{
    const UsbvmBlock *x = a, *y = b;
    const char *dx = x->type == USBVM_BLOCK_DISK ? x->name : strempty(x->parent);
    const char *dy = y->type == USBVM_BLOCK_DISK ? y->name : strempty(y->parent);
    if (strlen(dx) != strlen(dy)) /* sdz before sdaa */
        return strlen(dx) < strlen(dy) ? -1 : 1;
    int c = strcmp(dx, dy);
    if (c)
        return c;
    if (x->type != y->type)
        return x->type == USBVM_BLOCK_DISK ? -1 : 1;
    unsigned px = partition_number(x), py = partition_number(y);
    if (px != py)
        return px < py ? -1 : 1;
    return strcmp(x->name, y->name);
}

void usbvm_blocks_sort(UsbvmBlock *blocks, size_t n)
{
    if (n > 1)
        qsort(blocks, n, sizeof(UsbvmBlock), block_cmp);
    /* Removable is a property of the disk; a read-only disk makes its partitions read-only. */
    const UsbvmBlock *disk = NULL;
    for (size_t i = 0; i < n; i++) {
        if (blocks[i].type == USBVM_BLOCK_DISK) {
            disk = &blocks[i];
        } else if (disk && streq(blocks[i].parent, disk->name)) {
            blocks[i].removable = disk->removable;
            blocks[i].readonly = blocks[i].readonly || disk->readonly;
        }
    }
}
