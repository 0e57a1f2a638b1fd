/* Hand-built devices for the rules tests and the benchmark (header-only: the matcher needs
 * only the UsbvmDevice fields, no udev). tests/rules/match-table.txt describes them. */
#pragma once

#include "device.h"

#include <string.h>

static inline UsbvmDevice *usbvm_test_dev(const char *port, uint16_t vid, uint16_t pid,
                                          const char *serial, const char *manufacturer,
                                          const char *product, const char *connect_type)
{
    UsbvmDevice *d = xcalloc(1, sizeof(UsbvmDevice));
    d->port = xstrdup(port);
    d->syspath = xasprintf("/sys/devices/pci0000:00/0000:00:14.0/usb1/%s", port);
    d->vendor_id = vid;
    d->product_id = pid;
    d->serial = serial ? xstrdup(serial) : NULL;
    d->manufacturer = manufacturer ? xstrdup(manufacturer) : NULL;
    d->product = product ? xstrdup(product) : NULL;
    d->connect_type = connect_type ? xstrdup(connect_type) : NULL;
    return d;
}

static inline void usbvm_test_iface(UsbvmDevice *d, uint8_t cls, uint8_t sub, uint8_t proto)
{
    d->interfaces = xrealloc(d->interfaces, (d->n_interfaces + 1) * sizeof(UsbvmInterface));
    d->interfaces[d->n_interfaces] = (UsbvmInterface){
        .number = (uint8_t)d->n_interfaces, .cls = cls, .subclass = sub, .protocol = proto
    };
    d->n_interfaces++;
}

static inline void usbvm_test_block(UsbvmDevice *d, UsbvmBlockType type, const char *name,
                                    uint64_t size, const char *fs_type, const char *label,
                                    const char *uuid)
{
    d->blocks = xrealloc(d->blocks, (d->n_blocks + 1) * sizeof(UsbvmBlock));
    d->blocks[d->n_blocks++] = (UsbvmBlock){
        .type = type,
        .name = xstrdup(name),
        .devnode = xasprintf("/dev/%s", name),
        .size = size,
        .fs_type = fs_type ? xstrdup(fs_type) : NULL,
        .fs_label = label ? xstrdup(label) : NULL,
        .fs_uuid = uuid ? xstrdup(uuid) : NULL,
    };
}

static inline void usbvm_test_dev_free(UsbvmDevice *d)
{
    if (!d)
        return;
    for (size_t i = 0; i < d->n_blocks; i++) {
        free(d->blocks[i].name);
        free(d->blocks[i].devnode);
        free(d->blocks[i].fs_type);
        free(d->blocks[i].fs_label);
        free(d->blocks[i].fs_uuid);
    }
    free(d->blocks);
    free(d->interfaces);
    free(d->port);
    free(d->syspath);
    free(d->serial);
    free(d->manufacturer);
    free(d->product);
    free(d->connect_type);
    free(d);
}

/* NULL-terminated, in this order: stick, noserial, kbd, hub, combo, reader. The name of each
 * is in its devnode field, for usbvm_test_rule_device(). */
static inline UsbvmDevice **usbvm_test_rule_devices(void)
{
    UsbvmDevice **v = xcalloc(7, sizeof(UsbvmDevice *));
    UsbvmDevice *d;

    d = v[0] = usbvm_test_dev("1-2", 0x0781, 0x5567, "4C530001230330116063", "SanDisk",
                              "Cruzer Blade", "hotplug");
    d->devnode = xstrdup("stick");
    usbvm_test_iface(d, 0x08, 0x06, 0x50);
    usbvm_test_block(d, USBVM_BLOCK_DISK, "sdb", 16000000000ULL, NULL, NULL, NULL);
    usbvm_test_block(d, USBVM_BLOCK_PARTITION, "sdb1", 15999000000ULL, "vfat", "BACKUP",
                     "1234-ABCD");

    d = v[1] =
        usbvm_test_dev("1-2.4", 0x0951, 0x1666, NULL, "Kingston", "DataTraveler 3.0", "hotplug");
    d->devnode = xstrdup("noserial");
    usbvm_test_iface(d, 0x08, 0x06, 0x50);
    usbvm_test_block(d, USBVM_BLOCK_DISK, "sdc", 64000000000ULL, NULL, NULL, NULL);
    usbvm_test_block(d, USBVM_BLOCK_PARTITION, "sdc1", 32000000000ULL, "exfat", "DATA",
                     "AAAA-BBBB");
    usbvm_test_block(d, USBVM_BLOCK_PARTITION, "sdc2", 31000000000ULL, "ext4", NULL, "c0ffee");

    d = v[2] = usbvm_test_dev("3-1", 0x046d, 0xc31c, NULL, "Logitech", "USB Keyboard", "hardwired");
    d->devnode = xstrdup("kbd");
    usbvm_test_iface(d, 0x03, 0x01, 0x01);
    usbvm_test_iface(d, 0x03, 0x00, 0x00);

    d = v[3] = usbvm_test_dev("1-2", 0x05e3, 0x0608, NULL, NULL, "USB2.0 Hub", "hotplug");
    d->devnode = xstrdup("hub");
    d->is_hub = true;
    d->dev_class = 0x09;
    usbvm_test_iface(d, 0x09, 0x00, 0x00);

    d = v[4] = usbvm_test_dev("2-1.3.2", 0x1234, 0x5678, "X", NULL, "Q\"uote\\d \xc3\x9c", NULL);
    d->devnode = xstrdup("combo");
    usbvm_test_iface(d, 0x08, 0x06, 0x50);
    usbvm_test_iface(d, 0x03, 0x01, 0x01);
    usbvm_test_iface(d, 0x08, 0x06, 0x62);
    usbvm_test_block(d, USBVM_BLOCK_DISK, "sdd", 0, NULL, NULL, NULL);

    d = v[5] = usbvm_test_dev("1-3", 0x0bda, 0x0158, "", "Realtek", "Card Reader", "hotplug");
    d->devnode = xstrdup("reader");
    usbvm_test_iface(d, 0x08, 0x06, 0x50);
    usbvm_test_block(d, USBVM_BLOCK_DISK, "sde", 8000000000ULL, NULL, NULL, NULL);
    usbvm_test_block(d, USBVM_BLOCK_DISK, "sdf", 32000000000ULL, NULL, NULL, NULL);
    return v;
}

static inline UsbvmDevice *usbvm_test_rule_device(UsbvmDevice **v, const char *name)
{
    for (; *v; v++)
        if (streq((*v)->devnode, name))
            return *v;
    return NULL;
}

static inline void usbvm_test_rule_devices_free(UsbvmDevice **v)
{
    for (UsbvmDevice **p = v; *p; p++) {
        free((*p)->devnode);
        (*p)->devnode = NULL;
        usbvm_test_dev_free(*p);
    }
    free(v);
}
