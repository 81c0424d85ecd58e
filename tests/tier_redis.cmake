# Tiers with Redis as the shared tier (docs/backends.md, "Tiers";
# tests/redis/tier.sh): the conformance suite and test_tier on a near+Redis
# chain, two hosts' stores on one private Redis, and Redis stopped and
# SIGSTOPped under them. Skipped (77) where Redis cannot run.
if(LARDER_WITH_REDIS AND TARGET larder_cli)
  add_test(NAME tier_redis
           COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/redis/tier.sh
                   $<TARGET_FILE:larder_cli> $<TARGET_FILE:test_backend>
                   $<TARGET_FILE:test_tier>)
  set_tests_properties(tier_redis PROPERTIES TIMEOUT 900
                       SKIP_RETURN_CODE 77 RUN_SERIAL TRUE)
endif()
