#!/bin/bash
# Builds the outer host's root filesystem image from nothing:
#   debootstrap --variant=minbase (Debian 12) -> configure -> mkfs.ext4 -d (no loop mount)
# and extracts the kernel and initrd for direct boot.  The result is cached under
# tests/e2e/cache/, keyed by the sha256 of this file (the package list lives here), so
# any change to this file rebuilds the image and nothing else does.
#
# Usage: rootfs.sh CACHE_DIR WORK_DIR    prints the cache key prefix on stdout.
set -euo pipefail

# Everything the outer host needs: a systemd-booted Debian with udev, the guest agent,
# a stock libvirt + QEMU for the inner domains, and the runtime libraries of usbvm.
# libpam-systemd is named explicitly: debootstrap cannot resolve the virtual package
# (default-logind) and polkitd then fails to configure.
PACKAGES=(
    linux-image-amd64 initramfs-tools systemd-sysv libpam-systemd udev dbus kmod procps
    usbutils qemu-guest-agent libvirt-daemon-system libvirt-daemon-driver-qemu
    libvirt-clients qemu-system-x86 iptables util-linux mount e2fsprogs
    libvirt0 libxml2 libudev1 libusb-1.0-0 libpopt0 libjson-c5
)
SUITE=bookworm

cache=${1:?cache dir}
work=${2:?work dir}
self=$(readlink -f "${BASH_SOURCE[0]}")
key=$(sha256sum "$self" | cut -c1-16)
prefix="$cache/outer-$key"

# One build at a time: tests/run-all starts one in the background while the tests run, and
# test-guest-data, test-guest-watch and tests/e2e/run each ask for the image; whoever comes
# second waits here and then finds it cached. Bounded: a build takes about 5 minutes.
mkdir -p "$cache"
exec 9>"$cache/.build.lock"
if ! flock -w 1800 9; then
    echo "rootfs: another build of the image held $cache/.build.lock for 30 minutes;" \
        "end it (fuser -v $cache/.build.lock) and run again" >&2
    exit 1
fi

if [[ -s $prefix.img.zst && -s $prefix.vmlinuz && -s $prefix.initrd ]]; then
    echo "$prefix"
    exit 0
fi

# The same mirror the host's apt uses (deb822 .sources first, then one-line lists).
mirror=$(sed -n 's/^URIs:[[:space:]]*\([^[:space:]]*\/debian\)[[:space:]]*$/\1/p' \
             /etc/apt/sources.list.d/*.sources 2>/dev/null | head -n1 || true)
if [[ -z $mirror ]]; then
    mirror=$(awk '$1 == "deb" && $3 ~ /^bookworm$/ { print $2; exit }' \
                 /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null || true)
fi
mirror=${mirror:-http://deb.debian.org/debian}

mkdir -p "$cache" "$work"
root=$(mktemp -d "$work/rootfs.XXXXXX")
cleanup() {
    # debootstrap may leave proc/sys mounted inside the chroot on failure.
    local m
    for m in proc sys dev/pts dev; do
        if mountpoint -q "$root/$m" 2>/dev/null; then umount -l "$root/$m" || true; fi
    done
    rm -rf "$root" "$prefix".tmp.*
}
trap cleanup EXIT
trap 'exit 143' TERM INT # the EXIT trap unmounts and removes the half-built tree

t0=$SECONDS
echo "rootfs: debootstrap $SUITE from $mirror into $root" >&2
include=$(IFS=,; echo "${PACKAGES[*]}")
if ! debootstrap --variant=minbase --include="$include" "$SUITE" "$root" "$mirror" \
        >"$work/debootstrap.log" 2>&1; then
    tail -n 30 "$work/debootstrap.log" >&2
    tail -n 30 "$root/debootstrap/debootstrap.log" >&2 2>/dev/null || true
    exit 1
fi
echo "rootfs: debootstrap took $((SECONDS - t0)) s" >&2

# --- configure ---------------------------------------------------------------
echo outer >"$root/etc/hostname"
printf '127.0.0.1 localhost\n127.0.1.1 outer\n' >"$root/etc/hosts"
echo 'LABEL=outer / ext4 defaults,noatime 0 1' >"$root/etc/fstab"
chroot "$root" passwd -d root >/dev/null            # serial-console login for debugging
# No network exists: the default NAT network would only fail to start.
rm -f "$root/etc/libvirt/qemu/networks/autostart/default.xml"
# Nothing in the outer host should compete with the tests for 2 TCG vCPUs.
for unit in apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer fstrim.timer \
            man-db.timer systemd-timesyncd.service; do
    ln -sf /dev/null "$root/etc/systemd/system/$unit"
done
# The guest agent is started by udev when its virtio port appears; also want it in the
# boot transaction so it is up as early as possible.
mkdir -p "$root/etc/systemd/system/multi-user.target.wants"
ln -sf /lib/systemd/system/qemu-guest-agent.service \
    "$root/etc/systemd/system/multi-user.target.wants/qemu-guest-agent.service"
mkdir -p "$root/mnt/e2e"
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*

# --- kernel + initrd for direct boot ----------------------------------------
vmlinuz=$(printf '%s\n' "$root"/boot/vmlinuz-* | sort -V | tail -n1)
initrd=$(printf '%s\n' "$root"/boot/initrd.img-* | sort -V | tail -n1)
cp "$vmlinuz" "$prefix.tmp.vmlinuz"
cp "$initrd" "$prefix.tmp.initrd"

# --- pack --------------------------------------------------------------------
t1=$SECONDS
used_mb=$(du -sm "$root" | cut -f1)
size_mb=$((used_mb + used_mb / 2 + 256))
mkfs.ext4 -q -F -L outer -d "$root" "$prefix.tmp.img" "${size_mb}M" >&2
zstd -q -T0 -3 --rm "$prefix.tmp.img" -o "$prefix.tmp.img.zst"
echo "rootfs: used ${used_mb} MB, image ${size_mb} MB, $(du -m "$prefix.tmp.img.zst" | cut -f1) MB zstd; pack took $((SECONDS - t1)) s, total $((SECONDS - t0)) s" >&2

mv "$prefix.tmp.vmlinuz" "$prefix.vmlinuz"
mv "$prefix.tmp.initrd" "$prefix.initrd"
mv "$prefix.tmp.img.zst" "$prefix.img.zst"
echo "$prefix"
