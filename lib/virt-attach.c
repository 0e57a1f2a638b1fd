/* The libvirt layer, part 4: attach with every safety check, detach by alias, and wait for
 * libvirt to confirm a removal on the default event loop. */
#include "hostlock.h"
#include "snapshot.h"
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

/* One attach: the target domain's XML, read and parsed once, and what it says. */
typedef struct Attach {
    virDomainPtr dom;
    const char *name, *dev, *mode;
    const UsbvmDevice *d;
    UsbvmAttachSpec spec;
    unsigned flags;
    UsbvmDomDevList here; /* USB devices of the target, from the reference XML */
    UsbvmDomInfo info;    /* controllers, targets and SCSI units in use (live and persistent) */
    UsbvmResult res;
    char *xml;           /* the device's XML, as attached */
    bool added_scsi_ctl; /* a virtio-scsi controller was added for it */
} Attach;

static void attach_clear(Attach *a)
{
    usbvm_domdev_list_clear(&a->here);
    usbvm_dominfo_clear(&a->info);
    free(a->xml);
    a->xml = NULL;
}

/* Back to before anything was read or done: no domain facts, a result that only names the
 * alias. */
static void attach_reset(Attach *a)
{
    attach_clear(a);
    a->res = (UsbvmResult){ .state = USBVM_STATE_DETACHED };
    a->added_scsi_ctl = false;
    snprintf(a->res.alias, sizeof(a->res.alias), "%s", strempty(a->d->alias));
}

/* What one caller's attaches to one domain, one after the other, left there: the next one
 * starts from it instead of reading the domain's XML again (a burst of 32 sticks read a
 * growing XML 32 times; a single plug paid 0.7 ms). Only this caller's own changes are in it,
 * and the removals libvirt confirmed (usbvm_domview_drop). A change someone else made that the
 * caller has not heard of yet shows as libvirt's refusal, and that attach reads the XML after
 * all; one the view wrongly shows (a removal not yet heard of) only leaves a name unused. */
struct UsbvmDomView {
    bool valid;
    UsbvmDomDevList here;
    UsbvmDomInfo info;
};

UsbvmDomView *usbvm_domview_new(void)
{
    return xcalloc(1, sizeof(UsbvmDomView));
}

void usbvm_domview_forget(UsbvmDomView *v)
{
    if (!v)
        return;
    usbvm_domdev_list_clear(&v->here);
    usbvm_dominfo_clear(&v->info);
    v->valid = false;
}

void usbvm_domview_drop(UsbvmDomView *v, const char *alias)
{
    if (!v || !v->valid)
        return;
    for (size_t i = 0; i < v->here.n; i++) {
        UsbvmDomDev *dd = &v->here.items[i];
        if (!streq_ptr(dd->alias, alias))
            continue;
        for (size_t k = 0; dd->target && v->info.targets && v->info.targets[k]; k++)
            if (streq(v->info.targets[k], dd->target)) {
                free(v->info.targets[k]);
                size_t n = usbvm_strv_length(v->info.targets);
                v->info.targets[k] = v->info.targets[n - 1];
                v->info.targets[n - 1] = NULL;
                break;
            }
        usbvm_domdev_clear(dd);
        *dd = v->here.items[--v->here.n];
        return;
    }
}

void usbvm_domview_free(UsbvmDomView *v)
{
    usbvm_domview_forget(v);
    free(v);
}

/* Starts the attach from the view, which it takes over: true when there was one. */
static bool view_take(Attach *a, UsbvmAttachCtx *ctx)
{
    UsbvmDomView *v = ctx ? ctx->view : NULL;
    if (!v || !v->valid || (a->flags & (USBVM_ATTACH_CONFIG | USBVM_ATTACH_CHECK)))
        return false;
    a->here = v->here;
    a->info = v->info;
    *v = (UsbvmDomView){ 0 };
    return true;
}

/* Hands the domain, as this attach left it, to the next one. An attach that also changed the
 * persistent definition started from both XMLs, not from the view: the next one reads again. */
static void view_keep(Attach *a, UsbvmAttachCtx *ctx)
{
    UsbvmDomView *v = ctx ? ctx->view : NULL;
    if (!v || (a->flags & USBVM_ATTACH_CHECK))
        return;
    usbvm_domview_forget(v);
    if (a->flags & USBVM_ATTACH_CONFIG)
        return;
    if (a->res.changed) {
        if (a->added_scsi_ctl)
            a->info.virtio_scsi = true;
        usbvm_dominfo_add_disk(&a->info, a->spec.mode); /* what a->xml took */
        /* With its target name, for usbvm_domview_drop to free when it leaves. */
        usbvm_domdev_copy(usbvm_domdev_list_add(&a->here), &ctx->added);
    }
    v->here = a->here;
    v->info = a->info;
    a->here = (UsbvmDomDevList){ 0 };
    a->info = (UsbvmDomInfo){ 0 };
    v->valid = true;
}

/* Reads the live XML (and the persistent one for --config) once each; the reference is the
 * live one when the live domain changes. */
static int attach_read(Attach *a, UsbvmError *err)
{
    _cleanup_free_ char *live = NULL, *config = NULL;
    _cleanup_(xmlFreeDocp) xmlDocPtr ldoc = NULL, cdoc = NULL;
    int r;
    if ((a->flags & USBVM_ATTACH_LIVE) && ((r = domain_xml(a->dom, false, &live, err)) < 0 ||
                                           (r = usbvm_xml_parse(live, &ldoc, err)) < 0))
        return r;
    if (ldoc && !usbvm_domain_doc_running(ldoc))
        return usbvm_error_set(err, USBVM_E_FAILED, ESRCH,
                               "cannot attach %s to '%s': the domain is not running; start it, "
                               "or use --config to change only its persistent definition",
                               a->dev, a->name);
    if ((a->flags & USBVM_ATTACH_CONFIG) && ((r = domain_xml(a->dom, true, &config, err)) < 0 ||
                                             (r = usbvm_xml_parse(config, &cdoc, err)) < 0))
        return r;
    xmlDocPtr ref = ldoc ? ldoc : cdoc;
    usbvm_domdevs_from_doc(a->name, ref, &a->here);
    usbvm_dominfo_from_doc(ref, &a->info);
    if (ldoc && cdoc) {
        /* Target names and SCSI units must be free in both definitions. */
        UsbvmDomInfo c = { 0 };
        usbvm_dominfo_from_doc(cdoc, &c);
        for (size_t i = 0; c.targets && c.targets[i]; i++)
            a->info.targets = usbvm_strv_push(a->info.targets, c.targets[i]);
        if (c.scsi_index == a->info.scsi_index)
            for (size_t i = 0; c.scsi_units && c.scsi_units[i]; i++)
                a->info.scsi_units = usbvm_strv_push(a->info.scsi_units, c.scsi_units[i]);
        usbvm_dominfo_clear(&c);
    }
    return 0;
}

/* Idempotence, and a device someone else put into this same domain: 1 when it is already
 * there in this mode (nothing to do), 0 when it is not there, <0 when it is there otherwise. */
static int attach_present(Attach *a, const UsbvmDomDev **ret, UsbvmError *err)
{
    const UsbvmDomDev *dd = NULL;
    for (size_t i = 0; i < a->here.n; i++)
        if (usbvm_domdev_matches(&a->here.items[i], a->d) &&
            (!dd || (a->here.items[i].owned && !dd->owned)))
            dd = &a->here.items[i]; /* an owned match by alias wins over one by source */
    if (!dd)
        return 0;
    if (ret)
        *ret = dd;
    if (dd->owned && dd->mode == a->spec.mode)
        return 1;
    if (dd->owned)
        return usbvm_error_set(err, USBVM_E_REFUSED, EEXIST,
                               "cannot attach %s to '%s' as %s: it is already attached there as "
                               "%s; detach it first to change the mode",
                               a->dev, a->name, a->mode, usbvm_mode_to_string(dd->mode));
    return usbvm_error_set(err, USBVM_E_REFUSED, EEXIST,
                           "cannot attach %s to '%s': the domain already has it, attached by "
                           "someone else (alias '%s'); usbvm leaves it alone",
                           a->dev, a->name, dd->alias ? dd->alias : "none");
}

/* Invariant 2: never in two domains at once, whoever attached the first. */
static int attach_check_elsewhere(Attach *a, const UsbvmDomDevList *all, UsbvmError *err)
{
    for (size_t i = 0; i < all->n; i++) {
        const UsbvmDomDev *o = &all->items[i];
        if (streq(o->domain, a->name) || !usbvm_domdev_matches(o, a->d))
            continue;
        return usbvm_error_set(
            err, USBVM_E_REFUSED, EBUSY,
            "cannot attach %s to '%s': it is attached to domain '%s'%s; detach it there first",
            a->dev, a->name, o->domain, o->owned ? "" : " (not by usbvm)");
    }
    return 0;
}

/* The final check, under the host lock: the other domains as they are now, and the host's
 * use of the disks (invariants 1 and 2). */
static int attach_final_check(Attach *a, virConnectPtr conn, const UsbvmHostLock *lock,
                              UsbvmAttachCtx *ctx, UsbvmError *err)
{
    const UsbvmDomDevList *all = ctx ? ctx->known : NULL;
    bool foreign = true;
    if (lock && ctx &&
        (usbvm_hostlock_changed_since(lock, ctx->known_generation, &foreign) < 0 || foreign))
        all = NULL; /* another usbvm process changed a domain since the caller looked */
    _cleanup_(usbvm_domdev_list_freep) UsbvmDomDevList *fresh = NULL;
    if (!all) {
        /* The other domains, as they are now; the target's XML was read already. */
        UsbvmSnapshot s = { 0 };
        int r = usbvm_virt_read_snapshot(conn, a->name, &s, err);
        if (r < 0)
            return r;
        fresh = usbvm_snapshot_flatten(&s);
        usbvm_snapshot_clear(&s);
        all = fresh;
        if (ctx)
            ctx->reread = true;
    }
    int r = attach_check_elsewhere(a, all, err);
    if (r < 0)
        return r;
    r = ctx && ctx->recheck_host_use ? usbvm_device_check_host_use_now(a->d, ctx->host_use, err)
                                     : usbvm_device_check_host_use(a->d, err);
    if (r < 0) {
        if (err && !err->kind)
            err->kind = USBVM_E_REFUSED;
        usbvm_error_prefix(err, "cannot attach %s to '%s': ", a->dev, a->name);
    }
    return r;
}

/* What the domain must have for this mode, and what a persistent definition may hold. */
static int attach_check_domain(Attach *a, UsbvmError *err)
{
    if ((a->spec.mode == USBVM_MODE_USB || a->spec.mode == USBVM_MODE_USB_DISK) &&
        !a->info.usb_controller)
        return usbvm_error_set(err, USBVM_E_FAILED, ENODEV,
                               "cannot attach %s to '%s' as %s: the domain has no USB "
                               "controller; add <controller type='usb' model='qemu-xhci'/> "
                               "with 'virsh edit %s' and restart the domain",
                               a->dev, a->name, a->mode, a->name);
    if (usbvm_mode_is_disk(a->spec.mode) && (a->flags & USBVM_ATTACH_CONFIG)) {
        /* A persistent definition must never pin /dev/sdX: after a reboot it may be another
         * disk. libvirt has no startupPolicy for block disks, so say what happens. */
        const UsbvmBlock *b = usbvm_virt_pick_disk(a->d);
        int r;
        if (b && (r = usbvm_virt_check_persistent_source(b, a->dev, a->name, err)) < 0)
            return r;
        note(&a->res, "the persistent definition now needs the device: libvirt will not start "
                      "the domain while it is unplugged");
    }
    return 0;
}

static bool dac_in_use(void)
{
    /* libvirt's DAC driver refuses to relabel a node whose remembered owner is in use. */
    virErrorPtr e = virGetLastError();
    return e && e->code == VIR_ERR_OPERATION_INVALID && e->domain == VIR_FROM_SECURITY;
}

/* QEMU refused a command of the attach (libvirt's "unable to execute QEMU command"): what
 * the leftovers of an attach libvirtd did not finish cause ("Duplicate nodes", "Failed to get
 * "write" lock"). Told by libvirt's code, not by QEMU's words. */
static bool qemu_refused(void)
{
    virErrorPtr e = virGetLastError();
    return e && e->code == VIR_ERR_INTERNAL_ERROR && e->domain == VIR_FROM_QEMU;
}

/* After such a refusal (or libvirt's DAC one): what QEMU holds of an unfinished attach of this
 * device. Nodes alone are removed and the attach asked again: 1 when it went through. Leftovers
 * that stay (or a second refusal) make err say what QEMU holds and that a restart of the domain
 * frees it: < 0. 0 when there are none, and libvirt's refusal stands. */
static int attach_leftovers(Attach *a, const char *xml, unsigned vflags, UsbvmError *err)
{
    const UsbvmBlock *b = a->spec.mode == USBVM_MODE_USB ? NULL : usbvm_virt_pick_disk(a->d);
    _cleanup_free_ char *what = NULL;
    UsbvmError e = { 0 };
    int r = b ? usbvm_virt_find_leftovers(a->dom, a->d->alias, usbvm_virt_disk_source(b), &what, &e)
              : 0;
    if (r <= 0)
        return 0;
    if (r == 2) {
        if (virDomainAttachDeviceFlags(a->dom, xml, vflags) < 0)
            return usbvm_virt_error(err, USBVM_E_LIBVIRT,
                                    "cannot attach %s to '%s' even after removing %s, left in "
                                    "QEMU by an attach that libvirtd did not finish; restart "
                                    "the domain ('virsh destroy %s' and 'virsh start %s') when "
                                    "the guest can stop. libvirt said",
                                    a->dev, a->name, what, a->name, a->name);
        _cleanup_free_ char *n =
            xasprintf("removed %s, left in QEMU by an attach that libvirtd did not finish", what);
        note(&a->res, n);
        return 1;
    }
    return usbvm_error_set(err, USBVM_E_FAILED, EBUSY,
                           "cannot attach %s to '%s': QEMU still holds %s, left by an attach "
                           "that libvirtd did not finish (libvirt lists none of it), and "
                           "libvirt will not attach %s again until the domain restarts; run "
                           "'virsh destroy %s' and 'virsh start %s' when the guest can stop",
                           a->dev, a->name, what, usbvm_virt_disk_source(b), a->name, a->name);
}

/* The calls that change the domain: the virtio-scsi controller when needed, then the device. */
static int attach_do(Attach *a, const char *xml, UsbvmAttachCtx *ctx, UsbvmError *err)
{
    unsigned vflags = vir_flags(a->flags);
    if (ctx)
        ctx->called_usec = usbvm_now_usec();
    if (a->spec.mode == USBVM_MODE_SCSI && !a->info.virtio_scsi) {
        _cleanup_free_ char *ctl = usbvm_virt_scsi_controller_xml(a->info.scsi_index);
        if (virDomainAttachDeviceFlags(a->dom, ctl, vflags) < 0) {
            if (ctx)
                ctx->answered_usec = usbvm_now_usec(); /* its refusal is the answer */
            return usbvm_virt_error(err, USBVM_E_LIBVIRT,
                                    "cannot add a virtio-scsi controller to '%s' for %s", a->name,
                                    a->dev);
        }
        note(&a->res, "added a virtio-scsi controller");
        a->added_scsi_ctl = true;
    }
    int called = virDomainAttachDeviceFlags(a->dom, xml, vflags);
    if (ctx)
        ctx->answered_usec = usbvm_now_usec();
    if (called < 0) {
        /* libvirt's refusal as it was, read before any other call resets it. */
        bool dac = dac_in_use(), qemu = qemu_refused();
        UsbvmError first = { 0 };
        int r =
            usbvm_virt_error(&first, USBVM_E_LIBVIRT, "libvirt refused to attach %s to '%s' as %s",
                             a->dev, a->name, a->mode);
        /* Both refusals are what leftovers of an unfinished attach cause: said so when found. */
        if (dac || qemu) {
            r = attach_leftovers(a, xml, vflags, err);
            if (r > 0)
                goto attached;
            if (r < 0)
                return r;
        }
        if (dac)
            /* The dead copy of an earlier stick's node (see lib/virt-deadnode.c) that usbvm did
             * not get to remove: detached by something else, or libvirt on another host. */
            return usbvm_error_set(
                err, USBVM_E_LIBVIRT, EBUSY,
                "cannot attach %s to '%s': libvirt still counts the domain's copy of its "
                "/dev node as in use by an earlier disk that was pulled while attached and "
                "detached without usbvm; restart the domain to clear it, and detach pulled "
                "disks with 'usbvm detach' (or let 'usbvm watch' do it)",
                a->dev, a->name);
        if (err)
            *err = first;
        return first.errnum ? -first.errnum : -EIO;
    }
attached:
    a->res.changed = true;
    a->res.state = USBVM_STATE_ATTACHED;
    return 0;
}

/* What the domain now holds, for a caller that keeps a picture of the domains. */
static void attach_describe(const Attach *a, UsbvmDomDev *ret)
{
    *ret = (UsbvmDomDev){
        .domain = xstrdup(a->name),
        .alias = xstrdup(strempty(a->d->alias)),
        .owned = true,
        .kind = a->spec.mode == USBVM_MODE_USB ? USBVM_DOMDEV_HOSTDEV : USBVM_DOMDEV_DISK,
        .mode = a->spec.mode,
        .vendor_id = a->d->vendor_id,
        .product_id = a->d->product_id,
        .bus = a->spec.mode == USBVM_MODE_USB ? a->d->busnum : 0,
        .device = a->spec.mode == USBVM_MODE_USB ? a->d->devnum : 0,
        .readonly = a->spec.readonly,
    };
    const UsbvmBlock *b = a->spec.mode == USBVM_MODE_USB ? NULL : usbvm_virt_pick_disk(a->d);
    if (!b)
        return;
    /* As the domain's XML will say: what a guest is asked about at its detach (guest.c). The
     * target is the one a->xml took: a->info has not counted it yet (view_keep does). */
    ret->readonly |= b->readonly; /* a write-protected stick is attached read-only */
    ret->source = xstrdup(usbvm_virt_disk_source(b));
    ret->target = usbvm_virt_disk_target(a->spec.mode, &a->info);
    ret->target_bus = xstrdup(usbvm_virt_disk_bus(a->spec.mode));
    ret->serial = usbvm_virt_serial(a->d->serial);
}

/* From the final check to libvirt's answer, under the device's slot of the host lock. */
static int attach_locked(Attach *a, virConnectPtr conn, UsbvmAttachCtx *ctx, UsbvmError *err)
{
    int r = usbvm_virt_device_xml_info(a->d, &a->spec, &a->info, &a->xml, err);
    if (r < 0) {
        usbvm_error_prefix(err, "cannot attach %s to '%s': ", a->dev, a->name);
        return r;
    }
    if (a->flags & USBVM_ATTACH_CHECK) {
        r = attach_final_check(a, conn, NULL, ctx, err);
        if (r == 0 && a->spec.mode == USBVM_MODE_SCSI && !a->info.virtio_scsi)
            note(&a->res, "would add a virtio-scsi controller");
        a->res.changed = r == 0;
        a->res.state = USBVM_STATE_ATTACHED;
        return r;
    }
    UsbvmHostLock lock = { .fd = -1 };
    r = usbvm_hostlock_acquire(ctx ? ctx->lock_path : NULL, a->d->alias,
                               ctx && ctx->lock_nowait ? 0 : USBVM_HOSTLOCK_WAIT, &lock, err);
    if (r < 0)
        return r;
    r = attach_final_check(a, conn, &lock, ctx, err);
    if (r == 0)
        r = attach_do(a, a->xml, ctx, err);
    if (r == 0) {
        uint64_t g;
        (void)usbvm_hostlock_bump(&lock, &g);
        (void)usbvm_hostlock_detach_clear(&lock); /* its next detach is a new one */
        if (ctx)
            attach_describe(a, &ctx->added);
    }
    usbvm_hostlock_release(&lock);
    return r;
}

int usbvm_virt_attach(virConnectPtr conn, virDomainPtr dom, const UsbvmDevice *d,
                      const UsbvmAttachSpec *spec, unsigned flags, UsbvmResult *ret,
                      UsbvmError *err)
{
    return usbvm_virt_attach_ctx(conn, dom, d, spec, flags, NULL, ret, err);
}

/* From the target's devices on: idempotence, the domain's checks, then the locked part. */
static int attach_run(Attach *a, virConnectPtr conn, UsbvmAttachCtx *ctx, UsbvmError *err)
{
    const UsbvmDomDev *there = NULL;
    int r = attach_present(a, &there, err);
    if (r == 1) {
        a->res.state = USBVM_STATE_ATTACHED; /* already there: changed stays false */
        if (ctx && !(a->flags & USBVM_ATTACH_CHECK)) {
            /* a caller's picture that missed it learns it, as the domain has it */
            usbvm_domdev_clear(&ctx->added);
            usbvm_domdev_copy(&ctx->added, there);
        }
        return 0;
    }
    if (r == 0 && (r = attach_check_domain(a, err)) == 0)
        r = attach_locked(a, conn, ctx, err);
    return r;
}

int usbvm_virt_attach_ctx(virConnectPtr conn, virDomainPtr dom, const UsbvmDevice *d,
                          const UsbvmAttachSpec *spec, unsigned flags, UsbvmAttachCtx *ctx,
                          UsbvmResult *ret, UsbvmError *err)
{
    if (!(flags & (USBVM_ATTACH_LIVE | USBVM_ATTACH_CONFIG)))
        flags |= USBVM_ATTACH_LIVE;
    Attach a = { .dom = dom,
                 .name = virDomainGetName(dom),
                 .dev = device_name(d),
                 .d = d,
                 .spec = *spec,
                 .flags = flags };
    a.spec.persistent = (flags & USBVM_ATTACH_CONFIG) != 0;
    a.mode = usbvm_mode_to_string(a.spec.mode);
    attach_reset(&a);
    bool from_view = view_take(&a, ctx);
    if (from_view && attach_present(&a, NULL, NULL) != 0) {
        attach_clear(&a); /* "there already" is for the domain's own XML to say */
        from_view = false;
    }
    int r = from_view ? 0 : attach_read(&a, err);
    if (r == 0)
        r = attach_run(&a, conn, ctx, err);
    if (r < 0 && from_view && err && err->kind == USBVM_E_LIBVIRT) {
        /* libvirt refused what the view allowed: someone else changed the domain meanwhile
         * (a target name or SCSI unit taken). Once more, from the domain's XML. */
        attach_reset(&a);
        from_view = false;
        *err = (UsbvmError){ 0 };
        r = attach_read(&a, err);
        if (r == 0) {
            note(&a.res, "the domain changed meanwhile; read it again");
            r = attach_run(&a, conn, ctx, err);
        }
    }
    if (ctx)
        ctx->from_view = from_view;
    if (r == 0)
        view_keep(&a, ctx);
    else if (ctx)
        usbvm_domview_forget(ctx->view);
    attach_clear(&a);
    if (r == 0)
        *ret = a.res;
    return r;
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

static int read_doc(virDomainPtr dom, bool inactive, xmlDocPtr *ret, UsbvmError *err)
{
    _cleanup_free_ char *xml = NULL;
    int r = domain_xml(dom, inactive, &xml, err);
    return r < 0 ? r : usbvm_xml_parse(xml, ret, err);
}

/* Any device kind may carry the alias (with --force the admin names any device). */
static bool alias_in_doc(xmlDocPtr doc, const char *alias)
{
    _cleanup_(xmlXPathFreeContextp) xmlXPathContextPtr ctx = xmlXPathNewContext(doc);
    _cleanup_(xmlXPathFreeObjectp) xmlXPathObjectPtr res =
        xmlXPathEvalExpression(BAD_CAST "/domain/devices/*/alias/@name", ctx);
    bool found = false;
    for (int i = 0; res && res->nodesetval && i < res->nodesetval->nodeNr; i++) {
        _cleanup_xmlfree_ xmlChar *v = xmlNodeGetContent(res->nodesetval->nodeTab[i]);
        found |= streq((const char *)v, alias);
    }
    return found;
}

/* The live XML, whose <domain id=...> also says whether the domain runs: NULL in *ret when it
 * does not, one call instead of virDomainIsActive and virDomainGetXMLDesc. */
static int read_live_doc(virDomainPtr dom, xmlDocPtr *ret, UsbvmError *err)
{
    int r = read_doc(dom, false, ret, err);
    if (r == 0 && !usbvm_domain_doc_running(*ret)) {
        xmlFreeDoc(*ret);
        *ret = NULL;
    }
    return r;
}

static int alias_in_xml(virDomainPtr dom, bool inactive, const char *alias, bool *ret_found,
                        UsbvmError *err)
{
    _cleanup_(xmlFreeDocp) xmlDocPtr doc = NULL;
    int r = read_doc(dom, inactive, &doc, err);
    if (r < 0)
        return r;
    *ret_found = alias_in_doc(doc, alias);
    return 0;
}

/* Where the alias is: the live domain, the persistent definition, or neither. The live XML
 * it read is the caller's (*ret_live_doc, NULL when the domain does not run or was not asked
 * about). */
static int detach_where(virDomainPtr dom, const char *alias, unsigned flags, bool *ret_live,
                        bool *ret_config, xmlDocPtr *ret_live_doc, UsbvmError *err)
{
    *ret_live = *ret_config = false;
    int r;
    if (flags & USBVM_ATTACH_LIVE) {
        if ((r = read_live_doc(dom, ret_live_doc, err)) < 0)
            return r;
        *ret_live = *ret_live_doc && alias_in_doc(*ret_live_doc, alias);
    }
    if ((flags & USBVM_ATTACH_CONFIG) && virDomainIsPersistent(dom) == 1 &&
        (r = alias_in_xml(dom, true, alias, ret_config, err)) < 0)
        return r;
    return 0;
}

/* The events that confirm a removal, subscribed before asking so a quick one is not missed. */
typedef struct DetachWait {
    Waiter w;
    int cb_removed, cb_failed, cb_life;
} DetachWait;

static void detach_subscribe(virConnectPtr conn, virDomainPtr dom, DetachWait *dw)
{
    dw->cb_removed =
        virConnectDomainEventRegisterAny(conn, dom, VIR_DOMAIN_EVENT_ID_DEVICE_REMOVED,
                                         VIR_DOMAIN_EVENT_CALLBACK(on_removed), &dw->w, NULL);
    dw->cb_failed = virConnectDomainEventRegisterAny(
        conn, dom, VIR_DOMAIN_EVENT_ID_DEVICE_REMOVAL_FAILED,
        VIR_DOMAIN_EVENT_CALLBACK(on_removal_failed), &dw->w, NULL);
    dw->cb_life =
        virConnectDomainEventRegisterAny(conn, dom, VIR_DOMAIN_EVENT_ID_LIFECYCLE,
                                         VIR_DOMAIN_EVENT_CALLBACK(on_lifecycle), &dw->w, NULL);
}

static void detach_unsubscribe(virConnectPtr conn, DetachWait *dw)
{
    int ids[] = { dw->cb_removed, dw->cb_failed, dw->cb_life };
    for (size_t i = 0; i < ELEMENTSOF(ids); i++)
        if (ids[i] >= 0)
            virConnectDomainEventDeregisterAny(conn, ids[i]);
}

/* Runs the default event loop (the CLI's) until libvirt confirms, refuses, or time is up. */
static void detach_wait(DetachWait *dw, int timeout_ms)
{
    int timer = virEventAddTimeout(timeout_ms, on_timeout, &dw->w, NULL);
    while (!dw->w.removed && !dw->w.failed && !dw->w.stopped && !dw->w.timed_out && timer >= 0)
        if (virEventRunDefaultImpl() < 0)
            break;
    if (timer >= 0)
        virEventRemoveTimeout(timer);
}

/* Asks libvirt; a device QEMU is already unplugging counts as asked. */
static int detach_ask(virDomainPtr dom, const char *alias, unsigned vflags, bool in_live,
                      UsbvmError *err)
{
    if (virDomainDetachDeviceAlias(dom, alias, vflags) == 0)
        return 0;
    virErrorPtr e = virGetLastError();
    bool from_qemu = e && e->domain == VIR_FROM_QEMU && e->code == VIR_ERR_INTERNAL_ERROR;
    int r = usbvm_virt_error(err, USBVM_E_LIBVIRT, "libvirt refused to detach '%s' from '%s'",
                             alias, virDomainGetName(dom));
    /* QEMU refuses a second device_del while the guest still holds the device ("already in
     * the process of unplug"): still asked, if the alias is still there. */
    bool still = false;
    if (from_qemu && in_live && alias_in_xml(dom, false, alias, &still, NULL) == 0 && still) {
        usbvm_error_clear(err);
        return 0;
    }
    return r;
}

/* Asks libvirt under the identity's slot of the host lock, unless a usbvm process (this one
 * included) asked it to detach this alias moments ago: a second request while QEMU finishes
 * the first crashes libvirtd 9.0 (hostlock.h). That one is waited for instead, as if asked. */
static int detach_ask_once(virDomainPtr dom, const char *alias, unsigned vflags, bool in_live,
                           UsbvmResult *res, UsbvmError *err)
{
    res->awaited_ms = 0;
    UsbvmHostLock lock = { .fd = -1 };
    int r = usbvm_hostlock_acquire(NULL, alias, USBVM_HOSTLOCK_WAIT, &lock, err);
    if (r < 0) {
        usbvm_error_prefix(err, "cannot detach '%s' from '%s': ", alias, virDomainGetName(dom));
        return r;
    }
    uint64_t ms = 0;
    if (in_live && usbvm_hostlock_detach_asked(&lock, alias, &ms) == 1) {
        _cleanup_free_ char *n = xasprintf("a usbvm process asked libvirt to detach it %llu ms "
                                           "ago; not asked twice, its removal is awaited",
                                           (unsigned long long)ms);
        note(res, n);
        res->awaited_ms = ms ? (unsigned)ms : 1;
        /* The persistent definition is libvirt's alone: that part is asked all the same. */
        if (vflags & VIR_DOMAIN_AFFECT_CONFIG)
            r = detach_ask(dom, alias, VIR_DOMAIN_AFFECT_CONFIG, false, err);
    } else {
        /* Stamped before asking: a process killed during the call has still asked. */
        if (in_live)
            (void)usbvm_hostlock_detach_mark(&lock, alias);
        r = detach_ask(dom, alias, vflags, in_live, err);
        if (r < 0 && in_live)
            (void)usbvm_hostlock_detach_clear(&lock);
    }
    usbvm_hostlock_release(&lock);
    return r;
}

/* Not asked because another request is under way: its removal is awaited until it is safe to
 * ask again, then asked, and *timeout_ms is what is left for the wait. */
static int detach_await_other(virDomainPtr dom, const char *alias, unsigned vflags, DetachWait *dw,
                              int *timeout_ms, UsbvmResult *res, UsbvmError *err)
{
    /* That request may have ended before the subscription. */
    bool still = true;
    if (alias_in_xml(dom, false, alias, &still, NULL) == 0 && !still) {
        dw->w.removed = true;
        return 0;
    }
    int settle = USBVM_HOSTLOCK_DETACH_SETTLE_MS - (int)res->awaited_ms + 1;
    int first = settle < *timeout_ms ? settle : *timeout_ms;
    detach_wait(dw, first);
    *timeout_ms -= first;
    if (dw->w.removed || dw->w.failed || dw->w.stopped || *timeout_ms <= 0)
        return 0;
    dw->w.timed_out = false; /* the rest of the wait is the caller's */
    UsbvmResult again = *res;
    int r = detach_ask_once(dom, alias, vflags & VIR_DOMAIN_AFFECT_LIVE, true, &again, err);
    res->awaited_ms = again.awaited_ms;
    if (r == 0 && !again.awaited_ms) {
        _cleanup_free_ char *n = xasprintf("no removal came within %d s of that request: asked "
                                           "after all",
                                           USBVM_HOSTLOCK_DETACH_SETTLE_MS / 1000);
        note(res, n);
    }
    return r;
}

/* What the answer says once asked: gone, refused by the guest, or pending. */
static int detach_outcome(virDomainPtr dom, const char *alias, const DetachWait *dw, int timeout_ms,
                          UsbvmResult *res, UsbvmError *err)
{
    const char *name = virDomainGetName(dom);
    if (dw->w.removed || dw->w.stopped) {
        res->state = USBVM_STATE_DETACHED;
        return 0;
    }
    if (dw->w.failed) {
        res->state = USBVM_STATE_ATTACHED;
        return usbvm_error_set(err, USBVM_E_LIBVIRT, EIO,
                               "the guest in '%s' refused to release '%s' (DEVICE_REMOVAL_FAILED); "
                               "it is still attached",
                               name, alias);
    }
    /* No event (yet): the live XML is the truth. A domain that has gone meanwhile took the
     * device with it. */
    _cleanup_(xmlFreeDocp) xmlDocPtr doc = NULL;
    int r = read_live_doc(dom, &doc, err);
    if (r < 0 && virDomainIsActive(dom) == 1)
        return r;
    usbvm_error_clear(err);
    bool still = doc && alias_in_doc(doc, alias);
    res->state = still ? USBVM_STATE_PENDING : USBVM_STATE_DETACHED;
    if (!still)
        return 0;
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

int usbvm_virt_detach_alias(virConnectPtr conn, virDomainPtr dom, const char *alias, unsigned flags,
                            int timeout_ms, UsbvmResult *ret, UsbvmError *err)
{
    if (!(flags & (USBVM_ATTACH_LIVE | USBVM_ATTACH_CONFIG)))
        flags |= USBVM_ATTACH_LIVE;
    UsbvmResult res = { .state = USBVM_STATE_DETACHED };
    snprintf(res.alias, sizeof(res.alias), "%s", alias);
    bool in_live, in_config;
    _cleanup_(xmlFreeDocp) xmlDocPtr live_doc = NULL;
    int r = detach_where(dom, alias, flags, &in_live, &in_config, &live_doc, err);
    if (r < 0)
        return r;
    res.changed = in_live || in_config;
    /* Invariant 3: only what usbvm attached, unless the admin insists. */
    if (res.changed && strncmp(alias, USBVM_ALIAS_PREFIX, strlen(USBVM_ALIAS_PREFIX)) != 0 &&
        !(flags & USBVM_ATTACH_FORCE))
        return usbvm_error_set(err, USBVM_E_REFUSED, EPERM,
                               "'%s' in domain '%s' was not attached by usbvm (no ua-usbvm- "
                               "alias); pass --force to detach it anyway",
                               alias, virDomainGetName(dom));
    if (!res.changed || (flags & USBVM_ATTACH_CHECK)) {
        *ret = res;
        return 0;
    }
    unsigned vflags =
        (in_live ? VIR_DOMAIN_AFFECT_LIVE : 0) | (in_config ? VIR_DOMAIN_AFFECT_CONFIG : 0);
    _cleanup_(usbvm_deadnode_clear) UsbvmDeadNode stale = { 0 };
    if (in_live)
        usbvm_deadnode_collect(dom, live_doc, alias, &stale);
    xmlFreeDoc(TAKE_PTR(live_doc)); /* not held across the calls that follow */
    DetachWait dw = { .w = { .alias = alias }, .cb_removed = -1, .cb_failed = -1, .cb_life = -1 };
    bool wait = in_live && timeout_ms > 0;
    if (wait)
        detach_subscribe(conn, dom, &dw);
    r = detach_ask_once(dom, alias, vflags, in_live, &res, err);
    int left = timeout_ms;
    if (r == 0 && wait && res.awaited_ms)
        r = detach_await_other(dom, alias, vflags, &dw, &left, &res, err);
    if (r == 0 && wait && !dw.w.removed && left > 0)
        detach_wait(&dw, left);
    detach_unsubscribe(conn, &dw);
    if (r < 0)
        return r;
    /* Also when the removal is still unconfirmed: QEMU keeps its open descriptor, and a dead
     * copy gone early cannot be mistaken for the next stick's node by libvirt's late restore. */
    if (in_live && !dw.w.failed && !dw.w.stopped) {
        _cleanup_free_ char *dead = usbvm_deadnode_forget(dom, &stale);
        if (dead)
            note(&res, dead);
    }
    if (!in_live)
        dw.w.removed = true; /* the persistent definition changes at once */
    r = detach_outcome(dom, alias, &dw, timeout_ms, &res, err);
    *ret = res;
    return r;
}
