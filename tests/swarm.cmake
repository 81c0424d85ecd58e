# The swarm (tools/swarm.c, docs/swarm.md): small runs of
# larder-swarm on a local store, both variants, plus runs sabotaged on
# purpose that must fail and the tool's error paths (tests/swarm/swarm.sh).
# The large run is `make swarm`.
if(TARGET larder_swarm)
  add_test(NAME swarm
           COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/swarm/swarm.sh
                   $<TARGET_FILE:larder_swarm>)
  set_tests_properties(swarm PROPERTIES TIMEOUT 300)

  # The file swarm across the two GlusterFS mounts: run.sh starts the
  # volume, runs swarm/gluster.sh (its "test program"; the swarm binary
  # goes where run.sh passes a filter) and stops it. One GlusterFS per
  # machine: the lock is shared with gluster_cross_mount.
  if(TARGET larder_cli)
    add_test(NAME swarm_gluster
             COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/gluster/run.sh
                     ${CMAKE_CURRENT_SOURCE_DIR}/swarm/gluster.sh
                     $<TARGET_FILE:larder_cli> $<TARGET_FILE:larder_swarm>)
    set_tests_properties(swarm_gluster PROPERTIES
      TIMEOUT 300
      SKIP_REGULAR_EXPRESSION "SKIP: "
      RESOURCE_LOCK larder_gluster)
  endif()
endif()
