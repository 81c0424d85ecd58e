/*
 * cmd_stat.c — `larder stat`: the store-wide counters and the usage of each
 * namespace, for people, for programs (--json) and for Prometheus
 * (--prometheus, the text exposition format that node_exporter's textfile
 * collector reads).
 */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

enum { FMT_HUMAN, FMT_JSON, FMT_PROM };
enum { OPT_JSON = 256, OPT_PROM };

static int stat_opt(struct cli *c, int id, const char *arg, void *ctx)
{
	int *fmt = ctx;
	(void)arg;
	int want = id == OPT_JSON ? FMT_JSON : id == OPT_PROM ? FMT_PROM : -1;
	if (want < 0)
		return cli_usage_err(c, "unknown option");
	if (*fmt != FMT_HUMAN && *fmt != want)
		return cli_usage_err(c, "--json and --prometheus exclude each "
					"other");
	*fmt = want;
	return CLI_CONTINUE;
}

/* "1.5 MiB"; plain bytes below 1 KiB. */
static void human_size(char *buf, size_t size, int64_t v)
{
	static const char *const units[] = {"KiB", "MiB", "GiB", "TiB", "PiB"};
	if (v < 1024) {
		snprintf(buf, size, "%lld B", (long long)v);
		return;
	}
	double d = (double)v / 1024;
	size_t u = 0;
	while (d >= 1024 && u + 1 < sizeof units / sizeof *units) {
		d /= 1024;
		u++;
	}
	snprintf(buf, size, "%.1f %s", d, units[u]);
}

/* A Prometheus label value: backslash, double quote and newline escaped
 * (the exposition format's only escapes in label values). */
static void prom_label(FILE *f, const char *s)
{
	for (; *s; s++) {
		if (*s == '\\')
			fputs("\\\\", f);
		else if (*s == '"')
			fputs("\\\"", f);
		else if (*s == '\n')
			fputs("\\n", f);
		else
			fputc(*s, f);
	}
}

/* The namespace to show, or NULL for all. */
static int wanted(const struct cli *c, const char *ns)
{
	return !c->ns_given || strcmp(c->ns, ns) == 0;
}

static void print_human(const struct cli *c, const larder_stats *s,
			const char *dir)
{
	unsigned bad, shards = larder_stats_shards(s, &bad);
	size_t nc = larder_stats_counters(s), nn = larder_stats_namespaces(s);
	int width = 0;
	uint64_t v;
	for (size_t i = 0; i < nc; i++) {
		int n = (int)strlen(larder_stats_counter(s, i, &v));
		width = n > width ? n : width;
	}
	printf("store %s (%u counter files%s)\n\ncounters\n", dir, shards,
	       bad ? ", some failed their check: see below" : "");
	for (size_t i = 0; i < nc; i++) {
		const char *name = larder_stats_counter(s, i, &v);
		printf("  %-*s %llu\n", width, name, (unsigned long long)v);
	}
	/* Quotas (max_bytes, max_entries) belong beside usage; they are
	 * shown here once the store has them (DIR/config, ns/<ns>/config). */
	printf("\nusage\n  %16s %10s  %s\n", "bytes", "entries", "namespace");
	int64_t tb = 0, te = 0;
	for (size_t i = 0; i < nn; i++) {
		int64_t b, e;
		const char *ns = larder_stats_usage(s, i, &b, &e);
		if (!wanted(c, ns))
			continue;
		char h[32];
		human_size(h, sizeof h, b);
		printf("  %16s %10lld  %s\n", h, (long long)e, out_q(ns));
		tb += b;
		te += e;
	}
	if (!c->ns_given) {
		char h[32];
		human_size(h, sizeof h, tb);
		printf("  %16s %10lld  (total)\n", h, (long long)te);
	}
	if (bad)
		printf("\n%u counter file(s) failed their check and are left "
		       "out; the next\nflush sets them aside (stats/bad-*) "
		       "and counts from zero\n",
		       bad);
}

static void print_json(const struct cli *c, const larder_stats *s,
		       const char *dir)
{
	unsigned bad, shards = larder_stats_shards(s, &bad);
	size_t nc = larder_stats_counters(s), nn = larder_stats_namespaces(s);
	uint64_t v;
	fputs("{\"store\":", stdout);
	out_json_str(stdout, dir, strlen(dir));
	printf(",\"shards\":%u,\"shards_bad\":%u,\"counters\":{", shards, bad);
	for (size_t i = 0; i < nc; i++) {
		const char *name = larder_stats_counter(s, i, &v);
		printf("%s\"%s\":%llu", i ? "," : "", name,
		       (unsigned long long)v);
	}
	fputs("},\"namespaces\":{", stdout);
	int any = 0;
	for (size_t i = 0; i < nn; i++) {
		int64_t b, e;
		const char *ns = larder_stats_usage(s, i, &b, &e);
		if (!wanted(c, ns))
			continue;
		fputs(any++ ? "," : "", stdout);
		out_json_str(stdout, ns, strlen(ns));
		printf(":{\"bytes\":%lld,\"entries\":%lld}", (long long)b,
		       (long long)e);
	}
	fputs("}}\n", stdout);
}

/* One HELP line per counter this build knows; newer ones get a generic
 * one. */
static const char *prom_help(const char *name)
{
	static const struct {
		const char *name, *help;
	} h[] = {
	    {"hits", "Lookups answered from the cache."},
	    {"misses", "Lookups not answered from the cache (loaded, or "
		       "failed)."},
	    {"published", "Entries published."},
	    {"publish_raced", "Publishes that found the entry already "
			      "published by another."},
	    {"checksum_fail", "Entries that failed their checksum."},
	    {"quarantined", "Entries moved to quarantine."},
	    {"estale_retries", "Lookups retried after ESTALE."},
	    {"write_failures", "Failed writes to the store."},
	    {"expired", "Entries found expired."},
	    {"newer_format", "Entries written by a newer larder format."},
	    {"fills", "Loads run by get_or_fill."},
	    {"waits", "Lookups answered by another process's fill."},
	    {"fill_wait_ms", "Milliseconds spent waiting for other fillers."},
	    {"lease_breaks", "Stale leases broken."},
	    {"lease_lost", "Leases lost while loading."},
	    {"source_changed_during_load", "Loads retried because the source "
					   "changed."},
	    {"uncached", "Loads returned but not cached."},
	    {"files_hashed", "Source files whose content was hashed."},
	    {"files_hashed_bytes", "Bytes of source files hashed."},
	    {"files_remembered", "File hashes taken from the store."},
	    {"requests", "Lookups asked for: hits + misses + waits."},
	    {"evictions", "Entries removed by cleaning."},
	    {"bytes_evicted", "File bytes removed by cleaning."},
	    {"tmp_swept", "Stale temp, lease, break and quarantine files "
			  "removed."},
	    {"gc_runs", "Cleaning passes run."},
	    {"publish_refused", "Publishes refused at the stop watermark."},
	    {"touches", "Recency updates written on hits."},
	};
	for (size_t i = 0; i < sizeof h / sizeof *h; i++)
		if (strcmp(h[i].name, name) == 0)
			return h[i].help;
	return "A larder counter (written by a newer larder).";
}

static void print_prom(const struct cli *c, const larder_stats *s,
		       const char *dir)
{
	unsigned bad;
	larder_stats_shards(s, &bad);
	size_t nc = larder_stats_counters(s), nn = larder_stats_namespaces(s);
	uint64_t v;
	for (size_t i = 0; i < nc; i++) {
		const char *name = larder_stats_counter(s, i, &v);
		printf("# HELP larder_%s_total %s\n# TYPE larder_%s_total "
		       "counter\nlarder_%s_total{store=\"",
		       name, prom_help(name), name, name);
		prom_label(stdout, dir);
		printf("\"} %llu\n", (unsigned long long)v);
	}
	static const char *const gauges[2][2] = {
	    {"bytes", "File bytes of the entries of a namespace."},
	    {"entries", "Entries of a namespace."},
	};
	for (int g = 0; g < 2; g++) {
		printf("# HELP larder_usage_%s %s\n# TYPE larder_usage_%s "
		       "gauge\n",
		       gauges[g][0], gauges[g][1], gauges[g][0]);
		for (size_t i = 0; i < nn; i++) {
			int64_t b, e;
			const char *ns = larder_stats_usage(s, i, &b, &e);
			if (!wanted(c, ns))
				continue;
			printf("larder_usage_%s{store=\"", gauges[g][0]);
			prom_label(stdout, dir);
			fputs("\",ns=\"", stdout);
			prom_label(stdout, ns);
			printf("\"} %lld\n", (long long)(g ? e : b));
		}
	}
	printf("# HELP larder_counter_files_bad Counter files that failed "
	       "their check.\n# TYPE larder_counter_files_bad gauge\n"
	       "larder_counter_files_bad{store=\"");
	prom_label(stdout, dir);
	printf("\"} %u\n", bad);
}

static int run_stat(struct cli *c, int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"json", no_argument, NULL, OPT_JSON},
	    {"prometheus", no_argument, NULL, OPT_PROM},
	    {0},
	};
	int fmt = FMT_HUMAN, first, rc;
	larder *db = NULL;
	larder_stats *s = NULL;

	rc = cli_parse(c, &cli_cmd_stat, argc, argv, "", longopts, stat_opt,
		       &fmt, &first);
	if (rc != CLI_CONTINUE)
		return rc;
	if (first < argc)
		return cli_usage_err(c, "unexpected argument '%s'",
				     out_q(argv[first]));
	rc = cli_open(c, &db, NULL);
	if (rc != CLI_OK)
		return rc;
	/* This handle counted nothing worth keeping; reading includes its
	 * pending counts anyway, so no flush (and no write) is needed: stat
	 * works on a store it may only read. */
	rc = larder_stats_read(&s, db);
	if (rc < 0) {
		rc = cli_fail(c, db, rc);
		larder_close(db);
		return rc;
	}
	char real[PATH_MAX];
	const char *dir =
	    realpath(larder_dir(db), real) ? real : larder_dir(db);
	if (fmt == FMT_JSON)
		print_json(c, s, dir);
	else if (fmt == FMT_PROM)
		print_prom(c, s, dir);
	else
		print_human(c, s, dir);
	larder_stats_free(s);
	larder_close(db);
	return out_finish(c, stdout);
}

const struct cli_cmd cli_cmd_stat = {
    .name = "stat",
    .run = run_stat,
    .summary = "store-wide counters and usage per namespace",
    .usage = "[--json | --prometheus]",
    .help =
	"Print the store's counters (hits, misses, waits, fills, evictions, "
	"...),\n"
	"summed over every process that used the store, and each "
	"namespace's\n"
	"usage (entry file bytes and entries). With --ns NS, only that "
	"namespace's\n"
	"usage. Processes add their counts when they close the store (and "
	"about\n"
	"once a minute while they run): a running process's latest counts "
	"may be\n"
	"missing. Identity: hits + misses + waits = requests.\n\n"
	"Options:\n"
	"  --json        one JSON object: store, shards, shards_bad, "
	"counters,\n"
	"                namespaces (bytes, entries per namespace)\n"
	"  --prometheus  the Prometheus text format (larder_<counter>_total,\n"
	"                larder_usage_bytes{ns=...}, "
	"larder_usage_entries{ns=...},\n"
	"                each with a store label), for node_exporter's "
	"textfile\n"
	"                collector: larder stat --prometheus > "
	"DIR/larder.prom.$$ &&\n"
	"                mv DIR/larder.prom.$$ DIR/larder.prom\n",
};
