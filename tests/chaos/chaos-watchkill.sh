#!/bin/bash
# Chaos 4: usbvm watch SIGKILLed at varying moments USBVM_CHAOS_COUNT times (default 10; 50 in
# the full run) and started again, while sticks come and go: after each start the state
# converges, and a stick pulled while watch was down is detached at start.
set -euo pipefail
# shellcheck source=../integration/watch-lib.sh
source "$USBVM_SRCDIR/tests/integration/watch-lib.sh"
wl_init
# shellcheck source=chaos-lib.sh
source "$USBVM_SRCDIR/tests/chaos/chaos-lib.sh"
COUNT=${USBVM_CHAOS_COUNT:-10}
# A watch killed in the middle of libvirt's scsi attach can leave the stick's block nodes in
# QEMU (libvirt lists none of it), and libvirt refuses later attaches of it ("Failed to get
# "write" lock"): watch removes the nodes and attaches (lib/virt-orphan.c). Every run
# converges; stale, duplicates and wrong domain are 0. A watch killed right after its detach of
# the scsi stick, with the next one started at once, used to ask libvirt for the same detach
# again before libvirt had handled the first; libvirtd 9.0 then crashed (about once in 20 runs):
# the next watch now waits for the first request (lib/hostlock.h).

dom=$(usbvm_h_domain_create ckill)
usbvm_h_domain_track "$dom"
chaos_domains "$dom"
rules=$USBVM_H_TMP/kill.rules
printf 'attach serial "KIL1" to %s as usb-disk\nattach serial "KIL2" to %s as scsi\n' \
    "$dom" "$dom" >"$rules"
wl_stick a 1-2 KIL1
s1=$WL_FILE
wl_stick b 1-3 KIL2
s2=$WL_FILE
wl_watch_start "$rules"
wl_plug "$s1" >/dev/null
wl_wait '"event":"attach".*"serial":"KIL1".*"result":"ok"'
a1=$(chaos_alias KIL1)
chaos_expect "$a1" "$dom"
plugged2=0
for ((i = 1; i <= COUNT; i++)); do
    # Something happens, and watch dies in the middle of it or just after.
    if ((plugged2)); then
        wl_unplug 1-3 >/dev/null
        plugged2=0
        chaos_forget "${a2:-none}"
    else
        wl_plug "$s2" >/dev/null
        plugged2=1
    fi
    case $((i % 3)) in
    0) ;;                                           # at once
    1) wl_wait '"event":"(plug|unplug)"' "$(wl_count '"event":"(plug|unplug)"')" ;; # once seen
    2) virsh -q -c "$USBVM_H_URI" event "$dom" --timeout 5 >/dev/null 2>&1 || true ;; # after a libvirt event
    esac
    wl_watch_kill
    # While it is down, the other stick may go or come too.
    if ((i % 4 == 0)) && ((plugged2)); then
        wl_unplug 1-3 >/dev/null
        plugged2=0
    fi
    : >"$WL_LOG"
    wl_watch_start "$rules"
    if ((plugged2)); then
        a2=$(usbvm_h_json .device.alias "$(LD_PRELOAD=libumockdev-preload.so.0 "$USBVM" -c "$USBVM_H_URI" show 1-3 --json)")
        chaos_expect "$a2" "$dom"
    else
        chaos_forget "${a2:-none}"
    fi
    chaos_converge 30 || true
done
chaos_report "watch killed and started"
wl_watch_stop
