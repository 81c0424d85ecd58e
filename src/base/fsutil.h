/*
 * fsutil.h — system calls made safe for a shared store: EINTR retried,
 * short reads/writes completed, opens confined to the store without
 * following symlinks, fsync policy, temp names, directory fan-out.
 *
 * Depends on nothing but err.h. Functions return 0 or -1 with errno set,
 * like the syscalls they wrap; callers turn errno into a LARDER_E* code
 * and a message naming the path.
 */
#ifndef LARDER_FSUTIL_H
#define LARDER_FSUTIL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Open `rel` beneath directory fd `dirfd` following no symlink in any
 * component (openat2 RESOLVE_NO_SYMLINKS|RESOLVE_BENEATH; on kernels
 * without openat2, one component at a time with O_NOFOLLOW). A symlink
 * on the way, "..", or an absolute path fails with ELOOP. O_CLOEXEC is
 * always added. */
int ldr_open_beneath(int dirfd, const char *rel, int flags, mode_t mode);

/* Tests only: behave as on a kernel without openat2 from now on. */
void ldr_test_no_openat2(void);

/* Create every missing directory of `rel` (a relative path, all of it a
 * directory) beneath dirfd with `mode` (chmod'ed so umask cannot narrow a
 * group-shared store). Existing directories are fine. No symlink on the
 * way is followed (ELOOP). */
int ldr_mkdirs(int dirfd, const char *rel, mode_t mode);

/* mkdirat of one name in dirfd, then the exact mode: umask may have
 * narrowed it, and a shared store needs exactly the store's bits (and
 * setgid). */
int ldr_mkdir_one(int dirfd, const char *name, mode_t mode);

/* Read exactly len bytes at off; returns bytes read (< len only at EOF) or
 * -1. */
ssize_t ldr_pread_full(int fd, void *buf, size_t len, off_t off);
/* Write exactly len bytes at off, or -1. */
int ldr_pwrite_full(int fd, const void *buf, size_t len, off_t off);
/* Write two buffers at off (header + payload in one syscall when small). */
int ldr_pwrite2(int fd, const void *a, size_t alen, const void *b, size_t blen,
		off_t off);

/* fsync / fdatasync retrying EINTR. */
int ldr_fdatasync(int fd);
int ldr_fsync(int fd);

/* Close, ignoring EINTR (the fd is gone either way on Linux). */
void ldr_close(int fd);

/* A temp file name ".tmp.<host>.<pid>.<16 hex random>" into buf. */
void ldr_temp_name(char *buf, size_t len, const char *host);

/* Fill buf with random bytes (getrandom, falling back to time^pid mixing:
 * temp names need uniqueness, not secrecy). */
void ldr_random(void *buf, size_t len);

/* Lower-case hex of len bytes into out (2*len+1 bytes). */
void ldr_hex(const uint8_t *in, size_t len, char *out);
/* The reverse for the 2*len lower-case hex digits at in (the names
 * larder gives files): 0, or -1 at the first other character. */
int ldr_unhex(const char *in, size_t len, uint8_t *out);

/* Whether fd is on a network filesystem (NFS, FUSE, CephFS, Lustre, CIFS,
 * ...): other clients' changes are invisible to inotify there, and a file
 * another client removes cannot be read back into a mapping. Unknown
 * counts as network. */
int ldr_is_network_fs(int fd);

/* Read a small text file (/proc) whole into buf, NUL-terminated: the
 * bytes read, or -1 with errno (buf then ""; at most size - 1 bytes). */
ssize_t ldr_read_text(const char *path, char *buf, size_t size);

#endif
