/* The main thread's inbox: the event-loop thread and the executor's threads post messages, the
 * main thread takes them all at once, so a burst is planned once. */
#include "sync.h"
#include "watch-state.h"

#include <errno.h>
#include <time.h>

void usbvm_watch_inbox_init(WatchInbox *in)
{
    usbvm_cond_init(&in->cond);
    pthread_mutex_init(&in->lock, NULL);
    in->head = NULL;
    in->tail = &in->head;
}

void usbvm_watch_inbox_destroy(WatchInbox *in)
{
    pthread_mutex_destroy(&in->lock);
    pthread_cond_destroy(&in->cond);
}

void usbvm_watch_inbox_post(WatchInbox *in, WatchMsg *m)
{
    m->next = NULL;
    pthread_mutex_lock(&in->lock);
    *in->tail = m;
    in->tail = &m->next;
    pthread_cond_signal(&in->cond);
    pthread_mutex_unlock(&in->lock);
}

WatchMsg *usbvm_watch_inbox_take(WatchInbox *in, uint64_t deadline_usec)
{
    pthread_mutex_lock(&in->lock);
    while (!in->head) {
        if (deadline_usec == 0) {
            pthread_cond_wait(&in->cond, &in->lock);
            continue;
        }
        if (usbvm_cond_wait_until(&in->cond, &in->lock, deadline_usec))
            break;
    }
    WatchMsg *m = in->head;
    in->head = NULL;
    in->tail = &in->head;
    pthread_mutex_unlock(&in->lock);
    return m;
}
