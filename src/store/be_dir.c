/*
 * be_dir.c — the directory backend (docs/backends.md, "The directory
 * backend"): today's store behind the seam's table. It moves nothing but
 * the calls: reads are file.c's, the stage is publish.c's writer, heads
 * are head.c's, leases lease.c's, walks walk.c's. What it owns is the
 * waiter a filler's herd sleeps in — inotify on the entry's and the
 * lease's directories, or jittered backoff polling on a network
 * filesystem — moved here from fill.c.
 *
 * The directory larder_open opened is served through that handle itself
 * (its root fd, caches and counters); another directory gets a store
 * handle of its own. The directory's fencing token is always 0: its
 * lease files carry none, and a lost lease is seen by the inode check
 * before publishing (docs/leases.md).
 */
#include "backend.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "fsutil.h"
#include "head.h"
#include "open.h"
#include "publish.h"
#include "quarantine.h"
#include "recency.h"
#include "stats.h"
#include "walk.h"

struct be_dir {
	struct ldr_backend base;
	/* The store worked on: base.db itself, or a handle of our own on
	 * another directory (whose errors are relayed to base.db). */
	larder *st;
};

static larder *store_of(struct ldr_backend *be)
{
	return ((struct be_dir *)be)->st;
}

larder *ldr_be_dir_store(struct ldr_backend *be)
{
	return store_of(be);
}

/* A failure recorded on a store handle of our own is the caller's too. */
static int relay(struct ldr_backend *be, int rc)
{
	larder *st = store_of(be);
	if (rc < 0 && st != be->db)
		ldr_fail(be->db, rc, larder_errno(st), "%s", larder_errmsg(st));
	return rc;
}

static void entry_rel(char *rel, const struct ldr_name *n)
{
	char hex[33];
	ldr_hex(n->hash, 16, hex);
	ldr_file_rel(rel, n->ns, 'e', hex);
}

/* The lease of (ns, key) lives beside its head hint (docs/leases.md). */
static void lease_place(char *dirrel, char *name, size_t namelen,
			const struct ldr_name *n)
{
	char hex[33];
	ldr_hex(n->khash, 16, hex);
	ldr_dir_rel(dirrel, n->ns, 'h', hex);
	snprintf(name, namelen, "%s.lease", hex);
}

/* ---------------------------------------------------------------------- */
/* Open, close                                                             */

static int dir_open(struct ldr_backend **out, larder *db, const char *where)
{
	*out = NULL;
	struct be_dir *d = calloc(1, sizeof *d);
	if (!d)
		return ldr_fail(db, LARDER_ENOMEM, ENOMEM, "out of memory");
	d->base.ops = &ldr_be_dir_ops;
	d->base.db = db;
	d->st = db;
	if (where && *where && strcmp(where, db->dir) != 0) {
		/* Another directory: a store handle of its own, logging
		 * where the caller's does. Upkeep there is its own. */
		larder_opts o = LARDER_OPTS_INIT;
		o.log = db->log;
		o.log_payload = db->log_payload;
		o.log_level = db->log_level;
		int rc = ldr_store_open(&d->st, where, &o);
		if (rc) {
			free(d);
			return ldr_fail(db, rc, larder_errno(NULL), "%s",
					larder_errmsg(NULL));
		}
	}
	*out = &d->base;
	return 0;
}

static void dir_close(struct ldr_backend *be)
{
	struct be_dir *d = (struct be_dir *)be;
	if (d->st != be->db)
		ldr_store_close(d->st);
	free(d);
}

/* ---------------------------------------------------------------------- */
/* Entries                                                                 */

static int dir_read(struct ldr_backend *be, const struct ldr_name *n, int how,
		    size_t pre, struct ldr_file *f)
{
	larder *st = store_of(be);
	char rel[LDR_REL_MAX];
	entry_rel(rel, n);
	memset(f, 0, sizeof *f);
	f->fd = -1;
	int rc = ldr_entry_load(st, rel, f, how, pre);
	if (rc == LARDER_ENOTFOUND)
		return ldr_fail(be->db, rc, 0,
				"entry not found in namespace '%s'", n->ns);
	return relay(be, rc);
}

static void dir_reject(struct ldr_backend *be, const struct ldr_name *n,
		       const struct ldr_file *f, const char *why)
{
	larder *st = store_of(be);
	char rel[LDR_REL_MAX];
	entry_rel(rel, n);
	struct ldr_file id = *f; /* its identity taken, nothing else */
	ldr_file_ident(&id);
	ldr_count(st, LARDER_CTR_CHECKSUM_FAIL);
	/* The key's head, if it links this very file or is a copy of it,
	 * goes with it. */
	if (id.have_ident && ldr_quarantine(st, rel, id.dev, id.ino, why))
		ldr_head_drop_entry(st, n->ns, n->key, n->klen, n->ver, n->vlen,
				    id.dev, id.ino, NULL);
}

struct dir_stage {
	struct ldr_stage base;
	larder_writer *w;
};

static int dir_stage_begin(struct ldr_backend *be, const struct ldr_name *n,
			   const larder_put_opts *po, struct ldr_stage **out)
{
	*out = NULL;
	struct dir_stage *s = calloc(1, sizeof *s);
	if (!s)
		return ldr_fail(be->db, LARDER_ENOMEM, ENOMEM, "out of memory");
	int rc = ldr_writer_begin_stage(&s->w, store_of(be), n->ns, n->key,
					n->klen, n->ver, n->vlen, po);
	if (rc) {
		free(s);
		return relay(be, rc);
	}
	s->base.be = be;
	*out = &s->base;
	return 0;
}

static int dir_stage_write(struct ldr_stage *s, const struct iovec *iov,
			   int iovcnt)
{
	struct dir_stage *d = (struct dir_stage *)s;
	return relay(s->be, ldr_writer_stage_write(d->w, iov, iovcnt));
}

static int dir_stage_commit(struct ldr_stage *s, const void *hdr, size_t hlen,
			    unsigned flags, uint64_t token)
{
	(void)token; /* a directory head keeps none (docs/backends.md) */
	struct dir_stage *d = (struct dir_stage *)s;
	struct ldr_backend *be = s->be;
	int rc = ldr_writer_stage_commit(d->w, hdr, hlen,
					 (flags & LDR_BE_NO_HEAD) != 0);
	free(d);
	return rc == LARDER_EXISTS ? rc : relay(be, rc);
}

static void dir_stage_abort(struct ldr_stage *s)
{
	if (!s)
		return;
	larder_writer_abort(((struct dir_stage *)s)->w);
	free(s);
}

/* Unlink the entry file at rel, whatever it is: in its directory opened
 * beneath the root, since unlinkat by a path from the root would follow
 * a symlinked ns/<ns> or fan-out directory and remove a file outside the
 * store. 1 removed, 0 not there, or an error, recorded. */
static int unlink_entry(larder *st, const char *rel, dev_t *dev, ino_t *ino)
{
	struct stat sb;
	const char *base;
	int rc = 0;
	int dfd = ldr_open_parent_as(st, rel, &base, 0);
	if (dfd < 0) {
		if (errno == ELOOP)
			return ldr_refuse_symlink(st, rel);
		if (errno == ENOENT)
			return 0;
		return ldr_fail_errno(st, errno,
				      "cannot open the directory of '%s/%s': "
				      "%s",
				      st->dir, rel, strerror(errno));
	}
	int seen = fstatat(dfd, base, &sb, AT_SYMLINK_NOFOLLOW) == 0;
	int64_t bytes = seen ? (int64_t)sb.st_size : 0;
	if (unlinkat(dfd, base, 0) == 0) {
		rc = 1;
		if (seen) { /* its head may be a link to it or a copy */
			*dev = sb.st_dev;
			*ino = sb.st_ino;
		}
		ldr_entry_gone(st, rel, bytes);
	} else if (errno != ENOENT) {
		rc = ldr_fail_errno(st, errno, "cannot remove '%s/%s': %s",
				    st->dir, rel, strerror(errno));
	}
	ldr_close(dfd);
	return rc;
}

static int dir_remove(struct ldr_backend *be, const struct ldr_name *n,
		      const struct ldr_file *same)
{
	larder *st = store_of(be);
	uint8_t *headver = NULL;
	size_t headlen = 0;
	const void *ver = n->ver;
	size_t vlen = n->vlen;
	int hrc = ldr_head_read(st, n->ns, n->key, n->klen, &headver, &headlen);
	if (!ver) {
		if (hrc) {
			free(headver);
			return hrc == LARDER_ENOTFOUND
				   ? ldr_fail(be->db, LARDER_ENOTFOUND, 0,
					      "no head version for that key in "
					      "namespace '%s'",
					      n->ns)
				   : relay(be, hrc);
		}
		ver = headver;
		vlen = headlen;
	}
	struct ldr_name e = *n;
	e.ver = ver;
	e.vlen = vlen;
	ldr_entry_hash(n->ns, n->key, n->klen, ver, vlen, e.hash);
	char rel[LDR_REL_MAX];
	entry_rel(rel, &e);
	int rc;
	dev_t edev = 0;
	ino_t eino = 0; /* the removed file, when known */
	if (same) {
		struct ldr_file id = *same;
		ldr_file_ident(&id);
		if (!id.have_ident) {
			free(headver);
			return ldr_fail(be->db, LARDER_EINVAL, 0,
					"cannot remove '%s/%s' if unchanged: "
					"the file it was read from is unknown",
					st->dir, rel);
		}
		rc = ldr_remove_same_by_us(st, rel, id.dev, id.ino);
		if (rc < 0)
			rc = ldr_fail_errno(st, errno,
					    "cannot remove '%s/%s': %s",
					    st->dir, rel, strerror(errno));
		else if (rc == 1) {
			edev = id.dev;
			eino = id.ino;
			ldr_entry_gone(st, rel, (int64_t)same->size);
		}
	} else {
		rc = unlink_entry(st, rel, &edev, &eino);
	}
	/* The head goes too when it names the removed version (a link to
	 * it, a copy of it, or a hint), so that a version-less get does not
	 * chase a missing entry (with `same`, only when that very entry
	 * went: a new one may stand there). */
	if (rc >= 0 && hrc == 0 && (!same || rc == 1) &&
	    ldr_head_drop_entry(st, n->ns, n->key, n->klen, ver, vlen, edev,
				eino, NULL))
		rc = 1;
	free(headver);
	return relay(be, rc);
}

/* ---------------------------------------------------------------------- */
/* Heads                                                                   */

static int dir_head_get(struct ldr_backend *be, const struct ldr_name *n,
			uint8_t **ver, size_t *vlen)
{
	int rc = ldr_head_get(store_of(be), n->ns, n->key, n->klen, ver, vlen);
	return rc == LARDER_ENOTFOUND ? rc : relay(be, rc);
}

static int dir_head_set(struct ldr_backend *be, const struct ldr_name *n,
			uint64_t token)
{
	/* A directory head keeps no token: a filler that lost its lease
	 * does not call this at all (docs/backends.md). */
	(void)token;
	return relay(be, ldr_head_write(store_of(be), n->ns, n->key, n->klen,
					n->ver, n->vlen));
}

static int dir_head_drop(struct ldr_backend *be, const struct ldr_name *n)
{
	return ldr_head_drop(store_of(be), n->ns, n->key, n->klen, n->ver,
			     n->vlen);
}

/* ---------------------------------------------------------------------- */
/* Leases                                                                  */

struct dir_lease {
	struct ldr_be_lease base;
	ldr_lease *l;
};

/* What a look at the lease saw, as the table says it. */
static void holder_set(struct ldr_be_holder *h, const struct ldr_lease_rec *rec,
		       const struct ldr_self *me)
{
	memset(h, 0, sizeof *h);
	h->rec = *rec;
	h->ttl_ms = -1; /* judged by the waiter's clock */
	h->dead = me && !rec->garbage && ldr_lease_dead_here(rec, me);
}

/* Open the directory of n's lease (made if missing) into *fd, its file
 * name in name: 0, or a code recorded on the caller's handle. */
static int open_lease_dir(struct ldr_backend *be, const struct ldr_name *n,
			  char *name, size_t namelen, int *fd)
{
	larder *st = store_of(be);
	char dirrel[LDR_REL_MAX];
	lease_place(dirrel, name, namelen, n);
	*fd = ldr_open_dir(st, dirrel);
	if (*fd < 0)
		return ldr_fail_errno(be->db, errno,
				      "cannot open the lease directory "
				      "'%s/%s': %s",
				      st->dir, dirrel, strerror(errno));
	return 0;
}

static int dir_lease_acquire(struct ldr_backend *be, const struct ldr_name *n,
			     const struct ldr_self *me, uint64_t lease_ms,
			     uint64_t renew_ms, struct ldr_be_lease **out,
			     uint64_t *token, struct ldr_be_holder *h)
{
	larder *st = store_of(be);
	*out = NULL;
	*token = 0;
	char name[48], dirrel[LDR_REL_MAX];
	lease_place(dirrel, name, sizeof name, n);
	/* No lease directory (a read-only store?): the filler loads
	 * without a lease, as it always did, saying nothing. */
	int dfd = ldr_open_dir(st, dirrel);
	if (dfd < 0)
		return LDR_BE_LEASE_NONE;
	struct ldr_lease_rec rec;
	memset(&rec, 0, sizeof rec);
	int rc = 1;
	/* Only try to take it when there is none: a waiter's look is a
	 * read, not a create and unlink. */
	if (ldr_lease_read(dfd, name, &rec) >= 0 || errno != ENOENT) {
		holder_set(h, &rec, me);
		/* A look that failed (not "no lease") sees nobody. */
		h->blind = rec.ino == 0;
		goto out;
	}
	struct dir_lease *dl = calloc(1, sizeof *dl);
	if (!dl) {
		rc = ldr_fail(be->db, LARDER_ENOMEM, ENOMEM, "out of memory");
		goto out;
	}
	memset(&rec, 0, sizeof rec);
	int r = ldr_lease_acquire(dfd, name, st->ownmode, me, lease_ms,
				  renew_ms, &dl->l, &rec);
	if (r == 0) {
		dl->base.be = be;
		*out = &dl->base;
		rc = 0;
	} else {
		free(dl);
		if (r > 0) {
			holder_set(h, &rec, me);
			h->blind = rec.ino == 0;
		} else {
			rc = ldr_fail_errno(be->db, errno,
					    "cannot take a lease in '%s/%s': "
					    "%s",
					    st->dir, dirrel, strerror(errno));
		}
	}
out:
	ldr_close(dfd);
	return rc;
}

static int dir_lease_held(struct ldr_be_lease *l)
{
	return ldr_lease_held(((struct dir_lease *)l)->l);
}

static int dir_lease_observe(struct ldr_backend *be, const struct ldr_name *n,
			     struct ldr_be_holder *h)
{
	char name[48];
	int dfd, rc = open_lease_dir(be, n, name, sizeof name, &dfd);
	if (rc)
		return rc;
	struct ldr_lease_rec rec;
	memset(&rec, 0, sizeof rec);
	if (ldr_lease_read(dfd, name, &rec) < 0 && errno == ENOENT) {
		rc = LARDER_ENOTFOUND;
	} else {
		struct ldr_self me;
		ldr_self_get(&me, store_of(be)->host);
		holder_set(h, &rec, &me);
		h->blind = rec.ino == 0;
	}
	ldr_close(dfd);
	return rc;
}

static int dir_lease_break(struct ldr_backend *be, const struct ldr_name *n,
			   const struct ldr_be_holder *h)
{
	char name[48];
	int dfd, rc = open_lease_dir(be, n, name, sizeof name, &dfd);
	if (rc)
		return rc;
	int r = ldr_lease_break(dfd, name, &h->rec, store_of(be)->host);
	ldr_close(dfd);
	return r;
}

static void dir_lease_release(struct ldr_be_lease *l)
{
	if (!l)
		return;
	ldr_lease_release(((struct dir_lease *)l)->l);
	free(l);
}

/* ---------------------------------------------------------------------- */
/* Waiting for a publish                                                   */

struct dir_wait {
	struct ldr_be_wait base;
	int ifd; /* inotify, or -1: poll */
	unsigned backoff_ms;
	/* The end of the current sleep (ldr_mono_ms), 0 when none: a wait
	 * cut short by the caller's max_ms goes on to it, so that the
	 * caller's own timers do not make us look more often. */
	uint64_t until;
};

static int dir_wait_begin(struct ldr_backend *be, const struct ldr_name *n,
			  struct ldr_be_wait **out)
{
	larder *st = store_of(be);
	*out = NULL;
	struct dir_wait *w = calloc(1, sizeof *w);
	if (!w)
		return ldr_fail(be->db, LARDER_ENOMEM, ENOMEM, "out of memory");
	w->base.be = be;
	w->ifd = -1;
	w->backoff_ms = 5;
	*out = &w->base;
	if (st->network)
		return 0; /* inotify sees no other client's change */
	char erel[LDR_REL_MAX], lrel[LDR_REL_MAX], hex[33], lname[48];
	ldr_hex(n->hash, 16, hex);
	ldr_dir_rel(erel, n->ns, 'e', hex);
	lease_place(lrel, lname, sizeof lname, n);
	/* The entry's directory is made now so that it can be watched. */
	int efd = ldr_open_dir(st, erel), lfd = ldr_open_dir(st, lrel);
	w->ifd =
	    efd < 0 || lfd < 0 ? -1 : inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (w->ifd >= 0) {
		char p1[64], p2[64];
		snprintf(p1, sizeof p1, "/proc/self/fd/%d", efd);
		snprintf(p2, sizeof p2, "/proc/self/fd/%d", lfd);
		/* The entry appearing (link or rename into its directory),
		 * the lease going or beating. Without them, polling. */
		if (inotify_add_watch(w->ifd, p1, IN_CREATE | IN_MOVED_TO) <
			0 ||
		    inotify_add_watch(w->ifd, p2,
				      IN_DELETE | IN_MOVED_FROM | IN_MODIFY |
					  IN_CLOSE_WRITE) < 0) {
			ldr_close(w->ifd);
			w->ifd = -1;
		}
	}
	ldr_close(efd);
	ldr_close(lfd);
	return 0;
}

static int dir_wait(struct ldr_be_wait *bw, uint64_t max_ms,
		    const volatile sig_atomic_t *cancel)
{
	struct dir_wait *w = (struct dir_wait *)bw;
	uint64_t now = ldr_mono_ms();
	if (w->until == 0 || w->until <= now) {
		uint64_t ms;
		if (w->ifd >= 0) {
			/* Still wake now and then: a holder killed on this
			 * host leaves no event, and its death is seen by
			 * looking. */
			ms = 100;
		} else {
			/* Polling (a network filesystem): jittered
			 * exponential backoff, 5 ms to 500 ms, so that a
			 * herd of waiters does not poll in step. */
			uint8_t rnd;
			ldr_random(&rnd, 1);
			ms = w->backoff_ms * (75 + (uint64_t)rnd % 51) / 100;
			if (w->backoff_ms < 500)
				w->backoff_ms *= 2;
		}
		w->until = now + ms;
	}
	const int cut = now + max_ms < w->until;
	uint64_t d = cut ? max_ms : w->until - now;
	if (w->ifd >= 0) {
		struct pollfd pfd = {w->ifd, POLLIN, 0};
		if (poll(&pfd, 1, (int)d) > 0) {
			char buf[4096];
			while (read(w->ifd, buf, sizeof buf) > 0)
				;
			w->until = 0;
			return 0;
		}
	} else {
		struct timespec ts = {(time_t)(d / 1000),
				      (long)(d % 1000) * 1000000};
		nanosleep(&ts, NULL);
	}
	/* A signal that set the caller's cancel flag cut the sleep short
	 * (EINTR): the caller looks now. */
	if (cancel && *cancel)
		return LARDER_ECANCELED;
	if (ldr_mono_ms() < w->until && cut)
		return LDR_BE_WAIT_MORE;
	w->until = 0;
	return 0;
}

static void dir_wait_end(struct ldr_be_wait *bw)
{
	struct dir_wait *w = (struct dir_wait *)bw;
	if (!w)
		return;
	if (w->ifd >= 0)
		ldr_close(w->ifd);
	free(w);
}

/* ---------------------------------------------------------------------- */
/* Listing, stats                                                          */

static int dir_list_ns(struct ldr_backend *be, larder_ns_fn cb, void *p)
{
	return ldr_ns_foreach(store_of(be), cb, p);
}

struct walk_fwd {
	int (*cb)(const uint8_t hash[16], const char *where, void *p);
	void *p;
};

static int walk_fwd(const char *rel, const uint8_t hash[16], void *payload)
{
	struct walk_fwd *fw = payload;
	return fw->cb(hash, rel, fw->p);
}

static int
dir_walk(struct ldr_backend *be, const char *ns,
	 int (*cb)(const uint8_t hash[16], const char *where, void *p), void *p)
{
	struct walk_fwd fw = {cb, p};
	return ldr_walk_files(store_of(be), ns, walk_fwd, &fw);
}

static int dir_stats(struct ldr_backend *be, struct ldr_be_stats *stt)
{
	larder *st = store_of(be);
	memset(stt, 0, sizeof *stt);
	int64_t bytes = 0, entries = 0;
	int rc = ldr_usage_read(st, NULL, &bytes, &entries);
	if (rc)
		return relay(be, rc);
	stt->bytes = bytes > 0 ? (uint64_t)bytes : 0;
	stt->entries = entries > 0 ? (uint64_t)entries : 0;
	/* The filesystem's size bounds what it can hold. */
	struct ldr_space sp;
	if (ldr_space_get(st, &sp) == 0)
		stt->bytes_max = sp.total;
	stt->reachable = 1;
	return 0;
}

const struct ldr_backend_ops ldr_be_dir_ops = {
    .version = LDR_BACKEND_VERSION,
    .kind = "dir",
    .caps = LDR_BE_MAP | LDR_BE_LINKED_HEAD | LDR_BE_NOTIFY,
    .open = dir_open,
    .close = dir_close,
    .read = dir_read,
    .reject = dir_reject,
    .stage_begin = dir_stage_begin,
    .stage_write = dir_stage_write,
    .stage_commit = dir_stage_commit,
    .stage_abort = dir_stage_abort,
    .remove = dir_remove,
    .head_get = dir_head_get,
    .head_set = dir_head_set,
    .head_drop = dir_head_drop,
    .lease_acquire = dir_lease_acquire,
    .lease_held = dir_lease_held,
    .lease_observe = dir_lease_observe,
    .lease_break = dir_lease_break,
    .lease_release = dir_lease_release,
    .wait_begin = dir_wait_begin,
    .wait = dir_wait,
    .wait_end = dir_wait_end,
    .list_ns = dir_list_ns,
    .walk = dir_walk,
    .stats = dir_stats,
};
