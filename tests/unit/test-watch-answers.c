/* A detach of watch's, answered twice: by the executor's job (lib/watch-answers.c) and by
 * libvirt's own DEVICE_REMOVED or DEVICE_REMOVAL_FAILED event on the main connection
 * (lib/watch-conn.c). The two reach the main thread in either order. In every order the detach
 * is reported exactly once, with what the job saw (the guest's mounts), the operation ends, and
 * the domain's picture no longer holds the device. The event coming first was reported twice
 * before (the clean-clone run's test-guest-watch: two "detach" records). */
#include "hostlock.h"
#include "watch-state.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#define DOMAIN  "guest"
#define ALIAS   "ua-usbvm-0123456789abcdef"
#define MOUNTED "the guest had it mounted on /mnt/x (unflushed data may be lost in the guest)"

/* ---- the records watch writes, as JSON text ---------------------------------------------- */

static char *records[8];
static size_t n_records;

static void sink(UsbvmLogLevel level, const char *line, json_object *fields, void *userdata)
{
    (void)level;
    (void)line;
    (void)userdata;
    if (fields && n_records < ELEMENTSOF(records))
        records[n_records++] = xstrdup(json_object_to_json_string_ext(
            fields, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
}

static void records_clear(void)
{
    for (size_t i = 0; i < n_records; i++)
        free(records[i]);
    n_records = 0;
}

/* The records whose text holds every one of the NULL-terminated needles. */
static size_t records_with(const char *first, ...)
{
    size_t n = 0;
    for (size_t i = 0; i < n_records; i++) {
        bool all = true;
        va_list ap;
        va_start(ap, first);
        for (const char *s = first; s; s = va_arg(ap, const char *))
            all = all && strstr(records[i], s) != NULL;
        va_end(ap);
        n += all;
    }
    return n;
}

/* ---- a daemon's state with one detach in flight ------------------------------------------ */

typedef struct Fixture {
    Watch w;
    UsbvmWatchSummary summary;
    UsbvmWatchOptions opts;
} Fixture;

static int setup(void **state)
{
    Fixture *f = xcalloc(1, sizeof(*f));
    f->w.summary = &f->summary;
    f->w.opts = &f->opts;
    usbvm_watch_inbox_init(&f->w.inbox);
    f->w.exec = usbvm_executor_new(&f->w.inbox);
    f->w.conn = (virConnectPtr)f; /* never called here: it only says "connected" */
    f->w.conn_gen = 1;
    UsbvmDomDevList l = { 0 };
    UsbvmDomDev *d = usbvm_domdev_list_add(&l);
    d->domain = xstrdup(DOMAIN);
    d->alias = xstrdup(ALIAS);
    d->owned = true;
    d->kind = USBVM_DOMDEV_DISK;
    d->mode = USBVM_MODE_USB_DISK;
    usbvm_snapshot_set_domain(&f->w.snapshot, DOMAIN, &l);
    usbvm_watch_op_add(&f->w, USBVM_OP_DETACH, DOMAIN, ALIAS, "unplugged");
    usbvm_log_set_sink(sink, NULL);
    usbvm_log_set_max_level(USBVM_LOG_DEBUG);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    Fixture *f = *state;
    while (f->w.n_ops)
        usbvm_watch_op_remove(&f->w, &f->w.ops[0]);
    free(f->w.ops);
    usbvm_snapshot_clear(&f->w.snapshot);
    usbvm_executor_free(f->w.exec);
    usbvm_watch_inbox_destroy(&f->w.inbox);
    free(f);
    records_clear();
    usbvm_log_set_sink(NULL, NULL);
    return 0;
}

static void event(Fixture *f, bool failed)
{
    WatchMsg m = { .kind = failed ? WATCH_MSG_REMOVAL_FAILED : WATCH_MSG_DEVICE_REMOVED,
                   .conn_gen = 1,
                   .domain = DOMAIN,
                   .alias = ALIAS };
    usbvm_watch_device_removed(&f->w, &m, failed);
}

typedef enum Answer { DETACHED, PENDING, FAILED, AWAITED } Answer;

/* The job's answer: detached (its own wait saw the removal), asked and not confirmed in its
 * wait, or a failed call. It saw the guest's mount. */
static void answer(Fixture *f, Answer a)
{
    WatchJob *j = usbvm_watch_job_new(WATCH_JOB_DETACH, DOMAIN);
    j->conn_gen = 1;
    j->domain = xstrdup(DOMAIN);
    j->alias = xstrdup(ALIAS);
    j->why = xstrdup("unplugged");
    j->started_usec = 1000;
    j->done_usec = 143000;
    j->guest_mounted = true;
    if (a == DETACHED) {
        j->r = 0;
        j->res.state = USBVM_STATE_DETACHED;
    } else if (a == PENDING || a == AWAITED) {
        j->res.state = USBVM_STATE_PENDING;
        j->res.awaited_ms = a == AWAITED ? 1200 : 0;
        j->r = usbvm_error_set(&j->err, USBVM_E_PENDING, EINPROGRESS, "requested");
    } else {
        j->r = usbvm_error_set(&j->err, USBVM_E_LIBVIRT, EIO, "the connection broke");
    }
    snprintf(j->res.notes, sizeof(j->res.notes), "%s", MOUNTED);
    usbvm_watch_job_done(&f->w, j);
    usbvm_watch_job_free(j);
}

static void assert_ended(Fixture *f)
{
    assert_int_equal(f->w.n_ops, 0);
    assert_false(usbvm_snapshot_has(&f->w.snapshot, DOMAIN, ALIAS));
}

/* ---- the orders ----------------------------------------------------------------------------- */

static void test_event_then_detached_answer(void **state)
{
    Fixture *f = *state;
    event(f, false);
    assert_int_equal(n_records, 0); /* the job reports it */
    assert_int_equal(f->w.n_ops, 1);
    answer(f, DETACHED);
    assert_int_equal(records_with("\"event\":\"detach\"", NULL), 1);
    assert_int_equal(records_with("\"event\":\"detach\"", "\"result\":\"ok\"", MOUNTED, NULL), 1);
    assert_int_equal(f->summary.detached, 1);
    assert_ended(f);
}

static void test_event_then_pending_answer(void **state)
{
    Fixture *f = *state;
    event(f, false);
    answer(f, PENDING);
    /* The event already said it is gone: no "requested", nothing left waiting for it. */
    assert_int_equal(records_with("\"event\":\"detach\"", NULL), 1);
    assert_int_equal(records_with("\"event\":\"detach\"", "\"result\":\"ok\"", MOUNTED, NULL), 1);
    assert_int_equal(usbvm_watch_pending_detaches(&f->w), 0);
    assert_ended(f);
}

static void test_event_then_failed_answer(void **state)
{
    Fixture *f = *state;
    event(f, false);
    answer(f, FAILED); /* libvirt said it is gone: the call's own failure does not undo that */
    assert_int_equal(records_with("\"event\":\"detach\"", NULL), 1);
    assert_int_equal(records_with("\"event\":\"detach\"", "\"result\":\"ok\"", NULL), 1);
    assert_int_equal(f->summary.failed, 0);
    assert_ended(f);
}

static void test_refusal_then_pending_answer(void **state)
{
    Fixture *f = *state;
    event(f, true);
    assert_int_equal(n_records, 0);
    answer(f, PENDING);
    assert_int_equal(records_with("\"event\":\"detach\"", NULL), 1);
    assert_int_equal(records_with("\"event\":\"detach\"", "\"result\":\"failed\"",
                                  "the guest refused to release it", NULL),
                     1);
    assert_int_equal(f->summary.failed, 1);
    assert_int_equal(f->w.n_ops, 0);
    assert_true(usbvm_snapshot_has(&f->w.snapshot, DOMAIN, ALIAS)); /* it stays attached */
}

static void test_pending_answer_then_event(void **state)
{
    Fixture *f = *state;
    answer(f, PENDING);
    assert_int_equal(records_with("\"event\":\"detach\"", "\"result\":\"requested\"", NULL), 1);
    assert_int_equal(usbvm_watch_pending_detaches(&f->w), 1);
    event(f, false);
    assert_int_equal(records_with("\"event\":\"detach\"", "\"result\":\"ok\"", NULL), 1);
    assert_int_equal(records_with("\"event\":\"detach\"", NULL), 2); /* requested, then ok */
    assert_ended(f);
}

/* Not asked: another usbvm process asked 1.2 s before. Pending like an asked one, and due to
 * be planned (and asked) again once the settle time of that request is over. */
static void test_awaited_answer(void **state)
{
    Fixture *f = *state;
    answer(f, AWAITED);
    assert_int_equal(records_with("\"event\":\"detach\"", "\"result\":\"requested\"", NULL), 1);
    assert_int_equal(usbvm_watch_pending_detaches(&f->w), 1);
    WatchOp *op = usbvm_watch_op_find(&f->w, USBVM_OP_DETACH, DOMAIN, ALIAS);
    assert_non_null(op);
    assert_int_equal(op->ask_at,
                     143000 + (uint64_t)(USBVM_HOSTLOCK_DETACH_SETTLE_MS - 1200 + 1) * 1000);
    event(f, false); /* the other request's removal came: over */
    assert_int_equal(records_with("\"event\":\"detach\"", "\"result\":\"ok\"", NULL), 1);
    assert_ended(f);
}

/* An asked one has no such due time. */
static void test_pending_answer_no_ask_again(void **state)
{
    Fixture *f = *state;
    answer(f, PENDING);
    WatchOp *op = usbvm_watch_op_find(&f->w, USBVM_OP_DETACH, DOMAIN, ALIAS);
    assert_non_null(op);
    assert_int_equal(op->ask_at, 0);
}

static void test_detached_answer_then_event(void **state)
{
    Fixture *f = *state;
    answer(f, DETACHED);
    event(f, false); /* late: the operation is over, nothing more to say */
    assert_int_equal(records_with("\"event\":\"detach\"", NULL), 1);
    assert_int_equal(records_with("\"event\":\"detach\"", "\"result\":\"ok\"", MOUNTED, NULL), 1);
    assert_ended(f);
}

/* ---- an attach's answer: its record says when each step happened ------------------------ */

#define STICK "ua-usbvm-fedcba9876543210"

/* A stick watch knows, with an attach of it in flight. */
static WatchDevice *stick(Fixture *f)
{
    WatchDevice *d = xcalloc(1, sizeof(*d));
    d->syspath = xstrdup("/sys/devices/pci0000:00/0000:00:14.0/usb1/1-2");
    d->model = xcalloc(1, sizeof(*d->model));
    d->model->port = xstrdup("1-2");
    d->model->alias = xstrdup(STICK);
    f->w.devs = xrealloc(f->w.devs, (f->w.n_devs + 1) * sizeof(*f->w.devs));
    f->w.devs[f->w.n_devs++] = d;
    usbvm_watch_op_add(&f->w, USBVM_OP_ATTACH, DOMAIN, STICK, NULL);
    return d;
}

static WatchJob *attach_job(int r)
{
    WatchJob *j = usbvm_watch_job_new(WATCH_JOB_ATTACH, DOMAIN);
    j->conn_gen = 1;
    j->domain = xstrdup(DOMAIN);
    j->alias = xstrdup(STICK);
    j->spec.mode = USBVM_MODE_USB_DISK;
    j->event_usec = 5000;
    j->planned_usec = 5300;
    j->started_usec = 5400;
    j->done_usec = 15600;
    j->r = r;
    if (r == 0) {
        j->res.changed = true;
        j->ctx.called_usec = 5550;
        j->ctx.answered_usec = 15550;
    }
    return j;
}

static void free_devs(Fixture *f)
{
    for (size_t i = 0; i < f->w.n_devs; i++)
        usbvm_watch_device_free(f->w.devs[i]);
    free(f->w.devs);
    f->w.devs = NULL;
    f->w.n_devs = 0;
}

/* From the device's event to libvirt's answer, each step's CLOCK_MONOTONIC microsecond, so
 * that a slow attach says where its time went; "ms" stays the whole of it. */
static void test_attach_steps(void **state)
{
    Fixture *f = *state;
    stick(f);
    WatchJob *j = attach_job(0);
    usbvm_watch_job_done(&f->w, j);
    usbvm_watch_job_free(j);
    assert_int_equal(records_with("\"event\":\"attach\"", "\"result\":\"ok\"", "\"ms\":10,",
                                  "\"steps_usec\":{\"event\":5000,\"planned\":5300,"
                                  "\"started\":5400,\"called\":5550,\"answered\":15550}",
                                  NULL),
                     1);
    assert_null(usbvm_watch_op_find(&f->w, USBVM_OP_ATTACH, DOMAIN, STICK));
    free_devs(f);
}

/* Refused before any call (the disk is mounted on the host): the steps it never reached are
 * not there. */
static void test_attach_refused_steps(void **state)
{
    Fixture *f = *state;
    stick(f);
    WatchJob *j = attach_job(-EBUSY);
    usbvm_error_set(&j->err, USBVM_E_REFUSED, EBUSY, "/dev/sdb1 is mounted on /media/x");
    usbvm_watch_job_done(&f->w, j);
    usbvm_watch_job_free(j);
    assert_int_equal(records_with("\"event\":\"attach\"", "\"result\":\"refused\"",
                                  "\"steps_usec\":{\"event\":5000,\"planned\":5300,"
                                  "\"started\":5400}",
                                  NULL),
                     1);
    free_devs(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_event_then_detached_answer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_event_then_pending_answer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_event_then_failed_answer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refusal_then_pending_answer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pending_answer_then_event, setup, teardown),
        cmocka_unit_test_setup_teardown(test_detached_answer_then_event, setup, teardown),
        cmocka_unit_test_setup_teardown(test_awaited_answer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pending_answer_no_ask_again, setup, teardown),
        cmocka_unit_test_setup_teardown(test_attach_steps, setup, teardown),
        cmocka_unit_test_setup_teardown(test_attach_refused_steps, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
