# Sweeping stale temp, lease, break and quarantine files (src/sweep.c).
larder_test(test_sweep test_sweep.c)
