/* What the executor's threads do for the daemon: every libvirt call of usbvm watch is made
 * here, never on the main or the event-loop thread. A job owns copies of everything it reads,
 * so the main thread may move on (or exit) while a call is stuck. */
#include "guest.h"
#include "hostlock.h"
#include "watch-state.h"

#include <errno.h>
#include <string.h>

WatchJob *usbvm_watch_job_new(WatchJobKind kind, const char *queue)
{
    WatchJob *j = xcalloc(1, sizeof(*j));
    j->kind = kind;
    j->queue = queue ? xstrdup(queue) : NULL;
    j->cb_lifecycle = j->cb_added = j->cb_removed = j->cb_failed = -1;
    return j;
}

void usbvm_watch_job_free(WatchJob *j)
{
    if (!j)
        return;
    free(j->queue);
    if (j->conn)
        virConnectClose(j->conn);
    free(j->domain);
    free(j->alias);
    free(j->why);
    usbvm_device_free(j->model);
    free(j->cache);
    free(j->io);
    usbvm_domdev_list_free(j->known);
    usbvm_domdev_clear(&j->held);
    usbvm_domdev_clear(&j->ctx.added);
    usbvm_snapshot_clear(&j->snapshot);
    usbvm_domdev_list_clear(&j->devs);
    free(j);
}

static void read_generation(uint64_t *ret)
{
    /* Read before the domains, so a change made meanwhile shows as a newer generation. */
    UsbvmHostLock l = { .fd = -1 };
    UsbvmError err = { 0 };
    *ret = 0;
    if (usbvm_hostlock_acquire(NULL, "generation", USBVM_HOSTLOCK_WAIT, &l, &err) == 0) {
        (void)usbvm_hostlock_generation(&l, ret);
        usbvm_hostlock_release(&l);
    }
}

static void run_connect(WatchJob *j)
{
    virConnectPtr conn = NULL;
    j->r = usbvm_virt_open(j->uri, &conn, &j->err);
    if (j->r < 0)
        return;
    j->conn = conn;
    /* A dead libvirtd closes the socket, which the close callback reports at once; keepalive
     * (a ping every 5 s, 3 unanswered = dead) catches a frozen one, and because the event loop
     * runs on a thread of its own it does so even while a call is waiting for an answer. */
    virConnectSetKeepAlive(conn, 5, 3);
    usbvm_watch_conn_register(j->watch, j);
    read_generation(&j->generation);
    j->r = usbvm_virt_read_snapshot(conn, NULL, &j->snapshot, &j->err);
}

/* Asks the guest (bounded) what it has mounted from the device, so that the log can say so
 * once the device has gone: the watch never refuses, the stick is out already. The device's
 * target and serial are the snapshot's, which libvirt's events and usbvm's own answers keep
 * current: the domain is not read for them. */
static void ask_guest(WatchJob *j, virDomainPtr dom, char *notes, size_t size)
{
    UsbvmError err = { 0 };
    j->guest_mounted = usbvm_guest_before_detach(dom, &j->held, j->model, j->alias,
                                                 USBVM_GUEST_FORCE, notes, size, &err) > 0;
}

/* The job's domain: the queue's handle when it has one (fresh: looked up again, as after the
 * domain started), else looked up and kept. A reference of the caller's own. */
static virDomainPtr job_domain(WatchJob *j, virConnectPtr conn, WatchDomCache *dc, bool fresh)
{
    virDomainPtr *cache = dc ? &dc->dom : NULL;
    if (cache && *cache && !fresh) {
        virDomainRef(*cache);
        return *cache;
    }
    virDomainPtr dom = NULL;
    j->r = usbvm_virt_lookup(conn, j->domain, &dom, &j->err);
    if (cache) {
        if (*cache)
            virDomainFree(*cache);
        *cache = dom;
        if (dom)
            virDomainRef(dom);
    }
    return dom;
}

static void run_detach(WatchJob *j, virConnectPtr conn, WatchDomCache *cache)
{
    virDomainPtr dom = job_domain(j, conn, cache, false);
    if (!dom)
        return;
    char notes[sizeof(j->res.notes)] = "";
    ask_guest(j, dom, notes, sizeof(notes));
    j->r = usbvm_virt_detach_alias(conn, dom, j->alias, USBVM_ATTACH_LIVE, 0, &j->res, &j->err);
    virDomainFree(dom);
    /* The detach's record carries them (watch-answers.c). */
    size_t len = strlen(j->res.notes);
    if (notes[0])
        snprintf(j->res.notes + len, sizeof(j->res.notes) - len, "%s%s", len ? "; " : "", notes);
}

static void run_attach(WatchJob *j, virConnectPtr conn, WatchDomCache *cache)
{
    virDomainPtr dom = job_domain(j, conn, cache, false);
    if (!dom)
        return;
    j->spec.cache = j->cache;
    j->spec.io = j->io;
    unsigned flags = USBVM_ATTACH_LIVE | (j->spec.persistent ? USBVM_ATTACH_CONFIG : 0);
    j->ctx = (UsbvmAttachCtx){ .known = j->known,
                               .known_generation = j->known_gen,
                               .recheck_host_use = true,
                               .host_use = cache ? cache->host_use : NULL,
                               .lock_nowait = true,
                               .view = cache ? cache->view : NULL };
    j->r = usbvm_virt_attach_ctx(conn, dom, j->model, &j->spec, flags, &j->ctx, &j->res, &j->err);
    virDomainFree(dom);
}

void usbvm_watch_job_run(WatchJob *j, virConnectPtr conn, WatchDomCache *dom_cache)
{
    j->started_usec = usbvm_now_usec();
    /* A detach changes the domain only when libvirt confirms it (usbvm_domview_drop then);
     * any other job may follow someone else's change. */
    if (dom_cache && j->kind != WATCH_JOB_ATTACH && j->kind != WATCH_JOB_DETACH)
        usbvm_domview_forget(dom_cache->view);
    switch (j->kind) {
    case WATCH_JOB_CONNECT:
        run_connect(j);
        break;
    case WATCH_JOB_DISCONNECT:
        usbvm_watch_conn_deregister(j);
        break;
    case WATCH_JOB_SNAPSHOT:
        read_generation(&j->generation);
        j->r = usbvm_virt_read_snapshot(conn, NULL, &j->snapshot, &j->err);
        break;
    case WATCH_JOB_DOMAIN: {
        virDomainPtr dom = job_domain(j, conn, dom_cache, true);
        j->running = false;
        j->r = 0; /* a domain that is gone is not running */
        if (dom) {
            j->r = usbvm_virt_read_domain(dom, &j->devs, &j->running, &j->err);
            virDomainFree(dom);
        }
        break;
    }
    case WATCH_JOB_WARM: {
        virDomainPtr dom = job_domain(j, conn, dom_cache, false);
        if (dom)
            virDomainFree(dom);
        break;
    }
    case WATCH_JOB_ATTACH:
        run_attach(j, conn, dom_cache);
        break;
    case WATCH_JOB_DETACH:
        run_detach(j, conn, dom_cache);
        break;
    }
}

void usbvm_watch_msg_free(WatchMsg *m)
{
    if (!m)
        return;
    free(m->domain);
    free(m->alias);
    usbvm_watch_job_free(m->job);
    free(m);
}
