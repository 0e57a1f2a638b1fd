/* The event-loop thread: libvirt's default event loop on a thread of its own, as virsh runs
 * it, so that keepalive and the close callback work while another thread waits in a call. It
 * holds the udev monitor, the signalfd (SIGTERM is always acted on) and libvirt's domain
 * events, and does nothing but queue messages for the main thread. */
#include "watch-state.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <stdlib.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#define UDEV_RCVBUF (128 * 1024 * 1024)

static WatchMsg *msg_new(WatchMsgKind kind)
{
    WatchMsg *m = xcalloc(1, sizeof(*m));
    m->kind = kind;
    return m;
}

static void udev_cb(int watch, int fd, int events, void *opaque)
{
    Watch *w = opaque;
    /* Drain everything that is queued: a burst of 32 sticks is one wakeup and one plan. */
    for (;;) {
        errno = 0;
        struct udev_device *ud = udev_monitor_receive_device(w->monitor);
        if (!ud) {
            /* The socket's buffer overflowed and the kernel dropped uevents: which ones is
             * unknown, so the main thread reads every device again. */
            if (errno == ENOBUFS)
                usbvm_watch_inbox_post(&w->inbox, msg_new(WATCH_MSG_RESYNC));
            break;
        }
        WatchMsg *m = msg_new(WATCH_MSG_UEVENT);
        const char *action = udev_device_get_action(ud);
        m->action = xstrdup(action ? action : "change");
        m->ud = ud; /* handed over: only the main thread touches it from now on */
        usbvm_watch_inbox_post(&w->inbox, m);
    }
}

static void signal_cb(int watch, int fd, int events, void *opaque)
{
    Watch *w = opaque;
    struct signalfd_siginfo si;
    while (read(fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
        WatchMsg *m = msg_new(WATCH_MSG_SIGNAL);
        m->signo = (int)si.ssi_signo;
        usbvm_watch_inbox_post(&w->inbox, m);
    }
}

/* The opaque of a connection's callbacks: which daemon, which connection. */
typedef struct ConnTag {
    Watch *w;
    unsigned gen;
} ConnTag;

static void post_domain(void *opaque, WatchMsgKind kind, virDomainPtr dom, const char *alias,
                        int event)
{
    ConnTag *t = opaque;
    WatchMsg *m = msg_new(kind);
    m->conn_gen = t->gen;
    m->domain = xstrdup(virDomainGetName(dom));
    m->alias = alias ? xstrdup(alias) : NULL;
    m->event = event;
    usbvm_watch_inbox_post(&t->w->inbox, m);
}

static int lifecycle_cb(virConnectPtr conn, virDomainPtr dom, int event, int detail, void *opaque)
{
    post_domain(opaque, WATCH_MSG_LIFECYCLE, dom, NULL, event);
    return 0;
}

static void added_cb(virConnectPtr conn, virDomainPtr dom, const char *alias, void *opaque)
{
    post_domain(opaque, WATCH_MSG_DEVICE_ADDED, dom, alias, 0);
}

static void removed_cb(virConnectPtr conn, virDomainPtr dom, const char *alias, void *opaque)
{
    post_domain(opaque, WATCH_MSG_DEVICE_REMOVED, dom, alias, 0);
}

static void failed_cb(virConnectPtr conn, virDomainPtr dom, const char *alias, void *opaque)
{
    post_domain(opaque, WATCH_MSG_REMOVAL_FAILED, dom, alias, 0);
}

static void close_cb(virConnectPtr conn, int reason, void *opaque)
{
    ConnTag *t = opaque;
    WatchMsg *m = msg_new(WATCH_MSG_CLOSED);
    m->conn_gen = t->gen;
    m->event = reason;
    usbvm_watch_inbox_post(&t->w->inbox, m);
}

void usbvm_watch_conn_register(Watch *w, WatchJob *j)
{
    virConnectPtr c = j->conn;
    ConnTag *tags[5];
    for (size_t i = 0; i < ELEMENTSOF(tags); i++) {
        tags[i] = xmalloc(sizeof(ConnTag));
        *tags[i] = (ConnTag){ .w = w, .gen = j->conn_gen };
    }
    /* libvirt frees each tag when its callback goes (the freecb). */
    virConnectRegisterCloseCallback(c, close_cb, tags[0], free);
    j->cb_lifecycle =
        virConnectDomainEventRegisterAny(c, NULL, VIR_DOMAIN_EVENT_ID_LIFECYCLE,
                                         VIR_DOMAIN_EVENT_CALLBACK(lifecycle_cb), tags[1], free);
    j->cb_added =
        virConnectDomainEventRegisterAny(c, NULL, VIR_DOMAIN_EVENT_ID_DEVICE_ADDED,
                                         VIR_DOMAIN_EVENT_CALLBACK(added_cb), tags[2], free);
    j->cb_removed =
        virConnectDomainEventRegisterAny(c, NULL, VIR_DOMAIN_EVENT_ID_DEVICE_REMOVED,
                                         VIR_DOMAIN_EVENT_CALLBACK(removed_cb), tags[3], free);
    j->cb_failed =
        virConnectDomainEventRegisterAny(c, NULL, VIR_DOMAIN_EVENT_ID_DEVICE_REMOVAL_FAILED,
                                         VIR_DOMAIN_EVENT_CALLBACK(failed_cb), tags[4], free);
    if (j->cb_lifecycle < 0)
        free(tags[1]);
    if (j->cb_added < 0)
        free(tags[2]);
    if (j->cb_removed < 0)
        free(tags[3]);
    if (j->cb_failed < 0)
        free(tags[4]);
}

void usbvm_watch_conn_deregister(WatchJob *j)
{
    virConnectPtr c = j->conn;
    int ids[] = { j->cb_lifecycle, j->cb_added, j->cb_removed, j->cb_failed };
    for (size_t i = 0; i < ELEMENTSOF(ids); i++)
        if (ids[i] >= 0)
            virConnectDomainEventDeregisterAny(c, ids[i]);
    virConnectUnregisterCloseCallback(c, close_cb);
}

static void *loop_main(void *opaque)
{
    Watch *w = opaque;
    while (!__atomic_load_n(&w->loop_quit, __ATOMIC_ACQUIRE))
        if (virEventRunDefaultImpl() < 0)
            break;
    return NULL;
}

static int monitor_open(Watch *w, UsbvmError *err)
{
    w->loop_udev = udev_new();
    if (!w->loop_udev)
        return usbvm_error_set(err, USBVM_E_FAILED, ENOMEM, "cannot talk to udev");
    w->monitor = udev_monitor_new_from_netlink(w->loop_udev, "udev");
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

int usbvm_watch_loop_start(Watch *w, UsbvmError *err)
{
    /* Monitor first, then enumerate (the caller): a device plugged in between is seen twice,
     * never missed, and the handler is idempotent. */
    int r = monitor_open(w, err);
    if (r < 0)
        return r;
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGHUP);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    /* Blocked before any thread starts, so every thread inherits it; only the signalfd sees
     * these signals. */
    pthread_sigmask(SIG_BLOCK, &mask, NULL);
    w->signal_fd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
    if (w->signal_fd < 0)
        return usbvm_error_set(err, USBVM_E_FAILED, errno, "cannot set up signal handling: %s",
                               strerror(errno));
    w->udev_handle = virEventAddHandle(udev_monitor_get_fd(w->monitor), VIR_EVENT_HANDLE_READABLE,
                                       udev_cb, w, NULL);
    w->signal_handle =
        virEventAddHandle(w->signal_fd, VIR_EVENT_HANDLE_READABLE, signal_cb, w, NULL);
    if (w->udev_handle < 0 || w->signal_handle < 0)
        return usbvm_error_set(err, USBVM_E_FAILED, EIO, "cannot register with the event loop");
    if (pthread_create(&w->loop_thread, NULL, loop_main, w) != 0)
        return usbvm_error_set(err, USBVM_E_FAILED, EAGAIN, "cannot start the event-loop thread");
    w->loop_running = true;
    return 0;
}

static void wake_timer(int timer, void *opaque)
{
}

void usbvm_watch_loop_stop(Watch *w)
{
    if (w->udev_handle >= 0)
        virEventRemoveHandle(w->udev_handle);
    if (w->signal_handle >= 0)
        virEventRemoveHandle(w->signal_handle);
    w->udev_handle = w->signal_handle = -1;
    if (w->loop_running) {
        __atomic_store_n(&w->loop_quit, 1, __ATOMIC_RELEASE);
        /* A timer that fires at once ends the loop's current poll. */
        int t = virEventAddTimeout(0, wake_timer, NULL, NULL);
        pthread_join(w->loop_thread, NULL);
        if (t >= 0)
            virEventRemoveTimeout(t);
        w->loop_running = false;
    }
    if (w->signal_fd >= 0)
        close(w->signal_fd);
    w->signal_fd = -1;
    if (w->monitor)
        udev_monitor_unref(w->monitor);
    if (w->loop_udev)
        udev_unref(w->loop_udev);
    w->monitor = NULL;
    w->loop_udev = NULL;
}
