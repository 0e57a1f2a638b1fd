#!/bin/bash
# The bash completion as an admin meets it: bash-completion loaded, completions/usbvm sourced,
# _usbvm called on real command lines. Verbs, subverbs, options and modes come from the
# binary's tables; domains from a real libvirtd; devices from udev (a umockdev testbed).
set -euo pipefail
# shellcheck source=../harness/libvirt.sh
source "$USBVM_SRCDIR/tests/harness/libvirt.sh"
usbvm_h_init
usbvm_h_libvirtd_start
[ -r /usr/share/bash-completion/bash_completion ] || usbvm_h_fail "bash-completion is not installed"

dom=$(usbvm_h_domain_create compl)
usbvm_h_domain_track "$dom"

# complete LINE : the candidates bash offers for LINE (cursor at its end), sorted, one line.
complete_line() {
    local line=$1
    # A fresh shell per call, as a user's interactive shell would have it; the binary runs
    # under the testbed so device candidates come from the fixture.
    umockdev-run -d "$USBVM_SRCDIR/tests/fixtures/lab.umockdev" -- bash -c '
        source /usr/share/bash-completion/bash_completion
        source "$USBVM_SRCDIR/completions/usbvm"
        usbvm() { "$USBVM" -c "$USBVM_H_URI" "$@"; }
        export -f usbvm 2>/dev/null
        line=$1
        read -r -a COMP_WORDS <<<"$line"
        [[ $line == *" " ]] && COMP_WORDS+=("")
        COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
        COMP_LINE=$line
        COMP_POINT=${#line}
        COMP_WORDS[0]=$USBVM_WRAPPER
        _usbvm
        printf "%s\n" "${COMPREPLY[@]}" | sort | tr "\n" " "' _ "$line"
}

# The completion runs "${words[0]} __complete ..."; point words[0] at a wrapper with -c URI.
wrapper=$USBVM_H_TMP/usbvm
printf '#!/bin/sh\nexec "%s" -c "%s" "$@"\n' "$USBVM" "$USBVM_H_URI" >"$wrapper"
chmod +x "$wrapper"
export USBVM_WRAPPER=$wrapper USBVM_H_URI USBVM

usbvm_h_assert_eq "attach " "$(complete_line 'usbvm att')" "verb from the verb table"
usbvm_h_assert_eq "check generate show test " "$(complete_line 'usbvm rules ')" "rules subverbs"
usbvm_h_assert_eq "usb usb-disk " "$(complete_line 'usbvm attach --mode usb')" "modes for --mode"
usbvm_h_assert_match "--check .*--mode .*--print-xml .*--readonly" \
    "$(complete_line 'usbvm attach --')" "attach options from its popt table"
usbvm_h_assert_match "(^| )$dom " "$(complete_line 'usbvm attach usbvm-test-compl')" \
    "domains from libvirt"
devs=$(complete_line "usbvm attach $dom ")
usbvm_h_assert_match "(^| )1-1 " "$devs" "devices from udev: port path"
usbvm_h_assert_match "(^| )/dev/sdb " "$devs" "devices from udev: disk node"
usbvm_h_assert_match "(^| )serial=4C530001230615117092 " "$devs" "devices from udev: serial"
usbvm_h_assert_nomatch "usb1 " "$devs" "root hubs are not offered"
usbvm_h_assert_match "1-1" "$(complete_line "usbvm detach $dom ")" "detach offers devices"
usbvm_h_assert_eq "--flush " "$(complete_line 'usbvm detach --fl')" "detach --flush"
doc=$(complete_line 'usbvm doctor ')
usbvm_h_assert_match "(^| )$dom " "$doc" "doctor's first argument: a domain"
usbvm_h_assert_match "(^| )1-1 " "$doc" "doctor's first argument: or a device"
usbvm_h_assert_match "(^| )1-1 " "$(complete_line "usbvm doctor $dom ")" "doctor: then a device"
usbvm_h_assert_match "--rules" "$(complete_line 'usbvm doctor --')" "doctor options"
usbvm_h_assert_eq "--help --json " "$(complete_line 'usbvm status --')" "status options"
usbvm_h_assert_eq "apply keep " "$(complete_line 'usbvm watch --present ')" "watch --present choices"

# ---- hostile serials (tests/hostile): what bash inserts must read back as the device's own
# serial and run nothing. Each candidate is put on a command line as bash would insert it and
# that line is run by bash, in an empty directory, with usbvm replaced by a recorder.
corpus=$USBVM_H_TMP/corpus.umockdev
python3 "$USBVM_SRCDIR/tests/hostile/mkcorpus.py" fixture >"$corpus"
scratch=$USBVM_H_TMP/scratch
mkdir "$scratch"
# complete_hostile LINE : the candidates for LINE, one per line, from the corpus testbed.
complete_hostile() {
    (cd "$scratch" && umockdev-run -d "$corpus" -- bash -c '
        source /usr/share/bash-completion/bash_completion
        source "$USBVM_SRCDIR/completions/usbvm"
        line=$1
        read -r -a COMP_WORDS <<<"$line"
        [[ $line == *" " ]] && COMP_WORDS+=("")
        COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
        COMP_LINE=$line
        COMP_POINT=${#line}
        COMP_WORDS[0]=$USBVM_WRAPPER
        _usbvm
        printf "%s\n" "${COMPREPLY[@]}"' _ "$1")
}
mapfile -t offered < <(complete_hostile "usbvm attach $dom " | grep '^serial=')
[ ! -e "$scratch/PWNED" ] || usbvm_h_fail "hostile: completing ran a device's serial"
declare -A serials=()
while IFS=$'\t' read -r _ _ hex _; do
    s=$(perl -e 'print pack("H*", $ARGV[0]) =~ s/\0.*//sr' "$hex")
    serials["serial=$s"]=1
done < <(python3 "$USBVM_SRCDIR/tests/hostile/mkcorpus.py" list)
n_read=0
for cand in "${offered[@]}"; do
    printf 'usbvm() { printf "%%s\\0" "$@" >args; }\nusbvm attach %s %s\n' "$dom" "$cand" \
        >"$scratch/line.sh"
    rm -f "$scratch/args"
    (cd "$scratch" && bash line.sh >/dev/null 2>&1) || true
    [ ! -e "$scratch/PWNED" ] || usbvm_h_fail "hostile: the completed line '$cand' ran a command"
    [ -e "$scratch/args" ] || usbvm_h_fail "hostile: the completed line '$cand' did not run usbvm"
    mapfile -d '' -t got <"$scratch/args"
    [ "${#got[@]}" = 3 ] || usbvm_h_fail "hostile: '$cand' became ${#got[@]} words, not one"
    [ -n "${serials[${got[2]}]:-}" ] ||
        usbvm_h_fail "hostile: '$cand' reads back as '${got[2]}', no device's serial"
    n_read=$((n_read + 1))
done
usbvm_h_ok "hostile: $n_read serial candidates each read back as one device's serial, none ran"
usbvm_h_assert_match '(^| )serial=4C53\\;\\\{id,-u\\\}\\\|cat ' "$(printf '%s ' "${offered[@]}")" \
    "hostile: a serial with shell syntax is offered escaped"
usbvm_h_assert_eq "serial=4C53\\;\\{id,-u\\}\\|cat" "$(complete_hostile "usbvm attach $dom serial=4C5")" \
    "hostile: a typed prefix completes to the escaped serial"
usbvm_h_assert_nomatch 'touch PWNED$' "$(printf '%s\n' "${offered[@]}")" \
    "hostile: a serial with a newline is not offered"
