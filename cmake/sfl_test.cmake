# sfl_add_test(<source> <kind>): one Criterion binary per tests/<kind>/test_<name>.c,
# registered with ctest as <kind>.<name>. Integration tests run their cases one
# at a time (each starts its own redis-server) and depend on the binaries they drive.
function(sfl_add_test src kind)
  get_filename_component(name ${src} NAME_WE)
  string(REGEX REPLACE "^test_" "" short ${name})
  set(target ${kind}_${short})
  add_executable(${target} ${src})
  target_link_libraries(${target} PRIVATE sfltest)
  if(kind STREQUAL "unit")
    add_test(NAME ${kind}.${short} COMMAND ${target})
  else()
    add_dependencies(${target} sflimit)
    add_test(NAME ${kind}.${short} COMMAND ${target} --jobs=1)
    set_tests_properties(${kind}.${short} PROPERTIES LABELS ${kind} TIMEOUT 600)
  endif()
endfunction()
