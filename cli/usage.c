/*
 * usage.c — the store's usage against its caps, as `larder stat` shows it
 * and `larder gc --ns` checks it afterwards: one reading of the counter
 * files (larder_stats_read) and the cleaner's rule for "over a cap".
 */
#include "cli.h"

/* a + b for a, b >= 0, stopping at INT64_MAX: counter files may say
 * anything (docs/format.md), and a sum must not wrap. */
static int64_t add_sat(int64_t a, int64_t b)
{
	return a > INT64_MAX - b ? INT64_MAX : a + b;
}

void cli_usage_total(const larder_stats *s, int64_t *bytes, int64_t *entries)
{
	int64_t b, e;
	*bytes = *entries = 0;
	for (size_t i = 0; larder_stats_usage(&b, &e, s, i); i++) {
		*bytes = add_sat(*bytes, b);
		*entries = add_sat(*entries, e);
	}
}

int cli_over_cap(int64_t used, int64_t cap)
{
	/* As the cleaner judges it: past the cap, not at it. */
	return cap > 0 && used > cap;
}
