/* Baseline for the latency benchmarks: the bare libvirt API, no usbvm. Attaches the device XML
 * in FILE to DOMAIN N times, timing only virDomainAttachDeviceFlags, and detaches it by
 * alias between rounds (waiting for DEVICE_REMOVED, untimed). Prints one latency in
 * microseconds per line.
 *
 *   bench-raw-attach URI DOMAIN FILE ALIAS N
 */
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static bool removed;
static const char *want_alias;

static unsigned long long now_usec(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (unsigned long long)ts.tv_sec * 1000000ULL + (unsigned long long)ts.tv_nsec / 1000ULL;
}

static void removed_cb(virConnectPtr conn, virDomainPtr dom, const char *alias, void *opaque)
{
    if (strcmp(alias, want_alias) == 0)
        removed = true;
}

static void timeout_cb(int timer, void *opaque)
{
    *(bool *)opaque = true;
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "re");
    if (!f)
        return NULL;
    char *buf = calloc(1, 65536);
    size_t n = buf ? fread(buf, 1, 65535, f) : 0;
    fclose(f);
    if (buf)
        buf[n] = '\0';
    return buf;
}

int main(int argc, char **argv)
{
    if (argc != 6) {
        fprintf(stderr, "usage: %s URI DOMAIN FILE ALIAS N\n", argv[0]);
        return 2;
    }
    want_alias = argv[4];
    int n = atoi(argv[5]);
    char *xml = slurp(argv[3]);
    if (!xml) {
        perror(argv[3]);
        return 1;
    }
    virEventRegisterDefaultImpl();
    virConnectPtr conn = virConnectOpen(argv[1]);
    virDomainPtr dom = conn ? virDomainLookupByName(conn, argv[2]) : NULL;
    if (!dom) {
        fprintf(stderr, "bench-raw-attach: %s\n", virGetLastErrorMessage());
        return 1;
    }
    virConnectDomainEventRegisterAny(conn, dom, VIR_DOMAIN_EVENT_ID_DEVICE_REMOVED,
                                     VIR_DOMAIN_EVENT_CALLBACK(removed_cb), NULL, NULL);
    for (int i = 0; i < n; i++) {
        unsigned long long t0 = now_usec();
        if (virDomainAttachDeviceFlags(dom, xml, VIR_DOMAIN_AFFECT_LIVE) < 0) {
            fprintf(stderr, "bench-raw-attach: attach: %s\n", virGetLastErrorMessage());
            return 1;
        }
        unsigned long long t1 = now_usec();
        printf("%llu\n", t1 - t0);
        removed = false;
        if (virDomainDetachDeviceAlias(dom, want_alias, VIR_DOMAIN_AFFECT_LIVE) < 0) {
            fprintf(stderr, "bench-raw-attach: detach: %s\n", virGetLastErrorMessage());
            return 1;
        }
        bool expired = false;
        int timer = virEventAddTimeout(10000, timeout_cb, &expired, NULL);
        while (!removed && !expired)
            virEventRunDefaultImpl();
        virEventRemoveTimeout(timer);
        if (!removed) {
            fprintf(stderr, "bench-raw-attach: the device was not removed within 10 s\n");
            return 1;
        }
    }
    virDomainFree(dom);
    virConnectClose(conn);
    free(xml);
    return 0;
}
