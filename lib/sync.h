/* Condition variables on the monotonic clock, so that their deadlines are usbvm_now_usec()
 * values, which a change of the wall clock does not move. */
#pragma once

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

static inline void usbvm_cond_init(pthread_cond_t *c)
{
    pthread_condattr_t a;
    pthread_condattr_init(&a);
    pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
    pthread_cond_init(c, &a);
    pthread_condattr_destroy(&a);
}

/* Waits until signalled or deadline_usec (usbvm_now_usec()) passes; true when it passed. */
static inline bool usbvm_cond_wait_until(pthread_cond_t *c, pthread_mutex_t *m,
                                         uint64_t deadline_usec)
{
    struct timespec ts = { .tv_sec = (time_t)(deadline_usec / 1000000),
                           .tv_nsec = (long)(deadline_usec % 1000000) * 1000 };
    return pthread_cond_timedwait(c, m, &ts) == ETIMEDOUT;
}
