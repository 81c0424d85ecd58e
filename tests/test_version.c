/*
 * test_version.c — file versions (larder_files_version, docs/versions.md)
 * on real files in the test's scratch directory: what makes versions equal
 * and different, what is remembered and when, that a warm call reads no
 * byte of its sources (measured), errors, stores that cannot keep
 * anything, damaged records, and writers changing the sources while their
 * versions are computed.
 *
 * Files count as settled once their timestamps are older than the racy
 * margin (2 s) by this host's clock; settle() waits for that. The wait is
 * the property under test (git-style racy timestamps), not a stand-in for
 * synchronisation between processes.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "larder.h"
#include "testing.h"

/* libxxhash's own public API, not the library's hashing: the expected
 * versions are computed independently of the code under test. */
#include <xxhash.h>

#define KiB 1024u
#define MiB (1024u * 1024u)
#define GiB (1024ull * 1024 * 1024)

/* ---------------------------------------------------------------------- */
/* Helpers                                                                 */

static char logbuf[8192];
static int log_lines;

static void on_log(int level, const char *msg, void *payload)
{
	(void)level, (void)payload;
	size_t n = strlen(logbuf);
	snprintf(logbuf + n, sizeof logbuf - n, "%s\n", msg);
	log_lines++;
}

static larder *open_at(const char *dir)
{
	larder_opts o = LARDER_OPTS_INIT;
	o.flags = LARDER_OPEN_CREATE;
	o.fsync = LARDER_FSYNC_NONE;
	o.create_fsync = LARDER_FSYNC_NONE;
	o.log = on_log;
	o.log_level = LARDER_LOG_WARN;
	larder *db = NULL;
	int rc = larder_open(&db, dir, &o);
	if (rc != 0)
		test_fail(__FILE__, __LINE__, "larder_open(%s): %s", dir,
			  larder_errmsg(NULL));
	return db;
}

static larder *open_store(void)
{
	return open_at(test_path("store"));
}

static void write_file(const char *path, const void *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0)
		test_fail(__FILE__, __LINE__, "create %s: %s", path,
			  strerror(errno));
	ASSERT_EQ(write(fd, data, len), (long long)len);
	ASSERT_EQ(close(fd), 0);
}

static void write_str(const char *path, const char *s)
{
	write_file(path, s, strlen(s));
}

/* Files of at least this size get a remembered record of their own
 * (smaller ones are read each time: as cheap as a record lookup). */
#define BIG (64 * KiB)

/* BIG bytes of the pattern `seed`. */
static void write_big(const char *path, uint64_t seed)
{
	uint8_t *buf = malloc(BIG);
	ASSERT(buf != NULL);
	test_fill_pattern(buf, BIG, seed);
	write_file(path, buf, BIG);
	free(buf);
}

/* Rewrite the bytes of an existing file in place (same inode). */
static void overwrite(const char *path, const void *data, size_t len)
{
	int fd = open(path, O_WRONLY);
	ASSERT(fd >= 0);
	ASSERT_EQ(pwrite(fd, data, len, 0), (long long)len);
	ASSERT_EQ(close(fd), 0);
}

static int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Wait until everything written so far is older than the racy margin
 * (2 s, plus slack for the kernel's coarse timestamp clock). */
static void settle(void)
{
	int64_t until = now_ns() + 2150000000LL;
	for (int64_t t; (t = now_ns()) < until;) {
		struct timespec ts = {(until - t) / 1000000000,
				      (until - t) % 1000000000};
		nanosleep(&ts, NULL);
	}
}

static uint64_t ctr(larder *db, int c)
{
	return larder_counter(db, c);
}

/* The version of paths (NULL-terminated), which must succeed. */
static void version_at(int line, larder *db, unsigned flags, char *out, ...)
{
	const char *paths[16];
	size_t n = 0;
	va_list ap;
	va_start(ap, out);
	for (const char *p; (p = va_arg(ap, const char *)) != NULL;)
		paths[n++] = p;
	va_end(ap);
	int rc = larder_files_version(out, db, paths, n, flags);
	if (rc != 0)
		test_fail(__FILE__, line,
			  "larder_files_version(%s%s): %d (%s): "
			  "%s",
			  paths[0], n > 1 ? ", ..." : "", rc,
			  larder_strerror(rc), larder_errmsg(db));
	if (strlen(out) != LARDER_FILES_VERSION_LEN ||
	    strncmp(out, "files/1 ", 8) != 0)
		test_fail(__FILE__, line, "malformed version '%s'", out);
	for (int i = 8; i < LARDER_FILES_VERSION_LEN; i++)
		if (!strchr("0123456789abcdef", out[i]))
			test_fail(__FILE__, line, "malformed version '%s'",
				  out);
}
#define VERSION(db, out, ...)                                                  \
	version_at(__LINE__, db, 0, out, __VA_ARGS__, NULL)
#define VERSION_NR(db, out, ...)                                               \
	version_at(__LINE__, db, LARDER_FILES_NO_REMEMBER, out, __VA_ARGS__,   \
		   NULL)

/* The version of one file holding `data`, made apart (a fresh file, not
 * remembered): what any file with these bytes must get. */
static void version_of_bytes(larder *db, const void *data, size_t len,
			     char *out)
{
	const char *p = test_path("apart.%d", getpid());
	write_file(p, data, len);
	VERSION_NR(db, out, p);
	ASSERT_EQ(unlink(p), 0);
}

/* Entries in the store's remembered-hash namespace. */
static int count_cb(const larder_entry_info *info, void *payload)
{
	(void)info;
	(*(int *)payload)++;
	return 0;
}

static int records(larder *db)
{
	int n = 0;
	int rc = larder_walk(db, LDR_FILES_NS, 0, count_cb, &n);
	ASSERT(rc == 0 || rc == LARDER_ENOTFOUND);
	return n;
}

/* The bytes this process has read so far (/proc/self/io rchar). */
static uint64_t rchar(void)
{
	FILE *f = fopen("/proc/self/io", "r");
	ASSERT(f != NULL);
	char line[128];
	unsigned long long v = 0;
	while (fgets(line, sizeof line, f))
		if (sscanf(line, "rchar: %llu", &v) == 1)
			break;
	fclose(f);
	return v;
}

/* Drop privileges to nobody for the rest of the (forked) test, leaving
 * the scratch directory reachable. */
static void become_nobody(void)
{
	ASSERT_EQ(chmod(test_dir(), 0755), 0);
	ASSERT_EQ(setresgid(65534, 65534, 65534), 0);
	ASSERT_EQ(setresuid(65534, 65534, 65534), 0);
}

/* A mount namespace of this test's own, so mounts vanish with it; skips
 * the test where that needs a privilege we lack. */
static void private_mounts(void)
{
	if (unshare(CLONE_NEWNS) != 0)
		test_skip("no private mount namespace (unshare: %s): needs "
			  "root",
			  strerror(errno));
	ASSERT_EQ(mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL), 0);
}

/* ---------------------------------------------------------------------- */
/* What makes versions equal and different                                 */

TEST(same_content_same_version_across_files_paths_and_inodes)
{
	larder *db = open_store();
	char a[64], b[64], c[64], d[64];
	ASSERT_EQ(mkdir(test_path("sub"), 0755), 0);
	write_big(test_path("a.txt"), 1);
	write_big(test_path("sub/b.txt"), 1);
	write_big(test_path("c.txt"), 2);
	VERSION(db, a, test_path("a.txt"));
	VERSION(db, b, test_path("sub/b.txt"));
	VERSION(db, c, test_path("c.txt"));
	ASSERT_STR_EQ(a, b);
	ASSERT(strcmp(a, c) != 0);
	/* A relative path, and a symlink given directly (followed). */
	ASSERT_EQ(chdir(test_path("sub")), 0);
	VERSION(db, d, "b.txt");
	ASSERT_STR_EQ(a, d);
	ASSERT_EQ(symlink(test_path("c.txt"), test_path("link")), 0);
	VERSION(db, d, test_path("link"));
	ASSERT_STR_EQ(c, d);
	/* Settled and remembered, still the same. */
	settle();
	VERSION(db, d, test_path("a.txt"));
	VERSION(db, d, test_path("a.txt"));
	ASSERT_STR_EQ(a, d);
	ASSERT_EQ(ctr(db, LARDER_CTR_FILES_REMEMBERED), 1);
	larder_close(db);
}

/* The version of one file (docs/versions.md), computed here with
 * libxxhash from the content's XXH3-128 (canonical), its size and its
 * exec bit: the formula is part of the format ("files/1"). */
static void formula_version(const uint8_t content[16], uint64_t size, int exec,
			    char out[64])
{
	uint8_t rec[15 + 26];
	memcpy(rec, "larder-files-1", 15); /* with its NUL */
	rec[15] = 'f';
	rec[16] = (uint8_t)exec;
	for (int i = 0; i < 8; i++)
		rec[17 + i] = (uint8_t)(size >> (8 * i));
	memcpy(rec + 25, content, 16);
	XXH128_canonical_t ch;
	XXH128_canonicalFromHash(&ch, XXH3_128bits(rec, sizeof rec));
	memcpy(out, "files/1 ", 8);
	for (int i = 0; i < 16; i++)
		snprintf(out + 8 + 2 * i, 3, "%02x", ch.digest[i]);
}

TEST(version_of_a_file_is_the_documented_formula)
{
	larder *db = open_store();
	const char *text = "formula\n";
	write_str(test_path("f"), text);
	char got[64], want[64];
	VERSION(db, got, test_path("f"));
	XXH128_canonical_t ch;
	XXH128_canonicalFromHash(&ch, XXH3_128bits(text, strlen(text)));
	formula_version(ch.digest, strlen(text), 0, want);
	ASSERT_STR_EQ(got, want);
	ASSERT_EQ(chmod(test_path("f"), 0755), 0);
	VERSION(db, got, test_path("f"));
	formula_version(ch.digest, strlen(text), 1, want);
	ASSERT_STR_EQ(got, want);
	larder_close(db);
}

TEST(inputs_combine_in_order)
{
	larder *db = open_store();
	char ab[64], ba[64], a[64], ab2[64];
	write_str(test_path("a"), "A");
	write_str(test_path("b"), "B");
	write_str(test_path("a2"), "A");
	write_str(test_path("b2"), "B");
	VERSION(db, ab, test_path("a"), test_path("b"));
	VERSION(db, ba, test_path("b"), test_path("a"));
	VERSION(db, a, test_path("a"));
	VERSION(db, ab2, test_path("a2"), test_path("b2"));
	ASSERT(strcmp(ab, ba) != 0);
	ASSERT(strcmp(ab, a) != 0);
	ASSERT_STR_EQ(ab, ab2);
	larder_close(db);
}

TEST(exec_bit_counts_other_mode_bits_do_not)
{
	larder *db = open_store();
	char v0[64], v1[64], v2[64];
	write_str(test_path("s"), "#!/bin/sh\n");
	VERSION(db, v0, test_path("s"));
	ASSERT_EQ(chmod(test_path("s"), 0600), 0);
	VERSION(db, v1, test_path("s"));
	ASSERT_STR_EQ(v0, v1);
	ASSERT_EQ(chmod(test_path("s"), 0755), 0);
	VERSION(db, v2, test_path("s"));
	ASSERT(strcmp(v0, v2) != 0);
	larder_close(db);
}

TEST(content_change_with_mtime_restored_is_seen_through_ctime)
{
	larder *db = open_store();
	const char *p = test_path("data");
	char v1[64], v2[64], want[64];
	uint8_t *g2 = malloc(BIG);
	test_fill_pattern(g2, BIG, 2);
	write_big(p, 1);
	struct stat st1;
	ASSERT_EQ(stat(p, &st1), 0);
	settle();
	VERSION(db, v1, p);
	ASSERT_EQ(ctr(db, LARDER_CTR_FILES_HASHED), 1);
	ASSERT_EQ(records(db), 1);
	/* Same size, other bytes, the old mtime put back: only ctime (which
	 * no one can set) tells. */
	overwrite(p, g2, BIG);
	struct timespec times[2] = {st1.st_atim, st1.st_mtim};
	ASSERT_EQ(utimensat(AT_FDCWD, p, times, 0), 0);
	struct stat st2;
	ASSERT_EQ(stat(p, &st2), 0);
	ASSERT_EQ(st2.st_size, st1.st_size);
	ASSERT_EQ(st2.st_mtim.tv_sec, st1.st_mtim.tv_sec);
	ASSERT_EQ(st2.st_mtim.tv_nsec, st1.st_mtim.tv_nsec);
	VERSION(db, v2, p);
	version_of_bytes(db, g2, BIG, want);
	free(g2);
	ASSERT_STR_EQ(v2, want);
	ASSERT(strcmp(v1, v2) != 0);
	/* And once settled, remembered under its new fingerprint. */
	settle();
	VERSION(db, v2, p);
	uint64_t hashed = ctr(db, LARDER_CTR_FILES_HASHED);
	VERSION(db, v2, p);
	ASSERT_STR_EQ(v2, want);
	ASSERT_EQ(ctr(db, LARDER_CTR_FILES_HASHED), hashed);
	larder_close(db);
}

/* Two same-size writes in one clock tick can leave a file's fingerprint
 * as it was: a racy file is therefore hashed every time and never
 * remembered, so the second write is always seen. */
TEST(racy_change_within_the_same_second_is_seen)
{
	larder *db = open_store();
	const char *p = test_path("racy");
	char v1[64], v2[64], want1[64], want2[64];
	uint8_t *a = malloc(BIG), *b = malloc(BIG);
	test_fill_pattern(a, BIG, 1);
	test_fill_pattern(b, BIG, 2);
	version_of_bytes(db, a, BIG, want1);
	version_of_bytes(db, b, BIG, want2);
	write_file(p, a, BIG);
	struct stat st1;
	ASSERT_EQ(stat(p, &st1), 0);
	VERSION(db, v1, p);
	ASSERT_STR_EQ(v1, want1);
	ASSERT_EQ(records(db), 0); /* racy: not remembered */
	overwrite(p, b, BIG);
	free(a);
	free(b);
	struct timespec times[2] = {st1.st_atim, st1.st_mtim};
	ASSERT_EQ(utimensat(AT_FDCWD, p, times, 0), 0);
	VERSION(db, v2, p);
	ASSERT_STR_EQ(v2, want2);
	ASSERT_EQ(records(db), 0);
	ASSERT_EQ(ctr(db, LARDER_CTR_FILES_REMEMBERED), 0);
	larder_close(db);
}

TEST(file_with_future_timestamps_is_hashed_every_time)
{
	larder *db = open_store();
	const char *p = test_path("future");
	char v[64];
	write_big(p, 3);
	struct timespec t[2] = {{time(NULL) + 3600, 0}, {time(NULL) + 3600, 0}};
	ASSERT_EQ(utimensat(AT_FDCWD, p, t, 0), 0);
	settle();
	VERSION(db, v, p);
	VERSION(db, v, p);
	ASSERT_EQ(ctr(db, LARDER_CTR_FILES_HASHED), 2);
	ASSERT_EQ(records(db), 0);
	larder_close(db);
}

/* ---------------------------------------------------------------------- */
/* Remembering                                                             */

TEST(warm_call_reads_no_byte_of_a_1gib_file)
{
	larder *db = open_store();
	const char *p = test_path("big");
	int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	ASSERT(fd >= 0);
	/* Sparse: 1 GiB with data at both ends. */
	ASSERT_EQ(pwrite(fd, "head", 4, 0), 4);
	ASSERT_EQ(pwrite(fd, "tail", 4, (off_t)GiB - 4), 4);
	ASSERT_EQ(close(fd), 0);
	settle();
	char cold[64], warm[64];
	VERSION(db, cold, p);
	ASSERT_EQ(ctr(db, LARDER_CTR_FILES_HASHED), 1);
	ASSERT_EQ(ctr(db, LARDER_CTR_FILES_HASHED_BYTES), GiB);
	ASSERT_EQ(ctr(db, LARDER_CTR_FILES_REMEMBERED), 0);

	uint64_t r0 = rchar();
	VERSION(db, warm, p);
	uint64_t r1 = rchar();
	ASSERT_STR_EQ(cold, warm);
	ASSERT_EQ(ctr(db, LARDER_CTR_FILES_HASHED), 1);
	ASSERT_EQ(ctr(db, LARDER_CTR_FILES_HASHED_BYTES), GiB);
	ASSERT_EQ(ctr(db, LARDER_CTR_FILES_REMEMBERED), 1);
	/* What was read: the record (a few hundred bytes) and the first
	 * read of /proc/self/io itself; nothing near a GiB. */
	printf("    warm call read %llu bytes (cold: 1 GiB)\n",
	       (unsigned long long)(r1 - r0));
	ASSERT((r1 - r0) < 64 * KiB);
	larder_close(db);
}

TEST(no_remember_reads_every_time_and_keeps_nothing)
{
	larder *db = open_store();
	write_big(test_path("f"), 4);
	settle();
	char v1[64], v2[64];
	VERSION_NR(db, v1, test_path("f"));
	VERSION_NR(db, v2, test_path("f"));
	ASSERT_STR_EQ(v1, v2);
	ASSERT_EQ(ctr(db, LARDER_CTR_FILES_HASHED), 2);
	ASSERT_EQ(records(db), 0);
	/* A remembered hash is not used either. */
	VERSION(db, v2, test_path("f"));
	ASSERT_EQ(records(db), 1);
	VERSION_NR(db, v2, test_path("f"));
	ASSERT_EQ(ctr(db, LARDER_CTR_FILES_HASHED), 4);
	ASSERT_EQ(ctr(db, LARDER_CTR_FILES_REMEMBERED), 0);
	larder_close(db);
}

static int first_record_cb(const larder_entry_info *info, void *payload)
{
	snprintf(payload, 4096, "%s", info->path);
	return 1;
}

static void corrupt_record(unsigned open_flags)
{
	larder_opts o = LARDER_OPTS_INIT;
	o.flags = LARDER_OPEN_CREATE | open_flags;
	o.fsync = LARDER_FSYNC_NONE;
	larder *db = NULL;
	ASSERT_EQ(larder_open(&db, test_path("store"), &o), 0);
	const char *p = test_path("f");
	write_big(p, 5);
	settle();
	char v1[64], v2[64];
	VERSION(db, v1, p);
	char rec[4096] = "";
	ASSERT_EQ(larder_walk(db, LDR_FILES_NS, 0, first_record_cb, rec), 1);
	/* Flip a bit of the content hash the record holds (its payload is
	 * the hash, 16 bytes, then the size, 8). */
	int fd = open(rec, O_RDWR);
	ASSERT(fd >= 0);
	struct stat st;
	ASSERT_EQ(fstat(fd, &st), 0);
	uint8_t b;
	ASSERT_EQ(pread(fd, &b, 1, st.st_size - 24), 1);
	b ^= 0x40;
	ASSERT_EQ(pwrite(fd, &b, 1, st.st_size - 24), 1);
	ASSERT_EQ(close(fd), 0);

	VERSION(db, v2, p);
	ASSERT_STR_EQ(v1, v2);
	ASSERT_EQ(ctr(db, LARDER_CTR_QUARANTINED), 1);
	ASSERT_EQ(ctr(db, LARDER_CTR_FILES_HASHED), 2);
	ASSERT_EQ(ctr(db, LARDER_CTR_FILES_REMEMBERED), 0);
	/* Kept again: warm from now on. */
	VERSION(db, v2, p);
	ASSERT_STR_EQ(v1, v2);
	ASSERT_EQ(ctr(db, LARDER_CTR_FILES_HASHED), 2);
	ASSERT_EQ(ctr(db, LARDER_CTR_FILES_REMEMBERED), 1);
	larder_close(db);
}

TEST(corrupt_remembered_record_is_quarantined_and_rehashed)
{
	corrupt_record(0);
}

/* Trusting local payloads is for the user's entries: a remembered hash
 * is always checked, a wrong one would be a wrong version. */
TEST(corrupt_remembered_record_is_caught_even_when_trusting_local_files)
{
	corrupt_record(LARDER_OPEN_TRUST_LOCAL);
}

static int copy_key_cb(const larder_entry_info *info, void *payload)
{
	uint8_t **key = payload;
	*key = malloc(info->klen + 8);
	memcpy(*key + 8, info->key, info->klen);
	memcpy(*key, &info->klen, sizeof(size_t));
	return 1;
}

/* A record that passes its checksum but cannot be right (written by a
 * broken or different larder) is not used, and is moved aside so that a
 * right one can take its name. */
static void wrong_record(const void *payload, size_t len)
{
	larder *db = open_store();
	const char *p = test_path("f");
	write_big(p, 6);
	settle();
	char v1[64], v2[64];
	VERSION(db, v1, p);
	uint8_t *key = NULL;
	ASSERT_EQ(larder_walk(db, LDR_FILES_NS, 0, copy_key_cb, &key), 1);
	size_t klen;
	memcpy(&klen, key, sizeof klen);
	char rec[4096] = "";
	ASSERT_EQ(larder_walk(db, LDR_FILES_NS, 0, first_record_cb, rec), 1);
	ASSERT_EQ(unlink(rec), 0);
	/* A checked record under the right key. */
	larder_writer *w;
	ASSERT_RC(db,
		  ldr_test_writer_begin_internal(&w, db, LDR_FILES_NS, key + 8,
						 klen, "", 0),
		  0);
	ASSERT_RC(db, larder_writer_write(w, payload, len), 0);
	ASSERT_RC(db, larder_writer_commit(w), 0);
	free(key);

	VERSION(db, v2, p);
	ASSERT_STR_EQ(v1, v2);
	ASSERT_EQ(ctr(db, LARDER_CTR_QUARANTINED), 1);
	ASSERT_EQ(ctr(db, LARDER_CTR_FILES_HASHED), 2);
	VERSION(db, v2, p);
	ASSERT_STR_EQ(v1, v2);
	ASSERT_EQ(ctr(db, LARDER_CTR_FILES_REMEMBERED), 1);
	larder_close(db);
}

TEST(remembered_record_of_the_wrong_length_is_quarantined)
{
	wrong_record("short", 5);
}

TEST(remembered_record_of_another_size_is_quarantined)
{
	uint8_t rec[24] = {0};
	rec[16] = 1; /* the file has BIG bytes: 0 in the low byte */
	wrong_record(rec, sizeof rec);
}

/* Users cannot reach the internal namespace with get or put. */
TEST(internal_namespace_is_closed_to_get_and_put)
{
	larder *db = open_store();
	larder_entry *e;
	ASSERT_RC(db, larder_put(db, LDR_FILES_NS, "k", 1, "", 0, "x", 1, NULL),
		  LARDER_EINVAL);
	ASSERT_RC(db, larder_get(&e, db, LDR_FILES_NS, "k", 1, "", 0),
		  LARDER_EINVAL);
	larder_close(db);
}

/* ---------------------------------------------------------------------- */
/* Stores that cannot keep anything                                        */

static void expect_version_without_keeping(larder *db, const char *p,
					   const char *want)
{
	char v[64];
	VERSION(db, v, p);
	ASSERT_STR_EQ(v, want);
	VERSION(db, v, p);
	ASSERT_STR_EQ(v, want);
	ASSERT_EQ(ctr(db, LARDER_CTR_FILES_HASHED), 2);
	ASSERT(ctr(db, LARDER_CTR_WRITE_FAILURES) >= 1);
	if (!strstr(logbuf, "cannot remember file hashes"))
		test_fail(__FILE__, __LINE__, "no warning in the log: '%s'",
			  logbuf);
	ASSERT_EQ(log_lines, 1); /* once per handle */
}

TEST(read_only_store_still_computes_and_recalls)
{
	private_mounts();
	const char *kept = test_path("kept"), *fresh = test_path("fresh");
	write_big(kept, 7);
	write_big(fresh, 8);
	settle();
	char vkept[64], want[64];
	larder *db = open_store();
	VERSION(db, vkept, kept);
	VERSION_NR(db, want, fresh);
	larder_close(db);
	const char *dir = test_path("store");
	ASSERT_EQ(mount(dir, dir, NULL, MS_BIND, NULL), 0);
	ASSERT_EQ(
	    mount(NULL, dir, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY, NULL), 0);

	db = open_store();
	char v[64];
	VERSION(db, v, kept);
	ASSERT_STR_EQ(v, vkept);
	ASSERT_EQ(ctr(db, LARDER_CTR_FILES_REMEMBERED), 1);
	ASSERT_EQ(ctr(db, LARDER_CTR_FILES_HASHED), 0);
	expect_version_without_keeping(db, fresh, want);
	if (!strstr(logbuf, "Read-only file system"))
		test_fail(__FILE__, __LINE__, "the log does not say why: '%s'",
			  logbuf);
	larder_close(db);
	umount2(dir, MNT_DETACH);
}

TEST(full_store_still_computes_the_version)
{
	private_mounts();
	const char *dir = test_path("store");
	ASSERT_EQ(mkdir(dir, 0755), 0);
	ASSERT_EQ(mount("tmpfs", dir, "tmpfs", 0, "size=256k,mode=0755"), 0);
	larder *db = open_store();
	/* The disk really fills here: no watermark refuses first. */
	larder_limits lim = LARDER_LIMITS_INIT;
	ASSERT_RC(db, larder_limits_get(&lim, db, NULL), 0);
	lim.wm_run = lim.wm_cull = lim.wm_stop = 0;
	ASSERT_RC(db, larder_limits_set(db, NULL, &lim), 0);
	const char *p = test_path("f");
	write_big(p, 9);
	settle();
	char want[64];
	VERSION_NR(db, want, p);
	int fd = open(test_path("store/ballast"), O_WRONLY | O_CREAT, 0644);
	ASSERT(fd >= 0);
	char block[4096];
	memset(block, 'x', sizeof block);
	while (write(fd, block, sizeof block) > 0)
		;
	while (write(fd, block, 1) > 0)
		;
	ASSERT_EQ(errno, ENOSPC);
	close(fd);
	ASSERT_EQ(ctr(db, LARDER_CTR_FILES_HASHED), 1);
	ldr_test_counter_set(db, LARDER_CTR_FILES_HASHED, 0);
	expect_version_without_keeping(db, p, want);
	larder_close(db);
	umount2(dir, MNT_DETACH);
}

/* ---------------------------------------------------------------------- */
/* Errors                                                                  */

static void expect_fail_at(int line, larder *db, const char *path, int want,
			   const char *msg)
{
	char out[64] = "x";
	const char *paths[1] = {path};
	int rc = larder_files_version(out, db, paths, 1, 0);
	if (rc != want)
		test_fail(__FILE__, line, "version(%s): %d (%s), want %d: %s",
			  path, rc, larder_strerror(rc), want,
			  larder_errmsg(db));
	if (out[0] != '\0')
		test_fail(__FILE__, line, "a failed call left '%s'", out);
	if (!strstr(larder_errmsg(db), msg))
		test_fail(__FILE__, line, "message '%s' lacks '%s'",
			  larder_errmsg(db), msg);
}
#define EXPECT_FAIL(db, path, want, msg)                                       \
	expect_fail_at(__LINE__, db, path, want, msg)

TEST(missing_input_is_not_found_and_named)
{
	larder *db = open_store();
	EXPECT_FAIL(db, test_path("nope"), LARDER_ENOTFOUND, "nope");
	EXPECT_FAIL(db, test_path("nope"), LARDER_ENOTFOUND,
		    "No such file or directory");
	write_str(test_path("file"), "x");
	EXPECT_FAIL(db, test_path("file/below"), LARDER_ENOTFOUND,
		    "file/below");
	ASSERT_EQ(symlink(test_path("gone"), test_path("dangling")), 0);
	EXPECT_FAIL(db, test_path("dangling"), LARDER_ENOTFOUND, "dangling");
	larder_close(db);
}

TEST(fifo_device_and_socket_given_directly_are_invalid)
{
	larder *db = open_store();
	ASSERT_EQ(mkfifo(test_path("fifo"), 0644), 0);
	EXPECT_FAIL(db, test_path("fifo"), LARDER_EINVAL, "is a FIFO");
	EXPECT_FAIL(db, "/dev/null", LARDER_EINVAL,
		    "'/dev/null' is a character device");
	larder_close(db);
}

TEST(bad_arguments_are_invalid)
{
	larder *db = open_store();
	char out[64];
	const char *paths[2] = {test_path("x"), ""};
	write_str(paths[0], "x");
	ASSERT_RC(db, larder_files_version(out, db, paths, 0, 0),
		  LARDER_EINVAL);
	ASSERT_RC(db, larder_files_version(out, db, paths, 2, 0),
		  LARDER_EINVAL);
	ASSERT_RC(db, larder_files_version(out, db, paths, 1, 0x80),
		  LARDER_EINVAL);
	ASSERT_RC(db, larder_files_version(out, db, NULL, 1, 0), LARDER_EINVAL);
	larder_close(db);
}

TEST(unreadable_file_and_directory_are_permission_errors)
{
	write_str(test_path("secret"), "x");
	ASSERT_EQ(chmod(test_path("secret"), 0000), 0);
	ASSERT_EQ(mkdir(test_path("tree"), 0755), 0);
	ASSERT_EQ(mkdir(test_path("tree/closed"), 0000), 0);
	ASSERT_EQ(mkdir(test_path("tree2"), 0755), 0);
	write_str(test_path("tree2/secret"), "x");
	ASSERT_EQ(chmod(test_path("tree2/secret"), 0000), 0);
	larder *db = open_store();
	larder_close(db);
	if (geteuid() == 0)
		become_nobody();
	db = open_store();
	EXPECT_FAIL(db, test_path("secret"), LARDER_EPERM, "secret");
	EXPECT_FAIL(db, test_path("tree"), LARDER_EPERM, "tree/closed");
	EXPECT_FAIL(db, test_path("tree2"), LARDER_EPERM, "tree2/secret");
	EXPECT_FAIL(db, test_path("tree2"), LARDER_EPERM, "Permission denied");
	larder_close(db);
}

/* /proc/self/mem is a regular file whose first page cannot be read: a
 * real EIO, no injection needed. */
TEST(read_error_is_an_io_error_naming_the_file)
{
	larder *db = open_store();
	EXPECT_FAIL(db, "/proc/self/mem", LARDER_EIO,
		    "cannot read '/proc/self/mem': Input/output error");
	larder_close(db);
}

/* Files whose size says nothing of their content are read (twice, to be
 * sure of one state) and never remembered. */
TEST(pseudo_files_are_read_and_not_remembered)
{
	larder *db = open_store();
	char v[64];
	VERSION(db, v, "/proc/self/cmdline");
	VERSION(db, v, "/proc/version");
	ASSERT_EQ(ctr(db, LARDER_CTR_FILES_HASHED), 2);
	ASSERT(ctr(db, LARDER_CTR_FILES_HASHED_BYTES) > 0);
	ASSERT_EQ(records(db), 0);
	larder_close(db);
}

/* ---------------------------------------------------------------------- */
/* Trees                                                                   */

static void make_tree(const char *root, int nfiles)
{
	ASSERT_EQ(mkdir(root, 0755), 0);
	char p[4096];
	snprintf(p, sizeof p, "%s/sub", root);
	ASSERT_EQ(mkdir(p, 0755), 0);
	for (int i = 0; i < nfiles; i++) {
		char text[64];
		snprintf(p, sizeof p, "%s/%sfile%03d", root,
			 i % 2 ? "sub/" : "", i);
		snprintf(text, sizeof text, "content of file %d\n", i);
		write_str(p, text);
	}
}

TEST(tree_changes_change_its_version)
{
	larder *db = open_store();
	char t[4096];
	snprintf(t, sizeof t, "%s", test_path("t"));
	make_tree(t, 6);
	char v0[64], v[64];
	VERSION(db, v0, t);
	/* add a file, then remove it: back to the first version */
	write_str(test_path("t/new"), "new\n");
	VERSION(db, v, t);
	ASSERT(strcmp(v, v0) != 0);
	ASSERT_EQ(unlink(test_path("t/new")), 0);
	VERSION(db, v, t);
	ASSERT_STR_EQ(v, v0);
	/* rename */
	ASSERT_EQ(rename(test_path("t/file000"), test_path("t/renamed")), 0);
	VERSION(db, v, t);
	ASSERT(strcmp(v, v0) != 0);
	ASSERT_EQ(rename(test_path("t/renamed"), test_path("t/file000")), 0);
	VERSION(db, v, t);
	ASSERT_STR_EQ(v, v0);
	/* move into another directory */
	ASSERT_EQ(rename(test_path("t/file000"), test_path("t/sub/file000")),
		  0);
	VERSION(db, v, t);
	ASSERT(strcmp(v, v0) != 0);
	ASSERT_EQ(rename(test_path("t/sub/file000"), test_path("t/file000")),
		  0);
	/* an empty directory counts */
	ASSERT_EQ(mkdir(test_path("t/empty"), 0755), 0);
	VERSION(db, v, t);
	ASSERT(strcmp(v, v0) != 0);
	ASSERT_EQ(rmdir(test_path("t/empty")), 0);
	/* content */
	write_str(test_path("t/sub/file001"), "content of file 1!\n");
	VERSION(db, v, t);
	ASSERT(strcmp(v, v0) != 0);
	write_str(test_path("t/sub/file001"), "content of file 1\n");
	VERSION(db, v, t);
	ASSERT_STR_EQ(v, v0);
	/* the exec bit counts, other mode bits and times do not */
	ASSERT_EQ(chmod(test_path("t/file002"), 0600), 0);
	struct timespec old[2] = {{1000000000, 0}, {1000000000, 0}};
	ASSERT_EQ(utimensat(AT_FDCWD, test_path("t/file004"), old, 0), 0);
	VERSION(db, v, t);
	ASSERT_STR_EQ(v, v0);
	ASSERT_EQ(chmod(test_path("t/file002"), 0700), 0);
	VERSION(db, v, t);
	ASSERT(strcmp(v, v0) != 0);
	larder_close(db);
}

TEST(tree_version_does_not_depend_on_where_it_lives)
{
	larder *db = open_store();
	make_tree(test_path("t"), 8);
	ASSERT_EQ(test_sh("cp -r '%s' '%s'", test_path("t"), test_path("u")),
		  0);
	char vt[64], vu[64];
	VERSION(db, vt, test_path("t"));
	VERSION(db, vu, test_path("u"));
	ASSERT_STR_EQ(vt, vu);
	/* a directory and a file with the same bytes differ */
	write_str(test_path("f"), "content of file 0\n");
	VERSION(db, vu, test_path("f"));
	ASSERT(strcmp(vt, vu) != 0);
	larder_close(db);
}

TEST(symlink_inside_tree_counts_by_target_and_is_not_followed)
{
	larder *db = open_store();
	char t[4096];
	snprintf(t, sizeof t, "%s", test_path("t"));
	make_tree(t, 2);
	write_str(test_path("outside"), "outside 1\n");
	ASSERT_EQ(symlink(test_path("outside"), test_path("t/link")), 0);
	ASSERT_EQ(symlink("sub", test_path("t/dirlink")), 0);
	char v0[64], v[64];
	VERSION(db, v0, t);
	/* what the link points to is not part of the tree */
	write_str(test_path("outside"), "outside 2, longer\n");
	VERSION(db, v, t);
	ASSERT_STR_EQ(v, v0);
	/* where it points is */
	ASSERT_EQ(unlink(test_path("t/link")), 0);
	ASSERT_EQ(symlink(test_path("elsewhere"), test_path("t/link")), 0);
	VERSION(db, v, t);
	ASSERT(strcmp(v, v0) != 0);
	/* a link is not the file it points to */
	ASSERT_EQ(unlink(test_path("t/link")), 0);
	ASSERT_EQ(symlink("file000", test_path("t/link")), 0);
	char vl[64];
	VERSION(db, vl, t);
	ASSERT_EQ(unlink(test_path("t/link")), 0);
	ASSERT_EQ(link(test_path("t/file000"), test_path("t/link")), 0);
	VERSION(db, v, t);
	ASSERT(strcmp(v, vl) != 0);
	larder_close(db);
}

TEST(special_files_in_a_tree_count_by_type_and_name)
{
	larder *db = open_store();
	char t[4096];
	snprintf(t, sizeof t, "%s", test_path("t"));
	make_tree(t, 2);
	char v0[64], vf[64], v[64];
	VERSION(db, v0, t);
	ASSERT_EQ(mkfifo(test_path("t/fifo"), 0644), 0);
	VERSION(db, vf, t); /* and no hang on the FIFO */
	ASSERT(strcmp(vf, v0) != 0);
	ASSERT_EQ(chmod(test_path("t/fifo"), 0600), 0);
	VERSION(db, v, t);
	ASSERT_STR_EQ(v, vf);
	ASSERT_EQ(unlink(test_path("t/fifo")), 0);
	write_str(test_path("t/fifo"), "");
	VERSION(db, v, t);
	ASSERT(strcmp(v, vf) != 0);
	ASSERT(strcmp(v, v0) != 0);
	larder_close(db);
}

TEST(warm_tree_takes_one_record_and_one_change_rehashes_one_file)
{
	larder *db = open_store();
	char t[4096];
	snprintf(t, sizeof t, "%s", test_path("t"));
	ASSERT_EQ(mkdir(t, 0755), 0);
	ASSERT_EQ(mkdir(test_path("t/sub"), 0755), 0);
	for (int i = 0; i < 20; i++)
		write_big(test_path("t/%sbig%02d", i % 2 ? "sub/" : "", i),
			  100 + (uint64_t)i);
	settle();
	char v0[64], v[64];
	VERSION(db, v0, t);
	ASSERT_EQ(ctr(db, LARDER_CTR_FILES_HASHED), 20);
	ASSERT_EQ(records(db), 21); /* 20 files and the tree */
	VERSION(db, v, t);
	ASSERT_STR_EQ(v, v0);
	ASSERT_EQ(ctr(db, LARDER_CTR_FILES_HASHED), 20);
	ASSERT_EQ(ctr(db, LARDER_CTR_FILES_REMEMBERED), 20);

	write_big(test_path("t/sub/big07"), 1007);
	settle();
	VERSION(db, v, t);
	ASSERT(strcmp(v, v0) != 0);
	ASSERT_EQ(ctr(db, LARDER_CTR_FILES_HASHED), 21);
	ASSERT_EQ(ctr(db, LARDER_CTR_FILES_REMEMBERED), 39);
	VERSION(db, v, t);
	ASSERT_EQ(ctr(db, LARDER_CTR_FILES_HASHED), 21);
	ASSERT_EQ(ctr(db, LARDER_CTR_FILES_REMEMBERED), 59);
	larder_close(db);
}

/* Small files are read each time instead of remembered one by one (a
 * lookup costs as much as the read, and a record far more to write); a
 * tree of them is remembered whole. */
TEST(small_files_are_read_and_trees_of_them_remembered_whole)
{
	larder *db = open_store();
	uint8_t *buf = malloc(BIG);
	test_fill_pattern(buf, BIG, 11);
	write_file(test_path("under"), buf, BIG - 1);
	write_file(test_path("at"), buf, BIG);
	free(buf);
	char t[4096];
	snprintf(t, sizeof t, "%s", test_path("t"));
	make_tree(t, 30);
	settle();
	char v[64], v0[64];
	VERSION(db, v, test_path("under"));
	VERSION(db, v, test_path("under"));
	ASSERT_EQ(ctr(db, LARDER_CTR_FILES_HASHED), 2);
	ASSERT_EQ(records(db), 0);
	VERSION(db, v, test_path("at"));
	VERSION(db, v, test_path("at"));
	ASSERT_EQ(ctr(db, LARDER_CTR_FILES_HASHED), 3);
	ASSERT_EQ(ctr(db, LARDER_CTR_FILES_REMEMBERED), 1);
	ASSERT_EQ(records(db), 1);

	VERSION(db, v0, t);
	ASSERT_EQ(ctr(db, LARDER_CTR_FILES_HASHED), 33);
	ASSERT_EQ(records(db), 2); /* the tree's */
	VERSION(db, v, t);
	ASSERT_STR_EQ(v, v0);
	ASSERT_EQ(ctr(db, LARDER_CTR_FILES_HASHED), 33);
	ASSERT_EQ(ctr(db, LARDER_CTR_FILES_REMEMBERED), 31);
	/* one change: the tree record misses, every small file is read */
	write_str(test_path("t/sub/file007"), "changed 7\n");
	VERSION(db, v, t);
	ASSERT(strcmp(v, v0) != 0);
	ASSERT_EQ(ctr(db, LARDER_CTR_FILES_HASHED), 63);
	larder_close(db);
}

TEST(store_inside_a_tree_is_left_out)
{
	char t[4096];
	snprintf(t, sizeof t, "%s", test_path("t"));
	make_tree(t, 4);
	char with[64], without[64];
	larder *other = open_at(test_path("other"));
	VERSION(other, without, t);
	larder *db = open_at(test_path("t/.cache"));
	settle();
	VERSION(db, with, t); /* fills t/.cache as it goes */
	ASSERT(records(db) > 0);
	ASSERT_STR_EQ(with, without);
	VERSION(db, with, t);
	ASSERT_STR_EQ(with, without);
	larder_close(db);
	larder_close(other);
}

TEST(tree_deeper_than_the_limit_is_a_clear_error)
{
	larder *db = open_store();
	ASSERT_EQ(mkdir(test_path("deep"), 0755), 0);
	int fd = open(test_path("deep"), O_RDONLY | O_DIRECTORY);
	ASSERT(fd >= 0);
	for (int i = 0; i < 300; i++) {
		ASSERT_EQ(mkdirat(fd, "d", 0755), 0);
		int next = openat(fd, "d", O_RDONLY | O_DIRECTORY);
		ASSERT(next >= 0);
		close(fd);
		fd = next;
	}
	close(fd);
	EXPECT_FAIL(db, test_path("deep"), LARDER_EINVAL,
		    "deeper than 256 directories");
	larder_close(db);
}

/* ---------------------------------------------------------------------- */
/* Writers changing the sources while versions are computed                */

#define PAGE 4096u
#define GEN_PAGES 64u
#define GEN_SIZE (GEN_PAGES * PAGE)
#define GENS 150

/*
 * Turns between a writer (a child) and the reader (the test): the writer
 * makes a change only after a byte on `go`, and writes a byte on `made`
 * once the change is complete. The reader sends `go` once it has seen the
 * last change, so it sees every change and their count is exact; a call
 * begun after a `made` must see that change, so a writer that changed
 * nothing (or a version blind to the change) fails at once, not by a hang.
 */
struct turns {
	int go[2], made[2];
};

static void turns_open(struct turns *t)
{
	ASSERT_EQ(pipe(t->go), 0);
	ASSERT_EQ(pipe(t->made), 0);
}

/* In the writer, after fork. */
static void turns_writer(struct turns *t)
{
	close(t->go[1]);
	close(t->made[0]);
}

/* The writer: wait for the reader's go (0 if the reader is gone). */
static int turns_wait(struct turns *t)
{
	char c;
	return read(t->go[0], &c, 1) == 1;
}

/* The writer: a change is complete. */
static int turns_done(struct turns *t)
{
	return write(t->made[1], "m", 1) == 1;
}

/* In the reader, after fork. */
static void turns_reader(struct turns *t)
{
	close(t->go[0]);
	close(t->made[1]);
	ASSERT_EQ(fcntl(t->made[0], F_SETFL, O_NONBLOCK), 0);
}

static void turns_go(struct turns *t)
{
	ASSERT_EQ(write(t->go[1], "g", 1), 1);
}

/* The reader: how many changes were completed so far. */
static int turns_made(struct turns *t, int *made)
{
	char c[64];
	ssize_t n;
	while ((n = read(t->made[0], c, sizeof c)) > 0)
		*made += (int)n;
	if (n < 0 && errno != EAGAIN)
		test_fail(__FILE__, __LINE__, "read the writer's pipe: %s",
			  strerror(errno));
	return *made;
}

static void turns_close(struct turns *t)
{
	close(t->go[1]);
	close(t->made[0]);
}

/* Generation g's bytes: every byte depends on g, so any mix of two
 * generations is no generation. */
static void gen_bytes(uint8_t *buf, int g)
{
	test_fill_pattern(buf, GEN_SIZE,
			  0x9e3779b97f4a7c15ull * (uint64_t)(g + 1));
}

/*
 * The writer: generations 1..GENS, each begun only once the reader has
 * seen the one before whole (struct turns), so the reader sees exactly
 * GENS + 1 generations on any machine, and its calls during a
 * generation's writing race the writer.
 *  - renamed into place: the file holds one whole generation at every
 *    instant, so every version must be one of them;
 *  - in place, one page per pwrite, from the first page to the last:
 *    between two writes (and while the writer is descheduled there, which
 *    can last long enough for whole reads) the file holds the next
 *    generation's first k pages and the last one's others. Those states
 *    are real; what a version must never be is a mix that the file never
 *    held at any instant, such as a read overtaken by the writer (the
 *    last generation's first pages, the next one's later pages).
 * The reader gone (its pipe closed) ends the writer.
 */
static void writer(const char *path, int in_place, struct turns *t)
{
	uint8_t *buf = malloc(GEN_SIZE);
	for (int g = 1; g <= GENS; g++) {
		if (!turns_wait(t)) /* generation g - 1 was seen */
			_exit(3);
		gen_bytes(buf, g);
		if (in_place) {
			int fd = open(path, O_WRONLY);
			for (size_t off = 0; off < GEN_SIZE; off += PAGE)
				if (pwrite(fd, buf + off, PAGE, (off_t)off) !=
				    PAGE)
					_exit(2);
			close(fd);
		} else {
			char tmp[4300];
			snprintf(tmp, sizeof tmp, "%s.tmp", path);
			int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
			if (fd < 0 || write(fd, buf, GEN_SIZE) != GEN_SIZE)
				_exit(2);
			close(fd);
			if (rename(tmp, path) != 0)
				_exit(2);
		}
		if (!turns_done(t))
			_exit(3);
	}
	free(buf);
	_exit(0);
}

/* Every state the file can be seen in, in the order the writer makes
 * them, as versions (the documented formula). */
struct states {
	char (*v)[64];
	size_t n;
};

static void states_make(struct states *s, int in_place)
{
	uint8_t *a = malloc(GEN_SIZE), *b = malloc(GEN_SIZE);
	size_t per = in_place ? GEN_PAGES : 1;
	s->v = malloc((GENS * per + 1) * sizeof *s->v);
	s->n = 0;
	gen_bytes(a, 0);
	for (int g = 0; g <= GENS; g++) {
		gen_bytes(b, g + 1);
		/* g whole, then (in place) g+1's first k pages over g */
		for (size_t k = 0; k < (g < GENS ? per : 1); k++) {
			XXH3_state_t *st = XXH3_createState();
			ASSERT(st != NULL);
			XXH128_canonical_t c;
			XXH3_128bits_reset(st);
			XXH3_128bits_update(st, b, k * PAGE);
			XXH3_128bits_update(st, a + k * PAGE,
					    GEN_SIZE - k * PAGE);
			XXH128_canonicalFromHash(&c, XXH3_128bits_digest(st));
			XXH3_freeState(st);
			formula_version(c.digest, GEN_SIZE, 0, s->v[s->n++]);
		}
		uint8_t *t = a;
		a = b;
		b = t;
	}
	free(a);
	free(b);
}

/* The index of v among the states from `from` on, or -1. */
static long states_find(const struct states *s, size_t from, const char *v)
{
	for (size_t i = from; i < s->n; i++)
		if (strcmp(s->v[i], v) == 0)
			return (long)i;
	return -1;
}

/* Versions of a file while a writer rewrites it: each one a state the
 * file held (src_dir: where the source lives). */
static void versions_match_states(const char *src_dir, int in_place)
{
	larder *db = open_store();
	char p[4200];
	snprintf(p, sizeof p, "%s/src", src_dir);
	struct states s;
	states_make(&s, in_place);
	uint8_t *buf = malloc(GEN_SIZE);
	gen_bytes(buf, 0);
	write_file(p, buf, GEN_SIZE);
	free(buf);
	char v[64];
	VERSION(db, v, p);
	ASSERT_STR_EQ(v, s.v[0]); /* the formula, checked once */

	struct turns t;
	turns_open(&t);
	pid_t pid = fork();
	ASSERT(pid >= 0);
	if (pid == 0) {
		turns_writer(&t);
		writer(p, in_place, &t);
	}
	turns_reader(&t);
	size_t per = in_place ? GEN_PAGES : 1;
	int ok = 0, busy = 0, mixed = 0, seen = -1, made = 0, st, done = 0;
	size_t last = 0;
	uint64_t hashed0 = ctr(db, LARDER_CTR_FILES_HASHED_BYTES);
	for (;;) {
		/* Looked at before the call: a call after the writer's end
		 * sees its last generation. */
		done = done || waitpid(pid, &st, WNOHANG) == pid;
		/* A generation written whole before the call: the call
		 * returns it, for the writer waits to make the next. */
		int fresh = turns_made(&t, &made) > seen;
		const char *paths[1] = {p};
		int rc = larder_files_version(v, db, paths, 1, 0);
		if (rc == LARDER_EBUSY) {
			busy++;
		} else {
			if (rc != 0)
				test_fail(__FILE__, __LINE__, "version: %d: %s",
					  rc, larder_errmsg(db));
			long i = states_find(&s, last, v);
			if (i < 0)
				test_fail(__FILE__, __LINE__,
					  "version %s (call %d) is %s", v,
					  ok + busy + 1,
					  states_find(&s, 0, v) >= 0
					      ? "of an older state than one "
						"already returned"
					      : "of no state the file ever "
						"held");
			if (fresh && (size_t)i != (size_t)made * per)
				test_fail(__FILE__, __LINE__,
					  "version %s (call %d), begun after "
					  "generation %d was written whole, is "
					  "of state %ld, not %zu",
					  v, ok + busy + 1, made, i,
					  (size_t)made * per);
			mixed += in_place && i % per != 0;
			last = (size_t)i;
			ok++;
			/* A whole generation not seen before: the writer's
			 * turn to make the next. */
			if (i % per == 0 && (int)(i / per) > seen) {
				seen = (int)(i / per);
				if (seen < GENS)
					turns_go(&t);
			}
		}
		if (seen == GENS)
			break;
		if (done)
			test_fail(__FILE__, __LINE__,
				  "the writer ended (status %#x) with "
				  "generation %d the last seen whole",
				  st, seen);
	}
	if (!done)
		ASSERT_EQ(waitpid(pid, &st, 0), pid);
	ASSERT(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	turns_close(&t);
	uint64_t read = ctr(db, LARDER_CTR_FILES_HASHED_BYTES) - hashed0;
	printf("    %d versions, each of a state the file held (%d between "
	       "two generations); %d calls found it changing every time; "
	       "%.1f reads per version\n",
	       ok, mixed, busy, (double)read / GEN_SIZE / (ok ? ok : 1));
	ASSERT_EQ(last, s.n - 1); /* the last generation, at the end */
	/* Racy all along: nothing of it was remembered. */
	ASSERT_EQ(records(db), 0);
	free(s.v);
	larder_close(db);
}

TEST(writer_renaming_every_version_is_one_generation)
{
	versions_match_states(test_dir(), 0);
}

TEST(writer_in_place_every_version_is_a_state_the_file_held)
{
	versions_match_states(test_dir(), 1);
}

/* On a filesystem that keeps whole seconds (ext4 with 128-byte inodes, a
 * loop mount in a mount namespace of the test's own), hundreds of
 * generations share one fingerprint: only the second read of a racy
 * file tells a read overtaken by the writer from a state of the file. */
TEST(writer_in_place_on_whole_second_timestamps_every_version_is_a_state)
{
	private_mounts();
	const char *img = test_path("ext4.img"), *mnt = test_path("coarse");
	ASSERT_EQ(mkdir(mnt, 0755), 0);
	if (test_sh("truncate -s 32M '%s' && mkfs.ext4 -q -F -I 128 '%s' "
		    ">/dev/null 2>&1 && mount -o loop '%s' '%s'",
		    img, img, img, mnt) != 0) {
		test_skip("cannot make and loop-mount an ext4 image (needs "
			  "mkfs.ext4, loop devices, root)");
	}
	/* The premise: timestamps there are whole seconds. */
	char probe[4200];
	snprintf(probe, sizeof probe, "%s/probe", mnt);
	write_str(probe, "x");
	struct stat st;
	ASSERT_EQ(stat(probe, &st), 0);
	ASSERT_EQ(st.st_mtim.tv_nsec, 0);
	ASSERT_EQ(st.st_ctim.tv_nsec, 0);
	versions_match_states(mnt, 1);
	umount2(mnt, MNT_DETACH);
}

/* A file appearing and vanishing in a tree while it is walked: each
 * version is the tree with it or without it. The writer makes each change
 * once the reader has seen the last one (struct turns), so the reader
 * sees exactly 2 x ROUNDS changes on any machine, and its walks race each
 * change as it is made. */
#define ROUNDS 100

TEST(tree_changing_under_the_walk_gives_a_version_of_it)
{
	larder *db = open_store();
	char t[4096];
	snprintf(t, sizeof t, "%s", test_path("t"));
	make_tree(t, 10);
	char without[64], with[64];
	VERSION_NR(db, without, t);
	write_str(test_path("t/sub/x"), "x marks the spot\n");
	VERSION_NR(db, with, t);
	ASSERT(strcmp(with, without) != 0);
	ASSERT_EQ(unlink(test_path("t/sub/x")), 0);

	struct turns tn;
	turns_open(&tn);
	pid_t pid = fork();
	ASSERT(pid >= 0);
	if (pid == 0) {
		turns_writer(&tn);
		char tmp[4200], x[4200];
		snprintf(tmp, sizeof tmp, "%s/x.tmp", test_dir());
		snprintf(x, sizeof x, "%s/sub/x", t);
		for (int i = 0; i < ROUNDS; i++) {
			/* Written beside the tree, renamed in: the tree
			 * holds x whole or not at all. */
			if (!turns_wait(&tn))
				_exit(3);
			int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
			if (fd < 0 || write(fd, "x marks the spot\n", 17) != 17)
				_exit(2);
			close(fd);
			if (rename(tmp, x) != 0 || !turns_done(&tn))
				_exit(2);
			if (!turns_wait(&tn) || unlink(x) != 0 ||
			    !turns_done(&tn))
				_exit(2);
		}
		_exit(0);
	}
	turns_reader(&tn);
	/* cur: the tree last seen (0 without x, 1 with it, -1 not yet). */
	int n_with = 0, n_without = 0, busy = 0, changes = -1, cur = -1, st;
	int done = 0, made = 0;
	while (changes < 2 * ROUNDS) {
		done = done || waitpid(pid, &st, WNOHANG) == pid;
		/* A change made before the call: the call sees it. */
		int fresh = turns_made(&tn, &made) > changes;
		char v[64];
		const char *paths[1] = {t};
		int rc = larder_files_version(v, db, paths, 1, 0);
		if (rc == LARDER_EBUSY) {
			busy++;
			continue;
		}
		if (rc != 0)
			test_fail(__FILE__, __LINE__, "version: %d: %s", rc,
				  larder_errmsg(db));
		int now;
		if (!strcmp(v, with))
			now = 1, n_with++;
		else if (!strcmp(v, without))
			now = 0, n_without++;
		else
			test_fail(__FILE__, __LINE__,
				  "version %s is neither the tree with x nor "
				  "without it",
				  v);
		if (fresh && changes >= 0 && now != made % 2)
			test_fail(__FILE__, __LINE__,
				  "a walk begun after change %d sees the tree "
				  "%s x",
				  made, now ? "with" : "without");
		if (now != cur) {
			cur = now;
			changes++;
			if (changes < 2 * ROUNDS)
				turns_go(&tn);
		} else if (done) {
			test_fail(__FILE__, __LINE__,
				  "the writer ended (status %#x) after %d "
				  "changes seen",
				  st, changes);
		}
	}
	if (!done)
		ASSERT_EQ(waitpid(pid, &st, 0), pid);
	ASSERT(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	turns_close(&tn);
	printf("    %d with x, %d without, %d busy\n", n_with, n_without, busy);
	ASSERT_EQ(cur, 0); /* x made and removed ROUNDS times, each seen */
	larder_close(db);
}
