/*
 * read.c — owns the read path (docs/format.md, "How a reader reads"): open by
 * name, read or map, check header against what was asked, verify the payload,
 * hand out an entry whose data stays valid until released, or stream it to a
 * sink. Loading and judging a file is file.c's; head hints are head.c's.
 *
 * What a reader hands out is what it verified (docs/security.md): a file
 * is mapped only when no hand but ours, root's or the store owner's can
 * change it. Any other is read into private memory and verified there or,
 * streamed, verified in chunks and then hashed again as it is handed out,
 * so that a change in between is an error, never output taken for good.
 */
#include "read.h"

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
/* The one file that needs zstd's static-linking section, for
 * ZSTD_decompressBound (exact bound of a frame's output, checked before
 * allocating it). Safe against the shared libzstd of Debian 12 (libzstd1
 * 1.5.4): the .so exports the symbol (`nm -D libzstd.so.1`); it takes a
 * pointer and a size and returns a number, so no struct layout crosses
 * the boundary; its signature is unchanged since libzstd 1.4.0. A
 * libzstd that dropped it would fail the link here (libzstd-dev and
 * libzstd1 come from one source package at one version), or, for a
 * binary built earlier, fail to load with an undefined symbol: never a
 * silent misreading. */
#define ZSTD_STATIC_LINKING_ONLY
#include <zstd.h>
#include <zstd_errors.h>

#include "backend.h"
#include "clock.h"
#include "fsutil.h"
#include "file.h"
#include "hash.h"
#include "head.h"
#include "memo.h"
#include "quarantine.h"
#include "recency.h"

struct larder_entry {
	struct ldr_file f; /* the whole entry file, read or mapped */
	uint8_t *plain;	   /* decompressed payload (zstd entries) */
	const uint8_t *data;
	size_t size;
	const uint8_t *ver, *meta;
	size_t vlen, mlen;
	int64_t created, expires;
	/* Bytes shared with the memo (e->f and e->plain then owned there):
	 * released by reference. */
	struct ldr_memo_hit memo;
	/* A handle whose payload is not verified yet
	 * (larder_get_unverified): what larder_entry_verify() needs; NULL
	 * once verified, and for every other handle. */
	struct ldr_lazy *lazy;
};

/* An unverified handle's file is e->f, open (f.fd), holding the whole
 * file of a small entry or only the header of a larger one (partial);
 * its decoded header, pointing into f.p, is h. */
struct ldr_lazy {
	larder *db;
	char ns[LARDER_NS_MAX + 1];
	char rel[LDR_REL_MAX];
	uint8_t hash[16];
	ldr_hdr h;
	/* A verification that found the entry damaged: LARDER_ECORRUPT for
	 * good, whatever is at its name by now. */
	int rc;
};

/* The room a small entry file's allocation keeps before its bytes for
 * the entry handle (ldr_file_load's pre), a multiple of any alignment. */
#define LDR_ENTRY_PRE                                                          \
	((sizeof(struct larder_entry) + _Alignof(max_align_t) - 1) /           \
	 _Alignof(max_align_t) * _Alignof(max_align_t))
/* A small hit reads into a reused buffer only if the handle fits before
 * the file's bytes (file.c, "Reused buffers"). */
_Static_assert(LDR_ENTRY_PRE <= LDR_BUFS_PRE,
	       "the entry handle fits a reused buffer's prefix");

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

static int own_entry(larder *db, larder_entry *e, const char *ns,
		     const void *key, size_t klen, const void *ver, size_t vlen,
		     larder_entry **out);

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
	return own_entry(db, e, ns, key, klen, ver, vlen, out);
}

int ldr_entry_from_mem(larder *db, const void *hdr, size_t hlen,
		       const void *payload, size_t plen, const char *ns,
		       const void *key, size_t klen, const void *ver,
		       size_t vlen, larder_entry **out)
{
	*out = NULL;
	/* One allocation, the handle before the bytes, as a hit's. */
	uint8_t *a = malloc(LDR_ENTRY_PRE + hlen + plen + 1);
	if (!a)
		return ldr_fail(db, LARDER_ENOMEM, ENOMEM, "out of memory");
	larder_entry *e = (larder_entry *)(void *)a;
	memset(e, 0, sizeof *e);
	e->f.fd = -1;
	e->f.pre = LDR_ENTRY_PRE;
	e->f.p = a + LDR_ENTRY_PRE;
	e->f.len = hlen + plen;
	e->f.size = e->f.len;
	memcpy(e->f.p, hdr, hlen);
	if (plen)
		memcpy(e->f.p + hlen, payload, plen);
	return own_entry(db, e, ns, key, klen, ver, vlen, out);
}

/* The tail of ldr_entry_from_fd and _mem: e (its file set) checked as a
 * read's, handed out in *out, or released. */
static int own_entry(larder *db, larder_entry *e, const char *ns,
		     const void *key, size_t klen, const void *ver, size_t vlen,
		     larder_entry **out)
{
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
		  const char *ns, const void *key, size_t klen, const void *ver,
		  size_t vlen, int state, const char *why)
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
		/* The key's head, if it links this very file or is a copy of
		 * it (ver: the version asked for, NULL if unknown), goes with
		 * it: the damage is counted and kept once. */
		if (ldr_quarantine(db, rel, f->dev, f->ino, why))
			ldr_head_drop_entry(db, ns, key, klen, ver, vlen,
					    f->dev, f->ino, NULL);
		break;
	}
	return miss(db, ns);
}

/* lookup() found the entry in the memo: no file was read. */
#define LDR_MEMO_HIT 1

/* A lookup in progress: the entry's name, its file and decoded header. */
struct lookup {
	char rel[LDR_REL_MAX];
	/* The file the entry was read from when that is not rel: a copied
	 * head (head.c); "" otherwise. */
	char frel[LDR_REL_MAX];
	uint8_t hash[16];
	uint8_t *headver;
	struct ldr_file f;
	ldr_hdr h;
	/* Read through the seam from a backend other than the handle's own
	 * directory (lookup_be): its name there, and a bad entry goes back
	 * to that backend (reject_found). */
	int via_be;
	struct ldr_name n;
	/* A read already done for lookup_be (larder_get_many's batch):
	 * taken over instead of reading; NULL otherwise. */
	struct prefetch *pf;
};

/* One entry of a batch read (backend.h, read_many): the file and the
 * read's result. */
struct prefetch {
	struct ldr_file f;
	int rc;
	/* With a near tier that is the handle's own directory: the first
	 * pass only looks near, and a near miss comes back as LDR_PF_DEFER
	 * for the batch; the second pass, with the batch's read, goes
	 * straight to it (near already missed). */
	int probe;
};

/* lookup() missed near in a probe pass (struct prefetch). */
#define LDR_PF_DEFER 2

static void lookup_free(struct lookup *l)
{
	ldr_file_free(&l->f);
	free(l->headver);
}

/* The entry found by lookup, in f (l's file, or the entry's that took
 * it over), is not to be served: as reject(), on the backend it came
 * from. */
static int reject_found(larder *db, struct lookup *l, struct ldr_file *f,
			const char *ns, const void *key, size_t klen, int state,
			const char *why)
{
	if (!l->via_be)
		return reject(db, f, l->frel[0] ? l->frel : l->rel, ns, key,
			      klen, l->h.ver, l->h.ver_len, state, why);
	if (state == LARDER_STATE_EXPIRED)
		ldr_count(db, LARDER_CTR_EXPIRED);
	else if (state == LARDER_STATE_NEWER)
		ldr_count(db, LARDER_CTR_NEWER_FORMAT);
	else
		db->be->ops->reject(db->be, &l->n, f, why);
	return miss(db, ns);
}

/* The version the backend's head names for (ns, key), into l->headver
 * and *ver, *vlen: 0, a miss, or an error. */
static int be_head(larder *db, struct lookup *l, const char *ns,
		   const void *key, size_t klen, const void **ver, size_t *vlen)
{
	ldr_name_init(&l->n, ns, key, klen, NULL, 0);
	int rc = db->be->ops->head_get(db->be, &l->n, &l->headver, vlen);
	if (rc == LARDER_ENOTFOUND)
		return miss(db, ns);
	if (rc == 0)
		*ver = l->headver;
	return rc;
}

/* lookup through the seam, for a backend other than the handle's own
 * directory (docs/backends.md): the head from the backend when no
 * version is asked, the entry read there, and its payload always hashed,
 * whatever the backend is. No memo: it keeps only what this handle's own
 * directory holds. */
static int lookup_be(larder *db, struct lookup *l, const char *ns,
		     const void *key, size_t klen, const void *ver, size_t vlen,
		     int how, size_t pre)
{
	struct ldr_backend *be = db->be;
	l->via_be = 1;
	int rc;
	if (!ver && (rc = be_head(db, l, ns, key, klen, &ver, &vlen)) != 0)
		return rc;
	ldr_name_init(&l->n, ns, key, klen, ver, vlen);
	memcpy(l->hash, l->n.hash, sizeof l->hash);
	char hex[33];
	ldr_hex(l->hash, 16, hex);
	ldr_file_rel(l->rel, ns, 'e', hex);
	if (l->pf && l->pf->probe)
		return LDR_PF_DEFER;
	if (l->pf) {
		rc = l->pf->rc;
		l->f = l->pf->f; /* ours from here */
		memset(&l->pf->f, 0, sizeof l->pf->f);
		l->pf->f.fd = -1;
	} else {
		rc = be->ops->read(be, &l->n, how, pre, &l->f);
	}
	if (rc == LARDER_ENOTFOUND)
		return miss(db, ns);
	if (rc)
		return rc;
	const char *why;
	int state = ldr_entry_check(db, &l->f, l->rel, ns, key, klen, ver, vlen,
				    LDR_CHECK_HASH, &l->h, &why);
	if (state < 0)
		return state;
	if (state != LARDER_STATE_OK)
		return reject_found(db, l, &l->f, ns, key, klen, state, why);
	return 0;
}

static int lookup_own(larder *db, struct lookup *l, const char *ns,
		      const void *key, size_t klen, const void *ver,
		      size_t vlen, int how, size_t pre, int internal,
		      struct ldr_memo_hit *memo);

/* Find (ns, key, ver), load its file as `how` says and check it: 0 with
 * l->f and l->h, the payload verified (except, with
 * LARDER_OPEN_TRUST_LOCAL, in a file only trusted hands can change), or a
 * miss (anything not servable, quarantined if damaged) or an error code,
 * recorded. Release l with lookup_free() in any case. */
static int lookup(larder *db, struct lookup *l, const char *ns, const void *key,
		  size_t klen, const void *ver, size_t vlen, int how,
		  size_t pre, int internal, struct ldr_memo_hit *memo)
{
	int rc;
	/* Only what lookup_free() and a failed lookup's caller read: l->rel,
	 * l->hash and l->h are written before they are used (zeroing all of
	 * l, 600 bytes, cost a hit ~60 instructions), and every load writes
	 * the whole of l->f (zeroing it here too, a `rep stos`, cost a hit
	 * ~2% of its user time). */
	l->headver = NULL;
	l->frel[0] = '\0';
	l->f.p = NULL;
	l->f.fd = -1;
	l->via_be = 0;
	if (!db->be_own && db->be) {
		if (!db->be_near)
			return lookup_be(db, l, ns, key, klen, ver, vlen, how,
					 pre);
		/* A tier whose near tier is this handle's own directory
		 * (tier.c): the version from the tier (the shared head),
		 * then near through the own path below (memo, mapping, its
		 * trust), and only a near miss through the tier. */
		if (!ver &&
		    (rc = be_head(db, l, ns, key, klen, &ver, &vlen)) != 0)
			return rc;
		if (l->pf && !l->pf->probe) /* near missed in the probe */
			return lookup_be(db, l, ns, key, klen, ver, vlen, how,
					 pre);
		rc = lookup_own(db, l, ns, key, klen, ver, vlen, how, pre,
				internal, memo);
		if (rc != LARDER_ENOTFOUND) {
			if (rc == 0 || rc == LDR_MEMO_HIT)
				ldr_count(db, LARDER_CTR_NEAR_HITS);
			return rc;
		}
		ldr_file_free(&l->f);
		memset(&l->f, 0, sizeof l->f);
		l->f.fd = -1;
		return lookup_be(db, l, ns, key, klen, ver, vlen, how, pre);
	}
	return lookup_own(db, l, ns, key, klen, ver, vlen, how, pre, internal,
			  memo);
}

/* lookup() in the handle's own directory. */
static int lookup_own(larder *db, struct lookup *l, const char *ns,
		      const void *key, size_t klen, const void *ver,
		      size_t vlen, int how, size_t pre, int internal,
		      struct ldr_memo_hit *memo)
{
	int rc;
	struct ldr_head_found hf;
	hf.f.p = NULL;
	hf.have_ehash = 0;
	if (!ver) {
		/* A head linked to the entry serves the lookup in one open:
		 * the entry comes with it, verified as below. */
		hf.how = how;
		hf.pre = pre;
		hf.trust = !internal && (db->flags & LARDER_OPEN_TRUST_LOCAL);
		rc = ldr_head_find(db, ns, key, klen, &hf, &l->headver, &vlen);
		if (rc == LDR_HEAD_BAD) {
			rc = reject(db, &hf.f, hf.rel, ns, key, klen, NULL, 0,
				    hf.state, hf.why);
			ldr_head_rejected(db, &hf);
			ldr_file_free(&hf.f);
			return rc;
		}
		if (rc == LARDER_ENOTFOUND)
			return miss(db, ns);
		if (rc)
			return rc;
		ver = l->headver;
	}
	size_t nslen = strlen(ns); /* once, for the name and the memo */
	if (hf.have_ehash)
		memcpy(l->hash, hf.ehash, sizeof l->hash);
	else
		ldr_entry_hash_n(ns, nslen, key, klen, ver, vlen, l->hash);
	/* With a head found, a hit of this version from here on, as if by
	 * its name: the memo serves it if it holds it (and counts this read
	 * for admission if not), as a lookup by version would. */
	if (memo && db->memo &&
	    ldr_memo_get(db, l->hash, ns, nslen, key, klen, ver, vlen, memo)) {
		if (hf.f.p)
			ldr_file_free(&hf.f);
		return LDR_MEMO_HIT;
	}
	/* The file's name, after the memo: a memo hit needs none (its hex
	 * and path were ~10% of a repeat hit's time). */
	char hex[33];
	ldr_hex(l->hash, 16, hex);
	ldr_file_rel(l->rel, ns, 'e', hex);
	if (hf.f.p) {
		l->f = hf.f;
		l->h = hf.h;
		if (hf.copy) /* (hf.rel fits: LDR_REL_MAX) */
			memcpy(l->frel, hf.rel, strlen(hf.rel) + 1);
		ldr_file_learn(db, &l->f);
		return 0;
	}
	/* A read the memo may take keeps its bytes apart: the memo holds
	 * them longer than the entry handle. */
	if (memo && memo->again)
		pre = 0;
	rc = ldr_entry_load(db, l->rel, &l->f, how, pre);
	if (rc == LARDER_ENOTFOUND)
		return miss(db, ns);
	if (rc)
		return rc;
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
		return reject(db, &l->f, l->rel, ns, key, klen, ver, vlen,
			      state, why);
	ldr_file_learn(db, &l->f); /* what mapping or reading it cost */
	return 0;
}

static int get_pf(larder_entry **out, larder *db, const char *ns,
		  const void *key, size_t klen, const void *ver, size_t vlen,
		  int internal, struct prefetch *pf);

static int get(larder_entry **out, larder *db, const char *ns, const void *key,
	       size_t klen, const void *ver, size_t vlen, int internal)
{
	return get_pf(out, db, ns, key, klen, ver, vlen, internal, NULL);
}

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

const size_t ldr_get_read_pre = LDR_ENTRY_PRE;

int ldr_get_near(larder_entry **out, larder *db, const char *ns,
		 const void *key, size_t klen, const void *ver, size_t vlen)
{
	*out = NULL;
	/* The probe pass of a batch (get_many_be): near alone, through
	 * the handle's own path. */
	struct prefetch probe = {.probe = 1};
	probe.f.fd = -1;
	int rc = get_pf(out, db, ns, key, klen, ver, vlen, 0, &probe);
	return rc == LDR_PF_DEFER ? miss(db, ns) : rc;
}

int ldr_get_read(larder_entry **out, larder *db, const char *ns,
		 const void *key, size_t klen, const void *ver, size_t vlen,
		 struct ldr_file *f, int rc)
{
	*out = NULL;
	/* As a batch's read is taken over (get_many_be): judged, verified
	 * and handed out as a single get would, a bad one rejected. */
	struct prefetch pf = {.f = *f, .rc = rc, .probe = 0};
	memset(f, 0, sizeof *f);
	f->fd = -1;
	rc = get_pf(out, db, ns, key, klen, ver, vlen, 0, &pf);
	ldr_file_free(&pf.f); /* (taken over: nothing left) */
	return rc;
}

int ldr_get_internal(larder_entry **out, larder *db, const char *ns,
		     const void *key, size_t klen, const void *ver, size_t vlen)
{
	*out = NULL;
	int rc = ldr_check_ns_internal(db, ns);
	return rc ? rc : get(out, db, ns, key, klen, ver, vlen, 1);
}

/* larder_get_many through a backend that reads many at once
 * (backend.h, read_many): the heads of version-less keys first (in one
 * batch too where the backend has head_get_many), then every entry in
 * one batch, each then judged and handed out by get_pf as a single get
 * would. */
static int get_many_be(larder *db, const char *ns, size_t n,
		       const void *const *keys, const size_t *klens,
		       const void *const *vers, const size_t *vlens,
		       larder_entry **out, int *rc)
{
	struct ldr_backend *be = db->be;
	struct ldr_name *names = calloc(n ? n : 1, sizeof *names);
	struct prefetch *pf = calloc(n ? n : 1, sizeof *pf);
	struct ldr_file *files = calloc(n ? n : 1, sizeof *files);
	int *frc = calloc(n ? n : 1, sizeof *frc);
	uint8_t **hv = calloc(n ? n : 1, sizeof *hv);
	size_t *hl = calloc(n ? n : 1, sizeof *hl);
	size_t *idx = calloc(n ? n : 1, sizeof *idx);
	if (!names || !pf || !files || !frc || !hv || !hl || !idx) {
		free(names);
		free(pf);
		free(files);
		free(frc);
		free(hv);
		free(hl);
		free(idx);
		return ldr_fail(db, LARDER_ENOMEM, ENOMEM, "out of memory");
	}
	/* The heads of version-less keys: in one batch where the backend
	 * has one (Redis: one round trip), else one by one below. */
	int batch = be->ops->version >= 3 && be->ops->head_get_many;
	if (batch) {
		size_t h = 0;
		for (size_t i = 0; i < n; i++)
			if (!vers || !vers[i])
				ldr_name_init(&names[h++], ns, keys[i],
					      klens[i], NULL, 0);
		be->ops->head_get_many(be, names, h, hv, hl, frc);
		/* Spread back to the keys they belong to, last first. */
		for (size_t i = n; i-- > 0;)
			if (!vers || !vers[i]) {
				h--;
				hv[i] = hv[h];
				hl[i] = hl[h];
				frc[i] = frc[h];
				if (h != i)
					hv[h] = NULL;
			}
	}
	size_t m = 0; /* the keys whose version is known */
	for (size_t i = 0; i < n; i++) {
		const void *ver = vers ? vers[i] : NULL;
		size_t vlen = ver ? vlens[i] : 0;
		if (!ver) {
			struct ldr_name hn;
			ldr_name_init(&hn, ns, keys[i], klens[i], NULL, 0);
			rc[i] =
			    batch ? frc[i]
				  : be->ops->head_get(be, &hn, &hv[i], &hl[i]);
			if (rc[i] == LARDER_ENOTFOUND)
				rc[i] = miss(db, ns);
			if (rc[i])
				continue;
			ver = hv[i];
			vlen = hl[i];
		}
		ldr_name_init(&names[m], ns, keys[i], klens[i], ver, vlen);
		idx[m++] = i;
	}
	if (db->be_near) {
		/* Near is this handle's own directory: its hits are served
		 * there (memo, mapping) as a single get's, and only its
		 * misses go to the batch. */
		size_t d = 0;
		for (size_t k = 0; k < m; k++) {
			size_t i = idx[k];
			struct prefetch probe = {.probe = 1};
			probe.f.fd = -1;
			rc[i] = get_pf(&out[i], db, ns, keys[i], klens[i],
				       names[k].ver, names[k].vlen, 0, &probe);
			if (rc[i] != LDR_PF_DEFER)
				continue;
			names[d] = names[k];
			idx[d++] = i;
		}
		m = d;
	}
	be->ops->read_many(be, names, m, LDR_ENTRY_PRE, files, frc);
	for (size_t k = 0; k < m; k++) {
		size_t i = idx[k];
		pf[i].f = files[k];
		pf[i].rc = frc[k];
		rc[i] = get_pf(&out[i], db, ns, keys[i], klens[i], names[k].ver,
			       names[k].vlen, 0, &pf[i]);
		ldr_file_free(&pf[i].f); /* (taken over: nothing left) */
	}
	for (size_t i = 0; i < n; i++)
		free(hv[i]);
	free(names);
	free(pf);
	free(files);
	free(frc);
	free(hv);
	free(hl);
	free(idx);
	return 0;
}

int larder_get_many(larder *db, const char *ns, size_t n,
		    const void *const *keys, const size_t *klens,
		    const void *const *vers, const size_t *vlens,
		    larder_entry **out, int *rc)
{
	if (n && (!keys || !klens || !out || !rc || (vers && !vlens)))
		return ldr_fail(db, LARDER_EINVAL, 0,
				"larder_get_many: keys, klens, out and rc are "
				"required (vlens with vers)");
	int r = ldr_check_ns(db, ns);
	if (r)
		return r;
	for (size_t i = 0; i < n; i++) {
		out[i] = NULL;
		rc[i] = 0;
	}
	struct ldr_backend *be = db->be;
	if (be && !db->be_own && be->ops->version >= 2 && be->ops->read_many &&
	    n > 1) {
		if ((r = get_many_be(db, ns, n, keys, klens, vers, vlens, out,
				     rc)))
			return r;
	} else {
		/* The directory: a get is an open and a read, nothing to
		 * gain by batching. */
		for (size_t i = 0; i < n; i++) {
			const void *ver = vers ? vers[i] : NULL;
			rc[i] = get(&out[i], db, ns, keys[i], klens[i], ver,
				    ver ? vlens[i] : 0, 0);
		}
	}
	for (size_t i = 0; i < n; i++) {
		ldr_count(db, LARDER_CTR_REQUESTS);
		ldr_count(db, rc[i] == 0 ? LARDER_CTR_HITS : LARDER_CTR_MISSES);
	}
	return 0;
}

/* An entry that shares a memo's bytes (the reference in mh is its). */
static void memo_fields(larder_entry *e, const struct ldr_memo_hit *mh)
{
	e->memo = *mh;
	e->data = mh->data;
	e->size = mh->size;
	e->ver = mh->ver;
	e->vlen = mh->vlen;
	e->meta = mh->meta;
	e->mlen = mh->mlen;
	e->created = mh->created;
	e->expires = mh->expires;
}

/* A hit served from a copied head: the cleaning goes by the entry's own
 * access time, so the entry's file is touched, when due, by its name
 * (an open more, once per touch interval). */
static void touch_entry(larder *db, const char *rel, const uint8_t hash[16])
{
	int fd = ldr_open_beneath(db->rootfd, rel,
				  O_RDONLY | O_NONBLOCK | O_NOCTTY, 0);
	if (fd < 0)
		return; /* gone: nothing to keep recent */
	ldr_touch(db, fd, hash);
	ldr_close(fd);
}

/* Recency for the cleaning after a hit read from fd: the entry's file,
 * or, through a copied head, the entry's own by its name (another
 * backend keeps its own). */
static void hit_recency(larder *db, const struct lookup *l, int fd)
{
	if (l->via_be)
		return;
	if (!l->frel[0])
		ldr_touch(db, fd, l->hash);
	else if (ldr_touch_due(db, l->hash))
		touch_entry(db, l->rel, l->hash);
}

static int get_pf(larder_entry **out, larder *db, const char *ns,
		  const void *key, size_t klen, const void *ver, size_t vlen,
		  int internal, struct prefetch *pf)
{
	struct lookup l;
	l.pf = pf;
	larder_entry *e = NULL;
	/* The library's own records are always read and verified. */
	struct ldr_memo_hit mh = {0},
			    *memo = internal || (db->be && !db->be_own &&
						 !db->be_near)
					? NULL
					: &mh;
	int rc = lookup(db, &l, ns, key, klen, ver, vlen, LDR_LOAD_WHOLE,
			LDR_ENTRY_PRE, internal, memo);
	if (rc && rc != LDR_MEMO_HIT)
		goto out;
	if (rc == 0 && l.f.pre) {
		/* The room kept before the file's bytes: the handle and
		 * the bytes are one allocation, freed as one. */
		e = (larder_entry *)(void *)(l.f.p - l.f.pre);
		/* What is read before entry_fields() writes the rest
		 * (release, and the zstd path); no memset of the whole. */
		e->plain = NULL;
		e->memo.b = NULL;
		e->lazy = NULL;
	} else if (rc == LDR_MEMO_HIT) {
		/* malloc, not calloc: glibc's calloc (2.36) does not take
		 * from its per-thread cache of small blocks (tcache), and
		 * its slower path cost a repeat hit ~15% of its time. What
		 * release reads is set here, memo_fields() sets what the
		 * accessors read. */
		e = malloc(sizeof *e);
		if (e) {
			e->f.p = NULL;
			e->f.pre = 0;
			e->f.fd = -1;
			e->plain = NULL;
			e->lazy = NULL;
		}
	} else {
		e = calloc(1, sizeof *e);
	}
	if (!e) {
		rc = ldr_fail(db, LARDER_ENOMEM, ENOMEM, "out of memory");
		ldr_memo_unref(mh.b);
		goto out;
	}
	if (rc == LDR_MEMO_HIT) {
		rc = 0;
		memo_fields(e, &mh);
		*out = e;
		e = NULL;
		goto out;
	}
	/* The file's name: the entry's, or its copied head's. */
	const char *frel = l.frel[0] ? l.frel : l.rel;
	e->f = l.f;   /* the entry owns the file from here */
	l.f.p = NULL; /* (all that lookup_free() looks at) */
	l.f.fd = -1;
	if (l.h.codec == LDR_CODEC_ZSTD) {
		char what[LDR_REL_MAX + 4200];
		snprintf(what, sizeof what, "'%s/%s'", db->dir, frel);
		rc = decompress(db, e, &l.h, db->max_in_memory, what);
		if (rc == LARDER_ECORRUPT)
			rc = reject_found(db, &l, &e->f, ns, key, klen,
					  LARDER_STATE_CORRUPT,
					  "zstd payload does not decompress to "
					  "its raw length");
		if (rc)
			goto out;
	}
	hit_recency(db, &l, e->f.fd);
	entry_fields(e, &l.h);
	/* (The memo never takes bytes that share the handle's allocation:
	 * lookup keeps none for a read it may take.) */
	if (memo && !l.via_be && !e->f.pre &&
	    ldr_memo_put(db, l.hash, frel, &e->f, e->plain, &l.h, e->data,
			 mh.again, &mh) == 0) {
		e->plain = NULL; /* the memo's now, shared */
		memo_fields(e, &mh);
	}
	ldr_file_drop_fd(&e->f); /* a held entry keeps no descriptor */
	*out = e;
	e = NULL;
out:
	larder_entry_release(e);
	lookup_free(&l);
	return rc;
}

/* Hand a memo hit's verified payload to sink, in pieces of at most
 * LDR_CHUNK as a read from the file would. */
static int feed_memo(larder *db, const struct ldr_memo_hit *mh,
		     larder_sink_fn sink, void *payload, int *served)
{
	*served = 1;
	for (size_t off = 0; off < mh->size;) {
		size_t n =
		    mh->size - off < LDR_CHUNK ? mh->size - off : LDR_CHUNK;
		unsigned long mark = ldr_err_mark();
		int rc = sink(mh->data + off, n, payload);
		if (rc)
			return ldr_cb_rc(db, mark, rc, 1, "the sink");
		off += n;
	}
	return 0;
}

/* larder_get_stream without its counting; *served says whether the entry
 * was found good and handing it out began. */
static int get_stream(larder *db, const char *ns, const void *key, size_t klen,
		      const void *ver, size_t vlen, larder_sink_fn sink,
		      void *payload, int *served)
{
	struct lookup l;
	l.pf = NULL;
	struct ldr_flow fl;
	memset(&fl, 0, sizeof fl);
	struct ldr_memo_hit mh = {0};
	int rc = lookup(db, &l, ns, key, klen, ver, vlen, LDR_LOAD_STREAM, 0, 0,
			&mh);
	if (rc == LDR_MEMO_HIT) {
		rc = feed_memo(db, &mh, sink, payload, served);
		ldr_memo_unref(mh.b);
		goto out;
	}
	if (rc)
		goto out;
	const char *frel = l.frel[0] ? l.frel : l.rel;
	hit_recency(db, &l, l.f.fd);
	/* A partial file was verified in chunks, and is read again to be
	 * handed out: hashed again on the way, so that a change in between
	 * (only a file others can write is partial) ends in an error. */
	int rehash = l.f.partial &&
		     (!(db->flags & LARDER_OPEN_TRUST_LOCAL) || !l.f.safe);
	rc = ldr_flow_begin(&fl, &l.h, rehash, 1, sink, payload);
	if (rc == 0)
		rc = l.f.partial ? ldr_feed_from_file(db, &l.f, frel, &fl)
				 : ldr_flow_feed(&fl, l.f.p + l.h.hdr_len,
						 (size_t)l.h.stored_len);
	if (rc == 0)
		rc = ldr_flow_end(&fl);
	if (rc == LDR_FLOW_SINK) {
		*served = 1;
		rc = ldr_cb_rc(db, fl.sink_mark, fl.sink_rc, 1, "the sink");
	} else if (rc == LARDER_ECORRUPT && fl.out == 0) {
		/* Found bad before any byte went out: as good as a miss. */
		rc = reject_found(db, &l, &l.f, ns, key, klen,
				  LARDER_STATE_CORRUPT, fl.why);
	} else if (rc == LARDER_ECORRUPT) {
		const char *why = fl.why;
		if (l.f.partial && !strcmp(why, "payload checksum mismatch"))
			why = "file changed while it was read";
		if (l.via_be) {
			db->be->ops->reject(db->be, &l.n, &l.f, why);
		} else {
			ldr_count(db, LARDER_CTR_CHECKSUM_FAIL);
			ldr_file_ident(&l.f);
			ldr_quarantine(db, frel, l.f.dev, l.f.ino, why);
		}
		rc = ldr_fail(db, LARDER_ECORRUPT, 0,
			      "'%s/%s': %s, after %llu bytes were handed out: "
			      "they are not the entry (quarantined)",
			      db->dir, frel, why, (unsigned long long)fl.out);
	} else if (rc == LARDER_ENOMEM) {
		rc = ldr_fail(db, rc, ENOMEM, "out of memory");
	} else if (rc == 0) {
		*served = 1;
	}
out:
	ldr_flow_free(&fl);
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

/* ---------------------------------------------------------------------- */
/* Unverified handles: the entry's file held open from the lookup, its
 * header judged, its payload verified at larder_entry_verify(). What
 * holds the file is its descriptor: the entry may be removed, evicted or
 * quarantined at its name meanwhile, the handle still reads what it
 * opened.                                                                 */

static int get_unverified(larder_entry **out, larder *db, const char *ns,
			  const void *key, size_t klen, const void *ver,
			  size_t vlen)
{
	uint8_t *headver = NULL;
	struct ldr_lazy *lz = NULL;
	larder_entry *e = NULL;
	int rc;
	if (!ver) {
		rc = ldr_head_get(db, ns, key, klen, &headver, &vlen);
		if (rc == LARDER_ENOTFOUND)
			rc = miss(db, ns);
		if (rc)
			goto out;
		ver = headver;
	}
	e = calloc(1, sizeof *e);
	lz = calloc(1, sizeof *lz);
	if (!e || !lz) {
		rc = ldr_fail(db, LARDER_ENOMEM, ENOMEM, "out of memory");
		goto out;
	}
	e->f.fd = -1;
	lz->db = db;
	snprintf(lz->ns, sizeof lz->ns, "%s", ns);
	char hex[33];
	ldr_entry_hash(ns, key, klen, ver, vlen, lz->hash);
	ldr_hex(lz->hash, 16, hex);
	ldr_file_rel(lz->rel, ns, 'e', hex);
	rc = ldr_entry_load(db, lz->rel, &e->f, LDR_LOAD_HEADER, 0);
	if (rc == LARDER_ENOTFOUND)
		rc = miss(db, ns);
	if (rc)
		goto out;
	/* The header alone: a damaged one, a misplaced or expired entry
	 * are a miss now, as for larder_get(). */
	const char *why;
	int state = ldr_entry_check(db, &e->f, lz->rel, ns, key, klen, ver,
				    vlen, 0, &lz->h, &why);
	if (state < 0) {
		rc = state;
		goto out;
	}
	if (state != LARDER_STATE_OK) {
		rc = reject(db, &e->f, lz->rel, ns, key, klen, ver, vlen, state,
			    why);
		goto out;
	}
	entry_fields(e, &lz->h);
	e->data = NULL; /* nothing of the payload before it is verified */
	e->lazy = lz;
	lz = NULL;
	*out = e;
	e = NULL;
out:
	free(lz);
	larder_entry_release(e);
	free(headver);
	return rc;
}

int larder_get_unverified(larder_entry **out, larder *db, const char *ns,
			  const void *key, size_t klen, const void *ver,
			  size_t vlen)
{
	*out = NULL;
	int rc = ldr_check_ns(db, ns);
	if (rc)
		return rc;
	if (db->be && !db->be_own) {
		/* Entries read through another backend (a tier, Redis) are
		 * read whole by their backend: verified now (larder.h). */
		return larder_get(out, db, ns, key, klen, ver, vlen);
	}
	rc = get_unverified(out, db, ns, key, klen, ver, vlen);
	ldr_count(db, LARDER_CTR_REQUESTS);
	ldr_count(db, rc == 0 ? LARDER_CTR_HITS : LARDER_CTR_MISSES);
	return rc;
}

int larder_entry_verify(larder_entry *e)
{
	struct ldr_lazy *lz = e->lazy;
	if (!lz)
		return 0;
	larder *db = lz->db;
	const ldr_hdr *oh = &lz->h; /* the fields below point into e->f */
	if (lz->rc)
		return ldr_fail(db, lz->rc, 0,
				"'%s/%s' failed its verification before",
				db->dir, lz->rel);
	struct ldr_file nf, old;
	int rc, swapped = e->f.partial;
	memset(&old, 0, sizeof old);
	old.fd = -1;
	if (swapped) {
		/* Loaded again from the descriptor held since the lookup (a
		 * duplicate: the handle keeps its own should this fail), as
		 * larder_get() loads: mapped if only trusted hands can
		 * change it and it is large, else read, up to
		 * max_in_memory. */
		int fd = fcntl(e->f.fd, F_DUPFD_CLOEXEC, 0);
		if (fd < 0)
			return ldr_fail_errno(db, errno,
					      "cannot duplicate the descriptor "
					      "of '%s/%s': %s",
					      db->dir, lz->rel,
					      strerror(errno));
		if (ldr_file_load_fd(db, fd, &nf, LDR_LOAD_WHOLE) != 0) {
			int err = errno;
			if (err == EFBIG)
				return ldr_fail_too_big(db, lz->rel, nf.size,
							0);
			return ldr_fail_errno(db, err,
					      "cannot read '%s/%s': %s",
					      db->dir, lz->rel, strerror(err));
		}
		old = e->f;
		e->f = nf;
	}
	/* (Else the whole file is in e->f already.) Judged against the header
	 * found at the lookup (its fields stay in old until the end). Expiry
	 * since is no damage: a held entry stays valid after it expires. */
	const char *why;
	ldr_hdr h;
	int state =
	    ldr_entry_check(db, &e->f, lz->rel, lz->ns, oh->key, oh->key_len,
			    oh->ver, oh->ver_len, LDR_CHECK_HASH, &h, &why);
	if (state < 0) {
		rc = state;
		goto undo;
	}
	if (state == LARDER_STATE_EXPIRED)
		state = LARDER_STATE_OK;
	if (state == LARDER_STATE_OK && h.codec == LDR_CODEC_ZSTD) {
		char what[LDR_REL_MAX + 4200];
		snprintf(what, sizeof what, "'%s/%s'", db->dir, lz->rel);
		rc = decompress(db, e, &h, db->max_in_memory, what);
		if (rc == LARDER_ECORRUPT) {
			state = LARDER_STATE_CORRUPT;
			why = "zstd payload does not decompress to its raw "
			      "length";
		} else if (rc) {
			goto undo;
		}
	}
	if (state != LARDER_STATE_OK) {
		/* Counted and quarantined as a get would (if its name
		 * still holds this very file); the handle fails for good. */
		reject(db, &e->f, lz->rel, lz->ns, oh->key, oh->key_len,
		       oh->ver, oh->ver_len, state, why);
		lz->rc = LARDER_ECORRUPT;
		rc = ldr_fail(db, LARDER_ECORRUPT, 0,
			      "'%s/%s': %s (quarantined)", db->dir, lz->rel,
			      why ? why : "damaged");
		goto undo;
	}
	ldr_touch(db, e->f.fd, lz->hash); /* a read is a use */
	ldr_file_learn(db, &e->f);
	entry_fields(e, &h);
	ldr_file_drop_fd(&e->f); /* a verified entry keeps no descriptor */
	ldr_file_free(&old);
	free(lz);
	e->lazy = NULL;
	return 0;
undo:
	/* Back to the handle as it was: its header's fields still point
	 * into old when it was loaded again. */
	free(e->plain);
	e->plain = NULL;
	if (swapped) {
		nf = e->f;
		e->f = old;
		ldr_file_free(&nf);
	}
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

const void *larder_entry_version(size_t *len, const larder_entry *e)
{
	*len = e->vlen;
	return e->ver;
}

const void *larder_entry_meta(size_t *len, const larder_entry *e)
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
	return e->memo.b ? e->memo.mapped : e->f.mapped && !e->plain;
}

void larder_entry_release(larder_entry *e)
{
	if (!e)
		return;
	ldr_memo_unref(e->memo.b);
	free(e->lazy);
	free(e->plain);
	if (e->f.pre) {
		/* The handle is the start of the file's allocation. */
		ldr_file_drop_fd(&e->f);
		ldr_file_free_alloc(&e->f);
		return;
	}
	ldr_file_free(&e->f);
	free(e);
}
