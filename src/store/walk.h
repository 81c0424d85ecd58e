/*
 * walk.h — walking the store's directories, namespaces and entry files
 * (walk.c).
 */
#ifndef LARDER_WALK_H
#define LARDER_WALK_H

#include <stddef.h>
#include <stdint.h>
#include <dirent.h>

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

#endif
