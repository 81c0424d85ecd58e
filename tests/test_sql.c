/*
 * test_sql.c — SQL sources against real SQLite databases in temp files:
 * the normalizer, the formats byte for byte, keys, the three version
 * modes, tracked tables under INSERT/UPDATE/DELETE, errors that cache
 * nothing, a writer changing the table during loads (WAL and rollback
 * journal), a herd that loads once, and a large result streamed in
 * bounded memory.
 */
#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "larder.h"
#include "store_util.h"
#include "testing.h"

/* ---------------------------------------------------------------------- */
/* Helpers                                                                 */

static larder *open_store_flags(unsigned flags)
{
	larder_opts o = LARDER_OPTS_INIT;
	o.flags = flags;
	return open_store_opts(&o);
}

/* Run SQL on a database file (created if missing), failing the test on
 * any error. */
static void db_exec(const char *path, const char *sql)
{
	sqlite3 *h;
	char *err = NULL;
	if (sqlite3_open(path, &h) != SQLITE_OK)
		test_fail(__FILE__, __LINE__, "sqlite3_open %s", path);
	sqlite3_busy_timeout(h, 60000);
	if (sqlite3_exec(h, sql, NULL, NULL, &err) != SQLITE_OK)
		test_fail(__FILE__, __LINE__, "%s: %s", sql, err);
	sqlite3_close(h);
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

/* The result as a NUL-terminated copy (the payload may hold NULs: *len
 * is the truth). */
struct res {
	int rc;
	int outcome;
	char *data;
	size_t len;
	char *ver;
	size_t vlen;
	int64_t expires;
};

static struct res sql(larder *db, const char *uri, const char *query,
		      const larder_sql_opts *o)
{
	struct res r = {0};
	larder_entry *e = NULL;
	r.rc = larder_sql(&e, &r.outcome, db, "default", uri, query, o);
	if (r.rc == 0) {
		r.len = larder_entry_size(e);
		r.data = malloc(r.len + 1);
		memcpy(r.data, larder_entry_data(e), r.len);
		r.data[r.len] = '\0';
		const void *v = larder_entry_version(&r.vlen, e);
		r.ver = malloc(r.vlen + 1);
		memcpy(r.ver, v, r.vlen);
		r.ver[r.vlen] = '\0';
		r.expires = larder_entry_expires(e);
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

/* Options with a TTL (for queries without a version). */
struct ttl_opts {
	larder_put_opts put;
	larder_fill_opts fill;
	larder_sql_opts sql;
};

static void ttl_opts_init(struct ttl_opts *t, int64_t ttl)
{
	larder_put_opts p = LARDER_PUT_OPTS_INIT;
	larder_fill_opts f = LARDER_FILL_OPTS_INIT;
	larder_sql_opts s = LARDER_SQL_OPTS_INIT;
	t->put = p;
	t->fill = f;
	t->sql = s;
	t->put.ttl_seconds = ttl;
	t->fill.put = &t->put;
	t->sql.fill = &t->fill;
}

#define ASSERT_OK(db, r)                                                       \
	do {                                                                   \
		if ((r).rc != 0)                                               \
			test_fail(__FILE__, __LINE__, "larder_sql: %d %s: %s", \
				  (r).rc, larder_strerror((r).rc),             \
				  larder_errmsg(db));                          \
	} while (0)

#define ASSERT_HAS(hay, needle)                                                \
	do {                                                                   \
		const char *h_ = (hay), *n_ = (needle);                        \
		if (!strstr(h_, n_))                                           \
			test_fail(__FILE__, __LINE__,                          \
				  "\"%s\" does not contain \"%s\"", h_, n_);   \
	} while (0)

/* ---------------------------------------------------------------------- */
/* The normalizer                                                          */

struct norm_case {
	int dialect;
	const char *in, *want;
};

#define S LDR_SQL_SQLITE
#define P LDR_SQL_PG

static const struct norm_case norm_cases[] = {
    /* whitespace, case, trailing ';' */
    {S, "SELECT  *\n\tFROM   T  ;", "select * from t"},
    {P, "\n  Select A,B\r\nFrom\fT\v", "select a,b from t"},
    {S, "SELECT 1;;", "select 1"},
    {S, "SELECT 1 ; ; -- end\n", "select 1"},
    {S, "SELECT ';'", "select ';'"},
    {S, "SELECT 1; SELECT 2", "select 1; select 2"},
    {S, "", ""},
    {S, "  -- only a comment\n /* and this */ ", ""},
    /* literals and quoted names stay byte for byte */
    {S, "select 'A  B' FROM t", "select 'A  B' from t"},
    {S, "SELECT 'it''s  X', 'Y'", "select 'it''s  X', 'Y'"},
    {S, "SELECT \"Col  A\" FROM \"My \"\"T\"\"\"",
     "select \"Col  A\" from \"My \"\"T\"\"\""},
    {S, "SELECT `Col  X`, [My  Col] FROM T",
     "select `Col  X`, [My  Col] from t"},
    {S, "SELECT X'AB', 'Ä', Ä FROM T", "select x'AB', 'Ä', Ä from t"},
    {S, "SELECT '-- not a comment', '/* nor this */'",
     "select '-- not a comment', '/* nor this */'"},
    {P, "SELECT \"A\"\"B\" FROM T", "select \"A\"\"B\" from t"},
    /* PostgreSQL: [ and ` are not quotes */
    {P, "SELECT A[1], `B  C`", "select a[1], `b c`"},
    /* comments count as a space */
    {S, "SELECT 1 -- Comment\n + 2 /* C */ FROM t", "select 1 + 2 from t"},
    {S, "SELECT a/**/FROM t", "select a from t"},
    {P, "SELECT 1 +/* x */-2", "select 1 + -2"},
    {S, "/* hdr */ SELECT 1", "select 1"},
    /* nesting: PostgreSQL nests block comments, SQLite does not */
    {P, "SELECT /* a /* b */ c */ 1", "select 1"},
    {S, "SELECT /* a /* b */ 1", "select 1"},
    {S, "/* a /* b */ c */ 1", "c */ 1"},
    /* parameters are kept as written */
    {S, "SELECT :Name, @Val, $Var, ?1, ? FROM T WHERE a = :Name",
     "select :Name, @Val, $Var, ?1, ? from t where a = :Name"},
    {S, "SELECT $A::B(C D) FROM T", "select $A::B(C d) from t"},
    {S, "SELECT $A::B(Cd) FROM T", "select $A::B(Cd) from t"},
    {P, "SELECT $1, $2::INT FROM T WHERE X = $10",
     "select $1, $2::int from t where x = $10"},
    /* PostgreSQL strings */
    {P, "SELECT E'It\\'s  A', 'B'", "select e'It\\'s  A', 'B'"},
    {P, "SELECT e'\\\\', 'X'", "select e'\\\\', 'X'"},
    {P, "SELECT U&'D\\0061T', B'1010', X'1F'",
     "select u&'D\\0061T', b'1010', x'1F'"},
    {P, "SELECT $Fn$ Body  'X $Fn$, $$ Y  $$, $1",
     "select $Fn$ Body  'X $Fn$, $$ Y  $$, $1"},
    {P, "SELECT $a$ $b$ Q $b$ $a$", "select $a$ $b$ Q $b$ $a$"},
    {P, "SELECT A$B$ FROM T", "select a$b$ from t"},
    {P, "SELECT X::INTEGER", "select x::integer"},
    /* a newline between two literals joins them in PostgreSQL */
    {P, "SELECT 'a'\n  'b'", "select 'a'\n'b'"},
    {P, "SELECT 'a' -- c\n 'b'", "select 'a'\n'b'"},
    {P, "SELECT 'a'   'b'", "select 'a' 'b'"},
    {P, "SELECT 'a' /* c */\n'b'", "select 'a' 'b'"},
    {P, "SELECT a\n'b'", "select a 'b'"},
    /* unterminated: the rest as it is */
    {S, "SELECT 'abc  DEF", "select 'abc  DEF"},
    {S, "SELECT 1 /* x  Y", "select 1 /* x  Y"},
    {S, "SELECT \"A  B", "select \"A  B"},
    {S, "SELECT [A  B", "select [A  B"},
    {P, "SELECT $a$ foo  BAR", "select $a$ foo  BAR"},
    {P, "SELECT E'x\\'  Y", "select E'x\\'  Y"},
    {P, "SELECT /* a /* b */ c", "select /* a /* b */ c"},
    {S, "SELECT 'x;'", "select 'x;'"},
    {S, "SELECT 'abc;", "select 'abc;"},
    /* SQLite has no E'' strings: E is a word */
    {S, "SELECT E'X  Y'", "select e'X  Y'"},
};

TEST(normalize_examples)
{
	for (size_t i = 0; i < sizeof norm_cases / sizeof norm_cases[0]; i++) {
		const struct norm_case *c = &norm_cases[i];
		char *got = ldr_sql_normalize(c->in, c->dialect);
		ASSERT(got);
		if (strcmp(got, c->want) != 0)
			test_fail(__FILE__, __LINE__,
				  "case %zu (%s): \"%s\" gave \"%s\", want "
				  "\"%s\"",
				  i, c->dialect ? "pg" : "sqlite", c->in, got,
				  c->want);
		free(got);
	}
}

/* Random SQL-ish text: the result is never longer, and normalizing it
 * again changes nothing. */
TEST(normalize_never_longer_and_idempotent)
{
	static const char alphabet[] = "aAzZ09_ $'\"`[]-/*;:@?#\\\n\t eE&";
	unsigned seed = 12345;
	char in[64];
	for (int round = 0; round < 200000; round++) {
		size_t n = (size_t)rand_r(&seed) % (sizeof in);
		for (size_t i = 0; i < n; i++)
			in[i] = alphabet[(size_t)rand_r(&seed) %
					 (sizeof alphabet - 1)];
		in[n] = '\0';
		int d = round & 1;
		char *a = ldr_sql_normalize(in, d);
		ASSERT(a);
		if (strlen(a) > n)
			test_fail(__FILE__, __LINE__, "\"%s\" grew to \"%s\"",
				  in, a);
		char *b = ldr_sql_normalize(a, d);
		if (strcmp(a, b) != 0)
			test_fail(__FILE__, __LINE__,
				  "not idempotent (%s): \"%s\" → \"%s\" → "
				  "\"%s\"",
				  d ? "pg" : "sqlite", in, a, b);
		free(a);
		free(b);
	}
}

TEST(source_by_uri)
{
	int d;
	ASSERT(ldr_sql_source("postgresql://u@h/db", &d) == &ldr_sql_pg);
	ASSERT_EQ(d, LDR_SQL_PG);
	ASSERT(ldr_sql_source("postgres://h/db", &d) == &ldr_sql_pg);
	ASSERT(ldr_sql_source("host=h dbname=x", &d) == &ldr_sql_pg);
	ASSERT(ldr_sql_source("/data/app.db", &d) == &ldr_sql_sqlite);
	ASSERT_EQ(d, LDR_SQL_SQLITE);
	ASSERT(ldr_sql_source("sqlite:/data/a=b.db", &d) == &ldr_sql_sqlite);
	ASSERT(ldr_sql_source("sqlite:host=h", &d) == &ldr_sql_sqlite);
	ASSERT(ldr_sql_source("app.db", &d) == &ldr_sql_sqlite);
	/* '=' alone does not make a connection string: libpq must take it. */
	ASSERT(ldr_sql_source("a=b.db", &d) == &ldr_sql_sqlite);
	ASSERT(ldr_sql_source("/data/a=b.db", &d) == &ldr_sql_sqlite);
	ASSERT(ldr_sql_source("hostt=h dbname=x", &d) == &ldr_sql_sqlite);
	/* A file that exists is SQLite, even if libpq would take its name. */
	const char *file = test_path("dbname=x");
	FILE *f = fopen(file, "w");
	ASSERT(f && fclose(f) == 0);
	ASSERT(ldr_sql_source(file, &d) == &ldr_sql_sqlite);
	ASSERT_EQ(d, LDR_SQL_SQLITE);
	ASSERT(chdir(test_dir()) == 0);
	ASSERT(ldr_sql_source("dbname=x", &d) == &ldr_sql_sqlite);
	ASSERT(ldr_sql_source("dbname=y", &d) == &ldr_sql_pg);
}

/* ---------------------------------------------------------------------- */
/* The formats, driven directly                                            */

struct mem {
	char *p;
	size_t len;
	size_t max_write;
	int writes;
};

static int mem_write(void *payload, const void *buf, size_t len)
{
	struct mem *m = payload;
	m->p = realloc(m->p, m->len + len + 1);
	memcpy(m->p + m->len, buf, len);
	m->len += len;
	m->p[m->len] = '\0';
	if (len > m->max_write)
		m->max_write = len;
	m->writes++;
	return 0;
}

/* One row of every kind through a format; the whole output. */
static struct mem format_rows(int format, unsigned flags)
{
	static const char *const names[] = {"id", "t,x", "e", "n",
					    "b",  "bl",	 "j", "num"};
	struct mem m = {0};
	struct ldr_sql_out o;
	ASSERT_EQ(ldr_sql_out_init(&o, NULL, format, flags, mem_write, &m), 0);
	ASSERT_EQ(ldr_sql_out_columns(&o, 8, names), 0);
	{
		const char *v[] = {
		    "1",	"a\"b,c\r\nd\te\\f", "",   NULL, "t",
		    "\x00\xff", "{\"k\":\n[1]}",     "NaN"};
		size_t l[] = {1, 12, 0, 0, 1, 2, 10, 3};
		int k[] = {LDR_SQL_INT,	 LDR_SQL_TEXT,	 LDR_SQL_TEXT,
			   LDR_SQL_NULL, LDR_SQL_BOOL,	 LDR_SQL_BLOB,
			   LDR_SQL_JSON, LDR_SQL_NUMERIC};
		ASSERT_EQ(ldr_sql_out_row(&o, 8, v, l, k), 0);
	}
	{
		const char *v[] = {"-2.5e+10", " lead", "trail ", "",
				   "f",	       "",	"null",	  "123.4500"};
		size_t l[] = {8, 5, 6, 0, 1, 0, 4, 8};
		int k[] = {LDR_SQL_REAL, LDR_SQL_TEXT,	 LDR_SQL_TEXT,
			   LDR_SQL_TEXT, LDR_SQL_BOOL,	 LDR_SQL_BLOB,
			   LDR_SQL_JSON, LDR_SQL_NUMERIC};
		ASSERT_EQ(ldr_sql_out_row(&o, 8, v, l, k), 0);
	}
	ASSERT_EQ(ldr_sql_out_flush(&o), 0);
	ldr_sql_out_free(&o);
	return m;
}

static void assert_bytes(const struct mem *m, const char *want, size_t wlen)
{
	if (m->len != wlen || memcmp(m->p, want, wlen) != 0) {
		FILE *f = fopen(test_path("got"), "w");
		fwrite(m->p, 1, m->len, f);
		fclose(f);
		test_fail(__FILE__, __LINE__,
			  "output differs (%zu bytes, want %zu): see %s",
			  m->len, wlen, test_path("got"));
	}
}

TEST(format_csv_quotes_only_what_needs_it)
{
	struct mem m = format_rows(LARDER_SQL_CSV, 0);
	static const char want[] =
	    "id,\"t,x\",e,n,b,bl,j,num\r\n"
	    "1,\"a\"\"b,c\r\nd\te\\f\",\"\",,t,\\x00ff,\"{\"\"k\"\":\n[1]}\","
	    "NaN\r\n"
	    "-2.5e+10,\" lead\",\"trail \",\"\",f,\\x,null,123.4500\r\n";
	assert_bytes(&m, want, sizeof want - 1);
	free(m.p);
	m = format_rows(LARDER_SQL_CSV, LARDER_SQL_NO_HEADER);
	ASSERT(strncmp(m.p, "1,", 2) == 0);
	free(m.p);
}

TEST(format_tsv_escapes_like_copy)
{
	struct mem m = format_rows(LARDER_SQL_TSV, 0);
	static const char want[] =
	    "id\tt,x\te\tn\tb\tbl\tj\tnum\n"
	    "1\ta\"b,c\\r\\nd\\te\\\\f\t\t\\N\tt\t\\\\x00ff\t{\"k\":\\n[1]}\t"
	    "NaN\n"
	    "-2.5e+10\t lead\ttrail \t\tf\t\\\\x\tnull\t123.4500\n";
	assert_bytes(&m, want, sizeof want - 1);
	free(m.p);
	/* \b \f \v too, as COPY writes them */
	struct ldr_sql_out o;
	m = (struct mem){0};
	ASSERT_EQ(ldr_sql_out_init(&o, NULL, LARDER_SQL_TSV,
				   LARDER_SQL_NO_HEADER, mem_write, &m),
		  0);
	const char *names[] = {"x"};
	const char *v[] = {"\b\f\v"};
	size_t l[] = {3};
	int k[] = {LDR_SQL_TEXT};
	ASSERT_EQ(ldr_sql_out_columns(&o, 1, names), 0);
	ASSERT_EQ(ldr_sql_out_row(&o, 1, v, l, k), 0);
	ASSERT_EQ(ldr_sql_out_flush(&o), 0);
	ldr_sql_out_free(&o);
	assert_bytes(&m, "\\b\\f\\v\n", 7);
	free(m.p);
}

TEST(format_jsonl_kinds)
{
	struct mem m = format_rows(LARDER_SQL_JSONL, 0);
	static const char want[] =
	    "{\"id\":1,\"t,x\":\"a\\\"b,c\\r\\nd\\te\\\\f\",\"e\":\"\","
	    "\"n\":null,\"b\":true,\"bl\":\"\\\\x00ff\",\"j\":{\"k\": [1]},"
	    "\"num\":\"NaN\"}\n"
	    "{\"id\":-2.5e+10,\"t,x\":\" lead\",\"e\":\"trail \",\"n\":\"\","
	    "\"b\":false,\"bl\":\"\\\\x\",\"j\":null,\"num\":123.4500}\n";
	assert_bytes(&m, want, sizeof want - 1);
	free(m.p);
}

/* Text the JSON way: controls, U+2028/9, and bytes that are not UTF-8
 * (kept as \udcXX, Python's surrogateescape); numbers only when they are
 * JSON numbers. */
TEST(format_jsonl_text_and_numbers)
{
	static const struct {
		int kind;
		const char *in;
		size_t len;
		const char *want;
	} cases[] = {
	    {LDR_SQL_TEXT, "\x01\x1f\x7f", 3, "\"\\u0001\\u001f\x7f\""},
	    {LDR_SQL_TEXT, "\b\f", 2, "\"\\b\\f\""},
	    {LDR_SQL_TEXT, "\xe2\x80\xa8\xe2\x80\xa9", 6, "\"\\u2028\\u2029\""},
	    {LDR_SQL_TEXT, "h\xc3\xa9 \xf0\x9f\x98\x80", 8,
	     "\"h\xc3\xa9 \xf0\x9f\x98\x80\""},
	    {LDR_SQL_TEXT,
	     "A\xff"
	     "B\xc3",
	     4, "\"A\\udcffB\\udcc3\""},
	    {LDR_SQL_TEXT, "\xc0\xaf\xed\xa0\x80", 5,
	     "\"\\udcc0\\udcaf\\udced\\udca0\\udc80\""},
	    {LDR_SQL_TEXT, "a\0b", 3, "\"a\\u0000b\""},
	    {LDR_SQL_INT, "-0", 2, "-0"},
	    {LDR_SQL_INT, "007", 3, "\"007\""},
	    {LDR_SQL_REAL, "1.", 2, "\"1.\""},
	    {LDR_SQL_REAL, ".5", 2, "\".5\""},
	    {LDR_SQL_REAL, "1e5", 3, "1e5"},
	    {LDR_SQL_REAL, "1E+05", 5, "1E+05"},
	    {LDR_SQL_REAL, "1e", 2, "\"1e\""},
	    {LDR_SQL_REAL, "Infinity", 8, "\"Infinity\""},
	    {LDR_SQL_REAL, "-Infinity", 9, "\"-Infinity\""},
	    {LDR_SQL_NUMERIC, "+1", 2, "\"+1\""},
	    {LDR_SQL_NUMERIC, "", 0, "\"\""},
	    {LDR_SQL_BOOL, "true", 4, "\"true\""},
	    {LDR_SQL_JSON, "", 0, "\"\""},
	    {LDR_SQL_JSON, "[1,\r\n2]", 7, "[1,  2]"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct mem m = {0};
		struct ldr_sql_out o;
		ASSERT_EQ(ldr_sql_out_init(&o, NULL, LARDER_SQL_JSONL, 0,
					   mem_write, &m),
			  0);
		const char *names[] = {"v"};
		ASSERT_EQ(ldr_sql_out_columns(&o, 1, names), 0);
		const char *v[] = {cases[i].in};
		size_t l[] = {cases[i].len};
		int k[] = {cases[i].kind};
		ASSERT_EQ(ldr_sql_out_row(&o, 1, v, l, k), 0);
		ASSERT_EQ(ldr_sql_out_flush(&o), 0);
		ldr_sql_out_free(&o);
		char want[128];
		snprintf(want, sizeof want, "{\"v\":%s}\n", cases[i].want);
		if (strcmp(m.p, want) != 0)
			test_fail(__FILE__, __LINE__,
				  "case %zu: got %s want %s", i, m.p, want);
		free(m.p);
	}
}

/* Output leaves in chunks of at most 64 KiB however large a value is,
 * and nothing is lost between chunks. */
TEST(format_streams_in_chunks)
{
	struct mem m = {0};
	struct ldr_sql_out o;
	ASSERT_EQ(ldr_sql_out_init(&o, NULL, LARDER_SQL_CSV,
				   LARDER_SQL_NO_HEADER, mem_write, &m),
		  0);
	const char *names[] = {"a", "b"};
	ASSERT_EQ(ldr_sql_out_columns(&o, 2, names), 0);
	size_t big = 300000;
	char *val = malloc(big);
	for (size_t i = 0; i < big; i++)
		val[i] = (char)('a' + i % 26);
	val[1000] = '"'; /* quoted, one quote doubled */
	char num[16];
	size_t want_len = 0;
	for (int r = 0; r < 50; r++) {
		snprintf(num, sizeof num, "%d", r);
		const char *v[] = {num, val};
		size_t l[] = {strlen(num), r % 2 ? big : 10};
		int k[] = {LDR_SQL_INT, LDR_SQL_TEXT};
		ASSERT_EQ(ldr_sql_out_row(&o, 2, v, l, k), 0);
		want_len += strlen(num) + 1 + (r % 2 ? big + 3 : 10) + 2;
	}
	ASSERT_EQ(ldr_sql_out_flush(&o), 0);
	ldr_sql_out_free(&o);
	ASSERT_EQ(m.len, want_len);
	ASSERT(m.max_write <= LDR_SQL_CHUNK);
	ASSERT(m.writes >= (int)(want_len / LDR_SQL_CHUNK));
	/* the second row, checked byte for byte */
	const char *p = strstr(m.p, "\r\n1,\"") + 5;
	ASSERT_MEM_EQ(p, val, 1000);
	ASSERT_EQ(p[1000], '"');
	ASSERT_EQ(p[1001], '"');
	ASSERT_MEM_EQ(p + 1002, val + 1001, big - 1001);
	ASSERT_MEM_EQ(p + 1002 + big - 1001, "\"\r\n2,", 5);
	free(val);
	free(m.p);
}

/* ---------------------------------------------------------------------- */
/* SQLite, end to end                                                      */

/* A table with the awkward values: NULL and '', quotes, separators,
 * newlines, tabs, backslashes, Unicode, blobs, numbers. */
static const char *awkward_db(void)
{
	const char *path = test_path("awk.db");
	if (access(path, F_OK) == 0)
		return path;
	db_exec(path,
		"CREATE TABLE t(id INTEGER PRIMARY KEY, s TEXT, r REAL, "
		"b BLOB);"
		"INSERT INTO t VALUES(1, 'plain', 0.1, x'00ff10');"
		"INSERT INTO t VALUES(2, NULL, 100.0, NULL);"
		"INSERT INTO t VALUES(3, '', 1e300, x'');"
		"INSERT INTO t VALUES(4, 'a\"b,c' || char(13, 10) || 'd' || "
		"char(9) || 'e\\f', -2.5, NULL);"
		"INSERT INTO t VALUES(5, 'h' || char(233) || ' ' || "
		"char(128512), 0.30000000000000004, NULL);"
		/* (SQLite stores -0.0 as 0.0) */
		"INSERT INTO t VALUES(6, ' x ', -0.0, NULL);"
		"INSERT INTO t VALUES(9007199254740993, 'big', 1e-7, NULL);");
	return path;
}

static const char awkward_csv[] =
    "id,s,r,b\r\n"
    "1,plain,0.1,\\x00ff10\r\n"
    "2,,100.0,\r\n"
    "3,\"\",1.0e+300,\\x\r\n"
    "4,\"a\"\"b,c\r\nd\te\\f\",-2.5,\r\n"
    "5,h\xc3\xa9 \xf0\x9f\x98\x80,0.30000000000000004,\r\n"
    "6,\" x \",0.0,\r\n"
    "9007199254740993,big,1.0e-07,\r\n";

static const char awkward_tsv[] =
    "id\ts\tr\tb\n"
    "1\tplain\t0.1\t\\\\x00ff10\n"
    "2\t\\N\t100.0\t\\N\n"
    "3\t\t1.0e+300\t\\\\x\n"
    "4\ta\"b,c\\r\\nd\\te\\\\f\t-2.5\t\\N\n"
    "5\th\xc3\xa9 \xf0\x9f\x98\x80\t0.30000000000000004\t\\N\n"
    "6\t x \t0.0\t\\N\n"
    "9007199254740993\tbig\t1.0e-07\t\\N\n";

static const char awkward_jsonl[] =
    "{\"id\":1,\"s\":\"plain\",\"r\":0.1,\"b\":\"\\\\x00ff10\"}\n"
    "{\"id\":2,\"s\":null,\"r\":100.0,\"b\":null}\n"
    "{\"id\":3,\"s\":\"\",\"r\":1.0e+300,\"b\":\"\\\\x\"}\n"
    "{\"id\":4,\"s\":\"a\\\"b,c\\r\\nd\\te\\\\f\",\"r\":-2.5,\"b\":null}\n"
    "{\"id\":5,\"s\":\"h\xc3\xa9 \xf0\x9f\x98\x80\",\"r\":0."
    "30000000000000004,\"b\":null}\n"
    "{\"id\":6,\"s\":\" x \",\"r\":0.0,\"b\":null}\n"
    "{\"id\":9007199254740993,\"s\":\"big\",\"r\":1.0e-07,\"b\":null}\n";

static void check_format(int format, unsigned flags, int first,
			 const char *want, size_t wlen)
{
	larder *db = open_store();
	const char *path = awkward_db();
	larder_sql_opts o = LARDER_SQL_OPTS_INIT;
	o.format = format;
	o.flags = flags;
	o.version_query = "SELECT count(*) FROM t";
	struct res r = sql(db, path, "SELECT * FROM t ORDER BY id", &o);
	ASSERT_OK(db, r);
	ASSERT_EQ(r.outcome, first);
	struct mem m = {r.data, r.len, 0, 0};
	assert_bytes(&m, want, wlen);
	res_free(&r);
	/* and the same bytes from the store */
	r = sql(db, path, "SELECT * FROM t ORDER BY id", &o);
	ASSERT_OK(db, r);
	ASSERT_EQ(r.outcome, LARDER_HIT);
	m = (struct mem){r.data, r.len, 0, 0};
	assert_bytes(&m, want, wlen);
	res_free(&r);
	larder_close(db);
}

TEST(sqlite_csv_bytes)
{
	check_format(LARDER_SQL_CSV, 0, LARDER_FILLED, awkward_csv,
		     sizeof awkward_csv - 1);
	const char *body = strchr(awkward_csv, '\n') + 1;
	check_format(LARDER_SQL_CSV, LARDER_SQL_NO_HEADER, LARDER_FILLED, body,
		     strlen(body));
}

TEST(sqlite_tsv_bytes)
{
	check_format(LARDER_SQL_TSV, 0, LARDER_FILLED, awkward_tsv,
		     sizeof awkward_tsv - 1);
	const char *body = strchr(awkward_tsv, '\n') + 1;
	check_format(LARDER_SQL_TSV, LARDER_SQL_NO_HEADER, LARDER_FILLED, body,
		     strlen(body));
}

TEST(sqlite_jsonl_bytes)
{
	check_format(LARDER_SQL_JSONL, 0, LARDER_FILLED, awkward_jsonl,
		     sizeof awkward_jsonl - 1);
	/* no header in JSON Lines anyway: the same key */
	check_format(LARDER_SQL_JSONL, LARDER_SQL_NO_HEADER, LARDER_HIT,
		     awkward_jsonl, sizeof awkward_jsonl - 1);
}

TEST(sqlite_jsonl_invalid_utf8_and_infinity)
{
	larder *db = open_store();
	const char *path = test_path("u.db");
	db_exec(path, "CREATE TABLE t(a);"
		      "INSERT INTO t VALUES(CAST(x'41ff42' AS TEXT));"
		      "INSERT INTO t VALUES(9e999);"
		      "INSERT INTO t VALUES(-9e999);");
	larder_sql_opts o = LARDER_SQL_OPTS_INIT;
	o.format = LARDER_SQL_JSONL;
	o.version_query = "SELECT 1";
	struct res r = sql(db, path, "SELECT a FROM t ORDER BY rowid", &o);
	ASSERT_OK(db, r);
	ASSERT_STR_EQ(r.data, "{\"a\":\"A\\udcffB\"}\n"
			      "{\"a\":\"Infinity\"}\n"
			      "{\"a\":\"-Infinity\"}\n");
	res_free(&r);
	larder_close(db);
}

TEST(sqlite_empty_result)
{
	larder *db = open_store();
	const char *path = awkward_db();
	larder_sql_opts o = LARDER_SQL_OPTS_INIT;
	o.version_query = "SELECT 1";
	struct res r = sql(db, path, "SELECT id, s FROM t WHERE 0", &o);
	ASSERT_OK(db, r);
	ASSERT_STR_EQ(r.data, "id,s\r\n");
	res_free(&r);
	o.flags = LARDER_SQL_NO_HEADER;
	r = sql(db, path, "SELECT id, s FROM t WHERE 0", &o);
	ASSERT_OK(db, r);
	ASSERT_EQ(r.len, 0);
	ASSERT_EQ(r.outcome, LARDER_FILLED);
	res_free(&r);
	r = sql(db, path, "SELECT id, s FROM t WHERE 0", &o);
	ASSERT_EQ(r.outcome, LARDER_HIT);
	res_free(&r);
	larder_close(db);
}

/* What runs is the normalized text, so two spellings that share a key
 * also share the column names SQLite makes from the text. */
TEST(sqlite_spellings_share_key_and_bytes)
{
	larder *db = open_store();
	const char *path = awkward_db();
	larder_sql_opts o = LARDER_SQL_OPTS_INIT;
	o.version_query = "SELECT count(*) FROM t";
	struct res a = sql(db, path, "SELECT COUNT(*), 1+  2 FROM T", &o);
	ASSERT_OK(db, a);
	ASSERT_EQ(a.outcome, LARDER_FILLED);
	ASSERT_STR_EQ(a.data, "count(*),1+ 2\r\n7,3\r\n");
	o.version_query = "select  COUNT(*) -- how many\n from t;";
	struct res b =
	    sql(db, path, "select count(*) , 1+ 2\n/* c */from t ;", &o);
	ASSERT_OK(db, b);
	/* "count(*) , 1" differs from "COUNT(*), 1": another key */
	ASSERT_EQ(b.outcome, LARDER_FILLED);
	struct res c = sql(db, path, "  select count(*), 1+\t2 from t ;  ", &o);
	ASSERT_OK(db, c);
	ASSERT_EQ(c.outcome, LARDER_HIT);
	ASSERT_STR_EQ(c.data, a.data);
	ASSERT_EQ(count_entries(db), 2);
	res_free(&a);
	res_free(&b);
	res_free(&c);
	larder_close(db);
}

/* Parameters, format, database and NULL-vs-empty each make another
 * key; the data follows the parameters. */
TEST(sqlite_key_parts)
{
	larder *db = open_store();
	const char *path = awkward_db();
	char copy[512];
	snprintf(copy, sizeof copy, "%s", test_path("copy.db"));
	ASSERT_EQ(test_sh("cp '%s' '%s'", path, copy), 0);
	const char *q = "SELECT ?1 IS NULL, ?1, (SELECT count(*) FROM t)";
	const char *p_null[] = {NULL};
	const char *p_empty[] = {""};
	const char *p_x[] = {"x"};
	larder_sql_opts o = LARDER_SQL_OPTS_INIT;
	o.version_query = "SELECT 1";
	o.nparams = 1;

	o.params = p_null;
	struct res r = sql(db, path, q, &o);
	ASSERT_OK(db, r);
	ASSERT_EQ(r.outcome, LARDER_FILLED);
	ASSERT_STR_EQ(r.data, "?1 is null,?1,(select count(*) from t)\r\n"
			      "1,,7\r\n");
	res_free(&r);
	o.params = p_empty;
	r = sql(db, path, q, &o);
	ASSERT_EQ(r.outcome, LARDER_FILLED);
	ASSERT_HAS(r.data, "\r\n0,\"\",7\r\n");
	res_free(&r);
	o.params = p_x;
	r = sql(db, path, q, &o);
	ASSERT_EQ(r.outcome, LARDER_FILLED);
	ASSERT_HAS(r.data, "\r\n0,x,7\r\n");
	res_free(&r);
	ASSERT_EQ(count_entries(db), 3);
	/* each again: hits */
	o.params = p_null;
	r = sql(db, path, q, &o);
	ASSERT_EQ(r.outcome, LARDER_HIT);
	ASSERT_HAS(r.data, "\r\n1,,7\r\n");
	res_free(&r);
	o.params = p_empty;
	r = sql(db, path, q, &o);
	ASSERT_EQ(r.outcome, LARDER_HIT);
	ASSERT_HAS(r.data, "\r\n0,\"\",7\r\n");
	res_free(&r);
	/* format, flags, database */
	o.format = LARDER_SQL_TSV;
	r = sql(db, path, q, &o);
	ASSERT_EQ(r.outcome, LARDER_FILLED);
	res_free(&r);
	o.flags = LARDER_SQL_NO_HEADER;
	r = sql(db, path, q, &o);
	ASSERT_EQ(r.outcome, LARDER_FILLED);
	res_free(&r);
	db_exec(copy, "DELETE FROM t WHERE id > 1");
	r = sql(db, copy, q, &o);
	ASSERT_EQ(r.outcome, LARDER_FILLED);
	ASSERT_STR_EQ(r.data, "0\t\t1\n");
	res_free(&r);
	/* the same file by another name is the same database */
	char other[600];
	snprintf(other, sizeof other, "sqlite:%s/./copy.db", test_dir());
	r = sql(db, other, q, &o);
	ASSERT_EQ(r.outcome, LARDER_HIT);
	res_free(&r);
	/* a version query or a table is part of the key too */
	o.version_query = "SELECT 2";
	r = sql(db, copy, q, &o);
	ASSERT_EQ(r.outcome, LARDER_FILLED);
	res_free(&r);
	ASSERT_EQ(count_entries(db), 7);
	larder_close(db);
}

TEST(sqlite_params_count_must_match)
{
	larder *db = open_store();
	const char *path = awkward_db();
	larder_sql_opts o = LARDER_SQL_OPTS_INIT;
	o.version_query = "SELECT 1";
	struct res r = sql(db, path, "SELECT * FROM t WHERE id = ?", &o);
	ASSERT_EQ(r.rc, LARDER_EINVAL);
	ASSERT_HAS(larder_errmsg(db), "takes 1 parameter, 0 given");
	const char *p[] = {"1", "2"};
	o.params = p;
	o.nparams = 2;
	r = sql(db, path, "SELECT * FROM t WHERE id = :id", &o);
	ASSERT_EQ(r.rc, LARDER_EINVAL);
	ASSERT_HAS(larder_errmsg(db), "takes 1 parameter, 2 given");
	ASSERT_EQ(count_entries(db), 0);
	/* named parameters bind by position; one name used twice is one */
	o.nparams = 1;
	r = sql(db, path, "SELECT s FROM t WHERE id = :id OR id = :id + 1", &o);
	ASSERT_OK(db, r);
	ASSERT_STR_EQ(r.data, "s\r\nplain\r\n\r\n");
	res_free(&r);
	larder_close(db);
}

/* The version query's whole result is the version, framed so that no two
 * results look alike, and readable while short. */
TEST(sqlite_version_query_is_the_version)
{
	larder *db = open_store();
	const char *path = awkward_db();
	larder_sql_opts o = LARDER_SQL_OPTS_INIT;
	o.version_query = "SELECT 'a b', NULL, '', 42 UNION ALL SELECT 'x', "
			  "1, 2, 3";
	struct res r = sql(db, path, "SELECT 1", &o);
	ASSERT_OK(db, r);
	ASSERT_STR_EQ(r.ver, "3:a b N 0: 2:42\n1:x 1:1 1:2 1:3\n");
	res_free(&r);
	/* no rows: an empty version */
	o.version_query = "SELECT 1 WHERE 0";
	r = sql(db, path, "SELECT 1", &o);
	ASSERT_OK(db, r);
	ASSERT_EQ(r.vlen, 0);
	res_free(&r);
	/* long: hashed */
	o.version_query = "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT "
			  "i + 1 FROM c WHERE i < 20) SELECT "
			  "group_concat(printf('%.100d', i), '') FROM c";
	r = sql(db, path, "SELECT 1", &o);
	ASSERT_OK(db, r);
	ASSERT_EQ(r.vlen, 5 + 32);
	ASSERT(strncmp(r.ver, "xxh3:", 5) == 0);
	char first[64];
	snprintf(first, sizeof first, "%s", r.ver);
	res_free(&r);
	/* the same query again: the same hash, a hit */
	r = sql(db, path, "SELECT 1", &o);
	ASSERT_EQ(r.outcome, LARDER_HIT);
	ASSERT_STR_EQ(r.ver, first);
	res_free(&r);
	larder_close(db);
}

/* A version query that follows the data's parameters. */
TEST(sqlite_version_query_takes_the_parameters)
{
	larder *db = open_store();
	const char *path = awkward_db();
	const char *p[] = {"2"};
	larder_sql_opts o = LARDER_SQL_OPTS_INIT;
	o.params = p;
	o.nparams = 1;
	o.version_query = "SELECT count(*) FROM t WHERE id > ?";
	struct res r = sql(db, path, "SELECT id FROM t WHERE id > ?", &o);
	ASSERT_OK(db, r);
	ASSERT_STR_EQ(r.ver, "1:5\n");
	res_free(&r);
	/* one without parameters gets none */
	o.version_query = "SELECT count(*) FROM t";
	r = sql(db, path, "SELECT id FROM t WHERE id > ?", &o);
	ASSERT_OK(db, r);
	ASSERT_STR_EQ(r.ver, "1:7\n");
	res_free(&r);
	larder_close(db);
}

TEST(sqlite_version_query_follows_changes)
{
	larder *db = open_store();
	const char *path = awkward_db();
	larder_sql_opts o = LARDER_SQL_OPTS_INIT;
	o.version_query = "SELECT count(*), max(id) FROM t";
	const char *q = "SELECT count(*) FROM t";
	struct res r = sql(db, path, q, &o);
	ASSERT_EQ(r.outcome, LARDER_FILLED);
	ASSERT_STR_EQ(r.data, "count(*)\r\n7\r\n");
	res_free(&r);
	db_exec(path, "DELETE FROM t WHERE id = 3");
	r = sql(db, path, q, &o);
	ASSERT_EQ(r.outcome, LARDER_FILLED);
	ASSERT_STR_EQ(r.data, "count(*)\r\n6\r\n");
	ASSERT_STR_EQ(r.ver, "1:6 16:9007199254740993\n");
	res_free(&r);
	r = sql(db, path, q, &o);
	ASSERT_EQ(r.outcome, LARDER_HIT);
	res_free(&r);
	larder_close(db);
}

TEST(sqlite_no_version_needs_a_ttl)
{
	larder *db = open_store();
	const char *path = awkward_db();
	struct res r = sql(db, path, "SELECT 1", NULL);
	ASSERT_EQ(r.rc, LARDER_EINVAL);
	ASSERT_HAS(larder_errmsg(db), "needs a TTL");
	struct ttl_opts t;
	ttl_opts_init(&t, LARDER_TTL_NEVER);
	r = sql(db, path, "SELECT 1", &t.sql);
	ASSERT_EQ(r.rc, LARDER_EINVAL);
	ASSERT_EQ(count_entries(db), 0);

	ttl_opts_init(&t, 60);
	r = sql(db, path, "SELECT count(*) FROM t", &t.sql);
	ASSERT_OK(db, r);
	ASSERT_EQ(r.outcome, LARDER_FILLED);
	ASSERT_EQ(r.vlen, 0);
	res_free(&r);
	/* no version: a change goes unseen until the TTL runs out */
	db_exec(path, "DELETE FROM t");
	r = sql(db, path, "SELECT count(*) FROM t", &t.sql);
	ASSERT_EQ(r.outcome, LARDER_HIT);
	ASSERT_STR_EQ(r.data, "count(*)\r\n7\r\n");
	res_free(&r);
	/* the namespace's default TTL will do */
	ASSERT_RC(db, larder_ns_set_ttl(db, "default", 60), 0);
	r = sql(db, path, "SELECT 2", NULL);
	ASSERT_OK(db, r);
	ASSERT(r.expires > 0);
	res_free(&r);
	larder_close(db);
}

/* ---------------------------------------------------------------------- */
/* Tracked tables                                                          */

static const char *tracked_db(void)
{
	const char *path = test_path("tr.db");
	db_exec(path, "CREATE TABLE Items(id INTEGER PRIMARY KEY, v TEXT);"
		      "INSERT INTO Items(v) VALUES('a'), ('b');");
	return path;
}

TEST(table_version_follows_insert_update_delete)
{
	larder *db = open_store();
	const char *path = tracked_db();
	ASSERT_RC(db, larder_sql_track(db, path, "items"), 0);
	larder_sql_opts o = LARDER_SQL_OPTS_INIT;
	o.table = "items";
	const char *q = "SELECT group_concat(v, '') AS v FROM items";
	struct res r = sql(db, path, q, &o);
	ASSERT_OK(db, r);
	ASSERT_EQ(r.outcome, LARDER_FILLED);
	ASSERT_STR_EQ(r.data, "v\r\nab\r\n");
	char v0[128];
	snprintf(v0, sizeof v0, "%s", r.ver);
	ASSERT_EQ(strlen(v0) > 34, 1);
	res_free(&r);
	r = sql(db, path, q, &o);
	ASSERT_EQ(r.outcome, LARDER_HIT);
	res_free(&r);

	static const struct {
		const char *change, *want;
	} steps[] = {
	    {"INSERT INTO Items(v) VALUES('c')", "v\r\nabc\r\n"},
	    {"UPDATE Items SET v = 'B' WHERE v = 'b'", "v\r\naBc\r\n"},
	    {"DELETE FROM Items WHERE v = 'a'", "v\r\nBc\r\n"},
	    {"INSERT OR REPLACE INTO Items VALUES(3, 'C')", "v\r\nBC\r\n"},
	    {"INSERT INTO Items VALUES(3, 'x') ON CONFLICT(id) DO UPDATE SET "
	     "v = 'D'",
	     "v\r\nBD\r\n"},
	    {"DELETE FROM Items", "v\r\n\r\n"},
	};
	char prev[128];
	snprintf(prev, sizeof prev, "%s", v0);
	for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
		db_exec(path, steps[i].change);
		r = sql(db, path, q, &o);
		ASSERT_OK(db, r);
		if (r.outcome != LARDER_FILLED || strcmp(r.ver, prev) == 0)
			test_fail(__FILE__, __LINE__,
				  "step %zu (%s): outcome %d, version %s "
				  "before and %s after",
				  i, steps[i].change, r.outcome, prev, r.ver);
		ASSERT_STR_EQ(r.data, steps[i].want);
		snprintf(prev, sizeof prev, "%s", r.ver);
		res_free(&r);
	}
	/* a change to another table is not this table's */
	db_exec(path, "CREATE TABLE other(x); INSERT INTO other VALUES(1)");
	r = sql(db, path, q, &o);
	ASSERT_OK(db, r);
	/* (CREATE TABLE moved the schema version: one reload) */
	snprintf(prev, sizeof prev, "%s", r.ver);
	res_free(&r);
	db_exec(path, "INSERT INTO other VALUES(2)");
	r = sql(db, path, q, &o);
	ASSERT_EQ(r.outcome, LARDER_HIT);
	ASSERT_STR_EQ(r.ver, prev);
	res_free(&r);
	larder_close(db);
}

/* ALTER TABLE fires no trigger; the schema version in the table's version
 * still changes. */
TEST(table_version_follows_alter_table)
{
	larder *db = open_store();
	const char *path = tracked_db();
	ASSERT_RC(db, larder_sql_track(db, path, "Items"), 0);
	larder_sql_opts o = LARDER_SQL_OPTS_INIT;
	o.table = "Items";
	struct res r = sql(db, path, "SELECT * FROM Items", &o);
	ASSERT_STR_EQ(r.data, "id,v\r\n1,a\r\n2,b\r\n");
	res_free(&r);
	db_exec(path, "ALTER TABLE Items ADD COLUMN w DEFAULT 7");
	r = sql(db, path, "SELECT * FROM Items", &o);
	ASSERT_EQ(r.outcome, LARDER_FILLED);
	ASSERT_STR_EQ(r.data, "id,v,w\r\n1,a,7\r\n2,b,7\r\n");
	res_free(&r);
	larder_close(db);
}

TEST(track_is_idempotent_and_untrack_forgets)
{
	larder *db = open_store();
	const char *path = tracked_db();
	ASSERT_RC(db, larder_sql_track(db, path, "Items"), 0);
	larder_sql_opts o = LARDER_SQL_OPTS_INIT;
	o.table = "Items";
	struct res r = sql(db, path, "SELECT 1", &o);
	char v0[128];
	snprintf(v0, sizeof v0, "%s", r.ver);
	res_free(&r);
	/* again: nothing changes, the version stays */
	ASSERT_RC(db, larder_sql_track(db, path, "ITEMS"), 0);
	r = sql(db, path, "SELECT 1", &o);
	ASSERT_EQ(r.outcome, LARDER_HIT);
	ASSERT_STR_EQ(r.ver, v0);
	res_free(&r);
	/* untrack: the table's version is gone */
	ASSERT_RC(db, larder_sql_untrack(db, path, "items"), 0);
	ASSERT_RC(db, larder_sql_untrack(db, path, "items"), 0);
	r = sql(db, path, "SELECT 2", &o);
	ASSERT_EQ(r.rc, LARDER_ENOTFOUND);
	ASSERT_HAS(larder_errmsg(db), "not tracked");
	ASSERT_HAS(larder_errmsg(db), "larder sql track");
	/* the triggers went too: writing does not need larder_changes */
	db_exec(path, "INSERT INTO Items(v) VALUES('z')");
	/* tracked again: a new token, so no old version comes back even
	 * where the counter restarts from the same number */
	ASSERT_RC(db, larder_sql_track(db, path, "items"), 0);
	r = sql(db, path, "SELECT 1", &o);
	ASSERT_OK(db, r);
	ASSERT(strncmp(r.ver, v0, 32) != 0);
	res_free(&r);
	larder_close(db);
}

/* A table dropped and made again has lost its triggers: refused until it
 * is tracked again, never a version that stands still. */
TEST(table_made_again_is_not_trusted)
{
	larder *db = open_store();
	const char *path = tracked_db();
	ASSERT_RC(db, larder_sql_track(db, path, "Items"), 0);
	larder_sql_opts o = LARDER_SQL_OPTS_INIT;
	o.table = "Items";
	struct res r = sql(db, path, "SELECT count(*) FROM Items", &o);
	ASSERT_OK(db, r);
	res_free(&r);
	db_exec(path, "DROP TABLE Items; CREATE TABLE Items(id INTEGER "
		      "PRIMARY KEY, v TEXT); INSERT INTO Items(v) VALUES('q')");
	r = sql(db, path, "SELECT count(*) FROM Items", &o);
	ASSERT_EQ(r.rc, LARDER_ENOTFOUND);
	ASSERT_HAS(larder_errmsg(db), "triggers");
	ASSERT_RC(db, larder_sql_track(db, path, "Items"), 0);
	r = sql(db, path, "SELECT count(*) FROM Items", &o);
	ASSERT_OK(db, r);
	ASSERT_EQ(r.outcome, LARDER_FILLED);
	ASSERT_STR_EQ(r.data, "count(*)\r\n1\r\n");
	res_free(&r);
	/* renamed: the counter belongs to the old name */
	db_exec(path, "ALTER TABLE Items RENAME TO Things");
	o.table = "Things";
	r = sql(db, path, "SELECT 1", &o);
	ASSERT_EQ(r.rc, LARDER_ENOTFOUND);
	larder_close(db);
}

TEST(track_refuses_what_it_cannot_count)
{
	const char *path = tracked_db();
	db_exec(path, "CREATE VIEW v AS SELECT * FROM Items");
	ASSERT_EQ(larder_sql_track(NULL, path, "nope"), LARDER_EINVAL);
	ASSERT_HAS(larder_errmsg(NULL), "no table 'nope'");
	ASSERT_EQ(larder_sql_track(NULL, path, "v"), LARDER_EINVAL);
	ASSERT_HAS(larder_errmsg(NULL), "is a view");
	ASSERT_EQ(larder_sql_track(NULL, path, "items"), 0);
	ASSERT_EQ(larder_sql_track(NULL, path, "larder_changes"),
		  LARDER_EINVAL);
	ASSERT_EQ(larder_sql_track(NULL, test_path("missing.db"), "t"),
		  LARDER_ENOTFOUND);
	ASSERT_EQ(access(test_path("missing.db"), F_OK), -1);
	ASSERT_EQ(larder_sql_track(NULL, path, ""), LARDER_EINVAL);
}

/* Awkward table names: quotes, dots, spaces are one name each. */
TEST(track_awkward_names)
{
	larder *db = open_store();
	const char *path = test_path("n.db");
	db_exec(path, "CREATE TABLE \"a\"\"b.c d'e\"(x);"
		      "INSERT INTO \"a\"\"b.c d'e\" VALUES(1)");
	const char *name = "a\"b.c d'e";
	ASSERT_RC(db, larder_sql_track(db, path, name), 0);
	larder_sql_opts o = LARDER_SQL_OPTS_INIT;
	o.table = name;
	const char *q = "SELECT count(*) AS n FROM \"a\"\"b.c d'e\"";
	struct res r = sql(db, path, q, &o);
	ASSERT_OK(db, r);
	ASSERT_STR_EQ(r.data, "n\r\n1\r\n");
	res_free(&r);
	db_exec(path, "INSERT INTO \"a\"\"b.c d'e\" VALUES(2)");
	r = sql(db, path, q, &o);
	ASSERT_EQ(r.outcome, LARDER_FILLED);
	ASSERT_STR_EQ(r.data, "n\r\n2\r\n");
	res_free(&r);
	ASSERT_RC(db, larder_sql_untrack(db, path, name), 0);
	larder_close(db);
}

/* ---------------------------------------------------------------------- */
/* Errors: clear, and nothing cached                                       */

TEST(errors_cache_nothing)
{
	larder *db = open_store();
	const char *path = tracked_db();
	larder_sql_opts o = LARDER_SQL_OPTS_INIT;
	o.version_query = "SELECT 1";
	static const struct {
		const char *query;
		int rc;
		const char *msg;
	} cases[] = {
	    {"SELEC 1", LARDER_EINVAL, "syntax error"},
	    {"SELECT * FROM nosuch", LARDER_EINVAL, "no such table: nosuch"},
	    {"SELECT nosuch FROM items", LARDER_EINVAL, "no such column"},
	    {"SELECT 1; SELECT 2", LARDER_EINVAL, "more than one statement"},
	    {"CREATE TABLE x(a)", LARDER_EINVAL, "not a query that reads"},
	    {"DELETE FROM items", LARDER_EINVAL, "not a query that reads"},
	    {"BEGIN", LARDER_EINVAL, "not a query that reads"},
	    {"   ", LARDER_EINVAL, "empty query"},
	    /* a failure after rows have been written */
	    {"WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c "
	     "WHERE i < 100000) SELECT i, CASE WHEN i < 99000 THEN 'x' ELSE "
	     "json('not json') END FROM c",
	     LARDER_EINVAL, "malformed JSON"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct res r = sql(db, path, cases[i].query, &o);
		if (r.rc != cases[i].rc)
			test_fail(__FILE__, __LINE__, "case %zu: rc %d (%s)", i,
				  r.rc, larder_errmsg(db));
		ASSERT_HAS(larder_errmsg(db), cases[i].msg);
		ASSERT_EQ(count_entries(db), 0);
	}
	/* the same through a bad version query */
	o.version_query = "SELECT nosuch";
	struct res r = sql(db, path, "SELECT 1", &o);
	ASSERT_RC(db, r.rc, LARDER_EINVAL);
	ASSERT_HAS(larder_errmsg(db), "no such column: nosuch");
	o.version_query = "  -- nothing\n";
	r = sql(db, path, "SELECT 1", &o);
	ASSERT_EQ(r.rc, LARDER_EINVAL);
	ASSERT_HAS(larder_errmsg(db), "empty version query");
	/* a table that does not exist, one not tracked */
	o.version_query = NULL;
	o.table = "nosuch";
	r = sql(db, path, "SELECT 1", &o);
	ASSERT_EQ(r.rc, LARDER_EINVAL);
	ASSERT_HAS(larder_errmsg(db), "no table 'nosuch'");
	o.table = "items";
	r = sql(db, path, "SELECT 1", &o);
	ASSERT_EQ(r.rc, LARDER_ENOTFOUND);
	ASSERT_HAS(larder_errmsg(db), "not tracked");
	/* both, or bad options */
	o.version_query = "SELECT 1";
	r = sql(db, path, "SELECT 1", &o);
	ASSERT_EQ(r.rc, LARDER_EINVAL);
	ASSERT_HAS(larder_errmsg(db), "not both");
	o.table = NULL;
	o.format = 3;
	r = sql(db, path, "SELECT 1", &o);
	ASSERT_EQ(r.rc, LARDER_EINVAL);
	o.format = 0;
	o.version = 99;
	r = sql(db, path, "SELECT 1", &o);
	ASSERT_EQ(r.rc, LARDER_EINVAL);
	ASSERT_EQ(count_entries(db), 0);
	larder_close(db);
}

TEST(errors_in_the_database_itself)
{
	larder *db = open_store();
	larder_sql_opts o = LARDER_SQL_OPTS_INIT;
	o.version_query = "SELECT 1";
	/* missing: never created */
	const char *missing = test_path("missing.db");
	struct res r = sql(db, missing, "SELECT 1", &o);
	ASSERT_EQ(r.rc, LARDER_ENOTFOUND);
	ASSERT_HAS(larder_errmsg(db), "no SQLite database at");
	ASSERT_HAS(larder_errmsg(db), missing);
	ASSERT_EQ(access(missing, F_OK), -1);
	char uri[600];
	snprintf(uri, sizeof uri, "sqlite:%s", missing);
	r = sql(db, uri, "SELECT 1", &o);
	ASSERT_EQ(r.rc, LARDER_ENOTFOUND);
	ASSERT_EQ(access(missing, F_OK), -1);
	/* a directory */
	r = sql(db, test_dir(), "SELECT 1", &o);
	ASSERT_EQ(r.rc, LARDER_EINVAL);
	ASSERT_HAS(larder_errmsg(db), "is not a file");
	/* not a database */
	const char *junk = test_path("junk.db");
	FILE *f = fopen(junk, "w");
	for (int i = 0; i < 200; i++)
		fputs("this is not an SQLite database\n", f);
	fclose(f);
	r = sql(db, junk, "SELECT 1", &o);
	ASSERT_EQ(r.rc, LARDER_EIO);
	ASSERT_HAS(larder_errmsg(db), "not a database");
	/* empty URIs and queries */
	r = sql(db, "", "SELECT 1", &o);
	ASSERT_EQ(r.rc, LARDER_EINVAL);
	r = sql(db, "sqlite:", "SELECT 1", &o);
	ASSERT_EQ(r.rc, LARDER_EINVAL);
	ASSERT_EQ(count_entries(db), 0);
	larder_close(db);
}

/* The connection is read-only: not even a function with side effects in
 * a SELECT can write. */
TEST(sqlite_is_opened_read_only)
{
	larder *db = open_store();
	const char *path = tracked_db();
	struct stat before, after;
	ASSERT_EQ(stat(path, &before), 0);
	larder_sql_opts o = LARDER_SQL_OPTS_INIT;
	o.version_query = "PRAGMA user_version = 5";
	struct res r = sql(db, path, "SELECT 1", &o);
	ASSERT(r.rc != 0);
	ASSERT_EQ(count_entries(db), 0);
	ASSERT_EQ(stat(path, &after), 0);
	ASSERT_EQ(before.st_mtim.tv_nsec, after.st_mtim.tv_nsec);
	ASSERT_EQ(before.st_size, after.st_size);
	larder_close(db);
}

/* ---------------------------------------------------------------------- */
/* A writer changing the table during loads                                */

#define GEN_ROWS 5000

/* A tracked table of GEN_ROWS rows, all of generation 0. */
static void gen_db(const char *path, int wal)
{
	char sql[1024];
	snprintf(sql, sizeof sql,
		 "PRAGMA journal_mode = %s;"
		 "CREATE TABLE t(id INTEGER PRIMARY KEY, gen INTEGER, pad "
		 "TEXT);"
		 "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM "
		 "c WHERE i < %d) INSERT INTO t SELECT i, 0, printf('%%.80d', "
		 "i) FROM c;",
		 wal ? "WAL" : "DELETE", GEN_ROWS);
	db_exec(path, sql);
	ASSERT_EQ(larder_sql_track(NULL, path, "t"), 0);
}

/*
 * Turns between the writer (a child) and the loads: the writer makes one
 * generation per `go` byte, writing 'b' once its write transaction has
 * begun (BEGIN IMMEDIATE: it holds the right to write, and a reader's
 * snapshot or SHARED lock does not stop it) and 'm' once it has
 * committed. A load sends `go` as its data query starts, after it read
 * the version (a trace callback installed on every connection of this
 * process sees the statement start), so every load has a commit begun
 * between its version and its rows, on any machine: exactly one
 * generation per load, and a load that read them in two snapshots would
 * publish rows of the next generation under this one's version.
 */
static int turn_go = -1, turn_made = -1, turn_wal, turn_armed;

/* Read the writer's next byte, which must be `want`. */
static void turn_expect(char want)
{
	char c = 0;
	ssize_t n;
	do
		n = read(turn_made, &c, 1);
	while (n < 0 && errno == EINTR);
	if (n != 1 || c != want)
		test_fail(__FILE__, __LINE__,
			  "the writer: expected '%c', got %s '%c' (%s)", want,
			  n == 1 ? "" : "nothing", n == 1 ? c : ' ',
			  n < 0 ? strerror(errno) : "its pipe closed");
}

/* A statement starts (SQLITE_TRACE_STMT comes before it reads): at the
 * data query of an armed load, the writer's turn. WAL lets it commit
 * beside our snapshot, so we wait for the commit; a rollback journal
 * makes its COMMIT wait for our SHARED lock, so we wait only for its
 * transaction to begin. */
static int turn_trace(unsigned type, void *cx, void *p, void *x)
{
	(void)type, (void)cx, (void)x;
	const char *q = sqlite3_sql(p);
	if (turn_armed && q && strstr(q, "pad")) {
		turn_armed = 0;
		if (write(turn_go, "g", 1) != 1)
			test_fail(__FILE__, __LINE__, "write go: %s",
				  strerror(errno));
		turn_expect('b');
		if (turn_wal)
			turn_expect('m');
	}
	return 0;
}

static int turn_register(sqlite3 *h, char **err, const void *api)
{
	(void)err, (void)api;
	return sqlite3_trace_v2(h, SQLITE_TRACE_STMT, turn_trace, NULL);
}

/* Child: for each `go`, one UPDATE of every row in one transaction (so
 * the counter grows by GEN_ROWS per generation), until the pipe is
 * closed. */
static void writer_child(const char *path, int go, int made)
{
	sqlite3 *h;
	if (sqlite3_open(path, &h) != SQLITE_OK)
		_exit(2);
	sqlite3_busy_timeout(h, 60000);
	sqlite3_exec(h, "PRAGMA synchronous = OFF", NULL, NULL, NULL);
	int commits = 0;
	char c;
	while (read(go, &c, 1) == 1) {
		int rc = sqlite3_exec(h, "BEGIN IMMEDIATE", NULL, NULL, NULL);
		if (rc == SQLITE_OK)
			rc =
			    write(made, "b", 1) == 1 ? SQLITE_OK : SQLITE_IOERR;
		if (rc == SQLITE_OK)
			rc = sqlite3_exec(h,
					  "UPDATE t SET gen = gen + 1; COMMIT",
					  NULL, NULL, NULL);
		if (rc != SQLITE_OK) {
			fprintf(stderr, "writer: %s\n", sqlite3_errmsg(h));
			_exit(3);
		}
		if (write(made, "m", 1) != 1)
			_exit(3);
		commits++;
	}
	sqlite3_close(h);
	_exit(commits > 0 ? 0 : 4);
}

/* The counter as the database has it now. */
static long long counter_now(const char *path)
{
	sqlite3 *h;
	sqlite3_stmt *st;
	long long n = -1;
	ASSERT_EQ(sqlite3_open_v2(path, &h, SQLITE_OPEN_READONLY, NULL),
		  SQLITE_OK);
	sqlite3_busy_timeout(h, 60000);
	ASSERT_EQ(sqlite3_prepare_v2(h,
				     "SELECT n FROM larder_changes WHERE "
				     "tbl = 't'",
				     -1, &st, NULL),
		  SQLITE_OK);
	if (sqlite3_step(st) == SQLITE_ROW)
		n = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(h);
	return n;
}

/* Every row of a load must be of one generation, the counter the data
 * query read must be the version's, and the generation must be what
 * that counter says (GEN_ROWS changes per generation): version and data
 * from one snapshot. */
static void check_generation(const struct res *r)
{
	char token[64];
	long long vn = -1, schema = -1;
	ASSERT_EQ(sscanf(r->ver, "%63s %lld %lld", token, &vn, &schema), 3);
	ASSERT_EQ(vn % GEN_ROWS, 0);
	long long gen = vn / GEN_ROWS;
	const char *p = r->data;
	int rows = 0;
	while (*p) {
		long long n, id, g;
		char pad[128];
		if (sscanf(p, "%lld,%lld,%lld,%127[0-9]", &n, &id, &g, pad) !=
		    4)
			test_fail(__FILE__, __LINE__, "bad row at byte %zu",
				  (size_t)(p - r->data));
		if (n != vn || g != gen || id != rows + 1)
			test_fail(__FILE__, __LINE__,
				  "row %d: counter %lld generation %lld id "
				  "%lld under version counter %lld",
				  rows, n, g, id, vn);
		char want[128];
		snprintf(want, sizeof want, "%.80lld", id);
		ASSERT_STR_EQ(pad, want);
		p = strstr(p, "\r\n");
		ASSERT(p);
		p += 2;
		rows++;
	}
	ASSERT_EQ(rows, GEN_ROWS);
}

#define GEN_LOADS 12

static void writer_during_loads(int wal)
{
	const char *path = test_path("gen.db");
	gen_db(path, wal);
	ASSERT_EQ(sqlite3_auto_extension((void (*)(void))turn_register),
		  SQLITE_OK);
	larder *db = open_store();
	int go[2], made[2];
	ASSERT_EQ(pipe(go), 0);
	ASSERT_EQ(pipe(made), 0);
	pid_t w = fork();
	ASSERT(w >= 0);
	if (w == 0) {
		close(go[1]);
		close(made[0]);
		writer_child(path, go[0], made[1]);
	}
	close(go[0]);
	close(made[1]);
	turn_go = go[1], turn_made = made[0], turn_wal = wal;
	larder_sql_opts o = LARDER_SQL_OPTS_INIT;
	o.table = "t";
	o.flags = LARDER_SQL_NO_HEADER;
	const char *q = "SELECT (SELECT n FROM larder_changes WHERE tbl = "
			"'t'), id, gen, pad FROM t ORDER BY id";
	for (int k = 0; k < GEN_LOADS; k++) {
		turn_armed = 1;
		struct res r = sql(db, path, q, &o);
		ASSERT_OK(db, r);
		/* The writer's turn came between version and rows. */
		ASSERT_EQ(turn_armed, 0);
		if (!wal)
			turn_expect('m');
		/* Version and rows of the snapshot before the commit. */
		check_generation(&r);
		ASSERT_EQ(r.outcome, LARDER_FILLED);
		long long vn = -1;
		ASSERT_EQ(sscanf(r.ver, "%*s %lld", &vn), 1);
		ASSERT_EQ(vn, (long long)k * GEN_ROWS);
		ASSERT_EQ(counter_now(path), (long long)(k + 1) * GEN_ROWS);
		res_free(&r);
	}
	close(go[1]);
	int st;
	ASSERT_EQ(waitpid(w, &st, 0), w);
	ASSERT(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	close(made[0]);
	printf("    %s: %d loads, each of one generation with a commit "
	       "between its version and its rows\n",
	       wal ? "WAL" : "rollback journal", GEN_LOADS);
	larder_close(db);
}

TEST(writer_during_loads_wal)
{
	writer_during_loads(1);
}

TEST(writer_during_loads_rollback_journal)
{
	writer_during_loads(0);
}

/* ---------------------------------------------------------------------- */
/* A herd                                                                  */

static uint64_t fnv(const void *p, size_t n)
{
	const unsigned char *s = p;
	uint64_t h = 1469598103934665603ull;
	for (size_t i = 0; i < n; i++)
		h = (h ^ s[i]) * 1099511628211ull;
	return h;
}

/* The herd's events: 'L' when a member's data query starts (it loads),
 * 'W' when one starts waiting (on_wait); the loader then blocks until
 * the test closes herd_release. */
static int herd_events = -1, herd_release = -1;

static void herd_note(char c)
{
	if (write(herd_events, &c, 1) != 1)
		_exit(93);
}

static int herd_trace(unsigned type, void *cx, void *p, void *x)
{
	(void)type, (void)cx, (void)x;
	const char *q = sqlite3_sql(p);
	if (q && strstr(q, "group_concat")) {
		char c;
		herd_note('L');
		if (read(herd_release, &c, 1) != 0)
			_exit(94);
	}
	return 0;
}

static int herd_register(sqlite3 *h, char **err, const void *api)
{
	(void)err, (void)api;
	return sqlite3_trace_v2(h, SQLITE_TRACE_STMT, herd_trace, NULL);
}

static void herd_on_wait(const larder_wait_info *info, void *payload)
{
	(void)payload;
	if (info->event == LARDER_WAIT_START)
		herd_note('W');
}

TEST(herd_loads_once)
{
	enum { N = 8 };
	const char *path = tracked_db();
	ASSERT_EQ(larder_sql_track(NULL, path, "Items"), 0);
	/* The load is held until the other N - 1 are seen waiting. */
	const char *q = "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i "
			"+ 1 FROM c WHERE i < 400000) SELECT i, (SELECT "
			"group_concat(v, '') FROM Items) FROM c";
	larder *db = open_store();
	larder_close(db);
	int gate[2], res[2], ev[2], rel[2];
	ASSERT_EQ(pipe(gate), 0);
	ASSERT_EQ(pipe(res), 0);
	ASSERT_EQ(pipe(ev), 0);
	ASSERT_EQ(pipe(rel), 0);
	pid_t kids[N];
	for (int i = 0; i < N; i++) {
		kids[i] = fork();
		ASSERT(kids[i] >= 0);
		if (kids[i] == 0) {
			close(gate[1]);
			close(rel[1]);
			close(ev[0]);
			herd_events = ev[1], herd_release = rel[0];
			if (sqlite3_auto_extension(
				(void (*)(void))herd_register) != SQLITE_OK)
				_exit(89);
			char c;
			if (read(gate[0], &c, 1) != 0)
				_exit(90);
			larder *d = open_store();
			larder_fill_opts fo = LARDER_FILL_OPTS_INIT;
			fo.on_wait = herd_on_wait;
			larder_sql_opts o = LARDER_SQL_OPTS_INIT;
			o.table = "Items";
			o.fill = &fo;
			larder_entry *e;
			int outcome = 0;
			int rc =
			    larder_sql(&e, &outcome, d, "default", path, q, &o);
			if (rc)
				_exit(91);
			uint64_t h[2] = {
			    fnv(larder_entry_data(e), larder_entry_size(e)),
			    (uint64_t)outcome};
			if (write(res[1], h, sizeof h) != sizeof h)
				_exit(92);
			larder_entry_release(e);
			larder_close(d);
			_exit(0);
		}
	}
	close(gate[0]);
	close(res[1]);
	close(ev[1]);
	close(rel[0]);
	close(gate[1]); /* go */
	/* One loads and is held; every other one must say it waits. */
	int loads = 0, waits = 0;
	for (int i = 0; i < N; i++) {
		char c;
		ASSERT_EQ(read(ev[0], &c, 1), 1);
		loads += c == 'L';
		waits += c == 'W';
	}
	ASSERT_EQ(loads, 1);
	ASSERT_EQ(waits, N - 1);
	close(rel[1]); /* the load goes on */
	int filled = 0, waited = 0;
	uint64_t first = 0;
	for (int i = 0; i < N; i++) {
		uint64_t h[2];
		ASSERT_EQ(read(res[0], h, sizeof h), (ssize_t)sizeof h);
		if (i == 0)
			first = h[0];
		ASSERT(h[0] == first);
		filled += h[1] == LARDER_FILLED;
		waited += h[1] == LARDER_WAITED;
	}
	for (int i = 0; i < N; i++) {
		int st;
		ASSERT_EQ(waitpid(kids[i], &st, 0), kids[i]);
		ASSERT(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	}
	printf("    %d processes: %d filled, %d waited, %d hit\n", N, filled,
	       waited, N - filled - waited);
	ASSERT_EQ(filled, 1);
	ASSERT_EQ(waited, N - 1);
	/* Nothing more was said (a second load, a second wait). */
	char c;
	ASSERT_EQ(read(ev[0], &c, 1), 0);
	close(ev[0]);
	/* and what they all got is the query's result */
	db = open_store();
	larder_sql_opts o = LARDER_SQL_OPTS_INIT;
	o.table = "Items";
	struct res r = sql(db, path, q, &o);
	ASSERT_EQ(r.outcome, LARDER_HIT);
	ASSERT(fnv(r.data, r.len) == first);
	static const char head[] = "i,\"(select group_concat(v, '') from "
				   "items)\"\r\n1,ab\r\n2,ab\r\n";
	ASSERT_MEM_EQ(r.data, head, sizeof head - 1);
	ASSERT_EQ(count_entries(db), 1);
	res_free(&r);
	larder_close(db);
}

/* ---------------------------------------------------------------------- */
/* Memory                                                                  */

#define BIG_ROWS 2100000

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
 * counts in the RSS of the large-result test (SQLite frees as it steps);
 * a smaller one still catches a use soon after a free. */
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
	return "quarantine_size_mb=16";
}
#endif

/* A 200 MB result goes through a process whose peak RSS stays far below
 * it: rows are streamed, never gathered. Measured in a child (ru_maxrss
 * is a high-water mark); the store trusts local files here so that
 * verifying the mapped result afterwards does not page all of it in. */
TEST(large_result_streams_in_bounded_memory)
{
	const char *path = test_path("big.db");
	db_exec(path, "CREATE TABLE t(x)");
	int res[2];
	ASSERT_EQ(pipe(res), 0);
	pid_t kid = fork();
	ASSERT(kid >= 0);
	if (kid == 0) {
		larder *db = open_store_flags(LARDER_OPEN_TRUST_LOCAL);
		struct ttl_opts t;
		ttl_opts_init(&t, 3600);
		char q[256];
		snprintf(q, sizeof q,
			 "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i "
			 "+ 1 FROM c WHERE i < %d) SELECT i, printf('%%.90d', "
			 "i) AS pad FROM c",
			 BIG_ROWS);
		larder_entry *e;
		int outcome;
		int rc =
		    larder_sql(&e, &outcome, db, "default", path, q, &t.sql);
		if (rc) {
			fprintf(stderr, "%s\n", larder_errmsg(db));
			_exit(1);
		}
		struct rusage ru;
		getrusage(RUSAGE_SELF, &ru);
		uint64_t out[3] = {larder_entry_size(e),
				   (uint64_t)ru.ru_maxrss * 1024,
				   (uint64_t)outcome};
		if (write(res[1], out, sizeof out) != sizeof out)
			_exit(2);
		larder_entry_release(e);
		larder_close(db);
		_exit(0);
	}
	close(res[1]);
	uint64_t out[3];
	ASSERT_EQ(read(res[0], out, sizeof out), (ssize_t)sizeof out);
	int st;
	ASSERT_EQ(waitpid(kid, &st, 0), kid);
	ASSERT(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	printf("    %.1f MB result, peak RSS %.1f MB\n", out[0] / 1e6,
	       out[1] / 1e6);
	ASSERT_EQ(out[2], LARDER_FILLED);
	ASSERT(out[0] > 200000000);
#ifdef TEST_ASAN
	ASSERT(out[1] < out[0] / 3); /* shadow memory, the quarantine */
#else
	ASSERT(out[1] < out[0] / 8);
#endif
	/* the entry holds every row, in order */
	larder *db = open_store();
	struct ttl_opts t;
	ttl_opts_init(&t, 3600);
	larder_entry *e;
	int outcome;
	char q[256];
	snprintf(q, sizeof q,
		 "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 "
		 "FROM c WHERE i < %d) SELECT i, printf('%%.90d', i) AS pad "
		 "FROM c",
		 BIG_ROWS);
	ASSERT_RC(db, larder_sql(&e, &outcome, db, "default", path, q, &t.sql),
		  0);
	ASSERT_EQ(outcome, LARDER_HIT);
	const char *p = larder_entry_data(e), *end = p + larder_entry_size(e);
	ASSERT(strncmp(p, "i,pad\r\n", 7) == 0);
	p += 7;
	char line[128];
	for (long i = 1; i <= BIG_ROWS; i++) {
		int n = snprintf(line, sizeof line, "%ld,%.90ld\r\n", i, i);
		if (end - p < n || memcmp(p, line, (size_t)n) != 0)
			test_fail(__FILE__, __LINE__, "row %ld differs", i);
		p += n;
	}
	ASSERT(p == end);
	larder_entry_release(e);
	larder_close(db);
}

/* ---------------------------------------------------------------------- */
/* The snapshot's version is the one published                            */

/* test_hook(): called from the version query; on its first call (inside
 * the lookup's snapshot) a second connection commits a row, so that the
 * load's snapshot sees another version than the lookup did. */
static const char *hook_db;
static int hook_calls;

static void hook_fn(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
	(void)argc, (void)argv;
	if (hook_calls++ == 0) {
		sqlite3 *h;
		char *err = NULL;
		if (sqlite3_open(hook_db, &h) != SQLITE_OK ||
		    sqlite3_exec(h, "INSERT INTO t VALUES('late')", NULL, NULL,
				 &err) != SQLITE_OK) {
			sqlite3_result_error(ctx, err ? err : "open", -1);
			sqlite3_close(h);
			return;
		}
		sqlite3_close(h);
	}
	sqlite3_result_int(ctx, 0);
}

static int hook_init(sqlite3 *h, const char **err,
		     const struct sqlite3_api_routines *api)
{
	(void)err, (void)api;
	return sqlite3_create_function_v2(h, "test_hook", 0, SQLITE_UTF8, NULL,
					  hook_fn, NULL, NULL, NULL);
}

TEST(load_is_published_under_its_own_snapshot)
{
	const char *path = test_path("late.db");
	db_exec(path, "PRAGMA journal_mode = WAL; CREATE TABLE t(v);"
		      "INSERT INTO t VALUES('early')");
	hook_db = path;
	ASSERT_EQ(sqlite3_auto_extension((void (*)(void))hook_init), SQLITE_OK);
	larder *db = open_store();
	larder_sql_opts o = LARDER_SQL_OPTS_INIT;
	o.version_query = "SELECT count(*), test_hook() FROM t";
	const char *q = "SELECT group_concat(v, ' ') AS v FROM t";
	struct res r = sql(db, path, q, &o);
	ASSERT_OK(db, r);
	/* the lookup saw one row; the load, in its own snapshot, two — and
	 * its data went under its own version, with no second load */
	ASSERT_EQ(hook_calls, 2);
	ASSERT_EQ(r.outcome, LARDER_FILLED);
	ASSERT_STR_EQ(r.ver, "1:2 1:0\n");
	ASSERT_STR_EQ(r.data, "v\r\nearly late\r\n");
	ASSERT_EQ(larder_counter(db, LARDER_CTR_FILLS), 1);
	ASSERT_EQ(larder_counter(db, LARDER_CTR_SOURCE_CHANGED), 0);
	res_free(&r);
	r = sql(db, path, q, &o);
	ASSERT_EQ(r.outcome, LARDER_HIT);
	ASSERT_STR_EQ(r.data, "v\r\nearly late\r\n");
	res_free(&r);
	sqlite3_reset_auto_extension();
	larder_close(db);
}

/* A hit reads the version only: the data query does not run (here it
 * could not: its table is gone). */
TEST(hit_does_not_run_the_data_query)
{
	larder *db = open_store();
	const char *path = test_path("h.db");
	db_exec(path, "CREATE TABLE t(v); INSERT INTO t VALUES(1)");
	larder_sql_opts o = LARDER_SQL_OPTS_INIT;
	o.version_query = "SELECT 'fixed'";
	struct res r = sql(db, path, "SELECT v FROM t", &o);
	ASSERT_EQ(r.outcome, LARDER_FILLED);
	res_free(&r);
	db_exec(path, "DROP TABLE t");
	r = sql(db, path, "SELECT v FROM t", &o);
	ASSERT_OK(db, r);
	ASSERT_EQ(r.outcome, LARDER_HIT);
	ASSERT_STR_EQ(r.data, "v\r\n1\r\n");
	res_free(&r);
	ASSERT_EQ(larder_counter(db, LARDER_CTR_FILLS), 1);
	larder_close(db);
}

/* Many threads on one handle, each call its own connection. */
struct thr {
	larder *db;
	const char *path;
	int id;
	int ok;
};

static void *thr_main(void *p)
{
	struct thr *t = p;
	for (int i = 0; i < 20; i++) {
		char q[64], want[64];
		snprintf(q, sizeof q, "SELECT %d + count(*) AS n FROM t",
			 t->id * 100 + i % 5);
		snprintf(want, sizeof want, "n\r\n%d\r\n",
			 t->id * 100 + i % 5 + 1);
		larder_sql_opts o = LARDER_SQL_OPTS_INIT;
		o.version_query = "SELECT count(*) FROM t";
		struct res r = sql(t->db, t->path, q, &o);
		if (r.rc != 0 || strcmp(r.data, want) != 0) {
			res_free(&r);
			return NULL;
		}
		res_free(&r);
	}
	t->ok = 1;
	return NULL;
}

TEST(threads_share_a_handle)
{
	enum { N = 4 };
	larder *db = open_store();
	const char *path = test_path("th.db");
	db_exec(path, "CREATE TABLE t(v); INSERT INTO t VALUES(1)");
	pthread_t th[N];
	struct thr t[N];
	for (int i = 0; i < N; i++) {
		t[i] = (struct thr){db, path, i, 0};
		ASSERT_EQ(pthread_create(&th[i], NULL, thr_main, &t[i]), 0);
	}
	for (int i = 0; i < N; i++) {
		pthread_join(th[i], NULL);
		ASSERT_EQ(t[i].ok, 1);
	}
	ASSERT_EQ(count_entries(db), N * 5);
	larder_close(db);
}

/* on_progress: told per chunk written and at the end, counts only
 * growing, the last one the whole result; never on a hit. */
struct prog_log {
	int n;
	uint64_t rows, bytes;
	int went_back;
};

static void log_progress(uint64_t rows, uint64_t bytes, void *payload)
{
	struct prog_log *l = payload;
	if (rows < l->rows || bytes < l->bytes)
		l->went_back = 1;
	l->rows = rows;
	l->bytes = bytes;
	l->n++;
}

TEST(sqlite_on_progress_counts_rows_and_bytes_of_the_load)
{
	larder *db = open_store();
	const char *path = test_path("progress.db");
	db_exec(path, "CREATE TABLE t(x)");
	larder_sql_opts o = LARDER_SQL_OPTS_INIT;
	struct prog_log l = {0};
	o.version_query = "SELECT 1";
	o.on_progress = log_progress;
	o.on_progress_payload = &l;
	const char *q = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT "
			"x + 1 FROM c WHERE x < 30000) SELECT x, "
			"printf('%.20c', 'a') FROM c";
	struct res r = sql(db, path, q, &o);
	ASSERT_OK(db, r);
	ASSERT_EQ(r.outcome, LARDER_FILLED);
	/* ~800 KB in 64 KiB chunks, and once at the end */
	ASSERT(l.n >= (int)(r.len / (64 << 10)) + 1);
	ASSERT_EQ(l.went_back, 0);
	ASSERT_EQ(l.rows, 30000);
	ASSERT_EQ(l.bytes, r.len);
	res_free(&r);
	int n = l.n;
	r = sql(db, path, q, &o);
	ASSERT_EQ(r.outcome, LARDER_HIT);
	ASSERT_EQ(l.n, n);
	res_free(&r);
	/* A version 1 struct (before on_progress) is still taken. */
	o.version = 1;
	r = sql(db, path, q, &o);
	ASSERT_OK(db, r);
	res_free(&r);
	larder_close(db);
}
