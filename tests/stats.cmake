# The store's persistent counters and usage (src/store/stats.c); `larder stat`
# is tested by tests/cli/stat.sh (cli.cmake).
larder_test(test_stats test_stats.c)
# `larder stat` and `larder gc` over crafted counter files, as built here
# (the sanitizer build's own binary under LARDER_SANITIZE).
if(TARGET larder_cli)
  add_dependencies(test_stats larder_cli)
  target_compile_definitions(test_stats PRIVATE
    LARDER_CLI="$<TARGET_FILE:larder_cli>")
endif()
