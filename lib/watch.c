/* The watch loop: libvirt's default event loop holds the udev monitor, a signalfd and
 * libvirt's connection. Monitor first, then enumerate, both through one handler, so nothing
 * plugged during start-up is lost. No threads, no polling, no sleeps. */
#include "log.h"
#include "watch-internal.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/signalfd.h>

#define UDEV_RCVBUF (128 * 1024 * 1024)

static void watch_connect(Watch *w, UsbvmError *ret_err);
static void schedule_reconnect(Watch *w);

/* ---- devices -------------------------------------------------------------------------- */

/* The present (not unplugged) device at syspath. */
static WatchDevice *find_syspath(Watch *w, const char *syspath)
{
    for (size_t i = 0; i < w->n_devs; i++)
        if (!w->devs[i]->gone && streq(w->devs[i]->syspath, syspath))
            return w->devs[i];
    return NULL;
}

/* The USB device a block device belongs to: the known device whose syspath is the longest
 * prefix of the block device's. Works for "remove" too, when sysfs is already gone. */
static WatchDevice *find_owner(Watch *w, const char *block_syspath)
{
    WatchDevice *best = NULL;
    size_t best_len = 0;
    for (size_t i = 0; i < w->n_devs; i++) {
        WatchDevice *d = w->devs[i];
        size_t n = strlen(d->syspath);
        if (!d->gone && n > best_len && strncmp(block_syspath, d->syspath, n) == 0 &&
            block_syspath[n] == '/') {
            best = d;
            best_len = n;
        }
    }
    return best;
}

/* Re-reads a device's model. While a stick is passed through as usb the host kernel unbinds
 * usb-storage and its block devices vanish: that is not an unplug, and the rules still see
 * the block devices it had. */
static int refresh(Watch *w, WatchDevice *dev, struct udev_device *ud)
{
    _cleanup_(udev_device_unrefp) struct udev_device *own = NULL;
    if (!ud) {
        own = udev_device_new_from_syspath(w->udev, dev->syspath);
        if (!own)
            return -ENODEV;
        ud = own;
    }
    UsbvmError err = { 0 };
    UsbvmDevice *model = NULL;
    if (usbvm_device_new_from_udev(ud, &usbvm_host_paths_default, &model, &err) < 0) {
        _cleanup_free_ char *esc = usbvm_escape(err.message);
        usbvm_logf(USBVM_LOG_WARNING, NULL, "cannot read %s: %s", dev->syspath, esc);
        return -EIO;
    }
    UsbvmDevice *old = dev->model;
    usbvm_logf(USBVM_LOG_DEBUG, NULL, "read %s: %s, %zu block devices%s", dev->syspath,
               model->identity, model->n_blocks, udev_device_get_driver(ud) ? "" : ", no driver");
    if (old && !streq(old->alias, model->alias)) {
        /* Same syspath, same plug, another identity: the kernel is tearing the device down
         * (a real unplug removes idVendor, serial and friends before the last uevents) and
         * this read saw the remains. Keep what was known; the alias must outlive the device,
         * so that its detach can name it. */
        usbvm_logf(USBVM_LOG_DEBUG, NULL, "%s: ignoring a partial read while it goes away",
                   dev->syspath);
        usbvm_device_free(model);
        return 0;
    }
    if (old && model->n_blocks == 0 && old->n_blocks > 0 && dev->attached &&
        dev->attached_mode == USBVM_MODE_USB) {
        model->blocks = old->blocks;
        model->n_blocks = old->n_blocks;
        old->blocks = NULL;
        old->n_blocks = 0;
    }
    usbvm_device_free(old);
    dev->model = model;
    dev->bound = udev_device_get_driver(ud) != NULL;
    return 0;
}

static WatchDevice *device_add(Watch *w, struct udev_device *ud)
{
    const char *syspath = udev_device_get_syspath(ud);
    WatchDevice *dev = find_syspath(w, syspath);
    if (!dev) {
        /* A removed device whose detach is still pending keeps its entry; a replug at the
         * same port is a new entry. */
        dev = xcalloc(1, sizeof(*dev));
        dev->syspath = xstrdup(syspath);
        w->devs = xrealloc(w->devs, (w->n_devs + 1) * sizeof(*w->devs));
        w->devs[w->n_devs++] = dev;
    }
    /* Re-read from sysfs and the udev database: a monitor event carries only a few of the
     * properties (umockdev's, and a kernel event's before udev processed it). */
    if (refresh(w, dev, NULL) < 0 && refresh(w, dev, ud) < 0 && !dev->model) {
        w->n_devs--;
        usbvm_watch_device_free(dev);
        return NULL;
    }
    return dev;
}

/* The device left the host: detach whatever of it is in a domain, forget it once nothing is. */
static void device_gone(Watch *w, WatchDevice *dev, uint64_t now)
{
    dev->gone = true;
    dev->event_usec = now;
    if (dev->model) {
        _cleanup_free_ char *label = usbvm_watch_label(dev->model);
        usbvm_logf(USBVM_LOG_INFO, usbvm_watch_fields("unplug", dev), "unplug %s", label);
    }
    usbvm_watch_reconcile_one(w, dev);
    if (dev->attached || usbvm_watch_pending_for(w, dev->model ? dev->model->alias : NULL))
        return; /* kept until libvirt confirms the removal, which is logged with its name */
    for (size_t i = 0; i < w->n_devs; i++)
        if (w->devs[i] == dev) {
            memmove(&w->devs[i], &w->devs[i + 1], (w->n_devs - i - 1) * sizeof(dev));
            w->n_devs--;
            break;
        }
    usbvm_watch_device_free(dev);
}

static void handle_uevent(Watch *w, struct udev_device *ud, const char *action)
{
    const char *subsystem = udev_device_get_subsystem(ud);
    const char *devtype = udev_device_get_devtype(ud);
    const char *syspath = udev_device_get_syspath(ud);
    if (!subsystem || !syspath)
        return;
    usbvm_logf(USBVM_LOG_DEBUG, NULL, "uevent %s %s %s", action, strempty(subsystem), syspath);
    uint64_t now = usbvm_now_usec();

    if (streq(subsystem, "usb") && streq(devtype, "usb_device")) {
        if (streq(action, "remove")) {
            WatchDevice *dev = find_syspath(w, syspath);
            if (dev)
                device_gone(w, dev, now);
            return;
        }
        WatchDevice *prev = find_syspath(w, syspath);
        if (prev && streq(action, "add") && prev->model) {
            /* An "add" for a device we know: a replug whose "remove" we never saw (the
             * device number changes with every plug), or the same plug seen twice at start. */
            const char *devnum = udev_device_get_sysattr_value(ud, "devnum");
            unsigned n = 0;
            if (devnum && usbvm_parse_uint(devnum, 10, 255, &n) >= 0 && n != prev->model->devnum)
                device_gone(w, prev, now);
        }
        bool known = find_syspath(w, syspath) != NULL;
        if (known && streq(action, "unbind"))
            return; /* only happens on the way out; "remove" follows */
        WatchDevice *dev = device_add(w, ud);
        if (!dev)
            return;
        dev->event_usec = now;
        if (!known && !dev->model->is_hub) {
            _cleanup_free_ char *label = usbvm_watch_label(dev->model);
            usbvm_logf(USBVM_LOG_INFO, usbvm_watch_fields("plug", dev), "plug %s", label);
        }
        if (!w->started) {
            if (w->opts->present == USBVM_PRESENT_KEEP)
                dev->keep = true;
            return; /* the start-up reconcile_all looks at every device once */
        }
        dev->keep = false;
        usbvm_watch_reconcile_one(w, dev);
        return;
    }

    if (streq(subsystem, "block")) {
        WatchDevice *dev = find_owner(w, syspath);
        if (!dev)
            return;
        if (refresh(w, dev, NULL) < 0)
            return;
        /* The kernel removes the node from sysfs before it sends "remove"; a re-read that
         * raced with that must not bring it back. While the device is passed through as usb,
         * its block devices are remembered on purpose (see refresh). */
        if (streq(action, "remove") && !(dev->attached && dev->attached_mode == USBVM_MODE_USB))
            usbvm_device_drop_blocks(dev->model, syspath);
        dev->event_usec = now;
        if (w->started)
            usbvm_watch_reconcile_one(w, dev);
    }
}

static void udev_cb(int watch, int fd, int events, void *opaque)
{
    Watch *w = opaque;
    /* Drain everything that is queued: a burst of 32 sticks is one wakeup, not 32. */
    for (;;) {
        _cleanup_(udev_device_unrefp) struct udev_device *ud =
            udev_monitor_receive_device(w->monitor);
        if (!ud)
            break;
        const char *action = udev_device_get_action(ud);
        handle_uevent(w, ud, action ? action : "change");
    }
}

static int enumerate(Watch *w, UsbvmError *err)
{
    _cleanup_(udev_enumerate_unrefp) struct udev_enumerate *e = udev_enumerate_new(w->udev);
    if (!e)
        return usbvm_error_set(err, USBVM_E_FAILED, ENOMEM, "cannot enumerate USB devices");
    udev_enumerate_add_match_subsystem(e, "usb");
    udev_enumerate_add_match_property(e, "DEVTYPE", "usb_device");
    int r = udev_enumerate_scan_devices(e);
    if (r < 0)
        return usbvm_error_set(err, USBVM_E_FAILED, r, "cannot enumerate USB devices: %s",
                               strerror(-r));
    struct udev_list_entry *entry;
    udev_list_entry_foreach(entry, udev_enumerate_get_list_entry(e))
    {
        _cleanup_(udev_device_unrefp) struct udev_device *ud =
            udev_device_new_from_syspath(w->udev, udev_list_entry_get_name(entry));
        if (ud)
            handle_uevent(w, ud, "add");
    }
    return 0;
}

/* ---- rules ---------------------------------------------------------------------------- */

static int load_rules(Watch *w, UsbvmError *err)
{
    UsbvmRuleDiags diags = { 0 };
    UsbvmRuleset *rs = NULL;
    int r = usbvm_ruleset_load(w->opts->rules_path, &rs, &diags);
    for (size_t i = 0; i < diags.n; i++) {
        const UsbvmRuleDiag *d = &diags.items[i];
        json_object *f = json_object_new_object();
        json_object_object_add(f, "event", json_object_new_string("rules"));
        json_object_object_add(f, "level",
                               json_object_new_string(d->warning ? "warning" : "error"));
        json_object_object_add(f, "file", json_object_new_string(strempty(d->file)));
        json_object_object_add(f, "line", json_object_new_int((int)d->line));
        json_object_object_add(f, "column", json_object_new_int((int)d->column));
        json_object_object_add(f, "msg", json_object_new_string(strempty(d->message)));
        usbvm_logf(d->warning ? USBVM_LOG_WARNING : USBVM_LOG_ERR, f, "%s:%u:%u: %s: %s",
                   strempty(d->file), d->line, d->column, d->warning ? "warning" : "error",
                   strempty(d->message));
    }
    size_t n_errors = diags.n_errors;
    usbvm_rule_diags_clear(&diags);
    if (r < 0)
        return usbvm_error_set(err, USBVM_E_RULES, EINVAL,
                               "the rules in '%s' have %zu error%s; fix them and run 'usbvm "
                               "rules check %s'",
                               w->opts->rules_path, n_errors, n_errors == 1 ? "" : "s",
                               w->opts->rules_path);
    usbvm_ruleset_free(w->rules);
    w->rules = rs;
    json_object *f = json_object_new_object();
    json_object_object_add(f, "event", json_object_new_string("rules"));
    json_object_object_add(f, "rules", json_object_new_int((int)usbvm_ruleset_size(rs)));
    json_object_object_add(f, "path", json_object_new_string(w->opts->rules_path));
    usbvm_logf(USBVM_LOG_INFO, f, "rules: %zu loaded from %s", usbvm_ruleset_size(rs),
               w->opts->rules_path);
    return 0;
}

/* ---- signals -------------------------------------------------------------------------- */

static void signal_cb(int watch, int fd, int events, void *opaque)
{
    Watch *w = opaque;
    struct signalfd_siginfo si;
    while (read(fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
        if (si.ssi_signo == SIGHUP) {
            UsbvmError err = { 0 };
            /* A rules file that fails to parse changes nothing (invariant 6). */
            if (load_rules(w, &err) < 0) {
                usbvm_logf(USBVM_LOG_ERR, NULL, "reload refused, keeping the previous policy: %s",
                           err.message);
                continue;
            }
            usbvm_watch_reconcile_all(w, "rules reloaded");
        } else {
            usbvm_logf(USBVM_LOG_INFO, NULL, "stopping on %s", strsignal((int)si.ssi_signo));
            w->quit = true;
        }
    }
}

/* ---- libvirt -------------------------------------------------------------------------- */

static void lifecycle_cb(virConnectPtr conn, virDomainPtr dom, int event, int detail, void *opaque)
{
    Watch *w = opaque;
    const char *name = virDomainGetName(dom);
    if (event == VIR_DOMAIN_EVENT_STARTED) {
        json_object *f = json_object_new_object();
        json_object_object_add(f, "event", json_object_new_string("domain-started"));
        json_object_object_add(f, "domain", json_object_new_string(name));
        usbvm_logf(USBVM_LOG_INFO, f, "domain %s started", name);
        usbvm_watch_reconcile_all(w, "domain started");
    } else if (event == VIR_DOMAIN_EVENT_STOPPED) {
        json_object *f = json_object_new_object();
        json_object_object_add(f, "event", json_object_new_string("domain-stopped"));
        json_object_object_add(f, "domain", json_object_new_string(name));
        usbvm_logf(USBVM_LOG_INFO, f, "domain %s stopped", name);
        /* Whatever was pending there left with the domain. */
        usbvm_watch_pending_drop_domain(w, name);
        for (size_t i = 0; i < w->n_devs; i++) {
            free(w->devs[i]->last_note);
            w->devs[i]->last_note = NULL;
        }
        usbvm_watch_reconcile_all(w, "domain stopped");
    }
}

static void removed_cb(virConnectPtr conn, virDomainPtr dom, const char *alias, void *opaque)
{
    usbvm_watch_device_removed_event(opaque, virDomainGetName(dom), alias, false);
}

static void removal_failed_cb(virConnectPtr conn, virDomainPtr dom, const char *alias, void *opaque)
{
    usbvm_watch_device_removed_event(opaque, virDomainGetName(dom), alias, true);
}

static void close_cb(virConnectPtr conn, int reason, void *opaque)
{
    Watch *w = opaque;
    /* The connection cannot be closed from inside its own close callback; the reconnect
     * timer does it on the next turn of the loop. */
    w->close_pending = true;
    usbvm_logf(USBVM_LOG_WARNING, NULL, "lost the connection to libvirtd; reconnecting");
    schedule_reconnect(w);
}

static void drop_connection(Watch *w)
{
    if (!w->conn)
        return;
    if (w->cb_lifecycle >= 0)
        virConnectDomainEventDeregisterAny(w->conn, w->cb_lifecycle);
    if (w->cb_removed >= 0)
        virConnectDomainEventDeregisterAny(w->conn, w->cb_removed);
    if (w->cb_failed >= 0)
        virConnectDomainEventDeregisterAny(w->conn, w->cb_failed);
    virConnectUnregisterCloseCallback(w->conn, close_cb);
    w->cb_lifecycle = w->cb_removed = w->cb_failed = -1;
    virConnectClose(w->conn);
    w->conn = NULL;
    /* Pending detaches are re-derived from the live XML after reconnecting. */
    while (w->n_pending) {
        free(w->pending[w->n_pending - 1].domain);
        free(w->pending[w->n_pending - 1].alias);
        free(w->pending[w->n_pending - 1].reason);
        w->n_pending--;
    }
}

static void reconnect_cb(int timer, void *opaque)
{
    Watch *w = opaque;
    virEventUpdateTimeout(w->reconnect_timer, -1);
    if (w->close_pending) {
        w->close_pending = false;
        drop_connection(w);
    }
    watch_connect(w, NULL);
    if (!w->conn) {
        w->backoff_ms = w->backoff_ms ? w->backoff_ms * 2 : 100;
        if (w->backoff_ms > w->opts->max_backoff_ms)
            w->backoff_ms = w->opts->max_backoff_ms;
        virEventUpdateTimeout(w->reconnect_timer, (int)w->backoff_ms);
        return;
    }
    w->backoff_ms = 0;
    if (w->started)
        usbvm_watch_reconcile_all(w, "connected to libvirtd");
}

static void schedule_reconnect(Watch *w)
{
    virEventUpdateTimeout(w->reconnect_timer, 0);
}

/* ret_err: where a failure goes when nothing will retry (--once); NULL to log and retry. */
static void watch_connect(Watch *w, UsbvmError *ret_err)
{
    UsbvmError err = { 0 };
    virConnectPtr conn = NULL;
    if (usbvm_virt_open(w->opts->uri, &conn, &err) < 0) {
        if (ret_err) {
            *ret_err = err;
            return;
        }
        if (!w->connect_warned)
            usbvm_logf(USBVM_LOG_WARNING, NULL, "%s; retrying", err.message);
        else
            usbvm_logf(USBVM_LOG_DEBUG, NULL, "%s; retrying", err.message);
        w->connect_warned = true;
        return;
    }
    w->conn = conn;
    w->connect_warned = false;
    /* A dead libvirtd closes the socket, which the close callback reports at once; the next
     * keepalive ping (every 5 s) catches what that misses (under load, about half the EOFs of
     * a SIGKILLed libvirtd went unnoticed until then), and 3 unanswered ones a hung daemon. */
    virConnectSetKeepAlive(conn, 5, 3);
    virConnectRegisterCloseCallback(conn, close_cb, w, NULL);
    w->cb_lifecycle =
        virConnectDomainEventRegisterAny(conn, NULL, VIR_DOMAIN_EVENT_ID_LIFECYCLE,
                                         VIR_DOMAIN_EVENT_CALLBACK(lifecycle_cb), w, NULL);
    w->cb_removed =
        virConnectDomainEventRegisterAny(conn, NULL, VIR_DOMAIN_EVENT_ID_DEVICE_REMOVED,
                                         VIR_DOMAIN_EVENT_CALLBACK(removed_cb), w, NULL);
    w->cb_failed =
        virConnectDomainEventRegisterAny(conn, NULL, VIR_DOMAIN_EVENT_ID_DEVICE_REMOVAL_FAILED,
                                         VIR_DOMAIN_EVENT_CALLBACK(removal_failed_cb), w, NULL);
    json_object *f = json_object_new_object();
    json_object_object_add(f, "event", json_object_new_string("connected"));
    usbvm_logf(USBVM_LOG_INFO, f, "connected to libvirtd");
}

/* ---- run ------------------------------------------------------------------------------ */

static void watch_free(Watch *w)
{
    if (w->udev_handle >= 0)
        virEventRemoveHandle(w->udev_handle);
    if (w->signal_handle >= 0)
        virEventRemoveHandle(w->signal_handle);
    if (w->reconnect_timer >= 0)
        virEventRemoveTimeout(w->reconnect_timer);
    if (w->signal_fd >= 0)
        close(w->signal_fd);
    drop_connection(w);
    for (size_t i = 0; i < w->n_devs; i++)
        usbvm_watch_device_free(w->devs[i]);
    free(w->devs);
    free(w->pending);
    usbvm_ruleset_free(w->rules);
    if (w->monitor)
        udev_monitor_unref(w->monitor);
    if (w->udev)
        udev_unref(w->udev);
}

static void noop_timer(int timer, void *opaque)
{
}

/* Runs the loop until no detach is pending or the deadline passes. */
static void wait_pending(Watch *w, int timeout_ms)
{
    uint64_t deadline = usbvm_now_usec() + (uint64_t)timeout_ms * 1000;
    while (w->n_pending && w->conn && usbvm_now_usec() < deadline) {
        int remaining = (int)((deadline - usbvm_now_usec()) / 1000) + 1;
        /* The timer only bounds this turn of the loop. */
        int t = virEventAddTimeout(remaining, noop_timer, NULL, NULL);
        virEventRunDefaultImpl();
        virEventRemoveTimeout(t);
    }
}

int usbvm_watch_run(const UsbvmWatchOptions *opts, UsbvmWatchSummary *summary, UsbvmError *err)
{
    Watch w = { .opts = opts,
                .summary = summary,
                .udev_handle = -1,
                .signal_fd = -1,
                .signal_handle = -1,
                .cb_lifecycle = -1,
                .cb_removed = -1,
                .cb_failed = -1,
                .reconnect_timer = -1 };
    *summary = (UsbvmWatchSummary){ 0 };
    usbvm_virt_init(); /* registers libvirt's default event loop */
    int r;

    if ((r = load_rules(&w, err)) < 0)
        goto out;

    w.udev = udev_new();
    if (!w.udev) {
        r = usbvm_error_set(err, USBVM_E_FAILED, ENOMEM, "cannot talk to udev");
        goto out;
    }
    /* Monitor first, then enumerate: a device plugged in between is seen twice, never
     * missed, and the handler is idempotent. */
    w.monitor = udev_monitor_new_from_netlink(w.udev, "udev");
    if (!w.monitor) {
        r = usbvm_error_set(err, USBVM_E_FAILED, errno ? errno : EIO,
                            "cannot listen to udev events (is systemd-udevd running?)");
        goto out;
    }
    udev_monitor_filter_add_match_subsystem_devtype(w.monitor, "usb", "usb_device");
    udev_monitor_filter_add_match_subsystem_devtype(w.monitor, "block", NULL);
    udev_monitor_set_receive_buffer_size(w.monitor, UDEV_RCVBUF);
    if ((r = udev_monitor_enable_receiving(w.monitor)) < 0) {
        r = usbvm_error_set(err, USBVM_E_FAILED, r, "cannot listen to udev events: %s",
                            strerror(-r));
        goto out;
    }

    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGHUP);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    w.signal_fd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
    if (w.signal_fd < 0) {
        r = usbvm_error_set(err, USBVM_E_FAILED, errno, "cannot set up signal handling: %s",
                            strerror(errno));
        goto out;
    }

    w.udev_handle = virEventAddHandle(udev_monitor_get_fd(w.monitor), VIR_EVENT_HANDLE_READABLE,
                                      udev_cb, &w, NULL);
    w.signal_handle =
        virEventAddHandle(w.signal_fd, VIR_EVENT_HANDLE_READABLE, signal_cb, &w, NULL);
    w.reconnect_timer = virEventAddTimeout(-1, reconnect_cb, &w, NULL);
    if (w.udev_handle < 0 || w.signal_handle < 0 || w.reconnect_timer < 0) {
        r = usbvm_error_set(err, USBVM_E_FAILED, EIO, "cannot register with the event loop");
        goto out;
    }

    UsbvmError connect_err = { 0 };
    watch_connect(&w, opts->once ? &connect_err : NULL);
    if (!w.conn) {
        if (opts->once) {
            /* The connection's own words (which URI, why, what to do); nothing retries. */
            if (err)
                *err = connect_err;
            r = -ECONNREFUSED;
            goto out;
        }
        w.backoff_ms = 100;
        virEventUpdateTimeout(w.reconnect_timer, (int)w.backoff_ms);
    }

    if ((r = enumerate(&w, err)) < 0)
        goto out;
    w.started = true;
    usbvm_watch_reconcile_all(&w, "start");

    if (opts->once) {
        wait_pending(&w, opts->detach_timeout_ms);
        summary->pending = (unsigned)w.n_pending;
        r = 0;
        goto out;
    }

    json_object *f = json_object_new_object();
    json_object_object_add(f, "event", json_object_new_string("ready"));
    json_object_object_add(f, "devices", json_object_new_int((int)w.n_devs));
    usbvm_logf(USBVM_LOG_INFO, f, "ready: watching %zu USB devices", w.n_devs);

    while (!w.quit) {
        if (virEventRunDefaultImpl() < 0) {
            r = usbvm_error_set(err, USBVM_E_FAILED, EIO, "the event loop failed");
            goto out;
        }
    }
    if (opts->detach_on_exit) {
        usbvm_watch_detach_everything(&w);
        wait_pending(&w, opts->detach_timeout_ms);
    }
    summary->pending = (unsigned)w.n_pending;
    r = 0;
out:
    watch_free(&w);
    return r;
}
