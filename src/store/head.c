/*
 * head.c — owns head hints, every step of them: the file format, reading
 * (for a get without a version, and the walk), writing (after a publish)
 * and dropping (with the entry it names). A hint is only a hint: one that
 * fails any check is as good as none, and the entry is the truth.
 *
 * Layout: DIR/ns/<ns>/h/<h0h1>/<h2h3>/<hex32>, named by H(ns, key). A
 * head is a hard link to the newest entry (docs/format.md "Head hint"),
 * so that a version-less lookup opens one file; or, where the filesystem
 * has no hard links (and as 0.2 wrote it), a hint file: magic(8)
 * format(4) vlen(4) version XXH3-128(16) over all before it.
 */
#include "head.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "clock.h"
#include "file.h"
#include "fsutil.h"
#include "hash.h"
#include "lru.h"
#include "memo.h"
#include "naming.h"
#include "quarantine.h"
#include "stats.h"

#define LDR_HEAD_MAGIC "\x89LDRHEAD"

static void hc_forget(larder *db, const uint8_t hash[16]);

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

/* A head that is a hard link to the key's newest entry (docs/format.md
 * "Head hint"): the version its header names, the first n bytes of the
 * file at p. Only the header is read (never the payload: the walk and the
 * cleaning want the version, and a reader checks the entry itself), and
 * it must name (ns, key): a link to anything else is no head. */
static int link_version(int fd, const uint8_t *p, size_t n, const char *ns,
			const void *key, size_t klen, uint8_t **ver,
			size_t *vlen)
{
	uint32_t need;
	uint8_t *big = NULL;
	if (ldr_hdr_need(p, n, &need) != 0)
		return LARDER_ENOTFOUND; /* damaged, or of a newer format */
	if (need > n) {
		if (!(big = malloc(need)) ||
		    ldr_pread_full(fd, big, need, 0) != (ssize_t)need) {
			free(big);
			return LARDER_ENOTFOUND;
		}
		p = big;
		n = need;
	}
	ldr_hdr h;
	int rc = LARDER_ENOTFOUND;
	if (ldr_hdr_decode(&h, p, n, NULL) == 0 && h.ns_len == strlen(ns) &&
	    memcmp(h.ns, ns, h.ns_len) == 0 && h.key_len == klen &&
	    (!klen || memcmp(h.key, key, klen) == 0) &&
	    (*ver = malloc(h.ver_len ? h.ver_len : 1)) != NULL) {
		memcpy(*ver, h.ver, h.ver_len);
		*vlen = h.ver_len;
		rc = 0;
	}
	free(big);
	return rc;
}

/* The head file of (ns, key), open at fd: its version, and with id its
 * identity. */
static int head_from_fd(int fd, const char *ns, const void *key, size_t klen,
			uint8_t **ver, size_t *vlen, struct stat *id,
			int *linked)
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
	if (n >= LDR_MAGIC_LEN &&
	    memcmp(first, LDR_MAGIC, LDR_MAGIC_LEN) == 0) {
		*linked = 1;
		int rc = link_version(fd, first, (size_t)n, ns, key, klen, ver,
				      vlen);
		if (rc == 0 && id &&
		    (fstat(fd, id) != 0 || !S_ISREG(id->st_mode))) {
			free(*ver);
			*ver = NULL;
			*vlen = 0;
			rc = LARDER_ENOTFOUND;
		}
		return rc;
	}
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

static int head_load_kind(larder *db, const char *rel, const char *ns,
			  const void *key, size_t klen, int noatime,
			  uint8_t **ver, size_t *vlen, struct stat *id,
			  int *linked)
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
	int rc = head_from_fd(fd, ns, key, klen, ver, vlen, id, linked);
	ldr_close(fd);
	if (rc)
		ldr_log(db, LARDER_LOG_DEBUG,
			"ignoring unreadable head '%s/%s'", db->dir, rel);
	return rc;
}

static int head_load(larder *db, const char *rel, const char *ns,
		     const void *key, size_t klen, int noatime, uint8_t **ver,
		     size_t *vlen, struct stat *id)
{
	int linked = 0;
	return head_load_kind(db, rel, ns, key, klen, noatime, ver, vlen, id,
			      &linked);
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
	/* Looking is not using: a head that links an entry shares its
	 * access time, which the cleaning goes by. */
	return head_load(db, rel, ns, key, klen, 1, ver, vlen, NULL);
}

int ldr_head_read_ident(larder *db, const char *ns, const void *key,
			size_t klen, uint8_t **ver, size_t *vlen,
			struct stat *id)
{
	uint8_t hash[16];
	char rel[LDR_REL_MAX];
	head_rel(ns, key, klen, hash, rel);
	return head_load(db, rel, ns, key, klen, 1, ver, vlen, id);
}

/* Link the published entry (ns, key, ver) to name in the head's
 * directory dfd: 0, or -1 with errno (no hard links here, or the entry is
 * gone already). Across directories, unlike an entry's own link: a
 * filesystem that refuses that gives a hint of the old format instead. */
static int head_link(larder *db, const char *ns, const void *key, size_t klen,
		     const void *ver, size_t vlen, int dfd, const char *name)
{
	uint8_t h[16];
	char hex[33], rel[LDR_REL_MAX];
	const char *base;
	ldr_entry_hash(ns, key, klen, ver, vlen, h);
	ldr_hex(h, 16, hex);
	ldr_file_rel(rel, ns, 'e', hex);
	int edfd = ldr_open_parent(db, rel, &base);
	if (edfd < 0)
		return -1;
	/* Never AT_SYMLINK_FOLLOW: whatever is at the entry's name is linked
	 * as it is, and a reader judges it as an entry. */
	int rc = linkat(edfd, base, dfd, name, 0);
	int e = errno;
	ldr_close(edfd);
	errno = e;
	return rc;
}

/* One try of copy_source at rel: 0, or -1 with *stale set when it was
 * ESTALE that failed it. */
static int copy_once(larder *db, const char *rel, uint8_t **out, size_t *len,
		     int *stale)
{
	*stale = 0;
	int fd = ldr_open_beneath(db->rootfd, rel,
				  O_RDONLY | O_NONBLOCK | O_NOCTTY, 0);
	if (fd < 0) {
		*stale = errno == ESTALE;
		return -1;
	}
	struct stat st;
	uint8_t *b = NULL;
	int rc = -1;
	errno = 0;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) ||
	    st.st_size < LDR_MAGIC_LEN || st.st_size > LDR_HEAD_COPY_MAX ||
	    !(b = malloc((size_t)st.st_size)))
		goto out;
	/* A byte more than the size: a file that grew is no entry. */
	uint8_t extra;
	ssize_t n = ldr_pread_full(fd, b, (size_t)st.st_size, 0);
	if (n != (ssize_t)st.st_size || memcmp(b, LDR_MAGIC, LDR_MAGIC_LEN) ||
	    pread(fd, &extra, 1, st.st_size) != 0)
		goto out;
	*out = b;
	*len = (size_t)st.st_size;
	b = NULL;
	rc = 0;
out:
	if (rc)
		*stale = errno == ESTALE;
	free(b);
	ldr_close(fd);
	return rc;
}

/* ESTALE is a network filesystem catching up with a rename of another
 * client's (the entry's directory, a head over it): the name is opened
 * again, a few times, before the head falls back to a hint file. */
#define COPY_TRIES 4

/* The entry file of (ns, key, ver), read whole into *out (malloc'ed,
 * *len bytes) for a copied head: 0, or -1 when it is larger than
 * LDR_HEAD_COPY_MAX, not an entry's regular file, or unreadable (then
 * the head is a hint file). What is read is not verified here: a reader
 * judges the copy as the entry itself. */
static int copy_source(larder *db, const char *ns, const void *key, size_t klen,
		       const void *ver, size_t vlen, uint8_t **out, size_t *len)
{
	uint8_t h[16];
	char hex[33], rel[LDR_REL_MAX];
	ldr_entry_hash(ns, key, klen, ver, vlen, h);
	ldr_hex(h, 16, hex);
	ldr_file_rel(rel, ns, 'e', hex);
	int stale = 0;
	for (int i = 0; i < COPY_TRIES; i++) {
		if (copy_once(db, rel, out, len, &stale) == 0)
			return 0;
		if (!stale)
			return -1;
		ldr_count(db, LARDER_CTR_ESTALE_RETRIES);
	}
	return -1;
}

/* The bytes of the head at name in dfd if it is a copy of an entry (one
 * name, the entry's magic), else 0: what replacing or removing it takes
 * from the usage. */
static int64_t copy_bytes(int dfd, const char *name)
{
	struct stat st;
	uint8_t m[LDR_MAGIC_LEN];
	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0 ||
	    !S_ISREG(st.st_mode) || st.st_nlink != 1 ||
	    st.st_size > LDR_HEAD_COPY_MAX || st.st_size < LDR_MAGIC_LEN)
		return 0;
	int fd =
	    ldr_open_beneath(dfd, name, O_RDONLY | O_NONBLOCK | O_NOCTTY, 0);
	if (fd < 0)
		return 0;
	int copy = ldr_pread_full(fd, m, sizeof m, 0) == (ssize_t)sizeof m &&
		   memcmp(m, LDR_MAGIC, LDR_MAGIC_LEN) == 0;
	ldr_close(fd);
	return copy ? (int64_t)st.st_size : 0;
}

int64_t ldr_head_copy_bytes(larder *db, const char *rel)
{
	const char *base;
	int dfd = ldr_open_parent(db, rel, &base);
	if (dfd < 0)
		return 0;
	int64_t n = copy_bytes(dfd, base);
	ldr_close(dfd);
	return n;
}

enum { HEAD_HINT, HEAD_LINK, HEAD_COPY };

/* Write the head of (ns, key) naming ver as `as` says: a hard link to
 * the entry, a copy of it, or a hint file; a link or a copy that cannot
 * be made gives a hint file. */
static int head_write(larder *db, const char *ns, const void *key, size_t klen,
		      const void *ver, size_t vlen, int as)
{
	uint8_t hash[16];
	char hex[33], dir[LDR_REL_MAX], name[128];
	ldr_head_hash(ns, key, klen, hash);
	ldr_hex(hash, 16, hex);
	ldr_dir_rel(dir, ns, 'h', hex);

	size_t n = 32 + vlen;
	uint8_t *b = NULL;
	int rc = 0, fd = -1, linked = 0;
	int64_t copied = 0;
	name[0] = '\0';
	int dfd = ldr_open_dir(db, dir);
	if (dfd < 0) {
		rc = head_fail(db, errno, "open directory", dir);
		goto out;
	}
	ldr_temp_name(name, sizeof name, db->host);
	if (as == HEAD_LINK &&
	    head_link(db, ns, key, klen, ver, vlen, dfd, name) == 0) {
		/* A reader takes a head whose file has one name left for an
		 * entry removed under it: a filesystem that does not count
		 * links gets a hint file instead. */
		struct stat st;
		linked = 1;
		if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		    S_ISREG(st.st_mode) && st.st_nlink >= 2)
			goto publish;
		linked = 0;
		if (unlinkat(dfd, name, 0) != 0) {
			rc = head_fail(db, errno, "remove head temp in", dir);
			goto out;
		}
	}
	if (as == HEAD_COPY &&
	    copy_source(db, ns, key, klen, ver, vlen, &b, &n) == 0) {
		copied = (int64_t)n;
	} else {
		n = 32 + vlen;
		if (!(b = malloc(n))) {
			name[0] = '\0';
			rc = ldr_fail(db, LARDER_ENOMEM, ENOMEM,
				      "out of memory");
			goto out;
		}
		memcpy(b, LDR_HEAD_MAGIC, 8);
		for (int i = 0; i < 4; i++) {
			b[8 + i] = (uint8_t)(1u >> (8 * i));
			b[12 + i] = (uint8_t)((uint32_t)vlen >> (8 * i));
		}
		if (vlen)
			memcpy(b + 16, ver, vlen);
		ldr_xxh128(b, 16 + vlen, b + 16 + vlen);
	}
	fd = ldr_open_beneath(dfd, name, O_WRONLY | O_CREAT | O_EXCL,
			      db->romode);
	if (fd < 0) {
		name[0] = '\0';
		rc = head_fail(db, errno, "create head temp in", dir);
		goto out;
	}
	if (fchmod(fd, db->romode) != 0 || ldr_pwrite_full(fd, b, n, 0) != 0 ||
	    (db->fsync == LARDER_FSYNC_FULL && ldr_fdatasync(fd) != 0)) {
		rc = head_fail(db, errno, "write head temp in", dir);
		goto out;
	}
	/* close() is where a network filesystem reports a deferred write
	 * error: a copy must be whole before it is the head. */
	int cfd = fd;
	fd = -1;
	if (close(cfd) != 0 && errno != EINTR) {
		rc = head_fail(db, errno, "close head temp in", dir);
		goto out;
	}
publish:;
	/* A copy replaced (by this head or another) leaves the usage: its
	 * bytes, looked at before the rename. Two writers replacing one
	 * copy at once both take it off; the cleaning's recount mends
	 * that (docs/format.md "Head hint"). */
	int64_t old = copy_bytes(dfd, hex);
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
	/* Renaming a link over another name of the same file (the head
	 * already links this entry) succeeds and does nothing: the temp
	 * name must go by hand (ENOENT otherwise). */
	if (linked && unlinkat(dfd, name, 0) != 0 && errno != ENOENT)
		/* The head is in place; the sweep removes a stale temp. */
		ldr_log(db, LARDER_LOG_WARN, "cannot remove '%s/%s/%s': %s",
			db->dir, dir, name, strerror(errno));
	name[0] = '\0';
	/* A copy is a file in the store: its bytes count (not as an
	 * entry), as the cleaning's recount counts them. */
	if (copied != old)
		ldr_usage_add(db, ns, copied - old, 0);
	hc_forget(db, hash); /* read again: this handle sees its own write */
out:
	if (fd >= 0)
		ldr_close(fd);
	if (rc && dfd >= 0 && name[0])
		unlinkat(dfd, name, 0);
	if (dfd >= 0)
		ldr_close(dfd);
	free(b);
	return rc;
}

int ldr_head_write(larder *db, const char *ns, const void *key, size_t klen,
		   const void *ver, size_t vlen)
{
	/* Not links on a network filesystem: two clients renaming links of
	 * one entry over one head at once left the name in split-brain on
	 * a replicated GlusterFS volume, EIO for every reader until healed
	 * (docs/format.md "Head hint"). A file written under a temp name
	 * and renamed over did not: a copy of a small entry, so that one
	 * open serves a version-less lookup there too. */
	if (!db->network)
		return head_write(db, ns, key, klen, ver, vlen, HEAD_LINK);
	/* Every client that publishes a version (LARDER_EXISTS too) points
	 * the head at it: on a network filesystem a head that names it
	 * already is left alone, so that writers racing on one version do
	 * not all rename over one name at once. (A look costs a round trip;
	 * a rename a few, and each one is a chance for the replicas to
	 * disagree: docs/format.md "Head hint".) */
	uint8_t *hv = NULL;
	size_t hl = 0;
	if (ldr_head_read(db, ns, key, klen, &hv, &hl) == 0) {
		int same = hl == vlen && (!vlen || !memcmp(hv, ver, vlen));
		free(hv);
		if (same)
			return 0;
	}
	return head_write(db, ns, key, klen, ver, vlen, HEAD_COPY);
}

int ldr_head_write_hint(larder *db, const char *ns, const void *key,
			size_t klen, const void *ver, size_t vlen)
{
	return head_write(db, ns, key, klen, ver, vlen, HEAD_HINT);
}

int ldr_head_drop(larder *db, const char *ns, const void *key, size_t klen,
		  const void *ver, size_t vlen)
{
	return ldr_head_drop_entry(db, ns, key, klen, ver, vlen, 0, 0, NULL);
}

int ldr_head_drop_file(larder *db, const char *ns, const void *key, size_t klen,
		       dev_t dev, ino_t ino)
{
	return ldr_head_drop_entry(db, ns, key, klen, NULL, 0, dev, ino, NULL);
}

int ldr_head_drop_entry(larder *db, const char *ns, const void *key,
			size_t klen, const void *ver, size_t vlen, dev_t dev,
			ino_t ino, int64_t *freed)
{
	uint8_t hash[16], *hv = NULL;
	size_t hl = 0;
	char rel[LDR_REL_MAX];
	struct stat st;
	int linked = 0, r = 0;
	if (freed)
		*freed = 0;
	head_rel(ns, key, klen, hash, rel);
	/* The same file first, by identity alone: a damaged entry's header
	 * may not even name its version. */
	if (ino != 0 && (r = ldr_remove_same_by_us(db, rel, dev, ino)) == 1)
		goto removed;
	if (r < 0 && errno != ENOENT)
		goto failed;
	/* Else a copy of it, or a hint, naming its version: a copy is
	 * another file, so it is known by what it names (docs/format.md
	 * "Head hint"); (ns, key) and the version are the entry's name, and
	 * every file published under one name holds the same bytes. */
	if (!ver || head_load_kind(db, rel, ns, key, klen, 1, &hv, &hl, &st,
				   &linked) != 0)
		return 0;
	int same = hl == vlen && (!vlen || !memcmp(hv, ver, vlen));
	free(hv);
	if (!same)
		return 0;
	/* A linked head of an entry already unlinked has one name too: a
	 * copy is told by the entry's file, which the caller names. */
	int64_t bytes =
	    linked && ino != 0 && !(st.st_dev == dev && st.st_ino == ino)
		? (int64_t)st.st_size
		: 0;
	r = ldr_remove_same_by_us(db, rel, st.st_dev, st.st_ino);
	if (r < 0)
		goto failed;
	if (r != 1)
		return 0;
	if (bytes) {
		ldr_usage_add(db, ns, -bytes, 0);
		if (freed)
			*freed = bytes;
	}
removed:
	hc_forget(db, hash);
	return 1;
failed:
	ldr_log(db, LARDER_LOG_WARN,
		"cannot remove head '%s/%s' of a leaving entry: %s", db->dir,
		rel, strerror(errno));
	return 0;
}

/* ---- The head cache -------------------------------------------------
 * A handle remembers the heads it read: (ns, key) -> the version and the
 * head file's identity (dev, ino, size, mtime, ctime; a head is replaced
 * by rename, so every new head is a new file). A repeat version-less
 * lookup takes the version from memory for check_ms (the memo's check
 * interval), then looks at the head's identity again (one stat) and
 * reads it only when it changed. So a head another process (or handle)
 * published is seen after at most check_ms. This handle's own writes and
 * drops forget the record at once. What it keeps honest, as the memo of
 * entries does (memo.c):
 *  - a head is remembered at its second read, not its first: a first
 *    lookup keeps nothing and costs no fstat;
 *  - a head changed within 2 s of its read (a replacement in the same
 *    timestamp tick, with a reused inode of the same size, would not
 *    show) is read again at its check instead of judged by its identity;
 *  - bounded (memo_entries records, least recently used first);
 *  - one mutex per handle, never held across a system call;
 *  - emptied in a forked child (pthread_atfork);
 *  - off with LARDER_OPEN_VERIFY_ALWAYS: every lookup reads the head.
 * The table, its bound, lock, clock and fork handling are lru.c's, as
 * the memo's are.
 * It only ever names a version: the entry is still looked up (memo or
 * file) and verified, so a stale head costs a miss or an older version,
 * never bytes that were not published. */

#define SEEN_SLOTS 1024

struct hrec {
	struct ldr_lru_node node; /* first; its hash is H(ns, key) */
	uint8_t *ver;		  /* one allocation: ver, ns, key */
	const uint8_t *ns, *key;
	size_t vlen, nslen, klen;
	struct ldr_lru_ident id;
	int64_t checked_ms;
	int copy; /* the head is a copy of the entry: its check is the
		   * memo's too (head_get) */
	/* The entry's name, H(ns, key, ver): a lookup served from here
	 * hashes no name again (it was ~13% of a repeat one). */
	uint8_t ehash[16];
};

struct ldr_heads {
	struct ldr_lru t;
	int64_t check_ms;
	/* Bumped by every forget: a read that began before one does not
	 * put what it read (it may be the head just replaced). */
	uint64_t gen;
};

static void hc_free(struct hrec *r)
{
	if (r) {
		free(r->ver);
		free(r);
	}
}

static void hc_release(struct ldr_lru_node *n)
{
	hc_free((struct hrec *)n);
}

/* A child reads heads from disk again rather than trust its parent's:
 * the table emptied, it forgets what it saw once too. */
static void hc_forked(struct ldr_lru *t)
{
	struct ldr_heads *c = (struct ldr_heads *)t;
	memset(t->seen, 0, t->nseen * sizeof *t->seen);
	c->gen++;
}

static struct hrec *hc_find(struct ldr_heads *c, const uint8_t hash[16])
{
	return (struct hrec *)ldr_lru_find(&c->t, hash);
}

void ldr_head_cache_open(larder *db, const larder_opts *o)
{
	db->heads = NULL;
	if (db->flags & LARDER_OPEN_VERIFY_ALWAYS)
		return;
	struct ldr_memo_cfg cfg;
	ldr_memo_cfg(o, &cfg);
	struct ldr_heads *c = calloc(1, sizeof *c);
	if (!c || ldr_lru_init(&c->t, cfg.entries, UINT64_MAX, SEEN_SLOTS,
			       hc_release, hc_forked) != 0) {
		/* Without it every version-less lookup reads its head. */
		free(c);
		return;
	}
	c->check_ms = cfg.check_ms;
	db->heads = c;
}

void ldr_head_cache_close(larder *db)
{
	struct ldr_heads *c = db->heads;
	if (!c)
		return;
	ldr_lru_fini(&c->t);
	free(c);
	db->heads = NULL;
}

/* Forget the head named hash: this handle replaced or removed it. */
static void hc_forget(larder *db, const uint8_t hash[16])
{
	struct ldr_heads *c = db->heads;
	if (!c)
		return;
	struct hrec *r;
	pthread_mutex_lock(&c->t.mu);
	c->gen++;
	if ((r = hc_find(c, hash)) != NULL)
		ldr_lru_remove(&c->t, &r->node);
	pthread_mutex_unlock(&c->t.mu);
	hc_free(r);
}

/* Under c->t.mu: the version of r, copied. */
static int hc_copy(const struct hrec *r, uint8_t **ver, size_t *vlen)
{
	if (!(*ver = malloc(r->vlen ? r->vlen : 1)))
		return -1;
	memcpy(*ver, r->ver, r->vlen);
	*vlen = r->vlen;
	return 0;
}

/* Remember what a read found (st: the head file's identity). */
static void hc_put(larder *db, const uint8_t hash[16], const char *ns,
		   const void *key, size_t klen, const uint8_t *ver,
		   size_t vlen, const struct stat *st, int copy, uint64_t gen)
{
	struct ldr_heads *c = db->heads;
	size_t nslen = strlen(ns);
	struct hrec *r = calloc(1, sizeof *r);
	uint8_t *b = malloc(vlen + nslen + klen + 1);
	if (!r || !b) {
		free(r);
		free(b);
		return;
	}
	memcpy(r->node.hash, hash, 16);
	if (vlen)
		memcpy(b, ver, vlen);
	memcpy(b + vlen, ns, nslen);
	if (klen)
		memcpy(b + vlen + nslen, key, klen);
	r->ver = b;
	r->vlen = vlen;
	r->ns = b + vlen;
	r->nslen = nslen;
	r->key = b + vlen + nslen;
	r->klen = klen;
	r->copy = copy;
	ldr_entry_hash_n(ns, nslen, key, klen, ver, vlen, r->ehash);
	ldr_lru_ident_take(&c->t, st, &r->id);
	struct hrec *old = NULL, *lru = NULL;
	pthread_mutex_lock(&c->t.mu);
	if (c->gen != gen) {
		/* Forgotten meanwhile: what we read may be the old head. */
		pthread_mutex_unlock(&c->t.mu);
		hc_free(r);
		return;
	}
	r->checked_ms = ldr_lru_ms(&c->t);
	if ((old = hc_find(c, hash)) != NULL)
		ldr_lru_remove(&c->t, &old->node);
	if (ldr_lru_full(&c->t, 0)) {
		lru = (struct hrec *)ldr_lru_oldest(&c->t);
		ldr_lru_remove(&c->t, &lru->node);
	}
	ldr_lru_insert(&c->t, &r->node);
	pthread_mutex_unlock(&c->t.mu);
	hc_free(old);
	hc_free(lru);
}

static int find_load(larder *db, const char *rel, const char *ns,
		     const void *key, size_t klen, struct ldr_head_found *hf,
		     uint8_t **ver, size_t *vlen, struct stat *st, int want_id);

static int head_get(larder *db, const char *ns, const void *key, size_t klen,
		    uint8_t **ver, size_t *vlen, struct ldr_head_found *hf)
{
	uint8_t hash[16];
	char rel[LDR_REL_MAX], hex[33];
	size_t nslen = strlen(ns); /* once, for the name and the cache */
	ldr_head_hash_n(ns, nslen, key, klen, hash);
	*ver = NULL;
	*vlen = 0;
	struct ldr_heads *c = db->heads;
	struct stat st;
	if (!c) {
		ldr_hex(hash, 16, hex);
		ldr_file_rel(rel, ns, 'h', hex);
		return hf ? find_load(db, rel, ns, key, klen, hf, ver, vlen,
				      &st, 0)
			  : head_load(db, rel, ns, key, klen, 0, ver, vlen,
				      NULL);
	}

	int again = 0, check = 0, had = 0, copy = 0;
	struct ldr_lru_ident seen = {0};
	pthread_mutex_lock(&c->t.mu);
	uint64_t gen = c->gen;
	struct hrec *r = hc_find(c, hash);
	if (!r) {
		again = ldr_lru_seen(&c->t, hash);
	} else if (!ldr_same_bytes(r->ns, r->nslen, ns, nslen) ||
		   !ldr_same_bytes(r->key, r->klen, key, klen)) {
		again = 1; /* a 128-bit collision: read, and replace it */
	} else if (ldr_lru_ms(&c->t) - r->checked_ms < c->check_ms) {
		int rc = hc_copy(r, ver, vlen);
		if (rc == 0)
			ldr_lru_touch(&c->t, &r->node);
		if (rc == 0 && hf) {
			memcpy(hf->ehash, r->ehash, sizeof hf->ehash);
			hf->have_ehash = 1;
		}
		pthread_mutex_unlock(&c->t.mu);
		if (rc == 0)
			return 0;
		return ldr_fail(db, LARDER_ENOMEM, ENOMEM, "out of memory");
	} else {
		again = had = 1;
		check = !r->id.racy;
		seen = r->id;
		copy = r->copy;
		if (check && hc_copy(r, ver, vlen) != 0)
			check = 0;
	}
	pthread_mutex_unlock(&c->t.mu);
	/* The file's name, after the cache's look: a repeat lookup served
	 * by it needs none (its hex and path were ~8% of its time). */
	ldr_hex(hash, 16, hex);
	ldr_file_rel(rel, ns, 'h', hex);

	if (check) {
		/* Due for a look: the same file (one stat) is the same head. */
		if (ldr_lstat(db, rel, &st) == 0 &&
		    ldr_lru_ident_same(&seen, &st)) {
			pthread_mutex_lock(&c->t.mu);
			r = hc_find(c, hash);
			if (r && c->gen == gen)
				r->checked_ms = ldr_lru_ms(&c->t);
			pthread_mutex_unlock(&c->t.mu);
			/* A copied head is the file the memo holds the entry
			 * from: this look is the memo's check too, so that a
			 * repeat lookup past the interval costs one stat, not
			 * two (a round trip each on a network filesystem). */
			if (copy) {
				uint8_t eh[16];
				ldr_entry_hash(ns, key, klen, *ver, *vlen, eh);
				ldr_memo_checked(db, eh, rel, &st);
			}
			return 0;
		}
		free(*ver);
		*ver = NULL;
		*vlen = 0;
	}
	memset(&st, 0, sizeof st);
	/* A head read again (seen before, or due for its check) is one the
	 * memo may take the entry from: its bytes kept apart from the
	 * entry handle (read.c), so that a repeat lookup through a copied
	 * head is served from the memo, whose check is then this one's. */
	if (hf && again)
		hf->pre = 0;
	int rc =
	    hf ? find_load(db, rel, ns, key, klen, hf, ver, vlen, &st, again)
	       : head_load(db, rel, ns, key, klen, 0, ver, vlen,
			   again ? &st : NULL);
	if (rc == 0 && again && st.st_ino != 0)
		hc_put(db, hash, ns, key, klen, *ver, *vlen, &st,
		       hf && hf->copy, gen);
	else if ((rc == LARDER_ENOTFOUND || rc == LDR_HEAD_BAD) && had)
		hc_forget(db, hash); /* gone: a miss from here on */
	return rc;
}

int ldr_head_get(larder *db, const char *ns, const void *key, size_t klen,
		 uint8_t **ver, size_t *vlen)
{
	return head_get(db, ns, key, klen, ver, vlen, NULL);
}

int ldr_head_find(larder *db, const char *ns, const void *key, size_t klen,
		  struct ldr_head_found *hf, uint8_t **ver, size_t *vlen)
{
	memset(&hf->f, 0, sizeof hf->f);
	hf->f.fd = -1;
	hf->state = LARDER_STATE_OK;
	hf->why = NULL;
	hf->rel[0] = hf->erel[0] = '\0';
	hf->copy = 0;
	hf->have_ehash = 0;
	return head_get(db, ns, key, klen, ver, vlen, hf);
}

/* What the entry's own name erel ("" = unknown) holds: ENTRY_SAME the
 * file st, ENTRY_OTHER another file, ENTRY_GONE nothing. */
enum { ENTRY_GONE, ENTRY_SAME, ENTRY_OTHER };
static int entry_name(larder *db, const char *erel, const struct stat *st)
{
	struct stat est;
	if (!erel[0] || ldr_lstat(db, erel, &est) != 0)
		return ENTRY_GONE;
	return est.st_dev == st->st_dev && est.st_ino == st->st_ino
		   ? ENTRY_SAME
		   : ENTRY_OTHER;
}

/* The head of (ns, key) at rel, read for a version-less lookup (docs/
 * format.md "Head hint"): a hint file gives the version; a link to the
 * entry is loaded as hf->how says and judged as that entry, so that one
 * open serves the lookup. st gets the file's identity (st_ino 0: none;
 * a hint file's only with want_id). */
static int find_load(larder *db, const char *rel, const char *ns,
		     const void *key, size_t klen, struct ldr_head_found *hf,
		     uint8_t **ver, size_t *vlen, struct stat *st, int want_id)
{
	struct ldr_file *f = &hf->f;
	*ver = NULL;
	*vlen = 0;
	memset(st, 0, sizeof *st);
	memcpy(hf->rel, rel, strlen(rel) + 1); /* rel fits: LDR_REL_MAX */
	if (__atomic_load_n(&db->head_hints, __ATOMIC_RELAXED)) {
		/* This handle met hint files (a store of 0.2, a filesystem
		 * without hard links): read the head as a hint, in one small
		 * pread and no fstat; the entry is then read by its name. A
		 * linked head read so still gives its version, and the next
		 * lookup loads the entry through its head again. */
		int linked = 0;
		int rc = head_load_kind(db, rel, ns, key, klen, 0, ver, vlen,
					want_id ? st : NULL, &linked);
		if (linked)
			__atomic_store_n(&db->head_hints, 0, __ATOMIC_RELAXED);
		return rc;
	}
	struct ldr_held held = {NULL, 0, 0};
	for (int attempt = 0;; attempt++) {
		if (ldr_file_load_held(db, rel, f, hf->how, hf->pre, &held) ==
		    0)
			break;
		int e = errno;
		if (attempt == 0 && held.gone) /* now from the root */
			continue;
		if (e == ESTALE && attempt == 0) {
			ldr_count(db, LARDER_CTR_ESTALE_RETRIES);
			continue;
		}
		if (e == ENOENT || e == ESTALE)
			return LARDER_ENOTFOUND;
		/* Too large to hold (EFBIG), or unreadable: the head alone,
		 * in bounded memory, and then the entry by its own name
		 * (which says what is wrong with it). */
		return head_load(db, rel, ns, key, klen, 0, ver, vlen, st);
	}
	int rc = LARDER_ENOTFOUND;
	if (f->ftype || !f->p || f->len < LDR_MAGIC_LEN)
		goto nohead; /* not a regular file, or empty: no head */
	if (memcmp(f->p, LDR_HEAD_MAGIC, 8) == 0) {
		/* A hint file (the format of 0.2, and where the filesystem
		 * has no hard links). */
		__atomic_store_n(&db->head_hints, 1, __ATOMIC_RELAXED);
		rc = head_parse(f->p, f->len, ver, vlen);
		if (rc == 0 && want_id && fstat(f->fd, st) != 0)
			memset(st, 0, sizeof *st); /* not remembered */
		goto nohead;
	}
	if (memcmp(f->p, LDR_MAGIC, LDR_MAGIC_LEN) != 0)
		goto nohead; /* neither: ignored, as any unreadable hint */
	if (fstat(f->fd, st) != 0 || !S_ISREG(st->st_mode)) {
		memset(st, 0, sizeof *st);
		goto nohead;
	}
	/* Judged exactly as the entry at its own name would be, against
	 * (ns, key); a file with more names than an entry and its head has
	 * been linked by someone else, so it is checked, never trusted. */
	unsigned check =
	    hf->trust && f->safe && st->st_nlink <= 2 ? 0 : LDR_CHECK_HASH;
	hf->state = ldr_entry_check(db, f, rel, ns, key, klen, NULL, 0, check,
				    &hf->h, &hf->why);
	if (hf->state < 0) {
		rc = hf->state; /* could not be read: recorded */
		memset(st, 0, sizeof *st);
		goto nohead;
	}
	if (hf->h.hdr_len != 0 && hf->h.ns_len == strlen(ns) &&
	    memcmp(hf->h.ns, ns, hf->h.ns_len) == 0 && hf->h.key_len == klen &&
	    (!klen || memcmp(hf->h.key, key, klen) == 0)) {
		uint8_t h[16];
		char hex[33];
		ldr_entry_hash(ns, key, klen, hf->h.ver, hf->h.ver_len, h);
		ldr_hex(h, 16, hex);
		ldr_file_rel(hf->erel, ns, 'e', hex);
	}
	int en = ENTRY_SAME;
	if (st->st_nlink < 2 && db->network) {
		/* On a network filesystem a head of one name is a copy of
		 * the entry (larder writes no links there): served as it is,
		 * without a look at the entry's name, which would cost a
		 * round trip to the server. Its removals drop the copy with
		 * it (ldr_head_drop_entry). */
		hf->copy = 1;
		hf->erel[0] = '\0'; /* a damaged copy is not the entry */
	} else if (st->st_nlink < 2) {
		en = entry_name(db, hf->erel, st);
	}
	if (hf->state != LARDER_STATE_OK &&
	    !(hf->state == LARDER_STATE_EXPIRED && en == ENTRY_GONE)) {
		/* Not to be served: the caller rejects it at the head's name,
		 * and at the entry's only if that is this very file. */
		if (en != ENTRY_SAME)
			hf->erel[0] = '\0';
		f->have_ident = 1;
		f->dev = st->st_dev;
		f->ino = st->st_ino;
		memset(st, 0, sizeof *st);
		return LDR_HEAD_BAD;
	}
	if (en == ENTRY_OTHER) {
		/* A copy of an entry, not a link (a store copied without its
		 * hard links, another host's lagging head): a hint of the
		 * version it names, whose entry is read by its own name. */
		hf->erel[0] = '\0';
		goto version;
	}
	if (en == ENTRY_GONE) {
		/* The entry's own name is gone (removed, by this larder or an
		 * older one that does not know linked heads): the head only
		 * keeps its disk in use. A miss, and the head goes. (One name
		 * left is also what a reader sees whose head was replaced
		 * after its open: then the entry's name is still this file.)
		 */
		int r = ldr_remove_same_by_us(db, rel, st->st_dev, st->st_ino);
		if (r == 1)
			ldr_log(db, LARDER_LOG_DEBUG,
				"removed head '%s/%s' of a removed entry",
				db->dir, rel);
		else if (r < 0)
			ldr_log(db, LARDER_LOG_WARN,
				"cannot remove head '%s/%s' of a removed "
				"entry: %s",
				db->dir, rel, strerror(errno));
		memset(st, 0, sizeof *st);
		goto nohead;
	}
version:
	if (!(*ver = malloc(hf->h.ver_len ? hf->h.ver_len : 1))) {
		memset(st, 0, sizeof *st);
		rc = ldr_fail(db, LARDER_ENOMEM, ENOMEM, "out of memory");
		goto nohead;
	}
	memcpy(*ver, hf->h.ver, hf->h.ver_len);
	*vlen = hf->h.ver_len;
	if (en == ENTRY_OTHER)
		ldr_file_free(f); /* only the version */
	return 0;
nohead:
	ldr_file_free(f);
	return rc;
}

void ldr_head_rejected(larder *db, const struct ldr_head_found *hf)
{
	struct stat st;
	if (hf->state == LARDER_STATE_EXPIRED ||
	    hf->state == LARDER_STATE_NEWER)
		return;
	if (hf->copy) {
		/* A damaged copy went to quarantine/ from the head's name
		 * (the entry's own file is another, judged at its name): its
		 * bytes leave the usage once the name no longer holds it. */
		char ns[LARDER_NS_MAX + 1];
		const char *p = hf->rel + 3, *slash = strchr(p, '/');
		int moved =
		    ldr_lstat(db, hf->rel, &st) != 0
			? errno == ENOENT
			: st.st_dev != hf->f.dev || st.st_ino != hf->f.ino;
		if (moved && slash && (size_t)(slash - p) <= LARDER_NS_MAX) {
			memcpy(ns, p, (size_t)(slash - p));
			ns[slash - p] = '\0';
			ldr_usage_add(db, ns, -(int64_t)hf->f.size, 0);
		}
		return;
	}
	if (!hf->erel[0])
		return;
	/* The head's name went to quarantine/; the entry's own name, if it
	 * is the same file, goes too (and its usage with it), so that the
	 * damage is found, counted and kept once. */
	if (ldr_lstat(db, hf->erel, &st) != 0 || st.st_dev != hf->f.dev ||
	    st.st_ino != hf->f.ino)
		return;
	int r = ldr_remove_same_by_us(db, hf->erel, st.st_dev, st.st_ino);
	if (r == 1)
		ldr_entry_gone(db, hf->erel, (int64_t)st.st_size);
	else if (r < 0)
		ldr_log(db, LARDER_LOG_WARN,
			"cannot remove '%s/%s', quarantined as '%s/%s': %s",
			db->dir, hf->erel, db->dir, hf->rel, strerror(errno));
}

void ldr_head_cache_age(larder *db, int64_t ms)
{
	if (db->heads)
		ldr_lru_age(&db->heads->t, ms);
}

size_t ldr_head_cache_size(larder *db)
{
	struct ldr_heads *c = db->heads;
	if (!c)
		return 0;
	pthread_mutex_lock(&c->t.mu);
	size_t n = c->t.n;
	pthread_mutex_unlock(&c->t.mu);
	return n;
}
