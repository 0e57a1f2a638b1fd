/* The executor: libvirt calls off the main thread, one queue per domain (and one general queue
 * for the connection and full reads). A queue has a thread while it has work, and keeps it idle
 * for LINGER_USEC after: a plug's attach then wakes a waiting thread instead of starting one. A
 * new thread waits for a core behind the threads already running: 0.55 ms from the submit to the
 * job's start (median of 25 plugs), 0.06 to 0.23 ms for a woken one. A call that libvirt does not
 * answer (a domain whose QEMU is stopped, a frozen libvirtd) holds up its own queue only. Answers
 * go back to the main thread's inbox. */
#include "sync.h"
#include "watch-state.h"

#include <errno.h>
#include <string.h>
#include <time.h>

#define LINGER_USEC (60 * 1000000ULL)

typedef struct ExecQueue {
    char *key; /* domain name, "" for the general queue */
    WatchJob *head, **tail;
    bool running;  /* has work: counted in busy */
    bool threaded; /* has a thread, running or idle */
    pthread_cond_t wake;
    /* A domain's queue has a connection of its own: one libvirt client connection serialises
     * its callers behind whichever call waits (seen: another domain's attach took 5-10 s while
     * one domain's QEMU was stopped, 30-150 ms with a connection of its own). */
    virConnectPtr conn;
    unsigned conn_gen;
    WatchDomCache cache; /* the domain's handle and view on conn (watch-state.h) */
    char **removed; /* removals libvirt confirmed during a job, for the view to drop after it */
    struct ExecQueue *next;
} ExecQueue;

struct UsbvmExecutor {
    pthread_mutex_t lock;
    pthread_cond_t idle;
    ExecQueue *queues;
    unsigned busy;    /* queues with work */
    unsigned threads; /* queues with a thread */
    bool stopping;    /* idle threads end */
    WatchInbox *inbox;
};

typedef struct Worker {
    UsbvmExecutor *ex;
    ExecQueue *q;
} Worker;

UsbvmExecutor *usbvm_executor_new(WatchInbox *inbox)
{
    UsbvmExecutor *ex = xcalloc(1, sizeof(*ex));
    pthread_mutex_init(&ex->lock, NULL);
    usbvm_cond_init(&ex->idle);
    ex->inbox = inbox;
    return ex;
}

static void cache_drop(ExecQueue *q)
{
    if (q->cache.dom)
        virDomainFree(q->cache.dom);
    q->cache.dom = NULL;
    usbvm_domview_forget(q->cache.view);
}

/* The connection a job's calls use: its queue's own for a domain's queue, opened on first use
 * and again after a reconnect; the shared one when that fails and for the general queue. Only
 * the queue's one thread touches it. */
static virConnectPtr queue_conn(ExecQueue *q, const WatchJob *j)
{
    if (!q->key[0] || !j->conn)
        return j->conn;
    if (q->conn && q->conn_gen == j->conn_gen)
        return q->conn;
    cache_drop(q);
    if (q->conn)
        virConnectClose(q->conn);
    q->conn = NULL;
    UsbvmError err = { 0 };
    if (usbvm_virt_open(j->uri, &q->conn, &err) < 0)
        return j->conn;
    /* Keepalive runs on the event-loop thread: a frozen libvirtd fails these calls too. */
    virConnectSetKeepAlive(q->conn, 5, 3);
    q->conn_gen = j->conn_gen;
    return q->conn;
}

/* The removals libvirt confirmed while the queue's thread ran a job, out of its view. */
static void drop_removed(ExecQueue *q, char **removed)
{
    for (size_t i = 0; removed && removed[i]; i++)
        usbvm_domview_drop(q->cache.view, removed[i]);
    usbvm_strv_free(removed);
}

static void *worker_main(void *opaque)
{
    Worker *wk = opaque;
    UsbvmExecutor *ex = wk->ex;
    ExecQueue *q = wk->q;
    free(wk);
    for (;;) {
        pthread_mutex_lock(&ex->lock);
        uint64_t until = usbvm_now_usec() + LINGER_USEC;
        while (!q->head) {
            if (q->running) {
                drop_removed(q, TAKE_PTR(q->removed));
                q->running = false;
                ex->busy--;
                pthread_cond_broadcast(&ex->idle);
            }
            if (ex->stopping || usbvm_now_usec() >= until) {
                q->threaded = false;
                ex->threads--;
                pthread_cond_broadcast(&ex->idle);
                pthread_mutex_unlock(&ex->lock);
                return NULL;
            }
            (void)usbvm_cond_wait_until(&q->wake, &ex->lock, until);
        }
        WatchJob *j = q->head;
        q->head = j->next;
        if (!q->head)
            q->tail = &q->head;
        char **removed = TAKE_PTR(q->removed);
        pthread_mutex_unlock(&ex->lock);
        drop_removed(q, removed);

        j->next = NULL;
        virConnectPtr conn = queue_conn(q, j);
        if (conn && conn == q->conn && !q->cache.view) {
            q->cache.view = usbvm_domview_new();
            q->cache.host_use = usbvm_host_use_cache_new(NULL);
        }
        usbvm_watch_job_run(j, conn, conn && conn == q->conn ? &q->cache : NULL);
        j->done_usec = usbvm_now_usec();
        WatchMsg *m = xcalloc(1, sizeof(*m));
        m->kind = WATCH_MSG_JOB_DONE;
        m->conn_gen = j->conn_gen;
        m->job = j;
        usbvm_watch_inbox_post(ex->inbox, m);
    }
}

static ExecQueue *queue_get(UsbvmExecutor *ex, const char *key)
{
    for (ExecQueue *q = ex->queues; q; q = q->next)
        if (streq(q->key, key))
            return q;
    ExecQueue *q = xcalloc(1, sizeof(*q));
    q->key = xstrdup(key);
    q->tail = &q->head;
    usbvm_cond_init(&q->wake);
    q->next = ex->queues;
    ex->queues = q;
    return q;
}

void usbvm_executor_submit(UsbvmExecutor *ex, WatchJob *job)
{
    job->next = NULL;
    pthread_mutex_lock(&ex->lock);
    ExecQueue *q = queue_get(ex, job->queue ? job->queue : "");
    *q->tail = job;
    q->tail = &job->next;
    if (!q->running) {
        q->running = true;
        ex->busy++;
    }
    if (q->threaded) {
        pthread_cond_signal(&q->wake);
    } else {
        Worker *wk = xcalloc(1, sizeof(*wk));
        *wk = (Worker){ .ex = ex, .q = q };
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        pthread_t t;
        if (pthread_create(&t, &attr, worker_main, wk) != 0)
            abort(); /* as with a failed allocation: nothing sensible is left to do */
        pthread_attr_destroy(&attr);
        q->threaded = true;
        ex->threads++;
    }
    pthread_mutex_unlock(&ex->lock);
}

bool usbvm_executor_drain(UsbvmExecutor *ex, int timeout_ms)
{
    uint64_t deadline = usbvm_now_usec() + (uint64_t)timeout_ms * 1000;
    pthread_mutex_lock(&ex->lock);
    while (ex->busy > 0)
        if (usbvm_cond_wait_until(&ex->idle, &ex->lock, deadline))
            break;
    bool idle = ex->busy == 0;
    pthread_mutex_unlock(&ex->lock);
    return idle;
}

void usbvm_executor_device_removed(UsbvmExecutor *ex, const char *domain, const char *alias)
{
    pthread_mutex_lock(&ex->lock);
    for (ExecQueue *q = ex->queues; q; q = q->next)
        if (q->key[0] && streq(q->key, domain)) {
            /* An idle queue's view is no thread's: drop it now. A busy one's thread drops it
             * when it takes its next job, so the list holds at most what one job's time saw. */
            if (q->running)
                q->removed = usbvm_strv_push(q->removed, alias);
            else
                usbvm_domview_drop(q->cache.view, alias);
            break;
        }
    pthread_mutex_unlock(&ex->lock);
}

void usbvm_executor_free(UsbvmExecutor *ex)
{
    if (!ex)
        return;
    /* Idle threads are told to end, and waited for: none is in a call (drained before). */
    pthread_mutex_lock(&ex->lock);
    ex->stopping = true;
    for (ExecQueue *q = ex->queues; q; q = q->next)
        pthread_cond_signal(&q->wake);
    while (ex->threads > 0)
        pthread_cond_wait(&ex->idle, &ex->lock);
    pthread_mutex_unlock(&ex->lock);
    while (ex->queues) {
        ExecQueue *q = ex->queues;
        ex->queues = q->next;
        while (q->head) {
            WatchJob *j = q->head;
            q->head = j->next;
            usbvm_watch_job_free(j);
        }
        cache_drop(q);
        usbvm_domview_free(q->cache.view);
        usbvm_host_use_cache_free(q->cache.host_use);
        usbvm_strv_free(q->removed);
        if (q->conn)
            virConnectClose(q->conn);
        pthread_cond_destroy(&q->wake);
        free(q->key);
        free(q);
    }
    pthread_mutex_destroy(&ex->lock);
    pthread_cond_destroy(&ex->idle);
    free(ex);
}
