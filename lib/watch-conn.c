/* The daemon's libvirt connection and what libvirt tells it: connecting (with backoff),
 * losing the connection, domain lifecycle and device events, each keeping the snapshot
 * current. Main thread only; the calls themselves are the executor's. */
#include "watch-state.h"

#include <string.h>

#define CONNECT_FIRST_MS 100

void usbvm_watch_connect_start(Watch *w)
{
    if (w->connecting || w->conn)
        return;
    w->connecting = true;
    w->reconnect_at = 0;
    w->conn_gen++;
    WatchJob *j = usbvm_watch_job_new(WATCH_JOB_CONNECT, NULL);
    j->uri = w->opts->uri;
    j->watch = w;
    usbvm_watch_submit(w, j);
}

void usbvm_watch_schedule_reconnect(Watch *w)
{
    w->backoff_ms = w->backoff_ms ? w->backoff_ms * 2 : CONNECT_FIRST_MS;
    if (w->backoff_ms > w->opts->max_backoff_ms)
        w->backoff_ms = w->opts->max_backoff_ms;
    w->reconnect_at = usbvm_now_usec() + (uint64_t)w->backoff_ms * 1000;
}

/* Deregisters and closes the connection on the general queue (the calls may hang). */
void usbvm_watch_disconnect(Watch *w)
{
    WatchJob *j = usbvm_watch_job_new(WATCH_JOB_DISCONNECT, NULL);
    j->conn = w->conn; /* the job takes our reference */
    j->conn_gen = w->conn_gen;
    j->cb_lifecycle = w->cb[0];
    j->cb_added = w->cb[1];
    j->cb_removed = w->cb[2];
    j->cb_failed = w->cb[3];
    usbvm_executor_submit(w->exec, j);
    w->conn = NULL;
}

/* The connection is gone: forget what it said; the next one reads everything again. */
void usbvm_watch_connection_lost(Watch *w)
{
    if (!w->conn)
        return;
    usbvm_watch_disconnect(w);
    usbvm_snapshot_clear(&w->snapshot);
    for (size_t i = 0; i < w->n_ops;)
        if (w->ops[i].answered)
            usbvm_watch_op_remove(
                w, &w->ops[i]); /* pending detaches are re-derived after reconnecting */
        else
            i++;
    usbvm_logf(USBVM_LOG_WARNING, NULL, "lost the connection to libvirtd; reconnecting");
    w->dirty = true;
    usbvm_watch_schedule_reconnect(w);
}

void usbvm_watch_drop_deferred(Watch *w)
{
    while (w->deferred) {
        WatchMsg *next = w->deferred->next;
        usbvm_watch_msg_free(w->deferred);
        w->deferred = next;
    }
}

void usbvm_watch_connected(Watch *w, WatchJob *j)
{
    w->connecting = false;
    if (j->r < 0 || j->conn_gen != w->conn_gen) {
        if (j->conn) {
            WatchJob *d = usbvm_watch_job_new(WATCH_JOB_DISCONNECT, NULL);
            d->conn = j->conn;
            j->conn = NULL;
            d->cb_lifecycle = j->cb_lifecycle;
            d->cb_added = j->cb_added;
            d->cb_removed = j->cb_removed;
            d->cb_failed = j->cb_failed;
            usbvm_executor_submit(w->exec, d);
        }
        if (w->opts->once) {
            /* Nothing retries: the error is watch's answer (its exit record), not a log line. */
            w->connect_err = j->err;
        } else {
            _cleanup_free_ char *esc = usbvm_escape(j->err.message);
            usbvm_logf(w->connect_warned ? USBVM_LOG_DEBUG : USBVM_LOG_WARNING, NULL,
                       "%s; retrying", esc);
        }
        w->connect_warned = true;
        usbvm_watch_drop_deferred(w);
        usbvm_watch_schedule_reconnect(w);
        return;
    }
    w->conn = j->conn;
    j->conn = NULL;
    w->cb[0] = j->cb_lifecycle;
    w->cb[1] = j->cb_added;
    w->cb[2] = j->cb_removed;
    w->cb[3] = j->cb_failed;
    w->connect_warned = false;
    w->backoff_ms = 0;
    w->known_gen = j->generation;
    usbvm_snapshot_take(&w->snapshot, &j->snapshot);
    usbvm_watch_warm_targets(w);
    usbvm_watch_log_event("connected", NULL, "connected to libvirtd");
    w->replay = true; /* watch.c applies them after this answer */
    usbvm_watch_recheck_all(w);
}

void usbvm_watch_refetch_domain(Watch *w, const char *domain)
{
    WatchJob *j = usbvm_watch_job_new(WATCH_JOB_DOMAIN, domain);
    j->domain = xstrdup(domain);
    usbvm_watch_submit(w, j);
}

void usbvm_watch_warm_targets(Watch *w)
{
    size_t n = usbvm_ruleset_size(w->rules);
    for (size_t k = 0; k < w->snapshot.n; k++) {
        const char *name = w->snapshot.domains[k].name;
        for (size_t i = 0; i < n; i++)
            if (streq(usbvm_rule_domain(usbvm_ruleset_get(w->rules, i)), name)) {
                WatchJob *j = usbvm_watch_job_new(WATCH_JOB_WARM, name);
                j->domain = xstrdup(name);
                usbvm_watch_submit(w, j);
                break;
            }
    }
}

void usbvm_watch_lifecycle(Watch *w, WatchMsg *m)
{
    if (m->event == VIR_DOMAIN_EVENT_STARTED) {
        usbvm_watch_log_event("domain-started", m->domain, " started");
        usbvm_watch_refetch_domain(w, m->domain);
    } else if (m->event == VIR_DOMAIN_EVENT_STOPPED) {
        usbvm_watch_log_event("domain-stopped", m->domain, " stopped");
        /* Whatever was there, or pending there, left with the domain. */
        usbvm_snapshot_drop_domain(&w->snapshot, m->domain);
        usbvm_watch_ops_drop_domain(w, m->domain);
        usbvm_watch_recheck_all(w);
    }
}

void usbvm_watch_device_removed(Watch *w, WatchMsg *m, bool failed)
{
    WatchOp *op = usbvm_watch_op_find(w, USBVM_OP_DETACH, m->domain, m->alias);
    WatchDevice *dev = usbvm_watch_find_alias(w, m->alias);
    const UsbvmDevice *model = dev ? dev->model : NULL;
    if (!failed) {
        usbvm_snapshot_remove(&w->snapshot, m->domain, m->alias);
        usbvm_executor_device_removed(w->exec, m->domain, m->alias);
    }
    if (op && !op->answered) {
        /* The executor's detach is still under way and reports it, with what it saw (the
         * guest's mounts): the event, which may come first, only tells its answer. */
        op->removed = !failed;
        op->refused = failed;
    } else if (!op && !failed) {
        /* Not a removal this daemon asked for (an admin's 'usbvm detach', a guest eject):
         * nothing to report, but the device is looked at again. */
        usbvm_logf(USBVM_LOG_DEBUG, NULL, "%s left %s", m->alias, m->domain);
    } else if (failed) {
        w->summary->failed++;
        usbvm_watch_record(USBVM_LOG_ERR,
                           &(WatchRecord){ .event = "detach",
                                           .device = model,
                                           .domain = m->domain,
                                           .alias = m->alias,
                                           .result = "failed",
                                           .msg = "the guest refused to release it; it stays "
                                                  "attached" });
    } else {
        w->summary->detached++;
        usbvm_watch_record(USBVM_LOG_NOTICE,
                           &(WatchRecord){ .event = "detach",
                                           .device = model,
                                           .domain = m->domain,
                                           .alias = m->alias,
                                           .result = "ok",
                                           .msg = op->why,
                                           .has_ms = true,
                                           .ms = WATCH_MS(usbvm_now_usec() - op->since_usec) });
    }
    if (op && op->answered)
        usbvm_watch_op_remove(w, op);
    if (dev) {
        /* Its place changed: a refusal because it was elsewhere may not hold any more. */
        dev->held_back = false;
        dev->event_usec = usbvm_now_usec();
    }
    w->dirty = true;
}

void usbvm_watch_device_added(Watch *w, WatchMsg *m)
{
    /* Ours are in the snapshot from the attach's own answer, which may come after this event
     * (it comes on another connection); anyone else's is read. */
    if (usbvm_watch_op_find(w, USBVM_OP_ATTACH, m->domain, m->alias))
        return;
    UsbvmSnapDomain *d = usbvm_snapshot_domain(&w->snapshot, m->domain);
    for (size_t i = 0; d && i < d->devs.n; i++)
        if (streq(d->devs.items[i].alias, m->alias))
            return;
    usbvm_watch_refetch_domain(w, m->domain);
}
