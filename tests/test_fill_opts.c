/*
 * test_fill_opts.c — what larder_get_or_fill() accepts: no lease shorter
 * than LARDER_LEASE_MIN_SECONDS (a shorter one cannot be kept alive and
 * single flight is lost), no wait below the millisecond, nothing that is
 * not a finite number of seconds up to a year. And how a caller stops a
 * call (larder_fill_opts.cancel, set from a signal handler): nothing
 * published, no temp file or lease left behind.
 */
#include <errno.h>
#include <ftw.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "larder.h"
#include "store_util.h"

/* Counts its runs; writes "data". */
static int count_loads(larder_fill *f, void *payload)
{
	(*(int *)payload)++;
	return larder_fill_write(f, "data", 4);
}

/* One get_or_fill of key k with fo; the loads it ran in *loads. */
static int fill(larder *db, const char *k, const larder_fill_opts *fo,
		int *loads)
{
	larder_entry *e = NULL;
	int how = 0;
	int rc = larder_get_or_fill(&e, &how, db, "default", k, strlen(k), "v",
				    1, NULL, count_loads, loads, fo);
	larder_entry_release(e);
	return rc;
}

TEST(a_lease_shorter_than_the_minimum_is_refused_before_loading)
{
	larder *db = open_store();
	const double bad[] = {
	    1e-9, 0.001,    0.5, LARDER_LEASE_MIN_SECONDS - 0.01,
	    NAN,  INFINITY, -1,	 LARDER_LEASE_MAX_SECONDS + 0.01};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		larder_fill_opts fo = LARDER_FILL_OPTS_INIT;
		int loads = 0;
		fo.lease_seconds = bad[i];
		ASSERT_RC(db, fill(db, "k", &fo, &loads), LARDER_EINVAL);
		ASSERT_EQ(loads, 0);
	}
	larder_close(db);
}

TEST(the_minimum_lease_and_the_default_are_accepted)
{
	larder *db = open_store();
	larder_fill_opts fo = LARDER_FILL_OPTS_INIT;
	int loads = 0;
	fo.lease_seconds = LARDER_LEASE_MIN_SECONDS;
	ASSERT_RC(db, fill(db, "a", &fo, &loads), 0);
	fo.lease_seconds = LARDER_LEASE_MAX_SECONDS;
	ASSERT_RC(db, fill(db, "m", &fo, &loads), 0);
	fo.lease_seconds = 0; /* the default */
	ASSERT_RC(db, fill(db, "b", &fo, &loads), 0);
	ASSERT_RC(db, fill(db, "c", NULL, &loads), 0);
	ASSERT_EQ(loads, 4);
	larder_close(db);
}

TEST(a_wait_below_a_millisecond_or_past_a_year_is_refused)
{
	larder *db = open_store();
	const double bad[] = {1e-9, 0.0009, NAN, INFINITY, 367.0 * 86400};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		larder_fill_opts fo = LARDER_FILL_OPTS_INIT;
		int loads = 0;
		fo.max_wait_seconds = bad[i];
		ASSERT_RC(db, fill(db, "k", &fo, &loads), LARDER_EINVAL);
		ASSERT_EQ(loads, 0);
	}
	larder_fill_opts fo = LARDER_FILL_OPTS_INIT;
	int loads = 0;
	fo.max_wait_seconds = 0.001;
	ASSERT_RC(db, fill(db, "k", &fo, &loads), 0);
	ASSERT_EQ(loads, 1);
	larder_close(db);
}

TEST(a_heartbeat_that_is_not_finite_is_refused)
{
	larder *db = open_store();
	larder_fill_opts fo = LARDER_FILL_OPTS_INIT;
	int loads = 0;
	fo.heartbeat_seconds = NAN;
	ASSERT_RC(db, fill(db, "k", &fo, &loads), LARDER_EINVAL);
	fo.heartbeat_seconds = INFINITY;
	ASSERT_RC(db, fill(db, "k", &fo, &loads), LARDER_EINVAL);
	ASSERT_EQ(loads, 0);
	larder_close(db);
}

/* ---------------------------------------------------------------------- */
/* Cancelling                                                              */

static volatile sig_atomic_t cancel_flag;

static void on_signal(int sig)
{
	(void)sig;
	cancel_flag = 1;
}

/* Catch sig with on_signal, without SA_RESTART (as larder's CLI does). */
static void catch_signal(int sig)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	ASSERT(sigaction(sig, &sa, NULL) == 0);
}

static int leftovers;

static int count_leftover(const char *path, const struct stat *sb, int type,
			  struct FTW *ftw)
{
	(void)sb;
	(void)type;
	const char *name = path + ftw->base;
	if (strncmp(name, ".tmp.", 5) == 0 || strstr(name, ".lease"))
		leftovers++;
	return 0;
}

/* Temp files and leases anywhere in the store. */
static int store_leftovers(void)
{
	leftovers = 0;
	ASSERT(nftw(test_path("store"), count_leftover, 16, FTW_PHYS) == 0);
	return leftovers;
}

/* Writes a first chunk, then "receives a signal", then writes again. */
static int load_then_signalled(larder_fill *f, void *payload)
{
	int *loads = payload;
	char chunk[4096];
	(*loads)++;
	memset(chunk, 'x', sizeof chunk);
	int rc = larder_fill_write(f, chunk, sizeof chunk);
	if (rc)
		return rc;
	ASSERT_EQ(store_leftovers(), 2); /* the temp file and the lease */
	raise(SIGUSR1);
	return larder_fill_write(f, chunk, sizeof chunk);
}

TEST(a_cancelled_load_publishes_nothing_and_leaves_no_temp_file_or_lease)
{
	larder *db = open_store();
	larder_fill_opts fo = LARDER_FILL_OPTS_INIT;
	larder_entry *e = NULL;
	int loads = 0, how = 0;
	catch_signal(SIGUSR1);
	cancel_flag = 0;
	fo.cancel = &cancel_flag;
	ASSERT_RC(db,
		  larder_get_or_fill(&e, &how, db, "default", "k", 1, "v", 1,
				     NULL, load_then_signalled, &loads, &fo),
		  LARDER_ECANCELED);
	ASSERT(e == NULL);
	ASSERT_EQ(loads, 1);
	ASSERT_EQ(store_leftovers(), 0);
	ASSERT_RC(db, larder_get(&e, db, "default", "k", 1, "v", 1),
		  LARDER_ENOTFOUND);
	ASSERT_STR_EQ(larder_strerror(LARDER_ECANCELED),
		      "cancelled by the caller");

	/* The flag cleared, the next call loads and publishes. */
	cancel_flag = 0;
	ASSERT_RC(db, fill(db, "k", &fo, &loads), 0);
	ASSERT_EQ(loads, 2);
	ASSERT_RC(db, larder_get(&e, db, "default", "k", 1, "v", 1), 0);
	larder_entry_release(e);
	larder_close(db);
}

TEST(a_call_cancelled_before_it_loads_runs_no_loader)
{
	larder *db = open_store();
	larder_fill_opts fo = LARDER_FILL_OPTS_INIT;
	int loads = 0;
	cancel_flag = 1;
	fo.cancel = &cancel_flag;
	ASSERT_RC(db, fill(db, "k", &fo, &loads), LARDER_ECANCELED);
	ASSERT_EQ(loads, 0);
	ASSERT_EQ(store_leftovers(), 0);
	/* A version 2 struct has no cancel field: the flag is not read. */
	fo.version = 2;
	ASSERT_RC(db, fill(db, "k", &fo, &loads), 0);
	ASSERT_EQ(loads, 1);
	larder_close(db);
}

/* The holder's loader: says 'L', then waits until the gate closes. */
struct gated {
	int note, gate;
};

static int gated_load(larder_fill *f, void *payload)
{
	struct gated *g = payload;
	char c;
	if (write(g->note, "L", 1) != 1)
		return LARDER_EIO;
	while (read(g->gate, &c, 1) < 0 && errno == EINTR)
		;
	return larder_fill_write(f, "late", 4);
}

/* Arms a timer when the wait starts: its SIGALRM sets the cancel flag
 * while the call sleeps. */
static void arm_on_start(const larder_wait_info *info, void *payload)
{
	(void)payload;
	if (info->event != LARDER_WAIT_START)
		return;
	struct itimerval it = {{0, 0}, {0, 200000}};
	ASSERT(setitimer(ITIMER_REAL, &it, NULL) == 0);
}

static double mono_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

TEST(a_signal_ends_a_wait_for_another_filler)
{
	int note[2], gate[2];
	ASSERT(pipe(note) == 0 && pipe(gate) == 0);
	larder_fill_opts fo = LARDER_FILL_OPTS_INIT;
	/* Nothing but the cancel flag may end this wait early: the holder
	 * is alive and beats, and max_wait is far off. */
	fo.lease_seconds = 30;
	fo.max_wait_seconds = 300;
	pid_t pid = fork();
	ASSERT(pid >= 0);
	if (pid == 0) {
		close(note[0]);
		close(gate[1]);
		larder *d = open_store();
		struct gated g = {note[1], gate[0]};
		larder_entry *e = NULL;
		int rc = larder_get_or_fill(&e, NULL, d, "default", "w", 1, "v",
					    1, NULL, gated_load, &g, &fo);
		larder_entry_release(e);
		larder_close(d);
		_exit(rc == 0 ? 0 : 1);
	}
	close(note[1]);
	close(gate[0]);
	char c;
	ASSERT_EQ(read(note[0], &c, 1), 1);

	larder *db = open_store();
	int loads = 0;
	catch_signal(SIGALRM);
	cancel_flag = 0;
	fo.cancel = &cancel_flag;
	fo.on_wait = arm_on_start;
	double t0 = mono_s();
	ASSERT_RC(db, fill(db, "w", &fo, &loads), LARDER_ECANCELED);
	double waited = mono_s() - t0;
	printf("    cancelled after %.3f s of a wait of up to 300 s\n", waited);
	ASSERT_EQ(loads, 0);
	/* Far below max_wait and the lease: the flag ended it. */
	ASSERT(waited < 30);

	/* The holder was not disturbed: it publishes. */
	close(gate[1]);
	int st;
	ASSERT_EQ(waitpid(pid, &st, 0), pid);
	ASSERT(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	larder_entry *e = NULL;
	ASSERT_RC(db, larder_get(&e, db, "default", "w", 1, "v", 1), 0);
	larder_entry_release(e);
	larder_close(db);
}
