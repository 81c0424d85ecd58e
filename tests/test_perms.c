/*
 * test_perms.c — what docs/security.md promises about a store's files:
 * the modes larder makes them with, whatever the umask; the marker that
 * only the owner may write; and nothing inside the store reached through
 * a symbolic link, for any operation (fsutil's resolution, then each
 * operation of the API).
 *
 * The tests run as whoever runs them (root in CI); they plant symlinks
 * and files the way a careless or hostile user of a shared store would,
 * and check that what lies outside the store is untouched.
 */
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testing.h"
#include "harness.h"
#include "larder.h"
#include "store_util.h"

static unsigned mode_of(const char *path)
{
	struct stat st;
	if (lstat(path, &st) != 0)
		test_fail(__FILE__, __LINE__, "lstat %s: %s", path,
			  strerror(errno));
	return st.st_mode & 07777;
}

#define ASSERT_MODE(path, want)                                                \
	do {                                                                   \
		const char *p_ = (path);                                       \
		unsigned m_ = mode_of(p_), w_ = (want);                        \
		if (m_ != w_)                                                  \
			test_fail(__FILE__, __LINE__,                          \
				  "%s: mode %04o, want %04o", p_, m_, w_);     \
	} while (0)

/* The one path matching a glob pattern. */
static const char *one_match(const char *pattern)
{
	static char buf[4][4096];
	static int slot;
	glob_t g;
	if (glob(pattern, 0, NULL, &g) != 0 || g.gl_pathc != 1)
		test_fail(__FILE__, __LINE__, "no single match for %s",
			  pattern);
	char *p = buf[slot++ % 4];
	snprintf(p, sizeof buf[0], "%s", g.gl_pathv[0]);
	globfree(&g);
	return p;
}

static larder *create(const char *dir, unsigned mode)
{
	larder_opts o = LARDER_OPTS_INIT;
	o.flags = LARDER_OPEN_CREATE;
	o.create_mode = mode;
	o.create_fsync = LARDER_FSYNC_NONE;
	return open_store_at(dir, &o);
}

static larder *reopen(const char *dir, unsigned flags)
{
	larder_opts o = LARDER_OPTS_INIT;
	o.flags = flags;
	return open_store_at(dir, &o);
}

static void put(larder *db, const char *ns, const char *key)
{
	ASSERT_RC(db,
		  larder_put(db, ns, key, strlen(key), "v", 1, "data", 4, NULL),
		  0);
}

/* A put of k4 (new: its fan-out directories may be made) and of k1 again
 * (an existing name), whatever they return. */
static void put_flags_any(larder *db)
{
	larder_put(db, "n", "k4", 2, "v", 1, "data", 4, NULL);
	larder_put(db, "n", "k1", 2, "w", 1, "data", 4, NULL);
	larder_put(db, "n", "k1", 2, "v", 1, "data", 4, NULL);
}

/* ---------------------------------------------------------------------- */
/* Modes                                                                   */

TEST(default_mode_is_the_widest_the_umask_allows)
{
	static const unsigned cases[][2] = {
	    {022, 0644}, {027, 0640}, {077, 0600},  {007, 0660},
	    {002, 0664}, {000, 0664}, {023, 0644},  {037, 0640},
	    {004, 0660}, {020, 0644}, {0277, 0600},
	};
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		ASSERT_EQ(ldr_test_mode_for_umask(cases[i][0]), cases[i][1]);
		const char *dir = test_path("s%zu", i);
		umask(cases[i][0]);
		larder *db = create(dir, 0);
		umask(022);
		if (larder_mode(db) != cases[i][1])
			test_fail(__FILE__, __LINE__,
				  "umask %03o made a %04o store, want %04o",
				  cases[i][0], larder_mode(db), cases[i][1]);
		larder_close(db);
		char want[64];
		snprintf(want, sizeof want, "^mode %04o$", cases[i][1]);
		ASSERT_EQ(test_sh("grep -q '%s' '%s/larder-store'", want, dir),
			  0);
	}
}

TEST(create_mode_must_be_one_of_the_five)
{
	static const unsigned bad[] = {0666, 0777, 0604, 0646, 0700, 0444};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		larder_opts o = LARDER_OPTS_INIT;
		o.flags = LARDER_OPEN_CREATE;
		o.create_mode = bad[i];
		larder *db = (larder *)&o;
		ASSERT_RC(NULL, larder_open(&db, test_path("s"), &o),
			  LARDER_EINVAL);
		ASSERT(db == NULL);
		ASSERT(access(test_path("s"), F_OK) != 0);
	}
}

struct mode_row {
	unsigned mode, top, dir, own, ro;
};

/* docs/security.md, the table of modes. */
static const struct mode_row mode_table[] = {
    {0600, 00700, 00700, 0600, 0400}, {0640, 02750, 02750, 0640, 0440},
    {0644, 00755, 00755, 0644, 0444}, {0660, 03770, 02770, 0640, 0440},
    {0664, 03775, 02775, 0644, 0444},
};

static int note_lease_mode(larder_fill *fill, void *payload)
{
	char pattern[4200];
	snprintf(pattern, sizeof pattern, "%s/ns/n/h/*/*/*.lease",
		 (const char *)payload);
	unsigned *m = (unsigned *)((const char *)payload + 4096);
	*m = mode_of(one_match(pattern));
	return larder_fill_write(fill, "filled", 6);
}

static void check_modes(const struct mode_row *r, unsigned mask)
{
	char dir[4096], p[4200];
	snprintf(dir, sizeof dir, "%s", test_path("s%04o-%03o", r->mode, mask));
	umask(mask);
	larder *db = create(dir, 0 + r->mode);
	put(db, "n", "k");
	ASSERT_RC(db, larder_ns_set_ttl(db, "n", 3600), 0);
	larder_limits l = LARDER_LIMITS_INIT;
	l.max_entries = 1000;
	ASSERT_RC(db, larder_limits_set(db, NULL, &l), 0);
	/* The lease, seen from inside the loader. */
	char payload[4096 + sizeof(unsigned)];
	snprintf(payload, 4096, "%s", dir);
	larder_entry *e = NULL;
	ASSERT_RC(db,
		  larder_get_or_fill(&e, NULL, db, "n", "f", 1, "v", 1, NULL,
				     note_lease_mode, payload, NULL),
		  0);
	larder_entry_release(e);
	larder_close(db); /* flushes the counters */
	umask(022);

	ASSERT_MODE(dir, r->top);
	snprintf(p, sizeof p, "%s/ns", dir);
	ASSERT_MODE(p, r->dir);
	snprintf(p, sizeof p, "%s/quarantine", dir);
	ASSERT_MODE(p, r->dir);
	snprintf(p, sizeof p, "%s/stats", dir);
	ASSERT_MODE(p, r->dir);
	glob_t g;
	snprintf(p, sizeof p, "%s/ns/n/[eh]", dir);
	ASSERT_EQ(glob(p, GLOB_ONLYDIR, NULL, &g), 0);
	ASSERT_EQ(g.gl_pathc, 2);
	globfree(&g);
	snprintf(p, sizeof p, "%s/ns/n/[eh]/*/*", dir);
	ASSERT_EQ(glob(p, 0, NULL, &g), 0);
	ASSERT(g.gl_pathc >= 2);
	for (size_t i = 0; i < g.gl_pathc; i++)
		ASSERT_MODE(g.gl_pathv[i], r->dir);
	globfree(&g);
	snprintf(p, sizeof p, "%s/ns/n", dir);
	ASSERT_MODE(p, r->dir);
	snprintf(p, sizeof p, "%s/larder-store", dir);
	ASSERT_MODE(p, r->own);
	snprintf(p, sizeof p, "%s/config", dir);
	ASSERT_MODE(p, r->own);
	snprintf(p, sizeof p, "%s/ns/n/config", dir);
	ASSERT_MODE(p, r->own);
	unsigned lease;
	memcpy(&lease, payload + 4096, sizeof lease);
	ASSERT_EQ(lease, r->own);
	snprintf(p, sizeof p, "%s/ns/n/[eh]/*/*/*", dir);
	ASSERT_EQ(glob(p, 0, NULL, &g), 0);
	ASSERT_EQ(g.gl_pathc, 4); /* two entries, two heads */
	for (size_t i = 0; i < g.gl_pathc; i++)
		ASSERT_MODE(g.gl_pathv[i], r->ro);
	globfree(&g);
	snprintf(p, sizeof p, "%s/stats/shard-*", dir);
	ASSERT_EQ(glob(p, 0, NULL, &g), 0);
	ASSERT(g.gl_pathc >= 1);
	for (size_t i = 0; i < g.gl_pathc; i++)
		ASSERT_MODE(g.gl_pathv[i], r->mode);
	globfree(&g);
}

TEST(every_mode_gives_each_file_its_bits_whatever_the_umask)
{
	for (size_t i = 0; i < sizeof mode_table / sizeof *mode_table; i++) {
		check_modes(&mode_table[i], 077);
		check_modes(&mode_table[i], 000);
	}
}

/* ---------------------------------------------------------------------- */
/* Resolution beneath a directory                                          */

/* root/ with root/link -> outside/ (a directory outside root holding a
 * file "f"); returns an fd of root. */
static int symlinked_tree(void)
{
	ASSERT_EQ(mkdir(test_path("root"), 0755), 0);
	ASSERT_EQ(mkdir(test_path("outside"), 0755), 0);
	ASSERT_EQ(test_sh("echo precious > '%s'", test_path("outside/f")), 0);
	ASSERT_EQ(symlink(test_path("outside"), test_path("root/link")), 0);
	ASSERT_EQ(mkdir(test_path("root/d"), 0755), 0);
	int fd = open(test_path("root"), O_RDONLY | O_DIRECTORY);
	ASSERT(fd >= 0);
	return fd;
}

static void open_beneath_refuses_symlinks(void)
{
	int root = symlinked_tree();
	errno = 0;
	ASSERT_EQ(ldr_open_beneath(root, "link/f", O_RDONLY, 0), -1);
	ASSERT_EQ(errno, ELOOP);
	ASSERT_EQ(ldr_open_beneath(root, "link", O_RDONLY | O_DIRECTORY, 0),
		  -1);
	ASSERT_EQ(errno, ELOOP);
	ASSERT_EQ(ldr_open_beneath(root, "d/../link/f", O_RDONLY, 0), -1);
	ASSERT_EQ(ldr_open_beneath(root, test_path("outside/f"), O_RDONLY, 0),
		  -1);
	/* ".." out of root, with no symlink on the way: a path that does
	 * not only descend keeps every check. */
	ASSERT_EQ(ldr_open_beneath(root, "../outside/f", O_RDONLY, 0), -1);
	ASSERT_EQ(ldr_open_beneath(root, "d/../../outside/f", O_RDONLY, 0), -1);
	ASSERT_EQ(ldr_open_beneath(root, "d/./../../outside/f", O_RDONLY, 0),
		  -1);
	/* Creating through it is refused the same way. */
	ASSERT_EQ(ldr_open_beneath(root, "link/new", O_WRONLY | O_CREAT, 0644),
		  -1);
	ASSERT_EQ(errno, ELOOP);
	ASSERT(access(test_path("outside/new"), F_OK) != 0);
	/* Plain paths still open. */
	int fd = ldr_open_beneath(root, "d", O_RDONLY | O_DIRECTORY, 0);
	ASSERT(fd >= 0);
	close(fd);
	fd = ldr_open_beneath(root, "d/x", O_WRONLY | O_CREAT | O_EXCL, 0644);
	ASSERT(fd >= 0);
	close(fd);
	fd = ldr_open_beneath(root, ".", O_RDONLY | O_DIRECTORY, 0);
	ASSERT(fd >= 0);
	close(fd);
	close(root);
}

TEST(open_beneath_follows_no_symlink_in_any_component)
{
	open_beneath_refuses_symlinks();
}

TEST(open_beneath_without_openat2_follows_no_symlink_in_any_component)
{
	ldr_test_no_openat2();
	open_beneath_refuses_symlinks();
}

static void mkdirs_refuses_symlinks(void)
{
	int root = symlinked_tree();
	ASSERT_EQ(ldr_mkdirs(root, "link/a/b", 0755), -1);
	ASSERT_EQ(errno, ELOOP);
	ASSERT_EQ(ldr_mkdirs(root, "link/a", 0755), -1);
	ASSERT(access(test_path("outside/a"), F_OK) != 0);
	/* A symlink deeper down, too. */
	ASSERT_EQ(symlink(test_path("outside"), test_path("root/d/l2")), 0);
	ASSERT_EQ(ldr_mkdirs(root, "d/l2/x/y", 0755), -1);
	ASSERT(access(test_path("outside/x"), F_OK) != 0);
	/* A real path is made, and made again without complaint. */
	ASSERT_EQ(ldr_mkdirs(root, "d/p/q/r", 02750), 0);
	ASSERT_EQ(ldr_mkdirs(root, "d/p/q/r", 02750), 0);
	struct stat st;
	ASSERT_EQ(stat(test_path("root/d/p/q/r"), &st), 0);
	ASSERT_EQ(st.st_mode & 07777, 02750);
	close(root);
}

TEST(mkdirs_creates_nothing_through_a_symlink)
{
	mkdirs_refuses_symlinks();
}

TEST(mkdirs_without_openat2_creates_nothing_through_a_symlink)
{
	ldr_test_no_openat2();
	mkdirs_refuses_symlinks();
}

/* ---------------------------------------------------------------------- */
/* The marker                                                              */

#define NOBODY 65534

/* A store of `mode` made by root and given to another user (uid NOBODY),
 * so that root opens it as a user who is not its owner. */
static const char *others_store(unsigned mode)
{
	static char dir[4096];
	snprintf(dir, sizeof dir, "%s", test_path("store"));
	larder_close(create(dir, mode));
	ASSERT_EQ(test_sh("chown -R %d '%s'", NOBODY, dir), 0);
	return dir;
}

static void expect_refused(int line, const char *dir, const char *says)
{
	larder *db = (larder *)&db;
	int rc = larder_open(&db, dir, NULL);
	if (rc != LARDER_EPERM || db != NULL)
		test_fail(__FILE__, line, "open %s: %d (%s), want EPERM: %s",
			  dir, rc, larder_strerror(rc), larder_errmsg(NULL));
	if (!strstr(larder_errmsg(NULL), says))
		test_fail(__FILE__, line, "message '%s' does not say '%s'",
			  larder_errmsg(NULL), says);
	/* The user may insist. */
	larder_close(reopen(dir, LARDER_OPEN_ALLOW_UNSAFE_MODE));
}
#define EXPECT_REFUSED(dir, says) expect_refused(__LINE__, dir, says)

/* Replace the marker's text (same owner and mode). */
static void edit_marker(const char *dir, const char *sed)
{
	ASSERT_EQ(test_sh("sed -i -e '%s' '%s/larder-store'", sed, dir), 0);
}

TEST(marker_writable_by_group_or_others_is_refused)
{
	if (geteuid() != 0)
		test_skip("needs root: chown to another user");
	const char *dir = others_store(0664);
	larder_close(reopen(dir, 0));
	char marker[4200];
	snprintf(marker, sizeof marker, "%s/larder-store", dir);
	ASSERT_EQ(chmod(marker, 0664), 0);
	EXPECT_REFUSED(dir, "chmod go-w");
	ASSERT_EQ(chmod(marker, 0646), 0);
	EXPECT_REFUSED(dir, "writable by every user");
	/* Left as it was: only its owner changes it. */
	ASSERT_MODE(marker, 0646);
	ASSERT_EQ(chmod(marker, 0644), 0);
	larder_close(reopen(dir, 0));
}

TEST(marker_not_owned_by_the_store_owner_is_refused)
{
	if (geteuid() != 0)
		test_skip("needs root: chown to another user");
	const char *dir = others_store(0644);
	char marker[4200];
	snprintf(marker, sizeof marker, "%s/larder-store", dir);
	ASSERT_EQ(chown(marker, 0, 0), 0);
	EXPECT_REFUSED(dir, "belongs to uid 0");
	ASSERT_EQ(chown(marker, NOBODY, 0), 0);
	larder_close(reopen(dir, 0));
}

TEST(marker_asking_for_a_mode_larder_never_makes_is_refused)
{
	static const char *const bad[] = {"0666", "0777", "0606",     "0000",
					  "06x4", "",	  "0644 0666"};
	char dir[4096];
	snprintf(dir, sizeof dir, "%s", test_path("store"));
	larder_close(create(dir, 0664));
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		char sed[64];
		snprintf(sed, sizeof sed, "s/^mode .*/mode %s/", bad[i]);
		edit_marker(dir, sed);
		EXPECT_REFUSED(dir, "mode");
	}
	/* Nothing is made with the wider mode meanwhile: the unsafe opens
	 * above published nothing, and a fair one still works. */
	edit_marker(dir, "s/^mode .*/mode 0660/");
	larder *db = reopen(dir, 0);
	ASSERT_EQ(larder_mode(db), 0660);
	put(db, "n", "k");
	larder_close(db);
	ASSERT_MODE(one_match(test_path("store/ns/n/e/*/*/*")), 0440);
}

TEST(marker_with_a_garbled_format_line_is_refused)
{
	static const char *const bad[] = {
	    "format 1x", "format x", "format",
	    "format -1", "format 0", "format 99999999999999999999"};
	char dir[4096];
	snprintf(dir, sizeof dir, "%s", test_path("store"));
	larder_close(create(dir, 0644));
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		char sed[64];
		snprintf(sed, sizeof sed, "s/^format.*/%s/", bad[i]);
		edit_marker(dir, sed);
		EXPECT_REFUSED(dir, "format");
	}
	edit_marker(dir, "/^format/d");
	EXPECT_REFUSED(dir, "format");
	edit_marker(dir, "s/^larder-store$/larder-store\\nformat 1/");
	larder_close(reopen(dir, 0));
}

TEST(marker_that_is_a_symlink_or_a_fifo_is_refused_without_hanging)
{
	char dir[4096];
	snprintf(dir, sizeof dir, "%s", test_path("store"));
	larder_close(create(dir, 0644));
	char marker[4200];
	snprintf(marker, sizeof marker, "%s/larder-store", dir);
	ASSERT_EQ(rename(marker, test_path("elsewhere")), 0);
	ASSERT_EQ(symlink(test_path("elsewhere"), marker), 0);
	larder *db = NULL;
	ASSERT_RC(NULL, larder_open(&db, dir, NULL), LARDER_EPERM);
	ASSERT(strstr(larder_errmsg(NULL), "symbolic link") != NULL);
	ASSERT_EQ(unlink(marker), 0);
	ASSERT_EQ(mkfifo(marker, 0644), 0);
	alarm(10);
	ASSERT(larder_open(&db, dir, NULL) < 0);
	alarm(0);
	ASSERT(db == NULL);
}

/* A group store made by an earlier larder: marker 0664, no sticky bit.
 * Its owner's next open makes both what they are today. */
TEST(earlier_group_store_is_upgraded_by_its_owner)
{
	char dir[4096];
	snprintf(dir, sizeof dir, "%s", test_path("store"));
	larder_close(create(dir, 0664));
	char marker[4200];
	snprintf(marker, sizeof marker, "%s/larder-store", dir);
	ASSERT_EQ(chmod(marker, 0664), 0);
	ASSERT_EQ(chmod(dir, 02775), 0);
	larder *db = reopen(dir, 0);
	ASSERT_EQ(larder_mode(db), 0664);
	larder_close(db);
	ASSERT_MODE(marker, 0644);
	ASSERT_MODE(dir, 03775);
}

TEST(directories_below_the_top_writable_by_others_or_symlinks_are_refused)
{
	static const char *const subdirs[] = {"ns", "quarantine", "stats"};
	char dir[4096];
	snprintf(dir, sizeof dir, "%s", test_path("store"));
	larder *db = create(dir, 0644);
	put(db, "n", "k");
	larder_close(db);
	for (size_t i = 0; i < sizeof subdirs / sizeof *subdirs; i++) {
		char p[4200];
		snprintf(p, sizeof p, "%s/%s", dir, subdirs[i]);
		ASSERT_EQ(chmod(p, 0757), 0);
		EXPECT_REFUSED(dir, "writable by every user");
		ASSERT_EQ(chmod(p, 0755), 0);
		ASSERT_EQ(rename(p, test_path("moved")), 0);
		ASSERT_EQ(symlink(test_path("moved"), p), 0);
		EXPECT_REFUSED(dir, "symbolic link");
		ASSERT_EQ(unlink(p), 0);
		ASSERT_EQ(rename(test_path("moved"), p), 0);
		larder_close(reopen(dir, 0));
	}
}

/* ---------------------------------------------------------------------- */
/* The store's config                                                      */

static int warnings;

static void count_warnings(int level, const char *msg, void *payload)
{
	(void)payload;
	if (level == LARDER_LOG_WARN && strstr(msg, "ignoring"))
		warnings++;
}

static int64_t cap_seen(const char *dir)
{
	larder_opts o = LARDER_OPTS_INIT;
	o.log = count_warnings;
	larder *db = NULL;
	ASSERT_RC(NULL, larder_open(&db, dir, &o), 0);
	larder_limits l = LARDER_LIMITS_INIT;
	/* Read three times: one warning all the same. */
	int before = warnings;
	for (int i = 0; i < 3; i++)
		ASSERT_RC(db, larder_limits_get(&l, db, NULL), 0);
	ASSERT(warnings - before <= 1);
	larder_close(db);
	return l.max_entries;
}

TEST(store_config_of_another_user_or_writable_by_others_is_ignored)
{
	if (geteuid() != 0)
		test_skip("needs root: chown to another user");
	char dir[4096];
	snprintf(dir, sizeof dir, "%s", test_path("store"));
	larder *db = create(dir, 0664);
	larder_limits l = LARDER_LIMITS_INIT;
	l.max_entries = 5;
	ASSERT_RC(db, larder_limits_set(db, NULL, &l), 0);
	larder_close(db);
	ASSERT_EQ(test_sh("chown -R %d '%s'", NOBODY, dir), 0);
	char config[4200];
	snprintf(config, sizeof config, "%s/config", dir);
	ASSERT_EQ(cap_seen(dir), 5);
	ASSERT_EQ(warnings, 0);
	ASSERT_EQ(chmod(config, 0664), 0);
	ASSERT_EQ(cap_seen(dir), 0);
	ASSERT_EQ(warnings, 1);
	ASSERT_EQ(chmod(config, 0644), 0);
	ASSERT_EQ(chown(config, 0, 0), 0);
	ASSERT_EQ(cap_seen(dir), 0);
	ASSERT_EQ(warnings, 2);
	/* Its owner's open mends one an earlier larder left writable. */
	ASSERT_EQ(test_sh("chown -R 0 '%s'", dir), 0);
	ASSERT_EQ(chmod(config, 0664), 0);
	ASSERT_EQ(cap_seen(dir), 5);
	ASSERT_EQ(warnings, 2);
	ASSERT_MODE(config, 0644);
}

/* ---------------------------------------------------------------------- */
/* Symlinks planted in the store                                           */

/* Where a symlink is planted: a directory of the store, moved outside
 * the store and replaced by a symlink to where it went. */
enum place { P_NS, P_NSDIR, P_E, P_H, P_EFAN1, P_EFAN2, P_HFAN2, P_COUNT };
static const char *const place_name[P_COUNT] = {
    "ns/", "ns/<ns>", "e/", "h/", "e/<fan>", "e/<fan>/<fan>", "h/<fan>/<fan>",
};

enum op { O_GET, O_PUT, O_RM, O_TTL, O_GC, O_VERIFY, O_SWEEP, O_LS, O_COUNT };
static const char *const op_name[O_COUNT] = {
    "get", "put", "rm", "config --ns", "gc", "verify --repair", "sweep", "ls",
};

/* Everything under dir, names, kinds, sizes, modes and contents, as one
 * text in `out`. */
static void snapshot(const char *dir, const char *out)
{
	ASSERT_EQ(test_sh("cd '%s' && { find . -printf '%%p %%y %%s %%m\\n'; "
			  "find . -type f -exec md5sum {} +; } | sort > '%s'",
			  dir, out),
		  0);
}

static int copy_path(const larder_entry_info *info, void *payload)
{
	snprintf(payload, 4096, "%s", info->path);
	return 0;
}

static int count_entries(const larder_entry_info *info, void *payload)
{
	(void)info;
	(*(int *)payload)++;
	return 0;
}

/* The directory of the store at `store` for place p: its path under
 * the store (e: an entry's file, h: a head's file). */
static void place_rel(enum place p, const char *e, const char *h, char *out,
		      size_t size)
{
	char buf[4096];
	const char *file = p == P_HFAN2 ? h : e;
	snprintf(buf, sizeof buf, "%s", file);
	switch (p) {
	case P_NS:
		snprintf(out, size, "ns");
		return;
	case P_NSDIR:
		snprintf(out, size, "ns/n");
		return;
	case P_E:
		snprintf(out, size, "ns/n/e");
		return;
	case P_H:
		snprintf(out, size, "ns/n/h");
		return;
	case P_EFAN1:
		*strrchr(buf, '/') = '\0';
		*strrchr(buf, '/') = '\0';
		break;
	default:
		*strrchr(buf, '/') = '\0';
		break;
	}
	snprintf(out, size, "%s", buf);
}

static void symlinked(enum place p, enum op o)
{
	char store[4096], outside[4096], snap[4096], snap2[4096];
	snprintf(store, sizeof store, "%s", test_path("store"));
	snprintf(outside, sizeof outside, "%s", test_path("outside"));
	snprintf(snap, sizeof snap, "%s", test_path("before"));
	snprintf(snap2, sizeof snap2, "%s", test_path("after"));
	larder *db = create(store, 0664);
	put(db, "n", "k1");
	put(db, "n", "k2");
	put(db, "n", "k3");
	char e[4096], h[4096], rel[4096];
	/* The entry of k1 and its head: store-relative paths. */
	ASSERT_RC(db, larder_inspect(db, "n", "k1", 2, "v", 1, 0, copy_path, e),
		  0);
	memmove(e, e + strlen(store) + 1, strlen(e + strlen(store) + 1) + 1);
	uint8_t hash[16];
	char hex[33];
	ldr_head_hash("n", "k1", 2, hash);
	ldr_hex(hash, 16, hex);
	ldr_file_rel(h, "n", 'h', hex);
	larder_close(db);
	place_rel(p, e, h, rel, sizeof rel);

	/* Move it out, leave a symlink, and give the outside copy things a
	 * walk would act on if it went there: an old temp file for the
	 * sweep, and entries over the cap for the cleaning. */
	ASSERT_EQ(mkdir(outside, 0755), 0);
	ASSERT_EQ(test_sh("mv '%s/%s' '%s/moved' && ln -s '%s/moved' '%s/%s' "
			  "&& find '%s/moved' -type d -exec sh -c 'touch -d "
			  "\"3 days ago\" \"$1/.tmp.h.1.0123456789abcdef\"' "
			  "sh {} \\;",
			  store, rel, outside, outside, store, rel, outside),
		  0);
	snapshot(outside, snap);

	/* A fair user does not even get that far; one who insists must not
	 * be led outside either. */
	larder *plain = (larder *)&plain;
	if (p == P_NS) {
		ASSERT_RC(NULL, larder_open(&plain, store, NULL), LARDER_EPERM);
		ASSERT(strstr(larder_errmsg(NULL), "symbolic link"));
	}
	db = reopen(store, LARDER_OPEN_ALLOW_UNSAFE_MODE);
	larder_limits l = LARDER_LIMITS_INIT;
	l.max_entries = 1;
	int rc = 0, n = 0;
	larder_entry *got = NULL;
	larder_gc_report gr = LARDER_GC_REPORT_INIT;
	larder_sweep_report sr = LARDER_SWEEP_REPORT_INIT;
	switch (o) {
	case O_GET:
		rc = larder_get(&got, db, "n", "k1", 2, "v", 1);
		if (rc == 0 && p != P_H && p != P_HFAN2)
			test_fail(__FILE__, __LINE__,
				  "served an entry through a symlinked %s",
				  place_name[p]);
		larder_entry_release(got);
		break;
	case O_PUT:
		put_flags_any(db);
		break;
	case O_RM:
		rc = larder_remove(db, "n", "k1", 2, "v", 1);
		break;
	case O_TTL:
		rc = larder_ns_set_ttl(db, "n", 60);
		rc = larder_ns_set_ttl(db, "m", 60);
		break;
	case O_GC:
		ASSERT_RC(db, larder_limits_set(db, NULL, &l), 0);
		ASSERT_RC(db, larder_gc(&gr, db, NULL, 0), 0);
		break;
	case O_VERIFY:
		ASSERT_RC(db,
			  larder_walk(db, NULL,
				      LARDER_WALK_VERIFY | LARDER_WALK_REPAIR,
				      count_entries, &n),
			  0);
		break;
	case O_SWEEP:
		ASSERT_RC(db, larder_sweep(&sr, db, NULL, 0), 0);
		break;
	case O_LS:
		ASSERT_RC(db, larder_walk(db, NULL, 0, count_entries, &n), 0);
		break;
	default:
		break;
	}
	(void)rc;
	larder_close(db);
	snapshot(outside, snap2);
	if (test_sh("cmp -s '%s' '%s'", snap, snap2) != 0) {
		test_sh("diff '%s' '%s' >&2", snap, snap2);
		test_fail(__FILE__, __LINE__,
			  "%s through a symlinked %s changed what is outside "
			  "the store",
			  op_name[o], place_name[p]);
	}
	ASSERT_EQ(test_sh("rm -rf '%s' '%s'", store, outside), 0);
}

static void every_op_through_every_symlink(void)
{
	for (int p = 0; p < P_COUNT; p++)
		for (int o = 0; o < O_COUNT; o++)
			symlinked((enum place)p, (enum op)o);
}

TEST(no_operation_reaches_outside_the_store_through_a_symlink)
{
	every_op_through_every_symlink();
}

TEST(no_operation_reaches_outside_the_store_through_a_symlink_without_openat2)
{
	ldr_test_no_openat2();
	every_op_through_every_symlink();
}

/* ---------------------------------------------------------------------- */
/* Directories others may write, and stray files                          */

static char logged[8192];

static void keep_log(int level, const char *msg, void *payload)
{
	(void)payload;
	if (level <= LARDER_LOG_WARN &&
	    strlen(logged) + strlen(msg) + 2 < sizeof logged) {
		strcat(logged, msg);
		strcat(logged, "\n");
	}
}

static larder *open_logged(const char *dir, unsigned flags)
{
	larder_opts o = LARDER_OPTS_INIT;
	o.flags = flags;
	o.log = keep_log;
	larder *db = NULL;
	ASSERT_RC(NULL, larder_open(&db, dir, &o), 0);
	logged[0] = '\0';
	return db;
}

static int entries_in(larder *db)
{
	int n = 0;
	ASSERT_RC(db, larder_walk(db, NULL, 0, count_entries, &n), 0);
	return n;
}

TEST(namespace_directory_writable_by_others_is_refused)
{
	char dir[4096], p[4200];
	snprintf(dir, sizeof dir, "%s", test_path("store"));
	larder *db = create(dir, 0644);
	put(db, "n", "k");
	put(db, "m", "k");
	larder_close(db);
	static const char *const subs[] = {"ns/n", "ns/n/e", "ns/n/h"};
	for (size_t i = 0; i < sizeof subs / sizeof *subs; i++) {
		snprintf(p, sizeof p, "%s/%s", dir, subs[i]);
		ASSERT_EQ(chmod(p, 0757), 0);
		db = open_logged(dir, 0);
		larder_entry *e = NULL;
		ASSERT_RC(db, larder_get(&e, db, "n", "k", 1, "v", 1),
			  LARDER_EPERM);
		ASSERT(strstr(larder_errmsg(db), "writable by every user"));
		ASSERT(strstr(larder_errmsg(db), subs[i]));
		ASSERT_RC(db,
			  larder_put(db, "n", "k2", 2, "v", 1, "x", 1, NULL),
			  LARDER_EPERM);
		/* Other namespaces are fine; a walk skips this one. */
		ASSERT_RC(db, larder_get(&e, db, "m", "k", 1, "v", 1), 0);
		larder_entry_release(e);
		if (i < 2) {
			ASSERT_EQ(entries_in(db), 1);
			ASSERT(strstr(logged, "skipped"));
		}
		larder_close(db);
		db = reopen(dir, LARDER_OPEN_ALLOW_UNSAFE_MODE);
		ASSERT_RC(db, larder_get(&e, db, "n", "k", 1, "v", 1), 0);
		larder_entry_release(e);
		larder_close(db);
		ASSERT_EQ(chmod(p, 0755), 0);
	}
	/* A fan-out directory: the walk reports and skips it. */
	snprintf(p, sizeof p, "%s/ns/n/e/*/*", dir);
	ASSERT_EQ(chmod(one_match(p), 0757), 0);
	db = open_logged(dir, 0);
	ASSERT_EQ(entries_in(db), 1);
	ASSERT(strstr(logged, "writable by every user"));
	larder_close(db);
}

/* The verdict on a namespace's directories is kept by the handle: a hit
 * pays no syscall for it. */
TEST(namespace_directories_are_looked_at_on_first_use_only)
{
	char dir[4096], p[4200];
	snprintf(dir, sizeof dir, "%s", test_path("store"));
	larder *db = create(dir, 0644);
	put(db, "n", "k");
	larder_entry *e = NULL;
	ASSERT_RC(db, larder_get(&e, db, "n", "k", 1, "v", 1), 0);
	larder_entry_release(e);
	snprintf(p, sizeof p, "%s/ns/n", dir);
	ASSERT_EQ(chmod(p, 0757), 0);
	ASSERT_RC(db, larder_get(&e, db, "n", "k", 1, "v", 1), 0);
	larder_entry_release(e);
	larder_close(db);
	db = reopen(dir, 0);
	ASSERT_RC(db, larder_get(&e, db, "n", "k", 1, "v", 1), LARDER_EPERM);
	larder_close(db);
}

/* One stray file must not stop the walks, nor the cleaning that keeps
 * the caps: it is reported and skipped. */
TEST(stray_files_and_symlinks_in_the_tree_are_reported_and_skipped)
{
	char dir[4096], p[4200];
	snprintf(dir, sizeof dir, "%s", test_path("store"));
	larder *db = create(dir, 0644);
	larder_limits l = LARDER_LIMITS_INIT;
	l.max_entries = 3;
	ASSERT_RC(db, larder_limits_set(db, NULL, &l), 0);
	put(db, "n", "k0");
	larder_close(db);
	ASSERT_EQ(test_sh("cd '%s' && echo x > ns/junk && ln -s /etc "
			  "ns/link && echo x > ns/n/e/junk && "
			  "ln -s /etc ns/n/e/ff && d=$(ls -d ns/n/e/[0-9a-f]*"
			  " | head -1) && echo x > $d/zz && ln -s /etc $d/00",
			  dir),
		  0);
	db = open_logged(dir, 0);
	for (int i = 1; i < 8; i++) {
		char key[16];
		snprintf(key, sizeof key, "k%d", i);
		put(db, "n", key);
	}
	/* The cap holds (a cleaning goes a little below it). */
	int left = entries_in(db);
	ASSERT(left >= 1 && left <= 3);
	static const char *const named[] = {"ns/junk", "ns/link", "e/junk",
					    "e/ff",    "/zz",	  "/00"};
	for (size_t i = 0; i < sizeof named / sizeof *named; i++)
		if (!strstr(logged, named[i]))
			test_fail(__FILE__, __LINE__,
				  "'%s' not reported in:\n%s", named[i],
				  logged);
	int n = 0;
	ASSERT_RC(db,
		  larder_walk(db, NULL, LARDER_WALK_VERIFY | LARDER_WALK_REPAIR,
			      count_entries, &n),
		  0);
	larder_gc_report gr = LARDER_GC_REPORT_INIT;
	ASSERT_RC(db, larder_gc(&gr, db, NULL, 0), 0);
	larder_sweep_report sr = LARDER_SWEEP_REPORT_INIT;
	ASSERT_RC(db, larder_sweep(&sr, db, NULL, 0), 0);
	larder_close(db);
	/* Reported, not removed: they are not larder's to remove. */
	snprintf(p, sizeof p, "%s/ns/junk", dir);
	ASSERT(access(p, F_OK) == 0);
}
