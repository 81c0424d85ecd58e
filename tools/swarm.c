/*
 * swarm.c — larder-swarm: many client processes read one source through
 * larder while the source changes under them, and every byte they get is
 * checked (docs/swarm.md).
 *
 * The controller (this process) makes a store and a source — a file, or a
 * table in a SQLite database — forks N clients, and regenerates the source
 * G times while the clients run W waves. In each wave every client asks
 * for the source's data once: larder_get_or_fill() with a version from
 * larder_files_version() (file), or larder_sql() with the table's change
 * counter (sql). Generation g's contents follow from (seed, g) and say
 * which g they are, so a client rebuilds them and compares every byte.
 *
 * What one client cannot see, the controller checks at the end from the
 * clients' records: that a payload's version is its generation's version
 * (the manifest: computed by the controller from a scratch copy, or read
 * right after the commit); that no read returned a generation older than
 * the source was when the call began (stale); and that each version was
 * loaded by one caller only (single flight), a repeat being excused only
 * when the source changed during the call that made it.
 *
 * Public API only: larder.h and the shared library. SQLite is driven
 * directly, as the application that owns the database would.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/futex.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "larder.h"

#define NS "swarm"
#define NS_MANIFEST "swarm-manifest"
#define FILE_KEY "swarm-file"
#define SQL_QUERY "SELECT id, gen, val FROM t ORDER BY id"
#define SQL_HEADER "id,gen,val\r\n"
#define VER_MAX 256
#define MSG_MAX 200
#define MAX_PROBLEMS 10
#define MIN_SIZE 2048

enum variant { V_FILE, V_SQL };
enum rewrite { RW_MIXED, RW_INPLACE, RW_RENAME };
enum sabotage { SB_NONE, SB_WRONG, SB_STALE, SB_HERD };

/* A read whose payload is no whole generation: the file was caught
 * between two (an in-place rewrite). Legitimate if the payload is exactly
 * what its version names. */
#define GEN_BETWEEN (-1)
#define GEN_NONE (-2)

struct config {
	enum variant variant;
	const char *store, *store2;
	const char *source, *source2;
	const char *work;
	int clients, waves, generations;
	uint64_t seed;
	double lease;
	int load_ms;
	size_t max_size;
	double lag;
	double pace;	 /* seconds at least between two switches */
	int max_repeats; /* loads of a version beyond its first, allowed */
	enum rewrite rewrite;
	const char *journal;
	enum sabotage sabotage;
	int own_versions; /* file: versions made here, not by larder */
	int timeout;
	int keep, verbose;
};

/* One client's one read, as the controller will judge it. */
struct rec {
	int done;
	int rc;
	int outcome;
	int gen;     /* whole generation read, GEN_BETWEEN or GEN_NONE */
	int hdr_gen; /* generation the payload's header names, or -1 */
	int wrong;   /* the client's own byte check failed */
	int loads;   /* loader runs during the call */
	int64_t t0, t1;
	char ver[VER_MAX];
	char msg[MSG_MAX];
};

struct gen {
	int64_t start_ns, done_ns; /* the source changing to this one */
	char ver[VER_MAX];	   /* its version (the manifest) */
};

struct shared {
	uint32_t bar_count, bar_phase; /* barrier: clients + controller */
	uint32_t abort;
	uint32_t loads_active; /* file loaders running now */
	uint32_t reads_done;
	uint32_t versions_done; /* version_fn calls completed */
	uint64_t ctr[LARDER_CTR_COUNT];
	uint32_t warnings;
	char warning[MSG_MAX]; /* the first one, with its client */
};

static struct config cfg;
static struct shared *sh;
static struct gen *gens;
static struct rec *recs;
static char (*client_err)[MSG_MAX];
static pid_t *pids;

/* ---------------------------------------------------------------------- */
/* Small helpers                                                           */

static int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void sleep_ms(double ms)
{
	if (ms <= 0)
		return;
	long long ns = (long long)(ms * 1e6);
	struct timespec ts = {(time_t)(ns / 1000000000),
			      (long)(ns % 1000000000)};
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

__attribute__((format(printf, 1, 2), noreturn)) static void die(const char *fmt,
								...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("larder-swarm: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(2);
}

__attribute__((format(printf, 3, 4))) static void
set_msg(char *buf, size_t size, const char *fmt, ...)
{
	if (buf[0])
		return; /* keep the first */
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, size, fmt, ap);
	va_end(ap);
}

static uint64_t mix(uint64_t x)
{
	/* splitmix64's finalizer */
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

static uint64_t rnd(uint64_t a, uint64_t b, uint64_t c)
{
	return mix(mix(mix(cfg.seed ^ a) ^ b) ^ c);
}

/* A path that must fit: a longer one ends the run with a message. */
__attribute__((format(printf, 3, 4))) static void mkpath(char *buf, size_t size,
							 const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf, size, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= size)
		die("path too long: '%.60s...'", buf);
}

static void write_all(int fd, const void *buf, size_t len, off_t off,
		      const char *path)
{
	const char *p = buf;
	while (len) {
		ssize_t n = pwrite(fd, p, len, off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			die("cannot write '%s': %s", path, strerror(errno));
		p += n;
		len -= (size_t)n;
		off += n;
	}
}

static void write_file(const char *path, const void *buf, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		die("cannot create '%s': %s", path, strerror(errno));
	write_all(fd, buf, len, 0, path);
	if (close(fd) != 0)
		die("cannot close '%s': %s", path, strerror(errno));
}

static int rm_one(const char *path, const struct stat *st, int type,
		  struct FTW *ftw)
{
	(void)st, (void)ftw;
	if ((type == FTW_DP ? rmdir(path) : unlink(path)) != 0 &&
	    errno != ENOENT)
		fprintf(stderr, "larder-swarm: cannot remove '%s': %s\n", path,
			strerror(errno));
	return 0;
}

static void rm_rf(const char *path)
{
	nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static const char *base_name(const char *path)
{
	const char *s = strrchr(path, '/');
	return s ? s + 1 : path;
}

/* ---------------------------------------------------------------------- */
/* Generations: what the source holds, deterministic from (seed, g)        */

/* File sizes from 2 KiB to --max-size, spread over the powers of two; a
 * generation g with g % 4 == 3 keeps the size of g - 1: an in-place
 * rewrite that leaves the size alone, so only the timestamps (maybe the
 * same clock tick) tell the two apart. */
static size_t size_of(int g)
{
	if (g % 4 == 3)
		return size_of(g - 1);
	int lo = 11, hi = 11; /* powers of two */
	while (hi < 62 && ((size_t)1 << (hi + 1)) <= cfg.max_size)
		hi++;
	int k = lo + (int)(rnd(1, (uint64_t)g, 0) % (uint64_t)(hi - lo + 1));
	size_t s = ((size_t)1 << k) +
		   (size_t)(rnd(2, (uint64_t)g, 0) % ((uint64_t)1 << k));
	if (s > cfg.max_size)
		s = cfg.max_size;
	return s < MIN_SIZE ? MIN_SIZE : s;
}

/* File generation g: a header line naming it, then bytes from (seed, g). */
static size_t build_file(int g, unsigned char *buf)
{
	size_t len = size_of(g);
	int h =
	    snprintf((char *)buf, 64, "larder-swarm gen %d len %zu\n", g, len);
	for (size_t i = (size_t)h; i < len; i += 8) {
		uint64_t x = rnd(3, (uint64_t)g, i);
		size_t n = len - i < 8 ? len - i : 8;
		memcpy(buf + i, &x, n);
	}
	return len;
}

/* The generation a payload's header names (-1: none), and the length it
 * claims. */
static int file_header(const unsigned char *p, size_t n, size_t *len)
{
	const unsigned char *nl = memchr(p, '\n', n < 64 ? n : 64);
	if (!nl)
		return -1;
	char line[64];
	memcpy(line, p, (size_t)(nl - p));
	line[nl - p] = 0;
	int g, used = 0;
	if (sscanf(line, "larder-swarm gen %d len %zu%n", &g, len, &used) !=
		2 ||
	    used != nl - p || g < 0 || g > cfg.generations)
		return -1;
	return g;
}

/* SQL generation g: n rows (id, gen, val), val a hex string of varying
 * length. Same row count as g - 1 when size_of says so (then the rows are
 * UPDATEd in place rather than deleted and inserted). */
static int rows_of(int g)
{
	size_t n = size_of(g) / 64;
	return n < 1 ? 1 : (int)n;
}

static size_t sql_val(int g, int id, char *out)
{
	size_t len = 16 + (size_t)(rnd(4, (uint64_t)g, (uint64_t)id) % 100);
	static const char hex[] = "0123456789abcdef";
	for (size_t i = 0; i < len; i++)
		out[i] = hex[rnd(5, (uint64_t)g, (uint64_t)id * 128 + i) & 15];
	out[len] = 0;
	return len;
}

/* The CSV larder_sql gives for generation g (RFC 4180: CRLF; nothing here
 * needs quoting). */
static size_t build_sql(int g, char **buf, size_t *cap)
{
	size_t need = sizeof SQL_HEADER + (size_t)rows_of(g) * 160;
	if (*cap < need) {
		free(*buf);
		*buf = malloc(need);
		if (!*buf)
			die("out of memory");
		*cap = need;
	}
	char *p = *buf, val[128];
	p += sprintf(p, "%s", SQL_HEADER);
	for (int id = 1; id <= rows_of(g); id++) {
		sql_val(g, id, val);
		p += sprintf(p, "%d,%d,%s\r\n", id, g, val);
	}
	return (size_t)(p - *buf);
}

/* ---------------------------------------------------------------------- */
/* A barrier for the clients and the controller, in shared memory          */

static long futex(uint32_t *addr, int op, uint32_t val,
		  const struct timespec *ts)
{
	return syscall(SYS_futex, addr, op, val, ts, NULL, 0);
}

static int aborted(void)
{
	return (int)__atomic_load_n(&sh->abort, __ATOMIC_ACQUIRE);
}

/* Returns 0 when everybody arrived, -1 when the run is being aborted.
 * tick() (may be NULL) runs every 100 ms of waiting: the controller reaps
 * its children there. */
static int barrier_wait(int parties, void (*tick)(void))
{
	uint32_t ph = __atomic_load_n(&sh->bar_phase, __ATOMIC_ACQUIRE);
	if (__atomic_add_fetch(&sh->bar_count, 1, __ATOMIC_ACQ_REL) ==
	    (uint32_t)parties) {
		__atomic_store_n(&sh->bar_count, 0, __ATOMIC_RELAXED);
		__atomic_store_n(&sh->bar_phase, ph + 1, __ATOMIC_RELEASE);
		futex(&sh->bar_phase, FUTEX_WAKE, INT_MAX, NULL);
		return 0;
	}
	while (__atomic_load_n(&sh->bar_phase, __ATOMIC_ACQUIRE) == ph) {
		if (aborted())
			return -1;
		struct timespec ts = {0, 100 * 1000 * 1000};
		futex(&sh->bar_phase, FUTEX_WAIT, ph, &ts);
		if (tick)
			tick();
	}
	return 0;
}

static void abort_run(void)
{
	__atomic_store_n(&sh->abort, 1, __ATOMIC_RELEASE);
	futex(&sh->bar_phase, FUTEX_WAKE, INT_MAX, NULL);
}

/* ---------------------------------------------------------------------- */
/* Clients                                                                 */

struct client {
	int idx;
	larder *db;
	const char *src; /* file: the source as this client sees it */
	char scratch[PATH_MAX];
	unsigned char *expect; /* file: a generation rebuilt */
	char *sqlbuf;
	size_t sqlcap;
	int loads;
	char frozen[LARDER_FILES_VERSION_LEN + 1]; /* --sabotage stale */
	char errbuf[MSG_MAX];
};

static void client_log(int level, const char *msg, void *payload)
{
	struct client *c = payload;
	(void)level;
	if (__atomic_fetch_add(&sh->warnings, 1, __ATOMIC_RELAXED) == 0)
		snprintf(sh->warning, sizeof sh->warning, "client %d: %s",
			 c->idx, msg);
}

static int open_source(const char *path)
{
	/* A network client says ESTALE for a name another client renamed
	 * over until its cache lets go (about a second on GlusterFS):
	 * open again, for at most 5 s, as an application there must. */
	int64_t end = now_ns() + 5 * (int64_t)1000000000;
	for (;;) {
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd >= 0 || errno != ESTALE || now_ns() > end)
			return fd;
		sleep_ms(20);
	}
}

static char own_err[MSG_MAX]; /* why own_version failed */

/* --file-version own: a version made here from every byte of the file,
 * read each time (no fingerprint, nothing remembered): a baseline that
 * tells problems of the fill from problems of larder_files_version. */
static int own_version(const char *path, char out[LARDER_FILES_VERSION_LEN + 1])
{
	int fd = open_source(path);
	if (fd < 0) {
		set_msg(own_err, sizeof own_err, "open '%s': %s", path,
			strerror(errno));
		return errno == ENOENT ? LARDER_ENOTFOUND : LARDER_EIO;
	}
	uint64_t h1 = 1, h2 = 2, n = 0;
	unsigned char buf[65536];
	for (;;) {
		ssize_t r = read(fd, buf, sizeof buf);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			set_msg(own_err, sizeof own_err, "read '%s': %s", path,
				strerror(errno));
			close(fd);
			return LARDER_EIO;
		}
		if (r == 0)
			break;
		for (ssize_t i = 0; i < r; i += 8) {
			uint64_t x = 0;
			memcpy(&x, buf + i, r - i < 8 ? (size_t)(r - i) : 8);
			h1 = mix(h1 ^ x);
			h2 = mix(h2 + x + n++);
		}
	}
	close(fd);
	snprintf(out, LARDER_FILES_VERSION_LEN + 1,
		 "swarm/1 %016" PRIx64 "%016" PRIx64, mix(h1 ^ n), h2);
	return 0;
}

static int files_version(larder *db, const char *path, unsigned flags,
			 char out[LARDER_FILES_VERSION_LEN + 1])
{
	if (cfg.own_versions)
		return own_version(path, out);
	return larder_files_version(out, db, &path, 1, flags);
}

static int file_version(larder_fill *f, void *payload)
{
	struct client *c = payload;
	char v[LARDER_FILES_VERSION_LEN + 1];
	own_err[0] = 0;
	int rc = files_version(c->db, c->src, 0, v);
	if (rc) {
		set_msg(c->errbuf, sizeof c->errbuf, "version: %s",
			cfg.own_versions ? own_err : larder_errmsg(c->db));
		return rc;
	}
	if (cfg.sabotage == SB_STALE) {
		/* A version that never moves: what a fingerprint that
		 * missed every change would give. */
		if (!c->frozen[0])
			memcpy(c->frozen, v, sizeof v);
		memcpy(v, c->frozen, sizeof v);
	}
	__atomic_add_fetch(&sh->versions_done, 1, __ATOMIC_RELEASE);
	return larder_fill_set_version(f, v, strlen(v));
}

/* Reads the source in up to 16 slices with a pause after each, so that
 * loads last --load-ms whatever the file's size (a small file is fewer
 * slices, each pause longer) and the controller's rewrites land inside
 * them. */
static int file_loader(larder_fill *f, void *payload)
{
	struct client *c = payload;
	c->loads++;
	__atomic_add_fetch(&sh->loads_active, 1, __ATOMIC_RELEASE);
	int rc = 0, fd = open_source(c->src);
	unsigned char *buf = NULL;
	struct stat st;
	if (fd < 0 || fstat(fd, &st) != 0) {
		set_msg(c->errbuf, sizeof c->errbuf, "loader: open '%s': %s",
			c->src, strerror(errno));
		rc = LARDER_EIO;
		goto out;
	}
	size_t slice = (size_t)st.st_size / 16 + 1;
	if (slice < 4096)
		slice = 4096;
	size_t slices = ((size_t)st.st_size + slice - 1) / slice;
	double pause_ms = cfg.load_ms / (double)(slices ? slices : 1);
	buf = malloc(slice);
	if (!buf) {
		rc = LARDER_ENOMEM;
		goto out;
	}
	if (slices == 0)
		sleep_ms(pause_ms);
	for (int first = 1;; first = 0) {
		ssize_t n = read(fd, buf, slice);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			set_msg(c->errbuf, sizeof c->errbuf,
				"loader: read '%s': %s", c->src,
				strerror(errno));
			rc = LARDER_EIO;
			goto out;
		}
		if (n == 0)
			break;
		if (first && cfg.sabotage == SB_WRONG)
			buf[n > 100 ? 100 : n - 1] ^= 1;
		if ((rc = larder_fill_write(f, buf, (size_t)n)) != 0)
			goto out;
		sleep_ms(pause_ms);
	}
out:
	free(buf);
	if (fd >= 0)
		close(fd);
	__atomic_sub_fetch(&sh->loads_active, 1, __ATOMIC_RELEASE);
	return rc;
}

/* The version larder_files_version gives for these bytes (a scratch copy
 * named like the source: the version is made from contents). */
static int content_version(struct client *c, const void *p, size_t n,
			   char out[LARDER_FILES_VERSION_LEN + 1])
{
	write_file(c->scratch, p, n);
	return files_version(c->db, c->scratch, LARDER_FILES_NO_REMEMBER, out);
}

static void check_file(struct client *c, struct rec *r, const unsigned char *p,
		       size_t n)
{
	size_t len = 0;
	int g = file_header(p, n, &len);
	r->hdr_gen = g;
	if (g >= 0 && len == n && n == size_of(g)) {
		build_file(g, c->expect);
		if (memcmp(p, c->expect, n) == 0) {
			r->gen = g;
			return;
		}
	}
	/* Not a whole generation: right only if these bytes are what the
	 * entry's version names (the source between two generations). */
	r->gen = GEN_BETWEEN;
	char v[LARDER_FILES_VERSION_LEN + 1];
	int rc = content_version(c, p, n, v);
	if (rc) {
		r->wrong = 1;
		set_msg(r->msg, sizeof r->msg,
			"cannot compute the version of the payload: %s",
			larder_errmsg(c->db));
		return;
	}
	if (strcmp(v, r->ver) != 0) {
		size_t off = 0;
		if (g >= 0 && g <= cfg.generations) {
			size_t el = build_file(g, c->expect);
			while (off < n && off < el && p[off] == c->expect[off])
				off++;
		}
		r->wrong = 1;
		set_msg(r->msg, sizeof r->msg,
			"%zu bytes under version '%s' are not what it names "
			"('%s'); header says gen %d, first difference from "
			"it at byte %zu",
			n, r->ver, v, g, off);
	}
}

static void check_sql(struct client *c, struct rec *r, const char *p, size_t n)
{
	r->gen = GEN_NONE;
	int g = -1, used = 0;
	size_t hl = strlen(SQL_HEADER);
	char first[32] = ""; /* the start of the first row, NUL-ended */
	if (n > hl && memcmp(p, SQL_HEADER, hl) == 0) {
		size_t fl =
		    n - hl < sizeof first - 1 ? n - hl : sizeof first - 1;
		memcpy(first, p + hl, fl);
		first[fl] = 0;
	}
	if (sscanf(first, "1,%d,%n", &g, &used) != 1 || used == 0 || g < 0 ||
	    g > cfg.generations) {
		r->wrong = 1;
		set_msg(r->msg, sizeof r->msg,
			"%zu bytes that do not start with a generation's "
			"first row: '%.*s'",
			n, (int)(n < 40 ? n : 40), p);
		return;
	}
	r->hdr_gen = g;
	size_t el = build_sql(g, &c->sqlbuf, &c->sqlcap);
	if (el == n && memcmp(p, c->sqlbuf, n) == 0) {
		r->gen = g;
		return;
	}
	size_t off = 0;
	while (off < n && off < el && p[off] == c->sqlbuf[off])
		off++;
	r->wrong = 1;
	set_msg(r->msg, sizeof r->msg,
		"%zu bytes are not gen %d's result (%zu bytes): first "
		"difference at byte %zu",
		n, g, el, off);
}

static void client_read(struct client *c, struct rec *r)
{
	larder_fill_opts fo = LARDER_FILL_OPTS_INIT;
	fo.lease_seconds = cfg.lease;
	if (cfg.sabotage == SB_HERD)
		fo.max_wait_seconds = 0.001; /* waiters load too */
	larder_entry *e = NULL;
	int how = 0;
	c->loads = 0;
	c->errbuf[0] = 0;
	uint64_t fills = larder_counter(c->db, LARDER_CTR_FILLS);
	r->t0 = now_ns();
	if (cfg.variant == V_FILE) {
		r->rc = larder_get_or_fill(&e, &how, c->db, NS, FILE_KEY,
					   strlen(FILE_KEY), NULL, 0,
					   file_version, file_loader, c, &fo);
	} else {
		larder_sql_opts so = LARDER_SQL_OPTS_INIT;
		so.format = LARDER_SQL_CSV;
		if (cfg.sabotage == SB_STALE)
			so.version_query = "SELECT 1";
		else
			so.table = "t";
		so.fill = &fo;
		r->rc =
		    larder_sql(&e, &how, c->db, NS, cfg.source, SQL_QUERY, &so);
	}
	r->t1 = now_ns();
	r->outcome = how;
	r->loads = cfg.variant == V_FILE
		       ? c->loads
		       : (int)(larder_counter(c->db, LARDER_CTR_FILLS) - fills);
	r->gen = GEN_NONE;
	r->hdr_gen = -1;
	if (r->rc) {
		set_msg(r->msg, sizeof r->msg, "%s: %s", larder_strerror(r->rc),
			c->errbuf[0] ? c->errbuf : larder_errmsg(c->db));
		r->done = 1;
		return;
	}
	size_t vlen;
	const void *v = larder_entry_version(&vlen, e);
	if (vlen >= VER_MAX) {
		r->wrong = 1;
		set_msg(r->msg, sizeof r->msg,
			"version of %zu bytes: longer than the swarm records",
			vlen);
	} else {
		memcpy(r->ver, v, vlen);
		r->ver[vlen] = 0;
		if (memchr(r->ver, 0, vlen)) {
			r->wrong = 1;
			set_msg(r->msg, sizeof r->msg, "version holds a NUL");
		}
	}
	if (!r->wrong) {
		const void *p = larder_entry_data(e);
		size_t n = larder_entry_size(e);
		if (cfg.variant == V_FILE)
			check_file(c, r, p, n);
		else
			check_sql(c, r, p, n);
	}
	larder_entry_release(e);
	r->done = 1;
}

static int client_main(int idx)
{
	struct client c;
	memset(&c, 0, sizeof c);
	c.idx = idx;
	int second = cfg.store2 && idx % 2 == 1;
	c.src = second ? cfg.source2 : cfg.source;
	char *err = client_err[idx];
	mkpath(c.scratch, sizeof c.scratch, "%s/c%d", cfg.work, idx);
	if (mkdir(c.scratch, 0755) != 0 && errno != EEXIST) {
		set_msg(err, MSG_MAX, "mkdir '%s': %s", c.scratch,
			strerror(errno));
		abort_run();
		return 2;
	}
	size_t sl = strlen(c.scratch);
	mkpath(c.scratch + sl, sizeof c.scratch - sl, "/%s",
	       base_name(cfg.source));
	c.expect = malloc(cfg.max_size);
	if (!c.expect) {
		set_msg(err, MSG_MAX, "out of memory");
		abort_run();
		return 2;
	}
	larder_opts o = LARDER_OPTS_INIT;
	o.log = client_log;
	o.log_payload = &c;
	const char *store = second ? cfg.store2 : cfg.store;
	int rc = larder_open(&c.db, store, &o);
	if (rc) {
		set_msg(err, MSG_MAX, "cannot open the store '%s': %s", store,
			larder_errmsg(NULL));
		abort_run();
		return 2;
	}
	for (int w = 0; w < cfg.waves; w++) {
		if (barrier_wait(cfg.clients + 1, NULL) != 0)
			break;
		client_read(&c, &recs[idx * cfg.waves + w]);
		__atomic_add_fetch(&sh->reads_done, 1, __ATOMIC_RELEASE);
	}
	for (int i = 0; i < LARDER_CTR_COUNT; i++)
		__atomic_add_fetch(&sh->ctr[i], larder_counter(c.db, i),
				   __ATOMIC_RELAXED);
	larder_close(c.db);
	free(c.expect);
	free(c.sqlbuf);
	return 0;
}

/* ---------------------------------------------------------------------- */
/* The controller: the source and its generations                          */

static larder *ctl;	/* the controller's own handle (manifests) */
static sqlite3 *sq;	/* sql: the database, read-write */
static size_t cur_size; /* file: the size the source has now */
static unsigned char *genbuf;
static char manifest_copy[PATH_MAX];
static int children_left;
static int64_t deadline;
static int timed_out;
static int written = -1; /* the newest generation in place */

static void kill_clients(void)
{
	for (int i = 0; i < cfg.clients; i++)
		if (pids[i] > 0)
			kill(pids[i], SIGKILL);
}

/* Notes clients that ended; ends the run when one failed or time is up. */
static void reap(void)
{
	if (!timed_out && now_ns() > deadline) {
		timed_out = 1;
		abort_run();
		for (int i = 0; i < cfg.clients; i++)
			if (pids[i] > 0)
				set_msg(client_err[i], MSG_MAX,
					"still running at the timeout: "
					"killed");
		kill_clients();
	}
	for (;;) {
		int st;
		pid_t p = waitpid(-1, &st, WNOHANG);
		if (p <= 0)
			return;
		for (int i = 0; i < cfg.clients; i++) {
			if (pids[i] != p)
				continue;
			pids[i] = 0;
			children_left--;
			if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
				break;
			if (!client_err[i][0]) {
				if (WIFSIGNALED(st))
					snprintf(client_err[i], MSG_MAX,
						 "killed by signal %d",
						 WTERMSIG(st));
				else
					snprintf(client_err[i], MSG_MAX,
						 "exited %d", WEXITSTATUS(st));
			}
			abort_run();
			break;
		}
	}
}

/* Bounded wait for a condition on the shared state, reaping meanwhile. */
static void wait_until(int (*cond)(uint32_t), uint32_t arg, int max_ms)
{
	int64_t end = now_ns() + (int64_t)max_ms * 1000000;
	while (!cond(arg) && now_ns() < end && !aborted()) {
		sleep_ms(0.5);
		reap();
	}
}

static int load_running(uint32_t unused)
{
	(void)unused;
	return __atomic_load_n(&sh->loads_active, __ATOMIC_ACQUIRE) > 0;
}

static int reads_reached(uint32_t n)
{
	return __atomic_load_n(&sh->reads_done, __ATOMIC_ACQUIRE) >= n;
}

static int versions_passed(uint32_t n)
{
	return __atomic_load_n(&sh->versions_done, __ATOMIC_ACQUIRE) > n;
}

static void sql_exec(const char *s)
{
	char *msg = NULL;
	if (sqlite3_exec(sq, s, NULL, NULL, &msg) != SQLITE_OK)
		die("sqlite: %s: %s", s, msg ? msg : sqlite3_errmsg(sq));
}

/* Write rows first..last of generation g in one transaction (the DELETE
 * of the old rows with the first). Rows are UPDATEd in place when the
 * count stays. */
static void sql_write_rows(int g, int first, int last)
{
	int update = g > 0 && rows_of(g) == rows_of(g - 1);
	sqlite3_stmt *st;
	const char *s = update ? "UPDATE t SET gen = ?2, val = ?3 WHERE id = ?1"
			       : "INSERT INTO t(id, gen, val) VALUES(?1,?2,?3)";
	if (sqlite3_prepare_v2(sq, s, -1, &st, NULL) != SQLITE_OK)
		die("sqlite: %s: %s", s, sqlite3_errmsg(sq));
	sql_exec("BEGIN IMMEDIATE");
	if (!update && first == 1)
		sql_exec("DELETE FROM t");
	char val[128];
	for (int id = first; id <= last; id++) {
		size_t vl = sql_val(g, id, val);
		sqlite3_bind_int(st, 1, id);
		sqlite3_bind_int(st, 2, g);
		sqlite3_bind_text(st, 3, val, (int)vl, SQLITE_STATIC);
		if (sqlite3_step(st) != SQLITE_DONE)
			die("sqlite: %s: %s", s, sqlite3_errmsg(sq));
		sqlite3_reset(st);
	}
	sqlite3_finalize(st);
	sql_exec("COMMIT");
}

/* The table's version now, as larder_sql gives it: a query of the
 * generation's own (its key differs per g) in a namespace of its own. */
static void sql_manifest(int g)
{
	char gs[16];
	snprintf(gs, sizeof gs, "%d", g);
	const char *params[] = {gs};
	larder_sql_opts so = LARDER_SQL_OPTS_INIT;
	so.table = "t";
	so.params = params;
	so.nparams = 1;
	larder_entry *e;
	int rc =
	    larder_sql(&e, NULL, ctl, NS_MANIFEST, cfg.source, "SELECT ?", &so);
	if (rc)
		die("cannot read the table's version: %s: %s",
		    larder_strerror(rc), larder_errmsg(ctl));
	size_t vlen;
	const void *v = larder_entry_version(&vlen, e);
	if (vlen >= VER_MAX)
		die("the table's version is %zu bytes long", vlen);
	memcpy(gens[g].ver, v, vlen);
	gens[g].ver[vlen] = 0;
	larder_entry_release(e);
}

/* How generation g replaces the source (file). */
static int by_rename(int g)
{
	return cfg.rewrite == RW_RENAME ||
	       (cfg.rewrite == RW_MIXED && g % 4 == 2);
}

static int prepared = -1; /* the generation in genbuf */
static size_t prepared_len;

/* Everything before the switch, so that the switch itself is quick: the
 * bytes, the manifest (the version of a scratch copy: versions are made
 * from contents) and, for a rename, the new file beside the source. */
static void prepare_gen(int g)
{
	if (cfg.variant != V_FILE || prepared == g)
		return;
	size_t len = build_file(g, genbuf);
	write_file(manifest_copy, genbuf, len);
	int rc = files_version(ctl, manifest_copy, LARDER_FILES_NO_REMEMBER,
			       gens[g].ver);
	if (rc)
		die("cannot compute the version of generation %d: %s: %s", g,
		    larder_strerror(rc), larder_errmsg(ctl));
	if (g == 0 || by_rename(g)) {
		char tmp[PATH_MAX];
		mkpath(tmp, sizeof tmp, "%s.swarm-tmp", cfg.source);
		write_file(tmp, genbuf, len);
	}
	prepared = g;
	prepared_len = len;
}

static void file_write_gen(int g)
{
	prepare_gen(g);
	size_t len = prepared_len;
	__atomic_store_n(&gens[g].start_ns, now_ns(), __ATOMIC_RELEASE);
	if (g == 0 || by_rename(g)) {
		char tmp[PATH_MAX];
		mkpath(tmp, sizeof tmp, "%s.swarm-tmp", cfg.source);
		if (rename(tmp, cfg.source) != 0)
			die("cannot rename '%s' to '%s': %s", tmp, cfg.source,
			    strerror(errno));
	} else {
		/* In place, in 64 KiB writes, truncating last: readers can
		 * meet every state in between. */
		int fd = open(cfg.source, O_WRONLY | O_CLOEXEC);
		if (fd < 0)
			die("cannot open '%s': %s", cfg.source,
			    strerror(errno));
		size_t chunk = len >= 131072 ? 65536 : len / 2 + 1;
		int stalled = 0;
		for (size_t off = 0; off < len; off += chunk) {
			/* g % 4 == 0: a writer that stalls half-way, longer
			 * than a load takes: clients load the torn file,
			 * and rightly so (it is what the source holds). */
			if (g % 4 == 0 && !stalled && off >= len / 2) {
				sleep_ms(3 * cfg.load_ms + 30);
				stalled = 1;
			}
			write_all(fd, genbuf + off,
				  len - off < chunk ? len - off : chunk,
				  (off_t)off, cfg.source);
		}
		if (len < cur_size && ftruncate(fd, (off_t)len) != 0)
			die("cannot truncate '%s': %s", cfg.source,
			    strerror(errno));
		if (close(fd) != 0)
			die("cannot close '%s': %s", cfg.source,
			    strerror(errno));
	}
	cur_size = len;
}

/* --sabotage wrong, sql: the generation whose first half is committed
 * and in view, the second half waiting for the next wave. */
static int half_pending = -1;

static void gen_done(int g)
{
	__atomic_store_n(&gens[g].done_ns, now_ns(), __ATOMIC_RELEASE);
	if (cfg.variant == V_SQL)
		sql_manifest(g);
	written = g;
	if (cfg.verbose)
		fprintf(stderr,
			"larder-swarm: gen %d (%zu bytes%s) is in: %s\n", g,
			size_of(g),
			cfg.variant == V_FILE
			    ? (g == 0 || by_rename(g) ? ", by rename"
						      : ", in place")
			    : "",
			gens[g].ver);
}

/* The rest of a half-written generation, once a read that began after
 * its first half has ended (every read of the wave after it began
 * then): that read met a torn table. */
static void finish_half(int wave)
{
	if (half_pending < 0)
		return;
	int g = half_pending;
	wait_until(reads_reached, (uint32_t)(wave * cfg.clients + 1), 5000);
	sql_write_rows(g, rows_of(g) / 2 + 1, rows_of(g));
	half_pending = -1;
	gen_done(g);
}

static void write_gen(int g)
{
	if (cfg.variant == V_FILE) {
		file_write_gen(g);
	} else {
		__atomic_store_n(&gens[g].start_ns, now_ns(), __ATOMIC_RELEASE);
		if (cfg.sabotage == SB_WRONG && g > 0) {
			sql_write_rows(g, 1, rows_of(g) / 2);
			half_pending = g;
			return;
		}
		sql_write_rows(g, 1, rows_of(g));
	}
	gen_done(g);
}

static void make_source(void)
{
	if (cfg.variant == V_FILE) {
		genbuf = malloc(cfg.max_size);
		if (!genbuf)
			die("out of memory");
		char dir[PATH_MAX];
		mkpath(dir, sizeof dir, "%s/manifest", cfg.work);
		if (mkdir(dir, 0755) != 0 && errno != EEXIST)
			die("cannot make '%s': %s", dir, strerror(errno));
		mkpath(manifest_copy, sizeof manifest_copy, "%s/%s", dir,
		       base_name(cfg.source));
		write_gen(0);
		return;
	}
	struct stat st;
	if (stat(cfg.source, &st) == 0)
		die("'%s' exists: the sql swarm makes its own database",
		    cfg.source);
	if (sqlite3_open_v2(cfg.source, &sq,
			    SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
			    NULL) != SQLITE_OK)
		die("cannot create the database '%s': %s", cfg.source,
		    sq ? sqlite3_errmsg(sq) : "out of memory");
	sqlite3_busy_timeout(sq, 30000);
	char pragma[64];
	snprintf(pragma, sizeof pragma, "PRAGMA journal_mode=%s", cfg.journal);
	sql_exec(pragma);
	sql_exec("CREATE TABLE t(id INTEGER PRIMARY KEY, gen INTEGER NOT "
		 "NULL, val TEXT NOT NULL)");
	int rc = larder_sql_track(ctl, cfg.source, "t");
	if (rc)
		die("larder_sql_track: %s: %s", larder_strerror(rc),
		    larder_errmsg(ctl));
	write_gen(0);
}

/* The wave in which generation g is written (gen 0: before wave 0).
 * Spread evenly over the run, except: g % 4 == 1 in the wave after
 * g - 1's, where the clients load g - 1 (to land inside that load);
 * g % 4 == 3 in the same wave as g - 1 (straight after it). */
static int *wave_of;

static void plan_waves(void)
{
	wave_of = calloc((size_t)cfg.generations + 1, sizeof *wave_of);
	if (!wave_of)
		die("out of memory");
	wave_of[0] = -1;
	for (int g = 1; g <= cfg.generations; g++) {
		int prev = wave_of[g - 1], w;
		if (g % 4 == 1)
			w = prev + 1;
		else if (g % 4 == 3)
			w = prev;
		else
			w = (int)((int64_t)g * cfg.waves /
				  (cfg.generations + 1));
		if (w < prev)
			w = prev;
		wave_of[g] = w < cfg.waves ? w : cfg.waves - 1;
	}
}

/* Generation g, in its wave. When, by g % 4: 0 as the wave begins (while
 * the clients compute versions); 1 while a load runs (file) or after the
 * wave's first read (sql); 2 once half the wave has read (file: by
 * rename, a new inode); 3 straight after g - 1, with its size, once a
 * client has computed a version since (file: the same size in place,
 * maybe within one timestamp tick). */
static int paced(uint32_t g)
{
	return now_ns() >= gens[g - 1].done_ns + (int64_t)(cfg.pace * 1e9);
}

static void regenerate(int g, int wave)
{
	uint32_t base = (uint32_t)(wave * cfg.clients);
	switch (g % 4) {
	case 1:
		if (cfg.variant == V_FILE)
			wait_until(load_running, 0, 200);
		else
			wait_until(reads_reached, base + 1, 200);
		break;
	case 2:
		wait_until(reads_reached, base + (uint32_t)cfg.clients / 2,
			   200);
		break;
	case 3:
		if (cfg.variant == V_FILE)
			wait_until(versions_passed,
				   __atomic_load_n(&sh->versions_done,
						   __ATOMIC_ACQUIRE),
				   100);
		break;
	}
	write_gen(g);
}

static void run_clients(void)
{
	pid_t me = getpid();
	plan_waves();
	children_left = 0;
	for (int i = 0; i < cfg.clients; i++) {
		fflush(NULL);
		pid_t p = fork();
		if (p < 0) {
			abort_run();
			kill_clients();
			die("fork: %s", strerror(errno));
		}
		if (p == 0) {
			/* Dies with the controller (a killed test run). */
			prctl(PR_SET_PDEATHSIG, SIGKILL);
			if (getppid() != me)
				_exit(2);
			_exit(client_main(i));
		}
		pids[i] = p;
		children_left++;
	}
	int g = 1;
	for (int w = 0; w < cfg.waves; w++) {
		if (g <= cfg.generations && wave_of[g] == w) {
			prepare_gen(g);
			/* --pace: the wave that will see generation g begins
			 * once g - 1 is that old. Over larder's racy margin
			 * (2 s) the file's hash is remembered and the
			 * clients' versions come from its fingerprint. */
			if (cfg.pace > 0)
				wait_until(paced, (uint32_t)g,
					   (int)(cfg.pace * 1000) + 1000);
		}
		if (barrier_wait(cfg.clients + 1, reap) != 0)
			break;
		finish_half(w);
		while (g <= cfg.generations && wave_of[g] == w && !aborted()) {
			finish_half(w);
			regenerate(g++, w);
		}
	}
	if (half_pending >= 0) {
		sql_write_rows(half_pending, rows_of(half_pending) / 2 + 1,
			       rows_of(half_pending));
		gen_done(half_pending);
		half_pending = -1;
	}
	while (children_left > 0) {
		reap();
		if (children_left > 0)
			sleep_ms(2);
	}
}

/* ---------------------------------------------------------------------- */
/* The verdict                                                             */

struct vcount {
	const char *ver;
	int gen;
	int kept;	 /* loads of this version a caller kept */
	int unexcused;	 /* ... whose call saw no change of the source */
	int64_t first;	 /* when the first of them ended */
	int first_unexc; /* ... and whether it saw no change */
};

/* The newest generation fully in place at time t (-1: none yet). The
 * switches are in order: start and done times grow with g. */
static int gen_at(int64_t t)
{
	int lo = 0, hi = written + 1; /* answer + 1 is in [lo, hi] */
	while (lo < hi) {
		int mid = (lo + hi) / 2;
		if (gens[mid].done_ns <= t)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo - 1;
}

/* Did the source change during [t0, t1]? The first switch to end at or
 * after t0 is the earliest to begin among those that could overlap. */
static int changed_during(int64_t t0, int64_t t1)
{
	int lo = 1, hi = written + 1;
	while (lo < hi) {
		int mid = (lo + hi) / 2;
		if (gens[mid].done_ns < t0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo <= written && gens[lo].start_ns <= t1;
}

static int cmp_gen_ver(const void *a, const void *b)
{
	return strcmp(gens[*(const int *)a].ver, gens[*(const int *)b].ver);
}

static const char *outcome_name(int o)
{
	switch (o) {
	case LARDER_HIT:
		return "hit";
	case LARDER_FILLED:
		return "filled";
	case LARDER_WAITED:
		return "waited";
	case LARDER_STALE:
		return "stale";
	case LARDER_FILLED_UNCACHED:
		return "uncached";
	}
	return "?";
}

static int problems;

__attribute__((format(printf, 1, 2))) static void problem(const char *fmt, ...)
{
	if (problems++ >= MAX_PROBLEMS)
		return;
	va_list ap;
	va_start(ap, fmt);
	fputs("larder-swarm: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

__attribute__((format(printf, 4, 5))) static void
why_add(char *why, size_t size, int cond, const char *fmt, ...)
{
	size_t l = strlen(why);
	if (!cond || l >= size)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why + l, size - l, fmt, ap);
	va_end(ap);
}

/* The run's record, kept in the work directory when the run fails:
 * manifest.log "g start_ms done_ms version", reads.log one line per read
 * "client wave outcome gen header_gen loads t0_ms t1_ms rc version". Times
 * in ms from the start of generation 0. */
static void write_logs(void)
{
	char path[PATH_MAX];
	int64_t z = gens[0].start_ns;
	mkpath(path, sizeof path, "%s/manifest.log", cfg.work);
	FILE *f = fopen(path, "w");
	if (!f)
		die("cannot create '%s': %s", path, strerror(errno));
	for (int g = 0; g <= written; g++)
		fprintf(f, "%d %.3f %.3f %s\n", g,
			(double)(gens[g].start_ns - z) / 1e6,
			(double)(gens[g].done_ns - z) / 1e6, gens[g].ver);
	if (fclose(f) != 0)
		die("cannot write '%s': %s", path, strerror(errno));
	mkpath(path, sizeof path, "%s/reads.log", cfg.work);
	if (!(f = fopen(path, "w")))
		die("cannot create '%s': %s", path, strerror(errno));
	for (int i = 0; i < cfg.clients * cfg.waves; i++) {
		struct rec *r = &recs[i];
		if (r->done)
			fprintf(f, "%d %d %s %d %d %d %.3f %.3f %d %s\n",
				i / cfg.waves, i % cfg.waves,
				outcome_name(r->outcome), r->gen, r->hdr_gen,
				r->loads, (double)(r->t0 - z) / 1e6,
				(double)(r->t1 - z) / 1e6, r->rc, r->ver);
	}
	if (fclose(f) != 0)
		die("cannot write '%s': %s", path, strerror(errno));
}

static int verdict(double secs)
{
	int n = cfg.clients * cfg.waves;
	int reads = 0, checked = 0, wrong = 0, stale = 0, errors = 0;
	int between = 0, loads = 0, kept = 0, unexplained = 0, repeats = 0;
	int by_outcome[6] = {0};
	struct vcount *vc = calloc((size_t)n + 1, sizeof *vc);
	int nv = 0;
	if (!vc)
		die("out of memory");

	int *order = calloc((size_t)written + 2, sizeof *order);
	if (!order)
		die("out of memory");
	for (int g = 0; g <= written; g++)
		order[g] = g;
	qsort(order, (size_t)written + 1, sizeof *order, cmp_gen_ver);
	for (int k = 1; k <= written; k++)
		if (strcmp(gens[order[k]].ver, gens[order[k - 1]].ver) == 0) {
			wrong++;
			problem("generations %d and %d have one version '%s'",
				order[k - 1], order[k], gens[order[k]].ver);
		}
	free(order);
	for (int i = 0; i < cfg.clients; i++)
		if (client_err[i][0]) {
			errors++;
			problem("client %d: %s", i, client_err[i]);
		}
	for (int i = 0; i < n; i++) {
		struct rec *r = &recs[i];
		int c = i / cfg.waves, w = i % cfg.waves;
		if (!r->done)
			continue;
		reads++;
		loads += r->loads;
		if (r->rc) {
			errors++;
			problem("client %d wave %d: error: %s", c, w, r->msg);
			continue;
		}
		if (r->outcome >= 1 && r->outcome <= 5)
			by_outcome[r->outcome]++;
		if (r->outcome != LARDER_HIT && r->outcome != LARDER_FILLED &&
		    r->outcome != LARDER_WAITED) {
			errors++;
			problem("client %d wave %d: outcome %s (%d)", c, w,
				outcome_name(r->outcome), r->outcome);
		}
		checked++;
		if (r->gen == GEN_BETWEEN && !r->wrong)
			between++;
		if (r->wrong) {
			wrong++;
			problem("client %d wave %d: wrong (%s): %s", c, w,
				outcome_name(r->outcome), r->msg);
		} else if (r->gen >= 0 &&
			   (r->gen > written ||
			    strcmp(r->ver, gens[r->gen].ver) != 0)) {
			wrong++;
			problem("client %d wave %d: wrong (%s): gen %d's "
				"data under version '%s'; gen %d's version "
				"is '%s'",
				c, w, outcome_name(r->outcome), r->gen, r->ver,
				r->gen,
				r->gen <= written ? gens[r->gen].ver
						  : "(not written)");
		}
		/* Clients on the second mount see the source up to --lag
		 * late (a network filesystem's client caches). */
		int64_t lag =
		    cfg.store2 && c % 2 == 1 ? (int64_t)(cfg.lag * 1e9) : 0;
		int seen = r->gen >= 0 ? r->gen : r->hdr_gen;
		int fresh = gen_at(r->t0 - lag);
		if (seen >= 0 && seen < fresh && !r->wrong) {
			stale++;
			problem("client %d wave %d: stale (%s): gen %d, but "
				"gen %d was in place %.1f ms before the call",
				c, w, outcome_name(r->outcome), seen, fresh,
				(double)(r->t0 - lag - gens[fresh].done_ns) /
				    1e6);
		}
		if (r->outcome != LARDER_FILLED)
			continue;
		kept++;
		int k = 0;
		while (k < nv && strcmp(vc[k].ver, r->ver) != 0)
			k++;
		if (k == nv) {
			vc[nv].ver = r->ver;
			vc[nv].gen = r->gen;
			nv++;
		}
		int unexc = !changed_during(r->t0 - lag, r->t1);
		if (vc[k].kept++ == 0 || r->t1 < vc[k].first) {
			vc[k].first = r->t1;
			vc[k].first_unexc = unexc;
		}
		vc[k].unexcused += unexc;
	}
	int max_per = 0;
	for (int k = 0; k < nv; k++) {
		if (vc[k].kept > max_per)
			max_per = vc[k].kept;
		if (vc[k].kept <= 1)
			continue;
		repeats += vc[k].kept - 1;
		/* The first load of a version is the one; every later one
		 * must have overlapped a change of the source (a waiter
		 * that asked for the old version, or a retry that reloaded
		 * without looking). One that did not either ran beside the
		 * first (two lease holders) or missed its entry. */
		int bad = vc[k].unexcused - vc[k].first_unexc;
		if (bad > 0)
			unexplained += bad;
		/* Since a load that sees its source change looks for the
		 * new version before loading it, and a waiter does the
		 * same, even the repeats a change explains should not
		 * happen: each one is named (--max-repeats allows some). */
		if (bad > 0 || cfg.max_repeats < vc[k].kept - 1)
			problem("version '%s' (gen %d) loaded %d times, %d "
				"of them with no change of the source to "
				"explain it",
				vc[k].ver, vc[k].gen, vc[k].kept, bad);
	}
	uint64_t breaks = sh->ctr[LARDER_CTR_LEASE_BREAKS];
	uint64_t lost = sh->ctr[LARDER_CTR_LEASE_LOST];
	uint64_t uncached = sh->ctr[LARDER_CTR_UNCACHED];
	if (breaks || lost)
		problem("%" PRIu64 " lease(s) broken, %" PRIu64
			" lost: no holder was paused or killed here",
			breaks, lost);
	if (problems > MAX_PROBLEMS)
		fprintf(stderr, "larder-swarm: ... %d more problems\n",
			problems - MAX_PROBLEMS);
	if (cfg.verbose) {
		fputs("larder-swarm: clients' counters:", stderr);
		for (int i = 0; i < LARDER_CTR_COUNT; i++)
			if (sh->ctr[i])
				fprintf(stderr, " %s %" PRIu64,
					larder_counter_name(i), sh->ctr[i]);
		fputc('\n', stderr);
	}
	if (sh->warnings && (cfg.verbose || problems))
		fprintf(stderr,
			"larder-swarm: %u library warning(s); first: %s\n",
			sh->warnings, sh->warning);

	int ok = !timed_out && reads == n && wrong == 0 && stale == 0 &&
		 errors == 0 && unexplained == 0 &&
		 repeats <= cfg.max_repeats && breaks == 0 && lost == 0 &&
		 uncached == 0 && written == cfg.generations;
	char why[256] = "";
	if (!ok) {
		why_add(why, sizeof why, timed_out, ", timed out after %d s",
			cfg.timeout);
		why_add(why, sizeof why, reads < n, ", %d reads missing",
			n - reads);
		why_add(why, sizeof why, written < cfg.generations,
			", %d of %d generations written", written,
			cfg.generations);
		why_add(why, sizeof why, wrong, ", %d wrong", wrong);
		why_add(why, sizeof why, stale, ", %d stale", stale);
		why_add(why, sizeof why, errors, ", %d errors", errors);
		why_add(why, sizeof why, unexplained,
			", %d unexplained repeat loads", unexplained);
		why_add(why, sizeof why, repeats > cfg.max_repeats,
			", %d repeat loads (at most %d allowed)", repeats,
			cfg.max_repeats);
		why_add(why, sizeof why, breaks || lost,
			", %" PRIu64 " leases broken or lost", breaks + lost);
		why_add(why, sizeof why, uncached,
			", %" PRIu64 " loads not cached", uncached);
	}
	printf("swarm %s: %d clients x %d waves, %d generations, seed %" PRIu64
	       ": %d reads (%d hit, %d filled, %d waited), %d checked (%d "
	       "between generations), %d wrong, %d stale, %d errors; %d "
	       "loads (%" PRIu64 " retried after a change), %d kept for %d "
	       "versions, max %d per version (%d repeats, %d unexplained); "
	       "%.1f s — %s%s\n",
	       cfg.variant == V_FILE ? "file" : "sql", cfg.clients, cfg.waves,
	       cfg.generations, cfg.seed, reads, by_outcome[LARDER_HIT],
	       by_outcome[LARDER_FILLED], by_outcome[LARDER_WAITED], checked,
	       between, wrong, stale, errors, loads,
	       sh->ctr[LARDER_CTR_SOURCE_CHANGED], kept, nv, max_per, repeats,
	       unexplained, secs, ok ? "OK" : "FAIL", ok ? "" : why);
	fflush(stdout);
	free(vc);
	return ok ? 0 : 1;
}

/* ---------------------------------------------------------------------- */
/* Command line                                                            */

static const char usage[] =
    "usage: larder-swarm --variant file|sql [options]\n"
    "\n"
    "N client processes read one source through larder, W waves each, while\n"
    "the source is regenerated G times; every payload is checked byte for\n"
    "byte against what the source held at the version it came with, loads\n"
    "are counted per version, and one line of verdict ends the run (exit 0\n"
    "only if it says OK). docs/swarm.md says more.\n"
    "\n"
    "  --variant file|sql   the source: a file (larder_get_or_fill with\n"
    "                       larder_files_version) or a SQLite table\n"
    "                       (larder_sql with its change counter)\n"
    "  --clients N          client processes (default 4)\n"
    "  --waves W            reads per client, all clients at once (10)\n"
    "  --generations G      times the source is regenerated (5)\n"
    "  --store DIR          the store (default: WORK/store; made if missing)\n"
    "  --store2 DIR         the same store through a second mount: the odd\n"
    "                       clients use it\n"
    "  --source PATH        file: the source file (default WORK/source.dat);\n"
    "                       sql: the database to make (default WORK/swarm.db)\n"
    "  --source2 PATH       file: the same source through the second mount\n"
    "  --lag S              how late the second mount may show a change of\n"
    "                       the source (default 0)\n"
    "  --pace S             a wave that sees a new generation begins S\n"
    "                       seconds after the last one (0); over 2 s, file\n"
    "                       versions come from remembered hashes\n"
    "  --max-repeats N      loads of a version beyond its first that are\n"
    "                       allowed (default 0: every version is loaded\n"
    "                       once, even when the source changes mid-load)\n"
    "  --seed S             contents and sizes (default: random; printed)\n"
    "  --lease S            lease period of the fills (default: the "
    "library's)\n"
    "  --load-ms MS         file: how long a load takes at least (20)\n"
    "  --max-size BYTES     largest generation (1048576; smallest 2048)\n"
    "  --rewrite mixed|inplace|rename\n"
    "                       file: how generations replace the source "
    "(mixed)\n"
    "  --file-version larder|own\n"
    "                       file: versions from larder_files_version "
    "(default)\n"
    "                       or made here from every byte (a baseline)\n"
    "  --journal MODE       sql: the database's journal mode (wal)\n"
    "  --work DIR           WORK, the scratch directory (default: a new one\n"
    "                       in $TMPDIR, removed after an OK run unless\n"
    "                       --keep)\n"
    "  --timeout S          give up after S seconds (600)\n"
    "  --sabotage wrong|stale|herd\n"
    "                       break the run on purpose, to see the checks "
    "fail:\n"
    "                       wrong data, versions that never move, waiters "
    "that\n"
    "                       do not wait\n"
    "  --keep               keep the scratch directory\n"
    "  -v, --verbose        say what happens on stderr\n";

static long num_arg(const char *opt, const char *s, long lo, long hi)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < lo || v > hi)
		die("%s: '%s' is not a number from %ld to %ld", opt, s, lo, hi);
	return v;
}

static double sec_arg(const char *opt, const char *s, double lo, double hi)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (errno || end == s || *end || !(v >= lo && v <= hi))
		die("%s: '%s' is not a number of seconds from %g to %g", opt, s,
		    lo, hi);
	return v;
}

static void parse_args(int argc, char **argv)
{
	cfg.clients = 4;
	cfg.waves = 10;
	cfg.generations = 5;
	cfg.load_ms = 20;
	cfg.max_size = 1 << 20;
	cfg.journal = "wal";
	cfg.timeout = 600;
	int have_variant = 0, have_seed = 0;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			fputs(usage, stdout);
			exit(0);
		}
		if (!strcmp(a, "-v") || !strcmp(a, "--verbose")) {
			cfg.verbose = 1;
			continue;
		}
		if (!strcmp(a, "--keep")) {
			cfg.keep = 1;
			continue;
		}
		if (strncmp(a, "--", 2) != 0)
			die("unexpected argument '%s' (see --help)", a);
		if (i + 1 >= argc)
			die("%s needs a value (see --help)", a);
		const char *v = argv[++i];
		if (!strcmp(a, "--variant")) {
			if (!strcmp(v, "file"))
				cfg.variant = V_FILE;
			else if (!strcmp(v, "sql"))
				cfg.variant = V_SQL;
			else
				die("--variant: '%s' is neither file nor sql",
				    v);
			have_variant = 1;
		} else if (!strcmp(a, "--clients")) {
			cfg.clients = (int)num_arg(a, v, 1, 1000);
		} else if (!strcmp(a, "--waves")) {
			cfg.waves = (int)num_arg(a, v, 1, 100000);
		} else if (!strcmp(a, "--generations")) {
			cfg.generations = (int)num_arg(a, v, 0, 100000);
		} else if (!strcmp(a, "--store")) {
			cfg.store = v;
		} else if (!strcmp(a, "--store2")) {
			cfg.store2 = v;
		} else if (!strcmp(a, "--source")) {
			cfg.source = v;
		} else if (!strcmp(a, "--source2")) {
			cfg.source2 = v;
		} else if (!strcmp(a, "--work")) {
			cfg.work = v;
		} else if (!strcmp(a, "--lag")) {
			cfg.lag = sec_arg(a, v, 0, 3600);
		} else if (!strcmp(a, "--pace")) {
			cfg.pace = sec_arg(a, v, 0, 3600);
		} else if (!strcmp(a, "--max-repeats")) {
			cfg.max_repeats = (int)num_arg(a, v, 0, 1000000);
		} else if (!strcmp(a, "--seed")) {
			char *end;
			errno = 0;
			cfg.seed = strtoull(v, &end, 10);
			if (errno || end == v || *end || *v == '-')
				die("--seed: '%s' is not a number", v);
			have_seed = 1;
		} else if (!strcmp(a, "--lease")) {
			cfg.lease =
			    sec_arg(a, v, LARDER_LEASE_MIN_SECONDS, 86400);
		} else if (!strcmp(a, "--load-ms")) {
			cfg.load_ms = (int)num_arg(a, v, 0, 60000);
		} else if (!strcmp(a, "--max-size")) {
			cfg.max_size =
			    (size_t)num_arg(a, v, MIN_SIZE, 1L << 30);
		} else if (!strcmp(a, "--rewrite")) {
			if (!strcmp(v, "mixed"))
				cfg.rewrite = RW_MIXED;
			else if (!strcmp(v, "inplace"))
				cfg.rewrite = RW_INPLACE;
			else if (!strcmp(v, "rename"))
				cfg.rewrite = RW_RENAME;
			else
				die("--rewrite: '%s' is not mixed, inplace or "
				    "rename",
				    v);
		} else if (!strcmp(a, "--file-version")) {
			if (!strcmp(v, "larder"))
				cfg.own_versions = 0;
			else if (!strcmp(v, "own"))
				cfg.own_versions = 1;
			else
				die("--file-version: '%s' is neither larder "
				    "nor own",
				    v);
		} else if (!strcmp(a, "--journal")) {
			if (strcasecmp(v, "wal") && strcasecmp(v, "delete") &&
			    strcasecmp(v, "truncate") &&
			    strcasecmp(v, "persist"))
				die("--journal: '%s' is not wal, delete, "
				    "truncate or persist",
				    v);
			cfg.journal = v;
		} else if (!strcmp(a, "--timeout")) {
			cfg.timeout = (int)num_arg(a, v, 1, 86400);
		} else if (!strcmp(a, "--sabotage")) {
			if (!strcmp(v, "wrong"))
				cfg.sabotage = SB_WRONG;
			else if (!strcmp(v, "stale"))
				cfg.sabotage = SB_STALE;
			else if (!strcmp(v, "herd"))
				cfg.sabotage = SB_HERD;
			else
				die("--sabotage: '%s' is not wrong, stale or "
				    "herd",
				    v);
		} else {
			die("unknown option '%s' (see --help)", a);
		}
	}
	if (!have_variant)
		die("--variant file|sql is required (see --help)");
	if (cfg.source2 && !cfg.store2)
		die("--source2 goes with --store2");
	if (cfg.variant == V_SQL && cfg.source2)
		die("--source2 is for the file variant");
	if (!have_seed) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		cfg.seed =
		    mix((uint64_t)ts.tv_nsec ^ ((uint64_t)getpid() << 32)) %
		    1000000000;
	}
}

static void *shared_alloc(size_t size)
{
	void *p = mmap(NULL, size ? size : 1, PROT_READ | PROT_WRITE,
		       MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		die("mmap of %zu bytes: %s", size, strerror(errno));
	return p;
}

/* A scratch directory made for a run that ends before its clients start
 * (a setup error) holds nothing worth keeping. */
static char made_dir[PATH_MAX];
static pid_t controller;

static void drop_made_dir(void)
{
	if (made_dir[0] && getpid() == controller)
		rm_rf(made_dir);
}

int main(int argc, char **argv)
{
	parse_args(argc, argv);
	if ((int64_t)cfg.clients * cfg.waves > 10000000)
		die("--clients x --waves is over 10 million reads");

	char work[PATH_MAX], path[PATH_MAX];
	int made_work = 0;
	if (cfg.work) {
		if (mkdir(cfg.work, 0755) != 0 && errno != EEXIST)
			die("cannot make '%s': %s", cfg.work, strerror(errno));
		mkpath(work, sizeof work, "%s", cfg.work);
	} else {
		const char *t = getenv("TMPDIR");
		mkpath(work, sizeof work, "%s/larder-swarm.XXXXXX",
		       t && *t ? t : "/tmp");
		if (!mkdtemp(work))
			die("cannot make a directory in '%s': %s",
			    t && *t ? t : "/tmp", strerror(errno));
		made_work = 1;
		controller = getpid();
		memcpy(made_dir, work, sizeof made_dir);
		atexit(drop_made_dir);
	}
	cfg.work = work;
	char store[PATH_MAX], source[PATH_MAX];
	if (!cfg.store) {
		mkpath(store, sizeof store, "%s/store", work);
		cfg.store = store;
	}
	if (!cfg.source) {
		mkpath(source, sizeof source, "%s/%s", work,
		       cfg.variant == V_FILE ? "source.dat" : "swarm.db");
		cfg.source = source;
	}
	if (!cfg.source2)
		cfg.source2 = cfg.source;
	if (cfg.variant == V_FILE && strlen(cfg.source) + 16 >= PATH_MAX)
		die("--source: path too long");

	sh = shared_alloc(sizeof *sh);
	gens = shared_alloc(sizeof *gens * (size_t)(cfg.generations + 1));
	recs = shared_alloc(sizeof *recs * (size_t)cfg.clients *
			    (size_t)cfg.waves);
	client_err = shared_alloc(MSG_MAX * (size_t)cfg.clients);
	pids = calloc((size_t)cfg.clients, sizeof *pids);
	if (!pids)
		die("out of memory");

	larder_opts o = LARDER_OPTS_INIT;
	o.flags = LARDER_OPEN_CREATE;
	int rc = larder_open(&ctl, cfg.store, &o);
	if (rc)
		die("cannot open the store '%s': %s", cfg.store,
		    larder_errmsg(NULL));
	if (cfg.store2) {
		larder *db2;
		rc = larder_open(&db2, cfg.store2, NULL);
		if (rc)
			die("cannot open the store through --store2 '%s': %s",
			    cfg.store2, larder_errmsg(NULL));
		larder_close(db2);
	}
	int64_t t0 = now_ns();
	deadline = t0 + (int64_t)cfg.timeout * 1000000000;
	make_source();
	if (cfg.verbose)
		fprintf(stderr,
			"larder-swarm: %s variant, seed %" PRIu64
			", source '%s', store '%s', work '%s'\n",
			cfg.variant == V_FILE ? "file" : "sql", cfg.seed,
			cfg.source, cfg.store, work);

	made_dir[0] = 0; /* from here, the run's end decides */
	run_clients();
	write_logs();
	int ret = verdict((double)(now_ns() - t0) / 1e9);

	if (sq)
		sqlite3_close(sq);
	larder_close(ctl);
	free(genbuf);
	free(wave_of);
	if (ret == 0 && !cfg.keep) {
		if (made_work) {
			rm_rf(work);
		} else {
			for (int i = 0; i < cfg.clients; i++) {
				mkpath(path, sizeof path, "%s/c%d", work, i);
				rm_rf(path);
			}
			const char *left[] = {"manifest", "manifest.log",
					      "reads.log"};
			for (size_t i = 0; i < 3; i++) {
				mkpath(path, sizeof path, "%s/%s", work,
				       left[i]);
				rm_rf(path);
			}
		}
	} else if (made_work) {
		fprintf(stderr, "larder-swarm: scratch kept in %s\n", work);
	}
	return ret;
}
