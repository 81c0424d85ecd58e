/*
 * publish.c — owns the publish path (docs/format.md, "Publishing"): a streaming
 * writer into a temp file in the entry's own directory, hashed as it goes;
 * header last; fsync per policy; link() to the final name, where EEXIST means
 * another filler won with the same key and version; then the head hint.
 */
#include "publish.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#include "backend.h"
#include "clock.h"
#include "fsutil.h"
#include "hash.h"
#include "config.h"
#include "file.h"
#include "head.h"
#include "quarantine.h"
#include "read.h"
#include "recency.h"
#include "stats.h"

struct larder_writer {
	larder *db;
	char ns[LARDER_NS_MAX + 1];
	uint8_t *key, *ver, *meta;
	size_t klen, vlen, mlen;
	char hex[33];
	char dirrel[LDR_REL_MAX];
	char tmp[128];
	int dirfd, fd;
	unsigned flags;
	int64_t created, expires;
	struct ldr_hasher *st;
	/* Payload bytes are kept in memory until they pass the mmap
	 * threshold: a small entry is then written with its header in one
	 * syscall, and a large one gets a page-aligned payload. */
	uint8_t *buf;
	size_t buflen, bufcap;
	int spilled;
	uint32_t hdr_len; /* fixed once spilled */
	uint64_t stored, raw;
	ZSTD_CCtx *z;
	uint8_t *zout;
	size_t zoutcap;
	int failed;
	/* Fill mode (larder_get_or_fill): the caller's load must reach it
	 * even when the cache cannot keep it, so a failing temp file is
	 * swapped for an in-memory one (memfd) holding the same bytes. */
	int fill_mode;
	int internal; /* the library's own cache: no fsync (store.h) */
	int in_memory;
	int cache_rc; /* why the cache could not keep it */
	char cache_msg[512];
	/* Published through the seam, to a backend other than the handle's
	 * own directory (docs/backends.md): the entry is made in memory,
	 * then staged there whole. token: the filler's fencing token. */
	int via_be;
	/* A put through the seam that passed the mmap threshold: its stage
	 * begun there and written as the bytes come (emit), with no copy
	 * of the entry made in memory first. A fill's entry is still made
	 * in a memfd: the fill hands it back mapped. */
	struct ldr_stage *stage;
	uint64_t token;
	struct ldr_be_lease *lease; /* the filler's: settled by the commit */
	larder_entry **own;	    /* ldr_writer_commit_fill's */
};

static void writer_free(larder_writer *w)
{
	if (!w)
		return;
	if (w->fd >= 0)
		ldr_close(w->fd);
	if (w->tmp[0] && w->dirfd >= 0)
		unlinkat(w->dirfd, w->tmp, 0);
	if (w->dirfd >= 0)
		ldr_close(w->dirfd);
	if (w->stage)
		w->db->be->ops->stage_abort(w->stage);
	if (w->st)
		ldr_hasher_free(w->st);
	ZSTD_freeCCtx(w->z);
	free(w->zout);
	free(w->buf);
	free(w->key);
	free(w->ver);
	free(w->meta);
	free(w);
}

static void *dup_bytes(const void *p, size_t n)
{
	void *d = malloc(n ? n : 1);
	if (d && n)
		memcpy(d, p, n);
	return d;
}

/* Count and record a failed write-side syscall. */
static int wfail(larder *db, int e, const char *what, const char *rel)
{
	ldr_count(db, LARDER_CTR_WRITE_FAILURES);
	return ldr_fail_errno(db, e, "cannot %s '%s/%s': %s", what, db->dir,
			      rel, strerror(e));
}

/* Fill mode: remember the first reason the cache could not keep the load
 * (`rc`, its message just recorded), which the fill reports. */
static void note_cause(larder_writer *w, int rc)
{
	if (w->cache_rc)
		return;
	w->cache_rc = rc;
	snprintf(w->cache_msg, sizeof w->cache_msg, "%s", larder_errmsg(w->db));
}

/* Copy the temp file's bytes into mfd. 0, or a recorded failure naming
 * the step that failed. */
static int copy_out(larder_writer *w, int mfd)
{
	larder *db = w->db;
	struct stat st;
	if (fstat(w->fd, &st) != 0)
		return ldr_fail(db, LARDER_EIO, errno,
				"cannot stat the temp file in '%s/%s' to read "
				"the loaded data back: %s",
				db->dir, w->dirrel, strerror(errno));
	const size_t chunk = 1 << 20;
	uint8_t *b = st.st_size > 0 ? malloc(chunk) : NULL;
	if (st.st_size > 0 && !b)
		return ldr_fail(db, LARDER_ENOMEM, ENOMEM, "out of memory");
	int rc = 0;
	for (off_t off = 0; off < st.st_size;) {
		ssize_t n = ldr_pread_full(w->fd, b, chunk, off);
		if (n <= 0) {
			/* n == 0: the file is shorter than fstat said. */
			int e = n < 0 ? errno : EIO;
			rc = ldr_fail(db, LARDER_EIO, e,
				      "cannot read back the loaded data from "
				      "the temp file in '%s/%s': %s",
				      db->dir, w->dirrel, strerror(e));
			break;
		}
		if (ldr_pwrite_full(mfd, b, (size_t)n, off) != 0) {
			rc = ldr_fail(db, LARDER_ENOMEM, errno,
				      "cannot keep the loaded data in "
				      "memory: %s",
				      strerror(errno));
			break;
		}
		off += n;
	}
	free(b);
	return rc;
}

/* Fill mode: the cache failed with `rc` (already recorded); move what was
 * written so far into a memfd and carry on there. The temp file is then
 * removed: a store that cannot keep the entry keeps no part of it. */
static int to_memory(larder_writer *w, int rc)
{
	larder *db = w->db;
	note_cause(w, rc);
	if (w->in_memory)
		return rc;
	int mfd = memfd_create("larder-fill", MFD_CLOEXEC);
	if (mfd < 0)
		return ldr_fail(db, LARDER_ENOMEM, errno,
				"cannot keep the loaded data in memory: %s",
				strerror(errno));
	if (w->fd >= 0 && (rc = copy_out(w, mfd)) != 0) {
		ldr_close(mfd);
		return rc;
	}
	if (w->fd >= 0)
		ldr_close(w->fd);
	if (w->tmp[0] && w->dirfd >= 0)
		unlinkat(w->dirfd, w->tmp, 0);
	w->tmp[0] = '\0';
	w->fd = mfd;
	w->in_memory = 1;
	return 0;
}

/* The memfd an entry made for a backend is written to (writer_begin):
 * made at the first write to a file. 0 or a code, recorded. */
static int be_fd(larder_writer *w)
{
	if (w->fd >= 0)
		return 0;
	w->fd = memfd_create("larder-entry", MFD_CLOEXEC);
	if (w->fd < 0)
		return ldr_fail(w->db, LARDER_ENOMEM, errno,
				"cannot make an entry in memory: %s",
				strerror(errno));
	return 0;
}

/* pwrite into the temp file; in fill mode a failure moves it to memory
 * and the write is done there. */
static int wwrite(larder_writer *w, const void *a, size_t alen, const void *b,
		  size_t blen, off_t off)
{
	if (w->via_be) {
		int rc = be_fd(w);
		if (rc)
			return rc;
	}
	for (;;) {
		if (ldr_pwrite2(w->fd, a, alen, b, blen, off) == 0)
			return 0;
		int rc = wfail(w->db, errno, "write temp file in", w->dirrel);
		if (!w->fill_mode || w->in_memory)
			return rc;
		if ((rc = to_memory(w, rc)) != 0)
			return rc;
	}
}

/* How a writer was begun. W_STAGE: the directory backend's stage
 * (be_dir.c), written with the stored payload and committed with the
 * caller's header. */
enum { W_PUT, W_FILL, W_INTERNAL, W_STAGE };

static int writer_begin(larder_writer **out, larder *db, const char *ns,
			const void *key, size_t klen, const void *ver,
			size_t vlen, const larder_put_opts *opts, int how);

int larder_writer_begin(larder_writer **out, larder *db, const char *ns,
			const void *key, size_t klen, const void *ver,
			size_t vlen, const larder_put_opts *opts)
{
	return writer_begin(out, db, ns, key, klen, ver, vlen, opts, W_PUT);
}

int ldr_writer_begin_internal(larder_writer **out, larder *db, const char *ns,
			      const void *key, size_t klen, const void *ver,
			      size_t vlen)
{
	larder_put_opts po = LARDER_PUT_OPTS_INIT;
	po.flags = LARDER_PUT_NO_HEAD;
	po.ttl_seconds = LARDER_TTL_NEVER;
	return writer_begin(out, db, ns, key, klen, ver, vlen, &po, W_INTERNAL);
}

int ldr_writer_fs_now(larder_writer *w, int64_t *out)
{
	struct stat st;
	if (w->in_memory || w->fd < 0) {
		errno = EBADF;
		return -1;
	}
	if (fstat(w->fd, &st) != 0)
		return -1;
	*out = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
	return 0;
}

int ldr_writer_begin_fill(larder_writer **out, larder *db, const char *ns,
			  const void *key, size_t klen, const void *ver,
			  size_t vlen, const larder_put_opts *opts)
{
	return writer_begin(out, db, ns, key, klen, ver, vlen, opts, W_FILL);
}

void ldr_writer_no_head(larder_writer *w)
{
	w->flags |= LARDER_PUT_NO_HEAD;
}

void ldr_writer_set_token(larder_writer *w, uint64_t token)
{
	w->token = token;
}

void ldr_writer_set_lease(larder_writer *w, struct ldr_be_lease *l)
{
	w->lease = l;
}

int ldr_writer_begin_stage(larder_writer **out, larder *db, const char *ns,
			   const void *key, size_t klen, const void *ver,
			   size_t vlen, const larder_put_opts *opts)
{
	return writer_begin(out, db, ns, key, klen, ver, vlen, opts, W_STAGE);
}

static int writer_begin(larder_writer **out, larder *db, const char *ns,
			const void *key, size_t klen, const void *ver,
			size_t vlen, const larder_put_opts *opts, int how)
{
	*out = NULL;
	const int fill_mode = how == W_FILL;
	/* A fill's namespace was checked by larder_get_or_fill, its
	 * directories too: the name alone here (the directories' check
	 * opens one where the store has none, a handle on Redis). A put
	 * through the seam writes no directory of the handle's: the name
	 * alone too (a near tier's stage checks its own, W_STAGE). */
	const int seam = db->be && !db->be_own && how != W_STAGE;
	int rc = how == W_INTERNAL || how == W_STAGE
		     ? ldr_check_ns_internal(db, ns)
		 : fill_mode || seam ? ldr_check_ns_name(db, ns, 0)
				     : ldr_check_ns(db, ns);
	if (rc)
		return rc;
	if (opts &&
	    ldr_check_version(db, "larder_put_opts", opts->version,
			      LARDER_PUT_OPTS_VERSION, LARDER_PUT_OPTS_VERSION))
		return LARDER_EINVAL;
	size_t mlen = opts && opts->meta ? opts->meta_len : 0;
	if ((!key && klen) || (!ver && vlen) || klen > LDR_MAX_KEY ||
	    vlen > LDR_MAX_VER || mlen > LDR_MAX_META)
		return ldr_fail(db, LARDER_EINVAL, 0,
				"key, version or metadata missing or too "
				"long (key %zu, version %zu, meta %zu bytes)",
				klen, vlen, mlen);
	if (opts && opts->ttl_seconds < LARDER_TTL_NEVER)
		return ldr_fail(db, LARDER_EINVAL, 0,
				"negative TTL %lld (use LARDER_TTL_NEVER)",
				(long long)opts->ttl_seconds);
	if (!ver)
		ver = "";
	larder_writer *w = calloc(1, sizeof *w);
	if (!w)
		return ldr_fail(db, LARDER_ENOMEM, ENOMEM, "out of memory");
	w->db = db;
	w->fd = w->dirfd = -1;
	w->fill_mode = fill_mode;
	w->internal = how == W_INTERNAL;
	w->flags = opts ? opts->flags : 0;
	snprintf(w->ns, sizeof w->ns, "%s", ns);
	w->klen = klen;
	w->vlen = vlen;
	w->mlen = mlen;
	w->key = dup_bytes(key, klen);
	w->ver = dup_bytes(ver, vlen);
	w->meta = dup_bytes(mlen ? opts->meta : "", mlen);
	w->st = ldr_hasher_new();
	if (!w->key || !w->ver || !w->meta || !w->st) {
		rc = ldr_fail(db, LARDER_ENOMEM, ENOMEM, "out of memory");
		goto fail;
	}
	ldr_hasher_reset(w->st);
	/* A stage is written with the payload as stored (compressed or
	 * not): its writer compresses nothing. */
	if ((w->flags & LARDER_PUT_ZSTD) && how != W_STAGE) {
		w->z = ZSTD_createCCtx();
		w->zoutcap = ZSTD_CStreamOutSize();
		w->zout = malloc(w->zoutcap);
		int level = opts->zstd_level ? opts->zstd_level : 1;
		if (!w->z || !w->zout ||
		    ZSTD_isError(ZSTD_CCtx_setParameter(
			w->z, ZSTD_c_compressionLevel, level))) {
			rc = ldr_fail(db, LARDER_ENOMEM, ENOMEM,
				      "cannot set up zstd (level %d)", level);
			goto fail;
		}
	}

	/* A stage commits with its caller's header, expiry and all: the
	 * namespace's default is not read for it (a near tier's put read
	 * it twice). */
	int64_t ttl = opts ? opts->ttl_seconds : 0;
	if (ttl == 0 && how != W_STAGE)
		ttl = ldr_ns_ttl(db, ns);
	w->created = ldr_now_ns();
	/* A TTL past the year 2262 (int64 ns) is as good as never. */
	w->expires = ttl > 0 && ttl < (INT64_MAX - w->created) / 1000000000
			 ? w->created + ttl * 1000000000
			 : 0;

	if (seam) {
		/* Through the seam: a small entry is made in the writer's
		 * buffer and staged whole at commit (publish_be); a larger
		 * put is streamed to its stage from the spill on (emit); a
		 * larger fill is made in a memfd made when it spills
		 * (be_fd), written as to a temp file, then staged. */
		w->via_be = 1;
		w->in_memory = 1;
		*out = w;
		return 0;
	}
	/* Below the stop watermark nothing is stored (a fill still gets its
	 * data: the failure path keeps it in memory). */
	if ((rc = ldr_space_check(db)) != 0)
		goto fail;
	uint8_t hash[16];
	ldr_entry_hash(ns, key, klen, ver, vlen, hash);
	ldr_hex(hash, 16, w->hex);
	ldr_dir_rel(w->dirrel, ns, 'e', w->hex);
	w->dirfd = ldr_open_dir(db, w->dirrel);
	if (w->dirfd < 0) {
		rc = wfail(db, errno, "open directory", w->dirrel);
		goto fail;
	}
	ldr_temp_name(w->tmp, sizeof w->tmp, db->host);
	/* Read-only from the start: the writer writes through this fd, and
	 * a published entry never changes (docs/security.md). A fill also
	 * reads through it: when the disk fills or the publish fails, what
	 * was written so far is read back into memory (to_memory), and a
	 * write-only fd would fail that with EBADF. */
	w->fd = ldr_open_beneath(
	    w->dirfd, w->tmp,
	    (fill_mode ? O_RDWR : O_WRONLY) | O_CREAT | O_EXCL, db->romode);
	if (w->fd < 0) {
		int e = errno;
		w->tmp[0] = '\0'; /* not ours to unlink */
		rc = wfail(db, e, "create temp file in", w->dirrel);
		goto fail;
	}
	/* The store's mode, not the umask's: a process with umask 077 must
	 * still publish entries the store's other users can read. */
	if (fchmod(w->fd, db->romode) != 0) {
		rc = wfail(db, errno, "chmod temp file in", w->dirrel);
		goto fail;
	}
	*out = w;
	return 0;
fail:
	if (fill_mode && rc != LARDER_EINVAL && w->st &&
	    (!(w->flags & LARDER_PUT_ZSTD) || w->z) && to_memory(w, rc) == 0) {
		*out = w;
		return 0;
	}
	writer_free(w);
	return rc;
}

static uint32_t header_len(const larder_writer *w, int aligned)
{
	return (uint32_t)ldr_hdr_padded_len(
	    ldr_hdr_min_len((uint32_t)strlen(w->ns), (uint32_t)w->klen,
			    (uint32_t)w->vlen, (uint32_t)w->mlen),
	    aligned);
}

/* w's stage begun at the seam in *s, and when `buffered` the bytes of
 * the writer's buffer written to it: 0, or a code, recorded, with
 * nothing left staged (*s NULL). */
static int stage_start(larder_writer *w, int buffered, struct ldr_stage **s)
{
	struct ldr_backend *be = w->db->be;
	struct ldr_name n;
	ldr_name_init(&n, w->ns, w->key, w->klen, w->ver, w->vlen);
	larder_put_opts po = LARDER_PUT_OPTS_INIT;
	po.flags = w->flags;
	po.meta = w->meta;
	po.meta_len = w->mlen;
	*s = NULL;
	int rc = be->ops->stage_begin(be, &n, &po, s);
	if (rc) {
		*s = NULL;
		return rc;
	}
	struct iovec iov = {w->buf, w->buflen};
	if (buffered && w->buflen &&
	    (rc = be->ops->stage_write(*s, &iov, 1)) != 0) {
		be->ops->stage_abort(*s);
		*s = NULL;
	}
	return rc;
}

/* Append stored (possibly compressed) payload bytes. */
static int emit(larder_writer *w, const void *p, size_t n)
{
	larder *db = w->db;
	if (n == 0)
		return 0;
	ldr_hasher_update(w->st, p, n);
	if (!w->spilled && w->buflen + n < db->mmap_threshold) {
		if (w->buflen + n > w->bufcap) {
			size_t cap = w->bufcap ? w->bufcap * 2 : 4096;
			while (cap < w->buflen + n)
				cap *= 2;
			uint8_t *b = realloc(w->buf, cap);
			if (!b)
				return ldr_fail(db, LARDER_ENOMEM, ENOMEM,
						"out of memory");
			w->buf = b;
			w->bufcap = cap;
		}
		memcpy(w->buf + w->buflen, p, n);
		w->buflen += n;
		w->stored += n;
		return 0;
	}
	if (!w->spilled) {
		/* Large: the payload starts on a page boundary so readers
		 * can map it; the header is written at commit. */
		w->hdr_len = header_len(w, 1);
		/* A put through the seam streams to its stage from here
		 * (w->stage), the bytes kept so far first. */
		int rc =
		    w->via_be && !w->fill_mode
			? stage_start(w, 1, &w->stage)
			: wwrite(w, w->buf, w->buflen, NULL, 0, w->hdr_len);
		if (rc)
			return rc;
		free(w->buf);
		w->buf = NULL;
		w->bufcap = 0;
		w->spilled = 1;
	}
	int rc;
	if (w->stage) {
		struct iovec iov = {(void *)p, n};
		rc = w->db->be->ops->stage_write(w->stage, &iov, 1);
	} else {
		rc = wwrite(w, p, n, NULL, 0, (off_t)(w->hdr_len + w->stored));
	}
	if (rc)
		return rc;
	w->stored += n;
	return 0;
}

static int compress_some(larder_writer *w, const void *p, size_t n,
			 ZSTD_EndDirective mode)
{
	ZSTD_inBuffer in = {p, n, 0};
	for (;;) {
		ZSTD_outBuffer o = {w->zout, w->zoutcap, 0};
		size_t left = ZSTD_compressStream2(w->z, &o, &in, mode);
		if (ZSTD_isError(left))
			return ldr_fail(w->db, LARDER_EIO, 0,
					"zstd compression failed: %s",
					ZSTD_getErrorName(left));
		int rc = emit(w, w->zout, o.pos);
		if (rc)
			return rc;
		if (mode == ZSTD_e_end ? left == 0 : in.pos == in.size)
			return 0;
	}
}

int larder_writer_write(larder_writer *w, const void *buf, size_t len)
{
	if (w->failed)
		return ldr_fail(w->db, LARDER_EINVAL, 0,
				"write after a failed write: abort the writer");
	if (!buf && len)
		return ldr_fail(w->db, LARDER_EINVAL, 0, "NULL buffer");
	w->raw += len;
	int rc = w->z ? compress_some(w, buf, len, ZSTD_e_continue)
		      : emit(w, buf, len);
	if (rc)
		w->failed = 1;
	return rc;
}

/* An entry is already at the final name. If it is good, the race was won
 * by an identical filler: keep theirs. If it is expired or bad (anything
 * that is not an entry of some format: a stub, a FIFO, a directory),
 * clear it (only that very file) so our link can take its place. An entry
 * of a newer format stands, but it is not ours and this larder cannot
 * read it: the publish fails rather than report a store it did not make.
 * Returns 1 if theirs stands, 0 to retry, or a negative code. Judged with
 * bounded memory and without mapping: the file may be anyone's. */
static int existing_stands(larder_writer *w, const char *rel)
{
	larder *db = w->db;
	struct ldr_file f;
	if (ldr_file_scan(db, rel, &f, 0) != 0) {
		if (errno == ENOENT || errno == ESTALE)
			return 0;
		return wfail(db, errno, "read the existing entry", rel);
	}
	ldr_hdr h;
	const char *why;
	int state =
	    ldr_entry_check(db, &f, rel, w->ns, w->key, w->klen, w->ver,
			    w->vlen, LDR_CHECK_HASH | LDR_CHECK_ZSTD, &h, &why);
	int rc = state == LARDER_STATE_OK;
	ldr_file_ident(&f);
	if (state < 0) {
		rc = state; /* could not be read: recorded */
	} else if (state == LARDER_STATE_NEWER) {
		ldr_count(db, LARDER_CTR_NEWER_FORMAT);
		rc = ldr_fail(db, LARDER_EVERSION, 0,
			      "cannot publish '%s/%s': an entry written by a "
			      "newer larder format holds its name, which this "
			      "larder can neither read nor replace (upgrade "
			      "larder)",
			      db->dir, rel);
	} else if (state == LARDER_STATE_EXPIRED) {
		ldr_remove_same(db, rel, f.dev, f.ino);
	} else if (!rc) {
		ldr_count(db, LARDER_CTR_CHECKSUM_FAIL);
		ldr_quarantine(db, rel, f.dev, f.ino, why);
	}
	ldr_file_free(&f);
	return rc;
}

/* Make the temp file visible under its final name without ever replacing
 * an existing one. 0 = ours published, LARDER_EXISTS = theirs stands. */
static int link_final(larder_writer *w)
{
	larder *db = w->db;
	char rel[LDR_REL_MAX + 40];
	snprintf(rel, sizeof rel, "%s/%s", w->dirrel, w->hex);
	/* Bounded: readers quarantining a bad file at this name (and putting
	 * back one they moved by mistake) can make it reappear briefly. */
	for (int attempt = 0; attempt < 8; attempt++) {
		if (linkat(w->dirfd, w->tmp, w->dirfd, w->hex, 0) == 0)
			return 0;
		int e = errno;
		if (e == EEXIST) {
			int r = existing_stands(w, rel);
			if (r)
				return r > 0 ? LARDER_EXISTS : r;
			continue;
		}
		if (e != EPERM && e != ENOTSUP && e != ENOSYS && e != EMLINK &&
		    e != EXDEV)
			return wfail(db, e, "link temp file to", rel);
		/* No hard links on this filesystem: rename, refusing to
		 * replace where the kernel can. */
		if (renameat2(w->dirfd, w->tmp, w->dirfd, w->hex,
			      RENAME_NOREPLACE) == 0) {
			w->tmp[0] = '\0';
			return 0;
		}
		e = errno;
		if (e == EEXIST) {
			int r = existing_stands(w, rel);
			if (r)
				return r > 0 ? LARDER_EXISTS : r;
			continue;
		}
		if (e != EINVAL && e != ENOSYS)
			return wfail(db, e, "rename temp file to", rel);
		if (faccessat(w->dirfd, w->hex, F_OK, AT_SYMLINK_NOFOLLOW) ==
		    0) {
			int r = existing_stands(w, rel);
			if (r)
				return r > 0 ? LARDER_EXISTS : r;
		}
		if (renameat(w->dirfd, w->tmp, w->dirfd, w->hex) != 0)
			return wfail(db, errno, "rename temp file to", rel);
		w->tmp[0] = '\0';
		return 0;
	}
	ldr_count(db, LARDER_CTR_WRITE_FAILURES);
	return ldr_fail(db, LARDER_EBUSY, EEXIST,
			"cannot publish '%s/%s': a bad entry kept reappearing "
			"at its name",
			db->dir, rel);
}

/* Fill mode: the temp file is complete but cannot be published; read it
 * back (the fd may be closed already) into memory. */
static int rescue_temp(larder_writer *w, int rc)
{
	if (w->fd < 0 && w->tmp[0]) {
		w->fd = ldr_open_beneath(w->dirfd, w->tmp, O_RDONLY, 0);
		if (w->fd < 0) {
			int e = errno;
			note_cause(w, rc);
			return ldr_fail(w->db, LARDER_EIO, e,
					"cannot reopen the temp file in "
					"'%s/%s' to read the loaded data "
					"back: %s",
					w->db->dir, w->dirrel, strerror(e));
		}
	}
	return to_memory(w, rc);
}

/* Publish the entry file made in memory (header at 0, payload after it)
 * through the seam: staged, its payload in chunks, committed with its
 * header. 0, LARDER_EXISTS, or an error, recorded. */
static int stage_be(larder_writer *w, uint32_t hlen, uint64_t stored,
		    struct ldr_stage **out)
{
	larder *db = w->db;
	struct ldr_backend *be = db->be;
	struct ldr_stage *s;
	*out = NULL;
	if (w->stage) {
		/* Streamed as it was written (emit): it holds it all. */
		*out = w->stage;
		w->stage = NULL;
		return 0;
	}
	/* Still all in the writer's buffer: staged from there. */
	int rc = stage_start(w, !w->spilled, &s);
	if (rc)
		return rc;
	if (!w->spilled) {
		*out = s;
		return 0;
	}
	uint8_t *b = stored ? malloc(LDR_CHUNK) : NULL;
	if (stored && !b) {
		be->ops->stage_abort(s);
		return ldr_fail(db, LARDER_ENOMEM, ENOMEM, "out of memory");
	}
	for (uint64_t off = 0; off < stored;) {
		size_t want = stored - off < LDR_CHUNK ? (size_t)(stored - off)
						       : LDR_CHUNK;
		ssize_t got =
		    ldr_pread_full(w->fd, b, want, (off_t)(hlen + off));
		if (got != (ssize_t)want) {
			rc = ldr_fail(db, LARDER_EIO, got < 0 ? errno : EIO,
				      "cannot read back the entry made in "
				      "memory for '%s'",
				      w->ns);
			break;
		}
		struct iovec iov = {b, want};
		if ((rc = be->ops->stage_write(s, &iov, 1)) != 0)
			break;
		off += want;
	}
	free(b);
	if (rc) {
		be->ops->stage_abort(s);
		return rc;
	}
	*out = s;
	return 0;
}

static int publish_be(larder_writer *w, const uint8_t *hdr, uint32_t hlen,
		      uint64_t stored)
{
	struct ldr_backend *be = w->db->be;
	struct ldr_stage *s;
	int rc = stage_be(w, hlen, stored, &s);
	if (rc)
		return rc;
	unsigned flags = (w->flags & LARDER_PUT_NO_HEAD) ? LDR_BE_NO_HEAD : 0;
	if (w->lease && be->ops->version >= 3 && be->ops->stage_commit_lease)
		return be->ops->stage_commit_lease(s, hdr, hlen, flags,
						   w->lease);
	return be->ops->stage_commit(s, hdr, hlen, flags, w->token);
}

/* A stage's header, given at its commit (be_dir.c): it must describe
 * exactly what was written, under the writer's name, and fit the place
 * the payload was written at; else nothing is published. */
static int stage_header(larder_writer *w, const uint8_t *given, size_t glen,
			ldr_hdr *h)
{
	larder *db = w->db;
	const char *why = "";
	uint8_t digest[16];
	ldr_hasher_digest(w->st, digest);
	size_t nslen = strlen(w->ns);
	if (ldr_hdr_decode(h, given, glen, &why) != 0 || h->hdr_len != glen)
		why = *why ? why : "its length is not the header's";
	else if (w->spilled && h->hdr_len != w->hdr_len)
		why = "its length is not the one the payload was placed after";
	else if (h->stored_len != w->stored ||
		 memcmp(h->payload_hash, digest, sizeof digest))
		why = "it does not describe the payload written";
	else if (h->ns_len != nslen || memcmp(h->ns, w->ns, nslen) ||
		 h->key_len != w->klen ||
		 (w->klen && memcmp(h->key, w->key, w->klen)) ||
		 h->ver_len != w->vlen ||
		 (w->vlen && memcmp(h->ver, w->ver, w->vlen)))
		why = "it names another entry";
	else
		return 0;
	return ldr_fail(db, LARDER_EINVAL, 0,
			"cannot commit a stage in '%s/%s' with that header: "
			"%s",
			db->dir, w->dirrel, why);
}

/* The entry's header: made here (given NULL), or a stage's checked
 * (stage_header); then written with the payload still in memory. *hdr
 * malloc'ed (also on failure: free it). 0 or a code, recorded. */
static int seal(larder_writer *w, const uint8_t *given, size_t glen,
		ldr_hdr *hp, uint8_t **hdrp)
{
	larder *db = w->db;
	int rc = 0;
	uint8_t *hdr = NULL;
	ldr_hdr h;
	memset(&h, 0, sizeof h);
	*hp = h;
	*hdrp = NULL;
	if (w->failed) {
		rc = ldr_fail(db, LARDER_EINVAL, 0,
			      "commit after a failed write: nothing published");
		goto out;
	}
	if (w->z && (rc = compress_some(w, "", 0, ZSTD_e_end)))
		goto out;
	if (given) {
		if ((rc = stage_header(w, given, glen, &h)) != 0)
			goto out;
		hdr = malloc(glen);
		if (!hdr) {
			rc = ldr_fail(db, LARDER_ENOMEM, ENOMEM,
				      "out of memory");
			goto out;
		}
		memcpy(hdr, given, glen);
		h.hdr_len = (uint32_t)glen;
	} else {
		h.hdr_len =
		    w->spilled ? w->hdr_len
			       : header_len(w, w->stored >= db->mmap_threshold);
		h.codec = w->z ? LDR_CODEC_ZSTD : LDR_CODEC_NONE;
		h.stored_len = w->stored;
		h.raw_len = w->raw;
		h.created = w->created;
		h.expires = w->expires;
		ldr_hasher_digest(w->st, h.payload_hash);
		h.ns = (const uint8_t *)w->ns;
		h.ns_len = (uint32_t)strlen(w->ns);
		h.key = w->key;
		h.key_len = (uint32_t)w->klen;
		h.ver = w->ver;
		h.ver_len = (uint32_t)w->vlen;
		h.meta = w->meta;
		h.meta_len = (uint32_t)w->mlen;
		hdr = malloc(h.hdr_len);
		if (!hdr) {
			rc = ldr_fail(db, LARDER_ENOMEM, ENOMEM,
				      "out of memory");
			goto out;
		}
		ldr_hdr_encode(&h, hdr);
	}
	const void *rest = w->spilled ? NULL : w->buf;
	size_t restlen = w->spilled ? 0 : w->buflen;
	/* An entry for a backend, all in memory, stays there: staged from
	 * the buffer (stage_be), its header from hdr; a streamed one is in
	 * its stage already. */
	if (!(w->via_be && (!w->spilled || w->stage)))
		rc = wwrite(w, hdr, h.hdr_len, rest, restlen, 0);
out:
	*hp = h;
	*hdrp = hdr;
	return rc;
}

/* Commit: publish, or in fill mode hand back the loaded bytes as an
 * uncached entry (*uncached) when the cache cannot keep them; the return
 * value is then the cache's failure. A stage commits with the header
 * `given` (glen bytes) instead of one made here. */
static int finish(larder_writer *w, larder_entry **uncached,
		  const uint8_t *given, size_t glen)
{
	larder *db = w->db;
	ldr_hdr h;
	uint8_t *hdr;
	int rc = seal(w, given, glen, &h, &hdr);
	if (rc)
		goto out;
	const void *rest = w->spilled ? NULL : w->buf;
	size_t restlen = w->spilled ? 0 : w->buflen;
	if (w->via_be) {
		rc = publish_be(w, hdr, h.hdr_len, h.stored_len);
		if (rc >= 0) {
			ldr_count(db, rc == 0 ? LARDER_CTR_PUBLISHED
					      : LARDER_CTR_PUBLISH_RACED);
			ldr_stats_tick(db);
			/* Ours is what stands: the fill gets it from memory,
			 * not by a read that costs a round trip. Should
			 * that fail, the fill reads it back. */
			if (rc == 0 && w->own &&
			    (w->spilled
				 ? ldr_entry_from_fd(db, w->fd, w->ns, w->key,
						     w->klen, w->ver, w->vlen,
						     w->own)
				 : ldr_entry_from_mem(db, hdr, h.hdr_len, rest,
						      restlen, w->ns, w->key,
						      w->klen, w->ver, w->vlen,
						      w->own)) != 0) {
				*w->own = NULL;
				ldr_clear_error(db);
			}
			goto out;
		}
		if (!w->fill_mode)
			goto out;
		/* A fill's load still reaches its caller, uncached. */
		note_cause(w, rc);
	}
	if (!w->in_memory && !w->internal && db->fsync != LARDER_FSYNC_NONE &&
	    ldr_fdatasync(w->fd) != 0) {
		rc = wfail(db, errno, "fsync temp file in", w->dirrel);
		if (!w->fill_mode || (rc = rescue_temp(w, rc)))
			goto out;
	}
	if (!w->in_memory) {
		/* close() is where a network filesystem reports deferred
		 * write errors: it must succeed before the entry is made
		 * visible. */
		int fd = w->fd;
		w->fd = -1;
		if (close(fd) != 0 && errno != EINTR) {
			rc = wfail(db, errno, "close temp file in", w->dirrel);
			if (!w->fill_mode || (rc = rescue_temp(w, rc)))
				goto out;
		}
	}
	if (!w->in_memory) {
		rc = link_final(w);
		if (rc < 0 && (!w->fill_mode || (rc = rescue_temp(w, rc))))
			goto out;
	}
	if (w->in_memory) {
		/* The header again: it may have gone to the temp file
		 * before the move. */
		if (w->via_be && !w->spilled) {
			rc = ldr_entry_from_mem(db, hdr, h.hdr_len, rest,
						restlen, w->ns, w->key, w->klen,
						w->ver, w->vlen, uncached);
			if (rc == 0) {
				ldr_count(db, LARDER_CTR_UNCACHED);
				rc = ldr_fail(db, w->cache_rc, 0, "%s",
					      w->cache_msg);
			}
			goto out;
		}
		rc = ldr_pwrite2(w->fd, hdr, h.hdr_len, rest, restlen, 0)
			 ? ldr_fail(db, LARDER_ENOMEM, errno,
				    "cannot keep the loaded data in "
				    "memory: %s",
				    strerror(errno))
			 : ldr_entry_from_fd(db, w->fd, w->ns, w->key, w->klen,
					     w->ver, w->vlen, uncached);
		if (rc == 0) {
			ldr_count(db, LARDER_CTR_UNCACHED);
			rc = ldr_fail(db, w->cache_rc, 0, "%s", w->cache_msg);
		}
		goto out;
	}
	ldr_count(db,
		  rc == 0 ? LARDER_CTR_PUBLISHED : LARDER_CTR_PUBLISH_RACED);
	/* Usage grows only by what we added: an entry already there
	 * (EEXIST) was counted by whoever published it. */
	if (rc == 0)
		ldr_usage_add(db, w->ns, (int64_t)(h.hdr_len + w->stored), 1);
	ldr_stats_tick(db);
	int published = rc == 0;
	if (w->tmp[0] && unlinkat(w->dirfd, w->tmp, 0) == 0)
		w->tmp[0] = '\0';
	/* The entry is visible and correct now; a failed directory fsync
	 * only means it may not survive a crash (a later miss, never a wrong
	 * answer), so it is reported, not turned into a failed publish. */
	if (db->fsync == LARDER_FSYNC_FULL && !w->internal &&
	    ldr_fsync(w->dirfd) != 0) {
		int e = errno;
		ldr_count(db, LARDER_CTR_WRITE_FAILURES);
		ldr_log(db, LARDER_LOG_WARN,
			"published '%s/%s/%s' but cannot fsync its directory: "
			"%s",
			db->dir, w->dirrel, w->hex, strerror(e));
	}
	if (!(w->flags & LARDER_PUT_NO_HEAD) &&
	    ldr_head_write(db, w->ns, w->key, w->klen, w->ver, w->vlen) != 0)
		/* The entry is published and correct; the hint only lags. */
		ldr_log(db, LARDER_LOG_WARN, "head hint not updated: %s",
			larder_errmsg(db));
	/* Usage, and the cleaning a crossed cap starts (after the head, so
	 * that the new entry supersedes the old version). */
	if (published)
		if (db->hooks.published)
			db->hooks.published(db, w->ns, w->hex);
out:
	free(hdr);
	writer_free(w);
	return rc;
}

int larder_writer_commit(larder_writer *w)
{
	return finish(w, NULL, NULL, 0);
}

int ldr_writer_commit_fill(larder_writer *w, larder_entry **uncached,
			   larder_entry **own)
{
	*uncached = NULL;
	if (own)
		*own = NULL;
	w->own = own;
	return finish(w, uncached, NULL, 0);
}

int ldr_writer_stage_write(larder_writer *w, const struct iovec *iov,
			   int iovcnt)
{
	if (w->failed)
		return ldr_fail(w->db, LARDER_EINVAL, 0,
				"write after a failed write: abort the stage");
	for (int i = 0; i < iovcnt; i++) {
		int rc = emit(w, iov[i].iov_base, iov[i].iov_len);
		if (rc) {
			w->failed = 1;
			return rc;
		}
	}
	return 0;
}

int ldr_writer_stage_commit(larder_writer *w, const void *hdr, size_t hlen,
			    int no_head)
{
	if (no_head)
		w->flags |= LARDER_PUT_NO_HEAD;
	return finish(w, NULL, hdr, hlen);
}

void larder_writer_abort(larder_writer *w)
{
	writer_free(w);
}

int larder_put(larder *db, const char *ns, const void *key, size_t klen,
	       const void *ver, size_t vlen, const void *data, size_t len,
	       const larder_put_opts *opts)
{
	larder_writer *w;
	int rc = larder_writer_begin(&w, db, ns, key, klen, ver, vlen, opts);
	if (rc)
		return rc;
	rc = larder_writer_write(w, data, len);
	if (rc) {
		larder_writer_abort(w);
		return rc;
	}
	return larder_writer_commit(w);
}

/* larder_put_many through a backend that commits many at once
 * (backend.h, stage_commit_many): each entry made in memory and staged
 * as larder_put stages it, then every commit in one batch; each result,
 * and each count, as larder_put's. */
static int put_many_be(larder *db, const char *ns, size_t n,
		       const void *const *keys, const size_t *klens,
		       const void *const *vers, const size_t *vlens,
		       const void *const *data, const size_t *lens,
		       const larder_put_opts *opts, int *rc)
{
	struct ldr_backend *be = db->be;
	struct ldr_stage **st = calloc(n, sizeof *st);
	uint8_t **hdr = calloc(n, sizeof *hdr);
	size_t *hlen = calloc(n, sizeof *hlen), *idx = calloc(n, sizeof *idx);
	int *res = calloc(n, sizeof *res);
	if (!st || !hdr || !hlen || !idx || !res) {
		free(st);
		free(hdr);
		free(hlen);
		free(idx);
		free(res);
		return ldr_fail(db, LARDER_ENOMEM, ENOMEM, "out of memory");
	}
	size_t m = 0;
	for (size_t i = 0; i < n; i++) {
		larder_writer *w = NULL;
		ldr_hdr h;
		uint8_t *hb = NULL;
		int r = larder_writer_begin(&w, db, ns, keys[i], klens[i],
					    vers[i], vlens[i], opts);
		if (!r)
			r = larder_writer_write(w, data[i], lens[i]);
		if (!r)
			r = seal(w, NULL, 0, &h, &hb);
		if (!r)
			r = stage_be(w, h.hdr_len, h.stored_len, &st[m]);
		writer_free(w); /* its bytes are in the stage now */
		if (r) {
			free(hb);
			rc[i] = r;
			continue;
		}
		hdr[m] = hb;
		hlen[m] = h.hdr_len;
		idx[m++] = i;
	}
	unsigned flags =
	    opts && (opts->flags & LARDER_PUT_NO_HEAD) ? LDR_BE_NO_HEAD : 0;
	be->ops->stage_commit_many(st, m, (const void *const *)hdr, hlen, flags,
				   res);
	for (size_t k = 0; k < m; k++) {
		rc[idx[k]] = res[k];
		if (res[k] >= 0)
			ldr_count(db, res[k] == 0 ? LARDER_CTR_PUBLISHED
						  : LARDER_CTR_PUBLISH_RACED);
		free(hdr[k]);
	}
	ldr_stats_tick(db);
	free(st);
	free(hdr);
	free(hlen);
	free(idx);
	free(res);
	return 0;
}

int larder_put_many(larder *db, const char *ns, size_t n,
		    const void *const *keys, const size_t *klens,
		    const void *const *vers, const size_t *vlens,
		    const void *const *data, const size_t *lens,
		    const larder_put_opts *opts, int *rc)
{
	if (n && (!keys || !klens || !vers || !vlens || !data || !lens || !rc))
		return ldr_fail(db, LARDER_EINVAL, 0,
				"larder_put_many: every array is required");
	struct ldr_backend *be = db->be;
	if (be && !db->be_own && be->ops->version >= 3 &&
	    be->ops->stage_commit_many && n > 1)
		return put_many_be(db, ns, n, keys, klens, vers, vlens, data,
				   lens, opts, rc);
	/* The directory: one put after another, each its own result. */
	for (size_t i = 0; i < n; i++)
		rc[i] = larder_put(db, ns, keys[i], klens[i], vers[i], vlens[i],
				   data[i], lens[i], opts);
	return 0;
}
