/* usbvm watch: the main thread. It owns the daemon's state (watch-state.h), takes the messages
 * of the event-loop thread and of the executor, and after each burst plans once and hands the
 * actions to the executor. It never makes a libvirt call itself, so it always answers. */
#include "notify.h"
#include "watch-state.h"

#include <errno.h>
#include <signal.h>
#include <string.h>

#define MS(usec)         ((int64_t)((usec) / 1000))
#define SLOW_CALL_USEC   (30ULL * 1000000)
#define STOP_GRACE_MS    500
#define CONNECT_FIRST_MS 100
#define READY_WAIT_USEC  (10ULL * 1000000)
#define RETRY_FIRST_MS   250
#define RETRY_MAX_MS     30000
#define BUSY_RETRY_USEC  (50ULL * 1000)

/* ---- rules ------------------------------------------------------------------------------- */

static void log_rule_diag(const UsbvmRuleDiag *d)
{
    json_object *f = json_object_new_object();
    json_object_object_add(f, "event", json_object_new_string("rules"));
    json_object_object_add(f, "level", json_object_new_string(d->warning ? "warning" : "error"));
    json_object_object_add(f, "file", json_object_new_string(strempty(d->file)));
    json_object_object_add(f, "line", json_object_new_int((int)d->line));
    json_object_object_add(f, "column", json_object_new_int((int)d->column));
    json_object_object_add(f, "msg", json_object_new_string(strempty(d->message)));
    usbvm_logf(d->warning ? USBVM_LOG_WARNING : USBVM_LOG_ERR, f, "%s:%u:%u: %s: %s",
               strempty(d->file), d->line, d->column, d->warning ? "warning" : "error",
               strempty(d->message));
}

static int load_rules(Watch *w, UsbvmError *err)
{
    UsbvmRuleDiags diags = { 0 };
    UsbvmRuleset *rs = NULL;
    int r = usbvm_ruleset_load(w->opts->rules_path, &rs, &diags);
    for (size_t i = 0; i < diags.n; i++)
        log_rule_diag(&diags.items[i]);
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

/* Everything is looked at again: a reload, a domain start, a reconnect. */
static void recheck_all(Watch *w)
{
    for (size_t i = 0; i < w->n_devs; i++) {
        w->devs[i]->held_back = false;
        free(w->devs[i]->last_note);
        w->devs[i]->last_note = NULL;
    }
    w->dirty = true;
}

/* ---- operations in flight ------------------------------------------------------------------ */

static WatchOp *op_find(Watch *w, UsbvmOpKind kind, const char *domain, const char *alias)
{
    for (size_t i = 0; i < w->n_ops; i++)
        if (w->ops[i].kind == kind && streq(w->ops[i].alias, alias) &&
            (!domain || streq(w->ops[i].domain, domain)))
            return &w->ops[i];
    return NULL;
}

static void op_add(Watch *w, UsbvmOpKind kind, const char *domain, const char *alias,
                   const char *why)
{
    w->ops = xrealloc(w->ops, (w->n_ops + 1) * sizeof(*w->ops));
    w->ops[w->n_ops++] = (WatchOp){ .kind = kind,
                                    .domain = xstrdup(domain),
                                    .alias = xstrdup(alias),
                                    .why = why ? xstrdup(why) : NULL,
                                    .since_usec = usbvm_now_usec() };
}

static void op_remove(Watch *w, WatchOp *op)
{
    free(op->domain);
    free(op->alias);
    free(op->why);
    size_t i = (size_t)(op - w->ops);
    memmove(op, op + 1, (w->n_ops - i - 1) * sizeof(*op));
    w->n_ops--;
}

static void ops_drop_domain(Watch *w, const char *domain)
{
    for (size_t i = 0; i < w->n_ops;)
        if (w->ops[i].answered && streq(w->ops[i].domain, domain))
            op_remove(w, &w->ops[i]);
        else
            i++;
}

static size_t pending_detaches(const Watch *w)
{
    size_t n = 0;
    for (size_t i = 0; i < w->n_ops; i++)
        n += w->ops[i].kind == USBVM_OP_DETACH;
    return n;
}

/* ---- the connection ------------------------------------------------------------------------ */

static void submit(Watch *w, WatchJob *j)
{
    if (w->conn && !j->conn) {
        j->conn = w->conn;
        virConnectRef(w->conn);
    }
    j->conn_gen = w->conn_gen;
    j->uri = w->opts->uri;
    usbvm_executor_submit(w->exec, j);
}

static void connect_start(Watch *w)
{
    if (w->connecting || w->conn)
        return;
    w->connecting = true;
    w->reconnect_at = 0;
    w->conn_gen++;
    WatchJob *j = usbvm_watch_job_new(WATCH_JOB_CONNECT, NULL);
    j->uri = w->opts->uri;
    j->watch = w;
    submit(w, j);
}

static void schedule_reconnect(Watch *w)
{
    w->backoff_ms = w->backoff_ms ? w->backoff_ms * 2 : CONNECT_FIRST_MS;
    if (w->backoff_ms > w->opts->max_backoff_ms)
        w->backoff_ms = w->opts->max_backoff_ms;
    w->reconnect_at = usbvm_now_usec() + (uint64_t)w->backoff_ms * 1000;
}

/* Deregisters and closes the connection on the general queue (the calls may hang). */
static void disconnect(Watch *w)
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
static void connection_lost(Watch *w)
{
    if (!w->conn)
        return;
    disconnect(w);
    usbvm_snapshot_clear(&w->snapshot);
    for (size_t i = 0; i < w->n_ops;)
        if (w->ops[i].answered)
            op_remove(w, &w->ops[i]); /* pending detaches are re-derived after reconnecting */
        else
            i++;
    usbvm_logf(USBVM_LOG_WARNING, NULL, "lost the connection to libvirtd; reconnecting");
    w->dirty = true;
    schedule_reconnect(w);
}

/* "connected", "domain-started", "domain-stopped": "<words> <domain> <what>". */
static void log_event(const char *event, const char *domain, const char *what)
{
    json_object *f = json_object_new_object();
    json_object_object_add(f, "event", json_object_new_string(event));
    if (domain) {
        _cleanup_free_ char *clean = usbvm_utf8_sanitize(domain);
        json_object_object_add(f, "domain", json_object_new_string(clean));
    }
    _cleanup_free_ char *esc = domain ? usbvm_escape(domain) : NULL;
    usbvm_logf(USBVM_LOG_INFO, f, "%s%s%s", domain ? "domain " : "", esc ? esc : "", what);
}

static void connected(Watch *w, WatchJob *j)
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
        _cleanup_free_ char *esc = usbvm_escape(j->err.message);
        usbvm_logf(w->connect_warned ? USBVM_LOG_DEBUG : USBVM_LOG_WARNING, NULL, "%s%s", esc,
                   w->opts->once ? "" : "; retrying");
        w->connect_warned = true;
        schedule_reconnect(w);
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
    log_event("connected", NULL, "connected to libvirtd");
    recheck_all(w);
}

/* ---- libvirt's events ------------------------------------------------------------------------ */

static void refetch_domain(Watch *w, const char *domain)
{
    WatchJob *j = usbvm_watch_job_new(WATCH_JOB_DOMAIN, domain);
    j->domain = xstrdup(domain);
    submit(w, j);
}

static void lifecycle(Watch *w, WatchMsg *m)
{
    if (m->event == VIR_DOMAIN_EVENT_STARTED) {
        log_event("domain-started", m->domain, " started");
        refetch_domain(w, m->domain);
    } else if (m->event == VIR_DOMAIN_EVENT_STOPPED) {
        log_event("domain-stopped", m->domain, " stopped");
        /* Whatever was there, or pending there, left with the domain. */
        usbvm_snapshot_drop_domain(&w->snapshot, m->domain);
        ops_drop_domain(w, m->domain);
        recheck_all(w);
    }
}

static void device_removed(Watch *w, WatchMsg *m, bool failed)
{
    WatchOp *op = op_find(w, USBVM_OP_DETACH, m->domain, m->alias);
    WatchDevice *dev = usbvm_watch_find_alias(w, m->alias);
    const UsbvmDevice *model = dev ? dev->model : NULL;
    if (!failed)
        usbvm_snapshot_remove(&w->snapshot, m->domain, m->alias);
    if (!op && !failed) {
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
                                           .ms = MS(usbvm_now_usec() - op->since_usec) });
    }
    if (op)
        op_remove(w, op);
    if (dev)
        dev->event_usec = usbvm_now_usec();
    w->dirty = true;
}

static void device_added(Watch *w, WatchMsg *m)
{
    /* Ours are in the snapshot from the attach's own answer; anyone else's is read. */
    UsbvmSnapDomain *d = usbvm_snapshot_domain(&w->snapshot, m->domain);
    for (size_t i = 0; d && i < d->devs.n; i++)
        if (streq(d->devs.items[i].alias, m->alias))
            return;
    refetch_domain(w, m->domain);
}

/* ---- answers from the executor --------------------------------------------------------------- */

static void note(Watch *w, WatchDevice *dev, UsbvmLogLevel level, const char *event,
                 const char *domain, const char *text)
{
    if (streq(dev->last_note, text))
        return; /* once per distinct reason: an event storm does not repeat the line */
    free(dev->last_note);
    dev->last_note = xstrdup(text);
    usbvm_watch_record(
        level,
        &(WatchRecord){ .event = event, .device = dev->model, .domain = domain, .msg = text });
}

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
    usbvm_logf(USBVM_LOG_DEBUG, NULL, "attach %s -> %s: libvirt answered after %llu ms", j->alias,
               j->domain, (unsigned long long)((j->done_usec - j->started_usec) / 1000));
    WatchOp *op = op_find(w, USBVM_OP_ATTACH, j->domain, j->alias);
    if (op)
        op_remove(w, op);
    if (j->ctx.reread) {
        /* Another usbvm process changed a domain: the attach read them all; so do we. */
        w->refetch_all = true;
    } else if (j->r == 0 && j->res.changed) {
        w->known_gen = j->ctx.generation;
    }
    if (j->r == 0 && j->res.changed && j->ctx.added.alias)
        usbvm_snapshot_add(&w->snapshot, &j->ctx.added);
    WatchDevice *dev = usbvm_watch_find_alias(w, j->alias);
    w->dirty = true;
    if (!dev || dev->gone)
        return; /* the unplug is planned next */
    const char *mode = usbvm_mode_to_string(j->spec.mode);
    uint64_t since = j->event_usec ? j->event_usec : j->started_usec;
    WatchRecord rec = { .event = "attach",
                        .device = dev->model,
                        .domain = j->domain,
                        .mode = mode,
                        .has_ms = true,
                        .ms = MS(j->done_usec - since) };
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
    WatchOp *op = op_find(w, USBVM_OP_DETACH, j->domain, j->alias);
    WatchDevice *dev = usbvm_watch_find_alias(w, j->alias);
    WatchRecord rec = { .event = "detach",
                        .device = dev ? dev->model : NULL,
                        .domain = j->domain,
                        .alias = j->alias,
                        .msg = j->why,
                        .notes = j->guest_note[0] ? j->guest_note : NULL };
    /* Pulled while the guest had it mounted: its unwritten data may be lost. */
    UsbvmLogLevel level = j->guest_mounted ? USBVM_LOG_WARNING : USBVM_LOG_NOTICE;
    w->dirty = true;
    if (j->r < 0 && j->err.kind != USBVM_E_PENDING) {
        w->summary->failed++;
        if (op)
            op_remove(w, op);
        rec.result = "failed";
        rec.error = j->err.message;
        usbvm_watch_record(USBVM_LOG_ERR, &rec);
        return;
    }
    if (j->res.state == USBVM_STATE_DETACHED) {
        if (op)
            op_remove(w, op);
        usbvm_snapshot_remove(&w->snapshot, j->domain, j->alias);
        w->summary->detached++;
        rec.result = "ok";
        rec.has_ms = true;
        rec.ms = MS(j->done_usec - j->started_usec);
        usbvm_watch_record(level, &rec);
        return;
    }
    /* Asked; libvirt confirms with DEVICE_REMOVED (invariant 4). */
    if (op)
        op->answered = true;
    rec.result = "requested";
    usbvm_watch_record(j->guest_mounted ? USBVM_LOG_WARNING : USBVM_LOG_INFO, &rec);
}

static void job_done(Watch *w, WatchJob *j)
{
    if (j->kind == WATCH_JOB_CONNECT)
        return connected(w, j);
    if (j->conn_gen != w->conn_gen || !w->conn) {
        /* An answer on a connection that has been replaced: the full read after the
         * reconnect decides. Only the operation's bookkeeping is cleared. */
        WatchOp *op =
            j->alias ? op_find(w, j->kind == WATCH_JOB_ATTACH ? USBVM_OP_ATTACH : USBVM_OP_DETACH,
                               j->domain, j->alias)
                     : NULL;
        if (op)
            op_remove(w, op);
        w->dirty = true;
        return;
    }
    switch (j->kind) {
    case WATCH_JOB_SNAPSHOT:
        if (j->r == 0) {
            w->known_gen = j->generation;
            usbvm_snapshot_take(&w->snapshot, &j->snapshot);
        }
        w->dirty = true;
        break;
    case WATCH_JOB_DOMAIN:
        if (j->running)
            usbvm_snapshot_set_domain(&w->snapshot, j->domain, &j->devs);
        else
            usbvm_snapshot_drop_domain(&w->snapshot, j->domain);
        recheck_all(w);
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

/* ---- planning ------------------------------------------------------------------------------- */

static const char *wait_text(const UsbvmAction *a, char *buf, size_t n, UsbvmLogLevel *ret_level)
{
    *ret_level = USBVM_LOG_DEBUG;
    switch (a->wait) {
    case USBVM_WAIT_DOMAIN:
        *ret_level = USBVM_LOG_INFO;
        snprintf(buf, n, "domain '%s' is not running; attaching when it starts", a->domain);
        return buf;
    case USBVM_WAIT_LIBVIRT:
        *ret_level = USBVM_LOG_INFO;
        return "waiting for libvirtd to come back";
    case USBVM_WAIT_BLOCK:
        return "waiting for its block device";
    case USBVM_WAIT_BIND:
        return "waiting for the device to bind";
    case USBVM_WAIT_AMBIGUOUS:
        *ret_level = USBVM_LOG_WARNING;
        return "another present device has the same identity (vendor, product and serial); "
               "the policy acts on neither until one is unplugged; attach one by its port "
               "with 'usbvm attach DOMAIN PORT'";
    default:
        return NULL;
    }
}

static void act_wait(Watch *w, const UsbvmAction *a)
{
    WatchDevice *dev = w->devs[a->device];
    w->waiting++;
    if (a->kind == USBVM_ACTION_REFUSE) {
        UsbvmError err = { 0 };
        usbvm_device_check_host_use(dev->model, &err);
        if (streq(dev->last_note, err.message))
            return;
        free(dev->last_note);
        dev->last_note = xstrdup(err.message);
        usbvm_watch_record(USBVM_LOG_ERR, &(WatchRecord){ .event = "attach",
                                                          .device = dev->model,
                                                          .domain = a->domain,
                                                          .result = "refused",
                                                          .error = err.message });
        return;
    }
    char buf[512];
    UsbvmLogLevel level;
    const char *text = wait_text(a, buf, sizeof(buf), &level);
    if (text)
        note(w, dev, level, "wait", a->domain, text);
}

static void act_attach(Watch *w, const UsbvmAction *a)
{
    WatchDevice *dev = w->devs[a->device];
    if (w->opts->dry_run) {
        _cleanup_free_ char *text = xasprintf("dry run: attach to %s as %s", a->domain,
                                              usbvm_mode_to_string(a->spec->mode));
        if (!streq(dev->last_note, text))
            w->summary->attached++;
        note(w, dev, USBVM_LOG_NOTICE, "attach", a->domain, text);
        return;
    }
    WatchJob *j = usbvm_watch_job_new(WATCH_JOB_ATTACH, a->domain);
    j->domain = xstrdup(a->domain);
    j->alias = xstrdup(a->alias);
    j->model = usbvm_device_dup(dev->model);
    j->spec = *a->spec;
    j->cache = a->spec->cache ? xstrdup(a->spec->cache) : NULL;
    j->io = a->spec->io ? xstrdup(a->spec->io) : NULL;
    j->known = usbvm_snapshot_flatten(&w->snapshot);
    j->known_gen = w->known_gen;
    j->event_usec = dev->event_usec;
    op_add(w, USBVM_OP_ATTACH, a->domain, a->alias, NULL);
    usbvm_logf(USBVM_LOG_DEBUG, NULL, "attach %s -> %s: asking libvirt", a->alias, a->domain);
    submit(w, j);
}

static void act_detach(Watch *w, const UsbvmAction *a)
{
    const UsbvmDevice *model = a->device != USBVM_PLAN_NO_DEVICE ? w->devs[a->device]->model : NULL;
    if (w->opts->dry_run) {
        w->summary->detached++;
        usbvm_watch_record(USBVM_LOG_NOTICE, &(WatchRecord){ .event = "detach",
                                                             .device = model,
                                                             .domain = a->domain,
                                                             .alias = a->alias,
                                                             .result = "dry-run",
                                                             .msg = a->why });
        /* Counted as pending, so a dry run does not plan it again. */
        op_add(w, USBVM_OP_DETACH, a->domain, a->alias, a->why);
        w->ops[w->n_ops - 1].answered = true;
        return;
    }
    WatchJob *j = usbvm_watch_job_new(WATCH_JOB_DETACH, a->domain);
    j->model = model ? usbvm_device_dup(model) : NULL; /* a USB hostdev's serial, for the guest */
    j->domain = xstrdup(a->domain);
    j->alias = xstrdup(a->alias);
    j->why = xstrdup(a->why);
    op_add(w, USBVM_OP_DETACH, a->domain, a->alias, a->why);
    submit(w, j);
}

static bool ambiguous(const Watch *w, size_t i)
{
    const WatchDevice *d = w->devs[i];
    for (size_t k = 0; !d->gone && d->model && k < w->n_devs; k++)
        if (k != i && !w->devs[k]->gone && w->devs[k]->model && !w->devs[k]->model->is_hub &&
            streq(w->devs[k]->model->alias, d->model->alias))
            return true;
    return false;
}

/* Plans once over everything and hands the actions on; returns how many it handed on. */
static size_t plan_and_act(Watch *w)
{
    UsbvmPlanDevice *devs = xcalloc(w->n_devs + 1, sizeof(*devs));
    for (size_t i = 0; i < w->n_devs; i++) {
        const WatchDevice *d = w->devs[i];
        devs[i] = (UsbvmPlanDevice){ .model = d->model,
                                     .gone = d->gone,
                                     .keep = d->keep,
                                     .bound = d->bound,
                                     .held_back = d->held_back || d->retry_at,
                                     .ambiguous = ambiguous(w, i) };
    }
    UsbvmPlanOp *ops = xcalloc(w->n_ops + 1, sizeof(*ops));
    for (size_t i = 0; i < w->n_ops; i++)
        ops[i] = (UsbvmPlanOp){ .kind = w->ops[i].kind,
                                .domain = w->ops[i].domain,
                                .alias = w->ops[i].alias };
    UsbvmPlanInput in = { .devices = devs,
                          .n_devices = w->n_devs,
                          .rules = w->rules,
                          .snapshot = &w->snapshot,
                          .ops = ops,
                          .n_ops = w->n_ops,
                          .connected = w->conn != NULL,
                          .stopping = w->stopping };
    UsbvmPlan plan = { 0 };
    usbvm_plan(&in, &plan);
    free(devs);
    free(ops);
    size_t acted = 0;
    w->waiting = 0;
    for (size_t i = 0; i < plan.n; i++) {
        const UsbvmAction *a = &plan.actions[i];
        if (a->kind == USBVM_ACTION_ATTACH)
            act_attach(w, a);
        else if (a->kind == USBVM_ACTION_DETACH)
            act_detach(w, a);
        else
            act_wait(w, a);
        acted += a->kind == USBVM_ACTION_ATTACH || a->kind == USBVM_ACTION_DETACH;
    }
    usbvm_plan_clear(&plan);
    usbvm_watch_forget_gone(w);
    w->dirty = false;
    return acted;
}

/* ---- the main loop -------------------------------------------------------------------------- */

static void on_signal(Watch *w, int signo)
{
    if (signo != SIGHUP) {
        usbvm_logf(USBVM_LOG_INFO, NULL, "stopping on %s", strsignal(signo));
        w->quit = true;
        return;
    }
    UsbvmError err = { 0 };
    usbvm_notify("RELOADING=1");
    /* A rules file that fails to parse changes nothing (invariant 6). */
    int r = load_rules(w, &err);
    usbvm_notify("READY=1");
    if (r < 0) {
        usbvm_logf(USBVM_LOG_ERR, NULL, "reload refused, keeping the previous policy: %s",
                   err.message);
        return;
    }
    w->refetch_all = true;
    recheck_all(w);
}

static void handle(Watch *w, WatchMsg *m)
{
    bool current = m->conn_gen == w->conn_gen && w->conn;
    switch (m->kind) {
    case WATCH_MSG_UEVENT:
        usbvm_watch_handle_uevent(w, m->ud, m->action);
        break;
    case WATCH_MSG_SIGNAL:
        on_signal(w, m->signo);
        break;
    case WATCH_MSG_LIFECYCLE:
        if (current)
            lifecycle(w, m);
        break;
    case WATCH_MSG_DEVICE_ADDED:
        if (current)
            device_added(w, m);
        break;
    case WATCH_MSG_DEVICE_REMOVED:
    case WATCH_MSG_REMOVAL_FAILED:
        if (current)
            device_removed(w, m, m->kind == WATCH_MSG_REMOVAL_FAILED);
        break;
    case WATCH_MSG_CLOSED:
        if (current)
            connection_lost(w);
        break;
    case WATCH_MSG_JOB_DONE:
        job_done(w, m->job);
        break;
    }
}

/* Operations the executor has not answered yet; a call libvirt leaves unanswered for long is
 * reported once (the domain's QEMU may be stopped); the daemon goes on meanwhile. */
static size_t unanswered(Watch *w, uint64_t now)
{
    size_t n = 0;
    for (size_t i = 0; i < w->n_ops; i++) {
        WatchOp *op = &w->ops[i];
        if (op->answered)
            continue;
        n++;
        if (!op->slow_warned && now > op->since_usec + SLOW_CALL_USEC) {
            op->slow_warned = true;
            usbvm_logf(USBVM_LOG_WARNING, NULL,
                       "libvirt has not answered the %s of %s in '%s' for %llu s; other domains "
                       "go on meanwhile; check that the domain's QEMU responds",
                       op->kind == USBVM_OP_ATTACH ? "attach" : "detach", op->alias, op->domain,
                       (unsigned long long)((now - op->since_usec) / 1000000));
        }
    }
    return n;
}

static uint64_t next_deadline(Watch *w, uint64_t now, uint64_t stop_at)
{
    uint64_t d = now + SLOW_CALL_USEC;
    if (w->watchdog_usec && w->watchdog_at < d)
        d = w->watchdog_at;
    for (size_t i = 0; i < w->n_devs; i++)
        if (w->devs[i]->retry_at && w->devs[i]->retry_at < d)
            d = w->devs[i]->retry_at;
    if (w->reconnect_at && w->reconnect_at < d)
        d = w->reconnect_at;
    if (stop_at && stop_at < d)
        d = stop_at;
    return d;
}

/* --once, and the end of --detach-on-exit: done when nothing is in flight and no detach is
 * still waiting for libvirt (or the wait is over). */
static bool settled(Watch *w, uint64_t now, uint64_t stop_at)
{
    if (w->connecting || w->refetch_all || w->dirty || unanswered(w, now))
        return false;
    return pending_detaches(w) == 0 || (stop_at && now >= stop_at) || !w->conn;
}

static void turn(Watch *w, uint64_t stop_at)
{
    uint64_t now = usbvm_now_usec();
    WatchMsg *m = usbvm_watch_inbox_take(&w->inbox, next_deadline(w, now, stop_at));
    while (m) {
        WatchMsg *next = m->next;
        handle(w, m);
        usbvm_watch_msg_free(m);
        m = next;
    }
    now = usbvm_now_usec();
    if (w->watchdog_usec && now >= w->watchdog_at) {
        /* From the main loop itself: a main thread that stops turning stops feeding it. */
        usbvm_notify("WATCHDOG=1");
        w->watchdog_at = now + w->watchdog_usec;
    }
    for (size_t i = 0; i < w->n_devs; i++)
        if (w->devs[i]->retry_at && now >= w->devs[i]->retry_at) {
            w->devs[i]->retry_at = 0;
            w->dirty = true;
        }
    if (w->reconnect_at && now >= w->reconnect_at && !(w->opts->once && w->started))
        connect_start(w);
    if (w->refetch_all && w->conn) {
        w->refetch_all = false;
        submit(w, usbvm_watch_job_new(WATCH_JOB_SNAPSHOT, NULL));
    }
    if (w->started && w->dirty)
        plan_and_act(w);
    (void)unanswered(w, usbvm_now_usec());
}

/* ---- run ------------------------------------------------------------------------------------- */

static Watch *watch_new(const UsbvmWatchOptions *opts, UsbvmWatchSummary *summary)
{
    Watch *w = xcalloc(1, sizeof(*w));
    *w = (Watch){ .opts = opts,
                  .summary = summary,
                  .signal_fd = -1,
                  .udev_handle = -1,
                  .signal_handle = -1,
                  .cb = { -1, -1, -1, -1 } };
    usbvm_watch_inbox_init(&w->inbox);
    w->exec = usbvm_executor_new(&w->inbox);
    return w;
}

/* Stops the threads and frees the state. A libvirt call that is still stuck keeps its thread,
 * which still uses the executor and the inbox: then they are left to the process's exit, so
 * that SIGTERM ends the daemon whatever libvirt is doing. */
static void watch_free(Watch *w)
{
    usbvm_watch_loop_stop(w);
    bool idle = usbvm_executor_drain(w->exec, STOP_GRACE_MS);
    if (idle && w->conn) {
        disconnect(w);
        idle = usbvm_executor_drain(w->exec, STOP_GRACE_MS);
    }
    if (!idle) {
        usbvm_logf(USBVM_LOG_WARNING, NULL,
                   "a libvirt call is still unanswered; exiting without waiting for it");
        return;
    }
    usbvm_executor_free(w->exec);
    usbvm_watch_inbox_destroy(&w->inbox);
    for (size_t i = 0; i < w->n_devs; i++)
        usbvm_watch_device_free(w->devs[i]);
    free(w->devs);
    while (w->n_ops)
        op_remove(w, &w->ops[w->n_ops - 1]);
    free(w->ops);
    usbvm_snapshot_clear(&w->snapshot);
    usbvm_ruleset_free(w->rules);
    if (w->udev)
        udev_unref(w->udev);
    free(w);
}

static int start(Watch *w, UsbvmError *err)
{
    int r = load_rules(w, err);
    if (r < 0)
        return r;
    w->udev = udev_new();
    if (!w->udev)
        return usbvm_error_set(err, USBVM_E_FAILED, ENOMEM, "cannot talk to udev");
    if ((r = usbvm_watch_loop_start(w, err)) < 0)
        return r;
    connect_start(w);
    while (w->connecting && !w->quit)
        turn(w, 0);
    if (w->opts->once && !w->conn)
        return usbvm_error_set(err, USBVM_E_LIBVIRT, ECONNREFUSED,
                               "cannot reach libvirtd; start it ('systemctl start libvirtd') "
                               "and run 'usbvm watch --once' again");
    if ((r = usbvm_watch_enumerate(w, err)) < 0)
        return r;
    w->started = true;
    plan_and_act(w);
    return 0;
}

static void finish(Watch *w, int timeout_ms)
{
    uint64_t stop_at = usbvm_now_usec() + (uint64_t)timeout_ms * 1000;
    while (!settled(w, usbvm_now_usec(), stop_at))
        turn(w, stop_at);
}

int usbvm_watch_run(const UsbvmWatchOptions *opts, UsbvmWatchSummary *summary, UsbvmError *err)
{
    *summary = (UsbvmWatchSummary){ 0 };
    usbvm_virt_init(); /* registers libvirt's default event loop */
    Watch *w = watch_new(opts, summary);
    int r = start(w, err);
    if (r < 0 || w->quit)
        goto out;
    if (opts->once) {
        finish(w, opts->detach_timeout_ms);
        summary->waiting = w->waiting;
        goto out;
    }
    /* Ready once the start-up plan's calls are answered (or after a while: a domain that
     * hangs must not keep the service from starting). */
    uint64_t until = usbvm_now_usec() + READY_WAIT_USEC;
    while (!w->quit && unanswered(w, usbvm_now_usec()) && usbvm_now_usec() < until)
        turn(w, until);
    json_object *f = json_object_new_object();
    json_object_object_add(f, "event", json_object_new_string("ready"));
    json_object_object_add(f, "devices", json_object_new_int((int)w->n_devs));
    usbvm_logf(USBVM_LOG_INFO, f, "ready: watching %zu USB devices", w->n_devs);
    usbvm_notify("READY=1");
    w->watchdog_usec = usbvm_notify_watchdog_usec();
    w->watchdog_at = usbvm_now_usec();
    while (!w->quit)
        turn(w, 0);
    usbvm_notify("STOPPING=1");
    if (opts->detach_on_exit) {
        w->stopping = true;
        w->dirty = true;
        finish(w, opts->detach_timeout_ms);
    }
out:
    summary->pending = (unsigned)pending_detaches(w);
    watch_free(w);
    return r;
}
