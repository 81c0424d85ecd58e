/*
 * cmd_init.c — `larder init`: create a store with its mode, fsync policy
 * and caps (on an existing one, set the caps and shared tier given).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"

struct init_args {
	unsigned mode; /* 0 = what the umask allows */
	int fsync;
	int parents;
	struct cli_limits limits;
	const char *shared; /* --shared, or NULL */
};

enum { OPT_MODE = 256, OPT_FSYNC, OPT_PARENTS };

/* The store modes of docs/security.md: their names and octal spellings. */
static const struct {
	const char *name, *octal, *octal3;
	unsigned mode;
} init_modes[] = {
    {"private", "0600", "600", 0600}, {"group-read", "0640", "640", 0640},
    {"public", "0644", "644", 0644},  {"group", "0660", "660", 0660},
    {NULL, "0664", "664", 0664},
};

static const char *mode_name(unsigned mode)
{
	for (size_t i = 0; i < sizeof init_modes / sizeof *init_modes; i++)
		if (init_modes[i].mode == mode && init_modes[i].name)
			return init_modes[i].name;
	return NULL;
}

static int init_opt(struct cli *c, int id, const char *arg, void *ctx)
{
	struct init_args *a = ctx;

	if (id == OPT_MODE) {
		for (size_t i = 0; i < sizeof init_modes / sizeof *init_modes;
		     i++)
			if ((init_modes[i].name &&
			     strcmp(arg, init_modes[i].name) == 0) ||
			    strcmp(arg, init_modes[i].octal) == 0 ||
			    strcmp(arg, init_modes[i].octal3) == 0) {
				a->mode = init_modes[i].mode;
				return CLI_CONTINUE;
			}
		return cli_usage_err(c,
				     "bad --mode '%s' (want private, "
				     "group-read, public, group, or 0600, "
				     "0640, 0644, 0660, 0664)",
				     out_q(arg));
	}
	if (id == OPT_FSYNC) {
		if (strcmp(arg, "none") == 0)
			a->fsync = LARDER_FSYNC_NONE;
		else if (strcmp(arg, "data") == 0)
			a->fsync = LARDER_FSYNC_DATA;
		else if (strcmp(arg, "full") == 0)
			a->fsync = LARDER_FSYNC_FULL;
		else
			return cli_usage_err(c,
					     "bad --fsync '%s' (want none, "
					     "data or full)",
					     arg);
		return CLI_CONTINUE;
	}
	if (id == OPT_PARENTS) {
		a->parents = 1;
		return CLI_CONTINUE;
	}
	if (id == CLI_OPT_SHARED) {
		a->shared = arg;
		return CLI_CONTINUE;
	}
	return cli_limit_opt(c, &a->limits, id, arg);
}

/* Make every missing parent directory of dir, as `mkdir -p` would (the
 * umask decides their modes: they are not the store's). CLI_OK, or the
 * exit code after reporting. */
static int make_parents(struct cli *c, const char *dir)
{
	char *path = strdup(dir);
	int rc = CLI_OK;

	if (!path) {
		cli_err(c, "out of memory");
		return CLI_IO;
	}
	char *end = strrchr(path, '/');
	if (end)
		*end = '\0';
	for (char *p = path + 1; end && *path; p++) {
		if (*p != '/' && *p != '\0')
			continue;
		char was = *p;
		*p = '\0';
		if (mkdir(path, 0777) != 0 && errno != EEXIST) {
			cli_err(c, "cannot create '%s': %s", path,
				strerror(errno));
			rc = CLI_STORE;
			break;
		}
		*p = was;
		if (!was)
			break;
	}
	free(path);
	return rc;
}

/* Whether dir's parent directory exists ("." for a bare name). */
static int parent_exists(const char *dir)
{
	char *path = strdup(dir);
	if (!path)
		return 1; /* let the library say what is wrong */
	char *end = strrchr(path, '/');
	struct stat st;
	int ok = !end || end == path ||
		 (*end = '\0', stat(path, &st) == 0 || errno != ENOENT);
	free(path);
	return ok;
}

static int run_init(struct cli *c, int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"mode", required_argument, NULL, OPT_MODE},
	    {"fsync", required_argument, NULL, OPT_FSYNC},
	    {"parents", no_argument, NULL, OPT_PARENTS},
	    {"max-bytes", required_argument, NULL, CLI_OPT_MAX_BYTES},
	    {"max-entries", required_argument, NULL, CLI_OPT_MAX_ENTRIES},
	    {"shared", required_argument, NULL, CLI_OPT_SHARED},
	    {0},
	};
	struct init_args a;
	memset(&a, 0, sizeof a);
	a.fsync = LARDER_FSYNC_DATA;
	larder_opts opts = LARDER_OPTS_INIT;
	larder *db = NULL;
	int first;
	int rc;

	rc = cli_parse(c, &cli_cmd_init, argc, argv, "", longopts, init_opt, &a,
		       &first);
	if (rc != CLI_CONTINUE)
		return rc;
	if (first < argc)
		return cli_usage_err(c, "unexpected argument '%s'",
				     argv[first]);
	rc = cli_resolve_dir(c);
	if (rc != CLI_OK)
		return rc;
	/* A mistyped --dir must not grow a tree: parents are made only when
	 * asked, or for the default directory (~/.cache may not exist yet,
	 * and nobody typed it). */
	if (a.parents || c->dir_buf) {
		rc = make_parents(c, c->dir);
		if (rc != CLI_OK)
			return rc;
	} else if (!parent_exists(c->dir)) {
		cli_err(c,
			"cannot create store '%s': its parent directory does "
			"not exist (create it, or use --parents)",
			out_q(c->dir));
		return CLI_STORE;
	}

	opts.flags = LARDER_OPEN_CREATE;
	opts.create_mode = a.mode;
	/* Setting the shared tier: not through the one set before (which
	 * may be the mistake being corrected). */
	if (a.shared)
		opts.shared = "";
	opts.create_fsync = a.fsync;
	rc = cli_open(c, &db, &opts);
	if (rc != CLI_OK)
		return rc;
	/* An existing store keeps its mode: saying "ready" would let the
	 * user believe it changed. */
	if (a.mode && larder_mode(db) != a.mode) {
		unsigned has = larder_mode(db);
		const char *name = mode_name(has);
		cli_err(
		    c,
		    "store '%s' exists with mode %04o%s%s%s, not %04o: init "
		    "does not change a store's mode (see \"Changing a "
		    "store's mode\" in docs/cli.md, or 'larder help init')",
		    out_q(larder_dir(db)), has, name ? " (" : "",
		    name ? name : "", name ? ")" : "", a.mode);
		larder_close(db);
		return CLI_STORE;
	}
	if (a.limits.set_bytes || a.limits.set_entries) {
		rc = cli_limits_apply(c, db, NULL, &a.limits);
		if (rc != CLI_OK) {
			larder_close(db);
			return rc;
		}
	}
	if (a.shared && (rc = cli_shared_apply(c, db, a.shared)) != CLI_OK) {
		larder_close(db);
		return rc;
	}
	if (c->verbose)
		fprintf(stderr,
			"larder: init: store ready at '%s' (mode %04o)\n",
			out_q(larder_dir(db)), larder_mode(db));
	larder_close(db);
	return CLI_OK;
}

const struct cli_cmd cli_cmd_init = {
    .name = "init",
    .run = run_init,
    .summary = "create the store (an existing one: set its caps, shared tier)",
    .usage = "[--mode MODE] [--parents] [--fsync none|data|full] "
	     "[--max-bytes SIZE] [--max-entries N] [--shared WHERE]",
    .help = "Create the store at DIR (and DIR itself if missing; its parent "
	    "must exist\n"
	    "unless --parents). On an existing store this changes nothing "
	    "but the\n"
	    "settings given (--max-bytes, --max-entries, --shared) and "
	    "succeeds;\n"
	    "--fsync applies only to a new store, and --mode naming another "
	    "mode than\n"
	    "the store's fails (exit 3): a store's mode is changed by hand "
	    "(docs/cli.md,\n"
	    "\"Changing a store's mode\").\n\n"
	    "Options:\n"
	    "  --mode MODE             who may use the store "
	    "(docs/security.md):\n"
	    "                            private, 0600     the owner only\n"
	    "                            group-read, 0640  the group reads\n"
	    "                            public, 0644      everyone reads\n"
	    "                            group, 0660       the group "
	    "publishes too\n"
	    "                            0664              the group "
	    "publishes, everyone\n"
	    "                                              reads\n"
	    "                          default: the widest the umask allows "
	    "(022: 0644,\n"
	    "                          027: 0640, 077: 0600, 007: 0660, 002: "
	    "0664)\n"
	    "  --parents               create DIR's missing parent "
	    "directories\n"
	    "  --fsync none|data|full  the store's durability policy "
	    "(default data):\n"
	    "                          none leaves it to the kernel, data "
	    "syncs each\n"
	    "                          entry before publishing it, full "
	    "also syncs the\n"
	    "                          directory\n"
	    "  --max-bytes SIZE        cap the store's entry bytes (K, M, G, "
	    "T suffixes);\n"
	    "                          set on an existing store too (as "
	    "`larder config`)\n"
	    "  --max-entries N         cap the store's number of entries\n"
	    "  --shared WHERE          a shared tier behind this store, which "
	    "becomes its\n"
	    "                          near tier (docs/redis.md): a store "
	    "directory\n"
	    "                          (absolute; made a store if need be), or "
	    "Redis:\n"
	    "                            redis://[user:password@]host:port/db\n"
	    "                            "
	    "redis+sentinel://[user:password@]s1:p1,s2:p2/master\n"
	    "                            unix:///path/to/redis.sock?db=N\n"
	    "                          settings in the query: "
	    "?timeout_ms=N&wait_replicas=N\n"
	    "                          &wait_ms=N&max_entry=BYTES&prefix=P. A "
	    "password\n"
	    "                          left out of the URI is taken from\n"
	    "                          LARDER_REDIS_PASSWORD at each run. Set "
	    "on an\n"
	    "                          existing store too (as `larder "
	    "config`); '' removes\n"
	    "                          it. Tried at once: one that does not "
	    "answer is set\n"
	    "                          all the same, with a warning. "
	    "LARDER_SHARED\n"
	    "                          overrides it for one run\n",
};
