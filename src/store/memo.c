/*
 * memo.c — owns a handle's memo of verified entries (docs/format.md, "The
 * memo of verified entries"). An entry is immutable: once a read of its
 * file verified it, the same bytes are the entry for as long as the file
 * is the same file. So a repeat hit takes the bytes an earlier hit
 * verified (a heap copy, or the mapping, shared by reference with the
 * entries handed out) instead of reading and hashing the file again.
 *
 * What keeps that honest:
 *  - the file's identity (dev, ino, size, mtime, ctime, taken with fstat
 *    at the verified read) is looked at again, without following links,
 *    once every check interval (1 s by default): a file removed,
 *    replaced or written into stops being served within it; a file
 *    changed less than 2 s before its read (a write in the same
 *    timestamp tick would not show) is not judged by it: such a record
 *    is read and verified again at its first check instead;
 *  - an entry is memoised at its second read in the handle, not its
 *    first: a first hit keeps nothing and costs no fstat;
 *  - every re-hash interval (60 s by default) a record is dropped, so the
 *    next hit reads and verifies the file again from disk: a byte flipped
 *    on disk without a change of identity is seen then;
 *  - expiry is looked at on every memo hit (the header's time is kept);
 *  - bounded: a number of records and a byte budget (heap copies and
 *    mappings alike), the least recently used dropped first;
 *  - one mutex per handle, held for a hash-table look and a list move
 *    (never across a system call);
 *  - after fork() the child's memos are emptied (pthread_atfork): the
 *    child verifies from disk again rather than trust what its parent
 *    remembered.
 * The table, its bounds, lock, clock and fork handling are lru.c's,
 * shared with the head cache (head.c).
 */
#include "memo.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "clock.h"
#include "fsutil.h"
#include "lru.h"
#include "recency.h"

struct ldr_memo_blob {
	unsigned refs;
	struct ldr_file f; /* its fd dropped */
	uint8_t *plain;	   /* decompressed payload, or NULL */
};

/* A first read is not memoised: most entries a process reads it reads
 * once, and keeping their bytes would cost a first hit the allocation
 * and page faults of memory it never uses again. */
#define SEEN_SLOTS 4096

struct rec {
	struct ldr_lru_node node; /* first: a node is its record */
	struct ldr_memo_hit hit;  /* hit.b holds the memo's reference */
	const uint8_t *ns, *key;
	size_t nslen, klen;
	char rel[LDR_REL_MAX];
	struct ldr_lru_ident id;
	int64_t checked_ms, hashed_ms; /* the memo's clock */
};

struct ldr_memo {
	struct ldr_lru t;
	int64_t check_ms, rehash_ms;
};

void ldr_memo_unref(struct ldr_memo_blob *b)
{
	if (!b || __atomic_sub_fetch(&b->refs, 1, __ATOMIC_ACQ_REL) != 0)
		return;
	ldr_file_free(&b->f);
	free(b->plain);
	free(b);
}

/* Under m->t.mu; the blob's reference is dropped by the caller, outside
 * the lock when it may be the last (munmap is a system call). */
static struct ldr_memo_blob *remove_rec(struct ldr_memo *m, struct rec *r)
{
	struct ldr_memo_blob *b = r->hit.b;
	ldr_lru_remove(&m->t, &r->node);
	free(r);
	return b;
}

/* The table lets go of a record (close, a forked child). */
static void release_rec(struct ldr_lru_node *n)
{
	struct rec *r = (struct rec *)n;
	ldr_memo_unref(r->hit.b);
	free(r);
}

static struct rec *find(struct ldr_memo *m, const uint8_t hash[16])
{
	return (struct rec *)ldr_lru_find(&m->t, hash);
}

void ldr_memo_cfg(const larder_opts *o, struct ldr_memo_cfg *cfg)
{
	int v3 = o && o->version >= 3;
	cfg->entries =
	    v3 && o->memo_entries ? o->memo_entries : LDR_MEMO_ENTRIES;
	cfg->bytes = v3 && o->memo_bytes ? o->memo_bytes : LDR_MEMO_BYTES;
	cfg->check_ms =
	    v3 && o->memo_check_ms ? o->memo_check_ms : LDR_MEMO_CHECK_MS;
	cfg->rehash_ms =
	    v3 && o->memo_rehash_ms ? o->memo_rehash_ms : LDR_MEMO_REHASH_MS;
}

void ldr_memo_open(larder *db, const larder_opts *o)
{
	db->memo = NULL;
	if (db->flags & LARDER_OPEN_VERIFY_ALWAYS)
		return;
	struct ldr_memo_cfg cfg;
	ldr_memo_cfg(o, &cfg);
	struct ldr_memo *m = calloc(1, sizeof *m);
	int e = m ? ldr_lru_init(&m->t, cfg.entries, cfg.bytes, SEEN_SLOTS,
				 release_rec, NULL)
		  : ENOMEM;
	if (e) {
		/* Without fork handling a child could not be kept from
		 * trusting its parent's memo: go without one. */
		free(m);
		if (e == ENOMEM)
			ldr_log(db, LARDER_LOG_WARN,
				"out of memory for the memo of '%s': every "
				"hit reads and verifies its entry",
				db->dir);
		return;
	}
	m->check_ms = cfg.check_ms;
	m->rehash_ms = cfg.rehash_ms;
	db->memo = m;
}

void ldr_memo_close(larder *db)
{
	struct ldr_memo *m = db->memo;
	if (!m)
		return;
	ldr_lru_fini(&m->t);
	free(m);
	db->memo = NULL;
}

int ldr_memo_get(larder *db, const uint8_t hash[16], const char *ns,
		 size_t nslen, const void *key, size_t klen, const void *ver,
		 size_t vlen, struct ldr_memo_hit *out)
{
	struct ldr_memo *m = db->memo;
	if (!m)
		return 0;
	struct ldr_memo_blob *drop = NULL;
	int hit = 0;
	out->again = 0;
	pthread_mutex_lock(&m->t.mu);
	struct rec *r = find(m, hash);
	if (!r) {
		out->again = ldr_lru_seen(&m->t, hash);
		goto out;
	}
	out->again = 1;
	/* One reading of the clock for the recency and the memo's own
	 * intervals (each was a call of its own). */
	int64_t coarse = ldr_coarse_ms();
	if (ldr_touch_due_at(db, hash, coarse))
		goto out;
	/* The name is a 128-bit hash; the file's header names what it
	 * holds, and so does the record (a collision is a miss). */
	if (!ldr_same_bytes(r->ns, r->nslen, ns, nslen) ||
	    !ldr_same_bytes(r->key, r->klen, key, klen) ||
	    !ldr_same_bytes(r->hit.ver, r->hit.vlen, ver, vlen))
		goto out;
	int64_t now = ldr_lru_ms_at(&m->t, coarse);
	if ((r->hit.expires && ldr_lru_wall_ns(&m->t) >= r->hit.expires) ||
	    now - r->hashed_ms >= m->rehash_ms ||
	    (r->id.racy && now - r->checked_ms >= m->check_ms)) {
		/* Expired (the read path counts and reports it), or due
		 * for a verification from disk. */
		drop = remove_rec(m, r);
		goto out;
	}
	if (now - r->checked_ms >= m->check_ms) {
		/* The file's identity, looked at outside the lock. */
		char rel[LDR_REL_MAX];
		struct ldr_lru_ident seen = r->id;
		struct ldr_memo_blob *b = r->hit.b;
		__atomic_add_fetch(&b->refs, 1, __ATOMIC_RELAXED);
		memcpy(rel, r->rel, sizeof rel);
		pthread_mutex_unlock(&m->t.mu);
		struct stat st;
		int same = ldr_lstat(db, rel, &st) == 0 &&
			   ldr_lru_ident_same(&seen, &st);
		pthread_mutex_lock(&m->t.mu);
		r = find(m, hash);
		if (r && r->hit.b != b)
			r = NULL; /* replaced meanwhile: judged by its own */
		if (!same) {
			if (r)
				drop = remove_rec(m, r);
			pthread_mutex_unlock(&m->t.mu);
			ldr_memo_unref(drop);
			ldr_memo_unref(b);
			return 0;
		}
		ldr_memo_unref(b); /* the memo holds another reference */
		if (!r)
			goto out;
		r->checked_ms = now;
	}
	ldr_lru_touch(&m->t, &r->node);
	*out = r->hit;
	__atomic_add_fetch(&r->hit.b->refs, 1, __ATOMIC_RELAXED);
	hit = 1;
out:
	pthread_mutex_unlock(&m->t.mu);
	ldr_memo_unref(drop);
	if (hit)
		ldr_count(db, LARDER_CTR_MEMO_HITS);
	return hit;
}

int ldr_memo_put(larder *db, const uint8_t hash[16], const char *rel,
		 struct ldr_file *f, uint8_t *plain, const ldr_hdr *h,
		 const uint8_t *data, int identify, struct ldr_memo_hit *hit)
{
	struct ldr_memo *m = db->memo;
	if (!m || f->fd < 0 || f->partial)
		return -1;
	uint64_t bytes = (uint64_t)f->len + (plain ? h->raw_len : 0) +
			 sizeof(struct rec) + sizeof(struct ldr_memo_blob);
	if (bytes > m->t.max_bytes)
		return -1;
	/* Not on an entry's first read (SEEN_SLOTS): that read stays one
	 * open, one pread and one close, and keeps nothing. */
	if (!identify)
		return -1;
	/* The identity a later check compares with: of the file we read,
	 * through its descriptor (a name looked up now could be another's). */
	struct stat st;
	if (fstat(f->fd, &st) != 0 || !S_ISREG(st.st_mode))
		return -1;
	struct rec *r = calloc(1, sizeof *r);
	struct ldr_memo_blob *b = malloc(sizeof *b);
	if (!r || !b) {
		free(r);
		free(b);
		return -1;
	}
	ldr_file_drop_fd(f);
	b->refs = 2; /* the memo's and the caller's */
	b->f = *f;
	b->plain = plain;
	memset(f, 0, sizeof *f);
	f->fd = -1;
	memcpy(r->node.hash, hash, 16);
	r->hit = (struct ldr_memo_hit){.b = b,
				       .data = data,
				       .size = h->raw_len,
				       .ver = h->ver,
				       .vlen = h->ver_len,
				       .meta = h->meta,
				       .mlen = h->meta_len,
				       .created = h->created,
				       .expires = h->expires,
				       .mapped = b->f.mapped && !plain};
	r->ns = h->ns;
	r->nslen = h->ns_len;
	r->key = h->key;
	r->klen = h->key_len;
	/* (rel fits: every entry's name is shorter than LDR_REL_MAX; no
	 * formatting on a hit's path.) */
	size_t rn = strnlen(rel, sizeof r->rel - 1);
	memcpy(r->rel, rel, rn);
	r->rel[rn] = '\0';
	ldr_lru_ident_take(&m->t, &st, &r->id);
	r->node.bytes = bytes;
	*hit = r->hit;

	struct ldr_memo_blob *drop[8];
	int ndrop = 0;
	pthread_mutex_lock(&m->t.mu);
	int64_t now = ldr_lru_ms(&m->t);
	r->checked_ms = r->hashed_ms = now;
	struct rec *old = find(m, hash);
	if (old)
		drop[ndrop++] = remove_rec(m, old);
	/* Make room, least recently used first; and let go of records that
	 * can no longer be served unread (past the re-hash interval), so
	 * that a mapping does not keep a removed file's blocks on disk for
	 * long. Blobs beyond a few are released under the lock (rare: a
	 * burst of large entries). */
	struct rec *lru;
	while ((lru = (struct rec *)ldr_lru_oldest(&m->t)) != NULL &&
	       (ldr_lru_full(&m->t, bytes) ||
		now - lru->hashed_ms >= m->rehash_ms)) {
		struct ldr_memo_blob *x = remove_rec(m, lru);
		if (ndrop < 8)
			drop[ndrop++] = x;
		else
			ldr_memo_unref(x);
	}
	ldr_lru_insert(&m->t, &r->node);
	pthread_mutex_unlock(&m->t.mu);
	while (ndrop)
		ldr_memo_unref(drop[--ndrop]);
	return 0;
}

void ldr_memo_checked(larder *db, const uint8_t hash[16], const char *rel,
		      const struct stat *st)
{
	struct ldr_memo *m = db->memo;
	if (!m)
		return;
	pthread_mutex_lock(&m->t.mu);
	struct rec *r = find(m, hash);
	/* A racy identity (changed within 2 s of its read) is re-read at
	 * its check, whatever a stat says: not refreshed here. */
	if (r && !r->id.racy && strcmp(r->rel, rel) == 0 &&
	    ldr_lru_ident_same(&r->id, st))
		r->checked_ms = ldr_lru_ms(&m->t);
	pthread_mutex_unlock(&m->t.mu);
}

void ldr_memo_forget(larder *db, const char *rel)
{
	struct ldr_memo *m = db->memo;
	size_t n = strlen(rel);
	if (!m || n < 32)
		return;
	uint8_t hash[16];
	if (ldr_unhex(rel + n - 32, 16, hash) != 0)
		return; /* not an entry's name */
	struct ldr_memo_blob *drop = NULL;
	pthread_mutex_lock(&m->t.mu);
	struct rec *r = find(m, hash);
	if (r)
		drop = remove_rec(m, r);
	pthread_mutex_unlock(&m->t.mu);
	ldr_memo_unref(drop);
}

void ldr_memo_age(larder *db, int64_t ms)
{
	if (db->memo)
		ldr_lru_age(&db->memo->t, ms);
}

void ldr_memo_usage(larder *db, size_t *entries, uint64_t *bytes)
{
	struct ldr_memo *m = db->memo;
	*entries = 0;
	*bytes = 0;
	if (!m)
		return;
	pthread_mutex_lock(&m->t.mu);
	*entries = m->t.n;
	*bytes = m->t.bytes;
	pthread_mutex_unlock(&m->t.mu);
}
