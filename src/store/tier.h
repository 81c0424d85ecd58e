/*
 * tier.h — a near tier in front of a shared one (tier.c,
 * docs/backends.md "Tiers"), and the shared tier's configuration: the
 * `shared` line of DIR/config, LARDER_SHARED, larder_opts.shared.
 */
#ifndef LARDER_TIER_H
#define LARDER_TIER_H

#include <stddef.h>

#include "backend.h"

/* The shared tier failed at `op` with rc (its message recorded on
 * be->db): counted, logged once per outage, marked down for a back-off. */
void ldr_tier_failed(struct ldr_backend *be, const char *op, int rc);

/* The shared tier of a tier backend as shown to people (its password
 * masked); NULL for any other backend. */
const char *ldr_tier_shown(const struct ldr_backend *be);

/* End the shared tier's back-off now, as if it had run out (tests): the
 * back-off it was in, in ms (0: none, or not a tier). */
unsigned ldr_tier_retry_now(struct ldr_backend *be);

/* The shared tier of db->be, for a tool that asks for it by name (a
 * walk or an inspect of LARDER_WALK_SHARED): opened now if it is not
 * yet, whatever its back-off, since the caller wants this tier's answer
 * and no other. 0 and *out, or the error, recorded: LARDER_EINVAL when
 * the store has no shared tier, else why it cannot be opened. */
int ldr_tier_shared(larder *db, struct ldr_backend **out);

/* The near tier's stats. */
int ldr_tier_near_stats(struct ldr_backend *be, struct ldr_be_stats *st);

/* 0 if `where` can name a shared tier (an absolute directory other than
 * the store, or a redis://, redis+sentinel:// or unix:// URI with a
 * host); else LARDER_EINVAL with a message naming it (masked). */
int ldr_shared_check(larder *db, const char *where);

/* 0 if uri parses as the Redis backend reads it (redis_conn.c: every
 * query setting known and in range); else LARDER_EINVAL, the message
 * naming the setting. Always 0 in a build without Redis. */
int ldr_redis_check(larder *db, const char *uri);

/* The shared tier this handle is to use, into out: `given` if not NULL
 * (larder_opts.shared), else LARDER_SHARED if set, else the `shared` line
 * of DIR/config; "" for none. 0, or an error, recorded. */
int ldr_shared_configured(larder *db, const char *given, char *out,
			  size_t size);

/* Write the `shared` line of DIR/config (the owner's only; "" or NULL
 * removes the tier), after checking where: a URI whole, by the backend's
 * own parser, so that a misspelt setting is refused now rather than
 * stored for a tier that never opens. */
int ldr_shared_set(larder *db, const char *where);

/* Hang the backend the handle is to use on db->be (the facade, at open):
 * the tier, when the store has a shared tier (ldr_shared_configured),
 * else the store's own directory (db->be_own). */
int ldr_tier_hang(larder *db, const larder_opts *opts);

#endif
