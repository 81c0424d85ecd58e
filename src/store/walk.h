/*
 * walk.h — walking the store's directories, namespaces and entry files
 * (walk.c).
 */
#ifndef LARDER_WALK_H
#define LARDER_WALK_H

#include <stddef.h>
#include <stdint.h>
#include <dirent.h>

#include "file.h"
#include "store.h"

/* larder_ns_foreach for the library's own callbacks: their codes pass as
 * they are. */
int ldr_ns_foreach(larder *db, larder_ns_fn cb, void *payload);

/* Open directory `name` in dirfd (its path beneath the root: rel) for a
 * walk: 0 and *out; 1 if it is to be skipped: gone meanwhile, or, after a
 * warning naming it, a symlink, not a directory, or writable by others
 * (docs/security.md); -1 with errno for another failure. */
int ldr_walk_dir(larder *db, int dirfd, const char *name, const char *rel,
		 DIR **out);

/* Call cb for each entry file of namespace ns: its path beneath the root
 * and the hash its name claims. A non-zero return stops the walk and is
 * returned. */
int ldr_walk_files(larder *db, const char *ns,
		   int (*cb)(const char *rel, const uint8_t hash[16],
			     void *payload),
		   void *payload);

/* The same for the entries whose first fan-out directory, as a number,
 * is in [lo, hi) (0..256: a slice of the namespace, the hashes being
 * uniform). */
int ldr_walk_slice(larder *db, const char *ns, int lo, int hi,
		   int (*cb)(const char *rel, const uint8_t hash[16],
			     void *payload),
		   void *payload);

/* The same for the head files (ns/<ns>/h/) of the keys whose first
 * fan-out directory is in [lo, hi): the cleaning counts copied heads'
 * bytes (head.c). */
int ldr_walk_heads(larder *db, const char *ns, int lo, int hi,
		   int (*cb)(const char *rel, const uint8_t hash[16],
			     void *payload),
		   void *payload);

/* A walk of larder_walk or larder_inspect: the caller's flags and
 * callback, and the name hash the entry being judged is kept under. */
struct ldr_walk {
	larder *db;
	unsigned flags;
	larder_walk_fn cb; /* the caller's */
	void *payload;
	uint8_t want[16]; /* expected name hash, for MISPLACED */
};

/* larder_walk and larder_inspect of the near tier, the store's own
 * directory (walk_tier.c adds the shared tier's). */
int ldr_walk_near(larder *db, const char *ns, unsigned flags, larder_walk_fn cb,
		  void *payload);
int ldr_inspect_near(larder *db, const char *ns, const void *key, size_t klen,
		     const void *ver, size_t vlen, unsigned flags,
		     larder_walk_fn cb, void *payload);

/* Judge the entry loaded in f (at `at`, for messages) as walk w does:
 * info gets its header's fields, its state and problem; w->want is the
 * name hash it is kept under (else MISPLACED); *h its decoded header.
 * The state, or a negative code (recorded). */
int ldr_walk_judge(struct ldr_walk *w, const struct ldr_file *f, const char *at,
		   const char *ns, ldr_hdr *h, larder_entry_info *info);

#endif
