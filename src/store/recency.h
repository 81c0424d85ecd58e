/*
 * recency.h — the store's recency and room (recency.c): touch on hit,
 * the free-space state and check, and the store's limits.
 */
#ifndef LARDER_RECENCY_H
#define LARDER_RECENCY_H

#include <stdint.h>

#include "store.h"

int ldr_recency_init(larder *db);
void ldr_recency_fini(larder *db);

/* Note a hit on the entry open at fd (its name's hash): its access time
 * moves to now unless this handle or another did so within the touch
 * interval. Cheap when it need not: a table lookup. */
void ldr_touch(larder *db, int fd, const uint8_t hash[16]);
/* Whether a hit on the entry named hash would look at its access time
 * now (ldr_touch): the memo serves a hit only when not, so that a hot
 * entry's recency still moves for the cleaning. */
int ldr_touch_due(larder *db, const uint8_t hash[16]);
/* ldr_touch_due with the clock read already: now_ms is ldr_coarse_ms(). */
int ldr_touch_due_at(larder *db, const uint8_t hash[16], int64_t now_ms);

/* Before a publish: 0, or LARDER_EFULL (recorded, counted) when the free
 * space stays below the stop watermark after the space_low hook ran. */
int ldr_space_check(larder *db);
/* Which watermark the free space is under (0 none, 1 cull, 2 stop),
 * looked at once a second at most; *fresh: looked at by this call. */
int ldr_space_state(larder *db, int *fresh);
/* Look again next time (after a cleaning). */
void ldr_space_stale(larder *db);

/* The store filesystem's room. */
struct ldr_space {
	uint64_t total, avail;	/* bytes */
	uint64_t files, favail; /* files; files 0 = not counted */
};
/* Look at it now (fstatvfs): 0, or -1 with errno. */
int ldr_space_get(larder *db, struct ldr_space *sp);
/* Which watermark of l free space is under: 0 none, 1 cull, 2 stop; *pct
 * the lower of the free percentages, *files whether it is the files'. */
int ldr_space_below(const struct ldr_space *sp, const larder_limits *l,
		    double *pct, int *files);

/* The store's limits in DIR/config (caps, watermarks, touch interval),
 * re-read when older than two seconds or with force. 0. */
int ldr_store_limits(larder *db, int force, larder_limits *out);

#endif
