#!/bin/bash
# CI cannot skip a stage silently: tests/run-all fails before the build when the fuzzer, the
# e2e runner or the README's demo is missing or not executable; tests/e2e/run fails before
# anything boots when its filter names no scenario or the retired optional list is set; every
# script tests/bench/run calls can run. Nothing here builds, boots or installs: the runners are
# checked on copies with stand-ins for the heavy stages.
set -uo pipefail

: "${USBVM_SRCDIR:?}"
SRC=$USBVM_SRCDIR
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
passed=0 failed=0
ok() { passed=$((passed + 1)); }
fail() { failed=$((failed + 1)); echo "FAIL: $*"; }
expect() { if [[ "$2" == "$3" ]]; then ok; else fail "$1: expected [$2], got [$3]"; fi; }
contains() { if [[ "$3" == *"$2"* ]]; then ok; else fail "$1: [$2] not in [$3]"; fi; }

# ---- tests/run-all on a copy whose stages are stand-ins -------------------------------------
# fake_tree DIR: run-all beside executable stand-ins that only leave a mark.
fake_tree() {
    mkdir -p "$1/tests/fuzz" "$1/tests/e2e" "$1/tests/harness" "$1/examples"
    cp "$SRC/tests/run-all" "$1/tests/run-all"
    local s
    for s in tests/install-deps tests/fuzz/run-fuzz.sh tests/e2e/run tests/e2e/rootfs.sh \
        tests/harness/ns-run examples/demo; do
        printf '#!/bin/sh\ntouch "%s/ran.$(basename "$0")"\n' "$1" >"$1/$s"
        chmod +x "$1/$s"
    done
}
check_run_all() {
    local what=$1 tree=$2 stage=$3
    local rc=0
    timeout 60 "$tree/tests/run-all" >"$TMP/out" 2>"$TMP/err" || rc=$?
    expect "run-all with $what: exit status" 1 "$rc"
    contains "run-all with $what: names the stage" "$stage is missing or not executable" \
        "$(cat "$TMP/err")"
    expect "run-all with $what: fails before any stage" "" "$(ls "$tree" | grep '^ran\.')"
}

fake_tree "$TMP/a"
rm "$TMP/a/tests/fuzz/run-fuzz.sh"
check_run_all "no fuzzer" "$TMP/a" tests/fuzz/run-fuzz.sh
fake_tree "$TMP/b"
chmod -x "$TMP/b/tests/e2e/run"
check_run_all "an e2e runner without its run bit" "$TMP/b" tests/e2e/run
fake_tree "$TMP/c"
chmod -x "$TMP/c/tests/fuzz/run-fuzz.sh"
check_run_all "a fuzzer without its run bit" "$TMP/c" tests/fuzz/run-fuzz.sh
fake_tree "$TMP/d"
rm "$TMP/d/tests/harness/ns-run"
check_run_all "no namespace runner" "$TMP/d" tests/harness/ns-run
fake_tree "$TMP/e"
chmod -x "$TMP/e/examples/demo"
check_run_all "a demo without its run bit" "$TMP/e" examples/demo

# ---- tests/harness/ns-run: what a pass changes stays in its namespace --------------------------
# Files made inside under the private directories are gone outside, the host's domain
# definitions are not there inside, and the exit status is the command's.
probe=usbvm-ns-probe-$$
rc=0
mkdir "$TMP/ns"
inside=$(TMPDIR=$TMP/ns "$SRC/tests/harness/ns-run" bash -c '
    touch "/run/libvirt/$1" "/run/usbvm/$1" "/etc/libvirt/$1" "/var/lib/libvirt/$1"
    ls /etc/libvirt/qemu/*.xml /etc/libvirt/qemu/autostart 2>/dev/null
    mountpoint -q /run/libvirt && echo mounted
    stat -f -c %T /run/usbvm
    exit 7' _ "$probe" 2>&1) || rc=$?
expect "ns-run: the command's exit status" 7 "$rc"
# (The suite itself runs under ns-run, so /run/libvirt may be a mount outside too: the files
# below tell this namespace's own copies.)
expect "ns-run: /run/libvirt is a mount, with no host domain definitions, /run on a tmpfs" \
    "mounted"$'\n'"tmpfs" "$inside"
# --tmp-in-ram: the command's TMPDIR is a tmpfs of its own, the harness's directory goes there,
# and it is gone with the namespace.
rc=0
inside=$(TMPDIR=$TMP/ns "$SRC/tests/harness/ns-run" --tmp-in-ram bash -c '
    stat -f -c %T "$TMPDIR"
    [[ $TMPDIR == "$1"/usbvm-ns.* ]] && echo under-the-given-tmpdir
    source "$2/tests/harness/libvirt.sh"
    usbvm_h_init
    [[ $USBVM_H_TMP == "$TMPDIR"/usbvm-test.* ]] && echo harness-there
    touch "$TMPDIR/left"' _ "$TMP/ns" "$SRC" 2>&1) || rc=$?
expect "ns-run --tmp-in-ram: exit status" 0 "$rc"
expect "ns-run --tmp-in-ram: TMPDIR is a tmpfs, made under the given TMPDIR" \
    "tmpfs"$'\n'"under-the-given-tmpdir"$'\n'"harness-there" "$inside"
expect "ns-run --tmp-in-ram: nothing is left" "" "$(ls -A "$TMP/ns")"
rc=0
"$SRC/tests/harness/ns-run" --tmp-in-ram >/dev/null 2>"$TMP/err" || rc=$?
expect "ns-run --tmp-in-ram without a command: usage" 2 "$rc"
for d in /run/libvirt /run/usbvm /etc/libvirt /var/lib/libvirt; do
    expect "ns-run: a file made in $d inside is not there outside" no \
        "$([[ -e $d/$probe ]] && echo yes || echo no)"
    rm -f "$d/$probe"
done
# A process the command leaves running in the namespace is named, ended, and fails the run.
rc=0
TMPDIR=$TMP/ns "$SRC/tests/harness/ns-run" bash -c 'exec -a "$1" sleep 300 & exit 0' _ "usbvm-ns-leak-probe-$$" \
    >"$TMP/out" 2>"$TMP/err" || rc=$?
expect "ns-run: a leaked process fails the run" 1 "$rc"
contains "ns-run: the leaked process is named" "usbvm-ns-leak-probe-$$" "$(cat "$TMP/err")"
expect "ns-run: the leaked process is ended" "" "$(pgrep -f "usbvm-ns-leak-probe-$$" || true)"
expect "ns-run: its private copies are removed" "" "$(ls -A "$TMP/ns")"

# The real tree has them all.
for s in tests/run-all tests/install-deps tests/fuzz/run-fuzz.sh tests/e2e/run tests/e2e/rootfs.sh \
    tests/harness/ns-run tests/bench/run; do
    if [[ -x $SRC/$s ]]; then ok; else fail "$s is not executable"; fi
done

# ---- tests/e2e/run: a bad filter fails at once ----------------------------------------------
e2e() {
    local rc=0 t0=$SECONDS
    env "$@" timeout 30 "$SRC/tests/e2e/run" >"$TMP/out" 2>"$TMP/err" || rc=$?
    E2E_RC=$rc E2E_TIME=$((SECONDS - t0))
}
before=$(ls "$SRC/tests/e2e/work" 2>/dev/null | wc -l)
e2e USBVM_E2E_ONLY="usb_disk no_such_scenario"
expect "e2e filter naming no scenario: exit status" 1 "$E2E_RC"
contains "e2e filter naming no scenario: says which" "'no_such_scenario', which is no scenario" \
    "$(cat "$TMP/err")"
expect "e2e filter: fails in seconds (nothing built or booted)" 1 "$((E2E_TIME < 10))"
e2e USBVM_E2E_OPTIONAL=watch_usb
expect "e2e optional list: exit status" 1 "$E2E_RC"
contains "e2e optional list: refused" "USBVM_E2E_OPTIONAL is no longer supported" "$(cat "$TMP/err")"
expect "e2e: no work directory created" "$before" "$(ls "$SRC/tests/e2e/work" 2>/dev/null | wc -l)"

# ---- tests/bench/run reaches its end: every script it calls can run -------------------------
n=0
while read -r s; do
    n=$((n + 1))
    if [[ -x $SRC/$s ]]; then ok; else fail "tests/bench/run calls $s, which is not executable"; fi
done < <(grep -o 'tests/bench/[A-Za-z0-9_-]*\.sh' "$SRC/tests/bench/run" | sort -u)
expect "tests/bench/run calls its scripts" 1 "$((n >= 3))"

echo "$passed passed, $failed failed"
((failed == 0))
