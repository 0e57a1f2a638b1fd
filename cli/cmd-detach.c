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
    OPT_TIMEOUT = USBVM_OPT_VERB_BASE,
    OPT_CHECK,
    OPT_FORCE,
    OPT_FLUSH,
};

const struct poptOption usbvm_detach_options[] = {
    { "all", 'a', POPT_ARG_NONE, NULL, USBVM_OPT_ALL,
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
    USBVM_SCOPE_OPTIONS,
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

typedef struct DetachOptions {
    bool all;
    unsigned flags, gflags;
    int timeout_ms;
} DetachOptions;

static int on_option(UsbvmCli *cli, const UsbvmVerb *verb, int val, const char *arg, void *ud)
{
    DetachOptions *o = ud;
    switch (val) {
    case USBVM_OPT_ALL:
        o->all = true;
        break;
    case OPT_TIMEOUT:
        if (parse_timeout(arg, &o->timeout_ms) < 0)
            return usbvm_cli_usage_error(
                cli, verb, "--timeout wants seconds (0 to 86400), not '%s'", strempty(arg));
        break;
    case OPT_CHECK:
        o->flags |= USBVM_ATTACH_CHECK;
        break;
    case OPT_FORCE:
        o->flags |= USBVM_ATTACH_FORCE;
        o->gflags |= USBVM_GUEST_FORCE;
        break;
    case OPT_FLUSH:
        o->gflags |= USBVM_GUEST_FLUSH;
        break;
    }
    return 0;
}

/* The host device devspec names, or, for an alias (or with --force an unknown name), none:
 * a vanished device is detached by its alias. */
static int resolve_device(UsbvmCli *cli, const char *devspec, const char *domain, unsigned flags,
                          bool all, UsbvmDeviceList **list, UsbvmDevice **ret, UsbvmAnswer *a,
                          UsbvmError *err)
{
    *ret = NULL;
    if (strncmp(devspec, "ua-", 3) == 0) {
        a->alias = devspec;
        return 0;
    }
    if (usbvm_cli_resolve(cli, devspec, list, ret, err) < 0) {
        /* With --force the admin may name a libvirt alias ("hostdev0") directly. */
        if (!(flags & USBVM_ATTACH_FORCE) || all || !*list)
            return -ENOENT;
        usbvm_error_clear(err);
        *ret = NULL;
        return 0;
    }
    a->device = (*ret)->port;
    a->alias = (*ret)->alias;
    _cleanup_free_ char *ambiguity = usbvm_device_ambiguity(*ret);
    if (ambiguity) {
        /* The alias is the other device's too: which one is attached cannot be told from the
         * domain. The admin who knows names the attachment itself. */
        usbvm_error_set(err, USBVM_E_REFUSED, ENOTUNIQ,
                        "cannot detach %s by its port: %s; if you mean the attachment under that "
                        "alias, name it: usbvm detach %s %s",
                        (*ret)->port, ambiguity, domain ? domain : "--all", (*ret)->alias);
        return -ENOTUNIQ;
    }
    return 0;
}

static char *answer_message(const UsbvmAnswer *a, unsigned flags)
{
    if (!a->res.changed)
        return xasprintf("%s is not attached to '%s'; nothing to do", a->device, a->domain);
    return xasprintf("%s %s from '%s' (alias %s)",
                     flags & USBVM_ATTACH_CHECK ? "would detach" : "detached", a->device, a->domain,
                     a->alias);
}

int usbvm_cmd_detach(UsbvmCli *cli, const UsbvmVerb *verb, int argc, const char **argv)
{
    DetachOptions o = { .timeout_ms = 10000 };
    _cleanup_(usbvm_cli_args_clear) UsbvmCliArgs p = { 0 };
    if (!usbvm_cli_parse(cli, verb, argc, argv, on_option, &o, &p))
        return p.rc;
    unsigned flags = o.flags | p.scope;
    bool all = o.all;
    _cleanup_free_ char *domain = all ? NULL : xstrdup(p.args[0]);
    const char *devspec = p.args[all ? 0 : 1];

    UsbvmAnswer a = { .domain = domain, .device = devspec };
    UsbvmError err = { 0 };

    _cleanup_(usbvm_device_list_freep) UsbvmDeviceList *list = NULL;
    UsbvmDevice *d = NULL;
    if (resolve_device(cli, devspec, domain, flags, all, &list, &d, &a, &err) < 0)
        return usbvm_cli_answer(cli, &a, NULL, &err);
    bool is_alias = !d;

    if (domain) {
        /* Normalise a UUID to the name the domain devices carry. */
        _cleanup_(virDomainFreep) virDomainPtr dom = NULL;
        if (usbvm_cli_domain(cli, &domain, &dom, &err) < 0)
            return usbvm_cli_answer(cli, &a, NULL, &err);
        a.domain = domain;
    }
    virConnectPtr conn = usbvm_cli_connect(cli, &err);
    if (!conn)
        return usbvm_cli_answer(cli, &a, NULL, &err);
    _cleanup_(usbvm_domdev_list_freep) UsbvmDomDevList *l = NULL;
    if (usbvm_virt_list_domdevs(conn, &l, &err) < 0)
        return usbvm_cli_answer(cli, &a, NULL, &err);

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

    /* --check changes nothing, in the guest neither. */
    UsbvmGuestCheck g = {
        .dd = dd, .d = d, .flags = o.gflags & ~(flags & USBVM_ATTACH_CHECK ? USBVM_GUEST_FLUSH : 0)
    };
    if (detach_one(cli, conn, &a, target_domain, alias, flags, o.timeout_ms, &g, &err) < 0)
        return usbvm_cli_answer(cli, &a, NULL, &err);
    _cleanup_free_ char *msg = answer_message(&a, flags);
    return usbvm_cli_answer(cli, &a, msg, NULL);
}
