/*
 * cmd_put.c — `larder put`: stream a file or stdin into an entry.
 *
 * The payload is never held in memory: it goes through the library's
 * writer in fixed-size chunks. Without --version the version is the
 * content's XXH3-128, so putting the same bytes again is a no-op and new
 * bytes move the head. That needs the bytes twice (hash, then store): a
 * regular file is read twice; a pipe is first spooled to an unlinked temp
 * file. The second pass hashes again, so a file that changed between the
 * passes is refused rather than stored under the wrong version.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "digest.h"

#define CHUNK (1024 * 1024)

struct put_args {
	const char *version;
	int64_t ttl;
	const char *meta;
	int zstd;
};

enum { OPT_VERSION = 256, OPT_TTL, OPT_META, OPT_ZSTD };

static int put_opt(struct cli *c, int id, const char *arg, void *ctx)
{
	struct put_args *a = ctx;

	switch (id) {
	case OPT_VERSION:
		a->version = arg;
		return CLI_CONTINUE;
	case OPT_TTL:
		return cli_duration_int(c, &cli_dur_ttl, arg, &a->ttl);
	case OPT_META:
		a->meta = arg;
		return CLI_CONTINUE;
	case OPT_ZSTD:
		a->zstd = 1;
		return CLI_CONTINUE;
	default:
		return cli_usage_err(c, "unknown option");
	}
}

/* A read of the input failed (n: -errno). Said, unless a signal stopped
 * it: then the process is about to die of that signal. */
static int read_failed(struct cli *c, const char *name, ssize_t n)
{
	if (!cli_stop_sig)
		cli_err(c, "cannot read '%s': %s", out_q(name),
			strerror((int)-n));
	return CLI_IO;
}

/* The progress line of this put (reading, hashing, storing). */
static struct cli_progress prog;

/* Hash fd from its current offset to EOF. */
static int hash_rest(struct cli *c, int fd, const char *name, char *buf,
		     struct cli_digest *st)
{
	ssize_t n;

	progress_phase(&prog, "hashing");
	while ((n = cli_read(fd, buf, CHUNK)) > 0) {
		cli_digest_add(st, buf, (size_t)n);
		progress_add(&prog, (size_t)n);
	}
	if (n < 0)
		return read_failed(c, name, n);
	return CLI_OK;
}

/* An anonymous file under $TMPDIR: it vanishes with the process, however
 * the process ends. */
static int spool_create(struct cli *c)
{
	const char *tmpdir = getenv("TMPDIR");
	char *path = NULL;
	int fd;

	if (!tmpdir || !*tmpdir)
		tmpdir = "/tmp";
	fd = open(tmpdir, O_TMPFILE | O_RDWR | O_EXCL | O_CLOEXEC, 0600);
	if (fd >= 0)
		return fd;
	/* No O_TMPFILE on this filesystem: name it, then unlink at once. */
	if (asprintf(&path, "%s/larder-put-XXXXXX", tmpdir) < 0) {
		cli_err(c, "out of memory");
		return -1;
	}
	fd = mkostemp(path, O_CLOEXEC);
	if (fd < 0)
		cli_err(c, "cannot create a temp file in '%s': %s",
			out_q(tmpdir), strerror(errno));
	else
		unlink(path);
	free(path);
	return fd;
}

/* Copy all of `in` to a spool file while hashing it; *out gets the spool,
 * rewound. */
static int spool(struct cli *c, int in, const char *name, char *buf,
		 struct cli_digest *st, int *out)
{
	int fd = spool_create(c);
	ssize_t n;
	int err;

	if (fd < 0)
		return CLI_IO;
	progress_phase(&prog, "reading");
	while ((n = cli_read(in, buf, CHUNK)) > 0) {
		cli_digest_add(st, buf, (size_t)n);
		progress_add(&prog, (size_t)n);
		err = out_write_all(fd, buf, (size_t)n);
		if (err) {
			cli_err(c, "cannot spool '%s' to a temp file: %s",
				out_q(name), strerror(err));
			goto fail;
		}
	}
	if (n < 0) {
		read_failed(c, name, n);
		goto fail;
	}
	if (lseek(fd, 0, SEEK_SET) < 0) {
		cli_err(c, "cannot rewind the spool file: %s", strerror(errno));
		goto fail;
	}
	*out = fd;
	return CLI_OK;
fail:
	close(fd);
	return CLI_IO;
}

/*
 * Compute the content version of the input. On success *fd is what to
 * stream from: the same descriptor rewound (a regular file), or a spool
 * that replaces it (a pipe or terminal; the original is closed).
 */
static int content_version(struct cli *c, int *fd, const char *name, char *buf,
			   char hex[CLI_DIGEST_HEX])
{
	struct cli_digest *st = cli_digest_new();
	struct stat sb;
	off_t start = -1;
	int spooled;
	int rc;

	if (!st) {
		cli_err(c, "out of memory");
		return CLI_IO;
	}
	if (fstat(*fd, &sb) == 0 && S_ISREG(sb.st_mode))
		start = lseek(*fd, 0, SEEK_CUR);
	if (start >= 0) {
		rc = hash_rest(c, *fd, name, buf, st);
		if (rc == CLI_OK && lseek(*fd, start, SEEK_SET) < 0) {
			cli_err(c, "cannot rewind '%s': %s", out_q(name),
				strerror(errno));
			rc = CLI_IO;
		}
	} else {
		rc = spool(c, *fd, name, buf, st, &spooled);
		if (rc == CLI_OK) {
			if (*fd != STDIN_FILENO)
				close(*fd);
			*fd = spooled;
		}
	}
	if (rc == CLI_OK)
		cli_digest_hex(st, hex);
	cli_digest_free(st);
	return rc;
}

/*
 * Stream fd into the writer. With `expect` (the content version), hash
 * again and refuse the entry if the bytes are not the ones hashed before.
 */
static int stream(struct cli *c, larder *db, larder_writer *w, int fd,
		  const char *name, char *buf, const char *expect)
{
	struct cli_digest *st = NULL;
	char hex[CLI_DIGEST_HEX];
	ssize_t n;
	int rc = CLI_OK;
	int lrc;

	if (expect) {
		st = cli_digest_new();
		if (!st) {
			cli_err(c, "out of memory");
			return CLI_IO;
		}
	}
	progress_phase(&prog, "storing");
	while ((n = cli_read(fd, buf, CHUNK)) > 0) {
		if (st)
			cli_digest_add(st, buf, (size_t)n);
		progress_add(&prog, (size_t)n);
		lrc = larder_writer_write(w, buf, (size_t)n);
		if (lrc < 0) {
			rc = cli_fail(c, db, lrc);
			goto out;
		}
	}
	if (n < 0) {
		rc = read_failed(c, name, n);
		goto out;
	}
	if (st) {
		cli_digest_hex(st, hex);
		if (strcmp(hex, expect) != 0) {
			cli_err(c,
				"'%s' changed while it was being stored; "
				"nothing stored",
				out_q(name));
			rc = CLI_IO;
		}
	}
out:
	cli_digest_free(st);
	return rc;
}

static int open_input(struct cli *c, const char *file, int *fd)
{
	if (strcmp(file, "-") == 0) {
		if (c->stdin_closed) {
			cli_err(c, "no input: standard input is closed");
			return CLI_IO;
		}
		*fd = STDIN_FILENO;
		return CLI_OK;
	}
	*fd = open(file, O_RDONLY | O_CLOEXEC);
	if (*fd < 0) {
		cli_err(c, "cannot open '%s': %s", out_q(file),
			strerror(errno));
		return CLI_IO;
	}
	return CLI_OK;
}

static int put_entry(struct cli *c, larder *db, const char *key,
		     const char *file, const struct put_args *a)
{
	larder_put_opts opts = LARDER_PUT_OPTS_INIT;
	const char *name = strcmp(file, "-") == 0 ? "stdin" : file;
	const char *version = a->version;
	larder_writer *w = NULL;
	char hex[CLI_DIGEST_HEX] = "";
	char *buf = NULL;
	int fd = -1;
	int rc;
	int lrc;

	buf = malloc(CHUNK);
	if (!buf) {
		cli_err(c, "out of memory");
		return CLI_IO;
	}
	rc = open_input(c, file, &fd);
	if (rc != CLI_OK)
		goto out;
	progress_start(&prog, "reading", 0);
	if (!version) {
		rc = content_version(c, &fd, name, buf, hex);
		if (rc != CLI_OK)
			goto out;
		version = hex;
	}

	opts.flags = a->zstd ? LARDER_PUT_ZSTD : 0;
	opts.ttl_seconds = a->ttl;
	opts.meta = a->meta;
	opts.meta_len = a->meta ? strlen(a->meta) : 0;
	lrc = larder_writer_begin(&w, db, c->ns, key, strlen(key), version,
				  strlen(version), &opts);
	if (lrc < 0) {
		rc = cli_fail(c, db, lrc);
		goto out;
	}
	rc = stream(c, db, w, fd, name, buf, a->version ? NULL : hex);
	/* Interrupted after the last read: nothing is published either. */
	if (rc == CLI_OK && cli_stop_sig)
		rc = CLI_IO;
	if (rc != CLI_OK) {
		/* Removes the temp file (SIGINT, SIGTERM, SIGHUP too). */
		larder_writer_abort(w);
		goto out;
	}
	lrc = larder_writer_commit(w);
	progress_end(&prog);
	if (lrc < 0) {
		rc = cli_fail(c, db, lrc);
		goto out;
	}
	if (c->verbose && lrc == LARDER_EXISTS)
		fprintf(stderr,
			"larder: put: '%s' version %s was already stored\n",
			out_q(key), out_q(version));
	else if (c->verbose)
		fprintf(stderr, "larder: put: stored '%s' version %s\n",
			out_q(key), out_q(version));
out:
	progress_end(&prog);
	if (fd > STDIN_FILENO)
		close(fd);
	free(buf);
	return rc;
}

static int run_put(struct cli *c, int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"version", required_argument, NULL, OPT_VERSION},
	    {"ttl", required_argument, NULL, OPT_TTL},
	    {"meta", required_argument, NULL, OPT_META},
	    {"zstd", no_argument, NULL, OPT_ZSTD},
	    {0},
	};
	struct put_args a = {0};
	larder *db = NULL;
	const char *file = "-";
	int first;
	int rc;

	rc = cli_parse(c, &cli_cmd_put, argc, argv, "", longopts, put_opt, &a,
		       &first);
	if (rc != CLI_CONTINUE)
		return rc;
	rc = cli_positionals(c, argc, argv, first, 1, 2, "KEY");
	if (rc != CLI_CONTINUE)
		return rc;
	if (first + 1 < argc)
		file = argv[first + 1];

	/* Open the store first: no point reading a large input for a store
	 * that is not there. */
	rc = cli_open(c, &db, NULL);
	if (rc != CLI_OK)
		return rc;
	/* A signal from here on ends the put cleanly: no temp file stays
	 * in the store; then we die of it. */
	cli_stop_begin();
	rc = put_entry(c, db, argv[first], file, &a);
	larder_close(db);
	cli_stop_end();
	return rc;
}

const struct cli_cmd cli_cmd_put = {
    .name = "put",
    .run = run_put,
    .summary = "store a file or stdin as an entry",
    .usage = "KEY [FILE|-] [--version V] [--ttl T] [--meta STR] [--zstd]",
    .help = "Store the contents of FILE (or stdin, when FILE is '-' or "
	    "absent) as the\n"
	    "entry KEY, and make it the key's head. The data is streamed, "
	    "never held in\n"
	    "memory. Prints nothing on success (with -v: what was "
	    "stored).\n\n"
	    "Options:\n"
	    "  --version V   the entry's version (default: the XXH3-128 of "
	    "the content,\n"
	    "                in hex, so putting the same bytes again "
	    "changes nothing)\n"
	    "  --ttl T       expire after T: seconds, or N with a suffix "
	    "s, m, h or d\n"
	    "                (up to 36500d), or 'never' (default: the "
	    "namespace's TTL)\n"
	    "  --meta STR    metadata stored with the entry (shown by "
	    "inspect)\n"
	    "  --zstd        compress the payload with zstd\n",
};
