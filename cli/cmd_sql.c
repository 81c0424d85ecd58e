/*
 * cmd_sql.c — `larder sql`: a query's result, cached and shared
 * (larder_sql), and `larder sql track|untrack` for the change counter of
 * a table (larder_sql_track). The key, the versions and the formats are
 * the library's (docs/sql.md); this file parses, reports and writes.
 */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

enum {
	OPT_DB = 256,
	OPT_PARAM,
	OPT_NULL_PARAM,
	OPT_VERSION_QUERY,
	OPT_TABLE,
	OPT_FORMAT,
	OPT_NO_HEADER,
};

struct sql_args {
	const char *db;
	const char **params; /* NULL entries: --null-param */
	size_t nparams;
	const char *version_query;
	const char *table;
	int format;
	int no_header;
	struct cli_fill_args fill;
};

static int push_param(struct cli *c, struct sql_args *a, const char *p)
{
	const char **l = realloc(a->params, (a->nparams + 1) * sizeof(*l));

	if (!l) {
		cli_err(c, "out of memory");
		return CLI_IO;
	}
	l[a->nparams++] = p;
	a->params = l;
	return CLI_CONTINUE;
}

static int sql_opt(struct cli *c, int id, const char *arg, void *ctx)
{
	struct sql_args *a = ctx;

	switch (id) {
	case OPT_DB:
		if (!*arg)
			return cli_usage_err(c, "--db needs a database");
		a->db = arg;
		return CLI_CONTINUE;
	case OPT_PARAM:
		return push_param(c, a, arg);
	case OPT_NULL_PARAM:
		return push_param(c, a, NULL);
	case OPT_VERSION_QUERY:
		if (!*arg)
			return cli_usage_err(c,
					     "--version-query needs a query");
		a->version_query = arg;
		return CLI_CONTINUE;
	case OPT_TABLE:
		if (!*arg)
			return cli_usage_err(c, "--table needs a table name");
		a->table = arg;
		return CLI_CONTINUE;
	case OPT_FORMAT:
		if (strcmp(arg, "csv") == 0)
			a->format = LARDER_SQL_CSV;
		else if (strcmp(arg, "tsv") == 0)
			a->format = LARDER_SQL_TSV;
		else if (strcmp(arg, "jsonl") == 0)
			a->format = LARDER_SQL_JSONL;
		else
			return cli_usage_err(c,
					     "bad --format '%s' (want csv, tsv "
					     "or jsonl)",
					     out_q(arg));
		return CLI_CONTINUE;
	case OPT_NO_HEADER:
		a->no_header = 1;
		return CLI_CONTINUE;
	default:
		return cli_fill_opt(c, &a->fill, id, arg);
	}
}

/* The one-line error of a failed larder_sql or track call: the
 * database's or the store's message. Exit 4: the database (or the
 * store underneath) failed, not the command line. */
static int sql_fail(struct cli *c, larder *db, int rc)
{
	const char *msg = larder_errmsg(db);

	cli_err_lib(c, "", msg && *msg ? msg : larder_strerror(rc));
	return CLI_IO;
}

static const char *outcome_name(int outcome)
{
	switch (outcome) {
	case LARDER_HIT:
		return "hit";
	case LARDER_FILLED:
		return "filled";
	case LARDER_WAITED:
		return "waited";
	case LARDER_STALE:
		return "stale";
	default:
		return "uncached";
	}
}

/* larder_sql's on_progress: rows and bytes of the load so far. */
static void on_rows(uint64_t rows, uint64_t bytes, void *payload)
{
	progress_set(payload, rows, bytes);
}

static int run_query(struct cli *c, int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"db", required_argument, NULL, OPT_DB},
	    {"param", required_argument, NULL, OPT_PARAM},
	    {"null-param", no_argument, NULL, OPT_NULL_PARAM},
	    {"version-query", required_argument, NULL, OPT_VERSION_QUERY},
	    {"table", required_argument, NULL, OPT_TABLE},
	    {"format", required_argument, NULL, OPT_FORMAT},
	    {"no-header", no_argument, NULL, OPT_NO_HEADER},
	    CLI_FILL_LONGOPTS,
	    {0},
	};
	struct sql_args a = {0};
	larder_sql_opts so = LARDER_SQL_OPTS_INIT;
	larder_fill_opts fo = LARDER_FILL_OPTS_INIT;
	larder_put_opts po = LARDER_PUT_OPTS_INIT;
	struct cli_progress prog;
	larder_entry *e = NULL;
	larder *db = NULL;
	int first, rc, lrc, outcome = 0;
	double t0;

	/* Not shown until started: progress_end() below is a no-op. */
	memset(&prog, 0, sizeof(prog));
	rc = cli_parse(c, &cli_cmd_sql, argc, argv, "", longopts, sql_opt, &a,
		       &first);
	if (rc != CLI_CONTINUE)
		goto out;
	rc = cli_positionals(c, argc, argv, first, 1, 1, "QUERY");
	if (rc != CLI_CONTINUE)
		goto out;
	if (!a.db) {
		rc = cli_usage_err(c, "missing --db URI");
		goto out;
	}
	if (a.table && a.version_query) {
		rc = cli_usage_err(c, "give --table or --version-query, not "
				      "both");
		goto out;
	}
	if (!*argv[first]) {
		rc = cli_usage_err(c, "empty QUERY");
		goto out;
	}

	rc = cli_open(c, &db, NULL);
	if (rc != CLI_OK)
		goto out;
	if (!a.table && !a.version_query && a.fill.ttl == 0) {
		int64_t ns_ttl = 0;

		lrc = larder_ns_get_ttl(&ns_ttl, db, c->ns);
		if (lrc < 0) {
			rc = cli_fail(c, db, lrc);
			goto out;
		}
		if (ns_ttl <= 0) {
			rc = cli_usage_err(c,
					   "without --table or --version-query "
					   "the result needs a --ttl (or a "
					   "default TTL for namespace '%s'): "
					   "nothing else would refresh it",
					   out_q(c->ns));
			goto out;
		}
	}
	if (!a.table && !a.version_query && a.fill.ttl == LARDER_TTL_NEVER) {
		rc = cli_usage_err(c, "--ttl never needs --table or "
				      "--version-query: nothing else would "
				      "refresh the result");
		goto out;
	}

	cli_fill_apply(&a.fill, &po, &fo);
	so.format = a.format;
	so.flags = a.no_header ? LARDER_SQL_NO_HEADER : 0;
	so.params = a.params;
	so.nparams = a.nparams;
	so.version_query = a.version_query;
	so.table = a.table;
	so.fill = &fo;
	/* The rows are written out only once they are all in the entry:
	 * the line shows the load, even when stdout is a terminal. */
	fo.on_wait = progress_on_wait;
	fo.on_wait_payload = &prog;
	so.on_progress = on_rows;
	so.on_progress_payload = &prog;
	/* During the fill, SIGINT, SIGTERM and SIGHUP stop it cleanly at
	 * the next chunk of rows (no temp file, no lease left); then we die
	 * of the signal (cli_stop_end below). */
	cli_stop_begin();
	fo.cancel = &cli_stop_sig;

	t0 = progress_now();
	progress_start(&prog, "querying", 0);
	lrc = larder_sql(&e, &outcome, db, c->ns, a.db, argv[first], &so);
	progress_end(&prog);
	if (cli_stop_sig) {
		rc = CLI_IO; /* not returned: we die of the signal */
		goto out;
	}
	cli_stop_end();
	if (lrc < 0) {
		rc = sql_fail(c, db, lrc);
		goto out;
	}
	if (outcome == LARDER_FILLED_UNCACHED && !c->logged)
		cli_err_lib(c, "warning: the result was not cached: ",
			    larder_errmsg(db));
	int err = out_write_all(STDOUT_FILENO, larder_entry_data(e),
				larder_entry_size(e));
	/* A reader that closes the pipe early had what it wanted. */
	if (err && err != EPIPE) {
		cli_err(c, "cannot write to stdout: %s", strerror(err));
		rc = CLI_IO;
		goto out;
	}
	if (c->verbose)
		fprintf(stderr, "%s in %.3f s (%zu bytes)\n",
			outcome_name(outcome), progress_now() - t0,
			larder_entry_size(e));
	rc = CLI_OK;
out:
	progress_end(&prog);
	larder_entry_release(e);
	larder_close(db);
	cli_stop_end();
	free(a.params);
	return rc;
}

static int admin_opt(struct cli *c, int id, const char *arg, void *ctx)
{
	const char **dburi = ctx;

	if (id != OPT_DB)
		return cli_usage_err(c, "unknown option");
	if (!*arg)
		return cli_usage_err(c, "--db needs a database");
	*dburi = arg;
	return CLI_CONTINUE;
}

/* `larder sql track|untrack --db URI TABLE`: no store involved. */
static int run_admin(struct cli *c, int argc, char **argv, int track)
{
	static const struct option longopts[] = {
	    {"db", required_argument, NULL, OPT_DB},
	    {0},
	};
	const char *dburi = NULL;
	int first, rc, lrc;

	rc = cli_parse(c, &cli_cmd_sql, argc, argv, "", longopts, admin_opt,
		       &dburi, &first);
	if (rc != CLI_CONTINUE)
		return rc;
	rc = cli_positionals(c, argc, argv, first, 1, 1, "TABLE");
	if (rc != CLI_CONTINUE)
		return rc;
	if (!dburi)
		return cli_usage_err(c, "missing --db URI");
	if (!*argv[first])
		return cli_usage_err(c, "empty TABLE");
	lrc = track ? larder_sql_track(NULL, dburi, argv[first])
		    : larder_sql_untrack(NULL, dburi, argv[first]);
	if (lrc < 0)
		return sql_fail(c, NULL, lrc);
	if (c->verbose)
		fprintf(stderr, "%s '%s' in %s\n",
			track ? "tracking" : "no longer tracking",
			out_q(argv[first]), out_q(dburi));
	return CLI_OK;
}

static int run_sql(struct cli *c, int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "track") == 0)
		return run_admin(c, argc - 1, argv + 1, 1);
	if (argc > 1 && strcmp(argv[1], "untrack") == 0)
		return run_admin(c, argc - 1, argv + 1, 0);
	return run_query(c, argc, argv);
}

const struct cli_cmd cli_cmd_sql = {
    .name = "sql",
    .run = run_sql,
    .summary = "a query's result, cached and shared (SQLite, PostgreSQL)",
    .usage = "--db URI [--param V]... [--null-param]\n"
	     "       [--table T | --version-query Q] [--format csv|tsv|jsonl]\n"
	     "       [--no-header] [--ttl T] [--lease S] [--max-wait S]\n"
	     "       [--allow-stale] [-v] QUERY\n"
	     "       larder sql track --db URI TABLE\n"
	     "       larder sql untrack --db URI TABLE",
    .help =
	"Write the result of QUERY on database URI to stdout, from the "
	"store when it\n"
	"holds the result for the database's current version, else "
	"running QUERY once\n"
	"for every process and host that asks at the same time. The "
	"version and the\n"
	"rows are read in one snapshot, so the cached rows always match "
	"their version.\n\n"
	"The database (URI):\n"
	"  a path, or sqlite:PATH   an SQLite file, opened read-only (never "
	"created)\n"
	"  postgresql://..., postgres://..., or 'key=value ...'   "
	"PostgreSQL\n\n"
	"The version, which says when the result must be read again:\n"
	"  --table T          the change counter of table T, kept by "
	"triggers that\n"
	"                     'larder sql track' installs: right under "
	"every INSERT,\n"
	"                     UPDATE and DELETE\n"
	"  --version-query Q  the whole result of query Q, e.g.\n"
	"                     \"SELECT count(*), max(updated_at) FROM t\"\n"
	"  neither            no version: the result lives for its --ttl "
	"(required,\n"
	"                     unless the namespace has a default TTL)\n\n"
	"Options:\n"
	"  --param V          a value for the next parameter (?, ?N, :name, "
	"$N), as\n"
	"                     text (repeatable; also passed to a version "
	"query that\n"
	"                     takes parameters)\n"
	"  --null-param       SQL NULL for the next parameter\n"
	"  --format F         csv (RFC 4180, CRLF; NULL is an empty field, "
	"an empty\n"
	"                     string \"\"), tsv (PostgreSQL text format; "
	"NULL is \\N) or\n"
	"                     jsonl (one JSON object per row) (default: "
	"csv)\n"
	"  --no-header        csv, tsv: no line of column names\n"
	"  --ttl T            expire the result after T: seconds, or N with "
	"s/m/h/d,\n"
	"                     or 'never' (default: the namespace's TTL)\n"
	"  --lease S          the lease length in seconds (default 30, at "
	"least 1)\n"
	"  --max-wait S       wait at most S seconds for another process's "
	"load, then\n"
	"                     load here anyway (default 10 leases)\n"
	"  --allow-stale      while another process loads, print the "
	"previous result\n"
	"  -v                 print one line to stderr: hit, filled, "
	"waited, stale or\n"
	"                     uncached, the time taken and the size\n\n"
	"The key is the query normalized (comments dropped, whitespace "
	"collapsed,\n"
	"unquoted words lowercased; this is also the text that runs), the "
	"parameters,\n"
	"the database's identity, the format and the version's source. See "
	"docs/sql.md.\n"
	"A QUERY that starts with '-' (a comment) goes after '--'.\n\n"
	"track / untrack: install or remove the change counter of TABLE "
	"(a table\n"
	"larder_changes and triggers larder_track_TABLE_ins, _upd, _del). "
	"Both are\n"
	"idempotent. They need write access to the database, no store.\n\n"
	"Exit status: 0 with the result on stdout; 2 usage; 3 store; 4 the "
	"database\n"
	"failed (bad SQL, no such database, table not tracked, "
	"unreachable) or I/O.\n\n"
	"Examples:\n"
	"  larder sql track --db app.db orders\n"
	"  larder sql --db app.db --table orders --format jsonl \\\n"
	"      \"SELECT * FROM orders WHERE region = ?\" --param emea\n"
	"  larder sql --db 'postgresql://reader@db1/sales' \\\n"
	"      --version-query 'SELECT count(*), max(updated_at) FROM "
	"sales' \\\n"
	"      'SELECT * FROM sales' > sales.csv\n"
	"  larder sql --db app.db --ttl 10m 'SELECT count(*) FROM "
	"visits'\n",
};
