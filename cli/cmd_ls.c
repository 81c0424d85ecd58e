/*
 * cmd_ls.c — `larder ls`: list the entries of a namespace (or of all),
 * as text or JSON, printing what the headers say (larder_walk) with
 * caller bytes escaped for terminals and JSON.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* Returned by a walk callback to stop the walk: stdout is gone. */
#define WALK_STOP 0x5701

enum { OPT_JSON = 256, OPT_ALL_NS, OPT_TIER };

/* An entry of the near tier kept for --tier all: its description, owned,
 * until the shared tier's walk says whether it holds the entry too. */
struct held {
	larder_entry_info info;
	struct held *next; /* in its bucket */
	int matched;	   /* printed as held by both tiers */
};

struct ls_ctx {
	int json;
	int all_ns;
	unsigned tiers;
	int tier_given; /* --tier, else the default */
	size_t count;
	/* --tier all: near's entries, by (ns, key, version) */
	struct held **bucket;
	size_t nbuckets, nheld;
	struct held **all; /* in walk order */
	size_t cap;
	int nomem;
};

static int ls_opt(struct cli *c, int id, const char *arg, void *ctx)
{
	struct ls_ctx *l = ctx;

	switch (id) {
	case OPT_JSON:
		l->json = 1;
		return CLI_CONTINUE;
	case OPT_ALL_NS:
		l->all_ns = 1;
		return CLI_CONTINUE;
	case OPT_TIER:
		l->tier_given = 1;
		return cli_tier_opt(c, arg, &l->tiers);
	default:
		return cli_usage_err(c, "unknown option");
	}
}

static void ls_text(const struct ls_ctx *l, const larder_entry_info *info,
		    const char *tier)
{
	char created[32], expires[32];

	if (info->created)
		out_iso_time(created, sizeof(created), info->created);
	else
		snprintf(created, sizeof(created), "?");
	if (info->expires)
		out_iso_time(expires, sizeof(expires), info->expires);
	else if (info->key)
		snprintf(expires, sizeof(expires), "never");
	else
		snprintf(expires, sizeof(expires), "?");
	if (l->all_ns) {
		out_text(stdout, info->ns, strlen(info->ns));
		putchar('\t');
	}
	if (info->key) {
		out_text(stdout, info->key, info->klen);
		putchar('\t');
		out_text(stdout, info->ver, info->vlen);
	} else {
		/* The header is unreadable: the state column says so. */
		fputs("?\t?", stdout);
	}
	printf("\t%llu\t%s\t%s\t%s", (unsigned long long)info->size, created,
	       expires, out_state_name(info->state));
	if (tier)
		printf("\t%s", tier);
	putchar('\n');
}

/* One line (or JSON object); tier: the TIER column's, NULL without it. */
static int ls_print(struct ls_ctx *l, const larder_entry_info *info,
		    const char *tier)
{
	char close[32];

	if (l->json) {
		if (tier)
			snprintf(close, sizeof close, ",\"tier\":\"%s\"}",
				 tier);
		print_info_json(stdout, info, ",", l->count ? ",\n{" : "\n{",
				tier ? close : "}");
	} else {
		ls_text(l, info, tier);
	}
	l->count++;
	return ferror(stdout) ? WALK_STOP : 0;
}

static int ls_entry(const larder_entry_info *info, void *payload)
{
	return ls_print(payload, info, NULL);
}

/* ---- --tier all: each entry once, with the tier(s) holding it ---- */

static void *dup_bytes(const void *p, size_t len)
{
	void *q = malloc(len ? len : 1);

	if (q && len)
		memcpy(q, p, len);
	return q;
}

static void held_free(struct held *h)
{
	if (!h)
		return;
	free((char *)h->info.ns);
	free((char *)h->info.path);
	free((char *)h->info.problem);
	free((void *)h->info.key);
	free((void *)h->info.ver);
	free((void *)h->info.meta);
	free(h);
}

/* FNV-1a over ns, key and version, each with its length. */
static size_t name_hash(const char *ns, const void *key, size_t klen,
			const void *ver, size_t vlen)
{
	const void *part[3] = {ns, key, ver};
	size_t len[3] = {strlen(ns), klen, vlen};
	uint64_t h = 1469598103934665603ull;

	for (int i = 0; i < 3; i++) {
		const unsigned char *p = part[i];
		for (size_t j = 0; j < len[i]; j++)
			h = (h ^ p[j]) * 1099511628211ull;
		h = (h ^ (len[i] & 0xff)) * 1099511628211ull;
	}
	return (size_t)h;
}

static int same_name(const larder_entry_info *a, const larder_entry_info *b)
{
	return strcmp(a->ns, b->ns) == 0 && a->klen == b->klen &&
	       a->vlen == b->vlen && memcmp(a->key, b->key, a->klen) == 0 &&
	       memcmp(a->ver, b->ver, a->vlen) == 0;
}

/* Keep a copy of a near entry (the info is the walk's during the call
 * only). */
static int hold_near(const larder_entry_info *info, void *payload)
{
	struct ls_ctx *l = payload;
	struct held *h;

	if (l->nheld == l->cap) {
		size_t cap = l->cap ? 2 * l->cap : 256;
		struct held **all = realloc(l->all, cap * sizeof *all);
		if (!all) {
			l->nomem = 1;
			return WALK_STOP;
		}
		l->all = all;
		l->cap = cap;
	}
	if (!(h = calloc(1, sizeof *h))) {
		l->nomem = 1;
		return WALK_STOP;
	}
	h->info = *info;
	h->info.ns = strdup(info->ns);
	h->info.path = strdup(info->path);
	h->info.problem = info->problem ? strdup(info->problem) : NULL;
	if (info->key) {
		h->info.key = dup_bytes(info->key, info->klen);
		h->info.ver = dup_bytes(info->ver, info->vlen);
		h->info.meta = dup_bytes(info->meta, info->meta_len);
	}
	l->all[l->nheld++] = h;
	if (!h->info.ns || !h->info.path ||
	    (info->problem && !h->info.problem) ||
	    (info->key && (!h->info.key || !h->info.ver || !h->info.meta))) {
		l->nomem = 1;
		return WALK_STOP;
	}
	return 0;
}

static int index_near(struct ls_ctx *l)
{
	l->nbuckets = 64;
	while (l->nbuckets < l->nheld)
		l->nbuckets *= 2;
	if (!(l->bucket = calloc(l->nbuckets, sizeof *l->bucket)))
		return -1;
	for (size_t i = 0; i < l->nheld; i++) {
		struct held *h = l->all[i];
		if (!h->info.key)
			continue; /* an unreadable header matches nothing */
		size_t b = name_hash(h->info.ns, h->info.key, h->info.klen,
				     h->info.ver, h->info.vlen) &
			   (l->nbuckets - 1);
		h->next = l->bucket[b];
		l->bucket[b] = h;
	}
	return 0;
}

/* A shared entry: "both" when near holds the same entry in the same
 * state (one line, near's description: the copy this host reads);
 * otherwise its own line, and a near copy in another state keeps its
 * own line too, so that a damaged copy on either side shows. */
static int ls_shared(const larder_entry_info *info, void *payload)
{
	struct ls_ctx *l = payload;

	if (info->key) {
		size_t b = name_hash(info->ns, info->key, info->klen, info->ver,
				     info->vlen) &
			   (l->nbuckets - 1);
		for (struct held *h = l->bucket[b]; h; h = h->next)
			if (!h->matched && h->info.state == info->state &&
			    same_name(&h->info, info)) {
				h->matched = 1;
				return ls_print(l, &h->info, "both");
			}
	}
	return ls_print(l, info, "shared");
}

static void ls_all_free(struct ls_ctx *l)
{
	for (size_t i = 0; i < l->nheld; i++)
		held_free(l->all[i]);
	free(l->all);
	free(l->bucket);
}

/* Walk the tiers asked for, printing as it goes: larder_walk's code. */
static int ls_walk(struct cli *c, larder *db, struct ls_ctx *l)
{
	const char *ns = l->all_ns ? NULL : c->ns;
	int rc;

	if (l->tiers == CLI_TIER_NEAR)
		return larder_walk(db, ns, 0, ls_entry, l);
	if (l->tiers == CLI_TIER_SHARED)
		return larder_walk(db, ns, LARDER_WALK_SHARED, ls_entry, l);
	rc = larder_walk(db, ns, 0, hold_near, l);
	if ((rc < 0 && rc != LARDER_ENOTFOUND) || l->nomem)
		return rc;
	if (index_near(l) != 0) {
		l->nomem = 1;
		return 0;
	}
	rc = larder_walk(db, ns, LARDER_WALK_SHARED, ls_shared, l);
	if (rc < 0 && rc != LARDER_ENOTFOUND && rc != WALK_STOP) {
		if (l->tier_given)
			return rc;
		/* The default listing degrades as a get does: this host's
		 * entries, and a warning that the shared tier's are not
		 * there. Asked for by name, its failure is the command's. */
		char msg[1200];
		snprintf(msg, sizeof msg,
			 "the shared tier was not listed (%s): only the near "
			 "tier's entries are",
			 larder_errmsg(db));
		fflush(stdout);
		cli_log(c, LARDER_LOG_WARN, msg);
	}
	/* What near alone holds: refused by the shared tier (too large),
	 * put while it was down, or evicted there since. */
	for (size_t i = 0; i < l->nheld && !ferror(stdout); i++)
		if (!l->all[i]->matched)
			ls_print(l, &l->all[i]->info, "near");
	return 0;
}

static int run_ls(struct cli *c, int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"json", no_argument, NULL, OPT_JSON},
	    {"all-namespaces", no_argument, NULL, OPT_ALL_NS},
	    {"tier", required_argument, NULL, OPT_TIER},
	    {0},
	};
	struct ls_ctx l = {0};
	larder *db = NULL;
	int first;
	int rc;
	int lrc;

	rc = cli_parse(c, &cli_cmd_ls, argc, argv, "", longopts, ls_opt, &l,
		       &first);
	if (rc != CLI_CONTINUE)
		return rc;
	if (first < argc)
		return cli_usage_err(c, "unexpected argument '%s'",
				     out_q(argv[first]));
	rc = cli_open(c, &db, NULL);
	if (rc != CLI_OK)
		return rc;
	rc = cli_tier_resolve(c, db, &l.tiers, CLI_TIER_ALL);
	if (rc != CLI_CONTINUE)
		goto out;

	if (l.json)
		putchar('[');
	lrc = ls_walk(c, db, &l);
	/* A namespace nobody wrote to yet is simply empty. */
	if (lrc < 0 && lrc != LARDER_ENOTFOUND) {
		rc = cli_fail(c, db, lrc);
		goto out;
	}
	if (l.nomem) {
		cli_err(c, "out of memory while listing both tiers (list "
			   "each with --tier near and --tier shared)");
		rc = CLI_IO;
		goto out;
	}
	if (l.json)
		fputs(l.count ? "\n]\n" : "]\n", stdout);
	rc = out_finish(c, stdout);
out:
	ls_all_free(&l);
	larder_close(db);
	return rc;
}

const struct cli_cmd cli_cmd_ls = {
    .name = "ls",
    .run = run_ls,
    .summary = "list entries",
    .usage = "[--json] [--all-namespaces] [--tier near|shared|all]",
    .help = "List the entries of the namespace, one per line, "
	    "tab-separated:\n"
	    "  KEY  VERSION  SIZE  CREATED  EXPIRES  STATE\n"
	    "(with --all-namespaces, NS first; when both tiers are listed, "
	    "TIER last:\n"
	    "near, shared or both). Times are ISO-8601 UTC; "
	    "EXPIRES is 'never'\n"
	    "for entries without a TTL; STATE is ok, expired, corrupt, "
	    "newer or misplaced\n"
	    "(from the header only: use verify to check payloads). Keys, "
	    "versions and\n"
	    "namespaces are escaped: '\\' as \\\\, tab, newline and CR as "
	    "\\t, \\n, \\r,\n"
	    "other control bytes and invalid UTF-8 as \\xHH, invisible and "
	    "bidirectional\n"
	    "characters as \\uHHHH (docs/cli.md); an unreadable header shows "
	    "'?'.\n\n"
	    "Options:\n"
	    "  --json             a JSON array of objects (fields as in "
	    "inspect, and\n"
	    "                     \"tier\" when both tiers are listed)\n"
	    "  --all-namespaces   every namespace, not just --ns\n"
	    "  --tier T           near: the store's own directory; shared: "
	    "its shared tier\n"
	    "                     (each entry read through it: Redis sends "
	    "every entry\n"
	    "                     whole); all: both, each entry once "
	    "(default with a\n"
	    "                     shared tier; without one, near)\n",
};
