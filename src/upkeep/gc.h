/*
 * gc.h — caps and cleaning (src/upkeep/gc.c), as the facade wires them:
 * upkeep's per-handle state on a slot, and the two store hooks it
 * installs (store.h, struct ldr_hooks).
 */
#ifndef LARDER_GC_H
#define LARDER_GC_H

#include "store.h"

/* Hang upkeep's state on the handle's slot (freed by larder_close).
 * 0 or a recorded error. */
int ldr_gc_open(larder *db);

/* The `published` hook: after a publish in ns of the entry file `name`
 * (32 hex digits; its usage already added): if a cap or the cull
 * watermark is crossed, clean (unless another process is cleaning),
 * never removing that entry. Never fails the publish. */
void ldr_after_publish(larder *db, const char *ns, const char *name);

/* The `space_low` hook: clean the whole store now, the free space being
 * below the stop watermark (a publish is about to be refused). */
void ldr_gc_space_low(larder *db);

#endif
