#!/bin/bash
# Helpers that run inside the outer host (sourced by every guest-exec'd command).
# They are copied to the outer host's data disk (/mnt/e2e) at boot time.
set -euo pipefail

E2E=/mnt/e2e
PATH=$E2E/bin:$PATH
export PATH LC_ALL=C.UTF-8
SERIAL_LOG_DIR=/var/log/libvirt/qemu

die() { echo "guest: $*" >&2; exit 1; }

# wait_line FILE REGEX TIMEOUT [N]: wait until FILE (which may not exist yet) has N
# (default 1) lines matching REGEX; print the Nth.  Event-driven: tail -F follows the
# file with inotify.
wait_line() {
    local f=$1 re=$2 t=$3 want=${4:-1} seen=0 line fd tpid end
    end=$((SECONDS + t))
    exec {fd}< <(exec tail -F -n +1 "$f" 2>/dev/null)
    tpid=$!
    while ((SECONDS < end)); do
        if IFS= read -r -t $((end - SECONDS)) -u "$fd" line; then
            if [[ $line =~ $re ]] && ((++seen >= want)); then
                kill "$tpid" 2>/dev/null || true
                exec {fd}<&-
                printf '%s\n' "$line"
                return 0
            fi
        else
            break
        fi
    done
    kill "$tpid" 2>/dev/null || true
    exec {fd}<&-
    echo "guest: timed out after ${t}s waiting for /$re/ in $f" >&2
    return 1
}

# by_id SERIAL: the stable block device link of an emulated QEMU stick.
by_id() { echo "/dev/disk/by-id/usb-QEMU_QEMU_HARDDISK_$1-0:0"; }

# wait_disk SERIAL [TIMEOUT]: wait (udev event driven) until the stick's disk is
# there, print its /dev/sdX.
wait_disk() {
    local link
    link=$(by_id "$1")
    udevadm wait --timeout="${2:-30}" --settle "$link" >/dev/null || {
        echo "guest: $link did not appear" >&2
        return 1
    }
    readlink -f "$link"
}

# wait_disk_gone SERIAL [TIMEOUT]
wait_disk_gone() {
    udevadm wait --removed --timeout="${2:-30}" "$(by_id "$1")" >/dev/null
}

# usb_sysdir SERIAL: the sysfs directory of the USB device with that serial ("" if none).
usb_sysdir() {
    local d
    for d in /sys/bus/usb/devices/*; do
        [[ -f $d/serial && $(<"$d/serial") == "$1" ]] && { echo "$d"; return 0; }
    done
    return 1
}

# wait_usb SERIAL [TIMEOUT]: wait until the USB device is bound (udev settled) and print
# "PORT BUSNUM DEVNUM".  The USB device has no stable /dev name to `udevadm wait` on,
# so: settle (waits for the udev queue, event driven) and re-check, bounded.
wait_usb() {
    local end d
    end=$((SECONDS + ${2:-30}))
    while ((SECONDS < end)); do
        udevadm settle --timeout=5 || true
        if d=$(usb_sysdir "$1"); then
            echo "$(basename "$d") $(<"$d/busnum") $(<"$d/devnum")"
            return 0
        fi
        # Not enumerated yet: wait for the next usb uevent rather than spinning.
        timeout 2 udevadm monitor --kernel --subsystem-match=usb 2>/dev/null |
            grep -m1 -q 'add' || true
    done
    echo "guest: USB device with serial $1 did not appear" >&2
    return 1
}

# live_xpath DOM XPATH: the matching nodes of DOM's live XML (attribute quotes normalised
# to '); nothing when none match. When virsh cannot read the domain at all it prints an
# ERROR line instead, so that neither an emptiness check nor a grep can pass on a failure.
live_xpath() {
    local xml
    if ! xml=$(virsh -q dumpxml "$1" 2>&1); then
        echo "ERROR: virsh cannot read the live XML of $1: $xml"
        return 1
    fi
    { virsh -q dumpxml "$1" --xpath "$2" 2>/dev/null || true; } | tr '"' "'"
}
# hostdevs DOM: the usb hostdevs in DOM's live XML.
hostdevs() { live_xpath "$1" "//devices/hostdev[@type='usb']"; }
# usbvm_devs DOM: everything carrying a ua-usbvm- alias (hostdevs and disks).
usbvm_devs() { live_xpath "$1" "//devices/*[alias[starts-with(@name,'ua-usbvm-')]]"; }
# monitor DOM HMP: QEMU's answer, or an ERROR line (see live_xpath) when virsh fails.
monitor() {
    local out
    out=$(virsh qemu-monitor-command "$1" --hmp "$2" 2>&1) || { echo "ERROR: $out"; return 1; }
    printf '%s\n' "$out"
}
# info_usb DOM: QEMU's own view of the domain's USB bus.
info_usb() { monitor "$1" 'info usb'; }
# query_block DOM: QEMU's block devices (one "device/qdev: file" per line).
query_block() { monitor "$1" 'info block'; }

# json_get KEY: read a flat JSON object on stdin, print the value of KEY (strings
# unquoted).  usbvm prints json-c output; the guest has no jq or python.
json_get() {
    local key=$1 json
    json=$(cat)
    sed -n "s/.*\"$key\"[[:space:]]*:[[:space:]]*\"\\{0,1\\}\\([^\",}]*\\)\"\\{0,1\\}.*/\\1/p" <<<"$json" | head -n1
}

# now_ms: wall clock in milliseconds.
now_ms() { local t=${EPOCHREALTIME/./}; echo $((t / 1000)); }

# ensure_libvirtd: the stock daemon, socket activated; make sure it answers.
ensure_libvirtd() {
    systemctl start libvirtd.socket libvirtd.service >/dev/null 2>&1 || true
    virsh -q version >/dev/null
}

# define_inner NAME: define and start a minimal inner TCG domain (no OS) whose serial
# port goes to $SERIAL_LOG_DIR/NAME-serial.log.
define_inner() {
    local name=$1 xml
    xml=$(mktemp)
    cat >"$xml" <<XML
<domain type='qemu'>
  <name>$name</name>
  <memory unit='MiB'>64</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='q35'>hvm</type><boot dev='hd'/></os>
  <features><acpi/><tcg><tb-cache unit='MiB'>32</tb-cache></tcg></features>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>restart</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <controller type='usb' index='0' model='qemu-xhci'/>
    <controller type='pci' index='0' model='pcie-root'/>
    <controller type='pci' index='1' model='pcie-root-port'/>
    <controller type='pci' index='2' model='pcie-root-port'/>
    <controller type='pci' index='3' model='pcie-root-port'/>
    <controller type='pci' index='4' model='pcie-root-port'/>
    <controller type='pci' index='5' model='pcie-root-port'/>
    <serial type='file'>
      <source path='$SERIAL_LOG_DIR/$name-serial.log'/>
      <target port='0'/>
    </serial>
    <memballoon model='none'/>
  </devices>
</domain>
XML
    virsh -q destroy "$name" >/dev/null 2>&1 || true
    virsh -q undefine "$name" >/dev/null 2>&1 || true
    virsh -q define "$xml" >/dev/null
    rm -f "$xml"
    virsh -q start "$name" >/dev/null
}

# watch_start RULE: usbvm watch (its log $RUNDIR/watch.log) with RULE as its only rule, and
# inner's libvirt events recorded; returns once watch is ready.
watch_start() {
    printf '%s\n' "$1" >/tmp/e2e-rules
    events_start inner
    bg watch usbvm -v watch --rules /tmp/e2e-rules
    wait_line "$RUNDIR/watch.log" "ready:" 30 >/dev/null
}

# --- the usb-mode data round trip (scenario usb_roundtrip; the guest's side is roundtrip.S)
RT_MNT=/mnt/stick-rt
RT_SECTORS=64 # 32 KiB: what the guest's program moves in one BIOS call

# rt_part SERIAL: the stick's first partition, once udev has it.
rt_part() {
    local disk part
    disk=$(wait_disk "$1") || return 1
    part=${disk}1
    udevadm wait --timeout=30 --settle "$part" >/dev/null || die "$part did not appear"
    echo "$part"
}

# rt_lba FILE PART: the disk sector where FILE's data starts; FILE must be one extent.
rt_lba() {
    local out start
    out=$(filefrag -v -b512 "$1")
    grep -q ': 1 extent found' <<<"$out" || die "$1 is not one extent: $out"
    start=$(cat "/sys/class/block/${2##*/}/start")
    echo $((start + $(awk '$1 == "0:" { sub(/\.\.$/, "", $4); print $4 }' <<<"$out")))
}

# rt_prepare SERIAL MARKER: a fresh ext4 on the stick's partition with data.bin (random
# bytes) and guest.bin (zeros, the guest's answer goes there), and the guest's job in
# sector 1. Prints the sha256 of data.bin and the sha256 the guest's answer must have (every
# byte of data.bin inverted).
rt_prepare() {
    local part disk src dst host want
    part=$(rt_part "$1")
    disk=${part%1}
    mkfs.ext4 -q -F -L rt "$part"
    mkdir -p "$RT_MNT"
    mount "$part" "$RT_MNT"
    head -c $((RT_SECTORS * 512)) /dev/urandom >"$RT_MNT/data.bin"
    head -c $((RT_SECTORS * 512)) /dev/zero >"$RT_MNT/guest.bin"
    sync
    src=$(rt_lba "$RT_MNT/data.bin" "$part")
    dst=$(rt_lba "$RT_MNT/guest.bin" "$part")
    host=$(sha256sum <"$RT_MNT/data.bin" | cut -d' ' -f1)
    want=$(perl -0777 -pe '$_ = ~$_' <"$RT_MNT/data.bin" | sha256sum | cut -d' ' -f1)
    umount "$RT_MNT"
    perl -e 'print pack("a8 V V v x6 Z*", "USBVMRT1", @ARGV)' "$src" "$dst" "$RT_SECTORS" "$2" |
        dd of="$disk" bs=512 seek=1 conv=notrunc,fsync status=none
    sync
    echo "$host $want"
}

# rt_read SERIAL: the sha256 of data.bin and of guest.bin, read from the stick's filesystem.
rt_read() {
    local part a b
    part=$(rt_part "$1")
    mkdir -p "$RT_MNT"
    mount -o ro "$part" "$RT_MNT"
    a=$(sha256sum <"$RT_MNT/data.bin" | cut -d' ' -f1)
    b=$(sha256sum <"$RT_MNT/guest.bin" | cut -d' ' -f1)
    umount "$RT_MNT"
    echo "$a $b"
}

# --- background helpers (spawned with setsid; pids kept so reset can stop them) ---------
RUNDIR=/run/e2e
mkdir -p "$RUNDIR"

# bg NAME CMD...: start CMD in the background, stdout+stderr (line-stamped with the wall
# clock in ms) to $RUNDIR/NAME.log; its pid goes to $RUNDIR/NAME.pid.
bg() {
    local name=$1
    shift
    : >"$RUNDIR/$name.log"
    # In a non-interactive shell the background job is no process-group leader, so
    # setsid(1) calls setsid() itself without forking and $! is the command's pid.
    # shellcheck disable=SC2016
    setsid bash -c '
        log=$1; shift
        exec > >(while IFS= read -r l; do t=${EPOCHREALTIME/./}; printf "%s %s\n" $((t / 1000)) "$l"; done >"$log") 2>&1
        exec "$@"' _ "$RUNDIR/$name.log" "$@" </dev/null >/dev/null 2>&1 &
    echo $! >"$RUNDIR/$name.pid"
}
bg_stop() {
    local pid
    pid=$(cat "$RUNDIR/$1.pid" 2>/dev/null) || return 0
    kill -TERM "$pid" 2>/dev/null || true
    # the process has exited once its /proc entry is gone; bounded wait
    timeout 10 tail --pid="$pid" -f /dev/null 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
    rm -f "$RUNDIR/$1.pid"
}

# events_start DOM: record libvirt domain events of DOM (device-added/removed etc.),
# each line stamped with the wall clock in ms.  Returns once virsh is registered: it
# changes the domain's live description and waits for that metadata-change event.
events_start() {
    bg "events-$1" virsh event --domain "$1" --all --loop --timestamp
    local tok="e2e-sync-$RANDOM$RANDOM" end=$((SECONDS + 20))
    while ((SECONDS < end)); do
        virsh -q desc "$1" --live --new-desc "$tok" >/dev/null
        wait_line "$RUNDIR/events-$1.log" "metadata-change" 5 2>/dev/null >/dev/null && return 0
    done
    echo "guest: virsh event for $1 never registered" >&2
    return 1
}
# events_wait DOM REGEX [TIMEOUT [N]]: wait for the Nth matching event line, print it.
events_wait() { wait_line "$RUNDIR/events-$1.log" "$2" "${3:-30}" "${4:-1}"; }

reset_guest_state() {
    local f d
    for f in "$RUNDIR"/*.pid; do
        [[ -e $f ]] || continue
        f=${f##*/}
        bg_stop "${f%.pid}"
    done
    rm -f "$RUNDIR"/*.log /tmp/e2e-rules*
    for d in /mnt/stick*; do
        [[ -d $d ]] || continue
        umount "$d" 2>/dev/null || true
        rmdir "$d" 2>/dev/null || true
    done
    for d in inner inner2; do
        if [[ -n $(usbvm_devs "$d") || -n $(hostdevs "$d") ]] ||
            virsh -q dumpxml "$d" | grep -q "bus='usb'\|bus='virtio'\|bus='scsi'"; then
            virsh -q destroy "$d" >/dev/null
            virsh -q start "$d" >/dev/null
        fi
    done
}
