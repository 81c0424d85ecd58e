/*
 * test_store.c — the store through the public API, on a real store in the
 * test's scratch directory: round trips, heads, removal, TTL, namespaces,
 * open errors, and every class of on-disk corruption (detected, moved to
 * quarantine/, reported as a miss, and healed by the next put).
 *
 * Tests edit entry files behind the library's back the way a bad disk, a
 * crashed NFS client or a careless admin would; they find an entry's file
 * with larder_inspect() and the header layout in fmt.h.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "testing.h"
#include "harness.h"
#include "larder.h"
#include "store_util.h"

#define KiB 1024u
#define MiB (1024u * 1024u)

/* ---------------------------------------------------------------------- */
/* Helpers                                                                 */

/* The pattern seed of a (key, version). */
static uint64_t seed_kv(const char *key, const char *ver)
{
	return seed_of_kv(key, strlen(key), ver, strlen(ver));
}

static int put_flags(larder *db, const char *ns, const char *key,
		     const char *ver, size_t size, unsigned flags)
{
	uint8_t *buf = xmalloc(size);
	test_fill_pattern(buf, size, seed_kv(key, ver));
	larder_put_opts po = LARDER_PUT_OPTS_INIT;
	po.flags = flags;
	int rc = larder_put(db, ns, key, strlen(key), ver, strlen(ver), buf,
			    size, &po);
	free(buf);
	return rc;
}

#define PUT(db, ns, key, ver, size)                                            \
	ASSERT_RC(db, put_flags(db, ns, key, ver, size, 0), 0)

/* Get (ns, key, ver) and check every byte against its pattern. */
static void expect_hit_at(int line, larder *db, const char *ns, const char *key,
			  const char *ver, size_t size)
{
	larder_entry *e = NULL;
	int rc = larder_get(&e, db, ns, key, strlen(key), ver, strlen(ver));
	if (rc != 0)
		test_fail(__FILE__, line, "get(%s, %s, %s): %d (%s): %s", ns,
			  key, ver, rc, larder_strerror(rc), larder_errmsg(db));
	if (larder_entry_size(e) != size)
		test_fail(__FILE__, line, "get(%s, %s): size %zu, want %zu",
			  key, ver, larder_entry_size(e), size);
	ASSERT(larder_entry_data(e) != NULL);
	if (!test_check_pattern(larder_entry_data(e), size, seed_kv(key, ver)))
		test_fail(__FILE__, line, "get(%s, %s): wrong bytes", key, ver);
	size_t vlen = 0;
	const void *v = larder_entry_version(&vlen, e);
	ASSERT_EQ(vlen, strlen(ver));
	ASSERT_MEM_EQ(v, ver, vlen);
	larder_entry_release(e);
}
#define EXPECT_HIT(db, ns, key, ver, size)                                     \
	expect_hit_at(__LINE__, db, ns, key, ver, size)

/* A version-less get returns want_ver's entry, all of it. */
static void expect_head_at(int line, larder *db, const char *ns,
			   const char *key, const char *want_ver, size_t size)
{
	larder_entry *e = NULL;
	int rc = larder_get(&e, db, ns, key, strlen(key), NULL, 0);
	if (rc != 0)
		test_fail(__FILE__, line, "get(%s, %s, head): %d (%s): %s", ns,
			  key, rc, larder_strerror(rc), larder_errmsg(db));
	size_t vlen = 0;
	const void *v = larder_entry_version(&vlen, e);
	if (vlen != strlen(want_ver) || memcmp(v, want_ver, vlen) != 0)
		test_fail(__FILE__, line, "head of %s is '%.*s', want '%s'",
			  key, (int)vlen, (const char *)v, want_ver);
	if (larder_entry_size(e) != size ||
	    !test_check_pattern(larder_entry_data(e), size,
				seed_kv(key, want_ver)))
		test_fail(__FILE__, line, "head of %s: not %s's bytes", key,
			  want_ver);
	larder_entry_release(e);
}
#define EXPECT_HEAD(db, ns, key, want_ver, size)                               \
	expect_head_at(__LINE__, db, ns, key, want_ver, size)

static void expect_miss_at(int line, larder *db, const char *ns,
			   const char *key, const char *ver)
{
	larder_entry *e = NULL;
	int rc = larder_get(&e, db, ns, key, strlen(key), ver,
			    ver ? strlen(ver) : 0);
	if (rc != LARDER_ENOTFOUND)
		test_fail(__FILE__, line,
			  "get(%s, %s, %s): %d (%s), want a miss: %s", ns, key,
			  ver ? ver : "(head)", rc, larder_strerror(rc),
			  larder_errmsg(db));
}
#define EXPECT_MISS(db, ns, key, ver) expect_miss_at(__LINE__, db, ns, key, ver)

struct info_copy {
	int calls;
	char path[4096];
	int state;
	uint64_t size, stored_size, file_size;
	int compressed;
	int64_t created, expires;
};

static int copy_info(const larder_entry_info *info, void *payload)
{
	struct info_copy *c = payload;
	c->calls++;
	snprintf(c->path, sizeof c->path, "%s", info->path);
	c->state = info->state;
	c->size = info->size;
	c->stored_size = info->stored_size;
	c->file_size = info->file_size;
	c->compressed = info->compressed;
	c->created = info->created;
	c->expires = info->expires;
	return 0;
}

static struct info_copy inspect(larder *db, const char *ns, const char *key,
				const char *ver, unsigned flags)
{
	struct info_copy c;
	memset(&c, 0, sizeof c);
	ASSERT_RC(db,
		  larder_inspect(db, ns, key, strlen(key), ver,
				 ver ? strlen(ver) : 0, flags, copy_info, &c),
		  0);
	ASSERT_EQ(c.calls, 1);
	return c;
}

/* The path of the entry file of (ns, key, ver). */
static const char *entry_path(larder *db, const char *ns, const char *key,
			      const char *ver)
{
	static char buf[4][4096];
	static int slot;
	struct info_copy c = inspect(db, ns, key, ver, 0);
	char *p = buf[slot++ % 4];
	snprintf(p, sizeof buf[0], "%s", c.path);
	ASSERT(access(p, F_OK) == 0);
	return p;
}

/* Replace the file at path with buf, atomically (a new inode). */
static void write_file(const char *path, const void *buf, size_t len)
{
	const char *tmp = test_path("replacement");
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	ASSERT(fd >= 0);
	ASSERT_EQ(write(fd, buf, len), (ssize_t)len);
	close(fd);
	if (rename(tmp, path) != 0)
		test_fail(__FILE__, __LINE__, "rename to %s: %s", path,
			  strerror(errno));
}

/* Change one byte in place, as a bad disk would. */
static void xor_byte(const char *path, off_t off, uint8_t mask)
{
	int fd = open(path, O_RDWR);
	ASSERT(fd >= 0);
	uint8_t b;
	ASSERT_EQ(pread(fd, &b, 1, off), 1);
	b ^= mask;
	ASSERT_EQ(pwrite(fd, &b, 1, off), 1);
	close(fd);
}

/* out = a/b, refusing to truncate. */
static void join(char *out, size_t outlen, const char *a, const char *b)
{
	int n = snprintf(out, outlen, "%s/%s", a, b);
	ASSERT(n > 0 && (size_t)n < outlen);
}

static off_t file_size(const char *path)
{
	struct stat st;
	ASSERT_EQ(stat(path, &st), 0);
	return st.st_size;
}

static int quarantined_files(void)
{
	return count_files(test_path("store/quarantine"), NULL);
}

static int temp_files(void)
{
	return count_files(store_dir(), ".tmp.");
}

static void expect_no_temp_files(void)
{
	int n = temp_files();
	if (n != 0)
		test_fail(__FILE__, __LINE__, "%d temp files left in %s", n,
			  store_dir());
}

/*
 * The contract for a corrupt entry: get misses (never data), the file is
 * moved to quarantine/ (gone from its place, one more file there), the
 * QUARANTINED counter moves, and a put of the same key and version then
 * publishes afresh and reads back.
 */
static void expect_quarantined_at(int line, larder *db, const char *ns,
				  const char *key, const char *ver,
				  const char *path, size_t size)
{
	/* The file changed after a read that the handle memoised: the memo
	 * looks at its identity once a second (docs/format.md), so a second
	 * passes first. */
	ldr_test_memo_age(db, 1000);
	int q0 = quarantined_files();
	uint64_t c0 = larder_counter(db, LARDER_CTR_QUARANTINED);
	larder_entry *e = NULL;
	int rc = larder_get(&e, db, ns, key, strlen(key), ver, strlen(ver));
	if (rc != LARDER_ENOTFOUND)
		test_fail(__FILE__, line,
			  "get of a corrupt entry returned %d (%s), want a "
			  "miss",
			  rc, larder_strerror(rc));
	if (access(path, F_OK) == 0)
		test_fail(__FILE__, line, "corrupt file still at %s", path);
	if (quarantined_files() != q0 + 1)
		test_fail(__FILE__, line, "quarantine/ holds %d files, want %d",
			  quarantined_files(), q0 + 1);
	if (larder_counter(db, LARDER_CTR_QUARANTINED) != c0 + 1)
		test_fail(__FILE__, line, "quarantined counter did not move");
	/* Heals: the next put publishes (not EXISTS) and reads back. */
	rc = put_flags(db, ns, key, ver, size, 0);
	if (rc != 0)
		test_fail(__FILE__, line,
			  "re-put after quarantine: %d (%s): %s", rc,
			  larder_strerror(rc), larder_errmsg(db));
	expect_hit_at(line, db, ns, key, ver, size);
}
#define EXPECT_QUARANTINED(db, ns, key, ver, path, size)                       \
	expect_quarantined_at(__LINE__, db, ns, key, ver, path, size)

/* Header length of the entry file at path. */
static uint32_t hdr_len_of(const char *path)
{
	size_t len;
	uint8_t *buf = read_file(path, &len);
	ldr_hdr h;
	const char *why = NULL;
	ASSERT_EQ(ldr_hdr_decode(&h, buf, len, &why), 0);
	free(buf);
	return h.hdr_len;
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int64_t wall_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000ll + ts.tv_nsec;
}

static void short_pause(void)
{
	struct timespec ts = {0, 20 * 1000 * 1000};
	nanosleep(&ts, NULL);
}

/* ---------------------------------------------------------------------- */
/* Round trips                                                             */

static const size_t round_trip_sizes[] = {
    0, 1, 4095, 4096, 64 * KiB - 1, 64 * KiB, 64 * KiB + 1, 5 * MiB};

static void round_trip_sizes_with(unsigned flags)
{
	larder *db = open_store();
	for (size_t i = 0; i < sizeof round_trip_sizes / sizeof(size_t); i++) {
		size_t size = round_trip_sizes[i];
		char key[64];
		snprintf(key, sizeof key, "key-%zu", size);
		int64_t t0 = wall_ns();
		ASSERT_RC(db, put_flags(db, "default", key, "v1", size, flags),
			  0);
		int64_t t1 = wall_ns();

		larder_entry *e = NULL;
		ASSERT_RC(
		    db,
		    larder_get(&e, db, "default", key, strlen(key), "v1", 2),
		    0);
		ASSERT_EQ(larder_entry_size(e), size);
		ASSERT(larder_entry_data(e) != NULL);
		ASSERT(test_check_pattern(larder_entry_data(e), size,
					  seed_kv(key, "v1")));
		size_t mlen = 99;
		larder_entry_meta(&mlen, e);
		ASSERT_EQ(mlen, 0);
		ASSERT(larder_entry_created(e) >= t0 - 1000000000ll);
		ASSERT(larder_entry_created(e) <= t1 + 1000000000ll);
		ASSERT_EQ(larder_entry_expires(e), 0);

		struct info_copy c =
		    inspect(db, "default", key, "v1", LARDER_WALK_VERIFY);
		ASSERT_EQ(c.state, LARDER_STATE_OK);
		ASSERT_EQ(c.size, size);
		ASSERT_EQ(c.file_size, (uint64_t)file_size(c.path));
		/* zstd may store an incompressible payload as it is. */
		if (!(flags & LARDER_PUT_ZSTD)) {
			ASSERT_EQ(c.compressed, 0);
			ASSERT_EQ(c.stored_size, size);
			/* Read below the threshold, mapped from it on, and
			 * then zero-copy: the payload starts on a page. */
			int mapped = larder_entry_is_mapped(e);
			if (mapped != (size >= 64 * KiB))
				test_fail(__FILE__, __LINE__,
					  "%zu-byte payload: mapped %d, the "
					  "threshold is 64 KiB of payload",
					  size, mapped);
			if (mapped) {
				ASSERT_EQ((c.file_size - size) % LDR_PAGE, 0);
				ASSERT_EQ((uintptr_t)larder_entry_data(e) %
					      LDR_PAGE,
					  0);
			}
		}
		larder_entry_release(e);
	}
	expect_no_temp_files();
	larder_close(db);
}

TEST(put_get_round_trip_at_boundary_sizes)
{
	round_trip_sizes_with(0);
}

TEST(put_get_round_trip_at_boundary_sizes_with_zstd)
{
	round_trip_sizes_with(LARDER_PUT_ZSTD);
}

TEST(zstd_shrinks_compressible_payloads_and_reads_back)
{
	larder *db = open_store();
	size_t size = 3 * MiB + 5;
	uint8_t *buf = xmalloc(size);
	for (size_t i = 0; i < size; i++)
		buf[i] = (uint8_t)("abcdefgh"[i % 8] + (i / 100000) % 3);
	larder_put_opts po = LARDER_PUT_OPTS_INIT;
	po.flags = LARDER_PUT_ZSTD;
	po.zstd_level = 3;
	ASSERT_RC(db, larder_put(db, "z", "k", 1, "v", 1, buf, size, &po), 0);
	struct info_copy c = inspect(db, "z", "k", "v", LARDER_WALK_VERIFY);
	ASSERT_EQ(c.state, LARDER_STATE_OK);
	ASSERT_EQ(c.compressed, 1);
	ASSERT_EQ(c.size, size);
	ASSERT(c.stored_size < size / 10);
	larder_entry *e;
	ASSERT_RC(db, larder_get(&e, db, "z", "k", 1, "v", 1), 0);
	ASSERT_EQ(larder_entry_size(e), size);
	ASSERT_MEM_EQ(larder_entry_data(e), buf, size);
	larder_entry_release(e);
	free(buf);
	larder_close(db);
}

TEST(mmap_threshold_option_decides_what_is_mapped)
{
	larder_opts o = LARDER_OPTS_INIT;
	o.fsync = LARDER_FSYNC_NONE;
	o.mmap_threshold = 4096;
	larder *db = open_store_opts(&o);
	PUT(db, "default", "small", "v", 4095);
	PUT(db, "default", "page", "v", 4096);
	larder_entry *e;
	ASSERT_RC(db, larder_get(&e, db, "default", "small", 5, "v", 1), 0);
	ASSERT_EQ(larder_entry_is_mapped(e), 0);
	larder_entry_release(e);
	ASSERT_RC(db, larder_get(&e, db, "default", "page", 4, "v", 1), 0);
	ASSERT(larder_entry_is_mapped(e));
	ASSERT(test_check_pattern(larder_entry_data(e), 4096,
				  seed_kv("page", "v")));
	larder_entry_release(e);
	larder_close(db);
}

static void stream_equals_one_shot(unsigned flags)
{
	larder *db = open_store();
	size_t size = MiB + 17;
	uint8_t *buf = xmalloc(size);
	test_fill_pattern(buf, size, seed_kv("stream", "v"));
	larder_put_opts po = LARDER_PUT_OPTS_INIT;
	po.flags = flags;
	ASSERT_RC(
	    db, larder_put(db, "default", "oneshot", 7, "v", 1, buf, size, &po),
	    0);

	larder_writer *w = NULL;
	ASSERT_RC(
	    db,
	    larder_writer_begin(&w, db, "default", "stream", 6, "v", 1, &po),
	    0);
	ASSERT(w != NULL);
	/* Chunks of 0..96 bytes: many writes, some empty, none aligned. */
	size_t off = 0, n = 0;
	while (off < size) {
		size_t chunk = (n * 37) % 97;
		if (chunk > size - off)
			chunk = size - off;
		ASSERT_RC(db, larder_writer_write(w, buf + off, chunk), 0);
		off += chunk;
		n++;
	}
	ASSERT(n > 10000);
	ASSERT_RC(db, larder_writer_commit(w), 0);

	larder_entry *a, *b;
	ASSERT_RC(db, larder_get(&a, db, "default", "oneshot", 7, "v", 1), 0);
	ASSERT_RC(db, larder_get(&b, db, "default", "stream", 6, "v", 1), 0);
	ASSERT_EQ(larder_entry_size(a), size);
	ASSERT_EQ(larder_entry_size(b), size);
	ASSERT_MEM_EQ(larder_entry_data(a), buf, size);
	ASSERT_MEM_EQ(larder_entry_data(b), buf, size);
	larder_entry_release(a);
	larder_entry_release(b);
	/* Same payload, same stored form. */
	struct info_copy ia = inspect(db, "default", "oneshot", "v", 0);
	struct info_copy ib = inspect(db, "default", "stream", "v", 0);
	ASSERT_EQ(ia.stored_size, ib.stored_size);
	free(buf);
	expect_no_temp_files();
	larder_close(db);
}

TEST(streaming_writer_with_many_small_writes_equals_one_shot)
{
	stream_equals_one_shot(0);
}

TEST(streaming_writer_with_zstd_equals_one_shot)
{
	stream_equals_one_shot(LARDER_PUT_ZSTD);
}

TEST(meta_round_trips_byte_for_byte)
{
	larder *db = open_store();
	static const char meta[] = "content-type: text/csv\0rows=42\n\xff";
	larder_put_opts po = LARDER_PUT_OPTS_INIT;
	po.meta = meta;
	po.meta_len = sizeof meta;
	ASSERT_RC(db, larder_put(db, "default", "k", 1, "v", 1, "x", 1, &po),
		  0);

	/* The largest allowed meta, on a mapped entry. */
	size_t big = MiB;
	uint8_t *bm = xmalloc(big + 1);
	test_fill_pattern(bm, big + 1, 5);
	uint8_t *pay = xmalloc(100 * KiB);
	test_fill_pattern(pay, 100 * KiB, 6);
	po.meta = bm;
	po.meta_len = big;
	ASSERT_RC(
	    db,
	    larder_put(db, "default", "big", 3, "v", 1, pay, 100 * KiB, &po),
	    0);
	/* One byte more is refused, and leaves nothing behind. */
	po.meta_len = big + 1;
	ASSERT_RC(
	    db,
	    larder_put(db, "default", "over", 4, "v", 1, pay, 100 * KiB, &po),
	    LARDER_EINVAL);
	EXPECT_MISS(db, "default", "over", "v");

	larder_entry *e;
	size_t mlen;
	ASSERT_RC(db, larder_get(&e, db, "default", "k", 1, "v", 1), 0);
	const void *m = larder_entry_meta(&mlen, e);
	ASSERT_EQ(mlen, sizeof meta);
	ASSERT_MEM_EQ(m, meta, sizeof meta);
	ASSERT_EQ(larder_entry_size(e), 1);
	ASSERT_MEM_EQ(larder_entry_data(e), "x", 1);
	larder_entry_release(e);

	ASSERT_RC(db, larder_get(&e, db, "default", "big", 3, "v", 1), 0);
	m = larder_entry_meta(&mlen, e);
	ASSERT_EQ(mlen, big);
	ASSERT_MEM_EQ(m, bm, big);
	ASSERT_MEM_EQ(larder_entry_data(e), pay, 100 * KiB);
	larder_entry_release(e);
	free(bm);
	free(pay);
	expect_no_temp_files();
	larder_close(db);
}

TEST(binary_keys_and_versions_are_distinct_entries)
{
	larder *db = open_store();
	/* Framing: ("ab", "c") and ("a", "bc") must not be the same entry;
	 * nor must keys that differ only after a NUL. */
	ASSERT_RC(db, larder_put(db, "d", "ab", 2, "c", 1, "1", 1, NULL), 0);
	ASSERT_RC(db, larder_put(db, "d", "a", 1, "bc", 2, "2", 1, NULL), 0);
	ASSERT_RC(db, larder_put(db, "d", "k\0x", 3, "", 0, "3", 1, NULL), 0);
	ASSERT_RC(db, larder_put(db, "d", "k\0y", 3, "", 0, "4", 1, NULL), 0);
	ASSERT_RC(db, larder_put(db, "d", "", 0, "", 0, "5", 1, NULL), 0);
	struct {
		const char *k;
		size_t kl;
		const char *v;
		size_t vl;
		char want;
	} cases[] = {{"ab", 2, "c", 1, '1'},
		     {"a", 1, "bc", 2, '2'},
		     {"k\0x", 3, "", 0, '3'},
		     {"k\0y", 3, "", 0, '4'},
		     {"", 0, "", 0, '5'}};
	for (size_t i = 0; i < 5; i++) {
		larder_entry *e;
		ASSERT_RC(db,
			  larder_get(&e, db, "d", cases[i].k, cases[i].kl,
				     cases[i].v, cases[i].vl),
			  0);
		ASSERT_EQ(larder_entry_size(e), 1);
		ASSERT_EQ(((const char *)larder_entry_data(e))[0],
			  cases[i].want);
		larder_entry_release(e);
	}
	/* The same key and version in another namespace is another entry. */
	larder_entry *e;
	ASSERT_RC(db, larder_get(&e, db, "other", "ab", 2, "c", 1),
		  LARDER_ENOTFOUND);
	larder_close(db);
}

/* ---------------------------------------------------------------------- */
/* Lifetime of returned data                                               */

TEST(entry_data_stays_valid_after_remove_until_release)
{
	larder *db = open_store();
	size_t sizes[] = {4000, 2 * MiB};
	for (int i = 0; i < 2; i++) {
		PUT(db, "default", "k", "v", sizes[i]);
		larder_entry *e;
		ASSERT_RC(db, larder_get(&e, db, "default", "k", 1, "v", 1), 0);
		ASSERT_EQ(larder_entry_is_mapped(e), i == 1);
		ASSERT_RC(db, larder_remove(db, "default", "k", 1, "v", 1), 0);
		EXPECT_MISS(db, "default", "k", "v");
		/* A new, different entry under the same name must not show
		 * through the handle held on the old one. */
		ASSERT_RC(db, put_flags(db, "default", "k", "v", sizes[i], 0),
			  0);
		ASSERT_EQ(larder_entry_size(e), sizes[i]);
		ASSERT(test_check_pattern(larder_entry_data(e), sizes[i],
					  seed_kv("k", "v")));
		larder_entry_release(e);
		ASSERT_RC(db, larder_remove(db, "default", "k", 1, "v", 1), 0);
	}
	larder_close(db);
}

TEST(entry_data_stays_valid_after_unlink_and_close_until_release)
{
	larder *db = open_store();
	size_t sizes[] = {100, 64 * KiB, 3 * MiB};
	larder_entry *e[3];
	for (int i = 0; i < 3; i++) {
		char key[32];
		snprintf(key, sizeof key, "k%d", i);
		PUT(db, "default", key, "v", sizes[i]);
		ASSERT_RC(
		    db,
		    larder_get(&e[i], db, "default", key, strlen(key), "v", 1),
		    0);
		ASSERT_EQ(unlink(entry_path(db, "default", key, "v")), 0);
	}
	/* The store handle goes too: entries held stay valid. */
	larder_close(db);
	for (int i = 0; i < 3; i++) {
		char key[32];
		snprintf(key, sizeof key, "k%d", i);
		ASSERT_EQ(larder_entry_size(e[i]), sizes[i]);
		ASSERT(test_check_pattern(larder_entry_data(e[i]), sizes[i],
					  seed_kv(key, "v")));
		larder_entry_release(e[i]);
	}
	larder_entry_release(NULL); /* no-op */
}

/* ---------------------------------------------------------------------- */
/* Heads                                                                   */

/* The one head hint file under store/ns/<ns>/h (the store holds one key). */
static void head_path(const char *ns, char *out, size_t outlen)
{
	char dir[4096];
	snprintf(dir, sizeof dir, "%s/ns/%s/h", store_dir(), ns);
	ASSERT_EQ(count_files(dir, NULL), 1);
	/* Descend the fan-out to the single file. */
	for (;;) {
		DIR *d = opendir(dir);
		ASSERT(d != NULL);
		struct dirent *de;
		char next[4096] = "";
		while ((de = readdir(d)) != NULL) {
			if (de->d_name[0] == '.')
				continue;
			join(next, sizeof next, dir, de->d_name);
			break;
		}
		closedir(d);
		ASSERT(next[0] != '\0');
		struct stat st;
		ASSERT_EQ(stat(next, &st), 0);
		if (!S_ISDIR(st.st_mode)) {
			snprintf(out, outlen, "%s", next);
			return;
		}
		snprintf(dir, sizeof dir, "%s", next);
	}
}

TEST(versionless_get_follows_the_head)
{
	larder *db = open_store();
	EXPECT_MISS(db, "default", "k", NULL);
	PUT(db, "default", "k", "v1", 100);
	EXPECT_HEAD(db, "default", "k", "v1", 100);
	larder_entry *e;
	ASSERT_RC(db, larder_get(&e, db, "default", "k", 1, NULL, 0), 0);
	size_t vlen;
	const void *v = larder_entry_version(&vlen, e);
	ASSERT_EQ(vlen, 2);
	ASSERT_MEM_EQ(v, "v1", 2);
	ASSERT(
	    test_check_pattern(larder_entry_data(e), 100, seed_kv("k", "v1")));
	larder_entry_release(e);

	PUT(db, "default", "k", "v2", 70 * KiB);
	ASSERT_RC(db, larder_get(&e, db, "default", "k", 1, NULL, 0), 0);
	v = larder_entry_version(&vlen, e);
	ASSERT_EQ(vlen, 2);
	ASSERT_MEM_EQ(v, "v2", 2);
	ASSERT_EQ(larder_entry_size(e), 70 * KiB);
	ASSERT(test_check_pattern(larder_entry_data(e), 70 * KiB,
				  seed_kv("k", "v2")));
	larder_entry_release(e);

	/* NO_HEAD publishes without moving the head. */
	ASSERT_RC(
	    db, put_flags(db, "default", "k", "v3", 10, LARDER_PUT_NO_HEAD), 0);
	EXPECT_HIT(db, "default", "k", "v3", 10);
	ASSERT_RC(db, larder_get(&e, db, "default", "k", 1, NULL, 0), 0);
	v = larder_entry_version(&vlen, e);
	ASSERT_MEM_EQ(v, "v2", 2);
	larder_entry_release(e);
	larder_close(db);
}

TEST(lagging_head_hint_is_harmless)
{
	larder *db = open_store();
	PUT(db, "default", "k", "v1", 1000);
	char hp[4096];
	head_path("default", hp, sizeof hp);
	size_t oldlen;
	uint8_t *old = read_file(hp, &oldlen);

	PUT(db, "default", "k", "v2", 90 * KiB);
	larder_entry *e;
	ASSERT_RC(db, larder_get(&e, db, "default", "k", 1, NULL, 0), 0);
	size_t vlen;
	ASSERT_MEM_EQ(larder_entry_version(&vlen, e), "v2", 2);
	larder_entry_release(e);

	/* Another host's older view of the head: it names v1. */
	write_file(hp, old, oldlen);
	ASSERT_RC(db, larder_get(&e, db, "default", "k", 1, NULL, 0), 0);
	const void *v = larder_entry_version(&vlen, e);
	ASSERT_EQ(vlen, 2);
	ASSERT_MEM_EQ(v, "v1", 2);
	/* v1's bytes, all of them, nothing of v2's. */
	ASSERT_EQ(larder_entry_size(e), 1000);
	ASSERT(
	    test_check_pattern(larder_entry_data(e), 1000, seed_kv("k", "v1")));
	larder_entry_release(e);
	/* The explicit newer version is still there. */
	EXPECT_HIT(db, "default", "k", "v2", 90 * KiB);

	/* A head naming a version that is gone (GC took its file): a miss,
	 * not an error, and the hint itself is left as it was. */
	ASSERT_EQ(unlink(entry_path(db, "default", "k", "v1")), 0);
	ldr_test_memo_age(db, 1000); /* the memo's check (docs/format.md) */
	EXPECT_MISS(db, "default", "k", NULL);
	ASSERT_EQ(access(hp, F_OK), 0);
	EXPECT_MISS(db, "default", "k", NULL);
	/* Removing by the head's name when its entry is already gone. */
	int rc = larder_remove(db, "default", "k", 1, NULL, 0);
	ASSERT(rc == 0 || rc == LARDER_ENOTFOUND);
	EXPECT_MISS(db, "default", "k", NULL);
	EXPECT_HIT(db, "default", "k", "v2", 90 * KiB);

	/* A garbled head hint is a miss too, never a crash or an error. */
	write_file(hp, "\xff\xfe garbage", 10);
	EXPECT_MISS(db, "default", "k", NULL);
	write_file(hp, "", 0);
	EXPECT_MISS(db, "default", "k", NULL);
	/* And the next put repairs it. */
	PUT(db, "default", "k", "v4", 10);
	EXPECT_HEAD(db, "default", "k", "v4", 10);
	free(old);
	larder_close(db);
}

/* ---------------------------------------------------------------------- */
/* Remove, duplicates, abort                                               */

TEST(remove_deletes_one_version_and_head_remove_deletes_the_head)
{
	larder *db = open_store();
	ASSERT_RC(db, larder_remove(db, "default", "k", 1, "v1", 2),
		  LARDER_ENOTFOUND);
	ASSERT_RC(db, larder_remove(db, "default", "k", 1, NULL, 0),
		  LARDER_ENOTFOUND);
	PUT(db, "default", "k", "v1", 10);
	PUT(db, "default", "k", "v2", 20);
	PUT(db, "default", "k", "v3", 30);

	/* An explicit version: just that one. */
	ASSERT_RC(db, larder_remove(db, "default", "k", 1, "v1", 2), 0);
	EXPECT_MISS(db, "default", "k", "v1");
	EXPECT_HIT(db, "default", "k", "v2", 20);
	EXPECT_HEAD(db, "default", "k", "v3", 30);
	ASSERT_RC(db, larder_remove(db, "default", "k", 1, "v1", 2),
		  LARDER_ENOTFOUND);

	/* Version-less: the head's entry and the head; older stay. */
	ASSERT_RC(db, larder_remove(db, "default", "k", 1, NULL, 0), 0);
	EXPECT_MISS(db, "default", "k", "v3");
	EXPECT_MISS(db, "default", "k", NULL);
	EXPECT_HIT(db, "default", "k", "v2", 20);
	ASSERT_RC(db, larder_remove(db, "default", "k", 1, NULL, 0),
		  LARDER_ENOTFOUND);

	/* Removed entries can be published again. */
	ASSERT_RC(db, put_flags(db, "default", "k", "v1", 11, 0), 0);
	EXPECT_HIT(db, "default", "k", "v1", 11);
	ASSERT_RC(db, put_flags(db, "default", "k", "v3", 33, 0), 0);
	EXPECT_HEAD(db, "default", "k", "v3", 33);
	expect_no_temp_files();
	larder_close(db);
}

TEST(second_commit_of_same_key_and_version_returns_exists_and_keeps_first)
{
	larder *db = open_store();
	ASSERT_RC(
	    db, larder_put(db, "default", "k", 1, "v", 1, "first", 5, NULL), 0);
	uint64_t raced = larder_counter(db, LARDER_CTR_PUBLISH_RACED);
	ASSERT_RC(db,
		  larder_put(db, "default", "k", 1, "v", 1, "second!", 7, NULL),
		  LARDER_EXISTS);
	ASSERT_EQ(larder_counter(db, LARDER_CTR_PUBLISH_RACED), raced + 1);

	/* Through a writer too, even one begun before the first commit. */
	larder_writer *w;
	ASSERT_RC(db,
		  larder_writer_begin(&w, db, "default", "k", 1, "v", 1, NULL),
		  0);
	ASSERT_RC(db, larder_writer_write(w, "third", 5), 0);
	ASSERT_RC(db, larder_writer_commit(w), LARDER_EXISTS);

	larder_entry *e;
	ASSERT_RC(db, larder_get(&e, db, "default", "k", 1, "v", 1), 0);
	ASSERT_EQ(larder_entry_size(e), 5);
	ASSERT_MEM_EQ(larder_entry_data(e), "first", 5);
	larder_entry_release(e);
	expect_no_temp_files();
	larder_close(db);
}

TEST(writer_abort_leaves_no_temp_files_and_no_entry)
{
	larder *db = open_store();
	uint8_t buf[8192];
	test_fill_pattern(buf, sizeof buf, 1);

	larder_writer *w;
	ASSERT_RC(db,
		  larder_writer_begin(&w, db, "default", "k", 1, "v", 1, NULL),
		  0);
	for (int i = 0; i < 20; i++)
		ASSERT_RC(db, larder_writer_write(w, buf, sizeof buf), 0);
	ASSERT(temp_files() <= 1); /* the one being written, if visible */
	larder_writer_abort(w);
	expect_no_temp_files();
	EXPECT_MISS(db, "default", "k", "v");

	/* Aborted before any byte; and with zstd. */
	ASSERT_RC(db,
		  larder_writer_begin(&w, db, "default", "k", 1, "v", 1, NULL),
		  0);
	larder_writer_abort(w);
	larder_put_opts po = LARDER_PUT_OPTS_INIT;
	po.flags = LARDER_PUT_ZSTD;
	ASSERT_RC(
	    db, larder_writer_begin(&w, db, "default", "k", 1, "v", 1, &po), 0);
	ASSERT_RC(db, larder_writer_write(w, buf, sizeof buf), 0);
	larder_writer_abort(w);
	larder_writer_abort(NULL);
	expect_no_temp_files();
	EXPECT_MISS(db, "default", "k", "v");

	/* An abort does not poison a later put of the same entry. */
	ASSERT_RC(db, larder_put(db, "default", "k", 1, "v", 1, buf, 100, NULL),
		  0);
	larder_entry *e;
	ASSERT_RC(db, larder_get(&e, db, "default", "k", 1, "v", 1), 0);
	ASSERT_MEM_EQ(larder_entry_data(e), buf, 100);
	larder_entry_release(e);
	expect_no_temp_files();
	larder_close(db);
}

TEST(hit_and_miss_counters_move)
{
	larder *db = open_store();
	for (int c = 0; c < LARDER_CTR_COUNT; c++) {
		ASSERT(larder_counter_name(c) != NULL);
		ASSERT_EQ(larder_counter(db, c), 0);
	}
	ASSERT(larder_counter_name(LARDER_CTR_COUNT) == NULL);
	ASSERT(larder_counter_name(-1) == NULL);
	EXPECT_MISS(db, "default", "k", "v");
	PUT(db, "default", "k", "v", 10);
	EXPECT_HIT(db, "default", "k", "v", 10);
	EXPECT_HIT(db, "default", "k", "v", 10);
	ASSERT_EQ(larder_counter(db, LARDER_CTR_MISSES), 1);
	ASSERT_EQ(larder_counter(db, LARDER_CTR_HITS), 2);
	ASSERT_EQ(larder_counter(db, LARDER_CTR_PUBLISHED), 1);
	larder_close(db);
}

/* ---------------------------------------------------------------------- */
/* TTL                                                                     */

/* Poll get until it misses; bounded. Returns seconds waited. */
static double poll_until_miss(larder *db, const char *ns, const char *key,
			      const char *ver, double bound_s)
{
	double t0 = now_s();
	for (;;) {
		larder_entry *e;
		int rc =
		    larder_get(&e, db, ns, key, strlen(key), ver, strlen(ver));
		if (rc == LARDER_ENOTFOUND)
			return now_s() - t0;
		ASSERT_RC(db, rc, 0);
		larder_entry_release(e);
		if (now_s() - t0 > bound_s)
			test_fail(__FILE__, __LINE__,
				  "%s/%s still a hit after %.1f s", key, ver,
				  bound_s);
		short_pause();
	}
}

/* The TTL (s) a put of (ns, key, ver) through db gave its entry. */
static int64_t put_ttl_s(larder *db, const char *ns, const char *key,
			 const char *ver)
{
	ASSERT_RC(db,
		  larder_put(db, ns, key, strlen(key), ver, strlen(ver), "x", 1,
			     NULL),
		  0);
	larder_entry *e = NULL;
	ASSERT_RC(
	    db, larder_get(&e, db, ns, key, strlen(key), ver, strlen(ver)), 0);
	int64_t expires = larder_entry_expires(e);
	int64_t ttl =
	    expires ? (expires - larder_entry_created(e)) / 1000000000 : 0;
	larder_entry_release(e);
	return ttl;
}

/* A handle keeps a namespace's default TTL for a second (a put reads no
 * file): another process's change reaches its puts once that second is
 * over, and its own change at once. The handle's clock is moved by
 * hand, so the test waits for nothing. */
TEST(a_namespace_ttl_changed_elsewhere_applies_within_a_second_own_at_once)
{
	larder *db = open_store();
	ASSERT_RC(db, larder_ns_set_ttl(db, "nt", 100), 0);
	ASSERT_EQ(put_ttl_s(db, "nt", "k", "v1"), 100);
	/* Kept for as long as the test likes: the second never ends. */
	ldr_test_ns_ttl_age(db, -3600 * 1000);
	pid_t child = fork();
	ASSERT(child >= 0);
	if (child == 0) {
		larder *o = NULL;
		larder_opts opts = LARDER_OPTS_INIT;
		int rc = larder_open(&o, store_dir(), &opts);
		if (rc == 0)
			rc = larder_ns_set_ttl(o, "nt", 200);
		larder_close(o);
		_exit(rc ? 1 : 0);
	}
	int st;
	ASSERT_EQ(waitpid(child, &st, 0), child);
	ASSERT(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	int64_t ttl = 0;
	ASSERT_RC(db, larder_ns_get_ttl(&ttl, db, "nt"), 0);
	ASSERT_EQ(ttl, 200); /* asked, the file answers */
	ASSERT_EQ(put_ttl_s(db, "nt", "k", "v2"), 100); /* within the second */
	/* The second is over: read again. */
	ldr_test_ns_ttl_age(db, 2 * 3600 * 1000);
	ASSERT_EQ(put_ttl_s(db, "nt", "k", "v3"), 200);
	/* This handle's own change, with the second still running. */
	ldr_test_ns_ttl_age(db, -3600 * 1000);
	ASSERT_RC(db, larder_ns_set_ttl(db, "nt", 300), 0);
	ASSERT_EQ(put_ttl_s(db, "nt", "k", "v4"), 300);
	ASSERT_RC(db, larder_ns_set_ttl(db, "nt", 0), 0);
	ASSERT_EQ(put_ttl_s(db, "nt", "k", "v5"), 0);
	larder_close(db);
}

TEST(ttl_expires_entries_and_namespace_default_applies_unless_never)
{
	larder *db = open_store();
	int64_t ttl = -5;
	ASSERT_RC(db, larder_ns_get_ttl(&ttl, db, "short"), 0);
	ASSERT_EQ(ttl, 0);
	ASSERT_RC(db, larder_ns_set_ttl(db, "short", 1), 0);
	ASSERT_RC(db, larder_ns_get_ttl(&ttl, db, "short"), 0);
	ASSERT_EQ(ttl, 1);

	/* ns default (1 s), explicit never, explicit 1 h in "short"; an
	 * explicit 1 s in a namespace without a default. */
	int64_t t0 = wall_ns();
	PUT(db, "short", "dflt", "v", 100);
	larder_put_opts po = LARDER_PUT_OPTS_INIT;
	po.ttl_seconds = LARDER_TTL_NEVER;
	ASSERT_RC(db, larder_put(db, "short", "never", 5, "v", 1, "n", 1, &po),
		  0);
	po.ttl_seconds = 3600;
	ASSERT_RC(db, larder_put(db, "short", "hour", 4, "v", 1, "h", 1, &po),
		  0);
	po.ttl_seconds = 1;
	uint8_t *big = xmalloc(100 * KiB);
	test_fill_pattern(big, 100 * KiB, seed_kv("own", "v"));
	ASSERT_RC(
	    db, larder_put(db, "plain", "own", 3, "v", 1, big, 100 * KiB, &po),
	    0);
	free(big);
	PUT(db, "plain", "forever", "v", 10);

	larder_entry *e;
	ASSERT_RC(db, larder_get(&e, db, "short", "dflt", 4, "v", 1), 0);
	int64_t created = larder_entry_created(e);
	ASSERT(created >= t0 - 1000000000ll);
	ASSERT_EQ(larder_entry_expires(e), created + 1000000000ll);
	larder_entry_release(e);
	ASSERT_RC(db, larder_get(&e, db, "short", "never", 5, "v", 1), 0);
	ASSERT_EQ(larder_entry_expires(e), 0);
	larder_entry_release(e);
	ASSERT_RC(db, larder_get(&e, db, "short", "hour", 4, "v", 1), 0);
	ASSERT_EQ(larder_entry_expires(e),
		  larder_entry_created(e) + 3600ll * 1000000000ll);
	larder_entry_release(e);
	ASSERT_RC(db, larder_get(&e, db, "plain", "forever", 7, "v", 1), 0);
	ASSERT_EQ(larder_entry_expires(e), 0);
	larder_entry_release(e);

	uint64_t exp0 = larder_counter(db, LARDER_CTR_EXPIRED);
	poll_until_miss(db, "short", "dflt", "v", 10);
	poll_until_miss(db, "plain", "own", "v", 10);
	/* Not before its time: at least a second after it was made. */
	ASSERT(wall_ns() >= created + 1000000000ll);
	ASSERT(larder_counter(db, LARDER_CTR_EXPIRED) >= exp0 + 2);

	ASSERT_RC(db, larder_get(&e, db, "short", "never", 5, "v", 1), 0);
	larder_entry_release(e);
	ASSERT_RC(db, larder_get(&e, db, "short", "hour", 4, "v", 1), 0);
	larder_entry_release(e);
	EXPECT_HIT(db, "plain", "forever", "v", 10);

	/* Expired is a miss, not corruption. */
	ASSERT_EQ(quarantined_files(), 0);
	struct info_copy c = inspect(db, "short", "dflt", "v", 0);
	ASSERT_EQ(c.state, LARDER_STATE_EXPIRED);
	larder_close(db);
}

TEST(reput_after_expiry_makes_the_entry_visible_again)
{
	/* A filler that finds an expired entry loads again and publishes the
	 * same (key, version): that must bring the entry back, else the key
	 * stays a miss until GC runs. */
	larder *db = open_store();
	larder_put_opts po = LARDER_PUT_OPTS_INIT;
	po.ttl_seconds = 1;
	ASSERT_RC(db, larder_put(db, "default", "k", 1, "v", 1, "old", 3, &po),
		  0);
	poll_until_miss(db, "default", "k", "v", 10);
	po.ttl_seconds = 3600;
	int rc = larder_put(db, "default", "k", 1, "v", 1, "new", 3, &po);
	ASSERT(rc == 0 || rc == LARDER_EXISTS);
	larder_entry *e;
	ASSERT_RC(db, larder_get(&e, db, "default", "k", 1, "v", 1), 0);
	ASSERT_MEM_EQ(larder_entry_data(e), "new", 3);
	larder_entry_release(e);
	larder_close(db);
}

/* ---------------------------------------------------------------------- */
/* Namespaces                                                              */

static int collect_ns(const char *ns, void *payload)
{
	char *all = payload;
	strcat(all, ns);
	strcat(all, ";");
	return 0;
}

static int stop_at_first_ns(const char *ns, void *payload)
{
	(void)ns;
	(*(int *)payload)++;
	return 42;
}

TEST(namespace_names_are_validated)
{
	larder *db = open_store();
	char long65[66], long64[65];
	memset(long65, 'a', 65);
	long65[65] = '\0';
	memset(long64, 'b', 64);
	long64[64] = '\0';
	const char *bad[] = {"",    ".x",   ".",    "..",   "a/b",     "/",
			     "a b", "a\nb", "a\\b", long65, "\xc3\xa9"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		const char *ns = bad[i];
		larder_entry *e;
		larder_writer *w = NULL;
		int64_t ttl;
		ASSERT_RC(db, larder_put(db, ns, "k", 1, "v", 1, "x", 1, NULL),
			  LARDER_EINVAL);
		ASSERT_RC(db, larder_get(&e, db, ns, "k", 1, "v", 1),
			  LARDER_EINVAL);
		ASSERT_RC(db,
			  larder_writer_begin(&w, db, ns, "k", 1, "v", 1, NULL),
			  LARDER_EINVAL);
		ASSERT(w == NULL);
		ASSERT_RC(db, larder_ns_set_ttl(db, ns, 5), LARDER_EINVAL);
		ASSERT_RC(db, larder_ns_get_ttl(&ttl, db, ns), LARDER_EINVAL);
		ASSERT_RC(db, larder_remove(db, ns, "k", 1, "v", 1),
			  LARDER_EINVAL);
	}
	/* Nothing was created for them. */
	char all[4096] = "";
	ASSERT_RC(db, larder_ns_foreach(db, collect_ns, all), 0);
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		char item[80];
		snprintf(item, sizeof item, ";%s;", bad[i]);
		char padded[4100];
		snprintf(padded, sizeof padded, ";%s", all);
		ASSERT(strstr(padded, item) == NULL);
	}
	ASSERT(access(test_path("store/ns/a"), F_OK) != 0);
	ASSERT(access(test_path("store/ns/.x"), F_OK) != 0);

	const char *good[] = {long64, "a", "A.b-c_9", "default", "x.."};
	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
		ASSERT_RC(db,
			  larder_put(db, good[i], "k", 1, "v", 1, "x", 1, NULL),
			  0);
		larder_entry *e;
		ASSERT_RC(db, larder_get(&e, db, good[i], "k", 1, "v", 1), 0);
		larder_entry_release(e);
	}
	all[0] = '\0';
	ASSERT_RC(db, larder_ns_foreach(db, collect_ns, all), 0);
	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
		char item[80];
		snprintf(item, sizeof item, "%s;", good[i]);
		ASSERT(strstr(all, item) != NULL);
	}
	int calls = 0;
	ASSERT_EQ(larder_ns_foreach(db, stop_at_first_ns, &calls), 42);
	ASSERT_EQ(calls, 1);
	larder_close(db);
}

/* ---------------------------------------------------------------------- */
/* Opening                                                                 */

TEST(open_missing_store_is_notfound_and_names_the_path)
{
	larder *db = (larder *)&db;
	const char *dir = test_path("no-such-store");
	ASSERT_RC(NULL, larder_open(&db, dir, NULL), LARDER_ENOTFOUND);
	ASSERT(db == NULL);
	ASSERT(strstr(larder_errmsg(NULL), dir) != NULL);
	ASSERT(access(dir, F_OK) != 0); /* and did not create it */

	/* An empty directory is not a store either, until created. */
	const char *empty = test_path("empty");
	ASSERT_EQ(mkdir(empty, 0755), 0);
	int rc = larder_open(&db, empty, NULL);
	ASSERT(rc == LARDER_ENOTFOUND || rc == LARDER_ENOTSTORE);
	ASSERT(db == NULL);
	larder_opts o = LARDER_OPTS_INIT;
	o.flags = LARDER_OPEN_CREATE;
	ASSERT_RC(NULL, larder_open(&db, empty, &o), 0);
	ASSERT_STR_EQ(larder_dir(db), empty);
	larder_close(db);
	/* Created: now it opens without CREATE. */
	ASSERT_RC(NULL, larder_open(&db, empty, NULL), 0);
	larder_close(db);
	larder_close(NULL);
}

/* A mistyped path must not grow a tree: CREATE makes the store's own
 * directory, never a missing parent. */
TEST(create_makes_the_store_directory_but_no_missing_parent)
{
	larder_opts o = LARDER_OPTS_INIT;
	o.flags = LARDER_OPEN_CREATE;
	larder *db = (larder *)&db;
	const char *dir = test_path("typo/cache/store");
	ASSERT_RC(NULL, larder_open(&db, dir, &o), LARDER_ENOTFOUND);
	ASSERT(db == NULL);
	ASSERT(strstr(larder_errmsg(NULL), dir) != NULL);
	ASSERT(strstr(larder_errmsg(NULL), "parent") != NULL);
	ASSERT(access(test_path("typo"), F_OK) != 0);
	ASSERT_EQ(mkdir(test_path("typo"), 0755), 0);
	ASSERT_EQ(mkdir(test_path("typo/cache"), 0755), 0);
	ASSERT_RC(NULL, larder_open(&db, dir, &o), 0);
	larder_close(db);
	ASSERT(access(test_path("typo/cache/store/larder-store"), F_OK) == 0);
}

/* A creator that died between writing its marker and linking it leaves a
 * temp file and no marker: the directory is still fresh, not someone's.
 * A name that only looks like a temp name is someone's. */
TEST(create_over_a_dead_creators_temp_file_but_not_a_lookalike)
{
	const char *dir = test_path("fresh");
	ASSERT_EQ(mkdir(dir, 0700), 0);
	ASSERT_EQ(
	    test_sh("echo half > '%s/.tmp.host-1.42.0123456789abcdef'", dir),
	    0);
	larder *db = (larder *)&db;
	ASSERT_RC(NULL, larder_open(&db, dir, NULL), LARDER_ENOTFOUND);
	larder_opts o = LARDER_OPTS_INIT;
	o.flags = LARDER_OPEN_CREATE;
	ASSERT_RC(NULL, larder_open(&db, dir, &o), 0);
	larder_close(db);
	ASSERT(access(test_path("fresh/larder-store"), F_OK) == 0);

	static const char *const lookalikes[] = {
	    ".tmp.notes", ".tmp.host.42.0123456789ABCDEF",
	    ".tmp.host.42.0123456789abcdef0", ".tmp.a.b.42.0123456789abcdef",
	    ".tmp.host.x.0123456789abcdef"};
	for (size_t i = 0; i < sizeof lookalikes / sizeof *lookalikes; i++) {
		const char *other = test_path("other-%zu", i);
		ASSERT_EQ(mkdir(other, 0700), 0);
		ASSERT_EQ(test_sh("echo mine > '%s/%s'", other, lookalikes[i]),
			  0);
		ASSERT_RC(NULL, larder_open(&db, other, &o), LARDER_ENOTSTORE);
		ASSERT(db == NULL);
		ASSERT(access(test_path("other-%zu/larder-store", i), F_OK) !=
		       0);
	}
}

TEST(open_non_empty_non_store_dir_is_notstore)
{
	const char *dir = test_path("home");
	ASSERT_EQ(mkdir(dir, 0755), 0);
	ASSERT_EQ(test_sh("echo precious > '%s/notes.txt'", dir), 0);
	larder *db = (larder *)&db;
	ASSERT_RC(NULL, larder_open(&db, dir, NULL), LARDER_ENOTSTORE);
	ASSERT(db == NULL);
	ASSERT(strstr(larder_errmsg(NULL), dir) != NULL);
	/* CREATE does not turn someone's directory into a store. */
	larder_opts o = LARDER_OPTS_INIT;
	o.flags = LARDER_OPEN_CREATE;
	ASSERT_RC(NULL, larder_open(&db, dir, &o), LARDER_ENOTSTORE);
	ASSERT(db == NULL);
	ASSERT(access(test_path("home/larder-store"), F_OK) != 0);
	/* A regular file is not a store. */
	ASSERT(larder_open(&db, test_path("home/notes.txt"), NULL) < 0);
	ASSERT(db == NULL);
}

TEST(open_store_with_newer_format_is_eversion)
{
	larder *db = open_store();
	larder_close(db);
	const char *marker = test_path("store/larder-store");
	size_t len;
	char *text = (char *)read_file(marker, &len);
	text = realloc(text, len + 16);
	text[len] = '\0';
	/* Rewrite the "format N" line as a newer one. */
	char *f = strstr(text, "format");
	ASSERT(f != NULL);
	char *num = f + strlen("format");
	while (*num == ' ' || *num == '=' || *num == ':' || *num == '\t')
		num++;
	char *end = num;
	while (*end >= '0' && *end <= '9')
		end++;
	ASSERT(end > num);
	char out[4096];
	snprintf(out, sizeof out, "%.*s%d%s", (int)(num - text), text,
		 LARDER_FORMAT_VERSION + 1, end);
	write_file(marker, out, strlen(out));
	free(text);

	db = (larder *)&db;
	ASSERT_RC(NULL, larder_open(&db, store_dir(), NULL), LARDER_EVERSION);
	ASSERT(db == NULL);
	ASSERT(strstr(larder_errmsg(NULL), store_dir()) != NULL);
	larder_opts o = LARDER_OPTS_INIT;
	o.flags = LARDER_OPEN_CREATE;
	ASSERT_RC(NULL, larder_open(&db, store_dir(), &o), LARDER_EVERSION);
}

TEST(world_writable_store_is_refused_unless_allowed)
{
	larder *db = open_store();
	larder_close(db);
	ASSERT_EQ(chmod(store_dir(), 0777), 0);
	db = (larder *)&db;
	ASSERT_RC(NULL, larder_open(&db, store_dir(), NULL), LARDER_EPERM);
	ASSERT(db == NULL);
	ASSERT(strstr(larder_errmsg(NULL), store_dir()) != NULL);
	ASSERT_EQ(chmod(store_dir(), 0703), 0); /* o+w without g+w */
	ASSERT_RC(NULL, larder_open(&db, store_dir(), NULL), LARDER_EPERM);

	larder_opts o = LARDER_OPTS_INIT;
	o.flags = LARDER_OPEN_ALLOW_UNSAFE_MODE;
	ASSERT_RC(NULL, larder_open(&db, store_dir(), &o), 0);
	ASSERT_RC(db, larder_put(db, "default", "k", 1, "v", 1, "x", 1, NULL),
		  0);
	larder_close(db);

	/* Group-writable (a group-shared store) is fine. */
	ASSERT_EQ(chmod(store_dir(), 02775), 0);
	ASSERT_RC(NULL, larder_open(&db, store_dir(), NULL), 0);
	larder_close(db);
}

TEST(errmsg_names_the_path_of_a_failed_operation)
{
	larder *db = open_store();
	/* A namespace directory that is a file: writing there must fail
	 * with a real error (not a miss) that names where. */
	ASSERT_EQ(mkdir(test_path("store/ns"), 0755) == 0 || errno == EEXIST,
		  1);
	ASSERT_EQ(test_sh("echo x > '%s/ns/blocked'", store_dir()), 0);
	int rc = larder_put(db, "blocked", "k", 1, "v", 1, "x", 1, NULL);
	ASSERT(rc < 0);
	ASSERT(rc != LARDER_ENOTFOUND);
	const char *msg = larder_errmsg(db);
	if (!strstr(msg, "blocked"))
		test_fail(__FILE__, __LINE__, "message does not name it: %s",
			  msg);
	ASSERT(strcmp(larder_strerror(rc), "unknown error") != 0);
	for (int code = LARDER_ENOTSTORE; code < 0; code++)
		ASSERT(strcmp(larder_strerror(code), "unknown error") != 0);
	expect_no_temp_files();
	larder_close(db);
}

/* ---------------------------------------------------------------------- */
/* Corruption                                                              */

#define SMALL 200

TEST(flipped_bit_at_every_offset_is_rejected)
{
	larder *db = open_store();
	/* Every key below has the length of this one: same file layout. */
	PUT(db, "default", "kprobe", "v", SMALL);
	off_t total = file_size(entry_path(db, "default", "kprobe", "v"));
	uint32_t hl = hdr_len_of(entry_path(db, "default", "kprobe", "v"));
	ASSERT_EQ(total, (off_t)hl + SMALL);

	for (off_t off = 0; off < total; off++) {
		/* A fresh entry of the same shape for each offset. */
		char key[32];
		snprintf(key, sizeof key, "k%05d", (int)off);
		PUT(db, "default", key, "v", SMALL);
		const char *path = entry_path(db, "default", key, "v");
		ASSERT_EQ(file_size(path), total);
		uint64_t sums = larder_counter(db, LARDER_CTR_CHECKSUM_FAIL);
		xor_byte(path, off, (uint8_t)(1u << (off % 8)));
		if (off >= 8 && off < 12) {
			/* The format field: the bit may make the entry look
			 * newer (left alone for a newer larder) or invalid;
			 * either way a miss. */
			EXPECT_MISS(db, "default", key, "v");
			continue;
		}
		EXPECT_QUARANTINED(db, "default", key, "v", path, SMALL);
		/* Payload damage is a checksum failure. */
		if (off >= (off_t)hl)
			ASSERT(larder_counter(db, LARDER_CTR_CHECKSUM_FAIL) >
			       sums);
	}
	expect_no_temp_files();
	larder_close(db);
}

TEST(truncation_at_every_length_is_rejected)
{
	larder *db = open_store();
	PUT(db, "default", "t", "v", SMALL);
	off_t total = file_size(entry_path(db, "default", "t", "v"));
	for (off_t len = 0; len < total; len++) {
		const char *path = entry_path(db, "default", "t", "v");
		ASSERT_EQ(truncate(path, len), 0);
		EXPECT_QUARANTINED(db, "default", "t", "v", path, SMALL);
	}
	larder_close(db);
}

TEST(appended_byte_is_rejected)
{
	larder *db = open_store();
	size_t sizes[] = {SMALL, 100 * KiB};
	for (int i = 0; i < 2; i++) {
		PUT(db, "default", "a", "v", sizes[i]);
		const char *path = entry_path(db, "default", "a", "v");
		ASSERT_EQ(test_sh("printf 'Z' >> '%s'", path), 0);
		EXPECT_QUARANTINED(db, "default", "a", "v", path, sizes[i]);
		ASSERT_RC(db, larder_remove(db, "default", "a", 1, "v", 1), 0);
	}
	larder_close(db);
}

TEST(zero_byte_file_is_rejected)
{
	larder *db = open_store();
	PUT(db, "default", "z", "v", SMALL);
	const char *path = entry_path(db, "default", "z", "v");
	ASSERT_EQ(truncate(path, 0), 0);
	EXPECT_QUARANTINED(db, "default", "z", "v", path, SMALL);
	larder_close(db);
}

TEST(wrong_magic_is_rejected)
{
	larder *db = open_store();
	PUT(db, "default", "m", "v", SMALL);
	const char *path = entry_path(db, "default", "m", "v");
	size_t len;
	uint8_t *buf = read_file(path, &len);
	memcpy(buf, "\x89LARDEX\n", 8);
	write_file(path, buf, len);
	free(buf);
	EXPECT_QUARANTINED(db, "default", "m", "v", path, SMALL);

	/* Something that is not an entry at all. */
	path = entry_path(db, "default", "m", "v");
	static const char text[] = "<html>502 Bad Gateway</html>\n";
	write_file(path, text, sizeof text - 1);
	EXPECT_QUARANTINED(db, "default", "m", "v", path, SMALL);
	larder_close(db);
}

TEST(newer_format_entry_is_a_miss_but_not_quarantined)
{
	larder *db = open_store();
	PUT(db, "default", "n", "v", SMALL);
	const char *path = entry_path(db, "default", "n", "v");
	size_t len;
	uint8_t *buf = read_file(path, &len);
	ldr_hdr h;
	const char *why;
	ASSERT_EQ(ldr_hdr_decode(&h, buf, len, &why), 0);
	/* A well-formed header in every respect but its (newer) format. */
	uint32_t f = LDR_FORMAT + 1;
	memcpy(buf + 8, &f, 4); /* little-endian host */
	memset(buf + 88, 0, 16);
	uint8_t sum[16];
	ldr_xxh128(buf, h.hdr_len, sum);
	memcpy(buf + 88, sum, 16);
	write_file(path, buf, len);

	uint64_t newer = larder_counter(db, LARDER_CTR_NEWER_FORMAT);
	for (int i = 0; i < 3; i++)
		EXPECT_MISS(db, "default", "n", "v");
	ASSERT(larder_counter(db, LARDER_CTR_NEWER_FORMAT) > newer);
	/* Left for the newer larder that wrote it. */
	ASSERT_EQ(access(path, F_OK), 0);
	ASSERT_EQ(quarantined_files(), 0);
	ASSERT_EQ(larder_counter(db, LARDER_CTR_QUARANTINED), 0);
	size_t now_len;
	uint8_t *now = read_file(path, &now_len);
	ASSERT_EQ(now_len, len);
	ASSERT_MEM_EQ(now, buf, len);
	free(now);

	struct info_copy c = inspect(db, "default", "n", "v",
				     LARDER_WALK_VERIFY | LARDER_WALK_REPAIR);
	ASSERT_EQ(c.state, LARDER_STATE_NEWER);
	ASSERT_EQ(access(path, F_OK), 0);
	free(buf);
	larder_close(db);
}

TEST(header_naming_another_key_or_version_is_a_miss)
{
	larder *db = open_store();
	PUT(db, "default", "keyA", "v1", SMALL);
	PUT(db, "default", "keyB", "v1", SMALL);
	PUT(db, "default", "keyA", "v2", SMALL);
	const char *pa = entry_path(db, "default", "keyA", "v1");
	const char *pb = entry_path(db, "default", "keyB", "v1");
	const char *pa2 = entry_path(db, "default", "keyA", "v2");
	size_t len;
	uint8_t *a = read_file(pa, &len);

	/* A's file under B's name: a perfectly valid entry, for A. */
	write_file(pb, a, len);
	EXPECT_QUARANTINED(db, "default", "keyB", "v1", pb, SMALL);
	EXPECT_HIT(db, "default", "keyA", "v1", SMALL);

	/* A v1's file under A v2's name. */
	write_file(pa2, a, len);
	EXPECT_QUARANTINED(db, "default", "keyA", "v2", pa2, SMALL);
	EXPECT_HIT(db, "default", "keyA", "v1", SMALL);

	/* And under another namespace's name for the same key+version. */
	PUT(db, "other", "keyA", "v1", SMALL);
	const char *po = entry_path(db, "other", "keyA", "v1");
	write_file(po, a, len);
	EXPECT_QUARANTINED(db, "other", "keyA", "v1", po, SMALL);
	EXPECT_HIT(db, "default", "keyA", "v1", SMALL);
	free(a);
	larder_close(db);
}

TEST(flipped_byte_in_large_mapped_entry_is_rejected)
{
	larder *db = open_store();
	size_t size = 2 * MiB;
	PUT(db, "default", "big", "v", size);
	const char *path = entry_path(db, "default", "big", "v");
	uint32_t hl = hdr_len_of(path);
	uint64_t sums = larder_counter(db, LARDER_CTR_CHECKSUM_FAIL);
	xor_byte(path, hl + size / 2, 0x10);
	EXPECT_QUARANTINED(db, "default", "big", "v", path, size);
	ASSERT(larder_counter(db, LARDER_CTR_CHECKSUM_FAIL) > sums);

	/* The last byte, and the first. */
	path = entry_path(db, "default", "big", "v");
	xor_byte(path, hl + size - 1, 0x01);
	EXPECT_QUARANTINED(db, "default", "big", "v", path, size);
	path = entry_path(db, "default", "big", "v");
	xor_byte(path, hl, 0x80);
	EXPECT_QUARANTINED(db, "default", "big", "v", path, size);

	larder_entry *e;
	ASSERT_RC(db, larder_get(&e, db, "default", "big", 3, "v", 1), 0);
	ASSERT(larder_entry_is_mapped(e));
	larder_entry_release(e);
	larder_close(db);
}

TEST(corrupt_compressed_entry_is_rejected)
{
	larder *db = open_store();
	size_t size = 300 * KiB;
	ASSERT_RC(
	    db, put_flags(db, "default", "zc", "v", size, LARDER_PUT_ZSTD), 0);
	const char *path = entry_path(db, "default", "zc", "v");
	uint32_t hl = hdr_len_of(path);
	off_t total = file_size(path);
	xor_byte(path, hl + (total - hl) / 2, 0x04);
	EXPECT_QUARANTINED(db, "default", "zc", "v", path, size);
	larder_close(db);
}

TEST(corrupt_entry_under_head_is_quarantined_on_versionless_get)
{
	larder *db = open_store();
	PUT(db, "default", "h", "v1", SMALL);
	const char *path = entry_path(db, "default", "h", "v1");
	xor_byte(path, file_size(path) - 1, 0x01);
	EXPECT_MISS(db, "default", "h", NULL);
	ASSERT(access(path, F_OK) != 0);
	ASSERT_EQ(quarantined_files(), 1);
	larder_close(db);
}

/* ---------------------------------------------------------------------- */
/* Walk and inspect                                                        */

struct seen {
	int n;
	int ok, corrupt, expired, misplaced, newer;
	int bad_info;
	char corrupt_path[4096];
};

static int check_walked(const larder_entry_info *info, void *payload)
{
	struct seen *s = payload;
	s->n++;
	switch (info->state) {
	case LARDER_STATE_OK:
		s->ok++;
		break;
	case LARDER_STATE_CORRUPT:
		s->corrupt++;
		snprintf(s->corrupt_path, sizeof s->corrupt_path, "%s",
			 info->path);
		break;
	case LARDER_STATE_EXPIRED:
		s->expired++;
		break;
	case LARDER_STATE_MISPLACED:
		s->misplaced++;
		snprintf(s->corrupt_path, sizeof s->corrupt_path, "%s",
			 info->path);
		break;
	case LARDER_STATE_NEWER:
		s->newer++;
		break;
	}
	if (info->state != LARDER_STATE_OK &&
	    (!info->problem || !*info->problem))
		s->bad_info++;
	if (info->state != LARDER_STATE_OK || !info->key)
		return 0;
	/* OK entries were written by walk_fixture: key "w<i>", version
	 * "v<i%3>", size i*1000, meta "m<i>", namespace ns<i%2>. */
	char key[32];
	snprintf(key, sizeof key, "%.*s", (int)info->klen,
		 (const char *)info->key);
	int i = atoi(key + 1);
	char ver[8], meta[16], ns[8];
	snprintf(ver, sizeof ver, "v%d", i % 3);
	snprintf(meta, sizeof meta, "m%d", i);
	snprintf(ns, sizeof ns, "ns%d", i % 2);
	if (key[0] != 'w' || info->vlen != strlen(ver) ||
	    memcmp(info->ver, ver, info->vlen) != 0 ||
	    info->meta_len != strlen(meta) ||
	    memcmp(info->meta, meta, info->meta_len) != 0 ||
	    strcmp(info->ns, ns) != 0 || info->size != (uint64_t)i * 1000 ||
	    info->stored_size != info->size || info->compressed ||
	    info->expires != 0 || info->created <= 0 ||
	    access(info->path, F_OK) != 0 ||
	    info->file_size != (uint64_t)file_size(info->path))
		s->bad_info++;
	return 0;
}

static void walk_fixture(larder *db, int n)
{
	for (int i = 0; i < n; i++) {
		char key[32], ver[8], meta[16], ns[8];
		snprintf(key, sizeof key, "w%d", i);
		snprintf(ver, sizeof ver, "v%d", i % 3);
		snprintf(meta, sizeof meta, "m%d", i);
		snprintf(ns, sizeof ns, "ns%d", i % 2);
		size_t size = (size_t)i * 1000;
		uint8_t *buf = xmalloc(size);
		test_fill_pattern(buf, size, seed_kv(key, ver));
		larder_put_opts po = LARDER_PUT_OPTS_INIT;
		po.meta = meta;
		po.meta_len = strlen(meta);
		ASSERT_RC(db,
			  larder_put(db, ns, key, strlen(key), ver, strlen(ver),
				     buf, size, &po),
			  0);
		free(buf);
	}
}

static int stop_walk(const larder_entry_info *info, void *payload)
{
	(void)info;
	(*(int *)payload)++;
	return 7;
}

struct slice_seen {
	int slice;     /* the slice being walked */
	int wrong;     /* entries whose file name is in another slice */
	int times[40]; /* how often each key w<i> was seen */
};

static int note_slice(const larder_entry_info *info, void *payload)
{
	struct slice_seen *s = payload;
	const char *base = strrchr(info->path, '/');
	char hex[3] = {base[1], base[2], 0};
	if ((int)strtol(hex, NULL, 16) != s->slice)
		s->wrong++;
	int i = atoi((const char *)info->key + 1);
	if (i >= 0 && i < 40)
		s->times[i]++;
	return 0;
}

TEST(walk_slices_cover_a_namespace_each_entry_once)
{
	larder *db = open_store();
	walk_fixture(db, 40); /* ns1 holds w1, w3, ... w39 */
	struct slice_seen s;
	memset(&s, 0, sizeof s);
	for (s.slice = 0; s.slice < LARDER_WALK_SLICES; s.slice++)
		ASSERT_RC(db,
			  larder_walk_slice(db, "ns1", s.slice, s.slice + 1, 0,
					    note_slice, &s),
			  0);
	ASSERT_EQ(s.wrong, 0);
	for (int i = 0; i < 40; i++)
		ASSERT_EQ(s.times[i], i % 2);
	/* Every slice at once is the whole namespace. */
	memset(&s, 0, sizeof s);
	s.slice = -1;
	ASSERT_RC(db,
		  larder_walk_slice(db, "ns1", 0, LARDER_WALK_SLICES, 0,
				    note_slice, &s),
		  0);
	for (int i = 0; i < 40; i++)
		ASSERT_EQ(s.times[i], i % 2);
	ASSERT_EQ(larder_walk_slice(db, NULL, 0, 1, 0, note_slice, &s),
		  LARDER_EINVAL);
	ASSERT_EQ(larder_walk_slice(db, "ns1", 1, 1, 0, note_slice, &s),
		  LARDER_EINVAL);
	ASSERT_EQ(larder_walk_slice(db, "ns1", 0, 257, 0, note_slice, &s),
		  LARDER_EINVAL);
	larder_close(db);
}

TEST(walk_lists_every_entry_with_correct_info)
{
	larder *db = open_store();
	walk_fixture(db, 40);
	struct seen s;
	memset(&s, 0, sizeof s);
	ASSERT_RC(db, larder_walk(db, NULL, 0, check_walked, &s), 0);
	ASSERT_EQ(s.n, 40);
	ASSERT_EQ(s.ok, 40);
	ASSERT_EQ(s.bad_info, 0);

	memset(&s, 0, sizeof s);
	ASSERT_RC(db,
		  larder_walk(db, "ns1", LARDER_WALK_VERIFY, check_walked, &s),
		  0);
	ASSERT_EQ(s.n, 20);
	ASSERT_EQ(s.ok, 20);
	ASSERT_EQ(s.bad_info, 0);

	memset(&s, 0, sizeof s);
	int rc = larder_walk(db, "empty-ns", 0, check_walked, &s);
	ASSERT(rc == 0 || rc == LARDER_ENOTFOUND);
	ASSERT_EQ(s.n, 0);

	int calls = 0;
	ASSERT_EQ(larder_walk(db, NULL, 0, stop_walk, &calls), 7);
	ASSERT_EQ(calls, 1);
	larder_close(db);
}

TEST(walk_verify_reports_corrupt_entries_and_repair_quarantines_them)
{
	larder *db = open_store();
	walk_fixture(db, 12);
	/* w5: payload flip (only VERIFY sees it); w7: header flip;
	 * w9: w3's file under w9's name (misplaced). */
	const char *p5 = entry_path(db, "ns1", "w5", "v2");
	xor_byte(p5, file_size(p5) - 100, 0x01);
	const char *p7 = entry_path(db, "ns1", "w7", "v1");
	xor_byte(p7, 60, 0x01);
	const char *p9 = entry_path(db, "ns1", "w9", "v0");
	const char *p3 = entry_path(db, "ns1", "w3", "v0");
	size_t len;
	uint8_t *b3 = read_file(p3, &len);
	write_file(p9, b3, len);
	free(b3);

	struct seen s;
	memset(&s, 0, sizeof s);
	ASSERT_RC(db, larder_walk(db, NULL, 0, check_walked, &s), 0);
	ASSERT_EQ(s.n, 12);
	ASSERT_EQ(s.corrupt, 1); /* header only: w7 */
	ASSERT_EQ(s.misplaced, 1);
	ASSERT_EQ(s.bad_info, 0);

	memset(&s, 0, sizeof s);
	ASSERT_RC(
	    db, larder_walk(db, NULL, LARDER_WALK_VERIFY, check_walked, &s), 0);
	ASSERT_EQ(s.n, 12);
	ASSERT_EQ(s.corrupt, 2);
	ASSERT_EQ(s.misplaced, 1);
	ASSERT_EQ(s.ok, 9);
	ASSERT_EQ(s.bad_info, 0);
	/* Walking changed nothing. */
	ASSERT_EQ(quarantined_files(), 0);
	ASSERT_EQ(access(p5, F_OK), 0);
	ASSERT_EQ(access(p7, F_OK), 0);
	ASSERT_EQ(access(p9, F_OK), 0);

	/* inspect reports without hiding or moving. */
	struct info_copy c = inspect(db, "ns1", "w5", "v2", LARDER_WALK_VERIFY);
	ASSERT_EQ(c.state, LARDER_STATE_CORRUPT);
	c = inspect(db, "ns1", "w5", "v2", 0);
	ASSERT_EQ(c.state, LARDER_STATE_OK);
	c = inspect(db, "ns1", "w9", "v0", 0);
	ASSERT_EQ(c.state, LARDER_STATE_MISPLACED);
	ASSERT_EQ(quarantined_files(), 0);

	memset(&s, 0, sizeof s);
	ASSERT_RC(db,
		  larder_walk(db, NULL, LARDER_WALK_VERIFY | LARDER_WALK_REPAIR,
			      check_walked, &s),
		  0);
	ASSERT_EQ(s.corrupt + s.misplaced, 3);
	ASSERT_EQ(quarantined_files(), 3);
	ASSERT(access(p5, F_OK) != 0);
	ASSERT(access(p7, F_OK) != 0);
	ASSERT(access(p9, F_OK) != 0);

	memset(&s, 0, sizeof s);
	ASSERT_RC(
	    db, larder_walk(db, NULL, LARDER_WALK_VERIFY, check_walked, &s), 0);
	ASSERT_EQ(s.n, 9);
	ASSERT_EQ(s.ok, 9);
	ASSERT_EQ(s.bad_info, 0);
	/* The good ones still read back. */
	EXPECT_HIT(db, "ns1", "w3", "v0", 3000);
	EXPECT_MISS(db, "ns1", "w5", "v2");
	larder_close(db);
}

TEST(inspect_repair_quarantines_one_corrupt_entry)
{
	larder *db = open_store();
	PUT(db, "default", "k", "v", 5000);
	struct info_copy none;
	memset(&none, 0, sizeof none);
	ASSERT_RC(db,
		  larder_inspect(db, "default", "nope", 4, "v", 1, 0, copy_info,
				 &none),
		  LARDER_ENOTFOUND);
	ASSERT_EQ(none.calls, 0);
	const char *p = entry_path(db, "default", "k", "v");
	xor_byte(p, file_size(p) - 1, 0x02);
	struct info_copy c = inspect(db, "default", "k", "v",
				     LARDER_WALK_VERIFY | LARDER_WALK_REPAIR);
	ASSERT_EQ(c.state, LARDER_STATE_CORRUPT);
	ASSERT(access(p, F_OK) != 0);
	ASSERT_EQ(quarantined_files(), 1);
	EXPECT_MISS(db, "default", "k", "v");
	larder_close(db);
}

/* ---------------------------------------------------------------------- */
/* Hostile or odd things in the store                                     */

TEST(fifo_at_an_entry_or_head_path_does_not_hang_readers)
{
	/* Opening a FIFO for reading blocks until a writer comes: a reader
	 * must never wait on one (every wait is bounded). */
	larder *db = open_store();
	PUT(db, "default", "f", "v", SMALL);
	char hp[4096];
	head_path("default", hp, sizeof hp);
	const char *path = entry_path(db, "default", "f", "v");
	ASSERT_EQ(unlink(path), 0);
	ASSERT_EQ(mkfifo(path, 0644), 0);
	alarm(3); /* a hang fails the test with SIGALRM */
	larder_entry *e;
	ASSERT(larder_get(&e, db, "default", "f", 1, "v", 1) < 0);
	ASSERT(larder_get(&e, db, "default", "f", 1, NULL, 0) < 0);
	struct seen s;
	memset(&s, 0, sizeof s);
	larder_walk(db, NULL, LARDER_WALK_VERIFY, check_walked, &s);
	struct info_copy c;
	memset(&c, 0, sizeof c);
	larder_inspect(db, "default", "f", 1, "v", 1, 0, copy_info, &c);

	/* A head linked to the entry went when its lookup found the entry
	 * gone (quarantined above); a hint file is still there. */
	ASSERT(unlink(hp) == 0 || errno == ENOENT);
	ASSERT_EQ(mkfifo(hp, 0644), 0);
	ASSERT(larder_get(&e, db, "default", "f", 1, NULL, 0) < 0);
	alarm(0);
	larder_close(db);
}

/* Make a copy of the entry file outside the store and put a symlink to it
 * where the entry was; returns the copy's path. */
static const char *plant_symlink(const char *path)
{
	static char outside[4096];
	snprintf(outside, sizeof outside, "%s", test_path("outside-entry"));
	size_t len;
	uint8_t *buf = read_file(path, &len);
	int fd = open(outside, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	ASSERT(fd >= 0);
	ASSERT_EQ(write(fd, buf, len), (ssize_t)len);
	close(fd);
	free(buf);
	ASSERT_EQ(unlink(path), 0);
	ASSERT_EQ(symlink(outside, path), 0);
	return outside;
}

TEST(symlinked_entry_file_is_never_followed)
{
	larder *db = open_store();
	PUT(db, "default", "s", "v", SMALL);
	const char *path = entry_path(db, "default", "s", "v");
	const char *outside = plant_symlink(path);
	off_t before = file_size(outside);
	larder_entry *e = NULL;
	int rc = larder_get(&e, db, "default", "s", 1, "v", 1);
	if (rc == 0)
		test_fail(__FILE__, __LINE__, "served an entry via a symlink");
	ASSERT(e == NULL);
	/* The target outside the store is neither moved nor changed. */
	ASSERT_EQ(file_size(outside), before);
	larder_close(db);
}

TEST(symlinked_fanout_directory_is_never_followed)
{
	larder *db = open_store();
	PUT(db, "default", "s", "v", SMALL);
	const char *path = entry_path(db, "default", "s", "v");
	/* Move the whole last fan-out directory away; a symlink replaces
	 * it, pointing at the real (valid) entry. */
	char dir[4096];
	snprintf(dir, sizeof dir, "%s", path);
	*strrchr(dir, '/') = '\0';
	const char *moved = test_path("outside-dir");
	ASSERT_EQ(rename(dir, moved), 0);
	ASSERT_EQ(symlink(moved, dir), 0);
	larder_entry *e = NULL;
	int rc = larder_get(&e, db, "default", "s", 1, "v", 1);
	if (rc == 0)
		test_fail(__FILE__, __LINE__,
			  "served an entry through a symlinked directory");
	larder_close(db);
}

TEST(symlink_planted_at_an_entry_path_does_not_block_a_refill)
{
	/* Whatever sits at an entry's name that is not a valid entry must
	 * not make the key a permanent miss: the next put publishes. */
	larder *db = open_store();
	PUT(db, "default", "s", "v", SMALL);
	const char *path = entry_path(db, "default", "s", "v");
	plant_symlink(path);
	larder_entry *e;
	ASSERT(larder_get(&e, db, "default", "s", 1, "v", 1) != 0);
	int rc = put_flags(db, "default", "s", "v", SMALL, 0);
	if (rc != 0)
		test_fail(__FILE__, __LINE__,
			  "re-put over a planted symlink: %d (%s): %s", rc,
			  larder_strerror(rc), larder_errmsg(db));
	EXPECT_HIT(db, "default", "s", "v", SMALL);
	struct stat st;
	ASSERT_EQ(lstat(path, &st), 0);
	ASSERT(S_ISREG(st.st_mode));
	larder_close(db);
}

/* Rewrite the raw (uncompressed) length of the zstd entry at path,
 * keeping the header checksum valid. */
static void set_raw_len(const char *path, uint64_t raw)
{
	size_t len;
	uint8_t *buf = read_file(path, &len);
	ldr_hdr h;
	const char *why;
	ASSERT_EQ(ldr_hdr_decode(&h, buf, len, &why), 0);
	ASSERT_EQ(h.codec, LDR_CODEC_ZSTD);
	for (int i = 0; i < 8; i++)
		buf[48 + i] = (uint8_t)(raw >> (8 * i));
	memset(buf + 88, 0, 16);
	uint8_t sum[16];
	ldr_xxh128(buf, h.hdr_len, sum);
	memcpy(buf + 88, sum, 16);
	ASSERT_EQ(ldr_hdr_decode(&h, buf, len, &why), 0);
	write_file(path, buf, len);
	free(buf);
}

TEST(zstd_entry_whose_raw_length_lies_is_a_miss)
{
	/* A header that passes its checksum but whose uncompressed length
	 * disagrees with the zstd frame (a buggy or hostile writer): a
	 * miss and quarantine, never an error or a short read. */
	larder *db = open_store();
	size_t size = 100 * KiB;
	uint8_t *buf = xmalloc(size);
	memset(buf, 'a', size);
	larder_put_opts po = LARDER_PUT_OPTS_INIT;
	po.flags = LARDER_PUT_ZSTD;
	const uint64_t lies[] = {size + 1, size - 1, 0, (uint64_t)1 << 50};
	for (size_t i = 0; i < sizeof lies / sizeof lies[0]; i++) {
		ASSERT_RC(
		    db,
		    larder_put(db, "default", "z", 1, "v", 1, buf, size, &po),
		    0);
		const char *path = entry_path(db, "default", "z", "v");
		set_raw_len(path, lies[i]);
		int q0 = quarantined_files();
		larder_entry *e;
		int rc = larder_get(&e, db, "default", "z", 1, "v", 1);
		if (rc != LARDER_ENOTFOUND)
			test_fail(__FILE__, __LINE__,
				  "raw length %llu: get returned %d (%s)",
				  (unsigned long long)lies[i], rc,
				  larder_strerror(rc));
		ASSERT_EQ(quarantined_files(), q0 + 1);
	}
	free(buf);
	larder_close(db);
}

TEST(trust_local_still_checks_the_header)
{
	larder *db = open_store();
	PUT(db, "default", "t", "v", SMALL);
	PUT(db, "default", "u", "v", SMALL);
	larder_close(db);
	larder_opts o = LARDER_OPTS_INIT;
	o.flags = LARDER_OPEN_TRUST_LOCAL;
	db = open_store_opts(&o);
	EXPECT_HIT(db, "default", "t", "v", SMALL);
	const char *path = entry_path(db, "default", "t", "v");
	xor_byte(path, 20, 0x01); /* namespace length */
	EXPECT_QUARANTINED(db, "default", "t", "v", path, SMALL);
	/* A truncated payload is framing, not content: still caught. */
	path = entry_path(db, "default", "u", "v");
	ASSERT_EQ(truncate(path, file_size(path) - 1), 0);
	EXPECT_QUARANTINED(db, "default", "u", "v", path, SMALL);
	larder_close(db);
}

/* Read every file under dir to its end, so that a relatime mount has
 * moved each access time past its change time once: later reads leave
 * the atime alone for a day, and any change to it is someone's write. */
static void read_all_files(const char *dir)
{
	ASSERT_EQ(test_sh("find '%s' -type f -exec cat {} + >/dev/null", dir),
		  0);
}

/* Everything about every file under dir that a write could change:
 * name, mode, size, a digest of the content, mtime, ctime, and with
 * `atime` the access time too. */
static void snapshot(const char *dir, char *out, size_t cap, int atime)
{
	DIR *d = opendir(dir);
	ASSERT(d != NULL);
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		char sub[4096];
		join(sub, sizeof sub, dir, de->d_name);
		struct stat st;
		ASSERT_EQ(lstat(sub, &st), 0);
		uint64_t h = 1469598103934665603ull; /* FNV-1a of the bytes */
		if (S_ISREG(st.st_mode)) {
			int fd = open(sub, O_RDONLY | O_NOATIME);
			if (fd < 0) /* O_NOATIME needs the owner */
				fd = open(sub, O_RDONLY);
			ASSERT(fd >= 0);
			unsigned char b[65536];
			ssize_t n;
			while ((n = read(fd, b, sizeof b)) > 0)
				for (ssize_t i = 0; i < n; i++)
					h = (h ^ b[i]) * 1099511628211ull;
			ASSERT(n == 0);
			close(fd);
		}
		if (!atime)
			st.st_atim = (struct timespec){0, 0};
		size_t len = strlen(out);
		int w =
		    snprintf(out + len, cap - len,
			     "%s %o %lld %016llx a%lld.%09ld m%lld.%09ld "
			     "c%lld.%09ld\n",
			     sub, st.st_mode, (long long)st.st_size,
			     (unsigned long long)h,
			     (long long)st.st_atim.tv_sec, st.st_atim.tv_nsec,
			     (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec,
			     (long long)st.st_ctim.tv_sec, st.st_ctim.tv_nsec);
		ASSERT(w > 0 && (size_t)w < cap - len);
		if (S_ISDIR(st.st_mode))
			snapshot(sub, out, cap, atime);
	}
	closedir(d);
}

/* Let the clock move past the timestamps' granularity, so that a write
 * shows in a time (not a wait for anything). */
static void past_granularity(void)
{
	struct timespec ts = {0, 30 * 1000 * 1000};
	nanosleep(&ts, NULL);
}

TEST(reads_change_nothing_on_disk)
{
	larder *db = open_store();
	PUT(db, "default", "a", "v1", 100);
	PUT(db, "default", "a", "v2", 200 * KiB);
	ASSERT_RC(db, put_flags(db, "default", "b", "v", 5000, LARDER_PUT_ZSTD),
		  0);
	larder_put_opts po = LARDER_PUT_OPTS_INIT;
	po.ttl_seconds = 3600;
	ASSERT_RC(db, larder_put(db, "default", "c", 1, "v", 1, "c", 1, &po),
		  0);
	size_t cap = 1 << 20;
	char *before = xmalloc(cap), *after = xmalloc(cap);
	before[0] = after[0] = '\0';
	/* The recency touch is on here: access times are left out. */
	snapshot(store_dir(), before, cap, 0);
	past_granularity();
	for (int i = 0; i < 20; i++) {
		EXPECT_HIT(db, "default", "a", "v1", 100);
		EXPECT_HIT(db, "default", "a", "v2", 200 * KiB);
		EXPECT_HEAD(db, "default", "a", "v2", 200 * KiB);
		EXPECT_HIT(db, "default", "b", "v", 5000);
		EXPECT_MISS(db, "default", "a", "v3");
		EXPECT_MISS(db, "default", "nokey", NULL);
		EXPECT_MISS(db, "nons", "a", "v1");
		larder_entry *e;
		ASSERT_RC(db, larder_get(&e, db, "default", "c", 1, "v", 1), 0);
		larder_entry_release(e);
	}
	struct seen s;
	memset(&s, 0, sizeof s);
	ASSERT_RC(
	    db, larder_walk(db, NULL, LARDER_WALK_VERIFY, check_walked, &s), 0);
	inspect(db, "default", "a", "v1", LARDER_WALK_VERIFY);
	int64_t ttl;
	ASSERT_RC(db, larder_ns_get_ttl(&ttl, db, "nons"), 0);
	snapshot(store_dir(), after, cap, 0);
	if (strcmp(before, after) != 0)
		test_fail(__FILE__, __LINE__,
			  "reads changed the store:\n%s--\n%s", before, after);
	free(before);
	free(after);
	larder_close(db);
}

TEST(a_hit_from_open_to_close_changes_nothing_on_disk)
{
	/* A store with entries, a head and counters already written, as a
	 * store in use has; the recency touch off (an interval of a year),
	 * so that atime is checked too: the touch is tested apart. */
	larder *db = open_store();
	larder_limits l = LARDER_LIMITS_INIT;
	l.touch_interval = 365 * 86400;
	ASSERT_RC(db, larder_limits_set(db, NULL, &l), 0);
	PUT(db, "default", "a", "v1", 4 * KiB);
	PUT(db, "default", "a", "v2", 200 * KiB);
	EXPECT_MISS(db, "default", "nokey", "v");
	larder_close(db);
	past_granularity();
	read_all_files(store_dir());
	size_t cap = 1 << 20;
	char *before = xmalloc(cap), *after = xmalloc(cap);
	before[0] = after[0] = '\0';
	snapshot(store_dir(), before, cap, 1);
	past_granularity();
	/* What a one-shot reader does: open, hit (with a version and by
	 * the head), close; the same hits again within one handle, so that
	 * the memo serves the third of each. */
	for (int i = 0; i < 3; i++) {
		larder_opts o = LARDER_OPTS_INIT;
		larder_close(open_store_opts(&o));
		db = open_store_opts(&o);
		for (int k = 0; k <= i; k++) {
			EXPECT_HIT(db, "default", "a", "v1", 4 * KiB);
			EXPECT_HEAD(db, "default", "a", "v2", 200 * KiB);
		}
		if (i == 2)
			ASSERT(larder_counter(db, LARDER_CTR_MEMO_HITS) >= 2);
		larder_close(db);
	}
	snapshot(store_dir(), after, cap, 1);
	if (strcmp(before, after) != 0)
		test_fail(__FILE__, __LINE__,
			  "a hit changed the store:\n%s--\n%s", before, after);
	/* A later process that misses writes its own counts, and only
	 * them: the one-shot hits are not counted store-wide (the cost,
	 * docs/operations.md), and requests still add up. */
	db = open_store();
	EXPECT_MISS(db, "default", "nokey", "v");
	larder_close(db);
	ASSERT_EQ(test_sh("cat '%s'/stats/shard-* | awk '/^(hits|memo_hits) / "
			  "{h += $2} /^misses / {m += $2} /^requests / {r += "
			  "$2} END {exit !(h == 0 && m == 2 && r == 2)}'",
			  store_dir()),
		  0);
	free(before);
	free(after);
}

TEST(a_long_lived_handle_writes_its_hits_at_close)
{
	larder *db = open_store();
	PUT(db, "default", "a", "v1", 100);
	larder_close(db);
	db = open_store();
	EXPECT_HIT(db, "default", "a", "v1", 100);
	larder_close(db); /* young and hits alone: not written */
	db = open_store();
	EXPECT_HIT(db, "default", "a", "v1", 100);
	ldr_stats_age(db, 61);
	larder_close(db); /* open a minute: written */
	ASSERT_EQ(test_sh("cat '%s'/stats/shard-* | awk '/^hits / {s += $2} "
			  "END {exit s != 1}'",
			  store_dir()),
		  0);
	ASSERT_EQ(test_sh("cat '%s'/stats/shard-* | awk '/^requests / {s += "
			  "$2} END {exit s != 1}'",
			  store_dir()),
		  0);
}

TEST(the_touch_of_a_reader_who_is_not_the_owner_never_moves_mtime)
{
	/* Only the owner may set the atime alone; anyone with write access
	 * may set both to now (futimens(fd, NULL)). Entries are never
	 * writable, but one made so by hand must not have its mtime moved
	 * by a member's hit either. */
	if (geteuid() != 0)
		test_skip("needs root: a reader of another uid");
	const uid_t nobody = 65534;
	larder *db = NULL;
	larder_opts o = LARDER_OPTS_INIT;
	o.flags = LARDER_OPEN_CREATE;
	o.create_mode = 0644;
	ASSERT_EQ(chmod(test_dir(), 0755), 0);
	ASSERT_RC(NULL, larder_open(&db, store_dir(), &o), 0);
	larder_limits l = LARDER_LIMITS_INIT;
	l.touch_interval = 0; /* touch on every hit */
	ASSERT_RC(db, larder_limits_set(db, NULL, &l), 0);
	PUT(db, "default", "a", "v1", 100);
	const char *path = entry_path(db, "default", "a", "v1");
	larder_close(db);
	char entry[4096];
	snprintf(entry, sizeof entry, "%s", path);
	ASSERT_EQ(chmod(entry, 0666), 0);
	struct timespec old[2] = {{1000000000, 0}, {1000000000, 0}};
	ASSERT_EQ(utimensat(AT_FDCWD, entry, old, 0), 0);
	struct stat st0, st1;
	ASSERT_EQ(stat(entry, &st0), 0);
	past_granularity();
	pid_t p = fork();
	ASSERT(p >= 0);
	if (p == 0) {
		if (setgroups(0, NULL) != 0 || setgid(nobody) != 0 ||
		    setuid(nobody) != 0)
			_exit(2);
		larder *r = NULL;
		if (larder_open(&r, store_dir(), NULL) != 0)
			_exit(3);
		larder_entry *e;
		if (larder_get(&e, r, "default", "a", 1, "v1", 2) != 0)
			_exit(4);
		larder_entry_release(e);
		larder_close(r);
		_exit(0);
	}
	int ws;
	ASSERT(waitpid(p, &ws, 0) == p && WIFEXITED(ws));
	ASSERT_EQ(WEXITSTATUS(ws), 0);
	ASSERT_EQ(stat(entry, &st1), 0);
	ASSERT_EQ(st1.st_mtim.tv_sec, st0.st_mtim.tv_sec);
	ASSERT_EQ(st1.st_mtim.tv_nsec, st0.st_mtim.tv_nsec);
	ASSERT_EQ(st1.st_ctim.tv_sec, st0.st_ctim.tv_sec);
	ASSERT_EQ(st1.st_ctim.tv_nsec, st0.st_ctim.tv_nsec);
}

TEST(oversized_key_or_version_or_bad_ttl_is_einval)
{
	larder *db = open_store();
	size_t big = (64u << 20) + 1;
	uint8_t *k = calloc(1, big);
	ASSERT(k != NULL);
	larder_writer *w = NULL;
	ASSERT_RC(db,
		  larder_writer_begin(&w, db, "default", k, big, "v", 1, NULL),
		  LARDER_EINVAL);
	ASSERT(w == NULL);
	ASSERT_RC(db,
		  larder_writer_begin(&w, db, "default", "k", 1, k, big, NULL),
		  LARDER_EINVAL);
	free(k);
	larder_put_opts po = LARDER_PUT_OPTS_INIT;
	po.ttl_seconds = LARDER_TTL_NEVER - 1;
	ASSERT_RC(db, larder_put(db, "default", "k", 1, "v", 1, "x", 1, &po),
		  LARDER_EINVAL);
	po.ttl_seconds = 0;
	po.version = 999; /* a future opts layout this build cannot read */
	int rc = larder_put(db, "default", "k", 1, "v", 1, "x", 1, &po);
	ASSERT(rc == LARDER_EINVAL || rc == 0);
	expect_no_temp_files();
	larder_close(db);
}

TEST(walk_repair_leaves_a_writer_in_progress_alone)
{
	larder *db = open_store();
	size_t size = 300 * KiB;
	uint8_t *buf = xmalloc(size);
	test_fill_pattern(buf, size, seed_kv("w", "v"));
	larder_writer *w;
	ASSERT_RC(db,
		  larder_writer_begin(&w, db, "default", "w", 1, "v", 1, NULL),
		  0);
	/* Past the threshold: the payload is on disk in a temp file. */
	ASSERT_RC(db, larder_writer_write(w, buf, size / 2), 0);
	ASSERT_EQ(temp_files(), 1);
	struct seen s;
	memset(&s, 0, sizeof s);
	ASSERT_RC(db,
		  larder_walk(db, NULL, LARDER_WALK_VERIFY | LARDER_WALK_REPAIR,
			      check_walked, &s),
		  0);
	ASSERT_EQ(s.n, 0);
	ASSERT_EQ(temp_files(), 1);
	ASSERT_EQ(quarantined_files(), 0);
	ASSERT_RC(db, larder_writer_write(w, buf + size / 2, size - size / 2),
		  0);
	ASSERT_RC(db, larder_writer_commit(w), 0);
	EXPECT_HIT(db, "default", "w", "v", size);
	expect_no_temp_files();
	free(buf);
	larder_close(db);
}

/* A writer's umask must not narrow the store's mode: other users of a
 * shared store have to read what this process publishes. */
TEST(entries_take_the_store_mode_whatever_the_umask)
{
	larder_opts o = LARDER_OPTS_INIT;
	o.create_mode = 0644; /* readable by all */
	larder *db = open_store_opts(&o);
	umask(077);
	ASSERT_RC(db, larder_put(db, "default", "k", 1, "v", 1, "x", 1, NULL),
		  0);
	struct stat st;
	const char *path = entry_path(db, "default", "k", "v");
	ASSERT_EQ(stat(path, &st), 0);
	ASSERT_EQ(st.st_mode & 07777, 0444); /* and written by nobody */
	char dir[4096];
	snprintf(dir, sizeof dir, "%s", path);
	*strrchr(dir, '/') = '\0';
	ASSERT_EQ(stat(dir, &st), 0);
	ASSERT_EQ(st.st_mode & 07777, 0755);
	larder_close(db);
}

/* ---------------------------------------------------------------------- */
/* Per-handle slots (src/store/slot.h, docs/architecture.md)               */

/* The order in which slot destructors ran, and for which values. */
static int slot_gone[8];
static int slot_ngone;

static void slot_destroy(void *ptr)
{
	if (slot_ngone < 8)
		slot_gone[slot_ngone++] = *(int *)ptr;
}

TEST(slots_hang_state_compare_and_set_and_close_frees_last_first)
{
	/* More keys than a handle has slots. */
	static const char k1, k2, spare[32];
	static int a = 1, b = 2, c = 3;
	slot_ngone = 0;
	larder *db = open_store();
	ASSERT(ldr_slot_get(db, &k1) == NULL);
	ASSERT_EQ(ldr_slot_swap(db, &k1, NULL, &a, slot_destroy), 0);
	ASSERT(ldr_slot_get(db, &k1) == &a);
	/* Another thread was first: nothing changes, the caller keeps b. */
	ASSERT_EQ(ldr_slot_swap(db, &k1, NULL, &b, slot_destroy), 1);
	ASSERT(ldr_slot_get(db, &k1) == &a);
	ASSERT_EQ(slot_ngone, 0);
	/* Replacing what is there destroys it. */
	ASSERT_EQ(ldr_slot_swap(db, &k1, &a, &b, slot_destroy), 0);
	ASSERT(ldr_slot_get(db, &k1) == &b);
	ASSERT_EQ(slot_ngone, 1);
	ASSERT_EQ(slot_gone[0], 1);
	ASSERT_EQ(ldr_slot_swap(db, &k2, NULL, &c, slot_destroy), 0);
	/* Every slot taken: refused, not overwritten. */
	int full = 0;
	for (int i = 0; i < 32 && !full; i++)
		full = ldr_slot_swap(db, &spare[i], NULL, NULL, NULL) == -1;
	ASSERT(full);
	ASSERT(ldr_slot_get(db, &k1) == &b && ldr_slot_get(db, &k2) == &c);
	larder_close(db);
	/* k2 was set after k1: destroyed first. */
	ASSERT_EQ(slot_ngone, 3);
	ASSERT_EQ(slot_gone[1], 3);
	ASSERT_EQ(slot_gone[2], 2);
}
