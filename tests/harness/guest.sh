# A test guest with an operating system: the e2e's Debian image (tests/e2e/rootfs.sh: kernel,
# udev, systemd, qemu-guest-agent) booted as a libvirt TCG domain, its root a qcow2 overlay on
# the cached image, its guest agent on the virtio-serial channel org.qemu.guest_agent.0.
# Sourced after tests/harness/libvirt.sh:
#
#   source "$USBVM_SRCDIR/tests/harness/guest.sh"
#   dom=$(usbvm_g_domain_create data)      # defines + starts it; prints the name
#   usbvm_h_domain_track "$dom"
#   usbvm_g_wait_agent "$dom"              # until guest-ping answers (bounded)
#   usbvm_g_exec "$dom" 'mount /dev/vdb /mnt && sha256sum /mnt/f'
#
# The image is built once (about 5 minutes from nothing) and cached under tests/e2e/cache,
# keyed by rootfs.sh's sha256, exactly as tests/e2e/run uses it; a failure to build it fails
# the test. USBVM_G_BOOT_TIMEOUT (default 300 s) bounds the boot, USBVM_G_MEMORY (MiB,
# default 768) sizes the guest.

USBVM_G_BOOT_TIMEOUT=${USBVM_G_BOOT_TIMEOUT:-300}
USBVM_G_MEMORY=${USBVM_G_MEMORY:-768}
USBVM_G_PREFIX=

# usbvm_g_image : builds or finds the image; sets USBVM_G_PREFIX (raw image = $prefix.img).
usbvm_g_image() {
    [ -n "$USBVM_G_PREFIX" ] && return 0
    usbvm_h_require debootstrap zstd mkfs.ext4 qemu-img
    local e2e=$USBVM_SRCDIR/tests/e2e t0=$SECONDS prefix
    prefix=$("$e2e/rootfs.sh" "$e2e/cache" "$e2e/work") ||
        usbvm_h_fail "cannot build the guest image with tests/e2e/rootfs.sh (see above)"
    if [ ! -s "$prefix.img" ]; then
        # Two tests may decompress at once: each into its own file, the rename is atomic.
        local tmp="$prefix.img.tmp.$$"
        zstd -q -d -f "$prefix.img.zst" -o "$tmp" || usbvm_h_fail "cannot decompress $prefix.img.zst"
        mv -f "$tmp" "$prefix.img"
    fi
    usbvm_h_log "guest image ready in $((SECONDS - t0)) s: ${prefix##*/}"
    USBVM_G_PREFIX=$prefix
}

# usbvm_g_domain_xml NAME OVERLAY : q35 TCG with qemu-xhci, virtio-scsi, the agent channel and
# direct kernel boot. Services of the image the tests do not need are masked on the command
# line, so the guest spends its one vCPU on udev and the agent. The guest's own devices sit on
# the root bus: a hot-plug into a root port then never moves their resources under them.
usbvm_g_domain_xml() {
    local name=$1 overlay=$2 p=$USBVM_G_PREFIX unit mask=""
    for unit in libvirtd.service libvirtd.socket libvirtd-ro.socket libvirtd-admin.socket \
        virtlogd.service virtlogd.socket virtlockd.service virtlockd.socket \
        libvirt-guests.service systemd-networkd.service cron.service dbus.service dbus.socket \
        systemd-logind.service getty@tty1.service serial-getty@ttyS0.service \
        systemd-update-utmp.service systemd-update-utmp-runlevel.service e2scrub_reap.service \
        systemd-journal-flush.service logrotate.timer dpkg-db-backup.timer; do
        mask+=" systemd.mask=$unit"
    done
    cat <<EOF
<domain type='qemu'>
  <name>$name</name>
  <memory unit='MiB'>$USBVM_G_MEMORY</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='q35'>hvm</type>
    <kernel>$p.vmlinuz</kernel>
    <initrd>$p.initrd</initrd>
    <cmdline>root=/dev/vda rw console=ttyS0 loglevel=4 mitigations=off systemd.show_status=0$mask</cmdline>
  </os>
  <features><acpi/><apic/></features>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2' cache='unsafe'/>
      <source file='$overlay'/>
      <target dev='vda' bus='virtio'/>
      <address type='pci' domain='0' bus='0' slot='4' function='0'/>
    </disk>
    <controller type='usb' model='qemu-xhci'>
      <address type='pci' domain='0' bus='0' slot='5' function='0'/>
    </controller>
    <controller type='scsi' model='virtio-scsi'>
      <address type='pci' domain='0' bus='0' slot='6' function='0'/>
    </controller>
    <controller type='virtio-serial'>
      <address type='pci' domain='0' bus='0' slot='7' function='0'/>
    </controller>
    <controller type='pci' model='pcie-root'/>
    <controller type='pci' model='pcie-root-port'/>
    <controller type='pci' model='pcie-root-port'/>
    <controller type='pci' model='pcie-root-port'/>
    <channel type='unix'>
      <target type='virtio' name='org.qemu.guest_agent.0'/>
    </channel>
    <serial type='file'><source path='$USBVM_H_TMP/$name.console'/></serial>
    <memballoon model='none'/>
  </devices>
</domain>
EOF
}

# usbvm_g_domain_create TAG : defines and starts usbvm-test-TAG-<pid> on a fresh overlay;
# prints the name. Call usbvm_h_domain_track in the test's shell.
usbvm_g_domain_create() {
    usbvm_g_image
    local name="usbvm-test-$1-$$" overlay
    overlay="$USBVM_H_TMP/$name.qcow2"
    # QEMU runs as its own user: it must reach the overlay and the console file.
    chmod 0711 "$USBVM_H_TMP"
    qemu-img create -q -f qcow2 -F raw -b "$USBVM_G_PREFIX.img" "$overlay" >&2 ||
        usbvm_h_fail "cannot create the overlay $overlay"
    usbvm_g_domain_xml "$name" "$overlay" >"$USBVM_H_TMP/$name.xml"
    virsh -q -c "$USBVM_H_URI" define "$USBVM_H_TMP/$name.xml" >/dev/null ||
        usbvm_h_fail "cannot define domain $name"
    virsh -q -c "$USBVM_H_URI" start "$name" >/dev/null || usbvm_h_fail "cannot start domain $name"
    printf '%s\n' "$name"
}

# usbvm_g_wait_agent DOM [TIMEOUT] : until the guest agent answers guest-ping. Each try is
# bounded by the agent command's own timeout; while the agent is not connected libvirt says
# so at once, so the wait follows libvirt's agent-lifecycle event instead of retrying.
usbvm_g_wait_agent() {
    local dom=$1 t=${2:-$USBVM_G_BOOT_TIMEOUT} end
    end=$((SECONDS + t))
    while ((SECONDS < end)); do
        if virsh -c "$USBVM_H_URI" qemu-agent-command "$dom" --timeout 5 \
            '{"execute":"guest-ping"}' >/dev/null 2>&1; then
            return 0
        fi
        # Returns on the next agent connect/disconnect event, or when the time is up.
        virsh -q -c "$USBVM_H_URI" event --domain "$dom" --event agent-lifecycle \
            --timeout $((end - SECONDS > 0 ? (end - SECONDS < 30 ? end - SECONDS : 30) : 1)) \
            >/dev/null 2>&1 || true # its timeout is not an error (set -e callers)
    done
    tail -n 30 "$USBVM_H_TMP/$dom.console" >&2 2>/dev/null || true
    usbvm_h_fail "the guest agent of $dom did not answer within $t s"
}

# usbvm_g_agent DOM JSON [TIMEOUT] : one raw agent command (test side only); prints the reply.
usbvm_g_agent() {
    virsh -c "$USBVM_H_URI" qemu-agent-command "$1" --timeout "${3:-10}" "$2"
}

# usbvm_g_exec DOM SCRIPT [TIMEOUT] : runs SCRIPT with /bin/sh in the guest through guest-exec;
# prints its stdout (stderr to ours), returns its exit code (124 when it ran out of time).
# guest-exec-status has no event: it is asked again at once, each ask a full agent round trip.
usbvm_g_exec() {
    local dom=$1 script=$2 t=${3:-60} req pid st end
    req=$(jq -cn --arg s "$script" \
        '{execute:"guest-exec",arguments:{path:"/bin/sh",arg:["-c",$s],"capture-output":true}}')
    st=$(usbvm_g_agent "$dom" "$req") || return 1
    pid=$(jq -r .return.pid <<<"$st")
    end=$((SECONDS + t))
    while ((SECONDS < end)); do
        st=$(usbvm_g_agent "$dom" "{\"execute\":\"guest-exec-status\",\"arguments\":{\"pid\":$pid}}") ||
            return 1
        if [ "$(jq -r .return.exited <<<"$st")" = true ]; then
            jq -r '.return["out-data"] // ""' <<<"$st" | base64 -d
            jq -r '.return["err-data"] // ""' <<<"$st" | base64 -d >&2
            return "$(jq -r '.return.exitcode // 1' <<<"$st")"
        fi
    done
    return 124
}

# usbvm_g_by_id MODE SERIAL : the guest's stable link for a disk usbvm attached in MODE.
usbvm_g_by_id() {
    case $1 in
    virtio) echo "/dev/disk/by-id/virtio-$2" ;;
    scsi) echo "/dev/disk/by-id/scsi-0QEMU_QEMU_HARDDISK_$2" ;;
    usb-disk) echo "/dev/disk/by-id/usb-QEMU_QEMU_HARDDISK_$2-0:0" ;;
    *) usbvm_h_fail "usbvm_g_by_id: no guest link for mode $1" ;;
    esac
}
