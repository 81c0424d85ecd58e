/*
 * sql_source.h — what src/sources/sql.c (keys, formats, the fill) needs from a
 * database: one connection, a read snapshot, queries whose rows are
 * pushed to a sink one at a time, and the change-counter triggers.
 *
 * Each database is one file: source_sqlite.c, source_pg.c. They know
 * nothing of entries or formats; sql.c knows nothing of their APIs.
 * Failures are recorded with ldr_fail(db, ...) (db may be NULL) and
 * returned as LARDER_E* codes:
 *   LARDER_EINVAL  the database rejected the SQL (syntax, no such table)
 *   LARDER_EIO     cannot connect, connection lost, database I/O error
 *   LARDER_EPERM   authentication failed, permission denied
 *   LARDER_ENOTFOUND  no such database (SQLite file missing)
 * with the database's own message in the text.
 */
#ifndef LARDER_SQL_SOURCE_H
#define LARDER_SQL_SOURCE_H

#include <stddef.h>

#include "larder.h"

/* What a value is, so the formats can write it faithfully. SQLite gives
 * it per value; PostgreSQL per column (from the column's type). */
enum ldr_sql_kind {
	LDR_SQL_NULL = 0,
	LDR_SQL_TEXT,	 /* UTF-8 text (as the database returns it) */
	LDR_SQL_INT,	 /* decimal integer text */
	LDR_SQL_REAL,	 /* floating point text ("1.5", "NaN", "Infinity") */
	LDR_SQL_NUMERIC, /* exact decimal text (PostgreSQL numeric) */
	LDR_SQL_BOOL,	 /* "t" or "f" */
	LDR_SQL_BLOB,	 /* raw bytes (written as \x + hex) */
	LDR_SQL_JSON	 /* JSON text (PostgreSQL json, jsonb) */
};

/* Receives a query's result. columns() is called once before the first
 * row (also for a result with no rows); row() once per row. Values are
 * valid during the call only; val[i] is NULL exactly when kind[i] is
 * LDR_SQL_NULL. A non-zero return stops the query and is returned by
 * query(). */
struct ldr_sql_sink {
	int (*columns)(void *payload, size_t ncol, const char *const *names);
	int (*row)(void *payload, size_t ncol, const char *const *val,
		   const size_t *len, const int *kind);
	void *payload;
};

struct ldr_sql_conn; /* one connection, owned by its source file */

struct ldr_sql_ops {
	const char *name; /* "sqlite", "postgresql" */
	/* Connect. `uri` as given to larder_sql (the "sqlite:" prefix is
	 * removed before SQLite sees it). SQLite opens read-only unless
	 * `write` (track/untrack) and never creates a database. */
	int (*open)(struct ldr_sql_conn **out, larder *db, const char *uri,
		    int write);
	/* Identity of the database for the key, NUL-terminated, no secret
	 * in it: "sqlite:<canonical path>",
	 * "postgresql:<system identifier>/<database>/<user>". */
	int (*identity)(struct ldr_sql_conn *c, char *buf, size_t size);
	/* Begin a read snapshot: every query until end() sees the same
	 * committed state. */
	int (*begin)(struct ldr_sql_conn *c);
	/* Run one statement with text parameters (NULL = SQL NULL), pushing
	 * rows to the sink as they arrive (never the whole result in
	 * memory). Statements that return no rows still call columns(). The
	 * caller's queries arrive normalized (sql.h: lowercased outside
	 * literals, quoted names and parameters). */
	int (*query)(struct ldr_sql_conn *c, const char *sql,
		     const char *const *params, size_t nparams,
		     const struct ldr_sql_sink *sink);
	/* Number of parameters the statement takes (for the version query:
	 * it gets the data query's parameters only if it has any). */
	int (*nparams)(struct ldr_sql_conn *c, const char *sql, size_t *out);
	/* End the snapshot (rollback: nothing was written). */
	int (*end)(struct ldr_sql_conn *c);
	/* The version of a tracked table, in the current snapshot:
	 * "<token> <counter>" where the token is chosen at track time (so a
	 * re-created counter never repeats an old version); a source may
	 * append what else changes the table's rows unseen by the counter
	 * (SQLite: its schema version). LARDER_ENOTFOUND with a message
	 * saying to run `larder sql track` if the table is not tracked. */
	int (*table_version)(struct ldr_sql_conn *c, const char *table,
			     char *buf, size_t size);
	/* Install / remove the counter and triggers for `table` (in their
	 * own write transaction). Both idempotent: removing what is not
	 * there succeeds. */
	int (*track)(struct ldr_sql_conn *c, const char *table);
	int (*untrack)(struct ldr_sql_conn *c, const char *table);
	void (*close)(struct ldr_sql_conn *c);
};

extern const struct ldr_sql_ops ldr_sql_sqlite;
extern const struct ldr_sql_ops ldr_sql_pg;

/* ldr_sql_pg.open with a store handle may hand out a connection that an
 * earlier call on the handle closed, and close keeps a sound, idle one
 * for the next (source_pg.c: "Keeping connections"), on a slot of the
 * handle that larder_close frees. With db NULL, open connects and close
 * disconnects. */
/* Whether libpq's PQconninfoParse takes `s` as a connection string
 * ("host=db1 dbname=sales"): how sql.c tells one from an SQLite path. */
int ldr_pg_conninfo_ok(const char *s);

#endif
