/*
 * larder.c — the facade: larder_open and larder_close wire the layers
 * together (docs/architecture.md). The store opens itself (counters and
 * recency included), and its directory backend is hung on the handle as
 * the seam every get, put and fill goes through (docs/backends.md);
 * upkeep hangs its state on a slot and is called
 * through the hooks installed here, so that no file below calls up.
 * Sources keep their own state on slots, made on first use.
 */
#include "larder.h"

#include <stdio.h>

#include "backend.h"
#include "gc.h"
#include "open.h"
#include "store.h"
#include "tier.h"

/* A failure after the handle was made: its message is the open's
 * (larder_errmsg(NULL)), since the handle goes. */
static int open_failed(larder *db, int rc)
{
	char msg[1024];
	snprintf(msg, sizeof msg, "%s", larder_errmsg(db));
	int e = larder_errno(db);
	larder_close(db);
	return *msg ? ldr_fail(NULL, rc, e, "%s", msg) : rc;
}

int larder_open(larder **out, const char *dir, const larder_opts *opts)
{
	larder *db;
	*out = NULL;
	int rc = ldr_store_open(&db, dir, opts);
	if (rc)
		return rc;
	if ((rc = ldr_gc_open(db)) != 0)
		return open_failed(db, rc);
	/* The seam: the store's own directory, through its root fd, or a
	 * tier of it in front of the store's shared tier. */
	if ((rc = ldr_tier_hang(db, opts)) != 0)
		return open_failed(db, rc);
	struct ldr_hooks hooks = {
	    .published = ldr_after_publish,
	    .space_low = ldr_gc_space_low,
	};
	ldr_hooks_set(db, &hooks);
	ldr_forget_errors(db); /* a closed handle's, at the same address */
	*out = db;
	return 0;
}

void larder_close(larder *db)
{
	/* The slots first (the upper layers' state), then the store. */
	ldr_store_close(db);
}
