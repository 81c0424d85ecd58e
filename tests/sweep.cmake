# Sweeping stale temp, lease, break and quarantine files (src/upkeep/sweep.c).
larder_test(test_sweep test_sweep.c)
