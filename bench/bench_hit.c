/*
 * bench_hit.c — the cost of a verified warm hit against raw file I/O.
 *
 *   bench_hit [--quick] [--iters N] [--via DIR2] [--only 4k|96k|1m|256m]
 *             [--reuse WORKDIR] [--rounds FILE] [DIR]
 *
 * For payloads of 4 KiB, 96 KiB, 1 MiB and 256 MiB, in one run: the entry is
 * put into a fresh store under DIR (default $TMPDIR, else /tmp) and the same
 * bytes are written to a plain file next to it. Then, with the page cache
 * warm, these are timed in rounds, one of each per round in a random order,
 * so that the machine's noise (and each one's after-effects on caches and
 * TLB) falls on all of them alike:
 *
 *   larder    larder_get(known version) + touch every 4096th byte + release,
 *             through a handle opened with LARDER_OPEN_VERIFY_ALWAYS (no
 *             memo: every hit reads and verifies, as a first hit does)
 *   trust     the same through a handle opened with LARDER_OPEN_TRUST_LOCAL
 *             (no payload checksum): larder minus trust = the checksum
 *   read      open + read into a preallocated buffer + touch + close, of
 *             a plain file beside the store (DIR/larder-bench.XXXXXX/raw-N: the
 *             kernel walks one name below a directory it has cached)
 *   deep      the same, of a plain file as deep below a directory held
 *             open as the entry's file is below the store
 *             (ns/bench/e/xx/yy/NAME, opened with openat from that
 *             directory's descriptor): the path walk larder cannot skip.
 *             The targets stay against "read".
 *   mmap      open + mmap + touch + munmap + close
 *   repeat    larder_get through a handle with the memo (the default): a
 *             repeat hit, served from what an earlier hit verified
 *   memory    touch of the payload already in this process's memory: the
 *             floor of any in-process get that hands out a pointer (LMDB's
 *             get is of this kind), the anchor of the repeat line
 *   head      larder and repeat again, version-less (ver NULL: the key's
 *             head hint names the version), each against its versioned
 *             twin, like for like: a first lookup (head read from disk,
 *             no memo) and a repeat one (the handle's head cache and memo)
 *   pace      XXH3-128 of 4 KiB already in memory: fixed user-mode work
 *             that shows how fast the machine runs in this round
 *
 * and p50/p90 are reported with the ratios of the p50s against the targets
 * of docs/performance.md (PASS/MISS), plus the median of the ratios taken
 * within each round ("paired"), which moves less when the machine is busy.
 * Separate child processes then hold the 256 MiB entry (or read the plain
 * file into the heap) and report their peak RSS and anonymous/file RSS,
 * which shows whether a hit copies a large payload into the heap.
 *
 * A shared VM changes pace now and then, for a tenth of a second to
 * seconds (docs/performance.md, "Where a 4 KiB hit's time goes"), and
 * the p50s of a run mix whatever paces it ran at. A line "at the
 * machine's best pace" gives, for 4 KiB, the p50s and ratio of the
 * rounds in windows whose pace was within 5% of the run's fastest
 * window's, and that pace: runs compare like with like at the same pace.
 *
 * --quick runs a handful of iterations: a smoke test, not a measurement.
 * --only runs one size (for profiling it, e.g. under perf record).
 * --iters N times N rounds of each size: on a network filesystem, where a
 * round takes milliseconds (e.g. --only 4k --iters 500 on a GlusterFS
 * mount: version-less lookups there, docs/performance.md).
 * --via DIR2 reads through DIR2, another mount of DIR's filesystem (the
 * second client of a network filesystem): the entries and plain files
 * are written through DIR, every timed read goes through DIR2.
 * --rounds FILE writes every timed round's times (ns, tab-separated, in
 * the order taken) to FILE, to see the machine's pace change over a run.
 * --reuse WORKDIR works in WORKDIR instead of a fresh temporary directory
 * and keeps it: the first run puts the entries and writes the plain
 * files, later runs with the same WORKDIR measure those same files
 * (whether a run's figures belong to its store or to its process:
 * docs/performance.md, "Where a 4 KiB hit's time goes").
 * The exit status is 0 whether targets are met or not (noise on a shared
 * machine must not fail a build); it is non-zero only if something broke.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#if defined(__x86_64__) || defined(__i386__)
#include <xxh_x86dispatch.h> /* the entry point the library uses */
#else
#include <xxhash.h>
#endif

#include "bench.h"
#include "larder.h"

#define KiB ((uint64_t)1024)
#define MiB (1024 * KiB)
#define CHUNK (1 * MiB)
#define NS "bench"
#define VER "v1"

enum method {
	M_LARDER,
	M_TRUST,
	M_READ,
	M_MMAP,
	M_REPEAT,
	M_MEM,
	M_HEAD,	       /* version-less, as M_LARDER */
	M_HEAD_REPEAT, /* version-less, as M_REPEAT */
	M_DEEP,
	M_PACE, /* XXH3-128 of 4 KiB in memory: the machine's pace */
	M_COUNT
};

struct bcase {
	uint64_t size;
	const char *label;
	int iters, quick_iters;
	double target;	   /* larder p50 / raw read p50 must be <= this */
	const char *claim; /* how docs/performance.md words it */
	/* results */
	int ran, mapped;
	/* Timed verified hits that were mapped (the rest were read): a
	 * handle maps or reads by what it measured (docs/performance.md). */
	int mapped_hits;
	int n;
	double p50[M_COUNT], p90[M_COUNT];
	/* Median over rounds of larder/read and larder/mmap taken within the
	 * same round: a noise check on the ratio of the p50s. */
	double paired_read, paired_mmap, paired_deep;
	double hash_p50; /* XXH3-128 of the payload, in memory */
	/* The machine's pace (M_PACE) in its fastest and slowest windows of
	 * rounds, and the figures of the rounds at the fastest pace
	 * (steady_rounds(), bench.h). */
	double pace_fast, pace_slow;
	int steady_n;
	double steady_larder, steady_read, steady_paired;
	/* Repeat hits: their target in ns (docs/performance.md), and the
	 * share of them the memo served. */
	double repeat_target;
	double memo_share;
};

static struct bcase cases[] = {
    {.size = 4 * KiB,
     .label = "4 KiB",
     .iters = 20000,
     .quick_iters = 50,
     .target = 1.3,
     .claim = "<= 1.3x raw read",
     .repeat_target = 500},
    /* Just above the map threshold, where mapping and reading cost
     * about the same and which one wins depends on the machine. */
    {.size = 96 * KiB,
     .label = "96 KiB",
     .iters = 5000,
     .quick_iters = 20,
     .claim = "-"}, /* no target: shows the map-or-read choice */
    {.size = 1 * MiB,
     .label = "1 MiB",
     .iters = 2000,
     .quick_iters = 10,
     .target = 1.2,
     .claim = "<= 1.2x raw read",
     .repeat_target = 5000},
    {.size = 256 * MiB,
     .label = "256 MiB",
     .iters = 30,
     .quick_iters = 2,
     .target = 0.8,
     .claim = "<= 0.8x raw read"},
};
#define NCASES (sizeof cases / sizeof cases[0])

#define USAGE                                                                  \
	"usage: bench_hit [--quick] [--iters N] [--via DIR2] "                 \
	"[--only 4k|96k|1m|256m] [--reuse WORKDIR] [--rounds FILE] [DIR]"

static char workdir[4096];
/* The same directory as the readers see it (--via), else workdir. */
static char readdir_[4096];
static int quick;
static int iters;    /* --iters: rounds of every size (0: each its own) */
static FILE *rounds; /* --rounds: every round's times, or NULL */
/* What M_PACE hashes: its own, so that the work is the same in every
 * case (a case's payload buffer is as large as the case). */
static uint8_t pace_buf[4096];
static volatile uint64_t sink; /* keeps touches from being optimised out */

static void die(const char *fmt, ...)
    __attribute__((noreturn, format(printf, 1, 2)));

static void die(const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "bench_hit: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

static uint64_t touch(const uint8_t *p, uint64_t n)
{
	uint64_t s = 0;
	for (uint64_t off = 0; off < n; off += 4096)
		s += p[off];
	return s;
}

/* Deterministic, incompressible payload bytes for offset `off`. */
static void fill(uint8_t *buf, size_t len, uint64_t off, uint64_t seed)
{
	uint64_t x = seed * 0x9E3779B97F4A7C15ull + off / 8 + 1;
	for (size_t i = 0; i < len; i += 8) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		size_t k = len - i < 8 ? len - i : 8;
		memcpy(buf + i, &x, k);
	}
}

static void key_of(const struct bcase *c, char *key, size_t n)
{
	snprintf(key, n, "bench_hit/%" PRIu64, c->size);
}

static void raw_path(const struct bcase *c, char *path, size_t n, int reader)
{
	snprintf(path, n, "%s/raw-%" PRIu64, reader ? readdir_ : workdir,
		 c->size);
}

/* The directory the deep copies hang below, and each one's path below
 * it: as many components as an entry's file below the store (the name
 * is the size's, in the entry names' hex form). */
static void deep_top(char *path, size_t n)
{
	snprintf(path, n, "%s/deep", workdir);
}

static void deep_rel(const struct bcase *c, char *rel, size_t n)
{
	char hex[33];
	snprintf(hex, sizeof hex, "%032" PRIx64, c->size);
	snprintf(rel, n, "ns/" NS "/e/%.2s/%.2s/%s", hex, hex + 2, hex);
}

/* mkdir -p of top and every directory in top/rel but its last
 * component. */
static void make_parents(const char *top, const char *rel)
{
	char path[4200 + 256];
	snprintf(path, sizeof path, "%s/%s", top, rel);
	for (char *p = path + strlen(top); (p = strchr(p, '/')); p++) {
		*p = '\0';
		if (mkdir(path, 0755) != 0 && errno != EEXIST)
			die("cannot create '%s': %s", path, strerror(errno));
		*p = '/';
	}
}

static int rm_one(const char *path, const struct stat *st, int flag,
		  struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	if (flag == FTW_DP)
		rmdir(path);
	else
		unlink(path);
	return 0;
}

static void cleanup(void)
{
	if (workdir[0])
		nftw(workdir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	workdir[0] = '\0';
}

/* Put the entry and write the plain file, streaming 1 MiB at a time so
 * that this process never holds a large payload (its RSS is inherited by
 * the memory-measuring children). */
static void setup_case(larder *db, const struct bcase *c)
{
	char key[64], path[4200];
	key_of(c, key, sizeof key);
	raw_path(c, path, sizeof path, 0);

	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		die("cannot create '%s': %s", path, strerror(errno));
	/* The deep copy only where the path walk matters against the rest
	 * (it would double the disk a 256 MiB case needs). */
	int dfd = -1;
	char top[4200], rel[256], deep[4600];
	deep_top(top, sizeof top);
	deep_rel(c, rel, sizeof rel);
	snprintf(deep, sizeof deep, "%s/%s", top, rel);
	if (c->size <= CHUNK) {
		make_parents(top, rel);
		dfd =
		    open(deep, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0444);
		if (dfd < 0)
			die("cannot create '%s': %s", deep, strerror(errno));
	}
	larder_writer *w;
	int rc = larder_writer_begin(&w, db, NS, key, strlen(key), VER,
				     strlen(VER), NULL);
	if (rc)
		die("larder_writer_begin: %s", larder_errmsg(db));
	uint8_t *buf = malloc(CHUNK);
	if (!buf)
		die("out of memory");
	for (uint64_t off = 0; off < c->size; off += CHUNK) {
		size_t n = c->size - off < CHUNK ? c->size - off : CHUNK;
		fill(buf, n, off, c->size);
		if (write(fd, buf, n) != (ssize_t)n)
			die("cannot write '%s': %s", path, strerror(errno));
		if (dfd >= 0 && write(dfd, buf, n) != (ssize_t)n)
			die("cannot write '%s': %s", deep, strerror(errno));
		rc = larder_writer_write(w, buf, n);
		if (rc) {
			larder_writer_abort(w);
			die("larder_writer_write: %s", larder_errmsg(db));
		}
	}
	free(buf);
	/* Written back now, so that writeback does not run during timing. */
	if (fsync(fd) != 0 || close(fd) != 0)
		die("cannot fsync '%s': %s", path, strerror(errno));
	if (dfd >= 0 && (fsync(dfd) != 0 || close(dfd) != 0))
		die("cannot fsync '%s': %s", deep, strerror(errno));
	rc = larder_writer_commit(w);
	if (rc < 0)
		die("larder_writer_commit: %s", larder_errmsg(db));
}

/* One context for the timed operations of a case. */
struct ctx {
	larder *db, *db_trust, *db_memo;
	const struct bcase *c;
	char key[64], path[4200];
	uint8_t *buf; /* preallocated for raw reads */
	int deepfd;   /* the directory the deep copy is below, or -1 */
	char deep[256];
};

static int do_get(larder *db, const struct ctx *x, int headless)
{
	larder_entry *e;
	int rc = larder_get(&e, db, NS, x->key, strlen(x->key),
			    headless ? NULL : VER, headless ? 0 : strlen(VER));
	if (rc)
		die("larder_get(%s): %s: %s", x->c->label, larder_strerror(rc),
		    larder_errmsg(db));
	sink += touch(larder_entry_data(e), larder_entry_size(e));
	int mapped = larder_entry_is_mapped(e);
	larder_entry_release(e);
	return mapped;
}

static void do_read_fd(const struct ctx *x, int fd)
{
	uint64_t got = 0;
	while (got < x->c->size) {
		ssize_t n = read(fd, x->buf + got, x->c->size - got);
		if (n <= 0)
			die("cannot read '%s': %s", x->path,
			    n ? strerror(errno) : "short file");
		got += (uint64_t)n;
	}
	close(fd);
	sink += touch(x->buf, x->c->size);
}

static void do_read(const struct ctx *x)
{
	int fd = open(x->path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		die("cannot open '%s': %s", x->path, strerror(errno));
	do_read_fd(x, fd);
}

static void do_read_deep(const struct ctx *x)
{
	int fd = openat(x->deepfd, x->deep, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		die("cannot open '%s' below '%s/deep': %s", x->deep, workdir,
		    strerror(errno));
	do_read_fd(x, fd);
}

static void do_mmap(const struct ctx *x)
{
	int fd = open(x->path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		die("cannot open '%s': %s", x->path, strerror(errno));
	void *p = mmap(NULL, x->c->size, PROT_READ, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED)
		die("cannot mmap '%s': %s", x->path, strerror(errno));
	sink += touch(p, x->c->size);
	munmap(p, x->c->size);
	close(fd);
}

static int64_t run_one(int m, const struct ctx *x, int *mapped)
{
	int64_t t0 = now_ns();
	switch (m) {
	case M_LARDER:
		*mapped = do_get(x->db, x, 0);
		break;
	case M_TRUST:
		do_get(x->db_trust, x, 0);
		break;
	case M_READ:
		do_read(x);
		break;
	case M_REPEAT:
		do_get(x->db_memo, x, 0);
		break;
	case M_HEAD:
		do_get(x->db, x, 1);
		break;
	case M_HEAD_REPEAT:
		do_get(x->db_memo, x, 1);
		break;
	case M_MEM:
		sink += touch(x->buf, x->c->size);
		break;
	case M_DEEP:
		if (x->deepfd >= 0)
			do_read_deep(x);
		break;
	case M_PACE: {
		XXH128_hash_t h = XXH3_128bits(pace_buf, sizeof pace_buf);
		sink += h.low64;
		break;
	}
	default:
		do_mmap(x);
		break;
	}
	return now_ns() - t0;
}

/* Windows of rounds whose median pace is within this of the fastest
 * window's are at the machine's best pace: on the VM of
 * docs/performance.md the fast windows' medians lay within 2% of each
 * other, the slow ones 25-45% above them. */
#define PACE_SLACK 1.05
/* Past this, a round's reads push the pace's 4 KiB out of the CPU's
 * first-level cache and the pace measures that, not the machine (in a
 * 96 KiB round it read 1.6x what it read in a 4 KiB round). */
#define PACE_MAX_SIZE (4 * KiB)

/* The larder and raw read p50s, and their paired ratio, of the rounds
 * taken at the machine's best pace (steady_rounds(), bench.h), from the
 * rounds' times t[method][round] in the order they were taken. */
static void steady_case(struct bcase *c, double *const *t, int n)
{
	unsigned char *keep = malloc((size_t)n);
	double *l = malloc(sizeof(double) * (size_t)n),
	       *r = malloc(sizeof(double) * (size_t)n),
	       *p = malloc(sizeof(double) * (size_t)n);
	int w = n / 40 > 5 ? n / 40 : 5;
	int kept = keep && l && r && p
		       ? steady_rounds(t[M_PACE], n, w, PACE_SLACK, keep,
				       &c->pace_fast, &c->pace_slow)
		       : -1;
	if (kept < 0)
		die("out of memory");
	int j = 0;
	for (int i = 0; i < n; i++)
		if (keep[i]) {
			l[j] = t[M_LARDER][i];
			r[j] = t[M_READ][i];
			p[j] = t[M_LARDER][i] / t[M_READ][i];
			j++;
		}
	qsort(l, (size_t)j, sizeof(double), cmp_double);
	qsort(r, (size_t)j, sizeof(double), cmp_double);
	qsort(p, (size_t)j, sizeof(double), cmp_double);
	c->steady_n = j;
	c->steady_larder = pct(l, j, 0.5);
	c->steady_read = pct(r, j, 0.5);
	c->steady_paired = pct(p, j, 0.5);
	free(keep);
	free(l);
	free(r);
	free(p);
}

static void measure_case(larder *db, larder *db_trust, larder *db_memo,
			 struct bcase *c)
{
	struct ctx x = {db, db_trust, db_memo, c, {0}, {0}, NULL, -1, {0}};
	key_of(c, x.key, sizeof x.key);
	raw_path(c, x.path, sizeof x.path, 1);
	if (c->size <= CHUNK) {
		char top[4200];
		deep_top(top, sizeof top);
		x.deepfd = open(top, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (x.deepfd < 0)
			die("cannot open '%s': %s", top, strerror(errno));
		deep_rel(c, x.deep, sizeof x.deep);
	}
	x.buf = malloc(c->size);
	if (!x.buf)
		die("out of memory for a %s buffer", c->label);
	memset(x.buf, 0, c->size); /* fault it in: "preallocated" */

	/* Check once that the entry holds the plain file's bytes, and warm
	 * the page cache through both paths. */
	do_read(&x);
	larder_entry *e;
	if (larder_get(&e, db, NS, x.key, strlen(x.key), VER, strlen(VER)))
		die("larder_get(%s): %s", c->label, larder_errmsg(db));
	if (larder_entry_size(e) != c->size ||
	    memcmp(larder_entry_data(e), x.buf, c->size) != 0)
		die("%s: the entry's bytes differ from the plain file's",
		    c->label);
	c->mapped = larder_entry_is_mapped(e);
	larder_entry_release(e);

	int n = iters ? iters : quick ? c->quick_iters : c->iters;
	int warm = n / 10 + 1;
	uint64_t memo0 = larder_counter(db_memo, LARDER_CTR_MEMO_HITS);
	uint64_t hits0 = larder_counter(db_memo, LARDER_CTR_HITS);
	double *t[M_COUNT];
	for (int m = 0; m < M_COUNT; m++)
		if (!(t[m] = malloc(sizeof(double) * (size_t)n)))
			die("out of memory");
	uint64_t rng = 0x2545F4914F6CDD1Dull;
	for (int r = -warm; r < n; r++) {
		/* A fresh random order every round. Rotating a fixed order is
		 * not enough: each method would always follow the same other
		 * one and inherit its damage (an munmap's TLB flush made the
		 * method after mmap 1.4 us slower at 4 KiB). */
		int order[M_COUNT];
		shuffle_order(order, M_COUNT, &rng);
		for (int k = 0; k < M_COUNT; k++) {
			int m = order[k];
			int mapped = 0;
			int64_t d = run_one(m, &x, &mapped);
			if (r >= 0) {
				t[m][r] = (double)d;
				c->mapped_hits += mapped;
			}
		}
	}
	for (int r = 0; rounds && r < n; r++) {
		fprintf(rounds, "%s\t%d", c->label, r);
		for (int m = 0; m < M_COUNT; m++)
			fprintf(rounds, "\t%.0f", t[m][r]);
		fputc('\n', rounds);
	}
	uint64_t hits = larder_counter(db_memo, LARDER_CTR_HITS) - hits0;
	c->memo_share =
	    hits ? (double)(larder_counter(db_memo, LARDER_CTR_MEMO_HITS) -
			    memo0) /
		       (double)hits
		 : 0;
	double *rr = malloc(sizeof(double) * (size_t)n),
	       *rm = malloc(sizeof(double) * (size_t)n),
	       *rd = malloc(sizeof(double) * (size_t)n);
	if (!rr || !rm || !rd)
		die("out of memory");
	for (int r = 0; r < n; r++) {
		rr[r] = t[M_LARDER][r] / t[M_READ][r];
		rm[r] = t[M_LARDER][r] / t[M_MMAP][r];
		rd[r] = x.deepfd >= 0 ? t[M_LARDER][r] / t[M_DEEP][r] : 0;
	}
	qsort(rr, (size_t)n, sizeof(double), cmp_double);
	qsort(rm, (size_t)n, sizeof(double), cmp_double);
	qsort(rd, (size_t)n, sizeof(double), cmp_double);
	c->paired_read = pct(rr, n, 0.5);
	c->paired_mmap = pct(rm, n, 0.5);
	c->paired_deep = pct(rd, n, 0.5);
	free(rr);
	free(rm);
	free(rd);
	steady_case(c, t, n);
	for (int m = 0; m < M_COUNT; m++) {
		qsort(t[m], (size_t)n, sizeof(double), cmp_double);
		c->p50[m] = pct(t[m], n, 0.5);
		c->p90[m] = pct(t[m], n, 0.9);
		free(t[m]);
	}

	/* The checksum alone, on bytes already in memory: what XXH3-128 costs
	 * at best, to compare with (larder - trust). */
	int hn = n < 200 ? n : 200;
	double *h = malloc(sizeof(double) * (size_t)hn);
	if (!h)
		die("out of memory");
	for (int r = 0; r < hn; r++) {
		int64_t t0 = now_ns();
		XXH128_hash_t hh = XXH3_128bits(x.buf, c->size);
		h[r] = (double)(now_ns() - t0);
		sink += hh.low64;
	}
	qsort(h, (size_t)hn, sizeof(double), cmp_double);
	c->hash_p50 = pct(h, hn, 0.5);
	free(h);

	c->n = n;
	c->ran = 1;
	free(x.buf);
	if (x.deepfd >= 0)
		close(x.deepfd);
}

/* ---- the machine's page-fault cost ----------------------------------- */

/* What faulting a mapped file in costs here against copying it: open +
 * mmap + touch every page + munmap + close of a 1 MiB file against open +
 * read into a preallocated buffer + close, interleaved, p50 of each, and
 * the minor faults a mapping takes (the kernel maps several pages per
 * fault). On some machines mapping is cheaper than copying, on VMs with
 * dear faults ten times dearer: the figures say which kind this is, and
 * why a hit there reads what it would map elsewhere (docs/performance.md,
 * "Map or read"). */
struct faultcost {
	double map_us, read_us, faults, ns_per_fault;
};

static void fault_probe(struct faultcost *fc)
{
	char path[4200];
	snprintf(path, sizeof path, "%s/fault-probe", workdir);
	uint8_t *buf = malloc(MiB);
	if (!buf)
		die("out of memory");
	fill(buf, MiB, 0, 77);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || write(fd, buf, MiB) != (ssize_t)MiB || fsync(fd) != 0 ||
	    close(fd) != 0)
		die("cannot write '%s': %s", path, strerror(errno));
	struct bcase c = {.size = MiB, .label = "fault probe"};
	struct ctx x = {NULL, NULL, NULL, &c, {0}, {0}, buf, -1, {0}};
	snprintf(x.path, sizeof x.path, "%s", path);
	int n = quick ? 10 : 300;
	double *tm = malloc(sizeof(double) * (size_t)n),
	       *tr = malloc(sizeof(double) * (size_t)n);
	if (!tm || !tr)
		die("out of memory");
	long faults = 0;
	for (int r = -n / 10 - 1; r < n; r++) {
		struct rusage a, b;
		getrusage(RUSAGE_SELF, &a);
		int64_t t0 = now_ns();
		do_mmap(&x);
		int64_t t1 = now_ns();
		getrusage(RUSAGE_SELF, &b);
		do_read(&x);
		int64_t t2 = now_ns();
		if (r < 0)
			continue;
		faults += b.ru_minflt - a.ru_minflt;
		tm[r] = (double)(t1 - t0);
		tr[r] = (double)(t2 - t1);
	}
	qsort(tm, (size_t)n, sizeof(double), cmp_double);
	qsort(tr, (size_t)n, sizeof(double), cmp_double);
	fc->map_us = pct(tm, n, 0.5) / 1000;
	fc->read_us = pct(tr, n, 0.5) / 1000;
	fc->faults = (double)faults / n;
	/* An upper bound: the whole mapping's time over its faults. */
	fc->ns_per_fault = fc->faults > 0 ? pct(tm, n, 0.5) / fc->faults : 0;
	free(tm);
	free(tr);
	free(buf);
	unlink(path);
}

/* ---- memory: what a process holding a large payload costs ---------- */

struct mem {
	long maxrss_kb;	  /* getrusage ru_maxrss */
	long anon_kb;	  /* RssAnon while holding the data */
	long file_kb;	  /* RssFile while holding the data */
	long baseline_kb; /* VmRSS at the child's start */
};

static long status_kb(const char *field)
{
	FILE *f = fopen("/proc/self/status", "r");
	if (!f)
		return -1;
	char line[256];
	long v = -1;
	size_t fl = strlen(field);
	while (fgets(line, sizeof line, f))
		if (strncmp(line, field, fl) == 0 && line[fl] == ':') {
			v = strtol(line + fl + 1, NULL, 10);
			break;
		}
	fclose(f);
	return v;
}

enum child_kind { C_IDLE, C_LARDER, C_READ };

static void child_body(enum child_kind kind, const char *store,
		       const struct bcase *c, struct mem *out)
{
	char key[64], path[4200];
	key_of(c, key, sizeof key);
	raw_path(c, path, sizeof path, 0);
	int reps = quick ? 1 : 5;
	out->baseline_kb = status_kb("VmRSS");

	if (kind == C_LARDER) {
		larder *db;
		if (larder_open(&db, store, NULL))
			_exit(3);
		for (int i = 0; i < reps; i++) {
			larder_entry *e;
			if (larder_get(&e, db, NS, key, strlen(key), VER,
				       strlen(VER)))
				_exit(4);
			sink +=
			    touch(larder_entry_data(e), larder_entry_size(e));
			if (i == reps - 1) {
				out->anon_kb = status_kb("RssAnon");
				out->file_kb = status_kb("RssFile");
			}
			larder_entry_release(e);
		}
		larder_close(db);
	} else if (kind == C_READ) {
		uint8_t *buf = malloc(c->size);
		if (!buf)
			_exit(5);
		for (int i = 0; i < reps; i++) {
			int fd = open(path, O_RDONLY | O_CLOEXEC);
			if (fd < 0)
				_exit(6);
			uint64_t got = 0;
			while (got < c->size) {
				ssize_t n = read(fd, buf + got, c->size - got);
				if (n <= 0)
					_exit(7);
				got += (uint64_t)n;
			}
			close(fd);
			sink += touch(buf, c->size);
		}
		out->anon_kb = status_kb("RssAnon");
		out->file_kb = status_kb("RssFile");
		free(buf);
	} else {
		out->anon_kb = status_kb("RssAnon");
		out->file_kb = status_kb("RssFile");
	}
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	out->maxrss_kb = ru.ru_maxrss;
}

/* Run one child and collect what it measured. Forked (not exec'ed: exec
 * carries the parent's peak RSS into ru_maxrss) from a parent that holds
 * no large buffer, so the child starts small. */
static int run_child(enum child_kind kind, const char *store,
		     const struct bcase *c, struct mem *out)
{
	int p[2];
	if (pipe(p) != 0)
		die("pipe: %s", strerror(errno));
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0)
		die("fork: %s", strerror(errno));
	if (pid == 0) {
		close(p[0]);
		struct mem m = {-1, -1, -1, -1};
		child_body(kind, store, c, &m);
		ssize_t w = write(p[1], &m, sizeof m);
		_exit(w == (ssize_t)sizeof m ? 0 : 8);
	}
	close(p[1]);
	ssize_t r = read(p[0], out, sizeof *out);
	close(p[0]);
	int st;
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	return r == (ssize_t)sizeof *out && WIFEXITED(st) &&
		       WEXITSTATUS(st) == 0
		   ? 0
		   : -1;
}

/* ---- output -------------------------------------------------------- */

static const char *fmt_t(double ns, char *buf, size_t n)
{
	if (ns < 10e3 && ns > -10e3)
		snprintf(buf, n, "%.2f us", ns / 1e3);
	else if (ns < 1e6 && ns > -1e6)
		snprintf(buf, n, "%.1f us", ns / 1e3);
	else
		snprintf(buf, n, "%.2f ms", ns / 1e6);
	return buf;
}

/* The figures to compare from run to run (docs/performance.md, "Where a
 * 4 KiB hit's time goes"): the p50s of print_results() mix whatever paces
 * the machine ran at during the run. */
static void print_steady(void)
{
	char a[32], b[32];
	int small = 0, mixed = 0;
	for (size_t i = 0; i < NCASES; i++)
		small |= cases[i].ran && cases[i].size <= PACE_MAX_SIZE;
	if (!small)
		return;
	printf("\nat the machine's best pace (pace: XXH3-128 of 4 KiB in "
	       "memory, every round; the rounds of the windows whose pace, "
	       "their 75th percentile, is within %.0f%% of the fastest "
	       "window's; 4 KiB only: larger rounds push the pace's bytes "
	       "out of the cache)\n",
	       (PACE_SLACK - 1) * 100);
	printf("%-8s %8s %8s %8s %14s %14s %12s %8s  %-8s\n", "size", "fastest",
	       "slowest", "rounds", "larder", "raw read", "larder/read",
	       "paired", "result");
	for (size_t i = 0; i < NCASES; i++) {
		const struct bcase *c = &cases[i];
		if (!c->ran || c->size > PACE_MAX_SIZE)
			continue;
		double rr = c->steady_larder / c->steady_read;
		printf("%-8s %5.0f ns %7.2fx %7.0f%% %14s %14s %11.2fx %8.2f  "
		       "%s\n",
		       c->label, c->pace_fast, c->pace_slow / c->pace_fast,
		       100.0 * c->steady_n / c->n,
		       fmt_t(c->steady_larder, a, sizeof a),
		       fmt_t(c->steady_read, b, sizeof b), rr, c->steady_paired,
		       c->target <= 0	 ? "(no target)"
		       : rr <= c->target ? "PASS"
					 : "MISS");
		mixed |= c->pace_slow > c->pace_fast * PACE_SLACK;
	}
	if (mixed)
		printf(
		    "the machine changed pace during the run: the p50s above "
		    "mix the paces; these compare like with like (with other "
		    "runs, only at the same fastest pace)\n");
}

static void print_results(void)
{
	char a[32], b[32];
	printf("\nlatency, warm page cache, p50 / p90 (methods interleaved)\n");
	printf("%-8s %6s  %-22s %-22s %-22s %-22s %-22s %-22s %-22s %-22s "
	       "%-22s %-22s %s\n",
	       "size", "iters", "larder (verified)", "larder (trust_local)",
	       "raw read", "raw mmap", "larder (repeat)", "in memory",
	       "head (first)", "head (repeat)", "raw read (deep)", "pace",
	       "hit");
	for (size_t i = 0; i < NCASES; i++) {
		const struct bcase *c = &cases[i];
		if (!c->ran)
			continue;
		printf("%-8s %6d", c->label, c->n);
		for (int m = 0; m < M_COUNT; m++) {
			char cell[2 * 32 + 4]; /* two fmt_t cells and " / " */
			snprintf(cell, sizeof cell, "%s / %s",
				 fmt_t(c->p50[m], a, sizeof a),
				 fmt_t(c->p90[m], b, sizeof b));
			if (m == M_DEEP && c->paired_deep == 0)
				snprintf(cell, sizeof cell, "-");
			printf("  %-21s", cell);
		}
		if (c->mapped_hits == c->n || c->mapped_hits == 0)
			printf(" %s\n", c->mapped_hits ? "mmap" : "read");
		else
			printf(" mmap %.0f%%\n", 100.0 * c->mapped_hits / c->n);
	}

	printf("\nratios of p50 (targets: docs/performance.md)\n");
	printf("%-8s %12s %12s %14s  %-18s %-8s %12s %8s\n", "size",
	       "larder/read", "larder/mmap", "paired r / m", "target", "result",
	       "larder/deep", "paired");
	for (size_t i = 0; i < NCASES; i++) {
		const struct bcase *c = &cases[i];
		if (!c->ran)
			continue;
		double rr = c->p50[M_LARDER] / c->p50[M_READ];
		double rm = c->p50[M_LARDER] / c->p50[M_MMAP];
		char pr[32];
		snprintf(pr, sizeof pr, "%.2f / %.2f", c->paired_read,
			 c->paired_mmap);
		char dr[32] = "-", dp[32] = "-";
		if (c->paired_deep > 0) {
			snprintf(dr, sizeof dr, "%.2fx",
				 c->p50[M_LARDER] / c->p50[M_DEEP]);
			snprintf(dp, sizeof dp, "%.2f", c->paired_deep);
		}
		printf("%-8s %11.2fx %11.2fx %14s  %-18s %-8s %12s %8s%s\n",
		       c->label, rr, rm, pr, c->claim,
		       c->target <= 0	 ? "(no target)"
		       : rr <= c->target ? "PASS"
					 : "MISS",
		       dr, dp, quick ? " (--quick: not a measurement)" : "");
	}

	print_steady();

	printf("\nrepeat hits (the memo; targets: docs/performance.md)\n");
	printf("%-8s %12s %12s %12s %12s  %-12s %s\n", "size", "repeat p50",
	       "repeat/read", "repeat/mem", "from memo", "target", "result");
	for (size_t i = 0; i < NCASES; i++) {
		const struct bcase *c = &cases[i];
		if (!c->ran)
			continue;
		char tg[32] = "-";
		if (c->repeat_target > 0)
			snprintf(tg, sizeof tg, "<= %s",
				 fmt_t(c->repeat_target, b, sizeof b));
		printf("%-8s %12s %11.3fx %11.1fx %11.0f%%  %-12s %s%s\n",
		       c->label, fmt_t(c->p50[M_REPEAT], a, sizeof a),
		       c->p50[M_REPEAT] / c->p50[M_READ],
		       c->p50[M_REPEAT] / c->p50[M_MEM], 100 * c->memo_share,
		       tg,
		       c->repeat_target <= 0
			   ? (c->memo_share < 0.5
				  ? "(not memoised: over memo_bytes)"
				  : "(no target)")

		       : c->p50[M_REPEAT] <= c->repeat_target ? "PASS"
							      : "MISS",
		       quick ? " (--quick)" : "");
	}

	/* A version-less get against its versioned twin, like for like: a
	 * first lookup (no memo: the head and the entry read from disk)
	 * against a first hit, a repeat one (head cache and memo) against a
	 * repeat hit. */
	printf("\nversion-less lookups (ver NULL, the head hint; target "
	       "docs/performance.md)\n");
	printf("%-8s %12s %12s %12s %12s  %-12s %s\n", "size", "first p50",
	       "first/ver", "repeat p50", "repeat/ver", "target", "result");
	for (size_t i = 0; i < NCASES; i++) {
		const struct bcase *c = &cases[i];
		if (!c->ran)
			continue;
		double rf = c->p50[M_HEAD] / c->p50[M_LARDER];
		double rp = c->p50[M_HEAD_REPEAT] / c->p50[M_REPEAT];
		printf("%-8s %12s %11.2fx %12s %11.2fx  %-12s %s%s\n", c->label,
		       fmt_t(c->p50[M_HEAD], a, sizeof a), rf,
		       fmt_t(c->p50[M_HEAD_REPEAT], b, sizeof b), rp, "<= 1.5x",
		       rf <= 1.5 && rp <= 1.5 ? "PASS" : "MISS",
		       quick ? " (--quick)" : "");
	}

	printf("\nwhere a hit's time goes (p50)\n");
	printf("%-8s %14s %14s %14s %14s\n", "size", "checksum", "share of hit",
	       "xxh3 in RAM", "trusted - raw");
	for (size_t i = 0; i < NCASES; i++) {
		const struct bcase *c = &cases[i];
		if (!c->ran)
			continue;
		double sum = c->p50[M_LARDER] - c->p50[M_TRUST];
		char d[32];
		/* "rest": a trusted hit minus the raw mmap (or read) path, i.e.
		 * lookup, header and handle overhead. */
		double base = c->mapped ? c->p50[M_MMAP] : c->p50[M_READ];
		fmt_t(c->p50[M_TRUST] - base, d, sizeof d);
		printf("%-8s %14s %13.0f%% %14s %14s\n", c->label,
		       fmt_t(sum, a, sizeof a), 100.0 * sum / c->p50[M_LARDER],
		       fmt_t(c->hash_p50, b, sizeof b), d);
	}
}

int main(int argc, char **argv)
{
	const char *base = NULL, *only = NULL, *via = NULL, *reuse = NULL;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--quick") == 0)
			quick = 1;
		else if (strcmp(argv[i], "--iters") == 0 && i + 1 < argc &&
			 (iters = atoi(argv[++i])) > 0)
			;
		else if (strcmp(argv[i], "--via") == 0 && i + 1 < argc)
			via = argv[++i];
		else if (strcmp(argv[i], "--only") == 0 && i + 1 < argc)
			only = argv[++i];
		else if (strcmp(argv[i], "--reuse") == 0 && i + 1 < argc)
			reuse = argv[++i];
		else if (strcmp(argv[i], "--rounds") == 0 && i + 1 < argc) {
			if (!(rounds = fopen(argv[++i], "w")))
				die("cannot create '%s': %s", argv[i],
				    strerror(errno));
			fprintf(rounds, "size\tround\tlarder\ttrust\tread\t"
					"mmap\trepeat\tmemory\thead\t"
					"head_repeat\tdeep\tpace\n");
		} else if (strcmp(argv[i], "-h") == 0 ||
			   strcmp(argv[i], "--help") == 0) {
			printf("%s\n", USAGE);
			return 0;
		} else if (argv[i][0] == '-')
			die("unknown option '%s'\n%s", argv[i], USAGE);
		else
			base = argv[i];
	}
	for (size_t i = 0; only && i < NCASES; i++) {
		uint64_t want = strtoull(only, NULL, 10);
		const char *u = only + strspn(only, "0123456789");
		want *= (*u == 'k' || *u == 'K')   ? KiB
			: (*u == 'm' || *u == 'M') ? MiB
						   : 1;
		if (cases[i].size != want)
			cases[i].size = 0;
	}
	int selected = 0;
	for (size_t i = 0; i < NCASES; i++)
		selected |= cases[i].size != 0;
	if (!selected)
		die("--only %s matches no size\n%s", only, USAGE);
	if (!base)
		base = getenv("TMPDIR");
	if (!base || !*base)
		base = "/tmp";

	/* Set up already (--reuse): its store and files are measured again. */
	int reused = 0;
	if (reuse) {
		if (snprintf(workdir, sizeof workdir, "%s", reuse) >=
		    (int)sizeof workdir)
			die("--reuse: '%s' is too long", reuse);
		if (mkdir(workdir, 0700) != 0 && errno != EEXIST)
			die("cannot create '%s': %s", workdir, strerror(errno));
		char done[4200];
		snprintf(done, sizeof done, "%s/set-up", workdir);
		reused = access(done, F_OK) == 0;
	} else {
		snprintf(workdir, sizeof workdir, "%s/larder-bench.XXXXXX",
			 base);
		if (!mkdtemp(workdir)) {
			int e = errno;
			workdir[0] = '\0';
			die("cannot create a directory under '%s': %s", base,
			    strerror(e));
		}
		atexit(cleanup);
	}

	/* The big case needs its payload twice on disk (entry + plain file). */
	struct statvfs vfs;
	uint64_t avail = statvfs(workdir, &vfs) == 0
			     ? (uint64_t)vfs.f_bavail * vfs.f_frsize
			     : UINT64_MAX;
	for (size_t i = 0; i < NCASES; i++)
		if (cases[i].size * 2 + 64 * MiB > avail) {
			fprintf(stderr,
				"bench_hit: skipping %s: %" PRIu64
				" MiB free under %s\n",
				cases[i].label, avail / MiB, base);
			cases[i].size = 0;
		}

	snprintf(readdir_, sizeof readdir_, "%s%s", via ? via : workdir,
		 via ? strrchr(workdir, '/') : "");
	char store[4200], rstore[4200];
	snprintf(store, sizeof store, "%s/store", workdir);
	snprintf(rstore, sizeof rstore, "%s/store", readdir_);
	/* The first-hit handles verify every read: with the memo, all but
	 * their first hit would be repeat hits. */
	larder_opts o = LARDER_OPTS_INIT;
	o.flags = LARDER_OPEN_CREATE | LARDER_OPEN_VERIFY_ALWAYS;
	larder *db, *db_trust, *db_memo;
	larder *dbw; /* writes the entries, through DIR */
	if (larder_open(&dbw, store, &o))
		die("cannot open store '%s': %s", store, larder_errmsg(NULL));
	o.flags &= ~LARDER_OPEN_CREATE;
	if (larder_open(&db, rstore, &o))
		die("cannot open store '%s': %s", rstore, larder_errmsg(NULL));
	larder_opts ot = LARDER_OPTS_INIT;
	ot.flags = LARDER_OPEN_TRUST_LOCAL | LARDER_OPEN_VERIFY_ALWAYS;
	if (larder_open(&db_trust, rstore, &ot))
		die("cannot open store '%s': %s", rstore, larder_errmsg(NULL));
	larder_opts om = LARDER_OPTS_INIT; /* the memo as a user gets it */
	if (larder_open(&db_memo, rstore, &om))
		die("cannot open store '%s': %s", rstore, larder_errmsg(NULL));

	char host[256] = "?";
	gethostname(host, sizeof host);
	time_t now = time(NULL);
	char date[64];
	strftime(date, sizeof date, "%Y-%m-%d %H:%M:%S %z", localtime(&now));
	double load[3] = {0, 0, 0};
	getloadavg(load, 3);
	printf("bench_hit: larder %s, %s, host %s, %ld cpus, load %.2f%s\n",
	       larder_version(), date, host, sysconf(_SC_NPROCESSORS_ONLN),
	       load[0], quick ? ", --quick" : "");
	printf("store %s (default options: verified reads, mmap threshold "
	       "default; the memo only in the repeat column)\n",
	       store);
	if (via)
		printf("read through %s (--via)\n", rstore);

	struct faultcost fc;
	fault_probe(&fc);
	printf("fault cost: mmap+touch of 1 MiB %.1f us, read %.1f us "
	       "(%.2fx), %.0f faults, <= %.0f ns each: %s\n",
	       fc.map_us, fc.read_us, fc.map_us / fc.read_us, fc.faults,
	       fc.ns_per_fault,
	       fc.map_us < fc.read_us ? "faults are cheap here (mapping wins)"
				      : "faults are dear here (copying wins)");

	fill(pace_buf, sizeof pace_buf, 0, 99);
	for (size_t i = 0; i < NCASES && !reused; i++)
		if (cases[i].size)
			setup_case(dbw, &cases[i]);
	if (reuse && !reused) {
		/* Marks the cases set up; a later run must ask for the same
		 * --only (or none), which it is not checked for. */
		char done[4200];
		snprintf(done, sizeof done, "%s/set-up", workdir);
		int fd = open(done, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
		if (fd < 0 || close(fd) != 0)
			die("cannot create '%s': %s", done, strerror(errno));
	}
	if (reuse)
		printf("%s work directory %s (--reuse; kept)\n",
		       reused ? "measuring again in" : "set up", workdir);

	/* Memory first, while this process holds no large buffer. */
	const struct bcase *big = &cases[NCASES - 1];
	struct mem mi, ml, mr;
	int mem_ok = 0;
	if (big->size) {
		mem_ok = run_child(C_IDLE, store, big, &mi) == 0 &&
			 run_child(C_LARDER, store, big, &ml) == 0 &&
			 run_child(C_READ, store, big, &mr) == 0;
		if (!mem_ok)
			die("a memory-measuring child failed");
	}

	for (size_t i = 0; i < NCASES; i++) {
		if (!cases[i].size)
			continue;
		printf("measuring %s ...\n", cases[i].label);
		fflush(stdout);
		measure_case(db, db_trust, db_memo, &cases[i]);
	}

	print_results();
	/* A busy machine skews the ratios less than the absolute times, but
	 * say so: the figures are only as quiet as the machine was. */
	getloadavg(load, 3);
	printf("\nload average at the end: %.2f (%ld cpus)\n", load[0],
	       sysconf(_SC_NPROCESSORS_ONLN));

	if (mem_ok) {
		printf("\nmemory of a process taking the %s payload %d times "
		       "(KiB)\n",
		       big->label, quick ? 1 : 5);
		printf("%-22s %10s %10s %10s\n", "child", "ru_maxrss",
		       "RssAnon", "RssFile");
		printf("%-22s %10ld %10ld %10ld\n", "idle (baseline)",
		       mi.maxrss_kb, mi.anon_kb, mi.file_kb);
		printf("%-22s %10ld %10ld %10ld\n", "larder_get hits",
		       ml.maxrss_kb, ml.anon_kb, ml.file_kb);
		printf("%-22s %10ld %10ld %10ld\n", "raw read into heap",
		       mr.maxrss_kb, mr.anon_kb, mr.file_kb);
		long copy = ml.anon_kb - mi.anon_kb;
		printf("heap growth of a hit: %ld KiB (%s); RssFile counts the "
		       "shared page cache mapped, not a copy\n",
		       copy,
		       copy < (long)(big->size / KiB / 16)
			   ? "no copy of the payload"
			   : "the payload was COPIED into the heap");
	}

	larder_close(db_memo);
	larder_close(db_trust);
	larder_close(db);
	larder_close(dbw);
	return 0;
}
