#!/bin/bash
# Chaos 3: the target domain destroyed and started again USBVM_CHAOS_COUNT times (default 10;
# 50 in the full run) with two sticks plugged (usb-disk and scsi): both attached again every
# time. Then a domain stopped while a detach is pending (a virtio disk that a guest without an
# OS never releases): nothing stale once it runs again.
set -euo pipefail
# shellcheck source=../integration/watch-lib.sh
source "$USBVM_SRCDIR/tests/integration/watch-lib.sh"
wl_init
# shellcheck source=chaos-lib.sh
source "$USBVM_SRCDIR/tests/chaos/chaos-lib.sh"
COUNT=${USBVM_CHAOS_COUNT:-10}

dom=$(usbvm_h_domain_create cdom)
usbvm_h_domain_track "$dom"
chaos_domains "$dom"
rules=$USBVM_H_TMP/dom.rules
printf 'attach serial "DOM1" to %s as usb-disk\nattach serial "DOM2" to %s as scsi\nattach serial "DOMV" to %s as virtio\n' \
    "$dom" "$dom" "$dom" >"$rules"
wl_watch_start "$rules"
wl_stick a 1-2 DOM1
wl_plug "$WL_FILE" >/dev/null
wl_stick b 1-3 DOM2
wl_plug "$WL_FILE" >/dev/null
wl_wait '"event":"attach".*"serial":"DOM1".*"result":"ok"'
wl_wait '"event":"attach".*"serial":"DOM2".*"result":"ok"'
chaos_expect "$(chaos_alias DOM1)" "$dom"
chaos_expect "$(chaos_alias DOM2)" "$dom"

for ((i = 1; i <= COUNT; i++)); do
    virsh -q -c "$USBVM_H_URI" destroy "$dom" >/dev/null
    virsh -q -c "$USBVM_H_URI" start "$dom" >/dev/null
    chaos_converge 30 || true
done
chaos_report "domain destroyed and started"

# ---- stopped while a detach is pending
wl_stick v 1-4 DOMV
wl_plug "$WL_FILE" >/dev/null
wl_wait '"event":"attach".*"serial":"DOMV".*"result":"ok"'
wl_unplug 1-4 >/dev/null
wl_wait '"event":"detach".*"serial":"DOMV".*"result":"requested"'
usbvm_h_assert_eq 3 "$(wl_owned "$dom")" "virtio detach pending: the guest holds the disk"
virsh -q -c "$USBVM_H_URI" destroy "$dom" >/dev/null
wl_wait '"event":"domain-stopped"'
virsh -q -c "$USBVM_H_URI" start "$dom" >/dev/null
chaos_reset
chaos_converge 30 || true
chaos_report "domain stopped with a detach pending"
wl_watch_stop
