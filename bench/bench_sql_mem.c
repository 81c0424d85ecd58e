/*
 * bench_sql_mem.c — peak memory and throughput of larder_sql() loading a
 * large PostgreSQL result (issue 4: "a 1 GB result never sits in
 * memory").
 *
 *   bench_sql_mem [--mib N] [--format csv|tsv|jsonl] [DIR]
 *
 * The database is $LARDER_PG_URI: run it through tests/pg/run.sh, which
 * starts a private server and sets it:
 *
 *   sh tests/pg/run.sh build/bench/bench_sql_mem --mib 1024
 *
 * DIR (default $TMPDIR, else /tmp) holds a temporary store; it needs room
 * for the result (about N MiB) and is removed at the end.
 *
 * The query generates N MiB of rows on the server (1 KiB each: an integer
 * and 1013 bytes of text, streamed by a set-returning function in the
 * select list, so the server does not gather them first either). Three
 * child processes, forked from a parent that holds nothing large, report
 * their peak resident memory: ru_maxrss (from wait4), and the peak of
 * RssAnon (heap and stacks, not file pages) sampled every 2 ms by a
 * thread:
 *   baseline  opens the store and connects nothing: the floor;
 *   cold      larder_sql() on an empty store: connect, query, stream every
 *             row through the formatter into the entry, publish, return
 *             it mapped. The store is opened with LARDER_OPEN_TRUST_LOCAL,
 *             so that the entry returned is not read through for its
 *             checksum: ru_maxrss is then the load's own memory;
 *   warm      larder_sql() again, verified (the default): a hit whose
 *             checksum pass reads the mapped entry, whose pages then count
 *             in ru_maxrss as file-backed memory (shared with the page
 *             cache, not a copy): RssAnon shows the difference.
 * For the cold load, the peak minus the baseline is what streaming costs
 * in memory, and the payload size over the elapsed time is the
 * throughput. The exit status is 0 unless something failed.
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "larder.h"

#define ROW_TEXT 1013 /* + up to 10 digits, tab/comma, newline: ~1 KiB */

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct args {
	const char *uri, *dir;
	long mib;
	int format;
};

/* Peak RssAnon of this process, sampled. */
static volatile long anon_peak_kib;
static volatile int sampling = 1;

static long rss_anon_kib(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	long kib = -1;
	if (!f)
		return -1;
	while (fgets(line, sizeof line, f))
		if (sscanf(line, "RssAnon: %ld kB", &kib) == 1)
			break;
	fclose(f);
	return kib;
}

static void *sampler(void *arg)
{
	(void)arg;
	const struct timespec pause = {0, 2 * 1000 * 1000};
	while (sampling) {
		long k = rss_anon_kib();
		if (k > anon_peak_kib)
			anon_peak_kib = k;
		nanosleep(&pause, NULL);
	}
	return NULL;
}

static larder *open_store(const char *dir, int trust)
{
	larder *db;
	larder_opts o = LARDER_OPTS_INIT;
	o.flags = LARDER_OPEN_CREATE | (trust ? LARDER_OPEN_TRUST_LOCAL : 0);
	o.fsync = LARDER_FSYNC_NONE;
	int rc = larder_open(&db, dir, &o);
	if (rc) {
		fprintf(stderr, "bench_sql_mem: open %s: %s\n", dir,
			larder_errmsg(NULL));
		exit(1);
	}
	return db;
}

/* One larder_sql() call; prints what it did. Runs in a child. */
static int one_call(const struct args *a, const char *what)
{
	larder *db = open_store(a->dir, strcmp(what, "cold") == 0);
	if (strcmp(what, "baseline") == 0) {
		larder_close(db);
		return 0;
	}
	char rows[32];
	snprintf(rows, sizeof rows, "%ld", a->mib * 1024);
	const char *params[1] = {rows};
	larder_put_opts po = LARDER_PUT_OPTS_INIT;
	po.ttl_seconds = 3600; /* no version: the entry lives for its TTL */
	larder_fill_opts fo = LARDER_FILL_OPTS_INIT;
	fo.put = &po;
	larder_sql_opts so = LARDER_SQL_OPTS_INIT;
	so.format = a->format;
	so.params = params;
	so.nparams = 1;
	so.fill = &fo;
	char sql[256];
	snprintf(sql, sizeof sql,
		 "SELECT i, repeat('x', %d) AS pad FROM (SELECT "
		 "generate_series(1, $1::bigint) AS i) s",
		 ROW_TEXT);
	larder_entry *e = NULL;
	int outcome = 0;
	double t0 = now_s();
	int rc = larder_sql(&e, &outcome, db, "default", a->uri, sql, &so);
	double took = now_s() - t0;
	if (rc) {
		fprintf(stderr, "bench_sql_mem: %s: %s: %s\n", what,
			larder_strerror(rc), larder_errmsg(db));
		larder_close(db);
		return 1;
	}
	size_t size = larder_entry_size(e);
	printf("%-8s %s  %.0f MiB in %.2f s = %.0f MB/s%s\n", what,
	       outcome == LARDER_HIT ? "hit   " : "filled", size / 1048576.0,
	       took, (double)size / took / 1e6,
	       larder_entry_is_mapped(e) ? " (mapped)" : "");
	larder_entry_release(e);
	larder_close(db);
	return 0;
}

static long max_rss_kib(void)
{
	struct rusage ru;
	return getrusage(RUSAGE_SELF, &ru) == 0 ? ru.ru_maxrss : -1;
}

/* Run one_call in a child; its peak resident memory in KiB, or -1. */
static long in_child(const struct args *a, const char *what)
{
	fflush(stdout);
	pid_t pid = fork();
	if (pid < 0) {
		perror("bench_sql_mem: fork");
		return -1;
	}
	if (pid == 0) {
		pthread_t t;
		if (pthread_create(&t, NULL, sampler, NULL) != 0)
			_exit(1);
		int rc = one_call(a, what);
		sampling = 0;
		pthread_join(t, NULL);
		long k = rss_anon_kib();
		if (k > anon_peak_kib)
			anon_peak_kib = k;
		printf("%-8s peak RSS %.1f MiB, peak RssAnon %.1f MiB\n", what,
		       (double)max_rss_kib() / 1024.0, anon_peak_kib / 1024.0);
		fflush(NULL);
		_exit(rc);
	}
	int st;
	struct rusage ru;
	while (wait4(pid, &st, 0, &ru) < 0)
		if (errno != EINTR) {
			perror("bench_sql_mem: wait4");
			return -1;
		}
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		return -1;
	return ru.ru_maxrss;
}

static int usage(void)
{
	fprintf(stderr, "usage: bench_sql_mem [--mib N] [--format "
			"csv|tsv|jsonl] [DIR]\n"
			"  (database: $LARDER_PG_URI; run it through "
			"tests/pg/run.sh)\n");
	return 2;
}

int main(int argc, char **argv)
{
	struct args a = {getenv("LARDER_PG_URI"), NULL, 1024, LARDER_SQL_CSV};
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--mib") == 0 && i + 1 < argc) {
			a.mib = atol(argv[++i]);
			if (a.mib <= 0 || a.mib > 1 << 20)
				return usage();
		} else if (strcmp(argv[i], "--format") == 0 && i + 1 < argc) {
			const char *f = argv[++i];
			if (strcmp(f, "csv") == 0)
				a.format = LARDER_SQL_CSV;
			else if (strcmp(f, "tsv") == 0)
				a.format = LARDER_SQL_TSV;
			else if (strcmp(f, "jsonl") == 0)
				a.format = LARDER_SQL_JSONL;
			else
				return usage();
		} else if (argv[i][0] == '-' || a.dir) {
			return usage();
		} else {
			a.dir = argv[i];
		}
	}
	if (!a.uri || !*a.uri)
		return usage();
	const char *base = a.dir ? a.dir : getenv("TMPDIR");
	char dir[4096];
	snprintf(dir, sizeof dir, "%s/larder-bench-sql-XXXXXX",
		 base && *base ? base : "/tmp");
	if (!mkdtemp(dir)) {
		perror("bench_sql_mem: mkdtemp");
		return 1;
	}
	a.dir = dir;
	printf("bench_sql_mem: %ld MiB of 1 KiB rows, %s, store in %s\n", a.mib,
	       a.format == LARDER_SQL_CSV   ? "csv"
	       : a.format == LARDER_SQL_TSV ? "tsv"
					    : "jsonl",
	       dir);
	long base_kib = in_child(&a, "baseline");
	long cold_kib = base_kib >= 0 ? in_child(&a, "cold") : -1;
	long warm_kib = cold_kib >= 0 ? in_child(&a, "warm") : -1;
	int ok = base_kib >= 0 && cold_kib >= 0 && warm_kib >= 0;
	if (ok)
		printf("cold load: peak RSS %.1f MiB over the baseline for "
		       "%ld MiB of rows\n",
		       (cold_kib - base_kib) / 1024.0, a.mib);
	char cmd[4200];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "bench_sql_mem: could not remove %s\n", dir);
	return ok ? 0 : 1;
}
