#!/bin/bash
# usbvm watch survives what happens to a real host: libvirtd killed and started again while
# watch runs (reconnect, converge, no duplicate), a device plugged while libvirtd is down
# (attached after the reconnect), watch itself killed with SIGKILL and started again
# (converges without duplicates), a device pulled while watch was down (its stale disk is
# detached at the next start), and a watch killed right after asking for a detach (the next one
# waits for that request instead of asking libvirt twice, then asks once that is safe).
set -euo pipefail
# shellcheck source=watch-lib.sh
source "$USBVM_SRCDIR/tests/integration/watch-lib.sh"
wl_init
[ "$USBVM_H_STARTED_LIBVIRTD" = 1 ] ||
    usbvm_h_fail "this test kills libvirtd, so it needs one the harness started: stop the running libvirtd first"

dom=$(usbvm_h_domain_create rst)
usbvm_h_domain_track "$dom"
rules=$USBVM_H_TMP/rst.rules
printf 'attach serial "RS1" with-interface 08:*:* to %s as usb-disk\n' "$dom" >"$rules"
printf 'attach serial "RS2" with-interface 08:*:* to %s as usb-disk\n' "$dom" >>"$rules"
printf 'attach serial "RS3" with-interface 08:*:* to %s as virtio\n' "$dom" >>"$rules"
wl_watch_start "$rules"

wl_stick a 1-2 RS1
wl_plug "$WL_FILE" >/dev/null
wl_wait '"event":"attach".*"serial":"RS1".*"result":"ok"'

# ---- libvirtd dies; a second stick arrives while it is gone; libvirtd comes back.
# Kill it while watch is idle: the plug's later uevents (bind) come before a reload in the
# loop, so the reload's line says they are done. (A libvirtd killed in the middle of one of
# watch's calls is a different case, not covered here: see the closing note of this test's
# commit.)
kill -HUP "$WL_WATCH_PID"
wl_wait '"event":"rules","rules":3' 2
usbvm_h_libvirtd_kill
wl_wait 'lost the connection to libvirtd' 1 30
wl_stick b 1-3 RS2
wl_plug "$WL_FILE" >/dev/null
wl_wait '"event":"wait".*"serial":"RS2".*libvirtd'
usbvm_h_libvirtd_start
wl_wait '"event":"connected"' 2 60
wl_wait '"event":"attach".*"serial":"RS2".*"result":"ok"' 1 60
usbvm_h_assert_eq 2 "$(wl_owned "$dom")" "after libvirtd came back: both sticks attached, no duplicate"
usbvm_h_assert_eq 1 "$(wl_count '"event":"attach".*"serial":"RS1".*"result":"ok"')" \
    "the first stick was not attached twice"

# ---- watch dies hard and starts again: nothing changes.
wl_watch_kill
wl_watch_start "$rules"
usbvm_h_assert_eq 2 "$(wl_owned "$dom")" "watch restarted after SIGKILL: still exactly two devices"
usbvm_h_assert_eq 0 "$(wl_count '"event":"attach".*"result":"ok"')" \
    "watch restarted: nothing attached again"

# ---- a stick is pulled while watch is down: its stale disk goes at the next start.
wl_watch_kill
wl_unplug 1-3 >/dev/null
wl_watch_start "$rules"
wl_wait '"event":"detach".*"result":"ok"'
usbvm_h_assert_eq 1 "$(wl_owned "$dom")" "the stick pulled while watch was down is detached at start"

# ---- watch dies right after asking for a detach, and starts again at once. The domain has no
# guest OS, so a virtio disk's removal never comes and stays asked. A second request of libvirt
# while QEMU finishes the first crashes libvirtd 9.0 (lib/hostlock.h): the new watch waits for
# the first one, and asks itself only after the first request's 5 s.
wl_stick c 1-4 RS3
wl_plug "$WL_FILE" >/dev/null
wl_wait '"event":"attach".*"serial":"RS3".*"result":"ok"'
wl_unplug 1-4 >/dev/null
wl_wait '"event":"detach".*"serial":"RS3".*"result":"requested"'
usbvm_h_assert_nomatch 'not asked twice' "$(grep '"event":"detach".*"serial":"RS3"' "$WL_LOG")" \
    "the first watch asks libvirt"
wl_watch_kill
wl_watch_start "$rules"
wl_wait '"event":"detach".*"alias":"ua-usbvm-[0-9a-f]*".*"result":"requested"'
usbvm_h_assert_match 'asked libvirt to detach it [0-9]+ ms ago; not asked twice' \
    "$(grep '"event":"detach"' "$WL_LOG" | head -1)" "the restarted watch does not ask twice"
wl_wait '"event":"detach".*"result":"requested"' 2 20
usbvm_h_assert_nomatch 'not asked twice' "$(grep '"event":"detach"' "$WL_LOG" | sed -n 2p)" \
    "no removal came: the restarted watch asks once the first request's 5 s are over"
wl_watch_stop
