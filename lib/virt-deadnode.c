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
 * whose host source is gone qualifies. */
#include "virt-internal.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

void usbvm_deadnode_clear(UsbvmDeadNode *s)
{
    free(s->source);
    usbvm_strv_free(s->others);
    *s = (UsbvmDeadNode){ 0 };
}

void usbvm_deadnode_collect(virDomainPtr dom, const char *alias, UsbvmDeadNode *ret)
{
    *ret = (UsbvmDeadNode){ 0 };
    _cleanup_free_ char *xml = virDomainGetXMLDesc(dom, 0);
    _cleanup_(xmlFreeDocp) xmlDocPtr doc = NULL;
    if (!xml || usbvm_xml_parse(xml, &doc, NULL) < 0)
        return;
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
    struct stat st;
    if (ret->source &&
        (strncmp(ret->source, "/dev/", 5) != 0 || stat(ret->source, &st) == 0 || errno != ENOENT))
        usbvm_deadnode_clear(ret); /* still on the host: libvirt restores it itself */
}

/* The pid of the domain's QEMU when libvirt runs it on this host, else 0. */
static pid_t local_qemu_pid(virDomainPtr dom)
{
    _cleanup_free_ char *uri = virConnectGetURI(virDomainGetConnect(dom));
    if (!uri || strncmp(uri, "qemu:///system", 14) != 0)
        return 0;
    const char *name = virDomainGetName(dom);
    _cleanup_free_ char *pidfile = xasprintf("/run/libvirt/qemu/%s.pid", name);
    _cleanup_fclose_ FILE *f = fopen(pidfile, "re");
    long pid = 0;
    if (!f || fscanf(f, "%ld", &pid) != 1 || pid <= 1)
        return 0;
    /* The pid file may be stale: the process must be this domain's QEMU. */
    _cleanup_free_ char *cmdpath = xasprintf("/proc/%ld/cmdline", pid);
    _cleanup_fclose_ FILE *c = fopen(cmdpath, "re");
    char buf[4096];
    size_t n = c ? fread(buf, 1, sizeof(buf) - 1, c) : 0;
    buf[n] = '\0';
    _cleanup_free_ char *want = xasprintf("guest=%s", name);
    size_t wl = strlen(want);
    for (size_t i = 0; i < n; i += strlen(buf + i) + 1) {
        const char *a = buf + i;
        if (strncmp(a, "-name", 6) == 0 && i + 6 < n) {
            const char *v = buf + i + 6;
            if (strncmp(v, want, wl) == 0 && (v[wl] == ',' || v[wl] == '\0'))
                return (pid_t)pid;
            return 0;
        }
    }
    return 0;
}

/* Runs in a child inside the domain's mount namespace: remove the copy of a gone node. */
static int remove_stale_copy(const UsbvmDeadNode *s)
{
    char node[PATH_MAX];
    struct stat st, o;
    if (!realpath(s->source, node) || strncmp(node, "/dev/", 5) != 0 || stat(node, &st) < 0 ||
        !S_ISBLK(st.st_mode))
        return 1; /* nothing there (libvirt made no copy, or it is gone already) */
    for (size_t i = 0; s->others && s->others[i]; i++)
        if (stat(s->others[i], &o) == 0 && S_ISBLK(o.st_mode) && o.st_rdev == st.st_rdev)
            return 2; /* another disk of the domain uses it */
    if (unlink(node) < 0)
        return 3;
    if (lstat(s->source, &o) == 0 && S_ISLNK(o.st_mode))
        (void)unlink(s->source);
    return 0;
}

void usbvm_deadnode_forget(virDomainPtr dom, const UsbvmDeadNode *s)
{
    if (!s->source)
        return;
    pid_t qemu = local_qemu_pid(dom);
    if (qemu <= 0)
        return;
    struct stat self, theirs;
    _cleanup_free_ char *nspath = xasprintf("/proc/%ld/ns/mnt", (long)qemu);
    if (stat("/proc/self/ns/mnt", &self) < 0 || stat(nspath, &theirs) < 0 ||
        self.st_ino == theirs.st_ino)
        return; /* no private /dev: the kernel removed the host node and its xattrs */
    _cleanup_close_ int nsfd = open(nspath, O_RDONLY | O_CLOEXEC);
    if (nsfd < 0)
        return;
    pid_t child = fork();
    if (child < 0)
        return;
    if (child == 0) {
        if (setns(nsfd, CLONE_NEWNS) < 0)
            _exit(4);
        _exit(remove_stale_copy(s));
    }
    int status;
    while (waitpid(child, &status, 0) < 0 && errno == EINTR)
        ;
}
