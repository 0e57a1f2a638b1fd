#!/bin/bash
# usbvm watch refuses, in every mode, a stick the host uses (invariant 1), and says why: a
# mounted partition, swap, a holder (device-mapper), and a mount made after the plug but before
# a deferred attach (the rule's domain was not running yet). Refused sticks are retried at
# their next event, never in a loop; released and replugged, they go.
set -euo pipefail
# shellcheck source=watch-lib.sh
source "$USBVM_SRCDIR/tests/integration/watch-lib.sh"
wl_init
usbvm_h_require mkfs.ext4 mkswap swapon swapoff mount

dom=$(usbvm_h_domain_create hostuse)
usbvm_h_domain_track "$dom"
later=$(usbvm_h_domain_create later)
usbvm_h_domain_track "$later"
virsh -q -c "$USBVM_H_URI" destroy "$later" >/dev/null
rules=$USBVM_H_TMP/hostuse.rules
: >"$rules"
modes=(usb virtio scsi usb-disk)
for m in "${modes[@]}"; do
    for kind in PART SWAP HELD; do
        echo "attach serial \"$kind-$m\" with-interface 08:*:* to $dom as $m" >>"$rules"
    done
done
echo "attach serial \"LATE\" with-interface 08:*:* to $later as usb-disk" >>"$rules"
wl_watch_start "$rules"

port=1
refused() { # SERIAL REGEX WHAT
    wl_wait "\"event\":\"attach\".*\"serial\":\"$1\".*\"result\":\"refused\""
    local err
    err=$(jq -r --arg s "$1" 'select(.event=="attach" and .serial==$s and .result=="refused") | .error' "$WL_LOG" | head -n1)
    usbvm_h_assert_match "$2" "$err" "$3"
}
for m in "${modes[@]}"; do
    # A partition mounted on the host.
    port=$((port + 1))
    # The fixture's partition sdX1 is a second loop device: mounting it is mounting sdX1.
    part=$(usbvm_h_loop_create 16M)
    usbvm_h_loop_track "$part"
    mkfs.ext4 -q "$part"
    mnt=$USBVM_H_TMP/mnt-$m
    mkdir "$mnt"
    mount "$part" "$mnt"
    usbvm_h_mount_track "$mnt"
    wl_stick "p$port" "1-$port" "PART-$m" --partition "$part"
    wl_plug "$WL_FILE" >/dev/null
    # Named as the model knows it, or (when the executor's last look found it first) by its
    # kernel name.
    refused "PART-$m" "($part|/dev/sd[a-z0-9]+) is mounted on $mnt" "$m: a mounted partition is refused, naming it"
    # Swap.
    port=$((port + 1))
    wl_stick "s$port" "1-$port" "SWAP-$m"
    mkswap -q "$WL_LOOP" >/dev/null
    swapon "$WL_LOOP"
    swap=$WL_LOOP
    wl_plug "$WL_FILE" >/dev/null
    refused "SWAP-$m" "in use as swap" "$m: swap is refused"
    swapoff "$swap"
    # Held by device-mapper.
    port=$((port + 1))
    wl_stick "h$port" "1-$port" "HELD-$m" --holder dm-9
    wl_plug "$WL_FILE" >/dev/null
    refused "HELD-$m" "held by dm-9" "$m: a disk held by device-mapper is refused"
done
usbvm_h_assert_eq 0 "$(wl_owned "$dom")" "nothing the host uses was attached, in any mode"
usbvm_h_assert_eq 0 "$(wl_count '"event":"attach".*"result":"failed"')" \
    "refused before libvirt was asked: no attach of a stick the host uses reached libvirt"
usbvm_h_assert_eq 12 "$(jq -r 'select(.result=="refused") | .serial' "$WL_LOG" | sort -u | wc -l)" \
    "twelve sticks refused"
# Once by the plan; at most once more by the final check, when it saw a partition first.
most=$(jq -r 'select(.result=="refused") | .serial' "$WL_LOG" | sort | uniq -c | sort -rn | awk 'NR==1{print $1}')
[ "$most" -le 2 ] || usbvm_h_fail "a refusal was logged $most times: retried in a loop?"
usbvm_h_ok "each refusal logged at most twice, never in a loop"

# ---- mounted after the plug, before the deferred attach
port=$((port + 1))
wl_stick l "1-$port" LATE
late_loop=$WL_LOOP
mkfs.ext4 -q "$late_loop"
wl_plug "$WL_FILE" >/dev/null
wl_wait '"event":"wait".*"serial":"LATE".*is not running'
lmnt=$USBVM_H_TMP/mnt-late
mkdir "$lmnt"
mount "$late_loop" "$lmnt"
usbvm_h_mount_track "$lmnt"
virsh -q -c "$USBVM_H_URI" start "$later" >/dev/null
refused LATE "is mounted on $lmnt" "mounted while waiting for its domain: refused when the domain starts"
usbvm_h_assert_eq 0 "$(wl_owned "$later")" "the late mount kept it out of the domain"
umount "$lmnt"
wl_unplug "1-$port" >/dev/null
wl_plug "$WL_FILE" >/dev/null
wl_wait '"event":"attach".*"serial":"LATE".*"result":"ok"'
usbvm_h_assert_eq 1 "$(wl_owned "$later")" "unmounted and replugged: attached"
wl_watch_stop
