#!/bin/bash
# Data through a guest with an OS under `usbvm watch`, in every disk mode: plug a stick the
# host has written, the policy attaches it, the guest reads it (sha256) and writes its own file;
# the stick is pulled while the guest still has it mounted: watch detaches it and its log says
# where the guest had it mounted; the host reads the guest's file (sha256).
# GUEST_MODES="virtio" runs only the modes named.
set -euo pipefail
# shellcheck source=watch-lib.sh
source "$USBVM_SRCDIR/tests/integration/watch-lib.sh"
source "$USBVM_SRCDIR/tests/harness/guest.sh"
wl_init
usbvm_h_require mkfs.ext4 sha256sum

now_ms() { local t=${EPOCHREALTIME/./}; echo $((t / 1000)); }
t0=$(now_ms)
dom=$(usbvm_g_domain_create watch)
usbvm_h_domain_track "$dom"
usbvm_g_wait_agent "$dom"
usbvm_h_log "guest $dom: agent answers $(($(now_ms) - t0)) ms after 'virsh start' (TCG)"

rules=$USBVM_H_TMP/guest.rules
cat >"$rules" <<EOF
attach serial "GWA1" to $dom as usb-disk
attach serial "GWV1" to $dom as virtio
attach serial "GWS1" to $dom as scsi
EOF
wl_watch_start "$rules"

HMNT=$USBVM_H_TMP/host-mnt
mkdir -p "$HMNT"
usbvm_h_mount_track "$HMNT"
GMNT=/mnt/usbvm-watch

n=0
for mode in ${GUEST_MODES:-usb-disk virtio scsi}; do
    n=$((n + 1))
    case $mode in
    usb-disk) serial=GWA1 fs=ext4 ;;
    virtio) serial=GWV1 fs=ext4 ;;
    scsi) serial=GWS1 fs=ext4 ;;
    esac
    port=1-$((n + 1))
    wl_stick "g$n" "$port" "$serial"
    loop=$WL_LOOP
    "mkfs.$fs" -q -F "$loop"
    mount "$loop" "$HMNT"
    head -c 1048576 /dev/urandom >"$HMNT/from-host"
    sum_host=$(sha256sum "$HMNT/from-host" | cut -d' ' -f1)
    umount "$HMNT"

    wl_plug "$WL_FILE" >/dev/null
    wl_wait "\"event\":\"attach\".*\"serial\":\"$serial\".*\"result\":\"ok\"" 1 60
    usbvm_h_ok "$mode: watch attached the plugged stick"
    link=$(usbvm_g_by_id "$mode" "$serial")
    out=$(usbvm_g_exec "$dom" "udevadm wait --settle --timeout=60 $link >/dev/null &&
        mkdir -p $GMNT && mount $link $GMNT && sha256sum $GMNT/from-host | cut -d' ' -f1 &&
        head -c 524288 /dev/urandom >$GMNT/from-guest && sync &&
        sha256sum $GMNT/from-guest | cut -d' ' -f1" 90) ||
        usbvm_h_fail "$mode: the guest could not mount, read and write the stick"
    sum_guest=$(sed -n 1p <<<"$out")
    sum_gw=$(sed -n 2p <<<"$out")
    usbvm_h_assert_eq "$sum_host" "$sum_guest" "$mode: the guest reads the host's file"
    usbvm_h_log "$mode ($fs): host wrote sha256 $sum_host; the guest read $sum_guest"

    # Pulled while the guest has it mounted: detached, and the log says where it was mounted.
    t0=$(now_ms)
    wl_unplug "$port" >/dev/null
    wl_wait "\"event\":\"detach\".*\"serial\":\"$serial\".*\"result\":\"ok\"" 1 60
    usbvm_h_log "$mode: pull -> detach confirmed in $(($(now_ms) - t0)) ms"
    rec=$(jq -c --arg s "$serial" 'select(.event == "detach" and .serial == $s)' "$WL_LOG")
    usbvm_h_assert_match "the guest had it mounted on $GMNT" "$(jq -r .notes <<<"$rec")" \
        "$mode: watch's log names the guest's mount point of the pulled stick"

    blockdev --flushbufs "$loop"
    mount -o ro "$loop" "$HMNT"
    sum_hr=$(sha256sum "$HMNT/from-guest" | cut -d' ' -f1)
    umount "$HMNT"
    usbvm_h_assert_eq "$sum_gw" "$sum_hr" "$mode: the host reads the guest's file"
    usbvm_h_log "$mode ($fs): the guest wrote sha256 $sum_gw; the host read $sum_hr"
    usbvm_g_exec "$dom" "umount -l $GMNT" >/dev/null 2>&1 || true
done
wl_watch_stop
