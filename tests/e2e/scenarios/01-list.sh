# shellcheck shell=bash disable=SC2016  # guest code is single-quoted on purpose
# usbvm list --json in the outer host sees the stick with its serial and its disk.
needs() { echo list; }

scenario() {
    local img out
    img=$(mkstick s01 blank)
    plug s01 E2E01 "$img"
    g 'wait_disk E2E01 >/dev/null'
    out=$(g 'usbvm list --json')
    echo "$out"
    grep -q 'E2E01' <<<"$out" || fail "usbvm list --json does not show serial E2E01"
    grep -qi '46f4' <<<"$out" || fail "usbvm list --json does not show 46f4"
    out=$(g 'usbvm list')
    echo "$out"
    unplug s01
    out=$(g 'wait_disk_gone E2E01; usbvm list --json')
    ! grep -q 'E2E01' <<<"$out" || fail "usbvm list still shows E2E01 after unplug"
}
