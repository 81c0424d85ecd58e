/*
 * fill.c — the options of a fill that `larder run` and `larder sql` share
 * (--ttl, --lease, --max-wait, --allow-stale), parsed and applied in one
 * place so that the two commands read them alike.
 */
#include "cli.h"

int cli_fill_opt(struct cli *c, struct cli_fill_args *f, int id,
		 const char *arg)
{
	switch (id) {
	case CLI_OPT_TTL:
		return cli_duration_int(c, &cli_dur_ttl, arg, &f->ttl);
	case CLI_OPT_LEASE:
		return cli_duration_opt(c, &cli_dur_lease, arg, &f->lease);
	case CLI_OPT_MAX_WAIT:
		return cli_duration_opt(c, &cli_dur_max_wait, arg,
					&f->max_wait);
	case CLI_OPT_ALLOW_STALE:
		f->allow_stale = 1;
		return CLI_CONTINUE;
	default:
		return cli_usage_err(c, "unknown option");
	}
}

void cli_fill_apply(const struct cli_fill_args *f, larder_put_opts *po,
		    larder_fill_opts *fo)
{
	po->ttl_seconds = f->ttl;
	fo->put = po;
	fo->lease_seconds = f->lease;
	fo->max_wait_seconds = f->max_wait;
	fo->flags = f->allow_stale ? LARDER_FILL_ALLOW_STALE : 0;
}
