/*
 * test_perms.c — what docs/security.md promises about a store's files:
 * nothing inside the store is reached through a symbolic link, for any
 * operation (fsutil's resolution, then each operation of the API).
 *
 * The tests run as whoever runs them (root in CI); they plant symlinks
 * and files the way a careless or hostile user of a shared store would,
 * and check that what lies outside the store is untouched.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fsutil.h"
#include "harness.h"
#include "larder.h"

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
