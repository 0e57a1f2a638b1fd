#!/bin/bash
# USBGuard's own generate-policy, run inside the project's umockdev testbeds (it reads the
# fake sysfs as it reads the real one), writes a rule for each device. The README promises
# that the match part can be pasted after "attach": for every non-hub device, the pasted
# rule must match that device in "usbvm rules test", and no rule written for another device
# may match it first. Then with-interface: USBGuard's set, "list --json", "show --json" and
# the matcher must be the same list (every interface and alternate setting, in descriptor
# order), and "rules generate" must write rules that match their own devices.
# Fails (never skips) when a tool is missing.
set -uo pipefail

: "${USBVM:?USBVM must name the usbvm binary}" "${USBVM_SRCDIR:?}"
for tool in umockdev-run jq usbguard python3; do
    command -v "$tool" >/dev/null ||
        { echo "FAIL: '$tool' is not installed; run tests/install-deps"; exit 1; }
done
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0"

NOVIRT='qemu+unix:///system?socket=/nonexistent/libvirt-sock'
passed=0 failed=0 matched=0 compared_sets=0
ok() { passed=$((passed + 1)); }
fail() { failed=$((failed + 1)); echo "FAIL: $*"; }
expect() { if [[ "$2" == "$3" ]]; then ok; else fail "$1: expected [$2], got [$3]"; fi; }

# Devices USBGuard itself refuses to describe, and why (the rest must all be matched).
declare -A REFUSED=(
    ["lab 1-6"]="its 255-byte serial is longer than USBGuard accepts"
)

usbvm() { "$USBVM" -c "$NOVIRT" "$@"; }

# The with-interface set USBGuard wrote, as one "cc:ss:pp cc:ss:pp" line.
guard_set() {
    python3 -c 'import re, sys
m = re.search(r"with-interface (\{ ([^}]*) \}|(\S+))", sys.argv[1])
print(" ".join((m.group(2) or m.group(3)).split()) if m else "")' "$1"
}

# Runs inside the testbed (one umockdev-run per fixture: starting one costs ~1 s).
check_fixture() {
    local name=$1
    usbvm list --all --json >"$TMP/list.json" 2>"$TMP/err" ||
        { fail "$name: usbvm list failed: $(cat "$TMP/err")"; return; }
    mapfile -t ports < <(jq -r '.devices[] | select(.hub | not) | .port' "$TMP/list.json")
    ((${#ports[@]} > 0)) || { fail "$name: no devices"; return; }

    # 1. One rule per device from USBGuard, pasted after "attach ... to dev-PORT".
    : >"$TMP/pasted.rules"
    local port syspath rule refused=0 n_rules=0
    declare -A set_of=()
    for port in "${ports[@]}"; do
        syspath=$(jq -r --arg p "$port" '.devices[] | select(.port == $p) | .syspath' "$TMP/list.json")
        rule=$(usbguard generate-policy -X -d "${syspath#/sys}" 2>"$TMP/gerr")
        if [[ -n ${REFUSED["$name $port"]:-} ]]; then
            expect "$name $port: USBGuard refuses it (${REFUSED["$name $port"]})" "" "$rule"
            refused=$((refused + 1))
            continue
        fi
        if [[ $rule != "allow "* || $rule == *$'\n'* ]]; then
            fail "$name $port: usbguard generate-policy wrote [$rule]: $(cat "$TMP/gerr")"
            continue
        fi
        set_of[$port]=$(guard_set "$rule")
        printf 'attach %s to dev-%s as usb\n' "${rule#allow }" "$port" >>"$TMP/pasted.rules"
        n_rules=$((n_rules + 1))
    done
    # 2. Each device is decided by its own rule, and every rule before it fails.
    for port in "${!set_of[@]}"; do
        usbvm rules test "$port" --rules "$TMP/pasted.rules" --json >"$TMP/test.json" 2>"$TMP/err"
        local got
        got=$(jq -r '.rule.domain // "no rule"' "$TMP/test.json" 2>/dev/null)
        if [[ $got == "dev-$port" ]]; then
            matched=$((matched + 1))
            ok
        else
            fail "$name $port: USBGuard's rule for it decided by [$got]; $(jq -c '[.checked[] | select(.domain == "dev-'"$port"'") | .reason]' "$TMP/test.json" 2>/dev/null) $(cat "$TMP/err")"
        fi
    done

    # 3. with-interface: one list everywhere, USBGuard's included.
    for port in "${!set_of[@]}"; do
        local from_list from_show from_matcher
        from_list=$(jq -r --arg p "$port" '.devices[] | select(.port == $p) | [.interfaces[] | "\(.class):\(.subclass):\(.protocol)"] | join(" ")' "$TMP/list.json")
        usbvm show "$port" --json >"$TMP/show.json" 2>/dev/null
        from_show=$(jq -r '[.device.interfaces[] | "\(.class):\(.subclass):\(.protocol)"] | join(" ")' "$TMP/show.json")
        printf 'ignore with-interface equals-ordered { %s 00:00:00 }\nignore with-interface equals-ordered { %s }\n' \
            "$from_list" "$from_list" >"$TMP/set.rules"
        usbvm rules test "$port" --rules "$TMP/set.rules" --json >"$TMP/set.json" 2>/dev/null
        from_matcher=$(jq -r '.checked[0].reason' "$TMP/set.json" | sed -n 's/^with-interface: device has { \(.*\) }, rule wants.*/\1/p')
        expect "$name $port: list --json = USBGuard" "${set_of[$port]}" "$from_list"
        expect "$name $port: show --json = list --json" "$from_list" "$from_show"
        expect "$name $port: the matcher's set = list --json" "$from_list" "$from_matcher"
        expect "$name $port: equals-ordered on that list matches" "2" "$(jq -r '.rule.line' "$TMP/set.json")"
        compared_sets=$((compared_sets + 1))
    done

    # 4. rules generate (disk mode: with-interface one-of { 08:*:* }) matches its devices.
    usbvm rules generate --to gen --mode virtio --json >"$TMP/gen.json" 2>/dev/null
    jq -r '.rules[].rule' "$TMP/gen.json" >"$TMP/gen.rules"
    local gport
    for gport in $(jq -r '.rules[].port' "$TMP/gen.json"); do
        usbvm rules test "$gport" --rules "$TMP/gen.rules" --json >"$TMP/test.json" 2>/dev/null
        expect "$name $gport: rules generate matches its device" "$gport" \
            "$(jq -r '.rule.line as $l | input | .rules[$l - 1].port' "$TMP/test.json" "$TMP/gen.json")"
    done
    expect "$name: devices USBGuard described" "$((${#ports[@]} - refused))" "$n_rules"
    echo "$name: ${#ports[@]} non-hub devices, $n_rules USBGuard rules, $refused refused by USBGuard"
}

if [[ ${1:-} == inside ]]; then
    TMP=$2
    check_fixture "$3"
    echo "RESULT $passed $failed $matched $compared_sets"
    exit 0
fi

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
# in_bed NAME FIXTURE: the checks above inside a testbed of FIXTURE; adds up their counts.
in_bed() {
    local out
    out=$(umockdev-run -d "$2" -- bash "${BASH_SOURCE[0]}" inside "$TMP" "$1")
    printf '%s\n' "$out" | grep -v '^RESULT '
    local r
    r=$(printf '%s\n' "$out" | sed -n 's/^RESULT //p')
    [[ -n $r ]] || { fail "$1: the checks inside the testbed did not finish"; return; }
    read -r p f m c <<<"$r"
    passed=$((passed + p)) failed=$((failed + f)) matched=$((matched + m))
    compared_sets=$((compared_sets + c))
}

in_bed lab "$USBVM_SRCDIR/tests/fixtures/lab.umockdev"
# A crowd of identical sticks behind hubs: only the serial tells them apart. One of them is
# blocked as USBGuard blocks a device (authorized=0): the kernel then shows no interface
# nodes, yet USBGuard's rule names its interface, and usbvm must match it too.
python3 "$USBVM_SRCDIR/tests/fixtures/mkfixtures.py" bench 12 |
    awk 'BEGIN { RS = ""; ORS = "\n\n" }
         /^P: [^\n]*\/1-1\.1\/1-1\.1:/ { next }
         /^P: [^\n]*\/1-1\.1\n/ { sub(/A: authorized=1/, "A: authorized=0") }
         { print }' >"$TMP/bench.umockdev"
expect "bench12: 1-1.1 is blocked and has no interface node" "1 0" \
    "$(grep -c 'authorized=0' "$TMP/bench.umockdev") $(grep -c '^P: .*/1-1\.1/1-1\.1:' "$TMP/bench.umockdev")"
in_bed bench12 "$TMP/bench.umockdev"

echo "generate-policy interop: $matched devices matched by USBGuard's rule for them, $compared_sets with-interface sets compared across USBGuard, list, show and the matcher"
echo "$passed passed, $failed failed"
((failed == 0 && matched > 0))
