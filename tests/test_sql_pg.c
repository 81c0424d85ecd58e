/*
 * test_sql_pg.c — the PostgreSQL source against a real server: the
 * source's operations directly (sql_source.h: values and their kinds,
 * parameters, streaming, snapshots, every error path, the change
 * counter), then larder_sql() end to end.
 *
 * Run through tests/pg/run.sh, which starts a private PostgreSQL server
 * (tests/pg/pg.sh), sets the LARDER_PG_* variables and stops it
 * afterwards. LARDER_PG_URI logs in as role "larder" with its password
 * over TCP; LARDER_PG_ADMIN is the superuser over the unix socket, used
 * here to set things up, to write concurrently and to kill backends.
 * Each test makes its own tables, named after the test.
 */
#include "harness.h"
#include "larder.h"
#include "store_util.h"
#include "testing.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TEST_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define TEST_ASAN 1
#endif
#ifdef TEST_ASAN
/* ASan keeps freed memory in a quarantine of 256 MB by default, which
 * counts in the memory of the streaming tests (libpq frees each row's
 * result as the next comes); a smaller one still catches a use soon after
 * a free. */
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
	return "quarantine_size_mb=16";
}
#endif

static const char *pg_uri, *pg_admin, *pg_host, *pg_port, *pg_sock,
    *pg_password;

__attribute__((constructor)) static void need_server(void)
{
	pg_uri = getenv("LARDER_PG_URI");
	pg_admin = getenv("LARDER_PG_ADMIN");
	pg_host = getenv("LARDER_PG_HOST");
	pg_port = getenv("LARDER_PG_PORT");
	pg_sock = getenv("LARDER_PG_SOCKET");
	pg_password = getenv("LARDER_PG_PASSWORD");
	if (!pg_uri || !pg_admin || !pg_host || !pg_port || !pg_sock ||
	    !pg_password) {
		fprintf(stderr, "test_sql_pg: the LARDER_PG_* variables must "
				"be set: run it through tests/pg/run.sh\n");
		exit(2);
	}
	/* No password may come from anywhere but the connection string. */
	unsetenv("PGPASSWORD");
	setenv("PGPASSFILE", "/nonexistent/larder-test-pgpass", 1);
}

/* ---------------------------------------------------------------------- */
/* Helpers                                                                 */

static void quiet(void *arg, const char *msg)
{
	(void)arg, (void)msg;
}

/* A superuser connection for setting things up. */
static PGconn *admin(void)
{
	PGconn *a = PQconnectdb(pg_admin);
	if (PQstatus(a) != CONNECTION_OK)
		test_fail(__FILE__, __LINE__, "admin connection: %s",
			  PQerrorMessage(a));
	PQsetNoticeProcessor(a, quiet, NULL);
	return a;
}

static void sql_ok_at(int line, PGconn *a, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void sql_ok_at(int line, PGconn *a, const char *fmt, ...)
{
	char sql[8192];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(sql, sizeof sql, fmt, ap);
	va_end(ap);
	PGresult *r = PQexec(a, sql);
	ExecStatusType s = PQresultStatus(r);
	if (s != PGRES_COMMAND_OK && s != PGRES_TUPLES_OK)
		test_fail(__FILE__, line, "%s: %s", sql, PQerrorMessage(a));
	PQclear(r);
}
#define sql_ok(...) sql_ok_at(__LINE__, __VA_ARGS__)

/* The first value of a query's first row, in a static buffer ("<null>"
 * for NULL, "<none>" for no row). */
static const char *sql_val_at(int line, PGconn *a, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static const char *sql_val_at(int line, PGconn *a, const char *fmt, ...)
{
	static char out[4][4096];
	static int slot;
	char *o = out[slot++ % 4];
	char sql[8192];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(sql, sizeof sql, fmt, ap);
	va_end(ap);
	PGresult *r = PQexec(a, sql);
	if (PQresultStatus(r) != PGRES_TUPLES_OK)
		test_fail(__FILE__, line, "%s: %s", sql, PQerrorMessage(a));
	if (PQntuples(r) == 0)
		snprintf(o, 4096, "<none>");
	else if (PQgetisnull(r, 0, 0))
		snprintf(o, 4096, "<null>");
	else
		snprintf(o, 4096, "%s", PQgetvalue(r, 0, 0));
	PQclear(r);
	return o;
}
#define sql_val(...) sql_val_at(__LINE__, __VA_ARGS__)

/* Asserts a source call returned `want`; prints the message. */
#define ASSERT_SRC(call, want)                                                 \
	do {                                                                   \
		int rc_ = (call);                                              \
		if (rc_ != (want))                                             \
			test_fail(__FILE__, __LINE__,                          \
				  "%s returned %d (%s), want %d: %s", #call,   \
				  rc_, larder_strerror(rc_), (want),           \
				  larder_errmsg(NULL));                        \
	} while (0)

#define ASSERT_CONTAINS(hay, needle)                                           \
	do {                                                                   \
		const char *h_ = (hay), *n_ = (needle);                        \
		if (!strstr(h_, n_))                                           \
			test_fail(__FILE__, __LINE__,                          \
				  "\"%s\" does not contain \"%s\"", h_, n_);   \
	} while (0)

#define ASSERT_LACKS(hay, needle)                                              \
	do {                                                                   \
		const char *h_ = (hay), *n_ = (needle);                        \
		if (strstr(h_, n_))                                            \
			test_fail(__FILE__, __LINE__,                          \
				  "\"%s\" contains \"%s\"", h_, n_);           \
	} while (0)

static struct ldr_sql_conn *connect_as(const char *uri)
{
	struct ldr_sql_conn *c = NULL;
	int rc = ldr_sql_pg.open(&c, NULL, uri, 0);
	if (rc != 0)
		test_fail(__FILE__, __LINE__, "open: %s: %s",
			  larder_strerror(rc), larder_errmsg(NULL));
	return c;
}

/* A URI for role `user` with `password` over TCP, extra "&k=v" options. */
static const char *uri_for(const char *user, const char *password,
			   const char *extra)
{
	static char out[4][1024];
	static int slot;
	char *o = out[slot++ % 4];
	snprintf(o, 1024, "postgresql://%s:%s@%s:%s/larder%s%s", user, password,
		 pg_host, pg_port, extra ? "?" : "", extra ? extra : "");
	return o;
}

/* What a sink received, as text: per row, "<kind>=<value>" joined by '|',
 * rows ended by '\n'; bytes outside printable ASCII and UTF-8, and '|',
 * '\\', are written \xHH. */
struct got {
	char *text;
	size_t len, cap;
	char names[1024];
	int columns_calls;
	size_t ncol, rows, bytes;
	size_t stop_after; /* 0: never stop */
	size_t notify_at;  /* 0: never; else write a byte to notify_fd */
	int notify_fd;
	int keep; /* keep the text */
};

static void put(struct got *g, const void *p, size_t n)
{
	if (g->len + n + 1 > g->cap) {
		size_t cap = g->cap ? g->cap * 2 : 4096;
		while (cap < g->len + n + 1)
			cap *= 2;
		g->text = realloc(g->text, cap);
		ASSERT(g->text);
		g->cap = cap;
	}
	memcpy(g->text + g->len, p, n);
	g->len += n;
	g->text[g->len] = '\0';
}

static void put_escaped(struct got *g, const char *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)v[i];
		if (ch < 0x20 || ch == 0x7f || ch == '|' || ch == '\\') {
			char e[5];
			snprintf(e, sizeof e, "\\x%02x", ch);
			put(g, e, 4);
		} else {
			put(g, &v[i], 1);
		}
	}
}

static int got_columns(void *payload, size_t ncol, const char *const *names)
{
	struct got *g = payload;
	g->columns_calls++;
	g->ncol = ncol;
	size_t o = 0;
	g->names[0] = '\0';
	for (size_t i = 0; i < ncol; i++)
		o += (size_t)snprintf(g->names + o, sizeof g->names - o, "%s%s",
				      i ? "," : "", names[i]);
	return 0;
}

static int got_row(void *payload, size_t ncol, const char *const *val,
		   const size_t *len, const int *kind)
{
	static const char letters[] = "NTIRMBXJ"; /* enum ldr_sql_kind */
	struct got *g = payload;
	if (g->columns_calls != 1 || ncol != g->ncol)
		test_fail(__FILE__, __LINE__, "row before columns");
	g->rows++;
	for (size_t i = 0; i < ncol; i++) {
		if ((kind[i] == LDR_SQL_NULL) != (val[i] == NULL))
			test_fail(__FILE__, __LINE__,
				  "column %zu: kind %d, value %p", i, kind[i],
				  (const void *)val[i]);
		g->bytes += len[i];
		if (!g->keep)
			continue;
		if (i)
			put(g, "|", 1);
		put(g, &letters[kind[i]], 1);
		put(g, "=", 1);
		if (val[i])
			put_escaped(g, val[i], len[i]);
	}
	if (g->keep)
		put(g, "\n", 1);
	if (g->stop_after && g->rows >= g->stop_after)
		return -42;
	if (g->notify_at && g->rows == g->notify_at)
		ASSERT(write(g->notify_fd, "r", 1) == 1);
	return 0;
}

static struct ldr_sql_sink sink_of(struct got *g)
{
	struct ldr_sql_sink s = {got_columns, got_row, g};
	return s;
}

/* Run one query in a fresh snapshot and return what came back. */
static int run_query(struct ldr_sql_conn *c, struct got *g, const char *sql,
		     const char *const *params, size_t n)
{
	memset(g, 0, sizeof *g);
	g->keep = 1;
	struct ldr_sql_sink s = sink_of(g);
	int rc = ldr_sql_pg.begin(c);
	if (rc == 0)
		rc = ldr_sql_pg.query(c, sql, params, n, &s);
	int rc2 = ldr_sql_pg.end(c);
	return rc ? rc : rc2;
}

static const char *version_of(struct ldr_sql_conn *c, const char *table)
{
	static char out[4][256];
	static int slot;
	char *o = out[slot++ % 4];
	ASSERT_SRC(ldr_sql_pg.begin(c), 0);
	int rc = ldr_sql_pg.table_version(c, table, o, 256);
	ASSERT_SRC(ldr_sql_pg.end(c), 0);
	if (rc != 0)
		test_fail(__FILE__, __LINE__, "table_version(%s): %s: %s",
			  table, larder_strerror(rc), larder_errmsg(NULL));
	return o;
}

/* "<token> <n> <definition>": the token and the counter (the definition
 * fingerprint is checked to be there, 12 hex digits). */
static void split_version(const char *v, char token[64], long long *n)
{
	const char *sp = strchr(v, ' ');
	if (!sp || sp - v <= 0 || sp - v >= 64)
		test_fail(__FILE__, __LINE__, "bad version \"%s\"", v);
	memcpy(token, v, (size_t)(sp - v));
	token[sp - v] = '\0';
	char *end;
	*n = strtoll(sp + 1, &end, 10);
	if (end == sp + 1 || *end != ' ' || strlen(end + 1) != 12 ||
	    strspn(end + 1, "0123456789abcdef") != 12)
		test_fail(__FILE__, __LINE__, "bad version \"%s\"", v);
}

/* The definition part of a version. */
static const char *shape_of(const char *v)
{
	const char *sp = strrchr(v, ' ');
	ASSERT(sp);
	return sp + 1;
}

/* Peak resident memory of this process, in KiB (VmHWM). */
static long peak_rss_kib(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	ASSERT(f);
	char line[256];
	long kib = -1;
	while (fgets(line, sizeof line, f))
		if (sscanf(line, "VmHWM: %ld kB", &kib) == 1)
			break;
	fclose(f);
	ASSERT(kib > 0);
	return kib;
}

/* A TCP port on 127.0.0.1 where nothing listens. */
static int closed_port(void)
{
	int s = socket(AF_INET, SOCK_STREAM, 0);
	ASSERT(s >= 0);
	struct sockaddr_in a = {0};
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ASSERT(bind(s, (struct sockaddr *)&a, sizeof a) == 0);
	socklen_t l = sizeof a;
	ASSERT(getsockname(s, (struct sockaddr *)&a, &l) == 0);
	close(s); /* bound, never listened: connections are refused */
	return ntohs(a.sin_port);
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---------------------------------------------------------------------- */
/* Connecting and identity                                                 */

TEST(identity_is_system_identifier_database_and_user)
{
	PGconn *a = admin();
	char want[256];
	snprintf(want, sizeof want, "postgresql:%s/larder/larder",
		 sql_val(a, "SELECT system_identifier FROM "
			    "pg_control_system()"));
	struct ldr_sql_conn *c = connect_as(pg_uri);
	char id[256];
	ASSERT_SRC(ldr_sql_pg.identity(c, id, sizeof id), 0);
	ASSERT_STR_EQ(id, want);
	ASSERT_LACKS(id, pg_password);
	/* Too small a buffer is an error, not a cut identity. */
	ASSERT_SRC(ldr_sql_pg.identity(c, id, 10), LARDER_EINVAL);
	ldr_sql_pg.close(c);
	PQfinish(a);
}

TEST(identity_is_the_same_by_address_name_socket_and_keywords)
{
	char uris[5][1024], first[256] = "";
	snprintf(uris[0], sizeof uris[0], "%s", pg_uri);
	snprintf(uris[1], sizeof uris[1],
		 "postgresql://larder:%s@localhost:%s/larder", pg_password,
		 pg_port);
	snprintf(uris[2], sizeof uris[2],
		 "postgresql://larder:%s@:%s/larder?host=%s", pg_password,
		 pg_port, pg_sock);
	snprintf(uris[3], sizeof uris[3],
		 "host=%s port=%s dbname=larder user=larder password=%s",
		 pg_sock, pg_port, pg_password);
	snprintf(uris[4], sizeof uris[4],
		 "postgres://larder:%s@127.0.0.1:%s/larder?application_name="
		 "other&connect_timeout=3",
		 pg_password, pg_port);
	for (int i = 0; i < 5; i++) {
		struct ldr_sql_conn *c = connect_as(uris[i]);
		char id[256];
		ASSERT_SRC(ldr_sql_pg.identity(c, id, sizeof id), 0);
		if (i == 0)
			snprintf(first, sizeof first, "%s", id);
		else
			ASSERT_STR_EQ(id, first);
		ldr_sql_pg.close(c);
	}
}

TEST(identity_falls_back_to_address_without_pg_control_system)
{
	/* As on hosted services that do not let users call it. */
	PGconn *a = admin();
	sql_ok(a, "DROP DATABASE IF EXISTS larder_noctl");
	sql_ok(a, "CREATE DATABASE larder_noctl OWNER larder");
	PQfinish(a);
	char adm[1024];
	snprintf(adm, sizeof adm, "%s", pg_admin);
	char *d = strstr(adm, "dbname=larder");
	ASSERT(d);
	snprintf(d, sizeof adm - (size_t)(d - adm), "dbname=larder_noctl");
	/* Functions are per database: revoked here, it stays callable in
	 * the others. */
	PGconn *b = PQconnectdb(adm);
	ASSERT(PQstatus(b) == CONNECTION_OK);
	sql_ok(b, "REVOKE EXECUTE ON FUNCTION pg_catalog.pg_control_system() "
		  "FROM PUBLIC");
	char uri[1024];
	snprintf(uri, sizeof uri,
		 "postgresql://larder:%s@127.0.0.1:%s/"
		 "larder_noctl",
		 pg_password, pg_port);
	PQfinish(b);
	struct ldr_sql_conn *c = connect_as(uri);
	char id[256];
	ASSERT_SRC(ldr_sql_pg.identity(c, id, sizeof id), 0);
	char want[256];
	snprintf(want, sizeof want,
		 "postgresql:127.0.0.1:%s/larder_noctl/"
		 "larder",
		 pg_port);
	ASSERT_STR_EQ(id, want);
	ldr_sql_pg.close(c);
}

TEST(wrong_password_is_eperm_and_never_shown)
{
	const char *bad = "wrong-Secret-4711";
	struct ldr_sql_conn *c = NULL;
	ASSERT_SRC(ldr_sql_pg.open(&c, NULL, uri_for("larder", bad, NULL), 0),
		   LARDER_EPERM);
	ASSERT(c == NULL);
	const char *m = larder_errmsg(NULL);
	ASSERT_CONTAINS(m, "password authentication failed");
	ASSERT_CONTAINS(m, "\"larder\"");
	ASSERT_LACKS(m, bad);
	ASSERT(!strchr(m, '\n'));
	/* The same in key=value form. */
	char kv[512];
	snprintf(kv, sizeof kv,
		 "host=%s port=%s dbname=larder user=larder password=%s",
		 pg_host, pg_port, bad);
	ASSERT_SRC(ldr_sql_pg.open(&c, NULL, kv, 0), LARDER_EPERM);
	ASSERT_LACKS(larder_errmsg(NULL), bad);
}

TEST(missing_password_is_eperm)
{
	char uri[512];
	snprintf(uri, sizeof uri, "postgresql://larder@%s:%s/larder", pg_host,
		 pg_port);
	struct ldr_sql_conn *c = NULL;
	ASSERT_SRC(ldr_sql_pg.open(&c, NULL, uri, 0), LARDER_EPERM);
	ASSERT_CONTAINS(larder_errmsg(NULL), "password");
}

TEST(unknown_role_is_eperm)
{
	struct ldr_sql_conn *c = NULL;
	ASSERT_SRC(
	    ldr_sql_pg.open(&c, NULL, uri_for("nobody_here", "x1234", NULL), 0),
	    LARDER_EPERM);
	ASSERT_LACKS(larder_errmsg(NULL), "x1234");
}

TEST(unreachable_port_is_eio_with_libpq_message)
{
	char uri[512];
	snprintf(uri, sizeof uri, "postgresql://larder:%s@127.0.0.1:%d/larder",
		 pg_password, closed_port());
	struct ldr_sql_conn *c = NULL;
	double t0 = now_s();
	ASSERT_SRC(ldr_sql_pg.open(&c, NULL, uri, 0), LARDER_EIO);
	ASSERT(now_s() - t0 < 5);
	const char *m = larder_errmsg(NULL);
	ASSERT_CONTAINS(m, "Connection refused");
	ASSERT_LACKS(m, pg_password);
	ASSERT(!strchr(m, '\n'));
}

TEST(unanswering_host_times_out_by_default)
{
	/* A listening socket that never answers: the connect succeeds, the
	 * startup packet is never replied to. connect_timeout (10 s unless
	 * given) ends the wait; given here as 2 to keep the test short, and
	 * a second open checks the default applies without it. */
	int s = socket(AF_INET, SOCK_STREAM, 0);
	ASSERT(s >= 0);
	struct sockaddr_in a = {0};
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ASSERT(bind(s, (struct sockaddr *)&a, sizeof a) == 0);
	ASSERT(listen(s, 8) == 0);
	socklen_t l = sizeof a;
	ASSERT(getsockname(s, (struct sockaddr *)&a, &l) == 0);
	char uri[512];
	snprintf(uri, sizeof uri,
		 "postgresql://larder:%s@127.0.0.1:%d/larder?connect_timeout=2",
		 pg_password, ntohs(a.sin_port));
	struct ldr_sql_conn *c = NULL;
	double t0 = now_s();
	ASSERT_SRC(ldr_sql_pg.open(&c, NULL, uri, 0), LARDER_EIO);
	double took = now_s() - t0;
	ASSERT(took > 1.5 && took < 6);
	ASSERT_CONTAINS(larder_errmsg(NULL), "timeout");
	snprintf(uri, sizeof uri, "postgresql://larder:%s@127.0.0.1:%d/larder",
		 pg_password, ntohs(a.sin_port));
	t0 = now_s();
	ASSERT_SRC(ldr_sql_pg.open(&c, NULL, uri, 0), LARDER_EIO);
	took = now_s() - t0;
	ASSERT(took > 9 && took < 15);
	close(s);
}

TEST(missing_database_is_enotfound)
{
	char uri[512];
	snprintf(uri, sizeof uri, "postgresql://larder:%s@%s:%s/no_such_db",
		 pg_password, pg_host, pg_port);
	struct ldr_sql_conn *c = NULL;
	ASSERT_SRC(ldr_sql_pg.open(&c, NULL, uri, 0), LARDER_ENOTFOUND);
	ASSERT_CONTAINS(larder_errmsg(NULL), "no_such_db");
}

TEST(bad_connection_string_is_einval_without_the_password)
{
	static const char *const bad[] = {
	    "postgresql://larder:Sec%zzret@127.0.0.1/larder",
	    "host=127.0.0.1 password=Sec'ret dbname",
	    "postgresql://larder:Secret99@127.0.0.1:notaport/larder",
	    "postgresql://larder:Secret99@127.0.0.1/larder?nosuchoption=1",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct ldr_sql_conn *c = NULL;
		int rc = ldr_sql_pg.open(&c, NULL, bad[i], 0);
		ASSERT(c == NULL);
		if (rc != LARDER_EINVAL)
			test_fail(__FILE__, __LINE__, "%s: %d %s", bad[i], rc,
				  larder_errmsg(NULL));
		const char *m = larder_errmsg(NULL);
		ASSERT(m[0]);
		ASSERT_LACKS(m, "Sec");
		ASSERT_LACKS(m, "ret");
	}
	/* With no password in it, libpq's message is shown whole. */
	struct ldr_sql_conn *c = NULL;
	ASSERT_SRC(ldr_sql_pg.open(&c, NULL, "host=127.0.0.1 dbname", 0),
		   LARDER_EINVAL);
	ASSERT_CONTAINS(larder_errmsg(NULL), "missing \"=\" after \"dbname\"");
}

TEST(session_output_settings_are_fixed)
{
	/* The client's environment must not change the bytes of a result:
	 * the key does not include it. */
	setenv("PGTZ", "America/New_York", 1);
	setenv("PGDATESTYLE", "German", 1);
	struct ldr_sql_conn *c =
	    connect_as(uri_for("larder", pg_password,
			       "options=-c%20extra_float_digits%3D-3%20-c%20"
			       "bytea_output%3Descape"));
	struct got g;
	ASSERT_SRC(
	    run_query(c, &g,
		      "SELECT '2024-03-05 12:34:56+00'::timestamptz, "
		      "'2024-03-05'::date, 0.1::float8, '\\x00ff'::bytea, "
		      "'1 day 2 hours'::interval",
		      NULL, 0),
	    0);
	ASSERT_STR_EQ(g.text, "T=2024-03-05 12:34:56+00|T=2024-03-05|R=0.1|"
			      "X=\\x00\xff|T=1 day 02:00:00\n");
	free(g.text);
	ldr_sql_pg.close(c);
}

/* ---------------------------------------------------------------------- */
/* Values                                                                  */

TEST(values_and_kinds_by_column_type)
{
	struct ldr_sql_conn *c = connect_as(pg_uri);
	struct got g;
	ASSERT_SRC(
	    run_query(c, &g,
		      "SELECT 1::int2 AS a, '-2147483648'::int4 AS b, "
		      "9223372036854775807::int8 AS c, 42::oid AS d, "
		      "1.5::float4 AS e, '-Infinity'::float8 AS f, "
		      "'NaN'::float8 AS g, 0.1::float8 AS h, "
		      "123456789012345678901234567890.000000001::numeric AS i, "
		      "'NaN'::numeric AS j, true AS k, false AS l, "
		      "'{\"a\": [1, 2]}'::json AS m, "
		      "'{\"b\": 1, \"a\": null}'::jsonb AS n, "
		      "'héllo wörld ☃ 𝄞'::text AS o, ''::text AS p, "
		      "'x'::varchar(3) AS q, '2024-01-02'::date AS r",
		      NULL, 0),
	    0);
	ASSERT_EQ(g.columns_calls, 1);
	ASSERT_STR_EQ(g.names, "a,b,c,d,e,f,g,h,i,j,k,l,m,n,o,p,q,r");
	ASSERT_EQ(g.rows, 1);
	ASSERT_STR_EQ(
	    g.text,
	    "I=1|I=-2147483648|I=9223372036854775807|I=42|R=1.5|R=-Infinity|"
	    "R=NaN|R=0.1|M=123456789012345678901234567890.000000001|M=NaN|B=t|"
	    "B=f|J={\"a\": [1, 2]}|J={\"a\": null, \"b\": 1}|"
	    "T=héllo wörld ☃ 𝄞|T=|T=x|T=2024-01-02\n");
	free(g.text);
	ldr_sql_pg.close(c);
}

TEST(null_of_every_kind_is_null)
{
	struct ldr_sql_conn *c = connect_as(pg_uri);
	struct got g;
	ASSERT_SRC(
	    run_query(c, &g,
		      "SELECT NULL::int4, NULL::float8, NULL::numeric, "
		      "NULL::bool, NULL::bytea, NULL::jsonb, NULL::text, "
		      "''::bytea, ''::text",
		      NULL, 0),
	    0);
	/* An empty bytea and an empty text are values, not NULL. */
	ASSERT_STR_EQ(g.text, "N=|N=|N=|N=|N=|N=|N=|X=|T=\n");
	free(g.text);
	ldr_sql_pg.close(c);
}

TEST(bytea_decodes_to_raw_bytes)
{
	struct ldr_sql_conn *c = connect_as(pg_uri);
	struct got g;
	/* Every byte value, and a large value next to a small one. */
	ASSERT_SRC(
	    run_query(c, &g,
		      "SELECT string_agg(set_byte('\\x00'::bytea, 0, i), "
		      "''::bytea ORDER BY i), decode(repeat('ab', "
		      "300000), 'hex'), '\\x'::bytea FROM "
		      "generate_series(0, 255) i",
		      NULL, 0),
	    0);
	struct got want = {0};
	char all[256], big[300000];
	for (int i = 0; i < 256; i++)
		all[i] = (char)i;
	memset(big, 0xab, sizeof big);
	put(&want, "X=", 2);
	put_escaped(&want, all, sizeof all);
	put(&want, "|X=", 3);
	put_escaped(&want, big, sizeof big);
	put(&want, "|X=\n", 4);
	ASSERT_EQ(g.len, want.len);
	ASSERT_MEM_EQ(g.text, want.text, want.len);
	ASSERT_EQ(g.bytes, 256 + 300000);
	free(g.text);
	free(want.text);
	ldr_sql_pg.close(c);
}

TEST(domain_columns_take_their_base_kind)
{
	PGconn *a = admin();
	sql_ok(a, "DROP DOMAIN IF EXISTS dom_count CASCADE");
	sql_ok(a, "CREATE DOMAIN dom_count AS int8 CHECK (VALUE >= 0)");
	struct ldr_sql_conn *c = connect_as(pg_uri);
	struct got g;
	ASSERT_SRC(run_query(c, &g, "SELECT 7::dom_count", NULL, 0), 0);
	ASSERT_STR_EQ(g.text, "I=7\n");
	free(g.text);
	ldr_sql_pg.close(c);
	PQfinish(a);
}

TEST(text_parameters_and_null)
{
	struct ldr_sql_conn *c = connect_as(pg_uri);
	struct got g;
	const char *p[4] = {"héllo 'quoted' \\ back", "42", NULL, "2.50"};
	ASSERT_SRC(run_query(c, &g,
			     "SELECT $1::text, $2::int + 1, $3::text IS NULL, "
			     "$3::int, $4::numeric",
			     p, 4),
		   0);
	ASSERT_STR_EQ(g.text,
		      "T=héllo 'quoted' \\x5c back|I=43|B=t|N=|M=2.50\n");
	free(g.text);
	/* A parameter that is not a number, where one is needed. */
	const char *bad[1] = {"forty-two"};
	ASSERT_SRC(run_query(c, &g, "SELECT $1::int", bad, 1), LARDER_EINVAL);
	ASSERT_CONTAINS(larder_errmsg(NULL), "invalid input syntax");
	ASSERT_CONTAINS(larder_errmsg(NULL), "22P02");
	free(g.text);
	/* Fewer parameters than the statement has. */
	ASSERT_SRC(run_query(c, &g, "SELECT $1::int, $2::int", bad, 1),
		   LARDER_EINVAL);
	free(g.text);
	ldr_sql_pg.close(c);
}

TEST(no_rows_still_gives_the_columns)
{
	struct ldr_sql_conn *c = connect_as(pg_uri);
	struct got g;
	ASSERT_SRC(run_query(c, &g, "SELECT 1 AS one, 'x' AS two WHERE false",
			     NULL, 0),
		   0);
	ASSERT_EQ(g.columns_calls, 1);
	ASSERT_STR_EQ(g.names, "one,two");
	ASSERT_EQ(g.rows, 0);
	/* A statement with no result set at all: columns(0). */
	ASSERT_SRC(run_query(c, &g, "SET LOCAL work_mem = '8MB'", NULL, 0), 0);
	ASSERT_EQ(g.columns_calls, 1);
	ASSERT_EQ(g.ncol, 0);
	ASSERT_EQ(g.rows, 0);
	ldr_sql_pg.close(c);
}

TEST(nparams_counts_the_statement_parameters)
{
	struct ldr_sql_conn *c = connect_as(pg_uri);
	size_t n = 99;
	ASSERT_SRC(ldr_sql_pg.begin(c), 0);
	ASSERT_SRC(ldr_sql_pg.nparams(c, "SELECT 1", &n), 0);
	ASSERT_EQ(n, 0);
	ASSERT_SRC(
	    ldr_sql_pg.nparams(c, "SELECT $1::int + $2::int + $3::int", &n), 0);
	ASSERT_EQ(n, 3);
	/* Then a query with parameters runs on the same connection. */
	struct got g = {.keep = 1};
	struct ldr_sql_sink s = sink_of(&g);
	const char *p[2] = {"5", "6"};
	ASSERT_SRC(ldr_sql_pg.query(c, "SELECT $1::int * $2::int", p, 2, &s),
		   0);
	ASSERT_STR_EQ(g.text, "I=30\n");
	free(g.text);
	ASSERT_SRC(ldr_sql_pg.nparams(c, "SELEC $1", &n), LARDER_EINVAL);
	ASSERT_CONTAINS(larder_errmsg(NULL), "syntax error");
	ASSERT_SRC(ldr_sql_pg.end(c), 0);
	ldr_sql_pg.close(c);
}

/* ---------------------------------------------------------------------- */
/* Streaming                                                               */

TEST(rows_stream_in_bounded_memory)
{
	/* 256 MiB of rows through the sink; the process's peak memory must
	 * not grow by more than a few MiB: the result is never held whole
	 * (single-row mode). */
	struct ldr_sql_conn *c = connect_as(pg_uri);
	long before = peak_rss_kib();
	struct got g = {0};
	struct ldr_sql_sink s = sink_of(&g);
	ASSERT_SRC(ldr_sql_pg.begin(c), 0);
	double t0 = now_s();
	ASSERT_SRC(ldr_sql_pg.query(c,
				    "SELECT i, repeat('x', 1016) FROM "
				    "generate_series(1, 262144) i",
				    NULL, 0, &s),
		   0);
	double took = now_s() - t0;
	ASSERT_SRC(ldr_sql_pg.end(c), 0);
	long after = peak_rss_kib();
	ASSERT_EQ(g.rows, 262144);
	ASSERT(g.bytes > 266000000);
	printf("    256 MiB in %.2f s (%.0f MB/s), peak RSS %ld -> %ld KiB\n",
	       took, (double)g.bytes / took / 1e6, before, after);
#ifdef TEST_ASAN
	ASSERT(after - before < 96 * 1024); /* shadow memory, the quarantine */
#else
	ASSERT(after - before < 16 * 1024);
#endif
	ldr_sql_pg.close(c);
}

TEST(sink_failure_stops_a_large_query_and_the_connection_goes_on)
{
	struct ldr_sql_conn *c = connect_as(pg_uri);
	struct got g = {0};
	g.stop_after = 10;
	struct ldr_sql_sink s = sink_of(&g);
	ASSERT_SRC(ldr_sql_pg.begin(c), 0);
	double t0 = now_s();
	/* Billions of rows: only a cancel makes this quick. */
	ASSERT_SRC(ldr_sql_pg.query(c,
				    "SELECT generate_series(1, "
				    "100000000000)",
				    NULL, 0, &s),
		   -42);
	ASSERT(now_s() - t0 < 10);
	ASSERT_EQ(g.rows, 10);
	ASSERT_SRC(ldr_sql_pg.end(c), 0);
	struct got h;
	ASSERT_SRC(run_query(c, &h, "SELECT 'still here'", NULL, 0), 0);
	ASSERT_STR_EQ(h.text, "T=still here\n");
	free(h.text);
	ldr_sql_pg.close(c);
}

/* ---------------------------------------------------------------------- */
/* Snapshots                                                               */

/* A child that runs `sql` as admin in a loop, each in its own
 * transaction, until stopped; returns its pid once it has committed once. */
static pid_t writer(const char *sql)
{
	int p[2];
	ASSERT(pipe(p) == 0);
	pid_t pid = fork();
	ASSERT(pid >= 0);
	if (pid == 0) {
		close(p[0]);
		char conninfo[1024];
		snprintf(conninfo, sizeof conninfo,
			 "%s application_name=larder_writer_%d", pg_admin,
			 (int)getpid());
		PGconn *a = PQconnectdb(conninfo);
		if (PQstatus(a) != CONNECTION_OK)
			_exit(3);
		for (long i = 0;; i++) {
			PGresult *r = PQexec(a, sql);
			if (PQresultStatus(r) != PGRES_COMMAND_OK &&
			    PQresultStatus(r) != PGRES_TUPLES_OK) {
				fprintf(stderr, "writer: %s",
					PQerrorMessage(a));
				_exit(4);
			}
			PQclear(r);
			if (i == 0) {
				(void)!write(p[1], "w", 1);
				close(p[1]);
			}
		}
	}
	close(p[1]);
	char ch;
	ASSERT(read(p[0], &ch, 1) == 1);
	close(p[0]);
	return pid;
}

/* Kill the writer, and wait until its server session is gone: a statement
 * it sent before dying still runs, and commits, on the server. */
static void stop_writer(pid_t pid)
{
	kill(pid, SIGKILL);
	int st;
	ASSERT(waitpid(pid, &st, 0) == pid);
	/* Killed by us, not dead of its own failure. */
	ASSERT(WIFSIGNALED(st));
	PGconn *a = admin();
	double t0 = now_s();
	while (strcmp(sql_val(a,
			      "SELECT count(*) FROM pg_stat_activity WHERE "
			      "application_name = 'larder_writer_%d'",
			      (int)pid),
		      "0") != 0)
		ASSERT(now_s() - t0 < 30);
	PQfinish(a);
}

struct sum_sink {
	size_t rows;
	long long sum;
};

static int sum_columns(void *p, size_t n, const char *const *names)
{
	(void)p, (void)n, (void)names;
	return 0;
}

static int sum_row(void *p, size_t n, const char *const *val, const size_t *len,
		   const int *kind)
{
	(void)len;
	struct sum_sink *s = p;
	ASSERT(n == 1 && kind[0] == LDR_SQL_INT);
	s->sum += atoll(val[0]);
	s->rows++;
	return 0;
}

TEST(one_snapshot_across_queries_while_a_writer_commits)
{
	PGconn *a = admin();
	sql_ok(a, "DROP TABLE IF EXISTS snap_t");
	sql_ok(a, "CREATE TABLE snap_t (id int PRIMARY KEY, v bigint)");
	sql_ok(a, "INSERT INTO snap_t SELECT i, 0 FROM generate_series(1, "
		  "50000) i");
	sql_ok(a, "ALTER TABLE snap_t OWNER TO larder");
	struct ldr_sql_conn *c = connect_as(pg_uri);
	ASSERT_SRC(ldr_sql_pg.track(c, "snap_t"), 0);
	/* Every transaction adds 1 to all rows: the sum moves by 50000. */
	pid_t w = writer("UPDATE snap_t SET v = v + 1");
	for (int round = 0; round < 3; round++) {
		ASSERT_SRC(ldr_sql_pg.begin(c), 0);
		char v1[128], v2[128];
		ASSERT_SRC(ldr_sql_pg.table_version(c, "snap_t", v1, sizeof v1),
			   0);
		struct sum_sink s1 = {0}, s2 = {0};
		struct ldr_sql_sink k1 = {sum_columns, sum_row, &s1};
		struct ldr_sql_sink k2 = {sum_columns, sum_row, &s2};
		ASSERT_SRC(ldr_sql_pg.query(c,
					    "SELECT sum(v)::int8 FROM snap_t",
					    NULL, 0, &k1),
			   0);
		/* A writer commits meanwhile (wait until it has). */
		const char *before =
		    sql_val(a, "SELECT n FROM larder_changes WHERE tbl = "
			       "'public.snap_t'");
		double t0 = now_s();
		while (strcmp(sql_val(a, "SELECT n FROM larder_changes WHERE "
					 "tbl = 'public.snap_t'"),
			      before) == 0)
			ASSERT(now_s() - t0 < 30);
		ASSERT_SRC(
		    ldr_sql_pg.query(c, "SELECT v FROM snap_t", NULL, 0, &k2),
		    0);
		ASSERT_SRC(ldr_sql_pg.table_version(c, "snap_t", v2, sizeof v2),
			   0);
		ASSERT_SRC(ldr_sql_pg.end(c), 0);
		ASSERT_EQ(s2.rows, 50000);
		ASSERT_EQ(s2.sum, s1.sum);
		ASSERT_EQ(s1.sum % 50000, 0);
		/* The version read at the start is the version of the data:
		 * v = number of updates = counter since track. */
		ASSERT_STR_EQ(v1, v2);
		char tok[64];
		long long n;
		split_version(v1, tok, &n);
		ASSERT_EQ(s1.sum / 50000, n);
	}
	stop_writer(w);
	ldr_sql_pg.close(c);
	PQfinish(a);
}

TEST(the_snapshot_is_taken_by_the_first_read_not_by_begin)
{
	/* What commits between begin() and the first statement is seen:
	 * begin (with its settings) takes no snapshot, so LOCK TABLE in
	 * table_version() comes before it. */
	PGconn *a = admin();
	sql_ok(a, "DROP TABLE IF EXISTS first_t");
	sql_ok(a, "CREATE TABLE first_t (x int)");
	sql_ok(a, "GRANT SELECT ON first_t TO larder");
	struct ldr_sql_conn *c = connect_as(pg_uri);
	ASSERT_SRC(ldr_sql_pg.begin(c), 0);
	sql_ok(a, "INSERT INTO first_t VALUES (1)");
	struct got g = {.keep = 1};
	struct ldr_sql_sink s = sink_of(&g);
	ASSERT_SRC(
	    ldr_sql_pg.query(c, "SELECT count(*) FROM first_t", NULL, 0, &s),
	    0);
	ASSERT_STR_EQ(g.text, "I=1\n");
	/* and from then on, nothing new */
	sql_ok(a, "INSERT INTO first_t VALUES (2)");
	g.len = 0;
	g.columns_calls = 0;
	ASSERT_SRC(
	    ldr_sql_pg.query(c, "SELECT count(*) FROM first_t", NULL, 0, &s),
	    0);
	ASSERT_STR_EQ(g.text, "I=1\n");
	free(g.text);
	ASSERT_SRC(ldr_sql_pg.end(c), 0);
	ldr_sql_pg.close(c);
	PQfinish(a);
}

TEST(read_snapshot_refuses_writes)
{
	PGconn *a = admin();
	sql_ok(a, "DROP TABLE IF EXISTS ro_t");
	sql_ok(a, "CREATE TABLE ro_t (x int)");
	sql_ok(a, "GRANT ALL ON ro_t TO larder");
	struct ldr_sql_conn *c = connect_as(pg_uri);
	struct got g;
	ASSERT_SRC(run_query(c, &g, "INSERT INTO ro_t VALUES (1)", NULL, 0),
		   LARDER_EINVAL);
	ASSERT_CONTAINS(larder_errmsg(NULL), "read-only transaction");
	ASSERT_STR_EQ(sql_val(a, "SELECT count(*) FROM ro_t"), "0");
	free(g.text);
	ldr_sql_pg.close(c);
	PQfinish(a);
}

/* ---------------------------------------------------------------------- */
/* Errors in queries                                                       */

TEST(bad_sql_is_einval_and_the_connection_recovers)
{
	struct ldr_sql_conn *c = connect_as(pg_uri);
	struct got g;
	ASSERT_SRC(run_query(c, &g, "SELEC 1", NULL, 0), LARDER_EINVAL);
	const char *m = larder_errmsg(NULL);
	ASSERT_CONTAINS(m, "syntax error at or near \"SELEC\"");
	ASSERT_CONTAINS(m, "42601");
	free(g.text);
	/* Two statements in one query string are refused too. */
	ASSERT_SRC(run_query(c, &g, "SELECT 1; SELECT 2", NULL, 0),
		   LARDER_EINVAL);
	free(g.text);
	ASSERT_SRC(run_query(c, &g, "", NULL, 0), LARDER_EINVAL);
	free(g.text);
	/* An error in the middle of a stream of rows. */
	ASSERT_SRC(
	    run_query(c, &g,
		      "SELECT 10 / (5 - i) FROM generate_series(1, 10) i", NULL,
		      0),
	    LARDER_EINVAL);
	ASSERT_CONTAINS(larder_errmsg(NULL), "division by zero");
	free(g.text);
	/* After an error inside a snapshot: end rolls back, the next
	 * snapshot works. */
	ASSERT_SRC(ldr_sql_pg.begin(c), 0);
	struct got h = {.keep = 1};
	struct ldr_sql_sink s = sink_of(&h);
	ASSERT_SRC(ldr_sql_pg.query(c, "SELECT nope", NULL, 0, &s),
		   LARDER_EINVAL);
	ASSERT_SRC(ldr_sql_pg.query(c, "SELECT 1", NULL, 0, &s), LARDER_EINVAL);
	ASSERT_CONTAINS(larder_errmsg(NULL), "transaction is aborted");
	ASSERT_SRC(ldr_sql_pg.end(c), 0);
	ASSERT_SRC(run_query(c, &g, "SELECT 'ok'", NULL, 0), 0);
	ASSERT_STR_EQ(g.text, "T=ok\n");
	free(g.text);
	ldr_sql_pg.close(c);
}

TEST(missing_table_is_einval)
{
	struct ldr_sql_conn *c = connect_as(pg_uri);
	struct got g;
	ASSERT_SRC(run_query(c, &g, "SELECT * FROM no_such_table", NULL, 0),
		   LARDER_EINVAL);
	ASSERT_CONTAINS(larder_errmsg(NULL),
			"relation \"no_such_table\" does not exist");
	ASSERT_CONTAINS(larder_errmsg(NULL), "42P01");
	free(g.text);
	ldr_sql_pg.close(c);
}

TEST(permission_denied_is_eperm)
{
	PGconn *a = admin();
	sql_ok(a, "DROP TABLE IF EXISTS secret_t");
	sql_ok(a, "CREATE TABLE secret_t (x int)");
	sql_ok(a, "REVOKE ALL ON secret_t FROM PUBLIC");
	struct ldr_sql_conn *c = connect_as(pg_uri);
	struct got g;
	ASSERT_SRC(run_query(c, &g, "SELECT * FROM secret_t", NULL, 0),
		   LARDER_EPERM);
	ASSERT_CONTAINS(larder_errmsg(NULL), "permission denied");
	ASSERT_CONTAINS(larder_errmsg(NULL), "42501");
	free(g.text);
	ldr_sql_pg.close(c);
	PQfinish(a);
}

TEST(statement_timeout_from_the_connection_string_is_eio)
{
	/* larder sets none; the user's applies, and ends the query. */
	struct ldr_sql_conn *c = connect_as(uri_for(
	    "larder", pg_password, "options=-c%20statement_timeout%3D200"));
	struct got g;
	double t0 = now_s();
	ASSERT_SRC(run_query(c, &g, "SELECT pg_sleep(30)", NULL, 0),
		   LARDER_EIO);
	ASSERT(now_s() - t0 < 10);
	ASSERT_CONTAINS(larder_errmsg(NULL), "statement timeout");
	ASSERT_CONTAINS(larder_errmsg(NULL), "57014");
	free(g.text);
	/* and the connection goes on */
	ASSERT_SRC(run_query(c, &g, "SELECT 1", NULL, 0), 0);
	free(g.text);
	ldr_sql_pg.close(c);
}

/* The backend of a connection that set application_name = `app`, killed
 * by the admin once it runs a query. */
static void kill_backend_when_active(PGconn *a, const char *app)
{
	double t0 = now_s();
	for (;;) {
		const char *pid =
		    sql_val(a,
			    "SELECT pid FROM pg_stat_activity WHERE "
			    "application_name = '%s' AND state = 'active'",
			    app);
		if (strcmp(pid, "<none>") != 0) {
			ASSERT_STR_EQ(
			    sql_val(a, "SELECT pg_terminate_backend(%s)", pid),
			    "t");
			return;
		}
		ASSERT(now_s() - t0 < 30);
	}
}

TEST(backend_killed_mid_query_is_eio)
{
	PGconn *a = admin();
	char app[64];
	snprintf(app, sizeof app, "larder_kill_%d", (int)getpid());
	char extra[128];
	snprintf(extra, sizeof extra, "application_name=%s", app);
	struct ldr_sql_conn *c =
	    connect_as(uri_for("larder", pg_password, extra));
	/* Rows already streaming when the backend dies: the killer waits
	 * for the 1000th. */
	int p[2];
	ASSERT(pipe(p) == 0);
	pid_t k = fork();
	ASSERT(k >= 0);
	if (k == 0) {
		close(p[1]);
		char ch;
		if (read(p[0], &ch, 1) != 1)
			_exit(2);
		PGconn *b = admin();
		kill_backend_when_active(b, app);
		_exit(0);
	}
	close(p[0]);
	struct got g = {0};
	g.notify_at = 1000;
	g.notify_fd = p[1];
	struct ldr_sql_sink s = sink_of(&g);
	ASSERT_SRC(ldr_sql_pg.begin(c), 0);
	ASSERT_SRC(ldr_sql_pg.query(c,
				    "SELECT i, pg_sleep(CASE WHEN i % 1000 = 0 "
				    "THEN 0.01 ELSE 0 END) FROM (SELECT "
				    "generate_series(1, 100000000) AS i) s",
				    NULL, 0, &s),
		   LARDER_EIO);
	const char *m = larder_errmsg(NULL);
	if (!strstr(m, "terminating connection") &&
	    !strstr(m, "server closed the connection"))
		test_fail(__FILE__, __LINE__, "unexpected message: %s", m);
	ASSERT(g.rows >= 1000);
	close(p[1]);
	int st;
	ASSERT(waitpid(k, &st, 0) == k && WIFEXITED(st) &&
	       WEXITSTATUS(st) == 0);
	/* The connection is gone: every further call says so, none
	 * crashes or hangs. */
	ASSERT_SRC(ldr_sql_pg.end(c), LARDER_EIO);
	ASSERT_SRC(ldr_sql_pg.begin(c), LARDER_EIO);
	struct got h;
	ASSERT_SRC(run_query(c, &h, "SELECT 1", NULL, 0), LARDER_EIO);
	free(h.text);
	ldr_sql_pg.close(c);
	PQfinish(a);
}

TEST(backend_killed_before_rows_is_eio)
{
	char app[64], extra[128];
	snprintf(app, sizeof app, "larder_sleep_%d", (int)getpid());
	snprintf(extra, sizeof extra, "application_name=%s", app);
	struct ldr_sql_conn *c =
	    connect_as(uri_for("larder", pg_password, extra));
	pid_t k = fork();
	ASSERT(k >= 0);
	if (k == 0) {
		PGconn *b = admin();
		kill_backend_when_active(b, app);
		_exit(0);
	}
	struct got g;
	ASSERT_SRC(run_query(c, &g, "SELECT pg_sleep(60)", NULL, 0),
		   LARDER_EIO);
	ASSERT_EQ(g.rows, 0);
	free(g.text);
	int st;
	ASSERT(waitpid(k, &st, 0) == k && WIFEXITED(st) &&
	       WEXITSTATUS(st) == 0);
	ldr_sql_pg.close(c);
}

/* ---------------------------------------------------------------------- */
/* The change counter                                                      */

/* A fresh table `name` (public) with rows 1..n, readable by larder. */
static void fresh_table(PGconn *a, const char *name, int n)
{
	sql_ok(a, "DROP TABLE IF EXISTS %s CASCADE", name);
	sql_ok(a, "DELETE FROM larder_changes WHERE tbl = 'public.%s'", name);
	sql_ok(a, "CREATE TABLE %s (id int PRIMARY KEY, v text)", name);
	sql_ok(a, "ALTER TABLE %s OWNER TO larder", name);
	sql_ok(
	    a,
	    "INSERT INTO %s SELECT i, 'v' || i FROM generate_series(1, %d) i",
	    name, n);
}

static void ensure_changes_table(PGconn *a)
{
	/* So that fresh_table's DELETE has a table to run on. */
	sql_ok(a, "CREATE TABLE IF NOT EXISTS larder_changes (tbl text "
		  "PRIMARY KEY, token text NOT NULL, n bigint NOT NULL)");
	sql_ok(a, "ALTER TABLE larder_changes OWNER TO larder");
	sql_ok(a, "GRANT SELECT ON larder_changes TO PUBLIC");
}

TEST(track_counts_every_kind_of_write)
{
	PGconn *a = admin();
	ensure_changes_table(a);
	fresh_table(a, "trk_all", 10);
	struct ldr_sql_conn *c = connect_as(pg_uri);
	ASSERT_SRC(ldr_sql_pg.track(c, "trk_all"), 0);
	char tok0[64], tok[64];
	long long n0, n;
	split_version(version_of(c, "trk_all"), tok0, &n0);
	ASSERT_EQ(strlen(tok0), 32);
	ASSERT_EQ(n0, 0);
	static const struct {
		const char *sql;
		int counts; /* statement triggers it fires */
	} writes[] = {
	    {"INSERT INTO trk_all VALUES (100, 'new')", 1},
	    {"UPDATE trk_all SET v = 'changed' WHERE id = 1", 1},
	    {"DELETE FROM trk_all WHERE id = 2", 1},
	    {"UPDATE trk_all SET v = 'none' WHERE false", 1}, /* no rows */
	    {"TRUNCATE trk_all", 1},
	    {"INSERT INTO trk_all SELECT i, 'x' FROM generate_series(1, 500) i",
	     1},
	    /* fires the INSERT and the UPDATE statement triggers */
	    {"INSERT INTO trk_all VALUES (1000, 'a') ON CONFLICT (id) DO "
	     "UPDATE SET v = 'b'",
	     2},
	    {"COPY trk_all FROM PROGRAM 'echo 2000,c' (FORMAT csv)", 1},
	    {"COPY (SELECT 1) TO PROGRAM 'cat >/dev/null'", 0}, /* a read */
	    {"SELECT * FROM trk_all", 0},
	};
	long long want = 0;
	for (size_t i = 0; i < sizeof writes / sizeof writes[0]; i++) {
		sql_ok(a, "%s", writes[i].sql);
		want += writes[i].counts;
		split_version(version_of(c, "trk_all"), tok, &n);
		ASSERT_STR_EQ(tok, tok0);
		if (n != want)
			test_fail(__FILE__, __LINE__,
				  "after %s: n %lld != %lld", writes[i].sql, n,
				  want);
	}
	/* A rolled back write leaves the version as it was. */
	sql_ok(a, "BEGIN; DELETE FROM trk_all; ROLLBACK");
	split_version(version_of(c, "trk_all"), tok, &n);
	ASSERT_EQ(n, want);
	/* Several statements in one transaction: one version per commit
	 * is all that matters, each statement counts. */
	sql_ok(a, "BEGIN; DELETE FROM trk_all WHERE id = 5; "
		  "UPDATE trk_all SET v = 'y'; COMMIT");
	split_version(version_of(c, "trk_all"), tok, &n);
	ASSERT_EQ(n, want + 2);
	ldr_sql_pg.close(c);
	PQfinish(a);
}

TEST(track_is_idempotent)
{
	PGconn *a = admin();
	ensure_changes_table(a);
	fresh_table(a, "trk_idem", 3);
	struct ldr_sql_conn *c = connect_as(pg_uri);
	ASSERT_SRC(ldr_sql_pg.track(c, "trk_idem"), 0);
	sql_ok(a, "UPDATE trk_idem SET v = 'z'");
	char v1[256];
	snprintf(v1, sizeof v1, "%s", version_of(c, "trk_idem"));
	ASSERT_SRC(ldr_sql_pg.track(c, "trk_idem"), 0);
	ASSERT_SRC(ldr_sql_pg.track(c, "public.trk_idem"), 0);
	ASSERT_STR_EQ(version_of(c, "trk_idem"), v1);
	ASSERT_STR_EQ(sql_val(a, "SELECT count(*) FROM pg_trigger WHERE "
				 "tgrelid = 'trk_idem'::regclass"),
		      "1");
	sql_ok(a, "UPDATE trk_idem SET v = 'w'");
	char tok1[64], tok2[64];
	long long n1, n2;
	split_version(v1, tok1, &n1);
	split_version(version_of(c, "trk_idem"), tok2, &n2);
	ASSERT_STR_EQ(tok1, tok2);
	ASSERT_EQ(n2, n1 + 1); /* one trigger: counted once */
	ldr_sql_pg.close(c);
	PQfinish(a);
}

TEST(untrack_removes_everything_and_track_again_changes_token)
{
	PGconn *a = admin();
	sql_ok(a, "DROP SCHEMA IF EXISTS untrk CASCADE");
	sql_ok(a, "CREATE SCHEMA untrk AUTHORIZATION larder");
	sql_ok(a, "CREATE TABLE untrk.t1 (x int)");
	sql_ok(a, "CREATE TABLE untrk.t2 (x int)");
	sql_ok(a, "ALTER TABLE untrk.t1 OWNER TO larder");
	sql_ok(a, "ALTER TABLE untrk.t2 OWNER TO larder");
	struct ldr_sql_conn *c = connect_as(pg_uri);
	ASSERT_SRC(ldr_sql_pg.track(c, "untrk.t1"), 0);
	ASSERT_SRC(ldr_sql_pg.track(c, "untrk.t2"), 0);
	char v1[256], tok1[64], tok2[64];
	long long n;
	snprintf(v1, sizeof v1, "%s", version_of(c, "untrk.t1"));
	split_version(v1, tok1, &n);
	/* Untracking one leaves the other's machinery alone. */
	ASSERT_SRC(ldr_sql_pg.untrack(c, "untrk.t1"), 0);
	ASSERT_STR_EQ(sql_val(a, "SELECT count(*) FROM pg_trigger WHERE "
				 "tgrelid = 'untrk.t1'::regclass"),
		      "0");
	ASSERT_STR_EQ(sql_val(a, "SELECT count(*) FROM untrk.larder_changes"),
		      "1");
	sql_ok(a, "INSERT INTO untrk.t2 VALUES (1)");
	split_version(version_of(c, "untrk.t2"), tok2, &n);
	ASSERT_EQ(n, 1);
	/* Not tracked: ENOTFOUND, and the message says what to do. */
	char buf[256];
	ASSERT_SRC(ldr_sql_pg.begin(c), 0);
	ASSERT_SRC(ldr_sql_pg.table_version(c, "untrk.t1", buf, sizeof buf),
		   LARDER_ENOTFOUND);
	ASSERT_CONTAINS(larder_errmsg(NULL), "not tracked");
	ASSERT_CONTAINS(larder_errmsg(NULL), "larder sql track");
	ASSERT_SRC(ldr_sql_pg.end(c), 0);
	/* Untracking again is fine. */
	ASSERT_SRC(ldr_sql_pg.untrack(c, "untrk.t1"), 0);
	/* The last one takes the function with it; larder_changes stays,
	 * empty. */
	ASSERT_SRC(ldr_sql_pg.untrack(c, "untrk.t2"), 0);
	ASSERT_STR_EQ(sql_val(a, "SELECT count(*) FROM untrk.larder_changes"),
		      "0");
	ASSERT_STR_EQ(
	    sql_val(a, "SELECT to_regprocedure('untrk.larder_track_count()')"),
	    "<null>");
	/* Writes while untracked, then track again: a new token, so no
	 * version from before can come back. */
	sql_ok(a, "INSERT INTO untrk.t1 VALUES (2)");
	ASSERT_SRC(ldr_sql_pg.track(c, "untrk.t1"), 0);
	char tok3[64];
	split_version(version_of(c, "untrk.t1"), tok3, &n);
	ASSERT(strcmp(tok3, tok1) != 0);
	ASSERT_EQ(n, 0);
	ldr_sql_pg.close(c);
	PQfinish(a);
}

TEST(quoted_and_schema_qualified_names)
{
	PGconn *a = admin();
	sql_ok(a, "DROP SCHEMA IF EXISTS \"Sales Data\" CASCADE");
	sql_ok(a, "CREATE SCHEMA \"Sales Data\" AUTHORIZATION larder");
	sql_ok(a, "CREATE TABLE \"Sales Data\".\"Order\"\"s\" (x int)");
	sql_ok(a, "ALTER TABLE \"Sales Data\".\"Order\"\"s\" OWNER TO larder");
	struct ldr_sql_conn *c = connect_as(pg_uri);
	const char *name = "\"Sales Data\".\"Order\"\"s\"";
	ASSERT_SRC(ldr_sql_pg.track(c, name), 0);
	sql_ok(a, "INSERT INTO \"Sales Data\".\"Order\"\"s\" VALUES (1)");
	char tok[64];
	long long n;
	split_version(version_of(c, name), tok, &n);
	ASSERT_EQ(n, 1);
	ASSERT_STR_EQ(
	    sql_val(a, "SELECT tbl FROM \"Sales Data\".larder_changes"),
	    "\"Sales Data\".\"Order\"\"s\"");
	/* Unquoted, the name folds to lower case: another table. */
	char buf[256];
	ASSERT_SRC(ldr_sql_pg.begin(c), 0);
	ASSERT_SRC(ldr_sql_pg.table_version(c, "\"Sales Data\".Orders", buf,
					    sizeof buf),
		   LARDER_EINVAL);
	ASSERT_CONTAINS(larder_errmsg(NULL), "does not exist");
	ASSERT_SRC(ldr_sql_pg.end(c), 0);
	ASSERT_SRC(ldr_sql_pg.untrack(c, name), 0);
	ldr_sql_pg.close(c);
	PQfinish(a);
}

TEST(writers_need_no_right_on_the_counter_and_readers_can_read_it)
{
	PGconn *a = admin();
	ensure_changes_table(a);
	fresh_table(a, "trk_rights", 1);
	sql_ok(a, "DROP ROLE IF EXISTS larder_w");
	sql_ok(a, "CREATE ROLE larder_w LOGIN PASSWORD 'w-pass-123'");
	sql_ok(a, "GRANT INSERT, SELECT ON trk_rights TO larder_w");
	struct ldr_sql_conn *c = connect_as(pg_uri);
	ASSERT_SRC(ldr_sql_pg.track(c, "trk_rights"), 0);
	ldr_sql_pg.close(c);
	/* A writer with INSERT only on the table: counted. */
	char uri[512];
	snprintf(uri, sizeof uri, "%s",
		 uri_for("larder_w", "w-pass-123", NULL));
	PGconn *w = PQconnectdb(uri);
	ASSERT(PQstatus(w) == CONNECTION_OK);
	sql_ok(w, "INSERT INTO trk_rights VALUES (2, 'by w')");
	PQfinish(w);
	/* A reader with SELECT only: reads the version. */
	c = connect_as(uri);
	char tok[64];
	long long n;
	split_version(version_of(c, "trk_rights"), tok, &n);
	ASSERT_EQ(n, 1);
	/* But cannot track. */
	sql_ok(a, "CREATE TABLE IF NOT EXISTS trk_notmine (x int)");
	ASSERT_SRC(ldr_sql_pg.track(c, "trk_notmine"), LARDER_EPERM);
	ASSERT_CONTAINS(larder_errmsg(NULL),
			"permission denied for table trk_notmine");
	ldr_sql_pg.close(c);
	sql_ok(a, "DROP TABLE trk_rights, trk_notmine");
	sql_ok(a, "DROP ROLE larder_w");
	PQfinish(a);
}

TEST(disabled_trigger_is_not_tracked_until_track_again)
{
	PGconn *a = admin();
	ensure_changes_table(a);
	fresh_table(a, "trk_dis", 1);
	struct ldr_sql_conn *c = connect_as(pg_uri);
	ASSERT_SRC(ldr_sql_pg.track(c, "trk_dis"), 0);
	char tok0[64], tok[64];
	long long n;
	split_version(version_of(c, "trk_dis"), tok0, &n);
	/* Writes with the trigger off would not count: the version must not
	 * be served meanwhile. */
	sql_ok(a, "ALTER TABLE trk_dis DISABLE TRIGGER ALL");
	sql_ok(a, "INSERT INTO trk_dis VALUES (5, 'unseen')");
	char buf[256];
	ASSERT_SRC(ldr_sql_pg.begin(c), 0);
	ASSERT_SRC(ldr_sql_pg.table_version(c, "trk_dis", buf, sizeof buf),
		   LARDER_ENOTFOUND);
	ASSERT_SRC(ldr_sql_pg.end(c), 0);
	ASSERT_SRC(ldr_sql_pg.track(c, "trk_dis"), 0);
	split_version(version_of(c, "trk_dis"), tok, &n);
	ASSERT(strcmp(tok, tok0) != 0);
	ASSERT_STR_EQ(sql_val(a, "SELECT count(*) FROM pg_trigger WHERE "
				 "tgrelid = 'trk_dis'::regclass"),
		      "1");
	ldr_sql_pg.close(c);
	PQfinish(a);
}

TEST(renamed_table_counts_under_its_new_name_with_a_new_token)
{
	PGconn *a = admin();
	ensure_changes_table(a);
	fresh_table(a, "trk_old", 1);
	sql_ok(a, "DROP TABLE IF EXISTS trk_new");
	sql_ok(a, "DELETE FROM larder_changes WHERE tbl = 'public.trk_new'");
	struct ldr_sql_conn *c = connect_as(pg_uri);
	ASSERT_SRC(ldr_sql_pg.track(c, "trk_old"), 0);
	char tok0[64], tok[64];
	long long n;
	split_version(version_of(c, "trk_old"), tok0, &n);
	sql_ok(a, "ALTER TABLE trk_old RENAME TO trk_new");
	/* A new table under the old name is not tracked. */
	sql_ok(a, "CREATE TABLE trk_old (x int)");
	sql_ok(a, "GRANT SELECT ON trk_old TO larder");
	char buf[256];
	ASSERT_SRC(ldr_sql_pg.begin(c), 0);
	ASSERT_SRC(ldr_sql_pg.table_version(c, "trk_old", buf, sizeof buf),
		   LARDER_ENOTFOUND);
	ASSERT_SRC(ldr_sql_pg.end(c), 0);
	sql_ok(a, "INSERT INTO trk_new VALUES (9, 'x')");
	split_version(version_of(c, "trk_new"), tok, &n);
	ASSERT(strcmp(tok, tok0) != 0);
	ASSERT_EQ(n, 1);
	sql_ok(a, "DROP TABLE trk_old");
	ldr_sql_pg.close(c);
	PQfinish(a);
}

TEST(track_refuses_what_it_cannot_count)
{
	PGconn *a = admin();
	sql_ok(a, "DROP VIEW IF EXISTS trk_view");
	sql_ok(a, "CREATE VIEW trk_view AS SELECT 1 AS x");
	sql_ok(a, "ALTER VIEW trk_view OWNER TO larder");
	sql_ok(a, "DROP TABLE IF EXISTS trk_parted");
	sql_ok(a, "CREATE TABLE trk_parted (x int) PARTITION BY RANGE (x)");
	sql_ok(a, "ALTER TABLE trk_parted OWNER TO larder");
	struct ldr_sql_conn *c = connect_as(pg_uri);
	ASSERT_SRC(ldr_sql_pg.track(c, "no_such_table"), LARDER_EINVAL);
	ASSERT_CONTAINS(larder_errmsg(NULL), "no table \"no_such_table\"");
	ASSERT_SRC(ldr_sql_pg.track(c, "trk_view"), LARDER_EINVAL);
	ASSERT_CONTAINS(larder_errmsg(NULL), "not an ordinary table");
	ASSERT_SRC(ldr_sql_pg.track(c, "trk_parted"), LARDER_EINVAL);
	ASSERT_CONTAINS(larder_errmsg(NULL), "partitioned");
	ASSERT_SRC(ldr_sql_pg.track(c, "a.b.c.d"), LARDER_EINVAL);
	ASSERT_SRC(ldr_sql_pg.track(c, "larder_changes"), LARDER_EINVAL);
	ASSERT_CONTAINS(larder_errmsg(NULL), "larder's own");
	sql_ok(a, "DROP TABLE IF EXISTS trk_parent CASCADE");
	sql_ok(a, "CREATE TABLE trk_parent (x int)");
	sql_ok(a, "CREATE TABLE trk_child () INHERITS (trk_parent)");
	sql_ok(a, "ALTER TABLE trk_parent OWNER TO larder");
	ASSERT_SRC(ldr_sql_pg.track(c, "trk_parent"), LARDER_EINVAL);
	ASSERT_CONTAINS(larder_errmsg(NULL), "inherit");
	/* Nothing to remove is not an error. */
	ASSERT_SRC(ldr_sql_pg.untrack(c, "no_such_table"), 0);
	ASSERT_SRC(ldr_sql_pg.untrack(c, "trk_view"), 0);
	/* Nothing was left half done: no transaction open. */
	struct got g;
	ASSERT_SRC(run_query(c, &g, "SELECT 1", NULL, 0), 0);
	free(g.text);
	ldr_sql_pg.close(c);
	PQfinish(a);
}

TEST(concurrent_tracks_of_one_schema_do_not_collide)
{
	PGconn *a = admin();
	sql_ok(a, "DROP SCHEMA IF EXISTS trkc CASCADE");
	sql_ok(a, "CREATE SCHEMA trkc AUTHORIZATION larder");
	for (int i = 0; i < 4; i++) {
		sql_ok(a, "CREATE TABLE trkc.t%d (x int)", i);
		sql_ok(a, "ALTER TABLE trkc.t%d OWNER TO larder", i);
	}
	pid_t kids[4];
	for (int i = 0; i < 4; i++) {
		kids[i] = fork();
		ASSERT(kids[i] >= 0);
		if (kids[i] == 0) {
			struct ldr_sql_conn *c = connect_as(pg_uri);
			char t[32];
			snprintf(t, sizeof t, "trkc.t%d", i);
			int rc = ldr_sql_pg.track(c, t);
			if (rc)
				fprintf(stderr, "track %s: %s\n", t,
					larder_errmsg(NULL));
			ldr_sql_pg.close(c);
			_exit(rc ? 1 : 0);
		}
	}
	for (int i = 0; i < 4; i++) {
		int st;
		ASSERT(waitpid(kids[i], &st, 0) == kids[i]);
		ASSERT(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	}
	ASSERT_STR_EQ(sql_val(a, "SELECT count(*) FROM trkc.larder_changes"),
		      "4");
	sql_ok(a, "INSERT INTO trkc.t3 VALUES (1)");
	ASSERT_STR_EQ(sql_val(a, "SELECT n FROM trkc.larder_changes WHERE "
				 "tbl = 'trkc.t3'"),
		      "1");
	PQfinish(a);
}

TEST(definition_changes_change_the_version_maintenance_does_not)
{
	PGconn *a = admin();
	ensure_changes_table(a);
	fresh_table(a, "trk_ddl", 5);
	struct ldr_sql_conn *c = connect_as(pg_uri);
	ASSERT_SRC(ldr_sql_pg.track(c, "trk_ddl"), 0);
	char prev[256], tok0[64], tok[64];
	long long n;
	snprintf(prev, sizeof prev, "%s", version_of(c, "trk_ddl"));
	split_version(prev, tok0, &n);
	/* What changes a query's result with no row written. */
	static const char *const ddl[] = {
	    "ALTER TABLE trk_ddl ADD COLUMN w int DEFAULT 7",
	    "ALTER TABLE trk_ddl RENAME COLUMN w TO ww",
	    "ALTER TABLE trk_ddl ALTER COLUMN ww TYPE bigint",
	    "ALTER TABLE trk_ddl ALTER COLUMN id TYPE int USING id * 2",
	    "ALTER TABLE trk_ddl DROP COLUMN ww",
	    "ALTER TABLE trk_ddl ENABLE ROW LEVEL SECURITY",
	    "CREATE POLICY p ON trk_ddl USING (id > 2)",
	    "ALTER POLICY p ON trk_ddl USING (id > 4)",
	};
	for (size_t i = 0; i < sizeof ddl / sizeof ddl[0]; i++) {
		sql_ok(a, "%s", ddl[i]);
		const char *v = version_of(c, "trk_ddl");
		split_version(v, tok, &n);
		ASSERT_STR_EQ(tok, tok0);
		ASSERT_EQ(n, 0);
		if (strcmp(shape_of(v), shape_of(prev)) == 0)
			test_fail(__FILE__, __LINE__, "%s kept the version %s",
				  ddl[i], v);
		snprintf(prev, sizeof prev, "%s", v);
	}
	/* Maintenance that changes no result keeps the version (and so the
	 * cached entries). */
	static const char *const same[] = {
	    "ANALYZE trk_ddl",
	    "VACUUM trk_ddl",
	    "CREATE INDEX trk_ddl_v ON trk_ddl (v)",
	    "COMMENT ON TABLE trk_ddl IS 'x'",
	    "GRANT SELECT ON trk_ddl TO PUBLIC",
	};
	for (size_t i = 0; i < sizeof same / sizeof same[0]; i++) {
		sql_ok(a, "%s", same[i]);
		ASSERT_STR_EQ(version_of(c, "trk_ddl"), prev);
	}
	ldr_sql_pg.close(c);
	PQfinish(a);
}

TEST(no_alter_table_between_the_version_and_the_data)
{
	PGconn *a = admin();
	ensure_changes_table(a);
	fresh_table(a, "trk_lock", 5);
	struct ldr_sql_conn *c = connect_as(pg_uri);
	ASSERT_SRC(ldr_sql_pg.track(c, "trk_lock"), 0);
	ASSERT_SRC(ldr_sql_pg.begin(c), 0);
	char v[256];
	ASSERT_SRC(ldr_sql_pg.table_version(c, "trk_lock", v, sizeof v), 0);
	/* The snapshot holds the table: DDL waits for it to end. */
	sql_ok(a, "SET lock_timeout = '200ms'");
	PGresult *r = PQexec(a, "ALTER TABLE trk_lock ADD COLUMN z int");
	ASSERT_EQ(PQresultStatus(r), PGRES_FATAL_ERROR);
	ASSERT_STR_EQ(PQresultErrorField(r, PG_DIAG_SQLSTATE), "55P03");
	PQclear(r);
	/* Writes go on (they are counted, and the snapshot does not see
	 * them). */
	sql_ok(a, "INSERT INTO trk_lock VALUES (100, 'w')");
	struct got g = {.keep = 1};
	struct ldr_sql_sink s = sink_of(&g);
	ASSERT_SRC(
	    ldr_sql_pg.query(c, "SELECT count(*) FROM trk_lock", NULL, 0, &s),
	    0);
	ASSERT_STR_EQ(g.text, "I=5\n");
	free(g.text);
	ASSERT_SRC(ldr_sql_pg.end(c), 0);
	sql_ok(a, "ALTER TABLE trk_lock ADD COLUMN z int");
	ldr_sql_pg.close(c);
	PQfinish(a);
}

TEST(table_version_refuses_what_is_not_a_name)
{
	PGconn *a = admin();
	ensure_changes_table(a);
	fresh_table(a, "trk_name", 1);
	struct ldr_sql_conn *c = connect_as(pg_uri);
	ASSERT_SRC(ldr_sql_pg.track(c, "trk_name"), 0);
	static const char *const bad[] = {
	    "trk_name; DROP TABLE trk_name",
	    "trk_name IN EXCLUSIVE MODE",
	    "\"trk_name",
	    "a.b.c",
	    "",
	    "1abc",
	    "trk_name.",
	    ".trk_name",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		char v[256];
		ASSERT_SRC(ldr_sql_pg.begin(c), 0);
		ASSERT_SRC(ldr_sql_pg.table_version(c, bad[i], v, sizeof v),
			   LARDER_EINVAL);
		ASSERT_SRC(ldr_sql_pg.end(c), 0);
	}
	ASSERT_STR_EQ(sql_val(a, "SELECT count(*) FROM trk_name"), "1");
	/* The forms a name may take. */
	static const char *const good[] = {
	    "trk_name",
	    "TRK_NAME",
	    "public.trk_name",
	    "\"public\".\"trk_name\"",
	};
	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
		char tok[64];
		long long n;
		split_version(version_of(c, good[i]), tok, &n);
	}
	ldr_sql_pg.close(c);
	PQfinish(a);
}

/* ---------------------------------------------------------------------- */
/* End to end: larder_sql() against the server                             */

static larder *open_store_flags(unsigned flags)
{
	larder_opts o = LARDER_OPTS_INIT;
	o.flags = flags;
	return open_store_opts(&o);
}

static int count_cb(const larder_entry_info *info, void *payload)
{
	(void)info;
	(*(int *)payload)++;
	return 0;
}

static int count_entries(larder *db)
{
	int n = 0;
	ASSERT_RC(db, larder_walk(db, NULL, 0, count_cb, &n), 0);
	return n;
}

/* A call's result, copied (NUL-terminated; len is the truth). */
struct res {
	int rc, outcome;
	char *data, *ver;
	size_t len, vlen;
};

static struct res sql_call(larder *db, const char *uri, const char *query,
			   const larder_sql_opts *o)
{
	struct res r = {0};
	larder_entry *e = NULL;
	r.rc = larder_sql(&e, &r.outcome, db, "default", uri, query, o);
	if (r.rc == 0) {
		r.len = larder_entry_size(e);
		r.data = malloc(r.len + 1);
		ASSERT(r.data);
		memcpy(r.data, larder_entry_data(e), r.len);
		r.data[r.len] = '\0';
		const void *v = larder_entry_version(&r.vlen, e);
		r.ver = malloc(r.vlen + 1);
		ASSERT(r.ver);
		memcpy(r.ver, v, r.vlen);
		r.ver[r.vlen] = '\0';
	}
	larder_entry_release(e);
	return r;
}

static void res_free(struct res *r)
{
	free(r->data);
	free(r->ver);
	memset(r, 0, sizeof *r);
}

#define ASSERT_RES(db, r, want)                                                \
	do {                                                                   \
		if ((r).rc != 0)                                               \
			test_fail(__FILE__, __LINE__, "larder_sql: %s: %s",    \
				  larder_strerror((r).rc), larder_errmsg(db)); \
		ASSERT_EQ((r).outcome, (want));                                \
	} while (0)

/* Options with a TTL, for queries without a version. */
struct ttl_opts {
	larder_put_opts put;
	larder_fill_opts fill;
	larder_sql_opts sql;
};

static void ttl_opts_init(struct ttl_opts *t)
{
	larder_put_opts p = LARDER_PUT_OPTS_INIT;
	larder_fill_opts f = LARDER_FILL_OPTS_INIT;
	larder_sql_opts s = LARDER_SQL_OPTS_INIT;
	t->put = p;
	t->fill = f;
	t->sql = s;
	t->put.ttl_seconds = 3600;
	t->fill.put = &t->put;
	t->sql.fill = &t->fill;
}

/* The awkward values: NULL and '', quotes, separators, line breaks, tabs,
 * backslashes, Unicode, every kind of column. */
static void awkward_table(PGconn *a)
{
	sql_ok(a, "DROP TABLE IF EXISTS awk");
	sql_ok(a, "CREATE TABLE awk (id int PRIMARY KEY, s text, r float8, "
		  "m numeric, b bool, y bytea, j jsonb, t timestamptz)");
	sql_ok(a, "INSERT INTO awk VALUES "
		  "(1, 'plain', 0.1, 1.50, true, '\\x00ff10', '{\"k\": [1, "
		  "\"v\"]}', '2024-03-05 12:34:56.789+02'), "
		  "(2, NULL, NULL, NULL, NULL, NULL, NULL, NULL), "
		  "(3, '', 'NaN', 'NaN', false, '\\x', 'null', "
		  "'infinity'), "
		  "(4, E'a\"b,c\\r\\nd\\te\\\\f', '-Infinity', -0.000001, "
		  "NULL, NULL, '\"str\"', NULL), "
		  "(5, 'h\xc3\xa9 \xf0\x9f\x98\x80', 1e300, "
		  "123456789012345678901234567890, NULL, NULL, '[]', NULL), "
		  "(6, ' x ', '-0', 0, NULL, NULL, '1.5', NULL)");
	sql_ok(a, "GRANT SELECT ON awk TO larder");
}

static const char awk_csv[] =
    "id,s,r,m,b,y,j,t\r\n"
    "1,plain,0.1,1.50,t,\\x00ff10,\"{\"\"k\"\": [1, \"\"v\"\"]}\","
    "2024-03-05 10:34:56.789+00\r\n"
    "2,,,,,,,\r\n"
    "3,\"\",NaN,NaN,f,\\x,null,infinity\r\n"
    "4,\"a\"\"b,c\r\nd\te\\f\",-Infinity,-0.000001,,,\"\"\"str\"\"\",\r\n"
    "5,h\xc3\xa9 \xf0\x9f\x98\x80,1e+300,123456789012345678901234567890,,,"
    "[],\r\n"
    "6,\" x \",-0,0,,,1.5,\r\n";

static const char awk_tsv[] =
    "id\ts\tr\tm\tb\ty\tj\tt\n"
    "1\tplain\t0.1\t1.50\tt\t\\\\x00ff10\t{\"k\": [1, \"v\"]}\t"
    "2024-03-05 10:34:56.789+00\n"
    "2\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\n"
    "3\t\tNaN\tNaN\tf\t\\\\x\tnull\tinfinity\n"
    "4\ta\"b,c\\r\\nd\\te\\\\f\t-Infinity\t-0.000001\t\\N\t\\N\t\"str\"\t"
    "\\N\n"
    "5\th\xc3\xa9 \xf0\x9f\x98\x80\t1e+300\t123456789012345678901234567890"
    "\t\\N\t\\N\t[]\t\\N\n"
    "6\t x \t-0\t0\t\\N\t\\N\t1.5\t\\N\n";

static const char awk_jsonl[] =
    "{\"id\":1,\"s\":\"plain\",\"r\":0.1,\"m\":1.50,\"b\":true,"
    "\"y\":\"\\\\x00ff10\",\"j\":{\"k\": [1, \"v\"]},"
    "\"t\":\"2024-03-05 10:34:56.789+00\"}\n"
    "{\"id\":2,\"s\":null,\"r\":null,\"m\":null,\"b\":null,\"y\":null,"
    "\"j\":null,\"t\":null}\n"
    "{\"id\":3,\"s\":\"\",\"r\":\"NaN\",\"m\":\"NaN\",\"b\":false,"
    "\"y\":\"\\\\x\",\"j\":null,\"t\":\"infinity\"}\n"
    "{\"id\":4,\"s\":\"a\\\"b,c\\r\\nd\\te\\\\f\",\"r\":\"-Infinity\","
    "\"m\":-0.000001,\"b\":null,\"y\":null,\"j\":\"str\",\"t\":null}\n"
    "{\"id\":5,\"s\":\"h\xc3\xa9 \xf0\x9f\x98\x80\",\"r\":1e+300,"
    "\"m\":123456789012345678901234567890,\"b\":null,\"y\":null,"
    "\"j\":[],\"t\":null}\n"
    "{\"id\":6,\"s\":\" x \",\"r\":-0,\"m\":0,\"b\":null,\"y\":null,"
    "\"j\":1.5,\"t\":null}\n";

static void check_format(int format, const char *want, size_t wlen)
{
	PGconn *a = admin();
	awkward_table(a);
	PQfinish(a);
	larder *db = open_store();
	larder_sql_opts o = LARDER_SQL_OPTS_INIT;
	o.format = format;
	o.version_query = "SELECT count(*) FROM awk";
	for (int round = 0; round < 2; round++) {
		struct res r =
		    sql_call(db, pg_uri, "SELECT * FROM awk ORDER BY id", &o);
		ASSERT_RES(db, r, round ? LARDER_HIT : LARDER_FILLED);
		if (r.len != wlen || memcmp(r.data, want, wlen) != 0)
			test_fail(__FILE__, __LINE__,
				  "got %zu bytes:\n%s\nwant %zu:\n%s", r.len,
				  r.data, wlen, want);
		ASSERT_STR_EQ(r.ver, "1:6\n");
		res_free(&r);
	}
	larder_close(db);
}

TEST(e2e_csv_bytes)
{
	check_format(LARDER_SQL_CSV, awk_csv, sizeof awk_csv - 1);
}

TEST(e2e_tsv_bytes)
{
	check_format(LARDER_SQL_TSV, awk_tsv, sizeof awk_tsv - 1);
}

TEST(e2e_jsonl_bytes)
{
	check_format(LARDER_SQL_JSONL, awk_jsonl, sizeof awk_jsonl - 1);
}

TEST(e2e_same_entry_by_address_name_and_socket)
{
	larder *db = open_store();
	struct ttl_opts t;
	ttl_opts_init(&t);
	char uris[3][1024];
	snprintf(uris[0], sizeof uris[0], "%s", pg_uri);
	snprintf(uris[1], sizeof uris[1],
		 "postgresql://larder:%s@localhost:%s/larder", pg_password,
		 pg_port);
	snprintf(uris[2], sizeof uris[2],
		 "host=%s port=%s dbname=larder user=larder password=%s "
		 "application_name=other",
		 pg_sock, pg_port, pg_password);
	const char *q = "SELECT 'same' AS what, current_database() AS db";
	for (int i = 0; i < 3; i++) {
		struct res r = sql_call(db, uris[i], q, &t.sql);
		ASSERT_RES(db, r, i ? LARDER_HIT : LARDER_FILLED);
		ASSERT_STR_EQ(r.data, "what,db\r\nsame,larder\r\n");
		res_free(&r);
	}
	ASSERT_EQ(count_entries(db), 1);
	/* Another user of the same database is another key. */
	PGconn *a = admin();
	sql_ok(a, "DROP ROLE IF EXISTS larder_other");
	sql_ok(a, "CREATE ROLE larder_other LOGIN PASSWORD 'other-pw-1'");
	struct res r = sql_call(db, uri_for("larder_other", "other-pw-1", NULL),
				q, &t.sql);
	ASSERT_RES(db, r, LARDER_FILLED);
	res_free(&r);
	ASSERT_EQ(count_entries(db), 2);
	sql_ok(a, "DROP ROLE larder_other");
	PQfinish(a);
	larder_close(db);
}

/* Whether `needle` occurs in any file under `dir`. */
static int found_in_tree(const char *dir, const char *needle)
{
	return test_sh("grep -rqF -- '%s' '%s'", needle, dir) == 0;
}

TEST(e2e_password_never_reaches_the_store)
{
	PGconn *a = admin();
	ensure_changes_table(a);
	fresh_table(a, "e2e_pw", 3);
	PQfinish(a);
	larder *db = open_store();
	ASSERT_RC(db, larder_sql_track(db, pg_uri, "e2e_pw"), 0);
	larder_sql_opts o = LARDER_SQL_OPTS_INIT;
	o.table = "e2e_pw";
	struct res r =
	    sql_call(db, pg_uri, "SELECT * FROM e2e_pw ORDER BY id", &o);
	ASSERT_RES(db, r, LARDER_FILLED);
	res_free(&r);
	o.table = NULL;
	o.version_query = "SELECT count(*) FROM e2e_pw";
	for (int f = 0; f < 3; f++) {
		o.format = f;
		r = sql_call(db, pg_uri, "SELECT v FROM e2e_pw", &o);
		ASSERT_RES(db, r, LARDER_FILLED);
		res_free(&r);
	}
	/* and failures, whose messages must not carry it either */
	r = sql_call(db, pg_uri, "SELECT nope FROM e2e_pw", &o);
	ASSERT_EQ(r.rc, LARDER_EINVAL);
	ASSERT_LACKS(larder_errmsg(db), pg_password);
	ASSERT_EQ(count_entries(db), 4);
	ASSERT(!found_in_tree(test_path("store"), pg_password));
	/* (the check can see: the query text is in the store) */
	ASSERT(found_in_tree(test_path("store"), "from e2e_pw"));
	larder_close(db);
}

/* The data query reads the counter too, in the same snapshot: the
 * version the entry was published under must be the counter the rows
 * were read at, and every row was written by that many updates. */
static void check_consistent(const struct res *r, int rows)
{
	char tok[64];
	long long n;
	split_version(r->ver, tok, &n);
	const char *p = r->data;
	ASSERT(strncmp(p, "n,id,v\r\n", 8) == 0);
	p += 8;
	for (int i = 1; i <= rows; i++) {
		char line[96];
		int len =
		    snprintf(line, sizeof line, "%lld,%d,%lld\r\n", n, i, n);
		if (strncmp(p, line, (size_t)len) != 0)
			test_fail(__FILE__, __LINE__,
				  "version %s: row %d is \"%.40s\", want "
				  "\"%s\"",
				  r->ver, i, p, line);
		p += len;
	}
	ASSERT(*p == '\0');
}

TEST(e2e_version_and_data_match_under_a_writer)
{
	enum { ROWS = 20000 };
	PGconn *a = admin();
	ensure_changes_table(a);
	sql_ok(a, "DROP TABLE IF EXISTS e2e_w");
	sql_ok(a, "DELETE FROM larder_changes WHERE tbl = 'public.e2e_w'");
	sql_ok(a, "CREATE TABLE e2e_w (id int PRIMARY KEY, v bigint)");
	sql_ok(a, "ALTER TABLE e2e_w OWNER TO larder");
	sql_ok(a, "INSERT INTO e2e_w SELECT i, 0 FROM generate_series(1, %d) i",
	       ROWS);
	larder *db = open_store();
	ASSERT_RC(db, larder_sql_track(db, pg_uri, "e2e_w"), 0);
	pid_t w = writer("UPDATE e2e_w SET v = v + 1");
	larder_sql_opts o = LARDER_SQL_OPTS_INIT;
	o.table = "e2e_w";
	const char *q = "SELECT (SELECT n FROM larder_changes WHERE tbl = "
			"'public.e2e_w') AS n, id, v FROM e2e_w ORDER BY id";
	int filled = 0;
	char seen[64] = "";
	for (int i = 0; i < 12; i++) {
		/* Every other call waits for the writer to commit past what
		 * the previous call read, so that loads happen however fast a
		 * call is (a kept connection makes a hit quick). */
		char token[64];
		long long prev = -1;
		if (i % 2)
			split_version(seen, token, &prev);
		double t0 = now_s();
		while (
		    atoll(sql_val(a, "SELECT n FROM larder_changes WHERE tbl = "
				     "'public.e2e_w'")) <= prev)
			ASSERT(now_s() - t0 < 30);
		struct res r = sql_call(db, pg_uri, q, &o);
		if (r.rc)
			test_fail(__FILE__, __LINE__, "%s", larder_errmsg(db));
		check_consistent(&r, ROWS);
		filled += r.outcome == LARDER_FILLED;
		/* the writer moved on between loads */
		ASSERT(strcmp(r.ver, seen) != 0 || r.outcome == LARDER_HIT);
		snprintf(seen, sizeof seen, "%s", r.ver);
		res_free(&r);
	}
	stop_writer(w);
	printf("    12 calls under a writer: %d loads, every one consistent\n",
	       filled);
	ASSERT(filled >= 6);
	/* The writer stopped: the next call loads the last version once,
	 * then hits. */
	struct res r = sql_call(db, pg_uri, q, &o);
	ASSERT_EQ(r.rc, 0);
	check_consistent(&r, ROWS);
	res_free(&r);
	r = sql_call(db, pg_uri, q, &o);
	ASSERT_RES(db, r, LARDER_HIT);
	check_consistent(&r, ROWS);
	res_free(&r);
	larder_close(db);
	PQfinish(a);
}

TEST(e2e_version_query_and_data_match_under_a_writer)
{
	enum { ROWS = 20000 };
	PGconn *a = admin();
	sql_ok(a, "DROP TABLE IF EXISTS e2e_vq");
	sql_ok(a, "CREATE TABLE e2e_vq (id int PRIMARY KEY, v bigint)");
	sql_ok(a,
	       "INSERT INTO e2e_vq SELECT i, 0 FROM generate_series(1, %d) "
	       "i",
	       ROWS);
	sql_ok(a, "GRANT SELECT ON e2e_vq TO larder");
	pid_t w = writer("UPDATE e2e_vq SET v = v + 1");
	larder *db = open_store();
	larder_sql_opts o = LARDER_SQL_OPTS_INIT;
	o.version_query = "SELECT sum(v) FROM e2e_vq";
	for (int i = 0; i < 8; i++) {
		struct res r = sql_call(db, pg_uri,
					"SELECT v FROM e2e_vq ORDER BY id", &o);
		if (r.rc)
			test_fail(__FILE__, __LINE__, "%s", larder_errmsg(db));
		/* version "<len>:<sum>\n"; every row holds sum / ROWS */
		const char *colon = strchr(r.ver, ':');
		ASSERT(colon);
		long long sum = atoll(colon + 1), v = sum / ROWS;
		ASSERT_EQ(sum % ROWS, 0);
		const char *p = r.data + 3; /* "v\r\n" */
		char line[32];
		int len = snprintf(line, sizeof line, "%lld\r\n", v);
		for (int k = 0; k < ROWS; k++, p += len)
			if (strncmp(p, line, (size_t)len) != 0)
				test_fail(__FILE__, __LINE__,
					  "version %s, row %d: %.20s", r.ver,
					  k + 1, p);
		ASSERT(*p == '\0');
		res_free(&r);
	}
	stop_writer(w);
	larder_close(db);
	PQfinish(a);
}

/* Members of the PG herd told LARDER_WAIT_START (shared memory). */
static void herd_told(const larder_wait_info *info, void *payload)
{
	if (info->event == LARDER_WAIT_START)
		__atomic_add_fetch((int *)payload, 1, __ATOMIC_SEQ_CST);
}

/* The herd meets the load for certain: the query blocks on an advisory
 * lock the test holds until every other member is seen waiting (on_wait),
 * so one loads, N - 1 wait, and each gets the whole result. */
TEST(e2e_herd_loads_once)
{
	enum { N = 6, ROWS = 50, LOCK = 911011 };
	PGconn *a = admin();
	ensure_changes_table(a);
	fresh_table(a, "e2e_herd", ROWS);
	ASSERT_RC(NULL, larder_sql_track(NULL, pg_uri, "e2e_herd"), 0);
	sql_ok(a, "SELECT pg_advisory_lock(%d)", LOCK);
	char q[256];
	snprintf(q, sizeof q,
		 "WITH s AS MATERIALIZED (SELECT pg_advisory_lock_shared(%d)) "
		 "SELECT id, v FROM e2e_herd, s ORDER BY id",
		 LOCK);
	/* What every member must get, byte for byte. */
	char want[4096];
	size_t wlen = (size_t)snprintf(want, sizeof want, "id,v\r\n");
	for (int k = 1; k <= ROWS; k++)
		wlen += (size_t)snprintf(want + wlen, sizeof want - wlen,
					 "%d,v%d\r\n", k, k);
	ASSERT(wlen < sizeof want);
	int *waiting = mmap(NULL, sizeof *waiting, PROT_READ | PROT_WRITE,
			    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	ASSERT(waiting != MAP_FAILED);
	*waiting = 0;
	larder *db = open_store();
	larder_close(db);
	int gate[2], res[2];
	ASSERT_EQ(pipe(gate), 0);
	ASSERT_EQ(pipe(res), 0);
	pid_t kids[N];
	for (int i = 0; i < N; i++) {
		kids[i] = fork();
		ASSERT(kids[i] >= 0);
		if (kids[i] == 0) {
			close(gate[1]);
			char ch;
			if (read(gate[0], &ch, 1) != 0)
				_exit(90);
			larder *d = open_store();
			larder_fill_opts fo = LARDER_FILL_OPTS_INIT;
			/* The loader is held on purpose: a lease long
			 * enough that a loaded machine's late heartbeat
			 * never makes it look dead. */
			fo.lease_seconds = 60;
			fo.on_wait = herd_told;
			fo.on_wait_payload = waiting;
			larder_sql_opts o = LARDER_SQL_OPTS_INIT;
			o.table = "e2e_herd";
			o.fill = &fo;
			struct res r = sql_call(d, pg_uri, q, &o);
			if (r.rc) {
				fprintf(stderr, "%s\n", larder_errmsg(d));
				_exit(91);
			}
			if (r.len != wlen || memcmp(r.data, want, wlen) != 0)
				_exit(93);
			int msg = r.outcome;
			if (write(res[1], &msg, sizeof msg) != sizeof msg)
				_exit(92);
			_exit(0);
		}
	}
	close(gate[0]);
	close(res[1]);
	close(gate[1]); /* go */
	/* A condition polled, not a time guessed: the harness's timeout
	 * ends the test if the herd never gathers. */
	while (__atomic_load_n(waiting, __ATOMIC_SEQ_CST) < N - 1) {
		struct timespec ts = {0, 1000000};
		nanosleep(&ts, NULL);
	}
	sql_ok(a, "SELECT pg_advisory_unlock(%d)", LOCK);
	int filled = 0, waited = 0;
	for (int i = 0; i < N; i++) {
		int msg;
		ASSERT_EQ(read(res[0], &msg, sizeof msg), (ssize_t)sizeof msg);
		filled += msg == LARDER_FILLED;
		waited += msg == LARDER_WAITED;
	}
	for (int i = 0; i < N; i++) {
		int st;
		ASSERT_EQ(waitpid(kids[i], &st, 0), kids[i]);
		ASSERT(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	}
	PQfinish(a);
	ASSERT_EQ(filled, 1);
	ASSERT_EQ(waited, N - 1);
	ASSERT_EQ(*waiting, N - 1);
	db = open_store();
	ASSERT_EQ(count_entries(db), 1);
	larder_close(db);
}

TEST(e2e_errors_cache_nothing)
{
	PGconn *a = admin();
	ensure_changes_table(a);
	fresh_table(a, "e2e_err", 3);
	sql_ok(a, "DROP TABLE IF EXISTS e2e_secret");
	sql_ok(a, "CREATE TABLE e2e_secret (x int)");
	larder *db = open_store();
	larder_sql_opts o = LARDER_SQL_OPTS_INIT;
	o.version_query = "SELECT 1";
	char refused[256];
	snprintf(refused, sizeof refused,
		 "postgresql://larder:%s@127.0.0.1:%d/larder", pg_password,
		 closed_port());
	static const char *const bad_pw = "not-the-password";
	const struct {
		const char *uri, *query, *vquery, *table;
		int rc;
		const char *msg;
	} cases[] = {
	    {pg_uri, "SELEC 1", NULL, NULL, LARDER_EINVAL, "syntax error"},
	    {pg_uri, "SELECT * FROM e2e_nosuch", NULL, NULL, LARDER_EINVAL,
	     "does not exist"},
	    {pg_uri, "SELECT * FROM e2e_secret", NULL, NULL, LARDER_EPERM,
	     "permission denied"},
	    {pg_uri, "DELETE FROM e2e_err", NULL, NULL, LARDER_EINVAL,
	     "read-only transaction"},
	    {pg_uri, "SELECT 1", "SELECT nope", NULL, LARDER_EINVAL,
	     "column \"nope\" does not exist"},
	    {pg_uri, "SELECT 1", NULL, "e2e_err", LARDER_ENOTFOUND,
	     "not tracked"},
	    {pg_uri, "SELECT 1", NULL, "e2e_nosuch", LARDER_EINVAL,
	     "does not exist"},
	    /* a failure after rows have been written */
	    {pg_uri,
	     "SELECT i, 1 / (99000 - i) FROM (SELECT generate_series(1, "
	     "100000) AS i) s",
	     NULL, NULL, LARDER_EINVAL, "division by zero"},
	    {uri_for("larder", bad_pw, NULL), "SELECT 1", NULL, NULL,
	     LARDER_EPERM, "password authentication failed"},
	    {refused, "SELECT 1", NULL, NULL, LARDER_EIO, "refused"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		larder_sql_opts c = o;
		if (cases[i].vquery)
			c.version_query = cases[i].vquery;
		if (cases[i].table) {
			c.version_query = NULL;
			c.table = cases[i].table;
		}
		struct res r = sql_call(db, cases[i].uri, cases[i].query, &c);
		if (r.rc != cases[i].rc)
			test_fail(__FILE__, __LINE__, "case %zu: rc %d (%s)", i,
				  r.rc, larder_errmsg(db));
		ASSERT_CONTAINS(larder_errmsg(db), cases[i].msg);
		ASSERT_LACKS(larder_errmsg(db), pg_password);
		ASSERT_LACKS(larder_errmsg(db), bad_pw);
		ASSERT_EQ(count_entries(db), 0);
	}
	sql_ok(a, "DROP TABLE e2e_secret");
	PQfinish(a);
	larder_close(db);
}

TEST(e2e_backend_killed_mid_load_caches_nothing)
{
	char app[64], extra[128];
	snprintf(app, sizeof app, "larder_e2e_kill_%d", (int)getpid());
	snprintf(extra, sizeof extra, "application_name=%s", app);
	pid_t k = fork();
	ASSERT(k >= 0);
	if (k == 0) {
		PGconn *b = admin();
		kill_backend_when_active(b, app);
		_exit(0);
	}
	larder *db = open_store();
	struct ttl_opts t;
	ttl_opts_init(&t);
	struct res r = sql_call(db, uri_for("larder", pg_password, extra),
				"SELECT i, pg_sleep(CASE WHEN i % 1000 = 0 "
				"THEN 0.01 ELSE 0 END) FROM (SELECT "
				"generate_series(1, 100000000) AS i) s",
				&t.sql);
	ASSERT_EQ(r.rc, LARDER_EIO);
	int st;
	ASSERT(waitpid(k, &st, 0) == k && WIFEXITED(st) &&
	       WEXITSTATUS(st) == 0);
	ASSERT_EQ(count_entries(db), 0);
	/* no temp file left behind either */
	ASSERT_EQ(test_sh("test -z \"$(find '%s' -name '*.tmp*' -o -name "
			  "'*.lease' | head -1)\"",
			  test_path("store")),
		  0);
	larder_close(db);
}

TEST(e2e_tracked_table_follows_writes)
{
	PGconn *a = admin();
	ensure_changes_table(a);
	fresh_table(a, "e2e_trk", 2);
	larder *db = open_store();
	ASSERT_RC(db, larder_sql_track(db, pg_uri, "e2e_trk"), 0);
	larder_sql_opts o = LARDER_SQL_OPTS_INIT;
	o.table = "e2e_trk";
	const char *q = "SELECT id, v FROM e2e_trk ORDER BY id";
	struct res r = sql_call(db, pg_uri, q, &o);
	ASSERT_RES(db, r, LARDER_FILLED);
	ASSERT_STR_EQ(r.data, "id,v\r\n1,v1\r\n2,v2\r\n");
	res_free(&r);
	r = sql_call(db, pg_uri, q, &o);
	ASSERT_RES(db, r, LARDER_HIT);
	res_free(&r);
	static const char *const writes[] = {
	    "UPDATE e2e_trk SET v = 'new' WHERE id = 2",
	    "INSERT INTO e2e_trk VALUES (3, 'three')",
	    "DELETE FROM e2e_trk WHERE id = 1",
	    "TRUNCATE e2e_trk",
	    "ALTER TABLE e2e_trk ADD COLUMN w int DEFAULT 1",
	};
	static const char *const after[] = {
	    "id,v\r\n1,v1\r\n2,new\r\n",
	    "id,v\r\n1,v1\r\n2,new\r\n3,three\r\n",
	    "id,v\r\n2,new\r\n3,three\r\n",
	    "id,v\r\n",
	    "id,v\r\n",
	};
	for (size_t i = 0; i < sizeof writes / sizeof writes[0]; i++) {
		sql_ok(a, "%s", writes[i]);
		r = sql_call(db, pg_uri, q, &o);
		ASSERT_RES(db, r, LARDER_FILLED);
		ASSERT_STR_EQ(r.data, after[i]);
		res_free(&r);
		r = sql_call(db, pg_uri, q, &o);
		ASSERT_RES(db, r, LARDER_HIT);
		res_free(&r);
	}
	r = sql_call(db, pg_uri, "SELECT * FROM e2e_trk", &o);
	ASSERT_RES(db, r, LARDER_FILLED);
	ASSERT_STR_EQ(r.data, "id,v,w\r\n");
	res_free(&r);
	ASSERT_RC(db, larder_sql_untrack(db, pg_uri, "e2e_trk"), 0);
	r = sql_call(db, pg_uri, q, &o);
	ASSERT_EQ(r.rc, LARDER_ENOTFOUND);
	ASSERT_CONTAINS(larder_errmsg(db), "not tracked");
	/* track errors through the API */
	ASSERT_EQ(larder_sql_track(NULL, pg_uri, "e2e_nosuch"), LARDER_EINVAL);
	ASSERT_CONTAINS(larder_errmsg(NULL), "no table");
	ASSERT_EQ(larder_sql_track(NULL, uri_for("larder", "bad-pw-99", NULL),
				   "e2e_trk"),
		  LARDER_EPERM);
	ASSERT_LACKS(larder_errmsg(NULL), "bad-pw-99");
	larder_close(db);
	PQfinish(a);
}

TEST(e2e_postgresql_spellings_share_a_key)
{
	/* PostgreSQL's own lexical forms: dollar quotes, E'' strings with
	 * escaped quotes, quoted names, casts, $N parameters, comments.
	 * Case and spaces inside them are data; outside, they are not. */
	larder *db = open_store();
	struct ttl_opts t;
	ttl_opts_init(&t);
	const char *params[2] = {"Param  ONE", NULL};
	t.sql.params = params;
	t.sql.nparams = 2;
	const char *a = "SELECT $tag$ Keep  CASE -- not a comment $tag$ AS "
			"\"Dollar  Col\", E'It\\'s  X' AS e, 'a''B' AS q, "
			"$1::text AS p1, $2::int AS p2, 2::numeric(3,1) AS n";
	const char *b = "select   $tag$ Keep  CASE -- not a comment $tag$ as "
			"\"Dollar  Col\", e'It\\'s  X' AS E, -- comment\n"
			"'a''B' as Q, $1::TEXT as P1, /* c */ $2::INT AS "
			"p2, 2::NUMERIC(3,1) as N ;";
	const char *want = "Dollar  Col,e,q,p1,p2,n\r\n"
			   "\" Keep  CASE -- not a comment \",It's  X,a'B,"
			   "Param  ONE,,2.0\r\n";
	struct res r = sql_call(db, pg_uri, a, &t.sql);
	ASSERT_RES(db, r, LARDER_FILLED);
	ASSERT_STR_EQ(r.data, want);
	res_free(&r);
	r = sql_call(db, pg_uri, b, &t.sql);
	ASSERT_RES(db, r, LARDER_HIT);
	ASSERT_STR_EQ(r.data, want);
	res_free(&r);
	/* Inside a dollar quote, case is data: another key. */
	const char *c = "SELECT $tag$ keep  case -- not a comment $tag$ AS "
			"\"Dollar  Col\", E'It\\'s  X' AS e, 'a''B' AS q, "
			"$1::text AS p1, $2::int AS p2, 2::numeric(3,1) AS n";
	r = sql_call(db, pg_uri, c, &t.sql);
	ASSERT_RES(db, r, LARDER_FILLED);
	ASSERT_CONTAINS(r.data, "\" keep  case -- not a comment \",");
	res_free(&r);
	/* Another parameter value: another key. */
	params[1] = "7";
	r = sql_call(db, pg_uri, a, &t.sql);
	ASSERT_RES(db, r, LARDER_FILLED);
	ASSERT_CONTAINS(r.data, ",Param  ONE,7,2.0\r\n");
	res_free(&r);
	ASSERT_EQ(count_entries(db), 3);
	larder_close(db);
}

TEST(e2e_large_result_streams_in_bounded_memory)
{
	/* 256 MiB through larder_sql() in a child whose peak RSS must stay
	 * far below it. The store trusts local files here, so that the
	 * entry handed back is not read through for its checksum (which
	 * would page the mapped file in: not the load's memory). */
	enum { ROWS = 262144 };
	const char *q = "SELECT i, repeat('x', 1000) AS pad FROM (SELECT "
			"generate_series(1, 262144) AS i) s";
	int res[2];
	ASSERT_EQ(pipe(res), 0);
	pid_t kid = fork();
	ASSERT(kid >= 0);
	if (kid == 0) {
		larder *db = open_store_flags(LARDER_OPEN_TRUST_LOCAL);
		struct ttl_opts t;
		ttl_opts_init(&t);
		larder_entry *e;
		int outcome;
		double t0 = now_s();
		int rc =
		    larder_sql(&e, &outcome, db, "default", pg_uri, q, &t.sql);
		double took = now_s() - t0;
		if (rc) {
			fprintf(stderr, "%s\n", larder_errmsg(db));
			_exit(1);
		}
		struct rusage ru;
		getrusage(RUSAGE_SELF, &ru);
		double out[4] = {(double)larder_entry_size(e),
				 (double)ru.ru_maxrss * 1024, (double)outcome,
				 took};
		if (write(res[1], out, sizeof out) != sizeof out)
			_exit(2);
		larder_entry_release(e);
		larder_close(db);
		_exit(0);
	}
	close(res[1]);
	double out[4];
	ASSERT_EQ(read(res[0], out, sizeof out), (ssize_t)sizeof out);
	int st;
	ASSERT_EQ(waitpid(kid, &st, 0), kid);
	ASSERT(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	printf("    %.1f MB result in %.2f s (%.0f MB/s), peak RSS %.1f MB\n",
	       out[0] / 1e6, out[3], out[0] / out[3] / 1e6, out[1] / 1e6);
	ASSERT_EQ(out[2], LARDER_FILLED);
	ASSERT(out[0] > 262000000);
#ifdef TEST_ASAN
	ASSERT(out[1] < out[0] / 3); /* shadow memory, the quarantine */
#else
	ASSERT(out[1] < 32e6);
#endif
	/* the entry holds every row, in order */
	larder *db = open_store();
	struct ttl_opts t;
	ttl_opts_init(&t);
	struct res r = sql_call(db, pg_uri, q, &t.sql);
	ASSERT_RES(db, r, LARDER_HIT);
	const char *p = r.data, *end = r.data + r.len;
	ASSERT(strncmp(p, "i,pad\r\n", 7) == 0);
	p += 7;
	char pad[1001];
	memset(pad, 'x', 1000);
	pad[1000] = '\0';
	for (long i = 1; i <= ROWS; i++) {
		char head[32];
		int n = snprintf(head, sizeof head, "%ld,", i);
		if (end - p < n + 1002 || memcmp(p, head, (size_t)n) != 0 ||
		    memcmp(p + n, pad, 1000) != 0 ||
		    memcmp(p + n + 1000, "\r\n", 2) != 0)
			test_fail(__FILE__, __LINE__, "row %ld differs", i);
		p += n + 1002;
	}
	ASSERT(p == end);
	res_free(&r);
	larder_close(db);
}

/* A file's contents, NUL-terminated (static buffer, cut at 64 KiB). */
/* ---------------------------------------------------------------------- */
/* Connections kept by the store handle                                    */

/* A URI whose sessions the server lists under an application name of
 * this test's own (so that they can be counted and found), in *app. */
static const char *uri_named(char app[64], const char *what)
{
	char extra[128];
	snprintf(app, 64, "larder_%s_%d", what, (int)getpid());
	snprintf(extra, sizeof extra, "application_name=%s", app);
	return uri_for("larder", pg_password, extra);
}

/* The number of server processes serving sessions named `app`. */
static int sessions(PGconn *a, const char *app)
{
	return atoi(sql_val(a,
			    "SELECT count(*) FROM pg_stat_activity WHERE "
			    "application_name = '%s'",
			    app));
}

/* The pid of the one session named `app` (fails if not exactly one). */
static const char *session_pid(int line, PGconn *a, const char *app)
{
	if (sessions(a, app) != 1)
		test_fail(__FILE__, line, "%d sessions named %s, want 1",
			  sessions(a, app), app);
	return sql_val(a,
		       "SELECT pid FROM pg_stat_activity WHERE "
		       "application_name = '%s'",
		       app);
}

/* Waits (bounded) until at most `n` sessions are named `app`: a server
 * process ends a little after its client said goodbye. */
static void wait_sessions_at_most(int line, PGconn *a, const char *app, int n)
{
	double end = now_s() + 20;
	while (sessions(a, app) > n) {
		if (now_s() > end)
			test_fail(__FILE__, line,
				  "%d sessions named %s after 20 s, want <= %d",
				  sessions(a, app), app, n);
		struct timespec ts = {0, 10 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
}

/* A test of kept connections: a store, a URI named for the test, and a
 * first call that filled under the version query
 * "SELECT pg_backend_pid()", which makes each server process a version of
 * its own (a call that hits used the process of the call that filled);
 * pid is that process. */
struct kept {
	PGconn *a;
	char app[64], pid[32];
	const char *uri;
	larder *db;
	larder_sql_opts o;
	struct res first;
};

static void kept_start(struct kept *k, const char *what)
{
	k->a = admin();
	k->uri = uri_named(k->app, what);
	k->db = open_store();
	larder_sql_opts o = LARDER_SQL_OPTS_INIT;
	k->o = o;
	k->o.version_query = "SELECT pg_backend_pid()";
	k->first = sql_call(k->db, k->uri, "SELECT 1 AS one", &k->o);
	ASSERT_RES(k->db, k->first, LARDER_FILLED);
	snprintf(k->pid, sizeof k->pid, "%s",
		 session_pid(__LINE__, k->a, k->app));
	ASSERT_CONTAINS(k->first.ver, k->pid);
}

static void kept_end(struct kept *k)
{
	larder_close(k->db);
	res_free(&k->first);
	PQfinish(k->a);
}

TEST(e2e_calls_on_one_handle_reuse_one_connection)
{
	struct kept k;
	kept_start(&k, "reuse");
	PGconn *a = k.a;
	larder *db = k.db;
	for (int i = 0; i < 5; i++) {
		struct res r = sql_call(db, k.uri, "SELECT 1 AS one", &k.o);
		ASSERT_RES(db, r, LARDER_HIT);
		ASSERT_STR_EQ(r.ver, k.first.ver);
		res_free(&r);
		ASSERT_STR_EQ(session_pid(__LINE__, a, k.app), k.pid);
	}
	/* Tracking, on the same handle and string, uses it too. */
	ASSERT_RC(db, larder_sql_untrack(db, k.uri, "e2e_reuse_none"), 0);
	ASSERT_STR_EQ(session_pid(__LINE__, a, k.app), k.pid);
	/* Another connection string gets a connection of its own. */
	char app2[64];
	struct res r =
	    sql_call(db, uri_named(app2, "reuse2"), "SELECT 1", &k.o);
	ASSERT_RES(db, r, LARDER_FILLED);
	res_free(&r);
	ASSERT_EQ(sessions(a, app2), 1);
	ASSERT_STR_EQ(session_pid(__LINE__, a, k.app), k.pid);
	/* larder_close ends them. */
	larder_close(db);
	k.db = NULL;
	wait_sessions_at_most(__LINE__, a, k.app, 0);
	wait_sessions_at_most(__LINE__, a, app2, 0);
	kept_end(&k);
}

/* Killed while idle in the handle: the next call connects again, whether
 * its first command is the version query's description (version query)
 * or the snapshot's BEGIN (table). */
TEST(e2e_kept_connection_killed_between_calls_connects_again)
{
	PGconn *a = admin();
	ensure_changes_table(a);
	fresh_table(a, "e2e_kept_kill", 2);
	char app[64];
	const char *uri = uri_named(app, "kill");
	larder *db = open_store();
	ASSERT_RC(db, larder_sql_track(db, uri, "e2e_kept_kill"), 0);
	larder_sql_opts by_query = LARDER_SQL_OPTS_INIT, by_table = by_query;
	by_query.version_query = "SELECT pg_backend_pid()";
	by_table.table = "e2e_kept_kill";
	const larder_sql_opts *opts[] = {&by_query, &by_table};
	const char *q = "SELECT id, v FROM e2e_kept_kill ORDER BY id";
	for (int k = 0; k < 2; k++) {
		struct res r = sql_call(db, uri, q, opts[k]);
		ASSERT_RES(db, r, k == 0 ? LARDER_FILLED : LARDER_FILLED);
		res_free(&r);
		char pid[32];
		snprintf(pid, sizeof pid, "%s", session_pid(__LINE__, a, app));
		ASSERT_STR_EQ(
		    sql_val(a, "SELECT pg_terminate_backend(%s)", pid), "t");
		wait_sessions_at_most(__LINE__, a, app, 0);
		r = sql_call(db, uri, q, opts[k]);
		/* a new process: a new version for the first, the same
		 * counter for the second */
		ASSERT_RES(db, r, k == 0 ? LARDER_FILLED : LARDER_HIT);
		ASSERT_STR_EQ(r.data, "id,v\r\n1,v1\r\n2,v2\r\n");
		res_free(&r);
		ASSERT(strcmp(session_pid(__LINE__, a, app), pid) != 0);
	}
	larder_close(db);
	PQfinish(a);
}

/* What a query does to its session (here: search_path, for good, with
 * set_config(..., false)) does not reach the next call on the same
 * connection: it would read another table under a key that does not say
 * so. */
TEST(e2e_session_settings_do_not_leak_into_the_next_call)
{
	PGconn *a = admin();
	sql_ok(a, "DROP SCHEMA IF EXISTS e2e_leak CASCADE");
	sql_ok(a, "CREATE SCHEMA e2e_leak");
	sql_ok(a, "GRANT USAGE ON SCHEMA e2e_leak TO larder");
	sql_ok(a, "DROP TABLE IF EXISTS e2e_leak_t");
	sql_ok(a, "CREATE TABLE e2e_leak_t (v text)");
	sql_ok(a, "CREATE TABLE e2e_leak.e2e_leak_t (v text)");
	sql_ok(a, "INSERT INTO e2e_leak_t VALUES ('public')");
	sql_ok(a, "INSERT INTO e2e_leak.e2e_leak_t VALUES ('other')");
	sql_ok(a, "GRANT SELECT ON e2e_leak_t, e2e_leak.e2e_leak_t TO larder");
	char app[64];
	const char *uri = uri_named(app, "leak");
	larder *db = open_store();
	larder_sql_opts o = LARDER_SQL_OPTS_INIT;
	o.version_query = "SELECT set_config('search_path', 'e2e_leak', false)";
	struct res r = sql_call(db, uri, "SELECT v FROM e2e_leak_t", &o);
	ASSERT_RES(db, r, LARDER_FILLED);
	ASSERT_STR_EQ(r.data, "v\r\nother\r\n"); /* its own business */
	res_free(&r);
	const char *pid = session_pid(__LINE__, a, app);
	o.version_query = "SELECT current_setting('search_path'), "
			  "current_setting('client_encoding')";
	r = sql_call(db, uri, "SELECT v, 2 AS n FROM e2e_leak_t", &o);
	ASSERT_RES(db, r, LARDER_FILLED);
	ASSERT_STR_EQ(r.data, "v,n\r\npublic,2\r\n");
	ASSERT_CONTAINS(r.ver, "public");
	ASSERT_CONTAINS(r.ver, "UTF8"); /* the connection's own stays */
	res_free(&r);
	/* the same connection, or the test proves nothing */
	ASSERT_STR_EQ(session_pid(__LINE__, a, app), pid);
	larder_close(db);
	sql_ok(a, "DROP SCHEMA e2e_leak CASCADE");
	sql_ok(a, "DROP TABLE e2e_leak_t");
	PQfinish(a);
}

TEST(e2e_a_failed_call_does_not_keep_its_connection)
{
	struct kept k;
	kept_start(&k, "failed");
	struct res r = sql_call(k.db, k.uri, "SELECT 1 / 0", &k.o);
	ASSERT_EQ(r.rc, LARDER_EINVAL);
	ASSERT_CONTAINS(larder_errmsg(k.db), "division by zero");
	wait_sessions_at_most(__LINE__, k.a, k.app, 0);
	r = sql_call(k.db, k.uri, "SELECT 1 AS one", &k.o);
	ASSERT_RES(k.db, r, LARDER_FILLED); /* another process, version */
	res_free(&r);
	ASSERT(strcmp(session_pid(__LINE__, k.a, k.app), k.pid) != 0);
	kept_end(&k);
}

struct sql_thread {
	pthread_t t;
	larder *db;
	const char *uri;
	int id, failures;
	char why[512];
};

/* Calls that each load (a query of their own) and check their bytes. */
static void *sql_thread_main(void *arg)
{
	struct sql_thread *s = arg;
	larder_sql_opts o = LARDER_SQL_OPTS_INIT;
	o.version_query = "SELECT 1";
	for (int i = 0; i < 15 && !s->failures; i++) {
		char q[128], want[512];
		int n = 10 + 37 * s->id + i;
		snprintf(q, sizeof q,
			 "SELECT %d AS t, %d AS i, repeat('x', %d) AS s", s->id,
			 i, n);
		int w =
		    snprintf(want, sizeof want, "t,i,s\r\n%d,%d,", s->id, i);
		memset(want + w, 'x', (size_t)n);
		snprintf(want + w + n, sizeof want - (size_t)(w + n), "\r\n");
		larder_entry *e = NULL;
		int outcome = 0;
		int rc =
		    larder_sql(&e, &outcome, s->db, "default", s->uri, q, &o);
		if (rc || outcome != LARDER_FILLED ||
		    larder_entry_size(e) != strlen(want) ||
		    memcmp(larder_entry_data(e), want, strlen(want)) != 0) {
			s->failures++;
			snprintf(s->why, sizeof s->why,
				 "thread %d call %d: rc %d outcome %d: %s",
				 s->id, i, rc, outcome,
				 rc ? larder_errmsg(s->db) : "wrong bytes");
		}
		larder_entry_release(e);
	}
	return NULL;
}

TEST(e2e_threads_on_one_handle_each_get_their_own_bytes)
{
	PGconn *a = admin();
	char app[64];
	const char *uri = uri_named(app, "threads");
	larder *db = open_store();
	struct sql_thread th[8];
	for (int i = 0; i < 8; i++) {
		th[i] = (struct sql_thread){.db = db, .uri = uri, .id = i};
		ASSERT_EQ(
		    pthread_create(&th[i].t, NULL, sql_thread_main, &th[i]), 0);
	}
	for (int i = 0; i < 8; i++) {
		ASSERT_EQ(pthread_join(th[i].t, NULL), 0);
		if (th[i].failures)
			test_fail(__FILE__, __LINE__, "%s", th[i].why);
	}
	/* a few kept, the rest closed */
	wait_sessions_at_most(__LINE__, a, app, 4);
	ASSERT(sessions(a, app) >= 1);
	larder_close(db);
	wait_sessions_at_most(__LINE__, a, app, 0);
	PQfinish(a);
}

/* A child must not use, nor end, its parent's connection: it connects
 * for itself, and the parent's next call still hits with the same server
 * process (a Terminate sent by the child down the shared socket would
 * have ended it). */
TEST(e2e_forked_child_connects_for_itself_and_leaves_the_parents)
{
	struct kept k;
	kept_start(&k, "fork");
	pid_t kid = fork();
	ASSERT(kid >= 0);
	if (kid == 0) {
		struct res r = sql_call(k.db, k.uri, "SELECT 1 AS one", &k.o);
		int bad = r.rc != 0			    ? 1
			  : r.outcome != LARDER_FILLED	    ? 2
			  : strcmp(r.ver, k.first.ver) == 0 ? 3
							    : 0;
		res_free(&r);
		r = sql_call(k.db, k.uri, "SELECT 1 AS one", &k.o);
		if (!bad && (r.rc != 0 || r.outcome != LARDER_HIT))
			bad = 4; /* the child keeps its own */
		res_free(&r);
		larder_close(k.db);
		_exit(bad);
	}
	int st;
	ASSERT(waitpid(kid, &st, 0) == kid);
	ASSERT(WIFEXITED(st));
	ASSERT_EQ(WEXITSTATUS(st), 0);
	struct res r = sql_call(k.db, k.uri, "SELECT 1 AS one", &k.o);
	ASSERT_RES(k.db, r, LARDER_HIT);
	ASSERT_STR_EQ(r.ver, k.first.ver);
	res_free(&r);
	wait_sessions_at_most(__LINE__, k.a, k.app, 1); /* the child's went */
	ASSERT_STR_EQ(session_pid(__LINE__, k.a, k.app), k.pid);
	kept_end(&k);
}

static const char *slurp(const char *path)
{
	static char buf[65536];
	FILE *f = fopen(path, "rb");
	if (!f)
		test_fail(__FILE__, __LINE__, "cannot open %s", path);
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

TEST(cli_sql_against_postgresql)
{
	const char *cli = getenv("LARDER_CLI");
	if (!cli || !*cli)
		test_fail(__FILE__, __LINE__, "LARDER_CLI is not set");
	PGconn *a = admin();
	ensure_changes_table(a);
	fresh_table(a, "cli_t", 2);
	const char *store = test_path("cli-store");
	const char *out = test_path("out"), *err = test_path("err");
	ASSERT_EQ(test_sh("'%s' -d '%s' init >/dev/null", cli, store), 0);
	ASSERT_EQ(test_sh("'%s' sql track --db '%s' cli_t", cli, pg_uri), 0);
	for (int i = 0; i < 2; i++) {
		ASSERT_EQ(test_sh("'%s' -d '%s' -v sql --db '%s' --table cli_t "
				  "'SELECT id, v FROM cli_t ORDER BY id' "
				  ">'%s' 2>'%s'",
				  cli, store, pg_uri, out, err),
			  0);
		ASSERT_STR_EQ(slurp(out), "id,v\r\n1,v1\r\n2,v2\r\n");
		ASSERT_CONTAINS(slurp(err), i ? "hit in" : "filled in");
	}
	sql_ok(a, "UPDATE cli_t SET v = 'x' WHERE id = 1");
	ASSERT_EQ(
	    test_sh("'%s' -d '%s' -v sql --db '%s' --table cli_t "
		    "--format jsonl 'SELECT id, v FROM cli_t ORDER BY id' "
		    ">'%s' 2>'%s'",
		    cli, store, pg_uri, out, err),
	    0);
	ASSERT_STR_EQ(slurp(out), "{\"id\":1,\"v\":\"x\"}\n"
				  "{\"id\":2,\"v\":\"v2\"}\n");
	ASSERT_CONTAINS(slurp(err), "filled in");
	/* A wrong password: exit 4, libpq's reason on one line, no
	 * password. */
	const char *bad = uri_for("larder", "cli-bad-pw-7", NULL);
	ASSERT_EQ(test_sh("'%s' -d '%s' sql --db '%s' --table cli_t 'SELECT 1' "
			  ">'%s' 2>'%s'",
			  cli, store, bad, out, err),
		  4);
	const char *e = slurp(err);
	ASSERT_CONTAINS(e, "password authentication failed");
	ASSERT_LACKS(e, "cli-bad-pw-7");
	ASSERT_EQ(test_count_lines(err), 1);
	ASSERT_EQ(test_sh("'%s' sql untrack --db '%s' cli_t", cli, pg_uri), 0);
	ASSERT_EQ(test_sh("'%s' -d '%s' sql --db '%s' --table cli_t 'SELECT 1' "
			  ">'%s' 2>'%s'",
			  cli, store, pg_uri, out, err),
		  4);
	ASSERT_CONTAINS(slurp(err), "not tracked");
	ASSERT(!found_in_tree(store, pg_password));
	PQfinish(a);
}

/* ---------------------------------------------------------------------- */
/* The progress line of `larder sql` on a terminal (docs/cli.md#progress)  */

/* A whole file, NUL-terminated, in a malloc'd buffer ("" if missing). */
static char *read_all(const char *path, size_t *len)
{
	size_t cap = 4096, n = 0;
	char *b = malloc(cap);
	ASSERT(b);
	int fd = open(path, O_RDONLY);
	if (fd >= 0) {
		for (;;) {
			if (cap - n < 4096) {
				cap *= 2;
				b = realloc(b, cap);
				ASSERT(b);
			}
			ssize_t k = read(fd, b + n, cap - n - 1);
			if (k < 0 && errno == EINTR)
				continue;
			if (k < 0)
				test_fail(__FILE__, __LINE__, "read %s: %s",
					  path, strerror(errno));
			if (k == 0)
				break;
			n += (size_t)k;
		}
		close(fd);
	} else if (errno != ENOENT) {
		test_fail(__FILE__, __LINE__, "open %s: %s", path,
			  strerror(errno));
	}
	b[n] = '\0';
	*len = n;
	return b;
}

/* The largest rows count drawn so far on the terminal's progress lines
 * ("\rlarder: querying: N rows, <bytes>, <rate>/s, <time> s"), -1 if no
 * line of that form is there yet (the lines before the first rows have
 * no count; the last may be half written). */
static long long rows_drawn(const char *tty)
{
	static const char head[] = "\rlarder: querying: ";
	size_t len;
	char *t = read_all(tty, &len);
	long long most = -1;
	for (char *p = t; (p = memmem(p, len - (size_t)(p - t), head,
				      sizeof head - 1)) != NULL;) {
		p += sizeof head - 1;
		unsigned long long rows;
		double bytes, rate, secs;
		char u1[4], u2[4], s[2];
		if (sscanf(
			p,
			"%llu rows, %lf %3[KMGiB], %lf %3[KMGiB]/s, %lf %1[s]",
			&rows, &bytes, u1, &rate, u2, &secs, s) == 7 &&
		    (long long)rows > most)
			most = (long long)rows;
	}
	free(t);
	return most;
}

/* How many sessions wait for the advisory lock (k1, k2). */
static int lock_waiters(PGconn *a, int k1, int k2)
{
	return atoi(sql_val(a,
			    "SELECT count(*) FROM pg_locks WHERE locktype = "
			    "'advisory' AND classid = %d AND objid = %d AND "
			    "objsubid = 2 AND NOT granted",
			    k1, k2));
}

/* Sets `ok` to whether `cond` came to hold within `secs`, polling it every
 * 10 ms: the wait is for the event, the bound only for a test gone
 * wrong. */
#define AWAIT(ok, cond, secs)                                                  \
	do {                                                                   \
		double until_ = now_s() + (secs);                              \
		while (!((ok) = (cond)) && now_s() < until_) {                 \
			struct timespec ts_ = {0, 10000000};                   \
			nanosleep(&ts_, NULL);                                 \
		}                                                              \
	} while (0)

/* `larder sql` on a terminal shows its rows arriving: the query sends
 * rows, then blocks on an advisory lock the test holds, then sends more
 * and blocks on a second one. PostgreSQL streams the rows before each
 * block to the client (single-row mode, source_pg.c), so the line must
 * show a rows count above 0 while the query is held at the first lock,
 * and a larger one while it is held at the second; then the query ends
 * and the line is wiped. Each phase is 3000 rows of about 107 bytes, far
 * more than what can sit unreported between server and line (the
 * server's 8 KiB send buffer and the 64 KiB chunk that reports rows,
 * LDR_SQL_CHUNK), so both counts are certain whatever the speed; the
 * waits poll for the line itself, bounded, and a dead test's session
 * takes its locks with it, so larder never stays blocked. */
TEST(cli_sql_progress_counts_rows_while_the_query_runs)
{
	const char *cli = getenv("LARDER_CLI");
	if (!cli || !*cli)
		test_fail(__FILE__, __LINE__, "LARDER_CLI is not set");
	if (test_sh("command -v script >/dev/null 2>&1") != 0)
		test_skip("no script(1) to give larder a terminal");
	enum { PHASE = 3000, WAIT_S = 30 };
	const int k = (int)getpid();
	PGconn *a = admin();
	sql_ok(a, "SELECT pg_advisory_lock(%d, 1), pg_advisory_lock(%d, 2)", k,
	       k);
	const char *store = test_path("store"), *out = test_path("out"),
		   *tty = test_path("tty");
	ASSERT_EQ(test_sh("'%s' -d '%s' init >/dev/null", cli, store), 0);
	/* A FunctionScan materialises generate_series, then the filter runs
	 * row by row, in order: rows 1..PHASE go out before row PHASE + 1
	 * waits for lock 1. No quotes in the query: it goes through two
	 * shells. */
	char cmd[2048];
	int n = snprintf(
	    cmd, sizeof cmd,
	    "'%s' -d '%s' sql --db '%s' --ttl 1h \"SELECT g, repeat(chr(120), "
	    "100) AS pad FROM generate_series(1, %d) g WHERE CASE g WHEN %d "
	    "THEN pg_advisory_xact_lock(%d, 1) IS NOT NULL WHEN %d THEN "
	    "pg_advisory_xact_lock(%d, 2) IS NOT NULL ELSE true END\" >'%s'",
	    cli, store, pg_uri, 3 * PHASE, PHASE + 1, k, 2 * PHASE + 1, k, out);
	ASSERT(n > 0 && (size_t)n < sizeof cmd);
	pid_t kid = fork();
	ASSERT(kid >= 0);
	if (kid == 0) {
		/* script(1) gives larder a terminal; what was drawn there
		 * comes out on script's stdout. (libpq's sockets are
		 * close-on-exec: the admin session is not inherited.) */
		int fd = open(tty, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		int in = open("/dev/null", O_RDONLY);
		if (fd < 0 || in < 0 || dup2(in, 0) < 0 || dup2(fd, 1) < 0 ||
		    dup2(fd, 2) < 0)
			_exit(126);
		execlp("script", "script", "-qec", cmd, "/dev/null",
		       (char *)NULL);
		_exit(127);
	}

	int ok;
	AWAIT(ok, lock_waiters(a, k, 1) == 1, WAIT_S);
	if (!ok)
		test_fail(__FILE__, __LINE__,
			  "the query never came to lock 1 in %d s", WAIT_S);
	AWAIT(ok, rows_drawn(tty) > 0, WAIT_S);
	if (!ok)
		test_fail(__FILE__, __LINE__,
			  "no rows count above 0 on the line in %d s while "
			  "the query was held: %lld",
			  WAIT_S, rows_drawn(tty));
	long long first = rows_drawn(tty);
	ASSERT(first < PHASE);
	ASSERT_EQ(lock_waiters(a, k, 1), 1); /* still held there */

	sql_ok(a, "SELECT pg_advisory_unlock(%d, 1)", k);
	AWAIT(ok, lock_waiters(a, k, 2) == 1, WAIT_S);
	if (!ok)
		test_fail(__FILE__, __LINE__,
			  "the query never came to lock 2 in %d s", WAIT_S);
	AWAIT(ok, rows_drawn(tty) > first, WAIT_S);
	if (!ok)
		test_fail(__FILE__, __LINE__,
			  "the rows count did not grow past %lld in %d s "
			  "while the query was held: %lld",
			  first, WAIT_S, rows_drawn(tty));
	long long second = rows_drawn(tty);
	ASSERT(second <= 2 * PHASE);
	ASSERT_EQ(lock_waiters(a, k, 2), 1); /* the query still runs */

	sql_ok(a, "SELECT pg_advisory_unlock(%d, 2)", k);
	int st = 0;
	pid_t w = 0;
	AWAIT(ok, (w = waitpid(kid, &st, WNOHANG)) != 0, WAIT_S);
	if (!ok) {
		kill(kid, SIGKILL);
		waitpid(kid, &st, 0);
		test_fail(__FILE__, __LINE__,
			  "larder sql did not end in %d s after the last lock "
			  "went",
			  WAIT_S);
	}
	ASSERT_EQ(w, kid);
	ASSERT(WIFEXITED(st));
	ASSERT_EQ(WEXITSTATUS(st), 0);
	ASSERT_EQ(test_count_lines(out), 1 + 3 * PHASE);

	/* The line is wiped at the end: the terminal's last bytes are a
	 * carriage return, blanks over the whole of the last line drawn,
	 * and a carriage return back to its start. */
	size_t len;
	char *t = read_all(tty, &len);
	size_t i = len ? len - 1 : 0, blanks = 0;
	while (i > 0 && t[i - 1] == ' ')
		i--, blanks++;
	const char *last = NULL;
	for (const char *p = t;
	     (p = memmem(p, len - (size_t)(p - t), "\rlarder: ", 9)) != NULL;
	     p++)
		last = p;
	size_t drawn = last ? strcspn(last + 1, "\r") : 0;
	if (!(len > 2 && t[len - 1] == '\r' && i > 0 && t[i - 1] == '\r' &&
	      last && last < t + i - 1 && blanks >= drawn && drawn > 0))
		test_fail(__FILE__, __LINE__,
			  "the line is not wiped at the end (%zu blanks over "
			  "%zu drawn): ...%.80s",
			  blanks, drawn, t + (len > 80 ? len - 80 : 0));
	free(t);
	PQfinish(a);
}
