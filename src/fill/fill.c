/*
 * fill.c — owns larder_get_or_fill (docs/leases.md): look up lock-free; on a
 * miss take the key's lease and load, or wait — bounded — for whoever
 * holds it, breaking it when its holder is gone; check the source did not
 * change during the load; publish even if the lease was lost meanwhile.
 *
 * Leases and waiting are the backend's (db->be, the storage seam of
 * docs/backends.md): this file opens no directory and no lease file, so
 * that a store of another kind, or a chain of tiers, fills the same way.
 */
#include "store.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "clock.h"
#include "publish.h"
#include "read.h"
#include "self.h"
#include "stats.h"

struct larder_fill {
	larder *db;
	const char *ns;
	const void *key;
	size_t klen;
	uint8_t *ver;
	size_t vlen;
	int have_ver;
	int in_loader;
	int snapshot; /* the loader set the version: no re-check */
	const larder_put_opts *put;
	larder_writer *w; /* begun at the loader's first write */
	int rc;		  /* first failure of a write */
	const volatile sig_atomic_t *cancel; /* larder_fill_opts.cancel */
	uint64_t token; /* the lease's fencing token (backend.h) */
};

/* The caller asked the call to stop (larder_fill_opts.cancel). */
static int cancelled(const larder_fill *f)
{
	return f->cancel && *f->cancel;
}

static int fail_cancelled(larder *db)
{
	return ldr_fail(db, LARDER_ECANCELED, 0,
			"cancelled by the caller (larder_fill_opts.cancel)");
}

int larder_fill_set_version(larder_fill *f, const void *ver, size_t vlen)
{
	if (!ver && vlen)
		return ldr_fail(f->db, LARDER_EINVAL, 0, "NULL version");
	/* Inside the loader the entry is named at its first write; the
	 * check after the load (version_fn again) may set it freely. */
	if (f->in_loader && f->w)
		return ldr_fail(f->db, LARDER_EINVAL, 0,
				"the version must be set before the loader "
				"writes data");
	uint8_t *v = malloc(vlen ? vlen : 1);
	if (!v)
		return ldr_fail(f->db, LARDER_ENOMEM, ENOMEM, "out of memory");
	if (vlen)
		memcpy(v, ver, vlen);
	free(f->ver);
	f->ver = v;
	f->vlen = vlen;
	f->have_ver = 1;
	if (f->in_loader)
		f->snapshot = 1;
	return 0;
}

const void *larder_fill_version(size_t *vlen, const larder_fill *f)
{
	*vlen = f->vlen;
	return f->ver;
}

int larder_fill_write(larder_fill *f, const void *buf, size_t len)
{
	if (!f->in_loader)
		return ldr_fail(f->db, LARDER_EINVAL, 0,
				"larder_fill_write outside a loader");
	if (f->rc)
		return f->rc;
	/* Before the temp file is made or grows: a cancelled load stops
	 * here, and the caller's loader returns what this returns. */
	if (cancelled(f))
		return f->rc = fail_cancelled(f->db);
	if (!f->w) {
		int rc =
		    ldr_writer_begin_fill(&f->w, f->db, f->ns, f->key, f->klen,
					  f->ver, f->vlen, f->put);
		if (rc)
			return f->rc = rc;
	}
	int rc = larder_writer_write(f->w, buf, len);
	return rc ? (f->rc = rc) : 0;
}

/* A callback's return as a larder code: a loader's own failure is
 * LARDER_EUSER, never taken for the library's (larder.h, "Callbacks"). */
static int call_cb(larder *db, int (*fn)(larder_fill *, void *), larder_fill *f,
		   void *payload, const char *what)
{
	unsigned long mark = ldr_err_mark();
	int rc = fn(f, payload);
	return ldr_cb_rc(db, mark, rc, 0, what);
}

/* ---------------------------------------------------------------------- */
/* Waiting for another filler                                              */

/* Telling the caller about the wait (opts->on_wait), from this thread:
 * at its start, every TICK_MS, at its end. */
#define TICK_MS 250

struct wait_report {
	larder_wait_fn fn; /* NULL: nobody to tell */
	void *payload;
	uint64_t t0;	    /* the wait's start (ldr_mono_ms) */
	uint64_t next_tick; /* UINT64_MAX when no tick is due */
	int started, ended;
	unsigned breaks;
	/* the holder last seen */
	char host[64];
	long pid;
	int dead;	   /* certainly gone (same host) */
	uint64_t seen_at;  /* when its lease last changed */
	uint64_t lease_ms; /* its lease period */
};

static void wait_tell(struct wait_report *r, int event, int end, uint64_t now)
{
	larder_wait_info info;
	memset(&info, 0, sizeof info);
	info.version = LARDER_WAIT_INFO_VERSION;
	info.event = event;
	info.end = end;
	info.waited_ms = now - r->t0;
	info.holder_host = r->host;
	info.holder_pid = r->pid;
	info.holder_silent_ms =
	    r->seen_at && now > r->seen_at ? now - r->seen_at : 0;
	info.holder_alive =
	    r->pid != 0 && !r->dead && info.holder_silent_ms < r->lease_ms;
	info.breaks = r->breaks;
	r->fn(&info, r->payload);
}

static void wait_start(struct wait_report *r, uint64_t now)
{
	r->started = 1;
	if (!r->fn)
		return;
	wait_tell(r, LARDER_WAIT_START, 0, now);
	r->next_tick = r->t0 + TICK_MS;
}

/* A tick is due: tell, and schedule the next one (skipping any missed
 * while the caller's callback or the filesystem was slow). */
static void wait_tick(struct wait_report *r, uint64_t now)
{
	wait_tell(r, LARDER_WAIT_TICK, 0, now);
	while (r->next_tick <= now)
		r->next_tick += TICK_MS;
}

/* The wait is over (once; nothing if it never started). */
static void wait_over(struct wait_report *r, int end)
{
	if (!r->started || r->ended)
		return;
	r->ended = 1;
	r->next_tick = UINT64_MAX;
	if (r->fn)
		wait_tell(r, LARDER_WAIT_END, end, ldr_mono_ms());
}

/* Sleep until the backend says to look again, at most max_ms; a tick of
 * the report falling due meanwhile is told on time, in between: the
 * backend's sleep is cut there and goes on after, so that the store is
 * not looked at more often for it. */
static int wait_some(struct ldr_be_wait *w, uint64_t max_ms,
		     struct wait_report *r, const volatile sig_atomic_t *cancel)
{
	const uint64_t until = ldr_mono_ms() + max_ms;
	for (;;) {
		uint64_t now = ldr_mono_ms();
		if (now >= until)
			return 0;
		uint64_t stop = until < r->next_tick ? until : r->next_tick;
		int rc = stop > now ? w->be->ops->wait(w, stop - now, cancel)
				    : LDR_BE_WAIT_MORE;
		now = ldr_mono_ms();
		if (now >= r->next_tick)
			wait_tick(r, now);
		if (rc != LDR_BE_WAIT_MORE)
			return rc;
	}
}

/* ---------------------------------------------------------------------- */
/* Loading                                                                 */

static int same_ver(const uint8_t *a, size_t alen, const uint8_t *b,
		    size_t blen)
{
	return alen == blen && (alen == 0 || memcmp(a, b, alen) == 0);
}

/* Run the loader (retrying when the source changed during the load) and
 * publish. */
static int load(larder_fill *f, larder_version_fn version_fn,
		larder_loader_fn loader, void *payload, unsigned retries,
		struct ldr_be_lease *lease, larder_entry **out, int *outcome)
{
	larder *db = f->db;
	for (unsigned attempt = 0;; attempt++) {
		if (cancelled(f))
			return fail_cancelled(db);
		f->w = NULL;
		f->rc = 0;
		f->snapshot = 0;
		f->in_loader = 1;
		ldr_count(db, LARDER_CTR_FILLS);
		int rc = call_cb(db, loader, f, payload, "the loader");
		f->in_loader = 0;
		if (rc == 0 && f->rc)
			rc = f->rc;
		if (rc == 0 && cancelled(f))
			rc = fail_cancelled(db);
		if (rc == 0 && !f->w) /* an empty result */
			rc = ldr_writer_begin_fill(&f->w, db, f->ns, f->key,
						   f->klen, f->ver, f->vlen,
						   f->put);
		if (rc) {
			larder_writer_abort(f->w);
			f->w = NULL;
			return rc;
		}
		if (version_fn && !f->snapshot) {
			uint8_t *before = f->ver;
			size_t blen = f->vlen;
			f->ver = NULL;
			f->have_ver = 0;
			rc = call_cb(db, version_fn, f, payload, "version_fn");
			if (rc == 0 && !f->have_ver)
				rc = ldr_fail(db, LARDER_EINVAL, 0,
					      "version_fn set no version");
			if (rc || !same_ver(before, blen, f->ver, f->vlen)) {
				larder_writer_abort(f->w);
				f->w = NULL;
				free(before);
				if (rc)
					return rc;
				ldr_count(db, LARDER_CTR_SOURCE_CHANGED);
				/* Another process may have loaded the new
				 * version already (it saw the change first):
				 * then it is simply there. */
				if (ldr_get_quiet(out, db, f->ns, f->key,
						  f->klen, f->ver,
						  f->vlen) == 0) {
					*outcome = LARDER_HIT;
					return 0;
				}
				if (attempt + 1 >= retries)
					return ldr_fail(db, LARDER_EBUSY, 0,
							"the source changed "
							"during each of %u "
							"loads",
							retries);
				continue;
			}
			free(before);
		}
		/* Publishing is safe whoever holds the lease (entries are
		 * immutable and checked); a lost lease is counted and does
		 * not move the head hint. Where the backend settles the
		 * lease in the commit itself (backend.h, stage_commit_lease)
		 * it is judged there, at the commit point, and told after;
		 * else it is asked here, before. */
		struct ldr_backend *be = db->be;
		int settles = lease && be->ops->version >= 3 &&
			      be->ops->stage_commit_lease;
		if (lease && !settles && !lease->be->ops->lease_held(lease)) {
			ldr_count(db, LARDER_CTR_LEASE_LOST);
			ldr_writer_no_head(f->w);
			ldr_log(db, LARDER_LOG_WARN,
				"lease on a key in '%s' was lost during the "
				"load (broken as stale?); publishing anyway",
				f->ns);
		}
		if (cancelled(f)) {
			larder_writer_abort(f->w);
			f->w = NULL;
			return fail_cancelled(db);
		}
		larder_entry *uncached, *own;
		larder_writer *w = f->w;
		f->w = NULL;
		if (lease)
			ldr_writer_set_token(w, f->token);
		if (settles)
			ldr_writer_set_lease(w, lease);
		rc = ldr_writer_commit_fill(w, &uncached, &own);
		if (settles && !lease->be->ops->lease_held(lease)) {
			ldr_count(db, LARDER_CTR_LEASE_LOST);
			ldr_log(db, LARDER_LOG_WARN,
				"lease on a key in '%s' was lost during the "
				"load (broken as stale?); published anyway, "
				"the head not moved",
				f->ns);
		}
		if (uncached) {
			/* The caller's load wins over the cache's trouble:
			 * rc and the message say what went wrong. */
			ldr_log(db, LARDER_LOG_WARN,
				"loaded data not cached: %s",
				larder_errmsg(db));
			*out = uncached;
			*outcome = LARDER_FILLED_UNCACHED;
			return 0;
		}
		if (rc < 0)
			return rc;
		*outcome = LARDER_FILLED;
		if (own) { /* the bytes just published, ours */
			*out = own;
			return 0;
		}
		rc = ldr_get_quiet(out, db, f->ns, f->key, f->klen, f->ver,
				   f->vlen);
		/* The data is in the store: if only reading it back failed
		 * (a mapping under `ulimit -v`, say), say so, with outcome
		 * FILLED, rather than let the caller think it was not
		 * cached. */
		if (rc < 0) {
			char why[1024]; /* the message is rewritten below */
			snprintf(why, sizeof why, "%s", larder_errmsg(db));
			rc = ldr_fail(db, rc, larder_errno(db),
				      "the loaded data was stored, but reading "
				      "it back failed: %s",
				      why);
		}
		return rc;
	}
}

/* After waiting for another filler that published nothing under our
 * version: the source may have moved on meanwhile (the filler saw it
 * change and published the new version instead). Compute the version
 * again and look for that. Returns 0 with *out (found), 1 (not there:
 * load it), or version_fn's failure. */
static int refresh_version(larder_fill *f, larder_version_fn version_fn,
			   void *payload, larder_entry **out)
{
	larder *db = f->db;
	uint8_t *before = f->ver;
	size_t blen = f->vlen;
	f->ver = NULL;
	f->have_ver = 0;
	int rc = call_cb(db, version_fn, f, payload, "version_fn");
	if (rc == 0 && !f->have_ver)
		rc =
		    ldr_fail(db, LARDER_EINVAL, 0, "version_fn set no version");
	if (rc) {
		free(f->ver);
		f->ver = before;
		f->vlen = blen;
		f->have_ver = 1;
		return rc;
	}
	int same = same_ver(before, blen, f->ver, f->vlen);
	free(before);
	if (same)
		return 1;
	return ldr_get_quiet(out, db, f->ns, f->key, f->klen, f->ver,
			     f->vlen) == 0
		   ? 0
		   : 1;
}

/* ---------------------------------------------------------------------- */

/* A year: no lease, heartbeat or wait is longer. */
#define FILL_MAX_SECONDS (366.0 * 86400)

static int fill_opts_check(larder *db, const larder_fill_opts *o)
{
	if (o && ldr_check_version(db, "larder_fill_opts", o->version, 1,
				   LARDER_FILL_OPTS_VERSION))
		return LARDER_EINVAL;
	if (o &&
	    (o->lease_seconds < 0 || o->heartbeat_seconds < 0 ||
	     o->max_wait_seconds < 0 ||
	     (o->lease_seconds && o->heartbeat_seconds >= o->lease_seconds)))
		return ldr_fail(db, LARDER_EINVAL, 0,
				"bad fill options: lease %.3f s, heartbeat "
				"%.3f s, max wait %.3f s (heartbeat must be "
				"shorter than the lease)",
				o->lease_seconds, o->heartbeat_seconds,
				o->max_wait_seconds);
	/* Written as !(lo <= x && x <= hi) so that NaN is refused too. A
	 * lease shorter than the minimum cannot be kept alive by heartbeats
	 * (docs/leases.md); a longer one than the maximum would be taken
	 * for garbage and broken while its holder lives (lease.h). */
	if (o && o->lease_seconds != 0 &&
	    !(o->lease_seconds >= LARDER_LEASE_MIN_SECONDS &&
	      o->lease_seconds <= LARDER_LEASE_MAX_SECONDS))
		return ldr_fail(db, LARDER_EINVAL, 0,
				"lease of %g s: want %g to %g s "
				"(docs/leases.md)",
				o->lease_seconds, LARDER_LEASE_MIN_SECONDS,
				LARDER_LEASE_MAX_SECONDS);
	/* Bounded so that the milliseconds fit. */
	if (o && (!(o->heartbeat_seconds <= FILL_MAX_SECONDS) ||
		  !(o->max_wait_seconds <= FILL_MAX_SECONDS)))
		return ldr_fail(db, LARDER_EINVAL, 0,
				"bad fill options: heartbeat %g s, max wait "
				"%g s (each at most a year)",
				o->heartbeat_seconds, o->max_wait_seconds);
	if (o && o->max_wait_seconds != 0 && !(o->max_wait_seconds >= 0.001))
		return ldr_fail(db, LARDER_EINVAL, 0,
				"max wait of %g s: the shortest is 0.001 s",
				o->max_wait_seconds);
	return 0;
}

/* What one larder_get_or_fill call amounted to, as one request and one
 * of hits, misses, waits (larder.h); lookups on the way counted nothing. */
static void count_request(larder *db, int how)
{
	ldr_count(db, LARDER_CTR_REQUESTS);
	ldr_count(db, how == LARDER_HIT || how == LARDER_STALE ? LARDER_CTR_HITS
		      : how == LARDER_WAITED ? LARDER_CTR_WAITS
					     : LARDER_CTR_MISSES);
	ldr_stats_tick(db);
}

int larder_get_or_fill(larder_entry **out, int *outcome, larder *db,
		       const char *ns, const void *key, size_t klen,
		       const void *ver, size_t vlen,
		       larder_version_fn version_fn, larder_loader_fn loader,
		       void *payload, const larder_fill_opts *opts)
{
	int how_local, *how = outcome ? outcome : &how_local;
	*out = NULL;
	*how = 0;
	int rc = ldr_check_ns(db, ns);
	if (rc || (rc = fill_opts_check(db, opts)))
		return rc;
	if (!loader || (!ver && !version_fn))
		return ldr_fail(db, LARDER_EINVAL, 0,
				"get_or_fill needs a loader, and a version or "
				"a version function");
	uint64_t lease_ms = opts && opts->lease_seconds
				? (uint64_t)(opts->lease_seconds * 1000)
				: 30000;
	if (lease_ms < 1)
		lease_ms = 1;
	uint64_t hb_ms = opts && opts->heartbeat_seconds
			     ? (uint64_t)(opts->heartbeat_seconds * 1000)
			     : lease_ms / 4;
	if (hb_ms < 1)
		hb_ms = 1;
	uint64_t max_wait_ms = opts && opts->max_wait_seconds
				   ? (uint64_t)(opts->max_wait_seconds * 1000)
				   : 10 * lease_ms;
	unsigned retries = opts && opts->max_retries ? opts->max_retries : 3;
	unsigned flags = opts ? opts->flags : 0;

	larder_fill f = {db, ns, key,  klen, NULL, 0,	 0,
			 0,  0,	 NULL, NULL, 0,	   NULL, 0};
	f.put = opts ? opts->put : NULL;
	if (opts && opts->version >= 3)
		f.cancel = opts->cancel;
	if (ver) {
		rc = larder_fill_set_version(&f, ver, vlen);
	} else {
		rc = call_cb(db, version_fn, &f, payload, "version_fn");
		if (rc == 0 && !f.have_ver)
			rc = ldr_fail(db, LARDER_EINVAL, 0,
				      "version_fn set no version");
	}
	if (rc)
		goto out;
	const larder_version_fn recheck = ver ? NULL : version_fn;

	/* A backend whose lease step also reads the entry that stands
	 * (backend.h, lease_acquire_read: Redis, a tier) makes that step
	 * the first look: a hit is still one round trip, and a miss comes
	 * back with the lease taken, or its holder. Behind a near tier,
	 * near is looked at first, alone, through the handle's own path. */
	struct ldr_backend *be = db->be;
	const int folded = be && !db->be_own && be->ops->version >= 4 &&
			   be->ops->lease_acquire_read;
	if (folded && !db->be_near)
		goto coordinated;

	/* Lock-free first: the warm path costs one lookup. */
	rc = folded ? ldr_get_near(out, db, ns, key, klen, f.ver, f.vlen)
		    : ldr_get_quiet(out, db, ns, key, klen, f.ver, f.vlen);
	if (rc == 0) {
		*how = LARDER_HIT;
		goto out;
	}
	if (rc == LARDER_ENOMEM)
		goto out; /* it is there, but too big for memory: loading
			     again would not make it smaller (stream it) */
	if (rc != LARDER_ENOTFOUND) {
		/* The store cannot be read: still load, uncached. */
		rc =
		    load(&f, recheck, loader, payload, retries, NULL, out, how);
		goto out;
	}

coordinated:;
	/* The lease, the wait and the entry are the backend's (the seam):
	 * named once, by the version asked for, as the waiters watch it. */
	struct ldr_name nm;
	ldr_name_init(&nm, ns, key, klen, f.ver, f.vlen);
	struct ldr_self me;
	ldr_self_cached(&me, db);
	struct ldr_be_wait *wt = NULL;
	int watching = 0, waited = 0, tried_stale = 0, entry_gone = 0;
	struct ldr_be_holder seen;
	memset(&seen, 0, sizeof seen);
	uint64_t t0 = ldr_mono_ms(), seen_at = t0;
	struct wait_report rep;
	memset(&rep, 0, sizeof rep);
	rep.t0 = t0;
	rep.next_tick = UINT64_MAX;
	if (opts && opts->version >= 2 && opts->on_wait) {
		rep.fn = opts->on_wait;
		rep.payload = opts->on_wait_payload;
	}
	for (;;) {
		if (cancelled(&f)) {
			wait_over(&rep, LARDER_WAIT_FAILED);
			rc = fail_cancelled(db);
			break;
		}
		struct ldr_be_lease *lease = NULL;
		struct ldr_be_holder holder;
		memset(&holder, 0, sizeof holder);
		uint64_t token = 0;
		struct ldr_file rf; /* the entry the lease step read */
		int frc = LARDER_ENOTFOUND;
		int r =
		    folded
			? be->ops->lease_acquire_read(
			      be, &nm, &me, lease_ms, hb_ms, &lease, &token,
			      &holder, ldr_get_read_pre, &rf, &frc)
			: be->ops->lease_acquire(be, &nm, &me, lease_ms, hb_ms,
						 &lease, &token, &holder);
		if (folded && r != LDR_BE_LEASE_ENTRY)
			ldr_file_free(&rf); /* (nothing read) */
		if (r == 0) {
			f.token = token;
			/* Double-check: the entry may have been published
			 * between our miss and the lease; a backend that
			 * looked in the same step (Redis) has answered. */
			rc = (lease->flags & LDR_BE_LEASE_LOOKED)
				 ? LARDER_ENOTFOUND
				 : ldr_get_quiet(out, db, ns, key, klen, f.ver,
						 f.vlen);
			if (rc != 0 && waited && recheck)
				rc = refresh_version(&f, recheck, payload, out);
			else if (rc != 0)
				rc = 1;
			if (rc == 0) {
				*how = waited ? LARDER_WAITED : LARDER_HIT;
				wait_over(&rep, LARDER_WAIT_FILLED);
			} else if (rc > 0) {
				wait_over(&rep, LARDER_WAIT_TAKEN_OVER);
				rc = load(&f, recheck, loader, payload, retries,
					  lease, out, how);
			} else { /* version_fn failed: rc says why */
				wait_over(&rep, LARDER_WAIT_FAILED);
			}
			be->ops->lease_release(lease);
			break;
		}
		if (r == LDR_BE_LEASE_ENTRY) {
			/* Published since our miss (or while we waited), or
			 * the first look's hit where the lease step looks. */
			rc = folded ? ldr_get_read(out, db, ns, key, klen,
						   f.ver, f.vlen, &rf, frc)
				    : ldr_get_quiet(out, db, ns, key, klen,
						    f.ver, f.vlen);
			if (rc == 0) {
				*how = waited ? LARDER_WAITED : LARDER_HIT;
				wait_over(&rep, LARDER_WAIT_FILLED);
				break;
			}
			if (rc == LARDER_ENOMEM) {
				wait_over(&rep, LARDER_WAIT_FAILED);
				break;
			}
			/* Gone between the look and the read (removed,
			 * evicted, or bad and rejected by the read): the
			 * next look sees that. A backend whose look and
			 * read keep disagreeing costs a load without the
			 * lease, never a loop. */
			if (++entry_gone < 3)
				continue;
			r = LDR_BE_LEASE_NONE;
		}
		if (r < 0 || r == LDR_BE_LEASE_NONE) {
			/* No lease possible (a read-only store?): load
			 * anyway. */
			if (r < 0)
				ldr_log(db, LARDER_LOG_WARN,
					"%s; loading without one",
					larder_errmsg(db));
			wait_over(&rep, LARDER_WAIT_FAILED);
			rc = load(&f, recheck, loader, payload, retries, NULL,
				  out, how);
			break;
		}
		/* Someone else fills. */
		if ((flags & LARDER_FILL_ALLOW_STALE) && !tried_stale) {
			tried_stale = 1;
			larder_entry *old;
			if (ldr_get_quiet(&old, db, ns, key, klen, NULL, 0) ==
			    0) {
				/* The head may already name the version we
				 * want: then it is simply there. */
				size_t olen;
				const void *ov =
				    larder_entry_version(&olen, old);
				*out = old;
				*how = same_ver(ov, olen, f.ver, f.vlen)
					   ? LARDER_WAITED
					   : LARDER_STALE;
				wait_over(&rep, LARDER_WAIT_FILLED);
				rc = 0;
				break;
			}
		}
		uint64_t now = ldr_mono_ms();
		if (!holder.blind) {
			/* Alive: it changed; or the backend keeps the
			 * lease's clock (ttl_ms >= 0), and a record that
			 * is still there is one the server has not expired,
			 * however long it stays the same (a renewal does not
			 * change it). */
			if (!ldr_be_holder_same(&holder, &seen) ||
			    holder.ttl_ms >= 0) {
				seen = holder;
				seen_at = now;
			}
			/* A record names its holder and its lease period.
			 * Garbage (unreadable, implausible, not a file:
			 * docs/leases.md) names nobody: its period is our
			 * own, so it cannot hold the key longer than a lease
			 * of ours would. Whether the holder is certainly
			 * gone is this look's judgement. */
			int dead = !seen.rec.garbage && holder.dead;
			uint64_t period =
			    seen.rec.garbage ? lease_ms : seen.rec.lease_ms;
			snprintf(rep.host, sizeof rep.host, "%s",
				 seen.rec.host);
			rep.pid = seen.rec.pid;
			rep.dead = dead;
			rep.seen_at = seen_at;
			rep.lease_ms = period;
			/* Stale when its holder is certainly gone (same
			 * host), or, where the backend keeps no clock of
			 * its own (ttl_ms -1), nothing changed for a full
			 * lease period by ours. A lease the backend times
			 * (ttl_ms >= 0) is never judged by our clock: it is
			 * gone when the server expires it, and the next
			 * acquire takes it. */
			int stale = dead || (seen.ttl_ms < 0 &&
					     now - seen_at >= period);
			int broke =
			    stale ? be->ops->lease_break(be, &nm, &seen) : 0;
			/* If another waiter is breaking it this instant, wait
			 * as for a holder (its rename wakes us): its turn is
			 * short, and max_wait bounds it all the same. */
			if (stale && broke != 2) {
				if (broke > 0) {
					rep.breaks++;
					ldr_count(db, LARDER_CTR_LEASE_BREAKS);
					if (seen.rec.garbage)
						ldr_log(db, LARDER_LOG_INFO,
							"removed a stale lease "
							"that was %s in '%s' "
							"(%s)",
							seen.rec.garbage, ns,
							db->dir);
					else
						ldr_log(db, LARDER_LOG_INFO,
							"broke a stale lease "
							"of %s pid %ld in '%s' "
							"(%s)",
							seen.rec.host,
							seen.rec.pid, ns,
							db->dir);
				}
				memset(&seen, 0, sizeof seen);
				continue;
			}
		}
		if (now - t0 >= max_wait_ms) {
			/* Never a deadlock: load ourselves. */
			ldr_log(db, LARDER_LOG_WARN,
				"waited %.1f s for another filler; loading "
				"without the lease",
				(double)(now - t0) / 1000);
			wait_over(&rep, LARDER_WAIT_TIMED_OUT);
			rc = load(&f, recheck, loader, payload, retries, NULL,
				  out, how);
			break;
		}
		if (!watching) {
			rc = be->ops->wait_begin(be, &nm, &wt);
			if (rc) {
				wait_over(&rep, LARDER_WAIT_FAILED);
				break;
			}
			watching = 1;
			wait_start(&rep, now);
		}
		waited = 1;
		/* Look for the entry after arming the watch, so that a
		 * publish in between is not missed. */
		if (ldr_get_quiet(out, db, ns, key, klen, f.ver, f.vlen) == 0) {
			*how = LARDER_WAITED;
			wait_over(&rep, LARDER_WAIT_FILLED);
			rc = 0;
			break;
		}
		uint64_t left = max_wait_ms - (now - t0);
		/* A cancel is seen at the top of the loop. */
		wait_some(wt, left ? left : 1, &rep, f.cancel);
	}
	wait_over(&rep, rc == 0 ? LARDER_WAIT_FILLED : LARDER_WAIT_FAILED);
	if (waited) {
		uint64_t ms = ldr_mono_ms() - t0;
		__atomic_fetch_add(&db->ctr[LARDER_CTR_FILL_WAIT_MS], ms,
				   __ATOMIC_RELAXED);
	}
	if (watching)
		be->ops->wait_end(wt);
out:
	free(f.ver);
	count_request(db, *how);
	return rc;
}
