/*
 * cmd_mount.c — `larder mount`: serve a store as a read-only filesystem
 * (docs/fuse.md) until it is unmounted or told to stop (SIGTERM, SIGINT,
 * SIGHUP). The filesystem itself is cli/mount/fs.c; this file checks the
 * mount point, mounts, detaches (unless --foreground) and runs libfuse's
 * multi-threaded loop.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include "cli.h"
#include "mount/fs.h"
#include "mount/mtab.h"

enum {
	OPT_NS = 256,
	OPT_FOREGROUND,
	OPT_ALLOW_OTHER,
	OPT_POLL,
	OPT_FAST_OPEN,
	OPT_DAEMON_OPEN
};

static const struct cli_duration dur_poll = {"--poll", 0.01, 3600, 0,
					     0,	       0,    NULL};

struct mount_opts {
	char **ns;
	size_t nns;
	int foreground;
	int allow_other;
	double poll;
	int daemon_open;
};

static int mount_opt(struct cli *c, int id, const char *arg, void *ctx)
{
	struct mount_opts *m = ctx;

	switch (id) {
	case OPT_NS: {
		char **v = realloc(m->ns, (m->nns + 1) * sizeof(*v));
		if (!v) {
			cli_err(c, "out of memory");
			return CLI_IO;
		}
		m->ns = v;
		m->ns[m->nns++] = (char *)arg;
		return CLI_CONTINUE;
	}
	case 'f':
	case OPT_FOREGROUND:
		m->foreground = 1;
		return CLI_CONTINUE;
	case OPT_ALLOW_OTHER:
		m->allow_other = 1;
		return CLI_CONTINUE;
	case OPT_POLL:
		return cli_duration_opt(c, &dur_poll, arg, &m->poll);
	case OPT_FAST_OPEN:
		/* What it asked for is the default now (docs/fuse.md):
		 * accepted so that command lines and units keep working. */
		return CLI_CONTINUE;
	case OPT_DAEMON_OPEN:
		m->daemon_open = 1;
		return CLI_CONTINUE;
	default:
		return cli_usage_err(c, "unknown option");
	}
}

/* "-o" options for libfuse: ',' and '\' in the store's path escaped. */
static char *fuse_options(const char *dir, int allow_other)
{
	size_t len = strlen(dir);
	char *esc = malloc(2 * len + 1), *o = NULL;
	size_t n = 0;

	if (!esc)
		return NULL;
	for (size_t i = 0; i < len; i++) {
		if (dir[i] == ',' || dir[i] == '\\')
			esc[n++] = '\\';
		esc[n++] = dir[i];
	}
	esc[n] = '\0';
	/* ro: the kernel refuses writes itself (EROFS); the operations
	 * refuse them too. default_permissions: the kernel checks the mode
	 * bits, which say read-only for all. */
	if (asprintf(
		&o,
		"-oro,default_permissions,fsname=larder:%s,subtype=larder%s",
		esc, allow_other ? ",allow_other" : "") < 0)
		o = NULL;
	free(esc);
	return o;
}

/* Check the mount point: a directory, and not a larder mount already. */
static int check_point(struct cli *c, const char *mnt)
{
	struct mount_entry me;
	struct stat st;
	int found = mount_find(mnt, &me);

	if (found < 0) {
		cli_err(c, "cannot read /proc/self/mountinfo: %s",
			strerror(errno));
		return CLI_IO;
	}
	if (found && strcmp(me.fstype, MOUNT_FSTYPE) == 0) {
		cli_err(c,
			"'%s' is a larder mount already (of '%s'); unmount it "
			"first with 'larder umount %s'",
			out_q(mnt), out_q(me.source), out_q(mnt));
		return CLI_USAGE;
	}
	if (stat(mnt, &st) != 0) {
		cli_err(c, "cannot use '%s' as a mount point: %s", out_q(mnt),
			strerror(errno));
		return CLI_USAGE;
	}
	if (!S_ISDIR(st.st_mode)) {
		cli_err(c, "cannot use '%s' as a mount point: not a directory",
			out_q(mnt));
		return CLI_USAGE;
	}
	return CLI_OK;
}

/* Each inode the kernel holds keeps its entry's file open (docs/fuse.md):
 * take every descriptor the hard limit allows. Failing costs only that
 * beyond the soft limit an inode is held from its first read instead.
 * The number of entries that may be held so: half the limit. */
static size_t raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return 0; /* cannot be: hold nothing from the lookups */
	if (rl.rlim_cur < rl.rlim_max) {
		struct rlimit up = {rl.rlim_max, rl.rlim_max};
		if (setrlimit(RLIMIT_NOFILE, &up) == 0)
			rl.rlim_cur = rl.rlim_max;
	}
	if (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur / 2 > SIZE_MAX)
		return SIZE_MAX;
	return (size_t)(rl.rlim_cur / 2);
}

static int run_mount(struct cli *c, int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"ns", required_argument, NULL, OPT_NS},
	    {"foreground", no_argument, NULL, OPT_FOREGROUND},
	    {"allow-other", no_argument, NULL, OPT_ALLOW_OTHER},
	    {"poll", required_argument, NULL, OPT_POLL},
	    {"fast-open", no_argument, NULL, OPT_FAST_OPEN},
	    {"daemon-open", no_argument, NULL, OPT_DAEMON_OPEN},
	    {0},
	};
	struct mount_opts m = {NULL, 0, 0, 0, 1.0, 0};
	struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
	struct fuse_session *se = NULL;
	struct fuse_loop_config *cfg = NULL;
	struct mount_fs fs;
	char store[PATH_MAX], mnt[PATH_MAX];
	char *opts = NULL;
	larder *db = NULL;
	int fs_made = 0, handlers = 0, mounted = 0;
	int first, rc, err;

	rc = cli_parse(c, &cli_cmd_mount, argc, argv, "f", longopts, mount_opt,
		       &m, &first);
	if (rc == CLI_CONTINUE && argc - first == 0)
		rc = cli_usage_err(c, "missing MOUNTPOINT");
	if (rc == CLI_CONTINUE && argc - first > 2)
		rc = cli_usage_err(c, "unexpected argument '%s'",
				   out_q(argv[first + 2]));
	if (rc != CLI_CONTINUE)
		goto out;
	/* -n NS (the global option) counts as one --ns. */
	if (c->ns_given && mount_opt(c, OPT_NS, c->ns, &m) != CLI_CONTINUE) {
		rc = CLI_IO;
		goto out;
	}
	if (argc - first == 2)
		c->dir = argv[first++];
	rc = cli_resolve_dir(c);
	if (rc != CLI_OK)
		goto out;
	/* Absolute paths: the daemon leaves the working directory. */
	if (!realpath(c->dir, store)) {
		cli_err(c, "cannot open store '%s': %s", out_q(c->dir),
			strerror(errno));
		rc = errno == ENOENT ? CLI_STORE : CLI_IO;
		goto out;
	}
	c->dir = store;
	if (mount_abspath(argv[first], mnt) != 0) {
		cli_err(c, "cannot use '%s' as a mount point: %s",
			out_q(argv[first]), strerror(errno));
		rc = CLI_USAGE;
		goto out;
	}
	for (size_t i = 0; i < m.nns; i++) {
		struct mount_fs any = {0};
		if (!mount_fs_ns_shown(&any, m.ns[i])) {
			rc = cli_usage_err(c, "bad namespace name '%s'",
					   out_q(m.ns[i]));
			goto out;
		}
	}
	rc = check_point(c, mnt);
	if (rc != CLI_OK)
		goto out;

	/* The filesystem keeps what it verified per inode itself, so the
	 * library's memo would only keep a second copy. */
	larder_opts lo = LARDER_OPTS_INIT;
	lo.flags = LARDER_OPEN_VERIFY_ALWAYS;
	rc = cli_open(c, &db, &lo);
	if (rc != CLI_OK)
		goto out;
	rc = mount_fs_init(&fs, db, store, m.ns, m.nns,
			   (unsigned)(m.poll * 1000 + 0.5));
	if (rc != 0) {
		if (rc == LARDER_ENOMEM)
			cli_err(c, "out of memory");
		else
			cli_err(c, "cannot stat '%s': %s", out_q(store),
				strerror(errno));
		rc = CLI_IO;
		goto out;
	}
	fs_made = 1;
	fs.daemon_open = m.daemon_open;
	fs.hold_max = raise_nofile();

	opts = fuse_options(store, m.allow_other);
	if (!opts || fuse_opt_add_arg(&args, "larder") != 0 ||
	    fuse_opt_add_arg(&args, opts) != 0) {
		cli_err(c, "out of memory");
		rc = CLI_IO;
		goto out;
	}
	se = fuse_session_new(&args, &mount_fs_ops, sizeof(mount_fs_ops), &fs);
	if (!se) {
		cli_err(c, "cannot start a FUSE session (see libfuse's "
			   "message above)");
		rc = CLI_IO;
		goto out;
	}
	fs.se = se;
	/* SIGTERM, SIGINT and SIGHUP end the loop; the unmount follows. */
	if (fuse_set_signal_handlers(se) != 0) {
		cli_err(c, "cannot install signal handlers");
		rc = CLI_IO;
		goto out;
	}
	handlers = 1;
	if (fuse_session_mount(se, mnt) != 0) {
		cli_err(c,
			"cannot mount on '%s' (see libfuse's message "
			"above; is /dev/fuse there, and fusermount3?)",
			out_q(mnt));
		rc = CLI_IO;
		goto out;
	}
	mounted = 1;
	/* Detach only now, so that whatever failed so far was said on the
	 * caller's terminal with a non-zero exit. */
	if (fuse_daemonize(m.foreground) != 0) {
		rc = CLI_IO;
		goto out;
	}
	/* In the detached child, a first flush tells the library that
	 * what the handle counted so far was the parent's: the child's own
	 * counts (a quarantine) are then written by its later flushes. */
	if (!m.foreground)
		larder_stats_flush(db);
	err = mount_watch_start(&fs);
	if (err)
		fprintf(stderr,
			"larder: mount: no head watch thread (%s): head "
			"dentries change when their timeout ends only\n",
			strerror(err));
	cfg = fuse_loop_cfg_create();
	if (!cfg) {
		rc = CLI_IO;
		goto out;
	}
	fuse_loop_cfg_set_max_threads(cfg, 32);
	/* A signal's number when one ended it: a clean stop. */
	rc = fuse_session_loop_mt(se, cfg) < 0 ? CLI_IO : CLI_OK;
	mount_watch_stop(&fs);
out:
	if (mounted)
		fuse_session_unmount(se);
	if (handlers)
		fuse_remove_signal_handlers(se);
	/* The store is closed (its counters written) before the session's
	 * device is: `larder umount` waits for the connection to go, so
	 * that once it returns this process touches the store no more. */
	if (fs_made)
		mount_fs_destroy(&fs);
	larder_close(db);
	if (se)
		fuse_session_destroy(se);
	fuse_loop_cfg_destroy(cfg);
	fuse_opt_free_args(&args);
	free(opts);
	free(m.ns);
	return rc;
}

const struct cli_cmd cli_cmd_mount = {
    .name = "mount",
    .run = run_mount,
    .summary = "serve the store as a read-only filesystem",
    .usage = "[--ns NS]... [--foreground] [--allow-other] [--poll DURATION] "
	     "[--daemon-open] [STORE] MOUNTPOINT",
    .help =
	"Mount the store (STORE, else --dir or its default) read-only at "
	"MOUNTPOINT,\n"
	"for programs that can only open a path (docs/fuse.md):\n"
	"  MOUNTPOINT/head/NS/KEY        the newest version of KEY (its "
	"head)\n"
	"  MOUNTPOINT/@VERSION/NS/KEY    a fixed version\n"
	"Keys and versions are file names as they are, but '%' '/' and NUL "
	"are\n"
	"written %25 %2F %00, the empty name is '%', and '.' and '..' are "
	"%2E and\n"
	"%2E%2E. A file's size is its payload's, its time the entry's "
	"creation; the\n"
	"xattrs user.larder.version, user.larder.expires and "
	"user.larder.checksum\n"
	"describe it. A lookup (stat, ls -l) reads an entry's header only "
	"and holds\n"
	"its file; the entry is verified at its first read, before any byte "
	"is\n"
	"served: a damaged one reads as EIO and is quarantined. Opens cost "
	"what\n"
	"they cost on a local file: the kernel makes them without asking "
	"the\n"
	"daemon. A file opened through head/ keeps the version it opened; "
	"the next\n"
	"open sees a newer one.\n\n"
	"It detaches once mounted and serves until 'larder umount "
	"MOUNTPOINT' or\n"
	"SIGTERM/SIGINT/SIGHUP, which unmount.\n\n"
	"Options:\n"
	"  --ns NS           show namespace NS (repeat it for more; default: "
	"every\n"
	"                    namespace)\n"
	"  -f, --foreground  stay in the foreground (for service managers)\n"
	"  --allow-other     let other users in (root, or user_allow_other "
	"in\n"
	"                    /etc/fuse.conf)\n"
	"  --poll DURATION   how often heads are looked at for a newer "
	"version\n"
	"                    (default 1s; a local publish is seen at once "
	"through\n"
	"                    inotify, one on another host of a network\n"
	"                    filesystem within this)\n"
	"  --daemon-open     every open asks the daemon (a round trip, "
	"20-50x a\n"
	"                    local open): should the daemon die, every later "
	"open\n"
	"                    fails (ENOTCONN), also of a file whose pages "
	"the\n"
	"                    kernel holds\n"
	"  --fast-open       accepted and ignored: what it asked for is the "
	"default\n",
};
