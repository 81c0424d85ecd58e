/*
 * walk_tier.c — larder_walk and larder_inspect: the near tier's walk
 * (walk.c), or with LARDER_WALK_SHARED the shared tier's, through the
 * storage seam (docs/backends.md). Kept apart from walk.c because the
 * shared tier is opened through tier.c, which stands above the directory
 * backend and so above walk.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "file.h"
#include "fsutil.h"
#include "tier.h"
#include "walk.h"

/* A shared directory is a store: walked by the very code above, on the
 * handle its backend keeps there (its paths, its quarantine/, its
 * heads, access times left alone), with the caller's callback judged on
 * the caller's handle. */
struct fwd {
	larder *db;
	larder_walk_fn cb;
	void *payload;
	int user_rc; /* what the caller's callback stopped the walk with */
};

static int fwd_cb(const larder_entry_info *info, void *payload)
{
	struct fwd *x = payload;
	unsigned long mark = ldr_err_mark();
	x->user_rc = ldr_cb_rc(x->db, mark, x->cb(info, x->payload), 1,
			       "the walk callback");
	/* Any stop will do for the inner walk: the caller gets user_rc,
	 * with its message on its own handle. */
	return x->user_rc ? 1 : 0;
}

/* The inner walk's end as the caller's: its own callback's code, or a
 * failure of the shared store relayed to db; and what that walk skipped
 * counted on db too (verify reports it). */
static int fwd_end(struct fwd *x, larder *st, int rc, uint64_t skipped0)
{
	larder *db = x->db;
	if (st != db)
		__atomic_fetch_add(
		    &db->ctr[LARDER_CTR_WALK_SKIPPED],
		    __atomic_load_n(&st->ctr[LARDER_CTR_WALK_SKIPPED],
				    __ATOMIC_RELAXED) -
			skipped0,
		    __ATOMIC_RELAXED);
	if (x->user_rc)
		return x->user_rc;
	if (rc < 0 && st != db)
		return ldr_fail(db, rc, larder_errno(st), "shared tier: %s",
				larder_errmsg(st));
	return rc;
}

/* Any other backend (Redis): each entry read whole through the seam and
 * judged as a file is; `where` is where the backend keeps it. With
 * missing_ok, an entry gone since it was listed (removed, expired,
 * evicted: a lost chunk is counted by the backend) is passed over. */
static int describe_shared(struct ldr_walk *w, struct ldr_backend *s,
			   const char *ns, const uint8_t hash[16],
			   const char *where, int missing_ok)
{
	larder *db = w->db;
	struct ldr_name n;
	ldr_name_init(&n, ns, NULL, 0, NULL, 0);
	memcpy(n.hash, hash, 16);
	memcpy(w->want, hash, 16);
	struct ldr_file f;
	int rc = s->ops->read(s, &n, LDR_LOAD_SCAN, 0, &f);
	if (rc == LARDER_ENOTFOUND && missing_ok) {
		ldr_clear_error(db);
		return 0;
	}
	if (rc == LARDER_ENOTFOUND)
		return ldr_fail(db, rc, 0,
				"no entry at %s in the shared tier (removed, "
				"expired or evicted)",
				where);
	if (rc)
		return rc;
	larder_entry_info info;
	memset(&info, 0, sizeof info);
	info.version = LARDER_ENTRY_INFO_VERSION;
	info.ns = ns;
	info.path = where;
	info.file_size = f.size;
	ldr_hdr h;
	int state = ldr_walk_judge(w, &f, where, ns, &h, &info);
	if (state < 0) {
		ldr_file_free(&f);
		return state;
	}
	if ((w->flags & LARDER_WALK_REPAIR) &&
	    (state == LARDER_STATE_CORRUPT ||
	     state == LARDER_STATE_MISPLACED)) {
		/* Removed there if it is still the entry read (Redis
		 * compares the writer's stage), so that a sound entry
		 * published meanwhile stays. Its key's head, when the
		 * header names this very entry, goes with it where the
		 * backend keeps heads beside entries. */
		struct ldr_name rn = n;
		if (state == LARDER_STATE_CORRUPT && h.hdr_len != 0) {
			ldr_name_init(&rn, ns, h.key, h.key_len, h.ver,
				      h.ver_len);
			if (memcmp(rn.hash, hash, 16) != 0)
				rn = n;
		}
		s->ops->reject(s, &rn, &f, info.problem);
		struct ldr_file g;
		int grc = s->ops->read(s, &n, LDR_LOAD_SCAN, 0, &g);
		info.quarantined = grc == LARDER_ENOTFOUND;
		if (grc == 0)
			ldr_file_free(&g);
		else
			ldr_clear_error(db);
	}
	unsigned long mark = ldr_err_mark();
	rc = ldr_cb_rc(db, mark, w->cb(&info, w->payload), 1,
		       "the walk callback");
	ldr_file_free(&f);
	return rc;
}

struct swalk {
	struct ldr_walk *w;
	struct ldr_backend *s;
	const char *ns;
};

static int shared_entry_cb(const uint8_t hash[16], const char *where, void *p)
{
	struct swalk *x = p;
	return describe_shared(x->w, x->s, x->ns, hash, where, 1);
}

static int shared_ns_cb(const char *ns, void *p)
{
	struct swalk *x = p;
	/* The library's own namespaces (".files") are walked by name
	 * only, as in the store's own directory; a name larder could not
	 * have made is passed over. */
	if (ns[0] == '.' || strlen(ns) > LARDER_NS_MAX)
		return 0;
	struct swalk y = {x->w, x->s, ns};
	return x->s->ops->walk(x->s, ns, shared_entry_cb, &y);
}

static int walk_shared(struct ldr_walk *w, const char *ns)
{
	larder *db = w->db;
	struct ldr_backend *s;
	int rc = ns ? ldr_check_ns_name(db, ns, 1) : 0;
	if (rc || (rc = ldr_tier_shared(db, &s)) != 0)
		return rc;
	w->flags &= ~LARDER_WALK_SHARED;
	if (s->ops == &ldr_be_dir_ops) {
		larder *st = ldr_be_dir_store(s);
		struct fwd x = {db, w->cb, w->payload, 0};
		uint64_t skipped0 = __atomic_load_n(
		    &st->ctr[LARDER_CTR_WALK_SKIPPED], __ATOMIC_RELAXED);
		rc = larder_walk(st, ns, w->flags, fwd_cb, &x);
		return fwd_end(&x, st, rc, skipped0);
	}
	struct swalk x = {w, s, ns};
	if (ns)
		rc = s->ops->walk(s, ns, shared_entry_cb, &x);
	else
		rc = s->ops->list_ns(s, shared_ns_cb, &x);
	return rc;
}

static int inspect_shared(larder *db, const char *ns, const void *key,
			  size_t klen, const void *ver, size_t vlen,
			  unsigned flags, larder_walk_fn cb, void *payload)
{
	struct ldr_backend *s;
	int rc = ldr_check_ns_name(db, ns, 1);
	if (rc || (rc = ldr_tier_shared(db, &s)) != 0)
		return rc;
	flags &= ~LARDER_WALK_SHARED;
	if (s->ops == &ldr_be_dir_ops) {
		larder *st = ldr_be_dir_store(s);
		struct fwd x = {db, cb, payload, 0};
		uint64_t skipped0 = __atomic_load_n(
		    &st->ctr[LARDER_CTR_WALK_SKIPPED], __ATOMIC_RELAXED);
		rc = larder_inspect(st, ns, key, klen, ver, vlen, flags, fwd_cb,
				    &x);
		return fwd_end(&x, st, rc, skipped0);
	}
	uint8_t *headver = NULL;
	struct ldr_name n;
	if (!ver) {
		/* The version the shared tier's head names, asked afresh. */
		ldr_name_init(&n, ns, key, klen, NULL, 0);
		rc = s->ops->head_get(s, &n, &headver, &vlen);
		if (rc)
			return rc == LARDER_ENOTFOUND
				   ? ldr_fail(db, rc, 0,
					      "no head version for that key "
					      "in namespace '%s' of the shared "
					      "tier",
					      ns)
				   : rc;
		ver = headver;
	}
	ldr_name_init(&n, ns, key, klen, ver, vlen);
	char where[1400];
	if (s->ops == &ldr_be_redis_ops) {
		ldr_be_redis_where(s, n.hash, where, sizeof where);
	} else {
		char hex[33];
		ldr_hex(n.hash, 16, hex);
		snprintf(where, sizeof where, "%s entry %s", s->ops->kind, hex);
	}
	struct ldr_walk w = {db, flags, cb, payload, {0}};
	rc = describe_shared(&w, s, ns, n.hash, where, 0);
	free(headver);
	return rc;
}

int larder_walk(larder *db, const char *ns, unsigned flags, larder_walk_fn cb,
		void *payload)
{
	struct ldr_walk w = {db, flags, cb, payload, {0}};
	if (flags & LARDER_WALK_SHARED)
		return walk_shared(&w, ns);
	return ldr_walk_near(db, ns, flags, cb, payload);
}

int larder_inspect(larder *db, const char *ns, const void *key, size_t klen,
		   const void *ver, size_t vlen, unsigned flags,
		   larder_walk_fn cb, void *payload)
{
	if (flags & LARDER_WALK_SHARED)
		return inspect_shared(db, ns, key, klen, ver, vlen, flags, cb,
				      payload);
	return ldr_inspect_near(db, ns, key, klen, ver, vlen, flags, cb,
				payload);
}
