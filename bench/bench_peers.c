/*
 * bench_peers.c — a warm hit through larder beside the systems a user
 * would pick instead, the C side of `make bench-peers`
 * (bench/peers/run.sh starts the servers and draws the table and chart).
 *
 *   bench_peers [--quick] [--redis PORT] [--memcached PORT] DIR
 *
 * The same payloads for every system: 4 KiB x 1000 keys, 1 MiB x 8 keys,
 * 256 MiB x 1 key, written once under DIR, read once to warm, then timed
 * in rounds, each round running every method's next batch in a fresh
 * random order, so that the machine's noise falls on all of them alike.
 * One iteration of each takes one key's payload and reads every 4096th
 * byte of it (and its last):
 *
 *   larder-first   larder_get(known version) on a handle that has not
 *                  read this key before (a pool of handles, opened
 *                  beforehand), + release
 *   larder-repeat  the same key again and again through one handle
 *   larder-head    larder_get without a version (the head hint), on a
 *                  handle that has not read this key before
 *   read           open + read into a preallocated buffer + close
 *   mmap           open + mmap + munmap + close
 *   lmdb           read-only transaction + mdb_get + abort
 *   sqlite         a prepared SELECT of the blob by key, step, reset
 *   redis          GET over TCP on 127.0.0.1 into a preallocated buffer
 *   memcached      get over TCP on 127.0.0.1 into a preallocated buffer
 *
 * It prints tab-separated lines for bench/peers/report.py:
 *   hit   SIZE METHOD N P50_US P99_US
 *   fill  METHOD N P50_US P99_US         (put of 1 MiB, a new key each)
 *   fault METHOD N P50_US P99_US         (1 MiB: mmap + touch, read)
 * --quick runs a few iterations and leaves 256 MiB out: a smoke test, not
 * a measurement.
 * The exit status is non-zero only if something broke.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <lmdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "larder.h"

#define KiB ((size_t)1024)
#define MiB (1024 * KiB)
#define NS "bench"
#define VER "v1"

enum method {
	M_FIRST,
	M_REPEAT,
	M_HEAD,
	M_READ,
	M_MMAP,
	M_LMDB,
	M_SQLITE,
	M_REDIS,
	M_MEMCACHED,
	M_COUNT
};
static const char *const method_name[M_COUNT] = {
    "larder-first", "larder-repeat", "larder-head", "read",	"mmap",
    "lmdb",	    "sqlite",	     "redis",	    "memcached"};

struct bsize {
	size_t size;
	const char *label;
	int keys;
	int iters, quick_iters; /* per method */
};
static const struct bsize sizes[] = {
    {4 * KiB, "4KiB", 1000, 4000, 40},
    {1 * MiB, "1MiB", 8, 400, 8},
    {256 * MiB, "256MiB", 1, 12, 2},
};
#define NSIZES (sizeof sizes / sizeof sizes[0])
#define ROUNDS 10

static const char *dir;
static int quick;
static int redis_port, memcached_port;
static volatile uint64_t sink; /* keeps the touches from being optimised out */

/* What one size's methods share while it is measured. */
struct run {
	const struct bsize *bs;
	int iters;
	unsigned char
	    *buf; /* the read buffer, faulted in; also the reply one */
	size_t bufcap;
	larder *db;    /* repeat hits */
	larder **pool; /* fresh handles: first hits, then head lookups */
	int pool_n;    /* handles in each half of pool */
	MDB_env *env;
	MDB_dbi dbi;
	sqlite3 *sql;
	sqlite3_stmt *sel;
	int redis, memcached; /* connected sockets, -1 = not run */
};

static void die(const char *fmt, ...)
    __attribute__((noreturn, format(printf, 1, 2)));

static void die(const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "bench_peers: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

static double now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static void *xmalloc(size_t n)
{
	void *p = malloc(n);
	if (!p)
		die("malloc %zu bytes failed", n);
	return p;
}

/* Every page of a payload, as a reader that uses it would. */
static void touch(const void *p, size_t n)
{
	const unsigned char *c = p;
	uint64_t s = 0;
	for (size_t i = 0; i < n; i += 4096)
		s += c[i];
	if (n)
		s += c[n - 1];
	sink += s;
}

static int key_of(char *out, size_t cap, const struct bsize *bs, int k)
{
	return snprintf(out, cap, "%s-%04d", bs->label, k);
}

/* Different bytes for every key, the same for every system. */
static void fill_payload(unsigned char *p, size_t n, unsigned seed)
{
	uint64_t x = 0x9e3779b97f4a7c15ull * (seed + 1);
	for (size_t i = 0; i + 8 <= n; i += 8) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		memcpy(p + i, &x, 8);
	}
}

static void write_all(int fd, const void *p, size_t n, const char *what)
{
	const char *c = p;
	while (n) {
		ssize_t w = write(fd, c, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			die("write to %s: %s", what, strerror(errno));
		c += w;
		n -= (size_t)w;
	}
}

/* ---- servers: the two text protocols, just enough of them -------- */

static int tcp_connect(int port, const char *what)
{
	struct sockaddr_in a = {.sin_family = AF_INET,
				.sin_port = htons((uint16_t)port),
				.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	/* The script starts the server just before: it may still be
	 * binding. Up to 10 s, then give up. */
	for (int tries = 0;; tries++) {
		int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0)
			die("socket for %s: %s", what, strerror(errno));
		if (connect(fd, (struct sockaddr *)&a, sizeof a) == 0) {
			int one = 1;
			if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one,
				       sizeof one) < 0)
				die("TCP_NODELAY for %s: %s", what,
				    strerror(errno));
			return fd;
		}
		int e = errno;
		close(fd);
		if (tries == 100)
			die("connect to %s on 127.0.0.1:%d: %s", what, port,
			    strerror(e));
		struct timespec ts = {0, 100 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
}

/* Reads a reply into buf until it holds a first line and, after it, the
 * number of bytes that line announces (parsed by `need`) plus `tail`.
 * Returns where the payload starts; *len its length. */
static unsigned char *read_reply(int fd, unsigned char *buf, size_t cap,
				 size_t tail, const char *what, size_t *len)
{
	size_t have = 0, hdr = 0, want = 0;
	for (;;) {
		ssize_t r = read(fd, buf + have, cap - have);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			die("read from %s: %s", what,
			    r ? strerror(errno) : "connection closed");
		have += (size_t)r;
		if (!hdr) {
			unsigned char *nl = memchr(buf, '\n', have);
			if (!nl) {
				if (have == cap)
					die("%s: reply line too long", what);
				continue;
			}
			hdr = (size_t)(nl - buf) + 1;
			/* Redis "$N\r\n"; memcached "VALUE key flags N\r\n" */
			const char *sp = (const char *)nl;
			while (sp > (const char *)buf && sp[-1] != ' ' &&
			       sp[-1] != '$')
				sp--;
			if (buf[0] != '$' && memcmp(buf, "VALUE ", 6) != 0)
				die("%s: unexpected reply %.*s", what,
				    (int)(hdr < 60 ? hdr : 60), buf);
			*len = strtoull(sp, NULL, 10);
			want = hdr + *len + tail;
			if (want > cap)
				die("%s: reply of %zu bytes, buffer %zu", what,
				    want, cap);
		}
		if (have >= want)
			break;
	}
	if (have != want)
		die("%s: %zu bytes past the reply", what, have - want);
	return buf + hdr;
}

static void redis_get(struct run *r, const char *key)
{
	char req[128];
	size_t kl = strlen(key), len;
	int n = snprintf(req, sizeof req, "*2\r\n$3\r\nGET\r\n$%zu\r\n%s\r\n",
			 kl, key);
	write_all(r->redis, req, (size_t)n, "redis");
	unsigned char *p =
	    read_reply(r->redis, r->buf, r->bufcap, 2, "redis", &len);
	touch(p, len);
}

static void memcached_get(struct run *r, const char *key)
{
	char req[128];
	size_t len;
	int n = snprintf(req, sizeof req, "get %s\r\n", key);
	write_all(r->memcached, req, (size_t)n, "memcached");
	/* after the data: "\r\nEND\r\n" */
	unsigned char *p =
	    read_reply(r->memcached, r->buf, r->bufcap, 7, "memcached", &len);
	touch(p, len);
}

/* Reads one short status line ("+OK", "STORED") and checks it. */
static void expect_line(int fd, const char *ok, const char *what)
{
	char line[256];
	size_t have = 0;
	while (!memchr(line, '\n', have)) {
		ssize_t r = read(fd, line + have, sizeof line - 1 - have);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0 || have + (size_t)r >= sizeof line - 1)
			die("%s: no status line after a store", what);
		have += (size_t)r;
	}
	line[have] = 0;
	if (strncmp(line, ok, strlen(ok)) != 0)
		die("%s: store answered %s", what, line);
}

static void redis_set(int fd, const char *key, const void *p, size_t n)
{
	char hdr[160];
	int h = snprintf(hdr, sizeof hdr,
			 "*3\r\n$3\r\nSET\r\n$%zu\r\n%s\r\n$%zu\r\n",
			 strlen(key), key, n);
	write_all(fd, hdr, (size_t)h, "redis");
	write_all(fd, p, n, "redis");
	write_all(fd, "\r\n", 2, "redis");
	expect_line(fd, "+OK", "redis");
}

static void memcached_set(int fd, const char *key, const void *p, size_t n)
{
	char hdr[160];
	int h = snprintf(hdr, sizeof hdr, "set %s 0 0 %zu\r\n", key, n);
	write_all(fd, hdr, (size_t)h, "memcached");
	write_all(fd, p, n, "memcached");
	write_all(fd, "\r\n", 2, "memcached");
	expect_line(fd, "STORED", "memcached");
}

/* ---- the methods --------------------------------------------------- */

static void larder_hit(larder *db, const char *key, int versioned)
{
	larder_entry *e;
	int rc = larder_get(&e, db, NS, key, strlen(key),
			    versioned ? VER : NULL, versioned ? 2 : 0);
	if (rc != 0)
		die("larder_get %s: %s", key, larder_errmsg(db));
	touch(larder_entry_data(e), larder_entry_size(e));
	larder_entry_release(e);
}

static void path_of(char *out, size_t cap, const char *key)
{
	snprintf(out, cap, "%s/raw/%s", dir, key);
}

static void raw_read(struct run *r, const char *key)
{
	char path[4096];
	path_of(path, sizeof path, key);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		die("open %s: %s", path, strerror(errno));
	size_t got = 0;
	for (;;) {
		ssize_t n = read(fd, r->buf + got, r->bs->size - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			die("read %s: %s", path, strerror(errno));
		if (n == 0)
			break;
		got += (size_t)n;
	}
	if (got != r->bs->size)
		die("read %s: %zu bytes, expected %zu", path, got, r->bs->size);
	touch(r->buf, got);
	if (close(fd) < 0)
		die("close %s: %s", path, strerror(errno));
}

static void raw_mmap(const char *key, size_t size)
{
	char path[4096];
	path_of(path, sizeof path, key);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		die("open %s: %s", path, strerror(errno));
	void *m = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
	if (m == MAP_FAILED)
		die("mmap %s: %s", path, strerror(errno));
	touch(m, size);
	if (munmap(m, size) < 0 || close(fd) < 0)
		die("munmap/close %s: %s", path, strerror(errno));
}

static void lmdb_get(struct run *r, const char *key)
{
	MDB_txn *txn;
	MDB_val k = {strlen(key), (void *)key}, v;
	int rc = mdb_txn_begin(r->env, NULL, MDB_RDONLY, &txn);
	if (rc)
		die("mdb_txn_begin: %s", mdb_strerror(rc));
	rc = mdb_get(txn, r->dbi, &k, &v);
	if (rc)
		die("mdb_get %s: %s", key, mdb_strerror(rc));
	touch(v.mv_data, v.mv_size);
	mdb_txn_abort(txn);
}

static void sqlite_get(struct run *r, const char *key)
{
	sqlite3_stmt *s = r->sel;
	if (sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_step(s) != SQLITE_ROW)
		die("sqlite select %s: %s", key, sqlite3_errmsg(r->sql));
	const void *p = sqlite3_column_blob(s, 0);
	size_t n = (size_t)sqlite3_column_bytes(s, 0);
	if (n != r->bs->size)
		die("sqlite select %s: %zu bytes", key, n);
	touch(p, n);
	if (sqlite3_reset(s) != SQLITE_OK)
		die("sqlite reset: %s", sqlite3_errmsg(r->sql));
}

/* Iterations a method can make: a first hit needs a handle that has not
 * seen the key, so those are bounded by the pool. */
static int method_iters(const struct run *r, int m)
{
	if (m == M_FIRST || m == M_HEAD) {
		int cap = r->pool_n * r->bs->keys;
		return r->iters < cap ? r->iters : cap;
	}
	if ((m == M_REDIS && r->redis < 0) ||
	    (m == M_MEMCACHED && r->memcached < 0))
		return 0;
	return r->iters;
}

static void one(struct run *r, int m, int i)
{
	char key[64];
	int k = i % r->bs->keys;
	key_of(key, sizeof key, r->bs, k);
	switch (m) {
	case M_FIRST:
		larder_hit(r->pool[i / r->bs->keys], key, 1);
		break;
	case M_HEAD:
		larder_hit(r->pool[r->pool_n + i / r->bs->keys], key, 0);
		break;
	case M_REPEAT:
		larder_hit(r->db, key, 1);
		break;
	case M_READ:
		raw_read(r, key);
		break;
	case M_MMAP:
		raw_mmap(key, r->bs->size);
		break;
	case M_LMDB:
		lmdb_get(r, key);
		break;
	case M_SQLITE:
		sqlite_get(r, key);
		break;
	case M_REDIS:
		redis_get(r, key);
		break;
	case M_MEMCACHED:
		memcached_get(r, key);
		break;
	}
}

/* The rank rounded as bench/benchlib.py rounds it: these lines share one
 * table with peers.py's. */
static double rounded_pct(const double *v, int n, double p)
{
	int i = (int)(p * (n - 1) + 0.5);
	return v[i];
}

static void print_stats(const char *kind, const char *size, const char *name,
			double *t, int n)
{
	qsort(t, (size_t)n, sizeof *t, cmp_double);
	printf("%s\t%s%s%s\t%d\t%.3f\t%.3f\n", kind, size ? size : "",
	       size ? "\t" : "", name, n, rounded_pct(t, n, 0.5),
	       rounded_pct(t, n, 0.99));
	fflush(stdout);
}

/* ---- setting up one size ------------------------------------------ */

static larder *open_store(int fsync_policy)
{
	char path[4096];
	snprintf(path, sizeof path, "%s/store", dir);
	larder_opts o;
	larder_opts_init(&o);
	o.flags = LARDER_OPEN_CREATE;
	o.fsync = fsync_policy;
	larder *db;
	if (larder_open(&db, path, &o) != 0)
		die("larder_open %s: %s", path, larder_errmsg(NULL));
	return db;
}

static void setup(struct run *r, const struct bsize *bs)
{
	char key[64], path[4096];
	unsigned char *p = xmalloc(bs->size);
	int rc;

	r->bs = bs;
	r->iters = quick ? bs->quick_iters : bs->iters;
	/* The reply buffers hold a header line and trailer too. */
	r->bufcap = bs->size + 4096;
	r->buf = xmalloc(r->bufcap);
	memset(r->buf, 1, r->bufcap);
	r->db = open_store(0);

	for (int k = 0; k < bs->keys; k++) {
		key_of(key, sizeof key, bs, k);
		fill_payload(p, bs->size, (unsigned)(bs->size + (size_t)k));
		rc = larder_put(r->db, NS, key, strlen(key), VER, 2, p,
				bs->size, NULL);
		if (rc != 0)
			die("larder_put %s: %s", key, larder_errmsg(r->db));

		path_of(path, sizeof path, key);
		int fd =
		    open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (fd < 0)
			die("open %s: %s", path, strerror(errno));
		write_all(fd, p, bs->size, path);
		if (close(fd) < 0)
			die("close %s: %s", path, strerror(errno));

		MDB_txn *txn;
		MDB_val mk = {strlen(key), key}, mv = {bs->size, p};
		if ((rc = mdb_txn_begin(r->env, NULL, 0, &txn)) ||
		    (rc = mdb_put(txn, r->dbi, &mk, &mv, 0)) ||
		    (rc = mdb_txn_commit(txn)))
			die("lmdb put %s: %s", key, mdb_strerror(rc));

		sqlite3_stmt *ins;
		if (sqlite3_prepare_v2(r->sql,
				       "INSERT OR REPLACE INTO t VALUES (?, ?)",
				       -1, &ins, NULL) != SQLITE_OK ||
		    sqlite3_bind_text(ins, 1, key, -1, SQLITE_STATIC) ||
		    sqlite3_bind_blob64(ins, 2, p, bs->size, SQLITE_STATIC) ||
		    sqlite3_step(ins) != SQLITE_DONE)
			die("sqlite insert %s: %s", key,
			    sqlite3_errmsg(r->sql));
		sqlite3_finalize(ins);

		if (r->redis >= 0)
			redis_set(r->redis, key, p, bs->size);
		if (r->memcached >= 0)
			memcached_set(r->memcached, key, p, bs->size);
	}
	free(p);
	if (sqlite3_prepare_v2(r->sql, "SELECT v FROM t WHERE k = ?", -1,
			       &r->sel, NULL) != SQLITE_OK)
		die("sqlite prepare: %s", sqlite3_errmsg(r->sql));
	/* Everything written reaches the disk now, not while timing. */
	sync();

	r->pool_n = (r->iters + bs->keys - 1) / bs->keys;
	r->pool = xmalloc(2 * (size_t)r->pool_n * sizeof *r->pool);
	for (int h = 0; h < 2 * r->pool_n; h++)
		r->pool[h] = open_store(0);
}

static void teardown(struct run *r)
{
	for (int h = 0; h < 2 * r->pool_n; h++)
		larder_close(r->pool[h]);
	free(r->pool);
	larder_close(r->db);
	sqlite3_finalize(r->sel);
	free(r->buf);
}

static void shuffle(int *v, int n)
{
	for (int i = n - 1; i > 0; i--) {
		int j = rand() % (i + 1), t = v[i];
		v[i] = v[j];
		v[j] = t;
	}
}

static void measure(struct run *r)
{
	double *t[M_COUNT];
	int n[M_COUNT], done[M_COUNT] = {0}, order[M_COUNT];

	for (int m = 0; m < M_COUNT; m++) {
		n[m] = method_iters(r, m);
		t[m] = xmalloc(((size_t)n[m] + 1) * sizeof(double));
		order[m] = m;
	}
	/* Warm: every key once through every method that may repeat it
	 * (first hits and head lookups warm on the repeat handle). */
	for (int m = 0; m < M_COUNT; m++) {
		if (!n[m])
			continue;
		int wm = (m == M_FIRST || m == M_HEAD) ? M_REPEAT : m;
		for (int k = 0; k < r->bs->keys; k++)
			one(r, wm, k);
	}
	if (n[M_HEAD])
		for (int k = 0; k < r->bs->keys; k++) {
			char key[64];
			key_of(key, sizeof key, r->bs, k);
			larder_hit(r->db, key, 0);
		}
	for (int round = 0; round < ROUNDS; round++) {
		shuffle(order, M_COUNT);
		for (int o = 0; o < M_COUNT; o++) {
			int m = order[o];
			int end = (int)((int64_t)n[m] * (round + 1) / ROUNDS);
			for (; done[m] < end; done[m]++) {
				double t0 = now_us();
				one(r, m, done[m]);
				t[m][done[m]] = now_us() - t0;
			}
		}
	}
	for (int m = 0; m < M_COUNT; m++) {
		if (n[m])
			print_stats("hit", r->bs->label, method_name[m], t[m],
				    n[m]);
		free(t[m]);
	}
}

/* ---- fills and the machine's page-fault cost ---------------------- */

static void fills(struct run *r)
{
	int n = quick ? 3 : 50;
	size_t size = 1 * MiB;
	unsigned char *p = xmalloc(size);
	double *t = xmalloc((size_t)n * sizeof *t);
	char key[64];
	const char *names[] = {"larder-put-fsync-data", "larder-put-fsync-none",
			       "redis-set"};
	fill_payload(p, size, 7);

	for (int which = 0; which < 3; which++) {
		if (which == 2 && r->redis < 0)
			continue;
		larder *db = which < 2
				 ? open_store(which == 0 ? LARDER_FSYNC_DATA
							 : LARDER_FSYNC_NONE)
				 : NULL;
		for (int i = 0; i < n; i++) {
			snprintf(key, sizeof key, "fill-%d-%d", which, i);
			double t0 = now_us();
			if (db) {
				if (larder_put(db, NS, key, strlen(key), VER, 2,
					       p, size, NULL) != 0)
					die("larder_put %s: %s", key,
					    larder_errmsg(db));
			} else {
				redis_set(r->redis, key, p, size);
			}
			t[i] = now_us() - t0;
		}
		if (db)
			larder_close(db);
		print_stats("fill", NULL, names[which], t, n);
	}
	free(t);
	free(p);
}

/* What a page fault costs here: mapping 1 MiB and touching each page,
 * against reading it into a buffer already faulted in. */
static void fault_cost(struct run *r)
{
	int n = quick ? 5 : 400;
	double *tm = xmalloc((size_t)n * sizeof *tm);
	double *tr = xmalloc((size_t)n * sizeof *tr);
	char key[64];
	key_of(key, sizeof key, r->bs, 0);
	for (int i = 0; i < n; i++) {
		double t0 = now_us();
		raw_mmap(key, r->bs->size);
		double t1 = now_us();
		raw_read(r, key);
		tm[i] = t1 - t0;
		tr[i] = now_us() - t1;
	}
	print_stats("fault", NULL, "mmap-touch-1MiB", tm, n);
	print_stats("fault", NULL, "read-1MiB", tr, n);
	free(tm);
	free(tr);
}

int main(int argc, char **argv)
{
	int i;
	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--quick"))
			quick = 1;
		else if (!strcmp(argv[i], "--redis") && i + 1 < argc)
			redis_port = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--memcached") && i + 1 < argc)
			memcached_port = atoi(argv[++i]);
		else
			break;
	}
	if (i != argc - 1)
		die("usage: bench_peers [--quick] [--redis PORT] "
		    "[--memcached PORT] DIR");
	dir = argv[i];
	srand(12);

	char path[4096];
	snprintf(path, sizeof path, "%s/raw", dir);
	if (mkdir(path, 0755) < 0 && errno != EEXIST)
		die("mkdir %s: %s", path, strerror(errno));
	snprintf(path, sizeof path, "%s/lmdb", dir);
	if (mkdir(path, 0755) < 0 && errno != EEXIST)
		die("mkdir %s: %s", path, strerror(errno));

	struct run r = {.redis = -1, .memcached = -1};
	int rc;
	MDB_txn *txn;
	if ((rc = mdb_env_create(&r.env)) ||
	    (rc = mdb_env_set_mapsize(r.env, (size_t)1 << 30)) ||
	    (rc = mdb_env_open(r.env, path, 0, 0644)) ||
	    (rc = mdb_txn_begin(r.env, NULL, 0, &txn)) ||
	    (rc = mdb_dbi_open(txn, NULL, 0, &r.dbi)) ||
	    (rc = mdb_txn_commit(txn)))
		die("lmdb at %s: %s", path, mdb_strerror(rc));
	snprintf(path, sizeof path, "%s/sqlite.db", dir);
	if (sqlite3_open(path, &r.sql) != SQLITE_OK ||
	    sqlite3_exec(r.sql,
			 "CREATE TABLE IF NOT EXISTS t (k TEXT PRIMARY KEY, "
			 "v BLOB)",
			 NULL, NULL, NULL) != SQLITE_OK)
		die("sqlite %s: %s", path, sqlite3_errmsg(r.sql));
	if (redis_port)
		r.redis = tcp_connect(redis_port, "redis");
	if (memcached_port)
		r.memcached = tcp_connect(memcached_port, "memcached");

	for (size_t s = 0; s < NSIZES; s++) {
		/* Writing 256 MiB six times is most of a quick run's time. */
		if (quick && sizes[s].size > 1 * MiB)
			continue;
		setup(&r, &sizes[s]);
		measure(&r);
		if (sizes[s].size == 1 * MiB)
			fault_cost(&r);
		teardown(&r);
	}
	fills(&r);

	if (r.redis >= 0)
		close(r.redis);
	if (r.memcached >= 0)
		close(r.memcached);
	sqlite3_close(r.sql);
	mdb_env_close(r.env);
	return 0;
}
