/* The handles a verb needs, opened on first use and released by main: the libvirt connection,
 * the devices plugged in now. */
#include "cli.h"

#include <errno.h>

virConnectPtr usbvm_cli_connect(UsbvmCli *cli, UsbvmError *err)
{
    if (!cli->conn && usbvm_virt_open(cli->connect_uri, &cli->conn, err) < 0)
        return NULL;
    return cli->conn;
}

int usbvm_cli_devices(UsbvmDeviceList **ret, UsbvmError *err)
{
    return usbvm_device_list_enumerate(&usbvm_host_paths_default, ret, err);
}

int usbvm_cli_resolve(UsbvmCli *cli, const char *spec, UsbvmDeviceList **ret_list,
                      UsbvmDevice **ret_dev, UsbvmError *err)
{
    int r = usbvm_cli_devices(ret_list, err);
    if (r < 0)
        return r;
    return usbvm_device_list_resolve(*ret_list, spec, ret_dev, err);
}

int usbvm_cli_domain(UsbvmCli *cli, char **name, virDomainPtr *ret, UsbvmError *err)
{
    virConnectPtr conn = usbvm_cli_connect(cli, err);
    if (!conn)
        return -ECONNREFUSED;
    virDomainPtr dom = NULL;
    int r = usbvm_virt_lookup(conn, *name, &dom, err);
    if (r < 0)
        return r;
    /* Report the domain by name even when given by UUID. */
    free(*name);
    *name = xstrdup(virDomainGetName(dom));
    *ret = dom;
    return 0;
}
