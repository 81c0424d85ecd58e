/* fsutil.c — owns safe syscall wrappers for the store (see fsutil.h). */
#include "fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "bytes.h"

/* -1 unknown, 0 absent (ENOSYS seen once), 1 works. Racy but idempotent:
 * every thread that races reaches the same answer. */
static int have_openat2 = -1;

void ldr_test_no_openat2(void)
{
	__atomic_store_n(&have_openat2, 0, __ATOMIC_RELAXED);
}

static int openat_retry(int dirfd, const char *name, int flags, mode_t mode)
{
	for (;;) {
		int fd = openat(dirfd, name, flags, mode);
		if (fd >= 0 || errno != EINTR)
			return fd;
	}
}

/* Without openat2: one component at a time, each opened with O_NOFOLLOW,
 * so that a symlink anywhere on the way stops the walk as openat2's
 * RESOLVE_NO_SYMLINKS would (openat with a whole path follows every
 * symlink but the last). ".." and absolute paths could leave dirfd. */
static int open_walk(int dirfd, const char *rel, int flags, mode_t mode)
{
	char path[4096];
	size_t n = strlen(rel);
	if (n >= sizeof path) {
		errno = ENAMETOOLONG;
		return -1;
	}
	if (rel[0] == '/') {
		errno = ELOOP;
		return -1;
	}
	memcpy(path, rel, n + 1);
	int dir = dirfd, fd = -1;
	char *p = path;
	for (;;) {
		char *slash = strchr(p, '/');
		if (slash)
			*slash = '\0';
		const char *name = *p ? p : ".";
		if (strcmp(name, "..") == 0) {
			errno = ELOOP;
			break;
		}
		if (!slash) {
			fd = openat_retry(dir, name, flags, mode);
			break;
		}
		int next = openat_retry(
		    dir, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC,
		    0);
		if (next < 0) {
			/* A symlink where a directory should be reads as
			 * ELOOP, as openat2 reports it. */
			struct stat st;
			int e = errno;
			if (e == ENOTDIR &&
			    fstatat(dir, name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
			    S_ISLNK(st.st_mode))
				e = ELOOP;
			errno = e;
			break;
		}
		if (dir != dirfd)
			ldr_close(dir);
		dir = next;
		p = slash + 1;
	}
	if (dir != dirfd) {
		int e = errno;
		ldr_close(dir);
		errno = e;
	}
	return fd;
}

/* Whether the last component of rel (beneath dirfd) is a symlink: looked
 * at in its parent, itself opened beneath dirfd. */
static int last_is_symlink(int dirfd, const char *rel)
{
	char dir[4096];
	const char *slash = strrchr(rel, '/'), *base = rel;
	int pfd = dirfd;
	if (slash) {
		if ((size_t)(slash - rel) >= sizeof dir)
			return 0;
		memcpy(dir, rel, (size_t)(slash - rel));
		dir[slash - rel] = '\0';
		pfd = ldr_open_beneath(dirfd, *dir ? dir : "/",
				       O_RDONLY | O_DIRECTORY, 0);
		if (pfd < 0)
			return 0;
		base = slash + 1;
	}
	struct stat st;
	int r = fstatat(pfd, base, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		S_ISLNK(st.st_mode);
	if (pfd != dirfd)
		ldr_close(pfd);
	return r;
}

static int open_beneath(int dirfd, const char *rel, int flags, mode_t mode);

int ldr_open_beneath(int dirfd, const char *rel, int flags, mode_t mode)
{
	int fd = open_beneath(dirfd, rel, flags, mode);
	/* O_DIRECTORY|O_NOFOLLOW on a symlink says ENOTDIR: say ELOOP, as
	 * for a symlink anywhere else on the way. */
	if (fd < 0 && errno == ENOTDIR && (flags & O_DIRECTORY) &&
	    last_is_symlink(dirfd, rel))
		errno = ELOOP;
	return fd;
}

/* Whether rel can only go down from where it starts: relative, and no
 * component begins with '.' (so none is "." or ".."). Such a path, with
 * no symlink followed, stays beneath its directory by itself. */
static int descends(const char *rel)
{
	/* strstr, not a loop by hand: it is on every hit, and libc's
	 * looks at a vector of bytes at a time. */
	return rel[0] != '/' && rel[0] != '.' && !strstr(rel, "/.");
}

static int open_beneath(int dirfd, const char *rel, int flags, mode_t mode)
{
	flags |= O_CLOEXEC | O_NOFOLLOW;
#ifdef SYS_openat2
	if (__atomic_load_n(&have_openat2, __ATOMIC_RELAXED) != 0) {
		struct open_how how;
		memset(&how, 0, sizeof how);
		how.flags = (uint64_t)flags;
		how.mode = (flags & O_CREAT) ? mode : 0;
		/* RESOLVE_NO_SYMLINKS refuses every symlink (magic links
		 * too) on the way. What RESOLVE_BENEATH adds is the refusal
		 * of "/" and "..", and a last check that the file reached is
		 * still beneath dirfd (a directory on the way moved out
		 * meanwhile). A path that only descends has no "/" or "..",
		 * and a move just after that last check has the same effect
		 * as one just before it: the file was beneath dirfd when its
		 * directory was entered. So such a path skips the checks,
		 * which cost a 4 KiB hit 20-60 ns (docs/performance.md);
		 * any other path keeps them. */
		how.resolve =
		    RESOLVE_NO_SYMLINKS | (descends(rel) ? 0 : RESOLVE_BENEATH);
		for (;;) {
			long fd =
			    syscall(SYS_openat2, dirfd, rel, &how, sizeof how);
			if (fd >= 0) {
				__atomic_store_n(&have_openat2, 1,
						 __ATOMIC_RELAXED);
				return (int)fd;
			}
			if (errno == EINTR)
				continue;
			if (errno == ENOSYS) {
				/* old kernel: fall back for good */
				__atomic_store_n(&have_openat2, 0,
						 __ATOMIC_RELAXED);
				break;
			}
			/* A symlink met on the way reads as ELOOP, as
			 * O_NOFOLLOW reports one at the end. */
			if (errno == EXDEV)
				errno = ELOOP;
			return -1;
		}
	}
#endif
	return open_walk(dirfd, rel, flags, mode);
}

int ldr_mkdir_one(int dirfd, const char *name, mode_t mode)
{
	if (mkdirat(dirfd, name, mode) != 0)
		return -1;
	int fd = ldr_open_beneath(dirfd, name, O_RDONLY | O_DIRECTORY, 0);
	if (fd >= 0) {
		int r = fchmod(fd, mode);
		int e = errno;
		ldr_close(fd);
		if (r != 0 && e != EPERM) {
			errno = e;
			return -1;
		}
	}
	return 0;
}

/* Bottom up: the common case (only the last directory is missing, or
 * none) costs one open of its parent and one mkdirat, not one per
 * component. Each mkdirat names one component in a parent opened
 * beneath dirfd, so that no symlink on the way is followed (mkdirat of a
 * whole path follows every symlink but the last). */
static int mkdirs(int dirfd, char *path, mode_t mode)
{
	char *slash = strrchr(path, '/');
	int pfd = dirfd;
	const char *name = path;
	if (slash) {
		*slash = '\0';
		pfd = ldr_open_beneath(dirfd, path, O_RDONLY | O_DIRECTORY, 0);
		if (pfd < 0 && errno == ENOENT &&
		    mkdirs(dirfd, path, mode) == 0)
			pfd = ldr_open_beneath(dirfd, path,
					       O_RDONLY | O_DIRECTORY, 0);
		*slash = '/';
		if (pfd < 0)
			return -1;
		name = slash + 1;
	}
	int r = ldr_mkdir_one(pfd, name, mode);
	int e = errno;
	if (pfd != dirfd)
		ldr_close(pfd);
	if (r == 0 || e == EEXIST)
		return 0;
	errno = e;
	return -1;
}

int ldr_mkdirs(int dirfd, const char *rel, mode_t mode)
{
	char path[4096];
	size_t n = strlen(rel);
	if (n >= sizeof path) {
		errno = ENAMETOOLONG;
		return -1;
	}
	memcpy(path, rel, n + 1);
	while (n > 1 && path[n - 1] == '/')
		path[--n] = '\0';
	if (path[0] == '/') {
		errno = ELOOP; /* beneath dirfd only */
		return -1;
	}
	return mkdirs(dirfd, path, mode);
}

ssize_t ldr_pread_full(int fd, void *buf, size_t len, off_t off)
{
	size_t done = 0;
	while (done < len) {
		ssize_t r = pread(fd, (char *)buf + done, len - done,
				  off + (off_t)done);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (r == 0)
			break;
		done += (size_t)r;
	}
	return (ssize_t)done;
}

int ldr_pwrite_full(int fd, const void *buf, size_t len, off_t off)
{
	size_t done = 0;
	while (done < len) {
		ssize_t r = pwrite(fd, (const char *)buf + done, len - done,
				   off + (off_t)done);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (r == 0) {
			errno = EIO;
			return -1;
		}
		done += (size_t)r;
	}
	return 0;
}

int ldr_pwrite2(int fd, const void *a, size_t alen, const void *b, size_t blen,
		off_t off)
{
	struct iovec iov[2] = {{(void *)a, alen}, {(void *)b, blen}};
	ssize_t r;
	do
		r = pwritev(fd, iov, blen ? 2 : 1, off);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		return -1;
	/* Finish a short write piecewise. */
	size_t done = (size_t)r;
	if (done < alen) {
		if (ldr_pwrite_full(fd, (const char *)a + done, alen - done,
				    off + (off_t)done))
			return -1;
		done = alen;
	}
	if (done - alen < blen)
		return ldr_pwrite_full(fd, (const char *)b + (done - alen),
				       blen - (done - alen), off + (off_t)done);
	return 0;
}

int ldr_fdatasync(int fd)
{
	int r;
	do
		r = fdatasync(fd);
	while (r < 0 && errno == EINTR);
	return r;
}

int ldr_fsync(int fd)
{
	int r;
	do
		r = fsync(fd);
	while (r < 0 && errno == EINTR);
	return r;
}

void ldr_close(int fd)
{
	if (fd >= 0)
		close(fd);
}

void ldr_random(void *buf, size_t len)
{
	size_t done = 0;
	while (done < len) {
		ssize_t r =
		    getrandom((char *)buf + done, len - done, GRND_NONBLOCK);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		done += (size_t)r;
	}
	if (done < len) {
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		uint64_t x = (uint64_t)ts.tv_nsec ^ ((uint64_t)getpid() << 32) ^
			     (uint64_t)(uintptr_t)buf;
		for (; done < len; done++) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			((uint8_t *)buf)[done] = (uint8_t)x;
		}
	}
}

/* Four bytes' eight hex digits in one word, a digit a byte, the first
 * in the lowest: no loop per digit (a byte at a time, the 32 digits of
 * an entry's name cost a 4 KiB hit ~200 instructions). */
static uint64_t hex4(const uint8_t *in)
{
	const uint64_t ones = 0x0101010101010101u;
	/* Byte i to bits 16i: its high nibble stays the lower digit, its
	 * low nibble moves up a byte. */
	uint64_t x = (uint64_t)in[0] | (uint64_t)in[1] << 16 |
		     (uint64_t)in[2] << 32 | (uint64_t)in[3] << 48;
	uint64_t v = (x >> 4 & 0x000F000F000F000Fu) | (x & 0x000F000F000F000Fu)
							  << 8;
	/* '0' + n, and 'a' - '0' - 10 more where n > 9 (n + 6 carries into
	 * bit 4 exactly then; no digit carries into the next byte). */
	uint64_t over = (v + 6 * ones) >> 4 & ones;
	return v + '0' * ones + over * ('a' - '0' - 10);
}

void ldr_hex(const uint8_t *in, size_t len, char *out)
{
	static const char digits[] = "0123456789abcdef";
	size_t i = 0;
	for (; i + 4 <= len; i += 4)
		ldr_put64((uint8_t *)out + 2 * i, hex4(in + i));
	for (; i < len; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 15];
	}
	out[2 * len] = '\0';
}

int ldr_unhex(const char *in, size_t len, uint8_t *out)
{
	for (size_t i = 0; i < 2 * len; i++) {
		char c = in[i];
		int v = c >= '0' && c <= '9'   ? c - '0'
			: c >= 'a' && c <= 'f' ? c - 'a' + 10
					       : -1;
		if (v < 0)
			return -1;
		if (i % 2 == 0)
			out[i / 2] = (uint8_t)(v << 4);
		else
			out[i / 2] |= (uint8_t)v;
	}
	return 0;
}

void ldr_temp_name(char *buf, size_t len, const char *host)
{
	uint8_t r[8];
	char hex[17];
	ldr_random(r, sizeof r);
	ldr_hex(r, sizeof r, hex);
	snprintf(buf, len, ".tmp.%s.%ld.%s", host, (long)getpid(), hex);
}

int ldr_is_network_fs(int fd)
{
	struct statfs sf;
	if (fstatfs(fd, &sf) != 0)
		return 1;
	switch ((unsigned long)sf.f_type) {
	case 0x6969:	 /* NFS */
	case 0x65735546: /* FUSE (GlusterFS, sshfs, ...) */
	case 0x00c36400: /* CephFS */
	case 0x0bd00bd0: /* Lustre */
	case 0xff534d42: /* CIFS */
	case 0xfe534d42: /* SMB2 */
	case 0x47504653: /* GPFS */
	case 0x5346414f: /* AFS */
	case 0x73757245: /* Coda */
	case 0x564c:	 /* NCP */
	case 0x6b414653: /* kAFS */
		return 1;
	default:
		return 0;
	}
}

ssize_t ldr_read_text(const char *path, char *buf, size_t size)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t n = ldr_pread_full(fd, buf, size - 1, 0);
	ldr_close(fd);
	buf[n > 0 ? n : 0] = '\0';
	return n;
}
