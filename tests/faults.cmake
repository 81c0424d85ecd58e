# Fault injection (docs/testing.md): an LD_PRELOAD shim that fails
# the Nth open/write/fsync/link/rename/… inside the store, the sweeps that
# drive it, and a put into a really full (tmpfs) disk.

# The shim is a plain shared object loaded with LD_PRELOAD. It is built
# without sanitizers even in a LARDER_SANITIZE build: an instrumented
# preload would need its own ASan runtime ahead of everything else; the
# tests put the program's libasan first in LD_PRELOAD instead.
add_library(larder_faultshim MODULE faultshim.c)
target_link_libraries(larder_faultshim PRIVATE ${CMAKE_DL_LIBS})
set_target_properties(larder_faultshim PROPERTIES PREFIX "" OUTPUT_NAME faultshim)
foreach(prop COMPILE_OPTIONS LINK_OPTIONS)
  get_target_property(opts larder_faultshim ${prop})
  if(opts)
    list(FILTER opts EXCLUDE REGEX "sanitize")
    set_target_properties(larder_faultshim PROPERTIES ${prop} "${opts}")
  endif()
endforeach()

larder_test(test_faults test_faults.c)
add_dependencies(test_faults larder_faultshim)
target_compile_definitions(test_faults PRIVATE
  LARDER_FAULTSHIM="$<TARGET_FILE:larder_faultshim>")

# A real full disk: a 2 MiB tmpfs. Needs root (CAP_SYS_ADMIN); without it
# every test skips with the reason and CTest reports the program skipped.
larder_test(test_fulldisk test_fulldisk.c)
target_compile_definitions(test_fulldisk PRIVATE
  LARDER_CLI="${CMAKE_BINARY_DIR}/cli/larder")
# `larder run` on that full disk: the output, the status and a warning,
# nothing cached; and a failing fdatasync or link (the fault shim). Skips
# (77) without the right to mount.
if(TARGET larder_cli)
  add_test(NAME cli_fulldisk_run
           COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/cli/fulldisk_run.sh
                   $<TARGET_FILE:larder_cli>)
  set_tests_properties(cli_fulldisk_run PROPERTIES TIMEOUT 300
    SKIP_RETURN_CODE 77
    ENVIRONMENT "LARDER_FAULTSHIM=$<TARGET_FILE:larder_faultshim>")
endif()
