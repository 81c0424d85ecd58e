/*
 * cmd_verify.c — `larder verify`: check every entry's header and payload
 * (larder_walk), report what is damaged and, with --repair, move it to
 * quarantine.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"

enum { OPT_JSON = 256, OPT_REPAIR, OPT_TIER };

/* What a repair did to a damaged entry. */
enum fate {
	FATE_REMAINS,	  /* still there (no --repair, or it could not move) */
	FATE_QUARANTINED, /* moved to quarantine/ by this walk */
	FATE_GONE	  /* not moved by us, but gone by the end: removed
			     meanwhile by someone else */
};

struct problem {
	struct problem *next;
	int state;
	int quarantined; /* the library moved it (larder_entry_info) */
	int shared;	 /* found in the shared tier: path is no local file */
	enum fate fate;
	char *ns, *path, *problem;
	void *key, *ver;
	size_t klen, vlen;
};

struct verify_ctx {
	int repair;
	int json;
	unsigned tiers;
	int in_shared; /* the walk under way is the shared tier's */
	int failed;    /* out of memory while recording a problem */
	size_t checked, ok, corrupt, expired, misplaced, newer, quarantined,
	    remaining;
	/* Things the walk could not check (a symlink, a stray file, a
	 * directory others may write): each was warned about, and each
	 * remains a problem, since --repair leaves them to a person. */
	size_t skipped;
	struct problem *head, **tail;
	/* Entries of a newer format: noted, not problems. */
	struct problem *newer_head, **newer_tail;
};

static int verify_opt(struct cli *c, int id, const char *arg, void *ctx)
{
	struct verify_ctx *v = ctx;

	switch (id) {
	case OPT_REPAIR:
		v->repair = 1;
		return CLI_CONTINUE;
	case OPT_JSON:
		v->json = 1;
		return CLI_CONTINUE;
	case OPT_TIER:
		return cli_tier_opt(c, arg, &v->tiers);
	default:
		return cli_usage_err(c, "unknown option");
	}
}

static void *memdup(const void *p, size_t len)
{
	void *q = malloc(len ? len : 1);

	if (q && len)
		memcpy(q, p, len);
	return q;
}

static void problem_free(struct problem *p)
{
	if (!p)
		return;
	free(p->ns);
	free(p->path);
	free(p->problem);
	free(p->key);
	free(p->ver);
	free(p);
}

static void problems_free(struct problem *p)
{
	while (p) {
		struct problem *next = p->next;

		problem_free(p);
		p = next;
	}
}

/* Keep a copy of an entry's description on the list at *tail: the info
 * is only valid during the callback, and the report is printed after the
 * walk. */
static int record(struct problem ***tail, const larder_entry_info *info,
		  int shared)
{
	const char *why = info->problem ? info->problem : "";
	struct problem *p = calloc(1, sizeof(*p));

	if (!p)
		return -1;
	p->state = info->state;
	p->quarantined = info->quarantined;
	p->shared = shared;
	p->ns = strdup(info->ns);
	p->path = strdup(info->path);
	p->problem = strdup(why);
	if (info->key) {
		p->key = memdup(info->key, info->klen);
		p->ver = memdup(info->ver, info->vlen);
		p->klen = info->klen;
		p->vlen = info->vlen;
	}
	if (!p->ns || !p->path || !p->problem ||
	    (info->key && (!p->key || !p->ver))) {
		problem_free(p);
		return -1;
	}
	**tail = p;
	*tail = &p->next;
	return 0;
}

static int verify_entry(const larder_entry_info *info, void *payload)
{
	struct verify_ctx *v = payload;

	v->checked++;
	switch (info->state) {
	case LARDER_STATE_OK:
		v->ok++;
		return 0;
	case LARDER_STATE_EXPIRED:
		v->expired++;
		return 0;
	case LARDER_STATE_NEWER:
		/* A newer larder's entry: left alone, and said. */
		v->newer++;
		if (record(&v->newer_tail, info, v->in_shared) < 0)
			v->failed = 1;
		return 0;
	case LARDER_STATE_MISPLACED:
		v->misplaced++;
		break;
	default:
		v->corrupt++;
		break;
	}
	if (record(&v->tail, info, v->in_shared) < 0)
		v->failed = 1;
	return 0;
}

/* What became of each damaged entry. Only what the library says it moved
 * counts as quarantined; one that vanished otherwise (another verify, a
 * gc, an rm) is no longer a problem, but no repair of ours either. */
static void settle(struct verify_ctx *v)
{
	struct stat sb;

	for (struct problem *p = v->head; p; p = p->next) {
		if (p->quarantined)
			p->fate = FATE_QUARANTINED;
		else if (v->repair && !p->shared && lstat(p->path, &sb) < 0 &&
			 errno == ENOENT)
			p->fate = FATE_GONE;
		else
			p->fate = FATE_REMAINS;
		if (p->fate == FATE_QUARANTINED)
			v->quarantined++;
		else if (p->fate == FATE_REMAINS)
			v->remaining++;
	}
}

static const char *const fate_text[] = {
    [FATE_REMAINS] = "",
    [FATE_QUARANTINED] = ": quarantined",
    [FATE_GONE] = ": gone (removed meanwhile, not by this repair)",
};

static void print_problem_text(const struct problem *p)
{
	out_text(stdout, p->path, strlen(p->path));
	printf(": %s: ", out_state_name(p->state));
	out_text(stdout, p->problem, strlen(p->problem));
	printf(" (ns %s", p->ns);
	if (p->key) {
		fputs(", key '", stdout);
		out_text(stdout, p->key, p->klen);
		fputs("', version '", stdout);
		out_text(stdout, p->ver, p->vlen);
		putchar('\'');
	}
	printf(")%s\n", fate_text[p->fate]);
}

static void print_newer_text(const struct problem *p)
{
	out_text(stdout, p->path, strlen(p->path));
	printf(": %s: written by a newer larder format (left alone; not a "
	       "problem)\n",
	       out_state_name(p->state));
}

static void print_problem_json(const struct problem *p, int first)
{
	fputs(first ? "\n  {" : ",\n  {", stdout);
	fputs("\"ns\":", stdout);
	out_json_str(stdout, p->ns, strlen(p->ns));
	fputc(',', stdout);
	out_json_bytes_field(stdout, "key", p->key, p->klen);
	fputc(',', stdout);
	out_json_bytes_field(stdout, "version", p->key ? p->ver : NULL,
			     p->vlen);
	printf(",\"state\":\"%s\",\"problem\":", out_state_name(p->state));
	out_json_str(stdout, p->problem, strlen(p->problem));
	fputs(",\"path\":", stdout);
	out_json_str(stdout, p->path, strlen(p->path));
	printf(",\"quarantined\":%s,\"gone\":%s}",
	       p->fate == FATE_QUARANTINED ? "true" : "false",
	       p->fate == FATE_GONE ? "true" : "false");
}

static void print_report(const struct verify_ctx *v)
{
	int first = 1;

	if (v->json) {
		printf("{\"checked\":%zu,\"ok\":%zu,\"corrupt\":%zu,"
		       "\"expired\":%zu,\"misplaced\":%zu,\"newer\":%zu,"
		       "\"skipped\":%zu,\"quarantined\":%zu,\"remaining\":%zu,"
		       "\"problems\":[",
		       v->checked, v->ok, v->corrupt, v->expired, v->misplaced,
		       v->newer, v->skipped, v->quarantined,
		       v->remaining + v->skipped);
		for (const struct problem *p = v->head; p; p = p->next) {
			print_problem_json(p, first);
			first = 0;
		}
		fputs(first ? "],\"newer_paths\":[" : "\n],\"newer_paths\":[",
		      stdout);
		first = 1;
		for (const struct problem *p = v->newer_head; p; p = p->next) {
			fputs(first ? "\n  " : ",\n  ", stdout);
			out_json_str(stdout, p->path, strlen(p->path));
			first = 0;
		}
		fputs(first ? "]}\n" : "\n]}\n", stdout);
		return;
	}
	for (const struct problem *p = v->newer_head; p; p = p->next)
		print_newer_text(p);
	for (const struct problem *p = v->head; p; p = p->next)
		print_problem_text(p);
	printf("%zu entries checked, %zu ok, %zu corrupt, %zu expired, "
	       "%zu misplaced, %zu newer format, %zu skipped, %zu quarantined, "
	       "%zu problems remain\n",
	       v->checked, v->ok, v->corrupt, v->expired, v->misplaced,
	       v->newer, v->skipped, v->quarantined, v->remaining + v->skipped);
}

static int run_verify(struct cli *c, int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"repair", no_argument, NULL, OPT_REPAIR},
	    {"json", no_argument, NULL, OPT_JSON},
	    {"tier", required_argument, NULL, OPT_TIER},
	    {0},
	};
	struct verify_ctx v = {0};
	larder *db = NULL;
	unsigned flags = LARDER_WALK_VERIFY;
	int first;
	int rc;
	int lrc;

	v.tail = &v.head;
	v.newer_tail = &v.newer_head;
	rc = cli_parse(c, &cli_cmd_verify, argc, argv, "", longopts, verify_opt,
		       &v, &first);
	if (rc != CLI_CONTINUE)
		return rc;
	if (first < argc)
		return cli_usage_err(c, "unexpected argument '%s'",
				     argv[first]);
	rc = cli_open(c, &db, NULL);
	if (rc != CLI_OK)
		return rc;
	/* Near unless asked: what this host keeps. The shared tier is every
	 * host's, and verifying it reads every entry through it (all of
	 * Redis over the network): one host's job, asked for by name. */
	rc = cli_tier_resolve(c, db, &v.tiers, CLI_TIER_NEAR);
	if (rc != CLI_CONTINUE) {
		larder_close(db);
		return rc;
	}

	if (v.repair)
		flags |= LARDER_WALK_REPAIR;
	/* The whole store unless a namespace was named: the users'
	 * namespaces, then the library's own remembered file hashes (".files":
	 * a damaged one would give a wrong version). */
	uint64_t skipped0 = larder_counter(db, LARDER_CTR_WALK_SKIPPED);
	lrc = 0;
	for (unsigned t = CLI_TIER_NEAR; t <= CLI_TIER_SHARED && lrc >= 0;
	     t <<= 1) {
		unsigned f =
		    flags | (t == CLI_TIER_SHARED ? LARDER_WALK_SHARED : 0);
		if (!(v.tiers & t))
			continue;
		v.in_shared = t == CLI_TIER_SHARED;
		lrc = larder_walk(db, c->ns_given ? c->ns : NULL, f,
				  verify_entry, &v);
		if (lrc >= 0 && !c->ns_given) {
			lrc = larder_walk(db, ".files", f, verify_entry, &v);
			if (lrc == LARDER_ENOTFOUND)
				lrc = 0;
		}
	}
	v.skipped =
	    (size_t)(larder_counter(db, LARDER_CTR_WALK_SKIPPED) - skipped0);
	settle(&v);
	print_report(&v);
	rc = out_finish(c, stdout);
	if (v.failed) {
		cli_err(c, "out of memory: not every problem is listed");
		rc = CLI_IO;
	}
	if (lrc < 0 && !(lrc == LARDER_ENOTFOUND && c->ns_given))
		rc = cli_fail(c, db, lrc);
	else if (rc == CLI_OK && (v.remaining || v.skipped || v.failed))
		rc = CLI_PROBLEMS;
	problems_free(v.head);
	problems_free(v.newer_head);
	larder_close(db);
	return rc;
}

const struct cli_cmd cli_cmd_verify = {
    .name = "verify",
    .run = run_verify,
    .summary = "check every entry's header and payload",
    .usage = "[--repair] [--json] [--tier near|shared|all]",
    .help = "Read and hash every entry of the store, including the remembered "
	    "file hashes\n"
	    "(namespace .files), or of one namespace if --ns is given;\n"
	    "print each damaged one (corrupt or misplaced) and a summary "
	    "line:\n"
	    "  N entries checked, N ok, N corrupt, N expired, N misplaced,\n"
	    "  N newer format, N skipped, N quarantined, N problems remain\n"
	    "Anything at an entry's name that is not a regular file is "
	    "corrupt; a zstd\n"
	    "entry is decompressed to check it. Expired and newer-format "
	    "entries are\n"
	    "counted, not problems (newer ones are listed). What the walk "
	    "cannot check\n"
	    "(a symbolic link, a stray file, a directory every user may "
	    "write) is\n"
	    "warned about, skipped and left for you: a problem that "
	    "remains.\n"
	    "Exits 5 if problems remain.\n\n"
	    "Options:\n"
	    "  --repair   move damaged entries to the store's quarantine/ "
	    "directory (in a\n"
	    "             shared tier: a shared directory's quarantine/; "
	    "Redis deletes them)\n"
	    "  --json     the report as one JSON object\n"
	    "  --tier T   near (the default): the store's own directory; "
	    "shared: its\n"
	    "             shared tier, each entry read whole through it and "
	    "hashed (a\n"
	    "             problem's path names where it is kept there); "
	    "all: both\n",
};
