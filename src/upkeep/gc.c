/*
 * gc.c — owns caps and cleaning (docs/operations.md): the namespaces'
 * caps (config files, cached in upkeep's slot on the handle), and the
 * cleaning itself (larder_gc, and the one a publish starts through the
 * store's hooks, which the facade installs at open). The touch on a hit
 * and the free-space check are the store's (src/store/recency.c).
 *
 * Cleaning, with memory bounded whatever the store's size:
 *   lock    DIR/gc.lock, non-blocking OFD lock: one cleaner per store,
 *           the others skip (a lock saves work; removal is safe anyway,
 *           so a user who may not open the file cleans without it).
 *   pass 1  walk every entry's header (O_NOATIME: the walk must not make
 *           everything recent); remove the expired; count the rest per
 *           quota domain (the store, each capped namespace): superseded
 *           versions apart, the others in a histogram of access-time age.
 *   decide  per domain, how much to free (down to 90% of a cap; up to the
 *           run watermark) and the age bucket at which to cut.
 *   pass 2  walk again; remove the superseded while their allowance
 *           lasts, then the entries older than the cut (and in the cut
 *           bucket while its allowance lasts). An entry touched since
 *           pass 1 is younger and stays; one published since is young.
 * Every removal is ldr_remove_same (a file replaced meanwhile stays) and a
 * reader holding the entry keeps its data (its buffer or mapping).
 */
#include "gc.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "config.h"
#include "fsutil.h"
#include "head.h"
#include "recency.h"
#include "walk.h"
#include "stats.h"
#include "store.h"
#include "sweep.h"

#define RELOAD_S 2	  /* config re-read at most this often */
#define NS_CACHE 16	  /* namespaces whose caps a handle keeps */
#define MAX_PASSES 8	  /* cleanings in a row while still over (gc_loop) */
#define LOW_MARK_PCT 90	  /* a cap is cleaned down to this */
#define NBUCKETS (64 * 8) /* age histogram: 8 per power of two */
#define LDR_GC_LOCK "gc.lock"
/* A cut that takes every entry, whatever its age in pass 2 (see cut) */
#define CUT_ALL (-2)
/* An internal flag: larder_gc() sweeps, a publish's cleaning does not. */
#define GC_SWEEP 0x100u
/* A publish's cleaning of a large store: one slice of it (see pick_slice) */
#define GC_SLICE 0x200u
/* A slice holds about this many entries; stores of fewer than twice this
 * are cleaned whole. At most 256 slices (the first fan-out level). */
#define SLICE_ENTRIES 4096

struct ns_limits {
	char ns[LARDER_NS_MAX + 1];
	int64_t loaded; /* monotonic s; 0 = empty slot */
	int64_t max_bytes, max_entries;
};

/* Upkeep's state per handle, on a slot (store.h): the namespaces' caps,
 * and when and where it cleaned last. The store's own limits (caps,
 * watermarks, touch interval) are read through recency.h. */
struct ldr_gc {
	pthread_mutex_t mu;
	struct ns_limits ns[NS_CACHE];
	unsigned ns_next;
	int64_t cull_cleaned_ms; /* last cleaning for the cull watermark */
	unsigned slice_next;	 /* a publish's next slice + 1, under the
				    store's gc lock (0: pick one at random) */
	int unlocked_said;	 /* cleaning without gc.lock logged */
};

/* ---------------------------------------------------------------------- */
/* Configuration                                                           */

/* The key of upkeep's slot on the handle (store.h). */
static const char gc_key;

/* Upkeep's state on db: hung there at open (ldr_gc_open). */
static struct ldr_gc *gc_of(larder *db)
{
	return ldr_slot_get(db, &gc_key);
}

/* The caps of ns (cached); under g->mu. */
static struct ns_limits *load_ns(larder *db, const char *ns, int force)
{
	struct ldr_gc *g = gc_of(db);
	int64_t now = ldr_coarse_ms() / 1000 + 1;
	struct ns_limits *s = NULL;
	for (unsigned i = 0; i < NS_CACHE; i++)
		if (g->ns[i].loaded && strcmp(g->ns[i].ns, ns) == 0)
			s = &g->ns[i];
	if (s && !force && now - s->loaded < RELOAD_S)
		return s;
	if (!s) {
		s = &g->ns[g->ns_next++ % NS_CACHE];
		snprintf(s->ns, sizeof s->ns, "%s", ns);
	}
	char dir[LDR_REL_MAX], text[LDR_CONFIG_MAX];
	snprintf(dir, sizeof dir, "ns/%s", ns);
	s->max_bytes = s->max_entries = 0;
	if (ldr_config_read(db, dir, text, sizeof text) == 0) {
		s->max_bytes = ldr_conf_num(text, "max_bytes");
		s->max_entries = ldr_conf_num(text, "max_entries");
	}
	s->loaded = now;
	return s;
}

static void gc_free(void *ptr)
{
	struct ldr_gc *g = ptr;
	pthread_mutex_destroy(&g->mu);
	free(g);
}

int ldr_gc_open(larder *db)
{
	struct ldr_gc *g = calloc(1, sizeof *g);
	if (!g)
		return ldr_fail(NULL, LARDER_ENOMEM, ENOMEM, "out of memory");
	pthread_mutex_init(&g->mu, NULL);
	if (ldr_slot_swap(db, &gc_key, NULL, g, gc_free) != 0) {
		gc_free(g);
		return ldr_fail(NULL, LARDER_EINVAL, 0,
				"cannot hang the cleaner's state on the "
				"handle");
	}
	return 0;
}

static int check_limits(larder *db, const larder_limits *l)
{
	if (ldr_check_version(db, "larder_limits", l ? l->version : 0,
			      LARDER_LIMITS_VERSION, LARDER_LIMITS_VERSION))
		return LARDER_EINVAL;
	if (l->max_bytes < 0 || l->max_entries < 0)
		return ldr_fail(db, LARDER_EINVAL, 0,
				"negative cap (max_bytes %lld, max_entries "
				"%lld)",
				(long long)l->max_bytes,
				(long long)l->max_entries);
	int r = l->wm_run, c = l->wm_cull, s = l->wm_stop;
	if (!(r == 0 && c == 0 && s == 0) &&
	    !(r > c && c > s && s >= 0 && r <= 100))
		return ldr_fail(db, LARDER_EINVAL, 0,
				"bad watermarks run %d, cull %d, stop %d: "
				"want 100 >= run > cull > stop >= 0, or all "
				"0 (off)",
				r, c, s);
	if (l->touch_interval < 0)
		return ldr_fail(db, LARDER_EINVAL, 0,
				"negative touch interval %lld",
				(long long)l->touch_interval);
	return 0;
}

int larder_limits_get(larder_limits *out, larder *db, const char *ns)
{
	int rc = ns ? ldr_check_ns_internal(db, ns) : 0;
	if (rc == 0)
		rc = ldr_check_version(db, "larder_limits", out->version,
				       LARDER_LIMITS_VERSION,
				       LARDER_LIMITS_VERSION);
	if (rc)
		return rc;
	struct ldr_gc *g = gc_of(db);
	ldr_store_limits(db, 1, out);
	pthread_mutex_lock(&g->mu);
	if (ns) {
		struct ns_limits *s = load_ns(db, ns, 1);
		out->max_bytes = s->max_bytes;
		out->max_entries = s->max_entries;
	}
	pthread_mutex_unlock(&g->mu);
	return 0;
}

int larder_limits_set(larder *db, const char *ns, const larder_limits *l)
{
	int rc = ns ? ldr_check_ns_internal(db, ns) : 0;
	if (rc || (rc = check_limits(db, l)))
		return rc;
	char lines[512], dir[LDR_REL_MAX];
	if (ns) {
		/* ttl first: older versions read only the first line */
		snprintf(lines, sizeof lines,
			 "ttl %lld\nmax_bytes %lld\nmax_entries %lld\n",
			 (long long)ldr_ns_ttl(db, ns), (long long)l->max_bytes,
			 (long long)l->max_entries);
		snprintf(dir, sizeof dir, "ns/%s", ns);
	} else {
		snprintf(lines, sizeof lines,
			 "max_bytes %lld\nmax_entries %lld\nwatermarks %d %d "
			 "%d\ntouch_interval %lld\n",
			 (long long)l->max_bytes, (long long)l->max_entries,
			 l->wm_run, l->wm_cull, l->wm_stop,
			 (long long)l->touch_interval);
		dir[0] = '\0';
	}
	rc = ldr_config_replace(db, dir, lines);
	larder_limits now;
	ldr_store_limits(db, 1, &now);
	struct ldr_gc *g = gc_of(db);
	pthread_mutex_lock(&g->mu);
	if (ns)
		load_ns(db, ns, 1);
	pthread_mutex_unlock(&g->mu);
	return rc;
}

/* ---------------------------------------------------------------------- */
/* Cleaning                                                                */

/* A quota domain: the store (ns "") or one capped namespace. */
struct dom {
	char ns[LARDER_NS_MAX + 1];
	int64_t max_bytes, max_entries;
	int64_t used_b, used_n; /* found by pass 1 (expired excluded) */
	int64_t sup_b, sup_n;	/* of which superseded */
	int64_t hb[NBUCKETS], hn[NBUCKETS]; /* the others by age */
	int64_t need_b, need_n;		    /* to free */
	int64_t sup_left_b, sup_left_n;	    /* superseded still to remove */
	int cut_b, cut_n;		    /* -1: no cut; or CUT_ALL */
	int64_t edge_b, edge_n;		    /* allowance in the cut bucket */
	struct dom *next;
};

/* The entry a publish just made: the cleaning that publish starts leaves
 * it alone (see ldr_after_publish). */
struct gc_keep {
	const char *ns;
	const char *name; /* its file name, 32 hex digits */
};

/* What the walk found in one namespace (namespaces are few). */
struct tally {
	char ns[LARDER_NS_MAX + 1];
	int64_t b, n;	  /* found, less removed */
	int64_t u0b, u0n; /* usage before the walk */
	int64_t rb, rn;	  /* removed by us */
	struct tally *next;
};

struct gc_run {
	larder *db;
	unsigned flags;
	larder_gc_report *rep;
	int64_t now;	    /* wall clock at the start, for ages */
	int pass;	    /* 1 or 2 */
	struct dom store;   /* always there */
	struct dom *nsdoms; /* capped namespaces */
	struct dom *cur;    /* the current namespace's, or NULL */
	const char *ns;	    /* namespace being walked */
	struct tally *tallies, *tcur;
	int may_clean; /* a cap or a watermark is set */
	int lo, hi;    /* the first fan-out directories walked: [lo, hi) */
	int64_t cnt_b, cnt_n; /* the store's usage by its counters (slice) */
	uint8_t *buf;	      /* header buffer */
	size_t cap;
	const struct gc_keep *keep; /* never removed, or NULL */
	int failed;		    /* a removal failed */
};

/* The age bucket of an access time: 8 per power of two of the age in
 * microseconds, so the cut is within 12.5% of the age it aims at. */
static int bucket(int64_t now, const struct timespec *at)
{
	int64_t a =
	    (now - ((int64_t)at->tv_sec * 1000000000 + at->tv_nsec)) / 1000;
	if (a < 8)
		return a < 0 ? 0 : (int)a;
	int p = 63 - __builtin_clzll((unsigned long long)a);
	int b = p * 8 + (int)((a >> (p - 3)) & 7);
	return b < NBUCKETS ? b : NBUCKETS - 1;
}

/* An entry file's header: 0 and h (pointing into run->buf), 1 if the file
 * is gone, -1 if it has no readable header (still an entry by its size). */
static int read_header(struct gc_run *r, const char *rel, struct stat *st,
		       ldr_hdr *h)
{
	larder *db = r->db;
	/* O_NOATIME: reading a header must not make the entry recent (it
	 * needs ownership; without it, relatime may still touch once). */
	int fd = ldr_open_beneath(db->rootfd, rel,
				  O_RDONLY | O_NONBLOCK | O_NOATIME, 0);
	if (fd < 0 && errno == EPERM)
		fd =
		    ldr_open_beneath(db->rootfd, rel, O_RDONLY | O_NONBLOCK, 0);
	if (fd < 0)
		return errno == ENOENT || errno == ESTALE ? 1 : -1;
	int rc = -1;
	if (fstat(fd, st) != 0) {
		rc = errno == ESTALE ? 1 : -1;
		goto out;
	}
	if (!S_ISREG(st->st_mode))
		goto out;
	ssize_t n = ldr_pread_full(fd, r->buf, r->cap, 0);
	uint32_t need;
	if (n < LDR_HDR_FIXED || ldr_hdr_need(r->buf, (size_t)n, &need) != 0)
		goto out;
	if (need > r->cap) {
		if (need > (uint32_t)(80u << 20)) /* larger than any header */
			goto out;
		uint8_t *b = realloc(r->buf, need);
		if (!b)
			goto out;
		r->buf = b;
		r->cap = need;
		n = ldr_pread_full(fd, r->buf, need, 0);
	}
	if (n >= (ssize_t)need &&
	    ldr_hdr_decode(h, r->buf, (size_t)n, NULL) == 0)
		rc = 0;
out:
	ldr_close(fd);
	return rc;
}

/* Whether the key's head hint names another version than h's. */
static int superseded(struct gc_run *r, const ldr_hdr *h)
{
	uint8_t *ver = NULL;
	size_t vlen = 0;
	if (ldr_head_read(r->db, r->ns, h->key, h->key_len, &ver, &vlen) != 0)
		return 0;
	int other =
	    vlen != h->ver_len || (vlen && memcmp(ver, h->ver, vlen) != 0);
	free(ver);
	return other;
}

static void note_removed(struct gc_run *r, const char *rel, const ldr_hdr *h,
			 int hdr_ok, const struct stat *st, const char *why)
{
	int64_t size = (int64_t)st->st_size;
	larder *db = r->db;
	r->rep->bytes_freed += (uint64_t)size;
	if (r->flags & LARDER_GC_LOG_EACH)
		ldr_log(db, LARDER_LOG_INFO,
			"%s '%s/%s' (%s, key '%.*s', "
			"%lld bytes)",
			r->flags & LARDER_GC_DRY_RUN ? "would remove"
						     : "removed",
			db->dir, rel, why,
			hdr_ok ? (int)(h->key_len > 200 ? 200 : h->key_len) : 1,
			hdr_ok ? (const char *)h->key : "?", (long long)size);
	if (r->flags & LARDER_GC_DRY_RUN)
		return;
	/* The key's head goes with the version it names, so that h/ does
	 * not keep one file for every key ever published; a copy of the
	 * entry (a network filesystem) frees its bytes too. */
	int64_t copy = 0;
	if (hdr_ok &&
	    ldr_head_drop_entry(db, r->ns, h->key, h->key_len, h->ver,
				h->ver_len, st->st_dev, st->st_ino, &copy))
		r->rep->heads_removed++;
	r->rep->bytes_freed += (uint64_t)copy;
	r->tcur->rb += copy;
	r->tcur->b -= copy;
	r->tcur->rb += size;
	r->tcur->rn++;
	ldr_usage_add(db, r->ns, -size, -1);
	ldr_count_add(db, LARDER_CTR_EVICTIONS, 1);
	ldr_count_add(db, LARDER_CTR_BYTES_EVICTED, (uint64_t)size);
}

/* Remove the file at rel if it is still st's. 1 if gone (by us or
 * another), 0 if kept. */
static int drop(struct gc_run *r, const char *rel, const struct stat *st)
{
	if (r->flags & LARDER_GC_DRY_RUN)
		return 1;
	if (ldr_remove_same(r->db, rel, st->st_dev, st->st_ino) == 0)
		return 1;
	ldr_log(r->db, LARDER_LOG_WARN, "gc: cannot remove '%s/%s': %s",
		r->db->dir, rel, strerror(errno));
	r->failed = 1;
	return 0;
}

/* Whether rel is the entry this cleaning must leave alone. */
static int is_kept(const struct gc_run *r, const char *rel)
{
	const char *base = strrchr(rel, '/');
	return r->keep && base && strcmp(r->ns, r->keep->ns) == 0 &&
	       strcmp(base + 1, r->keep->name) == 0;
}

/* Whether domain d wants this entry gone in pass 2; takes its share. */
static int dom_takes(struct dom *d, int sup, int b, int64_t size)
{
	if (!d || (d->need_b <= 0 && d->need_n <= 0))
		return 0;
	if (sup) {
		if (d->sup_left_b <= 0 && d->sup_left_n <= 0)
			return 0;
		d->sup_left_b -= size;
		d->sup_left_n--;
		return 1;
	}
	int take = 0;
	if (d->cut_b == CUT_ALL || d->cut_n == CUT_ALL)
		take = 1;
	else if ((d->cut_b >= 0 && b > d->cut_b) ||
		 (d->cut_n >= 0 && b > d->cut_n))
		take = 1;
	else if (d->cut_b == b && d->edge_b > 0)
		take = 1;
	else if (d->cut_n == b && d->edge_n > 0)
		take = 1;
	if (take && d->cut_b == b)
		d->edge_b -= size;
	if (take && d->cut_n == b)
		d->edge_n--;
	return take;
}

static int visit(const char *rel, const uint8_t hash[16], void *payload)
{
	struct gc_run *r = payload;
	struct stat st;
	ldr_hdr h;
	(void)hash;
	int hr = read_header(r, rel, &st, &h);
	if (hr == 1)
		return 0;
	if (hr < 0 && st.st_ino == 0)
		return 0; /* could not even look at it */
	int64_t size = (int64_t)st.st_size;
	int ok = hr == 0;
	/* A publish's own entry, even expired already: removing it would
	 * make the publish (and the fill about to hand it out) a lie. */
	int kept = is_kept(r, rel);
	if (ok && !kept && h.expires && ldr_now_ns() >= h.expires) {
		if (r->pass == 2 && (r->flags & LARDER_GC_DRY_RUN))
			return 0; /* counted by pass 1 */
		if (drop(r, rel, &st)) {
			r->rep->expired++;
			note_removed(r, rel, &h, ok, &st, "expired");
		}
		return 0;
	}
	int b = bucket(r->now, &st.st_atim);
	if (r->pass == 1) {
		/* (the head hints are read only when something may need
		 * cleaning: an uncapped walk just counts) */
		int sup = ok && !kept && r->may_clean && superseded(r, &h);
		r->rep->seen_entries++;
		r->rep->seen_bytes += (uint64_t)size;
		r->tcur->b += size;
		r->tcur->n++;
		struct dom *ds[2] = {&r->store, r->cur};
		for (int i = 0; i < 2; i++) {
			struct dom *d = ds[i];
			if (!d)
				continue;
			d->used_b += size;
			d->used_n++;
			if (kept)
				continue; /* it takes room, but cannot go */
			if (sup) {
				d->sup_b += size;
				d->sup_n++;
			} else {
				d->hb[b] += size;
				d->hn[b]++;
			}
		}
		return 0;
	}
	if (kept)
		return 0;
	int need_sup =
	    (r->store.sup_left_b > 0 || r->store.sup_left_n > 0 ||
	     (r->cur && (r->cur->sup_left_b > 0 || r->cur->sup_left_n > 0)));
	int sup = ok && need_sup && superseded(r, &h);
	int a = dom_takes(&r->store, sup, b, size);
	int c = dom_takes(r->cur, sup, b, size);
	if ((a || c) && drop(r, rel, &st)) {
		r->tcur->b -= size;
		r->tcur->n--;
		if (sup)
			r->rep->superseded++;
		else
			r->rep->evicted++;
		note_removed(r, rel, &h, ok, &st,
			     sup ? "superseded" : "least recently used");
	}
	return 0;
}

/* Where to cut the histogram so that at least `need` goes: -1 for no
 * cut, CUT_ALL when everything must go. Then pass 2 takes every entry
 * whatever the age it shows by then: an entry hit meanwhile, or whose
 * access time pass 1's own read moved (a file this user does not own
 * cannot be read with O_NOATIME, and relatime moves the access time of
 * one never read since it was written), would otherwise stay however far
 * over the cap the store is. */
static int cut(const int64_t *hist, int64_t need, int64_t *edge)
{
	if (need <= 0)
		return -1;
	int64_t total = 0;
	for (int i = 0; i < NBUCKETS; i++)
		total += hist[i];
	if (need >= total)
		return CUT_ALL;
	int64_t acc = 0;
	for (int i = NBUCKETS - 1; i >= 0; i--) {
		if (acc + hist[i] >= need) {
			*edge = need - acc;
			return i;
		}
		acc += hist[i];
	}
	return CUT_ALL; /* (not reached: need < total) */
}

static int64_t over(int64_t used, int64_t max)
{
	return max > 0 && used > max ? used - max * LOW_MARK_PCT / 100 : 0;
}

static void decide(struct dom *d, int64_t wm_b, int64_t wm_n)
{
	d->need_b = over(d->used_b, d->max_bytes);
	d->need_n = over(d->used_n, d->max_entries);
	if (wm_b > d->need_b)
		d->need_b = wm_b;
	if (wm_n > d->need_n)
		d->need_n = wm_n;
	d->sup_left_b = d->need_b > 0 ? d->need_b : 0;
	d->sup_left_n = d->need_n > 0 ? d->need_n : 0;
	/* Superseded first: when they cover a need, no cut for it. A need
	 * for entries only takes the superseded while they last, and the
	 * same for bytes. */
	if (d->sup_left_b > 0 || d->sup_left_n > 0) {
		if (d->sup_left_b <= 0)
			d->sup_left_b = d->sup_b;
		if (d->sup_left_n <= 0)
			d->sup_left_n = d->sup_n;
	}
	d->cut_b = cut(d->hb, d->need_b - d->sup_b, &d->edge_b);
	d->cut_n = cut(d->hn, d->need_n - d->sup_n, &d->edge_n);
}

/* Pass 1 over h/: a copied head's bytes, counted as the entries'. */
static int count_copy(const char *rel, const uint8_t hash[16], void *payload)
{
	struct gc_run *r = payload;
	(void)hash;
	int64_t bytes = ldr_head_copy_bytes(r->db, rel);
	if (!bytes)
		return 0;
	r->tcur->b += bytes;
	r->store.used_b += bytes;
	if (r->cur)
		r->cur->used_b += bytes;
	return 0;
}

static int walk_one(struct gc_run *r, const char *ns)
{
	r->ns = ns;
	r->cur = NULL;
	for (struct dom *d = r->nsdoms; d; d = d->next)
		if (strcmp(d->ns, ns) == 0)
			r->cur = d;
	r->tcur = NULL;
	for (struct tally *t = r->tallies; t; t = t->next)
		if (strcmp(t->ns, ns) == 0)
			r->tcur = t;
	if (!r->tcur) {
		if (!(r->tcur = calloc(1, sizeof *r->tcur)))
			return ldr_fail(r->db, LARDER_ENOMEM, ENOMEM,
					"out of memory");
		snprintf(r->tcur->ns, sizeof r->tcur->ns, "%s", ns);
		r->tcur->next = r->tallies;
		r->tallies = r->tcur;
		ldr_stats_flush(r->db);
		ldr_usage_read(r->db, ns, &r->tcur->u0b, &r->tcur->u0n);
	}
	if (r->pass == 2 && r->store.need_b <= 0 && r->store.need_n <= 0 &&
	    (!r->cur || (r->cur->need_b <= 0 && r->cur->need_n <= 0)))
		return 0; /* nothing to take here */
	int rc = ldr_walk_slice(r->db, ns, r->lo, r->hi, visit, r);
	/* On a network filesystem a small entry's head is a copy of it
	 * (head.c): a file in the store, whose bytes count in the usage and
	 * against the caps, though not as an entry. Elsewhere heads are
	 * links (the entry's bytes, counted once) or hints, and h/ is not
	 * walked. */
	if (rc == 0 && r->pass == 1 && r->db->network)
		rc = ldr_walk_heads(r->db, ns, r->lo, r->hi, count_copy, r);
	return rc;
}

static int add_dom_cb(const char *ns, void *payload)
{
	struct gc_run *r = payload;
	struct ldr_gc *g = gc_of(r->db);
	pthread_mutex_lock(&g->mu);
	struct ns_limits *s = load_ns(r->db, ns, 1);
	int64_t mb = s->max_bytes, me = s->max_entries;
	pthread_mutex_unlock(&g->mu);
	if (!mb && !me)
		return 0;
	struct dom *d = calloc(1, sizeof *d);
	if (!d)
		return ldr_fail(r->db, LARDER_ENOMEM, ENOMEM, "out of memory");
	snprintf(d->ns, sizeof d->ns, "%s", ns);
	d->max_bytes = mb;
	d->max_entries = me;
	d->next = r->nsdoms;
	r->nsdoms = d;
	return 0;
}

static int walk_cb(const char *ns, void *payload)
{
	return walk_one(payload, ns);
}

/* Every namespace, the internal one too: it takes part like any. */
static int walk_all(struct gc_run *r, const char *only)
{
	if (only)
		return walk_one(r, only);
	int rc = ldr_ns_foreach(r->db, walk_cb, r);
	char rel[LDR_REL_MAX];
	struct stat st;
	snprintf(rel, sizeof rel, "ns/%s", LDR_FILES_NS);
	if (rc == 0 && ldr_lstat(r->db, rel, &st) == 0)
		rc = walk_one(r, LDR_FILES_NS);
	return rc;
}

/* x * num / den without overflow (num <= den <= 256), rounded up, so
 * that a slice of a cap is never 0 (no cap). */
static int64_t share(int64_t x, int num, int den)
{
	if (!x)
		return 0;
	int64_t s = x / den * num + ((x % den) * num + den - 1) / den;
	return s > 0 ? s : 1;
}

/* A publish's cleaning of a store of many entries walks one slice of it:
 * the entries whose first fan-out directory is in [lo, hi), about
 * SLICE_ENTRIES of them, chosen at random. The hashes being uniform, a
 * slice is a fair sample of the store: cleaning it down to its share of
 * the cap (by the same LRU) frees its share of what is over. Each publish
 * still over the cap cleans another slice, so the store comes back under
 * its cap over a few publishes instead of one publish walking it all
 * (minutes on a million entries). `larder gc` always walks everything.
 * Only for the store's own cap: with a capped namespace or watermarks the
 * whole store is walked as before. */
static void pick_slice(struct gc_run *r)
{
	int64_t b, n;
	if (ldr_usage_read(r->db, NULL, &b, &n) != 0)
		return;
	int k = 1;
	while (k < 256 && n / k >= 2 * SLICE_ENTRIES)
		k *= 2;
	if (k == 1)
		return;
	/* From a random slice, then the next ones in turn: a process that
	 * publishes a lot goes round the store. */
	struct ldr_gc *g = gc_of(r->db);
	if (!g->slice_next) {
		uint32_t x;
		ldr_random(&x, sizeof x);
		g->slice_next = x % 256 + 1;
	}
	int i = (int)((g->slice_next - 1) % (unsigned)k);
	g->slice_next = (unsigned)i + 2;
	r->cnt_b = b;
	r->cnt_n = n;
	r->lo = i * (256 / k);
	r->hi = r->lo + 256 / k;
	r->store.max_bytes = share(r->store.max_bytes, r->hi - r->lo, 256);
	r->store.max_entries = share(r->store.max_entries, r->hi - r->lo, 256);
	ldr_log(r->db, LARDER_LOG_DEBUG,
		"cleaning '%s' after a publish: slice %d of %d (%lld entries "
		"counted)",
		r->db->dir, i, k, (long long)n);
}

/* Whether a slice is far under its share of a cap that the counters say
 * is passed. A slice is within a few percent of its share, and a cleaned
 * one at 90%: far under means the counters have drifted. */
static int slice_far_under(const struct gc_run *r, const larder_limits *l)
{
	const struct dom *d = &r->store;
	return (l->max_bytes && r->cnt_b > l->max_bytes &&
		10 * d->used_b < 8 * d->max_bytes) ||
	       (l->max_entries && r->cnt_n > l->max_entries &&
		10 * d->used_n < 8 * d->max_entries);
}

/* One cleaning under the lock: 0, a larder error, or 1 (GC_SLICE only)
 * when the whole store needs walking. *failed is set when an entry it
 * meant to remove could not be; *sliced says whether it walked one slice
 * of the store rather than all of it. */
static int clean(larder *db, const char *only, unsigned flags,
		 const struct gc_keep *keep, larder_gc_report *rep, int *failed,
		 int *sliced)
{
	struct gc_run *r = calloc(1, sizeof *r);
	if (!r)
		return ldr_fail(db, LARDER_ENOMEM, ENOMEM, "out of memory");
	int rc = 0;
	r->db = db;
	r->flags = flags;
	r->rep = rep;
	r->keep = keep;
	r->now = ldr_now_ns();
	r->cap = 4096;
	r->buf = malloc(r->cap);
	larder_limits sl;
	ldr_store_limits(db, 1, &sl);
	r->store.max_bytes = sl.max_bytes;
	r->store.max_entries = sl.max_entries;
	if (!r->buf) {
		rc = ldr_fail(db, LARDER_ENOMEM, ENOMEM, "out of memory");
		goto out;
	}
	if (only)
		rc = add_dom_cb(only, r);
	else
		rc = ldr_ns_foreach(db, add_dom_cb, r);
	if (rc)
		goto out;
	r->may_clean =
	    sl.max_bytes || sl.max_entries || sl.wm_run || r->nsdoms != NULL;
	r->lo = 0;
	r->hi = 256;
	if ((flags & GC_SLICE) && !only && !r->nsdoms && !sl.wm_run)
		pick_slice(r);
	*sliced = r->hi - r->lo < 256;
	r->pass = 1;
	if ((rc = walk_all(r, only)))
		goto out;
	/* Watermarks: free until `run` is free again. */
	int64_t wm_b = 0, wm_n = 0;
	struct ldr_space sp;
	double pct;
	int files;
	if (ldr_space_get(db, &sp) == 0 &&
	    ldr_space_below(&sp, &sl, &pct, &files)) {
		uint64_t want = sp.total / 100 * (uint64_t)sl.wm_run;
		if (want > sp.avail &&
		    100 * sp.avail < sp.total * (uint64_t)sl.wm_cull)
			wm_b = (int64_t)(want - sp.avail);
		want = sp.files / 100 * (uint64_t)sl.wm_run;
		if (sp.files && want > sp.favail &&
		    100 * sp.favail < sp.files * (uint64_t)sl.wm_cull)
			wm_n = (int64_t)(want - sp.favail);
	}
	decide(&r->store, wm_b, wm_n);
	int any = r->store.need_b > 0 || r->store.need_n > 0;
	for (struct dom *d = r->nsdoms; d; d = d->next) {
		decide(d, 0, 0);
		any |= d->need_b > 0 || d->need_n > 0;
	}
	if (any) {
		r->pass = 2;
		rc = walk_all(r, only);
	} else if (r->hi - r->lo < 256 && slice_far_under(r, &sl)) {
		/* The counters have drifted (e.g. removals they missed):
		 * walk the whole store, which recounts them. */
		ldr_log(
		    db, LARDER_LOG_INFO,
		    "cleaning '%s': a slice of the store is under its share "
		    "of the cap that the usage counters say is passed; "
		    "walking the whole store to recount",
		    db->dir);
		rc = 1;
	}
	/* The recount: what the walk found, less what it removed; only
	 * where nobody else changed the usage meanwhile (a publish into a
	 * directory already walked would be lost from the sums; the deltas
	 * are exact, the recount only mends drift, and a quiet walk comes). */
	ldr_stats_flush(db);
	for (struct tally *t = r->tallies; rc == 0 && t; t = t->next) {
		int64_t b, n;
		if ((flags & LARDER_GC_DRY_RUN) || r->hi - r->lo < 256 ||
		    ldr_usage_read(db, t->ns, &b, &n) != 0)
			continue;
		/* (usage reads never go below 0) */
		int64_t eb = t->u0b - t->rb, en = t->u0n - t->rn;
		if (b == (eb > 0 ? eb : 0) && n == (en > 0 ? en : 0))
			ldr_usage_set(db, t->ns, t->b, t->n);
	}
out:
	*failed |= r->failed;
	while (r->tallies) {
		struct tally *t = r->tallies;
		r->tallies = t->next;
		free(t);
	}
	while (r->nsdoms) {
		struct dom *d = r->nsdoms;
		r->nsdoms = d->next;
		free(d);
	}
	free(r->buf);
	free(r);
	return rc;
}

/* A gc.lock made by an older larder has the mode its maker's umask left
 * (0644), and every other member of a group-shared store is then denied
 * it. Its owner, or root, gives it the store's mode on opening it: such a
 * store mends itself at the next `larder gc` they run. */
static void lock_mode_mend(larder *db, int fd)
{
	struct stat st;
	if (fstat(fd, &st) != 0) {
		ldr_log(db, LARDER_LOG_DEBUG, "cannot stat '%s/%s': %s",
			db->dir, LDR_GC_LOCK, strerror(errno));
		return;
	}
	mode_t had = st.st_mode & 07777;
	if (had == db->fmode)
		return;
	if (fchmod(fd, db->fmode) == 0)
		ldr_log(db, LARDER_LOG_INFO,
			"gave '%s/%s' the store's mode %04o (it had %04o)",
			db->dir, LDR_GC_LOCK, (unsigned)db->fmode,
			(unsigned)had);
	else if (errno != EPERM) /* EPERM: not ours, nothing to do */
		ldr_log(db, LARDER_LOG_DEBUG, "cannot chmod '%s/%s': %s",
			db->dir, LDR_GC_LOCK, strerror(errno));
}

/* DIR/gc.lock open for writing (an OFD write lock needs it), made with
 * the store's full mode when missing: every member must be able to open
 * it, whatever the umask of the one who made it. The fd, or -1 with
 * errno. */
static int open_lock(larder *db)
{
	for (int attempt = 0; attempt < 3; attempt++) {
		int fd = ldr_open_beneath(db->rootfd, LDR_GC_LOCK, O_RDWR, 0);
		if (fd >= 0) {
			lock_mode_mend(db, fd);
			return fd;
		}
		if (errno != ENOENT)
			return -1;
		fd = ldr_open_beneath(db->rootfd, LDR_GC_LOCK,
				      O_RDWR | O_CREAT | O_EXCL, db->fmode);
		if (fd >= 0) {
			if (fchmod(fd, db->fmode) == 0)
				return fd;
			/* Not left behind with the umask's mode, to lock
			 * the others out. */
			int e = errno;
			unlinkat(db->rootfd, LDR_GC_LOCK, 0);
			ldr_close(fd);
			errno = e;
			return -1;
		}
		if (errno != EEXIST)
			return -1; /* (EEXIST: made meanwhile; open it) */
	}
	return -1;
}

/* Once per handle: this user cleans without the lock. */
static void note_unlocked(larder *db, int e)
{
	struct ldr_gc *g = gc_of(db);
	pthread_mutex_lock(&g->mu);
	int said = g->unlocked_said;
	g->unlocked_said = 1;
	pthread_mutex_unlock(&g->mu);
	if (!said)
		ldr_log(db, LARDER_LOG_INFO,
			"cannot open '%s/%s' for writing: %s; cleaning "
			"without the lock, which only saves work (the "
			"file's owner or root gives it the store's mode by "
			"running 'larder gc')",
			db->dir, LDR_GC_LOCK, strerror(e));
}

/* The non-blocking lock of DIR/gc.lock: an OFD lock, so that two threads
 * of one process exclude each other too, and it goes with the fd.
 * Returns 0 with *fd the lock's fd (-1 when this user, who may write the
 * store, may not open the file for writing: then the caller cleans
 * without the lock, as two cleaners at once remove nothing they should
 * not); 1 when another cleaner holds it; or a larder error (recorded). */
static int try_lock(larder *db, int *fd)
{
	*fd = open_lock(db);
	if (*fd < 0) {
		int e = errno;
		/* Only a user who may write the store: one who may not could
		 * remove nothing, and is told so by the lock as before. */
		if ((e == EACCES || e == EPERM) &&
		    faccessat(db->rootfd, ".", W_OK, AT_EACCESS) == 0) {
			note_unlocked(db, e);
			return 0;
		}
		return ldr_fail_errno(db, e, "cannot open '%s/%s': %s", db->dir,
				      LDR_GC_LOCK, strerror(e));
	}
	struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
	if (fcntl(*fd, F_OFD_SETLK, &fl) == 0)
		return 0;
	int e = errno;
	ldr_close(*fd);
	*fd = -1;
	if (e == EAGAIN || e == EACCES)
		return 1;
	return ldr_fail_errno(db, e, "cannot lock '%s/%s': %s", db->dir,
			      LDR_GC_LOCK, strerror(e));
}

/* Whether ns's usage (or the store's, ns NULL) is past a cap. */
static int over_cap(larder *db, const char *ns)
{
	int64_t b, n, mb, me;
	struct ldr_gc *g = gc_of(db);
	larder_limits sl;
	ldr_store_limits(db, 0, &sl);
	pthread_mutex_lock(&g->mu);
	if (ns) {
		struct ns_limits *s = load_ns(db, ns, 0);
		mb = s->max_bytes;
		me = s->max_entries;
	} else {
		mb = sl.max_bytes;
		me = sl.max_entries;
	}
	pthread_mutex_unlock(&g->mu);
	if (!mb && !me)
		return 0;
	if (ldr_usage_read(db, ns, &b, &n) != 0)
		return 0;
	return (mb && b > mb) || (me && n > me);
}

/* The usage of the store and of ns, as one figure that any publish or
 * removal changes (for gc_loop to tell whether a pass changed anything).
 * Summed unsigned: usage saturates at INT64_MAX (crafted counter files),
 * and only equality of two marks matters, so wrapping is harmless. */
static uint64_t usage_mark(larder *db, const char *ns)
{
	int64_t b = 0, n = 0, nb = 0, nn = 0;
	if (ldr_usage_read(db, NULL, &b, &n) != 0)
		b = n = 0;
	if (ns && ldr_usage_read(db, ns, &nb, &nn) != 0)
		nb = nn = 0;
	return (uint64_t)b + (uint64_t)n + (uint64_t)nb + (uint64_t)nn;
}

/* The debris of crashed processes, under the cleaner's lock. A failed
 * sweep (e.g. a store this process may not write) does not stop the
 * cleaning: it is logged, and the entries are still looked at. */
static void sweep(larder *db, const char *ns, unsigned flags,
		  larder_gc_report *rep)
{
	larder_sweep_report sr;
	if (ldr_sweep(db, ns, (flags & LARDER_GC_DRY_RUN) != 0, &sr) != 0)
		ldr_log(db, LARDER_LOG_WARN, "sweeping '%s': %s", db->dir,
			larder_errmsg(db));
	rep->swept = sr.temps_removed + sr.leases_removed + sr.breaks_removed +
		     sr.quarantine_removed;
	rep->swept_bytes = sr.bytes_removed;
}

/* Clean; then, the lock released, look again and clean again while still
 * over a cap: a publish that found the lock taken during our walk does not
 * clean itself, so unless we look again nobody cleans after it (the last
 * publishes of a busy moment would leave the store over its cap for
 * good). We stop when a pass removed nothing and nobody published
 * meanwhile (nothing more can go: say, a cap smaller than the entry just
 * published, which stays; a pass that removed nothing as its walk missed
 * a publish made meanwhile does not stop us), and after
 * MAX_PASSES, so that one call does not clean for others without end.
 * A publish's cleaning of one slice of a large store does not look again:
 * the next publish still over takes the next slice. A cleaning that cannot
 * lock (but for "busy"), walk or remove what it meant to is counted
 * (LARDER_CTR_GC_FAILURES): it is how an operator learns that caps stop
 * holding. */
static int gc_loop(larder *db, const char *ns, unsigned flags,
		   const struct gc_keep *keep, larder_gc_report *rep)
{
	memset(rep, 0, sizeof *rep);
	for (int pass = 0; pass < MAX_PASSES; pass++) {
		int fd, rc = try_lock(db, &fd);
		if (rc == 1) {
			if (pass == 0)
				rep->skipped = 1;
			return 0;
		}
		if (rc < 0) {
			ldr_count_add(db, LARDER_CTR_GC_FAILURES, 1);
			return rc;
		}
		ldr_count_add(db, LARDER_CTR_GC_RUNS, 1);
		rep->passes++;
		if (pass == 0 && (flags & GC_SWEEP))
			sweep(db, ns, flags, rep);
		uint64_t removed0 =
		    rep->expired + rep->superseded + rep->evicted;
		uint64_t mark0 = usage_mark(db, keep ? keep->ns : ns);
		int failed = 0, sliced = 0;
		rc = clean(db, ns, flags, keep, rep, &failed, &sliced);
		if (rc == 1)
			rc = clean(db, ns, flags & ~GC_SLICE, keep, rep,
				   &failed, &sliced);
		if (fd >= 0)
			ldr_close(fd); /* drops the lock */
		if (rc || failed)
			ldr_count_add(db, LARDER_CTR_GC_FAILURES, 1);
		if (rc || (flags & LARDER_GC_DRY_RUN) || sliced)
			return rc; /* a slice: the next publish takes another */
		/* (a cleaning of one namespace cannot mend the store's cap:
		 * it looks again at that namespace's only; a publish's, at
		 * the store's and its namespace's) */
		ldr_stats_flush(db);
		if ((!over_cap(db, ns) && !(keep && over_cap(db, keep->ns))) ||
		    (rep->expired + rep->superseded + rep->evicted ==
			 removed0 &&
		     usage_mark(db, keep ? keep->ns : ns) == mark0))
			return 0;
	}
	return 0;
}

int larder_gc(larder_gc_report *out, larder *db, const char *ns, unsigned flags)
{
	larder_gc_report rep = LARDER_GC_REPORT_INIT;
	if (out && ldr_check_version(db, "larder_gc_report", out->version,
				     LARDER_GC_REPORT_VERSION,
				     LARDER_GC_REPORT_VERSION))
		return LARDER_EINVAL;
	int rc = ns ? ldr_check_ns_internal(db, ns) : 0;
	if (rc == 0)
		rc = gc_loop(db, ns, flags | GC_SWEEP, NULL, &rep);
	if (out) {
		*out = rep;
		out->version = LARDER_GC_REPORT_VERSION;
	}
	return rc;
}

void ldr_after_publish(larder *db, const char *ns, const char *name)
{
	struct ldr_gc *g = gc_of(db);
	larder_limits sl;
	ldr_store_limits(db, 0, &sl);
	pthread_mutex_lock(&g->mu);
	struct ns_limits *s = load_ns(db, ns, 0);
	int capped =
	    sl.max_bytes || sl.max_entries || s->max_bytes || s->max_entries;
	pthread_mutex_unlock(&g->mu);
	int fresh;
	int want = ldr_space_state(db, &fresh) >= 1;
	if (want) {
		/* under cull: at most one cleaning a second per handle, for
		 * when cleaning cannot bring the space back */
		int64_t now = ldr_coarse_ms();
		pthread_mutex_lock(&g->mu);
		want = now - g->cull_cleaned_ms >= 1000 || !g->cull_cleaned_ms;
		if (want)
			g->cull_cleaned_ms = now;
		pthread_mutex_unlock(&g->mu);
	}
	if (capped) {
		/* Others' publishes count only once flushed: each publisher
		 * of a capped store flushes, so the sums are current. */
		ldr_stats_flush(db);
		want = want || over_cap(db, NULL) || over_cap(db, ns);
	}
	if (!want)
		return;
	larder_gc_report rep = LARDER_GC_REPORT_INIT;
	/* The entry just published never goes in its own cleaning: below
	 * the cull watermark with the space taken by other files, the
	 * cleaning would otherwise remove everything, this entry too, after
	 * the publish said it stored it (and a fill would then hand out
	 * nothing). */
	struct gc_keep keep = {ns, name};
	/* The store's cap is cleaned across every namespace; a namespace's
	 * only in it. One walk of the store covers both. */
	if (gc_loop(db, NULL, GC_SLICE, &keep, &rep) != 0)
		ldr_log(db, LARDER_LOG_WARN, "cleaning after a publish: %s",
			larder_errmsg(db));
	else if (!rep.skipped)
		ldr_log(db, LARDER_LOG_INFO,
			"cleaned after a publish: %llu expired, %llu "
			"superseded, %llu evicted, %llu bytes freed",
			(unsigned long long)rep.expired,
			(unsigned long long)rep.superseded,
			(unsigned long long)rep.evicted,
			(unsigned long long)rep.bytes_freed);
	ldr_space_stale(db); /* the figures are old after a cleaning */
}

void ldr_gc_space_low(larder *db)
{
	larder_gc_report rep;
	gc_loop(db, NULL, 0, NULL, &rep);
}
