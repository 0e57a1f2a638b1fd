/* The libvirt layer, part 4: attach with every safety check, detach by alias, and wait for
 * libvirt to confirm a removal on the default event loop. */
#include "virt-internal.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static unsigned vir_flags(unsigned flags)
{
    unsigned f = 0;
    if (flags & USBVM_ATTACH_LIVE)
        f |= VIR_DOMAIN_AFFECT_LIVE;
    if (flags & USBVM_ATTACH_CONFIG)
        f |= VIR_DOMAIN_AFFECT_CONFIG;
    return f;
}

static void note(UsbvmResult *ret, const char *s)
{
    size_t len = strlen(ret->notes);
    snprintf(ret->notes + len, sizeof(ret->notes) - len, "%s%s", len ? "; " : "", s);
}

static int domain_xml(virDomainPtr dom, bool inactive, char **ret, UsbvmError *err)
{
    char *xml = virDomainGetXMLDesc(dom, inactive ? VIR_DOMAIN_XML_INACTIVE : 0);
    if (!xml)
        return usbvm_virt_error(err, USBVM_E_LIBVIRT, "cannot read the %s XML of domain '%s'",
                                inactive ? "persistent" : "live", virDomainGetName(dom));
    *ret = xml;
    return 0;
}

static const char *device_name(const UsbvmDevice *d)
{
    return d->port ? d->port : strempty(d->identity);
}

/* Is the device in this domain's XML? Sets *ret_dd (a copy of the index) when it is. */
static int find_in_xml(const char *domname, const char *xml, const UsbvmDevice *d,
                       UsbvmDomDevList *l, const UsbvmDomDev **ret_dd, UsbvmError *err)
{
    int r = usbvm_domdevs_from_xml(domname, xml, l, err);
    if (r < 0)
        return r;
    *ret_dd = NULL;
    for (size_t i = 0; i < l->n; i++)
        if (usbvm_domdev_matches(&l->items[i], d)) {
            /* An owned match by alias wins over a match by source. */
            if (!*ret_dd || (l->items[i].owned && !(*ret_dd)->owned))
                *ret_dd = &l->items[i];
        }
    return 0;
}

static void list_clear(UsbvmDomDevList *l)
{
    for (size_t i = 0; i < l->n; i++) {
        UsbvmDomDev *dd = &l->items[i];
        free(dd->domain);
        free(dd->alias);
        free(dd->source);
        free(dd->target);
        free(dd->target_bus);
        free(dd->serial);
    }
    free(l->items);
    l->items = NULL;
    l->n = 0;
}

int usbvm_virt_attach(virConnectPtr conn, virDomainPtr dom, const UsbvmDevice *d,
                      const UsbvmAttachSpec *spec_in, unsigned flags, UsbvmResult *ret,
                      UsbvmError *err)
{
    return usbvm_virt_attach_known(conn, dom, d, spec_in, flags, NULL, ret, err);
}

int usbvm_virt_attach_known(virConnectPtr conn, virDomainPtr dom, const UsbvmDevice *d,
                            const UsbvmAttachSpec *spec_in, unsigned flags,
                            const UsbvmDomDevList *known, UsbvmResult *ret, UsbvmError *err)
{
    if (!(flags & (USBVM_ATTACH_LIVE | USBVM_ATTACH_CONFIG)))
        flags |= USBVM_ATTACH_LIVE;
    UsbvmAttachSpec spec = *spec_in;
    spec.persistent = (flags & USBVM_ATTACH_CONFIG) != 0;
    const char *name = virDomainGetName(dom);
    const char *mode = usbvm_mode_to_string(spec.mode);
    const char *dev = device_name(d);

    UsbvmResult res = { .state = USBVM_STATE_DETACHED };
    snprintf(res.alias, sizeof(res.alias), "%s", strempty(d->alias));

    int active = virDomainIsActive(dom);
    if (active < 0)
        return usbvm_virt_error(err, USBVM_E_LIBVIRT, "cannot ask whether domain '%s' runs", name);
    if ((flags & USBVM_ATTACH_LIVE) && !active)
        return usbvm_error_set(err, USBVM_E_FAILED, ESRCH,
                               "cannot attach %s to '%s': the domain is not running; start it, "
                               "or use --config to change only its persistent definition",
                               dev, name);

    /* The reference XML: live when the live domain changes, else the persistent one. */
    _cleanup_free_ char *live = NULL, *config = NULL;
    int r;
    if (flags & USBVM_ATTACH_LIVE) {
        r = domain_xml(dom, false, &live, err);
        if (r < 0)
            return r;
    }
    if (flags & USBVM_ATTACH_CONFIG) {
        r = domain_xml(dom, true, &config, err);
        if (r < 0)
            return r;
    }
    const char *ref = live ? live : config;

    /* Idempotence, and a device someone else put into this same domain. */
    UsbvmDomDevList here = { 0 };
    const UsbvmDomDev *dd = NULL;
    r = find_in_xml(name, ref, d, &here, &dd, err);
    if (r < 0) {
        list_clear(&here);
        return r;
    }
    if (dd) {
        if (dd->owned && dd->mode == spec.mode) {
            res.state = USBVM_STATE_ATTACHED;
            res.changed = false;
            list_clear(&here);
            *ret = res;
            return 0;
        }
        if (dd->owned)
            r = usbvm_error_set(err, USBVM_E_REFUSED, EEXIST,
                                "cannot attach %s to '%s' as %s: it is already attached there "
                                "as %s; detach it first to change the mode",
                                dev, name, mode, usbvm_mode_to_string(dd->mode));
        else
            r = usbvm_error_set(err, USBVM_E_REFUSED, EEXIST,
                                "cannot attach %s to '%s': the domain already has it, attached "
                                "by someone else (alias '%s'); usbvm leaves it alone",
                                dev, name, dd->alias ? dd->alias : "none");
        list_clear(&here);
        return r;
    }
    list_clear(&here);

    /* Invariant 2: never in two domains at once, whoever attached the first. */
    _cleanup_(usbvm_domdev_list_freep) UsbvmDomDevList *fetched = NULL;
    const UsbvmDomDevList *all = known;
    if (!all) {
        r = usbvm_virt_list_domdevs(conn, &fetched, err);
        if (r < 0)
            return r;
        all = fetched;
    }
    for (size_t i = 0; i < all->n; i++) {
        const UsbvmDomDev *o = &all->items[i];
        if (streq(o->domain, name) || !usbvm_domdev_matches(o, d))
            continue;
        return usbvm_error_set(
            err, USBVM_E_REFUSED, EBUSY,
            "cannot attach %s to '%s': it is attached to domain '%s'%s; detach it there first", dev,
            name, o->domain, o->owned ? "" : " (not by usbvm)");
    }

    /* Invariant 1: nothing the host uses. */
    r = usbvm_device_check_host_use(d, err);
    if (r < 0) {
        if (err && !err->kind)
            err->kind = USBVM_E_REFUSED;
        usbvm_error_prefix(err, "cannot attach %s to '%s': ", dev, name);
        return r;
    }

    UsbvmDomInfo info = { 0 };
    r = usbvm_dominfo_from_xml(ref, &info, err);
    if (r < 0)
        return r;
    bool usb_ctl = info.usb_controller, scsi_ctl = info.virtio_scsi;
    if (live && config) {
        /* Target names and SCSI units must be free in both definitions. */
        UsbvmDomInfo cinfo = { 0 };
        r = usbvm_dominfo_from_xml(config, &cinfo, err);
        if (r < 0) {
            usbvm_dominfo_clear(&info);
            return r;
        }
        for (size_t i = 0; cinfo.targets && cinfo.targets[i]; i++)
            info.targets = usbvm_strv_push(info.targets, cinfo.targets[i]);
        if (cinfo.scsi_index == info.scsi_index)
            for (size_t i = 0; cinfo.scsi_units && cinfo.scsi_units[i]; i++)
                info.scsi_units = usbvm_strv_push(info.scsi_units, cinfo.scsi_units[i]);
        usbvm_dominfo_clear(&cinfo);
    }

    if ((spec.mode == USBVM_MODE_USB || spec.mode == USBVM_MODE_USB_DISK) && !usb_ctl) {
        usbvm_dominfo_clear(&info);
        return usbvm_error_set(err, USBVM_E_FAILED, ENODEV,
                               "cannot attach %s to '%s' as %s: the domain has no USB "
                               "controller; add <controller type='usb' model='qemu-xhci'/> "
                               "with 'virsh edit %s' and restart the domain",
                               dev, name, mode, name);
    }

    if (usbvm_mode_is_disk(spec.mode) && (flags & USBVM_ATTACH_CONFIG)) {
        /* A persistent definition must never pin /dev/sdX: after a reboot it may be another
         * disk. libvirt has no startupPolicy for block disks, so say what happens. */
        const UsbvmBlock *b = usbvm_virt_pick_disk(d);
        if (b && (r = usbvm_virt_check_persistent_source(b, dev, name, err)) < 0) {
            usbvm_dominfo_clear(&info);
            return r;
        }
        note(&res, "the persistent definition now needs the device: libvirt will not start the "
                   "domain while it is unplugged");
    }

    _cleanup_free_ char *xml = NULL;
    r = usbvm_virt_device_xml_info(d, &spec, &info, &xml, err);
    int scsi_index = info.scsi_index;
    usbvm_dominfo_clear(&info);
    if (r < 0) {
        usbvm_error_prefix(err, "cannot attach %s to '%s': ", dev, name);
        return r;
    }

    unsigned vflags = vir_flags(flags);
    if (spec.mode == USBVM_MODE_SCSI && !scsi_ctl) {
        if (flags & USBVM_ATTACH_CHECK) {
            note(&res, "would add a virtio-scsi controller");
        } else {
            _cleanup_free_ char *ctl = usbvm_virt_scsi_controller_xml(scsi_index);
            if (virDomainAttachDeviceFlags(dom, ctl, vflags) < 0)
                return usbvm_virt_error(err, USBVM_E_LIBVIRT,
                                        "cannot add a virtio-scsi controller to '%s' for %s", name,
                                        dev);
            note(&res, "added a virtio-scsi controller");
        }
    }

    if (flags & USBVM_ATTACH_CHECK) {
        res.changed = true;
        res.state = USBVM_STATE_ATTACHED;
        *ret = res;
        return 0;
    }

    if (virDomainAttachDeviceFlags(dom, xml, vflags) < 0) {
        virErrorPtr e = virGetLastError();
        if (e && e->message && strstr(e->message, "Setting different DAC user or group"))
            /* The dead copy of an earlier stick's node (see lib/virt-deadnode.c) that usbvm did
             * not get to remove: detached by something else, or libvirt on another host. */
            return usbvm_error_set(
                err, USBVM_E_LIBVIRT, EBUSY,
                "cannot attach %s to '%s': libvirt still counts the domain's copy of its "
                "/dev node as in use by an earlier disk that was pulled while attached and "
                "detached without usbvm; restart the domain to clear it, and detach pulled "
                "disks with 'usbvm detach' (or let 'usbvm watch' do it)",
                dev, name);
        return usbvm_virt_error(err, USBVM_E_LIBVIRT, "libvirt refused to attach %s to '%s' as %s",
                                dev, name, mode);
    }
    res.changed = true;
    res.state = USBVM_STATE_ATTACHED;
    *ret = res;
    return 0;
}

/* ---- Detach ------------------------------------------------------------------------------- */

typedef struct Waiter {
    const char *alias;
    bool removed, failed, stopped, timed_out;
} Waiter;

static void on_removed(virConnectPtr c, virDomainPtr d, const char *alias, void *opaque)
{
    Waiter *w = opaque;
    if (streq(alias, w->alias))
        w->removed = true;
}

static void on_removal_failed(virConnectPtr c, virDomainPtr d, const char *alias, void *opaque)
{
    Waiter *w = opaque;
    if (streq(alias, w->alias))
        w->failed = true;
}

static int on_lifecycle(virConnectPtr c, virDomainPtr d, int event, int detail, void *opaque)
{
    Waiter *w = opaque;
    /* A domain that stopped holds nothing any more. */
    if (event == VIR_DOMAIN_EVENT_STOPPED || event == VIR_DOMAIN_EVENT_CRASHED)
        w->stopped = true;
    return 0;
}

static void on_timeout(int timer, void *opaque)
{
    Waiter *w = opaque;
    w->timed_out = true;
}

static int alias_in_xml(virDomainPtr dom, bool inactive, const char *alias, bool *ret_found,
                        bool *ret_owned, UsbvmError *err)
{
    _cleanup_free_ char *xml = NULL;
    int r = domain_xml(dom, inactive, &xml, err);
    if (r < 0)
        return r;
    _cleanup_(xmlFreeDocp) xmlDocPtr doc = NULL;
    r = usbvm_xml_parse(xml, &doc, err);
    if (r < 0)
        return r;
    /* Any device kind may carry the alias (with --force the admin names any device). */
    _cleanup_(xmlXPathFreeContextp) xmlXPathContextPtr ctx = xmlXPathNewContext(doc);
    _cleanup_(xmlXPathFreeObjectp) xmlXPathObjectPtr res =
        xmlXPathEvalExpression(BAD_CAST "/domain/devices/*/alias/@name", ctx);
    *ret_found = false;
    for (int i = 0; res && res->nodesetval && i < res->nodesetval->nodeNr; i++) {
        _cleanup_xmlfree_ xmlChar *v = xmlNodeGetContent(res->nodesetval->nodeTab[i]);
        if (streq((const char *)v, alias))
            *ret_found = true;
    }
    if (ret_owned)
        *ret_owned = strncmp(alias, USBVM_ALIAS_PREFIX, strlen(USBVM_ALIAS_PREFIX)) == 0;
    return 0;
}

int usbvm_virt_detach_alias(virConnectPtr conn, virDomainPtr dom, const char *alias, unsigned flags,
                            int timeout_ms, UsbvmResult *ret, UsbvmError *err)
{
    if (!(flags & (USBVM_ATTACH_LIVE | USBVM_ATTACH_CONFIG)))
        flags |= USBVM_ATTACH_LIVE;
    const char *name = virDomainGetName(dom);
    UsbvmResult res = { .state = USBVM_STATE_DETACHED };
    snprintf(res.alias, sizeof(res.alias), "%s", alias);
    bool owned = strncmp(alias, USBVM_ALIAS_PREFIX, strlen(USBVM_ALIAS_PREFIX)) == 0;

    int active = virDomainIsActive(dom);
    if (active < 0)
        return usbvm_virt_error(err, USBVM_E_LIBVIRT, "cannot ask whether domain '%s' runs", name);
    bool in_live = false, in_config = false;
    int r;
    if ((flags & USBVM_ATTACH_LIVE) && active) {
        r = alias_in_xml(dom, false, alias, &in_live, NULL, err);
        if (r < 0)
            return r;
    }
    if ((flags & USBVM_ATTACH_CONFIG) && virDomainIsPersistent(dom) == 1) {
        r = alias_in_xml(dom, true, alias, &in_config, NULL, err);
        if (r < 0)
            return r;
    }
    if (!in_live && !in_config) {
        res.changed = false;
        *ret = res;
        return 0;
    }
    /* Invariant 3: only what usbvm attached, unless the admin insists. */
    if (!owned && !(flags & USBVM_ATTACH_FORCE))
        return usbvm_error_set(err, USBVM_E_REFUSED, EPERM,
                               "'%s' in domain '%s' was not attached by usbvm (no ua-usbvm- "
                               "alias); pass --force to detach it anyway",
                               alias, name);
    if (flags & USBVM_ATTACH_CHECK) {
        res.changed = true;
        *ret = res;
        return 0;
    }

    unsigned vflags =
        (in_live ? VIR_DOMAIN_AFFECT_LIVE : 0) | (in_config ? VIR_DOMAIN_AFFECT_CONFIG : 0);
    _cleanup_(usbvm_deadnode_clear) UsbvmDeadNode stale = { 0 };
    if (in_live)
        usbvm_deadnode_collect(dom, alias, &stale);
    Waiter w = { .alias = alias };
    int cb_removed = -1, cb_failed = -1, cb_life = -1;
    if (in_live) {
        /* Subscribe before asking, so a quick removal cannot be missed. */
        cb_removed =
            virConnectDomainEventRegisterAny(conn, dom, VIR_DOMAIN_EVENT_ID_DEVICE_REMOVED,
                                             VIR_DOMAIN_EVENT_CALLBACK(on_removed), &w, NULL);
        cb_failed = virConnectDomainEventRegisterAny(
            conn, dom, VIR_DOMAIN_EVENT_ID_DEVICE_REMOVAL_FAILED,
            VIR_DOMAIN_EVENT_CALLBACK(on_removal_failed), &w, NULL);
        cb_life =
            virConnectDomainEventRegisterAny(conn, dom, VIR_DOMAIN_EVENT_ID_LIFECYCLE,
                                             VIR_DOMAIN_EVENT_CALLBACK(on_lifecycle), &w, NULL);
    }

    r = 0;
    if (virDomainDetachDeviceAlias(dom, alias, vflags) < 0) {
        r = usbvm_virt_error(err, USBVM_E_LIBVIRT, "libvirt refused to detach '%s' from '%s'",
                             alias, name);
        /* A second request while the guest still holds the device: still pending. */
        if (err && strstr(err->message, "already in the process of unplug")) {
            usbvm_error_clear(err);
            r = 0;
        }
    }

    if (r == 0 && in_live && timeout_ms > 0) {
        int timer = virEventAddTimeout(timeout_ms, on_timeout, &w, NULL);
        while (!w.removed && !w.failed && !w.stopped && !w.timed_out && timer >= 0)
            if (virEventRunDefaultImpl() < 0)
                break;
        if (timer >= 0)
            virEventRemoveTimeout(timer);
    }
    if (cb_removed >= 0)
        virConnectDomainEventDeregisterAny(conn, cb_removed);
    if (cb_failed >= 0)
        virConnectDomainEventDeregisterAny(conn, cb_failed);
    if (cb_life >= 0)
        virConnectDomainEventDeregisterAny(conn, cb_life);
    if (r < 0)
        return r;
    /* Also when the removal is still unconfirmed: QEMU keeps its open descriptor, and a dead
     * copy gone early cannot be mistaken for the next stick's node by libvirt's late restore. */
    if (in_live && !w.failed && !w.stopped) {
        _cleanup_free_ char *dead = usbvm_deadnode_forget(dom, &stale);
        if (dead)
            note(&res, dead);
    }

    res.changed = true;
    if (!in_live || w.removed || w.stopped) {
        res.state = USBVM_STATE_DETACHED;
        *ret = res;
        return 0;
    }
    if (w.failed) {
        res.state = USBVM_STATE_ATTACHED;
        *ret = res;
        return usbvm_error_set(err, USBVM_E_LIBVIRT, EIO,
                               "the guest in '%s' refused to release '%s' (DEVICE_REMOVAL_FAILED); "
                               "it is still attached",
                               name, alias);
    }
    /* No event (yet): the live XML is the truth. */
    bool still = false;
    if (virDomainIsActive(dom) == 1) {
        r = alias_in_xml(dom, false, alias, &still, NULL, err);
        if (r < 0)
            return r;
    }
    if (!still) {
        res.state = USBVM_STATE_DETACHED;
        *ret = res;
        return 0;
    }
    res.state = USBVM_STATE_PENDING;
    *ret = res;
    if (timeout_ms > 0)
        return usbvm_error_set(
            err, USBVM_E_PENDING, EINPROGRESS,
            "detach of '%s' from '%s' is pending: the guest has not released it within %d.%03d s; "
            "libvirt removes it as soon as the guest lets go (or the domain stops), and 'usbvm "
            "status' shows it until then",
            alias, name, timeout_ms / 1000, timeout_ms % 1000);
    return usbvm_error_set(err, USBVM_E_PENDING, EINPROGRESS,
                           "detach of '%s' from '%s' requested and not confirmed yet; libvirt "
                           "removes it as soon as the guest lets go",
                           alias, name);
}
