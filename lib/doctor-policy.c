/* usbvm doctor: the policy. Whether the rules load, which rule decides for the device (as
 * "usbvm rules test" says, with the library's matcher), and whether "usbvm watch" runs to
 * apply them. */
#include "config.h"
#include "doctor.h"
#include "rules.h"

#include <string.h>

static void report_load_error(const char *path, const UsbvmRuleDiags *diags, UsbvmChecks *out)
{
    const UsbvmRuleDiag *first = NULL;
    for (size_t i = 0; i < diags->n && !first; i++)
        if (!diags->items[i].warning)
            first = &diags->items[i];
    _cleanup_free_ char *fix = xasprintf("Fix the rules: 'usbvm rules check %s' shows every "
                                         "error; until they load, a running watch keeps the "
                                         "previous policy and a new one does not start.",
                                         path);
    if (first && first->line)
        usbvm_checks_add(out, "rules", false, fix,
                         "the rules do not load: %s:%u:%u: %s (%zu error%s)", first->file,
                         first->line, first->column, first->message, diags->n_errors,
                         diags->n_errors == 1 ? "" : "s");
    else
        usbvm_checks_add(out, "rules", false, fix, "the rules do not load: %s: %s",
                         first ? first->file : path, first ? first->message : "unknown error");
}

/* A rule that would attach the device to the domain, for the admin to paste. */
static char *rule_fix(const UsbvmDevice *d, const char *domain, const char *before)
{
    UsbvmMode mode = usbvm_device_is_storage(d) ? USBVM_MODE_USB_DISK : USBVM_MODE_USB;
    _cleanup_free_ char *rule = usbvm_rule_generate(d, domain, mode);
    if (before)
        return xasprintf("Add this rule before %s (or change that one):\n  %s", before, rule);
    return xasprintf("Add a rule to a file in %s ('usbvm rules generate --to %s' writes one):\n"
                     "  %s",
                     USBVM_RULES_DIR, domain, rule);
}

/* Returns the mode of the rule that attaches the device to the asked domain (or to any domain
 * when none was asked), else -1. */
static int check_match(const UsbvmRuleset *rs, const UsbvmDoctorQuery *q, UsbvmChecks *out)
{
    const UsbvmDevice *d = q->device;
    const UsbvmRule *m = usbvm_ruleset_match(rs, d);
    if (!m) {
        if (!q->domain) {
            usbvm_checks_add(out, "rule", true, NULL,
                             "no rule matches the device: it stays on the host");
            return -1;
        }
        _cleanup_free_ char *fix = rule_fix(d, q->domain, NULL);
        usbvm_checks_add(out, "rule", false, fix,
                         "no rule matches the device: watch leaves it on the host");
        return -1;
    }
    _cleanup_free_ char *where = xasprintf("%s:%u", usbvm_rule_file(m), usbvm_rule_line(m));
    if (usbvm_rule_target(m) == USBVM_TARGET_IGNORE) {
        if (!q->domain) {
            usbvm_checks_add(out, "rule", true, NULL, "%s ignores the device: it stays on the host",
                             where);
            return -1;
        }
        _cleanup_free_ char *fix = rule_fix(d, q->domain, where);
        usbvm_checks_add(out, "rule", false, fix, "%s ignores the device: it stays on the host",
                         where);
        return -1;
    }
    const char *dom = usbvm_rule_domain(m);
    UsbvmMode mode = usbvm_rule_spec(m)->mode;
    if (q->domain && !streq(dom, q->domain)) {
        _cleanup_free_ char *fix = rule_fix(d, q->domain, where);
        usbvm_checks_add(out, "rule", false, fix, "%s attaches the device to '%s', not to '%s'",
                         where, dom, q->domain);
        return -1;
    }
    usbvm_checks_add(out, "rule", true, NULL, "%s attaches the device to '%s' as %s", where, dom,
                     usbvm_mode_to_string(mode));
    return (int)mode;
}

typedef struct WatchScan {
    const char *rules; /* realpath of the rules doctor reads */
    bool same;         /* a watch with these rules runs */
    char *other;       /* rules of another watch, when only others run */
} WatchScan;

/* The rules path of a "usbvm watch" command line, NULL when argv is not one. */
static const char *watch_rules(char *const *argv)
{
    const char *base = strrchr(argv[0], '/');
    if (!streq(base ? base + 1 : argv[0], "usbvm") || !usbvm_strv_contains(argv + 1, "watch"))
        return NULL;
    const char *rules = USBVM_RULES_DIR;
    for (size_t i = 1; argv[i]; i++) {
        if ((streq(argv[i], "--rules") || streq(argv[i], "-r")) && argv[i + 1])
            rules = argv[i + 1];
        else if (strncmp(argv[i], "--rules=", 8) == 0)
            rules = argv[i] + 8;
    }
    return rules;
}

static bool watch_match(char *const *argv, void *userdata)
{
    WatchScan *s = userdata;
    const char *rules = watch_rules(argv);
    if (!rules)
        return false;
    /* A relative path is the watch's own business; compare what can be compared. */
    _cleanup_free_ char *real = realpath(rules, NULL);
    s->same = streq(real ? real : rules, s->rules);
    if (!s->same && !s->other)
        s->other = xstrdup(rules);
    return s->same;
}

static void check_watch(const UsbvmDoctorPaths *paths, const char *rules, UsbvmChecks *out)
{
    _cleanup_free_ char *real = realpath(rules, NULL);
    WatchScan s = { .rules = real ? real : rules };
    usbvm_proc_each(paths->proc, watch_match, &s);
    _cleanup_free_ char *other = s.other;
    _cleanup_free_ char *fix = xasprintf("Start the daemon: 'systemctl enable --now usbvm' (or "
                                         "run 'usbvm watch --rules %s'); 'usbvm attach' works "
                                         "without it.",
                                         rules);
    if (s.same)
        usbvm_checks_add(out, "watch", true, NULL, "usbvm watch runs with %s", rules);
    else if (other)
        usbvm_checks_add(out, "watch", false, fix,
                         "usbvm watch runs with other rules (%s), none with %s", other, rules);
    else
        usbvm_checks_add(out, "watch", false, fix,
                         "usbvm watch does not run: nothing applies the rules");
}

int usbvm_doctor_policy(const UsbvmDoctorPaths *paths, const UsbvmDoctorQuery *q, UsbvmChecks *out)
{
    const char *path = q->rules_path ? q->rules_path : USBVM_RULES_DIR;
    if (!q->rules_path && access(path, F_OK) < 0) {
        /* A fresh install: no policy is a valid policy; "rule" below says what it means. */
        usbvm_checks_add(out, "rules", true, NULL, "no rules (%s does not exist)", path);
        if (q->device && q->domain) {
            _cleanup_free_ char *fix = rule_fix(q->device, q->domain, NULL);
            usbvm_checks_add(out, "rule", false, fix,
                             "no rule matches the device: watch leaves it on the host");
        }
        return -1;
    }
    _cleanup_(usbvm_ruleset_freep) UsbvmRuleset *rs = NULL;
    UsbvmRuleDiags diags = { 0 };
    int r = usbvm_ruleset_load(path, &rs, &diags);
    if (r < 0) {
        report_load_error(path, &diags, out);
        usbvm_rule_diags_clear(&diags);
        return -1;
    }
    size_t warnings = diags.n - diags.n_errors;
    usbvm_rule_diags_clear(&diags);
    usbvm_checks_add(out, "rules", true, NULL, "%zu rule%s from %s load%s", usbvm_ruleset_size(rs),
                     usbvm_ruleset_size(rs) == 1 ? "" : "s", path,
                     warnings ? " (with warnings: see 'usbvm rules check')" : "");
    int mode = q->device ? check_match(rs, q, out) : -1;
    /* The daemon matters only when the rules are to attach something. */
    if (mode >= 0 || (!q->device && usbvm_ruleset_size(rs) > 0))
        check_watch(paths, path, out);
    return mode;
}
