# Sticks that copy another's strings: usbvm must never act on the one because of the other.
# Every disk is a real loop device.
#  1. A clone with the genuine stick's vendor, model and serial (and another product id, so
#     another identity) takes over udev's by-id link: the genuine stick's disk is still the
#     one attached.
#  2. A clone with the same vendor:product:serial (one identity, one alias): usbvm tells the
#     two apart by port, never detaches the one because of the other, and says why it does
#     not act on them (list, show, rules test, attach, detach).
set -u
source "$USBVM_SRCDIR/tests/harness/libvirt.sh"
usbvm_h_init
usbvm_h_libvirtd_start

loop_a=$(usbvm_h_loop_create 16M)
usbvm_h_loop_track "$loop_a"
loop_b=$(usbvm_h_loop_create 16M)
usbvm_h_loop_track "$loop_b"
byid="usb-USBVM_Clone_Stick_CLONE0001_$$-0:0" # /dev/disk/by-id is the host's: named per run
# udev gives a contested link to the device that came last: the clone.
usbvm_h_by_id_link "$byid" "$loop_b"
stick() { # PORT DEVNUM LOOP DISK PID OUT
    usbvm_h_fixture_usb_stick --port "$1" --devnum "$2" --loop "$3" --disk "$4" --out "$6" \
        --vid 0781 --pid "$5" --serial CLONE0001 --manufacturer USBVM --product "Clone Stick" \
        --by-id "$byid" >/dev/null
    # A SCSI host number of its own (the harness picks one at random), as two sticks in one
    # testbed must not share /sys/bus/scsi/devices/H:0:0:0.
    local old new=$((30 + $2))
    old=$(grep -o -m1 '/host[0-9]*/' "$6" | tr -dc 0-9)
    sed -i -e "s#/host$old/#/host$new/#g" -e "s#/host$old\$#/host$new#" \
        -e "s#/target$old:0:0#/target$new:0:0#g" -e "s#/$old:0:0:0#/$new:0:0:0#g" "$6"
}
# two FIXTURE A B : A and B in one testbed, one root hub (B without its first record).
two() {
    cat "$2" >"$1"
    awk 'BEGIN { RS = ""; ORS = "\n\n" } NR > 1' "$3" >>"$1"
}
stick 1-2 4 "$loop_a" sdx 5567 "$USBVM_H_TMP/a.umockdev"
stick 1-3 5 "$loop_b" sdy 5575 "$USBVM_H_TMP/b.umockdev"
FX=$USBVM_H_TMP/clones.umockdev
two "$FX" "$USBVM_H_TMP/a.umockdev" "$USBVM_H_TMP/b.umockdev"
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

# ---- 2. one identity, two devices ------------------------------------------------------------
stick 1-4 6 "$loop_b" sdz 5567 "$USBVM_H_TMP/c.umockdev"
FX2=$USBVM_H_TMP/twins.umockdev
two "$FX2" "$USBVM_H_TMP/a.umockdev" "$USBVM_H_TMP/c.umockdev"
uv1() { umockdev-run -d "$USBVM_H_TMP/a.umockdev" -- "$USBVM" "$@"; }
uv2() { umockdev-run -d "$FX2" -- "$USBVM" "$@"; }
rules=$USBVM_H_TMP/rules
printf 'attach id 0781:5567 serial "CLONE0001" to %s as usb-disk\n' "$dom" >"$rules"

# The genuine stick, alone, is attached; then the clone arrives.
usbvm_h_run out uv1 attach "$dom" 1-2 --mode usb-disk --json
usbvm_h_assert_eq 0 "$out_rc" "the genuine stick alone attaches ($out_err)"
usbvm_h_run out uv1 rules test 1-2 --rules "$rules" --json
usbvm_h_assert_eq attach "$(usbvm_h_json .decision "$out")" "alone, the rule attaches it"

usbvm_h_run out uv2 list --json
usbvm_h_assert_eq '["1-4"]' "$(jq -c '.devices[] | select(.port == "1-2") | .same_identity' <<<"$out")" \
    "list --json: 1-2 shares its identity with 1-4"
usbvm_h_assert_eq '["1-2"]' "$(jq -c '.devices[] | select(.port == "1-4") | .same_identity' <<<"$out")" \
    "list --json: 1-4 shares its identity with 1-2"
usbvm_h_run out uv2 list
usbvm_h_assert_match "1-2: its identity 0781:5567:CLONE0001 .* is also reported by 1-4" "$out_err" \
    "list warns about the shared identity"
usbvm_h_run out uv2 show 1-4
usbvm_h_assert_match "Ambiguous: its identity 0781:5567:CLONE0001 .*also reported by 1-2.*does not act on either by policy" \
    "$out" "show says why usbvm does not act on it"
usbvm_h_run out uv2 rules test 1-4 --rules "$rules" --json
usbvm_h_assert_eq ambiguous "$(usbvm_h_json .decision "$out")" "rules test: decision ambiguous"
usbvm_h_assert_match "also reported by 1-2" "$(usbvm_h_json .ambiguity "$out")" \
    "rules test: the reason names the other port"
usbvm_h_run out uv2 rules test 1-4 --rules "$rules"
usbvm_h_assert_match "Decision: +stays where it is: .* would attach it to $dom as usb-disk, but its identity" \
    "$out" "rules test (text) says the rule would attach it, and why it does not"

# The clone is refused, and does not take the genuine stick's attachment with it.
usbvm_h_run out uv2 attach "$dom" 1-4 --mode usb-disk
usbvm_h_assert_eq 4 "$out_rc" "attach of the clone is refused"
usbvm_h_assert_match "cannot attach 1-4 to '$dom': its identity .* also reported by 1-2" "$out_err" \
    "attach says why"
usbvm_h_run out uv2 detach "$dom" 1-4
usbvm_h_assert_eq 4 "$out_rc" "detach by the clone's port is refused ($out_err)"
usbvm_h_assert_match "usbvm detach $dom $alias" "$out_err" "detach says how to name the attachment"
usbvm_h_assert_match "$alias" "$(usbvm_h_live_xml "$dom")" "the genuine stick is still attached"
usbvm_h_run out uv2 detach "$dom" "$alias" --json
usbvm_h_assert_eq detached "$(usbvm_h_json .state "$out")" "detach by the alias is the admin's call"
