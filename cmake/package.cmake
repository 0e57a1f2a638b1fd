# cpack -G DEB: a Debian package of what 'cmake --install' installs. Configure with
# -DCMAKE_INSTALL_PREFIX=/usr for it: the unit's ExecStart and the install directories are
# fixed at configure time, so the package is laid out exactly as that prefix says.
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME usbvm)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_CONTACT "usbvm maintainers <usbvm@users.noreply.github.com>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "pass USB devices to libvirt virtual machines by policy")
set(CPACK_PACKAGING_INSTALL_PREFIX ${CMAKE_INSTALL_PREFIX})
set(CPACK_STRIP_FILES ON)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION admin)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
# Depends is computed from the binary's shared libraries by dpkg-shlibdeps (dpkg-dev), plus
# libvirt's client libraries, which usbvm loads when a verb first needs them (lib/virt-load.c)
# and dpkg-shlibdeps therefore cannot see. CPack appends the computed list to this one.
set(CPACK_DEBIAN_PACKAGE_DEPENDS "libvirt0 (>= 7.0.0)")
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS "libvirt-daemon-system")
set(CPACK_DEBIAN_PACKAGE_SUGGESTS "bash-completion, zsh")
set(CPACK_PACKAGE_DESCRIPTION
    "usbvm watch listens to udev, matches each USB device (above all sticks and
disks) against ordered rules and attaches it to the running libvirt domain the
first matching rule names, as USB passthrough or as a virtio, SCSI or emulated
USB disk, and detaches it when it is pulled. It refuses devices the host has
mounted and devices another domain holds.

The admin's commands (attach, detach, list, show, status, rules) answer in text
or JSON, for scripts and Ansible.")
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)

# Debian wants a copyright file and a changelog in the package's doc directory.
string(TIMESTAMP USBVM_CHANGELOG_DATE "%a, %d %b %Y %H:%M:%S +0000" UTC)
configure_file(${PROJECT_SOURCE_DIR}/packaging/changelog.in
               ${PROJECT_BINARY_DIR}/packaging/changelog @ONLY)
add_custom_command(OUTPUT ${PROJECT_BINARY_DIR}/packaging/changelog.gz
                   COMMAND ${GZIP_EXECUTABLE} -9nc ${PROJECT_BINARY_DIR}/packaging/changelog
                           > ${PROJECT_BINARY_DIR}/packaging/changelog.gz
                   DEPENDS ${PROJECT_BINARY_DIR}/packaging/changelog VERBATIM)
add_custom_target(package-changelog ALL DEPENDS ${PROJECT_BINARY_DIR}/packaging/changelog.gz)
install(FILES ${PROJECT_BINARY_DIR}/packaging/changelog.gz packaging/copyright
        DESTINATION ${CMAKE_INSTALL_DOCDIR})

# Every file under /etc is a conffile: dpkg keeps the admin's edits and purge removes them.
file(GLOB USBVM_ETC_RULES RELATIVE ${PROJECT_SOURCE_DIR}/examples
     ${PROJECT_SOURCE_DIR}/examples/00-usbvm.rules)
set(conffiles "")
foreach(f ${USBVM_ETC_RULES})
    string(APPEND conffiles "${USBVM_RULES_DIR}/${f}\n")
endforeach()
file(WRITE ${PROJECT_BINARY_DIR}/packaging/conffiles "${conffiles}")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA ${PROJECT_BINARY_DIR}/packaging/conffiles)

configure_file(${PROJECT_SOURCE_DIR}/cmake/package-check.cmake.in
               ${PROJECT_BINARY_DIR}/packaging/package-check.cmake @ONLY)
set(CPACK_PRE_BUILD_SCRIPTS ${PROJECT_BINARY_DIR}/packaging/package-check.cmake)

include(CPack)
