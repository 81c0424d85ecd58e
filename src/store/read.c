/*
 * read.c — owns the read path (docs/format.md, "How a reader reads"): open by
 * name, read or map, check header against what was asked, verify the payload,
 * hand out an entry whose data stays valid until released, or stream it to a
 * sink. Also reads head hints.
 *
 * What a reader hands out is what it verified (docs/security.md): a file
 * is mapped only when no hand but ours, root's or the store owner's can
 * change it. Any other is read into private memory and verified there or,
 * streamed, verified in chunks and then hashed again as it is handed out,
 * so that a change in between is an error, never output taken for good.
 */
#include "store.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#define ZSTD_STATIC_LINKING_ONLY /* ZSTD_decompressBound */
#include <zstd.h>
#include <zstd_errors.h>

#include "clock.h"
#include "fsutil.h"
#include "hash.h"
#include "gc.h"

struct larder_entry {
	struct ldr_file f; /* the whole entry file, read or mapped */
	uint8_t *plain;	   /* decompressed payload (zstd entries) */
	const uint8_t *data;
	size_t size;
	const uint8_t *ver, *meta;
	size_t vlen, mlen;
	int64_t created, expires;
};

/* Payload bytes read per pread when a file is judged or streamed in
 * chunks: memory stays bounded whatever the file's size, and 1 MiB makes
 * the syscalls' cost vanish against the hashing. */
#define LDR_CHUNK (1u << 20)

/* How file_load treats a file larger than its first read. */
enum {
	LOAD_WHOLE,  /* larder_get: mapped if safe and large, else read */
	LOAD_STREAM, /* larder_get_stream: mapped if safe and large; else,
			beyond LDR_CHUNK, only its header (partial) */
	LOAD_SCAN    /* walk, publish: never mapped; beyond LDR_CHUNK, only
			its header (partial) */
};

/* Whether only trusted hands can change the file's bytes: its owner is
 * this user, root or the store's owner, and neither group nor others have
 * a write bit (with POSIX ACLs the group bits are the mask, so a named
 * user's write access shows there too). Anyone else who owns a file can
 * chmod it and write into it while a mapping of it is in use. The
 * store's owner is tried first: in most stores it owns every entry, and
 * geteuid() is a syscall. */
static int safe_file(const larder *db, const struct stat *st)
{
	if (st->st_mode & (S_IWGRP | S_IWOTH))
		return 0;
	return st->st_uid == db->owner || st->st_uid == 0 ||
	       st->st_uid == geteuid();
}

/* The reason a non-regular file at an entry's name is not an entry. */
static const char *not_a_file_why(unsigned type)
{
	switch (type) {
	case S_IFIFO:
		return "a FIFO, not a regular file";
	case S_IFDIR:
		return "a directory, not a regular file";
	case S_IFLNK:
		return "a symbolic link, not a regular file";
	case S_IFSOCK:
		return "a socket, not a regular file";
	case S_IFCHR:
	case S_IFBLK:
		return "a device, not a regular file";
	default:
		return "not a regular file";
	}
}

/* Opening rel failed with errno: if what is there is not a regular file
 * (a symlink, never followed; a socket; a FIFO or directory we may not
 * open), describe it with ftype, which the check calls corrupt, so that it
 * is quarantined and a refill can take its place. The parent is opened
 * without following symlinks, so nothing outside the store is ever looked
 * at. A regular file keeps the open's error. */
static int not_a_file(larder *db, const char *rel, struct ldr_file *f)
{
	int e = errno;
	const char *base;
	int dfd = ldr_open_parent(db, rel, &base);
	if (dfd < 0)
		return -1;
	struct stat st;
	int rc = fstatat(dfd, base, &st, AT_SYMLINK_NOFOLLOW);
	int se = errno;
	ldr_close(dfd);
	if (rc != 0) {
		errno = se;
		return -1;
	}
	if (S_ISREG(st.st_mode)) {
		errno = e;
		return -1;
	}
	f->ftype = (unsigned)(st.st_mode & S_IFMT);
	f->have_ident = 1;
	f->dev = st.st_dev;
	f->ino = st.st_ino;
	return 0;
}

/* Whether a file of `size` bytes, whose first bytes are in `head`, holds
 * a payload big enough to map: the threshold is about payloads, so look at
 * the header's stored length. */
static int worth_mapping(larder *db, const uint8_t *head, size_t n, size_t size)
{
	if (size < db->mmap_threshold)
		return 0;
	/* On a network filesystem a mapping can fault (SIGBUS) once another
	 * client removes the file: its pages may be dropped and there is
	 * nothing left to read them back from. A copy cannot. */
	if (db->network && !(db->flags & LARDER_OPEN_MAP_NETWORK))
		return 0;
	if (n < LDR_HDR_FIXED)
		return 1; /* let the header check judge the whole file */
	uint64_t stored = 0;
	for (int i = 7; i >= 0; i--)
		stored = stored << 8 | head[40 + i];
	return stored >= db->mmap_threshold || stored > size;
}

/* The file length the header at the start of buf claims, or 0 if there
 * is no plausible header of this format there. */
static uint64_t declared_len(const uint8_t *buf, size_t n)
{
	uint32_t need;
	if (ldr_hdr_need(buf, n, &need) != 0)
		return 0;
	uint64_t stored = 0;
	for (int i = 7; i >= 0; i--)
		stored = stored << 8 | buf[40 + i];
	return stored > UINT64_MAX - need ? 0 : need + stored;
}

/* A first read this big usually holds the whole file of a small entry,
 * so a hit needs no fstat (a syscall costs over 1 µs on some machines). */
#define LDR_FIRST_READ (16u << 10)

static int file_load(larder *db, const char *rel, struct ldr_file *f,
		     int noatime, int how);

int ldr_file_scan(larder *db, const char *rel, struct ldr_file *f, int noatime)
{
	return file_load(db, rel, f, noatime, LOAD_SCAN);
}

/* Read the header of a large file whose first n bytes are in *buf (of
 * size >= n): the rest of it too when it claims more, up to the file's
 * size. The payload stays on disk. */
static int load_header(int fd, uint8_t **buf, ssize_t *n, uint64_t size)
{
	uint32_t need;
	int rc = ldr_hdr_need(*buf, (size_t)*n, &need);
	if ((rc != 0 && rc != LARDER_EVERSION) || need <= (size_t)*n ||
	    need > size)
		return 0; /* the header check judges what is there */
	uint8_t *b = realloc(*buf, need);
	if (!b) {
		errno = ENOMEM;
		return -1;
	}
	*buf = b;
	*n = ldr_pread_full(fd, b, need, 0);
	return *n < 0 ? -1 : 0;
}

static int file_load(larder *db, const char *rel, struct ldr_file *f,
		     int noatime, int how)
{
	memset(f, 0, sizeof *f);
	f->fd = -1;
	/* O_NONBLOCK: a FIFO planted at an entry path must not hang the
	 * reader (it has no effect on regular files); O_NOCTTY: nor may a
	 * terminal become ours. O_NOATIME needs the file's owner (or
	 * CAP_FOWNER): without it, open as anyone may. */
	const int fl = O_RDONLY | O_NONBLOCK | O_NOCTTY;
	int fd = ldr_open_beneath(db->rootfd, rel,
				  fl | (noatime ? O_NOATIME : 0), 0);
	if (fd < 0 && noatime && errno == EPERM)
		fd = ldr_open_beneath(db->rootfd, rel, fl, 0);
	if (fd < 0)
		return errno == ENOENT || errno == ESTALE
			   ? -1
			   : not_a_file(db, rel, f);
	f->fd = fd;
	size_t first = LDR_FIRST_READ < db->mmap_threshold ? LDR_FIRST_READ
							   : db->mmap_threshold;
	uint8_t *buf = malloc(first);
	if (!buf)
		goto nomem;
	/* One pread, not a loop to EOF: a second syscall to see EOF would
	 * cost a small hit a third of its time. The header says how long
	 * the file must be; if the bytes read are exactly that, they are
	 * the whole file. Anything else takes the careful path below, and
	 * so does a handle that trusts safe files unverified: it needs to
	 * know who could have changed this one. */
	ssize_t n;
	do
		n = pread(fd, buf, first, 0);
	while (n < 0 && errno == EINTR);
	int rerr = errno;
	if (n > 0 && (size_t)n < first &&
	    (uint64_t)n == declared_len(buf, (size_t)n) &&
	    (how == LOAD_SCAN || !(db->flags & LARDER_OPEN_TRUST_LOCAL))) {
		if ((size_t)n < first / 2) {
			uint8_t *b = realloc(buf, n ? (size_t)n : 1);
			if (b)
				buf = b;
		}
		f->p = buf;
		f->len = (size_t)n;
		f->size = (uint64_t)n;
		return 0;
	}
	struct stat st;
	if (fstat(fd, &st) != 0)
		goto fail;
	f->have_ident = 1;
	f->dev = st.st_dev;
	f->ino = st.st_ino;
	if (!S_ISREG(st.st_mode)) {
		/* A FIFO (pread: ESPIPE), a directory (EISDIR), a device:
		 * not an entry, whatever it reads as. */
		free(buf);
		f->ftype = (unsigned)(st.st_mode & S_IFMT);
		return 0;
	}
	if (n < 0) {
		errno = rerr;
		goto fail;
	}
	f->safe = safe_file(db, &st);
	size_t size = (size_t)st.st_size;
	if ((uint64_t)n == (uint64_t)st.st_size) {
		f->p = buf; /* the first read had it all */
		f->len = (size_t)n;
		f->size = (uint64_t)n;
		return 0;
	}
	if (how != LOAD_SCAN && f->safe &&
	    worth_mapping(db, buf, (size_t)n, size)) {
		free(buf);
		buf = NULL;
		/* No MAP_POPULATE: measured here, faulting pages in as the
		 * checksum walks them beats populating them up front (1 MiB:
		 * 117 vs 128 us; 256 MiB: the same). */
		void *p = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
		if (p == MAP_FAILED)
			goto fail;
		f->p = p;
		f->len = size;
		f->size = size;
		f->mapped = 1;
		return 0;
	}
	if (how != LOAD_WHOLE &&
	    size > (db->mmap_threshold > LDR_CHUNK ? db->mmap_threshold
						   : LDR_CHUNK)) {
		/* Too big to hold for a look or a stream: the payload is
		 * read in chunks when it is needed. */
		if (load_header(fd, &buf, &n, size) != 0)
			goto fail;
		f->p = buf;
		f->len = (size_t)n;
		f->size = size;
		f->partial = 1;
		return 0;
	}
	if (how == LOAD_WHOLE && size > db->max_in_memory) {
		/* A copy as big as whoever made the file chose (a sparse file
		 * costs them no disk): refused before allocating. */
		free(buf);
		ldr_close(fd);
		f->fd = -1;
		f->size = size;
		errno = EFBIG;
		return -1;
	}
	uint8_t *b = realloc(buf, size ? size : 1);
	if (!b)
		goto nomem;
	buf = b;
	n = ldr_pread_full(fd, buf, size, 0);
	if (n < 0)
		goto fail; /* short: the header check catches it */
	f->p = buf;
	f->len = (size_t)n;
	f->size = (uint64_t)n;
	return 0;
nomem:
	errno = ENOMEM;
fail:;
	int e = errno;
	free(buf);
	ldr_close(fd);
	f->fd = -1;
	errno = e;
	return -1;
}

void ldr_file_ident(struct ldr_file *f)
{
	struct stat st;
	if (f->have_ident || f->fd < 0 || fstat(f->fd, &st) != 0)
		return;
	f->have_ident = 1;
	f->dev = st.st_dev;
	f->ino = st.st_ino;
}

void ldr_file_drop_fd(struct ldr_file *f)
{
	if (f->fd >= 0)
		ldr_close(f->fd);
	f->fd = -1;
}

void ldr_file_free(struct ldr_file *f)
{
	ldr_file_drop_fd(f);
	if (!f->p)
		return;
	if (f->mapped)
		munmap(f->p, f->len);
	else
		free(f->p);
	f->p = NULL;
}

/* ---------------------------------------------------------------------- */
/* A payload's flow: its stored bytes, as they are read, are hashed (to be
 * checked against the header), decompressed (zstd) with bounded memory,
 * and handed to a sink, or only checked.                                  */

struct flow {
	const ldr_hdr *h;
	struct ldr_hasher *st; /* hash of the stored bytes, or NULL */
	ZSTD_DCtx *z;	       /* decompressing a zstd payload, or NULL */
	uint8_t *zbuf;	       /* its output, ZSTD_DStreamOutSize() bytes */
	size_t zcap;
	int frame_done;	     /* the zstd frame ended */
	uint64_t out;	     /* bytes handed on (decompressed, if z) */
	larder_sink_fn sink; /* NULL: checked, then dropped */
	void *payload;
	int sink_rc; /* what the sink returned when it stopped the flow */
	const char *why;
};

/* flow_* return: 0, LARDER_ECORRUPT (fl->why), LARDER_ENOMEM, or: */
#define FLOW_SINK 1 /* the sink stopped the flow: fl->sink_rc */

static void flow_free(struct flow *fl)
{
	if (fl->st)
		ldr_hasher_free(fl->st);
	ZSTD_freeDCtx(fl->z);
	free(fl->zbuf);
}

static int flow_begin(struct flow *fl, const ldr_hdr *h, int hash, int unzstd,
		      larder_sink_fn sink, void *payload)
{
	memset(fl, 0, sizeof *fl);
	fl->h = h;
	fl->sink = sink;
	fl->payload = payload;
	if (hash) {
		if (!(fl->st = ldr_hasher_new()))
			return LARDER_ENOMEM;
		ldr_hasher_reset(fl->st);
	}
	if (unzstd && h->codec == LDR_CODEC_ZSTD) {
		fl->z = ZSTD_createDCtx();
		fl->zcap = ZSTD_DStreamOutSize();
		fl->zbuf = malloc(fl->zcap);
		if (!fl->z || !fl->zbuf)
			return LARDER_ENOMEM;
		/* The window a frame may ask for is what memory it costs:
		 * zstd's own default limit (128 MiB), said here so that it
		 * stays the documented bound (larder.h, larder_get_stream). */
		if (ZSTD_isError(
			ZSTD_DCtx_setParameter(fl->z, ZSTD_d_windowLogMax,
					       ZSTD_WINDOWLOG_LIMIT_DEFAULT)))
			return LARDER_ENOMEM;
	}
	return 0;
}

/* The bytes to hand on, never more than the header's raw length. */
static int flow_give(struct flow *fl, const void *p, size_t n)
{
	if (n == 0)
		return 0;
	uint64_t want = fl->z ? fl->h->raw_len : fl->h->stored_len;
	if (n > want - fl->out) {
		fl->why = "zstd payload decompresses to more than its header "
			  "says";
		return LARDER_ECORRUPT;
	}
	fl->out += n;
	if (fl->sink && (fl->sink_rc = fl->sink(p, n, fl->payload)) != 0)
		return FLOW_SINK;
	return 0;
}

static int flow_feed(struct flow *fl, const uint8_t *p, size_t n)
{
	if (fl->st && n)
		ldr_hasher_update(fl->st, p, n);
	if (!fl->z)
		return flow_give(fl, p, n);
	if (n && fl->frame_done) {
		fl->why = "data after the zstd frame";
		return LARDER_ECORRUPT;
	}
	ZSTD_inBuffer in = {p, n, 0};
	ZSTD_outBuffer o;
	do {
		o.dst = fl->zbuf;
		o.size = fl->zcap;
		o.pos = 0;
		size_t r = ZSTD_decompressStream(fl->z, &o, &in);
		if (ZSTD_isError(r)) {
			if (ZSTD_getErrorCode(r) ==
			    ZSTD_error_memory_allocation)
				return LARDER_ENOMEM;
			fl->why = "zstd payload does not decompress";
			return LARDER_ECORRUPT;
		}
		int rc = flow_give(fl, fl->zbuf, o.pos);
		if (rc)
			return rc;
		if (r == 0) {
			fl->frame_done = 1;
			if (in.pos < in.size) {
				fl->why = "data after the zstd frame";
				return LARDER_ECORRUPT;
			}
			return 0;
		}
		/* A full output buffer may hide more output: go on until
		 * the input is used and the decoder has nothing left. */
	} while (in.pos < in.size || o.pos == o.size);
	return 0;
}

static int flow_end(struct flow *fl)
{
	if (fl->z && !fl->frame_done) {
		fl->why = "zstd frame cut short";
		return LARDER_ECORRUPT;
	}
	if (fl->out != (fl->z ? fl->h->raw_len : fl->h->stored_len)) {
		fl->why = fl->z ? "zstd payload decompresses to less than "
				  "its header says"
				: "payload shorter than its header says";
		return LARDER_ECORRUPT;
	}
	if (fl->st) {
		uint8_t sum[16];
		ldr_hasher_digest(fl->st, sum);
		if (memcmp(sum, fl->h->payload_hash, 16) != 0) {
			fl->why = "payload checksum mismatch";
			return LARDER_ECORRUPT;
		}
	}
	return 0;
}

/* Feed the stored payload of a partial file to fl, read from its fd in
 * chunks. The file was fstat'ed at its full length: a short read means it
 * changed under us, which a published entry never does. Returns as flow_*
 * do, or a negative code (recorded) when it cannot be read. */
static int feed_from_file(larder *db, const struct ldr_file *f, const char *rel,
			  struct flow *fl)
{
	const ldr_hdr *h = fl->h;
	size_t cap =
	    h->stored_len < LDR_CHUNK ? (size_t)h->stored_len : LDR_CHUNK;
	uint8_t *buf = malloc(cap ? cap : 1);
	if (!buf)
		return ldr_fail(db, LARDER_ENOMEM, ENOMEM, "out of memory");
	uint64_t off = h->hdr_len, left = h->stored_len;
	int rc = 0;
	while (left && rc == 0) {
		size_t want = left < cap ? (size_t)left : cap;
		ssize_t n = ldr_pread_full(f->fd, buf, want, (off_t)off);
		if (n < 0) {
			rc =
			    ldr_fail_errno(db, errno, "cannot read '%s/%s': %s",
					   db->dir, rel, strerror(errno));
			break;
		}
		if ((size_t)n < want) {
			fl->why = "file changed while it was read (shorter)";
			rc = LARDER_ECORRUPT;
			break;
		}
		rc = flow_feed(fl, buf, want);
		off += want;
		left -= want;
	}
	free(buf);
	return rc;
}

/* The payload checks of ldr_entry_check: LARDER_ECORRUPT (*why), 0, or a
 * negative code (recorded) when it cannot be read. */
static int payload_check(larder *db, const struct ldr_file *f, const char *rel,
			 const ldr_hdr *h, unsigned check, const char **why)
{
	int unzstd = (check & LDR_CHECK_ZSTD) && h->codec == LDR_CODEC_ZSTD;
	if (!f->partial) {
		if ((check & LDR_CHECK_HASH) &&
		    ldr_payload_verify(h, f->p + h->hdr_len) != 0) {
			*why = "payload checksum mismatch";
			return LARDER_ECORRUPT;
		}
		if (!unzstd)
			return 0;
	}
	struct flow fl;
	int rc = flow_begin(&fl, h, f->partial && (check & LDR_CHECK_HASH),
			    unzstd, NULL, NULL);
	if (rc == 0)
		rc = f->partial ? feed_from_file(db, f, rel, &fl)
				: flow_feed(&fl, f->p + h->hdr_len,
					    (size_t)h->stored_len);
	if (rc == 0)
		rc = flow_end(&fl);
	if (rc == LARDER_ECORRUPT)
		*why = fl.why;
	else if (rc == LARDER_ENOMEM)
		rc = ldr_fail(db, rc, ENOMEM, "out of memory");
	flow_free(&fl);
	return rc;
}

static int same(const void *a, size_t alen, const void *b, size_t blen)
{
	return alen == blen && (alen == 0 || memcmp(a, b, alen) == 0);
}

int ldr_entry_check(larder *db, const struct ldr_file *f, const char *rel,
		    const char *ns, const void *key, size_t klen,
		    const void *ver, size_t vlen, unsigned check, ldr_hdr *h,
		    const char **why)
{
	*why = NULL;
	memset(h, 0, sizeof *h);
	if (f->ftype) {
		*why = not_a_file_why(f->ftype);
		return LARDER_STATE_CORRUPT;
	}
	int rc = ldr_hdr_decode(h, f->p, f->len, why);
	if (rc)
		h->hdr_len = 0;
	if (rc == LARDER_EVERSION)
		return LARDER_STATE_NEWER;
	if (rc)
		return LARDER_STATE_CORRUPT;
	if (f->size - h->hdr_len != h->stored_len) {
		*why = f->size - h->hdr_len < h->stored_len
			   ? "file shorter than its header says (truncated)"
			   : "file longer than its header says";
		return LARDER_STATE_CORRUPT;
	}
	if (!same(h->ns, h->ns_len, ns, strlen(ns)) ||
	    (key && !same(h->key, h->key_len, key, klen)) ||
	    (ver && !same(h->ver, h->ver_len, ver, vlen))) {
		*why = "header names another key, version or namespace";
		return LARDER_STATE_MISPLACED;
	}
	if (check) {
		rc = payload_check(db, f, rel, h, check, why);
		if (rc == LARDER_ECORRUPT)
			return LARDER_STATE_CORRUPT;
		if (rc)
			return rc;
	}
	if (h->expires && ldr_now_ns() >= h->expires) {
		*why = "expired";
		return LARDER_STATE_EXPIRED;
	}
	return LARDER_STATE_OK;
}

/* Decompress a checked zstd entry's payload into e->plain. At most `cap`
 * bytes are allocated: the raw length is only as good as the header's
 * checksum, and whoever can publish chose it. */
static int decompress(larder *db, larder_entry *e, const ldr_hdr *h,
		      uint64_t cap, const char *what)
{
	const uint8_t *src = e->f.p + h->hdr_len;
	/* Exactly one frame, as larder writes it and as a stream reads it;
	 * and no more raw bytes than the frame can make (before they are
	 * allocated). */
	unsigned long long bound = ZSTD_decompressBound(src, h->stored_len);
	if (bound == ZSTD_CONTENTSIZE_ERROR || h->raw_len > bound ||
	    ZSTD_findFrameCompressedSize(src, h->stored_len) != h->stored_len ||
	    h->raw_len > SIZE_MAX / 2)
		return LARDER_ECORRUPT;
	if (h->raw_len > cap)
		return ldr_fail(db, LARDER_ENOMEM, 0,
				"%s decompresses to %llu bytes, more than this "
				"handle holds in memory (%llu: "
				"larder_opts.max_in_memory); read it with "
				"larder_get_stream(), which needs no more",
				what, (unsigned long long)h->raw_len,
				(unsigned long long)cap);
	e->plain = malloc(h->raw_len ? h->raw_len : 1);
	if (!e->plain)
		return ldr_fail(db, LARDER_ENOMEM, ENOMEM,
				"out of memory for the %llu decompressed bytes "
				"of %s",
				(unsigned long long)h->raw_len, what);
	size_t n = ZSTD_decompress(e->plain, h->raw_len, src, h->stored_len);
	if (ZSTD_isError(n) || n != h->raw_len)
		return LARDER_ECORRUPT;
	e->data = e->plain;
	return 0;
}

static void entry_fields(larder_entry *e, const ldr_hdr *h)
{
	if (!e->plain)
		e->data = e->f.p + h->hdr_len;
	e->size = h->raw_len;
	e->ver = h->ver;
	e->vlen = h->ver_len;
	e->meta = h->meta;
	e->mlen = h->meta_len;
	e->created = h->created;
	e->expires = h->expires;
}

int ldr_entry_from_fd(larder *db, int fd, const char *ns, const void *key,
		      size_t klen, const void *ver, size_t vlen,
		      larder_entry **out)
{
	*out = NULL;
	struct stat st;
	if (fstat(fd, &st) != 0)
		return ldr_fail_errno(db, errno, "cannot stat loaded data: %s",
				      strerror(errno));
	larder_entry *e = calloc(1, sizeof *e);
	if (!e)
		return ldr_fail(db, LARDER_ENOMEM, ENOMEM, "out of memory");
	e->f.fd = -1;
	e->f.len = (size_t)st.st_size;
	e->f.size = e->f.len;
	/* Our own memfd: nobody else can write into it. */
	void *p = e->f.len ? mmap(NULL, e->f.len, PROT_READ, MAP_SHARED, fd, 0)
			   : MAP_FAILED;
	if (p == MAP_FAILED) {
		free(e);
		return ldr_fail(db, LARDER_ENOMEM, errno,
				"cannot map loaded data: %s", strerror(errno));
	}
	e->f.p = p;
	e->f.mapped = 1;
	ldr_hdr h;
	const char *why;
	int state = ldr_entry_check(db, &e->f, "(loaded data)", ns, key, klen,
				    ver, vlen, LDR_CHECK_HASH, &h, &why);
	int rc = state == LARDER_STATE_OK || state == LARDER_STATE_EXPIRED
		     ? 0
		     : LARDER_ECORRUPT;
	/* The caller's own load, not something found on disk: no cap. */
	if (rc == 0 && h.codec == LDR_CODEC_ZSTD)
		rc = decompress(db, e, &h, UINT64_MAX, "the loaded data");
	if (rc) {
		larder_entry_release(e);
		return rc == LARDER_ECORRUPT
			   ? ldr_fail(db, rc, 0,
				      "loaded data failed its own check: %s",
				      why ? why : larder_strerror(rc))
			   : rc;
	}
	entry_fields(e, &h);
	*out = e;
	return 0;
}

static int miss(larder *db, const char *ns)
{
	return ldr_fail(db, LARDER_ENOTFOUND, 0,
			"entry not found in namespace '%s'", ns);
}

/* An entry file that is not to be served: count it, quarantine a damaged
 * one (anything at the name that is not an entry of some format, too),
 * and report a miss. */
static int reject(larder *db, struct ldr_file *f, const char *rel,
		  const char *ns, int state, const char *why)
{
	switch (state) {
	case LARDER_STATE_EXPIRED:
		ldr_count(db, LARDER_CTR_EXPIRED);
		break;
	case LARDER_STATE_NEWER:
		ldr_count(db, LARDER_CTR_NEWER_FORMAT);
		if (!__atomic_exchange_n(&db->said_newer, 1, __ATOMIC_RELAXED))
			ldr_log(db, LARDER_LOG_WARN,
				"'%s/%s' was written by a newer larder format; "
				"treated as a miss (upgrade larder to use it)",
				db->dir, rel);
		break;
	default: /* corrupt or misplaced: never served */
		ldr_count(db, LARDER_CTR_CHECKSUM_FAIL);
		ldr_file_ident(f);
		ldr_quarantine(db, rel, f->dev, f->ino, why);
		break;
	}
	return miss(db, ns);
}

/* A lookup in progress: the entry's name, its file and decoded header. */
struct lookup {
	char rel[LDR_REL_MAX];
	uint8_t hash[16];
	uint8_t *headver;
	struct ldr_file f;
	ldr_hdr h;
};

static void lookup_free(struct lookup *l)
{
	ldr_file_free(&l->f);
	free(l->headver);
}

/* Find (ns, key, ver), load its file as `how` says and check it: 0 with
 * l->f and l->h, the payload verified (except, with
 * LARDER_OPEN_TRUST_LOCAL, in a file only trusted hands can change), or a
 * miss (anything not servable, quarantined if damaged) or an error code,
 * recorded. Release l with lookup_free() in any case. */
static int lookup(larder *db, struct lookup *l, const char *ns, const void *key,
		  size_t klen, const void *ver, size_t vlen, int how,
		  int internal)
{
	int rc;
	memset(l, 0, sizeof *l);
	l->f.fd = -1;
	if (!ver) {
		rc = ldr_head_read(db, ns, key, klen, &l->headver, &vlen);
		if (rc == LARDER_ENOTFOUND)
			return miss(db, ns);
		if (rc)
			return rc;
		ver = l->headver;
	}
	char hex[33];
	ldr_entry_hash(ns, key, klen, ver, vlen, l->hash);
	ldr_hex(l->hash, 16, hex);
	ldr_file_rel(l->rel, ns, 'e', hex);

	/* ENOENT and ESTALE mean "gone": look once more (a network
	 * filesystem may have replaced its handle), then miss. */
	for (int attempt = 0;; attempt++) {
		if (file_load(db, l->rel, &l->f, 0, how) == 0)
			break;
		int err = errno;
		if (err == EFBIG)
			return ldr_fail(
			    db, LARDER_ENOMEM, 0,
			    "entry file '%s/%s' is %llu bytes, more "
			    "than this handle holds in memory (%llu: "
			    "larder_opts.max_in_memory); read it "
			    "with larder_get_stream(), which needs "
			    "no more",
			    db->dir, l->rel, (unsigned long long)l->f.size,
			    (unsigned long long)db->max_in_memory);
		if (err != ENOENT && err != ESTALE)
			return ldr_fail_errno(db, err,
					      "cannot read '%s/%s': %s",
					      db->dir, l->rel, strerror(err));
		if (attempt == 1)
			return miss(db, ns);
		if (err == ESTALE)
			ldr_count(db, LARDER_CTR_ESTALE_RETRIES);
	}
	/* The library's own records are tiny, and a flipped bit in one
	 * (a remembered file hash) would be a wrong answer: always checked.
	 * Trusting a file unchecked is for files nobody else can change. */
	unsigned check =
	    internal || !(db->flags & LARDER_OPEN_TRUST_LOCAL) || !l->f.safe
		? LDR_CHECK_HASH
		: 0;
	const char *why;
	int state = ldr_entry_check(db, &l->f, l->rel, ns, key, klen, ver, vlen,
				    check, &l->h, &why);
	if (state < 0)
		return state; /* the payload could not be read */
	if (state != LARDER_STATE_OK)
		return reject(db, &l->f, l->rel, ns, state, why);
	return 0;
}

static int get(larder_entry **out, larder *db, const char *ns, const void *key,
	       size_t klen, const void *ver, size_t vlen, int internal);

int larder_get(larder_entry **out, larder *db, const char *ns, const void *key,
	       size_t klen, const void *ver, size_t vlen)
{
	*out = NULL;
	int rc = ldr_check_ns(db, ns);
	if (rc)
		return rc;
	/* One request, one of hits or misses (larder.h): counted here, not
	 * in get(), which fill.c also uses while it waits. */
	rc = get(out, db, ns, key, klen, ver, vlen, 0);
	ldr_count(db, LARDER_CTR_REQUESTS);
	ldr_count(db, rc == 0 ? LARDER_CTR_HITS : LARDER_CTR_MISSES);
	return rc;
}

int ldr_get_quiet(larder_entry **out, larder *db, const char *ns,
		  const void *key, size_t klen, const void *ver, size_t vlen)
{
	*out = NULL;
	int rc = ldr_check_ns(db, ns);
	return rc ? rc : get(out, db, ns, key, klen, ver, vlen, 0);
}

int ldr_get_internal(larder_entry **out, larder *db, const char *ns,
		     const void *key, size_t klen, const void *ver, size_t vlen)
{
	*out = NULL;
	int rc = ldr_check_ns_internal(db, ns);
	return rc ? rc : get(out, db, ns, key, klen, ver, vlen, 1);
}

static int get(larder_entry **out, larder *db, const char *ns, const void *key,
	       size_t klen, const void *ver, size_t vlen, int internal)
{
	struct lookup l;
	larder_entry *e = NULL;
	int rc = lookup(db, &l, ns, key, klen, ver, vlen, LOAD_WHOLE, internal);
	if (rc)
		goto out;
	e = calloc(1, sizeof *e);
	if (!e) {
		rc = ldr_fail(db, LARDER_ENOMEM, ENOMEM, "out of memory");
		goto out;
	}
	e->f = l.f; /* the entry owns the file from here */
	memset(&l.f, 0, sizeof l.f);
	l.f.fd = -1;
	if (l.h.codec == LDR_CODEC_ZSTD) {
		char what[LDR_REL_MAX + 4200];
		snprintf(what, sizeof what, "'%s/%s'", db->dir, l.rel);
		rc = decompress(db, e, &l.h, db->max_in_memory, what);
		if (rc == LARDER_ECORRUPT)
			rc = reject(db, &e->f, l.rel, ns, LARDER_STATE_CORRUPT,
				    "zstd payload does not decompress to its "
				    "raw length");
		if (rc)
			goto out;
	}
	ldr_touch(db, e->f.fd, l.hash); /* recency for the cleaning */
	ldr_file_drop_fd(&e->f);	/* a held entry keeps no descriptor */
	entry_fields(e, &l.h);
	*out = e;
	e = NULL;
out:
	larder_entry_release(e);
	lookup_free(&l);
	return rc;
}

/* larder_get_stream without its counting; *served says whether the entry
 * was found good and handing it out began. */
static int get_stream(larder *db, const char *ns, const void *key, size_t klen,
		      const void *ver, size_t vlen, larder_sink_fn sink,
		      void *payload, int *served)
{
	struct lookup l;
	struct flow fl;
	memset(&fl, 0, sizeof fl);
	int rc = lookup(db, &l, ns, key, klen, ver, vlen, LOAD_STREAM, 0);
	if (rc)
		goto out;
	ldr_touch(db, l.f.fd, l.hash);
	/* A partial file was verified in chunks, and is read again to be
	 * handed out: hashed again on the way, so that a change in between
	 * (only a file others can write is partial) ends in an error. */
	int rehash = l.f.partial &&
		     (!(db->flags & LARDER_OPEN_TRUST_LOCAL) || !l.f.safe);
	rc = flow_begin(&fl, &l.h, rehash, 1, sink, payload);
	if (rc == 0)
		rc = l.f.partial ? feed_from_file(db, &l.f, l.rel, &fl)
				 : flow_feed(&fl, l.f.p + l.h.hdr_len,
					     (size_t)l.h.stored_len);
	if (rc == 0)
		rc = flow_end(&fl);
	if (rc == FLOW_SINK) {
		*served = 1;
		rc = fl.sink_rc;
	} else if (rc == LARDER_ECORRUPT && fl.out == 0) {
		/* Found bad before any byte went out: as good as a miss. */
		rc = reject(db, &l.f, l.rel, ns, LARDER_STATE_CORRUPT, fl.why);
	} else if (rc == LARDER_ECORRUPT) {
		const char *why = fl.why;
		if (l.f.partial && !strcmp(why, "payload checksum mismatch"))
			why = "file changed while it was read";
		ldr_count(db, LARDER_CTR_CHECKSUM_FAIL);
		ldr_file_ident(&l.f);
		ldr_quarantine(db, l.rel, l.f.dev, l.f.ino, why);
		rc = ldr_fail(db, LARDER_ECORRUPT, 0,
			      "'%s/%s': %s, after %llu bytes were handed out: "
			      "they are not the entry (quarantined)",
			      db->dir, l.rel, why, (unsigned long long)fl.out);
	} else if (rc == LARDER_ENOMEM) {
		rc = ldr_fail(db, rc, ENOMEM, "out of memory");
	} else if (rc == 0) {
		*served = 1;
	}
out:
	flow_free(&fl);
	lookup_free(&l);
	return rc;
}

int larder_get_stream(larder *db, const char *ns, const void *key, size_t klen,
		      const void *ver, size_t vlen, larder_sink_fn sink,
		      void *payload)
{
	int rc = ldr_check_ns(db, ns);
	if (rc)
		return rc;
	if (!sink || (!key && klen) || (!ver && vlen))
		return ldr_fail(db, LARDER_EINVAL, 0,
				"larder_get_stream: no sink, or a length "
				"without its bytes");
	int served = 0;
	rc = get_stream(db, ns, key, klen, ver, vlen, sink, payload, &served);
	ldr_count(db, LARDER_CTR_REQUESTS);
	ldr_count(db, served ? LARDER_CTR_HITS : LARDER_CTR_MISSES);
	return rc;
}

const void *larder_entry_data(const larder_entry *e)
{
	return e->data;
}

size_t larder_entry_size(const larder_entry *e)
{
	return e->size;
}

const void *larder_entry_version(const larder_entry *e, size_t *len)
{
	*len = e->vlen;
	return e->ver;
}

const void *larder_entry_meta(const larder_entry *e, size_t *len)
{
	*len = e->mlen;
	return e->meta;
}

int64_t larder_entry_created(const larder_entry *e)
{
	return e->created;
}

int64_t larder_entry_expires(const larder_entry *e)
{
	return e->expires;
}

int larder_entry_is_mapped(const larder_entry *e)
{
	return e->f.mapped && !e->plain;
}

void larder_entry_release(larder_entry *e)
{
	if (!e)
		return;
	ldr_file_free(&e->f);
	free(e->plain);
	free(e);
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
