# Two real network-filesystem clients of one store (docs/testing.md):
# tests/gluster/gluster.sh starts a private GlusterFS
# (replica 2 on two local bricks) and mounts it twice through FUSE;
# tests/gluster/run.sh runs test_gluster against the two mounts and stops
# GlusterFS afterwards. Needs root and /dev/fuse; without them it prints
# "SKIP: <reason>" and CTest reports it skipped. docs/testing.md has more.
#
# Not registered through larder_test(): the program needs the mounts that
# run.sh makes, so CTest runs run.sh.
add_executable(test_gluster test_gluster.c)
target_compile_definitions(test_gluster PRIVATE _GNU_SOURCE)
target_link_libraries(test_gluster PRIVATE larder_static larder_harness)
if(TARGET larder_cli)
  add_test(NAME gluster_cross_mount
           COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/gluster/run.sh
                   $<TARGET_FILE:test_gluster> $<TARGET_FILE:larder_cli>)
  # One GlusterFS per machine (fixed port and base directory).
  set_tests_properties(gluster_cross_mount PROPERTIES
    TIMEOUT 300
    SKIP_REGULAR_EXPRESSION "SKIP: "
    RESOURCE_LOCK larder_gluster)
endif()
