#include "device-json.h"

#include <string.h>

static void domains_unavailable(UsbvmCli *cli, UsbvmCliDomains *d)
{
    if (!d->error.message[0])
        snprintf(d->error.message, sizeof(d->error.message), "libvirt gave no reason");
    usbvm_cli_warning(cli,
                      "cannot ask libvirt which domains hold the devices, so the domain "
                      "shows as unknown: %s",
                      d->error.message);
}

void usbvm_cli_domains_load(UsbvmCli *cli, UsbvmCliDomains *ret)
{
    *ret = (UsbvmCliDomains){ 0 };
    virConnectPtr conn = usbvm_cli_connect(cli, &ret->error);
    if (conn && usbvm_virt_list_domdevs(conn, &ret->domdevs, &ret->error) >= 0)
        ret->available = true;
    else
        domains_unavailable(cli, ret);
}

void usbvm_cli_domains_start(UsbvmCli *cli, UsbvmCliDomains *ret)
{
    *ret = (UsbvmCliDomains){ 0 };
    usbvm_virt_ask_start(cli->connect_uri, &ret->ask);
}

void usbvm_cli_domains_finish(UsbvmCli *cli, UsbvmCliDomains *d)
{
    if (usbvm_virt_ask_finish(&d->ask, &d->domdevs, &d->error) >= 0)
        d->available = true;
    else
        domains_unavailable(cli, d);
}

void usbvm_cli_domains_cancel(UsbvmCliDomains *d)
{
    usbvm_virt_ask_cancel(&d->ask);
}

void usbvm_cli_domains_clear(UsbvmCliDomains *d)
{
    usbvm_domdev_list_free(d->domdevs);
    *d = (UsbvmCliDomains){ 0 };
}

json_object *usbvm_cli_domains_json(const UsbvmCliDomains *d)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "available", json_object_new_boolean(d->available));
    if (!d->available)
        usbvm_json_add_str(o, "error", d->error.message);
    return o;
}

json_object *usbvm_json_hex(unsigned value, int digits)
{
    char buf[16];
    snprintf(buf, sizeof(buf), "%0*x", digits, value);
    return json_object_new_string(buf);
}

/* A string for an array: JSON null for NULL, invalid UTF-8 replaced (as usbvm_json_add_str). */
static json_object *str_json(const char *s)
{
    if (!s)
        return NULL;
    if (usbvm_utf8_valid(s))
        return json_object_new_string(s);
    _cleanup_free_ char *clean = usbvm_utf8_sanitize(s);
    return json_object_new_string(clean);
}

static json_object *strv_json(char *const *v)
{
    json_object *a = json_object_new_array();
    for (size_t i = 0; v && v[i]; i++)
        json_object_array_add(a, str_json(v[i]));
    return a;
}

static json_object *domains_json(const UsbvmDevice *d, const UsbvmCliDomains *domains)
{
    if (!domains || !domains->available)
        return NULL;
    _cleanup_strv_free_ char **names = NULL;
    for (size_t i = 0; domains->domdevs && i < domains->domdevs->n; i++) {
        const UsbvmDomDev *dd = &domains->domdevs->items[i];
        if (usbvm_domdev_matches(dd, d) && !usbvm_strv_contains(names, dd->domain))
            names = usbvm_strv_push(names, dd->domain);
    }
    usbvm_strv_sort(names);
    json_object *a = json_object_new_array();
    for (size_t i = 0; names && names[i]; i++)
        json_object_array_add(a, str_json(names[i]));
    return a;
}

static json_object *interface_json(const UsbvmInterface *i)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "number", json_object_new_int(i->number));
    json_object_object_add(o, "alt", json_object_new_int(i->alt));
    json_object_object_add(o, "class", usbvm_json_hex(i->cls, 2));
    json_object_object_add(o, "subclass", usbvm_json_hex(i->subclass, 2));
    json_object_object_add(o, "protocol", usbvm_json_hex(i->protocol, 2));
    usbvm_json_add_str(o, "driver", i->driver);
    return o;
}

static json_object *block_json(const UsbvmBlock *b)
{
    json_object *o = json_object_new_object();
    usbvm_json_add_str(o, "name", b->name);
    json_object_object_add(
        o, "type", json_object_new_string(b->type == USBVM_BLOCK_DISK ? "disk" : "partition"));
    usbvm_json_add_str(o, "devnode", b->devnode);
    usbvm_json_add_str(o, "by_id", b->by_id);
    usbvm_json_add_str(o, "syspath", b->syspath);
    usbvm_json_add_str(o, "parent", b->parent);
    json_object_object_add(o, "major", json_object_new_int((int)b->major));
    json_object_object_add(o, "minor", json_object_new_int((int)b->minor));
    json_object_object_add(o, "size", json_object_new_int64((int64_t)b->size));
    json_object_object_add(o, "removable", json_object_new_boolean(b->removable));
    json_object_object_add(o, "readonly", json_object_new_boolean(b->readonly));
    usbvm_json_add_str(o, "fs_type", b->fs_type);
    usbvm_json_add_str(o, "fs_label", b->fs_label);
    usbvm_json_add_str(o, "fs_uuid", b->fs_uuid);
    usbvm_json_add_str(o, "mountpoint", b->mountpoint);
    json_object_object_add(o, "swap", json_object_new_boolean(b->swap));
    json_object_object_add(o, "holders", strv_json(b->holders));
    return o;
}

json_object *usbvm_device_to_json(const UsbvmDevice *d, const UsbvmCliDomains *domains)
{
    json_object *o = json_object_new_object();
    usbvm_json_add_str(o, "port", d->port);
    usbvm_json_add_str(o, "syspath", d->syspath);
    json_object_object_add(o, "busnum", json_object_new_int((int)d->busnum));
    json_object_object_add(o, "devnum", json_object_new_int((int)d->devnum));
    usbvm_json_add_str(o, "devnode", d->devnode);
    json_object_object_add(o, "vendor_id", usbvm_json_hex(d->vendor_id, 4));
    json_object_object_add(o, "product_id", usbvm_json_hex(d->product_id, 4));
    _cleanup_free_ char *name = usbvm_device_name(d);
    usbvm_json_add_str(o, "name", name);
    usbvm_json_add_str(o, "manufacturer", d->manufacturer);
    usbvm_json_add_str(o, "product", d->product);
    usbvm_json_add_str(o, "serial", d->serial);
    usbvm_json_add_str(o, "identity", d->identity);
    usbvm_json_add_str(o, "alias", d->alias);
    json_object_object_add(o, "same_identity", strv_json(d->same_identity));
    _cleanup_free_ char *ambiguity = usbvm_device_ambiguity(d);
    usbvm_json_add_str(o, "ambiguity", ambiguity);
    char version[8];
    snprintf(version, sizeof(version), "%x.%02x", d->bcd_usb >> 8, d->bcd_usb & 0xff);
    json_object_object_add(o, "version", json_object_new_string(version));
    json_object_object_add(o, "bcd_device", usbvm_json_hex(d->bcd_device, 4));
    usbvm_json_add_str(o, "speed", d->speed);
    json_object_object_add(o, "class", usbvm_json_hex(d->dev_class, 2));
    json_object_object_add(o, "subclass", usbvm_json_hex(d->dev_subclass, 2));
    json_object_object_add(o, "protocol", usbvm_json_hex(d->dev_protocol, 2));
    json_object_object_add(o, "authorized", json_object_new_boolean(d->authorized));
    usbvm_json_add_str(o, "connect_type", d->connect_type);
    json_object_object_add(o, "hub", json_object_new_boolean(d->is_hub));
    json_object_object_add(o, "storage", json_object_new_boolean(usbvm_device_is_storage(d)));

    /* Summary of the storage: whole disks, their total size, and host use. */
    json_object *disks = json_object_new_array();
    json_object *mounts = json_object_new_array();
    uint64_t size = 0;
    bool any_disk = false, swap = false, held = false;
    for (size_t i = 0; i < d->n_blocks; i++) {
        const UsbvmBlock *b = &d->blocks[i];
        if (b->type == USBVM_BLOCK_DISK) {
            json_object_array_add(disks, json_object_new_string(b->devnode));
            size += b->size;
            any_disk = true;
        }
        if (b->mountpoint)
            json_object_array_add(mounts, str_json(b->mountpoint));
        swap = swap || b->swap;
        held = held || (b->holders && b->holders[0]);
    }
    json_object_object_add(o, "size", any_disk ? json_object_new_int64((int64_t)size) : NULL);
    json_object_object_add(o, "disks", disks);
    json_object_object_add(o, "mountpoints", mounts);
    json_object_object_add(o, "swap", json_object_new_boolean(swap));
    json_object_object_add(o, "held", json_object_new_boolean(held));
    json_object_object_add(o, "domains", domains_json(d, domains));

    json_object *ifs = json_object_new_array();
    for (size_t i = 0; i < d->n_interfaces; i++)
        json_object_array_add(ifs, interface_json(&d->interfaces[i]));
    json_object_object_add(o, "interfaces", ifs);
    json_object *blocks = json_object_new_array();
    for (size_t i = 0; i < d->n_blocks; i++)
        json_object_array_add(blocks, block_json(&d->blocks[i]));
    json_object_object_add(o, "blocks", blocks);
    return o;
}
