# The walk-through behind `make demo` (the README's first command), run as
# make runs it: from the repository, with the build directory relative.
if(TARGET larder_cli)
  add_test(NAME demo
           COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/cli/demo.sh
                   $<TARGET_FILE:larder_cli>)
  set_tests_properties(demo PROPERTIES TIMEOUT 300)
endif()
