/* The floor for tests/bench/bench-attach.sh: the same device XML attached and detached with
 * the bare libvirt API, no safety checks, no udev. Times only the API calls (and, for detach,
 * the wait for libvirt's DEVICE_REMOVED event), in microseconds, one number per line.
 *
 *   bench-attach-raw attach URI DOMAIN XMLFILE
 *   bench-attach-raw detach URI DOMAIN ALIAS          (waits for DEVICE_REMOVED, 10 s max)
 *   bench-attach-raw cycle URI DOMAIN XMLFILE ALIAS N (N x attach+detach on one connection:
 *                                                       prints "attach_us detach_us")
 *   bench-attach-raw wait-gone URI DOMAIN ALIAS       (no timing; exits once the alias is gone)
 *   bench-attach-raw attach-all URI DOMAIN XMLFILE... (one after the other on one connection:
 *                                                       prints the total)
 *   bench-attach-raw listen-cycle URI DOMAIN XMLFILE ALIAS N
 *       cycle, while a second connection follows the domain events a daemon that keeps up with
 *       libvirt follows (lifecycle, device added, removed, removal failed: what usbvm watch
 *       registers), on an event-loop thread, as virsh and usbvm watch run it. libvirtd then
 *       sends each device-added event out during the call.
 *   bench-attach-raw idle-cycle URI DOMAIN XMLFILE ALIAS N GAP_MS
 *       cycle, with GAP_MS milliseconds of doing nothing before each attach, as between two
 *       plugs on a host (bench-idle.sh).
 *   bench-attach-raw step-cycle URI DOMAIN XMLFILE ALIAS
 *       cycle, one attach+detach per line read from stdin (until EOF), its line printed at
 *       once: the caller plugs the testbed's stick before each line and pulls it after the
 *       answer, so that the bare call runs amid the same sysfs churn as a plug under watch.
 *   bench-attach-raw on-uevent URI DOMAIN XMLFILE ALIAS
 *       the least any daemon does on a plug: a udev monitor for USB devices, and on the first
 *       "add" of a device the bare call at once (XML ready, connection open, nothing read,
 *       nothing checked); prints "ready", then per plug the CLOCK_MONOTONIC microsecond at which
 *       the call returned and the call's own time; on the device's "remove" detaches (waits
 *       for DEVICE_REMOVED) and prints "detached". Ends at EOF on stdin. Run it as usbvm watch
 *       runs in the testbed (umockdev's preload), so that it gets the same uevents the same way.
 */
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <poll.h>
#include <pthread.h>
#include <libudev.h>

static void quiet(void *u, virErrorPtr e)
{
}

static long long now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000000LL + ts.tv_nsec / 1000;
}

static void die(const char *what)
{
    fprintf(stderr, "bench-attach-raw: %s: %s\n", what, virGetLastErrorMessage());
    exit(1);
}

typedef struct {
    const char *alias;
    bool removed, timed_out;
} Wait;

/* listen-cycle: the event loop runs on its own thread, and a detach waits on this. */
static bool loop_thread;
static pthread_mutex_t wait_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wait_cond = PTHREAD_COND_INITIALIZER;

static void on_removed(virConnectPtr c, virDomainPtr d, const char *alias, void *opaque)
{
    Wait *w = opaque;
    pthread_mutex_lock(&wait_lock);
    if (strcmp(alias, w->alias) == 0)
        w->removed = true;
    pthread_cond_broadcast(&wait_cond);
    pthread_mutex_unlock(&wait_lock);
}

static void *loop_main(void *opaque)
{
    for (;;)
        if (virEventRunDefaultImpl() < 0)
            die("event loop");
    return NULL;
}

static void on_device(virConnectPtr c, virDomainPtr d, const char *alias, void *opaque)
{
}

static int on_lifecycle(virConnectPtr c, virDomainPtr d, int event, int detail, void *opaque)
{
    return 0;
}

/* A second connection with the callbacks usbvm watch registers, for every domain. */
static void listen_start(const char *uri)
{
    virConnectPtr c = virConnectOpen(uri);
    if (!c)
        die("connect");
    int ids[] = { VIR_DOMAIN_EVENT_ID_DEVICE_ADDED, VIR_DOMAIN_EVENT_ID_DEVICE_REMOVED,
                  VIR_DOMAIN_EVENT_ID_DEVICE_REMOVAL_FAILED };
    for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++)
        if (virConnectDomainEventRegisterAny(c, NULL, ids[i], VIR_DOMAIN_EVENT_CALLBACK(on_device),
                                             NULL, NULL) < 0)
            die("event register");
    if (virConnectDomainEventRegisterAny(c, NULL, VIR_DOMAIN_EVENT_ID_LIFECYCLE,
                                         VIR_DOMAIN_EVENT_CALLBACK(on_lifecycle), NULL, NULL) < 0)
        die("event register");
    pthread_t t;
    if (pthread_create(&t, NULL, loop_main, NULL) != 0)
        die("thread");
    loop_thread = true;
}

static void on_timeout(int t, void *opaque)
{
    ((Wait *)opaque)->timed_out = true;
}

static bool alias_live(virDomainPtr dom, const char *alias)
{
    char *xml = virDomainGetXMLDesc(dom, 0);
    if (!xml)
        die("dumpxml");
    char needle[256];
    snprintf(needle, sizeof(needle), "<alias name='%s'/>", alias);
    bool found = strstr(xml, needle) != NULL;
    free(xml);
    return found;
}

/* Registers first, then asks (if do_detach) or looks (the alias may be gone already). */
static long long detach_wait(virConnectPtr conn, virDomainPtr dom, const char *alias,
                             bool do_detach)
{
    Wait w = { .alias = alias };
    int cb = virConnectDomainEventRegisterAny(conn, dom, VIR_DOMAIN_EVENT_ID_DEVICE_REMOVED,
                                              VIR_DOMAIN_EVENT_CALLBACK(on_removed), &w, NULL);
    if (cb < 0)
        die("event register");
    long long t0 = now_us();
    if (do_detach) {
        if (virDomainDetachDeviceAlias(dom, alias, VIR_DOMAIN_AFFECT_LIVE) < 0)
            die("detach");
    } else if (!alias_live(dom, alias)) {
        w.removed = true;
    }
    long long t1;
    if (loop_thread) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += 10;
        pthread_mutex_lock(&wait_lock);
        while (!w.removed && !w.timed_out)
            w.timed_out = pthread_cond_timedwait(&wait_cond, &wait_lock, &until) != 0;
        pthread_mutex_unlock(&wait_lock);
        t1 = now_us();
    } else {
        int timer = virEventAddTimeout(10000, on_timeout, &w, NULL);
        while (!w.removed && !w.timed_out)
            if (virEventRunDefaultImpl() < 0)
                die("event loop");
        t1 = now_us();
        virEventRemoveTimeout(timer);
    }
    virConnectDomainEventDeregisterAny(conn, cb);
    if (!w.removed && alias_live(dom, alias)) {
        fprintf(stderr, "bench-attach-raw: '%s' not removed within 10 s\n", alias);
        exit(5);
    }
    return t1 - t0;
}

/* on-uevent: the call starts in the same wakeup as the device's first uevent. */
static void on_uevent(virConnectPtr conn, virDomainPtr dom, const char *xml, const char *alias)
{
    struct udev *udev = udev_new();
    struct udev_monitor *mon = udev ? udev_monitor_new_from_netlink(udev, "udev") : NULL;
    if (!mon || udev_monitor_filter_add_match_subsystem_devtype(mon, "usb", "usb_device") < 0 ||
        udev_monitor_enable_receiving(mon) < 0) {
        fprintf(stderr, "bench-attach-raw: cannot open a udev monitor\n");
        exit(1);
    }
    printf("ready\n");
    fflush(stdout);
    bool in = false;
    struct pollfd fds[] = { { .fd = udev_monitor_get_fd(mon), .events = POLLIN },
                            { .fd = 0, .events = POLLIN } };
    for (;;) {
        if (poll(fds, 2, -1) < 0)
            continue;
        if (fds[1].revents) {
            char line[64];
            if (!fgets(line, sizeof(line), stdin))
                break;
        }
        /* One per wakeup: the socket umockdev's preload puts in place may block. */
        struct udev_device *d = fds[0].revents ? udev_monitor_receive_device(mon) : NULL;
        if (d) {
            const char *action = udev_device_get_action(d);
            if (!in && action && strcmp(action, "add") == 0) {
                long long t0 = now_us();
                if (virDomainAttachDeviceFlags(dom, xml, VIR_DOMAIN_AFFECT_LIVE) < 0)
                    die("attach");
                long long t1 = now_us();
                in = true;
                printf("%lld %lld\n", t1, t1 - t0);
                fflush(stdout);
            } else if (in && action && strcmp(action, "remove") == 0) {
                detach_wait(conn, dom, alias, true);
                in = false;
                printf("detached\n");
                fflush(stdout);
            }
            udev_device_unref(d);
        }
    }
    udev_monitor_unref(mon);
    udev_unref(udev);
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        perror(path);
        exit(1);
    }
    static char buf[65536];
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

int main(int argc, char **argv)
{
    if (argc < 5) {
        fprintf(stderr, "usage: see the comment at the top of bench-attach-raw.c\n");
        return 2;
    }
    virSetErrorFunc(NULL, quiet);
    virEventRegisterDefaultImpl();
    virConnectPtr conn = virConnectOpen(argv[2]);
    if (!conn)
        die("connect");
    virDomainPtr dom = virDomainLookupByName(conn, argv[3]);
    if (!dom)
        die("lookup");
    const char *cmd = argv[1];
    if (strcmp(cmd, "attach") == 0) {
        const char *xml = slurp(argv[4]);
        long long t0 = now_us();
        if (virDomainAttachDeviceFlags(dom, xml, VIR_DOMAIN_AFFECT_LIVE) < 0)
            die("attach");
        printf("%lld\n", now_us() - t0);
    } else if (strcmp(cmd, "attach-all") == 0) {
        long long total = 0;
        for (int i = 4; i < argc; i++) {
            const char *xml = slurp(argv[i]);
            long long t0 = now_us();
            if (virDomainAttachDeviceFlags(dom, xml, VIR_DOMAIN_AFFECT_LIVE) < 0)
                die("attach");
            total += now_us() - t0;
        }
        printf("%lld\n", total);
    } else if (strcmp(cmd, "detach") == 0) {
        printf("%lld\n", detach_wait(conn, dom, argv[4], true));
    } else if (strcmp(cmd, "on-uevent") == 0 && argc == 6) {
        on_uevent(conn, dom, slurp(argv[4]), argv[5]);
    } else if (strcmp(cmd, "wait-gone") == 0) {
        detach_wait(conn, dom, argv[4], false);
    } else if (((strcmp(cmd, "cycle") == 0 || strcmp(cmd, "listen-cycle") == 0) && argc == 7) ||
               (strcmp(cmd, "idle-cycle") == 0 && argc == 8) ||
               (strcmp(cmd, "step-cycle") == 0 && argc == 6)) {
        bool step = strcmp(cmd, "step-cycle") == 0;
        long gap_ms = argc == 8 ? atol(argv[7]) : 0;
        if (strcmp(cmd, "listen-cycle") == 0)
            listen_start(argv[2]);
        const char *xml = slurp(argv[4]);
        int n = step ? -1 : atoi(argv[6]);
        char go[64];
        for (int i = 0; step || i < n; i++) {
            if (step && !fgets(go, sizeof(go), stdin))
                break;
            if (gap_ms > 0) {
                struct timespec gap = { gap_ms / 1000, (gap_ms % 1000) * 1000000L };
                while (nanosleep(&gap, &gap) != 0 && errno == EINTR)
                    ;
            }
            long long t0 = now_us();
            if (virDomainAttachDeviceFlags(dom, xml, VIR_DOMAIN_AFFECT_LIVE) < 0)
                die("attach");
            long long ta = now_us() - t0;
            long long td = detach_wait(conn, dom, argv[5], true);
            printf("%lld %lld\n", ta, td);
            fflush(stdout);
        }
    } else {
        fprintf(stderr, "bench-attach-raw: unknown command '%s'\n", cmd);
        return 2;
    }
    virDomainFree(dom);
    virConnectClose(conn);
    return 0;
}
