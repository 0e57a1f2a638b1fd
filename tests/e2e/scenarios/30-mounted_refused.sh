# shellcheck shell=bash disable=SC2016  # guest code is single-quoted on purpose
# Scenario 4: a stick mounted on the outer host is never attached (attach and watch), and
# the answer / the log says why (names the mount point).
needs() { echo attach watch; }

scenario() {
    local img out
    img=$(mkstick s30 ext4)
    plug s30 E2E30 "$img"
    g 'dev=$(wait_disk E2E30); mkdir -p /mnt/stick30; mount "$dev" /mnt/stick30; findmnt /mnt/stick30'

    out=$(usbvm_json 'usbvm attach inner serial=E2E30 --mode usb-disk --json')
    [[ $(jget "$out" rc) != 0 ]] || fail "attach of a mounted stick was not refused"
    grep -q "/mnt/stick30" <<<"$(jget "$out" msg)" || fail "the refusal does not name /mnt/stick30"
    out=$(usbvm_json 'usbvm attach inner serial=E2E30 --mode usb --json')
    [[ $(jget "$out" rc) != 0 ]] || fail "usb passthrough of a mounted stick was not refused"
    [[ -z $(g 'usbvm_devs inner') ]] || fail "something was attached to inner"

    g 'echo "attach serial \"E2E30\" with-interface 08:*:* to inner as usb-disk" >/tmp/e2e-rules30 &&
       bg watch usbvm -v watch --rules /tmp/e2e-rules30 &&
       wait_line $RUNDIR/watch.log "ready:" 30' || fail "watch did not start"
    g 'wait_line $RUNDIR/watch.log "refused.*/mnt/stick30|/mnt/stick30.*refused|mounted" 30' ||
        fail "watch did not log why it refused the mounted stick"
    [[ -z $(g 'usbvm_devs inner') ]] || fail "watch attached a mounted stick"
    g 'bg_stop watch; umount /mnt/stick30; cat $RUNDIR/watch.log'
    unplug s30
}
