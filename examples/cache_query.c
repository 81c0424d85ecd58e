/*
 * cache_query.c — a complete program on liblarder: the result of a slow
 * query, computed once and then shared by every process and host that
 * uses the same store.
 *
 *     cache_query STORE [QUERY [VERSION]]
 *
 * looks up the result of QUERY at VERSION (the state of the data it reads:
 * a table's change counter, a file's hash, a date) in the store at STORE,
 * creating the store on first use. On a miss it runs the query, once among
 * all the callers that ask at the same time, and keeps the result. The
 * result goes to stdout; one line on stderr says how it was obtained:
 * "filled" (computed here), "hit" (found), "waited" (computed by another
 * process meanwhile). Exit 0, or 1 with the library's message.
 *
 * Build it against an installed larder (`make install`, README.md):
 *
 *     cc -o cache_query cache_query.c $(pkg-config --cflags --libs larder)
 *
 * (if it then cannot find liblarder.so.0, run `ldconfig` once as root), or
 * against a build tree, from the repository's top directory:
 *
 *     cc -o cache_query examples/cache_query.c -Iinclude -Lbuild -llarder
 *     LD_LIBRARY_PATH=build ./cache_query /tmp/store
 *
 * The tests build it the same way, with the public header and the shared
 * library only, and run it (tests/examples.cmake). The words used here —
 * store, namespace, key, version, entry, fill — are defined in
 * docs/concepts.md; every function is described in larder.h.
 */
#include <larder.h>

#include <stdio.h>
#include <string.h>

/* The slow part: stands for a database query, a parse, a build. It
 * streams its result into the store as it produces it, in as many writes
 * as it takes, so a large result never has to sit in memory. */
static int load(larder_fill *fill, void *payload)
{
	const char *query = payload;
	static const char *const regions[] = {"emea", "amer", "apac"};
	char row[128];
	/* Made-up numbers that depend on the query, so that two queries
	 * give two results. */
	unsigned long sum = 5381;
	for (const char *p = query; *p; p++)
		sum = sum * 33 + (unsigned char)*p;
	int n = snprintf(row, sizeof row, "region,total\n");
	int rc = larder_fill_write(fill, row, (size_t)n);
	for (int i = 0; rc == 0 && i < 3; i++) {
		n = snprintf(row, sizeof row, "%s,%lu\n", regions[i],
			     (sum >> (8 * i)) % 100000);
		rc = larder_fill_write(fill, row, (size_t)n);
	}
	return rc; /* non-zero: nothing is kept, the caller gets the error */
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
	case LARDER_FILLED_UNCACHED:
		return "filled, not cached";
	default:
		return "unknown outcome";
	}
}

int main(int argc, char **argv)
{
	if (argc < 2 || argc > 4) {
		fprintf(stderr, "usage: cache_query STORE [QUERY [VERSION]]\n");
		return 2;
	}
	const char *dir = argv[1];
	const char *query = argc > 2 ? argv[2]
				     : "SELECT region, SUM(amount) FROM sales "
				       "GROUP BY region";
	const char *version = argc > 3 ? argv[3] : "v1";

	larder *db;
	larder_opts opts = LARDER_OPTS_INIT;
	opts.flags = LARDER_OPEN_CREATE; /* make the store if it is missing */
	if (larder_open(&db, dir, &opts) != 0) {
		fprintf(stderr, "cache_query: %s\n", larder_errmsg(NULL));
		return 1;
	}

	/* Keep the result for an hour at most, whatever its version. */
	larder_put_opts put = LARDER_PUT_OPTS_INIT;
	put.ttl_seconds = 3600;
	larder_fill_opts fill = LARDER_FILL_OPTS_INIT;
	fill.put = &put;

	/* Looks the entry up first (a hit costs what larder_get costs); on a
	 * miss, exactly one caller among all the processes and hosts asking
	 * runs load() while the others wait for its result. */
	larder_entry *e;
	int outcome, status = 0;
	int rc = larder_get_or_fill(&e, &outcome, db, "default", query,
				    strlen(query), version, strlen(version),
				    NULL, load, (void *)query, &fill);
	if (rc != 0) {
		fprintf(stderr, "cache_query: %s\n", larder_errmsg(db));
		larder_close(db);
		return 1;
	}
	/* The data is ours even when the store could not keep it (disk full,
	 * no permission): the message says why it was not kept. */
	if (outcome == LARDER_FILLED_UNCACHED)
		fprintf(stderr, "cache_query: not cached: %s\n",
			larder_errmsg(db));

	size_t size = larder_entry_size(e);
	if (fwrite(larder_entry_data(e), 1, size, stdout) != size ||
	    fflush(stdout) != 0) {
		perror("cache_query: writing the result");
		status = 1;
	}
	fprintf(stderr, "cache_query: %s, %zu bytes\n", outcome_name(outcome),
		size);
	larder_entry_release(e); /* its data is valid until here */
	larder_close(db);
	return status;
}
