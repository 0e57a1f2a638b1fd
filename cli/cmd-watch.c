/* usbvm watch: parse options, run the daemon (lib/watch.c), print the --once summary. Event
 * lines are printed by the log sink in main.c as they happen. */
#include "cli.h"
#include "config.h"
#include "watch.h"

#include <malloc.h>
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

typedef struct WatchParse {
    UsbvmWatchOptions *opts;
    char *rules;
} WatchParse;

static int on_option(UsbvmCli *cli, const UsbvmVerb *verb, int val, const char *arg, void *ud)
{
    WatchParse *w = ud;
    unsigned s;
    switch (val) {
    case OPT_RULES:
        free(w->rules);
        w->rules = xstrdup(arg);
        break;
    case OPT_ONCE:
        w->opts->once = true;
        break;
    case OPT_DRY_RUN:
        w->opts->dry_run = true;
        break;
    case OPT_PRESENT:
        if (!streq(arg, "apply") && !streq(arg, "keep"))
            return usbvm_cli_usage_error(cli, verb, "--present takes 'apply' or 'keep', not '%s'",
                                         strempty(arg));
        w->opts->present = streq(arg, "apply") ? USBVM_PRESENT_APPLY : USBVM_PRESENT_KEEP;
        break;
    case OPT_DETACH_ON_EXIT:
        w->opts->detach_on_exit = true;
        break;
    case OPT_TIMEOUT:
        if (usbvm_parse_uint(arg, 10, 86400, &s) < 0)
            return usbvm_cli_usage_error(
                cli, verb, "--timeout takes whole seconds (0-86400), not '%s'", strempty(arg));
        w->opts->detach_timeout_ms = (int)s * 1000;
        break;
    }
    return 0;
}

/* The last JSON line of watch: "summary" after --once, "exit" when watch fails. Both carry
 * Ansible's changed, failed, msg and rc (usbvm(1) documents the stream). */
static json_object *final_record(const char *event, bool changed, const char *msg, int rc)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "event", json_object_new_string(event));
    json_object_object_add(o, "changed", json_object_new_boolean(changed));
    json_object_object_add(o, "failed", json_object_new_boolean(rc != 0));
    usbvm_json_add_str(o, "msg", msg);
    json_object_object_add(o, "rc", json_object_new_int(rc));
    return o;
}

static int print_summary(UsbvmCli *cli, const UsbvmWatchOptions *opts, const UsbvmWatchSummary *sum)
{
    int rc = sum->failed ? USBVM_E_FAILED : sum->pending ? USBVM_E_PENDING : 0;
    _cleanup_free_ char *msg =
        xasprintf("%u attached, %u detached, %u pending, %u unchanged, %u waiting, %u failed%s",
                  sum->attached, sum->detached, sum->pending, sum->unchanged, sum->waiting,
                  sum->failed, opts->dry_run ? " (dry run)" : "");
    if (!cli->json) {
        printf("summary: %s\n", msg);
        return rc;
    }
    /* Under --dry-run the counts are the prediction: changed says what a real run would do
     * (Ansible's check mode). */
    bool changed = (sum->attached + sum->detached) > 0;
    _cleanup_(json_object_putp) json_object *o = final_record("summary", changed, msg, rc);
    json_object_object_add(o, "attached", json_object_new_int((int)sum->attached));
    json_object_object_add(o, "detached", json_object_new_int((int)sum->detached));
    json_object_object_add(o, "pending", json_object_new_int((int)sum->pending));
    json_object_object_add(o, "unchanged", json_object_new_int((int)sum->unchanged));
    json_object_object_add(o, "waiting", json_object_new_int((int)sum->waiting));
    json_object_object_add(o, "errors", json_object_new_int((int)sum->failed));
    json_object_object_add(o, "dry_run", json_object_new_boolean(opts->dry_run));
    usbvm_out_json(o);
    return rc;
}

/* The daemon's allocator, for the path from a plug to libvirt's call. */
static void tune_allocator(void)
{
    /* glibc's fastbins put off merging freed small blocks until a later large request merges
     * them all at once; in the daemon that request came in an attach's final checks, about
     * 30 us of their median. Without fastbins each free merges at once, off that path; the
     * per-thread caches still serve most small requests. */
#ifdef M_MXFAST
    (void)mallopt(M_MXFAST, 0);
#endif
    /* Each read of a stick walks its sysfs directories, and each open directory takes a 32 KiB
     * buffer from the heap. Freed at the top of the heap, they went back to the kernel at once
     * (brk), and the next plug faulted the same pages in again: about 70 us of the read's median
     * and 150 us of CPU per plug. Up to 4 MiB of freed heap is kept instead. */
#ifdef M_TRIM_THRESHOLD
    (void)mallopt(M_TRIM_THRESHOLD, 4 << 20);
#endif
}

int usbvm_cmd_watch(UsbvmCli *cli, const UsbvmVerb *verb, int argc, const char **argv)
{
    UsbvmWatchOptions opts = {
        .uri = cli->connect_uri,
        .rules_path = USBVM_RULES_DIR,
        .present = USBVM_PRESENT_APPLY,
        .detach_timeout_ms = 10000,
        .max_backoff_ms = 10000,
    };
    WatchParse w = { .opts = &opts };
    _cleanup_(usbvm_cli_args_clear) UsbvmCliArgs p = { 0 };
    bool ok = usbvm_cli_parse(cli, verb, argc, argv, on_option, &w, &p);
    _cleanup_free_ char *rules = w.rules;
    if (!ok)
        return p.rc;
    if (rules)
        opts.rules_path = rules;

    tune_allocator();
    UsbvmWatchSummary sum;
    UsbvmError err = { 0 };
    if (usbvm_watch_run(&opts, &sum, &err) < 0) {
        if (!cli->json)
            return usbvm_cli_error(cli, &err);
        int rc = err.kind ? (int)err.kind : USBVM_E_FAILED;
        _cleanup_(json_object_putp) json_object *o = final_record("exit", false, err.message, rc);
        usbvm_out_json(o);
        return rc;
    }
    return opts.once ? print_summary(cli, &opts, &sum) : 0;
}
