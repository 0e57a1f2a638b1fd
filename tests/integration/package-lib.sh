# shellcheck shell=bash
# Shared by the tests that install the usbvm .deb system-wide (test-package, test-ansible):
# one at a time (a lock), never over a usbvm package they did not install, purged on every
# exit, failure included. The other tests run the build directory's binary by its path
# ($USBVM), never 'usbvm' from PATH, so the installed one shadows nothing. Sourced after
# tests/harness/libvirt.sh and usbvm_h_init.
#
#   pkg_init            lock, refuse a foreign install, purge-on-exit trap
#   pkg_build_deb       configure a /usr build in the temp dir, build, cpack; sets PKG_DEB
#   pkg_installed       after installing: the trap purges
#   pkg_apt VERB ARGS   apt-get VERB -y ARGS, quietly, waiting for the dpkg lock

PKG_INSTALLED=0
PKG_DEB=

pkg_apt() {
    DEBIAN_FRONTEND=noninteractive apt-get -y -qq -o DPkg::Lock::Timeout=120 "$@" \
        >"$USBVM_H_TMP/apt.log" 2>&1 || usbvm_h_fail "apt-get $*: $(tail -n 20 "$USBVM_H_TMP/apt.log")"
}

pkg_cleanup() {
    set +e # the trap goes on to usbvm_h_cleanup whatever fails here
    if [ "$PKG_INSTALLED" = 1 ]; then
        DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq -o DPkg::Lock::Timeout=120 usbvm \
            >/dev/null 2>&1 || dpkg --purge usbvm >/dev/null 2>&1
    fi
}

pkg_init() {
    usbvm_h_require cmake cpack dpkg-deb dpkg-shlibdeps apt-get
    exec {PKG_LOCK}>/run/lock/usbvm-test-package.lock
    flock -w 600 "$PKG_LOCK" || usbvm_h_fail "another package test holds /run/lock/usbvm-test-package.lock"
    if dpkg-query -W -f='${db:Status-Status}' usbvm 2>/dev/null | grep -qv '^not-installed$'; then
        usbvm_h_fail "a usbvm package is installed already; purge it first (apt-get purge usbvm)"
    fi
    trap 'PKG_RC=$?; pkg_cleanup; (exit $PKG_RC); usbvm_h_cleanup' EXIT
}

pkg_installed() { PKG_INSTALLED=1; }
pkg_purged() { PKG_INSTALLED=0; }

pkg_build_deb() {
    local build=$USBVM_H_TMP/build-deb
    cmake -S "$USBVM_SRCDIR" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
        -DCMAKE_INSTALL_PREFIX=/usr -DUSBVM_TESTS=OFF >"$USBVM_H_TMP/cmake.log" 2>&1 ||
        usbvm_h_fail "cmake failed: $(tail -n 20 "$USBVM_H_TMP/cmake.log")"
    cmake --build "$build" -j2 >>"$USBVM_H_TMP/cmake.log" 2>&1 ||
        usbvm_h_fail "build failed: $(tail -n 20 "$USBVM_H_TMP/cmake.log")"
    (cd "$build" && cpack -G DEB) >"$USBVM_H_TMP/cpack.log" 2>&1 ||
        usbvm_h_fail "cpack failed: $(tail -n 20 "$USBVM_H_TMP/cpack.log")"
    local debs=("$build"/usbvm_*.deb)
    usbvm_h_assert_eq 1 "${#debs[@]}" "cpack -G DEB built one package"
    PKG_DEB=${debs[0]}
}
