# The benchmarks' own arithmetic (bench/bench.h): which rounds a
# benchmark counts as taken at the machine's best pace.
larder_test(test_bench_pace test_bench_pace.c)
