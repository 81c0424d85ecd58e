/*
 * backend.c — the storage seam's own code (docs/backends.md, "The seam"):
 * choosing the backend a `where` string names, and what every caller of
 * the table needs about a lease's holder. (ldr_name_init is store.c's,
 * with the rest of the naming.)
 * The backends themselves are be_dir.c and be_redis.c (be_redis_off.c
 * in a build without Redis).
 */
#include "backend.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int is_redis(const char *where)
{
	static const char *const schemes[] = {"redis://", "redis+sentinel://",
					      "unix://"};
	for (size_t i = 0; i < sizeof schemes / sizeof *schemes; i++)
		if (!strncmp(where, schemes[i], strlen(schemes[i])))
			return 1;
	return 0;
}

int ldr_backend_open(struct ldr_backend **out, larder *db, const char *where)
{
	*out = NULL;
	const struct ldr_backend_ops *ops = &ldr_be_dir_ops;
	/* In a build without Redis, be_redis_off.c's table refuses it by
	 * name. (A strong symbol in both builds: a weak reference would not
	 * pull be_redis.o out of the static library.) */
	if (where && is_redis(where))
		ops = &ldr_be_redis_ops;
	return ops->open(out, db, where);
}

void ldr_backend_close(struct ldr_backend *be)
{
	if (be)
		be->ops->close(be);
}

int ldr_be_holder_same(const struct ldr_be_holder *a,
		       const struct ldr_be_holder *b)
{
	return a->token == b->token && ldr_lease_same(&a->rec, &b->rec);
}
