/* The daemon's devices: every USB device on the host, kept current from uevents. A uevent
 * only marks a device for a read, which comes before the next plan; what to do about it is the
 * planner's. */
#include "watch-state.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define UDEV_RCVBUF (128 * 1024 * 1024)

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

WatchDevice *usbvm_watch_find_alias(Watch *w, const char *alias)
{
    /* Prefer a present device over a removed one with the same identity. */
    WatchDevice *gone = NULL;
    for (size_t i = 0; i < w->n_devs; i++) {
        WatchDevice *d = w->devs[i];
        if (!d->model || !usbvm_alias_belongs(alias, d->model->alias))
            continue;
        if (!d->gone)
            return d;
        gone = d;
    }
    return gone;
}

/* Is the device of usbvm's in some domain, by what the snapshot says? */
static bool in_a_domain(const Watch *w, const char *alias)
{
    for (size_t k = 0; k < w->snapshot.n; k++)
        for (size_t i = 0; i < w->snapshot.domains[k].devs.n; i++) {
            const UsbvmDomDev *o = &w->snapshot.domains[k].devs.items[i];
            if (o->owned && usbvm_alias_belongs(o->alias, alias))
                return true;
        }
    return false;
}

static bool passed_through(const Watch *w, const WatchDevice *dev)
{
    for (size_t k = 0; dev->model && k < w->snapshot.n; k++)
        for (size_t i = 0; i < w->snapshot.domains[k].devs.n; i++) {
            const UsbvmDomDev *o = &w->snapshot.domains[k].devs.items[i];
            if (o->owned && o->mode == USBVM_MODE_USB &&
                usbvm_alias_belongs(o->alias, dev->model->alias))
                return true;
        }
    return false;
}

/* Is a call of libvirt's about this device under way? A read of the device then waits for the
 * answer: while QEMU and libvirtd work on the call, the read would take the CPU they need, and
 * the planner cannot act on the device before the answer anyway. */
static bool call_in_flight(const Watch *w, const WatchDevice *dev)
{
    for (size_t i = 0; dev->model && i < w->n_ops; i++)
        if (!w->ops[i].answered && !w->ops[i].dry &&
            usbvm_alias_belongs(w->ops[i].alias, dev->model->alias))
            return true;
    return false;
}

/* Re-reads a device's model. While a stick is passed through as usb the host kernel unbinds
 * usb-storage and its block devices vanish: that is not an unplug, and the rules still see
 * the block devices it had. */
static int refresh(Watch *w, WatchDevice *dev)
{
    UsbvmError err = { 0 };
    UsbvmDevice *model = NULL;
    if (usbvm_device_new_from_syspath(dev->syspath, w->host_use, &model, &err) < 0) {
        /* Gone from sysfs before it was read (pulled at once): its "remove" follows. */
        _cleanup_free_ char *esc = usbvm_escape(err.message);
        usbvm_logf(err.errnum == ENOENT ? USBVM_LOG_DEBUG : USBVM_LOG_WARNING, NULL, "%s", esc);
        return -EIO;
    }
    UsbvmDevice *old = dev->model;
    usbvm_logf(USBVM_LOG_DEBUG, NULL, "read %s: %s, %zu block devices%s", dev->syspath,
               model->alias, model->n_blocks, model->bound ? "" : ", no driver");
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
    if (old && model->n_blocks == 0 && old->n_blocks > 0 && passed_through(w, dev)) {
        model->blocks = old->blocks;
        model->n_blocks = old->n_blocks;
        old->blocks = NULL;
        old->n_blocks = 0;
    }
    usbvm_device_free(old);
    dev->model = model;
    return 0;
}

/* A device at syspath, known or new; a new one has no model until its first read. A removed
 * device whose detach is still pending keeps its entry; a replug at the same port is a new
 * entry. */
static WatchDevice *device_entry(Watch *w, const char *syspath)
{
    WatchDevice *dev = find_syspath(w, syspath);
    if (!dev) {
        dev = xcalloc(1, sizeof(*dev));
        dev->syspath = xstrdup(syspath);
        w->devs = xrealloc(w->devs, (w->n_devs + 1) * sizeof(*w->devs));
        w->devs[w->n_devs++] = dev;
    }
    return dev;
}

/* Reads one marked device, from sysfs and the udev database: a monitor event carries only a
 * few of the properties (umockdev's, and a kernel event's before udev processed it). False
 * when it is to be forgotten: it vanished before its first read, and its "remove" follows. */
static bool read_one(Watch *w, WatchDevice *dev)
{
    bool first = !dev->model;
    int r = refresh(w, dev);
    dev->stale = false;
    if (r == 0) {
        /* A read that raced with a block device's removal may still have found it in
         * sysfs: it stays removed. */
        for (size_t i = 0; dev->model && dev->dropped && dev->dropped[i]; i++)
            usbvm_device_drop_blocks(dev->model, dev->dropped[i]);
    }
    usbvm_strv_free(dev->dropped);
    dev->dropped = NULL;
    if (r < 0)
        return !first;
    if (first && !dev->model->is_hub)
        dev->announce = true;
    return true;
}

void usbvm_watch_announce(Watch *w)
{
    for (size_t i = 0; i < w->n_devs; i++)
        if (w->devs[i]->announce) {
            w->devs[i]->announce = false;
            usbvm_watch_record(USBVM_LOG_INFO,
                               &(WatchRecord){ .event = "plug", .device = w->devs[i]->model });
        }
}

void usbvm_watch_read_marked(Watch *w)
{
    size_t k = 0;
    for (size_t i = 0; i < w->n_devs; i++) {
        WatchDevice *d = w->devs[i];
        if (d->stale && !d->gone && !call_in_flight(w, d) && !read_one(w, d)) {
            usbvm_watch_device_free(d);
            continue;
        }
        w->devs[k++] = d;
    }
    w->n_devs = k;
}

/* Forgets unplugged devices of which nothing is left in a domain and nothing is on its way. */
void usbvm_watch_forget_gone(Watch *w)
{
    size_t k = 0;
    for (size_t i = 0; i < w->n_devs; i++) {
        WatchDevice *d = w->devs[i];
        bool busy = false;
        for (size_t o = 0; d->gone && d->model && o < w->n_ops; o++)
            busy |= usbvm_alias_belongs(w->ops[o].alias, d->model->alias);
        if (d->gone && !busy && (!d->model || !in_a_domain(w, d->model->alias) || !w->conn)) {
            usbvm_watch_device_free(d);
            continue;
        }
        w->devs[k++] = d;
    }
    w->n_devs = k;
}

static void device_gone(Watch *w, WatchDevice *dev, uint64_t now)
{
    dev->gone = true;
    dev->event_usec = now;
    if (dev->model)
        usbvm_watch_record(USBVM_LOG_INFO,
                           &(WatchRecord){ .event = "unplug", .device = dev->model });
    w->dirty = true;
}

/* A plan is due after an event of the device, unless a call about it is in flight: then nothing
 * can be planned for it before the answer, which plans again (usbvm_watch_job_done), and a plan
 * now would only take the CPU libvirtd and QEMU need for the call (a stick's disk, partitions
 * and bind are announced right then). */
static void mark_dirty(Watch *w, const WatchDevice *dev)
{
    if (!call_in_flight(w, dev))
        w->dirty = true;
}

static void usb_device_event(Watch *w, struct udev_device *ud, const char *action, uint64_t now)
{
    const char *syspath = udev_device_get_syspath(ud);
    WatchDevice *prev = find_syspath(w, syspath);
    if (streq(action, "remove")) {
        if (prev)
            device_gone(w, prev, now);
        return;
    }
    if (prev && streq(action, "add") && prev->model) {
        /* An "add" for a device we know: a replug whose "remove" we never saw (the device
         * number changes with every plug), or the same plug seen twice at start. */
        const char *devnum = udev_device_get_sysattr_value(ud, "devnum");
        unsigned n = 0;
        if (devnum && usbvm_parse_uint(devnum, 10, 255, &n) >= 0 && n != prev->model->devnum) {
            device_gone(w, prev, now);
            prev = NULL;
        }
    }
    if (prev && streq(action, "unbind"))
        return; /* only happens on the way out; "remove" follows */
    WatchDevice *dev = prev ? prev : device_entry(w, syspath);
    dev->stale = true;
    dev->seen = true;
    dev->event_usec = now;
    dev->held_back = false;
    if (!w->started && w->opts->present == USBVM_PRESENT_KEEP)
        dev->keep = true;
    else if (w->started)
        dev->keep = false;
    mark_dirty(w, dev);
}

static void strv_remove(char **v, const char *s)
{
    size_t k = 0;
    for (size_t i = 0; v && v[i]; i++) {
        if (streq(v[i], s))
            free(v[i]);
        else
            v[k++] = v[i];
    }
    if (v)
        v[k] = NULL;
}

static void block_event(Watch *w, struct udev_device *ud, const char *action, uint64_t now)
{
    const char *syspath = udev_device_get_syspath(ud);
    WatchDevice *dev = find_owner(w, syspath);
    if (!dev)
        return;
    dev->stale = true;
    /* While the device is passed through as usb, its block devices are remembered on purpose
     * (see refresh). A removed one goes at once, and again after the next read. */
    bool removed = streq(action, "remove") && !passed_through(w, dev);
    if (removed && dev->model)
        usbvm_device_drop_blocks(dev->model, syspath);
    strv_remove(dev->dropped, syspath); /* back again: the read decides */
    if (removed)
        dev->dropped = usbvm_strv_push(dev->dropped, syspath);
    dev->event_usec = now;
    dev->held_back = false;
    mark_dirty(w, dev);
}

void usbvm_watch_handle_uevent(Watch *w, struct udev_device *ud, const char *action)
{
    const char *subsystem = udev_device_get_subsystem(ud);
    const char *devtype = udev_device_get_devtype(ud);
    const char *syspath = udev_device_get_syspath(ud);
    if (!subsystem || !syspath)
        return;
    usbvm_logf(USBVM_LOG_DEBUG, NULL, "uevent %s %s %s", action, strempty(subsystem), syspath);
    uint64_t now = usbvm_now_usec();
    if (streq(subsystem, "usb") && streq(devtype, "usb_device"))
        usb_device_event(w, ud, action, now);
    else if (streq(subsystem, "block"))
        block_event(w, ud, action, now);
}

int usbvm_watch_enumerate(Watch *w, UsbvmError *err)
{
    _cleanup_(udev_enumerate_unrefp) struct udev_enumerate *e = udev_enumerate_new(w->udev);
    if (!e)
        return usbvm_error_set(err, USBVM_E_FAILED, ENOMEM, "cannot enumerate USB devices");
    udev_enumerate_add_match_subsystem(e, "usb");
    udev_enumerate_add_match_property(e, "DEVTYPE", "usb_device");
    int r = udev_enumerate_scan_devices(e);
    if (r < 0)
        return usbvm_error_set(err, USBVM_E_FAILED, -r, "cannot enumerate USB devices: %s",
                               strerror(-r));
    struct udev_list_entry *entry;
    udev_list_entry_foreach(entry, udev_enumerate_get_list_entry(e))
    {
        _cleanup_(udev_device_unrefp) struct udev_device *ud =
            udev_device_new_from_syspath(w->udev, udev_list_entry_get_name(entry));
        if (ud)
            usbvm_watch_handle_uevent(w, ud, "add");
    }
    return 0;
}

void usbvm_watch_resync(Watch *w)
{
    for (size_t i = 0; i < w->n_devs; i++)
        w->devs[i]->seen = false;
    UsbvmError err = { 0 };
    if (usbvm_watch_enumerate(w, &err) < 0) {
        _cleanup_free_ char *esc = usbvm_escape(err.message);
        usbvm_logf(USBVM_LOG_ERR, NULL, "cannot read the devices again: %s", esc);
        return; /* nothing is taken for unplugged on a failed read */
    }
    uint64_t now = usbvm_now_usec();
    for (size_t i = 0; i < w->n_devs; i++)
        if (!w->devs[i]->gone && !w->devs[i]->seen)
            device_gone(w, w->devs[i], now);
    w->dirty = true;
}

void usbvm_watch_device_free(WatchDevice *d)
{
    if (!d)
        return;
    free(d->syspath);
    usbvm_device_free(d->model);
    usbvm_strv_free(d->dropped);
    free(d->last_note);
    free(d);
}

/* Monitor first, then enumerate: a device plugged in between is seen twice, never missed, and
 * the handler is idempotent. */
int usbvm_watch_monitor_open(Watch *w, UsbvmError *err)
{
    w->monitor = udev_monitor_new_from_netlink(w->udev, "udev");
    if (!w->monitor)
        return usbvm_error_set(err, USBVM_E_FAILED, errno ? errno : EIO,
                               "cannot listen to udev events (is systemd-udevd running?)");
    udev_monitor_filter_add_match_subsystem_devtype(w->monitor, "usb", "usb_device");
    udev_monitor_filter_add_match_subsystem_devtype(w->monitor, "block", NULL);
    /* SO_RCVBUFFORCE needs CAP_NET_ADMIN; without it the kernel caps the size at
     * net.core.rmem_max, so what was obtained is read back and logged. */
    unsigned long want = UDEV_RCVBUF;
    const char *env = getenv("USBVM_UDEV_RCVBUF"); /* tests: a tiny buffer that overflows */
    if (env)
        want = strtoul(env, NULL, 10);
    udev_monitor_set_receive_buffer_size(w->monitor, (int)want);
    int r = udev_monitor_enable_receiving(w->monitor);
    if (r < 0)
        return usbvm_error_set(err, USBVM_E_FAILED, -r, "cannot listen to udev events: %s",
                               strerror(-r));
    int got = 0;
    socklen_t len = sizeof(got);
    (void)getsockopt(udev_monitor_get_fd(w->monitor), SOL_SOCKET, SO_RCVBUF, &got, &len);
    json_object *f = json_object_new_object();
    json_object_object_add(f, "event", json_object_new_string("udev-buffer"));
    json_object_object_add(f, "asked", json_object_new_int64((int64_t)want));
    json_object_object_add(f, "got", json_object_new_int(got));
    usbvm_logf((unsigned long)got < want ? USBVM_LOG_WARNING : USBVM_LOG_DEBUG, f,
               "udev receive buffer: %d bytes (asked for %lu)%s", got, want,
               (unsigned long)got < want ? "; a burst of uevents may overflow it, which "
                                           "makes watch read every device again"
                                         : "");
    return 0;
}

void usbvm_watch_receive_uevents(Watch *w)
{
    /* Everything that is queued: a burst of 32 sticks is one wakeup and one plan. */
    for (;;) {
        errno = 0;
        struct udev_device *ud = udev_monitor_receive_device(w->monitor);
        if (!ud) {
            /* The socket's buffer overflowed and the kernel dropped uevents: which ones is
             * unknown, so every device is read again. */
            if (errno == ENOBUFS) {
                usbvm_logf(USBVM_LOG_WARNING, json_tokener_parse("{\"event\":\"udev-overflow\"}"),
                           "udev events were lost (the receive buffer overflowed); reading "
                           "every device again");
                usbvm_watch_resync(w);
            }
            return;
        }
        const char *action = udev_device_get_action(ud);
        usbvm_watch_handle_uevent(w, ud, action ? action : "change");
        udev_device_unref(ud);
    }
}
