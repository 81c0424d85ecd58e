/* init.c — the init functions of the public structs: each sets what its
 * LARDER_*_INIT macro says, for callers that cannot expand a macro
 * (bindings, generators). tests/test_api.c checks each against its macro. */
#include "larder.h"

void larder_opts_init(larder_opts *opts)
{
	*opts = (larder_opts)LARDER_OPTS_INIT;
}

void larder_put_opts_init(larder_put_opts *opts)
{
	*opts = (larder_put_opts)LARDER_PUT_OPTS_INIT;
}

void larder_fill_opts_init(larder_fill_opts *opts)
{
	*opts = (larder_fill_opts)LARDER_FILL_OPTS_INIT;
}

void larder_wait_info_init(larder_wait_info *info)
{
	*info = (larder_wait_info)LARDER_WAIT_INFO_INIT;
}

void larder_sql_opts_init(larder_sql_opts *opts)
{
	*opts = (larder_sql_opts)LARDER_SQL_OPTS_INIT;
}

void larder_entry_info_init(larder_entry_info *info)
{
	*info = (larder_entry_info)LARDER_ENTRY_INFO_INIT;
}

void larder_limits_init(larder_limits *limits)
{
	*limits = (larder_limits)LARDER_LIMITS_INIT;
}

void larder_gc_report_init(larder_gc_report *report)
{
	*report = (larder_gc_report)LARDER_GC_REPORT_INIT;
}

void larder_sweep_report_init(larder_sweep_report *report)
{
	*report = (larder_sweep_report)LARDER_SWEEP_REPORT_INIT;
}
