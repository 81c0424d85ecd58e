/*
 * cmd_gc.c — `larder gc`: clean the store now (expired entries, then
 * over quota or low space).
 */
#include <inttypes.h>
#include <string.h>

#include "cli.h"

static int gc_opt(struct cli *c, int id, const char *arg, void *ctx)
{
	(void)arg;
	if (id == 256) {
		*(int *)ctx = 1;
		return CLI_CONTINUE;
	}
	return cli_usage_err(c, "unknown option");
}

/* After cleaning one namespace: a cleaning of one namespace holds only
 * that namespace to the store's caps, so say when the store as a whole
 * is (or, after a dry run, would still be) past one. Best effort: if the
 * usage cannot be read, nothing is said. */
static void note_store_over(struct cli *c, larder *db, int dry,
			    const larder_gc_report *r)
{
	larder_limits l = LARDER_LIMITS_INIT;
	larder_stats *s = NULL;
	if (larder_limits_get(&l, db, NULL) != 0 ||
	    (!l.max_bytes && !l.max_entries) || larder_stats_read(&s, db) != 0)
		return;
	int64_t b, e;
	cli_usage_total(s, &b, &e);
	larder_stats_free(s);
	if (dry) {
		b -= (int64_t)r->bytes_freed;
		e -= (int64_t)(r->expired + r->superseded + r->evicted);
	}
	int bytes = cli_over_cap(b, l.max_bytes);
	if (!bytes && !cli_over_cap(e, l.max_entries))
		return;
	char msg[256];
	snprintf(msg, sizeof msg,
		 "the store as a whole %s over its cap of %" PRId64
		 " %s (%" PRId64 " %s): run 'larder gc' without --ns",
		 dry ? "would still be" : "is",
		 bytes ? l.max_bytes : l.max_entries,
		 bytes ? "bytes" : "entries", bytes ? b : e,
		 bytes ? "used" : "stored");
	fflush(stdout); /* after the report line, also through 2>&1 */
	cli_log(c, LARDER_LOG_WARN, msg);
}

/* gc cleans the store's own directory only: say so on a store with a
 * shared tier, and what keeps that one in bounds (docs/cli.md). */
static void note_shared(larder *db)
{
	const char *shared = larder_shared(db);
	if (!shared)
		return;
	fputs("shared tier ", stdout);
	out_text(stdout, shared, strlen(shared));
	if (strstr(shared, "://"))
		fputs(": not cleaned by gc; Redis removes entries by their "
		      "TTLs and its maxmemory-policy\n",
		      stdout);
	else {
		fputs(": not cleaned by this gc; run 'larder --dir ", stdout);
		out_text(stdout, shared, strlen(shared));
		fputs(" gc' (on one host)\n", stdout);
	}
}

static int run_gc(struct cli *c, int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"dry-run", no_argument, NULL, 256},
	    {0},
	};
	int dry = 0, first;
	larder *db = NULL;
	int rc = cli_parse(c, &cli_cmd_gc, argc, argv, "", longopts, gc_opt,
			   &dry, &first);
	if (rc != CLI_CONTINUE)
		return rc;
	if (first < argc)
		return cli_usage_err(c, "unexpected argument '%s'",
				     argv[first]);
	/* Each entry removed (or that would be) is an info line of the log:
	 * shown by --dry-run and -v unless --log-level says otherwise. */
	if ((dry || c->verbose) && !c->log_level)
		c->log_level = LARDER_LOG_INFO;
	rc = cli_open(c, &db, NULL);
	if (rc != CLI_OK)
		return rc;
	larder_gc_report r = LARDER_GC_REPORT_INIT;
	unsigned flags = LARDER_GC_LOG_EACH | (dry ? LARDER_GC_DRY_RUN : 0);
	rc = larder_gc(&r, db, c->ns_given ? c->ns : NULL, flags);
	if (rc) {
		rc = cli_fail(c, db, rc);
		larder_close(db);
		return rc;
	}
	if (r.skipped)
		printf("skipped: another process is cleaning this store\n");
	else
		printf("%s%" PRIu64 " entries (%" PRIu64
		       " bytes) seen; %s%" PRIu64 " expired, %" PRIu64
		       " superseded, %" PRIu64 " least recently used, %" PRIu64
		       " stale files of crashed processes; %" PRIu64
		       " bytes freed\n",
		       dry ? "dry run: " : "", r.seen_entries, r.seen_bytes,
		       dry ? "would remove " : "removed ", r.expired,
		       r.superseded, r.evicted, r.swept,
		       r.bytes_freed + r.swept_bytes);
	if (c->ns_given && !r.skipped)
		note_store_over(c, db, dry, &r);
	note_shared(db);
	larder_close(db);
	return out_finish(c, stdout);
}

const struct cli_cmd cli_cmd_gc = {
    .name = "gc",
    .run = run_gc,
    .summary = "clean the store: expired, then over quota or low space",
    .usage = "[--ns NS] [--dry-run]",
    .help = "Remove expired entries and, when the store or a namespace is "
	    "over its cap or\nthe filesystem below the cull watermark, "
	    "superseded versions and then the\nleast recently used entries, "
	    "down to 90% of the cap (or until the run\nwatermark is free). "
	    "One cleaner at a time: if another process is cleaning,\nthis "
	    "says so and does nothing. Readers holding an entry keep its "
	    "data.\n"
	    "On a store with a shared tier, only the store's own (near) "
	    "directory is\ncleaned, and a last line says so: a shared "
	    "directory is cleaned by running\n'larder gc' on it (one host "
	    "is enough); Redis is never cleaned by larder:\nit expires "
	    "entries by their TTLs and evicts by its maxmemory-policy\n"
	    "(docs/redis.md).\n\n"
	    "Options:\n"
	    "  --ns NS     only this namespace (held to its own caps; a "
	    "warning says\n"
	    "              when the store as a whole stays over its cap)\n"
	    "  --dry-run   remove nothing; list what would go (as info log "
	    "lines)\n",
};
