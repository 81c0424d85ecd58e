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

/* The length of the valid UTF-8 sequence at s (1 to 4), or 0 if the
 * bytes there are not one (a stray continuation byte, a truncated or
 * overlong sequence, a surrogate, past U+10FFFF). */
static size_t utf8_len(const unsigned char *s)
{
	unsigned c = s[0];
	size_t n = c < 0x80		    ? 1
		   : c >= 0xc2 && c <= 0xdf ? 2
		   : c >= 0xe0 && c <= 0xef ? 3
		   : c >= 0xf0 && c <= 0xf4 ? 4
					    : 0;
	for (size_t i = 1; i < n; i++)
		if ((s[i] & 0xc0) != 0x80)
			return 0;
	/* The second byte's range rules out overlong forms, surrogates and
	 * code points past U+10FFFF. */
	if ((c == 0xe0 && s[1] < 0xa0) || (c == 0xed && s[1] > 0x9f) ||
	    (c == 0xf0 && s[1] < 0x90) || (c == 0xf4 && s[1] > 0x8f))
		return 0;
	return n;
}

/* A Prometheus label value: backslash, double quote and newline escaped
 * (the exposition format's only escapes in label values). The format is
 * UTF-8, and a parser refuses a whole scrape over one bad byte: a path
 * (or any value) that is not UTF-8 has each bad byte replaced by U+FFFD,
 * as a text decoder shows it. */
static void prom_label(FILE *f, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	while (*p) {
		size_t n = utf8_len(p);
		if (*p == '\\')
			fputs("\\\\", f);
		else if (*p == '"')
			fputs("\\\"", f);
		else if (*p == '\n')
			fputs("\\n", f);
		else if (n == 0)
			fputs("\xef\xbf\xbd", f);
		else
			fwrite(p, 1, n, f);
		p += n ? n : 1;
	}
}

/* The namespace to show, or NULL for all. */
static int wanted(const struct cli *c, const char *ns)
{
	return !c->ns_given || strcmp(c->ns, ns) == 0;
}

/* The caps shown beside the usage: the store's, and those of each
 * namespace of the snapshot, by its index. */
struct caps {
	larder_limits store;
	larder_limits *ns;
};

static int read_caps(struct cli *c, larder *db, const larder_stats *s,
		     struct caps *out)
{
	size_t nn = larder_stats_namespaces(s);
	int rc;
	out->ns = calloc(nn ? nn : 1, sizeof *out->ns);
	if (!out->ns) {
		cli_err(c, "out of memory");
		return CLI_IO;
	}
	larder_limits_init(&out->store);
	if ((rc = larder_limits_get(&out->store, db, NULL)) != 0)
		return cli_fail(c, db, rc);
	for (size_t i = 0; i < nn; i++) {
		int64_t b, e;
		const char *ns = larder_stats_usage(&b, &e, s, i);
		larder_limits_init(&out->ns[i]);
		if (wanted(c, ns) &&
		    (rc = larder_limits_get(&out->ns[i], db, ns)) != 0)
			return cli_fail(c, db, rc);
	}
	return CLI_OK;
}

/* Which cap columns the usage table has: those that some row shown has
 * ("-" in a row without). */
struct cols {
	int bytes_cap, entries_cap;
};

/* A cap and the share of it used. The share is cut, not rounded, to a
 * tenth of a percent: 100.0% is at the cap or a hair past, never below. */
static void cap_cells(char *cap, size_t csize, char *pct, size_t psize,
		      int64_t used, int64_t max, int human)
{
	if (!max) {
		snprintf(cap, csize, "-");
		snprintf(pct, psize, "-");
		return;
	}
	if (human)
		human_size(cap, csize, max);
	else
		snprintf(cap, csize, "%lld", (long long)max);
	/* Per mille, truncated (both are >= 0); a double: no overflow. */
	long long pm = (long long)(1000.0 * (double)used / (double)max);
	snprintf(pct, psize, "%lld.%lld%%", pm / 10, pm % 10);
}

static void usage_row(const struct cols *k, const char *bytes,
		      const char *entries, const char *const caps[4],
		      const char *name)
{
	printf("  %16s", bytes);
	if (k->bytes_cap)
		printf("  %10s %6s", caps[0], caps[1]);
	printf(" %10s", entries);
	if (k->entries_cap)
		printf("  %11s %6s", caps[2], caps[3]);
	printf("  %s\n", name);
}

static void usage_line(const struct cols *k, int64_t b, int64_t e,
		       const larder_limits *l, const char *name)
{
	char hb[32], he[32], cb[32], pb[32], ce[32], pe[32];
	human_size(hb, sizeof hb, b);
	snprintf(he, sizeof he, "%lld", (long long)e);
	cap_cells(cb, sizeof cb, pb, sizeof pb, b, l->max_bytes, 1);
	cap_cells(ce, sizeof ce, pe, sizeof pe, e, l->max_entries, 0);
	const char *caps[4] = {cb, pb, ce, pe};
	usage_row(k, hb, he, caps, name);
}

static void print_human(const struct cli *c, const larder_stats *s,
			const struct caps *caps, const char *dir,
			const char *shared)
{
	unsigned bad, shards = larder_stats_shards(&bad, s);
	size_t nc = larder_stats_counters(s), nn = larder_stats_namespaces(s);
	int width = 0;
	uint64_t v;
	for (size_t i = 0; i < nc; i++) {
		int n = (int)strlen(larder_stats_counter(&v, s, i));
		width = n > width ? n : width;
	}
	/* The directory and the names of counters a newer larder wrote
	 * into the shards are not ours: escaped (docs/cli.md#escaping). */
	fputs("store ", stdout);
	out_text(stdout, dir, strlen(dir));
	printf(" (%u counter files%s)\n", shards,
	       bad ? ", some failed their check: see below" : "");
	/* A store with a shared tier: the near_* and shared_* counters are
	 * the tiers' (docs/operations.md). */
	if (shared) {
		fputs("shared tier ", stdout);
		out_text(stdout, shared, strlen(shared));
		fputs("\n", stdout);
	}
	printf("\ncounters\n");
	for (size_t i = 0; i < nc; i++) {
		const char *name = larder_stats_counter(&v, s, i);
		fputs("  ", stdout);
		out_text(stdout, name, strlen(name));
		printf("%*s %llu\n", width - (int)strlen(name), "",
		       (unsigned long long)v);
	}
	/* The cap columns appear when a row shown has such a cap. */
	struct cols k = {0, 0};
	if (!c->ns_given) {
		k.bytes_cap = caps->store.max_bytes != 0;
		k.entries_cap = caps->store.max_entries != 0;
	}
	for (size_t i = 0; i < nn; i++) {
		int64_t b, e;
		if (wanted(c, larder_stats_usage(&b, &e, s, i))) {
			k.bytes_cap |= caps->ns[i].max_bytes != 0;
			k.entries_cap |= caps->ns[i].max_entries != 0;
		}
	}
	static const char *const head[4] = {"max_bytes", "used", "max_entries",
					    "used"};
	printf("\nusage\n");
	usage_row(&k, "bytes", "entries", head, "namespace");
	for (size_t i = 0; i < nn; i++) {
		int64_t b, e;
		const char *ns = larder_stats_usage(&b, &e, s, i);
		if (wanted(c, ns))
			usage_line(&k, b, e, &caps->ns[i], out_q(ns));
	}
	if (!c->ns_given) {
		/* The whole store, internal namespaces included: what its
		 * cap is held against. */
		int64_t tb, te;
		cli_usage_total(s, &tb, &te);
		usage_line(&k, tb, te, &caps->store, "(total)");
		const larder_limits *l = &caps->store;
		if (l->wm_run)
			printf("\nfree-space watermarks: run %d%%, cull %d%%, "
			       "stop %d%% of the filesystem\n",
			       l->wm_run, l->wm_cull, l->wm_stop);
	}
	if (bad)
		printf("\n%u counter file(s) failed their check and are left "
		       "out; the next\nflush sets them aside (stats/bad-*) "
		       "and counts from zero\n",
		       bad);
}

/* "max_bytes":N,"max_entries":N, null for no cap. */
static void json_caps(const larder_limits *l)
{
	const int64_t v[2] = {l->max_bytes, l->max_entries};
	for (int i = 0; i < 2; i++) {
		printf("%s\"%s\":", i ? "," : "",
		       i ? "max_entries" : "max_bytes");
		if (v[i])
			printf("%lld", (long long)v[i]);
		else
			fputs("null", stdout);
	}
}

static void print_json(const struct cli *c, const larder_stats *s,
		       const struct caps *caps, const char *dir,
		       const char *shared)
{
	unsigned bad, shards = larder_stats_shards(&bad, s);
	size_t nc = larder_stats_counters(s), nn = larder_stats_namespaces(s);
	uint64_t v;
	fputs("{\"store\":", stdout);
	out_json_str(stdout, dir, strlen(dir));
	fputs(",\"shared\":", stdout);
	if (shared)
		out_json_str(stdout, shared, strlen(shared));
	else
		fputs("null", stdout);
	printf(",\"shards\":%u,\"shards_bad\":%u,\"counters\":{", shards, bad);
	for (size_t i = 0; i < nc; i++) {
		const char *name = larder_stats_counter(&v, s, i);
		fputs(i ? "," : "", stdout);
		out_json_str(stdout, name, strlen(name));
		printf(":%llu", (unsigned long long)v);
	}
	int64_t tb, te;
	cli_usage_total(s, &tb, &te);
	printf("},\"usage\":{\"bytes\":%lld,\"entries\":%lld},\"limits\":{",
	       (long long)tb, (long long)te);
	json_caps(&caps->store);
	const larder_limits *l = &caps->store;
	if (l->wm_run)
		printf(",\"watermarks\":{\"run\":%d,\"cull\":%d,\"stop\":%d}}",
		       l->wm_run, l->wm_cull, l->wm_stop);
	else
		fputs(",\"watermarks\":null}", stdout);
	fputs(",\"namespaces\":{", stdout);
	int any = 0;
	for (size_t i = 0; i < nn; i++) {
		int64_t b, e;
		const char *ns = larder_stats_usage(&b, &e, s, i);
		if (!wanted(c, ns))
			continue;
		fputs(any++ ? "," : "", stdout);
		out_json_str(stdout, ns, strlen(ns));
		printf(":{\"bytes\":%lld,\"entries\":%lld,\"limits\":{",
		       (long long)b, (long long)e);
		json_caps(&caps->ns[i]);
		fputs("}}", stdout);
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
	    {"gc_failures", "Cleanings that failed (lock, walk or removal)."},
	    {"walk_skipped", "Things in the store that walks skipped: not "
			     "larder's, or writable by others."},
	    {"memo_hits", "Hits served from a handle's memo of verified "
			  "entries."},
	    {"near_hits", "Entries read from the near tier."},
	    {"shared_hits", "Entries read from the shared tier."},
	    {"shared_copies", "Shared tier entries copied into the near "
			      "tier."},
	    {"shared_head_checks", "Version-less lookups asked of the shared "
				   "tier."},
	    {"shared_errors", "Calls to the shared tier that failed."},
	    {"shared_skipped", "Calls skipped while the shared tier was "
			       "down."},
	    {"shared_refused", "Entries the shared tier refused (too large "
			       "or full)."},
	    {"redis_lost_chunks", "Redis entries read with a chunk gone "
				  "(evicted or expired): misses."},
	    {"redis_wait_short", "Redis publishes whose WAIT saw fewer "
				 "replicas than asked."},
	};
	for (size_t i = 0; i < sizeof h / sizeof *h; i++)
		if (strcmp(h[i].name, name) == 0)
			return h[i].help;
	return "A larder counter (written by a newer larder).";
}

/* One sample of a gauge: name{store="DIR"[,ns="NS"]} v. */
static void prom_gauge(const char *name, const char *dir, const char *ns,
		       long long v)
{
	printf("%s{store=\"", name);
	prom_label(stdout, dir);
	if (ns) {
		fputs("\",ns=\"", stdout);
		prom_label(stdout, ns);
	}
	printf("\"} %lld\n", v);
}

static void print_prom(const struct cli *c, const larder_stats *s,
		       const struct caps *caps, const char *dir)
{
	unsigned bad;
	larder_stats_shards(&bad, s);
	size_t nc = larder_stats_counters(s), nn = larder_stats_namespaces(s);
	uint64_t v;
	for (size_t i = 0; i < nc; i++) {
		const char *name = larder_stats_counter(&v, s, i);
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
			const char *ns = larder_stats_usage(&b, &e, s, i);
			if (!wanted(c, ns))
				continue;
			char name[32];
			snprintf(name, sizeof name, "larder_usage_%s",
				 gauges[g][0]);
			prom_gauge(name, dir, ns, (long long)(g ? e : b));
		}
	}
	/* Caps that are set: the store's without an ns label (to Prometheus
	 * an empty label is no label), each namespace's with its own, so
	 * that larder_usage_bytes / larder_limit_bytes pairs a namespace's
	 * usage with its cap (docs/operations.md). */
	static const char *const limits[2][2] = {
	    {"bytes", "Cap on the entry files' bytes: of the store (no ns "
		      "label) or of a namespace."},
	    {"entries", "Cap on the number of entries: of the store (no ns "
			"label) or of a namespace."},
	};
	for (int g = 0; g < 2; g++) {
		printf("# HELP larder_limit_%s %s\n# TYPE larder_limit_%s "
		       "gauge\n",
		       limits[g][0], limits[g][1], limits[g][0]);
		char name[32];
		snprintf(name, sizeof name, "larder_limit_%s", limits[g][0]);
		int64_t cap =
		    g ? caps->store.max_entries : caps->store.max_bytes;
		if (cap)
			prom_gauge(name, dir, NULL, (long long)cap);
		for (size_t i = 0; i < nn; i++) {
			int64_t b, e;
			const char *ns = larder_stats_usage(&b, &e, s, i);
			cap =
			    g ? caps->ns[i].max_entries : caps->ns[i].max_bytes;
			if (wanted(c, ns) && cap)
				prom_gauge(name, dir, ns, (long long)cap);
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
	struct caps caps = {.ns = NULL};
	rc = read_caps(c, db, s, &caps);
	if (rc == CLI_OK) {
		char real[PATH_MAX];
		const char *dir =
		    realpath(larder_dir(db), real) ? real : larder_dir(db);
		if (fmt == FMT_JSON)
			print_json(c, s, &caps, dir, larder_shared(db));
		else if (fmt == FMT_PROM)
			print_prom(c, s, &caps, dir);
		else
			print_human(c, s, &caps, dir, larder_shared(db));
		rc = out_finish(c, stdout);
	}
	free(caps.ns);
	larder_stats_free(s);
	larder_close(db);
	return rc;
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
	"usage (entry file bytes and entries) beside its caps, if it has "
	"any, with\n"
	"the share of each cap used; the (total) row holds the store's "
	"caps, and\n"
	"the watermarks are shown when on. With --ns NS, only that "
	"namespace's\n"
	"usage. Processes add their counts when they close the store (and "
	"about\n"
	"once a minute while they run): a running process's latest counts "
	"may be\n"
	"missing. A hit writes nothing: the requests and hits (near_hits "
	"too) of a\n"
	"process that only hit and ran less than a minute (a `larder get` "
	"hit)\n"
	"are not counted. Identity: hits + misses + waits = requests. With a\n"
	"shared tier, its line names it and near_hits, shared_hits, "
	"shared_copies,\n"
	"shared_errors, ... count each tier's part (docs/redis.md).\n\n"
	"Options:\n"
	"  --json        one JSON object: store, shards, shards_bad, "
	"counters,\n"
	"                usage and limits (the store's), namespaces (bytes, "
	"entries,\n"
	"                limits per namespace); a cap not set is null\n"
	"  --prometheus  the Prometheus text format (larder_<counter>_total,\n"
	"                larder_usage_bytes{ns=...}, "
	"larder_usage_entries{ns=...},\n"
	"                larder_limit_bytes and larder_limit_entries for "
	"the caps\n"
	"                that are set, the store's without ns; each with a "
	"store\n"
	"                label), for node_exporter's textfile collector:\n"
	"                larder stat --prometheus > DIR/larder.prom.$$ &&\n"
	"                mv DIR/larder.prom.$$ DIR/larder.prom\n",
};
