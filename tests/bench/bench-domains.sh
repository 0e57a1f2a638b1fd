#!/bin/bash
# usbvm watch's cost per plug as the host grows, each number beside the bare libvirt call in
# the same run and on the same domain. Prints numbers and ratios; asserts nothing about speed.
#
#  1. uevent -> attached, usb-disk, USBVM_BENCH_PLUGS plugs (default 50), with 1 running domain,
#     beside as many bare virDomainAttachDeviceFlags calls of the same XML. Timed from the first
#     uevent, and again from the last "add" (the whole device announced; umockdev sends each
#     uevent through its sockets, which the kernel does not). The plugs and the bare calls run
#     in USBVM_BENCH_ROUNDS rounds (default 5), in the order AB BA AB..., after
#     USBVM_BENCH_WARMUP rounds (default 1) that are not counted: a guest's firmware runs for
#     seconds after its domain starts and takes a core from libvirtd and QEMU (the first ten
#     attaches of a phase took 14.5 to 15.5 ms where the rest took 12.5), and a slow moment
#     must not fall on one side only. A third series is the bare call while another connection
#     follows the domain events usbvm watch follows (bench-attach-raw listen-cycle): libvirtd
#     then sends the device-added event out during the call, as it does for watch. A fourth is
#     the bare call amid the same plug (bench-attach-raw step-cycle): the testbed's stick is
#     plugged before each call and pulled after it, with no watch running. mockbed makes and
#     removes the stick's sysfs tree in the testbed's directory on every plug and pull, and
#     what that leaves to the kernel lands on the calls that follow (the bare call's p50 rose
#     by 0.51 ms in one run; a scheduler trace showed the kernel's RCU thread running 0.8 ms in
#     one of watch's calls); a kernel's own plug costs a daemon no such thing. A fifth is the
#     floor under any daemon in this testbed (bench-attach-raw on-uevent): the bare call started
#     in the wakeup of the stick's first uevent, timed from that uevent as watch is. Over the bare
#     call it is what the testbed's plug costs any daemon (umockdev's delivery of the uevent, and
#     the rest of the plug going on during the call, as it does under watch); usbvm over it is
#     what usbvm itself adds (reading the device, its rules, its checks, its threads, its log).
#     Run under tests/harness/ns-run --tmp-in-ram (tests/bench/run does): the testbed's sysfs
#     tree then lives on a tmpfs, as a kernel's does. Last, where usbvm's own time went, from
#     each plug's attach record (steps_usec): the p50 of each step, from the testbed's clock
#     before the first uevent to the arrival of the stick's last uevent before the plan (its
#     event in steps_usec: the first, or a later one read in the same wakeup), the read and
#     the plan, the handoff to the domain's thread, the final checks, libvirt's call (beside the
#     bare call's p50 and that of the call on the first uevent), the record; and the CPU time
#     that watch and the daemon that calls on the first uevent each spend on a plug (until its
#     attach is reported) and on its pull (until its detach is), all threads together (the
#     median of the rounds), which runs on the cores libvirtd and QEMU need.
#  2. The same with 17 running domains (16 more started): the ratio 17/1 shows what the other
#     domains cost per plug (the daemon reads them at start, not per event).
#  3. A burst of 32 sticks (scsi) with 17 domains running: first uevent -> all 32 attached,
#     beside the 32 bare attach calls of the same 32 disks one after the other, in
#     USBVM_BENCH_BURSTS alternating rounds (default 5); the ratio is of the medians.
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
PLUGS=${USBVM_BENCH_PLUGS:-50}
BURSTS=${USBVM_BENCH_BURSTS:-5}
ROUNDS=${USBVM_BENCH_ROUNDS:-5}
WARMUP=${USBVM_BENCH_WARMUP:-1}
RAW=$USBVM_BUILDDIR/tests/bench/bench-attach-raw
[ -x "$RAW" ] || usbvm_h_fail "$RAW is not built"

dom=$(usbvm_h_domain_create dombench)
usbvm_h_domain_track "$dom"
rules=$USBVM_H_TMP/bench.rules
printf 'attach serial "DB1" to %s as usb-disk\nattach with-interface 08:06:50 to %s as scsi\n' \
    "$dom" "$dom" >"$rules"
wl_stick a 1-2 DB1
stick=$WL_FILE

bw_open
attach_re='"event":"attach".*"result":"ok"'
detach_re='"event":"detach".*"result":"ok"'
steps_re='"steps_usec":\{"event":([0-9]+),"planned":([0-9]+),"started":([0-9]+),"called":([0-9]+),"answered":([0-9]+)\}'
# cpu_usec PID : sets CPU_US to the CPU time all of PID's threads have used so far, in
# microseconds (no subshell: it runs between the steps of a plug).
cpu_usec() {
    local t ns
    CPU_US=0
    for t in /proc/"$1"/task/*/schedstat; do
        read -r ns _ <"$t" && CPU_US=$((CPU_US + ns / 1000))
    done
}
# cpu_mark PID : sets CPU_PHASE to the CPU time PID used since the last cpu_mark. A round marks
# once its attach is reported (the plug's phase: from the last detach on) and once its detach
# is (the pull's); its first plug and pull, whose phases span from another process's, are not
# counted.
CPU_AT=0
cpu_mark() {
    cpu_usec "$1"
    CPU_PHASE=$((CPU_US - CPU_AT))
    CPU_AT=$CPU_US
}
stats() {
    sort -n "$1" | awk '{v[NR]=$1} END {
        printf "%.2f %.2f\n", v[int((NR-1)*0.50)+1]/1000, v[int((NR-1)*0.99)+1]/1000 }'
}
# medians FILE : the median of each column of FILE, on one line.
medians() {
    local col
    for col in $(seq 1 "$(awk 'NR == 1 {print NF}' "$1")"); do
        awk -v c="$col" '{print $c}' "$1" | sort -n | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'
    done | paste -s -d ' '
}

# Each round starts a watch (or a bare-call process) anew: its first attach reads the domain
# and connects, which a running daemon did long before. Each round makes one more attach than it
# counts, and drops its first, on both sides.
#
# watch_round TAG N : N+1 plugs under watch; each plug's latency from the first uevent and from
# the last "add". The first one also keeps the attached disk's XML for the bare calls.
watch_round() {
    local tag=$1 n=$2 t1 alias i plug_cpu=0 pull_cpu=0
    : >"$WL_LOG"
    wl_watch_start "$rules"
    bw_reopen
    for i in $(seq 0 "$n"); do
        bw_plug "$stick"
        bw_next "$attach_re"
        [[ $BW_LINE =~ \"mono_usec\":([0-9]+) ]] || usbvm_h_fail "no mono_usec in: $BW_LINE"
        t1=${BASH_REMATCH[1]}
        bw_plugged
        cpu_mark "$WL_WATCH_PID"
        if [ "$i" -gt 0 ]; then plug_cpu=$((plug_cpu + CPU_PHASE)); fi
        if [ "$i" -gt 0 ]; then
            echo $((t1 - BW_T0)) >>"$USBVM_H_TMP/lat-$tag"
            echo $((t1 - BW_TC)) >>"$USBVM_H_TMP/latc-$tag"
            [[ $BW_LINE =~ $steps_re ]] || usbvm_h_fail "no steps_usec in: $BW_LINE"
            # delivery, read and plan, handoff, checks, libvirt's call, record
            echo "$((BASH_REMATCH[1] - BW_T0)) $((BASH_REMATCH[2] - BASH_REMATCH[1]))" \
                "$((BASH_REMATCH[3] - BASH_REMATCH[2])) $((BASH_REMATCH[4] - BASH_REMATCH[3]))" \
                "$((BASH_REMATCH[5] - BASH_REMATCH[4])) $((t1 - BASH_REMATCH[5]))" \
                >>"$USBVM_H_TMP/steps-$tag"
        fi
        if [ ! -s "$USBVM_H_TMP/disk.xml" ]; then
            alias=$(jq -r .alias <<<"$BW_LINE")
            echo "$alias" >"$USBVM_H_TMP/disk.alias"
            bw_disk_xml "$dom" "$alias" "$USBVM_H_TMP/disk.xml"
        fi
        wl_unplug 1-2 >/dev/null
        bw_next "$detach_re"
        cpu_mark "$WL_WATCH_PID"
        if [ "$i" -gt 0 ]; then pull_cpu=$((pull_cpu + CPU_PHASE)); fi
    done
    echo "$((plug_cpu / n)) $((pull_cpu / n))" >>"$USBVM_H_TMP/cpu-$tag"
    wl_watch_stop >/dev/null
}

# raw_round TAG N [cycle|listen-cycle] : N+1 bare attach calls (each then detached).
raw_round() {
    local cmd=${3:-cycle} out=$USBVM_H_TMP/raw-$1
    [ "$cmd" = cycle ] || out=$USBVM_H_TMP/listen-$1
    "$RAW" "$cmd" "$USBVM_H_URI" "$dom" "$USBVM_H_TMP/disk.xml" \
        "$(cat "$USBVM_H_TMP/disk.alias")" $(($2 + 1)) | awk 'NR > 1 {print $1}' >>"$out"
}

# floor_round TAG N : N+1 plugs, each answered by the bare call started on the stick's first
# uevent (bench-attach-raw on-uevent, run as watch runs: umockdev's preload, the same queue);
# each plug's latency from the first uevent to the call's return.
floor_round() {
    local out=$USBVM_H_TMP/floor-$1 i plug_cpu=0 pull_cpu=0
    bw_floor_start "$dom" "$USBVM_H_TMP/disk.xml" "$(cat "$USBVM_H_TMP/disk.alias")"
    for i in $(seq 0 "$2"); do
        bw_floor_plug "$stick"
        cpu_mark "$BW_FLOOR_PID"
        if [ "$i" -gt 0 ]; then
            plug_cpu=$((plug_cpu + CPU_PHASE))
            echo $((BW_FLOOR_DONE - BW_T0)) >>"$out"
            echo "$BW_FLOOR_CALL" >>"$out-call" # the call's own time
        fi
        bw_floor_pull 1-2
        cpu_mark "$BW_FLOOR_PID"
        if [ "$i" -gt 0 ]; then pull_cpu=$((pull_cpu + CPU_PHASE)); fi
    done
    echo "$((plug_cpu / $2)) $((pull_cpu / $2))" >>"$USBVM_H_TMP/floorcpu-$1"
    bw_floor_stop
}

# plugraw_round TAG N : N+1 bare calls, each amid a plug of the testbed's stick (no watch).
plugraw_round() {
    local out=$USBVM_H_TMP/plugraw-$1 i line in pid
    coproc RAWP { "$RAW" step-cycle "$USBVM_H_URI" "$dom" "$USBVM_H_TMP/disk.xml" \
        "$(cat "$USBVM_H_TMP/disk.alias")"; }
    for i in $(seq 0 "$2"); do
        bw_plug "$stick"
        bw_plugged
        echo go >&"${RAWP[1]}"
        IFS= read -r -t 60 -u "${RAWP[0]}" line || usbvm_h_fail "bench-attach-raw step-cycle did not answer"
        if [ "$i" -gt 0 ]; then echo "${line%% *}" >>"$out"; fi
        wl_unplug 1-2 >/dev/null
    done
    in=${RAWP[1]}
    pid=$RAWP_PID
    exec {in}>&- # EOF: the tool ends
    wait "$pid" || usbvm_h_fail "bench-attach-raw step-cycle failed"
}

# latency TAG : PLUGS plugs under watch and as many bare calls of the same XML, in ROUNDS
# rounds; prints a line.
latency() {
    local tag=$1 lat=$USBVM_H_TMP/lat-$1 latc=$USBVM_H_TMP/latc-$1 raw=$USBVM_H_TMP/raw-$1
    local per=$(((PLUGS + ROUNDS - 1) / ROUNDS)) round
    for _ in $(seq 1 "$WARMUP"); do
        watch_round "warmup-$tag" "$per"
        raw_round "warmup-$tag" "$per"
        raw_round "warmup-$tag" "$per" listen-cycle
        plugraw_round "warmup-$tag" "$per"
        floor_round "warmup-$tag" "$per"
    done
    for round in $(seq 1 "$ROUNDS"); do
        if [ $((round % 2)) = 1 ]; then
            watch_round "$tag" "$per"
            raw_round "$tag" "$per"
            raw_round "$tag" "$per" listen-cycle
            plugraw_round "$tag" "$per"
            floor_round "$tag" "$per"
        else
            floor_round "$tag" "$per"
            plugraw_round "$tag" "$per"
            raw_round "$tag" "$per" listen-cycle
            raw_round "$tag" "$per"
            watch_round "$tag" "$per"
        fi
    done
    read -r u50 u99 < <(stats "$lat")
    read -r r50 r99 < <(stats "$raw")
    printf '%-12s usbvm p50 %7s p99 %7s | raw p50 %7s p99 %7s | ratio p50 %.3f p99 %.2f\n' \
        "$tag" "$u50" "$u99" "$r50" "$r99" "$(awk -v a="$u50" -v b="$r50" 'BEGIN{print a/b}')" \
        "$(awk -v a="$u99" -v b="$r99" 'BEGIN{print a/b}')"
    echo "$u50 $u99 $r50 $r99" >"$USBVM_H_TMP/sum-$tag"
    # The testbed sends the stick's uevents one by one, each through umockdev's sockets, where
    # the kernel announces a device in microseconds: the same plugs, timed from the last "add".
    read -r c50 c99 < <(stats "$latc")
    printf '%-12s from the whole device announced: usbvm p50 %7s p99 %7s | ratio p50 %.3f p99 %.2f\n' \
        "$tag" "$c50" "$c99" "$(awk -v a="$c50" -v b="$r50" 'BEGIN{print a/b}')" \
        "$(awk -v a="$c99" -v b="$r99" 'BEGIN{print a/b}')"
    read -r l50 l99 < <(stats "$USBVM_H_TMP/listen-$tag")
    printf '%-12s bare call with an event listener: p50 %7s p99 %7s (%.3f x the bare call) | usbvm over it: ratio p50 %.3f p99 %.2f\n' \
        "$tag" "$l50" "$l99" "$(awk -v a="$l50" -v b="$r50" 'BEGIN{print a/b}')" \
        "$(awk -v a="$u50" -v b="$l50" 'BEGIN{print a/b}')" "$(awk -v a="$u99" -v b="$l99" 'BEGIN{print a/b}')"
    read -r p50 p99 < <(stats "$USBVM_H_TMP/plugraw-$tag")
    printf '%-12s bare call amid the same plug: p50 %7s p99 %7s (%.3f x the bare call) | usbvm over it: ratio p50 %.3f p99 %.2f\n' \
        "$tag" "$p50" "$p99" "$(awk -v a="$p50" -v b="$r50" 'BEGIN{print a/b}')" \
        "$(awk -v a="$u50" -v b="$p50" 'BEGIN{print a/b}')" "$(awk -v a="$u99" -v b="$p99" 'BEGIN{print a/b}')"
    read -r f50 f99 < <(stats "$USBVM_H_TMP/floor-$tag")
    printf '%-12s the bare call on the first uevent: p50 %7s p99 %7s (%.3f x the bare call) | usbvm over it: ratio p50 %.3f p99 %.2f\n' \
        "$tag" "$f50" "$f99" "$(awk -v a="$f50" -v b="$r50" 'BEGIN{print a/b}')" \
        "$(awk -v a="$u50" -v b="$f50" 'BEGIN{print a/b}')" "$(awk -v a="$u99" -v b="$f99" 'BEGIN{print a/b}')"
    # Where usbvm's plugs spent their time, from their attach records' steps_usec: the p50 of
    # each step on its own (they do not add up to the p50 of the whole).
    read -r s1 s2 s3 s4 s5 s6 < <(medians "$USBVM_H_TMP/steps-$tag")
    read -r fc50 _ < <(stats "$USBVM_H_TMP/floor-$tag-call")
    printf '%-12s usbvm steps p50 us: uevent delivery %d, read+plan %d, to its thread %d, checks %d, libvirt call %d (%.2f x the bare call, %.2f x the call on the first uevent), record %d\n' \
        "$tag" "$s1" "$s2" "$s3" "$s4" "$s5" "$(awk -v a="$s5" -v b="$r50" 'BEGIN{print a/b/1000}')" \
        "$(awk -v a="$s5" -v b="$fc50" 'BEGIN{print a/b/1000}')" "$s6"
    # The CPU each spends on a plug and on its pull (every thread; the plug until its attach is
    # reported, the pull until its detach is), the median of the rounds: what runs beside
    # libvirtd and QEMU while they work, on the same cores.
    read -r up uu < <(medians "$USBVM_H_TMP/cpu-$tag")
    read -r fp fu < <(medians "$USBVM_H_TMP/floorcpu-$tag")
    printf '%-12s CPU per plug and pull: usbvm %d us (plug %d, pull %d), the daemon that calls on the first uevent %d us (plug %d, pull %d)\n' \
        "$tag" $((up + uu)) "$up" "$uu" $((fp + fu)) "$fp" "$fu"
}

echo "== 1. one running domain, $PLUGS plugs"
latency 1-domain
echo "== 2. seventeen running domains, $PLUGS plugs"
for i in $(seq 1 16); do
    d=$(usbvm_h_domain_create "extra$i")
    usbvm_h_domain_track "$d"
done
latency 17-domains
read -r a50 a99 ra50 _ <"$USBVM_H_TMP/sum-1-domain"
read -r b50 b99 rb50 _ <"$USBVM_H_TMP/sum-17-domains"
# 17 TCG guests on the same cores slow libvirtd and QEMU too: the bare call's own 17/1 says by
# how much, and usbvm's ratio divided by it is what the 16 more domains cost usbvm itself.
awk -v a="$a50" -v b="$b50" -v c="$a99" -v d="$b99" -v ra="$ra50" -v rb="$rb50" \
    'BEGIN{printf "17 domains / 1 domain: p50 %.3f, p99 %.3f; bare call p50 %.3f; usbvm over the bare call'"'"'s own 17/1: p50 %.3f\n", b/a, d/c, rb/ra, (b/a)/(rb/ra)}'

echo "== 3. burst of 32 sticks (scsi), 17 domains running, $BURSTS rounds"
# Each round: watch attaches the 32 (first uevent -> last attached), they are pulled, then the
# bare calls attach the same 32 disks one after the other and detach them. Rounds alternate
# the two, so that a slow moment of the machine does not land on one side only; the first
# round's watch also adds the virtio-scsi controller, which stays for the rest.
bw_burst_prepare
xmls=()
for round in $(seq 1 "$BURSTS"); do
    wl_watch_start "$rules"
    bw_reopen
    bw_burst_plug
    echo "$BW_BURST_US" >>"$USBVM_H_TMP/burst-usbvm"
    if [ ${#xmls[@]} = 0 ]; then
        # The same 32 disks for the baseline: what usbvm attached, with the drive addresses it
        # chose (without them libvirt adds a controller per 7 disks).
        xml=$(usbvm_h_live_xml "$dom")
        while read -r alias; do
            f=$USBVM_H_TMP/b-$alias.xml
            xmllint --xpath "//disk[alias/@name='$alias']" - <<<"$xml" >"$f"
            xmls+=("$f")
        done < <(grep -o "ua-usbvm-[0-9a-f]*" <<<"$xml" | sort -u)
    fi
    for i in $(seq 1 32); do wl_unplug "3-$i" >/dev/null; done
    for _ in $(seq 1 32); do bw_next "$detach_re"; done
    wl_watch_stop >/dev/null
    raw_us=$("$RAW" attach-all "$USBVM_H_URI" "$dom" "${xmls[@]}")
    echo "$raw_us" >>"$USBVM_H_TMP/burst-raw"
    for f in "${xmls[@]}"; do
        alias=$(basename "$f" .xml)
        "$RAW" detach "$USBVM_H_URI" "$dom" "${alias#b-}" >/dev/null
    done
    awk -v u="$BW_BURST_US" -v r="$raw_us" -v n="$round" 'BEGIN{
        printf "burst round %d: usbvm %.1f ms, raw 32 calls %.1f ms, ratio %.2f\n", n, u/1000, r/1000, u/r }'
done
awk -v u="$(medians "$USBVM_H_TMP/burst-usbvm")" -v r="$(medians "$USBVM_H_TMP/burst-raw")" 'BEGIN{
    printf "burst: usbvm %.1f ms for 32 (first uevent -> last attached), raw 32 calls %.1f ms (medians), ratio %.3f\n",
        u/1000, r/1000, u/r }'
bw_close
