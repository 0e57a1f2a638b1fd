#!/bin/bash
# Chaos 2: a stick pulled during its attach, at varying moments (right after its uevent, so
# during the plan or libvirt's call, and right after libvirt's answer), USBVM_CHAOS_COUNT times
# (default 20; 100 in the full run), alternating usb-disk and scsi. After each pull: nothing of
# it stays in the domain (0 stale), and a stick that stays plugged is still attached once.
set -euo pipefail
# shellcheck source=../integration/watch-lib.sh
source "$USBVM_SRCDIR/tests/integration/watch-lib.sh"
wl_init
# shellcheck source=chaos-lib.sh
source "$USBVM_SRCDIR/tests/chaos/chaos-lib.sh"
COUNT=${USBVM_CHAOS_COUNT:-20}

dom=$(usbvm_h_domain_create cpull)
usbvm_h_domain_track "$dom"
chaos_domains "$dom"
rules=$USBVM_H_TMP/pull.rules
printf 'attach serial "KEEP1" to %s as usb-disk\nattach serial "PULL1" to %s as usb-disk\nattach serial "PULL2" to %s as scsi\n' \
    "$dom" "$dom" "$dom" >"$rules"
wl_watch_start "$rules"
wl_stick k 1-5 KEEP1
wl_plug "$WL_FILE" >/dev/null
wl_wait '"event":"attach".*"serial":"KEEP1".*"result":"ok"'
chaos_expect "$(chaos_alias KEEP1)" "$dom"

wl_stick p 1-2 PULL1
pull1=$WL_FILE
wl_stick q 1-3 PULL2
pull2=$WL_FILE
for ((i = 1; i <= COUNT; i++)); do
    if ((i % 2)); then file=$pull1 port=1-2 serial=PULL1; else file=$pull2 port=1-3 serial=PULL2; fi
    plug_re="\"event\":\"plug\".*\"serial\":\"$serial\""
    ok_re="\"event\":\"attach\".*\"serial\":\"$serial\".*\"result\":\"ok\""
    n=$(wl_count "$plug_re")
    n_ok=$(wl_count "$ok_re")
    wl_plug "$file" >/dev/null
    case $((i % 4)) in
    0 | 1) wl_wait "$plug_re" $((n + 1)) ;;  # pulled while the attach is planned or in flight
    *) wl_wait "$ok_re" $((n_ok + 1)) 60 ;; # pulled right after libvirt's answer
    esac
    wl_unplug "$port" >/dev/null
    chaos_converge 20 || true
done
chaos_report "pull during attach"
wl_watch_stop
