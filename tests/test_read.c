/*
 * test_read.c — what a reader hands out is exactly what it verified
 * (docs/security.md, "Readers who are not the entry's owner"):
 *  - an entry file that someone else could change is never mapped, and
 *    nothing done to the file after the lookup reaches the caller;
 *  - larder_get_stream() verifies before the first byte reaches its sink
 *    and checks again on the way, whatever happens to the file;
 *  - zstd entries stream in bounded memory and are held only up to a cap;
 *  - a newer format is a miss only when it keeps the format contract
 *    (docs/format.md, "Forward compatibility"); put never reports a store
 *    it did not make;
 *  - anything at an entry's name that is not a regular file is
 *    quarantined like a corrupt entry, and the next put replaces it.
 *
 * Tests run as root (as CI does). They play another user by chown'ing an
 * entry to an unused uid (root does not own it then, and neither does the
 * store's owner), or with setresuid() in a forked child.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testing.h"
#include "harness.h"
#include "larder.h"
#include "store_util.h"

#define KiB 1024u
#define MiB (1024u * 1024u)

/* Users that own nothing on the machine: an entry's publisher, a reader. */
#define OTHER_UID 4242
#define READER_UID 4343

/* ---------------------------------------------------------------------- */
/* Helpers                                                                 */

/* Put `size` pattern bytes (seeded by the key) under (key, "v"). */
static int put_pattern(larder *db, const char *key, size_t size, unsigned flags)
{
	larder_put_opts po = LARDER_PUT_OPTS_INIT;
	po.flags = flags;
	return put_pattern_po(db, key, size, &po);
}

#define PUT(db, key, size, flags)                                              \
	ASSERT_RC(db, put_pattern(db, key, size, flags), 0)

/* The path of the entry file of (default, key, "v"). */
static const char *entry_path(const char *key)
{
	return file_path(key, 'e');
}

/* Replace the file at path (a new inode, as a hostile publisher would). */
static void write_file(const char *path, const void *buf, size_t len)
{
	char tmp[4200];
	snprintf(tmp, sizeof tmp, "%s.new", path);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	ASSERT(fd >= 0);
	ASSERT_EQ(ldr_pwrite_full(fd, buf, len, 0), 0);
	close(fd);
	ASSERT_EQ(rename(tmp, path), 0);
}

/* Write into the file at path in place, as its owner could. */
static void poke(const char *path, off_t off, const void *buf, size_t len)
{
	int fd = open(path, O_WRONLY);
	ASSERT(fd >= 0);
	ASSERT_EQ(ldr_pwrite_full(fd, buf, len, off), 0);
	close(fd);
}

/* Recompute an entry's payload hash and header checksum, as a writer
 * that meant its bytes would (a forger, or a buggy writer). */
static void reseal(uint8_t *buf, size_t len)
{
	uint32_t hl = (uint32_t)buf[12] | (uint32_t)buf[13] << 8 |
		      (uint32_t)buf[14] << 16 | (uint32_t)buf[15] << 24;
	ASSERT(hl >= LDR_HDR_FIXED && hl <= len);
	ldr_xxh128(buf + hl, len - hl, buf + 72);
	memset(buf + 88, 0, 16);
	uint8_t sum[16];
	ldr_xxh128(buf, hl, sum);
	memcpy(buf + 88, sum, 16);
}

/* Files in the store's quarantine/. */
static int quarantined_files(void)
{
	DIR *d = opendir(test_path("store/quarantine"));
	if (!d)
		return 0;
	int n = 0;
	struct dirent *de;
	while ((de = readdir(d)))
		n += de->d_name[0] != '.';
	closedir(d);
	return n;
}

/* Flip the payload byte `back` bytes before the end of the file. */
static void flip_near_end(const char *path, off_t back)
{
	struct stat st;
	ASSERT_EQ(stat(path, &st), 0);
	uint8_t x = 0;
	int fd = open(path, O_RDONLY);
	ASSERT(fd >= 0);
	ASSERT_EQ(pread(fd, &x, 1, st.st_size - back), 1);
	close(fd);
	x ^= 1;
	poke(path, st.st_size - back, &x, 1);
}

/* A sink that collects what it is given. */
struct collect {
	uint8_t *buf;
	size_t len, cap;
	int calls;
	int stop_at;	  /* return 7 at this call (1-based), 0 = never */
	const char *poke; /* at the first call, damage this file ... */
	off_t poke_off;	  /* ... here (from its end if negative) */
	int truncate;	  /* ... or cut it to half instead */
};

static int collect(const void *buf, size_t len, void *payload)
{
	struct collect *c = payload;
	ASSERT(len > 0);
	c->calls++;
	if (c->len + len > c->cap) {
		c->cap = (c->len + len) * 2;
		c->buf = realloc(c->buf, c->cap);
		ASSERT(c->buf != NULL);
	}
	memcpy(c->buf + c->len, buf, len);
	c->len += len;
	if (c->calls == 1 && c->poke) {
		struct stat st;
		ASSERT_EQ(stat(c->poke, &st), 0);
		if (c->truncate) {
			ASSERT_EQ(truncate(c->poke, st.st_size / 2), 0);
		} else {
			off_t off = c->poke_off < 0 ? st.st_size + c->poke_off
						    : c->poke_off;
			uint8_t b[16];
			int fd = open(c->poke, O_RDONLY);
			ASSERT(fd >= 0);
			ASSERT_EQ(pread(fd, b, sizeof b, off),
				  (ssize_t)sizeof b);
			close(fd);
			for (size_t i = 0; i < sizeof b; i++)
				b[i] ^= 0x5A;
			poke(c->poke, off, b, sizeof b);
		}
	}
	return c->calls == c->stop_at ? 7 : 0;
}

static int stream(larder *db, const char *key, struct collect *c)
{
	c->len = 0;
	c->calls = 0;
	return larder_get_stream(db, "default", key, strlen(key), "v", 1,
				 collect, c);
}

static void expect_stream(larder *db, const char *key, size_t size)
{
	struct collect c;
	memset(&c, 0, sizeof c);
	int rc = stream(db, key, &c);
	if (rc != 0)
		test_fail(__FILE__, __LINE__, "stream(%s): %d (%s): %s", key,
			  rc, larder_strerror(rc), larder_errmsg(db));
	ASSERT_EQ(c.len, size);
	ASSERT(test_check_pattern(c.buf, size, seed_of(key)));
	free(c.buf);
}

/* ---------------------------------------------------------------------- */
/* Mapping only what nobody else can change                                */

TEST(own_large_entry_is_mapped_zero_copy)
{
	larder *db = open_store();
	PUT(db, "big", 1 * MiB, 0);
	larder_entry *e;
	ASSERT_RC(db, larder_get(&e, db, "default", "big", 3, "v", 1), 0);
	ASSERT(larder_entry_is_mapped(e));
	ASSERT(
	    test_check_pattern(larder_entry_data(e), 1 * MiB, seed_of("big")));
	larder_entry_release(e);
	larder_close(db);
}

TEST(payload_mapped_or_read_is_verified_either_way)
{
	/* Between the map threshold and the read ceiling a handle maps,
	 * maps and populates, or reads, whichever it measured cheapest: each
	 * serves the payload, and each finds a flipped byte before anything
	 * is served. */
	for (int how = 1; how <= 3; how++) {
		larder *db = open_store();
		ldr_test_set_load(db, how);
		PUT(db, "mid", 1 * MiB, 0);
		larder_entry *e;
		ASSERT_RC(db, larder_get(&e, db, "default", "mid", 3, "v", 1),
			  0);
		ASSERT_EQ(larder_entry_is_mapped(e), how != 2);
		ASSERT(test_check_pattern(larder_entry_data(e), 1 * MiB,
					  seed_of("mid")));
		larder_entry_release(e);
		flip_near_end(entry_path("mid"), 10);
		ASSERT_RC(db, larder_get(&e, db, "default", "mid", 3, "v", 1),
			  LARDER_ENOTFOUND);
		ASSERT(e == NULL);
		ASSERT_EQ(larder_counter(db, LARDER_CTR_CHECKSUM_FAIL), 1);
		larder_close(db);
	}
}

TEST(a_handle_maps_or_reads_whichever_it_measured_cheaper)
{
	/* Where faults are dear a copy wins, where they are cheap the
	 * mapping: the choice follows the handle's measurements (set here,
	 * so that the test does not depend on this machine's speed). */
	larder *db = open_store();
	PUT(db, "mid", 1 * MiB, 0);
	for (int round = 0; round < 3; round++) {
		int map_wins = round > 0;
		ldr_test_set_load_cost(
		    db, 1 * MiB + 128, round == 1 ? 1000 : 1000000,
		    round == 0 ? 1000 : 1000000, round == 2 ? 1000 : 1000000);
		larder_entry *e;
		ASSERT_RC(db, larder_get(&e, db, "default", "mid", 3, "v", 1),
			  0);
		ASSERT_EQ(larder_entry_is_mapped(e), map_wins);
		ASSERT(test_check_pattern(larder_entry_data(e), 1 * MiB,
					  seed_of("mid")));
		larder_entry_release(e);
	}
	larder_close(db);
}

TEST(payload_above_the_read_ceiling_is_mapped_even_where_reading_wins)
{
	/* No heap copy of a large payload, whatever was measured: past 8
	 * MiB a handle told to read (as if reading had won) still maps. */
	larder *db = open_store();
	ldr_test_set_load(db, 2);
	PUT(db, "large", 9 * MiB, 0);
	larder_entry *e;
	ASSERT_RC(db, larder_get(&e, db, "default", "large", 5, "v", 1), 0);
	ASSERT(larder_entry_is_mapped(e));
	ASSERT(test_check_pattern(larder_entry_data(e), 9 * MiB,
				  seed_of("large")));
	larder_entry_release(e);
	larder_close(db);
}

TEST(entry_another_user_owns_is_read_and_later_writes_never_reach_the_holder)
{
	/* Its owner can chmod it and write into it in place at any time:
	 * a mapping would show those bytes after they were verified. */
	larder *db = open_store();
	PUT(db, "theirs", 1 * MiB, 0);
	const char *path = entry_path("theirs");
	ASSERT_EQ(chown(path, OTHER_UID, OTHER_UID), 0);
	larder_entry *e;
	ASSERT_RC(db, larder_get(&e, db, "default", "theirs", 6, "v", 1), 0);
	ASSERT(!larder_entry_is_mapped(e));
	uint8_t junk[4096];
	memset(junk, 0xEE, sizeof junk);
	for (off_t off = 8192; off < (off_t)MiB; off += 64 * KiB)
		poke(path, off, junk, sizeof junk);
	ASSERT(test_check_pattern(larder_entry_data(e), 1 * MiB,
				  seed_of("theirs")));
	larder_entry_release(e);
	larder_close(db);
}

TEST(own_entry_with_a_group_write_bit_is_read_not_mapped)
{
	/* Anyone in the group could write into it: as good as another's. */
	larder *db = open_store();
	PUT(db, "gw", 1 * MiB, 0);
	ASSERT_EQ(chmod(entry_path("gw"), 0664), 0);
	larder_entry *e;
	ASSERT_RC(db, larder_get(&e, db, "default", "gw", 2, "v", 1), 0);
	ASSERT(!larder_entry_is_mapped(e));
	larder_entry_release(e);
	larder_close(db);
}

TEST(trust_local_still_verifies_an_entry_another_user_owns)
{
	/* LARDER_OPEN_TRUST_LOCAL trusts files only trusted hands write. */
	larder_opts o = LARDER_OPTS_INIT;
	o.flags = LARDER_OPEN_TRUST_LOCAL;
	larder *db = open_store_opts(&o);
	PUT(db, "small", 3000, 0);
	PUT(db, "large", 1 * MiB, 0);
	const char *keys[] = {"small", "large"};
	for (int i = 0; i < 2; i++) {
		const char *path = entry_path(keys[i]);
		ASSERT_EQ(chown(path, OTHER_UID, OTHER_UID), 0);
		flip_near_end(path, 10);
		larder_entry *e = NULL;
		int rc = larder_get(&e, db, "default", keys[i], strlen(keys[i]),
				    "v", 1);
		if (rc == 0)
			test_fail(__FILE__, __LINE__,
				  "served damaged bytes of '%s' unverified",
				  keys[i]);
		ASSERT_EQ(rc, LARDER_ENOTFOUND);
	}
	larder_close(db);
}

TEST(trust_local_verifies_a_small_entry_anyway)
{
	/* Hashing a small file costs less than the fstat that would tell
	 * whether it is safe to trust (docs/performance.md): it is hashed,
	 * so a damaged one is caught even in a file of our own. */
	larder_opts o = LARDER_OPTS_INIT;
	o.flags = LARDER_OPEN_TRUST_LOCAL;
	larder *db = open_store_opts(&o);
	PUT(db, "small", 3000, 0);
	flip_near_end(entry_path("small"), 10);
	larder_entry *e = NULL;
	int rc = larder_get(&e, db, "default", "small", 5, "v", 1);
	if (rc == 0)
		test_fail(__FILE__, __LINE__, "served a damaged small entry");
	ASSERT_EQ(rc, LARDER_ENOTFOUND);
	ASSERT_EQ(larder_counter(db, LARDER_CTR_CHECKSUM_FAIL), 1);
	larder_close(db);
}

/* Entry directories held open (file.c, ldr_entry_load). Without the
 * memo: every get reads the file. */

static larder *open_unmemoed(void)
{
	larder_opts o = LARDER_OPTS_INIT;
	o.flags = LARDER_OPEN_VERIFY_ALWAYS;
	return open_store_opts(&o);
}

static void expect_hit(larder *db, const char *key)
{
	larder_entry *e = NULL;
	ASSERT_RC(db, larder_get(&e, db, "default", key, strlen(key), "v", 1),
		  0);
	larder_entry_release(e);
}

TEST(a_namespace_made_again_behind_a_held_directory_still_finds_entries)
{
	larder *db = open_unmemoed();
	PUT(db, "a", 3000, 0);
	expect_hit(db, "a");
	expect_hit(db, "a");
	ASSERT_EQ(ldr_test_edirs_held(db), 1);
	/* The namespace's entries removed and made again: the held
	 * directory is an empty one nobody can reach. */
	ASSERT_EQ(test_sh("rm -rf '%s'", test_path("store/ns/default/e")), 0);
	larder_entry *e = NULL;
	ASSERT_EQ(larder_get(&e, db, "default", "a", 1, "v", 1),
		  LARDER_ENOTFOUND);
	PUT(db, "b", 3000, 0);
	expect_hit(db, "b"); /* found from the root, not hidden */
	ASSERT_EQ(ldr_test_edirs_held(db), 1); /* the new directory */
	expect_hit(db, "b");
	larder_close(db);
}

TEST(a_symlink_planted_where_a_held_directory_was_is_refused)
{
	larder *db = open_unmemoed();
	PUT(db, "a", 3000, 0);
	expect_hit(db, "a");
	ASSERT_EQ(ldr_test_edirs_held(db), 1);
	/* The directory replaced by a symlink to a copy of it. */
	const char *dir = test_path("store/ns/default/e");
	ASSERT_EQ(test_sh("cp -a '%s' '%s' && rm -rf '%s'", dir,
			  test_path("copy"), dir),
		  0);
	ASSERT_EQ(symlink(test_path("copy"), dir), 0);
	larder_entry *e = NULL;
	int rc = larder_get(&e, db, "default", "a", 1, "v", 1);
	if (rc == 0)
		test_fail(__FILE__, __LINE__, "served through a symlink");
	ASSERT_EQ(unlink(dir), 0);
	/* The directory itself moved away, a symlink to it in its place:
	 * the held one is still that directory, and serves until its look
	 * (at most a second later) finds the path no longer opens it. */
	PUT(db, "a", 3000, 0);
	expect_hit(db, "a");
	ASSERT_EQ(ldr_test_edirs_held(db), 1);
	ASSERT_EQ(rename(dir, test_path("moved")), 0);
	ASSERT_EQ(symlink(test_path("moved"), dir), 0);
	ldr_test_edirs_due(db);
	rc = larder_get(&e, db, "default", "a", 1, "v", 1);
	if (rc == 0)
		test_fail(__FILE__, __LINE__,
			  "served from a directory moved away, past its look");
	ASSERT_EQ(ldr_test_edirs_held(db), 0);
	larder_close(db);
}

TEST(a_group_store_holds_no_directory_open)
{
	/* A member of the group could move a held directory out of the
	 * store: every open walks from the root there. */
	larder_opts o = LARDER_OPTS_INIT;
	o.flags = LARDER_OPEN_CREATE | LARDER_OPEN_VERIFY_ALWAYS;
	o.create_mode = 0660;
	larder *db = open_store_opts(&o);
	ASSERT_EQ(larder_mode(db), 0660);
	PUT(db, "a", 3000, 0);
	expect_hit(db, "a");
	expect_hit(db, "a");
	ASSERT_EQ(ldr_test_edirs_held(db), 0);
	larder_close(db);
}

/* Four threads, four namespaces, one fresh handle: they race to hold
 * the same directories; every get is a hit, each directory held once. */
static void *hit_namespaces(void *arg)
{
	larder *db = arg;
	static const char *nss[] = {"n0", "n1", "n2", "n3"};
	for (int i = 0; i < 400; i++) {
		larder_entry *e = NULL;
		if (larder_get(&e, db, nss[i % 4], "k", 1, "v", 1) != 0)
			return (void *)1;
		larder_entry_release(e);
	}
	return NULL;
}

TEST(threads_racing_to_hold_directories_all_hit)
{
	larder *db = open_unmemoed();
	static const char *nss[] = {"n0", "n1", "n2", "n3"};
	for (int i = 0; i < 4; i++)
		ASSERT_RC(db,
			  larder_put(db, nss[i], "k", 1, "v", 1, "x", 1, NULL),
			  0);
	larder_close(db);
	db = open_unmemoed();
	pthread_t t[4];
	for (int i = 0; i < 4; i++)
		ASSERT_EQ(pthread_create(&t[i], NULL, hit_namespaces, db), 0);
	for (int i = 0; i < 4; i++) {
		void *r;
		ASSERT_EQ(pthread_join(t[i], &r), 0);
		ASSERT(r == NULL);
	}
	ASSERT_EQ(ldr_test_edirs_held(db), 4);
	larder_close(db);
}

/* ---------------------------------------------------------------------- */
/* Reused buffers (src/store/file.c): a small hit reads into a buffer the  */
/* handle lends and takes back at release, none under AddressSanitizer.   */

#if defined(__SANITIZE_ADDRESS__)
#define BUFS_REUSED 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define BUFS_REUSED 0
#endif
#endif
#ifndef BUFS_REUSED
#define BUFS_REUSED 1
#endif

/* Small entries of different sizes and metadata: "s0".."s5". */
static const size_t small_sizes[] = {12000, 100, 0, 4096, 1, 9000};
#define NSMALL (sizeof small_sizes / sizeof small_sizes[0])

static void put_smalls(larder *db)
{
	for (size_t i = 0; i < NSMALL; i++) {
		char key[8], meta[32];
		snprintf(key, sizeof key, "s%zu", i);
		/* metadata of a different length each, so that a header
		 * left from another entry would show */
		memset(meta, 'a' + (int)i, sizeof meta);
		larder_put_opts po = LARDER_PUT_OPTS_INIT;
		po.meta = meta;
		po.meta_len = 3 + i * 4;
		ASSERT_RC(db, put_pattern_po(db, key, small_sizes[i], &po), 0);
	}
}

/* Whether e is exactly small entry i: size, every payload byte, its
 * version and metadata. */
static int is_small(const larder_entry *e, size_t i)
{
	char key[8];
	snprintf(key, sizeof key, "s%zu", i);
	size_t vlen, mlen;
	const uint8_t *ver = larder_entry_version(&vlen, e);
	const uint8_t *meta = larder_entry_meta(&mlen, e);
	if (larder_entry_size(e) != small_sizes[i] ||
	    !test_check_pattern(larder_entry_data(e), small_sizes[i],
				seed_of(key)) ||
	    vlen != 1 || ver[0] != 'v' || mlen != 3 + i * 4)
		return 0;
	for (size_t k = 0; k < mlen; k++)
		if (meta[k] != 'a' + (int)i)
			return 0;
	return 1;
}

static larder_entry *get_small(larder *db, size_t i)
{
	char key[8];
	snprintf(key, sizeof key, "s%zu", i);
	larder_entry *e = NULL;
	int rc = larder_get(&e, db, "default", key, strlen(key), "v", 1);
	return rc == 0 ? e : NULL;
}

TEST(a_reused_buffer_never_shows_the_previous_entrys_bytes)
{
	larder *db = open_unmemoed();
	put_smalls(db);
	/* Every entry after every other: a larger one before a smaller,
	 * and the other way. */
	for (size_t a = 0; a < NSMALL; a++)
		for (size_t b = 0; b < NSMALL; b++) {
			larder_entry *e = get_small(db, a);
			ASSERT(e != NULL);
			ASSERT(is_small(e, a));
			uintptr_t was = (uintptr_t)e;
			larder_entry_release(e);
			e = get_small(db, b);
			ASSERT(e != NULL);
			ASSERT(is_small(e, b));
			/* The same buffer: the entry handle sits at its
			 * start. */
			if (BUFS_REUSED)
				ASSERT_EQ((uintptr_t)e, was);
			larder_entry_release(e);
		}
	larder_close(db);
}

TEST(more_small_entries_held_than_buffers_are_each_their_own)
{
	larder *db = open_unmemoed();
	put_smalls(db);
	/* More than a handle lends (16), held at once, then released in
	 * another order, twice over. */
	enum { HELD = 40 };
	larder_entry *e[HELD];
	for (int round = 0; round < 2; round++) {
		for (int i = 0; i < HELD; i++) {
			e[i] = get_small(db, (size_t)i % NSMALL);
			ASSERT(e[i] != NULL);
		}
		for (int i = 0; i < HELD; i++)
			ASSERT(is_small(e[i], (size_t)i % NSMALL));
		/* The bound: the rest were allocated to their size. */
		if (BUFS_REUSED)
			ASSERT_EQ(ldr_test_bufs_made(db), 16);
		for (int i = 0; i < HELD; i += 2)
			larder_entry_release(e[i]);
		for (int i = 1; i < HELD; i += 2)
			ASSERT(is_small(e[i], (size_t)i % NSMALL));
		for (int i = 1; i < HELD; i += 2)
			larder_entry_release(e[i]);
		/* All back: as many kept as there are spare slots (4), the
		 * others freed. */
		if (BUFS_REUSED)
			ASSERT_EQ(ldr_test_bufs_made(db), 4);
	}
	larder_close(db);
}

/* Gets and releases small entries, holding up to three at a time, and
 * checks every one. */
static void *get_smalls(void *arg)
{
	larder *db = arg;
	larder_entry *held[3] = {NULL, NULL, NULL};
	size_t which[3] = {0, 0, 0};
	for (int n = 0; n < 3000; n++) {
		int slot = n % 3;
		if (held[slot] && !is_small(held[slot], which[slot]))
			return (void *)1;
		larder_entry_release(held[slot]);
		which[slot] = (size_t)(n * 7 + slot) % NSMALL;
		held[slot] = get_small(db, which[slot]);
		if (!held[slot])
			return (void *)2;
	}
	for (int i = 0; i < 3; i++) {
		if (!is_small(held[i], which[i]))
			return (void *)1;
		larder_entry_release(held[i]);
	}
	return NULL;
}

TEST(threads_sharing_a_handle_get_and_release_small_entries_at_once)
{
	larder *db = open_unmemoed();
	put_smalls(db);
	pthread_t t[4];
	for (int i = 0; i < 4; i++)
		ASSERT_EQ(pthread_create(&t[i], NULL, get_smalls, db), 0);
	for (int i = 0; i < 4; i++) {
		void *r;
		ASSERT_EQ(pthread_join(t[i], &r), 0);
		ASSERT(r == NULL);
	}
	larder_close(db);
}

TEST(a_forked_child_gets_and_releases_small_entries_of_its_own)
{
	larder *db = open_unmemoed();
	put_smalls(db);
	/* Spares in the handle, and an entry held across the fork. */
	for (size_t i = 0; i < NSMALL; i++)
		larder_entry_release(get_small(db, i));
	larder_entry *kept = get_small(db, 3);
	ASSERT(kept != NULL);
	pid_t pid = fork();
	ASSERT(pid >= 0);
	if (pid == 0) {
		int bad = !is_small(kept, 3);
		larder_entry_release(kept);
		for (int n = 0; n < 200 && !bad; n++) {
			larder_entry *e = get_small(db, (size_t)n % NSMALL);
			bad = !e || !is_small(e, (size_t)n % NSMALL);
			larder_entry_release(e);
		}
		larder_close(db);
		_exit(bad);
	}
	for (int n = 0; n < 200; n++) {
		larder_entry *e = get_small(db, (size_t)(n + 1) % NSMALL);
		ASSERT(e != NULL);
		ASSERT(is_small(e, (size_t)(n + 1) % NSMALL));
		larder_entry_release(e);
	}
	int status;
	ASSERT_EQ(waitpid(pid, &status, 0), pid);
	ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	ASSERT(is_small(kept, 3));
	larder_entry_release(kept);
	larder_close(db);
}

TEST(small_entries_stay_whole_after_their_handle_is_closed)
{
	larder *db = open_unmemoed();
	put_smalls(db);
	larder_entry *e[NSMALL];
	for (size_t i = 0; i < NSMALL; i++) {
		/* each after a release, so that they are reused buffers */
		larder_entry_release(get_small(db, (i + 1) % NSMALL));
		e[i] = get_small(db, i);
		ASSERT(e[i] != NULL);
	}
	larder_close(db);
	for (size_t i = 0; i < NSMALL; i++) {
		ASSERT(is_small(e[i], i));
		larder_entry_release(e[i]);
	}
}

/* ---------------------------------------------------------------------- */
/* Streaming                                                               */

TEST(stream_hands_out_exactly_the_payload_at_every_size)
{
	static const size_t sizes[] = {
	    0,	      1,	   1000,       16 * KiB, 64 * KiB - 1,
	    64 * KiB, 1 * MiB + 3, 3 * MiB + 1};
	larder *db = open_store();
	for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
		for (int z = 0; z < 2; z++) {
			for (int theirs = 0; theirs < 2; theirs++) {
				char key[64];
				snprintf(key, sizeof key, "k%zu-%d-%d",
					 sizes[i], z, theirs);
				PUT(db, key, sizes[i], z ? LARDER_PUT_ZSTD : 0);
				if (theirs)
					ASSERT_EQ(chown(entry_path(key),
							OTHER_UID, OTHER_UID),
						  0);
				expect_stream(db, key, sizes[i]);
			}
		}
	}
	ASSERT_EQ(quarantined_files(), 0);
	larder_close(db);
}

TEST(stream_of_a_miss_or_a_damaged_entry_never_calls_the_sink)
{
	larder *db = open_store();
	struct collect c;
	memset(&c, 0, sizeof c);
	ASSERT_RC(db, stream(db, "absent", &c), LARDER_ENOTFOUND);
	ASSERT_EQ(c.calls, 0);

	/* A flipped payload byte, small and large, ours and another's. */
	static const size_t sizes[] = {5000, 3 * MiB};
	for (int i = 0; i < 2; i++) {
		for (int theirs = 0; theirs < 2; theirs++) {
			char key[32];
			snprintf(key, sizeof key, "bad%d%d", i, theirs);
			PUT(db, key, sizes[i], 0);
			const char *path = entry_path(key);
			if (theirs)
				ASSERT_EQ(chown(path, OTHER_UID, OTHER_UID), 0);
			flip_near_end(path, 10);
			ASSERT_RC(db, stream(db, key, &c), LARDER_ENOTFOUND);
			ASSERT_EQ(c.calls, 0);
			ASSERT(access(path, F_OK) != 0); /* quarantined */
		}
	}
	free(c.buf);
	larder_close(db);
}

TEST(stream_fails_when_the_file_changes_between_verification_and_hand_out)
{
	/* The sink's first call is the earliest a byte is out: from then on
	 * its owner rewrites or cuts the file. The read must end in
	 * LARDER_ECORRUPT, counted and quarantined, never in success. */
	for (int how = 0; how < 4; how++) {
		larder *db = open_store();
		char key[32];
		snprintf(key, sizeof key, "changing%d", how);
		PUT(db, key, 3 * MiB, how >= 2 ? LARDER_PUT_ZSTD : 0);
		const char *path = entry_path(key);
		ASSERT_EQ(chown(path, OTHER_UID, OTHER_UID), 0);
		struct collect c;
		memset(&c, 0, sizeof c);
		c.poke = path;
		c.poke_off = -100;
		c.truncate = how % 2;
		uint64_t bad = larder_counter(db, LARDER_CTR_CHECKSUM_FAIL);
		int rc = stream(db, key, &c);
		if (rc == 0)
			test_fail(__FILE__, __LINE__,
				  "case %d: a changed file streamed as good",
				  how);
		ASSERT_RC(db, rc, LARDER_ECORRUPT);
		ASSERT(c.calls >= 1);
		ASSERT(strstr(larder_errmsg(db), "quarantined") != NULL);
		ASSERT_EQ(larder_counter(db, LARDER_CTR_CHECKSUM_FAIL),
			  bad + 1);
		ASSERT(access(path, F_OK) != 0);
		free(c.buf);
		larder_close(db);
		ASSERT_EQ(test_sh("rm -rf '%s'", test_path("store")), 0);
	}
}

TEST(stream_returns_what_the_sink_returns_when_it_stops)
{
	larder *db = open_store();
	PUT(db, "s", 3 * MiB, 0);
	ASSERT_EQ(chown(entry_path("s"), OTHER_UID, OTHER_UID), 0);
	struct collect c;
	memset(&c, 0, sizeof c);
	c.stop_at = 2;
	uint64_t hits = larder_counter(db, LARDER_CTR_HITS);
	ASSERT_EQ(stream(db, "s", &c), 7);
	ASSERT_EQ(c.calls, 2);
	/* What it got is the payload's beginning. */
	ASSERT(c.len > 0 && c.len < 3 * MiB);
	uint8_t *want = xmalloc(3 * MiB);
	test_fill_pattern(want, 3 * MiB, seed_of("s"));
	ASSERT_MEM_EQ(c.buf, want, c.len);
	ASSERT_EQ(larder_counter(db, LARDER_CTR_HITS), hits + 1);
	free(want);
	free(c.buf);
	larder_close(db);
}

/* ---------------------------------------------------------------------- */
/* Readers against a writer who rewrites the file in place                 */

/* A reader as READER_UID: n gets and n streams of `key`, every byte of
 * each success checked. Exits 0, or 1 after wrong bytes, 2 on any other
 * failure. */
static void reader(const char *key, size_t size, int n, int go_fd)
{
	char c;
	if (read(go_fd, &c, 1) != 1)
		_exit(2);
	if (setresgid(READER_UID, READER_UID, READER_UID) != 0 ||
	    setresuid(READER_UID, READER_UID, READER_UID) != 0)
		_exit(2);
	larder *db = NULL;
	if (larder_open(&db, test_path("store"), NULL) != 0)
		_exit(2);
	struct collect col;
	memset(&col, 0, sizeof col);
	for (int i = 0; i < n; i++) {
		larder_entry *e = NULL;
		int rc =
		    larder_get(&e, db, "default", key, strlen(key), "v", 1);
		if (rc == 0 && (larder_entry_size(e) != size ||
				!test_check_pattern(larder_entry_data(e), size,
						    seed_of(key))))
			_exit(1);
		if (rc != 0 && rc != LARDER_ENOTFOUND)
			_exit(2);
		larder_entry_release(e);
		rc = stream(db, key, &col);
		if (rc == 0 &&
		    (col.len != size ||
		     !test_check_pattern(col.buf, size, seed_of(key))))
			_exit(1);
		if (rc != 0 && rc != LARDER_ENOTFOUND && rc != LARDER_ECORRUPT)
			_exit(2);
	}
	larder_close(db);
	_exit(0);
}

TEST(rewrite_and_truncate_in_place_during_reads_never_serve_wrong_bytes)
{
	/* The file's owner (played by root: another uid than the readers')
	 * damages the file in place and repairs it, over and over, while
	 * readers get and stream it. Every read that succeeds must be the
	 * entry's exact bytes; a mapped read would also die of SIGBUS when
	 * the file is cut short. */
	const size_t size = 2 * MiB;
	ASSERT_EQ(chmod(test_dir(), 0755), 0);
	larder_opts o = LARDER_OPTS_INIT;
	o.create_mode = 0644;
	larder *db = open_store_opts(&o);
	PUT(db, "hot", size, 0);
	larder_close(db);
	const char *path = entry_path("hot");
	ASSERT_EQ(chown(path, OTHER_UID, OTHER_UID), 0);
	size_t len;
	uint8_t *orig = read_file(path, &len);

	int go[2], done[2];
	ASSERT_EQ(pipe(go), 0);
	ASSERT_EQ(pipe(done), 0);
	enum { READERS = 2, ROUNDS = 150 };
	pid_t pids[READERS];
	for (int i = 0; i < READERS; i++) {
		pids[i] = fork();
		ASSERT(pids[i] >= 0);
		if (pids[i] == 0) {
			close(go[1]);
			reader("hot", size, ROUNDS, go[0]);
		}
	}
	close(go[0]);
	/* The writer: it damages the file once before the readers start,
	 * then keeps damaging and repairing it until they are done. */
	pid_t writer = fork();
	ASSERT(writer >= 0);
	if (writer == 0) {
		close(done[1]);
		int fd = open(path, O_RDWR);
		if (fd < 0)
			_exit(2);
		uint8_t junk[8192];
		memset(junk, 0xA5, sizeof junk);
		for (unsigned long i = 0;; i++) {
			off_t off = (off_t)((i * 7919 * 4096) % (len - 8192));
			switch (i % 3) {
			case 0: /* bytes changed in place */
				ldr_pwrite_full(fd, junk, sizeof junk, off);
				break;
			case 1: /* cut short */
				if (ftruncate(fd, (off_t)len / 3) != 0)
					_exit(2);
				break;
			default: /* a header byte */
				ldr_pwrite_full(fd, junk, 1, 40);
				break;
			}
			if (i == 0) {
				char g[READERS];
				memset(g, 'g', sizeof g);
				if (write(go[1], g, sizeof g) != READERS)
					_exit(2);
			}
			if (ldr_pwrite_full(fd, orig, len, 0) != 0)
				_exit(2);
			struct pollfd p = {done[0], POLLIN, 0};
			if (poll(&p, 1, 0) == 1)
				_exit(0);
		}
	}
	close(go[1]);
	close(done[0]);
	for (int i = 0; i < READERS; i++) {
		int st;
		ASSERT_EQ(waitpid(pids[i], &st, 0), pids[i]);
		if (WIFSIGNALED(st))
			test_fail(__FILE__, __LINE__,
				  "reader died of signal %d", WTERMSIG(st));
		if (WEXITSTATUS(st) == 1)
			test_fail(__FILE__, __LINE__,
				  "a reader was handed wrong bytes");
		ASSERT_EQ(WEXITSTATUS(st), 0);
	}
	close(done[1]);
	int st;
	ASSERT_EQ(waitpid(writer, &st, 0), writer);
	ASSERT(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	free(orig);
}

/* ---------------------------------------------------------------------- */
/* Compressed entries: bounded memory, a cap on what is held               */

/* A zstd entry of `size` zero bytes, written in 1 MiB pieces. */
static void put_zeros(larder *db, const char *key, size_t size)
{
	larder_put_opts po = LARDER_PUT_OPTS_INIT;
	po.flags = LARDER_PUT_ZSTD;
	larder_writer *w;
	ASSERT_RC(db,
		  larder_writer_begin(&w, db, "default", key, strlen(key), "v",
				      1, &po),
		  0);
	uint8_t *zero = calloc(1, MiB);
	ASSERT(zero != NULL);
	for (size_t left = size; left;) {
		size_t n = left < MiB ? left : MiB;
		ASSERT_RC(db, larder_writer_write(w, zero, n), 0);
		left -= n;
	}
	free(zero);
	ASSERT_RC(db, larder_writer_commit(w), 0);
}

static int count_bytes(const void *buf, size_t len, void *payload)
{
	(void)buf;
	*(uint64_t *)payload += len;
	return 0;
}

static int count_zeros(const void *buf, size_t len, void *payload)
{
	const uint8_t *p = buf;
	for (size_t i = 0; i < len; i++)
		if (p[i])
			return 9;
	*(uint64_t *)payload += len;
	return 0;
}

TEST(zstd_entry_over_the_cap_fails_clearly_and_streams_in_full)
{
	larder_opts o = LARDER_OPTS_INIT;
	o.max_in_memory = 1 * MiB;
	larder *db = open_store_opts(&o);
	put_zeros(db, "z", 4 * MiB);
	put_zeros(db, "small", 1 * MiB);
	larder_entry *e = NULL;
	ASSERT_RC(db, larder_get(&e, db, "default", "z", 1, "v", 1),
		  LARDER_ENOMEM);
	ASSERT(e == NULL);
	ASSERT(strstr(larder_errmsg(db), "larder_get_stream") != NULL);
	ASSERT(strstr(larder_errmsg(db), "max_in_memory") != NULL);
	/* Nothing wrong with the entry itself. */
	ASSERT(access(entry_path("z"), F_OK) == 0);
	ASSERT_EQ(larder_counter(db, LARDER_CTR_QUARANTINED), 0);
	uint64_t n = 0;
	ASSERT_RC(
	    db,
	    larder_get_stream(db, "default", "z", 1, "v", 1, count_zeros, &n),
	    0);
	ASSERT_EQ(n, 4 * MiB);
	/* At the cap is fine. */
	ASSERT_RC(db, larder_get(&e, db, "default", "small", 5, "v", 1), 0);
	ASSERT_EQ(larder_entry_size(e), 1 * MiB);
	larder_entry_release(e);
	larder_close(db);
}

static int count_calls(larder_fill *f, void *payload)
{
	(void)f;
	++*(int *)payload;
	return 0;
}

TEST(get_or_fill_of_an_entry_over_the_cap_fails_without_loading_again)
{
	larder_opts o = LARDER_OPTS_INIT;
	o.max_in_memory = 1 * MiB;
	larder *db = open_store_opts(&o);
	put_zeros(db, "z", 4 * MiB);
	larder_entry *e = NULL;
	int outcome = -1, loads = 0;
	/* The entry is there and good: running the load again would only
	 * make the same too-big payload, uncached, on every call. */
	ASSERT_RC(db,
		  larder_get_or_fill(&e, &outcome, db, "default", "z", 1, "v",
				     1, NULL, count_calls, &loads, NULL),
		  LARDER_ENOMEM);
	ASSERT(e == NULL);
	ASSERT_EQ(loads, 0);
	ASSERT(strstr(larder_errmsg(db), "max_in_memory") != NULL);
	larder_close(db);
}

TEST(a_copy_of_an_entry_it_may_not_map_is_capped_too)
{
	/* Another member's entry is copied, not mapped: the copy is as big
	 * as its maker chose (a sparse file costs no disk), so it is capped
	 * like a decompression. The reader's own entry is mapped, uncapped;
	 * any entry streams. */
	larder_opts o = LARDER_OPTS_INIT;
	o.max_in_memory = 1 * MiB;
	larder *db = open_store_opts(&o);
	PUT(db, "theirs", 4 * MiB, 0);
	PUT(db, "mine", 4 * MiB, 0);
	ASSERT_EQ(chown(entry_path("theirs"), OTHER_UID, OTHER_UID), 0);
	larder_entry *e = NULL;
	ASSERT_RC(db, larder_get(&e, db, "default", "theirs", 6, "v", 1),
		  LARDER_ENOMEM);
	ASSERT(e == NULL);
	ASSERT(strstr(larder_errmsg(db), "max_in_memory") != NULL);
	ASSERT(strstr(larder_errmsg(db), "larder_get_stream") != NULL);
	ASSERT_EQ(larder_counter(db, LARDER_CTR_QUARANTINED), 0);
	ASSERT_RC(db, larder_get(&e, db, "default", "mine", 4, "v", 1), 0);
	ASSERT(larder_entry_is_mapped(e));
	larder_entry_release(e);
	uint64_t n = 0;
	ASSERT_RC(db,
		  larder_get_stream(db, "default", "theirs", 6, "v", 1,
				    count_bytes, &n),
		  0);
	ASSERT_EQ(n, 4 * MiB);
	larder_close(db);
}

TEST(version_1_opts_are_accepted_with_the_default_cap)
{
	/* A program built against version 1 of larder_opts passes a struct
	 * without max_in_memory: the library must not read past it. */
	struct v1 {
		unsigned version, flags;
		int fsync;
		unsigned create_mode;
		int create_fsync;
		size_t mmap_threshold;
		larder_log_fn log;
		void *log_payload;
		int log_level;
	} *o = calloc(1, sizeof *o);
	ASSERT(o != NULL);
	o->version = 1;
	o->flags = LARDER_OPEN_CREATE;
	larder *db = NULL;
	ASSERT_EQ(larder_open(&db, test_path("store"), (larder_opts *)o), 0);
	put_zeros(db, "z", 2 * MiB);
	larder_entry *e;
	ASSERT_RC(db, larder_get(&e, db, "default", "z", 1, "v", 1), 0);
	ASSERT_EQ(larder_entry_size(e), 2 * MiB);
	larder_entry_release(e);
	larder_close(db);
	o->version = LARDER_OPTS_VERSION + 1;
	ASSERT_EQ(larder_open(&db, test_path("store"), (larder_opts *)o),
		  LARDER_EINVAL);
	free(o);
}

TEST(zstd_bomb_streams_in_bounded_memory)
{
	/* 1 GiB of zeros and a bit (over the default cap) is about 32 KiB
	 * on disk. Streamed under an address space limit far below it, it
	 * must arrive whole; held, it is refused by the cap before anything
	 * is allocated. Skipped under sanitizers, whose shadow memory needs
	 * more address space. */
	char asan[4096];
	test_asan_runtime(asan, sizeof asan);
	if (asan[0]) {
		test_skip("ASan reserves more address space than the limit "
			  "this test sets");
	}
	larder *db = open_store();
	put_zeros(db, "bomb", 1025 * MiB);
	struct stat st;
	ASSERT_EQ(stat(entry_path("bomb"), &st), 0);
	ASSERT(st.st_size < 1 * MiB);
	larder_close(db);
	pid_t pid = fork();
	ASSERT(pid >= 0);
	if (pid == 0) {
		struct rlimit rl = {300 * MiB, 300 * MiB};
		if (setrlimit(RLIMIT_AS, &rl) != 0)
			_exit(3);
		if (larder_open(&db, test_path("store"), NULL) != 0)
			_exit(4);
		uint64_t n = 0;
		int rc = larder_get_stream(db, "default", "bomb", 4, "v", 1,
					   count_zeros, &n);
		larder_entry *e = NULL;
		/* Held: refused by the cap, before allocating. */
		int grc = larder_get(&e, db, "default", "bomb", 4, "v", 1);
		int capped = strstr(larder_errmsg(db), "max_in_memory") != 0;
		larder_close(db);
		_exit(rc == 0 && n == 1025 * MiB && grc == LARDER_ENOMEM &&
			      capped
			  ? 0
			  : 1);
	}
	int status;
	ASSERT_EQ(waitpid(pid, &status, 0), pid);
	ASSERT(WIFEXITED(status));
	ASSERT_EQ(WEXITSTATUS(status), 0);
}

/* A zstd entry whose stored bytes are replaced by `junk` (resealed: its
 * checksums match), as a buggy or hostile writer could publish. */
static void break_frame(const char *key, int how)
{
	size_t len;
	const char *path = entry_path(key);
	uint8_t *buf = read_file(path, &len);
	uint32_t hl = (uint32_t)buf[12] | (uint32_t)buf[13] << 8;
	if (how == 0) /* not zstd at all */
		memset(buf + hl, 0x42, len - hl);
	else /* cut the frame short */
		len = hl + (len - hl) / 2;
	uint64_t stored = len - hl;
	for (int i = 0; i < 8; i++)
		buf[40 + i] = (uint8_t)(stored >> (8 * i));
	reseal(buf, len);
	write_file(path, buf, len);
	free(buf);
}

struct state_seen {
	int state, quarantined, calls;
	char problem[128];
};

static int note_state(const larder_entry_info *info, void *payload)
{
	struct state_seen *s = payload;
	s->state = info->state;
	s->quarantined = info->quarantined;
	s->calls++;
	snprintf(s->problem, sizeof s->problem, "%s",
		 info->problem ? info->problem : "");
	return 0;
}

TEST(verify_decompresses_zstd_entries_and_reports_one_that_will_not)
{
	larder *db = open_store();
	for (int how = 0; how < 2; how++) {
		char key[16];
		snprintf(key, sizeof key, "z%d", how);
		PUT(db, key, 300 * KiB, LARDER_PUT_ZSTD);
		break_frame(key, how);
		struct state_seen s;
		memset(&s, 0, sizeof s);
		/* The header alone says nothing is wrong ... */
		ASSERT_RC(db,
			  larder_inspect(db, "default", key, 2, "v", 1, 0,
					 note_state, &s),
			  0);
		ASSERT_EQ(s.state, LARDER_STATE_OK);
		/* ... verifying it does. */
		ASSERT_RC(db,
			  larder_inspect(db, "default", key, 2, "v", 1,
					 LARDER_WALK_VERIFY, note_state, &s),
			  0);
		ASSERT_EQ(s.state, LARDER_STATE_CORRUPT);
		ASSERT(strstr(s.problem, "zstd") != NULL);
		/* Readers never serve it either way. */
		larder_entry *e = NULL;
		ASSERT_RC(db, larder_get(&e, db, "default", key, 2, "v", 1),
			  LARDER_ENOTFOUND);
	}
	larder_close(db);
}

/* ---------------------------------------------------------------------- */
/* Formats newer than this build                                           */

/* Rewrite the entry at path as format `format`, resealed or not. */
static void set_format(const char *path, uint32_t format, int seal)
{
	size_t len;
	uint8_t *buf = read_file(path, &len);
	for (int i = 0; i < 4; i++)
		buf[8 + i] = (uint8_t)(format >> (8 * i));
	if (seal)
		reseal(buf, len);
	write_file(path, buf, len);
	free(buf);
}

TEST(flipped_bit_in_the_format_field_is_quarantined_and_refilled)
{
	for (int bit = 1; bit < 32; bit += 7) {
		larder *db = open_store();
		PUT(db, "f", 5000, 0);
		const char *path = entry_path("f");
		set_format(path, LDR_FORMAT ^ (1u << bit), 0);
		uint64_t newer = larder_counter(db, LARDER_CTR_NEWER_FORMAT);
		larder_entry *e = NULL;
		ASSERT_RC(db, larder_get(&e, db, "default", "f", 1, "v", 1),
			  LARDER_ENOTFOUND);
		ASSERT_EQ(larder_counter(db, LARDER_CTR_NEWER_FORMAT), newer);
		ASSERT_EQ(larder_counter(db, LARDER_CTR_QUARANTINED), 1);
		/* The key is not blocked: a put stores it anew. */
		ASSERT_RC(db, put_pattern(db, "f", 5000, 0), 0);
		ASSERT_RC(db, larder_get(&e, db, "default", "f", 1, "v", 1), 0);
		larder_entry_release(e);
		larder_close(db);
		ASSERT_EQ(test_sh("rm -rf '%s'", test_path("store")), 0);
	}
}

TEST(stub_with_the_magic_and_format_2_is_corrupt_and_replaced_by_put)
{
	larder *db = open_store();
	PUT(db, "stub", 5000, 0);
	const char *path = entry_path("stub");
	uint8_t stub[LDR_HDR_FIXED];
	memset(stub, 0, sizeof stub);
	memcpy(stub, LDR_MAGIC, LDR_MAGIC_LEN);
	stub[8] = 2;
	write_file(path, stub, sizeof stub);
	/* Written over the stub: put must store, not say "already there". */
	ASSERT_RC(db, put_pattern(db, "stub", 5000, 0), 0);
	larder_entry *e = NULL;
	ASSERT_RC(db, larder_get(&e, db, "default", "stub", 4, "v", 1), 0);
	ASSERT(test_check_pattern(larder_entry_data(e), 5000, seed_of("stub")));
	larder_entry_release(e);
	/* And a reader quarantines one on its own (once the memo looks at
	 * the file again: docs/format.md). */
	write_file(path, stub, sizeof stub);
	ldr_test_memo_age(db, 1000);
	ASSERT_RC(db, larder_get(&e, db, "default", "stub", 4, "v", 1),
		  LARDER_ENOTFOUND);
	ASSERT(access(path, F_OK) != 0);
	larder_close(db);
}

TEST(put_over_a_newer_format_entry_fails_and_leaves_it)
{
	larder *db = open_store();
	PUT(db, "n", 5000, 0);
	const char *path = entry_path("n");
	set_format(path, LDR_FORMAT + 1, 1);
	size_t before_len;
	uint8_t *before = read_file(path, &before_len);
	int rc = put_pattern(db, "n", 5000, 0);
	if (rc == LARDER_EXISTS || rc == 0)
		test_fail(__FILE__, __LINE__,
			  "put reported a store it did not make (%d)", rc);
	ASSERT_RC(db, rc, LARDER_EVERSION);
	ASSERT(strstr(larder_errmsg(db), "newer") != NULL);
	size_t after_len;
	uint8_t *after = read_file(path, &after_len);
	ASSERT_EQ(after_len, before_len);
	ASSERT_MEM_EQ(after, before, before_len);
	/* No temp file left beside it. */
	char cmd[4400];
	snprintf(cmd, sizeof cmd,
		 "test -z \"$(ls -A \"$(dirname '%s')\" | "
		 "grep tmp)\"",
		 path);
	ASSERT_EQ(test_sh("%s", cmd), 0);
	free(before);
	free(after);
	larder_close(db);
}

/* ---------------------------------------------------------------------- */
/* Anything but a regular file at an entry's or a head's name              */

enum trap { T_FIFO, T_DIR, T_FULL_DIR, T_SOCKET, T_DEVICE, T_SYMLINK };
static const char *const trap_names[] = {"fifo",   "dir",    "full-dir",
					 "socket", "device", "symlink"};

static void plant(const char *path, enum trap t)
{
	ASSERT_EQ(unlink(path) == 0 || errno == ENOENT, 1);
	switch (t) {
	case T_FIFO:
		ASSERT_EQ(mkfifo(path, 0644), 0);
		break;
	case T_DIR:
		ASSERT_EQ(mkdir(path, 0755), 0);
		break;
	case T_FULL_DIR:
		ASSERT_EQ(mkdir(path, 0755), 0);
		ASSERT_EQ(test_sh("echo x > '%s/inside'", path), 0);
		break;
	case T_SOCKET: {
		int s = socket(AF_UNIX, SOCK_STREAM, 0);
		ASSERT(s >= 0);
		struct sockaddr_un sa;
		memset(&sa, 0, sizeof sa);
		sa.sun_family = AF_UNIX;
		ASSERT(strlen(path) < sizeof sa.sun_path);
		memcpy(sa.sun_path, path, strlen(path));
		ASSERT_EQ(bind(s, (struct sockaddr *)&sa, sizeof sa), 0);
		close(s);
		break;
	}
	case T_DEVICE: /* what /dev/null is: reads as empty */
		ASSERT_EQ(mknod(path, S_IFCHR | 0644, makedev(1, 3)), 0);
		break;
	case T_SYMLINK:
		ASSERT_EQ(symlink("/etc/passwd", path), 0);
		break;
	}
}

TEST(anything_but_a_file_at_an_entry_name_is_quarantined_and_replaced)
{
	/* The store is kept in a short path: a socket's name must fit in
	 * sun_path. */
	alarm(20); /* a hang (a FIFO read) fails the test */
	for (int t = T_FIFO; t <= T_SYMLINK; t++) {
		larder *db = open_store();
		PUT(db, "t", 5000, 0);
		const char *path = entry_path("t");
		plant(path, (enum trap)t);
		/* verify reports it, repair moves it */
		struct state_seen s;
		memset(&s, 0, sizeof s);
		ASSERT_RC(db,
			  larder_walk(db, "default", LARDER_WALK_VERIFY,
				      note_state, &s),
			  0);
		if (s.calls != 1 || s.state != LARDER_STATE_CORRUPT)
			test_fail(__FILE__, __LINE__, "%s: walked %d, state %d",
				  trap_names[t], s.calls, s.state);
		ASSERT(strstr(s.problem, "not a regular file") != NULL);
		/* get misses (not an error), and clears the name */
		larder_entry *e = NULL;
		int rc = larder_get(&e, db, "default", "t", 1, "v", 1);
		if (rc != LARDER_ENOTFOUND)
			test_fail(__FILE__, __LINE__, "%s: get %d (%s): %s",
				  trap_names[t], rc, larder_strerror(rc),
				  larder_errmsg(db));
		struct stat st;
		ASSERT(lstat(path, &st) != 0);
		ASSERT_EQ(quarantined_files(), 1);
		/* planted again: put replaces it, stream then hits */
		plant(path, (enum trap)t);
		ASSERT_RC(db, put_pattern(db, "t", 5000, 0), 0);
		expect_stream(db, "t", 5000);
		/* and once more: a repairing walk moves it */
		plant(path, (enum trap)t);
		memset(&s, 0, sizeof s);
		ASSERT_RC(db,
			  larder_walk(db, "default",
				      LARDER_WALK_VERIFY | LARDER_WALK_REPAIR,
				      note_state, &s),
			  0);
		ASSERT_EQ(s.quarantined, 1);
		ASSERT(lstat(path, &st) != 0);
		struct collect c;
		memset(&c, 0, sizeof c);
		plant(path, (enum trap)t);
		ASSERT_RC(db, stream(db, "t", &c), LARDER_ENOTFOUND);
		ASSERT_EQ(c.calls, 0);
		larder_close(db);
		ASSERT_EQ(test_sh("rm -rf '%s'", test_path("store")), 0);
	}
	alarm(0);
}

TEST(a_huge_sparse_file_at_a_head_name_is_no_head_and_is_not_read)
{
	/* A sparse file costs its maker no disk, whatever size it claims:
	 * a head is never more than 32 bytes and a version, and nothing
	 * bigger is read into memory. A head with a long version (beyond a
	 * first read) still works. */
	larder *db = open_store();
	size_t vlen = 100000;
	char *ver = malloc(vlen);
	ASSERT(ver != NULL);
	memset(ver, 'v', vlen);
	ASSERT_RC(db,
		  larder_put(db, "default", "long", 4, ver, vlen, "x", 1, NULL),
		  0);
	larder_entry *e = NULL;
	ASSERT_RC(db, larder_get(&e, db, "default", "long", 4, NULL, 0), 0);
	size_t got = 0;
	larder_entry_version(&got, e);
	ASSERT_EQ(got, vlen);
	larder_entry_release(e);
	free(ver);
	PUT(db, "h", 5000, 0);
	larder_close(db);
	const char *path = file_path("h", 'h');
	ASSERT_EQ(test_sh("rm -f '%s' && printf '\\211LDRHEAD' > '%s' && "
			  "truncate -s 8G '%s'",
			  path, path, path),
		  0);
	char asan[4096];
	test_asan_runtime(asan, sizeof asan);
	pid_t pid = fork();
	ASSERT(pid >= 0);
	if (pid == 0) {
		struct rlimit rl = {300 * MiB, 300 * MiB};
		if (!asan[0] && setrlimit(RLIMIT_AS, &rl) != 0)
			_exit(3);
		if (larder_open(&db, test_path("store"), NULL) != 0)
			_exit(4);
		int rc = larder_get(&e, db, "default", "h", 1, NULL, 0);
		larder_close(db);
		_exit(rc == LARDER_ENOTFOUND ? 0 : 1);
	}
	int status;
	ASSERT_EQ(waitpid(pid, &status, 0), pid);
	ASSERT(WIFEXITED(status));
	ASSERT_EQ(WEXITSTATUS(status), 0);
}

TEST(anything_but_a_file_at_a_head_name_is_no_head_and_put_replaces_it)
{
	alarm(20);
	for (int t = T_FIFO; t <= T_SYMLINK; t++) {
		larder *db = open_store();
		PUT(db, "h", 5000, 0);
		const char *path = file_path("h", 'h');
		plant(path, (enum trap)t);
		larder_entry *e = NULL;
		int rc = larder_get(&e, db, "default", "h", 1, NULL, 0);
		if (rc != LARDER_ENOTFOUND)
			test_fail(__FILE__, __LINE__, "%s: get %d (%s): %s",
				  trap_names[t], rc, larder_strerror(rc),
				  larder_errmsg(db));
		/* The next put writes a head where the trap was. */
		ASSERT_RC(db, put_pattern(db, "h", 5000, 0), LARDER_EXISTS);
		ASSERT_RC(db, larder_get(&e, db, "default", "h", 1, NULL, 0),
			  0);
		larder_entry_release(e);
		struct stat st;
		ASSERT_EQ(lstat(path, &st), 0);
		ASSERT(S_ISREG(st.st_mode));
		larder_close(db);
		ASSERT_EQ(test_sh("rm -rf '%s'", test_path("store")), 0);
	}
	alarm(0);
}

/* ---------------------------------------------------------------------- */
/* Unverified handles: the header at the lookup, the payload at the verify */

/* Sizes, codecs and owners an unverified handle must treat alike: a file
 * read whole by the first read, one whose payload is left on disk, mapped
 * (ours) or read (another's), a zstd one. */
struct lazy_case {
	size_t size;
	unsigned flags;
	int theirs;
};
static const struct lazy_case lazy_cases[] = {
    {5000, 0, 0},    {3 * MiB, 0, 0},
    {3 * MiB, 0, 1}, {200 * KiB, LARDER_PUT_ZSTD, 0},
    {0, 0, 0},
};
#define N_LAZY (sizeof lazy_cases / sizeof lazy_cases[0])

static void put_lazy_case(larder *db, const char *key,
			  const struct lazy_case *c)
{
	PUT(db, key, c->size, c->flags);
	if (c->theirs)
		ASSERT_EQ(chown(entry_path(key), OTHER_UID, OTHER_UID), 0);
}

TEST(unverified_handle_of_a_damaged_entry_opens_and_its_verify_quarantines_it)
{
	larder *db = open_store();
	uint64_t fails = 0;
	for (size_t i = 0; i < N_LAZY; i++) {
		if (lazy_cases[i].size == 0)
			continue; /* no payload byte to flip */
		char key[32];
		snprintf(key, sizeof key, "bad%zu", i);
		put_lazy_case(db, key, &lazy_cases[i]);
		const char *path = entry_path(key);
		flip_near_end(path, 10);

		larder_entry *e;
		ASSERT_RC(db,
			  larder_get_unverified(&e, db, "default", key,
						strlen(key), "v", 1),
			  0);
		/* The header alone was read: nothing found wrong yet, and
		 * nothing of the payload is handed out. */
		ASSERT_EQ(larder_counter(db, LARDER_CTR_CHECKSUM_FAIL), fails);
		ASSERT(access(path, F_OK) == 0);
		ASSERT(larder_entry_data(e) == NULL);
		size_t vlen;
		ASSERT(memcmp(larder_entry_version(&vlen, e), "v", 1) == 0);
		ASSERT_EQ(vlen, 1);
		ASSERT_EQ(larder_entry_size(e), lazy_cases[i].size);

		ASSERT_RC(db, larder_entry_verify(e), LARDER_ECORRUPT);
		ASSERT_EQ(larder_counter(db, LARDER_CTR_CHECKSUM_FAIL),
			  ++fails);
		ASSERT(access(path, F_OK) != 0); /* quarantined */
		ASSERT_EQ(quarantined_files(), (int)fails);
		/* For good: a second verify neither serves nor counts. */
		ASSERT_RC(db, larder_entry_verify(e), LARDER_ECORRUPT);
		ASSERT(larder_entry_data(e) == NULL);
		ASSERT_EQ(larder_counter(db, LARDER_CTR_CHECKSUM_FAIL), fails);
		larder_entry_release(e);
	}
	larder_close(db);
}

TEST(unverified_handle_of_an_entry_removed_before_its_verify_reads_it_whole)
{
	larder *db = open_store();
	for (size_t i = 0; i < N_LAZY; i++) {
		char key[32];
		snprintf(key, sizeof key, "gone%zu", i);
		put_lazy_case(db, key, &lazy_cases[i]);
		larder_entry *e;
		/* Version-less: the head's version, as larder_get() takes. */
		ASSERT_RC(db,
			  larder_get_unverified(&e, db, "default", key,
						strlen(key), NULL, 0),
			  0);
		ASSERT_RC(
		    db, larder_remove(db, "default", key, strlen(key), "v", 1),
		    0);
		ASSERT(access(entry_path(key), F_OK) != 0);
		ASSERT_RC(db, larder_entry_verify(e), 0);
		ASSERT_EQ(larder_entry_size(e), lazy_cases[i].size);
		ASSERT(larder_entry_data(e) != NULL);
		ASSERT(test_check_pattern(larder_entry_data(e),
					  lazy_cases[i].size, seed_of(key)));
		/* Verified once: a second call is free and changes nothing. */
		ASSERT_RC(db, larder_entry_verify(e), 0);
		/* Mapped only when ours and large, as larder_get() maps. */
		ASSERT_EQ(larder_entry_is_mapped(e),
			  lazy_cases[i].size >= MiB && !lazy_cases[i].theirs &&
			      !lazy_cases[i].flags);
		larder_entry_release(e);
	}
	ASSERT_EQ(larder_counter(db, LARDER_CTR_CHECKSUM_FAIL), 0);
	ASSERT_EQ(quarantined_files(), 0);
	larder_close(db);
}

TEST(unverified_get_misses_as_larder_get_does)
{
	larder *db = open_store();
	larder_entry *e = (larder_entry *)1;
	ASSERT_RC(db,
		  larder_get_unverified(&e, db, "default", "absent", 6, "v", 1),
		  LARDER_ENOTFOUND);
	ASSERT(e == NULL);
	ASSERT_RC(
	    db, larder_get_unverified(&e, db, "default", "absent", 6, NULL, 0),
	    LARDER_ENOTFOUND);
	/* A damaged header is found at the lookup: a miss, quarantined. */
	PUT(db, "hdr", 3 * MiB, 0);
	uint8_t x = 0xFF;
	poke(entry_path("hdr"), 20, &x, 1);
	ASSERT_RC(db,
		  larder_get_unverified(&e, db, "default", "hdr", 3, "v", 1),
		  LARDER_ENOTFOUND);
	ASSERT_EQ(quarantined_files(), 1);
	/* Counted as larder_get() counts: a request and a hit or a miss. */
	PUT(db, "ok", 100, 0);
	ASSERT_RC(db, larder_get_unverified(&e, db, "default", "ok", 2, "v", 1),
		  0);
	ASSERT_EQ(larder_counter(db, LARDER_CTR_REQUESTS), 4);
	ASSERT_EQ(larder_counter(db, LARDER_CTR_HITS), 1);
	ASSERT_EQ(larder_counter(db, LARDER_CTR_MISSES), 3);
	larder_entry_release(e);
	/* A handle from larder_get() is verified already. */
	ASSERT_RC(db, larder_get(&e, db, "default", "ok", 2, "v", 1), 0);
	ASSERT_RC(db, larder_entry_verify(e), 0);
	larder_entry_release(e);
	larder_close(db);
}

TEST(unverified_get_through_a_shared_tier_comes_back_verified)
{
	char shared[4096], near[4096];
	snprintf(shared, sizeof shared, "%s", test_path("shared"));
	snprintf(near, sizeof near, "%s", test_path("near"));
	larder_opts o = LARDER_OPTS_INIT;
	o.flags = LARDER_OPEN_CREATE;
	o.shared = "";
	larder_close(open_store_at(shared, &o));
	o.shared = shared;
	larder *db = open_store_at(near, &o);
	PUT(db, "k", 300 * KiB, 0);
	larder_entry *e;
	ASSERT_RC(db, larder_get_unverified(&e, db, "default", "k", 1, "v", 1),
		  0);
	/* Read whole by the tier: verified at the get. */
	ASSERT(larder_entry_data(e) != NULL);
	ASSERT(
	    test_check_pattern(larder_entry_data(e), 300 * KiB, seed_of("k")));
	ASSERT_RC(db, larder_entry_verify(e), 0);
	larder_entry_release(e);
	larder_close(db);
}

TEST(get_many_gives_each_key_its_own_result_on_a_directory)
{
	/* Hits (small, mapped, version-less), a miss and a corrupt entry in
	 * one batch: each key's result is its own, the bytes exact. */
	larder *db = open_store();
	PUT(db, "small", 3 * KiB, 0);
	PUT(db, "big", 1 * MiB, 0);
	PUT(db, "bad", 4 * KiB, 0);
	flip_near_end(entry_path("bad"), 10);
	const char *k[5] = {"small", "missing", "bad", "big", "small"};
	const void *keys[5];
	size_t klens[5], vlens[5] = {1, 1, 1, 1, 0};
	const void *vers[5] = {"v", "v", "v", "v", NULL};
	for (int i = 0; i < 5; i++) {
		keys[i] = k[i];
		klens[i] = strlen(k[i]);
	}
	larder_entry *out[5];
	int rc[5];
	ASSERT_RC(db,
		  larder_get_many(db, "default", 5, keys, klens, vers, vlens,
				  out, rc),
		  0);
	int want[5] = {0, LARDER_ENOTFOUND, LARDER_ENOTFOUND, 0, 0};
	size_t size[5] = {3 * KiB, 0, 0, 1 * MiB, 3 * KiB};
	for (int i = 0; i < 5; i++) {
		ASSERT_EQ(rc[i], want[i]);
		if (want[i]) {
			ASSERT(out[i] == NULL);
			continue;
		}
		ASSERT_EQ(larder_entry_size(out[i]), size[i]);
		ASSERT(test_check_pattern(larder_entry_data(out[i]), size[i],
					  seed_of(k[i])));
		larder_entry_release(out[i]);
	}
	ASSERT_EQ(larder_counter(db, LARDER_CTR_CHECKSUM_FAIL), 1);
	ASSERT_EQ(quarantined_files(), 1);
	ASSERT_EQ(larder_counter(db, LARDER_CTR_REQUESTS), 5);
	ASSERT_EQ(larder_counter(db, LARDER_CTR_HITS), 3);
	/* The batch as a whole: a bad namespace, nothing tried. */
	ASSERT_EQ(larder_get_many(db, "no/such", 5, keys, klens, vers, vlens,
				  out, rc),
		  LARDER_EINVAL);
	larder_close(db);
}
