# The read path: what a reader hands out is what it verified, streaming,
# compressed entries, newer formats and traps at entry names (test_read.c).
larder_test(test_read test_read.c)
target_link_libraries(test_read PRIVATE pthread)
# `larder get` through the CLI: -o into devices, FIFOs and symlinks, a zstd
# bomb under ulimit -v, an entry changed while it is written out.
if(TARGET larder_cli)
  add_test(NAME cli_get
           COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/cli/get.sh
                   $<TARGET_FILE:larder_cli>)
  set_tests_properties(cli_get PROPERTIES TIMEOUT 300 ENVIRONMENT
    "LARDER_FAULTSHIM=$<TARGET_FILE:larder_faultshim>")
  # What sits at an entry's name: traps, stubs, newer formats; verify's
  # report of them and of what --repair moved.
  add_test(NAME cli_traps
           COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/cli/traps.sh
                   $<TARGET_FILE:larder_cli>)
  set_tests_properties(cli_traps PROPERTIES TIMEOUT 300)
  # A `larder get` hit, as a whole process, changes nothing in the store
  # (every file's content, size, mode and times, atime included).
  add_test(NAME cli_hit_quiet
           COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/cli/hit_quiet.sh
                   $<TARGET_FILE:larder_cli>)
  set_tests_properties(cli_hit_quiet PROPERTIES TIMEOUT 120)
endif()
