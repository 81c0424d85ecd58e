/*
 * be_redis_off.c — the Redis backend in a build without it
 * (LARDER_WITH_REDIS off): its table, whose open refuses with a message
 * that says so, as the SQL sources do (docs/architecture.md).
 */
#include "backend.h"
#include "err.h"

static int off_open(struct ldr_backend **out, larder *db, const char *where)
{
	(void)where;
	*out = NULL;
	return ldr_fail(db, LARDER_EINVAL, 0,
			"larder was built without Redis support "
			"(LARDER_WITH_REDIS)");
}

const struct ldr_backend_ops ldr_be_redis_ops = {
    .version = LDR_BACKEND_VERSION,
    .kind = "redis",
    .open = off_open,
};
