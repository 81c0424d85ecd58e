/*
 * cmd_inspect.c — `larder inspect`: one entry's header as JSON
 * (larder_inspect), optionally with its payload verified.
 */
#include <string.h>

#include "cli.h"

enum { OPT_VERIFY = 256, OPT_TIER };

struct inspect_ctx {
	const char *version;
	int verify;
	int state;
	unsigned tiers;
	const char *tier; /* the "tier" field, NULL without a shared tier */
};

static int inspect_opt(struct cli *c, int id, const char *arg, void *ctx)
{
	struct inspect_ctx *in = ctx;

	switch (id) {
	case 'V':
		in->version = arg;
		return CLI_CONTINUE;
	case OPT_VERIFY:
		in->verify = 1;
		return CLI_CONTINUE;
	case OPT_TIER:
		return cli_tier_opt(c, arg, &in->tiers);
	default:
		return cli_usage_err(c, "unknown option");
	}
}

static int inspect_entry(const larder_entry_info *info, void *payload)
{
	struct inspect_ctx *in = payload;

	char close[48];

	in->state = info->state;
	if (in->tier)
		snprintf(close, sizeof close, ",\n  \"tier\":\"%s\"\n}\n",
			 in->tier);
	print_info_json(stdout, info, ",\n  ", "{\n  ",
			in->tier ? close : "\n}\n");
	return 0;
}

/* States that mean the entry is damaged (expired and newer-format
 * entries are sound, merely not servable by this reader). */
static int problem_state(int state)
{
	return state == LARDER_STATE_CORRUPT || state == LARDER_STATE_MISPLACED;
}

static int run_inspect(struct cli *c, int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"version", required_argument, NULL, 'V'},
	    {"verify", no_argument, NULL, OPT_VERIFY},
	    {"tier", required_argument, NULL, OPT_TIER},
	    {0},
	};
	struct inspect_ctx in = {NULL, 0, LARDER_STATE_OK, 0, NULL};
	unsigned flags;
	larder *db = NULL;
	const char *key;
	int first;
	int rc;
	int lrc;

	rc = cli_parse(c, &cli_cmd_inspect, argc, argv, "", longopts,
		       inspect_opt, &in, &first);
	if (rc != CLI_CONTINUE)
		return rc;
	rc = cli_positionals(c, argc, argv, first, 1, 1, "KEY");
	if (rc != CLI_CONTINUE)
		return rc;
	key = argv[first];
	rc = cli_open(c, &db, NULL);
	if (rc != CLI_OK)
		return rc;

	rc = cli_tier_resolve(c, db, &in.tiers, CLI_TIER_ALL);
	if (rc != CLI_CONTINUE)
		goto out;

	/* Near first (the copy this host reads), then the shared tier
	 * when near has none, as a get looks. */
	flags = in.verify ? LARDER_WALK_VERIFY : 0;
	lrc = LARDER_ENOTFOUND;
	if (in.tiers & CLI_TIER_NEAR) {
		in.tier = larder_shared(db) ? "near" : NULL;
		lrc = larder_inspect(db, c->ns, key, strlen(key), in.version,
				     in.version ? strlen(in.version) : 0, flags,
				     inspect_entry, &in);
	}
	if (lrc == LARDER_ENOTFOUND && (in.tiers & CLI_TIER_SHARED)) {
		in.tier = "shared";
		lrc = larder_inspect(db, c->ns, key, strlen(key), in.version,
				     in.version ? strlen(in.version) : 0,
				     flags | LARDER_WALK_SHARED, inspect_entry,
				     &in);
	}
	if (lrc == LARDER_ENOTFOUND) {
		cli_err(c, "'%s'%s%s%s: not found%s", out_q(key),
			in.version ? " version '" : "",
			in.version ? out_q(in.version) : "",
			in.version ? "'" : "",
			in.tiers == CLI_TIER_ALL      ? " in either tier"
			: in.tiers == CLI_TIER_SHARED ? " in the shared tier"
			: larder_shared(db)	      ? " in the near tier"
						      : "");
		rc = CLI_MISS;
		goto out;
	}
	if (lrc < 0) {
		rc = cli_fail(c, db, lrc);
		goto out;
	}
	rc = out_finish(c, stdout);
	if (rc == CLI_OK && problem_state(in.state))
		rc = CLI_PROBLEMS;
out:
	larder_close(db);
	return rc;
}

const struct cli_cmd cli_cmd_inspect = {
    .name = "inspect",
    .run = run_inspect,
    .summary = "describe one entry's header as JSON",
    .usage = "KEY [--version V] [--verify] [--tier near|shared|all]",
    .help = "Print what the header of the entry KEY says, as a JSON "
	    "object: ns, key,\n"
	    "version, meta, size, stored_size, file_size, created and "
	    "expires (ISO-8601\n"
	    "UTC, null for never), created_ns and expires_ns (ns since "
	    "the epoch, 0 for\n"
	    "never), codec, state, problem, path and, on a store with a "
	    "shared tier,\n"
	    "tier (near or shared: where it was found). Bytes that are not "
	    "valid UTF-8 are\n"
	    "shown as U+FFFD, with the exact bytes in an extra *_hex "
	    "field. Unlike get,\n"
	    "a corrupt or expired entry is described, not hidden, and "
	    "nothing is moved.\n"
	    "Exits 5 if the entry is corrupt or misplaced.\n\n"
	    "Options:\n"
	    "  --version V   this version (default: the one the key's head "
	    "names)\n"
	    "  --verify      also hash the payload (else the header only)\n"
	    "  --tier T      near: the store's own directory; shared: its "
	    "shared tier (the\n"
	    "                entry read through it, the version its head "
	    "names there);\n"
	    "                all (the default): near, then shared if near "
	    "has none\n",
};
