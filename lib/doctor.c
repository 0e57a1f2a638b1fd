/* usbvm doctor: the order in which the checks run. */
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

void usbvm_doctor_run(const UsbvmDoctorPaths *paths, const UsbvmDoctorQuery *q, UsbvmChecks *out)
{
    if (!paths)
        paths = &usbvm_doctor_paths_default;
    /* The hardware first: nothing above it helps while the port drops the device. */
    if (q->port)
        usbvm_doctor_kernel(paths, q, out);
    if (q->device)
        usbvm_doctor_host(paths, q, out);
    int mode = usbvm_doctor_policy(paths, q, out);
    virConnectPtr conn = NULL;
    usbvm_doctor_virt(q, mode, &conn, out);
    if (conn)
        virConnectClose(conn);
    if (q->device)
        usbvm_doctor_confinement(paths, q, out);
}
