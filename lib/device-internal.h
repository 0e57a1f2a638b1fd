/* Shared between lib/device.c and lib/storage.c; not part of the library's interface. */
#pragma once

#include "device.h"

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

/* Fills a block device from its udev device (DEVTYPE disk or partition). Returns -EINVAL
 * when it is neither. */
int usbvm_block_from_udev(struct udev_device *d, UsbvmBlock *ret);
void usbvm_block_clear(UsbvmBlock *b);
/* Sets mountpoint, swap and holders of the block from the host-use tables and sysfs. */
void usbvm_block_apply_host_use(UsbvmBlock *b, const UsbvmHostUse *h);
/* Sorts blocks: each disk followed by its partitions, partitions by number. */
void usbvm_blocks_sort(UsbvmBlock *blocks, size_t n);

/* Decodes udev's \xNN escapes (ID_FS_LABEL_ENC) and mountinfo's octal \NNN escapes. */
char *usbvm_decode_hex_escapes(const char *s);
char *usbvm_decode_octal_escapes(const char *s);
