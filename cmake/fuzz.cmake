# fuzz.cmake - libFuzzer targets, one per tests/fuzz/fuzz_<name>.c (included
# from CMakeLists.txt when -DSFL_FUZZ=ON).
#
#   cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DSFL_FUZZ=ON -DSFL_TESTS=OFF
#   cmake --build build-fuzz --target fuzz
#
# sflcore is compiled with coverage instrumentation (fuzzer-no-link) plus
# ASan and UBSan; every fuzz_<name> executable links libFuzzer's main. UB
# aborts (-fno-sanitize-recover) so libFuzzer counts it as a crash. The other
# programs that link sflcore (sflimit, the tools) still build: they get the
# sanitizer runtimes through sflcore's link interface. tests/fuzz/run.sh
# drives all of this.

if(NOT CMAKE_C_COMPILER_ID STREQUAL "Clang")
  message(FATAL_ERROR
    "SFL_FUZZ=ON needs clang (libFuzzer), but the C compiler is "
    "'${CMAKE_C_COMPILER_ID}' (${CMAKE_C_COMPILER}). Configure a fresh build dir with "
    "-DCMAKE_C_COMPILER=clang (Debian: apt-get install clang libclang-rt-14-dev).")
endif()

set(SFL_FUZZ_SAN address,undefined)
set(SFL_FUZZ_COMMON -g -fno-omit-frame-pointer -fno-sanitize-recover=undefined)

target_compile_options(sflcore PRIVATE -fsanitize=fuzzer-no-link,${SFL_FUZZ_SAN} ${SFL_FUZZ_COMMON})
target_link_options(sflcore INTERFACE -fsanitize=${SFL_FUZZ_SAN})

file(GLOB SFL_FUZZ_SRC CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/tests/fuzz/fuzz_*.c)
add_custom_target(fuzz)
foreach(src ${SFL_FUZZ_SRC})
  get_filename_component(name ${src} NAME_WE)
  add_executable(${name} ${src})
  target_compile_options(${name} PRIVATE -fsanitize=fuzzer,${SFL_FUZZ_SAN} ${SFL_FUZZ_COMMON})
  target_link_options(${name} PRIVATE -fsanitize=fuzzer,${SFL_FUZZ_SAN})
  target_link_libraries(${name} PRIVATE sflcore)
  set_target_properties(${name} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/fuzz)
  add_dependencies(fuzz ${name})
endforeach()
