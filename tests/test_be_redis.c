/*
 * test_be_redis.c — the Redis backend (src/store/be_redis.c,
 * docs/backends.md section 3) against a private Redis that this program
 * starts (tests/redis/redis.sh) and stops by pid, also when it dies: a
 * guardian process holds a pipe from it and stops Redis when the pipe
 * closes. Every read is verified as the library verifies it
 * (ldr_entry_check, payload hashed); the backend itself never says
 * "good". Skipped (77) only where Redis cannot be installed.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "redis_run.h"
#include "store_util.h"
#include "testing.h"

static int64_t now_ns(void);

static char base[256];
static char uri[512];
static char password[128];
static int port;
static pid_t starter;

static struct redis_run main_run;

__attribute__((constructor)) static void redis_start(void)
{
	starter = getpid();
	int rc = redis_run_start(&main_run, REDIS_SH, "");
	if (rc == 77) {
		test_skip_all("redis.sh start: %s", main_run.env);
		return;
	}
	if (rc != 0)
		exit(1);
	char num[32];
	snprintf(base, sizeof base, "%s/redis", main_run.dir);
	redis_env_val(main_run.env, "REDIS_URI=", uri, sizeof uri);
	redis_env_val(main_run.env, "REDIS_PASSWORD=", password,
		      sizeof password);
	redis_env_val(main_run.env, "REDIS_PORT=", num, sizeof num);
	port = atoi(num);
}

__attribute__((destructor)) static void redis_stop(void)
{
	if (getpid() == starter)
		redis_run_stop(&main_run);
}

/* A handle for errors and counters: a store in the test's directory. */
static larder *db_open(void)
{
	return open_store();
}

static struct ldr_backend *be_open_uri(larder *db, const char *u)
{
	struct ldr_backend *be = NULL;
	ASSERT_RC(db, ldr_be_redis_ops.open(&be, db, u), 0);
	return be;
}

static struct ldr_backend *be_open(larder *db)
{
	return be_open_uri(db, uri);
}

static void name_of(struct ldr_name *n, const char *ns, const char *key,
		    const char *ver)
{
	memset(n, 0, sizeof *n);
	n->ns = ns;
	n->key = key;
	n->klen = strlen(key);
	n->ver = ver;
	n->vlen = ver ? strlen(ver) : 0;
	ldr_head_hash(ns, key, n->klen, n->khash);
	if (ver)
		ldr_entry_hash(ns, key, n->klen, ver, n->vlen, n->hash);
}

/* The start of most tests: a handle for errors and counters (db_open)
 * with the Redis backend on it, and the name of (ns, "k", ver) in *n. */
static struct ldr_backend *be_start(larder **db, struct ldr_name *n,
				    const char *ns, const char *ver)
{
	*db = db_open();
	name_of(n, ns, "k", ver);
	return be_open(*db);
}

/* Their end: be closed, and the handle it was opened on. */
static void be_end(struct ldr_backend *be)
{
	larder *db = be->db;
	be->ops->close(be);
	larder_close(db);
}

/* The header of an entry of `len` bytes whose payload hashes to sum. */
static uint8_t *header(const struct ldr_name *n, uint64_t len,
		       const uint8_t sum[16], int64_t expires, size_t *hlen)
{
	ldr_hdr h;
	memset(&h, 0, sizeof h);
	h.hdr_len = (uint32_t)ldr_hdr_padded_len(
	    ldr_hdr_min_len((uint32_t)strlen(n->ns), (uint32_t)n->klen,
			    (uint32_t)n->vlen, 0),
	    0);
	h.stored_len = h.raw_len = len;
	h.created = now_ns();
	h.expires = expires;
	memcpy(h.payload_hash, sum, 16);
	h.ns = (const uint8_t *)n->ns;
	h.ns_len = (uint32_t)strlen(n->ns);
	h.key = n->key;
	h.key_len = (uint32_t)n->klen;
	h.ver = n->ver;
	h.ver_len = (uint32_t)n->vlen;
	uint8_t *b = xmalloc(h.hdr_len);
	ldr_hdr_encode(&h, b);
	*hlen = h.hdr_len;
	return b;
}

/* Publish p[0, len) at n, written in pieces of `piece` bytes. */
static int publish(struct ldr_backend *be, const struct ldr_name *n,
		   const void *p, size_t len, size_t piece, int64_t expires,
		   uint64_t token)
{
	struct ldr_stage *s = NULL;
	int rc = be->ops->stage_begin(be, n, NULL, &s);
	if (rc)
		return rc;
	for (size_t at = 0; at < len; at += piece) {
		struct iovec v = {(uint8_t *)p + at,
				  len - at < piece ? len - at : piece};
		if ((rc = be->ops->stage_write(s, &v, 1))) {
			be->ops->stage_abort(s);
			return rc;
		}
	}
	uint8_t sum[16];
	size_t hlen;
	ldr_xxh128(p, len, sum);
	uint8_t *h = header(n, len, sum, expires, &hlen);
	rc = be->ops->stage_commit(s, h, hlen, 0, token);
	free(h);
	return rc;
}

/* Read n and verify it as the library does: LARDER_STATE_OK and the
 * payload (malloc'ed into *out), or the state / miss. */
static int read_verified(struct ldr_backend *be, const struct ldr_name *n,
			 uint8_t **out, size_t *len)
{
	struct ldr_file f;
	*out = NULL;
	*len = 0;
	int rc = be->ops->read(be, n, LDR_LOAD_WHOLE, 0, &f);
	if (rc)
		return rc;
	ASSERT_EQ(f.fd, -1);
	ASSERT_EQ(f.safe, 0);
	ldr_hdr h;
	const char *why = NULL;
	int state = ldr_entry_check(be->db, &f, "redis", n->ns, n->key, n->klen,
				    n->ver, n->vlen, LDR_CHECK_HASH, &h, &why);
	if (state != LARDER_STATE_OK) {
		be->ops->reject(be, n, &f, why);
		ldr_file_free(&f);
		return 100 + state;
	}
	*len = h.stored_len;
	*out = xmalloc(*len + 1);
	memcpy(*out, f.p + h.hdr_len, *len);
	ldr_file_free(&f);
	return 0;
}

/* n reads back, verified, as exactly p[0, len). */
static void read_is(struct ldr_backend *be, const struct ldr_name *n,
		    const void *p, size_t len)
{
	uint8_t *got;
	size_t glen;
	ASSERT_RC(be->db, read_verified(be, n, &got, &glen), 0);
	ASSERT_EQ(glen, len);
	ASSERT_MEM_EQ(got, p, len);
	free(got);
}

static void redis_cli(const char *args)
{
	ASSERT_EQ(test_sh("REDISCLI_AUTH=%s redis-cli -h 127.0.0.1 -p %d %s "
			  ">/dev/null 2>&1",
			  password, port, args),
		  0);
}

/* The output of a redis-cli command, first line. */
static void redis_out(const char *args, char *out, size_t n)
{
	char cmd[1024];
	snprintf(cmd, sizeof cmd,
		 "REDISCLI_AUTH=%s redis-cli -h 127.0.0.1 -p %d %s 2>/dev/null",
		 password, port, args);
	FILE *f = popen(cmd, "r");
	ASSERT(f);
	out[0] = '\0';
	if (!fgets(out, (int)n, f))
		out[0] = '\0';
	out[strcspn(out, "\r\n")] = '\0';
	pclose(f);
}

/* redis_out() of the command printf(fmt, ...) formats. */
__attribute__((format(printf, 3, 4))) static void
redis_outf(char *out, size_t n, const char *fmt, ...)
{
	char args[768];
	va_list ap;
	va_start(ap, fmt);
	int len = vsnprintf(args, sizeof args, fmt, ap);
	va_end(ap);
	ASSERT(len >= 0 && (size_t)len < sizeof args);
	redis_out(args, out, n);
}

/* The second line of a redis-cli command's output. */
static void redis_out2(const char *args, char *out, size_t n)
{
	char cmd[1024];
	snprintf(cmd, sizeof cmd,
		 "REDISCLI_AUTH=%s redis-cli -h 127.0.0.1 -p %d %s 2>/dev/null "
		 "| sed -n 2p",
		 password, port, args);
	FILE *f = popen(cmd, "r");
	out[0] = '\0';
	if (f && !fgets(out, (int)n, f))
		out[0] = '\0';
	out[strcspn(out, "\r\n")] = '\0';
	if (f)
		pclose(f);
}

static int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void hexs(char out[33], const uint8_t h[16])
{
	for (int i = 0; i < 16; i++)
		sprintf(out + 2 * i, "%02x", h[i]);
}

static int count_cb(const uint8_t hash[16], const char *where, void *p)
{
	(void)hash;
	(void)where;
	(*(int *)p)++;
	return 0;
}

/* ------------------------------------------------------------------ */

TEST(uri_forms_parse_and_mask_the_password)
{
	larder *db = db_open();
	struct ldr_redis_cfg c;
	ASSERT_RC(db, ldr_redis_parse(db, "redis://bob:s%40cret@h1:7000/3", &c),
		  0);
	ASSERT_STR_EQ(c.host, "h1");
	ASSERT_EQ(c.port, 7000);
	ASSERT_EQ(c.dbnum, 3);
	ASSERT_STR_EQ(c.user, "bob");
	ASSERT_STR_EQ(c.password, "s@cret");
	ASSERT(strstr(c.shown, "s%40cret") == NULL);
	ASSERT(strstr(c.shown, "***") != NULL);
	ASSERT_RC(db, ldr_redis_parse(db, "unix:///run/r.sock?db=2", &c), 0);
	ASSERT_STR_EQ(c.path, "/run/r.sock");
	ASSERT_EQ(c.dbnum, 2);
	ASSERT_RC(db,
		  ldr_redis_parse(db,
				  "redis+sentinel://:pw@a:1,b:2,c/mymaster/4"
				  "?timeout_ms=300",
				  &c),
		  0);
	ASSERT_EQ(c.nsent, 3);
	ASSERT_STR_EQ(c.shost[1], "b");
	ASSERT_EQ(c.sport[2], 26379);
	ASSERT_STR_EQ(c.master, "mymaster");
	ASSERT_EQ(c.dbnum, 4);
	ASSERT_EQ(c.timeout_ms, 300);
	setenv("LARDER_REDIS_PASSWORD", "fromenv", 1);
	ASSERT_RC(db, ldr_redis_parse(db, "redis://h", &c), 0);
	ASSERT_STR_EQ(c.password, "fromenv");
	ASSERT_EQ(c.port, 6379);
	ASSERT_EQ(c.timeout_ms, 2000);
	ASSERT_RC(db, ldr_redis_parse(db, "rediss://h", &c), LARDER_EINVAL);
	ASSERT_RC(db, ldr_redis_parse(db, "redis://:pw@h:99999", &c),
		  LARDER_EINVAL);
	ASSERT(strstr(larder_errmsg(db), "pw@") == NULL);
	/* The connection's messages show a URI as the tier does: the
	 * password masked, a user (with or without one) shown, the last '@'
	 * before the host ending the userinfo. */
	ASSERT_RC(db, ldr_redis_parse(db, "redis://larder@h:1/0", &c), 0);
	ASSERT_STR_EQ(c.user, "larder");
	ASSERT_STR_EQ(c.shown, "redis://larder@h:1/0");
	ASSERT_RC(db, ldr_redis_parse(db, "redis://u:p@ss@h:1/0", &c), 0);
	ASSERT_STR_EQ(c.password, "p@ss");
	ASSERT_STR_EQ(c.shown, "redis://u:***@h:1/0");
	larder_close(db);
}

TEST(publish_then_read_is_byte_exact)
{
	larder *db = db_open();
	struct ldr_backend *be = be_open(db);
	/* Inline in the manifest up to 256 KiB, then in chunks of 4 MiB;
	 * the edges on either side. */
	size_t sizes[] = {
	    0,	      4096,	256u << 10,    (256u << 10) + 1, (4u << 20) - 1,
	    4u << 20, 5u << 20, (8u << 20) + 1};
	for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
		char ver[32];
		snprintf(ver, sizeof ver, "v%zu", sizes[i]);
		struct ldr_name n;
		name_of(&n, "ns1", "k", ver);
		uint8_t *p = xmalloc(sizes[i] + 1);
		test_fill_pattern(p, sizes[i], 7 + i);
		uint8_t *got;
		size_t len;
		ASSERT_EQ(read_verified(be, &n, &got, &len), LARDER_ENOTFOUND);
		ASSERT_RC(db, publish(be, &n, p, sizes[i], 65536, 0, 0), 0);
		read_is(be, &n, p, sizes[i]);
		free(p);
	}
	/* The namespace and its entries are listed. */
	int count = 0;
	ASSERT_RC(db, be->ops->walk(be, "ns1", count_cb, &count), 0);
	ASSERT_EQ(count, 8);
	be_end(be);
}

TEST(first_writer_wins_between_two_stages)
{
	larder *db;
	struct ldr_name n;
	struct ldr_backend *be = be_start(&db, &n, "fw", "v1");
	/* Over one chunk each (4 MiB): chunks under two stage names. */
	size_t big = (5u << 20) + 1000;
	uint8_t *a = xmalloc(big), *b = xmalloc(big);
	test_fill_pattern(a, big, 1);
	test_fill_pattern(b, big, 2);
	struct ldr_stage *sa, *sb;
	ASSERT_RC(db, be->ops->stage_begin(be, &n, NULL, &sa), 0);
	ASSERT_RC(db, be->ops->stage_begin(be, &n, NULL, &sb), 0);
	struct iovec va = {a, big}, vb = {b, big};
	ASSERT_RC(db, be->ops->stage_write(sa, &va, 1), 0);
	ASSERT_RC(db, be->ops->stage_write(sb, &vb, 1), 0);
	uint8_t sum[16];
	size_t hl;
	ldr_xxh128(b, big, sum);
	uint8_t *hb = header(&n, big, sum, 0, &hl);
	ASSERT_RC(db, be->ops->stage_commit(sb, hb, hl, 0, 0), 0);
	free(hb);
	ldr_xxh128(a, big, sum);
	uint8_t *ha = header(&n, big, sum, 0, &hl);
	ASSERT_RC(db, be->ops->stage_commit(sa, ha, hl, 0, 0), LARDER_EXISTS);
	free(ha);
	read_is(be, &n, b, big);
	free(a);
	free(b);
	/* The loser's chunks are gone: only the winner's two stay. */
	char e[33], out[64];
	hexs(e, n.hash);
	redis_outf(out, sizeof out,
		   "eval \"return #redis.call('keys', "
		   "ARGV[1])\" 0 'larder:{%s}:c:*'",
		   e);
	ASSERT_STR_EQ(out, "2");
	be_end(be);
}

TEST(eight_processes_race_and_one_wins)
{
	larder *db = db_open();
	struct ldr_name n;
	name_of(&n, "race", "k", "v");
	int go[2], res[2];
	ASSERT(pipe(go) == 0 && pipe(res) == 0);
	pid_t kids[8];
	for (int i = 0; i < 8; i++) {
		kids[i] = fork();
		ASSERT(kids[i] >= 0);
		if (kids[i] == 0) {
			close(go[1]);
			struct ldr_backend *be = be_open(db);
			uint8_t *p = pattern_new(300000, 100 + (uint64_t)i);
			struct ldr_stage *s;
			if (be->ops->stage_begin(be, &n, NULL, &s))
				_exit(2);
			struct iovec v = {p, 300000};
			if (be->ops->stage_write(s, &v, 1))
				_exit(2);
			uint8_t sum[16];
			size_t hl;
			ldr_xxh128(p, 300000, sum);
			uint8_t *h = header(&n, 300000, sum, 0, &hl);
			char c;
			/* Every writer is staged; all commit at once. */
			if (read(go[0], &c, 1) != 0)
				_exit(2);
			int rc = be->ops->stage_commit(s, h, hl, 0, 0);
			char r = rc == 0	       ? 'W'
				 : rc == LARDER_EXISTS ? 'E'
						       : 'X';
			if (write(res[1], &r, 1) != 1)
				_exit(2);
			if (r == 'W' &&
			    write(res[1], &(char){(char)('0' + i)}, 1) != 1)
				_exit(2);
			_exit(0);
		}
	}
	close(go[0]);
	close(res[1]);
	close(go[1]); /* go */
	int wins = 0, exists = 0, winner = -1;
	char c;
	while (read(res[0], &c, 1) == 1) {
		if (c == 'W')
			wins++;
		else if (c == 'E')
			exists++;
		else if (c >= '0' && c <= '7')
			winner = c - '0';
	}
	for (int i = 0; i < 8; i++) {
		int st;
		ASSERT(waitpid(kids[i], &st, 0) == kids[i]);
		ASSERT(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	}
	ASSERT_EQ(wins, 1);
	ASSERT_EQ(exists, 7);
	struct ldr_backend *be = be_open(db);
	uint8_t *got;
	size_t len;
	ASSERT_RC(db, read_verified(be, &n, &got, &len), 0);
	ASSERT_EQ(len, 300000);
	ASSERT(test_check_pattern(got, len, 100 + (uint64_t)winner));
	free(got);
	be_end(be);
}

/* Overwrite or delete chunk 0 of the entry n behind larder's back. */
static void tamper(const struct ldr_name *n, int del)
{
	char e[33], cmd[512];
	hexs(e, n->hash);
	snprintf(cmd, sizeof cmd,
		 "eval \"local k = redis.call('keys', ARGV[1])[1] "
		 "local v = redis.call('get', k) "
		 "if ARGV[2] == '1' then return redis.call('del', k) end "
		 "return redis.call('set', k, string.sub(v, 1, 10) .. 'X' .. "
		 "string.sub(v, 12), 'keepttl')\" 0 'larder:{%s}:c:*:0' %d",
		 e, del);
	redis_cli(cmd);
}

/* Flip the last byte of the entry n's manifest (an inline entry's last
 * payload byte) behind larder's back. */
static void tamper_manifest(const struct ldr_name *n)
{
	char e[33], cmd[512];
	hexs(e, n->hash);
	snprintf(cmd, sizeof cmd,
		 "eval \"local v = redis.call('get', KEYS[1]) "
		 "local c = string.char((string.byte(v, -1) + 1) %% 256) "
		 "return redis.call('set', KEYS[1], string.sub(v, 1, -2) .. c, "
		 "'keepttl')\" 1 'larder:{%s}:m'",
		 e);
	redis_cli(cmd);
}

TEST(a_tampered_entry_fails_the_check_and_is_then_a_miss)
{
	larder *db;
	struct ldr_name n;
	struct ldr_backend *be = be_start(&db, &n, "bad", "v");
	/* An entry inline in its manifest, and one in chunks. */
	size_t sizes[2] = {50000, 5u << 20};
	for (int k = 0; k < 2; k++) {
		size_t size = sizes[k];
		uint8_t *p = pattern_new(size, 3);
		ASSERT_RC(db, publish(be, &n, p, size, 65536, 0, 0), 0);
		if (k == 0)
			tamper_manifest(&n);
		else
			tamper(&n, 0);
		uint8_t *got;
		size_t len;
		/* The backend hands the bytes over; the caller's check
		 * refuses them and rejects the entry. */
		ASSERT_EQ(read_verified(be, &n, &got, &len),
			  100 + LARDER_STATE_CORRUPT);
		ASSERT_EQ(read_verified(be, &n, &got, &len), LARDER_ENOTFOUND);
		/* And it can be published again. */
		ASSERT_RC(db, publish(be, &n, p, size, 1000, 0, 0), 0);
		read_is(be, &n, p, size);
		ASSERT_EQ(be->ops->remove(be, &n, NULL), 1);
		free(p);
	}
	be_end(be);
}

TEST(a_deleted_chunk_is_a_miss)
{
	larder *db;
	struct ldr_name n;
	struct ldr_backend *be = be_start(&db, &n, "lost", "v");
	uint8_t *p = pattern_new(9u << 20, 4);
	ASSERT_RC(db, publish(be, &n, p, 9u << 20, 1u << 20, 0, 0), 0);
	tamper(&n, 1);
	uint8_t *got;
	size_t len;
	ASSERT_EQ(read_verified(be, &n, &got, &len), LARDER_ENOTFOUND);
	/* The manifest went with it (compare-and-delete by the reader),
	 * and a publish is not "exists". */
	char e[33], out[64];
	hexs(e, n.hash);
	redis_outf(out, sizeof out, "exists 'larder:{%s}:m'", e);
	ASSERT_STR_EQ(out, "0");
	ASSERT_RC(db, publish(be, &n, p, 9u << 20, 1u << 20, 0, 0), 0);
	free(p);
	be_end(be);
}

TEST(ttl_becomes_pexpire_and_an_expired_entry_is_a_miss)
{
	larder *db;
	struct ldr_name n;
	struct ldr_backend *be = be_start(&db, &n, "ttl", "v");
	/* Over a chunk: the manifest and the chunks each get the TTL. */
	size_t size = 5u << 20;
	uint8_t *p = pattern_new(size, 5);
	int64_t expires = now_ns() + 1500 * 1000000ll;
	ASSERT_RC(db, publish(be, &n, p, size, 1u << 20, expires, 0), 0);
	char e[33], out[64];
	hexs(e, n.hash);
	redis_outf(out, sizeof out, "pttl 'larder:{%s}:m'", e);
	ASSERT(atol(out) > 0 && atol(out) <= 1500);
	/* Its chunk too. */
	redis_outf(out, sizeof out,
		   "eval \"return redis.call('pttl', redis.call('keys', "
		   "ARGV[1])[1])\" 0 'larder:{%s}:c:*'",
		   e);
	ASSERT(atol(out) > 0 && atol(out) <= 1500);
	/* An entry without a TTL gets none. */
	struct ldr_name n2;
	name_of(&n2, "ttl", "k", "forever");
	ASSERT_RC(db, publish(be, &n2, p, 5000, 5000, 0, 0), 0);
	free(p);
	hexs(e, n2.hash);
	redis_outf(out, sizeof out, "pttl 'larder:{%s}:m'", e);
	ASSERT_STR_EQ(out, "-1");
	/* Redis expires it: polled, bounded. */
	uint8_t *got;
	size_t len;
	int rc = 0;
	for (int i = 0; i < 200; i++) {
		rc = read_verified(be, &n, &got, &len);
		if (rc == LARDER_ENOTFOUND)
			break;
		free(got);
		usleep(50000);
	}
	ASSERT_EQ(rc, LARDER_ENOTFOUND);
	be_end(be);
}

TEST(heads_follow_tokens_and_a_lower_token_does_not_move_them)
{
	larder *db = db_open();
	struct ldr_backend *be = be_open(db);
	struct ldr_name n1, n2, n3;
	name_of(&n1, "hd", "k", "v1");
	name_of(&n2, "hd", "k", "v2");
	name_of(&n3, "hd", "k", "v3");
	uint8_t *ver;
	size_t vlen;
	ASSERT_RC(db, be->ops->head_get(be, &n1, &ver, &vlen),
		  LARDER_ENOTFOUND);
	uint8_t p[10];
	memset(p, 1, sizeof p);
	ASSERT_RC(db, publish(be, &n1, p, sizeof p, 10, 0, 5), 0);
	ASSERT_RC(db, be->ops->head_get(be, &n1, &ver, &vlen), 0);
	ASSERT_EQ(vlen, 2);
	ASSERT_MEM_EQ(ver, "v1", 2);
	free(ver);
	/* A filler with token 4 (it lost its lease to token 5) is refused. */
	ASSERT_RC(db, be->ops->head_set(be, &n2, 4), 0);
	ASSERT_RC(db, be->ops->head_get(be, &n1, &ver, &vlen), 0);
	ASSERT_MEM_EQ(ver, "v1", 2);
	free(ver);
	ASSERT_RC(db, be->ops->head_set(be, &n2, 6), 0);
	ASSERT_RC(db, be->ops->head_get(be, &n1, &ver, &vlen), 0);
	ASSERT_MEM_EQ(ver, "v2", 2);
	free(ver);
	/* Token 0 (larder_put) always sets. */
	ASSERT_RC(db, be->ops->head_set(be, &n3, 0), 0);
	ASSERT_RC(db, be->ops->head_get(be, &n1, &ver, &vlen), 0);
	ASSERT_MEM_EQ(ver, "v3", 2);
	free(ver);
	/* Drop only if it names that version: 1 dropped, 0 left. */
	ASSERT_EQ(be->ops->head_drop(be, &n2), 0);
	ASSERT_RC(db, be->ops->head_get(be, &n1, &ver, &vlen), 0);
	free(ver);
	ASSERT_EQ(be->ops->head_drop(be, &n3), 1);
	ASSERT_RC(db, be->ops->head_get(be, &n1, &ver, &vlen),
		  LARDER_ENOTFOUND);
	/* remove takes the entry and a head naming it. */
	ASSERT_RC(db, be->ops->head_set(be, &n1, 0), 0);
	ASSERT_EQ(be->ops->remove(be, &n1, NULL), 1);
	ASSERT_EQ(be->ops->remove(be, &n1, NULL), 0);
	ASSERT_RC(db, be->ops->head_get(be, &n1, &ver, &vlen),
		  LARDER_ENOTFOUND);
	be_end(be);
}

static struct ldr_self self(larder *db)
{
	struct ldr_self me;
	ldr_self_get(&me, ldr_test_host(db));
	return me;
}

TEST(leases_acquire_contend_renew_break_release)
{
	larder *db = db_open();
	struct ldr_backend *be = be_open(db);
	struct ldr_name n;
	name_of(&n, "ls", "k", NULL);
	struct ldr_self me = self(db);
	struct ldr_be_lease *l, *l2;
	struct ldr_be_holder h;
	uint64_t t1, t2;
	ASSERT_RC(db, be->ops->lease_observe(be, &n, &h), LARDER_ENOTFOUND);
	ASSERT_RC(
	    db, be->ops->lease_acquire(be, &n, &me, 1000, 50, &l, &t1, &h), 0);
	ASSERT(t1 > 0);
	ASSERT_RC(
	    db, be->ops->lease_acquire(be, &n, &me, 1000, 50, &l2, &t2, &h), 1);
	ASSERT_EQ(h.token, t1);
	ASSERT_EQ(h.rec.pid, getpid());
	ASSERT(h.ttl_ms > 0 && h.ttl_ms <= 1000);
	/* Renewed (every 50 ms: a renewal would have to be late by
	 * 950 ms to lose it): still ours three lease periods later. */
	usleep(3000 * 1000);
	ASSERT_EQ(be->ops->lease_held(l), 1);
	ASSERT_RC(db, be->ops->lease_observe(be, &n, &h), 0);
	ASSERT_EQ(h.token, t1);
	ASSERT(h.ttl_ms > 0);
	/* A break of a record that is not the one there changes nothing. */
	struct ldr_be_holder other = h;
	other.rec.text[20] ^= 1;
	ASSERT_EQ(be->ops->lease_break(be, &n, &other), 0);
	ASSERT_EQ(be->ops->lease_held(l), 1);
	/* A break of the observed record frees it; its holder sees it lost,
	 * and its release takes nothing of the next holder's. */
	ASSERT_EQ(be->ops->lease_break(be, &n, &h), 1);
	ASSERT_EQ(be->ops->lease_held(l), 0);
	ASSERT_RC(
	    db, be->ops->lease_acquire(be, &n, &me, 1000, 50, &l2, &t2, &h), 0);
	ASSERT(t2 > t1);
	be->ops->lease_release(l);
	ASSERT_EQ(be->ops->lease_held(l2), 1);
	ASSERT_RC(db, be->ops->lease_observe(be, &n, &h), 0);
	ASSERT_EQ(h.token, t2);
	be->ops->lease_release(l2);
	ASSERT_RC(db, be->ops->lease_observe(be, &n, &h), LARDER_ENOTFOUND);
	be_end(be);
}

/* Publish p[0, len) at n as a fill does: committed with its lease l
 * (stage_commit_lease). */
static int publish_leased(struct ldr_backend *be, const struct ldr_name *n,
			  const void *p, size_t len, struct ldr_be_lease *l)
{
	struct ldr_stage *s = NULL;
	int rc = be->ops->stage_begin(be, n, NULL, &s);
	if (rc)
		return rc;
	struct iovec v = {(void *)p, len};
	if ((rc = be->ops->stage_write(s, &v, 1))) {
		be->ops->stage_abort(s);
		return rc;
	}
	uint8_t sum[16];
	size_t hlen;
	ldr_xxh128(p, len, sum);
	uint8_t *h = header(n, len, sum, 0, &hlen);
	rc = be->ops->stage_commit_lease(s, h, hlen, 0, l);
	free(h);
	return rc;
}

/* The head of n's key names ver ("" : there is none). */
static void head_is(struct ldr_backend *be, const struct ldr_name *n,
		    const char *ver)
{
	uint8_t *v;
	size_t vlen;
	int rc = be->ops->head_get(be, n, &v, &vlen);
	if (!*ver) {
		ASSERT_RC(be->db, rc, LARDER_ENOTFOUND);
		return;
	}
	ASSERT_RC(be->db, rc, 0);
	ASSERT_EQ(vlen, strlen(ver));
	ASSERT_MEM_EQ(v, ver, vlen);
	free(v);
}

/* How many times the server ran a script (EVALSHA and EVAL) since its
 * statistics were last reset. */
static long scripts_run(void)
{
	char out[64];
	redis_out("INFO commandstats | grep -E '^cmdstat_eval(sha)?:' | "
		  "awk -F'[=,]' '{n+=$2} END {print n+0}'",
		  out, sizeof out);
	return atol(out);
}

/* A put (no lease, token 0) moves the head in its commit's MULTI/EXEC,
 * with no script: each redis.call of a script cost the server more than
 * a bare SET. Where its entry stood already the head names it all the
 * same (a put to a directory does so); a writer with a token is still
 * judged by the script, never moving the head back. */
TEST(a_puts_head_goes_in_its_commit_with_no_script)
{
	larder *db = db_open();
	struct ldr_backend *be = be_open(db);
	struct ldr_name n1, n2, n3;
	name_of(&n1, "ph", "k", "v1");
	name_of(&n2, "ph", "k", "v2");
	name_of(&n3, "ph", "k", "v3");
	uint8_t p[100];
	memset(p, 3, sizeof p);
	redis_cli("CONFIG RESETSTAT");
	ASSERT_RC(db, publish(be, &n1, p, sizeof p, sizeof p, 0, 0), 0);
	ASSERT_EQ(scripts_run(), 0);
	head_is(be, &n1, "v1");
	/* The entry stands; the head moved on meanwhile: a put of it again
	 * names it. */
	ASSERT_RC(db, be->ops->head_set(be, &n2, 6), 0);
	head_is(be, &n1, "v2");
	ASSERT_RC(db, publish(be, &n1, p, sizeof p, sizeof p, 0, 0),
		  LARDER_EXISTS);
	head_is(be, &n1, "v1");
	/* A writer whose token (4) is below the head's (6) moves nothing. */
	ASSERT_RC(db, be->ops->head_set(be, &n2, 6), 0);
	ASSERT_RC(db, publish(be, &n3, p, sizeof p, sizeof p, 0, 4), 0);
	head_is(be, &n1, "v2");
	uint8_t *got;
	size_t len;
	ASSERT_EQ(read_verified(be, &n3, &got, &len), LARDER_STATE_OK);
	ASSERT_EQ(len, sizeof p);
	free(got);
	be->ops->close(be);
	larder_close(db);
}

/* A fill's round trips folded (docs/backends.md, section 3): the look
 * goes with the lease, and the head and the release with the commit,
 * which still judges the lease at the commit point. */
TEST(a_fills_lease_goes_with_its_look_and_is_settled_by_its_commit)
{
	larder *db = db_open();
	struct ldr_backend *be = be_open(db);
	struct ldr_self me = self(db);
	struct ldr_be_lease *l, *l2;
	struct ldr_be_holder h;
	uint64_t t1, t2;
	ASSERT(be->ops->version >= 3 && be->ops->stage_commit_lease);
	/* Inline (4 KiB) and in chunks (past the inline limit). */
	size_t sizes[2] = {4096, 300000};
	for (int k = 0; k < 2; k++) {
		char ns[8];
		snprintf(ns, sizeof ns, "st%d", k);
		struct ldr_name v1, v2, v3;
		name_of(&v1, ns, "k", "v1");
		name_of(&v2, ns, "k", "v2");
		name_of(&v3, ns, "k", "v3");
		uint8_t *p = pattern_new(sizes[k], 7 + k);

		/* Nothing there: the lease, told that nothing stood. */
		ASSERT_RC(db,
			  be->ops->lease_acquire(be, &v1, &me, 30000, 10000, &l,
						 &t1, &h),
			  0);
		ASSERT(l->flags & LDR_BE_LEASE_LOOKED);
		ASSERT_RC(db, publish_leased(be, &v1, p, sizes[k], l), 0);
		/* Given back and the head moved, in the commit. */
		ASSERT_RC(db, be->ops->lease_observe(be, &v1, &h),
			  LARDER_ENOTFOUND);
		head_is(be, &v1, "v1");
		ASSERT_EQ(be->ops->lease_held(l), 1);
		be->ops->lease_release(l);
		read_is(be, &v1, p, sizes[k]);

		/* The entry stands: no lease is taken, the caller reads. */
		ASSERT_EQ(be->ops->lease_acquire(be, &v1, &me, 30000, 10000, &l,
						 &t2, &h),
			  LDR_BE_LEASE_ENTRY);
		ASSERT_RC(db, be->ops->lease_observe(be, &v1, &h),
			  LARDER_ENOTFOUND);

		/* A lease lost during the load (broken, taken by another
		 * with a higher token): the entry is published, first
		 * writer wins, but the head stays, the other's lease is
		 * left alone, and the loser is told it lost. */
		ASSERT_RC(db,
			  be->ops->lease_acquire(be, &v2, &me, 30000, 10000, &l,
						 &t1, &h),
			  0);
		ASSERT_RC(db, be->ops->lease_observe(be, &v2, &h), 0);
		ASSERT_EQ(be->ops->lease_break(be, &v2, &h), 1);
		ASSERT_RC(db,
			  be->ops->lease_acquire(be, &v2, &me, 30000, 10000,
						 &l2, &t2, &h),
			  0);
		ASSERT(t2 > t1);
		ASSERT_RC(db, publish_leased(be, &v2, p, sizes[k], l), 0);
		ASSERT_EQ(be->ops->lease_held(l), 0);
		be->ops->lease_release(l);
		head_is(be, &v2, "v1");
		ASSERT_RC(db, be->ops->lease_observe(be, &v2, &h), 0);
		ASSERT_EQ(h.token, t2);
		ASSERT_EQ(be->ops->lease_held(l2), 1);
		read_is(be, &v2, p, sizes[k]);
		be->ops->lease_release(l2);
		ASSERT_RC(db, be->ops->lease_observe(be, &v2, &h),
			  LARDER_ENOTFOUND);

		/* A manifest that does not parse is no entry: the lease
		 * is taken, and the commit replaces it. */
		char e[33], cmd[200];
		hexs(e, v3.hash);
		snprintf(cmd, sizeof cmd, "set 'larder:{%s}:m' garbage", e);
		redis_cli(cmd);
		ASSERT_RC(db,
			  be->ops->lease_acquire(be, &v3, &me, 30000, 10000, &l,
						 &t1, &h),
			  0);
		ASSERT_RC(db, publish_leased(be, &v3, p, sizes[k], l), 0);
		ASSERT_EQ(be->ops->lease_held(l), 1);
		be->ops->lease_release(l);
		head_is(be, &v3, "v3");
		read_is(be, &v3, p, sizes[k]);
		free(p);
	}
	be_end(be);
}

/* The first look of a fill is its lease step (backend.h,
 * lease_acquire_read): an entry that stands comes back read, whole and
 * as read() gives it, and no lease is taken (no lease key, no fencing
 * token drawn); a miss comes back with the lease. */
TEST(lease_acquire_read_hands_out_the_entry_and_takes_no_lease)
{
	larder *db = db_open();
	struct ldr_backend *be = be_open(db);
	struct ldr_self me = self(db);
	ASSERT(be->ops->version >= 4 && be->ops->lease_acquire_read);
	size_t sizes[2] = {4096, 300000}; /* inline, and in chunks */
	for (int k = 0; k < 2; k++) {
		char ns[8], kh[33], fence[64], fence2[64], lease[16];
		snprintf(ns, sizeof ns, "ar%d", k);
		struct ldr_name v1;
		name_of(&v1, ns, "k", "v1");
		hexs(kh, v1.khash);
		uint8_t *p = pattern_new(sizes[k], 11 + k);
		struct ldr_be_lease *l;
		struct ldr_be_holder h;
		struct ldr_file f;
		uint64_t t;
		int frc;

		/* A miss: the lease, and nothing read. */
		ASSERT_RC(db,
			  be->ops->lease_acquire_read(be, &v1, &me, 30000,
						      10000, &l, &t, &h, 64, &f,
						      &frc),
			  0);
		ASSERT(l->flags & LDR_BE_LEASE_LOOKED);
		ASSERT(f.p == NULL && f.fd == -1);
		ASSERT_RC(db, publish_leased(be, &v1, p, sizes[k], l), 0);
		be->ops->lease_release(l);
		redis_outf(fence, sizeof fence, "get 'larder:{%s}:f'", kh);
		ASSERT(fence[0]);

		/* A hit: the entry, read, verified by the caller. */
		l = NULL;
		ASSERT_EQ(be->ops->lease_acquire_read(be, &v1, &me, 30000,
						      10000, &l, &t, &h, 64, &f,
						      &frc),
			  LDR_BE_LEASE_ENTRY);
		ASSERT(l == NULL);
		ASSERT_RC(db, frc, 0);
		ASSERT_EQ(f.fd, -1);
		ASSERT_EQ(f.safe, 0);
		ASSERT_EQ(f.pre, 64);
		ldr_hdr hd;
		const char *why = NULL;
		ASSERT_EQ(ldr_entry_check(db, &f, "redis", v1.ns, v1.key,
					  v1.klen, v1.ver, v1.vlen,
					  LDR_CHECK_HASH, &hd, &why),
			  LARDER_STATE_OK);
		ASSERT_EQ(hd.stored_len, sizes[k]);
		ASSERT_MEM_EQ(f.p + hd.hdr_len, p, sizes[k]);
		ldr_file_free(&f);
		/* ... and no lease: no key, no token drawn. */
		redis_outf(lease, sizeof lease, "exists 'larder:{%s}:l'", kh);
		ASSERT_STR_EQ(lease, "0");
		redis_outf(fence2, sizeof fence2, "get 'larder:{%s}:f'", kh);
		ASSERT_STR_EQ(fence2, fence);

		/* A chunk gone between the look and the read: a miss of
		 * the read, and the entry goes. (Inline: nothing to lose.) */
		if (k == 1) {
			char e[33], key[256], del[320];
			hexs(e, v1.hash);
			redis_outf(key, sizeof key,
				   "--scan --pattern "
				   "'larder:{%s}:c:*'",
				   e);
			ASSERT(key[0]);
			snprintf(del, sizeof del, "del '%s'", key);
			redis_cli(del);
			/* The script judges the chunks itself: now a miss,
			 * and the lease taken. */
			ASSERT_RC(db,
				  be->ops->lease_acquire_read(
				      be, &v1, &me, 30000, 10000, &l, &t, &h,
				      64, &f, &frc),
				  0);
			be->ops->lease_release(l);
		}
		free(p);
	}
	be_end(be);
}

static int fills;

static int load_4k(larder_fill *f, void *payload)
{
	(void)payload;
	fills++;
	uint8_t b[4096];
	test_fill_pattern(b, sizeof b, 5);
	return larder_fill_write(f, b, sizeof b);
}

/* Through larder_get_or_fill on a handle with Redis hung on it: a miss
 * fills, the hit after it takes no lease (no lease key left, no token
 * drawn) and is verified: bytes changed behind larder's back are a miss
 * (counted, the entry dropped) and the next call fills again. */
TEST(a_fill_hit_through_the_lease_step_takes_no_lease_and_is_verified)
{
	larder *db = db_open();
	ldr_test_be_hang(db, be_open(db));
	struct ldr_name n;
	name_of(&n, "hl", "k", "v1");
	char kh[33], e[33], cmd[300], fence[64], fence2[64], lease[16];
	hexs(kh, n.khash);
	hexs(e, n.hash);
	larder_entry *ent;
	int how;
	fills = 0;
	ASSERT_RC(db,
		  larder_get_or_fill(&ent, &how, db, "hl", "k", 1, "v1", 2,
				     NULL, load_4k, NULL, NULL),
		  0);
	ASSERT_EQ(how, LARDER_FILLED);
	larder_entry_release(ent);
	redis_outf(fence, sizeof fence, "get 'larder:{%s}:f'", kh);
	ASSERT(fence[0]);

	ASSERT_RC(db,
		  larder_get_or_fill(&ent, &how, db, "hl", "k", 1, "v1", 2,
				     NULL, load_4k, NULL, NULL),
		  0);
	ASSERT_EQ(how, LARDER_HIT);
	ASSERT_EQ(fills, 1);
	ASSERT_EQ(larder_entry_size(ent), 4096);
	uint8_t want[4096];
	test_fill_pattern(want, sizeof want, 5);
	ASSERT_MEM_EQ(larder_entry_data(ent), want, sizeof want);
	larder_entry_release(ent);
	redis_outf(lease, sizeof lease, "exists 'larder:{%s}:l'", kh);
	ASSERT_STR_EQ(lease, "0");
	redis_outf(fence2, sizeof fence2, "get 'larder:{%s}:f'", kh);
	ASSERT_STR_EQ(fence2, fence);

	/* A payload byte flipped in the inline manifest (its last byte is
	 * the payload's): the hit's check fails. */
	char len[32];
	redis_outf(len, sizeof len, "strlen 'larder:{%s}:m'", e);
	long at = atol(len) - 1;
	ASSERT(at > 4096);
	snprintf(cmd, sizeof cmd, "setrange 'larder:{%s}:m' %ld '%c'", e, at,
		 want[4095] == 'x' ? 'y' : 'x');
	redis_cli(cmd);
	uint64_t bad = larder_counter(db, LARDER_CTR_CHECKSUM_FAIL);
	ASSERT_RC(db,
		  larder_get_or_fill(&ent, &how, db, "hl", "k", 1, "v1", 2,
				     NULL, load_4k, NULL, NULL),
		  0);
	ASSERT_EQ(how, LARDER_FILLED);
	ASSERT_EQ(fills, 2);
	ASSERT_MEM_EQ(larder_entry_data(ent), want, sizeof want);
	larder_entry_release(ent);
	ASSERT_EQ(larder_counter(db, LARDER_CTR_CHECKSUM_FAIL), bad + 1);
	larder_close(db);
}

/* Through near+Redis the fill looks at near, then takes its lease with
 * the shared look (lease_acquire_read through the tier): a second host's
 * hit comes from Redis, verified, with no lease taken, and is copied
 * into its near store, where the next call finds it. */
TEST(a_near_redis_fill_hit_comes_with_the_lease_step_and_is_copied_near)
{
	char u[700];
	snprintf(u, sizeof u, "%s?prefix=nrf:", uri);
	larder *a, *b;
	larder_opts o = LARDER_OPTS_INIT;
	o.flags = LARDER_OPEN_CREATE;
	o.fsync = LARDER_FSYNC_NONE;
	o.shared = u;
	ASSERT_RC(NULL, larder_open(&a, test_path("host-a"), &o), 0);
	ASSERT_RC(NULL, larder_open(&b, test_path("host-b"), &o), 0);
	larder_entry *ent;
	int how;
	fills = 0;
	ASSERT_RC(a,
		  larder_get_or_fill(&ent, &how, a, "nf", "k", 1, "v1", 2, NULL,
				     load_4k, NULL, NULL),
		  0);
	ASSERT_EQ(how, LARDER_FILLED);
	larder_entry_release(ent);
	struct ldr_name n;
	name_of(&n, "nf", "k", "v1");
	char kh[33], fence[64], fence2[64], lease[16];
	hexs(kh, n.khash);
	redis_outf(fence, sizeof fence, "get 'nrf:{%s}:f'", kh);
	ASSERT(fence[0]);

	ASSERT_RC(b,
		  larder_get_or_fill(&ent, &how, b, "nf", "k", 1, "v1", 2, NULL,
				     load_4k, NULL, NULL),
		  0);
	ASSERT_EQ(how, LARDER_HIT);
	ASSERT_EQ(fills, 1);
	uint8_t want[4096];
	test_fill_pattern(want, sizeof want, 5);
	ASSERT_EQ(larder_entry_size(ent), sizeof want);
	ASSERT_MEM_EQ(larder_entry_data(ent), want, sizeof want);
	larder_entry_release(ent);
	ASSERT_EQ(larder_counter(b, LARDER_CTR_SHARED_HITS), 1);
	ASSERT_EQ(larder_counter(b, LARDER_CTR_SHARED_COPIES), 1);
	redis_outf(lease, sizeof lease, "exists 'nrf:{%s}:l'", kh);
	ASSERT_STR_EQ(lease, "0");
	redis_outf(fence2, sizeof fence2, "get 'nrf:{%s}:f'", kh);
	ASSERT_STR_EQ(fence2, fence);

	/* Now in b's near store: a near hit, Redis not asked. */
	uint64_t near = larder_counter(b, LARDER_CTR_NEAR_HITS);
	ASSERT_RC(b,
		  larder_get_or_fill(&ent, &how, b, "nf", "k", 1, "v1", 2, NULL,
				     load_4k, NULL, NULL),
		  0);
	ASSERT_EQ(how, LARDER_HIT);
	larder_entry_release(ent);
	ASSERT_EQ(larder_counter(b, LARDER_CTR_NEAR_HITS), near + 1);
	ASSERT_EQ(larder_counter(b, LARDER_CTR_SHARED_HITS), 1);
	larder_close(a);
	larder_close(b);
}

/* Who this process is, kept per handle (ldr_self_cached), is asked again in
 * a forked child: the child's lease names the child. */
TEST(a_fork_childs_lease_names_the_child)
{
	larder *db = db_open();
	struct ldr_backend *be = be_open(db);
	struct ldr_self me;
	ldr_self_cached(&me, be->db); /* kept now */
	ASSERT_EQ(me.pid, (long)getpid());
	int up[2], down[2];
	ASSERT(pipe(up) == 0 && pipe(down) == 0);
	pid_t child = fork();
	ASSERT(child >= 0);
	if (child == 0) {
		struct ldr_be_lease *l;
		struct ldr_be_holder *h;
		uint64_t t;
		char c = ldr_test_be_lease_acquire(be, "fk", "k", 30000, 10000,
						   &l, &t, &h) == 0
			     ? 'y'
			     : 'n';
		if (write(up[1], &c, 1) != 1 || read(down[0], &c, 1) != 1)
			_exit(1);
		if (c == 'y')
			be->ops->lease_release(l);
		_exit(0);
	}
	char c = 0;
	ASSERT_EQ(read(up[0], &c, 1), 1);
	ASSERT_EQ(c, 'y');
	struct ldr_be_holder *h;
	ASSERT_RC(db, ldr_test_be_lease_observe(be, "fk", "k", &h), 0);
	ASSERT_EQ(h->rec.pid, (long)child);
	free(h);
	ASSERT_EQ(write(down[1], "y", 1), 1);
	int st;
	ASSERT_EQ(waitpid(child, &st, 0), child);
	ASSERT(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	/* And the parent is still itself. */
	ldr_self_cached(&me, be->db);
	ASSERT_EQ(me.pid, (long)getpid());
	close(up[0]);
	close(up[1]);
	close(down[0]);
	close(down[1]);
	be_end(be);
}

/* A child's stage ids are never its parent's: made from a seed and a
 * counter, a child that kept its parent's seed would name the parent's
 * next stage, and two writers in one stage mix their chunks. Both ways a
 * child is made: fork, and clone(2), which runs no fork handlers. */
TEST(a_childs_stage_ids_are_not_its_parents)
{
	larder *db = db_open();
	struct ldr_backend *be = be_open(db);
	char a[33], b[33];
	ldr_test_redis_stage_id(be, a);
	ldr_test_redis_stage_id(be, b);
	ASSERT(strcmp(a, b) != 0);
	for (int way = 0; way < 2; way++) {
		int up[2];
		ASSERT(pipe(up) == 0);
		pid_t child =
		    way == 0 ? fork()
			     : (pid_t)syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0);
		ASSERT(child >= 0);
		if (child == 0) {
			char id[33];
			ldr_test_redis_stage_id(be, id);
			_exit(write(up[1], id, 32) == 32 ? 0 : 1);
		}
		char theirs[33] = {0}, mine[33];
		ASSERT_EQ(read(up[0], theirs, 32), 32);
		int st;
		ASSERT_EQ(waitpid(child, &st, 0), child);
		ASSERT(WIFEXITED(st) && WEXITSTATUS(st) == 0);
		ldr_test_redis_stage_id(be, mine);
		if (strcmp(theirs, mine) == 0 || memcmp(theirs, mine, 16) == 0)
			test_fail(__FILE__, __LINE__,
				  "%s: the child's stage id %s and the "
				  "parent's %s share a seed",
				  way ? "clone" : "fork", theirs, mine);
		close(up[0]);
		close(up[1]);
	}
	be_end(be);
}

/* The threads of this process. */
static int threads(void)
{
	DIR *d = opendir("/proc/self/task");
	ASSERT(d);
	int n = 0;
	for (struct dirent *e; (e = readdir(d));)
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

/* One renewer per backend, not a thread per lease: leases taken one
 * after another (as fills are) start one thread in all, and several
 * held at once are each renewed past their lease. */
TEST(one_renewer_serves_every_lease_of_a_backend)
{
	larder *db = db_open();
	struct ldr_backend *be = be_open(db);
	struct ldr_self me = self(db);
	struct ldr_be_lease *l[3];
	struct ldr_be_holder h;
	uint64_t t;
	int before = threads();
	for (int i = 0; i < 5; i++) {
		struct ldr_name n;
		char key[16];
		snprintf(key, sizeof key, "one%d", i);
		name_of(&n, "rn", key, NULL);
		ASSERT_RC(db,
			  be->ops->lease_acquire(be, &n, &me, 30000, 10000,
						 &l[0], &t, &h),
			  0);
		be->ops->lease_release(l[0]);
	}
	ASSERT(threads() <= before + 1);
	struct ldr_name n[3];
	for (int i = 0; i < 3; i++) {
		char key[16];
		snprintf(key, sizeof key, "many%d", i);
		name_of(&n[i], "rn", key, NULL);
		ASSERT_RC(db,
			  be->ops->lease_acquire(be, &n[i], &me, 600, 50, &l[i],
						 &t, &h),
			  0);
	}
	ASSERT(threads() <= before + 1);
	/* Three lease periods: each would have run out unrenewed. */
	usleep(1800 * 1000);
	for (int i = 0; i < 3; i++) {
		ASSERT_EQ(be->ops->lease_held(l[i]), 1);
		ASSERT_RC(db, be->ops->lease_observe(be, &n[i], &h), 0);
		ASSERT(h.ttl_ms > 0);
	}
	for (int i = 0; i < 3; i++)
		be->ops->lease_release(l[i]);
	for (int i = 0; i < 3; i++)
		ASSERT_RC(db, be->ops->lease_observe(be, &n[i], &h),
			  LARDER_ENOTFOUND);
	be->ops->close(be);
	ASSERT_EQ(threads(), before);
	larder_close(db);
}

TEST(a_sigkilled_holder_lease_expires_by_redis_clock)
{
	larder *db = db_open();
	struct ldr_name n;
	name_of(&n, "ls", "dead", NULL);
	int ready[2];
	ASSERT(pipe(ready) == 0);
	pid_t kid = fork();
	ASSERT(kid >= 0);
	if (kid == 0) {
		struct ldr_backend *be = be_open(db);
		struct ldr_self me = self(db);
		struct ldr_be_lease *l;
		struct ldr_be_holder h;
		uint64_t t;
		if (be->ops->lease_acquire(be, &n, &me, 500, 100, &l, &t, &h))
			_exit(2);
		if (write(ready[1], "x", 1) != 1)
			_exit(2);
		for (;;)
			pause();
	}
	close(ready[1]);
	char c;
	ASSERT_EQ(read(ready[0], &c, 1), 1);
	struct ldr_backend *be = be_open(db);
	struct ldr_be_holder h;
	ASSERT_RC(db, be->ops->lease_observe(be, &n, &h), 0);
	ASSERT_EQ(h.rec.pid, kid);
	kill(kid, SIGKILL);
	waitpid(kid, NULL, 0);
	/* Nobody breaks it: Redis expires it (polled, bounded). */
	int rc = 0;
	for (int i = 0; i < 200; i++) {
		if ((rc = be->ops->lease_observe(be, &n, &h)) ==
		    LARDER_ENOTFOUND)
			break;
		ASSERT(h.ttl_ms <= 500);
		usleep(20000);
	}
	ASSERT_EQ(rc, LARDER_ENOTFOUND);
	be_end(be);
}

TEST(wait_is_woken_by_a_publish_from_another_process)
{
	larder *db = db_open();
	struct ldr_name n;
	name_of(&n, "wt", "k", "v");
	int go[2];
	ASSERT(pipe(go) == 0);
	pid_t kid = fork();
	ASSERT(kid >= 0);
	if (kid == 0) {
		close(go[1]);
		char c;
		if (read(go[0], &c, 1) != 1)
			_exit(2);
		struct ldr_backend *be = be_open(db);
		/* Publish once the waiter is subscribed (polled, bounded),
		 * so that it is the message that wakes it. */
		char kh[33], cmd[200], out[64];
		hexs(kh, n.khash);
		snprintf(cmd, sizeof cmd, "pubsub numsub 'larder:{%s}:p'", kh);
		for (int i = 0; i < 3000; i++) {
			redis_out2(cmd, out, sizeof out);
			if (strcmp(out, "1") == 0)
				break;
			usleep(10000);
		}
		uint8_t p[1000];
		test_fill_pattern(p, sizeof p, 9);
		_exit(publish(be, &n, p, sizeof p, 100, 0, 0) == 0 ? 0 : 3);
	}
	struct ldr_backend *be = be_open(db);
	/* A bound far beyond the test's own timeout, and a lease held
	 * (a free one ends a wait at once): only the publish can end this
	 * wait in time. */
	struct ldr_self me = self(db);
	struct ldr_be_lease *l;
	struct ldr_be_holder h;
	uint64_t tok;
	ASSERT_RC(
	    db, be->ops->lease_acquire(be, &n, &me, 60000, 1000, &l, &tok, &h),
	    0);
	struct ldr_be_wait *w;
	ASSERT_RC(db, be->ops->wait_begin(be, &n, &w), 0);
	ASSERT_EQ(write(go[1], "x", 1), 1);
	int rc;
	while ((rc = be->ops->wait(w, 3600 * 1000, NULL)) == LDR_BE_WAIT_MORE)
		;
	ASSERT_RC(db, rc, 0);
	be->ops->wait_end(w);
	be->ops->lease_release(l);
	uint8_t *got;
	size_t len;
	ASSERT_RC(db, read_verified(be, &n, &got, &len), 0);
	free(got);
	int st;
	ASSERT(waitpid(kid, &st, 0) == kid);
	ASSERT(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	be_end(be);
}

TEST(wait_is_bounded_by_max_ms_and_by_cancel)
{
	larder *db = db_open();
	struct ldr_backend *be = be_open(db);
	struct ldr_name n;
	name_of(&n, "wt", "nobody", "v");
	/* A holder that publishes nothing in the test's time: nothing
	 * but the bound or the cancel ends the wait. */
	struct ldr_self me = self(db);
	struct ldr_be_lease *l;
	struct ldr_be_holder h;
	uint64_t tok;
	ASSERT_RC(
	    db, be->ops->lease_acquire(be, &n, &me, 60000, 1000, &l, &tok, &h),
	    0);
	struct ldr_be_wait *w;
	ASSERT_RC(db, be->ops->wait_begin(be, &n, &w), 0);
	ASSERT_EQ(be->ops->wait(w, 200, NULL), LDR_BE_WAIT_MORE);
	volatile sig_atomic_t cancel = 1;
	ASSERT_RC(db, be->ops->wait(w, 3600 * 1000, &cancel), LARDER_ECANCELED);
	be->ops->wait_end(w);
	be->ops->lease_release(l);
	uint8_t *got;
	size_t len;
	ASSERT_EQ(read_verified(be, &n, &got, &len), LARDER_ENOTFOUND);
	be_end(be);
}

/* A holder that lets go without publishing after the caller's look saw
 * it and before wait_begin: the baseline is "free", and so is every look
 * after it. The wait ends for the caller to take the lease, not at its
 * bound (a fill's whole wait limit, 300 s by default). */
TEST(a_lease_let_go_before_the_wait_began_ends_the_wait)
{
	larder *db;
	struct ldr_name n;
	struct ldr_backend *be = be_start(&db, &n, "wfree", "v");
	struct ldr_self me = self(db);
	struct ldr_be_lease *l;
	struct ldr_be_holder h;
	uint64_t tok;
	ASSERT_RC(
	    db, be->ops->lease_acquire(be, &n, &me, 60000, 1000, &l, &tok, &h),
	    0);
	be->ops->lease_release(l);
	struct ldr_be_wait *w;
	ASSERT_RC(db, be->ops->wait_begin(be, &n, &w), 0);
	/* A bound far beyond the test's own timeout: only the free lease
	 * can end this wait in time. */
	ASSERT_RC(db, be->ops->wait(w, 3600 * 1000, NULL), 0);
	be->ops->wait_end(w);
	/* And the caller gets the lease it was told to take. */
	ASSERT_RC(
	    db, be->ops->lease_acquire(be, &n, &me, 60000, 1000, &l, &tok, &h),
	    0);
	be->ops->lease_release(l);
	be_end(be);
}

TEST(a_stopped_redis_makes_every_call_time_out)
{
	larder *db = db_open();
	char u[600], pidfile[300];
	/* The setup and the last read with the default timeout; the
	 * calls to the stopped server with a short one (opened while it
	 * runs). */
	snprintf(u, sizeof u, "%s?timeout_ms=500", uri);
	struct ldr_backend *be = be_open(db);
	struct ldr_name n;
	name_of(&n, "stop", "k", "v");
	uint8_t p[100];
	memset(p, 2, sizeof p);
	ASSERT_RC(db, publish(be, &n, p, sizeof p, 100, 0, 0), 0);
	snprintf(pidfile, sizeof pidfile, "%s/master/redis.pid", base);
	size_t l;
	char *text = (char *)read_file(pidfile, &l);
	ASSERT(text && l > 0 && l < 20);
	text[l - 1] = '\0'; /* "<pid>\n" */
	pid_t rpid = (pid_t)atol(text);
	free(text);
	ASSERT(rpid > 1);
	/* The checks in a child, so that Redis is continued whatever they
	 * find. Its backend is opened before the stop: its first call
	 * times out on a kept connection, the next ones on new ones. */
	int ready[2], go[2];
	ASSERT(pipe(ready) == 0 && pipe(go) == 0);
	pid_t kid = fork();
	if (kid == 0) {
		struct ldr_backend *shortbe = be_open_uri(db, u);
		char c;
		if (write(ready[1], "x", 1) != 1 || read(go[0], &c, 1) != 1)
			_exit(2);
		uint8_t *got;
		size_t len;
		struct ldr_be_holder h;
		struct ldr_be_lease *lease;
		uint64_t t;
		struct ldr_self me = self(db);
		uint8_t *ver;
		size_t vlen;
		ASSERT_EQ(read_verified(shortbe, &n, &got, &len),
			  LARDER_ETIMEOUT);
		ASSERT(strstr(larder_errmsg(db), "timed out"));
		ASSERT(strstr(larder_errmsg(db), password) == NULL);
		ASSERT_EQ(publish(shortbe, &n, p, sizeof p, 100, 0, 0),
			  LARDER_ETIMEOUT);
		ASSERT_EQ(shortbe->ops->head_get(shortbe, &n, &ver, &vlen),
			  LARDER_ETIMEOUT);
		ASSERT_EQ(shortbe->ops->lease_observe(shortbe, &n, &h),
			  LARDER_ETIMEOUT);
		ASSERT_EQ(shortbe->ops->lease_acquire(shortbe, &n, &me, 1000,
						      250, &lease, &t, &h),
			  LARDER_ETIMEOUT);
		struct ldr_be_stats st;
		ASSERT_EQ(shortbe->ops->stats(shortbe, &st), LARDER_ETIMEOUT);
		ASSERT_EQ(st.reachable, 0);
		/* A fresh connection too (connect is accepted by the
		 * kernel; AUTH is what times out). */
		struct ldr_backend *be2 = NULL;
		ASSERT_EQ(ldr_be_redis_ops.open(&be2, db, u), LARDER_ETIMEOUT);
		_exit(0);
	}
	char c;
	ASSERT(kid > 0 && read(ready[0], &c, 1) == 1);
	int stopped = kill(rpid, SIGSTOP) == 0;
	ASSERT(write(go[1], "x", 1) == 1);
	int st;
	int w = waitpid(kid, &st, 0);
	kill(rpid, SIGCONT);
	ASSERT(stopped);
	ASSERT(w == kid);
	ASSERT(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	/* Back: the next call reconnects. */
	uint8_t *got;
	size_t len;
	ASSERT_RC(db, read_verified(be, &n, &got, &len), 0);
	free(got);
	be_end(be);
}

TEST(a_wrong_password_is_a_clear_error)
{
	larder *db = db_open();
	char u[600];
	snprintf(u, sizeof u, "redis://:wrongpassword123@127.0.0.1:%d/0", port);
	struct ldr_backend *be = NULL;
	ASSERT_EQ(ldr_be_redis_ops.open(&be, db, u), LARDER_EPERM);
	const char *m = larder_errmsg(db);
	ASSERT(strstr(m, "AUTH"));
	ASSERT(strstr(m, "127.0.0.1"));
	ASSERT(strstr(m, "wrongpassword123") == NULL);
	/* None at all: the server says it wants one. */
	snprintf(u, sizeof u, "redis://127.0.0.1:%d/0", port);
	unsetenv("LARDER_REDIS_PASSWORD");
	ASSERT(ldr_be_redis_ops.open(&be, db, u) < 0);
	ASSERT(strstr(larder_errmsg(db), "NOAUTH"));
	larder_close(db);
}

TEST(an_entry_over_512_mib_is_refused_at_stage_write)
{
	larder *db;
	struct ldr_name n;
	struct ldr_backend *be = be_start(&db, &n, "big", "v");
	size_t piece = 4u << 20;
	uint8_t *p = pattern_new(piece, 11);
	struct ldr_stage *s;
	ASSERT_RC(db, be->ops->stage_begin(be, &n, NULL, &s), 0);
	int rc = 0;
	uint64_t fed = 0;
	while (fed < 600ull * 1000 * 1000) {
		struct iovec v = {p, piece};
		if ((rc = be->ops->stage_write(s, &v, 1)))
			break;
		fed += piece;
	}
	ASSERT_EQ(rc, LARDER_EFULL);
	ASSERT(fed <= 512ull << 20);
	ASSERT(strstr(larder_errmsg(db), "larger than the Redis tier's limit "
					 "of 512 MiB"));
	be->ops->stage_abort(s);
	free(p);
	/* The stage's chunks are gone with the abort. */
	char e[33], out[64];
	hexs(e, n.hash);
	redis_outf(out, sizeof out,
		   "eval \"return #redis.call('keys', ARGV[1])\" 0 "
		   "'larder:{%s}:*'",
		   e);
	ASSERT_STR_EQ(out, "0");
	be_end(be);
}

/* Line `line` (1-based) of redis-cli ARGS against 127.0.0.1:p. */
/* Warnings a tier's handle logged. */
struct warnings {
	int n;
	char last[1024];
};

static void warn_cb(int level, const char *msg, void *payload)
{
	struct warnings *w = payload;
	if (level <= LARDER_LOG_WARN) {
		w->n++;
		snprintf(w->last, sizeof w->last, "%s", msg);
	}
}

static void put_bytes(larder *db, const char *key, size_t len)
{
	uint8_t *p = pattern_new(len, 5);
	/* Refused by the shared tier or not, the put succeeds: near. */
	ASSERT_RC(
	    db, larder_put(db, "r", key, strlen(key), "v", 1, p, len, NULL), 0);
	free(p);
}

TEST(refusals_are_counted_and_warned_once_per_kind_the_tier_stays_up)
{
	char u[700];
	snprintf(u, sizeof u, "%s?max_entry=4096&prefix=refuse:", uri);
	struct warnings w = {0};
	larder_opts o = LARDER_OPTS_INIT;
	o.flags = LARDER_OPEN_CREATE;
	o.fsync = LARDER_FSYNC_NONE;
	o.shared = u;
	o.log = warn_cb;
	o.log_payload = &w;
	larder *db;
	ASSERT_RC(NULL, larder_open(&db, test_path("refusing"), &o), 0);
	ASSERT_EQ(w.n, 0);
	/* Over max_entry: one warning naming the tier (masked), the size
	 * and the limit, however many entries are refused. */
	put_bytes(db, "big1", 8192);
	put_bytes(db, "big2", 9000);
	ASSERT_EQ(larder_counter(db, LARDER_CTR_SHARED_REFUSED), 2);
	ASSERT_EQ(w.n, 1);
	ASSERT(strstr(w.last, "shared tier 'redis://:***@127.0.0.1:") != NULL);
	ASSERT(strstr(w.last, password) == NULL);
	ASSERT(strstr(w.last, "refused") != NULL);
	ASSERT(strstr(w.last, "8192 bytes") != NULL);
	ASSERT(strstr(w.last, "max_entry=4096") != NULL);
	put_bytes(db, "small", 100);
	ASSERT_EQ(larder_counter(db, LARDER_CTR_SHARED_REFUSED), 2);
	/* min-replicas-to-write with no replica: Redis refuses each write
	 * (NOREPLICAS). A refusal of that write, warned once; not an
	 * outage: no shared_errors, no back-off. */
	redis_cli("config set min-replicas-to-write 1");
	put_bytes(db, "norep1", 100);
	put_bytes(db, "norep2", 100);
	redis_cli("config set min-replicas-to-write 0");
	ASSERT_EQ(larder_counter(db, LARDER_CTR_SHARED_REFUSED), 4);
	ASSERT_EQ(larder_counter(db, LARDER_CTR_SHARED_ERRORS), 0);
	ASSERT_EQ(ldr_test_tier_retry_now(db), 0);
	ASSERT_EQ(w.n, 2);
	ASSERT(strstr(w.last, "NOREPLICAS") != NULL);
	ASSERT(strstr(w.last, "***@127.0.0.1:") != NULL);
	/* Redis full (OOM under noeviction): its reply in one warning. */
	char policy[64];
	redis_out2("config get maxmemory-policy", policy, sizeof policy);
	redis_cli("config set maxmemory-policy noeviction");
	redis_cli("config set maxmemory 1");
	put_bytes(db, "oom1", 100);
	put_bytes(db, "oom2", 100);
	redis_cli("config set maxmemory 0");
	char cmd[128];
	snprintf(cmd, sizeof cmd, "config set maxmemory-policy %s", policy);
	redis_cli(cmd);
	ASSERT_EQ(larder_counter(db, LARDER_CTR_SHARED_REFUSED), 6);
	ASSERT_EQ(larder_counter(db, LARDER_CTR_SHARED_ERRORS), 0);
	ASSERT_EQ(w.n, 3);
	ASSERT(strstr(w.last, "OOM") != NULL);
	/* Still up: a small entry goes to Redis again. */
	put_bytes(db, "after", 100);
	ASSERT_EQ(larder_counter(db, LARDER_CTR_SHARED_REFUSED), 6);
	larder_close(db);
}

static void cli_line(int p, const char *pw, const char *args, int line,
		     char *out, size_t n)
{
	char cmd[1024];
	snprintf(cmd, sizeof cmd,
		 "REDISCLI_AUTH=%s redis-cli -h 127.0.0.1 -p %d %s 2>/dev/null "
		 "| sed -n %dp",
		 pw, p, args, line);
	FILE *f = popen(cmd, "r");
	ASSERT(f);
	out[0] = '\0';
	if (!fgets(out, (int)n, f))
		out[0] = '\0';
	out[strcspn(out, "\r\n")] = '\0';
	pclose(f);
}

TEST(sentinel_finds_the_master_waits_for_replicas_and_follows_a_failover)
{
	struct redis_run rr;
	struct redis_where rw;
	redis_run_need(&rr, REDIS_SH, "--replica --sentinel", &rw);
	char u[700], cmd[300], out[64];
	snprintf(u, sizeof u, "%s?timeout_ms=1000&wait_replicas=1&wait_ms=5000",
		 rw.sentinel_uri);
	larder *db = db_open();
	struct ldr_backend *be = be_open_uri(db, u);
	uint8_t p[20000];
	test_fill_pattern(p, sizeof p, 21);
	struct ldr_name n1, n2, n3;
	name_of(&n1, "sn", "k", "v1");
	name_of(&n2, "sn", "k", "v2");
	name_of(&n3, "sn", "k", "v3");
	ASSERT_RC(db, publish(be, &n1, p, sizeof p, 5000, 0, 0), 0);
	uint8_t *got;
	size_t len;
	read_is(be, &n1, p, sizeof p);
	/* WAIT 1 returned: the replica has the manifest. */
	char e[33];
	hexs(e, n1.hash);
	snprintf(cmd, sizeof cmd, "exists 'larder:{%s}:m'", e);
	cli_line(rw.replica_port, rw.password, cmd, 1, out, sizeof out);
	ASSERT_STR_EQ(out, "1");

	/* A master that sees too few replicas refuses: a clear error. */
	cli_line(rw.port, rw.password, "config set min-replicas-to-write 2", 1,
		 out, sizeof out);
	ASSERT_STR_EQ(out, "OK");
	ASSERT(publish(be, &n2, p, sizeof p, 5000, 0, 0) < 0);
	ASSERT(strstr(larder_errmsg(db), "NOREPLICAS"));
	ASSERT(strstr(larder_errmsg(db), "min-replicas-to-write"));
	ASSERT(strstr(larder_errmsg(db), rw.password) == NULL);
	ASSERT_EQ(read_verified(be, &n2, &got, &len), LARDER_ENOTFOUND);
	cli_line(rw.port, rw.password, "config set min-replicas-to-write 0", 1,
		 out, sizeof out);
	ASSERT_STR_EQ(out, "OK");

	/* The master dies; the sentinels promote the replica, and the
	 * backend finds it by asking them again (each call bounded: polled
	 * until a publish goes through, within a generous bound). */
	pid_t mpid = redis_run_pid(&rr, "master");
	ASSERT(mpid > 1 && kill(mpid, SIGKILL) == 0);
	int rc = -1;
	for (int i = 0; i < 300 && rc != 0; i++) {
		rc = publish(be, &n3, p, sizeof p, 5000, 0, 0);
		ASSERT(rc == 0 || rc == LARDER_EIO || rc == LARDER_ETIMEOUT);
		if (rc)
			usleep(200000);
	}
	ASSERT_RC(db, rc, 0);
	cli_line(rw.replica_port, rw.password, "role", 1, out, sizeof out);
	ASSERT_STR_EQ(out, "master");
	ASSERT_RC(db, read_verified(be, &n3, &got, &len), 0);
	free(got);
	/* What was replicated before the failover is still there. */
	read_is(be, &n1, p, sizeof p);
	be->ops->close(be);
	larder_close(db);
	redis_run_stop(&rr);
}

TEST(a_flushed_script_cache_and_a_killed_connection_are_survived)
{
	larder *db;
	struct ldr_name n;
	struct ldr_backend *be = be_start(&db, &n, "re", "v");
	uint8_t p[3000];
	test_fill_pattern(p, sizeof p, 31);
	ASSERT_RC(db, publish(be, &n, p, sizeof p, 1000, 0, 0), 0);
	/* The server forgets the scripts (a restart, a failover): EVALSHA
	 * says NOSCRIPT, and EVAL runs them. */
	redis_cli("script flush");
	ASSERT_RC(db, be->ops->head_set(be, &n, 0), 0);
	uint8_t *ver;
	size_t vlen;
	ASSERT_RC(db, be->ops->head_get(be, &n, &ver, &vlen), 0);
	ASSERT_MEM_EQ(ver, "v", 1);
	free(ver);
	/* A chunked entry's commit goes pipelined behind its chunks by
	 * EVALSHA: NOSCRIPT there too is run again by EVAL. */
	redis_cli("script flush");
	struct ldr_name big;
	name_of(&big, "re", "k", "big");
	size_t blen = (256u << 10) + 1;
	uint8_t *bp = pattern_new(blen, 32);
	ASSERT_RC(db, publish(be, &big, bp, blen, 65536, 0, 0), 0);
	uint8_t *bgot;
	size_t bgl;
	ASSERT_RC(db, read_verified(be, &big, &bgot, &bgl), 0);
	ASSERT_EQ(bgl, blen);
	ASSERT_MEM_EQ(bgot, bp, blen);
	free(bgot);
	free(bp);
	/* The server closes every client connection: the kept one is
	 * found broken by the next command, which reconnects once. */
	redis_cli("client kill type normal");
	read_is(be, &n, p, sizeof p);
	redis_cli("client kill type normal");
	ASSERT_EQ(be->ops->remove(be, &n, NULL), 1);
	be_end(be);
}

TEST(get_many_through_the_handle_pipelines_hits_misses_and_bad_entries)
{
	larder *db = db_open();
	struct ldr_backend *be = be_open(db);
	ldr_test_be_hang(db, be);
	/* Inline and chunked hits, an inline entry tampered with, a
	 * chunked one whose chunk was deleted, a key never put, and a
	 * version-less key: one batch, each key its own result. */
	const char *k[6] = {"inline",	 "chunked", "tampered",
			    "lostchunk", "never",   "headed"};
	size_t size[6] = {4096, 5u << 20, 3000, 5u << 20, 0, 20000};
	uint8_t *p[6];
	for (int i = 0; i < 6; i++) {
		p[i] = xmalloc(size[i] + 1);
		test_fill_pattern(p[i], size[i], 40 + (uint64_t)i);
		if (i != 4)
			ASSERT_RC(db,
				  larder_put(db, "many", k[i], strlen(k[i]),
					     "v", 1, p[i], size[i], NULL),
				  0);
	}
	struct ldr_name n;
	name_of(&n, "many", "tampered", "v");
	tamper_manifest(&n);
	name_of(&n, "many", "lostchunk", "v");
	tamper(&n, 1);
	const void *keys[6], *vers[6];
	size_t klens[6], vlens[6];
	for (int i = 0; i < 6; i++) {
		keys[i] = k[i];
		klens[i] = strlen(k[i]);
		vers[i] = i == 5 ? NULL : "v";
		vlens[i] = i == 5 ? 0 : 1;
	}
	int want[6] = {
	    0, 0, LARDER_ENOTFOUND, LARDER_ENOTFOUND, LARDER_ENOTFOUND, 0};
	for (int round = 0; round < 2; round++) {
		larder_entry *out[6];
		int rc[6];
		ASSERT_RC(db,
			  larder_get_many(db, "many", 6, keys, klens, vers,
					  vlens, out, rc),
			  0);
		for (int i = 0; i < 6; i++) {
			ASSERT_EQ(rc[i], want[i]);
			if (want[i]) {
				ASSERT(out[i] == NULL);
				continue;
			}
			ASSERT_EQ(larder_entry_size(out[i]), size[i]);
			ASSERT_MEM_EQ(larder_entry_data(out[i]), p[i], size[i]);
			larder_entry_release(out[i]);
		}
	}
	/* The bad ones were taken out of Redis by the first batch. */
	char e[33], out[64];
	for (int i = 2; i <= 3; i++) {
		name_of(&n, "many", k[i], "v");
		hexs(e, n.hash);
		redis_outf(out, sizeof out, "exists 'larder:{%s}:m'", e);
		ASSERT_STR_EQ(out, "0");
	}
	for (int i = 0; i < 6; i++)
		free(p[i]);
	larder_close(db); /* closes the backend hung on it */
}

/* ------------------------------------------------------------------ */
/* Batch put                                                           */

/* A handle for the put_many test: the Redis backend under prefix pre
 * hung on a store of its own (near 0), or a near store with that Redis
 * as its shared tier (near 1). */
static larder *batch_open(const char *pre, int near)
{
	char u[700], dir[64];
	snprintf(u, sizeof u, "%s?max_entry=400000&prefix=%s:", uri, pre);
	snprintf(dir, sizeof dir, "store-%s", pre);
	larder_opts o = LARDER_OPTS_INIT;
	o.flags = LARDER_OPEN_CREATE;
	o.fsync = LARDER_FSYNC_NONE;
	if (near)
		o.shared = u;
	larder *db = NULL;
	ASSERT_RC(db, larder_open(&db, test_path("%s", dir), &o), 0);
	if (!near)
		ldr_test_be_hang(db, be_open_uri(db, u));
	return db;
}

/* Flip a byte of the inline entry (ns, key, ver)'s payload under prefix
 * pre behind larder's back: whole, but corrupt. */
static void corrupt_inline(const char *pre, const char *ns, const char *key,
			   const char *ver)
{
	struct ldr_name n;
	name_of(&n, ns, key, ver);
	char e[33], cmd[512];
	hexs(e, n.hash);
	snprintf(cmd, sizeof cmd,
		 "eval \"local v = redis.call('get', KEYS[1]) "
		 "local c = string.char((string.byte(v, -1) + 1) %% 256) "
		 "return redis.call('set', KEYS[1], string.sub(v, 1, -2) .. c, "
		 "'keepttl')\" 1 '%s:{%s}:m'",
		 pre, e);
	redis_cli(cmd);
}

/* larder_put_many through Redis and through near+Redis gives each key
 * exactly what larder_put gives it: a mix of new entries (inline and in
 * chunks), one already there with other bytes, one too large for the
 * Redis tier (max_entry), and one there but corrupt; and a get of each
 * afterwards gives the same bytes both ways. */
TEST(put_many_gives_each_key_what_put_gives_it_on_redis_and_near_redis)
{
	enum { K = 7 };
	const char *k[K] = {"new1", "new2",    "chunked", "existing",
			    "big",  "corrupt", "empty"};
	size_t size[K] = {4096, 70000, 300000, 3000, 500000, 2000, 0};
	uint8_t *p[K], *old = xmalloc(3001);
	test_fill_pattern(old, 3000, 99);
	for (int i = 0; i < K; i++) {
		p[i] = xmalloc(size[i] + 1);
		test_fill_pattern(p[i], size[i], 60 + (uint64_t)i);
	}
	const void *keys[K], *vers[K], *data[K];
	size_t klens[K], vlens[K];
	for (int i = 0; i < K; i++) {
		keys[i] = k[i];
		klens[i] = strlen(k[i]);
		vers[i] = "v";
		vlens[i] = 1;
		data[i] = p[i];
	}
	for (int near = 0; near < 2; near++) {
		int rc[2][K];
		larder *db[2];
		for (int way = 0; way < 2; way++) {
			char pre[32];
			snprintf(pre, sizeof pre, "pm%d%d", near, way);
			db[way] = batch_open(pre, near);
			larder *d = db[way];
			/* What stands before: other bytes under "existing",
			 * and an entry corrupted behind larder's back. */
			ASSERT_RC(d,
				  larder_put(d, "pm", "existing", 8, "v", 1,
					     old, 3000, NULL),
				  0);
			ASSERT_RC(d,
				  larder_put(d, "pm", "corrupt", 7, "v", 1,
					     p[5], size[5], NULL),
				  0);
			corrupt_inline(pre, "pm", "corrupt", "v");
			if (way == 0)
				for (int i = 0; i < K; i++)
					rc[way][i] = larder_put(
					    d, "pm", keys[i], klens[i], "v", 1,
					    data[i], size[i], NULL);
			else
				ASSERT_RC(d,
					  larder_put_many(
					      d, "pm", K, keys, klens, vers,
					      vlens, data, size, NULL, rc[way]),
					  0);
		}
		for (int i = 0; i < K; i++) {
			if (rc[0][i] != rc[1][i])
				test_fail(__FILE__, __LINE__,
					  "near %d key %s: put %d, put_many %d",
					  near, k[i], rc[0][i], rc[1][i]);
		}
		/* Redis alone: the refusal is the caller's; behind near,
		 * near takes it. */
		int want[K] = {0,
			       0,
			       0,
			       LARDER_EXISTS,
			       near ? 0 : LARDER_EFULL,
			       LARDER_EXISTS,
			       0};
		for (int i = 0; i < K; i++)
			ASSERT_EQ(rc[1][i], want[i]);
		for (int i = 0; i < K; i++) {
			larder_entry *e[2] = {NULL, NULL};
			int g[2];
			for (int way = 0; way < 2; way++)
				g[way] = larder_get(&e[way], db[way], "pm",
						    k[i], strlen(k[i]), "v", 1);
			ASSERT_EQ(g[0], g[1]);
			if (g[0] == 0) {
				size_t want_len = i == 3 ? 3000 : size[i];
				const uint8_t *want_p = i == 3 ? old : p[i];
				for (int way = 0; way < 2; way++) {
					ASSERT_EQ(larder_entry_size(e[way]),
						  want_len);
					ASSERT_MEM_EQ(larder_entry_data(e[way]),
						      want_p, want_len);
					larder_entry_release(e[way]);
				}
			}
		}
		/* The heads moved as a put moves them. */
		for (int way = 0; way < 2; way++) {
			larder_entry *e = NULL;
			ASSERT_RC(
			    db[way],
			    larder_get(&e, db[way], "pm", "new1", 4, NULL, 0),
			    0);
			ASSERT_MEM_EQ(larder_entry_data(e), p[0], size[0]);
			larder_entry_release(e);
			larder_close(db[way]);
		}
	}
	for (int i = 0; i < K; i++)
		free(p[i]);
	free(old);
}

/* How many times the server ran commands whose name matches the
 * extended regex `re` since its statistics were last reset. */
static long calls_of(const char *re)
{
	char args[256], out[64];
	snprintf(args, sizeof args,
		 "INFO commandstats | grep -E '^cmdstat_(%s):' | "
		 "awk -F'[=,]' '{n+=$2} END {print n+0}'",
		 re);
	redis_out(args, out, sizeof out);
	return atol(out);
}

/* A small put's commit is plain commands in one round trip: no script,
 * no MULTI/EXEC; the set of namespaces gets its SADD once, not on every
 * put (docs/backends.md, "Round trips"); and what it published reads
 * back, the head naming it. */
TEST(a_put_is_plain_commands_and_adds_its_namespace_once)
{
	larder *db = batch_open("pc", 0);
	uint8_t p[4096];
	memset(p, 0x61, sizeof p);
	redis_cli("CONFIG RESETSTAT");
	ASSERT_RC(
	    db, larder_put(db, "pcns", "k", 1, "v1", 2, p, sizeof p, NULL), 0);
	char out[64];
	redis_out("SISMEMBER pc:ns pcns", out, sizeof out);
	ASSERT_STR_EQ(out, "1");
	ASSERT_EQ(calls_of("sadd"), 2); /* the namespace's, the entry's */
	p[0] = 0x62;
	ASSERT_RC(
	    db, larder_put(db, "pcns", "k", 1, "v2", 2, p, sizeof p, NULL), 0);
	ASSERT_EQ(calls_of("sadd"), 3); /* the entry's alone */
	ASSERT_EQ(calls_of("eval|evalsha|multi|exec"), 0);
	larder_entry *e = NULL;
	ASSERT_RC(db, larder_get(&e, db, "pcns", "k", 1, NULL, 0), 0);
	ASSERT_EQ(larder_entry_size(e), sizeof p);
	ASSERT_MEM_EQ(larder_entry_data(e), p, sizeof p);
	larder_entry_release(e);
	larder_close(db);
}

/* How many chunk keys are in Redis under prefix pre. */
static long chunks_under(const char *pre)
{
	char args[128], out[64];
	snprintf(args, sizeof args, "--scan --pattern '%s:*' | grep -c ':c:'",
		 pre);
	redis_out(args, out, sizeof out);
	return atol(out);
}

/* A put larger than the writer's buffer goes to Redis as it is written
 * (a chunk is sent before the commit), with no copy of the entry made
 * in memory first; an abort takes back what was sent, and a commit
 * publishes it whole. */
TEST(a_large_put_streams_to_redis_and_an_abort_leaves_no_chunk)
{
	larder *db = db_open();
	char u[700];
	snprintf(u, sizeof u, "%s?prefix=ls:", uri);
	ldr_test_be_hang(db, be_open_uri(db, u));
	size_t len = (5u << 20) + 123;
	uint8_t *p = xmalloc(len);
	for (size_t i = 0; i < len; i++)
		p[i] = (uint8_t)(i * 2654435761u >> 11);
	for (int commit = 0; commit < 2; commit++) {
		larder_writer *w = NULL;
		ASSERT_RC(
		    db, larder_writer_begin(&w, db, "ls", "k", 1, "v", 1, NULL),
		    0);
		for (size_t at = 0; at < len; at += 1u << 20)
			ASSERT_RC(db,
				  larder_writer_write(w, p + at,
						      len - at < (1u << 20)
							  ? len - at
							  : 1u << 20),
				  0);
		ASSERT(chunks_under("ls") >= 1);
		if (!commit) {
			larder_writer_abort(w);
			ASSERT_EQ(chunks_under("ls"), 0);
			continue;
		}
		ASSERT_RC(db, larder_writer_commit(w), 0);
	}
	larder_entry *e = NULL;
	ASSERT_RC(db, larder_get(&e, db, "ls", "k", 1, "v", 1), 0);
	ASSERT_EQ(larder_entry_size(e), len);
	ASSERT_MEM_EQ(larder_entry_data(e), p, len);
	larder_entry_release(e);
	larder_close(db);
	free(p);
}
