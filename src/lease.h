/*
 * lease.h — the per-key lease of DESIGN §7: acquire by link() of a
 * pre-filled record, heartbeat, observer-relative staleness, the same-host
 * fast path, break by rename + re-check, release of only our own file.
 *
 * Depends on nothing but err.h and fsutil.h: the caller passes the
 * directory (an fd) and the lease's file name.
 */
#ifndef LARDER_LEASE_H
#define LARDER_LEASE_H

#include <stdint.h>
#include <sys/types.h>

/* What a lease file says, plus its inode. */
struct ldr_lease_rec {
	char host[64];
	char boot[40];
	uint64_t pidns;
	long pid;
	uint64_t start; /* process start time, clock ticks since boot */
	char nonce[33];
	uint64_t lease_ms;
	uint64_t counter;
	ino_t ino;
};

/* Who we are, for records and for the same-host fast path. */
struct ldr_self {
	char host[64];
	char boot[40];
	uint64_t pidns;
	long pid;
	uint64_t start;
	int proc_ok; /* /proc shows our own pid namespace */
};
void ldr_self_get(struct ldr_self *me, const char *host);

typedef struct ldr_lease ldr_lease;

/* Try to take the lease `name` in directory dirfd, a file of exactly
 * `mode`. 0: held, heartbeat running (every heartbeat_ms, rewriting the
 * record in place through the fd that created it, so the mode needs no
 * write bit but the owner's). 1: someone else holds it, their record in
 * *holder. Negative: an error, errno set. */
int ldr_lease_acquire(int dirfd, const char *name, mode_t mode,
		      const struct ldr_self *me, uint64_t lease_ms,
		      uint64_t heartbeat_ms, ldr_lease **out,
		      struct ldr_lease_rec *holder);

/* Whether the lease file is still ours (the ownership check before
 * publish). */
int ldr_lease_held(ldr_lease *l);

/* Stop the heartbeat and remove the lease file if it is still ours. */
void ldr_lease_release(ldr_lease *l);

/* Read the lease file: 0, or -1 with errno (ENOENT: no lease; EBADMSG:
 * unreadable, e.g. torn by a concurrent rewrite). */
int ldr_lease_read(int dirfd, const char *name, struct ldr_lease_rec *rec);

/* Same host (boot id and pid namespace) and the holder's process is gone
 * or is another process with its pid: the lease is certainly stale. */
int ldr_lease_dead_here(const struct ldr_lease_rec *rec,
			const struct ldr_self *me);

/* Break the lease if it is still exactly `observed`: rename it to a break
 * name, re-check, unlink. 1 if this call broke it; 0 if it was gone or had
 * changed (then it is not put back: its holder sees it lost). */
int ldr_lease_break(int dirfd, const char *name,
		    const struct ldr_lease_rec *observed, const char *host);

#endif
