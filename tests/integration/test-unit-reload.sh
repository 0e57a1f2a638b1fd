#!/bin/bash
# The unit's ExecReload lines, run as systemd runs them (in order, stopping at the first that
# fails) against a rules directory: broken rules make the reload fail with the rules' exit
# code and the errors in its output, and the daemon never gets SIGHUP; good rules reach it.
set -uo pipefail
source "$USBVM_SRCDIR/tests/harness/libvirt.sh"
usbvm_h_init

UNIT="$USBVM_BUILDDIR/usbvm.service"
[[ -r $UNIT ]] || usbvm_h_fail "$UNIT is missing (cmake configures it from examples/usbvm.service.in)"
mapfile -t reload < <(sed -n 's/^ExecReload=//p' "$UNIT")
usbvm_h_assert_eq 2 "${#reload[@]}" "two ExecReload lines: check the rules, then SIGHUP"
rules_dir=$(sed -n 's/^ExecStart=.* --rules //p' "$UNIT")
bindir_usbvm=$(sed -n 's/^ExecStart=\([^ ]*\) .*/\1/p' "$UNIT")

D="$USBVM_H_TMP/rules.d"
mkdir -p "$D"
# The daemon stand-in: any process that SIGHUP ends, so its exit status says whether the
# signal came.
tail -f /dev/null >/dev/null 2>&1 &
MAINPID=$!
# The harness's cleanup reads the exit status from $?: keep it across the kill.
trap 'rc=$?; kill "$MAINPID" 2>/dev/null; (exit $rc); usbvm_h_cleanup' EXIT

# systemd's semantics: each line in order; the first failure fails the reload.
run_reload() {
    local line out rc=0
    for line in "${reload[@]}"; do
        line=${line//"$bindir_usbvm"/$USBVM}
        line=${line//"$rules_dir"/$D}
        line=${line//'$MAINPID'/$MAINPID}
        out=$(eval "$line" 2>&1)
        rc=$?
        RELOAD_OUT+=$out
        ((rc == 0)) || return $rc
    done
}

printf 'attach id 0781:5567 via-port "1-2" to win10\nattach idd 0781:5567 to win10\n' >"$D/50-local.rules"
RELOAD_OUT=
run_reload
usbvm_h_assert_eq 7 "$?" "broken rules: the reload fails with the rules exit code"
usbvm_h_assert_match "50-local.rules:2:8: error" "$RELOAD_OUT" "the reload output names the error"
kill -0 "$MAINPID" 2>/dev/null
usbvm_h_assert_eq 0 "$?" "broken rules: the daemon got no SIGHUP"

printf 'attach id 0781:5567 via-port "1-2" to win10\n' >"$D/50-local.rules"
RELOAD_OUT=
run_reload
usbvm_h_assert_eq 0 "$?" "good rules: the reload succeeds"
wait "$MAINPID"
usbvm_h_assert_eq $((128 + 1)) "$?" "good rules: the daemon got SIGHUP"
