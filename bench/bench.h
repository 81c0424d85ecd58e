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
#include <stdlib.h>
#include <string.h>
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

/*
 * The rounds taken while the machine ran at its best pace. On a shared VM
 * the host slows a vCPU now and then for a tenth of a second to seconds
 * (docs/performance.md, "Where a 4 KiB hit's time goes": there pure user
 * code ran 1.4x slower, memory-bound user code 1.8x, system calls 1.4x),
 * so a run's p50s can come from either pace, or from a mixture in which
 * two methods' medians fall in different paces. pace[r] is the time of a
 * fixed piece of work timed in round r beside the methods; the n rounds
 * are cut into n / w windows of about w rounds (at least one), each
 * window's pace is its 75th percentile (so that a window more than a quarter
 * of whose rounds ran slow counts as slow), and a window is at the
 * best pace if its pace is at most slack times the fastest window's.
 * Sets keep[r] to 1 for every round of such a window, else 0, *fast to
 * the fastest window's pace and *slow to the slowest's; returns how many
 * rounds were kept, or -1 if out of memory (keep is then untouched).
 */
static inline int steady_rounds(const double *pace, int n, int w, double slack,
				unsigned char *keep, double *fast, double *slow)
{
	if (n <= 0) {
		*fast = *slow = 0;
		return 0;
	}
	int nw = w > 0 && n / w > 1 ? n / w : 1;
	double *med = malloc(sizeof(double) * (size_t)nw);
	double *win = malloc(sizeof(double) * (size_t)(n / nw + 1));
	if (!med || !win) {
		free(med);
		free(win);
		return -1;
	}
	for (int k = 0; k < nw; k++) {
		int a = (int)((int64_t)k * n / nw),
		    b = (int)((int64_t)(k + 1) * n / nw);
		memcpy(win, pace + a, sizeof(double) * (size_t)(b - a));
		qsort(win, (size_t)(b - a), sizeof(double), cmp_double);
		med[k] = pct(win, b - a, 0.75);
	}
	double lo = med[0], hi = med[0];
	for (int k = 1; k < nw; k++) {
		lo = med[k] < lo ? med[k] : lo;
		hi = med[k] > hi ? med[k] : hi;
	}
	int kept = 0;
	for (int k = 0; k < nw; k++) {
		int a = (int)((int64_t)k * n / nw),
		    b = (int)((int64_t)(k + 1) * n / nw);
		unsigned char in = med[k] <= lo * slack;
		memset(keep + a, in, (size_t)(b - a));
		kept += in ? b - a : 0;
	}
	free(med);
	free(win);
	*fast = lo;
	*slow = hi;
	return kept;
}

#endif
