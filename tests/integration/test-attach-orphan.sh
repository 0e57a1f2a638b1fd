#!/bin/bash
# What an attach that libvirtd did not finish leaves behind, staged exactly: a stick attached
# (usb-disk), then libvirtd stopped and its status file put back as it was before the attach,
# as when libvirtd dies after QEMU's device_add but before it writes the attach down. QEMU
# keeps the device (usbvm's alias) and its block nodes, the restarted libvirtd lists none of
# it, and libvirt refuses every later attach of the disk until the domain restarts. usbvm
# attach and watch say exactly that - which device and nodes, and the restart that frees them
# - instead of libvirt's bare refusal; after the restart the stick attaches.
# shellcheck disable=SC2154 # usbvm_h_run sets NAME, NAME_rc and NAME_err
set -u
source "$USBVM_SRCDIR/tests/harness/libvirt.sh"
usbvm_h_init
usbvm_h_libvirtd_start
[ "$USBVM_H_STARTED_LIBVIRTD" = 1 ] ||
    usbvm_h_fail "this test restarts libvirtd, so it needs one the harness started: stop the running libvirtd first"

loop=$(usbvm_h_loop_create 64M)
usbvm_h_loop_track "$loop"
byid="usb-USBVM_Test_Stick_ORPH0001_$$-0:0" # /dev/disk/by-id is the host's: named per run
usbvm_h_by_id_link "$byid" "$loop"
FX=$(usbvm_h_fixture_usb_stick --port 1-2 --devnum 4 --loop "$loop" --serial ORPH0001 \
    --by-id "$byid")
uv() { umockdev-run -d "$FX" -- "$USBVM" "$@"; }
devices() { usbvm_h_qmp "$1" '{"execute":"qom-list","arguments":{"path":"/machine/peripheral"}}'; }

dom=$(usbvm_h_domain_create orphan)
usbvm_h_domain_track "$dom"
status=/run/libvirt/qemu/$dom.xml
cp "$status" "$USBVM_H_TMP/status-before.xml"
usbvm_h_run out uv attach "$dom" 1-2 --mode usb-disk --json
usbvm_h_assert_eq 0 "$out_rc" "the stick attaches ($out_err)"
alias=$(usbvm_h_json .alias "$out")

# libvirtd forgets the attach; QEMU keeps it.
usbvm_h_libvirtd_stop
cp "$USBVM_H_TMP/status-before.xml" "$status"
usbvm_h_libvirtd_start
usbvm_h_assert_nomatch "$alias" "$(usbvm_h_live_xml "$dom")" "libvirt no longer lists the stick"
usbvm_h_assert_match "\"name\":\"$alias\"" "$(devices "$dom")" "QEMU still has the device"
usbvm_h_run plain virsh -c "$USBVM_H_URI" attach-disk "$dom" "/dev/disk/by-id/$byid" vdz \
    --targetbus usb --live
usbvm_h_assert_eq 1 "$plain_rc" "libvirt alone cannot attach the disk again ($plain_err)"

want="cannot attach 1-2 to '$dom': QEMU still holds the device $alias and block nodes libvirt-1-format, libvirt-1-storage, left by an attach that libvirtd did not finish (libvirt lists none of it), and libvirt will not attach /dev/disk/by-id/$byid again until the domain restarts; run 'virsh destroy $dom' and 'virsh start $dom' when the guest can stop"
usbvm_h_run out uv attach "$dom" 1-2 --mode usb-disk --json
usbvm_h_assert_eq 1 "$out_rc" "usbvm attach fails ($out)"
usbvm_h_assert_eq "$want" "$(usbvm_h_json .msg "$out")" \
    "usbvm attach names the leftovers and the restart that frees them"

rules=$USBVM_H_TMP/orphan.rules
echo "attach serial \"ORPH0001\" with-interface 08:*:* to $dom as usb-disk" >"$rules"
usbvm_h_run out umockdev-run -d "$FX" -- "$USBVM" watch --once --json --rules "$rules"
rec=$(jq -c 'select(.event=="attach")' <<<"$out")
usbvm_h_assert_eq failed "$(jq -r .result <<<"$rec")" "watch's attach fails ($out)"
usbvm_h_assert_eq "$want" "$(jq -r .error <<<"$rec")" "watch's record says the same"

# The restart frees them.
virsh -q -c "$USBVM_H_URI" destroy "$dom" >/dev/null
virsh -q -c "$USBVM_H_URI" start "$dom" >/dev/null
usbvm_h_run out uv attach "$dom" 1-2 --mode usb-disk --json
usbvm_h_assert_eq 0 "$out_rc" "after the domain's restart the stick attaches ($out_err $out)"
usbvm_h_assert_match "$alias" "$(usbvm_h_live_xml "$dom")" "the stick is in the live XML"
