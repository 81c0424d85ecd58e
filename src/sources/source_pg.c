/*
 * source_pg.c — PostgreSQL through libpq, behind struct ldr_sql_ops
 * (sql_source.h): connecting, the database's identity, a REPEATABLE READ
 * READ ONLY snapshot, queries streamed row by row (single-row mode), and
 * the change counter that `larder sql track` installs.
 *
 * The output settings are fixed for every snapshot (ISO dates, UTC, hex
 * bytea, UTF-8, shortest exact floats): the key names the query, not the
 * client's environment, so two hosts with different PGTZ or PGDATESTYLE
 * must produce the same bytes for it.
 *
 * Change counter: in the schema of each tracked table, a table
 *   larder_changes(tbl text primary key, token text, n bigint)
 * with one row per tracked table (tbl is its quoted, schema-qualified
 * name), a SECURITY DEFINER trigger function larder_track_count() and, on
 * the table, a statement-level AFTER INSERT OR UPDATE OR DELETE OR
 * TRUNCATE trigger that adds one to the row. The version is
 * "<token> <n> <definition>": the token is random per track, so a counter
 * that starts again from 0 never repeats an old version, and the
 * definition is a hash of what ALTER TABLE changes unseen by triggers.
 * docs/sql.md has the details.
 *
 * Connections are kept for the next call: a store handle holds a few idle
 * ones (struct ldr_pg_pool, below), since connecting is most of what a
 * warm hit costs.
 *
 * libpq is loaded on the first use (dlopen, "Loading libpq" below), not
 * linked: it brings some twenty libraries (TLS, Kerberos, LDAP, ...)
 * whose loading and relocation every process using liblarder would pay,
 * a `larder get` included, for a source most of them never touch.
 */
#include <errno.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "dl.h"
#include "err.h"
#include "sql_source.h"
#include "store.h"

/* Type OIDs (PostgreSQL's catalog/pg_type_d.h, fixed since long ago; the
 * server headers are not part of libpq-dev). */
#define OID_BOOL 16
#define OID_BYTEA 17
#define OID_INT8 20
#define OID_INT2 21
#define OID_INT4 23
#define OID_OID 26
#define OID_JSON 114
#define OID_FLOAT4 700
#define OID_FLOAT8 701
#define OID_NUMERIC 1700
#define OID_JSONB 3802

/* What connect adds unless the connection string or the environment says
 * otherwise. */
#define CONNECT_TIMEOUT "10"

/* The output settings of every snapshot (see the top of the file); each
 * one changes the text of some type's values. SET LOCAL, inside the
 * snapshot's transaction: they hold for exactly the statements that read,
 * whatever the session did before, and SET takes no snapshot, so the
 * first read still does. The encoding is a connection parameter (libpq's
 * own quoting depends on it). */
static const char begin_sql[] =
    "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; "
    "SET LOCAL DateStyle = 'ISO, MDY'; SET LOCAL IntervalStyle = 'postgres'; "
    "SET LOCAL TimeZone = 'UTC'; SET LOCAL extra_float_digits = 1; "
    "SET LOCAL bytea_output = 'hex'; SET LOCAL lc_monetary = 'C'";

struct col {
	int kind;  /* enum ldr_sql_kind of the column's type */
	char *buf; /* decoded bytea */
	size_t cap;
};

struct ldr_sql_conn {
	larder *db;
	PGconn *pg;
	char *secret; /* the password, to keep out of messages */
	char identity[512];
	char *uri;	 /* as given: to connect again */
	char *key;	 /* what the cache matches (conn_key); NULL: not kept */
	int has_timeout; /* the user chose a connect timeout */
	pid_t pid;	 /* the process that connected */
	int reused;	 /* from the cache, and no command run yet */
	int dirty;	 /* a command failed or a query was cancelled */
	/* the current query's columns and one row's values */
	size_t ncol, cap;
	struct col *cols;
	const char **names, **val;
	size_t *len;
	int *kind;
};

/* ---------------------------------------------------------------------- */
/* Loading libpq                                                           */

/* The library's name with its ABI version (libpq-fe.h's functions have
 * kept their signatures since version 5). */
#define LIBPQ_SONAME "libpq.so.5"

/* What to install when it is missing (the Debian package). */
#define LIBPQ_HINT "apt-get install libpq5"

/* Every libpq function this file calls, each called through pq.<name>:
 * the header still declares them, so a member has exactly the type of
 * the function it stands for. */
#define PQ_FUNCS(X)                                                            \
	X(PQcancel)                                                            \
	X(PQclear)                                                             \
	X(PQconnectdbParams)                                                   \
	X(PQconnectionNeedsPassword)                                           \
	X(PQconninfoFree)                                                      \
	X(PQconninfoParse)                                                     \
	X(PQdb)                                                                \
	X(PQdescribePrepared)                                                  \
	X(PQerrorMessage)                                                      \
	X(PQescapeIdentifier)                                                  \
	X(PQescapeLiteral)                                                     \
	X(PQexec)                                                              \
	X(PQexecParams)                                                        \
	X(PQfinish)                                                            \
	X(PQfname)                                                             \
	X(PQfreeCancel)                                                        \
	X(PQfreemem)                                                           \
	X(PQftype)                                                             \
	X(PQgetCancel)                                                         \
	X(PQgetResult)                                                         \
	X(PQgetisnull)                                                         \
	X(PQgetlength)                                                         \
	X(PQgetvalue)                                                          \
	X(PQhost)                                                              \
	X(PQnfields)                                                           \
	X(PQnparams)                                                           \
	X(PQntuples)                                                           \
	X(PQport)                                                              \
	X(PQprepare)                                                           \
	X(PQresultErrorField)                                                  \
	X(PQresultErrorMessage)                                                \
	X(PQresultStatus)                                                      \
	X(PQsendQueryParams)                                                   \
	X(PQsetNoticeProcessor)                                                \
	X(PQsetSingleRowMode)                                                  \
	X(PQstatus)                                                            \
	X(PQtransactionStatus)                                                 \
	X(PQuser)

struct pq_api {
#define PQ_MEMBER(f) __typeof__(f) *f;
	PQ_FUNCS(PQ_MEMBER)
#undef PQ_MEMBER
};

/* Filled once by pq_load_once and never changed after: read without a
 * lock, since pthread_once orders the filling before every return from
 * pthread_once. The library is never closed (libpq keeps state, such as
 * OpenSSL's, that unloading would pull from under it). */
static struct pq_api pq;
static pthread_once_t pq_once = PTHREAD_ONCE_INIT;
static char pq_error[400]; /* why it could not be loaded; "" if it was */

static void pq_load_once(void)
{
	void *h = ldr_dl_open(LIBPQ_SONAME, pq_error, sizeof pq_error);
	if (!h)
		return;
	struct pq_api t;
#define PQ_RESOLVE(f)                                                          \
	if (ldr_dl_fn(h, LIBPQ_SONAME, #f, &t.f, pq_error, sizeof pq_error))   \
		return;
	PQ_FUNCS(PQ_RESOLVE)
#undef PQ_RESOLVE
	pq = t;
}

/* Whether libpq is loaded, loading it if no call has tried yet. */
static int pq_ready(void)
{
	return pthread_once(&pq_once, pq_load_once) == 0 && pq.PQfinish != NULL;
}

/* pq_ready, else LARDER_EIO with a message that names the library and
 * how to install it. */
static int pq_load(larder *db)
{
	if (pq_ready())
		return 0;
	return ldr_fail(db, LARDER_EIO, 0,
			"PostgreSQL support needs " LIBPQ_SONAME " (" LIBPQ_HINT
			"): %s",
			pq_error[0] ? pq_error : "pthread_once failed");
}

/* ---------------------------------------------------------------------- */
/* Messages                                                                */

/* libpq's message on one line: a line break becomes "; " (or a space
 * after punctuation), trailing whitespace goes, and the password (if
 * any) is masked. */
static void tidy(char *out, size_t size, const char *msg, const char *secret)
{
	size_t o = 0, slen = secret ? strlen(secret) : 0;
	int brk = 0;
	if (!msg)
		msg = "";
	for (const char *p = msg; *p && o + 3 < size;) {
		if (*p == '\n' || *p == '\t' || *p == '\r') {
			brk = 1;
			p++;
			continue;
		}
		if (brk && o > 0) {
			if (!strchr(".:;,", out[o - 1]))
				out[o++] = ';';
			out[o++] = ' ';
		}
		brk = 0;
		/* Short secrets would mask ordinary words; libpq never
		 * prints the password anyway, this is a second guard. */
		if (slen >= 4 && strncmp(p, secret, slen) == 0) {
			for (const char *m = "***"; *m && o + 1 < size; m++)
				out[o++] = *m;
			p += slen;
			continue;
		}
		out[o++] = *p++;
	}
	while (o > 0 && out[o - 1] == ' ')
		o--;
	out[o] = '\0';
}

/* The code for a failed command, from its SQLSTATE. */
static int state_code(PGconn *pg, const char *st)
{
	if (pq.PQstatus(pg) != CONNECTION_OK)
		return LARDER_EIO; /* connection lost */
	if (!st || strlen(st) != 5)
		return LARDER_EIO; /* libpq's own failure */
	if (strcmp(st, "42501") == 0 || strncmp(st, "28", 2) == 0)
		return LARDER_EPERM; /* insufficient privilege, authorization */
	if (strcmp(st, "3D000") == 0)
		return LARDER_ENOTFOUND; /* no such database */
	if (strcmp(st, "08P01") == 0)
		return LARDER_EINVAL; /* e.g. fewer parameters than $N */
	/* connection, resources, operator intervention (cancel, shutdown,
	 * terminated backend), system errors, internal errors, and
	 * transaction rollbacks (serialization, deadlock) */
	static const char *const io[] = {"08", "40", "53", "57", "58", "XX"};
	for (size_t i = 0; i < sizeof io / sizeof io[0]; i++)
		if (strncmp(st, io[i], 2) == 0)
			return LARDER_EIO;
	return LARDER_EINVAL; /* the database rejected the SQL */
}

/* Record a failed command: "PostgreSQL: <what>: <message> (<detail>)
 * (hint: <hint>) [SQLSTATE <code>]", the parts the server gave. r NULL (or
 * a result libpq made itself): its message or the connection's. */
static int fail_pg(struct ldr_sql_conn *c, const PGresult *r, const char *what)
{
	char msg[600], detail[300] = "", hint[300] = "", state[32] = "";
	const char *st = r ? pq.PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
	c->dirty = 1; /* not worth knowing what it left behind: not kept */
	const char *primary =
	    r ? pq.PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;
	if (primary) {
		tidy(msg, sizeof msg, primary, c->secret);
		tidy(detail, sizeof detail,
		     pq.PQresultErrorField(r, PG_DIAG_MESSAGE_DETAIL),
		     c->secret);
		tidy(hint, sizeof hint,
		     pq.PQresultErrorField(r, PG_DIAG_MESSAGE_HINT), c->secret);
	} else {
		const char *m = r ? pq.PQresultErrorMessage(r) : "";
		tidy(msg, sizeof msg, *m ? m : pq.PQerrorMessage(c->pg),
		     c->secret);
	}
	if (!msg[0])
		snprintf(msg, sizeof msg, "%s",
			 pq.PQstatus(c->pg) == CONNECTION_OK
			     ? "unknown error"
			     : "connection lost");
	if (st)
		snprintf(state, sizeof state, " [SQLSTATE %s]", st);
	return ldr_fail(
	    c->db, state_code(c->pg, st), 0, "PostgreSQL: %s: %s%s%s%s%s%s%s%s",
	    what, msg, detail[0] ? " (" : "", detail, detail[0] ? ")" : "",
	    hint[0] ? " (hint: " : "", hint, hint[0] ? ")" : "", state);
}

/* Run a command that returns no rows (or whose rows do not matter). */
static int exec_cmd(struct ldr_sql_conn *c, const char *sql, const char *what)
{
	PGresult *r = pq.PQexec(c->pg, sql);
	int rc = 0;
	ExecStatusType s = r ? pq.PQresultStatus(r) : PGRES_FATAL_ERROR;
	if (s != PGRES_COMMAND_OK && s != PGRES_TUPLES_OK)
		rc = fail_pg(c, r, what);
	pq.PQclear(r);
	return rc;
}

/* Run a parameterized command whose rows do not matter. */
static int exec_params(struct ldr_sql_conn *c, const char *sql, int n,
		       const char *const *params, const char *what)
{
	PGresult *r =
	    pq.PQexecParams(c->pg, sql, n, NULL, params, NULL, NULL, 0);
	int rc = 0;
	ExecStatusType s = r ? pq.PQresultStatus(r) : PGRES_FATAL_ERROR;
	if (s != PGRES_COMMAND_OK && s != PGRES_TUPLES_OK)
		rc = fail_pg(c, r, what);
	pq.PQclear(r);
	return rc;
}

/* One row of text values of a parameterized query; *out NULL and 0 when
 * it returned no row. The caller PQclear()s *out. */
static int exec_row(struct ldr_sql_conn *c, PGresult **out, const char *sql,
		    int n, const char *const *params, const char *what)
{
	*out = NULL;
	PGresult *r =
	    pq.PQexecParams(c->pg, sql, n, NULL, params, NULL, NULL, 0);
	if (!r || pq.PQresultStatus(r) != PGRES_TUPLES_OK) {
		int rc = fail_pg(c, r, what);
		pq.PQclear(r);
		return rc;
	}
	if (pq.PQntuples(r) == 0) {
		pq.PQclear(r);
		return 0;
	}
	*out = r;
	return 0;
}

/* Server notices (e.g. "relation already exists, skipping") are logged,
 * never printed: the library prints nothing. */
static void on_notice(void *arg, const char *message)
{
	struct ldr_sql_conn *c = arg;
	if (c->db) {
		char m[512];
		tidy(m, sizeof m, message, c->secret);
		ldr_log(c->db, LARDER_LOG_DEBUG, "PostgreSQL: %s", m);
	}
}

/* ---------------------------------------------------------------------- */
/* Connecting                                                              */

/* Why a connection attempt failed, from libpq's message: the server's
 * startup errors carry no SQLSTATE libpq would give us. */
static int connect_code(PGconn *pg, const char *msg)
{
	if (pq.PQconnectionNeedsPassword(pg))
		return LARDER_EPERM;
	static const char *const perm[] = {
	    "password authentication failed",
	    "authentication failed",
	    "no pg_hba.conf entry",
	    "pg_hba.conf rejects",
	    "permission denied",
	    "password is required",
	    "no password supplied",
	    "role \"", /* role "x" does not exist / is not permitted */
	};
	for (size_t i = 0; i < sizeof perm / sizeof perm[0]; i++)
		if (strstr(msg, perm[i]))
			return LARDER_EPERM;
	if (strstr(msg, "database \"") && strstr(msg, "does not exist"))
		return LARDER_ENOTFOUND;
	/* libpq refusing an option's value before any connection attempt */
	if (!strstr(msg, "connection to server") && strstr(msg, "invalid "))
		return LARDER_EINVAL;
	return LARDER_EIO;
}

/* Whether a connection string that libpq could not parse seems to hold a
 * password: "user:password@" in a URI, a password keyword. */
static int has_password(const char *uri)
{
	const char *scheme = strstr(uri, "://");
	if (scheme) {
		const char *at = strchr(scheme + 3, '@');
		const char *colon = strchr(scheme + 3, ':');
		const char *slash = strchr(scheme + 3, '/');
		if (at && colon && colon < at && (!slash || at < slash))
			return 1;
	}
	return strstr(uri, "password") != NULL;
}

/* Copy `s` with every "quoted" part replaced by "...": libpq's message
 * about a connection string it cannot parse may quote the very part that
 * holds the password. */
static void unquote(char *out, size_t size, const char *s)
{
	size_t o = 0;
	int in = 0;
	for (; *s && o + 4 < size; s++) {
		if (*s == '"') {
			in = !in;
			out[o++] = '"';
			if (in) {
				memcpy(out + o, "...", 3);
				o += 3;
			}
			continue;
		}
		if (!in)
			out[o++] = *s;
	}
	out[o] = '\0';
}

/* A name for the key: '/' separates the identity's parts, so it and '%'
 * are percent-encoded inside one. */
static void put_part(char *out, size_t size, size_t *o, const char *s)
{
	for (; *s && *o + 4 < size; s++) {
		if (*s == '/' || *s == '%') {
			*o += (size_t)snprintf(out + *o, size - *o, "%%%02X",
					       (unsigned char)*s);
		} else {
			out[(*o)++] = *s;
		}
	}
	out[*o] = '\0';
}

/* The cluster's system identifier is the same whatever host name, address
 * or socket reached it (and on its physical standbys, which hold the same
 * data at the same versions). Where pg_control_system() is not allowed
 * (some hosted services), the server's address and port stand in. */
static int find_identity(struct ldr_sql_conn *c)
{
	PGresult *r = pq.PQexec(c->pg, "SELECT system_identifier::text, "
				       "current_database(), current_user "
				       "FROM pg_catalog.pg_control_system()");
	char where[300];
	const char *id = NULL;
	int rc = 0;
	if (r && pq.PQresultStatus(r) == PGRES_TUPLES_OK &&
	    pq.PQntuples(r) == 1) {
		id = pq.PQgetvalue(r, 0, 0);
	} else {
		const char *st =
		    r ? pq.PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
		if (!st || strcmp(st, "42501") != 0) {
			rc = fail_pg(c, r, "cannot read the system identifier");
			pq.PQclear(r);
			return rc;
		}
		pq.PQclear(r);
		r = pq.PQexec(c->pg, "SELECT host(inet_server_addr()), "
				     "inet_server_port()::text, "
				     "current_database(), current_user");
		if (!r || pq.PQresultStatus(r) != PGRES_TUPLES_OK ||
		    pq.PQntuples(r) != 1) {
			rc = fail_pg(c, r, "cannot identify the database");
			pq.PQclear(r);
			return rc;
		}
		/* Over a unix socket there is no address: the socket's
		 * directory and port name the server on this host. */
		if (pq.PQgetisnull(r, 0, 0))
			snprintf(where, sizeof where, "%s:%s", pq.PQhost(c->pg),
				 pq.PQport(c->pg));
		else
			snprintf(where, sizeof where, "%s:%s",
				 pq.PQgetvalue(r, 0, 0),
				 pq.PQgetvalue(r, 0, 1));
		id = where;
	}
	int base = pq.PQnfields(r) - 2;
	size_t o =
	    (size_t)snprintf(c->identity, sizeof c->identity, "postgresql:");
	put_part(c->identity, sizeof c->identity, &o, id);
	c->identity[o++] = '/';
	put_part(c->identity, sizeof c->identity, &o,
		 pq.PQgetvalue(r, 0, base));
	c->identity[o++] = '/';
	put_part(c->identity, sizeof c->identity, &o,
		 pq.PQgetvalue(r, 0, base + 1));
	pq.PQclear(r);
	return 0;
}

/* Close the connection and free what it holds. */
static void destroy(struct ldr_sql_conn *c)
{
	pq.PQfinish(c->pg);
	for (size_t i = 0; i < c->cap; i++)
		free(c->cols[i].buf);
	free(c->cols);
	free(c->names);
	free(c->val);
	free(c->len);
	free(c->kind);
	free(c->secret);
	free(c->uri);
	free(c->key);
	free(c);
}

/* Connect c to c->uri and find its identity (c->pg is left for the caller
 * to finish after a failure). */
static int connect_pg(struct ldr_sql_conn *c)
{
	/* With expand_dbname, the connection string in "dbname" is expanded
	 * in place: keywords before it are defaults it overrides. */
	const char *keys[5], *vals[5];
	int n = 0;
	if (!c->has_timeout) {
		keys[n] = "connect_timeout";
		vals[n++] = CONNECT_TIMEOUT;
	}
	keys[n] = "fallback_application_name";
	vals[n++] = "larder";
	keys[n] = "dbname";
	vals[n++] = c->uri;
	keys[n] = "client_encoding"; /* after: over the user's choice */
	vals[n++] = "UTF8";
	keys[n] = NULL;
	vals[n] = NULL;
	c->dirty = 0;
	c->pid = getpid();
	c->pg = pq.PQconnectdbParams(keys, vals, 1);
	if (!c->pg)
		return ldr_fail(c->db, LARDER_ENOMEM, 0,
				"PostgreSQL: out of memory connecting");
	if (pq.PQstatus(c->pg) != CONNECTION_OK) {
		char m[800];
		tidy(m, sizeof m, pq.PQerrorMessage(c->pg), c->secret);
		int rc = connect_code(c->pg, m);
		return ldr_fail(c->db, rc, 0,
				"PostgreSQL: cannot connect to database \"%s\" "
				"as user \"%s\": %s",
				pq.PQdb(c->pg) ? pq.PQdb(c->pg) : "",
				pq.PQuser(c->pg) ? pq.PQuser(c->pg) : "", m);
	}
	pq.PQsetNoticeProcessor(c->pg, on_notice, c);
	return find_identity(c);
}

/* ---------------------------------------------------------------------- */
/* Keeping connections                                                     */

/* A store handle keeps up to POOL_SLOTS idle connections for the next
 * calls: connecting (a server process, SCRAM's 4096 PBKDF2 rounds on each
 * side) is most of what a warm hit costs. A call takes one out for itself
 * and puts it back at the end, so threads sharing the handle never share
 * a PGconn (a call that finds none opens its own). Only a connection that
 * is sound and idle is put back, after DISCARD ALL: what a query did to
 * the session (SET, set_config(), SET ROLE, PREPARE, advisory locks,
 * LISTEN, temporary objects) must not reach the next call, whose key
 * knows nothing of it. DISCARD ALL resets settings to the session's
 * defaults, which keep what the connection string set (client_encoding).
 * More slots than a few would only hold server processes idle; the
 * oldest idle connection goes when a newer one needs its slot.
 *
 * fork(): libpq says a PGconn must not be used in two processes, and
 * PQfinish in a child would send Terminate down the parent's socket and
 * end the parent's session. So the pool (and each connection) records
 * the pid that made it; a process that meets another's pool replaces it
 * with its own and leaves the old one untouched — not its mutex (another
 * thread of the parent may have held it at the fork), not its PGconns,
 * not even their file descriptors (closing a duplicate would be harmless
 * to the parent, but reading the pool's slots may not be: it may have
 * been copied mid-change). What it holds leaks in the child, a few
 * hundred bytes and descriptors that go at exit or exec. */
#define POOL_SLOTS 4

struct ldr_pg_pool {
	pthread_mutex_t mu;
	pid_t pid;
	size_t n;
	struct ldr_sql_conn *idle[POOL_SLOTS]; /* oldest first */
};

/* What a connection depends on besides the string: libpq's PG*
 * environment variables (PGHOST, PGUSER, PGPASSWORD, PGOPTIONS, ...),
 * read at connect time. A process that changes them gets new
 * connections. Holds what the string holds (maybe a password): never
 * printed. */
static char *conn_key(const char *uri)
{
	extern char **environ;
	size_t n = strlen(uri) + 2;
	for (char **e = environ; *e; e++)
		if (strncmp(*e, "PG", 2) == 0)
			n += strlen(*e) + 1;
	char *k = malloc(n);
	if (!k)
		return NULL;
	size_t o = (size_t)snprintf(k, n, "%s\n", uri);
	for (char **e = environ; *e && o < n; e++)
		if (strncmp(*e, "PG", 2) == 0)
			o += (size_t)snprintf(k + o, n - o, "%s\n", *e);
	return k;
}

static void pool_free(void *ptr);

/* The key of the pool's slot on the handle (store.h). */
static const char pool_key;

/* The handle's pool for this process, made on first use; NULL without a
 * handle or memory (then nothing is kept). */
static struct ldr_pg_pool *pool_of(larder *db)
{
	if (!db)
		return NULL;
	pid_t me = getpid();
	struct ldr_pg_pool *p = ldr_slot_get(db, &pool_key);
	if (p && p->pid == me)
		return p;
	struct ldr_pg_pool *n = calloc(1, sizeof *n);
	if (!n || pthread_mutex_init(&n->mu, NULL) != 0) {
		free(n);
		return NULL;
	}
	n->pid = me;
	/* Installed over nothing or over another process's pool (which
	 * pool_free leaves as it is: see above); another thread may have
	 * been first. */
	if (ldr_slot_swap(db, &pool_key, p, n, pool_free) == 0)
		return n;
	pthread_mutex_destroy(&n->mu);
	free(n);
	p = ldr_slot_get(db, &pool_key);
	return p && p->pid == me ? p : NULL;
}

/* The most recently kept idle connection made for `key`, taken out. */
static struct ldr_sql_conn *pool_take(larder *db, const char *key)
{
	struct ldr_pg_pool *p = pool_of(db);
	struct ldr_sql_conn *c = NULL;
	if (!p)
		return NULL;
	pthread_mutex_lock(&p->mu);
	for (size_t i = p->n; i-- > 0;) {
		if (strcmp(p->idle[i]->key, key) == 0) {
			c = p->idle[i];
			memmove(p->idle + i, p->idle + i + 1,
				(p->n - i - 1) * sizeof *p->idle);
			p->n--;
			break;
		}
	}
	pthread_mutex_unlock(&p->mu);
	return c;
}

/* Keep c for a next call if it is sound and idle; 1 if kept. */
static int pool_put(struct ldr_sql_conn *c)
{
	struct ldr_pg_pool *p = c->key ? pool_of(c->db) : NULL;
	if (!p || c->dirty || pq.PQstatus(c->pg) != CONNECTION_OK ||
	    pq.PQtransactionStatus(c->pg) != PQTRANS_IDLE)
		return 0;
	/* Not through exec_cmd: a failure here is no failure of the call,
	 * and must not replace the thread's message. */
	PGresult *r = pq.PQexec(c->pg, "DISCARD ALL");
	int ok = r && pq.PQresultStatus(r) == PGRES_COMMAND_OK;
	pq.PQclear(r);
	if (!ok || pq.PQtransactionStatus(c->pg) != PQTRANS_IDLE)
		return 0;
	struct ldr_sql_conn *old = NULL;
	pthread_mutex_lock(&p->mu);
	if (p->n == POOL_SLOTS) {
		old = p->idle[0];
		memmove(p->idle, p->idle + 1, (p->n - 1) * sizeof *p->idle);
		p->n--;
	}
	p->idle[p->n++] = c;
	pthread_mutex_unlock(&p->mu);
	if (old)
		destroy(old);
	return 1;
}

/* The slot's destructor (larder_close, or a child's new pool). */
static void pool_free(void *ptr)
{
	struct ldr_pg_pool *p = ptr;
	if (!p || p->pid != getpid())
		return; /* another process's: see above */
	for (size_t i = 0; i < p->n; i++)
		destroy(p->idle[i]);
	pthread_mutex_destroy(&p->mu);
	free(p);
}

/* The first command of a call on a kept connection failed. If the
 * connection is gone (its server process terminated, the server
 * restarted, idle_session_timeout) while it sat idle, connect again and
 * say to run the command again (1): it was the call's first, so nothing
 * of the call is lost. Once: a second failure is the call's. */
static int again(struct ldr_sql_conn *c, int *rc)
{
	int reused = c->reused;
	c->reused = 0;
	if (*rc == 0 || !reused || pq.PQstatus(c->pg) == CONNECTION_OK)
		return 0;
	char was[sizeof c->identity], why[300];
	tidy(why, sizeof why, pq.PQerrorMessage(c->pg), c->secret);
	ldr_log(c->db, LARDER_LOG_INFO,
		"PostgreSQL: a kept connection was lost (%s): connecting again",
		why);
	memcpy(was, c->identity, sizeof was);
	pq.PQfinish(c->pg);
	c->pg = NULL;
	int r = connect_pg(c);
	/* The key already holds the identity: a different database behind
	 * the same connection string must not be read under it. */
	if (r == 0 && strcmp(was, c->identity) != 0)
		r = ldr_fail(c->db, LARDER_EIO, 0,
			     "PostgreSQL: on connecting again, the database "
			     "is another (%s, was %s): try again",
			     c->identity, was);
	if (r) {
		c->dirty = 1;
		*rc = r;
		return 0;
	}
	return 1;
}

/* A call's first command: run again once on a new connection when a kept
 * one turns out lost (see again()). */
static int first_cmd(struct ldr_sql_conn *c, const char *sql, const char *what)
{
	int rc = exec_cmd(c, sql, what);
	if (again(c, &rc))
		rc = exec_cmd(c, sql, what);
	return rc;
}

static void pg_close(struct ldr_sql_conn *c)
{
	if (!c)
		return;
	if (c->pg && c->pid != getpid())
		c->pg = NULL; /* another process's: never PQfinish it */
	else if (c->pg && pool_put(c))
		return;
	destroy(c);
}

int ldr_pg_conninfo_ok(const char *s)
{
	/* Without libpq nothing can tell; taking the string for PostgreSQL
	 * makes the open fail with the message that names what is missing,
	 * not with "no SQLite database". */
	if (!pq_ready())
		return 1;
	char *err = NULL;
	PQconninfoOption *opts = pq.PQconninfoParse(s, &err);

	pq.PQfreemem(err);
	if (!opts)
		return 0;
	pq.PQconninfoFree(opts);
	return 1;
}

static int pg_open(struct ldr_sql_conn **out, larder *db, const char *uri,
		   int write)
{
	(void)write; /* track and untrack open their own write transaction */
	*out = NULL;
	int rc = pq_load(db);
	if (rc)
		return rc;
	/* Without memory for the key, the connection is just not kept. */
	char *key = db ? conn_key(uri) : NULL;
	struct ldr_sql_conn *c = key ? pool_take(db, key) : NULL;
	if (c) {
		free(key);
		c->reused = 1;
		*out = c;
		return 0;
	}
	c = calloc(1, sizeof *c);
	if (!c) {
		free(key);
		return ldr_fail(db, LARDER_ENOMEM, 0, "out of memory");
	}
	c->db = db;
	c->key = key;

	/* Parse first: to know the password (kept out of every message)
	 * and whether the user chose a connect timeout. */
	char *perr = NULL;
	PQconninfoOption *opts = pq.PQconninfoParse(uri, &perr);
	if (!opts) {
		char m[512], u[512];
		tidy(m, sizeof m, perr ? perr : "out of memory", NULL);
		if (has_password(uri))
			unquote(u, sizeof u, m);
		else
			snprintf(u, sizeof u, "%s", m);
		pq.PQfreemem(perr);
		destroy(c);
		return ldr_fail(db, LARDER_EINVAL, 0,
				"PostgreSQL: bad connection string: %s", u);
	}
	c->has_timeout = getenv("PGCONNECT_TIMEOUT") != NULL;
	for (PQconninfoOption *o = opts; o->keyword; o++) {
		if (!o->val)
			continue;
		if (strcmp(o->keyword, "password") == 0 && o->val[0])
			c->secret = strdup(o->val);
		if (strcmp(o->keyword, "connect_timeout") == 0)
			c->has_timeout = 1;
	}
	pq.PQconninfoFree(opts);
	c->uri = strdup(uri);
	if (!c->uri) {
		destroy(c);
		return ldr_fail(db, LARDER_ENOMEM, 0, "out of memory");
	}
	rc = connect_pg(c);
	if (rc) {
		destroy(c);
		return rc;
	}
	*out = c;
	return 0;
}

static int pg_identity(struct ldr_sql_conn *c, char *buf, size_t size)
{
	if ((size_t)snprintf(buf, size, "%s", c->identity) >= size)
		return ldr_fail(c->db, LARDER_EINVAL, 0,
				"PostgreSQL: identity longer than %zu bytes",
				size);
	return 0;
}

/* ---------------------------------------------------------------------- */
/* Snapshot and queries                                                    */

static int pg_begin(struct ldr_sql_conn *c)
{
	/* REPEATABLE READ: every statement of the transaction sees the
	 * snapshot taken by its first read. READ ONLY: a query cannot write
	 * through the cache. */
	return first_cmd(c, begin_sql, "cannot begin a read snapshot");
}

static int pg_end(struct ldr_sql_conn *c)
{
	switch (pq.PQtransactionStatus(c->pg)) {
	case PQTRANS_IDLE:
		return 0;
	case PQTRANS_INTRANS:
		return exec_cmd(c, "COMMIT", "cannot end the read snapshot");
	case PQTRANS_INERROR:
		return exec_cmd(c, "ROLLBACK", "cannot end the read snapshot");
	case PQTRANS_ACTIVE: /* a query still running: cannot happen */
	case PQTRANS_UNKNOWN:
	default:
		return fail_pg(c, NULL, "cannot end the read snapshot");
	}
}

/* Room for n columns. Each array grows on its own; cap moves only once
 * all have, so after a failure the next call grows them again (and the
 * columns past cap hold no buffer yet). */
static int grow_cols(struct ldr_sql_conn *c, size_t n)
{
	if (n <= c->cap)
		return 0;
	struct col *cols = realloc(c->cols, n * sizeof *cols);
	if (!cols)
		return LARDER_ENOMEM;
	c->cols = cols;
	memset(cols + c->cap, 0, (n - c->cap) * sizeof *cols);
	const char **names = realloc(c->names, n * sizeof *names);
	if (!names)
		return LARDER_ENOMEM;
	c->names = names;
	const char **val = realloc(c->val, n * sizeof *val);
	if (!val)
		return LARDER_ENOMEM;
	c->val = val;
	size_t *len = realloc(c->len, n * sizeof *len);
	if (!len)
		return LARDER_ENOMEM;
	c->len = len;
	int *kind = realloc(c->kind, n * sizeof *kind);
	if (!kind)
		return LARDER_ENOMEM;
	c->kind = kind;
	c->cap = n;
	return 0;
}

static int kind_of(Oid type)
{
	switch (type) {
	case OID_INT2:
	case OID_INT4:
	case OID_INT8:
	case OID_OID:
		return LDR_SQL_INT;
	case OID_FLOAT4:
	case OID_FLOAT8:
		return LDR_SQL_REAL;
	case OID_NUMERIC:
		return LDR_SQL_NUMERIC;
	case OID_BOOL:
		return LDR_SQL_BOOL;
	case OID_BYTEA:
		return LDR_SQL_BLOB;
	case OID_JSON:
	case OID_JSONB:
		return LDR_SQL_JSON;
	default:
		return LDR_SQL_TEXT; /* as the server writes it */
	}
}

/* The result's columns, to the sink. (Domains arrive as their base
 * type: the server describes them so.) */
static int start_columns(struct ldr_sql_conn *c, const PGresult *r,
			 const struct ldr_sql_sink *sink)
{
	size_t n = (size_t)pq.PQnfields(r);
	if (grow_cols(c, n ? n : 1))
		return ldr_fail(c->db, LARDER_ENOMEM, 0, "out of memory");
	for (size_t i = 0; i < n; i++) {
		c->cols[i].kind = kind_of(pq.PQftype(r, (int)i));
		c->names[i] = pq.PQfname(r, (int)i);
	}
	c->ncol = n;
	return sink->columns(sink->payload, n, c->names);
}

static int hexval(char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

/* bytea's text output (bytea_output = hex, set in every snapshot): "\x"
 * and two hex digits per byte, decoded into the column's buffer. */
static int decode_bytea(struct ldr_sql_conn *c, struct col *col, const char *s,
			size_t n, size_t *out)
{
	if (n < 2 || s[0] != '\\' || s[1] != 'x' || (n & 1))
		return ldr_fail(c->db, LARDER_EIO, 0,
				"PostgreSQL: bytea value not in hex format");
	size_t bytes = (n - 2) / 2;
	if (bytes > col->cap) {
		size_t cap = col->cap ? col->cap : 64;
		while (cap < bytes)
			cap *= 2;
		char *b = realloc(col->buf, cap);
		if (!b)
			return ldr_fail(c->db, LARDER_ENOMEM, 0,
					"out of memory for a %zu-byte bytea",
					bytes);
		col->buf = b;
		col->cap = cap;
	}
	for (size_t i = 0; i < bytes; i++) {
		int hi = hexval(s[2 + 2 * i]), lo = hexval(s[3 + 2 * i]);
		if (hi < 0 || lo < 0)
			return ldr_fail(c->db, LARDER_EIO, 0,
					"PostgreSQL: bad hex in a bytea value");
		col->buf[i] = (char)(hi << 4 | lo);
	}
	*out = bytes;
	return 0;
}

static int emit_row(struct ldr_sql_conn *c, const PGresult *r,
		    const struct ldr_sql_sink *sink)
{
	for (size_t i = 0; i < c->ncol; i++) {
		int f = (int)i;
		if (pq.PQgetisnull(r, 0, f)) {
			c->val[i] = NULL;
			c->len[i] = 0;
			c->kind[i] = LDR_SQL_NULL;
			continue;
		}
		const char *v = pq.PQgetvalue(r, 0, f);
		size_t n = (size_t)pq.PQgetlength(r, 0, f);
		c->kind[i] = c->cols[i].kind;
		if (c->kind[i] == LDR_SQL_BLOB) {
			int rc = decode_bytea(c, &c->cols[i], v, n, &n);
			if (rc)
				return rc;
			v = c->cols[i].buf ? c->cols[i].buf : "";
		}
		c->val[i] = v;
		c->len[i] = n;
	}
	return sink->row(sink->payload, c->ncol, c->val, c->len, c->kind);
}

/* Stop the statement running on the server (after the sink gave up), so
 * that draining does not read the rest of a large result. */
static void cancel(struct ldr_sql_conn *c)
{
	/* Never kept: the request travels on a connection of its own and
	 * can arrive after this statement has ended, to cancel the next. */
	c->dirty = 1;
	PGcancel *k = pq.PQgetCancel(c->pg);
	if (!k)
		return;
	char err[256];
	if (!pq.PQcancel(k, err, sizeof err) && c->db)
		ldr_log(c->db, LARDER_LOG_DEBUG, "PostgreSQL: cancel: %s", err);
	pq.PQfreeCancel(k);
}

static int pg_query(struct ldr_sql_conn *c, const char *sql,
		    const char *const *params, size_t nparams,
		    const struct ldr_sql_sink *sink)
{
	if (nparams > 65535)
		return ldr_fail(c->db, LARDER_EINVAL, 0,
				"PostgreSQL: %zu parameters (at most 65535)",
				nparams);
	/* Text parameters with types left to the server; text results. */
	if (!pq.PQsendQueryParams(c->pg, sql, (int)nparams, NULL, params, NULL,
				  NULL, 0))
		return fail_pg(c, NULL, "cannot send the query");
	int rc = 0, started = 0, stopped = 0;
	if (!pq.PQsetSingleRowMode(c->pg))
		rc = fail_pg(c, NULL, "cannot stream the result");
	/* Always read to the end (a NULL result), also after a failure, so
	 * the connection is ready for the next command. */
	PGresult *r;
	while ((r = pq.PQgetResult(c->pg)) != NULL) {
		ExecStatusType s = pq.PQresultStatus(r);
		if (rc == 0) {
			switch (s) {
			case PGRES_SINGLE_TUPLE:
				if (!started) {
					started = 1;
					rc = start_columns(c, r, sink);
				}
				if (rc == 0)
					rc = emit_row(c, r, sink);
				break;
			case PGRES_TUPLES_OK: /* the end; all if no rows */
				if (!started) {
					started = 1;
					rc = start_columns(c, r, sink);
				}
				break;
			case PGRES_COMMAND_OK: /* a statement without rows */
				if (!started) {
					started = 1;
					static const char *const none[1];
					c->ncol = 0;
					rc = sink->columns(sink->payload, 0,
							   none);
				}
				break;
			case PGRES_EMPTY_QUERY:
				rc = ldr_fail(c->db, LARDER_EINVAL, 0,
					      "PostgreSQL: empty query");
				break;
			default:
				rc = fail_pg(c, r, "query failed");
				break;
			}
			if (rc && s == PGRES_SINGLE_TUPLE && !stopped) {
				stopped = 1;
				cancel(c);
			}
		}
		pq.PQclear(r);
	}
	return rc;
}

static int nparams_once(struct ldr_sql_conn *c, const char *sql, size_t *out)
{
	*out = 0;
	/* The unnamed statement: replaced by the next query's. */
	PGresult *r = pq.PQprepare(c->pg, "", sql, 0, NULL);
	if (!r || pq.PQresultStatus(r) != PGRES_COMMAND_OK) {
		int rc = fail_pg(c, r, "query failed");
		pq.PQclear(r);
		return rc;
	}
	pq.PQclear(r);
	r = pq.PQdescribePrepared(c->pg, "");
	if (!r || pq.PQresultStatus(r) != PGRES_COMMAND_OK) {
		int rc = fail_pg(c, r, "cannot describe the query");
		pq.PQclear(r);
		return rc;
	}
	*out = (size_t)pq.PQnparams(r);
	pq.PQclear(r);
	return 0;
}

static int pg_nparams(struct ldr_sql_conn *c, const char *sql, size_t *out)
{
	int rc = nparams_once(c, sql, out);
	if (again(c, &rc))
		rc = nparams_once(c, sql, out);
	return rc;
}

/* ---------------------------------------------------------------------- */
/* Change counter                                                          */

/* The table named by the user, resolved by the server as a query would
 * (search_path, quoting, schema prefix): its quoted schema and quoted
 * qualified name, whether our trigger is on it and enabled, whether the
 * schema has larder_changes and our function, whether other tables
 * inherit from it, and a fingerprint of its definition.
 *
 * The fingerprint covers what changes a query's result without a write
 * that a trigger sees: the columns (ADD, DROP, RENAME, ALTER TYPE), the
 * table's storage (a rewrite: ALTER TYPE ... USING, also VACUUM FULL and
 * CLUSTER, which only cost a reload) and row-level security. */
static const char resolve_sql[] =
    "SELECT quote_ident(n.nspname), "
    "quote_ident(n.nspname) || '.' || quote_ident(c.relname), "
    "c.relname, c.relkind, "
    "EXISTS (SELECT 1 FROM pg_catalog.pg_trigger t "
    "  JOIN pg_catalog.pg_proc p ON p.oid = t.tgfoid "
    "  WHERE t.tgrelid = c.oid AND p.pronamespace = c.relnamespace "
    "  AND p.proname = 'larder_track_count' "
    "  AND t.tgenabled IN ('O', 'A')), "
    "pg_catalog.to_regclass(quote_ident(n.nspname) || '.larder_changes') "
    "  IS NOT NULL, "
    "pg_catalog.to_regprocedure(quote_ident(n.nspname) "
    "  || '.larder_track_count()') IS NOT NULL, "
    "EXISTS (SELECT 1 FROM pg_catalog.pg_inherits i "
    "  WHERE i.inhparent = c.oid), "
    "substr(md5(concat_ws(' ', c.relfilenode, c.relrowsecurity, "
    "  c.relforcerowsecurity, "
    "  (SELECT string_agg(concat_ws(':', a.attnum, quote_ident(a.attname), "
    "     a.atttypid, a.atttypmod, a.attcollation, a.attisdropped), ',' "
    "     ORDER BY a.attnum) FROM pg_catalog.pg_attribute a "
    "   WHERE a.attrelid = c.oid AND a.attnum > 0), "
    "  (SELECT string_agg(concat_ws(':', p.oid, p.polcmd, p.polpermissive, "
    "     p.polroles, p.polqual), ',' ORDER BY p.oid) "
    "   FROM pg_catalog.pg_policy p WHERE p.polrelid = c.oid))), 1, 12) "
    "FROM pg_catalog.pg_class c "
    "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
    "WHERE c.oid = pg_catalog.to_regclass($1)";

struct target {
	PGresult *r;
	const char *schema; /* quoted */
	const char *qname;  /* quoted schema.table: the row's tbl */
	const char *relname;
	char relkind;
	int tracked;	   /* our trigger is on it, enabled */
	int has_changes;   /* the schema has larder_changes */
	int has_fn;	   /* the schema has larder_track_count() */
	int inherited;	   /* other tables inherit from it */
	const char *shape; /* fingerprint of its definition */
};

/* Fills *t; no such table is LARDER_EINVAL, or (missing_ok) success with
 * t->r NULL. */
static int resolve(struct ldr_sql_conn *c, const char *table, struct target *t,
		   int missing_ok)
{
	memset(t, 0, sizeof *t);
	const char *p[1] = {table};
	int rc = exec_row(c, &t->r, resolve_sql, 1, p, "cannot find table");
	if (rc || (!t->r && missing_ok))
		return rc;
	if (!t->r)
		return ldr_fail(c->db, LARDER_EINVAL, 0,
				"PostgreSQL: no table \"%s\"", table);
	t->schema = pq.PQgetvalue(t->r, 0, 0);
	t->qname = pq.PQgetvalue(t->r, 0, 1);
	t->relname = pq.PQgetvalue(t->r, 0, 2);
	t->relkind = pq.PQgetvalue(t->r, 0, 3)[0];
	t->tracked = pq.PQgetvalue(t->r, 0, 4)[0] == 't';
	t->has_changes = pq.PQgetvalue(t->r, 0, 5)[0] == 't';
	t->has_fn = pq.PQgetvalue(t->r, 0, 6)[0] == 't';
	t->inherited = pq.PQgetvalue(t->r, 0, 7)[0] == 't';
	t->shape = pq.PQgetvalue(t->r, 0, 8);
	return 0;
}

/* Whether `s` is a table name as SQL writes it: one or two identifiers
 * joined by '.', each plain (letters, digits, '_', '$', not starting with
 * a digit or '$') or double-quoted ("" for a quote). Such a name can go
 * into a statement as it is, and means there what it means to
 * to_regclass(). */
static int sql_name(const char *s)
{
	for (int part = 0; part < 2; part++) {
		if (*s == '"') {
			for (s++;; s++) {
				if (!*s)
					return 0;
				if (*s == '"' && s[1] == '"')
					s++;
				else if (*s == '"')
					break;
			}
			s++;
		} else {
			unsigned char ch = (unsigned char)*s;
			if (!(ch == '_' || ch >= 0x80 ||
			      (ch >= 'a' && ch <= 'z') ||
			      (ch >= 'A' && ch <= 'Z')))
				return 0;
			while (ch == '_' || ch == '$' || ch >= 0x80 ||
			       (ch >= 'a' && ch <= 'z') ||
			       (ch >= 'A' && ch <= 'Z') ||
			       (ch >= '0' && ch <= '9'))
				ch = (unsigned char)*++s;
		}
		if (!*s)
			return 1;
		if (*s != '.')
			return 0;
		s++;
	}
	return 0;
}

/* "<token> <n> <definition>": the counter, and the fingerprint of the
 * table's definition (see resolve_sql). */
static int pg_table_version(struct ldr_sql_conn *c, const char *table,
			    char *buf, size_t size)
{
	/* First, before the snapshot is taken (LOCK does not take one): no
	 * ALTER TABLE can then come between the version and the data, and
	 * whatever came before is in both. */
	if (!sql_name(table))
		return ldr_fail(c->db, LARDER_EINVAL, 0,
				"PostgreSQL: \"%s\" is not a table name "
				"(table, schema.table, \"Quoted\" parts)",
				table);
	char sql[700];
	snprintf(sql, sizeof sql, "LOCK TABLE %s IN ACCESS SHARE MODE", table);
	int rc = exec_cmd(c, sql, "cannot read the version");
	struct target t = {0};
	if (rc == 0)
		rc = resolve(c, table, &t, 0);
	if (rc)
		return rc;
	PGresult *r = NULL;
	if (t.tracked && t.has_changes) {
		snprintf(sql, sizeof sql,
			 "SELECT token || ' ' || n::text FROM "
			 "%s.larder_changes WHERE tbl = $1",
			 t.schema);
		const char *p[1] = {t.qname};
		rc = exec_row(c, &r, sql, 1, p, "cannot read the version");
	}
	if (rc == 0 && !r)
		rc = ldr_fail(c->db, LARDER_ENOTFOUND, 0,
			      "PostgreSQL: table %s is not tracked (run "
			      "`larder sql track` for it)",
			      t.qname);
	if (rc == 0 &&
	    (size_t)snprintf(buf, size, "%s %s", pq.PQgetvalue(r, 0, 0),
			     t.shape) >= size)
		rc = ldr_fail(c->db, LARDER_EINVAL, 0,
			      "PostgreSQL: version of %s too long", t.qname);
	pq.PQclear(r);
	pq.PQclear(t.r);
	return rc;
}

/* Every track and untrack of the database takes this lock first, so that
 * two of them never race on creating or dropping the shared objects. */
static const char lock_sql[] = "SELECT pg_catalog.pg_advisory_xact_lock("
			       "pg_catalog.hashtext('larder_changes'))";

/* A quoted identifier (PQescapeIdentifier), or NULL after recording the
 * failure. Free with PQfreemem. */
static char *ident(struct ldr_sql_conn *c, const char *name)
{
	char *q = pq.PQescapeIdentifier(c->pg, name, strlen(name));
	if (!q)
		fail_pg(c, NULL, "cannot quote a name");
	return q;
}

/* End a write transaction: COMMIT after success, else ROLLBACK (whose own
 * failure must not hide the first one's message). */
static int finish(struct ldr_sql_conn *c, int rc)
{
	if (rc == 0)
		return exec_cmd(c, "COMMIT", "cannot commit");
	if (pq.PQtransactionStatus(c->pg) != PQTRANS_IDLE &&
	    pq.PQtransactionStatus(c->pg) != PQTRANS_UNKNOWN) {
		PGresult *r = pq.PQexec(c->pg, "ROLLBACK");
		pq.PQclear(r);
	}
	return rc;
}

/* "larder_track_<table>_count", cut to PostgreSQL's 63 bytes at a
 * character boundary (as the server would cut it, but without its
 * notice). Only unique per table; we find our trigger by its function. */
static void trigger_name(char *out, size_t size, const char *relname)
{
	int n = snprintf(out, size, "larder_track_%s_count", relname);
	size_t max = size - 1 < 63 ? size - 1 : 63;
	if (n >= 0 && (size_t)n > max) {
		size_t cut = max;
		while (cut > 0 && ((unsigned char)out[cut] & 0xC0) == 0x80)
			cut--;
		out[cut] = '\0';
	}
}

static int random_token(struct ldr_sql_conn *c, char out[33])
{
	unsigned char b[16];
	size_t got = 0;
	while (got < sizeof b) {
		ssize_t n = getrandom(b + got, sizeof b - got, 0);
		if (n < 0)
			return ldr_fail_errno(c->db, errno,
					      "getrandom for a token failed");
		got += (size_t)n;
	}
	for (size_t i = 0; i < sizeof b; i++)
		snprintf(out + 2 * i, 3, "%02x", b[i]);
	return 0;
}

/* The trigger function, SECURITY DEFINER so that writers need no right on
 * larder_changes, with a fixed search_path as such functions must have.
 * One UPDATE in the common case; a table that has no row yet (renamed
 * since it was tracked) gets one with a fresh token, so that its version
 * can never stand still while it changes. */
static int create_function(struct ldr_sql_conn *c, const char *schema)
{
	char body[1500], sql[2200];
	snprintf(body, sizeof body,
		 "BEGIN\n"
		 "  UPDATE %s.larder_changes SET n = n + 1\n"
		 "    WHERE tbl = quote_ident(TG_TABLE_SCHEMA) || '.' ||\n"
		 "                quote_ident(TG_TABLE_NAME);\n"
		 "  IF NOT FOUND THEN\n"
		 "    INSERT INTO %s.larder_changes AS l VALUES (\n"
		 "      quote_ident(TG_TABLE_SCHEMA) || '.' ||\n"
		 "        quote_ident(TG_TABLE_NAME),\n"
		 "      md5(random()::text || clock_timestamp()::text), 1)\n"
		 "    ON CONFLICT (tbl) DO UPDATE SET n = l.n + 1;\n"
		 "  END IF;\n"
		 "  RETURN NULL;\n"
		 "END",
		 schema, schema);
	char *lit = pq.PQescapeLiteral(c->pg, body, strlen(body));
	if (!lit)
		return fail_pg(c, NULL, "cannot quote the function");
	snprintf(sql, sizeof sql,
		 "CREATE FUNCTION %s.larder_track_count() RETURNS trigger "
		 "LANGUAGE plpgsql SECURITY DEFINER "
		 "SET search_path = pg_catalog, pg_temp AS %s",
		 schema, lit);
	pq.PQfreemem(lit);
	return exec_cmd(c, sql, "cannot create the trigger function");
}

static int pg_track(struct ldr_sql_conn *c, const char *table)
{
	int rc = first_cmd(c, "BEGIN READ WRITE", "cannot begin");
	if (rc)
		return rc;
	struct target t = {0};
	char sql[1200], *qtrig = NULL;
	rc = exec_cmd(c, lock_sql, "cannot lock");
	if (rc == 0)
		rc = resolve(c, table, &t, 0);
	if (rc)
		goto out;
	if (t.relkind == 'r' && strcmp(t.relname, "larder_changes") == 0) {
		rc = ldr_fail(c->db, LARDER_EINVAL, 0,
			      "PostgreSQL: larder_changes is larder's own "
			      "table");
		goto out;
	}
	if (t.relkind == 'r' && t.inherited) {
		rc = ldr_fail(c->db, LARDER_EINVAL, 0,
			      "PostgreSQL: other tables inherit from %s, and "
			      "their writes would not be counted (track "
			      "them, and query ONLY %s)",
			      t.qname, t.qname);
		goto out;
	}
	if (t.relkind != 'r') {
		rc = ldr_fail(c->db, LARDER_EINVAL, 0,
			      "PostgreSQL: %s is not an ordinary table (%s)",
			      t.qname,
			      t.relkind == 'p' ? "partitioned: track its "
						 "partitions and query them"
					       : "views and others have no "
						 "write triggers");
		goto out;
	}
	if (!t.has_changes) {
		snprintf(sql, sizeof sql,
			 "CREATE TABLE %s.larder_changes (tbl text PRIMARY "
			 "KEY, token text NOT NULL, n bigint NOT NULL); "
			 "GRANT SELECT ON %s.larder_changes TO PUBLIC",
			 t.schema, t.schema);
		rc = exec_cmd(c, sql, "cannot create larder_changes");
	}
	if (rc == 0 && !t.has_fn)
		rc = create_function(c, t.schema);
	if (rc)
		goto out;

	/* Our trigger, present but disabled, or absent. */
	snprintf(sql, sizeof sql,
		 "SELECT t.tgname FROM pg_catalog.pg_trigger t WHERE "
		 "t.tgrelid = pg_catalog.to_regclass($1) AND t.tgfoid = "
		 "pg_catalog.to_regprocedure($2) ORDER BY t.tgname LIMIT 1");
	char fn[300];
	snprintf(fn, sizeof fn, "%s.larder_track_count()", t.schema);
	const char *p2[2] = {t.qname, fn};
	PGresult *r = NULL;
	if (!t.tracked)
		rc = exec_row(c, &r, sql, 2, p2, "cannot look for triggers");
	if (rc)
		goto out;
	if (!t.tracked) {
		char name[64];
		if (r)
			snprintf(name, sizeof name, "%s",
				 pq.PQgetvalue(r, 0, 0));
		else
			trigger_name(name, sizeof name, t.relname);
		qtrig = ident(c, name);
		if (!qtrig) {
			pq.PQclear(r);
			rc = LARDER_ENOMEM;
			goto out;
		}
		if (r)
			snprintf(sql, sizeof sql,
				 "ALTER TABLE %s ENABLE TRIGGER %s", t.qname,
				 qtrig);
		else
			snprintf(sql, sizeof sql,
				 "CREATE TRIGGER %s AFTER INSERT OR UPDATE OR "
				 "DELETE OR TRUNCATE ON %s FOR EACH STATEMENT "
				 "EXECUTE FUNCTION %s.larder_track_count()",
				 qtrig, t.qname, t.schema);
		pq.PQclear(r);
		rc = exec_cmd(c, sql, "cannot create the trigger");
		if (rc)
			goto out;
	}

	/* The row. Already counting: keep it (entries cached under it stay
	 * valid). Not counting until now: the table may have changed
	 * unseen, so a fresh token, whatever the row said. */
	char token[33];
	rc = random_token(c, token);
	if (rc)
		goto out;
	snprintf(sql, sizeof sql,
		 "INSERT INTO %s.larder_changes AS l VALUES ($1, $2, 0) "
		 "ON CONFLICT (tbl) DO %s",
		 t.schema,
		 t.tracked ? "NOTHING"
			   : "UPDATE SET token = excluded.token, n = 0");
	const char *p[2] = {t.qname, token};
	rc = exec_params(c, sql, 2, p, "cannot set the counter");
out:
	pq.PQfreemem(qtrig);
	pq.PQclear(t.r);
	return finish(c, rc);
}

/* Drop our triggers on the table (found by their function, whatever
 * their name). */
static int drop_triggers(struct ldr_sql_conn *c, const struct target *t,
			 const char *fn)
{
	const char *p[2] = {t->qname, fn};
	PGresult *r = pq.PQexecParams(
	    c->pg,
	    "SELECT t.tgname FROM pg_catalog.pg_trigger t WHERE "
	    "t.tgrelid = pg_catalog.to_regclass($1) AND "
	    "t.tgfoid = pg_catalog.to_regprocedure($2)",
	    2, NULL, p, NULL, NULL, 0);
	int rc = 0;
	if (!r || pq.PQresultStatus(r) != PGRES_TUPLES_OK)
		rc = fail_pg(c, r, "cannot look for triggers");
	for (int i = 0; rc == 0 && i < pq.PQntuples(r); i++) {
		char sql[600], *q = ident(c, pq.PQgetvalue(r, i, 0));
		if (!q) {
			rc = LARDER_ENOMEM;
			break;
		}
		snprintf(sql, sizeof sql, "DROP TRIGGER %s ON %s", q, t->qname);
		pq.PQfreemem(q);
		rc = exec_cmd(c, sql, "cannot drop the trigger");
	}
	pq.PQclear(r);
	return rc;
}

/* Whether `sql` returns a row. */
static int any_row(struct ldr_sql_conn *c, const char *sql, const char *arg,
		   int *out)
{
	PGresult *r = NULL;
	const char *p[1] = {arg};
	int rc = exec_row(c, &r, sql, arg ? 1 : 0, arg ? p : NULL,
			  "cannot look for users");
	*out = r != NULL;
	pq.PQclear(r);
	return rc;
}

/* Drops the table's trigger and its row; the function goes with the
 * last trigger that uses it. larder_changes stays: dropping it would wait
 * for, and then hold up, every reader of a version in the schema. */
static int pg_untrack(struct ldr_sql_conn *c, const char *table)
{
	int rc = first_cmd(c, "BEGIN READ WRITE", "cannot begin");
	if (rc)
		return rc;
	struct target t = {0};
	char sql[1200], fn[300];
	rc = exec_cmd(c, lock_sql, "cannot lock");
	if (rc == 0)
		rc = resolve(c, table, &t, 1);
	if (rc || !t.r) /* no such table: nothing to remove */
		goto out;
	snprintf(fn, sizeof fn, "%s.larder_track_count()", t.schema);
	if (t.has_fn)
		rc = drop_triggers(c, &t, fn);
	if (rc == 0 && t.has_changes) {
		const char *p[1] = {t.qname};
		snprintf(sql, sizeof sql,
			 "DELETE FROM %s.larder_changes WHERE tbl = $1",
			 t.schema);
		rc = exec_params(c, sql, 1, p, "cannot remove the counter");
	}
	int used = 1;
	if (rc == 0 && t.has_fn)
		rc = any_row(c,
			     "SELECT 1 FROM pg_catalog.pg_trigger WHERE "
			     "tgfoid = pg_catalog.to_regprocedure($1)",
			     fn, &used);
	if (rc == 0 && !used) {
		snprintf(sql, sizeof sql, "DROP FUNCTION %s", fn);
		rc = exec_cmd(c, sql, "cannot drop the trigger function");
	}
out:
	pq.PQclear(t.r);
	return finish(c, rc);
}

const struct ldr_sql_ops ldr_sql_pg = {
    .name = "postgresql",
    .open = pg_open,
    .identity = pg_identity,
    .begin = pg_begin,
    .query = pg_query,
    .nparams = pg_nparams,
    .end = pg_end,
    .table_version = pg_table_version,
    .track = pg_track,
    .untrack = pg_untrack,
    .close = pg_close,
};
