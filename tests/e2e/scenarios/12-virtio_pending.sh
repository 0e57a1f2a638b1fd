# shellcheck shell=bash disable=SC2016  # guest code is single-quoted on purpose
# Scenario 1 (virtio): attaches as a virtio-blk disk; a guest without an OS never
# releases it, so detach must answer pending (exit 5), never success.
needs() { echo attach detach; }

scenario() {
    local img out rc
    img=$(mkstick s12 blank)
    plug s12 E2E12 "$img"
    g 'wait_disk E2E12'
    out=$(usbvm_json 'usbvm attach inner serial=E2E12 --mode virtio --json')
    [[ $(jget "$out" state) == attached ]] || fail "attach: state is not attached"
    out=$(g 'usbvm_devs inner')
    echo "$out"
    grep -q "bus='virtio'" <<<"$out" || fail "no virtio disk with a ua-usbvm- alias in the live XML"
    grep -q "<serial>" <<<"$out" || fail "the virtio disk has no <serial>"
    g 'query_block inner' | grep -q "ua-usbvm-" || fail "inner QEMU's block layer does not show the disk"

    rc=0
    out=$(g 'usbvm detach inner serial=E2E12 --timeout 3 --json') || rc=$?
    echo "detach -> rc=$rc $out"
    ((rc == 5)) || fail "detach exit status is $rc, not 5 (pending)"
    [[ $(jget "$out" state) == pending ]] || fail "detach: state is not pending"
    [[ $(jget "$out" msg) == *pending* ]] || fail "the message does not say pending"
    # the disk is honestly still there
    [[ -n $(g 'usbvm_devs inner') ]] || fail "the disk vanished from the live XML although the guest never released it"
    out=$(g 'usbvm status --json')
    echo "status: $out"
    jq -e '[.. | objects | select(.domain? == "inner" and .mode? == "virtio" and .present? == true
            and ((.alias? // "") | startswith("ua-usbvm-")))] | length == 1' <<<"$out" >/dev/null ||
        fail "usbvm status does not show the one virtio disk still held in inner: $out"
    unplug s12
    # reset_state restarts inner: only a domain restart clears a never-released disk
}
