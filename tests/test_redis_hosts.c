/*
 * test_redis_hosts.c — the Redis tier's hard cases (docs/redis.md,
 * docs/testing.md): "hosts" that share nothing but a Redis. A host is a
 * store directory of its own: in a fill_worker process in a PID+UTS
 * namespace of its own (unshare), or a handle here. The Redis is private
 * to this program (tests/redis/redis.sh), stopped by pid through a
 * guardian process, also when the program dies.
 *
 *   - a herd of 16 hosts, each a near directory in front of Redis, loads
 *     once, and every host gets the same bytes;
 *   - a filler SIGKILLed mid-load on one host is taken over from another
 *     once Redis expires its lease, within the waiter's own max_wait of
 *     lease + 2 s;
 *   - with a replica and three sentinels, the master SIGKILLed during a
 *     herd: every client ends with the right bytes or a clear error, none
 *     hangs, and after the promotion a new fill works;
 *   - Redis SIGSTOPped past the timeout, and killed: near-only service,
 *     one warning per outage, every call bounded; afterwards new entries
 *     reach Redis again;
 *   - a chunk and an inline manifest changed behind larder's back: a miss
 *     and a reload, never the wrong bytes, never in near;
 *   - a 300 MB entry through Redis, and a 600 MB one refused clearly
 *     while the caller keeps its bytes (in a chain, near holds it).
 *
 * The killed filler, the failover and the sizes hang the Redis backend on
 * the handle (fill_worker --redis), so that its own errors show; the rest
 * go through the tier (larder_opts.shared, LARDER_SHARED). Every payload
 * is a deterministic pattern checked byte for byte. Skipped (77) only
 * where Redis cannot be installed or unshare cannot run.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fill_spawn.h"
#include "harness.h"
#include "redis_run.h"
#include "store_util.h"
#include "testing.h"

static struct redis_run main_run;
static char main_uri[512];
static pid_t starter;

__attribute__((constructor)) static void probe_and_start(void)
{
	starter = getpid();
	int st = system("unshare --pid --uts --fork --kill-child "
			"sh -c 'hostname larder-probe' >/dev/null 2>&1");
	if (st == -1 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		test_skip_all("cannot run 'unshare --pid --uts --fork' and set "
			      "a hostname (needs root or user namespaces, and "
			      "util-linux): the hosts need their own PID+UTS "
			      "namespaces");
		return;
	}
	int rc = redis_run_start(&main_run, REDIS_SH, "");
	if (rc == 77) {
		test_skip_all("redis.sh start: %s", main_run.env);
		return;
	}
	if (rc != 0)
		exit(1);
	redis_env_val(main_run.env, "REDIS_URI=", main_uri, sizeof main_uri);
}

__attribute__((destructor)) static void stop_redis(void)
{
	if (getpid() == starter)
		redis_run_stop(&main_run);
}

/* base (a redis:// or redis+sentinel:// URI) under a key prefix of this
 * test's own, with the given extra query ("" for none). */
static const char *uri_for(const char *base, const char *extra)
{
	static char u[2][1024];
	static int k;
	char *out = u[k++ % 2];
	char dir[512];
	snprintf(dir, sizeof dir, "%s", test_path("%s", ""));
	dir[strlen(dir) - 1] = '\0';
	const char *name = strrchr(dir, '/');
	snprintf(out, sizeof u[0], "%s%sprefix=%s:%s%s", base,
		 strchr(base, '?') ? "&" : "?", name ? name + 1 : dir,
		 *extra ? "&" : "", extra);
	return out;
}

/* Host i's own store directory, created. */
static const char *host_store(int i)
{
	static char dirs[32][512];
	char *d = dirs[i % 32];
	snprintf(d, sizeof dirs[0], "%s", test_path("host%d", i));
	larder *db = NULL;
	larder_opts o = LARDER_OPTS_INIT;
	o.flags = LARDER_OPEN_CREATE;
	if (larder_open(&db, d, &o) != 0)
		test_fail(__FILE__, __LINE__, "open %s: %s", d,
			  larder_errmsg(NULL));
	larder_close(db);
	return d;
}

/* ---------------------------------------------------------------------- */

#define HERD 16

/* The filler on host A holds its load (never let go) and is SIGKILLed;
 * host B waits with max_wait = lease + 2 s. B can judge A neither alive
 * nor dead (another PID namespace, another hostname): the lease goes only
 * when Redis expires it, a lease period after A's last renewal. B must
 * take it over (its wait ends LARDER_WAIT_TAKEN_OVER), not give up at
 * max_wait (LARDER_WAIT_TIMED_OUT): that is the bound, kept by the fill
 * itself. */
TEST(filler_killed_on_one_host_is_taken_over_from_another_within_lease_plus_2s)
{
	const char *u = uri_for(main_uri, "");
	char src[4096], side[4096], never[4096], out[4096];
	snprintf(src, sizeof src, "%s", test_path("src"));
	snprintf(side, sizeof side, "%s", test_path("loads"));
	snprintf(never, sizeof never, "%s", test_path("never"));
	snprintf(out, sizeof out, "%s", test_path("out"));
	const size_t size = 300000;
	spawn_write_source(src, size, 2202);
	struct worker ws[2];
	struct wenv ea = {"rkill-a", NULL, 0}, eb = {"rkill-b", NULL, 0};
	const char *fopts[] = {"--src",	      src,   "--side",	side,
			       "--hold",      never, "--lease", "2",
			       "--heartbeat", "0.2", "--redis", u,
			       NULL};
	worker_start(&ws[0], &ea, host_store(0), "killed", "v1", fopts);
	if (!worker_wait(ws, 1, 0, "loading", 30000))
		test_fail(__FILE__, __LINE__, "the filler never loaded");
	const char *wopts[] = {"--src",	      src,   "--side",	   side,
			       "--out",	      out,   "--lease",	   "2",
			       "--heartbeat", "0.2", "--max-wait", "4",
			       "--redis",     u,     NULL};
	worker_start(&ws[1], &eb, host_store(1), "killed", "v1", wopts);
	if (!worker_wait(ws, 2, 1, "waiting", 30000))
		test_fail(__FILE__, __LINE__, "host B never waited");
	worker_kill(&ws[0]);
	worker_reap(ws, 2, 0, 30000);
	ASSERT(WIFSIGNALED(ws[0].status) || WIFEXITED(ws[0].status));
	/* A hang guard only: the bound under test is B's max_wait. */
	worker_reap(ws, 2, 1, 60000);
	struct wres *r = &ws[1].res;
	if (!ws[1].done || r->rc != 0)
		test_fail(__FILE__, __LINE__, "host B: done %d rc %d: %s",
			  ws[1].done, r->rc, ws[1].last_error);
	ASSERT_EQ(ws[1].wait_end, LARDER_WAIT_TAKEN_OVER);
	ASSERT_EQ(r->outcome, LARDER_FILLED);
	ASSERT_EQ(r->uncached, 0);
	ASSERT(spawn_check_file(out, size, 2202));
	/* The killed load and B's. */
	ASSERT_EQ(test_count_lines(side), 2);
}

/* A master, a replica and three sentinels of their own. Eight hosts in a
 * herd through redis+sentinel://; once all are in (one loading, seven
 * waiting) the master is SIGKILLed and the load let go. Every host must
 * end with the right bytes (a failed publish leaves the loader its bytes,
 * uncached; a failed wait makes a waiter load) or a clear error, within
 * its bounds; after the sentinels promote the replica, a new fill on a
 * new host publishes, and a get on another host reads it. */
TEST(master_killed_during_a_herd_sentinel_promotes_and_no_client_hangs)
{
	enum { N = 8 };
	struct redis_run rr;
	struct redis_where rw;
	redis_run_need(&rr, REDIS_SH, "--replica --sentinel", &rw);
	const char *u = uri_for(rw.sentinel_uri, "timeout_ms=1000");
	static struct herd h;
	herd_init(&h, N, 700000, 3303);
	h.key = "fo";
	const size_t size = h.size;
	struct worker *ws = h.ws;
	char host[N][32];
	for (int i = 0; i < N; i++) {
		snprintf(host[i], sizeof host[i], "rfail-%d", i);
		struct wenv env = {host[i], NULL, 0};
		const char *more[] = {
		    "--chunk",	  "65536", "--lease", "3", "--heartbeat", "0.2",
		    "--max-wait", "20",	   "--redis", u,   NULL};
		herd_start(&h, i, &env, host_store(i), more);
	}
	spawn_touch(h.go);
	if (!worker_wait_each(ws, N, "loading", "waiting", 120000))
		test_fail(__FILE__, __LINE__,
			  "not every host loads or waits after 120 s");
	pid_t mpid = redis_run_pid(&rr, "master");
	ASSERT(mpid > 1);
	ASSERT_EQ(kill(mpid, SIGKILL), 0);
	spawn_touch(h.hold);
	int good = 0, failed = 0;
	for (int i = 0; i < N; i++) {
		/* A hang guard: max_wait (20 s) plus a load and the calls'
		 * 1 s timeouts are far inside it. */
		worker_reap(ws, N, i, 120000);
		struct wres *r = &ws[i].res;
		ASSERT(ws[i].done);
		if (r->rc == 0) {
			ASSERT_EQ(r->size, size);
			if (!spawn_check_file(h.out[i], size, 3303))
				test_fail(__FILE__, __LINE__,
					  "host %d got wrong bytes", i);
			good++;
		} else {
			/* A clear error: said, naming what failed. */
			ASSERT(ws[i].last_error[0] != '\0');
			failed++;
		}
	}
	ASSERT_EQ(good + failed, N);
	printf("# master killed during the herd: %d hosts with the bytes, "
	       "%d with an error, %d loads\n",
	       good, failed, test_count_lines(h.side));

	/* The promotion, polled (bounded): the replica says it is master. */
	char cmd[512], role[64] = "";
	snprintf(cmd, sizeof cmd,
		 "REDISCLI_AUTH=%s redis-cli -h 127.0.0.1 -p %d role "
		 "2>/dev/null | head -n 1",
		 rw.password, rw.replica_port);
	for (int i = 0; i < 600 && strcmp(role, "master") != 0; i++) {
		FILE *f = popen(cmd, "r");
		ASSERT(f);
		if (!fgets(role, sizeof role, f))
			role[0] = '\0';
		role[strcspn(role, "\r\n")] = '\0';
		pclose(f);
		if (strcmp(role, "master") != 0)
			usleep(100000);
	}
	ASSERT_STR_EQ(role, "master");
	/* A new fill on a new host publishes through the new master
	 * (the sentinels may still be settling: a few tries, each
	 * bounded), and another host then reads it. */
	char src2[4096], out2[4096];
	snprintf(src2, sizeof src2, "%s", test_path("src2"));
	snprintf(out2, sizeof out2, "%s", test_path("out-after"));
	spawn_write_source(src2, 200000, 3304);
	int published = 0;
	for (int t = 0; t < 20 && !published; t++) {
		struct worker w;
		struct wenv env = {"rfail-new", NULL, 0};
		const char *opts[] = {"--src",	 src2, "--max-wait", "10",
				      "--redis", u,    NULL};
		worker_start(&w, &env, host_store(20 + t), "after", "v1", opts);
		worker_reap(&w, 1, 0, 60000);
		ASSERT(w.done);
		ASSERT_EQ(w.res.rc, 0);
		published =
		    w.res.uncached == 0 && (w.res.outcome == LARDER_FILLED ||
					    w.res.outcome == LARDER_HIT);
		if (!published)
			usleep(500000);
	}
	ASSERT(published);
	struct worker w;
	struct wenv env = {"rfail-reader", NULL, 0};
	const char *opts[] = {"--src", src2, "--out", out2, "--redis", u, NULL};
	worker_start(&w, &env, host_store(30), "after", "v1", opts);
	worker_reap(&w, 1, 0, 60000);
	ASSERT(w.done);
	ASSERT_EQ(w.res.rc, 0);
	ASSERT_EQ(w.res.outcome, LARDER_HIT);
	ASSERT(spawn_check_file(out2, 200000, 3304));
	redis_run_stop(&rr);
}

/* ---------------------------------------------------------------------- */
/* Sizes, through the Redis backend hung on a handle in this process      */

#define PIECE (4u << 20)

struct big {
	uint64_t size, seed;
	uint8_t *buf; /* one piece */
};

/* Streams the pattern: piece i is test_fill_pattern(seed + i). */
static int big_loader(larder_fill *fill, void *payload)
{
	struct big *b = payload;
	for (uint64_t off = 0, i = 0; off < b->size; off += PIECE, i++) {
		size_t n =
		    b->size - off < PIECE ? (size_t)(b->size - off) : PIECE;
		test_fill_pattern(b->buf, n, b->seed + i);
		int rc = larder_fill_write(fill, b->buf, n);
		if (rc)
			return rc;
	}
	return 0;
}

static int big_check(const uint8_t *p, uint64_t size, uint64_t seed)
{
	for (uint64_t off = 0, i = 0; off < size; off += PIECE, i++) {
		size_t n = size - off < PIECE ? (size_t)(size - off) : PIECE;
		if (!test_check_pattern(p + off, n, seed + i))
			return 0;
	}
	return 1;
}

static larder *open_on_redis(const char *u)
{
	larder *db = open_store();
	struct ldr_backend *be;
	ASSERT_RC(db, ldr_test_be_open(&be, db, u), 0);
	ldr_test_be_hang(db, be);
	return db;
}

TEST(a_300_mb_entry_through_redis_reads_back_byte_for_byte)
{
	const char *u = uri_for(main_uri, "timeout_ms=30000");
	struct big b = {300ull * 1000 * 1000 + 3, 7300, xmalloc(PIECE)};
	larder *db = open_on_redis(u);
	larder_entry *e = NULL;
	int outcome = 0;
	ASSERT_RC(db,
		  larder_get_or_fill(&e, &outcome, db, "default", "big", 3,
				     "v1", 2, NULL, big_loader, &b, NULL),
		  0);
	ASSERT_EQ(outcome, LARDER_FILLED);
	ASSERT_EQ(larder_entry_size(e), b.size);
	larder_entry_release(e);
	larder_close(db);
	free(b.buf);
	/* A handle of its own reads it from Redis alone. */
	db = open_on_redis(u);
	ASSERT_RC(db, larder_get(&e, db, "default", "big", 3, "v1", 2), 0);
	ASSERT_EQ(larder_entry_size(e), b.size);
	ASSERT(big_check(larder_entry_data(e), b.size, b.seed));
	larder_entry_release(e);
	larder_close(db);
}

TEST(a_600_mb_entry_is_refused_clearly_and_the_caller_keeps_its_bytes)
{
	const char *u = uri_for(main_uri, "timeout_ms=30000");
	struct big b = {600ull * 1000 * 1000, 7600, xmalloc(PIECE)};
	larder *db = open_on_redis(u);
	larder_entry *e = NULL;
	int outcome = 0;
	ASSERT_RC(db,
		  larder_get_or_fill(&e, &outcome, db, "default", "huge", 4,
				     "v1", 2, NULL, big_loader, &b, NULL),
		  0);
	ASSERT_EQ(outcome, LARDER_FILLED_UNCACHED);
	ASSERT(strstr(larder_errmsg(db), "512 MiB"));
	ASSERT_EQ(larder_counter(db, LARDER_CTR_UNCACHED), 1);
	ASSERT_EQ(larder_entry_size(e), b.size);
	ASSERT(big_check(larder_entry_data(e), b.size, b.seed));
	larder_entry_release(e);
	free(b.buf);
	/* Nothing of it stayed in Redis: a miss. */
	ASSERT_EQ(larder_get(&e, db, "default", "huge", 4, "v1", 2),
		  LARDER_ENOTFOUND);
	larder_close(db);
}

/* ---------------------------------------------------------------------- */
/* Through the tier: near stores with Redis as their shared tier, as
 * `larder init --shared redis://…` or LARDER_SHARED makes them           */

/* A get of (key, "v"): its result, the bytes checked when found. */
static int tier_get(larder *db, const char *key, size_t n)
{
	larder_entry *e;
	int rc = larder_get(&e, db, "default", key, strlen(key), "v", 1);
	if (rc == 0) {
		ASSERT_EQ(larder_entry_size(e), n);
		ASSERT(
		    test_check_pattern(larder_entry_data(e), n,
				       seed_of_kv(key, strlen(key), "v", 1)));
		larder_entry_release(e);
	}
	return rc;
}

/* Whether the server of run r (at port) answers PING. */
static int redis_answers(const char *pw, int p)
{
	return test_sh("[ \"$(REDISCLI_AUTH=%s redis-cli -h 127.0.0.1 -p %d "
		       "ping 2>/dev/null)\" = PONG ]",
		       pw, p) == 0;
}

/* A call made while the shared tier cannot answer: it must come back,
 * bounded by the tier's timeout (300 ms) and its back-off. The bound
 * checked is a hang's, not a speed: 20 s. */
#define HANG_MS 20000.0

static void outage(larder *a, const char *what, int n0)
{
	for (int i = 0; i < 4; i++) {
		char key[32];
		snprintf(key, sizeof key, "%s%d", what, n0 + i);
		double t0 = spawn_now_ms();
		ASSERT_EQ(fill_pattern(a, key, 3000 + (size_t)i),
			  LARDER_FILLED);
		ASSERT_EQ(fill_pattern(a, key, 3000 + (size_t)i), LARDER_HIT);
		double took = spawn_now_ms() - t0;
		if (took > HANG_MS)
			test_fail(__FILE__, __LINE__,
				  "%s: a fill took %.0f ms with the tier down",
				  what, took);
	}
	ASSERT_EQ(tier_get(a, "before", 2000), 0);
}

/* Redis SIGSTOPped past the tier's timeout, then SIGCONTed; then stopped
 * (killed) and started again on its port. Each outage: near-only service
 * (fills load, return and stay in near), one warning; after it, once the
 * back-off ends, new entries reach Redis again (another host reads them
 * from there). */
TEST(redis_stopped_or_sigstopped_near_only_one_warning_then_back)
{
	struct redis_run rr;
	struct redis_where rw;
	redis_run_need(&rr, REDIS_SH, "", &rw);
	const char *shared = uri_for(rw.uri, "timeout_ms=300");
	struct logbook lb;
	larder *a = open_host("a", shared, &lb);
	ASSERT_EQ(fill_pattern(a, "before", 2000), LARDER_FILLED);
	ASSERT_EQ(lb.warnings, 0);

	pid_t mpid = redis_run_pid(&rr, "master");
	ASSERT(mpid > 1);
	ASSERT_EQ(kill(mpid, SIGSTOP), 0);
	fill_loads = 0;
	outage(a, "stopped", 0);
	ASSERT_EQ(fill_loads, 4);
	ASSERT_EQ(lb.warnings, 1);
	ASSERT(strstr(lb.last, "shared tier") != NULL);
	ASSERT(strstr(lb.last, rw.password) == NULL);
	ASSERT(larder_counter(a, LARDER_CTR_SHARED_ERRORS) >= 1);
	ASSERT_EQ(kill(mpid, SIGCONT), 0);
	/* Back: once the back-off ends (ended here as if its time ran
	 * out), a new entry reaches Redis: host b reads it from there. */
	ASSERT(ldr_test_tier_retry_now(a) > 0);
	ASSERT_EQ(fill_pattern(a, "after-stop", 5000), LARDER_FILLED);
	ASSERT_EQ(ldr_test_tier_retry_now(a), 0);
	larder *b = open_host("b", shared, NULL);
	ASSERT_EQ(tier_get(b, "after-stop", 5000), 0);
	ASSERT_EQ(larder_counter(b, LARDER_CTR_SHARED_HITS), 1);
	/* What a filled in the outage stayed in a's near alone. */
	ASSERT_EQ(tier_get(b, "stopped0", 3000), LARDER_ENOTFOUND);
	larder_close(b);
	ASSERT_EQ(lb.warnings, 1);

	/* Killed: connection refused. */
	ASSERT_EQ(kill(mpid, SIGTERM), 0);
	for (int i = 0; i < 600 && kill(mpid, 0) == 0; i++)
		usleep(20000);
	ASSERT(kill(mpid, 0) != 0);
	outage(a, "gone", 0);
	ASSERT_EQ(lb.warnings, 2);
	/* Started again on its port (its own config); polled until it
	 * answers. */
	ASSERT_EQ(test_sh("redis-server '%s/redis/master/redis.conf'", rr.dir),
		  0);
	for (int i = 0; i < 300 && !redis_answers(rw.password, rw.port); i++)
		usleep(100000);
	ASSERT(redis_answers(rw.password, rw.port));
	ASSERT(ldr_test_tier_retry_now(a) > 0);
	ASSERT_EQ(fill_pattern(a, "after-gone", 6000), LARDER_FILLED);
	ASSERT_EQ(ldr_test_tier_retry_now(a), 0);
	b = open_host("c", shared, NULL);
	ASSERT_EQ(tier_get(b, "after-gone", 6000), 0);
	ASSERT_EQ(larder_counter(b, LARDER_CTR_SHARED_HITS), 1);
	larder_close(b);
	ASSERT_EQ(lb.warnings, 2);
	larder_close(a);
	redis_run_stop(&rr);
}

/* Flips one byte (the 7th from the end) of every key of this test's
 * prefix matching glob, through redis-cli: how many it changed. */
static int flip_keys(const char *glob)
{
	char dir[512], pw[128], num[32];
	snprintf(dir, sizeof dir, "%s", test_path("%s", ""));
	dir[strlen(dir) - 1] = '\0';
	const char *name = strrchr(dir, '/');
	redis_env_val(main_run.env, "REDIS_PASSWORD=", pw, sizeof pw);
	redis_env_val(main_run.env, "REDIS_PORT=", num, sizeof num);
	char out[4096];
	snprintf(out, sizeof out, "%s", test_path("flipped"));
	ASSERT_EQ(
	    test_sh(
		"REDISCLI_AUTH=%s redis-cli -h 127.0.0.1 -p %s eval "
		"\"local n = 0 "
		"for _, k in ipairs(redis.call('keys', ARGV[1])) do "
		"local at = redis.call('strlen', k) - 7 "
		"local b = string.byte(redis.call('getrange', k, at, at)) "
		"redis.call('setrange', k, at, string.char(bit.bxor(b, 1))) "
		"n = n + 1 end return n\" 0 '%s:%s' >'%s'",
		pw, num, name ? name + 1 : dir, glob, out),
	    0);
	size_t len;
	char *t = (char *)read_file(out, &len);
	int n = atoi(t);
	free(t);
	return n;
}

/* A chunk (a 1 MiB entry) and an inline manifest (50 kB) changed in Redis
 * behind larder's back: another host's get is a miss, its near never gets
 * the bad copy, its fill loads again, and a third host then reads the
 * good bytes. */
TEST(corrupt_chunk_or_inline_manifest_in_redis_is_a_miss_and_a_reload)
{
	const char *shared = uri_for(main_uri, "");
	const struct {
		const char *key, *glob;
		size_t n;
	} c[2] = {
	    /* The inline one first: its glob would match every manifest. */
	    {"inline", "*:m", 50000},
	    {"chunked", "*:c:*", 1u << 20}};
	for (int k = 0; k < 2; k++) {
		char a_n[16], b_n[16], c_n[16];
		snprintf(a_n, sizeof a_n, "a%d", k);
		snprintf(b_n, sizeof b_n, "b%d", k);
		snprintf(c_n, sizeof c_n, "c%d", k);
		larder *a = open_host(a_n, shared, NULL);
		fill_loads = 0;
		ASSERT_EQ(fill_pattern(a, c[k].key, c[k].n), LARDER_FILLED);
		larder_close(a);
		ASSERT_EQ(flip_keys(c[k].glob), 1);
		larder *b = open_host(b_n, shared, NULL);
		ASSERT_EQ(tier_get(b, c[k].key, c[k].n), LARDER_ENOTFOUND);
		ASSERT_EQ(larder_counter(b, LARDER_CTR_SHARED_COPIES), 0);
		larder_close(b);
		/* b's near alone: nothing of it. */
		b = open_host(b_n, "", NULL);
		ASSERT_EQ(tier_get(b, c[k].key, c[k].n), LARDER_ENOTFOUND);
		larder_close(b);
		b = open_host(b_n, shared, NULL);
		ASSERT_EQ(fill_pattern(b, c[k].key, c[k].n), LARDER_FILLED);
		ASSERT_EQ(fill_loads, 2);
		larder_close(b);
		larder *h = open_host(c_n, shared, NULL);
		ASSERT_EQ(tier_get(h, c[k].key, c[k].n), 0);
		ASSERT_EQ(larder_counter(h, LARDER_CTR_SHARED_HITS), 1);
		larder_close(h);
	}
}

/* In a chain, the 600 MB entry Redis cannot hold still reaches near:
 * counted as refused by the shared tier, served from near afterwards, and
 * a miss for another host. */
TEST(a_600_mb_entry_in_a_chain_reaches_near_alone)
{
	const char *shared = uri_for(main_uri, "timeout_ms=30000");
	struct big b = {600ull * 1000 * 1000, 7601, xmalloc(PIECE)};
	larder *a = open_host("a", shared, NULL);
	larder_entry *e = NULL;
	int outcome = 0;
	ASSERT_RC(a,
		  larder_get_or_fill(&e, &outcome, a, "default", "huge", 4,
				     "v1", 2, NULL, big_loader, &b, NULL),
		  0);
	ASSERT_EQ(larder_entry_size(e), b.size);
	ASSERT(big_check(larder_entry_data(e), b.size, b.seed));
	larder_entry_release(e);
	free(b.buf);
	ASSERT_EQ(outcome, LARDER_FILLED);
	ASSERT_EQ(larder_counter(a, LARDER_CTR_SHARED_REFUSED), 1);
	ASSERT_EQ(larder_counter(a, LARDER_CTR_UNCACHED), 0);
	larder_close(a);
	a = open_host("a", "", NULL);
	ASSERT_RC(a, larder_get(&e, a, "default", "huge", 4, "v1", 2), 0);
	ASSERT_EQ(larder_entry_size(e), b.size);
	ASSERT(big_check(larder_entry_data(e), b.size, b.seed));
	larder_entry_release(e);
	larder_close(a);
	larder *o = open_host("other", shared, NULL);
	ASSERT_EQ(larder_get(&e, o, "default", "huge", 4, "v1", 2),
		  LARDER_ENOTFOUND);
	larder_close(o);
}

TEST(herd_of_16_hosts_sharing_only_redis_loads_once)
{
	/* Every worker's larder_open takes the shared tier from here:
	 * each host is a near directory of its own in front of Redis. */
	ASSERT_EQ(setenv("LARDER_SHARED", uri_for(main_uri, ""), 1), 0);
	static struct herd h;
	herd_init(&h, HERD, 1000000 + 17, 1601);
	const size_t size = h.size;
	char host[HERD][32];
	for (int i = 0; i < HERD; i++) {
		snprintf(host[i], sizeof host[i], "rherd-%d", i);
		struct wenv env = {host[i], NULL, 0};
		/* The loader holds its load until all 15 others are seen
		 * waiting; max_wait is far past that (a waiter that gave up
		 * would load, and the count of loads would show it). */
		const char *more[] = {"--chunk",    "65536",	   "--lease",
				      "5",	    "--heartbeat", "0.2",
				      "--max-wait", "120",	   NULL};
		herd_start(&h, i, &env, host_store(i), more);
	}
	ASSERT_EQ(unsetenv("LARDER_SHARED"), 0);
	herd_run(&h, 120000);
	for (int i = 0; i < HERD; i++)
		ASSERT_EQ(h.ws[i].res.uncached, 0);
	/* Redis holds it (a new host reads it from there), and so does
	 * every host's near tier (the loader's by its publish, the others'
	 * by their copies): read with near alone. */
	larder *db = open_host("check", uri_for(main_uri, ""), NULL);
	larder_entry *e;
	ASSERT_RC(db, larder_get(&e, db, "default", "herd", 4, "v1", 2), 0);
	ASSERT_EQ(larder_counter(db, LARDER_CTR_SHARED_HITS), 1);
	ASSERT_EQ(larder_entry_size(e), size);
	ASSERT(test_check_pattern(larder_entry_data(e), size, 1601));
	larder_entry_release(e);
	larder_close(db);
	for (int i = 0; i < HERD; i++) {
		char name[16];
		snprintf(name, sizeof name, "host%d", i);
		db = open_host(name, "", NULL);
		ASSERT_RC(db, larder_get(&e, db, "default", "herd", 4, "v1", 2),
			  0);
		ASSERT_EQ(larder_entry_size(e), size);
		ASSERT(test_check_pattern(larder_entry_data(e), size, 1601));
		larder_entry_release(e);
		larder_close(db);
	}
}
