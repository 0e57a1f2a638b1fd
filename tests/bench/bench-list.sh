#!/bin/bash
# usbvm list --json on a 64-device umockdev testbed, timed beside lsusb and lsblk --json on the
# same testbed in the same run.
#   USBVM=build/usbvm tests/bench/bench-list.sh [N]
# Prints hyperfine's table and the ratios usbvm/lsusb, usbvm/lsblk and usbvm/(lsusb + lsblk)
# (mean times); then the start-up of a verb without libvirt beside virsh --version.
set -euo pipefail
N=${1:-64}
HERE=$(cd "$(dirname "$0")" && pwd)
USBVM=${USBVM:-$HERE/../../build/usbvm}
for tool in hyperfine umockdev-run lsusb lsblk jq python3; do
    command -v "$tool" >/dev/null || { echo "bench-list: '$tool' is not installed" >&2; exit 1; }
done
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
"$HERE/gen-testbed.sh" "$N" >"$TMP/bench.umockdev"
NOVIRT='qemu+unix:///system?socket=/nonexistent/libvirt-sock'

# The testbed is set up once (loading it costs seconds and varies a lot); hyperfine and every
# command it runs live inside it, so all three read the same fake sysfs and udev database.
cat >"$TMP/inside.sh" <<INSIDE
set -euo pipefail
got=\$("$USBVM" -q -c "$NOVIRT" list --json | jq '.devices | length')
[[ "\$got" == "$N" ]] || { echo "bench-list: usbvm sees \$got devices, not $N" >&2; exit 1; }
echo "usbvm sees \$got storage devices; lsusb sees \$(lsusb | wc -l) USB devices;" \\
    "lsblk sees \$(lsblk --json -o NAME | jq '.blockdevices | length') block devices"
hyperfine -N --warmup 5 --min-runs 50 --export-json "$TMP/h.json" \\
    -n "usbvm list --json" "$USBVM -q -c $NOVIRT list --json" \\
    -n lsusb lsusb \\
    -n "lsblk --json" "lsblk --json"
INSIDE
umockdev-run -d "$TMP/bench.umockdev" -- bash "$TMP/inside.sh"

jq -r '
  (.results | map({(.command): .mean}) | add) as $m
  | "mean ms: usbvm list --json \($m["usbvm list --json"]*1000*10|round/10), lsusb \($m.lsusb*1000*10|round/10), lsblk --json \($m["lsblk --json"]*1000*10|round/10)",
    "ratio usbvm/lsusb: \($m["usbvm list --json"]/$m.lsusb*100|round/100)",
    "ratio usbvm/lsblk: \($m["usbvm list --json"]/$m["lsblk --json"]*100|round/100)",
    "ratio usbvm/(lsusb + lsblk): \($m["usbvm list --json"]/($m.lsusb+$m["lsblk --json"])*100|round/100)"' \
    "$TMP/h.json"

# Start-up of a verb that needs no libvirt, beside virsh --version, a libvirt client that does
# nothing: usbvm loads libvirt only when a verb first calls it (lib/virt-load.c).
command -v virsh >/dev/null || { echo "bench-list: 'virsh' is not installed" >&2; exit 1; }
hyperfine -N --warmup 5 --min-runs 100 --export-json "$TMP/s.json" \
    -n "usbvm rules check" "$USBVM rules check $HERE/../../examples/10-example.rules" \
    -n "virsh --version" "virsh --version" >/dev/null
jq -r '
  (.results | map({(.command): .mean}) | add) as $m
  | "start-up mean ms: usbvm rules check \($m["usbvm rules check"]*1000*10|round/10), virsh --version \($m["virsh --version"]*1000*10|round/10)",
    "ratio usbvm rules check / virsh --version: \($m["usbvm rules check"]/$m["virsh --version"]*100|round/100)"' \
    "$TMP/s.json"
