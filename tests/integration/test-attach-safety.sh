# Invariants 1-3 through the CLI against a real libvirtd + QEMU: a mounted device is refused
# in every mode (naming the mount point), a device in one domain is refused for another
# (whoever attached it), a device without usbvm's alias is only detached with --force, a
# domain without a USB controller is refused with a way out, and unknown names exit 3.
set -u
source "$USBVM_SRCDIR/tests/harness/libvirt.sh"
usbvm_h_init
usbvm_h_require mkfs.ext4 mount umount
usbvm_h_libvirtd_start

a=$(usbvm_h_domain_create safe-a)
usbvm_h_domain_track "$a"
b=$(usbvm_h_domain_create safe-b)
usbvm_h_domain_track "$b"
nousb=$(usbvm_h_domain_create safe-nousb --no-usb)
usbvm_h_domain_track "$nousb"

loop=$(usbvm_h_loop_create 32M)
usbvm_h_loop_track "$loop"
FX=$(usbvm_h_fixture_usb_stick --port 1-2 --devnum 4 --loop "$loop" --serial SAFE0001)
uv() { umockdev-run -d "$FX" -- "$USBVM" "$@"; }

# ---- invariant 2: one domain at a time, whoever attached the first --------------------------
usbvm_h_run out uv attach "$a" 1-2 --mode usb-disk --json
usbvm_h_assert_eq 0 "$out_rc" "attach to the first domain ($out_err)"
for mode in usb-disk virtio scsi usb; do
    usbvm_h_run out uv attach "$b" 1-2 --mode "$mode" --json
    usbvm_h_assert_eq 4 "$out_rc" "$mode: attach to a second domain is refused (exit 4)"
    usbvm_h_assert_eq true "$(usbvm_h_json .failed "$out")" "$mode: failed=true"
    usbvm_h_assert_match "attached to domain '$a'" "$(usbvm_h_json .msg "$out")" \
        "$mode: the refusal names the other domain"
done
usbvm_h_assert_nomatch 'ua-usbvm-' "$(usbvm_h_live_xml "$b")" "the second domain got nothing"

# Same domain, other mode: refused, says how.
usbvm_h_run out uv attach "$a" 1-2 --mode virtio --json
usbvm_h_assert_eq 4 "$out_rc" "attach in another mode to the same domain is refused"
usbvm_h_assert_match 'already attached there as usb-disk' "$(usbvm_h_json .msg "$out")" \
    "the refusal names the current mode"

# detach --check predicts, changes nothing; detach --all finds the domain.
usbvm_h_run out uv detach --all 1-2 --check --json
usbvm_h_assert_eq 0 "$out_rc" "detach --all --check exits 0"
usbvm_h_assert_eq true "$(usbvm_h_json .changed "$out")" "detach --check predicts a change"
usbvm_h_assert_match 'ua-usbvm-' "$(usbvm_h_live_xml "$a")" "detach --check changed nothing"
usbvm_h_run out uv detach --all 1-2 --json
usbvm_h_assert_eq 0 "$out_rc" "detach --all exits 0 ($out_err)"
usbvm_h_assert_eq "$a" "$(usbvm_h_json .domain "$out")" "detach --all found the domain"
usbvm_h_assert_nomatch 'ua-usbvm-' "$(usbvm_h_live_xml "$a")" "detach --all removed it"
usbvm_h_run out uv detach --all 1-2 --json
usbvm_h_assert_eq false "$(usbvm_h_json .changed "$out")" "detach --all of nothing: unchanged"

# Attached by someone else (plain virsh, no usbvm alias): refused, named.
cat >"$USBVM_H_TMP/foreign.xml" <<EOF
<disk type='block' device='disk'><source dev='$loop'/><target dev='sdq' bus='usb'/></disk>
EOF
virsh -q -c "$USBVM_H_URI" attach-device "$b" "$USBVM_H_TMP/foreign.xml" --live >/dev/null ||
    usbvm_h_fail "virsh attach-device failed"
usbvm_h_run out uv attach "$a" 1-2 --mode usb-disk --json
usbvm_h_assert_eq 4 "$out_rc" "a device someone else attached is refused"
usbvm_h_assert_match "attached to domain '$b' \\(not by usbvm\\)" "$(usbvm_h_json .msg "$out")" \
    "the refusal names the domain and says not by usbvm"

# ---- invariant 3: no alias, no detach unless --force ----------------------------------------
usbvm_h_run out uv detach "$b" 1-2 --json
usbvm_h_assert_eq 4 "$out_rc" "detach of a foreign device without --force is refused"
usbvm_h_assert_match 'not attached by usbvm.*--force' "$(usbvm_h_json .msg "$out")" \
    "the refusal says how to insist"
usbvm_h_assert_match "$loop" "$(usbvm_h_live_xml "$b")" "the foreign device is still there"
usbvm_h_run out uv detach "$b" 1-2 --force --json
usbvm_h_assert_eq 0 "$out_rc" "detach --force of a named foreign device ($out_err)"
usbvm_h_assert_eq detached "$(usbvm_h_json .state "$out")" "--force: detached"
usbvm_h_assert_nomatch "$loop" "$(usbvm_h_live_xml "$b")" "--force: gone from the live XML"

# ---- invariant 1: nothing the host uses, in every mode ---------------------------------------
mkfs.ext4 -q -F "$loop" >/dev/null 2>&1 || usbvm_h_fail "mkfs.ext4 failed"
mnt="$USBVM_H_TMP/mnt point"
mkdir -p "$mnt"
mount "$loop" "$mnt" || usbvm_h_fail "mount failed"
usbvm_h_mount_track "$mnt"
for mode in usb-disk virtio scsi usb; do
    usbvm_h_run out uv attach "$a" 1-2 --mode "$mode" --json
    usbvm_h_assert_eq 4 "$out_rc" "$mode: a mounted device is refused (exit 4)"
    msg=$(usbvm_h_json .msg "$out")
    usbvm_h_assert_match "cannot attach 1-2 to '$a'" "$msg" "$mode: the message says what"
    usbvm_h_assert_match "mounted on .*mnt.*unmount it first" "$msg" \
        "$mode: the message names the mount point and what to do"
done
usbvm_h_run out uv attach "$a" 1-2 --mode virtio
usbvm_h_assert_match '^usbvm: cannot attach 1-2 .* is mounted on' "$out_err" \
    "text mode: one sentence on stderr"
usbvm_h_assert_eq "" "$out" "text mode: nothing on stdout on failure"
usbvm_h_assert_nomatch 'ua-usbvm-' "$(usbvm_h_live_xml "$a")" "nothing reached the domain"
umount "$mnt" || usbvm_h_fail "umount failed"

# ---- no USB controller -----------------------------------------------------------------------
for mode in usb-disk usb; do
    usbvm_h_run out uv attach "$nousb" 1-2 --mode "$mode" --json
    usbvm_h_assert_eq 1 "$out_rc" "$mode: a domain without USB controller is refused"
    usbvm_h_assert_match "no USB controller; add <controller type='usb' model='qemu-xhci'/>" \
        "$(usbvm_h_json .msg "$out")" "$mode: the message says how to add one"
done

# ---- names -----------------------------------------------------------------------------------
usbvm_h_run out uv attach usbvm-test-no-such-domain 1-2 --mode usb-disk --json
usbvm_h_assert_eq 3 "$out_rc" "an unknown domain exits 3"
usbvm_h_run out uv attach "$a" 9-9 --json
usbvm_h_assert_eq 3 "$out_rc" "an unknown device exits 3"
uuid=$(virsh -q -c "$USBVM_H_URI" domuuid "$a")
usbvm_h_run out uv attach "$uuid" 1-2 --mode usb-disk --json
usbvm_h_assert_eq 0 "$out_rc" "attach by domain UUID ($out_err)"
usbvm_h_assert_eq "$a" "$(usbvm_h_json .domain "$out")" "the answer names the domain"
usbvm_h_run out uv detach "$uuid" 1-2 --json
usbvm_h_assert_eq detached "$(usbvm_h_json .state "$out")" "detach by domain UUID"

# A stopped domain: attach says it is not running; detach has nothing to do.
virsh -q -c "$USBVM_H_URI" destroy "$b" >/dev/null
usbvm_h_run out uv attach "$b" 1-2 --mode usb-disk --json
usbvm_h_assert_eq 1 "$out_rc" "attach to a stopped domain fails"
usbvm_h_assert_match 'not running.*--config' "$(usbvm_h_json .msg "$out")" \
    "the message says it is not running and what to do"
usbvm_h_run out uv attach "$b" 1-2 --mode usb-disk --config --json
usbvm_h_assert_eq 4 "$out_rc" "disk mode --config without a by-id link is refused"
usbvm_h_assert_match 'no /dev/disk/by-id link' "$(usbvm_h_json .msg "$out")" \
    "the refusal explains the by-id link"
