#include "mode.h"

#include <errno.h>

static const char *const mode_names[_USBVM_MODE_MAX] = {
    [USBVM_MODE_USB] = "usb",
    [USBVM_MODE_VIRTIO] = "virtio",
    [USBVM_MODE_SCSI] = "scsi",
    [USBVM_MODE_USB_DISK] = "usb-disk",
};

const char *usbvm_mode_to_string(UsbvmMode m)
{
    return (unsigned)m < _USBVM_MODE_MAX ? mode_names[m] : "unknown";
}

int usbvm_mode_from_string(const char *s, UsbvmMode *ret)
{
    for (unsigned i = 0; i < _USBVM_MODE_MAX; i++)
        if (streq(s, mode_names[i])) {
            *ret = (UsbvmMode)i;
            return 0;
        }
    return -EINVAL;
}

bool usbvm_mode_is_disk(UsbvmMode m)
{
    return m == USBVM_MODE_VIRTIO || m == USBVM_MODE_SCSI || m == USBVM_MODE_USB_DISK;
}

static bool in_choices(const char *s, const char *const *choices)
{
    for (; *choices; choices++)
        if (streq(s, *choices))
            return true;
    return false;
}

bool usbvm_cache_valid(const char *s)
{
    static const char *const c[] = { "none",       "writethrough", "writeback",
                                     "directsync", "unsafe",       NULL };
    return in_choices(s, c);
}

bool usbvm_io_valid(const char *s)
{
    static const char *const c[] = { "native", "threads", "io_uring", NULL };
    return in_choices(s, c);
}
