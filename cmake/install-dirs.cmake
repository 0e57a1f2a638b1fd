# Install directories that pkg-config knows for the distribution (bash-completion, systemd),
# re-rooted at CMAKE_INSTALL_PREFIX: the .pc files name /usr, and a /usr/local install must not
# write into /usr or /lib. Each stays a cache variable, so -DVAR=... overrides it.

# usbvm_pkg_dir(OUT MODULE VARIABLE FALLBACK): MODULE's VARIABLE with its prefix set to ours.
# bash-completion's .pc spells datadir out as /usr/share, and systemd's roots units at
# ${root_prefix} (empty on Debian 12: /lib/systemd/system), so those are re-rooted too.
function(usbvm_pkg_dir out module variable fallback)
    set(value "")
    if(PKG_CONFIG_EXECUTABLE)
        set(defines --define-variable=prefix=${CMAKE_INSTALL_PREFIX}
                    --define-variable=datadir=${CMAKE_INSTALL_FULL_DATADIR})
        if(NOT CMAKE_INSTALL_PREFIX STREQUAL "/usr")
            list(APPEND defines --define-variable=root_prefix=${CMAKE_INSTALL_PREFIX})
        endif()
        execute_process(COMMAND ${PKG_CONFIG_EXECUTABLE} ${defines} --variable=${variable} ${module}
                        OUTPUT_VARIABLE value OUTPUT_STRIP_TRAILING_WHITESPACE
                        RESULT_VARIABLE rc ERROR_QUIET)
        if(NOT rc EQUAL 0)
            set(value "")
        endif()
    endif()
    if(NOT value)
        set(value ${fallback})
    endif()
    set(${out} ${value} PARENT_SCOPE)
endfunction()

usbvm_pkg_dir(bash_default bash-completion completionsdir
              ${CMAKE_INSTALL_FULL_DATADIR}/bash-completion/completions)
set(BASH_COMPLETION_DIR "${bash_default}" CACHE PATH "Where the bash completion is installed")

usbvm_pkg_dir(unit_default systemd systemdsystemunitdir
              ${CMAKE_INSTALL_PREFIX}/lib/systemd/system)
set(SYSTEMD_UNIT_DIR "${unit_default}" CACHE PATH "Where the systemd unit is installed")

# Debian's zsh searches vendor-completions for packages and site-functions under /usr/local;
# both are on its default fpath.
if(CMAKE_INSTALL_PREFIX STREQUAL "/usr")
    set(zsh_default ${CMAKE_INSTALL_FULL_DATADIR}/zsh/vendor-completions)
else()
    set(zsh_default ${CMAKE_INSTALL_FULL_DATADIR}/zsh/site-functions)
endif()
set(ZSH_COMPLETION_DIR "${zsh_default}" CACHE PATH "Where the zsh completion is installed")

# Man pages go in compressed, as Debian policy wants and man-db reads everywhere; -n keeps
# the file name and time out, so the build is reproducible.
find_program(GZIP_EXECUTABLE gzip REQUIRED)
set(USBVM_MAN_PAGES_GZ_1 "")
set(USBVM_MAN_PAGES_GZ_5 "")
foreach(page usbvm.1 usbvm.rules.5)
    set(gz ${CMAKE_CURRENT_BINARY_DIR}/man/${page}.gz)
    add_custom_command(OUTPUT ${gz}
                       COMMAND ${CMAKE_COMMAND} -E make_directory ${CMAKE_CURRENT_BINARY_DIR}/man
                       COMMAND ${GZIP_EXECUTABLE} -9nc ${CMAKE_CURRENT_SOURCE_DIR}/man/${page} > ${gz}
                       DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/man/${page} VERBATIM)
    if(page MATCHES "\\.1$")
        list(APPEND USBVM_MAN_PAGES_GZ_1 ${gz})
    else()
        list(APPEND USBVM_MAN_PAGES_GZ_5 ${gz})
    endif()
endforeach()
add_custom_target(man-pages ALL DEPENDS ${USBVM_MAN_PAGES_GZ_1} ${USBVM_MAN_PAGES_GZ_5})
