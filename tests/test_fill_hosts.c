/*
 * test_fill_hosts.c — single-flight fills between "hosts": fill_worker
 * processes each in a PID+UTS namespace of its own (unshare), with its own
 * hostname, sharing one store directory. Their pids mean nothing to each
 * other, so the same-host fast path must not apply: a dead filler is
 * taken over only when its lease has shown no heartbeat for a full lease
 * period, and a live one is never broken.
 *
 * Without the right to unshare (root, or user namespaces), every test
 * skips with the reason.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fill_spawn.h"
#include "harness.h"
#include "larder.h"

#define LEASE_S 1.0

__attribute__((constructor)) static void probe_unshare(void)
{
	int st = system("unshare --pid --uts --fork --kill-child "
			"sh -c 'hostname larder-probe' >/dev/null 2>&1");
	if (st == -1 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		test_skip_all("cannot run 'unshare --pid --uts --fork' and set "
			      "a hostname (needs root or user namespaces, and "
			      "util-linux): the multi-host fill tests need "
			      "separate PID+UTS namespaces");
	}
}

/* What the store holds for key now must be exactly the pattern. */
static void check_store(const char *store, const char *key, size_t size,
			unsigned long long seed)
{
	larder *db;
	larder_opts o = LARDER_OPTS_INIT;
	ASSERT_RC(NULL, larder_open(&db, store, &o), 0);
	larder_entry *e;
	ASSERT_RC(db, larder_get(&e, db, "default", key, strlen(key), "v1", 2),
		  0);
	ASSERT_EQ(larder_entry_size(e), size);
	ASSERT(test_check_pattern(larder_entry_data(e), size, seed));
	larder_entry_release(e);
	larder_close(db);
}

TEST(herd_across_8_hosts_loads_once)
{
	const char *store = spawn_make_store();
	static struct herd h;
	herd_init(&h, 8, 400000, 77);
	char host[8][32];
	for (int i = 0; i < 8; i++) {
		snprintf(host[i], sizeof host[i], "herd-host-%d", i);
		struct wenv env = {host[i], NULL, 0};
		/* The loader holds its load until the test lets it go:
		 * once the 7 others are seen waiting. */
		const char *more[] = {"--chunk",     "32768", "--lease", "1",
				      "--heartbeat", "0.1",   NULL};
		herd_start(&h, i, &env, store, more);
	}
	int loader = herd_run(&h, 20000);
	/* Exactly: the loader filled, every other one waited, once. */
	for (int i = 0; i < 8; i++) {
		ASSERT_EQ(h.ws[i].res.waits, i == loader ? 0 : 1);
		ASSERT_EQ(h.ws[i].res.breaks, 0);
	}
	/* The load ran in one of the namespaces, under its own name. */
	char line[256] = "";
	FILE *f = fopen(h.side, "r");
	ASSERT(f && fgets(line, sizeof line, f));
	fclose(f);
	ASSERT(strncmp(line, "load herd-host-", 15) == 0);
	check_store(store, "herd", h.size, 77);
}

/* One crash trial: a filler on host A killed at a random moment, a waiter
 * on host B that must finish the job. */
struct trial {
	struct worker w[2]; /* filler, waiter */
	char key[32], src[4096], out[4096], side[4096];
	size_t size;
	unsigned long long seed;
	double kill_after_ms; /* after the filler said "loading" */
	double t_kill;
	double t_beat; /* its lease's last write, or -1 (no lease seen) */
	int mode;      /* 0: kill mid-load, 1: before it loads */
};

TEST(sigkilled_filler_on_one_host_taken_over_from_another)
{
	const char *store = spawn_make_store();
	enum { BATCH = 4, BATCHES = 5 };
	const double lease_ms = LEASE_S * 1000;
	srand((unsigned)getpid());
	double took[BATCH * BATCHES];
	int ntook = 0, before = 0, mid = 0, finished = 0, by_mtime = 0;
	for (int b = 0; b < BATCHES; b++) {
		struct trial t[BATCH];
		for (int i = 0; i < BATCH; i++) {
			struct trial *x = &t[i];
			memset(x, 0, sizeof *x);
			x->t_beat = -1;
			int n = b * BATCH + i;
			snprintf(x->key, sizeof x->key, "crash-%d", n);
			snprintf(x->src, sizeof x->src, "%s",
				 test_path("src%d", n));
			snprintf(x->out, sizeof x->out, "%s",
				 test_path("out%d", n));
			snprintf(x->side, sizeof x->side, "%s",
				 test_path("loads%d", n));
			x->size = 16384 * (4 + (size_t)(rand() % 12));
			x->seed = 1000 + (unsigned long long)n;
			x->mode = rand() % 6 == 0;
			/* A load takes (chunks x 30 ms): kills land all
			 * through it, and some after the publish. */
			double load_ms = (double)(x->size / 16384) * 30;
			x->kill_after_ms = load_ms * 1.2 * rand() / RAND_MAX;
			spawn_write_source(x->src, x->size, x->seed);
		}
		/* Fillers first, each in a namespace of its own. */
		for (int i = 0; i < BATCH; i++) {
			struct trial *x = &t[i];
			char host[32];
			snprintf(host, sizeof host, "filler-%d", i);
			struct wenv env = {host, NULL, 0};
			const char *opts[] = {
			    "--src",	  x->src, "--chunk",	 "16384",
			    "--delay-ms", "30",	  "--side",	 x->side,
			    "--lease",	  "1",	  "--heartbeat", "0.1",
			    NULL};
			worker_start(&x->w[0], &env, store, x->key, "v1", opts);
			if (x->mode) {
				/* Before it loads: a few ms in, at most. */
				struct timespec ts = {0,
						      (rand() % 3) * 1000000L};
				nanosleep(&ts, NULL);
				x->t_kill = worker_kill(&x->w[0]);
			}
		}
		for (int i = 0; i < BATCH; i++) {
			struct trial *x = &t[i];
			if (x->mode == 0 &&
			    !worker_wait(x->w, 1, 0, "loading", 10000))
				test_fail(__FILE__, __LINE__,
					  "filler %d never loaded", i);
			char host[32];
			snprintf(host, sizeof host, "waiter-%d", i);
			struct wenv env = {host, NULL, 0};
			const char *opts[] = {"--src", x->src,	      "--chunk",
					      "16384", "--side",      x->side,
					      "--out", x->out,	      "--lease",
					      "1",     "--heartbeat", "0.1",
					      NULL};
			worker_start(&x->w[1], &env, store, x->key, "v1", opts);
		}
		for (int k = 0; k < BATCH; k++) {
			/* Kill in order of due time; a bounded wait that also
			 * takes in the workers' lines. */
			int next = -1;
			for (int i = 0; i < BATCH; i++)
				if (t[i].t_kill == 0 &&
				    (next < 0 || t[i].kill_after_ms <
						     t[next].kill_after_ms))
					next = i;
			if (next < 0)
				break;
			struct trial *x = &t[next];
			double due = x->w[0].t_loading + x->kill_after_ms;
			double left = due - spawn_now_ms();
			if (left > 0)
				worker_wait(x->w, 2, 0, "never", left);
			x->t_kill = worker_kill(&x->w[0]);
			/* Its lease as it left it: the last heartbeat. */
			worker_reap(x->w, 2, 0, 10000);
			char host[32];
			snprintf(host, sizeof host, "filler-%d", next);
			x->t_beat = spawn_lease_mtime_ms(store, host);
		}
		for (int i = 0; i < BATCH; i++) {
			struct trial *x = &t[i];
			worker_reap(x->w, 2, 0, 10000);
			worker_reap(x->w, 2, 1, lease_ms + 10000);
			struct worker *fw = &x->w[0], *ww = &x->w[1];
			if (!ww->done || ww->res.rc != 0)
				test_fail(__FILE__, __LINE__,
					  "%s: waiter rc %d: %s", x->key,
					  ww->res.rc, ww->last_error);
			ASSERT_EQ(ww->res.size, x->size);
			if (!spawn_check_file(x->out, x->size, x->seed))
				test_fail(__FILE__, __LINE__,
					  "%s: waiter read wrong bytes",
					  x->key);
			check_store(store, x->key, x->size, x->seed);
			/* Bounded: a lease of silence, then its own load
			 * (chunks x 30 ms), with three more leases of room
			 * for a loaded machine; a waiter stuck on a dead
			 * lease would wait its whole max_wait (10 leases). */
			double ms = ww->t_done - x->t_kill;
			double load_ms = (double)(x->size / 16384) * 30;
			if (ww->t_done > x->t_kill &&
			    ms > 4 * lease_ms + 2 * load_ms)
				test_fail(__FILE__, __LINE__,
					  "%s: waiter done %.0f ms after the "
					  "kill (lease %.0f ms, load %.0f ms)",
					  x->key, ms, lease_ms, load_ms);
			if (fw->done) {
				finished++;
				continue;
			}
			if (!fw->loading) {
				before++;
				continue;
			}
			mid++;
			if (ww->res.breaks == 0)
				continue; /* it published before dying */
			ASSERT_EQ(ww->res.breaks, 1);
			/* Across hosts only silence counts: no break before a
			 * full lease after the last heartbeat (the lease's
			 * mtime once its holder was reaped; if a waiter broke
			 * it before we looked, the waiter's start: its lease
			 * of silence began after that). */
			double since = x->t_beat >= 0 ? x->t_beat : ww->t_start;
			by_mtime += x->t_beat >= 0;
			if (ww->t_done < since + lease_ms)
				test_fail(__FILE__, __LINE__,
					  "%s: lease broken %.0f ms after "
					  "the %s, before it could be stale "
					  "(lease %.0f ms)",
					  x->key, ww->t_done - since,
					  x->t_beat >= 0 ? "last heartbeat"
							 : "waiter's start",
					  lease_ms);
			took[ntook++] = ms;
		}
	}
	/* The distribution, for the record. */
	for (int i = 1; i < ntook; i++)
		for (int j = i; j > 0 && took[j - 1] > took[j]; j--) {
			double s = took[j];
			took[j] = took[j - 1];
			took[j - 1] = s;
		}
	printf("    takeover across hosts (kill -> waiter done), lease "
	       "%.1f s: n=%d",
	       LEASE_S, ntook);
	if (ntook)
		printf(" min %.0f p50 %.0f p90 %.0f max %.0f ms", took[0],
		       took[ntook / 2], took[ntook * 9 / 10], took[ntook - 1]);
	printf("; killed before loading %d, mid-load %d, after finishing %d; "
	       "%d bounds from the last heartbeat\n",
	       before, mid, finished, by_mtime);
	ASSERT(ntook > 0);
}
