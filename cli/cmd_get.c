/*
 * cmd_get.c — `larder get`: an entry's payload to stdout or to a file.
 *
 * A file is written under a temp name in its own directory and renamed
 * into place only when complete, so a failed or interrupted get never
 * leaves a partial file under the requested name. The temp file is
 * removed on SIGINT/SIGTERM/SIGHUP too (by this process only).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

/* The temp file to remove if a signal ends the process mid-write: built
 * before it is published here, so the handler only reads it. */
static char *volatile tmp_path;

static void on_signal(int sig)
{
	char *path = tmp_path;

	if (path)
		unlink(path);
	/* Die of the same signal, so the caller sees how we ended. */
	signal(sig, SIG_DFL);
	raise(sig);
}

static const int guarded_sigs[] = {SIGINT, SIGTERM, SIGHUP};

/* Create the temp file from `path` (a mkostemp template) and have it
 * removed if a signal ends the process. Signals are blocked meanwhile so
 * that none falls between creating the file and registering it. */
static int tmp_create(char *path)
{
	struct sigaction sa;
	sigset_t block, old;
	int fd;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigemptyset(&block);
	for (size_t i = 0; i < sizeof(guarded_sigs) / sizeof(int); i++) {
		struct sigaction cur;

		/* A signal our parent ignores (nohup, a background job)
		 * must stay ignored: catching it would make us die of it. */
		if (sigaction(guarded_sigs[i], NULL, &cur) == 0 &&
		    cur.sa_handler == SIG_IGN)
			continue;
		sigaction(guarded_sigs[i], &sa, NULL);
		sigaddset(&block, guarded_sigs[i]);
	}
	sigprocmask(SIG_BLOCK, &block, &old);
	fd = mkostemp(path, O_CLOEXEC);
	if (fd >= 0)
		tmp_path = path;
	sigprocmask(SIG_SETMASK, &old, NULL);
	return fd;
}

static void tmp_forget(void)
{
	tmp_path = NULL;
}

/* The mode a plain creat() would give: 0666 less the umask. */
static mode_t default_mode(void)
{
	mode_t mask = umask(0);

	umask(mask);
	return 0666 & ~mask;
}

/* Write all of data to fd in slices, for the progress line. Returns 0 or
 * an errno value. */
static int write_progress(int fd, const void *data, size_t len, int to_stdout)
{
	const size_t slice = 1 << 20;
	struct cli_progress prog;
	const char *p = data;
	int err = 0;

	progress_start(&prog, "writing", to_stdout);
	while (len > 0 && !err) {
		size_t n = len < slice ? len : slice;

		err = out_write_all(fd, p, n);
		progress_add(&prog, n);
		p += n;
		len -= n;
	}
	progress_end(&prog);
	return err;
}

static int write_file(struct cli *c, const char *file, const void *data,
		      size_t len)
{
	char *tmp = NULL;
	int fd = -1;
	int err;
	int rc = CLI_IO;

	if (asprintf(&tmp, "%s.tmp-XXXXXX", file) < 0) {
		cli_err(c, "out of memory");
		return CLI_IO;
	}
	fd = tmp_create(tmp);
	if (fd < 0) {
		cli_err(c, "cannot create a temp file beside '%s': %s", file,
			strerror(errno));
		free(tmp);
		return CLI_IO;
	}
	if (fchmod(fd, default_mode()) < 0) {
		cli_err(c, "cannot chmod '%s': %s", tmp, strerror(errno));
		goto out;
	}
	err = write_progress(fd, data, len, 0);
	if (err) {
		cli_err(c, "cannot write '%s': %s", tmp, strerror(err));
		goto out;
	}
	/* Without it a crash just after the rename can leave an empty file
	 * under the final name on some filesystems. */
	if (fsync(fd) < 0) {
		cli_err(c, "cannot sync '%s': %s", tmp, strerror(errno));
		goto out;
	}
	if (close(fd) < 0) {
		fd = -1;
		cli_err(c, "cannot write '%s': %s", tmp, strerror(errno));
		goto out;
	}
	fd = -1;
	if (rename(tmp, file) < 0) {
		cli_err(c, "cannot rename '%s' to '%s': %s", tmp, file,
			strerror(errno));
		goto out;
	}
	rc = CLI_OK;
out:
	if (fd >= 0)
		close(fd);
	if (rc != CLI_OK)
		unlink(tmp);
	tmp_forget();
	free(tmp);
	return rc;
}

static int write_stdout(struct cli *c, const void *data, size_t len)
{
	int err = write_progress(STDOUT_FILENO, data, len, 1);

	/* The reader closed the pipe early (`larder get k | head`): it had
	 * what it wanted. */
	if (err == 0 || err == EPIPE)
		return CLI_OK;
	cli_err(c, "cannot write to stdout: %s", strerror(err));
	return CLI_IO;
}

struct get_args {
	const char *version;
	const char *output;
};

static int get_opt(struct cli *c, int id, const char *arg, void *ctx)
{
	struct get_args *a = ctx;

	switch (id) {
	case 'V':
		a->version = arg;
		return CLI_CONTINUE;
	case 'o':
		a->output = arg;
		return CLI_CONTINUE;
	default:
		return cli_usage_err(c, "unknown option");
	}
}

static int run_get(struct cli *c, int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"version", required_argument, NULL, 'V'},
	    {"output", required_argument, NULL, 'o'},
	    {0},
	};
	struct get_args a = {0};
	larder_entry *e = NULL;
	larder *db = NULL;
	const char *key;
	int first;
	int rc;
	int lrc;

	rc = cli_parse(c, &cli_cmd_get, argc, argv, "o:", longopts, get_opt, &a,
		       &first);
	if (rc != CLI_CONTINUE)
		return rc;
	rc = cli_positionals(c, argc, argv, first, 1, 1, "KEY");
	if (rc != CLI_CONTINUE)
		return rc;
	if (a.output && !*a.output)
		return cli_usage_err(c, "-o needs a file name");
	key = argv[first];

	rc = cli_open(c, &db, NULL);
	if (rc != CLI_OK)
		return rc;
	lrc = larder_get(&e, db, c->ns, key, strlen(key), a.version,
			 a.version ? strlen(a.version) : 0);
	if (lrc == LARDER_ENOTFOUND) {
		cli_err(c, "'%s'%s%s%s: not found", out_q(key),
			a.version ? " version '" : "",
			a.version ? out_q(a.version) : "",
			a.version ? "'" : "");
		rc = CLI_MISS;
		goto out;
	}
	if (lrc < 0) {
		rc = cli_fail(c, db, lrc);
		goto out;
	}
	if (a.output && strcmp(a.output, "-") != 0)
		rc = write_file(c, a.output, larder_entry_data(e),
				larder_entry_size(e));
	else
		rc =
		    write_stdout(c, larder_entry_data(e), larder_entry_size(e));
out:
	larder_entry_release(e);
	larder_close(db);
	return rc;
}

const struct cli_cmd cli_cmd_get = {
    .name = "get",
    .run = run_get,
    .summary = "write an entry's payload to stdout or a file",
    .usage = "KEY [--version V] [-o FILE]",
    .help = "Write the payload of the entry KEY to stdout. The payload is "
	    "verified first;\n"
	    "a missing, expired or corrupt entry is a miss (exit 1, and a "
	    "corrupt one is\n"
	    "quarantined).\n\n"
	    "Options:\n"
	    "  --version V        this version (default: the version the "
	    "key's head names,\n"
	    "                     i.e. the newest put)\n"
	    "  -o, --output FILE  write to FILE instead: all of it or, on "
	    "failure, nothing\n"
	    "                     (it goes to a temp file beside FILE, "
	    "renamed when done)\n",
};
