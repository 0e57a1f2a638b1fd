#!/bin/bash
# usbvm watch and two sticks with one identity (a clone of vendor, product and serial): the
# policy acts on neither while both are plugged and the log says why; when one leaves, the
# other is attached; a clone plugged next to an attached stick neither takes its place nor
# gets it detached, and its unplug leaves the genuine stick attached.
set -euo pipefail
# shellcheck source=watch-lib.sh
source "$USBVM_SRCDIR/tests/integration/watch-lib.sh"
wl_init

dom=$(usbvm_h_domain_create clone)
usbvm_h_domain_track "$dom"
rules=$USBVM_H_TMP/clone.rules
printf 'attach serial "%s" with-interface 08:*:* to %s as usb-disk\n' TWIN1 "$dom" MARK1 "$dom" >"$rules"
# Both plugged before watch starts: it must not pick one.
wl_stick a 1-2 TWIN1
first=$WL_FILE
wl_stick b 1-3 TWIN1
second=$WL_FILE
wl_plug "$first" >/dev/null
wl_plug "$second" >/dev/null
wl_watch_start "$rules"
wl_wait '"event":"wait".*"serial":"TWIN1".*"msg":"[^"]*also reported by'
usbvm_h_assert_eq 0 "$(wl_owned "$dom")" "two plugged clones: neither attached"

wl_unplug 1-3 >/dev/null
wl_wait '"event":"attach".*"device":"1-2".*"serial":"TWIN1".*"result":"ok"'
usbvm_h_assert_eq 1 "$(wl_owned "$dom")" "one clone left: it is attached"

n=$(wl_count '"event":"detach"')
wl_plug "$second" >/dev/null
wl_wait '"event":"plug".*"device":"1-3"' 2
wl_wait '"event":"wait".*"serial":"TWIN1".*"msg":"[^"]*also reported by' 2
usbvm_h_assert_eq 1 "$(wl_owned "$dom")" "a clone plugged beside the attached stick: still exactly one attached"
wl_unplug 1-3 >/dev/null
wl_wait '"event":"unplug".*"device":"1-3"' 2
# A marker stick for the same domain: its attach runs on the domain's queue after anything
# the clone's unplug asked for, so once it is attached, no detach can still be on its way.
wl_stick m 1-4 MARK1
wl_plug "$WL_FILE" >/dev/null
wl_wait '"event":"attach".*"serial":"MARK1".*"result":"ok"'
usbvm_h_assert_eq "$n" "$(wl_count '"event":"detach"')" "the clone's plug and unplug detached nothing"
usbvm_h_assert_eq 2 "$(wl_owned "$dom")" "the genuine stick is still attached (beside the marker)"
wl_watch_stop
