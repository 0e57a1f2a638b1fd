/* Placeholder until the libvirt layer lands; replaced wholesale. */
#include "virt.h"

#include <errno.h>

void usbvm_virt_init(void)
{
}

int usbvm_virt_open(const char *uri, virConnectPtr *ret, UsbvmError *err)
{
    return usbvm_error_set(err, USBVM_E_LIBVIRT, ENOSYS, "the libvirt layer is not built yet");
}

int usbvm_virt_list_domdevs(virConnectPtr conn, UsbvmDomDevList **ret, UsbvmError *err)
{
    return usbvm_error_set(err, USBVM_E_LIBVIRT, ENOSYS, "the libvirt layer is not built yet");
}

void usbvm_domdev_list_free(UsbvmDomDevList *l)
{
}
