/* usbvm attach <domain> <device> [--mode MODE] [--readonly] [--live|--config|--persistent]
 * [--cache C] [--io IO] [--print-xml] [--check] [--json] (the verb table in main.c declares
 * the arity and the exclusive options)
 *
 * One answer object with Ansible's keys (changed, failed, msg, rc) plus domain, device, mode,
 * alias, state and notes; --json prints it, text mode prints msg. */
#include "cli.h"
#include "virt.h"

#include <errno.h>
#include <string.h>

enum {
    OPT_MODE = USBVM_OPT_VERB_BASE,
    OPT_READONLY,
    OPT_CACHE,
    OPT_IO,
    OPT_PRINT_XML,
    OPT_CHECK,
};

const struct poptOption usbvm_attach_options[] = {
    { "mode", 'm', POPT_ARG_STRING, NULL, OPT_MODE,
      "How the device reaches the guest (default: usb)", USBVM_MODE_CHOICES },
    { "readonly", '\0', POPT_ARG_NONE, NULL, OPT_READONLY, "Disk modes: attach read-only", NULL },
    USBVM_SCOPE_OPTIONS,
    { "cache", '\0', POPT_ARG_STRING, NULL, OPT_CACHE, "Disk modes: cache mode (default: none)",
      USBVM_CACHE_CHOICES },
    { "io", '\0', POPT_ARG_STRING, NULL, OPT_IO, "Disk modes: io mode (default: native)",
      USBVM_IO_CHOICES },
    { "print-xml", '\0', POPT_ARG_NONE, NULL, OPT_PRINT_XML,
      "Print the device XML and exit without changing anything", NULL },
    { "check", '\0', POPT_ARG_NONE, NULL, OPT_CHECK,
      "Only predict whether anything would change (Ansible check mode)", NULL },
    USBVM_COMMON_OPTIONS,
    POPT_TABLEEND,
};

typedef struct AttachOptions {
    UsbvmAttachSpec spec;
    char *cache, *io;
    bool want_xml, check;
} AttachOptions;

static int on_option(UsbvmCli *cli, const UsbvmVerb *verb, int val, const char *arg, void *ud)
{
    AttachOptions *o = ud;
    switch (val) {
    case OPT_MODE:
        if (usbvm_mode_from_string(arg, &o->spec.mode) < 0)
            return usbvm_cli_usage_error(cli, verb, "unknown mode '%s'; choose one of %s", arg,
                                         USBVM_MODE_CHOICES);
        break;
    case OPT_READONLY:
        o->spec.readonly = true;
        break;
    case OPT_CACHE:
        if (!usbvm_cache_valid(arg))
            return usbvm_cli_usage_error(cli, verb, "unknown cache mode '%s'; choose one of %s",
                                         arg, USBVM_CACHE_CHOICES);
        free(o->cache);
        o->cache = xstrdup(arg);
        break;
    case OPT_IO:
        if (!usbvm_io_valid(arg))
            return usbvm_cli_usage_error(cli, verb, "unknown io mode '%s'; choose one of %s", arg,
                                         USBVM_IO_CHOICES);
        free(o->io);
        o->io = xstrdup(arg);
        break;
    case OPT_PRINT_XML:
        o->want_xml = true;
        break;
    case OPT_CHECK:
        o->check = true;
        break;
    }
    return 0;
}

static int print_xml(UsbvmCli *cli, const char *domain, const UsbvmDevice *d,
                     const UsbvmAttachSpec *spec, UsbvmAnswer *a)
{
    /* The domain XML only picks the disk target; without it, defaults (vda, sda). */
    _cleanup_free_ char *dxml = NULL;
    UsbvmError ignore = { 0 };
    virConnectPtr conn = domain ? usbvm_cli_connect(cli, &ignore) : NULL;
    if (conn) {
        virDomainPtr dom = NULL;
        if (usbvm_virt_lookup(conn, domain, &dom, &ignore) == 0) {
            dxml = virDomainGetXMLDesc(dom, 0);
            virDomainFree(dom);
        }
    }
    UsbvmError err = { 0 };
    _cleanup_free_ char *xml = NULL;
    if (usbvm_virt_device_xml(d, spec, dxml, &xml, &err) < 0)
        return usbvm_cli_answer(cli, a, NULL, &err);
    if (cli->json) {
        _cleanup_(json_object_putp) json_object *o = json_object_new_object();
        usbvm_json_add_str(o, "domain", domain);
        usbvm_json_add_str(o, "device", a->device);
        usbvm_json_add_str(o, "mode", a->mode);
        usbvm_json_add_str(o, "alias", a->alias);
        usbvm_json_add_str(o, "xml", xml);
        json_object_object_add(o, "changed", json_object_new_boolean(false));
        json_object_object_add(o, "failed", json_object_new_boolean(false));
        json_object_object_add(o, "rc", json_object_new_int(0));
        usbvm_out_json(o);
    } else {
        fputs(xml, stdout);
    }
    return 0;
}

static char *answer_message(const UsbvmDevice *d, const UsbvmAnswer *a, unsigned flags)
{
    const char *where = (flags & USBVM_ATTACH_LIVE) && (flags & USBVM_ATTACH_CONFIG)
                            ? " and its persistent definition"
                        : (flags & USBVM_ATTACH_CONFIG) ? "'s persistent definition"
                                                        : "";
    if (!a->res.changed)
        return xasprintf("%s is already attached to '%s'%s as %s; nothing to do", d->port,
                         a->domain, where, a->mode);
    return xasprintf("%s %s to '%s'%s as %s (alias %s)%s%s",
                     flags & USBVM_ATTACH_CHECK ? "would attach" : "attached", d->port, a->domain,
                     where, a->mode, d->alias, a->res.notes[0] ? "; " : "", a->res.notes);
}

int usbvm_cmd_attach(UsbvmCli *cli, const UsbvmVerb *verb, int argc, const char **argv)
{
    AttachOptions o = { .spec = { .mode = USBVM_MODE_USB } };
    _cleanup_(usbvm_cli_args_clear) UsbvmCliArgs p = { 0 };
    bool ok = usbvm_cli_parse(cli, verb, argc, argv, on_option, &o, &p);
    _cleanup_free_ char *cache = o.cache, *io = o.io;
    if (!ok)
        return p.rc;
    if (!usbvm_mode_is_disk(o.spec.mode) && (o.spec.readonly || cache || io))
        return usbvm_cli_usage_error(cli, verb,
                                     "--readonly, --cache and --io apply to the disk modes only");
    unsigned flags = p.scope | (o.check ? USBVM_ATTACH_CHECK : 0);
    UsbvmAttachSpec spec = o.spec;
    spec.cache = cache;
    spec.io = io;
    spec.persistent = (flags & USBVM_ATTACH_CONFIG) != 0;
    _cleanup_free_ char *domain = xstrdup(p.args[0]);
    const char *devspec = p.args[1];

    UsbvmAnswer a = { .domain = domain,
                      .device = devspec,
                      .mode = usbvm_mode_to_string(spec.mode) };
    UsbvmError err = { 0 };

    _cleanup_(usbvm_device_list_freep) UsbvmDeviceList *list = NULL;
    UsbvmDevice *d = NULL;
    if (usbvm_cli_resolve(cli, devspec, &list, &d, &err) < 0)
        return usbvm_cli_answer(cli, &a, NULL, &err);
    a.device = d->port;
    a.alias = d->alias;
    a.identity = d->identity;

    if (o.want_xml)
        return print_xml(cli, domain, d, &spec, &a);
    _cleanup_free_ char *ambiguity = usbvm_device_ambiguity(d);
    if (ambiguity) {
        /* Its attachment would carry the other device's alias too: a detach, an unplug or a
         * policy decision about either would act on both. */
        usbvm_error_set(&err, USBVM_E_REFUSED, ENOTUNIQ, "cannot attach %s to '%s': %s", d->port,
                        domain, ambiguity);
        return usbvm_cli_answer(cli, &a, NULL, &err);
    }
    /* The host's use of the device refuses the attach whatever libvirt would answer, so it is
     * checked before connecting: --check gives the refusal even while libvirtd is down. */
    if (usbvm_device_check_host_use(d, &err) < 0) {
        if (!err.kind)
            err.kind = USBVM_E_REFUSED;
        usbvm_error_prefix(&err, "cannot attach %s to '%s': ", d->port, domain);
        return usbvm_cli_answer(cli, &a, NULL, &err);
    }

    _cleanup_(virDomainFreep) virDomainPtr dom = NULL;
    if (usbvm_cli_domain(cli, &domain, &dom, &err) < 0)
        return usbvm_cli_answer(cli, &a, NULL, &err);
    a.domain = domain;

    if (usbvm_virt_attach(cli->conn, dom, d, &spec, flags, &a.res, &err) < 0)
        return usbvm_cli_answer(cli, &a, NULL, &err);
    a.have_res = true;
    _cleanup_free_ char *msg = answer_message(d, &a, flags);
    return usbvm_cli_answer(cli, &a, msg, NULL);
}
