/*
 * read.c — owns the read path (DESIGN §6): open by name, read or map,
 * check header against what was asked, verify the payload, hand out an
 * entry whose data stays valid until released. Also reads head hints.
 */
#include "store.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#define ZSTD_STATIC_LINKING_ONLY /* ZSTD_decompressBound */
#include <zstd.h>

#include "fsutil.h"
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

/* The last component of rel is a symlink (or other trap) where an entry
 * should be: describe it as an empty file, which the header check calls
 * corrupt, so that it is quarantined and a refill can take its place. The
 * parent is opened without following symlinks, so nothing outside the
 * store is ever looked at. */
static int load_not_a_file(larder *db, const char *rel, struct ldr_file *f)
{
	const char *base;
	int dfd = ldr_open_parent(db, rel, &base);
	if (dfd < 0)
		return -1;
	struct stat st;
	int rc = fstatat(dfd, base, &st, AT_SYMLINK_NOFOLLOW);
	int e = errno;
	ldr_close(dfd);
	if (rc != 0) {
		errno = e;
		return -1;
	}
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
 * is no plausible header there. */
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
		     int noatime);

int ldr_file_load(larder *db, const char *rel, struct ldr_file *f)
{
	return file_load(db, rel, f, 0);
}

int ldr_file_load_noatime(larder *db, const char *rel, struct ldr_file *f)
{
	return file_load(db, rel, f, 1);
}

static int file_load(larder *db, const char *rel, struct ldr_file *f,
		     int noatime)
{
	memset(f, 0, sizeof *f);
	f->fd = -1;
	/* O_NONBLOCK: a FIFO planted at an entry path must not hang the
	 * reader (it has no effect on regular files). O_NOATIME needs the
	 * file's owner (or CAP_FOWNER): without it, open as anyone may. */
	int fd = ldr_open_beneath(
	    db->rootfd, rel, O_RDONLY | O_NONBLOCK | (noatime ? O_NOATIME : 0),
	    0);
	if (fd < 0 && noatime && errno == EPERM)
		fd =
		    ldr_open_beneath(db->rootfd, rel, O_RDONLY | O_NONBLOCK, 0);
	if (fd < 0)
		return errno == ELOOP ? load_not_a_file(db, rel, f) : -1;
	f->fd = fd;
	size_t first = LDR_FIRST_READ < db->mmap_threshold ? LDR_FIRST_READ
							   : db->mmap_threshold;
	uint8_t *buf = malloc(first);
	if (!buf)
		goto nomem;
	/* One pread, not a loop to EOF: a second syscall to see EOF would
	 * cost a small hit a third of its time. The header says how long
	 * the file must be; if the bytes read are exactly that, they are
	 * the whole file. Anything else takes the careful path below. */
	ssize_t n;
	do
		n = pread(fd, buf, first, 0);
	while (n < 0 && errno == EINTR);
	if (n < 0) {
		if (errno != EISDIR && errno != EAGAIN && errno != EINVAL)
			goto fail;
		n = 0; /* not a readable file: empty, hence corrupt */
	}
	if ((size_t)n < first && (uint64_t)n == declared_len(buf, (size_t)n)) {
		if ((size_t)n < first / 2) {
			uint8_t *b = realloc(buf, n ? (size_t)n : 1);
			if (b)
				buf = b;
		}
		f->p = buf;
		f->len = (size_t)n;
		return 0;
	}
	struct stat st;
	if (fstat(fd, &st) != 0)
		goto fail;
	f->have_ident = 1;
	f->dev = st.st_dev;
	f->ino = st.st_ino;
	if (!S_ISREG(st.st_mode)) {
		free(buf); /* a device or such: corrupt */
		f->p = NULL;
		return 0;
	}
	size_t size = (size_t)st.st_size;
	if (worth_mapping(db, buf, (size_t)n, size)) {
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
		f->mapped = 1;
		return 0;
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

static int same(const void *a, size_t alen, const void *b, size_t blen)
{
	return alen == blen && (alen == 0 || memcmp(a, b, alen) == 0);
}

int ldr_entry_check(larder *db, const struct ldr_file *f, const char *ns,
		    const void *key, size_t klen, const void *ver, size_t vlen,
		    int verify_payload, ldr_hdr *h, const char **why)
{
	(void)db;
	*why = NULL;
	memset(h, 0, sizeof *h);
	int rc = ldr_hdr_decode(h, f->p, f->len, why);
	if (rc)
		h->hdr_len = 0;
	if (rc == LARDER_EVERSION)
		return LARDER_STATE_NEWER;
	if (rc)
		return LARDER_STATE_CORRUPT;
	if ((uint64_t)f->len - h->hdr_len != h->stored_len) {
		*why = f->len - h->hdr_len < h->stored_len
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
	if (verify_payload && ldr_payload_verify(h, f->p + h->hdr_len) != 0) {
		*why = "payload checksum mismatch";
		return LARDER_STATE_CORRUPT;
	}
	if (h->expires && ldr_now_ns() >= h->expires) {
		*why = "expired";
		return LARDER_STATE_EXPIRED;
	}
	return LARDER_STATE_OK;
}

static int decompress(larder_entry *e, const ldr_hdr *h)
{
	/* The raw length is only as good as the header's checksum; bound it
	 * by what the frame can decompress to before allocating it. */
	unsigned long long bound =
	    ZSTD_decompressBound(e->f.p + h->hdr_len, h->stored_len);
	if (bound == ZSTD_CONTENTSIZE_ERROR || h->raw_len > bound ||
	    h->raw_len > SIZE_MAX / 2)
		return LARDER_ECORRUPT;
	e->plain = malloc(h->raw_len ? h->raw_len : 1);
	if (!e->plain)
		return LARDER_ENOMEM;
	size_t n = ZSTD_decompress(e->plain, h->raw_len, e->f.p + h->hdr_len,
				   h->stored_len);
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
	int state =
	    ldr_entry_check(db, &e->f, ns, key, klen, ver, vlen, 1, &h, &why);
	int rc = state == LARDER_STATE_OK || state == LARDER_STATE_EXPIRED
		     ? 0
		     : LARDER_ECORRUPT;
	if (rc == 0 && h.codec == LDR_CODEC_ZSTD)
		rc = decompress(e, &h);
	if (rc) {
		larder_entry_release(e);
		return ldr_fail(db, rc, 0,
				"loaded data failed its own check: %s",
				why ? why : larder_strerror(rc));
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
	int rc;
	uint8_t *headver = NULL;
	if (!ver) {
		rc = ldr_head_read(db, ns, key, klen, &headver, &vlen);
		if (rc == LARDER_ENOTFOUND)
			return miss(db, ns);
		if (rc)
			return rc;
		ver = headver;
	}
	uint8_t hash[16];
	char hex[33], rel[LDR_REL_MAX];
	ldr_entry_hash(ns, key, klen, ver, vlen, hash);
	ldr_hex(hash, 16, hex);
	ldr_file_rel(rel, ns, 'e', hex);

	larder_entry *e = calloc(1, sizeof *e);
	if (!e) {
		rc = ldr_fail(db, LARDER_ENOMEM, ENOMEM, "out of memory");
		goto out;
	}
	/* ENOENT and ESTALE mean "gone": look once more (a network
	 * filesystem may have replaced its handle), then miss. */
	for (int attempt = 0;; attempt++) {
		if (ldr_file_load(db, rel, &e->f) == 0)
			break;
		int err = errno;
		if (err != ENOENT && err != ESTALE) {
			rc = ldr_fail_errno(db, err, "cannot read '%s/%s': %s",
					    db->dir, rel, strerror(err));
			goto out;
		}
		if (attempt == 1) {
			rc = miss(db, ns);
			goto out;
		}
		if (err == ESTALE)
			ldr_count(db, LARDER_CTR_ESTALE_RETRIES);
	}

	ldr_hdr h;
	const char *why;
	/* The library's own records are tiny, and a flipped bit in one
	 * (a remembered file hash) would be a wrong answer: always checked. */
	int verify = internal || !(db->flags & LARDER_OPEN_TRUST_LOCAL);
	int state = ldr_entry_check(db, &e->f, ns, key, klen, ver, vlen, verify,
				    &h, &why);
	if (state == LARDER_STATE_OK && h.codec == LDR_CODEC_ZSTD) {
		rc = decompress(e, &h);
		if (rc == LARDER_ENOMEM) {
			rc = ldr_fail(db, rc, ENOMEM, "out of memory");
			goto out;
		}
		if (rc) {
			state = LARDER_STATE_CORRUPT;
			why = "zstd payload does not decompress";
		}
	}
	switch (state) {
	case LARDER_STATE_OK:
		break;
	case LARDER_STATE_EXPIRED:
		ldr_count(db, LARDER_CTR_EXPIRED);
		rc = miss(db, ns);
		goto out;
	case LARDER_STATE_NEWER:
		ldr_count(db, LARDER_CTR_NEWER_FORMAT);
		if (!__atomic_exchange_n(&db->said_newer, 1, __ATOMIC_RELAXED))
			ldr_log(db, LARDER_LOG_WARN,
				"'%s/%s' was written by a newer larder format; "
				"treated as a miss (upgrade larder to use it)",
				db->dir, rel);
		rc = miss(db, ns);
		goto out;
	default: /* corrupt or misplaced: never served */
		ldr_count(db, LARDER_CTR_CHECKSUM_FAIL);
		ldr_file_ident(&e->f);
		ldr_quarantine(db, rel, e->f.dev, e->f.ino, why);
		rc = miss(db, ns);
		goto out;
	}
	ldr_touch(db, e->f.fd, hash); /* recency for the cleaning */
	ldr_file_drop_fd(&e->f);      /* a held entry keeps no descriptor */
	entry_fields(e, &h);
	*out = e;
	e = NULL;
	rc = 0;
out:
	larder_entry_release(e);
	free(headver);
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
		if ((id ? ldr_file_load_noatime(db, rel, &f)
			: ldr_file_load(db, rel, &f)) == 0)
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
	if (f.len >= 32 && memcmp(f.p, LDR_HEAD_MAGIC, 8) == 0) {
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
