/*
 * backend.h — the storage seam (docs/backends.md): a versioned table of
 * the operations every backend implements — the directory (be_dir.c) and
 * Redis (be_redis.c) — so that fill, the tiers and the public API reach
 * storage through one interface.
 *
 * Every backend stores whole entries in the format of docs/format.md
 * (header, payload, checksums), whatever the medium. A backend's read
 * yields a struct ldr_file (a file, or a buffer with fd -1); the caller
 * judges it with ldr_entry_check. A backend never says "good" on its own,
 * and a buffer from anything but the local directory has safe = 0, so its
 * payload is always hashed.
 *
 * A caller checks ops->version before it uses an operation added in a
 * later version of the table; a backend written for an older version
 * leaves those pointers NULL and the caller falls back as each says.
 */
#ifndef LARDER_BACKEND_H
#define LARDER_BACKEND_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "file.h"
#include "larder.h"
#include "lease.h"
#include "naming.h"

/* 2: read_many. 3: stage_commit_lease, stage_commit_many, head_get_many,
 * and lease_acquire's look. 4: lease_acquire_read. */
#define LDR_BACKEND_VERSION 4

/* Every backend's handle, stage and lease begin with these, so that the
 * caller can reach the table from any of them. */
struct ldr_backend {
	const struct ldr_backend_ops *ops;
	larder *db; /* the handle it serves: errors, counters, options */
};

struct ldr_stage {
	struct ldr_backend *be;
};

struct ldr_be_lease {
	struct ldr_backend *be;
	unsigned flags; /* LDR_BE_LEASE_* below; 0 from older backends */
};

/* A lease's flags: acquired in the same step as a look that found no
 * entry of the name (Redis's script): the caller need not look again. */
#define LDR_BE_LEASE_LOOKED 0x1u

/* A wait for a publish of one name, from wait_begin to wait_end: what a
 * backend keeps between two sleeps (dir: the inotify watches and the
 * backoff; Redis: the subscription). */
struct ldr_be_wait {
	struct ldr_backend *be;
};

/* What a waiter saw of a lease (observe): enough to tell a change and to
 * judge staleness, with no clock compared across hosts. */
struct ldr_be_holder {
	struct ldr_lease_rec rec; /* host, boot, pidns, pid, nonce, ... */
	uint64_t token;		  /* its fencing token (0: none) */
	/* The lease's remaining life as the backend's own clock judges it
	 * (Redis: PTTL); -1: the backend does not know, and the waiter
	 * judges staleness by "unchanged for a lease period" (dir). */
	int64_t ttl_ms;
	/* The holder is certainly gone, as the backend judged it at this
	 * look (a holder on this host and boot whose process is gone). */
	int dead;
	/* Nothing could be seen of the holder (the look failed): the
	 * caller waits, judging nothing from this look. */
	int blind;
};

/* Whether two looks at a lease saw the very same holder, unchanged (a
 * live holder's renewals change what a look sees). */
int ldr_be_holder_same(const struct ldr_be_holder *a,
		       const struct ldr_be_holder *b);

struct ldr_be_stats {
	uint64_t bytes, entries; /* usage, where the backend knows it */
	uint64_t bytes_max;	 /* its limit (maxmemory, caps); 0 none */
	uint64_t evicted;	 /* evicted by the engine (Redis) */
	int reachable;		 /* 0: the last call failed or timed out */
};

/* lease_acquire: this store cannot hold a lease of ours */
#define LDR_BE_LEASE_NONE 2
/* lease_acquire (version 3, a backend that looks in the same step): an
 * entry of the name stands, whole as far as the backend can tell without
 * reading it; no lease was taken, read it */
#define LDR_BE_LEASE_ENTRY 3

/* wait: max_ms passed, nothing to look at yet */
#define LDR_BE_WAIT_MORE 1

/* stage_commit flags */
#define LDR_BE_NO_HEAD 0x1u /* do not move the head (a lost lease) */

/* caps */
#define LDR_BE_MAP 0x1u		/* read may map (dir on a safe file) */
#define LDR_BE_LINKED_HEAD 0x2u /* a head can be the entry (format.md) */
#define LDR_BE_NOTIFY 0x4u	/* wait is woken by publishes */
#define LDR_BE_SHARED 0x8u	/* other hosts see it (network fs, Redis) */

struct ldr_backend_ops {
	unsigned version; /* LDR_BACKEND_VERSION it was written for */
	const char *kind; /* "dir", "redis" */
	unsigned caps;	  /* LDR_BE_* above */

	/* Open the backend at `where` (a directory, a redis:// URI) for
	 * the handle db. 0 or a LARDER_E* code, recorded. */
	int (*open)(struct ldr_backend **out, larder *db, const char *where);
	void (*close)(struct ldr_backend *be);

	/* Read the entry named n (n->ver set) into f, as `how` says
	 * (LDR_LOAD_WHOLE, _STREAM, _SCAN); `pre` bytes before the payload
	 * as ldr_file_load's. 0, LARDER_ENOTFOUND, or an error, recorded.
	 * The caller verifies f with ldr_entry_check and calls reject()
	 * when it is bad, then ldr_file_free. */
	int (*read)(struct ldr_backend *be, const struct ldr_name *n, int how,
		    size_t pre, struct ldr_file *f);
	/* The entry judged bad at the name n, still the one read into f:
	 * quarantine it (dir) or delete it if unchanged (Redis). */
	void (*reject)(struct ldr_backend *be, const struct ldr_name *n,
		       const struct ldr_file *f, const char *why);

	/* Publish, first writer wins: stage, write the stored payload,
	 * commit with the entry's header. commit returns 0 (this call
	 * published), LARDER_EXISTS (an intact entry of that name stands,
	 * and ours is dropped), or an error, with nothing visible. Either
	 * way the stage is freed by commit; abort frees it unpublished. */
	int (*stage_begin)(struct ldr_backend *be, const struct ldr_name *n,
			   const larder_put_opts *po, struct ldr_stage **out);
	int (*stage_write)(struct ldr_stage *s, const struct iovec *iov,
			   int iovcnt);
	int (*stage_commit)(struct ldr_stage *s, const void *hdr, size_t hlen,
			    unsigned flags, uint64_t token);
	void (*stage_abort)(struct ldr_stage *s);

	/* Remove the entry n if it is still the one read into `same` (dir:
	 * device and inode; Redis: its manifest's stage id; NULL: whatever
	 * is there), and its head if the head names it; n->ver NULL: the
	 * version the head names (looked up afresh, not from a cache). 1
	 * removed, 0 not there or changed, or an error. */
	int (*remove)(struct ldr_backend *be, const struct ldr_name *n,
		      const struct ldr_file *same);

	/* Head hints of (n->ns, n->key). get: the version the head names,
	 * malloc'ed in *ver; LARDER_ENOTFOUND when there is none. set:
	 * point it at n->ver, unless `token` is lower than the token of the
	 * head's last setter (a filler that lost its lease must not move it
	 * back); token 0 sets unconditionally (larder_put). drop: remove it
	 * if it still names n->ver. */
	int (*head_get)(struct ldr_backend *be, const struct ldr_name *n,
			uint8_t **ver, size_t *vlen);
	int (*head_set)(struct ldr_backend *be, const struct ldr_name *n,
			uint64_t token);
	int (*head_drop)(struct ldr_backend *be, const struct ldr_name *n);

	/* Leases, one per (ns, key) (docs/leases.md). acquire: 0 held,
	 * renewed every renew_ms by the backend until release, with its
	 * fencing token in *token (0 where the backend has none); 1 held
	 * by another, its holder in *h; LDR_BE_LEASE_NONE, no lease can be
	 * taken where leases live (a store this process may only read: the
	 * caller loads without one, quietly); or an error, recorded. held: 1
	 * still ours, 0 lost (the check before publishing). observe: 0 and *h,
	 * LARDER_ENOTFOUND when there is none. break: free it if it is
	 * still exactly *h: 1 broke it, 0 changed or gone, 2 another
	 * breaker holds the turn (wait as for a live holder). release: give
	 * it back if it is still ours, and free l. Since version 3 acquire
	 * may look for the entry n names in the same step: then it says
	 * LDR_BE_LEASE_ENTRY when one stands (nothing taken), and a lease
	 * it hands out has LDR_BE_LEASE_LOOKED (none stood when it was
	 * taken). */
	int (*lease_acquire)(struct ldr_backend *be, const struct ldr_name *n,
			     const struct ldr_self *me, uint64_t lease_ms,
			     uint64_t renew_ms, struct ldr_be_lease **out,
			     uint64_t *token, struct ldr_be_holder *h);
	int (*lease_held)(struct ldr_be_lease *l);
	int (*lease_observe)(struct ldr_backend *be, const struct ldr_name *n,
			     struct ldr_be_holder *h);
	int (*lease_break)(struct ldr_backend *be, const struct ldr_name *n,
			   const struct ldr_be_holder *h);
	void (*lease_release)(struct ldr_be_lease *l);

	/* Wait until the entry n may have been published, the lease of n
	 * may have changed, or max_ms passed: a hint to look again, never a
	 * promise (the caller reads and observes after it). wait_begin arms
	 * what wakes the wait (before the caller's last look, so that a
	 * publish in between is not missed); wait sleeps at most max_ms at
	 * a time: 0, look again now; LDR_BE_WAIT_MORE, max_ms passed before
	 * the backend's own pace asked for a look (the caller may call
	 * again without looking); or LARDER_ECANCELED when *cancel became
	 * non-zero. wait_end frees w. */
	int (*wait_begin)(struct ldr_backend *be, const struct ldr_name *n,
			  struct ldr_be_wait **out);
	int (*wait)(struct ldr_be_wait *w, uint64_t max_ms,
		    const volatile sig_atomic_t *cancel);
	void (*wait_end)(struct ldr_be_wait *w);

	/* The namespaces, and the entries of one: each entry's name hash
	 * and a string that locates it for messages. A callback's non-zero
	 * return stops the listing and is returned. */
	int (*list_ns)(struct ldr_backend *be, larder_ns_fn cb, void *p);
	int (*walk)(struct ldr_backend *be, const char *ns,
		    int (*cb)(const uint8_t hash[16], const char *where,
			      void *p),
		    void *p);

	int (*stats)(struct ldr_backend *be, struct ldr_be_stats *st);

	/* Since version 2. Read `count` entries as `read` reads each,
	 * whole (LDR_LOAD_WHOLE), with `pre` bytes before each: f[i] and
	 * rc[i] are what read would give for n[i], each its own (a miss or
	 * an error of one does not fail the others; the message recorded
	 * is the last failure's). For a backend where a request costs a
	 * round trip: Redis sends every manifest's GET before it reads the
	 * first reply, then every chunk's. NULL (also at version 2): the
	 * caller calls read for each. */
	void (*read_many)(struct ldr_backend *be, const struct ldr_name *n,
			  size_t count, size_t pre, struct ldr_file *f,
			  int *rc);

	/* Since version 3. A fill's commit with its lease l (taken from
	 * this backend, or for a tier from one of its own) in the same
	 * step: as stage_commit with l's fencing token, except that the
	 * head moves only if l is still held at the commit point, and l is
	 * given back there, published or not. Afterwards lease_held(l)
	 * says, without asking again, whether l was still held then, and
	 * lease_release(l) only frees it (unless the commit failed before
	 * it reached the backend: then it gives it back as usual). Redis
	 * does it in the commit's round trip, where the check before, the
	 * head and the release cost three more. NULL: the caller checks
	 * lease_held before, commits with the token (LDR_BE_NO_HEAD if it
	 * was lost) and releases after. */
	int (*stage_commit_lease)(struct ldr_stage *s, const void *hdr,
				  size_t hlen, unsigned flags,
				  struct ldr_be_lease *l);
	/* Since version 3. Commit n stages (of this backend, each begun and
	 * written), stage i with hdr[i] (hlen[i] bytes), each as
	 * stage_commit with `flags` and token 0 (larder_put_many): rc[i] is
	 * what stage_commit would give it, and every stage is freed. Redis
	 * sends every small entry's commit before it reads the first reply.
	 * NULL: the caller commits each. */
	void (*stage_commit_many)(struct ldr_stage **s, size_t n,
				  const void *const *hdr, const size_t *hlen,
				  unsigned flags, int *rc);

	/* Since version 3. head_get for n names at once: ver[i] (malloc'ed)
	 * and vlen[i] when rc[i] is 0, else rc[i] as head_get's. Redis
	 * sends every GET before it reads the first reply. NULL: the caller
	 * calls head_get for each. */
	void (*head_get_many)(struct ldr_backend *be, const struct ldr_name *n,
			      size_t count, uint8_t **ver, size_t *vlen,
			      int *rc);

	/* Since version 4. lease_acquire whose look also reads the entry
	 * that stands, so that a fill's first look is the lease's step
	 * (Redis: one round trip for an inline entry, a hit or a miss).
	 * As lease_acquire, except that with LDR_BE_LEASE_ENTRY the entry
	 * is read into f as read() would read it with LDR_LOAD_WHOLE and
	 * `pre`, and *frc is read()'s answer (0, LARDER_ENOTFOUND: gone
	 * between the look and the read, or an error); f is always set
	 * (fd -1 and nothing else where nothing was read) and the caller
	 * verifies and frees it as a read's. A tier looks at near first
	 * unless it is the handle's own directory (db->be_near: the caller
	 * looked there). NULL: the caller reads first and calls
	 * lease_acquire on a miss. */
	int (*lease_acquire_read)(struct ldr_backend *be,
				  const struct ldr_name *n,
				  const struct ldr_self *me, uint64_t lease_ms,
				  uint64_t renew_ms, struct ldr_be_lease **out,
				  uint64_t *token, struct ldr_be_holder *h,
				  size_t pre, struct ldr_file *f, int *frc);
};

/* The backends built in: "dir" always, "redis" when built with it; and
 * "tier" (tier.c), the handle's own directory in front of another. */
extern const struct ldr_backend_ops ldr_be_dir_ops;
extern const struct ldr_backend_ops ldr_be_redis_ops;
extern const struct ldr_backend_ops ldr_be_tier_ops;

/* The store handle a directory backend works on (its own handle on
 * another directory, or db itself), so that the walks of walk.c run
 * there as on the store's own directory. */
larder *ldr_be_dir_store(struct ldr_backend *be);

/* Where a Redis backend keeps the entry of name hash `hash`, as its walk
 * names it ("redis://host:port/db PREFIX{HASH}:m", password masked). */
void ldr_be_redis_where(const struct ldr_backend *be, const uint8_t hash[16],
			char *out, size_t size);
/* The next stage id a Redis backend hands out (tests, through
 * src/testing.h; built with Redis only). */
void ldr_test_redis_stage_id(struct ldr_backend *be, char out[33]);

/* Open the backend `where` names for the handle db: a redis://,
 * redis+sentinel:// or unix:// URI is Redis (LARDER_EINVAL, "built
 * without Redis support", in a build without it); NULL or "" is the
 * handle's own directory (its root fd reused, nothing opened again);
 * anything else, a store directory. 0 and *out, or a LARDER_E* code,
 * recorded on db. */
int ldr_backend_open(struct ldr_backend **out, larder *db, const char *where);
/* Close it (NULL is a no-op). */
void ldr_backend_close(struct ldr_backend *be);
/* (A tier is opened by its own table, ldr_be_tier_ops.open, by the
 * facade: tier.c opens its near and shared backends with
 * ldr_backend_open, so the dispatcher does not know tiers.) */

#endif
