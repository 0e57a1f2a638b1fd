#!/bin/bash
# usbvm watch under valgrind: plug/unplug cycles, a rules reload, SIGTERM; valgrind must
# report no invalid access and no definite or indirect leak (exit status 0, not 99).
set -euo pipefail
# shellcheck source=watch-lib.sh
source "$USBVM_SRCDIR/tests/integration/watch-lib.sh"
wl_init
usbvm_h_require valgrind
# valgrind runs the binary itself, not the suite's --json checking wrapper.
USBVM=${USBVM_REAL:-$USBVM}
# Sanitizer builds cannot run under valgrind; the sanitizers check the same things there.
# (Read whole, not piped into grep -q: grep's early exit would kill nm with SIGPIPE, and under
# pipefail a busy machine then took the ASan build for a plain one.)
symbols=$(nm -D "$USBVM" 2>/dev/null || true)
libs=$(ldd "$USBVM" 2>/dev/null || true)
if [[ $symbols == *__asan_init* || $libs == *libasan* ]]; then
    usbvm_h_ok "ASan build: leaks are checked by LeakSanitizer in every watch test instead"
    exit 0
fi
USBVM_H_TIMEOUT=120

dom=$(usbvm_h_domain_create vg)
usbvm_h_domain_track "$dom"
rules=$USBVM_H_TMP/vg.rules
printf 'attach with-interface 08:06:50 to %s as usb-disk\n' "$dom" >"$rules"
wl_stick a 1-2 VG1
WL_WRAP=(valgrind -q --leak-check=full --errors-for-leak-kinds=definite,indirect
    --show-leak-kinds=definite,indirect --error-exitcode=99 --log-file="$USBVM_H_TMP/vg.log")
wl_watch_start "$rules"
for i in 1 2 3; do
    wl_plug "$WL_FILE" >/dev/null
    wl_wait '"event":"attach".*"serial":"VG1".*"result":"ok"' "$i"
    wl_unplug 1-2 >/dev/null
    wl_wait '"event":"detach".*"serial":"VG1".*"result":"ok"' "$i"
done
kill -HUP "$WL_WATCH_PID"
wl_wait '"event":"rules","rules":1' 2
kill -TERM "$WL_WATCH_PID"
rc=0
wait "$WL_WATCH_PID" || rc=$?
WL_WATCH_PID=
[ "$rc" = 0 ] || cat "$USBVM_H_TMP/vg.log" >&2
usbvm_h_assert_eq 0 "$rc" "valgrind: no invalid access, no definite or indirect leak"
