#!/bin/bash
# usbvm list / show on umockdev fixtures (tests/fixtures/*.umockdev), with the real binary.
# libvirt is pointed at a socket that does not exist, which also proves the degradation:
# exit 0, domain unknown, one warning. A real loop device, mounted, proves host-use detection.
# Fails (never skips) when a tool is missing.
set -uo pipefail

: "${USBVM:?USBVM must name the usbvm binary}" "${USBVM_SRCDIR:?}"
for tool in umockdev-run jq losetup mkfs.ext4 mount umount; do
    command -v "$tool" >/dev/null || { echo "FAIL: '$tool' is not installed"; exit 1; }
done
# umockdev preloads itself; an ASan build must not insist on coming first.
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0"

FIX="$USBVM_SRCDIR/tests/fixtures"
EXP="$USBVM_SRCDIR/tests/expected"
LAB="$FIX/lab.umockdev"
NOVIRT='qemu+unix:///system?socket=/nonexistent/libvirt-sock'
TMP=$(mktemp -d)
passed=0
failed=0

ok() { passed=$((passed + 1)); }
fail() { failed=$((failed + 1)); echo "FAIL: $*"; }
# expect DESCRIPTION EXPECTED ACTUAL
expect() {
    if [[ "$2" == "$3" ]]; then ok; else fail "$1: expected [$2], got [$3]"; fi
}
# run FIXTURE ARGS...: stdout in $TMP/out, stderr in $TMP/err, exit code in $rc
run() {
    local fixture=$1
    shift
    umockdev-run -d "$fixture" -- "$USBVM" -c "$NOVIRT" "$@" >"$TMP/out" 2>"$TMP/err"
    rc=$?
}
j() { jq -r "$1" "$TMP/out"; }
jc() { jq -c "$1" "$TMP/out"; }

WARN_PREFIX='usbvm: warning: cannot ask libvirt which domains hold the devices, so the domain shows as unknown: '

# ---- list --json: storage only, every fact exact -------------------------------------------
run "$LAB" list --json
expect "list --json exit code" 0 "$rc"
expect "one warning line" 1 "$(wc -l <"$TMP/err")"
expect "the warning says why" "$WARN_PREFIX" "$(head -c ${#WARN_PREFIX} "$TMP/err")"
expect "libvirt unavailable" false "$(j .libvirt.available)"
expect "libvirt error given" true "$(j '.libvirt.error | length > 0')"
expect "storage ports in order" '["1-1","1-2","1-3","1-4","1-6","2-1.1"]' "$(jc '[.devices[].port]')"
expect "domains unknown (null)" '[null,null,null,null,null,null]' "$(jc '[.devices[].domains]')"
D='.devices[] | select(.port=="1-1")'
expect "1-1 ids" '0781:5567' "$(j "$D | .vendor_id + \":\" + .product_id")"
expect "1-1 strings" 'SanDisk|Cruzer Blade|SanDisk Cruzer Blade|4C530001230615117092' \
    "$(j "$D | [.manufacturer,.product,.name,.serial] | join(\"|\")")"
expect "1-1 address" '1 2 /dev/bus/usb/001/002' "$(j "$D | \"\(.busnum) \(.devnum) \(.devnode)\"")"
expect "1-1 identity" '0781:5567:4C530001230615117092' "$(j "$D.identity")"
expect "1-1 alias" 'ua-usbvm-ca41819e98ee4367' "$(j "$D.alias")"
expect "1-1 usb" '2.00 480 0100 00 hotplug true' \
    "$(j "$D | \"\(.version) \(.speed) \(.bcd_device) \(.class) \(.connect_type) \(.authorized)\"")"
expect "1-1 size" 15376318464 "$(j "$D.size")"
expect "1-1 disks" '["/dev/sdb"]' "$(jc "$D.disks")"
expect "1-1 interface" '[{"number":0,"alt":0,"class":"08","subclass":"06","protocol":"50","driver":"usb-storage"}]' \
    "$(jc "$D.interfaces")"
expect "1-1 blocks, disk first" '["sdb:disk:null","sdb1:partition:sdb","sdb2:partition:sdb"]' \
    "$(jc "[$D.blocks[] | \"\(.name):\(.type):\(.parent)\"]")"
expect "1-1 sdb1" '/dev/sdb1 8:17 1073741824 vfat SANDISK 1A2B-3C4D true false' \
    "$(j "$D.blocks[1] | \"\(.devnode) \(.major):\(.minor) \(.size) \(.fs_type) \(.fs_label) \(.fs_uuid) \(.removable) \(.readonly)\"")"
expect "1-1 sdb2 label decoded" 'My Files|ext4|3f6c1a52-9b0e-4d2a-8c61-0f4e2d7b9a11|14301528064' \
    "$(j "$D.blocks[2] | [.fs_label,.fs_type,.fs_uuid,(.size|tostring)] | join(\"|\")")"
expect "1-1 by-id" '/dev/disk/by-id/usb-SanDisk_Cruzer_Blade_4C530001230615117092-0:0-part1' \
    "$(j "$D.blocks[1].by_id")"
expect "1-1 not in use" '[] false false' "$(j "$D | \"\(.mountpoints) \(.swap) \(.held)\"")"
D='.devices[] | select(.port=="1-2")'
expect "no serial: null" null "$(j "$D.serial")"
expect "no serial: identity by port" '058f:6387@1-2' "$(j "$D.identity")"
expect "whole-disk filesystem" 'sdc disk vfat BACKUP 8053063680' \
    "$(j "$D.blocks[] | \"\(.name) \(.type) \(.fs_type) \(.fs_label) \(.size)\"")"
D='.devices[] | select(.port=="1-4")'
expect "held partition" 'true ["dm-0"] crypto_LUKS' "$(j "$D | \"\(.held) \(.blocks[1].holders|tojson) \(.blocks[1].fs_type)\"")"
D='.devices[] | select(.port=="1-6")'
expect "quotes, <, & kept raw" 'ACME "Quoted" <b>&amp;' "$(j "$D.manufacturer")"
expect "newline kept, invalid UTF-8 replaced" '"Line1\nLine2 \ufffd\ufffd bad"' "$(jq -a "$D.product" "$TMP/out")"
expect "255-byte serial" 255 "$(j "$D.serial | length")"
expect "label with quote < &" 'a"b<c&d' "$(j "$D.blocks[1].fs_label")"
D='.devices[] | select(.port=="2-1.1")'
# Both alternate settings (BOT and UAS) as the descriptors say, the driver on the active one.
expect "uas disk behind hub" '3.10 5000 0:50:null 1:62:uas 500107862016 false' \
    "$(j "$D | \"\(.version) \(.speed) \([.interfaces[] | \"\(.alt):\(.protocol):\(.driver)\"] | join(\" \")) \(.size) \(.blocks[0].removable)\"")"

# ---- list --all ------------------------------------------------------------------------------
run "$LAB" list --all --json
expect "list --all exit code" 0 "$rc"
expect "every device, root hubs first per bus" \
    '["usb1","1-1","1-2","1-3","1-4","1-5","1-6","usb2","2-1","2-1.1"]' "$(jc '[.devices[].port]')"
expect "keyboard" '1.5|false|false|["03:01:01:usbhid","03:00:00:usbhid"]' \
    "$(j '.devices[] | select(.port=="1-5") | "\(.speed)|\(.storage)|\(.hub)|\([.interfaces[] | "\(.class):\(.subclass):\(.protocol):\(.driver)"] | tojson)"')"
expect "hub" 'true hardwired 09 null' "$(j '.devices[] | select(.port=="2-1") | "\(.hub) \(.connect_type) \(.class) \(.size)"')"
expect "root hub" 'true null 1d6b:0002' "$(j '.devices[] | select(.port=="usb1") | "\(.hub) \(.connect_type) \(.vendor_id):\(.product_id)"')"

# ---- text output: golden files ---------------------------------------------------------------
check_golden() { # NAME ARGS...
    local name=$1
    shift
    run "$LAB" "$@"
    expect "$name exit code" 0 "$rc"
    if diff -u "$EXP/$name.txt" "$TMP/out" >"$TMP/diff"; then ok; else
        fail "$name differs from tests/expected/$name.txt:"
        cat "$TMP/diff"
    fi
}
check_golden list-lab list
check_golden list-all-lab list --all
check_golden show-lab-2-1.1 show 2-1.1
check_golden show-lab-1-6 show 1-6
check_golden show-lab-1-5 show 1-5

# ---- show --json: descriptors through libusb -------------------------------------------------
run "$LAB" show 1-1 --json
expect "show exit code" 0 "$rc"
expect "show warns once" 1 "$(wc -l <"$TMP/err")"
expect "descriptors read" null "$(j .device.descriptors_error)"
expect "device descriptor" '2.00 64 1 0781 5567' \
    "$(j '.device.descriptors | "\(.usb_version) \(.max_packet_size0) \(.num_configurations) \(.vendor_id) \(.product_id)"')"
expect "configuration" '1 80 200 1' \
    "$(j '.device.descriptors.configuration | "\(.value) \(.attributes) \(.max_power_ma) \(.num_interfaces)"')"
expect "endpoints" '[["81","in","bulk",512],["02","out","bulk",512]]' \
    "$(jc '[.device.descriptors.configuration.interfaces[0].endpoints[] | [.address,.direction,.type,.max_packet_size]]')"
run "$LAB" show 1-5 --json
expect "keyboard endpoints" '[["81","interrupt",8,10],["82","interrupt",8,255]]' \
    "$(jc '[.device.descriptors.configuration.interfaces[].endpoints[] | [.address,.type,.max_packet_size,.interval]]')"
expect "keyboard config" 'a0 true 90' "$(j '.device.descriptors.configuration | "\(.attributes) \(.remote_wakeup) \(.max_power_ma)"')"
run "$LAB" show 2-1.1 --json
expect "uas alternate settings" '["0:0:50:2","0:1:62:4"]' \
    "$(jc '[.device.descriptors.configuration.interfaces[] | "\(.number):\(.alt):\(.protocol):\(.endpoints|length)"]')"
expect "superspeed bursts" '[15,15,0,0,15,15]' "$(jc '[.device.descriptors.configuration.interfaces[].endpoints[].max_burst]')"
expect "superspeed power" 896 "$(j .device.descriptors.configuration.max_power_ma)"

# ---- specifiers ------------------------------------------------------------------------------
for spec in 1-1 0781:5567 serial=4C530001230615117092 /dev/sdb /dev/sdb2 \
    /dev/disk/by-id/usb-SanDisk_Cruzer_Blade_4C530001230615117092-0:0-part1 \
    /dev/bus/usb/001/002 /sys/devices/pci0000:00/0000:00:14.0/usb1/1-1 \
    /devices/pci0000:00/0000:00:14.0/usb1/1-1/1-1:1.0/host6 /sys/bus/usb/devices/1-1 \
    /sys/class/block/sdb1 0781:5567:4C530001230615117092 ua-usbvm-ca41819e98ee4367; do
    run "$LAB" show "$spec" --json
    expect "specifier '$spec'" "0 1-1" "$rc $(j .device.port)"
done
run "$LAB" show /dev/sdg1 --json
expect "a disk behind a hub belongs to the disk's device" "0 2-1.1" "$rc $(j .device.port)"
run "$LAB" show 058f:6387@1-2 --json
expect "identity without serial" "0 1-2" "$rc $(j .device.port)"

run "$LAB" show 0951:1666
expect "ambiguous VID:PID exit code" 3 "$rc"
expect "ambiguous VID:PID error" "usbvm: '0951:1666' matches 2 devices: 1-3 (serial E0D55EA573F5E3A0B9850F5D), 1-4 (serial E0D55EA573F5E3A0B9850F6A); name one by its port path or serial=..." \
    "$(cat "$TMP/err")"
expect "nothing on stdout on error" "" "$(cat "$TMP/out")"
run "$LAB" show foo
expect "unknown specifier exit code" 3 "$rc"
expect "unknown specifier error" "usbvm: no USB device matches 'foo': tried port path, VID:PID, serial=, /dev node, /dev/bus/usb node, sysfs path, identity, alias; run 'usbvm list --all' to see the devices" \
    "$(cat "$TMP/err")"
run "$LAB" show foo --json
expect "unknown specifier, JSON" '{"failed":true,"rc":3}' "$(jc '{failed,rc}')"
run "$LAB" show
expect "missing argument is a usage error" 2 "$rc"

# ---- a real mount: a loop device with ext4, mounted on a path with a space ------------------
MNT="$TMP/mnt point"
IMG="$TMP/stick.img"
LOOP=""
cleanup() {
    mountpoint -q "$MNT" 2>/dev/null && umount "$MNT"
    [[ -n "$LOOP" ]] && losetup -d "$LOOP"
    rm -rf "$TMP"
}
trap cleanup EXIT
mkdir -p "$MNT"
truncate -s 32M "$IMG"
UUID=0b6e2c1d-4a5f-4e6b-9c3d-2e1f0a9b8c7d
if mkfs.ext4 -q -F -L LOOP -U "$UUID" "$IMG" && LOOP=$(losetup -f --show "$IMG") &&
    mount "$LOOP" "$MNT"; then
    read -r MAJ MIN < <(stat -c '%t %T' "$LOOP")
    MAJ=$((16#$MAJ))
    MIN=$((16#$MIN))
    sed -e "s|@DEVNAME@|$LOOP|g" -e "s|@MAJOR@|$MAJ|g" -e "s|@MINOR@|$MIN|g" -e "s|@UUID@|$UUID|g" \
        "$FIX/loop-stick.umockdev.in" >"$TMP/loop.umockdev"
    run "$TMP/loop.umockdev" show 1-1 --json
    expect "mounted loop: exit code" 0 "$rc"
    expect "mounted loop: node, dev, mountpoint (\\040 decoded)" "$LOOP $MAJ:$MIN $MNT" \
        "$(j '.device.blocks[0] | "\(.devnode) \(.major):\(.minor) \(.mountpoint)"')"
    expect "mounted loop: device summary" "[\"$MNT\"]" "$(jc .device.mountpoints)"
    run "$TMP/loop.umockdev" list
    expect "mounted loop: list column" "$MNT" "$(awk 'NR==2' "$TMP/out" | grep -o "$MNT")"
    run "$TMP/loop.umockdev" show "$LOOP" --json
    expect "the loop node resolves to its stick" "0 1-1" "$rc $(j .device.port)"
    umount "$MNT"
    run "$TMP/loop.umockdev" show 1-1 --json
    expect "unmounted loop: no mountpoint" null "$(j '.device.blocks[0].mountpoint')"
else
    fail "cannot set up a mounted loop device"
fi

# ---- libvirt's client library missing: loaded on first use, so list still works ---------------
# The sanitized build links libvirt (CMakeLists.txt says why), every other build must not.
: "${USBVM_REAL:?}" "${USBVM_BUILDDIR:?}"
linked=$(ldd "$USBVM_REAL" | grep -c 'libvirt\.so\.0')
if grep -qx 'USBVM_SANITIZE:BOOL=ON' "$USBVM_BUILDDIR/CMakeCache.txt"; then
    expect "sanitized build: libvirt loaded at start" 1 "$linked"
    echo "$passed passed, $failed failed"
    [[ $failed -eq 0 ]]
    exit
fi
expect "usbvm does not link libvirt" 0 "$linked"
# A file that is not a library stands in for libvirt.so.0: dlopen finds it first and fails.
mkdir -p "$TMP/nolibvirt"
echo 'not a library' >"$TMP/nolibvirt/libvirt.so.0"
LD_LIBRARY_PATH="$TMP/nolibvirt" run "$LAB" list --json
expect "no libvirt: list exit code" 0 "$rc"
expect "no libvirt: libvirt unavailable" false "$(j .libvirt.available)"
expect "no libvirt: the error says what to install" true \
    "$(j '.libvirt.error | test("^cannot load libvirt: .*libvirt\\.so\\.0.*; install libvirt.s client library \\(.apt install libvirt0.\\)$")')"
expect "no libvirt: devices still listed" 6 "$(j '.devices | length')"
LD_LIBRARY_PATH="$TMP/nolibvirt" run "$LAB" status
expect "no libvirt: status fails" true "$([[ $rc -ne 0 ]] && echo true || echo false)"
expect "no libvirt: status says what to install" 1 \
    "$(grep -c "^usbvm: cannot load libvirt: .*; install libvirt's client library ('apt install libvirt0')$" "$TMP/err")"
# doctor: the check says what it found, and its fix line what to do, once.
LD_LIBRARY_PATH="$TMP/nolibvirt" run "$LAB" doctor --json
expect "no libvirt: doctor's libvirt check fails" false "$(j '.checks[] | select(.name == "libvirt") | .ok')"
expect "no libvirt: doctor found why, without the advice" true \
    "$(j '.checks[] | select(.name == "libvirt") | .found | test("^cannot load libvirt: .*libvirt\\.so\\.0: [^;]*$")')"
expect "no libvirt: doctor's fix says what to install" "Install libvirt's client library: 'apt install libvirt0'." \
    "$(j '.checks[] | select(.name == "libvirt") | .fix')"

echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
