/*
 * tier.c — a near tier in front of a shared one (docs/backends.md,
 * "Tiers"): a backend of the seam's table that composes two others. The
 * near one is the handle's own directory (one per host); the shared one
 * is another store directory (a network filesystem) or Redis, where every
 * host meets. Hung on db->be by the facade when the store has a shared
 * tier, so that fill and the public API need no change.
 *
 * A get tries near, then shared (verified, the payload always hashed), and
 * copies a shared hit into near (first writer wins); a publish goes to
 * shared first, then near, and when shared already holds the name, its
 * entry is the one near gets; leases and waits live in shared.
 *
 * A shared tier that fails (unreachable, timed out, refusing) is marked
 * down for a back-off (1 s doubling to 30 s), with one warning per outage
 * and the counters shared_errors and shared_skipped; meanwhile the tier is
 * near-only (leases in near: single flight within the host), and the
 * caller keeps its data.
 */
#include "backend.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "clock.h"
#include "config.h"
#include "fsutil.h"
#include "tier.h"
#include "uri.h"

#define DOWN_FIRST_MS 1000u
#define DOWN_MAX_MS 30000u
#define HEAD_SLOTS 256
#define HEAD_VER_MAX 64

/* A version the shared head named when this handle last asked. */
struct head_seen {
	uint8_t khash[16];
	uint64_t at; /* ldr_mono_ms() of the answer; 0: free */
	size_t vlen;
	uint8_t ver[HEAD_VER_MAX];
};

struct tier {
	struct ldr_backend base;
	struct ldr_backend *near;
	char *where;		    /* the shared tier, as configured */
	char *shown;		    /* the same, its password masked */
	uint64_t head_age_ms;	    /* shared_head_age_ms */
	pthread_mutex_t open_mu;    /* held by the one thread opening shared */
	pthread_mutex_t mu;	    /* what follows */
	struct ldr_backend *shared; /* opened on first use; NULL until then */
	uint64_t down_until;	    /* ldr_mono_ms(); 0: up */
	unsigned backoff_ms;	    /* 0: no outage */
	int said;		    /* this outage was logged */
	unsigned refusals_said;	    /* the kinds of refusal logged */
	struct head_seen heads[HEAD_SLOTS];
};

static int is_uri(const char *where);

static struct tier *tier_of(struct ldr_backend *be)
{
	return (struct tier *)be;
}

/* ---------------------------------------------------------------------- */
/* The shared tier's health                                                */

/* Whether rc is the shared tier failing (not reached, timed out, refused
 * for good), rather than an answer. A miss is an answer where miss_ok. */
static int failing(int rc, int miss_ok)
{
	if (rc >= 0 || rc == LARDER_EINVAL || rc == LARDER_ECANCELED ||
	    rc == LARDER_EFULL || rc == LARDER_ECORRUPT)
		return 0;
	return !(miss_ok && rc == LARDER_ENOTFOUND);
}

/* What the shared tier is now: 1 while it is marked down (counted
 * shared_skipped), else 0 with *s, NULL while it is not opened yet. */
static int shared_state(struct tier *t, struct ldr_backend **s)
{
	pthread_mutex_lock(&t->mu);
	int down = t->down_until && ldr_mono_ms() < t->down_until;
	*s = down ? NULL : t->shared;
	pthread_mutex_unlock(&t->mu);
	if (down)
		ldr_count(t->base.db, LARDER_CTR_SHARED_SKIPPED);
	return down;
}

/* The shared tier's backend if it is open (no back-off, no open): for a
 * caller that holds something of it already (a stage, a wait). */
static struct ldr_backend *shared_opened(struct tier *t)
{
	pthread_mutex_lock(&t->mu);
	struct ldr_backend *s = t->shared;
	pthread_mutex_unlock(&t->mu);
	return s;
}

/* Open the shared tier, open_mu held: 0 with *out (also t->shared), or
 * the open's rc, recorded on the handle. */
static int shared_open(struct tier *t, struct ldr_backend **out)
{
	struct ldr_backend *s = NULL;
	int rc = ldr_backend_open(&s, t->base.db, t->where);
	if (rc) {
		*out = NULL;
		return rc;
	}
	pthread_mutex_lock(&t->mu);
	t->shared = s;
	pthread_mutex_unlock(&t->mu);
	*out = s;
	return 0;
}

/* The shared tier to call now, or NULL while it is marked down (counted
 * shared_skipped) or cannot be opened (a failure, as any other).
 *
 * Opened here, at the first call that needs it (a near miss, a publish,
 * a lease, a listing), never at larder_open: a near hit reads nothing
 * from the shared tier, so it must not wait on its connect (a hung
 * server would cost every process its timeout), and a tier down at open
 * costs a warning, not the handle. The open holds open_mu, not mu: a
 * connect takes up to the call timeout, and mu guards the heads seen,
 * which a version-less near hit reads. One thread opens; the others that
 * need the tier wait for its answer rather than connect again. */
static struct ldr_backend *shared_of(struct tier *t)
{
	struct ldr_backend *s;
	if (shared_state(t, &s) || s)
		return s;
	pthread_mutex_lock(&t->open_mu);
	/* Opened, or failed and marked down, while this thread waited. */
	if (!shared_state(t, &s) && !s) {
		int rc = shared_open(t, &s);
		/* Marked down before open_mu is let go: a waiter then
		 * skips, rather than paying the timeout again. */
		if (rc)
			ldr_tier_failed(&t->base, "open", rc);
	}
	pthread_mutex_unlock(&t->open_mu);
	return s;
}

void ldr_tier_failed(struct ldr_backend *be, const char *op, int rc)
{
	struct tier *t = tier_of(be);
	larder *db = be->db;
	char cause[512];
	snprintf(cause, sizeof cause, "%s", larder_errmsg(db));
	ldr_count(db, LARDER_CTR_SHARED_ERRORS);
	pthread_mutex_lock(&t->mu);
	t->backoff_ms = t->backoff_ms ? t->backoff_ms * 2 : DOWN_FIRST_MS;
	if (t->backoff_ms > DOWN_MAX_MS)
		t->backoff_ms = DOWN_MAX_MS;
	t->down_until = ldr_mono_ms() + t->backoff_ms;
	int say = !t->said;
	t->said = 1;
	unsigned ms = t->backoff_ms;
	pthread_mutex_unlock(&t->mu);
	/* Once per outage: a herd of calls to a dead server must not
	 * flood the log; the counters tell how many failed or skipped. */
	if (say)
		ldr_log(db, LARDER_LOG_WARN,
			"shared tier '%s' failed (%s: %s): serving from the "
			"near tier '%s' only, trying the shared tier again in "
			"%u ms",
			t->shown, op, *cause ? cause : larder_strerror(rc),
			db->dir, ms);
}

/* A call to the shared tier answered: an outage, if any, is over. */
static void shared_ok(struct tier *t)
{
	if (!__atomic_load_n(&t->backoff_ms, __ATOMIC_RELAXED))
		return;
	pthread_mutex_lock(&t->mu);
	int said = t->said;
	t->backoff_ms = 0;
	t->down_until = 0;
	t->said = 0;
	pthread_mutex_unlock(&t->mu);
	if (said)
		ldr_log(t->base.db, LARDER_LOG_INFO,
			"shared tier '%s' answers again", t->shown);
}

/* The shared call's rc judged: a failure marks the tier down. Returns
 * rc, or LARDER_ENOTFOUND for a failure where the caller goes on with
 * near alone. */
static int judge(struct tier *t, const char *op, int rc, int miss_ok)
{
	if (failing(rc, miss_ok)) {
		ldr_tier_failed(&t->base, op, rc);
		return rc;
	}
	shared_ok(t);
	return rc;
}

/* The shared tier refused an entry at `op` (LARDER_EFULL, its message
 * recorded on the handle): counted shared_refused, and a warning the
 * first time this handle meets each kind (told by larder_errno: EFBIG
 * over max_entry, ENOSPC Redis full, EAGAIN too few replicas), so that
 * a refusal is never silent and a stream of them never floods the log.
 * The tier stays up: it answered. */
static void refused(struct tier *t, const char *op)
{
	larder *db = t->base.db;
	int e = larder_errno(db);
	unsigned kind = e == EFBIG    ? 1u
			: e == ENOSPC ? 2u
			: e == EAGAIN ? 4u
				      : 8u;
	ldr_count(db, LARDER_CTR_SHARED_REFUSED);
	if (__atomic_fetch_or(&t->refusals_said, kind, __ATOMIC_RELAXED) & kind)
		return;
	ldr_log(db, LARDER_LOG_WARN,
		"shared tier '%s' refused an entry (%s: %s): it is kept in "
		"the near tier '%s' only; refusals like it are counted "
		"(shared_refused), not logged again",
		t->shown, op, larder_errmsg(db), db->dir);
}

/* ---------------------------------------------------------------------- */
/* The heads the shared tier named                                         */

static struct head_seen *head_slot(struct tier *t, const struct ldr_name *n)
{
	return &t->heads[n->khash[0]];
}

static void head_remember(struct tier *t, const struct ldr_name *n,
			  const void *ver, size_t vlen)
{
	struct head_seen *h = head_slot(t, n);
	pthread_mutex_lock(&t->mu);
	if (vlen <= HEAD_VER_MAX) {
		memcpy(h->khash, n->khash, 16);
		memcpy(h->ver, ver, vlen);
		h->vlen = vlen;
		h->at = ldr_mono_ms();
		if (!h->at)
			h->at = 1;
	} else if (!memcmp(h->khash, n->khash, 16)) {
		h->at = 0;
	}
	pthread_mutex_unlock(&t->mu);
}

static void head_forget(struct tier *t, const struct ldr_name *n)
{
	struct head_seen *h = head_slot(t, n);
	pthread_mutex_lock(&t->mu);
	if (!memcmp(h->khash, n->khash, 16))
		h->at = 0;
	pthread_mutex_unlock(&t->mu);
}

/* Whether the shared head named n->ver when last asked (within the
 * age): then a copy into near moves near's head too. With `out`, the
 * version named, if still young, is copied there instead (malloc'ed). */
static int head_recent(struct tier *t, const struct ldr_name *n, uint8_t **out,
		       size_t *outlen)
{
	struct head_seen *h = head_slot(t, n);
	int r = 0;
	pthread_mutex_lock(&t->mu);
	uint64_t now = ldr_mono_ms();
	if (h->at && !memcmp(h->khash, n->khash, 16)) {
		if (out) {
			if (now - h->at < t->head_age_ms &&
			    (*out = malloc(h->vlen ? h->vlen : 1)) != NULL) {
				memcpy(*out, h->ver, h->vlen);
				*outlen = h->vlen;
				r = 1;
			}
		} else {
			r = n->ver && n->vlen == h->vlen &&
			    !memcmp(n->ver, h->ver, h->vlen);
		}
	}
	pthread_mutex_unlock(&t->mu);
	return r;
}

/* ---------------------------------------------------------------------- */
/* Copies into near                                                        */

/* Stage the entry file f (header h, verified) into near under n: its
 * stored payload and its very header, so that every host serves the same
 * bytes of a version. 0, LARDER_EXISTS (near has it: fine), or a near
 * failure, which costs speed only (counted as write_failures). */
static int copy_in(struct tier *t, const struct ldr_name *n,
		   const struct ldr_file *f, const ldr_hdr *h, int set_head)
{
	larder *db = t->base.db;
	struct ldr_backend *near = t->near;
	struct ldr_stage *s;
	int rc = near->ops->stage_begin(near, n, NULL, &s);
	if (rc)
		goto out;
	if (!f->partial) {
		struct iovec iov = {f->p + h->hdr_len, (size_t)h->stored_len};
		rc = near->ops->stage_write(s, &iov, 1);
	} else {
		uint8_t *b = malloc(LDR_CHUNK);
		if (!b)
			rc = ldr_fail(db, LARDER_ENOMEM, ENOMEM,
				      "out of memory");
		for (uint64_t off = 0; !rc && off < h->stored_len;) {
			size_t want = h->stored_len - off < LDR_CHUNK
					  ? (size_t)(h->stored_len - off)
					  : LDR_CHUNK;
			ssize_t got = ldr_pread_full(f->fd, b, want,
						     (off_t)(h->hdr_len + off));
			if (got != (ssize_t)want) {
				rc = ldr_fail(db, LARDER_EIO,
					      got < 0 ? errno : EIO,
					      "cannot read the shared tier's "
					      "entry in namespace '%s' to copy "
					      "it into near",
					      n->ns);
				break;
			}
			struct iovec iov = {b, want};
			rc = near->ops->stage_write(s, &iov, 1);
			off += want;
		}
		free(b);
	}
	if (rc) {
		near->ops->stage_abort(s);
		goto out;
	}
	rc = near->ops->stage_commit(s, f->p, h->hdr_len,
				     set_head ? 0 : LDR_BE_NO_HEAD, 0);
out:
	if (rc == 0)
		ldr_count(db, LARDER_CTR_SHARED_COPIES);
	else if (rc < 0)
		ldr_count(db, LARDER_CTR_WRITE_FAILURES);
	return rc;
}

/* The entry of n as shared holds it, read, judged and copied into near
 * if good; f is handed back as read (the caller judges it again and
 * rejects it if bad). */
static void copy_read(struct tier *t, const struct ldr_name *n,
		      const struct ldr_file *f, int set_head)
{
	larder *db = t->base.db;
	char rel[LDR_REL_MAX], hex[33];
	ldr_hex(n->hash, 16, hex);
	ldr_file_rel(rel, n->ns, 'e', hex);
	ldr_hdr h;
	const char *why = NULL;
	int state = ldr_entry_check(db, f, rel, n->ns, n->key, n->klen, n->ver,
				    n->vlen, LDR_CHECK_HASH, &h, &why);
	if (state == LARDER_STATE_OK)
		copy_in(t, n, f, &h, set_head);
}

/* Whether f was read from near: a file of near's whose identity is the
 * one near holds under n now (a shared directory's file has another
 * inode; Redis hands out buffers). */
static int from_near(struct tier *t, const struct ldr_name *n,
		     const struct ldr_file *f)
{
	if (!n->ver)
		return 0;
	struct ldr_file id = *f;
	ldr_file_ident(&id);
	if (!id.have_ident)
		return 0;
	char rel[LDR_REL_MAX], hex[33];
	ldr_hex(n->hash, 16, hex);
	ldr_file_rel(rel, n->ns, 'e', hex);
	struct stat st;
	return ldr_lstat(t->base.db, rel, &st) == 0 && st.st_dev == id.dev &&
	       st.st_ino == id.ino;
}

/* ---------------------------------------------------------------------- */
/* Open, close                                                             */

static void tier_close(struct ldr_backend *be)
{
	struct tier *t = tier_of(be);
	ldr_backend_close(t->shared);
	ldr_backend_close(t->near);
	pthread_mutex_destroy(&t->mu);
	pthread_mutex_destroy(&t->open_mu);
	free(t->where);
	free(t->shown);
	free(t);
}

static int tier_open(struct ldr_backend **out, larder *db, const char *where)
{
	*out = NULL;
	int rc = ldr_shared_check(db, where);
	if (rc)
		return rc;
	struct tier *t = calloc(1, sizeof *t);
	if (!t || !(t->where = strdup(where)) ||
	    !(t->shown = ldr_uri_masked(where))) {
		if (t)
			free(t->where);
		free(t);
		return ldr_fail(db, LARDER_ENOMEM, ENOMEM, "out of memory");
	}
	t->base.ops = &ldr_be_tier_ops;
	t->base.db = db;
	pthread_mutex_init(&t->mu, NULL);
	pthread_mutex_init(&t->open_mu, NULL);
	char text[LDR_CONFIG_MAX];
	t->head_age_ms = 1000;
	if (ldr_config_read(db, "", text, sizeof text) != 0)
		text[0] = '\0';
	if (*ldr_conf_val(text, "shared_head_age_ms"))
		t->head_age_ms =
		    (uint64_t)ldr_conf_num(text, "shared_head_age_ms");
	/* A Redis tier takes its settings in the URI's query: the store's
	 * shared_timeout_ms goes there unless the URI sets its own. */
	int64_t tmo = ldr_conf_num(text, "shared_timeout_ms");
	if (tmo > 0 && is_uri(where) && !strstr(where, "timeout_ms=")) {
		char *w = NULL;
		if (asprintf(&w, "%s%ctimeout_ms=%lld", where,
			     strchr(where, '?') ? '&' : '?',
			     (long long)tmo) < 0) {
			tier_close(&t->base);
			return ldr_fail(db, LARDER_ENOMEM, ENOMEM,
					"out of memory");
		}
		free(t->where);
		t->where = w;
	}
	/* Near is the handle's own directory: its fd, caches, counters. */
	if ((rc = ldr_backend_open(&t->near, db, NULL)) != 0) {
		tier_close(&t->base);
		return rc;
	}
	/* The shared tier is not opened here: at its first use
	 * (shared_of). */
	*out = &t->base;
	return 0;
}

int ldr_tier_shared(larder *db, struct ldr_backend **out)
{
	struct ldr_backend *be = db->be;
	*out = NULL;
	if (!be || be->ops != &ldr_be_tier_ops)
		return ldr_fail(db, LARDER_EINVAL, 0,
				"the store '%s' has no shared tier (larder "
				"init --shared, larder config --shared, "
				"LARDER_SHARED)",
				db->dir);
	struct tier *t = tier_of(be);
	/* Asked for by name (ls --tier shared): tried now, back-off or
	 * not, and a failure is the caller's error rather than a warning
	 * and near's answer. */
	struct ldr_backend *s;
	pthread_mutex_lock(&t->open_mu);
	s = shared_opened(t);
	int rc = s ? 0 : shared_open(t, &s);
	pthread_mutex_unlock(&t->open_mu);
	if (rc) {
		char cause[512];
		snprintf(cause, sizeof cause, "%s", larder_errmsg(db));
		return ldr_fail(db, rc, larder_errno(db),
				"cannot open the shared tier '%s': %s",
				t->shown, *cause ? cause : larder_strerror(rc));
	}
	*out = s;
	return 0;
}

unsigned ldr_tier_retry_now(struct ldr_backend *be)
{
	if (!be || be->ops != &ldr_be_tier_ops)
		return 0;
	struct tier *t = tier_of(be);
	pthread_mutex_lock(&t->mu);
	unsigned ms = t->backoff_ms;
	if (t->down_until)
		t->down_until = 1; /* past, yet the outage goes on */
	pthread_mutex_unlock(&t->mu);
	return ms;
}

const char *ldr_tier_shown(const struct ldr_backend *be)
{
	return be && be->ops == &ldr_be_tier_ops
		   ? ((const struct tier *)be)->shown
		   : NULL;
}

/* ---------------------------------------------------------------------- */
/* Entries                                                                 */

/* What the shared tier's read of n into f answered (src), near having
 * missed: judged, a hit counted and copied into near. */
static int shared_read(struct tier *t, const struct ldr_name *n, int src,
		       struct ldr_file *f)
{
	larder *db = t->base.db;
	src = judge(t, "read", src, 1);
	if (src == 0) {
		ldr_count(db, LARDER_CTR_SHARED_HITS);
		copy_read(t, n, f, head_recent(t, n, NULL, NULL));
		return 0;
	}
	if (src == LARDER_ENOTFOUND || failing(src, 1))
		return ldr_fail(db, LARDER_ENOTFOUND, 0,
				"entry not found in namespace '%s'", n->ns);
	return src;
}

static int tier_read(struct ldr_backend *be, const struct ldr_name *n, int how,
		     size_t pre, struct ldr_file *f)
{
	struct tier *t = tier_of(be);
	int rc = t->near->ops->read(t->near, n, how, pre, f);
	if (rc == 0) {
		ldr_count(be->db, LARDER_CTR_NEAR_HITS);
		return 0;
	}
	/* A near failure (its disk) costs speed only: shared answers. */
	struct ldr_backend *s = shared_of(t);
	if (!s)
		return rc;
	return shared_read(t, n, s->ops->read(s, n, how, pre, f), f);
}

/* Batch read (backend.h, read_many): near for each, then every near miss
 * in one batch of the shared tier's (pipelined on Redis), each shared
 * hit copied into near as tier_read copies it. Without a shared tier
 * that reads many at once, key by key through tier_read. */
static void tier_read_many(struct ldr_backend *be, const struct ldr_name *n,
			   size_t count, size_t pre, struct ldr_file *f,
			   int *rc)
{
	struct tier *t = tier_of(be);
	larder *db = be->db;
	size_t *idx = calloc(count ? count : 1, sizeof *idx);
	struct ldr_name *sn = calloc(count ? count : 1, sizeof *sn);
	struct ldr_file *sf = calloc(count ? count : 1, sizeof *sf);
	int *src = calloc(count ? count : 1, sizeof *src);
	if (!idx || !sn || !sf || !src) {
		for (size_t i = 0; i < count; i++)
			rc[i] =
			    tier_read(be, &n[i], LDR_LOAD_WHOLE, pre, &f[i]);
		goto out;
	}
	size_t m = 0;
	for (size_t i = 0; i < count; i++) {
		rc[i] = t->near->ops->read(t->near, &n[i], LDR_LOAD_WHOLE, pre,
					   &f[i]);
		if (rc[i] == 0) {
			ldr_count(db, LARDER_CTR_NEAR_HITS);
			continue;
		}
		idx[m] = i;
		sn[m++] = n[i];
	}
	/* Only near's misses reach the shared tier, opening it: a batch
	 * that near serves whole never waits on it. */
	struct ldr_backend *s = m ? shared_of(t) : NULL;
	if (!s)
		goto out; /* near's answers stand, as tier_read's */
	if (s->ops->version < 2 || !s->ops->read_many) {
		for (size_t k = 0; k < m; k++) {
			size_t i = idx[k];
			rc[i] = shared_read(
			    t, &n[i],
			    s->ops->read(s, &n[i], LDR_LOAD_WHOLE, pre, &f[i]),
			    &f[i]);
		}
		goto out;
	}
	s->ops->read_many(s, sn, m, pre, sf, src);
	for (size_t k = 0; k < m; k++) {
		size_t i = idx[k];
		int r = judge(t, "read", src[k], 1);
		if (r == 0) {
			f[i] = sf[k];
			ldr_count(db, LARDER_CTR_SHARED_HITS);
			copy_read(t, &n[i], &f[i],
				  head_recent(t, &n[i], NULL, NULL));
			rc[i] = 0;
		} else if (r == LARDER_ENOTFOUND || failing(r, 1)) {
			rc[i] = ldr_fail(db, LARDER_ENOTFOUND, 0,
					 "entry not found in namespace '%s'",
					 n[i].ns);
		} else {
			rc[i] = r;
		}
	}
out:
	free(idx);
	free(sn);
	free(sf);
	free(src);
}

static void tier_reject(struct ldr_backend *be, const struct ldr_name *n,
			const struct ldr_file *f, const char *why)
{
	struct tier *t = tier_of(be);
	if (from_near(t, n, f)) {
		/* Near's copy only: shared's is judged when read. */
		t->near->ops->reject(t->near, n, f, why);
		return;
	}
	/* Its identity taken first: a file of near's that has been
	 * replaced there since is then nothing the shared tier holds (Redis
	 * compares a stage id, a directory an inode), never "whatever is
	 * there". */
	struct ldr_file id = *f;
	ldr_file_ident(&id);
	struct ldr_backend *s = shared_of(t);
	if (s)
		s->ops->reject(s, n, &id, why);
	/* A copy near took of it goes too. */
	t->near->ops->remove(t->near, n, NULL);
}

struct tier_stage {
	struct ldr_stage base;
	struct ldr_stage *near, *shared;
	struct ldr_name n; /* its strings in `names` */
	char *names;
};

static int tier_stage_begin(struct ldr_backend *be, const struct ldr_name *n,
			    const larder_put_opts *po, struct ldr_stage **out)
{
	struct tier *t = tier_of(be);
	larder *db = be->db;
	*out = NULL;
	size_t nslen = strlen(n->ns) + 1;
	struct tier_stage *ts = calloc(1, sizeof *ts);
	char *names = ts ? malloc(nslen + n->klen + n->vlen + 1) : NULL;
	if (!names) {
		free(ts);
		return ldr_fail(db, LARDER_ENOMEM, ENOMEM, "out of memory");
	}
	memcpy(names, n->ns, nslen);
	if (n->klen)
		memcpy(names + nslen, n->key, n->klen);
	if (n->vlen)
		memcpy(names + nslen + n->klen, n->ver, n->vlen);
	ts->names = names;
	ts->n = *n;
	ts->n.ns = names;
	ts->n.key = names + nslen;
	ts->n.ver = n->ver ? names + nslen + n->klen : NULL;
	ts->base.be = be;
	/* Shared first: where the other hosts look. */
	struct ldr_backend *s = shared_of(t);
	int rc = 0;
	if (s) {
		rc = judge(t, "publish",
			   s->ops->stage_begin(s, n, po, &ts->shared), 0);
		if (rc == LARDER_EINVAL)
			goto fail;
		if (rc == LARDER_EFULL)
			refused(t, "publish");
	}
	int nrc = t->near->ops->stage_begin(t->near, n, po, &ts->near);
	if (nrc && !ts->shared) {
		rc = nrc;
		goto fail;
	}
	*out = &ts->base;
	return 0;
fail:
	if (ts->shared)
		ts->shared->be->ops->stage_abort(ts->shared);
	free(ts->names);
	free(ts);
	return rc;
}

static void stage_drop(struct ldr_stage **s)
{
	if (*s)
		(*s)->be->ops->stage_abort(*s);
	*s = NULL;
}

static int tier_stage_write(struct ldr_stage *bs, const struct iovec *iov,
			    int iovcnt)
{
	struct tier_stage *ts = (struct tier_stage *)bs;
	struct tier *t = tier_of(bs->be);
	if (ts->shared) {
		struct ldr_backend *s = ts->shared->be;
		int rc = s->ops->stage_write(ts->shared, iov, iovcnt);
		if (rc) {
			/* The publish goes on in near (the caller keeps
			 * its data); a refusal (the entry too large for
			 * the shared tier) is not an outage. */
			judge(t, "publish", rc, 0);
			if (rc == LARDER_EFULL)
				refused(t, "publish");
			stage_drop(&ts->shared);
		}
	}
	if (ts->near) {
		int rc = ts->near->be->ops->stage_write(ts->near, iov, iovcnt);
		if (rc) {
			if (!ts->shared)
				return rc;
			ldr_count(bs->be->db, LARDER_CTR_WRITE_FAILURES);
			stage_drop(&ts->near);
		}
	}
	return ts->shared || ts->near ? 0 : LARDER_EIO;
}

static void tier_stage_free(struct tier_stage *ts)
{
	stage_drop(&ts->near);
	stage_drop(&ts->shared);
	free(ts->names);
	free(ts);
}

/* stage_commit, and stage_commit_lease with l (NULL: none). A lease of
 * the shared tier is settled in shared's own commit where its table can
 * (Redis: one round trip); any other (near's, while shared is down) is
 * checked before, as the caller would, and given back by its release. */
static int tier_commit(struct ldr_stage *bs, const void *hdr, size_t hlen,
		       unsigned flags, uint64_t token, struct ldr_be_lease *l,
		       const int *shared_rc)
{
	struct tier_stage *ts = (struct tier_stage *)bs;
	struct tier *t = tier_of(bs->be);
	larder *db = bs->be->db;
	const struct ldr_name *n = &ts->n;
	int src = LARDER_ENOTFOUND; /* shared not used */
	int settle = l && ts->shared && l->be == ts->shared->be &&
		     l->be->ops->version >= 3 && l->be->ops->stage_commit_lease;
	if (l && !settle && !l->be->ops->lease_held(l))
		flags |= LDR_BE_NO_HEAD;
	if (ts->shared || shared_rc) {
		struct ldr_stage *s = ts->shared;
		ts->shared = NULL; /* freed by its commit */
		/* shared_rc: committed already, in a batch (commit_many) */
		src = judge(
		    t, "publish",
		    shared_rc ? *shared_rc
		    : settle
			? s->be->ops->stage_commit_lease(s, hdr, hlen, flags, l)
			: s->be->ops->stage_commit(s, hdr, hlen, flags, token),
		    0);
		/* A lease lost at shared's commit moves no head in near
		 * either. */
		if (settle && !l->be->ops->lease_held(l))
			flags |= LDR_BE_NO_HEAD;
		if (src == LARDER_EINVAL) {
			tier_stage_free(ts);
			return src;
		}
		if (src == LARDER_EFULL)
			refused(t, "publish");
	}
	if (src == LARDER_EXISTS) {
		/* Another filler was first in shared: its entry is what
		 * near gets, so that every host serves the same bytes. */
		stage_drop(&ts->near);
		struct ldr_file f;
		struct ldr_backend *s = shared_opened(t);
		if (s && s->ops->read(s, n, LDR_LOAD_SCAN, 0, &f) == 0) {
			copy_read(t, n, &f, !(flags & LDR_BE_NO_HEAD));
			ldr_file_free(&f);
		}
		tier_stage_free(ts);
		return LARDER_EXISTS;
	}
	int nrc = LARDER_ENOTFOUND;
	if (ts->near) {
		struct ldr_stage *s = ts->near;
		ts->near = NULL;
		nrc = s->be->ops->stage_commit(s, hdr, hlen, flags, token);
	}
	if (src == 0 && !(flags & LDR_BE_NO_HEAD))
		head_remember(t, n, n->ver, n->vlen);
	tier_stage_free(ts); /* n with it */
	if (src == 0) {
		if (nrc < 0 && nrc != LARDER_ENOTFOUND)
			ldr_count(db, LARDER_CTR_WRITE_FAILURES);
		return 0;
	}
	/* Shared failed or refused: near's answer is the caller's. */
	if (nrc == LARDER_ENOTFOUND)
		return src < 0 ? src
			       : ldr_fail(db, LARDER_EIO, 0,
					  "cannot publish: neither tier took "
					  "the entry");
	return nrc;
}

static int tier_stage_commit(struct ldr_stage *bs, const void *hdr, size_t hlen,
			     unsigned flags, uint64_t token)
{
	return tier_commit(bs, hdr, hlen, flags, token, NULL, NULL);
}

/* The token of a lease that is not settled in shared is 0: such a lease
 * is near's, a directory's, whose heads take no token. */
static int tier_stage_commit_lease(struct ldr_stage *bs, const void *hdr,
				   size_t hlen, unsigned flags,
				   struct ldr_be_lease *l)
{
	return tier_commit(bs, hdr, hlen, flags, 0, l, NULL);
}

/* Batch put: shared's commits in one batch where its table has one (Redis:
 * one round trip for the small entries), then each entry as a single
 * commit goes on from shared's answer (near, the copy of an entry that
 * stood, the counters). */
static void tier_stage_commit_many(struct ldr_stage **st, size_t n,
				   const void *const *hdr, const size_t *hlen,
				   unsigned flags, int *rc)
{
	struct ldr_stage **ss = calloc(n ? n : 1, sizeof *ss);
	const void **sh = calloc(n ? n : 1, sizeof *sh);
	size_t *sl = calloc(n ? n : 1, sizeof *sl);
	int *src = calloc(n ? n : 1, sizeof *src);
	int *at = calloc(n ? n : 1, sizeof *at); /* i's in ss, or -1 */
	if (!ss || !sh || !sl || !src || !at) {
		for (size_t i = 0; i < n; i++)
			rc[i] = tier_commit(st[i], hdr[i], hlen[i], flags, 0,
					    NULL, NULL);
		goto out;
	}
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		struct tier_stage *ts = (struct tier_stage *)st[i];
		at[i] = -1;
		if (!ts->shared)
			continue;
		at[i] = (int)k;
		ss[k] = ts->shared;
		sh[k] = hdr[i];
		sl[k++] = hlen[i];
		ts->shared = NULL; /* freed by its commit below */
	}
	const struct ldr_backend_ops *ops = k ? ss[0]->be->ops : NULL;
	if (k && ops->version >= 3 && ops->stage_commit_many)
		ops->stage_commit_many(ss, k, sh, sl, flags, src);
	else
		for (size_t j = 0; j < k; j++)
			src[j] = ss[j]->be->ops->stage_commit(ss[j], sh[j],
							      sl[j], flags, 0);
	for (size_t i = 0; i < n; i++)
		rc[i] = tier_commit(st[i], hdr[i], hlen[i], flags, 0, NULL,
				    at[i] >= 0 ? &src[at[i]] : NULL);
out:
	free(ss);
	free(sh);
	free(sl);
	free(src);
	free(at);
}

static void tier_stage_abort(struct ldr_stage *bs)
{
	if (bs)
		tier_stage_free((struct tier_stage *)bs);
}

static int tier_remove(struct ldr_backend *be, const struct ldr_name *n,
		       const struct ldr_file *same)
{
	struct tier *t = tier_of(be);
	struct ldr_backend *near = t->near;
	head_forget(t, n);
	struct ldr_backend *s = shared_of(t);
	if (same) {
		/* Only if still the entry read, where it was read; then the
		 * other tier's copy of that name goes too. */
		int in_near = from_near(t, n, same);
		struct ldr_backend *first = in_near ? near : s;
		struct ldr_backend *other = in_near ? s : near;
		if (!first)
			return 0;
		/* Its identity taken first, as in tier_reject. */
		struct ldr_file id = *same;
		ldr_file_ident(&id);
		int rc = first->ops->remove(first, n, &id);
		if (first == s)
			rc = judge(t, "remove", rc, 1);
		if (rc == 1 && other) {
			int orc = other->ops->remove(other, n, NULL);
			if (other == s)
				judge(t, "remove", orc, 1);
		}
		return rc;
	}
	int nrc = near->ops->remove(near, n, NULL);
	int src = s ? judge(t, "remove", s->ops->remove(s, n, NULL), 1)
		    : LARDER_ENOTFOUND;
	if (nrc == 1 || src == 1)
		return 1;
	if (nrc == 0 || src == 0)
		return 0;
	/* No head anywhere for a version-less removal: nothing there. */
	return nrc == LARDER_ENOTFOUND && src == LARDER_ENOTFOUND
		   ? nrc
		   : (nrc < 0 && nrc != LARDER_ENOTFOUND ? nrc : src);
}

/* ---------------------------------------------------------------------- */
/* Heads                                                                   */

/* Shared's head named ver: near's is moved there if it names another
 * version (or none), so that near alone (the shared tier down) answers a
 * version-less lookup as shared last did. A head is a hint: one whose
 * entry near lacks yet is a hint file, and a miss until a copy lands. */
static void near_head_follow(struct tier *t, const struct ldr_name *n,
			     const uint8_t *ver, size_t vlen)
{
	struct ldr_backend *near = t->near;
	uint8_t *nv = NULL;
	size_t nl = 0;
	int rc = near->ops->head_get(near, n, &nv, &nl);
	if (rc == LARDER_ENOTFOUND ||
	    (rc == 0 && (nl != vlen || (vlen && memcmp(nv, ver, vlen))))) {
		struct ldr_name hn;
		ldr_name_init(&hn, n->ns, n->key, n->klen, ver, vlen);
		near->ops->head_set(near, &hn, 0);
	}
	free(nv);
}

static int tier_head_get(struct ldr_backend *be, const struct ldr_name *n,
			 uint8_t **ver, size_t *vlen)
{
	struct tier *t = tier_of(be);
	/* What shared named less than shared_head_age ago is used as is:
	 * a head is a hint, and asking on every lookup would cost a round
	 * trip a hit. */
	if (head_recent(t, n, ver, vlen))
		return 0;
	struct ldr_backend *s = shared_of(t);
	if (s) {
		ldr_count(be->db, LARDER_CTR_SHARED_HEAD_CHECKS);
		int rc = judge(t, "head", s->ops->head_get(s, n, ver, vlen), 1);
		if (rc == 0) {
			head_remember(t, n, *ver, *vlen);
			near_head_follow(t, n, *ver, *vlen);
			return 0;
		}
		if (rc == LARDER_ENOTFOUND)
			head_forget(t, n);
		else if (!failing(rc, 1))
			return rc;
	}
	/* Shared down, or without a head for the key (an entry published
	 * while it was down): near's hint. */
	return t->near->ops->head_get(t->near, n, ver, vlen);
}

static int tier_head_set(struct ldr_backend *be, const struct ldr_name *n,
			 uint64_t token)
{
	struct tier *t = tier_of(be);
	struct ldr_backend *s = shared_of(t);
	int src =
	    s ? judge(t, "head", s->ops->head_set(s, n, token), 0) : LARDER_EIO;
	int nrc = t->near->ops->head_set(t->near, n, token);
	if (src >= 0) {
		head_remember(t, n, n->ver, n->vlen);
		return src;
	}
	head_forget(t, n);
	return nrc;
}

static int tier_head_drop(struct ldr_backend *be, const struct ldr_name *n)
{
	struct tier *t = tier_of(be);
	head_forget(t, n);
	struct ldr_backend *s = shared_of(t);
	int src = s ? judge(t, "head", s->ops->head_drop(s, n), 0) : 0;
	int nrc = t->near->ops->head_drop(t->near, n);
	return src == 1 || nrc == 1 ? 1 : (src < 0 ? nrc : src);
}

/* ---------------------------------------------------------------------- */
/* Leases and waits: in shared, where every host meets; in near while it   */
/* is down (single flight within the host). The lease handed out is the   */
/* tier's own, so that its calls reach the backend that holds it.          */

static int tier_lease_acquire(struct ldr_backend *be, const struct ldr_name *n,
			      const struct ldr_self *me, uint64_t lease_ms,
			      uint64_t renew_ms, struct ldr_be_lease **out,
			      uint64_t *token, struct ldr_be_holder *h)
{
	struct tier *t = tier_of(be);
	struct ldr_backend *s = shared_of(t);
	if (s) {
		int rc = judge(t, "lease",
			       s->ops->lease_acquire(s, n, me, lease_ms,
						     renew_ms, out, token, h),
			       0);
		/* A lease is a write: one the shared tier refuses (Redis
		 * full, too few replicas) is taken in near, as in an
		 * outage, so that the fill goes on within the host. */
		if (!failing(rc, 0) && rc != LDR_BE_LEASE_NONE &&
		    rc != LARDER_EFULL)
			return rc;
	}
	return t->near->ops->lease_acquire(t->near, n, me, lease_ms, renew_ms,
					   out, token, h);
}

/* A fill's first look and its lease. Near first, unless the handle
 * looked there already (near is its own directory: read.c did, through
 * its own path); then in one step where the shared tier has one (Redis:
 * the lease script hands back the entry that stands), its hit copied
 * into near as a read's; else the shared tier read, then the lease
 * (near's while the shared tier is down or refuses it), as the fill
 * made them before. */
static int tier_lease_acquire_read(struct ldr_backend *be,
				   const struct ldr_name *n,
				   const struct ldr_self *me, uint64_t lease_ms,
				   uint64_t renew_ms, struct ldr_be_lease **out,
				   uint64_t *token, struct ldr_be_holder *h,
				   size_t pre, struct ldr_file *f, int *frc)
{
	struct tier *t = tier_of(be);
	memset(f, 0, sizeof *f);
	f->fd = -1;
	*frc = LARDER_ENOTFOUND;
	*out = NULL;
	*token = 0;
	if (!(be->db->be == be && be->db->be_near)) {
		int rc = t->near->ops->read(t->near, n, LDR_LOAD_WHOLE, pre, f);
		if (rc == 0) {
			ldr_count(be->db, LARDER_CTR_NEAR_HITS);
			*frc = 0;
			return LDR_BE_LEASE_ENTRY;
		}
		ldr_file_free(f);
		memset(f, 0, sizeof *f);
		f->fd = -1;
	}
	struct ldr_backend *s = shared_of(t);
	if (s && s->ops->version >= 4 && s->ops->lease_acquire_read) {
		int rc = judge(t, "lease",
			       s->ops->lease_acquire_read(s, n, me, lease_ms,
							  renew_ms, out, token,
							  h, pre, f, frc),
			       0);
		if (rc == LDR_BE_LEASE_ENTRY) {
			*frc = shared_read(t, n, *frc, f);
			return rc;
		}
		/* As tier_lease_acquire: a lease the shared tier cannot
		 * give is taken in near. */
		if (!failing(rc, 0) && rc != LDR_BE_LEASE_NONE &&
		    rc != LARDER_EFULL)
			return rc;
		ldr_file_free(f);
		memset(f, 0, sizeof *f);
		f->fd = -1;
		return t->near->ops->lease_acquire(t->near, n, me, lease_ms,
						   renew_ms, out, token, h);
	}
	if (s) {
		int src = shared_read(
		    t, n, s->ops->read(s, n, LDR_LOAD_WHOLE, pre, f), f);
		if (src != LARDER_ENOTFOUND) {
			*frc = src;
			return LDR_BE_LEASE_ENTRY;
		}
		ldr_file_free(f);
		memset(f, 0, sizeof *f);
		f->fd = -1;
	}
	return tier_lease_acquire(be, n, me, lease_ms, renew_ms, out, token, h);
}

/* A lease handed out is the backend's that holds it: its own table. */
static int tier_lease_held(struct ldr_be_lease *l)
{
	return l->be->ops->lease_held(l);
}

static void tier_lease_release(struct ldr_be_lease *l)
{
	if (l)
		l->be->ops->lease_release(l);
}

static int tier_lease_observe(struct ldr_backend *be, const struct ldr_name *n,
			      struct ldr_be_holder *h)
{
	struct tier *t = tier_of(be);
	struct ldr_backend *s = shared_of(t);
	if (s) {
		int rc = judge(t, "lease", s->ops->lease_observe(s, n, h), 1);
		if (!failing(rc, 1))
			return rc;
	}
	return t->near->ops->lease_observe(t->near, n, h);
}

static int tier_lease_break(struct ldr_backend *be, const struct ldr_name *n,
			    const struct ldr_be_holder *h)
{
	struct tier *t = tier_of(be);
	struct ldr_backend *s = shared_of(t);
	if (s) {
		int rc = judge(t, "lease", s->ops->lease_break(s, n, h), 1);
		if (!failing(rc, 1))
			return rc;
	}
	return t->near->ops->lease_break(t->near, n, h);
}

struct tier_wait {
	struct ldr_be_wait base;
	struct ldr_be_wait *in;
};

static int tier_wait_begin(struct ldr_backend *be, const struct ldr_name *n,
			   struct ldr_be_wait **out)
{
	struct tier *t = tier_of(be);
	*out = NULL;
	struct tier_wait *w = calloc(1, sizeof *w);
	if (!w)
		return ldr_fail(be->db, LARDER_ENOMEM, ENOMEM, "out of memory");
	w->base.be = be;
	struct ldr_backend *s = shared_of(t);
	int rc = s ? judge(t, "wait", s->ops->wait_begin(s, n, &w->in), 0)
		   : LARDER_EIO;
	if (rc)
		rc = t->near->ops->wait_begin(t->near, n, &w->in);
	if (rc) {
		free(w);
		return rc;
	}
	*out = &w->base;
	return 0;
}

static int tier_wait(struct ldr_be_wait *bw, uint64_t max_ms,
		     const volatile sig_atomic_t *cancel)
{
	struct tier_wait *w = (struct tier_wait *)bw;
	int rc = w->in->be->ops->wait(w->in, max_ms, cancel);
	if (rc < 0 && rc != LARDER_ECANCELED) {
		/* The tier that waits failed: look now (the looks go to
		 * near while shared is down). */
		if (w->in->be == shared_opened(tier_of(bw->be)))
			ldr_tier_failed(bw->be, "wait", rc);
		return 0;
	}
	return rc;
}

static void tier_wait_end(struct ldr_be_wait *bw)
{
	struct tier_wait *w = (struct tier_wait *)bw;
	if (!w)
		return;
	w->in->be->ops->wait_end(w->in);
	free(w);
}

/* ---------------------------------------------------------------------- */
/* Listing, stats: the shared tier's, which every host's entries reach;    */
/* near's while it is down.                                                */

static int tier_list_ns(struct ldr_backend *be, larder_ns_fn cb, void *p)
{
	struct tier *t = tier_of(be);
	struct ldr_backend *s = shared_of(t);
	if (s) {
		int rc = judge(t, "list", s->ops->list_ns(s, cb, p), 1);
		if (!failing(rc, 1))
			return rc;
	}
	return t->near->ops->list_ns(t->near, cb, p);
}

static int tier_walk(struct ldr_backend *be, const char *ns,
		     int (*cb)(const uint8_t hash[16], const char *where,
			       void *p),
		     void *p)
{
	struct tier *t = tier_of(be);
	struct ldr_backend *s = shared_of(t);
	if (s) {
		int rc = judge(t, "walk", s->ops->walk(s, ns, cb, p), 1);
		if (!failing(rc, 1))
			return rc;
	}
	return t->near->ops->walk(t->near, ns, cb, p);
}

static int tier_stats(struct ldr_backend *be, struct ldr_be_stats *st)
{
	struct tier *t = tier_of(be);
	struct ldr_backend *s = shared_of(t);
	if (s) {
		int rc = judge(t, "stats", s->ops->stats(s, st), 0);
		if (!failing(rc, 0))
			return rc;
	}
	int rc = t->near->ops->stats(t->near, st);
	st->reachable = 0; /* the shared tier is not */
	return rc;
}

int ldr_tier_near_stats(struct ldr_backend *be, struct ldr_be_stats *st)
{
	return tier_of(be)->near->ops->stats(tier_of(be)->near, st);
}

const struct ldr_backend_ops ldr_be_tier_ops = {
    .version = LDR_BACKEND_VERSION,
    .kind = "tier",
    .caps = LDR_BE_NOTIFY | LDR_BE_SHARED,
    .open = tier_open,
    .close = tier_close,
    .read = tier_read,
    .read_many = tier_read_many,
    .reject = tier_reject,
    .stage_begin = tier_stage_begin,
    .stage_write = tier_stage_write,
    .stage_commit = tier_stage_commit,
    .stage_commit_lease = tier_stage_commit_lease,
    .stage_commit_many = tier_stage_commit_many,
    .stage_abort = tier_stage_abort,
    .remove = tier_remove,
    .head_get = tier_head_get,
    .head_set = tier_head_set,
    .head_drop = tier_head_drop,
    .lease_acquire = tier_lease_acquire,
    .lease_acquire_read = tier_lease_acquire_read,
    .lease_held = tier_lease_held,
    .lease_observe = tier_lease_observe,
    .lease_break = tier_lease_break,
    .lease_release = tier_lease_release,
    .wait_begin = tier_wait_begin,
    .wait = tier_wait,
    .wait_end = tier_wait_end,
    .list_ns = tier_list_ns,
    .walk = tier_walk,
    .stats = tier_stats,
};

/* ---------------------------------------------------------------------- */
/* Configuration                                                           */

static int is_uri(const char *where)
{
	return strstr(where, "://") != NULL;
}

/* Whether the paths a and b name one directory. */
static int same_dir(const char *a, const char *b)
{
	char *ra = realpath(a, NULL), *rb = realpath(b, NULL);
	int same = ra && rb && !strcmp(ra, rb);
	free(ra);
	free(rb);
	return same;
}

/* Whether the part of a URI after "scheme://" names a host: after the
 * user and password, if any. */
static int has_host(const char *rest)
{
	size_t alen = strcspn(rest, "/?");
	for (size_t i = alen; i > 0; i--)
		if (rest[i - 1] == '@') {
			rest += i;
			break;
		}
	return *rest && !strchr("/:@?", *rest);
}

int ldr_shared_check(larder *db, const char *where)
{
	if (!where || !*where)
		return ldr_fail(db, LARDER_EINVAL, 0,
				"no shared tier given (a directory or a "
				"redis:// URI)");
	if (strchr(where, '\n') || strlen(where) > 1024)
		return ldr_fail(db, LARDER_EINVAL, 0,
				"bad shared tier '%.64s': a line of at most "
				"1024 bytes is wanted",
				where);
	if (is_uri(where)) {
		static const char *const schemes[] = {
		    "redis://", "redis+sentinel://", "unix://"};
		const char *rest = NULL;
		for (size_t i = 0; i < sizeof schemes / sizeof *schemes; i++)
			if (!strncmp(where, schemes[i], strlen(schemes[i])))
				rest = where + strlen(schemes[i]);
		char *shown = ldr_uri_masked(where);
		int rc = 0;
		if (!strncmp(where, "rediss://", 9))
			rc = ldr_fail(db, LARDER_EINVAL, 0,
				      "bad shared tier '%s': TLS (rediss://) "
				      "is not supported: larder's Redis "
				      "client (hiredis 0.14) has no TLS; use "
				      "redis:// on a trusted network, or a "
				      "TLS tunnel to the server",
				      shown ? shown : "?");
		else if (!rest)
			rc = ldr_fail(db, LARDER_EINVAL, 0,
				      "bad shared tier '%s': unknown scheme "
				      "(want redis://, redis+sentinel://, "
				      "unix:// or a directory)",
				      shown ? shown : "?");
		else if (!strncmp(where, "unix://", 7) ? *rest != '/'
						       : !has_host(rest))
			rc = ldr_fail(db, LARDER_EINVAL, 0,
				      "bad shared tier '%s': no host (want "
				      "redis://[user:password@]host:port/db "
				      "or unix:///path/to/socket)",
				      shown ? shown : "?");
		free(shown);
		return rc;
	}
	if (where[0] != '/')
		return ldr_fail(db, LARDER_EINVAL, 0,
				"bad shared tier '%s': a directory must be "
				"given by its absolute path",
				where);
	if (db && db->dir) {
		if (same_dir(where, db->dir))
			return ldr_fail(db, LARDER_EINVAL, 0,
					"bad shared tier '%s': it is the store "
					"itself",
					where);
	}
	return 0;
}

int ldr_shared_configured(larder *db, const char *given, char *out, size_t size)
{
	out[0] = '\0';
	const char *env = getenv("LARDER_SHARED");
	const char *w = given ? given : env;
	char text[LDR_CONFIG_MAX];
	if (!w) {
		if (ldr_config_read(db, "", text, sizeof text) != 0)
			return ldr_fail_errno(db, errno,
					      "cannot read '%s/config': %s",
					      db->dir, strerror(errno));
		w = ldr_conf_val(text, "shared");
		w += strspn(w, " ");
	}
	size_t len = strcspn(w, "\n");
	if (len >= size)
		return ldr_fail(db, LARDER_EINVAL, 0,
				"bad shared tier: longer than %zu bytes",
				size - 1);
	memcpy(out, w, len);
	out[len] = '\0';
	return 0;
}

int ldr_shared_set(larder *db, const char *where)
{
	if (where && *where) {
		int rc = ldr_shared_check(db, where);
		if (rc == 0 && is_uri(where))
			rc = ldr_redis_check(db, where);
		if (rc)
			return rc;
	}
	char lines[1100];
	snprintf(lines, sizeof lines, "shared %s\n", where ? where : "");
	return ldr_config_replace(db, "", lines);
}

int larder_shared_set(larder *db, const char *where)
{
	return ldr_shared_set(db, where);
}

int larder_shared_try(larder *db)
{
	struct ldr_backend *s;
	return ldr_tier_shared(db, &s);
}

const char *larder_shared(const larder *db)
{
	return ldr_tier_shown(db->be);
}

/* A shared tier given for this run (larder_opts.shared, LARDER_SHARED)
 * is checked whole here, by the parser the backend uses, so that a
 * misspelt setting fails the open naming where it came from, as
 * `larder config --shared` refuses it, rather than costing a warning and
 * near-only service at every call. The store's own `shared` line was
 * checked when it was written; one edited by hand is judged when the
 * tier opens (a warning), so that the store can still be opened to
 * change it. */
static int check_given(larder *db, const char *from, const char *where)
{
	int rc = ldr_shared_check(db, where);
	if (rc == 0 && is_uri(where))
		rc = ldr_redis_check(db, where);
	if (rc == 0)
		return 0;
	char msg[1024];
	snprintf(msg, sizeof msg, "%s", larder_errmsg(db));
	return ldr_fail(db, rc, 0, "%s: %s", from, msg);
}

int ldr_tier_hang(larder *db, const larder_opts *opts)
{
	const char *given = opts && opts->version >= 4 ? opts->shared : NULL;
	const char *from = given		     ? "larder_opts.shared"
			   : getenv("LARDER_SHARED") ? "LARDER_SHARED"
						     : NULL;
	char where[1100];
	int rc = ldr_shared_configured(db, given, where, sizeof where);
	if (rc)
		return rc;
	if (from && *where && !(*where == '/' && same_dir(where, db->dir)) &&
	    (rc = check_given(db, from, where)) != 0)
		return rc;
	if (*where == '/' && same_dir(where, db->dir)) {
		/* The store is the shared tier itself (LARDER_SHARED set
		 * for a whole session, and a command run on the shared
		 * store): no tier in front of it. */
		*where = '\0';
	}
	if (!*where) {
		/* No shared tier: the store's own directory, through its
		 * root fd (the fast path of read.c and publish.c). */
		if ((rc = ldr_backend_open(&db->be, db, NULL)) == 0)
			db->be_own = 1;
		return rc;
	}
	if ((rc = ldr_be_tier_ops.open(&db->be, db, where)) == 0) {
		db->be_own = 0;
		db->be_near = 1;
	}
	return rc;
}
