/* The libvirt layer, part 2: reading what domains hold from their XML. The live domain XML is
 * usbvm's state: a device carrying a "ua-usbvm-" alias is one usbvm attached. */
#include "virt-internal.h"

#include <errno.h>
#include <limits.h>
#include <string.h>

static void xml_error_noop(void *ctx, const char *msg, ...)
{
}

int usbvm_xml_parse(const char *xml, xmlDocPtr *ret, UsbvmError *err)
{
    if (!xml)
        return usbvm_error_set(err, USBVM_E_FAILED, EINVAL, "no domain XML");
    /* libxml2 prints parse errors unless told otherwise; the library never prints. */
    xmlSetGenericErrorFunc(NULL, xml_error_noop);
    xmlDocPtr doc = xmlReadMemory(xml, (int)strlen(xml), "domain.xml", NULL,
                                  XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
    if (!doc || !xmlDocGetRootElement(doc)) {
        xmlFreeDoc(doc);
        return usbvm_error_set(err, USBVM_E_FAILED, EINVAL,
                               "cannot parse the domain XML libvirt returned");
    }
    *ret = doc;
    return 0;
}

static xmlNodePtr child(xmlNodePtr n, const char *name)
{
    for (xmlNodePtr c = n ? n->children : NULL; c; c = c->next)
        if (c->type == XML_ELEMENT_NODE && xmlStrEqual(c->name, BAD_CAST name))
            return c;
    return NULL;
}

static char *prop(xmlNodePtr n, const char *name)
{
    if (!n)
        return NULL;
    xmlChar *v = xmlGetProp(n, BAD_CAST name);
    if (!v)
        return NULL;
    char *s = xstrdup((const char *)v);
    xmlFree(v);
    return s;
}

static bool prop_eq(xmlNodePtr n, const char *name, const char *value)
{
    _cleanup_free_ char *v = prop(n, name);
    return streq(v, value);
}

static unsigned prop_uint(xmlNodePtr n, const char *name, int base, unsigned max)
{
    _cleanup_free_ char *v = prop(n, name);
    unsigned u = 0;
    if (!v || usbvm_parse_uint(v, base, max, &u) < 0)
        return 0;
    return u;
}

void usbvm_domdev_clear(UsbvmDomDev *dd)
{
    free(dd->domain);
    free(dd->alias);
    free(dd->source);
    free(dd->target);
    free(dd->target_bus);
    free(dd->serial);
    memset(dd, 0, sizeof(*dd));
}

void usbvm_domdev_copy(UsbvmDomDev *dst, const UsbvmDomDev *src)
{
    *dst = *src;
    dst->domain = src->domain ? xstrdup(src->domain) : NULL;
    dst->alias = src->alias ? xstrdup(src->alias) : NULL;
    dst->source = src->source ? xstrdup(src->source) : NULL;
    dst->target = src->target ? xstrdup(src->target) : NULL;
    dst->target_bus = src->target_bus ? xstrdup(src->target_bus) : NULL;
    dst->serial = src->serial ? xstrdup(src->serial) : NULL;
}

void usbvm_domdev_list_clear(UsbvmDomDevList *l)
{
    for (size_t i = 0; i < l->n; i++)
        usbvm_domdev_clear(&l->items[i]);
    free(l->items);
    l->items = NULL;
    l->n = 0;
}

void usbvm_domdev_list_free(UsbvmDomDevList *l)
{
    if (!l)
        return;
    usbvm_domdev_list_clear(l);
    free(l);
}

UsbvmDomDev *usbvm_domdev_list_add(UsbvmDomDevList *l)
{
    l->items = xrealloc(l->items, (l->n + 1) * sizeof(*l->items));
    UsbvmDomDev *dd = &l->items[l->n++];
    memset(dd, 0, sizeof(*dd));
    return dd;
}

static void set_alias(UsbvmDomDev *dd, xmlNodePtr dev)
{
    dd->alias = prop(child(dev, "alias"), "name");
    dd->owned =
        dd->alias && strncmp(dd->alias, USBVM_ALIAS_PREFIX, strlen(USBVM_ALIAS_PREFIX)) == 0;
}

static UsbvmMode mode_for_bus(const char *bus)
{
    if (streq(bus, "scsi"))
        return USBVM_MODE_SCSI;
    if (streq(bus, "usb"))
        return USBVM_MODE_USB_DISK;
    return USBVM_MODE_VIRTIO;
}

void usbvm_domdevs_from_doc(const char *domain, xmlDocPtr doc, UsbvmDomDevList *list)
{
    xmlNodePtr devices = child(xmlDocGetRootElement(doc), "devices");
    for (xmlNodePtr n = devices ? devices->children : NULL; n; n = n->next) {
        if (n->type != XML_ELEMENT_NODE)
            continue;
        if (xmlStrEqual(n->name, BAD_CAST "hostdev") && prop_eq(n, "mode", "subsystem") &&
            prop_eq(n, "type", "usb")) {
            UsbvmDomDev *dd = usbvm_domdev_list_add(list);
            dd->domain = xstrdup(domain);
            dd->kind = USBVM_DOMDEV_HOSTDEV;
            dd->mode = USBVM_MODE_USB;
            set_alias(dd, n);
            xmlNodePtr src = child(n, "source");
            dd->vendor_id = (uint16_t)prop_uint(child(src, "vendor"), "id", 16, 0xffff);
            dd->product_id = (uint16_t)prop_uint(child(src, "product"), "id", 16, 0xffff);
            /* libvirt writes the host address in decimal. */
            dd->bus = prop_uint(child(src, "address"), "bus", 10, UINT_MAX);
            dd->device = prop_uint(child(src, "address"), "device", 10, UINT_MAX);
        } else if (xmlStrEqual(n->name, BAD_CAST "disk") && prop_eq(n, "type", "block")) {
            UsbvmDomDev *dd = usbvm_domdev_list_add(list);
            dd->domain = xstrdup(domain);
            dd->kind = USBVM_DOMDEV_DISK;
            set_alias(dd, n);
            dd->source = prop(child(n, "source"), "dev");
            dd->target = prop(child(n, "target"), "dev");
            dd->target_bus = prop(child(n, "target"), "bus");
            dd->mode = mode_for_bus(dd->target_bus);
            xmlNodePtr serial = child(n, "serial");
            if (serial) {
                xmlChar *t = xmlNodeGetContent(serial);
                dd->serial = xstrdup((const char *)t);
                xmlFree(t);
            }
            dd->readonly = child(n, "readonly") != NULL;
        }
    }
}

int usbvm_domdevs_from_xml(const char *domain, const char *xml, UsbvmDomDevList *list,
                           UsbvmError *err)
{
    _cleanup_(xmlFreeDocp) xmlDocPtr doc = NULL;
    int r = usbvm_xml_parse(xml, &doc, err);
    if (r < 0)
        return r;
    usbvm_domdevs_from_doc(domain, doc, list);
    return 0;
}

bool usbvm_domain_doc_running(xmlDocPtr doc)
{
    /* libvirt writes id='N' on a running domain's <domain> only. */
    _cleanup_free_ char *id = prop(xmlDocGetRootElement(doc), "id");
    return id && !streq(id, "-1");
}

static bool alias_is_device(const char *alias, const char *dev_alias)
{
    if (!alias || !dev_alias)
        return false;
    size_t n = strlen(dev_alias);
    /* A suffix "-N" is reserved for further LUNs of the same device. */
    return strncmp(alias, dev_alias, n) == 0 && (alias[n] == '\0' || alias[n] == '-');
}

static bool same_file(const char *a, const char *b)
{
    if (!a || !b)
        return false;
    if (streq(a, b))
        return true;
    char ra[PATH_MAX], rb[PATH_MAX];
    return realpath(a, ra) && realpath(b, rb) && streq(ra, rb);
}

bool usbvm_domdev_matches(const UsbvmDomDev *dd, const UsbvmDevice *d)
{
    if (!dd || !d)
        return false;
    if (dd->owned && alias_is_device(dd->alias, d->alias))
        return true;
    /* Not by alias: compare what the domain device points at, whoever attached it. */
    if (dd->kind == USBVM_DOMDEV_HOSTDEV) {
        if (!dd->vendor_id || dd->vendor_id != d->vendor_id || dd->product_id != d->product_id)
            return false;
        if (dd->bus && dd->device)
            return dd->bus == d->busnum && dd->device == d->devnum;
        return true;
    }
    for (size_t i = 0; i < d->n_blocks; i++) {
        const UsbvmBlock *b = &d->blocks[i];
        if (same_file(dd->source, b->devnode) || same_file(dd->source, b->by_id))
            return true;
    }
    return false;
}

/* ---- What attach needs besides the devices ------------------------------------------------ */

void usbvm_dominfo_clear(UsbvmDomInfo *i)
{
    free(i->name);
    usbvm_strv_free(i->targets);
    usbvm_strv_free(i->scsi_units);
    memset(i, 0, sizeof(*i));
}

int usbvm_dominfo_from_xml(const char *xml, UsbvmDomInfo *ret, UsbvmError *err)
{
    _cleanup_(xmlFreeDocp) xmlDocPtr doc = NULL;
    int r = usbvm_xml_parse(xml, &doc, err);
    if (r < 0)
        return r;
    usbvm_dominfo_from_doc(doc, ret);
    return 0;
}

/* A <disk>'s target name, and its unit when it sits on the virtio-scsi controller. */
static void note_disk(UsbvmDomInfo *info, xmlNodePtr n)
{
    _cleanup_free_ char *t = prop(child(n, "target"), "dev");
    if (t)
        info->targets = usbvm_strv_push(info->targets, t);
    xmlNodePtr a = child(n, "address");
    if (!a || !prop_eq(a, "type", "drive"))
        return;
    _cleanup_free_ char *c = prop(a, "controller"), *tg = prop(a, "target"), *u = prop(a, "unit");
    unsigned ci = 0;
    if ((c && usbvm_parse_uint(c, 10, 255, &ci) < 0) || (int)ci != info->scsi_index)
        return;
    _cleanup_free_ char *tu = xasprintf("%s:%s", tg ? tg : "0", u ? u : "0");
    info->scsi_units = usbvm_strv_push(info->scsi_units, tu);
}

void usbvm_dominfo_from_doc(xmlDocPtr doc, UsbvmDomInfo *ret)
{
    UsbvmDomInfo info = { .scsi_index = -1 };
    xmlNodePtr root = xmlDocGetRootElement(doc);
    xmlNodePtr name = child(root, "name");
    if (name) {
        xmlChar *t = xmlNodeGetContent(name);
        info.name = xstrdup((const char *)t);
        xmlFree(t);
    }
    int next_scsi = 0;
    xmlNodePtr devices = child(root, "devices");
    for (xmlNodePtr n = devices ? devices->children : NULL; n; n = n->next) {
        if (n->type != XML_ELEMENT_NODE || !xmlStrEqual(n->name, BAD_CAST "controller"))
            continue;
        if (prop_eq(n, "type", "usb") && !prop_eq(n, "model", "none"))
            info.usb_controller = true;
        if (!prop_eq(n, "type", "scsi"))
            continue;
        _cleanup_free_ char *idx = prop(n, "index");
        unsigned i = 0;
        if (idx && usbvm_parse_uint(idx, 10, 255, &i) >= 0 && (int)i >= next_scsi)
            next_scsi = (int)i + 1;
        if (prop_eq(n, "model", "virtio-scsi") && !info.virtio_scsi) {
            info.virtio_scsi = true;
            info.scsi_index = (int)i;
        }
    }
    if (!info.virtio_scsi)
        info.scsi_index = next_scsi;
    for (xmlNodePtr n = devices ? devices->children : NULL; n; n = n->next)
        if (n->type == XML_ELEMENT_NODE && xmlStrEqual(n->name, BAD_CAST "disk"))
            note_disk(&info, n);
    *ret = info;
}

char *usbvm_virt_next_target(const char *prefix, char *const *used)
{
    /* Names as libvirt counts them: a..z, aa..zz, aaa.. */
    for (unsigned idx = 0; idx < 18278; idx++) {
        char suffix[8];
        size_t len = 0;
        unsigned v = idx;
        char rev[8];
        for (;;) {
            rev[len++] = (char)('a' + v % 26);
            if (v < 26)
                break;
            v = v / 26 - 1;
        }
        for (size_t k = 0; k < len; k++)
            suffix[k] = rev[len - 1 - k];
        suffix[len] = '\0';
        char *name = xasprintf("%s%s", prefix, suffix);
        if (!usbvm_strv_contains(used, name))
            return name;
        free(name);
    }
    return NULL;
}
