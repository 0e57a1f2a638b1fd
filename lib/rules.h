/* Policy rules: an ordered list of "attach ... to DOMAIN [as MODE] [options]" and
 * "ignore ..." rules; the first rule that matches a device decides; a device that no rule
 * matches stays on the host. usbvm.rules(5) is the specification. */
#pragma once

#include "device.h"
#include "error.h"
#include "mode.h"

typedef struct UsbvmRule UsbvmRule;       /* opaque */
typedef struct UsbvmRuleset UsbvmRuleset; /* opaque, ordered */

typedef enum UsbvmTarget {
    USBVM_TARGET_ATTACH,
    USBVM_TARGET_IGNORE,
} UsbvmTarget;

/* One problem found while loading rules. */
typedef struct UsbvmRuleDiag {
    bool warning;    /* false: error (the ruleset is rejected) */
    char *file;      /* path as given */
    unsigned line;   /* 1-based; 0 when the problem is with the file itself */
    unsigned column; /* 1-based */
    char *message;   /* "expected '}' to close the set opened at column 12" */
    char *source;    /* the offending line, for the caret display; NULL when none */
} UsbvmRuleDiag;

typedef struct UsbvmRuleDiags {
    UsbvmRuleDiag *items;
    size_t n;
    size_t n_errors;
} UsbvmRuleDiags;
void usbvm_rule_diags_clear(UsbvmRuleDiags *d);

/* Parses rules from text (name is used in diagnostics). Returns 0 and a ruleset when there
 * are no errors (warnings may be present); -EINVAL with every error in diags otherwise. */
int usbvm_ruleset_parse(const char *name, const char *text, UsbvmRuleset **ret,
                        UsbvmRuleDiags *diags);
/* Loads a file, or every *.rules file of a directory in lexical order. When running as root,
 * files and directories writable by anyone but root are refused (StrictModes). */
int usbvm_ruleset_load(const char *path, UsbvmRuleset **ret, UsbvmRuleDiags *diags);
/* The same, choosing StrictModes explicitly (tests, and "rules check" of a file that a
 * non-root user is preparing). AUTO: strict when the effective uid is 0. */
typedef enum UsbvmRulesLoadFlags {
    USBVM_RULES_STRICT_AUTO = 0,
    USBVM_RULES_STRICT = 1 << 0,
    USBVM_RULES_NOT_STRICT = 1 << 1,
} UsbvmRulesLoadFlags;
int usbvm_ruleset_load_flags(const char *path, UsbvmRulesLoadFlags flags, UsbvmRuleset **ret,
                             UsbvmRuleDiags *diags);
void usbvm_ruleset_free(UsbvmRuleset *rs);
/* Adds warnings about rules that parse but are unsafe as written: an attach rule that matches
 * only on what a device reports about itself (no via-port). For "rules check". */
void usbvm_ruleset_lint(const UsbvmRuleset *rs, UsbvmRuleDiags *diags);
DEFINE_TRIVIAL_CLEANUP_FUNC(UsbvmRuleset *, usbvm_ruleset_free)

size_t usbvm_ruleset_size(const UsbvmRuleset *rs);
const UsbvmRule *usbvm_ruleset_get(const UsbvmRuleset *rs, size_t i);

UsbvmTarget usbvm_rule_target(const UsbvmRule *r);
const char *usbvm_rule_domain(const UsbvmRule *r); /* NULL for ignore */
const UsbvmAttachSpec *usbvm_rule_spec(const UsbvmRule *r);
const char *usbvm_rule_file(const UsbvmRule *r);
unsigned usbvm_rule_line(const UsbvmRule *r);
/* Normalised text of the rule (the formatter); parse(format(r)) == r. New string. */
char *usbvm_rule_format(const UsbvmRule *r);
/* Same target, domain, options and match (file and line are not compared). */
bool usbvm_rule_equal(const UsbvmRule *a, const UsbvmRule *b);
/* A rule for one device, as "rules generate" proposes it: keyed on id + serial when the device
 * has a serial, else id + via-port; with a disk mode, also "with-interface one-of { 08:*:* }".
 * Always parses back without errors. New string, without a newline. */
char *usbvm_rule_generate(const UsbvmDevice *d, const char *domain, UsbvmMode mode);

/* The first matching rule, or NULL when none matches (the device stays on the host). */
const UsbvmRule *usbvm_ruleset_match(const UsbvmRuleset *rs, const UsbvmDevice *d);
/* For "rules test": whether r matches d, and if not, a new string naming the attribute that
 * failed and why ("serial: device has \"4C53...\", rule wants \"ABC\""). */
bool usbvm_rule_explain(const UsbvmRule *r, const UsbvmDevice *d, char **ret_reason);
/* Whether r matches d (hubs never match), without building a reason. */
bool usbvm_rule_matches(const UsbvmRule *r, const UsbvmDevice *d);
/* The name of the first attribute of r that d fails ("serial", "with-interface", ...), "hub"
 * for a hub, NULL when r matches d. Static string. */
const char *usbvm_rule_failed_attribute(const UsbvmRule *r, const UsbvmDevice *d);
