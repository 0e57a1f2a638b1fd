/* The main thread's inbox: the event-loop thread and the executor's threads post messages, the
 * main thread takes them all at once, so a burst is planned once. The main thread waits on an
 * eventfd beside its own descriptors (the udev monitor, the signalfd), so that a uevent reaches
 * it with no other thread in between. */
#include "watch-state.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

void usbvm_watch_inbox_init(WatchInbox *in)
{
    pthread_mutex_init(&in->lock, NULL);
    in->head = NULL;
    in->tail = &in->head;
    in->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (in->wake_fd < 0)
        abort(); /* as with a failed allocation: out of descriptors at start, nothing to do */
}

void usbvm_watch_inbox_destroy(WatchInbox *in)
{
    pthread_mutex_destroy(&in->lock);
    close(in->wake_fd);
}

void usbvm_watch_inbox_post(WatchInbox *in, WatchMsg *m)
{
    m->next = NULL;
    pthread_mutex_lock(&in->lock);
    bool was_empty = !in->head;
    *in->tail = m;
    in->tail = &m->next;
    pthread_mutex_unlock(&in->lock);
    /* One wakeup per batch: the taker reads the eventfd before it takes the list, so a list
     * that is not empty always has its wakeup pending. */
    if (was_empty) {
        uint64_t one = 1;
        while (write(in->wake_fd, &one, sizeof(one)) < 0 && errno == EINTR)
            ;
    }
}

void usbvm_watch_inbox_wait(WatchInbox *in, uint64_t deadline_usec, const int *fds, bool *ready,
                            size_t n)
{
    struct pollfd p[4];
    size_t k = 0;
    p[k++] = (struct pollfd){ .fd = in->wake_fd, .events = POLLIN };
    for (size_t i = 0; i < n && k < ELEMENTSOF(p); i++) {
        ready[i] = false;
        p[k++] = (struct pollfd){ .fd = fds[i], .events = POLLIN };
    }
    for (;;) {
        int timeout = -1;
        if (deadline_usec) {
            uint64_t now = usbvm_now_usec();
            uint64_t left = deadline_usec > now ? deadline_usec - now : 0;
            timeout = (int)((left + 999) / 1000); /* never wakes early, so never spins */
        }
        int r = poll(p, k, timeout);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return; /* the deadline (or a failure, which the next turn meets again) */
        if (p[0].revents) {
            uint64_t v;
            (void)!read(in->wake_fd, &v, sizeof(v));
        }
        for (size_t i = 1; i < k; i++)
            ready[i - 1] = p[i].revents != 0;
        return;
    }
}

WatchMsg *usbvm_watch_inbox_take(WatchInbox *in)
{
    pthread_mutex_lock(&in->lock);
    WatchMsg *m = in->head;
    in->head = NULL;
    in->tail = &in->head;
    pthread_mutex_unlock(&in->lock);
    return m;
}
