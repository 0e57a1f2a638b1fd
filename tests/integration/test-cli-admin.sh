#!/bin/bash
# The admin's interface, without libvirtd (its socket does not exist): every verb's --json
# answer is JSON for usage errors and failures too, messages say what to do, rules test
# names host-use blockers, attach --check refuses before it needs libvirt, --help comes from
# the verb tables, and short options mean one thing. On the lab fixture (1-4's LUKS
# partition is held by dm-0; 1-5 is a keyboard; 1-6 has hostile strings).
set -uo pipefail
source "$USBVM_SRCDIR/tests/harness/libvirt.sh"
usbvm_h_init
usbvm_h_require umockdev-run jq

LAB="$USBVM_SRCDIR/tests/fixtures/lab.umockdev"
NOVIRT='qemu+unix:///system?socket=/nonexistent/libvirt-sock'
R="$USBVM_H_TMP/rules.d"
mkdir -p "$R"
printf 'attach id 0951:1666 via-port "1-4" to win10 as usb-disk readonly cache none\n' \
    >"$R/50-local.rules"
uv() { umockdev-run -d "$LAB" -- "$USBVM" -c "$NOVIRT" "$@"; }
# json_fails RC DESCRIPTION ARGS...: one JSON object on stdout with failed=true and rc=RC.
json_fails() {
    local want=$1 what=$2
    shift 2
    usbvm_h_run out uv "$@"
    usbvm_h_assert_eq "$want" "$out_rc" "$what: exit $want"
    usbvm_h_assert_eq "true $want" "$(jq -r '"\(.failed) \(.rc)"' <<<"$out" 2>&1)" \
        "$what: one JSON object with failed and rc"
}

# ---- JSON is always JSON -----------------------------------------------------------------
for verb in list show attach detach status watch "rules check" "rules test" "rules show" \
    "rules generate"; do
    # shellcheck disable=SC2086
    json_fails 2 "$verb --bogus" $verb --bogus --json
    # shellcheck disable=SC2086
    json_fails 2 "$verb, --json before an unknown option" --json $verb --bogus
done
json_fails 2 "show without a device" show --json
json_fails 2 "list with an argument" list extra --json
json_fails 2 "attach with three arguments" attach my vm 1-1 --json
usbvm_h_assert_match "quote it: 'my vm'" "$(jq -r .msg <<<"$out")" "an unquoted two-word domain gets a hint"
json_fails 2 "attach --persistent --live" attach win10 1-1 --persistent --live --json
json_fails 2 "no verb" --json
json_fails 2 "unknown verb" --json frobnicate
json_fails 2 "rules without a subverb" --json rules
json_fails 3 "show of a missing device" show 9-9 --json
usbvm_h_assert_eq string "$(uv --json --version | jq -r '.version | type')" "--version --json is JSON"
json_fails 6 "status with libvirt down" status --json
json_fails 6 "attach with libvirt down" attach win10 1-1 --json
json_fails 6 "detach with libvirt down" detach win10 1-1 --json
json_fails 7 "rules test with missing rules" rules test 1-1 --rules "$USBVM_H_TMP/none.d" --json
json_fails 7 "rules show with missing rules" rules show --rules "$USBVM_H_TMP/none.d" --json
usbvm_h_run out uv watch --once --json --rules "$R"
usbvm_h_assert_eq 6 "$out_rc" "watch --once with libvirt down: exit 6"
usbvm_h_assert_eq "exit true 6" "$(jq -rs '.[-1] | "\(.event) \(.failed) \(.rc)"' <<<"$out")" \
    "watch --once --json: JSON lines ending in an exit record"
usbvm_h_assert_nomatch 'retrying' "$out$out_err" "watch --once does not say it retries"

# ---- why wasn't my stick attached? --------------------------------------------------------
usbvm_h_run out uv rules test 1-4 --rules "$R" --json
usbvm_h_assert_eq attach "$(jq -r .decision <<<"$out")" "rules test 1-4: the rule matches"
usbvm_h_assert_match 'held by dm-0' "$(jq -r .refusal <<<"$out")" "rules test 1-4: the refusal is named"
usbvm_h_run out uv rules test 1-4 --rules "$R"
usbvm_h_assert_match 'Decision: +attach to win10 as usb-disk, readonly, cache none .*refuse.*dm-0' \
    "$out" "rules test 1-4 text: options and the host-use refusal in the Decision line"
json_fails 4 "attach --check of a held device, libvirt down: the refusal wins" \
    attach win10 1-4 --mode usb-disk --check --json
usbvm_h_assert_match 'dm-0' "$(jq -r .msg <<<"$out")" "the refusal names the holder"
usbvm_h_run out uv rules test 1-6 --rules "$R"
usbvm_h_assert_match 'Line1\\nLine2' "$out" "rules test: a device string is escaped once"
usbvm_h_assert_nomatch 'Line1\\\\n' "$out" "rules test: ... and not twice"

# ---- messages that say what to do ---------------------------------------------------------
usbvm_h_run out uv rules check "$USBVM_H_TMP/missing.d"
usbvm_h_assert_match "mkdir -p $USBVM_H_TMP/missing.d" "$out_err" "a missing rules directory: how to create it"
printf 'attach idd 1 to x\n' >"$USBVM_H_TMP/bad.rules"
usbvm_h_run out uv rules test 1-1 --rules "$USBVM_H_TMP/bad.rules"
usbvm_h_assert_nomatch 'applied' "$out_err" "rules test does not claim to apply anything"
# Which drivers exist only a running daemon can say: without one, libvirt reports the missing
# socket for any URI.
usbvm_h_libvirtd_start
usbvm_h_run out umockdev-run -d "$LAB" -- "$USBVM" -c bogus:///x status
usbvm_h_assert_nomatch 'libvirtd running' "$out_err" "a bad URI is not blamed on libvirtd"
usbvm_h_assert_match "'bogus:///x'.*check the URI" "$out_err" "a bad URI: check it"
usbvm_h_run out env LIBVIRT_DEFAULT_URI=bogus:///y umockdev-run -d "$LAB" -- "$USBVM" status
usbvm_h_assert_match "'bogus:///y' \\(from LIBVIRT_DEFAULT_URI\\)" "$out_err" "the environment's URI is named"
usbvm_h_run out uv status
usbvm_h_assert_match 'is libvirtd running' "$out_err" "a missing socket: start libvirtd"

# ---- rules that cannot match, rules a device can satisfy by itself ------------------------
printf 'attach id { 0951:* 0781:5567 } to win10\n' >"$USBVM_H_TMP/set.rules"
usbvm_h_run out uv rules check "$USBVM_H_TMP/set.rules"
usbvm_h_assert_match "write 'id one-of \\{ ... \\}'" "$out_err" "a set without operator: warned, with the fix"
usbvm_h_assert_match "via-port" "$out_err" "a rule on device-chosen attributes: how to pin it"
usbvm_h_run out uv rules generate --all --mode virtio --to vm
printf '%s\n' "$out" >"$USBVM_H_TMP/gen.rules"
usbvm_h_assert_match '1-5 046d:c31c.*not storage' "$out" "generate: the keyboard is proposed as usb"
for port in 1-1 1-2 1-3 1-4 1-5 1-6 2-1.1; do
    usbvm_h_run out uv rules test "$port" --rules "$USBVM_H_TMP/gen.rules" --json
    usbvm_h_assert_eq attach "$(jq -r .decision <<<"$out")" "generate --all --mode virtio: $port's rule matches it"
done

# ---- --help from the tables, short options --------------------------------------------------
help=$("$USBVM" attach --help)
usbvm_h_assert_eq 1 "$(grep -c 'Usage:' <<<"$help")" "attach --help: one Usage line"
usbvm_h_assert_match '--cache [^ ]*\].*--io' "$(tr -d '\n' <<<"$help")" "attach synopsis: --cache and --io"
usbvm_h_assert_match 'Only predict whether anything would change' "$help" "attach --help: descriptions are not squeezed"
usbvm_h_assert_match '\[-f\|--force\]' "$("$USBVM" detach --help)" "detach synopsis: --force"
usbvm_h_assert_match '--detach-on-exit.*--timeout' "$("$USBVM" watch --help | tr -d '\n')" "watch synopsis"
shorts=$(for v in list show attach detach status watch "rules check" "rules test" "rules show" \
    "rules generate"; do
    # shellcheck disable=SC2086
    "$USBVM" $v --help | sed -n 's/^  \(-.\), \(--[a-z-]*\).*/\1 \2/p'
done | sort -u)
usbvm_h_assert_eq "" "$(awk '{print $1}' <<<"$shorts" | uniq -d)" "each short option means one long option ($shorts)"

# ---- one size convention ------------------------------------------------------------------
usbvm_h_run out uv list
usbvm_h_assert_match '2-1\.1 .* 500GB ' "$out" "list: decimal sizes, labelled GB"

# ---- a closed pipe is an error, not a signal ----------------------------------------------
# stdout is a pipe whose reader is gone before usbvm starts, so every write fails with EPIPE.
# libvirt writes to libvirtd's socket the same way: a libvirtd that dropped the connection must
# not end usbvm by SIGPIPE (exit 141, no message) before its answer is out.
printf 'ignore id 0951:1666\n' >"$USBVM_H_TMP/quiet.rules"
rc=0
err=$(perl -e 'pipe(my $r, my $w) or die; close $r; open(STDOUT, ">&", $w) or die; exec @ARGV' \
    -- "$USBVM" rules check "$USBVM_H_TMP/quiet.rules" 2>&1) || rc=$?
usbvm_h_assert_eq 1 "$rc" "a closed stdout: usbvm exits 1, not killed by SIGPIPE (141)"
usbvm_h_assert_eq "" "$err" "a closed stdout: nothing said about it (as a pipe to head)"
