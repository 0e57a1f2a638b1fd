#!/bin/bash
# usbvm watch --once (apply the policy now, print a summary, exit) and --dry-run (say what
# would be done, change nothing), as Ansible uses them; then 32 sticks plugged at once into a
# running watch: all attached, none lost.
set -euo pipefail
# shellcheck source=watch-lib.sh
source "$USBVM_SRCDIR/tests/integration/watch-lib.sh"
wl_init

dom=$(usbvm_h_domain_create once)
usbvm_h_domain_track "$dom"
rules=$USBVM_H_TMP/once.rules
printf 'attach with-interface 08:06:50 serial "ON1" to %s as usb-disk\n' "$dom" >"$rules"

wl_stick a 1-2 ON1
wl_cmd "load ${WL_FILE%.umockdev}.full" >/dev/null # present before watch starts

run_once() {
    local rc=0
    LD_PRELOAD=libumockdev-preload.so.0 "$USBVM" -c "$USBVM_H_URI" watch --json --once \
        --rules "$rules" "$@" >"$USBVM_H_TMP/once.out" || rc=$?
    cat "$USBVM_H_TMP/once.out" >>"$WL_LOG"
    [ $rc -eq 0 ] || usbvm_h_fail "watch --once $* exited $rc: $(cat "$USBVM_H_TMP/once.out")"
    jq -c 'select(.event=="summary")' "$USBVM_H_TMP/once.out"
}
# what a record says was (or would be) done: "attach PORT DOMAIN MODE", one per line
actions() {
    jq -r --arg r "$1" 'select((.event=="attach" or .event=="detach") and .result==$r)
        | "\(.event) \(.device) \(.domain) \(.mode // "-")"' "$USBVM_H_TMP/once.out" | sort
}
sum=$(run_once --dry-run)
usbvm_h_assert_eq true "$(jq -r .changed <<<"$sum")" "--once --dry-run: changed=true (would attach)"
usbvm_h_assert_eq 1 "$(jq -r .attached <<<"$sum")" "--once --dry-run: one attach predicted"
usbvm_h_assert_eq 0 "$(wl_owned "$dom")" "--dry-run: nothing attached"
predicted=$(actions dry-run)
sum=$(run_once)
usbvm_h_assert_eq true "$(jq -r .changed <<<"$sum")" "--once: changed=true"
usbvm_h_assert_eq 1 "$(jq -r .attached <<<"$sum")" "--once: one attached"
usbvm_h_assert_eq 1 "$(wl_owned "$dom")" "--once: the device is in the domain"
usbvm_h_assert_eq "$predicted" "$(actions ok)" "--once did exactly what --dry-run predicted"
sum=$(run_once --dry-run)
usbvm_h_assert_eq false "$(jq -r .changed <<<"$sum")" "--once --dry-run once done: nothing more predicted"
sum=$(run_once)
usbvm_h_assert_eq false "$(jq -r .changed <<<"$sum")" "--once again: changed=false (idempotent)"
usbvm_h_assert_eq 1 "$(wl_owned "$dom")" "--once again: still one device"

# ---- 32 sticks at once, on a second bus
# scsi: the domain's qemu-xhci has four USB 2 ports, virtio-scsi has room for all 32.
printf 'attach with-interface 08:06:50 to %s as scsi\n' "$dom" >"$rules"
burst=$USBVM_H_TMP/burst.umockdev
: >"$burst"
letters=(a b c d e f g h i j k l m n o p q r s t u v w x y z)
for i in $(seq 1 32); do
    # disk names sdba..sdcf: letters only, so none looks like a partition
    wl_stick "${letters[$((1 + (i - 1) / 26))]}${letters[$(((i - 1) % 26))]}" "3-$i" "BURST$i"
    cat "$WL_FILE" >>"$burst"
done
wl_cmd "load ${WL_FILE%.umockdev}.full.hub" >/dev/null
wl_watch_start "$rules"
wl_cmd "plug $burst" >/dev/null
wl_wait '"event":"attach".*"serial":"BURST[0-9]+".*"result":"ok"' 32 180
usbvm_h_ok "32 sticks plugged at once: 32 attached"
# The first stick moves from usb-disk to scsi under the new rules: detached, then attached.
wl_wait '"event":"attach".*"serial":"ON1".*"mode":"scsi".*"result":"ok"' 1 60
usbvm_h_assert_eq 33 "$(wl_owned "$dom")" "all 33 in the domain, none twice"
wl_watch_stop
