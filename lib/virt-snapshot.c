/* The libvirt layer, part 5: reading what running domains hold, as a snapshot (lib/snapshot.h)
 * or one list. One XML read per domain. */
#include "snapshot.h"
#include "virt-internal.h"

#include <string.h>

int usbvm_virt_read_domain(virDomainPtr dom, UsbvmDomDevList *ret, bool *ret_running,
                           UsbvmError *err)
{
    _cleanup_free_ char *xml = virDomainGetXMLDesc(dom, 0);
    if (!xml) {
        int code = usbvm_virt_last_code();
        /* A domain that is gone or stopped holds nothing. */
        if (code == VIR_ERR_NO_DOMAIN || code == VIR_ERR_OPERATION_INVALID) {
            *ret_running = false;
            return 0;
        }
        return usbvm_virt_error(err, USBVM_E_LIBVIRT, "cannot read the XML of domain '%s'",
                                virDomainGetName(dom));
    }
    _cleanup_(xmlFreeDocp) xmlDocPtr doc = NULL;
    int r = usbvm_xml_parse(xml, &doc, err);
    if (r < 0)
        return r;
    *ret_running = usbvm_domain_doc_running(doc);
    if (*ret_running)
        usbvm_domdevs_from_doc(virDomainGetName(dom), doc, ret);
    return 0;
}

int usbvm_virt_read_snapshot(virConnectPtr conn, const char *except, UsbvmSnapshot *ret,
                             UsbvmError *err)
{
    virDomainPtr *doms = NULL;
    int n = virConnectListAllDomains(conn, &doms, VIR_CONNECT_LIST_DOMAINS_ACTIVE);
    if (n < 0)
        return usbvm_virt_error(err, USBVM_E_LIBVIRT, "cannot list the running domains");
    UsbvmSnapshot s = { 0 };
    int r = 0;
    for (int i = 0; i < n; i++) {
        UsbvmDomDevList devs = { 0 };
        bool running = false;
        if (streq_ptr(virDomainGetName(doms[i]), except)) {
            virDomainFree(doms[i]);
            continue;
        }
        if (r == 0 && (r = usbvm_virt_read_domain(doms[i], &devs, &running, err)) == 0 && running)
            usbvm_snapshot_set_domain(&s, virDomainGetName(doms[i]), &devs);
        usbvm_domdev_list_clear(&devs);
        virDomainFree(doms[i]);
    }
    free(doms);
    if (r < 0) {
        usbvm_snapshot_clear(&s);
        return r;
    }
    usbvm_snapshot_take(ret, &s);
    return 0;
}

int usbvm_virt_list_domdevs(virConnectPtr conn, UsbvmDomDevList **ret, UsbvmError *err)
{
    UsbvmSnapshot s = { 0 };
    int r = usbvm_virt_read_snapshot(conn, NULL, &s, err);
    if (r < 0)
        return r;
    *ret = usbvm_snapshot_flatten(&s);
    usbvm_snapshot_clear(&s);
    return 0;
}
