/* Reconcile: the desired state of a device (its first matching rule, if the domain runs)
 * against the actual state (ua-usbvm- devices in the live XML of running domains), turned
 * into attach and detach calls. Events only decide which devices to re-check, so restarts,
 * missed events and reloads end in the same place. */
#include "log.h"
#include "watch-internal.h"

#include <errno.h>
#include <string.h>

#define MS(usec) ((unsigned long long)((usec) / 1000))

char *usbvm_watch_label(const UsbvmDevice *d)
{
    _cleanup_free_ char *name = usbvm_device_display_name(d);
    _cleanup_free_ char *serial = d->serial ? usbvm_escape(d->serial) : NULL;
    _cleanup_free_ char *port = usbvm_escape(d->port);
    return xasprintf("%s%s%s %04x:%04x%s%s", port, name && *name ? " " : "", strempty(name),
                     d->vendor_id, d->product_id, serial ? " sn=" : "", strempty(serial));
}

static void add_str(json_object *o, const char *key, const char *value)
{
    if (!value)
        return;
    _cleanup_free_ char *clean = usbvm_utf8_sanitize(value);
    json_object_object_add(o, key, json_object_new_string(clean));
}

json_object *usbvm_watch_fields(const char *event, const WatchDevice *dev)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "event", json_object_new_string(event));
    json_object_object_add(o, "mono_usec", json_object_new_int64((int64_t)usbvm_now_usec()));
    if (dev && dev->model) {
        const UsbvmDevice *d = dev->model;
        char id[16];
        snprintf(id, sizeof(id), "%04x:%04x", d->vendor_id, d->product_id);
        add_str(o, "device", d->port);
        json_object_object_add(o, "id", json_object_new_string(id));
        add_str(o, "name", d->product);
        add_str(o, "serial", d->serial);
        add_str(o, "alias", d->alias);
    }
    return o;
}

bool usbvm_watch_alias_is(const char *domdev_alias, const char *device_alias)
{
    /* A device's further disks (multi-LUN readers) carry "<alias>-N". */
    if (!domdev_alias || !device_alias)
        return false;
    size_t n = strlen(device_alias);
    return strncmp(domdev_alias, device_alias, n) == 0 &&
           (domdev_alias[n] == '\0' || domdev_alias[n] == '-');
}

WatchDevice *usbvm_watch_find_alias(Watch *w, const char *alias)
{
    /* Prefer a present device over a removed one with the same identity. */
    WatchDevice *gone = NULL;
    for (size_t i = 0; i < w->n_devs; i++) {
        WatchDevice *d = w->devs[i];
        if (!d->model || !usbvm_watch_alias_is(alias, d->model->alias))
            continue;
        if (!d->gone)
            return d;
        gone = d;
    }
    return gone;
}

bool usbvm_watch_pending_for(Watch *w, const char *device_alias)
{
    for (size_t i = 0; device_alias && i < w->n_pending; i++)
        if (usbvm_watch_alias_is(w->pending[i].alias, device_alias))
            return true;
    return false;
}

static WatchPending *pending_find(Watch *w, const char *domain, const char *alias)
{
    for (size_t i = 0; i < w->n_pending; i++)
        if (streq(w->pending[i].domain, domain) && streq(w->pending[i].alias, alias))
            return &w->pending[i];
    return NULL;
}

static void pending_remove(Watch *w, WatchPending *p)
{
    free(p->domain);
    free(p->alias);
    free(p->reason);
    size_t i = (size_t)(p - w->pending);
    memmove(&w->pending[i], &w->pending[i + 1], (w->n_pending - i - 1) * sizeof(*p));
    w->n_pending--;
}

void usbvm_watch_pending_drop_domain(Watch *w, const char *domain)
{
    for (size_t i = 0; i < w->n_pending;) {
        if (streq(w->pending[i].domain, domain))
            pending_remove(w, &w->pending[i]);
        else
            i++;
    }
}

/* Logs a "waiting"/"refused" note once per distinct text, so an event storm or a repeated
 * reconcile does not repeat the same line. */
static void note(Watch *w, WatchDevice *dev, UsbvmLogLevel level, const char *event,
                 const char *domain, const char *text)
{
    if (streq(dev->last_note, text))
        return;
    free(dev->last_note);
    dev->last_note = xstrdup(text);
    _cleanup_free_ char *label = usbvm_watch_label(dev->model);
    json_object *f = usbvm_watch_fields(event, dev);
    add_str(f, "domain", domain);
    add_str(f, "msg", text);
    _cleanup_free_ char *esc = usbvm_escape(text);
    usbvm_logf(level, f, "%s %s: %s", event, label, esc);
}

static void request_detach(Watch *w, WatchDevice *dev, const char *domain, const char *alias,
                           const char *why)
{
    if (pending_find(w, domain, alias))
        return;
    _cleanup_free_ char *label =
        dev && dev->model ? usbvm_watch_label(dev->model) : usbvm_escape(alias);
    if (w->opts->dry_run) {
        json_object *f = usbvm_watch_fields("detach", dev);
        add_str(f, "domain", domain);
        add_str(f, "alias", alias);
        add_str(f, "result", "dry-run");
        add_str(f, "msg", why);
        usbvm_logf(USBVM_LOG_NOTICE, f, "detach %s <- %s (%s): dry run, nothing done", label,
                   domain, why);
        return;
    }
    uint64_t t0 = usbvm_now_usec();
    UsbvmError err = { 0 };
    UsbvmResult res = { 0 };
    _cleanup_(virDomainFreep) virDomainPtr dom = NULL;
    int r = usbvm_virt_lookup(w->conn, domain, &dom, &err);
    if (r >= 0)
        r = usbvm_virt_detach_alias(w->conn, dom, alias, USBVM_ATTACH_LIVE, 0, &res, &err);
    uint64_t t1 = usbvm_now_usec();
    json_object *f = usbvm_watch_fields("detach", dev);
    add_str(f, "domain", domain);
    add_str(f, "alias", alias);
    add_str(f, "msg", why);
    if (r < 0 && err.kind != USBVM_E_PENDING) {
        w->summary->failed++;
        add_str(f, "result", "failed");
        add_str(f, "error", err.message);
        _cleanup_free_ char *esc = usbvm_escape(err.message);
        usbvm_logf(USBVM_LOG_ERR, f, "detach %s <- %s (%s): failed: %s", label, domain, why, esc);
        return;
    }
    if (res.state == USBVM_STATE_DETACHED) {
        w->summary->detached++;
        add_str(f, "result", "ok");
        json_object_object_add(f, "ms", json_object_new_int64((int64_t)MS(t1 - t0)));
        usbvm_logf(USBVM_LOG_NOTICE, f, "detach %s <- %s (%s): ok in %llu ms", label, domain, why,
                   MS(t1 - t0));
        return;
    }
    /* Asked; libvirt confirms with DEVICE_REMOVED (invariant 4). */
    w->pending = xrealloc(w->pending, (w->n_pending + 1) * sizeof(*w->pending));
    w->pending[w->n_pending++] = (WatchPending){
        .domain = xstrdup(domain), .alias = xstrdup(alias), .since_usec = t0, .reason = xstrdup(why)
    };
    add_str(f, "result", "requested");
    usbvm_logf(USBVM_LOG_INFO, f, "detach %s <- %s (%s): requested, waiting for the guest", label,
               domain, why);
}

static bool has_disk(const UsbvmDevice *d)
{
    for (size_t i = 0; i < d->n_blocks; i++)
        if (d->blocks[i].type == USBVM_BLOCK_DISK)
            return true;
    return false;
}

static void do_attach(Watch *w, WatchDevice *dev, const char *domain, const UsbvmAttachSpec *spec,
                      const UsbvmDomDevList *actual)
{
    UsbvmError err = { 0 };
    _cleanup_(virDomainFreep) virDomainPtr dom = NULL;
    if (usbvm_virt_lookup(w->conn, domain, &dom, &err) < 0 || virDomainIsActive(dom) != 1) {
        _cleanup_free_ char *text =
            xasprintf("domain '%s' is not running; attaching when it starts", domain);
        note(w, dev, USBVM_LOG_INFO, "wait", domain, text);
        w->summary->waiting++;
        return;
    }
    const char *mode = usbvm_mode_to_string(spec->mode);
    _cleanup_free_ char *label = usbvm_watch_label(dev->model);
    json_object *f = usbvm_watch_fields("attach", dev);
    add_str(f, "domain", domain);
    add_str(f, "mode", mode);
    if (w->opts->dry_run) {
        add_str(f, "result", "dry-run");
        usbvm_logf(USBVM_LOG_NOTICE, f, "attach %s -> %s as %s: dry run, nothing done", label,
                   domain, mode);
        return;
    }
    UsbvmResult res = { 0 };
    unsigned flags = USBVM_ATTACH_LIVE | (spec->persistent ? USBVM_ATTACH_CONFIG : 0);
    /* Mounts change without uevents: read the host's use of the disks now (invariant 1). */
    int r = usbvm_device_refresh_host_use(dev->model, &usbvm_host_paths_default, &err);
    if (r >= 0)
        r = usbvm_virt_attach_known(w->conn, dom, dev->model, spec, flags, actual, &res, &err);
    uint64_t now = usbvm_now_usec();
    uint64_t since = dev->event_usec ? dev->event_usec : now;
    /* The time libvirt answered, for event-to-attached latency measurements. */
    json_object_object_add(f, "mono_usec", json_object_new_int64((int64_t)now));
    json_object_object_add(f, "ms", json_object_new_int64((int64_t)MS(now - since)));
    if (r < 0) {
        w->summary->failed++;
        add_str(f, "result", err.kind == USBVM_E_REFUSED ? "refused" : "failed");
        add_str(f, "error", err.message);
        /* Logged once per reason: a refusal (mounted, in use) is re-checked at the device's
         * next event, a reload or a restart, never in a loop. */
        if (!streq(dev->last_note, err.message)) {
            free(dev->last_note);
            dev->last_note = xstrdup(err.message);
            _cleanup_free_ char *esc = usbvm_escape(err.message);
            usbvm_logf(USBVM_LOG_ERR, f, "attach %s -> %s as %s: %s: %s", label, domain, mode,
                       err.kind == USBVM_E_REFUSED ? "refused" : "failed", esc);
        } else {
            json_object_put(f);
        }
        return;
    }
    free(dev->last_note);
    dev->last_note = NULL;
    dev->attached = true;
    dev->attached_mode = spec->mode;
    if (!res.changed) {
        w->summary->unchanged++;
        json_object_put(f);
        return;
    }
    w->summary->attached++;
    add_str(f, "result", "ok");
    if (res.notes[0])
        add_str(f, "notes", res.notes);
    usbvm_logf(USBVM_LOG_NOTICE, f, "attach %s -> %s as %s: ok in %llu ms%s%s", label, domain, mode,
               MS(now - since), res.notes[0] ? "; " : "", res.notes);
}

void usbvm_watch_reconcile_device(Watch *w, WatchDevice *dev, const UsbvmDomDevList *actual)
{
    const UsbvmDevice *d = dev->model;
    if (!d)
        return;

    /* What of ours is where, right now. */
    size_t n_owned = 0;
    const UsbvmDomDev *owned[16];
    for (size_t i = 0; actual && i < actual->n && n_owned < ELEMENTSOF(owned); i++)
        if (actual->items[i].owned && usbvm_watch_alias_is(actual->items[i].alias, d->alias))
            owned[n_owned++] = &actual->items[i];
    dev->attached = n_owned > 0;
    if (n_owned)
        dev->attached_mode = owned[0]->mode;

    if (dev->gone) {
        /* Unplugged: no stale device may stay in a domain. Detach by alias, which needs
         * nothing from the vanished device. */
        for (size_t i = 0; i < n_owned; i++)
            request_detach(w, dev, owned[i]->domain, owned[i]->alias, "unplugged");
        return;
    }
    if (dev->keep)
        return;

    const UsbvmRule *rule = w->rules ? usbvm_ruleset_match(w->rules, d) : NULL;
    if (rule && usbvm_rule_target(rule) == USBVM_TARGET_IGNORE)
        return; /* hands off, whatever its state */

    const char *want_domain = rule ? usbvm_rule_domain(rule) : NULL;
    const UsbvmAttachSpec *spec = rule ? usbvm_rule_spec(rule) : NULL;

    /* Anything of ours that is not where the policy wants it goes back to the host first;
     * the attach elsewhere follows once libvirt confirms the removal (invariant 2). */
    bool in_place = false, elsewhere = false;
    for (size_t i = 0; i < n_owned; i++) {
        const UsbvmDomDev *o = owned[i];
        if (!rule) {
            request_detach(w, dev, o->domain, o->alias, "no rule matches it");
            elsewhere = true;
            continue;
        }
        if (!streq(o->domain, want_domain) || o->mode != spec->mode) {
            _cleanup_free_ char *why = xasprintf("the policy sends it to %s as %s", want_domain,
                                                 usbvm_mode_to_string(spec->mode));
            request_detach(w, dev, o->domain, o->alias, why);
            elsewhere = true;
            continue;
        }
        /* Same place, same mode: is it still the same plug? */
        if (o->kind == USBVM_DOMDEV_HOSTDEV && o->bus && o->device &&
            (o->bus != d->busnum || o->device != d->devnum)) {
            request_detach(w, dev, o->domain, o->alias, "stale address after a replug");
            elsewhere = true;
            continue;
        }
        if (o->kind == USBVM_DOMDEV_DISK && !has_disk(d) && spec->mode != USBVM_MODE_USB) {
            request_detach(w, dev, o->domain, o->alias, "its block device is gone");
            elsewhere = true;
            continue;
        }
        in_place = true;
    }
    if (!rule || elsewhere || in_place)
        return;

    for (size_t i = 0; i < w->n_pending; i++)
        if (usbvm_watch_alias_is(w->pending[i].alias, d->alias))
            return; /* still leaving a domain */

    if (!w->conn) {
        note(w, dev, USBVM_LOG_INFO, "wait", want_domain, "waiting for libvirtd to come back");
        w->summary->waiting++;
        return;
    }
    if (usbvm_mode_is_disk(spec->mode) && !has_disk(d)) {
        note(w, dev, USBVM_LOG_DEBUG, "wait", want_domain, "waiting for its block device");
        w->summary->waiting++;
        return;
    }
    if (spec->mode == USBVM_MODE_USB && !dev->bound) {
        note(w, dev, USBVM_LOG_DEBUG, "wait", want_domain, "waiting for the device to bind");
        w->summary->waiting++;
        return;
    }
    do_attach(w, dev, want_domain, spec, actual);
}

static int fetch_actual(Watch *w, UsbvmDomDevList **ret)
{
    UsbvmError err = { 0 };
    *ret = NULL;
    if (!w->conn)
        return -ENOTCONN;
    int r = usbvm_virt_list_domdevs(w->conn, ret, &err);
    if (r < 0) {
        _cleanup_free_ char *esc = usbvm_escape(err.message);
        usbvm_logf(USBVM_LOG_WARNING, NULL, "cannot read the domains' devices: %s", esc);
    }
    return r;
}

void usbvm_watch_reconcile_one(Watch *w, WatchDevice *dev)
{
    _cleanup_(usbvm_domdev_list_freep) UsbvmDomDevList *actual = NULL;
    if (w->conn && fetch_actual(w, &actual) < 0)
        return;
    usbvm_watch_reconcile_device(w, dev, actual);
}

void usbvm_watch_reconcile_all(Watch *w, const char *why)
{
    _cleanup_(usbvm_domdev_list_freep) UsbvmDomDevList *actual = NULL;
    if (w->conn && fetch_actual(w, &actual) < 0)
        return;
    usbvm_logf(USBVM_LOG_DEBUG, NULL, "reconcile all devices (%s)", why);
    for (size_t i = 0; i < w->n_devs; i++)
        usbvm_watch_reconcile_device(w, w->devs[i], actual);

    /* Our aliases that belong to no device we know: the device went while we were not
     * looking (daemon down, events lost). Detach them. */
    for (size_t i = 0; actual && i < actual->n; i++) {
        const UsbvmDomDev *o = &actual->items[i];
        if (!o->owned)
            continue;
        WatchDevice *dev = usbvm_watch_find_alias(w, o->alias);
        if (dev && !dev->gone)
            continue;
        if (dev)
            continue; /* handled above as unplugged */
        request_detach(w, NULL, o->domain, o->alias, "its host device is not present");
    }
}

void usbvm_watch_device_removed_event(Watch *w, const char *domain, const char *alias, bool failed)
{
    WatchPending *p = pending_find(w, domain, alias);
    WatchDevice *dev = usbvm_watch_find_alias(w, alias);
    uint64_t now = usbvm_now_usec();
    _cleanup_free_ char *label =
        dev && dev->model ? usbvm_watch_label(dev->model) : usbvm_escape(alias);
    if (!p && !failed) {
        /* Not a removal this daemon asked for (a second event for the same device, an admin's
         * 'usbvm detach', a guest eject): nothing to report, but the device is re-checked. */
        usbvm_logf(USBVM_LOG_DEBUG, NULL, "%s left %s", label, domain);
    } else {
        json_object *f = usbvm_watch_fields("detach", dev);
        add_str(f, "domain", domain);
        add_str(f, "alias", alias);
        if (failed) {
            w->summary->failed++;
            add_str(f, "result", "failed");
            usbvm_logf(USBVM_LOG_ERR, f,
                       "detach %s <- %s: the guest refused to release it; it stays attached", label,
                       domain);
        } else {
            w->summary->detached++;
            add_str(f, "result", "ok");
            json_object_object_add(f, "ms",
                                   json_object_new_int64((int64_t)MS(now - p->since_usec)));
            add_str(f, "msg", p->reason);
            usbvm_logf(USBVM_LOG_NOTICE, f, "detach %s <- %s (%s): ok in %llu ms", label, domain,
                       p->reason, MS(now - p->since_usec));
        }
    }
    if (p)
        pending_remove(w, p);
    if (!dev)
        return;
    if (dev->gone) {
        /* Forget a removed device once nothing of it is left in any domain. */
        bool left = false;
        for (size_t i = 0; i < w->n_pending; i++)
            if (usbvm_watch_alias_is(w->pending[i].alias, dev->model->alias))
                left = true;
        if (!left) {
            for (size_t i = 0; i < w->n_devs; i++)
                if (w->devs[i] == dev) {
                    usbvm_watch_device_free(dev);
                    memmove(&w->devs[i], &w->devs[i + 1], (w->n_devs - i - 1) * sizeof(dev));
                    w->n_devs--;
                    break;
                }
        }
        return;
    }
    if (w->quit)
        return; /* stopping (--detach-on-exit): nothing goes back in */
    /* Removed from where it was: maybe it now goes somewhere else. */
    dev->event_usec = now;
    usbvm_watch_reconcile_one(w, dev);
}

void usbvm_watch_detach_everything(Watch *w)
{
    _cleanup_(usbvm_domdev_list_freep) UsbvmDomDevList *actual = NULL;
    if (!w->conn || fetch_actual(w, &actual) < 0)
        return;
    for (size_t i = 0; i < actual->n; i++) {
        const UsbvmDomDev *o = &actual->items[i];
        WatchDevice *dev = o->owned ? usbvm_watch_find_alias(w, o->alias) : NULL;
        if (dev && !dev->keep)
            request_detach(w, dev, o->domain, o->alias, "usbvm watch is stopping");
    }
}

void usbvm_watch_device_free(WatchDevice *d)
{
    if (!d)
        return;
    free(d->syspath);
    usbvm_device_free(d->model);
    free(d->last_note);
    free(d);
}
