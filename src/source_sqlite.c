/*
 * source_sqlite.c — being written: see issue 4.
 */
#include "sql_source.h"

const struct ldr_sql_ops ldr_sql_sqlite = {.name = "sqlite"};
