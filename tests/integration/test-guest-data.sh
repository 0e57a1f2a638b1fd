# Data through a guest with an OS, in every disk mode (usb-disk, virtio, scsi), through
# `usbvm attach`/`detach`: the host writes random bytes to the stick's filesystem, the guest
# reads them (sha256 of the guest's view), writes its own file and unmounts, and after the
# detach the host reads that file (sha256). While the guest has the disk mounted, status says
# where, detach is refused (exit 4) and the guest's file survives; `detach --flush --force`
# keeps the guest's last write. The checksums and times are printed.
set -u
source "$USBVM_SRCDIR/tests/harness/libvirt.sh"
source "$USBVM_SRCDIR/tests/harness/guest.sh"
usbvm_h_init
usbvm_h_require mkfs.ext4 sha256sum
usbvm_h_libvirtd_start

loop=$(usbvm_h_loop_create 64M)
usbvm_h_loop_track "$loop"
serial=GUEST0001
byid="usb-USBVM_Guest_Stick_${serial}_$$-0:0" # /dev/disk/by-id is the host's: named per run
usbvm_h_by_id_link "$byid" "$loop"
FX=$(usbvm_h_fixture_usb_stick --port 1-2 --devnum 4 --loop "$loop" --serial "$serial" \
    --by-id "$byid")
uv() { umockdev-run -d "$FX" -- "$USBVM" "$@"; }
HMNT=$USBVM_H_TMP/host-mnt
mkdir -p "$HMNT"
usbvm_h_mount_track "$HMNT"
GMNT=/mnt/usbvm-test

now_ms() { local t=${EPOCHREALTIME/./}; echo $((t / 1000)); }

t0=$(now_ms)
dom=$(usbvm_g_domain_create data)
usbvm_h_domain_track "$dom"
usbvm_g_wait_agent "$dom"
usbvm_h_log "guest $dom: agent answers $(($(now_ms) - t0)) ms after 'virsh start' (TCG)"
usbvm_h_ok "the guest boots and its agent answers"

# host_write FS NAME : a fresh filesystem on the stick with NAME of 1 MiB random bytes; prints
# its sha256. (ext4: the host's kernel here has no vfat to check the guest's writes with.)
host_write() {
    "mkfs.$1" -q -F -L usbvmtest "$loop" || usbvm_h_fail "mkfs.$1 on $loop failed"
    mount "$loop" "$HMNT" || usbvm_h_fail "cannot mount $loop on the host"
    head -c 1048576 /dev/urandom >"$HMNT/$2"
    sha256sum "$HMNT/$2" | cut -d' ' -f1
    umount "$HMNT" || usbvm_h_fail "cannot unmount $loop on the host"
}
# host_read NAME : sha256 of NAME on the stick, as the host reads it.
host_read() {
    # Nothing of the host's own earlier view may answer for what the guest wrote.
    blockdev --flushbufs "$loop"
    mount -o ro "$loop" "$HMNT" || usbvm_h_fail "cannot mount $loop on the host after detach"
    sha256sum "$HMNT/$1" 2>/dev/null | cut -d' ' -f1
    umount "$HMNT"
}
# guest_mounts : the guest's mount points of the stick, as `usbvm status` reports them.
guest_mounts() {
    usbvm_h_run st uv status --json
    [ "$st_rc" = 0 ] || usbvm_h_fail "status failed: $st_err"
    local m
    m=$(jq -c --arg d "$dom" '.[] | select(.domain == $d) | .guest.mounts' <<<"$st")
    # A watch daemon elsewhere on this host may take the disk away: say so, do not guess.
    [ -n "$m" ] || usbvm_h_fail "status lists nothing in $dom: $st"
    printf '%s\n' "$m"
}

for mode in usb-disk virtio scsi; do
    fs=ext4
    link=$(usbvm_g_by_id "$mode" "$serial")

    # 1. host -> guest
    sum_host=$(host_write "$fs" from-host)
    usbvm_h_run out uv attach "$dom" 1-2 --mode "$mode" --json
    usbvm_h_assert_eq 0 "$out_rc" "$mode: attach exits 0 ($out_err $out)"
    usbvm_h_assert_eq '[]' "$(guest_mounts)" "$mode: status says the guest has it unmounted"
    sum_guest=$(usbvm_g_exec "$dom" "udevadm wait --settle --timeout=60 $link >/dev/null &&
        mkdir -p $GMNT && mount $link $GMNT && sha256sum $GMNT/from-host | cut -d' ' -f1" 90)
    if [ -z "$sum_guest" ] && ! usbvm_h_live_xml "$dom" | grep -q "alias name='ua-usbvm-"; then
        usbvm_h_fail "$mode: the disk left $dom before the guest read it (a usbvm watch of" \
            "another test on this host detaches what it does not know): run again"
    fi
    usbvm_h_assert_eq "$sum_host" "$sum_guest" "$mode: the guest reads the host's file"
    usbvm_h_log "$mode ($fs): host wrote from-host sha256 $sum_host; the guest read $sum_guest"

    # 2. mounted in the guest: status says where; detach is refused; the file survives.
    usbvm_h_assert_eq "[\"$GMNT\"]" "$(guest_mounts)" "$mode: status names the guest's mount point"
    usbvm_h_run out uv show 1-2
    usbvm_h_assert_match "In the guest: +$dom: mounted on $GMNT" "$out" \
        "$mode: show names the guest's mount point"
    usbvm_h_run out uv detach "$dom" 1-2 --json
    usbvm_h_assert_eq 4 "$out_rc" "$mode: detach of a guest-mounted disk is refused (exit 4)"
    usbvm_h_assert_match "mounted on $GMNT; unmount it in the guest" "$(usbvm_h_json .msg "$out")" \
        "$mode: the refusal names the mount point and what to do"
    usbvm_h_run out uv detach "$dom" 1-2
    usbvm_h_assert_match "^usbvm: cannot detach 1-2 from '$dom': the guest has it mounted on $GMNT" \
        "$out_err" "$mode: text mode says the same on stderr"
    usbvm_h_assert_match "$(usbvm_h_json .device.alias "$(uv --json show 1-2)")" \
        "$(usbvm_h_live_xml "$dom")" "$mode: still attached after the refusal"
    sum_again=$(usbvm_g_exec "$dom" "sha256sum $GMNT/from-host | cut -d' ' -f1")
    usbvm_h_assert_eq "$sum_host" "$sum_again" "$mode: the guest's file survives the refusal"

    # 3. guest -> host, the clean way: the guest unmounts, the detach is confirmed.
    sum_gw=$(usbvm_g_exec "$dom" "head -c 524288 /dev/urandom >$GMNT/from-guest &&
        sha256sum $GMNT/from-guest | cut -d' ' -f1 && umount $GMNT")
    [ -n "$sum_gw" ] || usbvm_h_fail "$mode: the guest could not write its file"
    usbvm_h_assert_eq '[]' "$(guest_mounts)" "$mode: status sees the guest's unmount"
    t0=$(now_ms)
    usbvm_h_run out uv detach "$dom" 1-2 --timeout 60 --json
    dt=$(($(now_ms) - t0))
    usbvm_h_assert_eq 0 "$out_rc" "$mode: detach exits 0 ($out_err $out)"
    usbvm_h_assert_eq detached "$(usbvm_h_json .state "$out")" \
        "$mode: the guest released it: detach confirmed, not pending"
    usbvm_h_log "$mode: detach confirmed in $dt ms"
    sum_hr=$(host_read from-guest)
    usbvm_h_assert_eq "$sum_gw" "$sum_hr" "$mode: the host reads the guest's file"
    usbvm_h_log "$mode ($fs): guest wrote from-guest sha256 $sum_gw; the host read $sum_hr"

    # 4. --flush then --force: the guest's last write, never unmounted, reaches the host.
    usbvm_h_run out uv attach "$dom" 1-2 --mode "$mode" --json
    usbvm_h_assert_eq 0 "$out_rc" "$mode: attach again ($out_err)"
    sum_last=$(usbvm_g_exec "$dom" "udevadm wait --settle --timeout=60 $link >/dev/null &&
        mount $link $GMNT && head -c 262144 /dev/urandom >$GMNT/last-write &&
        sha256sum $GMNT/last-write | cut -d' ' -f1" 90)
    [ -n "$sum_last" ] || usbvm_h_fail "$mode: the guest could not write its last file"
    t0=$(now_ms)
    usbvm_h_run out uv detach "$dom" 1-2 --flush --force --timeout 60 --json
    dt=$(($(now_ms) - t0))
    usbvm_h_assert_eq 0 "$out_rc" "$mode: detach --flush --force exits 0 ($out_err $out)"
    usbvm_h_assert_match "flushed $GMNT in the guest" "$(usbvm_h_json '.notes[0]' "$out")" \
        "$mode: the answer says it flushed the guest's mount"
    usbvm_h_log "$mode: detach --flush --force took $dt ms, state $(usbvm_h_json .state "$out")"
    sum_lr=$(host_read last-write)
    usbvm_h_assert_eq "$sum_last" "$sum_lr" "$mode: --flush kept the guest's last write"
    usbvm_h_log "$mode ($fs): guest's last write sha256 $sum_last; the host read $sum_lr"
    # The guest still has the dead mount: clear it for the next mode.
    usbvm_g_exec "$dom" "umount -l $GMNT" >/dev/null 2>&1
done

# 5. An agent that does not answer (qemu-ga stopped in the guest): status and detach stay
#    bounded; detach goes ahead and says that the guest's mounts are unknown.
usbvm_h_run out uv attach "$dom" 1-2 --mode usb-disk --json
usbvm_h_assert_eq 0 "$out_rc" "no agent: attach ($out_err)"
# guest-exec answers when the child is spawned; the child stops the agent after that.
usbvm_g_agent "$dom" '{"execute":"guest-exec","arguments":{"path":"/bin/sh","arg":["-c","kill -STOP $(pidof qemu-ga)"]}}' \
    >/dev/null 2>&1 || true
end=$((SECONDS + 60))
while ((SECONDS < end)) && usbvm_g_agent "$dom" '{"execute":"guest-ping"}' 2 >/dev/null 2>&1; do :; done
((SECONDS < end)) || usbvm_h_fail "the guest agent still answers after being stopped"
t0=$(now_ms)
usbvm_h_run st uv status --json
dt=$(($(now_ms) - t0))
usbvm_h_assert_eq 0 "$st_rc" "no agent: status exits 0 ($st_err)"
g=$(jq -c --arg d "$dom" '.[] | select(.domain == $d) | .guest' <<<"$st")
usbvm_h_assert_eq false "$(usbvm_h_json .agent "$g")" "no agent: status says the agent did not answer"
usbvm_h_assert_eq null "$(usbvm_h_json .mounts "$g")" "no agent: mounts unknown (null)"
usbvm_h_log "no agent: status took $dt ms ($(usbvm_h_json .error "$g"))"
((dt < 20000)) || usbvm_h_fail "status waited $dt ms for an agent that does not answer"
usbvm_h_ok "no agent: status is bounded ($dt ms)"
t0=$(now_ms)
usbvm_h_run out uv detach "$dom" 1-2 --timeout 30 --json
dt=$(($(now_ms) - t0))
usbvm_h_assert_eq 0 "$out_rc" "no agent: detach goes ahead ($out_err $out)"
usbvm_h_assert_eq detached "$(usbvm_h_json .state "$out")" "no agent: detached"
usbvm_h_assert_match "^the guest's mounts are unknown" "$(usbvm_h_json '.notes[0]' "$out")" \
    "no agent: notes say the guest's mounts are unknown"
usbvm_h_log "no agent: detach took $dt ms"
((dt < 20000)) || usbvm_h_fail "detach waited $dt ms for an agent that does not answer"
usbvm_h_ok "no agent: detach is bounded ($dt ms)"
