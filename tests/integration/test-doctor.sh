# usbvm doctor names the cause of each failure staged here for real, with its fix: kernel
# messages written to the real ring buffer (/dev/kmsg) for a fixture's port, a device with
# authorized=0, a mounted disk, domains without a USB controller, with only EHCI and without a
# free root port, a device attached to another domain, a rules file that does not parse, a
# libvirt URI nobody listens at, watch not running, and an AppArmor denial. A healthy set-up
# passes every check (exit 0); any failure exits 8.
set -u
source "$USBVM_SRCDIR/tests/harness/libvirt.sh"
usbvm_h_init
usbvm_h_require mkfs.ext4 mount umount dmesg tail timeout pgrep script usbguard usbguard-daemon
usbvm_h_libvirtd_start
# A usbguard-daemon of the test's own (the child of its umockdev-run), stopped at exit.
ug_wrapper=
doc_cleanup() {
    [ -n "$ug_wrapper" ] || return 0
    local pid
    for pid in $(pgrep -P "$ug_wrapper"); do
        kill -TERM "$pid"
        usbvm_h_wait_exit "$pid" 10 || kill -KILL "$pid"
    done
    wait "$ug_wrapper" 2>/dev/null
    ug_wrapper=
}
trap 'rc=$?; doc_cleanup; (exit $rc); usbvm_h_cleanup' EXIT

good=$(usbvm_h_domain_create doc-good)
usbvm_h_domain_track "$good"
nousb=$(usbvm_h_domain_create doc-nousb --no-usb)
usbvm_h_domain_track "$nousb"
ehci=$(usbvm_h_domain_create doc-ehci --usb "<controller type='usb' model='ich9-ehci1'/>")
usbvm_h_domain_track "$ehci"
# One root port, which the xHCI controller takes (with none, libvirt would add a spare).
full=$(usbvm_h_domain_create doc-full --root-ports 1)
usbvm_h_domain_track "$full"

# The kernel ring buffer outlives test runs: pick a bus, port and device number that no line in
# it names yet, so that old runs cannot make a healthy check fail.
# (The log is read once and whole: dmesg piped into grep -q dies of SIGPIPE on a long log, and
# under pipefail a port the log names looked free.)
kernel_log=$(dmesg)
while :; do
    bus=$((RANDOM % 150 + 100))
    port="$bus-$((RANDOM % 200 + 20))"
    devnum=$((RANDOM % 120 + 2))
    node=$(printf '/dev/bus/usb/%03d/%03d' "$bus" "$devnum")
    grep -qF -e " $port:" -e "usb$bus-port" -e "\"$node\"" <<<"$kernel_log" || break
done
portdev="usb$bus-port${port#*-}"

loop=$(usbvm_h_loop_create 32M)
usbvm_h_loop_track "$loop"
stick() { usbvm_h_fixture_usb_stick --port "$port" --devnum "$devnum" --loop "$loop" "$@"; }
FX=$(stick --serial DOC0001)
uv() { umockdev-run -d "$FX" -- "$USBVM" "$@"; }
check() { jq -r --arg n "$2" '.checks[] | select(.name == $n) | .'"$3" <<<"$1"; }
# expect_fail JSON NAME FOUND_REGEX FIX_REGEX: the check failed, says what, and how to fix it.
expect_fail() {
    usbvm_h_assert_eq false "$(check "$1" "$2" ok)" "$2: the check fails ($(check "$1" "$2" found))"
    usbvm_h_assert_match "$3" "$(check "$1" "$2" found)" "$2: names the cause"
    usbvm_h_assert_match "$4" "$(check "$1" "$2" fix)" "$2: gives the fix"
}
expect_ok() { usbvm_h_assert_eq true "$(check "$1" "$2" ok)" "$2: the check passes ($3)"; }

rules="$USBVM_H_TMP/good.rules"
printf 'attach id 0781:5567 serial "DOC0001" to %s as usb-disk\n' "$good" >"$rules"

# ---- healthy, except that watch does not run ---------------------------------------------
usbvm_h_run out uv doctor "$good" "$port" --rules "$rules" --json
usbvm_h_assert_eq 8 "$out_rc" "a failed check exits 8 ($out_err)"
usbvm_h_assert_eq false "$(usbvm_h_json .changed "$out")" "doctor never changes anything"
usbvm_h_assert_eq true "$(usbvm_h_json .failed "$out")" "failed=true"
usbvm_h_assert_eq 8 "$(usbvm_h_json .rc "$out")" "rc=8"
# Other tests' watches may run on this host, with rules of their own: not ours.
expect_fail "$out" watch "(does not run|runs with other rules .*, none with $rules)" \
    'systemctl enable --now usbvm'
usbvm_h_assert_eq 1 "$(jq '[.checks[] | select(.ok == false)] | length' <<<"$out")" \
    "only watch fails: $(jq -c '[.checks[] | select(.ok == false) | .name]' <<<"$out")"
for c in device kernel-log drivers authorized host-use rules rule libvirt domain usb-controller \
    attached device-node confinement; do
    expect_ok "$out" "$c" healthy
done

# A watch of its own with these rules (on the real udev, where the stick is not: it only has
# to run).
: >"$USBVM_H_TMP/watch.log" # exists before tail follows it
"$USBVM" --json watch --rules "$rules" >>"$USBVM_H_TMP/watch.log" 2>&1 &
watch_pid=$!
timeout "$USBVM_H_TIMEOUT" grep -q -m1 '"event":"ready"' <(tail -f "$USBVM_H_TMP/watch.log") ||
    usbvm_h_fail "watch did not start: $(cat "$USBVM_H_TMP/watch.log")"
usbvm_h_run out uv doctor "$good" "$port" --rules "$rules" --json
usbvm_h_assert_eq 0 "$out_rc" "everything healthy exits 0 ($(jq -c '[.checks[] | select(.ok == false)]' <<<"$out"))"
usbvm_h_assert_eq false "$(usbvm_h_json .failed "$out")" "failed=false"
expect_ok "$out" watch "watch runs"
kill "$watch_pid"
wait "$watch_pid"

# Text: plain ok/FAIL when stdout is not a terminal, the fix under a failure.
usbvm_h_run out uv doctor "$good" "$port" --rules "$rules"
usbvm_h_assert_match $'(^|\n)ok   device' "$out" "text: plain 'ok' off a terminal"
usbvm_h_assert_match $'(^|\n)FAIL watch' "$out" "text: plain 'FAIL'"
usbvm_h_assert_match 'fix: Start the daemon' "$out" "text: the fix under the failure"
usbvm_h_assert_nomatch $'\u2714' "$out" "text: no check marks off a terminal"
# On a terminal (script(1) gives it one) with a UTF-8 locale: check marks.
usbvm_h_run out env LANG=C.UTF-8 LC_ALL=C.UTF-8 script -qec \
    "umockdev-run -d '$FX' -- '$USBVM' doctor '$good' '$port' --rules '$rules'" /dev/null
usbvm_h_assert_match $'\u2714 device' "$out" "terminal: a check mark for a passing check"
usbvm_h_assert_match $'\u2718 watch' "$out" "terminal: a cross for a failing check"

# A hostile device string (an escape sequence in the manufacturer) is escaped in the text.
FXH=$(stick --serial DOC0001 --manufacturer $'\e]0;owned\a\e[31mEvil')
usbvm_h_run out umockdev-run -d "$FXH" -- "$USBVM" doctor "$port" --rules "$rules"
usbvm_h_assert_match 'device +[0-9-]+ 0781:5567 \\x1b\]0;owned\\x07\\x1b\[31mEvil' "$out" \
    "text: the device's name, escaped"
usbvm_h_assert_nomatch $'[\e\a]' "$out" "text: no raw control byte from a device string"

# ---- kernel log: the real ring buffer, lines written after the healthy run ----------------
printf '<6>usbvm-test: doctor marker %s\n' "$$" >/dev/kmsg
printf '<3>usb %s: device descriptor read/64, error -71\n' "$port" >/dev/kmsg
printf '<3>usb %s: device not accepting address %s, error -71\n' "$port" "$devnum" >/dev/kmsg
printf '<3>usb %s: unable to enumerate USB device\n' "$portdev" >/dev/kmsg
usbvm_h_run out uv doctor "$port" --json
expect_fail "$out" kernel-log 'cable or port problem' 'another cable and another port'
usbvm_h_assert_match "usb $port: device not accepting address $devnum, error -71" \
    "$(check "$out" kernel-log 'log | join("\n")')" "the log lines are quoted"
usbvm_h_assert_eq 3 "$(check "$out" kernel-log 'log | length')" "only this port's lines"

printf '<3>usb %s: over-current condition\n' "$portdev" >/dev/kmsg
for i in 1 2 3; do
    printf '<6>usb %s: reset high-speed USB device number %s using xhci_hcd\n' "$port" "$devnum" >/dev/kmsg
done
# A device string in a kernel line: the kernel escapes it, doctor escapes it again for the
# terminal; no raw control byte reaches stdout.
printf '<3>usb %s: device descriptor read/8, error -71 \033[31mEVIL\n' "$port" >/dev/kmsg
usbvm_h_run out uv doctor "$port" --json
expect_fail "$out" kernel-log 'power problem: the port reports over-current' 'powered hub'
usbvm_h_assert_match '3 resets' "$(check "$out" kernel-log found)" "repeated resets are named"
usbvm_h_run out uv doctor "$port"
usbvm_h_assert_eq 8 "$out_rc" "text: a failure exits 8"
usbvm_h_assert_match $'(^|\n)FAIL kernel-log +port' "$out" "text: the kernel-log failure"
usbvm_h_assert_match "\\| \\[ *[0-9]+\\.[0-9]+\\] usb $portdev: over-current condition" "$out" \
    "text: the over-current line is quoted"
usbvm_h_assert_nomatch $'\033' "$out" "text: no raw escape byte from a log line"

# A port where nothing answers: the kernel log is still read.
usbvm_h_run out uv doctor "$bus-250" --json
expect_fail "$out" device "no device at port $bus-250" 'did not enumerate'

# ---- authorisation -------------------------------------------------------------------------
FX0=$(stick --serial DOC0001 --authorized 0)
usbvm_h_run out umockdev-run -d "$FX0" -- "$USBVM" doctor "$port" --json
expect_fail "$out" authorized 'authorized=0' "echo 1 > /sys/bus/usb/devices/$port/authorized"

# USBGuard runs (its own daemon, in the fixture's testbed; this host has no real USB for it
# to block): doctor names the rule that blocks the device.
ug=$USBVM_H_TMP/usbguard
mkdir -p "$ug"
printf 'RuleFile=%s/rules.conf\nImplicitPolicyTarget=block\nPresentDevicePolicy=keep\nIPCAllowedUsers=root\nAuditBackend=FileAudit\nAuditFilePath=%s/audit.log\n' \
    "$ug" "$ug" >"$ug/daemon.conf"
printf 'allow id 1d6b:*\nallow id 0781:5567 via-port "9-9"\nblock id 0781:5567 hash "x" via-port "%s"\n' \
    "$port" >"$ug/rules.conf"
chmod 600 "$ug/daemon.conf" "$ug/rules.conf"
: >"$ug/log"
# Its log goes to a file (-l), which it writes line by line; its console output is buffered.
umockdev-run -d "$FX0" -- usbguard-daemon -d -K -P -l "$ug/log" -c "$ug/daemon.conf" \
    >/dev/null 2>&1 &
ug_wrapper=$!
timeout "$USBVM_H_TIMEOUT" grep -q -m1 'run: Entering main loop' <(tail -F "$ug/log" 2>/dev/null) ||
    usbvm_h_fail "usbguard-daemon did not start: $(tail -5 "$ug/log")"
usbvm_h_run out umockdev-run -d "$FX0" -- "$USBVM" doctor "$port" --json
expect_fail "$out" authorized \
    "USBGuard rule 3: block id 0781:5567 hash \"x\" via-port \"$port\" blocks the device" \
    "allow id 0781:5567 via-port \"$port\""
umockdev-run -d "$FX0" -- usbguard remove-rule 3 || usbvm_h_fail "usbguard remove-rule failed"
usbvm_h_run out umockdev-run -d "$FX0" -- "$USBVM" doctor "$port" --json
expect_fail "$out" authorized 'no USBGuard rule matches the device, so ImplicitPolicyTarget' \
    'usbguard list-devices --blocked'
doc_cleanup

# ---- host use: a mounted disk ---------------------------------------------------------------
mkfs.ext4 -q -F "$loop" >/dev/null 2>&1 || usbvm_h_fail "mkfs.ext4 failed"
mnt="$USBVM_H_TMP/mnt"
mkdir -p "$mnt"
mount "$loop" "$mnt" || usbvm_h_fail "mount failed"
usbvm_h_mount_track "$mnt"
usbvm_h_run out uv doctor "$port" --json
expect_fail "$out" host-use "is mounted on $mnt" 'Unmount it'
umount "$mnt" || usbvm_h_fail "umount failed"
usbvm_h_run out uv doctor "$port" --json
expect_ok "$out" host-use "unmounted again"

# ---- the domain's hardware ------------------------------------------------------------------
usbvm_h_run out uv doctor "$nousb" "$port" --json
expect_fail "$out" usb-controller 'no USB controller' "model='qemu-xhci'"
FX3=$(stick --serial DOC0001 --speed 5000)
usbvm_h_run out umockdev-run -d "$FX3" -- "$USBVM" doctor "$ehci" "$port" --json
expect_fail "$out" usb-controller 'only USB 1/2 controllers \(ich9-ehci1\) for a USB 3 device' \
    "model='qemu-xhci'"
usbvm_h_run out uv doctor "$ehci" "$port" --json
expect_ok "$out" usb-controller "a USB 2 device on EHCI"
usbvm_h_run out "$USBVM" doctor "$full" --json
expect_fail "$out" hotplug-slot 'no free pcie-root-port' "model='pcie-root-port'"
usbvm_h_run out "$USBVM" doctor "$good" --json
expect_ok "$out" hotplug-slot "spare root ports"
# Defined, not started.
off="usbvm-test-doc-off-$$"
usbvm_h_domain_track "$off"
usbvm_h_domain_xml "$off" >"$USBVM_H_TMP/off.xml"
virsh -q -c "$USBVM_H_URI" define "$USBVM_H_TMP/off.xml" >/dev/null || usbvm_h_fail "cannot define $off"
usbvm_h_run out "$USBVM" doctor "$off" --json
expect_fail "$out" domain "domain '$off' does not run" "virsh start $off"
usbvm_h_run out "$USBVM" doctor "usbvm-test-nosuch-$$" "$port" --json
expect_fail "$out" domain "no domain named 'usbvm-test-nosuch-$$'" 'virsh list --all'

# ---- attached to another domain -------------------------------------------------------------
# By plain virsh, without usbvm's alias: a usbvm watch of another test on this libvirtd would
# take a ua-usbvm- disk whose device it cannot see for stale and detach it.
cat >"$USBVM_H_TMP/foreign.xml" <<EOF
<disk type='block' device='disk'><source dev='$loop'/><target dev='sdq' bus='usb'/></disk>
EOF
virsh -q -c "$USBVM_H_URI" attach-device "$good" "$USBVM_H_TMP/foreign.xml" --live >/dev/null ||
    usbvm_h_fail "virsh attach-device failed"
usbvm_h_run out uv doctor "$ehci" "$port" --json
expect_fail "$out" attached "attached to domain '$good' \\(not by usbvm\\)" \
    "usbvm detach --force $good $port"
usbvm_h_run out uv doctor "$good" "$port" --json
expect_ok "$out" attached "attached to the domain asked about"
virsh -q -c "$USBVM_H_URI" detach-device "$good" "$USBVM_H_TMP/foreign.xml" --live >/dev/null ||
    usbvm_h_fail "virsh detach-device failed"

# ---- policy ---------------------------------------------------------------------------------
bad="$USBVM_H_TMP/bad.rules"
printf 'attach id 0781:5567 to\n' >"$bad"
usbvm_h_run out uv doctor "$good" "$port" --rules "$bad" --json
expect_fail "$out" rules "$bad:1:[0-9]+: " "usbvm rules check $bad"
other="$USBVM_H_TMP/other.rules"
printf 'ignore id 0781:*\n' >"$other"
usbvm_h_run out uv doctor "$good" "$port" --rules "$other" --json
expect_fail "$out" rule "$other:1 ignores the device" "attach id 0781:5567 serial \"DOC0001\""

# ---- libvirt unreachable (a socket nobody listens at; libvirtd keeps running) -----------------
usbvm_h_run out "$USBVM" -c 'qemu+unix:///system?socket=/nonexistent' doctor --json
usbvm_h_assert_eq 8 "$out_rc" "unreachable libvirt exits 8"
expect_fail "$out" libvirt 'socket /nonexistent is missing' 'systemctl start'

# ---- confinement: an AppArmor denial of the device's node -------------------------------------
printf '<5>audit: type=1400 audit(0.0:1): apparmor="DENIED" operation="open" profile="libvirt-%s" name="%s" comm="qemu-system-x86" requested_mask="wr" denied_mask="wr"\n' \
    "$(cat /proc/sys/kernel/random/uuid)" "$node" >/dev/kmsg
usbvm_h_run out uv doctor "$port" --json
expect_fail "$out" confinement 'AppArmor denied' 'virt-aa-helper'
usbvm_h_assert_match "name=\"$node\"" "$(check "$out" confinement 'log[0]')" "the denial is quoted"

usbvm_h_ok "usbvm doctor"
