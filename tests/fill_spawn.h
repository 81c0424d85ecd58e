/*
 * fill_spawn.h — start fill_worker processes as "other hosts" (own PID+UTS
 * namespace, via unshare) or "other clocks" (libfaketime), follow their
 * progress lines with timestamps on the test's own monotonic clock, kill
 * them, and read their results. Used by test_fill_hosts.c and
 * test_fill_clocks.c.
 */
#ifndef LARDER_TEST_FILL_SPAWN_H
#define LARDER_TEST_FILL_SPAWN_H

#include <stddef.h>
#include <sys/types.h>

/* Where a worker runs. */
struct wenv {
	const char *host;     /* non-NULL: own PID+UTS namespace, this name */
	const char *faketime; /* non-NULL: libfaketime offset, e.g. "+1h" */
	int fake_mono;	      /* with faketime: fake CLOCK_MONOTONIC too */
};

/* The worker's "result" line. */
struct wres {
	int rc, outcome;
	unsigned long long size, fills, waits, breaks, lost, changed, uncached;
};

struct worker {
	pid_t pid;  /* the child we forked (unshare, env or the worker) */
	long wpid;  /* the worker itself, as our /proc sees it */
	int fd;	    /* its stdout */
	int status; /* from waitpid, once reaped */
	int reaped;
	char buf[4096];
	size_t len;
	int ready, waiting, loading, done, eof;
	int wait_end; /* its "wait-end" (enum larder_wait_end), or 0 */
	double t_start, t_ready, t_waiting, t_loading,
	    t_done;		       /* our ms clock */
	long long realtime, monotonic; /* its clocks at "ready", seconds */
	struct wres res;
	char last_error[512];
};

double spawn_now_ms(void);

/* Path of libfaketimeMT, or NULL (why in *why). */
const char *spawn_faketime_lib(const char **why);

/* Start a worker for (store, key, ver) with extra NULL-terminated options
 * (see fill_worker.c); returns once it said "ready". Fails the test on
 * error. */
void worker_start(struct worker *w, const struct wenv *env, const char *store,
		  const char *key, const char *ver, const char *const *opts);

/* Read what the workers said until workers[i] has said `what` ("waiting",
 * "loading", "result"; "eof": ended) or ended, at most timeout_ms; "never" just
 * takes in lines for timeout_ms. 1 if it said it. */
int worker_wait(struct worker *ws, int n, int i, const char *what,
		double timeout_ms);

/* Read what the workers said until each of them has said `a` or `b`, at
 * most timeout_ms. 1 if they all did. */
int worker_wait_each(struct worker *ws, int n, const char *a, const char *b,
		     double timeout_ms);
/* The index of the one worker that said "loading" (after
 * worker_wait_each), or -1 if none or more than one did. */
int worker_one_loader(const struct worker *ws, int n);
/* Create the empty file path (a --go or --hold signal), or fail the
 * test. */
void spawn_touch(const char *path);
/* SIGKILL the worker (not its unshare parent) now; returns the time of the
 * kill. The caller reaps with worker_reap. */
double worker_kill(struct worker *w);

/* Read to the end and wait for the child (once: again does nothing);
 * fails the test after timeout_ms. */
void worker_reap(struct worker *ws, int n, int i, double timeout_ms);

/* When the lease held by `host` (its "host" line) was last written — the
 * file's mtime, on our ms clock — or -1 if no lease of that host is in
 * the store. Read after its holder was reaped, it is the holder's last
 * heartbeat: a waiter may judge the lease stale only a whole lease period
 * after it saw that write, so no break can come before mtime + lease (the
 * kernel's file clock lags the real one by up to a tick, which only makes
 * the bound lower). */
double spawn_lease_mtime_ms(const char *store, const char *host);
/* Write `len` pattern bytes for `seed` to path. */
void spawn_write_source(const char *path, size_t len, unsigned long long seed);
/* Whether path holds exactly `len` pattern bytes for `seed`. */
int spawn_check_file(const char *path, size_t len, unsigned long long seed);

/* A fresh store in the test's directory, created and closed; its path. */
const char *spawn_make_store(void);

/* A herd: workers of (key, version "v1") that all read one source
 * of `size` pattern bytes for `seed` (written by herd_init), note each
 * load in the side file, start on --go and, the one that loads, hold its
 * load until --hold (all named by test_path). Large: keep it static. */
#define HERD_MAX 16
struct herd {
	const char *key; /* "herd" from herd_init */
	int n;
	size_t size;
	unsigned long long seed;
	char src[4096], side[4096], go[4096], hold[4096];
	char out[HERD_MAX][4096];
	struct worker ws[HERD_MAX];
};
void herd_init(struct herd *h, int n, size_t size, unsigned long long seed);
/* Start worker i of h on store, with env and the NULL-terminated options
 * `more` (lease, heartbeat, chunk: fill_worker.c) after the herd's. */
void herd_start(struct herd *h, int i, const struct wenv *env,
		const char *store, const char *const *more);
/* Let the herd go; once every worker loads or waits (at most timeout_ms),
 * let the one loader finish; reap each and check that it ended with rc
 * 0, the loader LARDER_FILLED and every other LARDER_WAITED, each with
 * the source's bytes in its --out, and that the source was loaded once.
 * The loader's index (each worker's result is in h->ws[i].res). */
int herd_run(struct herd *h, double timeout_ms);

#endif
