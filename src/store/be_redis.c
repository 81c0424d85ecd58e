/*
 * be_redis.c — the Redis backend behind the storage seam (backend.h,
 * docs/backends.md section 3): entries in chunks with a manifest whose
 * SET NX is the commit point, head hints with the setter's fencing token,
 * leases with SET NX PX and a token from INCR, waiters woken by PUBLISH,
 * and namespaces kept in sets.
 *
 * Keys (P the prefix, E the entry's name hash and K the (ns, key) hash,
 * 32 hex each, as hash tags so that one entry's keys share a slot):
 *   P{E}:m            manifest: one text line, then the entry's header
 *                     (and the payload of an entry under one chunk)
 *   P{E}:c:<stage>:<i> payload chunk i of the writer <stage>
 *   P{K}:h  head hint (head.c's hint bytes) + the setter's token (20 digits)
 *   P{K}:l  lease record; P{K}:f fencing counter; P{K}:p commit channel
 *   Pns     set of namespaces; Pn:<ns> set of entry hashes of ns
 *
 * The manifest's first line is
 *   "larder-manifest 1 <stage> <chunk size> <chunks> <stored> <hdr len>\n"
 * so that the Lua scripts can check an entry's chunks without parsing the
 * binary header. Everything a reader gets back is judged by the caller
 * (ldr_entry_check): this file never says an entry is good; it only
 * says which chunks are missing (a miss).
 *
 * A read's buffer carries the manifest's stage id in the file's identity
 * (dev and ino, 8 bytes each, have_ident set), so that reject and remove
 * delete exactly the entry that was read, not one published since.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "backend.h"
#include "bytes.h"
#include "self.h"
#include "clock.h"
#include "err.h"
#include "fsutil.h"
#include "naming.h"
#include "redis_conn.h"
#include "store.h"

/* Payload bytes per chunk: big enough that a round trip's cost vanishes
 * against the bytes, small enough to stay far below Redis's bulk limit
 * and to keep a writer's buffer modest. */
#define CHUNK (4u << 20)
/* Chunks a writer keeps in flight before it reads a reply. */
#define INFLIGHT 4
/* How long a stage's chunks live before their commit: a writer that
 * dies leaves nothing behind for longer. */
#define STAGING_MS (3600ull * 1000)
/* The largest payload kept inline in its manifest. Larger ones go in
 * chunks: a plain SET of a chunk costs less than passing the bytes
 * through the Lua commit (which copies them), and the extra round trip
 * of a read vanishes against the transfer. */
#define INLINE_MAX (256u << 10)
/* A stage's first buffer; doubled up to CHUNK as the payload grows. */
#define BUF_FIRST (64u << 10)
/* Idle connections a handle keeps. */
#define POOL 4
/* The namespaces a backend has put in the set of namespaces lately
 * (ns_fresh): a put skips its SADD there for NS_FRESH_MS, the time a
 * set lost meanwhile (evicted, flushed) may lack it. */
#define NS_MEMO 8
#define NS_FRESH_MS 1000

#define HEAD_MAGIC "\x89LDRHEAD"
#define TOKEN_DIGITS 20

static const char full_msg[] =
    "the entry (%s%llu bytes) is larger than the Redis tier's limit of "
    "%llu MiB (max_entry=%llu); keep entries this large on a filesystem "
    "tier";

struct rbe {
	struct ldr_backend base;
	struct ldr_redis_cfg cfg;
	pthread_mutex_t mu;
	struct ldr_rconn *idle[POOL];
	int nidle;
	int reachable;
	/* A stage buffer kept from the last publish (under mu): a fresh one
	 * of a few MiB is a mapping whose every page faults as it fills,
	 * which cost more than the copy itself. */
	uint8_t *spare;
	size_t spare_cap;
	/* Under mu: the namespaces added to Pns lately (ns_fresh), by
	 * ldr_xxh64 of the name, and when (ldr_mono_ms; 0: free). */
	struct {
		uint64_t h, at;
	} nsmemo[NS_MEMO];
	/* The renewer: one thread for every lease of this backend, started
	 * by the first lease and stopped at close, so that a fill pays no
	 * thread of its own; a lease given back before its first renewal
	 * costs it nothing at all. It renews the leases that fall due
	 * together, pipelined, on a connection of its own. Under rmu: the
	 * list, each lease's due, busy and lost, and the flags below. */
	pthread_mutex_t rmu;
	pthread_cond_t rcv; /* CLOCK_MONOTONIC; a change of the list */
	struct rlease *leases;
	pthread_t rth;
	pid_t rpid; /* the process whose renewer runs; 0: none */
	int rstop;
	/* When the renewer wakes (CLOCK_MONOTONIC ms; UINT64_MAX: only when
	 * told; 0: it is awake and looks at the list before it sleeps), and
	 * the shortest renewal period of a lease it was given: idle, it
	 * wakes after that long, so that a lease added meanwhile (due no
	 * sooner) costs no wake-up of its own (a futex call and a switch
	 * to the renewer and back, per fill). */
	uint64_t rwake, rmin;
	struct ldr_rconn rconn; /* the renewer's (no pool: it is alone) */
	/* Stage ids (stage_id): a random seed drawn once per process
	 * (seed_epoch, ldr_self_epoch's number; written under mu) plus a
	 * counter, so that a put makes its id without a system call. */
	uint8_t seed[16];
	uint64_t seed_epoch, stage_ctr;
};

/* ---------------------------------------------------------------------- */
/* Lua                                                                      */

/* The parts every entry script shares: a manifest's line, whether a
 * stage's chunks are all there at their lengths, and their deletion. */
#define LUA_COMMON                                                             \
	"local function parse(m)\n"                                            \
	"  local st, cs, n, sl = string.match(m, "                             \
	"'^larder%-manifest 1 (%x+) (%d+) (%d+) (%d+) ')\n"                    \
	"  return st, tonumber(cs), tonumber(n), tonumber(sl)\n"               \
	"end\n"                                                                \
	"local function whole(pre, st, cs, n, sl)\n"                           \
	"  for i = 0, n - 1 do\n"                                              \
	"    local want = cs\n"                                                \
	"    if i == n - 1 then want = sl - cs * (n - 1) end\n"                \
	"    if redis.call('STRLEN', pre .. st .. ':' .. i) ~= want then\n"    \
	"      return false end\n"                                             \
	"  end\n"                                                              \
	"  return true\n"                                                      \
	"end\n"                                                                \
	"local function drop(pre, st, n)\n"                                    \
	"  for i = 0, n - 1 do redis.call('DEL', pre .. st .. ':' .. i) end\n" \
	"end\n"

/* How a commit ends for the key's lease and head, in the commit's own
 * step (settle): the lease `rec` ('': none) is given back if it is still
 * that record; the head is set to `ht` (the hint then the setter's token
 * in 20 digits, as head_set writes it; '': leave it) only while the
 * lease was held, and never back under a higher token (head_set's
 * rule). Returns 1 held (or no lease), 0 lost. */
#define LUA_SETTLE                                                             \
	"local function settle(hk, lk, ht, rec)\n"                             \
	"  local held = 1\n"                                                   \
	"  if rec ~= '' then\n"                                                \
	"    if redis.call('GET', lk) == rec then redis.call('DEL', lk)\n"     \
	"    else held = 0 end\n"                                              \
	"  end\n"                                                              \
	"  if held == 1 and ht ~= '' then\n"                                   \
	"    local t = tonumber(string.sub(ht, -20))\n"                        \
	"    local cur = redis.call('GET', hk)\n"                              \
	"    local ct = cur and tonumber(string.sub(cur, -20))\n"              \
	"    if t == 0 or not ct or ct <= t then\n"                            \
	"      redis.call('SET', hk, ht) end\n"                                \
	"  end\n"                                                              \
	"  return held\n"                                                      \
	"end\n"

/* The commit point. KEYS: manifest, Pns, Pn:<ns>, channel, head, lease.
 * ARGV: manifest, chunk key prefix, ttl ms (0: none), ns, E, the head's
 * value ('': leave the head), the lease's record ('': none). Our
 * chunks must all be there (one evicted meanwhile fails the publish:
 * "lost"); a manifest already there whose chunks are whole stands
 * ("exists", and ours go); a broken one is replaced; ours already there
 * (a retried call whose first reply was lost) is "ok". Then the lease
 * and the head are settled in the same step (the head only if ours was
 * published). Returns {word, held}. */
static struct ldr_rscript commit_lua = {
    "commit",
    LUA_COMMON LUA_SETTLE
    "local pre = ARGV[2]\n"
    "local function done(w)\n"
    "  local ht = ARGV[6]\n"
    "  if w ~= 'ok' then ht = '' end\n"
    "  return {w, settle(KEYS[5], KEYS[6], ht, ARGV[7])}\n"
    "end\n"
    "local st, cs, n, sl = parse(ARGV[1])\n"
    "local cur = redis.call('GET', KEYS[1])\n"
    "local cst, ccs, cn, csl\n"
    "if cur then cst, ccs, cn, csl = parse(cur) end\n"
    "if cst == st then return done('ok') end\n"
    "if not whole(pre, st, cs, n, sl) then drop(pre, st, n) "
    "return done('lost') end\n"
    "if cur then\n"
    "  if cst and whole(pre, cst, ccs, cn, csl) then\n"
    "    drop(pre, st, n) return done('exists') end\n"
    "  redis.call('DEL', KEYS[1])\n"
    "  if cst then drop(pre, cst, cn) end\n"
    "end\n"
    "redis.call('SET', KEYS[1], ARGV[1])\n"
    "local ttl = tonumber(ARGV[3])\n"
    "for i = 0, n - 1 do\n"
    "  local k = pre .. st .. ':' .. i\n"
    "  if ttl > 0 then redis.call('PEXPIRE', k, ttl)\n"
    "  else redis.call('PERSIST', k) end\n"
    "end\n"
    "if ttl > 0 then redis.call('PEXPIRE', KEYS[1], ttl) end\n"
    "redis.call('SADD', KEYS[2], ARGV[4])\n"
    "redis.call('SADD', KEYS[3], ARGV[5])\n"
    "redis.call('PUBLISH', KEYS[4], ARGV[5])\n"
    "return done('ok')\n",
    "", 0};

/* After an inline commit's commands, pipelined behind them: settle the
 * lease and the head if the manifest is the one this stage set. KEYS:
 * manifest, head, lease. ARGV: stage, the head's value, the lease's
 * record (settle's). -1: the manifest is another's (the commit script then
 * judges it, and settles), else settle's answer. */
static struct ldr_rscript settle_lua = {
    "settle",
    LUA_SETTLE "if redis.call('GETRANGE', KEYS[1], 18, 49) ~= ARGV[1] then\n"
	       "  return -1 end\n"
	       "return settle(KEYS[2], KEYS[3], ARGV[2], ARGV[3])\n",
    "", 0};

/* Compare-and-delete of an entry. KEYS: manifest, Pn:<ns>, head. ARGV:
 * the stage read ('' : whatever is there), chunk key prefix, E, the head
 * hint naming it ('': leave the head). */
static struct ldr_rscript remove_lua = {
    "remove",
    LUA_COMMON "local cur = redis.call('GET', KEYS[1])\n"
	       "if not cur then return 0 end\n"
	       "local st, cs, n = parse(cur)\n"
	       "if ARGV[1] ~= '' and st ~= ARGV[1] then return 0 end\n"
	       "redis.call('DEL', KEYS[1])\n"
	       "if st then drop(ARGV[2], st, n) end\n"
	       "redis.call('SREM', KEYS[2], ARGV[3])\n"
	       "if ARGV[4] ~= '' then\n"
	       "  local h = redis.call('GET', KEYS[3])\n"
	       "  if h and string.sub(h, 1, -21) == ARGV[4] then\n"
	       "    redis.call('DEL', KEYS[3]) end\n"
	       "end\n"
	       "return 1\n",
    "", 0};

/* The head's compare-and-set: not moved back by a lower token (a filler
 * that lost its lease); token 0 always sets. */
static struct ldr_rscript head_set_lua = {
    "head_set",
    "local t = tonumber(ARGV[2])\n"
    "if t > 0 then\n"
    "  local cur = redis.call('GET', KEYS[1])\n"
    "  if cur then\n"
    "    local ct = tonumber(string.sub(cur, -20))\n"
    "    if ct and ct > t then return 0 end\n"
    "  end\n"
    "end\n"
    "redis.call('SET', KEYS[1], ARGV[1] .. ARGV[2])\n"
    "return 1\n",
    "", 0};

static struct ldr_rscript head_drop_lua = {
    "head_drop",
    "local cur = redis.call('GET', KEYS[1])\n"
    "if cur and string.sub(cur, 1, -21) == ARGV[1] then\n"
    "  redis.call('DEL', KEYS[1]) return 1 end\n"
    "return 0\n",
    "", 0};

/* A fill's look and its lease in one step. KEYS: lease, counter,
 * manifest. ARGV: the record without its token line, lease ms, chunk key
 * prefix, '1' to have the manifest of an entry that stands ('0': not).
 * An entry whose manifest parses and whose chunks are whole stands: {2}
 * or {2, manifest} (an inline entry whole, so that a fill's first look
 * is this script and its hit one round trip), nothing taken (the caller
 * reads it). Else the lease, with its fencing token from INCR: {1,
 * record, token}; or who holds it: {0, record, PTTL}. */
static struct ldr_rscript lease_acquire_lua = {
    "lease_acquire",
    LUA_COMMON "local m\n"
	       "if ARGV[4] == '1' then m = redis.call('GET', KEYS[3])\n"
	       "else m = redis.call('GETRANGE', KEYS[3], 0, 199) end\n"
	       "if m and m ~= '' then\n"
	       "  local st, cs, n, sl = parse(m)\n"
	       "  if st and whole(ARGV[3], st, cs, n, sl) then\n"
	       "    if ARGV[4] == '1' then return {2, m} end\n"
	       "    return {2}\n"
	       "  end\n"
	       "end\n"
	       "local cur = redis.call('GET', KEYS[1])\n"
	       "if cur then return {0, cur, redis.call('PTTL', KEYS[1])} end\n"
	       "local t = redis.call('INCR', KEYS[2])\n"
	       "local rec = ARGV[1] .. string.format('token %020d\\n', t)\n"
	       "redis.call('SET', KEYS[1], rec, 'PX', ARGV[2])\n"
	       "return {1, rec, t}\n",
    "", 0};

static struct ldr_rscript lease_renew_lua = {
    "lease_renew",
    "if redis.call('GET', KEYS[1]) == ARGV[1] then\n"
    "  redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end\n"
    "return 0\n",
    "", 0};

static struct ldr_rscript lease_del_lua = {
    "lease_delete",
    "if redis.call('GET', KEYS[1]) == ARGV[1] then\n"
    "  redis.call('DEL', KEYS[1]) return 1 end\n"
    "return 0\n",
    "", 0};

/* ---------------------------------------------------------------------- */
/* Connections and names                                                    */

static struct ldr_rconn *take(struct rbe *b)
{
	struct ldr_rconn *c = NULL;
	pthread_mutex_lock(&b->mu);
	if (b->nidle)
		c = b->idle[--b->nidle];
	pthread_mutex_unlock(&b->mu);
	if (c && c->epoch != ldr_self_epoch(b->base.db)) {
		/* Made by the process we were forked from: its socket is
		 * shared with it, and a reply could go to either. Closed
		 * here (our copy of the fd), never used. */
		ldr_rconn_close(c);
		c->pid = getpid();
		c->epoch = ldr_self_epoch(b->base.db);
	}
	if (!c && (c = malloc(sizeof *c)))
		ldr_rconn_init(c, b->base.db, &b->cfg);
	if (!c)
		ldr_fail(b->base.db, LARDER_ENOMEM, ENOMEM, "out of memory");
	else
		ldr_rconn_begin(c);
	return c;
}

/* Give c back; code is how the call ended (reachability for stats). */
static void give(struct rbe *b, struct ldr_rconn *c, int code)
{
	if (!c)
		return;
	pthread_mutex_lock(&b->mu);
	b->reachable = code != LARDER_ETIMEOUT && code != LARDER_EIO;
	if (c->c && c->pending == 0 && b->nidle < POOL) {
		b->idle[b->nidle++] = c;
		c = NULL;
	}
	pthread_mutex_unlock(&b->mu);
	if (c) {
		ldr_rconn_close(c);
		free(c);
	}
}

static void hex32(char out[33], const uint8_t h[16])
{
	static const char d[] = "0123456789abcdef";
	for (int i = 0; i < 16; i++) {
		out[2 * i] = d[h[i] >> 4];
		out[2 * i + 1] = d[h[i] & 15];
	}
	out[32] = '\0';
}

/* A stage id no other writer has: this process's seed (two processes'
 * seeds, 128 random bits each, differ) plus the next count. A child
 * draws a seed of its own before its first stage: one reusing its
 * parent's, counting from where the parent stood when it forked, would
 * name the parent's next stages, and two writers in one stage would mix
 * their chunks. */
static void stage_id(struct rbe *b, char out[33])
{
	uint64_t e = ldr_self_epoch(b->base.db);
	if (__atomic_load_n(&b->seed_epoch, __ATOMIC_ACQUIRE) != e) {
		pthread_mutex_lock(&b->mu);
		if (b->seed_epoch != e) {
			ldr_random(b->seed, sizeof b->seed);
			__atomic_store_n(&b->seed_epoch, e, __ATOMIC_RELEASE);
		}
		pthread_mutex_unlock(&b->mu);
	}
	uint8_t id[16];
	memcpy(id, b->seed, sizeof id);
	uint64_t n = __atomic_fetch_add(&b->stage_ctr, 1, __ATOMIC_RELAXED);
	ldr_put64(id + 8, ldr_get64(id + 8) + n);
	hex32(out, id);
}

void ldr_test_redis_stage_id(struct ldr_backend *be, char out[33])
{
	stage_id((struct rbe *)be, out);
}

/* The commit's text made by hand rather than by snprintf (five calls a
 * put, 0.4 us of it): s at p, or v in decimal, at least width digits
 * (zeros in front); the end. The caller's buffer holds it. */
static char *cat_s(char *p, const char *s)
{
	size_t n = strlen(s);
	memcpy(p, s, n);
	return p + n;
}

static char *cat_u64(char *p, uint64_t v, int width)
{
	char d[20];
	int n = 0;
	do
		d[n++] = (char)('0' + v % 10);
	while ((v /= 10));
	while (n < width)
		d[n++] = '0';
	while (n)
		*p++ = d[--n];
	return p;
}

/* P{hex}<suffix> */
static void tagged(char *out, size_t size, const struct rbe *b,
		   const uint8_t h[16], const char *suffix)
{
	/* By hand: four of these per commit, and snprintf's parsing of
	 * its format was most of a small commit's own work. */
	size_t pl = strlen(b->cfg.prefix), sl = strlen(suffix);
	if (pl + sl + 35 > size) {
		char x[33];
		hex32(x, h);
		snprintf(out, size, "%s{%s}%s", b->cfg.prefix, x, suffix);
		return;
	}
	memcpy(out, b->cfg.prefix, pl);
	out[pl] = '{';
	hex32(out + pl + 1, h);
	out[pl + 33] = '}';
	memcpy(out + pl + 34, suffix, sl + 1);
}

#define KEYMAX 200

/* The head hint's bytes for ver (head.c's hint file), malloc'ed. */
static uint8_t *hint_bytes(const void *ver, size_t vlen, size_t *len)
{
	uint8_t *p = malloc(32 + vlen + TOKEN_DIGITS);
	if (!p)
		return NULL;
	memcpy(p, HEAD_MAGIC, 8);
	for (int i = 0; i < 4; i++) {
		p[8 + i] = (uint8_t)(1u >> (8 * i));
		p[12 + i] = (uint8_t)((uint32_t)vlen >> (8 * i));
	}
	if (vlen)
		memcpy(p + 16, ver, vlen);
	ldr_xxh128(p, 16 + vlen, p + 16 + vlen);
	*len = 32 + vlen;
	return p;
}

/* ---------------------------------------------------------------------- */
/* Open, close, stats                                                       */

/* The renewer's condition waits by the monotonic clock (its periods are
 * durations, not wall times). */
static void renewer_cond_init(struct rbe *b)
{
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&b->rcv, &ca);
	pthread_condattr_destroy(&ca);
}

static int r_open(struct ldr_backend **out, larder *db, const char *where)
{
	*out = NULL;
	struct rbe *b = calloc(1, sizeof *b);
	if (!b)
		return ldr_fail(db, LARDER_ENOMEM, ENOMEM, "out of memory");
	int rc = ldr_redis_parse(db, where, &b->cfg);
	if (rc) {
		free(b);
		return rc;
	}
	b->base.ops = &ldr_be_redis_ops;
	b->base.db = db;
	b->reachable = 1;
	pthread_mutex_init(&b->mu, NULL);
	pthread_mutex_init(&b->rmu, NULL);
	renewer_cond_init(b);
	ldr_rconn_init(&b->rconn, db, &b->cfg);
	/* Connect now: a wrong address or password is better told at open
	 * than at the first get. */
	struct ldr_rconn *c = take(b);
	redisReply *r = NULL;
	const char *ping[1] = {"PING"};
	if (!c)
		rc = LARDER_ENOMEM;
	else
		rc = ldr_rconn_cmd(c, &r, "PING", 1, ping, NULL);
	ldr_rreply_free(r);
	give(b, c, rc);
	if (rc) {
		ldr_be_redis_ops.close(&b->base);
		return rc;
	}
	*out = &b->base;
	return 0;
}

static void r_close(struct ldr_backend *be)
{
	if (!be)
		return;
	struct rbe *b = (struct rbe *)be;
	if (b->rpid == getpid()) {
		pthread_mutex_lock(&b->rmu);
		b->rstop = 1;
		pthread_cond_broadcast(&b->rcv);
		pthread_mutex_unlock(&b->rmu);
		pthread_join(b->rth, NULL);
	}
	ldr_rconn_close(&b->rconn);
	pthread_cond_destroy(&b->rcv);
	pthread_mutex_destroy(&b->rmu);
	for (int i = 0; i < b->nidle; i++) {
		ldr_rconn_close(b->idle[i]);
		free(b->idle[i]);
	}
	free(b->spare);
	pthread_mutex_destroy(&b->mu);
	/* The password does not outlive the handle in freed memory. */
	memset(b->cfg.password, 0, sizeof b->cfg.password);
	free(b);
}

/* "name:value" from an INFO reply. */
static uint64_t info_u64(const char *text, const char *name)
{
	size_t n = strlen(name);
	for (const char *p = text; p && *p;) {
		if (strncmp(p, name, n) == 0 && p[n] == ':')
			return strtoull(p + n + 1, NULL, 10);
		p = strchr(p, '\n');
		if (p)
			p++;
	}
	return 0;
}

/* The entries of this prefix: the members of every namespace's set, in
 * one pipelined round trip after the list of namespaces. An entry evicted
 * by the server counts until a walk drops it from its set. */
static int count_entries(struct rbe *b, struct ldr_rconn *c, uint64_t *n)
{
	char key[KEYMAX];
	snprintf(key, sizeof key, "%sns", b->cfg.prefix);
	const char *argv[2] = {"SMEMBERS", key};
	redisReply *r = NULL, *cr = NULL;
	int rc = ldr_rconn_cmd(c, &r, "SMEMBERS namespaces", 2, argv, NULL);
	if (rc || r->type != REDIS_REPLY_ARRAY)
		goto out;
	size_t k = 0;
	for (; k < r->elements; k++) {
		const redisReply *e = r->element[k];
		char set[KEYMAX + LDR_MAX_NS];
		if (e->type != REDIS_REPLY_STRING ||
		    (size_t)snprintf(set, sizeof set, "%sn:%s", b->cfg.prefix,
				     e->str) >= sizeof set)
			continue;
		const char *sc[2] = {"SCARD", set};
		if ((rc = ldr_rconn_append(c, "SCARD namespace", 2, sc, NULL)))
			goto out;
	}
	for (size_t i = 0; i < k; i++) {
		if (r->element[i]->type != REDIS_REPLY_STRING)
			continue;
		if ((rc = ldr_rconn_reply(c, &cr, "SCARD namespace")))
			goto out;
		if (cr->type == REDIS_REPLY_INTEGER && cr->integer > 0)
			*n += (uint64_t)cr->integer;
		ldr_rreply_free(cr);
		cr = NULL;
	}
out:
	ldr_rreply_free(r);
	ldr_rreply_free(cr);
	return rc;
}

static int r_stats(struct ldr_backend *be, struct ldr_be_stats *st)
{
	struct rbe *b = (struct rbe *)be;
	memset(st, 0, sizeof *st);
	struct ldr_rconn *c = take(b);
	if (!c)
		return LARDER_ENOMEM;
	redisReply *r = NULL;
	const char *mem[2] = {"INFO", "memory"}, *sta[2] = {"INFO", "stats"};
	int rc = ldr_rconn_cmd(c, &r, "INFO memory", 2, mem, NULL);
	if (!rc && r->type == REDIS_REPLY_STRING) {
		st->bytes = info_u64(r->str, "used_memory");
		st->bytes_max = info_u64(r->str, "maxmemory");
	}
	ldr_rreply_free(r);
	r = NULL;
	if (!rc)
		rc = ldr_rconn_cmd(c, &r, "INFO stats", 2, sta, NULL);
	if (!rc && r->type == REDIS_REPLY_STRING)
		st->evicted = info_u64(r->str, "evicted_keys");
	ldr_rreply_free(r);
	r = NULL;
	if (!rc)
		rc = count_entries(b, c, &st->entries);
	give(b, c, rc);
	st->reachable = b->reachable;
	return rc;
}

/* ---------------------------------------------------------------------- */
/* Read, reject, remove                                                     */

struct manifest {
	char stage[33];
	uint64_t chunk, n, stored, hlen;
	size_t line; /* bytes of the first line, '\n' included */
};

static int parse_manifest(const char *p, size_t len, struct manifest *m)
{
	const char *nl = memchr(p, '\n', len < 200 ? len : 200);
	if (!nl)
		return -1;
	char line[200];
	size_t ll = (size_t)(nl - p);
	memcpy(line, p, ll);
	line[ll] = '\0';
	unsigned long long cs, n, sl, hl;
	char st[40];
	if (sscanf(line, "larder-manifest 1 %32s %llu %llu %llu %llu", st, &cs,
		   &n, &sl, &hl) != 5 ||
	    strlen(st) != 32)
		return -1;
	m->line = ll + 1;
	/* n == 0: the payload follows the header in the manifest. */
	if (cs == 0 || cs > (64u << 20) ||
	    (n == 0 ? len - m->line != hl + sl
		    : hl != len - m->line || n != (sl + cs - 1) / cs))
		return -1;
	memcpy(m->stage, st, 33);
	m->chunk = cs;
	m->n = n;
	m->stored = sl;
	m->hlen = hl;
	return 0;
}

static int hexval2(int c)
{
	return c >= 'a' ? c - 'a' + 10 : c - '0';
}

_Static_assert(sizeof(dev_t) == 8 && sizeof(ino_t) == 8,
	       "a stage id (16 bytes) is kept in dev and ino");

static void stage_to_ident(struct ldr_file *f, const char *stage)
{
	uint8_t raw[16];
	for (int i = 0; i < 16; i++)
		raw[i] = (uint8_t)(hexval2(stage[2 * i]) << 4 |
				   hexval2(stage[2 * i + 1]));
	memcpy(&f->dev, raw, 8);
	memcpy(&f->ino, raw + 8, 8);
	f->have_ident = 1;
}

/* The stage id a read left in f ("" when f is none of ours). */
static void ident_to_stage(const struct ldr_file *f, char out[33])
{
	uint8_t raw[16];
	out[0] = '\0';
	if (!f || !f->have_ident)
		return;
	memcpy(raw, &f->dev, 8);
	memcpy(raw + 8, &f->ino, 8);
	hex32(out, raw);
}

/* Delete the entry n if its manifest still names `stage` ("" : any), and
 * with hint (non-NULL) its head if the head names that version. 1, 0, or
 * a code. */
static int remove_entry(struct rbe *b, struct ldr_rconn *c,
			const struct ldr_name *n, const char *stage,
			const uint8_t *hint, size_t hlen)
{
	char m[KEYMAX], set[KEYMAX + LDR_MAX_NS], head[KEYMAX], pre[KEYMAX],
	    e[33];
	tagged(m, sizeof m, b, n->hash, ":m");
	tagged(pre, sizeof pre, b, n->hash, ":c:");
	tagged(head, sizeof head, b, n->khash, ":h");
	snprintf(set, sizeof set, "%sn:%s", b->cfg.prefix, n->ns);
	hex32(e, n->hash);
	const char *argv[7] = {
	    m, set, head, stage, pre, e, hint ? (const char *)hint : ""};
	size_t lens[7] = {strlen(m),	  strlen(set), strlen(head),
			  strlen(stage),  strlen(pre), 32,
			  hint ? hlen : 0};
	redisReply *r = NULL;
	int rc = ldr_rconn_eval(c, &remove_lua, &r, 3, 7, argv, lens);
	if (!rc)
		rc = r->type == REDIS_REPLY_INTEGER && r->integer == 1;
	ldr_rreply_free(r);
	return rc;
}

/* One entry being read: its manifest, and the buffer it is read into
 * (pre bytes, then the header and the payload). */
struct rread {
	struct manifest m;
	uint8_t *buf;
	size_t total;
	int ready; /* all read (read_many) */
};

/* Judge a manifest's reply and make the entry's buffer, the header (and
 * an inline payload) copied in: 0, LARDER_ENOTFOUND, or LARDER_ENOMEM. */
static int manifest_take(struct rbe *b, const redisReply *r, size_t pre,
			 struct rread *e)
{
	e->buf = NULL;
	if (r->type == REDIS_REPLY_NIL)
		return LARDER_ENOTFOUND;
	if (r->type != REDIS_REPLY_STRING ||
	    parse_manifest(r->str, r->len, &e->m) ||
	    e->m.hlen + e->m.stored > b->cfg.max_entry)
		/* Not a manifest of ours: a miss; the next commit replaces
		 * it (the commit script's parse fails on it too). */
		return LARDER_ENOTFOUND;
	e->total = (size_t)(e->m.hlen + e->m.stored);
	if (!(e->buf = malloc(pre + e->total + 1)))
		return ldr_fail(b->base.db, LARDER_ENOMEM, ENOMEM,
				"out of memory for a Redis entry of %zu bytes",
				e->total);
	/* An inline entry is all here; it has no chunks to read. */
	memcpy(e->buf + pre, r->str + e->m.line, e->m.n ? e->m.hlen : e->total);
	return 0;
}

/* Queue the GETs of the chunks of the entry n. */
static int chunks_ask(struct rbe *b, struct ldr_rconn *c,
		      const struct ldr_name *n, const struct rread *e)
{
	char pfx[KEYMAX];
	tagged(pfx, sizeof pfx, b, n->hash, ":c:");
	for (uint64_t i = 0; i < e->m.n; i++) {
		char ck[KEYMAX + 64];
		snprintf(ck, sizeof ck, "%s%s:%" PRIu64, pfx, e->m.stage, i);
		const char *ga[2] = {"GET", ck};
		int rc = ldr_rconn_append(c, "GET chunk", 2, ga, NULL);
		if (rc)
			return rc;
	}
	return 0;
}

/* Read the replies of chunks_ask into the buffer: 0, 1 when a chunk is
 * missing or not of its length (an eviction or an expiry that raced),
 * or a code (the connection is then gone). */
static int chunks_take(struct ldr_rconn *c, struct rread *e, size_t pre)
{
	int lost = 0;
	size_t at = pre + e->m.hlen;
	for (uint64_t i = 0; i < e->m.n; i++) {
		/* Each chunk gets the timeout: a large entry is bounded by
		 * its progress, not by one call's time. */
		ldr_rconn_begin(c);
		uint64_t want = i + 1 < e->m.n
				    ? e->m.chunk
				    : e->m.stored - e->m.chunk * (e->m.n - 1);
		/* Straight into the entry's buffer: no reply of its own. */
		int got = ldr_rconn_reply_into(c, e->buf + at, (size_t)want,
					       "GET chunk");
		if (got < 0)
			return got;
		if (!got)
			lost = 1;
		at += want;
	}
	return lost;
}

/* Hand the buffer over to f. */
static void read_done(struct rread *e, size_t pre, struct ldr_file *f)
{
	f->p = e->buf + pre;
	f->pre = pre;
	f->len = e->total;
	f->size = e->total;
	f->safe = 0; /* never trusted: its payload is always hashed */
	stage_to_ident(f, e->m.stage);
	e->buf = NULL;
}

/* The chunks of the entry whose manifest e holds, read on c into f with
 * every GET sent before the first reply (one round trip): 0 or a code;
 * LARDER_ENOTFOUND when a chunk is gone (evicted, expired before its
 * manifest), and then the entry goes, so that the next fill publishes
 * it again. */
static int chunks_read(struct rbe *b, struct ldr_rconn *c,
		       const struct ldr_name *n, struct rread *e, size_t pre,
		       struct ldr_file *f)
{
	int rc;
	if ((rc = chunks_ask(b, c, n, e)) || (rc = chunks_take(c, e, pre)) < 0)
		return rc;
	if (rc == 1) {
		ldr_count(b->base.db, LARDER_CTR_REDIS_LOST_CHUNKS);
		remove_entry(b, c, n, e->m.stage, NULL, 0);
		return LARDER_ENOTFOUND;
	}
	read_done(e, pre, f);
	return 0;
}

static int r_read(struct ldr_backend *be, const struct ldr_name *n, int how,
		  size_t pre, struct ldr_file *f)
{
	(void)how; /* always whole, in memory: see docs/backends.md */
	struct rbe *b = (struct rbe *)be;
	memset(f, 0, sizeof *f);
	f->fd = -1;
	struct ldr_rconn *c = take(b);
	if (!c)
		return LARDER_ENOMEM;
	char key[KEYMAX];
	tagged(key, sizeof key, b, n->hash, ":m");
	redisReply *r = NULL;
	struct rread e = {.buf = NULL};
	const char *argv[2] = {"GET", key};
	int rc = ldr_rconn_cmd(c, &r, "GET manifest", 2, argv, NULL);
	if (rc || (rc = manifest_take(b, r, pre, &e)))
		goto out;
	rc = chunks_read(b, c, n, &e, pre, f);
out:
	free(e.buf);
	ldr_rreply_free(r);
	give(b, c, rc);
	return rc;
}

/* Batch get (backend.h): one round trip for every manifest, one for
 * every chunk of every entry found, however many entries. A connection
 * that fails fails what is not yet read; a chunk lost is a miss of its
 * entry alone. */
static void r_read_many(struct ldr_backend *be, const struct ldr_name *n,
			size_t count, size_t pre, struct ldr_file *f, int *rcs)
{
	struct rbe *b = (struct rbe *)be;
	for (size_t i = 0; i < count; i++) {
		memset(&f[i], 0, sizeof f[i]);
		f[i].fd = -1;
		rcs[i] = LARDER_ENOMEM;
	}
	if (!count)
		return;
	struct rread *e = calloc(count, sizeof *e);
	struct ldr_rconn *c = e ? take(b) : NULL;
	int rc = 0;
	if (!c) {
		if (!e)
			ldr_fail(be->db, LARDER_ENOMEM, ENOMEM,
				 "out of memory");
		free(e);
		return;
	}
	size_t asked = 0;
	for (; asked < count; asked++) {
		char key[KEYMAX];
		tagged(key, sizeof key, b, n[asked].hash, ":m");
		const char *argv[2] = {"GET", key};
		if ((rc = ldr_rconn_append(c, "GET manifest", 2, argv, NULL)))
			break;
	}
	size_t answered = 0;
	for (; answered < asked && !rc; answered++) {
		redisReply *r = NULL;
		ldr_rconn_begin(c);
		if ((rc = ldr_rconn_reply(c, &r, "GET manifest")))
			break;
		size_t i = answered;
		rcs[i] = manifest_take(b, r, pre, &e[i]);
		e[i].ready = rcs[i] == 0 && e[i].m.n == 0;
		ldr_rreply_free(r);
	}
	for (size_t i = 0; i < count && !rc; i++)
		if (rcs[i] == 0 && !e[i].ready)
			rc = chunks_ask(b, c, &n[i], &e[i]);
	for (size_t i = 0; i < count && !rc; i++) {
		if (rcs[i] != 0 || e[i].ready)
			continue;
		int lost = chunks_take(c, &e[i], pre);
		if (lost < 0) {
			rc = lost;
			break;
		}
		rcs[i] = lost ? LARDER_ENOTFOUND : 0;
		e[i].ready = !lost;
	}
	for (size_t i = 0; i < count; i++) {
		if (e[i].ready)
			read_done(&e[i], pre, &f[i]);
		else if (i >= answered || (rc && rcs[i] == 0))
			rcs[i] = rc; /* not read before the failure */
		else if (rcs[i] == LARDER_ENOTFOUND && e[i].buf && !rc) {
			/* A chunk was lost: gone, as read does. */
			ldr_count(be->db, LARDER_CTR_REDIS_LOST_CHUNKS);
			remove_entry(b, c, &n[i], e[i].m.stage, NULL, 0);
		}
		free(e[i].buf);
	}
	free(e);
	give(b, c, rc);
}

static void r_reject(struct ldr_backend *be, const struct ldr_name *n,
		     const struct ldr_file *f, const char *why)
{
	(void)why;
	struct rbe *b = (struct rbe *)be;
	/* Judged bad by its check (docs/backends.md: checksum_fail), as
	 * the directory's reject counts it. */
	ldr_count(be->db, LARDER_CTR_CHECKSUM_FAIL);
	char stage[33];
	ident_to_stage(f, stage);
	if (!stage[0])
		return; /* not read from here: nothing to compare */
	struct ldr_rconn *c = take(b);
	if (!c)
		return;
	int rc = remove_entry(b, c, n, stage, NULL, 0);
	give(b, c, rc < 0 ? rc : 0);
}

static int r_head_get(struct ldr_backend *be, const struct ldr_name *n,
		      uint8_t **ver, size_t *vlen);

static int r_remove(struct ldr_backend *be, const struct ldr_name *n,
		    const struct ldr_file *same)
{
	struct rbe *b = (struct rbe *)be;
	if (!n->ver && !n->vlen) {
		/* The version the head names, asked afresh. */
		uint8_t *ver;
		size_t vlen;
		int rc = r_head_get(be, n, &ver, &vlen);
		if (rc)
			return rc == LARDER_ENOTFOUND ? 0 : rc;
		struct ldr_name hn;
		ldr_name_init(&hn, n->ns, n->key, n->klen, ver, vlen);
		rc = hn.ver ? r_remove(be, &hn, same) : 0;
		free(ver);
		return rc;
	}
	char stage[33];
	ident_to_stage(same, stage);
	size_t hl;
	uint8_t *hint = hint_bytes(n->ver, n->vlen, &hl);
	if (!hint)
		return ldr_fail(be->db, LARDER_ENOMEM, ENOMEM, "out of memory");
	struct ldr_rconn *c = take(b);
	int rc = c ? remove_entry(b, c, n, stage, hint, hl) : LARDER_ENOMEM;
	give(b, c, rc < 0 ? rc : 0);
	free(hint);
	return rc;
}

/* ---------------------------------------------------------------------- */
/* Publish                                                                  */

struct rstage {
	struct ldr_stage base;
	struct rbe *b;
	struct ldr_rconn *c;
	struct ldr_name n; /* ns, key, ver point into own copies below */
	char *ns;
	uint8_t *ver;
	char stage[33];
	char pfx[KEYMAX];
	uint8_t *buf; /* the chunk being filled: cap bytes, grown to CHUNK */
	size_t cap;
	size_t blen;
	uint64_t nchunks, stored;
	int failed; /* a write failed: commit refuses */
	/* The payload's hash as written, which the header must state: a
	 * commit publishes nothing its own header would fail. */
	struct ldr_hasher *hs;
};

/* An entry of size bytes (at least, unless exact: a stage still being
 * written) over max_entry. */
static int refuse_full(struct rbe *b, uint64_t size, int exact)
{
	return ldr_fail(b->base.db, LARDER_EFULL, EFBIG, full_msg,
			exact ? "" : "at least ", (unsigned long long)size,
			(unsigned long long)(b->cfg.max_entry >> 20),
			(unsigned long long)b->cfg.max_entry);
}

static uint8_t *spare_take(struct rbe *b, size_t *cap)
{
	pthread_mutex_lock(&b->mu);
	uint8_t *p = b->spare;
	*cap = b->spare_cap;
	b->spare = NULL;
	pthread_mutex_unlock(&b->mu);
	if (!p)
		p = malloc(*cap = BUF_FIRST);
	return p;
}

static void spare_give(struct rbe *b, uint8_t *p, size_t cap)
{
	pthread_mutex_lock(&b->mu);
	if (!b->spare) {
		b->spare = p;
		b->spare_cap = cap;
		p = NULL;
	}
	pthread_mutex_unlock(&b->mu);
	free(p);
}

static int r_stage_begin(struct ldr_backend *be, const struct ldr_name *n,
			 const larder_put_opts *po, struct ldr_stage **out)
{
	(void)po; /* the TTL is the header's (stage_commit) */
	struct rbe *b = (struct rbe *)be;
	*out = NULL;
	struct rstage *s = calloc(1, sizeof *s);
	if (!s || !(s->ns = strdup(n->ns)) ||
	    !(s->ver = malloc(n->vlen ? n->vlen : 1)) ||
	    !(s->hs = ldr_hasher_new()) || !(s->buf = spare_take(b, &s->cap))) {
		if (s) {
			free(s->ns);
			free(s->ver);
			ldr_hasher_free(s->hs);
		}
		free(s);
		return ldr_fail(be->db, LARDER_ENOMEM, ENOMEM, "out of memory");
	}
	ldr_hasher_reset(s->hs);
	if (n->vlen)
		memcpy(s->ver, n->ver, n->vlen);
	s->n = *n;
	s->n.ns = s->ns;
	s->n.ver = s->ver;
	s->n.key = NULL; /* not kept: nothing here needs it */
	s->base.be = be;
	s->b = b;
	stage_id(b, s->stage);
	tagged(s->pfx, sizeof s->pfx, b, n->hash, ":c:");
	*out = &s->base;
	return 0;
}

/* Read one pipelined reply of a chunk's SET. */
static int chunk_reply(struct rstage *s)
{
	redisReply *r = NULL;
	ldr_rconn_begin(s->c); /* per chunk, as a read's */
	int rc = ldr_rconn_reply(s->c, &r, "SET chunk");
	ldr_rreply_free(r);
	return rc;
}

/* Send the buffered chunk (pipelined, at most INFLIGHT unanswered). */
static int flush_chunk(struct rstage *s)
{
	int rc;
	if (!s->c && !(s->c = take(s->b)))
		return LARDER_ENOMEM;
	char key[KEYMAX + 64], px[24];
	snprintf(key, sizeof key, "%s%s:%" PRIu64, s->pfx, s->stage,
		 s->nchunks);
	snprintf(px, sizeof px, "%llu", (unsigned long long)STAGING_MS);
	const char *argv[5] = {"SET", key, (const char *)s->buf, "PX", px};
	size_t lens[5] = {3, strlen(key), s->blen, 2, strlen(px)};
	/* Written from the stage's buffer: no copy of the chunk. */
	if ((rc = ldr_rconn_append_iov(s->c, "SET chunk", 5, argv, lens)))
		return rc;
	s->nchunks++;
	s->blen = 0;
	while (s->c->pending > INFLIGHT)
		if ((rc = chunk_reply(s)))
			return rc;
	return 0;
}

/* Double the buffer, up to a chunk: a small entry never pays for a
 * 4 MiB allocation (a mapping, its page faults and its unmapping). */
static int grow(struct rstage *s)
{
	size_t cap = s->cap * 2 < CHUNK ? s->cap * 2 : CHUNK;
	uint8_t *b = realloc(s->buf, cap);
	if (!b)
		return ldr_fail(s->b->base.db, LARDER_ENOMEM, ENOMEM,
				"out of memory");
	s->buf = b;
	s->cap = cap;
	return 0;
}

static int r_stage_write(struct ldr_stage *st, const struct iovec *iov,
			 int iovcnt)
{
	struct rstage *s = (struct rstage *)st;
	if (s->failed)
		return ldr_fail(s->b->base.db, LARDER_EINVAL, 0,
				"write after a failed write to Redis");
	if (s->c)
		ldr_rconn_begin(s->c);
	int rc = 0;
	for (int i = 0; i < iovcnt && !rc; i++) {
		const uint8_t *p = iov[i].iov_base;
		size_t len = iov[i].iov_len;
		if (s->stored + len > s->b->cfg.max_entry) {
			rc = refuse_full(s->b, s->stored + len, 0);
			break;
		}
		s->stored += len;
		ldr_hasher_update(s->hs, p, len);
		while (len && !rc) {
			if (s->blen == s->cap && (rc = grow(s)))
				break;
			size_t k =
			    s->cap - s->blen < len ? s->cap - s->blen : len;
			memcpy(s->buf + s->blen, p, k);
			s->blen += k;
			p += k;
			len -= k;
			if (s->blen == CHUNK)
				rc = flush_chunk(s);
		}
	}
	if (rc)
		s->failed = 1;
	return rc;
}

static void stage_free(struct rstage *s, int rc)
{
	if (s->c)
		give(s->b, s->c, rc);
	if (s->buf)
		spare_give(s->b, s->buf, s->cap);
	free(s->ns);
	free(s->ver);
	ldr_hasher_free(s->hs);
	free(s);
}

static void r_stage_abort(struct ldr_stage *st)
{
	struct rstage *s = (struct rstage *)st;
	if (!st)
		return;
	if (s->c && s->c->c) {
		/* Drain what is in flight, then delete what was sent; if
		 * Redis does not answer, the chunks expire (STAGING_MS). */
		ldr_rconn_begin(s->c);
		while (s->c->c && s->c->pending && chunk_reply(s) == 0)
			;
		for (uint64_t i = 0; i < s->nchunks && s->c->c; i++) {
			char key[KEYMAX + 64];
			snprintf(key, sizeof key, "%s%s:%" PRIu64, s->pfx,
				 s->stage, i);
			const char *argv[2] = {"UNLINK", key};
			if (ldr_rconn_append(s->c, "UNLINK chunk", 2, argv,
					     NULL))
				break;
		}
		while (s->c->c && s->c->pending && chunk_reply(s) == 0)
			;
	}
	stage_free(s, 0);
}

/* The durability policy: WAIT for the configured replicas. Fewer
 * acknowledgements are a warning, not a failure: the entry is published
 * on the master, and replication only narrows the window in which a
 * failover loses it (docs/backends.md). */
static void wait_replicas(struct rbe *b, struct ldr_rconn *c)
{
	char nrep[24], ms[24];
	snprintf(nrep, sizeof nrep, "%" PRIu64, b->cfg.wait_replicas);
	snprintf(ms, sizeof ms, "%" PRIu64, b->cfg.wait_ms);
	const char *argv[3] = {"WAIT", nrep, ms};
	redisReply *r = NULL;
	/* WAIT blocks up to wait_ms by design: the call's bound is that
	 * plus the usual timeout. */
	c->deadline = (int64_t)ldr_mono_ms() + (int64_t)b->cfg.wait_ms +
		      (int64_t)b->cfg.timeout_ms;
	int rc = ldr_rconn_cmd(c, &r, "WAIT", 3, argv, NULL);
	int shortfall = rc != 0 || r->type != REDIS_REPLY_INTEGER ||
			(uint64_t)r->integer < b->cfg.wait_replicas;
	if (shortfall)
		ldr_count(b->base.db, LARDER_CTR_REDIS_WAIT_SHORT);
	if (rc == 0 && r->type == REDIS_REPLY_INTEGER &&
	    (uint64_t)r->integer < b->cfg.wait_replicas)
		ldr_log(b->base.db, LARDER_LOG_WARN,
			"Redis WAIT at %s: %lld of %" PRIu64
			" replicas acknowledged the publish within %" PRIu64
			" ms",
			b->cfg.shown, r->integer, b->cfg.wait_replicas,
			b->cfg.wait_ms);
	else if (rc)
		ldr_log(b->base.db, LARDER_LOG_WARN, "%s",
			larder_errmsg(b->base.db));
	ldr_rreply_free(r);
}

/* Whether a decoded header states the payload written and the stage's
 * name: NULL, or why not. */
static const char *header_mismatch(struct rstage *s, const ldr_hdr *h)
{
	uint8_t digest[16], name[16];
	ldr_hasher_digest(s->hs, digest);
	if (memcmp(h->payload_hash, digest, sizeof digest))
		return "its payload hash is not the payload's";
	char ns[LDR_MAX_NS + 1];
	if (h->ns_len > LDR_MAX_NS)
		return "it names another entry";
	memcpy(ns, h->ns, h->ns_len);
	ns[h->ns_len] = '\0';
	ldr_entry_hash(ns, h->key, h->key_len, h->ver, h->ver_len, name);
	if (memcmp(name, s->n.hash, sizeof name))
		return "it names another entry";
	return NULL;
}

/* A lease of this backend (r_lease_acquire), declared here for the
 * commit that settles it (stage_commit_lease). */
struct rlease {
	struct ldr_be_lease base;
	struct rbe *b;
	char key[KEYMAX];
	char rec[LDR_LEASE_TEXT_MAX];
	size_t reclen;
	uint64_t lease_ms, renew_ms, token;
	/* The renewer's (under b->rmu): the next in b->leases, the next
	 * renewal and the last that succeeded (CLOCK_MONOTONIC ms), whether
	 * it is being renewed right now (outside the lock), and whether it
	 * was found gone, or could not be renewed in time. */
	struct rlease *next;
	uint64_t due, last_ok;
	int busy;
	int lost;
	/* A commit gave it back (stage_commit_lease): held_then says
	 * whether it was still ours at that commit. */
	int settled, held_then;
};

/* The commit script's arguments, in its order (KEYS, then ARGV). */
enum {
	A_M,	 /* P{E}:m */
	A_NS,	 /* Pns */
	A_SET,	 /* Pn:<ns> */
	A_CH,	 /* P{K}:p */
	A_HEAD,	 /* P{K}:h */
	A_LEASE, /* P{K}:l */
	A_MAN,	 /* the manifest */
	A_PFX,	 /* P{E}:c: */
	A_TTL,	 /* ms, 0: none */
	A_NSN,	 /* the namespace */
	A_E,	 /* E */
	A_HT,	 /* the head's value ('': leave it) */
	A_REC,	 /* the lease's record ('': none) */
	A_N
};
#define COMMIT_KEYS 6

/* Settle's reply into l: 1 settled (held_then set), 0 not (the
 * manifest was another's: -1), or a code. */
static int settled(struct rbe *b, struct rlease *l, const redisReply *r)
{
	if (r->type != REDIS_REPLY_INTEGER)
		return ldr_fail(b->base.db, LARDER_EIO, 0,
				"Redis commit at %s: unexpected reply to the "
				"lease's settlement",
				b->cfg.shown);
	if (r->integer < 0)
		return 0;
	if (l) {
		l->settled = 1;
		l->held_then = r->integer == 1;
	}
	return 1;
}

/* A commit prepared (prepare): its arguments, in the commit script's
 * order, and what they point into. */
struct rcommit {
	struct rstage *s;
	struct rlease *l;
	char m[KEYMAX], ns[KEYMAX], set[KEYMAX + LDR_MAX_NS], ch[KEYMAX],
	    head[KEYMAX], lk[KEYMAX], ttls[24], e[33];
	char *man;   /* the manifest, malloc'ed */
	uint8_t *ht; /* the head's value, malloc'ed (NULL: none) */
	const char *argv[A_N];
	size_t lens[A_N];
	int inl;     /* the payload goes inline in the manifest */
	int settle;  /* settle_lua goes behind the inline commit */
	int headset; /* the head's SET goes with the commit (a put) */
	int nsadd;   /* the SADD to Pns was sent (ns_fresh said no) */
	int piped;   /* settle_lua was pipelined by EVALSHA */
	int late;    /* published, settle_lua still to run (after a batch) */
};

static void prepared_free(struct rcommit *pc)
{
	free(pc->man);
	free(pc->ht);
	pc->man = NULL;
	pc->ht = NULL;
}

/* Check the header against what was written and build the commit's
 * arguments; a chunked stage's last chunk is sent. 0 or a code
 * (nothing published). */
static int prepare(struct rcommit *pc, struct rstage *s, const void *hdr,
		   size_t hlen, unsigned flags, uint64_t token,
		   struct rlease *l)
{
	struct rbe *b = s->b;
	larder *db = b->base.db;
	memset(pc, 0, sizeof *pc);
	pc->s = s;
	pc->l = l;
	if (s->failed)
		return ldr_fail(db, LARDER_EINVAL, 0,
				"commit after a failed write: nothing "
				"published to Redis");
	if (hlen + s->stored > b->cfg.max_entry)
		return refuse_full(b, hlen + s->stored, 1);
	ldr_hdr h;
	const char *why = NULL;
	if (ldr_hdr_decode(&h, hdr, hlen, &why) || h.hdr_len != hlen)
		why = why && *why ? why : "its length is not the header's";
	else if (h.stored_len != s->stored)
		why = "its length is not the payload's";
	else
		why = header_mismatch(s, &h);
	if (why)
		return ldr_fail(db, LARDER_EINVAL, 0,
				"Redis commit at %s: the header does not "
				"describe the payload written (%s)",
				b->cfg.shown, why);
	size_t htlen = 0;
	if (!(flags & LDR_BE_NO_HEAD)) {
		/* The head's value as head_set writes it: the hint, then
		 * the setter's token. */
		if (!(pc->ht = hint_bytes(s->n.ver, s->n.vlen, &htlen)))
			return ldr_fail(db, LARDER_ENOMEM, ENOMEM,
					"out of memory");
		cat_u64((char *)pc->ht + htlen, l ? l->token : token,
			TOKEN_DIGITS);
		htlen += TOKEN_DIGITS;
	}
	/* An entry smaller than a chunk, still all in the buffer, goes
	 * inline in its manifest: one round trip to publish, one to read. */
	pc->inl = s->nchunks == 0 && s->blen <= INLINE_MAX;
	size_t extra = pc->inl ? s->blen : 0;
	int rc;
	if (!pc->inl && s->blen) {
		if (!s->c && !(s->c = take(b)))
			return LARDER_ENOMEM;
		ldr_rconn_begin(s->c);
		if ((rc = flush_chunk(s)))
			return rc;
	}
	/* The entry's expiry as Redis's TTL; the header's expires is still
	 * checked by every reader. */
	uint64_t ttl = 0;
	if (h.expires) {
		int64_t left = (h.expires - ldr_now_ns()) / 1000000;
		ttl = left > 0 ? (uint64_t)left : 1;
	}
	/* "larder-manifest 1 STAGE CHUNK NCHUNKS STORED HLEN\n": 18 + 32
	 * bytes and four numbers of at most 20 digits. */
	char line[200], *e = cat_s(line, "larder-manifest 1 ");
	e = cat_s(e, s->stage);
	*e++ = ' ';
	e = cat_u64(e, CHUNK, 0);
	*e++ = ' ';
	e = cat_u64(e, s->nchunks, 0);
	*e++ = ' ';
	e = cat_u64(e, s->stored, 0);
	*e++ = ' ';
	e = cat_u64(e, hlen, 0);
	*e++ = '\n';
	int ll = (int)(e - line);
	if (!(pc->man = malloc((size_t)ll + hlen + extra)))
		return ldr_fail(db, LARDER_ENOMEM, ENOMEM, "out of memory");
	memcpy(pc->man, line, (size_t)ll);
	memcpy(pc->man + ll, hdr, hlen);
	if (extra)
		memcpy(pc->man + ll + hlen, s->buf, extra);
	tagged(pc->m, sizeof pc->m, b, s->n.hash, ":m");
	/* The prefix (< 64 bytes) and the namespace (<= 64) fit. */
	*cat_s(cat_s(pc->ns, b->cfg.prefix), "ns") = '\0';
	e = cat_s(cat_s(pc->set, b->cfg.prefix), "n:");
	*cat_s(e, s->ns) = '\0';
	tagged(pc->ch, sizeof pc->ch, b, s->n.khash, ":p");
	tagged(pc->head, sizeof pc->head, b, s->n.khash, ":h");
	tagged(pc->lk, sizeof pc->lk, b, s->n.khash, ":l");
	*cat_u64(pc->ttls, ttl, 0) = '\0';
	hex32(pc->e, s->n.hash);
	const char *argv[A_N] = {
	    pc->m,	    pc->ns, pc->set, pc->ch,
	    pc->head,	    pc->lk, pc->man, s->pfx,
	    pc->ttls,	    s->ns,  pc->e,   pc->ht ? (const char *)pc->ht : "",
	    l ? l->rec : ""};
	size_t lens[A_N] = {strlen(pc->m),
			    strlen(pc->ns),
			    strlen(pc->set),
			    strlen(pc->ch),
			    strlen(pc->head),
			    strlen(pc->lk),
			    (size_t)ll + hlen + extra,
			    strlen(s->pfx),
			    strlen(pc->ttls),
			    strlen(s->ns),
			    32,
			    htlen,
			    l ? l->reclen : 0};
	memcpy(pc->argv, argv, sizeof argv);
	memcpy(pc->lens, lens, sizeof lens);
	/* A put (no lease, token 0: the head always set) needs no script
	 * for its head: a plain SET among the inline commit's commands.
	 * Where a manifest of the same name stood, the head still names
	 * an entry that stands, as a put to a directory leaves it. */
	pc->headset = pc->inl && htlen && !l && token == 0;
	pc->settle = (htlen && !pc->headset) || l;
	return 0;
}

/* The settlement's arguments (settle_lua). */
#define SETTLE_ARGS(pc)                                                        \
	const char *sv[6] = {(pc)->argv[A_M],	  (pc)->argv[A_HEAD],          \
			     (pc)->argv[A_LEASE], (pc)->s->stage,              \
			     (pc)->argv[A_HT],	  (pc)->argv[A_REC]};          \
	size_t svl[6] = {(pc)->lens[A_M],     (pc)->lens[A_HEAD],              \
			 (pc)->lens[A_LEASE], 32,                              \
			 (pc)->lens[A_HT],    (pc)->lens[A_REC]}

/* Whether namespace ns was added to Pns by this backend within
 * NS_FRESH_MS (then a put skips that SADD: nothing removes a namespace
 * from the set, and one lost with the set comes back within that long).
 * ns_added records a SADD's success. */
static int ns_fresh(struct rbe *b, const char *ns)
{
	uint64_t h = ldr_xxh64(ns, strlen(ns)), now = ldr_mono_ms();
	int fresh = 0;
	pthread_mutex_lock(&b->mu);
	for (int i = 0; i < NS_MEMO; i++)
		if (b->nsmemo[i].at && b->nsmemo[i].h == h &&
		    now - b->nsmemo[i].at < NS_FRESH_MS)
			fresh = 1;
	pthread_mutex_unlock(&b->mu);
	return fresh;
}

static void ns_added(struct rbe *b, const char *ns)
{
	uint64_t h = ldr_xxh64(ns, strlen(ns)), now = ldr_mono_ms();
	pthread_mutex_lock(&b->mu);
	int at = 0; /* its slot, else the oldest */
	for (int i = 0; i < NS_MEMO; i++) {
		if (b->nsmemo[i].h == h) {
			at = i;
			break;
		}
		if (b->nsmemo[i].at < b->nsmemo[at].at)
			at = i;
	}
	b->nsmemo[at].h = h;
	b->nsmemo[at].at = now ? now : 1;
	pthread_mutex_unlock(&b->mu);
}

/* An inline entry's commit where no manifest stands, without Lua and
 * without MULTI/EXEC: the namespace sets, the manifest's SET NX (it
 * never replaces one), PUBLISH and, for a put, the head, pipelined: one
 * round trip of plain commands. Lua cost a 4 KiB publish twice a bare
 * SET, because the payload passed through the script is copied, and
 * each redis.call a few microseconds of the server's; MULTI/EXEC and
 * every command more about a microsecond each. Their order makes any
 * prefix of them harmless, should the connection drop mid-way: a set
 * member with no manifest is dropped by the next walk, a manifest
 * without its PUBLISH is found by a waiter's polling, and one without
 * its head leaves the head lagging, as a hint may. The SADD to the set
 * of namespaces is left out while ns_fresh. A put's head, with no
 * lease nor token to judge, is a plain SET: where a manifest of the
 * same name stood, the head still names an entry that stands, as a put
 * to a directory leaves it. A fill's head and lease (settle_lua, small
 * arguments) go right behind, in the same round trip. inline_send
 * queues it on c, inline_take reads its replies: 0, published; 1, a
 * manifest stands (the commit script judges it: whole, ours, or broken,
 * and settles); or a code. The sets and the message are harmless when
 * it stands: the entry is in them already, and a waiter woken looks
 * and finds it. Sent behind one another on one connection, many
 * commits cost one round trip (commit_many). */
static int inline_send(struct ldr_rconn *c, struct rcommit *pc)
{
	const char *const *argv = pc->argv;
	const size_t *lens = pc->lens;
	const char *set[6] = {"SET", argv[A_M], argv[A_MAN],
			      "NX",  "PX",	argv[A_TTL]};
	size_t setl[6] = {3, lens[A_M], lens[A_MAN], 2, 2, lens[A_TTL]};
	int setc = strcmp(argv[A_TTL], "0") ? 6 : 4; /* ttl 0: none */
	const char *sa1[3] = {"SADD", argv[A_NS], argv[A_NSN]};
	size_t sa1l[3] = {4, lens[A_NS], lens[A_NSN]};
	const char *sa2[3] = {"SADD", argv[A_SET], argv[A_E]};
	size_t sa2l[3] = {4, lens[A_SET], lens[A_E]};
	const char *pub[3] = {"PUBLISH", argv[A_CH], argv[A_E]};
	size_t publ[3] = {7, lens[A_CH], lens[A_E]};
	const char *hs[3] = {"SET", argv[A_HEAD], argv[A_HT]};
	size_t hsl[3] = {3, lens[A_HEAD], lens[A_HT]};
	int rc;
	pc->nsadd = !ns_fresh(pc->s->b, argv[A_NSN]);
	if ((pc->nsadd && (rc = ldr_rconn_append(c, "SADD", 3, sa1, sa1l))) ||
	    (rc = ldr_rconn_append(c, "SADD", 3, sa2, sa2l)) ||
	    (rc = ldr_rconn_append(c, "SET manifest", setc, set, setl)) ||
	    (rc = ldr_rconn_append(c, "PUBLISH", 3, pub, publ)) ||
	    (pc->headset && (rc = ldr_rconn_append(c, "SET head", 3, hs, hsl))))
		return rc;
	pc->piped = 0;
	if (pc->settle) {
		SETTLE_ARGS(pc);
		pc->piped =
		    ldr_rconn_append_evalsha(c, &settle_lua, 3, 6, sv, svl);
		if (pc->piped < 0)
			return pc->piped;
	}
	return 0;
}

/* last: nothing is queued behind this commit on c (a NOSCRIPT reply to
 * its settlement can then be answered by EVAL at once; else the
 * settlement is left to lease_release and the head lags). */
static int inline_take(struct ldr_rconn *c, struct rcommit *pc, int last)
{
	struct rbe *b = pc->s->b;
	redisReply *r = NULL;
	int rc = 0;
	/* The replies in the order sent; on an error the rest are left
	 * unread, and the connection, out of step, is not pooled again. */
	int n = pc->nsadd + 3 + pc->headset, man = pc->nsadd + 1, stood = 0;
	for (int i = 0; i < n; i++) {
		if ((rc = ldr_rconn_reply(c, &r, "commit")))
			return rc;
		if (i == man)
			stood = r->type == REDIS_REPLY_NIL;
		ldr_rreply_free(r);
		r = NULL;
	}
	rc = stood;
	if (pc->nsadd)
		ns_added(b, pc->s->ns);
	if (!pc->settle || rc < 0)
		return rc;
	/* The settlement: its reply read even when the manifest stood
	 * (it then did nothing), so that the connection stays in step. A
	 * failure here leaves the entry published: the head lags, and the
	 * lease is given back by lease_release as usual. */
	SETTLE_ARGS(pc);
	int src = 0;
	if (pc->piped && last)
		src = ldr_rconn_eval_reply(c, &settle_lua, &r, 3, 6, sv, svl);
	else if (pc->piped)
		src = ldr_rconn_reply(c, &r, "script settle");
	else if (rc == 0 && last)
		src = ldr_rconn_eval(c, &settle_lua, &r, 3, 6, sv, svl);
	else if (rc == 0)
		pc->late = 1; /* the script was not loaded: after the batch */
	if (src < 0 && rc == 0 && !last && c->c) {
		/* NOSCRIPT in a batch: run by EVAL after it (a settlement
		 * is safe to run again: compare-and-delete, and the head's
		 * compare-and-set). */
		pc->late = 1;
		src = 0;
		ldr_clear_error(b->base.db);
	}
	if (src == 0 && r && rc == 0)
		(void)settled(b, pc->l, r);
	ldr_rreply_free(r);
	if (src < 0 && rc == 0)
		ldr_log(b->base.db, LARDER_LOG_WARN,
			"published, but the head and the lease were not "
			"settled: %s",
			larder_errmsg(b->base.db));
	return rc;
}

/* The commit script for pc (a chunked entry, or an inline one whose
 * manifest stood), behind the chunks in flight on s->c. */
static int commit_script(struct rcommit *pc)
{
	struct rstage *s = pc->s;
	struct rbe *b = s->b;
	larder *db = b->base.db;
	redisReply *r = NULL;
	int rc;
	if (!s->c && !(s->c = take(b)))
		return LARDER_ENOMEM;
	ldr_rconn_begin(s->c);
	/* The commit goes right behind the chunks' SETs: one round trip
	 * for both. Its script finds a chunk whose SET failed missing
	 * ("lost"), so nothing is published on a failure read below. */
	int piped = ldr_rconn_append_evalsha(s->c, &commit_lua, COMMIT_KEYS,
					     A_N, pc->argv, pc->lens);
	if (piped < 0)
		return piped;
	while (s->c->pending > piped)
		if ((rc = chunk_reply(s)))
			return rc;
	if (piped)
		rc = ldr_rconn_eval_reply(s->c, &commit_lua, &r, COMMIT_KEYS,
					  A_N, pc->argv, pc->lens);
	else
		rc = ldr_rconn_eval(s->c, &commit_lua, &r, COMMIT_KEYS, A_N,
				    pc->argv, pc->lens);
	if (rc)
		goto out;
	if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
	    (r->element[0]->type != REDIS_REPLY_STATUS &&
	     r->element[0]->type != REDIS_REPLY_STRING)) {
		rc = ldr_fail(db, LARDER_EIO, 0,
			      "Redis commit at %s: unexpected reply",
			      b->cfg.shown);
		goto out;
	}
	(void)settled(b, pc->l, r->element[1]);
	const char *word = r->element[0]->str;
	if (strcmp(word, "exists") == 0)
		rc = LARDER_EXISTS;
	else if (strcmp(word, "lost") == 0)
		rc = ldr_fail(db, LARDER_EIO, 0,
			      "Redis commit at %s: a chunk of the entry was "
			      "evicted before its commit; nothing published",
			      b->cfg.shown);
out:
	ldr_rreply_free(r);
	return rc;
}

/* After a commit's answer: the replicas, and the stage freed. */
static int commit_end(struct rcommit *pc, int rc)
{
	struct rstage *s = pc->s;
	if (rc == 0 && s->b->cfg.wait_replicas && s->c)
		wait_replicas(s->b, s->c);
	prepared_free(pc);
	stage_free(s, rc == LARDER_EXISTS ? 0 : rc);
	return rc;
}

/* stage_commit, and stage_commit_lease with l (NULL: none, the head set
 * with `token`). */
static int commit(struct rstage *s, const void *hdr, size_t hlen,
		  unsigned flags, uint64_t token, struct rlease *l)
{
	struct rcommit pc;
	int rc = prepare(&pc, s, hdr, hlen, flags, token, l);
	if (rc)
		return commit_end(&pc, rc);
	if (pc.inl) {
		if (!s->c && !(s->c = take(s->b)))
			return commit_end(&pc, LARDER_ENOMEM);
		ldr_rconn_begin(s->c);
		if (!(rc = inline_send(s->c, &pc)))
			rc = inline_take(s->c, &pc, 1);
		if (rc <= 0)
			return commit_end(&pc, rc);
	}
	return commit_end(&pc, commit_script(&pc));
}

static int r_stage_commit(struct ldr_stage *st, const void *hdr, size_t hlen,
			  unsigned flags, uint64_t token)
{
	return commit((struct rstage *)st, hdr, hlen, flags, token, NULL);
}

static int r_stage_commit_lease(struct ldr_stage *st, const void *hdr,
				size_t hlen, unsigned flags,
				struct ldr_be_lease *bl)
{
	if (bl->be != st->be) {
		/* Only a lease of this very backend can be settled in its
		 * commit (the tier passes no other). */
		r_stage_abort(st);
		return ldr_fail(st->be->db, LARDER_EINVAL, 0,
				"Redis commit: the lease is another backend's");
	}
	return commit((struct rstage *)st, hdr, hlen, flags, 0,
		      (struct rlease *)bl);
}

/* Batch put (backend.h, stage_commit_many): every inline entry's commit
 * queued on one connection before the first reply is read, so that n
 * small entries cost one round trip; an entry in chunks, or one whose
 * manifest stood, is committed on its own after. A broken connection,
 * or an error reply in the batch (the replies would be out of step),
 * fails the commits whose answers were not yet read. */
static void r_stage_commit_many(struct ldr_stage **st, size_t n,
				const void *const *hdr, const size_t *hlen,
				unsigned flags, int *rcs)
{
	enum { Q_DONE, Q_BATCH, Q_ALONE };
	if (!n)
		return;
	struct rbe *b = ((struct rstage *)st[0])->b;
	struct rcommit *pc = calloc(n, sizeof *pc);
	int *q = calloc(n, sizeof *q);
	if (!pc || !q) {
		int rc = ldr_fail(b->base.db, LARDER_ENOMEM, ENOMEM,
				  "out of memory");
		for (size_t i = 0; i < n; i++) {
			r_stage_abort(st[i]);
			rcs[i] = rc;
		}
		free(pc);
		free(q);
		return;
	}
	struct ldr_rconn *c = NULL;
	size_t last = n; /* the last commit of the batch */
	for (size_t i = 0; i < n; i++) {
		struct rstage *s = (struct rstage *)st[i];
		int rc = prepare(&pc[i], s, hdr[i], hlen[i], flags, 0, NULL);
		if (!rc && pc[i].inl && !s->c && !c && !(c = take(b)))
			rc = LARDER_ENOMEM;
		if (rc) {
			rcs[i] = commit_end(&pc[i], rc);
			q[i] = Q_DONE;
		} else if (pc[i].inl && !s->c) {
			q[i] = Q_BATCH;
			last = i;
		} else {
			q[i] = Q_ALONE;
		}
	}
	int rc = 0;
	if (c) {
		ldr_rconn_begin(c);
		for (size_t i = 0; i < n && !rc; i++)
			if (q[i] == Q_BATCH)
				rc = inline_send(c, &pc[i]);
	}
	for (size_t i = 0; i < n; i++) {
		if (q[i] != Q_BATCH)
			continue;
		int r = rc ? rc : inline_take(c, &pc[i], i == last);
		if (r < 0 && !rc) {
			rc = r;
			ldr_rconn_close(c); /* out of step: not reused */
		}
		if (r == 1) {
			q[i] = Q_ALONE; /* a manifest stood: the script */
		} else if (pc[i].late && !rc) {
			rcs[i] = r; /* settled below, then ended */
		} else {
			rcs[i] = commit_end(&pc[i], r);
			q[i] = Q_DONE;
		}
	}
	/* Settlements that could not go in the batch (its script not yet
	 * known to this process, or NOSCRIPT), one by one: the first time
	 * only. */
	for (size_t i = 0; i < n; i++) {
		if (q[i] != Q_BATCH)
			continue;
		redisReply *r = NULL;
		SETTLE_ARGS(&pc[i]);
		if (!rc && c->c &&
		    ldr_rconn_eval(c, &settle_lua, &r, 3, 6, sv, svl) == 0)
			(void)settled(b, NULL, r);
		ldr_rreply_free(r);
		rcs[i] = commit_end(&pc[i], rcs[i]);
		q[i] = Q_DONE;
	}
	/* One WAIT covers every write of the batch's connection. */
	if (c && !rc && b->cfg.wait_replicas)
		wait_replicas(b, c);
	give(b, c, rc);
	for (size_t i = 0; i < n; i++)
		if (q[i] == Q_ALONE)
			rcs[i] = commit_end(&pc[i], commit_script(&pc[i]));
	free(pc);
	free(q);
}

/* ---------------------------------------------------------------------- */
/* Heads                                                                    */

static int head_set_conn(struct rbe *b, struct ldr_rconn *c,
			 const struct ldr_name *n, uint64_t token)
{
	size_t hl;
	uint8_t *hint = hint_bytes(n->ver, n->vlen, &hl);
	if (!hint)
		return ldr_fail(b->base.db, LARDER_ENOMEM, ENOMEM,
				"out of memory");
	char key[KEYMAX], tok[TOKEN_DIGITS + 1];
	tagged(key, sizeof key, b, n->khash, ":h");
	snprintf(tok, sizeof tok, "%020" PRIu64, token);
	const char *argv[3] = {key, (const char *)hint, tok};
	size_t lens[3] = {strlen(key), hl, TOKEN_DIGITS};
	redisReply *r = NULL;
	int rc = ldr_rconn_eval(c, &head_set_lua, &r, 1, 3, argv, lens);
	ldr_rreply_free(r);
	free(hint);
	return rc;
}

static int r_head_set(struct ldr_backend *be, const struct ldr_name *n,
		      uint64_t token)
{
	struct rbe *b = (struct rbe *)be;
	struct ldr_rconn *c = take(b);
	int rc = c ? head_set_conn(b, c, n, token) : LARDER_ENOMEM;
	give(b, c, rc);
	return rc;
}

/* A head's reply: the version it names (malloc'ed), or
 * LARDER_ENOTFOUND when there is none or it is no hint of ours. */
static int head_take(struct rbe *b, const redisReply *r, uint8_t **ver,
		     size_t *vlen)
{
	*ver = NULL;
	*vlen = 0;
	if (r->type != REDIS_REPLY_STRING || r->len < 32 + TOKEN_DIGITS)
		return LARDER_ENOTFOUND;
	const uint8_t *p = (const uint8_t *)r->str;
	size_t len = r->len - TOKEN_DIGITS;
	uint32_t vl = (uint32_t)p[12] | (uint32_t)p[13] << 8 |
		      (uint32_t)p[14] << 16 | (uint32_t)p[15] << 24;
	uint8_t sum[16];
	if (memcmp(p, HEAD_MAGIC, 8) != 0 || vl > LDR_MAX_VER ||
	    len != 32 + (size_t)vl)
		return LARDER_ENOTFOUND;
	ldr_xxh128(p, 16 + (size_t)vl, sum);
	if (memcmp(sum, p + 16 + vl, 16) != 0)
		return LARDER_ENOTFOUND;
	if (!(*ver = malloc(vl ? vl : 1)))
		return ldr_fail(b->base.db, LARDER_ENOMEM, ENOMEM,
				"out of memory");
	memcpy(*ver, p + 16, vl);
	*vlen = vl;
	return 0;
}

/* Batch heads (backend.h): every GET before the first reply. A
 * connection that fails fails what is not yet read. */
static void r_head_get_many(struct ldr_backend *be, const struct ldr_name *n,
			    size_t count, uint8_t **ver, size_t *vlen, int *rcs)
{
	struct rbe *b = (struct rbe *)be;
	for (size_t i = 0; i < count; i++) {
		ver[i] = NULL;
		vlen[i] = 0;
		rcs[i] = LARDER_ENOMEM;
	}
	struct ldr_rconn *c = count ? take(b) : NULL;
	if (!c)
		return;
	int rc = 0;
	size_t asked = 0;
	for (; asked < count && !rc; asked++) {
		char key[KEYMAX];
		tagged(key, sizeof key, b, n[asked].khash, ":h");
		const char *argv[2] = {"GET", key};
		rc = ldr_rconn_append(c, "GET head", 2, argv, NULL);
	}
	for (size_t i = 0; i < count; i++) {
		redisReply *r = NULL;
		if (!rc && i < asked)
			rc = ldr_rconn_reply(c, &r, "GET head");
		rcs[i] = rc ? rc : head_take(b, r, &ver[i], &vlen[i]);
		ldr_rreply_free(r);
	}
	give(b, c, rc);
}

static int r_head_get(struct ldr_backend *be, const struct ldr_name *n,
		      uint8_t **ver, size_t *vlen)
{
	struct rbe *b = (struct rbe *)be;
	*ver = NULL;
	*vlen = 0;
	struct ldr_rconn *c = take(b);
	if (!c)
		return LARDER_ENOMEM;
	char key[KEYMAX];
	tagged(key, sizeof key, b, n->khash, ":h");
	const char *argv[2] = {"GET", key};
	redisReply *r = NULL;
	int rc = ldr_rconn_cmd(c, &r, "GET head", 2, argv, NULL);
	if (rc)
		goto out;
	rc = head_take(b, r, ver, vlen);
out:
	ldr_rreply_free(r);
	give(b, c, rc);
	return rc;
}

static int r_head_drop(struct ldr_backend *be, const struct ldr_name *n)
{
	struct rbe *b = (struct rbe *)be;
	size_t hl;
	uint8_t *hint = hint_bytes(n->ver, n->vlen, &hl);
	if (!hint)
		return ldr_fail(be->db, LARDER_ENOMEM, ENOMEM, "out of memory");
	char key[KEYMAX];
	tagged(key, sizeof key, b, n->khash, ":h");
	const char *argv[2] = {key, (const char *)hint};
	size_t lens[2] = {strlen(key), hl};
	redisReply *r = NULL;
	struct ldr_rconn *c = take(b);
	int rc = c ? ldr_rconn_eval(c, &head_drop_lua, &r, 1, 2, argv, lens)
		   : LARDER_ENOMEM;
	give(b, c, rc);
	if (!rc) /* 1 dropped, 0 it names another version or none */
		rc = r->type == REDIS_REPLY_INTEGER && r->integer == 1;
	ldr_rreply_free(r);
	free(hint);
	return rc;
}

/* ---------------------------------------------------------------------- */
/* Leases                                                                   */

#define REC_FMT                                                                \
	"larder-lease 1\nhost %-63.63s\nboot %-36.36s\npidns %020llu\n"        \
	"pid %020ld\nstart %020llu\nnonce %-32.32s\nlease_ms %020llu\n"

/* A record's fields into h; 0, or -1 if it is no record of ours. With
 * me, whether its holder is certainly gone is judged as the directory
 * judges it (a process of this host and boot that is no more), so that a
 * killed filler's herd need not wait for the server to expire it. */
static int parse_holder(const char *text, size_t len, int64_t pttl,
			const struct ldr_self *me, struct ldr_be_holder *h)
{
	memset(h, 0, sizeof *h);
	struct ldr_lease_rec *r = &h->rec;
	size_t n = len < sizeof r->text - 1 ? len : sizeof r->text - 1;
	memcpy(r->text, text, n);
	r->text[n] = '\0';
	r->len = n;
	r->size = (off_t)len;
	r->type = S_IFREG;
	h->ttl_ms = pttl;
	unsigned long long pidns, start, lease_ms, token;
	long pid;
	char host[64], boot[40], nonce[33];
	if (sscanf(r->text,
		   "larder-lease 1\nhost %63s\nboot %39s\npidns %llu\npid %ld\n"
		   "start %llu\nnonce %32s\nlease_ms %llu\ntoken %llu",
		   host, boot, &pidns, &pid, &start, nonce, &lease_ms,
		   &token) != 8) {
		r->garbage = "not a lease record";
		return -1;
	}
	snprintf(r->host, sizeof r->host, "%s", host);
	snprintf(r->boot, sizeof r->boot, "%s", boot);
	snprintf(r->nonce, sizeof r->nonce, "%s", nonce);
	r->pidns = pidns;
	r->pid = pid;
	r->start = start;
	r->lease_ms = lease_ms;
	r->counter = token;
	h->token = token;
	h->dead = me && ldr_lease_dead_here(r, me);
	return 0;
}

static int lease_delete(struct rbe *b, const char *key, const char *rec,
			size_t reclen);

/* The renewer's thread: renews each lease of the list as it falls due
 * (a compare-and-PEXPIRE, one at a time: a handle rarely holds more than
 * a few leases at once, and each call is bounded by the timeout), and
 * marks lost one found gone or not renewed for a whole lease. */
static void *renewer(void *arg)
{
	struct rbe *b = arg;
	pthread_mutex_lock(&b->rmu);
	while (!b->rstop) {
		uint64_t now = ldr_mono_ms(), next = UINT64_MAX;
		struct rlease *l = b->leases;
		for (; l; l = l->next) {
			if (!l->lost && l->due <= now)
				break;
			if (!l->lost && l->due < next)
				next = l->due;
		}
		if (!l) {
			if (next == UINT64_MAX && b->rmin)
				next = now + b->rmin;
			b->rwake = next;
			if (next == UINT64_MAX) {
				pthread_cond_wait(&b->rcv, &b->rmu);
			} else {
				struct timespec ts;
				clock_gettime(CLOCK_MONOTONIC, &ts);
				uint64_t ns = (uint64_t)ts.tv_nsec +
					      (next - now) * 1000000ull;
				ts.tv_sec += (time_t)(ns / 1000000000ull);
				ts.tv_nsec = (long)(ns % 1000000000ull);
				pthread_cond_timedwait(&b->rcv, &b->rmu, &ts);
			}
			b->rwake = 0;
			continue;
		}
		l->busy = 1;
		pthread_mutex_unlock(&b->rmu);
		char ms[24];
		snprintf(ms, sizeof ms, "%" PRIu64, l->lease_ms);
		const char *argv[3] = {l->key, l->rec, ms};
		size_t lens[3] = {strlen(l->key), l->reclen, strlen(ms)};
		redisReply *r = NULL;
		ldr_rconn_begin(&b->rconn);
		int rc = ldr_rconn_eval(&b->rconn, &lease_renew_lua, &r, 1, 3,
					argv, lens);
		int gone =
		    !rc && r->type == REDIS_REPLY_INTEGER && r->integer == 0;
		ldr_rreply_free(r);
		now = ldr_mono_ms();
		pthread_mutex_lock(&b->rmu);
		if (!rc && !gone)
			l->last_ok = now;
		/* Not renewed for a whole lease: by Redis's clock it has
		 * run out, or is about to. */
		if (gone || now - l->last_ok >= l->lease_ms)
			l->lost = 1;
		l->due = now + l->renew_ms;
		l->busy = 0;
		pthread_cond_broadcast(&b->rcv); /* a release may wait */
	}
	pthread_mutex_unlock(&b->rmu);
	return NULL;
}

/* Put l on the renewer's list, starting the renewer if this process has
 * none yet (the first lease, or the first in a child of a fork, which
 * inherits the list's memory but not the thread: that state is the
 * parent's, and is dropped). 0 or a code. */
static int renew_start(struct rbe *b, struct rlease *l)
{
	int e = 0;
	pid_t me = getpid();
	if (b->rpid && b->rpid != me) {
		/* A child: the lock may have been held by the parent's
		 * renewer at the fork. */
		pthread_mutex_init(&b->rmu, NULL);
		renewer_cond_init(b);
		b->leases = NULL;
		b->rpid = 0;
		b->rstop = 0;
		b->rwake = 0;
		b->rmin = 0;
		if (b->rconn.c)
			ldr_rconn_close(&b->rconn); /* our copy of its fd */
		ldr_rconn_init(&b->rconn, b->base.db, &b->cfg);
	}
	pthread_mutex_lock(&b->rmu);
	if (!b->rpid) {
		ldr_rconn_init(&b->rconn, b->base.db, &b->cfg);
		e = pthread_create(&b->rth, NULL, renewer, b);
		if (!e)
			b->rpid = me;
	}
	if (!e) {
		l->last_ok = ldr_mono_ms();
		l->due = l->last_ok + l->renew_ms;
		l->next = b->leases;
		b->leases = l;
		if (!b->rmin || l->renew_ms < b->rmin)
			b->rmin = l->renew_ms;
		/* Woken only if it would sleep past l's first renewal (an
		 * awake renewer looks at the list before it sleeps). */
		if (b->rwake && l->due < b->rwake)
			pthread_cond_broadcast(&b->rcv);
	}
	pthread_mutex_unlock(&b->rmu);
	if (e)
		return ldr_fail(b->base.db, LARDER_ENOMEM, e,
				"cannot start the Redis lease's renewer: %s",
				strerror(e));
	return 0;
}

/* Take l off the renewer's list, once the renewer is done with it. */
static void renew_stop(struct rbe *b, struct rlease *l)
{
	if (b->rpid != getpid())
		return; /* not on a list of this process's */
	pthread_mutex_lock(&b->rmu);
	while (l->busy)
		pthread_cond_wait(&b->rcv, &b->rmu);
	for (struct rlease **p = &b->leases; *p; p = &(*p)->next)
		if (*p == l) {
			*p = l->next;
			break;
		}
	pthread_mutex_unlock(&b->rmu);
}

/* The entry the lease script found standing, its manifest in r (NULL:
 * the script was not asked for it): read into f as r_read reads it, the
 * chunks on c, and r_read's answer. */
static int stood_read(struct rbe *b, struct ldr_rconn *c,
		      const struct ldr_name *n, const redisReply *r, size_t pre,
		      struct ldr_file *f)
{
	struct rread e = {.buf = NULL};
	int rc = manifest_take(b, r, pre, &e);
	if (rc)
		return rc;
	/* A chunked entry: its chunks as a read's second round trip. */
	rc = chunks_read(b, c, n, &e, pre, f);
	free(e.buf);
	return rc;
}

/* lease_acquire, and with f (lease_acquire_read) the entry that stands
 * read into f, its read's answer in *frc. */
static int lease_acquire(struct ldr_backend *be, const struct ldr_name *n,
			 const struct ldr_self *me, uint64_t lease_ms,
			 uint64_t renew_ms, struct ldr_be_lease **out,
			 uint64_t *token, struct ldr_be_holder *h, size_t epre,
			 struct ldr_file *f, int *frc)
{
	struct rbe *b = (struct rbe *)be;
	*out = NULL;
	*token = 0;
	struct rlease *l = calloc(1, sizeof *l);
	if (!l)
		return ldr_fail(be->db, LARDER_ENOMEM, ENOMEM, "out of memory");
	l->base.be = be;
	l->b = b;
	l->lease_ms = lease_ms;
	l->renew_ms = renew_ms ? renew_ms : (lease_ms / 4 ? lease_ms / 4 : 1);
	tagged(l->key, sizeof l->key, b, n->khash, ":l");
	uint8_t rnd[16];
	char nonce[33];
	ldr_random(rnd, sizeof rnd);
	hex32(nonce, rnd);
	char prefix[LDR_LEASE_TEXT_MAX];
	int pl = snprintf(prefix, sizeof prefix, REC_FMT, me->host, me->boot,
			  (unsigned long long)me->pidns, me->pid,
			  (unsigned long long)me->start, nonce,
			  (unsigned long long)lease_ms);
	char fence[KEYMAX], m[KEYMAX], pre[KEYMAX], ms[24];
	tagged(fence, sizeof fence, b, n->khash, ":f");
	tagged(m, sizeof m, b, n->hash, ":m");
	tagged(pre, sizeof pre, b, n->hash, ":c:");
	snprintf(ms, sizeof ms, "%" PRIu64, lease_ms);
	/* The look for the entry goes with the lease (a fill's miss, then
	 * one round trip): where it stands, no lease is taken; where it
	 * does not, the caller need not look again. */
	const char *argv[7] = {l->key, fence,	     m, prefix, ms,
			       pre,    f ? "1" : "0"};
	size_t lens[7] = {strlen(l->key), strlen(fence), strlen(m), (size_t)pl,
			  strlen(ms),	  strlen(pre),	 1};
	redisReply *r = NULL;
	struct ldr_rconn *c = take(b);
	int rc = c ? ldr_rconn_eval(c, &lease_acquire_lua, &r, 3, 7, argv, lens)
		   : LARDER_ENOMEM;
	if (!rc && r->type == REDIS_REPLY_ARRAY &&
	    (r->elements == 1 || r->elements == 2) &&
	    r->element[0]->type == REDIS_REPLY_INTEGER &&
	    r->element[0]->integer == 2) {
		/* An entry stands: no lease taken. Asked for it, the
		 * manifest came along: read it on the same connection. */
		if (f)
			*frc = r->elements == 2
				   ? stood_read(b, c, n, r->element[1], epre, f)
				   : LARDER_ENOTFOUND;
		give(b, c, f ? *frc : 0);
		rc = LDR_BE_LEASE_ENTRY;
		goto fail;
	}
	give(b, c, rc);
	if (rc)
		goto fail;
	if (r->type != REDIS_REPLY_ARRAY || r->elements != 3 ||
	    r->element[1]->type != REDIS_REPLY_STRING ||
	    r->element[2]->type != REDIS_REPLY_INTEGER ||
	    r->element[1]->len >= sizeof l->rec) {
		rc = ldr_fail(be->db, LARDER_EIO, 0,
			      "Redis lease at %s: unexpected reply",
			      b->cfg.shown);
		goto fail;
	}
	/* Our own record, there already: a retried call whose first
	 * reply was lost (redis_conn.c reconnects once). */
	if (r->element[0]->integer == 0 && r->element[1]->len > (size_t)pl &&
	    memcmp(r->element[1]->str, prefix, (size_t)pl) == 0) {
		struct ldr_be_holder mine;
		parse_holder(r->element[1]->str, r->element[1]->len, -1, NULL,
			     &mine);
		r->element[0]->integer = 1;
		r->element[2]->type = REDIS_REPLY_INTEGER;
		r->element[2]->integer = (long long)mine.token;
	}
	if (r->element[0]->integer == 0) {
		parse_holder(r->element[1]->str, r->element[1]->len,
			     r->element[2]->integer, me, h);
		rc = 1;
		goto fail;
	}
	memcpy(l->rec, r->element[1]->str, r->element[1]->len);
	l->reclen = r->element[1]->len;
	*token = l->token = (uint64_t)r->element[2]->integer;
	l->base.flags = LDR_BE_LEASE_LOOKED;
	ldr_rreply_free(r);
	r = NULL;
	if ((rc = renew_start(b, l))) {
		/* Without a renewer the lease would run out under us: give
		 * it back now. */
		(void)lease_delete(b, l->key, l->rec, l->reclen);
		free(l);
		return rc;
	}
	*out = &l->base;
	return 0;
fail:
	ldr_rreply_free(r);
	free(l);
	return rc;
}

static int r_lease_acquire(struct ldr_backend *be, const struct ldr_name *n,
			   const struct ldr_self *me, uint64_t lease_ms,
			   uint64_t renew_ms, struct ldr_be_lease **out,
			   uint64_t *token, struct ldr_be_holder *h)
{
	return lease_acquire(be, n, me, lease_ms, renew_ms, out, token, h, 0,
			     NULL, NULL);
}

static int r_lease_acquire_read(struct ldr_backend *be,
				const struct ldr_name *n,
				const struct ldr_self *me, uint64_t lease_ms,
				uint64_t renew_ms, struct ldr_be_lease **out,
				uint64_t *token, struct ldr_be_holder *h,
				size_t pre, struct ldr_file *f, int *frc)
{
	memset(f, 0, sizeof *f);
	f->fd = -1;
	*frc = LARDER_ENOTFOUND;
	return lease_acquire(be, n, me, lease_ms, renew_ms, out, token, h, pre,
			     f, frc);
}

static int r_lease_held(struct ldr_be_lease *bl)
{
	struct rlease *l = (struct rlease *)bl;
	if (l->settled) /* given back by its commit: its word then */
		return l->held_then;
	pthread_mutex_lock(&l->b->rmu);
	int lost = l->lost;
	pthread_mutex_unlock(&l->b->rmu);
	if (lost)
		return 0;
	/* Ask: the renewer's last word may be a lease period old. */
	struct ldr_rconn *c = take(l->b);
	if (!c)
		return 0;
	const char *argv[2] = {"GET", l->key};
	redisReply *r = NULL;
	int rc = ldr_rconn_cmd(c, &r, "GET lease", 2, argv, NULL);
	int held = !rc && r->type == REDIS_REPLY_STRING &&
		   r->len == l->reclen && memcmp(r->str, l->rec, r->len) == 0;
	ldr_rreply_free(r);
	give(l->b, c, rc);
	return held;
}

static int r_lease_observe(struct ldr_backend *be, const struct ldr_name *n,
			   struct ldr_be_holder *h)
{
	struct rbe *b = (struct rbe *)be;
	memset(h, 0, sizeof *h);
	char key[KEYMAX];
	tagged(key, sizeof key, b, n->khash, ":l");
	struct ldr_rconn *c = take(b);
	if (!c)
		return LARDER_ENOMEM;
	const char *g[2] = {"GET", key}, *t[2] = {"PTTL", key};
	redisReply *r = NULL, *tr = NULL;
	int rc;
	if ((rc = ldr_rconn_append(c, "GET lease", 2, g, NULL)) ||
	    (rc = ldr_rconn_append(c, "PTTL lease", 2, t, NULL)) ||
	    (rc = ldr_rconn_reply(c, &r, "GET lease")) ||
	    (rc = ldr_rconn_reply(c, &tr, "PTTL lease"))) {
		/* Nothing seen: a caller that reads h judges nothing. */
		h->blind = 1;
		goto out;
	}
	if (r->type != REDIS_REPLY_STRING) {
		rc = LARDER_ENOTFOUND;
		goto out;
	}
	/* PTTL -2: it expired between the two; -1: no expiry (garbage). */
	if (tr->type == REDIS_REPLY_INTEGER && tr->integer == -2) {
		rc = LARDER_ENOTFOUND;
		goto out;
	}
	struct ldr_self me;
	ldr_self_cached(&me, be->db);
	parse_holder(r->str, r->len,
		     tr->type == REDIS_REPLY_INTEGER ? tr->integer : -1, &me,
		     h);
out:
	ldr_rreply_free(r);
	ldr_rreply_free(tr);
	give(b, c, rc == LARDER_ENOTFOUND ? 0 : rc);
	return rc;
}

/* Compare-and-delete of the lease record text. 1, 0, or a code. */
static int lease_delete(struct rbe *b, const char *key, const char *rec,
			size_t reclen)
{
	const char *argv[2] = {key, rec};
	size_t lens[2] = {strlen(key), reclen};
	redisReply *r = NULL;
	struct ldr_rconn *c = take(b);
	int rc = c ? ldr_rconn_eval(c, &lease_del_lua, &r, 1, 2, argv, lens)
		   : LARDER_ENOMEM;
	if (!rc)
		rc = r->type == REDIS_REPLY_INTEGER && r->integer == 1;
	ldr_rreply_free(r);
	give(b, c, rc < 0 ? rc : 0);
	return rc;
}

static int r_lease_break(struct ldr_backend *be, const struct ldr_name *n,
			 const struct ldr_be_holder *h)
{
	struct rbe *b = (struct rbe *)be;
	char key[KEYMAX];
	tagged(key, sizeof key, b, n->khash, ":l");
	return lease_delete(b, key, h->rec.text, h->rec.len);
}

static void r_lease_release(struct ldr_be_lease *bl)
{
	struct rlease *l = (struct rlease *)bl;
	if (!bl)
		return;
	renew_stop(l->b, l);
	if (!l->settled)
		(void)lease_delete(l->b, l->key, l->rec, l->reclen);
	free(l);
}

/* ---------------------------------------------------------------------- */
/* Waiting                                                                  */

/* What a wait compares: whether the manifest is there, and the lease's
 * record. */
struct look {
	int entry;
	size_t len;
	char rec[LDR_LEASE_TEXT_MAX];
};

/* A wait from wait_begin to wait_end: the subscription, armed once
 * before the caller's last look, and what the last look saw. */
struct rwait {
	struct ldr_be_wait base;
	struct rbe *b;
	char m[KEYMAX], l[KEYMAX]; /* the manifest's and the lease's keys */
	int has_ver;
	struct ldr_rconn sc; /* its own: a subscribed one takes no other
			      * command */
	int sub;	     /* the subscription stands */
	struct look last;
	int64_t step;	    /* the backoff, kept between calls */
	int dead_told;	    /* the holder of `last` was told dead once */
	struct ldr_self me; /* for the same-host judgement */
};

/* Look at the manifest and the lease, within `end` too (CLOCK_MONOTONIC
 * ms): a wait on a server that does not answer ends at max_ms, not a
 * timeout later. */
static int look(struct rwait *w, struct look *lk, int64_t end)
{
	struct rbe *b = w->b;
	struct ldr_rconn *c = take(b);
	if (!c)
		return LARDER_ENOMEM;
	int clamped = c->deadline > end;
	if (clamped)
		c->deadline = end;
	const char *e[2] = {"EXISTS", w->m}, *g[2] = {"GET", w->l};
	redisReply *r = NULL, *lr = NULL;
	int rc;
	memset(lk, 0, sizeof *lk);
	if ((rc = ldr_rconn_append(c, "EXISTS manifest", 2, e, NULL)) ||
	    (rc = ldr_rconn_append(c, "GET lease", 2, g, NULL)) ||
	    (rc = ldr_rconn_reply(c, &r, "EXISTS manifest")) ||
	    (rc = ldr_rconn_reply(c, &lr, "GET lease")))
		goto out;
	lk->entry =
	    w->has_ver && r->type == REDIS_REPLY_INTEGER && r->integer == 1;
	if (lr->type == REDIS_REPLY_STRING) {
		lk->len = lr->len < sizeof lk->rec ? lr->len : sizeof lk->rec;
		memcpy(lk->rec, lr->str, lk->len);
	}
out:
	ldr_rreply_free(r);
	ldr_rreply_free(lr);
	give(b, c, clamped && rc == LARDER_ETIMEOUT ? 0 : rc);
	return rc;
}

/* Worth a look by the caller: a manifest appeared, or the lease changed
 * (taken, expired, broken). A manifest that stood already is not news:
 * the caller's look after wait_begin saw it. */
static int changed(const struct look *a, const struct look *b)
{
	return (b->entry && !a->entry) || a->len != b->len ||
	       memcmp(a->rec, b->rec, a->len);
}

/* No lease and no entry: nobody fills it, and the caller is to take the
 * lease. Not a change when the baseline was already free: a holder that
 * let go without publishing between the caller's look and wait_begin
 * leaves a baseline that every later look matches, and the wait would
 * sleep to its bound (the fill's whole wait limit). */
static int free_now(const struct look *lk)
{
	return !lk->entry && lk->len == 0;
}

/* Backoff steps: from 5 ms, doubling, jittered by up to a quarter so
 * that a herd's polls spread; capped at 100 ms while a subscription
 * stands (it is only the lease that is polled then) and 500 ms without. */
static int64_t next_step(int64_t step, int sub)
{
	int64_t cap = sub ? 100 : 500;
	step = step ? step * 2 : 5;
	if (step > cap)
		step = cap;
	uint16_t j;
	ldr_random(&j, sizeof j);
	return step - (int64_t)(j % (uint16_t)(step / 4 + 1));
}

/* Whether the lease seen is held by a process of this host that is
 * gone (parse_holder's judgement). */
static int holder_dead(const struct rwait *w, const struct look *lk)
{
	struct ldr_be_holder h;
	return lk->len && parse_holder(lk->rec, lk->len, -1, &w->me, &h) == 0 &&
	       h.dead;
}

static int r_wait_begin(struct ldr_backend *be, const struct ldr_name *n,
			struct ldr_be_wait **out)
{
	struct rbe *b = (struct rbe *)be;
	*out = NULL;
	struct rwait *w = calloc(1, sizeof *w);
	if (!w)
		return ldr_fail(be->db, LARDER_ENOMEM, ENOMEM, "out of memory");
	w->base.be = be;
	w->b = b;
	tagged(w->m, sizeof w->m, b, n->hash, ":m");
	tagged(w->l, sizeof w->l, b, n->khash, ":l");
	w->has_ver = n->ver != NULL || n->vlen != 0;
	ldr_self_cached(&w->me, be->db);
	ldr_rconn_init(&w->sc, be->db, &b->cfg);
	char ch[KEYMAX];
	tagged(ch, sizeof ch, b, n->khash, ":p");
	const char *argv[2] = {"SUBSCRIBE", ch};
	redisReply *r = NULL;
	ldr_rconn_begin(&w->sc);
	w->sub = ldr_rconn_cmd(&w->sc, &r, "SUBSCRIBE", 2, argv, NULL) == 0;
	ldr_rreply_free(r);
	/* The baseline, after the subscription: a change after it is news
	 * the wait reports, one before it is what the caller's own look
	 * sees. */
	if (look(w, &w->last, INT64_MAX))
		memset(&w->last, 0, sizeof w->last);
	ldr_clear_error(be->db); /* without them, waiting polls: no failure */
	*out = &w->base;
	return 0;
}

static int r_wait(struct ldr_be_wait *bw, uint64_t max_ms,
		  const volatile sig_atomic_t *cancel)
{
	struct rwait *w = (struct rwait *)bw;
	struct ldr_backend *be = bw->be;
	int64_t end = (int64_t)ldr_mono_ms() + (int64_t)max_ms;
	redisReply *r = NULL;
	struct look now;
	for (;;) {
		if (cancel && *cancel)
			return ldr_fail(be->db, LARDER_ECANCELED, 0,
					"wait for a Redis publish cancelled");
		int64_t left = end - (int64_t)ldr_mono_ms();
		if (left <= 0)
			return LDR_BE_WAIT_MORE;
		w->step = next_step(w->step, w->sub);
		int64_t t = w->step < left ? w->step : left;
		struct pollfd pf = {.fd = w->sub ? ldr_rconn_fd(&w->sc) : -1,
				    .events = POLLIN};
		int p = poll(&pf, 1, (int)t);
		if (p > 0 && w->sub) {
			ldr_rconn_begin(&w->sc);
			w->sc.pending = 1;
			int msg =
			    ldr_rconn_reply(&w->sc, &r, "subscription") == 0 &&
			    r->type == REDIS_REPLY_ARRAY && r->elements == 3 &&
			    r->element[0]->type == REDIS_REPLY_STRING &&
			    strcmp(r->element[0]->str, "message") == 0;
			ldr_rreply_free(r);
			r = NULL;
			if (msg) {
				/* A commit of this key: the caller reads. */
				w->step = 0;
				return 0;
			}
			if (!w->sc.c) {
				/* The subscription broke: poll on. */
				w->sub = 0;
				ldr_clear_error(be->db);
			}
		}
		if (look(w, &now, end) != 0)
			ldr_clear_error(be->db); /* a failed look: poll on */
		else if (changed(&w->last, &now)) {
			w->last = now;
			w->dead_told = 0;
			w->step = 0;
			return 0;
		} else if (free_now(&now)) {
			/* The backoff goes on: should the caller not get the
			 * lease either, its next looks stay spread. */
			return 0;
		} else if (!w->dead_told && holder_dead(w, &now)) {
			/* A killed holder's record stays until the server
			 * expires it: told once, so that the caller judges
			 * it dead and breaks it now. */
			w->dead_told = 1;
			w->step = 0;
			return 0;
		}
	}
}

static void r_wait_end(struct ldr_be_wait *bw)
{
	struct rwait *w = (struct rwait *)bw;
	if (!bw)
		return;
	ldr_rconn_close(&w->sc);
	free(w);
}

/* ---------------------------------------------------------------------- */
/* Listing                                                                  */

static int r_list_ns(struct ldr_backend *be, larder_ns_fn cb, void *p)
{
	struct rbe *b = (struct rbe *)be;
	char key[KEYMAX];
	snprintf(key, sizeof key, "%sns", b->cfg.prefix);
	const char *argv[2] = {"SMEMBERS", key};
	redisReply *r = NULL;
	struct ldr_rconn *c = take(b);
	int rc = c ? ldr_rconn_cmd(c, &r, "SMEMBERS namespaces", 2, argv, NULL)
		   : LARDER_ENOMEM;
	give(b, c, rc);
	if (rc)
		return rc;
	for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements;
	     i++) {
		const redisReply *e = r->element[i];
		if (e->type != REDIS_REPLY_STRING || e->len == 0 ||
		    e->len > LDR_MAX_NS || memchr(e->str, '\0', e->len))
			continue;
		if ((rc = cb(e->str, p)))
			break;
	}
	ldr_rreply_free(r);
	return rc;
}

static int unhex32(const char *s, size_t len, uint8_t out[16])
{
	if (len != 32)
		return -1;
	for (int i = 0; i < 32; i++)
		if (!((s[i] >= '0' && s[i] <= '9') ||
		      (s[i] >= 'a' && s[i] <= 'f')))
			return -1;
	for (int i = 0; i < 16; i++)
		out[i] =
		    (uint8_t)(hexval2(s[2 * i]) << 4 | hexval2(s[2 * i + 1]));
	return 0;
}

static int r_walk(struct ldr_backend *be, const char *ns,
		  int (*cb)(const uint8_t hash[16], const char *where, void *p),
		  void *p)
{
	struct rbe *b = (struct rbe *)be;
	char set[KEYMAX + LDR_MAX_NS], cursor[32] = "0";
	snprintf(set, sizeof set, "%sn:%s", b->cfg.prefix, ns);
	struct ldr_rconn *c = take(b);
	if (!c)
		return LARDER_ENOMEM;
	redisReply *r = NULL, *er = NULL;
	int rc = 0;
	do {
		ldr_rconn_begin(c);
		const char *argv[5] = {"SSCAN", set, cursor, "COUNT", "500"};
		if ((rc = ldr_rconn_cmd(c, &r, "SSCAN namespace", 5, argv,
					NULL)))
			break;
		if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
		    r->element[0]->type != REDIS_REPLY_STRING ||
		    r->element[1]->type != REDIS_REPLY_ARRAY) {
			rc = ldr_fail(be->db, LARDER_EIO, 0,
				      "Redis SSCAN at %s: unexpected reply",
				      b->cfg.shown);
			break;
		}
		snprintf(cursor, sizeof cursor, "%s", r->element[0]->str);
		const redisReply *m = r->element[1];
		/* Which members still have a manifest, in one round trip;
		 * the others are dropped from the set. */
		for (size_t i = 0; i < m->elements; i++) {
			char key[KEYMAX];
			snprintf(key, sizeof key, "%s{%.32s}:m", b->cfg.prefix,
				 m->element[i]->str ? m->element[i]->str : "");
			const char *ea[2] = {"EXISTS", key};
			if ((rc = ldr_rconn_append(c, "EXISTS manifest", 2, ea,
						   NULL)))
				goto out;
		}
		for (size_t i = 0; i < m->elements && !rc; i++) {
			if ((rc = ldr_rconn_reply(c, &er, "EXISTS manifest")))
				goto out;
			const redisReply *e = m->element[i];
			uint8_t h[16];
			int there =
			    er->type == REDIS_REPLY_INTEGER && er->integer == 1;
			ldr_rreply_free(er);
			er = NULL;
			if (e->type != REDIS_REPLY_STRING ||
			    unhex32(e->str, e->len, h))
				continue;
			if (!there) {
				const char *sa[3] = {"SREM", set, e->str};
				(void)ldr_rconn_append(c, "SREM", 3, sa, NULL);
				continue;
			}
			char where[sizeof b->cfg.shown + KEYMAX + 64];
			snprintf(where, sizeof where, "%s %s{%s}:m",
				 b->cfg.shown, b->cfg.prefix, e->str);
			rc = cb(h, where, p);
		}
		while (c->c && c->pending &&
		       ldr_rconn_reply(c, &er, "SREM") == 0) {
			ldr_rreply_free(er);
			er = NULL;
		}
		ldr_rreply_free(r);
		r = NULL;
	} while (!rc && strcmp(cursor, "0") != 0);
out:
	/* Read the SREMs' replies (and any left by a stop). */
	while (c->c && c->pending && ldr_rconn_reply(c, &er, "SREM") == 0) {
		ldr_rreply_free(er);
		er = NULL;
	}
	ldr_rreply_free(r);
	ldr_rreply_free(er);
	give(b, c, rc < 0 ? rc : 0);
	return rc;
}

void ldr_be_redis_where(const struct ldr_backend *be, const uint8_t hash[16],
			char *out, size_t size)
{
	const struct rbe *b = (const struct rbe *)be;
	char m[KEYMAX];
	tagged(m, sizeof m, b, hash, ":m");
	/* As r_walk names an entry, so that walk and inspect agree. */
	snprintf(out, size, "%s %s", b->cfg.shown, m);
}

const struct ldr_backend_ops ldr_be_redis_ops = {
    .version = LDR_BACKEND_VERSION,
    .kind = "redis",
    .caps = LDR_BE_NOTIFY | LDR_BE_SHARED,
    .open = r_open,
    .close = r_close,
    .read = r_read,
    .read_many = r_read_many,
    .reject = r_reject,
    .stage_begin = r_stage_begin,
    .stage_write = r_stage_write,
    .stage_commit = r_stage_commit,
    .stage_abort = r_stage_abort,
    .stage_commit_lease = r_stage_commit_lease,
    .stage_commit_many = r_stage_commit_many,
    .head_get_many = r_head_get_many,
    .remove = r_remove,
    .head_get = r_head_get,
    .head_set = r_head_set,
    .head_drop = r_head_drop,
    .lease_acquire = r_lease_acquire,
    .lease_acquire_read = r_lease_acquire_read,
    .lease_held = r_lease_held,
    .lease_observe = r_lease_observe,
    .lease_break = r_lease_break,
    .lease_release = r_lease_release,
    .wait_begin = r_wait_begin,
    .wait = r_wait,
    .wait_end = r_wait_end,
    .list_ns = r_list_ns,
    .walk = r_walk,
    .stats = r_stats,
};
