/*
 * cmd_rm.c — `larder rm`: remove an entry (one version, or the one the
 * key's head names, and the head).
 */
#include <string.h>

#include "cli.h"

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
