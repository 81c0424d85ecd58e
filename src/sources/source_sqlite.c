/*
 * source_sqlite.c — SQLite behind struct ldr_sql_ops (sql_source.h): a
 * database file opened read-only and never created, a read snapshot as
 * one deferred transaction, rows stepped one at a time, and the change
 * counter of a tracked table (a row of larder_changes kept by triggers).
 *
 * libsqlite3 is loaded on the first open (dlopen, "Loading libsqlite3"
 * below), not linked, as libpq is (source_pg.c): a process that never
 * opens a database, every `larder get`, does not pay for loading and
 * relocating it.
 */
#include "sql_source.h"

#include <errno.h>
#include <pthread.h>
#include <locale.h>
#include <math.h>
#include <stdarg.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "dl.h"
#include "err.h"

/* How long a statement waits for another connection's lock (a writer
 * committing; in rollback-journal mode, a writer waits for our read). */
#define BUSY_TIMEOUT_MS 10000

/* Statements kept prepared for the connection's life: one call of
 * larder_sql() runs the version query up to three times (its parameter
 * count, the lookup's version, the load's snapshot). */
#define STMT_CACHE 8

struct ldr_sql_conn {
	larder *db;
	sqlite3 *h;
	char *path; /* as given, for messages */
	char *real; /* canonical, for the identity */
	locale_t cloc;
	struct {
		char *sql;
		sqlite3_stmt *st;
	} cache[STMT_CACHE];
	unsigned next; /* the cache slot to reuse next */
};

/* ---------------------------------------------------------------------- */
/* Loading libsqlite3                                                      */

#define SQLITE_SONAME "libsqlite3.so.0"
#define SQLITE_HINT "apt-get install libsqlite3-0"

/* Every SQLite function this file calls, each called through
 * sq.<name>, typed from sqlite3.h. */
#define SQ_FUNCS(X)                                                            \
	X(sqlite3_bind_null)                                                   \
	X(sqlite3_bind_parameter_count)                                        \
	X(sqlite3_bind_text)                                                   \
	X(sqlite3_busy_timeout)                                                \
	X(sqlite3_clear_bindings)                                              \
	X(sqlite3_close_v2)                                                    \
	X(sqlite3_column_blob)                                                 \
	X(sqlite3_column_bytes)                                                \
	X(sqlite3_column_count)                                                \
	X(sqlite3_column_double)                                               \
	X(sqlite3_column_int)                                                  \
	X(sqlite3_column_int64)                                                \
	X(sqlite3_column_name)                                                 \
	X(sqlite3_column_text)                                                 \
	X(sqlite3_column_type)                                                 \
	X(sqlite3_errcode)                                                     \
	X(sqlite3_errmsg)                                                      \
	X(sqlite3_exec)                                                        \
	X(sqlite3_finalize)                                                    \
	X(sqlite3_free)                                                        \
	X(sqlite3_get_autocommit)                                              \
	X(sqlite3_open_v2)                                                     \
	X(sqlite3_prepare_v2)                                                  \
	X(sqlite3_reset)                                                       \
	X(sqlite3_step)                                                        \
	X(sqlite3_stmt_readonly)                                               \
	X(sqlite3_stricmp)                                                     \
	X(sqlite3_table_column_metadata)                                       \
	X(sqlite3_vmprintf)

struct sq_api {
#define SQ_MEMBER(f) __typeof__(f) *f;
	SQ_FUNCS(SQ_MEMBER)
#undef SQ_MEMBER
};

/* Filled once by sq_load_once, never changed after (pthread_once orders
 * the filling before its every return), never unloaded. */
static struct sq_api sq;
static pthread_once_t sq_once = PTHREAD_ONCE_INIT;
static char sq_error[400]; /* why it could not be loaded; "" if it was */

static void sq_load_once(void)
{
	void *h = ldr_dl_open(SQLITE_SONAME, sq_error, sizeof sq_error);
	if (!h)
		return;
	struct sq_api t;
#define SQ_RESOLVE(f)                                                          \
	if (ldr_dl_fn(h, SQLITE_SONAME, #f, &t.f, sq_error, sizeof sq_error))  \
		return;
	SQ_FUNCS(SQ_RESOLVE)
#undef SQ_RESOLVE
	sq = t;
}

/* 0 once libsqlite3 is loaded (loading it if no call has tried yet),
 * else LARDER_EIO with a message naming the library and its package. */
static int sq_load(larder *db)
{
	if (pthread_once(&sq_once, sq_load_once) == 0 &&
	    sq.sqlite3_close_v2 != NULL)
		return 0;
	return ldr_fail(db, LARDER_EIO, 0,
			"SQLite support needs " SQLITE_SONAME " (" SQLITE_HINT
			"): %s",
			sq_error[0] ? sq_error : "pthread_once failed");
}

/* An SQLite result code as a larder code. */
static int code_of(int src)
{
	switch (src & 0xff) {
	case SQLITE_ERROR:
	case SQLITE_SCHEMA: /* prepare gives it for some unknown names */
	case SQLITE_RANGE:
	case SQLITE_MISMATCH:
	case SQLITE_TOOBIG:
	case SQLITE_CONSTRAINT:
		return LARDER_EINVAL;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return LARDER_EBUSY;
	case SQLITE_NOMEM:
		return LARDER_ENOMEM;
	case SQLITE_PERM:
	case SQLITE_AUTH:
	case SQLITE_READONLY:
		return LARDER_EPERM;
	case SQLITE_FULL:
		return LARDER_EFULL;
	default: /* IOERR, CORRUPT, NOTADB, CANTOPEN, ... */
		return LARDER_EIO;
	}
}

static int sq_fail(struct ldr_sql_conn *c, int src, const char *what)
{
	return ldr_fail(c->db, code_of(src), 0, "SQLite database '%s': %s: %s",
			c->path, what, sq.sqlite3_errmsg(c->h));
}

static void sq_close(struct ldr_sql_conn *c)
{
	if (!c)
		return;
	for (int i = 0; i < STMT_CACHE; i++) {
		sq.sqlite3_finalize(c->cache[i].st);
		free(c->cache[i].sql);
	}
	sq.sqlite3_close_v2(c->h);
	if (c->cloc)
		freelocale(c->cloc);
	free(c->path);
	free(c->real);
	free(c);
}

static int sq_open(struct ldr_sql_conn **out, larder *db, const char *uri,
		   int write)
{
	const char *path = strncmp(uri, "sqlite:", 7) == 0 ? uri + 7 : uri;
	struct stat st;
	*out = NULL;
	if (!*path)
		return ldr_fail(db, LARDER_EINVAL, 0, "empty SQLite path");
	/* Never create a database: a mistyped path is an error, not an
	 * empty result. */
	if (stat(path, &st) < 0) {
		int e = errno;
		if (e == ENOENT)
			return ldr_fail(db, LARDER_ENOTFOUND, e,
					"no SQLite database at '%s'", path);
		return ldr_fail_errno(db, e, "cannot stat '%s': %s", path,
				      strerror(e));
	}
	if (!S_ISREG(st.st_mode))
		return ldr_fail(db, LARDER_EINVAL, 0,
				"'%s' is not a file (an SQLite database is)",
				path);
	int rc = sq_load(db); /* after the checks that need no SQLite */
	if (rc)
		return rc;
	struct ldr_sql_conn *c = calloc(1, sizeof *c);
	if (!c)
		return ldr_fail(db, LARDER_ENOMEM, ENOMEM, "out of memory");
	c->db = db;
	c->path = strdup(path);
	c->real = realpath(path, NULL);
	/* Numbers are formatted the same whatever locale the program set. */
	c->cloc = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0);
	if (!c->path || !c->real || !c->cloc) {
		int e = errno;
		sq_close(c);
		if (e == ENOMEM || !e)
			return ldr_fail(db, LARDER_ENOMEM, ENOMEM,
					"out of memory");
		return ldr_fail_errno(db, e, "cannot resolve '%s': %s", path,
				      strerror(e));
	}
	int flags = write ? SQLITE_OPEN_READWRITE : SQLITE_OPEN_READONLY;
	rc = sq.sqlite3_open_v2(path, &c->h, flags, NULL);
	if (rc != SQLITE_OK) {
		rc = c->h
			 ? sq_fail(c, rc, "cannot open")
			 : ldr_fail(db, LARDER_ENOMEM, ENOMEM, "out of memory");
		sq_close(c);
		return rc;
	}
	sq.sqlite3_busy_timeout(c->h, BUSY_TIMEOUT_MS);
	/* Read the header now: a file that is no database says so here,
	 * whatever the query (SELECT 1 would never look). */
	rc = sq.sqlite3_exec(c->h, "PRAGMA schema_version", NULL, NULL, NULL);
	if (rc != SQLITE_OK) {
		rc = sq_fail(c, rc, "cannot read it");
		sq_close(c);
		return rc;
	}
	*out = c;
	return 0;
}

static int sq_identity(struct ldr_sql_conn *c, char *buf, size_t size)
{
	int n = snprintf(buf, size, "sqlite:%s", c->real);
	if (n < 0 || (size_t)n >= size)
		return ldr_fail(c->db, LARDER_EINVAL, 0, "path too long: '%s'",
				c->real);
	return 0;
}

static int sq_exec(struct ldr_sql_conn *c, const char *sql, const char *what)
{
	int rc = sq.sqlite3_exec(c->h, sql, NULL, NULL, NULL);
	return rc == SQLITE_OK ? 0 : sq_fail(c, rc, what);
}

/* A deferred transaction: the snapshot starts at the first read and holds
 * until end() (WAL: a fixed snapshot; rollback journal: a SHARED lock, so
 * that no writer commits meanwhile). */
static int sq_begin(struct ldr_sql_conn *c)
{
	return sq_exec(c, "BEGIN", "cannot begin a read transaction");
}

static int sq_end(struct ldr_sql_conn *c)
{
	/* An error may have rolled the transaction back already. */
	if (sq.sqlite3_get_autocommit(c->h))
		return 0;
	return sq_exec(c, "ROLLBACK", "cannot end the read transaction");
}

/* Prepare exactly one statement, or take it from the cache: text after
 * the first one is refused (it would silently not run). Give it back with
 * done(). */
static int prepare(struct ldr_sql_conn *c, const char *sql, sqlite3_stmt **out)
{
	const char *tail = NULL;
	*out = NULL;
	for (int i = 0; i < STMT_CACHE; i++) {
		if (c->cache[i].sql && strcmp(c->cache[i].sql, sql) == 0) {
			*out = c->cache[i].st;
			return 0;
		}
	}
	int rc = sq.sqlite3_prepare_v2(c->h, sql, -1, out, &tail);
	if (rc != SQLITE_OK)
		return sq_fail(c, rc, "cannot prepare the query");
	if (!*out)
		return ldr_fail(c->db, LARDER_EINVAL, 0,
				"SQLite database '%s': the query is empty",
				c->path);
	if (tail && *tail) {
		sqlite3_stmt *next = NULL;
		rc = sq.sqlite3_prepare_v2(c->h, tail, -1, &next, NULL);
		sq.sqlite3_finalize(next);
		if (rc != SQLITE_OK || next) {
			sq.sqlite3_finalize(*out);
			*out = NULL;
			return ldr_fail(c->db, LARDER_EINVAL, 0,
					"SQLite database '%s': more than one "
					"statement in the query (only one "
					"runs)",
					c->path);
		}
	}
	char *copy = strdup(sql);
	if (!copy) {
		sq.sqlite3_finalize(*out);
		*out = NULL;
		return ldr_fail(c->db, LARDER_ENOMEM, ENOMEM, "out of memory");
	}
	unsigned slot = c->next++ % STMT_CACHE;
	sq.sqlite3_finalize(c->cache[slot].st);
	free(c->cache[slot].sql);
	c->cache[slot].sql = copy;
	c->cache[slot].st = *out;
	return 0;
}

/* Done with a statement from prepare(): reset, so that it holds no lock
 * and can run again. */
static void done(sqlite3_stmt *st)
{
	sq.sqlite3_reset(st);
	sq.sqlite3_clear_bindings(st);
}

static int sq_nparams(struct ldr_sql_conn *c, const char *sql, size_t *out)
{
	sqlite3_stmt *st;
	*out = 0;
	int rc = prepare(c, sql, &st);
	if (rc)
		return rc;
	*out = (size_t)sq.sqlite3_bind_parameter_count(st);
	done(st);
	return 0;
}

/* A REAL as the shortest text that reads back as the same double, with a
 * ".0" when it would look like an integer (as SQLite writes them):
 * 0.1 → "0.1", 100.0 → "100.0", 1e300 → "1.0e+300". */
static void real_text(struct ldr_sql_conn *c, double d, char *buf, size_t size)
{
	if (isinf(d)) {
		snprintf(buf, size, "%s", d > 0 ? "Infinity" : "-Infinity");
		return;
	}
	if (isnan(d)) {
		snprintf(buf, size, "NaN");
		return;
	}
	locale_t old = uselocale(c->cloc);
	for (int prec = 15; prec <= 17; prec++) {
		snprintf(buf, size, "%.*g", prec, d);
		if (strtod(buf, NULL) == d)
			break;
	}
	uselocale(old);
	if (!strpbrk(buf, ".e")) {
		strncat(buf, ".0", size - strlen(buf) - 1);
	} else if (!strchr(buf, '.')) {
		char *e = strchr(buf, 'e');
		size_t n = strlen(buf);
		if (n + 2 < size) {
			memmove(e + 2, e, n - (size_t)(e - buf) + 1);
			memcpy(e, ".0", 2);
		}
	}
}

#define REAL_TEXT 40

static int sq_query(struct ldr_sql_conn *c, const char *sql,
		    const char *const *params, size_t nparams,
		    const struct ldr_sql_sink *sink)
{
	sqlite3_stmt *st;
	const char **names = NULL, **val = NULL;
	size_t *len = NULL;
	int *kind = NULL;
	char *reals = NULL;
	int rc = prepare(c, sql, &st);
	if (rc)
		return rc;
	size_t ncol = (size_t)sq.sqlite3_column_count(st);
	if (ncol == 0 || !sq.sqlite3_stmt_readonly(st)) {
		rc = ldr_fail(c->db, LARDER_EINVAL, 0,
			      "SQLite database '%s': not a query that reads "
			      "rows (only those can be cached)",
			      c->path);
		goto out;
	}
	size_t want = (size_t)sq.sqlite3_bind_parameter_count(st);
	if (want != nparams) {
		rc = ldr_fail(c->db, LARDER_EINVAL, 0,
			      "SQLite database '%s': the query takes %zu "
			      "parameter%s, %zu given",
			      c->path, want, want == 1 ? "" : "s", nparams);
		goto out;
	}
	for (size_t i = 0; i < nparams; i++) {
		int r = params[i]
			    ? sq.sqlite3_bind_text(st, (int)i + 1, params[i],
						   -1, SQLITE_STATIC)
			    : sq.sqlite3_bind_null(st, (int)i + 1);
		if (r != SQLITE_OK) {
			rc = sq_fail(c, r, "cannot bind a parameter");
			goto out;
		}
	}
	names = calloc(ncol, sizeof *names);
	val = calloc(ncol, sizeof *val);
	len = calloc(ncol, sizeof *len);
	kind = calloc(ncol, sizeof *kind);
	reals = malloc(ncol * REAL_TEXT);
	if (!names || !val || !len || !kind || !reals) {
		rc = ldr_fail(c->db, LARDER_ENOMEM, ENOMEM, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < ncol; i++) {
		names[i] = sq.sqlite3_column_name(st, (int)i);
		if (!names[i]) {
			rc = ldr_fail(c->db, LARDER_ENOMEM, ENOMEM,
				      "out of memory");
			goto out;
		}
	}
	rc = sink->columns(sink->payload, ncol, names);
	while (rc == 0) {
		int r = sq.sqlite3_step(st);
		if (r == SQLITE_DONE)
			break;
		if (r != SQLITE_ROW) {
			rc = sq_fail(c, r, "cannot read the rows");
			break;
		}
		for (size_t i = 0; i < ncol; i++) {
			int col = (int)i;
			switch (sq.sqlite3_column_type(st, col)) {
			case SQLITE_NULL:
				kind[i] = LDR_SQL_NULL;
				val[i] = NULL;
				len[i] = 0;
				continue;
			case SQLITE_INTEGER:
				kind[i] = LDR_SQL_INT;
				val[i] = (const char *)sq.sqlite3_column_text(
				    st, col);
				break;
			case SQLITE_FLOAT: {
				char *b = reals + i * REAL_TEXT;
				real_text(c, sq.sqlite3_column_double(st, col),
					  b, REAL_TEXT);
				kind[i] = LDR_SQL_REAL;
				val[i] = b;
				len[i] = strlen(b);
				continue;
			}
			case SQLITE_BLOB:
				kind[i] = LDR_SQL_BLOB;
				val[i] = sq.sqlite3_column_blob(st, col);
				break;
			default:
				kind[i] = LDR_SQL_TEXT;
				val[i] = (const char *)sq.sqlite3_column_text(
				    st, col);
				break;
			}
			/* After the text or blob call, as SQLite asks. */
			len[i] = (size_t)sq.sqlite3_column_bytes(st, col);
			if (!val[i]) {
				if (len[i] ||
				    sq.sqlite3_errcode(c->h) == SQLITE_NOMEM) {
					rc = ldr_fail(c->db, LARDER_ENOMEM,
						      ENOMEM, "out of memory");
					break;
				}
				val[i] = ""; /* a zero-length blob */
			}
		}
		if (rc == 0)
			rc = sink->row(sink->payload, ncol, val, len, kind);
	}
out:
	done(st);
	free(names);
	free(val);
	free(len);
	free(kind);
	free(reals);
	return rc;
}

/* ---------------------------------------------------------------------- */
/* Tracked tables                                                          */
/*
 * larder_changes(tbl, token, n) holds one row per tracked table; three
 * triggers (larder_track_<table>_ins, _upd, _del) add 1 to n for every
 * row inserted, updated or deleted, in the writer's own transaction. The
 * token is random, chosen when the counter is (re)made, so that a
 * counter made again never repeats an old version.
 */

static const char *const trigger_event[3][2] = {
    {"ins", "INSERT"}, {"upd", "UPDATE"}, {"del", "DELETE"}};

/* Whether `name` is a table (or view) of the main schema. The first
 * call of a connection loads the schema, as any statement would. */
static int has_table(struct ldr_sql_conn *c, const char *name, int *out)
{
	int r = sq.sqlite3_table_column_metadata(c->h, "main", name, NULL, NULL,
						 NULL, NULL, NULL, NULL);
	*out = r == SQLITE_OK;
	if (r == SQLITE_OK || r == SQLITE_ERROR) /* ERROR: no such table */
		return 0;
	return sq_fail(c, r, "cannot read the schema");
}

static int canonical_name(struct ldr_sql_conn *c, const char *table,
			  char **out);

/*
 * The table's version: "<token> <n> <schema version>". The schema
 * version (PRAGMA schema_version) moves with every schema change in the
 * database, so an ALTER TABLE — which no trigger sees — still changes
 * it. The triggers are checked to be there, on this table: a table
 * dropped and made again has lost them, and its counter would stand
 * still while the new table changes. Two small statements, so that a
 * hit stays cheap; the reasons for a failure are looked up only then.
 */
static int sq_table_version(struct ldr_sql_conn *c, const char *table,
			    char *buf, size_t size)
{
	sqlite3_stmt *st = NULL;
	int have = 0, found = 0, triggers = 0;
	char token[80] = "";
	long long n = 0, schema = 0;
	int rc = has_table(c, "larder_changes", &have);
	if (rc == 0 && have)
		rc = prepare(c,
			     "SELECT c.token, c.n, (SELECT count(*) FROM "
			     "sqlite_schema WHERE type = 'trigger' AND "
			     "tbl_name = c.tbl AND name IN ('larder_track_' || "
			     "c.tbl || '_ins', 'larder_track_' || c.tbl || "
			     "'_upd', 'larder_track_' || c.tbl || '_del')) "
			     "FROM larder_changes c WHERE c.tbl = ?1 COLLATE "
			     "NOCASE",
			     &st);
	if (rc)
		return rc;
	if (st) {
		sq.sqlite3_bind_text(st, 1, table, -1, SQLITE_STATIC);
		int r = sq.sqlite3_step(st);
		if (r == SQLITE_ROW) {
			found = 1;
			snprintf(token, sizeof token, "%s",
				 (const char *)sq.sqlite3_column_text(st, 0));
			n = sq.sqlite3_column_int64(st, 1);
			triggers = sq.sqlite3_column_int(st, 2);
		} else if (r != SQLITE_DONE) {
			rc = sq_fail(c, r, "cannot read the change counter");
		}
		done(st);
		if (rc)
			return rc;
	}
	if (!found) {
		char *name = NULL;
		rc = canonical_name(c, table, &name);
		free(name);
		if (rc)
			return rc;
		if (!name)
			return ldr_fail(c->db, LARDER_EINVAL, 0,
					"SQLite database '%s': no table '%s'",
					c->path, table);
		return ldr_fail(
		    c->db, LARDER_ENOTFOUND, 0,
		    "SQLite database '%s': table '%s' is not "
		    "tracked (run: larder sql track --db '%s' '%s')",
		    c->path, table, c->path, table);
	}
	if (triggers != 3)
		return ldr_fail(c->db, LARDER_ENOTFOUND, 0,
				"SQLite database '%s': the change triggers of "
				"table '%s' are gone (was it dropped or made "
				"again?); run: larder sql track --db '%s' '%s'",
				c->path, table, c->path, table);
	rc = prepare(c, "PRAGMA schema_version", &st);
	if (rc)
		return rc;
	int r = sq.sqlite3_step(st);
	if (r == SQLITE_ROW)
		schema = sq.sqlite3_column_int64(st, 0);
	else
		rc = sq_fail(c, r, "cannot read the schema version");
	done(st);
	if (rc)
		return rc;
	int len = snprintf(buf, size, "%s %lld %lld", token, n, schema);
	if (len < 0 || (size_t)len >= size || !*token)
		return ldr_fail(c->db, LARDER_EINVAL, 0,
				"SQLite database '%s': a bad change counter "
				"for table '%s'",
				c->path, table);
	return 0;
}

/* The table's name as the schema spells it (SQLite's names ignore ASCII
 * case): into *out (malloc'ed), or NULL if there is no such table. A
 * view is refused: it has no rows of its own to count. */
static int canonical_name(struct ldr_sql_conn *c, const char *table, char **out)
{
	sqlite3_stmt *st;
	*out = NULL;
	int rc = prepare(c,
			 "SELECT name, type FROM sqlite_schema WHERE type IN "
			 "('table', 'view') AND name = ?1 COLLATE NOCASE",
			 &st);
	if (rc)
		return rc;
	sq.sqlite3_bind_text(st, 1, table, -1, SQLITE_STATIC);
	int r = sq.sqlite3_step(st);
	if (r == SQLITE_ROW) {
		if (strcmp((const char *)sq.sqlite3_column_text(st, 1),
			   "view") == 0)
			rc = ldr_fail(c->db, LARDER_EINVAL, 0,
				      "SQLite database '%s': '%s' is a view; "
				      "only tables can be tracked",
				      c->path, table);
		else if (!(*out = strdup(
			       (const char *)sq.sqlite3_column_text(st, 0))))
			rc = ldr_fail(c->db, LARDER_ENOMEM, ENOMEM,
				      "out of memory");
	} else if (r != SQLITE_DONE) {
		rc = sq_fail(c, r, "cannot read the schema");
	}
	done(st);
	return rc;
}

/* Run sqlite3_mprintf'ed SQL. */
static int exec_fmt(struct ldr_sql_conn *c, const char *what, const char *fmt,
		    ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *sql = sq.sqlite3_vmprintf(fmt, ap);
	va_end(ap);
	if (!sql)
		return ldr_fail(c->db, LARDER_ENOMEM, ENOMEM, "out of memory");
	int rc = sq_exec(c, sql, what);
	sq.sqlite3_free(sql);
	return rc;
}

/* Count the row of `name` in larder_changes (0 or 1) and its triggers. */
static int tracked_state(struct ldr_sql_conn *c, const char *name, int *row,
			 int *triggers)
{
	sqlite3_stmt *st;
	int rc = prepare(c,
			 "SELECT (SELECT count(*) FROM larder_changes WHERE "
			 "tbl = ?1), (SELECT count(*) FROM sqlite_schema "
			 "WHERE type = 'trigger' AND tbl_name = ?1 AND name "
			 "IN ('larder_track_' || ?1 || '_ins', "
			 "'larder_track_' || ?1 || '_upd', 'larder_track_' || "
			 "?1 || '_del'))",
			 &st);
	if (rc)
		return rc;
	sq.sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	int r = sq.sqlite3_step(st);
	if (r == SQLITE_ROW) {
		*row = sq.sqlite3_column_int(st, 0);
		*triggers = sq.sqlite3_column_int(st, 1);
	} else {
		rc = sq_fail(c, r, "cannot read the change counter");
	}
	done(st);
	return rc;
}

static int drop_triggers(struct ldr_sql_conn *c, const char *name)
{
	int rc = 0;
	for (int i = 0; rc == 0 && i < 3; i++)
		rc = exec_fmt(c, "cannot drop a trigger",
			      "DROP TRIGGER IF EXISTS \"larder_track_%w_%s\"",
			      name, trigger_event[i][0]);
	return rc;
}

/* One IMMEDIATE transaction: it takes the write lock at once, so two
 * trackers (or a tracker and a writer) queue on the busy timeout instead
 * of deadlocking on a lock upgrade. */
static int sq_track(struct ldr_sql_conn *c, const char *table)
{
	char *name = NULL;
	int rc = sq_exec(c, "BEGIN IMMEDIATE",
			 "cannot begin a write "
			 "transaction");
	if (rc)
		return rc;
	rc = canonical_name(c, table, &name);
	if (rc == 0 && !name)
		rc = ldr_fail(c->db, LARDER_EINVAL, 0,
			      "SQLite database '%s': no table '%s'", c->path,
			      table);
	if (rc == 0 && sq.sqlite3_stricmp(name, "larder_changes") == 0)
		rc = ldr_fail(c->db, LARDER_EINVAL, 0,
			      "SQLite database '%s': larder_changes is "
			      "larder's own table",
			      c->path);
	if (rc == 0)
		rc = sq_exec(c,
			     "CREATE TABLE IF NOT EXISTS larder_changes(tbl "
			     "TEXT PRIMARY KEY, token TEXT NOT NULL, n INTEGER "
			     "NOT NULL)",
			     "cannot create larder_changes");
	int row = 0, triggers = 0;
	if (rc == 0)
		rc = tracked_state(c, name, &row, &triggers);
	if (rc == 0 && (row != 1 || triggers != 3)) {
		/* Missing parts: the table may have changed unseen, so
		 * everything is made again under a new token. */
		rc = drop_triggers(c, name);
		for (int i = 0; rc == 0 && i < 3; i++)
			rc = exec_fmt(
			    c, "cannot create a trigger",
			    "CREATE TRIGGER \"larder_track_%w_%s\" AFTER %s ON "
			    "\"%w\" FOR EACH ROW BEGIN UPDATE larder_changes "
			    "SET n = n + 1 WHERE tbl = '%q'; END",
			    name, trigger_event[i][0], trigger_event[i][1],
			    name, name);
		if (rc == 0)
			rc =
			    exec_fmt(c, "cannot make the change counter",
				     "INSERT OR REPLACE INTO larder_changes "
				     "VALUES('%q', lower(hex(randomblob(16))), "
				     "0)",
				     name);
	}
	if (rc == 0)
		rc = sq_exec(c, "COMMIT", "cannot commit");
	if (rc)
		sq_end(c);
	free(name);
	return rc;
}

/* Remove the triggers and the counter's row; nothing to remove is fine.
 * The table need not exist any more. */
static int sq_untrack(struct ldr_sql_conn *c, const char *table)
{
	char *name = NULL;
	int have = 0;
	int rc = sq_exec(c, "BEGIN IMMEDIATE",
			 "cannot begin a write "
			 "transaction");
	if (rc)
		return rc;
	rc = canonical_name(c, table, &name);
	if (rc == 0)
		rc = drop_triggers(c, name ? name : table);
	if (rc == 0)
		rc = has_table(c, "larder_changes", &have);
	if (rc == 0 && have)
		rc = exec_fmt(c, "cannot remove the change counter",
			      "DELETE FROM larder_changes WHERE tbl = '%q' "
			      "COLLATE NOCASE",
			      name ? name : table);
	if (rc == 0)
		rc = sq_exec(c, "COMMIT", "cannot commit");
	if (rc)
		sq_end(c);
	free(name);
	return rc;
}

const struct ldr_sql_ops ldr_sql_sqlite = {
    .name = "sqlite",
    .open = sq_open,
    .identity = sq_identity,
    .begin = sq_begin,
    .query = sq_query,
    .nparams = sq_nparams,
    .end = sq_end,
    .table_version = sq_table_version,
    .track = sq_track,
    .untrack = sq_untrack,
    .close = sq_close,
};
