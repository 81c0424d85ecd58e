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

#include "fsutil.h"
#include "harness.h"
#include "larder.h"
#include "store.h"

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
	larder *db = NULL;
	int rc = larder_open(&db, dir, &o);
	if (rc != 0)
		test_fail(__FILE__, __LINE__, "larder_open %s: %d (%s): %s",
			  dir, rc, larder_strerror(rc), larder_open_errmsg());
	return db;
}

static larder *reopen(const char *dir, unsigned flags)
{
	larder_opts o = LARDER_OPTS_INIT;
	o.flags = flags;
	larder *db = NULL;
	int rc = larder_open(&db, dir, &o);
	if (rc != 0)
		test_fail(__FILE__, __LINE__, "larder_open %s: %d (%s): %s",
			  dir, rc, larder_strerror(rc), larder_open_errmsg());
	return db;
}

static void put(larder *db, const char *ns, const char *key)
{
	ASSERT_RC(db,
		  larder_put(db, ns, key, strlen(key), "v", 1, "data", 4, NULL),
		  0);
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
		ASSERT_EQ(ldr_mode_for_umask(cases[i][0]), cases[i][1]);
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
			  dir, rc, larder_strerror(rc), larder_open_errmsg());
	if (!strstr(larder_open_errmsg(), says))
		test_fail(__FILE__, line, "message '%s' does not say '%s'",
			  larder_open_errmsg(), says);
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
		return; /* needs chown */
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
		return;
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
	ASSERT(strstr(larder_open_errmsg(), "symbolic link") != NULL);
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
	larder_limits l;
	/* Read three times: one warning all the same. */
	int before = warnings;
	for (int i = 0; i < 3; i++)
		ASSERT_RC(db, larder_limits_get(db, NULL, &l), 0);
	ASSERT(warnings - before <= 1);
	larder_close(db);
	return l.max_entries;
}

TEST(store_config_of_another_user_or_writable_by_others_is_ignored)
{
	if (geteuid() != 0)
		return; /* needs chown */
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
