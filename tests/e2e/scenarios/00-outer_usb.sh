# shellcheck shell=bash disable=SC2016  # guest code is single-quoted on purpose
# The harness itself: a stick hot-plugged over QMP reaches the outer host's kernel as
# real uevents (usb, then block), lsusb sees 46f4:0001, and device_del removes it.
needs() { :; }

scenario() {
    local img t0 t1 dev
    img=$(mkstick s00 blank)
    g 'bg uevents udevadm monitor --kernel --subsystem-match=usb --subsystem-match=block'
    t0=$(now_ms)
    plug s00 E2E00 "$img"
    dev=$(g 'wait_disk E2E00')
    t1=$(now_ms)
    echo "plug -> $dev visible in the outer host: $((t1 - t0)) ms (incl. agent round trips)"
    g 'lsusb -d 46f4:0001' || fail "lsusb does not list 46f4:0001"
    g 'read -r port bus devnum < <(wait_usb E2E00); echo "port $port bus $bus devnum $devnum"'
    t0=$(now_ms)
    unplug s00
    g 'wait_disk_gone E2E00' || fail "disk still present after unplug"
    t1=$(now_ms)
    echo "unplug -> disk gone: $((t1 - t0)) ms"
    # the kernel's own timeline of the plug, from the stamped monitor log
    g 'bg_stop uevents; grep -E " (add|remove) +/devices/.*/([0-9]+-[0-9.]+|block/sd[a-z]+) \((usb|block)\)$" "$RUNDIR/uevents.log"' || true
}
