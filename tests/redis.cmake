# The private Redis the Redis tests run against (docs/backends.md):
# tests/redis/redis.sh starts redis-server (a master, optionally a replica
# and three sentinels) on 127.0.0.1 and free ports it picks, in a private
# directory, and stops it by pid; it installs redis-server and
# redis-sentinel with apt-get if missing. tests/redis/harness.sh checks
# that harness itself: replication, the sentinels' view, a failover after
# the master is killed, and a stop that leaves no process and no port.
# Where Redis cannot be installed or run it prints "SKIP: <reason>" and
# exits 77 (CTest reports it skipped).
#
# No RESOURCE_LOCK: each run has its own directory (mktemp -d) and its own
# free ports, so runs from several build directories do not collide.
add_test(NAME redis_harness
         COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/redis/harness.sh)
set_tests_properties(redis_harness PROPERTIES
  TIMEOUT 300
  SKIP_RETURN_CODE 77)

# The Redis backend against a private Redis each run starts (redis.sh).
if(LARDER_WITH_REDIS)
  larder_test(test_be_redis test_be_redis.c redis_run.c)
  target_compile_definitions(test_be_redis PRIVATE
    REDIS_SH="${CMAKE_CURRENT_SOURCE_DIR}/redis/redis.sh")
endif()

# The seam's conformance suite (test_backend, tests/unit.cmake) again on
# a private Redis: with_redis.sh starts it, points LARDER_TEST_BACKEND at
# it and stops it by pid; 77 (skipped) where Redis cannot run here.
if(LARDER_WITH_REDIS)
  add_test(NAME test_backend_redis
           COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/redis/with_redis.sh
                   $<TARGET_FILE:test_backend>)
  set_tests_properties(test_backend_redis PROPERTIES TIMEOUT 900
                       SKIP_RETURN_CODE 77)
endif()

# The hard cases (docs/testing.md, "Redis: hosts, failover, sizes"):
# fill_worker processes in PID+UTS namespaces of their own ("hosts") that
# share only a private Redis; a failover under a herd (its own master,
# replica and sentinels); 300 MB and 600 MB entries. Run alone: the
# bounds come from lease periods, and the big entries move ~1.5 GB.
if(LARDER_WITH_REDIS)
  larder_test(test_redis_hosts test_redis_hosts.c fill_spawn.c redis_run.c)
  add_dependencies(test_redis_hosts fill_worker)
  target_compile_definitions(test_redis_hosts PRIVATE
    REDIS_SH="${CMAKE_CURRENT_SOURCE_DIR}/redis/redis.sh"
    LARDER_FILL_WORKER="$<TARGET_FILE:fill_worker>")
  set_tests_properties(test_redis_hosts PROPERTIES RUN_SERIAL TRUE)
endif()

# docs/redis.md followed through the larder tool: two hosts' stores made
# with init --shared redis://, eight runs of one command across them, one
# load (tests/redis/cli_hosts.sh; 77 where Redis cannot run).
if(LARDER_WITH_REDIS AND TARGET larder_cli)
  add_test(NAME cli_redis_hosts
           COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/redis/cli_hosts.sh
                   $<TARGET_FILE:larder_cli>)
  set_tests_properties(cli_redis_hosts PROPERTIES TIMEOUT 300
                       SKIP_RETURN_CODE 77)
endif()

# The tools on a near+Redis store (docs/cli.md, "Tiers"): ls, inspect and
# verify of entries in Redis, in near and in both, a corrupt entry found
# and removed, the Redis counters, gc's note, a bad LARDER_SHARED
# (tests/redis/cli_tools.sh; 77 where Redis cannot run).
if(LARDER_WITH_REDIS AND TARGET larder_cli)
  add_test(NAME cli_redis_tools
           COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/redis/cli_tools.sh
                   $<TARGET_FILE:larder_cli>)
  set_tests_properties(cli_redis_tools PROPERTIES TIMEOUT 300
                       SKIP_RETURN_CODE 77)
endif()
