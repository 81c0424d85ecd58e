/*
 * sql.c — SQL sources (docs/sql.md): the query normalized into
 * the key, the version (a tracked table's change counter, a version
 * query's whole result, or nothing and a TTL), the rows formatted as CSV,
 * TSV or JSON Lines, and the fill that reads version and data in one
 * snapshot. The databases themselves live behind struct ldr_sql_ops
 * (source_sqlite.c, source_pg.c).
 */
#include "sql.h"

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "err.h"
#include "fsutil.h"
#include "hash.h"
#include "buf.h"
#include "config.h"
#include "store.h"

/* ---------------------------------------------------------------------- */
/* Normalizing the query                                                   */

static int is_space(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' ||
	       c == '\v';
}

/* A byte of an unquoted word: keyword, identifier or number. Bytes from
 * 0x80 up belong to identifiers in both SQLite and PostgreSQL. */
static int is_word(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || c == '_' || c >= 0x80;
}

static int is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

struct norm {
	char *out;
	size_t o;
	int gap;	/* whitespace or a comment since the last token */
	int gap_nl;	/* ... with a newline in it */
	int gap_block;	/* ... with a block comment in it */
	int last_quote; /* the last token was a '...' literal */
	int semis;	/* ';' tokens at the end so far */
};

/* Emit a token, after one separator if there was a gap. A newline
 * between two PostgreSQL string literals joins them ('a'\n'b' is 'ab',
 * 'a' 'b' a syntax error), so there it stays a newline; a block comment
 * in the gap stops the join, so then it does not. */
static void emit(struct norm *n, const char *p, size_t len, int lower)
{
	if (n->gap && n->o > 0)
		n->out[n->o++] =
		    n->gap_nl && !n->gap_block && n->last_quote && p[0] == '\''
			? '\n'
			: ' ';
	n->gap = n->gap_nl = n->gap_block = n->semis = 0;
	for (size_t i = 0; i < len; i++) {
		char c = p[i];
		if (lower && c >= 'A' && c <= 'Z')
			c = (char)(c - 'A' + 'a');
		n->out[n->o++] = c;
	}
	n->last_quote = 0;
}

/* The end (one past) of a literal or identifier quoted with q, where a
 * doubled q stands for itself; 0 if unterminated. */
static size_t quoted_end(const char *s, size_t i, size_t len, char q)
{
	for (size_t j = i + 1; j < len; j++) {
		if (s[j] != q)
			continue;
		if (s[j + 1] != q)
			return j + 1;
		j++;
	}
	return 0;
}

/* PostgreSQL E'...': backslash escapes, and '' too. s[i] is the quote. */
static size_t estring_end(const char *s, size_t i, size_t len)
{
	for (size_t j = i + 1; j < len; j++) {
		if (s[j] == '\\') {
			j++;
		} else if (s[j] == '\'') {
			if (s[j + 1] != '\'')
				return j + 1;
			j++;
		}
	}
	return 0;
}

/* The end of a block comment starting at s[i] ("/" "*"): PostgreSQL nests
 * them, SQLite does not. 0 if unterminated. */
static size_t comment_end(const char *s, size_t i, size_t len, int dialect)
{
	int depth = 1;
	for (size_t j = i + 2; j + 1 < len; j++) {
		if (s[j] == '*' && s[j + 1] == '/') {
			if (--depth == 0)
				return j + 2;
			j++;
		} else if (dialect == LDR_SQL_PG && s[j] == '/' &&
			   s[j + 1] == '*') {
			depth++;
			j++;
		}
	}
	return 0;
}

/* PostgreSQL dollar quote at s[i] ('$'): the end of $tag$...$tag$, 0 if
 * s[i] starts none or it is unterminated; *is_quote says which. */
static size_t dollar_end(const char *s, size_t i, size_t len, int *is_quote)
{
	size_t j = i + 1;
	*is_quote = 0;
	if (s[j] != '$') {
		unsigned char c = (unsigned char)s[j];
		if (!is_word(c) || is_digit(c))
			return 0;
		while (j < len && is_word((unsigned char)s[j]))
			j++;
		if (s[j] != '$')
			return 0;
	}
	*is_quote = 1;
	size_t tlen = j + 1 - i; /* "$tag$" */
	const char *end = memmem(s + j + 1, len - (j + 1), s + i, tlen);
	return end ? (size_t)(end - s) + tlen : 0;
}

/* SQLite parameter at s[i] (':', '@', '#' or '$' and a name): its end.
 * $name may go on with "::name" parts and a "(...)" suffix (the Tcl
 * binding's syntax, which SQLite's tokenizer accepts). */
static size_t sqlite_param_end(const char *s, size_t i, size_t len)
{
	size_t j = i + 1;
	while (j < len && (is_word((unsigned char)s[j]) || s[j] == '$'))
		j++;
	if (s[i] != '$')
		return j;
	while (s[j] == ':' && s[j + 1] == ':' &&
	       is_word((unsigned char)s[j + 2])) {
		j += 2;
		while (j < len && (is_word((unsigned char)s[j]) || s[j] == '$'))
			j++;
	}
	if (s[j] == '(') {
		while (j < len && s[j] != ')' && !is_space((unsigned char)s[j]))
			j++;
		if (s[j] == ')')
			j++;
	}
	return j;
}

char *ldr_sql_normalize(const char *sql, int dialect)
{
	size_t len = strlen(sql);
	struct norm n = {0};
	n.out = malloc(len + 1);
	if (!n.out)
		return NULL;
	const char *s = sql;
	size_t i = 0;
	while (i < len) {
		unsigned char c = (unsigned char)s[i];
		size_t j = 0;
		int lower = 0, quote = 0;
		if (is_space(c)) {
			n.gap = 1;
			if (c == '\n')
				n.gap_nl = 1;
			i++;
			continue;
		}
		if (c == '-' && s[i + 1] == '-') {
			/* To the end of the line; the newline is a space. */
			const char *nl = memchr(s + i, '\n', len - i);
			i = nl ? (size_t)(nl - s) : len;
			n.gap = 1;
			continue;
		}
		if (c == '/' && s[i + 1] == '*') {
			j = comment_end(s, i, len, dialect);
			if (j) {
				n.gap = n.gap_block = 1;
				i = j;
				continue;
			}
		} else if (c == '\'' || c == '"') {
			j = quoted_end(s, i, len, (char)c);
			quote = c == '\'';
		} else if (dialect == LDR_SQL_SQLITE && c == '`') {
			j = quoted_end(s, i, len, '`');
		} else if (dialect == LDR_SQL_SQLITE && c == '[') {
			const char *e = memchr(s + i, ']', len - i);
			j = e ? (size_t)(e - s) + 1 : 0;
		} else if (dialect == LDR_SQL_SQLITE &&
			   (c == '$' || c == '@' || c == ':' || c == '#') &&
			   is_word((unsigned char)s[i + 1])) {
			j = sqlite_param_end(s, i, len);
		} else if (dialect == LDR_SQL_PG && c == '$') {
			if (is_digit((unsigned char)s[i + 1])) {
				/* $N, a parameter */
				j = i + 1;
				while (is_digit((unsigned char)s[j]))
					j++;
			} else {
				int is_quote;
				j = dollar_end(s, i, len, &is_quote);
				if (!j && !is_quote)
					j = i + 1; /* a lone '$' */
			}
		} else if (is_word(c)) {
			/* A word; '$' goes on one that does not start with a
			 * digit (a$b is an identifier in both). */
			j = i + 1;
			while (j < len && (is_word((unsigned char)s[j]) ||
					   (s[j] == '$' && !is_digit(c))))
				j++;
			lower = 1;
			if (dialect == LDR_SQL_PG && j == i + 1 &&
			    (c == 'e' || c == 'E') && s[j] == '\'') {
				size_t e = estring_end(s, j, len);
				if (e) {
					emit(&n, "e", 1, 0);
					emit(&n, s + j, e - j, 0);
					n.last_quote = 1;
					i = e;
					continue;
				}
				j = 0; /* unterminated: the rest as it is */
			}
		} else {
			/* Punctuation and operators, one byte at a time. */
			int semis = n.semis;
			emit(&n, s + i, 1, 0);
			if (c == ';')
				n.semis = semis + 1;
			i++;
			continue;
		}
		if (!j) {
			/* Unterminated: keep the rest as it is, so that no two
			 * different texts meet. */
			emit(&n, s + i, len - i, 0);
			break;
		}
		emit(&n, s + i, j - i, lower);
		n.last_quote = quote;
		i = j;
	}
	/* Trailing ';' are empty statements. */
	for (; n.semis > 0; n.semis--) {
		n.o--;
		if (n.o > 0 && n.out[n.o - 1] == ' ')
			n.o--;
	}
	n.out[n.o] = '\0';
	return n.out;
}

/* The "sqlite:" and PostgreSQL URI prefixes. */
static int explicit_sqlite(const char *uri)
{
	return strncmp(uri, "sqlite:", 7) == 0;
}

static int explicit_pg(const char *uri)
{
	return strncmp(uri, "postgresql://", 13) == 0 ||
	       strncmp(uri, "postgres://", 11) == 0;
}

/* A source this build lacks (CMake LARDER_WITH_POSTGRESQL or
 * LARDER_WITH_SQLITE off) is in the table all the same, so that its URIs
 * are recognised and refused with a reason rather than taken for the
 * other kind. Opening it is the only operation ever called. */
#if !defined(LARDER_WITH_POSTGRESQL) || !defined(LARDER_WITH_SQLITE)
static int absent_open(const char *what, struct ldr_sql_conn **out, larder *db)
{
	*out = NULL;
	return ldr_fail(db, LARDER_EINVAL, 0,
			"this larder was built without %s support", what);
}
#endif
#ifndef LARDER_WITH_POSTGRESQL
static int absent_pg(struct ldr_sql_conn **out, larder *db, const char *uri,
		     int write)
{
	(void)uri;
	(void)write;
	return absent_open("PostgreSQL", out, db);
}
const struct ldr_sql_ops ldr_sql_pg = {.name = "postgresql", .open = absent_pg};
int ldr_pg_conninfo_ok(const char *s)
{
	(void)s;
	return 0; /* nothing but "postgres(ql)://" says PostgreSQL */
}
#endif
#ifndef LARDER_WITH_SQLITE
static int absent_sqlite(struct ldr_sql_conn **out, larder *db, const char *uri,
			 int write)
{
	(void)uri;
	(void)write;
	return absent_open("SQLite", out, db);
}
const struct ldr_sql_ops ldr_sql_sqlite = {.name = "sqlite",
					   .open = absent_sqlite};
#endif

/*
 * Which database `uri` names (docs/sql.md#the-database): a "sqlite:" or
 * "postgresql://"/"postgres://" prefix says it; else a file that exists
 * is SQLite ("/data/a=b.db" is a path, '=' and all); else a string libpq
 * parses as a connection string ("host=db1 dbname=sales") is PostgreSQL;
 * anything else is an SQLite path (which then does not exist).
 */
const struct ldr_sql_ops *ldr_sql_source(const char *uri, int *dialect)
{
	struct stat st;
	int pg;

	if (explicit_pg(uri))
		pg = 1;
	else if (explicit_sqlite(uri) || stat(uri, &st) == 0)
		pg = 0;
	else
		pg = strchr(uri, '=') && ldr_pg_conninfo_ok(uri);
	*dialect = pg ? LDR_SQL_PG : LDR_SQL_SQLITE;
	return pg ? &ldr_sql_pg : &ldr_sql_sqlite;
}

/* Connect. An SQLite path that does not exist but looks like a
 * connection string (a '=' in it) says that libpq did not take it for
 * one either: a mistyped keyword would otherwise read as a missing
 * file. */
static int source_open(const struct ldr_sql_ops *ops, struct ldr_sql_conn **out,
		       larder *db, const char *uri, int write)
{
	int rc = ops->open(out, db, uri, write);

	if (rc != LARDER_ENOTFOUND || ops != &ldr_sql_sqlite ||
	    explicit_sqlite(uri) || !strchr(uri, '='))
		return rc;
	/* The string may be a connection string with a password in it. */
	if (strstr(uri, "password"))
		return ldr_fail(db, LARDER_ENOTFOUND, ENOENT,
				"no SQLite database at that path (not shown: "
				"it may hold a password), and libpq does not "
				"take it for a PostgreSQL connection string; "
				"'sqlite:PATH' or 'postgresql://...' say "
				"which");
	return ldr_fail(db, LARDER_ENOTFOUND, ENOENT,
			"no SQLite database at '%s', and libpq does not take "
			"it for a PostgreSQL connection string; 'sqlite:PATH' "
			"or 'postgresql://...' say which",
			uri);
}

/* ---------------------------------------------------------------------- */
/* Formatting rows                                                         */

int ldr_sql_out_flush(struct ldr_sql_out *o)
{
	if (!o->used)
		return 0;
	size_t n = o->used;
	o->used = 0;
	return o->write(o->payload, o->buf, n);
}

static int out_put(struct ldr_sql_out *o, const void *p, size_t n)
{
	const char *s = p;
	while (n) {
		if (o->used == LDR_SQL_CHUNK) {
			int rc = ldr_sql_out_flush(o);
			if (rc)
				return rc;
		}
		size_t k = LDR_SQL_CHUNK - o->used;
		if (k > n)
			k = n;
		memcpy(o->buf + o->used, s, k);
		o->used += k;
		s += k;
		n -= k;
	}
	return 0;
}

static int out_str(struct ldr_sql_out *o, const char *s)
{
	return out_put(o, s, strlen(s));
}

/* "\x" and the bytes in lowercase hex (PostgreSQL's bytea text form). */
static int out_hex(struct ldr_sql_out *o, const char *prefix,
		   const unsigned char *p, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	char tmp[512];
	int rc = out_str(o, prefix);
	while (rc == 0 && n) {
		size_t k = n < sizeof tmp / 2 ? n : sizeof tmp / 2;
		for (size_t i = 0; i < k; i++) {
			tmp[2 * i] = hex[p[i] >> 4];
			tmp[2 * i + 1] = hex[p[i] & 15];
		}
		rc = out_put(o, tmp, 2 * k);
		p += k;
		n -= k;
	}
	return rc;
}

/* CSV (RFC 4180): a field is quoted when it holds a comma, a quote, CR or
 * LF, when it is empty (so that "" is an empty string and nothing at all
 * is NULL), or when it starts or ends with a space or a tab (which some
 * readers trim). Quotes inside are doubled. */
static int csv_field(struct ldr_sql_out *o, const char *p, size_t n)
{
	int q = n == 0 || p[0] == ' ' || p[0] == '\t' || p[n - 1] == ' ' ||
		p[n - 1] == '\t';
	for (size_t i = 0; !q && i < n; i++)
		q = p[i] == ',' || p[i] == '"' || p[i] == '\r' || p[i] == '\n';
	if (!q)
		return out_put(o, p, n);
	int rc = out_put(o, "\"", 1);
	size_t run = 0;
	for (size_t i = 0; rc == 0 && i < n; i++) {
		if (p[i] != '"')
			continue;
		rc = out_put(o, p + run, i + 1 - run); /* up to the quote */
		run = i;			       /* the quote again */
	}
	if (rc == 0)
		rc = out_put(o, p + run, n - run);
	return rc ? rc : out_put(o, "\"", 1);
}

/* PostgreSQL COPY text format: backslash, and the control characters it
 * names (\b \f \n \r \t \v), are escaped with a backslash. */
static int tsv_field(struct ldr_sql_out *o, const char *p, size_t n)
{
	size_t run = 0;
	int rc = 0;
	for (size_t i = 0; rc == 0 && i < n; i++) {
		char e;
		switch (p[i]) {
		case '\\':
			e = '\\';
			break;
		case '\b':
			e = 'b';
			break;
		case '\f':
			e = 'f';
			break;
		case '\n':
			e = 'n';
			break;
		case '\r':
			e = 'r';
			break;
		case '\t':
			e = 't';
			break;
		case '\v':
			e = 'v';
			break;
		default:
			continue;
		}
		char esc[2] = {'\\', e};
		rc = out_put(o, p + run, i - run);
		if (rc == 0)
			rc = out_put(o, esc, 2);
		run = i + 1;
	}
	return rc ? rc : out_put(o, p + run, n - run);
}

/* Length of the valid UTF-8 sequence at p (1..4), 0 if the bytes there
 * are not one (overlong, surrogate, past U+10FFFF, cut short). */
static size_t utf8_len(const unsigned char *p, size_t n, uint32_t *cp)
{
	uint32_t c, min;
	size_t len;
	if (p[0] < 0x80) {
		*cp = p[0];
		return 1;
	} else if ((p[0] & 0xe0) == 0xc0) {
		len = 2, c = p[0] & 0x1f, min = 0x80;
	} else if ((p[0] & 0xf0) == 0xe0) {
		len = 3, c = p[0] & 0x0f, min = 0x800;
	} else if ((p[0] & 0xf8) == 0xf0) {
		len = 4, c = p[0] & 0x07, min = 0x10000;
	} else {
		return 0;
	}
	if (n < len)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		c = c << 6 | (p[i] & 0x3f);
	}
	if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
		return 0;
	*cp = c;
	return len;
}

typedef int (*put_fn)(void *ctx, const void *p, size_t n);

/* A JSON string (RFC 8259): '"', '\' and control characters escaped,
 * U+2028 and U+2029 too (line breaks to some readers of lines). A byte
 * that is not part of valid UTF-8 becomes the lone surrogate \udcXX
 * (XX = the byte: Python's "surrogateescape"), so that no byte is lost:
 * s.encode('utf-8', 'surrogateescape') gives the exact bytes back. */
static int json_string(put_fn put, void *ctx, const char *p, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *s = (const unsigned char *)p;
	size_t run = 0, i = 0;
	int rc = put(ctx, "\"", 1);
	while (rc == 0 && i < n) {
		uint32_t cp = 0;
		size_t k = utf8_len(s + i, n - i, &cp);
		char esc[8];
		size_t elen = 0;
		if (k == 0) {
			memcpy(esc, "\\udc", 4);
			esc[4] = hex[s[i] >> 4];
			esc[5] = hex[s[i] & 15];
			elen = 6;
			k = 1;
		} else if (cp == '"' || cp == '\\') {
			esc[0] = '\\', esc[1] = (char)cp, elen = 2;
		} else if (cp < 0x20) {
			const char *short_esc = cp == '\n'   ? "\\n"
						: cp == '\r' ? "\\r"
						: cp == '\t' ? "\\t"
						: cp == '\b' ? "\\b"
						: cp == '\f' ? "\\f"
							     : NULL;
			if (short_esc) {
				memcpy(esc, short_esc, 2);
				elen = 2;
			} else {
				memcpy(esc, "\\u00", 4);
				esc[4] = hex[cp >> 4];
				esc[5] = hex[cp & 15];
				elen = 6;
			}
		} else if (cp == 0x2028 || cp == 0x2029) {
			memcpy(esc, cp == 0x2028 ? "\\u2028" : "\\u2029", 6);
			elen = 6;
		}
		if (elen) {
			rc = put(ctx, s + run, i - run);
			if (rc == 0)
				rc = put(ctx, esc, elen);
			run = i + k;
		}
		i += k;
	}
	if (rc == 0)
		rc = put(ctx, s + run, n - run);
	return rc ? rc : put(ctx, "\"", 1);
}

/* A JSON number exactly as RFC 8259 spells one. */
static int json_number_ok(const char *p, size_t n)
{
	size_t i = 0;
	if (i < n && p[i] == '-')
		i++;
	if (i >= n || !is_digit((unsigned char)p[i]))
		return 0;
	if (p[i] == '0')
		i++;
	else
		while (i < n && is_digit((unsigned char)p[i]))
			i++;
	if (i < n && p[i] == '.') {
		if (++i >= n || !is_digit((unsigned char)p[i]))
			return 0;
		while (i < n && is_digit((unsigned char)p[i]))
			i++;
	}
	if (i < n && (p[i] == 'e' || p[i] == 'E')) {
		i++;
		if (i < n && (p[i] == '+' || p[i] == '-'))
			i++;
		if (i >= n || !is_digit((unsigned char)p[i]))
			return 0;
		while (i < n && is_digit((unsigned char)p[i]))
			i++;
	}
	return i == n;
}

static int put_out(void *ctx, const void *p, size_t n)
{
	return out_put(ctx, p, n);
}

/* A JSON value: embedded as it is, but a raw CR or LF (only ever
 * insignificant whitespace in valid JSON: PostgreSQL's json keeps the
 * input's) becomes a space, to keep one row on one line. */
static int json_raw(struct ldr_sql_out *o, const char *p, size_t n)
{
	size_t run = 0;
	int rc = 0;
	for (size_t i = 0; rc == 0 && i < n; i++) {
		if (p[i] != '\n' && p[i] != '\r')
			continue;
		rc = out_put(o, p + run, i - run);
		if (rc == 0)
			rc = out_put(o, " ", 1);
		run = i + 1;
	}
	return rc ? rc : out_put(o, p + run, n - run);
}

static int json_value(struct ldr_sql_out *o, const char *p, size_t n, int kind)
{
	switch (kind) {
	case LDR_SQL_NULL:
		return out_put(o, "null", 4);
	case LDR_SQL_INT:
	case LDR_SQL_REAL:
	case LDR_SQL_NUMERIC:
		/* NaN, Infinity: no JSON number; a string keeps them. */
		if (json_number_ok(p, n))
			return out_put(o, p, n);
		break;
	case LDR_SQL_BOOL:
		if (n == 1 && p[0] == 't')
			return out_put(o, "true", 4);
		if (n == 1 && p[0] == 'f')
			return out_put(o, "false", 5);
		break;
	case LDR_SQL_JSON:
		if (n)
			return json_raw(o, p, n);
		break;
	case LDR_SQL_BLOB: {
		int rc = out_put(o, "\"", 1);
		if (rc == 0)
			rc = out_hex(o, "\\\\x", (const unsigned char *)p, n);
		return rc ? rc : out_put(o, "\"", 1);
	}
	}
	return json_string(put_out, o, p, n);
}

int ldr_sql_out_init(struct ldr_sql_out *o, larder *db, int format,
		     unsigned flags,
		     int (*write)(void *payload, const void *buf, size_t len),
		     void *payload)
{
	memset(o, 0, sizeof *o);
	o->db = db;
	o->format = format;
	o->flags = flags;
	o->write = write;
	o->payload = payload;
	o->buf = malloc(LDR_SQL_CHUNK);
	if (!o->buf)
		return ldr_fail(db, LARDER_ENOMEM, ENOMEM, "out of memory");
	return 0;
}

static void free_keys(struct ldr_sql_out *o)
{
	for (size_t i = 0; o->keys && i < o->ncol; i++)
		free(o->keys[i]);
	free(o->keys);
	free(o->key_len);
	o->keys = NULL;
	o->key_len = NULL;
	o->ncol = 0;
}

void ldr_sql_out_free(struct ldr_sql_out *o)
{
	free_keys(o);
	free(o->buf);
	o->buf = NULL;
}

/* A sink's put into a growable byte string (buf.h). */
static int bytes_put(void *ctx, const void *p, size_t n)
{
	return ldr_buf_add(ctx, p, n) ? LARDER_ENOMEM : 0;
}

static const char *const row_end[] = {"\r\n", "\n", "\n"};

int ldr_sql_out_columns(void *payload, size_t ncol, const char *const *names)
{
	struct ldr_sql_out *o = payload;
	int rc = 0;
	free_keys(o);
	if (o->format == LARDER_SQL_JSONL) {
		/* Each row repeats the names: escape them once. */
		o->keys = calloc(ncol ? ncol : 1, sizeof *o->keys);
		o->key_len = calloc(ncol ? ncol : 1, sizeof *o->key_len);
		if (!o->keys || !o->key_len) {
			free_keys(o);
			return ldr_fail(o->db, LARDER_ENOMEM, ENOMEM,
					"out of memory");
		}
		o->ncol = ncol;
		for (size_t i = 0; i < ncol; i++) {
			struct ldr_buf b = {0};
			json_string(bytes_put, &b, names[i], strlen(names[i]));
			bytes_put(&b, ":", 1);
			if (b.oom) {
				free(b.p);
				return ldr_fail(o->db, LARDER_ENOMEM, ENOMEM,
						"out of memory");
			}
			o->keys[i] = b.p;
			o->key_len[i] = b.len;
		}
		return 0;
	}
	if (o->flags & LARDER_SQL_NO_HEADER)
		return 0;
	for (size_t i = 0; rc == 0 && i < ncol; i++) {
		const char *sep = o->format == LARDER_SQL_CSV ? "," : "\t";
		if (i)
			rc = out_put(o, sep, 1);
		if (rc == 0)
			rc = o->format == LARDER_SQL_CSV
				 ? csv_field(o, names[i], strlen(names[i]))
				 : tsv_field(o, names[i], strlen(names[i]));
	}
	return rc ? rc : out_str(o, row_end[o->format]);
}

int ldr_sql_out_row(void *payload, size_t ncol, const char *const *val,
		    const size_t *len, const int *kind)
{
	struct ldr_sql_out *o = payload;
	int rc = 0;
	if (o->format == LARDER_SQL_JSONL) {
		rc = out_put(o, "{", 1);
		for (size_t i = 0; rc == 0 && i < ncol; i++) {
			if (i)
				rc = out_put(o, ",", 1);
			if (rc == 0 && i < o->ncol)
				rc = out_put(o, o->keys[i], o->key_len[i]);
			if (rc == 0)
				rc = json_value(o, val[i], len[i], kind[i]);
		}
		return rc ? rc : out_put(o, "}\n", 2);
	}
	int csv = o->format == LARDER_SQL_CSV;
	for (size_t i = 0; rc == 0 && i < ncol; i++) {
		if (i)
			rc = out_put(o, csv ? "," : "\t", 1);
		if (rc)
			break;
		if (kind[i] == LDR_SQL_NULL)
			rc = csv ? 0 : out_put(o, "\\N", 2);
		else if (kind[i] == LDR_SQL_BLOB)
			/* TSV: the backslash of \x is escaped, as COPY does */
			rc = out_hex(o, csv ? "\\x" : "\\\\x",
				     (const unsigned char *)val[i], len[i]);
		else
			rc = csv ? csv_field(o, val[i], len[i])
				 : tsv_field(o, val[i], len[i]);
	}
	return rc ? rc : out_str(o, row_end[o->format]);
}

/* ---------------------------------------------------------------------- */
/* Versions                                                                */

/* A version query's result up to this size is the version as it is
 * (readable in `larder inspect`); a longer one is hashed. */
#define VERSION_RAW_MAX 1024

/* The version query's result, serialized so that no two results frame
 * alike: per row, its values separated by ' ' and a '\n' after the last;
 * a value is "N" for NULL, else its length in decimal, ':' and its
 * bytes. Past VERSION_RAW_MAX bytes the same stream goes into XXH3-128
 * and the version becomes "xxh3:" and 32 hex digits. */
struct vbuf {
	larder *db;
	struct ldr_buf b;
	struct ldr_hasher *st; /* hashing */
	int rc;
};

static int vbuf_oom(struct vbuf *v)
{
	return v->rc = ldr_fail(v->db, LARDER_ENOMEM, ENOMEM, "out of memory");
}

static int vbuf_put(struct vbuf *v, const void *p, size_t n)
{
	if (v->rc)
		return v->rc;
	if (!v->st && v->b.len + n > VERSION_RAW_MAX) {
		v->st = ldr_hasher_new();
		if (!v->st)
			return vbuf_oom(v);
		ldr_hasher_reset(v->st);
		ldr_hasher_update(v->st, v->b.p ? v->b.p : "", v->b.len);
		v->b.len = 0;
	}
	if (v->st) {
		ldr_hasher_update(v->st, p, n);
		return 0;
	}
	return bytes_put(&v->b, p, n) ? vbuf_oom(v) : 0;
}

static int vbuf_columns(void *payload, size_t ncol, const char *const *names)
{
	(void)payload, (void)ncol, (void)names;
	return 0;
}

static int vbuf_row(void *payload, size_t ncol, const char *const *val,
		    const size_t *len, const int *kind)
{
	struct vbuf *v = payload;
	for (size_t i = 0; i < ncol; i++) {
		char head[32];
		int h = kind[i] == LDR_SQL_NULL
			    ? snprintf(head, sizeof head, "%sN", i ? " " : "")
			    : snprintf(head, sizeof head,
				       "%s%zu:", i ? " " : "", len[i]);
		vbuf_put(v, head, (size_t)h);
		if (kind[i] != LDR_SQL_NULL)
			vbuf_put(v, val[i], len[i]);
	}
	vbuf_put(v, "\n", 1);
	return v->rc;
}

/* Finish: v->b holds the version (NUL-terminated). */
static int vbuf_finish(struct vbuf *v)
{
	if (v->rc)
		return v->rc;
	if (v->st) {
		uint8_t h[16];
		char hex[33];
		ldr_hasher_digest(v->st, h);
		ldr_hex(h, 16, hex);
		v->b.len = 0;
		bytes_put(&v->b, "xxh3:", 5);
		bytes_put(&v->b, hex, 32);
	} else {
		bytes_put(&v->b, "", 0);
	}
	return v->b.oom ? vbuf_oom(v) : 0;
}

static void vbuf_free(struct vbuf *v)
{
	free(v->b.p);
	if (v->st)
		ldr_hasher_free(v->st);
	memset(v, 0, sizeof *v);
}

/* ---------------------------------------------------------------------- */
/* The fill                                                                */

struct sql_call {
	larder *db;
	const struct ldr_sql_ops *ops;
	struct ldr_sql_conn *conn;
	char *query;  /* normalized */
	char *vquery; /* normalized, or NULL */
	const char *table;
	const char *const *params;
	size_t nparams;
	int vq_params; /* the version query takes the parameters */
	int format;
	unsigned flags;
	larder_sql_progress_fn on_progress; /* NULL: nobody to tell */
	void *progress_payload;
	uint64_t rows, bytes; /* of the load under way */
	larder_fill *fill;    /* the load's, for fill_write */
};

/* The version in the current snapshot, into v (finished). */
static int version_now(struct sql_call *x, struct vbuf *v)
{
	int rc = 0;
	v->db = x->db;
	if (x->table) {
		char buf[256];
		rc = x->ops->table_version(x->conn, x->table, buf, sizeof buf);
		if (rc == 0 && bytes_put(&v->b, buf, strlen(buf)))
			rc = vbuf_oom(v);
	} else if (x->vquery) {
		const struct ldr_sql_sink sink = {vbuf_columns, vbuf_row, v};
		rc = x->ops->query(x->conn, x->vquery,
				   x->vq_params ? x->params : NULL,
				   x->vq_params ? x->nparams : 0, &sink);
		if (rc == 0)
			rc = vbuf_finish(v);
	} else if (bytes_put(&v->b, "", 0)) {
		rc = vbuf_oom(v);
	}
	return rc;
}

/* The version for the lookup: a short snapshot of its own. It ends before
 * the lookup, so no read transaction is held while waiting for another
 * filler (in SQLite's rollback-journal mode one would block writers). */
static int sql_version(larder_fill *f, void *payload)
{
	struct sql_call *x = payload;
	if (!x->table && !x->vquery)
		return larder_fill_set_version(f, "", 0);
	struct vbuf v = {0};
	int rc = x->ops->begin(x->conn);
	if (rc == 0) {
		rc = version_now(x, &v);
		int erc = x->ops->end(x->conn);
		if (rc == 0)
			rc = erc;
	}
	if (rc == 0)
		rc = larder_fill_set_version(f, v.b.p, v.b.len);
	vbuf_free(&v);
	return ldr_own_rc(x->db, rc);
}

static int fill_write(void *payload, const void *buf, size_t len)
{
	struct sql_call *x = payload;
	int rc = larder_fill_write(x->fill, buf, len);
	x->bytes += len;
	if (rc == 0 && x->on_progress)
		x->on_progress(x->rows, x->bytes, x->progress_payload);
	return rc;
}

/* The formatter's row(), counting rows for the progress. */
static int count_row(void *payload, size_t ncol, const char *const *val,
		     const size_t *len, const int *kind)
{
	struct ldr_sql_out *o = payload;
	struct sql_call *x = o->payload;
	x->rows++;
	return ldr_sql_out_row(o, ncol, val, len, kind);
}

/* The load: version and rows in one snapshot, so the data is published
 * under exactly the version it was read at (the library then does not
 * compute the version again). */
static int sql_load(larder_fill *f, void *payload)
{
	struct sql_call *x = payload;
	struct vbuf v = {0};
	struct ldr_sql_out o;
	x->fill = f;
	x->rows = x->bytes = 0;
	int rc =
	    ldr_sql_out_init(&o, x->db, x->format, x->flags, fill_write, x);
	if (rc)
		return ldr_own_rc(x->db, rc);
	rc = x->ops->begin(x->conn);
	if (rc)
		goto out;
	rc = version_now(x, &v);
	if (rc == 0)
		rc = larder_fill_set_version(f, v.b.p, v.b.len);
	if (rc == 0) {
		const struct ldr_sql_sink sink = {ldr_sql_out_columns,
						  count_row, &o};
		rc = x->ops->query(x->conn, x->query, x->params, x->nparams,
				   &sink);
	}
	if (rc == 0)
		rc = ldr_sql_out_flush(&o);
	/* Told once at the end, also when the last flush had nothing. */
	if (rc == 0 && x->on_progress)
		x->on_progress(x->rows, x->bytes, x->progress_payload);
	int erc = x->ops->end(x->conn);
	if (rc == 0)
		rc = erc;
out:
	ldr_sql_out_free(&o);
	vbuf_free(&v);
	return ldr_own_rc(x->db, rc);
}

static const char *const format_names[] = {"csv", "tsv", "jsonl"};

static void rec(struct ldr_buf *b, char tag, const char *p, size_t n)
{
	char head[32];
	int h = snprintf(head, sizeof head, "%c%zu:", tag, n);
	bytes_put(b, head, (size_t)h);
	bytes_put(b, p, n);
	bytes_put(b, "\n", 1);
}

/* The key (docs/sql.md#keys): a format tag line, then records
 * "<tag><length>:<bytes>\n" — the database, the query, each parameter
 * ('n' for NULL), the format, the flags, the version's source. */
static int build_key(struct sql_call *x, const char *identity,
		     struct ldr_buf *k)
{
	bytes_put(k, "larder-sql/1\n", 13);
	rec(k, 'd', identity, strlen(identity));
	rec(k, 'q', x->query, strlen(x->query));
	for (size_t i = 0; i < x->nparams; i++) {
		if (x->params[i])
			rec(k, 'p', x->params[i], strlen(x->params[i]));
		else
			rec(k, 'n', "", 0);
	}
	const char *fmt = format_names[x->format];
	rec(k, 'f', fmt, strlen(fmt));
	if ((x->flags & LARDER_SQL_NO_HEADER) && x->format != LARDER_SQL_JSONL)
		rec(k, 'o', "no-header", 9);
	if (x->table)
		rec(k, 't', x->table, strlen(x->table));
	else if (x->vquery)
		rec(k, 'v', x->vquery, strlen(x->vquery));
	if (k->oom)
		return ldr_fail(x->db, LARDER_ENOMEM, ENOMEM, "out of memory");
	return 0;
}

static const char *const content_types[][2] = {
    {"text/csv; header=present", "text/csv; header=absent"},
    {"text/tab-separated-values", "text/tab-separated-values"},
    {"application/jsonl", "application/jsonl"},
};

static int check_opts(larder *db, const char *ns, const char *dburi,
		      const char *query, const larder_sql_opts *o)
{
	if (ldr_check_version(db, "larder_sql_opts", o->version, 1,
			      LARDER_SQL_OPTS_VERSION))
		return LARDER_EINVAL;
	/* Checked here, before its fields are copied (a version 1 struct
	 * is shorter). */
	if (o->fill &&
	    ldr_check_version(db, "larder_fill_opts", o->fill->version, 1,
			      LARDER_FILL_OPTS_VERSION))
		return LARDER_EINVAL;
	if (!dburi || !*dburi)
		return ldr_fail(db, LARDER_EINVAL, 0, "no database given");
	if (!query)
		return ldr_fail(db, LARDER_EINVAL, 0, "no query given");
	if (o->format < LARDER_SQL_CSV || o->format > LARDER_SQL_JSONL)
		return ldr_fail(db, LARDER_EINVAL, 0,
				"unknown output format %d", o->format);
	if (o->flags & ~LARDER_SQL_NO_HEADER)
		return ldr_fail(db, LARDER_EINVAL, 0, "unknown flags 0x%x",
				o->flags & ~LARDER_SQL_NO_HEADER);
	if (o->nparams && !o->params)
		return ldr_fail(db, LARDER_EINVAL, 0,
				"%zu parameters but no array of them",
				o->nparams);
	if (o->table && o->version_query)
		return ldr_fail(db, LARDER_EINVAL, 0,
				"give a version query or a table, not both");
	if (o->table && !*o->table)
		return ldr_fail(db, LARDER_EINVAL, 0, "empty table name");
	if (o->table || o->version_query)
		return 0;
	/* No version: only a TTL ever refreshes the entry. */
	const larder_put_opts *put = o->fill ? o->fill->put : NULL;
	int64_t ttl = put ? put->ttl_seconds : 0;
	if (ttl == 0)
		ttl = ldr_ns_ttl(db, ns);
	if (ttl <= 0)
		return ldr_fail(db, LARDER_EINVAL, 0,
				"a query without a version query or a table "
				"needs a TTL (nothing else would ever refresh "
				"its result): set one, or a default TTL for "
				"namespace '%s'",
				ns);
	return 0;
}

int larder_sql(larder_entry **out, int *outcome, larder *db, const char *ns,
	       const char *dburi, const char *query,
	       const larder_sql_opts *opts)
{
	static const larder_sql_opts defaults = LARDER_SQL_OPTS_INIT;
	const larder_sql_opts *o = opts ? opts : &defaults;
	struct sql_call x = {0};
	struct ldr_buf key = {0};
	char identity[4200];
	int dialect;
	*out = NULL;
	if (outcome)
		*outcome = 0;
	int rc = ldr_check_ns(db, ns);
	if (rc || (rc = check_opts(db, ns, dburi, query, o)))
		return rc;
	x.db = db;
	x.ops = ldr_sql_source(dburi, &dialect);
	if (!x.ops->open)
		return ldr_fail(db, LARDER_EINVAL, 0,
				"%s databases are not supported by this build",
				x.ops->name);
	x.table = o->table;
	x.params = o->params;
	x.nparams = o->nparams;
	x.format = o->format;
	x.flags = o->flags;
	if (o->version >= 2) {
		x.on_progress = o->on_progress;
		x.progress_payload = o->on_progress_payload;
	}
	x.query = ldr_sql_normalize(query, dialect);
	if (o->version_query)
		x.vquery = ldr_sql_normalize(o->version_query, dialect);
	if (!x.query || (o->version_query && !x.vquery)) {
		rc = ldr_fail(db, LARDER_ENOMEM, ENOMEM, "out of memory");
		goto out;
	}
	if (!*x.query || (x.vquery && !*x.vquery)) {
		rc = ldr_fail(db, LARDER_EINVAL, 0, "empty %squery",
			      *x.query ? "version " : "");
		goto out;
	}
	rc = source_open(x.ops, &x.conn, db, dburi, 0);
	if (rc == 0)
		rc = x.ops->identity(x.conn, identity, sizeof identity);
	if (rc == 0 && x.vquery) {
		size_t n = 0;
		rc = x.ops->nparams(x.conn, x.vquery, &n);
		x.vq_params = n > 0;
	}
	if (rc == 0)
		rc = build_key(&x, identity, &key);
	if (rc)
		goto out;

	larder_fill_opts fo = LARDER_FILL_OPTS_INIT;
	larder_put_opts po = LARDER_PUT_OPTS_INIT;
	if (o->fill) /* only the fields of its version */
		memcpy(&fo, o->fill,
		       o->fill->version >= 3 ? sizeof fo
		       : o->fill->version == 2
			   ? offsetof(larder_fill_opts, cancel)
			   : offsetof(larder_fill_opts, on_wait));
	fo.version = LARDER_FILL_OPTS_VERSION;
	if (fo.put)
		po = *fo.put;
	if (po.version == LARDER_PUT_OPTS_VERSION && !po.meta_len) {
		const char *ct =
		    content_types[x.format]
				 [(x.flags & LARDER_SQL_NO_HEADER) ? 1 : 0];
		po.meta = ct;
		po.meta_len = strlen(ct);
	}
	fo.put = &po;
	rc = larder_get_or_fill(out, outcome, db, ns, key.p, key.len, NULL, 0,
				sql_version, sql_load, &x, &fo);
out:
	if (x.conn)
		x.ops->close(x.conn);
	free(x.query);
	free(x.vquery);
	free(key.p);
	return rc;
}

static int sql_admin(larder *db, const char *dburi, const char *table,
		     int track)
{
	if (!dburi || !*dburi)
		return ldr_fail(db, LARDER_EINVAL, 0, "no database given");
	if (!table || !*table)
		return ldr_fail(db, LARDER_EINVAL, 0, "no table given");
	int dialect;
	const struct ldr_sql_ops *ops = ldr_sql_source(dburi, &dialect);
	if (!ops->open)
		return ldr_fail(db, LARDER_EINVAL, 0,
				"%s databases are not supported by this build",
				ops->name);
	struct ldr_sql_conn *c;
	int rc = source_open(ops, &c, db, dburi, 1);
	if (rc)
		return rc;
	rc = track ? ops->track(c, table) : ops->untrack(c, table);
	ops->close(c);
	return rc;
}

int larder_sql_track(larder *db, const char *dburi, const char *table)
{
	return sql_admin(db, dburi, table, 1);
}

int larder_sql_untrack(larder *db, const char *dburi, const char *table)
{
	return sql_admin(db, dburi, table, 0);
}
