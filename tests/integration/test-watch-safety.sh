#!/bin/bash
# usbvm watch never attaches a device the host has mounted (invariant 1), and says why; nor a
# device another domain already has, attached by someone else (invariant 2). Once unmounted
# and replugged, the stick goes.
set -euo pipefail
# shellcheck source=watch-lib.sh
source "$USBVM_SRCDIR/tests/integration/watch-lib.sh"
wl_init
usbvm_h_require mkfs.ext4 mount

dom=$(usbvm_h_domain_create safe)
usbvm_h_domain_track "$dom"
other=$(usbvm_h_domain_create other)
usbvm_h_domain_track "$other"
rules=$USBVM_H_TMP/safe.rules
printf 'attach with-interface 08:06:50 to %s as usb-disk\n' "$dom" >"$rules"

wl_stick m 1-2 MNT1
mkfs.ext4 -q "$WL_LOOP"
mnt=$USBVM_H_TMP/mnt
mkdir "$mnt"
mount "$WL_LOOP" "$mnt"
usbvm_h_mount_track "$mnt"
mounted_file=$WL_FILE

wl_stick o 1-3 OTH1
other_file=$WL_FILE
# Another domain holds OTH1's disk already, attached by someone else without usbvm's alias.
printf "<disk type='block' device='disk'><driver name='qemu' type='raw'/><source dev='%s'/><target dev='sdz' bus='usb'/></disk>\n" \
    "$WL_LOOP" >"$USBVM_H_TMP/other-disk.xml"
virsh -q -c "$USBVM_H_URI" attach-device "$other" "$USBVM_H_TMP/other-disk.xml" --live >/dev/null

wl_watch_start "$rules"
wl_plug "$mounted_file" >/dev/null
wl_wait '"event":"attach".*"serial":"MNT1".*"result":"refused"'
err=$(jq -r 'select(.event=="attach" and .serial=="MNT1") | .error' "$WL_LOG")
usbvm_h_assert_match "is mounted on $mnt" "$err" "mounted: refused, naming the mount point"
usbvm_h_assert_eq 0 "$(wl_owned "$dom")" "mounted: nothing attached"

wl_plug "$other_file" >/dev/null
wl_wait '"event":"attach".*"serial":"OTH1".*"result":"refused"'
err=$(jq -r 'select(.event=="attach" and .serial=="OTH1") | .error' "$WL_LOG")
usbvm_h_assert_match "$other" "$err" "in use by another domain: refused, naming it"
usbvm_h_assert_eq 0 "$(wl_owned "$dom")" "in use elsewhere: nothing attached"

# Unmounted and replugged: now it goes.
umount "$mnt"
wl_unplug 1-2 >/dev/null
wl_plug "$mounted_file" >/dev/null
wl_wait '"event":"attach".*"serial":"MNT1".*"result":"ok"'
usbvm_h_assert_eq 1 "$(wl_owned "$dom")" "unmounted and replugged: attached"
wl_unplug 1-2 >/dev/null
wl_wait '"event":"detach".*"serial":"MNT1".*"result":"ok"'
wl_watch_stop
