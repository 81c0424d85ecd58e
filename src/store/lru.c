/*
 * lru.c — owns the bounded table that the memo of verified entries and
 * the head cache share (lru.h): records in a hash table keyed by a
 * 16-byte hash, a least-recently-used list, the bound, the admission
 * filter, the clock tests can move, and the fork handling: after fork()
 * a child's tables are emptied (pthread_atfork), so that it reads from
 * disk again rather than trust what its parent remembered.
 */
#include "lru.h"

#include <errno.h>
#include <stdlib.h>

#include "clock.h"

/* Every table of the process, so that a forked child can empty them. */
static pthread_mutex_t all_mu = PTHREAD_MUTEX_INITIALIZER;
static struct ldr_lru *all;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;
static int atfork_err;

/* Timestamps are as coarse as a jiffy on local filesystems and a second
 * on some network ones: a file whose ctime is this close to its read is
 * not judged by its identity (git's "racily clean" entries). */
#define RACY_NS 2000000000LL

/* Before fork: hold every table's lock, so that none is mid-change in
 * the child; after it, release them, and in the child empty them. */
static void fork_prepare(void)
{
	pthread_mutex_lock(&all_mu);
	for (struct ldr_lru *t = all; t; t = t->gnext)
		pthread_mutex_lock(&t->mu);
}

static void fork_parent(void)
{
	for (struct ldr_lru *t = all; t; t = t->gnext)
		pthread_mutex_unlock(&t->mu);
	pthread_mutex_unlock(&all_mu);
}

static void fork_child(void)
{
	for (struct ldr_lru *t = all; t; t = t->gnext) {
		ldr_lru_clear(t);
		if (t->forked)
			t->forked(t);
		pthread_mutex_unlock(&t->mu);
	}
	pthread_mutex_unlock(&all_mu);
}

static void atfork_install(void)
{
	atfork_err = pthread_atfork(fork_prepare, fork_parent, fork_child);
}

int ldr_lru_init(struct ldr_lru *t, size_t max_n, uint64_t max_bytes,
		 size_t nseen, void (*release)(struct ldr_lru_node *),
		 void (*forked)(struct ldr_lru *))
{
	memset(t, 0, sizeof *t);
	size_t nb = 16;
	while (nb < max_n * 2 && nb < ((size_t)1 << 24))
		nb *= 2;
	t->tab = calloc(nb, sizeof *t->tab);
	t->seen = calloc(nseen, sizeof *t->seen);
	if (!t->tab || !t->seen) {
		free(t->tab);
		free(t->seen);
		return ENOMEM;
	}
	pthread_once(&atfork_once, atfork_install);
	if (atfork_err) {
		free(t->tab);
		free(t->seen);
		return atfork_err;
	}
	pthread_mutex_init(&t->mu, NULL);
	t->mask = nb - 1;
	t->list.prev = t->list.next = &t->list;
	t->max_n = max_n;
	t->max_bytes = max_bytes;
	t->nseen = nseen;
	t->release = release;
	t->forked = forked;
	pthread_mutex_lock(&all_mu);
	t->gnext = all;
	if (all)
		all->gprev = t;
	all = t;
	pthread_mutex_unlock(&all_mu);
	return 0;
}

void ldr_lru_fini(struct ldr_lru *t)
{
	pthread_mutex_lock(&all_mu);
	if (t->gprev)
		t->gprev->gnext = t->gnext;
	else
		all = t->gnext;
	if (t->gnext)
		t->gnext->gprev = t->gprev;
	pthread_mutex_unlock(&all_mu);
	ldr_lru_clear(t);
	pthread_mutex_destroy(&t->mu);
	free(t->tab);
	free(t->seen);
}

void ldr_lru_clear(struct ldr_lru *t)
{
	struct ldr_lru_node *r;
	while ((r = ldr_lru_oldest(t)) != NULL) {
		ldr_lru_remove(t, r);
		t->release(r);
	}
}

void ldr_lru_insert(struct ldr_lru *t, struct ldr_lru_node *r)
{
	size_t i = ldr_lru_bucket(t, r->hash);
	r->chain = t->tab[i];
	t->tab[i] = r;
	r->next = t->list.next;
	r->prev = &t->list;
	t->list.next->prev = r;
	t->list.next = r;
	t->n++;
	t->bytes += r->bytes;
}

void ldr_lru_remove(struct ldr_lru *t, struct ldr_lru_node *r)
{
	struct ldr_lru_node **pp = &t->tab[ldr_lru_bucket(t, r->hash)];
	while (*pp != r)
		pp = &(*pp)->chain;
	*pp = r->chain;
	r->prev->next = r->next;
	r->next->prev = r->prev;
	t->n--;
	t->bytes -= r->bytes;
}

int ldr_lru_seen(struct ldr_lru *t, const uint8_t hash[16])
{
	uint64_t tag;
	memcpy(&tag, hash + 8, sizeof tag);
	tag |= 1; /* never the empty slot */
	uint64_t *slot = &t->seen[ldr_lru_bucket(t, hash) % t->nseen];
	if (*slot == tag)
		return 1;
	*slot = tag;
	return 0;
}

int64_t ldr_lru_ms(const struct ldr_lru *t)
{
	return ldr_coarse_ms() + __atomic_load_n(&t->skew_ms, __ATOMIC_RELAXED);
}

int64_t ldr_lru_wall_ns(const struct ldr_lru *t)
{
	return ldr_now_ns() +
	       __atomic_load_n(&t->skew_ms, __ATOMIC_RELAXED) * 1000000;
}

void ldr_lru_age(struct ldr_lru *t, int64_t ms)
{
	__atomic_add_fetch(&t->skew_ms, ms, __ATOMIC_RELAXED);
}

void ldr_lru_ident_take(const struct ldr_lru *t, const struct stat *st,
			struct ldr_lru_ident *id)
{
	id->dev = st->st_dev;
	id->ino = st->st_ino;
	id->size = st->st_size;
	id->mtime = st->st_mtim;
	id->ctime = st->st_ctim;
	id->racy =
	    ldr_lru_wall_ns(t) - ((int64_t)st->st_ctim.tv_sec * 1000000000 +
				  st->st_ctim.tv_nsec) <
	    RACY_NS;
}

int ldr_lru_ident_same(const struct ldr_lru_ident *id, const struct stat *st)
{
	return S_ISREG(st->st_mode) && st->st_dev == id->dev &&
	       st->st_ino == id->ino && st->st_size == id->size &&
	       st->st_mtim.tv_sec == id->mtime.tv_sec &&
	       st->st_mtim.tv_nsec == id->mtime.tv_nsec &&
	       st->st_ctim.tv_sec == id->ctime.tv_sec &&
	       st->st_ctim.tv_nsec == id->ctime.tv_nsec;
}
