#!/bin/bash
# The service manager's side of usbvm watch: the unit passes 'systemd-analyze verify', and
# watch speaks the notification protocol as Type=notify and WatchdogSec= expect: READY=1 once
# the policy has been applied at start, WATCHDOG=1 repeatedly from its main loop, RELOADING=1
# then READY=1 on SIGHUP, STOPPING=1 on SIGTERM. A listener on a datagram socket stands in for
# systemd.
set -euo pipefail
# shellcheck source=watch-lib.sh
source "$USBVM_SRCDIR/tests/integration/watch-lib.sh"
wl_init
usbvm_h_require systemd-analyze python3

# ---- the unit, with ExecStart pointing at this build
unit=$USBVM_H_TMP/usbvm.service
# Every command line that runs usbvm (ExecStart, and ExecReload's rules check).
bin=$(sed -n 's/^ExecStart=\([^ ]*\).*/\1/p' "$USBVM_BUILDDIR/usbvm.service")
sed -e "s#^\(Exec[A-Za-z]*=\)$bin #\1$USBVM #" "$USBVM_BUILDDIR/usbvm.service" >"$unit"
# --man=no: the man pages are not installed from a build tree; mandoc checks them.
out=$(systemd-analyze verify --man=no "$unit" 2>&1) || usbvm_h_fail "systemd-analyze verify: $out"
usbvm_h_assert_eq "" "$(grep -v 'Failed to connect\|System has not been booted' <<<"$out" || true)" \
    "systemd-analyze verify finds nothing in the unit"
usbvm_h_assert_eq "Type=notify" "$(grep -x 'Type=notify' "$unit")" "the unit is Type=notify"
usbvm_h_assert_match "^WatchdogSec=[0-9]+" "$(grep '^WatchdogSec=' "$unit")" "the unit has a watchdog"

# ---- the protocol
sock=$USBVM_H_TMP/notify.sock
python3 -c '
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
print("listening", flush=True)
while True:
    print(s.recv(4096).decode(), flush=True)' "$sock" >"$USBVM_H_TMP/notify.log" &
LISTENER=$!
trap 'WL_RC=$?; kill $LISTENER 2>/dev/null || true; wl_cleanup; (exit $WL_RC); usbvm_h_cleanup' EXIT
timeout "$USBVM_H_TIMEOUT" grep -q -m1 listening <(tail -n +1 -F "$USBVM_H_TMP/notify.log")

dom=$(usbvm_h_domain_create notify)
usbvm_h_domain_track "$dom"
rules=$USBVM_H_TMP/notify.rules
echo "attach serial \"NT1\" to $dom as usb-disk" >"$rules"
wl_stick a 1-2 NT1
wl_cmd "load ${WL_FILE%.umockdev}.full" >/dev/null # present before watch starts
export NOTIFY_SOCKET=$sock WATCHDOG_USEC=200000
wl_watch_start "$rules"
unset NOTIFY_SOCKET WATCHDOG_USEC
wait_note() {
    timeout "$USBVM_H_TIMEOUT" grep -q -m"${2:-1}" -x "$1" <(tail -n +1 -F "$USBVM_H_TMP/notify.log") ||
        usbvm_h_fail "no '$1' (x${2:-1}) from watch: $(tr '\n' ' ' <"$USBVM_H_TMP/notify.log")"
}
wait_note "READY=1"
usbvm_h_assert_eq 1 "$(wl_owned "$dom")" "READY=1 comes after the present stick was attached"
wait_note "WATCHDOG=1" 3
usbvm_h_ok "WATCHDOG=1 repeats (WATCHDOG_USEC=200000)"
kill -HUP "$WL_WATCH_PID"
wait_note "RELOADING=1"
wait_note "READY=1" 2
usbvm_h_ok "SIGHUP: RELOADING=1 then READY=1"
wl_watch_stop
wait_note "STOPPING=1"
usbvm_h_ok "SIGTERM: STOPPING=1"
