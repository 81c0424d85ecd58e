/*
 * sql.c — SQL sources: keys, formats, the fill (DESIGN §8). Being
 * written: see issue 4.
 */
#include "err.h"
#include "sql_source.h"
#include "store.h"

int larder_sql(larder_entry **out, int *outcome, larder *db, const char *ns,
	       const char *dburi, const char *query,
	       const larder_sql_opts *opts)
{
	(void)ns, (void)dburi, (void)query, (void)opts;
	*out = NULL;
	if (outcome)
		*outcome = 0;
	return ldr_fail(db, LARDER_EINVAL, 0, "SQL sources: not built yet");
}

int larder_sql_track(larder *db, const char *dburi, const char *table)
{
	(void)dburi, (void)table;
	return ldr_fail(db, LARDER_EINVAL, 0, "SQL sources: not built yet");
}

int larder_sql_untrack(larder *db, const char *dburi, const char *table)
{
	(void)dburi, (void)table;
	return ldr_fail(db, LARDER_EINVAL, 0, "SQL sources: not built yet");
}
