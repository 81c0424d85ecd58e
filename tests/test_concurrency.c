/*
 * test_concurrency.c — many processes on one store at once. Writers
 * publish, race, abort and remove while readers check every byte of every
 * hit against the pattern that (key, version) must hold. Whatever the
 * interleaving: no reader ever sees a wrong byte, no racing writer fails,
 * nothing is quarantined (a healthy store never looks corrupt mid-publish)
 * and no temp file is left behind.
 *
 * Processes start together on a barrier: a pipe whose write end the parent
 * closes once every child is forked; each child blocks reading it.
 * Results come back through a shared anonymous mapping and exit codes.
 */
#include <dirent.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testing.h"
#include "harness.h"
#include "larder.h"
#include "store_util.h"

#define KiB 1024u
#define MiB (1024u * 1024u)

/* ---------------------------------------------------------------------- */
/* Processes                                                               */

struct barrier {
	int fd[2];
};

static void barrier_init(struct barrier *b)
{
	ASSERT_EQ(pipe(b->fd), 0);
}

/* In a child: block until the parent releases everyone. */
static void barrier_wait(struct barrier *b)
{
	close(b->fd[1]);
	char c;
	ssize_t n;
	do {
		n = read(b->fd[0], &c, 1);
	} while (n < 0 && errno == EINTR);
	ASSERT_EQ(n, 0); /* EOF: every write end is closed */
	close(b->fd[0]);
}

/* In the parent, after forking every child. */
static void barrier_release(struct barrier *b)
{
	close(b->fd[1]);
	close(b->fd[0]);
}

static pid_t spawn(struct barrier *b, void (*fn)(int id, void *arg), int id,
		   void *arg)
{
	fflush(NULL);
	pid_t pid = fork();
	ASSERT(pid >= 0);
	if (pid == 0) {
		barrier_wait(b);
		fn(id, arg);
		_exit(0);
	}
	return pid;
}

/* Wait for pid; fail the test unless it exited 0. */
static void reap(pid_t pid, const char *what, int id)
{
	int st;
	pid_t r;
	do {
		r = waitpid(pid, &st, 0);
	} while (r < 0 && errno == EINTR);
	ASSERT_EQ(r, pid);
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		test_fail(__FILE__, __LINE__, "%s %d %s %d", what, id,
			  WIFEXITED(st) ? "exited with" : "killed by signal",
			  WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
}

static void *shared_map(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	ASSERT(p != MAP_FAILED);
	memset(p, 0, len);
	return p;
}

/* ---------------------------------------------------------------------- */
/* Store and payloads                                                      */

/* A worker's handle on the store the test created (open_store()): not
 * created again, so that a worker never makes a store of its own. */
static larder *open_existing(void)
{
	larder_opts o = LARDER_OPTS_INIT;
	o.fsync = LARDER_FSYNC_NONE; /* concurrency does not need fsync */
	return open_store_at(store_dir(), &o);
}

/* Sizes around every boundary that matters: empty, one byte, a page, the
 * 64 KiB mmap threshold, and a few large ones. */
static const size_t sizes[] = {
    0,	       1,      777, 4095, 4096, 64 * KiB - 1, 64 * KiB, 64 * KiB + 1,
    300 * KiB, MiB + 3};
#define NSIZES (sizeof sizes / sizeof sizes[0])

static size_t size_of(uint64_t seed)
{
	return sizes[(seed >> 17) % NSIZES];
}

/* Metadata every reader can recompute: the seed, in text. */
static int meta_of(uint64_t seed, char *out, size_t len)
{
	return snprintf(out, len, "seed=%016llx", (unsigned long long)seed);
}

/* Check a hit: size, every payload byte, version and metadata. Returns 1
 * if all are right. */
static int entry_is_right(const larder_entry *e, const void *key, size_t klen,
			  const void *want_ver, size_t want_vlen)
{
	size_t vlen;
	const void *ver = larder_entry_version(&vlen, e);
	if (want_ver &&
	    (vlen != want_vlen || memcmp(ver, want_ver, want_vlen) != 0))
		return 0;
	uint64_t seed = seed_of_kv(key, klen, ver, vlen);
	size_t size = size_of(seed);
	if (larder_entry_size(e) != size)
		return 0;
	if (!test_check_pattern(larder_entry_data(e), size, seed))
		return 0;
	char m[64];
	int mlen = meta_of(seed, m, sizeof m);
	size_t got_mlen;
	const void *meta = larder_entry_meta(&got_mlen, e);
	return got_mlen == (size_t)mlen && memcmp(meta, m, got_mlen) == 0;
}

static void expect_clean_store(void)
{
	int tmp = count_files(store_dir(), ".tmp.");
	if (tmp)
		test_fail(__FILE__, __LINE__, "%d temp files left", tmp);
	int q = count_files(test_path("store/quarantine"), NULL);
	if (q)
		test_fail(__FILE__, __LINE__,
			  "%d files quarantined in a healthy run", q);
}

static int count_bad(const larder_entry_info *info, void *payload)
{
	if (info->state != LARDER_STATE_OK)
		(*(int *)payload)++;
	return 0;
}

static void expect_walk_all_ok(larder *db)
{
	int bad = 0;
	ASSERT_RC(
	    db, larder_walk(db, NULL, LARDER_WALK_VERIFY, count_bad, &bad), 0);
	ASSERT_EQ(bad, 0);
}

/* Put the pattern of (key, ver): one shot, or streamed in odd chunks. */
static int put_pattern(larder *db, const char *ns, const char *key,
		       const char *ver, int streamed, unsigned flags)
{
	size_t klen = strlen(key), vlen = strlen(ver);
	uint64_t seed = seed_of_kv(key, klen, ver, vlen);
	size_t size = size_of(seed);
	uint8_t *buf = xmalloc(size);
	test_fill_pattern(buf, size, seed);
	char m[64];
	larder_put_opts po = LARDER_PUT_OPTS_INIT;
	po.flags = flags;
	po.meta = m;
	po.meta_len = (size_t)meta_of(seed, m, sizeof m);
	int rc;
	if (!streamed) {
		rc = larder_put(db, ns, key, klen, ver, vlen, buf, size, &po);
	} else {
		larder_writer *w;
		rc = larder_writer_begin(&w, db, ns, key, klen, ver, vlen, &po);
		for (size_t off = 0; rc == 0 && off < size; off += 4093) {
			size_t n = size - off < 4093 ? size - off : 4093;
			rc = larder_writer_write(w, buf + off, n);
		}
		if (rc == 0)
			rc = larder_writer_commit(w);
		else if (w)
			larder_writer_abort(w);
	}
	free(buf);
	return rc;
}

/* ---------------------------------------------------------------------- */
/* Eight writers, one key and version                                      */

#define SAME_WRITERS 8
#define SAME_READERS 2
#define SAME_ROUNDS 40

struct same_shared {
	atomic_int writers_done;
	atomic_int round;
	atomic_int published[SAME_ROUNDS];
	atomic_int exists[SAME_ROUNDS];
	atomic_int errors;
	atomic_int wrong;
	atomic_long hits;
	atomic_int last_error;
};

static struct same_shared *same;

static void same_round_ver(int r, char *ver, size_t len)
{
	/* Rounds walk the sizes; the version picks which. */
	snprintf(ver, len, "round-%d", r);
}

static void same_writer(int id, void *arg)
{
	(void)arg;
	(void)id;
	larder *db = open_existing();
	for (int r = 0; r < SAME_ROUNDS; r++) {
		char ver[32];
		same_round_ver(r, ver, sizeof ver);
		/* Alternate one-shot, streamed and compressed writers so
		 * that different publish paths race each other. */
		int rc = put_pattern(db, "same", "the-key", ver, (id + r) % 2,
				     id % 3 == 0 ? LARDER_PUT_ZSTD : 0);
		if (rc == 0) {
			atomic_fetch_add(&same->published[r], 1);
		} else if (rc == LARDER_EXISTS) {
			atomic_fetch_add(&same->exists[r], 1);
		} else {
			atomic_fetch_add(&same->errors, 1);
			atomic_store(&same->last_error, rc);
			fprintf(stderr, "writer %d round %d: %d %s\n", id, r,
				rc, larder_errmsg(db));
		}
		/* Whoever won, the entry now reads back whole. */
		larder_entry *e;
		rc = larder_get(&e, db, "same", "the-key", 7, ver, strlen(ver));
		if (rc != 0 ||
		    !entry_is_right(e, "the-key", 7, ver, strlen(ver)))
			atomic_fetch_add(&same->wrong, 1);
		if (rc == 0)
			larder_entry_release(e);
	}
	larder_close(db);
}

static void same_reader(int id, void *arg)
{
	(void)arg;
	(void)id;
	larder *db = open_existing();
	int r = 0;
	while (!atomic_load(&same->writers_done)) {
		char ver[32];
		same_round_ver(r, ver, sizeof ver);
		r = (r + 1) % SAME_ROUNDS;
		larder_entry *e;
		int rc =
		    larder_get(&e, db, "same", "the-key", 7, ver, strlen(ver));
		if (rc == 0) {
			atomic_fetch_add(&same->hits, 1);
			if (!entry_is_right(e, "the-key", 7, ver, strlen(ver)))
				atomic_fetch_add(&same->wrong, 1);
			larder_entry_release(e);
		} else if (rc != LARDER_ENOTFOUND) {
			atomic_fetch_add(&same->errors, 1);
			atomic_store(&same->last_error, rc);
		}
		/* Version-less: whatever the head says, it is whole. */
		rc = larder_get(&e, db, "same", "the-key", 7, NULL, 0);
		if (rc == 0) {
			if (!entry_is_right(e, "the-key", 7, NULL, 0))
				atomic_fetch_add(&same->wrong, 1);
			larder_entry_release(e);
		} else if (rc != LARDER_ENOTFOUND) {
			atomic_fetch_add(&same->errors, 1);
			atomic_store(&same->last_error, rc);
		}
		if (larder_counter(db, LARDER_CTR_QUARANTINED) != 0)
			atomic_fetch_add(&same->wrong, 1);
	}
	larder_close(db);
}

TEST(eight_writers_of_the_same_key_and_version_publish_it_once)
{
	same = shared_map(sizeof *same);
	larder_close(open_store());
	struct barrier b;
	barrier_init(&b);
	pid_t w[SAME_WRITERS], rd[SAME_READERS];
	for (int i = 0; i < SAME_READERS; i++)
		rd[i] = spawn(&b, same_reader, i, NULL);
	for (int i = 0; i < SAME_WRITERS; i++)
		w[i] = spawn(&b, same_writer, i, NULL);
	barrier_release(&b);
	for (int i = 0; i < SAME_WRITERS; i++)
		reap(w[i], "writer", i);
	atomic_store(&same->writers_done, 1);
	for (int i = 0; i < SAME_READERS; i++)
		reap(rd[i], "reader", i);

	if (atomic_load(&same->errors))
		test_fail(__FILE__, __LINE__, "%d errors, last %d (%s)",
			  atomic_load(&same->errors),
			  atomic_load(&same->last_error),
			  larder_strerror(atomic_load(&same->last_error)));
	ASSERT_EQ(atomic_load(&same->wrong), 0);
	for (int r = 0; r < SAME_ROUNDS; r++) {
		int pub = atomic_load(&same->published[r]);
		int ex = atomic_load(&same->exists[r]);
		/* link() publishes once: exactly one writer, whatever
		 * the order; each of the others finds it there. */
		if (pub != 1 || ex != SAME_WRITERS - 1)
			test_fail(__FILE__, __LINE__,
				  "round %d: %d published, %d exists", r, pub,
				  ex);
	}

	larder *db = open_existing();
	for (int r = 0; r < SAME_ROUNDS; r++) {
		char ver[32];
		same_round_ver(r, ver, sizeof ver);
		larder_entry *e;
		ASSERT_RC(
		    db,
		    larder_get(&e, db, "same", "the-key", 7, ver, strlen(ver)),
		    0);
		ASSERT(entry_is_right(e, "the-key", 7, ver, strlen(ver)));
		larder_entry_release(e);
	}
	expect_walk_all_ok(db);
	larder_close(db);
	expect_clean_store();
	printf("     same key: %ld reader hits\n", atomic_load(&same->hits));
}

/* ---------------------------------------------------------------------- */
/* Eight writers of their own keys, four readers of everything             */

#define MIX_WRITERS 8
#define MIX_READERS 4
#define MIX_KEYS 4    /* per writer */
#define MIX_ITERS 400 /* per writer: MIX_ITERS / MIX_KEYS versions per key */
#define MIX_KEEP 3    /* versions kept per key; older ones are removed */

struct mix_shared {
	atomic_int writers_done;
	atomic_int progress[MIX_WRITERS]; /* iterations completed */
	atomic_int errors;
	atomic_int last_error;
	atomic_long wrong;
	atomic_long hits, hits_during, head_hits, misses;
	atomic_long junk_hits;
	atomic_long quarantined;
};

static struct mix_shared *mix;

static void mix_name(int w, int i, char *key, size_t klen, char *ver,
		     size_t vlen)
{
	snprintf(key, klen, "w%d-key%d", w, i % MIX_KEYS);
	snprintf(ver, vlen, "v%d", i / MIX_KEYS);
}

static void mix_error(larder *db, const char *what, int rc)
{
	atomic_fetch_add(&mix->errors, 1);
	atomic_store(&mix->last_error, rc);
	fprintf(stderr, "%s: %d (%s): %s\n", what, rc, larder_strerror(rc),
		larder_errmsg(db));
}

static void mix_writer(int w, void *arg)
{
	(void)arg;
	larder *db = open_existing();
	for (int i = 0; i < MIX_ITERS; i++) {
		char key[32], ver[32];
		mix_name(w, i, key, sizeof key, ver, sizeof ver);
		unsigned flags = (i % 5 == 0) ? LARDER_PUT_ZSTD : 0;
		int rc = put_pattern(db, "mix", key, ver, i % 3 == 1, flags);
		if (rc != 0)
			mix_error(db, "put", rc);

		/* A writer that gives up half-way: never visible. */
		if (i % 7 == 3) {
			larder_writer *wr;
			rc = larder_writer_begin(&wr, db, "mix", key,
						 strlen(key), "junk", 4, NULL);
			if (rc == 0) {
				uint8_t junk[5000];
				memset(junk, 0xA5, sizeof junk);
				rc = larder_writer_write(wr, junk, sizeof junk);
				larder_writer_abort(wr);
			}
			if (rc != 0)
				mix_error(db, "junk writer", rc);
		}

		/* Drop the version MIX_KEEP behind, under readers' feet. */
		int old = i - MIX_KEYS * MIX_KEEP;
		if (old >= 0) {
			char okey[32], over[32];
			mix_name(w, old, okey, sizeof okey, over, sizeof over);
			rc = larder_remove(db, "mix", okey, strlen(okey), over,
					   strlen(over));
			if (rc != 0)
				mix_error(db, "remove", rc);
		}
		atomic_store(&mix->progress[w], i + 1);
	}
	larder_close(db);
}

static uint64_t xorshift(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static void mix_read_one(larder *db, uint64_t *rng, int during)
{
	int w = (int)(xorshift(rng) % MIX_WRITERS);
	int p = atomic_load(&mix->progress[w]);
	/* Mostly what was just written or is being written now. */
	int i = p - (int)(xorshift(rng) % (MIX_KEYS * (MIX_KEEP + 1)));
	if (i < 0)
		i = (int)(xorshift(rng) % MIX_KEYS);
	char key[32], ver[32];
	mix_name(w, i, key, sizeof key, ver, sizeof ver);
	size_t klen = strlen(key);
	int kind = (int)(xorshift(rng) % 8);
	const char *want = kind == 0 ? NULL : kind == 1 ? "junk" : ver;
	size_t wlen = want ? strlen(want) : 0;

	larder_entry *e;
	int rc = larder_get(&e, db, "mix", key, klen, want, wlen);
	if (rc == LARDER_ENOTFOUND) {
		atomic_fetch_add(&mix->misses, 1);
		return;
	}
	if (rc != 0) {
		mix_error(db, "get", rc);
		return;
	}
	if (kind == 1) {
		atomic_fetch_add(&mix->junk_hits, 1);
	} else if (!entry_is_right(e, key, klen, want, wlen)) {
		size_t vlen;
		const char *v = larder_entry_version(&vlen, e);
		fprintf(stderr, "wrong read: %s %.*s size %zu\n", key,
			(int)vlen, v, larder_entry_size(e));
		atomic_fetch_add(&mix->wrong, 1);
	}
	atomic_fetch_add(&mix->hits, 1);
	if (during)
		atomic_fetch_add(&mix->hits_during, 1);
	if (!want)
		atomic_fetch_add(&mix->head_hits, 1);
	larder_entry_release(e);
}

static void mix_reader(int id, void *arg)
{
	(void)arg;
	larder *db = open_existing();
	uint64_t rng = 0x9E3779B97F4A7C15ull * (uint64_t)(id + 1);
	while (!atomic_load(&mix->writers_done))
		mix_read_one(db, &rng, 1);
	/* One more stretch after the writers, on the settled store. */
	for (int n = 0; n < 200; n++)
		mix_read_one(db, &rng, 0);
	atomic_fetch_add(&mix->quarantined,
			 (long)larder_counter(db, LARDER_CTR_QUARANTINED));
	larder_close(db);
}

TEST(eight_writers_and_four_readers_never_see_a_wrong_byte)
{
	mix = shared_map(sizeof *mix);
	larder_close(open_store());
	struct barrier b;
	barrier_init(&b);
	pid_t w[MIX_WRITERS], rd[MIX_READERS];
	for (int i = 0; i < MIX_READERS; i++)
		rd[i] = spawn(&b, mix_reader, i, NULL);
	for (int i = 0; i < MIX_WRITERS; i++)
		w[i] = spawn(&b, mix_writer, i, NULL);
	barrier_release(&b);
	for (int i = 0; i < MIX_WRITERS; i++)
		reap(w[i], "writer", i);
	atomic_store(&mix->writers_done, 1);
	for (int i = 0; i < MIX_READERS; i++)
		reap(rd[i], "reader", i);

	printf("     mix: %ld hits (%ld while writing, %ld via head), %ld "
	       "misses\n",
	       atomic_load(&mix->hits), atomic_load(&mix->hits_during),
	       atomic_load(&mix->head_hits), atomic_load(&mix->misses));
	if (atomic_load(&mix->errors))
		test_fail(__FILE__, __LINE__, "%d errors, last %d (%s)",
			  atomic_load(&mix->errors),
			  atomic_load(&mix->last_error),
			  larder_strerror(atomic_load(&mix->last_error)));
	ASSERT_EQ(atomic_load(&mix->wrong), 0);
	ASSERT_EQ(atomic_load(&mix->junk_hits), 0);
	ASSERT_EQ(atomic_load(&mix->quarantined), 0);
	ASSERT(atomic_load(&mix->hits_during) > 0);
	ASSERT(atomic_load(&mix->head_hits) > 0);

	/* The settled store: the last MIX_KEEP versions of every key are
	 * there and whole, older ones gone, heads on the newest. */
	larder *db = open_existing();
	for (int wr = 0; wr < MIX_WRITERS; wr++) {
		for (int i = 0; i < MIX_ITERS; i++) {
			char key[32], ver[32];
			mix_name(wr, i, key, sizeof key, ver, sizeof ver);
			larder_entry *e;
			int rc = larder_get(&e, db, "mix", key, strlen(key),
					    ver, strlen(ver));
			if (i >= MIX_ITERS - MIX_KEYS * MIX_KEEP) {
				ASSERT_RC(db, rc, 0);
				ASSERT(entry_is_right(e, key, strlen(key), ver,
						      strlen(ver)));
				larder_entry_release(e);
			} else {
				ASSERT_RC(db, rc, LARDER_ENOTFOUND);
			}
			if (i >= MIX_ITERS - MIX_KEYS) {
				ASSERT_RC(db,
					  larder_get(&e, db, "mix", key,
						     strlen(key), NULL, 0),
					  0);
				ASSERT(entry_is_right(e, key, strlen(key), ver,
						      strlen(ver)));
				larder_entry_release(e);
			}
		}
	}
	expect_walk_all_ok(db);
	larder_close(db);
	expect_clean_store();
}

/* ---------------------------------------------------------------------- */
/* A handle shared across fork                                             */

static larder *inherited;
static larder_entry *held; /* got before the fork */

static void forked_user(int id, void *arg)
{
	(void)arg;
	if (!entry_is_right(held, "held", 4, "v", 1))
		test_fail(__FILE__, __LINE__, "held entry changed in child");
	char key[32];
	snprintf(key, sizeof key, "child%d", id);
	for (int v = 0; v < 20; v++) {
		char ver[32];
		snprintf(ver, sizeof ver, "v%d", v);
		int rc = put_pattern(inherited, "fork", key, ver, v % 2, 0);
		if (rc != 0)
			test_fail(__FILE__, __LINE__, "put: %d: %s", rc,
				  larder_errmsg(inherited));
		/* Read a sibling's latest, if it is there. */
		char other[32];
		snprintf(other, sizeof other, "child%d", (id + 1) % 4);
		larder_entry *e;
		rc = larder_get(&e, inherited, "fork", other, strlen(other),
				NULL, 0);
		if (rc == 0) {
			if (!entry_is_right(e, other, strlen(other), NULL, 0))
				test_fail(__FILE__, __LINE__, "wrong bytes");
			larder_entry_release(e);
		} else if (rc != LARDER_ENOTFOUND) {
			test_fail(__FILE__, __LINE__, "get: %d", rc);
		}
	}
	if (!entry_is_right(held, "held", 4, "v", 1))
		test_fail(__FILE__, __LINE__, "held entry changed in child");
	larder_entry_release(held);
}

TEST(forked_children_share_an_inherited_handle)
{
	inherited = open_store();
	/* An entry held across the fork stays valid in every child. */
	ASSERT_RC(inherited, put_pattern(inherited, "fork", "held", "v", 0, 0),
		  0);
	ASSERT_RC(inherited,
		  larder_get(&held, inherited, "fork", "held", 4, "v", 1), 0);
	struct barrier b;
	barrier_init(&b);
	pid_t pids[4];
	for (int i = 0; i < 4; i++)
		pids[i] = spawn(&b, forked_user, i, NULL);
	barrier_release(&b);
	for (int i = 0; i < 4; i++)
		reap(pids[i], "child", i);
	ASSERT(entry_is_right(held, "held", 4, "v", 1));
	larder_entry_release(held);
	for (int i = 0; i < 4; i++) {
		char key[32];
		snprintf(key, sizeof key, "child%d", i);
		larder_entry *e;
		ASSERT_RC(inherited,
			  larder_get(&e, inherited, "fork", key, strlen(key),
				     "v19", 3),
			  0);
		ASSERT(entry_is_right(e, key, strlen(key), "v19", 3));
		larder_entry_release(e);
	}
	expect_walk_all_ok(inherited);
	larder_close(inherited);
	expect_clean_store();
}

/* ---------------------------------------------------------------------- */
/* Readers racing corruption                                               */

#define CORRUPT_READERS 4
#define CORRUPT_ROUNDS 300

struct corrupt_shared {
	atomic_int done;
	atomic_int errors;
	atomic_int last_error;
	atomic_long wrong, hits, misses;
	char path[4096];
	char ver[16]; /* a version whose payload is 300 KiB: mapped */
	uint8_t good[400 * 1024];
	size_t len;
};

static struct corrupt_shared *cs;

static int grab_path(const larder_entry_info *info, void *payload)
{
	(void)payload;
	snprintf(cs->path, sizeof cs->path, "%s", info->path);
	return 0;
}

static void corrupt_reader(int id, void *arg)
{
	(void)arg;
	(void)id;
	larder *db = open_existing();
	while (!atomic_load(&cs->done)) {
		larder_entry *e;
		int rc = larder_get(&e, db, "c", "victim", 6, cs->ver,
				    strlen(cs->ver));
		if (rc == 0) {
			atomic_fetch_add(&cs->hits, 1);
			if (!entry_is_right(e, "victim", 6, cs->ver,
					    strlen(cs->ver)))
				atomic_fetch_add(&cs->wrong, 1);
			larder_entry_release(e);
		} else if (rc == LARDER_ENOTFOUND) {
			atomic_fetch_add(&cs->misses, 1);
		} else {
			atomic_fetch_add(&cs->errors, 1);
			atomic_store(&cs->last_error, rc);
		}
	}
	larder_close(db);
}

/* Put a damaged copy of the good file in the entry's place (a new inode,
 * as a faulty NFS client or a restore from a bad backup would): the bytes
 * readers already hold never change under them. */
static void replace_with_damaged(int round)
{
	static uint8_t bad[sizeof cs->good];
	size_t len = cs->len;
	memcpy(bad, cs->good, len);
	switch (round % 4) {
	case 0: /* payload bit */
		bad[len - 1 - (size_t)round * 97 % (len / 2)] ^= 0x20;
		break;
	case 1: /* header bit; not the format field, whose flips make a
		 * "newer" entry that is rightly left alone */
		bad[(size_t)round % 104 +
		    ((size_t)round % 104 >= 8 && (size_t)round % 104 < 12
			 ? 8
			 : 0)] ^= 0x01;
		break;
	case 2: /* truncated */
		len = (size_t)round * 131 % len;
		break;
	case 3: /* valid header, another version's payload bytes */
		test_fill_pattern(bad + (len - 4096), 4096, (uint64_t)round);
		break;
	}
	char tmp[4200];
	int n = snprintf(tmp, sizeof tmp, "%s.damaged", cs->path);
	ASSERT(n > 0 && (size_t)n < sizeof tmp);
	FILE *f = fopen(tmp, "w");
	ASSERT(f != NULL);
	ASSERT_EQ(fwrite(bad, 1, len, f), len);
	ASSERT_EQ(fclose(f), 0);
	ASSERT_EQ(rename(tmp, cs->path), 0);
}

/* Sort quarantine/ into valid entries and damaged files. */
static void count_quarantined(int *good, int *damaged)
{
	const char *dir = test_path("store/quarantine");
	DIR *d = opendir(dir);
	ASSERT(d != NULL);
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		char p[4400];
		int n = snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
		ASSERT(n > 0 && (size_t)n < sizeof p);
		FILE *f = fopen(p, "rb");
		ASSERT(f != NULL);
		static uint8_t buf[sizeof cs->good + 1];
		size_t len = fread(buf, 1, sizeof buf, f);
		fclose(f);
		ldr_hdr h;
		const char *why;
		if (ldr_hdr_decode(&h, buf, len, &why) == 0 &&
		    len - h.hdr_len == h.stored_len &&
		    ldr_payload_verify(&h, buf + h.hdr_len) == 0)
			(*good)++;
		else
			(*damaged)++;
	}
	closedir(d);
}

TEST(readers_racing_damaged_entries_never_see_a_wrong_byte)
{
	cs = shared_map(sizeof *cs);
	larder *db = open_store();
	for (int i = 0; i < 1000 && !cs->ver[0]; i++) {
		char v[16];
		snprintf(v, sizeof v, "v%d", i);
		if (size_of(seed_of_kv("victim", 6, v, strlen(v))) == 300 * KiB)
			memcpy(cs->ver, v, sizeof v);
	}
	ASSERT(cs->ver[0] != '\0');
	const char *ver = cs->ver;
	size_t vlen = strlen(ver);
	ASSERT_RC(db, put_pattern(db, "c", "victim", ver, 0, 0), 0);
	ASSERT_RC(
	    db,
	    larder_inspect(db, "c", "victim", 6, ver, vlen, 0, grab_path, NULL),
	    0);
	FILE *f = fopen(cs->path, "r");
	ASSERT(f != NULL);
	cs->len = fread(cs->good, 1, sizeof cs->good, f);
	ASSERT(feof(f));
	fclose(f);
	ASSERT(cs->len > 4096 + 104);

	struct barrier b;
	barrier_init(&b);
	pid_t rd[CORRUPT_READERS];
	for (int i = 0; i < CORRUPT_READERS; i++)
		rd[i] = spawn(&b, corrupt_reader, i, NULL);
	barrier_release(&b);
	for (int r = 0; r < CORRUPT_ROUNDS; r++) {
		replace_with_damaged(r);
		/* Refill: whether a reader quarantined the damaged file
		 * already or not, the put publishes a good one — or finds an
		 * identical good one standing (LARDER_EXISTS): a reader that
		 * moved a good file by mistake puts it back, and it can land
		 * between our quarantine of the damaged file and our link. */
		int rc = put_pattern(db, "c", "victim", ver, 0, 0);
		if (rc != 0 && rc != LARDER_EXISTS)
			test_fail(__FILE__, __LINE__, "round %d: put %d: %s", r,
				  rc, larder_errmsg(db));
	}
	atomic_store(&cs->done, 1);
	for (int i = 0; i < CORRUPT_READERS; i++)
		reap(rd[i], "reader", i);
	printf("     damaged: %ld hits, %ld misses\n", atomic_load(&cs->hits),
	       atomic_load(&cs->misses));
	if (atomic_load(&cs->errors))
		test_fail(__FILE__, __LINE__, "%d errors, last %d",
			  atomic_load(&cs->errors),
			  atomic_load(&cs->last_error));
	ASSERT_EQ(atomic_load(&cs->wrong), 0);
	ASSERT(atomic_load(&cs->hits) > 0);
	/* Every damaged copy went to quarantine, one way or the other, and
	 * nothing else did: a valid entry in quarantine/ means a reader moved
	 * a good file that a refill had just published in place of the bad
	 * one it had checked. */
	int good = 0, damaged = 0;
	count_quarantined(&good, &damaged);
	if (good || damaged != CORRUPT_ROUNDS)
		test_fail(__FILE__, __LINE__,
			  "quarantine/ holds %d valid entries and %d damaged "
			  "files, want 0 and %d",
			  good, damaged, CORRUPT_ROUNDS);
	larder_entry *e;
	ASSERT_RC(db, larder_get(&e, db, "c", "victim", 6, ver, vlen), 0);
	ASSERT(entry_is_right(e, "victim", 6, ver, vlen));
	larder_entry_release(e);
	ASSERT_EQ(count_files(store_dir(), ".tmp."), 0);
	larder_close(db);
}

/* ---------------------------------------------------------------------- */
/* Creating one new store together                                        */

/* A pool of workers, or a herd of pods given a fresh cache directory,
 * all open it with LARDER_OPEN_CREATE at once: every one must get the
 * store (none judges another's half-made store a foreign directory), and
 * the store must be what a single creation makes. */
#define CREATORS 16
#define CREATE_ROUNDS 20

/* The modes the creators ask for: they differ, and the one whose marker
 * is linked first decides for all (docs/format.md, "The marker"). */
static unsigned creator_mode(int id)
{
	return id % 2 ? 0640 : 0600;
}

static unsigned *creator_modes; /* shared: each creator's larder_mode() */

static void creator(int id, void *arg)
{
	const char *dir = arg;
	larder_opts o = LARDER_OPTS_INIT;
	o.flags = LARDER_OPEN_CREATE;
	o.fsync = LARDER_FSYNC_NONE;
	o.create_mode = creator_mode(id);
	larder *db;
	int rc = larder_open(&db, dir, &o);
	if (rc != 0) {
		fprintf(stderr, "creator %d: open: %s\n", id,
			larder_errmsg(NULL));
		_exit(1);
	}
	char key[32];
	snprintf(key, sizeof key, "creator-%d", id);
	rc = put_pattern(db, "c", key, "v", 0, 0);
	larder_entry *e = NULL;
	if (rc == 0)
		rc = larder_get(&e, db, "c", key, strlen(key), "v", 1);
	if (rc != 0 || !entry_is_right(e, key, strlen(key), "v", 1)) {
		fprintf(stderr, "creator %d: put or get %d: %s\n", id, rc,
			larder_errmsg(db));
		_exit(1);
	}
	larder_entry_release(e);
	/* Checked by the parent: every handle runs with the winner's mode,
	 * whatever it asked. */
	creator_modes[id] = larder_mode(db);
	larder_close(db);
	_exit(0);
}

/* The names and kinds of dir's entries, sorted, as "name:type:mode\n"
 * lines; temp files show up as themselves. */
static void list_top(const char *dir, char *out, size_t size)
{
	struct dirent **names;
	int n = scandir(dir, &names, NULL, alphasort);
	ASSERT(n >= 0);
	size_t len = 0;
	out[0] = '\0';
	for (int i = 0; i < n; i++) {
		const char *name = names[i]->d_name;
		struct stat st;
		char path[4200];
		snprintf(path, sizeof path, "%s/%s", dir, name);
		if (strcmp(name, ".") && strcmp(name, "..")) {
			ASSERT_EQ(lstat(path, &st), 0);
			int w = snprintf(out + len, size - len, "%s:%o\n", name,
					 (unsigned)st.st_mode);
			ASSERT(w > 0 && (size_t)w < size - len);
			len += (size_t)w;
		}
		free(names[i]);
	}
	free(names);
}

/* The store one creator makes alone with the given mode, with the same
 * entries: what the race must leave. */
static void make_reference(const char *dir, unsigned mode)
{
	larder_opts o = LARDER_OPTS_INIT;
	o.flags = LARDER_OPEN_CREATE;
	o.fsync = LARDER_FSYNC_NONE;
	o.create_mode = mode;
	larder *db = open_store_at(dir, &o);
	for (int id = 0; id < CREATORS; id++) {
		char key[32];
		snprintf(key, sizeof key, "creator-%d", id);
		ASSERT_RC(db, put_pattern(db, "c", key, "v", 0, 0), 0);
	}
	larder_close(db);
}

TEST(processes_creating_one_new_store_together_all_get_it)
{
	creator_modes = shared_map(CREATORS * sizeof *creator_modes);
	for (int round = 0; round < CREATE_ROUNDS; round++) {
		memset(creator_modes, 0, CREATORS * sizeof *creator_modes);
		/* Odd rounds: the directory is there and empty (a fresh
		 * cache volume); even ones: it is made by the creators. */
		char dir[2048];
		snprintf(dir, sizeof dir, "%s", test_path("new-%d", round));
		if (round % 2)
			ASSERT_EQ(mkdir(dir, 0700), 0);
		struct barrier b;
		barrier_init(&b);
		pid_t pids[CREATORS];
		for (int i = 0; i < CREATORS; i++)
			pids[i] = spawn(&b, creator, i, dir);
		barrier_release(&b);
		for (int i = 0; i < CREATORS; i++)
			reap(pids[i], "creator", i);

		/* One creation's store: the marker of one creator, the top
		 * directory and subdirectories it makes, no temp file. */
		larder *db = open_store_at(dir, NULL);
		unsigned mode = larder_mode(db);
		for (int i = 0; i < CREATORS; i++)
			if (creator_modes[i] != mode)
				test_fail(__FILE__, __LINE__,
					  "round %d: creator %d ran with mode "
					  "%04o, the store has %04o",
					  round, i, creator_modes[i], mode);
		for (int id = 0; id < CREATORS; id++) {
			char key[32];
			snprintf(key, sizeof key, "creator-%d", id);
			larder_entry *e;
			ASSERT_RC(
			    db,
			    larder_get(&e, db, "c", key, strlen(key), "v", 1),
			    0);
			ASSERT(entry_is_right(e, key, strlen(key), "v", 1));
			larder_entry_release(e);
		}
		larder_close(db);
		const char *ref = test_path("ref-%d", round);
		make_reference(ref, mode);
		char got[4096], want[4096];
		list_top(dir, got, sizeof got);
		list_top(ref, want, sizeof want);
		if (strcmp(got, want) != 0)
			test_fail(__FILE__, __LINE__,
				  "round %d: the store holds\n%swhere one "
				  "creation makes\n%s",
				  round, got, want);
		struct stat a, c;
		ASSERT_EQ(stat(dir, &a), 0);
		ASSERT_EQ(stat(ref, &c), 0);
		ASSERT_EQ(a.st_mode, c.st_mode);
		size_t na, nc;
		char marker[4200];
		snprintf(marker, sizeof marker, "%s/larder-store", dir);
		uint8_t *ma = read_file(marker, &na);
		snprintf(marker, sizeof marker, "%s/larder-store", ref);
		uint8_t *mc = read_file(marker, &nc);
		ASSERT_EQ(na, nc);
		ASSERT_MEM_EQ(ma, mc, na);
		free(ma);
		free(mc);
		ASSERT_EQ(count_files(dir, ".tmp."), 0);
		/* (stats/ is left out: its shards depend on the pids) */
		char ns_got[4200], ns_want[4200];
		snprintf(ns_got, sizeof ns_got, "%s/ns", dir);
		snprintf(ns_want, sizeof ns_want, "%s/ns", ref);
		ASSERT_EQ(count_files(ns_got, NULL), 2 * CREATORS);
		ASSERT_EQ(count_files(ns_want, NULL), 2 * CREATORS);
	}
}
