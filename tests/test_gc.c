/*
 * test_gc.c — quotas, recency and cleaning: the caps hold under four
 * concurrent writers, hot entries outlive cold ones, expired and
 * superseded go first, watermarks on a small tmpfs, readers never fail
 * while a cleaning runs, one cleaner at a time, dry runs remove nothing,
 * a namespace's cap touches only it, and the configuration round-trips.
 * gc.lock takes the store's mode, failed cleanings are counted, and a
 * cleaning down to nothing takes entries touched during it.
 *
 * What is left is judged by walking the real files, never by the
 * library's own accounting.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "larder.h"
#include "store_util.h"

#define KiB 1024u
#define MiB (1024u * 1024u)

/* A store at dir, created if need be: some tests keep theirs on a small
 * mount of its own. */
static larder *open_at(const char *dir)
{
	larder_opts o = LARDER_OPTS_INIT;
	o.flags = LARDER_OPEN_CREATE;
	o.create_fsync = LARDER_FSYNC_NONE;
	return open_store_at(dir, &o);
}

static void set_limits(larder *db, const char *ns, int64_t max_bytes,
		       int64_t max_entries, int64_t touch)
{
	larder_limits l = LARDER_LIMITS_INIT;
	ASSERT_RC(db, larder_limits_get(&l, db, ns), 0);
	l.max_bytes = max_bytes;
	l.max_entries = max_entries;
	if (!ns)
		l.touch_interval = touch;
	ASSERT_RC(db, larder_limits_set(db, ns, &l), 0);
}

/* Entry files (32 hex digits under ns/<ns>/e/) and their bytes; head
 * hints (the same under ns/<ns>/h/). */
static int64_t g_bytes, g_files, g_heads;
static const char *g_ns; /* NULL = every namespace */

static int count_cb(const char *path, const struct stat *st, int type,
		    struct FTW *f)
{
	(void)f;
	const char *base = strrchr(path, '/') + 1;
	if (type == FTW_F && strlen(base) == 32 && strstr(path, "/h/"))
		g_heads++;
	if (type != FTW_F || strlen(base) != 32 || !strstr(path, "/e/"))
		return 0;
	if (g_ns) {
		char want[128];
		snprintf(want, sizeof want, "/ns/%s/e/", g_ns);
		if (!strstr(path, want))
			return 0;
	}
	g_bytes += st->st_size;
	g_files++;
	return 0;
}

static int64_t store_files(const char *dir, const char *ns, int64_t *bytes)
{
	char p[4200];
	snprintf(p, sizeof p, "%s/ns", dir);
	g_bytes = g_files = g_heads = 0;
	g_ns = ns;
	nftw(p, count_cb, 16, FTW_PHYS);
	if (bytes)
		*bytes = g_bytes;
	return g_files;
}

static void put_n(larder *db, const char *ns, const char *key, const char *ver,
		  size_t size, uint64_t seed, int64_t ttl)
{
	char *buf = xmalloc(size);
	larder_put_opts po = LARDER_PUT_OPTS_INIT;
	po.ttl_seconds = ttl;
	test_fill_pattern(buf, size, seed);
	ASSERT_RC(db,
		  larder_put(db, ns, key, strlen(key), ver,
			     ver ? strlen(ver) : 0, buf, size, &po),
		  0);
	free(buf);
}

static int present(larder *db, const char *ns, const char *key, const char *ver)
{
	larder_entry *e;
	int rc = larder_get(&e, db, ns, key, strlen(key), ver,
			    ver ? strlen(ver) : 0);
	larder_entry_release(e);
	return rc == 0;
}

static int64_t atime_ns(const char *path)
{
	struct stat st;
	ASSERT_EQ(stat(path, &st), 0);
	return (int64_t)st.st_atim.tv_sec * 1000000000 + st.st_atim.tv_nsec;
}

/* The file of (ns, key, head version), found through inspect. */
static char g_path[4096];
static int path_cb(const larder_entry_info *i, void *p)
{
	(void)p;
	snprintf(g_path, sizeof g_path, "%s", i->path);
	return 0;
}

static const char *entry_path(larder *db, const char *ns, const char *key)
{
	ASSERT_RC(
	    db,
	    larder_inspect(db, ns, key, strlen(key), NULL, 0, 0, path_cb, NULL),
	    0);
	return g_path;
}

/* The mtime older still: with an atime not newer than the mtime, a
 * relatime mount would refresh it on the next read by itself. */
static void set_old_atime(const char *path, int seconds_ago)
{
	struct timespec ts[2] = {{time(NULL) - seconds_ago, 0},
				 {time(NULL) - seconds_ago - 1000, 0}};
	ASSERT_EQ(utimensat(AT_FDCWD, path, ts, 0), 0);
}

/* ---------------------------------------------------------------------- */

TEST(limits_round_trip_and_keep_unknown_lines)
{
	larder *db = open_at(test_path("s"));
	larder_limits l = LARDER_LIMITS_INIT, got = LARDER_LIMITS_INIT;
	ASSERT_RC(db, larder_limits_get(&got, db, NULL), 0);
	ASSERT_EQ(got.max_bytes, 0);
	ASSERT_EQ(got.wm_run, 0); /* off unless set (operations.md) */
	ASSERT_EQ(got.wm_cull, 0);
	ASSERT_EQ(got.wm_stop, 0);
	ASSERT_EQ(got.touch_interval, 60);
	/* an operator's line, unknown to this version, survives */
	ASSERT_EQ(test_sh("echo 'future_knob 42' > %s", test_path("s/config")),
		  0);
	l.max_bytes = 10 * (int64_t)MiB;
	l.max_entries = 77;
	l.wm_run = 20;
	l.wm_cull = 15;
	l.wm_stop = 5;
	l.touch_interval = 9;
	ASSERT_RC(db, larder_limits_set(db, NULL, &l), 0);
	ASSERT_RC(db, larder_limits_get(&got, db, NULL), 0);
	ASSERT_EQ(got.max_bytes, 10 * (int64_t)MiB);
	ASSERT_EQ(got.max_entries, 77);
	ASSERT_EQ(got.wm_run, 20);
	ASSERT_EQ(got.wm_cull, 15);
	ASSERT_EQ(got.wm_stop, 5);
	ASSERT_EQ(got.touch_interval, 9);
	ASSERT_EQ(
	    test_sh("grep -qx 'future_knob 42' %s", test_path("s/config")), 0);

	/* namespace caps and its ttl live together in one file */
	ASSERT_RC(db, larder_ns_set_ttl(db, "a", 3600), 0);
	set_limits(db, "a", 5 * MiB, 9, 0);
	int64_t ttl;
	ASSERT_RC(db, larder_ns_get_ttl(&ttl, db, "a"), 0);
	ASSERT_EQ(ttl, 3600);
	ASSERT_RC(db, larder_ns_set_ttl(db, "a", 60), 0);
	ASSERT_RC(db, larder_limits_get(&got, db, "a"), 0);
	ASSERT_EQ(got.max_bytes, 5 * MiB);
	ASSERT_EQ(got.max_entries, 9);
	ASSERT_EQ(got.wm_run, 20); /* the store's */
	ASSERT_EQ(test_sh("head -n1 %s | grep -qx 'ttl 60'",
			  test_path("s/ns/a/config")),
		  0);
	/* another handle sees it all */
	larder *db2 = open_at(test_path("s"));
	ASSERT_RC(db2, larder_limits_get(&got, db2, "a"), 0);
	ASSERT_EQ(got.max_entries, 9);
	larder_close(db2);

	/* bad values */
	larder_limits bad = l;
	bad.max_bytes = -1;
	ASSERT_RC(db, larder_limits_set(db, NULL, &bad), LARDER_EINVAL);
	bad = l;
	bad.wm_run = 5; /* run below cull */
	ASSERT_RC(db, larder_limits_set(db, NULL, &bad), LARDER_EINVAL);
	ASSERT(strstr(larder_errmsg(db), "watermarks"));
	bad = l;
	bad.wm_stop = -1;
	ASSERT_RC(db, larder_limits_set(db, NULL, &bad), LARDER_EINVAL);
	bad = l;
	bad.wm_run = bad.wm_cull = bad.wm_stop = 0; /* off is fine */
	ASSERT_RC(db, larder_limits_set(db, NULL, &bad), 0);
	bad.version = 99;
	ASSERT_RC(db, larder_limits_set(db, NULL, &bad), LARDER_EINVAL);
	ASSERT_RC(db, larder_limits_set(db, "../x", &l), LARDER_EINVAL);
	larder_close(db);
}

static void mount_small(const char *dir, unsigned long flags, const char *opts);

TEST(hit_touches_at_most_once_per_interval)
{
	/* noatime: the kernel's own relatime refresh (atime older than
	 * ctime, which setting the times moves) would hide ours */
	mount_small(test_path("mnt"), MS_NOATIME, "size=8m");
	larder *db = open_at(test_path("mnt/s"));
	set_limits(db, NULL, 0, 0, 1000);
	put_n(db, "n", "k", NULL, 100, 1, 0);
	const char *p = entry_path(db, "n", "k");
	char path[4096];
	snprintf(path, sizeof path, "%s", p);
	set_old_atime(path, 5000);
	int64_t before = atime_ns(path);
	ASSERT(present(db, "n", "k", NULL));
	int64_t after = atime_ns(path);
	ASSERT(after > before + 4000LL * 1000000000);
	ASSERT_EQ(larder_counter(db, LARDER_CTR_TOUCHES), 1);
	for (int i = 0; i < 50; i++)
		ASSERT(present(db, "n", "k", NULL));
	ASSERT_EQ(larder_counter(db, LARDER_CTR_TOUCHES), 1);
	/* another handle finds it recent (someone touched it): no write */
	larder *db2 = open_at(test_path("mnt/s"));
	ASSERT(present(db2, "n", "k", NULL));
	ASSERT_EQ(larder_counter(db2, LARDER_CTR_TOUCHES), 0);
	larder_close(db2);
	/* interval 0: every hit touches */
	set_limits(db, NULL, 0, 0, 0);
	larder *db3 = open_at(test_path("mnt/s"));
	for (int i = 0; i < 5; i++)
		ASSERT(present(db3, "n", "k", NULL));
	ASSERT_EQ(larder_counter(db3, LARDER_CTR_TOUCHES), 5);
	larder_close(db3);
	larder_close(db);
}

TEST(cleaning_walking_and_inspecting_do_not_touch)
{
	/* on the test directory's own mount (relatime, usually): setting
	 * the times moves the ctime past the atime, so any plain read now
	 * would refresh the atime by itself */
	larder *db = open_at(test_path("s"));
	put_n(db, "n", "k", NULL, 100, 1, 0);
	char path[4096];
	snprintf(path, sizeof path, "%s", entry_path(db, "n", "k"));
	set_old_atime(path, 5000);
	int64_t before = atime_ns(path);
	larder_gc_report r = LARDER_GC_REPORT_INIT;
	ASSERT_RC(db, larder_gc(&r, db, NULL, 0), 0);
	ASSERT_EQ(r.seen_entries, 1);
	entry_path(db, "n", "k");
	ASSERT_RC(db, larder_walk(db, NULL, LARDER_WALK_VERIFY, path_cb, NULL),
		  0);
	ASSERT_EQ(atime_ns(path), before);
	ASSERT_EQ(larder_counter(db, LARDER_CTR_TOUCHES), 0);
	larder_close(db);
}

TEST(hot_entries_survive_while_cold_ones_go)
{
	larder *db = open_at(test_path("s"));
	set_limits(db, NULL, 0, 0, 0);
	char key[32];
	/* hot ones first: oldest by creation, so only recency saves them */
	for (int i = 0; i < 10; i++) {
		snprintf(key, sizeof key, "hot%d", i);
		put_n(db, "n", key, NULL, 2000, (uint64_t)i, 0);
	}
	for (int i = 0; i < 20; i++) {
		snprintf(key, sizeof key, "cold%d", i);
		put_n(db, "n", key, NULL, 2000, 100u + (uint64_t)i, 0);
	}
	/* Times set, not waited for: all 30 were written within a few
	 * clock ticks of each other, and a file's times move only once a
	 * tick, so hits now could leave the hot ones' atimes equal to the
	 * cold ones'. Every hot entry is older than every cold one, in
	 * creation and in use, until the hits below. */
	for (int i = 0; i < 30; i++) {
		if (i < 10)
			snprintf(key, sizeof key, "hot%d", i);
		else
			snprintf(key, sizeof key, "cold%d", i - 10);
		set_old_atime(entry_path(db, "n", key), i < 10 ? 3000 : 2000);
	}
	for (int round = 0; round < 3; round++)
		for (int i = 0; i < 10; i++) {
			snprintf(key, sizeof key, "hot%d", i);
			ASSERT(present(db, "n", key, NULL));
		}
	set_limits(db, NULL, 0, 20, 0); /* 30 entries: clean down to 18 */
	larder_gc_report r = LARDER_GC_REPORT_INIT;
	ASSERT_RC(db, larder_gc(&r, db, NULL, 0), 0);
	ASSERT_EQ(r.seen_entries, 30);
	ASSERT_EQ(r.evicted, 12);
	ASSERT_EQ(store_files(test_path("s"), NULL, NULL), 18);
	/* the evicted keys' heads went with them */
	ASSERT_EQ(g_heads, 18);
	ASSERT_EQ(r.heads_removed, 12);
	for (int i = 0; i < 10; i++) {
		snprintf(key, sizeof key, "hot%d", i);
		ASSERT(present(db, "n", key, NULL));
	}
	ASSERT(larder_counter(db, LARDER_CTR_EVICTIONS) >= 12);
	ASSERT_EQ(larder_counter(db, LARDER_CTR_GC_RUNS), 1);
	larder_close(db);
}

/* Waits until the clock passes an entry's expiry: a time condition, not
 * a synchronisation. */
static void wait_expired(larder *db, const char *ns, const char *key)
{
	for (int i = 0; i < 300 && present(db, ns, key, NULL); i++) {
		struct timespec ts = {0, 10 * 1000000};
		nanosleep(&ts, NULL);
	}
	ASSERT(!present(db, ns, key, NULL));
}

static void superseded_setup(larder *db)
{
	char key[32];
	/* plain entries are the oldest: LRU alone would take them first */
	for (int i = 0; i < 10; i++) {
		snprintf(key, sizeof key, "plain%d", i);
		put_n(db, "n", key, NULL, 1000, (uint64_t)i, 0);
	}
	for (int i = 0; i < 3; i++) {
		snprintf(key, sizeof key, "s%d", i);
		put_n(db, "n", key, "v1", 1000, 50u + (uint64_t)i, 0);
		put_n(db, "n", key, "v2", 1000, 60u + (uint64_t)i, 0);
	}
	put_n(db, "n", "exp0", NULL, 1000, 70, 1);
	put_n(db, "n", "exp1", NULL, 1000, 71, 1);
	wait_expired(db, "n", "exp1");
	/* 16 live entries; 15 allowed: down to 13, i.e. 3 to go */
	set_limits(db, NULL, 0, 15, 0);
}

TEST(expired_and_superseded_go_first)
{
	larder *db = open_at(test_path("s"));
	superseded_setup(db);
	larder_gc_report r = LARDER_GC_REPORT_INIT;
	ASSERT_RC(db, larder_gc(&r, db, "n", 0), 0);
	ASSERT_EQ(r.expired, 2);
	ASSERT_EQ(r.superseded, 3);
	ASSERT_EQ(r.evicted, 0);
	ASSERT_EQ(store_files(test_path("s"), NULL, NULL), 13);
	/* the expired keys' heads go; a superseded version's head names
	 * the newer one, which stays */
	ASSERT_EQ(g_heads, 13);
	ASSERT_EQ(r.heads_removed, 2);
	char key[32];
	for (int i = 0; i < 10; i++) {
		snprintf(key, sizeof key, "plain%d", i);
		ASSERT(present(db, "n", key, NULL));
	}
	for (int i = 0; i < 3; i++) {
		snprintf(key, sizeof key, "s%d", i);
		ASSERT(present(db, "n", key, "v2"));
		ASSERT(!present(db, "n", key, "v1"));
	}
	larder_close(db);
}

TEST(dry_run_removes_nothing)
{
	larder *db = open_at(test_path("s"));
	superseded_setup(db);
	int64_t before = store_files(test_path("s"), NULL, NULL);
	int64_t heads = g_heads;
	larder_gc_report r = LARDER_GC_REPORT_INIT;
	ASSERT_RC(db, larder_gc(&r, db, NULL, LARDER_GC_DRY_RUN), 0);
	ASSERT_EQ(r.expired, 2);
	ASSERT_EQ(r.superseded, 3);
	ASSERT(r.bytes_freed > 0);
	ASSERT_EQ(store_files(test_path("s"), NULL, NULL), before);
	ASSERT_EQ(g_heads, heads);
	ASSERT_EQ(r.heads_removed, 0);
	ASSERT_EQ(larder_counter(db, LARDER_CTR_EVICTIONS), 0);
	larder_close(db);
}

TEST(gc_skips_while_another_cleaner_holds_the_lock)
{
	larder *db = open_at(test_path("s"));
	superseded_setup(db);
	int fd = open(test_path("s/gc.lock"), O_RDWR | O_CREAT, 0644);
	ASSERT(fd >= 0);
	struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
	ASSERT_EQ(fcntl(fd, F_OFD_SETLK, &fl), 0);
	int64_t before = store_files(test_path("s"), NULL, NULL);
	larder_gc_report r = LARDER_GC_REPORT_INIT;
	ASSERT_RC(db, larder_gc(&r, db, NULL, 0), 0);
	ASSERT_EQ(r.skipped, 1);
	ASSERT_EQ(r.passes, 0);
	ASSERT_EQ(store_files(test_path("s"), NULL, NULL), before);
	close(fd);
	ASSERT_RC(db, larder_gc(&r, db, NULL, 0), 0);
	ASSERT_EQ(r.skipped, 0);
	ASSERT_EQ(r.superseded, 3);
	larder_close(db);
}

/* gc.lock is shared bookkeeping: it takes the store's full mode whatever
 * the umask of the process that makes it, or the other members of a
 * group-shared store could not open it to clean. */
TEST(gc_lock_takes_the_store_mode_not_the_umask)
{
	larder *db;
	larder_opts o = LARDER_OPTS_INIT;
	o.flags = LARDER_OPEN_CREATE;
	o.create_mode = 0664;
	o.create_fsync = LARDER_FSYNC_NONE;
	mode_t old = umask(022);
	ASSERT_RC(NULL, larder_open(&db, test_path("s"), &o), 0);
	larder_gc_report r = LARDER_GC_REPORT_INIT;
	ASSERT_RC(db, larder_gc(&r, db, NULL, 0), 0);
	struct stat st;
	ASSERT_EQ(stat(test_path("s/gc.lock"), &st), 0);
	ASSERT_EQ(st.st_mode & 07777, 0664);
	/* one made by an older larder (the umask's 0644) is mended by its
	 * owner's next cleaning */
	ASSERT_EQ(chmod(test_path("s/gc.lock"), 0644), 0);
	ASSERT_RC(db, larder_gc(&r, db, NULL, 0), 0);
	ASSERT_EQ(stat(test_path("s/gc.lock"), &st), 0);
	ASSERT_EQ(st.st_mode & 07777, 0664);
	ASSERT_EQ(larder_counter(db, LARDER_CTR_GC_FAILURES), 0);
	larder_close(db);
	umask(old);
}

/* The store-wide value of a counter, by name (as `larder stat` has it). */
static uint64_t stored_counter(const char *dir, const char *name)
{
	larder *db = open_at(dir);
	larder_stats *s = NULL;
	ASSERT_RC(db, larder_stats_read(&s, db), 0);
	uint64_t v, found = 0;
	int seen = 0;
	for (size_t i = 0; i < larder_stats_counters(s); i++) {
		const char *n = larder_stats_counter(&v, s, i);
		if (strcmp(n, name) == 0) {
			found = v;
			seen = 1;
		}
	}
	larder_stats_free(s);
	larder_close(db);
	ASSERT(seen);
	return found;
}

/* A cleaning that cannot lock (for another reason than another cleaner),
 * or cannot remove an entry it means to, is counted in gc_failures, which
 * reaches the store's counters: it is how an operator sees that caps no
 * longer hold. A read-only bind mount of ns/ (in a mount namespace of
 * this test's own) makes every removal fail, even as root. */
TEST(gc_failures_counts_cleanings_that_cannot_lock_or_remove)
{
	const char *dir = test_path("s");
	larder *db = open_at(dir);
	char key[16];
	for (int i = 0; i < 3; i++) {
		snprintf(key, sizeof key, "k%d", i);
		put_n(db, "n", key, NULL, 100, (uint64_t)i, 0);
	}
	larder_gc_report r = LARDER_GC_REPORT_INIT;
	ASSERT_RC(db, larder_gc(&r, db, NULL, 0), 0);
	ASSERT_EQ(larder_counter(db, LARDER_CTR_GC_FAILURES), 0);
	larder_close(db);
	ASSERT_EQ(stored_counter(dir, "gc_failures"), 0);

	/* cannot lock: a directory where gc.lock should be */
	ASSERT_EQ(unlink(test_path("s/gc.lock")), 0);
	ASSERT_EQ(mkdir(test_path("s/gc.lock"), 0755), 0);
	db = open_at(dir);
	ASSERT(larder_gc(&r, db, NULL, 0) != 0);
	ASSERT(strstr(larder_errmsg(db), "gc.lock"));
	ASSERT_EQ(larder_counter(db, LARDER_CTR_GC_FAILURES), 1);
	larder_close(db);
	ASSERT_EQ(stored_counter(dir, "gc_failures"), 1);
	ASSERT_EQ(rmdir(test_path("s/gc.lock")), 0);

	/* cannot remove: the entries on a read-only mount */
	if (unshare(CLONE_NEWNS) != 0)
		test_skip("no private mount namespace (unshare: %s): needs "
			  "root",
			  strerror(errno));
	ASSERT_EQ(mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL), 0);
	const char *ns = test_path("s/ns");
	ASSERT_EQ(mount(ns, ns, NULL, MS_BIND, NULL), 0);
	ASSERT_EQ(mount(NULL, ns, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY, NULL),
		  0);
	db = open_at(dir);
	set_limits(db, NULL, 0, 1, 60);
	ASSERT_RC(db, larder_gc(&r, db, NULL, 0), 0);
	ASSERT_EQ(r.evicted, 0);
	ASSERT_EQ(store_files(dir, NULL, NULL), 3);
	/* each pass failed (still over the cap, gc tried again) */
	ASSERT(r.passes >= 1);
	ASSERT_EQ(larder_counter(db, LARDER_CTR_GC_FAILURES), r.passes);
	larder_close(db);
	ASSERT_EQ(stored_counter(dir, "gc_failures"), 1 + r.passes);
	ASSERT_EQ(umount2(ns, MNT_DETACH), 0);
}

/* When a cleaning must remove every entry it found (a cap of 1 is
 * cleaned down to 0), an entry whose access time moves between its two
 * walks goes too: hit meanwhile, or (in a group-shared store) made recent
 * by the first walk's own read of a file this user does not own. Here a
 * log callback plays the hit, touching the entries left when the first
 * one is removed. It takes one pass: the cleaning a publish starts makes
 * no second. */
static char g_touch[4][4096];
static int g_touched;
static void touch_on_first_removal(int level, const char *msg, void *payload)
{
	(void)level;
	(void)payload;
	if (g_touched || !strstr(msg, "least recently used"))
		return;
	g_touched = 1;
	struct timespec now[2] = {{0, UTIME_NOW}, {0, UTIME_OMIT}};
	for (int i = 0; i < 4; i++)
		if (utimensat(AT_FDCWD, g_touch[i], now, 0) != 0 &&
		    errno != ENOENT)
			test_fail(__FILE__, __LINE__, "touch %s: %s",
				  g_touch[i], strerror(errno));
}

TEST(cleaning_down_to_nothing_takes_entries_touched_meanwhile)
{
	const char *dir = test_path("s");
	larder *db = open_at(dir);
	char key[16];
	for (int i = 0; i < 4; i++) {
		snprintf(key, sizeof key, "k%d", i);
		put_n(db, "n", key, NULL, 100, (uint64_t)i, 0);
		snprintf(g_touch[i], sizeof g_touch[i], "%s",
			 entry_path(db, "n", key));
		set_old_atime(g_touch[i], 3600);
	}
	larder_close(db);
	larder_opts o = LARDER_OPTS_INIT;
	o.log = touch_on_first_removal;
	o.log_level = LARDER_LOG_INFO;
	ASSERT_RC(NULL, larder_open(&db, dir, &o), 0);
	set_limits(db, NULL, 0, 1, 60);
	larder_gc_report r = LARDER_GC_REPORT_INIT;
	ASSERT_RC(db, larder_gc(&r, db, NULL, LARDER_GC_LOG_EACH), 0);
	ASSERT(g_touched);
	/* in one pass: a publish's cleaning makes only one */
	ASSERT_EQ(r.passes, 1);
	ASSERT_EQ(r.evicted, 4);
	ASSERT_EQ(store_files(dir, NULL, NULL), 0);
	larder_close(db);
}

TEST(namespace_cap_touches_only_that_namespace)
{
	larder *db = open_at(test_path("s"));
	set_limits(db, "small", 0, 5, 0);
	char key[32];
	for (int i = 0; i < 20; i++) {
		snprintf(key, sizeof key, "k%d", i);
		put_n(db, "big", key, NULL, 500, (uint64_t)i, 0);
		put_n(db, "small", key, NULL, 500, (uint64_t)i, 0);
		/* after each publish (and its cleaning) */
		ASSERT(store_files(test_path("s"), "small", NULL) <= 5);
	}
	ASSERT_EQ(store_files(test_path("s"), "big", NULL), 20);
	ASSERT(larder_counter(db, LARDER_CTR_EVICTIONS) >= 15);
	/* the newest stay */
	ASSERT(present(db, "small", "k19", NULL));
	larder_close(db);
}

/* ---------------------------------------------------------------------- */
/* Processes                                                               */

static void wait_all(pid_t *pids, int n)
{
	for (int i = 0; i < n; i++) {
		int st;
		ASSERT_EQ(waitpid(pids[i], &st, 0), pids[i]);
		if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
			test_fail(__FILE__, __LINE__, "child %d failed (%d)", i,
				  st);
	}
}

#define QUOTA (1 * (int64_t)MiB)
#define MAX_ENTRY (100 * KiB + 4096)

/* Entry files per half of the store (first fan-out directory below 0x80
 * or not), counted on disk. */
static void halves(const char *dir, int64_t h[2])
{
	char p[4200];
	h[0] = h[1] = 0;
	for (int i = 0; i < 256; i++) {
		snprintf(p, sizeof p, "%s/ns/n/e/%02x", dir, i);
		g_ns = NULL;
		g_bytes = g_files = g_heads = 0;
		nftw(p, count_cb, 16, FTW_PHYS);
		h[i >= 128] += g_files;
	}
}

static int64_t usage_entries(larder *db)
{
	larder_stats *st;
	ASSERT_RC(db, larder_stats_flush(db), 0);
	ASSERT_RC(db, larder_stats_read(&st, db), 0);
	int64_t b, n = -1, x;
	const char *name;
	for (size_t i = 0; (name = larder_stats_usage(&b, &x, st, i)); i++)
		if (strcmp(name, "n") == 0)
			n = x;
	larder_stats_free(st);
	return n;
}

/* Removes every third entry file behind larder's back. */
static int g_nth, g_unlinked;
static int unlink_cb(const char *path, const struct stat *st, int type,
		     struct FTW *f)
{
	(void)st;
	(void)f;
	const char *base = strrchr(path, '/') + 1;
	if (type == FTW_F && strlen(base) == 32 && strstr(path, "/e/") &&
	    g_nth++ % 3 == 0 && unlink(path) == 0)
		g_unlinked++;
	return 0;
}

static void put_keys(larder *db, int from, int to)
{
	larder_put_opts po = LARDER_PUT_OPTS_INIT;
	po.flags = LARDER_PUT_NO_HEAD;
	char key[32], val[64];
	for (int i = from; i < to; i++) {
		snprintf(key, sizeof key, "k%05d", i);
		snprintf(val, sizeof val, "value of %s", key);
		ASSERT_RC(db,
			  larder_put(db, "n", key, strlen(key), "v", 1, val,
				     strlen(val), &po),
			  0);
	}
}

TEST(a_large_store_is_cleaned_a_slice_per_publish)
{
	const char *dir = test_path("s");
	larder *db = open_at(dir);
	/* 10000 entries: two slices of about 5000 (a store of 8192 entries
	 * or more is cleaned a slice of at least 4096 entries per publish) */
	put_keys(db, 0, 10000);
	int64_t h0[2], h1[2], h2[2];
	halves(dir, h0);
	ASSERT_EQ(h0[0] + h0[1], 10000);
	/* 9000 allowed: a slice's share is 4500, cleaned to 90%: 4050; the
	 * store, still over, cleans the other slice at the next publish */
	set_limits(db, NULL, 0, 9000, 0);
	ASSERT_RC(db, larder_put(db, "n", "t1", 2, "v", 1, "x", 1, NULL), 0);
	halves(dir, h1);
	int a = h1[0] < h0[0] ? 0 : 1; /* the half cleaned */
	ASSERT_EQ(h1[a], 4050);
	ASSERT(h1[!a] == h0[!a] || h1[!a] == h0[!a] + 1); /* untouched */
	ASSERT(h1[0] + h1[1] > 9000);
	ASSERT_EQ(usage_entries(db), h1[0] + h1[1]);
	ASSERT_RC(db, larder_put(db, "n", "t2", 2, "v", 1, "x", 1, NULL), 0);
	halves(dir, h2);
	ASSERT_EQ(h2[!a], 4050);
	ASSERT(h2[a] == h1[a] || h2[a] == h1[a] + 1);
	ASSERT(h2[0] + h2[1] <= 9000);
	ASSERT_EQ(usage_entries(db), h2[0] + h2[1]);
	ASSERT_EQ(larder_counter(db, LARDER_CTR_GC_RUNS), 2);

	/* Counters that have drifted (entries removed behind larder's back
	 * are still counted) send the publish to a whole walk, which
	 * recounts them, rather than evicting for nothing. */
	set_limits(db, NULL, 0, 0, 0);
	put_keys(db, 10000, 11000);
	int64_t counted = usage_entries(db);
	ASSERT(counted > 9000);
	g_nth = g_unlinked = 0;
	char p[4200];
	snprintf(p, sizeof p, "%s/ns/n/e", dir);
	nftw(p, unlink_cb, 16, FTW_PHYS);
	ASSERT(g_unlinked > 2000);
	ASSERT_EQ(usage_entries(db), counted);
	set_limits(db, NULL, 0, 9000, 0);
	ASSERT_RC(db, larder_put(db, "n", "t3", 2, "v", 1, "x", 1, NULL), 0);
	halves(dir, h2);
	ASSERT_EQ(h2[0] + h2[1], counted - g_unlinked + 1); /* none evicted */
	ASSERT_EQ(usage_entries(db), counted - g_unlinked + 1);
	ASSERT_EQ(larder_counter(db, LARDER_CTR_GC_RUNS), 3);
	larder_close(db);
}

/* Rounds of the four writers on one store: the end of a round is where a
 * publish that found the lock taken can be left uncleaned (the cleaner
 * must look again after its walk), and one round shows it only now and
 * then. */
#define WRITER_ROUNDS 64
#define WRITER_PUTS 4

TEST(four_writers_never_leave_the_store_over_quota)
{
	larder *db = open_at(test_path("s"));
	set_limits(db, NULL, QUOTA, 0, 1);
	larder_close(db);
	volatile int64_t *seen_max = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
					  MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	volatile int *done = (volatile int *)(seen_max + 1);
	pid_t w[4], checker;
	if ((checker = fork()) == 0) {
		int64_t worst = 0, b;
		while (!*done) {
			store_files(test_path("s"), NULL, &b);
			if (b > worst)
				worst = b;
			/* a sampling period, so as not to take a core */
			struct timespec ts = {0, 2 * 1000000};
			nanosleep(&ts, NULL);
		}
		*seen_max = worst;
		_exit(0);
	}
	int64_t bytes;
	for (int round = 0; round < WRITER_ROUNDS; round++) {
		for (int i = 0; i < 4; i++) {
			if ((w[i] = fork()) == 0) {
				larder *d = open_at(test_path("s"));
				srand48(round * 4 + i + 1);
				char key[32];
				for (int j = 0; j < WRITER_PUTS; j++) {
					size_t size =
					    10 * KiB +
					    (size_t)(lrand48() % (90 * KiB));
					snprintf(key, sizeof key, "r%d-w%d-%d",
						 round, i, j);
					put_n(d, "n", key, NULL, size,
					      (uint64_t)(round * 100000 +
							 i * 1000 + j),
					      0);
				}
				larder_close(d);
				_exit(0);
			}
		}
		wait_all(w, 4);
		store_files(test_path("s"), NULL, &bytes);
		if (bytes > QUOTA + MAX_ENTRY) {
			test_fail(__FILE__, __LINE__,
				  "store holds %lld bytes at the end of "
				  "round %d",
				  (long long)bytes, round);
			break;
		}
	}
	*done = 1;
	wait_all(&checker, 1);
	/* While writers run, the store grows by what the others publish
	 * during a cleaning's walk (they find the lock taken and go on; the
	 * cleaner looks again after it): that depends on the machine's load
	 * (measured 2.3-4.4 MiB at load 9 on 2 cores), so this only checks
	 * that cleaning keeps up at all (80 entries, ~4.4 MiB, are put in
	 * each round). */
	if (*seen_max > 6 * QUOTA)
		test_fail(__FILE__, __LINE__, "store reached %lld bytes",
			  (long long)*seen_max);
	fprintf(stderr, "end %lld bytes, worst seen %lld (quota %lld)\n",
		(long long)bytes, (long long)*seen_max, (long long)QUOTA);
}

/* Put back entry k<m> (another reader may be quicker: EXISTS). */
static void refill(larder *d, const char *k, int m)
{
	size_t size = m % 2 ? 200 * KiB : 3 * KiB;
	char *buf = malloc(size);
	test_fill_pattern(buf, size, (uint64_t)m);
	int rc = larder_put(d, "n", k, strlen(k), NULL, 0, buf, size, NULL);
	if (rc < 0)
		test_fail(__FILE__, __LINE__, "refill: %s", larder_errmsg(d));
	free(buf);
}

TEST(readers_never_fail_while_gc_runs)
{
	larder *db = open_at(test_path("s"));
	set_limits(db, NULL, 0, 0, 0);
	char key[32];
	for (int i = 0; i < 60; i++) {
		snprintf(key, sizeof key, "k%d", i);
		/* small ones read into memory, big ones mapped */
		put_n(db, "n", key, NULL, i % 2 ? 200 * KiB : 3 * KiB,
		      (uint64_t)i, 0);
	}
	volatile int *stop = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
				  MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	pid_t r[3];
	for (int i = 0; i < 3; i++) {
		if ((r[i] = fork()) == 0) {
			larder *d = open_at(test_path("s"));
			long hits = 0;
			for (unsigned n = (unsigned)i; !*stop || hits < 20;
			     n++) {
				char k[32];
				int j = (int)(n * 7 % 60);
				snprintf(k, sizeof k, "k%d", j);
				larder_entry *e;
				int rc = larder_get(&e, d, "n", k, strlen(k),
						    NULL, 0);
				if (rc == LARDER_ENOTFOUND)
					continue; /* evicted: a miss */
				if (rc != 0)
					test_fail(__FILE__, __LINE__, "get: %s",
						  larder_errmsg(d));
				/* held across the gc's removals */
				sched_yield();
				size_t want = j % 2 ? 200 * KiB : 3 * KiB;
				ASSERT_EQ(larder_entry_size(e), want);
				ASSERT(test_check_pattern(larder_entry_data(e),
							  want, (uint64_t)j));
				larder_entry_release(e);
				hits++;
				/* refill what went, so the gc has work */
				if (n % 5 == 0) {
					int m = (int)((n / 5) % 60);
					snprintf(k, sizeof k, "k%d", m);
					if (!present(d, "n", k, NULL))
						refill(d, k, m);
				}
			}
			larder_close(d);
			_exit(0);
		}
	}
	larder_gc_report rep = LARDER_GC_REPORT_INIT;
	uint64_t removed = 0;
	for (int round = 0; round < 30; round++) {
		set_limits(db, NULL, 0, round % 2 ? 30 : 0, 0);
		ASSERT_RC(db, larder_gc(&rep, db, NULL, 0), 0);
		removed += rep.evicted;
	}
	*stop = 1;
	wait_all(r, 3);
	ASSERT(removed > 0);
	larder_close(db);
}

/* ---------------------------------------------------------------------- */
/* Watermarks on a private 8 MiB tmpfs                                     */

/* A tmpfs at dir, mounted in a mount namespace of this test's own: the
 * test runs in a forked child (tests/harness.h), so the mount vanishes with
 * it however the test ends, and the host's namespace never sees it. Skips
 * the test where that needs a privilege we lack. */
static void mount_small(const char *dir, unsigned long flags, const char *opts)
{
	if (unshare(CLONE_NEWNS) != 0)
		test_skip("no private mount namespace (unshare: %s): needs "
			  "root",
			  strerror(errno));
	/* Private, or the mount would propagate to the host's namespace
	 * where / is shared (systemd makes it so). */
	ASSERT_EQ(mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL), 0);
	ASSERT_EQ(mkdir(dir, 0755), 0);
	if (mount("tmpfs", dir, "tmpfs", flags, opts) != 0)
		test_skip("cannot mount a tmpfs at %s (%s): needs root", dir,
			  strerror(errno));
}

static double free_pct(const char *dir)
{
	struct statvfs v;
	ASSERT_EQ(statvfs(dir, &v), 0);
	return 100.0 * (double)v.f_bavail / (double)v.f_blocks;
}

static int fill_loader(larder_fill *f, void *payload)
{
	(void)payload;
	char buf[5000];
	test_fill_pattern(buf, sizeof buf, 99);
	return larder_fill_write(f, buf, sizeof buf);
}

TEST(watermarks_cull_and_stop_on_a_small_tmpfs)
{
	const char *mnt = test_path("mnt");
	mount_small(mnt, 0, "size=8m");
	char dir[4096];
	snprintf(dir, sizeof dir, "%s/s", mnt);
	larder *db = open_at(dir);
	larder_limits l = LARDER_LIMITS_INIT;
	ASSERT_RC(db, larder_limits_get(&l, db, NULL), 0);
	l.wm_run = 50;
	l.wm_cull = 40;
	l.wm_stop = 20;
	ASSERT_RC(db, larder_limits_set(db, NULL, &l), 0);
	larder_close(db);

	/* cull: 40 x 200 KiB would fill it; each publish through a new
	 * handle (as separate commands do) sees the space at once */
	char key[32];
	uint64_t evicted = 0;
	for (int i = 0; i < 40; i++) {
		larder *d = open_at(dir);
		snprintf(key, sizeof key, "k%d", i);
		put_n(d, "n", key, NULL, 200 * KiB, (uint64_t)i, 0);
		evicted += larder_counter(d, LARDER_CTR_EVICTIONS);
		ASSERT_EQ(larder_counter(d, LARDER_CTR_PUBLISH_REFUSED), 0);
		larder_close(d);
		/* cleaned back over cull, give or take this one entry */
		ASSERT(free_pct(mnt) > 40.0 - 3.0);
	}
	ASSERT(evicted > 0);
	ASSERT(free_pct(mnt) > 37.0);

	/* stop: the store emptied, then something else takes the space
	 * down to 10% free: cleaning cannot help, nothing is published, and
	 * a fill still hands its data over */
	db = open_at(dir);
	larder_gc_report r = LARDER_GC_REPORT_INIT;
	set_limits(db, NULL, 0, 1, 0);
	ASSERT_RC(db, larder_gc(&r, db, NULL, 0), 0);
	set_limits(db, NULL, 0, 0, 0);
	larder_close(db);
	ASSERT_EQ(store_files(dir, NULL, NULL), 0);
	struct statvfs v;
	ASSERT_EQ(statvfs(mnt, &v), 0);
	off_t keep = (off_t)(v.f_blocks * v.f_frsize / 10);
	off_t ballast = (off_t)(v.f_bavail * v.f_frsize) - keep;
	int bfd = open(test_path("mnt/ballast"), O_WRONLY | O_CREAT, 0644);
	ASSERT(bfd >= 0);
	ASSERT_EQ(posix_fallocate(bfd, 0, ballast), 0);
	close(bfd);
	ASSERT(free_pct(mnt) < 20.0);
	db = open_at(dir);
	char buf[100];
	memset(buf, 'x', sizeof buf);
	int rc =
	    larder_put(db, "n", "refused", 7, NULL, 0, buf, sizeof buf, NULL);
	ASSERT_RC(db, rc, LARDER_EFULL);
	ASSERT(strstr(larder_errmsg(db), "stop watermark of 20%"));
	ASSERT(strstr(larder_errmsg(db), "nothing was stored"));
	ASSERT_EQ(larder_counter(db, LARDER_CTR_PUBLISH_REFUSED), 1);
	ASSERT(!present(db, "n", "refused", NULL));
	larder_entry *e;
	int outcome = 0;
	rc = larder_get_or_fill(&e, &outcome, db, "n", "filled", 6, "v", 1,
				NULL, fill_loader, NULL, NULL);
	ASSERT(e != NULL);
	ASSERT_EQ(outcome, LARDER_FILLED_UNCACHED);
	ASSERT_EQ(larder_entry_size(e), 5000);
	ASSERT(test_check_pattern(larder_entry_data(e), 5000, 99));
	ASSERT_EQ(rc, 0);
	larder_entry_release(e);
	larder_close(db);
}
