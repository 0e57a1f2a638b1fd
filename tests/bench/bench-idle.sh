#!/bin/bash
# The bare libvirt call itself, back to back and after the host has done nothing for a while, as
# between two plugs on a real host (seconds apart); and usbvm watch's plugs after the same idle,
# beside the bare call and the floor after it. bench-domains.sh holds usbvm's plugs, which come
# there a few milliseconds after the previous pull, to the back-to-back call; this prints what
# the same call costs when nothing ran just before it, and what usbvm adds to that call then.
#
# For each gap in USBVM_BENCH_GAPS (milliseconds, default "0 5 20 100 500"), USBVM_BENCH_CALLS
# bare calls (default 100), each after that gap (bench-attach-raw idle-cycle; 0 is its plain
# cycle); for each gap in USBVM_BENCH_PLUG_GAPS (default "500"), as many plugs under watch
# (usb-disk, one rule, 1 running domain), each after that gap since the previous pull's detach
# record, timed from the first uevent to the attach record as in bench-domains.sh, and as many
# plugs answered by the floor of bench-domains.sh (bench-attach-raw on-uevent: the bare call
# started on the stick's first uevent, the least any daemon does), each after that gap since its
# previous detach. The disk's XML for the bare calls is that of watch's attach. All of it in
# USBVM_BENCH_ROUNDS rounds (default 5) whose order alternates (forward, backward, ...), after
# one round that is not counted. The shell waits each gap in a builtin read with a timeout: no
# process starts just before a call or a plug. Prints each series' p50 and p99, the bare calls'
# p50 against the back-to-back call's, and usbvm's p50 and p99 against the bare call and against
# the floor after the same gap.
#
# Run from a build tree under tests/harness/ns-run --tmp-in-ram, as bench-domains.sh.
set -euo pipefail
# shellcheck source=../integration/watch-lib.sh
source "$USBVM_SRCDIR/tests/integration/watch-lib.sh"
# shellcheck source=bench-lib.sh
source "$USBVM_SRCDIR/tests/bench/bench-lib.sh"
wl_init
usbvm_h_require xmllint
GAPS=${USBVM_BENCH_GAPS:-0 5 20 100 500}
PLUG_GAPS=${USBVM_BENCH_PLUG_GAPS:-500}
CALLS=${USBVM_BENCH_CALLS:-100}
ROUNDS=${USBVM_BENCH_ROUNDS:-5}
RAW=$USBVM_BUILDDIR/tests/bench/bench-attach-raw
[ -x "$RAW" ] || usbvm_h_fail "$RAW is not built"
case " $GAPS " in *" 0 "*) ;; *) usbvm_h_fail "USBVM_BENCH_GAPS must include 0 (the reference)" ;; esac
for g in $PLUG_GAPS; do
    case " $GAPS " in *" $g "*) ;; *) usbvm_h_fail "USBVM_BENCH_GAPS must include $g: each plug gap's bare call" ;; esac
done

dom=$(usbvm_h_domain_create dombench)
usbvm_h_domain_track "$dom"
rules=$USBVM_H_TMP/bench.rules
printf 'attach serial "DB1" to %s as usb-disk\n' "$dom" >"$rules"
wl_stick a 1-2 DB1
stick=$WL_FILE
exec {IDLE_FD}<> <(:) # never readable: a read on it with a timeout is a wait with no process
idle() { read -r -t "$(printf '%d.%03d' $(($1 / 1000)) $(($1 % 1000)))" -u "$IDLE_FD" _ || true; }

# One plug under watch gives the disk's XML (its address dropped) and alias, as in
# bench-domains.sh; the stick's loop device stays after its pull, and watch is stopped before
# anything is timed.
bw_open
wl_watch_start "$rules"
bw_reopen
bw_plug "$stick"
bw_next '"event":"attach".*"result":"ok"'
bw_plugged
alias=$(jq -r .alias <<<"$BW_LINE")
bw_disk_xml "$dom" "$alias" "$USBVM_H_TMP/disk.xml"
wl_unplug 1-2 >/dev/null
bw_next '"event":"detach".*"result":"ok"'
wl_watch_stop >/dev/null
"$RAW" wait-gone "$USBVM_H_URI" "$dom" "$alias"

per=$(((CALLS + ROUNDS - 1) / ROUNDS))
# round GAP OUT : per+1 calls after GAP ms each; the first (a new process's) is dropped.
round() {
    local cmd=(idle-cycle "$USBVM_H_URI" "$dom" "$USBVM_H_TMP/disk.xml" "$alias" $((per + 1)) "$1")
    [ "$1" != 0 ] || cmd=(cycle "${cmd[@]:1:5}")
    "$RAW" "${cmd[@]}" | awk 'NR > 1 {print $1}' >>"$2"
}
# plugs GAP OUT : per+1 plugs under a new watch, each GAP ms after the previous pull's detach
# record (the first after watch's start); the first is dropped.
plugs() {
    local i t1
    : >"$WL_LOG"
    wl_watch_start "$rules"
    bw_reopen
    for i in $(seq 0 "$per"); do
        idle "$1"
        bw_plug "$stick"
        bw_next '"event":"attach".*"result":"ok"'
        [[ $BW_LINE =~ \"mono_usec\":([0-9]+) ]] || usbvm_h_fail "no mono_usec in: $BW_LINE"
        t1=${BASH_REMATCH[1]}
        bw_plugged
        if [ "$i" -gt 0 ]; then echo $((t1 - BW_T0)) >>"$2"; fi
        wl_unplug 1-2 >/dev/null
        bw_next '"event":"detach".*"result":"ok"'
    done
    wl_watch_stop >/dev/null
}
# floor GAP OUT : per+1 plugs answered by the floor (bw_floor_start), each GAP ms after its
# previous detach; from the first uevent to the call's return.
floor() {
    local i
    bw_floor_start "$dom" "$USBVM_H_TMP/disk.xml" "$alias"
    for i in $(seq 0 "$per"); do
        idle "$1"
        bw_floor_plug "$stick"
        if [ "$i" -gt 0 ]; then echo $((BW_FLOOR_DONE - BW_T0)) >>"$2"; fi
        bw_floor_pull 1-2
    done
    bw_floor_stop
}
# series: "bare GAP", "watch GAP" and "floor GAP" items, run in the order given
series=()
read -r -a gaps <<<"$GAPS"
for g in "${gaps[@]}"; do series+=("bare $g"); done
for g in $PLUG_GAPS; do series+=("watch $g" "floor $g"); done
run() {
    local kind=${1% *} g=${1#* }
    case $kind in
    bare) round "$g" "$2" ;;
    watch) plugs "$g" "$2" ;;
    floor) floor "$g" "$2" ;;
    esac
}
for item in "${series[@]}"; do run "$item" /dev/null; done
for r in $(seq 1 "$ROUNDS"); do
    order=("${series[@]}")
    if [ $((r % 2)) = 0 ]; then
        order=()
        for ((i = ${#series[@]} - 1; i >= 0; i--)); do order+=("${series[i]}"); done
    fi
    for item in "${order[@]}"; do run "$item" "$USBVM_H_TMP/${item% *}-${item#* }"; done
done
bw_close

p() { sort -n "$1" | awk -v q="$2" '{v[NR]=$1} END {print v[int((NR-1)*q)+1]}'; }
ref=$(p "$USBVM_H_TMP/bare-0" 0.50)
for g in "${gaps[@]}"; do
    f=$USBVM_H_TMP/bare-$g
    printf 'bare call after %4s ms idle: n %d, p50 %6.2f ms, p99 %6.2f ms, p50 %.3f x back to back\n' \
        "$g" "$(wc -l <"$f")" "$(p "$f" 0.50 | awk '{print $1/1000}')" \
        "$(p "$f" 0.99 | awk '{print $1/1000}')" "$(awk -v a="$(p "$f" 0.50)" -v b="$ref" 'BEGIN{print a/b}')"
done
for g in $PLUG_GAPS; do
    f=$USBVM_H_TMP/floor-$g b=$USBVM_H_TMP/bare-$g
    printf 'floor plug after %4s ms idle: n %d, p50 %6.2f ms, p99 %6.2f ms | ratio to the bare call after %s ms: p50 %.3f p99 %.2f\n' \
        "$g" "$(wc -l <"$f")" "$(p "$f" 0.50 | awk '{print $1/1000}')" \
        "$(p "$f" 0.99 | awk '{print $1/1000}')" "$g" \
        "$(awk -v a="$(p "$f" 0.50)" -v b="$(p "$b" 0.50)" 'BEGIN{print a/b}')" \
        "$(awk -v a="$(p "$f" 0.99)" -v b="$(p "$b" 0.99)" 'BEGIN{print a/b}')"
    f=$USBVM_H_TMP/watch-$g l=$USBVM_H_TMP/floor-$g
    printf 'usbvm plug after %4s ms idle: n %d, p50 %6.2f ms, p99 %6.2f ms | ratio to the bare call after %s ms: p50 %.3f p99 %.2f | to the back-to-back call: p50 %.3f\n' \
        "$g" "$(wc -l <"$f")" "$(p "$f" 0.50 | awk '{print $1/1000}')" \
        "$(p "$f" 0.99 | awk '{print $1/1000}')" "$g" \
        "$(awk -v a="$(p "$f" 0.50)" -v b="$(p "$b" 0.50)" 'BEGIN{print a/b}')" \
        "$(awk -v a="$(p "$f" 0.99)" -v b="$(p "$b" 0.99)" 'BEGIN{print a/b}')" \
        "$(awk -v a="$(p "$f" 0.50)" -v b="$ref" 'BEGIN{print a/b}')"
    printf 'usbvm plug after %4s ms idle over the floor plug after it: p50 %.3f p99 %.2f\n' "$g" \
        "$(awk -v a="$(p "$f" 0.50)" -v b="$(p "$l" 0.50)" 'BEGIN{print a/b}')" \
        "$(awk -v a="$(p "$f" 0.99)" -v b="$(p "$l" 0.99)" 'BEGIN{print a/b}')"
done
