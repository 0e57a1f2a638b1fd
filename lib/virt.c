/* The libvirt layer, part 1: process set-up, the connection, captured errors, domain lookup.
 * Domain XML parsing is in virt-domdev.c, device XML in virt-xml.c, attach and detach in
 * virt-attach.c. */
#include "virt.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

static void error_noop(void *userdata, virErrorPtr error)
{
    /* libvirt prints every error to stderr unless a handler is installed. usbvm reports the
     * saved error once, in its own words. */
}

static void virt_init_once(void)
{
    virInitialize();
    virSetErrorFunc(NULL, error_noop);
    /* Before any connection is opened, so that connections can deliver domain events
     * (DEVICE_REMOVED); the watch daemon runs the same default loop. */
    virEventRegisterDefaultImpl();
}

void usbvm_virt_init(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, virt_init_once);
}

int usbvm_virt_error(UsbvmError *err, UsbvmErrKind kind, const char *fmt, ...)
{
    /* Read the last error now: any vir*Free() resets it. */
    virErrorPtr e = virGetLastError();
    char msg[768];
    if (e && e->message)
        snprintf(msg, sizeof(msg), "%s", e->message);
    else
        snprintf(msg, sizeof(msg), "%s", "unknown libvirt error");
    /* Strip a trailing newline or period so our sentence reads as one. */
    size_t n = strlen(msg);
    while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '.'))
        msg[--n] = '\0';

    char prefix[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof(prefix), fmt, ap);
    va_end(ap);
    return usbvm_error_set(err, kind, EIO, "%s: %s", prefix, msg);
}

/* The libvirt error code of the last error, 0 when none. */
int usbvm_virt_last_code(void)
{
    virErrorPtr e = virGetLastError();
    return e ? e->code : 0;
}

/* What to do about a failed connection, chosen by libvirt's error number and errno, never by
 * its English text. */
static const char *connect_advice(const virError *e)
{
    if (!e)
        return "";
    if (e->code == VIR_ERR_NO_CONNECT || e->code == VIR_ERR_INVALID_ARG)
        return "; check the URI ('virsh -c URI uri' tests one; qemu:///system is the usual one)";
    if (e->code == VIR_ERR_AUTH_FAILED || e->code == VIR_ERR_AUTH_CANCELLED ||
        e->code == VIR_ERR_AUTH_UNAVAILABLE ||
        (e->code == VIR_ERR_SYSTEM_ERROR && e->int1 == EACCES))
        return "; run usbvm as root (or as a member of the 'libvirt' group)";
    if (e->code == VIR_ERR_SYSTEM_ERROR && (e->int1 == ENOENT || e->int1 == ECONNREFUSED))
        return "; is libvirtd running? try 'systemctl start libvirtd' (or 'virtqemud'), or pass "
               "-c URI";
    return "";
}

int usbvm_virt_open(const char *uri, virConnectPtr *ret, UsbvmError *err)
{
    int r = usbvm_virt_load(err);
    if (r < 0)
        return r;
    usbvm_virt_init();
    virConnectPtr c = virConnectOpen(uri);
    if (!c) {
        /* Name the URI libvirt used: the environment's default when none was given. */
        const char *env = getenv("LIBVIRT_DEFAULT_URI");
        _cleanup_free_ char *which = uri ? xasprintf("'%s'", uri)
                                     : env && env[0]
                                         ? xasprintf("'%s' (from LIBVIRT_DEFAULT_URI)", env)
                                         : xstrdup("libvirt's default URI");
        const char *advice = connect_advice(virGetLastError());
        usbvm_virt_error(err, USBVM_E_LIBVIRT, "cannot connect to libvirt at %s", which);
        size_t len = strlen(err ? err->message : "");
        if (err && len + 1 < sizeof(err->message))
            snprintf(err->message + len, sizeof(err->message) - len, "%s", advice);
        return -ECONNREFUSED;
    }
    *ret = c;
    return 0;
}

int usbvm_virt_lookup(virConnectPtr conn, const char *name, virDomainPtr *ret, UsbvmError *err)
{
    if (!name || !*name)
        return usbvm_error_set(err, USBVM_E_USAGE, EINVAL, "no domain given");
    virDomainPtr dom = virDomainLookupByName(conn, name);
    if (!dom) {
        int code = usbvm_virt_last_code();
        if (code != VIR_ERR_NO_DOMAIN && code != 0)
            return usbvm_virt_error(err, USBVM_E_LIBVIRT, "cannot look up domain '%s'", name);
        dom = virDomainLookupByUUIDString(conn, name);
    }
    if (!dom)
        return usbvm_error_set(err, USBVM_E_NOTFOUND, ENOENT,
                               "no domain named '%s' or with that UUID; 'virsh list --all' "
                               "shows the domains",
                               name);
    *ret = dom;
    return 0;
}

const char *usbvm_state_to_string(UsbvmState s)
{
    switch (s) {
    case USBVM_STATE_ATTACHED:
        return "attached";
    case USBVM_STATE_DETACHED:
        return "detached";
    case USBVM_STATE_PENDING:
        return "pending";
    }
    return "unknown";
}
