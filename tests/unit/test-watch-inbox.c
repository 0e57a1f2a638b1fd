/* The main thread's inbox (lib/watch-inbox.c): other threads post, the main thread waits on it
 * beside its own descriptors (the udev monitor, the signalfd) and takes everything at once. A
 * message posted at any moment wakes the next wait, however the post falls against an earlier
 * wait and take; a readable descriptor is said so; a wait with nothing to do ends at its
 * deadline, never before it. */
#include "watch-state.h"

#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <unistd.h>

#include <cmocka.h>

#define FAR_USEC (10ULL * 1000000) /* a deadline a wait that has work must not reach */

static WatchMsg *msg(int event)
{
    WatchMsg *m = xcalloc(1, sizeof(*m));
    m->kind = WATCH_MSG_LIFECYCLE;
    m->event = event;
    return m;
}

static size_t take_all(WatchInbox *in, int *events, size_t max)
{
    size_t n = 0;
    for (WatchMsg *m = usbvm_watch_inbox_take(in), *next; m; m = next) {
        next = m->next;
        if (n < max)
            events[n] = m->event;
        n++;
        free(m);
    }
    return n;
}

/* Waits with nothing but the inbox; true when it ended before the far deadline. */
static bool wait_inbox(WatchInbox *in)
{
    uint64_t deadline = usbvm_now_usec() + FAR_USEC;
    usbvm_watch_inbox_wait(in, deadline, NULL, NULL, 0);
    return usbvm_now_usec() < deadline;
}

static void *poster(void *opaque)
{
    usbvm_watch_inbox_post(opaque, msg(7));
    return NULL;
}

static void test_post_from_another_thread(void **state)
{
    (void)state;
    WatchInbox in;
    usbvm_watch_inbox_init(&in);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, poster, &in), 0);
    assert_true(wait_inbox(&in)); /* woken by the post, whenever it came */
    pthread_join(t, NULL);
    int ev[4];
    assert_int_equal(take_all(&in, ev, 4), 1);
    assert_int_equal(ev[0], 7);
    usbvm_watch_inbox_destroy(&in);
}

static void test_batches_and_no_lost_wakeup(void **state)
{
    (void)state;
    WatchInbox in;
    usbvm_watch_inbox_init(&in);
    usbvm_watch_inbox_post(&in, msg(1));
    assert_true(wait_inbox(&in));
    usbvm_watch_inbox_post(&in, msg(2)); /* between the wait and the take: same batch */
    int ev[4];
    assert_int_equal(take_all(&in, ev, 4), 2);
    assert_int_equal(ev[0], 1);
    assert_int_equal(ev[1], 2);
    /* Emptied: a post right after the take wakes the next wait. */
    usbvm_watch_inbox_post(&in, msg(3));
    assert_true(wait_inbox(&in));
    assert_int_equal(take_all(&in, ev, 4), 1);
    assert_int_equal(ev[0], 3);
    /* Nothing left, nothing pending: the next wait lasts until its deadline. */
    uint64_t deadline = usbvm_now_usec() + 20000;
    usbvm_watch_inbox_wait(&in, deadline, NULL, NULL, 0);
    assert_true(usbvm_now_usec() >= deadline);
    assert_null(usbvm_watch_inbox_take(&in));
    usbvm_watch_inbox_destroy(&in);
}

static void test_descriptor_ready(void **state)
{
    (void)state;
    WatchInbox in;
    usbvm_watch_inbox_init(&in);
    int a[2], b[2];
    assert_int_equal(pipe(a), 0);
    assert_int_equal(pipe(b), 0);
    assert_int_equal(write(b[1], "x", 1), 1);
    int fds[] = { a[0], b[0] };
    bool ready[] = { true, false };
    uint64_t deadline = usbvm_now_usec() + FAR_USEC;
    usbvm_watch_inbox_wait(&in, deadline, fds, ready, 2);
    assert_true(usbvm_now_usec() < deadline);
    assert_false(ready[0]);
    assert_true(ready[1]);
    assert_null(usbvm_watch_inbox_take(&in));
    for (size_t i = 0; i < 2; i++) {
        close(a[i]);
        close(b[i]);
    }
    usbvm_watch_inbox_destroy(&in);
}

static void test_deadline_never_early(void **state)
{
    (void)state;
    WatchInbox in;
    usbvm_watch_inbox_init(&in);
    int p[2];
    assert_int_equal(pipe(p), 0);
    bool ready[] = { true };
    uint64_t deadline = usbvm_now_usec() + 20000;
    usbvm_watch_inbox_wait(&in, deadline, &p[0], ready, 1);
    assert_true(usbvm_now_usec() >= deadline); /* poll's milliseconds are rounded up */
    assert_false(ready[0]);
    assert_null(usbvm_watch_inbox_take(&in));
    close(p[0]);
    close(p[1]);
    usbvm_watch_inbox_destroy(&in);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_post_from_another_thread),
        cmocka_unit_test(test_batches_and_no_lost_wakeup),
        cmocka_unit_test(test_descriptor_ready),
        cmocka_unit_test(test_deadline_never_early),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
