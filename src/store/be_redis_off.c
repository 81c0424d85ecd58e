/*
 * be_redis_off.c — the Redis backend in a build without it
 * (LARDER_WITH_REDIS off): its table, whose open refuses with a message
 * that says so, as the SQL sources do (docs/architecture.md).
 */
#include <stdio.h>
#include <string.h>

#include "backend.h"
#include "err.h"
#include "tier.h"

static int off_open(struct ldr_backend **out, larder *db, const char *where)
{
	*out = NULL;
	return ldr_fail(db, LARDER_EINVAL, 0,
			"cannot open a %.*s tier: larder was built without "
			"Redis support (LARDER_WITH_REDIS)",
			(int)strcspn(where, ":"), where);
}

/* Without the parser (it is in redis_conn.c, built with hiredis), a URI
 * passes here; opening it says why it cannot be used. */
int ldr_redis_check(larder *db, const char *uri)
{
	(void)db;
	(void)uri;
	return 0;
}

/* Never called: no Redis backend opens in this build. */
void ldr_be_redis_where(const struct ldr_backend *be, const uint8_t hash[16],
			char *out, size_t size)
{
	(void)be;
	(void)hash;
	snprintf(out, size, "redis");
}

const struct ldr_backend_ops ldr_be_redis_ops = {
    .version = LDR_BACKEND_VERSION,
    .kind = "redis",
    .open = off_open,
};
