#!/bin/bash
# usbvm watch and SIGHUP: rules that fail to parse change nothing (the old policy stays and
# is still applied to new devices); rules that parse are applied to present devices: a device
# whose rule now names another domain is moved (detached, then attached there, never in two
# domains at once), a device no rule matches goes back to the host.
set -euo pipefail
# shellcheck source=watch-lib.sh
source "$USBVM_SRCDIR/tests/integration/watch-lib.sh"
wl_init

d1=$(usbvm_h_domain_create one)
usbvm_h_domain_track "$d1"
d2=$(usbvm_h_domain_create two)
usbvm_h_domain_track "$d2"
rules=$USBVM_H_TMP/reload.rules
echo "attach id 0781:5567 with-interface 08:*:* to $d1 as usb-disk" >"$rules"
wl_watch_start "$rules"

wl_stick a 1-2 RL1
wl_plug "$WL_FILE" >/dev/null
wl_wait '"event":"attach".*"serial":"RL1".*"result":"ok"'

# ---- broken rules: every error logged with file:line:column, the old policy stays.
printf 'attach id 0781:5567 to %s as usb-disk\nattach id 0781: to %s\n' "$d2" "$d2" >"$rules"
kill -HUP "$WL_WATCH_PID"
wl_wait '"event":"rules","level":"error".*"line":2'
wl_wait 'reload refused, keeping the previous policy'
wl_stick b 1-3 RL2
wl_plug "$WL_FILE" >/dev/null
wl_wait '"event":"attach".*"serial":"RL2".*"domain":"'"$d1"'".*"result":"ok"'
usbvm_h_assert_eq 2 "$(wl_owned "$d1")" "broken rules: the old policy still applies, to new devices too"
usbvm_h_assert_eq 0 "$(wl_owned "$d2")" "broken rules: nothing moved"

# ---- changed rules: RL1 moves to d2, RL2 matches nothing and goes back to the host.
printf 'attach serial "RL1" with-interface 08:*:* to %s as usb-disk\n' "$d2" >"$rules"
kill -HUP "$WL_WATCH_PID"
wl_wait '"event":"attach".*"serial":"RL1".*"domain":"'"$d2"'".*"result":"ok"'
wl_wait '"event":"detach".*"serial":"RL2".*"result":"ok"'
usbvm_h_assert_eq 0 "$(wl_owned "$d1")" "after reload: nothing left in the first domain"
usbvm_h_assert_eq 1 "$(wl_owned "$d2")" "after reload: RL1 moved to the second domain"
# The detach from d1 was confirmed before the attach to d2 (invariant 2).
order=$(jq -r 'select(.serial=="RL1" and .result=="ok") | .event + ":" + .domain' "$WL_LOG" | tail -n 2 | tr '\n' ' ')
usbvm_h_assert_eq "detach:$d1 attach:$d2 " "$order" "moved: detach confirmed before the attach elsewhere"

# ---- ignore means hands off: RL1 stays in d2 although no attach rule names it any more.
detaches=$(wl_count '"event":"detach".*"serial":"RL1"')
printf 'ignore serial "RL1"\n' >"$rules"
kill -HUP "$WL_WATCH_PID"
wl_wait '"event":"rules","rules":1' 3
# The reload's reconcile runs in the same turn of the loop as the "rules" line; a later plug
# is handled after it.
wl_stick c 1-4 RL3
wl_plug "$WL_FILE" >/dev/null
wl_wait '"event":"plug".*"serial":"RL3"'
usbvm_h_assert_eq "$detaches" "$(wl_count '"event":"detach".*"serial":"RL1"')" "ignore: not detached"
usbvm_h_assert_eq 1 "$(wl_owned "$d2")" "ignore: still in the second domain"
wl_watch_stop
