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
 */
#include "memo.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "clock.h"
#include "fsutil.h"

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
	uint8_t hash[16];
	struct ldr_memo_hit hit; /* hit.b holds the memo's reference */
	const uint8_t *ns, *key;
	size_t nslen, klen;
	char rel[LDR_REL_MAX];
	dev_t dev;
	ino_t ino;
	off_t fsize;
	struct timespec mtime, ctime;
	int64_t checked_ms, hashed_ms; /* the memo's clock */
	/* The file changed within RACY_NS of its verified read (a later
	 * write in the same timestamp tick would leave its identity as it
	 * was): the check reads and verifies it again instead. */
	int racy;
	uint64_t bytes;
	struct rec *prev, *next; /* LRU: most recent after the sentinel */
	struct rec *chain;	 /* hash bucket */
};

struct ldr_memo {
	pthread_mutex_t mu;
	struct rec **tab;
	size_t mask; /* buckets - 1 */
	struct rec lru;
	size_t n, max_n;
	uint64_t bytes, max_bytes;
	int64_t check_ms, rehash_ms;
	int64_t skew_ms; /* tests age the records (ldr_memo_age) */
	/* Tags of entries read once and not memoised (admission on the
	 * second read), direct-mapped: a clash only delays a memo. */
	uint64_t seen[SEEN_SLOTS];
	struct ldr_memo *gprev, *gnext; /* all memos, for fork */
};

/* Every memo of the process, so that a forked child can empty them. */
static pthread_mutex_t all_mu = PTHREAD_MUTEX_INITIALIZER;
static struct ldr_memo *all;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

/* Timestamps are as coarse as a jiffy on local filesystems and a second
 * on some network ones: a file whose ctime is this close to its read is
 * not judged by its identity (git's "racily clean" entries). */
#define RACY_NS 2000000000LL

static void drop_all(struct ldr_memo *m);

/* Before fork: hold every memo's lock, so that none is mid-change in the
 * child; after it, release them, and in the child empty them. */
static void fork_prepare(void)
{
	pthread_mutex_lock(&all_mu);
	for (struct ldr_memo *m = all; m; m = m->gnext)
		pthread_mutex_lock(&m->mu);
}

static void fork_parent(void)
{
	for (struct ldr_memo *m = all; m; m = m->gnext)
		pthread_mutex_unlock(&m->mu);
	pthread_mutex_unlock(&all_mu);
}

static void fork_child(void)
{
	for (struct ldr_memo *m = all; m; m = m->gnext) {
		drop_all(m);
		pthread_mutex_unlock(&m->mu);
	}
	pthread_mutex_unlock(&all_mu);
}

static int atfork_ok;

static void atfork_install(void)
{
	atfork_ok = pthread_atfork(fork_prepare, fork_parent, fork_child) == 0;
}

static int64_t clock_ms(const struct ldr_memo *m)
{
	return ldr_coarse_ms() + __atomic_load_n(&m->skew_ms, __ATOMIC_RELAXED);
}

/* Wall-clock time for expiry and file times, aged as the memo's clock */
static int64_t wall_ns(const struct ldr_memo *m)
{
	return ldr_now_ns() +
	       __atomic_load_n(&m->skew_ms, __ATOMIC_RELAXED) * 1000000;
}

static size_t bucket(const struct ldr_memo *m, const uint8_t hash[16])
{
	uint64_t x;
	memcpy(&x, hash, sizeof x);
	return (size_t)x & m->mask;
}

void ldr_memo_unref(struct ldr_memo_blob *b)
{
	if (!b || __atomic_sub_fetch(&b->refs, 1, __ATOMIC_ACQ_REL) != 0)
		return;
	ldr_file_free(&b->f);
	free(b->plain);
	free(b);
}

static void unlink_rec(struct ldr_memo *m, struct rec *r)
{
	struct rec **pp = &m->tab[bucket(m, r->hash)];
	while (*pp != r)
		pp = &(*pp)->chain;
	*pp = r->chain;
	r->prev->next = r->next;
	r->next->prev = r->prev;
	m->n--;
	m->bytes -= r->bytes;
}

/* Under m->mu; the blob's reference is dropped by the caller, outside
 * the lock when it may be the last (munmap is a system call). */
static struct ldr_memo_blob *remove_rec(struct ldr_memo *m, struct rec *r)
{
	struct ldr_memo_blob *b = r->hit.b;
	unlink_rec(m, r);
	free(r);
	return b;
}

static void drop_all(struct ldr_memo *m)
{
	while (m->lru.next != &m->lru)
		ldr_memo_unref(remove_rec(m, m->lru.next));
}

/* Under m->mu: r becomes the most recently used. */
static void lru_front(struct ldr_memo *m, struct rec *r)
{
	r->next = m->lru.next;
	r->prev = &m->lru;
	m->lru.next->prev = r;
	m->lru.next = r;
}

static struct rec *find(struct ldr_memo *m, const uint8_t hash[16])
{
	struct rec *r = m->tab[bucket(m, hash)];
	while (r && memcmp(r->hash, hash, 16) != 0)
		r = r->chain;
	return r;
}

void ldr_memo_open(larder *db, const larder_opts *o)
{
	db->memo = NULL;
	if (db->flags & LARDER_OPEN_VERIFY_ALWAYS)
		return;
	int v3 = o && o->version >= 3;
	size_t max_n =
	    v3 && o->memo_entries ? o->memo_entries : LDR_MEMO_ENTRIES;
	struct ldr_memo *m = calloc(1, sizeof *m);
	size_t nb = 16;
	while (nb < max_n * 2 && nb < ((size_t)1 << 24))
		nb *= 2;
	if (!m || !(m->tab = calloc(nb, sizeof *m->tab))) {
		free(m);
		ldr_log(db, LARDER_LOG_WARN,
			"out of memory for the memo of '%s': every hit reads "
			"and verifies its entry",
			db->dir);
		return;
	}
	pthread_once(&atfork_once, atfork_install);
	if (!atfork_ok) {
		/* A child could not be kept from trusting its parent's memo:
		 * go without one. */
		free(m->tab);
		free(m);
		return;
	}
	pthread_mutex_init(&m->mu, NULL);
	m->mask = nb - 1;
	m->lru.prev = m->lru.next = &m->lru;
	m->max_n = max_n;
	m->max_bytes = v3 && o->memo_bytes ? o->memo_bytes : LDR_MEMO_BYTES;
	m->check_ms =
	    v3 && o->memo_check_ms ? o->memo_check_ms : LDR_MEMO_CHECK_MS;
	m->rehash_ms =
	    v3 && o->memo_rehash_ms ? o->memo_rehash_ms : LDR_MEMO_REHASH_MS;
	pthread_mutex_lock(&all_mu);
	m->gnext = all;
	if (all)
		all->gprev = m;
	all = m;
	pthread_mutex_unlock(&all_mu);
	db->memo = m;
}

void ldr_memo_close(larder *db)
{
	struct ldr_memo *m = db->memo;
	if (!m)
		return;
	pthread_mutex_lock(&all_mu);
	if (m->gprev)
		m->gprev->gnext = m->gnext;
	else
		all = m->gnext;
	if (m->gnext)
		m->gnext->gprev = m->gprev;
	pthread_mutex_unlock(&all_mu);
	drop_all(m);
	pthread_mutex_destroy(&m->mu);
	free(m->tab);
	free(m);
	db->memo = NULL;
}

static int same_ident(const struct rec *r, const struct stat *st)
{
	return S_ISREG(st->st_mode) && st->st_dev == r->dev &&
	       st->st_ino == r->ino && st->st_size == r->fsize &&
	       st->st_mtim.tv_sec == r->mtime.tv_sec &&
	       st->st_mtim.tv_nsec == r->mtime.tv_nsec &&
	       st->st_ctim.tv_sec == r->ctime.tv_sec &&
	       st->st_ctim.tv_nsec == r->ctime.tv_nsec;
}

static int same_bytes(const void *a, size_t alen, const void *b, size_t blen)
{
	return alen == blen && (alen == 0 || memcmp(a, b, alen) == 0);
}

int ldr_memo_get(larder *db, const uint8_t hash[16], const char *ns,
		 const void *key, size_t klen, const void *ver, size_t vlen,
		 int serve, struct ldr_memo_hit *out)
{
	struct ldr_memo *m = db->memo;
	if (!m)
		return 0;
	struct ldr_memo_blob *drop = NULL;
	int hit = 0;
	out->again = 0;
	pthread_mutex_lock(&m->mu);
	struct rec *r = find(m, hash);
	if (!r) {
		uint64_t tag;
		memcpy(&tag, hash + 8, sizeof tag);
		tag |= 1; /* never the empty slot */
		uint64_t *slot = &m->seen[bucket(m, hash) % SEEN_SLOTS];
		if (*slot == tag)
			out->again = 1;
		else
			*slot = tag;
		goto out;
	}
	out->again = 1;
	if (!serve)
		goto out;
	/* The name is a 128-bit hash; the file's header names what it
	 * holds, and so does the record (a collision is a miss). */
	if (!same_bytes(r->ns, r->nslen, ns, strlen(ns)) ||
	    !same_bytes(r->key, r->klen, key, klen) ||
	    !same_bytes(r->hit.ver, r->hit.vlen, ver, vlen))
		goto out;
	int64_t now = clock_ms(m);
	if ((r->hit.expires && wall_ns(m) >= r->hit.expires) ||
	    now - r->hashed_ms >= m->rehash_ms ||
	    (r->racy && now - r->checked_ms >= m->check_ms)) {
		/* Expired (the read path counts and reports it), or due
		 * for a verification from disk. */
		drop = remove_rec(m, r);
		goto out;
	}
	if (now - r->checked_ms >= m->check_ms) {
		/* The file's identity, looked at outside the lock. */
		char rel[LDR_REL_MAX];
		struct rec seen = *r;
		struct ldr_memo_blob *b = r->hit.b;
		__atomic_add_fetch(&b->refs, 1, __ATOMIC_RELAXED);
		memcpy(rel, r->rel, sizeof rel);
		pthread_mutex_unlock(&m->mu);
		struct stat st;
		int same =
		    ldr_lstat(db, rel, &st) == 0 && same_ident(&seen, &st);
		pthread_mutex_lock(&m->mu);
		r = find(m, hash);
		if (r && r->hit.b != b)
			r = NULL; /* replaced meanwhile: judged by its own */
		if (!same) {
			if (r)
				drop = remove_rec(m, r);
			pthread_mutex_unlock(&m->mu);
			ldr_memo_unref(drop);
			ldr_memo_unref(b);
			return 0;
		}
		ldr_memo_unref(b); /* the memo holds another reference */
		if (!r)
			goto out;
		r->checked_ms = now;
	}
	r->prev->next = r->next;
	r->next->prev = r->prev;
	lru_front(m, r);
	*out = r->hit;
	__atomic_add_fetch(&r->hit.b->refs, 1, __ATOMIC_RELAXED);
	hit = 1;
out:
	pthread_mutex_unlock(&m->mu);
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
	if (bytes > m->max_bytes)
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
	memcpy(r->hash, hash, 16);
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
	snprintf(r->rel, sizeof r->rel, "%s", rel);
	r->dev = st.st_dev;
	r->ino = st.st_ino;
	r->fsize = st.st_size;
	r->mtime = st.st_mtim;
	r->ctime = st.st_ctim;
	r->racy = wall_ns(m) - ((int64_t)st.st_ctim.tv_sec * 1000000000 +
				st.st_ctim.tv_nsec) <
		  RACY_NS;
	r->bytes = bytes;
	*hit = r->hit;

	struct ldr_memo_blob *drop[8];
	int ndrop = 0;
	pthread_mutex_lock(&m->mu);
	int64_t now = clock_ms(m);
	r->checked_ms = r->hashed_ms = now;
	struct rec *old = find(m, hash);
	if (old)
		drop[ndrop++] = remove_rec(m, old);
	/* Make room, least recently used first; and let go of records that
	 * can no longer be served unread (past the re-hash interval), so
	 * that a mapping does not keep a removed file's blocks on disk for
	 * long. Blobs beyond a few are released under the lock (rare: a
	 * burst of large entries). */
	while (m->n && (m->n >= m->max_n || m->bytes + bytes > m->max_bytes ||
			now - m->lru.prev->hashed_ms >= m->rehash_ms)) {
		struct ldr_memo_blob *x = remove_rec(m, m->lru.prev);
		if (ndrop < 8)
			drop[ndrop++] = x;
		else
			ldr_memo_unref(x);
	}
	size_t i = bucket(m, hash);
	r->chain = m->tab[i];
	m->tab[i] = r;
	lru_front(m, r);
	m->n++;
	m->bytes += bytes;
	pthread_mutex_unlock(&m->mu);
	while (ndrop)
		ldr_memo_unref(drop[--ndrop]);
	return 0;
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
	pthread_mutex_lock(&m->mu);
	struct rec *r = find(m, hash);
	if (r)
		drop = remove_rec(m, r);
	pthread_mutex_unlock(&m->mu);
	ldr_memo_unref(drop);
}

void ldr_memo_age(larder *db, int64_t ms)
{
	if (db->memo)
		__atomic_add_fetch(&db->memo->skew_ms, ms, __ATOMIC_RELAXED);
}

void ldr_memo_usage(larder *db, size_t *entries, uint64_t *bytes)
{
	struct ldr_memo *m = db->memo;
	*entries = 0;
	*bytes = 0;
	if (!m)
		return;
	pthread_mutex_lock(&m->mu);
	*entries = m->n;
	*bytes = m->bytes;
	pthread_mutex_unlock(&m->mu);
}
