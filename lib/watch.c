/* usbvm watch: the main thread. It owns the daemon's state (watch-state.h), reads the udev
 * monitor and the signalfd, takes the messages of the event-loop thread and of the executor,
 * and after each burst plans once and hands the actions to the executor. It never makes a
 * libvirt call itself, so it always answers. */
#include "notify.h"
#include "watch-state.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#define SLOW_CALL_USEC    (30ULL * 1000000)
#define STOP_GRACE_MS     500
#define READY_WAIT_USEC   (10ULL * 1000000)
#define CONNECT_WAIT_USEC (10ULL * 1000000)

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
        /* Refused: looked at again at its next event, not by a pending retry. */
        dev->held_back = true;
        dev->retry_at = 0;
        dev->backoff_ms = 0;
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
    _cleanup_free_ char *why =
        a->wait == USBVM_WAIT_AMBIGUOUS ? usbvm_device_ambiguity(dev->model) : NULL;
    if (why)
        text = why;
    if (text)
        usbvm_watch_note(w, dev, level, "wait", a->domain, text);
}

static void act_attach(Watch *w, const UsbvmAction *a)
{
    WatchDevice *dev = w->devs[a->device];
    if (w->opts->dry_run) {
        /* The prediction: one record per device and place, counted as an attach. */
        const char *mode = usbvm_mode_to_string(a->spec->mode);
        _cleanup_free_ char *key = xasprintf("dry run: attach to %s as %s", a->domain, mode);
        if (streq(dev->last_note, key))
            return;
        free(dev->last_note);
        dev->last_note = xstrdup(key);
        w->summary->attached++;
        usbvm_watch_record(USBVM_LOG_NOTICE, &(WatchRecord){ .event = "attach",
                                                             .device = dev->model,
                                                             .domain = a->domain,
                                                             .mode = mode,
                                                             .result = "dry-run" });
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
    usbvm_watch_op_add(w, USBVM_OP_ATTACH, a->domain, a->alias, NULL);
    usbvm_logf(USBVM_LOG_DEBUG, NULL, "attach %s -> %s: asking libvirt", a->alias, a->domain);
    j->planned_usec = usbvm_now_usec();
    usbvm_watch_submit(w, j);
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
        usbvm_watch_op_add(w, USBVM_OP_DETACH, a->domain, a->alias, a->why);
        w->ops[w->n_ops - 1].answered = true;
        w->ops[w->n_ops - 1].dry = true;
        return;
    }
    WatchJob *j = usbvm_watch_job_new(WATCH_JOB_DETACH, a->domain);
    j->model = model ? usbvm_device_dup(model) : NULL; /* a USB hostdev's serial, for the guest */
    j->domain = xstrdup(a->domain);
    j->alias = xstrdup(a->alias);
    j->why = xstrdup(a->why);
    usbvm_domdev_copy(&j->held, a->held); /* what the guest is asked about */
    usbvm_watch_op_add(w, USBVM_OP_DETACH, a->domain, a->alias, a->why);
    usbvm_watch_submit(w, j);
}

/* Two present devices with one identity (a clone of a stick's vendor, product and serial):
 * the policy acts on neither, and never detaches one because of the other. A plug, an unplug
 * or a re-read of either changes both, so the marks are made again over the whole set. */
static void mark_ambiguous(Watch *w)
{
    UsbvmDevice **present = xcalloc(w->n_devs + 1, sizeof(*present));
    size_t n = 0;
    for (size_t i = 0; i < w->n_devs; i++)
        if (!w->devs[i]->gone && w->devs[i]->model)
            present[n++] = w->devs[i]->model;
    usbvm_devices_mark_ambiguous(present, n);
    free(present);
}

/* Plans once over everything and hands the actions on; returns how many it handed on. */
static size_t plan_and_act(Watch *w)
{
    usbvm_watch_read_marked(w);
    mark_ambiguous(w);
    UsbvmPlanDevice *devs = xcalloc(w->n_devs + 1, sizeof(*devs));
    for (size_t i = 0; i < w->n_devs; i++) {
        const WatchDevice *d = w->devs[i];
        devs[i] = (UsbvmPlanDevice){ .model = d->model,
                                     .gone = d->gone,
                                     .keep = d->keep,
                                     .bound = d->model && d->model->bound,
                                     .held_back = d->held_back || d->retry_at,
                                     .ambiguous = !d->gone && d->model &&
                                                  usbvm_device_is_ambiguous(d->model) };
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
    /* Calls first, then the records: the plug records, then what the plan says in words (a
     * wait, a refusal, a dry run), in the order they always came. */
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < plan.n; i++) {
            const UsbvmAction *a = &plan.actions[i];
            bool call = (a->kind == USBVM_ACTION_ATTACH || a->kind == USBVM_ACTION_DETACH) &&
                        !w->opts->dry_run;
            if (call != (pass == 0))
                continue;
            if (a->kind == USBVM_ACTION_ATTACH)
                act_attach(w, a);
            else if (a->kind == USBVM_ACTION_DETACH)
                act_detach(w, a);
            else
                act_wait(w, a);
            acted += a->kind == USBVM_ACTION_ATTACH || a->kind == USBVM_ACTION_DETACH;
        }
        if (pass == 0)
            usbvm_watch_announce(w);
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
    usbvm_watch_recheck_all(w);
}

/* SIGHUP, SIGINT and SIGTERM through a signalfd, blocked before any thread starts so that every
 * thread inherits the mask and only the signalfd sees them. */
static int signals_open(Watch *w, UsbvmError *err)
{
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGHUP);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    pthread_sigmask(SIG_BLOCK, &mask, NULL);
    w->signal_fd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
    if (w->signal_fd < 0)
        return usbvm_error_set(err, USBVM_E_FAILED, errno, "cannot set up signal handling: %s",
                               strerror(errno));
    return 0;
}

static void read_signals(Watch *w)
{
    struct signalfd_siginfo si;
    while (read(w->signal_fd, &si, sizeof(si)) == (ssize_t)sizeof(si))
        on_signal(w, (int)si.ssi_signo);
}

/* Applies a message; true when it was kept for later (the caller must not free it). */
bool usbvm_watch_handle(Watch *w, WatchMsg *m)
{
    bool libvirt_event = m->kind == WATCH_MSG_LIFECYCLE || m->kind == WATCH_MSG_DEVICE_ADDED ||
                         m->kind == WATCH_MSG_DEVICE_REMOVED || m->kind == WATCH_MSG_REMOVAL_FAILED;
    if (libvirt_event && m->conn_gen == w->conn_gen && w->connecting && !w->conn) {
        WatchMsg **tail = &w->deferred; /* kept in order of arrival: few, and rare */
        while (*tail)
            tail = &(*tail)->next;
        m->next = NULL;
        *tail = m;
        return true;
    }
    bool current = m->conn_gen == w->conn_gen && w->conn;
    switch (m->kind) {
    case WATCH_MSG_LIFECYCLE:
        if (current)
            usbvm_watch_lifecycle(w, m);
        break;
    case WATCH_MSG_DEVICE_ADDED:
        if (current)
            usbvm_watch_device_added(w, m);
        break;
    case WATCH_MSG_DEVICE_REMOVED:
    case WATCH_MSG_REMOVAL_FAILED:
        if (current)
            usbvm_watch_device_removed(w, m, m->kind == WATCH_MSG_REMOVAL_FAILED);
        break;
    case WATCH_MSG_CLOSED:
        if (current)
            usbvm_watch_connection_lost(w);
        break;
    case WATCH_MSG_JOB_DONE:
        if (m->job->kind == WATCH_JOB_CONNECT)
            usbvm_watch_connected(w, m->job);
        else
            usbvm_watch_job_done(w, m->job);
        break;
    }
    return false;
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
    for (size_t i = 0; i < w->n_ops; i++)
        if (w->ops[i].ask_at && w->ops[i].ask_at < d)
            d = w->ops[i].ask_at;
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
    return usbvm_watch_pending_detaches(w) == 0 || (stop_at && now >= stop_at) || !w->conn;
}

/* Events of the new connection that came while its first full read ran: the read may or may
 * not show them, so they are applied on top of it (each is harmless when already shown). */
static void replay_deferred(Watch *w)
{
    WatchMsg *m = w->deferred;
    w->deferred = NULL;
    while (m) {
        WatchMsg *next = m->next;
        if (!usbvm_watch_handle(w, m))
            usbvm_watch_msg_free(m);
        m = next;
    }
}

static void turn(Watch *w, uint64_t stop_at)
{
    /* What changed outside a turn (stopping with --detach-on-exit) is planned before waiting. */
    if (w->started && w->dirty)
        plan_and_act(w);
    uint64_t now = usbvm_now_usec();
    int fds[] = { udev_monitor_get_fd(w->monitor), w->signal_fd };
    bool ready[ELEMENTSOF(fds)];
    usbvm_watch_inbox_wait(&w->inbox, next_deadline(w, now, stop_at), fds, ready, ELEMENTSOF(fds));
    if (ready[1])
        read_signals(w);
    if (ready[0])
        usbvm_watch_receive_uevents(w);
    WatchMsg *m = usbvm_watch_inbox_take(&w->inbox);
    while (m) {
        WatchMsg *next = m->next;
        if (!usbvm_watch_handle(w, m))
            usbvm_watch_msg_free(m);
        m = next;
    }
    if (w->replay) {
        w->replay = false;
        replay_deferred(w);
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
    for (size_t i = 0; i < w->n_ops;)
        if (w->ops[i].ask_at && now >= w->ops[i].ask_at) {
            /* No removal after the other request: this detach is planned again, and asked. */
            usbvm_watch_op_remove(w, &w->ops[i]);
            w->dirty = true;
        } else {
            i++;
        }
    if (w->reconnect_at && now >= w->reconnect_at && !(w->opts->once && w->started))
        usbvm_watch_connect_start(w);
    if (w->refetch_all && w->conn) {
        w->refetch_all = false;
        usbvm_watch_submit(w, usbvm_watch_job_new(WATCH_JOB_SNAPSHOT, NULL));
    }
    if (w->started && w->dirty)
        plan_and_act(w);
    (void)unanswered(w, usbvm_now_usec());
}

/* ---- run ------------------------------------------------------------------------------------- */

static Watch *watch_new(const UsbvmWatchOptions *opts, UsbvmWatchSummary *summary)
{
    Watch *w = xcalloc(1, sizeof(*w));
    *w = (Watch){ .opts = opts, .summary = summary, .signal_fd = -1, .cb = { -1, -1, -1, -1 } };
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
        usbvm_watch_disconnect(w);
        idle = usbvm_executor_drain(w->exec, STOP_GRACE_MS);
    }
    if (!idle) {
        usbvm_logf(USBVM_LOG_WARNING, NULL,
                   "a libvirt call is still unanswered; exiting without waiting for it");
        return;
    }
    usbvm_watch_drop_deferred(w);
    usbvm_executor_free(w->exec);
    for (WatchMsg *m = usbvm_watch_inbox_take(&w->inbox), *next; m; m = next) {
        next = m->next;
        usbvm_watch_msg_free(m);
    }
    usbvm_watch_inbox_destroy(&w->inbox);
    for (size_t i = 0; i < w->n_devs; i++)
        usbvm_watch_device_free(w->devs[i]);
    free(w->devs);
    while (w->n_ops)
        usbvm_watch_op_remove(w, &w->ops[w->n_ops - 1]);
    free(w->ops);
    usbvm_snapshot_clear(&w->snapshot);
    usbvm_ruleset_free(w->rules);
    if (w->signal_fd >= 0)
        close(w->signal_fd);
    if (w->monitor)
        udev_monitor_unref(w->monitor);
    if (w->udev)
        udev_unref(w->udev);
    usbvm_host_use_cache_free(w->host_use);
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
    w->host_use = usbvm_host_use_cache_new(NULL);
    if ((r = usbvm_watch_monitor_open(w, err)) < 0 || (r = signals_open(w, err)) < 0 ||
        (r = usbvm_watch_loop_start(w, err)) < 0)
        return r;
    /* Bounded: a libvirtd that accepts and never answers must not keep the daemon from
     * watching; the connect goes on on its own thread and its answer comes when it comes. */
    usbvm_watch_connect_start(w);
    uint64_t until = usbvm_now_usec() + CONNECT_WAIT_USEC;
    while (w->connecting && !w->quit && usbvm_now_usec() < until)
        turn(w, until);
    if (w->opts->once && !w->conn) {
        /* The connection's own words: which URI, why, and what to do about it. */
        if (w->connecting)
            return usbvm_error_set(err, USBVM_E_LIBVIRT, ETIMEDOUT,
                                   "libvirtd does not answer; check that it runs "
                                   "('systemctl status libvirtd') and run 'usbvm watch --once' "
                                   "again");
        if (err && w->connect_err.message[0])
            *err = w->connect_err;
        else
            usbvm_error_set(err, USBVM_E_LIBVIRT, ECONNREFUSED, "cannot connect to libvirt");
        return -ECONNREFUSED;
    }
    if (w->connecting)
        usbvm_logf(USBVM_LOG_WARNING, NULL,
                   "libvirtd has not answered for %llu s; watching devices meanwhile, and "
                   "attaching once it answers",
                   (unsigned long long)(CONNECT_WAIT_USEC / 1000000));
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
    summary->pending = (unsigned)usbvm_watch_pending_detaches(w);
    watch_free(w);
    return r;
}
