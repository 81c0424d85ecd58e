# The store's persistent counters and usage (src/stats.c); `larder stat`
# is tested by tests/cli/stat.sh (cli.cmake).
larder_test(test_stats test_stats.c)
