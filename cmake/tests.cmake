# Unit tests: one cmocka executable per tests/unit/test_<module>.c.
find_library(CMOCKA_LIBRARY cmocka REQUIRED)
find_path(CMOCKA_INCLUDE_DIR cmocka.h REQUIRED)
add_library(rcguard STATIC tests/unit/support/guardbuf.c)
target_include_directories(rcguard PUBLIC tests/unit/support)
file(GLOB RC_UNIT_SUPPORT CONFIGURE_DEPENDS tests/unit/support/*.c)
list(REMOVE_ITEM RC_UNIT_SUPPORT ${CMAKE_SOURCE_DIR}/tests/unit/support/guardbuf.c)
file(GLOB RC_UNIT_TESTS CONFIGURE_DEPENDS tests/unit/test_*.c)
if(RC_UNIT_SUPPORT)
  add_library(rctestsupport STATIC ${RC_UNIT_SUPPORT})
  target_include_directories(rctestsupport PUBLIC tests/unit/support ${CMOCKA_INCLUDE_DIR})
  target_compile_definitions(rctestsupport PRIVATE _GNU_SOURCE)
  target_link_libraries(rctestsupport PUBLIC libroomcast)
endif()
foreach(src ${RC_UNIT_TESTS})
  get_filename_component(name ${src} NAME_WE)
  string(REGEX REPLACE "^test_" "" module ${name})
  # Tests of the pure layers link only rcproto, so they build while the
  # upper layers are being changed.
  set(pure OFF)
  if(EXISTS ${CMAKE_SOURCE_DIR}/core/proto/${module}.c OR EXISTS ${CMAKE_SOURCE_DIR}/core/base/${module}.c)
    set(pure ON)
  endif()
  add_executable(${name} ${src})
  target_include_directories(${name} PRIVATE ${CMOCKA_INCLUDE_DIR} tests/unit/support)
  target_compile_definitions(${name} PRIVATE _GNU_SOURCE RC_SOURCE_DIR="${CMAKE_SOURCE_DIR}")
  if(pure)
    target_link_libraries(${name} PRIVATE rcproto rcguard ${CMOCKA_LIBRARY})
  else()
    target_link_libraries(${name} PRIVATE libroomcast rcguard ${CMOCKA_LIBRARY})
    if(RC_UNIT_SUPPORT)
      target_link_libraries(${name} PRIVATE rctestsupport)
    endif()
  endif()
  set_target_properties(${name} PROPERTIES ENABLE_EXPORTS ON)
  add_test(NAME unit/${name} COMMAND ${name})
  # Tests that start threads also run in the TSan build (make test-tsan runs
  # -L tsan): test_mailbox (producer threads and a consumer loop) and
  # test_store_sqlite (appenders, the writer and reader threads) and
  # test_bus_redis (bus threads posting to the test's thread) and test_wloop
  # (a thread waking the loop) and test_tick (a reader thread while main
  # refines the clock factor). The other
  # unit tests run on one thread and have nothing for TSan to find.
  set(labels "unit")
  if(name MATCHES "^test_(mailbox|store_sqlite|bus_redis|wloop|tick)$")
    set(labels "unit;tsan")
  endif()
  set_tests_properties(unit/${name} PROPERTIES LABELS "${labels}" TIMEOUT 300
    ENVIRONMENT "RC_SOURCE_DIR=${CMAKE_SOURCE_DIR}")
endforeach()

# The module graph of core/ (tests/layers/check_modules.py): no cycle between
# modules, no upward include or call, base/proto free of the loop, sockets
# and Lua. Computed from the sources on every run.
add_test(NAME check/modules
  COMMAND /usr/bin/python3 ${CMAKE_SOURCE_DIR}/tests/layers/check_modules.py --root ${CMAKE_SOURCE_DIR})
set_tests_properties(check/modules PROPERTIES LABELS "unit;check" TIMEOUT 60)
# The checker itself on small synthetic trees: compiler words in headers
# (__attribute__, _Static_assert, __typeof__...) make no false edge, and a
# true upward call still fails.
add_test(NAME check/modules_selftest
  COMMAND /usr/bin/python3 ${CMAKE_SOURCE_DIR}/tests/layers/check_modules_test.py)
set_tests_properties(check/modules_selftest PROPERTIES LABELS "unit;check" TIMEOUT 60)

# Lua specs (busted under LuaJIT).
find_program(BUSTED busted)
if(BUSTED AND EXISTS ${CMAKE_SOURCE_DIR}/tests/lua)
  file(GLOB RC_LUA_SPECS CONFIGURE_DEPENDS tests/lua/*_spec.lua)
  foreach(spec ${RC_LUA_SPECS})
    get_filename_component(name ${spec} NAME_WE)
    add_test(NAME lua/${name}
      COMMAND ${BUSTED} --lua=luajit -o utfTerminal ${spec}
      WORKING_DIRECTORY ${CMAKE_SOURCE_DIR})
    set_tests_properties(lua/${name} PROPERTIES LABELS "lua" TIMEOUT 300
      ENVIRONMENT "ROOMCAST_BIN=$<TARGET_FILE:roomcast>;RC_SOURCE_DIR=${CMAKE_SOURCE_DIR}")
  endforeach()
endif()

# Integration tests: real binary, real third-party clients.
set(RC_PYTHON /usr/bin/python3 CACHE FILEPATH "Debian's python3 (owns python3-websockets)")
file(GLOB RC_INTEG_PY CONFIGURE_DEPENDS tests/integration/[0-9][0-9]_*.py)
# Every integration scenario runs with 1 worker and with 3, so the
# cross-thread paths (mailboxes, remote rooms) are always exercised.
set(RC_TEST_WORKERS 1 3)
# Suites left out of the TSan label, each with its reason (empty: none).
set(RC_TSAN_SKIP "^$")
foreach(t ${RC_INTEG_PY})
  get_filename_component(name ${t} NAME_WE)
  foreach(nw ${RC_TEST_WORKERS})
    add_test(NAME integration/w${nw}/${name} COMMAND ${RC_PYTHON} ${t})
    # Every suite runs with 3 workers in the TSan build: all of them start
    # worker threads (mailboxes, reload, metrics read from the admin thread,
    # SIGHUP config snapshots, drain). The 1-worker runs add no thread
    # interleaving that the 3-worker runs lack, so TSan skips them to keep
    # `make test-tsan` short.
    set(labels "integration")
    if(nw EQUAL 3 AND NOT name MATCHES "${RC_TSAN_SKIP}")
      set(labels "integration;tsan")
    endif()
    set_tests_properties(integration/w${nw}/${name} PROPERTIES LABELS "${labels}" TIMEOUT 600
      ENVIRONMENT "ROOMCAST_BIN=$<TARGET_FILE:roomcast>;RC_WORKERS=${nw};RC_SOURCE_DIR=${CMAKE_SOURCE_DIR};RC_BUILD_DIR=${CMAKE_BINARY_DIR};RC_SANITIZE=${RC_SANITIZE}")
  endforeach()
endforeach()
# The cluster suite (issue 11) starts its own redis-server and 3 nodes with
# 2 workers each (plus one it kills with -9): registered once, not per
# RC_WORKERS. TSan runs it too (the bus thread posts to the workers).
add_test(NAME integration/cluster/cluster
  COMMAND ${RC_PYTHON} ${CMAKE_SOURCE_DIR}/tests/integration/cluster/cluster.py)
set_tests_properties(integration/cluster/cluster PROPERTIES LABELS "integration;tsan" TIMEOUT 600
  ENVIRONMENT "ROOMCAST_BIN=$<TARGET_FILE:roomcast>;RC_SOURCE_DIR=${CMAKE_SOURCE_DIR};RC_BUILD_DIR=${CMAKE_BINARY_DIR};RC_SANITIZE=${RC_SANITIZE}")
find_program(NODE node)
file(GLOB RC_INTEG_JS CONFIGURE_DEPENDS tests/integration/[0-9][0-9]_*.js)
if(NODE)
  foreach(t ${RC_INTEG_JS})
    get_filename_component(name ${t} NAME_WE)
    # The browser test's screenshots go to the build tree: a test run
    # leaves the source tree as it was (docs/*.png are refreshed by hand,
    # RC_SCREENSHOT_DIR=docs node tests/integration/80_browser.js).
    foreach(nw ${RC_TEST_WORKERS})
      add_test(NAME integration/w${nw}/${name} COMMAND ${NODE} ${t})
      set(labels "integration")
      if(nw EQUAL 3 AND NOT name MATCHES "${RC_TSAN_SKIP}")
        set(labels "integration;tsan")
      endif()
      set_tests_properties(integration/w${nw}/${name} PROPERTIES LABELS "${labels}" TIMEOUT 600
        ENVIRONMENT "ROOMCAST_BIN=$<TARGET_FILE:roomcast>;RC_WORKERS=${nw};RC_SOURCE_DIR=${CMAKE_SOURCE_DIR};RC_BUILD_DIR=${CMAKE_BINARY_DIR};RC_SANITIZE=${RC_SANITIZE};NODE_PATH=${CMAKE_SOURCE_DIR}/tests/node_modules;RC_SCREENSHOT_DIR=${CMAKE_BINARY_DIR}/screenshots/w${nw}")
    endforeach()
  endforeach()
endif()

# make install in a copy of the tree, then the copy deleted: the installed
# binary serves chat.lua with no source tree (tests/install/install_test.py).
add_test(NAME install/relocated COMMAND ${RC_PYTHON} ${CMAKE_SOURCE_DIR}/tests/install/install_test.py)
set_tests_properties(install/relocated PROPERTIES LABELS "install" TIMEOUT 900
  ENVIRONMENT "RC_SOURCE_DIR=${CMAKE_SOURCE_DIR}")
