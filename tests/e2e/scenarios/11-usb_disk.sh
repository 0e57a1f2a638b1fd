# shellcheck shell=bash disable=SC2016  # guest code is single-quoted on purpose
# Scenario 1 (usb-disk): the stick's block device as an emulated USB disk of the inner
# domain; QEMU sees the block backend; detach completes (no guest cooperation needed).
needs() { echo attach detach; }

scenario() {
    local img out dev
    img=$(mkstick s11 blank)
    plug s11 E2E11 "$img"
    dev=$(g 'wait_disk E2E11')
    out=$(usbvm_json 'usbvm attach inner serial=E2E11 --mode usb-disk --json')
    [[ $(jget "$out" state) == attached ]] || fail "attach: state is not attached"
    [[ $(jget "$out" changed) == true ]] || fail "attach: changed is not true"
    out=$(g 'usbvm_devs inner')
    echo "$out"
    grep -q "bus='usb'" <<<"$out" || fail "no usb-bus disk with a ua-usbvm- alias in the live XML"
    grep -q "disk/by-id\|$dev" <<<"$out" || fail "the disk source is not the stick"
    out=$(g 'query_block inner')
    echo "$out"
    grep -q "ua-usbvm-" <<<"$out" || fail "inner QEMU's block layer does not show the disk"
    g 'info_usb inner' | grep -q "ua-usbvm-" || fail "inner QEMU's info usb does not list the disk"
    # idempotent
    out=$(usbvm_json 'usbvm attach inner serial=E2E11 --mode usb-disk --json')
    [[ $(jget "$out" changed) == false ]] || fail "second attach: changed is not false"
    # refused for another domain, naming the holder
    out=$(usbvm_json 'usbvm attach inner2 serial=E2E11 --mode usb-disk --json')
    [[ $(jget "$out" rc) != 0 ]] || fail "attach to inner2 while in inner was not refused"
    grep -q inner <<<"$(jget "$out" msg)" || fail "the refusal does not name inner"

    out=$(usbvm_json 'usbvm detach inner serial=E2E11 --json')
    [[ $(jget "$out" state) == detached ]] || fail "detach: state is not detached"
    [[ -z $(g 'usbvm_devs inner') ]] || fail "disk still in the live XML after detach"
    ! g 'query_block inner' | grep -q "ua-usbvm-" || fail "inner QEMU still has the block backend"
    unplug s11
}
