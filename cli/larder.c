/*
 * larder.c — the `larder` command-line tool: global options, command
 * dispatch, help, opening the store and mapping library codes to exit
 * codes. The commands live in cli/cmd_*.c; all of them use the public API
 * only.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

static const struct cli_cmd *const commands[] = {
    &cli_cmd_init,  &cli_cmd_put,     &cli_cmd_get,    &cli_cmd_rm,
    &cli_cmd_ls,    &cli_cmd_inspect, &cli_cmd_verify, &cli_cmd_run,
    &cli_cmd_sql,   &cli_cmd_stat,    &cli_cmd_gc,     &cli_cmd_config,
#ifdef LARDER_WITH_FUSE
    &cli_cmd_mount, &cli_cmd_umount,
#endif
    NULL,
};

static const char exit_codes_help[] =
    "Exit codes:\n"
    "  0  success\n"
    "  1  not found (a miss)\n"
    "  2  usage error (unknown command or option, missing or bad "
    "argument)\n"
    "  3  store problem (no store at DIR, not a store, newer format,\n"
    "     unsafe permissions, permission denied)\n"
    "  4  I/O error (read or write failure, disk full); for sql, the "
    "database\n"
    "     failed\n"
    "  5  verify found problems that remain (inspect: the entry is damaged)\n";

static void print_main_help(FILE *f)
{
	fprintf(f, "usage: larder [--dir DIR] [--ns NS] [-v] COMMAND "
		   "[ARGS...]\n"
		   "       larder help COMMAND | larder COMMAND --help\n"
		   "       larder --version\n\n"
		   "A shared cache for expensive data.\n\nCommands:\n");
	for (const struct cli_cmd *const *cmd = commands; *cmd; cmd++)
		fprintf(f, "  %-8s %s\n", (*cmd)->name, (*cmd)->summary);
	fprintf(f,
		"\nGlobal options (before or after the command name):\n"
		"  -d, --dir DIR   the store (default: $LARDER_DIR, else\n"
		"                  $XDG_CACHE_HOME/larder, else "
		"$HOME/.cache/larder)\n"
		"  -n, --ns NS     the namespace (default: \"default\")\n"
		"  -v, --verbose   say what was done\n"
		"  --log-level L   log the library's messages up to level L:\n"
		"                  error, warn, info or debug (default:\n"
		"                  $LARDER_LOG_LEVEL, else warn)\n"
		"  --log-json      log as one JSON object per line on stderr\n"
		"  --allow-unsafe-mode\n"
		"                  use a store directory that every user may\n"
		"                  write to (refused by default: anyone could\n"
		"                  plant entries)\n"
		"  -h, --help      show help\n\n%s",
		exit_codes_help);
}

void cli_print_cmd_help(FILE *f, const struct cli_cmd *cmd)
{
	fprintf(f, "usage: larder %s %s\n\n%s\n%s", cmd->name, cmd->usage,
		cmd->help,
		"Global options: -d/--dir DIR, -n/--ns NS, -v/--verbose, "
		"--log-level L,\n"
		"--log-json, --allow-unsafe-mode, -h/--help\n");
}

/* "larder: <command>: <prefix><msg>" on stderr, msg escaped: exactly
 * (out_text) or, for a message whose parts were escaped already,
 * out_safe(). */
static void report(const struct cli *c, const char *prefix, const char *msg,
		   int exact)
{
	progress_pause();
	fputs("larder: ", stderr);
	if (c && c->cmd)
		fprintf(stderr, "%s: ", c->cmd);
	fputs(prefix, stderr);
	if (exact)
		out_text(stderr, msg, strlen(msg));
	else
		out_safe(stderr, msg, strlen(msg));
	fputc('\n', stderr);
	progress_resume();
}

__attribute__((format(printf, 2, 0))) static void
vreport(const struct cli *c, const char *fmt, va_list ap)
{
	char *msg = NULL;

	/* Callers escape what they quote (out_q); out_safe() catches a
	 * string that was not, so that none reaches the terminal raw. */
	if (vasprintf(&msg, fmt, ap) < 0)
		report(c, "", "out of memory", 0);
	else
		report(c, "", msg, 0);
	free(msg);
}

void cli_err(const struct cli *c, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vreport(c, fmt, ap);
	va_end(ap);
}

void cli_err_lib(const struct cli *c, const char *prefix, const char *msg)
{
	/* The library's messages quote what they were given (a namespace,
	 * a path, a database's words) as it was. */
	report(c, prefix, msg, 1);
}

int cli_usage_err(const struct cli *c, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vreport(c, fmt, ap);
	va_end(ap);
	if (c && c->cmd)
		fprintf(stderr, "Try 'larder help %s'.\n", c->cmd);
	else
		fprintf(stderr, "Try 'larder --help'.\n");
	return CLI_USAGE;
}

int cli_exit_code(int rc)
{
	switch (rc) {
	case LARDER_OK:
	case LARDER_EXISTS:
		return CLI_OK;
	case LARDER_ENOTFOUND:
		return CLI_MISS;
	case LARDER_EINVAL:
		return CLI_USAGE;
	case LARDER_EPERM:
	case LARDER_EVERSION:
	case LARDER_ENOTSTORE:
		return CLI_STORE;
	default:
		return CLI_IO;
	}
}

int cli_open_exit_code(int rc)
{
	/* Whatever stops a store from opening is a store problem, except a
	 * plain I/O failure or lack of memory or space. */
	switch (rc) {
	case LARDER_EIO:
	case LARDER_EFULL:
	case LARDER_ENOMEM:
	case LARDER_ESTALE:
		return CLI_IO;
	default:
		return CLI_STORE;
	}
}

int cli_fail(const struct cli *c, larder *db, int rc)
{
	const char *msg = db ? larder_errmsg(db) : NULL;

	if (msg && *msg)
		cli_err_lib(c, "", msg);
	else
		cli_err(c, "%s", larder_strerror(rc));
	return cli_exit_code(rc);
}

int cli_positionals(struct cli *c, int argc, char **argv, int first, int min,
		    int max, const char *what)
{
	if (argc - first < min)
		return cli_usage_err(c, "missing %s", what);
	if (argc - first > max)
		return cli_usage_err(c, "unexpected argument '%s'",
				     out_q(argv[first + max]));
	return CLI_CONTINUE;
}

static const char *const level_names[] = {NULL, "error", "warn", "info",
					  "debug"};

/* A level name to enum larder_log_level; 0 if unknown. */
static int parse_level(const char *s)
{
	for (int i = LARDER_LOG_ERROR; i <= LARDER_LOG_DEBUG; i++)
		if (strcmp(s, level_names[i]) == 0)
			return i;
	return 0;
}

static const char *level_name(int level)
{
	if (level < LARDER_LOG_ERROR)
		level = LARDER_LOG_ERROR;
	if (level > LARDER_LOG_DEBUG)
		level = LARDER_LOG_DEBUG;
	return level_names[level];
}

/* Now as ISO-8601 UTC with milliseconds: "2026-01-31T12:00:00.123Z". */
static void iso_now_ms(char *buf, size_t size)
{
	struct timespec ts;
	struct tm tm;
	size_t n;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = strftime(buf, size, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf + n, size - n, ".%03ldZ", ts.tv_nsec / 1000000);
}

void cli_log(struct cli *c, int level, const char *msg)
{
	char *line = NULL;
	size_t len = 0;
	FILE *f;

	if (level > (c->log_level ? c->log_level : LARDER_LOG_WARN))
		return;
	if (level <= LARDER_LOG_WARN)
		c->logged = 1;
	/* Built first and written at once, so that lines from processes
	 * sharing stderr do not interleave. */
	f = open_memstream(&line, &len);
	if (!f)
		return;
	if (c->log_json) {
		char ts[48];

		iso_now_ms(ts, sizeof(ts));
		fprintf(f, "{\"ts\":\"%s\",\"level\":\"%s\",\"msg\":", ts,
			level_name(level));
		out_json_str(f, msg, strlen(msg));
		fputs(",\"cmd\":", f);
		if (c->cmd)
			out_json_str(f, c->cmd, strlen(c->cmd));
		else
			fputs("null", f);
		fputs("}\n", f);
	} else {
		fprintf(f, "larder: %s: ", level_name(level));
		out_text(f, msg, strlen(msg));
		fputc('\n', f);
	}
	if (fclose(f) == 0) {
		progress_pause();
		(void)out_write_all(STDERR_FILENO, line, len);
		progress_resume();
	}
	free(line);
}

static void on_log(int level, const char *msg, void *payload)
{
	cli_log(payload, level, msg);
}

int cli_global_opt(struct cli *c, int id, const char *arg)
{
	switch (id) {
	case 'L':
		c->log_level = parse_level(arg);
		if (!c->log_level)
			return cli_usage_err(c,
					     "bad --log-level '%s' (error, "
					     "warn, info or debug)",
					     out_q(arg));
		return CLI_CONTINUE;
	case 'J':
		c->log_json = 1;
		return CLI_CONTINUE;
	case 'd':
		if (!*arg)
			return cli_usage_err(c, "--dir needs a directory");
		c->dir = arg;
		return CLI_CONTINUE;
	case 'n':
		c->ns = arg;
		c->ns_given = 1;
		return CLI_CONTINUE;
	case 'v':
		c->verbose = 1;
		return CLI_CONTINUE;
	case 'U':
		c->allow_unsafe = 1;
		return CLI_CONTINUE;
	default:
		return cli_usage_err(c, "unknown option");
	}
}

/* The option getopt choked on, for the message: a long option as the
 * user wrote it (without "=value"), a short one from optopt (it may sit in
 * a cluster like -xz). */
static const char *bad_option(char **argv, int opt)
{
	static char name[64];
	const char *arg = optind > 0 ? argv[optind - 1] : NULL;

	if (arg && strncmp(arg, "--", 2) == 0) {
		snprintf(name, sizeof(name), "%.*s", (int)strcspn(arg, "="),
			 arg);
		return name;
	}
	snprintf(name, sizeof(name), "-%c", opt);
	return name;
}

/* The global options, defined here once: cli_parse() and parse_top()
 * accept them, and `larder run` must know them to find its "--". */
static const struct option global_longopts[] = {
    {"dir", required_argument, NULL, 'd'},
    {"ns", required_argument, NULL, 'n'},
    {"verbose", no_argument, NULL, 'v'},
    {"allow-unsafe-mode", no_argument, NULL, 'U'},
    {"log-level", required_argument, NULL, 'L'},
    {"log-json", no_argument, NULL, 'J'},
    {"help", no_argument, NULL, 'h'},
    {0},
};

#define NGLOBAL (sizeof(global_longopts) / sizeof(global_longopts[0]) - 1)

void cli_merge_longopts(struct option *all, const struct option *own)
{
	size_t n = 0;

	for (; own && own[n].name && n < CLI_MAX_LONGOPTS - NGLOBAL - 1; n++)
		all[n] = own[n];
	for (size_t i = 0; i < NGLOBAL; i++)
		all[n++] = global_longopts[i];
	memset(&all[n], 0, sizeof(all[n]));
}

int cli_parse(struct cli *c, const struct cli_cmd *cmd, int argc, char **argv,
	      const char *opts, const struct option *longopts,
	      int (*on_opt)(struct cli *c, int id, const char *arg, void *ctx),
	      void *ctx, int *first)
{
	struct option all[CLI_MAX_LONGOPTS];
	char shortopts[64];
	char **pos;
	int npos = 0;
	int help = 0;
	int rc = CLI_CONTINUE;
	int id;

	pos = calloc((size_t)argc, sizeof(*pos));
	if (!pos) {
		cli_err(c, "out of memory");
		return CLI_IO;
	}
	/* '-' hands us positional arguments in order (as id 1) whatever
	 * POSIXLY_CORRECT says, so options may follow them; ':' makes getopt
	 * report a missing argument as ':' and print nothing itself, so
	 * every message has our format. */
	snprintf(shortopts, sizeof(shortopts), "-:%s%s", CLI_GLOBAL_SHORT,
		 opts ? opts : "");
	cli_merge_longopts(all, longopts);

	opterr = 0;
	optind = 0; /* glibc: re-initialise fully for a second parse */
	while ((id = getopt_long(argc, argv, shortopts, all, NULL)) != -1) {
		if (id == 1) {
			pos[npos++] = optarg;
		} else if (id == '?') {
			rc = cli_usage_err(c, "unknown option '%s'",
					   out_q(bad_option(argv, optopt)));
		} else if (id == ':') {
			rc = cli_usage_err(c, "option '%s' needs an argument",
					   out_q(bad_option(argv, optopt)));
		} else if (id == 'h') {
			help = 1;
		} else if (id == 'd' || id == 'n' || id == 'v' || id == 'U' ||
			   id == 'L' || id == 'J') {
			rc = cli_global_opt(c, id, optarg);
		} else {
			rc = on_opt(c, id, optarg, ctx);
		}
		if (rc != CLI_CONTINUE)
			goto out;
	}
	if (help) {
		cli_print_cmd_help(stdout, cmd);
		rc = fflush(stdout) == 0 ? CLI_OK : CLI_IO;
		goto out;
	}
	/* Everything after "--" is positional too. */
	while (optind < argc)
		pos[npos++] = argv[optind++];
	/* Hand the positionals back at the end of argv, in order. */
	*first = argc - npos;
	memcpy(argv + *first, pos, (size_t)npos * sizeof(*pos));
out:
	free(pos);
	return rc;
}

/* The default store directory, per the XDG base directory spec (which
 * says to ignore a relative XDG_CACHE_HOME). */
int cli_resolve_dir(struct cli *c)
{
	const char *env;
	const char *suffix;

	if (c->dir)
		return CLI_OK;
	env = getenv("LARDER_DIR");
	if (env && *env) {
		c->dir = env;
		return CLI_OK;
	}
	env = getenv("XDG_CACHE_HOME");
	suffix = "/larder";
	if (!env || env[0] != '/') {
		env = getenv("HOME");
		suffix = "/.cache/larder";
	}
	if (!env || !*env)
		return cli_usage_err(c, "no store directory: use --dir DIR or "
					"set LARDER_DIR");
	if (asprintf(&c->dir_buf, "%s%s", env, suffix) < 0) {
		cli_err(c, "out of memory");
		return CLI_IO;
	}
	c->dir = c->dir_buf;
	return CLI_OK;
}

int cli_open(struct cli *c, larder **out, const larder_opts *opts)
{
	const char *msg;
	int rc;

	rc = cli_resolve_dir(c);
	if (rc != CLI_OK)
		return rc;
	if (!c->log_level) {
		const char *env = getenv("LARDER_LOG_LEVEL");

		if (env && *env) {
			c->log_level = parse_level(env);
			if (!c->log_level)
				return cli_usage_err(
				    c,
				    "bad LARDER_LOG_LEVEL '%s' (error, "
				    "warn, info or debug)",
				    out_q(env));
		}
	}
	larder_opts o = LARDER_OPTS_INIT;
	if (opts)
		o = *opts;
	o.log = on_log;
	o.log_payload = c;
	o.log_level = c->log_level ? c->log_level : LARDER_LOG_WARN;
	if (c->allow_unsafe)
		o.flags |= LARDER_OPEN_ALLOW_UNSAFE_MODE;
	rc = larder_open(out, c->dir, &o);
	if (rc == 0)
		return CLI_OK;
	/* The library's message names the path and the cause already. */
	msg = larder_errmsg(NULL);
	if (msg && *msg)
		cli_err_lib(c, "", msg);
	else if (rc == LARDER_ENOTFOUND)
		cli_err(c, "no store at '%s' (create one with 'larder init')",
			out_q(c->dir));
	else
		cli_err(c, "cannot open store '%s': %s", out_q(c->dir),
			larder_strerror(rc));
	return cli_open_exit_code(rc);
}

static const struct cli_cmd *find_cmd(const char *name)
{
	for (const struct cli_cmd *const *cmd = commands; *cmd; cmd++)
		if (strcmp((*cmd)->name, name) == 0)
			return *cmd;
	return NULL;
}

/* What to say of a command this build does not have: the ones a build
 * leaves out say how to get them. */
static const char *unknown_cmd(const char *name)
{
	static char msg[512];
#ifndef LARDER_WITH_FUSE
	if (strcmp(name, "mount") == 0 || strcmp(name, "umount") == 0)
		return "this larder was built without FUSE support, so it has "
		       "no 'mount' or 'umount' (install libfuse3-dev, e.g. "
		       "scripts/deps.sh fuse, and build again)";
#endif
	snprintf(msg, sizeof msg, "unknown command '%s'", out_q(name));
	return msg;
}

static int run_help(struct cli *c, int argc, char **argv)
{
	const struct cli_cmd *cmd;

	if (argc < 2 || strcmp(argv[1], "help") == 0) {
		print_main_help(stdout);
		return fflush(stdout) == 0 ? CLI_OK : CLI_IO;
	}
	if (argc > 2)
		return cli_usage_err(c, "too many arguments");
	cmd = find_cmd(argv[1]);
	if (!cmd)
		return cli_usage_err(c, "%s", unknown_cmd(argv[1]));
	cli_print_cmd_help(stdout, cmd);
	return fflush(stdout) == 0 ? CLI_OK : CLI_IO;
}

/* Parse the options before the command name; *cmd_index gets the index
 * of the command (argc if there is none). */
static int parse_top(struct cli *c, int argc, char **argv, int *cmd_index)
{
	static const struct option own[] = {{"version", no_argument, NULL, 'V'},
					    {0}};
	struct option longopts[CLI_MAX_LONGOPTS];
	int id;

	cli_merge_longopts(longopts, own);

	opterr = 0;
	/* '+': stop at the command name; its options are its own. */
	while ((id = getopt_long(argc, argv, "+:" CLI_GLOBAL_SHORT, longopts,
				 NULL)) != -1) {
		int r;

		switch (id) {
		case '?':
			return cli_usage_err(c, "unknown option '%s'",
					     out_q(bad_option(argv, optopt)));
		case ':':
			return cli_usage_err(c, "option '%s' needs an argument",
					     out_q(bad_option(argv, optopt)));
		case 'h':
			print_main_help(stdout);
			return fflush(stdout) == 0 ? CLI_OK : CLI_IO;
		case 'V':
			printf("larder %s (library %s, entry format %d)\n",
			       LARDER_VERSION_STRING, larder_version(),
			       LARDER_FORMAT_VERSION);
			return fflush(stdout) == 0 ? CLI_OK : CLI_IO;
		default:
			r = cli_global_opt(c, id, optarg);
			if (r != CLI_CONTINUE)
				return r;
		}
	}
	*cmd_index = optind;
	return CLI_CONTINUE;
}

/*
 * Standard descriptors the caller closed (`<&-`, `>&-`) are held by
 * /dev/null opened the wrong way round — reads of 0 and writes to 1 and
 * 2 still fail with EBADF, as on a closed descriptor — so that no file
 * the tool or the library opens lands on them: a store directory taken
 * for stdin ("put: Is a directory"), a payload written into a store
 * file taken for stdout.
 */
static void hold_std_fds(struct cli *c)
{
	for (int fd = 0; fd <= 2; fd++) {
		int held;

		if (fcntl(fd, F_GETFD) >= 0 || errno != EBADF)
			continue;
		if (fd == STDIN_FILENO)
			c->stdin_closed = 1;
		/* open() takes the lowest free number: this one. */
		held = open("/dev/null", fd == 0 ? O_WRONLY : O_RDONLY);
		if (held >= 0 && held != fd)
			close(held);
	}
}

int main(int argc, char **argv)
{
	struct cli c = {.ns = "default"};
	const struct cli_cmd *cmd;
	int index = argc;
	int rc;

	/* Writes to a closed pipe must come back as EPIPE so that `get`
	 * can stop cleanly instead of dying mid-write. */
	signal(SIGPIPE, SIG_IGN);
	hold_std_fds(&c);

	rc = parse_top(&c, argc, argv, &index);
	if (rc != CLI_CONTINUE)
		goto out;
	if (index >= argc) {
		print_main_help(stderr);
		rc = CLI_USAGE;
		goto out;
	}
	c.cmd = argv[index];
	if (strcmp(c.cmd, "help") == 0) {
		rc = run_help(&c, argc - index, argv + index);
		goto out;
	}
	cmd = find_cmd(c.cmd);
	if (!cmd) {
		c.cmd = NULL;
		rc = cli_usage_err(&c, "%s", unknown_cmd(argv[index]));
		goto out;
	}
	rc = cmd->run(&c, argc - index, argv + index);
out:
	free(c.dir_buf);
	return rc;
}
