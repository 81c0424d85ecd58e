/*
 * lease.h — the per-key lease of docs/leases.md: acquire by link() of a
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

/* The lease lengths a record may claim (docs/leases.md, "Garbage at a
 * lease's name"): 1 ms to 1 hour. larder_get_or_fill() refuses longer
 * leases, so a record outside this range was not written by a live
 * filler. */
#define LDR_LEASE_MIN_MS 1
#define LDR_LEASE_MAX_MS (3600 * 1000)

/* How much of a lease file is read and compared: a record is about 300
 * bytes; a longer file is garbage anyway. */
#define LDR_LEASE_TEXT_MAX 512

/* What a waiter saw at a lease's name: the record, if it is a plausible
 * one, and what tells whether anything there changed since (identity,
 * mtime, and for a regular file its first bytes). */
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
	/* NULL for a plausible record; else why it is not one ("a
	 * directory", "not a lease record", ...): garbage, whose record
	 * fields above are zero. */
	const char *garbage;
	dev_t dev;
	mode_t type; /* the S_IFMT bits */
	off_t size;
	int64_t mtime_ns;
	size_t len; /* bytes of text read (regular files only) */
	char text[LDR_LEASE_TEXT_MAX];
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

/* Look at what is at the lease's name, never following a symlink and
 * never opening anything but a regular file (a FIFO there cannot hang
 * us). 0: a plausible lease record, in *rec. 1: something else is there
 * (empty, unparsable, another format, a lease length outside
 * LDR_LEASE_MIN_MS..LDR_LEASE_MAX_MS, a directory, a FIFO, a symlink, a
 * file we may not read, or one torn by a concurrent rewrite):
 * rec->garbage says what, and rec holds what tells a change. -1 with
 * errno: nothing could be seen (ENOENT: no lease). */
int ldr_lease_read(int dirfd, const char *name, struct ldr_lease_rec *rec);

/* Whether two looks saw the very same thing: the same file (device,
 * inode, type), unchanged (size, mtime, bytes). A live holder's
 * heartbeat changes its bytes. */
int ldr_lease_same(const struct ldr_lease_rec *a,
		   const struct ldr_lease_rec *b);

/* Same host (boot id and pid namespace) and the holder's process is gone
 * or is another process with its pid: the lease is certainly stale. */
int ldr_lease_dead_here(const struct ldr_lease_rec *rec,
			const struct ldr_self *me);

/* Break the lease if it is still exactly `observed` (a record or
 * garbage): rename it to a break name, re-check, remove it. Breakers of
 * one lease take turns (an exclusive flock on the file or directory
 * judged stale, from the last look to the rename), so that only one of
 * them moves the name. 1 if this call broke it; 0 if it was gone or had
 * changed (then it is not put back: its holder sees it lost);
 * LDR_LEASE_BREAKING if another breaker holds the turn: wait for the name
 * to change, as for a live holder.
 * A directory moved away is removed with what it holds
 * (ldr_lease_discard); if that fails, the break name stays for the sweep,
 * and the lease's name is free all the same. */
#define LDR_LEASE_BREAKING 2
int ldr_lease_break(int dirfd, const char *name,
		    const struct ldr_lease_rec *observed, const char *host);

/* Remove name in dirfd whatever it is: a file, FIFO, socket or symlink
 * (never followed, never opened) is unlinked; a directory is emptied
 * first, depth first, to LDR_LEASE_DISCARD_DEPTH levels. 0, or -1 with
 * errno (ENOENT: nothing was there; otherwise what could not be removed
 * stays). */
#define LDR_LEASE_DISCARD_DEPTH 16
int ldr_lease_discard(int dirfd, const char *name);

#endif
