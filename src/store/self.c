/*
 * self.c — ldr_self_get kept per handle: a fill asks who it is every
 * time, and the backends (the directory's leases, Redis's) ask it too,
 * so it sits below them all. And a number per process and handle
 * (ldr_self_epoch) by which what a handle keeps per process is known to
 * be its parent's after a fork, without a system call.
 */
#include "self.h"

#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

/* Who this process is, kept per handle: reading it costs six system
 * calls (the boot id, /proc/self/ns/pid, /proc/self/stat), and a fill
 * asks for it every time. It is known again in a new process by the
 * handle's number for this process (ldr_self_epoch: a child's differs
 * from its parent's, a process made by clone(2) included). Each answer
 * kept is a new record linked to the one it replaces, freed only at
 * close, so that a reader copying one never races a free (no lock: a
 * child forked while another thread held one would find it held
 * forever). */
struct ldr_self_memo {
	struct ldr_self me;
	uint64_t epoch;
	struct ldr_self_memo *older;
};

void ldr_self_cached(struct ldr_self *me, larder *db)
{
	uint64_t epoch = ldr_self_epoch(db);
	struct ldr_self_memo *m =
	    __atomic_load_n(&db->self_memo, __ATOMIC_ACQUIRE);
	if (m && m->epoch == epoch) {
		*me = m->me;
		return;
	}
	ldr_self_get(me, db->host);
	struct ldr_self_memo *n = malloc(sizeof *n);
	if (!n)
		return; /* asked again next time */
	n->me = *me;
	n->epoch = epoch;
	n->older = m;
	/* Another thread's answer won: it is as good as ours. */
	if (!__atomic_compare_exchange_n(&db->self_memo, &n->older, n, 0,
					 __ATOMIC_RELEASE, __ATOMIC_RELAXED))
		free(n);
}

/* The page ldr_self_epoch keeps its number in: the kernel hands a
 * child a zeroed copy, so a child finds 0 there without asking who it
 * is. WIPE_NONE: the kernel cannot (no MADV_WIPEONFORK) or there was no
 * page to have (mmap failed): getpid says. */
#define WIPE_NONE ((uint64_t *)1)

static int wipe_on_fork(void *p, size_t size)
{
#ifdef MADV_WIPEONFORK
	return madvise(p, size, MADV_WIPEONFORK) == 0;
#else
	(void)p;
	(void)size;
	return 0;
#endif
}

static uint64_t *wiped_page(larder *db)
{
	uint64_t *w = __atomic_load_n(&db->epoch_page, __ATOMIC_ACQUIRE);
	if (w)
		return w;
	size_t size = (size_t)sysconf(_SC_PAGESIZE);
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uint64_t *n = WIPE_NONE;
	if (p != MAP_FAILED && wipe_on_fork(p, size))
		n = p;
	else if (p != MAP_FAILED)
		munmap(p, size);
	/* Another thread's page won: ours goes. */
	if (!__atomic_compare_exchange_n(&db->epoch_page, &w, n, 0,
					 __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
		if (n != WIPE_NONE)
			munmap(n, size);
		return w;
	}
	return n;
}

uint64_t ldr_self_epoch(larder *db)
{
	uint64_t *w = wiped_page(db);
	if (w == WIPE_NONE)
		return (uint64_t)getpid();
	uint64_t e = __atomic_load_n(w, __ATOMIC_ACQUIRE);
	if (e)
		return e;
	/* A fresh process (or this handle's first call): the next number
	 * of a counter that is not wiped, so a child's is past every one
	 * its parent had handed out when it forked (and never 0). */
	uint64_t next =
	    __atomic_add_fetch(&db->epoch_next, 1, __ATOMIC_RELAXED);
	if (__atomic_compare_exchange_n(w, &e, next, 0, __ATOMIC_ACQ_REL,
					__ATOMIC_ACQUIRE))
		return next;
	return e; /* another thread's number stands */
}

void ldr_self_cached_free(larder *db)
{
	if (db->epoch_page && db->epoch_page != WIPE_NONE)
		munmap(db->epoch_page, (size_t)sysconf(_SC_PAGESIZE));
	db->epoch_page = NULL;
	struct ldr_self_memo *m = db->self_memo;
	db->self_memo = NULL;
	while (m) {
		struct ldr_self_memo *older = m->older;
		free(m);
		m = older;
	}
}
