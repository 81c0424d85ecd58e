/*
 * stats.c — owns the store's persistent counters and usage (stats.h):
 * the handle's pending deltas, the shard files under DIR/stats/, their
 * text format and check, and the public larder_stats_* reading API.
 *
 * A shard (docs/format.md):
 *   larder-counters 1
 *   hits 1234                      one line per counter, by name
 *   usage <ns> <bytes> <entries>   deltas summed over time; may be < 0
 *   checksum <32 hex>              XXH3-128 of every byte above it
 *
 * A flush takes a POSIX write lock on one shard (F_SETLK, bounded retries:
 * it works on NFS and GlusterFS and never waits for ever), reads it, adds
 * the deltas, writes it back in place and unlocks. A crash in the middle
 * leaves a torn shard that fails its checksum: the next flusher keeps a
 * copy (stats/bad-*) and counts from zero again.
 */
#include "stats.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "clock.h"
#include "fsutil.h"
#include "hash.h"
#include "store.h"

#define SHARDS 16
#define MAGIC "larder-counters"
#define FORMAT 1
#define FLUSH_BOUND_MS 1000 /* a flush never waits longer for locks */
#define FLUSH_EVERY_S 60    /* long-running processes flush this often */
#define NAME_MAX_LEN 64	    /* counter names */
#define LINE_MAX_LEN 4096   /* a longer line is not ours: the shard is bad */

/* What a shard may hold (docs/format.md, "Counter files"), so that what
 * every process pays at exit for its flush, and `larder stat` for the
 * sum, stays bounded whatever a shard's writer put in it: at most
 * MAX_USAGE usage lines (namespaces) and MAX_UNKNOWN lines this build does
 * not know (MAX_UNKNOWN_BYTES in all); lines beyond are not counted and a
 * rewrite drops them, with a warning. What a rewrite writes within these
 * caps is less than MAX_SHARD (known counters ~1.5 KiB, usage lines at
 * most 113 bytes each, unknown lines 64 KiB), and a file larger than that
 * is not ours: set aside like a torn one. */
#define MAX_SHARD (1u << 20)
#define MAX_USAGE 8192
#define MAX_UNKNOWN 256
#define MAX_UNKNOWN_BYTES (64u << 10)

/* Classic POSIX locks belong to the process, not to the descriptor:
 * closing any descriptor of a shard drops the process's lock on it, and
 * two threads of one process never conflict. So within a process, shard
 * files are touched by one thread at a time. This is the library's one
 * global; it is taken with bounded tries (a fork while another thread held
 * it must not hang the child). */
static pthread_mutex_t shard_mu = PTHREAD_MUTEX_INITIALIZER;

struct use {
	char ns[LARDER_NS_MAX + 1];
	int64_t bytes, entries;
};

struct extra { /* a counter this build does not know */
	char name[NAME_MAX_LEN + 1];
	uint64_t value;
};

/* What a shard holds, or a sum of shards, or pending deltas. Usage and
 * unknown counters are appended as they come and merged by name in one
 * sort (tally_merge): adding n lines costs O(n log n), never n searches
 * of n. */
struct tally {
	uint64_t ctr[LARDER_CTR_COUNT];
	struct extra *x;
	size_t nx, capx;
	struct use *u;
	size_t nu, capu;
	char **other; /* lines of a shape this build does not know: kept */
	size_t nother, capother;
	size_t unknown;	      /* lines of x and other taken from shards */
	size_t unknown_bytes; /* and their bytes */
	size_t usage;	      /* usage lines taken from shards */
	uint64_t dropped;     /* lines beyond the caps: not counted */
	uint64_t *work;	      /* steps taken, for tests (ldr_stats_work) */
};

struct ldr_stats {
	pthread_mutex_t mu;	  /* pending usage, flushed[] */
	pthread_mutex_t flush_mu; /* one flush of this handle at a time */
	uint64_t flushed[LARDER_CTR_COUNT]; /* db->ctr already in a shard */
	struct use *u;			    /* pending usage deltas */
	size_t nu, cap;
	pid_t pid;		 /* the process that owns the pending */
	int64_t opened_s;	 /* CLOCK_MONOTONIC_COARSE, at larder_open */
	int64_t last_flush_s;	 /* CLOCK_MONOTONIC_COARSE */
	int said_fail, said_bad; /* logged once per handle */
	int said_dropped;
	uint64_t work; /* steps of parsing and merging shards, for tests */
};

static void sleep_ms(unsigned ms)
{
	struct timespec ts = {0, (long)ms * 1000000};
	nanosleep(&ts, NULL);
}

/* ---------------------------------------------------------------------- */
/* Tallies                                                                 */

/* Sums that cannot overflow: a shard may say anything (a crafted one
 * near INT64_MAX), and a sum past the end saturates instead of wrapping
 * (or, signed, being undefined). */
static uint64_t add_u64(uint64_t a, uint64_t b)
{
	uint64_t r;
	return __builtin_add_overflow(a, b, &r) ? UINT64_MAX : r;
}

static int64_t add_i64(int64_t a, int64_t b)
{
	int64_t r;
	if (__builtin_add_overflow(a, b, &r))
		return b > 0 ? INT64_MAX : INT64_MIN;
	return r;
}

static int64_t sub_i64(int64_t a, int64_t b)
{
	int64_t r;
	if (__builtin_sub_overflow(a, b, &r))
		return b < 0 ? INT64_MAX : INT64_MIN;
	return r;
}

static void tally_free(struct tally *t)
{
	free(t->x);
	free(t->u);
	for (size_t i = 0; i < t->nother; i++)
		free(t->other[i]);
	free(t->other);
	uint64_t *work = t->work;
	memset(t, 0, sizeof *t);
	t->work = work;
}

static void step(const struct tally *t, uint64_t n)
{
	if (t->work)
		*t->work += n;
}

/* Room for one more of n elements of `size` in *p (capacity *cap),
 * doubling: n appends move O(n) elements in all. */
static int grow(const struct tally *t, void **p, size_t n, size_t *cap,
		size_t size)
{
	if (n < *cap)
		return 0;
	size_t c = *cap ? *cap * 2 : 16;
	void *q = realloc(*p, c * size);
	if (!q)
		return -1;
	step(t, n); /* the elements realloc may have moved */
	*p = q;
	*cap = c;
	return 0;
}

static int counter_id(const char *name, size_t n)
{
	for (int c = 0; c < LARDER_CTR_COUNT; c++) {
		const char *k = larder_counter_name(c);
		if (k[0] == name[0] && strncmp(k, name, n) == 0 && k[n] == '\0')
			return c;
	}
	return -1;
}

/* Used by the pending deltas of one handle (a few namespaces): found by a
 * look through them. */
static struct use *use_find(struct use **u, size_t *n, size_t *cap,
			    const char *ns)
{
	for (size_t i = 0; i < *n; i++)
		if (strcmp((*u)[i].ns, ns) == 0)
			return &(*u)[i];
	if (*n == *cap) {
		size_t c = *cap ? *cap * 2 : 8;
		struct use *p = realloc(*u, c * sizeof *p);
		if (!p)
			return NULL;
		*u = p;
		*cap = c;
	}
	struct use *e = &(*u)[(*n)++];
	memset(e, 0, sizeof *e);
	snprintf(e->ns, sizeof e->ns, "%s", ns);
	return e;
}

/* Append usage (merged with others of its namespace by tally_merge). */
static int tally_use(struct tally *t, const char *ns, size_t nslen, int64_t b,
		     int64_t e)
{
	if (grow(t, (void **)&t->u, t->nu, &t->capu, sizeof *t->u))
		return -1;
	struct use *u = &t->u[t->nu++];
	memcpy(u->ns, ns, nslen);
	u->ns[nslen] = '\0';
	u->bytes = b;
	u->entries = e;
	return 0;
}

static int tally_extra(struct tally *t, const char *name, size_t n, uint64_t v)
{
	if (grow(t, (void **)&t->x, t->nx, &t->capx, sizeof *t->x))
		return -1;
	struct extra *x = &t->x[t->nx++];
	memcpy(x->name, name, n);
	x->name[n] = '\0';
	x->value = v;
	return 0;
}

static int tally_other(struct tally *t, const char *line, size_t len)
{
	if (grow(t, (void **)&t->other, t->nother, &t->capother,
		 sizeof *t->other))
		return -1;
	if (!(t->other[t->nother] = strndup(line, len)))
		return -1;
	t->nother++;
	return 0;
}

static int cmp_use_w(const void *a, const void *b, void *t)
{
	step(t, 1);
	return strcmp(((const struct use *)a)->ns, ((const struct use *)b)->ns);
}

static int cmp_extra_w(const void *a, const void *b, void *t)
{
	step(t, 1);
	return strcmp(((const struct extra *)a)->name,
		      ((const struct extra *)b)->name);
}

/* Sort usage and unknown counters by name and sum those of one name. */
static void tally_merge(struct tally *t)
{
	size_t k = 0;
	if (t->nu > 1) {
		qsort_r(t->u, t->nu, sizeof *t->u, cmp_use_w, t);
		for (size_t i = 1; i < t->nu; i++) {
			struct use *last = &t->u[k];
			if (strcmp(last->ns, t->u[i].ns) == 0) {
				last->bytes =
				    add_i64(last->bytes, t->u[i].bytes);
				last->entries =
				    add_i64(last->entries, t->u[i].entries);
			} else {
				t->u[++k] = t->u[i];
			}
		}
		t->nu = k + 1;
		step(t, t->nu);
	}
	k = 0;
	if (t->nx > 1) {
		qsort_r(t->x, t->nx, sizeof *t->x, cmp_extra_w, t);
		for (size_t i = 1; i < t->nx; i++) {
			if (strcmp(t->x[k].name, t->x[i].name) == 0)
				t->x[k].value =
				    add_u64(t->x[k].value, t->x[i].value);
			else
				t->x[++k] = t->x[i];
		}
		t->nx = k + 1;
		step(t, t->nx);
	}
}

/* Add from's counters and usage to `to` (merge afterwards). Lines of
 * other shapes are a shard's own, kept by its rewrite: not summed. */
static int tally_add(struct tally *to, const struct tally *from)
{
	for (int c = 0; c < LARDER_CTR_COUNT; c++)
		to->ctr[c] = add_u64(to->ctr[c], from->ctr[c]);
	for (size_t i = 0; i < from->nx; i++)
		if (tally_extra(to, from->x[i].name, strlen(from->x[i].name),
				from->x[i].value))
			return -1;
	for (size_t i = 0; i < from->nu; i++)
		if (tally_use(to, from->u[i].ns, strlen(from->u[i].ns),
			      from->u[i].bytes, from->u[i].entries))
			return -1;
	to->dropped += from->dropped;
	return 0;
}

/* ---------------------------------------------------------------------- */
/* Shard text                                                              */

enum { SHARD_OK = 0, SHARD_BAD = 1, SHARD_NEWER = 2, SHARD_NOMEM = -1 };

static int is_name(const char *s, size_t n)
{
	if (n == 0 || n > NAME_MAX_LEN)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') ||
		      (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
			return 0;
	return 1;
}

/* A namespace's name as ldr_check_ns_internal takes it: anything else in
 * a usage line is a line this build does not know (never a label or a
 * path shown as a namespace). */
static int is_ns(const char *s, size_t n)
{
	if (n == sizeof LDR_FILES_NS - 1 && memcmp(s, LDR_FILES_NS, n) == 0)
		return 1;
	if (n == 0 || n > LARDER_NS_MAX || s[0] == '.')
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '.' || c == '_' ||
		      c == '-'))
			return 0;
	}
	return 1;
}

/* The word at *p up to a space or end: its length (0 if none). */
static size_t word(const char *p, const char *end)
{
	const char *q = p;
	while (q < end && *q != ' ')
		q++;
	return (size_t)(q - p);
}

/* Decimal digits [p, p + n) as an unsigned value; -1 if they are not
 * (empty, another character, or past UINT64_MAX). */
static int parse_u64(const char *p, size_t n, uint64_t *v)
{
	uint64_t r = 0;
	if (n == 0)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (p[i] < '0' || p[i] > '9' ||
		    __builtin_mul_overflow(r, 10, &r) ||
		    __builtin_add_overflow(r, (uint64_t)(p[i] - '0'), &r))
			return -1;
	}
	*v = r;
	return 0;
}

/* An optional '-' and digits, within int64_t; -1 if not. */
static int parse_i64(const char *p, size_t n, int64_t *v)
{
	int neg = n > 0 && p[0] == '-';
	uint64_t u;
	if (parse_u64(p + neg, n - (size_t)neg, &u) != 0 ||
	    u > (uint64_t)INT64_MAX + (uint64_t)neg)
		return -1;
	*v = neg ? (int64_t)(0 - u) : (int64_t)u;
	return 0;
}

/* "usage <ns> <bytes> <entries>" in [p, end): 0 with the parts, or -1 for
 * a line of another shape. */
static int parse_usage(const char *p, const char *end, const char **ns,
		       size_t *nslen, int64_t *b, int64_t *e)
{
	if ((size_t)(end - p) < 6 || memcmp(p, "usage ", 6) != 0)
		return -1;
	p += 6;
	size_t n = word(p, end);
	*ns = p;
	*nslen = n;
	p += n;
	if (!is_ns(*ns, n) || p >= end || *p++ != ' ')
		return -1;
	n = word(p, end);
	if (parse_i64(p, n, b) != 0)
		return -1;
	p += n;
	if (p >= end || *p++ != ' ')
		return -1;
	return parse_i64(p, (size_t)(end - p), e);
}

/* "<name> <value>" in [p, end): 0 with the parts, or -1. */
static int parse_counter(const char *p, const char *end, size_t *namelen,
			 uint64_t *v)
{
	size_t n = word(p, end);
	if (!is_name(p, n) || p + n >= end || p[n] != ' ')
		return -1;
	*namelen = n;
	return parse_u64(p + n + 1, (size_t)(end - p - (ptrdiff_t)n - 1), v);
}

/* Keep a line this build does not know (a newer larder's counter or line
 * shape), within the caps; 0, or -1 out of memory. */
static int keep_unknown(struct tally *t, const char *line, size_t n,
			size_t namelen, uint64_t v, int is_counter)
{
	if (t->unknown >= MAX_UNKNOWN ||
	    t->unknown_bytes + n + 1 > MAX_UNKNOWN_BYTES) {
		t->dropped++;
		return 0;
	}
	t->unknown++;
	t->unknown_bytes += n + 1;
	return is_counter ? tally_extra(t, line, namelen, v)
			  : tally_other(t, line, n);
}

/* Parse text (len bytes, NUL after them) into t, in one pass over it: each
 * line is looked at where it is, never scanned to the end of the text
 * (sscanf would: quadratic in lines). An empty file is a new shard. */
static int shard_parse(const char *text, size_t len, struct tally *t)
{
	uint64_t *work = t->work;
	memset(t, 0, sizeof *t);
	t->work = work;
	if (len == 0)
		return SHARD_OK;
	if (len < sizeof MAGIC || strlen(text) != len || text[len - 1] != '\n')
		return SHARD_BAD;
	step(t, len);
	const char *end = strchr(text, '\n');
	uint64_t format;
	if (memcmp(text, MAGIC " ", sizeof MAGIC) != 0 ||
	    parse_u64(text + sizeof MAGIC, (size_t)(end - text) - sizeof MAGIC,
		      &format) != 0)
		return SHARD_BAD;
	if (format > FORMAT)
		return SHARD_NEWER;
	/* The checksum line is the last one. */
	const char *last = text + len - 1;
	while (last > text && last[-1] != '\n')
		last--;
	char hex[33];
	uint8_t sum[16];
	if ((size_t)(text + len - last) != sizeof "checksum " - 1 + 32 + 1 ||
	    memcmp(last, "checksum ", 9) != 0)
		return SHARD_BAD;
	ldr_xxh128(text, (size_t)(last - text), sum);
	ldr_hex(sum, 16, hex);
	if (memcmp(last + 9, hex, 32) != 0)
		return SHARD_BAD;

	for (const char *line = end + 1; line < last; line = end + 1) {
		end = memchr(line, '\n', (size_t)(last - line));
		size_t n = (size_t)(end - line);
		const char *ns;
		size_t nslen, namelen;
		int64_t b, e;
		uint64_t v;
		int rc = 0;
		if (n > LINE_MAX_LEN)
			goto bad;
		if (parse_usage(line, end, &ns, &nslen, &b, &e) == 0) {
			if (t->usage >= MAX_USAGE) {
				t->dropped++;
				continue;
			}
			t->usage++;
			rc = tally_use(t, ns, nslen, b, e);
		} else if (parse_counter(line, end, &namelen, &v) == 0) {
			int c = counter_id(line, namelen);
			step(t, LARDER_CTR_COUNT);
			if (c >= 0)
				t->ctr[c] = add_u64(t->ctr[c], v);
			else
				rc = keep_unknown(t, line, n, namelen, v, 1);
		} else {
			rc = keep_unknown(t, line, n, 0, 0, 0);
		}
		if (rc)
			goto nomem;
	}
	tally_merge(t);
	return SHARD_OK;
bad:
	tally_free(t);
	return SHARD_BAD;
nomem:
	tally_free(t);
	return SHARD_NOMEM;
}

/* The shard's text for t (merged), within the caps: usage lines that
 * sum to nothing are left out, and those past MAX_USAGE are dropped
 * (counted in *dropped; the parse already capped the unknown lines). 0,
 * or -1 (out of memory). */
static int shard_format(const struct tally *t, struct ldr_buf *b,
			uint64_t *dropped)
{
	memset(b, 0, sizeof *b);
	ldr_buf_printf(b, "%s %d\n", MAGIC, FORMAT);
	for (int c = 0; c < LARDER_CTR_COUNT; c++)
		ldr_buf_printf(b, "%s %" PRIu64 "\n", larder_counter_name(c),
			       t->ctr[c]);
	for (size_t i = 0; i < t->nx; i++)
		ldr_buf_printf(b, "%s %" PRIu64 "\n", t->x[i].name,
			       t->x[i].value);
	size_t nu = 0;
	for (size_t i = 0; i < t->nu; i++) {
		if (!t->u[i].bytes && !t->u[i].entries)
			continue;
		if (nu++ >= MAX_USAGE) {
			(*dropped)++;
			continue;
		}
		ldr_buf_printf(b, "usage %s %" PRId64 " %" PRId64 "\n",
			       t->u[i].ns, t->u[i].bytes, t->u[i].entries);
	}
	for (size_t i = 0; i < t->nother; i++)
		ldr_buf_printf(b, "%s\n", t->other[i]);
	if (b->oom) {
		free(b->p);
		return -1;
	}
	uint8_t sum[16];
	char hex[33];
	ldr_xxh128(b->p, b->len, sum);
	ldr_hex(sum, 16, hex);
	ldr_buf_printf(b, "checksum %s\n", hex);
	if (b->oom) {
		free(b->p);
		return -1;
	}
	return 0;
}

/* ---------------------------------------------------------------------- */
/* Shard files                                                             */

static void shard_rel(char *out, size_t len, int i)
{
	snprintf(out, len, "stats/shard-%02d", i);
}

/* Take shard_mu, trying for at most `ms`. */
static int process_lock(unsigned ms)
{
	for (unsigned waited = 0;; waited += 2) {
		if (pthread_mutex_trylock(&shard_mu) == 0)
			return 0;
		if (waited >= ms)
			return -1;
		sleep_ms(2);
	}
}

/* fcntl lock of the whole file; 0, or -1 with errno (EAGAIN/EACCES:
 * someone else holds it). */
static int file_lock(int fd, short type)
{
	struct flock fl;
	memset(&fl, 0, sizeof fl);
	fl.l_type = type;
	fl.l_whence = SEEK_SET;
	int r;
	do
		r = fcntl(fd, F_SETLK, &fl);
	while (r != 0 && errno == EINTR);
	return r;
}

/* Read the whole shard open at fd into a malloc'ed NUL-terminated text.
 * 0, 1 if it is too large to be ours, -1 with errno. */
/* Whether the file at fd is a shard larder could have made: a regular
 * file of one link. A FIFO planted there would hang a read, and a hard
 * link to a file outside the store would be written into by a flush.
 * 1, 0 (errno 0), or -1 with errno. */
static int shard_file_ok(int fd)
{
	struct stat st;
	if (fstat(fd, &st) != 0)
		return -1;
	errno = 0;
	return S_ISREG(st.st_mode) && st.st_nlink == 1;
}

static int read_all(int fd, char **out, size_t *len)
{
	struct stat st;
	*out = NULL;
	*len = 0;
	if (fstat(fd, &st) != 0)
		return -1;
	if (!S_ISREG(st.st_mode) || st.st_nlink != 1 ||
	    (uint64_t)st.st_size > MAX_SHARD)
		return 1;
	char *p = malloc((size_t)st.st_size + 1);
	if (!p) {
		errno = ENOMEM;
		return -1;
	}
	ssize_t n = ldr_pread_full(fd, p, (size_t)st.st_size, 0);
	if (n < 0) {
		free(p);
		return -1;
	}
	p[n] = '\0';
	*out = p;
	*len = (size_t)n;
	return 0;
}

/* Keep a copy of a bad shard's bytes for the operator, beside it. */
static void keep_bad(larder *db, int i, const char *text, size_t len)
{
	char rel[64];
	uint8_t r[4];
	char rnd[9];
	ldr_random(r, sizeof r);
	ldr_hex(r, sizeof r, rnd);
	snprintf(rel, sizeof rel, "stats/bad-%02d.%s", i, rnd);
	int fd = ldr_open_beneath(db->rootfd, rel, O_WRONLY | O_CREAT | O_EXCL,
				  db->fmode);
	if (fd < 0)
		return;
	if (fchmod(fd, db->fmode) != 0 ||
	    ldr_pwrite_full(fd, text, len, 0) != 0) {
		/* by name in stats/ opened beneath the root: unlinkat of
		 * "stats/..." from the root would follow a symlinked stats/ */
		int dfd = ldr_open_beneath(db->rootfd, "stats",
					   O_RDONLY | O_DIRECTORY, 0);
		if (dfd >= 0)
			unlinkat(dfd, strchr(rel, '/') + 1, 0);
		ldr_close(dfd);
	}
	ldr_close(fd);
}

/* Open shard i for writing, made with the store's mode if missing. */
static int shard_open_rw(larder *db, int i)
{
	char rel[64];
	shard_rel(rel, sizeof rel, i);
	for (int attempt = 0; attempt < 3; attempt++) {
		/* O_NONBLOCK: a FIFO planted there must not hang us. */
		int fd =
		    ldr_open_beneath(db->rootfd, rel, O_RDWR | O_NONBLOCK, 0);
		if (fd >= 0 || errno != ENOENT)
			return fd;
		fd = ldr_open_beneath(db->rootfd, rel,
				      O_RDWR | O_CREAT | O_EXCL, db->fmode);
		if (fd >= 0) {
			/* umask must not narrow a group-shared store */
			if (fchmod(fd, db->fmode) != 0) {
				int e = errno;
				ldr_close(fd);
				errno = e;
				return -1;
			}
			return fd;
		}
		if (errno != EEXIST)
			return -1;
	}
	return -1;
}

/* Add `delta` to one shard, trying each in turn from this process's own
 * one. 0; 1 if every shard stayed locked for the whole bound; -1 with
 * errno. Called with shard_mu held. */
static int shard_add(larder *db, const struct tally *delta, uint64_t t0)
{
	struct ldr_stats *s = db->stats;
	uint8_t h[16];
	char seed[96];
	snprintf(seed, sizeof seed, "%s/%ld", db->host, (long)getpid());
	ldr_xxh128(seed, strlen(seed), h);
	int first = h[0] % SHARDS;
	for (unsigned round = 0;; round++) {
		for (int k = 0; k < SHARDS; k++) {
			int i = (first + k) % SHARDS;
			int fd = shard_open_rw(db, i);
			if (fd < 0)
				return -1;
			int ok = shard_file_ok(fd);
			if (ok != 1) {
				/* Not a shard larder made: never written
				 * into; readers count it as bad. */
				int e = errno;
				ldr_close(fd);
				if (ok < 0) {
					errno = e;
					return -1;
				}
				if (!__atomic_exchange_n(&s->said_bad, 1,
							 __ATOMIC_RELAXED))
					ldr_log(db, LARDER_LOG_WARN,
						"counter file '%s/stats/"
						"shard-%02d' is not a file of "
						"its own (a FIFO, a device, or "
						"a hard link): left alone; "
						"remove it",
						db->dir, i);
				continue;
			}
			if (file_lock(fd, F_WRLCK) != 0) {
				int e = errno;
				ldr_close(fd);
				if (e == EAGAIN || e == EACCES)
					continue;
				errno = e;
				return -1;
			}
			char *text;
			size_t len;
			int r = read_all(fd, &text, &len);
			if (r < 0) {
				int e = errno;
				ldr_close(fd);
				errno = e;
				return -1;
			}
			struct tally t = {.work = &s->work};
			int st = r ? SHARD_BAD : shard_parse(text, len, &t);
			if (st ==
			    SHARD_NEWER) { /* a newer larder's: not ours */
				free(text);
				ldr_close(fd);
				continue;
			}
			if (st == SHARD_NOMEM) {
				free(text);
				ldr_close(fd);
				errno = ENOMEM;
				return -1;
			}
			if (st == SHARD_BAD) {
				if (r == 0)
					keep_bad(db, i, text, len);
				if (!__atomic_exchange_n(&s->said_bad, 1,
							 __ATOMIC_RELAXED))
					ldr_log(db, LARDER_LOG_WARN,
						"counter file '%s/stats/"
						"shard-%02d' failed its check "
						"(torn by a crash, edited, or "
						"larger than a counter file "
						"may be); kept as "
						"stats/bad-%02d.* if not too "
						"large, counting from zero "
						"again",
						db->dir, i, i);
				memset(&t, 0, sizeof t);
				t.work = &s->work;
			}
			free(text);
			struct ldr_buf b;
			int rc = tally_add(&t, delta);
			if (rc == 0)
				tally_merge(&t);
			uint64_t dropped = t.dropped;
			if (rc == 0 &&
			    (rc = shard_format(&t, &b, &dropped)) == 0) {
				/* What a shard may hold is bounded
				 * (MAX_USAGE, MAX_UNKNOWN): the rest goes
				 * now, said once per handle. */
				if (dropped &&
				    !__atomic_exchange_n(&s->said_dropped, 1,
							 __ATOMIC_RELAXED))
					ldr_log(db, LARDER_LOG_WARN,
						"counter file '%s/stats/"
						"shard-%02d' held %" PRIu64
						" line(s) beyond what a "
						"counter file keeps "
						"(docs/format.md): dropped",
						db->dir, i, dropped);
				/* In place, then cut: a crash in between
				 * leaves a shard that fails its check. */
				if (ldr_pwrite_full(fd, b.p, b.len, 0) != 0 ||
				    ftruncate(fd, (off_t)b.len) != 0 ||
				    (db->fsync == LARDER_FSYNC_FULL &&
				     ldr_fdatasync(fd) != 0))
					rc = -1;
				free(b.p);
			} else {
				errno = ENOMEM;
			}
			int e = errno;
			tally_free(&t);
			ldr_close(fd); /* unlocks */
			errno = e;
			return rc;
		}
		if (ldr_mono_ms() - t0 >= FLUSH_BOUND_MS)
			return 1;
		sleep_ms(5 + 5 * (round < 8 ? round : 8));
	}
}

/* ---------------------------------------------------------------------- */
/* The handle's pending deltas                                             */

int ldr_stats_init(larder *db)
{
	struct ldr_stats *s = calloc(1, sizeof *s);
	if (!s)
		return ldr_fail(NULL, LARDER_ENOMEM, ENOMEM, "out of memory");
	pthread_mutex_init(&s->mu, NULL);
	pthread_mutex_init(&s->flush_mu, NULL);
	s->pid = getpid();
	s->last_flush_s = (ldr_coarse_ms() / 1000);
	s->opened_s = s->last_flush_s;
	db->stats = s;
	return 0;
}

static int flush(larder *db, int lookups_alone);

void ldr_stats_fini(larder *db)
{
	struct ldr_stats *s = db->stats;
	if (!s)
		return;
	/* A handle that only looked things up writes nothing at close unless
	 * it lived as long as a long-running process's flush interval:
	 * a one-shot hit (`larder get`) leaves the store as it found it
	 * (docs/operations.md, "What the counters count"). */
	flush(db, ldr_coarse_ms() / 1000 - s->opened_s >= FLUSH_EVERY_S);
	pthread_mutex_destroy(&s->mu);
	pthread_mutex_destroy(&s->flush_mu);
	free(s->u);
	free(s);
	db->stats = NULL;
}

void ldr_count_add(larder *db, int c, uint64_t n)
{
	if (c >= 0 && c < LARDER_CTR_COUNT)
		__atomic_fetch_add(&db->ctr[c], n, __ATOMIC_RELAXED);
}

void ldr_usage_add(larder *db, const char *ns, int64_t bytes, int64_t entries)
{
	struct ldr_stats *s = db->stats;
	if (!s || !ns || !*ns || strlen(ns) > LARDER_NS_MAX)
		return;
	pthread_mutex_lock(&s->mu);
	struct use *u = use_find(&s->u, &s->nu, &s->cap, ns);
	if (u) {
		u->bytes = add_i64(u->bytes, bytes);
		u->entries = add_i64(u->entries, entries);
	}
	pthread_mutex_unlock(&s->mu);
	if (!u)
		ldr_log(db, LARDER_LOG_WARN,
			"out of memory: a usage change in '%s' is not counted",
			ns);
}

/* The pending deltas, copied; 1 if there are none. */
static int pending(larder *db, struct tally *t)
{
	struct ldr_stats *s = db->stats;
	memset(t, 0, sizeof *t);
	int any = 0;
	pthread_mutex_lock(&s->mu);
	for (int c = 0; c < LARDER_CTR_COUNT; c++) {
		t->ctr[c] = __atomic_load_n(&db->ctr[c], __ATOMIC_RELAXED) -
			    s->flushed[c];
		any |= t->ctr[c] != 0;
	}
	int rc = 0;
	for (size_t i = 0; i < s->nu && rc == 0; i++)
		if (s->u[i].bytes || s->u[i].entries) {
			rc = tally_use(t, s->u[i].ns, strlen(s->u[i].ns),
				       s->u[i].bytes, s->u[i].entries);
			any = 1;
		}
	pthread_mutex_unlock(&s->mu);
	if (rc) {
		tally_free(t);
		return -1;
	}
	return any ? 0 : 1;
}

/* The counters a lookup counts, hit or not, without changing the
 * store. Pending alone, they are not worth a write at close: a write per
 * hit is what a hit must not cost. A miss, a fill, a publish or a removal
 * counts something else, and these ride along with it. With a shared
 * tier, a hit in the near tier and a look at the shared tier's head are
 * lookups too: without them here, every hit of a store with a shared tier
 * wrote a counter shard at close. */
static int lookup_only(const struct tally *t)
{
	static const int lookup[] = {
	    LARDER_CTR_HITS,
	    LARDER_CTR_MEMO_HITS,
	    LARDER_CTR_REQUESTS,
	    LARDER_CTR_TOUCHES,
	    LARDER_CTR_ESTALE_RETRIES,
	    LARDER_CTR_FILES_HASHED,
	    LARDER_CTR_FILES_HASHED_BYTES,
	    LARDER_CTR_FILES_REMEMBERED,
	    LARDER_CTR_NEAR_HITS,
	    LARDER_CTR_SHARED_HEAD_CHECKS,
	};
	uint64_t rest[LARDER_CTR_COUNT];
	memcpy(rest, t->ctr, sizeof rest);
	for (size_t i = 0; i < sizeof lookup / sizeof lookup[0]; i++)
		rest[lookup[i]] = 0;
	for (int c = 0; c < LARDER_CTR_COUNT; c++)
		if (rest[c])
			return 0;
	return t->nu == 0;
}

/* The flushed deltas are no longer pending. */
static void settle(larder *db, const struct tally *t)
{
	struct ldr_stats *s = db->stats;
	pthread_mutex_lock(&s->mu);
	for (int c = 0; c < LARDER_CTR_COUNT; c++)
		s->flushed[c] += t->ctr[c];
	for (size_t i = 0; i < t->nu; i++) {
		struct use *u = use_find(&s->u, &s->nu, &s->cap, t->u[i].ns);
		if (u) { /* it is there: found, never added */
			u->bytes = sub_i64(u->bytes, t->u[i].bytes);
			u->entries = sub_i64(u->entries, t->u[i].entries);
		}
	}
	pthread_mutex_unlock(&s->mu);
}

/* A forked child inherits its parent's pending deltas, which are the
 * parent's to flush: the child starts from what it holds now (losing
 * what it counted on the inherited handle before its first flush). */
static void forget_parent(larder *db)
{
	struct ldr_stats *s = db->stats;
	pthread_mutex_lock(&s->mu);
	for (int c = 0; c < LARDER_CTR_COUNT; c++)
		s->flushed[c] = __atomic_load_n(&db->ctr[c], __ATOMIC_RELAXED);
	s->nu = 0;
	s->pid = getpid();
	pthread_mutex_unlock(&s->mu);
}

static int flush_fail(larder *db, int rc, int e)
{
	struct ldr_stats *s = db->stats;
	const char *what = rc == LARDER_EBUSY ? "every counter file stayed "
						"locked"
					      : strerror(e);
	rc = ldr_fail(db, rc, e, "cannot write counters to '%s/stats': %s",
		      db->dir, what);
	/* A store this process may only read is a normal setup (readers
	 * never need to write): said at info, not warned at every exit. */
	if (!__atomic_exchange_n(&s->said_fail, 1, __ATOMIC_RELAXED))
		ldr_log(db,
			rc == LARDER_EPERM ? LARDER_LOG_INFO : LARDER_LOG_WARN,
			"cannot write counters to '%s/stats': %s; they stay "
			"pending in this process",
			db->dir, what);
	return rc;
}

/* Add what is pending to a shard. With nothing pending, or (unless
 * lookups_alone) only lookup counters, nothing is touched: no directory
 * made, no shard opened, no lock waited for. */
static int flush(larder *db, int lookups_alone)
{
	struct ldr_stats *s = db->stats;
	if (!s)
		return 0;
	uint64_t t0 = ldr_mono_ms();
	pthread_mutex_lock(&s->flush_mu);
	__atomic_store_n(&s->last_flush_s, (ldr_coarse_ms() / 1000),
			 __ATOMIC_RELAXED);
	if (s->pid != getpid())
		forget_parent(db);
	struct tally t;
	int rc = pending(db, &t);
	if (rc == 0 && !lookups_alone && lookup_only(&t)) {
		tally_free(&t);
		rc = 1;
	}
	if (rc != 0) {
		pthread_mutex_unlock(&s->flush_mu);
		return rc > 0 ? 0
			      : ldr_fail(db, LARDER_ENOMEM, ENOMEM,
					 "out of memory");
	}
	int e = 0;
	if (ldr_mkdirs(db->rootfd, "stats", db->dmode) != 0) {
		e = errno;
		rc = -1;
	} else if (process_lock(FLUSH_BOUND_MS) != 0) {
		rc = 1;
	} else {
		rc = shard_add(db, &t, t0);
		e = errno;
		pthread_mutex_unlock(&shard_mu);
	}
	if (rc == 0)
		settle(db, &t);
	tally_free(&t);
	pthread_mutex_unlock(&s->flush_mu);
	if (rc > 0)
		return flush_fail(db, LARDER_EBUSY, 0);
	if (rc < 0)
		return flush_fail(db, ldr_errno_code(e), e);
	return 0;
}

int ldr_stats_flush(larder *db)
{
	return flush(db, 1);
}

void ldr_stats_tick(larder *db)
{
	struct ldr_stats *s = db->stats;
	if (!s)
		return;
	int64_t now = (ldr_coarse_ms() / 1000);
	int64_t last = __atomic_load_n(&s->last_flush_s, __ATOMIC_RELAXED);
	/* One thread flushes (the one that moves the time on); the others
	 * go on with their work. */
	if (now - last >= FLUSH_EVERY_S &&
	    __atomic_compare_exchange_n(&s->last_flush_s, &last, now, 0,
					__ATOMIC_RELAXED, __ATOMIC_RELAXED))
		ldr_stats_flush(db);
}

uint64_t ldr_stats_work(larder *db)
{
	return db->stats ? db->stats->work : 0;
}

void ldr_stats_age(larder *db, int64_t seconds)
{
	if (db->stats) {
		__atomic_fetch_sub(&db->stats->last_flush_s, seconds,
				   __ATOMIC_RELAXED);
		db->stats->opened_s -= seconds; /* read by close alone */
	}
}

/* ---------------------------------------------------------------------- */
/* Reading                                                                 */

/* Sum every shard into t; *bad counts shards that fail their check. */
static int sum_shards(larder *db, struct tally *t, unsigned *nshards,
		      unsigned *bad)
{
	memset(t, 0, sizeof *t);
	t->work = db->stats ? &db->stats->work : NULL;
	*nshards = *bad = 0;
	if (process_lock(FLUSH_BOUND_MS) != 0)
		return ldr_fail(db, LARDER_EBUSY, 0,
				"counter files are busy in this process");
	int rc = 0;
	for (int i = 0; i < SHARDS && rc == 0; i++) {
		char rel[64];
		shard_rel(rel, sizeof rel, i);
		/* O_NONBLOCK: a FIFO planted there must not hang us. */
		int fd =
		    ldr_open_beneath(db->rootfd, rel, O_RDONLY | O_NONBLOCK, 0);
		if (fd < 0) {
			/* none yet, or no stats/ directory at all */
			if (errno != ENOENT && errno != ENOTDIR)
				rc = ldr_fail_errno(
				    db, errno, "cannot open '%s/%s': %s",
				    db->dir, rel, strerror(errno));
			continue;
		}
		/* A read lock keeps a flush from being seen half-written;
		 * if it cannot be had in time the shard is read anyway (a
		 * torn one then fails its check and counts as bad). */
		uint64_t t0 = ldr_mono_ms();
		while (file_lock(fd, F_RDLCK) != 0 &&
		       (errno == EAGAIN || errno == EACCES) &&
		       ldr_mono_ms() - t0 < FLUSH_BOUND_MS)
			sleep_ms(5);
		char *text;
		size_t len;
		int r = read_all(fd, &text, &len);
		int e = errno;
		ldr_close(fd);
		if (r < 0) {
			rc = ldr_fail_errno(db, e, "cannot read '%s/%s': %s",
					    db->dir, rel, strerror(e));
			continue;
		}
		struct tally one = {.work = t->work};
		int st = r ? SHARD_BAD : shard_parse(text, len, &one);
		free(text);
		(*nshards)++;
		if (st == SHARD_BAD || st == SHARD_NEWER) {
			(*bad) += st == SHARD_BAD;
			continue;
		}
		if (st == SHARD_NOMEM || tally_add(t, &one) != 0)
			rc = ldr_fail(db, LARDER_ENOMEM, ENOMEM,
				      "out of memory");
		if (st == SHARD_OK)
			tally_free(&one);
	}
	pthread_mutex_unlock(&shard_mu);
	if (rc)
		tally_free(t);
	else
		tally_merge(t);
	return rc;
}

/* The shards plus this handle's pending. */
static int sum_all(larder *db, struct tally *t, unsigned *nshards,
		   unsigned *bad)
{
	int rc = sum_shards(db, t, nshards, bad);
	if (rc)
		return rc;
	struct tally p;
	int r = db->stats ? pending(db, &p) : 1;
	if (r == 0) {
		r = tally_add(t, &p);
		tally_free(&p);
		if (r == 0)
			tally_merge(t);
	}
	if (r < 0) {
		tally_free(t);
		return ldr_fail(db, LARDER_ENOMEM, ENOMEM, "out of memory");
	}
	return 0;
}

int ldr_usage_read(larder *db, const char *ns, int64_t *bytes, int64_t *entries)
{
	struct tally t;
	unsigned n, bad;
	*bytes = *entries = 0;
	int rc = sum_all(db, &t, &n, &bad);
	if (rc)
		return rc;
	/* Each namespace's sum (merged: one per name) never reads below 0,
	 * so neither does the store's, the sum of theirs. */
	for (size_t i = 0; i < t.nu; i++)
		if (!ns || !*ns || strcmp(ns, t.u[i].ns) == 0) {
			if (t.u[i].bytes > 0)
				*bytes = add_i64(*bytes, t.u[i].bytes);
			if (t.u[i].entries > 0)
				*entries = add_i64(*entries, t.u[i].entries);
		}
	tally_free(&t);
	return 0;
}

int ldr_usage_set(larder *db, const char *ns, int64_t bytes, int64_t entries)
{
	if (!ns || !*ns)
		return ldr_fail(db, LARDER_EINVAL, 0,
				"usage is set per namespace");
	struct tally t;
	unsigned n, bad;
	int rc = sum_all(db, &t, &n, &bad);
	if (rc)
		return rc;
	int64_t b = 0, e = 0; /* the raw sums, below zero too */
	for (size_t i = 0; i < t.nu; i++)
		if (strcmp(ns, t.u[i].ns) == 0) {
			b = add_i64(b, t.u[i].bytes);
			e = add_i64(e, t.u[i].entries);
		}
	tally_free(&t);
	if (b != bytes || e != entries)
		ldr_usage_add(db, ns, sub_i64(bytes, b), sub_i64(entries, e));
	return 0;
}

/* ---------------------------------------------------------------------- */
/* Public reading API                                                      */

struct larder_stats {
	struct tally t;
	unsigned shards, bad;
};

int larder_stats_flush(larder *db)
{
	return ldr_stats_flush(db);
}

int larder_stats_read(larder_stats **out, larder *db)
{
	*out = NULL;
	larder_stats *s = calloc(1, sizeof *s);
	if (!s)
		return ldr_fail(db, LARDER_ENOMEM, ENOMEM, "out of memory");
	int rc = sum_all(db, &s->t, &s->shards, &s->bad);
	if (rc) {
		free(s);
		return rc;
	}
	/* Sorted by name already (tally_merge). */
	*out = s;
	return 0;
}

void larder_stats_free(larder_stats *s)
{
	if (!s)
		return;
	tally_free(&s->t);
	free(s);
}

size_t larder_stats_counters(const larder_stats *s)
{
	return LARDER_CTR_COUNT + s->t.nx;
}

const char *larder_stats_counter(uint64_t *value, const larder_stats *s,
				 size_t i)
{
	if (i < LARDER_CTR_COUNT) {
		*value = s->t.ctr[i];
		return larder_counter_name((int)i);
	}
	i -= LARDER_CTR_COUNT;
	if (i >= s->t.nx) {
		*value = 0;
		return NULL;
	}
	*value = s->t.x[i].value;
	return s->t.x[i].name;
}

size_t larder_stats_namespaces(const larder_stats *s)
{
	return s->t.nu;
}

const char *larder_stats_usage(int64_t *bytes, int64_t *entries,
			       const larder_stats *s, size_t i)
{
	if (i >= s->t.nu) {
		*bytes = *entries = 0;
		return NULL;
	}
	*bytes = s->t.u[i].bytes < 0 ? 0 : s->t.u[i].bytes;
	*entries = s->t.u[i].entries < 0 ? 0 : s->t.u[i].entries;
	return s->t.u[i].ns;
}

unsigned larder_stats_shards(unsigned *bad, const larder_stats *s)
{
	if (bad)
		*bad = s->bad;
	return s->shards;
}
