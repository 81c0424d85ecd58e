/*
 * bench_sql_hit.c — what a warm larder_sql() hit against PostgreSQL costs
 * a library user who calls it in a loop on one store handle.
 *
 *   bench_sql_hit [--n N] [DIR]
 *
 * The database is $LARDER_PG_URI: run it through tests/pg/run.sh, which
 * starts a private server and sets it (and $LARDER_PG_ADMIN, used here to
 * make and track a small table):
 *
 *   sh tests/pg/run.sh build/bench/bench_sql_hit --n 200
 *
 * DIR (default $TMPDIR, else /tmp) holds a temporary store, removed at the
 * end. For each way of versioning the entry — none (a TTL), a version
 * query, a tracked table — one call fills it, then N calls hit it; each
 * hit is timed on its own and the minimum, median, 90th percentile and
 * mean are printed in milliseconds. The exit status is 0 unless a call
 * failed or was not a hit.
 */
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "larder.h"

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void quiet(void *arg, const char *msg)
{
	(void)arg, (void)msg;
}

static int admin_exec(const char *conninfo, const char *sql)
{
	PGconn *a = PQconnectdb(conninfo);
	int ok = PQstatus(a) == CONNECTION_OK;
	if (ok) {
		PQsetNoticeProcessor(a, quiet, NULL);
		PGresult *r = PQexec(a, sql);
		ok = PQresultStatus(r) == PGRES_COMMAND_OK;
		PQclear(r);
	}
	if (!ok)
		fprintf(stderr, "bench_sql_hit: %s: %s", sql,
			PQerrorMessage(a));
	PQfinish(a);
	return ok ? 0 : -1;
}

/* One fill, then n timed hits; prints a line. */
static int run(larder *db, const char *uri, const char *label,
	       const larder_sql_opts *o, int n)
{
	const char *query = "SELECT id, name FROM bench_sql_hit ORDER BY id";
	double *t = calloc((size_t)n, sizeof *t), sum = 0;
	if (!t)
		return -1;
	for (int i = -1; i < n; i++) {
		larder_entry *e = NULL;
		int outcome = 0;
		double t0 = now_ms();
		int rc = larder_sql(&e, &outcome, db, "default", uri, query, o);
		double dt = now_ms() - t0;
		larder_entry_release(e);
		if (rc) {
			fprintf(stderr, "bench_sql_hit: %s: %s\n", label,
				larder_errmsg(db));
			free(t);
			return -1;
		}
		if (i < 0)
			continue; /* the fill */
		if (outcome != LARDER_HIT) {
			fprintf(stderr,
				"bench_sql_hit: %s: call %d was not a "
				"hit\n",
				label, i);
			free(t);
			return -1;
		}
		t[i] = dt;
		sum += dt;
	}
	qsort(t, (size_t)n, sizeof *t, cmp_double);
	printf("%-14s  min %7.3f  median %7.3f  p90 %7.3f  mean %7.3f ms\n",
	       label, t[0], t[n / 2], t[n * 9 / 10], sum / n);
	free(t);
	return 0;
}

int main(int argc, char **argv)
{
	int n = 100;
	const char *base = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--n") == 0 && i + 1 < argc)
			n = atoi(argv[++i]);
		else if (argv[i][0] == '-') {
			fprintf(stderr, "usage: bench_sql_hit [--n N] [DIR]\n");
			return 2;
		} else
			base = argv[i];
	}
	const char *uri = getenv("LARDER_PG_URI");
	const char *adm = getenv("LARDER_PG_ADMIN");
	if (!uri || !adm || n < 1) {
		fprintf(stderr, "bench_sql_hit: run it through "
				"tests/pg/run.sh (LARDER_PG_URI, "
				"LARDER_PG_ADMIN)\n");
		return 2;
	}
	if (admin_exec(adm, "DROP TABLE IF EXISTS bench_sql_hit; "
			    "CREATE TABLE bench_sql_hit (id int PRIMARY KEY, "
			    "name text); INSERT INTO bench_sql_hit SELECT i, "
			    "'row ' || i FROM generate_series(1, 100) i; "
			    "ALTER TABLE bench_sql_hit OWNER TO larder"))
		return 1;

	char dir[4096];
	snprintf(dir, sizeof dir, "%s/bench_sql_hit.XXXXXX", base);
	if (!mkdtemp(dir)) {
		perror("bench_sql_hit: mkdtemp");
		return 1;
	}
	larder *db = NULL;
	larder_opts lo = LARDER_OPTS_INIT;
	lo.flags = LARDER_OPEN_CREATE;
	int rc = larder_open(&db, dir, &lo);
	if (rc) {
		fprintf(stderr, "bench_sql_hit: %s\n", larder_errmsg(NULL));
		return 1;
	}
	rc = larder_sql_track(db, uri, "bench_sql_hit");
	if (rc)
		fprintf(stderr, "bench_sql_hit: track: %s\n",
			larder_errmsg(db));

	larder_put_opts put = LARDER_PUT_OPTS_INIT;
	larder_fill_opts fill = LARDER_FILL_OPTS_INIT;
	put.ttl_seconds = 3600;
	fill.put = &put;
	larder_sql_opts ttl = LARDER_SQL_OPTS_INIT, vq = LARDER_SQL_OPTS_INIT,
			tbl = LARDER_SQL_OPTS_INIT;
	ttl.fill = &fill;
	vq.version_query = "SELECT count(*), max(id) FROM bench_sql_hit";
	tbl.table = "bench_sql_hit";
	printf("%d warm hits each, one store handle\n", n);
	if (rc == 0)
		rc = run(db, uri, "no version", &ttl, n);
	if (rc == 0)
		rc = run(db, uri, "version query", &vq, n);
	if (rc == 0)
		rc = run(db, uri, "table", &tbl, n);
	larder_close(db);
	char cmd[4200];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "bench_sql_hit: could not remove %s\n", dir);
	return rc ? 1 : 0;
}
