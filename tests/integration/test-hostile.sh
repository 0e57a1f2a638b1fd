# The hostile-device corpus (tests/hostile/mkcorpus.py): sticks whose serials and names hold
# shell, XML and JSON metacharacters, C0/C1 controls, bidi overrides, invalid UTF-8, a NUL, a
# 4 KiB string, and two clones, pushed through list, show, rules test, attach in every mode
# (against a real QEMU TCG domain, disks on loop devices), watch's log and completion
# (tests/integration/test-completion.sh). Every XML validates against libvirt's schema, every
# JSON document parses, no text line carries a character a terminal obeys or that would split
# a journal record, and nothing runs: a payload would create PWNED in the working directory.
set -u
source "$USBVM_SRCDIR/tests/harness/libvirt.sh"
usbvm_h_init
usbvm_h_libvirtd_start
usbvm_h_require jq virt-xml-validate xmllint perl python3

corpus=$USBVM_H_TMP/corpus.umockdev
python3 "$USBVM_SRCDIR/tests/hostile/mkcorpus.py" fixture >"$corpus" ||
    usbvm_h_fail "cannot generate the corpus"
mapfile -t sticks < <(python3 "$USBVM_SRCDIR/tests/hostile/mkcorpus.py" list)
scratch=$USBVM_H_TMP/scratch
mkdir "$scratch"
dom=$(usbvm_h_domain_create hostile)
usbvm_h_domain_track "$dom"

# hv FIXTURE ARGS... : usbvm on the testbed, in the scratch directory.
hv() {
    local fx=$1
    shift
    (cd "$scratch" && umockdev-run -d "$fx" -- "$USBVM" -c "$USBVM_H_URI" "$@")
}
# clean FILE WHAT : no control character but tab and newline, no C1, no Unicode format
# character (bidi, zero-width, BOM), valid UTF-8 only.
clean() {
    perl -e '
        use Encode qw(decode FB_CROAK);
        my $bad = 0;
        while (my $l = <STDIN>) {
            my $copy = $l;
            my $ok = eval { decode("UTF-8", $copy, FB_CROAK); 1 };
            if (!$ok || $l =~ /[\x00-\x08\x0b-\x1f\x7f]|\xc2[\x80-\x9f]|\xc2\xad|\xd8\x9c|\xe2\x80[\x8b-\x8f\xa8-\xae]|\xe2\x81[\xa0-\xa4\xa6-\xaf]|\xef\xbb\xbf/) {
                print STDERR "line $.: ", unpack("H*", substr($l, 0, 80)), "\n";
                $bad = 1;
            }
        }
        exit $bad' <"$1" || usbvm_h_fail "$2: a raw control, format or invalid byte reached the text"
}
nothing_ran() {
    [ ! -e "$scratch/PWNED" ] || usbvm_h_fail "$1: a device string ran a command"
}

# ---- list, show ----------------------------------------------------------------------------
usbvm_h_run out hv "$corpus" list --json
usbvm_h_assert_eq 0 "$out_rc" "list --json ($out_err)"
usbvm_h_assert_eq "${#sticks[@]}" "$(jq '.devices | length' <<<"$out")" "list --json: every stick, valid JSON"
long=$(jq -r '.devices[] | select(.port == "1-20") | .serial | length' <<<"$out")
usbvm_h_assert_eq 4094 "$long" "list --json: the 4 KiB serial whole"
usbvm_h_assert_eq "AB" "$(jq -r '.devices[] | select(.port == "1-19") | .serial' <<<"$out")" \
    "list --json: a serial with a NUL ends there (as sysfs reads)"
usbvm_h_assert_match $'\xef\xbf\xbd' "$(jq -r '.devices[] | select(.port == "1-18") | .serial' <<<"$out")" \
    "list --json: invalid UTF-8 becomes U+FFFD"
hv "$corpus" list >"$USBVM_H_TMP/list.txt" 2>"$USBVM_H_TMP/list.err" ||
    usbvm_h_fail "list failed: $(cat "$USBVM_H_TMP/list.err")"
clean "$USBVM_H_TMP/list.txt" "list"
clean "$USBVM_H_TMP/list.err" "list (warnings)"
usbvm_h_assert_eq $((${#sticks[@]} + 1)) "$(wc -l <"$USBVM_H_TMP/list.txt")" \
    "list: one line per stick (no string splits a line)"
usbvm_h_ok "list: text and warnings are clean"
usbvm_h_assert_match '\\u202e' "$(cat "$USBVM_H_TMP/list.txt")" "list: a bidi override is shown escaped"

# Everything per stick in one testbed (setting one up costs seconds): outputs into $res.
res=$USBVM_H_TMP/res
mkdir "$res"
rules=$USBVM_H_TMP/rules
printf 'ignore serial "X\\x0a"\nattach id 16c0:05dc with-interface 08:*:* to %s as usb-disk\n' \
    "$dom" >"$rules"
ports=()
for s in "${sticks[@]}"; do
    IFS=$'\t' read -r port _ _ _ <<<"$s"
    ports+=("$port")
done
export USBVM_H_URI
(cd "$scratch" && umockdev-run -d "$corpus" -- bash -c '
    res=$1 rules=$2 dom=$3
    shift 3
    u() { "$USBVM" -c "$USBVM_H_URI" "$@"; }
    for port in "$@"; do
        u show "$port" --json >"$res/show-$port.json" 2>&1
        u show "$port" >"$res/show-$port.txt" 2>&1
        u rules test "$port" --rules "$rules" --json >"$res/rt-$port.json" 2>&1
        u rules test "$port" --rules "$rules" >"$res/rt-$port.txt" 2>&1
        for mode in usb virtio scsi usb-disk; do
            u attach "$dom" "$port" --mode "$mode" --print-xml >"$res/xml-$mode-$port.xml" \
                2>"$res/xml-$mode-$port.err" || echo "$port $mode" >>"$res/xml-failed"
        done
    done' _ "$res" "$rules" "$dom" "${ports[@]}") || usbvm_h_fail "the per-stick run failed"
[ ! -e "$res/xml-failed" ] || usbvm_h_fail "attach --print-xml failed for: $(cat "$res/xml-failed")"

for s in "${sticks[@]}"; do
    IFS=$'\t' read -r port name _ _ <<<"$s"
    jq -e .device.port "$res/show-$port.json" >/dev/null ||
        usbvm_h_fail "show $port ($name) --json: $(head -c 300 "$res/show-$port.json")"
    clean "$res/show-$port.txt" "show $port ($name)"
    d=$(jq -r .decision "$res/rt-$port.json") ||
        usbvm_h_fail "rules test $port ($name) --json: $(head -c 300 "$res/rt-$port.json")"
    case $name in
    clone-*) want=ambiguous ;;
    *) want=attach ;;
    esac
    [ "$d" = "$want" ] || usbvm_h_fail "rules test $port ($name): decision $d, expected $want"
    clean "$res/rt-$port.txt" "rules test $port ($name)"
done
usbvm_h_ok "show: ${#sticks[@]} sticks, text clean and JSON valid"
usbvm_h_ok "rules test: every stick decided, text clean, JSON valid"
usbvm_h_assert_match "Ambiguous: its identity" "$(cat "$res/show-1-27.txt")" \
    "show: the clones are ambiguous"
nothing_ran "list/show/rules test"

# All the sticks' XML of one mode in one domain document: one schema check per mode.
for mode in usb virtio scsi usb-disk; do
    cat "$res"/xml-"$mode"-*.xml >"$USBVM_H_TMP/all-$mode.xml"
    usbvm_h_validate_device "$USBVM_H_TMP/all-$mode.xml" >/dev/null 2>"$USBVM_H_TMP/v.err" ||
        usbvm_h_fail "$mode: a device XML is not valid for libvirt: $(cat "$USBVM_H_TMP/v.err")"
    usbvm_h_ok "attach --print-xml --mode $mode: ${#sticks[@]} XMLs valid against libvirt's schema"
done

# Real attaches: a hostile stick per mode, its disk a loop device.
fx=$corpus
for pick in "1-13 sdam usb-disk" "1-16 sdap scsi" "1-21 sdau virtio" "1-20 sdat usb-disk"; do
    read -r port disk mode <<<"$pick"
    loop=$(usbvm_h_loop_create 16M)
    usbvm_h_loop_track "$loop"
    usbvm_h_fixture_retarget "$fx" "$fx.$port" "$disk" "$loop"
    fx=$fx.$port
    usbvm_h_run out hv "$fx" attach "$dom" "$port" --mode "$mode" --json
    usbvm_h_assert_eq 0 "$out_rc" "attach $port as $mode ($out_err)"
    jq -e . >/dev/null <<<"$out" || usbvm_h_fail "attach $port --json does not parse"
    usbvm_h_live_xml "$dom" >"$USBVM_H_TMP/live.xml"
    virt-xml-validate "$USBVM_H_TMP/live.xml" domain >/dev/null 2>&1 ||
        usbvm_h_fail "attach $port as $mode: the live domain XML no longer validates"
    usbvm_h_ok "attach $port as $mode: the live domain XML validates"
done
usbvm_h_run out hv "$fx" attach "$dom" 1-12 --mode usb
usbvm_h_assert_eq 1 "$(printf '%s\n' "$out_err" | wc -l)" \
    "usb mode (no real USB device here): the refusal is one line"
printf '%s\n' "$out_err" >"$USBVM_H_TMP/usb.err"
clean "$USBVM_H_TMP/usb.err" "attach --mode usb error"
usbvm_h_run out hv "$fx" attach "$dom" 1-28 --mode usb-disk
usbvm_h_assert_eq 4 "$out_rc" "a clone is refused"
usbvm_h_run out hv "$fx" status --json
jq -e . >/dev/null <<<"$out" || usbvm_h_fail "status --json does not parse"
usbvm_h_ok "status --json parses with hostile devices attached"
for port in 1-13 1-16 1-20; do
    usbvm_h_run out hv "$fx" detach "$dom" "$port" --json
    jq -e . >/dev/null <<<"$out" || usbvm_h_fail "detach $port --json does not parse"
done
nothing_ran "attach/detach"

# ---- watch's log -----------------------------------------------------------------------------
# Every record one line: under the journal's protocol (JOURNAL_STREAM set) each line starts with
# its own priority, and none with a forged one.
# Exit 5: the virtio disk attached above is still pending (a domain without a guest OS).
rc=0
(cd "$scratch" && JOURNAL_STREAM=8:1 umockdev-run -d "$corpus" -- "$USBVM" -c "$USBVM_H_URI" -v \
    watch --once --dry-run --rules "$rules" >"$USBVM_H_TMP/watch.txt" 2>&1) || rc=$?
[ $rc = 0 ] || [ $rc = 5 ] ||
    usbvm_h_fail "watch --once --dry-run failed ($rc): $(tail -c 600 "$USBVM_H_TMP/watch.txt")"
clean "$USBVM_H_TMP/watch.txt" "watch log"

# The summary of --once is the answer, not a log record.
bad=$(grep -v "^summary: " "$USBVM_H_TMP/watch.txt" | grep -cv "^<[3-7]>" || true)
usbvm_h_assert_eq 0 "$bad" "watch log: every line is one record with its own priority"
usbvm_h_assert_nomatch $'(^|\n)<[0-2]>' "$(cat "$USBVM_H_TMP/watch.txt")" "watch log: no forged priority"
usbvm_h_assert_match 'forged emergency record' "$(cat "$USBVM_H_TMP/watch.txt")" \
    "watch log: the forging serial was logged (escaped)"
rc=0
(cd "$scratch" && umockdev-run -d "$corpus" -- "$USBVM" -c "$USBVM_H_URI" -v --json \
    watch --once --dry-run --rules "$rules" >"$USBVM_H_TMP/watch.json" 2>"$USBVM_H_TMP/watch.err") ||
    rc=$?
[ $rc = 0 ] || [ $rc = 5 ] || usbvm_h_fail "watch --once --json failed ($rc): $(tail -5 "$USBVM_H_TMP/watch.err")"
jq -e . "$USBVM_H_TMP/watch.json" >/dev/null || usbvm_h_fail "watch --json: a line does not parse"
usbvm_h_ok "watch --json: $(wc -l <"$USBVM_H_TMP/watch.json") lines, each valid JSON"
nothing_ran "watch"
