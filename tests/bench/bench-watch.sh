#!/bin/bash
# Benchmarks of usbvm watch against a real libvirtd + QEMU (TCG) with umockdev uevents, each
# beside its baseline in the same run, on the same domain. Prints numbers and ratios; asserts
# nothing about speed (that is not a test's job).
#
#  1. Event-to-attached latency (first uevent sent -> libvirt's attach returned), p50/p99 over
#     USBVM_BENCH_PLUGS plugs (default 200), usb-disk mode, beside
#       (a) the bare libvirt call virDomainAttachDeviceFlags with the same XML, and
#       (b) the udev-rule pattern: one `virsh attach-device` process per event.
#  2. A burst of 32 sticks: time from the first uevent until all 32 are attached.
#  3. Idle cost over USBVM_BENCH_IDLE (default 60) seconds with 33 devices attached and no
#     events: CPU time and context switches (wakeups) of the watch process.
#  4. Memory: RSS after 100 and after USBVM_BENCH_CYCLES (default 2000) plug/unplug cycles,
#     and where it lies (/proc/PID/smaps): the heap, other anonymous memory (thread stacks,
#     the other threads' malloc arenas), and pages of files (the libraries' code and data as
#     it is first run), so that a growth can be told from a leak.
#
# Run from a build tree: USBVM=... USBVM_SRCDIR=... USBVM_MOCKBED=... USBVM_BUILDDIR=...
# (tests/bench/run sets them).
set -euo pipefail
# shellcheck source=../integration/watch-lib.sh
source "$USBVM_SRCDIR/tests/integration/watch-lib.sh"
# shellcheck source=bench-lib.sh
source "$USBVM_SRCDIR/tests/bench/bench-lib.sh"
wl_init
usbvm_h_require xmllint

PLUGS=${USBVM_BENCH_PLUGS:-200}
IDLE=${USBVM_BENCH_IDLE:-60}
CYCLES=${USBVM_BENCH_CYCLES:-2000}
RAW=$USBVM_BUILDDIR/tests/bench/bench-attach-raw
[ -x "$RAW" ] || usbvm_h_fail "$RAW is not built"

dom=$(usbvm_h_domain_create bench)
usbvm_h_domain_track "$dom"
rules=$USBVM_H_TMP/bench.rules
printf 'attach with-interface 08:06:50 to %s as usb-disk\n' "$dom" >"$rules"
wl_stick a 1-2 BENCH1
stick=$WL_FILE
wl_watch_start "$rules"

bw_open
attach_re='"event":"attach".*"result":"ok"'
detach_re='"event":"detach".*"result":"ok"'

# stats FILE : "p50 p99 mean" of the microsecond values in FILE, in ms.
stats() {
    sort -n "$1" | awk '{v[NR]=$1; s+=$1} END {
        p50=v[int((NR-1)*0.50)+1]; p99=v[int((NR-1)*0.99)+1];
        printf "%.2f %.2f %.2f\n", p50/1000, p99/1000, s/NR/1000 }'
}

rss_kb() { awk '/^VmRSS:/{print $2}' "/proc/$WL_WATCH_PID/status"; }
# rss_split : "HEAP ANON FILES", the resident kB of the [heap] mapping, of the other anonymous
# mappings, and of the mappings of files.
rss_split() {
    awk '/^[0-9a-f]+-[0-9a-f]+ / { kind = $6 == "[heap]" ? 1 : ($6 == "" || $6 ~ /^\[/) ? 2 : 3 }
         /^Rss:/ { r[kind] += $2 }
         END { printf "%d %d %d\n", r[1], r[2], r[3] }' "/proc/$WL_WATCH_PID/smaps"
}

cycle() {
    local t0
    bw_plug "$stick"
    bw_next "$attach_re"
    bw_plugged
    t0=$BW_T0
    local t1
    t1=$(jq -r .mono_usec <<<"$BW_LINE")
    [ -n "${1:-}" ] && echo $((t1 - t0)) >>"$1"
    wl_unplug 1-2 >/dev/null
    bw_next "$detach_re"
}

echo "== 1. event-to-attached latency, usb-disk, $PLUGS plugs"
lat_usbvm=$USBVM_H_TMP/lat-usbvm
rss100=
for i in $(seq 1 "$PLUGS"); do
    cycle "$lat_usbvm"
    [ "$i" -eq 100 ] && rss100=$(rss_kb)
done
[ -n "$rss100" ] || rss100=$(rss_kb)

# The same device XML for the baselines: what usbvm attached, without libvirt's address.
wl_plug "$stick" >/dev/null
bw_next "$attach_re"
alias=$(jq -r .alias <<<"$BW_LINE")
bw_disk_xml "$dom" "$alias" "$USBVM_H_TMP/disk.xml"
wl_unplug 1-2 >/dev/null
bw_next "$detach_re"
wl_watch_stop

lat_raw=$USBVM_H_TMP/lat-raw
# One connection, N x (attach timed, detach until DEVICE_REMOVED): first column = attach.
"$RAW" cycle "$USBVM_H_URI" "$dom" "$USBVM_H_TMP/disk.xml" "$alias" "$PLUGS" |
    awk '{print $1}' >"$lat_raw"

lat_virsh=$USBVM_H_TMP/lat-virsh
for _ in $(seq 1 "$PLUGS"); do
    t0=$(date +%s%6N)
    virsh -q -c "$USBVM_H_URI" attach-device "$dom" "$USBVM_H_TMP/disk.xml" --live >/dev/null
    t1=$(date +%s%6N)
    echo $((t1 - t0)) >>"$lat_virsh"
    # detach-device waits for QEMU's DEVICE_DELETED itself (up to 5 s): untimed.
    virsh -q -c "$USBVM_H_URI" detach-device "$dom" "$USBVM_H_TMP/disk.xml" --live >/dev/null
done

read -r u50 u99 umean < <(stats "$lat_usbvm")
read -r r50 r99 rmean < <(stats "$lat_raw")
read -r v50 v99 vmean < <(stats "$lat_virsh")
printf '%-44s %9s %9s %9s\n' "" "p50 ms" "p99 ms" "mean ms"
printf '%-44s %9s %9s %9s\n' "usbvm watch: uevent -> attached" "$u50" "$u99" "$umean"
printf '%-44s %9s %9s %9s\n' "(a) raw virDomainAttachDeviceFlags" "$r50" "$r99" "$rmean"
printf '%-44s %9s %9s %9s\n' "(b) virsh attach-device per event" "$v50" "$v99" "$vmean"
awk -v u="$u50" -v r="$r50" -v v="$v50" -v u9="$u99" -v v9="$v99" 'BEGIN {
    printf "ratio p50 usbvm/raw = %.2f, usbvm/virsh = %.2f (virsh is %.1fx slower); p99 usbvm/virsh = %.2f\n",
        u/r, u/v, v/u, u9/v9 }'

echo "== 2. burst of 32 sticks"
# The burst goes in as scsi: the domain's qemu-xhci has four USB 2 ports, virtio-scsi room
# for all 32. The single stick of the other phases stays usb-disk.
printf 'attach serial "BENCH1" to %s as usb-disk\nattach with-interface 08:06:50 to %s as scsi\n' \
    "$dom" "$dom" >"$rules"
wl_watch_start "$rules"
bw_close
bw_open
bw_burst
printf 'burst: 32 sticks attached %.1f ms after the first uevent (%.1f ms per stick)\n' \
    "$(awk -v d="$BW_BURST_US" 'BEGIN{print d/1000}')" \
    "$(awk -v d="$BW_BURST_US" 'BEGIN{print d/32000}')"

echo "== 3. idle cost over ${IDLE}s, $(wl_owned "$dom") devices attached"
read_stat() {
    # utime+stime in clock ticks, voluntary + involuntary context switches
    local ticks cs
    ticks=$(awk '{print $14 + $15}' "/proc/$WL_WATCH_PID/stat")
    cs=$(awk '/ctxt_switches/{s+=$2} END{print s}' "/proc/$WL_WATCH_PID/status")
    echo "$ticks $cs"
}
read -r tick0 cs0 < <(read_stat)
# Measuring an interval, not synchronising: nothing happens during it by design.
sleep "$IDLE"
read -r tick1 cs1 < <(read_stat)
hz=$(getconf CLK_TCK)
printf 'idle: %.3f s CPU, %d wakeups (context switches) in %d s\n' \
    "$(awk -v t=$((tick1 - tick0)) -v hz="$hz" 'BEGIN{print t/hz}')" $((cs1 - cs0)) "$IDLE"

echo "== 4. memory over $CYCLES plug/unplug cycles"
for i in $(seq 1 32); do wl_unplug "3-$i" >/dev/null; done
for _ in $(seq 1 32); do bw_next "$detach_re"; done
rss_start=$(rss_kb)
for i in $(seq 1 "$CYCLES"); do
    cycle
    if [ "$i" -eq 100 ]; then
        rss_c100=$(rss_kb)
        split_c100=$(rss_split)
    fi
    if [ "$i" -eq $((CYCLES / 2)) ]; then
        rss_half=$(rss_kb)
        split_half=$(rss_split)
    fi
done
rss_end=$(rss_kb)
printf 'RSS: %s kB after 100 latency plugs; second watch: %s kB at start, %s kB after 100 cycles, %s kB after %d, %s kB after %d cycles (growth %+d kB, of which %+d kB in the second half)\n' \
    "$rss100" "$rss_start" "${rss_c100:-?}" "${rss_half:-?}" $((CYCLES / 2)) "$rss_end" "$CYCLES" \
    $((rss_end - ${rss_c100:-$rss_start})) $((rss_end - ${rss_half:-$rss_start}))
split_end=$(rss_split)
read -r h0 a0 f0 <<<"${split_c100:-$split_end}"
read -r h1 a1 f1 <<<"${split_half:-$split_end}"
read -r h2 a2 f2 <<<"$split_end"
printf 'RSS by kind after 100 / %d / %d cycles: heap %d / %d / %d kB, other anonymous %d / %d / %d kB, files %d / %d / %d kB\n' \
    $((CYCLES / 2)) "$CYCLES" "$h0" "$h1" "$h2" "$a0" "$a1" "$a2" "$f0" "$f1" "$f2"

bw_close
wl_watch_stop
