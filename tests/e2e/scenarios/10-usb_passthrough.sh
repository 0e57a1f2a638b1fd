# shellcheck shell=bash disable=SC2016  # guest code is single-quoted on purpose
# Scenario 1 (usb): `usbvm attach inner serial=… --mode usb` passes the real (emulated)
# stick through; the inner QEMU lists it; the data path is proven by the inner guest
# booting a marker boot sector from the stick; `usbvm detach` removes it and the stick is
# back on the outer host.
needs() { echo attach detach; }

scenario() {
    local marker="E2E-MARKER-$RANDOM$RANDOM" img out port bus devnum
    img=$(mkstick s10 "boot:$marker")
    plug s10 E2E10 "$img"
    g 'wait_disk E2E10'
    read -r port bus devnum < <(g 'wait_usb E2E10')
    echo "stick at port $port, bus $bus, device $devnum"

    out=$(usbvm_json 'usbvm attach inner serial=E2E10 --mode usb --json')
    [[ $(jget "$out" state) == attached ]] || fail "attach: state is not attached"
    [[ $(jget "$out" changed) == true ]] || fail "attach: changed is not true"
    [[ $(jget "$out" alias) == ua-usbvm-* ]] || fail "attach: alias is not ua-usbvm-*"

    # live XML: a usb hostdev with usbvm's alias and the resolved bus/device
    out=$(g 'hostdevs inner')
    echo "$out"
    grep -q "ua-usbvm-" <<<"$out" || fail "no ua-usbvm- hostdev in the live XML"
    grep -q "<vendor id='0x46f4'" <<<"$out" || fail "hostdev vendor is not 0x46f4"
    grep -Eq "<address bus='$bus' device='$devnum'" <<<"$out" || fail "hostdev address is not bus $bus device $devnum"
    # QEMU's view
    out=$(g 'info_usb inner')
    echo "$out"
    grep -q "ua-usbvm-" <<<"$out" || fail "inner QEMU's info usb does not list the device"
    # the outer kernel let go of the disk (usb-storage unbound while passed through)
    g 'wait_disk_gone E2E10 10' || fail "the outer host still has the stick's disk"
    g 'usb_sysdir E2E10 >/dev/null' || fail "the USB device itself vanished from the outer host"

    # data path: the inner guest boots from the stick and prints the marker
    local t0 t1
    t0=$(now_ms)
    g 'virsh -q reset inner >/dev/null'
    g -t 150 "wait_line \$SERIAL_LOG_DIR/inner-serial.log '$marker' 120" ||
        fail "the inner guest did not boot the marker from the stick"
    t1=$(now_ms)
    echo "inner guest booted the stick's marker $((t1 - t0)) ms after reset"

    out=$(usbvm_json 'usbvm detach inner serial=E2E10 --json')
    [[ $(jget "$out" state) == detached ]] || fail "detach: state is not detached"
    [[ $(jget "$out" changed) == true ]] || fail "detach: changed is not true"
    [[ -z $(g 'hostdevs inner') ]] || fail "hostdev still in the live XML after detach"
    ! g 'info_usb inner' | grep -q 'ua-usbvm-' || fail "inner QEMU still lists the device"
    g 'wait_disk E2E10 30' || fail "the stick did not come back to the outer host"

    # idempotent: detaching again changes nothing and succeeds
    out=$(usbvm_json 'usbvm detach inner serial=E2E10 --json')
    [[ $(jget "$out" changed) == false ]] || fail "second detach: changed is not false"
    [[ $(jget "$out" rc) == 0 ]] || fail "second detach: rc is not 0"
    unplug s10
}
