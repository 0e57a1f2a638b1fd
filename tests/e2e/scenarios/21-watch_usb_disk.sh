# shellcheck shell=bash disable=SC2016  # guest code is single-quoted on purpose
# Scenario 3: watch with a usb-disk rule: plug -> attached as a USB disk; pull -> no stale
# disk (libvirt leaves a surprise-removed one in domblklist, no event); replug, which
# reuses the /dev/sdX name -> attached again.  That replug is where libvirt's DAC
# "remember_owner" bookkeeping refuses ("Setting different DAC user or group on
# /dev/sdX which is already in use") unless usbvm handles it.
needs() { echo watch; }

scenario() {
    local img dev1 dev2
    img=$(mkstick s21 blank)
    g 'watch_start "attach serial \"E2E21\" with-interface 08:*:* to inner as usb-disk"' ||
        fail "watch did not start"

    plug s21 E2E21 "$img"
    dev1=$(g 'wait_disk E2E21')
    g 'events_wait inner "device-added.*ua-usbvm-" 60' || fail "no device-added event for the stick"
    g 'usbvm_devs inner' | grep -q "bus='usb'" || fail "no usb-disk in the live XML after plug"
    g 'query_block inner' | grep -q "ua-usbvm-" || fail "inner QEMU has no block backend for it"

    unplug s21
    g 'events_wait inner "device-removed.*ua-usbvm-" 60' || fail "no device-removed after the pull"
    [[ -z $(g 'usbvm_devs inner') ]] || fail "stale disk left in the live XML after the pull"
    ! g 'virsh -q domblklist inner' | grep -q "$dev1\|by-id" || fail "stale disk in domblklist"

    plug s21 E2E21 "$img"
    dev2=$(g 'wait_disk E2E21')
    echo "first plug $dev1, replug $dev2"
    [[ $dev1 == "$dev2" ]] || echo "note: the replug did not reuse $dev1"
    g 'events_wait inner "device-added.*ua-usbvm-" 60 2' || {
        g 'grep -i "DAC\|fail\|refus" $RUNDIR/watch.log' || true
        fail "replugged stick ($dev2) not attached again"
    }
    g 'query_block inner' | grep -q "ua-usbvm-" || fail "inner QEMU has no block backend after the replug"
    unplug s21
    g 'events_wait inner "device-removed.*ua-usbvm-" 60 2 >/dev/null' || fail "no device-removed after the second pull"
    g 'bg_stop watch; cat $RUNDIR/watch.log'
}
