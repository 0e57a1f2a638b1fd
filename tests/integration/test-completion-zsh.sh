#!/bin/bash
# The zsh completion (completions/_usbvm) as an admin meets it: a real interactive zsh on a
# pseudo-terminal, compinit, TAB (tests/tools/zsh-complete). Verbs, subverbs, options and modes
# come from the binary's tables; domains from a real libvirtd; devices from udev (a umockdev
# testbed). A domain named like shell code is offered as data and never runs.
set -euo pipefail
# shellcheck source=../harness/libvirt.sh
source "$USBVM_SRCDIR/tests/harness/libvirt.sh"
usbvm_h_init
usbvm_h_require zsh
usbvm_h_libvirtd_start

dom=$(usbvm_h_domain_create zcompl)
usbvm_h_domain_track "$dom"
# Command substitution, backquotes and a glob in a domain name: libvirt allows them.
evil='usbvm-test-$(touch zsh-pwned)`touch zsh-pwned2`*'
evil_xml=$USBVM_H_TMP/evil.xml
usbvm_h_domain_xml "$evil" >"$evil_xml"
usbvm_h_domain_track "$evil"
virsh -q -c "$USBVM_H_URI" define "$evil_xml" >/dev/null || usbvm_h_fail "cannot define '$evil'"

# zsh maps the command name "usbvm" to _usbvm: put a wrapper of that name first on PATH that
# runs the built binary under the testbed with the test's libvirt URI.
bin=$USBVM_H_TMP/bin
mkdir -p "$bin"
printf '#!/bin/sh\nexec umockdev-run -d "%s" -- "%s" -c "%s" "$@"\n' \
    "$USBVM_SRCDIR/tests/fixtures/lab.umockdev" "$USBVM" "$USBVM_H_URI" >"$bin/usbvm"
chmod +x "$bin/usbvm"
work=$USBVM_H_TMP/cwd
mkdir -p "$work"

# complete LINE : the candidates zsh offers, sorted, on one line.
complete_line() {
    (cd "$work" && PATH="$bin:$PATH" timeout "$USBVM_H_TIMEOUT" \
        zsh -f "$USBVM_SRCDIR/tests/tools/zsh-complete" "$1" "$USBVM_SRCDIR/completions") |
        tr '\n' ' '
}

usbvm_h_assert_eq "attach " "$(complete_line 'usbvm att')" "verb from the verb table"
usbvm_h_assert_eq "check generate show test " "$(complete_line 'usbvm rules ')" "rules subverbs"
usbvm_h_assert_eq "usb usb-disk " "$(complete_line 'usbvm attach --mode usb')" "modes for --mode"
usbvm_h_assert_match "--check .*--mode .*--print-xml .*--readonly" \
    "$(complete_line 'usbvm attach --')" "attach options from its popt table"
usbvm_h_assert_match "(^| )$dom " "$(complete_line 'usbvm attach usbvm-test-zcompl')" \
    "domains from libvirt"
devs=$(complete_line "usbvm attach $dom ")
usbvm_h_assert_match "(^| )1-1 " "$devs" "devices from udev: port path"
usbvm_h_assert_match "(^| )/dev/sdb " "$devs" "devices from udev: disk node"
usbvm_h_assert_match "(^| )serial=4C530001230615117092 " "$devs" "devices from udev: serial"
usbvm_h_assert_nomatch "usb1 " "$devs" "root hubs are not offered"
usbvm_h_assert_eq "apply keep " "$(complete_line 'usbvm watch --present ')" "watch --present choices"
touch "$work/policy.rules"
usbvm_h_assert_eq "policy.rules " "$(complete_line 'usbvm rules check pol')" "file names for paths"

# Hostile values: what compadd inserts is the name quoted for the shell (zsh's own ${(q)...}),
# so accepting the line runs nothing, and completing ran nothing either.
quoted=$(zsh -fc 'print -r -- ${(q)1}' _ "$evil")
usbvm_h_assert_match "(^| )$(printf '%s' "$quoted" | sed 's/[]\\$*.^[()|+?{}]/\\&/g') " \
    "$(complete_line 'usbvm attach ')" "a domain named like shell code is inserted quoted"
usbvm_h_assert_eq "$evil " "$(complete_line "usbvm attach 'usbvm-test-\$")" \
    "inside single quotes it is inserted literally"
usbvm_h_assert_eq "" "$(compgen -G "$work/*pwned*" || true)" "completing it ran nothing"

# ---- hostile serials (tests/hostile): what zsh inserts must read back as the device's own
# serial and run nothing. Each candidate, as compadd would insert it, is put on a command line
# that zsh runs in an empty directory with usbvm replaced by a recorder.
corpus=$USBVM_H_TMP/corpus.umockdev
python3 "$USBVM_SRCDIR/tests/hostile/mkcorpus.py" fixture >"$corpus"
hbin=$USBVM_H_TMP/hbin
mkdir -p "$hbin"
printf '#!/bin/sh\nexec umockdev-run -d "%s" -- "%s" -c "%s" "$@"\n' \
    "$corpus" "$USBVM" "$USBVM_H_URI" >"$hbin/usbvm"
chmod +x "$hbin/usbvm"
mapfile -t offered < <(cd "$work" && PATH="$hbin:$PATH" timeout "$USBVM_H_TIMEOUT" \
    zsh -f "$USBVM_SRCDIR/tests/tools/zsh-complete" "usbvm attach $dom " \
    "$USBVM_SRCDIR/completions" | grep '^serial=')
[ ! -e "$work/PWNED" ] || usbvm_h_fail "hostile: completing ran a device's serial"
declare -A serials=()
while IFS=$'\t' read -r _ _ hex _; do
    s=$(perl -e 'print pack("H*", $ARGV[0]) =~ s/\0.*//sr' "$hex")
    serials["serial=$s"]=1
done < <(python3 "$USBVM_SRCDIR/tests/hostile/mkcorpus.py" list)
((${#offered[@]} >= 10)) || usbvm_h_fail "hostile: only ${#offered[@]} serials offered"
n_read=0
for cand in "${offered[@]}"; do
    printf 'usbvm() { printf "%%s\\0" "$@" >args; }\nusbvm attach %s %s\n' "$dom" "$cand" \
        >"$work/line.zsh"
    rm -f "$work/args"
    (cd "$work" && zsh -f line.zsh >/dev/null 2>&1) || true
    [ ! -e "$work/PWNED" ] || usbvm_h_fail "hostile: the completed line '$cand' ran a command"
    [ -e "$work/args" ] || usbvm_h_fail "hostile: the completed line '$cand' did not run usbvm"
    mapfile -d '' -t got <"$work/args"
    [ "${#got[@]}" = 3 ] || usbvm_h_fail "hostile: '$cand' became ${#got[@]} words, not one"
    [ -n "${serials[${got[2]}]:-}" ] ||
        usbvm_h_fail "hostile: '$cand' reads back as '${got[2]}', no device's serial"
    n_read=$((n_read + 1))
done
usbvm_h_ok "hostile: $n_read serial candidates each read back as one device's serial, none ran"
