/* mockbed: a umockdev testbed that other processes share, driven by line commands on stdin.
 * Test-only (it links umockdev, hence GLib; the product never does).
 *
 * Run it under umockdev-wrapper. It prints "ready <UMOCKDEV_DIR>" once; processes started
 * with that UMOCKDEV_DIR and LD_PRELOAD=libumockdev-preload.so.0 (usbvm watch) see its
 * sysfs and receive its uevents. Commands, each answered by one line "ok <mono_usec>" (the
 * CLOCK_MONOTONIC time in microseconds) or
 * "error <text>":
 * The time reported is taken right before the first uevent of the command goes out.
 *   load FILE          add the devices of a umockdev-record file, no uevents
 *   plug FILE          add them all, then send "add" for each in file order, then "bind"
 *                      for USB devices that have a driver (as the kernel does)
 *   plugt FILE         the same, answered "ok <first> <last>": <last> is taken right after
 *                      the last "add" went out, when the whole device is announced
 *   unplug SYSPATH     send "remove" for SYSPATH and everything below it (deepest first),
 *                      then take them out of the testbed
 *   uevent SYSPATH ACTION
 *   attr SYSPATH NAME [VALUE]   set a sysfs attribute (empty VALUE: as a half-removed device
 *                               reads), no uevent
 *   quit
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <ftw.h>
#include <glob.h>
#include <sys/stat.h>
#include <time.h>
#include <umockdev.h>
#include <unistd.h>

static unsigned long long now_usec(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (unsigned long long)ts.tv_sec * 1000000ULL + (unsigned long long)ts.tv_nsec / 1000ULL;
}

/* Syspaths of the devices in a umockdev-record file, in file order ("P:" lines). */
static char **file_syspaths(const char *file, size_t *ret_n)
{
    FILE *f = fopen(file, "re");
    char **v = NULL;
    size_t n = 0;
    char *line = NULL;
    size_t cap = 0;
    if (!f)
        return NULL;
    while (getline(&line, &cap, f) > 0) {
        if (strncmp(line, "P: ", 3) != 0)
            continue;
        line[strcspn(line, "\n")] = '\0';
        v = realloc(v, (n + 1) * sizeof(char *));
        if (!v)
            abort();
        if (asprintf(&v[n++], "/sys%s", line + 3) < 0)
            abort();
    }
    free(line);
    fclose(f);
    *ret_n = n;
    return v;
}

static bool has_driver_usb_device(const char *syspath)
{
    char path[4096];
    char buf[64] = "";
    snprintf(path, sizeof(path), "%s/uevent", syspath);
    FILE *f = fopen(path, "re");
    bool usb_device = false, driver = false;
    if (!f)
        return false;
    while (fgets(buf, sizeof(buf), f)) {
        if (strcmp(buf, "DEVTYPE=usb_device\n") == 0)
            usb_device = true;
    }
    fclose(f);
    snprintf(path, sizeof(path), "%s/driver", syspath);
    driver = access(path, F_OK) == 0;
    return usb_device && driver;
}

static int by_depth_desc(const void *a, const void *b)
{
    size_t la = strlen(*(char *const *)a), lb = strlen(*(char *const *)b);
    return la < lb ? 1 : la > lb ? -1 : 0;
}

/* Every known device at or below syspath: a directory with a uevent file in the testbed's
 * sysfs, walked through its real path (outside /sys, so the preload leaves it alone). */
static char **found;
static size_t n_found;
static size_t root_len;

static int collect(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    const char *base = path + ftw->base;
    if (type == FTW_F && strcmp(base, "uevent") == 0) {
        found = realloc(found, (n_found + 1) * sizeof(char *));
        if (!found)
            abort();
        found[n_found++] = strndup(path + root_len, (size_t)(base - path) - root_len - 1);
    }
    return 0;
}

static char **devices_below(const char *root, const char *syspath, size_t *ret_n)
{
    char *real;
    if (asprintf(&real, "%s%s", root, syspath) < 0)
        abort();
    found = NULL;
    n_found = 0;
    root_len = strlen(root);
    nftw(real, collect, 16, FTW_PHYS);
    free(real);
    qsort(found, n_found, sizeof(char *), by_depth_desc);
    *ret_n = n_found;
    return found;
}

/* umockdev leaves the /sys/block, /sys/class and /sys/bus links of removed devices behind;
 * the kernel removes them, and a replug that reuses a name needs them gone. */
static void unlink_dangling_in(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        char *p;
        struct stat st;
        if (e->d_name[0] == '.')
            continue;
        if (asprintf(&p, "%s/%s", dir, e->d_name) < 0)
            abort();
        if (lstat(p, &st) == 0 && S_ISLNK(st.st_mode) && stat(p, &st) < 0)
            unlink(p);
        free(p);
    }
    if (d)
        closedir(d);
}

/* umockdev itself sends an "add" for each device as it writes it, before its children (a
 * disk's partitions) and even its own attributes exist, where the kernel announces a disk
 * only once its partitions are in sysfs. While the testbed is being written, the listeners'
 * sockets (ROOT/eventN, found by umockdev's glob) are renamed out of its sight; the bound
 * sockets stay the same, so renamed back they receive the uevents this tool sends once
 * everything is in place. */
static void listeners_hide(const char *root, bool hide)
{
    char *pattern;
    glob_t g;
    if (asprintf(&pattern, "%s/%s", root, hide ? "event[0-9]*" : "held-event[0-9]*") < 0)
        abort();
    if (glob(pattern, 0, NULL, &g) == 0) {
        for (size_t i = 0; i < g.gl_pathc; i++) {
            const char *base = strrchr(g.gl_pathv[i], '/') + 1;
            char *to;
            if (asprintf(&to, "%s/%s%s", root, hide ? "held-" : "", base + (hide ? 0 : 5)) < 0)
                abort();
            if (rename(g.gl_pathv[i], to) < 0)
                fprintf(stderr, "mockbed: cannot rename %s: %m\n", g.gl_pathv[i]);
            free(to);
        }
        globfree(&g);
    }
    free(pattern);
}

static void remove_dangling_links(const char *root)
{
    static const char *const patterns[] = { "/sys/block", "/sys/class/*", "/sys/bus/*/devices" };
    for (size_t i = 0; i < sizeof(patterns) / sizeof(patterns[0]); i++) {
        char *pattern;
        glob_t g;
        if (asprintf(&pattern, "%s%s", root, patterns[i]) < 0)
            abort();
        if (glob(pattern, GLOB_ONLYDIR, NULL, &g) == 0) {
            for (size_t j = 0; j < g.gl_pathc; j++)
                unlink_dangling_in(g.gl_pathv[j]);
            globfree(&g);
        }
        free(pattern);
    }
}

/* load FILE / plug FILE / plugt FILE: adds the file's devices; plug and plugt also send their
 * uevents ("add", then "bind" for a USB device with a driver). */
static void cmd_plug(UMockdevTestbed *tb, const char *root, const char *verb, const char *arg)
{
    GError *error = NULL;
    listeners_hide(root, true);
    bool added = umockdev_testbed_add_from_file(tb, arg, &error);
    listeners_hide(root, false);
    if (!added) {
        printf("error %s\n", error->message);
        g_error_free(error);
        return;
    }
    /* The file's devices are listed before the clock is read: the time is the first uevent's,
     * not that of reading the file again. */
    size_t n = 0;
    char **paths = strcmp(verb, "load") != 0 ? file_syspaths(arg, &n) : NULL;
    unsigned long long t0 = now_usec(), t_added = t0;
    if (paths) {
        for (size_t i = 0; i < n; i++)
            umockdev_testbed_uevent(tb, paths[i], "add");
        t_added = now_usec();
        for (size_t i = 0; i < n; i++) {
            if (has_driver_usb_device(paths[i]))
                umockdev_testbed_uevent(tb, paths[i], "bind");
            free(paths[i]);
        }
        free(paths);
    }
    if (strcmp(verb, "plugt") == 0)
        printf("ok %llu %llu\n", t0, t_added);
    else
        printf("ok %llu\n", t0);
}

/* unplug PORT: removes the device and everything below it. */
static void cmd_unplug(UMockdevTestbed *tb, const char *root, const char *arg)
{
    size_t n = 0;
    char **paths = devices_below(root, arg, &n);
    if (n == 0) {
        printf("error no device at %s\n", arg);
        free(paths);
        return;
    }
    /* Deepest first, and each device leaves sysfs right after its "remove" goes out, as with
     * the kernel: a listener that looks at sysfs for a removed block device must not find it. */
    unsigned long long t = now_usec();
    for (size_t i = 0; i < n; i++) {
        umockdev_testbed_uevent(tb, paths[i], "remove");
        listeners_hide(root, true);
        umockdev_testbed_remove_device(tb, paths[i]);
        listeners_hide(root, false);
        free(paths[i]);
    }
    remove_dangling_links(root);
    printf("ok %llu\n", t);
    free(paths);
}

/* attr SYSPATH NAME [VALUE] */
static void cmd_attr(UMockdevTestbed *tb, char *arg)
{
    char *name = strchr(arg, ' ');
    *name++ = '\0';
    char *value = strchr(name, ' ');
    if (value)
        *value++ = '\0';
    umockdev_testbed_set_attribute(tb, arg, name, value ? value : "");
    printf("ok %llu\n", now_usec());
}

/* uevent SYSPATH ACTION */
static void cmd_uevent(UMockdevTestbed *tb, char *arg)
{
    char *action = strchr(arg, ' ');
    *action++ = '\0';
    unsigned long long t = now_usec();
    umockdev_testbed_uevent(tb, arg, action);
    printf("ok %llu\n", t);
}

int main(void)
{
    UMockdevTestbed *tb = umockdev_testbed_new();
    gchar *root = umockdev_testbed_get_root_dir(tb);
    printf("ready %s\n", root);
    fflush(stdout);

    char *line = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, stdin) > 0) {
        line[strcspn(line, "\n")] = '\0';
        char *arg = strchr(line, ' ');
        if (arg)
            *arg++ = '\0';
        if (strcmp(line, "quit") == 0)
            break;
        if ((strcmp(line, "load") == 0 || strcmp(line, "plug") == 0 ||
             strcmp(line, "plugt") == 0) &&
            arg)
            cmd_plug(tb, root, line, arg);
        else if (strcmp(line, "unplug") == 0 && arg)
            cmd_unplug(tb, root, arg);
        else if (strcmp(line, "attr") == 0 && arg && strchr(arg, ' '))
            cmd_attr(tb, arg);
        else if (strcmp(line, "uevent") == 0 && arg && strchr(arg, ' '))
            cmd_uevent(tb, arg);
        else
            printf("error unknown command '%s'\n", line);
        fflush(stdout);
    }
    free(line);
    g_free(root);
    g_object_unref(tb);
    return 0;
}
