/*
 * cmd_run.c — `larder run`: memoize a command's stdout and exit status,
 * single-flight across processes and hosts (larder_get_or_fill).
 *
 * Three byte strings decide what is shared (docs/cli.md#run spells them
 * out; they are a stable format, tagged "larder-run/2"):
 *  - the key names the logical result: argv (or --key), the working
 *    directory, the --input paths, the --env values, the --version-cmd
 *    text and --cache-failures. The library encodes it (larder_run_key),
 *    so that other clients share these entries;
 *  - the version describes the source state: the file version of the
 *    inputs' contents (larder_files_version, the same on every host that
 *    sees the same bytes) and the version command's output. It is
 *    computed by the fill's version function, which the library calls
 *    again after each run: if the sources changed meanwhile, nothing is
 *    published and the command runs again under the new version
 *    (bounded);
 *  - the payload is the command's stdout followed by a 16-byte trailer
 *    holding its exit status. The status is known only when the command
 *    ends, after its output has been streamed into the entry, and the
 *    fill API takes the entry's metadata before the first byte — hence a
 *    trailer rather than metadata.
 *
 * On a fill, the output is teed to our stdout as it is produced. Only
 * the first run is teed: if the command runs again because the sources
 * changed during the run, the caller has already seen one complete run's
 * output and exit status, and the later runs only refresh the cache.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "digest.h"

extern char **environ;

#define MAGIC LARDER_RUN_FORMAT
#define CHUNK (256 * 1024)

/* The trailer after the stdout bytes: magic, then the exit status larder
 * run exits with (0..255, 128+N for signal N) and the signal number (0
 * if the command exited), both 32-bit little-endian. */
#define TRAILER_MAGIC "LRUNEXIT"
#define TRAILER_LEN 16

/* Version command output up to this size goes into the version as is
 * (readable in `larder inspect`); longer output as its XXH3-128. */
#define VERSION_RAW_MAX 4096

/* The loader's return that keeps a result from being published: the
 * command failed (and failures are not cached). */
#define LOADER_CMD_FAILED 1

/* Runs of the command under a changed version before giving up. */
#define MAX_RUNS 3

enum { OPT_KEY = 256, OPT_INPUT, OPT_ENV, OPT_VERSION_CMD, OPT_CACHE_FAILURES };

struct run_args {
	const char *key;
	const char **inputs;
	size_t ninputs;
	const char **envs;
	size_t nenvs;
	const char *version_cmd;
	struct cli_fill_args fill;
	int cache_failures;
};

/* A growable byte string. */
struct bytes {
	char *p;
	size_t len;
	size_t cap;
	int oom;
};

static void bytes_add(struct bytes *b, const void *p, size_t n)
{
	if (b->oom)
		return;
	if (b->len + n > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		char *q;

		while (cap < b->len + n)
			cap *= 2;
		q = realloc(b->p, cap);
		if (!q) {
			b->oom = 1;
			return;
		}
		b->p = q;
		b->cap = cap;
	}
	memcpy(b->p + b->len, p, n);
	b->len += n;
}

/* One record: TAG LENGTH ':' BYTES '\n'. The decimal length frames the
 * bytes, so ["a b"] and ["a", "b"] differ; the newline is only there to
 * make the key readable in `larder ls`. */
static void bytes_rec(struct bytes *b, char tag, const void *p, size_t n)
{
	char head[32];
	int h = snprintf(head, sizeof(head), "%c%zu:", tag, n);

	bytes_add(b, head, (size_t)h);
	bytes_add(b, p, n);
	bytes_add(b, "\n", 1);
}

/* What the loader and the version callback share with the command. */
struct run_ctx {
	struct cli *c;
	larder *db;
	const struct run_args *a;
	char **cmd;
	struct bytes ver;  /* the version last computed */
	int have_ver;	   /* ver was computed */
	char *chunk;	   /* CHUNK bytes */
	unsigned attempts; /* runs of the command */
	int status;	   /* the first run's exit status (what we exit with) */
	int signo;	   /* the first run's signal, 0 if it exited */
	int last_status;   /* the latest run's */
	int spawn_err;	   /* errno of a failed start of the first run */
	int err_exit;	   /* our own reported failure: its exit code */
	int out_gone;	   /* our stdout's reader went away (EPIPE) */
	int out_err;	   /* another stdout write failure (errno) */
	int changed;	   /* the sources changed during a run */
	struct cli_progress prog; /* bytes of output so far */
};

/*
 * While the command runs, behave like system() for SIGQUIT: the terminal
 * sends it to the whole process group, so the command gets it itself and
 * we learn its fate from its status. SIGINT, SIGTERM and SIGHUP stop the
 * fill (interrupt.c): SIGINT reaches the command from the terminal too;
 * SIGTERM and SIGHUP, sent to us alone, are passed on to it so that it
 * does not outlive us (cli_stop_child).
 */
static void signals_during_child(struct sigaction *saved_quit)
{
	struct sigaction ign = {.sa_handler = SIG_IGN};

	sigemptyset(&ign.sa_mask);
	sigaction(SIGQUIT, &ign, saved_quit);
}

static void signals_restore(const struct sigaction *saved_quit)
{
	cli_stop_child(0);
	sigaction(SIGQUIT, saved_quit, NULL);
}

/*
 * Start argv with its stdout on a new pipe (*out_fd gets the read end)
 * and stdin from `in_path` if given (else inherited); stderr inherited.
 * The child gets default dispositions for the signals larder ignores or
 * handles (an ignored SIGPIPE would survive exec and break `yes | head`
 * in the command). Returns 0 or an errno value (exec failures included:
 * glibc's posix_spawnp reports them).
 */
static int spawn_piped(char *const argv[], const char *in_path, pid_t *pid,
		       int *out_fd)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	sigset_t def, none;
	int p[2];
	int err;

	if (pipe2(p, O_CLOEXEC) != 0)
		return errno;
	posix_spawn_file_actions_init(&fa);
	posix_spawnattr_init(&attr);
	sigemptyset(&def);
	sigaddset(&def, SIGPIPE);
	sigaddset(&def, SIGINT);
	sigaddset(&def, SIGQUIT);
	sigaddset(&def, SIGTERM);
	sigaddset(&def, SIGHUP);
	sigemptyset(&none);
	err = posix_spawnattr_setsigdefault(&attr, &def);
	if (!err)
		err = posix_spawnattr_setsigmask(&attr, &none);
	if (!err)
		err = posix_spawnattr_setflags(
		    &attr, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
	if (!err)
		err =
		    posix_spawn_file_actions_adddup2(&fa, p[1], STDOUT_FILENO);
	if (!err && in_path)
		err = posix_spawn_file_actions_addopen(&fa, STDIN_FILENO,
						       in_path, O_RDONLY, 0);
	if (!err)
		err = posix_spawnp(pid, argv[0], &fa, &attr, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&attr);
	close(p[1]);
	if (err) {
		close(p[0]);
		return err;
	}
	*out_fd = p[0];
	return 0;
}

/* Reap pid; *code gets the shell-style status (128+N for signal N). */
static void reap(pid_t pid, int *code, int *signo)
{
	int st = 0;

	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	if (WIFSIGNALED(st)) {
		*signo = WTERMSIG(st);
		*code = 128 + *signo;
	} else {
		*signo = 0;
		*code = WIFEXITED(st) ? WEXITSTATUS(st) : 255;
	}
}

static ssize_t read_some(int fd, void *buf, size_t len)
{
	ssize_t n;

	do {
		n = read(fd, buf, len);
	} while (n < 0 && errno == EINTR);
	return n;
}

/* ---------------------------------------------------------------------- */
/* The version: the inputs' file version and the version command's output */

/* Record 'i': the file version of all the inputs, in order. */
static int inputs_version(struct run_ctx *x, struct bytes *v)
{
	char fv[LARDER_FILES_VERSION_LEN + 1];

	if (larder_files_version(fv, x->db, x->a->inputs, x->a->ninputs, 0) !=
	    0) {
		cli_err_lib(x->c, "--input: ", larder_errmsg(x->db));
		return -1;
	}
	bytes_rec(v, 'i', fv, strlen(fv));
	return 0;
}

/* Record 'o': the version command's stdout, or 'h': its XXH3-128 when it
 * is longer than VERSION_RAW_MAX. The command reads /dev/null: our stdin
 * belongs to the memoized command. */
static int version_cmd(struct run_ctx *x, struct bytes *v)
{
	char *argv[] = {"sh", "-c", (char *)x->a->version_cmd, NULL};
	struct cli_digest *st = cli_digest_new();
	struct sigaction saved_quit;
	struct bytes out = {0};
	int code, signo, fd, err;
	ssize_t n = 0;
	pid_t pid;
	int rc = -1;

	if (!st) {
		cli_err(x->c, "out of memory");
		return -1;
	}
	signals_during_child(&saved_quit);
	err = spawn_piped(argv, "/dev/null", &pid, &fd);
	if (err) {
		signals_restore(&saved_quit);
		cli_err(x->c, "cannot run the version command: /bin/sh: %s",
			strerror(err));
		goto out;
	}
	cli_stop_child(pid);
	while ((n = read_some(fd, x->chunk, CHUNK)) > 0) {
		cli_digest_add(st, x->chunk, (size_t)n);
		if (out.len <= VERSION_RAW_MAX)
			bytes_add(&out, x->chunk, (size_t)n);
	}
	err = errno;
	close(fd);
	reap(pid, &code, &signo);
	signals_restore(&saved_quit);
	if (cli_stop_sig) {
		/* Interrupted: we are about to die of it; nothing to say. */
	} else if (n < 0) {
		cli_err(x->c, "cannot read the version command's output: %s",
			strerror(err));
	} else if (code != 0) {
		cli_err(x->c, "the version command '%s' failed (%s %d)",
			out_q(x->a->version_cmd), signo ? "signal" : "exit",
			signo ? signo : code);
	} else if (out.oom) {
		cli_err(x->c, "out of memory");
	} else if (out.len <= VERSION_RAW_MAX) {
		bytes_rec(v, 'o', out.p ? out.p : "", out.len);
		rc = 0;
	} else {
		char hex[CLI_DIGEST_HEX];

		cli_digest_hex(st, hex);
		bytes_rec(v, 'h', hex, 32);
		rc = 0;
	}
out:
	free(out.p);
	cli_digest_free(st);
	return rc;
}

/* The version bytes now (docs/cli.md#run). Failures are reported here. */
static int compute_version(struct run_ctx *x, struct bytes *v)
{
	v->len = 0;
	bytes_add(v, MAGIC "\n", sizeof(MAGIC));
	if (x->a->ninputs && inputs_version(x, v) != 0)
		return -1;
	if (x->a->version_cmd && version_cmd(x, v) != 0)
		return -1;
	if (v->oom) {
		cli_err(x->c, "out of memory");
		return -1;
	}
	return 0;
}

/* The fill's version function: called before the lookup and, after each
 * run of the command, again to check that the sources did not change
 * during the run (if they did, the library publishes nothing and runs
 * the loader again under the new version). */
static int version_fn(larder_fill *f, void *payload)
{
	struct run_ctx *x = payload;
	struct bytes now = {0};
	int rc;

	if (cli_stop_sig)
		return LARDER_ECANCELED;
	if (compute_version(x, &now) != 0) {
		/* Before any run: our failure. After one: the output is
		 * delivered, only the cache misses out. */
		free(now.p);
		if (cli_stop_sig)
			return LARDER_ECANCELED;
		x->err_exit = CLI_IO;
		return LARDER_EIO;
	}
	if (x->attempts > 0 &&
	    (now.len != x->ver.len || memcmp(now.p, x->ver.p, now.len) != 0))
		x->changed = 1;
	free(x->ver.p);
	x->ver = now;
	x->have_ver = 1;
	rc = larder_fill_set_version(f, now.p, now.len);
	if (rc)
		cli_err_lib(x->c, "", larder_errmsg(x->db));
	return rc;
}

/* ---------------------------------------------------------------------- */
/* The loader: run the command, tee its stdout                            */

static void tee_out(struct run_ctx *x, const void *p, size_t n)
{
	int err;

	progress_add(&x->prog, n);
	if (x->out_gone || x->out_err)
		return;
	err = out_write_all(STDOUT_FILENO, p, n);
	/* The reader went away (`larder run ... | head`): keep draining
	 * into the cache, since others may be waiting for this result. */
	if (err == EPIPE)
		x->out_gone = 1;
	else if (err)
		x->out_err = err;
}

static int loader(larder_fill *f, void *payload)
{
	struct run_ctx *x = payload;
	const int first = x->attempts++ == 0;
	uint8_t trailer[TRAILER_LEN];
	struct sigaction saved_quit;
	int code = 0, signo = 0, rerr = 0, fd;
	int cache_rc = 0;
	ssize_t n;
	pid_t pid;
	int err;

	/* Stopped before the command started: do not start it. */
	if (cli_stop_sig)
		return LARDER_ECANCELED;
	signals_during_child(&saved_quit);
	err = spawn_piped(x->cmd, NULL, &pid, &fd);
	if (err) {
		signals_restore(&saved_quit);
		cli_err(x->c, "cannot run '%s': %s", out_q(x->cmd[0]),
			strerror(err));
		if (first)
			x->spawn_err = err;
		return LOADER_CMD_FAILED;
	}
	cli_stop_child(pid);
	/* Interrupted or not, the output is read to its end: the caller
	 * sees all the command printed. Once a stop signal came,
	 * larder_fill_write() refuses (the fill's cancel flag) and the
	 * entry is not written further. */
	while ((n = read_some(fd, x->chunk, CHUNK)) > 0) {
		if (first)
			tee_out(x, x->chunk, (size_t)n);
		/* A cache failure must not cut the caller's output short:
		 * remember it, keep teeing. */
		if (!cache_rc)
			cache_rc = larder_fill_write(f, x->chunk, (size_t)n);
	}
	if (n < 0)
		rerr = errno;
	/* Closing before reaping: a command still writing after a read
	 * error gets SIGPIPE instead of blocking us forever. */
	close(fd);
	reap(pid, &code, &signo);
	signals_restore(&saved_quit);
	if (first) {
		x->status = code;
		x->signo = signo;
	}
	x->last_status = code;
	/* Interrupted: whatever the command made of it, nothing is
	 * published (the library removes the temp file and the lease). */
	if (cli_stop_sig)
		return LARDER_ECANCELED;
	if (rerr) {
		cli_err(x->c, "cannot read the output of '%s': %s",
			out_q(x->cmd[0]), strerror(rerr));
		return LARDER_EIO;
	}
	if (code != 0 && !x->a->cache_failures)
		return LOADER_CMD_FAILED;
	if (cache_rc)
		return cache_rc;
	memcpy(trailer, TRAILER_MAGIC, 8);
	for (int i = 0; i < 4; i++) {
		trailer[8 + i] = (uint8_t)((unsigned)code >> (8 * i));
		trailer[12 + i] = (uint8_t)((unsigned)signo >> (8 * i));
	}
	return larder_fill_write(f, trailer, sizeof(trailer));
}

/* ---------------------------------------------------------------------- */
/* Options                                                                 */

static int push(struct cli *c, const char ***list, size_t *n, const char *s)
{
	const char **l = realloc(*list, (*n + 1) * sizeof(*l));

	if (!l) {
		cli_err(c, "out of memory");
		return CLI_IO;
	}
	l[(*n)++] = s;
	*list = l;
	return CLI_CONTINUE;
}

static int run_opt(struct cli *c, int id, const char *arg, void *ctx)
{
	struct run_args *a = ctx;

	switch (id) {
	case OPT_KEY:
		a->key = arg;
		return CLI_CONTINUE;
	case OPT_INPUT:
		if (!*arg)
			return cli_usage_err(c, "--input needs a file name");
		return push(c, &a->inputs, &a->ninputs, arg);
	case OPT_ENV:
		if (!*arg || strchr(arg, '='))
			return cli_usage_err(c,
					     "bad --env '%s' (want a variable "
					     "name, without '=')",
					     out_q(arg));
		return push(c, &a->envs, &a->nenvs, arg);
	case OPT_VERSION_CMD:
		a->version_cmd = arg;
		return CLI_CONTINUE;
	case OPT_CACHE_FAILURES:
		a->cache_failures = 1;
		return CLI_CONTINUE;
	default:
		return cli_fill_opt(c, &a->fill, id, arg);
	}
}

static const struct option run_longopts[] = {
    {"key", required_argument, NULL, OPT_KEY},
    {"input", required_argument, NULL, OPT_INPUT},
    {"env", required_argument, NULL, OPT_ENV},
    {"version-cmd", required_argument, NULL, OPT_VERSION_CMD},
    CLI_FILL_LONGOPTS,
    {"cache-failures", no_argument, NULL, OPT_CACHE_FAILURES},
    {0},
};

/*
 * The index of the "--" that ends larder's options, or -1. It must be
 * found before cli_parse() sees argv, which would take the command's own
 * options (`-n` in `echo -n`) for ours. A getopt pass over the same
 * options (the global ones too: getopt must know which take an argument)
 * that stops at the first non-option finds it exactly as the real parse
 * would, option arguments and abbreviations included ("--key --" names a
 * key "--").
 */
static int find_dashdash(int argc, char **argv)
{
	struct option all[CLI_MAX_LONGOPTS];

	cli_merge_longopts(all, run_longopts);
	opterr = 0;
	optind = 0;
	while (getopt_long(argc, argv, "+:" CLI_GLOBAL_SHORT, all, NULL) != -1)
		;
	if (optind > 1 && optind <= argc && strcmp(argv[optind - 1], "--") == 0)
		return optind - 1;
	return -1;
}

/* ---------------------------------------------------------------------- */

/* The key (docs/cli.md#run): the library encodes it (larder_run_key), so
 * that other clients share these entries; here the run is described:
 * the working directory, and each --env variable as "NAME=VALUE", or
 * "NAME" alone when it is unset. */
static int build_key(struct cli *c, const struct run_args *a, char **cmd,
		     int ncmd, char **key, size_t *klen)
{
	larder_run_spec spec = LARDER_RUN_SPEC_INIT;
	char **env = NULL;
	char *cwd = NULL;
	size_t nenv = 0;
	int rc = CLI_IO;
	int lrc;

	if (!a->key) {
		cwd = getcwd(NULL, 0);
		if (!cwd) {
			cli_err(c, "cannot get the working directory: %s",
				strerror(errno));
			goto out;
		}
	}
	env = calloc(a->nenvs ? a->nenvs : 1, sizeof(*env));
	if (!env)
		goto oom;
	for (; nenv < a->nenvs; nenv++) {
		const char *name = a->envs[nenv];
		const char *val = getenv(name);

		if (val ? asprintf(&env[nenv], "%s=%s", name, val) < 0
			: !(env[nenv] = strdup(name)))
			goto oom;
	}
	spec.key = a->key;
	spec.cwd = cwd;
	spec.argv = (const char *const *)cmd;
	spec.argc = (size_t)ncmd;
	spec.inputs = a->inputs;
	spec.ninputs = a->ninputs;
	spec.env = (const char *const *)env;
	spec.nenv = a->nenvs;
	spec.version_cmd = a->version_cmd;
	spec.cache_failures = a->cache_failures;
	lrc = larder_run_key(key, klen, &spec);
	if (lrc == LARDER_ENOMEM)
		goto oom;
	if (lrc != 0) {
		cli_err(c, "cannot make the key: %s", larder_strerror(lrc));
		goto out;
	}
	rc = CLI_OK;
	goto out;
oom:
	cli_err(c, "out of memory");
out:
	/* asprintf leaves its pointer undefined on failure: only those
	 * made before it are freed. */
	for (size_t i = 0; i < nenv; i++)
		free(env[i]);
	free(env);
	free(cwd);
	return rc;
}

/* Deliver a cached result: the stdout bytes, then its status. */
static int deliver(struct run_ctx *x, const larder_entry *e, int *status)
{
	const uint8_t *p = larder_entry_data(e);
	size_t size = larder_entry_size(e);
	const uint8_t *t;
	unsigned code = 0;

	if (size < TRAILER_LEN ||
	    memcmp(p + size - TRAILER_LEN, TRAILER_MAGIC, 8) != 0) {
		cli_err(x->c, "the cached entry is not a 'larder run' result "
			      "(no status trailer)");
		return CLI_IO;
	}
	t = p + size - TRAILER_LEN;
	for (int i = 0; i < 4; i++)
		code |= (unsigned)t[8 + i] << (8 * i);
	*status = code > 255 ? 255 : (int)code;
	/* In slices, for the progress line. */
	progress_phase(&x->prog, "writing");
	for (size_t off = 0, n; off < size - TRAILER_LEN; off += n) {
		n = size - TRAILER_LEN - off;
		if (n > CHUNK)
			n = CHUNK;
		tee_out(x, p + off, n);
	}
	return CLI_OK;
}

/* A hit too big to hold in this process's memory (larder_get_or_fill
 * refused it: larder_opts.max_in_memory) is streamed instead: every byte
 * but the last TRAILER_LEN seen so far is written out at once, the
 * status trailer held back. */
struct stream_out {
	struct run_ctx *x;
	uint8_t tail[TRAILER_LEN];
	size_t have; /* bytes held in tail */
};

static int stream_sink(const void *buf, size_t len, void *payload)
{
	struct stream_out *s = payload;
	const uint8_t *p = buf;

	if (len >= TRAILER_LEN) {
		tee_out(s->x, s->tail, s->have);
		tee_out(s->x, p, len - TRAILER_LEN);
		memcpy(s->tail, p + len - TRAILER_LEN, TRAILER_LEN);
		s->have = TRAILER_LEN;
		return 0;
	}
	size_t over =
	    s->have + len > TRAILER_LEN ? s->have + len - TRAILER_LEN : 0;
	tee_out(s->x, s->tail, over);
	memmove(s->tail, s->tail + over, s->have - over);
	s->have -= over;
	memcpy(s->tail + s->have, p, len);
	s->have += len;
	return 0;
}

static int deliver_stream(struct run_ctx *x, const char *key, size_t klen,
			  int *status)
{
	struct stream_out s = {.x = x};
	unsigned code = 0;

	progress_phase(&x->prog, "writing");
	int lrc = larder_get_stream(x->db, x->c->ns, key, klen, x->ver.p,
				    x->ver.len, stream_sink, &s);
	if (lrc != 0)
		return cli_fail(x->c, x->db, lrc);
	if (s.have < TRAILER_LEN || memcmp(s.tail, TRAILER_MAGIC, 8) != 0) {
		cli_err(x->c, "the cached entry is not a 'larder run' result "
			      "(no status trailer)");
		return CLI_IO;
	}
	for (int i = 0; i < 4; i++)
		code |= (unsigned)s.tail[8 + i] << (8 * i);
	*status = code > 255 ? 255 : (int)code;
	return CLI_OK;
}

static int run_run(struct cli *c, int argc, char **argv)
{
	struct run_args a = {0};
	struct run_ctx x = {0};
	larder_put_opts po = LARDER_PUT_OPTS_INIT;
	larder_fill_opts fo = LARDER_FILL_OPTS_INIT;
	char *key = NULL;
	size_t klen = 0;
	larder_entry *e = NULL;
	const char *how = NULL;
	char why[512] = "";
	larder *db = NULL;
	int dd, first, rc, lrc, outcome = 0, status = 0;
	double t0;

	dd = find_dashdash(argc, argv);
	rc = cli_parse(c, &cli_cmd_run, dd < 0 ? argc : dd, argv, "",
		       run_longopts, run_opt, &a, &first);
	if (rc != CLI_CONTINUE)
		goto out;
	if (dd < 0) {
		rc = cli_usage_err(c, "missing '--' before the COMMAND");
		goto out;
	}
	if (first < dd) {
		rc = cli_usage_err(c,
				   "unexpected argument '%s' (the COMMAND "
				   "goes after '--')",
				   out_q(argv[first]));
		goto out;
	}
	if (dd + 1 >= argc) {
		rc = cli_usage_err(c, "missing COMMAND after '--'");
		goto out;
	}
	x.c = c;
	x.a = &a;
	x.cmd = argv + dd + 1;
	x.chunk = malloc(CHUNK);
	if (!x.chunk) {
		cli_err(c, "out of memory");
		rc = CLI_IO;
		goto out;
	}
	rc = build_key(c, &a, x.cmd, argc - dd - 1, &key, &klen);
	if (rc != CLI_OK)
		goto out;

	rc = cli_open(c, &db, NULL);
	if (rc != CLI_OK)
		goto out;
	x.db = db;
	/* From the lookup to the publish, SIGINT, SIGTERM and SIGHUP stop
	 * the fill cleanly (no temp file, no lease left); then we die of
	 * the signal (cli_stop_end below). */
	cli_stop_begin();
	fo.cancel = &cli_stop_sig;

	po.meta = MAGIC;
	po.meta_len = strlen(MAGIC);
	cli_fill_apply(&a.fill, &po, &fo);
	fo.max_retries = MAX_RUNS;
	fo.on_wait = progress_on_wait;
	fo.on_wait_payload = &x.prog;

	t0 = progress_now();
	progress_start(&x.prog, "running", 1);
	lrc = larder_get_or_fill(&e, &outcome, db, c->ns, key, klen, NULL, 0,
				 version_fn, loader, &x, &fo);
	if (cli_stop_sig) {
		rc = CLI_IO; /* not returned: we die of the signal */
		goto out;
	}
	cli_stop_end();
	if (x.attempts > 0) {
		/* We ran the command: the caller has its output already
		 * (teed), whatever happened to the cache. */
		status = x.status;
		if (x.spawn_err) {
			status = x.spawn_err == ENOENT ? 127 : 126;
			how = "uncached";
			snprintf(why, sizeof(why),
				 "; the command could not "
				 "be run");
		} else if (lrc == 0 && outcome != LARDER_FILLED_UNCACHED) {
			how = "filled";
			if (x.attempts > 1)
				snprintf(why, sizeof(why),
					 "; the sources changed during the "
					 "run: ran %u times, printed the "
					 "first",
					 x.attempts);
		} else if (lrc < 0 && outcome == LARDER_FILLED) {
			/* Stored; only reading it back failed (ulimit -v):
			 * the output was teed already, and the next run
			 * finds it. */
			how = "filled";
			snprintf(why, sizeof(why), "; cached, not read back");
			cli_err(c, "warning: %s", larder_errmsg(db));
		} else if (lrc == 0) {
			how = "uncached";
			snprintf(why, sizeof(why),
				 "; the cache could not keep it");
			if (!c->logged)
				cli_err_lib(c,
					    "warning: the result was not "
					    "cached: ",
					    larder_errmsg(db));
		} else if (x.status != 0 && !a.cache_failures) {
			how = "uncached";
			snprintf(why, sizeof(why),
				 "; a failing command is not cached");
		} else {
			how = "uncached";
			if (x.last_status != 0 && !a.cache_failures)
				snprintf(why, sizeof(why),
					 "; a rerun after the sources "
					 "changed failed");
			else if (x.changed)
				snprintf(why, sizeof(why),
					 "; the sources changed during each "
					 "of %u runs",
					 x.attempts);
			else
				snprintf(why, sizeof(why), "; not cached");
			if (x.changed)
				cli_err(c,
					"warning: the result was not "
					"cached: the sources changed "
					"during each of %u runs",
					x.attempts);
			else if (x.err_exit || x.last_status != 0)
				cli_err(c, "warning: the result was not "
					   "cached");
			else
				cli_err_lib(
				    c, "warning: the result was not cached: ",
				    larder_errmsg(db));
		}
	} else if (lrc == 0) {
		how = outcome == LARDER_WAITED	? "waited"
		      : outcome == LARDER_STALE ? "stale"
						: "hit";
		rc = deliver(&x, e, &status);
		if (rc != CLI_OK)
			goto out;
	} else if (lrc == LARDER_ENOMEM && x.have_ver && x.attempts == 0) {
		/* Found, but larger than this process holds in memory. */
		how = "hit";
		rc = deliver_stream(&x, key, klen, &status);
		if (rc != CLI_OK)
			goto out;
	} else if (x.err_exit) {
		rc = x.err_exit; /* reported by compute_version */
		goto out;
	} else {
		rc = cli_fail(c, db, lrc);
		goto out;
	}
	progress_end(&x.prog);
	if (x.out_err) {
		cli_err(c, "cannot write to stdout: %s", strerror(x.out_err));
		rc = CLI_IO;
		goto out;
	}
	if (c->verbose)
		fprintf(stderr, "%s in %.3f s (exit %d%s)\n", how,
			progress_now() - t0, status, why);
	rc = status;
out:
	progress_end(&x.prog);
	larder_entry_release(e);
	larder_close(db);
	cli_stop_end();
	larder_run_key_free(key);
	free(x.ver.p);
	free(x.chunk);
	free(a.inputs);
	free(a.envs);
	return rc;
}

const struct cli_cmd cli_cmd_run = {
    .name = "run",
    .run = run_run,
    .summary = "run a command once, share its output (memoize)",
    .usage = "[--key K] [--input PATH]... [--env NAME]... [--version-cmd CMD]\n"
	     "       [--ttl T] [--lease S] [--max-wait S] [--allow-stale]\n"
	     "       [--cache-failures] [-v] -- COMMAND [ARGS...]",
    .help =
	"Run COMMAND and remember its stdout and exit status in the store, "
	"so that the\n"
	"next identical run — here or on any host sharing the store — "
	"prints the\n"
	"remembered output and exits with the remembered status instead. "
	"When many\n"
	"processes miss at once, one runs COMMAND and the others wait for "
	"its result.\n"
	"On a fill, the output is printed as it is produced. stderr is "
	"passed through,\n"
	"never cached; stdin is inherited (and is not part of the key).\n\n"
	"The result is looked up by a key and a version:\n"
	"  key      COMMAND and ARGS (or --key), the working directory "
	"(unless --key),\n"
	"           the --input names, the --env variables' values, the "
	"--version-cmd\n"
	"  version  the content of the --input files and directories (each "
	"file is\n"
	"           hashed once per change and remembered in the store, so a "
	"hit reads\n"
	"           none of it), the output of --version-cmd. Checked again "
	"after a run:\n"
	"           if it changed meanwhile,"
	" COMMAND runs again (up to 3 times) before\n"
	"           anything is cached.\n\n"
	"Options:\n"
	"  --key K           name the result K instead of COMMAND, ARGS and "
	"the\n"
	"                    working directory (you vouch that K says what "
	"matters)\n"
	"  --input PATH      a file or directory COMMAND reads: a change to "
	"its content\n"
	"                    re-runs it (repeatable; docs/versions.md)\n"
	"  --env NAME        an environment variable COMMAND depends on "
	"(repeatable;\n"
	"                    unset and empty differ)\n"
	"  --version-cmd CMD a shell command (sh -c, stdin /dev/null) whose "
	"stdout\n"
	"                    names the state of other sources; it must "
	"succeed\n"
	"  --ttl T           expire the result after T: seconds, or N with "
	"s/m/h/d,\n"
	"                    or 'never' (default: the namespace's TTL)\n"
	"  --lease S         the lease length in seconds (default 30, at "
	"least 1): how\n"
	"                    long a filler on another host may be silent "
	"before\n"
	"                    another takes over; a plain decimal, or N with "
	"s/m/h/d\n"
	"  --max-wait S      wait at most S seconds for another filler, then "
	"run\n"
	"                    COMMAND anyway (default 10 leases)\n"
	"  --allow-stale     while another process runs COMMAND, print the "
	"previous\n"
	"                    result at once instead of waiting\n"
	"  --cache-failures  also cache runs that exit non-zero or are "
	"killed\n"
	"  -v                print one line to stderr: hit, filled, waited, "
	"stale or\n"
	"                    uncached, the time taken and the exit status\n\n"
	"A failing run (exit status not 0, or killed by a signal) is not "
	"cached unless\n"
	"--cache-failures is given; its output is still printed. If the "
	"store cannot\n"
	"keep a result, the output is printed anyway, with a warning. If "
	"the reader of\n"
	"stdout goes away, COMMAND still runs to its end and its result is "
	"cached.\n\n"
	"Exit status: COMMAND's (128+N if killed by signal N); 126 if "
	"COMMAND cannot\n"
	"be executed, 127 if it is not found; larder's own failures as "
	"for every\n"
	"command (2 usage, 3 store, 4 I/O: a missing --input, a failing "
	"--version-cmd).\n\n"
	"Example:\n"
	"  larder run --input data.csv --env LANG -v -- ./make_report.sh "
	"data.csv\n",
};
