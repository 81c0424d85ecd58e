/*
 * cmd_get.c — `larder get`: an entry's payload to stdout or to a file.
 *
 * The payload is streamed (larder_get_stream): memory stays bounded
 * whatever its size, compressed or not, and nothing is written before the
 * entry was verified. A regular file is written under a temp name beside
 * it and renamed into place only when complete, so a failed or interrupted
 * get never leaves a partial file under the requested name; the temp file
 * is removed on SIGINT/SIGTERM/SIGHUP too (by this process only). A
 * device, FIFO or socket is written into, never replaced; a symlink is
 * never replaced either: the file it points at is.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
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

/* How the payload reaches its destination. */
enum dest_kind {
	DEST_STDOUT, /* file descriptor 1 */
	DEST_RENAME, /* a temp file beside `target`, renamed over it */
	DEST_DIRECT, /* written into: a device, FIFO or socket, or the
			file one of our own descriptors is (/dev/stdout) */
};

struct dest {
	struct cli *c;
	enum dest_kind kind;
	const char *name; /* as given with -o, for messages */
	char *target;	  /* DEST_RENAME: the file to replace */
	char *tmp;	  /* DEST_RENAME: the temp file beside it */
	int own_fd;	  /* DEST_DIRECT: one of ours to write into, or -1 */
	int fd;		  /* -1 until the first byte (or the end) */
	int err;	  /* errno of the write that failed */
	const char *op;	  /* what failed: "write", "create", ... */
	struct cli_progress prog;
	int started;
};

/* The descriptor among stdout and stderr that is the file `st`, or -1:
 * /dev/stdout, /dev/fd/2 and the like name our own descriptors, which
 * are written into as they are (a `>>` keeps appending). */
static int own_fd_of(const struct stat *st)
{
	for (int fd = STDOUT_FILENO; fd <= STDERR_FILENO; fd++) {
		struct stat fs;

		if (fstat(fd, &fs) == 0 && fs.st_dev == st->st_dev &&
		    fs.st_ino == st->st_ino)
			return fd;
	}
	return -1;
}

/* Decide, before anything is read, what -o PATH means: CLI_CONTINUE, or
 * an exit code after reporting. */
static int dest_resolve(struct dest *d, const char *path)
{
	struct cli *c = d->c;
	struct stat lst, st;

	d->name = path;
	if (lstat(path, &lst) != 0) {
		if (errno != ENOENT) {
			cli_err(c, "cannot look at '%s': %s", out_q(path),
				strerror(errno));
			return CLI_IO;
		}
		d->kind = DEST_RENAME;
		d->target = strdup(path);
		goto check;
	}
	st = lst;
	if (S_ISLNK(lst.st_mode)) {
		if (stat(path, &st) != 0) {
			cli_err(c,
				"'%s' is a symbolic link to %s: refusing to "
				"replace the link (give the path it should "
				"point at)",
				out_q(path),
				errno == ENOENT ? "nothing" : strerror(errno));
			return CLI_USAGE;
		}
		d->own_fd = own_fd_of(&st);
		if (d->own_fd >= 0) {
			d->kind = DEST_DIRECT;
			return CLI_CONTINUE;
		}
	}
	if (S_ISDIR(st.st_mode)) {
		cli_err(c, "'%s' is a directory: give a file name",
			out_q(path));
		return CLI_USAGE;
	}
	if (!S_ISREG(st.st_mode)) {
		d->kind = DEST_DIRECT;
		return CLI_CONTINUE;
	}
	d->kind = DEST_RENAME;
	/* A link is never replaced by a file: the file it points at is,
	 * by a temp file beside it (a rename never crosses filesystems). */
	d->target = S_ISLNK(lst.st_mode) ? realpath(path, NULL) : strdup(path);
	if (!d->target && S_ISLNK(lst.st_mode)) {
		cli_err(c, "cannot resolve '%s': %s", out_q(path),
			strerror(errno));
		return CLI_IO;
	}
check:
	if (!d->target) {
		cli_err(c, "out of memory");
		return CLI_IO;
	}
	return CLI_CONTINUE;
}

/* Connect to a Unix socket at path (a named one written into). */
static int socket_open(const char *path)
{
	struct sockaddr_un sa;
	int fd;

	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sa.sun_path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	memcpy(sa.sun_path, path, strlen(path));
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		int e = errno;

		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

/* Open the destination: at the first byte, which comes only after the
 * entry was verified (a miss creates and opens nothing, so a FIFO
 * reader is not woken for nothing). 0, or -1 with d->err and d->op. */
static int dest_open(struct dest *d)
{
	if (d->fd >= 0)
		return 0;
	switch (d->kind) {
	case DEST_STDOUT:
		d->fd = STDOUT_FILENO;
		break;
	case DEST_RENAME:
		if (asprintf(&d->tmp, "%s.tmp-XXXXXX", d->target) < 0) {
			d->tmp = NULL;
			d->err = ENOMEM;
			d->op = "create a temp file beside";
			return -1;
		}
		d->fd = tmp_create(d->tmp);
		if (d->fd < 0) {
			d->err = errno;
			d->op = "create a temp file beside";
			free(d->tmp);
			d->tmp = NULL;
			return -1;
		}
		if (fchmod(d->fd, default_mode()) < 0) {
			d->err = errno;
			d->op = "chmod the temp file beside";
			return -1;
		}
		break;
	case DEST_DIRECT:
		if (d->own_fd >= 0)
			d->fd = fcntl(d->own_fd, F_DUPFD_CLOEXEC, 3);
		else
			do
				d->fd = open(d->name,
					     O_WRONLY | O_NOCTTY | O_CLOEXEC);
			while (d->fd < 0 && errno == EINTR);
		if (d->fd < 0 && errno == ENXIO)
			d->fd = socket_open(d->name);
		if (d->fd < 0) {
			d->err = errno;
			d->op = "open";
			return -1;
		}
		break;
	}
	progress_start(&d->prog, "writing",
		       d->kind == DEST_STDOUT || d->own_fd == STDOUT_FILENO);
	d->started = 1;
	return 0;
}

/* larder_get_stream's sink: the payload, in slices for the progress line.
 * A failure is kept in d and stops the read (any non-zero value will do:
 * it comes back from larder_get_stream as is). */
static int sink(const void *buf, size_t len, void *payload)
{
	const size_t slice = 1 << 20;
	struct dest *d = payload;
	const char *p = buf;

	if (dest_open(d) != 0)
		return 1;
	while (len > 0) {
		size_t n = len < slice ? len : slice;

		d->err = out_write_all(d->fd, p, n);
		if (d->err) {
			d->op = "write";
			return 1;
		}
		progress_add(&d->prog, n);
		p += n;
		len -= n;
	}
	return 0;
}

/* The payload went out whole: make it last. 0, or -1 with d->err and
 * d->op. */
static int dest_finish(struct dest *d)
{
	int fd;

	if (dest_open(d) != 0) /* an empty payload opens it only now */
		return -1;
	if (d->kind == DEST_STDOUT)
		return 0;
	fd = d->fd;
	d->fd = -1;
	if (d->kind == DEST_DIRECT) {
		/* A device may report a deferred write error at close. */
		if (close(fd) < 0 && errno != EINTR) {
			d->err = errno;
			d->op = "write";
			return -1;
		}
		return 0;
	}
	/* Without it a crash just after the rename can leave an empty file
	 * under the final name on some filesystems. */
	if (fsync(fd) < 0) {
		d->err = errno;
		d->op = "sync";
		close(fd);
		return -1;
	}
	if (close(fd) < 0) {
		d->err = errno;
		d->op = "write";
		return -1;
	}
	if (rename(d->tmp, d->target) < 0) {
		d->err = errno;
		d->op = "rename the temp file to";
		return -1;
	}
	free(d->tmp);
	d->tmp = NULL;
	tmp_forget();
	return 0;
}

/* Report d's failure, if it is one: a reader that closed its end early
 * (`larder get k | head -c 100`) had what it wanted. */
static int dest_report(struct dest *d)
{
	const char *where = d->kind == DEST_STDOUT ? "stdout" : d->name;

	if (d->err == EPIPE && d->kind != DEST_RENAME)
		return CLI_OK;
	if (d->kind == DEST_STDOUT)
		cli_err(d->c, "cannot %s stdout: %s",
			strcmp(d->op, "write") ? d->op : "write to",
			strerror(d->err));
	else
		cli_err(d->c, "cannot %s '%s': %s",
			strcmp(d->op, "write") ? d->op : "write to",
			out_q(where), strerror(d->err));
	return CLI_IO;
}

/* Close what is open; remove a temp file that was not renamed. */
static void dest_free(struct dest *d)
{
	if (d->started)
		progress_end(&d->prog);
	if (d->fd >= 0 && d->kind != DEST_STDOUT)
		close(d->fd);
	if (d->tmp) {
		unlink(d->tmp);
		tmp_forget();
		free(d->tmp);
	}
	free(d->target);
}

struct get_args {
	const char *version;
	const char *output;
	int many;
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
	case 'm':
		a->many = 1;
		return CLI_CONTINUE;
	default:
		return cli_usage_err(c, "unknown option");
	}
}

/* ---- get --many ------------------------------------------------------- */

/* Keys fetched per larder_get_many call: their entries are in memory
 * together, so a long list goes in groups. */
#define MANY_GROUP 64

/* The file name of key in the output directory: the key's bytes, with
 * '%', '/', control bytes and a leading '.' as %XX, so that any key is
 * one file and no key names "." or ".." or another's file. */
static char *many_name(const char *key)
{
	size_t n = strlen(key);
	char *out = malloc(3 * n + 1), *o = out;

	if (!out)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)key[i];

		if (ch == '%' || ch == '/' || ch < 0x20 || ch == 0x7f ||
		    (i == 0 && ch == '.'))
			o += sprintf(o, "%%%02X", ch);
		else
			*o++ = (char)ch;
	}
	*o = '\0';
	return out;
}

/* Write data into dirfd/name by a temp file renamed over it: all of it
 * or nothing under name. 0, or -1 with errno and *op. */
static int many_write(int dirfd, const char *name, const void *data, size_t len,
		      const char **op)
{
	char tmp[64];
	int fd = -1, e;
	const char *p = data;

	for (int tries = 0; fd < 0 && tries < 100; tries++) {
		snprintf(tmp, sizeof(tmp), ".larder-many.%ld.%d",
			 (long)getpid(), rand());
		fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
			    default_mode());
		if (fd < 0 && errno != EEXIST) {
			*op = "create a file in";
			return -1;
		}
	}
	if (fd < 0) {
		*op = "create a file in";
		return -1;
	}
	while (len) {
		ssize_t w = write(fd, p, len);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0) {
			*op = "write into";
			goto fail;
		}
		p += w;
		len -= (size_t)w;
	}
	if (fsync(fd) != 0) {
		*op = "sync a file in";
		goto fail;
	}
	if (close(fd) != 0) {
		fd = -1;
		*op = "write into";
		goto fail;
	}
	fd = -1;
	if (renameat(dirfd, tmp, dirfd, name) != 0) {
		*op = "rename a file in";
		goto fail;
	}
	return 0;
fail:
	e = errno;
	if (fd >= 0)
		close(fd);
	unlinkat(dirfd, tmp, 0);
	errno = e;
	return -1;
}

/* Fetch one group of keys and report each: CLI_OK, CLI_MISS (a miss
 * among them) or an error code (the worst seen). */
static int many_group(struct cli *c, larder *db, int dirfd, const char *dir,
		      char **keys, size_t n)
{
	const void *k[MANY_GROUP];
	size_t kl[MANY_GROUP];
	larder_entry *out[MANY_GROUP];
	int rcs[MANY_GROUP], worst = CLI_OK;

	for (size_t i = 0; i < n; i++) {
		k[i] = keys[i];
		kl[i] = strlen(keys[i]);
	}
	int lrc = larder_get_many(db, c->ns, n, k, kl, NULL, NULL, out, rcs);
	if (lrc)
		return cli_fail(c, db, lrc);
	for (size_t i = 0; i < n; i++) {
		char *name = NULL;
		const char *op = NULL;

		if (rcs[i] == 0) {
			name = many_name(keys[i]);
			if (!name) {
				errno = ENOMEM;
				op = "name a file in";
			} else if (many_write(
				       dirfd, name, larder_entry_data(out[i]),
				       larder_entry_size(out[i]), &op) == 0) {
				printf("hit\t%zu\t%s\n",
				       larder_entry_size(out[i]), name);
			}
			if (op) {
				cli_err(c, "cannot %s '%s' for '%s': %s", op,
					out_q(dir), out_q(keys[i]),
					strerror(errno));
				printf("error\t-\t%s\n", name ? name : "-");
				worst = CLI_IO;
			}
		} else if (rcs[i] == LARDER_ENOTFOUND) {
			name = many_name(keys[i]);
			printf("miss\t-\t%s\n", name ? name : "-");
			if (worst == CLI_OK)
				worst = CLI_MISS;
		} else {
			name = many_name(keys[i]);
			cli_err(c, "'%s': %s", out_q(keys[i]),
				larder_strerror(rcs[i]));
			printf("error\t-\t%s\n", name ? name : "-");
			worst = CLI_IO;
		}
		free(name);
		larder_entry_release(out[i]);
	}
	return worst;
}

/* larder get --many -o DIR [KEY...]: the keys from the arguments, or
 * from stdin one per line; each hit's payload into DIR, one file per
 * key; one line per key on stdout (docs/cli.md). */
static int get_many(struct cli *c, const struct get_args *a, int nargs,
		    char **args)
{
	larder *db = NULL;
	char *keys[MANY_GROUP];
	size_t n = 0, cap = 0;
	char *line = NULL;
	int rc, worst = CLI_OK, dirfd = -1;

	if (a->version)
		return cli_usage_err(c, "--many takes no --version (each key's "
					"newest version is fetched)");
	if (!a->output || !*a->output || !strcmp(a->output, "-"))
		return cli_usage_err(c, "--many needs -o DIR, the directory "
					"its files go into");
	if (mkdir(a->output, 0777) != 0 && errno != EEXIST) {
		cli_err(c, "cannot create directory '%s': %s", out_q(a->output),
			strerror(errno));
		return CLI_IO;
	}
	dirfd = open(a->output, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dirfd < 0) {
		cli_err(c, "cannot open directory '%s': %s", out_q(a->output),
			strerror(errno));
		return CLI_IO;
	}
	rc = cli_open(c, &db, NULL);
	if (rc != CLI_OK)
		goto out;
	for (int i = 0;; i++) {
		char *key = NULL;

		if (nargs > 0 && i < nargs) {
			key = args[i];
		} else if (nargs == 0) {
			ssize_t got = getline(&line, &cap, stdin);

			if (got > 0 && line[got - 1] == '\n')
				line[--got] = '\0';
			if (got == 0)
				continue; /* an empty line names no key */
			if (got > 0 && !(key = strdup(line))) {
				cli_err(c, "out of memory");
				rc = CLI_IO;
				goto out;
			}
		}
		if (key)
			keys[n++] = key;
		if (n == MANY_GROUP || (!key && n)) {
			int g = many_group(c, db, dirfd, a->output, keys, n);

			if (g > worst)
				worst = g;
			if (nargs == 0)
				for (size_t j = 0; j < n; j++)
					free(keys[j]);
			n = 0;
		}
		if (!key)
			break;
	}
	if (fflush(stdout) != 0) {
		cli_err(c, "cannot write to stdout: %s", strerror(errno));
		worst = CLI_IO;
	}
	rc = worst;
out:
	if (nargs == 0)
		for (size_t j = 0; j < n; j++)
			free(keys[j]);
	free(line);
	close(dirfd);
	larder_close(db);
	return rc;
}

static int run_get(struct cli *c, int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"version", required_argument, NULL, 'V'},
	    {"output", required_argument, NULL, 'o'},
	    {"many", no_argument, NULL, 'm'},
	    {0},
	};
	struct get_args a = {0};
	struct dest d;
	larder *db = NULL;
	const char *key;
	int first;
	int rc;
	int lrc;

	memset(&d, 0, sizeof(d));
	d.c = c;
	d.fd = -1;
	d.own_fd = -1;
	rc = cli_parse(c, &cli_cmd_get, argc, argv, "o:", longopts, get_opt, &a,
		       &first);
	if (rc != CLI_CONTINUE)
		return rc;
	if (a.many)
		return get_many(c, &a, argc - first, argv + first);
	rc = cli_positionals(c, argc, argv, first, 1, 1, "KEY");
	if (rc != CLI_CONTINUE)
		return rc;
	if (a.output && !*a.output)
		return cli_usage_err(c, "-o needs a file name");
	key = argv[first];
	d.kind = DEST_STDOUT;
	if (a.output && strcmp(a.output, "-") != 0) {
		rc = dest_resolve(&d, a.output);
		if (rc != CLI_CONTINUE)
			goto out;
	}

	rc = cli_open(c, &db, NULL);
	if (rc != CLI_OK)
		goto out;
	lrc = larder_get_stream(db, c->ns, key, strlen(key), a.version,
				a.version ? strlen(a.version) : 0, sink, &d);
	if (lrc == LARDER_ENOTFOUND) {
		cli_err(c, "'%s'%s%s%s: not found", out_q(key),
			a.version ? " version '" : "",
			a.version ? out_q(a.version) : "",
			a.version ? "'" : "");
		rc = CLI_MISS;
	} else if (lrc > 0) {
		rc = dest_report(&d); /* the sink failed */
	} else if (lrc < 0) {
		rc = cli_fail(c, db, lrc);
	} else {
		rc = dest_finish(&d) == 0 ? CLI_OK : dest_report(&d);
	}
out:
	dest_free(&d);
	larder_close(db);
	return rc;
}

const struct cli_cmd cli_cmd_get = {
    .name = "get",
    .run = run_get,
    .summary = "write an entry's payload to stdout or a file",
    .usage = "KEY [--version V] [-o FILE] | --many -o DIR [KEY...]",
    .help = "Write the payload of the entry KEY to stdout. The payload is "
	    "verified before\n"
	    "its first byte is written; a missing, expired or corrupt entry "
	    "is a miss (exit 1,\n"
	    "nothing written, and a corrupt one is quarantined).\n\n"
	    "Options:\n"
	    "  --version V        this version (default: the version the "
	    "key's head names,\n"
	    "                     i.e. the newest put)\n"
	    "  -o, --output FILE  write to FILE instead: all of it or, on "
	    "failure, nothing\n"
	    "                     (it goes to a temp file beside FILE, "
	    "renamed when done);\n"
	    "                     a device, FIFO or socket is written into, "
	    "a symlink's\n"
	    "                     target is replaced (never the link), a "
	    "directory is refused\n"
	    "  --many             many keys at once (from the arguments, or "
	    "stdin one per\n"
	    "                     line), fetched in batches: each hit's "
	    "payload into a file\n"
	    "                     of DIR (-o DIR) named after its key, and a "
	    "line per key on\n"
	    "                     stdout: hit|miss|error, TAB, size, TAB, "
	    "the file's name\n",
};
