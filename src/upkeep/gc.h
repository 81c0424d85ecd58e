/*
 * gc.h — limits, recency and cleaning (src/upkeep/gc.c), as the rest of the
 * library sees them: the handle's cached configuration, the touch on a
 * hit, the free-space check before a publish and the cleaning a publish
 * may start.
 */
#ifndef LARDER_GC_H
#define LARDER_GC_H

#include <stdint.h>

#include "larder.h"

/* Set up and free the handle's state (db->gc). 0 or LARDER_ENOMEM. */
int ldr_gc_open(larder *db);
void ldr_gc_close(larder *db);

/* A hit on the entry open at fd, named by hash: refresh its access time
 * if it is older than the touch interval. Costs no syscall when this
 * handle touched or checked that entry within the interval. Failures
 * (not the owner, read-only filesystem) are ignored: a read never fails
 * because of a touch. */
void ldr_touch(larder *db, int fd, const uint8_t hash[16]);

/* Before a publish: LARDER_EFULL (recorded, counted) when the store's
 * filesystem is below the stop watermark; 0 otherwise. Looks at the
 * filesystem at most once a second per handle. */
int ldr_space_check(larder *db);

/* After a publish in ns of the entry file `name` (32 hex digits; its
 * usage already added): if a cap or the cull watermark is crossed, clean
 * (unless another process is cleaning), never removing that entry.
 * Never fails the publish. */
void ldr_after_publish(larder *db, const char *ns, const char *name);

#endif
