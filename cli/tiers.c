/*
 * tiers.c — the --tier option of ls, inspect and verify: which of a
 * store's tiers a command looks at (docs/cli.md, "Tiers").
 */
#include <string.h>

#include "cli.h"

int cli_tier_opt(struct cli *c, const char *arg, unsigned *out)
{
	static const struct {
		const char *name;
		unsigned tiers;
	} names[] = {
	    {"near", CLI_TIER_NEAR},
	    {"shared", CLI_TIER_SHARED},
	    {"all", CLI_TIER_ALL},
	};
	for (size_t i = 0; i < sizeof names / sizeof *names; i++)
		if (strcmp(arg, names[i].name) == 0) {
			*out = names[i].tiers;
			return CLI_CONTINUE;
		}
	return cli_usage_err(c, "--tier: '%s' is none of near, shared, all",
			     out_q(arg));
}

int cli_tier_resolve(struct cli *c, larder *db, unsigned *tiers, unsigned dflt)
{
	const char *shared = larder_shared(db);
	if (!*tiers)
		*tiers = shared ? dflt : CLI_TIER_NEAR;
	if ((*tiers & CLI_TIER_SHARED) && !shared) {
		cli_err(c,
			"--tier %s: the store has no shared tier (larder "
			"init --shared, config --shared, LARDER_SHARED)",
			*tiers == CLI_TIER_ALL ? "all" : "shared");
		return CLI_USAGE;
	}
	return CLI_CONTINUE;
}
