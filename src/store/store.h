/*
 * store.h — the store handle (struct larder) and what store.c owns: its
 * log and counters, per-handle slots and hooks for the layers above,
 * entry and head naming, namespace checks, and safe paths beneath the
 * root. The store layer's other files have their own headers.
 *
 * On-disk layout (docs/format.md):
 *   DIR/larder-store                    marker: format, fsync policy, mode
 *   DIR/ns/<ns>/config                  namespace defaults (ttl)
 *   DIR/ns/<ns>/e/<h0h1>/<h2h3>/<hex32> entries, named by H(ns, key, ver)
 *   DIR/ns/<ns>/h/<h0h1>/<h2h3>/<hex32> head hints, named by H(ns, key)
 *   DIR/quarantine/                     entries that failed verification
 */
#ifndef LARDER_STORE_H
#define LARDER_STORE_H

#include <dirent.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/stat.h>

#include "err.h"
#include "fmt.h"
#include "naming.h"
#include "slot.h"
#include "larder.h"

#define LDR_MARKER "larder-store"
#define LDR_STORE_FORMAT 1
#define LDR_DEFAULT_MMAP (64u << 10)
#define LDR_DEFAULT_MAX_DECOMPRESSED ((uint64_t)1 << 30) /* larder.h */
#define LDR_NS_SEEN 32 /* namespaces a handle remembers as checked */

/* A layer above the store that keeps state per handle hangs it on a slot
 * under a key of its own (the address of a static in its file), with a
 * destructor that larder_close calls (last set, first destroyed). */
#define LDR_SLOTS 8
struct ldr_slot {
	const void *key;
	void *ptr;
	void (*destroy)(void *ptr);
};

/* What the store calls in the layers above, installed by the facade at
 * open (src/larder.c); a NULL hook is not called. */
struct ldr_hooks {
	/* A publish of entry `name` (its hex name) in ns is done: upkeep
	 * looks at the caps and the free space and cleans if need be. */
	void (*published)(larder *db, const char *ns, const char *name);
	/* The free space is below the stop watermark and a publish is
	 * about to be refused: clean now (the store looks again after). */
	void (*space_low)(larder *db);
};

/* Size classes of payloads (powers of two, from under 128 KiB to 512
 * MiB and more) and ways of loading them (mapped, mapped with its pages
 * populated, read) a handle learns the costs of (file.c). */
#define LDR_LOAD_CLASSES 13
#define LDR_LOAD_WAYS 3

/* An open entry or head directory ("ns/<ns>/e", "ns/<ns>/h") of the
 * handle (file.c). A slot
 * is filled once and retired once, never reused: a reader that saw it
 * ready may use its fd until larder_close, which alone closes it. */
#define LDR_EDIRS 16
#define LDR_EDIR_REL 96
enum { LDR_EDIR_FREE, LDR_EDIR_FILLING, LDR_EDIR_READY, LDR_EDIR_RETIRED };
struct ldr_edir {
	int state; /* LDR_EDIR_*, atomic */
	int fd;
	size_t len; /* of rel */
	char rel[LDR_EDIR_REL];
	dev_t dev;
	ino_t ino;
	int64_t checked_ms; /* ldr_coarse_ms() of the last look, atomic */
};

/* Namespaces whose default TTL a handle keeps (config.c). */
#define LDR_TTL_MEMO 8

struct larder {
	char *dir;
	int rootfd;
	unsigned flags;
	int fsync; /* enum larder_fsync, never DEFAULT */
	/* The store's mode and what follows from it (docs/security.md):
	 * fmode the store's file bits, dmode its directories', topmode the
	 * top directory's, romode what never changes once published
	 * (entries, heads), ownmode the files of one writer (marker,
	 * config, leases). */
	mode_t fmode, dmode, topmode, romode, ownmode;
	uid_t owner; /* the store directory's owner (docs/security.md) */
	size_t mmap_threshold;
	/* What a verified whole load of a safe file of each size class has
	 * cost lately, each way (file.c, "Map or read"): ns, a moving
	 * average, and how many loads it has seen. Relaxed atomics: a lost
	 * update only slows the learning. */
	uint64_t load_ns[LDR_LOAD_WAYS][LDR_LOAD_CLASSES];
	uint32_t load_n[LDR_LOAD_WAYS][LDR_LOAD_CLASSES];
	uint32_t load_tick;
	/* tests: 0 learn, else always this way (1 map, 2 read, 3 map and
	 * populate; a payload past the read ceiling is mapped for 2) */
	int load_force;
	/* larder_get() holds at most this many decompressed bytes */
	uint64_t max_in_memory;
	larder_log_fn log;
	void *log_payload;
	int log_level;
	int said_newer;	       /* "newer format" is logged once per handle */
	int said_unremembered; /* "cannot remember file hashes", once */
	int said_config;       /* "ignoring DIR/config", once */
	/* Namespaces whose directories were found safe (store.c): hashes
	 * of their names, 0 = free slot. */
	uint64_t ns_seen[LDR_NS_SEEN];
	unsigned ns_seen_next;
	/* Namespaces' entry and head directories held open, so that a hit
	 * opens "xx/yy/<hex>" from its namespace's directory rather than
	 * walk six components from the root (file.c, ldr_file_load_held). */
	struct ldr_edir edir[LDR_EDIRS];
	int network; /* the store is on a network filesystem */
	char host[64];
	uint64_t ctr[LARDER_CTR_COUNT];
	struct ldr_stats *stats;     /* stats.c: pending usage, flush state */
	struct ldr_recency *recency; /* touches and free space (recency.c) */
	struct ldr_memo *memo;	     /* verified entries (memo.c), or NULL */
	struct ldr_heads *heads;     /* heads read (head.c), or NULL */
	/* Small entries' read buffers, reused (file.c, "Reused buffers"),
	 * or NULL. */
	struct ldr_bufs *bufs;
	int head_hints; /* the last head read was a hint file (head.c) */
	/* What the layers above keep per handle (ldr_slot_get) */
	pthread_mutex_t slot_mu;
	struct ldr_slot slots[LDR_SLOTS];
	unsigned nslots;
	struct ldr_hooks hooks; /* set once, at open */
	/* The storage seam (backend.h, docs/backends.md): where fill and
	 * the public API reach storage, set by the facade at open. be_own:
	 * it is this handle's own directory, whose read and publish paths
	 * are read.c's and publish.c's (a hit pays no indirection). */
	struct ldr_backend *be;
	int be_own;
	/* be is a tier whose near tier is this directory (tier.c): a
	 * lookup tries it through read.c's own path first (the memo
	 * included), and goes through be on a near miss. */
	int be_near;
	/* Who this process is, read once (backend.c, ldr_self_cached). */
	struct ldr_self_memo *self_memo;
	/* This process's number for the handle (self.c, ldr_self_epoch):
	 * the page a child gets wiped, and the counter it is drawn from. */
	uint64_t *epoch_page;
	uint64_t epoch_next;
	/* Namespaces' default TTLs read lately (config.c, ldr_ns_ttl):
	 * under ttl_mu, with ttl_gen counting this handle's changes. */
	pthread_mutex_t ttl_mu;
	struct ldr_ns_ttl_memo {
		char ns[LARDER_NS_MAX + 1]; /* "": free */
		int64_t ttl, at_ms;
	} ttl_memo[LDR_TTL_MEMO];
	unsigned ttl_next;
	uint64_t ttl_gen;
};

static inline void ldr_count(larder *db, int c)
{
	__atomic_fetch_add(&db->ctr[c], 1, __ATOMIC_RELAXED);
}

void ldr_log(larder *db, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Destroy what hangs on the slots (larder_close). */
void ldr_slots_clear(larder *db);
/* Install the hooks (the facade, at open, before the handle is shared). */
void ldr_hooks_set(larder *db, const struct ldr_hooks *hooks);

/* 0 if `ns` is a valid namespace name whose directories are safe to use:
 * else LARDER_EINVAL, or LARDER_EPERM for a symlink or a directory that
 * others may write (docs/security.md), recorded. Every call that takes a
 * namespace starts with it; the directories are looked at on the
 * handle's first use of the namespace only. */
int ldr_check_ns(larder *db, const char *ns);

/* The name only, its directories not looked at: 0 if ns is a valid
 * namespace name (internal: or the library's own), else LARDER_EINVAL,
 * recorded. */
int ldr_check_ns_name(larder *db, const char *ns, int internal);
/* As ldr_check_ns, and LDR_FILES_NS is accepted too. */
int ldr_check_ns_internal(larder *db, const char *ns);

/* Open the directory of rel beneath the root (no symlinks followed);
 * *base points at rel's last component. -1 with errno on failure. */
int ldr_open_parent(larder *db, const char *rel, const char **base);
/* The same; with note, a symlink on the way is logged (once a path). */
int ldr_open_parent_as(larder *db, const char *rel, const char **base,
		       int note);
/* Refuse rel for the symlinked directory on its way: LARDER_EPERM,
 * recorded, naming it. */
int ldr_refuse_symlink(larder *db, const char *rel);

/* lstat of rel beneath the root, following no symlink on the way. 0, or
 * -1 with errno (ELOOP: a symlinked directory on the way). */
int ldr_lstat(larder *db, const char *rel, struct stat *st);

/* Open directory rel beneath the root, creating it (and its parents) if
 * missing; bounded retries where a network filesystem lags behind
 * another client's mkdir. -1 with errno on failure. */
int ldr_open_dir(larder *db, const char *rel);

/* Move dfd/name to tdfd/tname only if it is the file (dev, ino): 1 if
 * it moved, 0 if it was gone or another file (left in place), -1 with
 * errno if the rename failed. */
int ldr_take_away(int dfd, const char *name, dev_t dev, ino_t ino, int tdfd,
		  const char *tname);

/* Remove the file at rel only if it is (dev, ino); 0 if it is gone (by
 * us or anyone), -1 with errno if it could not be removed. */
int ldr_remove_same(larder *db, const char *rel, dev_t dev, ino_t ino);
/* The same, saying who removed it: 1 this call, 0 it was gone already,
 * is another file now (left alone) or was taken by a sweeper while on its
 * way out, -1 with errno if it could not be removed. Between two callers
 * racing for one file, exactly one says 1. */
int ldr_remove_same_by_us(larder *db, const char *rel, dev_t dev, ino_t ino);

#endif
