# usbvm test harness: a real libvirtd with real QEMU (TCG), throwaway domains, loop devices,
# and umockdev fixtures whose disks are those loop devices. Sourced by integration tests (and
# the watch tests) with bash:
#
#   source "$USBVM_SRCDIR/tests/harness/libvirt.sh"
#   usbvm_h_init                      # temp dir, cleanup trap, requirements (fails, never skips)
#   usbvm_h_libvirtd_start            # uses a running libvirtd, else starts one (as root)
#   dom=$(usbvm_h_domain_create a)    # defines + starts usbvm-test-a-<pid>, prints the name
#   loop=$(usbvm_h_loop_create 64M)   # sparse file on a loop device, prints /dev/loopN
#   fx=$(usbvm_h_fixture_usb_stick --port 1-2 --loop "$loop" --serial S1 --by-id)
#   umockdev-run -d "$fx" -- "$USBVM" attach "$dom" 1-2 --mode usb-disk
#
# Everything created is removed by the EXIT trap, on success and on failure: domains, loop
# devices, /dev/disk/by-id links, temp files, and any libvirtd/virtlogd the harness started.
#
# Environment: USBVM_H_URI (default qemu:///system), USBVM_H_TIMEOUT (seconds for every
# bounded wait, default 20), USBVM_H_KEEP=1 keeps the temp dir for debugging.
# No sleeps: libvirtd --daemon returns only when its sockets accept connections, and process
# exits are awaited with a pidfd (perl, part of every Debian) with a timeout.

USBVM_H_URI=${USBVM_H_URI:-qemu:///system}
USBVM_H_TIMEOUT=${USBVM_H_TIMEOUT:-20}
USBVM_H_TMP=
USBVM_H_DOMAINS=()
USBVM_H_LOOPS=()
USBVM_H_LINKS=()
USBVM_H_DIRS=()
USBVM_H_MOUNTS=()
USBVM_H_STARTED_LIBVIRTD=0
USBVM_H_STARTED_VIRTLOGD=0
USBVM_H_FAILED=0
USBVM_H_CHECKS=0

# ---- reporting -------------------------------------------------------------------------------

usbvm_h_log() { printf '# %s\n' "$*" >&2; }

usbvm_h_fail() {
    printf 'FAIL: %s\n' "$*" >&2
    USBVM_H_FAILED=1
    exit 1
}

usbvm_h_ok() {
    USBVM_H_CHECKS=$((USBVM_H_CHECKS + 1))
    printf 'ok %d - %s\n' "$USBVM_H_CHECKS" "$*"
}

# usbvm_h_require CMD... : a missing part is a failure, never a skip.
usbvm_h_require() {
    local c
    for c in "$@"; do
        command -v "$c" >/dev/null 2>&1 || usbvm_h_fail "required program '$c' is missing"
    done
}

# usbvm_h_assert_eq EXPECTED ACTUAL MESSAGE
usbvm_h_assert_eq() {
    [ "$1" = "$2" ] || usbvm_h_fail "$3: expected '$1', got '$2'"
    usbvm_h_ok "$3"
}

# usbvm_h_assert_match REGEX TEXT MESSAGE
usbvm_h_assert_match() {
    [[ $2 =~ $1 ]] || usbvm_h_fail "$3: '$2' does not match /$1/"
    usbvm_h_ok "$3"
}

# usbvm_h_assert_nomatch REGEX TEXT MESSAGE
usbvm_h_assert_nomatch() {
    [[ $2 =~ $1 ]] && usbvm_h_fail "$3: '$2' matches /$1/"
    usbvm_h_ok "$3"
}

# usbvm_h_json FILTER JSON : jq -r FILTER on one JSON document.
usbvm_h_json() { jq -r "$1" <<<"$2"; }

# usbvm_h_run VAR CMD... : runs CMD, stores stdout in VAR and the exit code in VAR_rc (never
# aborts the test on a non-zero exit; stderr goes to VAR_err).
usbvm_h_run() {
    local __var=$1 __out __err __rc
    shift
    __err=$(mktemp "$USBVM_H_TMP/stderr.XXXXXX")
    __out=$("$@" 2>"$__err")
    __rc=$?
    printf -v "$__var" '%s' "$__out"
    printf -v "${__var}_rc" '%s' "$__rc"
    printf -v "${__var}_err" '%s' "$(cat "$__err")"
    rm -f "$__err"
}

# ---- set-up and teardown ---------------------------------------------------------------------

usbvm_h_init() {
    [ "$(id -u)" = 0 ] || usbvm_h_fail "the libvirt harness must run as root (it starts libvirtd and creates loop devices)"
    usbvm_h_require virsh losetup qemu-system-x86_64 umockdev-run perl jq lsblk blockdev
    # The sanitizer build must accept umockdev's LD_PRELOAD coming first.
    export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0"
    USBVM_H_TMP=$(mktemp -d "${TMPDIR:-/tmp}/usbvm-test.XXXXXX") || usbvm_h_fail "mktemp failed"
    trap usbvm_h_cleanup EXIT
    trap 'exit 130' INT TERM
}

usbvm_h_cleanup() {
    local rc=$?
    set +e
    local d l m
    for m in "${USBVM_H_MOUNTS[@]}"; do umount "$m" 2>/dev/null; done
    for d in "${USBVM_H_DOMAINS[@]}"; do
        virsh -q -c "$USBVM_H_URI" destroy "$d" >/dev/null 2>&1
        virsh -q -c "$USBVM_H_URI" undefine "$d" >/dev/null 2>&1
        # A test that failed while libvirtd was down (the restart tests kill it) leaves QEMU
        # running with nobody to destroy it: end it through libvirt's pid file.
        local qpid
        qpid=$(cat "/run/libvirt/qemu/$d.pid" 2>/dev/null || true)
        if [ -n "$qpid" ] && grep -qa "guest=$d" "/proc/$qpid/cmdline" 2>/dev/null; then
            kill "$qpid" 2>/dev/null && usbvm_h_wait_exit "$qpid" 10
            rm -f "/run/libvirt/qemu/$d.pid" "/run/libvirt/qemu/$d.xml"
        fi
    done
    for l in "${USBVM_H_LINKS[@]}"; do rm -f "$l"; done
    for l in "${USBVM_H_LOOPS[@]}"; do losetup -d "$l" 2>/dev/null; done
    for ((i = ${#USBVM_H_DIRS[@]} - 1; i >= 0; i--)); do rmdir "${USBVM_H_DIRS[i]}" 2>/dev/null; done
    if [ "$USBVM_H_STARTED_LIBVIRTD" = 1 ]; then usbvm_h_libvirtd_stop; fi
    if [ "$USBVM_H_STARTED_VIRTLOGD" = 1 ]; then
        _usbvm_h_kill_pidfile "$USBVM_H_TMP/virtlogd.pid" TERM
    fi
    if [ -n "$USBVM_H_TMP" ] && [ "${USBVM_H_KEEP:-0}" != 1 ]; then rm -rf "$USBVM_H_TMP"; fi
    if [ $rc -eq 0 ] && [ "$USBVM_H_FAILED" = 0 ] && [ "$USBVM_H_CHECKS" -gt 0 ]; then
        printf '1..%d\n' "$USBVM_H_CHECKS"
    fi
    exit $rc
}

# ---- processes -------------------------------------------------------------------------------

# usbvm_h_wait_exit PID [TIMEOUT] : waits for a process that is not our child to exit (a
# zombie counts as exited: PID 1 here may not reap). Uses a pidfd, so it does not poll.
usbvm_h_wait_exit() {
    local pid=$1 t=${2:-$USBVM_H_TIMEOUT}
    perl -e '
        my ($pid, $t) = @ARGV;
        my $fd = syscall(434, $pid + 0, 0);          # pidfd_open
        exit 0 if $fd < 0;                           # already gone
        my $rin = ""; vec($rin, $fd, 1) = 1;
        my $n = select($rin, undef, undef, $t);
        exit($n > 0 ? 0 : 1);' "$pid" "$t"
}

_usbvm_h_kill_pidfile() {
    local pidfile=$1 sig=$2 pid
    [ -s "$pidfile" ] || return 0
    pid=$(cat "$pidfile")
    kill -s "$sig" "$pid" 2>/dev/null || return 0
    usbvm_h_wait_exit "$pid" || usbvm_h_log "process $pid did not exit within ${USBVM_H_TIMEOUT}s"
}

_usbvm_h_libvirtd_alive() {
    virsh -q -c "$USBVM_H_URI" version >/dev/null 2>&1
}

# What a bare Debian (no systemd, no postinst) lacks for libvirtd + QEMU.
_usbvm_h_prepare_host() {
    getent group kvm >/dev/null || groupadd -r kvm
    getent group libvirt-qemu >/dev/null || groupadd -r libvirt-qemu
    getent passwd libvirt-qemu >/dev/null ||
        useradd -r -g libvirt-qemu -G kvm -d /var/lib/libvirt -s /usr/sbin/nologin libvirt-qemu
    mkdir -p /run/libvirt /var/log/libvirt/qemu /var/lib/libvirt/qemu /var/cache/libvirt/qemu \
        /etc/libvirt/qemu
}

# usbvm_h_libvirtd_start : use the running libvirtd, else start virtlogd + libvirtd. Safe to
# call again after usbvm_h_libvirtd_kill / _stop (the watch tests restart it).
usbvm_h_libvirtd_start() {
    if _usbvm_h_libvirtd_alive; then
        return 0
    fi
    [ -n "$USBVM_H_TMP" ] || usbvm_h_fail "call usbvm_h_init first"
    usbvm_h_require libvirtd virtlogd
    _usbvm_h_prepare_host
    # QEMU's stdout goes to virtlogd (qemu.conf default stdio_handler = "logd").
    if [ ! -S /run/libvirt/virtlogd-sock ] || ! _usbvm_h_virtlogd_ours_or_running; then
        virtlogd --daemon --pid-file "$USBVM_H_TMP/virtlogd.pid" ||
            usbvm_h_fail "cannot start virtlogd"
        USBVM_H_STARTED_VIRTLOGD=1
    fi
    # --daemon: the parent exits only once the sockets accept connections (status pipe).
    libvirtd --daemon --pid-file "$USBVM_H_TMP/libvirtd.pid" \
        >>"$USBVM_H_TMP/libvirtd.log" 2>&1 ||
        usbvm_h_fail "cannot start libvirtd: $(tail -n 5 "$USBVM_H_TMP/libvirtd.log")"
    USBVM_H_STARTED_LIBVIRTD=1
    _usbvm_h_libvirtd_alive || usbvm_h_fail "libvirtd started but '$USBVM_H_URI' does not answer"
    usbvm_h_log "started libvirtd (pid $(cat "$USBVM_H_TMP/libvirtd.pid"))"
}

_usbvm_h_virtlogd_ours_or_running() {
    pgrep -x virtlogd >/dev/null 2>&1
}

# usbvm_h_libvirtd_pid : the pid of the libvirtd the harness started (empty otherwise).
usbvm_h_libvirtd_pid() {
    [ -s "$USBVM_H_TMP/libvirtd.pid" ] && cat "$USBVM_H_TMP/libvirtd.pid"
}

# usbvm_h_libvirtd_stop : SIGTERM, wait for the exit. Only a daemon the harness started.
usbvm_h_libvirtd_stop() {
    [ "$USBVM_H_STARTED_LIBVIRTD" = 1 ] || usbvm_h_fail "libvirtd was not started by the harness"
    _usbvm_h_kill_pidfile "$USBVM_H_TMP/libvirtd.pid" TERM
}

# usbvm_h_libvirtd_kill : SIGKILL (a crash), wait for the exit. Domains keep running: QEMU
# is not libvirtd's child in the sense of dying with it.
usbvm_h_libvirtd_kill() {
    [ "$USBVM_H_STARTED_LIBVIRTD" = 1 ] || usbvm_h_fail "libvirtd was not started by the harness"
    local pid
    pid=$(cat "$USBVM_H_TMP/libvirtd.pid" 2>/dev/null || true)
    _usbvm_h_kill_pidfile "$USBVM_H_TMP/libvirtd.pid" KILL
    ! _usbvm_h_libvirtd_alive ||
        usbvm_h_fail "libvirtd still answers after SIGKILL of pid '$pid' ($(pgrep -a libvirtd | tr '\n' ' '))"
}

# usbvm_h_libvirtd_restart : stop (TERM) and start again; running domains are reconnected.
usbvm_h_libvirtd_restart() {
    usbvm_h_libvirtd_stop
    libvirtd --daemon --pid-file "$USBVM_H_TMP/libvirtd.pid" >>"$USBVM_H_TMP/libvirtd.log" 2>&1 ||
        usbvm_h_fail "cannot restart libvirtd"
    _usbvm_h_libvirtd_alive || usbvm_h_fail "restarted libvirtd does not answer"
}

# ---- domains ---------------------------------------------------------------------------------

# usbvm_h_domain_xml NAME [--no-usb] [--usb XML] [--root-ports N] [--extra XML] : a q35 TCG
# domain without OS or disk. --usb replaces the USB controller; --root-ports sets how many
# pcie-root-ports it gets (default 4; devices take them first; with 0, libvirt adds its own).
usbvm_h_domain_xml() {
    local name=$1 usb="<controller type='usb' model='qemu-xhci'/>" extra="" ports=4 i
    shift
    while [ $# -gt 0 ]; do
        case $1 in
        --no-usb) usb="<controller type='usb' model='none'/>" ;;
        --usb) usb=$2; shift ;;
        --root-ports) ports=$2; shift ;;
        --extra) extra=$2; shift ;;
        *) usbvm_h_fail "usbvm_h_domain_xml: unknown option $1" ;;
        esac
        shift
    done
    local rootports=""
    for ((i = 0; i < ports; i++)); do
        rootports+="<controller type='pci' model='pcie-root-port'/>"
    done
    cat <<EOF
<domain type='qemu'>
  <name>$name</name>
  <memory unit='MiB'>64</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='q35'>hvm</type></os>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    $usb
    <controller type='pci' model='pcie-root'/>
    $rootports
    <memballoon model='none'/>
    $extra
  </devices>
</domain>
EOF
}

# usbvm_h_domain_create TAG [usbvm_h_domain_xml options] : defines and starts
# usbvm-test-TAG-<pid>; prints the name. Removed at exit.
usbvm_h_domain_create() {
    local tag=$1
    shift
    local name="usbvm-test-$tag-$$"
    usbvm_h_domain_xml "$name" "$@" >"$USBVM_H_TMP/$name.xml"
    USBVM_H_DOMAINS+=("$name")
    virsh -q -c "$USBVM_H_URI" define "$USBVM_H_TMP/$name.xml" >/dev/null ||
        usbvm_h_fail "cannot define domain $name"
    virsh -q -c "$USBVM_H_URI" start "$name" >/dev/null || usbvm_h_fail "cannot start domain $name"
    printf '%s\n' "$name"
}

# Must be called in the test's own shell (not in $(...)) so the trap knows the domain.
usbvm_h_domain_track() { USBVM_H_DOMAINS+=("$1"); }

# usbvm_h_domain_remove NAME
usbvm_h_domain_remove() {
    virsh -q -c "$USBVM_H_URI" destroy "$1" >/dev/null 2>&1
    virsh -q -c "$USBVM_H_URI" undefine "$1" >/dev/null 2>&1
}

# usbvm_h_live_xml NAME
usbvm_h_live_xml() { virsh -c "$USBVM_H_URI" dumpxml "$1"; }

# usbvm_h_qmp NAME JSON : a QMP command through libvirt.
usbvm_h_qmp() { virsh -c "$USBVM_H_URI" qemu-monitor-command "$1" "$2"; }
# usbvm_h_hmp NAME CMD
usbvm_h_hmp() { virsh -c "$USBVM_H_URI" qemu-monitor-command "$1" --hmp "$2"; }

# ---- loop devices ------------------------------------------------------------------------------

# usbvm_h_loop_create [SIZE] : a sparse file on a loop device; prints /dev/loopN. Removed at
# exit. Call as loop=$(...) and then usbvm_h_loop_track "$loop" in the test's own shell.
usbvm_h_loop_create() {
    local size=${1:-64M} img
    img=$(mktemp "$USBVM_H_TMP/disk.XXXXXX.img")
    truncate -s "$size" "$img" || usbvm_h_fail "truncate failed"
    losetup -f --show "$img" || usbvm_h_fail "losetup failed (no free loop device?)"
}
usbvm_h_loop_track() { USBVM_H_LOOPS+=("$1"); }

# usbvm_h_mount_track DIR : unmounted at exit.
usbvm_h_mount_track() { USBVM_H_MOUNTS+=("$1"); }

# usbvm_h_by_id_link NAME TARGET : creates /dev/disk/by-id/NAME -> TARGET (removed at exit,
# with any directory it had to create). Call in the test's own shell.
usbvm_h_by_id_link() {
    local dir
    for dir in /dev/disk /dev/disk/by-id; do
        # Another test (the other pass of tests/run-all) may make it at the same moment.
        if mkdir "$dir" 2>/dev/null; then
            USBVM_H_DIRS+=("$dir")
        fi
        [ -d "$dir" ] || usbvm_h_fail "cannot create $dir"
    done
    [ -e "/dev/disk/by-id/$1" ] && usbvm_h_fail "/dev/disk/by-id/$1 exists already"
    ln -s "$2" "/dev/disk/by-id/$1" || usbvm_h_fail "cannot create /dev/disk/by-id/$1"
    USBVM_H_LINKS+=("/dev/disk/by-id/$1")
}

# ---- umockdev fixtures -----------------------------------------------------------------------

_usbvm_h_hex() { printf '%s' "$1" | od -An -tx1 -v | tr -d ' \n' | tr a-f A-F; }
# udev itself replaces unsafe characters in ID_SERIAL_SHORT with '_'.
_usbvm_h_udev_safe() { printf '%s' "$1" | LC_ALL=C tr -c 'A-Za-z0-9#+.:=@_-' '_'; }

# usbvm_h_fixture_usb_stick [options] : writes an umockdev fixture of a USB mass-storage stick
# (usb device -> interface 08/06/50 -> scsi host -> target -> lun -> block/sdX [-> sdX1]) whose
# disk DEVNAME, MAJOR/MINOR and "dev" attribute are those of a real loop device, so libvirt
# attaches something real. Prints the fixture path.
#   --port 1-2         port path (bus from its first number)   --devnum 4
#   --vid 0781 --pid 5567 --serial S --manufacturer M --product P (raw strings; may be hostile)
#   --loop /dev/loopN  (required)      --disk sdx     kernel name of the fake disk
#   --by-id NAME       also a DEVLINKS entry /dev/disk/by-id/NAME (create it with
#                      usbvm_h_by_id_link in the test's shell)
#   --partition /dev/loopNp1           adds sdX1 pointing at that block device
#   --holder NAME                      the disk is held by NAME (sysfs holders/, as dm or md)
#   --fs-type vfat --fs-label L --fs-uuid U   udev ID_FS_* properties of the disk
#   --speed 480        the device's speed in Mbit/s (5000 and up: a USB 3 device)
#   --authorized 1     0: the kernel has not authorised the device
#   --out FILE
usbvm_h_fixture_usb_stick() {
    local port=1-2 devnum=4 vid=0781 pid=5567 serial=USBVM0001 manu=SanDisk prod="Cruzer Blade"
    local loop="" disk=sdx byid="" part="" fstype="" fslabel="" fsuuid="" out="" holder=""
    local speed=480 auth=1
    while [ $# -gt 0 ]; do
        case $1 in
        --port) port=$2 ;;
        --devnum) devnum=$2 ;;
        --vid) vid=$2 ;;
        --pid) pid=$2 ;;
        --serial) serial=$2 ;;
        --manufacturer) manu=$2 ;;
        --product) prod=$2 ;;
        --loop) loop=$2 ;;
        --disk) disk=$2 ;;
        --by-id) byid=$2 ;;
        --partition) part=$2 ;;
        --holder) holder=$2 ;;
        --fs-type) fstype=$2 ;;
        --fs-label) fslabel=$2 ;;
        --fs-uuid) fsuuid=$2 ;;
        --out) out=$2 ;;
        --speed) speed=$2 ;;
        --authorized) auth=$2 ;;
        *) usbvm_h_fail "usbvm_h_fixture_usb_stick: unknown option $1" ;;
        esac
        shift 2
    done
    [ -b "$loop" ] || usbvm_h_fail "usbvm_h_fixture_usb_stick: --loop must be a block device"
    [ -n "$out" ] || out=$(mktemp "$USBVM_H_TMP/stick.XXXXXX.umockdev")
    local bus=${port%%-*} hostn=$((6 + RANDOM % 20))
    local busp devp
    busp=$(printf '%03d' "$bus")
    devp=$(printf '%03d' "$devnum")
    local pci=/devices/pci0000:00/0000:00:14.0
    local udev=$pci/usb$bus/$port
    local intf=$udev/$port:1.0
    local host=$intf/host$hostn
    local target=$host/target$hostn:0:0
    local lun=$target/$hostn:0:0:0
    local blk=$lun/block/$disk
    local majmin maj min size sectors
    majmin=$(lsblk -dno MAJ:MIN "$loop" | tr -d ' ')
    maj=${majmin%%:*}
    min=${majmin##*:}
    size=$(blockdev --getsize64 "$loop")
    sectors=$((size / 512))
    # Device descriptor (18 bytes) + config (9) + interface (9) + 2 bulk endpoints (7 + 7).
    # bcdUSB (little-endian) as the version attribute says: 3.20 for 5000 Mbit/s and up, else 2.10.
    local bcd=1002
    if [ "$speed" -ge 5000 ]; then bcd=2003; fi
    local desc="1201${bcd}00000040${vid:2:2}${vid:0:2}${pid:2:2}${pid:0:2}000101020301"
    desc+="090220000101008032""090400000208065000""07058102000200""07050202000200"
    # One line per record field; values are written raw (umockdev takes the rest of the line).
    {
        printf 'P: %s/usb%s\nN: bus/usb/%s/001\nE: DEVNAME=/dev/bus/usb/%s/001\n' \
            "$pci" "$bus" "$busp" "$busp"
        printf 'E: DEVTYPE=usb_device\nE: DRIVER=usb\nE: SUBSYSTEM=usb\nE: BUSNUM=%s\nE: DEVNUM=001\n' "$busp"
        printf 'E: PRODUCT=1d6b/2/601\nE: TYPE=9/0/1\nE: MAJOR=189\nE: MINOR=%d\n' $(((bus - 1) * 128))
        printf 'A: idVendor=1d6b\nA: idProduct=0002\nA: bDeviceClass=09\nA: busnum=%s\nA: devnum=1\n' "$bus"
        printf 'A: speed=480\nA: version= 2.00\nA: bcdDevice=0601\nA: authorized=1\nA: maxchild=4\n'
        printf 'A: bNumInterfaces= 1\nA: bConfigurationValue=1\nA: product=xHCI Host Controller\n'
        printf 'L: driver=../../../../bus/usb/drivers/usb\n\n'

        printf 'P: %s\nN: bus/usb/%s/%s\nE: DEVNAME=/dev/bus/usb/%s/%s\n' "$udev" "$busp" "$devp" "$busp" "$devp"
        printf 'E: DEVTYPE=usb_device\nE: DRIVER=usb\nE: SUBSYSTEM=usb\nE: BUSNUM=%s\nE: DEVNUM=%s\n' "$busp" "$devp"
        printf 'E: PRODUCT=%x/%x/100\nE: TYPE=0/0/0\nE: MAJOR=189\nE: MINOR=%d\n' \
            "0x$vid" "0x$pid" $(((bus - 1) * 128 + devnum - 1))
        printf 'E: ID_VENDOR_ID=%s\nE: ID_MODEL_ID=%s\nE: ID_USB_INTERFACES=:080650:\n' "$vid" "$pid"
        printf 'A: idVendor=%s\nA: idProduct=%s\nA: bcdDevice=0100\nA: bDeviceClass=00\n' "$vid" "$pid"
        printf 'A: bDeviceSubClass=00\nA: bDeviceProtocol=00\nA: busnum=%s\nA: devnum=%s\n' "$bus" "$devnum"
        printf 'A: speed=%s\nA: version= %s\nA: authorized=%s\nA: removable=removable\n' \
            "$speed" "$([ "$speed" -ge 5000 ] && echo 3.20 || echo 2.10)" "$auth"
        printf 'A: bNumInterfaces= 1\nA: bConfigurationValue=1\nA: bMaxPower=100mA\n'
        # As hex (H:) so that any byte survives, like sysfs with its trailing newline.
        [ -n "$manu" ] && printf 'H: manufacturer=%s0A\n' "$(_usbvm_h_hex "$manu")"
        [ -n "$prod" ] && printf 'H: product=%s0A\n' "$(_usbvm_h_hex "$prod")"
        [ -n "$serial" ] && printf 'H: serial=%s0A\n' "$(_usbvm_h_hex "$serial")"
        printf 'H: descriptors=%s\n' "$desc"
        printf 'L: driver=../../../../../bus/usb/drivers/usb\n\n'

        printf 'P: %s\nE: DEVTYPE=usb_interface\nE: DRIVER=usb-storage\nE: SUBSYSTEM=usb\n' "$intf"
        printf 'E: INTERFACE=8/6/80\nE: PRODUCT=%x/%x/100\nE: MODALIAS=usb:v%sp%sd0100dc00dsc00dp00ic08isc06ip50in00\n' \
            "0x$vid" "0x$pid" "${vid^^}" "${pid^^}"
        printf 'A: bInterfaceNumber=00\nA: bAlternateSetting= 0\nA: bInterfaceClass=08\n'
        printf 'A: bInterfaceSubClass=06\nA: bInterfaceProtocol=50\nA: bNumEndpoints=02\n'
        printf 'L: driver=../../../../../../bus/usb/drivers/usb-storage\n\n'

        printf 'P: %s\nE: DEVTYPE=scsi_host\nE: SUBSYSTEM=scsi\n\n' "$host"
        printf 'P: %s\nE: DEVTYPE=scsi_target\nE: SUBSYSTEM=scsi\n\n' "$target"
        printf 'P: %s\nE: DEVTYPE=scsi_device\nE: DRIVER=sd\nE: SUBSYSTEM=scsi\n' "$lun"
        printf 'A: type=0\nA: vendor=%-8.8s\nA: model=%-16.16s\nA: rev=1.00\n' \
            "$(_usbvm_h_udev_safe "${manu:-Generic}")" "$(_usbvm_h_udev_safe "${prod:-Disk}")"
        printf 'L: driver=../../../../../../../../../bus/scsi/drivers/sd\n\n'

        printf 'P: %s\nE: DEVNAME=%s\nE: DEVTYPE=disk\nE: SUBSYSTEM=block\n' "$blk" "$loop"
        printf 'E: MAJOR=%s\nE: MINOR=%s\nE: ID_BUS=usb\nE: ID_TYPE=disk\n' "$maj" "$min"
        printf 'E: ID_VENDOR_ID=%s\nE: ID_MODEL_ID=%s\nE: ID_USB_DRIVER=usb-storage\n' "$vid" "$pid"
        [ -n "$serial" ] && printf 'E: ID_SERIAL_SHORT=%s\n' "$(_usbvm_h_udev_safe "$serial")"
        [ -n "$byid" ] && printf 'E: DEVLINKS=/dev/disk/by-id/%s\n' "$byid"
        [ -n "$fstype" ] && printf 'E: ID_FS_TYPE=%s\nE: ID_FS_USAGE=filesystem\n' "$fstype"
        [ -n "$fslabel" ] && printf 'E: ID_FS_LABEL=%s\nE: ID_FS_LABEL_ENC=%s\n' "$fslabel" "$fslabel"
        [ -n "$fsuuid" ] && printf 'E: ID_FS_UUID=%s\n' "$fsuuid"
        printf 'A: dev=%s:%s\nA: size=%s\nA: removable=1\nA: ro=0\nA: range=16\n' "$maj" "$min" "$sectors"
        [ -n "$holder" ] && printf 'L: holders/%s=../../../../../../../../../../virtual/block/%s\n' "$holder" "$holder"
        printf '\n'

        if [ -n "$part" ]; then
            local pmm psz
            pmm=$(lsblk -dno MAJ:MIN "$part" | tr -d ' ')
            psz=$(($(blockdev --getsize64 "$part") / 512))
            printf 'P: %s/%s1\nE: DEVNAME=%s\nE: DEVTYPE=partition\nE: SUBSYSTEM=block\n' "$blk" "$disk" "$part"
            printf 'E: MAJOR=%s\nE: MINOR=%s\nE: ID_BUS=usb\nE: PARTN=1\n' "${pmm%%:*}" "${pmm##*:}"
            printf 'A: dev=%s\nA: size=%s\nA: partition=1\nA: start=2048\n\n' "$pmm" "$psz"
        fi
    } >"$out"
    printf '%s\n' "$out"
}

# usbvm_h_fixture_retarget IN OUT BLOCK DEV : copies the umockdev file IN to OUT with the
# record of block device BLOCK (kernel name, "sdf" or "sdf1") pointed at the real block device
# DEV: DEVNAME, MAJOR, MINOR and the "dev" attribute. Also fills the @DEVNAME@ @MAJOR@
# @MINOR@ @UUID@ placeholders of a template (tests/fixtures/*.umockdev.in) when BLOCK is "@".
usbvm_h_fixture_retarget() {
    local in=$1 out=$2 block=$3 dev=$4 mm
    [ -b "$dev" ] || usbvm_h_fail "usbvm_h_fixture_retarget: $dev is not a block device"
    mm=$(lsblk -dno MAJ:MIN "$dev" | tr -d ' ')
    if [ "$block" = @ ]; then
        sed -e "s|@DEVNAME@|$dev|g" -e "s|@MAJOR@|${mm%%:*}|g" -e "s|@MINOR@|${mm##*:}|g" \
            -e "s|@UUID@|$(cat /proc/sys/kernel/random/uuid)|g" "$in" >"$out"
    else
        awk -v blk="/$block" -v dev="$dev" -v maj="${mm%%:*}" -v min="${mm##*:}" '
            /^P: / { hit = (substr($0, length($0) - length(blk) + 1) == blk) }
            /^$/ { hit = 0 }
            hit && /^E: DEVNAME=/ { print "E: DEVNAME=" dev; next }
            hit && /^E: MAJOR=/ { print "E: MAJOR=" maj; next }
            hit && /^E: MINOR=/ { print "E: MINOR=" min; next }
            hit && /^A: dev=/ { print "A: dev=" maj ":" min; next }
            { print }' "$in" >"$out"
    fi
    grep -q "DEVNAME=$dev\$" "$out" || usbvm_h_fail "usbvm_h_fixture_retarget: no block device '$block' in $in"
}

# usbvm_h_validate_device DEVICE_XML_FILE : wraps a device into a minimal domain and runs
# virt-xml-validate (libvirt's own RelaxNG schema).
usbvm_h_validate_device() {
    local dom="$USBVM_H_TMP/validate.$$.xml"
    {
        printf "<domain type='qemu'><name>usbvm-validate</name><memory>65536</memory>"
        printf "<os><type arch='x86_64' machine='q35'>hvm</type></os><devices>\n"
        cat "$1"
        printf "</devices></domain>\n"
    } >"$dom"
    virt-xml-validate "$dom" domain
}
