# Shared by the usbvm watch tests: a umockdev testbed (tests/tools/mockbed) that a running
# `usbvm watch` shares, fake sticks backed by real loop devices, and waiting for watch's
# JSON event lines with a timeout. Sourced after tests/harness/libvirt.sh.
#
#   wl_init                        harness + libvirtd + testbed; cleanup on exit
#   wl_stick TAG PORT SERIAL [fixture options]   sets WL_FILE and WL_LOOP
#   wl_plug FILE / wl_unplug PORT  plug/pull through uevents; both wait for mockbed's answer
#   wl_watch_start RULESFILE [watch options]; wl_watch_stop; wl_watch_kill
#   wl_listener COMMAND [ARG...]   execs COMMAND as watch runs: umockdev's preload, a deep queue
#   wl_wait REGEX [COUNT] [TIMEOUT]  waits until COUNT lines of the watch log match REGEX
#   wl_owned DOMAIN                  number of ua-usbvm- devices in DOMAIN's live XML

# shellcheck source=../harness/libvirt.sh
source "$USBVM_SRCDIR/tests/harness/libvirt.sh"

WL_MOCKBED_PID=
WL_WATCH_PID=
WL_LOG=
WL_STICK_DEVNUM=10
WL_WRAP=()
WL_GLOBAL=() # global options for usbvm watch, e.g. (-vv) for its debug lines
WL_HOSTN=100

wl_cleanup() {
    set +e
    trap '' PIPE # mockbed may be gone already: writing to its FIFO must not end the cleanup
    if [ -n "$WL_WATCH_PID" ]; then
        kill -TERM "$WL_WATCH_PID" 2>/dev/null
        wait "$WL_WATCH_PID" 2>/dev/null
    fi
    if [ -n "$WL_MOCKBED_PID" ]; then
        echo quit >&"$WL_IN" 2>/dev/null
        kill -TERM "$WL_MOCKBED_PID" 2>/dev/null
        wait "$WL_MOCKBED_PID" 2>/dev/null
    fi
    [ -n "${UMOCKDEV_DIR:-}" ] && rm -rf "$UMOCKDEV_DIR"
    if [ "${USBVM_H_FAILED:-0}" != 0 ] || [ "${WL_RC:-0}" != 0 ]; then
        [ -n "$WL_LOG" ] && [ -f "$WL_LOG" ] && { echo "---- watch log"; cat "$WL_LOG"; } >&2
        [ -n "$WL_LOG" ] && [ -f "$WL_LOG.err" ] && { echo "---- watch stderr"; cat "$WL_LOG.err"; } >&2
    fi
}

wl_init() {
    usbvm_h_init
    usbvm_h_require jq
    [ -x "${USBVM_MOCKBED:-}" ] || usbvm_h_fail "USBVM_MOCKBED (tests/tools/mockbed) is not built"
    trap 'WL_RC=$?; wl_cleanup; (exit $WL_RC); usbvm_h_cleanup' EXIT
    usbvm_h_libvirtd_start
    WL_LOG=$USBVM_H_TMP/watch.log
    # Both directions are FIFOs, so every read blocks until mockbed answers (bounded by -t).
    mkfifo "$USBVM_H_TMP/mockbed.in" "$USBVM_H_TMP/mockbed.out"
    umockdev-wrapper "$USBVM_MOCKBED" <"$USBVM_H_TMP/mockbed.in" >"$USBVM_H_TMP/mockbed.out" \
        2>"$USBVM_H_TMP/mockbed.err" &
    WL_MOCKBED_PID=$!
    exec {WL_IN}>"$USBVM_H_TMP/mockbed.in"
    exec {WL_OUT}<"$USBVM_H_TMP/mockbed.out"
    local line=""
    IFS= read -r -t "$USBVM_H_TIMEOUT" -u "$WL_OUT" line || true
    [[ $line == ready\ * ]] || usbvm_h_fail "mockbed did not start: $(cat "$USBVM_H_TMP/mockbed.err")"
    export UMOCKDEV_DIR=${line#ready }
}

# wl_cmd LINE : one mockbed command; prints its reply ("ok <usec>"), fails on "error".
wl_cmd() {
    echo "$1" >&"$WL_IN"
    local line=""
    IFS= read -r -t "$USBVM_H_TIMEOUT" -u "$WL_OUT" line || true
    [[ $line == ok\ * ]] || usbvm_h_fail "mockbed '$1': ${line:-no answer}"
    printf '%s\n' "${line#ok }"
}

# wl_stick TAG PORT SERIAL [usbvm_h_fixture_usb_stick options] : a loop-backed stick. Sets
# WL_FILE (the fixture without its root hub: wl_plug loads the hub once per bus) and WL_LOOP.
# Call it in the test's own shell, not in $(...), so the loop device is cleaned up.
wl_stick() {
    local tag=$1 port=$2 serial=$3
    shift 3
    local loop full
    loop=$(usbvm_h_loop_create 16M)
    usbvm_h_loop_track "$loop"
    WL_STICK_DEVNUM=$((WL_STICK_DEVNUM + 1))
    full=$(usbvm_h_fixture_usb_stick --port "$port" --devnum "$WL_STICK_DEVNUM" --loop "$loop" \
        --serial "$serial" --disk "sd$tag" --out "$USBVM_H_TMP/stick-$tag.full" "$@")
    # A SCSI host number of its own, so that many sticks can share one testbed.
    local old
    old=$(grep -o -m1 '/host[0-9]*/' "$full" | tr -dc 0-9)
    WL_HOSTN=$((WL_HOSTN + 1))
    sed -i -e "s#/host$old/#/host$WL_HOSTN/#g" -e "s#/host$old\$#/host$WL_HOSTN#" \
        -e "s#/target$old:0:0#/target$WL_HOSTN:0:0#g" -e "s#/$old:0:0:0#/$WL_HOSTN:0:0:0#g" "$full"
    awk 'BEGIN{RS=""; ORS="\n\n"} NR==1{print > (FILENAME ".hub"); next} {print}' \
        "$full" >"$USBVM_H_TMP/stick-$tag.umockdev"
    WL_FILE=$USBVM_H_TMP/stick-$tag.umockdev
    WL_LOOP=$loop
}

# wl_plug FILE [plugt] : loads its bus's root hub first if needed; prints the uevent time (usec);
# with plugt, also the time right after the last "add" went out (see tests/tools/mockbed.c).
wl_plug() {
    wl_hub "$1"
    wl_cmd "${2:-plug} $1"
}

# wl_hub FILE : loads the root hub of FILE's bus unless the testbed has it; starts no process.
wl_hub() {
    local hub=${1%.umockdev}.full.hub line
    IFS= read -r line <"$hub" # the hub's own record comes first: "P: /devices/.../usbN"
    # Asked of the testbed itself, so it also works from a $(...) subshell.
    [ -d "$UMOCKDEV_DIR/sys${line#P: }" ] || wl_cmd "load $hub" >/dev/null
}

# wl_unplug PORT : "remove" for the device at bus 1 port PORT and everything below it.
wl_unplug() {
    local bus=${1%%-*}
    wl_cmd "unplug /sys/devices/pci0000:00/0000:00:14.0/usb$bus/$1"
}

# wl_listener COMMAND [ARG...] : runs COMMAND (in its place: exec) as a listener to the testbed's
# uevents. umockdev delivers uevents over AF_UNIX datagram sockets, whose queue holds only
# net.unix.max_dgram_qlen (10 here) messages, where a kernel netlink socket with usbvm's 128 MiB
# buffer holds a burst of hundreds. The command runs in a network namespace of its own
# (libvirt's socket is a path, so it still connects) with a queue of 4096, leaving the host's
# setting alone. Run in the background, $! is the command's pid.
wl_listener() {
    # shellcheck disable=SC2016
    LD_PRELOAD=libumockdev-preload.so.0 exec unshare -n sh -c \
        'echo 4096 >/proc/sys/net/unix/max_dgram_qlen && exec "$@"' sh "$@"
}

# wl_watch_start RULES [watch options] : starts usbvm watch on the testbed (JSON lines; with
# WL_TEXT=1 the human text lines) and waits until it is ready.
wl_watch_start() {
    local rules=$1 fmt=(--json) ready='"event":"ready"'
    shift
    if [ "${WL_TEXT:-0}" = 1 ]; then
        fmt=()
        ready='^ready: watching'
    fi
    : >"$WL_LOG"
    # WL_WRAP (an array) runs usbvm under another program, e.g. valgrind.
    wl_listener "${WL_WRAP[@]}" "$USBVM" -c "$USBVM_H_URI" "${WL_GLOBAL[@]}" watch "${fmt[@]}" \
        --rules "$rules" "$@" >>"$WL_LOG" 2>>"$WL_LOG.err" &
    WL_WATCH_PID=$!
    wl_wait "$ready" 1
}

wl_watch_stop() {
    kill -TERM "$WL_WATCH_PID"
    local rc=0
    wait "$WL_WATCH_PID" || rc=$?
    WL_WATCH_PID=
    usbvm_h_assert_eq 0 "$rc" "watch exits 0 on SIGTERM"
}

wl_watch_kill() {
    kill -KILL "$WL_WATCH_PID"
    wait "$WL_WATCH_PID" 2>/dev/null || true
    WL_WATCH_PID=
}

# wl_wait REGEX [COUNT] [TIMEOUT] : waits until COUNT lines of the watch log match REGEX
# (counting from the start of the log). Follows the file with tail -f (inotify), no sleeps.
wl_wait() {
    local re=$1 want=${2:-1} t=${3:-$USBVM_H_TIMEOUT} n=0 line fd tpid
    local deadline=$((SECONDS + t))
    exec {fd}< <(exec tail -n +1 -F "$WL_LOG" 2>/dev/null)
    tpid=$!
    while [ $SECONDS -lt $deadline ]; do
        if IFS= read -r -t $((deadline - SECONDS + 1)) -u "$fd" line; then
            if [[ $line =~ $re ]]; then
                n=$((n + 1))
                if [ $n -ge "$want" ]; then
                    kill "$tpid" 2>/dev/null
                    exec {fd}<&-
                    return 0
                fi
            fi
        fi
    done
    kill "$tpid" 2>/dev/null
    exec {fd}<&-
    usbvm_h_fail "timed out after ${t}s waiting for $want line(s) matching /$re/ (saw $n)"
}

# wl_count REGEX : lines of the watch log matching REGEX so far.
wl_count() { grep -cE -- "$1" "$WL_LOG" || true; }

# wl_owned DOMAIN : ua-usbvm- devices in the domain's live XML.
wl_owned() { usbvm_h_live_xml "$1" | grep -c "alias name='ua-usbvm-" || true; }
