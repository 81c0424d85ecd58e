/*
 * bench_redis.c — what the Redis tier costs against bare hiredis
 * commands on the same server, in the same run (issue 14's benchmark,
 * docs/performance.md "Redis tier"):
 *  - a verified read (manifest, chunks pipelined, the payload hashed by
 *    ldr_entry_check) against one bare GET of the same bytes, and a
 *    publish (chunks, the commit) against one bare SET: 4 KiB, 1 MiB,
 *    64 MiB;
 *  - a put (larder_put of a new entry through the public API, on a
 *    handle whose store is Redis alone, and through near+Redis) against
 *    a bare SET of the same bytes: 4 KiB, 1 MiB, 64 MiB, judged against
 *    the target (PASS or MISS printed);
 *  - a fill (larder_get_or_fill of a new version through the Redis
 *    backend hung on a handle, and through near+Redis) against a bare
 *    SET and against a GET that misses then a SET (what a hand-made
 *    cache-aside costs on a miss, the same two round trips as a miss
 *    through larder): reported, not judged (docs/performance.md "A
 *    fill in two round trips" says why a miss cannot be one SET);
 *  - larder_get_many of 100 keys against 100 larder_get calls, and
 *    larder_put_many of 100 new entries against 100 larder_put calls;
 *  - a herd of 16 processes, each with a near store of its own in front
 *    of Redis, wanting one new key (one load) against 16 uncoordinated
 *    loads, by wall time;
 *  - a near hit (near+Redis, the entry in near) against a plain local
 *    hit of a store with no shared tier.
 * Targets: a verified hit <= 1.3x a bare GET; a put <= 1.5x a bare SET;
 * a near hit within 1.2x a plain local hit.
 *
 *   sh bench/redis_bench.sh BUILD [--quick] [--only SIZE] [--part P]
 *   sh bench/redis_bench.sh BUILD --part put [--only 4096] [--rounds N]
 *       [--redis-only]      (also prints the per-round put / SET ratios
 *                            split by the round's round trip)
 *   sh bench/redis_bench.sh BUILD --put-loop N   (for strace -c, perf)
 *
 * starts a private Redis (tests/redis/redis.sh) and runs this program
 * with REDIS_URI, REDIS_PORT and REDIS_PASSWORD set. Each round times
 * every method in a fresh random order (bench.h), and the medians are
 * printed with their ratios.
 */
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "testing.h"

enum { M_GET, M_READ, M_SET, M_PUB, M_N };
static const char *const mname[M_N] = {"bare GET", "verified read", "bare SET",
				       "publish"};

static redisContext *rc;
static struct ldr_backend *be;
static larder *db;
static uint64_t serial;

static char dir[] = "/tmp/larder-bench-redis-store.XXXXXX";
/* The near stores of the tier chain's parts, one per "host". */
static char neardir[] = "/tmp/larder-bench-redis-near.XXXXXX";
static const char *the_uri;

/* The store's directory goes however the program ends (die exits). */
static void cleanup(void)
{
	char cmd[200];
	snprintf(cmd, sizeof cmd, "rm -rf '%s' '%s'", dir, neardir);
	if (system(cmd) != 0)
		fprintf(stderr, "bench_redis: could not remove %s, %s\n", dir,
			neardir);
}

static void die(const char *what)
{
	fprintf(stderr, "bench_redis: %s: %s\n", what,
		db ? larder_errmsg(db) : "");
	exit(1);
}

static void name_of(struct ldr_name *n, const char *key, const char *ver)
{
	memset(n, 0, sizeof *n);
	n->ns = "bench";
	n->key = key;
	n->klen = strlen(key);
	n->ver = ver;
	n->vlen = strlen(ver);
	ldr_head_hash(n->ns, key, n->klen, n->khash);
	ldr_entry_hash(n->ns, key, n->klen, ver, n->vlen, n->hash);
}

static int publish(const struct ldr_name *n, const uint8_t *p, size_t len)
{
	struct ldr_stage *s;
	if (be->ops->stage_begin(be, n, NULL, &s))
		die("stage_begin");
	/* As a writer feeds it: 1 MiB at a time. */
	for (size_t at = 0; at < len; at += 1u << 20) {
		struct iovec v = {(uint8_t *)p + at,
				  len - at < (1u << 20) ? len - at : 1u << 20};
		if (be->ops->stage_write(s, &v, 1))
			die("stage_write");
	}
	ldr_hdr h;
	memset(&h, 0, sizeof h);
	h.hdr_len = (uint32_t)ldr_hdr_padded_len(
	    ldr_hdr_min_len(5, (uint32_t)n->klen, (uint32_t)n->vlen, 0), 0);
	h.stored_len = h.raw_len = len;
	h.created = 1;
	ldr_xxh128(p, len, h.payload_hash);
	h.ns = (const uint8_t *)n->ns;
	h.ns_len = 5;
	h.key = n->key;
	h.key_len = (uint32_t)n->klen;
	h.ver = n->ver;
	h.ver_len = (uint32_t)n->vlen;
	uint8_t hdr[512];
	ldr_hdr_encode(&h, hdr);
	return be->ops->stage_commit(s, hdr, h.hdr_len, LDR_BE_NO_HEAD, 0);
}

/* One timed operation of method m on `size` bytes at p; ns. */
static double run(int m, const uint8_t *p, size_t size,
		  const struct ldr_name *hit)
{
	char key[32];
	snprintf(key, sizeof key, "bare:%zu", size);
	int64_t t0 = now_ns(), t1;
	if (m == M_GET) {
		redisReply *r = redisCommand(rc, "GET %s", key);
		t1 = now_ns();
		if (!r || r->type != REDIS_REPLY_STRING || r->len != size)
			die("bare GET");
		freeReplyObject(r);
	} else if (m == M_READ) {
		struct ldr_file f;
		if (be->ops->read(be, hit, LDR_LOAD_WHOLE, 0, &f))
			die("read");
		ldr_hdr h;
		const char *why;
		if (ldr_entry_check(
			db, &f, "redis", hit->ns, hit->key, hit->klen, hit->ver,
			hit->vlen, LDR_CHECK_HASH, &h, &why) != LARDER_STATE_OK)
			die("check");
		ldr_file_free(&f);
		t1 = now_ns();
	} else if (m == M_SET) {
		redisReply *r = redisCommand(rc, "SET %s %b", key, p, size);
		t1 = now_ns();
		if (!r || r->type == REDIS_REPLY_ERROR)
			die("bare SET");
		freeReplyObject(r);
	} else {
		char ver[32];
		snprintf(ver, sizeof ver, "p%llu",
			 (unsigned long long)++serial);
		struct ldr_name n;
		name_of(&n, "pub", ver);
		t0 = now_ns();
		if (publish(&n, p, size) != 0)
			die("publish");
		t1 = now_ns();
		/* Untimed: keep the server's memory flat. */
		be->ops->remove(be, &n, NULL);
	}
	return (double)(t1 - t0);
}

/* ---------------------------------------------------------------------- */
/* Through the public API, the Redis backend hung on a handle              */

/* A handle of its own whose get, put and fill go to Redis. */
static larder *api_open(void)
{
	larder *h;
	larder_opts o = LARDER_OPTS_INIT;
	struct ldr_backend *b;
	if (larder_open(&h, dir, &o))
		die("larder_open");
	if (ldr_be_redis_ops.open(&b, h, the_uri))
		die("open the Redis backend");
	ldr_test_be_hang(h, b);
	return h;
}

/* A host's near store, made if missing, with Redis behind it as its
 * shared tier (the tier chain, docs/backends.md section 2). */
static larder *near_open(const char *name)
{
	char p[256];
	snprintf(p, sizeof p, "%s/%s", neardir, name);
	larder_opts o = LARDER_OPTS_INIT;
	o.flags = LARDER_OPEN_CREATE;
	o.shared = the_uri;
	larder *h;
	if (larder_open(&h, p, &o))
		die("open a near store");
	return h;
}

/* A hit and a light touch of its bytes (one per page), as bench_hit's. */
static double hit(larder *h, const char *key, size_t size)
{
	larder_entry *e;
	int64_t t0 = now_ns();
	if (larder_get(&e, h, "bench", key, strlen(key), "v", 1))
		die("hit");
	const volatile uint8_t *d = larder_entry_data(e);
	unsigned sum = 0;
	for (size_t i = 0; i < size; i += 4096)
		sum += d[i];
	(void)sum;
	larder_entry_release(e);
	return (double)(now_ns() - t0);
}

/* A near hit (near+Redis, the entry in near) against a plain local hit
 * (a store with no shared tier) of the same bytes. */
static void bench_near(uint64_t *rng, int quick)
{
	larder *w = near_open("writer"), *r = near_open("reader");
	size_t sizes[] = {4096, 1u << 20};
	for (int si = 0; si < 2; si++) {
		size_t size = sizes[si];
		uint8_t *p = malloc(size);
		if (!p)
			die("malloc");
		memset(p, 0x42, size);
		char key[32];
		snprintf(key, sizeof key, "near%zu", size);
		if (larder_put(db, "bench", key, strlen(key), "v", 1, p, size,
			       NULL) < 0 ||
		    larder_put(w, "bench", key, strlen(key), "v", 1, p, size,
			       NULL) < 0)
			die("put");
		hit(r, key, size); /* from Redis, copied into near */
		int rounds = quick ? 3 : 15, reps = si ? 200 : 2000;
		double *v[2];
		for (int m = 0; m < 2; m++)
			if (!(v[m] = malloc(sizeof(double) * (size_t)rounds)))
				die("malloc");
		for (int k = 0; k < rounds; k++) {
			int order[2];
			shuffle_order(order, 2, rng);
			for (int j = 0; j < 2; j++) {
				double sum = 0;
				for (int i = 0; i < reps; i++)
					sum +=
					    hit(order[j] ? db : r, key, size);
				v[order[j]][k] = sum / reps;
			}
		}
		double med[2];
		for (int m = 0; m < 2; m++) {
			qsort(v[m], (size_t)rounds, sizeof(double), cmp_double);
			med[m] = pct(v[m], rounds, 0.5);
			free(v[m]);
		}
		printf("%-8zu %-14s %12.2f %8.2f\n", size, "local hit",
		       med[1] / 1000, 1.0);
		printf("%-8zu %-14s %12.2f %8.2f\n", size, "near hit",
		       med[0] / 1000, med[0] / med[1]);
		free(p);
	}
	if (larder_counter(r, LARDER_CTR_SHARED_HITS) != 2)
		fprintf(stderr, "bench_redis: the near hits were not near\n");
	larder_close(w);
	larder_close(r);
}

struct load {
	const uint8_t *p;
	size_t len;
	int burn; /* rounds of work standing for an expensive load */
};

static int loader(larder_fill *f, void *payload)
{
	struct load *l = payload;
	uint8_t h[16];
	/* An expensive load's stand-in: work, not a sleep, so that 16 at
	 * once compete for the cores as real loads do. */
	for (int i = 0; i < l->burn; i++)
		ldr_xxh128(l->p, l->len, h);
	return larder_fill_write(f, l->p, l->len);
}

/* The fill part's methods: the target's baseline (one bare SET), what a
 * hand-made cache-aside does on a miss (a bare GET that misses, then the
 * SET: two round trips), and a fill through Redis alone and through
 * near+Redis. */
enum { F_SET, F_GETSET, F_FILL, F_NEAR, F_N };
static const char *const fname[F_N] = {"bare SET", "GET miss + SET", "fill",
				       "fill near+Redis"};

/* One timed fill of a new version through h; ns. */
static double fill_once(larder *h, struct load *l)
{
	char ver[32];
	snprintf(ver, sizeof ver, "f%ld-%llu", (long)getpid(),
		 (unsigned long long)++serial);
	larder_entry *e;
	int how;
	int64_t t0 = now_ns();
	if (larder_get_or_fill(&e, &how, h, "bench", "fill", 4, ver,
			       strlen(ver), NULL, loader, l, NULL) ||
	    how != LARDER_FILLED)
		die("fill");
	int64_t t1 = now_ns();
	larder_entry_release(e);
	/* Untimed: keep the server's memory flat. */
	larder_remove(h, "bench", "fill", 4, ver, strlen(ver));
	return (double)(t1 - t0);
}

/* A bare GET of a key that is not there, then the SET; ns. */
static double get_miss_set(const uint8_t *p, size_t size)
{
	char key[32];
	snprintf(key, sizeof key, "bare:%zu", size);
	int64_t t0 = now_ns();
	redisReply *r = redisCommand(rc, "GET bare:missing");
	if (!r || r->type != REDIS_REPLY_NIL)
		die("bare GET of a missing key");
	freeReplyObject(r);
	r = redisCommand(rc, "SET %s %b", key, p, size);
	int64_t t1 = now_ns();
	if (!r || r->type == REDIS_REPLY_ERROR)
		die("bare SET");
	freeReplyObject(r);
	return (double)(t1 - t0);
}

/* A fill (a miss, the lease, the load, the publish, the head, the
 * release) of a new version each time, through Redis alone (h) and
 * through near+Redis, against a bare SET of the same bytes (the target)
 * and against a GET miss + SET (cache-aside done by hand). */
static void bench_fill(larder *h, uint64_t *rng, int quick)
{
	larder *nh = near_open("filler");
	size_t sizes[] = {4096, 1u << 20};
	printf("%-8s %-16s %12s %8s %12s\n", "size", "method", "median us",
	       "/ SET", "/ GET+SET");
	for (int si = 0; si < 2; si++) {
		size_t size = sizes[si];
		uint8_t *p = malloc(size);
		if (!p)
			die("malloc");
		memset(p, 0x5a, size);
		int rounds = quick ? 3 : 9, reps = si ? 10 : 100;
		double *v[F_N];
		for (int m = 0; m < F_N; m++)
			if (!(v[m] = malloc(sizeof(double) * (size_t)rounds)))
				die("malloc");
		struct load l = {p, size, 0};
		for (int k = 0; k < rounds; k++) {
			int order[F_N];
			shuffle_order(order, F_N, rng);
			for (int j = 0; j < F_N; j++) {
				int m = order[j];
				double sum = 0;
				for (int i = 0; i < reps; i++)
					sum +=
					    m == F_SET
						? run(M_SET, p, size, NULL)
					    : m == F_GETSET
						? get_miss_set(p, size)
						: fill_once(
						      m == F_FILL ? h : nh, &l);
				v[m][k] = sum / reps;
			}
		}
		double med[F_N];
		for (int m = 0; m < F_N; m++) {
			qsort(v[m], (size_t)rounds, sizeof(double), cmp_double);
			med[m] = pct(v[m], rounds, 0.5);
			free(v[m]);
		}
		for (int m = 0; m < F_N; m++)
			printf("%-8zu %-16s %12.1f %8.2f %12.2f\n", size,
			       fname[m], med[m] / 1000, med[m] / med[F_SET],
			       med[m] / med[F_GETSET]);
		free(p);
	}
	larder_close(nh);
}

/* The put part's methods: the target's baseline (one bare SET of the
 * same bytes), and larder_put of a new entry through Redis alone and
 * through near+Redis. */
enum { P_SET, P_SETNEW, P_PUT, P_NEAR, P_N };
static const char *const pname[P_N] = {"bare SET", "bare SET new key", "put",
				       "put near+Redis"};

/* A bare SET of a key made for it, deleted untimed after, as a put's
 * entry is: what a new value costs the server (a key made and freed)
 * beside an overwrite; ns. */
static double set_new(const uint8_t *p, size_t size)
{
	char key[48];
	snprintf(key, sizeof key, "bare:new:%ld:%llu", (long)getpid(),
		 (unsigned long long)++serial);
	int64_t t0 = now_ns();
	redisReply *r = redisCommand(rc, "SET %s %b NX", key, p, size);
	int64_t t1 = now_ns();
	if (!r || r->type == REDIS_REPLY_ERROR)
		die("bare SET of a new key");
	freeReplyObject(r);
	if (!(r = redisCommand(rc, "DEL %s", key)))
		die("DEL");
	freeReplyObject(r);
	return (double)(t1 - t0);
}

/* One timed larder_put of a new version through h; ns. */
static double put_once(larder *h, const uint8_t *p, size_t size)
{
	char ver[32];
	snprintf(ver, sizeof ver, "u%ld-%llu", (long)getpid(),
		 (unsigned long long)++serial);
	int64_t t0 = now_ns();
	if (larder_put(h, "bench", "put", 3, ver, strlen(ver), p, size, NULL))
		die("put");
	int64_t t1 = now_ns();
	/* Untimed: keep the server's memory flat. */
	larder_remove(h, "bench", "put", 3, ver, strlen(ver));
	return (double)(t1 - t0);
}

/* larder_put of a new entry through the public API (Redis alone, and
 * near+Redis) against a bare SET of the same bytes: issue 14's "a fill
 * (put) <= 1.5x a bare SET", judged here, PASS or MISS per line. */
/* A round whose bare SET took less than this (ns) is one of cheap round
 * trips: the VM's moved between about 11 and 70 us, and a put's fixed
 * work weighs most against the cheap ones. */
#define CHEAP_RTT_NS 25000.0

/* The per-round ratios of put to bare SET (put[k] / set[k], each the
 * median operation of round k), split by the round's bare SET, printed
 * as medians. */
static void put_regimes(size_t size, const double *put, const double *set,
			int rounds)
{
	size_t n = rounds > 0 ? (size_t)rounds : 1;
	double *cheap = malloc(n * sizeof(double)),
	       *slow = malloc(n * sizeof(double)),
	       *cset = malloc(n * sizeof(double)),
	       *sset = malloc(n * sizeof(double));
	if (!cheap || !slow || !cset || !sset)
		die("malloc");
	int nc = 0, ns = 0;
	for (int k = 0; k < rounds; k++)
		if (set[k] < CHEAP_RTT_NS) {
			cset[nc] = set[k];
			cheap[nc++] = put[k] / set[k];
		} else {
			sset[ns] = set[k];
			slow[ns++] = put[k] / set[k];
		}
	qsort(cheap, (size_t)nc, sizeof(double), cmp_double);
	qsort(slow, (size_t)ns, sizeof(double), cmp_double);
	qsort(cset, (size_t)nc, sizeof(double), cmp_double);
	qsort(sset, (size_t)ns, sizeof(double), cmp_double);
	if (nc)
		printf("%-8zu put / SET in rounds of cheap round trips (SET < "
		       "%.0f us): %d, SET median %.1f us, ratio median %.2f "
		       "(%.2f-%.2f) %s\n",
		       size, CHEAP_RTT_NS / 1000, nc, pct(cset, nc, 0.5) / 1000,
		       pct(cheap, nc, 0.5), cheap[0], cheap[nc - 1],
		       pct(cheap, nc, 0.5) <= 1.5 ? "PASS" : "MISS");
	if (ns)
		printf("%-8zu put / SET in the other rounds: %d, SET median "
		       "%.1f us, ratio median %.2f (%.2f-%.2f)\n",
		       size, ns, pct(sset, ns, 0.5) / 1000, pct(slow, ns, 0.5),
		       slow[0], slow[ns - 1]);
	free(cheap);
	free(slow);
	free(cset);
	free(sset);
}

static void bench_put(larder *h, uint64_t *rng, int quick, size_t only,
		      int rounds_asked, int redis_only)
{
	larder *nh = redis_only ? NULL : near_open("putter");
	size_t sizes[] = {4096, 1u << 20, 64u << 20};
	int rounds_of[] = {quick ? 3 : 15, quick ? 3 : 9, quick ? 2 : 5};
	int reps_of[] = {quick ? 20 : 200, quick ? 3 : 10, 1};
	printf("%-8s %-16s %12s %8s %s\n", "size", "method", "median us",
	       "/ SET", "<= 1.5x");
	for (int si = 0; si < 3; si++) {
		size_t size = sizes[si];
		if (only && size != only)
			continue;
		uint8_t *p = malloc(size);
		if (!p)
			die("malloc");
		for (size_t i = 0; i < size; i++)
			p[i] = (uint8_t)(i * 2654435761u >> 13);
		int rounds = rounds_asked ? rounds_asked : rounds_of[si];
		int reps = reps_of[si], nm = redis_only ? P_NEAR : P_N;
		/* v: each round's mean; vmed: its median (a preempted
		 * operation on a busy machine moves a mean, not a median);
		 * one: a round's operations. */
		double *v[P_N], *vmed[P_N], *one[P_N];
		for (int m = 0; m < P_N; m++)
			if (!(v[m] = calloc((size_t)rounds, sizeof(double))) ||
			    !(vmed[m] =
				  calloc((size_t)rounds, sizeof(double))) ||
			    !(one[m] = calloc((size_t)reps, sizeof(double))))
				die("malloc");
		/* The methods take turns within a round, one operation
		 * each in a fresh order: a round trip on this VM moves
		 * between about 11 and 70 us from one second to the next,
		 * and methods timed in blocks of their own drew different
		 * ones. */
		for (int k = 0; k < rounds; k++) {
			double sum[P_N] = {0};
			for (int i = 0; i < reps; i++) {
				int order[P_N];
				shuffle_order(order, nm, rng);
				for (int j = 0; j < nm; j++) {
					int m = order[j];
					double t =
					    m == P_SET
						? run(M_SET, p, size, NULL)
					    : m == P_SETNEW
						? set_new(p, size)
						: put_once(m == P_PUT ? h : nh,
							   p, size);
					sum[m] += t;
					one[m][i] = t;
				}
			}
			for (int m = 0; m < P_N; m++) {
				v[m][k] = sum[m] / reps;
				qsort(one[m], (size_t)reps, sizeof(double),
				      cmp_double);
				vmed[m][k] = pct(one[m], reps, 0.5);
			}
		}
		put_regimes(size, vmed[P_PUT], vmed[P_SET], rounds);
		double med[P_N];
		for (int m = 0; m < P_N; m++) {
			qsort(v[m], (size_t)rounds, sizeof(double), cmp_double);
			med[m] = pct(v[m], rounds, 0.5);
			free(v[m]);
			free(vmed[m]);
			free(one[m]);
		}
		for (int m = 0; m < nm; m++) {
			double r = med[m] / med[P_SET];
			printf("%-8zu %-16s %12.1f %8.2f %s\n", size, pname[m],
			       med[m] / 1000, r,
			       m <= P_SETNEW ? ""
			       : r <= 1.5    ? "PASS"
					     : "MISS");
		}
		free(p);
	}
	if (nh)
		larder_close(nh);
}

/* 100 keys of 4 KiB: larder_get_many against 100 larder_get calls. */
static void bench_many(larder *h, uint64_t *rng, int quick)
{
	enum { K = 100 };
	static char kb[K][16];
	const void *keys[K], *vers[K], *data[K];
	size_t klens[K], vlens[K], lens[K];
	static uint8_t p[4096];
	memset(p, 0x33, sizeof p);
	int rcs[K];
	for (int i = 0; i < K; i++) {
		snprintf(kb[i], sizeof kb[i], "many%d", i);
		keys[i] = kb[i];
		klens[i] = strlen(kb[i]);
		vers[i] = "v";
		vlens[i] = 1;
		data[i] = p;
		lens[i] = sizeof p;
	}
	if (larder_put_many(h, "bench", K, keys, klens, vers, vlens, data, lens,
			    NULL, rcs))
		die("put_many");
	int rounds = quick ? 3 : 15;
	double *v[2];
	for (int m = 0; m < 2; m++)
		if (!(v[m] = malloc(sizeof(double) * (size_t)rounds)))
			die("malloc");
	larder_entry *out[K];
	for (int k = 0; k < rounds; k++) {
		int order[2];
		shuffle_order(order, 2, rng);
		for (int j = 0; j < 2; j++) {
			int64_t t0 = now_ns();
			if (order[j]) {
				for (int i = 0; i < K; i++)
					if (larder_get(&out[i], h, "bench",
						       keys[i], klens[i], "v",
						       1))
						die("get");
			} else if (larder_get_many(h, "bench", K, keys, klens,
						   vers, vlens, out, rcs)) {
				die("get_many");
			}
			v[order[j]][k] = (double)(now_ns() - t0);
			for (int i = 0; i < K; i++) {
				if (!order[j] && rcs[i])
					die("get_many: a miss");
				larder_entry_release(out[i]);
			}
		}
	}
	double med[2];
	for (int m = 0; m < 2; m++) {
		qsort(v[m], (size_t)rounds, sizeof(double), cmp_double);
		med[m] = pct(v[m], rounds, 0.5);
		free(v[m]);
	}
	printf("%-8s %-14s %12.1f %8.2f\n", "100x4K", "100 gets", med[1] / 1000,
	       1.0);
	printf("%-8s %-14s %12.1f %8.2f\n", "100x4K", "get_many", med[0] / 1000,
	       med[0] / med[1]);

	/* 100 new entries: larder_put_many against 100 larder_put. */
	char vb[K][32];
	for (int m = 0; m < 2; m++)
		if (!(v[m] = malloc(sizeof(double) * (size_t)rounds)))
			die("malloc");
	for (int k = 0; k < rounds; k++) {
		int order[2];
		shuffle_order(order, 2, rng);
		for (int j = 0; j < 2; j++) {
			for (int i = 0; i < K; i++) {
				snprintf(vb[i], sizeof vb[i], "p%ld-%llu",
					 (long)getpid(),
					 (unsigned long long)++serial);
				vers[i] = vb[i];
				vlens[i] = strlen(vb[i]);
			}
			int64_t t0 = now_ns();
			if (order[j]) {
				for (int i = 0; i < K; i++)
					if (larder_put(h, "bench", keys[i],
						       klens[i], vers[i],
						       vlens[i], p, sizeof p,
						       NULL))
						die("put");
			} else if (larder_put_many(h, "bench", K, keys, klens,
						   vers, vlens, data, lens,
						   NULL, rcs)) {
				die("put_many");
			}
			v[order[j]][k] = (double)(now_ns() - t0);
			for (int i = 0; i < K; i++) {
				if (!order[j] && rcs[i])
					die("put_many: a failure");
				/* Untimed: keep the server's memory flat. */
				larder_remove(h, "bench", keys[i], klens[i],
					      vers[i], vlens[i]);
			}
		}
	}
	for (int m = 0; m < 2; m++) {
		qsort(v[m], (size_t)rounds, sizeof(double), cmp_double);
		med[m] = pct(v[m], rounds, 0.5);
		free(v[m]);
	}
	printf("%-8s %-14s %12.1f %8.2f\n", "100x4K", "100 puts", med[1] / 1000,
	       1.0);
	printf("%-8s %-14s %12.1f %8.2f\n", "100x4K", "put_many", med[0] / 1000,
	       med[0] / med[1]);
}

/* 16 processes want one new key at once. Coordinated: each calls
 * larder_get_or_fill through Redis, one loads, the rest wait for its
 * publish. Uncoordinated: each loads on its own. The wall time from the
 * start signal until the last has its bytes. */
static double herd(int coordinated, const char *ver, struct load *l)
{
	enum { H = 16 };
	int go[2];
	pid_t kids[H];
	if (pipe(go))
		die("pipe");
	fflush(stdout);
	for (int i = 0; i < H; i++) {
		if ((kids[i] = fork()) < 0)
			die("fork");
		if (kids[i] == 0) {
			close(go[1]);
			char name[64];
			snprintf(name, sizeof name, "herd-%s-%d", ver, i);
			larder *h = coordinated ? near_open(name) : NULL;
			char c;
			if (read(go[0], &c, 1) != 0)
				_exit(3);
			if (!coordinated) {
				uint8_t x[16];
				for (int r = 0; r < l->burn; r++)
					ldr_xxh128(l->p, l->len, x);
				_exit(0);
			}
			larder_entry *e;
			int how;
			int frc = larder_get_or_fill(
			    &e, &how, h, "bench", "herd", 4, ver, strlen(ver),
			    NULL, loader, l, NULL);
			_exit(frc ? 1 : how == LARDER_FILLED ? 10 : 20 + how);
		}
	}
	close(go[0]);
	/* Every child opened its handle before the start. */
	usleep(300 * 1000);
	int64_t t0 = now_ns();
	close(go[1]);
	int filled = 0;
	for (int i = 0; i < H; i++) {
		int st;
		if (waitpid(kids[i], &st, 0) < 0 || !WIFEXITED(st) ||
		    WEXITSTATUS(st) == 1 || WEXITSTATUS(st) > 30)
			die("a herd member failed");
		filled += WEXITSTATUS(st) == 10;
	}
	double t = (double)(now_ns() - t0);
	if (coordinated && filled != 1)
		fprintf(stderr, "bench_redis: %d loads in a herd, not one\n",
			filled);
	return t;
}

static void bench_herd(uint64_t *rng, int quick)
{
	size_t size = 1u << 20;
	uint8_t *p = malloc(size);
	if (!p)
		die("malloc");
	memset(p, 0x77, size);
	/* About 50 ms of work per load on one core. */
	struct load l = {p, size, 500};
	int rounds = quick ? 2 : 5;
	double *v[2];
	for (int m = 0; m < 2; m++)
		if (!(v[m] = malloc(sizeof(double) * (size_t)rounds)))
			die("malloc");
	for (int k = 0; k < rounds; k++) {
		int order[2];
		shuffle_order(order, 2, rng);
		for (int j = 0; j < 2; j++) {
			char ver[32];
			/* This run's own: a server kept from an earlier
			 * run may hold its versions. */
			snprintf(ver, sizeof ver, "h%ld-%llu", (long)getpid(),
				 (unsigned long long)++serial);
			v[order[j]][k] = herd(!order[j], ver, &l);
		}
	}
	double med[2];
	for (int m = 0; m < 2; m++) {
		qsort(v[m], (size_t)rounds, sizeof(double), cmp_double);
		med[m] = pct(v[m], rounds, 0.5);
		free(v[m]);
	}
	printf("%-8s %-14s %12.1f %8.2f\n", "herd16", "16 loads", med[1] / 1000,
	       1.0);
	printf("%-8s %-14s %12.1f %8.2f\n", "herd16", "one load+wait",
	       med[0] / 1000, med[0] / med[1]);
	free(p);
}

int main(int argc, char **argv)
{
	int quick = 0;
	size_t only = 0; /* --only SIZE: one size, for a profile */
	/* --part put|fill|many|herd|near: one part of the API's, alone */
	const char *part = NULL;
	/* --put-loop N: N 4 KiB puts through Redis alone, untimed, nothing
	 * else: a loop to run under strace -c or perf record. */
	long put_loop = 0;
	/* --rounds N: the put part's rounds (more of them, for the rounds
	 * of cheap round trips to be many); --redis-only: its near+Redis
	 * method left out (a near put's fdatasync, a millisecond). */
	int rounds_asked = 0, redis_only = 0;
	for (int i = 1; i < argc; i++)
		if (strcmp(argv[i], "--quick") == 0)
			quick = 1;
		else if (strcmp(argv[i], "--rounds") == 0 && i + 1 < argc)
			rounds_asked = atoi(argv[++i]);
		else if (strcmp(argv[i], "--redis-only") == 0)
			redis_only = 1;
		else if (strcmp(argv[i], "--put-loop") == 0 && i + 1 < argc)
			put_loop = strtol(argv[++i], NULL, 10);
		else if (strcmp(argv[i], "--only") == 0 && i + 1 < argc)
			only = (size_t)strtoull(argv[++i], NULL, 0);
		else if (strcmp(argv[i], "--part") == 0 && i + 1 < argc)
			part = argv[++i];
	const char *uri = getenv("REDIS_URI"), *port = getenv("REDIS_PORT"),
		   *pw = getenv("REDIS_PASSWORD");
	the_uri = uri;
	if (!uri || !port || !pw) {
		fprintf(stderr, "bench_redis: run it through "
				"bench/redis_bench.sh\n");
		return 2;
	}
	if (!mkdtemp(dir) || !mkdtemp(neardir))
		die("mkdtemp");
	atexit(cleanup);
	larder_opts o = LARDER_OPTS_INIT;
	o.flags = LARDER_OPEN_CREATE;
	if (larder_open(&db, dir, &o))
		die("larder_open");
	if (ldr_be_redis_ops.open(&be, db, uri))
		die("open the Redis backend");
	struct timeval tv = {10, 0};
	rc = redisConnectWithTimeout("127.0.0.1", atoi(port), tv);
	if (!rc || rc->err)
		die("connect");
	redisSetTimeout(rc, tv);
	redisReply *r = redisCommand(rc, "AUTH %s", pw);
	if (!r || r->type == REDIS_REPLY_ERROR)
		die("AUTH");
	freeReplyObject(r);
	if (put_loop > 0) {
		larder *h = api_open();
		static uint8_t p[4096];
		memset(p, 0x5a, sizeof p);
		long me = (long)getpid(); /* one system call, not one a put */
		for (long i = 0; i < put_loop; i++) {
			char ver[48];
			snprintf(ver, sizeof ver, "loop%ld-%ld", me, i);
			int prc = larder_put(h, "bench", "loop", 4, ver,
					     strlen(ver), p, sizeof p, NULL);
			if (prc) {
				fprintf(stderr, "bench_redis: put: %s: %s\n",
					larder_strerror(prc), larder_errmsg(h));
				return 1;
			}
		}
		larder_close(h);
		return 0;
	}

	size_t sizes[] = {4096, 1u << 20, 64u << 20};
	int rounds_of[] = {quick ? 3 : 15, quick ? 3 : 9, quick ? 2 : 5};
	int reps_of[] = {quick ? 20 : 300, quick ? 3 : 20, 1};
	printf("%-8s %-14s %12s %8s\n", "size", "method", "median us", "ratio");
	uint64_t rng = 0x9e3779b97f4a7c15ull;
	for (int si = 0; si < 3; si++) {
		size_t size = sizes[si];
		if ((only && size != only) || part)
			continue;
		uint8_t *p = malloc(size);
		if (!p)
			die("malloc");
		for (size_t i = 0; i < size; i++)
			p[i] = (uint8_t)(i * 2654435761u >> 13);
		struct ldr_name hit;
		char ver[32];
		snprintf(ver, sizeof ver, "hit%zu", size);
		name_of(&hit, "hit", ver);
		if (publish(&hit, p, size) < 0)
			die("publish the hit");
		run(M_SET, p, size, &hit); /* the bare key exists */
		int rounds = rounds_of[si], reps = reps_of[si];
		double *v[M_N];
		for (int m = 0; m < M_N; m++)
			if (!(v[m] = malloc(sizeof(double) * (size_t)rounds)))
				die("malloc");
		for (int k = 0; k < rounds; k++) {
			int order[M_N];
			shuffle_order(order, M_N, &rng);
			for (int j = 0; j < M_N; j++) {
				int m = order[j];
				double sum = 0;
				for (int i = 0; i < reps; i++)
					sum += run(m, p, size, &hit);
				v[m][k] = sum / reps;
			}
		}
		double med[M_N];
		for (int m = 0; m < M_N; m++) {
			qsort(v[m], (size_t)rounds, sizeof(double), cmp_double);
			med[m] = pct(v[m], rounds, 0.5);
		}
		for (int m = 0; m < M_N; m++) {
			double base = m <= M_READ ? med[M_GET] : med[M_SET];
			printf("%-8zu %-14s %12.1f %8.2f\n", size, mname[m],
			       med[m] / 1000, med[m] / base);
			free(v[m]);
		}
		be->ops->remove(be, &hit, NULL);
		free(p);
	}
	if (!part || !strcmp(part, "put")) {
		larder *h = api_open();
		bench_put(h, &rng, quick, only, rounds_asked, redis_only);
		larder_close(h);
	}
	if (!only) {
		larder *h = api_open();
		if (!part || !strcmp(part, "fill"))
			bench_fill(h, &rng, quick);
		if (!part || !strcmp(part, "many"))
			bench_many(h, &rng, quick);
		larder_close(h);
		if (!part || !strcmp(part, "herd"))
			bench_herd(&rng, quick);
		if (!part || !strcmp(part, "near"))
			bench_near(&rng, quick);
	}
	redisFree(rc);
	be->ops->close(be);
	larder_close(db);
	return 0;
}
