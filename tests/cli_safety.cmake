# The command line against hostile strings, bad values and interruptions
# (tests/cli/*.sh, as in cli.cmake): each prints "N passed, N failed".
if(TARGET larder_cli)
  foreach(t escape args sql_db interrupt)
    add_test(NAME cli_${t}
             COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/cli/${t}.sh
                     $<TARGET_FILE:larder_cli>)
    set_tests_properties(cli_${t} PROPERTIES TIMEOUT 300
                         SKIP_REGULAR_EXPRESSION "SKIP: ")
  endforeach()
endif()
