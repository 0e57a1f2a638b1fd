/* The daemon's state and the pieces of usbvm watch (lib/watch*.c, lib/executor.c).
 *
 * Threads: the event-loop thread (watch-loop.c) runs libvirt's default event loop, which holds
 * libvirt's connection (keepalive, close callback, domain events); it only queues messages.
 * The main thread (watch.c) owns all state below and reads the udev monitor and the signalfd
 * itself, waiting on them beside the inbox: it takes every queued message and uevent, updates
 * the devices and the snapshot, plans once per burst (planner.c) and hands the actions to the
 * executor (executor.c), whose threads make the libvirt calls, one queue per domain, so that a
 * call stuck on one domain holds up no other. Their answers come back as messages. Nothing
 * here is touched by two threads at once, except the inbox and the executor's queues, which
 * have their own locks. */
#pragma once

#include "device.h"
#include "log.h"
#include "planner.h"
#include "rules.h"
#include "snapshot.h"
#include "virt.h"
#include "watch.h"

#include <json-c/json.h>
#include <libudev.h>
#include <pthread.h>

/* One USB device the daemon knows: present, or removed but still attached somewhere until its
 * detach is confirmed. */
typedef struct WatchDevice {
    char *syspath;
    UsbvmDevice *model;  /* latest model; after removal the last one seen */
    bool gone;           /* removed from the host */
    bool keep;           /* present at start with --present keep: left alone until replugged */
    bool seen;           /* found by the last enumeration (resync) */
    bool held_back;      /* refused or failed: retried at its next event, not in a loop */
    unsigned backoff_ms; /* the next retry's delay after a failed attach */
    uint64_t retry_at;   /* a retry of the attach is due then (0: none) */
    uint64_t event_usec; /* when the event that last changed it arrived */
    bool stale;          /* an event came since the last read: read it before the next plan */
    bool announce;       /* read for the first time: its "plug" record is due */
    char **dropped;      /* block devices removed since the last read, dropped again after it */
    char *last_note;     /* last "wait"/"refused" text, so it is not repeated */
} WatchDevice;

/* An operation in flight, or a detach libvirt has not confirmed yet. */
typedef struct WatchOp {
    UsbvmOpKind kind;
    char *domain;
    char *alias;
    char *why;
    uint64_t since_usec;
    bool answered; /* the executor answered (a detach now waits for libvirt's event) */
    bool removed;  /* libvirt's DEVICE_REMOVED came before the executor's answer */
    bool refused;  /* libvirt's DEVICE_REMOVAL_FAILED came before the executor's answer */
    bool slow_warned;
    bool dry;        /* --dry-run: only remembered, so the same detach is not reported again */
    uint64_t ask_at; /* a detach another request was awaited for: planned again then, if the
                      * removal has not come (0: none) */
} WatchOp;

/* ---- messages to the main thread ---------------------------------------------------------- */

typedef enum WatchMsgKind {
    WATCH_MSG_LIFECYCLE,
    WATCH_MSG_DEVICE_ADDED,
    WATCH_MSG_DEVICE_REMOVED,
    WATCH_MSG_REMOVAL_FAILED,
    WATCH_MSG_CLOSED,
    WATCH_MSG_JOB_DONE,
} WatchMsgKind;

struct WatchJob;

typedef struct WatchMsg {
    WatchMsgKind kind;
    struct WatchMsg *next;
    unsigned conn_gen; /* libvirt messages: which connection said it */
    int event;         /* lifecycle */
    char *domain;
    char *alias;
    struct WatchJob *job;
} WatchMsg;

typedef struct WatchInbox {
    pthread_mutex_t lock;
    int wake_fd; /* an eventfd, readable while messages wait */
    WatchMsg *head, **tail;
} WatchInbox;

void usbvm_watch_inbox_init(WatchInbox *in);
void usbvm_watch_inbox_destroy(WatchInbox *in); /* empty it first */
void usbvm_watch_inbox_post(WatchInbox *in, WatchMsg *m);
/* Waits until a message is queued, one of the n (at most 3) descriptors fds is readable
 * (ready[i] then true) or deadline_usec passes (0: no deadline). */
void usbvm_watch_inbox_wait(WatchInbox *in, uint64_t deadline_usec, const int *fds, bool *ready,
                            size_t n);
/* Every queued message, oldest first, without waiting; NULL when none. */
WatchMsg *usbvm_watch_inbox_take(WatchInbox *in);
void usbvm_watch_msg_free(WatchMsg *m); /* watch-jobs.c: it frees the job it carries */

/* ---- jobs for the executor ----------------------------------------------------------------- */

typedef enum WatchJobKind {
    WATCH_JOB_CONNECT,    /* open, keepalive, callbacks, then the full snapshot */
    WATCH_JOB_DISCONNECT, /* deregister and close an old connection */
    WATCH_JOB_SNAPSHOT,   /* every running domain's devices */
    WATCH_JOB_DOMAIN,     /* one domain's devices */
    WATCH_JOB_WARM,       /* a rule's target: its queue's connection and handle, made ready */
    WATCH_JOB_ATTACH,
    WATCH_JOB_DETACH,
} WatchJobKind;

struct Watch;

typedef struct WatchJob {
    WatchJobKind kind;
    struct WatchJob *next;
    struct Watch *watch; /* for CONNECT: the callbacks' opaque; never touched by the executor */
    char *queue;         /* the domain whose queue runs it; NULL: the general queue */
    const char *uri;
    virConnectPtr conn; /* a reference of its own */
    unsigned conn_gen;
    char *domain, *alias, *why;
    UsbvmDevice *model; /* attach: a copy of its own */
    UsbvmAttachSpec spec;
    char *cache, *io;
    UsbvmDomDevList *known; /* attach: every running domain's devices, a copy */
    UsbvmDomDev held;       /* detach: the device as the snapshot has it */
    uint64_t known_gen;
    uint64_t started_usec, event_usec;
    uint64_t planned_usec; /* attach: when the plan handed it on */
    /* answers */
    int r;
    UsbvmError err;
    UsbvmResult res;
    UsbvmAttachCtx ctx;
    UsbvmSnapshot snapshot;
    UsbvmDomDevList devs;
    bool running;
    uint64_t generation;
    uint64_t done_usec;
    int cb_lifecycle, cb_added, cb_removed, cb_failed;
    bool guest_mounted; /* detach: the guest had it mounted (res.notes says where) */
} WatchJob;

WatchJob *usbvm_watch_job_new(WatchJobKind kind, const char *queue);
void usbvm_watch_job_free(WatchJob *j);

typedef struct UsbvmExecutor UsbvmExecutor;
UsbvmExecutor *usbvm_executor_new(WatchInbox *inbox);
void usbvm_executor_submit(UsbvmExecutor *ex, WatchJob *job);
/* libvirt confirmed the removal of alias from domain: its queue's view drops it before the
 * queue's next job (a queue that has none yet has no view either). */
void usbvm_executor_device_removed(UsbvmExecutor *ex, const char *domain, const char *alias);
/* Waits up to timeout_ms for every queue to drain. Returns false when a call is still stuck:
 * then the executor must not be freed (its threads still use it) and is left to the exit. */
bool usbvm_executor_drain(UsbvmExecutor *ex, int timeout_ms);
void usbvm_executor_free(UsbvmExecutor *ex);

/* ---- the daemon ------------------------------------------------------------------------------ */

typedef struct Watch {
    const UsbvmWatchOptions *opts;
    UsbvmWatchSummary *summary;
    WatchInbox inbox;
    UsbvmExecutor *exec;

    struct udev *udev;            /* the main thread's own context (libudev is not thread-safe) */
    struct udev_monitor *monitor; /* the main thread's, on its own context */
    int signal_fd;                /* SIGHUP, SIGINT, SIGTERM, read by the main thread */
    UsbvmHostUseCache *host_use;  /* the main thread's: every read of a device uses it */

    /* event-loop thread (watch-loop.c) */
    pthread_t loop_thread;
    bool loop_running;
    volatile int loop_quit;

    /* libvirt */
    virConnectPtr conn;
    int cb[4]; /* the connection's domain event callbacks (for the disconnect) */
    unsigned conn_gen;
    bool connecting;
    bool connect_warned;
    UsbvmError connect_err; /* --once: why the one connection attempt failed */
    unsigned backoff_ms;
    uint64_t reconnect_at; /* 0: none scheduled */
    uint64_t known_gen;    /* the host lock generation the snapshot is current at */
    UsbvmSnapshot snapshot;
    bool refetch_all;   /* a full re-read is wanted (reload) */
    WatchMsg *deferred; /* libvirt events that came while the connection's first read ran */
    bool replay;        /* connected: apply them now */

    UsbvmRuleset *rules;
    WatchDevice **devs;
    size_t n_devs;
    WatchOp *ops;
    size_t n_ops;

    uint64_t watchdog_usec, watchdog_at; /* systemd's WatchdogSec=, fed from the main loop */

    bool dirty;   /* something changed since the last plan */
    bool started; /* initial enumeration done */
    bool quit;
    bool stopping; /* --detach-on-exit: the last plans detach */
    unsigned waiting;
} Watch;

#define WATCH_MS(usec) ((int64_t)((usec) / 1000))

/* watch-ops.c: bookkeeping of the main thread */
void usbvm_watch_recheck_all(Watch *w);
WatchOp *usbvm_watch_op_find(Watch *w, UsbvmOpKind kind, const char *domain, const char *alias);
void usbvm_watch_op_add(Watch *w, UsbvmOpKind kind, const char *domain, const char *alias,
                        const char *why);
void usbvm_watch_op_remove(Watch *w, WatchOp *op);
void usbvm_watch_ops_drop_domain(Watch *w, const char *domain);
size_t usbvm_watch_pending_detaches(const Watch *w);
/* Hands a job to the executor, with a reference to the current connection. */
void usbvm_watch_submit(Watch *w, WatchJob *j);
/* Logs a "wait"/"refused" note once per distinct text for the device. */
void usbvm_watch_note(Watch *w, WatchDevice *dev, UsbvmLogLevel level, const char *event,
                      const char *domain, const char *text);
/* "connected", "domain-started", "domain-stopped": "<domain NAME><what>". */
void usbvm_watch_log_event(const char *event, const char *domain, const char *what);

/* watch-conn.c: the connection and libvirt's events */
void usbvm_watch_connect_start(Watch *w);
void usbvm_watch_schedule_reconnect(Watch *w);
void usbvm_watch_disconnect(Watch *w);
void usbvm_watch_connection_lost(Watch *w);
void usbvm_watch_connected(Watch *w, WatchJob *j);
void usbvm_watch_drop_deferred(Watch *w);
void usbvm_watch_refetch_domain(Watch *w, const char *domain);
/* Readies the queue of every running domain a rule names, so that the first plug for it does
 * not wait for a connection of its own (8 ms here). */
void usbvm_watch_warm_targets(Watch *w);
void usbvm_watch_lifecycle(Watch *w, WatchMsg *m);
void usbvm_watch_device_removed(Watch *w, WatchMsg *m, bool failed);
void usbvm_watch_device_added(Watch *w, WatchMsg *m);

/* watch-answers.c: the executor's answers */
void usbvm_watch_job_done(Watch *w, WatchJob *j);

/* watch.c */
/* Applies a message; true when it was kept for later (the caller must not free it). */
bool usbvm_watch_handle(Watch *w, WatchMsg *m);

/* watch-loop.c */
int usbvm_watch_loop_start(Watch *w, UsbvmError *err);
void usbvm_watch_loop_stop(Watch *w);
/* Registers the domain event and close callbacks on a new connection (executor thread). */
void usbvm_watch_conn_register(Watch *w, WatchJob *job);
void usbvm_watch_conn_deregister(WatchJob *job);

/* watch-devices.c */
int usbvm_watch_monitor_open(Watch *w, UsbvmError *err);
/* Takes every uevent the monitor holds (the main thread, when its descriptor is readable). */
void usbvm_watch_receive_uevents(Watch *w);
void usbvm_watch_handle_uevent(Watch *w, struct udev_device *ud, const char *action);
int usbvm_watch_enumerate(Watch *w, UsbvmError *err);
/* After lost uevents: every device read again; known ones not found any more are unplugged. */
void usbvm_watch_resync(Watch *w);
WatchDevice *usbvm_watch_find_alias(Watch *w, const char *alias);
/* Reads every device an event marked, once however many events it had: a stick's USB device,
 * its disk and its driver's bind come as a burst. One that a libvirt call is about waits for
 * the answer. */
void usbvm_watch_read_marked(Watch *w);
/* Writes the "plug" record of each device read for the first time. The plan's calls are handed
 * on before it: a record costs tens of microseconds, which a plug's attach need not wait for. */
void usbvm_watch_announce(Watch *w);
void usbvm_watch_forget_gone(Watch *w);
void usbvm_watch_device_free(WatchDevice *d);

/* watch-records.c: one call writes one record, its text line and its JSON fields alike. */
/* When an attach's steps happened (usbvm_now_usec(); 0: not reached), for "steps_usec". */
typedef struct WatchSteps {
    uint64_t event;    /* the device's event that led to it arrived */
    uint64_t planned;  /* the plan handed the attach on */
    uint64_t started;  /* its queue's thread took it */
    uint64_t called;   /* the final checks passed: libvirt was called */
    uint64_t answered; /* libvirt answered */
} WatchSteps;
typedef struct WatchRecord {
    const char *event;         /* "plug", "attach", "detach", "wait", ... */
    const UsbvmDevice *device; /* its port, id, name, serial and alias, when known */
    const char *domain;
    const char *alias; /* a domain device's alias, when it is not the device's */
    const char *mode;
    const char *result; /* "ok", "failed", "refused", "requested", "dry-run" */
    const char *msg;    /* the reason or the note */
    const char *error;
    const char *notes;
    bool has_ms;
    int64_t ms;
    const WatchSteps *steps;
} WatchRecord;
void usbvm_watch_record(UsbvmLogLevel level, const WatchRecord *r);
/* "1-2 SanDisk Cruzer Blade 0781:5567 sn=4C53..." (escaped). */
char *usbvm_watch_label(const UsbvmDevice *d);

/* What a domain's queue keeps between its jobs, on its own connection: the domain's handle,
 * looked up again by every WATCH_JOB_DOMAIN (which a domain's start queues ahead of its
 * attaches), and the domain as the queue's attaches left it, valid only from one attach to the
 * next (any other job, and an empty queue, forget it). */
typedef struct WatchDomCache {
    virDomainPtr dom;
    UsbvmDomView *view;
    UsbvmHostUseCache *host_use; /* the queue thread's, for the final checks */
} WatchDomCache;

/* executor jobs' work, run on executor threads (watch-jobs.c); cache NULL: none kept */
void usbvm_watch_job_run(WatchJob *j, virConnectPtr conn, WatchDomCache *cache);
