/*
 * redis_run.h — a private Redis for a C test (tests/redis/redis.sh start
 * [--replica] [--sentinel]) and the guardian process that stops it by pid
 * when the pipe from its starter closes: when the starter ends, however
 * it ends (a crash, a failed assert, a kill by the harness).
 */
#ifndef LARDER_TEST_REDIS_RUN_H
#define LARDER_TEST_REDIS_RUN_H

#include <stddef.h>
#include <sys/types.h>

struct redis_run {
	char dir[64]; /* mktemp -d; the base is dir/redis */
	char env[4096];
	pid_t guardian;
	int fd;
};

/* redis.sh (at sh, the script's path) start ARGS: its exit status (77:
 * Redis cannot run here, the reason in r->env; other non-zero: a failure,
 * already printed). On 0, r->env holds the lines redis.sh printed. */
int redis_run_start(struct redis_run *r, const char *sh, const char *args);

/* Stops the servers of r (through the guardian) and waits for it; again
 * does nothing. */
void redis_run_stop(struct redis_run *r);

/* The value of line NAME (e.g. "REDIS_URI=") in text, or "". */
void redis_env_val(const char *text, const char *name, char *out, size_t n);

/* What a test needs of a run, read from r->env: "" or 0 for what
 * redis.sh did not print. */
struct redis_where {
	char uri[512];		/* REDIS_URI */
	char sentinel_uri[512]; /* REDIS_SENTINEL_URI (--sentinel) */
	char password[128];	/* REDIS_PASSWORD */
	int port;		/* REDIS_PORT: the master's */
	int replica_port;	/* REDIS_REPLICA_PORT (--replica) */
};
void redis_run_where(const struct redis_run *r, struct redis_where *w);

/* redis_run_start() in a test: skipped where Redis cannot run here
 * (naming args and the reason), failed on any other error; then *w. */
void redis_run_need(struct redis_run *r, const char *sh, const char *args,
		    struct redis_where *w);

/* The pid in r's ROLE/redis.pid ("master", "replica"), or -1. */
pid_t redis_run_pid(const struct redis_run *r, const char *role);

#endif
