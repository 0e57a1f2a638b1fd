# shellcheck shell=bash disable=SC2016  # guest code is single-quoted on purpose
# Scenario 6: latency on real uevents, printed for the README (not asserted):
#  - usbvm watch: kernel `add` uevent of the USB device -> watch logs the attach as done
#    (both stamped with the outer host's wall clock as the lines arrive);
#  - `usbvm attach`/`detach` processes beside `virsh attach-device`/`detach-device` with
#    the same hostdev XML on the same domain, in the same outer VM.
needs() { echo attach detach watch; }

scenario() {
    local img i
    img=$(mkstick s50 blank)
    plug s50 E2E50 "$img"
    g 'wait_disk E2E50 >/dev/null'
    # CLI beside virsh (each measured 3 times; process start included in both)
    g 'usbvm attach inner serial=E2E50 --mode usb --print-xml >/tmp/e2e-hostdev50.xml
       cat /tmp/e2e-hostdev50.xml
       for i in 1 2 3; do
           t0=$(now_ms); usbvm attach inner serial=E2E50 --mode usb >/dev/null; t1=$(now_ms)
           usbvm detach inner serial=E2E50 >/dev/null; t2=$(now_ms)
           wait_disk E2E50 >/dev/null
           echo "latency: usbvm attach usb $((t1 - t0)) ms, usbvm detach $((t2 - t1)) ms"
       done
       for i in 1 2 3; do
           t0=$(now_ms); virsh -q attach-device inner /tmp/e2e-hostdev50.xml --live >/dev/null; t1=$(now_ms)
           virsh -q detach-device inner /tmp/e2e-hostdev50.xml --live >/dev/null; t2=$(now_ms)
           wait_disk E2E50 >/dev/null
           echo "latency: virsh attach-device usb $((t1 - t0)) ms, virsh detach-device $((t2 - t1)) ms"
       done
       # after a usb passthrough the host re-binds usb-storage: wait for the disk again
       wait_disk E2E50 >/dev/null
       for i in 1 2 3; do
           t0=$(now_ms); usbvm attach inner serial=E2E50 --mode usb-disk >/dev/null; t1=$(now_ms)
           usbvm detach inner serial=E2E50 >/dev/null; t2=$(now_ms)
           echo "latency: usbvm attach usb-disk $((t1 - t0)) ms, usbvm detach $((t2 - t1)) ms"
       done' || fail "CLI latency runs failed"
    unplug s50
    g 'wait_disk_gone E2E50'

    # watch: uevent -> attached, 3 plugs
    g 'echo "attach serial \"E2E50\" to inner as usb" >/tmp/e2e-rules50 &&
       events_start inner &&
       bg uevents udevadm monitor --kernel --subsystem-match=usb &&
       bg watch usbvm -v watch --rules /tmp/e2e-rules50 &&
       wait_line $RUNDIR/watch.log "ready:" 30 >/dev/null'
    for i in 1 2 3; do
        plug s50 E2E50 "$img"
        g "events_wait inner 'device-added.*ua-usbvm-' 60 $i >/dev/null" || fail "plug $i not attached"
        unplug s50
        g "events_wait inner 'device-removed.*ua-usbvm-' 60 $i >/dev/null" || fail "pull $i not detached"
    done
    g 'bg_stop watch; bg_stop uevents
       mapfile -t up < <(grep -E " add +/devices/.*/[0-9]+-[0-9.]+ \(usb\)$" $RUNDIR/uevents.log | cut -d" " -f1)
       mapfile -t gone < <(grep -E " remove +/devices/.*/[0-9]+-[0-9.]+ \(usb\)$" $RUNDIR/uevents.log | cut -d" " -f1)
       mapfile -t att < <(grep -E "attach .* -> inner as usb: ok" $RUNDIR/watch.log | cut -d" " -f1)
       mapfile -t det < <(grep -E "detach .* <- inner.*: ok" $RUNDIR/watch.log | cut -d" " -f1)
       mapfile -t evs < <(grep -E "device-added" $RUNDIR/events-inner.log | cut -d" " -f1)
       grep -E "attach .* ok|detach .* ok" $RUNDIR/watch.log
       for i in 0 1 2; do
           echo "latency: watch plug $((i+1)): usb add uevent -> attached $(( ${att[i]:-0} - ${up[i]:-0} )) ms (libvirt device-added seen $(( ${evs[i]:-0} - ${up[i]:-0} )) ms); remove uevent -> detached $(( ${det[i]:-0} - ${gone[i]:-0} )) ms"
       done'
}
