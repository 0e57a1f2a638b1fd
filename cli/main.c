/* usbvm: global options, the verb table, and dispatch. Global options stop at the verb; each
 * verb parses its own options. --help and the completion's verb list come from the table. */
#include "cli.h"
#include "config.h"
#include "log.h"
#include "virt.h"

#include <errno.h>
#include <locale.h>
#include <string.h>

const UsbvmVerb usbvm_verbs[] = {
    { "list", usbvm_cmd_list, usbvm_list_options, "[--all]",
      "List USB storage devices (every USB device with --all)" },
    { "show",
      usbvm_cmd_show,
      usbvm_show_options,
      "<device>",
      "Show everything about one device, descriptors included",
      { USBVM_ARG_DEVICE } },
    { "attach",
      usbvm_cmd_attach,
      usbvm_attach_options,
      "<domain> <device> [--mode " USBVM_MODE_CHOICES "] [--readonly] [--live|--config|"
      "--persistent] [--print-xml] [--check]",
      "Attach a device to a running domain",
      { USBVM_ARG_DOMAIN, USBVM_ARG_DEVICE } },
    { "detach",
      usbvm_cmd_detach,
      usbvm_detach_options,
      "<domain>|--all <device> [--timeout SECONDS] [--check]",
      "Detach a device usbvm attached, and wait until the guest released it",
      { USBVM_ARG_DOMAIN, USBVM_ARG_ATTACHED } },
    { "status", usbvm_cmd_status, usbvm_status_options, "",
      "List what usbvm has attached to running domains" },
    { "rules", usbvm_cmd_rules, NULL, "check|test|show|generate ...",
      "Check, test, show and generate policy rules", .subverbs = usbvm_rules_subverbs },
    { "watch", usbvm_cmd_watch, usbvm_watch_options,
      "[--rules PATH] [--once] [--dry-run] [--present apply|keep]",
      "Run the policy daemon: attach and detach devices as they come and go" },
    { "doctor",
      usbvm_cmd_doctor,
      usbvm_doctor_options,
      "[<domain>] [<device>] [--rules PATH]",
      "Find out why a device does not reach a domain",
      { USBVM_ARG_DOMAIN_OR_DEVICE, USBVM_ARG_DEVICE } },
    { "__complete", usbvm_cmd_complete, usbvm_complete_options, "<words...>",
      "Completion helper for the shell", .hidden = true },
    { NULL },
};

static void print_verbs(FILE *f, const char *prefix, const UsbvmVerb *verbs)
{
    size_t w = 0;
    for (const UsbvmVerb *v = verbs; v->name; v++)
        if (!v->hidden && strlen(v->name) > w)
            w = strlen(v->name);
    for (const UsbvmVerb *v = verbs; v->name; v++)
        if (!v->hidden)
            fprintf(f, "%s%-*s  %s\n", prefix, (int)w, v->name, v->summary);
}

static void print_main_help(FILE *f)
{
    fprintf(f, "Usage: usbvm [OPTIONS] VERB [VERB OPTIONS] [ARGS]\n"
               "\n"
               "Pass USB devices, above all sticks and disks, into libvirt domains by policy.\n"
               "\n"
               "Verbs:\n");
    print_verbs(f, "  ", usbvm_verbs);
    fprintf(f, "\n"
               "Options:\n"
               "  -c, --connect URI  libvirt connection URI (default: libvirt's default)\n"
               "      --json         Print JSON (schema in usbvm(1))\n"
               "  -v, --verbose      More messages (repeat for debug)\n"
               "  -q, --quiet        Only errors\n"
               "      --version      Print the version\n"
               "  -h, --help         Show this help\n"
               "\n"
               "'usbvm VERB --help' shows a verb's options. See usbvm(1) and usbvm.rules(5).\n");
}

static const UsbvmVerb *find_verb(const UsbvmVerb *verbs, const char *name)
{
    for (const UsbvmVerb *v = verbs; v->name; v++)
        if (streq(v->name, name))
            return v;
    return NULL;
}

/* ---- Option parsing shared by verbs ------------------------------------------------------ */

poptContext usbvm_cli_popt(const UsbvmVerb *verb, int argc, const char **argv)
{
    /* argv[0] is the verb name; popt skips it. POSIXMEHARDER is off so options may follow
     * positional arguments ("usbvm attach win10 1-2.4 --json"); "--" ends options. */
    poptContext ctx = poptGetContext(verb->name, argc, argv, verb->options, 0);
    return ctx;
}

/* "attach", or "rules check" for a subverb. */
static char *verb_fullname(const UsbvmVerb *verb)
{
    return verb->parent ? xasprintf("%s %s", verb->parent, verb->name) : xstrdup(verb->name);
}

static void print_verb_help(const UsbvmVerb *verb, poptContext ctx)
{
    _cleanup_free_ char *name = verb_fullname(verb);
    printf("Usage: usbvm %s %s\n\n%s\n\n", name, verb->usage, verb->summary);
    if (verb->subverbs) {
        printf("Subverbs:\n");
        print_verbs(stdout, "  ", verb->subverbs);
        printf("\n");
    }
    poptSetOtherOptionHelp(ctx, "");
    poptPrintHelp(ctx, stdout, 0);
}

int usbvm_cli_next_option(UsbvmCli *cli, const UsbvmVerb *verb, poptContext ctx)
{
    for (;;) {
        int rc = poptGetNextOpt(ctx);
        if (rc == USBVM_OPT_JSON) {
            cli->json = true;
            continue;
        }
        if (rc == USBVM_OPT_HELP) {
            print_verb_help(verb, ctx);
            return USBVM_CLI_HELP_SHOWN;
        }
        if (rc >= USBVM_OPT_VERB_BASE)
            return rc;
        if (rc == -1)
            return 0;
        if (rc < -1) {
            usbvm_cli_usage_error(verb, "%s: %s", poptBadOption(ctx, POPT_BADOPTION_NOALIAS),
                                  poptStrerror(rc));
            return -USBVM_E_USAGE;
        }
        /* Any other positive val is a table mistake. */
        usbvm_cli_usage_error(verb, "unexpected option");
        return -USBVM_E_USAGE;
    }
}

int usbvm_cli_args(const UsbvmVerb *verb, poptContext ctx, size_t min, size_t max,
                   const char ***ret, size_t *ret_n)
{
    const char **args = poptGetArgs(ctx);
    size_t n = 0;
    while (args && args[n])
        n++;
    if (n < min) {
        usbvm_cli_usage_error(verb, "missing argument: expected %s", verb->usage);
        return -USBVM_E_USAGE;
    }
    if (n > max) {
        usbvm_cli_usage_error(verb, "unexpected argument '%s'", args[max]);
        return -USBVM_E_USAGE;
    }
    *ret = args;
    *ret_n = n;
    return 0;
}

int usbvm_cli_usage_error(const UsbvmVerb *verb, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    _cleanup_free_ char *msg = xvasprintf(fmt, ap);
    va_end(ap);
    _cleanup_free_ char *name = verb_fullname(verb);
    fprintf(stderr, "usbvm %s: %s; see 'usbvm %s --help'\n", name, msg, name);
    return USBVM_E_USAGE;
}

int usbvm_cli_error(UsbvmCli *cli, const UsbvmError *err)
{
    /* libvirt's messages may quote what a device reported; escape what a terminal obeys. */
    _cleanup_free_ char *msg =
        usbvm_escape_controls(err->message[0] ? err->message : "unknown error");
    fprintf(stderr, "usbvm: %s\n", msg);
    return err->kind ? (int)err->kind : USBVM_E_FAILED;
}

void usbvm_cli_warning(UsbvmCli *cli, const char *fmt, ...)
{
    if (cli->verbosity < 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    _cleanup_free_ char *raw = xvasprintf(fmt, ap);
    va_end(ap);
    _cleanup_free_ char *msg = usbvm_escape_controls(raw);
    fprintf(stderr, "usbvm: warning: %s\n", msg);
}

struct udev *usbvm_cli_udev(UsbvmCli *cli, UsbvmError *err)
{
    if (!cli->udev) {
        cli->udev = udev_new();
        if (!cli->udev) {
            usbvm_error_set(err, USBVM_E_FAILED, errno, "cannot talk to udev: %s",
                            strerror(errno ? errno : ENOMEM));
            return NULL;
        }
    }
    return cli->udev;
}

virConnectPtr usbvm_cli_connect(UsbvmCli *cli, UsbvmError *err)
{
    if (!cli->conn && usbvm_virt_open(cli->connect_uri, &cli->conn, err) < 0)
        return NULL;
    return cli->conn;
}

/* ---- Logging sink for library records (watch) ------------------------------------------- */

static void log_sink(UsbvmLogLevel level, const char *line, json_object *fields, void *userdata)
{
    UsbvmCli *cli = userdata;
    if (cli->json) {
        /* JSON lines stay JSON lines: a plain record becomes {"event":"log",...}. */
        if (fields) {
            usbvm_out_json(fields);
            return;
        }
        static const char *const names[] = { [USBVM_LOG_ERR] = "error",
                                             [USBVM_LOG_WARNING] = "warning",
                                             [USBVM_LOG_NOTICE] = "notice",
                                             [USBVM_LOG_INFO] = "info",
                                             [USBVM_LOG_DEBUG] = "debug" };
        json_object *o = json_object_new_object();
        json_object_object_add(o, "event", json_object_new_string("log"));
        json_object_object_add(o, "level", json_object_new_string(names[level]));
        usbvm_json_add_str(o, "msg", line);
        usbvm_out_json(o);
        json_object_put(o);
        return;
    }
    /* Event lines go to stdout so consumers see them as they happen; problems that are not
     * about one device go to stderr. */
    FILE *f = level <= USBVM_LOG_WARNING && !fields ? stderr : stdout;
    if (getenv("JOURNAL_STREAM"))
        fprintf(f, "<%d>%s\n", (int)level, line);
    else
        fprintf(f, "%s%s\n", f == stderr ? "usbvm: " : "", line);
}

/* ---- main --------------------------------------------------------------------------------- */

enum { OPT_CONNECT = 1, OPT_JSON, OPT_VERBOSE, OPT_QUIET, OPT_VERSION, OPT_HELP };

static const struct poptOption global_options[] = {
    { "connect", 'c', POPT_ARG_STRING, NULL, OPT_CONNECT, "libvirt connection URI", "URI" },
    { "json", '\0', POPT_ARG_NONE, NULL, OPT_JSON, "Print JSON", NULL },
    { "verbose", 'v', POPT_ARG_NONE, NULL, OPT_VERBOSE, "More messages", NULL },
    { "quiet", 'q', POPT_ARG_NONE, NULL, OPT_QUIET, "Only errors", NULL },
    { "version", '\0', POPT_ARG_NONE, NULL, OPT_VERSION, "Print the version", NULL },
    { "help", 'h', POPT_ARG_NONE, NULL, OPT_HELP, "Show help", NULL },
    POPT_TABLEEND
};

int main(int argc, const char **argv)
{
    setlocale(LC_ALL, "");
    setlinebuf(stdout);
    usbvm_virt_init();

    UsbvmCli cli = { .progname = "usbvm" };
    _cleanup_free_ char *connect_uri = NULL;

    poptContext ctx =
        poptGetContext("usbvm", argc, argv, global_options, POPT_CONTEXT_POSIXMEHARDER);
    int rc;
    while ((rc = poptGetNextOpt(ctx)) > 0) {
        switch (rc) {
        case OPT_CONNECT:
            free(connect_uri);
            connect_uri = poptGetOptArg(ctx); /* ours to free */
            break;
        case OPT_JSON:
            cli.json = true;
            break;
        case OPT_VERBOSE:
            cli.verbosity = cli.verbosity < 0 ? 1 : cli.verbosity + 1;
            break;
        case OPT_QUIET:
            cli.verbosity = -1;
            break;
        case OPT_VERSION:
            printf("usbvm %s\n", USBVM_VERSION);
            poptFreeContext(ctx);
            return usbvm_out_finish();
        case OPT_HELP:
            print_main_help(stdout);
            poptFreeContext(ctx);
            return usbvm_out_finish();
        }
    }
    if (rc < -1) {
        fprintf(stderr, "usbvm: %s: %s; see 'usbvm --help'\n",
                poptBadOption(ctx, POPT_BADOPTION_NOALIAS), poptStrerror(rc));
        poptFreeContext(ctx);
        return USBVM_E_USAGE;
    }
    cli.connect_uri = connect_uri;

    const char **rest = poptGetArgs(ctx);
    if (!rest || !rest[0]) {
        fprintf(stderr, "usbvm: no verb given; see 'usbvm --help'\n");
        poptFreeContext(ctx);
        return USBVM_E_USAGE;
    }
    const UsbvmVerb *verb = find_verb(usbvm_verbs, rest[0]);
    if (!verb) {
        fprintf(stderr, "usbvm: unknown verb '%s'; see 'usbvm --help' for the verbs\n", rest[0]);
        poptFreeContext(ctx);
        return USBVM_E_USAGE;
    }
    int vargc = 0;
    while (rest[vargc])
        vargc++;

    switch (cli.verbosity) {
    case -1:
        usbvm_log_set_max_level(USBVM_LOG_ERR);
        break;
    case 0:
        usbvm_log_set_max_level(USBVM_LOG_INFO);
        break;
    default:
        usbvm_log_set_max_level(USBVM_LOG_DEBUG);
    }
    usbvm_log_set_sink(log_sink, &cli);

    int r = verb->fn(&cli, verb, vargc, rest);

    poptFreeContext(ctx);
    if (cli.conn)
        virConnectClose(cli.conn);
    if (cli.udev)
        udev_unref(cli.udev);
    int w = usbvm_out_finish();
    return r ? r : w;
}
