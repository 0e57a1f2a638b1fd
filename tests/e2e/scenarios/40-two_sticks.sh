# shellcheck shell=bash disable=SC2016  # guest code is single-quoted on purpose
# Scenario 5: two identical sticks (46f4:0001, different serials) go to two different
# domains; a vendor/product-only hostdev would fail ("Multiple USB devices"), so usbvm
# must address each by the bus/device resolved from its serial.
needs() { echo attach detach; }

scenario() {
    local a b out busA devA busB devB
    a=$(mkstick s40a blank)
    b=$(mkstick s40b blank)
    plug s40a E2E40A "$a"
    plug s40b E2E40B "$b"
    read -r _ busA devA < <(g 'wait_usb E2E40A')
    read -r _ busB devB < <(g 'wait_usb E2E40B')
    g 'wait_disk E2E40A >/dev/null; wait_disk E2E40B >/dev/null; lsusb -d 46f4:0001'
    out=$(usbvm_json 'usbvm attach inner serial=E2E40A --mode usb --json')
    [[ $(jget "$out" state) == attached ]] || fail "stick A not attached to inner"
    out=$(usbvm_json 'usbvm attach inner2 serial=E2E40B --mode usb --json')
    [[ $(jget "$out" state) == attached ]] || fail "stick B not attached to inner2"
    g 'hostdevs inner' | grep -q "<address bus='$busA' device='$devA'" || fail "inner does not hold stick A ($busA/$devA)"
    g 'hostdevs inner2' | grep -q "<address bus='$busB' device='$devB'" || fail "inner2 does not hold stick B ($busB/$devB)"
    g 'info_usb inner | grep ua-usbvm- && info_usb inner2 | grep ua-usbvm-' || fail "QEMU does not list both"
    # the same stick cannot go to the other domain too
    out=$(usbvm_json 'usbvm attach inner2 serial=E2E40A --mode usb --json')
    [[ $(jget "$out" rc) != 0 ]] || fail "stick A was attached to a second domain"
    out=$(usbvm_json 'usbvm detach inner serial=E2E40A --json')
    [[ $(jget "$out" state) == detached ]] || fail "stick A not detached"
    out=$(usbvm_json 'usbvm detach inner2 serial=E2E40B --json')
    [[ $(jget "$out" state) == detached ]] || fail "stick B not detached"
    unplug s40a
    unplug s40b
}
