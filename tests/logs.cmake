# The CLI's log output (--log-level, --log-json) and its progress line
# (logs.sh; progress.sh: waits, larder sql, stalls).
if(TARGET larder_cli)
  foreach(t logs progress)
    add_test(NAME cli_${t}
             COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/cli/${t}.sh
                     $<TARGET_FILE:larder_cli>)
    set_tests_properties(cli_${t} PROPERTIES TIMEOUT 300)
  endforeach()
endif()
