# Tests of `larder mount` (docs/fuse.md): shell scripts that make real
# FUSE mounts of a test store. Each unmounts what it mounted, also when it
# fails (tests/fuse/lib.sh); none_left runs last and checks that no larder
# mount is left. Skipped (77) where /dev/fuse is missing.
if(TARGET larder_cli AND LARDER_WITH_FUSE)
  set(fuse_tests read listing isolation inval corrupt concurrent stop lazy
      poll unit fds)
  foreach(t ${fuse_tests})
    add_test(NAME fuse_${t}
             COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/fuse/${t}.sh
                     $<TARGET_FILE:larder_cli>)
    set_tests_properties(fuse_${t} PROPERTIES TIMEOUT 600
                         SKIP_RETURN_CODE 77)
    list(APPEND fuse_names fuse_${t})
  endforeach()
  # poll.sh takes inotify away through the fault shim.
  set_tests_properties(fuse_poll PROPERTIES ENVIRONMENT
    "LARDER_FAULTSHIM=$<TARGET_FILE:larder_faultshim>")
  add_test(NAME fuse_none_left
           COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/fuse/none_left.sh)
  set_tests_properties(fuse_none_left PROPERTIES DEPENDS "${fuse_names}")
endif()
