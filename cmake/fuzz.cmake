# libFuzzer targets: tests/fuzz/fuzz_<name>.c with a seed corpus in
enable_testing()
# tests/fuzz/corpus/<name>/. Each is registered as a bounded ctest run
# (RC_FUZZ_SECONDS) over a scratch copy of the corpus, so the committed
# corpus only changes when a developer minimises it on purpose.
if(NOT CMAKE_C_COMPILER_ID MATCHES "Clang")
  message(FATAL_ERROR "RC_FUZZ=ON needs clang (CC=clang)")
endif()
set(RC_FUZZ_SECONDS 20 CACHE STRING "seconds per fuzz target in ctest")
file(GLOB RC_FUZZERS CONFIGURE_DEPENDS tests/fuzz/fuzz_*.c)
# `cmake --build . --target fuzzers` builds just these (the server binary is
# not linkable with fuzzer-no-link instrumentation alone).
add_custom_target(fuzzers)
foreach(src ${RC_FUZZERS})
  get_filename_component(name ${src} NAME_WE)
  string(REGEX REPLACE "^fuzz_" "" short ${name})
  add_executable(${name} ${src})
  add_dependencies(fuzzers ${name})
  target_compile_options(${name} PRIVATE -fsanitize=fuzzer,address,undefined)
  target_link_options(${name} PRIVATE -fsanitize=fuzzer,address,undefined)
  target_link_libraries(${name} PRIVATE rcproto)
  if(short STREQUAL "config")
    # compiles core/app/config.c and confload.c itself (they need LuaJIT)
    target_include_directories(${name} PRIVATE core/app)
    target_compile_definitions(${name} PRIVATE _GNU_SOURCE)
    target_link_libraries(${name} PRIVATE PkgConfig::LUAJIT)
  endif()
  if(short STREQUAL "inflate")
    # The inflate path lives in core/net (zlib streams), not in rcproto.
    target_sources(${name} PRIVATE ${CMAKE_SOURCE_DIR}/core/net/pmd.c)
    target_include_directories(${name} PRIVATE ${CMAKE_SOURCE_DIR}/core/net)
    target_link_libraries(${name} PRIVATE ZLIB::ZLIB)
  endif()
  set(dict "")
  if(EXISTS ${CMAKE_SOURCE_DIR}/tests/fuzz/ws.dict)
    set(dict "-dict=${CMAKE_SOURCE_DIR}/tests/fuzz/ws.dict")
  endif()
  add_test(NAME fuzz/${short}
    COMMAND ${CMAKE_COMMAND} -E env ASAN_OPTIONS=detect_leaks=1
      sh -c "rm -rf work-${short} && mkdir -p work-${short} && cp -r ${CMAKE_SOURCE_DIR}/tests/fuzz/corpus/${short}/. work-${short}/ 2>/dev/null; exec $<TARGET_FILE:${name}> -max_total_time=${RC_FUZZ_SECONDS} -timeout=10 -rss_limit_mb=2048 ${dict} work-${short}"
    WORKING_DIRECTORY ${CMAKE_BINARY_DIR})
  set_tests_properties(fuzz/${short} PROPERTIES LABELS "fuzz" TIMEOUT 300)
endforeach()
