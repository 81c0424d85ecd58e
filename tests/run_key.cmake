# larder_run_key(): the `larder run` key built by the library, checked
# against docs/cli.md's bytes and against what `larder run` stores.
larder_test(test_run_key test_run_key.c)
if(TARGET larder_cli)
  set_tests_properties(test_run_key PROPERTIES ENVIRONMENT
    "LARDER_CLI=$<TARGET_FILE:larder_cli>")
endif()
