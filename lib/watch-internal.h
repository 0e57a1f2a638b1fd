/* State shared by the watch loop (watch.c) and reconcile (reconcile.c). */
#pragma once

#include "device.h"
#include "rules.h"
#include "virt.h"
#include "watch.h"

#include <json-c/json.h>

/* One USB device the daemon knows about: present, or removed but still attached somewhere
 * until its detach is confirmed. */
typedef struct WatchDevice {
    char *syspath;
    UsbvmDevice *model;      /* latest model; after removal the last one seen */
    bool gone;               /* removed from the host */
    bool keep;               /* present at start with --present keep: left alone until replugged */
    bool bound;              /* the USB device has its driver: ready for passthrough */
    UsbvmMode attached_mode; /* mode of our attachment at the last reconcile */
    bool attached;
    uint64_t event_usec; /* when the event that last changed it arrived */
    char *last_note;     /* last "waiting"/"refused" line, so it is not repeated */
} WatchDevice;

typedef struct WatchPending {
    char *domain;
    char *alias;
    uint64_t since_usec;
    char *reason;
} WatchPending;

typedef struct Watch {
    const UsbvmWatchOptions *opts;
    UsbvmWatchSummary *summary;

    struct udev *udev;
    struct udev_monitor *monitor;
    int udev_handle;
    int signal_fd;
    int signal_handle;

    virConnectPtr conn;
    int cb_lifecycle, cb_removed, cb_failed;
    int reconnect_timer;
    unsigned backoff_ms;
    bool close_pending;
    bool connect_warned; /* one warning per outage, not one per retry */

    UsbvmRuleset *rules;

    WatchDevice **devs;
    size_t n_devs;
    WatchPending *pending;
    size_t n_pending;

    bool quit;
    bool started; /* initial enumeration done */
} Watch;

/* reconcile.c */
void usbvm_watch_reconcile_device(Watch *w, WatchDevice *dev, const UsbvmDomDevList *actual);
void usbvm_watch_reconcile_one(Watch *w, WatchDevice *dev);
void usbvm_watch_reconcile_all(Watch *w, const char *why);
void usbvm_watch_device_removed_event(Watch *w, const char *domain, const char *alias, bool failed);
WatchDevice *usbvm_watch_find_alias(Watch *w, const char *alias);
bool usbvm_watch_pending_for(Watch *w, const char *device_alias);
bool usbvm_watch_alias_is(const char *domdev_alias, const char *device_alias);
void usbvm_watch_pending_drop_domain(Watch *w, const char *domain);
void usbvm_watch_detach_everything(Watch *w);
void usbvm_watch_device_free(WatchDevice *d);
char *usbvm_watch_label(const UsbvmDevice *d);
json_object *usbvm_watch_fields(const char *event, const WatchDevice *dev);
