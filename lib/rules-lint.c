/* Advice about a ruleset that parses: "rules check" gives it, the daemon does not need it.
 * Today one piece: an attach rule keyed only on what a device says about itself. */
#include "rules-internal.h"

#include <string.h>

/* A device cannot choose the port it is plugged into, nor how the hub wired it; everything
 * else (ids, strings, interfaces, labels, sizes) it reports itself, and a programmable stick
 * can report anything. */
static bool attr_is_host_side(UsbvmAttrKind k)
{
    return k == USBVM_ATTR_VIA_PORT || k == USBVM_ATTR_WITH_CONNECT_TYPE;
}

static void lint_rule(const UsbvmRule *r, UsbvmRuleDiags *diags)
{
    if (r->target != USBVM_TARGET_ATTACH || r->attrs[USBVM_ATTR_VIA_PORT])
        return;
    UsbvmBuf names = { 0 };
    size_t n = 0;
    for (int k = 0; k < _USBVM_ATTR_MAX; k++)
        if (r->attrs[k] && !attr_is_host_side((UsbvmAttrKind)k))
            usbvm_buf_printf(&names, "%s%s", n++ ? ", " : "", usbvm_attr_name((UsbvmAttrKind)k));
    _cleanup_free_ char *list = usbvm_buf_steal(&names);
    if (n == 0)
        return; /* no attribute at all: the parser already warns that it matches everything */
    usbvm_rule_diag_add(diags, true, r->file, NULL, r->line, r->column,
                        "this rule attaches any device that reports these values (%s), and a "
                        "device chooses them itself: a stick can be made to report them; pin the "
                        "rule to a port with 'via-port \"...\"' ('usbvm list' shows ports), or "
                        "let USBGuard authorise devices before usbvm sees them (usbvm(1), "
                        "SECURITY)",
                        list);
}

void usbvm_ruleset_lint(const UsbvmRuleset *rs, UsbvmRuleDiags *diags)
{
    for (size_t i = 0; rs && i < rs->n; i++)
        lint_rule(rs->rules[i], diags);
}
