/*
 * self.c — ldr_self_get kept per handle: a fill asks who it is every
 * time, and the backends (the directory's leases, Redis's) ask it too,
 * so it sits below them all.
 */
#include "self.h"

#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

/* Who this process is, kept per handle: reading it costs six system
 * calls (the boot id, /proc/self/ns/pid, /proc/self/stat), and a fill
 * asks for it every time. It is known again after a fork (pthread_atfork
 * counts forks) and for another pid (a process made by clone(2) runs no
 * fork handlers). Each answer kept is a new record linked to the one it
 * replaces, freed only at close, so that a reader copying one never
 * races a free (no lock: a child forked while another thread held one
 * would find it held forever). */
struct ldr_self_memo {
	struct ldr_self me;
	unsigned long gen;
	struct ldr_self_memo *older;
};

static unsigned long fork_gen = 1;
static pthread_once_t fork_once = PTHREAD_ONCE_INIT;
static int fork_counted;

static void fork_child(void)
{
	__atomic_add_fetch(&fork_gen, 1, __ATOMIC_RELAXED);
}

static void fork_count(void)
{
	fork_counted = pthread_atfork(NULL, NULL, fork_child) == 0;
}

void ldr_self_cached(struct ldr_self *me, larder *db)
{
	pthread_once(&fork_once, fork_count);
	unsigned long gen = __atomic_load_n(&fork_gen, __ATOMIC_RELAXED);
	struct ldr_self_memo *m =
	    __atomic_load_n(&db->self_memo, __ATOMIC_ACQUIRE);
	if (fork_counted && m && m->gen == gen && m->me.pid == (long)getpid()) {
		*me = m->me;
		return;
	}
	ldr_self_get(me, db->host);
	struct ldr_self_memo *n = malloc(sizeof *n);
	if (!n)
		return; /* asked again next time */
	n->me = *me;
	n->gen = gen;
	n->older = m;
	/* Another thread's answer won: it is as good as ours. */
	if (!__atomic_compare_exchange_n(&db->self_memo, &n->older, n, 0,
					 __ATOMIC_RELEASE, __ATOMIC_RELAXED))
		free(n);
}

void ldr_self_cached_free(larder *db)
{
	struct ldr_self_memo *m = db->self_memo;
	db->self_memo = NULL;
	while (m) {
		struct ldr_self_memo *older = m->older;
		free(m);
		m = older;
	}
}
