/* usbvm doctor [<domain>] [<device>]: why a device does not show up in a domain. The library
 * runs the checks; this file works out what the arguments name, and prints one line per check
 * (with the fix and any quoted log lines under a failure), or one JSON object. */
#include "cli.h"
#include "config.h"
#include "doctor.h"

#include <langinfo.h>
#include <string.h>

enum { OPT_RULES = USBVM_OPT_VERB_BASE };

const struct poptOption usbvm_doctor_options[] = {
    { "rules", 'r', POPT_ARG_STRING, NULL, OPT_RULES,
      "Rules file or directory (default " USBVM_RULES_DIR ")", "PATH" },
    USBVM_COMMON_OPTIONS,
    POPT_TABLEEND,
};

/* "1-2", "3-1.4.2": a port path, which names a port even when no device answers there. */
static bool is_port_path(const char *s)
{
    const char *p = s;
    if (*p < '0' || *p > '9')
        return false;
    while (*p >= '0' && *p <= '9')
        p++;
    if (*p++ != '-')
        return false;
    for (bool digit = false;; p++) {
        if (*p >= '0' && *p <= '9')
            digit = true;
        else if (*p == '.' && digit)
            digit = false;
        else
            return *p == '\0' && digit;
    }
}

typedef struct DoctorArgs {
    const char *domain;
    const char *device_spec;
} DoctorArgs;

/* With one argument: a device when it resolves as one or names a port, else a domain. */
static void sort_args(const char **args, size_t n, const UsbvmDeviceList *list, DoctorArgs *ret)
{
    *ret = (DoctorArgs){ 0 };
    if (n == 2) {
        ret->domain = args[0];
        ret->device_spec = args[1];
    } else if (n == 1) {
        UsbvmDevice *d = NULL;
        if ((list && usbvm_device_list_resolve(list, args[0], &d, NULL) == 0) ||
            is_port_path(args[0]))
            ret->device_spec = args[0];
        else
            ret->domain = args[0];
    }
}

static void resolve_device(UsbvmCli *cli, const DoctorArgs *a, const UsbvmDeviceList *list,
                           const UsbvmError *enum_err, UsbvmDoctorQuery *q, UsbvmChecks *out)
{
    if (!a->device_spec)
        return;
    UsbvmDevice *d = NULL;
    UsbvmError err = { 0 };
    if (!list)
        err = *enum_err;
    else if (usbvm_device_list_resolve(list, a->device_spec, &d, &err) == 0) {
        q->device = d;
        q->port = d->port;
        _cleanup_free_ char *name = usbvm_device_name(d);
        usbvm_checks_add(out, "device", true, NULL, "%s %04x:%04x %s%s(%s Mbit/s)", d->port,
                         d->vendor_id, d->product_id, name ? name : "", name ? " " : "",
                         d->speed ? d->speed : "?");
        return;
    }
    if (is_port_path(a->device_spec)) {
        q->port = a->device_spec;
        usbvm_checks_add(out, "device", false,
                         "The kernel did not enumerate it: see the kernel-log check, replug it, "
                         "try another port and cable.",
                         "no device at port %s", a->device_spec);
        return;
    }
    usbvm_checks_add(out, "device", false,
                     "Name a device as 'usbvm list --all' shows it (port path, VID:PID, /dev/sdX).",
                     "%s", err.message);
}

static json_object *check_json(const UsbvmCheck *k)
{
    json_object *o = json_object_new_object();
    usbvm_json_add_str(o, "name", k->name);
    json_object_object_add(o, "ok", json_object_new_boolean(k->ok));
    usbvm_json_add_str(o, "found", k->found);
    usbvm_json_add_str(o, "fix", k->fix);
    json_object *log = json_object_new_array();
    for (size_t i = 0; k->log && k->log[i]; i++)
        json_object_array_add(log, json_object_new_string(k->log[i]));
    json_object_object_add(o, "log", log);
    return o;
}

/* Each line of a (multi-line) text, escaped for the terminal: the first after prefix, the
 * others under it. */
static void print_lines(const char *prefix, const char *text)
{
    _cleanup_free_ char *copy = xstrdup(text);
    char *save = NULL;
    bool first = true;
    for (char *l = strtok_r(copy, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        _cleanup_free_ char *e = usbvm_escape(l);
        printf("%*s%s\n", first ? 0 : (int)strlen(prefix), first ? prefix : "", e);
        first = false;
    }
}

static void print_text(const UsbvmChecks *c)
{
    bool fancy = isatty(STDOUT_FILENO) && streq(nl_langinfo(CODESET), "UTF-8");
    size_t w = 0;
    for (size_t i = 0; i < c->n; i++)
        if (strlen(c->items[i].name) > w)
            w = strlen(c->items[i].name);
    for (size_t i = 0; i < c->n; i++) {
        const UsbvmCheck *k = &c->items[i];
        const char *mark = fancy ? (k->ok ? "\u2714" : "\u2718") : (k->ok ? "ok  " : "FAIL");
        _cleanup_free_ char *found = usbvm_escape(k->found);
        printf("%s %-*s  %s\n", mark, (int)w, k->name, found);
        if (k->ok)
            continue;
        if (k->fix)
            print_lines("       fix: ", k->fix);
        for (size_t j = 0; k->log && k->log[j]; j++)
            print_lines("       | ", k->log[j]);
    }
}

static int report(UsbvmCli *cli, const DoctorArgs *a, const UsbvmChecks *c)
{
    size_t failed = usbvm_checks_failed(c);
    int rc = failed ? USBVM_E_CHECKS : 0;
    _cleanup_free_ char *msg = failed ? xasprintf("%zu of %zu checks failed", failed, c->n)
                                      : xasprintf("all %zu checks passed", c->n);
    if (!cli->json) {
        print_text(c);
        if (cli->verbosity >= 0)
            printf("%s\n", msg);
        return rc;
    }
    _cleanup_(json_object_putp) json_object *o = json_object_new_object();
    json_object_object_add(o, "changed", json_object_new_boolean(false));
    json_object_object_add(o, "failed", json_object_new_boolean(failed > 0));
    usbvm_json_add_str(o, "msg", msg);
    json_object_object_add(o, "rc", json_object_new_int(rc));
    usbvm_json_add_str(o, "domain", a->domain);
    usbvm_json_add_str(o, "device", a->device_spec);
    json_object *arr = json_object_new_array();
    for (size_t i = 0; i < c->n; i++)
        json_object_array_add(arr, check_json(&c->items[i]));
    json_object_object_add(o, "checks", arr);
    usbvm_out_json(o);
    return rc;
}

static int on_option(UsbvmCli *cli, const UsbvmVerb *verb, int val, const char *arg, void *ud)
{
    char **rules_path = ud; /* --rules, the only one */
    free(*rules_path);
    *rules_path = xstrdup(arg);
    return 0;
}

int usbvm_cmd_doctor(UsbvmCli *cli, const UsbvmVerb *verb, int argc, const char **argv)
{
    _cleanup_free_ char *rules_path = NULL;
    _cleanup_(usbvm_cli_args_clear) UsbvmCliArgs p = { 0 };
    if (!usbvm_cli_parse(cli, verb, argc, argv, on_option, &rules_path, &p))
        return p.rc;
    size_t n = p.n;

    UsbvmError err = { 0 };
    _cleanup_(usbvm_device_list_freep) UsbvmDeviceList *list = NULL;
    usbvm_cli_devices(&list, &err);

    DoctorArgs a;
    sort_args((const char **)p.args, n, list, &a);
    UsbvmChecks checks = { 0 };
    UsbvmDoctorQuery q = {
        .domain = a.domain,
        .uri = cli->connect_uri,
        .rules_path = rules_path,
    };
    resolve_device(cli, &a, list, &err, &q, &checks);
    usbvm_doctor_run(&usbvm_doctor_paths_default, &q, &checks);
    int r = report(cli, &a, &checks);
    usbvm_checks_clear(&checks);
    return r;
}
