/* usbvm doctor: libvirt and the domain. Whether libvirt answers at the URI (and if not, why:
 * no socket, permissions, polkit, which daemon runs), whether the domain exists and runs, its
 * hardware (USB controller fast enough, a slot to hot-plug a disk into), and whether the device
 * is already attached elsewhere. Each libvirt call here is a single short request, not yet
 * bounded: doctor runs no event loop, so keepalive cannot end a call a frozen daemon never
 * answers. */
#include "doctor.h"
#include "virt-internal.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#define XHCI_XML      "<controller type='usb' model='qemu-xhci' ports='15'/>"
#define ROOT_PORT_XML "<controller type='pci' model='pcie-root-port'/>"

/* ---- the domain's hardware, from its XML (pure) ---- */

void usbvm_domhw_clear(UsbvmDomHw *h)
{
    free(h->machine);
    free(h->usb_models);
    *h = (UsbvmDomHw){ 0 };
}

static xmlXPathObjectPtr xpath(xmlXPathContextPtr ctx, const char *expr)
{
    xmlXPathObjectPtr o = xmlXPathEvalExpression(BAD_CAST expr, ctx);
    if (o && (!o->nodesetval || o->nodesetval->nodeNr == 0)) {
        xmlXPathFreeObject(o);
        return NULL;
    }
    return o;
}

static char *attr(xmlNodePtr n, const char *name)
{
    xmlChar *v = xmlGetProp(n, BAD_CAST name);
    char *s = v ? xstrdup((const char *)v) : NULL;
    xmlFree(v);
    return s;
}

static void read_usb(xmlXPathContextPtr ctx, UsbvmDomHw *h)
{
    _cleanup_(xmlXPathFreeObjectp) xmlXPathObjectPtr o =
        xpath(ctx, "/domain/devices/controller[@type='usb']");
    UsbvmBuf models = { 0 };
    for (int i = 0; o && i < o->nodesetval->nodeNr; i++) {
        _cleanup_free_ char *m = attr(o->nodesetval->nodeTab[i], "model");
        if (streq(m, "none"))
            continue;
        h->usb_any = true;
        /* Without a model libvirt picks one for the machine; the live XML names it. */
        if (!m || streq(m, "qemu-xhci") || streq(m, "nec-xhci"))
            h->usb3 = true;
        usbvm_buf_printf(&models, "%s%s", models.len ? ", " : "", m ? m : "default");
    }
    h->usb_models = models.len ? usbvm_buf_steal(&models) : NULL;
    usbvm_buf_free(&models);
}

/* Root ports with nothing plugged in: no device or controller has an address on their bus. */
static void read_root_ports(xmlXPathContextPtr ctx, UsbvmDomHw *h)
{
    _cleanup_(xmlXPathFreeObjectp) xmlXPathObjectPtr ports =
        xpath(ctx, "/domain/devices/controller[@type='pci' and @model='pcie-root-port']");
    _cleanup_(xmlXPathFreeObjectp) xmlXPathObjectPtr addrs =
        xpath(ctx, "/domain/devices/*/address[@type='pci']");
    for (int i = 0; ports && i < ports->nodesetval->nodeNr; i++) {
        _cleanup_free_ char *idx = attr(ports->nodesetval->nodeTab[i], "index");
        unsigned long index = idx ? strtoul(idx, NULL, 0) : 0;
        bool used = false;
        for (int j = 0; addrs && j < addrs->nodesetval->nodeNr && !used; j++) {
            _cleanup_free_ char *bus = attr(addrs->nodesetval->nodeTab[j], "bus");
            used = bus && strtoul(bus, NULL, 0) == index;
        }
        h->root_ports++;
        h->free_root_ports += !used;
    }
}

int usbvm_domhw_from_xml(const char *xml, UsbvmDomHw *ret, UsbvmError *err)
{
    _cleanup_(xmlFreeDocp) xmlDocPtr doc = NULL;
    int r = usbvm_xml_parse(xml, &doc, err);
    if (r < 0)
        return r;
    _cleanup_(xmlXPathFreeContextp) xmlXPathContextPtr ctx = xmlXPathNewContext(doc);
    UsbvmDomHw h = { 0 };
    {
        _cleanup_(xmlXPathFreeObjectp) xmlXPathObjectPtr o = xpath(ctx, "/domain/os/type");
        h.machine = o ? attr(o->nodesetval->nodeTab[0], "machine") : NULL;
    }
    h.q35 = h.machine && strstr(h.machine, "q35");
    {
        _cleanup_(xmlXPathFreeObjectp) xmlXPathObjectPtr o = xpath(ctx, "/domain/features/acpi");
        h.acpi = o != NULL;
    }
    {
        _cleanup_(xmlXPathFreeObjectp) xmlXPathObjectPtr o =
            xpath(ctx, "/domain/devices/controller[@type='scsi' and @model='virtio-scsi']");
        h.virtio_scsi = o != NULL;
    }
    read_usb(ctx, &h);
    read_root_ports(ctx, &h);
    *ret = h;
    return 0;
}

static bool device_usb3(const UsbvmDevice *d)
{
    unsigned speed = 0;
    return d && d->speed && usbvm_parse_uint(d->speed, 10, 1000000, &speed) == 0 && speed >= 5000;
}

static void check_usb_controller(const UsbvmDomHw *hw, const UsbvmDevice *d, int mode,
                                 UsbvmChecks *out)
{
    bool needs_usb = mode < 0 || mode == USBVM_MODE_USB || mode == USBVM_MODE_USB_DISK;
    if (!hw->usb_any) {
        if (needs_usb)
            usbvm_checks_add(out, "usb-controller", false,
                             "Add a USB 3 controller with 'virsh edit' and restart the domain:\n"
                             "  " XHCI_XML,
                             "the domain has no USB controller: modes usb and usb-disk cannot "
                             "attach anything");
        else
            usbvm_checks_add(out, "usb-controller", true, NULL,
                             "no USB controller, which mode %s does not need",
                             usbvm_mode_to_string((UsbvmMode)mode));
        return;
    }
    if (!hw->usb3 && device_usb3(d) && (mode < 0 || mode == USBVM_MODE_USB)) {
        usbvm_checks_add(out, "usb-controller", false,
                         "Add a USB 3 controller with 'virsh edit' and restart the domain:\n"
                         "  " XHCI_XML,
                         "only USB 1/2 controllers (%s) for a USB 3 device (%s Mbit/s): QEMU "
                         "refuses a SuperSpeed device on a high-speed bus",
                         hw->usb_models, d->speed);
        return;
    }
    usbvm_checks_add(out, "usb-controller", true, NULL, "USB controller: %s", hw->usb_models);
}

static void check_hotplug(const UsbvmDomHw *hw, int mode, UsbvmChecks *out)
{
    if (mode == USBVM_MODE_USB || mode == USBVM_MODE_USB_DISK)
        return; /* a USB device needs a USB port, not a PCI slot */
    if (mode == USBVM_MODE_SCSI && hw->virtio_scsi) {
        usbvm_checks_add(out, "hotplug-slot", true, NULL,
                         "a virtio-scsi controller takes the disk; no PCI slot needed");
        return;
    }
    if (hw->q35 && hw->free_root_ports == 0) {
        usbvm_checks_add(out, "hotplug-slot", false,
                         "Add spare root ports with 'virsh edit' and restart the domain, one "
                         "per disk to hot-plug:\n  " ROOT_PORT_XML,
                         "no free pcie-root-port (%u, all in use): a virtio disk or a new "
                         "virtio-scsi controller cannot be hot-plugged into this q35 domain",
                         hw->root_ports);
        return;
    }
    if (!hw->q35 && !hw->acpi) {
        usbvm_checks_add(out, "hotplug-slot", false,
                         "Turn ACPI on with 'virsh edit' (<features><acpi/></features>) and "
                         "restart the domain.",
                         "machine %s without ACPI: the guest cannot hot-plug PCI devices "
                         "(virtio disks, a virtio-scsi controller)",
                         strempty(hw->machine));
        return;
    }
    if (hw->q35)
        usbvm_checks_add(out, "hotplug-slot", true, NULL, "%u free pcie-root-port(s) for hot-plug",
                         hw->free_root_ports);
    else
        usbvm_checks_add(out, "hotplug-slot", true, NULL,
                         "machine %s with ACPI: PCI hot-plug on the root bus",
                         strempty(hw->machine));
}

void usbvm_doctor_domain_hw(const UsbvmDomHw *hw, const UsbvmDevice *d, int mode, UsbvmChecks *out)
{
    /* A device without a disk can only go as usb, whatever the rules do not say. */
    if (mode < 0 && d && !usbvm_device_is_storage(d))
        mode = USBVM_MODE_USB;
    check_usb_controller(hw, d, mode, out);
    check_hotplug(hw, mode, out);
}

/* ---- libvirt reachable ---- */

/* The socket a URI connects to: its socket= parameter, else the system daemons' defaults. */
static char *uri_socket(const char *uri)
{
    const char *p = uri ? strstr(uri, "socket=") : NULL;
    if (!p)
        return NULL;
    p += strlen("socket=");
    return xstrndup(p, strcspn(p, "&"));
}

static const char *daemons_running(void)
{
    bool lv = usbvm_proc_running("/proc", "libvirtd", NULL);
    bool vq = usbvm_proc_running("/proc", "virtqemud", NULL);
    return lv && vq ? "libvirtd and virtqemud run"
           : lv     ? "libvirtd runs (monolithic), virtqemud does not"
           : vq     ? "virtqemud runs (modular), libvirtd does not"
                    : "neither libvirtd nor virtqemud runs";
}

static void report_unreachable(const char *uri, UsbvmChecks *out)
{
    virErrorPtr e = virGetLastError();
    int code = e ? e->code : 0;
    int errnum = e && e->code == VIR_ERR_SYSTEM_ERROR ? e->int1 : 0;
    _cleanup_free_ char *msg = xstrdup(e && e->message ? e->message : "unknown error");
    const char *name = uri ? uri : "the default URI";
    _cleanup_free_ char *sock = uri_socket(uri);
    struct stat st;
    if (code == VIR_ERR_AUTH_FAILED || code == VIR_ERR_AUTH_CANCELLED ||
        code == VIR_ERR_AUTH_UNAVAILABLE) {
        usbvm_checks_add(out, "libvirt", false,
                         "Run as root, or add the user to the 'libvirt' group (Debian's polkit "
                         "rule lets that group manage qemu:///system) and log in again.",
                         "polkit refused access to %s: %s", name, msg);
    } else if (errnum == EACCES || errnum == EPERM) {
        usbvm_checks_add(out, "libvirt", false,
                         "Run as root, or 'usermod -aG libvirt USER' and log in again (the "
                         "socket belongs to group libvirt).",
                         "permission denied on the libvirt socket of %s: %s", name, msg);
    } else if ((sock && stat(sock, &st) < 0) || errnum == ENOENT || errnum == ECONNREFUSED) {
        usbvm_checks_add(out, "libvirt", false,
                         "Start the daemon: 'systemctl start virtqemud.socket' (modular) or "
                         "'systemctl start libvirtd' (monolithic), or pass -c with the URI it "
                         "listens on.",
                         "no libvirt daemon listens at %s (%s%s%s%s): %s", name,
                         sock ? "socket " : "", sock ? sock : "", sock ? " is missing; " : "",
                         daemons_running(), msg);
    } else {
        usbvm_checks_add(out, "libvirt", false,
                         "Check the URI (-c) and that the daemon runs: 'virsh -c URI version'.",
                         "cannot connect to libvirt at %s: %s", name, msg);
    }
}

static virConnectPtr check_libvirt(const char *uri, UsbvmChecks *out)
{
    const char *why = NULL;
    if (!usbvm_virt_loaded(&why)) {
        usbvm_checks_add(out, "libvirt", false,
                         "Install libvirt's client library: 'apt install libvirt0'.",
                         "cannot load libvirt: %s", why);
        return NULL;
    }
    usbvm_virt_init();
    virConnectPtr conn = virConnectOpen(uri);
    if (!conn) {
        report_unreachable(uri, out);
        return NULL;
    }
    _cleanup_free_ char *actual = virConnectGetURI(conn);
    unsigned long ver = 0;
    virConnectGetLibVersion(conn, &ver);
    usbvm_checks_add(out, "libvirt", true, NULL, "connected to %s (libvirt %lu.%lu.%lu; %s)",
                     actual ? actual : strempty(uri), ver / 1000000, ver / 1000 % 1000, ver % 1000,
                     daemons_running());
    return conn;
}

/* ---- the domain ---- */

static void check_domain(virConnectPtr conn, const UsbvmDoctorQuery *q, int mode, UsbvmChecks *out)
{
    virDomainPtr dom = NULL;
    UsbvmError err = { 0 };
    if (usbvm_virt_lookup(conn, q->domain, &dom, &err) < 0) {
        usbvm_checks_add(out, "domain", false,
                         "Pass the name of an existing domain ('virsh list --all' shows them).",
                         "%s", err.message);
        return;
    }
    int active = virDomainIsActive(dom);
    if (active == 1)
        usbvm_checks_add(out, "domain", true, NULL, "domain '%s' runs", q->domain);
    else {
        _cleanup_free_ char *fix = xasprintf("Start it: 'virsh start %s'; usbvm attaches only "
                                             "to running domains.",
                                             q->domain);
        usbvm_checks_add(out, "domain", false, fix, "domain '%s' does not run", q->domain);
    }
    _cleanup_free_ char *xml = virDomainGetXMLDesc(dom, 0);
    virDomainFree(dom);
    UsbvmDomHw hw = { 0 };
    if (!xml || usbvm_domhw_from_xml(xml, &hw, &err) < 0)
        return;
    usbvm_doctor_domain_hw(&hw, q->device, mode, out);
    usbvm_domhw_clear(&hw);
}

static void check_elsewhere(virConnectPtr conn, const UsbvmDoctorQuery *q, UsbvmChecks *out)
{
    _cleanup_(usbvm_domdev_list_freep) UsbvmDomDevList *l = NULL;
    UsbvmError err = { 0 };
    if (usbvm_virt_list_domdevs(conn, &l, &err) < 0) {
        usbvm_checks_add(out, "attached", false, "Check that libvirt answers: 'virsh list'.", "%s",
                         err.message);
        return;
    }
    const UsbvmDomDev *here = NULL;
    for (size_t i = 0; i < l->n; i++) {
        const UsbvmDomDev *dd = &l->items[i];
        if (!usbvm_domdev_matches(dd, q->device))
            continue;
        if (q->domain && streq(dd->domain, q->domain)) {
            here = dd;
            continue;
        }
        _cleanup_free_ char *fix =
            dd->owned ? xasprintf("Detach it there first: 'usbvm detach %s %s'.", dd->domain,
                                  q->device->port)
                      : xasprintf("Detach it there first ('virsh dumpxml %s' shows the device; "
                                  "'usbvm detach --force %s %s' removes it).",
                                  dd->domain, dd->domain, q->device->port);
        usbvm_checks_add(out, "attached", false, fix,
                         "the device is attached to domain '%s'%s: a device goes to one domain "
                         "at a time",
                         dd->domain, dd->owned ? "" : " (not by usbvm)");
        return;
    }
    if (here)
        usbvm_checks_add(out, "attached", true, NULL, "already attached to '%s'%s", here->domain,
                         here->owned ? " by usbvm" : " (not by usbvm)");
    else
        usbvm_checks_add(out, "attached", true, NULL, "not attached to any running domain");
}

void usbvm_doctor_virt(const UsbvmDoctorQuery *q, int mode, virConnectPtr *ret_conn,
                       UsbvmChecks *out)
{
    virConnectPtr conn = check_libvirt(q->uri, out);
    *ret_conn = conn;
    if (!conn)
        return;
    if (q->domain)
        check_domain(conn, q, mode, out);
    if (q->device)
        check_elsewhere(conn, q, out);
}
