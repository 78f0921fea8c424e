# install.cmake - `make install` (PREFIX, DESTDIR) and `make deb` (CPack DEB).
#
#   PREFIX/bin/roomcast
#   PREFIX/share/roomcast/{lua,scripts,plugins,www}     the runtime (runtime.h)
#   PREFIX/share/doc/roomcast/{README.md,API.md}
#   PREFIX/share/doc/roomcast/examples/                 both configs, the unit, logrotate
#   SYSCONFDIR/roomcast/roomcast.conf.lua               only when none is there yet
#
# RC_PACKAGE_DEB=ON (make deb, prefix /usr) adds the files the package owns
# outside the prefix: /etc/roomcast/roomcast.conf.lua and
# /etc/logrotate.d/roomcast (conffiles), /lib/systemd/system/roomcast.service.
option(RC_PACKAGE_DEB "Install the Debian package's /etc and systemd files (make deb)" OFF)

set(RC_INST_DATA ${CMAKE_INSTALL_DATADIR}/roomcast)
set(RC_INST_DOC ${CMAKE_INSTALL_DATADIR}/doc/roomcast)
set(RC_BIN ${CMAKE_INSTALL_FULL_BINDIR}/roomcast)
set(RC_DATA ${CMAKE_INSTALL_FULL_DATADIR}/roomcast)
# GNUInstallDirs: /etc for the /usr prefix, PREFIX/etc otherwise.
set(RC_CONF ${CMAKE_INSTALL_FULL_SYSCONFDIR}/roomcast/roomcast.conf.lua)
configure_file(etc/systemd/roomcast.service.in ${CMAKE_BINARY_DIR}/pkg/roomcast.service @ONLY)
configure_file(etc/logrotate/roomcast.in ${CMAKE_BINARY_DIR}/pkg/roomcast.logrotate @ONLY)

if(TARGET roomcast)
  install(TARGETS roomcast RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
endif()
install(DIRECTORY lua/roomcast DESTINATION ${RC_INST_DATA}/lua FILES_MATCHING PATTERN "*.lua")
install(DIRECTORY scripts plugins DESTINATION ${RC_INST_DATA} FILES_MATCHING PATTERN "*.lua")
if(EXISTS ${CMAKE_SOURCE_DIR}/www)
  install(DIRECTORY www DESTINATION ${RC_INST_DATA})
endif()
install(FILES README.md lua/API.md DESTINATION ${RC_INST_DOC})
install(FILES etc/roomcast.conf.lua etc/roomcast-dev.conf.lua
  ${CMAKE_BINARY_DIR}/pkg/roomcast.service DESTINATION ${RC_INST_DOC}/examples)
install(FILES ${CMAKE_BINARY_DIR}/pkg/roomcast.logrotate DESTINATION ${RC_INST_DOC}/examples
  RENAME logrotate-roomcast)

if(RC_PACKAGE_DEB)
  install(FILES etc/roomcast.conf.lua DESTINATION /etc/roomcast)
  install(FILES ${CMAKE_BINARY_DIR}/pkg/roomcast.logrotate DESTINATION /etc/logrotate.d
    RENAME roomcast)
  install(FILES ${CMAKE_BINARY_DIR}/pkg/roomcast.service DESTINATION /lib/systemd/system)
else()
  # An operator's edited config survives every later `make install`.
  install(CODE "
    set(conf \"\$ENV{DESTDIR}${RC_CONF}\")
    if(EXISTS \"\${conf}\")
      message(STATUS \"Kept: \${conf} (exists)\")
    else()
      # file(INSTALL) puts DESTDIR in front of the destination itself
      file(INSTALL ${CMAKE_SOURCE_DIR}/etc/roomcast.conf.lua
        DESTINATION \"${CMAKE_INSTALL_FULL_SYSCONFDIR}/roomcast\")
    endif()")
endif()

# --- the Debian package (CPack DEB) -------------------------------------------
# CPack rather than debian/ + dpkg-buildpackage: the package is built from the
# same install rules as `make install` (one list of files, not two), out of
# tree in build-deb/, with no debhelper and no files written next to the
# checkout; dpkg-shlibdeps still computes the library dependencies.
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME roomcast)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_CONTACT "roomcast developers <dev@roomcast.invalid>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "real-time WebSocket room server with Lua handlers")
set(CPACK_PACKAGE_DESCRIPTION "roomcast is a WebSocket server in C (libev, LuaJIT, OpenSSL):
rooms, fan-out and the protocol's rules live in Lua handler scripts that reload
while clients stay connected.")
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
# lua-cjson is loaded by the Lua runtime, not linked; passwd has useradd.
set(CPACK_DEBIAN_PACKAGE_DEPENDS "lua-cjson, passwd")
set(CPACK_STRIP_FILES ON)
set(CPACK_PACKAGING_INSTALL_PREFIX ${CMAKE_INSTALL_PREFIX})
file(WRITE ${CMAKE_BINARY_DIR}/pkg/conffiles
  "/etc/roomcast/roomcast.conf.lua\n/etc/logrotate.d/roomcast\n")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA ${CMAKE_BINARY_DIR}/pkg/conffiles
  ${CMAKE_SOURCE_DIR}/cmake/deb/postinst ${CMAKE_SOURCE_DIR}/cmake/deb/prerm
  ${CMAKE_SOURCE_DIR}/cmake/deb/postrm)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
include(CPack)
