/* usbvm: global options, the verb table, and dispatch. Global options stop at the verb; each
 * verb parses its own options. --help and the completion's verb list come from the table. */
#include "cli.h"
#include "config.h"
#include "log.h"
#include "virt.h"

#include <errno.h>
#include <locale.h>
#include <signal.h>
#include <string.h>

static const UsbvmExclusive scope_exclusive[] = { USBVM_SCOPE_EXCLUSIVE, { 0 } };

const UsbvmVerb usbvm_verbs[] = {
    { "list", usbvm_cmd_list, usbvm_list_options, "",
      "List USB storage devices (every USB device with --all)", .arity = { 0, 0 } },
    { "show",
      usbvm_cmd_show,
      usbvm_show_options,
      "<device>",
      "Show everything about one device, descriptors included",
      { USBVM_ARG_DEVICE },
      .arity = { 1, 1 } },
    { "attach",
      usbvm_cmd_attach,
      usbvm_attach_options,
      "<domain> <device>",
      "Attach a device to a running domain",
      { USBVM_ARG_DOMAIN, USBVM_ARG_DEVICE },
      .arity = { 2, 2 },
      .exclusive = scope_exclusive },
    { "detach",
      usbvm_cmd_detach,
      usbvm_detach_options,
      "<domain> <device> | --all <device>",
      "Detach a device usbvm attached, and wait until the guest released it",
      { USBVM_ARG_DOMAIN, USBVM_ARG_ATTACHED },
      .arity = { 2, 2 },
      .arity_option = USBVM_OPT_ALL,
      .arity_with = { 1, 1 },
      .exclusive = scope_exclusive },
    { "status", usbvm_cmd_status, usbvm_status_options, "",
      "List what usbvm has attached to running domains", .arity = { 0, 0 } },
    { "rules", usbvm_cmd_rules, NULL, "SUBVERB ...", "Check, test, show and generate policy rules",
      .subverbs = usbvm_rules_subverbs },
    { "watch", usbvm_cmd_watch, usbvm_watch_options, "",
      "Run the policy daemon: attach and detach devices as they come and go", .arity = { 0, 0 } },
    { "doctor",
      usbvm_cmd_doctor,
      usbvm_doctor_options,
      "[<domain>] [<device>]",
      "Find out why a device does not reach a domain",
      { USBVM_ARG_DOMAIN_OR_DEVICE, USBVM_ARG_DEVICE },
      .arity = { 0, 2 } },
    { "__complete", usbvm_cmd_complete, usbvm_complete_options, "<words...>",
      "Completion helper for the shell", .hidden = true, .arity = { 0, 1024 } },
    { NULL },
};

static void print_main_help(FILE *f)
{
    fprintf(f, "Usage: usbvm [OPTIONS] VERB [VERB OPTIONS] [ARGS]\n"
               "\n"
               "Pass USB devices, above all sticks and disks, into libvirt domains by policy.\n"
               "\n"
               "Verbs:\n");
    usbvm_cli_print_verbs(f, "  ", usbvm_verbs);
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

/* --json anywhere before "--" (global or verb option): known before parsing, so that even a
 * usage error about an earlier word is reported as JSON. */
static bool wants_json(int argc, const char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (streq(argv[i], "--"))
            return false;
        if (streq(argv[i], "--json"))
            return true;
    }
    return false;
}

static void set_log_level(int verbosity)
{
    switch (verbosity) {
    case -1:
        usbvm_log_set_max_level(USBVM_LOG_ERR);
        break;
    case 0:
        usbvm_log_set_max_level(USBVM_LOG_INFO);
        break;
    default:
        usbvm_log_set_max_level(USBVM_LOG_DEBUG);
    }
}

/* Global options, up to the verb. Returns -1 to go on to the verb, else the exit code. */
static int parse_global(UsbvmCli *cli, poptContext ctx, char **connect_uri)
{
    int rc;
    while ((rc = poptGetNextOpt(ctx)) > 0) {
        switch (rc) {
        case OPT_CONNECT:
            free(*connect_uri);
            *connect_uri = poptGetOptArg(ctx); /* ours to free */
            break;
        case OPT_JSON:
            cli->json = true;
            break;
        case OPT_VERBOSE:
            cli->verbosity = cli->verbosity < 0 ? 1 : cli->verbosity + 1;
            break;
        case OPT_QUIET:
            cli->verbosity = -1;
            break;
        case OPT_VERSION:
            if (cli->json) {
                _cleanup_(json_object_putp) json_object *o = json_object_new_object();
                usbvm_json_add_str(o, "version", USBVM_VERSION);
                usbvm_out_json(o);
            } else {
                printf("usbvm %s\n", USBVM_VERSION);
            }
            return usbvm_out_finish();
        case OPT_HELP:
            print_main_help(stdout);
            return usbvm_out_finish();
        }
    }
    if (rc < -1)
        return usbvm_cli_usage_error(cli, NULL, "%s: %s",
                                     poptBadOption(ctx, POPT_BADOPTION_NOALIAS), poptStrerror(rc));
    return -1;
}

static int run_verb(UsbvmCli *cli, const char **rest)
{
    if (!rest || !rest[0])
        return usbvm_cli_usage_error(cli, NULL, "no verb given");
    const UsbvmVerb *verb = find_verb(usbvm_verbs, rest[0]);
    if (!verb)
        return usbvm_cli_usage_error(cli, NULL, "unknown verb '%s'", rest[0]);
    int vargc = 0;
    while (rest[vargc])
        vargc++;
    set_log_level(cli->verbosity);
    usbvm_log_set_sink(log_sink, cli);
    return verb->fn(cli, verb, vargc, rest);
}

/* libvirt writes to libvirtd's socket with write(2): a libvirtd that closed the connection
 * (restarted, or dropped a client that missed its keepalive) would end usbvm with SIGPIPE, with
 * no message and before its answer was out, where libvirt's "Cannot write data: Broken pipe"
 * is due (virsh catches it too; systemd ignores it for services). Caught rather than ignored,
 * so that the programs usbvm starts get the default back. A closed stdout is then an EPIPE,
 * which usbvm_out_finish() takes quietly. */
static void on_sigpipe(int sig)
{
}

int main(int argc, const char **argv)
{
    setlocale(LC_ALL, "");
    setlinebuf(stdout);
    struct sigaction pipe_action = { .sa_handler = on_sigpipe, .sa_flags = SA_RESTART };
    sigemptyset(&pipe_action.sa_mask);
    sigaction(SIGPIPE, &pipe_action, NULL);

    UsbvmCli cli = { .progname = "usbvm", .json = wants_json(argc, argv) };
    _cleanup_free_ char *connect_uri = NULL;
    poptContext ctx =
        poptGetContext("usbvm", argc, argv, global_options, POPT_CONTEXT_POSIXMEHARDER);
    int r = parse_global(&cli, ctx, &connect_uri);
    if (r < 0) {
        cli.connect_uri = connect_uri;
        r = run_verb(&cli, poptGetArgs(ctx));
    }
    poptFreeContext(ctx);
    if (cli.conn)
        virConnectClose(cli.conn);
    int w = usbvm_out_finish();
    return r ? r : w;
}
