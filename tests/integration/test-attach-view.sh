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
usbvm_h_domain_track "$dom"
loops=()
for _ in a b other replug; do
    l=$(usbvm_h_loop_create 16M)
    usbvm_h_loop_track "$l"
    loops+=("$l")
done

# The domain has no disk: the first stick takes sda on unit 0, so the view gives the second
# sdb on unit 1. That is where the other disk goes.
usbvm_h_run out "$USBVM_ATTACH_VIEW" "$USBVM_H_URI" "$dom" "${loops[@]:0:3}" sdb 1
usbvm_h_assert_eq 0 "$out_rc" "both sticks attached around the other disk ($out_err)"
usbvm_h_assert_match 'attached ua-usbvm-00000000000000a1 changed=1 notes=$' \
    "$(grep "^attached .*a1" <<<"$out")" "the first stick attached, with nothing to say"
usbvm_h_assert_match 'attached ua-usbvm-00000000000000b1 changed=1 notes=.*read it again' \
    "$(grep "^attached .*b1" <<<"$out")" "the second stick's attach read the domain again after the refusal"
usbvm_h_assert_eq "view ua-usbvm-00000000000000a1 0
view ua-usbvm-00000000000000b1 0" "$(grep '^view' <<<"$out")" \
    "the first attach read the domain; the second's view was refused and read again"

xml=$(usbvm_h_live_xml "$dom")
target() { xmllint --xpath "string(//disk[alias/@name='$1']/target/@dev)" - <<<"$xml"; }
unit() { xmllint --xpath "string(//disk[alias/@name='$1']/address/@unit)" - <<<"$xml"; }
usbvm_h_assert_eq sda "$(target ua-usbvm-00000000000000a1)" "the first stick is sda"
other=$(xmllint --xpath "string(//disk[source/@dev='${loops[2]}']/target/@dev)" - <<<"$xml")
usbvm_h_assert_eq sdb "$other" "the other disk is sdb, as it was asked"
usbvm_h_assert_eq sdc "$(target ua-usbvm-00000000000000b1)" "the second stick took the next free name"
# What watch's snapshot learns from each answer is what the domain says (its target and serial
# are what a detach asks the guest about), the second's too, though its view was refused.
usbvm_h_assert_eq "described ua-usbvm-00000000000000a1 as-read
described ua-usbvm-00000000000000b1 as-read" "$(grep '^described' <<<"$out")" \
    "each attach's own picture of its disk is the domain's"
usbvm_h_assert_eq 2 "$(unit ua-usbvm-00000000000000b1)" "and the next free SCSI unit"

# ---- replug: a removal libvirt confirmed leaves the view, with its target name ---------------
# watch's queue keeps its view across idle time and detaches; libvirt's DEVICE_REMOVED takes the
# disk out of it. The same stick attached again starts from the view (no read of the domain)
# and gets its name back.
dom2=$(usbvm_h_domain_create replug --extra "<controller type='scsi' index='0' model='virtio-scsi'/>")
usbvm_h_domain_track "$dom2"
usbvm_h_run out "$USBVM_ATTACH_VIEW" --replug "$USBVM_H_URI" "$dom2" "${loops[3]}"
usbvm_h_assert_eq 0 "$out_rc" "attach, detach, attach again ($out_err)"
usbvm_h_assert_eq "view ua-usbvm-00000000000000c1 0
view ua-usbvm-00000000000000c1 1" "$(grep '^view' <<<"$out")" \
    "the first attach read the domain, the second started from the view"
usbvm_h_assert_eq 2 "$(grep -c 'changed=1 notes=$' <<<"$out")" "both attaches changed the domain, quietly"
xml=$(usbvm_h_live_xml "$dom2")
usbvm_h_assert_eq sda "$(target ua-usbvm-00000000000000c1)" "the replugged stick is sda again"
usbvm_h_assert_eq "described ua-usbvm-00000000000000c1 as-read
described ua-usbvm-00000000000000c1 as-read" "$(grep '^described' <<<"$out")" \
    "the replugged stick's picture (write-protected: read-only), from the view too, is the domain's"
