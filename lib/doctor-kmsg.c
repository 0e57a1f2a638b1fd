/* usbvm doctor: the kernel log. The USB core names the device ("usb 1-2: ..."), its
 * interfaces ("usb-storage 1-2:1.0: ...") and its port ("usb usb1-port2: ..." for a root hub
 * port, "usb 1-2-port4: ..." for port 4 of hub 1-2) in the prefix of each message, so the
 * lines about one port are found by that prefix, not by guessing from the text. */
#include "doctor.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

/* More than this many resets or disconnects in one boot is a device that keeps dropping. */
#define REPEAT_LIMIT 3
/* Enough lines to show the pattern without flooding the terminal. */
#define MAX_QUOTED 8

/* The cure for a bridge that fails under uas; the host check names it too. */
char *usbvm_doctor_uas_fix(const UsbvmDevice *d)
{
    char id[16] = "VVVV:PPPP";
    if (d)
        snprintf(id, sizeof(id), "%04x:%04x", d->vendor_id, d->product_id);
    return xasprintf("Make the kernel drive the disk with usb-storage instead of uas: put "
                     "'options usb-storage quirks=%s:u' in /etc/modprobe.d/usbvm-uas.conf, run "
                     "'update-initramfs -u' and replug the device.",
                     id);
}

static bool parse_u64_field(const char **p, const char *end, uint64_t *ret)
{
    uint64_t v = 0;
    const char *s = *p;
    if (s >= end || *s < '0' || *s > '9')
        return false;
    while (s < end && *s >= '0' && *s <= '9') {
        if (v > (UINT64_MAX - 9) / 10)
            return false;
        v = v * 10 + (uint64_t)(*s - '0');
        s++;
    }
    *p = s;
    *ret = v;
    return true;
}

int usbvm_kmsg_parse(const char *rec, size_t len, UsbvmKmsgRecord *ret)
{
    const char *p = rec, *end = rec + len;
    uint64_t prio, seq, usec;
    if (!parse_u64_field(&p, end, &prio) || p >= end || *p++ != ',' ||
        !parse_u64_field(&p, end, &seq) || p >= end || *p++ != ',' ||
        !parse_u64_field(&p, end, &usec) || p >= end || *p != ',')
        return -EINVAL;
    const char *semi = memchr(p, ';', (size_t)(end - p));
    if (!semi)
        return -EINVAL;
    const char *msg = semi + 1;
    const char *nl = memchr(msg, '\n', (size_t)(end - msg));
    *ret = (UsbvmKmsgRecord){
        .level = (unsigned)(prio & 7),
        .seq = seq,
        .usec = usec,
        .msg = msg,
        .msg_len = (size_t)((nl ? nl : end) - msg),
    };
    return 0;
}

/* "usb 1-2: text" -> subject "1-2", text "text". */
static bool split_subject(const char *msg, size_t len, const char **subj, size_t *subj_len,
                          const char **text)
{
    const char *end = msg + len;
    const char *sp = memchr(msg, ' ', len);
    if (!sp)
        return false;
    const char *s = sp + 1;
    const char *colon = NULL;
    for (const char *c = s; c + 1 < end; c++) {
        if (*c == ' ')
            return false;
        if (c[0] == ':' && c[1] == ' ') {
            colon = c;
            break;
        }
    }
    if (!colon)
        return false;
    *subj = s;
    *subj_len = (size_t)(colon - s);
    *text = colon + 2;
    return true;
}

static bool subject_is(const char *subj, size_t n, const char *want)
{
    return strlen(want) == n && memcmp(subj, want, n) == 0;
}

/* The kernel's name of the port device a USB device is plugged into. */
static char *port_device_name(const char *port)
{
    const char *dot = strrchr(port, '.');
    if (dot)
        return xasprintf("%.*s-port%s", (int)(dot - port), port, dot + 1);
    const char *dash = strchr(port, '-');
    if (!dash)
        return NULL;
    return xasprintf("usb%.*s-port%s", (int)(dash - port), port, dash + 1);
}

/* A hub interface in front of port: "1-0:1.0" is bus 1's root hub, "1-2:1.0" hub 1-2. */
static bool subject_is_upstream_hub(const char *subj, size_t n, const char *port)
{
    const char *colon = memchr(subj, ':', n);
    if (!colon)
        return false;
    size_t hub_len = (size_t)(colon - subj);
    const char *dash = strchr(port, '-');
    if (dash && hub_len == (size_t)(dash - port) + 2 && memcmp(subj, port, hub_len - 1) == 0 &&
        subj[hub_len - 1] == '0')
        return true; /* the root hub "B-0" */
    return hub_len < strlen(port) && memcmp(subj, port, hub_len) == 0 && port[hub_len] == '.';
}

static bool has(const char *text, size_t n, const char *needle)
{
    return memmem(text, n, needle, strlen(needle)) != NULL;
}

static UsbvmKmsgKind classify_text(const char *t, size_t n)
{
    if (has(t, n, "over-current"))
        return USBVM_KMSG_OVERCURRENT;
    if (has(t, n, "device descriptor read") || has(t, n, "device not accepting address") ||
        has(t, n, "unable to enumerate") || has(t, n, "Cannot enable") ||
        has(t, n, "can't set config") || has(t, n, "string descriptor 0 read error") ||
        has(t, n, "disabled by hub (EMI?)"))
        return USBVM_KMSG_PROTOCOL;
    if (has(t, n, "reset ") && has(t, n, "USB device number"))
        return USBVM_KMSG_RESET;
    if (has(t, n, "USB disconnect"))
        return USBVM_KMSG_DISCONNECT;
    if (has(t, n, "uas_eh_") || has(t, n, "uas_zap_pending"))
        return USBVM_KMSG_UAS;
    return USBVM_KMSG_INFO;
}

UsbvmKmsgKind usbvm_kmsg_classify(const char *msg, size_t len, const char *port)
{
    const char *subj, *text;
    size_t n;
    if (!port || !split_subject(msg, len, &subj, &n, &text))
        return USBVM_KMSG_NONE;
    size_t text_len = len - (size_t)(text - msg);
    size_t plen = strlen(port);
    _cleanup_free_ char *portdev = port_device_name(port);
    bool own = subject_is(subj, n, port) ||
               (n > plen && memcmp(subj, port, plen) == 0 && subj[plen] == ':') ||
               (portdev && subject_is(subj, n, portdev));
    if (own)
        return classify_text(text, text_len);
    if (subject_is_upstream_hub(subj, n, port) && has(text, text_len, "over-current"))
        return USBVM_KMSG_HUB_OVERCURRENT;
    return USBVM_KMSG_NONE;
}

static int read_device(int fd, UsbvmKmsgFn fn, void *userdata, const char *path, UsbvmError *err)
{
    /* Start at the oldest record still in the ring buffer (after the last clear). */
    lseek(fd, 0, SEEK_DATA);
    char buf[16384];
    for (;;) {
        ssize_t n = read(fd, buf, sizeof(buf));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EPIPE)
            continue; /* records were overwritten while we read: go on with the next */
        if (n < 0 && errno == EAGAIN)
            return 0; /* the end of the buffer: non-blocking, we never wait for new ones */
        if (n < 0)
            return usbvm_error_set(err, USBVM_E_FAILED, errno, "cannot read the kernel log %s: %s",
                                   path, strerror(errno));
        if (n == 0)
            return 0;
        UsbvmKmsgRecord r;
        if (usbvm_kmsg_parse(buf, (size_t)n, &r) == 0)
            fn(&r, userdata);
    }
}

static int read_file(int fd, UsbvmKmsgFn fn, void *userdata, const char *path, UsbvmError *err)
{
    _cleanup_fclose_ FILE *f = fdopen(fd, "r");
    if (!f) {
        close(fd);
        return usbvm_error_set(err, USBVM_E_FAILED, errno, "cannot read %s: %s", path,
                               strerror(errno));
    }
    _cleanup_free_ char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    while ((n = getline(&line, &cap, f)) > 0) {
        UsbvmKmsgRecord r;
        if (usbvm_kmsg_parse(line, (size_t)n, &r) == 0)
            fn(&r, userdata);
    }
    return 0;
}

int usbvm_kmsg_read(const char *path, UsbvmKmsgFn fn, void *userdata, UsbvmError *err)
{
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return usbvm_error_set(err, USBVM_E_FAILED, errno,
                               "cannot read the kernel log %s: %s; run as root (or set "
                               "kernel.dmesg_restrict=0)",
                               path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) == 0 && S_ISCHR(st.st_mode)) {
        int r = read_device(fd, fn, userdata, path, err);
        close(fd);
        return r;
    }
    return read_file(fd, fn, userdata, path, err);
}

/* ---- the kernel-log check ---- */

typedef struct KernelScan {
    const char *port;
    unsigned count[USBVM_KMSG_UAS + 1];
    char **quoted; /* the problem lines, the last MAX_QUOTED */
    size_t n_quoted;
} KernelScan;

static void scan_record(const UsbvmKmsgRecord *r, void *userdata)
{
    KernelScan *s = userdata;
    UsbvmKmsgKind k = usbvm_kmsg_classify(r->msg, r->msg_len, s->port);
    if (k == USBVM_KMSG_NONE)
        return;
    s->count[k]++;
    if (k == USBVM_KMSG_INFO)
        return;
    char *line = xasprintf("[%5llu.%06llu] %.*s", (unsigned long long)(r->usec / 1000000),
                           (unsigned long long)(r->usec % 1000000), (int)r->msg_len, r->msg);
    if (s->n_quoted == MAX_QUOTED) {
        free(s->quoted[0]);
        memmove(s->quoted, s->quoted + 1, (MAX_QUOTED - 1) * sizeof(char *));
        s->n_quoted--;
    }
    s->quoted = xrealloc(s->quoted, (s->n_quoted + 2) * sizeof(char *));
    s->quoted[s->n_quoted++] = line;
    s->quoted[s->n_quoted] = NULL;
}

static void add_cause(UsbvmBuf *found, UsbvmBuf *fix, const char *what, const char *todo)
{
    usbvm_buf_printf(found, "%s%s", found->len ? "; " : "", what);
    usbvm_buf_printf(fix, "%s%s", fix->len ? " " : "", todo);
}

void usbvm_doctor_kernel(const UsbvmDoctorPaths *paths, const UsbvmDoctorQuery *q, UsbvmChecks *out)
{
    KernelScan s = { .port = q->port };
    UsbvmError err = { 0 };
    if (usbvm_kmsg_read(paths->kmsg, scan_record, &s, &err) < 0) {
        usbvm_checks_add(out, "kernel-log", false, "Run usbvm doctor as root.", "%s", err.message);
        return;
    }
    const unsigned *c = s.count;
    _cleanup_(usbvm_buf_free) UsbvmBuf found = { 0 }, fix = { 0 };
    if (c[USBVM_KMSG_OVERCURRENT])
        add_cause(&found, &fix, "power problem: the port reports over-current",
                  "The device draws more current than the port gives: plug it into a powered "
                  "hub or another port, and unplug other bus-powered devices next to it.");
    if (c[USBVM_KMSG_HUB_OVERCURRENT])
        add_cause(&found, &fix, "hub problem: a hub in front of the port reports over-current",
                  "Give the hub its own power supply, or plug the device in without the hub.");
    if (c[USBVM_KMSG_PROTOCOL])
        add_cause(&found, &fix,
                  "cable or port problem: the device does not enumerate (descriptor read, "
                  "address or enable errors; -71 is a garbled signal)",
                  "Try another cable and another port, directly on the host (not a front "
                  "panel or an extension).");
    if (c[USBVM_KMSG_RESET] >= REPEAT_LIMIT || c[USBVM_KMSG_DISCONNECT] >= REPEAT_LIMIT) {
        _cleanup_free_ char *what =
            xasprintf("%s problem: %u resets and %u disconnects of the device",
                      strchr(q->port, '.') ? "hub or power" : "power or cable", c[USBVM_KMSG_RESET],
                      c[USBVM_KMSG_DISCONNECT]);
        add_cause(&found, &fix, what,
                  "A device that keeps resetting lacks power or signal: use a powered hub, a "
                  "shorter cable, or a port directly on the host.");
    }
    if (c[USBVM_KMSG_UAS]) {
        _cleanup_free_ char *todo = usbvm_doctor_uas_fix(q->device);
        add_cause(&found, &fix, "UAS problem: the uas driver had to abort commands", todo);
    }
    UsbvmCheck *k;
    if (found.len)
        k = usbvm_checks_add(out, "kernel-log", false, fix.data, "port %s: %s", q->port,
                             found.data);
    else
        k = usbvm_checks_add(out, "kernel-log", true, NULL,
                             "port %s: no USB errors in the kernel log (%u messages about it)",
                             q->port, c[USBVM_KMSG_INFO]);
    k->log = s.quoted;
}
