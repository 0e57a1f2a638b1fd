# Attach/detach latency on a real libvirtd + QEMU (TCG) domain, same run, same domain, same
# device XML: usbvm (CLI, with every safety check and udev enumeration) vs the bare libvirt
# API (bench-attach-raw.c: in-process call time, and a whole process per call) vs virsh
# attach-device / detach-device. usb-disk: attach + detach (detach until libvirt confirms the
# removal). virtio: attach only (without a guest OS a virtio disk is never released; the
# domain is restarted, untimed, between runs).
#
#   bash tests/bench/bench-attach.sh [N_USBDISK=30] [N_VIRTIO=8]
#
# USBVM: the binary to measure; by default a non-sanitized build in build-bench/ is made.
# All tools run under the same umockdev preload (the fake stick), so it costs them equally.
set -u
USBVM_SRCDIR=${USBVM_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
source "$USBVM_SRCDIR/tests/harness/libvirt.sh"
usbvm_h_init
usbvm_h_require cc pkg-config cmake
usbvm_h_libvirtd_start
N=${1:-30}
NV=${2:-8}

if [ -z "${USBVM:-}" ]; then
    bdir="$USBVM_SRCDIR/build-bench"
    cmake -S "$USBVM_SRCDIR" -B "$bdir" -DUSBVM_SANITIZE=OFF -DUSBVM_TESTS=OFF \
        -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null || usbvm_h_fail "cmake failed"
    cmake --build "$bdir" --target usbvm -j2 >/dev/null || usbvm_h_fail "build failed"
    USBVM="$bdir/usbvm"
fi
RAW="$USBVM_H_TMP/bench-attach-raw"
# shellcheck disable=SC2046
cc -O2 -Wall -o "$RAW" "$USBVM_SRCDIR/tests/bench/bench-attach-raw.c" \
    $(pkg-config --cflags --libs libvirt) || usbvm_h_fail "cannot build bench-attach-raw"

dom=$(usbvm_h_domain_create bench)
usbvm_h_domain_track "$dom"
loop=$(usbvm_h_loop_create 64M)
usbvm_h_loop_track "$loop"
byid="usb-USBVM_Bench_Stick_BENCH001-0:0"
usbvm_h_by_id_link "$byid" "$loop"
FX=$(usbvm_h_fixture_usb_stick --port 1-2 --loop "$loop" --serial BENCH001 --by-id "$byid")
uv() { umockdev-run -d "$FX" -- "$USBVM" "$@"; }
alias=$(uv --json show 1-2 | jq -r .device.alias)
uv attach "$dom" 1-2 --mode usb-disk --print-xml >"$USBVM_H_TMP/usb-disk.xml" ||
    usbvm_h_fail "print-xml failed"
uv attach "$dom" 1-2 --mode virtio --print-xml >"$USBVM_H_TMP/virtio.xml" ||
    usbvm_h_fail "print-xml failed"

out="$USBVM_H_TMP/results"
mkdir -p "$out"
cat >"$USBVM_H_TMP/inner.sh" <<'EOF'
# Runs inside one umockdev-run: every tool sees the same testbed and preload.
set -u
USBVM=$1 RAW=$2 URI=$3 DOM=$4 ALIAS=$5 T=$6 OUT=$7 N=$8 NV=$9
ms() { echo $((($2 - $1) / 1000)); } # ns -> us
now() { date +%s%N; }
fail() { echo "bench: $*" >&2; exit 1; }
restart() {
    virsh -q -c "$URI" destroy "$DOM" >/dev/null && virsh -q -c "$URI" start "$DOM" >/dev/null ||
        fail "cannot restart $DOM"
}
for ((i = 0; i < N; i++)); do
    t0=$(now); "$USBVM" -q attach "$DOM" 1-2 --mode usb-disk || fail "usbvm attach"
    t1=$(now); "$USBVM" -q detach "$DOM" 1-2 --timeout 10 || fail "usbvm detach"
    t2=$(now)
    echo "$(ms $t0 $t1) $(ms $t1 $t2)" >>"$OUT/usb-disk.usbvm"

    t0=$(now); virsh -q -c "$URI" attach-device "$DOM" "$T/usb-disk.xml" --live >/dev/null || fail "virsh attach"
    t1=$(now); virsh -q -c "$URI" detach-device "$DOM" "$T/usb-disk.xml" --live >/dev/null || fail "virsh detach"
    t2=$(now); "$RAW" wait-gone "$URI" "$DOM" "$ALIAS" || fail "not removed"
    t3=$(now)
    echo "$(ms $t0 $t1) $(ms $t1 $t2) $(ms $t1 $t3)" >>"$OUT/usb-disk.virsh"

    t0=$(now); a=$("$RAW" attach "$URI" "$DOM" "$T/usb-disk.xml") || fail "raw attach"
    t1=$(now); d=$("$RAW" detach "$URI" "$DOM" "$ALIAS") || fail "raw detach"
    t2=$(now)
    echo "$a $d" >>"$OUT/usb-disk.rawcall"
    echo "$(ms $t0 $t1) $(ms $t1 $t2)" >>"$OUT/usb-disk.rawproc"
done
"$RAW" cycle "$URI" "$DOM" "$T/usb-disk.xml" "$ALIAS" "$N" >"$OUT/usb-disk.rawloop" || fail "raw cycle"

for ((i = 0; i < NV; i++)); do
    restart
    t0=$(now); "$USBVM" -q attach "$DOM" 1-2 --mode virtio || fail "usbvm attach virtio"
    t1=$(now); echo "$(ms $t0 $t1)" >>"$OUT/virtio.usbvm"
    restart
    t0=$(now); virsh -q -c "$URI" attach-device "$DOM" "$T/virtio.xml" --live >/dev/null || fail "virsh attach virtio"
    t1=$(now); echo "$(ms $t0 $t1)" >>"$OUT/virtio.virsh"
    restart
    t0=$(now); a=$("$RAW" attach "$URI" "$DOM" "$T/virtio.xml") || fail "raw attach virtio"
    t1=$(now); echo "$a" >>"$OUT/virtio.rawcall"; echo "$(ms $t0 $t1)" >>"$OUT/virtio.rawproc"
done
EOF
umockdev-run -d "$FX" -- bash "$USBVM_H_TMP/inner.sh" "$USBVM" "$RAW" "$USBVM_H_URI" "$dom" \
    "$alias" "$USBVM_H_TMP" "$out" "$N" "$NV" || usbvm_h_fail "benchmark run failed"

# pct FILE COLUMN P : the P-th percentile (nearest rank) of a column, in ms with one decimal.
pct() {
    awk -v c="$2" '{ print $c }' "$1" | sort -n | awk -v p="$3" '
        { v[NR] = $1 } END { i = int((p / 100) * NR + 0.999999); if (i < 1) i = 1; if (i > NR) i = NR
                             printf "%.1f", v[i] / 1000 }'
}
row() { # LABEL FILE ATTACHCOL DETACHCOL
    local d50="-" d99="-"
    if [ -n "$4" ]; then d50=$(pct "$2" "$4" 50); d99=$(pct "$2" "$4" 99); fi
    printf '%-34s %9s %9s %10s %10s\n' "$1" "$(pct "$2" "$3" 50)" "$(pct "$2" "$3" 99)" "$d50" "$d99"
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }'; }

echo
ver=$(virsh -c "$USBVM_H_URI" version | awk '/Using library/ {l=$NF} /Running hypervisor/ {q=$NF} END {print "libvirt " l ", QEMU " q}')
echo "usbvm attach/detach latency, ms ($ver, TCG; N=$N usb-disk, N=$NV virtio; $(nproc) CPUs, load $(cut -d' ' -f1 /proc/loadavg))"
printf '%-34s %9s %9s %10s %10s\n' "usb-disk" "att p50" "att p99" "det p50" "det p99"
row "usbvm CLI (checks+udev+confirm)" "$out/usb-disk.usbvm" 1 2
row "virsh attach/detach-device" "$out/usb-disk.virsh" 1 2
row "virsh detach + until removed" "$out/usb-disk.virsh" 1 3
row "raw API, a process per call" "$out/usb-disk.rawproc" 1 2
row "raw API, call only" "$out/usb-disk.rawcall" 1 2
row "raw API, one connection loop" "$out/usb-disk.rawloop" 1 2
printf '%-34s %9s %9s\n' "virtio (attach only)" "att p50" "att p99"
row "usbvm CLI" "$out/virtio.usbvm" 1 ""
row "virsh attach-device" "$out/virtio.virsh" 1 ""
row "raw API, a process per call" "$out/virtio.rawproc" 1 ""
row "raw API, call only" "$out/virtio.rawcall" 1 ""

u_a=$(pct "$out/usb-disk.usbvm" 1 50) u_d=$(pct "$out/usb-disk.usbvm" 2 50)
v_a=$(pct "$out/usb-disk.virsh" 1 50) v_dc=$(pct "$out/usb-disk.virsh" 3 50)
r_a=$(pct "$out/usb-disk.rawcall" 1 50) r_d=$(pct "$out/usb-disk.rawcall" 2 50)
p_a=$(pct "$out/usb-disk.rawproc" 1 50) p_d=$(pct "$out/usb-disk.rawproc" 2 50)
vu=$(pct "$out/virtio.usbvm" 1 50) vv=$(pct "$out/virtio.virsh" 1 50) vr=$(pct "$out/virtio.rawcall" 1 50)
vp=$(pct "$out/virtio.rawproc" 1 50)
echo
echo "ratios (p50):"
echo "  usb-disk attach: usbvm/virsh $(ratio "$u_a" "$v_a")  usbvm/raw-process $(ratio "$u_a" "$p_a")  usbvm/raw-call $(ratio "$u_a" "$r_a")"
echo "  usb-disk detach (confirmed): usbvm/virsh+confirm $(ratio "$u_d" "$v_dc")  usbvm/raw-process $(ratio "$u_d" "$p_d")  usbvm/raw-call $(ratio "$u_d" "$r_d")"
echo "  virtio attach: usbvm/virsh $(ratio "$vu" "$vv")  usbvm/raw-process $(ratio "$vu" "$vp")  usbvm/raw-call $(ratio "$vu" "$vr")"
echo "note: 'virsh detach-device' returns when the request is sent, before the removal; usbvm"
echo "and the raw API rows wait for libvirt's DEVICE_REMOVED."
