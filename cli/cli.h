/*
 * cli.h — what the parts of the `larder` command-line tool share: the
 * parsed global options, exit codes, option parsing, opening the store,
 * error reporting and safe output of arbitrary bytes.
 *
 * The tool uses the public API (larder.h) only; nothing here reaches into
 * the library's internals.
 */
#ifndef LARDER_CLI_H
#define LARDER_CLI_H

#include <getopt.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "larder.h"

/* Exit codes: part of the tool's interface (docs/cli.md, `larder --help`). */
enum cli_exit {
	CLI_OK = 0,
	CLI_MISS = 1,	 /* not found / miss */
	CLI_USAGE = 2,	 /* bad command line */
	CLI_STORE = 3,	 /* no store, not a store, newer format, permissions */
	CLI_IO = 4,	 /* read/write failure, disk full */
	CLI_PROBLEMS = 5 /* verify found problems that remain */
};

/* Returned by cli_parse() when the command should go on running. */
#define CLI_CONTINUE (-1)

struct cli {
	const char *cmd;  /* command name, for messages */
	const char *dir;  /* --dir, or NULL until cli_open() resolves it */
	char *dir_buf;	  /* owns a default dir built from the environment */
	const char *ns;	  /* --ns, "default" unless given */
	int ns_given;	  /* --ns was on the command line */
	int verbose;	  /* -v */
	int allow_unsafe; /* --allow-unsafe-mode */
	int log_level;	  /* --log-level (enum larder_log_level), 0 = unset */
	int log_json;	  /* --log-json: log lines are JSON objects */
	int logged;	  /* a warning or error was shown */
	int stdin_closed; /* the caller closed fd 0 (main holds it) */
};

struct cli_cmd {
	const char *name;
	int (*run)(struct cli *c, int argc, char **argv);
	const char *summary; /* one line for `larder --help` */
	const char *usage;   /* arguments after the command name */
	const char *help;    /* description and options, ends with '\n' */
};

extern const struct cli_cmd cli_cmd_init, cli_cmd_put, cli_cmd_get, cli_cmd_rm,
    cli_cmd_ls, cli_cmd_inspect, cli_cmd_verify, cli_cmd_run, cli_cmd_sql,
    cli_cmd_stat, cli_cmd_gc, cli_cmd_config;
/* Only in a build with LARDER_WITH_FUSE (cli/mount/). */
extern const struct cli_cmd cli_cmd_mount, cli_cmd_umount;

/* "larder: <command>: <message>" on stderr. */
void cli_err(const struct cli *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* "larder: <command>: <prefix><msg>" on stderr for a message from the
 * library (larder_errmsg): msg is escaped whole (out_text), never cut;
 * prefix is the tool's own text. */
void cli_err_lib(const struct cli *c, const char *prefix, const char *msg);
/* A usage error: the message, then a pointer to the command's help.
 * Returns CLI_USAGE. */
int cli_usage_err(const struct cli *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Check the number of positional arguments (argv[first..argc)): at least
 * `min` (else "missing WHAT"), at most `max`. Returns CLI_CONTINUE or
 * CLI_USAGE (reported). */
int cli_positionals(struct cli *c, int argc, char **argv, int first, int min,
		    int max, const char *what);

/* ---- durations (duration.c) ---- */

/* An option that takes a duration: a plain decimal number of seconds
 * (digits, optionally '.' and digits, unless `whole`), optionally followed
 * by s, m, h or d; hex, exponents, signs, inf and nan are refused. */
struct cli_duration {
	const char *opt; /* "--ttl", for the message */
	double min, max; /* the range in seconds, both ends included */
	int whole;	 /* whole numbers only */
	int never; /* "never" is accepted: LARDER_TTL_NEVER, or 0 if zero */
	int zero;  /* 0 is accepted too (below min): "none" */
	const char *none; /* what "never" or 0 mean, for the message, or NULL */
};

/* --ttl of put, run and sql; a namespace's default --ttl (config: 0 or
 * never for none); --lease and --max-wait of run and sql; config's
 * --touch-interval. */
extern const struct cli_duration cli_dur_ttl, cli_dur_ns_ttl, cli_dur_lease,
    cli_dur_max_wait, cli_dur_touch;

/* The shortest --max-wait: the library times waits in milliseconds. */
#define CLI_MIN_WAIT_SECONDS 0.001

/* Parse s as the duration d: 0 and *out in seconds, or -1. */
int cli_parse_duration(const struct cli_duration *d, const char *s,
		       double *out);
/* The option d's argument into *out, or a usage error naming the option,
 * the value and the range: CLI_CONTINUE or CLI_USAGE. */
int cli_duration_opt(struct cli *c, const struct cli_duration *d,
		     const char *arg, double *out);
/* The same for a whole-number duration (d->whole), into an int64. */
int cli_duration_int(struct cli *c, const struct cli_duration *d,
		     const char *arg, int64_t *out);

/* A size in bytes: digits with an optional K, M, G or T suffix (powers
 * of 1024; "KiB", "KB" accepted). 0 on success, -1 if malformed. */
int cli_parse_size(const char *s, int64_t *out);

/* ---- fill options (fill.c), shared by run and sql ---- */

/* Option ids: above any command's own. */
enum {
	CLI_OPT_TTL = 1024,
	CLI_OPT_LEASE,
	CLI_OPT_MAX_WAIT,
	CLI_OPT_ALLOW_STALE
};
/* Their long options, for a command's table. */
#define CLI_FILL_LONGOPTS                                                      \
	{"ttl", required_argument, NULL, CLI_OPT_TTL},                         \
	    {"lease", required_argument, NULL, CLI_OPT_LEASE},                 \
	    {"max-wait", required_argument, NULL, CLI_OPT_MAX_WAIT},           \
	{                                                                      \
		"allow-stale", no_argument, NULL, CLI_OPT_ALLOW_STALE          \
	}

struct cli_fill_args {
	int64_t ttl;	 /* --ttl, 0 = the namespace's */
	double lease;	 /* --lease, 0 = the library's default */
	double max_wait; /* --max-wait, 0 = the library's default */
	int allow_stale; /* --allow-stale */
};
/* Handle a fill option (CLI_OPT_*); any other id is a usage error.
 * CLI_CONTINUE or the usage error's exit code. */
int cli_fill_opt(struct cli *c, struct cli_fill_args *f, int id,
		 const char *arg);
/* Set the TTL in po, and po and the rest in fo. */
void cli_fill_apply(const struct cli_fill_args *f, larder_put_opts *po,
		    larder_fill_opts *fo);

/* ---- limits (limits.c), shared by init and config ---- */

enum { CLI_OPT_MAX_BYTES = 512, CLI_OPT_MAX_ENTRIES };

/* Limits given on the command line, and which of them were. */
struct cli_limits {
	larder_limits lim;
	int set_bytes, set_entries, set_wm, set_touch;
};
/* Handle --max-bytes / --max-entries (id CLI_OPT_MAX_*). */
int cli_limit_opt(struct cli *c, struct cli_limits *l, int id, const char *arg);
/* Change the limits given in l, keep the others (ns NULL = the store's).
 * CLI_OK or the exit code after reporting. */
int cli_limits_apply(struct cli *c, larder *db, const char *ns,
		     const struct cli_limits *l);

/* --shared WHERE of init and config (limits.c): a directory is made a
 * store if it is none yet (with db's mode), then the store's setting is
 * changed ("" removes it). CLI_OK or the exit code after reporting. */
#define CLI_OPT_SHARED (CLI_OPT_MAX_ENTRIES + 64)
int cli_shared_apply(struct cli *c, larder *db, const char *where);

/* ---- usage against caps (usage.c), shared by stat and gc ---- */

/* The store-wide usage: the sum over every namespace of s (the internal
 * ones too: the store's cap counts them, as the cleaner does). */
void cli_usage_total(const larder_stats *s, int64_t *bytes, int64_t *entries);
/* Whether `used` is past `cap` (0 = no cap), as the cleaner judges it. */
int cli_over_cap(int64_t used, int64_t cap);

/* ---- tiers (tiers.c): --tier of ls, inspect and verify ---- */

/* The tiers a command looks at: the store's own directory (near), its
 * shared tier, or both. */
enum { CLI_TIER_NEAR = 1, CLI_TIER_SHARED = 2, CLI_TIER_ALL = 3 };
/* --tier near|shared|all into *out: CLI_CONTINUE or a usage error. */
int cli_tier_opt(struct cli *c, const char *arg, unsigned *out);
/* *tiers, if no --tier was given (0): `dflt` on a store with a shared
 * tier, near on one without. A shared tier asked of a store without one
 * is reported: CLI_CONTINUE or CLI_USAGE. */
int cli_tier_resolve(struct cli *c, larder *db, unsigned *tiers, unsigned dflt);

/* Print the help of `cmd` to f. */
void cli_print_cmd_help(FILE *f, const struct cli_cmd *cmd);

/*
 * Parse the options of a command. argv[0] is the command name. `opts` and
 * `longopts` (terminated by a zero entry, may be NULL) are the command's
 * own; the global options (--dir, --ns, -v, --help) are accepted too.
 * For each of its own options, `on_opt(c, id, optarg, ctx)` is called and
 * returns CLI_CONTINUE or an exit code. On return *first is the index of
 * the first positional argument (they are moved, in order, to the end of
 * argv). Options may come before or after positional arguments, even
 * with POSIXLY_CORRECT set; "--" ends the options.
 * Returns CLI_CONTINUE, or an exit code: CLI_OK after --help was printed,
 * CLI_USAGE after an error was reported.
 */
int cli_parse(struct cli *c, const struct cli_cmd *cmd, int argc, char **argv,
	      const char *opts, const struct option *longopts,
	      int (*on_opt)(struct cli *c, int id, const char *arg, void *ctx),
	      void *ctx, int *first);

/* The global options' short letters, for getopt (--dir, --ns, -v,
 * --help); their long forms are in the table cli_merge_longopts() adds. */
#define CLI_GLOBAL_SHORT "d:n:vh"
/* The most long options of a command, the global ones and the zero entry
 * included. */
#define CLI_MAX_LONGOPTS 32
/* `own` (a zero-terminated table, may be NULL) followed by the global long
 * options and a zero entry, in `all` (CLI_MAX_LONGOPTS entries). */
void cli_merge_longopts(struct option *all, const struct option *own);

/* Handle a global option (shared by the top level and every command).
 * Returns CLI_CONTINUE if it was one, CLI_USAGE (reported) if not. */
int cli_global_opt(struct cli *c, int id, const char *arg);

/* Set c->dir: --dir, else $LARDER_DIR, else the default under
 * $XDG_CACHE_HOME or $HOME (then c->dir_buf holds it). CLI_OK, or the
 * exit code after reporting. */
int cli_resolve_dir(struct cli *c);

/* Open the store at c->dir (resolving the default first), with the
 * library's log going to stderr at the level of --log-level (else
 * $LARDER_LOG_LEVEL, else warn); any log callback in opts is replaced.
 * On failure the message is printed and the exit code returned; CLI_OK
 * on success. */
int cli_open(struct cli *c, larder **out, const larder_opts *opts);

/* The exit code for a failed library call on an open store. */
int cli_exit_code(int rc);
/* The exit code for a failed larder_open(). */
int cli_open_exit_code(int rc);

/* Report a failed library call (message from the handle) and return its
 * exit code. */
int cli_fail(const struct cli *c, larder *db, int rc);

/* Log a message as the library's log callback does: "larder: LEVEL: msg"
 * on stderr, or one JSON object per line with --log-json. Messages above
 * the level are dropped; c->logged is set when a warning or an error is
 * shown (so that a command does not say the same thing again). */
void cli_log(struct cli *c, int level, const char *msg);

/* ---- interruption (interrupt.c) ---- */

/* The signal (SIGINT, SIGTERM, SIGHUP) that asked us to stop while the
 * store was being written, 0 if none. Set by the handler only; also the
 * fill's larder_fill_opts.cancel. */
extern volatile sig_atomic_t cli_stop_sig;

/* From here on, SIGINT, SIGTERM and SIGHUP (those not ignored on entry)
 * only set cli_stop_sig, without SA_RESTART: blocking calls return, and
 * the command aborts what it was writing. */
void cli_stop_begin(void);
/* Restore the signals' dispositions; if one came meanwhile, die of it
 * (never returns then). Call it after the writer or fill is aborted and
 * the store closed. Does nothing more a second time. */
void cli_stop_end(void);
/* The command `larder run` runs (0: none): SIGTERM and SIGHUP are passed
 * on to it, also one that came before it started. */
void cli_stop_child(pid_t pid);
/* read() that a stop signal interrupts without a race (it waits in
 * ppoll with the signals let through): bytes read, 0 at the end, -errno,
 * or -EINTR once cli_stop_sig is set. */
ssize_t cli_read(int fd, void *buf, size_t len);

/* ---- progress (progress.c) ---- */

/* A progress line on stderr for work longer than about a second: what is
 * being done, bytes (and rows) so far, the rate and the time taken, or
 * "waiting for another filler (host H, pid P): 3.2 s". Redrawn with '\r'
 * at most 4 times a second, also when nothing moves (a thread of its own
 * keeps the time going), and cleared at the end. Silent unless stderr is
 * a terminal; the byte count also when the payload itself goes to a
 * terminal on stdout (the waiting line still shows). One at a time. */
struct cli_progress {
	int on;		  /* stderr is a terminal: draw */
	int bytes_on;	  /* ... the bytes too */
	const char *what; /* "reading", "storing", ... */
	double t0;	  /* start of the work (monotonic s) */
	double phase_t0;  /* start of this phase, for the rate */
	double last;	  /* last redraw */
	uint64_t bytes;	  /* bytes in this phase */
	uint64_t rows;	  /* rows, if has_rows */
	int has_rows;
	size_t drawn; /* length of the line on screen, 0 if none */
	/* waiting for another filler (progress_on_wait) */
	int waiting;
	double waited, waited_at; /* seconds waited, as of waited_at */
	char holder_host[64];
	long holder_pid;
	int holder_alive;
};

/* The monotonic clock in seconds, for the progress line and -v timings. */
double progress_now(void);

/* Start; `stdout_payload`: the payload goes to stdout (no byte count if
 * stdout is a terminal too: the output shows the progress itself). */
void progress_start(struct cli_progress *p, const char *what,
		    int stdout_payload);
/* A new phase of the same work (the byte count starts again). */
void progress_phase(struct cli_progress *p, const char *what);
/* n more bytes done; redraws when it is time. */
void progress_add(struct cli_progress *p, size_t n);
/* Rows and bytes done so far (larder_sql's on_progress). */
void progress_set(struct cli_progress *p, uint64_t rows, uint64_t bytes);
/* A larder_wait_fn (payload: the struct cli_progress): the waiting line
 * while waiting, cleared when the wait ends. */
void progress_on_wait(const larder_wait_info *info, void *payload);
/* Clear the line; the progress is over. */
void progress_end(struct cli_progress *p);
/* Clear the line of the progress under way, if any, before another
 * message goes to stderr, and draw nothing until progress_resume() (the
 * line comes back at the next redraw). Nothing else of progress may be
 * called in between. */
void progress_pause(void);
void progress_resume(void);

/* ---- output (out.c) ---- */

/* Write all of buf to fd, through short writes, EINTR and EAGAIN.
 * Returns 0 or an errno value. */
int out_write_all(int fd, const void *buf, size_t len);

/*
 * The escaping of every user- or store-supplied string the tool prints
 * (docs/cli.md#escaping): printable ASCII and valid UTF-8 as they are;
 * backslash as "\\"; tab, newline and CR as "\t" "\n" "\r"; any other
 * control byte, DEL and any byte that is not part of valid UTF-8 as
 * "\xHH"; C1 controls, bidirectional controls and other invisible
 * formatting characters as "\uHHHH" (or "\UHHHHHHHH"). Reversible, so
 * different bytes never print the same, and nothing reaches a terminal
 * as a control sequence.
 */
void out_text(FILE *f, const void *p, size_t len);

/* The same, leaving backslashes alone: for a whole message whose parts
 * were escaped with out_text() or out_q() already (it changes none of
 * them), so that a string that was not cannot reach the terminal raw. */
void out_safe(FILE *f, const void *p, size_t len);

/* Bytes escaped as by out_text() into buf, cut with "..." to fit. */
void out_text_buf(char *buf, size_t size, const void *p, size_t len);

/* A string escaped as by out_text() and cut to about 200 bytes, for
 * messages; a static buffer, one of 4 reused in turn. */
const char *out_q(const char *s);

/* Non-zero if p is valid UTF-8 (so a JSON string carries it exactly). */
int out_is_utf8(const void *p, size_t len);
/* Print bytes as a quoted JSON string. Bytes that are not valid UTF-8
 * become U+FFFD; callers that need the exact bytes add a hex field. */
void out_json_str(FILE *f, const void *p, size_t len);
/* Print `"name":"..."` for bytes, plus `,"name_hex":"..."` when they are
 * not valid UTF-8; `"name":null` when p is NULL. */
void out_json_bytes_field(FILE *f, const char *name, const void *p, size_t len);

/* Format a time in ns since the epoch as ISO-8601 UTC to the second
 * ("2026-01-31T12:00:00Z"). buf must hold 32 bytes. */
void out_iso_time(char *buf, size_t size, int64_t ns);

/* Flush f and report a write failure on it (EPIPE is quiet: the reader
 * went away on purpose). Returns CLI_OK, or CLI_IO after reporting. */
int out_finish(const struct cli *c, FILE *f);

/* Print an entry's description as a JSON object; `sep` goes between the
 * members (",\n  " for a pretty object, "," for a compact one). Shared
 * by ls and inspect. */
void print_info_json(FILE *f, const larder_entry_info *info, const char *sep,
		     const char *open, const char *close);

/* Name of an entry state: "ok", "expired", "corrupt", ... */
const char *out_state_name(int state);

#endif
