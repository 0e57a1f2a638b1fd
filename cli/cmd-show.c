/* usbvm show <device>: everything usbvm knows about one device, its USB descriptors included.
 * Text is a set of aligned, labelled sections rendered from the same object --json prints. */
#include "cli.h"
#include "device-json.h"
#include "guest-json.h"
#include "usbdesc.h"

#include <string.h>

const struct poptOption usbvm_show_options[] = {
    USBVM_COMMON_OPTIONS,
    POPT_TABLEEND,
};

static json_object *descriptors_json(const UsbvmUsbDesc *u)
{
    json_object *o = json_object_new_object();
    char version[8];
    snprintf(version, sizeof(version), "%x.%02x", u->bcd_usb >> 8, u->bcd_usb & 0xff);
    json_object_object_add(o, "usb_version", json_object_new_string(version));
    json_object_object_add(o, "vendor_id", usbvm_json_hex(u->vendor_id, 4));
    json_object_object_add(o, "product_id", usbvm_json_hex(u->product_id, 4));
    json_object_object_add(o, "bcd_device", usbvm_json_hex(u->bcd_device, 4));
    json_object_object_add(o, "max_packet_size0", json_object_new_int(u->max_packet_size0));
    json_object_object_add(o, "num_configurations", json_object_new_int(u->num_configurations));

    json_object *c = json_object_new_object();
    json_object_object_add(c, "value", json_object_new_int(u->config_value));
    json_object_object_add(c, "attributes", usbvm_json_hex(u->config_attributes, 2));
    json_object_object_add(c, "self_powered", json_object_new_boolean(u->config_attributes & 0x40));
    json_object_object_add(c, "remote_wakeup",
                           json_object_new_boolean(u->config_attributes & 0x20));
    json_object_object_add(c, "max_power_ma", json_object_new_int((int)u->max_power_ma));
    json_object_object_add(c, "num_interfaces", json_object_new_int(u->num_interfaces));
    json_object *alts = json_object_new_array();
    for (size_t i = 0; i < u->n_altsettings; i++) {
        const UsbvmAltSettingDesc *a = &u->altsettings[i];
        json_object *ao = json_object_new_object();
        json_object_object_add(ao, "number", json_object_new_int(a->number));
        json_object_object_add(ao, "alt", json_object_new_int(a->alt));
        json_object_object_add(ao, "class", usbvm_json_hex(a->cls, 2));
        json_object_object_add(ao, "subclass", usbvm_json_hex(a->subclass, 2));
        json_object_object_add(ao, "protocol", usbvm_json_hex(a->protocol, 2));
        json_object *eps = json_object_new_array();
        for (size_t e = 0; e < a->n_endpoints; e++) {
            const UsbvmEndpointDesc *ep = &a->endpoints[e];
            json_object *eo = json_object_new_object();
            json_object_object_add(eo, "address", usbvm_json_hex(ep->address, 2));
            json_object_object_add(eo, "direction",
                                   json_object_new_string(ep->address & 0x80 ? "in" : "out"));
            json_object_object_add(
                eo, "type", json_object_new_string(usbvm_usbdesc_transfer_type(ep->attributes)));
            json_object_object_add(eo, "max_packet_size", json_object_new_int(ep->max_packet_size));
            json_object_object_add(eo, "interval", json_object_new_int(ep->interval));
            json_object_object_add(eo, "max_burst",
                                   ep->has_ss_companion ? json_object_new_int(ep->ss_max_burst)
                                                        : NULL);
            json_object_array_add(eps, eo);
        }
        json_object_object_add(ao, "endpoints", eps);
        json_object_array_add(alts, ao);
    }
    json_object_object_add(c, "interfaces", alts);
    json_object_object_add(o, "configuration", c);
    return o;
}

static json_object *get(json_object *o, const char *key)
{
    json_object *v = NULL;
    json_object_object_get_ex(o, key, &v);
    return v;
}

static const UsbvmColumn device_fields[] = {
    { "port", "Port", USBVM_FMT_STR },
    { "name", "Name", USBVM_FMT_STR },
    { "text.id", "ID", USBVM_FMT_STR },
    { "manufacturer", "Manufacturer", USBVM_FMT_STR },
    { "product", "Product", USBVM_FMT_STR },
    { "serial", "Serial", USBVM_FMT_STR },
    { "identity", "Identity", USBVM_FMT_STR },
    { "alias", "Alias", USBVM_FMT_STR },
    { "devnode", "Address", USBVM_FMT_STR },
    { "syspath", "Sysfs path", USBVM_FMT_STR },
    { "version", "USB version", USBVM_FMT_STR },
    { "speed", "Speed (Mbit/s)", USBVM_FMT_STR },
    { "text.class", "Class", USBVM_FMT_STR },
    { "bcd_device", "Device release", USBVM_FMT_HEX4 },
    { "authorized", "Authorized", USBVM_FMT_BOOL },
    { "connect_type", "Connect type", USBVM_FMT_STR },
    { "size", "Size", USBVM_FMT_SIZE },
    { "text.domain", "Domain", USBVM_FMT_STR },
    { "text.guest", "In the guest", USBVM_FMT_STR },
};

static const UsbvmColumn interface_columns[] = {
    { "number", "INTERFACE", USBVM_FMT_INT },
    { "alt", "ALT", USBVM_FMT_INT },
    { "text.class", "CLASS", USBVM_FMT_STR },
    { "driver", "DRIVER", USBVM_FMT_STR },
};

static const UsbvmColumn block_columns[] = {
    { "devnode", "DEVICE", USBVM_FMT_STR },    { "type", "TYPE", USBVM_FMT_STR },
    { "size", "SIZE", USBVM_FMT_SIZE },        { "readonly", "RO", USBVM_FMT_BOOL },
    { "removable", "RM", USBVM_FMT_BOOL },     { "fs_type", "FSTYPE", USBVM_FMT_STR },
    { "fs_label", "LABEL", USBVM_FMT_STR },    { "fs_uuid", "UUID", USBVM_FMT_STR },
    { "text.use", "HOST USE", USBVM_FMT_STR }, { "by_id", "BY-ID", USBVM_FMT_STR },
};

static const UsbvmColumn descriptor_fields[] = {
    { "usb_version", "bcdUSB", USBVM_FMT_STR },
    { "max_packet_size0", "bMaxPacketSize0", USBVM_FMT_INT },
    { "num_configurations", "Configurations", USBVM_FMT_INT },
    { "configuration.value", "Active configuration", USBVM_FMT_INT },
    { "configuration.attributes", "Attributes", USBVM_FMT_HEX4 },
    { "configuration.self_powered", "Self powered", USBVM_FMT_BOOL },
    { "configuration.remote_wakeup", "Remote wakeup", USBVM_FMT_BOOL },
    { "configuration.max_power_ma", "Max power (mA)", USBVM_FMT_INT },
    { "configuration.num_interfaces", "Interfaces", USBVM_FMT_INT },
};

static const UsbvmColumn endpoint_columns[] = {
    { "interface", "INTERFACE", USBVM_FMT_INT },
    { "alt", "ALT", USBVM_FMT_INT },
    { "class", "CLASS", USBVM_FMT_STR },
    { "address", "ENDPOINT", USBVM_FMT_STR },
    { "direction", "DIR", USBVM_FMT_STR },
    { "type", "TYPE", USBVM_FMT_STR },
    { "max_packet_size", "MAXPACKET", USBVM_FMT_INT },
    { "interval", "INTERVAL", USBVM_FMT_INT },
    { "max_burst", "BURST", USBVM_FMT_INT },
};

static void add_class_text(json_object *o)
{
    _cleanup_free_ char *s = xasprintf("%s:%s:%s", json_object_get_string(get(o, "class")),
                                       json_object_get_string(get(o, "subclass")),
                                       json_object_get_string(get(o, "protocol")));
    json_object *t = get(o, "text");
    if (!t) {
        t = json_object_new_object();
        json_object_object_add(o, "text", t);
    }
    json_object_object_add(t, "class", json_object_new_string(s));
}

static void print_blocks(json_object *blocks)
{
    if (json_object_array_length(blocks) > 0) {
        for (size_t i = 0; i < json_object_array_length(blocks); i++) {
            json_object *b = json_object_array_get_idx(blocks, i);
            json_object *bt = json_object_new_object();
            json_object *holders = get(b, "holders");
            _cleanup_free_ char *use = NULL;
            if (get(b, "mountpoint"))
                use = xasprintf("mounted on %s", json_object_get_string(get(b, "mountpoint")));
            else if (json_object_get_boolean(get(b, "swap")))
                use = xstrdup("swap");
            else if (json_object_array_length(holders) > 0) {
                _cleanup_free_ char *h = usbvm_out_format(holders, USBVM_FMT_LIST);
                use = xasprintf("held by %s", h);
            } else
                use = xstrdup("no");
            json_object_object_add(bt, "use", json_object_new_string(use));
            json_object_object_add(b, "text", bt);
        }
        printf("\nBlock devices\n");
        usbvm_out_table(blocks, block_columns, ELEMENTSOF(block_columns));
    }
}

static void print_descriptors(json_object *dev)
{
    json_object *desc = get(dev, "descriptors");
    printf("\nDescriptors\n");
    if (!desc) {
        _cleanup_free_ char *e = usbvm_out_format(get(dev, "descriptors_error"), USBVM_FMT_STR);
        printf("  unavailable: %s\n", e);
        return;
    }
    json_object *cfg = get(desc, "configuration");
    usbvm_out_record(desc, descriptor_fields, ELEMENTSOF(descriptor_fields), 2);
    /* One row per endpoint (an alternate setting without endpoints gets one row too). */
    json_object *rows = json_object_new_array();
    json_object *alts = get(cfg, "interfaces");
    for (size_t i = 0; i < json_object_array_length(alts); i++) {
        json_object *a = json_object_array_get_idx(alts, i);
        _cleanup_free_ char *cls = xasprintf("%s:%s:%s", json_object_get_string(get(a, "class")),
                                             json_object_get_string(get(a, "subclass")),
                                             json_object_get_string(get(a, "protocol")));
        json_object *eps = get(a, "endpoints");
        size_t n = json_object_array_length(eps);
        for (size_t e = 0; e < (n ? n : 1); e++) {
            json_object *row =
                n ? json_object_get(json_object_array_get_idx(eps, e)) : json_object_new_object();
            json_object *copy = json_object_new_object();
            json_object_object_add(copy, "interface", json_object_get(get(a, "number")));
            json_object_object_add(copy, "alt", json_object_get(get(a, "alt")));
            json_object_object_add(copy, "class", json_object_new_string(cls));
            json_object_object_foreach(row, k, v)
                json_object_object_add(copy, k, json_object_get(v));
            json_object_put(row);
            json_object_array_add(rows, copy);
        }
    }
    printf("\n");
    usbvm_out_table(rows, endpoint_columns, ELEMENTSOF(endpoint_columns));
    json_object_put(rows);
}

/* Where each running domain holding the device has it mounted (lib/guest.h). */
static json_object *guest_json(UsbvmCli *cli, const UsbvmCliDomains *domains, const UsbvmDevice *d)
{
    if (!domains->available)
        return NULL;
    UsbvmCliGuests guests = { 0 };
    json_object *arr = json_object_new_array();
    for (size_t i = 0; i < domains->domdevs->n; i++)
        if (usbvm_domdev_matches(&domains->domdevs->items[i], d))
            json_object_array_add(
                arr, usbvm_cli_guest_json(cli->conn, &guests, &domains->domdevs->items[i], d));
    usbvm_cli_guests_clear(&guests);
    return arr;
}

static void add_guest_text(json_object *dev, json_object *t)
{
    json_object *guest = get(dev, "guest");
    if (!guest) { /* libvirt unavailable */
        json_object_object_add(t, "guest", json_object_new_string("unknown"));
        return;
    }
    UsbvmBuf b = { 0 };
    for (size_t i = 0; i < json_object_array_length(guest); i++) {
        json_object *g = json_object_array_get_idx(guest, i);
        _cleanup_free_ char *gt = usbvm_cli_guest_text(g);
        usbvm_buf_printf(&b, "%s%s: %s", i ? "; " : "", json_object_get_string(get(g, "domain")),
                         gt);
    }
    _cleanup_free_ char *s = usbvm_buf_steal(&b);
    json_object_object_add(t, "guest", *s ? json_object_new_string(s) : NULL);
}

static void print_text(json_object *dev)
{
    /* Text-only renderings, derived from the object's own facts. */
    json_object *t = json_object_new_object();
    json_object_object_add(dev, "text", t);
    _cleanup_free_ char *id = xasprintf("%s:%s", json_object_get_string(get(dev, "vendor_id")),
                                        json_object_get_string(get(dev, "product_id")));
    json_object_object_add(t, "id", json_object_new_string(id));
    add_class_text(dev);
    json_object *doms = get(dev, "domains");
    _cleanup_free_ char *domtext =
        doms ? usbvm_out_format(doms, USBVM_FMT_LIST) : xstrdup("unknown");
    json_object_object_add(t, "domain", json_object_new_string(domtext));
    add_guest_text(dev, t);

    _cleanup_free_ char *title = usbvm_out_format(get(dev, "port"), USBVM_FMT_STR);
    printf("Device %s\n", title);
    usbvm_out_record(dev, device_fields, ELEMENTSOF(device_fields), 2);
    json_object *amb = get(dev, "ambiguity");
    if (amb) {
        /* Already escaped by the library; only what a terminal obeys is escaped again. */
        _cleanup_free_ char *s = usbvm_escape_controls(json_object_get_string(amb));
        printf("\n  Ambiguous: %s\n", s);
    }

    json_object *ifs = get(dev, "interfaces");
    for (size_t i = 0; i < json_object_array_length(ifs); i++)
        add_class_text(json_object_array_get_idx(ifs, i));
    printf("\nInterfaces\n");
    usbvm_out_table(ifs, interface_columns, ELEMENTSOF(interface_columns));

    print_blocks(get(dev, "blocks"));
    print_descriptors(dev);
}

int usbvm_cmd_show(UsbvmCli *cli, const UsbvmVerb *verb, int argc, const char **argv)
{
    _cleanup_(usbvm_cli_args_clear) UsbvmCliArgs p = { 0 };
    if (!usbvm_cli_parse(cli, verb, argc, argv, NULL, NULL, &p))
        return p.rc;

    UsbvmError err = { 0 };
    _cleanup_(usbvm_device_list_freep) UsbvmDeviceList *list = NULL;
    UsbvmDevice *d = NULL;
    if (usbvm_cli_resolve(cli, p.args[0], &list, &d, &err) < 0)
        return usbvm_cli_error(cli, &err);

    UsbvmCliDomains domains;
    usbvm_cli_domains_load(cli, &domains);
    json_object *dev = usbvm_device_to_json(d, &domains);
    json_object_object_add(dev, "guest", guest_json(cli, &domains, d));

    /* Descriptors are a bonus over sysfs: when libusb cannot read them, say why and go on. */
    _cleanup_(usbvm_usbdesc_freep) UsbvmUsbDesc *desc = NULL;
    UsbvmError derr = { 0 };
    if (usbvm_usbdesc_read(d->busnum, d->devnum, &desc, &derr) >= 0) {
        json_object_object_add(dev, "descriptors", descriptors_json(desc));
        json_object_object_add(dev, "descriptors_error", NULL);
    } else {
        json_object_object_add(dev, "descriptors", NULL);
        usbvm_json_add_str(dev, "descriptors_error", derr.message);
    }

    json_object *root = json_object_new_object();
    json_object_object_add(root, "device", dev);
    json_object_object_add(root, "libvirt", usbvm_cli_domains_json(&domains));
    usbvm_cli_domains_clear(&domains);

    if (cli->json)
        usbvm_out_json(root);
    else
        print_text(dev);
    json_object_put(root);
    return 0;
}
