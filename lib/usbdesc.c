#include "usbdesc.h"

#include <errno.h>
#include <libusb.h>
#include <string.h>

DEFINE_TRIVIAL_CLEANUP_FUNC(libusb_context *, libusb_exit)
DEFINE_TRIVIAL_CLEANUP_FUNC(struct libusb_config_descriptor *, libusb_free_config_descriptor)

void usbvm_usbdesc_free(UsbvmUsbDesc *d)
{
    if (!d)
        return;
    for (size_t i = 0; i < d->n_altsettings; i++)
        free(d->altsettings[i].endpoints);
    free(d->altsettings);
    free(d);
}

const char *usbvm_usbdesc_transfer_type(uint8_t attributes)
{
    static const char *const names[] = { "control", "isochronous", "bulk", "interrupt" };
    return names[attributes & 0x3];
}

static void free_device_list(libusb_device ***l)
{
    if (*l)
        libusb_free_device_list(*l, 1);
}

static void fill_config(UsbvmUsbDesc *u, libusb_context *ctx, libusb_device *dev,
                        const struct libusb_config_descriptor *c)
{
    u->config_value = c->bConfigurationValue;
    u->config_attributes = c->bmAttributes;
    u->max_power_ma = c->MaxPower * (u->bcd_usb >= 0x0300 ? 8u : 2u);
    u->num_interfaces = c->bNumInterfaces;
    for (int i = 0; i < c->bNumInterfaces; i++) {
        const struct libusb_interface *itf = &c->interface[i];
        for (int a = 0; a < itf->num_altsetting; a++) {
            const struct libusb_interface_descriptor *id = &itf->altsetting[a];
            UsbvmAltSettingDesc s = {
                .number = id->bInterfaceNumber,
                .alt = id->bAlternateSetting,
                .cls = id->bInterfaceClass,
                .subclass = id->bInterfaceSubClass,
                .protocol = id->bInterfaceProtocol,
                .n_endpoints = id->bNumEndpoints,
            };
            s.endpoints = xcalloc(s.n_endpoints, sizeof(UsbvmEndpointDesc));
            for (size_t e = 0; e < s.n_endpoints; e++) {
                const struct libusb_endpoint_descriptor *ed = &id->endpoint[e];
                UsbvmEndpointDesc *o = &s.endpoints[e];
                o->address = ed->bEndpointAddress;
                o->attributes = ed->bmAttributes;
                o->max_packet_size = ed->wMaxPacketSize;
                o->interval = ed->bInterval;
                struct libusb_ss_endpoint_companion_descriptor *ss = NULL;
                if (u->bcd_usb >= 0x0300 &&
                    libusb_get_ss_endpoint_companion_descriptor(ctx, ed, &ss) == 0 && ss) {
                    o->has_ss_companion = true;
                    o->ss_max_burst = ss->bMaxBurst;
                    libusb_free_ss_endpoint_companion_descriptor(ss);
                }
            }
            u->altsettings =
                xrealloc(u->altsettings, (u->n_altsettings + 1) * sizeof(UsbvmAltSettingDesc));
            u->altsettings[u->n_altsettings++] = s;
        }
    }
}

int usbvm_usbdesc_read(unsigned busnum, unsigned devnum, UsbvmUsbDesc **ret, UsbvmError *err)
{
    _cleanup_(libusb_exitp) libusb_context *ctx = NULL;
    int r = libusb_init(&ctx);
    if (r < 0)
        return usbvm_error_set(err, USBVM_E_FAILED, EIO, "cannot initialise libusb: %s",
                               libusb_strerror(r));
    _cleanup_(free_device_list) libusb_device **list = NULL;
    ssize_t n = libusb_get_device_list(ctx, &list);
    if (n < 0)
        return usbvm_error_set(err, USBVM_E_FAILED, EIO, "libusb cannot list USB devices: %s",
                               libusb_strerror((int)n));
    libusb_device *dev = NULL;
    for (ssize_t i = 0; i < n && !dev; i++)
        if (libusb_get_bus_number(list[i]) == busnum &&
            libusb_get_device_address(list[i]) == devnum)
            dev = list[i];
    if (!dev)
        return usbvm_error_set(err, USBVM_E_NOTFOUND, ENODEV,
                               "libusb does not see USB device %03u/%03u; was it unplugged?",
                               busnum, devnum);

    struct libusb_device_descriptor dd;
    r = libusb_get_device_descriptor(dev, &dd);
    if (r < 0)
        return usbvm_error_set(err, USBVM_E_FAILED, EIO,
                               "cannot read the device descriptor of %03u/%03u: %s", busnum, devnum,
                               libusb_strerror(r));
    _cleanup_(usbvm_usbdesc_freep) UsbvmUsbDesc *u = xcalloc(1, sizeof(UsbvmUsbDesc));
    u->bcd_usb = dd.bcdUSB;
    u->bcd_device = dd.bcdDevice;
    u->vendor_id = dd.idVendor;
    u->product_id = dd.idProduct;
    u->max_packet_size0 = dd.bMaxPacketSize0;
    u->num_configurations = dd.bNumConfigurations;

    _cleanup_(libusb_free_config_descriptorp) struct libusb_config_descriptor *c = NULL;
    r = libusb_get_active_config_descriptor(dev, &c);
    if (r < 0 || !c) /* unconfigured (or the kernel does not say): the first one */
        r = libusb_get_config_descriptor(dev, 0, &c);
    if (r < 0)
        return usbvm_error_set(err, USBVM_E_FAILED, EIO,
                               "cannot read the configuration descriptor of %03u/%03u: %s", busnum,
                               devnum, libusb_strerror(r));
    fill_config(u, ctx, dev, c);
    *ret = TAKE_PTR(u);
    return 0;
}

enum {
    DESC_DEVICE = 1,
    DESC_CONFIGURATION = 2,
    DESC_INTERFACE = 4,
    DESC_DEVICE_LEN = 18,
    DESC_INTERFACE_LEN = 9,
};

int usbvm_usbdesc_parse_interfaces(const uint8_t *buf, size_t len, UsbvmInterface **ret,
                                   size_t *ret_n)
{
    if (len < DESC_DEVICE_LEN || buf[0] != DESC_DEVICE_LEN || buf[1] != DESC_DEVICE)
        return -EBADMSG;
    _cleanup_free_ UsbvmInterface *ifs = NULL;
    size_t n = 0;
    bool in_config = false;
    for (size_t off = DESC_DEVICE_LEN; off < len;) {
        uint8_t blen = buf[off];
        if (len - off < 2 || blen < 2 || blen > len - off)
            return -EBADMSG;
        uint8_t type = buf[off + 1];
        if (type == DESC_CONFIGURATION)
            in_config = true;
        else if (type == DESC_INTERFACE) {
            if (!in_config || blen < DESC_INTERFACE_LEN)
                return -EBADMSG;
            ifs = xrealloc(ifs, (n + 1) * sizeof(UsbvmInterface));
            ifs[n++] = (UsbvmInterface){
                .number = buf[off + 2],
                .alt = buf[off + 3],
                .cls = buf[off + 5],
                .subclass = buf[off + 6],
                .protocol = buf[off + 7],
            };
        }
        off += blen;
    }
    *ret = TAKE_PTR(ifs);
    *ret_n = n;
    return 0;
}
