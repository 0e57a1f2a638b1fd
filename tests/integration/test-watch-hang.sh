#!/bin/bash
# usbvm watch when libvirt does not answer. (1) A domain whose QEMU is stopped (SIGSTOP) hangs
# every call on it inside libvirtd: another domain's stick still attaches meanwhile, and the
# first stick attaches once QEMU runs again. (2) libvirtd itself frozen (SIGSTOP) while watch
# waits in a call: SIGTERM still ends watch within 2 s; after SIGCONT a new watch converges.
# (3) watch started while libvirtd is frozen: ready without it, connected once it answers.
# (4) libvirtd frozen with watch running, then continued: watch recovers on its own.
set -euo pipefail
# shellcheck source=watch-lib.sh
source "$USBVM_SRCDIR/tests/integration/watch-lib.sh"
wl_init
WL_GLOBAL=(-vv) # the debug lines say when watch reads a device

STOPPED=()
cont_all() { local p; for p in "${STOPPED[@]}"; do kill -CONT "$p" 2>/dev/null || true; done; }
trap 'WL_RC=$?; cont_all; wl_cleanup; (exit $WL_RC); usbvm_h_cleanup' EXIT

x=$(usbvm_h_domain_create hangx)
usbvm_h_domain_track "$x"
y=$(usbvm_h_domain_create hangy)
usbvm_h_domain_track "$y"
rules=$USBVM_H_TMP/hang.rules
{
    echo "attach serial \"HX1\" to $x as usb-disk"
    echo "attach serial \"HY1\" to $y as usb-disk"
    echo "attach serial \"HL1\" to $y as usb-disk"
    echo "attach serial \"HL2\" to $y as usb-disk"
} >"$rules"
wl_watch_start "$rules"

# ---- (1) a stuck domain holds up no other
qemu=$(cat "/run/libvirt/qemu/$x.pid")
grep -qa "guest=$x" "/proc/$qemu/cmdline" || usbvm_h_fail "no QEMU found for $x"
kill -STOP "$qemu"
STOPPED+=("$qemu")
wl_stick x 1-2 HX1
wl_plug "$WL_FILE" >/dev/null
wl_wait '"event":"plug".*"serial":"HX1"'
# What the stuck call's device hears meanwhile is read once libvirt has answered: a read during
# the call would take the CPU QEMU and libvirtd need for it, and nothing can act on the device
# before the answer anyway.
hx=/sys/devices/pci0000:00/0000:00:14.0/usb1/1-2
wl_wait "\"msg\":\"attach [^\"]* -> $x: asking libvirt\""
hx_reads() { wl_count "\"msg\":\"read $hx: "; }
reads_before=$(hx_reads)
hx_blk=$(find "$UMOCKDEV_DIR$hx" -type d -name sdx | sed "s|^$UMOCKDEV_DIR||")
[ -n "$hx_blk" ] || usbvm_h_fail "no block device sdx below $hx in the testbed"
wl_cmd "uevent $hx_blk change" >/dev/null
wl_wait "\"msg\":\"uevent change block $hx_blk\""
wl_stick y 1-3 HY1
wl_plug "$WL_FILE" >/dev/null
wl_wait '"event":"attach".*"serial":"HY1".*"result":"ok"'
usbvm_h_assert_eq 0 "$(wl_count '"event":"attach".*"serial":"HX1"')" \
    "the stick for the stopped domain is still waiting for libvirt"
ms=$(jq -r 'select(.event=="attach" and .serial=="HY1") | .ms' "$WL_LOG")
usbvm_h_ok "the other domain's stick attached in $ms ms while $x hung"
usbvm_h_assert_eq "$reads_before" "$(hx_reads)" \
    "a uevent of the stuck call's device is not read while the call runs"
kill -CONT "$qemu"
wl_wait '"event":"attach".*"serial":"HX1".*"result":"ok"' 1 60
usbvm_h_assert_eq 1 "$(wl_owned "$x")" "the stuck domain's stick attached once QEMU ran again"
wl_wait "\"msg\":\"read $hx: " $((reads_before + 1))
attached_at=$(grep -nE '"event":"attach".*"serial":"HX1".*"result":"ok"' "$WL_LOG" | cut -d: -f1)
read_at=$(grep -nE "\"msg\":\"read $hx: " "$WL_LOG" | tail -n 1 | cut -d: -f1)
usbvm_h_assert_eq yes "$([ "$read_at" -gt "$attached_at" ] && echo yes || echo no)" \
    "the read it asked for follows the answer's record (line $read_at after $attached_at)"

# ---- (2) libvirtd frozen in the middle of a call: SIGTERM still ends watch
# The daemon that serves the socket: the harness's, else the one libvirtd's own pid file names.
# Not "the oldest process called libvirtd": where PID 1 does not reap, a libvirtd killed by an
# earlier test stays behind as a zombie of that name, and stopping it freezes nothing.
lvd=$(usbvm_h_libvirtd_pid || true)
[ -n "$lvd" ] || lvd=$(cat /run/libvirtd.pid 2>/dev/null || true)
[ -n "$lvd" ] && [ "$(cat "/proc/$lvd/comm" 2>/dev/null)" = libvirtd ] ||
    usbvm_h_fail "cannot find the libvirtd that serves $USBVM_H_URI (pid '${lvd}')"
freeze_libvirtd() {
    local state
    state=$(awk '{print $3}' "/proc/$lvd/stat")
    [ "$state" != Z ] || usbvm_h_fail "libvirtd $lvd is a zombie"
    kill -STOP "$lvd"
}
freeze_libvirtd
STOPPED+=("$lvd")
wl_stick l 1-4 HL1
wl_plug "$WL_FILE" >/dev/null
wl_wait '"event":"plug".*"serial":"HL1"'
t0=$(date +%s%N)
kill -TERM "$WL_WATCH_PID"
usbvm_h_wait_exit "$WL_WATCH_PID" 2 || usbvm_h_fail "watch did not exit within 2 s of SIGTERM"
t1=$(date +%s%N)
rc=0
wait "$WL_WATCH_PID" || rc=$?
WL_WATCH_PID=
usbvm_h_assert_eq 0 "$rc" "watch exits 0 on SIGTERM while libvirtd is frozen"
usbvm_h_ok "watch ended $(((t1 - t0) / 1000000)) ms after SIGTERM"
kill -CONT "$lvd"
wl_watch_start "$rules"
# The frozen call may have gone through once libvirtd continued; either way HL1 ends in y.
if [ "$(wl_owned "$y")" != 2 ]; then
    wl_wait '"event":"attach".*"serial":"HL1".*"result":"ok"' 1 60
fi
usbvm_h_assert_eq 2 "$(wl_owned "$y")" "after SIGCONT a new watch converged: HY1 and HL1 in $y"

# ---- (3) watch started while libvirtd is frozen: the connect is bounded, watch gets ready
# (watching devices) and connects once libvirtd answers.
wl_watch_stop
freeze_libvirtd
wl_watch_start "$rules"
wl_wait 'libvirtd has not answered'
kill -CONT "$lvd"
wl_wait '"event":"connected"' 1 60
usbvm_h_ok "started against a frozen libvirtd: ready without it, connected once it answered"

# ---- (4) libvirtd frozen and continued under a running watch
freeze_libvirtd
wl_stick m 1-5 HL2
wl_plug "$WL_FILE" >/dev/null
wl_wait '"event":"plug".*"serial":"HL2"'
kill -CONT "$lvd"
wl_wait '"event":"attach".*"serial":"HL2".*"result":"ok"' 1 60
usbvm_h_assert_eq 3 "$(wl_owned "$y")" "watch recovered after libvirtd continued: three sticks in $y"
wl_watch_stop
