#!/bin/bash
# Never one device in two domains, whoever races (invariant 2): 50 races of two 'usbvm attach'
# processes sending one stick to two domains, and 50 races of 'usbvm attach' to domain A
# against 'usbvm watch' attaching the same stick to domain B by policy at its plug. libvirt's
# own device-added/device-removed events, recorded for the whole test by 'virsh event', are
# the timeline: at no moment may the stick's alias be in both domains.
set -euo pipefail
# shellcheck source=watch-lib.sh
source "$USBVM_SRCDIR/tests/integration/watch-lib.sh"
wl_init
RACES=${USBVM_RACES:-50}

a=$(usbvm_h_domain_create racea)
usbvm_h_domain_track "$a"
b=$(usbvm_h_domain_create raceb)
usbvm_h_domain_track "$b"

timeline=$USBVM_H_TMP/events.txt
virsh -c "$USBVM_H_URI" event --all --loop --timestamp >"$timeline" 2>&1 &
EV_PID=$!
trap 'WL_RC=$?; kill $EV_PID 2>/dev/null || true; wl_cleanup; (exit $WL_RC); usbvm_h_cleanup' EXIT
# The recorder is subscribed once it reports an event of A: pause and resume A until it does
# (it may not be registered yet the first time).
subscribed=0
for _ in 1 2 3 4 5; do
    virsh -q -c "$USBVM_H_URI" suspend "$a" >/dev/null
    virsh -q -c "$USBVM_H_URI" resume "$a" >/dev/null
    if timeout 4 grep -q -m1 "domain '$a': Resumed" <(tail -n +1 -F "$timeline" 2>/dev/null); then
        subscribed=1
        break
    fi
done
[ $subscribed = 1 ] || usbvm_h_fail "virsh event recorded nothing of $a: $(cat "$timeline")"

cli() { LD_PRELOAD=libumockdev-preload.so.0 "$USBVM" -c "$USBVM_H_URI" "$@"; }

# wait_owned DOMAIN N : until the domain holds N ua-usbvm- devices; waits for libvirt's next
# device event between looks, bounded.
wait_owned() {
    local d=$1 want=$2 deadline=$((SECONDS + USBVM_H_TIMEOUT))
    while [ "$(wl_owned "$d")" != "$want" ]; do
        [ $SECONDS -lt $deadline ] || usbvm_h_fail "$d holds $(wl_owned "$d") devices, not $want"
        virsh -q -c "$USBVM_H_URI" event --domain "$d" --timeout 2 >/dev/null 2>&1 || true
    done
}

# ---- two CLIs: one stick, domains A and B at once -------------------------------------------
wl_stick r 1-3 RACE1
wl_plug "$WL_FILE" >/dev/null
wins_a=0 wins_b=0 refused=0
for ((i = 1; i <= RACES; i++)); do
    cli attach "$a" 1-3 --mode usb-disk --json >"$USBVM_H_TMP/a.json" 2>/dev/null &
    pa=$!
    cli attach "$b" 1-3 --mode usb-disk --json >"$USBVM_H_TMP/b.json" 2>/dev/null &
    pb=$!
    ra=0 rb=0
    wait $pa || ra=$?
    wait $pb || rb=$?
    total=$(($(wl_owned "$a") + $(wl_owned "$b")))
    [ "$total" = 1 ] || usbvm_h_fail "race $i: the stick is in $total domains (rc $ra/$rb)"
    if [ $ra = 0 ] && [ $rb = 4 ]; then
        wins_a=$((wins_a + 1)) winner=$a
    elif [ $rb = 0 ] && [ $ra = 4 ]; then
        wins_b=$((wins_b + 1)) winner=$b
    else
        usbvm_h_fail "race $i: exit codes $ra and $rb, expected one 0 and one 4 (refused)"
    fi
    refused=$((refused + 1))
    cli detach "$winner" 1-3 >/dev/null || usbvm_h_fail "race $i: detach from $winner failed"
    wait_owned "$winner" 0
done
usbvm_h_ok "two CLIs, $RACES races: A won $wins_a, B won $wins_b, the other refused $refused times"
wl_unplug 1-3 >/dev/null

# ---- the CLI against watch: watch starts (and applies the policy to the present stick) while
# 'usbvm attach' sends the same stick to A; both take about as long to get going.
rules=$USBVM_H_TMP/race.rules
echo "attach serial \"RACE2\" to $b as usb-disk" >"$rules"
wl_stick w 1-4 RACE2
wl_plug "$WL_FILE" >/dev/null
cli_won=0 watch_won=0
for ((i = 1; i <= RACES; i++)); do
    : >"$WL_LOG"
    LD_PRELOAD=libumockdev-preload.so.0 "$USBVM" -c "$USBVM_H_URI" watch --json --rules "$rules" \
        >>"$WL_LOG" 2>>"$WL_LOG.err" &
    WL_WATCH_PID=$!
    rc=0
    cli attach "$a" serial=RACE2 --mode usb-disk >/dev/null 2>&1 || rc=$?
    # Whoever won, the policy ends with the stick in B only.
    wl_wait '"event":"attach".*"serial":"RACE2".*"result":"ok"' 1 60
    wait_owned "$a" 0
    wait_owned "$b" 1
    case $rc in
    0) cli_won=$((cli_won + 1)) ;;
    4) watch_won=$((watch_won + 1)) ;;
    *) usbvm_h_fail "race $i: usbvm attach exited $rc, expected 0 or 4 (refused)" ;;
    esac
    wl_watch_stop >/dev/null
    cli detach "$b" serial=RACE2 >/dev/null || usbvm_h_fail "race $i: detach from $b failed"
    wait_owned "$b" 0
done
usbvm_h_ok "CLI against watch, $RACES races: the CLI won $cli_won (watch moved it), watch won $watch_won"

# ---- the timeline: never in two domains at once -----------------------------------------------
kill $EV_PID 2>/dev/null || true
wait $EV_PID 2>/dev/null || true
added=$(grep -c "device-added" "$timeline" || true)
both=$(awk -v a="$a" -v b="$b" '
    /device-added/   { n = split($0, f, "'"'"'"); dom = f[4]; al = $NF; in_[al, dom] = 1 }
    /device-removed/ { n = split($0, f, "'"'"'"); dom = f[4]; al = $NF; in_[al, dom] = 0 }
    /device-(added|removed)/ { if (in_[al, a] && in_[al, b]) bad++ }
    END { print bad + 0 }' "$timeline")
[ "$added" -ge $((RACES * 2)) ] || usbvm_h_fail "the timeline holds only $added device-added events"
usbvm_h_assert_eq 0 "$both" "timeline of $added attaches: never in two domains at once"
