# Quotas, recency, watermarks and cleaning (src/upkeep/gc.c) and their commands.
larder_test(test_gc test_gc.c)
add_test(NAME cli_gc COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/cli/gc.sh
         $<TARGET_FILE:larder_cli>)
set_tests_properties(cli_gc PROPERTIES TIMEOUT 300)
# Two Unix users sharing a group store (needs root: useradd, runuser).
add_test(NAME cli_gc_group COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/cli/gc_group.sh
         $<TARGET_FILE:larder_cli>)
set_tests_properties(cli_gc_group PROPERTIES TIMEOUT 300 SKIP_RETURN_CODE 77)
