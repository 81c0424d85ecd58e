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

/* Head hint: magic(8) format(4) vlen(4) version XXH3-128(16) over all
 * before it. A hint that fails any check is as good as none. */
int ldr_head_read(larder *db, const char *ns, const void *key, size_t klen,
		  uint8_t **ver, size_t *vlen)
{
	return ldr_head_read_ident(db, ns, key, klen, ver, vlen, NULL);
}

int ldr_head_read_ident(larder *db, const char *ns, const void *key,
			size_t klen, uint8_t **ver, size_t *vlen,
			struct stat *id)
{
	uint8_t hash[16], sum[16];
	char hex[33], rel[LDR_REL_MAX];
	ldr_head_hash(ns, key, klen, hash);
	ldr_hex(hash, 16, hex);
	ldr_file_rel(rel, ns, 'h', hex);
	*ver = NULL;
	*vlen = 0;
	struct ldr_file f;
	int rc = LARDER_ENOTFOUND;
	for (int attempt = 0; attempt < 2; attempt++) {
		/* Scanned, not loaded whole: a file planted at a head's name
		 * may claim any size (a sparse one costs its maker no disk),
		 * and a head is never more than 32 bytes and a version. */
		if (ldr_file_scan(db, rel, &f, id != NULL) == 0)
			break;
		if (errno != ENOENT && errno != ESTALE)
			return ldr_fail_errno(db, errno,
					      "cannot read '%s/%s': %s",
					      db->dir, rel, strerror(errno));
		if (errno == ESTALE)
			ldr_count(db, LARDER_CTR_ESTALE_RETRIES);
		if (attempt == 1)
			return LARDER_ENOTFOUND;
	}
	if (f.partial && f.size <= 32 + (uint64_t)LDR_MAX_VER) {
		uint8_t *whole = malloc((size_t)f.size);
		ssize_t got =
		    whole ? ldr_pread_full(f.fd, whole, (size_t)f.size, 0) : -1;
		if (got == (ssize_t)f.size) {
			free(f.p);
			f.p = whole;
			f.len = (size_t)got;
			f.partial = 0;
		} else
			free(whole);
	}
	if (!f.partial && f.len >= 32 && memcmp(f.p, LDR_HEAD_MAGIC, 8) == 0) {
		uint32_t format = (uint32_t)f.p[8] | (uint32_t)f.p[9] << 8 |
				  (uint32_t)f.p[10] << 16 |
				  (uint32_t)f.p[11] << 24;
		uint32_t n = (uint32_t)f.p[12] | (uint32_t)f.p[13] << 8 |
			     (uint32_t)f.p[14] << 16 | (uint32_t)f.p[15] << 24;
		if (format == 1 && n <= LDR_MAX_VER &&
		    f.len == 32 + (size_t)n) {
			ldr_xxh128(f.p, 16 + (size_t)n, sum);
			if (memcmp(sum, f.p + 16 + n, 16) == 0 &&
			    (!id || (f.fd >= 0 && fstat(f.fd, id) == 0)) &&
			    (*ver = malloc(n ? n : 1))) {
				memcpy(*ver, f.p + 16, n);
				*vlen = n;
				rc = 0;
			}
		}
	}
	if (rc)
		ldr_log(db, LARDER_LOG_DEBUG,
			"ignoring unreadable head '%s/%s'", db->dir, rel);
	ldr_file_free(&f);
	return rc;
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
