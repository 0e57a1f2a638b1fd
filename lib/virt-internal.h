/* Shared between the lib/virt-*.c files; not part of the contract. */
#pragma once

#include "virt.h"

#include <libxml/parser.h>
#include <libxml/tree.h>
#include <libxml/xpath.h>

DEFINE_TRIVIAL_CLEANUP_FUNC(xmlDocPtr, xmlFreeDoc)
DEFINE_TRIVIAL_CLEANUP_FUNC(xmlXPathContextPtr, xmlXPathFreeContext)
DEFINE_TRIVIAL_CLEANUP_FUNC(xmlXPathObjectPtr, xmlXPathFreeObject)
DEFINE_TRIVIAL_CLEANUP_FUNC(xmlNodePtr, xmlFreeNode)
static inline void xmlfreep(void *p)
{
    xmlFree(*(void **)p);
}
#define _cleanup_xmlfree_ _cleanup_(xmlfreep)

#define USBVM_ALIAS_PREFIX "ua-usbvm-"

/* Parses a domain XML document without network access and without printing. */
int usbvm_xml_parse(const char *xml, xmlDocPtr *ret, UsbvmError *err);

/* What attach needs to know about a domain besides its devices. */
typedef struct UsbvmDomInfo {
    char *name;
    bool usb_controller; /* a <controller type='usb'> whose model is not 'none' */
    bool virtio_scsi;    /* a <controller type='scsi' model='virtio-scsi'> */
    int scsi_index;      /* index of the first virtio-scsi controller, or the index a new one
                          * gets (one past every SCSI controller's) when there is none */
    char **targets;      /* every <disk><target dev=...>, NULL-terminated or NULL */
    char **scsi_units;   /* "T:U" of the drive addresses on controller scsi_index */
} UsbvmDomInfo;
int usbvm_dominfo_from_xml(const char *xml, UsbvmDomInfo *ret, UsbvmError *err);
void usbvm_dominfo_from_doc(xmlDocPtr doc, UsbvmDomInfo *ret);
/* Adds what the disk usbvm_virt_device_xml_info made for this info (and mode) takes: its target
 * name and SCSI unit, which the next disk's XML then leaves alone. Nothing for usb mode. */
void usbvm_dominfo_add_disk(UsbvmDomInfo *info, UsbvmMode mode);
void usbvm_domdevs_from_doc(const char *domain, xmlDocPtr doc, UsbvmDomDevList *list);
/* Whether a live domain XML document is of a running domain (<domain id='N'>). */
bool usbvm_domain_doc_running(xmlDocPtr doc);
void usbvm_dominfo_clear(UsbvmDomInfo *i);

/* The first free disk name with this prefix ("vd", "sd"): vda..vdz, vdaa.. */
char *usbvm_virt_next_target(const char *prefix, char *const *used);
/* The name the next disk of this mode takes in a domain with this info ("vdb", "sdc"). */
char *usbvm_virt_disk_target(UsbvmMode mode, const UsbvmDomInfo *info);
/* The <target bus=...> of a disk mode: "virtio", "scsi" or "usb". */
const char *usbvm_virt_disk_bus(UsbvmMode mode);

/* The whole disk usbvm attaches in disk modes: the first whole disk with media (size > 0),
 * else the first whole disk; NULL when the device has none. */
const UsbvmBlock *usbvm_virt_pick_disk(const UsbvmDevice *d);
/* The path given to libvirt for a disk: its by-id link while the link leads to this disk's
 * own major:minor, else the devnode. */
const char *usbvm_virt_disk_source(const UsbvmBlock *b);
/* A persistent definition names the disk by a path that must still be this disk at the next
 * domain start: its by-id link, leading to this disk now. Returns 0, or fills err
 * (USBVM_E_REFUSED) saying why not (no link; the link leads to a clone's disk; no link yet)
 * and what to do. dev and domain are for the message. */
int usbvm_virt_check_persistent_source(const UsbvmBlock *b, const char *dev, const char *domain,
                                       UsbvmError *err);

/* Sanitises a string for libvirt's <serial> ([A-Za-z0-9_.+- ]), at most 20 characters (what
 * virtio-blk carries). Returns NULL when nothing usable is left. */
char *usbvm_virt_serial(const char *s);

/* usbvm_virt_device_xml() with what is used in the domain given directly. */
int usbvm_virt_device_xml_info(const UsbvmDevice *d, const UsbvmAttachSpec *spec,
                               const UsbvmDomInfo *info, char **ret, UsbvmError *err);

/* <controller type='scsi' model='virtio-scsi'/> */
char *usbvm_virt_scsi_controller_xml(int index);

/* A disk whose host node is gone (lib/virt-deadnode.c): before a live detach, collect notes
 * the disk's source when its host path no longer exists, pins the domain's QEMU and records
 * the st_rdev of the node's copy in its private /dev; after libvirt let go, forget removes
 * that copy if it still has that st_rdev and no other disk of the domain uses it. forget
 * returns what happened as one sentence for the caller to report (NULL when there was nothing
 * to do: the disk's host node still exists). */
typedef struct UsbvmDeadNode {
    char *source;  /* <source dev=...> of the disk being detached, when its host path is gone */
    char **others; /* sources of the domain's other block disks */
    char *outcome; /* why nothing will be done, when collect already knows */
    bool pinned;   /* pidfd holds the domain's QEMU */
    int pidfd;
    pid_t pid;
    bool have_rdev;
    dev_t rdev; /* of the copy in the domain's /dev, before the detach */
} UsbvmDeadNode;
void usbvm_deadnode_clear(UsbvmDeadNode *s);
/* live: the domain's live XML (not NULL), as read before the detach. */
void usbvm_deadnode_collect(virDomainPtr dom, xmlDocPtr live, const char *alias,
                            UsbvmDeadNode *ret);
char *usbvm_deadnode_forget(virDomainPtr dom, UsbvmDeadNode *s);
/* Below devfd (a /dev): the st_rdev of the block node path names ("/dev/sdb" or a by-id link
 * to it), resolved without leaving devfd or following more than that one link; -errno. */
int usbvm_deadnode_stat_at(int devfd, const char *source, dev_t *ret_rdev);
/* Removes the node source names below devfd, and its link, when the node is still rdev and
 * no path of others resolves to it: 1 removed, 0 left alone, -errno failed; *ret_msg says
 * which, in one sentence. Exposed for tests. */
int usbvm_deadnode_remove_at(int devfd, const char *source, dev_t rdev, char *const *others,
                             char **ret_msg);

/* Block nodes an attach that libvirtd did not finish left in QEMU (lib/virt-orphan.c).
 * usbvm_orphan_nodes picks, from QEMU's answer to query-named-block-nodes (reply), the nodes
 * named "libvirt-N-storage"/"libvirt-N-format" whose N no disk of the live XML uses and that
 * are opened on source: a NULL-terminated list, format nodes first, or NULL. */
int usbvm_orphan_nodes(const char *reply, const char *live_xml, const char *source, char ***ret,
                       UsbvmError *err);
/* Whether QEMU's answer to qom-list lists a child named id. */
bool usbvm_qom_has_child(const char *reply, const char *id);
/* What an attach that libvirtd did not finish left in QEMU for this device (lib/virt-orphan.c):
 * the device itself (its id is alias; in QEMU, not in the live XML) and the orphan nodes of
 * source. What was found goes to *ret_what as words ("the device ua-usbvm-... and block nodes
 * libvirt-1-format, libvirt-1-storage"). Nodes without the device are removed. Returns 2 when
 * they were (the attach may be asked again), 1 when leftovers stay (only a restart of the
 * domain frees them), 0 when there were none, or < 0 with err. */
int usbvm_virt_find_leftovers(virDomainPtr dom, const char *alias, const char *source,
                              char **ret_what, UsbvmError *err);
