/* usbvm doctor: the list of check results, and the order in which the checks run. */
#include "doctor.h"

#include <string.h>

static const char *const udisksd_default[] = {
    "/usr/libexec/udisks2/udisksd",
    "/usr/lib/udisks2/udisksd",
    NULL,
};

const UsbvmDoctorPaths usbvm_doctor_paths_default = {
    .host = { "/proc/self/mountinfo", "/proc/swaps" },
    .kmsg = "/dev/kmsg",
    .audit_log = "/var/log/audit/audit.log",
    .proc = "/proc",
    .udisksd = udisksd_default,
};

void usbvm_checks_clear(UsbvmChecks *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->n; i++) {
        free(c->items[i].name);
        free(c->items[i].found);
        free(c->items[i].fix);
        usbvm_strv_free(c->items[i].log);
    }
    free(c->items);
    *c = (UsbvmChecks){ 0 };
}

size_t usbvm_checks_failed(const UsbvmChecks *c)
{
    size_t n = 0;
    for (size_t i = 0; i < c->n; i++)
        n += !c->items[i].ok;
    return n;
}

UsbvmCheck *usbvm_checks_add(UsbvmChecks *c, const char *name, bool ok, const char *fix,
                             const char *found_fmt, ...)
{
    c->items = xrealloc(c->items, (c->n + 1) * sizeof(*c->items));
    UsbvmCheck *k = &c->items[c->n++];
    va_list ap;
    va_start(ap, found_fmt);
    *k = (UsbvmCheck){
        .name = xstrdup(name),
        .ok = ok,
        .found = xvasprintf(found_fmt, ap),
        .fix = fix ? xstrdup(fix) : NULL,
    };
    va_end(ap);
    return k;
}

void usbvm_doctor_run(struct udev *udev, const UsbvmDoctorPaths *paths, const UsbvmDoctorQuery *q,
                      UsbvmChecks *out)
{
    if (!paths)
        paths = &usbvm_doctor_paths_default;
    /* The hardware first: nothing above it helps while the port drops the device. */
    if (q->port)
        usbvm_doctor_kernel(paths, q, out);
    if (q->device)
        usbvm_doctor_host(udev, paths, q, out);
    int mode = usbvm_doctor_policy(paths, q, out);
    virConnectPtr conn = NULL;
    usbvm_doctor_virt(q, mode, &conn, out);
    if (conn)
        virConnectClose(conn);
    if (q->device)
        usbvm_doctor_confinement(paths, q, out);
}
