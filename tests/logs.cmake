# The CLI's log output (--log-level, --log-json) and its progress line
# (logs.sh; progress.sh: waits, larder sql, stalls).
if(TARGET larder_cli)
  add_test(NAME cli_logs
           COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/cli/logs.sh
                   $<TARGET_FILE:larder_cli>)
  set_tests_properties(cli_logs PROPERTIES TIMEOUT 300)
endif()
if(TARGET larder_cli)
  add_test(NAME cli_progress
           COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/cli/progress.sh
                   $<TARGET_FILE:larder_cli>)
  set_tests_properties(cli_progress PROPERTIES TIMEOUT 300)
endif()
