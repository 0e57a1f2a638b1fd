#!/bin/bash
# The attach view (lib/virt-attach.c): usbvm watch's queue for a domain starts each attach of a
# burst from what its previous attach left there, instead of reading the domain's XML again.
# Someone else's change in between (here a disk on the target name and SCSI unit the view gives
# the next stick) must not fail the attach: libvirt refuses, the attach reads the domain again
# and takes free ones, and says so in its notes. Driven by tests/tools/attach-view.c, which
# calls the library as watch does, so the change lands exactly between the two attaches.
set -u
source "$USBVM_SRCDIR/tests/harness/libvirt.sh"
usbvm_h_init
usbvm_h_libvirtd_start
[ -x "${USBVM_ATTACH_VIEW:-}" ] || usbvm_h_fail "attach-view is not built (USBVM_ATTACH_VIEW)"

dom=$(usbvm_h_domain_create view --extra "<controller type='scsi' index='0' model='virtio-scsi'/>")
loops=()
for _ in a b other; do
    l=$(usbvm_h_loop_create 16M)
    usbvm_h_loop_track "$l"
    loops+=("$l")
done

# The domain has no disk: the first stick takes sda on unit 0, so the view gives the second
# sdb on unit 1. That is where the other disk goes.
usbvm_h_run out "$USBVM_ATTACH_VIEW" "$USBVM_H_URI" "$dom" "${loops[@]}" sdb 1
usbvm_h_assert_eq 0 "$out_rc" "both sticks attached around the other disk ($out_err)"
usbvm_h_assert_match 'attached ua-usbvm-00000000000000a1 changed=1 notes=$' \
    "$(grep a1 <<<"$out")" "the first stick attached, with nothing to say"
usbvm_h_assert_match 'attached ua-usbvm-00000000000000b1 changed=1 notes=.*read it again' \
    "$(grep b1 <<<"$out")" "the second stick's attach read the domain again after the refusal"

xml=$(usbvm_h_live_xml "$dom")
target() { xmllint --xpath "string(//disk[alias/@name='$1']/target/@dev)" - <<<"$xml"; }
unit() { xmllint --xpath "string(//disk[alias/@name='$1']/address/@unit)" - <<<"$xml"; }
usbvm_h_assert_eq sda "$(target ua-usbvm-00000000000000a1)" "the first stick is sda"
other=$(xmllint --xpath "string(//disk[source/@dev='${loops[2]}']/target/@dev)" - <<<"$xml")
usbvm_h_assert_eq sdb "$other" "the other disk is sdb, as it was asked"
usbvm_h_assert_eq sdc "$(target ua-usbvm-00000000000000b1)" "the second stick took the next free name"
usbvm_h_assert_eq 2 "$(unit ua-usbvm-00000000000000b1)" "and the next free SCSI unit"
