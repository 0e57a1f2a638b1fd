/* Placeholder until device discovery lands; replaced wholesale. */
#include "device.h"

#include <errno.h>

const UsbvmHostPaths usbvm_host_paths_default = { "/proc/self/mountinfo", "/proc/swaps" };

int usbvm_device_list_enumerate(struct udev *udev, const UsbvmHostPaths *paths,
                                UsbvmDeviceList **ret, UsbvmError *err)
{
    return usbvm_error_set(err, USBVM_E_FAILED, ENOSYS, "device discovery is not built yet");
}

void usbvm_device_list_free(UsbvmDeviceList *l)
{
}
