/*
 * test_head.c — the head cache (docs/format.md, "Head hints"): a repeat
 * version-less lookup takes the version from the handle's memory; a head
 * another handle published, replaced or removed is followed once the
 * cache's check falls due, and this handle's own at once; a removed
 * entry is a miss; the cache keeps to its bound and a forked child
 * starts without it.
 *
 * Time is driven through ldr_test_head_cache_age() and
 * ldr_test_memo_age(), never slept.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "store_util.h"
#include "testing.h"

/* A check interval no stall of the machine reaches between two calls,
 * so that "still served within it" does not depend on its speed. */
#define CHECK_MS 60000u

static larder *open_with(unsigned flags, unsigned entries)
{
	larder_opts o = LARDER_OPTS_INIT;
	o.flags = flags;
	o.memo_check_ms = CHECK_MS;
	o.memo_entries = entries;
	return open_store_opts(&o);
}

/* The test's store, its head cache checked every CHECK_MS. */
static larder *open_cached(void)
{
	return open_with(0, 0);
}

static void put_at(int line, larder *db, const char *key, const char *ver)
{
	char payload[64];
	snprintf(payload, sizeof payload, "%s of %s", ver, key);
	int rc = larder_put(db, "default", key, strlen(key), ver, strlen(ver),
			    payload, strlen(payload), NULL);
	if (rc != 0)
		test_fail(__FILE__, line, "put(%s, %s): %d (%s): %s", key, ver,
			  rc, larder_strerror(rc), larder_errmsg(db));
}
#define PUT(db, key, ver) put_at(__LINE__, db, key, ver)

/* A version-less get of key that must hit `ver`, with its payload. */
static void head_is_at(int line, larder *db, const char *key, const char *ver)
{
	larder_entry *e = NULL;
	int rc = larder_get(&e, db, "default", key, strlen(key), NULL, 0);
	if (rc != 0)
		test_fail(__FILE__, line, "get(%s, NULL): %d (%s): %s, want %s",
			  key, rc, larder_strerror(rc), larder_errmsg(db), ver);
	size_t vlen;
	const void *v = larder_entry_version(&vlen, e);
	char payload[64];
	snprintf(payload, sizeof payload, "%s of %s", ver, key);
	if (vlen != strlen(ver) || memcmp(v, ver, vlen) != 0 ||
	    larder_entry_size(e) != strlen(payload) ||
	    memcmp(larder_entry_data(e), payload, strlen(payload)) != 0)
		test_fail(__FILE__, line,
			  "get(%s, NULL): got version '%.*s', "
			  "want '%s'",
			  key, (int)vlen, (const char *)v, ver);
	larder_entry_release(e);
}
#define HEAD_IS(db, key, ver) head_is_at(__LINE__, db, key, ver)

static void head_miss_at(int line, larder *db, const char *key)
{
	larder_entry *e = NULL;
	int rc = larder_get(&e, db, "default", key, strlen(key), NULL, 0);
	if (rc != LARDER_ENOTFOUND)
		test_fail(__FILE__, line, "get(%s, NULL): %d (%s), want a miss",
			  key, rc, larder_strerror(rc));
}
#define HEAD_MISS(db, key) head_miss_at(__LINE__, db, key)

/* Publish (key, ver) through db and look it up twice: the second lookup
 * leaves it in db's head cache (remembered at its second read). */
static void put_remembered_at(int line, larder *db, const char *key,
			      const char *ver)
{
	put_at(line, db, key, ver);
	head_is_at(line, db, key, ver);
	head_is_at(line, db, key, ver);
}
#define PUT_REMEMBERED(db, key, ver) put_remembered_at(__LINE__, db, key, ver)

/* HEAD_IS, after which db's head cache holds n records. */
static void head_is_holding_at(int line, larder *db, const char *key,
			       const char *ver, size_t n)
{
	head_is_at(line, db, key, ver);
	size_t held = ldr_test_head_cache_size(db);
	if (held != n)
		test_fail(__FILE__, line, "head cache holds %zu, want %zu",
			  held, n);
}
#define HEAD_IS_HOLDING(db, key, ver, n)                                       \
	head_is_holding_at(__LINE__, db, key, ver, n)

static const char *head_path(const char *key)
{
	uint8_t h[16];
	char hex[33], rel[LDR_REL_MAX];
	ldr_head_hash("default", key, strlen(key), h);
	ldr_hex(h, 16, hex);
	ldr_file_rel(rel, "default", 'h', hex);
	return test_path("store/%s", rel);
}

/* Both of a handle's clocks: the head cache's check and the memo's
 * (which serves the entry a cached head names) fall due. */
static void age(larder *db, int64_t ms)
{
	ldr_test_head_cache_age(db, ms);
	ldr_test_memo_age(db, ms);
}

/* ---------------------------------------------------------------------- */

/* ---------------------------------------------------------------------- */
/* The head as a hard link to the newest entry (docs/format.md "Head
 * hint"): one open serves a version-less lookup.                         */

static const char *entry_file(const char *key, const char *ver)
{
	uint8_t h[16];
	char hex[33], rel[LDR_REL_MAX];
	ldr_entry_hash("default", key, strlen(key), ver, strlen(ver), h);
	ldr_hex(h, 16, hex);
	ldr_file_rel(rel, "default", 'e', hex);
	return test_path("store/%s", rel);
}

static struct stat stat_of(int line, const char *path)
{
	struct stat st;
	if (lstat(path, &st) != 0)
		test_fail(__FILE__, line, "lstat %s: %s", path,
			  strerror(errno));
	return st;
}
#define STAT(path) stat_of(__LINE__, path)

static int exists(const char *path)
{
	struct stat st;
	return lstat(path, &st) == 0;
}

/* An open descriptor of the file at path: its link count tells, after
 * a removal, whether any name of it is left in the store. */
static int hold(int line, const char *path)
{
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		test_fail(__FILE__, line, "open %s: %s", path, strerror(errno));
	return fd;
}
#define HOLD(path) hold(__LINE__, path)

static nlink_t links_of(int fd)
{
	struct stat st;
	ASSERT_EQ(fstat(fd, &st), 0);
	return st.st_nlink;
}

static int starts_with(const char *path, const char *magic)
{
	char b[8];
	int fd = open(path, O_RDONLY);
	ASSERT(fd >= 0);
	ssize_t n = read(fd, b, sizeof b);
	close(fd);
	return n == 8 && memcmp(b, magic, 8) == 0;
}

/* Flip the last byte of the file at path in place, as a bad disk would,
 * and put its mode back (read-only: a file only we can change). */
static void damage(const char *path)
{
	struct stat st = STAT(path);
	ASSERT_EQ(chmod(path, 0644), 0);
	int fd = open(path, O_RDWR);
	ASSERT(fd >= 0);
	uint8_t c;
	ASSERT_EQ(pread(fd, &c, 1, st.st_size - 1), 1);
	c ^= 0x5a;
	ASSERT_EQ(pwrite(fd, &c, 1, st.st_size - 1), 1);
	close(fd);
	ASSERT_EQ(chmod(path, st.st_mode & 07777), 0);
}

/* Names in dir that contain part (NULL: any but "." and ".."); 0 if
 * there is no dir. */
static int files_in(const char *dir, const char *part)
{
	DIR *d = opendir(dir);
	if (!d)
		return 0;
	int n = 0;
	struct dirent *a;
	while ((a = readdir(d)))
		if (part ? strstr(a->d_name, part) != NULL
			 : strcmp(a->d_name, ".") && strcmp(a->d_name, ".."))
			n++;
	closedir(d);
	return n;
}

static int quarantined_files(void)
{
	return files_in(test_path("store/quarantine"), NULL);
}

/* A store with ("k", "v1") published, and its entry file held open
 * in *fd (HOLD); done() closes both. */
static larder *open_with_k(int line, int *fd)
{
	larder *db = open_cached();
	put_at(line, db, "k", "v1");
	*fd = hold(line, entry_file("k", "v1"));
	return db;
}
#define OPEN_WITH_K(fd) open_with_k(__LINE__, fd)

static void done(larder *db, int fd)
{
	close(fd);
	larder_close(db);
}

TEST(the_head_is_a_hard_link_to_the_newest_entry)
{
	larder *db = open_cached();
	PUT(db, "k", "v1");
	struct stat h = STAT(head_path("k")), e1 = STAT(entry_file("k", "v1"));
	ASSERT_EQ(h.st_ino, e1.st_ino);
	ASSERT_EQ(e1.st_nlink, 2);
	PUT(db, "k", "v2");
	h = STAT(head_path("k"));
	ASSERT_EQ(h.st_ino, STAT(entry_file("k", "v2")).st_ino);
	ASSERT_EQ(STAT(entry_file("k", "v1")).st_nlink, 1);
	/* the same version again (already published): the head again, one
	 * link, and no temp name left */
	for (int i = 0; i < 2; i++)
		ASSERT_EQ(larder_put(db, "default", "k", 1, "v1", 2, "v1 of k",
				     7, NULL),
			  LARDER_EXISTS);
	ASSERT_EQ(STAT(entry_file("k", "v1")).st_nlink, 2);
	ASSERT_EQ(STAT(entry_file("k", "v2")).st_nlink, 1);
	char dir[LDR_REL_MAX];
	uint8_t hh[16];
	char hex[33];
	ldr_head_hash("default", "k", 1, hh);
	ldr_hex(hh, 16, hex);
	ldr_dir_rel(dir, "default", 'h', hex);
	ASSERT_EQ(files_in(test_path("store/%s", dir), ".tmp."), 0);
	ASSERT_EQ(files_in(test_path("store/%s", dir), NULL), 1);
	HEAD_IS(db, "k", "v1");
	larder_close(db);
}

TEST(a_hint_file_of_the_older_format_is_still_followed)
{
	larder *db = open_cached(), *reader = open_cached();
	PUT(db, "k", "v1");
	PUT(db, "k", "v2");
	/* what 0.2 wrote: a small file naming the version */
	ASSERT_RC(db, ldr_test_head_write_hint(db, "default", "k", 1, "v1", 2),
		  0);
	ASSERT(starts_with(head_path("k"), "\x89LDRHEAD"));
	HEAD_IS(reader, "k", "v1");
	HEAD_IS(reader, "k", "v1");
	HEAD_IS(reader, "k", "v1"); /* from the head cache */
	/* rm by the head removes the version it names, and the hint */
	ASSERT_RC(db, larder_remove(db, "default", "k", 1, NULL, 0), 0);
	ASSERT(!exists(head_path("k")));
	ASSERT(!exists(entry_file("k", "v1")));
	age(reader, CHECK_MS);
	HEAD_MISS(reader, "k");
	/* a handle that met hint files follows linked heads again */
	PUT(db, "k", "v3");
	ASSERT_EQ(STAT(entry_file("k", "v3")).st_nlink, 2);
	age(reader, CHECK_MS);
	HEAD_IS(reader, "k", "v3");
	HEAD_IS(reader, "k", "v3");
	larder_close(reader);
	larder_close(db);
}

TEST(remove_by_version_drops_the_head_that_links_it)
{
	int fd;
	larder *db = OPEN_WITH_K(&fd);
	ASSERT_RC(db, larder_remove(db, "default", "k", 1, "v1", 2), 0);
	ASSERT_EQ(links_of(fd), 0); /* no name left: its disk is freed */
	HEAD_MISS(db, "k");
	done(db, fd);
}

TEST(remove_by_the_head_drops_entry_and_head)
{
	larder *db = open_cached();
	PUT(db, "k", "v1");
	PUT(db, "k", "v2");
	int fd = HOLD(entry_file("k", "v2"));
	ASSERT_RC(db, larder_remove(db, "default", "k", 1, NULL, 0), 0);
	ASSERT_EQ(links_of(fd), 0);
	ASSERT(!exists(head_path("k")));
	HEAD_MISS(db, "k");
	/* the older version stays, by its version, and is no head */
	ASSERT_EQ(STAT(entry_file("k", "v1")).st_nlink, 1);
	done(db, fd);
}

TEST(an_entry_removed_by_an_older_larder_frees_its_head_at_the_next_lookup)
{
	/* An older larder removes the entry's name only: the head keeps the
	 * file. A lookup finds it with one name left and drops it. */
	int fd;
	larder *db = OPEN_WITH_K(&fd);
	ASSERT_EQ(unlink(entry_file("k", "v1")), 0);
	ASSERT_EQ(links_of(fd), 1);
	HEAD_MISS(db, "k");
	ASSERT_EQ(links_of(fd), 0);
	ASSERT(!exists(head_path("k")));
	done(db, fd);
}

TEST(a_copy_at_the_head_name_serves_as_a_hint_of_its_version)
{
	/* A store copied without its hard links: the head is a copy of the
	 * entry, and the entry's own name is read. */
	larder *db = open_cached();
	PUT(db, "k", "v1");
	size_t n;
	uint8_t *b = read_file(head_path("k"), &n);
	const char *tmp = test_path("copy");
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0444);
	ASSERT(fd >= 0);
	ASSERT_EQ(write(fd, b, n), (ssize_t)n);
	close(fd);
	free(b);
	ASSERT_EQ(rename(tmp, head_path("k")), 0);
	ASSERT_EQ(STAT(entry_file("k", "v1")).st_nlink, 1);
	HEAD_IS(db, "k", "v1");
	ASSERT(exists(head_path("k")));
	larder_close(db);
}

TEST(gc_eviction_drops_the_heads_and_frees_the_files)
{
	larder *db = open_cached();
	const char *keys[] = {"a", "b", "c", "d"};
	int fds[4];
	for (int i = 0; i < 4; i++) {
		PUT(db, keys[i], "v1");
		fds[i] = HOLD(entry_file(keys[i], "v1"));
	}
	larder_limits l = LARDER_LIMITS_INIT;
	ASSERT_RC(db, larder_limits_get(&l, db, NULL), 0);
	l.max_entries = 1;
	ASSERT_RC(db, larder_limits_set(db, NULL, &l), 0);
	larder_gc_report r = LARDER_GC_REPORT_INIT;
	ASSERT_RC(db, larder_gc(&r, db, NULL, 0), 0);
	/* each entry seen once: a head is not a second entry */
	ASSERT_EQ(r.seen_entries, 4);
	ASSERT(r.evicted >= 3);
	ASSERT_EQ(r.heads_removed, r.evicted);
	int gone = 0;
	for (int i = 0; i < 4; i++) {
		if (exists(entry_file(keys[i], "v1"))) {
			ASSERT_EQ(links_of(fds[i]), 2);
			HEAD_IS(db, keys[i], "v1");
		} else {
			gone++;
			ASSERT_EQ(links_of(fds[i]), 0);
			ASSERT(!exists(head_path(keys[i])));
			HEAD_MISS(db, keys[i]);
		}
		close(fds[i]);
	}
	ASSERT_EQ((uint64_t)gone, r.evicted);
	larder_close(db);
}

TEST(gc_of_a_superseded_version_keeps_the_newer_head)
{
	int fd;
	larder *db = OPEN_WITH_K(&fd);
	PUT(db, "k", "v2");
	PUT(db, "j", "v1");
	larder_limits l = LARDER_LIMITS_INIT;
	ASSERT_RC(db, larder_limits_get(&l, db, NULL), 0);
	l.max_entries = 2; /* three entries: the superseded one goes */
	ASSERT_RC(db, larder_limits_set(db, NULL, &l), 0);
	larder_gc_report r = LARDER_GC_REPORT_INIT;
	ASSERT_RC(db, larder_gc(&r, db, NULL, 0), 0);
	ASSERT_EQ(r.superseded, 1);
	ASSERT_EQ(links_of(fd), 0);
	/* whatever else the cap took, a head left links its entry */
	if (exists(entry_file("k", "v2"))) {
		ASSERT_EQ(STAT(entry_file("k", "v2")).st_nlink, 2);
		HEAD_IS(db, "k", "v2");
	} else {
		ASSERT(!exists(head_path("k")));
		HEAD_MISS(db, "k");
	}
	done(db, fd);
}

TEST(walk_repair_quarantines_a_damaged_entry_and_its_head_once)
{
	int fd;
	larder *db = OPEN_WITH_K(&fd);
	damage(entry_file("k", "v1"));
	ASSERT_EQ(walk_count(db, LARDER_WALK_VERIFY | LARDER_WALK_REPAIR), 1);
	ASSERT_EQ(quarantined_files(), 1);
	ASSERT_EQ(links_of(fd), 1); /* quarantine/ only */
	ASSERT(!exists(head_path("k")));
	uint64_t bad = larder_counter(db, LARDER_CTR_CHECKSUM_FAIL);
	HEAD_MISS(db, "k");
	ASSERT_EQ(larder_counter(db, LARDER_CTR_CHECKSUM_FAIL), bad);
	done(db, fd);
}

TEST(a_damaged_entry_reached_through_its_head_is_quarantined_once)
{
	int fd;
	larder *db = OPEN_WITH_K(&fd);
	damage(entry_file("k", "v1"));
	HEAD_MISS(db, "k");
	ASSERT_EQ(larder_counter(db, LARDER_CTR_CHECKSUM_FAIL), 1);
	ASSERT_EQ(larder_counter(db, LARDER_CTR_QUARANTINED), 1);
	ASSERT_EQ(quarantined_files(), 1);
	ASSERT_EQ(links_of(fd), 1);
	ASSERT(!exists(head_path("k")));
	ASSERT(!exists(entry_file("k", "v1")));
	/* by its version now: a plain miss, nothing judged again */
	larder_entry *e = NULL;
	ASSERT_EQ(larder_get(&e, db, "default", "k", 1, "v1", 2),
		  LARDER_ENOTFOUND);
	ASSERT_EQ(larder_counter(db, LARDER_CTR_CHECKSUM_FAIL), 1);
	done(db, fd);
}

TEST(a_damaged_entry_reached_by_its_version_takes_its_head_along)
{
	int fd;
	larder *db = OPEN_WITH_K(&fd);
	damage(entry_file("k", "v1"));
	larder_entry *e = NULL;
	ASSERT_EQ(larder_get(&e, db, "default", "k", 1, "v1", 2),
		  LARDER_ENOTFOUND);
	ASSERT_EQ(links_of(fd), 1);
	ASSERT(!exists(head_path("k")));
	HEAD_MISS(db, "k");
	ASSERT_EQ(larder_counter(db, LARDER_CTR_CHECKSUM_FAIL), 1);
	done(db, fd);
}

TEST(a_head_with_a_third_name_is_checked_even_when_trusting_local_files)
{
	larder *db = open_with(LARDER_OPEN_TRUST_LOCAL, 0);
	PUT(db, "k", "v1");
	/* someone linked the entry elsewhere, and changed it through that
	 * name; its mode is back to one only we could have written */
	ASSERT_EQ(link(entry_file("k", "v1"), test_path("third")), 0);
	damage(test_path("third"));
	HEAD_MISS(db, "k");
	ASSERT_EQ(larder_counter(db, LARDER_CTR_CHECKSUM_FAIL), 1);
	larder_close(db);
}

TEST(a_head_linking_another_keys_entry_is_no_head_of_this_key)
{
	larder *db = open_cached();
	PUT(db, "a", "v1");
	PUT(db, "b", "v1");
	const char *tmp = test_path("planted");
	ASSERT_EQ(link(entry_file("a", "v1"), tmp), 0);
	ASSERT_EQ(rename(tmp, head_path("b")), 0);
	HEAD_MISS(db, "b");
	ASSERT(!exists(head_path("b")));
	/* a's entry and head are a's still */
	HEAD_IS(db, "a", "v1");
	ASSERT(exists(entry_file("a", "v1")));
	ASSERT(exists(entry_file("b", "v1")));
	larder_close(db);
}

TEST(entries_are_counted_once_in_walk_and_usage)
{
	larder *db = open_cached();
	int64_t bytes = 0;
	const char *keys[] = {"a", "b", "c"};
	for (int i = 0; i < 3; i++) {
		PUT(db, keys[i], "v1");
		bytes += STAT(entry_file(keys[i], "v1")).st_size;
	}
	ASSERT_EQ(walk_count(db, 0), 3);
	ASSERT_RC(db, larder_stats_flush(db), 0);
	larder_stats *s = NULL;
	ASSERT_RC(db, larder_stats_read(&s, db), 0);
	int64_t ub = -1, un = -1;
	for (size_t i = 0; i < larder_stats_namespaces(s); i++) {
		int64_t b, n;
		const char *name = larder_stats_usage(&b, &n, s, i);
		if (strcmp(name, "default") == 0) {
			ub = b;
			un = n;
		}
	}
	larder_stats_free(s);
	ASSERT_EQ(un, 3);
	ASSERT_EQ(ub, bytes);
	larder_gc_report r = LARDER_GC_REPORT_INIT;
	ASSERT_RC(db, larder_gc(&r, db, NULL, 0), 0);
	ASSERT_EQ(r.seen_entries, 3);
	ASSERT_EQ(r.seen_bytes, (uint64_t)bytes);
	larder_close(db);
}

/* ---------------------------------------------------------------------- */
/* On a network filesystem, a small entry's head is a copy of it
 * (docs/format.md "Head hint"): one open serves a version-less lookup,
 * and everything that removes the entry removes the copy.               */

/* The test's store taken for a network filesystem (ldr_test_set_network:
 * the store is local, but larder writes heads as it would there). */
static larder *open_net(void)
{
	larder *db = open_cached();
	ldr_test_set_network(db, 1);
	return db;
}

/* Namespace "default"'s usage as the counters say. */
static void usage_of(larder *db, int64_t *bytes, int64_t *entries)
{
	ASSERT_RC(db, larder_stats_flush(db), 0);
	larder_stats *s = NULL;
	ASSERT_RC(db, larder_stats_read(&s, db), 0);
	*bytes = *entries = 0;
	for (size_t i = 0; i < larder_stats_namespaces(s); i++) {
		int64_t b, n;
		const char *name = larder_stats_usage(&b, &n, s, i);
		if (strcmp(name, "default") == 0) {
			*bytes = b;
			*entries = n;
		}
	}
	larder_stats_free(s);
}

static void usage_is_at(int line, larder *db, int64_t bytes, int64_t n)
{
	int64_t b, e;
	usage_of(db, &b, &e);
	if (b != bytes || e != n)
		test_fail(__FILE__, line,
			  "usage %lld bytes, %lld entries; want %lld, %lld",
			  (long long)b, (long long)e, (long long)bytes,
			  (long long)n);
}
#define USAGE_IS(db, bytes, n) usage_is_at(__LINE__, db, bytes, n)

static int64_t size_of(const char *path)
{
	struct stat st;
	return lstat(path, &st) == 0 ? (int64_t)st.st_size : 0;
}

/* The head of key is a copy of the entry (key, ver): another file, of
 * one name, with the same bytes. */
static void head_copies_at(int line, const char *key, const char *ver)
{
	struct stat h = stat_of(line, head_path(key));
	struct stat e = stat_of(line, entry_file(key, ver));
	size_t hn, en;
	uint8_t *hb = read_file(head_path(key), &hn);
	uint8_t *eb = read_file(entry_file(key, ver), &en);
	if (h.st_ino == e.st_ino || h.st_nlink != 1 || e.st_nlink != 1 ||
	    hn != en || memcmp(hb, eb, en) != 0)
		test_fail(__FILE__, line,
			  "head of %s: inode %llu (%llu names, %zu bytes), "
			  "entry %s: inode %llu (%llu names, %zu bytes): "
			  "not a copy",
			  key, (unsigned long long)h.st_ino,
			  (unsigned long long)h.st_nlink, hn, ver,
			  (unsigned long long)e.st_ino,
			  (unsigned long long)e.st_nlink, en);
	free(hb);
	free(eb);
}
#define HEAD_COPIES(key, ver) head_copies_at(__LINE__, key, ver)

/* An entry and its copied head: the bytes both files count. */
static int64_t with_copy(const char *key, const char *ver)
{
	return size_of(entry_file(key, ver)) + size_of(head_path(key));
}

/* Put `len` pattern bytes (which zstd cannot shrink) under (key, ver). */
static void put_len_at(int line, larder *db, const char *key, const char *ver,
		       size_t len)
{
	uint8_t *b = xmalloc(len ? len : 1);
	test_fill_pattern(b, len, seed_of(key));
	int rc = larder_put(db, "default", key, strlen(key), ver, strlen(ver),
			    b, len, NULL);
	free(b);
	if (rc != 0)
		test_fail(__FILE__, line, "put(%s, %s, %zu bytes): %s: %s", key,
			  ver, len, larder_strerror(rc), larder_errmsg(db));
}

TEST(on_a_network_filesystem_a_small_entrys_head_is_a_copy_of_it)
{
	larder *db = open_net();
	PUT(db, "k", "v1");
	HEAD_COPIES("k", "v1");
	HEAD_IS(db, "k", "v1");
	/* the same version again (already published): the head names it
	 * already, and is left as it is, not renamed over once more */
	ino_t ino = STAT(head_path("k")).st_ino;
	ASSERT_EQ(
	    larder_put(db, "default", "k", 1, "v1", 2, "v1 of k", 7, NULL),
	    LARDER_EXISTS);
	ASSERT_EQ(STAT(head_path("k")).st_ino, ino);
	/* The copy serves the lookup by itself: the entry's own file, even
	 * damaged, is not read (it is judged when read by its version). */
	damage(entry_file("k", "v1"));
	HEAD_IS(db, "k", "v1");
	ASSERT_EQ(larder_counter(db, LARDER_CTR_CHECKSUM_FAIL), 0);
	PUT(db, "k", "v2");
	HEAD_COPIES("k", "v2");
	HEAD_IS(db, "k", "v2");
	larder_close(db);
}

TEST(a_copied_head_counts_in_the_usage_and_a_replaced_one_leaves_it)
{
	larder *db = open_net();
	PUT(db, "k", "v1");
	int64_t v1 = size_of(entry_file("k", "v1"));
	USAGE_IS(db, with_copy("k", "v1"), 1);
	put_len_at(__LINE__, db, "k", "v2", 3000);
	HEAD_COPIES("k", "v2");
	USAGE_IS(db, v1 + with_copy("k", "v2"), 2);
	/* a hint over the copy: the copy's bytes leave, a hint's are not
	 * counted (a few bytes, as ever) */
	ASSERT_RC(db, ldr_test_head_write_hint(db, "default", "k", 1, "v2", 2),
		  0);
	USAGE_IS(db, v1 + size_of(entry_file("k", "v2")), 2);
	larder_close(db);
}

TEST(entries_over_the_copy_bound_keep_hint_files)
{
	larder *db = open_net();
	/* the header's length, from an entry of the same key and version
	 * lengths, so that a payload makes a file of exactly the bound */
	put_len_at(__LINE__, db, "a", "v1", 100);
	int64_t hdr = size_of(entry_file("a", "v1")) - 100;
	size_t at = (size_t)(ldr_test_head_copy_max() - hdr);
	put_len_at(__LINE__, db, "b", "v1", at);
	ASSERT_EQ(size_of(entry_file("b", "v1")), ldr_test_head_copy_max());
	HEAD_COPIES("b", "v1");
	put_len_at(__LINE__, db, "c", "v1", at + 1);
	ASSERT(starts_with(head_path("c"), "\x89LDRHEAD"));
	ASSERT_EQ(STAT(entry_file("c", "v1")).st_nlink, 1);
	larder_entry *e = NULL;
	ASSERT_RC(db, larder_get(&e, db, "default", "c", 1, NULL, 0), 0);
	ASSERT_EQ(larder_entry_size(e), at + 1);
	larder_entry_release(e);
	ASSERT_RC(db, larder_get(&e, db, "default", "b", 1, NULL, 0), 0);
	ASSERT_EQ(larder_entry_size(e), at);
	larder_entry_release(e);
	larder_close(db);
}

TEST(remove_by_version_drops_a_copied_head_and_its_bytes)
{
	larder *db = open_net();
	PUT(db, "k", "v1");
	ASSERT_RC(db, larder_remove(db, "default", "k", 1, "v1", 2), 0);
	ASSERT(!exists(head_path("k")));
	ASSERT(!exists(entry_file("k", "v1")));
	HEAD_MISS(db, "k");
	USAGE_IS(db, 0, 0);
	larder_close(db);
}

TEST(remove_by_the_head_drops_entry_and_copied_head)
{
	larder *db = open_net();
	PUT(db, "k", "v1");
	PUT(db, "k", "v2");
	ASSERT_RC(db, larder_remove(db, "default", "k", 1, NULL, 0), 0);
	ASSERT(!exists(head_path("k")));
	ASSERT(!exists(entry_file("k", "v2")));
	HEAD_MISS(db, "k");
	ASSERT(exists(entry_file("k", "v1")));
	USAGE_IS(db, size_of(entry_file("k", "v1")), 1);
	larder_close(db);
}

TEST(gc_eviction_drops_copied_heads_and_frees_their_bytes)
{
	larder *db = open_net();
	const char *keys[] = {"a", "b", "c", "d"};
	int64_t all = 0;
	for (int i = 0; i < 4; i++) {
		PUT(db, keys[i], "v1");
		all += with_copy(keys[i], "v1");
	}
	larder_limits l = LARDER_LIMITS_INIT;
	ASSERT_RC(db, larder_limits_get(&l, db, NULL), 0);
	l.max_entries = 1;
	ASSERT_RC(db, larder_limits_set(db, NULL, &l), 0);
	larder_gc_report r = LARDER_GC_REPORT_INIT;
	ASSERT_RC(db, larder_gc(&r, db, NULL, 0), 0);
	ASSERT_EQ(r.seen_entries, 4);
	ASSERT(r.evicted >= 3);
	ASSERT_EQ(r.heads_removed, r.evicted);
	int64_t left = 0;
	uint64_t gone = 0;
	for (int i = 0; i < 4; i++) {
		if (exists(entry_file(keys[i], "v1"))) {
			HEAD_COPIES(keys[i], "v1");
			left += with_copy(keys[i], "v1");
			HEAD_IS(db, keys[i], "v1");
		} else {
			gone++;
			ASSERT(!exists(head_path(keys[i])));
			HEAD_MISS(db, keys[i]);
		}
	}
	ASSERT_EQ(gone, r.evicted);
	/* every evicted entry's copy freed too */
	ASSERT_EQ(r.bytes_freed, (uint64_t)(all - left));
	USAGE_IS(db, left, (int64_t)(4 - gone));
	larder_close(db);
}

TEST(gc_of_a_superseded_version_keeps_the_newer_copied_head)
{
	larder *db = open_net();
	PUT(db, "k", "v1");
	PUT(db, "k", "v2");
	PUT(db, "j", "v1");
	larder_limits l = LARDER_LIMITS_INIT;
	ASSERT_RC(db, larder_limits_get(&l, db, NULL), 0);
	l.max_entries = 2; /* three entries: the superseded one goes */
	ASSERT_RC(db, larder_limits_set(db, NULL, &l), 0);
	larder_gc_report r = LARDER_GC_REPORT_INIT;
	ASSERT_RC(db, larder_gc(&r, db, NULL, 0), 0);
	ASSERT_EQ(r.superseded, 1);
	ASSERT(!exists(entry_file("k", "v1")));
	/* whatever else the cap took, a head left copies its entry */
	int64_t left = 0, n = 0;
	const char *keys[] = {"k", "j"}, *vers[] = {"v2", "v1"};
	for (int i = 0; i < 2; i++) {
		if (exists(entry_file(keys[i], vers[i]))) {
			HEAD_COPIES(keys[i], vers[i]);
			HEAD_IS(db, keys[i], vers[i]);
			left += with_copy(keys[i], vers[i]);
			n++;
		} else {
			ASSERT(!exists(head_path(keys[i])));
			HEAD_MISS(db, keys[i]);
		}
	}
	USAGE_IS(db, left, n);
	larder_close(db);
}

TEST(the_cleanings_recount_counts_copied_heads)
{
	larder *db = open_net();
	const char *keys[] = {"a", "b", "c"};
	for (int i = 0; i < 3; i++)
		PUT(db, keys[i], "v1");
	/* a head removed behind larder's back: the counters are over by
	 * its bytes until a full cleaning counts the store again */
	int64_t b_copy = size_of(head_path("b"));
	int64_t want = with_copy("a", "v1") + with_copy("c", "v1") +
		       size_of(entry_file("b", "v1"));
	ASSERT_EQ(unlink(head_path("b")), 0);
	USAGE_IS(db, want + b_copy, 3);
	larder_gc_report r = LARDER_GC_REPORT_INIT;
	ASSERT_RC(db, larder_gc(&r, db, NULL, 0), 0);
	ASSERT_EQ(r.seen_entries, 3);
	USAGE_IS(db, want, 3);
	larder_close(db);
}

TEST(walk_repair_quarantines_a_damaged_entry_and_drops_its_copied_head)
{
	larder *db = open_net();
	PUT(db, "k", "v1");
	damage(entry_file("k", "v1"));
	ASSERT_EQ(walk_count(db, LARDER_WALK_VERIFY | LARDER_WALK_REPAIR), 1);
	ASSERT_EQ(quarantined_files(), 1);
	ASSERT(!exists(head_path("k")));
	ASSERT(!exists(entry_file("k", "v1")));
	HEAD_MISS(db, "k");
	USAGE_IS(db, 0, 0);
	larder_close(db);
}

TEST(a_damaged_entry_reached_by_its_version_takes_its_copied_head_along)
{
	larder *db = open_net();
	PUT(db, "k", "v1");
	damage(entry_file("k", "v1"));
	larder_entry *e = NULL;
	ASSERT_EQ(larder_get(&e, db, "default", "k", 1, "v1", 2),
		  LARDER_ENOTFOUND);
	ASSERT_EQ(larder_counter(db, LARDER_CTR_CHECKSUM_FAIL), 1);
	ASSERT_EQ(quarantined_files(), 1);
	ASSERT(!exists(head_path("k")));
	HEAD_MISS(db, "k");
	USAGE_IS(db, 0, 0);
	larder_close(db);
}

TEST(a_damaged_copied_head_is_quarantined_and_its_entry_still_serves)
{
	larder *db = open_net();
	PUT(db, "k", "v1");
	int64_t entry = size_of(entry_file("k", "v1"));
	damage(head_path("k"));
	HEAD_MISS(db, "k");
	ASSERT_EQ(larder_counter(db, LARDER_CTR_CHECKSUM_FAIL), 1);
	ASSERT_EQ(quarantined_files(), 1);
	ASSERT(!exists(head_path("k")));
	/* the entry's own file is another, and sound */
	larder_entry *e = NULL;
	ASSERT_RC(db, larder_get(&e, db, "default", "k", 1, "v1", 2), 0);
	larder_entry_release(e);
	ASSERT_EQ(larder_counter(db, LARDER_CTR_CHECKSUM_FAIL), 1);
	USAGE_IS(db, entry, 1);
	larder_close(db);
}

TEST(a_repeat_lookup_through_a_copied_head_stays_memoised_past_its_check)
{
	/* re-hashed from disk only long after the checks below */
	larder_opts o = LARDER_OPTS_INIT;
	o.memo_check_ms = CHECK_MS;
	o.memo_rehash_ms = 10 * CHECK_MS;
	larder *db = open_store_opts(&o);
	ldr_test_set_network(db, 1);
	PUT(db, "k", "v1");
	HEAD_IS(db, "k", "v1");
	HEAD_IS(db, "k", "v1"); /* remembered: head cache and memo */
	uint64_t memo = larder_counter(db, LARDER_CTR_MEMO_HITS);
	HEAD_IS(db, "k", "v1");
	ASSERT_EQ(larder_counter(db, LARDER_CTR_MEMO_HITS), memo + 1);
	/* Past both checks: read again once (written within 2 s of its
	 * read, it is not judged by its identity), then judged by it. */
	age(db, CHECK_MS);
	HEAD_IS(db, "k", "v1");
	memo = larder_counter(db, LARDER_CTR_MEMO_HITS);
	age(db, CHECK_MS);
	/* The memo holds the entry from the copied head's file, unchanged:
	 * served. (Taken from the entry's own name, whose file is another,
	 * it would be read again at its check.) */
	HEAD_IS(db, "k", "v1");
	ASSERT_EQ(larder_counter(db, LARDER_CTR_MEMO_HITS), memo + 1);
	/* a new head through another handle: followed at the check */
	larder *other = open_net();
	PUT(other, "k", "v2");
	age(db, CHECK_MS);
	HEAD_IS(db, "k", "v2");
	larder_close(other);
	larder_close(db);
}

TEST(a_hit_through_a_copied_head_keeps_its_entry_recent)
{
	larder *db = open_net();
	PUT(db, "k", "v1");
	/* the entry last used a day ago, as the cleaning would see it */
	struct timespec ts[2] = {{.tv_sec = time(NULL) - 86400},
				 {.tv_nsec = UTIME_OMIT}};
	ASSERT_EQ(
	    utimensat(AT_FDCWD, entry_file("k", "v1"), ts, AT_SYMLINK_NOFOLLOW),
	    0);
	HEAD_IS(db, "k", "v1");
	ASSERT(STAT(entry_file("k", "v1")).st_atime > time(NULL) - 3600);
	larder_close(db);
}

TEST(a_head_is_remembered_at_its_second_read)
{
	larder *db = open_cached();
	PUT(db, "k", "v1");
	HEAD_IS_HOLDING(db, "k", "v1", 0);
	HEAD_IS_HOLDING(db, "k", "v1", 1);
	HEAD_IS_HOLDING(db, "k", "v1", 1);
	larder_close(db);
}

/* other publishes (key, newer) while db remembers (key, old): within the
 * check interval db may still serve old (the documented lag), so the
 * cache is what answers; once its check falls due, newer. */
static void follows_at(int line, larder *db, larder *other, const char *key,
		       const char *old, const char *newer)
{
	put_at(line, other, key, newer);
	head_is_at(line, db, key, old);
	age(db, CHECK_MS);
	head_is_at(line, db, key, newer);
}
#define FOLLOWS(db, other, key, old, newer)                                    \
	follows_at(__LINE__, db, other, key, old, newer)

TEST(a_newer_head_from_another_handle_is_seen_within_the_check_interval)
{
	larder *db = open_cached(), *other = open_cached();
	PUT_REMEMBERED(db, "k", "v1");
	FOLLOWS(db, other, "k", "v1", "v2");
	/* and remembered again, followed again */
	HEAD_IS(db, "k", "v2");
	PUT(other, "k", "v3");
	age(db, CHECK_MS);
	HEAD_IS(db, "k", "v3");
	/* Remembered long after it was written: judged by its identity, and
	 * a replacement (a new file) is followed. */
	age(db, CHECK_MS);
	HEAD_IS(db, "k", "v3");
	FOLLOWS(db, other, "k", "v3", "v4");
	larder_close(other);
	larder_close(db);
}

TEST(this_handles_own_publish_is_seen_at_once)
{
	larder *db = open_cached();
	PUT_REMEMBERED(db, "k", "v1");
	PUT(db, "k", "v2");
	HEAD_IS(db, "k", "v2");
	larder_close(db);
}

TEST(an_unchanged_head_stays_remembered_after_its_check)
{
	larder *db = open_cached();
	PUT_REMEMBERED(db, "k", "v1");
	/* Past the racy window: judged by its identity from here on. */
	age(db, CHECK_MS);
	HEAD_IS_HOLDING(db, "k", "v1", 1);
	HEAD_IS_HOLDING(db, "k", "v1", 1);
	larder_close(db);
}

TEST(a_removed_head_is_a_miss_once_checked)
{
	larder *db = open_cached();
	PUT_REMEMBERED(db, "k", "v1");
	age(db, CHECK_MS); /* past the racy window */
	HEAD_IS(db, "k", "v1");
	/* The head goes, the entry stays (as another process's sweep may
	 * leave it). */
	ASSERT_EQ(unlink(head_path("k")), 0);
	age(db, CHECK_MS);
	HEAD_MISS(db, "k");
	ASSERT_EQ(ldr_test_head_cache_size(db), 0);
	larder_close(db);
}

TEST(a_removed_entry_is_a_miss)
{
	larder *db = open_cached(), *other = open_cached();
	PUT_REMEMBERED(db, "k", "v1");
	ASSERT_RC(other, larder_remove(other, "default", "k", 1, NULL, 0), 0);
	age(db, CHECK_MS);
	HEAD_MISS(db, "k");
	/* by this handle's own hand: at once */
	PUT_REMEMBERED(db, "k", "v2");
	ASSERT_RC(db, larder_remove(db, "default", "k", 1, NULL, 0), 0);
	HEAD_MISS(db, "k");
	larder_close(other);
	larder_close(db);
}

TEST(the_cache_never_grows_past_its_bound)
{
	larder *db = open_with(0, 8);
	char key[16];
	for (int i = 0; i < 40; i++) {
		snprintf(key, sizeof key, "k%d", i);
		PUT_REMEMBERED(db, key, "v");
		ASSERT(ldr_test_head_cache_size(db) <= 8);
	}
	ASSERT_EQ(ldr_test_head_cache_size(db), 8);
	/* The most recent are the ones kept: still right. */
	HEAD_IS(db, "k39", "v");
	HEAD_IS(db, "k0", "v");
	larder_close(db);
}

TEST(verify_always_reads_every_head)
{
	larder *db = open_with(LARDER_OPEN_VERIFY_ALWAYS, 0),
	       *other = open_cached();
	PUT_REMEMBERED(db, "k", "v1");
	ASSERT_EQ(ldr_test_head_cache_size(db), 0);
	PUT(other, "k", "v2");
	HEAD_IS(db, "k", "v2");
	larder_close(other);
	larder_close(db);
}

TEST(a_forked_child_starts_without_the_cache)
{
	larder *db = open_cached(), *other = open_cached();
	PUT_REMEMBERED(db, "k", "v1");
	PUT(other, "k", "v2");
	pid_t pid = fork();
	ASSERT(pid >= 0);
	if (pid == 0) {
		size_t n = ldr_test_head_cache_size(db);
		larder_entry *e = NULL;
		size_t vlen = 0;
		int rc = larder_get(&e, db, "default", "k", 1, NULL, 0);
		const void *v = rc ? NULL : larder_entry_version(&vlen, e);
		int ok = n == 0 && rc == 0 && vlen == 2 && !memcmp(v, "v2", 2);
		larder_entry_release(e);
		_exit(ok ? 0 : 1);
	}
	int st;
	ASSERT_EQ(waitpid(pid, &st, 0), pid);
	ASSERT(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	/* The parent's is its own still. */
	ASSERT_EQ(ldr_test_head_cache_size(db), 1);
	larder_close(other);
	larder_close(db);
}

/* Version-less lookups of a few keys from several threads while one of
 * them ages the cache: every answer is one of the key's versions. */
static void hammer_run(struct hammer *h)
{
	char key[16];
	for (int i = 0; i < 2000; i++) {
		snprintf(key, sizeof key, "t%d", (i + h->id) % 6);
		larder_entry *e = NULL;
		size_t vl = 0;
		if (larder_get(&e, h->db, "default", key, strlen(key), NULL,
			       0) != 0)
			h->bad++;
		else {
			const char *v = larder_entry_version(&vl, e);
			h->bad += vl != 2 || v[0] != 'v' ||
				  (v[1] != '1' && v[1] != '2');
		}
		larder_entry_release(e);
		if (h->id == 0 && i % 300 == 0)
			age(h->db, CHECK_MS);
	}
}

TEST(threads_share_the_cache)
{
	larder *db = open_with(0, 4), *other = open_cached();
	char key[16];
	for (int k = 0; k < 6; k++) {
		snprintf(key, sizeof key, "t%d", k);
		PUT(other, key, "v1");
	}
	struct hammer h[HAMMER_THREADS];
	hammer_start(h, db, hammer_run);
	for (int k = 0; k < 6; k++) {
		snprintf(key, sizeof key, "t%d", k);
		PUT(other, key, "v2");
	}
	hammer_join(h);
	ASSERT(ldr_test_head_cache_size(db) <= 4);
	age(db, CHECK_MS);
	HEAD_IS(db, "t0", "v2");
	larder_close(other);
	larder_close(db);
}
