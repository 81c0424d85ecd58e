/*
 * lru.h — a bounded table of records keyed by a 16-byte hash (lru.c):
 * a hash table, a least-recently-used list, a bound in records and in
 * bytes, one mutex, and emptied in a forked child. The memo of verified
 * entries (memo.c) and the head cache (head.c) are built on it; each
 * embeds a struct ldr_lru_node in its record and keeps its own data.
 */
#ifndef LARDER_LRU_H
#define LARDER_LRU_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

struct ldr_lru_node {
	uint8_t hash[16];
	uint64_t bytes; /* what the record counts against max_bytes */
	struct ldr_lru_node *prev, *next; /* LRU: most recent first */
	struct ldr_lru_node *chain;	  /* hash bucket */
};

struct ldr_lru {
	pthread_mutex_t mu; /* held for a look and a list move, never
			       across a system call */
	struct ldr_lru_node **tab;
	size_t mask;		  /* buckets - 1 */
	struct ldr_lru_node list; /* sentinel: most recent after it */
	size_t n, max_n;
	uint64_t bytes, max_bytes;
	int64_t skew_ms; /* tests age the records (ldr_lru_age) */
	/* Tags of records asked for once and not kept (admission at the
	 * second ask), direct-mapped: a clash only delays a record. */
	uint64_t *seen;
	size_t nseen;
	/* Frees a record taken out of the table by ldr_lru_clear (close,
	 * and a forked child, under mu). */
	void (*release)(struct ldr_lru_node *);
	/* In a forked child, after the table was emptied (may be NULL). */
	void (*forked)(struct ldr_lru *);
	struct ldr_lru *gprev, *gnext; /* every table, for fork */
};

/* Make t with room for max_n records and max_bytes, and a filter of
 * nseen admission slots; register it to be emptied in a forked child.
 * 0, ENOMEM, or the error of pthread_atfork (then a child could not be
 * kept from trusting its parent's records: go without the table). */
int ldr_lru_init(struct ldr_lru *t, size_t max_n, uint64_t max_bytes,
		 size_t nseen, void (*release)(struct ldr_lru_node *),
		 void (*forked)(struct ldr_lru *));
/* Unregister t and release every record in it. */
void ldr_lru_fini(struct ldr_lru *t);
/* Under t->mu: release every record. */
void ldr_lru_clear(struct ldr_lru *t);

static inline size_t ldr_lru_bucket(const struct ldr_lru *t,
				    const uint8_t hash[16])
{
	uint64_t x;
	memcpy(&x, hash, sizeof x);
	return (size_t)x & t->mask;
}

/* Under t->mu: the record named hash, or NULL. */
static inline struct ldr_lru_node *ldr_lru_find(struct ldr_lru *t,
						const uint8_t hash[16])
{
	struct ldr_lru_node *r = t->tab[ldr_lru_bucket(t, hash)];
	while (r && memcmp(r->hash, hash, 16) != 0)
		r = r->chain;
	return r;
}

/* Under t->mu: r becomes the most recently used. */
static inline void ldr_lru_touch(struct ldr_lru *t, struct ldr_lru_node *r)
{
	r->prev->next = r->next;
	r->next->prev = r->prev;
	r->next = t->list.next;
	r->prev = &t->list;
	t->list.next->prev = r;
	t->list.next = r;
}

/* Under t->mu: the least recently used record, or NULL. */
static inline struct ldr_lru_node *ldr_lru_oldest(struct ldr_lru *t)
{
	return t->list.prev != &t->list ? t->list.prev : NULL;
}

/* Under t->mu: a record of `bytes` more needs room (the caller removes
 * the oldest until it does not). */
static inline int ldr_lru_full(const struct ldr_lru *t, uint64_t bytes)
{
	return t->n && (t->n >= t->max_n || t->bytes + bytes > t->max_bytes);
}

/* Under t->mu: put r (its hash and bytes set), the most recent; take r
 * out (the caller frees it). */
void ldr_lru_insert(struct ldr_lru *t, struct ldr_lru_node *r);
void ldr_lru_remove(struct ldr_lru *t, struct ldr_lru_node *r);

/* Under t->mu: admission. 1 if hash was asked for before (its tag is in
 * the filter), else 0 and its tag is remembered. */
int ldr_lru_seen(struct ldr_lru *t, const uint8_t hash[16]);

/* The table's clock (coarse, monotonic, in ms) and the wall clock in ns,
 * both moved by ldr_lru_age. */
int64_t ldr_lru_ms(const struct ldr_lru *t);
/* ldr_lru_ms from a reading of ldr_coarse_ms() the caller took. */
static inline int64_t ldr_lru_ms_at(const struct ldr_lru *t, int64_t coarse)
{
	return coarse + __atomic_load_n(&t->skew_ms, __ATOMIC_RELAXED);
}
int64_t ldr_lru_wall_ns(const struct ldr_lru *t);
void ldr_lru_age(struct ldr_lru *t, int64_t ms);

/* A file's identity, taken when a record is made and compared at its
 * checks: a file removed, replaced or written into has another. */
struct ldr_lru_ident {
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtime, ctime;
	/* The file changed within 2 s of the read (a later write in the
	 * same timestamp tick would leave its identity as it was): the
	 * owner reads it again at its check instead of judging by it. */
	int racy;
};
void ldr_lru_ident_take(const struct ldr_lru *t, const struct stat *st,
			struct ldr_lru_ident *id);
int ldr_lru_ident_same(const struct ldr_lru_ident *id, const struct stat *st);

/* Equal byte strings (either may be NULL when empty). */
static inline int ldr_same_bytes(const void *a, size_t alen, const void *b,
				 size_t blen)
{
	return alen == blen && (alen == 0 || memcmp(a, b, alen) == 0);
}

#endif
