#!/bin/bash
# The manual pages pass 'mandoc -T lint' with no message at all (style included), and every
# option a verb accepts appears in usbvm(1).
set -uo pipefail
source "$USBVM_SRCDIR/tests/harness/libvirt.sh"
usbvm_h_init
usbvm_h_require mandoc

out=$(mandoc -T lint "$USBVM_SRCDIR"/man/usbvm.1 "$USBVM_SRCDIR"/man/usbvm.rules.5 2>&1)
usbvm_h_assert_eq 0 "$?" "mandoc -T lint exits 0 ($out)"
usbvm_h_assert_eq "" "$out" "mandoc -T lint prints nothing"

# The options come from each verb's --help, which the verb tables generate.
man=$(sed 's/\\-/-/g; s/\\f[BIRP]//g' "$USBVM_SRCDIR/man/usbvm.1")
for verb in list show attach detach status watch "rules check" "rules test" "rules show" \
    "rules generate"; do
    # shellcheck disable=SC2086
    for opt in $("$USBVM" $verb --help | sed -n 's/^ *\(-., \)\{0,1\}\(--[a-z-]*\).*/\2/p'); do
        grep -qF -- "$opt" <<<"$man" || usbvm_h_fail "usbvm(1) does not document $verb $opt"
        usbvm_h_ok "usbvm(1) documents $verb $opt"
    done
done
