# The CLI's log output (--log-level, --log-json) and its progress line.
if(TARGET larder_cli)
  add_test(NAME cli_logs
           COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/cli/logs.sh
                   $<TARGET_FILE:larder_cli>)
  set_tests_properties(cli_logs PROPERTIES TIMEOUT 300)
endif()
