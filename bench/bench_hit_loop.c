/*
 * bench_hit_loop — only verified 4 KiB first hits, in a loop, for a
 * profiler to look at (docs/performance.md, "Where a 4 KiB hit's time
 * goes"): `perf stat` or `perf record` of it sees the hit and next to
 * nothing else. It prints the mean time a hit took, which is no
 * benchmark (bench_hit compares against a raw read in the same run).
 *
 *   bench_hit_loop [--repeat] [--head] [--size BYTES] [--keys N] [--hits N]
 *                  [DIR]
 *
 * Puts N keys of BYTES into a fresh store under DIR (default $TMPDIR or
 * /tmp), then gets and releases them round-robin through a handle opened
 * with LARDER_OPEN_VERIFY_ALWAYS (no memo: every hit reads and verifies
 * the file, as a first hit does). With --repeat, through a handle with
 * the memo (the default), each key read twice before the loop: repeat
 * hits, served from what an earlier hit verified. With --head, the gets
 * name no version (the key's head says it). The store is removed at the
 * end.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "bench.h"
#include "larder.h"

static void die(const char *what, larder *db)
{
	fprintf(stderr, "bench_hit_loop: %s: %s\n", what, larder_errmsg(db));
	exit(1);
}

int main(int argc, char **argv)
{
	size_t size = 4096;
	int keys = 1000, hits = 1000000, repeat = 0, head = 0;
	const char *base = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--repeat"))
			repeat = 1;
		else if (!strcmp(argv[i], "--head"))
			head = 1;
		else if (!strcmp(argv[i], "--size") && i + 1 < argc)
			size = strtoull(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--keys") && i + 1 < argc)
			keys = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--hits") && i + 1 < argc)
			hits = atoi(argv[++i]);
		else if (argv[i][0] != '-')
			base = argv[i];
		else {
			fprintf(stderr,
				"usage: bench_hit_loop [--repeat] [--head] "
				"[--size BYTES] [--keys N] [--hits N] [DIR]\n");
			return 2;
		}
	}
	if (keys < 1 || hits < 1)
		return 2;
	char dir[4200];
	snprintf(dir, sizeof dir, "%s/larder-hitloop.XXXXXX", base);
	if (!mkdtemp(dir)) {
		perror(dir);
		return 1;
	}
	char store[4300];
	snprintf(store, sizeof store, "%s/store", dir);
	larder_opts o = LARDER_OPTS_INIT;
	o.flags = LARDER_OPEN_CREATE | (repeat ? 0 : LARDER_OPEN_VERIFY_ALWAYS);
	larder *db;
	if (larder_open(&db, store, &o))
		die(store, NULL);
	char *payload = malloc(size ? size : 1);
	if (!payload)
		return 1;
	for (size_t i = 0; i < size; i++)
		payload[i] = (char)(i * 7 + 1);
	/* The keys made once: the loop times the hits alone. */
	char(*key)[16] = malloc((size_t)keys * sizeof *key);
	int *klen = malloc((size_t)keys * sizeof *klen);
	if (!key || !klen)
		return 1;
	for (int k = 0; k < keys; k++) {
		klen[k] = snprintf(key[k], sizeof key[k], "key-%d", k);
		if (larder_put(db, "bench", key[k], (size_t)klen[k], "v1", 2,
			       payload, size, NULL))
			die("put", db);
	}
	/* The memo takes an entry at its second read in the handle. */
	for (int r = 0; repeat && r < 2; r++)
		for (int k = 0; k < keys; k++) {
			larder_entry *e;
			if (larder_get(&e, db, "bench", key[k], (size_t)klen[k],
				       "v1", 2))
				die("get", db);
			larder_entry_release(e);
		}
	struct rusage r0, r1;
	getrusage(RUSAGE_SELF, &r0);
	int64_t t0 = now_ns();
	for (int i = 0, k = 0; i < hits; i++, k = k + 1 < keys ? k + 1 : 0) {
		larder_entry *e;
		if (larder_get(&e, db, "bench", key[k], (size_t)klen[k],
			       head ? NULL : "v1", head ? 0 : 2))
			die("get", db);
		larder_entry_release(e);
	}
	int64_t t1 = now_ns();
	getrusage(RUSAGE_SELF, &r1);
	/* CPU time by mode (getrusage): where hardware counters are not
	 * there (a VM), the user/kernel split of a hit. */
	double us = (double)(r1.ru_utime.tv_sec - r0.ru_utime.tv_sec) * 1e6 +
		    (double)(r1.ru_utime.tv_usec - r0.ru_utime.tv_usec);
	double sy = (double)(r1.ru_stime.tv_sec - r0.ru_stime.tv_sec) * 1e6 +
		    (double)(r1.ru_stime.tv_usec - r0.ru_stime.tv_usec);
	printf("%d %s hits of %zu bytes: %.3f us a hit (wall); CPU %.3f us "
	       "user, "
	       "%.3f us kernel a hit\n",
	       hits, repeat ? "repeat" : "first", size,
	       (double)(t1 - t0) / hits / 1e3, us / hits, sy / hits);
	larder_close(db);
	free(payload);
	free(key);
	free(klen);
	char cmd[4400];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : 1;
}
