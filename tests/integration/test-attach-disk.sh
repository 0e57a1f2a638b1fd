# usbvm attach/detach in the three disk modes against a real libvirtd + QEMU (TCG): the fake
# stick's disk is a real loop device. Verifies the live XML and QEMU itself (query-block,
# info usb), idempotency, --check, --readonly, status, and that a detach is reported done
# only when libvirt confirms it (virtio without a guest OS: pending, exit 5), and that a detach
# asked moments ago is not asked again.
set -u
source "$USBVM_SRCDIR/tests/harness/libvirt.sh"
usbvm_h_init
usbvm_h_libvirtd_start

loop=$(usbvm_h_loop_create 64M)
usbvm_h_loop_track "$loop"
byid="usb-USBVM_Test_Stick_DISK0001_$$-0:0" # /dev/disk/by-id is the host's: named per run
usbvm_h_by_id_link "$byid" "$loop"
FX=$(usbvm_h_fixture_usb_stick --port 1-2 --devnum 4 --loop "$loop" --serial DISK0001 \
    --by-id "$byid")
uv() { umockdev-run -d "$FX" -- "$USBVM" "$@"; }

# The alias usbvm derives from the identity, as "show" reports it.
usbvm_h_run out uv --json show 1-2
usbvm_h_assert_eq 0 "$out_rc" "show resolves the fixture stick ($out_err)"
alias=$(usbvm_h_json .device.alias "$out")
usbvm_h_assert_match '^ua-usbvm-[0-9a-f]{16}$' "$alias" "the stick has a usbvm alias"

for mode in usb-disk scsi virtio; do
    dom=$(usbvm_h_domain_create "${mode}")
    usbvm_h_domain_track "$dom"

    # --check predicts and does nothing.
    usbvm_h_run out uv attach "$dom" 1-2 --mode "$mode" --check --json
    usbvm_h_assert_eq 0 "$out_rc" "$mode: attach --check exits 0 ($out_err)"
    usbvm_h_assert_eq true "$(usbvm_h_json .changed "$out")" "$mode: --check predicts a change"
    usbvm_h_assert_nomatch "$alias" "$(usbvm_h_live_xml "$dom")" "$mode: --check changed nothing"

    t0=$(date +%s%N)
    usbvm_h_run out uv attach "$dom" 1-2 --mode "$mode" --json
    t1=$(date +%s%N)
    usbvm_h_assert_eq 0 "$out_rc" "$mode: attach exits 0 ($out_err $out)"
    usbvm_h_log "$mode: usbvm attach took $(((t1 - t0) / 1000000)) ms (CLI, under umockdev)"
    usbvm_h_assert_eq true "$(usbvm_h_json .changed "$out")" "$mode: attach changed"
    usbvm_h_assert_eq attached "$(usbvm_h_json .state "$out")" "$mode: state attached"
    usbvm_h_assert_eq false "$(usbvm_h_json .failed "$out")" "$mode: not failed"
    usbvm_h_assert_eq "$alias" "$(usbvm_h_json .alias "$out")" "$mode: answer names the alias"
    usbvm_h_assert_eq "$mode" "$(usbvm_h_json .mode "$out")" "$mode: answer names the mode"
    if [ "$mode" = scsi ]; then
        usbvm_h_assert_match 'virtio-scsi controller' "$(usbvm_h_json '.notes[0]' "$out")" \
            "scsi: says it added a virtio-scsi controller"
    fi

    xml=$(usbvm_h_live_xml "$dom")
    disk=$(xmllint --xpath "/domain/devices/disk[alias/@name='$alias']" - <<<"$xml")
    usbvm_h_assert_match "<source dev=\"/dev/disk/by-id/$byid\"" "$disk" \
        "$mode: live XML uses the by-id link"
    bus=$(case $mode in usb-disk) echo usb ;; scsi) echo scsi ;; *) echo virtio ;; esac)
    usbvm_h_assert_match "bus=\"$bus\"" "$disk" "$mode: live XML target bus $bus"
    usbvm_h_assert_match 'cache="none" io="native"' "$disk" "$mode: cache none, io native"
    usbvm_h_assert_match '<serial>DISK0001</serial>' "$disk" "$mode: serial"

    # QEMU itself has the block device open on the loop device.
    qb=$(usbvm_h_qmp "$dom" '{"execute":"query-block"}')
    usbvm_h_assert_match "\"file\":\"/dev/disk/by-id/$byid\"|\"file\":\"$loop\"" "$qb" \
        "$mode: QEMU query-block shows the loop-backed disk"
    if [ "$mode" = usb-disk ]; then
        usbvm_h_assert_match "ID: $alias" "$(usbvm_h_hmp "$dom" 'info usb')" \
            "usb-disk: QEMU 'info usb' lists the device"
    fi

    # Idempotent.
    usbvm_h_run out uv attach "$dom" 1-2 --mode "$mode" --json
    usbvm_h_assert_eq 0 "$out_rc" "$mode: second attach exits 0"
    usbvm_h_assert_eq false "$(usbvm_h_json .changed "$out")" "$mode: second attach changed=false"
    usbvm_h_assert_eq attached "$(usbvm_h_json .state "$out")" "$mode: second attach state"

    # list names the domain (its answer comes from a child process that asks libvirt).
    usbvm_h_run out uv list --json
    usbvm_h_assert_eq 0 "$out_rc" "$mode: list exits 0 ($out_err)"
    usbvm_h_assert_eq true "$(usbvm_h_json .libvirt.available "$out")" "$mode: list reached libvirt"
    usbvm_h_assert_eq "[\"$dom\"]" \
        "$(jq -c '.devices[] | select(.port == "1-2") | .domains' <<<"$out")" \
        "$mode: list says which domain holds the stick"
    usbvm_h_assert_eq "" "$out_err" "$mode: list warns about nothing"

    # status lists it, present.
    usbvm_h_run out uv status --json
    usbvm_h_assert_eq 0 "$out_rc" "status exits 0 ($out_err)"
    st=$(jq -c --arg d "$dom" '.[] | select(.domain == $d)' <<<"$out")
    usbvm_h_assert_eq "$mode" "$(usbvm_h_json .mode "$st")" "$mode: status shows the mode"
    usbvm_h_assert_eq true "$(usbvm_h_json .present "$st")" "$mode: status shows it present"
    usbvm_h_assert_eq 1-2 "$(usbvm_h_json .device "$st")" "$mode: status names the device"

    if [ "$mode" = virtio ]; then
        # Asked at once and left: without a guest OS nothing answers, so it stays pending.
        usbvm_h_run out uv detach "$dom" 1-2 --timeout 0 --json
        usbvm_h_assert_eq 5 "$out_rc" "virtio: a first detach --timeout 0 exits 5 (pending)"
        usbvm_h_assert_nomatch 'not asked twice' "$out" "virtio: the first detach asks libvirt"
    fi
    t0=$(date +%s%N)
    usbvm_h_run out uv detach "$dom" 1-2 --timeout 3 --json
    t1=$(date +%s%N)
    usbvm_h_log "$mode: usbvm detach took $(((t1 - t0) / 1000000)) ms (rc $out_rc)"
    if [ "$mode" = virtio ]; then
        # No guest OS: the guest never acknowledges the unplug. Not success.
        usbvm_h_assert_eq 5 "$out_rc" "virtio: detach without a guest exits 5 (pending)"
        usbvm_h_assert_eq pending "$(usbvm_h_json .state "$out")" "virtio: state pending"
        usbvm_h_assert_eq true "$(usbvm_h_json .failed "$out")" "virtio: pending is not success"
        usbvm_h_assert_match 'has not released' "$(usbvm_h_json .msg "$out")" \
            "virtio: message says the guest has not released it"
        # Seconds after the first request, a second one is not sent: libvirt 9.0 crashes when
        # one reaches it after QEMU has removed the device (lib/hostlock.h). It is waited for.
        usbvm_h_assert_match 'asked libvirt to detach it [0-9]+ ms ago; not asked twice' \
            "$(usbvm_h_json '.notes | join(";")' "$out")" "virtio: a second detach is not asked twice"
        usbvm_h_assert_match "$alias" "$(usbvm_h_live_xml "$dom")" \
            "virtio: still in the live XML"
        # --timeout 0 returns at once, still pending.
        usbvm_h_run out uv detach "$dom" 1-2 --timeout 0 --json
        usbvm_h_assert_eq 5 "$out_rc" "virtio: detach --timeout 0 exits 5"
        usbvm_h_assert_eq pending "$(usbvm_h_json .state "$out")" "virtio: --timeout 0 pending"
        # Text mode says the same on stderr.
        usbvm_h_run out uv detach "$dom" 1-2 --timeout 0
        usbvm_h_assert_match '^usbvm: detach of .* is pending|requested and not confirmed' \
            "$out_err" "virtio: text mode reports pending on stderr"
    else
        usbvm_h_assert_eq 0 "$out_rc" "$mode: detach exits 0 ($out_err $out)"
        usbvm_h_assert_eq detached "$(usbvm_h_json .state "$out")" "$mode: state detached"
        usbvm_h_assert_eq true "$(usbvm_h_json .changed "$out")" "$mode: detach changed"
        usbvm_h_assert_nomatch "$alias" "$(usbvm_h_live_xml "$dom")" "$mode: gone from live XML"
        usbvm_h_assert_nomatch "$byid|$loop" "$(usbvm_h_qmp "$dom" '{"execute":"query-block"}')" \
            "$mode: gone from QEMU"
        # Detaching what is not attached is fine and changes nothing.
        usbvm_h_run out uv detach "$dom" 1-2 --json
        usbvm_h_assert_eq 0 "$out_rc" "$mode: second detach exits 0"
        usbvm_h_assert_eq false "$(usbvm_h_json .changed "$out")" "$mode: second detach unchanged"
        usbvm_h_assert_eq detached "$(usbvm_h_json .state "$out")" "$mode: second detach state"

        # --readonly reaches the XML and QEMU.
        usbvm_h_run out uv attach "$dom" 1-2 --mode "$mode" --readonly --json
        usbvm_h_assert_eq 0 "$out_rc" "$mode: attach --readonly ($out_err)"
        disk=$(xmllint --xpath "/domain/devices/disk[alias/@name='$alias']" - <<<"$(usbvm_h_live_xml "$dom")")
        usbvm_h_assert_match '<readonly/>' "$disk" "$mode: <readonly/> in the live XML"
        usbvm_h_assert_match '"ro":true' "$(usbvm_h_qmp "$dom" '{"execute":"query-block"}')" \
            "$mode: QEMU has it read-only"
        # Detach by alias (as after the device is gone).
        usbvm_h_run out "$USBVM" detach "$dom" "$alias" --json
        usbvm_h_assert_eq 0 "$out_rc" "$mode: detach by alias without udev ($out_err)"
        usbvm_h_assert_eq detached "$(usbvm_h_json .state "$out")" "$mode: detached by alias"
        # Put back at once by someone else (virsh, not usbvm) and detached again within the
        # first request's 5 s: not asked twice at first; when no removal comes, usbvm asks
        # once asking is safe, and it is detached.
        virsh -q -c "$USBVM_H_URI" attach-device "$dom" /dev/stdin --live <<<"$disk" >/dev/null ||
            usbvm_h_fail "$mode: virsh could not put the disk back"
        usbvm_h_run out "$USBVM" detach "$dom" "$alias" --timeout 10 --json
        usbvm_h_assert_eq 0 "$out_rc" "$mode: a detach right after another one ends ($out_err $out)"
        usbvm_h_assert_eq detached "$(usbvm_h_json .state "$out")" \
            "$mode: detached once the first request's settle time is over"
        usbvm_h_assert_match 'not asked twice.*asked after all' \
            "$(usbvm_h_json '.notes | join(";")' "$out")" \
            "$mode: it says it waited for the first request, then asked"
        usbvm_h_assert_nomatch "$alias" "$(usbvm_h_live_xml "$dom")" "$mode: gone again"
    fi
done
