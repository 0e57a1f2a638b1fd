/* USB descriptors of one device (configuration, interfaces with every alternate setting,
 * endpoints) read through libusb, for "usbvm show". libusb reads the cached descriptors from
 * sysfs ("descriptors"), so no device is opened and nothing on the bus is disturbed. */
#pragma once

#include "device.h"
#include "error.h"
#include "util.h"

typedef struct UsbvmEndpointDesc {
    uint8_t address;    /* bEndpointAddress: bit 7 set = IN */
    uint8_t attributes; /* bmAttributes: bits 0-1 transfer type */
    uint16_t max_packet_size;
    uint8_t interval;
    uint8_t ss_max_burst; /* SuperSpeed companion, 0 when absent */
    bool has_ss_companion;
} UsbvmEndpointDesc;

typedef struct UsbvmAltSettingDesc {
    uint8_t number, alt, cls, subclass, protocol;
    UsbvmEndpointDesc *endpoints;
    size_t n_endpoints;
} UsbvmAltSettingDesc;

typedef struct UsbvmUsbDesc {
    /* device descriptor */
    uint16_t bcd_usb, bcd_device, vendor_id, product_id;
    uint8_t max_packet_size0, num_configurations;
    /* the active configuration (or the first one when none is active) */
    uint8_t config_value, config_attributes;
    unsigned max_power_ma; /* bMaxPower in mA (2 mA units, 8 mA for SuperSpeed) */
    uint8_t num_interfaces;
    UsbvmAltSettingDesc *altsettings; /* every interface's every alternate setting */
    size_t n_altsettings;
} UsbvmUsbDesc;

/* Reads the descriptors of the device at busnum/devnum. USBVM_E_NOTFOUND when libusb does
 * not see it (unplugged, or no usbfs), USBVM_E_FAILED on other libusb errors. */
int usbvm_usbdesc_read(unsigned busnum, unsigned devnum, UsbvmUsbDesc **ret, UsbvmError *err);
void usbvm_usbdesc_free(UsbvmUsbDesc *d);
DEFINE_TRIVIAL_CLEANUP_FUNC(UsbvmUsbDesc *, usbvm_usbdesc_free)

/* "control", "isochronous", "bulk", "interrupt". */
const char *usbvm_usbdesc_transfer_type(uint8_t attributes);

/* Every interface descriptor in a raw descriptor blob as the sysfs "descriptors" attribute
 * holds it (the device descriptor, then every configuration with its interfaces, alternate
 * settings and endpoints), in that order, duplicates kept: what USBGuard's with-interface
 * sees. The drivers are left NULL. -EBADMSG when the blob is malformed. */
int usbvm_usbdesc_parse_interfaces(const uint8_t *buf, size_t len, UsbvmInterface **ret,
                                   size_t *ret_n);
