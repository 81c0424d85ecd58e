/*
 * test_fill.c — larder_get_or_fill across processes: a herd loads once,
 * a killed filler is taken over, a paused one loses its lease exactly
 * once, the source changing during a load, the caller's data surviving a
 * cache that cannot write, stale-while-revalidate.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/file.h>
#include <sys/inotify.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "testing.h"
#include "harness.h"
#include "larder.h"
#include "store_util.h"

/* Appends one line per load to a side file, so loads can be counted
 * across processes; writes `size` pattern bytes for `seed`. */
struct job {
	const char *side; /* NULL: do not count */
	size_t size;
	uint64_t seed;
	int hold_fd; /* -1, or a pipe to block on before loading */
	double slow; /* seconds to sleep mid-load (a long load) */
	int note_fd; /* -1, or a pipe: 'L' when loading starts, 'H' at half */
	int mid_fd;  /* -1, or a pipe to block on after the first half */
	/* 0: two halves; else chunks of this size, each after a random pause
	 * of up to delay_us (a source that streams) */
	size_t chunk;
	unsigned delay_us;
	unsigned rnd; /* rand_r state for the pauses */
};
#define JOB(side, size, seed)                                                  \
	{                                                                      \
		(side), (size), (seed), -1, 0, -1, -1, 0, 0, 1                 \
	}

static void note(int fd, char c)
{
	if (fd >= 0 && write(fd, &c, 1) != 1)
		_exit(90);
}

static void sleep_us(unsigned us)
{
	struct timespec ts = {(time_t)(us / 1000000),
			      (long)(us % 1000000) * 1000};
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

static int loader(larder_fill *fill, void *payload)
{
	struct job *j = payload;
	if (j->side) {
		int fd = open(j->side, O_WRONLY | O_APPEND | O_CREAT, 0644);
		if (fd < 0 || write(fd, "load\n", 5) != 5)
			return LARDER_EIO;
		close(fd);
	}
	if (j->hold_fd >= 0) {
		char c;
		if (read(j->hold_fd, &c, 1) < 0)
			return LARDER_EIO;
	}
	note(j->note_fd, 'L');
	uint8_t *buf = xmalloc(j->size);
	test_fill_pattern(buf, j->size, j->seed);
	int rc = 0;
	if (j->chunk) {
		for (size_t off = 0; rc == 0 && off < j->size;) {
			size_t n =
			    j->size - off < j->chunk ? j->size - off : j->chunk;
			if (j->delay_us)
				sleep_us((unsigned)rand_r(&j->rnd) %
					 (j->delay_us + 1));
			rc = larder_fill_write(fill, buf + off, n);
			off += n;
		}
		free(buf);
		return rc;
	}
	size_t half = j->size / 2;
	rc = larder_fill_write(fill, buf, half);
	note(j->note_fd, 'H');
	if (rc == 0 && j->mid_fd >= 0) {
		char c;
		if (read(j->mid_fd, &c, 1) < 0)
			rc = LARDER_EIO;
	}
	if (rc == 0 && j->slow > 0) {
		struct timespec ts = {
		    (time_t)j->slow, (long)((j->slow - (time_t)j->slow) * 1e9)};
		nanosleep(&ts, NULL);
	}
	if (rc == 0)
		rc = larder_fill_write(fill, buf + half, j->size - half);
	free(buf);
	return rc;
}

/* A barrier: children block reading a pipe the parent closes. */
struct gate {
	int fd[2];
};
static void gate_init(struct gate *g)
{
	ASSERT_EQ(pipe(g->fd), 0);
}
static void gate_wait(struct gate *g)
{
	char c;
	close(g->fd[1]);
	ASSERT_EQ(read(g->fd[0], &c, 1), 0);
}
static void gate_open(struct gate *g)
{
	close(g->fd[0]);
	close(g->fd[1]);
}

/* ---------------------------------------------------------------------- */
/* Through Redis                                                           */

/* Set by the on_redis_ tests (before they fork): every handle they open
 * fills through the Redis backend LARDER_TEST_BACKEND names (a redis://
 * URI, as tests/redis/with_redis.sh sets it), hung on the handle. */
static int use_redis;

/* That URI, under a key prefix of this test's own (its private
 * directory's name), so that no test sees another's keys. */
static const char *redis_where(void)
{
	static char uri[1024];
	const char *w = getenv("LARDER_TEST_BACKEND");
	if (!w || !strstr(w, "://"))
		return NULL;
	char dir[512];
	snprintf(dir, sizeof dir, "%s", test_path("%s", ""));
	dir[strlen(dir) - 1] = '\0'; /* its trailing '/' */
	const char *base = strrchr(dir, '/');
	snprintf(uri, sizeof uri, "%s%sprefix=%s:", w,
		 strchr(w, '?') ? "&" : "?", base ? base + 1 : dir);
	return uri;
}

static void need_redis(void)
{
	if (!redis_where())
		test_skip("LARDER_TEST_BACKEND names no Redis (run by "
			  "test_fill_redis, tests/redis/with_redis.sh)");
	use_redis = 1;
}

/* The test's store; in an on_redis_ test, with the Redis backend hung on
 * the handle (larder_close closes it). */
static larder *open_fill_store(void)
{
	larder *d = open_store();
	if (use_redis) {
		struct ldr_backend *be;
		ASSERT_RC(d, ldr_test_be_open(&be, d, redis_where()), 0);
		ldr_test_be_hang(d, be);
	}
	return d;
}

/* The herd's loader holds its load until every other member is seen
 * waiting (told through on_wait), so the test knows the herd met the lease:
 * each of the others must wait, none may hit or load. */
#define HERD 16
struct herd {
	int waiting; /* members told LARDER_WAIT_START (shared memory) */
	int n;	     /* members */
	struct job j;
};

static void herd_told(const larder_wait_info *info, void *payload)
{
	struct herd *h = payload;
	if (info->event == LARDER_WAIT_START)
		__atomic_add_fetch(&h->waiting, 1, __ATOMIC_SEQ_CST);
}

static int herd_loader(larder_fill *fill, void *payload)
{
	struct herd *h = payload;
	/* A condition polled, not a time guessed: the harness's timeout
	 * ends the test if the herd never gathers. */
	while (__atomic_load_n(&h->waiting, __ATOMIC_SEQ_CST) < h->n - 1)
		sleep_us(1000);
	return loader(fill, &h->j);
}

/* n members (at most HERD) fill one key at once: one loads, every other
 * waits, and each checks every byte. */
static void herd_loads_once(int n)
{
	larder *db = open_store();
	larder_close(db);
	const char *side = test_path("loads");
	struct herd *h = mmap(NULL, sizeof *h, PROT_READ | PROT_WRITE,
			      MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	ASSERT(h != MAP_FAILED);
	h->waiting = 0;
	h->n = n;
	h->j = (struct job)JOB(side, 300000, 42);
	struct gate g;
	gate_init(&g);
	pid_t kids[HERD];
	for (int i = 0; i < n; i++) {
		kids[i] = fork();
		ASSERT(kids[i] >= 0);
		if (kids[i] == 0) {
			gate_wait(&g);
			larder *d = open_fill_store();
			larder_fill_opts fo = LARDER_FILL_OPTS_INIT;
			/* Long enough that a loaded machine's late
			 * heartbeat never makes the holder look dead. */
			fo.lease_seconds = 30;
			fo.on_wait = herd_told;
			fo.on_wait_payload = h;
			larder_entry *e;
			int how;
			int rc = larder_get_or_fill(&e, &how, d, "default",
						    "herd", 4, "v1", 2, NULL,
						    herd_loader, h, &fo);
			if (rc != 0)
				test_fail(__FILE__, __LINE__, "rc %d: %s", rc,
					  larder_errmsg(d));
			ASSERT_EQ(larder_entry_size(e), 300000);
			ASSERT(test_check_pattern(larder_entry_data(e), 300000,
						  42));
			larder_entry_release(e);
			larder_close(d);
			_exit(how == LARDER_FILLED   ? 10
			      : how == LARDER_WAITED ? 11
						     : 12);
		}
	}
	gate_open(&g);
	int filled = 0, waited = 0;
	for (int i = 0; i < n; i++) {
		int st;
		ASSERT_EQ(waitpid(kids[i], &st, 0), kids[i]);
		ASSERT(WIFEXITED(st));
		filled += WEXITSTATUS(st) == 10;
		waited += WEXITSTATUS(st) == 11;
	}
	ASSERT_EQ(test_count_lines(side), 1);
	ASSERT_EQ(filled, 1);
	ASSERT_EQ(waited, n - 1);
	ASSERT_EQ(h->waiting, n - 1);
	munmap(h, sizeof *h);
}

TEST(herd_of_16_loads_once)
{
	herd_loads_once(HERD);
}

/* ---------------------------------------------------------------------- */
/* Children that report                                                    */

/* What a child's get_or_fill did, sent to the test through a pipe. */
struct report {
	int rc, outcome, ok;
	uint64_t size, fills, waits, breaks, lost, changed, uncached;
	int64_t t_done_ns; /* CLOCK_MONOTONIC: one clock for the whole host */
	char err[256];
};

static int64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static double mono_ms(void)
{
	return (double)mono_ns() / 1e6;
}

static const double LEASE = 1.0, HEARTBEAT = 0.1;

static larder_fill_opts short_lease(void)
{
	larder_fill_opts fo = LARDER_FILL_OPTS_INIT;
	fo.lease_seconds = LEASE;
	fo.heartbeat_seconds = HEARTBEAT;
	return fo;
}

/* In a child: one get_or_fill of (key, ver) with job j; checks every byte
 * against the job's pattern and writes a report to fd (fd -1: exits 3 if
 * it failed or read wrong bytes). */
static void fill_and_report(int fd, const char *key, const char *ver,
			    struct job *j, const larder_fill_opts *fo)
{
	struct report r;
	memset(&r, 0, sizeof r);
	larder *d = open_fill_store();
	larder_entry *e = NULL;
	r.rc =
	    larder_get_or_fill(&e, &r.outcome, d, "default", key, strlen(key),
			       ver, strlen(ver), NULL, loader, j, fo);
	r.t_done_ns = mono_ns();
	if (r.rc == 0) {
		r.size = larder_entry_size(e);
		r.ok =
		    r.size == j->size &&
		    test_check_pattern(larder_entry_data(e), r.size, j->seed);
	} else {
		snprintf(r.err, sizeof r.err, "%s", larder_errmsg(d));
	}
	r.fills = larder_counter(d, LARDER_CTR_FILLS);
	r.waits = larder_counter(d, LARDER_CTR_WAITS);
	r.breaks = larder_counter(d, LARDER_CTR_LEASE_BREAKS);
	r.lost = larder_counter(d, LARDER_CTR_LEASE_LOST);
	r.changed = larder_counter(d, LARDER_CTR_SOURCE_CHANGED);
	r.uncached = larder_counter(d, LARDER_CTR_UNCACHED);
	larder_entry_release(e);
	larder_close(d);
	if (fd < 0) {
		if (r.rc != 0 || !r.ok)
			_exit(3);
	} else if (write(fd, &r, sizeof r) != (ssize_t)sizeof r) {
		_exit(91);
	}
}

/* Wait (bounded) for a report on fd. 1 if one came. */
static int read_report(int fd, struct report *r, double timeout_ms)
{
	struct pollfd p = {fd, POLLIN, 0};
	double until = mono_ms() + timeout_ms;
	for (;;) {
		double left = until - mono_ms();
		if (left <= 0)
			return 0;
		int n = poll(&p, 1, (int)left + 1);
		if (n > 0)
			break;
		if (n < 0 && errno != EINTR)
			return 0;
	}
	return read(fd, r, sizeof *r) == (ssize_t)sizeof *r;
}

static void expect_exit0(pid_t pid)
{
	int st;
	ASSERT_EQ(waitpid(pid, &st, 0), pid);
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		test_fail(__FILE__, __LINE__, "child %ld: status 0x%x",
			  (long)pid, st);
}

/* A child running fill_and_report; its report comes on *rfd. */
static pid_t spawn_filler(int *rfd, const char *key, const char *ver,
			  struct job *j, const larder_fill_opts *fo)
{
	int p[2];
	ASSERT_EQ(pipe(p), 0);
	fflush(NULL);
	pid_t pid = fork();
	ASSERT(pid >= 0);
	if (pid == 0) {
		close(p[0]);
		fill_and_report(p[1], key, ver, j, fo);
		_exit(0);
	}
	close(p[1]);
	*rfd = p[0];
	return pid;
}

static void expect_entry(larder *db, const char *key, const char *ver,
			 size_t size, uint64_t seed)
{
	larder_entry *e;
	ASSERT_RC(db,
		  larder_get(&e, db, "default", key, strlen(key), ver,
			     ver ? strlen(ver) : 0),
		  0);
	ASSERT_EQ(larder_entry_size(e), size);
	ASSERT(test_check_pattern(larder_entry_data(e), size, seed));
	if (ver) {
		size_t vlen;
		const void *v = larder_entry_version(&vlen, e);
		ASSERT_EQ(vlen, strlen(ver));
		ASSERT_MEM_EQ(v, ver, vlen);
	}
	larder_entry_release(e);
}

/* Leftovers in the store: temp, lease and break files. */
static int n_tmp, n_lease, n_break;
static int count_leftover(const char *path, const struct stat *st, int flag,
			  struct FTW *ftw)
{
	(void)st;
	(void)flag;
	const char *base = path + ftw->base;
	n_tmp += strncmp(base, ".tmp.", 5) == 0;
	n_break += strncmp(base, ".break.", 7) == 0;
	size_t n = strlen(base);
	if (n > 6 && strcmp(base + n - 6, ".lease") == 0) {
		/* A lease may stay behind only if its holder is dead (killed
		 * after its publish: nobody had to break it). */
		char text[1024] = "";
		FILE *f = fopen(path, "r");
		size_t got = f ? fread(text, 1, sizeof text - 1, f) : 0;
		if (f)
			fclose(f);
		text[got] = '\0';
		const char *p = strstr(text, "\npid ");
		long pid = p ? strtol(p + 5, NULL, 10) : 0;
		if (pid <= 0 || kill((pid_t)pid, 0) == 0 || errno != ESRCH)
			n_lease++;
	}
	return 0;
}
/* No break file is left, no lease but those of dead holders, and no temp
 * file unless a filler was killed (sweeping those is the cleaner's job). */
static void expect_no_leftovers(int killed)
{
	n_tmp = n_lease = n_break = 0;
	ASSERT_EQ(nftw(test_path("store"), count_leftover, 16, FTW_PHYS), 0);
	if (!killed)
		ASSERT_EQ(n_tmp, 0);
	ASSERT_EQ(n_lease, 0);
	ASSERT_EQ(n_break, 0);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static void print_dist(const char *what, double *v, int n)
{
	qsort(v, (size_t)n, sizeof *v, cmp_double);
	printf("    %s: n=%d", what, n);
	if (n)
		printf(" min %.0f p50 %.0f p90 %.0f p99 %.0f max %.0f ms", v[0],
		       v[n / 2], v[n * 9 / 10], v[n * 99 / 100], v[n - 1]);
	printf("\n");
	fflush(stdout);
}

/* ---------------------------------------------------------------------- */
/* Crash                                                                   */

#define CRASH_TRIALS 200
#define CRASH_BATCH 10

struct crash {
	char key[32];
	size_t size;
	uint64_t seed;
	pid_t filler, waiter;
	int note_fd, rep_fd;
	double kill_ms; /* after the filler started */
	double t_fork, t_start, t_kill;
	char notes[8];
	struct report wr;
};

/* Reads every key of the batch while it runs, checking each hit. */
static pid_t spawn_reader(const struct crash *c, int n, int *stop_fd)
{
	int p[2];
	ASSERT_EQ(pipe(p), 0);
	fflush(NULL);
	pid_t pid = fork();
	ASSERT(pid >= 0);
	if (pid == 0) {
		close(p[1]);
		larder *d = open_store();
		struct pollfd pf = {p[0], POLLIN, 0};
		while (poll(&pf, 1, 0) == 0) {
			for (int i = 0; i < n; i++) {
				larder_entry *e;
				int rc = larder_get(&e, d, "default", c[i].key,
						    strlen(c[i].key), "v1", 2);
				if (rc == LARDER_ENOTFOUND)
					continue;
				if (rc != 0)
					test_fail(__FILE__, __LINE__,
						  "reader: get %s: %s",
						  c[i].key, larder_errmsg(d));
				if (larder_entry_size(e) != c[i].size ||
				    !test_check_pattern(larder_entry_data(e),
							c[i].size, c[i].seed))
					test_fail(__FILE__, __LINE__,
						  "reader: torn or wrong %s",
						  c[i].key);
				larder_entry_release(e);
			}
			sleep_us(500);
		}
		larder_close(d);
		_exit(0);
	}
	close(p[0]);
	*stop_fd = p[1];
	return pid;
}

TEST(sigkill_filler_at_random_points_200_trials_never_a_wrong_read)
{
	larder *db = open_store();
	unsigned seed = (unsigned)getpid() ^ (unsigned)mono_ns();
	printf("    random seed %u\n", seed);
	srand(seed);
	/* A lease far longer than the test: a dead holder's lease can then
	 * be broken in time only by the same-host fast path (its pid gone),
	 * never by silence, which would take a whole lease. */
	larder_fill_opts fo = short_lease();
	fo.lease_seconds = 30;
	const double lease_ms = fo.lease_seconds * 1000;
	double took[CRASH_TRIALS], fast[CRASH_TRIALS];
	int ntook = 0, nfast = 0, before = 0, during = 0, after = 0;
	for (int b = 0; b < CRASH_TRIALS / CRASH_BATCH; b++) {
		struct crash c[CRASH_BATCH];
		memset(c, 0, sizeof c);
		for (int i = 0; i < CRASH_BATCH; i++) {
			int n = b * CRASH_BATCH + i;
			snprintf(c[i].key, sizeof c[i].key, "crash-%d", n);
			/* 0..256 KiB: both sides of the mmap threshold */
			c[i].size = (size_t)rand() % (256 * 1024 + 1);
			c[i].seed = 5000 + (uint64_t)n;
			/* A load is up to 17 chunks with 0..6 ms pauses
			 * (~50 ms on average) after a few ms of start-up:
			 * kill anywhere from before the lease to after the
			 * publish. */
			int chunks = (int)(c[i].size / 16384) + 1;
			c[i].kill_ms = rand() % 5 == 0
					   ? rand() % 4
					   : 4 + rand() % (chunks * 4 + 10);
		}
		int stop_fd;
		pid_t reader = spawn_reader(c, CRASH_BATCH, &stop_fd);
		for (int i = 0; i < CRASH_BATCH; i++) {
			struct crash *x = &c[i];
			int np[2];
			ASSERT_EQ(pipe(np), 0);
			fflush(NULL);
			x->t_fork = mono_ms();
			x->filler = fork();
			ASSERT(x->filler >= 0);
			if (x->filler == 0) {
				close(np[0]);
				note(np[1], 'S');
				struct job j = JOB(NULL, x->size, x->seed);
				j.note_fd = np[1];
				j.chunk = 16384;
				j.delay_us = 6000;
				j.rnd = (unsigned)rand() ^ (unsigned)getpid();
				fill_and_report(-1, x->key, "v1", &j, &fo);
				note(np[1], 'P');
				_exit(0);
			}
			close(np[1]);
			x->note_fd = np[0];
			char ch;
			ASSERT_EQ(read(x->note_fd, &ch, 1), 1);
			x->t_start = mono_ms();
			x->notes[0] = ch;
			fcntl(x->note_fd, F_SETFL, O_NONBLOCK);
			/* The waiter: starts right behind it. */
			struct job j = JOB(NULL, x->size, x->seed);
			x->waiter =
			    spawn_filler(&x->rep_fd, x->key, "v1", &j, &fo);
		}
		/* Kill each filler at its moment, in order, and reap it at
		 * once (a zombie still looks alive to kill(pid, 0)). */
		for (int k = 0; k < CRASH_BATCH; k++) {
			int next = -1;
			for (int i = 0; i < CRASH_BATCH; i++)
				if (c[i].t_kill == 0 &&
				    (next < 0 ||
				     c[i].t_start + c[i].kill_ms <
					 c[next].t_start + c[next].kill_ms))
					next = i;
			struct crash *x = &c[next];
			double left = x->t_start + x->kill_ms - mono_ms();
			if (left > 0)
				sleep_us((unsigned)(left * 1000));
			x->t_kill = mono_ms();
			kill(x->filler, SIGKILL);
			int st;
			ASSERT_EQ(waitpid(x->filler, &st, 0), x->filler);
			/* A filler that finished must have read right. */
			ASSERT(WIFSIGNALED(st) ||
			       (WIFEXITED(st) && WEXITSTATUS(st) == 0));
		}
		for (int i = 0; i < CRASH_BATCH; i++) {
			struct crash *x = &c[i];
			ssize_t n =
			    read(x->note_fd, x->notes + 1, sizeof x->notes - 2);
			x->notes[n > 0 ? n + 1 : 1] = '\0';
			close(x->note_fd);
			if (!read_report(x->rep_fd, &x->wr, lease_ms + 5000))
				test_fail(__FILE__, __LINE__,
					  "%s: the waiter never finished "
					  "(filler notes '%s')",
					  x->key, x->notes);
			close(x->rep_fd);
			expect_exit0(x->waiter);
			if (x->wr.rc != 0 || !x->wr.ok)
				test_fail(__FILE__, __LINE__,
					  "%s: waiter rc %d ok %d: %s", x->key,
					  x->wr.rc, x->wr.ok, x->wr.err);
			ASSERT_EQ(x->wr.lost, 0);
			/* Any lease the filler took was taken after its fork:
			 * a waiter done less than a lease after that never
			 * waited out a dead holder's silence. */
			double ms = (double)x->wr.t_done_ns / 1e6 - x->t_kill;
			double since_fork =
			    (double)x->wr.t_done_ns / 1e6 - x->t_fork;
			if (since_fork >= lease_ms)
				test_fail(__FILE__, __LINE__,
					  "%s: waiter done %.0f ms after the "
					  "filler's fork, %.0f after its kill, "
					  "a lease (%.0f ms) or more: the "
					  "same-host fast path did not work",
					  x->key, since_fork, ms, lease_ms);
			expect_entry(db, x->key, "v1", x->size, x->seed);
			int loading = strchr(x->notes, 'L') != NULL;
			int finished = strchr(x->notes, 'P') != NULL;
			if (!loading)
				before++;
			else if (finished)
				after++;
			else {
				during++;
				if (ms < 0)
					ms = 0; /* it had published */
				took[ntook++] = ms;
				if (x->wr.breaks)
					fast[nfast++] = ms;
			}
		}
		close(stop_fd);
		expect_exit0(reader);
	}
	printf("    killed before loading %d, while loading or publishing "
	       "%d, after finishing %d\n",
	       before, during, after);
	print_dist("same host, filler killed holding the lease: kill -> "
		   "waiter done",
		   took, ntook);
	print_dist("  of which the waiter broke the dead lease", fast, nfast);
	/* Same host: a dead holder is seen at once (pid gone), not after
	 * a lease period (each waiter checked above); and some waiters did
	 * break a dead holder's lease. */
	ASSERT(nfast > 0);
	expect_no_leftovers(1);
	larder_close(db);
}

/* ---------------------------------------------------------------------- */
/* Pause                                                                   */

/* A filler child that notes its progress on *note_fd and, after the first
 * half of its payload, blocks until the test closes *gate_fd. */
static pid_t spawn_gated(int *rep_fd, int *note_fd, int *gate_fd,
			 const char *key, const char *ver, size_t size,
			 uint64_t seed, const larder_fill_opts *fo)
{
	int rp[2], np[2], gp[2];
	ASSERT_EQ(pipe(rp), 0);
	ASSERT_EQ(pipe(np), 0);
	ASSERT_EQ(pipe(gp), 0);
	fflush(NULL);
	pid_t pid = fork();
	ASSERT(pid >= 0);
	if (pid == 0) {
		close(rp[0]);
		close(np[0]);
		close(gp[1]);
		struct job j = JOB(NULL, size, seed);
		j.note_fd = np[1];
		j.mid_fd = gp[0];
		fill_and_report(rp[1], key, ver, &j, fo);
		_exit(0);
	}
	close(rp[1]);
	close(np[1]);
	close(gp[0]);
	*rep_fd = rp[0];
	*note_fd = np[0];
	*gate_fd = gp[1];
	return pid;
}

/* Let a gated child go on. A byte, not just a close: other children may
 * have inherited the write end. */
static void open_gate(int fd)
{
	ASSERT_EQ(write(fd, "g", 1), 1);
	close(fd);
}

/* Read notes until `want` (bounded: the child may not hang us). */
static void await_note(int fd, char want)
{
	struct pollfd p = {fd, POLLIN, 0};
	double until = mono_ms() + 10000;
	char c = 0;
	while (c != want) {
		int left = (int)(until - mono_ms());
		if (left <= 0 || poll(&p, 1, left) <= 0 || read(fd, &c, 1) != 1)
			test_fail(__FILE__, __LINE__, "no note '%c'", want);
	}
}

static double stop_child(pid_t pid)
{
	ASSERT_EQ(kill(pid, SIGSTOP), 0);
	int st;
	ASSERT_EQ(waitpid(pid, &st, WUNTRACED), pid);
	ASSERT(WIFSTOPPED(st));
	return mono_ms();
}

TEST(sigstopped_holder_past_its_lease_is_broken_exactly_once)
{
	larder *db = open_store();
	larder_fill_opts fo = short_lease();
	const size_t size = 200000;
	const double lease_ms = LEASE * 1000;
	int hrep, hnote, hgate;
	pid_t h =
	    spawn_gated(&hrep, &hnote, &hgate, "paused", "v1", size, 7, &fo);
	await_note(hnote, 'H'); /* it holds the lease, half written */
	/* Stopped, its heartbeat thread too; alive, so the same-host fast
	 * path must not break it: only a lease period of silence may. */
	double t_stop = stop_child(h);
	enum { N = 4 };
	pid_t w[N];
	int wrep[N];
	for (int i = 0; i < N; i++) {
		struct job j = JOB(NULL, size, 7);
		w[i] = spawn_filler(&wrep[i], "paused", "v1", &j, &fo);
	}
	int breaks = 0, filled = 0, waited = 0, lost = 0;
	for (int i = 0; i < N; i++) {
		struct report r;
		if (!read_report(wrep[i], &r, lease_ms + 5000))
			test_fail(__FILE__, __LINE__, "waiter %d hangs", i);
		close(wrep[i]);
		expect_exit0(w[i]);
		if (r.rc != 0 || !r.ok)
			test_fail(__FILE__, __LINE__,
				  "waiter %d: rc %d ok %d: %s", i, r.rc, r.ok,
				  r.err);
		breaks += (int)r.breaks;
		filled += r.outcome == LARDER_FILLED;
		waited += r.outcome == LARDER_WAITED;
		lost += (int)r.lost;
		double ms = (double)r.t_done_ns / 1e6 - t_stop;
		if (ms < lease_ms)
			test_fail(__FILE__, __LINE__,
				  "waiter %d done %.0f ms after the stop: the "
				  "lease of a live holder was broken early",
				  i, ms);
		printf("    waiter %d: outcome %d, breaks %d, done %.0f ms "
		       "after SIGSTOP\n",
		       i, r.outcome, (int)r.breaks, ms);
	}
	/* Exactly one break and one fill: breakers take turns
	 * (docs/leases.md), so a second breaker that judged the same lease
	 * stale finds the first one's new lease and leaves it be. */
	ASSERT_EQ(breaks, 1);
	ASSERT_EQ(lost, 0);
	ASSERT_EQ(filled, 1);
	ASSERT_EQ(waited, N - filled);
	expect_entry(db, "paused", "v1", size, 7);

	/* The old holder wakes up, finishes and publishes: harmless. */
	ASSERT_EQ(kill(h, SIGCONT), 0);
	open_gate(hgate);
	struct report r;
	if (!read_report(hrep, &r, 10000))
		test_fail(__FILE__, __LINE__, "resumed holder hangs");
	expect_exit0(h);
	if (r.rc != 0 || !r.ok)
		test_fail(__FILE__, __LINE__, "resumed holder: rc %d ok %d: %s",
			  r.rc, r.ok, r.err);
	ASSERT_EQ(r.outcome, LARDER_FILLED);
	ASSERT_EQ(r.lost, 1);
	ASSERT_EQ(r.breaks, 0);
	expect_entry(db, "paused", "v1", size, 7);
	expect_entry(db, "paused", NULL, size, 7); /* the head */
	expect_no_leftovers(0);
	close(hrep);
	close(hnote);
	larder_close(db);
}

/* The lease file in the store (there must be exactly one). */
static char lease_path[4096];
static int find_lease(const char *path, const struct stat *st, int flag,
		      struct FTW *ftw)
{
	(void)st;
	(void)flag;
	size_t n = strlen(path + ftw->base);
	if (n > 6 && strcmp(path + ftw->base + n - 6, ".lease") == 0)
		snprintf(lease_path, sizeof lease_path, "%s", path);
	return 0;
}

TEST(paused_holder_resumed_mid_takeover_leaves_the_new_lease_alone)
{
	larder *db = open_store();
	larder_fill_opts fo = short_lease();
	const size_t size = 100000;
	int hrep, hnote, hgate, wrep, wnote, wgate;
	pid_t h =
	    spawn_gated(&hrep, &hnote, &hgate, "resumed", "v1", size, 9, &fo);
	await_note(hnote, 'H');
	stop_child(h);
	/* The successor breaks the stopped lease, takes its own and stops
	 * half-way through its load. */
	pid_t w =
	    spawn_gated(&wrep, &wnote, &wgate, "resumed", "v1", size, 9, &fo);
	await_note(wnote, 'H');
	lease_path[0] = '\0';
	ASSERT_EQ(nftw(test_path("store"), find_lease, 16, FTW_PHYS), 0);
	ASSERT(lease_path[0] != '\0');
	struct stat before;
	ASSERT_EQ(stat(lease_path, &before), 0);
	/* Watch the successor's lease while the old holder finishes. */
	char dir[4096];
	snprintf(dir, sizeof dir, "%s", lease_path);
	char *slash = strrchr(dir, '/');
	*slash = '\0';
	const char *name = slash + 1;
	int ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	ASSERT(ifd >= 0);
	ASSERT(inotify_add_watch(ifd, dir, IN_MOVED_FROM | IN_DELETE) >= 0);

	ASSERT_EQ(kill(h, SIGCONT), 0);
	open_gate(hgate);
	struct report r;
	if (!read_report(hrep, &r, 10000))
		test_fail(__FILE__, __LINE__, "resumed holder hangs");
	expect_exit0(h);
	ASSERT_EQ(r.rc, 0);
	ASSERT(r.ok);
	ASSERT_EQ(r.outcome, LARDER_FILLED);
	ASSERT_EQ(r.lost, 1);
	expect_entry(db, "resumed", "v1", size, 9);

	/* Its release must not have touched a lease that is not its own,
	 * not even for a moment: while the successor's lease is renamed
	 * away, a third caller takes the key and loads it again (and the
	 * successor's lease is lost for good if it cannot be put back). */
	char ev[4096] __attribute__((aligned(8)));
	ssize_t n = read(ifd, ev, sizeof ev);
	for (char *p = ev; n > 0 && p < ev + n;) {
		struct inotify_event *e = (struct inotify_event *)(void *)p;
		if (e->len && strcmp(e->name, name) == 0)
			test_fail(__FILE__, __LINE__,
				  "the resumed holder's release %s the new "
				  "holder's lease %s",
				  e->mask & IN_DELETE ? "deleted"
						      : "renamed away",
				  lease_path);
		p += sizeof *e + e->len;
	}
	close(ifd);
	struct stat after;
	ASSERT_EQ(stat(lease_path, &after), 0);
	ASSERT_EQ(after.st_ino, before.st_ino);

	open_gate(wgate);
	if (!read_report(wrep, &r, 10000))
		test_fail(__FILE__, __LINE__, "successor hangs");
	expect_exit0(w);
	ASSERT_EQ(r.rc, 0);
	ASSERT(r.ok);
	ASSERT_EQ(r.outcome, LARDER_FILLED);
	ASSERT_EQ(r.breaks, 1);
	ASSERT_EQ(r.lost, 0);
	expect_entry(db, "resumed", "v1", size, 9);
	expect_no_leftovers(0);
	close(hrep);
	close(hnote);
	close(wrep);
	close(wnote);
	larder_close(db);
}

/* ---------------------------------------------------------------------- */
/* Take-over by exactly one                                                */

/* A holder killed mid-load on this host is seen dead by every waiter at
 * once; of all those that break its lease and race for the key, exactly
 * one may load (docs/leases.md, "Breaking"). Each round: a filler blocks
 * half-way through its load holding a 30 s lease (no heartbeat is ever
 * missed), TAKEOVER_WAITERS waiters come, the filler is SIGKILLed and
 * reaped, and every load is a line in a side file. */
#define TAKEOVER_WAITERS 8
#define TAKEOVER_ROUNDS 200

static void takeover_told(const larder_wait_info *info, void *payload)
{
	int *waiting = payload;
	if (info->event == LARDER_WAIT_START)
		__atomic_add_fetch(waiting, 1, __ATOMIC_SEQ_CST);
}

/* inside: the filler is killed once every waiter is inside its wait, and
 * they are all woken at the same instant (an event in the lease's
 * directory, which they watch), so that they judge the dead lease and
 * break it together; else the waiters arrive around the kill. */
static void takeover_rounds(int inside)
{
	larder *db = open_store();
	int *waiting = mmap(NULL, sizeof *waiting, PROT_READ | PROT_WRITE,
			    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	ASSERT(waiting != MAP_FAILED);
	const size_t size = 20000;
	int extra = 0; /* loads beyond one per round, over all rounds */
	for (int round = 0; round < TAKEOVER_ROUNDS; round++) {
		char key[32], side[4096];
		snprintf(key, sizeof key, "takeover%d", round);
		snprintf(side, sizeof side, "%s", test_path("loads%d", round));
		larder_fill_opts fo = LARDER_FILL_OPTS_INIT;
		fo.lease_seconds = 30;
		fo.on_wait = takeover_told;
		fo.on_wait_payload = waiting;
		*waiting = 0;

		int np[2], gp[2], frep;
		ASSERT_EQ(pipe(np), 0);
		ASSERT_EQ(pipe(gp), 0);
		struct job fj = JOB(side, size, 5);
		fj.note_fd = np[1];
		fj.mid_fd = gp[0]; /* never written: it blocks mid-load */
		pid_t filler = spawn_filler(&frep, key, "v1", &fj, &fo);
		close(np[1]);
		await_note(np[0], 'H');

		pid_t w[TAKEOVER_WAITERS];
		int wrep[TAKEOVER_WAITERS];
		for (int i = 0; i < TAKEOVER_WAITERS; i++) {
			struct job j = JOB(side, size, 5);
			w[i] = spawn_filler(&wrep[i], key, "v1", &j, &fo);
		}
		if (inside) {
			/* A condition polled, not a time guessed: the
			 * harness's timeout ends the test if they never
			 * gather. */
			while (__atomic_load_n(waiting, __ATOMIC_SEQ_CST) <
			       TAKEOVER_WAITERS)
				sleep_us(1000);
		}
		/* The filler's lease, found while it is sure to be there. */
		lease_path[0] = '\0';
		ASSERT_EQ(nftw(test_path("store"), find_lease, 16, FTW_PHYS),
			  0);
		ASSERT(lease_path[0] != '\0');
		char poke[4200];
		snprintf(poke, sizeof poke, "%s.poke", lease_path);
		double t_kill = mono_ms();
		ASSERT_EQ(kill(filler, SIGKILL), 0);
		int st;
		/* Reaped: a zombie still looks alive to kill(pid, 0). */
		ASSERT_EQ(waitpid(filler, &st, 0), filler);
		ASSERT(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
		if (inside) {
			int fd = open(poke, O_WRONLY | O_CREAT | O_EXCL, 0600);
			ASSERT(fd >= 0);
			close(fd);
			ASSERT_EQ(unlink(poke), 0); /* IN_DELETE: all wake */
		}
		int filled = 0, waited = 0, hit = 0, breaks = 0, lost = 0;
		for (int i = 0; i < TAKEOVER_WAITERS; i++) {
			struct report r;
			/* Well within the lease: the holder was seen dead by
			 * its pid, not by its silence. */
			if (!read_report(wrep[i], &r, 30000 - 1000))
				test_fail(__FILE__, __LINE__,
					  "round %d: waiter %d hangs", round,
					  i);
			close(wrep[i]);
			expect_exit0(w[i]);
			if (r.rc != 0 || !r.ok)
				test_fail(__FILE__, __LINE__,
					  "round %d: waiter %d: rc %d ok %d: "
					  "%s",
					  round, i, r.rc, r.ok, r.err);
			if ((double)r.t_done_ns / 1e6 - t_kill > 25000)
				test_fail(__FILE__, __LINE__,
					  "round %d: waiter %d waited for the "
					  "lease to run out",
					  round, i);
			filled += r.outcome == LARDER_FILLED;
			waited += r.outcome == LARDER_WAITED;
			hit += r.outcome == LARDER_HIT;
			breaks += (int)r.breaks;
			lost += (int)r.lost;
		}
		close(frep);
		close(np[0]);
		close(gp[0]);
		close(gp[1]);
		int loads = test_count_lines(side);
		if (loads != 2 || filled != 1)
			printf("    round %d: %d loads after the killed one, "
			       "%d filled, %d waited, %d breaks, %d lost\n",
			       round, loads - 1, filled, waited, breaks, lost);
		extra += loads - 2;
		ASSERT(loads >= 2);
		ASSERT(filled >= 1);
		/* Inside the wait, none may hit; arriving later, one may find
		 * the entry already there. */
		ASSERT_EQ(filled + waited + hit, TAKEOVER_WAITERS);
		ASSERT(!inside || hit == 0);
		ASSERT_EQ(loads - 1, filled);
		expect_entry(db, key, "v1", size, 5);
	}
	printf("    %d rounds of %d waiters (%s): %d extra loads\n",
	       TAKEOVER_ROUNDS, TAKEOVER_WAITERS,
	       inside ? "all inside the wait" : "arriving around the kill",
	       extra);
	ASSERT_EQ(extra, 0);
	expect_no_leftovers(1);
	munmap(waiting, sizeof *waiting);
	larder_close(db);
}

TEST(killed_holder_is_taken_over_by_exactly_one_of_8_waiters_woken_at_once)
{
	takeover_rounds(1);
}

TEST(killed_holder_is_taken_over_once_by_waiters_arriving_around_the_kill)
{
	takeover_rounds(0);
}

/* The breakers' turn (lease.h): while one breaker holds it on a dead
 * holder's lease, another that judged the same lease stale must not move
 * the name (it would move the lease the first one takes next); once the
 * turn is free, the lease breaks, and a successor's lease is left alone
 * by a breaker that still remembers the dead one. */
TEST(a_second_breaker_of_a_dead_lease_waits_for_the_first_ones_turn)
{
	const char *dir = test_path("leases");
	ASSERT_EQ(mkdir(dir, 0755), 0);
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	ASSERT(dfd >= 0);
	fflush(NULL);
	pid_t pid = fork();
	ASSERT(pid >= 0);
	if (pid == 0) {
		struct ldr_self me;
		ldr_self_get(&me, "here");
		ldr_lease *l;
		struct ldr_lease_rec h;
		/* Taken, and never given back: the holder dies holding it. */
		_exit(ldr_lease_acquire(dfd, "k.lease", 0644, &me, 30000, 0, &l,
					&h) == 0
			  ? 0
			  : 1);
	}
	expect_exit0(pid);
	struct ldr_self me;
	ldr_self_get(&me, "here");
	struct ldr_lease_rec dead;
	ASSERT_EQ(ldr_lease_read(dfd, "k.lease", &dead), 0);
	ASSERT_EQ(ldr_lease_dead_here(&dead, &me), 1);

	/* Another breaker's turn, held on the very file. */
	char path[4200];
	snprintf(path, sizeof path, "%s/k.lease", dir);
	int other = open(path, O_RDONLY | O_CLOEXEC);
	ASSERT(other >= 0);
	ASSERT_EQ(flock(other, LOCK_EX | LOCK_NB), 0);
	ASSERT_EQ(ldr_lease_break(dfd, "k.lease", &dead, "here"),
		  LDR_LEASE_BREAKING);
	struct ldr_lease_rec now;
	ASSERT_EQ(ldr_lease_read(dfd, "k.lease", &now), 0);
	ASSERT(ldr_lease_same(&now, &dead));
	close(other);

	ASSERT_EQ(ldr_lease_break(dfd, "k.lease", &dead, "here"), 1);
	ASSERT_EQ(ldr_lease_read(dfd, "k.lease", &now), -1);
	ASSERT_EQ(errno, ENOENT);

	/* A successor: the breaker still remembering the dead lease leaves
	 * it be. */
	ldr_lease *l;
	struct ldr_lease_rec h;
	ASSERT_EQ(
	    ldr_lease_acquire(dfd, "k.lease", 0644, &me, 30000, 0, &l, &h), 0);
	struct ldr_lease_rec mine;
	ASSERT_EQ(ldr_lease_read(dfd, "k.lease", &mine), 0);
	ASSERT_EQ(ldr_lease_break(dfd, "k.lease", &dead, "here"), 0);
	ASSERT(ldr_lease_held(l));
	ldr_lease_release(l);
	ASSERT_EQ(ldr_lease_read(dfd, "k.lease", &now), -1);
	close(dfd);
}

/* ---------------------------------------------------------------------- */
/* Semantics                                                               */

/* A source whose state (version "s<state>", data pattern seed = state)
 * moves on during loads as the test says. */
struct source {
	int state;
	int bump_every_load; /* the source changes during every load */
	int bump_first_load; /* ... during the first load only */
	int set_version;     /* the loader reads version and data in one
				snapshot: larder_fill_set_version */
	int version_calls, loads;
	size_t size;
	int fail; /* the loader returns this after writing some bytes */
	int bump_after_version; /* the source moves on right after version_fn
				   answers */
};

static int src_version(larder_fill *f, void *payload)
{
	struct source *s = payload;
	s->version_calls++;
	char v[32];
	int n = snprintf(v, sizeof v, "s%d", s->state);
	if (s->bump_after_version)
		s->state++;
	return larder_fill_set_version(f, v, (size_t)n);
}

static int src_load(larder_fill *f, void *payload)
{
	struct source *s = payload;
	s->loads++;
	int state = s->state;
	if (s->set_version) {
		char v[32];
		int n = snprintf(v, sizeof v, "s%d", state);
		int rc = larder_fill_set_version(f, v, (size_t)n);
		if (rc)
			return rc;
	}
	uint8_t *buf = xmalloc(s->size);
	test_fill_pattern(buf, s->size, (uint64_t)state);
	size_t half = s->size / 2;
	int rc = larder_fill_write(f, buf, half);
	if (rc == 0 && s->fail) {
		free(buf);
		return s->fail;
	}
	/* The source moves on while we read it. */
	if (s->bump_every_load || (s->bump_first_load && s->loads == 1))
		s->state++;
	if (rc == 0)
		rc = larder_fill_write(f, buf + half, s->size - half);
	free(buf);
	return rc;
}

TEST(version_fn_with_an_unchanged_source_fills_once_then_hits)
{
	larder *db = open_store();
	struct source s = {.state = 1, .size = 20000};
	larder_fill_opts fo = short_lease();
	larder_entry *e;
	int how;
	/* version_fn runs before the load and again after it (the source
	 * may have changed meanwhile): same answer, so publish. */
	ASSERT_RC(db,
		  larder_get_or_fill(&e, &how, db, "default", "stable", 6, NULL,
				     0, src_version, src_load, &s, &fo),
		  0);
	ASSERT_EQ(how, LARDER_FILLED);
	ASSERT_EQ(s.version_calls, 2);
	ASSERT_EQ(s.loads, 1);
	ASSERT(test_check_pattern(larder_entry_data(e), 20000, 1));
	larder_entry_release(e);
	ASSERT_RC(db,
		  larder_get_or_fill(&e, &how, db, "default", "stable", 6, NULL,
				     0, src_version, src_load, &s, &fo),
		  0);
	ASSERT_EQ(how, LARDER_HIT);
	ASSERT_EQ(s.loads, 1);
	larder_entry_release(e);
	expect_entry(db, "stable", "s1", 20000, 1);
	larder_close(db);
}

TEST(source_changed_during_the_load_is_retried_and_the_new_data_published)
{
	larder *db = open_store();
	struct source s = {.state = 1, .bump_first_load = 1, .size = 50000};
	larder_fill_opts fo = short_lease();
	larder_entry *e;
	int how;
	ASSERT_RC(db,
		  larder_get_or_fill(&e, &how, db, "default", "src", 3, NULL, 0,
				     src_version, src_load, &s, &fo),
		  0);
	ASSERT_EQ(how, LARDER_FILLED);
	ASSERT_EQ(larder_entry_size(e), 50000);
	ASSERT(test_check_pattern(larder_entry_data(e), 50000, 2));
	size_t vlen;
	const void *v = larder_entry_version(&vlen, e);
	ASSERT_EQ(vlen, 2);
	ASSERT_MEM_EQ(v, "s2", 2);
	larder_entry_release(e);
	ASSERT_EQ(s.loads, 2);
	ASSERT_EQ(s.version_calls, 3); /* before, after load 1, after 2 */
	ASSERT_EQ(larder_counter(db, LARDER_CTR_SOURCE_CHANGED), 1);
	ASSERT_EQ(larder_counter(db, LARDER_CTR_FILLS), 2);
	/* Nothing was published for the version that went by. */
	ASSERT_RC(db, larder_get(&e, db, "default", "src", 3, "s1", 2),
		  LARDER_ENOTFOUND);
	expect_entry(db, "src", "s2", 50000, 2);
	expect_entry(db, "src", NULL, 50000, 2);
	expect_no_leftovers(0);
	larder_close(db);
}

/* The source moves on during our load, and another process that saw the
 * new state first has already published it. */
struct raced_source {
	struct source s; /* first: src_load and src_version take it */
	larder *other;	 /* the other process's handle */
};

static int load_while_another_publishes(larder_fill *f, void *payload)
{
	struct raced_source *r = payload;
	int rc = src_load(f, &r->s); /* moves the source to state 2 */
	if (r->s.loads == 1) {
		uint8_t *buf = malloc(r->s.size);
		test_fill_pattern(buf, r->s.size, 2);
		int prc = larder_put(r->other, "default", "raced", 5, "s2", 2,
				     buf, r->s.size, NULL);
		free(buf);
		if (prc != 0)
			return prc;
	}
	return rc;
}

TEST(source_changed_during_the_load_takes_the_new_version_already_published)
{
	larder *db = open_store();
	struct raced_source r = {
	    {.state = 1, .bump_first_load = 1, .size = 40000}, open_store()};
	larder_fill_opts fo = short_lease();
	larder_entry *e;
	int how;
	ASSERT_RC(db,
		  larder_get_or_fill(&e, &how, db, "default", "raced", 5, NULL,
				     0, src_version,
				     load_while_another_publishes, &r, &fo),
		  0);
	/* Not loaded again: the other process's entry for s2 is taken. */
	ASSERT_EQ(r.s.loads, 1);
	ASSERT_EQ(how, LARDER_HIT);
	size_t vlen;
	const void *v = larder_entry_version(&vlen, e);
	ASSERT_EQ(vlen, 2);
	ASSERT_MEM_EQ(v, "s2", 2);
	ASSERT(test_check_pattern(larder_entry_data(e), 40000, 2));
	larder_entry_release(e);
	ASSERT_EQ(larder_counter(db, LARDER_CTR_SOURCE_CHANGED), 1);
	ASSERT_EQ(larder_counter(db, LARDER_CTR_FILLS), 1);
	ASSERT_RC(db, larder_get(&e, db, "default", "raced", 5, "s1", 2),
		  LARDER_ENOTFOUND);
	expect_no_leftovers(0);
	larder_close(r.other);
	larder_close(db);
}

TEST(source_changing_during_every_load_gives_ebusy_after_max_retries)
{
	larder *db = open_store();
	struct source s = {.state = 1, .bump_every_load = 1, .size = 30000};
	larder_fill_opts fo = short_lease();
	fo.max_retries = 4;
	larder_entry *e;
	int how;
	ASSERT_RC(db,
		  larder_get_or_fill(&e, &how, db, "default", "src", 3, NULL, 0,
				     src_version, src_load, &s, &fo),
		  LARDER_EBUSY);
	ASSERT(e == NULL);
	ASSERT_EQ(s.loads, 4);
	ASSERT_EQ(larder_counter(db, LARDER_CTR_SOURCE_CHANGED), 4);
	ASSERT(strstr(larder_errmsg(db), "changed") != NULL);
	ASSERT_RC(db, larder_get(&e, db, "default", "src", 3, NULL, 0),
		  LARDER_ENOTFOUND);
	for (int i = 1; i <= 5; i++) {
		char ver[8];
		snprintf(ver, sizeof ver, "s%d", i);
		ASSERT_RC(db, larder_get(&e, db, "default", "src", 3, ver, 2),
			  LARDER_ENOTFOUND);
	}
	/* The lease went with the call: the next caller fills at once. */
	expect_no_leftovers(0);
	s.bump_every_load = 0;
	ASSERT_RC(db,
		  larder_get_or_fill(&e, &how, db, "default", "src", 3, NULL, 0,
				     src_version, src_load, &s, &fo),
		  0);
	ASSERT_EQ(how, LARDER_FILLED);
	ASSERT_EQ(larder_counter(db, LARDER_CTR_WAITS), 0);
	ASSERT(test_check_pattern(larder_entry_data(e), 30000, 5));
	larder_entry_release(e);
	larder_close(db);
}

TEST(loader_setting_the_version_is_published_under_it_without_a_recheck)
{
	larder *db = open_store();
	/* version_fn says s1 and the source moves on at once: the loader's
	 * snapshot (data and version read together) is s2. */
	struct source s = {.state = 1,
			   .set_version = 1,
			   .bump_after_version = 1,
			   .size = 40000};
	larder_fill_opts fo = short_lease();
	larder_entry *e;
	int how;
	ASSERT_RC(db,
		  larder_get_or_fill(&e, &how, db, "default", "snap", 4, NULL,
				     0, src_version, src_load, &s, &fo),
		  0);
	ASSERT_EQ(how, LARDER_FILLED);
	ASSERT_EQ(s.version_calls, 1); /* no re-check after the load */
	ASSERT_EQ(s.loads, 1);
	ASSERT_EQ(larder_counter(db, LARDER_CTR_SOURCE_CHANGED), 0);
	ASSERT_EQ(larder_entry_size(e), 40000);
	ASSERT(test_check_pattern(larder_entry_data(e), 40000, 2));
	size_t vlen;
	const void *v = larder_entry_version(&vlen, e);
	ASSERT_EQ(vlen, 2);
	ASSERT_MEM_EQ(v, "s2", 2);
	larder_entry_release(e);
	expect_entry(db, "snap", "s2", 40000, 2);
	ASSERT_RC(db, larder_get(&e, db, "default", "snap", 4, "s1", 2),
		  LARDER_ENOTFOUND);
	expect_no_leftovers(0);
	larder_close(db);
}

/* A loader that writes, then sets the version: too late. */
static int late_version(larder_fill *f, void *payload)
{
	int *rc = payload;
	if (larder_fill_write(f, "abc", 3) != 0)
		return LARDER_EIO;
	*rc = larder_fill_set_version(f, "late", 4);
	return *rc;
}

TEST(setting_the_version_after_writing_data_is_refused)
{
	larder *db = open_store();
	larder_fill_opts fo = short_lease();
	larder_entry *e;
	int how, set_rc = 0;
	ASSERT_RC(db,
		  larder_get_or_fill(&e, &how, db, "default", "late", 4, "v1",
				     2, NULL, late_version, &set_rc, &fo),
		  LARDER_EINVAL);
	ASSERT_EQ(set_rc, LARDER_EINVAL);
	ASSERT_RC(db, larder_get(&e, db, "default", "late", 4, NULL, 0),
		  LARDER_ENOTFOUND);
	expect_no_leftovers(0);
	larder_close(db);
}

TEST(loader_error_publishes_nothing_and_is_returned)
{
	larder *db = open_store();
	larder_fill_opts fo = short_lease();
	larder_entry *e;
	int how;
	/* The loader's own failure is LARDER_EUSER, even when its number is
	 * a larder code's (no library call failed with it): test_api has
	 * the codes that pass on. */
	struct source s = {.state = 1, .size = 70000, .fail = LARDER_EPERM};
	ASSERT_RC(db,
		  larder_get_or_fill(&e, &how, db, "default", "bad", 3, "s1", 2,
				     NULL, src_load, &s, &fo),
		  LARDER_EUSER);
	ASSERT(e == NULL);
	s.fail = 42;
	ASSERT_RC(db,
		  larder_get_or_fill(&e, &how, db, "default", "bad", 3, "s1", 2,
				     NULL, src_load, &s, &fo),
		  LARDER_EUSER);
	ASSERT(strstr(larder_errmsg(db), "42") != NULL);
	ASSERT_EQ(s.loads, 2);
	ASSERT_RC(db, larder_get(&e, db, "default", "bad", 3, "s1", 2),
		  LARDER_ENOTFOUND);
	ASSERT_RC(db, larder_get(&e, db, "default", "bad", 3, NULL, 0),
		  LARDER_ENOTFOUND);
	ASSERT_EQ(larder_counter(db, LARDER_CTR_PUBLISHED), 0);
	/* No temp file, no lease: the next caller loads at once. */
	expect_no_leftovers(0);
	s.fail = 0;
	ASSERT_RC(db,
		  larder_get_or_fill(&e, &how, db, "default", "bad", 3, "s1", 2,
				     NULL, src_load, &s, &fo),
		  0);
	ASSERT_EQ(how, LARDER_FILLED);
	ASSERT_EQ(larder_counter(db, LARDER_CTR_WAITS), 0);
	ASSERT(test_check_pattern(larder_entry_data(e), 70000, 1));
	larder_entry_release(e);
	larder_close(db);
}

static int empty_load(larder_fill *f, void *payload)
{
	int *calls = payload;
	(*calls)++;
	/* Zero-length writes are no data either. */
	if (*calls == 2)
		return larder_fill_write(f, "", 0);
	return 0;
}

TEST(empty_payload_fill_is_published_and_hit)
{
	larder *db = open_store();
	larder_fill_opts fo = short_lease();
	larder_entry *e;
	int how, calls = 0;
	for (int i = 0; i < 2; i++) {
		const char *key = i ? "empty2" : "empty";
		ASSERT_RC(db,
			  larder_get_or_fill(&e, &how, db, "default", key,
					     strlen(key), "v1", 2, NULL,
					     empty_load, &calls, &fo),
			  0);
		ASSERT_EQ(how, LARDER_FILLED);
		ASSERT_EQ(larder_entry_size(e), 0);
		ASSERT(larder_entry_data(e) != NULL);
		larder_entry_release(e);
		ASSERT_RC(db,
			  larder_get_or_fill(&e, &how, db, "default", key,
					     strlen(key), "v1", 2, NULL,
					     empty_load, &calls, &fo),
			  0);
		ASSERT_EQ(how, LARDER_HIT);
		ASSERT_EQ(larder_entry_size(e), 0);
		larder_entry_release(e);
	}
	ASSERT_EQ(calls, 2);
	expect_no_leftovers(0);
	larder_close(db);
}

/* ---------------------------------------------------------------------- */
/* A cache that cannot write                                               */

/* The loaded bytes reach the caller, uncached, with the cause. */
static void expect_uncached(larder *db, const char *key, size_t size,
			    uint64_t seed, const char *cause, int get_rc)
{
	larder_fill_opts fo = short_lease();
	struct job j = JOB(NULL, size, seed);
	larder_entry *e;
	int how;
	ASSERT_RC(db,
		  larder_get_or_fill(&e, &how, db, "default", key, strlen(key),
				     "v1", 2, NULL, loader, &j, &fo),
		  0);
	ASSERT_EQ(how, LARDER_FILLED_UNCACHED);
	ASSERT_EQ(larder_entry_size(e), size);
	ASSERT(test_check_pattern(larder_entry_data(e), size, seed));
	larder_entry_release(e);
	ASSERT_EQ(larder_counter(db, LARDER_CTR_UNCACHED), 1);
	if (!strstr(larder_errmsg(db), cause))
		test_fail(__FILE__, __LINE__,
			  "larder_errmsg does not say '%s': %s", cause,
			  larder_errmsg(db));
	/* Nothing cached: a miss, or the store's trouble again. */
	ASSERT_RC(db, larder_get(&e, db, "default", key, strlen(key), "v1", 2),
		  get_rc);
}

TEST(full_disk_still_returns_the_loaded_bytes_uncached)
{
	/* A 1 MiB tmpfs in a mount namespace of this test's own. */
	if (unshare(CLONE_NEWNS) != 0)
		test_skip("no private mount namespace (unshare: %s): needs "
			  "root",
			  strerror(errno));
	ASSERT_EQ(mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL), 0);
	const char *dir = test_path("store");
	ASSERT_EQ(mkdir(dir, 0755), 0);
	ASSERT_EQ(mount("tmpfs", dir, "tmpfs", 0, "size=1m,mode=0755"), 0);
	larder *db = open_store();
	/* The disk really fills here: no watermark refuses first. */
	larder_limits lim = LARDER_LIMITS_INIT;
	ASSERT_RC(db, larder_limits_get(&lim, db, NULL), 0);
	lim.wm_run = lim.wm_cull = lim.wm_stop = 0;
	ASSERT_RC(db, larder_limits_set(db, NULL, &lim), 0);
	/* Fill the disk to the last byte. */
	int fd = open(test_path("store/ballast"), O_WRONLY | O_CREAT, 0644);
	ASSERT(fd >= 0);
	char block[4096];
	memset(block, 'x', sizeof block);
	while (write(fd, block, sizeof block) > 0)
		;
	while (write(fd, block, 1) > 0)
		;
	ASSERT_EQ(errno, ENOSPC);
	close(fd);
	expect_uncached(db, "full", 300000, 31, strerror(ENOSPC),
			LARDER_ENOTFOUND);
	expect_no_leftovers(0);
	larder_close(db);
	umount2(dir, MNT_DETACH);
}

TEST(entry_directory_that_is_a_file_still_returns_the_loaded_bytes)
{
	larder *db = open_store();
	/* The fan-out directory the entry would go to is a file. */
	uint8_t h[16];
	char hex[33], rel[256];
	ldr_entry_hash("default", "blocked", 7, "v1", 2, h);
	ldr_hex(h, 16, hex);
	ldr_dir_rel(rel, "default", 'e', hex);
	ASSERT_EQ(test_sh("mkdir -p \"$(dirname '%s/%s')\" && : > '%s/%s'",
			  test_path("store"), rel, test_path("store"), rel),
		  0);
	expect_uncached(db, "blocked", 100000, 32, rel, LARDER_EIO);
	larder_close(db);
}

/* ---------------------------------------------------------------------- */
/* Allow-stale, max-wait                                                   */

static void never_told(const larder_wait_info *info, void *payload)
{
	(void)info;
	(*(int *)payload)++;
}

static int must_not_load(larder_fill *f, void *payload)
{
	(void)f;
	(void)payload;
	test_fail(__FILE__, __LINE__, "this caller must not load");
}

TEST(allow_stale_returns_the_previous_version_while_another_fills)
{
	larder *db = open_store();
	uint8_t *old = malloc(60000);
	test_fill_pattern(old, 60000, 40);
	ASSERT_RC(db,
		  larder_put(db, "default", "sv", 2, "v1", 2, old, 60000, NULL),
		  0);
	free(old);
	/* Another process fills v2 and is held half-way. */
	larder_fill_opts fo = short_lease();
	int hrep, hnote, hgate;
	pid_t h =
	    spawn_gated(&hrep, &hnote, &hgate, "sv", "v2", 80000, 41, &fo);
	await_note(hnote, 'H');
	/* It must not wait at all: a wait would start with on_wait (and
	 * end, the gate shut, in a load, which must_not_load refuses). */
	fo.flags = LARDER_FILL_ALLOW_STALE;
	int told = 0;
	fo.on_wait = never_told;
	fo.on_wait_payload = &told;
	larder_entry *e;
	int how;
	ASSERT_RC(db,
		  larder_get_or_fill(&e, &how, db, "default", "sv", 2, "v2", 2,
				     NULL, must_not_load, NULL, &fo),
		  0);
	ASSERT_EQ(how, LARDER_STALE);
	ASSERT_EQ(told, 0);
	ASSERT_EQ(larder_counter(db, LARDER_CTR_WAITS), 0);
	size_t vlen;
	const void *v = larder_entry_version(&vlen, e);
	ASSERT_EQ(vlen, 2);
	ASSERT_MEM_EQ(v, "v1", 2);
	ASSERT_EQ(larder_entry_size(e), 60000);
	ASSERT(test_check_pattern(larder_entry_data(e), 60000, 40));
	larder_entry_release(e);

	open_gate(hgate);
	struct report r;
	ASSERT(read_report(hrep, &r, 10000));
	expect_exit0(h);
	ASSERT_EQ(r.rc, 0);
	ASSERT(r.ok);
	ASSERT_EQ(r.outcome, LARDER_FILLED);
	/* Now v2 is there: a hit, not stale. */
	ASSERT_RC(db,
		  larder_get_or_fill(&e, &how, db, "default", "sv", 2, "v2", 2,
				     NULL, must_not_load, NULL, &fo),
		  0);
	ASSERT_EQ(how, LARDER_HIT);
	ASSERT_EQ(larder_entry_size(e), 80000);
	ASSERT(test_check_pattern(larder_entry_data(e), 80000, 41));
	larder_entry_release(e);
	close(hrep);
	close(hnote);
	larder_close(db);
}

TEST(max_wait_loads_itself_when_a_live_holder_never_finishes)
{
	larder *db = open_store();
	larder_fill_opts fo = LARDER_FILL_OPTS_INIT;
	/* The holder heartbeats for as long as the test keeps its gate
	 * shut, and its lease is 30 times max_wait: it is never stale, even
	 * with its heartbeats held up on a loaded machine. */
	fo.lease_seconds = 30;
	int hrep, hnote, hgate;
	pid_t h =
	    spawn_gated(&hrep, &hnote, &hgate, "mw", "v1", 50000, 50, &fo);
	await_note(hnote, 'H');
	fo.max_wait_seconds = 1.0;
	struct job j = JOB(NULL, 50000, 50);
	larder_entry *e;
	int how;
	double t0 = mono_ms();
	ASSERT_RC(db,
		  larder_get_or_fill(&e, &how, db, "default", "mw", 2, "v1", 2,
				     NULL, loader, &j, &fo),
		  0);
	double ms = mono_ms() - t0;
	printf("    waited %.0f ms with max_wait 1 s\n", ms);
	ASSERT_EQ(how, LARDER_FILLED);
	ASSERT(test_check_pattern(larder_entry_data(e), 50000, 50));
	larder_entry_release(e);
	ASSERT_EQ(larder_counter(db, LARDER_CTR_LEASE_BREAKS), 0);
	/* It waited, then loaded itself: as a request, a miss. */
	ASSERT_EQ(larder_counter(db, LARDER_CTR_WAITS), 0);
	ASSERT_EQ(larder_counter(db, LARDER_CTR_MISSES), 1);
	ASSERT(larder_counter(db, LARDER_CTR_FILL_WAIT_MS) >= 1000);
	/* Not before max_wait; and not waiting on for anything else (the
	 * next bound would be the lease, 30 times longer). */
	if (ms < 1000 || ms > 3 * 1000)
		test_fail(__FILE__, __LINE__,
			  "loaded after %.0f ms, want max_wait (1000 ms) and "
			  "less than 3 of it",
			  ms);

	/* The holder still finishes; its publish meets ours. */
	open_gate(hgate);
	struct report r;
	ASSERT(read_report(hrep, &r, 10000));
	expect_exit0(h);
	ASSERT_EQ(r.rc, 0);
	ASSERT(r.ok);
	ASSERT_EQ(r.outcome, LARDER_FILLED);
	ASSERT_EQ(r.lost, 0);
	expect_entry(db, "mw", "v1", 50000, 50);
	expect_no_leftovers(0);
	close(hrep);
	close(hnote);
	larder_close(db);
}

/* ---------------------------------------------------------------------- */
/* Telling the caller about a wait (on_wait)                               */

/* What on_wait was told, and when; and something to do once the wait is
 * act_after_ms old: open a gate (the holder finishes) or kill the holder
 * (and reap it, so that it is gone, not a zombie). */
struct wait_log {
	int n;
	larder_wait_info ev[512];
	char host[512][64];
	uint64_t act_after_ms;
	int gate_fd;	/* -1, or: write to it */
	pid_t kill_pid; /* 0, or: SIGKILL it */
	int acted;
};

static void wait_log_init(struct wait_log *l, uint64_t act_after_ms)
{
	memset(l, 0, sizeof *l);
	l->act_after_ms = act_after_ms;
	l->gate_fd = -1;
}

static void record_wait(const larder_wait_info *info, void *payload)
{
	struct wait_log *l = payload;
	if (l->n < 512) {
		l->ev[l->n] = *info;
		snprintf(l->host[l->n], sizeof l->host[0], "%s",
			 info->holder_host);
		l->ev[l->n].holder_host = l->host[l->n];
		l->n++;
	}
	if (!l->acted && info->waited_ms >= l->act_after_ms) {
		l->acted = 1;
		if (l->gate_fd >= 0)
			open_gate(l->gate_fd);
		if (l->kill_pid > 0) {
			int st;
			kill(l->kill_pid, SIGKILL);
			waitpid(l->kill_pid, &st, 0);
		}
	}
}

/* The period of on_wait's ticks (larder.h, "Waiting for another filler"). */
#define TICK_MS 250u

/*
 * START first, END last, exactly once each, TICKs between, the time never
 * going back; every event names the holder. The ticks: the k-th of them
 * never before k periods into the wait; each in a later period than the
 * one before (a tick is never told twice); and on time, which is told by
 * counting, not by a gap in milliseconds: at least half of them come in
 * the period right after the last one's. A tick held up past a whole
 * period (a loaded machine) skips one; ticks told only when the waiter
 * looks at the filesystem, every 500 ms on a network filesystem, would
 * skip every other one. Returns the number of TICKs.
 */
static int expect_wait_log(const struct wait_log *l, larder *db, pid_t holder,
			   int end)
{
	ASSERT(l->n >= 2);
	ASSERT_EQ(l->ev[0].event, LARDER_WAIT_START);
	ASSERT_EQ(l->ev[l->n - 1].event, LARDER_WAIT_END);
	ASSERT_EQ(l->ev[l->n - 1].end, end);
	int ticks = 0, next = 0;
	uint64_t period = 0; /* of the last tick (START: 0) */
	for (int i = 0; i < l->n; i++) {
		const larder_wait_info *e = &l->ev[i];
		ASSERT_EQ(e->holder_pid, (long)holder);
		ASSERT_STR_EQ(e->holder_host, ldr_test_host(db));
		if (i > 0)
			ASSERT(e->waited_ms >= l->ev[i - 1].waited_ms);
		if (i == 0 || i == l->n - 1)
			continue;
		ASSERT_EQ(e->event, LARDER_WAIT_TICK);
		ASSERT_EQ(e->end, 0);
		ticks++;
		if (e->waited_ms < TICK_MS * (unsigned)ticks)
			test_fail(__FILE__, __LINE__,
				  "tick %d at %llu ms: early", ticks,
				  (unsigned long long)e->waited_ms);
		uint64_t p = e->waited_ms / TICK_MS;
		if (p <= period)
			test_fail(__FILE__, __LINE__,
				  "tick %d at %llu ms: a second tick in "
				  "period %llu",
				  ticks, (unsigned long long)e->waited_ms,
				  (unsigned long long)p);
		next += p == period + 1;
		period = p;
	}
	if (2 * next < ticks)
		test_fail(__FILE__, __LINE__,
			  "only %d of %d ticks came in the period after the "
			  "last: ticks late (at %llu ms of the wait, %llu "
			  "periods)",
			  next, ticks,
			  (unsigned long long)l->ev[l->n - 1].waited_ms,
			  (unsigned long long)period);
	return ticks;
}

/* A holder filling (key, v1) held half-way until `l` opens its gate; the
 * caller waits with on_wait recording into l. */
static void wait_for_gated_holder(larder *db, const char *key,
				  struct wait_log *l, pid_t *holder)
{
	/* A lease far longer than the wait: the holder looks alive all
	 * along even if its heartbeats are held up on a loaded machine. */
	larder_fill_opts fo = short_lease();
	fo.lease_seconds = 30;
	int hrep, hnote, hgate;
	pid_t h = spawn_gated(&hrep, &hnote, &hgate, key, "v1", 70000, 60, &fo);
	await_note(hnote, 'H');
	l->gate_fd = hgate;
	fo.on_wait = record_wait;
	fo.on_wait_payload = l;
	struct job j = JOB(NULL, 70000, 60);
	larder_entry *e;
	int how;
	ASSERT_RC(db,
		  larder_get_or_fill(&e, &how, db, "default", key, strlen(key),
				     "v1", 2, NULL, must_not_load, &j, &fo),
		  0);
	ASSERT_EQ(how, LARDER_WAITED);
	ASSERT_EQ(larder_entry_size(e), 70000);
	ASSERT(test_check_pattern(larder_entry_data(e), 70000, 60));
	larder_entry_release(e);
	ASSERT(l->acted);
	struct report r;
	ASSERT(read_report(hrep, &r, 10000));
	expect_exit0(h);
	ASSERT_EQ(r.outcome, LARDER_FILLED);
	close(hrep);
	close(hnote);
	*holder = h;
}

TEST(on_wait_is_told_at_the_start_every_250ms_and_at_the_end)
{
	larder *db = open_store();
	struct wait_log l;
	wait_log_init(&l, 1200);
	pid_t h;
	wait_for_gated_holder(db, "told", &l, &h);
	int ticks = expect_wait_log(&l, db, h, LARDER_WAIT_FILLED);
	printf("    %d ticks over %llu ms\n", ticks,
	       (unsigned long long)l.ev[l.n - 1].waited_ms);
	/* The gate was opened from a tick at least 1200 ms in. */
	ASSERT(l.ev[l.n - 2].waited_ms >= 1200);
	/* It heartbeats every 100 ms: alive throughout. */
	for (int i = 0; i < l.n; i++)
		ASSERT_EQ(l.ev[i].holder_alive, 1);
	ASSERT_EQ(l.ev[l.n - 1].breaks, 0);
	larder_close(db);
}

/* On a network filesystem the waiter polls with a backoff of up to
 * 500 ms; the ticks still come every 250 ms, between the polls. */
TEST(on_wait_ticks_on_time_between_network_polls)
{
	larder *db = open_store();
	ldr_test_set_network(db, 1);
	struct wait_log l;
	wait_log_init(&l, 2000);
	pid_t h;
	wait_for_gated_holder(db, "told-net", &l, &h);
	int ticks = expect_wait_log(&l, db, h, LARDER_WAIT_FILLED);
	printf("    %d ticks over %llu ms\n", ticks,
	       (unsigned long long)l.ev[l.n - 1].waited_ms);
	/* Long enough for the polls to reach their 500 ms. */
	ASSERT(l.ev[l.n - 2].waited_ms >= 2000);
	larder_close(db);
}

TEST(on_wait_end_says_taken_over_when_the_holder_dies)
{
	larder *db = open_store();
	larder_fill_opts fo = short_lease();
	fo.lease_seconds = 30; /* only its death may end the wait */
	fo.heartbeat_seconds = 0.1;
	int hrep, hnote, hgate;
	pid_t h =
	    spawn_gated(&hrep, &hnote, &hgate, "dies", "v1", 70000, 61, &fo);
	await_note(hnote, 'H');
	struct wait_log l;
	wait_log_init(&l, 600);
	l.kill_pid = h;
	fo.on_wait = record_wait;
	fo.on_wait_payload = &l;
	struct job j = JOB(NULL, 70000, 62);
	larder_entry *e;
	int how;
	ASSERT_RC(db,
		  larder_get_or_fill(&e, &how, db, "default", "dies", 4, "v1",
				     2, NULL, loader, &j, &fo),
		  0);
	ASSERT_EQ(how, LARDER_FILLED);
	ASSERT(test_check_pattern(larder_entry_data(e), 70000, 62));
	larder_entry_release(e);
	expect_wait_log(&l, db, h, LARDER_WAIT_TAKEN_OVER);
	const larder_wait_info *end = &l.ev[l.n - 1];
	ASSERT_EQ(end->breaks, 1);
	ASSERT_EQ(end->holder_alive, 0);
	ASSERT_EQ(l.ev[0].holder_alive, 1);
	close(hrep);
	close(hnote);
	close(hgate);
	larder_close(db);
}

TEST(on_wait_end_says_timed_out_after_max_wait)
{
	larder *db = open_store();
	larder_fill_opts fo = short_lease();
	fo.lease_seconds = 30; /* only max_wait may end the wait */
	int hrep, hnote, hgate;
	pid_t h =
	    spawn_gated(&hrep, &hnote, &hgate, "mw2", "v1", 50000, 63, &fo);
	await_note(hnote, 'H');
	struct wait_log l;
	wait_log_init(&l, UINT64_MAX);
	fo.on_wait = record_wait;
	fo.on_wait_payload = &l;
	fo.max_wait_seconds = 0.7;
	struct job j = JOB(NULL, 50000, 63);
	larder_entry *e;
	int how;
	ASSERT_RC(db,
		  larder_get_or_fill(&e, &how, db, "default", "mw2", 3, "v1", 2,
				     NULL, loader, &j, &fo),
		  0);
	ASSERT_EQ(how, LARDER_FILLED);
	larder_entry_release(e);
	expect_wait_log(&l, db, h, LARDER_WAIT_TIMED_OUT);
	ASSERT(l.ev[l.n - 1].waited_ms >= 700);
	open_gate(hgate);
	struct report r;
	ASSERT(read_report(hrep, &r, 10000));
	expect_exit0(h);
	close(hrep);
	close(hnote);
	larder_close(db);
}

TEST(on_wait_is_never_called_without_a_wait)
{
	larder *db = open_store();
	int told = 0;
	larder_fill_opts fo = short_lease();
	fo.on_wait = never_told;
	fo.on_wait_payload = &told;
	struct job j = JOB(NULL, 40000, 64);
	larder_entry *e;
	int how;
	ASSERT_RC(db,
		  larder_get_or_fill(&e, &how, db, "default", "nw", 2, "v1", 2,
				     NULL, loader, &j, &fo),
		  0);
	ASSERT_EQ(how, LARDER_FILLED);
	larder_entry_release(e);
	ASSERT_RC(db,
		  larder_get_or_fill(&e, &how, db, "default", "nw", 2, "v1", 2,
				     NULL, must_not_load, &j, &fo),
		  0);
	ASSERT_EQ(how, LARDER_HIT);
	ASSERT(test_check_pattern(larder_entry_data(e), 40000, 64));
	larder_entry_release(e);
	ASSERT_EQ(told, 0);
	ASSERT_EQ(larder_counter(db, LARDER_CTR_WAITS), 0);

	/* A version 1 struct (before on_wait) is still taken; an unknown
	 * version is refused. */
	fo.version = 1;
	ASSERT_RC(db,
		  larder_get_or_fill(&e, &how, db, "default", "nw", 2, "v1", 2,
				     NULL, must_not_load, &j, &fo),
		  0);
	larder_entry_release(e);
	fo.version = LARDER_FILL_OPTS_VERSION + 1;
	ASSERT_RC(db,
		  larder_get_or_fill(&e, &how, db, "default", "nw", 2, "v1", 2,
				     NULL, must_not_load, &j, &fo),
		  LARDER_EINVAL);
	larder_close(db);
}

/* ---------------------------------------------------------------------- */
/* Garbage at a lease's name (docs/leases.md)                              */

enum garbage {
	G_EMPTY,      /* an empty file */
	G_BINARY,     /* bytes of no record */
	G_MAGIC,      /* a record of a format this build does not know */
	G_LONG_LEASE, /* a record claiming a lease of 2^64-1 ms */
	G_DIR,	      /* a directory, with things in it */
	G_FIFO,	      /* a FIFO nobody writes */
	G_SYMLINK,    /* a symlink to a FIFO outside the store */
};

/* A lease record as a holder on another host writes it (lease.c's
 * format), with the given first line and lease length. */
static void write_record(const char *path, const char *magic,
			 unsigned long long lease_ms)
{
	FILE *f = fopen(path, "w");
	ASSERT(f);
	fprintf(f,
		"%s\nhost %-63.63s\nboot %-36.36s\npidns %020llu\n"
		"pid %020ld\nstart %020llu\nnonce %-32.32s\nlease_ms %020llu\n"
		"counter %020llu\n",
		magic, "elsewhere", "0b0b0b0b-0000-4000-8000-000000000000",
		4026531836ULL, 1L, 12345ULL, "00112233445566778899aabbccddeeff",
		lease_ms, 7ULL);
	ASSERT_EQ(fclose(f), 0);
}

/* Put garbage of kind g at the lease path of key (its head directory
 * made by a put of another version). Things outside the store that the
 * garbage points to are made too: they must survive. */
static void plant_garbage(larder *db, const char *key, enum garbage g,
			  char *lease, size_t len)
{
	ASSERT_RC(
	    db,
	    larder_put(db, "default", key, strlen(key), "v0", 2, "x", 1, NULL),
	    0);
	uint8_t h[16];
	char hex[33], rel[LDR_REL_MAX];
	ldr_head_hash("default", key, strlen(key), h);
	ldr_hex(h, 16, hex);
	ldr_dir_rel(rel, "default", 'h', hex);
	snprintf(lease, len, "%s/%s/%s.lease", test_path("store"), rel, hex);
	ASSERT_EQ(test_sh("echo keep > '%s' && mkfifo '%s'",
			  test_path("outside"), test_path("outside.fifo")),
		  0);
	switch (g) {
	case G_EMPTY:
		ASSERT_EQ(test_sh(": > '%s'", lease), 0);
		break;
	case G_BINARY:
		ASSERT_EQ(test_sh("head -c 300 /dev/urandom > '%s'", lease), 0);
		break;
	case G_MAGIC:
		write_record(lease, "larder-lease 9", 30000);
		break;
	case G_LONG_LEASE:
		write_record(lease, "larder-lease 1", 18446744073709551615ULL);
		break;
	case G_DIR:
		ASSERT_EQ(test_sh("mkdir -p '%s/a/b' && echo x > '%s/a/b/f' && "
				  "mkfifo '%s/a/p' && ln -s '%s' '%s/out'",
				  lease, lease, lease, test_path("outside"),
				  lease),
			  0);
		break;
	case G_FIFO:
		ASSERT_EQ(test_sh("mkfifo '%s'", lease), 0);
		break;
	case G_SYMLINK:
		ASSERT_EQ(symlink(test_path("outside.fifo"), lease), 0);
		break;
	}
}

/* A herd of N fills of a key whose lease's name holds garbage g. The
 * garbage names no holder and no believable lease period: each waiter
 * judges it by its own lease, so the herd waits one lease period of its
 * own (never its max wait), one of them removes the garbage, and one
 * load runs for them all. */
static void herd_through_garbage(enum garbage g)
{
	larder *db = open_store();
	char lease[4096];
	plant_garbage(db, "g", g, lease, sizeof lease);
	const char *side = test_path("loads");
	larder_fill_opts fo = short_lease();
	const double lease_ms = LEASE * 1000;
	fo.max_wait_seconds = 30 * LEASE; /* far beyond the bound below */
	enum { N = 6 };
	pid_t w[N];
	int wrep[N];
	double t0 = mono_ms();
	for (int i = 0; i < N; i++) {
		struct job j = JOB(side, 100000, 70);
		w[i] = spawn_filler(&wrep[i], "g", "v1", &j, &fo);
	}
	int breaks = 0, filled = 0, lost = 0;
	for (int i = 0; i < N; i++) {
		struct report r;
		if (!read_report(wrep[i], &r, 30 * lease_ms))
			test_fail(__FILE__, __LINE__, "filler %d hangs", i);
		close(wrep[i]);
		expect_exit0(w[i]);
		if (r.rc != 0 || !r.ok)
			test_fail(__FILE__, __LINE__,
				  "filler %d: rc %d ok %d: %s", i, r.rc, r.ok,
				  r.err);
		breaks += (int)r.breaks;
		filled += r.outcome == LARDER_FILLED;
		lost += (int)r.lost;
		/* Not before the garbage stood unchanged for a lease period
		 * of the waiter's (its first look was after t0), and well
		 * within a few lease periods. */
		double ms = (double)r.t_done_ns / 1e6 - t0;
		if (ms < lease_ms || ms > 5 * lease_ms)
			test_fail(__FILE__, __LINE__,
				  "filler %d done %.0f ms after the start; "
				  "want %.0f to %.0f",
				  i, ms, lease_ms, 5 * lease_ms);
	}
	/* One removal and one load. Rarely another breaker whose re-check
	 * passed an instant before the first one's rename moves the new
	 * holder's lease away (docs/leases.md, breaking): then, as for any
	 * stale lease (see sigstopped_holder_past_its_lease_is_broken_
	 * exactly_once), the holder counts lease_lost, and one more load
	 * runs if another waiter takes the key before the entry appears.
	 * Each such breaker moves at most one lease, and never the last
	 * filler's: every load beyond the first is one lost lease. */
	ASSERT_EQ(breaks, 1);
	ASSERT(lost < N);
	ASSERT(filled >= 1 && filled <= 1 + lost);
	ASSERT_EQ(test_count_lines(side), filled);
	expect_entry(db, "g", "v1", 100000, 70);
	/* The garbage is gone, nothing of it is left under a break name, and
	 * nothing it pointed to outside the store was touched. */
	struct stat st;
	ASSERT(lstat(lease, &st) != 0 && errno == ENOENT);
	expect_no_leftovers(0);
	ASSERT_EQ(lstat(test_path("outside"), &st), 0);
	ASSERT(S_ISREG(st.st_mode) && st.st_size == 5);
	ASSERT_EQ(lstat(test_path("outside.fifo"), &st), 0);
	ASSERT(S_ISFIFO(st.st_mode));
	larder_close(db);
}

TEST(empty_lease_file_is_stale_after_one_waiter_lease_and_a_herd_loads_once)
{
	herd_through_garbage(G_EMPTY);
}

TEST(binary_lease_file_is_stale_after_one_waiter_lease_and_a_herd_loads_once)
{
	herd_through_garbage(G_BINARY);
}

TEST(lease_of_an_unknown_format_is_stale_after_one_waiter_lease)
{
	herd_through_garbage(G_MAGIC);
}

TEST(lease_claiming_2_pow_64_ms_is_stale_after_one_waiter_lease)
{
	herd_through_garbage(G_LONG_LEASE);
}

TEST(directory_at_a_lease_name_is_removed_after_one_waiter_lease)
{
	herd_through_garbage(G_DIR);
}

TEST(fifo_at_a_lease_name_never_hangs_a_fill_and_is_removed)
{
	herd_through_garbage(G_FIFO);
}

TEST(symlink_at_a_lease_name_is_removed_not_followed)
{
	herd_through_garbage(G_SYMLINK);
}

TEST(a_lease_longer_than_an_hour_is_refused)
{
	larder *db = open_store();
	larder_fill_opts fo = LARDER_FILL_OPTS_INIT;
	fo.lease_seconds = 3600.5;
	struct job j = JOB(NULL, 10, 1);
	larder_entry *e = NULL;
	int how;
	ASSERT_RC(db,
		  larder_get_or_fill(&e, &how, db, "default", "long", 4, "v1",
				     2, NULL, loader, &j, &fo),
		  LARDER_EINVAL);
	fo.lease_seconds = 3600;
	ASSERT_RC(db,
		  larder_get_or_fill(&e, &how, db, "default", "long", 4, "v1",
				     2, NULL, loader, &j, &fo),
		  0);
	larder_entry_release(e);
	larder_close(db);
}

/* ---------------------------------------------------------------------- */
/* Through Redis (test_fill_redis: tests/redis/with_redis.sh runs the
 * on_redis_ tests against a private Redis; elsewhere they skip)          */

TEST(on_redis_herd_of_8_loads_once_every_byte_checked)
{
	need_redis();
	herd_loads_once(8);
	/* It went through Redis: the directory has no such entry, Redis
	 * has it whole. */
	larder *db = open_store();
	larder_entry *e = NULL;
	ASSERT_EQ(larder_get(&e, db, "default", "herd", 4, "v1", 2),
		  LARDER_ENOTFOUND);
	larder_close(db);
	db = open_fill_store();
	ASSERT_RC(db, larder_get(&e, db, "default", "herd", 4, "v1", 2), 0);
	ASSERT_EQ(larder_entry_size(e), 300000);
	ASSERT(test_check_pattern(larder_entry_data(e), 300000, 42));
	larder_entry_release(e);
	larder_close(db);
}

/* A filler SIGKILLed mid-load under a 30 s lease, with 8 waiters inside
 * their wait: exactly one breaks the lease (its holder seen dead on this
 * host, not waited out: the lease's record in Redis outlives the filler
 * until the server expires it) and loads; the others wait for it. */
TEST(on_redis_killed_filler_is_taken_over_by_one_of_8_waiters)
{
	need_redis();
	int *waiting = mmap(NULL, sizeof *waiting, PROT_READ | PROT_WRITE,
			    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	ASSERT(waiting != MAP_FAILED);
	*waiting = 0;
	const size_t size = 200000;
	const char *side = test_path("loads");
	larder_fill_opts fo = LARDER_FILL_OPTS_INIT;
	fo.lease_seconds = 30;
	fo.on_wait = takeover_told;
	fo.on_wait_payload = waiting;
	int np[2], gp[2], frep;
	ASSERT_EQ(pipe(np), 0);
	ASSERT_EQ(pipe(gp), 0);
	struct job fj = JOB(side, size, 7);
	fj.note_fd = np[1];
	fj.mid_fd = gp[0]; /* never written: it blocks mid-load */
	pid_t filler = spawn_filler(&frep, "killed", "v1", &fj, &fo);
	close(np[1]);
	await_note(np[0], 'H');
	pid_t w[TAKEOVER_WAITERS];
	int wrep[TAKEOVER_WAITERS];
	for (int i = 0; i < TAKEOVER_WAITERS; i++) {
		struct job j = JOB(side, size, 7);
		w[i] = spawn_filler(&wrep[i], "killed", "v1", &j, &fo);
	}
	/* A condition polled, not a time guessed. */
	while (__atomic_load_n(waiting, __ATOMIC_SEQ_CST) < TAKEOVER_WAITERS)
		sleep_us(1000);
	ASSERT_EQ(kill(filler, SIGKILL), 0);
	int st;
	/* Reaped: a zombie still looks alive to kill(pid, 0). */
	ASSERT_EQ(waitpid(filler, &st, 0), filler);
	ASSERT(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
	int filled = 0, waited = 0, breaks = 0;
	for (int i = 0; i < TAKEOVER_WAITERS; i++) {
		struct report r;
		/* Within the lease: a report after it could be the
		 * server's expiry, which the breaks below rule out. */
		if (!read_report(wrep[i], &r, 30000 - 1000))
			test_fail(__FILE__, __LINE__, "waiter %d hangs", i);
		close(wrep[i]);
		expect_exit0(w[i]);
		if (r.rc != 0 || !r.ok)
			test_fail(__FILE__, __LINE__,
				  "waiter %d: rc %d ok %d: %s", i, r.rc, r.ok,
				  r.err);
		filled += r.outcome == LARDER_FILLED;
		waited += r.outcome == LARDER_WAITED;
		breaks += (int)r.breaks;
	}
	close(frep);
	close(np[0]);
	close(gp[0]);
	close(gp[1]);
	ASSERT_EQ(filled, 1);
	ASSERT_EQ(waited, TAKEOVER_WAITERS - 1);
	/* Broken once, by the dead-holder judgement: the server's expiry
	 * (30 s) counts no break. */
	ASSERT_EQ(breaks, 1);
	ASSERT_EQ(test_count_lines(side), 2); /* the killed load, and one */
	munmap(waiting, sizeof *waiting);
}

/* The longest wait any waiter was told of (shared memory). */
static void longest_told(const larder_wait_info *info, void *payload)
{
	uint64_t *longest = payload;
	uint64_t cur = __atomic_load_n(longest, __ATOMIC_SEQ_CST);
	while (info->waited_ms > cur &&
	       !__atomic_compare_exchange_n(longest, &cur, info->waited_ms, 0,
					    __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
		;
}

/* A live filler renews its Redis lease without changing its record: its
 * waiters must not judge it stale by their own clock (unchanged for a
 * lease period), only the server's expiry frees it. The filler holds its
 * load until the waiters have waited three lease periods. */
TEST(on_redis_a_renewed_lease_is_never_broken_by_the_waiters_clock)
{
	need_redis();
	uint64_t *longest = mmap(NULL, sizeof *longest, PROT_READ | PROT_WRITE,
				 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	ASSERT(longest != MAP_FAILED);
	*longest = 0;
	const double lease = 2.0;
	const size_t size = 50000;
	larder_fill_opts fo = LARDER_FILL_OPTS_INIT;
	fo.lease_seconds = lease;
	fo.heartbeat_seconds = 0.1;
	fo.on_wait = longest_told;
	fo.on_wait_payload = longest;
	int frep, fnote, fgate;
	pid_t filler =
	    spawn_gated(&frep, &fnote, &fgate, "renewed", "v1", size, 3, &fo);
	await_note(fnote, 'H');
	enum { WAITERS = 2 };
	pid_t w[WAITERS];
	int wrep[WAITERS];
	for (int i = 0; i < WAITERS; i++) {
		struct job j = JOB(NULL, size, 3);
		w[i] = spawn_filler(&wrep[i], "renewed", "v1", &j, &fo);
	}
	/* A condition polled: the waiters' own ticks say how long. */
	while (__atomic_load_n(longest, __ATOMIC_SEQ_CST) <
	       (uint64_t)(3 * lease * 1000))
		sleep_us(10000);
	open_gate(fgate);
	struct report r;
	ASSERT(read_report(frep, &r, 60000));
	expect_exit0(filler);
	if (r.rc != 0 || !r.ok)
		test_fail(__FILE__, __LINE__, "filler: rc %d ok %d: %s", r.rc,
			  r.ok, r.err);
	ASSERT_EQ(r.outcome, LARDER_FILLED);
	ASSERT_EQ(r.lost, 0);
	for (int i = 0; i < WAITERS; i++) {
		struct report q;
		ASSERT(read_report(wrep[i], &q, 60000));
		expect_exit0(w[i]);
		if (q.rc != 0 || !q.ok)
			test_fail(__FILE__, __LINE__, "waiter %d: rc %d: %s", i,
				  q.rc, q.err);
		ASSERT_EQ(q.outcome, LARDER_WAITED);
		ASSERT_EQ(q.breaks, 0);
		close(wrep[i]);
	}
	close(frep);
	close(fnote);
	munmap(longest, sizeof *longest);
}

/* The loader of a lease stolen mid-load: another holder breaks the
 * filler's lease and takes the key's lease itself (as a waiter that
 * judged the filler stale would), then the load goes on. */
struct steal {
	struct ldr_backend *other; /* the thief's own connection */
	struct ldr_be_lease *l;	   /* its lease, held after the load */
	uint64_t token;
};

static int stealing_loader(larder_fill *f, void *payload)
{
	struct steal *s = payload;
	struct ldr_be_holder *h = NULL;
	ASSERT_EQ(ldr_test_be_lease_observe(s->other, "default", "stolen", &h),
		  0);
	ASSERT_EQ(ldr_test_be_lease_break(s->other, "default", "stolen", h), 1);
	free(h);
	h = NULL;
	ASSERT_EQ(ldr_test_be_lease_acquire(s->other, "default", "stolen",
					    30000, 10000, &s->l, &s->token, &h),
		  0);
	free(h);
	uint8_t p[5000];
	test_fill_pattern(p, sizeof p, 5);
	return larder_fill_write(f, p, sizeof p);
}

/* The head of (default, stolen) in be is ver. */
static void head_is(struct ldr_backend *be, const char *ver)
{
	char *head = NULL;
	ASSERT_EQ(ldr_test_be_head_get(be, "default", "stolen", &head), 0);
	ASSERT_STR_EQ(head, ver);
	free(head);
}

/* (default, stolen, ver) in be holds `size` bytes of pattern `seed`. */
static void entry_is(struct ldr_backend *be, const char *ver, size_t size,
		     uint64_t seed)
{
	int state;
	uint8_t *data = NULL;
	size_t len;
	ASSERT_EQ(ldr_test_be_read(be, "default", "stolen", ver, &state, &data,
				   &len, 0, NULL),
		  0);
	ASSERT_EQ(state, LARDER_STATE_OK);
	ASSERT_EQ(len, size);
	ASSERT(test_check_pattern(data, len, seed));
	free(data);
}

/* A filler whose lease was broken and taken by another during its load
 * publishes all the same (first writer wins; its caller gets its bytes),
 * counts lease_lost, leaves the head where it was and the other's lease
 * alone: on Redis alone and on near+Redis, where the lease is judged by
 * the commit itself. Through near+Redis, near follows shared
 * (docs/backends.md, "Tiers"): its head stays where it was too, and it
 * holds the new entry, since shared took it. */
TEST(on_redis_a_lease_lost_during_the_load_publishes_and_leaves_the_head)
{
	need_redis();
	for (int near = 0; near < 2; near++) {
		larder *db;
		if (near) {
			larder_opts o = LARDER_OPTS_INIT;
			o.shared = redis_where();
			db = open_store_opts(&o);
		} else {
			db = open_fill_store();
		}
		struct steal s = {NULL, NULL, 0};
		ASSERT_EQ(ldr_test_be_open(&s.other, db, redis_where()), 0);
		char v1[16], v2[16];
		snprintf(v1, sizeof v1, "a%d", near);
		snprintf(v2, sizeof v2, "b%d", near);
		struct job j = JOB(NULL, 3000, 4);
		larder_entry *e = NULL;
		int how = 0;
		ASSERT_RC(db,
			  larder_get_or_fill(&e, &how, db, "default", "stolen",
					     6, v1, 2, NULL, loader, &j, NULL),
			  0);
		ASSERT_EQ(how, LARDER_FILLED);
		larder_entry_release(e);
		head_is(s.other, v1);
		uint64_t lost = larder_counter(db, LARDER_CTR_LEASE_LOST);

		ASSERT_RC(db,
			  larder_get_or_fill(&e, &how, db, "default", "stolen",
					     6, v2, 2, NULL, stealing_loader,
					     &s, NULL),
			  0);
		ASSERT_EQ(how, LARDER_FILLED);
		ASSERT_EQ(larder_entry_size(e), 5000);
		ASSERT(test_check_pattern(larder_entry_data(e), 5000, 5));
		larder_entry_release(e);
		ASSERT_EQ(larder_counter(db, LARDER_CTR_LEASE_LOST), lost + 1);
		head_is(s.other, v1);
		/* A version-less get still finds the first. */
		ASSERT_RC(
		    db, larder_get(&e, db, "default", "stolen", 6, NULL, 0), 0);
		ASSERT_EQ(larder_entry_size(e), 3000);
		ASSERT(test_check_pattern(larder_entry_data(e), 3000, 4));
		larder_entry_release(e);
		struct ldr_be_holder *h = NULL;
		ASSERT_EQ(
		    ldr_test_be_lease_observe(s.other, "default", "stolen", &h),
		    0);
		ASSERT_EQ(ldr_test_be_lease_held(s.l), 1);
		free(h);
		/* Published in Redis: another reads it there. */
		entry_is(s.other, v2, 5000, 5);
		if (near) {
			/* The handle's own directory: the near tier. */
			struct ldr_backend *nb = NULL;
			ASSERT_EQ(ldr_test_be_open(&nb, db, NULL), 0);
			ASSERT_STR_EQ(ldr_test_be_kind(nb), "dir");
			head_is(nb, v1);
			entry_is(nb, v1, 3000, 4);
			entry_is(nb, v2, 5000, 5);
			ldr_test_be_close(nb);
		}
		ldr_test_be_lease_release(s.l);
		ldr_test_be_close(s.other);
		larder_close(db);
	}
}
