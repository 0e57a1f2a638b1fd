/* The device model as JSON, shared by "list" and "show" (and any verb that reports devices):
 * one schema, documented in usbvm(1). */
#pragma once

#include "cli.h"
#include "virt.h"

/* What the running domains hold, or why we could not ask. */
typedef struct UsbvmCliDomains {
    bool available;
    UsbvmError error;
    UsbvmDomDevList *domdevs;
    UsbvmVirtAsk ask; /* between start and finish */
} UsbvmCliDomains;

/* Connects (cli->conn) and reads every running domain's USB hostdevs and block disks. When
 * libvirt cannot be reached this is not an error: available is false and ONE warning says
 * why. */
void usbvm_cli_domains_load(UsbvmCli *cli, UsbvmCliDomains *ret);
/* The same in two halves, for a verb that needs no connection of its own: start has a child
 * process ask libvirt (usbvm_virt_ask_start), so that loading libvirt overlaps with reading
 * the devices; finish takes the answer and warns as load does; cancel drops it. */
void usbvm_cli_domains_start(UsbvmCli *cli, UsbvmCliDomains *ret);
void usbvm_cli_domains_finish(UsbvmCli *cli, UsbvmCliDomains *d);
void usbvm_cli_domains_cancel(UsbvmCliDomains *d);
void usbvm_cli_domains_clear(UsbvmCliDomains *d);
/* {"available": true} or {"available": false, "error": "..."}. */
json_object *usbvm_cli_domains_json(const UsbvmCliDomains *d);

/* The device as a JSON object (schema in usbvm(1)); "domains" is the sorted list of running
 * domains holding it, or null when libvirt was unavailable. */
json_object *usbvm_device_to_json(const UsbvmDevice *d, const UsbvmCliDomains *domains);

/* "0781" style: 4-digit lowercase hex, as the kernel writes ids. */
json_object *usbvm_json_hex(unsigned value, int digits);
