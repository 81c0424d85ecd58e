/*
 * redis_conn.h — connections to a Redis server for the Redis backend
 * (be_redis.c, docs/backends.md section 3): the URI, connecting with a
 * timeout, AUTH and SELECT, commands bounded by one deadline each,
 * pipelining, Lua scripts by EVALSHA with EVAL as the fallback, and one
 * reconnect when a connection turns out broken.
 *
 * hiredis (0.14, Debian's libhiredis0.14) is loaded with dlopen on the
 * first connect (src/base/dl.c), as the SQL sources load their client
 * libraries: liblarder does not depend on it, and a process that never
 * reaches Redis never loads it.
 *
 * Messages name the server (the URI with its password masked) and the
 * command; a password never appears in one.
 */
#ifndef LARDER_REDIS_CONN_H
#define LARDER_REDIS_CONN_H

#include <hiredis/hiredis.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "larder.h"

/* The sentinels a redis+sentinel:// URI may list. */
#define LDR_REDIS_MAX_SENTINELS 8

/* What a URI says, and the backend's settings its query may carry
 * (?timeout_ms=, &max_entry=, &prefix=, &db=,
 * &wait_replicas=, &wait_ms=). */
struct ldr_redis_cfg {
	char host[256];
	int port;
	char path[256]; /* unix:// socket; "" for TCP */
	int dbnum;
	char user[128];
	char password[256];
	/* redis+sentinel: the sentinels and the master's name */
	int nsent;
	char shost[LDR_REDIS_MAX_SENTINELS][256];
	int sport[LDR_REDIS_MAX_SENTINELS];
	char master[128];
	/* settings */
	uint64_t timeout_ms; /* every call's bound; default 2000 */
	uint64_t max_entry;  /* the largest entry file; default 512 MiB */
	char prefix[64];     /* of every key; default "larder:" */
	/* Durability: after each commit, WAIT for this many replicas for
	 * at most wait_ms (0: no WAIT). */
	uint64_t wait_replicas, wait_ms;
	/* the URI with the password masked, for messages */
	char shown[600];
};

#define LDR_REDIS_TIMEOUT_MS 2000
#define LDR_REDIS_MAX_ENTRY (512ull << 20)

/* Parse uri into cfg: redis://[user:password@]host[:port][/db],
 * unix:///path[?db=N], redis+sentinel://[user:pw@]h1:p1,h2:p2/name[/db];
 * the password from LARDER_REDIS_PASSWORD when the URI has none. 0 or
 * LARDER_EINVAL, recorded on db. */
int ldr_redis_parse(larder *db, const char *uri, struct ldr_redis_cfg *cfg);

/* One connection. Not shared between threads while in use. */
struct ldr_rconn {
	larder *db;
	const struct ldr_redis_cfg *cfg;
	redisContext *c;
	char addr[300]; /* host:port or path it is connected to */
	/* The deadline of the current call (CLOCK_MONOTONIC ms); 0: none
	 * taken yet (ldr_rconn_begin). */
	int64_t deadline;
	int pending;	/* pipelined commands whose replies are unread */
	int64_t tmo_ms; /* the socket's timeouts as last set; 0: unknown */
	pid_t pid;	/* the process that connected */
	uint64_t epoch; /* its ldr_self_epoch number */
	/* ldr_rconn_reply_into: the caller's buffer that the next reply's
	 * bulk string goes into, its length, and whether it went there.
	 * The reader's functions are a copy of hiredis' own with
	 * createString replaced (string_fn is the original); its privdata
	 * is this connection, so the struct must not move while connected. */
	uint8_t *sink;
	size_t sink_want;
	int sink_got;
	redisReplyObjectFunctions fns;
	void *(*string_fn)(const redisReadTask *, char *, size_t);
};

/* The read buffer a connection keeps between replies: hiredis frees it
 * after each reply larger than 16 KiB by default, and a chunk's next
 * read then faults in fresh pages (a 1 MiB read paid more for that than
 * for the copy). A buffer that grew past this (a whole 4 MiB chunk, with
 * hiredis' growth by 1 MiB steps) is still freed: an idle connection
 * holds 4 MiB at most. */
#define LDR_REDIS_KEEP_BUF ((4u << 20) + (64u << 10))

/* A connection, not yet connected (the first command connects). */
void ldr_rconn_init(struct ldr_rconn *rc, larder *db,
		    const struct ldr_redis_cfg *cfg);
void ldr_rconn_close(struct ldr_rconn *rc);

/* Start a call: its deadline is now + cfg->timeout_ms, shared by every
 * command until the next begin. */
void ldr_rconn_begin(struct ldr_rconn *rc);

/* Run one command (argv with lengths; lens NULL: strlen) and return its
 * reply in *out (freeReplyObject by ldr_rreply_free), or a LARDER_E*
 * code, recorded, naming `what` and the server: LARDER_ETIMEOUT when the
 * deadline passed, LARDER_EIO for a broken connection (after one
 * reconnect, where the deadline allows) or an error reply (its text in
 * the message; *out NULL). */
int ldr_rconn_cmd(struct ldr_rconn *rc, redisReply **out, const char *what,
		  int argc, const char **argv, const size_t *lens);

/* Pipelining: queue commands, then read their replies in order. A
 * failure while reading drops the connection (replies would be out of
 * step), and the caller sees the error. */
int ldr_rconn_append(struct ldr_rconn *rc, const char *what, int argc,
		     const char **argv, const size_t *lens);
int ldr_rconn_reply(struct ldr_rconn *rc, redisReply **out, const char *what);

/* ldr_rconn_append for large arguments: the command is written to the
 * socket at once with writev from the caller's buffers (what was
 * appended before it first), where hiredis would format it into a
 * fresh buffer and copy that into its output buffer, two copies of a
 * chunk and two allocations whose pages fault in. Its reply is read by
 * ldr_rconn_reply as any other's. At most LDR_RCONN_IOV_ARGS
 * arguments. */
#define LDR_RCONN_IOV_ARGS 16
int ldr_rconn_append_iov(struct ldr_rconn *rc, const char *what, int argc,
			 const char **argv, const size_t *lens);

/* ldr_rconn_reply for a bulk string of exactly `want` bytes, written by
 * hiredis' reader straight into dst instead of a reply of its own (one
 * copy and one allocation fewer for a chunk). 1: the bytes are at dst;
 * 0: the reply was something else (nil, another length: a lost chunk),
 * dst untouched; or a code as ldr_rconn_reply's. */
int ldr_rconn_reply_into(struct ldr_rconn *rc, uint8_t *dst, size_t want,
			 const char *what);

/* A Lua script, run by EVALSHA with EVAL when the server lacks it
 * (NOSCRIPT: a restart, a failover, SCRIPT FLUSH). The sha is computed
 * once per process with SCRIPT LOAD. */
struct ldr_rscript {
	const char *name; /* for messages */
	const char *src;
	char sha[41];
	int loaded;
};
int ldr_rconn_eval(struct ldr_rconn *rc, struct ldr_rscript *s,
		   redisReply **out, int nkeys, int argc, const char **argv,
		   const size_t *lens);

/* A script pipelined behind earlier commands: appended by EVALSHA when
 * this process knows its sha (1), or not (0: run ldr_rconn_eval once
 * the earlier replies are read), or a code. Its reply, in its turn, by
 * ldr_rconn_eval_reply with the same arguments, which runs it again by
 * EVAL if the server answered NOSCRIPT. */
int ldr_rconn_append_evalsha(struct ldr_rconn *rc, struct ldr_rscript *s,
			     int nkeys, int argc, const char **argv,
			     const size_t *lens);
int ldr_rconn_eval_reply(struct ldr_rconn *rc, struct ldr_rscript *s,
			 redisReply **out, int nkeys, int argc,
			 const char **argv, const size_t *lens);

void ldr_rreply_free(redisReply *r);

/* The connection's socket, for a subscriber's poll; -1 if not connected. */
int ldr_rconn_fd(const struct ldr_rconn *rc);

/* The deadline's remaining ms (0 if passed). */
int64_t ldr_rconn_left(const struct ldr_rconn *rc);

/* Set the socket timeout to ms (a subscriber waiting in steps). */
int ldr_rconn_set_timeout(struct ldr_rconn *rc, int64_t ms);

/* Connect now if not connected (within the call's deadline). */
int ldr_rconn_ensure(struct ldr_rconn *rc, const char *what);

#endif
