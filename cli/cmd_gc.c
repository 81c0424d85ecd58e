/*
 * cmd_gc.c — `larder gc` (clean the store now) and `larder config` (show
 * or change quotas, watermarks and the touch interval), and the size and
 * limit options `larder init` shares with them.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

int cli_parse_size(const char *s, int64_t *out)
{
	char *end;
	if (!isdigit((unsigned char)s[0]))
		return -1;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno)
		return -1;
	int shift = 0;
	switch (toupper((unsigned char)*end)) {
	case '\0':
		break;
	case 'K':
		shift = 10;
		break;
	case 'M':
		shift = 20;
		break;
	case 'G':
		shift = 30;
		break;
	case 'T':
		shift = 40;
		break;
	default:
		return -1;
	}
	if (shift) {
		end++;
		if (*end == 'i' || *end == 'B')
			end += *end == 'i' && end[1] == 'B' ? 2 : 1;
	}
	if (*end != '\0' || v > (unsigned long long)(INT64_MAX >> shift))
		return -1;
	*out = (int64_t)(v << shift);
	return 0;
}

/* A whole number >= 0 that fits int64. */
static int parse_count(const char *s, int64_t *out)
{
	char *end;
	if (!isdigit((unsigned char)s[0]))
		return -1;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || *end || v > INT64_MAX)
		return -1;
	*out = (int64_t)v;
	return 0;
}

/* A whole-number option into *dst, marking *given. */
static int count_opt(struct cli *c, const char *opt, const char *want,
		     const char *arg, int64_t *dst, int *given)
{
	if (parse_count(arg, dst) != 0)
		return cli_usage_err(c, "bad --%s '%s' (want %s)", opt, arg,
				     want);
	*given = 1;
	return CLI_CONTINUE;
}

int cli_limit_opt(struct cli *c, struct cli_limits *l, int id, const char *arg)
{
	int64_t v;
	if (id == CLI_OPT_MAX_BYTES) {
		if (cli_parse_size(arg, &v) != 0)
			return cli_usage_err(c,
					     "bad --max-bytes '%s' (want a "
					     "size such as 500M, 10G or 0 for "
					     "no cap)",
					     arg);
		l->lim.max_bytes = v;
		l->set_bytes = 1;
		return CLI_CONTINUE;
	}
	if (id == CLI_OPT_MAX_ENTRIES)
		return count_opt(c, "max-entries",
				 "a whole number, 0 for no cap", arg,
				 &l->lim.max_entries, &l->set_entries);
	return cli_usage_err(c, "unknown option");
}

int cli_limits_apply(struct cli *c, larder *db, const char *ns,
		     const struct cli_limits *l)
{
	larder_limits cur = LARDER_LIMITS_INIT;
	int rc = larder_limits_get(&cur, db, ns);
	if (rc == 0) {
		if (l->set_bytes)
			cur.max_bytes = l->lim.max_bytes;
		if (l->set_entries)
			cur.max_entries = l->lim.max_entries;
		if (l->set_wm) {
			cur.wm_run = l->lim.wm_run;
			cur.wm_cull = l->lim.wm_cull;
			cur.wm_stop = l->lim.wm_stop;
		}
		if (l->set_touch)
			cur.touch_interval = l->lim.touch_interval;
		rc = larder_limits_set(db, ns, &cur);
	}
	return rc ? cli_fail(c, db, rc) : CLI_OK;
}

/* ---- config ---- */

enum { OPT_WATERMARKS = CLI_OPT_MAX_ENTRIES + 1, OPT_TOUCH, OPT_TTL };

struct config_args {
	struct cli_limits l;
	int64_t ttl;
	int set_ttl;
};

static int config_opt(struct cli *c, int id, const char *arg, void *ctx)
{
	struct config_args *a = ctx;
	struct cli_limits *l = &a->l;
	if (id == OPT_TTL) {
		/* A namespace's default: 0 or "never" for none. */
		if (strcmp(arg, "0") == 0)
			a->ttl = 0;
		else if (cli_parse_ttl(arg, &a->ttl) != 0)
			return cli_usage_err(c,
					     "bad --ttl '%s' (want seconds or "
					     "a number with s, m, h or d; 0 "
					     "or never for none)",
					     out_q(arg));
		if (a->ttl == LARDER_TTL_NEVER)
			a->ttl = 0;
		a->set_ttl = 1;
		return CLI_CONTINUE;
	}
	if (id == OPT_WATERMARKS) {
		int r, k, s, n = -1;
		if (sscanf(arg, "%d,%d,%d%n", &r, &k, &s, &n) != 3 ||
		    n != (int)strlen(arg) ||
		    !((r == 0 && k == 0 && s == 0) ||
		      (r <= 100 && r > k && k > s && s >= 0)))
			return cli_usage_err(c,
					     "bad --watermarks '%s' (want "
					     "RUN,CULL,STOP percentages with "
					     "100 >= RUN > CULL > STOP >= 0, "
					     "or 0,0,0 for off)",
					     arg);
		l->lim.wm_run = r;
		l->lim.wm_cull = k;
		l->lim.wm_stop = s;
		l->set_wm = 1;
		return CLI_CONTINUE;
	}
	if (id == OPT_TOUCH)
		return count_opt(c, "touch-interval", "seconds, 0 or more", arg,
				 &l->lim.touch_interval, &l->set_touch);
	return cli_limit_opt(c, l, id, arg);
}

static void print_cap(const char *name, int64_t v)
{
	if (v)
		printf("%s %" PRId64 "\n", name, v);
	else
		printf("%s 0 (none)\n", name);
}

static int run_config(struct cli *c, int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"max-bytes", required_argument, NULL, CLI_OPT_MAX_BYTES},
	    {"max-entries", required_argument, NULL, CLI_OPT_MAX_ENTRIES},
	    {"watermarks", required_argument, NULL, OPT_WATERMARKS},
	    {"touch-interval", required_argument, NULL, OPT_TOUCH},
	    {"ttl", required_argument, NULL, OPT_TTL},
	    {0},
	};
	struct config_args a;
	struct cli_limits *l = &a.l;
	larder *db = NULL;
	int first;
	memset(&a, 0, sizeof a);
	int rc = cli_parse(c, &cli_cmd_config, argc, argv, "", longopts,
			   config_opt, &a, &first);
	if (rc != CLI_CONTINUE)
		return rc;
	if (first < argc)
		return cli_usage_err(c, "unexpected argument '%s'",
				     argv[first]);
	const char *ns = c->ns_given ? c->ns : NULL;
	if (ns && (l->set_wm || l->set_touch))
		return cli_usage_err(c, "--watermarks and --touch-interval "
					"are store-wide: not with --ns");
	if (!ns && a.set_ttl)
		return cli_usage_err(c, "--ttl is a namespace's default "
					"TTL: use it with --ns");
	rc = cli_open(c, &db, NULL);
	if (rc != CLI_OK)
		return rc;
	if (a.set_ttl && (rc = larder_ns_set_ttl(db, ns, a.ttl)) != 0) {
		rc = cli_fail(c, db, rc);
		larder_close(db);
		return rc;
	}
	if (l->set_bytes || l->set_entries || l->set_wm || l->set_touch) {
		rc = cli_limits_apply(c, db, ns, l);
		larder_close(db);
		return rc;
	}
	if (a.set_ttl) {
		larder_close(db);
		return CLI_OK;
	}
	larder_limits cur = LARDER_LIMITS_INIT;
	int64_t ttl = 0;
	if ((rc = larder_limits_get(&cur, db, ns)) != 0 ||
	    (ns && (rc = larder_ns_get_ttl(&ttl, db, ns)) != 0)) {
		rc = cli_fail(c, db, rc);
		larder_close(db);
		return rc;
	}
	if (ns)
		printf("namespace %s\n", ns);
	print_cap("max_bytes", cur.max_bytes);
	print_cap("max_entries", cur.max_entries);
	if (ns)
		print_cap("ttl", ttl);
	if (!ns) {
		if (cur.wm_run)
			printf("watermarks %d,%d,%d\n", cur.wm_run, cur.wm_cull,
			       cur.wm_stop);
		else
			printf("watermarks 0,0,0 (off)\n");
		printf("touch_interval %" PRId64 "\n", cur.touch_interval);
	}
	larder_close(db);
	return out_finish(c, stdout);
}

const struct cli_cmd cli_cmd_config = {
    .name = "config",
    .run = run_config,
    .summary = "show or change quotas, watermarks, the touch interval "
	       "and TTLs",
    .usage = "[--ns NS] [--max-bytes SIZE] [--max-entries N] "
	     "[--watermarks RUN,CULL,STOP] [--touch-interval S] [--ttl TTL]",
    .help = "Without options, print the store's settings (with --ns, the "
	    "namespace's\ncaps and default TTL). With options, change those "
	    "given and keep the rest.\n\n"
	    "Options:\n"
	    "  --max-bytes SIZE      cap on the entry files' bytes (K, M, G, "
	    "T suffixes,\n"
	    "                        powers of 1024); 0 = no cap\n"
	    "  --max-entries N       cap on the number of entries; 0 = no "
	    "cap\n"
	    "  --watermarks R,C,S    free-space percentages (store only): "
	    "below C a\n"
	    "                        cleaning frees until R is free; below "
	    "S nothing is\n"
	    "                        published. Default 0,0,0 = off; "
	    "10,7,3 suits\n"
	    "                        a filesystem of its own\n"
	    "  --touch-interval S    a hit refreshes an entry's access time "
	    "at most once\n"
	    "                        per S seconds (store only; default "
	    "60)\n"
	    "  --ttl TTL             the namespace's default TTL (with --ns "
	    "only): entries\n"
	    "                        put without --ttl expire after it; "
	    "seconds or\n"
	    "                        s/m/h/d; 0 or never = no default\n",
};

/* ---- gc ---- */

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
	    "data.\n\n"
	    "Options:\n"
	    "  --ns NS     only this namespace (held to its own caps; a "
	    "warning says\n"
	    "              when the store as a whole stays over its cap)\n"
	    "  --dry-run   remove nothing; list what would go (as info log "
	    "lines)\n",
};
