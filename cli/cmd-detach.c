/* usbvm detach <domain>|--all <device> [--timeout SECONDS] [--check] [--force] [--flush] [--json]
 *
 * <device> is a device specifier (resolved through udev) or an alias ("ua-usbvm-..."), which
 * works after the host device is gone. Done only when libvirt confirms the removal; otherwise
 * state "pending" and exit code 5. Refused while the guest has the disk mounted (lib/guest.h). */
#include "cli.h"
#include "guest-json.h"
#include "virt.h"

#include <errno.h>
#include <math.h>
#include <string.h>

enum {
    OPT_ALL = USBVM_OPT_VERB_BASE,
    OPT_TIMEOUT,
    OPT_CHECK,
    OPT_FORCE,
    OPT_LIVE,
    OPT_CONFIG,
    OPT_PERSISTENT,
    OPT_FLUSH,
};

const struct poptOption usbvm_detach_options[] = {
    { "all", 'a', POPT_ARG_NONE, NULL, OPT_ALL,
      "Detach from whichever running domain holds the device", NULL },
    { "timeout", 't', POPT_ARG_STRING, NULL, OPT_TIMEOUT,
      "Wait this long for the guest to release it (default 10; 0: do not wait)", "SECONDS" },
    { "check", '\0', POPT_ARG_NONE, NULL, OPT_CHECK,
      "Only predict whether anything would change (Ansible check mode)", NULL },
    { "force", 'f', POPT_ARG_NONE, NULL, OPT_FORCE,
      "Also detach a device that usbvm did not attach (named explicitly), or one the guest "
      "has mounted",
      NULL },
    { "flush", '\0', POPT_ARG_NONE, NULL, OPT_FLUSH,
      "Freeze and thaw the guest's filesystems on the device first (needs the guest agent)", NULL },
    { "live", '\0', POPT_ARG_NONE, NULL, OPT_LIVE, "Change the running domain (default)", NULL },
    { "config", '\0', POPT_ARG_NONE, NULL, OPT_CONFIG, "Change only the persistent definition",
      NULL },
    { "persistent", '\0', POPT_ARG_NONE, NULL, OPT_PERSISTENT,
      "Change the running domain and its persistent definition", NULL },
    USBVM_COMMON_OPTIONS,
    POPT_TABLEEND,
};

static int parse_timeout(const char *s, int *ret_ms)
{
    if (!s || !*s)
        return -EINVAL;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || *end || end == s || !isfinite(v) || v < 0 || v > 86400)
        return -EINVAL;
    *ret_ms = (int)(v * 1000.0 + 0.5);
    return 0;
}

/* The domain device to detach for a present host device: usbvm's own first. */
static const UsbvmDomDev *pick(const UsbvmDomDevList *l, const char *domain, const UsbvmDevice *d,
                               const char *alias)
{
    const UsbvmDomDev *best = NULL;
    for (size_t i = 0; i < l->n; i++) {
        const UsbvmDomDev *dd = &l->items[i];
        if (domain && !streq(dd->domain, domain))
            continue;
        bool m = d ? usbvm_domdev_matches(dd, d) : streq(dd->alias, alias);
        if (m && (!best || (dd->owned && !best->owned)))
            best = dd;
    }
    return best;
}

static int detach_one(UsbvmCli *cli, virConnectPtr conn, UsbvmAnswer *a, const char *domain,
                      const char *alias, unsigned flags, int timeout_ms, const UsbvmGuestCheck *g,
                      UsbvmError *err)
{
    _cleanup_(virDomainFreep) virDomainPtr dom = NULL;
    int r = usbvm_virt_lookup(conn, domain, &dom, err);
    if (r < 0)
        return r;
    a->domain = domain; /* by name: the caller normalised it */
    char notes[sizeof(a->res.notes)] = "";
    if (g->dd && (flags & USBVM_ATTACH_LIVE)) {
        r = usbvm_guest_before_detach(dom, g->dd, g->d, a->device, g->flags, notes, sizeof(notes),
                                      err);
        if (r < 0)
            return r;
    }
    r = usbvm_virt_detach_alias(conn, dom, alias, flags, timeout_ms, &a->res, err);
    a->have_res = r == 0 || (err && err->kind == USBVM_E_PENDING);
    usbvm_cli_guest_notes(&a->res, notes);
    return r;
}

int usbvm_cmd_detach(UsbvmCli *cli, const UsbvmVerb *verb, int argc, const char **argv)
{
    bool all = false, live = false, config = false, persistent = false;
    unsigned flags = 0, gflags = 0;
    int timeout_ms = 10000;

    poptContext ctx = usbvm_cli_popt(verb, argc, argv);
    int r;
    while ((r = usbvm_cli_next_option(cli, verb, ctx)) > 0) {
        char *arg = poptGetOptArg(ctx);
        switch (r) {
        case OPT_ALL:
            all = true;
            break;
        case OPT_TIMEOUT:
            if (parse_timeout(arg, &timeout_ms) < 0) {
                usbvm_cli_usage_error(verb, "--timeout wants seconds (0 to 86400), not '%s'",
                                      strempty(arg));
                r = -USBVM_E_USAGE;
            }
            break;
        case OPT_CHECK:
            flags |= USBVM_ATTACH_CHECK;
            break;
        case OPT_FORCE:
            flags |= USBVM_ATTACH_FORCE;
            gflags |= USBVM_GUEST_FORCE;
            break;
        case OPT_FLUSH:
            gflags |= USBVM_GUEST_FLUSH;
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
        }
        free(arg);
        if (r < 0)
            break;
    }
    const char **args = NULL;
    size_t n = 0;
    if (r == 0)
        r = usbvm_cli_args(verb, ctx, all ? 1 : 2, all ? 1 : 2, &args, &n);
    if (r < 0) {
        poptFreeContext(ctx);
        return usbvm_cli_exit_from_parse(r);
    }
    if (live || persistent || !config)
        flags |= USBVM_ATTACH_LIVE;
    if (config || persistent)
        flags |= USBVM_ATTACH_CONFIG;
    _cleanup_free_ char *domain = all ? NULL : xstrdup(args[0]);
    _cleanup_free_ char *devspec = xstrdup(args[all ? 0 : 1]);
    poptFreeContext(ctx);

    UsbvmAnswer a = { .domain = domain, .device = devspec };
    UsbvmError err = { 0 };

    /* An alias needs no host device: that is how a vanished device is detached. */
    bool is_alias = strncmp(devspec, "ua-", 3) == 0;
    _cleanup_(usbvm_device_list_freep) UsbvmDeviceList *list = NULL;
    UsbvmDevice *d = NULL;
    if (!is_alias) {
        struct udev *udev = usbvm_cli_udev(cli, &err);
        if (!udev)
            return usbvm_cli_answer(cli, &a, NULL, &err);
        if (usbvm_device_list_enumerate(udev, &usbvm_host_paths_default, &list, &err) < 0)
            return usbvm_cli_answer(cli, &a, NULL, &err);
        if (usbvm_device_list_resolve(list, devspec, &d, &err) < 0) {
            /* With --force the admin may name a libvirt alias ("hostdev0") directly. */
            if (!(flags & USBVM_ATTACH_FORCE) || all)
                return usbvm_cli_answer(cli, &a, NULL, &err);
            usbvm_error_clear(&err);
            is_alias = true;
        } else {
            a.device = d->port;
            a.alias = d->alias;
        }
    } else {
        a.alias = devspec;
    }

    virConnectPtr conn = usbvm_cli_connect(cli, &err);
    if (!conn)
        return usbvm_cli_answer(cli, &a, NULL, &err);
    _cleanup_(usbvm_domdev_list_freep) UsbvmDomDevList *l = NULL;
    if (usbvm_virt_list_domdevs(conn, &l, &err) < 0)
        return usbvm_cli_answer(cli, &a, NULL, &err);

    if (domain) {
        /* Normalise a UUID to the name the domain devices carry. */
        _cleanup_(virDomainFreep) virDomainPtr dom = NULL;
        if (usbvm_virt_lookup(conn, domain, &dom, &err) < 0)
            return usbvm_cli_answer(cli, &a, NULL, &err);
        free(domain);
        domain = xstrdup(virDomainGetName(dom));
        a.domain = domain;
    }

    const UsbvmDomDev *dd = pick(l, domain, d, devspec);
    if (!dd && all) {
        a.have_res = true;
        a.res.state = USBVM_STATE_DETACHED;
        _cleanup_free_ char *msg =
            xasprintf("%s is not attached to any running domain; nothing to do", a.device);
        return usbvm_cli_answer(cli, &a, msg, NULL);
    }
    _cleanup_free_ char *alias = xstrdup(dd ? dd->alias : is_alias ? devspec : d->alias);
    if (dd) {
        a.mode = usbvm_mode_to_string(dd->mode);
        if (!dd->alias) {
            usbvm_error_set(&err, USBVM_E_REFUSED, EPERM,
                            "%s is in domain '%s' without an alias; usbvm cannot detach it",
                            a.device, dd->domain);
            return usbvm_cli_answer(cli, &a, NULL, &err);
        }
    }
    a.alias = alias;
    _cleanup_free_ char *target_domain = xstrdup(dd ? dd->domain : domain);

    if (flags & USBVM_ATTACH_CHECK)
        gflags &= ~USBVM_GUEST_FLUSH; /* --check changes nothing, in the guest neither */
    UsbvmGuestCheck g = { .dd = dd, .d = d, .flags = gflags };
    r = detach_one(cli, conn, &a, target_domain, alias, flags, timeout_ms, &g, &err);
    if (r < 0)
        return usbvm_cli_answer(cli, &a, NULL, &err);

    _cleanup_free_ char *msg = NULL;
    if (!a.res.changed)
        msg = xasprintf("%s is not attached to '%s'; nothing to do", a.device, a.domain);
    else if (flags & USBVM_ATTACH_CHECK)
        msg = xasprintf("would detach %s from '%s' (alias %s)", a.device, a.domain, alias);
    else
        msg = xasprintf("detached %s from '%s' (alias %s)", a.device, a.domain, alias);
    return usbvm_cli_answer(cli, &a, msg, NULL);
}
