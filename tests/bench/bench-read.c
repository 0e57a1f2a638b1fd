/* Benchmark: one read of a stick's model, what watch does once per burst of a plug's uevents.
 *
 *   usbvm     usbvm_device_new_from_syspath(): the USB device's attributes read through its
 *             directory's descriptor, its subtree walked for interfaces and block devices, each
 *             block device from its sysfs directory and udev's record.
 *   baseline  the same facts through libudev: a udev_device for the USB device, its interface
 *             and each block device (udev_device_new_from_syspath), their attributes
 *             (udev_device_get_sysattr_value) and the block devices' properties
 *             (udev_device_get_property_value), as a libudev client reads them.
 *
 * Run inside a umockdev testbed (tests/bench/run does it with the lab fixture's stick 1-1: a
 * disk and two partitions). The two sides alternate in blocks of 50 reads, so that a slow
 * moment of the machine does not fall on one side only. Prints the median of each and the
 * ratio. Build: tests/bench/CMakeLists.txt; it links to usbvmcore only. */
#include "device.h"

#include <libudev.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BLOCK 50

static const char *const usb_attrs[] = {
    "busnum",      "devnum",       "idVendor",        "idProduct",         "bcdDevice",
    "version",     "bDeviceClass", "bDeviceSubClass", "bDeviceProtocol",   "manufacturer",
    "product",     "serial",       "speed",           "port/connect_type", "authorized",
    "descriptors",
};
static const char *const if_attrs[] = { "bInterfaceClass", "bInterfaceNumber", "bAlternateSetting",
                                        "bInterfaceSubClass", "bInterfaceProtocol" };
static const char *const block_props[] = { "DEVTYPE",    "DEVNAME",         "DEVLINKS",
                                           "ID_FS_TYPE", "ID_FS_LABEL_ENC", "ID_FS_LABEL",
                                           "ID_FS_UUID" };
static const char *const block_attrs[] = { "dev", "size", "ro", "removable" };

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* A checksum of what was read, so that no read can be left out. */
static size_t sum(const char *s)
{
    return s ? strlen(s) : 0;
}

static size_t read_usbvm(UsbvmHostUseCache *host, const char *syspath)
{
    UsbvmError err = { 0 };
    UsbvmDevice *d = NULL;
    if (usbvm_device_new_from_syspath(syspath, host, &d, &err) < 0) {
        fprintf(stderr, "bench-read: %s\n", err.message);
        exit(1);
    }
    size_t n = d->n_blocks + d->n_interfaces + sum(d->serial);
    usbvm_device_free(d);
    return n;
}

static size_t read_attrs(struct udev_device *d, const char *const *names, size_t n)
{
    size_t s = 0;
    for (size_t i = 0; i < n; i++)
        s += sum(udev_device_get_sysattr_value(d, names[i]));
    return s;
}

static size_t read_libudev(struct udev *udev, const char *syspath, char *const *children)
{
    struct udev_device *d = udev_device_new_from_syspath(udev, syspath);
    if (!d) {
        fprintf(stderr, "bench-read: libudev cannot read %s\n", syspath);
        exit(1);
    }
    size_t s = read_attrs(d, usb_attrs, sizeof(usb_attrs) / sizeof(*usb_attrs));
    s += sum(udev_device_get_driver(d));
    udev_device_unref(d);
    for (size_t i = 0; children[i]; i++) {
        struct udev_device *c = udev_device_new_from_syspath(udev, children[i]);
        if (!c)
            exit(1);
        if (strstr(children[i], "/block/")) {
            s += read_attrs(c, block_attrs, sizeof(block_attrs) / sizeof(*block_attrs));
            for (size_t k = 0; k < sizeof(block_props) / sizeof(*block_props); k++)
                s += sum(udev_device_get_property_value(c, block_props[k]));
        } else {
            s += read_attrs(c, if_attrs, sizeof(if_attrs) / sizeof(*if_attrs));
            s += sum(udev_device_get_driver(c));
        }
        udev_device_unref(c);
    }
    return s;
}

/* The interface and block devices libudev is to read: the ones usbvm's model found. */
static char **children_of(UsbvmHostUseCache *host, const char *syspath)
{
    UsbvmError err = { 0 };
    UsbvmDevice *d = NULL;
    if (usbvm_device_new_from_syspath(syspath, host, &d, &err) < 0)
        exit(1);
    char **v = NULL;
    _cleanup_free_ char *intf = xasprintf("%s/%s:1.0", syspath, d->port);
    v = usbvm_strv_push(v, intf);
    for (size_t i = 0; i < d->n_blocks; i++)
        v = usbvm_strv_push(v, d->blocks[i].syspath);
    usbvm_device_free(d);
    return v;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: bench-read SYSPATH READS (inside a umockdev testbed)\n");
        return 2;
    }
    const char *syspath = argv[1];
    int n = atoi(argv[2]);
    n = n < BLOCK ? BLOCK : n / BLOCK * BLOCK;
    struct udev *udev = udev_new();
    UsbvmHostUseCache *host = usbvm_host_use_cache_new(&usbvm_host_paths_default);
    char **children = children_of(host, syspath);
    double *a = xcalloc((size_t)n, sizeof(double)), *b = xcalloc((size_t)n, sizeof(double));
    size_t check = 0;
    for (int i = 0; i < n; i += BLOCK)
        for (int side = 0; side < 2; side++)
            for (int k = i; k < i + BLOCK; k++) {
                double t0 = now_us();
                check += side == (i / BLOCK) % 2 ? read_usbvm(host, syspath)
                                                 : read_libudev(udev, syspath, children);
                (side == (i / BLOCK) % 2 ? a : b)[k] = now_us() - t0;
            }
    qsort(a, (size_t)n, sizeof(double), cmp_double);
    qsort(b, (size_t)n, sizeof(double), cmp_double);
    printf("%d reads each of %s (%zu interfaces and block devices), checksum %zu\n", n, syspath,
           usbvm_strv_length(children), check);
    printf("  usbvm    p50 %7.1f us  p90 %7.1f us\n", a[n / 2], a[n * 9 / 10]);
    printf("  libudev  p50 %7.1f us  p90 %7.1f us\n", b[n / 2], b[n * 9 / 10]);
    printf("  ratio usbvm/libudev p50 %.2f\n", a[n / 2] / b[n / 2]);
    free(a);
    free(b);
    usbvm_strv_free(children);
    usbvm_host_use_cache_free(host);
    udev_unref(udev);
    return 0;
}
