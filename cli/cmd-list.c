/* usbvm list [--all]: one line per USB storage device (every USB device with --all), with the
 * running domain that holds it. Works without libvirtd: the domain is then unknown. */
#include "cli.h"
#include "device-json.h"

#include <string.h>

const struct poptOption usbvm_list_options[] = {
    { "all", 'a', POPT_ARG_NONE, NULL, USBVM_OPT_ALL, "List every USB device, hubs included",
      NULL },
    USBVM_COMMON_OPTIONS,
    POPT_TABLEEND,
};

static const UsbvmColumn list_columns[] = {
    { "port", "PORT", USBVM_FMT_STR },
    { "text.id", "ID", USBVM_FMT_STR },
    { "name", "NAME", USBVM_FMT_STR },
    { "text.serial", "SERIAL", USBVM_FMT_STR },
    { "size", "SIZE", USBVM_FMT_SIZE },
    { "disks", "DISKS", USBVM_FMT_LIST },
    { "text.mounted", "MOUNTED", USBVM_FMT_STR },
    { "text.domain", "DOMAIN", USBVM_FMT_STR },
};

/* Text-only renderings of facts already in the object: the text view shows "vid:pid", a long
 * serial shortened, host use as one word, and "unknown" for a domain libvirt could not tell. */
#define SERIAL_TEXT_MAX 24

static const char *get_str(json_object *o, const char *key)
{
    json_object *v = NULL;
    if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
        return NULL;
    return json_object_get_string(v);
}

static void add_text_view(json_object *row)
{
    json_object *t = json_object_new_object();
    _cleanup_free_ char *id = xasprintf("%s:%s", strempty(get_str(row, "vendor_id")),
                                        strempty(get_str(row, "product_id")));
    json_object_object_add(t, "id", json_object_new_string(id));

    const char *serial = get_str(row, "serial");
    if (serial && strlen(serial) > SERIAL_TEXT_MAX) {
        /* Cut on a UTF-8 boundary. */
        size_t n = SERIAL_TEXT_MAX;
        while (n > 0 && ((unsigned char)serial[n] & 0xc0) == 0x80)
            n--;
        _cleanup_free_ char *s = xasprintf("%.*s...", (int)n, serial);
        json_object_object_add(t, "serial", json_object_new_string(s));
    } else if (serial) {
        json_object_object_add(t, "serial", json_object_new_string(serial));
    }

    json_object *v = NULL, *mounts = NULL;
    const char *mounted = "no";
    _cleanup_free_ char *joined = NULL;
    if (json_object_object_get_ex(row, "mountpoints", &mounts) &&
        json_object_array_length(mounts) > 0) {
        joined = usbvm_out_format(mounts, USBVM_FMT_LIST);
        mounted = joined;
    } else if (json_object_object_get_ex(row, "swap", &v) && json_object_get_boolean(v)) {
        mounted = "swap";
    } else if (json_object_object_get_ex(row, "held", &v) && json_object_get_boolean(v)) {
        mounted = "held";
    } else if (json_object_object_get_ex(row, "disks", &v) && json_object_array_length(v) == 0) {
        mounted = "-";
    }
    /* usbvm_out_format escapes again when rendering; keep the raw text here. */
    json_object_object_add(t, "mounted", json_object_new_string(mounted));

    json_object *doms = NULL;
    json_object_object_get_ex(row, "domains", &doms);
    if (!doms) {
        json_object_object_add(t, "domain", json_object_new_string("unknown"));
    } else if (json_object_array_length(doms) == 0) {
        json_object_object_add(t, "domain", json_object_new_string("-"));
    } else {
        UsbvmBuf b = { 0 };
        for (size_t i = 0; i < json_object_array_length(doms); i++)
            usbvm_buf_printf(&b, "%s%s", i ? "," : "",
                             json_object_get_string(json_object_array_get_idx(doms, i)));
        _cleanup_free_ char *s = usbvm_buf_steal(&b);
        json_object_object_add(t, "domain", json_object_new_string(s));
    }
    json_object_object_add(row, "text", t);
}

static int on_option(UsbvmCli *cli, const UsbvmVerb *verb, int val, const char *arg, void *ud)
{
    *(bool *)ud = true; /* --all, the only one */
    return 0;
}

int usbvm_cmd_list(UsbvmCli *cli, const UsbvmVerb *verb, int argc, const char **argv)
{
    bool all = false;
    _cleanup_(usbvm_cli_args_clear) UsbvmCliArgs p = { 0 };
    if (!usbvm_cli_parse(cli, verb, argc, argv, on_option, &all, &p))
        return p.rc;

    /* libvirt is asked while the devices are read: loading it takes as long as reading them. */
    UsbvmCliDomains domains;
    usbvm_cli_domains_start(cli, &domains);
    UsbvmError err = { 0 };
    _cleanup_(usbvm_device_list_freep) UsbvmDeviceList *list = NULL;
    if (usbvm_cli_devices(&list, &err) < 0) {
        usbvm_cli_domains_cancel(&domains);
        return usbvm_cli_error(cli, &err);
    }
    usbvm_cli_domains_finish(cli, &domains);

    json_object *root = json_object_new_object();
    json_object *devices = json_object_new_array();
    for (size_t i = 0; i < list->n; i++) {
        const UsbvmDevice *d = list->devices[i];
        if (all || usbvm_device_is_storage(d))
            json_object_array_add(devices, usbvm_device_to_json(d, &domains));
    }
    json_object_object_add(root, "devices", devices);
    json_object_object_add(root, "libvirt", usbvm_cli_domains_json(&domains));
    if (!cli->json)
        for (size_t i = 0; i < list->n; i++) {
            _cleanup_free_ char *why = usbvm_device_ambiguity(list->devices[i]);
            if (why && (all || usbvm_device_is_storage(list->devices[i])))
                usbvm_cli_warning(cli, "%s: %s", list->devices[i]->port, why);
        }
    usbvm_cli_domains_clear(&domains);

    if (cli->json) {
        usbvm_out_json(root);
    } else {
        for (size_t i = 0; i < json_object_array_length(devices); i++)
            add_text_view(json_object_array_get_idx(devices, i));
        usbvm_out_table(devices, list_columns, ELEMENTSOF(list_columns));
    }
    json_object_put(root);
    return 0;
}
