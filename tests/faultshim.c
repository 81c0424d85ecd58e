/*
 * faultshim.c — an LD_PRELOAD library that makes the Nth matching I/O call
 * fail, for the fault-injection tests (tests/test_faults.c).
 *
 * Driven by the environment, read once when the library loads:
 *
 *   LARDER_FAULT_OP      open|read|write|fsync|link|rename|unlink|mkdir|
 *                        chmod|mmap|any|inotify — the class of call to
 *                        count; inotify (inotify_init1, not part of any)
 *                        gives a program no inotify, as a network
 *                        filesystem gives it no events (unset:
 * the shim passes everything through) LARDER_FAULT_NTH     N >= 1: the Nth
 * matching call is the one that fails LARDER_FAULT_ERRNO
 * ENOSPC|EIO|EDQUOT|ESTALE|EINTR|ENOMEM|... or a number (default EIO)
 *   LARDER_FAULT_PATH    only calls on paths containing this substring count
 *                        (fd-based calls: fds opened on such a path)
 *   LARDER_FAULT_PERSIST 1: every matching call from the Nth on fails (a
 *                        disk that stays full), not only the Nth
 *   LARDER_FAULT_SHORT   1: only read/write calls of 2 bytes or more count,
 *                        and the chosen one moves half its bytes instead of
 *                        failing (a legal short transfer)
 *   LARDER_FAULT_REPORT  a file to which the shim appends
 *                        "fired <class> <function> n=<N> errno=<E> path=<P>"
 *                        when the fault first fires, and at exit
 *                        "count <class> <matching calls seen>", so that a
 *                        test knows when N has passed the last operation,
 *                        and "injected <class> <faults injected>" (failed
 *                        or shortened calls), so that a test knows its
 *                        faults happened.
 *
 * Every other call is forwarded with dlsym(RTLD_NEXT). syscall() is
 * intercepted too, so that syscall(SYS_openat2, ...) counts as an open.
 * Names given to *at() calls are resolved through /proc/self/fd, so a
 * relative name under a store directory fd matches LARDER_FAULT_PATH.
 *
 * The shim is built without sanitizers (tests/faults.cmake): it must load
 * next to an ASan runtime without being one more instrumented library.
 */
#undef _FORTIFY_SOURCE
#undef _FILE_OFFSET_BITS
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

enum fclass {
	FC_NONE = 0,
	FC_OPEN,
	FC_READ,
	FC_WRITE,
	FC_FSYNC,
	FC_LINK,
	FC_RENAME,
	FC_UNLINK,
	FC_MKDIR,
	FC_CHMOD,
	FC_MMAP,
	FC_ANY,
	FC_INOTIFY,
	FC_COUNT
};

static const char *const class_names[FC_COUNT] = {
    "none",   "open",  "read",	"write", "fsync", "link",   "rename",
    "unlink", "mkdir", "chmod", "mmap",	 "any",	  "inotify"};

static const struct {
	const char *name;
	int value;
} errno_names[] = {
    {"ENOSPC", ENOSPC}, {"EIO", EIO},	    {"EDQUOT", EDQUOT},
    {"ESTALE", ESTALE}, {"EINTR", EINTR},   {"ENOMEM", ENOMEM},
    {"EFBIG", EFBIG},	{"EACCES", EACCES}, {"EPERM", EPERM},
    {"EROFS", EROFS},	{"ENOENT", ENOENT}, {"EAGAIN", EAGAIN},
    {"EMFILE", EMFILE}, {"ENOSYS", ENOSYS}, {"EXDEV", EXDEV},
    {"EBUSY", EBUSY},
};

#define FD_MAX 65536

static struct {
	int inited;
	enum fclass cls;
	long nth;
	int err;
	int persist;
	int shortio;
	char path[PATH_MAX];
	char report[PATH_MAX];
	long count;
	long injected; /* calls failed or shortened */
	int fired;
	unsigned char fds[FD_MAX]; /* 1: opened on a matching path */
} S;

/* Our own prototypes for glibc's fortify entry points, which the headers
 * declare only under _FORTIFY_SOURCE. */
int __open_2(const char *path, int flags);
int __open64_2(const char *path, int flags);
int __openat_2(int dirfd, const char *path, int flags);
int __openat64_2(int dirfd, const char *path, int flags);
ssize_t __read_chk(int fd, void *buf, size_t len, size_t buflen);
ssize_t __pread_chk(int fd, void *buf, size_t len, off_t off, size_t buflen);
ssize_t __pread64_chk(int fd, void *buf, size_t len, off64_t off,
		      size_t buflen);

/* The next definition of a function (libc's, or a sanitizer's in front of
 * it), found on first use: another library's constructor may call us
 * before ours runs. */
#define REAL(name)                                                             \
	static __typeof__(name) *real_##name;                                  \
	if (!real_##name)                                                      \
	real_##name = (__typeof__(name) *)dlsym(RTLD_NEXT, #name)

static long (*raw_syscall)(long, ...);

static long sys(long nr, long a, long b, long c, long d)
{
	if (!raw_syscall)
		raw_syscall = (long (*)(long, ...))dlsym(RTLD_NEXT, "syscall");
	return raw_syscall(nr, a, b, c, d, 0L, 0L);
}

static const char *errno_name(int e)
{
	for (size_t i = 0; i < sizeof errno_names / sizeof errno_names[0]; i++)
		if (errno_names[i].value == e)
			return errno_names[i].name;
	return "?";
}

static void init(void)
{
	if (__atomic_load_n(&S.inited, __ATOMIC_ACQUIRE))
		return;
	const char *op = getenv("LARDER_FAULT_OP");
	const char *nth = getenv("LARDER_FAULT_NTH");
	const char *err = getenv("LARDER_FAULT_ERRNO");
	const char *path = getenv("LARDER_FAULT_PATH");
	const char *rep = getenv("LARDER_FAULT_REPORT");
	const char *per = getenv("LARDER_FAULT_PERSIST");
	const char *sho = getenv("LARDER_FAULT_SHORT");
	enum fclass cls = FC_NONE;
	for (int i = 1; op && i < FC_COUNT; i++)
		if (strcmp(op, class_names[i]) == 0)
			cls = (enum fclass)i;
	S.nth = nth ? strtol(nth, NULL, 10) : 1;
	if (S.nth < 1)
		S.nth = 1;
	S.err = EIO;
	if (err) {
		if (err[0] >= '0' && err[0] <= '9')
			S.err = atoi(err);
		for (size_t i = 0;
		     i < sizeof errno_names / sizeof errno_names[0]; i++)
			if (strcmp(err, errno_names[i].name) == 0)
				S.err = errno_names[i].value;
	}
	if (path)
		snprintf(S.path, sizeof S.path, "%s", path);
	if (rep)
		snprintf(S.report, sizeof S.report, "%s", rep);
	S.persist = per && per[0] == '1';
	S.shortio = sho && sho[0] == '1';
	S.cls = cls;
	__atomic_store_n(&S.inited, 1, __ATOMIC_RELEASE);
}

__attribute__((constructor)) static void shim_load(void)
{
	init();
}

/* Append one line to the report file with raw syscalls, so that reporting
 * is never itself counted or failed. */
__attribute__((format(printf, 1, 2))) static void report(const char *fmt, ...)
{
	if (!S.report[0])
		return;
	char line[PATH_MAX + 256];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof line)
		n = (int)sizeof line - 1;
	int saved = errno;
	long fd = sys(SYS_openat, AT_FDCWD, (long)S.report,
		      O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (fd >= 0) {
		if (sys(SYS_write, fd, (long)line, n, 0) != n)
			(void)0; /* nothing better to do in a test shim */
		sys(SYS_close, fd, 0, 0, 0);
	}
	errno = saved;
}

__attribute__((destructor)) static void shim_unload(void)
{
	if (S.cls != FC_NONE) {
		report("count %s %ld\n", class_names[S.cls],
		       __atomic_load_n(&S.count, __ATOMIC_SEQ_CST));
		report("injected %s %ld\n", class_names[S.cls],
		       __atomic_load_n(&S.injected, __ATOMIC_SEQ_CST));
	}
}

/* The absolute name of `path` as seen from dirfd, into out. */
static void resolve(int dirfd, const char *path, char *out, size_t len)
{
	char base[PATH_MAX];
	out[0] = '\0';
	if (!path)
		return;
	if (path[0] == '/') {
		snprintf(out, len, "%s", path);
		return;
	}
	if (dirfd == AT_FDCWD) {
		if (!getcwd(base, sizeof base))
			return;
	} else {
		char proc[64];
		snprintf(proc, sizeof proc, "/proc/self/fd/%d", dirfd);
		ssize_t r = readlink(proc, base, sizeof base - 1);
		if (r < 0)
			return;
		base[r] = '\0';
	}
	snprintf(out, len, "%s/%s", base, path);
}

static int path_matches(const char *full)
{
	return !S.path[0] || strstr(full, S.path) != NULL;
}

static int fd_matches(int fd)
{
	if (fd < 0)
		return 0;
	if (!S.path[0])
		return 1;
	return fd < FD_MAX && S.fds[fd];
}

/* Is this class being counted at all? */
static int counted(enum fclass cls)
{
	init();
	if (S.cls == FC_NONE)
		return 0;
	if (S.shortio && cls != FC_READ && cls != FC_WRITE)
		return 0;
	if (cls == FC_INOTIFY) /* only when asked for by name */
		return S.cls == cls;
	return S.cls == FC_ANY || S.cls == cls;
}

/* Count one matching call; 1 if it is the one to fail (errno is set). */
static int fire(enum fclass cls, const char *fn, const char *what)
{
	long n = __atomic_add_fetch(&S.count, 1, __ATOMIC_SEQ_CST);
	if (n != S.nth && !(S.persist && n > S.nth))
		return 0;
	if (!__atomic_exchange_n(&S.fired, 1, __ATOMIC_SEQ_CST))
		report("fired %s %s n=%ld errno=%s path=%s\n", class_names[cls],
		       fn, n, S.shortio ? "short" : errno_name(S.err), what);
	__atomic_add_fetch(&S.injected, 1, __ATOMIC_SEQ_CST);
	errno = S.err;
	return 1;
}

static int fault_path(enum fclass cls, const char *fn, int dirfd,
		      const char *path)
{
	if (!counted(cls))
		return 0;
	char full[PATH_MAX * 2];
	resolve(dirfd, path, full, sizeof full);
	if (!path_matches(full))
		return 0;
	return fire(cls, fn, full);
}

static int fault_path2(enum fclass cls, const char *fn, int d1, const char *p1,
		       int d2, const char *p2)
{
	if (!counted(cls))
		return 0;
	char f1[PATH_MAX * 2], f2[PATH_MAX * 2];
	resolve(d1, p1, f1, sizeof f1);
	resolve(d2, p2, f2, sizeof f2);
	if (!path_matches(f1) && !path_matches(f2))
		return 0;
	return fire(cls, fn, f2);
}

static int fault_fd(enum fclass cls, const char *fn, int fd)
{
	if (!counted(cls) || !fd_matches(fd))
		return 0;
	char proc[64], what[PATH_MAX];
	snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
	ssize_t r = readlink(proc, what, sizeof what - 1);
	what[r < 0 ? 0 : r] = '\0';
	return fire(cls, fn, what);
}

/* For read/write: 0 pass, 1 fail (errno set), 2 pass with half the bytes.
 */
static int fault_io(enum fclass cls, const char *fn, int fd, size_t len)
{
	if (S.shortio && len < 2)
		return 0;
	int saved = errno;
	if (!fault_fd(cls, fn, fd))
		return 0;
	if (!S.shortio)
		return 1;
	errno = saved;
	return 2;
}

static void track(long fd, int dirfd, const char *path)
{
	if (fd < 0 || fd >= FD_MAX)
		return;
	init();
	if (!S.path[0]) {
		S.fds[fd] = 1;
		return;
	}
	char full[PATH_MAX * 2];
	resolve(dirfd, path, full, sizeof full);
	/* An fd opened by a relative name is known by its real path too. */
	S.fds[fd] = path_matches(full);
	if (!S.fds[fd]) {
		char proc[64];
		snprintf(proc, sizeof proc, "/proc/self/fd/%ld", fd);
		ssize_t r = readlink(proc, full, sizeof full - 1);
		full[r < 0 ? 0 : r] = '\0';
		S.fds[fd] = r > 0 && path_matches(full);
	}
}

static void untrack(int fd)
{
	if (fd >= 0 && fd < FD_MAX)
		S.fds[fd] = 0;
}

static int needs_mode(int flags)
{
	return (flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE;
}

/* ---------------------------------------------------------------------- */
/* open                                                                    */

#define OPEN_BODY(name, dirfd)                                                 \
	mode_t mode = 0;                                                       \
	if (needs_mode(flags)) {                                               \
		va_list ap;                                                    \
		va_start(ap, flags);                                           \
		mode = va_arg(ap, mode_t);                                     \
		va_end(ap);                                                    \
	}                                                                      \
	REAL(name);                                                            \
	if (fault_path(FC_OPEN, #name, (dirfd), path))                         \
	return -1

int open(const char *path, int flags, ...)
{
	OPEN_BODY(open, AT_FDCWD);
	int fd = real_open(path, flags, mode);
	track(fd, AT_FDCWD, path);
	return fd;
}

int open64(const char *path, int flags, ...)
{
	OPEN_BODY(open64, AT_FDCWD);
	int fd = real_open64(path, flags, mode);
	track(fd, AT_FDCWD, path);
	return fd;
}

int openat(int dirfd, const char *path, int flags, ...)
{
	OPEN_BODY(openat, dirfd);
	int fd = real_openat(dirfd, path, flags, mode);
	track(fd, dirfd, path);
	return fd;
}

int openat64(int dirfd, const char *path, int flags, ...)
{
	OPEN_BODY(openat64, dirfd);
	int fd = real_openat64(dirfd, path, flags, mode);
	track(fd, dirfd, path);
	return fd;
}

int __open_2(const char *path, int flags)
{
	REAL(__open_2);
	if (fault_path(FC_OPEN, "__open_2", AT_FDCWD, path))
		return -1;
	int fd = real___open_2(path, flags);
	track(fd, AT_FDCWD, path);
	return fd;
}

int __open64_2(const char *path, int flags)
{
	REAL(__open64_2);
	if (fault_path(FC_OPEN, "__open64_2", AT_FDCWD, path))
		return -1;
	int fd = real___open64_2(path, flags);
	track(fd, AT_FDCWD, path);
	return fd;
}

int __openat_2(int dirfd, const char *path, int flags)
{
	REAL(__openat_2);
	if (fault_path(FC_OPEN, "__openat_2", dirfd, path))
		return -1;
	int fd = real___openat_2(dirfd, path, flags);
	track(fd, dirfd, path);
	return fd;
}

int __openat64_2(int dirfd, const char *path, int flags)
{
	REAL(__openat64_2);
	if (fault_path(FC_OPEN, "__openat64_2", dirfd, path))
		return -1;
	int fd = real___openat64_2(dirfd, path, flags);
	track(fd, dirfd, path);
	return fd;
}

int creat(const char *path, mode_t mode)
{
	REAL(creat);
	if (fault_path(FC_OPEN, "creat", AT_FDCWD, path))
		return -1;
	int fd = real_creat(path, mode);
	track(fd, AT_FDCWD, path);
	return fd;
}

int creat64(const char *path, mode_t mode)
{
	REAL(creat64);
	if (fault_path(FC_OPEN, "creat64", AT_FDCWD, path))
		return -1;
	int fd = real_creat64(path, mode);
	track(fd, AT_FDCWD, path);
	return fd;
}

FILE *fopen(const char *path, const char *how)
{
	REAL(fopen);
	if (fault_path(FC_OPEN, "fopen", AT_FDCWD, path))
		return NULL;
	FILE *f = real_fopen(path, how);
	if (f)
		track(fileno(f), AT_FDCWD, path);
	return f;
}

FILE *fopen64(const char *path, const char *how)
{
	REAL(fopen64);
	if (fault_path(FC_OPEN, "fopen64", AT_FDCWD, path))
		return NULL;
	FILE *f = real_fopen64(path, how);
	if (f)
		track(fileno(f), AT_FDCWD, path);
	return f;
}

/* A duplicate refers to the same file: it matches as the original did. */
static int dup_track(int from, int to)
{
	if (to >= 0 && to < FD_MAX)
		S.fds[to] = from >= 0 && from < FD_MAX && S.fds[from];
	return to;
}

int dup(int fd)
{
	REAL(dup);
	return dup_track(fd, real_dup(fd));
}

int dup2(int fd, int to)
{
	REAL(dup2);
	return dup_track(fd, real_dup2(fd, to));
}

int dup3(int fd, int to, int flags)
{
	REAL(dup3);
	return dup_track(fd, real_dup3(fd, to, flags));
}

/* fcntl's one optional argument is an int or a pointer; passing it on as
 * a pointer-sized value is what every interposer of it does. */
#define FCNTL_BODY(name)                                                       \
	va_list ap;                                                            \
	va_start(ap, cmd);                                                     \
	void *arg = va_arg(ap, void *);                                        \
	va_end(ap);                                                            \
	REAL(name);                                                            \
	int r = real_##name(fd, cmd, arg);                                     \
	if (cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC)                          \
		dup_track(fd, r);                                              \
	return r

int fcntl(int fd, int cmd, ...)
{
	FCNTL_BODY(fcntl);
}

int fcntl64(int fd, int cmd, ...)
{
	FCNTL_BODY(fcntl64);
}

int close(int fd)
{
	REAL(close);
	untrack(fd);
	return real_close(fd);
}

/* ---------------------------------------------------------------------- */
/* read                                                                    */

ssize_t read(int fd, void *buf, size_t len)
{
	REAL(read);
	switch (fault_io(FC_READ, "read", fd, len)) {
	case 1:
		return -1;
	case 2:
		len /= 2;
	}
	return real_read(fd, buf, len);
}

ssize_t __read_chk(int fd, void *buf, size_t len, size_t buflen)
{
	REAL(__read_chk);
	switch (fault_io(FC_READ, "__read_chk", fd, len)) {
	case 1:
		return -1;
	case 2:
		len /= 2;
	}
	return real___read_chk(fd, buf, len, buflen);
}

ssize_t pread(int fd, void *buf, size_t len, off_t off)
{
	REAL(pread);
	switch (fault_io(FC_READ, "pread", fd, len)) {
	case 1:
		return -1;
	case 2:
		len /= 2;
	}
	return real_pread(fd, buf, len, off);
}

ssize_t pread64(int fd, void *buf, size_t len, off64_t off)
{
	REAL(pread64);
	switch (fault_io(FC_READ, "pread64", fd, len)) {
	case 1:
		return -1;
	case 2:
		len /= 2;
	}
	return real_pread64(fd, buf, len, off);
}

ssize_t __pread_chk(int fd, void *buf, size_t len, off_t off, size_t buflen)
{
	REAL(__pread_chk);
	switch (fault_io(FC_READ, "__pread_chk", fd, len)) {
	case 1:
		return -1;
	case 2:
		len /= 2;
	}
	return real___pread_chk(fd, buf, len, off, buflen);
}

ssize_t __pread64_chk(int fd, void *buf, size_t len, off64_t off, size_t buflen)
{
	REAL(__pread64_chk);
	switch (fault_io(FC_READ, "__pread64_chk", fd, len)) {
	case 1:
		return -1;
	case 2:
		len /= 2;
	}
	return real___pread64_chk(fd, buf, len, off, buflen);
}

/* Vectored calls: a short transfer keeps the first half of the bytes. */
static size_t iov_total(const struct iovec *iov, int n)
{
	size_t t = 0;
	for (int i = 0; i < n; i++)
		t += iov[i].iov_len;
	return t;
}

static int iov_half(const struct iovec *iov, int n, struct iovec *out)
{
	size_t want = iov_total(iov, n) / 2;
	int k = 0;
	for (int i = 0; i < n && want > 0 && k < 64; i++) {
		out[k] = iov[i];
		if (out[k].iov_len > want)
			out[k].iov_len = want;
		want -= out[k].iov_len;
		k++;
	}
	return k;
}

#define VEC_BODY(name, cls, ...)                                               \
	REAL(name);                                                            \
	struct iovec half[64];                                                 \
	switch (fault_io(cls, #name, fd, iov_total(iov, n))) {                 \
	case 1:                                                                \
		return -1;                                                     \
	case 2:                                                                \
		n = iov_half(iov, n, half);                                    \
		iov = half;                                                    \
	}                                                                      \
	return real_##name(__VA_ARGS__)

ssize_t readv(int fd, const struct iovec *iov, int n)
{
	VEC_BODY(readv, FC_READ, fd, iov, n);
}

ssize_t preadv(int fd, const struct iovec *iov, int n, off_t off)
{
	VEC_BODY(preadv, FC_READ, fd, iov, n, off);
}

ssize_t preadv64(int fd, const struct iovec *iov, int n, off64_t off)
{
	VEC_BODY(preadv64, FC_READ, fd, iov, n, off);
}

ssize_t preadv2(int fd, const struct iovec *iov, int n, off_t off, int flags)
{
	VEC_BODY(preadv2, FC_READ, fd, iov, n, off, flags);
}

/* ---------------------------------------------------------------------- */
/* write                                                                   */

ssize_t write(int fd, const void *buf, size_t len)
{
	REAL(write);
	switch (fault_io(FC_WRITE, "write", fd, len)) {
	case 1:
		return -1;
	case 2:
		len /= 2;
	}
	return real_write(fd, buf, len);
}

ssize_t pwrite(int fd, const void *buf, size_t len, off_t off)
{
	REAL(pwrite);
	switch (fault_io(FC_WRITE, "pwrite", fd, len)) {
	case 1:
		return -1;
	case 2:
		len /= 2;
	}
	return real_pwrite(fd, buf, len, off);
}

ssize_t pwrite64(int fd, const void *buf, size_t len, off64_t off)
{
	REAL(pwrite64);
	switch (fault_io(FC_WRITE, "pwrite64", fd, len)) {
	case 1:
		return -1;
	case 2:
		len /= 2;
	}
	return real_pwrite64(fd, buf, len, off);
}

ssize_t writev(int fd, const struct iovec *iov, int n)
{
	VEC_BODY(writev, FC_WRITE, fd, iov, n);
}

ssize_t pwritev(int fd, const struct iovec *iov, int n, off_t off)
{
	VEC_BODY(pwritev, FC_WRITE, fd, iov, n, off);
}

ssize_t pwritev64(int fd, const struct iovec *iov, int n, off64_t off)
{
	VEC_BODY(pwritev64, FC_WRITE, fd, iov, n, off);
}

ssize_t pwritev2(int fd, const struct iovec *iov, int n, off_t off, int flags)
{
	VEC_BODY(pwritev2, FC_WRITE, fd, iov, n, off, flags);
}

int fallocate(int fd, int mode, off_t off, off_t len)
{
	REAL(fallocate);
	if (fault_fd(FC_WRITE, "fallocate", fd))
		return -1;
	return real_fallocate(fd, mode, off, len);
}

int ftruncate(int fd, off_t len)
{
	REAL(ftruncate);
	if (fault_fd(FC_WRITE, "ftruncate", fd))
		return -1;
	return real_ftruncate(fd, len);
}

/* ---------------------------------------------------------------------- */
/* fsync                                                                   */

int fsync(int fd)
{
	REAL(fsync);
	if (fault_fd(FC_FSYNC, "fsync", fd))
		return -1;
	return real_fsync(fd);
}

int fdatasync(int fd)
{
	REAL(fdatasync);
	if (fault_fd(FC_FSYNC, "fdatasync", fd))
		return -1;
	return real_fdatasync(fd);
}

int syncfs(int fd)
{
	REAL(syncfs);
	if (fault_fd(FC_FSYNC, "syncfs", fd))
		return -1;
	return real_syncfs(fd);
}

int sync_file_range(int fd, off64_t off, off64_t len, unsigned int flags)
{
	REAL(sync_file_range);
	if (fault_fd(FC_FSYNC, "sync_file_range", fd))
		return -1;
	return real_sync_file_range(fd, off, len, flags);
}

/* ---------------------------------------------------------------------- */
/* link, rename, unlink, mkdir                                             */

int link(const char *from, const char *to)
{
	REAL(link);
	if (fault_path2(FC_LINK, "link", AT_FDCWD, from, AT_FDCWD, to))
		return -1;
	return real_link(from, to);
}

int linkat(int d1, const char *from, int d2, const char *to, int flags)
{
	REAL(linkat);
	if (fault_path2(FC_LINK, "linkat", d1, from, d2, to))
		return -1;
	return real_linkat(d1, from, d2, to, flags);
}

int rename(const char *from, const char *to)
{
	REAL(rename);
	if (fault_path2(FC_RENAME, "rename", AT_FDCWD, from, AT_FDCWD, to))
		return -1;
	return real_rename(from, to);
}

int renameat(int d1, const char *from, int d2, const char *to)
{
	REAL(renameat);
	if (fault_path2(FC_RENAME, "renameat", d1, from, d2, to))
		return -1;
	return real_renameat(d1, from, d2, to);
}

int renameat2(int d1, const char *from, int d2, const char *to,
	      unsigned int flags)
{
	REAL(renameat2);
	if (fault_path2(FC_RENAME, "renameat2", d1, from, d2, to))
		return -1;
	return real_renameat2(d1, from, d2, to, flags);
}

int unlink(const char *path)
{
	REAL(unlink);
	if (fault_path(FC_UNLINK, "unlink", AT_FDCWD, path))
		return -1;
	return real_unlink(path);
}

int unlinkat(int dirfd, const char *path, int flags)
{
	REAL(unlinkat);
	if (fault_path(FC_UNLINK, "unlinkat", dirfd, path))
		return -1;
	return real_unlinkat(dirfd, path, flags);
}

int rmdir(const char *path)
{
	REAL(rmdir);
	if (fault_path(FC_UNLINK, "rmdir", AT_FDCWD, path))
		return -1;
	return real_rmdir(path);
}

int mkdir(const char *path, mode_t mode)
{
	REAL(mkdir);
	if (fault_path(FC_MKDIR, "mkdir", AT_FDCWD, path))
		return -1;
	return real_mkdir(path, mode);
}

int mkdirat(int dirfd, const char *path, mode_t mode)
{
	REAL(mkdirat);
	if (fault_path(FC_MKDIR, "mkdirat", dirfd, path))
		return -1;
	return real_mkdirat(dirfd, path, mode);
}

/* chmod: GlusterFS answers EIO to the first SETATTR of a directory two
 * clients made at once when its replicas disagree. */
int fchmod(int fd, mode_t mode)
{
	REAL(fchmod);
	if (fault_fd(FC_CHMOD, "fchmod", fd))
		return -1;
	return real_fchmod(fd, mode);
}

int fchmodat(int dirfd, const char *path, mode_t mode, int flags)
{
	REAL(fchmodat);
	if (fault_path(FC_CHMOD, "fchmodat", dirfd, path))
		return -1;
	return real_fchmodat(dirfd, path, mode, flags);
}

/* ---------------------------------------------------------------------- */
/* mmap (of files only)                                                    */

void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	REAL(mmap);
	if (!(flags & MAP_ANONYMOUS) && fault_fd(FC_MMAP, "mmap", fd))
		return MAP_FAILED;
	return real_mmap(addr, len, prot, flags, fd, off);
}

void *mmap64(void *addr, size_t len, int prot, int flags, int fd, off64_t off)
{
	REAL(mmap64);
	if (!(flags & MAP_ANONYMOUS) && fault_fd(FC_MMAP, "mmap64", fd))
		return MAP_FAILED;
	return real_mmap64(addr, len, prot, flags, fd, off);
}

/* ---------------------------------------------------------------------- */
/* syscall(): the library reaches openat2 (and maybe renameat2) this way.
 * It is variadic; six longs are read and forwarded, which the x86-64 and
 * aarch64 calling conventions make harmless when fewer were passed. */

long syscall(long nr, ...)
{
	long a[6];
	va_list ap;
	va_start(ap, nr);
	for (int i = 0; i < 6; i++)
		a[i] = va_arg(ap, long);
	va_end(ap);
	if (!raw_syscall)
		raw_syscall = (long (*)(long, ...))dlsym(RTLD_NEXT, "syscall");
	int opens = 0;
	switch (nr) {
#ifdef SYS_openat2
	case SYS_openat2:
		if (fault_path(FC_OPEN, "openat2", (int)a[0],
			       (const char *)a[1]))
			return -1;
		opens = 1;
		break;
#endif
	case SYS_openat:
		if (fault_path(FC_OPEN, "openat", (int)a[0],
			       (const char *)a[1]))
			return -1;
		opens = 1;
		break;
#ifdef SYS_open
	case SYS_open:
		if (fault_path(FC_OPEN, "open", AT_FDCWD, (const char *)a[0]))
			return -1;
		opens = 2;
		break;
#endif
	case SYS_linkat:
		if (fault_path2(FC_LINK, "linkat", (int)a[0],
				(const char *)a[1], (int)a[2],
				(const char *)a[3]))
			return -1;
		break;
#ifdef SYS_renameat2
	case SYS_renameat2:
		if (fault_path2(FC_RENAME, "renameat2", (int)a[0],
				(const char *)a[1], (int)a[2],
				(const char *)a[3]))
			return -1;
		break;
#endif
#ifdef SYS_renameat
	case SYS_renameat:
		if (fault_path2(FC_RENAME, "renameat", (int)a[0],
				(const char *)a[1], (int)a[2],
				(const char *)a[3]))
			return -1;
		break;
#endif
	case SYS_unlinkat:
		if (fault_path(FC_UNLINK, "unlinkat", (int)a[0],
			       (const char *)a[1]))
			return -1;
		break;
	case SYS_mkdirat:
		if (fault_path(FC_MKDIR, "mkdirat", (int)a[0],
			       (const char *)a[1]))
			return -1;
		break;
	case SYS_fsync:
	case SYS_fdatasync:
		if (fault_fd(FC_FSYNC, "fsync", (int)a[0]))
			return -1;
		break;
	case SYS_close:
		untrack((int)a[0]);
		break;
	}
	long r = raw_syscall(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
	if (opens == 1)
		track(r, (int)a[0], (const char *)a[1]);
	else if (opens == 2)
		track(r, AT_FDCWD, (const char *)a[0]);
	return r;
}

int inotify_init1(int flags)
{
	REAL(inotify_init1);
	if (counted(FC_INOTIFY) && fire(FC_INOTIFY, "inotify_init1", ""))
		return -1;
	return real_inotify_init1(flags);
}
