/* usbvm rules check|test|show|generate: the admin's tools for the policy language
 * (usbvm.rules(5)). Each subverb builds one JSON object; --json prints it, text mode renders
 * it. Diagnostics go to stderr as "file:line:col: error: message", the line, and a caret. */
#include "cli.h"
#include "config.h"
#include "rules.h"

#include <string.h>
#include <time.h>

enum { OPT_RULES = USBVM_OPT_VERB_BASE, OPT_TO, OPT_MODE };

static const struct poptOption check_options[] = {
    USBVM_COMMON_OPTIONS,
    POPT_TABLEEND,
};

static const struct poptOption rules_path_options[] = {
    { "rules", 'r', POPT_ARG_STRING, NULL, OPT_RULES,
      "Rules file or directory (default " USBVM_RULES_DIR ")", "PATH" },
    USBVM_COMMON_OPTIONS,
    POPT_TABLEEND,
};

static const struct poptOption generate_options[] = {
    { "to", '\0', POPT_ARG_STRING, NULL, OPT_TO, "Domain to put in the rules (default: DOMAIN)",
      "DOMAIN" },
    { "mode", 'm', POPT_ARG_STRING, NULL, OPT_MODE, "Mode to put in the rules (default usb)",
      USBVM_MODE_CHOICES },
    { "all", 'a', POPT_ARG_NONE, NULL, USBVM_OPT_ALL, "Every device, not only storage (hubs never)",
      NULL },
    USBVM_COMMON_OPTIONS,
    POPT_TABLEEND,
};

/* ---- diagnostics ---- */

static void print_caret(FILE *f, const char *source, unsigned column)
{
    /* The line as written (control characters shown as '?'), then a caret under the byte
     * the column names: tabs are copied so that the caret lines up, and UTF-8 continuation
     * bytes take no cell. */
    fputs("    ", f);
    for (const unsigned char *c = (const unsigned char *)source; *c; c++)
        fputc(*c == '\t' || *c >= 0x20 ? (*c == 0x7f ? '?' : *c) : '?', f);
    fputs("\n    ", f);
    size_t n = strlen(source);
    for (size_t i = 0; i + 1 < column && i < n; i++) {
        unsigned char c = (unsigned char)source[i];
        if (c == '\t')
            fputc('\t', f);
        else if ((c & 0xc0) != 0x80)
            fputc(' ', f);
    }
    fputs("^\n", f);
}

static json_object *diags_to_json(const UsbvmRuleDiags *d)
{
    json_object *a = json_object_new_array();
    for (size_t i = 0; i < d->n; i++) {
        const UsbvmRuleDiag *g = &d->items[i];
        json_object *o = json_object_new_object();
        usbvm_json_add_str(o, "file", g->file);
        json_object_object_add(o, "line", json_object_new_int((int)g->line));
        json_object_object_add(o, "column", json_object_new_int((int)g->column));
        json_object_object_add(o, "severity",
                               json_object_new_string(g->warning ? "warning" : "error"));
        usbvm_json_add_str(o, "message", g->message);
        usbvm_json_add_str(o, "source", g->source);
        json_object_array_add(a, o);
    }
    return a;
}

/* Text rendering of the "diagnostics" array, to stderr. */
static void print_diags(UsbvmCli *cli, json_object *diags)
{
    for (size_t i = 0; i < json_object_array_length(diags); i++) {
        json_object *o = json_object_array_get_idx(diags, i), *v;
        const char *sev =
            json_object_object_get_ex(o, "severity", &v) ? json_object_get_string(v) : "error";
        if (streq(sev, "warning") && cli->verbosity < 0)
            continue;
        json_object_object_get_ex(o, "file", &v);
        _cleanup_free_ char *file = usbvm_escape(json_object_get_string(v));
        json_object_object_get_ex(o, "line", &v);
        int line = json_object_get_int(v);
        json_object_object_get_ex(o, "column", &v);
        int col = json_object_get_int(v);
        json_object_object_get_ex(o, "message", &v);
        const char *msg = json_object_get_string(v);
        if (line > 0)
            fprintf(stderr, "%s:%d:%d: %s: %s\n", file, line, col, sev, msg);
        else
            fprintf(stderr, "%s: %s: %s\n", file, sev, msg);
        if (json_object_object_get_ex(o, "source", &v) && v && line > 0)
            print_caret(stderr, json_object_get_string(v), (unsigned)col);
    }
}

/* Loads rules for test/show; on errors prints them (text) or an error object (JSON) and
 * returns the exit code. what: what cannot be done ("cannot test a device against them"). */
static int load_rules(UsbvmCli *cli, const char *path, const char *what, UsbvmRuleset **ret)
{
    UsbvmRuleDiags d = { 0 };
    int r = usbvm_ruleset_load(path, ret, &d);
    json_object *diags = diags_to_json(&d);
    usbvm_rule_diags_clear(&d);
    if (r < 0) {
        if (cli->json) {
            json_object *o = json_object_new_object();
            json_object_object_add(o, "changed", json_object_new_boolean(false));
            json_object_object_add(o, "failed", json_object_new_boolean(true));
            _cleanup_free_ char *m =
                xasprintf("the rules in '%s' have errors; %s; 'usbvm rules check %s' lists them",
                          path, what, path);
            usbvm_json_add_str(o, "msg", m);
            json_object_object_add(o, "rc", json_object_new_int(USBVM_E_RULES));
            json_object_object_add(o, "diagnostics", diags);
            usbvm_out_json(o);
            json_object_put(o);
        } else {
            print_diags(cli, diags);
            fprintf(stderr, "usbvm: the rules in '%s' have errors; %s\n", path, what);
            json_object_put(diags);
        }
        return USBVM_E_RULES;
    }
    if (!cli->json)
        print_diags(cli, diags); /* warnings */
    json_object_put(diags);
    return 0;
}

static json_object *rule_to_json(const UsbvmRule *r)
{
    json_object *o = json_object_new_object();
    usbvm_json_add_str(o, "file", usbvm_rule_file(r));
    json_object_object_add(o, "line", json_object_new_int((int)usbvm_rule_line(r)));
    bool attach = usbvm_rule_target(r) == USBVM_TARGET_ATTACH;
    json_object_object_add(o, "target", json_object_new_string(attach ? "attach" : "ignore"));
    usbvm_json_add_str(o, "domain", usbvm_rule_domain(r));
    const UsbvmAttachSpec *s = usbvm_rule_spec(r);
    usbvm_json_add_str(o, "mode", attach ? usbvm_mode_to_string(s->mode) : NULL);
    json_object_object_add(o, "readonly", json_object_new_boolean(attach && s->readonly));
    usbvm_json_add_str(o, "cache", s->cache);
    usbvm_json_add_str(o, "io", s->io);
    json_object_object_add(o, "persistent", json_object_new_boolean(attach && s->persistent));
    _cleanup_free_ char *text = usbvm_rule_format(r);
    usbvm_json_add_str(o, "rule", text);
    return o;
}

/* ---- check ---- */

static int cmd_check(UsbvmCli *cli, const UsbvmVerb *verb, int argc, const char **argv)
{
    _cleanup_(usbvm_cli_args_clear) UsbvmCliArgs p = { 0 };
    if (!usbvm_cli_parse(cli, verb, argc, argv, NULL, NULL, &p))
        return p.rc;
    const char **args = (const char **)p.args;
    size_t n = p.n;
    static const char *const default_paths[] = { USBVM_RULES_DIR, NULL };
    if (n == 0) {
        args = (const char **)default_paths;
        n = 1;
    }

    json_object *root = json_object_new_object();
    json_object *paths = json_object_new_array();
    UsbvmRuleDiags all = { 0 };
    bool valid = true;
    for (size_t i = 0; i < n; i++) {
        UsbvmRuleDiags d = { 0 };
        _cleanup_(usbvm_ruleset_freep) UsbvmRuleset *rs = NULL;
        int lr = usbvm_ruleset_load(args[i], &rs, &d);
        if (lr == 0)
            usbvm_ruleset_lint(rs, &d);
        size_t warnings = d.n - (d.n_errors < d.n ? d.n_errors : d.n);
        json_object *po = json_object_new_object();
        usbvm_json_add_str(po, "path", args[i]);
        json_object_object_add(po, "valid", json_object_new_boolean(lr == 0));
        json_object_object_add(po, "rules", json_object_new_int((int)usbvm_ruleset_size(rs)));
        json_object_object_add(po, "errors", json_object_new_int((int)d.n_errors));
        json_object_object_add(po, "warnings", json_object_new_int((int)warnings));
        json_object_array_add(paths, po);
        valid = valid && lr == 0;
        /* Move the diagnostics over. */
        all.items = xrealloc(all.items, (all.n + d.n + 1) * sizeof(*all.items));
        if (d.n)
            memcpy(all.items + all.n, d.items, d.n * sizeof(*d.items));
        all.n += d.n;
        all.n_errors += d.n_errors;
        free(d.items);
    }
    json_object *diags = diags_to_json(&all);
    usbvm_rule_diags_clear(&all);
    json_object_object_add(root, "valid", json_object_new_boolean(valid));
    json_object_object_add(root, "paths", paths);
    json_object_object_add(root, "diagnostics", diags);

    if (cli->json)
        usbvm_out_json(root);
    else {
        static const UsbvmColumn cols[] = {
            { "path", "PATH", USBVM_FMT_STR },         { "valid", "VALID", USBVM_FMT_BOOL },
            { "rules", "RULES", USBVM_FMT_INT },       { "errors", "ERRORS", USBVM_FMT_INT },
            { "warnings", "WARNINGS", USBVM_FMT_INT },
        };
        print_diags(cli, diags);
        if (cli->verbosity >= 0)
            usbvm_out_table(paths, cols, ELEMENTSOF(cols));
    }
    json_object_put(root);
    return valid ? 0 : USBVM_E_RULES;
}

/* ---- test ---- */

static json_object *device_summary(const UsbvmDevice *d)
{
    json_object *o = json_object_new_object();
    usbvm_json_add_str(o, "port", d->port);
    _cleanup_free_ char *vid = xasprintf("%04x", d->vendor_id);
    _cleanup_free_ char *pid = xasprintf("%04x", d->product_id);
    usbvm_json_add_str(o, "vendor_id", vid);
    usbvm_json_add_str(o, "product_id", pid);
    usbvm_json_add_str(o, "manufacturer", d->manufacturer);
    usbvm_json_add_str(o, "product", d->product);
    usbvm_json_add_str(o, "serial", d->serial);
    usbvm_json_add_str(o, "identity", d->identity);
    json_object_object_add(o, "storage", json_object_new_boolean(usbvm_device_is_storage(d)));
    return o;
}

typedef struct RulesOptions {
    char *rules_path, *domain, *mode;
    bool all;
} RulesOptions;

static void rules_options_clear(RulesOptions *o)
{
    free(o->rules_path);
    free(o->domain);
    free(o->mode);
}

static int on_option(UsbvmCli *cli, const UsbvmVerb *verb, int val, const char *arg, void *ud)
{
    RulesOptions *o = ud;
    char **slot = val == OPT_RULES  ? &o->rules_path
                  : val == OPT_TO   ? &o->domain
                  : val == OPT_MODE ? &o->mode
                                    : NULL;
    if (slot) {
        free(*slot);
        *slot = xstrdup(arg);
    } else if (val == USBVM_OPT_ALL)
        o->all = true;
    return 0;
}

/* What test and show begin with: their options, then the rules, reported when broken.
 * Returns -1 to go on, or the exit code. */
static int rules_prologue(UsbvmCli *cli, const UsbvmVerb *verb, int argc, const char **argv,
                          const char *what, RulesOptions *o, UsbvmCliArgs *p, UsbvmRuleset **rs)
{
    if (!usbvm_cli_parse(cli, verb, argc, argv, on_option, o, p))
        return p->rc;
    int r = load_rules(cli, o->rules_path ? o->rules_path : USBVM_RULES_DIR, what, rs);
    return r ? r : -1;
}

/* The rules in order up to the first that matches, each with why it does not. */
static json_object *checked_rules(const UsbvmRuleset *rs, const UsbvmDevice *d,
                                  const UsbvmRule **ret_match)
{
    json_object *checked = json_object_new_array();
    *ret_match = NULL;
    for (size_t i = 0; i < usbvm_ruleset_size(rs) && !*ret_match; i++) {
        const UsbvmRule *rule = usbvm_ruleset_get(rs, i);
        _cleanup_free_ char *reason = NULL;
        bool m = usbvm_rule_explain(rule, d, &reason);
        json_object *c = rule_to_json(rule);
        _cleanup_free_ char *where =
            xasprintf("%s:%u", usbvm_rule_file(rule), usbvm_rule_line(rule));
        usbvm_json_add_str(c, "where", where);
        json_object_object_add(c, "matches", json_object_new_boolean(m));
        usbvm_json_add_str(c, "failed", usbvm_rule_failed_attribute(rule, d));
        usbvm_json_add_str(c, "reason", reason);
        json_object_array_add(checked, c);
        if (m)
            *ret_match = rule;
    }
    return checked;
}

/* "as usb-disk, readonly, cache none, io native, persistent": the rule's options as the
 * attach would use them. */
static char *spec_text(const UsbvmAttachSpec *s)
{
    UsbvmBuf b = { 0 };
    usbvm_buf_printf(&b, "as %s", usbvm_mode_to_string(s->mode));
    if (s->readonly)
        usbvm_buf_puts(&b, ", readonly");
    if (s->cache)
        usbvm_buf_printf(&b, ", cache %s", s->cache);
    if (s->io)
        usbvm_buf_printf(&b, ", io %s", s->io);
    if (s->persistent)
        usbvm_buf_puts(&b, ", persistent");
    return usbvm_buf_steal(&b);
}

static char *decision_text(const UsbvmRule *match, const char *refusal, const char *ambiguity)
{
    if (!match)
        return xstrdup("stays on the host: no rule matches");
    if (usbvm_rule_target(match) == USBVM_TARGET_IGNORE)
        return xasprintf("stays on the host: ignored by %s:%u", usbvm_rule_file(match),
                         usbvm_rule_line(match));
    _cleanup_free_ char *spec = spec_text(usbvm_rule_spec(match));
    if (ambiguity)
        return xasprintf("stays where it is: %s:%u would attach it to %s %s, but %s",
                         usbvm_rule_file(match), usbvm_rule_line(match), usbvm_rule_domain(match),
                         spec, ambiguity);
    if (refusal)
        return xasprintf("attach to %s %s (%s:%u), but usbvm would refuse it now: %s",
                         usbvm_rule_domain(match), spec, usbvm_rule_file(match),
                         usbvm_rule_line(match), refusal);
    return xasprintf("attach to %s %s (%s:%u)", usbvm_rule_domain(match), spec,
                     usbvm_rule_file(match), usbvm_rule_line(match));
}

static void print_test_text(json_object *root, const UsbvmDevice *d, const UsbvmRule *match,
                            const char *refusal, const char *ambiguity)
{
    /* Text-only lines derived from the facts in root. The device's name is taken raw: the
     * text view escapes it once. */
    _cleanup_free_ char *name = usbvm_device_name(d);
    _cleanup_free_ char *dev = xasprintf("%s %04x:%04x%s%s", strempty(d->port), d->vendor_id,
                                         d->product_id, name ? " " : "", strempty(name));
    _cleanup_free_ char *dec = decision_text(match, refusal, ambiguity);
    json_object *t = json_object_new_object();
    usbvm_json_add_str(t, "device", dev);
    usbvm_json_add_str(t, "decision", dec);
    json_object_object_add(root, "text", t);
    static const UsbvmColumn rec[] = { { "text.device", "Device", USBVM_FMT_STR },
                                       { "rules_path", "Rules", USBVM_FMT_STR },
                                       { "text.decision", "Decision", USBVM_FMT_STR } };
    /* The reasons are the rules formatter's text, escaped already. */
    static const UsbvmColumn cols[] = { { "where", "RULE", USBVM_FMT_STR },
                                        { "matches", "MATCH", USBVM_FMT_BOOL },
                                        { "reason", "WHY NOT", USBVM_FMT_ESCAPED } };
    usbvm_out_record(root, rec, ELEMENTSOF(rec), 0);
    json_object *checked = NULL;
    json_object_object_get_ex(root, "checked", &checked);
    if (json_object_array_length(checked) > 0) {
        fputc('\n', stdout);
        usbvm_out_table(checked, cols, ELEMENTSOF(cols));
    }
}

static int cmd_test(UsbvmCli *cli, const UsbvmVerb *verb, int argc, const char **argv)
{
    _cleanup_(rules_options_clear) RulesOptions o = { 0 };
    _cleanup_(usbvm_cli_args_clear) UsbvmCliArgs p = { 0 };
    _cleanup_(usbvm_ruleset_freep) UsbvmRuleset *rs = NULL;
    int r = rules_prologue(cli, verb, argc, argv, "fix them before testing a device against them",
                           &o, &p, &rs);
    if (r >= 0)
        return r;
    const char *path = o.rules_path ? o.rules_path : USBVM_RULES_DIR;

    UsbvmError err = { 0 };
    _cleanup_(usbvm_device_list_freep) UsbvmDeviceList *list = NULL;
    UsbvmDevice *d = NULL;
    if (usbvm_cli_resolve(cli, p.args[0], &list, &d, &err) < 0)
        return usbvm_cli_error(cli, &err);

    json_object *root = json_object_new_object();
    json_object_object_add(root, "device", device_summary(d));
    usbvm_json_add_str(root, "rules_path", path);
    const UsbvmRule *match = NULL;
    json_object *checked = checked_rules(rs, d, &match);
    json_object_object_add(root, "checked", checked);
    /* An ambiguous identity is never acted on by policy (see lib/device-clone.c). */
    _cleanup_free_ char *ambiguity = usbvm_device_ambiguity(d);
    bool attach = match && usbvm_rule_target(match) == USBVM_TARGET_ATTACH;
    const char *decision = !match      ? "host"
                           : !attach   ? "ignore"
                           : ambiguity ? "ambiguous"
                                       : "attach";
    json_object_object_add(root, "decision", json_object_new_string(decision));
    usbvm_json_add_str(root, "ambiguity", ambiguity);
    json_object_object_add(root, "rule",
                           match ? json_object_get(json_object_array_get_idx(
                                       checked, json_object_array_length(checked) - 1))
                                 : NULL);
    /* A rule that attaches does not attach a device the host uses: say so here, where the
     * admin asks why a stick was not attached. */
    UsbvmError use = { 0 };
    bool refused = streq(decision, "attach") && usbvm_device_check_host_use(d, &use) < 0;
    usbvm_json_add_str(root, "refusal", refused ? use.message : NULL);

    if (cli->json)
        usbvm_out_json(root);
    else
        print_test_text(root, d, match, refused ? use.message : NULL, ambiguity);
    json_object_put(root);
    return 0;
}

/* ---- show ---- */

static int cmd_show(UsbvmCli *cli, const UsbvmVerb *verb, int argc, const char **argv)
{
    _cleanup_(rules_options_clear) RulesOptions o = { 0 };
    _cleanup_(usbvm_cli_args_clear) UsbvmCliArgs p = { 0 };
    _cleanup_(usbvm_ruleset_freep) UsbvmRuleset *rs = NULL;
    int r = rules_prologue(cli, verb, argc, argv, "fix them before showing them", &o, &p, &rs);
    if (r >= 0)
        return r;
    const char *path = o.rules_path ? o.rules_path : USBVM_RULES_DIR;
    json_object *root = json_object_new_object();
    usbvm_json_add_str(root, "rules_path", path);
    json_object *rules = json_object_new_array();
    for (size_t i = 0; i < usbvm_ruleset_size(rs); i++)
        json_object_array_add(rules, rule_to_json(usbvm_ruleset_get(rs, i)));
    json_object_object_add(root, "rules", rules);
    if (cli->json)
        usbvm_out_json(root);
    else {
        /* The text view is itself a rules file: a comment names each source file. */
        const char *last = NULL;
        for (size_t i = 0; i < json_object_array_length(rules); i++) {
            json_object *ro = json_object_array_get_idx(rules, i), *v;
            json_object_object_get_ex(ro, "file", &v);
            const char *file = json_object_get_string(v);
            if (!streq_ptr(file, last)) {
                _cleanup_free_ char *e = usbvm_escape(file);
                printf("%s# %s\n", last ? "\n" : "", e);
                last = file;
            }
            json_object_object_get_ex(ro, "rule", &v);
            printf("%s\n", json_object_get_string(v)); /* the formatter's output is ASCII */
        }
        if (!last)
            printf("# no rules in %s: every device stays on the host\n", path);
    }
    json_object_put(root);
    return 0;
}

/* ---- generate ---- */

static void describe_storage(UsbvmBuf *b, const UsbvmDevice *d)
{
    for (size_t i = 0; i < d->n_blocks; i++) {
        const UsbvmBlock *bl = &d->blocks[i];
        if (bl->type == USBVM_BLOCK_DISK && bl->size > 0) {
            _cleanup_free_ char *size = usbvm_out_size(bl->size);
            usbvm_buf_printf(b, ", %s %s", strempty(bl->name), size);
        }
        if (bl->fs_type) {
            _cleanup_free_ char *t = usbvm_escape(bl->fs_type);
            _cleanup_free_ char *l = bl->fs_label ? usbvm_escape(bl->fs_label) : NULL;
            usbvm_buf_printf(b, ", %s %s%s%s%s", strempty(bl->name), t, l ? " \"" : "", strempty(l),
                             l ? "\"" : "");
        }
    }
}

static json_object *generated_rule(const UsbvmDevice *d, const char *dom, UsbvmMode mode)
{
    /* A disk mode reaches only storage; any other device is proposed as usb, which is what
     * it can be passed through as (a disk-mode rule would never match it). */
    bool as_usb = usbvm_mode_is_disk(mode) && !usbvm_device_is_storage(d);
    _cleanup_free_ char *rule = usbvm_rule_generate(d, dom, as_usb ? USBVM_MODE_USB : mode);
    _cleanup_free_ char *name = usbvm_device_display_name(d);
    UsbvmBuf about = { 0 };
    usbvm_buf_printf(&about, "%s %04x:%04x %s", strempty(d->port), d->vendor_id, d->product_id,
                     strempty(name));
    describe_storage(&about, d);
    if (!(d->serial && d->serial[0]))
        usbvm_buf_puts(&about, " (no serial: keyed on the port)");
    if (as_usb)
        usbvm_buf_printf(&about, " (not storage: as usb, not %s)", usbvm_mode_to_string(mode));
    _cleanup_free_ char *about_s = usbvm_buf_steal(&about);
    json_object *o = json_object_new_object();
    usbvm_json_add_str(o, "port", d->port);
    usbvm_json_add_str(o, "identity", d->identity);
    usbvm_json_add_str(o, "comment", about_s);
    usbvm_json_add_str(o, "rule", rule);
    return o;
}

static void print_generated(json_object *rules, bool all, bool have_domain)
{
    char when[64] = "";
    time_t now = time(NULL);
    struct tm tm;
    if (localtime_r(&now, &tm))
        strftime(when, sizeof(when), "%Y-%m-%d %H:%M", &tm);
    printf("# usbvm rules for the %s plugged in at %s (usbvm rules generate).\n",
           all ? "USB devices" : "USB storage devices", when);
    printf("# Review them%s, then save as %s/50-local.rules\n"
           "# and check with 'usbvm rules check'. Syntax: usbvm.rules(5).\n"
           "# A device reports its id, serial and name itself: add via-port \"PORT\" to pin a\n"
           "# rule to the port it must be plugged into (SECURITY in usbvm(1)).\n",
           have_domain ? "" : ", replace DOMAIN with the guest's name", USBVM_RULES_DIR);
    for (size_t i = 0; i < json_object_array_length(rules); i++) {
        json_object *o = json_object_array_get_idx(rules, i), *v;
        json_object_object_get_ex(o, "comment", &v);
        /* The comment holds escaped device strings already: no newline can sneak in. */
        printf("\n# %s\n", json_object_get_string(v));
        json_object_object_get_ex(o, "rule", &v);
        printf("%s\n", json_object_get_string(v));
    }
    if (json_object_array_length(rules) == 0)
        printf("\n# No %s is plugged in.\n", all ? "USB device" : "USB storage device");
}

static int cmd_generate(UsbvmCli *cli, const UsbvmVerb *verb, int argc, const char **argv)
{
    _cleanup_(rules_options_clear) RulesOptions o = { 0 };
    _cleanup_(usbvm_cli_args_clear) UsbvmCliArgs p = { 0 };
    if (!usbvm_cli_parse(cli, verb, argc, argv, on_option, &o, &p))
        return p.rc;
    UsbvmMode mode = USBVM_MODE_USB;
    if (o.mode && usbvm_mode_from_string(o.mode, &mode) < 0)
        return usbvm_cli_usage_error(cli, verb, "unknown mode '%s': expected " USBVM_MODE_CHOICES,
                                     o.mode);
    if (o.domain && (!o.domain[0] || strchr(o.domain, '/')))
        return usbvm_cli_usage_error(cli, verb, "invalid domain name '%s'", o.domain);

    UsbvmError err = { 0 };
    _cleanup_(usbvm_device_list_freep) UsbvmDeviceList *list = NULL;
    if (usbvm_cli_devices(&list, &err) < 0)
        return usbvm_cli_error(cli, &err);

    const char *dom = o.domain ? o.domain : "DOMAIN";
    json_object *root = json_object_new_object();
    usbvm_json_add_str(root, "domain", dom);
    usbvm_json_add_str(root, "mode", usbvm_mode_to_string(mode));
    json_object *rules = json_object_new_array();
    for (size_t i = 0; i < list->n; i++) {
        const UsbvmDevice *d = list->devices[i];
        if (!d->is_hub && d->dev_class != 0x09 && (o.all || usbvm_device_is_storage(d)))
            json_object_array_add(rules, generated_rule(d, dom, mode));
    }
    json_object_object_add(root, "rules", rules);
    if (cli->json)
        usbvm_out_json(root);
    else
        print_generated(rules, o.all, o.domain != NULL);
    json_object_put(root);
    return 0;
}

/* ---- dispatch ---- */

const UsbvmVerb usbvm_rules_subverbs[] = {
    { "check",
      cmd_check,
      check_options,
      "[PATH...]",
      "Parse rules files or directories; print every error (exit 7 on errors)",
      { USBVM_ARG_FILE },
      .parent = "rules",
      .arity = { 0, 64 } },
    { "test",
      cmd_test,
      rules_path_options,
      "<device>",
      "Show which rule matches a device, and why each rule before it does not",
      { USBVM_ARG_DEVICE },
      .parent = "rules",
      .arity = { 1, 1 } },
    { "show",
      cmd_show,
      rules_path_options,
      "",
      "Print the rules, normalised",
      { USBVM_ARG_NONE },
      .parent = "rules",
      .arity = { 0, 0 } },
    { "generate",
      cmd_generate,
      generate_options,
      "",
      "Print rules for the devices plugged in now, ready to edit",
      { USBVM_ARG_NONE },
      .parent = "rules",
      .arity = { 0, 0 } },
    { NULL },
};

int usbvm_cmd_rules(UsbvmCli *cli, const UsbvmVerb *verb, int argc, const char **argv)
{
    if (argc >= 2 && (streq(argv[1], "--help") || streq(argv[1], "-h"))) {
        usbvm_cli_print_verb_help(stdout, verb);
        return 0;
    }
    if (argc < 2)
        return usbvm_cli_usage_error(cli, verb,
                                     "no subverb given: expected check, test, show or "
                                     "generate");
    for (const UsbvmVerb *s = usbvm_rules_subverbs; s->name; s++)
        if (streq(s->name, argv[1]))
            return s->fn(cli, s, argc - 1, argv + 1);
    return usbvm_cli_usage_error(
        cli, verb, "unknown subverb '%s'; expected check, test, show or generate", argv[1]);
}
