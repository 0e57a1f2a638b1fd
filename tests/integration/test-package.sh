#!/bin/bash
# The Debian package as an admin meets it: cpack -G DEB from a /usr build, lintian without
# errors, 'apt-get install ./usbvm_*.deb' with Depends computed from the binary, the binary,
# both man pages, bash and zsh completion and the unit from the installed files, then remove
# (the conffile stays) and purge (nothing stays).
#
# It installs a package system-wide: tests/integration/package-lib.sh says how that stays safe.
set -euo pipefail
# shellcheck source=../harness/libvirt.sh
source "$USBVM_SRCDIR/tests/harness/libvirt.sh"
usbvm_h_init
# shellcheck source=package-lib.sh
source "$USBVM_SRCDIR/tests/integration/package-lib.sh"
usbvm_h_require lintian man zsh systemd-analyze
[ -r /usr/share/bash-completion/bash_completion ] || usbvm_h_fail "bash-completion is not installed"
pkg_init
pkg_build_deb
deb=$PKG_DEB
version=$(sed -n 's/^project(usbvm VERSION \([0-9.]*\).*/\1/p' "$USBVM_SRCDIR/CMakeLists.txt")
usbvm_h_assert_eq "$version" "$(dpkg-deb -f "$deb" Version)" "the package version is the project's"

depends=$(dpkg-deb -f "$deb" Depends)
for lib in libxml2 libudev1 libusb-1.0-0 libpopt0 libjson-c5 libc6; do
    usbvm_h_assert_match "(^|, )$lib( |,|$)" "$depends" "Depends from shlibdeps names $lib"
done
# libvirt is loaded at run time (dlopen), so shlibdeps cannot see it: named by hand.
usbvm_h_assert_match "(^|, )libvirt0 \\(>= 7\\.0\\.0\\)(,|$)" "$depends" "Depends names libvirt0 (>= 7.0.0)"

contents=$(dpkg-deb -c "$deb" | awk '{print $6}' | sed 's|^\./|/|')
for f in /usr/bin/usbvm /usr/share/man/man1/usbvm.1.gz /usr/share/man/man5/usbvm.rules.5.gz \
    /usr/share/bash-completion/completions/usbvm /usr/share/zsh/vendor-completions/_usbvm \
    /lib/systemd/system/usbvm.service /etc/usbvm/rules.d/00-usbvm.rules \
    /usr/share/doc/usbvm/examples/10-example.rules /usr/share/doc/usbvm/copyright \
    /usr/share/doc/usbvm/examples/ansible/site.yml \
    /usr/share/doc/usbvm/examples/ansible/library/usbvm_device.py \
    /usr/share/doc/usbvm/examples/ansible/roles/usbvm/tasks/main.yml; do
    usbvm_h_assert_eq "$f" "$(grep -xF -- "$f" <<<"$contents" || true)" "the package holds $f"
done
usbvm_h_assert_nomatch "/usr/local" "$contents" "nothing under /usr/local"
conffiles=$(dpkg-deb --ctrl-tarfile "$deb" | tar -xO ./conffiles)
usbvm_h_assert_eq "/etc/usbvm/rules.d/00-usbvm.rules" "$conffiles" "the file under /etc is a conffile"

# lintian: errors fail the test; its warnings are shown.
# (|| true: under set -e a failing command would end the test before its message.)
usbvm_h_run lint lintian --fail-on error --allow-root "$deb" || true
[ -n "$lint" ] && usbvm_h_log "lintian: $lint"
usbvm_h_assert_eq 0 "$lint_rc" "lintian reports no errors ($(grep '^E:' <<<"$lint" | tr '\n' ' '))"

# ---- install ----------------------------------------------------------------------------------
pkg_installed
pkg_apt install "$deb"
usbvm_h_assert_eq "install ok installed" "$(dpkg-query -W -f='${Status}' usbvm)" "apt installed it"
usbvm_h_assert_eq "usbvm $version" "$(/usr/bin/usbvm --version)" "usbvm --version"
usbvm_h_assert_eq /usr/share/man/man1/usbvm.1.gz "$(man -w usbvm)" "man -w usbvm"
usbvm_h_assert_eq /usr/share/man/man5/usbvm.rules.5.gz "$(man -w 5 usbvm.rules)" \
    "man -w usbvm.rules"
usbvm_h_assert_match "usbvm attach" "$(MANWIDTH=100 man usbvm 2>/dev/null | col -b)" \
    "man usbvm renders"
usbvm_h_run verify systemd-analyze verify /lib/systemd/system/usbvm.service || true
usbvm_h_assert_eq 0 "$verify_rc" "systemd-analyze verify of the installed unit ($verify_err)"
usbvm_h_assert_match "^ExecStart=/usr/bin/usbvm watch --rules /etc/usbvm/rules.d$" \
    "$(grep ^ExecStart= /lib/systemd/system/usbvm.service)" "the unit runs the installed binary"
# systemctl reload (the Ansible role's handler) checks the rules, then sends watch SIGHUP,
# which test-watch-reload exercises.
usbvm_h_assert_eq "ExecReload=/usr/bin/usbvm rules check /etc/usbvm/rules.d|ExecReload=/bin/kill -HUP \$MAINPID" \
    "$(grep ^ExecReload= /lib/systemd/system/usbvm.service | paste -sd'|')" \
    "systemctl reload checks the installed rules, then sends SIGHUP"
usbvm_h_assert_match "/etc/usbvm/rules.d.*yes" "$(/usr/bin/usbvm rules check /etc/usbvm/rules.d)" \
    "the shipped rules directory checks"

# bash: the completion is loaded on demand from the installed file, as in a login shell.
got=$(bash -c '
    source /usr/share/bash-completion/bash_completion
    _completion_loader usbvm
    COMP_WORDS=(usbvm rules "") COMP_CWORD=2 COMP_LINE="usbvm rules " COMP_POINT=12
    $(complete -p usbvm | sed -n "s/.*-F \([^ ]*\) .*/\1/p")
    printf "%s\n" "${COMPREPLY[@]}" | sort | tr "\n" " "')
usbvm_h_assert_eq "check generate show test " "$got" "bash completion from the installed file"
# zsh: the installed function is found on zsh's default fpath.
got=$(cd "$USBVM_H_TMP" && timeout "$USBVM_H_TIMEOUT" \
    zsh -f "$USBVM_SRCDIR/tests/tools/zsh-complete" 'usbvm rules ' | tr '\n' ' ')
usbvm_h_assert_eq "check generate show test " "$got" "zsh completion from the installed file"

# ---- remove, then purge -----------------------------------------------------------------------
pkg_apt remove usbvm
usbvm_h_assert_eq "deinstall ok config-files" "$(dpkg-query -W -f='${Status}' usbvm)" \
    "remove keeps only the conffiles"
usbvm_h_assert_eq yes "$([ -e /etc/usbvm/rules.d/00-usbvm.rules ] && echo yes || echo no)" \
    "remove keeps the conffile"
usbvm_h_assert_eq no "$([ -e /usr/bin/usbvm ] && echo yes || echo no)" "remove takes the binary"
pkg_apt purge usbvm
pkg_purged
usbvm_h_assert_eq "" "$(dpkg-query -W -f='${Status}' usbvm 2>/dev/null || true)" \
    "purge leaves dpkg no record"
left=()
while IFS= read -r f; do
    [ -n "$f" ] && [ "$f" != / ] || continue
    case $f in
    */) [ -d "$f" ] && ! dpkg -S "${f%/}" >/dev/null 2>&1 && left+=("$f") ;;
    *) [ -e "$f" ] && left+=("$f") ;;
    esac
done <<<"$contents"
usbvm_h_assert_eq "" "${left[*]}" "purge leaves none of the package's files or own directories"
usbvm_h_assert_eq no "$([ -e /etc/usbvm ] && echo yes || echo no)" "purge removes /etc/usbvm"
