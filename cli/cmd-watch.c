/* usbvm watch: parse options, run the daemon (lib/watch.c), print the --once summary. Event
 * lines are printed by the log sink in main.c as they happen. */
#include "cli.h"
#include "config.h"
#include "watch.h"

#include <string.h>

enum {
    OPT_RULES = USBVM_OPT_VERB_BASE,
    OPT_ONCE,
    OPT_DRY_RUN,
    OPT_PRESENT,
    OPT_DETACH_ON_EXIT,
    OPT_TIMEOUT,
};

const struct poptOption usbvm_watch_options[] = {
    { "rules", 'r', POPT_ARG_STRING, NULL, OPT_RULES,
      "Rules file or directory (default " USBVM_RULES_DIR ")", "PATH" },
    { "once", '\0', POPT_ARG_NONE, NULL, OPT_ONCE, "Apply the policy once, print a summary, exit",
      NULL },
    { "dry-run", 'n', POPT_ARG_NONE, NULL, OPT_DRY_RUN, "Log what would be done, change nothing",
      NULL },
    { "present", '\0', POPT_ARG_STRING, NULL, OPT_PRESENT,
      "Devices present at start: apply the policy (default) or keep them as they are",
      "apply|keep" },
    { "detach-on-exit", '\0', POPT_ARG_NONE, NULL, OPT_DETACH_ON_EXIT,
      "Detach what the policy attached when stopping", NULL },
    { "timeout", 't', POPT_ARG_STRING, NULL, OPT_TIMEOUT,
      "With --once or --detach-on-exit: seconds to wait for detaches (default 10)", "SECONDS" },
    USBVM_COMMON_OPTIONS,
    POPT_TABLEEND,
};

int usbvm_cmd_watch(UsbvmCli *cli, const UsbvmVerb *verb, int argc, const char **argv)
{
    UsbvmWatchOptions opts = {
        .uri = cli->connect_uri,
        .rules_path = USBVM_RULES_DIR,
        .present = USBVM_PRESENT_APPLY,
        .detach_timeout_ms = 10000,
        .max_backoff_ms = 10000,
    };
    _cleanup_free_ char *rules = NULL;
    poptContext ctx = usbvm_cli_popt(verb, argc, argv);
    int r;
    while ((r = usbvm_cli_next_option(cli, verb, ctx)) > 0) {
        const char *arg = poptGetOptArg(ctx);
        _cleanup_free_ char *owned = (char *)arg;
        switch (r) {
        case OPT_RULES:
            free(rules);
            rules = TAKE_PTR(owned);
            break;
        case OPT_ONCE:
            opts.once = true;
            break;
        case OPT_DRY_RUN:
            opts.dry_run = true;
            break;
        case OPT_PRESENT:
            if (streq(arg, "apply"))
                opts.present = USBVM_PRESENT_APPLY;
            else if (streq(arg, "keep"))
                opts.present = USBVM_PRESENT_KEEP;
            else {
                poptFreeContext(ctx);
                return usbvm_cli_usage_error(verb, "--present takes 'apply' or 'keep', not '%s'",
                                             strempty(arg));
            }
            break;
        case OPT_DETACH_ON_EXIT:
            opts.detach_on_exit = true;
            break;
        case OPT_TIMEOUT: {
            unsigned s;
            if (usbvm_parse_uint(arg, 10, 86400, &s) < 0) {
                poptFreeContext(ctx);
                return usbvm_cli_usage_error(
                    verb, "--timeout takes whole seconds (0-86400), not '%s'", strempty(arg));
            }
            opts.detach_timeout_ms = (int)s * 1000;
            break;
        }
        }
    }
    if (r < 0) {
        poptFreeContext(ctx);
        return usbvm_cli_exit_from_parse(r);
    }
    const char **args;
    size_t n;
    if ((r = usbvm_cli_args(verb, ctx, 0, 0, &args, &n)) < 0) {
        poptFreeContext(ctx);
        return -r;
    }
    if (rules)
        opts.rules_path = rules;

    UsbvmWatchSummary sum;
    UsbvmError err = { 0 };
    r = usbvm_watch_run(&opts, &sum, &err);
    poptFreeContext(ctx);
    if (r < 0) {
        if (cli->json) {
            json_object *o = json_object_new_object();
            json_object_object_add(o, "event", json_object_new_string("exit"));
            json_object_object_add(o, "failed", json_object_new_boolean(1));
            usbvm_json_add_str(o, "msg", err.message);
            json_object_object_add(o, "rc", json_object_new_int((int)err.kind));
            usbvm_out_json(o);
            json_object_put(o);
        }
        return usbvm_cli_error(cli, &err);
    }
    if (opts.once) {
        json_object *o = json_object_new_object();
        json_object_object_add(o, "event", json_object_new_string("summary"));
        json_object_object_add(
            o, "changed",
            json_object_new_boolean(!opts.dry_run && (sum.attached + sum.detached) > 0));
        json_object_object_add(o, "failed", json_object_new_boolean(sum.failed > 0));
        json_object_object_add(o, "attached", json_object_new_int((int)sum.attached));
        json_object_object_add(o, "detached", json_object_new_int((int)sum.detached));
        json_object_object_add(o, "pending", json_object_new_int((int)sum.pending));
        json_object_object_add(o, "unchanged", json_object_new_int((int)sum.unchanged));
        json_object_object_add(o, "waiting", json_object_new_int((int)sum.waiting));
        json_object_object_add(o, "errors", json_object_new_int((int)sum.failed));
        json_object_object_add(o, "dry_run", json_object_new_boolean(opts.dry_run));
        if (cli->json) {
            usbvm_out_json(o);
        } else {
            printf("summary: %u attached, %u detached, %u pending, %u unchanged, %u waiting, "
                   "%u failed%s\n",
                   sum.attached, sum.detached, sum.pending, sum.unchanged, sum.waiting, sum.failed,
                   opts.dry_run ? " (dry run)" : "");
        }
        json_object_put(o);
        if (sum.failed)
            return USBVM_E_FAILED;
        if (sum.pending)
            return USBVM_E_PENDING;
    }
    return 0;
}
