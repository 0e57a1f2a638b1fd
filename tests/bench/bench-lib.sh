# shellcheck shell=bash disable=SC2034 # the BW_ variables it sets are for the scripts that source it
# Shared by the watch benchmarks (sourced after tests/integration/watch-lib.sh): one reader
# that follows watch's log, and a burst of 32 sticks.
#
#   bw_open / bw_close        follow (again) the log's attach and detach lines from its first
#   bw_reopen                 bw_close and bw_open, after a new watch truncated the log
#   bw_next REGEX             waits for the next matching line; sets BW_LINE
#   bw_plug FILE              plugs FILE (wl_plug's plugt) without starting a process or
#                             reading mockbed's answer
#   bw_plugged                reads that answer, once the plug is timed; sets BW_T0 (first
#                             uevent) and BW_TC (last "add")
#   bw_burst                  plugs 32 sticks (ports 3-1..3-32) at once and waits until all
#                             are attached; sets BW_BURST_US (first uevent -> last attached)
#   bw_burst_prepare, bw_burst_plug   the same in two steps: makes the 32 sticks once, then
#                             plugs them (again after they were unplugged)
#   bw_disk_xml DOMAIN ALIAS OUT   writes the live XML of DOMAIN's disk ALIAS, its address
#                             dropped, to OUT: what the bare calls attach
#   bw_floor_start DOMAIN XMLFILE ALIAS   starts the floor under any daemon (bench-attach-raw
#                             on-uevent, run as watch runs: umockdev's preload); sets
#                             BW_FLOOR_PID
#   bw_floor_plug FILE        plugs FILE and waits for the floor's answer; sets BW_T0 and
#                             BW_TC (bw_plugged), BW_FLOOR_DONE (the call's return, the testbed's
#                             clock) and BW_FLOOR_CALL (the call's own time, us)
#   bw_floor_pull PORT        pulls PORT and waits until the floor has detached it
#   bw_floor_stop             ends the floor (EOF on its stdin) and checks that it exited 0

# While a plug is timed, the benchmark itself must take no CPU from watch, libvirtd and QEMU on
# the two cores (the bare call runs with nothing beside it). bash reads a pipe a byte at a time:
# a grep (one wakeup per line) keeps the plug record and watch's other lines from it, so the
# shell wakes once per plug, at the attach record that ends the timing.
bw_open() {
    exec {BW_FD}< <(tail -n +1 -F "$WL_LOG" 2>/dev/null |
        exec grep --line-buffered -E '"event":"(attach|detach)"')
    BW_TAIL=$!
}

bw_close() {
    exec {BW_FD}<&-
    pkill -P "$BW_TAIL" 2>/dev/null || true # tail and grep, then their shell
    kill "$BW_TAIL" 2>/dev/null || true
}

# After a new watch truncated the log: follow it again from its start. tail -F notices a
# truncation only when it next looks at the file; if the new log has grown past the old one's
# length by then (32 sticks' records in a burst, on a busy machine), it reads on from the old
# offset and the records before it never reach the reader.
bw_reopen() {
    bw_close
    bw_open
}

# Neither a $(...) nor a < <(...): each forks a shell while watch works on the plug. Nor is
# mockbed's answer read then: bash reads a pipe a byte at a time, and the answer comes while
# watch reads the device (0.27 ms of bash on the core watch needed, in a scheduler trace).
bw_plug() {
    wl_hub "$1"
    BW_PLUGGED=$1
    echo "plugt $1" >&"$WL_IN"
}

bw_plugged() {
    local line
    IFS= read -r -t "$USBVM_H_TIMEOUT" -u "$WL_OUT" line || true
    [[ $line =~ ^ok\ ([0-9]+)\ ([0-9]+)$ ]] ||
        usbvm_h_fail "mockbed 'plugt $BW_PLUGGED': ${line:-no answer}"
    BW_T0=${BASH_REMATCH[1]}
    BW_TC=${BASH_REMATCH[2]}
}

bw_next() {
    local re=$1 line
    while IFS= read -r -t 60 -u "$BW_FD" line; do
        if [[ $line =~ $re ]]; then
            BW_LINE=$line
            return 0
        fi
    done
    usbvm_h_fail "timed out waiting for /$re/"
}

bw_burst_prepare() {
    local letters=(a b c d e f g h i j k l m n o p q r s t u v w x y z) i
    BW_BURST_FILE=$USBVM_H_TMP/burst.umockdev
    : >"$BW_BURST_FILE"
    for i in $(seq 1 32); do
        wl_stick "${letters[$((1 + (i - 1) / 26))]}${letters[$(((i - 1) % 26))]}" "3-$i" "BURST$i"
        cat "$WL_FILE" >>"$BW_BURST_FILE"
    done
    wl_cmd "load ${WL_FILE%.umockdev}.full.hub" >/dev/null
}

bw_burst_plug() {
    local t0 last=0 line n=0 pid
    # Nothing of the benchmark's may run while the burst is timed (the calls it is compared
    # with run alone): the shell reading each attach record as it came, a byte at a time, took
    # CPU from libvirtd and QEMU 32 times per burst. A head, started before the plug, keeps the
    # 32 records and wakes the shell once, at the end.
    timeout 60 head -n 32 <&"$BW_FD" >"$USBVM_H_TMP/burst.records" &
    pid=$!
    echo "plug $BW_BURST_FILE" >&"$WL_IN"
    wait "$pid" || usbvm_h_fail "not every stick of the burst was attached within 60 s"
    while IFS= read -r line; do
        [[ $line =~ \"event\":\"attach\".*\"result\":\"ok\" && $line =~ \"mono_usec\":([0-9]+) ]] ||
            usbvm_h_fail "a stick of the burst was not attached: $line"
        if ((BASH_REMATCH[1] > last)); then last=${BASH_REMATCH[1]}; fi
        n=$((n + 1))
    done <"$USBVM_H_TMP/burst.records"
    ((n == 32)) || usbvm_h_fail "$n of the burst's 32 sticks attached"
    IFS= read -r -t "$USBVM_H_TIMEOUT" -u "$WL_OUT" line || true
    [[ $line =~ ^ok\ ([0-9]+)$ ]] || usbvm_h_fail "mockbed 'plug $BW_BURST_FILE': ${line:-no answer}"
    t0=${BASH_REMATCH[1]}
    BW_BURST_US=$((last - t0))
}

bw_burst() {
    bw_burst_prepare
    bw_burst_plug
}

bw_disk_xml() {
    usbvm_h_live_xml "$1" | xmllint --xpath "//disk[alias/@name='$2']" - |
        sed -e "s/<address [^>]*\/>//" >"$3"
}

bw_floor_start() {
    local line
    coproc BW_FLOOR { wl_listener "$USBVM_BUILDDIR/tests/bench/bench-attach-raw" on-uevent \
        "$USBVM_H_URI" "$1" "$2" "$3"; }
    IFS= read -r -t 60 -u "${BW_FLOOR[0]}" line || true
    [ "$line" = ready ] || usbvm_h_fail "bench-attach-raw on-uevent did not start"
}

bw_floor_plug() {
    local line
    bw_plug "$1"
    IFS= read -r -t 60 -u "${BW_FLOOR[0]}" line || usbvm_h_fail "bench-attach-raw on-uevent did not attach"
    bw_plugged
    BW_FLOOR_DONE=${line%% *}
    BW_FLOOR_CALL=${line#* }
}

bw_floor_pull() {
    local line
    wl_unplug "$1" >/dev/null
    IFS= read -r -t 60 -u "${BW_FLOOR[0]}" line || true
    [ "$line" = detached ] || usbvm_h_fail "bench-attach-raw on-uevent did not detach"
}

bw_floor_stop() {
    local in=${BW_FLOOR[1]} pid=$BW_FLOOR_PID
    exec {in}>&- # EOF: the tool ends
    wait "$pid" || usbvm_h_fail "bench-attach-raw on-uevent failed"
}
