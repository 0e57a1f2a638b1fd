# Two sticks that report the same vendor, product, SCSI vendor/model and serial (a clone of
# a genuine stick): usbvm must never act on the one because of the other. Both disks are real
# loop devices; udev's by-id link (one name for both) leads to the clone's disk.
set -u
source "$USBVM_SRCDIR/tests/harness/libvirt.sh"
usbvm_h_init
usbvm_h_libvirtd_start

loop_a=$(usbvm_h_loop_create 16M)
usbvm_h_loop_track "$loop_a"
loop_b=$(usbvm_h_loop_create 16M)
usbvm_h_loop_track "$loop_b"
byid="usb-USBVM_Clone_Stick_CLONE0001-0:0"
# udev gives a contested link to the device that came last: the clone.
usbvm_h_by_id_link "$byid" "$loop_b"
stick() { # PORT DEVNUM LOOP DISK OUT
    usbvm_h_fixture_usb_stick --port "$1" --devnum "$2" --loop "$3" --disk "$4" --out "$5" \
        --vid 0781 --pid 5567 --serial CLONE0001 --manufacturer USBVM --product "Clone Stick" \
        --by-id "$byid" >/dev/null
}
stick 1-2 4 "$loop_a" sdx "$USBVM_H_TMP/a.umockdev"
stick 1-3 5 "$loop_b" sdy "$USBVM_H_TMP/b.umockdev"
FX=$USBVM_H_TMP/clones.umockdev
# One root hub: the second fixture without its first record.
{
    cat "$USBVM_H_TMP/a.umockdev"
    awk 'BEGIN { RS = ""; ORS = "\n\n" } NR > 1' "$USBVM_H_TMP/b.umockdev"
} >"$FX"
uv() { umockdev-run -d "$FX" -- "$USBVM" "$@"; }
majmin() { lsblk -dno MAJ:MIN "$1" | tr -d ' '; }

dom=$(usbvm_h_domain_create clone)
usbvm_h_domain_track "$dom"

# ---- the disk source is the device's own disk, never a link a clone holds ------------------
for mode in virtio scsi usb-disk; do
    usbvm_h_run out uv attach "$dom" 1-2 --mode "$mode" --print-xml
    usbvm_h_assert_eq 0 "$out_rc" "$mode: --print-xml for the genuine stick ($out_err)"
    src=$(xmllint --xpath 'string(/disk/source/@dev)' - <<<"$out")
    usbvm_h_assert_eq "$loop_a" "$src" "$mode: the source is 1-2's own disk, not the clone's link"
done

usbvm_h_run out uv attach "$dom" 1-2 --mode usb-disk --json
usbvm_h_assert_eq 0 "$out_rc" "live attach of the genuine stick ($out_err)"
alias=$(usbvm_h_json .alias "$out")
qb=$(usbvm_h_qmp "$dom" '{"execute":"query-named-block-nodes"}')
usbvm_h_assert_match "\"file\":\"$loop_a\"" "$qb" "QEMU opened 1-2's own disk"
usbvm_h_assert_nomatch "\"file\":\"(/dev/disk/by-id/$byid|$loop_b)\"" "$qb" \
    "QEMU did not open the clone's disk"
usbvm_h_run out uv detach "$dom" 1-2 --json
usbvm_h_assert_eq detached "$(usbvm_h_json .state "$out")" "the genuine stick detaches"

# A persistent definition would name the disk by the link at every start: refused while the
# link leads to another disk, saying which and what to do.
usbvm_h_run out uv attach "$dom" 1-2 --mode virtio --config
usbvm_h_assert_eq 4 "$out_rc" "--config with the link on the clone's disk is refused ($out_err)"
usbvm_h_assert_match "leads to another disk \\($(majmin "$loop_b")\\), not this one \\($(majmin "$loop_a")\\)" \
    "$out_err" "the refusal names both disks"
usbvm_h_assert_match 'unplug the other one, or attach this one with --live' "$out_err" \
    "the refusal says what to do"
usbvm_h_assert_nomatch "$byid" "$(virsh -c "$USBVM_H_URI" dumpxml --inactive "$dom")" \
    "the persistent definition is unchanged"
