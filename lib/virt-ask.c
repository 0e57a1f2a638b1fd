/* Asking libvirt which devices the running domains hold, in a child process, while the caller
 * reads the devices. Loading libvirt's client library costs about 10 ms (57 libraries; see
 * virt-load.c), as much as reading 64 devices, so `usbvm list` does both at once.
 *
 * A child, not a thread: libvirt's libraries run constructors (GnuTLS's stats files) while the
 * dynamic loader holds its lock. A preloaded wrapper of libc that takes a lock of its own and
 * then asks the loader for the real function (umockdev's does, on the first call of each)
 * deadlocks against that from the other thread. A child has one thread and its own loader.
 *
 * The answer comes back over a pipe as one JSON object: {"error": {...}} or {"devices": [...]},
 * the fields of UsbvmDomDev. The strings came from libvirt's XML, hostile or not: json-c writes
 * and reads them back byte for byte. */
#include "virt.h"

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <signal.h>
#include <stddef.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* The fields of UsbvmDomDev on the pipe: one table, so that the child's writer and the parent's
 * reader cannot disagree on a field. */
typedef enum { F_STR, F_BOOL, F_INT } FieldType;
#define MEMBER_SIZE(m) sizeof(((UsbvmDomDev *)0)->m)
static const struct {
    const char *key;
    FieldType type;
    size_t offset, size; /* size: of an F_INT's member */
} fields[] = {
    { "domain", F_STR, offsetof(UsbvmDomDev, domain), 0 },
    { "alias", F_STR, offsetof(UsbvmDomDev, alias), 0 },
    { "owned", F_BOOL, offsetof(UsbvmDomDev, owned), 0 },
    { "kind", F_INT, offsetof(UsbvmDomDev, kind), MEMBER_SIZE(kind) },
    { "mode", F_INT, offsetof(UsbvmDomDev, mode), MEMBER_SIZE(mode) },
    { "vendor_id", F_INT, offsetof(UsbvmDomDev, vendor_id), MEMBER_SIZE(vendor_id) },
    { "product_id", F_INT, offsetof(UsbvmDomDev, product_id), MEMBER_SIZE(product_id) },
    { "bus", F_INT, offsetof(UsbvmDomDev, bus), MEMBER_SIZE(bus) },
    { "device", F_INT, offsetof(UsbvmDomDev, device), MEMBER_SIZE(device) },
    { "source", F_STR, offsetof(UsbvmDomDev, source), 0 },
    { "target", F_STR, offsetof(UsbvmDomDev, target), 0 },
    { "target_bus", F_STR, offsetof(UsbvmDomDev, target_bus), 0 },
    { "serial", F_STR, offsetof(UsbvmDomDev, serial), 0 },
    { "readonly", F_BOOL, offsetof(UsbvmDomDev, readonly), 0 },
};
_Static_assert(sizeof(UsbvmDomDevKind) == sizeof(unsigned) && sizeof(UsbvmMode) == sizeof(unsigned),
               "an F_INT member is a uint16_t or the size of an unsigned");

/* An F_INT member's value; its size is 2 or 4 (uint16_t, unsigned, an enum). */
static int64_t int_member(const void *p, size_t size)
{
    if (size == sizeof(uint16_t)) {
        uint16_t v;
        memcpy(&v, p, sizeof(v));
        return v;
    }
    unsigned v;
    memcpy(&v, p, sizeof(v));
    return v;
}

static void set_int_member(void *p, size_t size, int64_t value)
{
    if (size == sizeof(uint16_t)) {
        uint16_t v = (uint16_t)value;
        memcpy(p, &v, sizeof(v));
    } else {
        unsigned v = (unsigned)value;
        memcpy(p, &v, sizeof(v));
    }
}

static json_object *domdev_to_json(const UsbvmDomDev *dd)
{
    json_object *o = json_object_new_object();
    for (size_t i = 0; i < ELEMENTSOF(fields); i++) {
        const char *p = (const char *)dd + fields[i].offset;
        json_object *v = NULL;
        if (fields[i].type == F_STR) {
            const char *s = *(char *const *)(const void *)p;
            v = s ? json_object_new_string(s) : NULL;
        } else if (fields[i].type == F_BOOL) {
            v = json_object_new_boolean(*(const bool *)(const void *)p);
        } else {
            v = json_object_new_int64(int_member(p, fields[i].size));
        }
        if (v)
            json_object_object_add(o, fields[i].key, v);
    }
    return o;
}

static char *get_str(json_object *o, const char *key)
{
    json_object *v = NULL;
    if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
        return NULL;
    return xstrndup(json_object_get_string(v), (size_t)json_object_get_string_len(v));
}

static int64_t get_int(json_object *o, const char *key)
{
    json_object *v = NULL;
    return json_object_object_get_ex(o, key, &v) ? json_object_get_int64(v) : 0;
}

static void domdev_from_json(json_object *o, UsbvmDomDev *dd)
{
    for (size_t i = 0; i < ELEMENTSOF(fields); i++) {
        char *p = (char *)dd + fields[i].offset;
        json_object *v = NULL;
        if (fields[i].type == F_STR)
            *(char **)(void *)p = get_str(o, fields[i].key);
        else if (fields[i].type == F_BOOL)
            *(bool *)(void *)p =
                json_object_object_get_ex(o, fields[i].key, &v) && json_object_get_boolean(v);
        else
            set_int_member(p, fields[i].size, get_int(o, fields[i].key));
    }
}

/* The child: connect, read, answer, exit without running the parent's exit handlers. */
_Noreturn static void child_main(const char *uri, int fd)
{
    UsbvmError err = { 0 };
    virConnectPtr conn = NULL;
    _cleanup_(usbvm_domdev_list_freep) UsbvmDomDevList *l = NULL;
    json_object *answer = json_object_new_object();
    if (usbvm_virt_open(uri, &conn, &err) >= 0 && usbvm_virt_list_domdevs(conn, &l, &err) >= 0) {
        json_object *a = json_object_new_array();
        for (size_t i = 0; i < l->n; i++)
            json_object_array_add(a, domdev_to_json(&l->items[i]));
        json_object_object_add(answer, "devices", a);
    } else {
        json_object *e = json_object_new_object();
        json_object_object_add(e, "kind", json_object_new_int(err.kind));
        json_object_object_add(e, "errnum", json_object_new_int(err.errnum));
        json_object_object_add(e, "message", json_object_new_string(err.message));
        json_object_object_add(answer, "error", e);
    }
    if (conn)
        virConnectClose(conn);
    size_t len = 0;
    const char *text = json_object_to_json_string_length(answer, JSON_C_TO_STRING_PLAIN, &len);
    bool ok = true;
    while (ok && len > 0) {
        ssize_t n = write(fd, text, len);
        ok = n > 0 || (n < 0 && errno == EINTR);
        if (n > 0) {
            text += n;
            len -= (size_t)n;
        }
    }
    _exit(ok ? 0 : 1);
}

void usbvm_virt_ask_start(const char *uri, UsbvmVirtAsk *ask)
{
    *ask = (UsbvmVirtAsk){ .pid = -1, .fd = -1, .uri = uri };
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0)
        return; /* finish asks in-process */
    pid_t pid = fork();
    if (pid == 0) {
        close(p[0]);
        child_main(uri, p[1]);
    }
    close(p[1]);
    if (pid < 0) {
        close(p[0]);
        return;
    }
    ask->pid = pid;
    ask->fd = p[0];
}

static int read_answer(UsbvmVirtAsk *ask, UsbvmBuf *b)
{
    char chunk[16384];
    for (;;) {
        ssize_t n = read(ask->fd, chunk, sizeof(chunk));
        if (n > 0)
            usbvm_buf_append(b, chunk, (size_t)n);
        else if (n == 0)
            return 0;
        else if (errno != EINTR)
            return -errno;
    }
}

/* Why the child gave no answer, from its wait status. */
static int lost_answer(int status, UsbvmError *err)
{
    if (WIFSIGNALED(status))
        return usbvm_error_set(err, USBVM_E_LIBVIRT, EIO,
                               "the process that asks libvirt was killed by signal %d (%s); "
                               "run 'usbvm status' to ask libvirt directly",
                               WTERMSIG(status), strsignal(WTERMSIG(status)));
    return usbvm_error_set(err, USBVM_E_LIBVIRT, EIO,
                           "the process that asks libvirt ended (exit %d) without an answer; "
                           "run 'usbvm status' to ask libvirt directly",
                           WIFEXITED(status) ? WEXITSTATUS(status) : -1);
}

static int parse_answer(const char *text, UsbvmDomDevList **ret, UsbvmError *err)
{
    json_object *root = json_tokener_parse(text);
    json_object *devices = NULL, *e = NULL;
    int r;
    if (root && json_object_object_get_ex(root, "devices", &devices) &&
        json_object_is_type(devices, json_type_array)) {
        UsbvmDomDevList *l = xcalloc(1, sizeof(UsbvmDomDevList));
        for (size_t i = 0; i < json_object_array_length(devices); i++)
            domdev_from_json(json_object_array_get_idx(devices, i), usbvm_domdev_list_add(l));
        *ret = l;
        r = 0;
    } else if (root && json_object_object_get_ex(root, "error", &e)) {
        _cleanup_free_ char *msg = get_str(e, "message");
        r = usbvm_error_set(err, (UsbvmErrKind)get_int(e, "kind"), (int)get_int(e, "errnum"), "%s",
                            strempty(msg));
    } else {
        r = usbvm_error_set(err, USBVM_E_LIBVIRT, EIO,
                            "the process that asks libvirt gave an answer usbvm cannot read; "
                            "run 'usbvm status' to ask libvirt directly");
    }
    json_object_put(root);
    return r;
}

int usbvm_virt_ask_finish(UsbvmVirtAsk *ask, UsbvmDomDevList **ret, UsbvmError *err)
{
    *ret = NULL;
    if (ask->pid < 0) { /* no pipe or no fork: ask here */
        _cleanup_(virConnectClosep) virConnectPtr conn = NULL;
        int r = usbvm_virt_open(ask->uri, &conn, err);
        return r < 0 ? r : usbvm_virt_list_domdevs(conn, ret, err);
    }
    UsbvmBuf b = { 0 };
    int r = read_answer(ask, &b);
    close(ask->fd);
    ask->fd = -1;
    int status = 0;
    while (waitpid(ask->pid, &status, 0) < 0 && errno == EINTR)
        ;
    ask->pid = -1;
    _cleanup_free_ char *text = usbvm_buf_steal(&b);
    if (r < 0 || !*text)
        return lost_answer(status, err);
    return parse_answer(text, ret, err);
}

void usbvm_virt_ask_cancel(UsbvmVirtAsk *ask)
{
    if (ask->pid < 0)
        return;
    kill(ask->pid, SIGKILL);
    close(ask->fd);
    while (waitpid(ask->pid, NULL, 0) < 0 && errno == EINTR)
        ;
    *ask = (UsbvmVirtAsk){ .pid = -1, .fd = -1 };
}
