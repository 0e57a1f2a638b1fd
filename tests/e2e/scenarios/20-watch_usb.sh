# shellcheck shell=bash disable=SC2016  # guest code is single-quoted on purpose
# Scenario 2: `usbvm watch` with a rule on the stick's serial: plug -> attached as usb;
# pull -> no stale hostdev (libvirt itself leaves one and emits nothing); plug again
# (new devnum) -> attached again, at the new address.
needs() { echo watch; }

scenario() {
    local img out bus devnum bus2 devnum2 _
    img=$(mkstick s20 blank)
    g 'watch_start "attach serial \"E2E20\" to inner as usb"' || fail "watch did not start"

    plug s20 E2E20 "$img"
    g 'events_wait inner "device-added.*ua-usbvm-" 60' || fail "no device-added event for the stick"
    read -r _ bus devnum < <(g 'wait_usb E2E20')
    out=$(g 'hostdevs inner')
    echo "$out"
    grep -q "ua-usbvm-" <<<"$out" || fail "no ua-usbvm- hostdev after plug"
    grep -q "<address bus='$bus' device='$devnum'" <<<"$out" || fail "hostdev not at bus $bus device $devnum"
    g 'info_usb inner' | grep -q "ua-usbvm-" || fail "inner QEMU does not list the device"
    g 'wait_line $RUNDIR/watch.log "attach .* -> inner as usb: ok" 10' || fail "watch did not log the attach"

    unplug s20
    g 'events_wait inner "device-removed.*ua-usbvm-" 60' || fail "no device-removed event after the pull"
    [[ -z $(g 'hostdevs inner') ]] || fail "stale hostdev left in the live XML after the pull"
    ! g 'info_usb inner' | grep -q "ua-usbvm-" || fail "inner QEMU still lists the device"

    plug s20 E2E20 "$img"
    read -r _ bus2 devnum2 < <(g 'wait_usb E2E20')
    echo "replugged at bus $bus2 device $devnum2 (was $bus/$devnum)"
    [[ "$bus2/$devnum2" != "$bus/$devnum" ]] || fail "the replug did not change the address: the test proves nothing"
    g 'events_wait inner "device-added.*ua-usbvm-" 60 2' || fail "no device-added event after the replug"
    out=$(g 'hostdevs inner')
    echo "$out"
    grep -q "<address bus='$bus2' device='$devnum2'" <<<"$out" || fail "replugged stick not attached at its new address"
    unplug s20
    g 'events_wait inner "device-removed.*ua-usbvm-" 60 2 >/dev/null' || fail "no device-removed after the second pull"
    g 'bg_stop watch; cat $RUNDIR/watch.log'
}
