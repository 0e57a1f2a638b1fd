/* The libvirt layer, part 5: a disk whose host node is gone.
 *
 * libvirt gives each QEMU domain a private /dev (qemu.conf namespaces, on by default) holding
 * copies of the nodes it uses; its DAC driver (remember_owner, on by default) records the
 * original owner and a use count in trusted.libvirt.security.* xattrs on that copy. When a
 * stick is pulled while attached as a disk, the detach cannot restore the copy: libvirt opens
 * it to lock it and gets ENXIO. The copy stays, owned by QEMU, with a use count of 1, and the
 * next stick that gets the same /dev/sdX reuses it: libvirt chowns it back to the host's
 * owner, finds it "in use" and refuses the attach ("Setting different DAC user or group on
 * ... which is already in use") until the domain restarts. So once libvirt has let go of such
 * a disk, usbvm removes the dead copy (and libvirt's link to it) from the domain's /dev; the
 * next attach creates a fresh one. Nothing else in the domain may use it, and only a node
 * whose host source is gone qualifies.
 *
 * Everything here acts on another process's files as root, so nothing is taken on trust:
 *  - QEMU is found through libvirt's root-owned pid file, pinned with a pidfd, and checked to
 *    be libvirt's QEMU of that domain (-name guest=NAME, a libvirt machine cgroup) before and
 *    still alive after every step, so a recycled pid cannot stand in for it;
 *  - its /dev must be private: its mount namespace is compared with the host's (pid 1's), not
 *    with usbvm's own (a hardened unit gives usbvm a namespace of its own), and its /dev with
 *    the host's /dev; with qemu.conf "namespaces = []" nothing is touched;
 *  - its /dev is reached through /proc/PID/root, not by entering its namespace: no setns, no
 *    fork, and only CAP_SYS_PTRACE (to look into a process of another user) is needed;
 *  - paths are resolved below that /dev with openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
 *    RESOLVE_NO_XDEV), libvirt's one by-id link read by hand and resolved the same way;
 *  - the node is removed only when its st_rdev is the one recorded before the detach, so a
 *    disk that got that name meanwhile keeps its node.
 * Every outcome becomes a sentence the caller reports (the library never prints). */
#include "virt-internal.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

void usbvm_deadnode_clear(UsbvmDeadNode *s)
{
    free(s->source);
    usbvm_strv_free(s->others);
    free(s->outcome);
    if (s->pinned)
        close(s->pidfd);
    *s = (UsbvmDeadNode){ 0 };
}

/* ---- resolving below the domain's /dev --------------------------------------------------- */

static int open_beneath(int devfd, const char *rel, int *ret_dir, char **ret_name)
{
    const char *slash = strrchr(rel, '/');
    const char *name = slash ? slash + 1 : rel;
    if (!*name || streq(name, ".") || streq(name, ".."))
        return -EINVAL;
    _cleanup_free_ char *dir = slash ? xstrndup(rel, (size_t)(slash - rel)) : xstrdup(".");
    struct open_how how = {
        .flags = O_PATH | O_DIRECTORY | O_CLOEXEC,
        .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV,
    };
    int fd = (int)syscall(SYS_openat2, devfd, *dir ? dir : ".", &how, sizeof(how));
    if (fd < 0)
        return -errno;
    *ret_dir = fd;
    *ret_name = xstrdup(name);
    return 0;
}

typedef struct Resolved {
    int link_dir, node_dir; /* -1 when unset */
    char *link_name, *node_name;
    dev_t rdev;
} Resolved;

static void resolved_clear(Resolved *r)
{
    if (r->link_dir >= 0)
        close(r->link_dir);
    if (r->node_dir >= 0)
        close(r->node_dir);
    free(r->link_name);
    free(r->node_name);
    *r = (Resolved){ .link_dir = -1, .node_dir = -1 };
}

/* "/dev/disk/by-id/X" -> libvirt's link and the block node it names, both below devfd. One
 * link is followed (libvirt copies the host's by-id link as it is), and only to a block node. */
static int resolve(int devfd, const char *source, Resolved *ret)
{
    *ret = (Resolved){ .link_dir = -1, .node_dir = -1 };
    if (strncmp(source, "/dev/", 5) != 0)
        return -EXDEV;
    const char *rel = source + 5;
    int dir;
    char *name;
    int r = open_beneath(devfd, rel, &dir, &name);
    if (r < 0)
        return r;
    struct stat st;
    if (fstatat(dir, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
        r = -errno;
        close(dir);
        free(name);
        return r;
    }
    if (S_ISLNK(st.st_mode)) {
        ret->link_dir = dir;
        ret->link_name = name;
        char target[PATH_MAX];
        ssize_t n = readlinkat(dir, name, target, sizeof(target) - 1);
        if (n < 0)
            return -errno;
        target[n] = '\0';
        _cleanup_free_ char *rel2 = NULL;
        if (target[0] == '/')
            rel2 = strncmp(target, "/dev/", 5) == 0 ? xstrdup(target + 5) : NULL;
        else {
            const char *slash = strrchr(rel, '/');
            rel2 = slash ? xasprintf("%.*s/%s", (int)(slash - rel), rel, target) : xstrdup(target);
        }
        if (!rel2)
            return -EXDEV;
        r = open_beneath(devfd, rel2, &ret->node_dir, &ret->node_name);
        if (r < 0)
            return r;
        if (fstatat(ret->node_dir, ret->node_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
            return -errno;
    } else {
        ret->node_dir = dir;
        ret->node_name = name;
    }
    if (!S_ISBLK(st.st_mode))
        return S_ISLNK(st.st_mode) ? -ELOOP : -ENOTBLK;
    ret->rdev = st.st_rdev;
    return 0;
}

int usbvm_deadnode_stat_at(int devfd, const char *source, dev_t *ret_rdev)
{
    Resolved r;
    int k = resolve(devfd, source, &r);
    if (k == 0)
        *ret_rdev = r.rdev;
    resolved_clear(&r);
    return k;
}

int usbvm_deadnode_remove_at(int devfd, const char *source, dev_t rdev, char *const *others,
                             char **ret_msg)
{
    _cleanup_free_ char *src = usbvm_escape(source);
    Resolved r;
    int k = resolve(devfd, source, &r);
    if (k == -ENOENT) {
        *ret_msg = xasprintf("no copy of %s left in the domain's /dev", src);
        resolved_clear(&r);
        return 0;
    }
    if (k < 0) {
        *ret_msg = xasprintf("left %s in the domain's /dev alone: it does not resolve to a block "
                             "node below /dev (%s)",
                             src, strerror(-k));
        resolved_clear(&r);
        return k;
    }
    if (r.rdev != rdev) {
        *ret_msg = xasprintf("left %s in the domain's /dev alone: it is now %u:%u, not %u:%u as "
                             "when the disk was detached",
                             src, major(r.rdev), minor(r.rdev), major(rdev), minor(rdev));
        resolved_clear(&r);
        return 0;
    }
    for (size_t i = 0; others && others[i]; i++) {
        dev_t o = 0;
        if (usbvm_deadnode_stat_at(devfd, others[i], &o) == 0 && o == rdev) {
            _cleanup_free_ char *other = usbvm_escape(others[i]);
            *ret_msg = xasprintf("left %s (%u:%u) in the domain's /dev: the domain's disk %s "
                                 "uses it",
                                 src, major(rdev), minor(rdev), other);
            resolved_clear(&r);
            return 0;
        }
    }
    if (unlinkat(r.node_dir, r.node_name, 0) < 0) {
        k = -errno;
        *ret_msg = xasprintf("cannot remove the dead copy of %s (%u:%u) from the domain's /dev: "
                             "%s; if the next stick is refused, restart the domain",
                             src, major(rdev), minor(rdev), strerror(-k));
        resolved_clear(&r);
        return k;
    }
    if (r.link_dir >= 0)
        (void)unlinkat(r.link_dir, r.link_name, 0); /* gone with its node; a leftover is inert */
    *ret_msg = xasprintf("removed the dead copy of %s (%u:%u) from the domain's /dev", src,
                         major(rdev), minor(rdev));
    resolved_clear(&r);
    return 1;
}

/* ---- the domain's QEMU --------------------------------------------------------------------- */

static bool qemu_alive(int pidfd)
{
    /* Signal 0 only asks; without CAP_KILL over another user's process the answer is EPERM,
     * which still means it is there (an exited process gives ESRCH). */
    return syscall(SYS_pidfd_send_signal, pidfd, 0, NULL, 0) == 0 || errno == EPERM;
}

static bool cmdline_names(pid_t pid, const char *name)
{
    _cleanup_free_ char *path = xasprintf("/proc/%ld/cmdline", (long)pid);
    _cleanup_free_ char *buf = NULL;
    size_t n = 0;
    if (usbvm_read_file(path, &buf, &n) < 0)
        return false;
    _cleanup_free_ char *want = xasprintf("guest=%s", name);
    size_t wl = strlen(want);
    for (size_t i = 0; i < n; i += strlen(buf + i) + 1)
        if (streq(buf + i, "-name") && i + 6 < n) {
            const char *v = buf + i + 6;
            return strncmp(v, want, wl) == 0 && (v[wl] == ',' || v[wl] == '\0');
        }
    return false;
}

static bool in_machine_cgroup(pid_t pid)
{
    _cleanup_free_ char *path = xasprintf("/proc/%ld/cgroup", (long)pid);
    _cleanup_free_ char *buf = NULL;
    size_t n = 0;
    if (usbvm_read_file(path, &buf, &n) < 0)
        return false;
    /* systemd: machine.slice/machine-qemu\x2d1\x2dNAME.scope; cgroupfs: machine/qemu-1-NAME. */
    return strstr(buf, "machine") && strstr(buf, "qemu");
}

/* Pins the domain's QEMU when libvirt runs it on this host. */
static int pin_qemu(virDomainPtr dom, int *ret_pidfd, pid_t *ret_pid, char **ret_msg)
{
    _cleanup_free_ char *uri = virConnectGetURI(virDomainGetConnect(dom));
    if (!uri || strncmp(uri, "qemu:///system", 14) != 0) {
        *ret_msg = xstrdup("its QEMU is not a local qemu:///system process");
        return -EREMOTE;
    }
    const char *name = virDomainGetName(dom);
    _cleanup_free_ char *pidfile = xasprintf("/run/libvirt/qemu/%s.pid", name);
    _cleanup_close_ int fd = open(pidfile, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    struct stat st;
    char buf[32] = "";
    ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof(buf) - 1);
    if (fd < 0 || n < 0 || fstat(fd, &st) < 0) {
        *ret_msg = xasprintf("cannot read libvirt's pid file: %s", strerror(errno));
        return -errno;
    }
    buf[n] = '\0';
    unsigned long pid = 0;
    char *end;
    pid = strtoul(buf, &end, 10);
    if (st.st_uid != 0 || (st.st_mode & (S_IWGRP | S_IWOTH)) || pid <= 1 || pid > INT32_MAX ||
        (*end && *end != '\n')) {
        *ret_msg = xstrdup("libvirt's pid file is not root's or holds no pid");
        return -EPERM;
    }
    int pidfd = (int)syscall(SYS_pidfd_open, (pid_t)pid, 0);
    if (pidfd < 0) {
        *ret_msg = xasprintf("its QEMU (pid %lu) is gone: %s", pid, strerror(errno));
        return -errno;
    }
    /* Checked after pinning and confirmed alive after checking: the pid named the pinned
     * process all along. */
    if (!cmdline_names((pid_t)pid, name) || !in_machine_cgroup((pid_t)pid) || !qemu_alive(pidfd)) {
        close(pidfd);
        *ret_msg = xasprintf("pid %lu is not libvirt's QEMU of the domain (any more)", pid);
        return -ESRCH;
    }
    *ret_pidfd = pidfd;
    *ret_pid = (pid_t)pid;
    return 0;
}

static bool same_inode(const char *a, const struct stat *b)
{
    struct stat sa;
    return stat(a, &sa) == 0 && sa.st_dev == b->st_dev && sa.st_ino == b->st_ino;
}

/* The pinned QEMU's /dev, when it is private: an O_PATH directory descriptor. */
static int open_qemu_dev(int pidfd, pid_t pid, char **ret_msg)
{
    _cleanup_free_ char *ns = xasprintf("/proc/%ld/ns/mnt", (long)pid);
    struct stat qns, qdev;
    if (stat(ns, &qns) < 0) {
        *ret_msg = xasprintf("cannot look into its QEMU (pid %ld): %s; usbvm needs "
                             "CAP_SYS_PTRACE for it",
                             (long)pid, strerror(errno));
        return -errno;
    }
    if (same_inode("/proc/1/ns/mnt", &qns)) {
        *ret_msg = xstrdup("its QEMU shares the host's mount namespace (qemu.conf namespaces = "
                           "[]): the host's /dev is not usbvm's to clean");
        return -EXDEV;
    }
    _cleanup_free_ char *root = xasprintf("/proc/%ld/root", (long)pid);
    _cleanup_close_ int rootfd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
    struct open_how how = { .flags = O_PATH | O_DIRECTORY | O_CLOEXEC,
                            .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS };
    int devfd = rootfd < 0 ? -1 : (int)syscall(SYS_openat2, rootfd, "dev", &how, sizeof(how));
    if (devfd < 0) {
        *ret_msg =
            xasprintf("cannot open the /dev of its QEMU (pid %ld): %s", (long)pid, strerror(errno));
        return -errno;
    }
    if (!qemu_alive(pidfd)) {
        close(devfd);
        *ret_msg = xstrdup("its QEMU exited (the domain stopped): its /dev went with it");
        return -ESRCH;
    }
    if (fstat(devfd, &qdev) < 0 || same_inode("/proc/1/root/dev", &qdev)) {
        close(devfd);
        *ret_msg = xstrdup("its QEMU's /dev is the host's /dev: not usbvm's to clean");
        return -EXDEV;
    }
    return devfd;
}

/* ---- collect before the detach, forget after ---------------------------------------------- */

static void disk_sources(xmlDocPtr doc, const char *alias, UsbvmDeadNode *ret)
{
    _cleanup_(xmlXPathFreeContextp) xmlXPathContextPtr ctx = xmlXPathNewContext(doc);
    _cleanup_(xmlXPathFreeObjectp) xmlXPathObjectPtr res =
        xmlXPathEvalExpression(BAD_CAST "/domain/devices/disk[@type='block']", ctx);
    for (int i = 0; res && res->nodesetval && i < res->nodesetval->nodeNr; i++) {
        xmlNodePtr disk = res->nodesetval->nodeTab[i];
        _cleanup_xmlfree_ xmlChar *src = NULL, *name = NULL;
        for (xmlNodePtr c = disk->children; c; c = c->next) {
            if (c->type != XML_ELEMENT_NODE)
                continue;
            if (xmlStrEqual(c->name, BAD_CAST "source") && !src)
                src = xmlGetProp(c, BAD_CAST "dev");
            else if (xmlStrEqual(c->name, BAD_CAST "alias") && !name)
                name = xmlGetProp(c, BAD_CAST "name");
        }
        if (!src)
            continue;
        if (streq((const char *)name, alias))
            ret->source = xstrdup((const char *)src);
        else
            ret->others = usbvm_strv_push(ret->others, (const char *)src);
    }
}

void usbvm_deadnode_collect(virDomainPtr dom, xmlDocPtr live, const char *alias, UsbvmDeadNode *ret)
{
    *ret = (UsbvmDeadNode){ 0 };
    disk_sources(live, alias, ret);
    struct stat st;
    if (!ret->source || strncmp(ret->source, "/dev/", 5) != 0 || stat(ret->source, &st) == 0 ||
        errno != ENOENT) {
        usbvm_deadnode_clear(ret); /* still on the host: libvirt restores it itself */
        return;
    }
    _cleanup_free_ char *src = usbvm_escape(ret->source);
    _cleanup_free_ char *why = NULL;
    int pidfd = -1;
    pid_t pid = 0;
    if (pin_qemu(dom, &pidfd, &pid, &why) < 0) {
        ret->outcome = xasprintf("%s is gone from the host; its copy in the domain's /dev is "
                                 "left: %s",
                                 src, why);
        return;
    }
    ret->pinned = true;
    ret->pidfd = pidfd;
    ret->pid = pid;
    _cleanup_close_ int devfd = open_qemu_dev(pidfd, pid, &why);
    int r = devfd < 0 ? devfd : usbvm_deadnode_stat_at(devfd, ret->source, &ret->rdev);
    if (r == 0) {
        ret->have_rdev = true;
        return;
    }
    if (r == -ENOENT)
        ret->outcome =
            xasprintf("%s is gone from the host and has no copy in the domain's /dev", src);
    else
        ret->outcome = xasprintf("%s is gone from the host; its copy in the domain's /dev is "
                                 "left: %s",
                                 src, why ? why : strerror(-r));
}

char *usbvm_deadnode_forget(virDomainPtr dom, UsbvmDeadNode *s)
{
    if (!s->source)
        return NULL;
    if (!s->have_rdev)
        return s->outcome ? xstrdup(s->outcome) : NULL;
    _cleanup_free_ char *why = NULL;
    _cleanup_close_ int devfd = open_qemu_dev(s->pidfd, s->pid, &why);
    if (devfd < 0)
        return xasprintf("left the copy of the pulled disk in the domain's /dev: %s", why);
    char *msg = NULL;
    (void)usbvm_deadnode_remove_at(devfd, s->source, s->rdev, s->others, &msg);
    return msg;
}
