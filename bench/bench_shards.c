/*
 * bench_shards.c — what crafted counter files cost every command (issue
 * 10, item 11): sixteen shards of many lines this build does not know,
 * each with a good checksum, under a fresh store.
 *
 *   bench_shards [--lines N] [DIR]
 *
 * Writes DIR/larder-shards (default $TMPDIR, else /tmp) with one entry and
 * sixteen shards of N unknown counter lines each (default 50 000), then
 * times, each in a child process as the CLI would run it: a hit
 * (larder_open, larder_get, larder_close: the close flushes the counters
 * to one shard) and larder_stats_read() over all sixteen. Then again
 * after every shard has been rewritten at least once (hits from new
 * processes until then), which bounds what a shard holds
 * (docs/format.md, "Counter files").
 *
 * Information, not pass/fail: tests/test_stats.c asserts the bound and
 * that parsing is linear; this shows what they buy.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <xxhash.h>

#include "larder.h"

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void die(const char *what)
{
	fprintf(stderr, "bench_shards: %s: %s\n", what, strerror(errno));
	exit(1);
}

/* A shard of n unknown counters, as a newer larder (or a hostile member)
 * could write it: "larder-counters 1", the lines, a good checksum. */
static void write_shard(const char *path, long n, int shard)
{
	size_t cap = (size_t)n * 32 + 64, len = 0;
	char *body = malloc(cap);
	if (!body)
		die("malloc");
	len += (size_t)snprintf(body, cap, "larder-counters 1\n");
	for (long i = 0; i < n; i++)
		len += (size_t)snprintf(body + len, cap - len,
					"unknown_%02d_%07ld 1\n", shard, i);
	XXH128_canonical_t c;
	XXH128_canonicalFromHash(&c, XXH3_128bits(body, len));
	FILE *f = fopen(path, "w");
	if (!f)
		die(path);
	fwrite(body, 1, len, f);
	fputs("checksum ", f);
	for (int i = 0; i < 16; i++)
		fprintf(f, "%02x", c.digest[i]);
	fputc('\n', f);
	if (fclose(f) != 0)
		die(path);
	free(body);
}

static larder *open_store(const char *dir, unsigned flags)
{
	larder *db;
	larder_opts o = LARDER_OPTS_INIT;
	o.flags = flags;
	if (larder_open(&db, dir, &o) != 0) {
		fprintf(stderr, "bench_shards: %s\n", larder_errmsg(NULL));
		exit(1);
	}
	return db;
}

/* One run of what, in a child: its wall time in ms. */
static double in_child(const char *dir, int what)
{
	double t0 = now_ms();
	pid_t pid = fork();
	if (pid < 0)
		die("fork");
	if (pid == 0) {
		larder *db = open_store(dir, 0);
		if (what == 0) {
			larder_entry *e;
			if (larder_get(&e, db, "default", "k", 1, "v", 1) != 0)
				_exit(2);
			larder_entry_release(e);
		} else {
			larder_stats *s;
			if (larder_stats_read(&s, db) != 0)
				_exit(3);
			larder_stats_free(s);
		}
		larder_close(db);
		_exit(0);
	}
	int st;
	if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) ||
	    WEXITSTATUS(st) != 0) {
		fprintf(stderr, "bench_shards: child failed (0x%x)\n", st);
		exit(1);
	}
	return now_ms() - t0;
}

/* The shards' bytes in all, and the largest. */
static long shard_bytes(const char *dir, long *largest)
{
	long total = 0;
	*largest = 0;
	for (int i = 0; i < 16; i++) {
		char p[2100];
		struct stat st;
		snprintf(p, sizeof p, "%s/stats/shard-%02d", dir, i);
		if (stat(p, &st) == 0) {
			total += (long)st.st_size;
			if ((long)st.st_size > *largest)
				*largest = (long)st.st_size;
		}
	}
	return total;
}

/* Whether every shard has been rewritten by a flush: a rewrite puts the
 * counters this build knows first, which the crafted shards lack. */
static int all_rewritten(const char *dir)
{
	for (int i = 0; i < 16; i++) {
		char p[2100], buf[4097];
		snprintf(p, sizeof p, "%s/stats/shard-%02d", dir, i);
		FILE *f = fopen(p, "r");
		if (!f)
			return 0;
		size_t n = fread(buf, 1, sizeof buf - 1, f);
		fclose(f);
		buf[n] = '\0';
		if (!strstr(buf, "\nhits "))
			return 0;
	}
	return 1;
}

static void report(const char *when, const char *dir)
{
	long largest, total = shard_bytes(dir, &largest);
	double hit = in_child(dir, 0), stat = in_child(dir, 1);
	printf("%-26s shards %8ld bytes   hit %9.1f ms   stat %9.1f ms\n", when,
	       total, hit, stat);
}

int main(int argc, char **argv)
{
	long n = 50000;
	const char *base = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--lines") && i + 1 < argc)
			n = atol(argv[++i]);
		else
			base = argv[i];
	}
	char dir[2048], cmd[2200];
	snprintf(dir, sizeof dir, "%s/larder-shards", base);
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		die("rm");
	larder *db = open_store(dir, LARDER_OPEN_CREATE);
	if (larder_put(db, "default", "k", 1, "v", 1, "x", 1, NULL) != 0)
		die("put");
	larder_close(db);
	char p[2100];
	snprintf(p, sizeof p, "%s/stats", dir);
	mkdir(p, 0755);
	for (int i = 0; i < 16; i++) {
		snprintf(p, sizeof p, "%s/stats/shard-%02d", dir, i);
		write_shard(p, n, i);
	}
	printf("16 shards of %ld unknown counter lines each\n", n);
	report("crafted", dir);
	/* Hits from new processes until every shard has been flushed to
	 * (each process picks one by host and pid): each is rewritten
	 * within its bounds. */
	int hits = 0;
	while (!all_rewritten(dir) && hits < 2000) {
		in_child(dir, 0);
		hits++;
	}
	char when[64];
	snprintf(when, sizeof when, "after %d more hits", hits);
	report(when, dir);
	return 0;
}
