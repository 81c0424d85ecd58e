/*
 * head.c — owns head hints, every step of them: the file format, reading
 * (for a get without a version, and the walk), writing (after a publish)
 * and dropping (with the entry it names). A hint is only a hint: one that
 * fails any check is as good as none, and the entry is the truth.
 *
 * Layout: DIR/ns/<ns>/h/<h0h1>/<h2h3>/<hex32>, named by H(ns, key);
 * magic(8) format(4) vlen(4) version XXH3-128(16) over all before it.
 */
#include "head.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "file.h"
#include "naming.h"
#include "fsutil.h"
#include "hash.h"
#include "quarantine.h"

#define LDR_HEAD_MAGIC "\x89LDRHEAD"

/* A head that cannot be written is a failed write, as an entry's is. */
static int head_fail(larder *db, int e, const char *what, const char *rel)
{
	ldr_count(db, LARDER_CTR_WRITE_FAILURES);
	return ldr_fail_errno(db, e, "cannot %s '%s/%s': %s", what, db->dir,
			      rel, strerror(e));
}

/* ---- Reading a head from disk ----------------------------------------
 * open + one pread + close: a head is 32 bytes and a version, and the
 * read asks one byte more than the buffer's worth so that a longer file
 * shows as one (never loaded whole: a file planted at a head's name may
 * claim any size). An fstat only when the caller wants the identity. */

/* Versions up to this long are read in the first pread (a stack buffer);
 * a longer one takes a second, sized by the header. */
#define HEAD_FIRST 480

/* Parse a head's bytes: 0 and the version malloc'ed, or LARDER_ENOTFOUND. */
static int head_parse(const uint8_t *p, size_t len, uint8_t **ver, size_t *vlen)
{
	uint8_t sum[16];
	if (len < 32 || memcmp(p, LDR_HEAD_MAGIC, 8) != 0)
		return LARDER_ENOTFOUND;
	uint32_t format = (uint32_t)p[8] | (uint32_t)p[9] << 8 |
			  (uint32_t)p[10] << 16 | (uint32_t)p[11] << 24;
	uint32_t n = (uint32_t)p[12] | (uint32_t)p[13] << 8 |
		     (uint32_t)p[14] << 16 | (uint32_t)p[15] << 24;
	if (format != 1 || n > LDR_MAX_VER || len != 32 + (size_t)n)
		return LARDER_ENOTFOUND;
	ldr_xxh128(p, 16 + (size_t)n, sum);
	if (memcmp(sum, p + 16 + n, 16) != 0 || !(*ver = malloc(n ? n : 1)))
		return LARDER_ENOTFOUND;
	memcpy(*ver, p + 16, n);
	*vlen = n;
	return 0;
}

/* The head file at rel, open at fd: its version, and with id its
 * identity. */
static int head_from_fd(int fd, uint8_t **ver, size_t *vlen, struct stat *id)
{
	uint8_t first[32 + HEAD_FIRST + 1], *big = NULL;
	const uint8_t *p = first;
	/* One pread, not a loop to EOF: a second call only to see EOF would
	 * cost a first lookup a fifth of its time. */
	ssize_t n;
	do
		n = pread(fd, first, sizeof first, 0);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return LARDER_ENOTFOUND; /* a FIFO, a directory: no head */
	if (n >= 16) {
		uint32_t want = (uint32_t)first[12] | (uint32_t)first[13] << 8 |
				(uint32_t)first[14] << 16 |
				(uint32_t)first[15] << 24;
		size_t total = 32 + (size_t)(want <= LDR_MAX_VER ? want : 0);
		if (want > LDR_MAX_VER)
			return LARDER_ENOTFOUND;
		if (total + 1 > sizeof first) {
			if (!(big = malloc(total + 1)))
				return LARDER_ENOTFOUND;
			n = ldr_pread_full(fd, big, total + 1, 0);
			p = big;
		} else if ((size_t)n < total) {
			/* A short read (a network filesystem may): the rest,
			 * and a byte more to see a longer file. */
			ssize_t m = ldr_pread_full(fd, first + n,
						   total + 1 - (size_t)n, n);
			n = m < 0 ? -1 : n + m;
		}
	}
	int rc = n < 0 ? LARDER_ENOTFOUND : head_parse(p, (size_t)n, ver, vlen);
	free(big);
	if (rc == 0 && id && (fstat(fd, id) != 0 || !S_ISREG(id->st_mode))) {
		free(*ver);
		*ver = NULL;
		*vlen = 0;
		rc = LARDER_ENOTFOUND;
	}
	return rc;
}

static int head_load(larder *db, const char *rel, int noatime, uint8_t **ver,
		     size_t *vlen, struct stat *id)
{
	*ver = NULL;
	*vlen = 0;
	/* O_NONBLOCK: a FIFO planted at the name must not hang the reader;
	 * O_NOCTTY: nor may a terminal become ours. O_NOATIME needs the
	 * file's owner: without it, open as anyone may. */
	const int fl = O_RDONLY | O_NONBLOCK | O_NOCTTY;
	int fd = -1;
	for (int attempt = 0; attempt < 2 && fd < 0; attempt++) {
		fd = ldr_open_beneath(db->rootfd, rel,
				      fl | (noatime ? O_NOATIME : 0), 0);
		if (fd < 0 && noatime && errno == EPERM)
			fd = ldr_open_beneath(db->rootfd, rel, fl, 0);
		if (fd >= 0)
			break;
		if (errno == ESTALE) {
			/* A network filesystem replaced its handle: look
			 * once more. */
			ldr_count(db, LARDER_CTR_ESTALE_RETRIES);
			continue;
		}
		if (errno == ENOENT)
			return LARDER_ENOTFOUND;
		/* Anything but a regular file at the name (a symlink, a
		 * socket) is no head; a regular one we may not open is a
		 * real failure. */
		int e = errno;
		struct stat st;
		if (ldr_lstat(db, rel, &st) == 0 && !S_ISREG(st.st_mode)) {
			ldr_log(db, LARDER_LOG_DEBUG,
				"ignoring unreadable head '%s/%s'", db->dir,
				rel);
			return LARDER_ENOTFOUND;
		}
		return ldr_fail_errno(db, e, "cannot read '%s/%s': %s", db->dir,
				      rel, strerror(e));
	}
	if (fd < 0)
		return LARDER_ENOTFOUND;
	int rc = head_from_fd(fd, ver, vlen, id);
	ldr_close(fd);
	if (rc)
		ldr_log(db, LARDER_LOG_DEBUG,
			"ignoring unreadable head '%s/%s'", db->dir, rel);
	return rc;
}

static void head_rel(const char *ns, const void *key, size_t klen,
		     uint8_t hash[16], char rel[LDR_REL_MAX])
{
	char hex[33];
	ldr_head_hash(ns, key, klen, hash);
	ldr_hex(hash, 16, hex);
	ldr_file_rel(rel, ns, 'h', hex);
}

int ldr_head_read(larder *db, const char *ns, const void *key, size_t klen,
		  uint8_t **ver, size_t *vlen)
{
	uint8_t hash[16];
	char rel[LDR_REL_MAX];
	head_rel(ns, key, klen, hash, rel);
	return head_load(db, rel, 0, ver, vlen, NULL);
}

int ldr_head_read_ident(larder *db, const char *ns, const void *key,
			size_t klen, uint8_t **ver, size_t *vlen,
			struct stat *id)
{
	uint8_t hash[16];
	char rel[LDR_REL_MAX];
	head_rel(ns, key, klen, hash, rel);
	return head_load(db, rel, id != NULL, ver, vlen, id);
}

int ldr_head_write(larder *db, const char *ns, const void *key, size_t klen,
		   const void *ver, size_t vlen)
{
	uint8_t hash[16];
	char hex[33], dir[LDR_REL_MAX], name[128];
	ldr_head_hash(ns, key, klen, hash);
	ldr_hex(hash, 16, hex);
	ldr_dir_rel(dir, ns, 'h', hex);

	size_t n = 32 + vlen;
	uint8_t *b = malloc(n);
	if (!b)
		return ldr_fail(db, LARDER_ENOMEM, ENOMEM, "out of memory");
	memcpy(b, LDR_HEAD_MAGIC, 8);
	for (int i = 0; i < 4; i++) {
		b[8 + i] = (uint8_t)(1u >> (8 * i));
		b[12 + i] = (uint8_t)((uint32_t)vlen >> (8 * i));
	}
	if (vlen)
		memcpy(b + 16, ver, vlen);
	ldr_xxh128(b, 16 + vlen, b + 16 + vlen);

	int rc = 0, fd = -1;
	int dfd = ldr_open_dir(db, dir);
	if (dfd < 0) {
		rc = head_fail(db, errno, "open directory", dir);
		goto out;
	}
	ldr_temp_name(name, sizeof name, db->host);
	fd = ldr_open_beneath(dfd, name, O_WRONLY | O_CREAT | O_EXCL,
			      db->romode);
	if (fd < 0) {
		rc = head_fail(db, errno, "create head temp in", dir);
		goto out;
	}
	if (fchmod(fd, db->romode) != 0 || ldr_pwrite_full(fd, b, n, 0) != 0 ||
	    (db->fsync == LARDER_FSYNC_FULL && ldr_fdatasync(fd) != 0)) {
		rc = head_fail(db, errno, "write head temp in", dir);
		goto out;
	}
	/* The head is a hint, replaced whole: rename over is fine here (a
	 * reader meeting ESTALE just looks again or misses). A directory
	 * planted at its name would refuse that for good: it goes to
	 * quarantine/ like any other non-entry, and the rename is tried
	 * once more. */
	int r = renameat(dfd, name, dfd, hex);
	if (r != 0 &&
	    (errno == EISDIR || errno == ENOTEMPTY || errno == EEXIST)) {
		struct stat st;
		char rel[LDR_REL_MAX + 40];
		snprintf(rel, sizeof rel, "%s/%s", dir, hex);
		if (fstatat(dfd, hex, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		    !S_ISREG(st.st_mode))
			ldr_quarantine(db, rel, st.st_dev, st.st_ino,
				       "a directory, not a head hint");
		r = renameat(dfd, name, dfd, hex);
	}
	if (r != 0) {
		rc = head_fail(db, errno, "rename head into", dir);
		goto out;
	}
	name[0] = '\0';
out:
	if (fd >= 0)
		ldr_close(fd);
	if (rc && dfd >= 0 && name[0])
		unlinkat(dfd, name, 0);
	ldr_close(dfd);
	free(b);
	return rc;
}

int ldr_head_drop(larder *db, const char *ns, const void *key, size_t klen,
		  const void *ver, size_t vlen)
{
	uint8_t *hv = NULL, hash[16];
	size_t hl = 0;
	struct stat st;
	char hex[33], rel[LDR_REL_MAX];
	if (ldr_head_read_ident(db, ns, key, klen, &hv, &hl, &st) != 0)
		return 0;
	int same = hl == vlen && (!vlen || !memcmp(hv, ver, vlen));
	free(hv);
	if (!same)
		return 0;
	ldr_head_hash(ns, key, klen, hash);
	ldr_hex(hash, 16, hex);
	ldr_file_rel(rel, ns, 'h', hex);
	return ldr_remove_same_by_us(db, rel, st.st_dev, st.st_ino) == 1;
}
