/*
 * redis_conn.c — connections to Redis for the Redis backend (see
 * redis_conn.h): the URI, hiredis loaded on first use, connect + AUTH +
 * SELECT (or a master found through Sentinel), and commands bounded by
 * the call's deadline.
 *
 * Timeouts: hiredis 0.14 bounds a blocking connection with SO_RCVTIMEO
 * and SO_SNDTIMEO (redisSetTimeout). Each call of the backend takes one
 * deadline (ldr_rconn_begin) and every step of it — connect, AUTH,
 * SELECT, each command, the reconnect — gets the time that is left, so
 * a stopped server costs a call at most its timeout, not a multiple of
 * it. A connection that timed out is dropped: a reply may still come,
 * and the next command would read it as its own.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <unistd.h>

#include "clock.h"
#include "dl.h"
#include "err.h"
#include "redis_conn.h"
#include "self.h"
#include "tier.h"
#include "uri.h"

/* ---------------------------------------------------------------------- */
/* Loading hiredis                                                          */

#define LIBHIREDIS_SONAME "libhiredis.so.0.14"
#define LIBHIREDIS_HINT "apt-get install libhiredis0.14"

#define RD_FUNCS(X)                                                            \
	X(redisConnectWithTimeout)                                             \
	X(redisConnectUnixWithTimeout)                                         \
	X(redisSetTimeout)                                                     \
	X(redisCommandArgv)                                                    \
	X(redisAppendFormattedCommand)                                         \
	X(redisGetReply)                                                       \
	X(redisBufferWrite)                                                    \
	X(redisReaderGetReply)                                                 \
	X(freeReplyObject)                                                     \
	X(redisFree)

struct rd_api {
#define RD_MEMBER(f) __typeof__(f) *f;
	RD_FUNCS(RD_MEMBER)
#undef RD_MEMBER
};

/* Filled once (pthread_once orders it before every use); never closed. */
static struct rd_api rd;
static pthread_once_t rd_once = PTHREAD_ONCE_INIT;
static char rd_error[400];

static void rd_load_once(void)
{
	void *h = ldr_dl_open(LIBHIREDIS_SONAME, rd_error, sizeof rd_error);
	if (!h)
		return;
	struct rd_api t;
#define RD_RESOLVE(f)                                                          \
	if (ldr_dl_fn(h, LIBHIREDIS_SONAME, #f, &t.f, rd_error,                \
		      sizeof rd_error))                                        \
		return;
	RD_FUNCS(RD_RESOLVE)
#undef RD_RESOLVE
	rd = t;
}

static int rd_load(larder *db)
{
	if (pthread_once(&rd_once, rd_load_once) == 0 && rd.redisFree)
		return 0;
	return ldr_fail(db, LARDER_EIO, 0,
			"Redis support needs " LIBHIREDIS_SONAME
			" (" LIBHIREDIS_HINT "): %s",
			rd_error[0] ? rd_error : "pthread_once failed");
}

void ldr_rreply_free(redisReply *r)
{
	if (r)
		rd.freeReplyObject(r);
}

/* ---------------------------------------------------------------------- */
/* The URI                                                                  */

static int bad_uri(larder *db, const char *shown, const char *why)
{
	return ldr_fail(db, LARDER_EINVAL, 0, "bad Redis URI '%s': %s", shown,
			why);
}

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Copy [p, p+n) percent-decoded into out (size). -1 if it does not fit
 * or has a bad escape. */
static int decode(char *out, size_t size, const char *p, size_t n)
{
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		int c = (unsigned char)p[i];
		if (c == '%') {
			int h, l;
			if (i + 2 >= n)
				return -1;
			if ((h = hexval(p[i + 1])) < 0 ||
			    (l = hexval(p[i + 2])) < 0)
				return -1;
			c = h * 16 + l;
			i += 2;
		}
		if (o + 1 >= size)
			return -1;
		out[o++] = (char)c;
	}
	out[o] = '\0';
	return 0;
}

/* "host:port" at [p, p+n) into host and *port (default 6379, or 26379
 * for a sentinel). */
static int host_port(const char *p, size_t n, char *host, size_t hsize,
		     int *port, int defport)
{
	const char *colon = memchr(p, ':', n);
	size_t hl = colon ? (size_t)(colon - p) : n;
	if (hl == 0 || hl >= hsize)
		return -1;
	memcpy(host, p, hl);
	host[hl] = '\0';
	*port = defport;
	if (colon) {
		char num[8];
		size_t pl = n - hl - 1;
		if (pl == 0 || pl >= sizeof num)
			return -1;
		memcpy(num, colon + 1, pl);
		num[pl] = '\0';
		char *end;
		long v = strtol(num, &end, 10);
		if (*end || v < 1 || v > 65535)
			return -1;
		*port = (int)v;
	}
	return 0;
}

static int parse_u64(const char *s, uint64_t *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || end == s || *end || s[0] == '-')
		return -1;
	*out = v;
	return 0;
}

/* The query: timeout_ms, max_entry, prefix, db. */
static int parse_query(larder *db, const char *q, struct ldr_redis_cfg *cfg)
{
	char buf[512];
	if (strlen(q) >= sizeof buf)
		return bad_uri(db, cfg->shown, "query too long");
	snprintf(buf, sizeof buf, "%s", q);
	char *save = NULL;
	for (char *kv = strtok_r(buf, "&", &save); kv;
	     kv = strtok_r(NULL, "&", &save)) {
		char *eq = strchr(kv, '=');
		char why[160];
		if (!eq) {
			snprintf(why, sizeof why,
				 "query item '%.64s' without '='", kv);
			return bad_uri(db, cfg->shown, why);
		}
		*eq = '\0';
		const char *v = eq + 1;
		uint64_t n;
		if (strcmp(kv, "timeout_ms") == 0) {
			if (parse_u64(v, &n) || n == 0 || n > 3600000)
				return bad_uri(db, cfg->shown,
					       "timeout_ms must be 1..3600000");
			cfg->timeout_ms = n;
		} else if (strcmp(kv, "max_entry") == 0) {
			if (parse_u64(v, &n) || n == 0)
				return bad_uri(db, cfg->shown,
					       "max_entry must be a positive "
					       "number of bytes");
			cfg->max_entry = n;
		} else if (strcmp(kv, "wait_replicas") == 0) {
			if (parse_u64(v, &n) || n > 100)
				return bad_uri(db, cfg->shown,
					       "wait_replicas must be 0..100");
			cfg->wait_replicas = n;
		} else if (strcmp(kv, "wait_ms") == 0) {
			if (parse_u64(v, &n) || n > 3600000)
				return bad_uri(db, cfg->shown,
					       "wait_ms must be 0..3600000");
			cfg->wait_ms = n;
		} else if (strcmp(kv, "db") == 0) {
			if (parse_u64(v, &n) || n > 1000000)
				return bad_uri(db, cfg->shown, "bad db number");
			cfg->dbnum = (int)n;
		} else if (strcmp(kv, "prefix") == 0) {
			if (decode(cfg->prefix, sizeof cfg->prefix, v,
				   strlen(v)))
				return bad_uri(db, cfg->shown, "bad prefix");
		} else {
			snprintf(why, sizeof why,
				 "unknown query item '%.64s' (known: "
				 "timeout_ms, max_entry, wait_replicas, "
				 "wait_ms, db, prefix)",
				 kv);
			return bad_uri(db, cfg->shown, why);
		}
	}
	return 0;
}

/* The URI as messages show it: ldr_uri_masked's form, the one the
 * tier shows (the password "***", a user shown). */
static void mask(char *out, size_t size, const char *uri)
{
	char *m = ldr_uri_masked(uri);
	snprintf(out, size, "%s", m ? m : "(a Redis URI, out of memory)");
	free(m);
}

int ldr_redis_check(larder *db, const char *uri)
{
	struct ldr_redis_cfg cfg;
	return ldr_redis_parse(db, uri, &cfg);
}

int ldr_redis_parse(larder *db, const char *uri, struct ldr_redis_cfg *cfg)
{
	memset(cfg, 0, sizeof *cfg);
	cfg->timeout_ms = LDR_REDIS_TIMEOUT_MS;
	cfg->max_entry = LDR_REDIS_MAX_ENTRY;
	snprintf(cfg->prefix, sizeof cfg->prefix, "larder:");
	mask(cfg->shown, sizeof cfg->shown, uri);
	if (strlen(uri) >= 2048)
		return bad_uri(db, cfg->shown, "too long");

	int sentinel = 0;
	const char *p;
	if (strncmp(uri, "redis://", 8) == 0) {
		p = uri + 8;
	} else if (strncmp(uri, "redis+sentinel://", 17) == 0) {
		p = uri + 17;
		sentinel = 1;
	} else if (strncmp(uri, "unix://", 7) == 0) {
		p = uri + 7;
		const char *q = strchr(p, '?');
		size_t n = q ? (size_t)(q - p) : strlen(p);
		if (n == 0 || p[0] != '/' || n >= sizeof cfg->path)
			return bad_uri(db, cfg->shown,
				       "unix:// needs an absolute path");
		memcpy(cfg->path, p, n);
		cfg->path[n] = '\0';
		if (q && parse_query(db, q + 1, cfg))
			return LARDER_EINVAL;
		goto password;
	} else if (strncmp(uri, "rediss://", 9) == 0) {
		return bad_uri(db, cfg->shown,
			       "TLS (rediss://) is not supported: larder's "
			       "Redis client (hiredis 0.14) has no TLS; use "
			       "redis:// on a trusted network, or a TLS "
			       "tunnel to the server");
	} else {
		return bad_uri(db, cfg->shown,
			       "want redis://, redis+sentinel:// or unix://");
	}

	const char *q = strchr(p, '?');
	size_t rest = q ? (size_t)(q - p) : strlen(p);
	const char *slash = memchr(p, '/', rest);
	size_t auth_end = slash ? (size_t)(slash - p) : rest;
	const char *at = NULL;
	for (size_t i = 0; i < auth_end; i++)
		if (p[i] == '@')
			at = p + i;
	if (at) {
		const char *colon = memchr(p, ':', (size_t)(at - p));
		size_t ul = colon ? (size_t)(colon - p) : (size_t)(at - p);
		if (decode(cfg->user, sizeof cfg->user, p, ul))
			return bad_uri(db, cfg->shown, "bad user name");
		if (colon && decode(cfg->password, sizeof cfg->password,
				    colon + 1, (size_t)(at - colon - 1)))
			return bad_uri(db, cfg->shown, "bad password");
		p = at + 1;
	}
	/* The spans again, after the userinfo. */
	rest = q ? (size_t)(q - p) : strlen(p);
	slash = memchr(p, '/', rest);
	size_t hostlen = slash ? (size_t)(slash - p) : rest;
	const char *path = slash ? slash + 1 : NULL;
	size_t pathlen = slash ? rest - hostlen - 1 : 0;

	if (sentinel) {
		const char *h = p, *end = p + hostlen;
		while (h < end) {
			const char *comma = memchr(h, ',', (size_t)(end - h));
			size_t n =
			    comma ? (size_t)(comma - h) : (size_t)(end - h);
			if (cfg->nsent == LDR_REDIS_MAX_SENTINELS)
				return bad_uri(db, cfg->shown,
					       "too many sentinels");
			if (host_port(h, n, cfg->shost[cfg->nsent],
				      sizeof cfg->shost[0],
				      &cfg->sport[cfg->nsent], 26379))
				return bad_uri(db, cfg->shown,
					       "bad sentinel host:port");
			cfg->nsent++;
			h += n + (comma ? 1 : 0);
		}
		if (cfg->nsent == 0)
			return bad_uri(db, cfg->shown, "no sentinel");
		const char *s2 = path ? memchr(path, '/', pathlen) : NULL;
		size_t ml = s2 ? (size_t)(s2 - path) : pathlen;
		if (!path || ml == 0 || ml >= sizeof cfg->master)
			return bad_uri(db, cfg->shown,
				       "redis+sentinel:// needs /mastername");
		memcpy(cfg->master, path, ml);
		cfg->master[ml] = '\0';
		path = s2 ? s2 + 1 : NULL;
		pathlen = s2 ? pathlen - ml - 1 : 0;
	} else if (host_port(p, hostlen, cfg->host, sizeof cfg->host,
			     &cfg->port, 6379)) {
		return bad_uri(db, cfg->shown, "bad host:port");
	}
	if (path && pathlen) {
		char num[12];
		uint64_t n;
		if (pathlen >= sizeof num)
			return bad_uri(db, cfg->shown, "bad db number");
		memcpy(num, path, pathlen);
		num[pathlen] = '\0';
		if (parse_u64(num, &n) || n > 1000000)
			return bad_uri(db, cfg->shown, "bad db number");
		cfg->dbnum = (int)n;
	}
	if (q && parse_query(db, q + 1, cfg))
		return LARDER_EINVAL;
password:
	if (!cfg->password[0]) {
		const char *env = getenv("LARDER_REDIS_PASSWORD");
		if (env && strlen(env) < sizeof cfg->password)
			snprintf(cfg->password, sizeof cfg->password, "%s",
				 env);
	}
	return 0;
}

/* ---------------------------------------------------------------------- */
/* Connecting                                                               */

void ldr_rconn_init(struct ldr_rconn *rc, larder *db,
		    const struct ldr_redis_cfg *cfg)
{
	memset(rc, 0, sizeof *rc);
	rc->db = db;
	rc->cfg = cfg;
}

static void drop(struct ldr_rconn *rc)
{
	if (rc->c)
		rd.redisFree(rc->c);
	rc->c = NULL;
	rc->tmo_ms = 0;
	rc->pending = 0;
}

void ldr_rconn_close(struct ldr_rconn *rc)
{
	if (rc->c)
		drop(rc);
}

void ldr_rconn_begin(struct ldr_rconn *rc)
{
	rc->deadline = (int64_t)ldr_mono_ms() + (int64_t)rc->cfg->timeout_ms;
}

int64_t ldr_rconn_left(const struct ldr_rconn *rc)
{
	int64_t left = rc->deadline - (int64_t)ldr_mono_ms();
	return left > 0 ? left : 0;
}

static struct timeval tv_ms(int64_t ms)
{
	struct timeval tv = {.tv_sec = ms / 1000,
			     .tv_usec = (suseconds_t)(ms % 1000) * 1000};
	return tv;
}

int ldr_rconn_fd(const struct ldr_rconn *rc)
{
	return rc->c ? rc->c->fd : -1;
}

int ldr_rconn_set_timeout(struct ldr_rconn *rc, int64_t ms)
{
	if (!rc->c)
		return -1;
	if (ms <= 0)
		ms = 1; /* a zero timeval means "no timeout" to the kernel */
	/* Two setsockopt calls before every command were a tenth of a small
	 * fill's system calls. The timeouts already set are kept when they
	 * are at least what is left and at most a sixteenth of the call's
	 * timeout more: a recv never times out before the deadline, and a
	 * call is bounded by its timeout and a sixteenth. */
	int64_t slack = (int64_t)rc->cfg->timeout_ms / 16;
	if (rc->tmo_ms >= ms && rc->tmo_ms - ms <= slack)
		return 0;
	if (rd.redisSetTimeout(rc->c, tv_ms(ms)) != REDIS_OK) {
		rc->tmo_ms = 0;
		return -1;
	}
	rc->tmo_ms = ms;
	return 0;
}

/* Whether the failure of c (errno e just after it) was a timeout. */
static int timed_out(const redisContext *c, int e)
{
	return e == EAGAIN || e == EWOULDBLOCK || e == ETIMEDOUT ||
	       (c && (strstr(c->errstr, "temporarily unavailable") ||
		      strstr(c->errstr, "timed out")));
}

/* What to add to an error reply's text to say what it means for the
 * user. */
static const char *reply_hint(const redisReply *r)
{
	if (strstr(r->str, "NOREPLICAS"))
		return " (the master sees fewer replicas than its "
		       "min-replicas-to-write: nothing was written)";
	if (strncmp(r->str, "OOM", 3) == 0)
		return " (Redis is at its maxmemory: use an allkeys-* "
		       "maxmemory-policy, or more memory)";
	if (strncmp(r->str, "READONLY", 8) == 0)
		return " (a replica: point the URI at the master, or use "
		       "redis+sentinel://)";
	return "";
}

/* An error reply as a code: OOM (Redis full) and NOREPLICAS (the master
 * sees too few replicas for its min-replicas-to-write) refuse that one
 * write while the server is up, LARDER_EFULL, which a tier counts as a
 * refusal, not an outage (docs/backends.md); the rest I/O. */
static int reply_code(const redisReply *r)
{
	if (strncmp(r->str, "OOM", 3) == 0 || strstr(r->str, "NOREPLICAS"))
		return LARDER_EFULL;
	return LARDER_EIO;
}

/* The errno a refusal is recorded with (larder_errno), telling its kind
 * apart: ENOSPC Redis full, EAGAIN too few replicas; else 0. */
static int reply_errno(const redisReply *r)
{
	if (strncmp(r->str, "OOM", 3) == 0)
		return ENOSPC;
	if (strstr(r->str, "NOREPLICAS"))
		return EAGAIN;
	return 0;
}

/* One command on the raw context, no retry: the reply (an error reply
 * included) or a code, recorded. */
static int raw(struct ldr_rconn *rc, redisReply **out, const char *what,
	       int argc, const char **argv, const size_t *lens)
{
	*out = NULL;
	int64_t left = ldr_rconn_left(rc);
	if (left == 0) {
		drop(rc);
		return ldr_fail(rc->db, LARDER_ETIMEOUT, ETIMEDOUT,
				"Redis %s at %s: timed out after %llu ms", what,
				rc->cfg->shown,
				(unsigned long long)rc->cfg->timeout_ms);
	}
	ldr_rconn_set_timeout(rc, left);
	errno = 0;
	redisReply *r = rd.redisCommandArgv(rc->c, argc, argv, lens);
	int e = errno;
	if (r) {
		*out = r;
		return 0;
	}
	int to = timed_out(rc->c, e);
	char msg[128];
	snprintf(msg, sizeof msg, "%s", rc->c->errstr);
	drop(rc);
	if (to)
		return ldr_fail(rc->db, LARDER_ETIMEOUT, ETIMEDOUT,
				"Redis %s at %s: timed out after %llu ms", what,
				rc->cfg->shown,
				(unsigned long long)rc->cfg->timeout_ms);
	return ldr_fail(rc->db, LARDER_EIO, e, "Redis %s at %s: %s", what,
			rc->cfg->shown, msg[0] ? msg : "connection lost");
}

/* An error reply in *out turned into its code (its text in the message;
 * the reply freed, *out NULL); 0 for any other reply. */
static int error_reply(struct ldr_rconn *rc, redisReply **out, const char *what)
{
	if ((*out)->type != REDIS_REPLY_ERROR)
		return 0;
	int code = ldr_fail(rc->db, reply_code(*out), reply_errno(*out),
			    "Redis %s at %s: %s%s", what, rc->cfg->shown,
			    (*out)->str, reply_hint(*out));
	rd.freeReplyObject(*out);
	*out = NULL;
	return code;
}

/* raw, with an error reply turned into a code (its text in the
 * message). */
static int simple(struct ldr_rconn *rc, redisReply **out, const char *what,
		  int argc, const char **argv, const size_t *lens)
{
	int rc2 = raw(rc, out, what, argc, argv, lens);
	return rc2 ? rc2 : error_reply(rc, out, what);
}

/* The reader's createString: a top-level bulk string of the length a
 * sink waits for is written there, and the reply made empty; anything
 * else goes to hiredis' own function. */
static void *sink_string(const redisReadTask *task, char *str, size_t len)
{
	struct ldr_rconn *rc = task->privdata;
	if (rc->sink && !task->parent && task->type == REDIS_REPLY_STRING &&
	    len == rc->sink_want) {
		memcpy(rc->sink, str, len);
		rc->sink_got = 1;
		return rc->string_fn(task, str, 0);
	}
	return rc->string_fn(task, str, len);
}

/* Hook the sink into a new context's reader, and keep its buffer. */
static void sink_install(struct ldr_rconn *rc)
{
	redisReader *r = rc->c->reader;
	rc->fns = *r->fn;
	rc->string_fn = rc->fns.createString;
	rc->fns.createString = sink_string;
	r->fn = &rc->fns;
	r->privdata = rc;
	r->maxbuf = LDR_REDIS_KEEP_BUF;
	rc->sink = NULL;
}

/* Connect to host:port (or the socket path), AUTH, SELECT. */
static int connect_one(struct ldr_rconn *rc, const char *host, int port,
		       const char *path, int select)
{
	const struct ldr_redis_cfg *cfg = rc->cfg;
	int64_t left = ldr_rconn_left(rc);
	if (path[0])
		snprintf(rc->addr, sizeof rc->addr, "%s", path);
	else
		snprintf(rc->addr, sizeof rc->addr, "%s:%d", host, port);
	if (left == 0)
		return ldr_fail(rc->db, LARDER_ETIMEOUT, ETIMEDOUT,
				"Redis connect to %s (%s): timed out after "
				"%llu ms",
				rc->addr, cfg->shown,
				(unsigned long long)cfg->timeout_ms);
	errno = 0;
	redisContext *c =
	    path[0] ? rd.redisConnectUnixWithTimeout(path, tv_ms(left))
		    : rd.redisConnectWithTimeout(host, port, tv_ms(left));
	int e = errno;
	if (!c)
		return ldr_fail(rc->db, LARDER_ENOMEM, ENOMEM,
				"Redis connect to %s: out of memory", rc->addr);
	if (c->err) {
		int to = timed_out(c, e);
		int code = to ? LARDER_ETIMEOUT : LARDER_EIO;
		code = ldr_fail(rc->db, code, e ? e : ECONNREFUSED,
				"Redis connect to %s (%s): %s", rc->addr,
				cfg->shown, c->errstr);
		rd.redisFree(c);
		return code;
	}
	rc->c = c;
	rc->tmo_ms = 0; /* whatever connect left: set at the first command */
	rc->pid = getpid();
	rc->epoch = ldr_self_epoch(rc->db);
	sink_install(rc);
	redisReply *r = NULL;
	int code = 0;
	if (cfg->password[0]) {
		const char *argv[3] = {"AUTH", cfg->user, cfg->password};
		int argc = cfg->user[0] ? 3 : 2;
		if (!cfg->user[0])
			argv[1] = cfg->password;
		if ((code = raw(rc, &r, "AUTH", argc, argv, NULL)))
			goto out;
		if (r->type == REDIS_REPLY_ERROR) {
			/* The server's text names no password (WRONGPASS,
			 * "invalid username-password pair"). */
			code = ldr_fail(rc->db, LARDER_EPERM, 0,
					"Redis AUTH at %s (%s) refused: %s",
					rc->addr, cfg->shown, r->str);
			goto out;
		}
		rd.freeReplyObject(r);
		r = NULL;
	}
	if (select && cfg->dbnum) {
		char num[16];
		snprintf(num, sizeof num, "%d", cfg->dbnum);
		const char *argv[2] = {"SELECT", num};
		if ((code = simple(rc, &r, "SELECT", 2, argv, NULL)))
			goto out;
	}
out:
	ldr_rreply_free(r);
	if (code && rc->c)
		drop(rc);
	return code;
}

/* Ask the sentinels in turn where the master is, connect, and check it
 * calls itself master (a sentinel may lag behind a failover). */
static int connect_sentinel(struct ldr_rconn *rc)
{
	const struct ldr_redis_cfg *cfg = rc->cfg;
	int code = LARDER_EIO;
	for (int i = 0; i < cfg->nsent; i++) {
		redisReply *r = NULL;
		if ((code =
			 connect_one(rc, cfg->shost[i], cfg->sport[i], "", 0)))
			continue;
		const char *argv[3] = {"SENTINEL", "get-master-addr-by-name",
				       cfg->master};
		code = simple(rc, &r, "SENTINEL get-master-addr-by-name", 3,
			      argv, NULL);
		drop(rc);
		if (code)
			continue;
		if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
		    r->element[0]->type != REDIS_REPLY_STRING ||
		    r->element[1]->type != REDIS_REPLY_STRING) {
			code = ldr_fail(rc->db, LARDER_EIO, 0,
					"Redis sentinel %s:%d knows no master "
					"'%s' (%s)",
					cfg->shost[i], cfg->sport[i],
					cfg->master, cfg->shown);
			ldr_rreply_free(r);
			continue;
		}
		char host[256];
		snprintf(host, sizeof host, "%s", r->element[0]->str);
		int port = atoi(r->element[1]->str);
		ldr_rreply_free(r);
		if ((code = connect_one(rc, host, port, "", 1)))
			continue;
		const char *role[1] = {"ROLE"};
		if ((code = simple(rc, &r, "ROLE", 1, role, NULL)))
			continue;
		int master = r->type == REDIS_REPLY_ARRAY && r->elements > 0 &&
			     r->element[0]->type == REDIS_REPLY_STRING &&
			     strcmp(r->element[0]->str, "master") == 0;
		ldr_rreply_free(r);
		if (master)
			return 0;
		drop(rc);
		code = ldr_fail(rc->db, LARDER_EIO, 0,
				"Redis at %s, named master '%s' by sentinel "
				"%s:%d, is not a master (%s)",
				rc->addr, cfg->master, cfg->shost[i],
				cfg->sport[i], cfg->shown);
	}
	return code;
}

int ldr_rconn_ensure(struct ldr_rconn *rc, const char *what)
{
	(void)what;
	if (rc->c)
		return 0;
	int code = rd_load(rc->db);
	if (code)
		return code;
	if (!rc->deadline)
		ldr_rconn_begin(rc);
	if (rc->cfg->nsent)
		return connect_sentinel(rc);
	return connect_one(rc, rc->cfg->host, rc->cfg->port, rc->cfg->path, 1);
}

/* ---------------------------------------------------------------------- */
/* Commands                                                                 */

/* A reply that says the connection reached a server that cannot take the
 * write: a demoted master (READONLY) or one that lost its replicas. */
static int retry_reply(const redisReply *r)
{
	return r->type == REDIS_REPLY_ERROR &&
	       (strncmp(r->str, "READONLY", 8) == 0 ||
		strncmp(r->str, "LOADING", 7) == 0);
}

/* Run argv with one reconnect: a connection kept from an earlier call
 * may have been closed by the server (a restart, a timeout, a
 * failover), which only the next command finds out. A timeout is not
 * retried: the call's time is spent. */
static int run(struct ldr_rconn *rc, redisReply **out, const char *what,
	       int argc, const char **argv, const size_t *lens)
{
	int code = 0;
	for (int attempt = 0; attempt < 2; attempt++) {
		int fresh = rc->c == NULL;
		if ((code = ldr_rconn_ensure(rc, what)))
			return code;
		code = raw(rc, out, what, argc, argv, lens);
		if (code == 0 && retry_reply(*out) && rc->cfg->nsent &&
		    attempt == 0) {
			/* Under Sentinel: ask again where the master is. */
			ldr_rreply_free(*out);
			*out = NULL;
			drop(rc);
			continue;
		}
		if (code != LARDER_EIO || fresh)
			return code;
	}
	return code;
}

int ldr_rconn_cmd(struct ldr_rconn *rc, redisReply **out, const char *what,
		  int argc, const char **argv, const size_t *lens)
{
	if (!rc->deadline)
		ldr_rconn_begin(rc);
	int code = run(rc, out, what, argc, argv, lens);
	return code ? code : error_reply(rc, out, what);
}

/* The RESP framing of one argument's length, "$<len>\r\n" (or the
 * array's, "*<n>\r\n"), into p (24 bytes are enough): its length. */
static size_t frame(char *p, char kind, size_t n)
{
	char d[24];
	size_t k = 0;
	do
		d[k++] = (char)('0' + n % 10);
	while ((n /= 10) != 0);
	p[0] = kind;
	for (size_t i = 0; i < k; i++)
		p[1 + i] = d[k - 1 - i];
	p[k + 1] = '\r';
	p[k + 2] = '\n';
	return k + 3;
}

/* A command framed here into one buffer and handed to hiredis as it is
 * (redisAppendFormattedCommand): hiredis' own formatting built an sds
 * argument by argument, growing and copying it, a microsecond or more
 * of a small put's commit. */
int ldr_rconn_append(struct ldr_rconn *rc, const char *what, int argc,
		     const char **argv, const size_t *lens)
{
	if (!rc->deadline)
		ldr_rconn_begin(rc);
	int code = ldr_rconn_ensure(rc, what);
	if (code)
		return code;
	size_t total = 24;
	for (int i = 0; i < argc; i++)
		total += (lens ? lens[i] : strlen(argv[i])) + 26;
	char small[1024];
	char *buf = total <= sizeof small ? small : malloc(total);
	int ok = buf != NULL;
	if (ok) {
		size_t at = frame(buf, '*', (size_t)argc);
		for (int i = 0; i < argc; i++) {
			size_t n = lens ? lens[i] : strlen(argv[i]);
			at += frame(buf + at, '$', n);
			memcpy(buf + at, argv[i], n);
			at += n;
			buf[at++] = '\r';
			buf[at++] = '\n';
		}
		ok = rd.redisAppendFormattedCommand(rc->c, buf, at) == REDIS_OK;
	}
	if (buf != small)
		free(buf);
	if (!ok) {
		drop(rc);
		return ldr_fail(rc->db, LARDER_ENOMEM, ENOMEM,
				"Redis %s at %s: out of memory", what,
				rc->cfg->shown);
	}
	rc->pending++;
	return 0;
}

int ldr_rconn_append_iov(struct ldr_rconn *rc, const char *what, int argc,
			 const char **argv, const size_t *lens)
{
	if (argc > LDR_RCONN_IOV_ARGS)
		return ldr_fail(rc->db, LARDER_EINVAL, 0,
				"Redis %s: too many arguments", what);
	if (!rc->deadline)
		ldr_rconn_begin(rc);
	int code = ldr_rconn_ensure(rc, what);
	if (code)
		return code;
	/* Whatever was appended the usual way goes first, in order. */
	int done = 0, e = 0;
	ldr_rconn_set_timeout(rc, ldr_rconn_left(rc));
	while (!done) {
		errno = 0;
		if (rd.redisBufferWrite(rc->c, &done) != REDIS_OK) {
			e = errno;
			goto broken;
		}
	}
	/* Frames in one scratch buffer, the arguments where they are. */
	char fr[(LDR_RCONN_IOV_ARGS + 1) * 24];
	struct iovec iov[3 * LDR_RCONN_IOV_ARGS + 1];
	int n = 0;
	size_t at = 0;
	at += frame(fr + at, '*', (size_t)argc);
	for (int i = 0; i < argc; i++) {
		size_t start = at;
		at += frame(fr + at, '$', lens[i]);
		if (i == 0)
			start = 0; /* the array's frame and the first's */
		iov[n++] = (struct iovec){fr + start, at - start};
		iov[n++] = (struct iovec){(void *)argv[i], lens[i]};
		iov[n++] = (struct iovec){(void *)"\r\n", 2};
	}
	int i = 0;
	while (i < n) {
		/* Each blocked writev is bounded by the socket's timeout;
		 * the deadline bounds them all. */
		if (ldr_rconn_left(rc) == 0) {
			e = ETIMEDOUT;
			goto broken;
		}
		ssize_t w = writev(rc->c->fd, iov + i, n - i > 64 ? 64 : n - i);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0) {
			e = errno;
			goto broken;
		}
		size_t k = (size_t)w;
		while (i < n && k >= iov[i].iov_len)
			k -= iov[i++].iov_len;
		if (i < n) {
			iov[i].iov_base = (char *)iov[i].iov_base + k;
			iov[i].iov_len -= k;
		}
	}
	rc->pending++;
	return 0;
broken:
	drop(rc);
	if (e == EAGAIN || e == EWOULDBLOCK || e == ETIMEDOUT ||
	    ldr_rconn_left(rc) == 0)
		return ldr_fail(rc->db, LARDER_ETIMEOUT, ETIMEDOUT,
				"Redis %s at %s: timed out after %llu ms", what,
				rc->cfg->shown,
				(unsigned long long)rc->cfg->timeout_ms);
	return ldr_fail(rc->db, LARDER_EIO, e, "Redis %s at %s: %s", what,
			rc->cfg->shown, e ? strerror(e) : "connection lost");
}

/* The next pipelined reply, an error reply included. */
static int reply_raw(struct ldr_rconn *rc, redisReply **out, const char *what)
{
	*out = NULL;
	if (!rc->c)
		return ldr_fail(rc->db, LARDER_EIO, 0,
				"Redis %s at %s: connection lost", what,
				rc->cfg->shown);
	void *r = NULL;
	/* A pipelined reply that came with an earlier one is in the
	 * reader's buffer already: taken without a system call (setting
	 * the socket's timeouts cost two per reply), as redisGetReply
	 * would take it first too. */
	if (rc->pending > 0 &&
	    rd.redisReaderGetReply(rc->c->reader, &r) == REDIS_OK && r) {
		rc->pending--;
		*out = r;
		return 0;
	}
	int64_t left = ldr_rconn_left(rc);
	int e = 0, ok = 0;
	if (left > 0) {
		ldr_rconn_set_timeout(rc, left);
		errno = 0;
		ok = rd.redisGetReply(rc->c, &r) == REDIS_OK && r;
		e = errno;
	}
	if (!ok) {
		int to = left == 0 || timed_out(rc->c, e);
		char msg[128];
		snprintf(msg, sizeof msg, "%s", rc->c->errstr);
		drop(rc);
		if (to)
			return ldr_fail(
			    rc->db, LARDER_ETIMEOUT, ETIMEDOUT,
			    "Redis %s at %s: timed out after %llu "
			    "ms",
			    what, rc->cfg->shown,
			    (unsigned long long)rc->cfg->timeout_ms);
		return ldr_fail(rc->db, LARDER_EIO, e, "Redis %s at %s: %s",
				what, rc->cfg->shown,
				msg[0] ? msg : "connection lost");
	}
	rc->pending--;
	*out = r;
	return 0;
}

int ldr_rconn_reply(struct ldr_rconn *rc, redisReply **out, const char *what)
{
	int code = reply_raw(rc, out, what);
	return code ? code : error_reply(rc, out, what);
}

int ldr_rconn_reply_into(struct ldr_rconn *rc, uint8_t *dst, size_t want,
			 const char *what)
{
	redisReply *r = NULL;
	rc->sink = dst;
	rc->sink_want = want;
	rc->sink_got = 0;
	int code = ldr_rconn_reply(rc, &r, what);
	rc->sink = NULL;
	int got = rc->sink_got;
	ldr_rreply_free(r);
	return code ? code : got;
}

/* Scripts' shas: computed by the server (SCRIPT LOAD) once per process,
 * since there is no SHA-1 here to compute them; a lock orders the
 * writing of sha before loaded. */
static pthread_mutex_t script_mu = PTHREAD_MUTEX_INITIALIZER;

int ldr_rconn_eval(struct ldr_rconn *rc, struct ldr_rscript *s,
		   redisReply **out, int nkeys, int argc, const char **argv,
		   const size_t *lens)
{
	char what[96];
	snprintf(what, sizeof what, "script %s", s->name);
	if (!rc->deadline)
		ldr_rconn_begin(rc);
	pthread_mutex_lock(&script_mu);
	int loaded = s->loaded;
	char sha[41];
	memcpy(sha, s->sha, sizeof sha);
	pthread_mutex_unlock(&script_mu);
	int code;
	if (!loaded) {
		const char *la[3] = {"SCRIPT", "LOAD", s->src};
		redisReply *r = NULL;
		if ((code = ldr_rconn_cmd(rc, &r, what, 3, la, NULL)))
			return code;
		if (r->type != REDIS_REPLY_STRING || r->len != 40) {
			ldr_rreply_free(r);
			return ldr_fail(rc->db, LARDER_EIO, 0,
					"Redis SCRIPT LOAD %s at %s: not a sha",
					s->name, rc->cfg->shown);
		}
		memcpy(sha, r->str, 40);
		sha[40] = '\0';
		ldr_rreply_free(r);
		pthread_mutex_lock(&script_mu);
		memcpy(s->sha, sha, sizeof sha);
		s->loaded = 1;
		pthread_mutex_unlock(&script_mu);
	}
	/* EVALSHA sha nkeys args...; the vector is built once for both
	 * forms, the first two items swapped for EVAL. */
	int n = argc + 3;
	const char **v = malloc(sizeof *v * (size_t)n);
	size_t *l = malloc(sizeof *l * (size_t)n);
	if (!v || !l) {
		free(v);
		free(l);
		return ldr_fail(rc->db, LARDER_ENOMEM, ENOMEM, "out of memory");
	}
	char nk[12];
	snprintf(nk, sizeof nk, "%d", nkeys);
	v[0] = "EVALSHA";
	v[1] = sha;
	v[2] = nk;
	for (int i = 0; i < argc; i++) {
		v[i + 3] = argv[i];
		l[i + 3] = lens ? lens[i] : strlen(argv[i]);
	}
	l[0] = 7;
	l[1] = 40;
	l[2] = strlen(nk);
	code = run(rc, out, what, n, v, l);
	if (code == 0 && (*out)->type == REDIS_REPLY_ERROR &&
	    strncmp((*out)->str, "NOSCRIPT", 8) == 0) {
		ldr_rreply_free(*out);
		*out = NULL;
		v[0] = "EVAL";
		l[0] = 4;
		v[1] = s->src;
		l[1] = strlen(s->src);
		code = run(rc, out, what, n, v, l);
	}
	free(v);
	free(l);
	if (code == 0 && (*out)->type == REDIS_REPLY_ERROR) {
		code = ldr_fail(rc->db, reply_code(*out), reply_errno(*out),
				"Redis %s at %s: %s%s", what, rc->cfg->shown,
				(*out)->str, reply_hint(*out));
		ldr_rreply_free(*out);
		*out = NULL;
	}
	return code;
}

int ldr_rconn_append_evalsha(struct ldr_rconn *rc, struct ldr_rscript *s,
			     int nkeys, int argc, const char **argv,
			     const size_t *lens)
{
	pthread_mutex_lock(&script_mu);
	int loaded = s->loaded;
	char sha[41];
	memcpy(sha, s->sha, sizeof sha);
	pthread_mutex_unlock(&script_mu);
	if (!loaded || argc + 3 > LDR_RCONN_IOV_ARGS)
		return 0;
	const char *v[LDR_RCONN_IOV_ARGS];
	size_t l[LDR_RCONN_IOV_ARGS];
	char nk[12];
	snprintf(nk, sizeof nk, "%d", nkeys);
	v[0] = "EVALSHA";
	v[1] = sha;
	v[2] = nk;
	l[0] = 7;
	l[1] = 40;
	l[2] = strlen(nk);
	for (int i = 0; i < argc; i++) {
		v[i + 3] = argv[i];
		l[i + 3] = lens ? lens[i] : strlen(argv[i]);
	}
	char what[96];
	snprintf(what, sizeof what, "script %s", s->name);
	int code = ldr_rconn_append(rc, what, argc + 3, v, l);
	return code ? code : 1;
}

int ldr_rconn_eval_reply(struct ldr_rconn *rc, struct ldr_rscript *s,
			 redisReply **out, int nkeys, int argc,
			 const char **argv, const size_t *lens)
{
	char what[96];
	snprintf(what, sizeof what, "script %s", s->name);
	int code = reply_raw(rc, out, what);
	if (code)
		return code;
	if ((*out)->type == REDIS_REPLY_ERROR &&
	    strncmp((*out)->str, "NOSCRIPT", 8) == 0) {
		/* The server lost it (a restart, a failover): the one-off
		 * path sends its source. */
		ldr_rreply_free(*out);
		*out = NULL;
		return ldr_rconn_eval(rc, s, out, nkeys, argc, argv, lens);
	}
	if ((*out)->type == REDIS_REPLY_ERROR) {
		code = ldr_fail(rc->db, reply_code(*out), 0,
				"Redis %s at %s: %s%s", what, rc->cfg->shown,
				(*out)->str, reply_hint(*out));
		ldr_rreply_free(*out);
		*out = NULL;
	}
	return code;
}
