/* The daemon's bookkeeping: operations in flight, the jobs handed to the executor, the notes
 * logged once per reason. Main thread only. */
#include "watch-state.h"

#include <string.h>

/* Everything is looked at again: a reload, a domain start, a reconnect. A refusal for the
 * same reason is not logged again (the note stays): another domain starting is no news. */
void usbvm_watch_recheck_all(Watch *w)
{
    for (size_t i = 0; i < w->n_devs; i++)
        w->devs[i]->held_back = false;
    w->dirty = true;
}

WatchOp *usbvm_watch_op_find(Watch *w, UsbvmOpKind kind, const char *domain, const char *alias)
{
    for (size_t i = 0; i < w->n_ops; i++)
        if (w->ops[i].kind == kind && streq(w->ops[i].alias, alias) &&
            (!domain || streq(w->ops[i].domain, domain)))
            return &w->ops[i];
    return NULL;
}

void usbvm_watch_op_add(Watch *w, UsbvmOpKind kind, const char *domain, const char *alias,
                        const char *why)
{
    w->ops = xrealloc(w->ops, (w->n_ops + 1) * sizeof(*w->ops));
    w->ops[w->n_ops++] = (WatchOp){ .kind = kind,
                                    .domain = xstrdup(domain),
                                    .alias = xstrdup(alias),
                                    .why = why ? xstrdup(why) : NULL,
                                    .since_usec = usbvm_now_usec() };
}

void usbvm_watch_op_remove(Watch *w, WatchOp *op)
{
    free(op->domain);
    free(op->alias);
    free(op->why);
    size_t i = (size_t)(op - w->ops);
    memmove(op, op + 1, (w->n_ops - i - 1) * sizeof(*op));
    w->n_ops--;
}

void usbvm_watch_ops_drop_domain(Watch *w, const char *domain)
{
    for (size_t i = 0; i < w->n_ops;)
        if (w->ops[i].answered && streq(w->ops[i].domain, domain))
            usbvm_watch_op_remove(w, &w->ops[i]);
        else
            i++;
}

size_t usbvm_watch_pending_detaches(const Watch *w)
{
    size_t n = 0;
    for (size_t i = 0; i < w->n_ops; i++)
        n += w->ops[i].kind == USBVM_OP_DETACH && !w->ops[i].dry;
    return n;
}

void usbvm_watch_submit(Watch *w, WatchJob *j)
{
    if (w->conn && !j->conn) {
        j->conn = w->conn;
        virConnectRef(w->conn);
    }
    j->conn_gen = w->conn_gen;
    j->uri = w->opts->uri;
    usbvm_executor_submit(w->exec, j);
}

void usbvm_watch_note(Watch *w, WatchDevice *dev, UsbvmLogLevel level, const char *event,
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

/* "connected", "domain-started", "domain-stopped": "<words> <domain> <what>". */
void usbvm_watch_log_event(const char *event, const char *domain, const char *what)
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
