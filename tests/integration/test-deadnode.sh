# The dead-node cleanup against a real QEMU TCG domain and its private /dev (libvirt's qemu.conf
# "namespaces", on by default): a disk attached by its by-id link, the link then gone from the
# host (as when a stick is pulled); after the detach, the copy libvirt made in the domain's /dev
# (link and node) is removed, the host's node is untouched, and the answer says so. The detach
# runs with exactly the capabilities the shipped unit (examples/usbvm.service.in) grants, read
# from the unit itself.
set -u
source "$USBVM_SRCDIR/tests/harness/libvirt.sh"
usbvm_h_init
usbvm_h_libvirtd_start
usbvm_h_require setpriv jq

unit=$USBVM_SRCDIR/examples/usbvm.service.in
caps=$(sed -n 's/^CapabilityBoundingSet=//p' "$unit")
[ -n "$caps" ] || usbvm_h_fail "the unit grants no capability: the cleanup cannot look into QEMU"
bounding=-all
for c in $caps; do
    c=${c#CAP_}
    bounding+=",+${c,,}"
done
usbvm_h_log "the unit's capabilities: $caps (setpriv --bounding-set=$bounding)"
# as_unit CMD... : as root with only the unit's capabilities and no new privileges.
as_unit() { setpriv --no-new-privs --inh-caps=-all --bounding-set="$bounding" -- "$@"; }

loop=$(usbvm_h_loop_create 16M)
usbvm_h_loop_track "$loop"
byid="usb-USBVM_DeadNode_DN$$-0:0"
usbvm_h_by_id_link "$byid" "$loop"
FX=$(usbvm_h_fixture_usb_stick --port 1-2 --devnum 4 --loop "$loop" --serial "DN$$" --by-id "$byid")
dom=$(usbvm_h_domain_create deadnode)
usbvm_h_domain_track "$dom"

usbvm_h_run out umockdev-run -d "$FX" -- "$USBVM" -c "$USBVM_H_URI" attach "$dom" 1-2 \
    --mode usb-disk --json
usbvm_h_assert_eq 0 "$out_rc" "attach by the by-id link ($out_err)"
alias=$(usbvm_h_json .alias "$out")

pid=$(cat "/run/libvirt/qemu/$dom.pid")
qroot=/proc/$pid/root
qdev=$qroot/dev
[ "$(stat -Lc %i /proc/1/ns/mnt)" != "$(stat -Lc %i "/proc/$pid/ns/mnt")" ] ||
    usbvm_h_fail "the domain's QEMU has no private mount namespace (qemu.conf namespaces)"
[ -L "$qdev/disk/by-id/$byid" ] || usbvm_h_fail "libvirt made no copy of the link in the domain's /dev"
node=$(readlink "$qdev/disk/by-id/$byid")
[[ $node == /* ]] || node=$(realpath -m "/dev/disk/by-id/$node")
[ -b "$qroot$node" ] || usbvm_h_fail "libvirt made no copy of $node in the domain's /dev"
usbvm_h_ok "the domain's private /dev holds the link and $node"

# The stick is pulled: its host path is gone.
rm "/dev/disk/by-id/$byid"
usbvm_h_run out as_unit "$USBVM" -c "$USBVM_H_URI" detach "$dom" "$alias" --json
usbvm_h_assert_eq 0 "$out_rc" "detach under the unit's capabilities ($out_err $out)"
usbvm_h_assert_eq detached "$(usbvm_h_json .state "$out")" "detached"
usbvm_h_assert_match "removed the dead copy of /dev/disk/by-id/$byid \\($(lsblk -dno MAJ:MIN "$loop" | tr -d ' ')\\)" \
    "$(usbvm_h_json '.notes[0]' "$out")" "the answer says what was removed"
[ ! -e "$qdev/disk/by-id/$byid" ] && [ ! -L "$qdev/disk/by-id/$byid" ] ||
    usbvm_h_fail "the link is still in the domain's /dev"
[ ! -e "$qroot$node" ] || usbvm_h_fail "$node is still in the domain's /dev"
usbvm_h_ok "the copy is gone from the domain's /dev"
[ -b "$loop" ] || usbvm_h_fail "the host's $loop was touched"
usbvm_h_ok "the host's $loop is untouched"

# A disk still on the host is libvirt's to restore: nothing is done, nothing said.
usbvm_h_by_id_link "$byid.2" "$loop"
FX2=$(usbvm_h_fixture_usb_stick --port 1-2 --devnum 4 --loop "$loop" --serial "DN$$" \
    --by-id "$byid.2")
usbvm_h_run out umockdev-run -d "$FX2" -- "$USBVM" -c "$USBVM_H_URI" attach "$dom" 1-2 \
    --mode usb-disk --json
usbvm_h_assert_eq 0 "$out_rc" "attach again ($out_err)"
usbvm_h_run out as_unit "$USBVM" -c "$USBVM_H_URI" detach "$dom" "$alias" --json
# (The note that the guest's mounts are unknown - this domain has no guest agent - is issue
# 13's, not the cleanup's.)
usbvm_h_assert_eq '[]' "$(jq -c '[.notes[] | select(startswith("the guest") | not)]' <<<"$out")" \
    "a disk still on the host: no cleanup, no note"
[ -b "$loop" ] || usbvm_h_fail "the host's $loop was touched"
