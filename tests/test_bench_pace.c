/*
 * test_bench_pace.c — steady_rounds() of bench/bench.h, which picks the
 * rounds a benchmark took while the machine ran at its best pace
 * (docs/performance.md, "Where a 4 KiB hit's time goes"): bench_hit's
 * "at the machine's best pace" line is only as right as this choice.
 * The paces are made up: two paces, as the VM of the docs showed them.
 */
#include "../bench/bench.h"
#include "harness.h"

#define N 1000
#define FAST 158.0
#define SLOW 220.0

/* A pace series: rounds [a, b) slow, the rest fast, each round off its
 * pace by up to +-4% (a fixed pattern, so the test is the same every
 * run). */
static void series(double *pace, int n, int a, int b)
{
	for (int r = 0; r < n; r++)
		pace[r] = (r >= a && r < b ? SLOW : FAST) *
			  (1.0 + 0.04 * ((r * 37 % 17) - 8) / 8.0);
}

TEST(keeps_only_the_fast_windows)
{
	static double pace[N];
	static unsigned char keep[N];
	double fast, slow;
	series(pace, N, 300, 700);
	int kept = steady_rounds(pace, N, 100, 1.05, keep, &fast, &slow);
	ASSERT_EQ(kept, 600);
	for (int r = 0; r < N; r++)
		ASSERT_EQ(keep[r], r < 300 || r >= 700);
	ASSERT(fast > FAST * 0.97 && fast < FAST * 1.03);
	ASSERT(slow > SLOW * 0.97 && slow < SLOW * 1.03);
}

TEST(a_window_over_a_quarter_slow_is_left_out)
{
	/* The switch in a window: with more than a quarter of its rounds
	 * slow, its 75th percentile is the slow pace. */
	static double pace[N];
	static unsigned char keep[N];
	double fast, slow;
	series(pace, N, 470, N);
	int kept = steady_rounds(pace, N, 100, 1.05, keep, &fast, &slow);
	ASSERT_EQ(kept, 400);
	for (int r = 0; r < N; r++)
		ASSERT_EQ(keep[r], r < 400);
	/* A few slow rounds in a window leave it at the fast pace. */
	series(pace, N, 490, N);
	ASSERT_EQ(steady_rounds(pace, N, 100, 1.05, keep, &fast, &slow), 500);
}

TEST(a_steady_run_keeps_every_round)
{
	static double pace[N];
	static unsigned char keep[N];
	double fast, slow;
	series(pace, N, 0, N); /* slow throughout: its own best pace */
	ASSERT_EQ(steady_rounds(pace, N, 100, 1.05, keep, &fast, &slow), N);
	ASSERT(slow <= fast * 1.05);
	/* Windows that do not divide the rounds: every round is in one. */
	ASSERT_EQ(steady_rounds(pace, 997, 100, 1.05, keep, &fast, &slow), 997);
}

TEST(fewer_rounds_than_a_window)
{
	double pace[7] = {5, 1, 4, 2, 3, 9, 8};
	unsigned char keep[7];
	double fast, slow;
	ASSERT_EQ(steady_rounds(pace, 7, 100, 1.05, keep, &fast, &slow), 7);
	ASSERT(fast == 8 && slow == 8); /* the one window's 75th */
	ASSERT_EQ(steady_rounds(pace, 0, 100, 1.05, keep, &fast, &slow), 0);
}
