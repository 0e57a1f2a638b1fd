/* Which device a specifier names (port, id, serial=, /dev node, sysfs path, identity, alias),
 * and why two devices with one identity cannot be told apart by it. */
#include "device-internal.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

/* ---- Specifiers ---------------------------------------------------------------------------- */

static bool is_vid_pid(const char *s)
{
    if (strlen(s) != 9 || s[4] != ':')
        return false;
    for (size_t i = 0; i < 9; i++)
        if (i != 4 && !((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f') ||
                        (s[i] >= 'A' && s[i] <= 'F')))
            return false;
    return true;
}

static int ambiguous(const UsbvmDeviceList *l, const char *spec, bool *match, size_t n_match,
                     UsbvmError *err)
{
    UsbvmBuf b = { 0 };
    bool first = true;
    for (size_t i = 0; i < l->n; i++) {
        if (!match[i])
            continue;
        const UsbvmDevice *d = l->devices[i];
        _cleanup_free_ char *serial = d->serial ? usbvm_escape(d->serial) : NULL;
        if (serial)
            usbvm_buf_printf(&b, "%s%s (serial %s)", first ? "" : ", ", d->port, serial);
        else
            usbvm_buf_printf(&b, "%s%s (no serial)", first ? "" : ", ", d->port);
        first = false;
    }
    _cleanup_free_ char *list = usbvm_buf_steal(&b);
    _cleanup_free_ char *s = usbvm_escape(spec);
    return usbvm_error_set(err, USBVM_E_NOTFOUND, ENOTUNIQ,
                           "'%s' matches %zu devices: %s; name one by its port path or "
                           "serial=...",
                           s, n_match, list);
}

/* One device, several, or none among those for which match[] is set. */
static int pick(const UsbvmDeviceList *l, const char *spec, bool *match, UsbvmDevice **ret,
                UsbvmError *err)
{
    size_t n = 0, last = 0;
    for (size_t i = 0; i < l->n; i++)
        if (match[i]) {
            n++;
            last = i;
        }
    if (n == 0)
        return 0;
    if (n > 1)
        return ambiguous(l, spec, match, n, err);
    *ret = l->devices[last];
    return 1;
}

static bool block_matches_node(const UsbvmBlock *b, const char *spec, const char *real,
                               const struct stat *st)
{
    if (streq(spec, b->devnode) || streq(spec, b->by_id))
        return true;
    if (real && (streq(real, b->devnode) || streq(real, b->by_id)))
        return true;
    return st && S_ISBLK(st->st_mode) && major(st->st_rdev) == b->major &&
           minor(st->st_rdev) == b->minor;
}

static bool device_syspath_contains(const UsbvmDevice *d, const char *path)
{
    size_t n = strlen(d->syspath);
    return strncmp(path, d->syspath, n) == 0 && (path[n] == '\0' || path[n] == '/');
}

static int resolve_sysfs(const UsbvmDeviceList *l, const char *spec, UsbvmDevice **ret)
{
    _cleanup_free_ char *path = NULL;
    if (strncmp(spec, "/devices/", 9) == 0)
        path = xasprintf("/sys%s", spec);
    else
        path = xstrdup(spec);
    size_t n = strlen(path);
    while (n > 1 && path[n - 1] == '/')
        path[--n] = '\0';
    /* /sys/bus/usb/devices/1-2 and /sys/class/block/sdb are links into /sys/devices. */
    char real[PATH_MAX];
    const char *cands[2] = { path, realpath(path, real) ? real : NULL };
    /* The deepest USB device containing the path: a disk below a hub belongs to the stick,
     * not to the hub. */
    UsbvmDevice *best = NULL;
    for (size_t c = 0; c < 2 && !best; c++)
        for (size_t i = 0; cands[c] && i < l->n; i++)
            if (device_syspath_contains(l->devices[i], cands[c]) &&
                (!best || strlen(l->devices[i]->syspath) > strlen(best->syspath)))
                best = l->devices[i];
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    if (!best && strncmp(path, "/sys/bus/usb/devices/", 21) == 0)
        for (size_t i = 0; i < l->n && !best; i++)
            if (streq(l->devices[i]->port, base))
                best = l->devices[i];
    if (!best &&
        (strncmp(path, "/sys/class/block/", 17) == 0 || strncmp(path, "/sys/block/", 11) == 0))
        for (size_t i = 0; i < l->n && !best; i++)
            for (size_t b = 0; b < l->devices[i]->n_blocks; b++)
                if (streq(l->devices[i]->blocks[b].name, base))
                    best = l->devices[i];
    if (!best)
        return 0;
    *ret = best;
    return 1;
}

int usbvm_device_list_resolve(const UsbvmDeviceList *l, const char *spec, UsbvmDevice **ret,
                              UsbvmError *err)
{
    if (!spec || !*spec)
        return usbvm_error_set(err, USBVM_E_NOTFOUND, ENOENT,
                               "an empty device specifier matches no device; run 'usbvm list "
                               "--all' to see the devices");
    _cleanup_free_ bool *match = xcalloc(l->n ? l->n : 1, sizeof(bool));
    UsbvmDevice *found = NULL;
    int r = 0;

    /* Port path, identity and alias are unique by construction. */
    for (size_t i = 0; i < l->n && !found; i++) {
        const UsbvmDevice *d = l->devices[i];
        if (streq(spec, d->port) || streq(spec, d->alias))
            found = l->devices[i];
    }
    /* Identities: two devices with the same ids and serial (cheap clones) are ambiguous. */
    if (!found) {
        for (size_t i = 0; i < l->n; i++)
            match[i] = streq(spec, l->devices[i]->identity);
        r = pick(l, spec, match, &found, err);
    }
    if (r == 0 && !found && strncmp(spec, "serial=", 7) == 0) {
        for (size_t i = 0; i < l->n; i++)
            match[i] = streq(spec + 7, l->devices[i]->serial);
        r = pick(l, spec, match, &found, err);
    } else if (r == 0 && !found && is_vid_pid(spec)) {
        unsigned vid = (unsigned)strtoul(spec, NULL, 16),
                 pid = (unsigned)strtoul(spec + 5, NULL, 16);
        for (size_t i = 0; i < l->n; i++)
            match[i] = l->devices[i]->vendor_id == vid && l->devices[i]->product_id == pid;
        r = pick(l, spec, match, &found, err);
    } else if (r == 0 && !found && strncmp(spec, "/dev/bus/usb/", 13) == 0) {
        unsigned bus, dev;
        char tail;
        if (sscanf(spec + 13, "%u/%u%c", &bus, &dev, &tail) == 2)
            for (size_t i = 0; i < l->n && !found; i++)
                if (l->devices[i]->busnum == bus && l->devices[i]->devnum == dev)
                    found = l->devices[i];
    } else if (r == 0 && !found && strncmp(spec, "/dev/", 5) == 0) {
        char real[PATH_MAX];
        const char *rp = realpath(spec, real) ? real : NULL;
        struct stat st;
        bool have_st = stat(spec, &st) == 0;
        for (size_t i = 0; i < l->n && !found; i++)
            for (size_t b = 0; b < l->devices[i]->n_blocks && !found; b++)
                if (block_matches_node(&l->devices[i]->blocks[b], spec, rp, have_st ? &st : NULL))
                    found = l->devices[i];
    } else if (r == 0 && !found &&
               (strncmp(spec, "/sys/", 5) == 0 || strncmp(spec, "/devices/", 9) == 0)) {
        r = resolve_sysfs(l, spec, &found);
    }
    if (r < 0)
        return r;
    if (!found) {
        _cleanup_free_ char *s = usbvm_escape(spec);
        return usbvm_error_set(err, USBVM_E_NOTFOUND, ENOENT,
                               "no USB device matches '%s': tried port path, VID:PID, serial=, "
                               "/dev node, /dev/bus/usb node, sysfs path, identity, alias; run "
                               "'usbvm list --all' to see the devices",
                               s);
    }
    *ret = found;
    return 0;
}

char *usbvm_device_ambiguity(const UsbvmDevice *d)
{
    if (!usbvm_device_is_ambiguous(d))
        return NULL;
    _cleanup_free_ char *ident = usbvm_escape(d->identity);
    UsbvmBuf ports = { 0 };
    for (size_t i = 0; d->same_identity[i]; i++) {
        _cleanup_free_ char *p = usbvm_escape(d->same_identity[i]);
        usbvm_buf_printf(&ports, "%s%s", i ? ", " : "", p);
    }
    _cleanup_free_ char *others = usbvm_buf_steal(&ports);
    return xasprintf("its identity %s (vendor:product:serial) is also reported by %s, so their "
                     "attachments would share the alias %s and usbvm could not tell them "
                     "apart; usbvm does not act on either by policy until one is unplugged "
                     "(a clone, or a maker that gives every unit one serial)",
                     ident, others, d->alias);
}
