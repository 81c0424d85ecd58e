# Single-flight fills across processes (leases, takeover, herd).
larder_test(test_fill test_fill.c)

# One get_or_fill per process, for participants the tests cannot fork: in
# PID+UTS namespaces of their own ("other hosts") or under libfaketime.
add_executable(fill_worker fill_worker.c)
target_compile_definitions(fill_worker PRIVATE _GNU_SOURCE)
target_link_libraries(fill_worker PRIVATE larder_static)

# Other hosts: needs unshare (root); every test skips with the reason
# otherwise.
larder_test(test_fill_hosts test_fill_hosts.c fill_spawn.c)
add_dependencies(test_fill_hosts fill_worker)
target_compile_definitions(test_fill_hosts PRIVATE
  LARDER_FILL_WORKER="$<TARGET_FILE:fill_worker>")

# Other clocks: libfaketime an hour either way (Debian package faketime,
# installed by the test when missing and root); every test skips with the
# reason otherwise.
larder_test(test_fill_clocks test_fill_clocks.c fill_spawn.c)
add_dependencies(test_fill_clocks fill_worker)
target_compile_definitions(test_fill_clocks PRIVATE
  LARDER_FILL_WORKER="$<TARGET_FILE:fill_worker>")

# Their bounds are derived from a lease and a heartbeat period, measured on
# the wall clock: each runs alone, not beside the programs that move
# hundreds of MiB (CTest runs the others two at a time).
set_tests_properties(test_fill test_fill_hosts test_fill_clocks PROPERTIES
  RUN_SERIAL TRUE)

# Tiers: near stores in front of one shared directory (docs/backends.md,
# "Tiers"); its herd plays hosts as test_fill_hosts does.
larder_test(test_tier test_tier.c fill_spawn.c)
add_dependencies(test_tier fill_worker)
target_compile_definitions(test_tier PRIVATE
  LARDER_FILL_WORKER="$<TARGET_FILE:fill_worker>")
set_tests_properties(test_tier PROPERTIES RUN_SERIAL TRUE)

# The on_redis_ tests of test_fill (elsewhere skipped) against a private
# Redis: larder_get_or_fill through the Redis backend hung on the handle.
if(LARDER_WITH_REDIS)
  add_test(NAME test_fill_redis
           COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/redis/with_redis.sh
                   $<TARGET_FILE:test_fill> on_redis_)
  set_tests_properties(test_fill_redis PROPERTIES TIMEOUT 900
                       SKIP_RETURN_CODE 77 RUN_SERIAL TRUE)
endif()
