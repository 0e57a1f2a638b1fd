/* The event-loop thread: libvirt's default event loop on a thread of its own, as virsh runs
 * it, so that keepalive and the close callback work while another thread waits in a call. It
 * holds libvirt's domain events and close callback, and does nothing but queue messages for the
 * main thread. */
#include "watch-state.h"

#include <errno.h>
#include <stdlib.h>

static WatchMsg *msg_new(WatchMsgKind kind)
{
    WatchMsg *m = xcalloc(1, sizeof(*m));
    m->kind = kind;
    return m;
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

int usbvm_watch_loop_start(Watch *w, UsbvmError *err)
{
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
    if (!w->loop_running)
        return;
    __atomic_store_n(&w->loop_quit, 1, __ATOMIC_RELEASE);
    /* A timer that fires at once ends the loop's current poll. */
    int t = virEventAddTimeout(0, wake_timer, NULL, NULL);
    pthread_join(w->loop_thread, NULL);
    if (t >= 0)
        virEventRemoveTimeout(t);
    w->loop_running = false;
}
