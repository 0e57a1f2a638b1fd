# shellcheck shell=bash disable=SC2016  # guest code is single-quoted on purpose
# Scenario 3b (CLI, no watch): the /dev/sdX reuse problem.  A usb-disk stick is pulled
# while attached (libvirt keeps it in domblklist, no event), usbvm detaches it by alias,
# and the next stick that gets the same /dev/sdX name must attach to the same running
# domain.  libvirt gives the domain a private /dev whose copy of the pulled stick's node
# it cannot restore (ENXIO); that copy keeps its DAC "remember_owner" use count and stock
# libvirt refuses the next stick on the same node ("Setting different DAC user or group on
# ... which is already in use") until the domain restarts.  usbvm's detach removes the dead
# copy; this scenario proves it is gone and that the replug attaches and is opened by QEMU.
needs() { echo attach detach; }

scenario() {
    local a b dev1 dev2 out alias
    a=$(mkstick s22a blank)
    b=$(mkstick s22b blank)
    plug s22a E2E22A "$a"
    dev1=$(g 'wait_disk E2E22A')
    out=$(usbvm_json 'usbvm attach inner serial=E2E22A --mode usb-disk --json')
    [[ $(jget "$out" state) == attached ]] || fail "first stick not attached"
    alias=$(jget "$out" alias)

    unplug s22a                                    # surprise removal
    g 'wait_disk_gone E2E22A; echo "libvirt after the pull:"; virsh -q domblklist inner; usbvm status'
    # the host device is gone: detach by the alias (its identity can no longer be resolved)
    out=$(usbvm_json "usbvm detach inner $alias --json")
    [[ $(jget "$out" state) == detached ]] || fail "stale usb-disk not detached by alias after the pull"
    [[ -z $(g 'usbvm_devs inner') ]] || fail "stale disk left in the live XML"

    # the dead copy of the pulled stick's node is gone from the domain's private /dev
    g "pid=\$(cat /run/libvirt/qemu/inner.pid); [[ \$(readlink /proc/\$pid/ns/mnt) != \$(readlink /proc/self/ns/mnt) ]]" ||
        fail "inner QEMU has no private /dev (qemu.conf namespaces): this scenario tests nothing"
    g "pid=\$(cat /run/libvirt/qemu/inner.pid); nsenter -t \$pid -m sh -c 'test -d /dev && test ! -e $dev1'" ||
        fail "the domain's private /dev still holds the pulled stick's $dev1 after the detach"

    plug s22b E2E22B "$b"
    dev2=$(g 'wait_disk E2E22B')
    echo "first stick was $dev1, the second is $dev2"
    [[ $dev1 == "$dev2" ]] || fail "the second stick did not reuse $dev1 ($dev2): the case is not exercised"
    out=$(usbvm_json 'usbvm attach inner serial=E2E22B --mode usb-disk --json')
    [[ $(jget "$out" state) == attached ]] ||
        fail "a stick reusing $dev2 was refused on the running domain: $(jget "$out" msg)"
    g 'query_block inner' | grep -q 'E2E22B' || fail "inner QEMU has no block backend for the second stick"
    echo "replug reusing $dev2: attached, and inner QEMU opened it"
    out=$(usbvm_json 'usbvm detach inner serial=E2E22B --json')
    [[ $(jget "$out" state) == detached ]] || fail "second stick not detached"
    unplug s22b
}
