/* The USB device model: what usbvm knows about one USB device on this host, built from sysfs
 * (attributes and directories), udev's records (properties and /dev links) and libusb
 * (descriptors). */
#pragma once

#include "error.h"
#include "util.h"

#include <libudev.h>
#include <stdint.h>

DEFINE_TRIVIAL_CLEANUP_FUNC(struct udev *, udev_unref)
DEFINE_TRIVIAL_CLEANUP_FUNC(struct udev_device *, udev_device_unref)
DEFINE_TRIVIAL_CLEANUP_FUNC(struct udev_enumerate *, udev_enumerate_unref)
DEFINE_TRIVIAL_CLEANUP_FUNC(struct udev_monitor *, udev_monitor_unref)

typedef struct UsbvmInterface {
    uint8_t number;   /* bInterfaceNumber */
    uint8_t alt;      /* bAlternateSetting */
    uint8_t cls;      /* bInterfaceClass */
    uint8_t subclass; /* bInterfaceSubClass */
    uint8_t protocol; /* bInterfaceProtocol */
    char *driver;     /* bound driver ("usb-storage", "uas", "usbhid"), NULL when none */
} UsbvmInterface;

typedef enum UsbvmBlockType {
    USBVM_BLOCK_DISK,
    USBVM_BLOCK_PARTITION,
} UsbvmBlockType;

typedef struct UsbvmBlock {
    UsbvmBlockType type;
    char *name;    /* kernel name: "sdb", "sdb1" */
    char *devnode; /* "/dev/sdb1" (udev DEVNAME; may point at a loop device in tests) */
    char *by_id;   /* "/dev/disk/by-id/usb-SanDisk_Cruzer_...-0:0" or NULL */
    char *syspath;
    char *parent; /* for a partition: its disk's name ("sdb"); NULL for a disk */
    unsigned major, minor;
    uint64_t size; /* bytes */
    bool removable;
    bool readonly;
    char *fs_type;  /* "vfat", NULL when none (udev ID_FS_TYPE) */
    char *fs_label; /* as udev decoded it (ID_FS_LABEL_ENC unescaped), NULL when none */
    char *fs_uuid;
    /* Host use, filled by usbvm_device_check_host_use() / enumeration. */
    char *mountpoint; /* first mount point of this block device, NULL when not mounted */
    bool swap;        /* active swap */
    char **holders;   /* NULL-terminated names from sysfs holders/ (dm-0, md127), or NULL */
} UsbvmBlock;

typedef struct UsbvmDevice {
    char *syspath; /* "/sys/devices/pci0000:00/0000:00:14.0/usb1/1-2/1-2.4" */
    char *port;    /* sysname, the physical port path: "1-2.4" ("usb1" for a root hub) */
    unsigned busnum;
    unsigned devnum;
    char *devnode;      /* "/dev/bus/usb/001/004" */
    uint16_t vendor_id; /* idVendor */
    uint16_t product_id;
    uint16_t bcd_usb; /* "version" attribute as BCD: 0x0200, 0x0310 */
    uint16_t bcd_device;
    uint8_t dev_class, dev_subclass, dev_protocol;
    char *manufacturer; /* sysfs attribute as the device reports it, NULL when absent */
    char *product;
    char *serial;
    char *speed;        /* sysfs "speed" in Mbit/s as the kernel writes it: "1.5", "480", "5000" */
    char *connect_type; /* "hotplug", "hardwired", "not used", "unknown" (port/connect_type) */
    bool authorized;
    bool bound; /* a driver is bound to the device itself ("usb" once it is configured) */
    bool is_hub;
    /* Every interface and alternate setting the descriptors list when described (the nodes
     * sysfs shows lend them their drivers), else only the interface nodes sysfs shows now. */
    UsbvmInterface *interfaces;
    size_t n_interfaces;
    bool described;
    UsbvmBlock *blocks; /* whole disks first, each followed by its partitions */
    size_t n_blocks;
    /* Identity, stable across replugs: "0781:5567:<serial>" when a serial exists, else
     * "0781:5567@1-2.4". */
    char *identity;
    /* "ua-usbvm-<16 hex digits of usbvm_hash64(identity)>", the libvirt user alias. */
    char *alias;
    /* Ports of the other present devices that report the same identity (a clone, or two
     * sticks of a maker that gives every unit one serial), NULL when none: set by
     * usbvm_devices_mark_ambiguous(). Such a device's attachments cannot be told from the
     * other's (one alias), so usbvm does not act on it by policy. */
    char **same_identity;
} UsbvmDevice;

typedef struct UsbvmDeviceList {
    UsbvmDevice **devices;
    size_t n;
} UsbvmDeviceList;

/* Host-use sources; defaults are "/proc/self/mountinfo" and "/proc/swaps". Tests may point
 * them at other files. */
typedef struct UsbvmHostPaths {
    const char *mountinfo;
    const char *swaps;
} UsbvmHostPaths;
extern const UsbvmHostPaths usbvm_host_paths_default;

/* The host's mounts and swaps as a long-lived process keeps them: read again only when the
 * kernel says they changed (procfs files; other files, as tests use, are read every time). One
 * per thread. */
typedef struct UsbvmHostUseCache UsbvmHostUseCache;
UsbvmHostUseCache *usbvm_host_use_cache_new(const UsbvmHostPaths *paths);
void usbvm_host_use_cache_free(UsbvmHostUseCache *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(UsbvmHostUseCache *, usbvm_host_use_cache_free)

/* Builds the model of the USB device (DEVTYPE=usb_device) at syspath with its interfaces, block
 * devices (from udev's database too) and host use. -EINVAL when syspath is not a USB device. */
int usbvm_device_new_from_syspath(const char *syspath, UsbvmHostUseCache *host, UsbvmDevice **ret,
                                  UsbvmError *err);
void usbvm_device_free(UsbvmDevice *d);
/* A deep copy (for a thread that works on a device while the model moves on). */
UsbvmDevice *usbvm_device_dup(const UsbvmDevice *d);
DEFINE_TRIVIAL_CLEANUP_FUNC(UsbvmDevice *, usbvm_device_free)

/* Every USB device (root hubs included), sorted by bus then port path. */
int usbvm_device_list_enumerate(const UsbvmHostPaths *paths, UsbvmDeviceList **ret,
                                UsbvmError *err);
void usbvm_device_list_free(UsbvmDeviceList *l);
DEFINE_TRIVIAL_CLEANUP_FUNC(UsbvmDeviceList *, usbvm_device_list_free)

/* Resolves a device specifier: port path ("1-2.4"), "VID:PID" (ambiguous when two devices
 * match: the error lists the candidates), "serial=...", "/dev/sdX" or "/dev/sdXN",
 * "/dev/bus/usb/BBB/DDD", a sysfs path, or an identity/alias as usbvm prints them.
 * Returns a borrowed pointer into the list. Errors are USBVM_E_NOTFOUND and say what was
 * tried. */
int usbvm_device_list_resolve(const UsbvmDeviceList *l, const char *spec, UsbvmDevice **ret,
                              UsbvmError *err);

/* True when the device exposes a mass-storage interface (class 08) or has block devices. */
bool usbvm_device_is_storage(const UsbvmDevice *d);
/* Drops the block devices at or below syspath (a block device the kernel just removed, which
 * a re-read of sysfs may still have seen); returns how many were dropped. */
size_t usbvm_device_drop_blocks(UsbvmDevice *d, const char *syspath);
/* Whole disks of the device (type == USBVM_BLOCK_DISK), in order. */
size_t usbvm_device_disks(const UsbvmDevice *d, const UsbvmBlock **ret, size_t max);

/* Invariant 1: fills err (USBVM_E_REFUSED) and returns -EBUSY when any block device is
 * mounted, swap, or held on the host, naming it: "/dev/sdb1 is mounted on /media/x; unmount
 * it first". Returns 0 when the host does not use it. */
int usbvm_device_check_host_use(const UsbvmDevice *d, UsbvmError *err);
/* The same against the host's mounts, swaps and holders as they are now (d is not changed). */
int usbvm_device_check_host_use_now(const UsbvmDevice *d, UsbvmHostUseCache *host, UsbvmError *err);

/* Re-reads mountinfo/swaps/holders for the device's block devices, so that a check right
 * before an attach sees the host as it is now, not as it was at enumeration. */
int usbvm_device_refresh_host_use(UsbvmDevice *d, const UsbvmHostPaths *paths, UsbvmError *err);

/* A short human name: "SanDisk Cruzer Blade" from manufacturer + product, escaped; falls back
 * to "vvvv:pppp". */
char *usbvm_device_display_name(const UsbvmDevice *d);
/* The same name unescaped (raw bytes as the device reports them, for JSON), NULL when the
 * device reports neither string. */
char *usbvm_device_name(const UsbvmDevice *d);

/* Identity collisions. Marks every device whose identity (or alias) another device of devs
 * also has: fills same_identity with the other devices' ports (sorted as devs is), clears it
 * on the others. Returns the number of devices marked. usbvm_device_list_enumerate() calls it
 * on its list; a caller that keeps its own set of devices (watch) calls it after every
 * change of the set. */
size_t usbvm_devices_mark_ambiguous(UsbvmDevice *const *devs, size_t n);
static inline bool usbvm_device_is_ambiguous(const UsbvmDevice *d)
{
    return d->same_identity && d->same_identity[0];
}
/* Why usbvm does not act on an ambiguous device, one sentence for logs, "rules test" and
 * "show" (escaped): "0781:5567:X is also the identity of 1-3: ...". NULL when the device is
 * not ambiguous. */
char *usbvm_device_ambiguity(const UsbvmDevice *d);

/* Derives identity and alias from the ids, serial and port. Exposed for tests. */
char *usbvm_identity_for(uint16_t vid, uint16_t pid, const char *serial, const char *port);
char *usbvm_alias_for_identity(const char *identity);
