/* libFuzzer target for the rules parser: any input must parse or fail cleanly, and whatever
 * parses must survive the round trip format -> parse -> equal, and match without crashing. */
#include "rules.h"
#include "../unit/test-rules-fixtures.h"

#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 65536)
        return 0;
    char *text = xstrndup((const char *)data, size); /* stops at a NUL, as a C string does */
    UsbvmRuleDiags d = { 0 };
    UsbvmRuleset *rs = NULL;
    if (usbvm_ruleset_parse("fuzz", text, &rs, &d) == 0) {
        UsbvmDevice **devs = usbvm_test_rule_devices();
        for (size_t i = 0; i < usbvm_ruleset_size(rs); i++) {
            const UsbvmRule *r = usbvm_ruleset_get(rs, i);
            char *f = usbvm_rule_format(r);
            UsbvmRuleset *rs2 = NULL;
            if (usbvm_ruleset_parse("formatted", f, &rs2, NULL) != 0 ||
                usbvm_ruleset_size(rs2) != 1 || !usbvm_rule_equal(r, usbvm_ruleset_get(rs2, 0)))
                __builtin_trap();
            char *f2 = usbvm_rule_format(usbvm_ruleset_get(rs2, 0));
            if (strcmp(f, f2) != 0)
                __builtin_trap();
            for (size_t j = 0; devs[j]; j++) {
                char *why = NULL;
                bool m = usbvm_rule_explain(r, devs[j], &why);
                if (m != usbvm_rule_matches(r, devs[j]) || m == (why != NULL))
                    __builtin_trap();
                free(why);
            }
            free(f);
            free(f2);
            usbvm_ruleset_free(rs2);
        }
        for (size_t j = 0; devs[j]; j++)
            (void)usbvm_ruleset_match(rs, devs[j]);
        usbvm_test_rule_devices_free(devs);
    } else if (d.n_errors == 0)
        __builtin_trap(); /* a rejection always says why */
    for (size_t i = 0; i < d.n; i++)
        if (!d.items[i].message || !d.items[i].file)
            __builtin_trap();
    usbvm_rule_diags_clear(&d);
    usbvm_ruleset_free(rs);
    free(text);
    return 0;
}
