/* usbvm watch: the policy daemon. One thread, libvirt's default event loop holding the udev
 * monitor, a signalfd and libvirt's own sockets. Every event only says what to re-check; one
 * reconcile function turns (present devices x rules x running domains) minus the ua-usbvm-
 * devices in live XML into attach and detach calls. */
#pragma once

#include "error.h"
#include "util.h"

typedef enum UsbvmPresentPolicy {
    USBVM_PRESENT_APPLY, /* devices present at start get the policy (default) */
    USBVM_PRESENT_KEEP,  /* devices present at start are left as they are until replugged */
} UsbvmPresentPolicy;

typedef struct UsbvmWatchOptions {
    const char *uri;        /* libvirt URI, NULL for the default */
    const char *rules_path; /* file or directory */
    bool once;              /* reconcile once, then exit */
    bool dry_run;           /* log what would be done, change nothing */
    bool detach_on_exit;    /* detach what the policy attached when stopping */
    UsbvmPresentPolicy present;
    int detach_timeout_ms;   /* --once and --detach-on-exit: how long to wait for removal */
    unsigned max_backoff_ms; /* reconnect backoff ceiling */
} UsbvmWatchOptions;

typedef struct UsbvmWatchSummary {
    unsigned attached, detached, pending, failed, unchanged, waiting;
} UsbvmWatchSummary;

/* Runs until SIGTERM/SIGINT (or, with once, after one reconcile). Records go to the log sink
 * (lib/log.h) with JSON fields. Returns 0, or a negative errno with err filled when start-up
 * fails (rules do not parse, udev unavailable). */
int usbvm_watch_run(const UsbvmWatchOptions *opts, UsbvmWatchSummary *summary, UsbvmError *err);
