/* usbvm attach <domain> <device> [--mode MODE] [--readonly] [--live|--config|--persistent]
 * [--cache C] [--io IO] [--print-xml] [--check] [--json]
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
    OPT_LIVE,
    OPT_CONFIG,
    OPT_PERSISTENT,
    OPT_CACHE,
    OPT_IO,
    OPT_PRINT_XML,
    OPT_CHECK,
};

const struct poptOption usbvm_attach_options[] = {
    { "mode", 'm', POPT_ARG_STRING, NULL, OPT_MODE,
      "How the device reaches the guest (default: usb)", USBVM_MODE_CHOICES },
    { "readonly", 'r', POPT_ARG_NONE, NULL, OPT_READONLY, "Disk modes: attach read-only", NULL },
    { "live", '\0', POPT_ARG_NONE, NULL, OPT_LIVE, "Change the running domain (default)", NULL },
    { "config", '\0', POPT_ARG_NONE, NULL, OPT_CONFIG, "Change only the persistent definition",
      NULL },
    { "persistent", '\0', POPT_ARG_NONE, NULL, OPT_PERSISTENT,
      "Change the running domain and its persistent definition", NULL },
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

int usbvm_cmd_attach(UsbvmCli *cli, const UsbvmVerb *verb, int argc, const char **argv)
{
    UsbvmAttachSpec spec = { .mode = USBVM_MODE_USB };
    unsigned flags = 0;
    bool want_xml = false, live = false, config = false, persistent = false;
    _cleanup_free_ char *cache = NULL, *io = NULL;

    poptContext ctx = usbvm_cli_popt(verb, argc, argv);
    int r;
    while ((r = usbvm_cli_next_option(cli, verb, ctx)) > 0) {
        const char *arg = poptGetOptArg(ctx);
        switch (r) {
        case OPT_MODE:
            if (usbvm_mode_from_string(arg, &spec.mode) < 0) {
                usbvm_cli_usage_error(verb, "unknown mode '%s'; choose one of %s", arg,
                                      USBVM_MODE_CHOICES);
                r = -USBVM_E_USAGE;
            }
            break;
        case OPT_READONLY:
            spec.readonly = true;
            break;
        case OPT_LIVE:
            live = true;
            break;
        case OPT_CONFIG:
            config = true;
            break;
        case OPT_PERSISTENT:
            persistent = true;
            break;
        case OPT_CACHE:
            if (!usbvm_cache_valid(arg)) {
                usbvm_cli_usage_error(verb, "unknown cache mode '%s'; choose one of %s", arg,
                                      USBVM_CACHE_CHOICES);
                r = -USBVM_E_USAGE;
            }
            free(cache);
            cache = xstrdup(arg);
            break;
        case OPT_IO:
            if (!usbvm_io_valid(arg)) {
                usbvm_cli_usage_error(verb, "unknown io mode '%s'; choose one of %s", arg,
                                      USBVM_IO_CHOICES);
                r = -USBVM_E_USAGE;
            }
            free(io);
            io = xstrdup(arg);
            break;
        case OPT_PRINT_XML:
            want_xml = true;
            break;
        case OPT_CHECK:
            flags |= USBVM_ATTACH_CHECK;
            break;
        }
        free((char *)arg);
        if (r < 0)
            break;
    }
    const char **args = NULL;
    size_t n = 0;
    if (r == 0)
        r = usbvm_cli_args(verb, ctx, 2, 2, &args, &n);
    if (r == 0 && persistent + live + config > 1 && !(live && config && !persistent)) {
        usbvm_cli_usage_error(verb, "--persistent already means --live and --config");
        r = -USBVM_E_USAGE;
    }
    if (r == 0 && !usbvm_mode_is_disk(spec.mode) && (spec.readonly || cache || io)) {
        usbvm_cli_usage_error(verb, "--readonly, --cache and --io apply to the disk modes only");
        r = -USBVM_E_USAGE;
    }
    if (r < 0) {
        poptFreeContext(ctx);
        return usbvm_cli_exit_from_parse(r);
    }
    if (live || persistent || !config)
        flags |= USBVM_ATTACH_LIVE;
    if (config || persistent)
        flags |= USBVM_ATTACH_CONFIG;
    spec.cache = cache;
    spec.io = io;
    spec.persistent = (flags & USBVM_ATTACH_CONFIG) != 0;

    _cleanup_free_ char *domain = xstrdup(args[0]);
    _cleanup_free_ char *devspec = xstrdup(args[1]);
    poptFreeContext(ctx);

    UsbvmAnswer a = { .domain = domain,
                      .device = devspec,
                      .mode = usbvm_mode_to_string(spec.mode) };
    UsbvmError err = { 0 };

    struct udev *udev = usbvm_cli_udev(cli, &err);
    if (!udev)
        return usbvm_cli_answer(cli, &a, NULL, &err);
    _cleanup_(usbvm_device_list_freep) UsbvmDeviceList *list = NULL;
    if (usbvm_device_list_enumerate(udev, &usbvm_host_paths_default, &list, &err) < 0)
        return usbvm_cli_answer(cli, &a, NULL, &err);
    UsbvmDevice *d = NULL;
    if (usbvm_device_list_resolve(list, devspec, &d, &err) < 0)
        return usbvm_cli_answer(cli, &a, NULL, &err);
    a.device = d->port;
    a.alias = d->alias;
    a.identity = d->identity;

    if (want_xml)
        return print_xml(cli, domain, d, &spec, &a);
    _cleanup_free_ char *ambiguity = usbvm_device_ambiguity(d);
    if (ambiguity) {
        /* Its attachment would carry the other device's alias too: a detach, an unplug or a
         * policy decision about either would act on both. */
        usbvm_error_set(&err, USBVM_E_REFUSED, ENOTUNIQ, "cannot attach %s to '%s': %s", d->port,
                        domain, ambiguity);
        return usbvm_cli_answer(cli, &a, NULL, &err);
    }

    virConnectPtr conn = usbvm_cli_connect(cli, &err);
    if (!conn)
        return usbvm_cli_answer(cli, &a, NULL, &err);
    _cleanup_(virDomainFreep) virDomainPtr dom = NULL;
    if (usbvm_virt_lookup(conn, domain, &dom, &err) < 0)
        return usbvm_cli_answer(cli, &a, NULL, &err);
    /* Report the domain by name even when given by UUID. */
    free(domain);
    domain = xstrdup(virDomainGetName(dom));
    a.domain = domain;

    r = usbvm_virt_attach(conn, dom, d, &spec, flags, &a.res, &err);
    if (r < 0)
        return usbvm_cli_answer(cli, &a, NULL, &err);
    a.have_res = true;

    _cleanup_free_ char *msg = NULL;
    const char *where = (flags & USBVM_ATTACH_LIVE) && (flags & USBVM_ATTACH_CONFIG)
                            ? " and its persistent definition"
                        : (flags & USBVM_ATTACH_CONFIG) ? "'s persistent definition"
                                                        : "";
    if (!a.res.changed)
        msg = xasprintf("%s is already attached to '%s'%s as %s; nothing to do", d->port, domain,
                        where, a.mode);
    else if (flags & USBVM_ATTACH_CHECK)
        msg = xasprintf("would attach %s to '%s'%s as %s (alias %s)%s%s", d->port, domain, where,
                        a.mode, d->alias, a.res.notes[0] ? "; " : "", a.res.notes);
    else
        msg = xasprintf("attached %s to '%s'%s as %s (alias %s)%s%s", d->port, domain, where,
                        a.mode, d->alias, a.res.notes[0] ? "; " : "", a.res.notes);
    return usbvm_cli_answer(cli, &a, msg, NULL);
}
