/*
 * cmd_store.c — `larder init` (create a store) and `larder rm` (remove an
 * entry): the two commands that change a store without moving payloads.
 */
#include <string.h>

#include "cli.h"

/* ---- init ---- */

struct init_args {
	unsigned mode;
	int fsync;
	struct cli_limits limits;
};

enum { OPT_MODE = 256, OPT_FSYNC };

static int init_opt(struct cli *c, int id, const char *arg, void *ctx)
{
	struct init_args *a = ctx;

	if (id == OPT_MODE) {
		/* Only the two modes the store knows how to keep coherent:
		 * private to the user, or shared with the group. */
		if (strcmp(arg, "0644") == 0 || strcmp(arg, "644") == 0)
			a->mode = 0644;
		else if (strcmp(arg, "0664") == 0 || strcmp(arg, "664") == 0)
			a->mode = 0664;
		else
			return cli_usage_err(c,
					     "bad --mode '%s' (want 0644 or "
					     "0664)",
					     arg);
		return CLI_CONTINUE;
	}
	if (id == OPT_FSYNC) {
		if (strcmp(arg, "none") == 0)
			a->fsync = LARDER_FSYNC_NONE;
		else if (strcmp(arg, "data") == 0)
			a->fsync = LARDER_FSYNC_DATA;
		else if (strcmp(arg, "full") == 0)
			a->fsync = LARDER_FSYNC_FULL;
		else
			return cli_usage_err(c,
					     "bad --fsync '%s' (want none, "
					     "data or full)",
					     arg);
		return CLI_CONTINUE;
	}
	return cli_limit_opt(c, &a->limits, id, arg);
}

static int run_init(struct cli *c, int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"mode", required_argument, NULL, OPT_MODE},
	    {"fsync", required_argument, NULL, OPT_FSYNC},
	    {"max-bytes", required_argument, NULL, CLI_OPT_MAX_BYTES},
	    {"max-entries", required_argument, NULL, CLI_OPT_MAX_ENTRIES},
	    {0},
	};
	struct init_args a;
	memset(&a, 0, sizeof a);
	a.mode = 0644;
	a.fsync = LARDER_FSYNC_DATA;
	larder_opts opts = LARDER_OPTS_INIT;
	larder *db = NULL;
	int first;
	int rc;

	rc = cli_parse(c, &cli_cmd_init, argc, argv, "", longopts, init_opt, &a,
		       &first);
	if (rc != CLI_CONTINUE)
		return rc;
	if (first < argc)
		return cli_usage_err(c, "unexpected argument '%s'",
				     argv[first]);

	opts.flags = LARDER_OPEN_CREATE;
	opts.create_mode = a.mode;
	opts.create_fsync = a.fsync;
	rc = cli_open(c, &db, &opts);
	if (rc != CLI_OK)
		return rc;
	if (a.limits.set_bytes || a.limits.set_entries) {
		rc = cli_limits_apply(c, db, NULL, &a.limits);
		if (rc != CLI_OK) {
			larder_close(db);
			return rc;
		}
	}
	if (c->verbose)
		fprintf(stderr, "larder: init: store ready at '%s'\n",
			larder_dir(db));
	larder_close(db);
	return CLI_OK;
}

const struct cli_cmd cli_cmd_init = {
    .name = "init",
    .run = run_init,
    .summary = "create the store (no change if it exists)",
    .usage = "[--mode 0644|0664] [--fsync none|data|full] [--max-bytes "
	     "SIZE] [--max-entries N]",
    .help = "Create the store at DIR (and DIR itself if missing). On an "
	    "existing store\n"
	    "this changes nothing and succeeds; --mode and --fsync apply "
	    "only to a new\nstore.\n\n"
	    "Options:\n"
	    "  --mode 0644|0664        file permissions (default 0644); "
	    "0664 makes a\n"
	    "                          group-shared store (setgid "
	    "directories)\n"
	    "  --fsync none|data|full  the store's durability policy "
	    "(default data):\n"
	    "                          none leaves it to the kernel, data "
	    "syncs each\n"
	    "                          entry before publishing it, full "
	    "also syncs the\n"
	    "                          directory\n"
	    "  --max-bytes SIZE        cap the store's entry bytes (K, M, G, "
	    "T suffixes);\n"
	    "                          set on an existing store too (as "
	    "`larder config`)\n"
	    "  --max-entries N         cap the store's number of entries\n",
};

/* ---- rm ---- */

static int rm_opt(struct cli *c, int id, const char *arg, void *ctx)
{
	const char **version = ctx;

	if (id == 'V') {
		*version = arg;
		return CLI_CONTINUE;
	}
	return cli_usage_err(c, "unknown option");
}

static int run_rm(struct cli *c, int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"version", required_argument, NULL, 'V'},
	    {0},
	};
	const char *version = NULL;
	const char *key;
	larder *db = NULL;
	int first;
	int rc;

	rc = cli_parse(c, &cli_cmd_rm, argc, argv, "", longopts, rm_opt,
		       &version, &first);
	if (rc != CLI_CONTINUE)
		return rc;
	rc = cli_positionals(c, argc, argv, first, 1, 1, "KEY");
	if (rc != CLI_CONTINUE)
		return rc;
	key = argv[first];

	rc = cli_open(c, &db, NULL);
	if (rc != CLI_OK)
		return rc;
	rc = larder_remove(db, c->ns, key, strlen(key), version,
			   version ? strlen(version) : 0);
	if (rc == LARDER_ENOTFOUND) {
		cli_err(c, "'%s'%s%s%s: not found", out_q(key),
			version ? " version '" : "",
			version ? out_q(version) : "", version ? "'" : "");
		rc = CLI_MISS;
	} else if (rc < 0) {
		rc = cli_fail(c, db, rc);
	} else {
		rc = CLI_OK;
	}
	larder_close(db);
	return rc;
}

const struct cli_cmd cli_cmd_rm = {
    .name = "rm",
    .run = run_rm,
    .summary = "remove an entry",
    .usage = "KEY [--version V]",
    .help = "Remove the entry KEY. Without --version: the version the "
	    "key's head names,\n"
	    "and the head itself (older versions stay reachable by their "
	    "exact version).\n"
	    "Readers that already hold the entry keep their data.\n\n"
	    "Options:\n"
	    "  --version V   remove exactly this version\n",
};
