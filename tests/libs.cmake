# Which libraries the `larder` tool loads: a get neither libpq nor
# libsqlite3 (tests/cli/libs.sh, which reads /proc/<pid>/maps and
# LD_DEBUG output).
if(TARGET larder_cli)
  add_test(NAME cli_libs
           COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/cli/libs.sh
                   $<TARGET_FILE:larder_cli>)
  set(larder_libs_env)
  foreach(opt LARDER_WITH_POSTGRESQL LARDER_WITH_SQLITE)
    if(${opt})
      list(APPEND larder_libs_env ${opt}=1)
    else()
      list(APPEND larder_libs_env ${opt}=0)
    endif()
  endforeach()
  set_tests_properties(cli_libs PROPERTIES TIMEOUT 120 SKIP_RETURN_CODE 77
    ENVIRONMENT "${larder_libs_env}")
endif()
