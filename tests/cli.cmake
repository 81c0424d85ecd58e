# Tests of the `larder` command-line tool: shell scripts that drive the
# built binary and check output and exit codes. Each prints
# "N passed, N failed" and fails on any failure.
if(TARGET larder_cli)
  foreach(t roundtrip versions listing verify ttl errors run stat create_race
            heads tiers get_many)
    add_test(NAME cli_${t}
             COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/cli/${t}.sh
                     $<TARGET_FILE:larder_cli>)
    set_tests_properties(cli_${t} PROPERTIES TIMEOUT 300)
  endforeach()
  # run.sh fills a store that cannot be written through the fault shim.
  set_tests_properties(cli_run PROPERTIES ENVIRONMENT
    "LARDER_FAULTSHIM=$<TARGET_FILE:larder_faultshim>")
  # heads.sh makes link() fail, as on a filesystem without hard links.
  set_tests_properties(cli_heads PROPERTIES ENVIRONMENT
    "LARDER_FAULTSHIM=$<TARGET_FILE:larder_faultshim>")
endif()
