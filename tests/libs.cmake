# Which libraries the `larder` tool loads: a get none of libpq's
# (tests/cli/libs.sh). It reads /proc/<pid>/maps and LD_DEBUG output.
if(TARGET larder_cli)
  add_test(NAME cli_libs
           COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/cli/libs.sh
                   $<TARGET_FILE:larder_cli>)
  if(LARDER_WITH_POSTGRESQL)
    set(larder_libs_pg 1)
  else()
    set(larder_libs_pg 0)
  endif()
  set_tests_properties(cli_libs PROPERTIES TIMEOUT 120 SKIP_RETURN_CODE 77
    ENVIRONMENT "LARDER_WITH_POSTGRESQL=${larder_libs_pg}")
endif()
