# Modes, ownership, the marker, symlinks and stray files in a store
# (docs/security.md): src/store/store.c, src/base/fsutil.c and the commands that
# create and configure a store.
larder_test(test_perms test_perms.c)
if(TARGET larder_cli)
  add_test(NAME cli_perms COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/cli/perms.sh
           $<TARGET_FILE:larder_cli>)
  set_tests_properties(cli_perms PROPERTIES TIMEOUT 300)
endif()
