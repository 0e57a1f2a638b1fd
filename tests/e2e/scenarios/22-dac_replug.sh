# shellcheck shell=bash disable=SC2016  # guest code is single-quoted on purpose
# Scenario 3b (CLI, no watch): the /dev/sdX reuse problem.  A usb-disk stick is pulled
# while attached (libvirt keeps it in domblklist, no event), usbvm detaches it by alias,
# and the next stick that gets the same /dev/sdX name must attach to the same running
# domain.  Stock libvirt's DAC driver (remember_owner = 1) can refuse that with "Setting
# different DAC user or group on /dev/sdX which is already in use".  When it does, this
# scenario also tries the known workarounds and prints which one helps.
needs() { echo attach detach; }

scenario() {
    local a b dev1 dev2 out alias rc=0
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

    plug s22b E2E22B "$b"
    dev2=$(g 'wait_disk E2E22B')
    echo "first stick was $dev1, the second is $dev2"
    out=$(usbvm_json 'usbvm attach inner serial=E2E22B --mode usb-disk --json')
    if [[ $(jget "$out" state) == attached ]]; then
        echo "replug reusing $dev2: attached"
    else
        rc=1
        echo "replug reusing $dev2 refused: $(jget "$out" msg)"
        # Which workaround helps?  remember_owner = 0 (libvirtd restart, domains keep
        # running) first; the domain restart is reset_state's job afterwards.
        g 'cp /etc/libvirt/qemu.conf /tmp/e2e-qemu.conf.orig
           echo "remember_owner = 0" >>/etc/libvirt/qemu.conf
           systemctl restart libvirtd; virsh -q version >/dev/null'
        out=$(usbvm_json 'usbvm attach inner serial=E2E22B --mode usb-disk --json')
        echo "with remember_owner = 0: state=$(jget "$out" state) msg=$(jget "$out" msg)"
        g 'cp /tmp/e2e-qemu.conf.orig /etc/libvirt/qemu.conf; systemctl restart libvirtd; virsh -q version >/dev/null'
    fi
    g 'usbvm detach inner serial=E2E22B >/dev/null 2>&1 || true'
    unplug s22b
    ((rc == 0)) || fail "a stick reusing $dev2 was refused on the running domain"
}
