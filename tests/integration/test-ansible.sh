#!/bin/bash
# examples/ansible as an admin runs it: the real ansible-playbook against localhost, the usbvm
# role installing the .deb that cpack built and deploying rules (checked with 'usbvm rules
# check'), the usbvm_device module attaching a loop-backed stick (a umockdev testbed) to a real
# libvirtd domain. --check --diff predicts without changing, the first run changes, the second
# does not, detach likewise, broken rules and a host-mounted stick fail with usbvm's message.
# ansible-doc renders the module's documentation and ansible-lint passes.
#
# No systemd runs as PID 1 here, so the role's service tasks are off (usbvm_service_manage);
# the unit is checked with systemd-analyze verify, the handler is seen to be notified, and
# test-watch-reload covers what the reload does (SIGHUP).
set -euo pipefail
# shellcheck source=../harness/libvirt.sh
source "$USBVM_SRCDIR/tests/harness/libvirt.sh"
usbvm_h_init
# shellcheck source=package-lib.sh
source "$USBVM_SRCDIR/tests/integration/package-lib.sh"
usbvm_h_require ansible-playbook ansible-doc ansible-lint mkfs.ext4 mount systemd-analyze
pkg_init
usbvm_h_libvirtd_start

EX=$USBVM_SRCDIR/examples/ansible
T=$USBVM_H_TMP
# Ansible keeps its temporary files and caches in the test's directory, not in root's home.
export ANSIBLE_HOME=$T/ansible-home ANSIBLE_LOCAL_TEMP=$T/ansible-local \
    ANSIBLE_REMOTE_TEMP=$T/ansible-remote ANSIBLE_NOCOLOR=1 ANSIBLE_RETRY_FILES_ENABLED=0 \
    ANSIBLE_STDOUT_CALLBACK=usbvm_json ANSIBLE_CALLBACK_PLUGINS=$USBVM_SRCDIR/tests/tools/ansible \
    ANSIBLE_CONFIG=$T/ansible.cfg XDG_CACHE_HOME=$T/cache
: >"$ANSIBLE_CONFIG"

# ---- documentation and lint ---------------------------------------------------------------------
doc=$(ansible-doc -M "$EX/library" usbvm_device 2>&1) || usbvm_h_fail "ansible-doc failed: $doc"
for section in OPTIONS NOTES EXAMPLES "RETURN VALUES"; do
    usbvm_h_assert_match "$section" "$doc" "ansible-doc renders $section"
done
nl=$'\n'
for opt in state domain device mode readonly persistent force timeout uri executable; do
    usbvm_h_assert_match "(^|$nl)[-=] $opt$nl" "$doc" "ansible-doc documents '$opt'"
done
usbvm_h_run lint bash -c 'cd "$1" && HOME=$2 ansible-lint --offline --nocolor 2>&1' _ "$EX" "$T" || true
usbvm_h_assert_eq 0 "$lint_rc" "ansible-lint passes ($lint)"

# ---- the host: a domain, a loop-backed stick labelled BACKUP, usbvm under the testbed --------
pkg_build_deb
dom=$(usbvm_h_domain_create ansible)
usbvm_h_domain_track "$dom"
loop=$(usbvm_h_loop_create 32M)
usbvm_h_loop_track "$loop"
FX=$(usbvm_h_fixture_usb_stick --port 1-2 --devnum 4 --loop "$loop" --serial ANSIBLE01 \
    --fs-type ext4 --fs-label BACKUP)
# The module runs usbvm through this wrapper (its 'executable' option): the devices are in the
# testbed.
printf '#!/bin/sh\nexec umockdev-run -d "%s" -- "%s" "$@"\n' "$FX" "$USBVM" >"$T/usbvm-testbed"
chmod +x "$T/usbvm-testbed"
rules_dir=$T/rules.d
jq -n --arg deb "$PKG_DEB" --arg dom "$dom" --arg uri "$USBVM_H_URI" --arg exe "$T/usbvm-testbed" \
    --arg rules "$rules_dir" '{
        usbvm_hosts: "localhost", ansible_connection: "local",
        ansible_python_interpreter: "/usr/bin/python3",
        usbvm_package_deb: $deb, usbvm_service_manage: false, usbvm_rules_dir: $rules,
        usbvm_stick: "serial=ANSIBLE01", usbvm_stick_domain: $dom, usbvm_stick_mode: "usb-disk",
        usbvm_uri: $uri, usbvm_device_executable: $exe }' >"$T/vars.json"

# play NAME [ansible-playbook options] : runs site.yml; its JSON report goes to $T/NAME.json.
play() {
    local name=$1
    shift
    (cd "$T" && ansible-playbook -i localhost, -e @"$T/vars.json" "$@" "$EX/site.yml") \
        >"$T/$name.json" 2>"$T/$name.err" || true
    jq -e '.stats.localhost != null' "$T/$name.json" >/dev/null 2>&1 ||
        usbvm_h_fail "ansible-playbook $name gave no report: $(cat "$T/$name.err") $(head -c 2000 "$T/$name.json")"
}
stat() { jq -r ".stats.localhost.$2" "$T/$1.json"; }
# task NAME TASK FILTER : FILTER on the localhost result of the task named TASK.
# changed_tasks NAME : the tasks that changed something, with their messages (for failures).
changed_tasks() { jq -c '[.plays[].tasks[] | select(.hosts.localhost.changed) | [.task.name, .hosts.localhost.msg]]' "$T/$1.json"; }
task() { jq -r --arg t "$2" '[.plays[].tasks[] | select(.task.name == $t) | .hosts.localhost] | last | '"$3" "$T/$1.json"; }
owned() { usbvm_h_live_xml "$dom" | grep -c "alias name='ua-usbvm-" || true; }
installed() { dpkg-query -W -f='${db:Status-Status}' usbvm 2>/dev/null || echo none; }
HAND="Hand the stick to the backup VM now"

# ---- --check --diff: predicted by usbvm, nothing changes ---------------------------------------
pkg_installed # from here on a failure purges whatever the role may have installed
play check --check --diff
usbvm_h_assert_eq 0 "$(stat check failures)" "--check: no failure ($(task check "$HAND" .msg))"
usbvm_h_assert_match "^[1-9]" "$(stat check changed)" "--check reports changes"
usbvm_h_assert_eq true "$(task check "$HAND" .changed)" "--check: the module reports the change"
usbvm_h_assert_match "^would attach 1-2 to '$dom' as usb-disk" "$(task check "$HAND" .msg)" \
    "--check: the message is usbvm's prediction"
usbvm_h_assert_eq '[]' "$(task check "$HAND" '.diff.before.attached | tojson')" \
    "--diff: before, the stick is attached nowhere"
usbvm_h_assert_eq "[{\"domain\":\"$dom\",\"mode\":\"usb-disk\",\"readonly\":true}]" \
    "$(task check "$HAND" '.diff.after.attached | tojson')" "--diff: after, in the domain"
usbvm_h_assert_eq 0 "$(owned)" "--check attached nothing"
usbvm_h_assert_eq none "$(installed | sed 's/not-installed/none/')" "--check installed nothing"
usbvm_h_assert_eq no "$([ -e "$rules_dir/50-backup.rules" ] && echo yes || echo no)" \
    "--check deployed no rules"

# ---- the first run changes ---------------------------------------------------------------------
play first --diff
usbvm_h_assert_eq 0 "$(stat first failures)" "first run: no failure ($(cat "$T/first.err"))"
usbvm_h_assert_match "^[1-9]" "$(stat first changed)" "first run: changes"
usbvm_h_assert_eq installed "$(installed)" "the role installed the .deb"
usbvm_h_assert_match "attach with-interface 08:06:50 fs-label \"BACKUP\" to $dom as usb-disk readonly" \
    "$(cat "$rules_dir/50-backup.rules" 2>/dev/null)" "the role deployed the rules"
usbvm_h_assert_eq true "$(task first "usbvm : Reload usbvm" '. != null')" "rules changed: the reload handler was notified"
usbvm_h_assert_match "^attached 1-2 to '$dom' as usb-disk" "$(task first "$HAND" .msg)" \
    "the module attached the stick"
usbvm_h_assert_eq "$(task first "$HAND" '.diff.after.attached | tojson')" \
    "$(task check "$HAND" '.diff.after.attached | tojson')" "--diff after: what --check predicted"
usbvm_h_assert_eq 1 "$(owned)" "the stick is in the domain"
usbvm_h_run verify systemd-analyze verify /lib/systemd/system/usbvm.service || true
usbvm_h_assert_eq 0 "$verify_rc" "systemd-analyze verify of the unit the role installed ($verify_err)"

# ---- the second run changes nothing ------------------------------------------------------------
play second
usbvm_h_assert_eq 0 "$(stat second failures)" "second run: no failure"
usbvm_h_assert_eq 0 "$(stat second changed)" "second run: changed=0 ($(changed_tasks second))"
usbvm_h_assert_match "already attached" "$(task second "$HAND" .msg)" "the module says why"
usbvm_h_assert_eq null "$(task second "usbvm : Reload usbvm" .)" "rules unchanged: no reload"

# ---- detach: --check, then for real, then nothing to do ----------------------------------------
play dcheck --check -e usbvm_stick_state=detached
usbvm_h_assert_eq 1 "$(stat dcheck changed)" "detach --check: one change"
usbvm_h_assert_match "^would detach 1-2 from '$dom'" "$(task dcheck "$HAND" .msg)" "detach --check: usbvm's prediction"
usbvm_h_assert_eq 1 "$(owned)" "detach --check left the stick in the domain"
play detach -e usbvm_stick_state=detached --diff
usbvm_h_assert_eq 1 "$(stat detach changed)" "detach: one change"
usbvm_h_assert_eq '[]' "$(task detach "$HAND" '.diff.after.attached | tojson')" "detach: --diff after is empty"
usbvm_h_assert_eq 0 "$(owned)" "detach: the stick is back on the host"
play detach2 -e usbvm_stick_state=detached
usbvm_h_assert_eq 0 "$(stat detach2 changed)" "detach again: changed=0 ($(changed_tasks detach2))"

# ---- broken rules never replace good ones ------------------------------------------------------
good=$(cat "$rules_dir/50-backup.rules")
jq -n '{usbvm_rules: [{name: "50-backup.rules", content: "attach id 0781: to nowhere\n"}]}' >"$T/bad.json"
play badrules -e @"$T/bad.json"
usbvm_h_assert_eq 1 "$(stat badrules failures)" "broken rules fail the play"
usbvm_h_assert_match "invalid product id" "$(task badrules "usbvm : Deploy the rules" '[.results[]?.stderr, .stderr] | map(select(.)) | join(" ")')" \
    "the failure carries usbvm rules check's message"
usbvm_h_assert_eq "$good" "$(cat "$rules_dir/50-backup.rules")" "the good rules stay in place"

# ---- refusal: a stick the host has mounted -----------------------------------------------------
mkfs.ext4 -q -F -L BACKUP "$loop" >/dev/null 2>&1 || usbvm_h_fail "mkfs.ext4 failed"
mnt=$T/mnt
mkdir -p "$mnt"
mount "$loop" "$mnt" || usbvm_h_fail "mount failed"
usbvm_h_mount_track "$mnt"
play refused
usbvm_h_assert_eq 1 "$(stat refused failures)" "a host-mounted stick fails the task"
usbvm_h_assert_match "^cannot attach 1-2 to '$dom': .* is mounted on .*mnt; unmount it first" \
    "$(task refused "$HAND" .msg)" "the task fails with usbvm's message"
usbvm_h_assert_eq 4 "$(task refused "$HAND" .rc)" "rc is usbvm's exit status (refused)"
usbvm_h_assert_eq 0 "$(owned)" "nothing reached the domain"
umount "$mnt"
