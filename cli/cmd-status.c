/* usbvm status [--json]: every device carrying a ua-usbvm- alias in a running domain, with
 * its mode, whether its host device is still present and where the guest has it mounted. The
 * live XML is the state. */
#include "cli.h"
#include "guest-json.h"
#include "virt.h"

#include <string.h>

const struct poptOption usbvm_status_options[] = {
    USBVM_COMMON_OPTIONS,
    POPT_TABLEEND,
};

static const UsbvmColumn status_columns[] = {
    { "domain", "DOMAIN", USBVM_FMT_STR },    { "device", "DEVICE", USBVM_FMT_STR },
    { "mode", "MODE", USBVM_FMT_STR },        { "target", "TARGET", USBVM_FMT_STR },
    { "present", "PRESENT", USBVM_FMT_BOOL }, { "source", "SOURCE", USBVM_FMT_STR },
    { "alias", "ALIAS", USBVM_FMT_STR },      { "text.guest", "GUEST", USBVM_FMT_STR },
};

int usbvm_cmd_status(UsbvmCli *cli, const UsbvmVerb *verb, int argc, const char **argv)
{
    _cleanup_(usbvm_cli_args_clear) UsbvmCliArgs p = { 0 };
    if (!usbvm_cli_parse(cli, verb, argc, argv, NULL, NULL, &p))
        return p.rc;

    UsbvmError err = { 0 };
    virConnectPtr conn = usbvm_cli_connect(cli, &err);
    if (!conn)
        return usbvm_cli_error(cli, &err);
    _cleanup_(usbvm_domdev_list_freep) UsbvmDomDevList *l = NULL;
    if (usbvm_virt_list_domdevs(conn, &l, &err) < 0)
        return usbvm_cli_error(cli, &err);

    /* Presence: the host devices now, matched by alias. When they cannot be read, presence is
     * unknown. */
    _cleanup_(usbvm_device_list_freep) UsbvmDeviceList *devs = NULL;
    UsbvmError derr = { 0 };
    if (usbvm_cli_devices(&devs, &derr) < 0)
        usbvm_cli_warning(cli, "cannot tell which devices are present: %s", derr.message);

    UsbvmCliGuests guests = { 0 };
    json_object *arr = json_object_new_array();
    for (size_t i = 0; i < l->n; i++) {
        const UsbvmDomDev *dd = &l->items[i];
        if (!dd->owned)
            continue;
        const UsbvmDevice *present = NULL;
        for (size_t k = 0; devs && k < devs->n && !present; k++)
            if (streq(devs->devices[k]->alias, dd->alias))
                present = devs->devices[k];
        json_object *o = json_object_new_object();
        usbvm_json_add_str(o, "domain", dd->domain);
        usbvm_json_add_str(o, "alias", dd->alias);
        usbvm_json_add_str(o, "mode", usbvm_mode_to_string(dd->mode));
        if (dd->kind == USBVM_DOMDEV_HOSTDEV) {
            _cleanup_free_ char *src = xasprintf("%04x:%04x bus %u device %u", dd->vendor_id,
                                                 dd->product_id, dd->bus, dd->device);
            usbvm_json_add_str(o, "source", src);
            usbvm_json_add_str(o, "target", NULL);
        } else {
            usbvm_json_add_str(o, "source", dd->source);
            usbvm_json_add_str(o, "target", dd->target);
        }
        json_object_object_add(o, "readonly", json_object_new_boolean(dd->readonly));
        json_object_object_add(o, "present",
                               devs ? json_object_new_boolean(present != NULL) : NULL);
        usbvm_json_add_str(o, "device", present ? present->port : NULL);
        usbvm_json_add_str(o, "identity", present ? present->identity : NULL);
        json_object *guest = usbvm_cli_guest_json(conn, &guests, dd, present);
        json_object_object_add(o, "guest", guest);
        if (!cli->json) {
            json_object *t = json_object_new_object();
            _cleanup_free_ char *gt = usbvm_cli_guest_text(guest);
            json_object_object_add(t, "guest", json_object_new_string(gt));
            json_object_object_add(o, "text", t);
        }
        json_object_array_add(arr, o);
    }
    usbvm_cli_guests_clear(&guests);
    if (cli->json)
        usbvm_out_json(arr);
    else if (json_object_array_length(arr) == 0) {
        if (cli->verbosity >= 0)
            printf("usbvm has attached nothing to a running domain\n");
    } else
        usbvm_out_table(arr, status_columns, ELEMENTSOF(status_columns));
    json_object_put(arr);
    return 0;
}
