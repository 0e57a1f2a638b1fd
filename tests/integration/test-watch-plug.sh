#!/bin/bash
# usbvm watch with real libvirtd + QEMU and umockdev uevents: plug -> attached and unplug ->
# detached with no stale XML, in each mode that runs here; replug with a new devnum and disk
# name -> attached again; virtio without a guest OS -> detach stays requested (pending), never
# reported done; usb passthrough -> libvirt's refusal (no USB in this kernel) logged clearly.
set -euo pipefail
# shellcheck source=watch-lib.sh
source "$USBVM_SRCDIR/tests/integration/watch-lib.sh"
wl_init

dom=$(usbvm_h_domain_create plug)
usbvm_h_domain_track "$dom"

rules=$USBVM_H_TMP/plug.rules
cat >"$rules" <<EOF
attach serial "WA1" to $dom as usb-disk
attach serial "WV1" to $dom as virtio
attach serial "WS1" to $dom as scsi
attach serial "WU1" to $dom as usb
attach serial "WT1" to $dom as usb-disk
attach serial "WR1" to $dom as usb-disk
EOF
WL_GLOBAL=(-vv) # the debug lines say whether an attach read the domain
wl_watch_start "$rules"

# ---- usb-disk: plug, unplug, replug with a new devnum and a new disk name
wl_stick a 1-2 WA1
first=$WL_FILE
wl_plug "$first" >/dev/null
wl_wait '"event":"attach".*"serial":"WA1".*"result":"ok"'
usbvm_h_assert_eq 1 "$(wl_owned "$dom")" "usb-disk: one ua-usbvm- device in the live XML after plug"
xml=$(usbvm_h_live_xml "$dom")
usbvm_h_assert_match "<target dev='sd[a-z]+' bus='usb'" "$xml" "usb-disk: disk on bus usb"
alias=$(jq -r 'select(.event=="attach" and .serial=="WA1") | .alias' "$WL_LOG" | head -n1)
usbvm_h_assert_match "^ua-usbvm-[0-9a-f]{16}$" "$alias" "usb-disk: alias derived from identity"
usbvm_h_assert_match "$alias" "$(usbvm_h_qmp "$dom" '{"execute":"query-block"}')" \
    "usb-disk: QEMU's query-block shows the disk"
# The attach record says when each step happened, in order, up to the record itself.
usbvm_h_assert_eq true "$(jq -r 'select(.event=="attach" and .serial=="WA1") | .steps_usec as $s |
    [$s.event, $s.planned, $s.started, $s.called, $s.answered, .mono_usec] |
    (all(type == "number") and . == sort)' "$WL_LOG" | head -n1)" \
    "usb-disk: the attach's steps_usec are event <= planned <= started <= called <= answered"

wl_unplug 1-2 >/dev/null
wl_wait '"event":"detach".*"serial":"WA1".*"result":"ok"'
usbvm_h_assert_eq 0 "$(wl_owned "$dom")" "usb-disk: no stale device after unplug"
usbvm_h_assert_nomatch "$alias" "$(usbvm_h_qmp "$dom" '{"execute":"query-block"}')" \
    "usb-disk: QEMU no longer has the disk"

wl_stick a2 1-2 WA1 # same stick: same serial, new devnum, new disk name, new loop device
wl_plug "$WL_FILE" >/dev/null
wl_wait '"event":"attach".*"serial":"WA1".*"result":"ok"' 2
usbvm_h_assert_eq 1 "$(wl_owned "$dom")" "usb-disk: attached again after a replug"
# The replug's attach starts from what the first one left, less the disk libvirt confirmed
# removed: no read of the domain, and the same target name.
usbvm_h_assert_eq "read the domain
started from the view" \
    "$(jq -r "select(.msg? // \"\" | startswith(\"attach $alias -> \")) | .msg" "$WL_LOG" |
        sed -n 's/.*(\(.*\))$/\1/p')" \
    "usb-disk: the first attach read the domain, the replug's started from the view"
usbvm_h_assert_match "<target dev='sda' bus='usb'" "$(usbvm_h_live_xml "$dom")" \
    "usb-disk: the replugged stick has the first one's target name"
usbvm_h_assert_match "$WL_LOOP|by-id" "$(usbvm_h_live_xml "$dom")" \
    "usb-disk: the replugged device's new block device is the source"
wl_unplug 1-2 >/dev/null
wl_wait '"event":"detach".*"serial":"WA1".*"result":"ok"' 2
usbvm_h_assert_eq 0 "$(wl_owned "$dom")" "usb-disk: gone again after the second unplug"

# ---- a real unplug: the kernel tears the device down before the last uevents, so a late
# read (block "remove", usb "unbind") sees idVendor, idProduct and serial gone. The alias must
# survive that, or the disk stays in the domain (found by the nested real-USB run).
wl_stick t 1-6 WT1
wl_plug "$WL_FILE" >/dev/null
wl_wait '"event":"attach".*"serial":"WT1".*"result":"ok"'
usb=/sys/devices/pci0000:00/0000:00:14.0/usb1/1-6
for a in idVendor idProduct serial manufacturer product; do wl_cmd "attr $usb $a" >/dev/null; done
blk=$(find "$UMOCKDEV_DIR$usb" -type d -name sdt | sed "s|^$UMOCKDEV_DIR||")
wl_cmd "uevent $blk remove" >/dev/null
wl_cmd "uevent $usb unbind" >/dev/null
wl_unplug 1-6 >/dev/null
wl_wait '"event":"detach".*"serial":"WT1".*"result":"ok"'
usbvm_h_assert_eq 0 "$(wl_owned "$dom")" "torn-down device: detached by the alias it had"
usbvm_h_assert_eq 0 "$(wl_count '0000:0000')" "torn-down device: never logged with blank ids"

# ---- a disk that goes while its USB device stays (a card reader's medium, or a "remove" that
# arrives before sysfs caught up): the block "remove" alone detaches it.
wl_stick r 1-7 WR1
wl_plug "$WL_FILE" >/dev/null
wl_wait '"event":"attach".*"serial":"WR1".*"result":"ok"'
usb=/sys/devices/pci0000:00/0000:00:14.0/usb1/1-7
blk=$(find "$UMOCKDEV_DIR$usb" -type d -name sdr | sed "s|^$UMOCKDEV_DIR||")
wl_cmd "uevent $blk remove" >/dev/null # sysfs still shows it: the event decides
wl_wait '"event":"detach".*"serial":"WR1".*"msg":"its block device is gone".*|"event":"detach".*"serial":"WR1".*"result":"ok"'
wl_wait '"event":"detach".*"serial":"WR1".*"result":"ok"'
usbvm_h_assert_eq 0 "$(wl_owned "$dom")" "block device removed: its disk left the domain"
wl_unplug 1-7 >/dev/null

# ---- scsi: a virtio-scsi controller is added when the domain has none
# ---- scsi, as strongly as usb-disk: attached, QEMU has it, unplug detaches it with no stale
# device (virtio-scsi unplugs without the guest), replug attaches it again.
before=$(wl_owned "$dom")
wl_stick s 1-4 WS1
wl_plug "$WL_FILE" >/dev/null
wl_wait '"event":"attach".*"serial":"WS1".*"result":"ok"'
xml=$(usbvm_h_live_xml "$dom")
usbvm_h_assert_match "bus='scsi'" "$xml" "scsi: disk on the scsi bus"
usbvm_h_assert_match "model='virtio-scsi'" "$xml" "scsi: virtio-scsi controller present"
salias=$(jq -r 'select(.event=="attach" and .serial=="WS1") | .alias' "$WL_LOG" | head -n1)
usbvm_h_assert_match "$salias" "$(usbvm_h_qmp "$dom" '{"execute":"query-block"}')" \
    "scsi: QEMU's query-block shows the disk"
wl_unplug 1-4 >/dev/null
wl_wait '"event":"detach".*"serial":"WS1".*"result":"ok"'
usbvm_h_assert_eq "$before" "$(wl_owned "$dom")" "scsi: no stale device after unplug"
usbvm_h_assert_nomatch "$salias" "$(usbvm_h_qmp "$dom" '{"execute":"query-block"}')" \
    "scsi: QEMU no longer has the disk"
wl_stick s2 1-4 WS1
wl_plug "$WL_FILE" >/dev/null
wl_wait '"event":"attach".*"serial":"WS1".*"result":"ok"' 2
usbvm_h_assert_eq $((before + 1)) "$(wl_owned "$dom")" "scsi: attached again after a replug"
wl_unplug 1-4 >/dev/null
wl_wait '"event":"detach".*"serial":"WS1".*"result":"ok"' 2
usbvm_h_assert_eq "$before" "$(wl_owned "$dom")" "scsi: gone again after the second unplug"

# ---- virtio: attached; without a guest OS the disk is never released, so the detach is
# requested and stays pending, and watch never claims it happened.
wl_stick v 1-3 WV1
wl_plug "$WL_FILE" >/dev/null
wl_wait '"event":"attach".*"serial":"WV1".*"result":"ok"'
usbvm_h_assert_match "bus='virtio'" "$(usbvm_h_live_xml "$dom")" "virtio: disk on the virtio bus"
wl_unplug 1-3 >/dev/null
wl_wait '"event":"detach".*"serial":"WV1".*"result":"requested"'
usbvm_h_assert_eq 0 "$(wl_count '"event":"detach".*"serial":"WV1".*"result":"ok"')" \
    "virtio: detach not reported done while the guest holds the disk"

# ---- usb passthrough: this kernel has no USB, so libvirt refuses; watch says so, once.
wl_stick u 1-5 WU1
wl_plug "$WL_FILE" >/dev/null
wl_wait '"event":"attach".*"serial":"WU1".*"result":"failed"'
err=$(jq -r 'select(.event=="attach" and .serial=="WU1") | .error' "$WL_LOG" | head -n1)
usbvm_h_assert_match "attach 1-5 to .* as usb: " "$err" "usb: the failure names the device"
usbvm_h_log "usb passthrough refusal: $err"

wl_watch_stop
