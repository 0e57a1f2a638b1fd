# The device XML usbvm hands to libvirt: golden files for every mode (usb hostdev with the
# address in decimal, startupPolicy with --persistent), libvirt's schema (virt-xml-validate)
# for each and for hostile descriptor strings, target choice from the live XML, --print-xml
# changing nothing, and libvirt's refusal of a USB hostdev it cannot find, reported as one
# sentence.
set -u
source "$USBVM_SRCDIR/tests/harness/libvirt.sh"
usbvm_h_init
usbvm_h_require virt-xml-validate xmllint
usbvm_h_libvirtd_start
golden="$USBVM_SRCDIR/tests/golden"

loop=$(usbvm_h_loop_create 16M)
usbvm_h_loop_track "$loop"
# Bus 3, device 10: udev writes "003"/"010", which libvirt would read as octal 8.
FX=$(usbvm_h_fixture_usb_stick --port 3-1 --devnum 10 --vid 0781 --pid 5567 --serial GOLD0001 \
    --loop "$loop")
uv() { umockdev-run -d "$FX" -- "$USBVM" "$@"; }

check_golden() { # NAME ARGS...
    local name=$1
    shift
    usbvm_h_run out uv attach usbvm-test-no-such-domain 3-1 --print-xml "$@"
    usbvm_h_assert_eq 0 "$out_rc" "$name: --print-xml exits 0 ($out_err)"
    printf '%s\n' "$out" | sed "s|$loop|@LOOP@|g" >"$USBVM_H_TMP/$name.xml"
    diff -u "$golden/$name.xml" "$USBVM_H_TMP/$name.xml" >&2 ||
        usbvm_h_fail "$name: differs from tests/golden/$name.xml"
    usbvm_h_ok "$name: matches tests/golden/$name.xml"
    printf '%s\n' "$out" >"$USBVM_H_TMP/$name.real.xml"
    usbvm_h_validate_device "$USBVM_H_TMP/$name.real.xml" >/dev/null 2>"$USBVM_H_TMP/v.err" ||
        usbvm_h_fail "$name: virt-xml-validate: $(cat "$USBVM_H_TMP/v.err")"
    usbvm_h_ok "$name: valid against libvirt's domain schema"
}
check_golden hostdev-usb --mode usb
check_golden hostdev-usb-persistent --mode usb --persistent
check_golden disk-virtio --mode virtio
check_golden disk-virtio-readonly --mode virtio --readonly --cache writeback
check_golden disk-scsi --mode scsi
check_golden disk-usb --mode usb-disk

usbvm_h_run out uv attach usbvm-test-no-such-domain 3-1 --print-xml --mode usb --json
usbvm_h_assert_match '<address bus="3" device="10"/>' "$(usbvm_h_json .xml "$out")" \
    "--print-xml --json carries the XML; the address is decimal"

# ---- target choice from the live XML; --print-xml changes nothing ---------------------------
loop2=$(usbvm_h_loop_create 16M)
usbvm_h_loop_track "$loop2"
dom=$(usbvm_h_domain_create xml --extra "<disk type='block' device='disk'><source dev='$loop2'/><target dev='vda' bus='virtio'/></disk>")
usbvm_h_domain_track "$dom"
before=$(usbvm_h_live_xml "$dom")
usbvm_h_run out uv attach "$dom" 3-1 --mode virtio --print-xml
usbvm_h_assert_match '<target dev="vdb" bus="virtio"/>' "$out" "the next free vdX is vdb"
usbvm_h_assert_eq "$before" "$(usbvm_h_live_xml "$dom")" "--print-xml changed nothing"

# ---- usb mode against a libvirtd that sees no such USB device -------------------------------
usbvm_h_run out uv attach "$dom" 3-1 --mode usb
usbvm_h_assert_eq 6 "$out_rc" "usb mode: libvirt's refusal exits 6"
usbvm_h_assert_match "^usbvm: libvirt refused to attach 3-1 to '$dom' as usb: .+" "$out_err" \
    "usb mode: one sentence that says who refused what"
usbvm_h_assert_eq 1 "$(printf '%s\n' "$out_err" | wc -l)" "usb mode: exactly one line"
usbvm_h_log "libvirt said: $out_err"
usbvm_h_assert_nomatch 'ua-usbvm-' "$(usbvm_h_live_xml "$dom")" "usb mode: nothing attached"

# ---- hostile strings -------------------------------------------------------------------------
loop3=$(usbvm_h_loop_create 16M)
usbvm_h_loop_track "$loop3"
evil_serial=$'A\'B"C<D>E&F;$(id)`id`\\G\xc3\xa9H\xff\xfe I  ../../x]]>'
HX=$(usbvm_h_fixture_usb_stick --port 1-7 --devnum 9 --loop "$loop3" --serial "$evil_serial" \
    --manufacturer $'ACME "<b>" &amp;\x1b[31m' --product $'Stick\xff<\x2f>')
hv() { umockdev-run -d "$HX" -- "$USBVM" "$@"; }
for mode in virtio scsi usb-disk usb; do
    usbvm_h_run out hv attach "$dom" 1-7 --mode "$mode" --print-xml
    usbvm_h_assert_eq 0 "$out_rc" "hostile/$mode: --print-xml ($out_err)"
    printf '%s\n' "$out" >"$USBVM_H_TMP/hostile-$mode.xml"
    usbvm_h_validate_device "$USBVM_H_TMP/hostile-$mode.xml" >/dev/null 2>"$USBVM_H_TMP/v.err" ||
        usbvm_h_fail "hostile/$mode: virt-xml-validate: $(cat "$USBVM_H_TMP/v.err")"
    usbvm_h_ok "hostile/$mode: the XML is valid against libvirt's schema"
done
serial=$(xmllint --xpath 'string(/disk/serial)' "$USBVM_H_TMP/hostile-virtio.xml")
usbvm_h_assert_match '^[A-Za-z0-9_.+ -]{1,20}$' "$serial" "hostile: the serial is sanitised ($serial)"

usbvm_h_run out hv attach "$dom" 1-7 --mode usb-disk --json
usbvm_h_assert_eq 0 "$out_rc" "hostile: attaches ($out_err)"
usbvm_h_live_xml "$dom" >"$USBVM_H_TMP/live.xml"
virt-xml-validate "$USBVM_H_TMP/live.xml" domain >/dev/null 2>&1 ||
    usbvm_h_fail "hostile: the live domain XML no longer validates"
usbvm_h_ok "hostile: the live domain XML still validates"
usbvm_h_assert_eq running "$(virsh -c "$USBVM_H_URI" domstate "$dom" | head -n1)" \
    "hostile: the domain still runs"
usbvm_h_run out hv status --json
usbvm_h_assert_eq 0 "$out_rc" "hostile: status still works"
usbvm_h_assert_eq true "$(jq -e . >/dev/null <<<"$out" && echo true)" "hostile: status is valid JSON"
usbvm_h_run out hv detach "$dom" 1-7 --json
usbvm_h_assert_eq detached "$(usbvm_h_json .state "$out")" "hostile: detaches"

# The recorded hostile device of the lab fixture (1-6), its disk pointed at a loop device.
usbvm_h_fixture_retarget "$USBVM_SRCDIR/tests/fixtures/lab.umockdev" "$USBVM_H_TMP/lab.umockdev" \
    sdf "$loop3"
usbvm_h_run out umockdev-run -d "$USBVM_H_TMP/lab.umockdev" -- "$USBVM" attach "$dom" 1-6 \
    --mode usb-disk --json
usbvm_h_assert_eq 0 "$out_rc" "lab 1-6 (hostile strings): attaches ($out_err)"
usbvm_h_run out umockdev-run -d "$USBVM_H_TMP/lab.umockdev" -- "$USBVM" detach "$dom" 1-6 --json
usbvm_h_assert_eq detached "$(usbvm_h_json .state "$out")" "lab 1-6: detaches"
