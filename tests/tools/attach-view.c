/* Drives the attach view (lib/virt-attach.c) into a change it cannot know, for
 * tests/integration/test-attach-view.sh: two sticks' disks attached as scsi to one domain, one
 * after the other with one view, as a domain's queue of usbvm watch does in a burst; between
 * the two, someone else attaches a disk on the target name and SCSI unit the view would give
 * the second. The second attach must meet libvirt's refusal, read the domain again and attach
 * on free ones. Prints, for each attach, "attached ALIAS changed=0|1 notes=TEXT" and
 * "view ALIAS 0|1" (whether it started from the view), and "described ALIAS as-read" when the
 * attach's own picture of the disk (UsbvmAttachCtx.added, which watch puts in its snapshot and
 * asks the guest about at the detach) is what the domain's XML says, else "described ALIAS
 * differs: FIELD".
 *
 *   attach-view URI DOMAIN LOOP_A LOOP_B LOOP_OTHER TARGET UNIT
 *
 * With --replug, one stick is attached, detached (libvirt confirms the removal) and attached
 * again with the same view, which drops the removed disk as usbvm watch's queue does when
 * libvirt's DEVICE_REMOVED comes: the second attach must start from the view and get the
 * stick's target name back.
 *
 *   attach-view --replug URI DOMAIN LOOP_A
 */
#include "virt.h"

#include <libvirt/libvirt.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

static bool same_str(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

/* The fields a read of the domain fills for a disk, against the attach's picture. */
static const char *differs(const UsbvmDomDev *a, const UsbvmDomDev *read)
{
    if (!read)
        return "not in the domain";
    if (a->kind != read->kind || a->mode != read->mode || a->owned != read->owned)
        return "kind, mode or owned";
    if (a->readonly != read->readonly)
        return "readonly";
    const struct {
        const char *name, *a, *read;
    } s[] = { { "source", a->source, read->source },
              { "target", a->target, read->target },
              { "target_bus", a->target_bus, read->target_bus },
              { "serial", a->serial, read->serial } };
    for (size_t i = 0; i < sizeof(s) / sizeof(s[0]); i++)
        if (!same_str(s[i].a, s[i].read))
            return s[i].name;
    return NULL;
}

static void describe(virDomainPtr dom, const UsbvmDomDev *added)
{
    UsbvmDomDevList devs = { 0 };
    bool running = false;
    UsbvmError err = { 0 };
    const UsbvmDomDev *read = NULL;
    if (usbvm_virt_read_domain(dom, &devs, &running, &err) == 0)
        for (size_t i = 0; i < devs.n; i++)
            if (same_str(devs.items[i].alias, added->alias))
                read = &devs.items[i];
    const char *d = differs(added, read);
    printf("described %s %s%s\n", added->alias, d ? "differs: " : "as-read", d ? d : "");
    usbvm_domdev_list_clear(&devs);
}

static int attach(virConnectPtr conn, virDomainPtr dom, UsbvmDevice *d, UsbvmAttachCtx *ctx)
{
    UsbvmAttachSpec spec = { .mode = USBVM_MODE_SCSI };
    UsbvmResult res = { 0 };
    UsbvmError err = { 0 };
    if (usbvm_virt_attach_ctx(conn, dom, d, &spec, USBVM_ATTACH_LIVE, ctx, &res, &err) < 0) {
        fprintf(stderr, "attach-view: cannot attach %s: %s\n", d->alias, err.message);
        return 1;
    }
    printf("attached %s changed=%d notes=%s\n", d->alias, res.changed, res.notes);
    printf("view %s %d\n", d->alias, ctx->from_view);
    describe(dom, &ctx->added);
    usbvm_domdev_clear(&ctx->added);
    return 0;
}

static int replug(virConnectPtr conn, virDomainPtr dom, UsbvmDevice *d, UsbvmAttachCtx *ctx)
{
    if (attach(conn, dom, d, ctx) != 0)
        return 1;
    UsbvmResult res = { 0 };
    UsbvmError err = { 0 };
    if (usbvm_virt_detach_alias(conn, dom, d->alias, USBVM_ATTACH_LIVE, 10000, &res, &err) < 0) {
        fprintf(stderr, "attach-view: cannot detach %s: %s\n", d->alias, err.message);
        return 1;
    }
    usbvm_domview_drop(ctx->view, d->alias);
    return attach(conn, dom, d, ctx);
}

int main(int argc, char **argv)
{
    bool replugging = argc == 5 && strcmp(argv[1], "--replug") == 0;
    if (replugging) {
        argv++;
        argc--;
    } else if (argc != 8) {
        fprintf(stderr, "usage: attach-view URI DOMAIN LOOP_A LOOP_B LOOP_OTHER TARGET UNIT\n"
                        "       attach-view --replug URI DOMAIN LOOP_A\n");
        return 2;
    }
    virConnectPtr conn = NULL;
    UsbvmError oerr = { 0 };
    if (usbvm_virt_open(argv[1], &conn, &oerr) < 0) /* with the event loop a detach waits on */
        fprintf(stderr, "attach-view: %s\n", oerr.message);
    virDomainPtr dom = conn ? virDomainLookupByName(conn, argv[2]) : NULL;
    if (!dom) {
        fprintf(stderr, "attach-view: cannot reach domain '%s'\n", argv[2]);
        return 1;
    }
    /* The replugged stick is write-protected: libvirt's XML then says <readonly/>. */
    UsbvmBlock ba = {
        .type = USBVM_BLOCK_DISK, .name = "sdva", .devnode = argv[3], .readonly = replugging
    };
    UsbvmBlock bb = { .type = USBVM_BLOCK_DISK,
                      .name = "sdvb",
                      .devnode = replugging ? NULL : argv[4] };
    UsbvmDevice a = { .port = "9-1",
                      .busnum = 9,
                      .devnum = 11,
                      .vendor_id = 0x0781,
                      .product_id = 0x5567,
                      .serial = "VIEWA",
                      .blocks = &ba,
                      .n_blocks = 1,
                      .identity = "0781:5567:VIEWA",
                      .alias = "ua-usbvm-00000000000000a1" };
    UsbvmDevice b = a;
    b.port = "9-2";
    b.devnum = 12;
    b.serial = "VIEWB";
    b.blocks = &bb;
    b.identity = "0781:5567:VIEWB";
    b.alias = "ua-usbvm-00000000000000b1";
    UsbvmDomDevList known = { 0 };
    UsbvmAttachCtx ctx = { .known = &known, .view = usbvm_domview_new() };
    if (replugging) {
        a.serial = "VIEWC";
        a.identity = "0781:5567:VIEWC";
        a.alias = "ua-usbvm-00000000000000c1";
        int r = replug(conn, dom, &a, &ctx);
        usbvm_domview_free(ctx.view);
        virDomainFree(dom);
        virConnectClose(conn);
        return r;
    }
    int rc = attach(conn, dom, &a, &ctx);
    if (rc == 0) {
        char xml[512];
        snprintf(xml, sizeof(xml),
                 "<disk type='block' device='disk'><driver name='qemu' type='raw'/>"
                 "<source dev='%s'/><target dev='%s' bus='scsi'/>"
                 "<address type='drive' controller='0' bus='0' target='0' unit='%s'/></disk>",
                 argv[5], argv[6], argv[7]);
        if (virDomainAttachDeviceFlags(dom, xml, VIR_DOMAIN_AFFECT_LIVE) < 0) {
            fprintf(stderr, "attach-view: the other disk: %s\n", virGetLastErrorMessage());
            rc = 1;
        }
    }
    if (rc == 0)
        rc = attach(conn, dom, &b, &ctx);
    usbvm_domview_free(ctx.view);
    virDomainFree(dom);
    virConnectClose(conn);
    return rc;
}
