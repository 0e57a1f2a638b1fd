/* The executor's answers, on the main thread: what an attach, a detach or a read changed in
 * the snapshot and in the devices, and the records that say so. */
#include "hostlock.h"
#include "watch-state.h"

#include <errno.h>
#include <string.h>

#define RETRY_FIRST_MS  250
#define RETRY_MAX_MS    30000
#define BUSY_RETRY_USEC (50ULL * 1000)

/* A refusal (mounted, elsewhere) waits for the device's next event; another usbvm process's
 * attach of it is looked at again soon; any other failure (libvirtd restarted in the middle of
 * the call, QEMU refusing a leftover block node) is retried with a backoff, so convergence does
 * not depend on where a failure landed. Each distinct reason is logged once. */
static void attach_failed(Watch *w, WatchDevice *dev, const WatchJob *j, WatchRecord *rec)
{
    bool busy = j->err.errnum == EAGAIN && j->err.kind == USBVM_E_FAILED;
    bool refused = j->err.kind == USBVM_E_REFUSED;
    w->summary->failed += !busy;
    dev->held_back = refused;
    if (!refused) {
        if (!busy)
            dev->backoff_ms = dev->backoff_ms ? dev->backoff_ms * 2 : RETRY_FIRST_MS;
        if (dev->backoff_ms > RETRY_MAX_MS)
            dev->backoff_ms = RETRY_MAX_MS;
        dev->retry_at =
            usbvm_now_usec() + (busy ? BUSY_RETRY_USEC : (uint64_t)dev->backoff_ms * 1000);
    }
    rec->result = refused ? "refused" : busy ? "busy" : "failed";
    rec->error = j->err.message;
    if (streq(dev->last_note, j->err.message))
        return;
    free(dev->last_note);
    dev->last_note = xstrdup(j->err.message);
    usbvm_watch_record(busy ? USBVM_LOG_DEBUG : USBVM_LOG_ERR, rec);
}

static void attach_done(Watch *w, WatchJob *j)
{
    usbvm_logf(USBVM_LOG_DEBUG, NULL, "attach %s -> %s: libvirt answered after %llu ms (%s)",
               j->alias, j->domain, (unsigned long long)((j->done_usec - j->started_usec) / 1000),
               j->ctx.from_view ? "started from the view" : "read the domain");
    WatchOp *op = usbvm_watch_op_find(w, USBVM_OP_ATTACH, j->domain, j->alias);
    if (op)
        usbvm_watch_op_remove(w, op);
    /* Another usbvm process changed a domain: the attach read them all; so do we. Our own
     * changes leave known_gen as it is: the host lock tells them from other processes'. */
    if (j->ctx.reread)
        w->refetch_all = true;
    else if (j->r < 0 && j->err.kind != USBVM_E_REFUSED)
        usbvm_watch_refetch_domain(w, j->domain); /* a device-added event was skipped */
    if (j->r == 0 && j->ctx.added.alias &&
        !usbvm_snapshot_has(&w->snapshot, j->domain, j->ctx.added.alias))
        usbvm_snapshot_add(&w->snapshot, &j->ctx.added);
    WatchDevice *dev = usbvm_watch_find_alias(w, j->alias);
    w->dirty = true;
    if (!dev || dev->gone)
        return; /* the unplug is planned next */
    const char *mode = usbvm_mode_to_string(j->spec.mode);
    uint64_t since = j->event_usec ? j->event_usec : j->started_usec;
    WatchSteps steps = { .event = j->event_usec,
                         .planned = j->planned_usec,
                         .started = j->started_usec,
                         .called = j->ctx.called_usec,
                         .answered = j->ctx.answered_usec };
    WatchRecord rec = { .event = "attach",
                        .device = dev->model,
                        .domain = j->domain,
                        .mode = mode,
                        .has_ms = true,
                        .ms = WATCH_MS(j->done_usec - since),
                        .steps = &steps };
    if (j->r < 0)
        return attach_failed(w, dev, j, &rec);
    dev->backoff_ms = 0;
    free(dev->last_note);
    dev->last_note = NULL;
    if (!j->res.changed) {
        w->summary->unchanged++;
        return;
    }
    w->summary->attached++;
    rec.result = "ok";
    rec.notes = j->res.notes[0] ? j->res.notes : NULL;
    usbvm_watch_record(USBVM_LOG_NOTICE, &rec);
}

static void detach_done(Watch *w, WatchJob *j)
{
    WatchOp *op = usbvm_watch_op_find(w, USBVM_OP_DETACH, j->domain, j->alias);
    WatchDevice *dev = usbvm_watch_find_alias(w, j->alias);
    WatchRecord rec = { .event = "detach",
                        .device = dev ? dev->model : NULL,
                        .domain = j->domain,
                        .alias = j->alias,
                        .msg = j->why };
    /* Pulled while the guest had it mounted: its unwritten data may be lost. */
    UsbvmLogLevel level = j->guest_mounted ? USBVM_LOG_WARNING : USBVM_LOG_NOTICE;
    w->dirty = true;
    /* libvirt's own event may have come before this answer (usbvm_watch_device_removed) and
     * says how it ended: removed, whatever the call says, or refused by the guest where the
     * call only knows it asked. */
    bool removed = op && op->removed;
    bool pending =
        (j->r == 0 || j->err.kind == USBVM_E_PENDING) && j->res.state != USBVM_STATE_DETACHED;
    if (pending && op && op->refused)
        j->r = usbvm_error_set(&j->err, USBVM_E_REFUSED, EBUSY,
                               "the guest refused to release it; it stays attached");
    if (!removed && j->r < 0 && j->err.kind != USBVM_E_PENDING) {
        w->summary->failed++;
        if (op)
            usbvm_watch_op_remove(w, op);
        rec.result = "failed";
        rec.error = j->err.message;
        usbvm_watch_record(USBVM_LOG_ERR, &rec);
        return;
    }
    if (j->res.state == USBVM_STATE_DETACHED || removed) {
        if (op)
            usbvm_watch_op_remove(w, op);
        usbvm_snapshot_remove(&w->snapshot, j->domain, j->alias);
        w->summary->detached++;
        rec.result = "ok";
        rec.has_ms = true;
        rec.ms = WATCH_MS(j->done_usec - j->started_usec);
        rec.notes = j->res.notes[0] ? j->res.notes : NULL;
        usbvm_watch_record(level, &rec);
        return;
    }
    /* Asked; libvirt confirms with DEVICE_REMOVED (invariant 4). Or awaited, as another
     * usbvm process asked moments ago: if its removal does not come, planned again once asking
     * is safe. */
    if (op) {
        op->answered = true;
        if (j->res.awaited_ms)
            op->ask_at = j->done_usec +
                         (uint64_t)(USBVM_HOSTLOCK_DETACH_SETTLE_MS - j->res.awaited_ms + 1) * 1000;
    }
    rec.result = "requested";
    rec.notes = j->res.notes[0] ? j->res.notes : NULL;
    usbvm_watch_record(j->guest_mounted ? USBVM_LOG_WARNING : USBVM_LOG_INFO, &rec);
}

static void job_done(Watch *w, WatchJob *j)
{
    if (j->conn_gen != w->conn_gen || !w->conn) {
        /* An answer on a connection that has been replaced: the full read after the
         * reconnect decides. Only the operation's bookkeeping is cleared. */
        WatchOp *op = j->alias
                          ? usbvm_watch_op_find(
                                w, j->kind == WATCH_JOB_ATTACH ? USBVM_OP_ATTACH : USBVM_OP_DETACH,
                                j->domain, j->alias)
                          : NULL;
        if (op)
            usbvm_watch_op_remove(w, op);
        w->dirty = true;
        return;
    }
    switch (j->kind) {
    case WATCH_JOB_SNAPSHOT:
        if (j->r == 0) {
            w->known_gen = j->generation;
            usbvm_snapshot_take(&w->snapshot, &j->snapshot);
            usbvm_watch_warm_targets(w); /* the rules may name others after a reload */
        }
        w->dirty = true;
        break;
    case WATCH_JOB_DOMAIN:
        if (j->running)
            usbvm_snapshot_set_domain(&w->snapshot, j->domain, &j->devs);
        else
            usbvm_snapshot_drop_domain(&w->snapshot, j->domain);
        usbvm_watch_recheck_all(w);
        break;
    case WATCH_JOB_ATTACH:
        attach_done(w, j);
        break;
    case WATCH_JOB_DETACH:
        detach_done(w, j);
        break;
    default:
        break;
    }
}

void usbvm_watch_job_done(Watch *w, WatchJob *j)
{
    job_done(w, j);
    /* The read its events asked for meanwhile comes now, after the answer's record. */
    WatchDevice *dev = (j->kind == WATCH_JOB_ATTACH || j->kind == WATCH_JOB_DETACH) && j->alias
                           ? usbvm_watch_find_alias(w, j->alias)
                           : NULL;
    if (dev && dev->stale)
        w->dirty = true;
}
