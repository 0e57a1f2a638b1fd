/* The libvirt layer: what an attach that libvirtd did not finish left in QEMU.
 *
 * libvirt attaches a disk in QEMU steps: it labels the host's node, blockdev-add (the storage
 * node on the file, then the format node on it), then device_add. When libvirtd dies between
 * them and before it writes the attach down, QEMU keeps the nodes (and the device, when
 * device_add had run) while the restarted libvirtd knows none of it: they are in no XML,
 * QEMU holds the file's write lock, and libvirt still counts the node's label as in use.
 * A client that dies in the middle of libvirt's attach can leave the nodes too. Every later
 * attach of that disk fails ("Duplicate nodes", "Failed to get "write" lock", "Setting
 * different DAC user or group ... already in use"). usbvm finds them: nodes alone it removes
 * (blockdev-del), and the attach is asked again; a leftover device QEMU lets go only when its
 * guest does, and libvirt still counts its label as in use, so for it usbvm says which device
 * and nodes, and that a restart of the domain frees them. libvirt has no API that lists or
 * removes what it does not know, so this goes through its monitor passthrough
 * (virDomainQemuMonitorCommand, which marks the domain "tainted: custom-monitor" in its log). */
#include "virt-internal.h"

#include <errno.h>
#include <json-c/json.h>
#include <libvirt/libvirt-qemu.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

DEFINE_TRIVIAL_CLEANUP_FUNC(json_object *, json_object_put)

/* "libvirt-N-storage" / "libvirt-N-format": N, and whether it is the format node. */
static bool libvirt_node(const char *name, unsigned *ret_n, bool *ret_format)
{
    unsigned n;
    int end = 0;
    char kind[8] = "";
    if (!name || sscanf(name, "libvirt-%u-%7[a-z]%n", &n, kind, &end) != 2 || name[end])
        return false;
    if (!streq(kind, "storage") && !streq(kind, "format"))
        return false;
    *ret_n = n;
    *ret_format = streq(kind, "format");
    return true;
}

/* Every index= in the disks of the live XML (sources and backing stores): the node numbers
 * libvirt knows. */
static int used_indices(const char *live_xml, unsigned **ret, size_t *ret_n, UsbvmError *err)
{
    _cleanup_(xmlFreeDocp) xmlDocPtr doc = NULL;
    int r = usbvm_xml_parse(live_xml, &doc, err);
    if (r < 0)
        return r;
    _cleanup_(xmlXPathFreeContextp) xmlXPathContextPtr ctx = xmlXPathNewContext(doc);
    _cleanup_(xmlXPathFreeObjectp) xmlXPathObjectPtr o =
        ctx ? xmlXPathEvalExpression(BAD_CAST "//devices/disk//*[@index]/@index", ctx) : NULL;
    *ret = NULL;
    *ret_n = 0;
    for (int i = 0; o && o->nodesetval && i < o->nodesetval->nodeNr; i++) {
        _cleanup_xmlfree_ xmlChar *v = xmlNodeGetContent(o->nodesetval->nodeTab[i]);
        unsigned u;
        if (v && usbvm_parse_uint((const char *)v, 10, UINT32_MAX, &u) == 0) {
            *ret = xrealloc(*ret, (*ret_n + 1) * sizeof(**ret));
            (*ret)[(*ret_n)++] = u;
        }
    }
    return 0;
}

/* Whether QEMU's file name is the file being attached: the same block device (or inode), or
 * the same name when either cannot be looked at. */
static bool same_file(const char *a, const char *b)
{
    if (!a || !b)
        return false;
    if (streq(a, b))
        return true;
    struct stat sa, sb;
    if (stat(a, &sa) < 0 || stat(b, &sb) < 0)
        return false;
    if (S_ISBLK(sa.st_mode) && S_ISBLK(sb.st_mode))
        return sa.st_rdev == sb.st_rdev;
    return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

int usbvm_orphan_nodes(const char *reply, const char *live_xml, const char *source, char ***ret,
                       UsbvmError *err)
{
    *ret = NULL;
    _cleanup_free_ unsigned *used = NULL;
    size_t n_used = 0;
    int r = used_indices(live_xml, &used, &n_used, err);
    if (r < 0)
        return r;
    _cleanup_(json_object_putp) json_object *root = json_tokener_parse(reply ? reply : "");
    json_object *list = NULL;
    if (!root || !json_object_object_get_ex(root, "return", &list) ||
        !json_object_is_type(list, json_type_array))
        return usbvm_error_set(err, USBVM_E_LIBVIRT, EPROTO,
                               "QEMU's list of block nodes cannot be read");
    /* Format nodes first: each sits on its storage node, which QEMU frees only after it. */
    char **format = NULL, **storage = NULL;
    for (size_t i = 0; i < json_object_array_length(list); i++) {
        json_object *node = json_object_array_get_idx(list, i), *v;
        const char *name =
            json_object_object_get_ex(node, "node-name", &v) ? json_object_get_string(v) : NULL;
        const char *file =
            json_object_object_get_ex(node, "file", &v) ? json_object_get_string(v) : NULL;
        unsigned n;
        bool is_format, known = false;
        if (!libvirt_node(name, &n, &is_format) || !same_file(file, source))
            continue;
        for (size_t k = 0; k < n_used; k++)
            known |= used[k] == n;
        if (known)
            continue;
        if (is_format)
            format = usbvm_strv_push(format, name);
        else
            storage = usbvm_strv_push(storage, name);
    }
    for (size_t i = 0; storage && storage[i]; i++)
        format = usbvm_strv_push(format, storage[i]);
    usbvm_strv_free(storage);
    *ret = format;
    return 0;
}

static int monitor(virDomainPtr dom, const char *cmd, char **ret, UsbvmError *err)
{
    char *reply = NULL;
    if (virDomainQemuMonitorCommand(dom, cmd, &reply, VIR_DOMAIN_QEMU_MONITOR_COMMAND_DEFAULT) < 0)
        return usbvm_virt_error(err, USBVM_E_LIBVIRT, "QEMU did not answer '%s'", cmd);
    if (ret)
        *ret = reply;
    else
        free(reply);
    return 0;
}

bool usbvm_qom_has_child(const char *reply, const char *id)
{
    _cleanup_(json_object_putp) json_object *root = json_tokener_parse(reply ? reply : "");
    json_object *list = NULL;
    if (!root || !json_object_object_get_ex(root, "return", &list) ||
        !json_object_is_type(list, json_type_array))
        return false;
    for (size_t i = 0; i < json_object_array_length(list); i++) {
        json_object *v;
        if (json_object_object_get_ex(json_object_array_get_idx(list, i), "name", &v) &&
            streq(json_object_get_string(v), id))
            return true;
    }
    return false;
}

/* Whether QEMU has a device with this id (its peripherals are named by their id). */
static int qemu_has_device(virDomainPtr dom, const char *id, bool *ret, UsbvmError *err)
{
    _cleanup_free_ char *reply = NULL;
    int r =
        monitor(dom, "{\"execute\":\"qom-list\",\"arguments\":{\"path\":\"/machine/peripheral\"}}",
                &reply, err);
    if (r < 0)
        return r;
    *ret = usbvm_qom_has_child(reply, id);
    return 0;
}

int usbvm_virt_find_leftovers(virDomainPtr dom, const char *alias, const char *source,
                              char **ret_what, UsbvmError *err)
{
    *ret_what = NULL;
    _cleanup_free_ char *reply = NULL, *xml = virDomainGetXMLDesc(dom, 0);
    if (!xml)
        return usbvm_virt_error(err, USBVM_E_LIBVIRT, "cannot read the live XML of '%s'",
                                virDomainGetName(dom));
    /* The device: its id is the alias usbvm gave it, in QEMU and not in the live XML. */
    bool device = false;
    _cleanup_free_ char *mark = xasprintf("<alias name='%s'/>", strempty(alias));
    int r;
    if (alias && strncmp(alias, USBVM_ALIAS_PREFIX, strlen(USBVM_ALIAS_PREFIX)) == 0 &&
        !strstr(xml, mark) && (r = qemu_has_device(dom, alias, &device, err)) < 0)
        return r;
    r = monitor(dom, "{\"execute\":\"query-named-block-nodes\",\"arguments\":{\"flat\":true}}",
                &reply, err);
    if (r < 0)
        return r;
    char **nodes = NULL;
    if ((r = usbvm_orphan_nodes(reply, xml, source, &nodes, err)) < 0)
        return r;
    UsbvmBuf what = { 0 };
    if (device)
        usbvm_buf_printf(&what, "the device %s", alias);
    for (size_t i = 0; nodes && nodes[i]; i++)
        usbvm_buf_printf(&what, "%s%s",
                         i        ? ", "
                         : device ? " and block nodes "
                                  : "block nodes ",
                         nodes[i]);
    bool found = device || nodes;
    /* Nodes alone (no device on them) QEMU gives up at once: removed, so that the caller can
     * ask libvirt again. A leftover device is not touched: QEMU lets it go only when its guest
     * does, and libvirt would still count its label as in use. */
    bool dropped = !device && nodes;
    for (size_t i = 0; dropped && nodes[i]; i++) {
        /* The names passed libvirt_node(): "libvirt-", digits, "-", a word; nothing to quote. */
        _cleanup_free_ char *cmd = xasprintf(
            "{\"execute\":\"blockdev-del\",\"arguments\":{\"node-name\":\"%s\"}}", nodes[i]);
        UsbvmError e = { 0 };
        dropped = monitor(dom, cmd, NULL, &e) == 0;
    }
    usbvm_strv_free(nodes);
    _cleanup_free_ char *words = usbvm_buf_steal(&what);
    if (found)
        *ret_what = TAKE_PTR(words);
    return dropped ? 2 : found;
}
