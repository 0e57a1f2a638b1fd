# shellcheck shell=bash disable=SC2016  # guest code is single-quoted on purpose
# Scenario: uevents lost to a full udev socket (ENOBUFS) on a real kernel. watch runs with the
# smallest receive buffer the kernel allows and logs the size it got; it is frozen (SIGSTOP)
# while the stick is pulled and udev floods it with change events, then continued: it must
# notice the overflow, log it, read every device again, and so still detach the stick whose
# removal it never saw.
needs() { echo watch; }

scenario() {
    local img
    img=$(mkstick s60 blank)
    g 'echo "attach serial \"E2E60\" to inner as usb-disk" >/tmp/e2e-rules60 &&
       events_start inner &&
       bg watch env USBVM_UDEV_RCVBUF=1 usbvm -v watch --rules /tmp/e2e-rules60 &&
       wait_line $RUNDIR/watch.log "ready:" 30 >/dev/null'
    g 'wait_line $RUNDIR/watch.log "udev receive buffer: [0-9]+ bytes" 10' ||
        fail "watch did not log the receive buffer it got"
    plug s60 E2E60 "$img"
    g 'events_wait inner "device-added.*ua-usbvm-" 120 >/dev/null' || fail "the stick was not attached"
    g 'kill -STOP "$(cat $RUNDIR/watch.pid)"'
    unplug s60
    g 'for i in $(seq 1 20); do udevadm trigger --action=change --subsystem-match=block; done
       udevadm settle --timeout=60 || true'
    g 'kill -CONT "$(cat $RUNDIR/watch.pid)"'
    g 'wait_line $RUNDIR/watch.log "udev events were lost" 30' || fail "watch did not notice the overflow"
    g 'events_wait inner "device-removed.*ua-usbvm-" 60 >/dev/null' ||
        fail "the stick pulled during the overflow was not detached after reading every device"
    g 'bg_stop watch; cat $RUNDIR/watch.log'
}
