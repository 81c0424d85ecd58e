/*
 * test_fulldisk.c — a store on a really full disk: a small tmpfs mounted
 * for the test (root only). Puts go until one fails; it must fail with
 * LARDER_EFULL (the CLI: exit 4), everything published before reads back
 * exactly, no temp file is left, and after removing entries a put works.
 * Between the cull and stop watermarks, a publish is stored and stays (its
 * own cleaning never removes it), from the library and the CLI.
 *
 * Each test mounts its tmpfs inside a child that first moves to a private
 * mount namespace, so the mount dies with the child however the test ends
 * (failed assertion, crash, timeout). Where a private namespace is not
 * allowed, the parent unmounts after the child instead.
 *
 * Without the right to mount, every test skips with the reason (and CTest
 * reports the program as skipped).
 */
#include "harness.h"
#include "larder.h"
#include "store_util.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#define NS "default"
#define VER "v1"
#define MAX_PUTS 4000
#define EXIT_NOMOUNT 77

/* ---------------------------------------------------------------------- */
/* A small disk                                                            */

/* Mount a tmpfs with `opts` on dir, in a private mount namespace when we
 * may have one. 0, or -1 with errno. */
static int mount_small(const char *dir, const char *opts, int *own_ns)
{
	*own_ns = unshare(CLONE_NEWNS) == 0 &&
		  mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) == 0;
	return mount("tmpfs", dir, "tmpfs", MS_NOSUID | MS_NODEV, opts);
}

/* Can this process mount a tmpfs at all? Tried in a child, so that the
 * probe leaves nothing behind. */
__attribute__((constructor)) static void probe_mount(void)
{
	char dir[] = "/tmp/larder-fulldisk-probe-XXXXXX";
	if (!mkdtemp(dir)) {
		test_skip_all("mkdtemp for the mount probe: %s",
			      strerror(errno));
		return;
	}
	int p[2];
	if (pipe(p) != 0) {
		test_skip_all("pipe for the mount probe: %s", strerror(errno));
		rmdir(dir);
		return;
	}
	pid_t pid = fork();
	if (pid == 0) {
		int own = 0, e = 0;
		if (mount_small(dir, "size=64k", &own) != 0)
			e = errno;
		else if (!own)
			umount2(dir, MNT_DETACH);
		if (write(p[1], &e, sizeof e) != (ssize_t)sizeof e)
			_exit(1);
		_exit(0);
	}
	close(p[1]);
	int e = -1;
	if (pid < 0 || read(p[0], &e, sizeof e) != (ssize_t)sizeof e)
		e = -1;
	close(p[0]);
	if (pid > 0)
		waitpid(pid, NULL, 0);
	rmdir(dir);
	if (e != 0) {
		test_skip_all(
		    "cannot mount a tmpfs to fill (%s); the full-disk "
		    "tests need root (CAP_SYS_ADMIN)",
		    e < 0 ? "probe failed" : strerror(e));
	}
}

/* Run body(mnt) in a child on a fresh tmpfs mounted with opts; fail the
 * test if the body failed. */
static void with_small_disk(const char *opts, void (*body)(const char *mnt))
{
	char mnt[4096];
	snprintf(mnt, sizeof mnt, "%s", test_path("mnt"));
	if (mkdir(mnt, 0755) != 0)
		test_fail(__FILE__, __LINE__, "mkdir %s: %s", mnt,
			  strerror(errno));
	fflush(NULL);
	pid_t pid = fork();
	ASSERT(pid >= 0);
	if (pid == 0) {
		int own = 0;
		if (mount_small(mnt, opts, &own) != 0) {
			fprintf(stderr, "    mount tmpfs %s on %s: %s\n", opts,
				mnt, strerror(errno));
			_exit(EXIT_NOMOUNT);
		}
		body(mnt);
		fflush(NULL);
		_exit(0);
	}
	int st = 0;
	while (waitpid(pid, &st, 0) < 0)
		ASSERT(errno == EINTR);
	/* Only needed when the child shared our namespace; harmless else. */
	umount2(mnt, MNT_DETACH);
	if (WIFSIGNALED(st))
		test_fail(__FILE__, __LINE__, "body killed by signal %d",
			  WTERMSIG(st));
	ASSERT_EQ(WEXITSTATUS(st), 0);
}

/* ---------------------------------------------------------------------- */
/* Helpers                                                                 */

static int tmp_cb(const char *path, const struct stat *st, int type,
		  struct FTW *ftw)
{
	(void)st;
	(void)type;
	if (strstr(path + ftw->base, ".tmp.")) {
		fprintf(stderr, "    temp file left: %s\n", path);
		return 1;
	}
	return 0;
}

static int temps_left(const char *dir)
{
	return nftw(dir, tmp_cb, 16, FTW_PHYS);
}

static void key_of(char *buf, size_t len, int i)
{
	snprintf(buf, len, "key-%04d", i);
}

static int put_n(larder *db, int i, size_t size)
{
	char key[32];
	key_of(key, sizeof key, i);
	unsigned char *buf = xmalloc(size);
	test_fill_pattern(buf, size, (uint64_t)i);
	int rc = larder_put(db, NS, key, strlen(key), VER, strlen(VER), buf,
			    size, NULL);
	free(buf);
	return rc;
}

/* A streamed put of `size` bytes in 32 KiB pieces; the failure may come
 * from a write or from the commit. */
static int stream_n(larder *db, int i, size_t size)
{
	char key[32];
	key_of(key, sizeof key, i);
	unsigned char *buf = malloc(size);
	ASSERT(buf != NULL);
	test_fill_pattern(buf, size, (uint64_t)i);
	larder_writer *w = NULL;
	int rc = larder_writer_begin(&w, db, NS, key, strlen(key), VER,
				     strlen(VER), NULL);
	for (size_t off = 0; rc == 0 && off < size;) {
		size_t n = size - off < 32768 ? size - off : 32768;
		rc = larder_writer_write(w, buf + off, n);
		off += n;
	}
	if (rc == 0)
		rc = larder_writer_commit(w);
	else
		larder_writer_abort(w);
	free(buf);
	return rc;
}

static void check_entry(larder *db, int i, size_t size)
{
	char key[32];
	key_of(key, sizeof key, i);
	larder_entry *e = NULL;
	int rc = larder_get(&e, db, NS, key, strlen(key), VER, strlen(VER));
	if (rc != 0)
		test_fail(__FILE__, __LINE__,
			  "published entry %d unreadable: %s: %s", i,
			  larder_strerror(rc), larder_errmsg(db));
	ASSERT_EQ(larder_entry_size(e), size);
	if (!test_check_pattern(larder_entry_data(e), size, (uint64_t)i))
		test_fail(__FILE__, __LINE__, "entry %d has wrong bytes", i);
	larder_entry_release(e);
}

static int walk_cb(const larder_entry_info *info, void *payload)
{
	int *n = payload;
	if (info->state != LARDER_STATE_OK)
		test_fail(__FILE__, __LINE__, "entry %s state %d: %s",
			  info->path, info->state,
			  info->problem ? info->problem : "");
	n[0]++;
	return 0;
}

static larder *create_store(const char *mnt, char *store, size_t len)
{
	snprintf(store, len, "%s/store", mnt);
	larder_opts o = LARDER_OPTS_INIT;
	o.flags = LARDER_OPEN_CREATE;
	larder *db = open_store_at(store, &o);
	/* The disk really fills here: no watermark refuses first. */
	larder_limits l = LARDER_LIMITS_INIT;
	ASSERT_RC(db, larder_limits_get(&l, db, NULL), 0);
	l.wm_run = l.wm_cull = l.wm_stop = 0;
	ASSERT_RC(db, larder_limits_set(db, NULL, &l), 0);
	return db;
}

/* ---------------------------------------------------------------------- */
/* Library                                                                 */

static size_t sizes[MAX_PUTS];

static void fill_until_full(const char *mnt)
{
	char store[4200];
	larder *db = create_store(mnt, store, sizeof store);

	/* Big entries until the disk refuses one, then small ones until it
	 * refuses those too: the last bytes and the last inodes go as well. */
	int n = 0, rc = 0;
	const size_t steps[] = {64 * 1024, 4096, 100};
	for (size_t s = 0; s < sizeof steps / sizeof steps[0]; s++) {
		while (n < MAX_PUTS) {
			rc = put_n(db, n, steps[s]);
			if (rc != 0)
				break;
			sizes[n++] = steps[s];
		}
		if (rc != LARDER_EFULL)
			test_fail(__FILE__, __LINE__,
				  "put %d of %zu bytes on a full disk: %d "
				  "(%s), want LARDER_EFULL: %s",
				  n, steps[s], rc, larder_strerror(rc),
				  larder_errmsg(db));
		ASSERT(larder_errno(db) == ENOSPC ||
		       larder_errno(db) == EDQUOT);
		ASSERT(n > 0);
	}
	printf("     disk full after %d puts\n", n);
	/* A streamed put fails the same way, mid-stream or at commit. */
	rc = stream_n(db, n, 300 * 1024);
	ASSERT_RC(db, rc, LARDER_EFULL);
	ASSERT_EQ(temps_left(store), 0);

	/* Reading never needs space. */
	for (int i = 0; i < n; i++)
		check_entry(db, i, sizes[i]);
	larder_close(db);

	/* A fresh handle sees the same, and nothing corrupt. */
	larder_opts o = LARDER_OPTS_INIT;
	ASSERT_RC(NULL, larder_open(&db, store, &o), 0);
	for (int i = 0; i < n; i++)
		check_entry(db, i, sizes[i]);
	int count = 0;
	ASSERT_RC(
	    db, larder_walk(db, NULL, LARDER_WALK_VERIFY, walk_cb, &count), 0);
	ASSERT_EQ(count, n);

	/* Make room: the first few big entries go, and a put fits again. */
	for (int i = 0; i < 4; i++) {
		char key[32];
		key_of(key, sizeof key, i);
		ASSERT_RC(
		    db,
		    larder_remove(db, NS, key, strlen(key), VER, strlen(VER)),
		    0);
		larder_entry *e = NULL;
		ASSERT_RC(
		    db,
		    larder_get(&e, db, NS, key, strlen(key), VER, strlen(VER)),
		    LARDER_ENOTFOUND);
	}
	ASSERT_RC(db, put_n(db, n, 64 * 1024), 0);
	check_entry(db, n, 64 * 1024);
	for (int i = 4; i < n; i++)
		check_entry(db, i, sizes[i]);
	ASSERT_EQ(temps_left(store), 0);
	larder_close(db);
}

TEST(fulldisk_put_fails_efull_then_recovers_after_remove)
{
	with_small_disk("size=2m,mode=0755", fill_until_full);
}

/* Out of inodes rather than bytes: the failure comes from creating a file
 * or directory, not from writing one. */
static void fill_inodes(const char *mnt)
{
	char store[4200];
	larder *db = create_store(mnt, store, sizeof store);
	int n = 0, rc = 0;
	while (n < MAX_PUTS) {
		rc = put_n(db, n, 10);
		if (rc != 0)
			break;
		n++;
	}
	if (rc != LARDER_EFULL)
		test_fail(__FILE__, __LINE__,
			  "put %d with no inodes left: %d (%s), want "
			  "LARDER_EFULL: %s",
			  n, rc, larder_strerror(rc), larder_errmsg(db));
	ASSERT(n > 0);
	printf("     out of inodes after %d puts\n", n);
	ASSERT_EQ(temps_left(store), 0);
	for (int i = 0; i < n; i++)
		check_entry(db, i, 10);
	/* Removing frees inodes; a fresh key might need new fan-out
	 * directories, so put the removed keys back into their own. */
	for (int i = 0; i < 4 && i < n; i++) {
		char key[32];
		key_of(key, sizeof key, i);
		ASSERT_RC(
		    db,
		    larder_remove(db, NS, key, strlen(key), VER, strlen(VER)),
		    0);
	}
	ASSERT_RC(db, put_n(db, 0, 10), 0);
	check_entry(db, 0, 10);
	ASSERT_EQ(temps_left(store), 0);
	larder_close(db);
}

TEST(fulldisk_out_of_inodes_put_fails_efull)
{
	with_small_disk("size=4m,nr_inodes=48,mode=0755", fill_inodes);
}

/* ---------------------------------------------------------------------- */
/* Between the cull and stop watermarks                                    */

/* Fill the disk with a file that is not the store's until `keep` bytes
 * are free. */
static void ballast_keep(const char *mnt, off_t keep)
{
	struct statvfs v;
	ASSERT_EQ(statvfs(mnt, &v), 0);
	off_t len = (off_t)(v.f_bavail * v.f_frsize) - keep;
	ASSERT(len > 0);
	char path[4200];
	snprintf(path, sizeof path, "%s/ballast", mnt);
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0644);
	ASSERT(fd >= 0);
	ASSERT_EQ(posix_fallocate(fd, 0, len), 0);
	ASSERT_EQ(close(fd), 0);
}

/* Fill the small disk with a file that is not the store's until `free_pct`
 * of it is free. */
static void ballast_to(const char *mnt, double free_pct)
{
	struct statvfs v;
	ASSERT_EQ(statvfs(mnt, &v), 0);
	ballast_keep(
	    mnt, (off_t)((double)(v.f_blocks * v.f_frsize) * free_pct / 100));
}

static double free_pct(const char *mnt)
{
	struct statvfs v;
	ASSERT_EQ(statvfs(mnt, &v), 0);
	return 100.0 * (double)v.f_bavail / (double)v.f_blocks;
}

static int band_loader(larder_fill *f, void *payload)
{
	(void)payload;
	unsigned char buf[3000];
	test_fill_pattern(buf, sizeof buf, 77);
	return larder_fill_write(f, buf, sizeof buf);
}

/* A 2 MiB disk 81% full of other files, watermarks 30,20,10: free space
 * is between stop and cull, so a publish is stored and then cleans until
 * 30% is free, which it never can. It empties the store of everything
 * else, but what it published stays: a put is found by the next get, and
 * a fill hands out the entry it published (LARDER_FILLED, not
 * uncached). */
static void band_publish(const char *mnt)
{
	char store[4200];
	larder *db = create_store(mnt, store, sizeof store);
	larder_limits l = LARDER_LIMITS_INIT;
	ASSERT_RC(db, larder_limits_get(&l, db, NULL), 0);
	l.wm_run = 30;
	l.wm_cull = 20;
	l.wm_stop = 10;
	ASSERT_RC(db, larder_limits_set(db, NULL, &l), 0);
	for (int i = 1; i <= 3; i++)
		ASSERT_RC(db, put_n(db, i, 3000), 0);
	larder_close(db);
	ballast_to(mnt, 19.0);
	double pct = free_pct(mnt);
	ASSERT(pct < 20.0 && pct > 10.0);

	/* A new handle, as a new command: it sees the space at once. */
	larder_opts o = LARDER_OPTS_INIT;
	ASSERT_RC(NULL, larder_open(&db, store, &o), 0);
	ASSERT_RC(db, put_n(db, 4, 3000), 0);
	ASSERT_EQ(larder_counter(db, LARDER_CTR_GC_RUNS), 1);
	ASSERT_EQ(larder_counter(db, LARDER_CTR_EVICTIONS), 3);
	check_entry(db, 4, 3000);
	larder_close(db);

	ASSERT_RC(NULL, larder_open(&db, store, &o), 0);
	larder_entry *e = NULL;
	int outcome = 0;
	ASSERT_RC(db,
		  larder_get_or_fill(&e, &outcome, db, NS, "filled", 6, VER,
				     strlen(VER), NULL, band_loader, NULL,
				     NULL),
		  0);
	ASSERT_EQ(outcome, LARDER_FILLED);
	ASSERT_EQ(larder_entry_size(e), 3000);
	ASSERT(test_check_pattern(larder_entry_data(e), 3000, 77));
	larder_entry_release(e);
	ASSERT_EQ(larder_counter(db, LARDER_CTR_GC_RUNS), 1);
	ASSERT_RC(db, larder_get(&e, db, NS, "filled", 6, VER, strlen(VER)), 0);
	larder_entry_release(e);
	larder_close(db);
	ASSERT_EQ(temps_left(store), 0);
}

TEST(band_between_cull_and_stop_a_publish_never_evicts_itself)
{
	with_small_disk("size=2m,mode=0755", band_publish);
}

/* ---------------------------------------------------------------------- */
/* A fill the store cannot keep                                            */

/* A loader of `size` pattern bytes in 32 KiB writes. With gate fds, it
 * first lets a waiter go (`go`) and holds the load until the waiter says
 * it waits (`waiting`): the waiter then surely waits for this fill. */
struct load {
	size_t size;
	uint64_t seed;
	int go, waiting; /* -1: no gate */
};

static int pattern_loader(larder_fill *f, void *payload)
{
	const struct load *l = payload;
	if (l->go >= 0) {
		char c = 'g';
		ASSERT_EQ(write(l->go, &c, 1), 1);
		/* EOF instead of 'w': the waiter ended without waiting. */
		ASSERT_EQ(read(l->waiting, &c, 1), 1);
		ASSERT_EQ(c, 'w');
	}
	unsigned char *buf = xmalloc(l->size ? l->size : 1);
	test_fill_pattern(buf, l->size, l->seed);
	int rc = 0;
	for (size_t off = 0; rc == 0 && off < l->size; off += 32768) {
		size_t n = l->size - off < 32768 ? l->size - off : 32768;
		rc = larder_fill_write(f, buf + off, n);
	}
	free(buf);
	return rc;
}

/* Fill `key` with `size` bytes where the store cannot keep them: the
 * call succeeds, uncached, with every loaded byte; the cause is named and
 * counted; nothing is stored and no temp file stays. */
static void expect_uncached_fill(larder *db, const char *store, const char *key,
				 size_t size, uint64_t seed, unsigned put_flags,
				 const char *cause)
{
	larder_put_opts po = LARDER_PUT_OPTS_INIT;
	po.flags = put_flags;
	larder_fill_opts fo = LARDER_FILL_OPTS_INIT;
	fo.put = &po;
	struct load l = {size, seed, -1, -1};
	uint64_t uncached = larder_counter(db, LARDER_CTR_UNCACHED);
	larder_entry *e = NULL;
	int how = 0;
	int rc = larder_get_or_fill(&e, &how, db, NS, key, strlen(key), VER,
				    strlen(VER), NULL, pattern_loader, &l, &fo);
	if (rc != 0)
		test_fail(__FILE__, __LINE__,
			  "fill of %zu bytes (flags %#x) the store cannot "
			  "keep: %d (%s): %s",
			  size, put_flags, rc, larder_strerror(rc),
			  larder_errmsg(db));
	ASSERT_EQ(how, LARDER_FILLED_UNCACHED);
	ASSERT_EQ(larder_entry_size(e), size);
	if (!test_check_pattern(larder_entry_data(e), size, seed))
		test_fail(__FILE__, __LINE__,
			  "fill of %zu bytes: wrong bytes handed over", size);
	larder_entry_release(e);
	ASSERT_EQ(larder_counter(db, LARDER_CTR_UNCACHED), uncached + 1);
	if (!strstr(larder_errmsg(db), cause))
		test_fail(__FILE__, __LINE__,
			  "larder_errmsg does not say '%s': %s", cause,
			  larder_errmsg(db));
	ASSERT_RC(db,
		  larder_get(&e, db, NS, key, strlen(key), VER, strlen(VER)),
		  LARDER_ENOTFOUND);
	ASSERT_EQ(temps_left(store), 0);
}

/* ENOSPC mid-write: 4 MiB on a 2 MiB disk, spilled to the temp file
 * (past the mmap threshold) when the disk fills. ENOSPC at commit: a load
 * small enough to stay in memory until the commit, which finds only part
 * of it room. Both with and without zstd (the pattern does not
 * compress). */
static void fill_full_disk(const char *mnt)
{
	char store[4200];
	larder *db = create_store(mnt, store, sizeof store);
	const char *nospc = strerror(ENOSPC);
	expect_uncached_fill(db, store, "big", 4 << 20, 1, 0, nospc);
	expect_uncached_fill(db, store, "big-z", 4 << 20, 2, LARDER_PUT_ZSTD,
			     nospc);
	/* A put still fits: the failed fills left nothing behind. */
	ASSERT_RC(db, put_n(db, 1, 64 * 1024), 0);
	check_entry(db, 1, 64 * 1024);

	ballast_keep(mnt, 16 * 1024);
	expect_uncached_fill(db, store, "small", 48 * 1024, 3, 0, nospc);
	expect_uncached_fill(db, store, "small-z", 48 * 1024, 4,
			     LARDER_PUT_ZSTD, nospc);
	expect_uncached_fill(db, store, "big-full", 1 << 20, 5, 0, nospc);
	check_entry(db, 1, 64 * 1024);
	larder_close(db);
}

TEST(fulldisk_fill_hands_every_loaded_byte_over_uncached)
{
	with_small_disk("size=2m,mode=0755", fill_full_disk);
}

/* What the waiter was told: START writes 'w' to fd. */
struct waits {
	int fd, start, end;
};

static void waiter_told(const larder_wait_info *info, void *payload)
{
	struct waits *w = payload;
	if (info->event == LARDER_WAIT_START) {
		w->start++;
		char c = 'w';
		if (write(w->fd, &c, 1) != 1)
			_exit(4);
	} else if (info->event == LARDER_WAIT_END) {
		w->end = info->end;
	}
}

/* The waiter's side: it waits for the filler, which keeps nothing; the
 * lease released, it takes over and loads itself, uncached too. Reports
 * through its exit status (0: as documented). */
static int waiter_child(const char *store, int go, int waiting)
{
	char c;
	if (read(go, &c, 1) != 1)
		return 2;
	larder_opts o = LARDER_OPTS_INIT;
	larder *db = NULL;
	if (larder_open(&db, store, &o) != 0)
		return 3;
	struct waits w = {waiting, 0, 0};
	larder_fill_opts fo = LARDER_FILL_OPTS_INIT;
	fo.on_wait_payload = &w;
	fo.on_wait = waiter_told;
	struct load l = {3 << 20, 8, -1, -1};
	larder_entry *e = NULL;
	int how = 0;
	int rc = larder_get_or_fill(&e, &how, db, NS, "herd", 4, VER,
				    strlen(VER), NULL, pattern_loader, &l, &fo);
	int bad = rc != 0 || how != LARDER_FILLED_UNCACHED || w.start != 1 ||
		  w.end != LARDER_WAIT_TAKEN_OVER ||
		  larder_entry_size(e) != l.size ||
		  !test_check_pattern(larder_entry_data(e), l.size, l.seed);
	if (bad)
		fprintf(stderr,
			"    waiter: rc %d (%s), outcome %d, %d starts, end "
			"%d\n",
			rc, larder_errmsg(db), how, w.start, w.end);
	if (rc == 0)
		larder_entry_release(e);
	larder_close(db);
	return bad ? 1 : 0;
}

/* A filler on a 2 MiB disk loads 4 MiB while another process waits for
 * the same key. */
static void fill_with_waiter(const char *mnt)
{
	char store[4200];
	larder *db = create_store(mnt, store, sizeof store);
	int go[2], waiting[2];
	ASSERT_EQ(pipe(go), 0);
	ASSERT_EQ(pipe(waiting), 0);
	fflush(NULL);
	pid_t pid = fork();
	ASSERT(pid >= 0);
	if (pid == 0) {
		close(go[1]);
		close(waiting[0]);
		_exit(waiter_child(store, go[0], waiting[1]));
	}
	close(go[0]);
	close(waiting[1]);
	struct load l = {4 << 20, 7, go[1], waiting[0]};
	larder_entry *e = NULL;
	int how = 0;
	ASSERT_RC(db,
		  larder_get_or_fill(&e, &how, db, NS, "herd", 4, VER,
				     strlen(VER), NULL, pattern_loader, &l,
				     NULL),
		  0);
	ASSERT_EQ(how, LARDER_FILLED_UNCACHED);
	ASSERT_EQ(larder_entry_size(e), l.size);
	ASSERT(test_check_pattern(larder_entry_data(e), l.size, l.seed));
	larder_entry_release(e);
	close(go[1]);
	close(waiting[0]);
	int st = 0;
	while (waitpid(pid, &st, 0) < 0)
		ASSERT(errno == EINTR);
	ASSERT(WIFEXITED(st));
	ASSERT_EQ(WEXITSTATUS(st), 0);
	ASSERT_EQ(temps_left(store), 0);
	larder_close(db);
}

TEST(fulldisk_fill_waiter_takes_over_and_gets_its_data_uncached)
{
	with_small_disk("size=2m,mode=0755", fill_with_waiter);
}

/* EROFS: the store seen through a read-only bind mount. A fill there
 * loads and hands its bytes over; the store is unchanged. */
static void fill_read_only(const char *mnt)
{
	char store[4200], ro[4200];
	larder *db = create_store(mnt, store, sizeof store);
	ASSERT_RC(db, put_n(db, 1, 3000), 0);
	larder_close(db);
	snprintf(ro, sizeof ro, "%s/ro", mnt);
	ASSERT_EQ(mkdir(ro, 0755), 0);
	ASSERT_EQ(mount(store, ro, NULL, MS_BIND, NULL), 0);
	ASSERT_EQ(mount(NULL, ro, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY, NULL),
		  0);
	larder_opts o = LARDER_OPTS_INIT;
	ASSERT_RC(NULL, larder_open(&db, ro, &o), 0);
	const char *rofs = strerror(EROFS);
	expect_uncached_fill(db, ro, "small", 3000, 11, 0, rofs);
	expect_uncached_fill(db, ro, "big", 1 << 20, 12, 0, rofs);
	expect_uncached_fill(db, ro, "big-z", 1 << 20, 13, LARDER_PUT_ZSTD,
			     rofs);
	check_entry(db, 1, 3000);
	larder_close(db);
	umount2(ro, MNT_DETACH);
}

TEST(readonly_store_fill_hands_the_loaded_bytes_over)
{
	with_small_disk("size=2m,mode=0755", fill_read_only);
}

/* EDQUOT needs a filesystem with quotas, mounted for the test: a tmpfs
 * has them only where the kernel was built with them. */
TEST(quota_fill_hands_the_loaded_bytes_over)
{
	test_skip("EDQUOT is not tested here: it needs a quota-enforcing "
		  "filesystem mounted for the test, and a tmpfs may have no "
		  "quotas (CONFIG_TMPFS_QUOTA); the path is the same as "
		  "ENOSPC's (a failed write moves the load to memory)");
}

/* ---------------------------------------------------------------------- */
/* The CLI: a full disk is exit code 4                                      */

#ifdef LARDER_CLI
static void cli_fill(const char *mnt)
{
	const char *cli = LARDER_CLI;
	char store[4200], payload[4200], out[4200];
	snprintf(store, sizeof store, "%s/store", mnt);
	/* Payload and output files live outside the small disk. */
	snprintf(payload, sizeof payload, "%s", test_path("payload"));
	snprintf(out, sizeof out, "%s", test_path("out"));
	ASSERT_EQ(test_sh("'%s' --dir '%s' init", cli, store), 0);
	/* The disk really fills here: no watermark refuses first. */
	ASSERT_EQ(
	    test_sh("'%s' --dir '%s' config --watermarks 0,0,0", cli, store),
	    0);

	const size_t size = 96 * 1024;
	unsigned char *buf = malloc(size);
	ASSERT(buf != NULL);
	int n = 0, code = 0;
	for (; n < 200; n++) {
		test_fill_pattern(buf, size, (uint64_t)n);
		FILE *f = fopen(payload, "w");
		ASSERT(f != NULL);
		ASSERT_EQ(fwrite(buf, 1, size, f), size);
		ASSERT_EQ(fclose(f), 0);
		code = test_sh("'%s' --dir '%s' put key-%04d '%s' --version %s "
			       "2>/dev/null",
			       cli, store, n, payload, VER);
		if (code != 0)
			break;
	}
	ASSERT(n > 0);
	printf("     larder put exited %d after %d puts\n", code, n);
	ASSERT_EQ(code, 4); /* "I/O error (read or write failure, disk full)" */
	ASSERT_EQ(temps_left(store), 0);
	for (int i = 0; i < n; i++) {
		ASSERT_EQ(test_sh("'%s' --dir '%s' get key-%04d --version %s "
				  "-o '%s'",
				  cli, store, i, VER, out),
			  0);
		FILE *f = fopen(out, "r");
		ASSERT(f != NULL);
		ASSERT_EQ(fread(buf, 1, size, f), size);
		ASSERT_EQ(fgetc(f), EOF);
		fclose(f);
		if (!test_check_pattern(buf, size, (uint64_t)i))
			test_fail(__FILE__, __LINE__,
				  "larder get key-%04d: wrong bytes", i);
	}
	ASSERT_EQ(test_sh("'%s' --dir '%s' rm key-0000 --version %s", cli,
			  store, VER),
		  0);
	ASSERT_EQ(test_sh("'%s' --dir '%s' rm key-0001 --version %s", cli,
			  store, VER),
		  0);
	test_fill_pattern(buf, size, (uint64_t)n);
	FILE *f = fopen(payload, "w");
	ASSERT(f != NULL);
	ASSERT_EQ(fwrite(buf, 1, size, f), size);
	ASSERT_EQ(fclose(f), 0);
	ASSERT_EQ(test_sh("'%s' --dir '%s' put key-%04d '%s' --version %s", cli,
			  store, n, payload, VER),
		  0);
	ASSERT_EQ(temps_left(store), 0);
	free(buf);
}

/* The same band from the command line: `put` says stored, and it is;
 * `run` caches its result (no "not cached" warning) and the next run is a
 * hit that does not run the command. */
static void cli_band(const char *mnt)
{
	const char *cli = LARDER_CLI;
	char store[4200], payload[4200], err[4200], count[4200];
	snprintf(store, sizeof store, "%s/store", mnt);
	snprintf(payload, sizeof payload, "%s", test_path("payload"));
	snprintf(err, sizeof err, "%s", test_path("err"));
	snprintf(count, sizeof count, "%s", test_path("runs"));
	ASSERT_EQ(test_sh("'%s' --dir '%s' init && '%s' --dir '%s' config "
			  "--watermarks 30,20,10",
			  cli, store, cli, store),
		  0);
	unsigned char buf[3000];
	test_fill_pattern(buf, sizeof buf, 5);
	FILE *f = fopen(payload, "w");
	ASSERT(f != NULL);
	ASSERT_EQ(fwrite(buf, 1, sizeof buf, f), sizeof buf);
	ASSERT_EQ(fclose(f), 0);
	for (int i = 1; i <= 3; i++)
		ASSERT_EQ(test_sh("'%s' --dir '%s' put x%d '%s'", cli, store, i,
				  payload),
			  0);
	ballast_to(mnt, 19.0);
	ASSERT_EQ(test_sh("'%s' -v --dir '%s' put x4 '%s' 2>'%s'", cli, store,
			  payload, err),
		  0);
	ASSERT_EQ(test_sh("grep -q \"stored 'x4'\" '%s'", err), 0);
	ASSERT_EQ(test_sh("'%s' --dir '%s' get x4 | cmp -s - '%s'", cli, store,
			  payload),
		  0);
	/* run: one run of the command, cached, then a hit */
	for (int i = 0; i < 2; i++) {
		ASSERT_EQ(test_sh("'%s' --dir '%s' run --key band -- sh -c "
				  "'echo run >>\"%s\"; echo out' >/dev/null "
				  "2>'%s'",
				  cli, store, count, err),
			  0);
		ASSERT_EQ(test_sh("grep -q 'not cached' '%s'", err), 1);
	}
	ASSERT_EQ(test_count_lines(count), 1);
}

TEST(band_cli_put_is_stored_and_run_is_cached)
{
	if (access(LARDER_CLI, X_OK) != 0)
		test_fail(__FILE__, __LINE__, "the CLI %s is not built: %s",
			  LARDER_CLI, strerror(errno));
	with_small_disk("size=2m,mode=0755", cli_band);
}

TEST(fulldisk_cli_put_exits_4_then_recovers_after_rm)
{
	if (access(LARDER_CLI, X_OK) != 0)
		test_fail(__FILE__, __LINE__, "the CLI %s is not built: %s",
			  LARDER_CLI, strerror(errno));
	with_small_disk("size=2m,mode=0755", cli_fill);
}
#endif
