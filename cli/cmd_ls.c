/*
 * cmd_ls.c — `larder ls`: list the entries of a namespace (or of all),
 * as text or JSON, printing what the headers say (larder_walk) with
 * caller bytes escaped for terminals and JSON.
 */
#include <string.h>

#include "cli.h"

/* Returned by a walk callback to stop the walk: stdout is gone. */
#define WALK_STOP 0x5701

enum { OPT_JSON = 256, OPT_ALL_NS };

struct ls_ctx {
	int json;
	int all_ns;
	size_t count;
};

static int ls_opt(struct cli *c, int id, const char *arg, void *ctx)
{
	struct ls_ctx *l = ctx;

	(void)arg;
	switch (id) {
	case OPT_JSON:
		l->json = 1;
		return CLI_CONTINUE;
	case OPT_ALL_NS:
		l->all_ns = 1;
		return CLI_CONTINUE;
	default:
		return cli_usage_err(c, "unknown option");
	}
}

static void ls_text(const struct ls_ctx *l, const larder_entry_info *info)
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
	printf("\t%llu\t%s\t%s\t%s\n", (unsigned long long)info->size, created,
	       expires, out_state_name(info->state));
}

static int ls_entry(const larder_entry_info *info, void *payload)
{
	struct ls_ctx *l = payload;

	if (l->json)
		print_info_json(stdout, info, ",", l->count ? ",\n{" : "\n{",
				"}");
	else
		ls_text(l, info);
	l->count++;
	return ferror(stdout) ? WALK_STOP : 0;
}

static int run_ls(struct cli *c, int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"json", no_argument, NULL, OPT_JSON},
	    {"all-namespaces", no_argument, NULL, OPT_ALL_NS},
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

	if (l.json)
		putchar('[');
	lrc = larder_walk(db, l.all_ns ? NULL : c->ns, 0, ls_entry, &l);
	/* A namespace nobody wrote to yet is simply empty. */
	if (lrc < 0 && lrc != LARDER_ENOTFOUND) {
		rc = cli_fail(c, db, lrc);
		goto out;
	}
	if (l.json)
		fputs(l.count ? "\n]\n" : "]\n", stdout);
	rc = out_finish(c, stdout);
out:
	larder_close(db);
	return rc;
}

const struct cli_cmd cli_cmd_ls = {
    .name = "ls",
    .run = run_ls,
    .summary = "list entries",
    .usage = "[--json] [--all-namespaces]",
    .help = "List the entries of the namespace, one per line, "
	    "tab-separated:\n"
	    "  KEY  VERSION  SIZE  CREATED  EXPIRES  STATE\n"
	    "(with --all-namespaces, NS first). Times are ISO-8601 UTC; "
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
	    "inspect)\n"
	    "  --all-namespaces   every namespace, not just --ns\n",
};
