# shellcheck shell=bash disable=SC2016  # guest code is single-quoted on purpose
# Scenario 4: a stick mounted on the outer host is never attached (attach and watch), and
# the answer / the log says why (names the mount point).
needs() { echo attach watch; }

scenario() {
    local img out
    img=$(mkstick s30 ext4)
    plug s30 E2E30 "$img"
    g 'dev=$(wait_disk E2E30); mkdir -p /mnt/stick30; mount "$dev" /mnt/stick30; findmnt /mnt/stick30'

    local mode
    for mode in usb-disk usb virtio scsi; do
        out=$(usbvm_json "usbvm attach inner serial=E2E30 --mode $mode --json")
        [[ $(jget "$out" rc) == 4 ]] || fail "$mode: attach of a mounted stick: rc $(jget "$out" rc), not 4 (refused)"
        [[ $(jget "$out" failed) == true && $(jget "$out" changed) == false ]] ||
            fail "$mode: the refusal is not failed=true changed=false"
        [[ $(jget "$out" msg) =~ "is mounted on /mnt/stick30; unmount it first" ]] ||
            fail "$mode: the refusal does not say what is mounted where and what to do: $(jget "$out" msg)"
    done
    [[ -z $(g 'usbvm_devs inner') ]] || fail "something was attached to inner"

    g 'echo "attach serial \"E2E30\" with-interface 08:*:* to inner as usb-disk" >/tmp/e2e-rules30 &&
       bg watch usbvm -v watch --rules /tmp/e2e-rules30 &&
       wait_line $RUNDIR/watch.log "ready:" 30' || fail "watch did not start"
    g 'wait_line $RUNDIR/watch.log "attach .* -> inner( as [a-z-]+)?: refused: .*is mounted on /mnt/stick30; unmount it first" 30' ||
        fail "watch did not log why it refused the mounted stick"
    [[ -z $(g 'usbvm_devs inner') ]] || fail "watch attached a mounted stick"
    g 'bg_stop watch; umount /mnt/stick30; cat $RUNDIR/watch.log'
    unplug s30
}
