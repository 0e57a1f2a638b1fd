#!/bin/bash
# usbvm watch and domain lifecycle: a device whose domain is not running waits, and is
# attached when the domain starts; destroying and starting the domain again attaches it again.
set -euo pipefail
# shellcheck source=watch-lib.sh
source "$USBVM_SRCDIR/tests/integration/watch-lib.sh"
wl_init

dom=$(usbvm_h_domain_create life)
usbvm_h_domain_track "$dom"
virsh -q -c "$USBVM_H_URI" destroy "$dom" >/dev/null

rules=$USBVM_H_TMP/life.rules
echo "attach serial \"LD1\" with-interface 08:*:* to $dom as usb-disk" >"$rules"
wl_watch_start "$rules"

wl_stick a 1-2 LD1
wl_plug "$WL_FILE" >/dev/null
wl_wait '"event":"wait".*"serial":"LD1".*"msg":"domain .* is not running'
usbvm_h_ok "plugged while the domain is shut off: waiting, and the log says why"

virsh -q -c "$USBVM_H_URI" start "$dom" >/dev/null
wl_wait '"event":"attach".*"serial":"LD1".*"result":"ok"'
usbvm_h_assert_eq 1 "$(wl_owned "$dom")" "attached once the domain started"

virsh -q -c "$USBVM_H_URI" destroy "$dom" >/dev/null
wl_wait '"event":"domain-stopped"'
virsh -q -c "$USBVM_H_URI" start "$dom" >/dev/null
wl_wait '"event":"attach".*"serial":"LD1".*"result":"ok"' 2
usbvm_h_assert_eq 1 "$(wl_owned "$dom")" "attached again after destroy and start"

wl_unplug 1-2 >/dev/null
wl_wait '"event":"detach".*"serial":"LD1".*"result":"ok"'
usbvm_h_assert_eq 0 "$(wl_owned "$dom")" "detached on unplug"
wl_watch_stop

# ---- stopping: attached devices stay attached, unless --detach-on-exit.
wl_watch_start "$rules"
wl_stick b 1-3 LD1
wl_plug "$WL_FILE" >/dev/null
wl_wait '"event":"attach".*"serial":"LD1".*"result":"ok"'
wl_watch_stop
usbvm_h_assert_eq 1 "$(wl_owned "$dom")" "SIGTERM: the device stays attached"
wl_watch_start "$rules" --detach-on-exit
wl_watch_stop
usbvm_h_assert_eq 0 "$(wl_owned "$dom")" "SIGTERM with --detach-on-exit: detached and confirmed before exit"
