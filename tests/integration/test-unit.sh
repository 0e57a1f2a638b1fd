# The shipped systemd unit (examples/usbvm.service.in) as systemd reads it: systemd-analyze
# verify accepts it, and the hardening the README's table promises is there.
set -u
source "$USBVM_SRCDIR/tests/harness/libvirt.sh"
usbvm_h_init
usbvm_h_require systemd-analyze
unit=$USBVM_H_TMP/usbvm.service
sed -e "s|@CMAKE_INSTALL_FULL_BINDIR@/usbvm|$USBVM|" -e 's|@USBVM_RULES_DIR@|/etc/usbvm/rules.d|' \
    "$USBVM_SRCDIR/examples/usbvm.service.in" >"$unit"
# The man pages are not installed in a build tree; verify everything else.
out=$(systemd-analyze verify --man=no "$unit" 2>&1) || usbvm_h_fail "systemd-analyze verify: $out"
usbvm_h_assert_eq "" "$out" "systemd-analyze verify: no complaint"
for line in NoNewPrivileges=yes ProtectSystem=strict IPAddressDeny=any UMask=0077 \
    DevicePolicy=closed CapabilityBoundingSet=CAP_SYS_PTRACE AmbientCapabilities= \
    'RestrictAddressFamilies=AF_UNIX AF_NETLINK' RestrictNamespaces=yes \
    SystemCallFilter=@system-service MemoryDenyWriteExecute=yes; do
    grep -qxF "$line" "$unit" || usbvm_h_fail "the unit lacks '$line'"
done
usbvm_h_ok "the unit has the hardening the README lists"
