# shellcheck shell=bash disable=SC2016  # guest code is single-quoted on purpose
# Scenario 13 (usb, data both ways): the outer host writes a file of random bytes to the
# stick's ext4 and leaves the guest's job in sector 1; the stick is passed through as usb;
# the inner guest's program (roundtrip.S, booted from the stick by the guest's firmware, which
# reads and writes it with its own USB mass-storage driver) reads the file's sectors and
# writes every byte inverted over a second file; the stick comes back; the host reads both
# files back through its filesystem and compares sha256s. Once through `usbvm attach` and
# `detach`, once through `usbvm watch` (plug, the guest writes, pull).
needs() { echo attach detach watch; }

# rt_host_write SERIAL MARKER: the host's side before the guest runs; sets RT_HOST, RT_WANT.
rt_host_write() {
    local sums
    sums=$(g "rt_prepare $1 '$2'") || fail "the host could not prepare the stick"
    read -r RT_HOST RT_WANT <<<"$sums"
    echo "host wrote data.bin: sha256 $RT_HOST; the guest's answer must be $RT_WANT"
}

# rt_guest MARKER: boot the inner guest from the stick and wait for its program's answer.
rt_guest() {
    local line t0
    t0=$(now_ms)
    g 'virsh -q reset inner >/dev/null'
    line=$(g -t 150 "wait_line \$SERIAL_LOG_DIR/inner-serial.log 'E2E-RT-(DONE $1|FAIL)' 120") ||
        fail "the inner guest did not run its program from the stick"
    [[ $line == *"E2E-RT-DONE $1"* ]] || fail "the inner guest's program failed: $line"
    echo "the inner guest read and wrote the stick $(($(now_ms) - t0)) ms after reset"
}

# rt_host_check SERIAL: after the stick came back, the host reads both files.
rt_host_check() {
    local sums data guest
    sums=$(g "rt_read $1") || fail "the host could not read the stick back"
    read -r data guest <<<"$sums"
    echo "host read back: data.bin sha256 $data, guest.bin sha256 $guest"
    [[ $data == "$RT_HOST" ]] || fail "data.bin changed: $data, the host wrote $RT_HOST"
    [[ $guest == "$RT_WANT" ]] || fail "guest.bin is $guest, not the guest's answer $RT_WANT"
    echo "round trip ok: the guest read the host's bytes and the host read the guest's"
}

scenario() {
    local img out marker
    img=$(mkstick s13 roundtrip)
    plug s13 E2E13 "$img"

    # ---- through usbvm attach / detach
    marker="RT-A-$RANDOM$RANDOM"
    rt_host_write E2E13 "$marker"
    out=$(usbvm_json 'usbvm attach inner serial=E2E13 --mode usb --json')
    [[ $(jget "$out" state) == attached ]] || fail "attach: state is not attached"
    g 'wait_disk_gone E2E13 10' || fail "the outer host still has the stick's disk"
    rt_guest "$marker"
    out=$(usbvm_json 'usbvm detach inner serial=E2E13 --json')
    [[ $(jget "$out" state) == detached ]] || fail "detach: state is not detached"
    g 'wait_disk E2E13 30 >/dev/null' || fail "the stick did not come back to the outer host"
    rt_host_check E2E13

    # ---- through usbvm watch: attached at its plug, pulled after the guest wrote
    marker="RT-W-$RANDOM$RANDOM"
    rt_host_write E2E13 "$marker"
    unplug s13
    g 'watch_start "attach serial \"E2E13\" to inner as usb"' || fail "watch did not start"
    plug s13 E2E13 "$img"
    g 'events_wait inner "device-added.*ua-usbvm-" 60' || fail "watch did not attach the stick"
    rt_guest "$marker"
    unplug s13
    g 'events_wait inner "device-removed.*ua-usbvm-" 60' || fail "no device-removed after the pull"
    [[ -z $(g 'hostdevs inner') ]] || fail "stale hostdev left after the pull"
    g 'bg_stop watch'
    plug s13 E2E13 "$img"
    rt_host_check E2E13
    unplug s13
}
