/*
 * cmd_config.c — `larder config`: show or change quotas, watermarks, the
 * touch interval and a namespace's default TTL.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

enum { OPT_WATERMARKS = CLI_OPT_MAX_ENTRIES + 1, OPT_TOUCH, OPT_TTL };

struct config_args {
	struct cli_limits l;
	int64_t ttl;
	int set_ttl;
	const char *shared; /* --shared, or NULL */
};

static int config_opt(struct cli *c, int id, const char *arg, void *ctx)
{
	struct config_args *a = ctx;
	struct cli_limits *l = &a->l;
	if (id == CLI_OPT_SHARED) {
		a->shared = arg;
		return CLI_CONTINUE;
	}
	if (id == OPT_TTL) {
		/* A namespace's default: 0 or "never" for none. */
		int rc = cli_duration_int(c, &cli_dur_ns_ttl, arg, &a->ttl);
		if (rc != CLI_CONTINUE)
			return rc;
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
	if (id == OPT_TOUCH) {
		l->set_touch = 1;
		return cli_duration_int(c, &cli_dur_touch, arg,
					&l->lim.touch_interval);
	}
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
	    {"shared", required_argument, NULL, CLI_OPT_SHARED},
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
	if (ns && a.shared)
		return cli_usage_err(c, "--shared is store-wide: not with "
					"--ns");
	/* Changing the shared tier: not through the one set before (which
	 * may be the mistake being corrected). */
	larder_opts o = LARDER_OPTS_INIT;
	o.shared = a.shared ? "" : NULL;
	rc = cli_open(c, &db, &o);
	if (rc != CLI_OK)
		return rc;
	if (a.shared) {
		rc = cli_shared_apply(c, db, a.shared);
		if (rc != CLI_OK || !(l->set_bytes || l->set_entries ||
				      l->set_wm || l->set_touch || a.set_ttl)) {
			larder_close(db);
			return rc;
		}
	}
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
		/* The tier this run uses (LARDER_SHARED may override the
		 * store's), its password masked. */
		const char *sh = larder_shared(db);
		const char *env = getenv("LARDER_SHARED");
		if (sh)
			printf("shared %s%s\n", sh,
			       env ? " (from LARDER_SHARED)" : "");
		else
			printf("shared (none)%s\n",
			       env ? " (LARDER_SHARED is empty)" : "");
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
	     "[--watermarks RUN,CULL,STOP] [--touch-interval S] [--ttl TTL] "
	     "[--shared WHERE]",
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
	    "                        s/m/h/d; 0 or never = no default\n"
	    "  --shared WHERE        the shared tier behind the store (store "
	    "only): a\n"
	    "                        store directory (absolute) or "
	    "redis://[user:password@]\n"
	    "                        host:port/db; '' = none. Shown with "
	    "any password\n"
	    "                        masked; LARDER_SHARED overrides it for "
	    "one run\n",
};
