/*
 * test_memo.c — the memo of verified entries (docs/format.md, "The memo
 * of verified entries"): a repeat hit is served from what an earlier hit
 * verified; a file removed, replaced or changed stops being served once
 * the memo's check falls due; an expired entry never is; the memo keeps
 * to its bounds; a forked child verifies again; threads share it.
 *
 * Time is driven through ldr_test_memo_age(), never slept.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "store_util.h"
#include "testing.h"

#define KiB 1024u
#define MiB (1024u * 1024u)

static int put_ttl(larder *db, const char *key, size_t size, int64_t ttl)
{
	larder_put_opts po = LARDER_PUT_OPTS_INIT;
	po.ttl_seconds = ttl;
	return put_pattern_po(db, key, size, &po);
}

#define PUT(db, key, size) ASSERT_RC(db, put_ttl(db, key, size, 0), 0)

static const char *entry_path(const char *key)
{
	return file_path(key, 'e');
}

static uint64_t memo_hits(larder *db)
{
	return larder_counter(db, LARDER_CTR_MEMO_HITS);
}

/* A get of (key, "v") that must hit with the key's pattern of `size`
 * bytes; returns whether the memo served it. */
static int hit_at(int line, larder *db, const char *key, size_t size)
{
	uint64_t m0 = memo_hits(db);
	larder_entry *e = NULL;
	int rc = larder_get(&e, db, "default", key, strlen(key), "v", 1);
	if (rc != 0)
		test_fail(__FILE__, line, "get(%s): %d (%s): %s", key, rc,
			  larder_strerror(rc), larder_errmsg(db));
	if (larder_entry_size(e) != size ||
	    !test_check_pattern(larder_entry_data(e), size, seed_of(key)))
		test_fail(__FILE__, line, "get(%s): wrong bytes", key);
	larder_entry_release(e);
	return memo_hits(db) > m0;
}
#define HIT(db, key, size) hit_at(__LINE__, db, key, size)

static void expect_miss_at(int line, larder *db, const char *key)
{
	larder_entry *e = NULL;
	int rc = larder_get(&e, db, "default", key, strlen(key), "v", 1);
	if (rc != LARDER_ENOTFOUND)
		test_fail(__FILE__, line, "get(%s): %d (%s), want a miss", key,
			  rc, larder_strerror(rc));
}
#define MISS(db, key) expect_miss_at(__LINE__, db, key)

/* A check interval no stall of the machine reaches between two calls,
 * so that "still served within it" does not depend on its speed. */
#define CHECK_MS 60000u

/* Bring (key, "v") into the memo as a long-running process does: its
 * first read (not memoised), then its second (memoised, the file's
 * identity taken); from then on the memo serves it. */
static void remember_at(int line, larder *db, const char *key, size_t size)
{
	if (hit_at(line, db, key, size))
		test_fail(__FILE__, line, "first read of %s from the memo",
			  key);
	if (hit_at(line, db, key, size))
		test_fail(__FILE__, line, "second read of %s from the memo",
			  key);
	if (!hit_at(line, db, key, size))
		test_fail(__FILE__, line, "%s not memoised", key);
}
#define REMEMBER(db, key, size) remember_at(__LINE__, db, key, size)

/* Read the file at path, change byte `off` and write it back in place
 * (the entry is read-only: made writable to us first, as its owner may). */
static void flip_in_place(const char *path, off_t off)
{
	ASSERT_EQ(chmod(path, 0600), 0);
	int fd = open(path, O_RDWR);
	ASSERT(fd >= 0);
	uint8_t b;
	ASSERT_EQ(pread(fd, &b, 1, off), 1);
	b ^= 0x5a;
	ASSERT_EQ(pwrite(fd, &b, 1, off), 1);
	ASSERT_EQ(close(fd), 0);
}

/* ---------------------------------------------------------------------- */

TEST(repeat_hits_are_served_from_the_memo_small_and_mapped)
{
	larder *db = open_store();
	PUT(db, "small", 4 * KiB);
	PUT(db, "large", 1 * MiB);
	ASSERT(!HIT(db, "small", 4 * KiB)); /* read and verified */
	ASSERT(!HIT(db, "small", 4 * KiB)); /* memoised at the second */
	for (int i = 0; i < 5; i++)
		ASSERT(HIT(db, "small", 4 * KiB));
	ASSERT(!HIT(db, "large", 1 * MiB));
	ASSERT(!HIT(db, "large", 1 * MiB));
	larder_entry *e = NULL;
	ASSERT_RC(db, larder_get(&e, db, "default", "large", 5, "v", 1), 0);
	ASSERT_EQ(memo_hits(db), 6);
	/* The same mapping, shared: no copy of a large payload. */
	ASSERT(larder_entry_is_mapped(e));
	larder_entry *e2 = NULL;
	ASSERT_RC(db, larder_get(&e2, db, "default", "large", 5, "v", 1), 0);
	ASSERT(larder_entry_data(e) == larder_entry_data(e2));
	larder_entry_release(e2);
	/* A held entry outlives the memo's record and the handle. */
	larder_close(db);
	ASSERT(test_check_pattern(larder_entry_data(e), 1 * MiB,
				  seed_of("large")));
	larder_entry_release(e);
}

struct got {
	uint8_t *buf;
	size_t n;
};

static int collect(const void *buf, size_t len, void *payload)
{
	struct got *g = payload;
	memcpy(g->buf + g->n, buf, len);
	g->n += len;
	return 0;
}

/* The memo serves a hit only when no touch of the entry's recency is
 * due: with the store's touch interval 0 (a touch on every hit), every
 * hit reads the file, so that the cleaning still sees a hot entry used;
 * with an interval, the same hits come from the memo. */
TEST(a_hit_due_to_touch_its_recency_reads_the_file)
{
	larder *db = open_store();
	larder_limits l = LARDER_LIMITS_INIT;
	l.touch_interval = 0;
	ASSERT_RC(db, larder_limits_set(db, NULL, &l), 0);
	larder_close(db);
	db = open_store(); /* reads the store's limits at its open */
	PUT(db, "hot", 4 * KiB);
	uint64_t t0 = larder_counter(db, LARDER_CTR_TOUCHES);
	for (int i = 0; i < 5; i++)
		ASSERT(!HIT(db, "hot", 4 * KiB));
	ASSERT_EQ(memo_hits(db), 0);
	ASSERT_EQ(larder_counter(db, LARDER_CTR_TOUCHES) - t0, 5);
	larder_close(db);

	db = open_store();
	l.touch_interval = 3600;
	ASSERT_RC(db, larder_limits_set(db, NULL, &l), 0);
	larder_close(db);
	db = open_store();
	REMEMBER(db, "hot", 4 * KiB);
	ASSERT(HIT(db, "hot", 4 * KiB));
	larder_close(db);
}

TEST(version_less_and_streamed_repeat_hits_use_the_memo)
{
	larder *db = open_store();
	PUT(db, "k", 200 * KiB);
	ASSERT(!HIT(db, "k", 200 * KiB));
	ASSERT(!HIT(db, "k", 200 * KiB));
	larder_entry *e = NULL;
	ASSERT_RC(db, larder_get(&e, db, "default", "k", 1, NULL, 0), 0);
	ASSERT_EQ(memo_hits(db), 1);
	size_t vlen;
	ASSERT_MEM_EQ(larder_entry_version(&vlen, e), "v", 1);
	larder_entry_release(e);

	struct got g = {xmalloc(200 * KiB), 0};
	ASSERT_RC(db,
		  larder_get_stream(db, "default", "k", 1, "v", 1, collect, &g),
		  0);
	ASSERT_EQ(memo_hits(db), 2);
	ASSERT_EQ(g.n, 200 * KiB);
	ASSERT(test_check_pattern(g.buf, g.n, seed_of("k")));
	free(g.buf);
	larder_close(db);
}

TEST(verify_always_reads_and_hashes_every_time)
{
	larder_opts o = LARDER_OPTS_INIT;
	o.flags = LARDER_OPEN_VERIFY_ALWAYS;
	larder *db = open_store_opts(&o);
	PUT(db, "k", 4 * KiB);
	for (int i = 0; i < 5; i++)
		ASSERT(!HIT(db, "k", 4 * KiB));
	/* And it does see a change at once. */
	flip_in_place(entry_path("k"), 4000);
	MISS(db, "k");
	larder_close(db);
}

static larder *open_slow_check(void)
{
	larder_opts o = LARDER_OPTS_INIT;
	o.memo_check_ms = CHECK_MS;
	o.memo_rehash_ms = 10 * CHECK_MS;
	larder *db = open_store_opts(&o);
	/* As if the files were old: judged by their identity, not re-read
	 * because they changed just before they were read. */
	ldr_test_memo_age(db, 10 * 1000);
	return db;
}

TEST(removed_file_stops_being_served_within_the_check_interval)
{
	larder *db = open_slow_check();
	PUT(db, "k", 4 * KiB);
	REMEMBER(db, "k", 4 * KiB);
	ASSERT_EQ(unlink(entry_path("k")), 0);
	/* Within the interval it may still be served (docs/format.md)... */
	ASSERT(HIT(db, "k", 4 * KiB));
	/* ...and not once the check falls due. */
	ldr_test_memo_age(db, CHECK_MS);
	MISS(db, "k");
	MISS(db, "k");
	larder_close(db);
}

TEST(removal_by_the_handle_stops_at_once)
{
	larder *db = open_store();
	PUT(db, "k", 4 * KiB);
	REMEMBER(db, "k", 4 * KiB);
	ASSERT_RC(db, larder_remove(db, "default", "k", 1, "v", 1), 0);
	MISS(db, "k");
	larder_close(db);
}

TEST(replaced_file_stops_being_served_within_the_check_interval)
{
	larder *db = open_slow_check();
	PUT(db, "k", 4 * KiB);
	REMEMBER(db, "k", 4 * KiB);
	/* Another file renamed over it, damaged (same size, same times
	 * as far as a coarse clock goes): a new inode. */
	const char *path = entry_path("k");
	ASSERT_EQ(test_sh("cp -p '%s' '%s.x' && chmod u+w '%s.x' && "
			  "printf Z | dd of='%s.x' bs=1 seek=4000 "
			  "conv=notrunc 2>/dev/null && mv '%s.x' '%s'",
			  path, path, path, path, path, path),
		  0);
	ASSERT(HIT(db, "k", 4 * KiB)); /* within the interval */
	ldr_test_memo_age(db, CHECK_MS);
	MISS(db, "k"); /* read, found damaged, quarantined */
	ASSERT(larder_counter(db, LARDER_CTR_CHECKSUM_FAIL) >= 1);
	/* A good copy renamed over it is read again, not taken from the
	 * memo. */
	PUT(db, "k", 4 * KiB);
	ASSERT(!HIT(db, "k", 4 * KiB)); /* read before: memoised */
	ASSERT(HIT(db, "k", 4 * KiB));
	ASSERT_EQ(test_sh("cp -p '%s' '%s.x' && mv '%s.x' '%s'", path, path,
			  path, path),
		  0);
	ldr_test_memo_age(db, CHECK_MS);
	ASSERT(!HIT(db, "k", 4 * KiB));
	ASSERT(HIT(db, "k", 4 * KiB));
	larder_close(db);
}

TEST(changed_in_place_stops_being_served_within_the_check_interval)
{
	larder *db = open_store();
	PUT(db, "small", 4 * KiB);
	PUT(db, "large", 1 * MiB);
	ASSERT(!HIT(db, "small", 4 * KiB));
	ASSERT(!HIT(db, "large", 1 * MiB));
	ASSERT(!HIT(db, "small", 4 * KiB));
	ASSERT(!HIT(db, "large", 1 * MiB));
	ASSERT(HIT(db, "small", 4 * KiB));
	ASSERT(HIT(db, "large", 1 * MiB));
	/* Written into right after it was read: in the same timestamp tick
	 * its identity may look unchanged; the memo reads such a fresh file
	 * again at its check rather than trust its times. */
	flip_in_place(entry_path("small"), 4000);
	flip_in_place(entry_path("large"), 1000 * KiB);
	ldr_test_memo_age(db, 1000);
	MISS(db, "small");
	MISS(db, "large");
	larder_close(db);
}

TEST(a_file_changed_just_before_its_read_is_read_again_at_the_check)
{
	/* Its identity would not show a write in the same timestamp tick:
	 * the check reads and verifies it again, changed or not. */
	larder *db = open_store();
	PUT(db, "k", 4 * KiB);
	ASSERT(!HIT(db, "k", 4 * KiB)); /* first read: not memoised */
	/* The second is, identified, but the file changed (was published)
	 * just before: a write in the same timestamp tick would not show. */
	ASSERT(!HIT(db, "k", 4 * KiB));
	ASSERT(HIT(db, "k", 4 * KiB));
	ldr_test_memo_age(db, 1000);
	ASSERT(!HIT(db, "k", 4 * KiB)); /* not judged by its times */
	ASSERT(HIT(db, "k", 4 * KiB));
	ldr_test_memo_age(db, 1000);
	/* Read again; now 2 s after it changed, judged by its identity */
	ASSERT(!HIT(db, "k", 4 * KiB));
	ASSERT(HIT(db, "k", 4 * KiB));
	ldr_test_memo_age(db, 1000);
	ASSERT(HIT(db, "k", 4 * KiB));
	larder_close(db);
}

TEST(changed_in_place_long_after_it_was_written_is_seen_by_its_identity)
{
	larder *db = open_slow_check();
	PUT(db, "k", 4 * KiB);
	REMEMBER(db, "k", 4 * KiB);
	/* Only its times change (a write that kept the bytes) */
	ASSERT_EQ(chmod(entry_path("k"), 0600), 0);
	ASSERT(HIT(db, "k", 4 * KiB));
	ldr_test_memo_age(db, CHECK_MS);
	ASSERT(!HIT(db, "k", 4 * KiB)); /* read and verified again */
	ASSERT(HIT(db, "k", 4 * KiB));
	larder_close(db);
}

TEST(every_entry_is_verified_from_disk_again_at_the_rehash_interval)
{
	larder *db = open_slow_check();
	PUT(db, "k", 4 * KiB);
	REMEMBER(db, "k", 4 * KiB);
	for (int i = 0; i < 9; i++) {
		ldr_test_memo_age(db, CHECK_MS); /* identity checked: same */
		ASSERT(HIT(db, "k", 4 * KiB));
	}
	ldr_test_memo_age(db, CHECK_MS);
	ASSERT(!HIT(db, "k", 4 * KiB));
	ASSERT(HIT(db, "k", 4 * KiB));
	larder_close(db);
}

TEST(an_expired_entry_is_never_served_from_the_memo)
{
	larder *db = open_slow_check();
	ASSERT_RC(db, put_ttl(db, "k", 4 * KiB, 200), 0);
	REMEMBER(db, "k", 4 * KiB); /* the memo's clock: 10 s on */
	/* Past its expiry on the memo's clock, its file unchanged. The disk
	 * path, on the real clock, still finds it fresh: what matters is
	 * that the memo does not serve it. */
	ldr_test_memo_age(db, 190 * 1000 + 1);
	for (int i = 0; i < 3; i++) {
		larder_entry *e = NULL;
		uint64_t m0 = memo_hits(db);
		int rc = larder_get(&e, db, "default", "k", 1, "v", 1);
		ASSERT(rc == 0 || rc == LARDER_ENOTFOUND);
		larder_entry_release(e);
		ASSERT_EQ(memo_hits(db), m0);
	}
	larder_close(db);
}

TEST(the_memo_never_grows_past_its_bounds)
{
	larder_opts o = LARDER_OPTS_INIT;
	o.memo_entries = 8;
	o.memo_bytes = 3 * MiB;
	larder *db = open_store_opts(&o);
	char key[32];
	size_t n;
	uint64_t bytes;
	for (int i = 0; i < 40; i++) {
		snprintf(key, sizeof key, "s%d", i);
		PUT(db, key, 4 * KiB);
		ASSERT(!HIT(db, key, 4 * KiB));
		ASSERT(!HIT(db, key, 4 * KiB));
		ASSERT(HIT(db, key, 4 * KiB));
		ldr_test_memo_usage(db, &n, &bytes);
		ASSERT(n <= 8);
		ASSERT(bytes <= 3 * MiB);
	}
	ASSERT_EQ(n, 8);
	/* Least recently used first: s32..s39 are held, s0 is not. */
	ASSERT(HIT(db, "s39", 4 * KiB));
	ASSERT(!HIT(db, "s0", 4 * KiB));
	for (int i = 0; i < 6; i++) {
		snprintf(key, sizeof key, "L%d", i);
		PUT(db, key, 1 * MiB);
		ASSERT(!HIT(db, key, 1 * MiB));
		ASSERT(!HIT(db, key, 1 * MiB));
		ASSERT(HIT(db, key, 1 * MiB));
		ldr_test_memo_usage(db, &n, &bytes);
		ASSERT(n <= 8);
		ASSERT(bytes <= 3 * MiB);
	}
	/* Larger than the whole budget: never memoised. */
	PUT(db, "huge", 4 * MiB);
	ASSERT(!HIT(db, "huge", 4 * MiB));
	ASSERT(!HIT(db, "huge", 4 * MiB));
	ASSERT(!HIT(db, "huge", 4 * MiB));
	ldr_test_memo_usage(db, &n, &bytes);
	ASSERT(bytes <= 3 * MiB);
	larder_close(db);
}

TEST(records_past_the_rehash_interval_are_let_go_at_the_next_memoised_read)
{
	larder *db = open_store();
	PUT(db, "a", 1 * MiB);
	PUT(db, "b", 4 * KiB);
	ASSERT(!HIT(db, "a", 1 * MiB));
	ASSERT(!HIT(db, "a", 1 * MiB));
	size_t n;
	uint64_t bytes;
	ldr_test_memo_usage(db, &n, &bytes);
	ASSERT_EQ(n, 1);
	/* "a" is never asked for again; its mapping goes the next time the
	 * memo takes an entry, once it could not be served unread anyway. */
	ldr_test_memo_age(db, 60 * 1000);
	ASSERT(!HIT(db, "b", 4 * KiB));
	ASSERT(!HIT(db, "b", 4 * KiB)); /* the memo takes it */
	ldr_test_memo_usage(db, &n, &bytes);
	ASSERT_EQ(n, 1);
	ASSERT(bytes < 1 * MiB);
	larder_close(db);
}

TEST(a_forked_child_verifies_again)
{
	larder *db = open_store();
	PUT(db, "k", 4 * KiB);
	REMEMBER(db, "k", 4 * KiB);
	pid_t pid = fork();
	ASSERT(pid >= 0);
	if (pid == 0) {
		size_t n;
		uint64_t bytes;
		ldr_test_memo_usage(db, &n, &bytes);
		int first = HIT(db, "k", 4 * KiB);
		int second = HIT(db, "k", 4 * KiB);
		_exit(n == 0 && !first && second ? 0 : 1);
	}
	int st;
	ASSERT_EQ(waitpid(pid, &st, 0), pid);
	ASSERT(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	/* The parent's memo is its own still. */
	ASSERT(HIT(db, "k", 4 * KiB));
	larder_close(db);
}

#define KEYS 12

static void hammer_run(struct hammer *h)
{
	char key[16];
	for (int i = 0; i < 3000; i++) {
		int k = (i * 7 + h->id * 5) % KEYS;
		snprintf(key, sizeof key, "t%d", k);
		size_t size = k % 3 == 0 ? 100 * KiB : 3 * KiB;
		larder_entry *e = NULL;
		if (larder_get(&e, h->db, "default", key, strlen(key), "v",
			       1) != 0 ||
		    larder_entry_size(e) != size ||
		    !test_check_pattern(larder_entry_data(e), size,
					seed_of(key)))
			h->bad++;
		larder_entry_release(e);
		if (h->id == 0 && i % 500 == 0)
			ldr_test_memo_age(h->db, 1000);
	}
}

TEST(threads_hammering_one_handle_get_the_right_bytes)
{
	larder_opts o = LARDER_OPTS_INIT;
	o.memo_entries = KEYS / 2; /* records come and go all the time */
	larder *db = open_store_opts(&o);
	char key[16];
	for (int k = 0; k < KEYS; k++) {
		snprintf(key, sizeof key, "t%d", k);
		PUT(db, key, k % 3 == 0 ? 100 * KiB : 3 * KiB);
	}
	struct hammer h[HAMMER_THREADS];
	hammer_start(h, db, hammer_run);
	hammer_join(h);
	ASSERT(memo_hits(db) > 0);
	larder_close(db);
}

TEST(version_2_opts_are_accepted_with_the_default_memo)
{
	struct v2 {
		unsigned version, flags;
		int fsync;
		unsigned create_mode;
		int create_fsync;
		size_t mmap_threshold;
		larder_log_fn log;
		void *log_payload;
		int log_level;
		uint64_t max_in_memory;
	} *o = calloc(1, sizeof *o);
	ASSERT(o != NULL);
	o->version = 2;
	o->flags = LARDER_OPEN_CREATE;
	larder *db = NULL;
	ASSERT_EQ(larder_open(&db, test_path("store"), (larder_opts *)o), 0);
	PUT(db, "k", 4 * KiB);
	ASSERT(!HIT(db, "k", 4 * KiB));
	ASSERT(!HIT(db, "k", 4 * KiB));
	ASSERT(HIT(db, "k", 4 * KiB));
	larder_close(db);
	free(o);
	ASSERT_EQ(
	    strcmp(larder_counter_name(LARDER_CTR_MEMO_HITS), "memo_hits"), 0);
}
