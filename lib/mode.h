/* How a device reaches a guest, and the per-attachment options shared by the CLI, the rules
 * and the daemon. */
#pragma once

#include "util.h"

typedef enum UsbvmMode {
    USBVM_MODE_USB,      /* <hostdev mode='subsystem' type='usb'>: passthrough */
    USBVM_MODE_VIRTIO,   /* whole block device as virtio-blk */
    USBVM_MODE_SCSI,     /* block device on a virtio-scsi controller */
    USBVM_MODE_USB_DISK, /* block device as an emulated USB mass-storage disk */
    _USBVM_MODE_MAX,
} UsbvmMode;

const char *usbvm_mode_to_string(UsbvmMode m);             /* "usb", "virtio", "scsi", "usb-disk" */
int usbvm_mode_from_string(const char *s, UsbvmMode *ret); /* -EINVAL when unknown */
bool usbvm_mode_is_disk(UsbvmMode m);
/* "usb|virtio|scsi|usb-disk", for help texts and completion. */
#define USBVM_MODE_CHOICES "usb|virtio|scsi|usb-disk"

/* Disk cache and io values that libvirt accepts; NULL means usbvm's default. */
#define USBVM_CACHE_CHOICES "none|writethrough|writeback|directsync|unsafe"
#define USBVM_IO_CHOICES    "native|threads|io_uring"
bool usbvm_cache_valid(const char *s);
bool usbvm_io_valid(const char *s);

typedef struct UsbvmAttachSpec {
    UsbvmMode mode;
    bool readonly;
    const char *cache; /* NULL: "none" */
    const char *io;    /* NULL: "native" (needs cache none or directsync, else "threads") */
    bool persistent;   /* also in the persistent definition (--persistent / rule option) */
} UsbvmAttachSpec;
