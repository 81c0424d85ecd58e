/*
 * test_gluster.c — one store seen by two real network-filesystem clients:
 * a GlusterFS replica-2 volume mounted twice through FUSE (mount A and
 * mount B, each with its own kernel and GlusterFS caches). What one client
 * writes, the other must read byte for byte or miss — never torn, never
 * wrong, never an error — while names are linked, renamed over (head
 * hints), corrupted and quarantined under it. This is where ESTALE happens
 * for real (docs/format.md, docs/testing.md).
 *
 * Run through tests/gluster/run.sh, which starts GlusterFS, sets
 * LARDER_GLUSTER_A, LARDER_GLUSTER_B (the two mount points) and LARDER_CLI
 * (the `larder` tool), and stops everything afterwards. Each test makes its
 * own store directory on the volume, named after its scratch directory.
 */
#include "harness.h"
#include "larder.h"
#include "testing.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define NS "default"

static const char *mnt_a, *mnt_b, *cli;

__attribute__((constructor)) static void need_mounts(void)
{
	mnt_a = getenv("LARDER_GLUSTER_A");
	mnt_b = getenv("LARDER_GLUSTER_B");
	cli = getenv("LARDER_CLI");
	if (!mnt_a || !*mnt_a || !mnt_b || !*mnt_b || !cli || !*cli) {
		fprintf(stderr, "test_gluster: LARDER_GLUSTER_A, "
				"LARDER_GLUSTER_B and LARDER_CLI must be set: "
				"run it through tests/gluster/run.sh\n");
		exit(2);
	}
}

/* ---------------------------------------------------------------------- */
/* Helpers                                                                 */

/* The same store through mount A or B: <mount>/<scratch dir's name>. */
static const char *store_on(const char *mnt)
{
	static char bufs[4][4096];
	static int slot;
	char *b = bufs[slot++ % 4];
	const char *name = strrchr(test_dir(), '/');
	snprintf(b, sizeof bufs[0], "%s%s", mnt, name);
	return b;
}

static larder *open_on(const char *mnt, int create)
{
	larder *db = NULL;
	larder_opts o = LARDER_OPTS_INIT;
	o.flags = create ? LARDER_OPEN_CREATE : 0;
	int rc = larder_open(&db, store_on(mnt), &o);
	if (rc != 0)
		test_fail(__FILE__, __LINE__, "larder_open('%s'): %s: %s",
			  store_on(mnt), larder_strerror(rc),
			  larder_errmsg(NULL));
	return db;
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A short pause inside a bounded poll for a condition (not a stand-in
 * for synchronisation: every caller re-checks its condition). */
static void poll_pause(void)
{
	struct timespec ts = {0, 20 * 1000 * 1000};
	nanosleep(&ts, NULL);
}

/* Payload sizes on both sides of the 64 KiB mmap threshold. */
static const size_t sizes[] = {0,     1,     4095,   65535,
			       65536, 65537, 200000, 1048579};
#define NSIZES (sizeof sizes / sizeof sizes[0])

static uint64_t seed_of(int key, int round)
{
	return (uint64_t)key * 100003u + (uint64_t)round + 1;
}

static size_t size_of(int key, int round)
{
	return sizes[(size_t)(key * 7 + round) % NSIZES];
}

static int put_pattern(larder *db, const char *key, const char *ver,
		       size_t size, uint64_t seed)
{
	void *buf = malloc(size ? size : 1);
	if (!buf)
		test_fail(__FILE__, __LINE__, "out of memory");
	test_fill_pattern(buf, size, seed);
	int rc = larder_put(db, NS, key, strlen(key), ver,
			    ver ? strlen(ver) : 0, buf, size, NULL);
	free(buf);
	return rc;
}

/* What the children of a test report to it. */
struct report {
	long ops, hits, misses, wrong, errors, published, exists;
	long estale; /* the library's estale_retries counter */
	/* ESTALE seen by plain open() and read() of a head file */
	long raw_estale_open, raw_estale_read;
	long quarantined;
	char msg[256]; /* the first problem */
};

struct shared {
	int writers_done;
	int hints; /* the head writer replaces heads with 0.2 hint files */
	/* The head readers open with LARDER_OPEN_VERIFY_ALWAYS: no head
	 * cache, every lookup reads the head by its name. */
	int read_every_head;
	struct report r[16];
};

static struct shared *shared_new(void)
{
	void *p = mmap(NULL, sizeof(struct shared), PROT_READ | PROT_WRITE,
		       MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		test_fail(__FILE__, __LINE__, "mmap: %s", strerror(errno));
	memset(p, 0, sizeof(struct shared));
	return p;
}

__attribute__((format(printf, 2, 3))) static void note(struct report *r,
						       const char *fmt, ...)
{
	if (r->msg[0])
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(r->msg, sizeof r->msg, fmt, ap);
	va_end(ap);
}

static pid_t spawn(void (*fn)(struct shared *, int, const char *),
		   struct shared *sh, int slot, const char *mnt)
{
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0)
		test_fail(__FILE__, __LINE__, "fork: %s", strerror(errno));
	if (pid == 0) {
		fn(sh, slot, mnt);
		_exit(0);
	}
	return pid;
}

static void wait_all(pid_t *pids, int n)
{
	for (int i = 0; i < n; i++) {
		int st;
		if (waitpid(pids[i], &st, 0) != pids[i])
			test_fail(__FILE__, __LINE__, "waitpid: %s",
				  strerror(errno));
		if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
			test_fail(__FILE__, __LINE__,
				  "child %d (slot %d) died: status %#x",
				  (int)pids[i], i, st);
	}
}

/* Check a looked-up entry against (key, round). 1 if every byte is right. */
static int entry_right(const larder_entry *e, int key, int round)
{
	size_t want = size_of(key, round);
	return larder_entry_size(e) == want &&
	       test_check_pattern(larder_entry_data(e), want,
				  seed_of(key, round));
}

/* ---------------------------------------------------------------------- */
/* One store, two clients                                                  */

TEST(store_made_through_a_opens_through_b)
{
	larder *a = open_on(mnt_a, 1);
	larder *b = open_on(mnt_b, 0);
	struct stat st;
	char marker[4200];
	snprintf(marker, sizeof marker, "%s/larder-store", store_on(mnt_b));
	ASSERT_EQ(stat(marker, &st), 0);
	/* Opening again with CREATE through B changes nothing. */
	larder *b2 = open_on(mnt_b, 1);
	larder_close(b2);
	larder_close(b);
	larder_close(a);
}

static void put_here_get_there(larder *from, larder *to, const char *tag)
{
	for (size_t i = 0; i < NSIZES; i++) {
		char key[64];
		snprintf(key, sizeof key, "%s-%zu", tag, sizes[i]);
		ASSERT_RC(from, put_pattern(from, key, "v1", sizes[i], i + 7),
			  0);
		larder_entry *e;
		ASSERT_RC(to, larder_get(&e, to, NS, key, strlen(key), "v1", 2),
			  0);
		ASSERT_EQ(larder_entry_size(e), sizes[i]);
		ASSERT(
		    test_check_pattern(larder_entry_data(e), sizes[i], i + 7));
		/* a network filesystem: read, never mapped (larder.h) */
		ASSERT(!larder_entry_is_mapped(e));
		larder_entry_release(e);
		/* and version-less, through the head hint */
		ASSERT_RC(to, larder_get(&e, to, NS, key, strlen(key), NULL, 0),
			  0);
		ASSERT_EQ(larder_entry_size(e), sizes[i]);
		ASSERT(
		    test_check_pattern(larder_entry_data(e), sizes[i], i + 7));
		larder_entry_release(e);
	}
}

TEST(put_through_a_reads_through_b_byte_for_byte_and_back)
{
	larder *a = open_on(mnt_a, 1);
	larder *b = open_on(mnt_b, 0);
	put_here_get_there(a, b, "a2b");
	put_here_get_there(b, a, "b2a");
	ASSERT_EQ(larder_counter(b, LARDER_CTR_CHECKSUM_FAIL), 0);
	ASSERT_EQ(larder_counter(a, LARDER_CTR_CHECKSUM_FAIL), 0);
	larder_close(b);
	larder_close(a);
}

/* ---------------------------------------------------------------------- */
/* Concurrent writers and readers on both mounts                           */

#define CW_KEYS 8
#define CW_ROUNDS 10
#define CW_WRITERS 3 /* slots 0..2: two on A, one on B */
#define CW_READERS 3 /* slots 3..5: two on B, one on A */
#define CW_MIN_READS 200

/* The path of key's head file in the test's store through mount mnt. */
static void head_file(const char *mnt, const char *key, char *out, size_t len)
{
	uint8_t h[16];
	char hex[33], rel[LDR_REL_MAX];
	ldr_head_hash(NS, key, strlen(key), h);
	ldr_hex(h, 16, hex);
	ldr_file_rel(rel, NS, 'h', hex);
	snprintf(out, len, "%s/%s", store_on(mnt), rel);
}

/* What a plain open + read of the file at path finds: 1 an entry's magic
 * (a copied head), 2 a hint file's, 0 anything else, -1 an error, printed.
 * ESTALE means this client still takes the name for the file it held
 * before another client replaced it (until its entry cache lapses, about
 * 1 s): looked at again, within a bounded wait. EIO is what a name left in
 * split-brain gives to every read, however long one waits. */
static int raw_magic(const char *path)
{
	char b[8];
	ssize_t n = -1;
	int e = 0;
	for (double t0 = now_s(); now_s() - t0 < 10; poll_pause()) {
		int fd = open(path, O_RDONLY);
		if (fd < 0) {
			e = errno;
			if (e == ESTALE)
				continue;
			break;
		}
		n = read(fd, b, sizeof b);
		e = errno;
		close(fd);
		if (n >= 0 || e != ESTALE)
			break;
	}
	if (n < 0) {
		printf("    open or read %s: %s\n", path, strerror(e));
		fflush(stdout);
		return -1;
	}
	if (n == 8 && memcmp(b, "\x89LARDER\n", 8) == 0)
		return 1;
	return n == 8 && memcmp(b, "\x89LDRHEAD", 8) == 0 ? 2 : 0;
}

/* A version-less get of key through db that must hit: a miss (a head
 * this client still takes for the one it replaced, as raw_magic says) is
 * looked up again within a bounded wait; any error fails. */
static larder_entry *head_get(larder *db, const char *key)
{
	larder_entry *e = NULL;
	int rc = LARDER_ENOTFOUND;
	for (double t0 = now_s(); now_s() - t0 < 10; poll_pause()) {
		rc = larder_get(&e, db, NS, key, strlen(key), NULL, 0);
		if (rc != LARDER_ENOTFOUND)
			break;
	}
	ASSERT_RC(db, rc, 0);
	return e;
}

/* Make the directories of the entry (key, ver) and of key's head through
 * db's client alone, by a put and a remove of that entry, before two
 * clients publish it at once: two clients making one new directory at
 * once can leave this replica-2 volume, which has no quorum, with a
 * different directory on each brick (docs/format.md, "Publishing"), a
 * failure of the volume rather than of the publish a test races. */
static void make_dirs_through(larder *db, const char *key, const char *ver)
{
	ASSERT_RC(db, put_pattern(db, key, ver, 1, 1), 0);
	ASSERT_RC(db, larder_remove(db, NS, key, strlen(key), ver, strlen(ver)),
		  0);
}

static void cw_writer(struct shared *sh, int slot, const char *mnt)
{
	struct report *r = &sh->r[slot];
	larder *db = open_on(mnt, 0);
	/* Every writer publishes every (key, round), each in its own order,
	 * so most commits race another client's link of the same name. */
	for (int round = 0; round < CW_ROUNDS; round++) {
		for (int i = 0; i < CW_KEYS; i++) {
			int k = (i * (slot + 1) + slot) % CW_KEYS;
			char key[32], ver[32];
			snprintf(key, sizeof key, "k%d", k);
			snprintf(ver, sizeof ver, "r%d", round);
			int rc = put_pattern(db, key, ver, size_of(k, round),
					     seed_of(k, round));
			r->ops++;
			if (rc == 0)
				r->published++;
			else if (rc == LARDER_EXISTS)
				r->exists++;
			else {
				r->errors++;
				note(r, "put %s %s: %s: %s", key, ver,
				     larder_strerror(rc), larder_errmsg(db));
			}
		}
	}
	r->estale = (long)larder_counter(db, LARDER_CTR_ESTALE_RETRIES);
	r->quarantined = (long)larder_counter(db, LARDER_CTR_QUARANTINED);
	larder_close(db);
	__atomic_add_fetch(&sh->writers_done, 1, __ATOMIC_SEQ_CST);
}

static void cw_reader(struct shared *sh, int slot, const char *mnt)
{
	struct report *r = &sh->r[slot];
	larder *db = open_on(mnt, 0);
	uint64_t x = (uint64_t)slot * 0x9E3779B97F4A7C15ull + 12345;
	while (__atomic_load_n(&sh->writers_done, __ATOMIC_SEQ_CST) <
		   CW_WRITERS ||
	       r->ops < CW_MIN_READS) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		int k = (int)(x % CW_KEYS);
		int round = (int)((x >> 8) % CW_ROUNDS);
		int versionless = (x >> 16) % 4 == 0;
		char key[32], ver[32];
		snprintf(key, sizeof key, "k%d", k);
		snprintf(ver, sizeof ver, "r%d", round);
		larder_entry *e;
		int rc = larder_get(&e, db, NS, key, strlen(key),
				    versionless ? NULL : ver,
				    versionless ? 0 : strlen(ver));
		r->ops++;
		if (rc == LARDER_ENOTFOUND) {
			r->misses++;
			continue;
		}
		if (rc != 0) {
			r->errors++;
			note(r, "get %s %s: %s: %s", key,
			     versionless ? "(head)" : ver, larder_strerror(rc),
			     larder_errmsg(db));
			continue;
		}
		if (versionless) {
			size_t vl;
			const char *v = larder_entry_version(&vl, e);
			round = -1;
			if (vl > 1 && vl < 8 && v[0] == 'r') {
				char tmp[8];
				memcpy(tmp, v, vl);
				tmp[vl] = '\0';
				round = atoi(tmp + 1);
			}
		}
		if (round >= 0 && entry_right(e, k, round))
			r->hits++;
		else {
			r->wrong++;
			note(r, "get %s %s: wrong bytes (size %zu)", key,
			     versionless ? "(head)" : ver,
			     larder_entry_size(e));
		}
		larder_entry_release(e);
	}
	r->estale = (long)larder_counter(db, LARDER_CTR_ESTALE_RETRIES);
	r->quarantined = (long)larder_counter(db, LARDER_CTR_QUARANTINED);
	larder_close(db);
}

static void print_report(const char *who, const struct report *r)
{
	printf("    %-10s ops %ld hits %ld misses %ld published %ld exists "
	       "%ld wrong %ld errors %ld estale_retries %ld quarantined "
	       "%ld%s%s\n",
	       who, r->ops, r->hits, r->misses, r->published, r->exists,
	       r->wrong, r->errors, r->estale, r->quarantined,
	       r->msg[0] ? " first: " : "", r->msg);
	fflush(stdout); /* a failed assertion exits without flushing */
}

TEST(writers_on_both_mounts_readers_on_the_other_never_read_wrong_bytes)
{
	larder *a = open_on(mnt_a, 1);
	struct shared *sh = shared_new();
	pid_t pids[CW_WRITERS + CW_READERS];
	for (int round = 0; round < CW_ROUNDS; round++)
		for (int k = 0; k < CW_KEYS; k++) {
			char key[32], ver[32];
			snprintf(key, sizeof key, "k%d", k);
			snprintf(ver, sizeof ver, "r%d", round);
			make_dirs_through(a, key, ver);
		}
	double t0 = now_s();
	for (int i = 0; i < CW_READERS; i++)
		pids[CW_WRITERS + i] =
		    spawn(cw_reader, sh, CW_WRITERS + i, i < 2 ? mnt_b : mnt_a);
	for (int i = 0; i < CW_WRITERS; i++)
		pids[i] = spawn(cw_writer, sh, i, i < 2 ? mnt_a : mnt_b);
	wait_all(pids, CW_WRITERS + CW_READERS);
	long wrong = 0, errors = 0, hits = 0, published = 0, quarantined = 0;
	for (int i = 0; i < CW_WRITERS + CW_READERS; i++) {
		char who[32];
		snprintf(who, sizeof who, "%s %s",
			 i < CW_WRITERS ? "writer" : "reader",
			 (i < CW_WRITERS ? i < 2 : i - CW_WRITERS >= 2) ? "A"
									: "B");
		print_report(who, &sh->r[i]);
		wrong += sh->r[i].wrong;
		errors += sh->r[i].errors;
		published += sh->r[i].published;
		quarantined += sh->r[i].quarantined;
		if (i >= CW_WRITERS)
			hits += sh->r[i].hits;
	}
	printf("    %.1f s\n", now_s() - t0);
	ASSERT_EQ(wrong, 0);
	ASSERT_EQ(errors, 0);
	ASSERT(hits > 0);
	/* Every (key, round) was published exactly once among all writers,
	 * but for one a reader or writer quarantined (each quarantine lets
	 * the next writer of that name publish it again). Seen once in CI
	 * under load: 81 publishes; the quarantines are printed above. */
	ASSERT(published >= CW_KEYS * CW_ROUNDS);
	ASSERT(published <= CW_KEYS * CW_ROUNDS + quarantined);
	/* and every one reads back right through both mounts */
	larder *b = open_on(mnt_b, 0);
	/* Every head, replaced by all writers at once, is readable through
	 * both mounts (a head's name left in split-brain fails every read
	 * with EIO), and a version-less lookup through either mount gives a
	 * whole published version: with copied heads of the entries up to
	 * 64 KiB and hint files of the larger (docs/format.md "Head hint"). */
	int copies = 0;
	for (int k = 0; k < CW_KEYS; k++) {
		char key[32];
		snprintf(key, sizeof key, "k%d", k);
		const char *mnts[2] = {mnt_a, mnt_b};
		larder *dbs[2] = {a, b};
		for (int j = 0; j < 2; j++) {
			char path[4600];
			head_file(mnts[j], key, path, sizeof path);
			int magic = raw_magic(path);
			ASSERT(magic >= 0);
			copies += magic == 1 && j == 0;
			larder_entry *e = head_get(dbs[j], key);
			size_t vl;
			const char *v = larder_entry_version(&vl, e);
			ASSERT(vl > 1 && vl < 8 && v[0] == 'r');
			char tmp[8];
			memcpy(tmp, v, vl);
			tmp[vl] = '\0';
			ASSERT(entry_right(e, k, atoi(tmp + 1)));
			larder_entry_release(e);
		}
	}
	printf("    %d of %d heads are copies of their entries\n", copies,
	       CW_KEYS);
	ASSERT(copies > 0);
	for (int k = 0; k < CW_KEYS; k++)
		for (int round = 0; round < CW_ROUNDS; round++) {
			char key[32], ver[32];
			snprintf(key, sizeof key, "k%d", k);
			snprintf(ver, sizeof ver, "r%d", round);
			larder *dbs[2] = {a, b};
			for (int j = 0; j < 2; j++) {
				larder_entry *e;
				ASSERT_RC(dbs[j],
					  larder_get(&e, dbs[j], NS, key,
						     strlen(key), ver,
						     strlen(ver)),
					  0);
				ASSERT(entry_right(e, k, round));
				larder_entry_release(e);
			}
		}
	larder_close(b);
	larder_close(a);
}

/* docs/format.md "Head hint": on a network filesystem the head of an
 * entry up to 64 KiB is a copy of it, one open for a version-less lookup;
 * a larger one's is a hint file. Removing the entry through the other
 * mount removes the copy. */
TEST(heads_through_a_are_copies_of_small_entries_and_hints_of_large_ones)
{
	larder *a = open_on(mnt_a, 1), *b = open_on(mnt_b, 0);
	ASSERT_RC(a, put_pattern(a, "small", "v1", 3000, 11), 0);
	ASSERT_RC(a, put_pattern(a, "large", "v1", 100000, 12), 0);
	char path[4600];
	head_file(mnt_b, "small", path, sizeof path);
	ASSERT_EQ(raw_magic(path), 1);
	struct stat st;
	ASSERT_EQ(lstat(path, &st), 0);
	ASSERT_EQ(st.st_nlink, 1);
	head_file(mnt_b, "large", path, sizeof path);
	ASSERT_EQ(raw_magic(path), 2);
	const char *keys[2] = {"small", "large"};
	const size_t sz[2] = {3000, 100000};
	for (int i = 0; i < 2; i++) {
		larder_entry *e;
		ASSERT_RC(
		    b, larder_get(&e, b, NS, keys[i], strlen(keys[i]), NULL, 0),
		    0);
		ASSERT_EQ(larder_entry_size(e), sz[i]);
		ASSERT(test_check_pattern(larder_entry_data(e), sz[i],
					  (uint64_t)(11 + i)));
		larder_entry_release(e);
	}
	ASSERT_RC(b, larder_remove(b, NS, "small", 5, "v1", 2), 0);
	head_file(mnt_a, "small", path, sizeof path);
	ASSERT(lstat(path, &st) != 0 && errno == ENOENT);
	larder_close(b);
	larder_close(a);
}

/* ---------------------------------------------------------------------- */
/* Head hint renamed over by A while B reads without a version             */

#define HD_PUTS 100
#define HD_READERS 2 /* slots 1..2 on B; slot 3 probes the raw file on B */

static size_t hd_size(int n)
{
	return n % 2 ? 100000 : 3000;
}

static void hd_writer(struct shared *sh, int slot, const char *mnt)
{
	struct report *r = &sh->r[slot];
	larder *db = open_on(mnt, 0);
	for (int n = 1; n <= HD_PUTS; n++) {
		char ver[32];
		snprintf(ver, sizeof ver, "v%d", n);
		int rc = put_pattern(db, "hot", ver, hd_size(n), seed_of(0, n));
		/* A hint file renamed over the head (as where links are
		 * refused): a new inode each time, the old one unlinked. */
		if (rc == 0 && sh->hints)
			rc = ldr_test_head_write_hint(db, NS, "hot", 3, ver,
						      strlen(ver));
		r->ops++;
		if (rc == 0)
			r->published++;
		else {
			r->errors++;
			note(r, "put hot %s: %s: %s", ver, larder_strerror(rc),
			     larder_errmsg(db));
		}
	}
	r->estale = (long)larder_counter(db, LARDER_CTR_ESTALE_RETRIES);
	larder_close(db);
	__atomic_add_fetch(&sh->writers_done, 1, __ATOMIC_SEQ_CST);
}

static void hd_reader(struct shared *sh, int slot, const char *mnt)
{
	struct report *r = &sh->r[slot];
	larder *db = NULL;
	larder_opts o = LARDER_OPTS_INIT;
	o.flags = sh->read_every_head ? LARDER_OPEN_VERIFY_ALWAYS : 0;
	ASSERT_RC(NULL, larder_open(&db, store_on(mnt), &o), 0);
	while (!__atomic_load_n(&sh->writers_done, __ATOMIC_SEQ_CST)) {
		larder_entry *e;
		int rc = larder_get(&e, db, NS, "hot", 3, NULL, 0);
		r->ops++;
		if (rc == LARDER_ENOTFOUND) {
			r->misses++;
			continue;
		}
		if (rc != 0) {
			r->errors++;
			note(r, "get hot (head): %s (errno %d): %s",
			     larder_strerror(rc), larder_errno(db),
			     larder_errmsg(db));
			continue;
		}
		size_t vl;
		const char *v = larder_entry_version(&vl, e);
		int n = -1;
		if (vl > 1 && vl < 8 && v[0] == 'v') {
			char tmp[8];
			memcpy(tmp, v, vl);
			tmp[vl] = '\0';
			n = atoi(tmp + 1);
		}
		if (n >= 0 && larder_entry_size(e) == hd_size(n) &&
		    test_check_pattern(larder_entry_data(e), hd_size(n),
				       seed_of(0, n)))
			r->hits++;
		else {
			r->wrong++;
			note(r,
			     "get hot (head): wrong bytes for version "
			     "'%.*s'",
			     (int)vl, v);
		}
		larder_entry_release(e);
	}
	r->estale = (long)larder_counter(db, LARDER_CTR_ESTALE_RETRIES);
	larder_close(db);
}

/* The only file under <store>/ns/default/h/ (one key, one head). */
static int find_head(const char *store, char *out, size_t outlen)
{
	char dir[4200];
	snprintf(dir, sizeof dir, "%s/ns/" NS "/h", store);
	for (int level = 0; level < 3; level++) {
		DIR *d = opendir(dir);
		if (!d)
			return -1;
		struct dirent *de;
		int found = 0;
		while ((de = readdir(d))) {
			if (de->d_name[0] == '.')
				continue;
			size_t n = strlen(dir);
			snprintf(dir + n, sizeof dir - n, "/%s", de->d_name);
			found = 1;
			break;
		}
		closedir(d);
		if (!found)
			return -1;
	}
	snprintf(out, outlen, "%s", dir);
	return 0;
}

/* Plain open + read of the head file through B, as a witness that the
 * other client's renames really produce ESTALE here. */
static void hd_prober(struct shared *sh, int slot, const char *mnt)
{
	struct report *r = &sh->r[slot];
	char path[4400];
	if (find_head(store_on(mnt), path, sizeof path) != 0) {
		r->errors++;
		note(r, "no head file under %s", store_on(mnt));
		return;
	}
	while (!__atomic_load_n(&sh->writers_done, __ATOMIC_SEQ_CST)) {
		char buf[64];
		r->ops++;
		int fd = open(path, O_RDONLY);
		if (fd < 0) {
			if (errno == ESTALE)
				r->raw_estale_open++;
			else if (errno != ENOENT)
				note(r, "open: %s", strerror(errno));
			continue;
		}
		if (pread(fd, buf, sizeof buf, 0) < 0 && errno == ESTALE)
			r->raw_estale_read++;
		close(fd);
	}
}

/* A rewrites the head of "hot" HD_PUTS times while B's readers look it up
 * without a version and a prober opens the head file itself. Fills sh. */
static void head_churn(struct shared *sh)
{
	larder *a = open_on(mnt_a, 1);
	/* Version 0 first, so that the prober has a head file to watch. */
	ASSERT_RC(a, put_pattern(a, "hot", "v0", hd_size(0), seed_of(0, 0)), 0);
	larder_close(a);
	pid_t pids[2 + HD_READERS];
	double t0 = now_s();
	for (int i = 0; i < HD_READERS; i++)
		pids[1 + i] = spawn(hd_reader, sh, 1 + i, mnt_b);
	pids[1 + HD_READERS] = spawn(hd_prober, sh, 1 + HD_READERS, mnt_b);
	pids[0] = spawn(hd_writer, sh, 0, mnt_a);
	wait_all(pids, 2 + HD_READERS);
	for (int i = 0; i < 1 + HD_READERS; i++)
		print_report(i ? "reader B" : "writer A", &sh->r[i]);
	const struct report *p = &sh->r[1 + HD_READERS];
	printf("    prober B   plain open+read %ld times: ESTALE from open "
	       "%ld, from read %ld%s%s\n",
	       p->ops, p->raw_estale_open, p->raw_estale_read,
	       p->msg[0] ? " first: " : "", p->msg);
	printf("    %.1f s\n", now_s() - t0);
	fflush(stdout);
	ASSERT_EQ(p->errors, 0);
}

TEST(head_renamed_over_through_a_gives_b_a_whole_version_or_a_miss)
{
	struct shared *sh = shared_new();
	head_churn(sh);
	long wrong = 0, errors = 0, hits = 0;
	for (int i = 0; i < 1 + HD_READERS; i++) {
		wrong += sh->r[i].wrong;
		errors += sh->r[i].errors;
		if (i)
			hits += sh->r[i].hits;
	}
	ASSERT_EQ(wrong, 0);
	ASSERT_EQ(errors, 0);
	ASSERT(hits > 0);
	ASSERT_EQ(sh->r[0].published, HD_PUTS);
	/* Once A stops, B's version-less lookup reaches A's last version
	 * (the hint may lag, but not for ever). */
	larder *b = open_on(mnt_b, 0);
	char last[32];
	snprintf(last, sizeof last, "v%d", HD_PUTS);
	double t0 = now_s();
	long stale = 0, older = 0;
	for (;;) {
		larder_entry *e;
		int rc = larder_get(&e, b, NS, "hot", 3, NULL, 0);
		if (rc == 0) {
			size_t vl;
			const char *v = larder_entry_version(&vl, e);
			int done = vl == strlen(last) && !memcmp(v, last, vl);
			larder_entry_release(e);
			if (done)
				break;
			older++;
		} else {
			ASSERT_RC(b, rc, LARDER_ENOTFOUND);
			stale++;
		}
		ASSERT(now_s() - t0 < 15);
		poll_pause();
	}
	printf(
	    "    B saw the last version after %.2f s (%ld misses, %ld "
	    "older versions first); estale_retries %llu\n",
	    now_s() - t0, stale, older,
	    (unsigned long long)larder_counter(b, LARDER_CTR_ESTALE_RETRIES));
	larder_close(b);
}

/* docs/operations.md counts estale_retries. A head is the one name renamed
 * over, so it is where ESTALE comes from -- but only a hint file: a head
 * linked to its entry leaves the inode it replaced alive (it is the older
 * version's entry), so opening it never meets a stale handle. larder
 * writes hint files on a network filesystem (docs/format.md); the writer
 * here also writes one after each put, so that this test keeps its
 * meaning whatever that rule becomes. The prober's plain opens of the head
 * show how often this mount produced an ESTALE. The library's readers open
 * it as often as the prober does (src/store/head.c, where a head read
 * retries ESTALE and counts it) when their handle keeps no head cache
 * (LARDER_OPEN_VERIFY_ALWAYS; with the cache, a changed head is seen by a
 * stat of its name first, which refreshes the client's handle, and once
 * in CI the readers met no ESTALE at all), so with enough ESTALE seen by
 * the prober they must have counted some. With too few, the run cannot judge:
 * the test is skipped, not passed. */
#define ESTALE_TO_JUDGE 10
TEST(estale_on_head_reads_is_counted)
{
	struct shared *sh = shared_new();
	sh->hints = 1;
	sh->read_every_head = 1;
	head_churn(sh);
	long lib = 0;
	for (int i = 1; i <= HD_READERS; i++)
		lib += sh->r[i].estale;
	const struct report *p = &sh->r[1 + HD_READERS];
	long seen = p->raw_estale_open + p->raw_estale_read;
	printf("    ESTALE seen by the prober %ld; estale_retries of the "
	       "library's readers %ld\n",
	       seen, lib);
	fflush(stdout);
	if (seen < ESTALE_TO_JUDGE)
		test_skip("the prober saw %ld ESTALE, fewer than the %d it "
			  "takes to expect the readers to meet one",
			  seen, ESTALE_TO_JUDGE);
	ASSERT(lib > 0);
}

/* ---------------------------------------------------------------------- */
/* Corruption made through A, found through B                              */

struct path_cb {
	char path[4400];
};

static int take_path(const larder_entry_info *info, void *payload)
{
	struct path_cb *p = payload;
	snprintf(p->path, sizeof p->path, "%s", info->path);
	return 0;
}

static void entry_path(larder *db, const char *key, const char *ver, char *out,
		       size_t outlen)
{
	struct path_cb p = {{0}};
	ASSERT_RC(db,
		  larder_inspect(db, NS, key, strlen(key), ver, strlen(ver), 0,
				 take_path, &p),
		  0);
	ASSERT(p.path[0]);
	snprintf(out, outlen, "%s", p.path);
}

/* Flip one byte at `off` from the end of the file, through the mount the
 * path is on; synced and closed, so the bricks have it. */
static void flip_byte(const char *path, off_t from_end)
{
	int fd = open(path, O_RDWR);
	ASSERT(fd >= 0);
	struct stat st;
	ASSERT_EQ(fstat(fd, &st), 0);
	unsigned char c;
	ASSERT_EQ(pread(fd, &c, 1, st.st_size - from_end), 1);
	c ^= 0x20;
	ASSERT_EQ(pwrite(fd, &c, 1, st.st_size - from_end), 1);
	ASSERT_EQ(fsync(fd), 0);
	ASSERT_EQ(close(fd), 0);
}

static int count_files(const char *dir)
{
	DIR *d = opendir(dir);
	if (!d)
		return -1;
	int n = 0;
	struct dirent *de;
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			n++;
	closedir(d);
	return n;
}

TEST(entry_corrupted_through_a_is_quarantined_through_b)
{
	larder *a = open_on(mnt_a, 1);
	larder *b = open_on(mnt_b, 0);
	const size_t sz[] = {1000, 200000};
	for (int i = 0; i < 2; i++) {
		char key[32], path[4400];
		snprintf(key, sizeof key, "bad-%zu", sz[i]);
		ASSERT_RC(a, put_pattern(a, key, "v1", sz[i], 99 + i), 0);
		/* B reads it once, so its caches hold the good bytes. */
		larder_entry *e;
		ASSERT_RC(b, larder_get(&e, b, NS, key, strlen(key), "v1", 2),
			  0);
		ASSERT(test_check_pattern(larder_entry_data(e), sz[i], 99 + i));
		larder_entry_release(e);

		entry_path(a, key, "v1", path, sizeof path);
		flip_byte(path, (off_t)sz[i] / 2);

		/* B may still serve its cached good copy for a moment (the
		 * client caches for about a second); it must never serve the
		 * bad bytes, and must find them within a bounded time. */
		uint64_t q0 = larder_counter(b, LARDER_CTR_QUARANTINED);
		long stale_good = 0;
		double t0 = now_s();
		for (;;) {
			int rc =
			    larder_get(&e, b, NS, key, strlen(key), "v1", 2);
			if (rc == LARDER_ENOTFOUND)
				break;
			ASSERT_RC(b, rc, 0);
			ASSERT_EQ(larder_entry_size(e), sz[i]);
			/* Checked in the caller's own copy (a network
			 * filesystem: never mapped): never wrong. */
			if (!test_check_pattern(larder_entry_data(e), sz[i],
						99 + i))
				test_fail(__FILE__, __LINE__,
					  "%s: get returned bad bytes after "
					  "%ld good reads",
					  key, stale_good);
			larder_entry_release(e);
			stale_good++;
			ASSERT(now_s() - t0 < 15);
			poll_pause();
		}
		printf("    %s: found after %.2f s (%ld cached good reads "
		       "first)\n",
		       key, now_s() - t0, stale_good);
		ASSERT_EQ(larder_counter(b, LARDER_CTR_QUARANTINED), q0 + 1);
		ASSERT(larder_counter(b, LARDER_CTR_CHECKSUM_FAIL) >= 1);

		/* It is in quarantine/ (as B, which moved it, sees it), and
		 * larder through A misses it too (bounded: A's client caches
		 * entries for about a second). */
		char qdir[4200];
		snprintf(qdir, sizeof qdir, "%s/quarantine", store_on(mnt_b));
		ASSERT_EQ(count_files(qdir), i + 1);
		t0 = now_s();
		for (;;) {
			int rc =
			    larder_get(&e, a, NS, key, strlen(key), "v1", 2);
			if (rc == LARDER_ENOTFOUND)
				break;
			ASSERT_RC(a, rc, 0);
			ASSERT(test_check_pattern(larder_entry_data(e), sz[i],
						  99 + i));
			larder_entry_release(e);
			if (now_s() - t0 >= 15)
				test_fail(__FILE__, __LINE__,
					  "%s: A still finds it 15 s after B "
					  "quarantined it",
					  key);
			poll_pause();
		}
		/* A refills it; B reads the good bytes again. */
		ASSERT_RC(a, put_pattern(a, key, "v1", sz[i], 99 + i), 0);
		t0 = now_s();
		for (;;) {
			int rc =
			    larder_get(&e, b, NS, key, strlen(key), "v1", 2);
			if (rc == 0)
				break;
			ASSERT_RC(b, rc, LARDER_ENOTFOUND);
			ASSERT(now_s() - t0 < 15);
			poll_pause();
		}
		ASSERT(test_check_pattern(larder_entry_data(e), sz[i], 99 + i));
		larder_entry_release(e);
	}
	larder_close(b);
	larder_close(a);
}

TEST(verify_through_b_finds_and_repairs_what_a_damaged)
{
	larder *a = open_on(mnt_a, 1);
	for (int i = 0; i < 6; i++) {
		char key[32];
		snprintf(key, sizeof key, "e%d", i);
		ASSERT_RC(a, put_pattern(a, key, "v1", sizes[i + 1], 500 + i),
			  0);
	}
	char bad[4400], out[4200];
	entry_path(a, "e3", "v1", bad, sizeof bad);
	flip_byte(bad, 1);
	larder_close(a);
	snprintf(out, sizeof out, "%s", test_path("verify.out"));
	const char *sb = store_on(mnt_b);

	/* `larder ls` through B lists all six */
	ASSERT_EQ(test_sh("'%s' --dir '%s' ls > '%s' 2>&1", cli, sb, out), 0);
	ASSERT_EQ(test_sh("test \"$(wc -l < '%s')\" -eq 6", out), 0);
	/* `larder get` through B gives A's bytes */
	ASSERT_EQ(test_sh("'%s' --dir '%s' get e5 --version v1 -o '%s'", cli,
			  sb, test_path("e5")),
		  0);
	{
		FILE *f = fopen(test_path("e5"), "rb");
		ASSERT(f);
		unsigned char *buf = malloc(sizes[6] + 1);
		ASSERT(buf);
		ASSERT_EQ(fread(buf, 1, sizes[6] + 1, f), sizes[6]);
		ASSERT(test_check_pattern(buf, sizes[6], 505));
		free(buf);
		fclose(f);
	}
	int rc = test_sh("'%s' --dir '%s' verify > '%s' 2>&1", cli, sb, out);
	if (rc != 5)
		test_sh("cat '%s'", out);
	ASSERT_EQ(rc, 5);
	ASSERT_EQ(test_sh("grep -q ': corrupt: .*e3' '%s'", out), 0);
	ASSERT_EQ(
	    test_sh("grep -q '^6 entries checked, 5 ok, 1 corrupt' '%s'", out),
	    0);
	rc = test_sh("'%s' --dir '%s' verify --repair > '%s' 2>&1", cli, sb,
		     out);
	if (rc != 0)
		test_sh("cat '%s'", out);
	ASSERT_EQ(rc, 0);
	ASSERT_EQ(test_sh("grep -q ': quarantined$' '%s'", out), 0);
	/* and A's view agrees, once its entry cache has caught up */
	double t0 = now_s();
	while (access(bad, F_OK) == 0) {
		ASSERT(now_s() - t0 < 15);
		poll_pause();
	}
	rc = test_sh("'%s' --dir '%s' verify > '%s' 2>&1", cli, store_on(mnt_a),
		     out);
	if (rc != 0)
		test_sh("cat '%s'", out);
	ASSERT_EQ(rc, 0);
	ASSERT_EQ(
	    test_sh("grep -q '^5 entries checked, 5 ok, 0 corrupt' '%s'", out),
	    0);
}

/* ---------------------------------------------------------------------- */
/* The same entry published from both clients at once                      */

#define RACE_ROUNDS 16

/* Set before each round's fork: the round, and a pipe whose write end
 * the parent closes to start both puts at once. */
static int race_round, race_pipe[2];

static void race_put(struct shared *sh, int slot, const char *mnt)
{
	struct report *r = &sh->r[slot];
	larder *db = open_on(mnt, 0);
	int round = race_round;
	char key[32];
	snprintf(key, sizeof key, "race%d", round);
	close(race_pipe[1]);
	char c;
	while (read(race_pipe[0], &c, 1) < 0 && errno == EINTR)
		;
	int rc = put_pattern(db, key, "v1", round % 2 ? 150000 : 2000,
			     seed_of(round, 1));
	if (rc == 0)
		r->published++;
	else if (rc == LARDER_EXISTS)
		r->exists++;
	else {
		r->errors++;
		note(r, "put %s: %s: %s", key, larder_strerror(rc),
		     larder_errmsg(db));
	}
	r->estale = (long)larder_counter(db, LARDER_CTR_ESTALE_RETRIES);
	r->quarantined = (long)larder_counter(db, LARDER_CTR_QUARANTINED);
	larder_close(db);
}

TEST(same_entry_put_through_both_mounts_at_once_is_published_once)
{
	larder *a = open_on(mnt_a, 1);
	larder *b = open_on(mnt_b, 0);
	long both = 0;
	for (int round = 0; round < RACE_ROUNDS; round++) {
		/* the race here is the link's, not the directories' */
		char pre[32];
		snprintf(pre, sizeof pre, "race%d", round);
		make_dirs_through(a, pre, "v1");
		struct shared *sh = shared_new();
		ASSERT_EQ(pipe(race_pipe), 0);
		race_round = round;
		pid_t pids[2];
		pids[0] = spawn(race_put, sh, 0, mnt_a);
		pids[1] = spawn(race_put, sh, 1, mnt_b);
		close(race_pipe[0]);
		close(race_pipe[1]); /* go */
		wait_all(pids, 2);
		for (int i = 0; i < 2; i++)
			if (sh->r[i].errors ||
			    sh->r[0].published + sh->r[1].published != 1)
				print_report(i ? "put B" : "put A", &sh->r[i]);
		ASSERT_EQ(sh->r[0].errors + sh->r[1].errors, 0);
		ASSERT_EQ(sh->r[0].published + sh->r[1].published, 1);
		ASSERT_EQ(sh->r[0].exists + sh->r[1].exists, 1);
		both += sh->r[1].published;
		munmap(sh, sizeof *sh);
		char key[32];
		snprintf(key, sizeof key, "race%d", round);
		larder *dbs[2] = {a, b};
		for (int j = 0; j < 2; j++) {
			larder_entry *e;
			ASSERT_RC(dbs[j],
				  larder_get(&e, dbs[j], NS, key, strlen(key),
					     "v1", 2),
				  0);
			ASSERT_EQ(larder_entry_size(e),
				  round % 2 ? 150000 : 2000);
			ASSERT(test_check_pattern(larder_entry_data(e),
						  larder_entry_size(e),
						  seed_of(round, 1)));
			larder_entry_release(e);
		}
	}
	printf("    B won %ld of %d races, A the rest\n", both, RACE_ROUNDS);
	larder_close(b);
	larder_close(a);
}

/* ---------------------------------------------------------------------- */
/* A large entry held through B outlives its removal through A           */

TEST(large_entry_held_through_b_outlives_removal_through_a)
{
	larder *a = open_on(mnt_a, 1);
	larder *b = open_on(mnt_b, 0);
	const size_t sz = 4u << 20;
	ASSERT_RC(a, put_pattern(a, "big", "v1", sz, 4242), 0);
	larder_entry *e;
	ASSERT_RC(b, larder_get(&e, b, NS, "big", 3, "v1", 2), 0);
	/* On a network filesystem a large payload is read, not mapped: a
	 * mapping of a file another client removes can lose its pages with
	 * nothing to read them back from (SIGBUS), seen here about one run
	 * in six. */
	ASSERT(!larder_entry_is_mapped(e));
	ASSERT_RC(a, larder_remove(a, NS, "big", 3, "v1", 2), 0);
	/* Push the copy out of memory too: it comes back from swap or is
	 * simply still there; either way every byte stays right. */
	uintptr_t p = (uintptr_t)larder_entry_data(e);
	uintptr_t start = p & ~(uintptr_t)4095;
	madvise((void *)start, sz + (p - start), MADV_PAGEOUT);
	ASSERT(test_check_pattern(larder_entry_data(e), sz, 4242));
	larder_entry_release(e);
	/* and B now misses (bounded: B's entry cache may lag) */
	double t0 = now_s();
	for (;;) {
		int rc = larder_get(&e, b, NS, "big", 3, "v1", 2);
		if (rc == LARDER_ENOTFOUND)
			break;
		ASSERT_RC(b, rc, 0);
		ASSERT(test_check_pattern(larder_entry_data(e), sz, 4242));
		larder_entry_release(e);
		ASSERT(now_s() - t0 < 15);
		poll_pause();
	}
	larder_close(b);
	larder_close(a);
}

/* ---------------------------------------------------------------------- */
/* Single flight across the two clients (docs/leases.md) */

#define HERD 4 /* slots 0..3: two on A, two on B */
#define HERD_SIZE 300000

/* A slow source: `size` pattern bytes for `seed`, in 30000-byte pieces
 * with a pause after each, so that others find the lease taken. */
static int slow_load(larder_fill *f, size_t size, uint64_t seed, long pause_ms)
{
	unsigned char *buf = malloc(size);
	if (!buf)
		return LARDER_ENOMEM;
	test_fill_pattern(buf, size, seed);
	int rc = 0;
	for (size_t off = 0; rc == 0 && off < size; off += 30000) {
		size_t n = size - off < 30000 ? size - off : 30000;
		rc = larder_fill_write(f, buf + off, n);
		struct timespec ts = {0, pause_ms * 1000 * 1000};
		nanosleep(&ts, NULL); /* a slow source, not synchronisation */
	}
	free(buf);
	return rc;
}

static int herd_load(larder_fill *f, void *payload)
{
	struct shared *sh = payload;
	__atomic_add_fetch(&sh->writers_done, 1, __ATOMIC_SEQ_CST);
	return slow_load(f, HERD_SIZE, 777, 30);
}

static void herd_member(struct shared *sh, int slot, const char *mnt)
{
	struct report *r = &sh->r[slot];
	larder *db = open_on(mnt, 0);
	larder_fill_opts fo = LARDER_FILL_OPTS_INIT;
	fo.lease_seconds = 5;
	char c;
	close(race_pipe[1]);
	while (read(race_pipe[0], &c, 1) < 0 && errno == EINTR)
		;
	larder_entry *e;
	int outcome = 0;
	int rc = larder_get_or_fill(&e, &outcome, db, NS, "herd", 4, "v1", 2,
				    NULL, herd_load, sh, &fo);
	r->ops = outcome;
	if (rc != 0) {
		r->errors++;
		note(r, "get_or_fill: %s: %s", larder_strerror(rc),
		     larder_errmsg(db));
	} else {
		if (larder_entry_size(e) == HERD_SIZE &&
		    test_check_pattern(larder_entry_data(e), HERD_SIZE, 777))
			r->hits++;
		else
			r->wrong++;
		larder_entry_release(e);
	}
	larder_close(db);
}

TEST(herd_on_both_mounts_loads_once)
{
	larder *a = open_on(mnt_a, 1);
	struct shared *sh = shared_new();
	ASSERT_EQ(pipe(race_pipe), 0);
	pid_t pids[HERD];
	for (int i = 0; i < HERD; i++)
		pids[i] = spawn(herd_member, sh, i, i % 2 ? mnt_b : mnt_a);
	close(race_pipe[0]);
	close(race_pipe[1]); /* go */
	wait_all(pids, HERD);
	for (int i = 0; i < HERD; i++) {
		char who[32];
		snprintf(who, sizeof who, "member %s", i % 2 ? "B" : "A");
		printf("    %s outcome %ld%s%s\n", who, sh->r[i].ops,
		       sh->r[i].msg[0] ? " first: " : "", sh->r[i].msg);
		ASSERT_EQ(sh->r[i].errors, 0);
		ASSERT_EQ(sh->r[i].wrong, 0);
		ASSERT_EQ(sh->r[i].hits, 1);
	}
	printf("    loads: %d\n", sh->writers_done);
	fflush(stdout);
	ASSERT_EQ(sh->writers_done, 1);
	larder_close(a);
}

/* An entry is immutable once published; larder never writes into one. If
 * something else writes into a published file in place (a stray tool),
 * a held entry whose payload was read (small entries) keeps the bytes
 * that were checked: they are in the caller's own buffer. (A mapped large
 * entry shares the page cache, zero-copy, so such a write shows through
 * it; larder.h says so.) */
TEST(held_small_entry_never_changes_when_a_writes_into_its_file)
{
	larder *a = open_on(mnt_a, 1);
	larder *b = open_on(mnt_b, 0);
	const size_t sz = 2000;
	ASSERT_RC(a, put_pattern(a, "held", "v1", sz, 31), 0);
	larder_entry *e;
	ASSERT_RC(b, larder_get(&e, b, NS, "held", 4, "v1", 2), 0);
	ASSERT(!larder_entry_is_mapped(e));
	char path[4400];
	entry_path(a, "held", "v1", path, sizeof path);
	flip_byte(path, (off_t)sz / 2);
	/* Until B's client has surely seen the change (a fresh get misses),
	 * the held bytes must stay exactly the checked ones. */
	larder_entry *e2;
	double t0 = now_s();
	for (;;) {
		ASSERT(test_check_pattern(larder_entry_data(e), sz, 31));
		int rc = larder_get(&e2, b, NS, "held", 4, "v1", 2);
		if (rc == LARDER_ENOTFOUND)
			break;
		ASSERT_RC(b, rc, 0);
		ASSERT(test_check_pattern(larder_entry_data(e2), sz, 31));
		larder_entry_release(e2);
		ASSERT(now_s() - t0 < 15);
		poll_pause();
	}
	ASSERT(test_check_pattern(larder_entry_data(e), sz, 31));
	larder_entry_release(e);
	larder_close(b);
	larder_close(a);
}

/* ---------------------------------------------------------------------- */
/* A filler killed on one client is taken over through the other          */

#define CRASH_TRIALS 10
#define CRASH_SIZE 300000
#define CRASH_LEASE 2.0

static int crash_pipe[2]; /* the filler says "loading" here */

struct crash_job {
	int announce; /* write a byte to crash_pipe when the load starts */
};

static int crash_load(larder_fill *f, void *payload)
{
	struct crash_job *j = payload;
	if (j->announce && write(crash_pipe[1], "L", 1) != 1)
		return LARDER_EIO;
	return slow_load(f, CRASH_SIZE, 555, 20);
}

static void crash_member(struct shared *sh, int slot, const char *mnt)
{
	struct report *r = &sh->r[slot];
	larder *db = open_on(mnt, 0);
	larder_fill_opts fo = LARDER_FILL_OPTS_INIT;
	fo.lease_seconds = CRASH_LEASE;
	fo.heartbeat_seconds = 0.2;
	char key[32];
	snprintf(key, sizeof key, "crash-%d", sh->writers_done);
	struct crash_job j = {slot == 0};
	larder_entry *e;
	int outcome = 0;
	int rc = larder_get_or_fill(&e, &outcome, db, NS, key, strlen(key),
				    "v1", 2, NULL, crash_load, &j, &fo);
	r->ops = outcome;
	r->published = (long)(now_s() * 1000); /* when it was done, ms */
	if (rc != 0) {
		r->errors++;
		note(r, "get_or_fill: %s: %s", larder_strerror(rc),
		     larder_errmsg(db));
	} else {
		if (larder_entry_size(e) == CRASH_SIZE &&
		    test_check_pattern(larder_entry_data(e), CRASH_SIZE, 555))
			r->hits++;
		else
			r->wrong++;
		larder_entry_release(e);
	}
	larder_close(db);
}

TEST(filler_killed_on_a_is_taken_over_through_b)
{
	larder *a = open_on(mnt_a, 1);
	struct shared *sh = shared_new();
	double worst = 0;
	for (int t = 0; t < CRASH_TRIALS; t++) {
		memset(sh->r, 0, sizeof sh->r);
		sh->writers_done = t; /* names the trial's key */
		ASSERT_EQ(pipe(crash_pipe), 0);
		pid_t filler = spawn(crash_member, sh, 0, mnt_a);
		char c;
		ASSERT_EQ(read(crash_pipe[0], &c, 1), 1); /* it is loading */
		pid_t waiter = spawn(crash_member, sh, 1, mnt_b);
		/* Kill it somewhere in its load (random, not a wait for
		 * anything). */
		struct timespec d = {0, (long)(rand() % 150) * 1000 * 1000};
		nanosleep(&d, NULL);
		ASSERT_EQ(kill(filler, SIGKILL), 0);
		int st;
		ASSERT_EQ(waitpid(filler, &st, 0), filler);
		double killed = now_s() * 1000;
		wait_all(&waiter, 1);
		close(crash_pipe[0]);
		close(crash_pipe[1]);
		struct report *r = &sh->r[1];
		if (r->errors || r->wrong != 0 || r->hits != 1)
			test_fail(__FILE__, __LINE__,
				  "trial %d: waiter errors %ld wrong %ld hits "
				  "%ld: %s",
				  t, r->errors, r->wrong, r->hits, r->msg);
		double took = (double)r->published - killed;
		if (took > worst)
			worst = took;
		/* lease + 2 s, as the issue asks */
		ASSERT((double)r->published - killed <=
		       (CRASH_LEASE + 2.0) * 1000);
	}
	printf("    %d kills on A: B done at most %.0f ms after the kill\n",
	       CRASH_TRIALS, worst);
	fflush(stdout);
	larder_close(a);
}

/* A store whose entries are never removed under a reader may ask for
 * zero-copy on a network filesystem too. */
TEST(map_network_flag_maps_large_entries_on_a_network_filesystem)
{
	larder *a = open_on(mnt_a, 1);
	ASSERT_RC(a, put_pattern(a, "mapme", "v1", 200000, 11), 0);
	larder *b = NULL;
	larder_opts o = LARDER_OPTS_INIT;
	o.flags = LARDER_OPEN_MAP_NETWORK;
	ASSERT_RC(NULL, larder_open(&b, store_on(mnt_b), &o), 0);
	larder_entry *e;
	ASSERT_RC(b, larder_get(&e, b, NS, "mapme", 5, "v1", 2), 0);
	ASSERT(larder_entry_is_mapped(e));
	ASSERT(test_check_pattern(larder_entry_data(e), 200000, 11));
	larder_entry_release(e);
	larder_close(b);
	larder_close(a);
}
