/* Shared between lib/device.c and lib/storage.c; not part of the library's interface. */
#pragma once

#include "device.h"
#include "sysfs.h"

/* What the host has mounted and swapped on, read once per enumeration. */
typedef struct UsbvmMount {
    unsigned major, minor;
    char *source;     /* mount source as mountinfo names it ("/dev/sdb1"), decoded */
    char *mountpoint; /* decoded (\040 -> space) */
} UsbvmMount;

typedef struct UsbvmHostUse {
    UsbvmMount *mounts;
    size_t n_mounts;
    char **swaps; /* file names from /proc/swaps, decoded */
} UsbvmHostUse;

/* Reads mountinfo and swaps. A missing file counts as empty (a minimal container may have no
 * /proc/swaps); any other read error is returned. */
int usbvm_host_use_load(const UsbvmHostPaths *paths, UsbvmHostUse *ret, UsbvmError *err);
void usbvm_host_use_clear(UsbvmHostUse *h);
/* The cache's tables, current as of this call; valid until the cache's next call. */
int usbvm_host_use_cache_get(UsbvmHostUseCache *c, const UsbvmHostUse **ret, UsbvmError *err);
/* How many times the cache read the tables (a test's view of "only when they changed"). */
unsigned usbvm_host_use_cache_reads(const UsbvmHostUseCache *c);

/* A device's udev properties as libudev gives them, "KEY=VALUE" each: its uevent file's (the
 * kernel's own; under umockdev, all of them), then those of udev's record of it (db: the text
 * of /run/udev/data/b8:16 or NULL; its "E:" lines, and its "S:" links below /dev as
 * DEVLINKS). Where a key comes twice, the last counts. */
char **usbvm_udev_properties(const char *uevent, const char *db);
/* KEY's value in such a list (the last one), NULL when absent. */
const char *usbvm_udev_property(char *const *props, const char *key);
/* The udev properties of the block device at syspath; NULL when it is gone. */
char **usbvm_block_properties(const char *syspath);
/* Fills a block device (DEVTYPE disk or partition) from its sysfs directory and udev's record,
 * without libudev: libudev resolves the whole path again, one directory at a time, for each
 * device it makes. -ENOENT when it is gone, -EINVAL when it is neither disk nor partition. */
int usbvm_block_read(const char *syspath, UsbvmBlock *ret);
void usbvm_block_clear(UsbvmBlock *b);
/* Sets mountpoint, swap and holders of the block from the host-use tables and sysfs. */
void usbvm_block_apply_host_use(UsbvmBlock *b, const UsbvmHostUse *h);
/* Sorts blocks: each disk followed by its partitions, partitions by number. */
void usbvm_blocks_sort(UsbvmBlock *blocks, size_t n);

/* Decodes udev's \xNN escapes (ID_FS_LABEL_ENC) and mountinfo's octal \NNN escapes. */
char *usbvm_decode_hex_escapes(const char *s);
char *usbvm_decode_octal_escapes(const char *s);
