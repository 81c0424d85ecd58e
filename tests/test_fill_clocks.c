/*
 * test_fill_clocks.c — leases between participants whose clocks disagree
 * by an hour: fill_worker processes under libfaketime (CLOCK_REALTIME and,
 * unless FAKETIME_DONT_FAKE_MONOTONIC, CLOCK_MONOTONIC too — as on another
 * machine, whose monotonic clock has nothing to do with ours), each in a
 * PID+UTS namespace of its own so that only heartbeats can tell a live
 * holder from a dead one. No false breaks (a live holder is never broken,
 * whatever the clocks say), no missed breaks (a killed one is broken within
 * the lease and a margin).
 *
 * Needs the Debian package faketime (installed here when missing and we
 * are root) and unshare; otherwise every test skips with the reason.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fill_spawn.h"
#include "harness.h"
#include "larder.h"

#define LEASE_MS 1000.0

__attribute__((constructor)) static void probe(void)
{
	const char *why = NULL;
	if (!spawn_faketime_lib(&why) && geteuid() == 0) {
		fprintf(stderr, "test_fill_clocks: installing faketime\n");
		if (system("(apt-get install -y -q faketime || (apt-get update "
			   "-q && apt-get install -y -q faketime)) "
			   ">/dev/null 2>&1") != 0)
			fprintf(stderr, "test_fill_clocks: apt-get failed\n");
	}
	if (!spawn_faketime_lib(&why)) {
		test_skip_all("%s, and it could not be installed (not root, or "
			      "no package source)",
			      why);
		return;
	}
	int st = system("unshare --pid --uts --fork true >/dev/null 2>&1");
	if (st == -1 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		test_skip_all("cannot run 'unshare --pid --uts --fork' (needs "
			      "root or user namespaces): the killed holder "
			      "must be in another PID namespace");
	}
}

/* The worker really runs `off` seconds away from us (else the test would
 * prove nothing). */
static void expect_offset(const struct worker *w, const struct wenv *env)
{
	long long want = 0;
	if (env->faketime)
		want = (env->faketime[0] == '-' ? -3600 : 3600);
	long long got = w->realtime - (long long)time(NULL);
	if (got < want - 60 || got > want + 60)
		test_fail(__FILE__, __LINE__,
			  "worker under FAKETIME=%s is %lld s off, want %lld",
			  env->faketime ? env->faketime : "-", got, want);
}

/* Options for a worker of key `k` in slot i. */
struct opts {
	char src[4096], side[4096], out[4096];
	const char *argv[24];
};
static const char *const *mkopts(struct opts *o, const char *tag, int i,
				 int slow)
{
	snprintf(o->src, sizeof o->src, "%s", test_path("src-%s", tag));
	snprintf(o->side, sizeof o->side, "%s", test_path("loads-%s", tag));
	snprintf(o->out, sizeof o->out, "%s", test_path("out-%s-%d", tag, i));
	const char *a[] = {"--src",	  o->src,	"--chunk",
			   "16384",	  "--delay-ms", slow ? "150" : "0",
			   "--side",	  o->side,	"--out",
			   o->out,	  "--lease",	"1",
			   "--heartbeat", "0.1",	NULL};
	memcpy(o->argv, a, sizeof a);
	return o->argv;
}

#define SIZE (10 * 16384)

TEST(live_holder_an_hour_off_is_never_broken)
{
	const char *store = spawn_make_store();
	/* Two keys at once: holder ahead with waiters behind, and holder
	 * behind with waiters ahead; each waiter set has a plain clock, a
	 * faked one with a faked monotonic clock and one without. */
	const char *hold[2] = {"+1h", "-1h"}, *wait[2] = {"-1h", "+1h"};
	enum { W = 4 };
	struct worker ws[2][W];
	struct opts o[2][W];
	struct wenv env[2][W];
	char hosts[2][W][32], key[2][16];
	for (int k = 0; k < 2; k++) {
		snprintf(key[k], sizeof key[k], "live%d", k);
		mkopts(&o[k][0], key[k], 0, 1);
		spawn_write_source(o[k][0].src, SIZE, 300 + (unsigned)k);
		for (int i = 0; i < W; i++) {
			snprintf(hosts[k][i], sizeof hosts[k][i], "clk%d-%d", k,
				 i);
			env[k][i].host = hosts[k][i];
			env[k][i].faketime = i == 0   ? hold[k]
					     : i == 3 ? NULL
						      : wait[k];
			env[k][i].fake_mono = i != 2;
		}
		/* A 1.5 s load: three lease periods. */
		worker_start(&ws[k][0], &env[k][0], store, key[k], "v1",
			     mkopts(&o[k][0], key[k], 0, 1));
		expect_offset(&ws[k][0], &env[k][0]);
		if (!worker_wait(ws[k], 1, 0, "loading", 10000))
			test_fail(__FILE__, __LINE__, "holder never loaded");
		for (int i = 1; i < W; i++) {
			worker_start(&ws[k][i], &env[k][i], store, key[k], "v1",
				     mkopts(&o[k][i], key[k], i, 0));
			expect_offset(&ws[k][i], &env[k][i]);
		}
	}
	for (int k = 0; k < 2; k++) {
		for (int i = 0; i < W; i++) {
			struct worker *w = &ws[k][i];
			worker_reap(ws[k], W, i, 15000);
			if (!w->done || w->res.rc != 0)
				test_fail(__FILE__, __LINE__,
					  "%s worker %d (FAKETIME=%s): rc %d: "
					  "%s",
					  key[k], i,
					  env[k][i].faketime
					      ? env[k][i].faketime
					      : "-",
					  w->res.rc, w->last_error);
			if (w->res.breaks != 0)
				test_fail(__FILE__, __LINE__,
					  "%s worker %d (FAKETIME=%s, fake "
					  "monotonic %d) broke the lease of "
					  "a live holder (FAKETIME=%s)",
					  key[k], i, env[k][i].faketime,
					  env[k][i].fake_mono, hold[k]);
			ASSERT_EQ(w->res.lost, 0);
			ASSERT_EQ(w->res.outcome,
				  i == 0 ? LARDER_FILLED : LARDER_WAITED);
			ASSERT(spawn_check_file(o[k][i].out, SIZE,
						300 + (unsigned)k));
		}
		ASSERT_EQ(test_count_lines(o[k][0].side), 1);
	}
}

TEST(killed_holder_an_hour_off_is_broken_within_the_lease)
{
	const char *store = spawn_make_store();
	/* Holder and waiter an hour either side of us, in both directions,
	 * with the monotonic clock faked or not. */
	enum { T = 4 };
	struct worker ws[T][2];
	struct opts o[T][2];
	struct wenv env[T][2];
	char hosts[T][2][32], key[T][16];
	double t_kill[T];
	for (int k = 0; k < T; k++) {
		snprintf(key[k], sizeof key[k], "dead%d", k);
		mkopts(&o[k][0], key[k], 0, 1);
		spawn_write_source(o[k][0].src, SIZE, 400 + (unsigned)k);
		for (int i = 0; i < 2; i++) {
			snprintf(hosts[k][i], sizeof hosts[k][i], "dead%d-%d",
				 k, i);
			env[k][i].host = hosts[k][i];
			env[k][i].faketime =
			    (k % 2 == 0) == (i == 0) ? "+1h" : "-1h";
			env[k][i].fake_mono = k < 2;
		}
		worker_start(&ws[k][0], &env[k][0], store, key[k], "v1",
			     mkopts(&o[k][0], key[k], 0, 1));
		expect_offset(&ws[k][0], &env[k][0]);
		if (!worker_wait(ws[k], 1, 0, "loading", 10000))
			test_fail(__FILE__, __LINE__, "holder never loaded");
		worker_start(&ws[k][1], &env[k][1], store, key[k], "v1",
			     mkopts(&o[k][1], key[k], 1, 0));
		expect_offset(&ws[k][1], &env[k][1]);
	}
	/* Every waiter seen waiting, then every holder killed mid-load. */
	for (int k = 0; k < T; k++)
		if (!worker_wait(ws[k], 2, 1, "waiting", 10000))
			test_fail(__FILE__, __LINE__, "%s: waiter never waited",
				  key[k]);
	for (int k = 0; k < T; k++)
		t_kill[k] = worker_kill(&ws[k][0]);
	/* Each holder's last heartbeat, from its lease as it left it: no
	 * waiter may break it before a whole lease of silence after that,
	 * whatever the clocks say (docs/leases.md, "Staleness"). A lease
	 * already gone (this test held up past a lease period) leaves the
	 * waiter's start: its lease of silence began after it. */
	double t_beat[T];
	for (int k = 0; k < T; k++) {
		worker_reap(ws[k], 2, 0, 10000);
		t_beat[k] = spawn_lease_mtime_ms(store, hosts[k][0]);
	}
	for (int k = 0; k < T; k++) {
		worker_reap(ws[k], 2, 1, LEASE_MS + 10000);
		struct worker *w = &ws[k][1];
		ASSERT(!ws[k][0].done);
		if (!w->done || w->res.rc != 0)
			test_fail(__FILE__, __LINE__, "%s waiter rc %d: %s",
				  key[k], w->res.rc, w->last_error);
		double ms = w->t_done - t_kill[k];
		printf("    holder FAKETIME=%s, waiter FAKETIME=%s, monotonic "
		       "%s: taken over %.0f ms after the kill, %.0f after the "
		       "last heartbeat\n",
		       env[k][0].faketime, env[k][1].faketime,
		       env[k][0].fake_mono ? "faked" : "real", ms,
		       t_beat[k] < 0 ? -1 : w->t_done - t_beat[k]);
		if (t_beat[k] < 0)
			t_beat[k] = w->t_start;
		ASSERT_EQ(w->res.breaks, 1);
		ASSERT_EQ(w->res.outcome, LARDER_FILLED);
		/* Not before a lease of silence; and well before max_wait
		 * (10 leases), where a waiter blind to the silence would
		 * stop: the break comes one lease after the last beat (at
		 * most the kill) and the load is quick, so two more leases
		 * are room for a loaded machine. */
		if (w->t_done < t_beat[k] + LEASE_MS)
			test_fail(__FILE__, __LINE__,
				  "%s: taken over %.0f ms after the holder's "
				  "last heartbeat, before a lease (%.0f ms) "
				  "of silence",
				  key[k], w->t_done - t_beat[k], LEASE_MS);
		if (ms > 3 * LEASE_MS)
			test_fail(__FILE__, __LINE__,
				  "%s: taken over %.0f ms after the kill, "
				  "more than 3 leases (%.0f ms)",
				  key[k], ms, 3 * LEASE_MS);
		ASSERT(spawn_check_file(o[k][1].out, SIZE, 400 + (unsigned)k));
	}
}
