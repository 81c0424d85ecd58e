/*
 * sql.h — what sql.c shares beyond the public API: the SQL normalizer,
 * the choice of a database by its URI, and the row formatter (CSV, TSV,
 * JSON Lines). Pure functions, exported for the unit tests
 * (tests/test_sql.c) and for nobody else.
 */
#ifndef LARDER_SQL_H
#define LARDER_SQL_H

#include <stddef.h>

#include "sql_source.h"

/* How a database spells its SQL, as far as the normalizer cares. */
enum ldr_sql_dialect {
	LDR_SQL_SQLITE = 0, /* `ident`, [ident], $name @name :name params,
			       block comments do not nest */
	LDR_SQL_PG = 1	    /* E'...' strings, $tag$...$tag$, $N params,
			       nested block comments */
};

/*
 * The query in the form that names it in the key and that is run:
 * comments dropped (each counts as a space), whitespace runs collapsed to
 * one space (a newline between two PostgreSQL string literals stays a
 * newline: it joins them), the ends trimmed, trailing ';' dropped, and
 * ASCII letters lowercased — all outside string literals, quoted
 * identifiers and named parameters, which are kept byte for byte. An
 * unterminated literal, quoted identifier or comment keeps the rest of
 * the text as it is. Whatever the input, the result is never longer.
 * Returns a malloc'ed string, or NULL when out of memory.
 */
char *ldr_sql_normalize(const char *sql, int dialect);

/* The source for a database URI: "postgresql://", "postgres://" or a
 * libpq "key=value" string → PostgreSQL; "sqlite:PATH" or any other
 * string → SQLite. *dialect gets the dialect. */
const struct ldr_sql_ops *ldr_sql_source(const char *uri, int *dialect);

/* The formatter: rows in, bytes out through write() in chunks of about
 * LDR_SQL_CHUNK bytes. Its columns()/row() have the shape of struct
 * ldr_sql_sink's (payload = the struct ldr_sql_out *). */
#define LDR_SQL_CHUNK (64u << 10)

struct ldr_sql_out {
	larder *db;	/* for messages (may be NULL) */
	int format;	/* enum larder_sql_format */
	unsigned flags; /* LARDER_SQL_* */
	int (*write)(void *payload, const void *buf, size_t len);
	void *payload;
	char *buf; /* LDR_SQL_CHUNK bytes */
	size_t used;
	char **keys; /* JSON Lines: each column's name as a JSON string */
	size_t *key_len;
	size_t ncol;
};

/* 0, or LARDER_ENOMEM (recorded against db). */
int ldr_sql_out_init(struct ldr_sql_out *o, larder *db, int format,
		     unsigned flags,
		     int (*write)(void *payload, const void *buf, size_t len),
		     void *payload);
int ldr_sql_out_columns(void *o, size_t ncol, const char *const *names);
int ldr_sql_out_row(void *o, size_t ncol, const char *const *val,
		    const size_t *len, const int *kind);
/* Hand over what is buffered. */
int ldr_sql_out_flush(struct ldr_sql_out *o);
void ldr_sql_out_free(struct ldr_sql_out *o);

#endif
