#!/bin/bash
# The Debian package as an admin meets it: cpack -G DEB from a /usr build, lintian without
# errors, 'apt-get install ./usbvm_*.deb' with Depends computed from the binary, the binary,
# both man pages, bash and zsh completion and the unit from the installed files, then remove
# (the conffile stays) and purge (nothing stays).
#
# It installs a package system-wide, so: it refuses to run over a usbvm package it did not
# install, holds a lock against a second run, and purges on every exit, failure included. The
# other tests run the build directory's binary by its path ($USBVM), never 'usbvm' from PATH.
set -euo pipefail
# shellcheck source=../harness/libvirt.sh
source "$USBVM_SRCDIR/tests/harness/libvirt.sh"
usbvm_h_init
usbvm_h_require cmake cpack dpkg-deb dpkg-shlibdeps apt-get lintian man zsh systemd-analyze
[ -r /usr/share/bash-completion/bash_completion ] || usbvm_h_fail "bash-completion is not installed"

exec {lock}>/run/lock/usbvm-test-package.lock
flock -w 600 "$lock" || usbvm_h_fail "another package test holds /run/lock/usbvm-test-package.lock"
if dpkg-query -W -f='${db:Status-Status}' usbvm 2>/dev/null | grep -qv '^not-installed$'; then
    usbvm_h_fail "a usbvm package is installed already; purge it first (apt-get purge usbvm)"
fi
INSTALLED=0
pkg_cleanup() {
    if [ "$INSTALLED" = 1 ]; then
        DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq -o DPkg::Lock::Timeout=120 usbvm \
            >/dev/null 2>&1 || dpkg --purge usbvm >/dev/null 2>&1
    fi
}
trap 'rc=$?; pkg_cleanup; (exit $rc); usbvm_h_cleanup' EXIT

# ---- build ------------------------------------------------------------------------------------
build=$USBVM_H_TMP/build
cmake -S "$USBVM_SRCDIR" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_INSTALL_PREFIX=/usr -DUSBVM_TESTS=OFF >"$USBVM_H_TMP/cmake.log" 2>&1 ||
    usbvm_h_fail "cmake failed: $(tail -n 20 "$USBVM_H_TMP/cmake.log")"
cmake --build "$build" -j2 >>"$USBVM_H_TMP/cmake.log" 2>&1 ||
    usbvm_h_fail "build failed: $(tail -n 20 "$USBVM_H_TMP/cmake.log")"
(cd "$build" && cpack -G DEB) >"$USBVM_H_TMP/cpack.log" 2>&1 ||
    usbvm_h_fail "cpack failed: $(tail -n 20 "$USBVM_H_TMP/cpack.log")"
debs=("$build"/usbvm_*.deb)
usbvm_h_assert_eq 1 "${#debs[@]}" "cpack -G DEB built one package"
deb=${debs[0]}
version=$(sed -n 's/^project(usbvm VERSION \([0-9.]*\).*/\1/p' "$USBVM_SRCDIR/CMakeLists.txt")
usbvm_h_assert_eq "$version" "$(dpkg-deb -f "$deb" Version)" "the package version is the project's"

depends=$(dpkg-deb -f "$deb" Depends)
for lib in libvirt0 libxml2 libudev1 libusb-1.0-0 libpopt0 libjson-c5 libc6; do
    usbvm_h_assert_match "(^|, )$lib( |,|$)" "$depends" "Depends from shlibdeps names $lib"
done

contents=$(dpkg-deb -c "$deb" | awk '{print $6}' | sed 's|^\./|/|')
for f in /usr/bin/usbvm /usr/share/man/man1/usbvm.1.gz /usr/share/man/man5/usbvm.rules.5.gz \
    /usr/share/bash-completion/completions/usbvm /usr/share/zsh/vendor-completions/_usbvm \
    /lib/systemd/system/usbvm.service /etc/usbvm/rules.d/00-usbvm.rules \
    /usr/share/doc/usbvm/examples/10-example.rules /usr/share/doc/usbvm/copyright \
    /usr/share/doc/usbvm/examples/ansible/.keep; do
    usbvm_h_assert_eq "$f" "$(grep -xF -- "$f" <<<"$contents" || true)" "the package holds $f"
done
usbvm_h_assert_nomatch "/usr/local" "$contents" "nothing under /usr/local"
conffiles=$(dpkg-deb --ctrl-tarfile "$deb" | tar -xO ./conffiles)
usbvm_h_assert_eq "/etc/usbvm/rules.d/00-usbvm.rules" "$conffiles" "the file under /etc is a conffile"

# lintian: errors fail the test; its warnings are shown.
usbvm_h_run lint lintian --fail-on error --allow-root "$deb"
[ -n "$lint" ] && usbvm_h_log "lintian: $lint"
usbvm_h_assert_eq 0 "$lint_rc" "lintian reports no errors ($(grep '^E:' <<<"$lint" | tr '\n' ' '))"

# ---- install ----------------------------------------------------------------------------------
INSTALLED=1
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o DPkg::Lock::Timeout=120 "$deb" \
    >"$USBVM_H_TMP/apt.log" 2>&1 || usbvm_h_fail "apt-get install failed: $(tail -n 20 "$USBVM_H_TMP/apt.log")"
usbvm_h_assert_eq "install ok installed" "$(dpkg-query -W -f='${Status}' usbvm)" "apt installed it"
usbvm_h_assert_eq "usbvm $version" "$(/usr/bin/usbvm --version)" "usbvm --version"
usbvm_h_assert_eq /usr/share/man/man1/usbvm.1.gz "$(man -w usbvm)" "man -w usbvm"
usbvm_h_assert_eq /usr/share/man/man5/usbvm.rules.5.gz "$(man -w 5 usbvm.rules)" \
    "man -w usbvm.rules"
usbvm_h_assert_match "usbvm attach" "$(MANWIDTH=100 man usbvm 2>/dev/null | col -b)" \
    "man usbvm renders"
usbvm_h_run verify systemd-analyze verify /lib/systemd/system/usbvm.service
usbvm_h_assert_eq 0 "$verify_rc" "systemd-analyze verify of the installed unit ($verify_err)"
usbvm_h_assert_match "^ExecStart=/usr/bin/usbvm watch --rules /etc/usbvm/rules.d$" \
    "$(grep ^ExecStart= /lib/systemd/system/usbvm.service)" "the unit runs the installed binary"
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
DEBIAN_FRONTEND=noninteractive apt-get remove -y -qq -o DPkg::Lock::Timeout=120 usbvm \
    >"$USBVM_H_TMP/apt.log" 2>&1 || usbvm_h_fail "apt-get remove failed: $(cat "$USBVM_H_TMP/apt.log")"
usbvm_h_assert_eq "deinstall ok config-files" "$(dpkg-query -W -f='${Status}' usbvm)" \
    "remove keeps only the conffiles"
usbvm_h_assert_eq yes "$([ -e /etc/usbvm/rules.d/00-usbvm.rules ] && echo yes || echo no)" \
    "remove keeps the conffile"
usbvm_h_assert_eq no "$([ -e /usr/bin/usbvm ] && echo yes || echo no)" "remove takes the binary"
DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq -o DPkg::Lock::Timeout=120 usbvm \
    >"$USBVM_H_TMP/apt.log" 2>&1 || usbvm_h_fail "apt-get purge failed: $(cat "$USBVM_H_TMP/apt.log")"
INSTALLED=0
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
