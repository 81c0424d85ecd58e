/*
 * bench.h — the clock, the random order of methods and the percentiles
 * the benchmarks share, so that every bench_* program reads time, orders
 * its rounds and ranks its samples the same way.
 * Header-only (static inline): each benchmark is one file and links
 * nothing of its own beyond liblarder.
 */
#ifndef LARDER_BENCH_H
#define LARDER_BENCH_H

#include <stdint.h>
#include <time.h>

/* Monotonic: a step of the wall clock must not land in a sample. */
static inline int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* qsort() order of doubles, ascending. */
static inline int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* Nearest-rank percentile (0 < p <= 1) of n sorted samples. */
static inline double pct(const double *v, int n, double p)
{
	int i = (int)(p * n + 0.999999) - 1;
	return v[i < 0 ? 0 : i >= n ? n - 1 : i];
}

/*
 * order[0..n-1] := 0..n-1 in a fresh random order (Fisher-Yates on a
 * xorshift64 generator whose state *rng the caller keeps, seeded with any
 * non-zero value): the same sequence on every run, and no libc rand()
 * state shared with the library. A benchmark times its methods in this
 * order each round, so that no method always follows the same other one
 * and inherits its damage (a TLB flush, a cold cache).
 */
static inline void shuffle_order(int *order, int n, uint64_t *rng)
{
	for (int k = 0; k < n; k++)
		order[k] = k;
	for (int k = n - 1; k > 0; k--) {
		*rng ^= *rng << 13;
		*rng ^= *rng >> 7;
		*rng ^= *rng << 17;
		int j = (int)(*rng % (uint64_t)(k + 1));
		int x = order[k];
		order[k] = order[j];
		order[j] = x;
	}
}

#endif
