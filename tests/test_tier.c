/*
 * test_tier.c — a near tier in front of a shared one (docs/backends.md,
 * "Tiers"), through the public API: stores with a shared directory behind
 * them, as `larder init --shared DIR` makes them. "Hosts" are near stores
 * of their own on one shared directory: handles in this process, or
 * fill_worker processes in PID+UTS namespaces of their own (unshare), as
 * test_fill_hosts.c plays them.
 *
 * With LARDER_TEST_SHARED=<where> (tests/redis/tier.sh: a private
 * Redis), the cases that need no shared directory run on that tier.
 * (The conformance suite runs on a tier too: test_backend_tier.)
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fill_spawn.h"
#include "harness.h"
#include "larder.h"
#include "store_util.h"
#include "testing.h"

#define KiB 1024u

/* The shared tier of a test: a fresh store directory, made as `larder
 * init` makes one; or, with LARDER_TEST_SHARED set (tests/redis/tier.sh:
 * a redis:// URI of a private server), that tier under a key prefix of
 * this call's own, so that no two tests meet there. */
static const char *make_shared(const char *name)
{
	static char path[8][4096];
	static int next;
	char *p = path[next++ % 8];
	const char *where = getenv("LARDER_TEST_SHARED");
	if (where && *where) {
		snprintf(p, 4096, "%s%cprefix=t%ld-%d-%s:", where,
			 strchr(where, '?') ? '&' : '?', (long)getpid(), next,
			 name);
		return p;
	}
	snprintf(p, 4096, "%s", test_path("%s", name));
	larder_opts o = LARDER_OPTS_INIT;
	o.flags = LARDER_OPEN_CREATE;
	o.shared = "";
	larder_close(open_store_at(p, &o));
	return p;
}

/* The cases that look at (or remove) the shared directory behind the
 * tier's back run on a directory only. */
static void dir_only(void)
{
	const char *where = getenv("LARDER_TEST_SHARED");
	if (where && *where)
		test_skip("looks at the shared directory behind the tier's "
			  "back");
}

static uint8_t *pattern(size_t n, const char *key, const char *ver)
{
	return pattern_new(n, seed_of_kv(key, strlen(key), ver, strlen(ver)));
}

static void put(larder *db, const char *key, const char *ver, size_t n,
		const char *as)
{
	uint8_t *b = pattern(n, key, as ? as : ver);
	ASSERT_RC(db,
		  larder_put(db, "default", key, strlen(key), ver, strlen(ver),
			     b, n, NULL),
		  0);
	free(b);
}

/* The get of (key, ver) is the pattern of (key, as) and n bytes. */
static void expect(larder *db, const char *key, const char *ver, size_t n,
		   const char *as)
{
	larder_entry *e;
	ASSERT_RC(db,
		  larder_get(&e, db, "default", key, strlen(key), ver,
			     ver ? strlen(ver) : 0),
		  0);
	ASSERT_EQ(larder_entry_size(e), n);
	uint8_t *want = pattern(n, key, as ? as : ver);
	ASSERT_MEM_EQ(larder_entry_data(e), want, n);
	free(want);
	larder_entry_release(e);
}

/* ---------------------------------------------------------------------- */

TEST(shared_hit_is_copied_into_near_and_served_with_shared_gone)
{
	dir_only();
	const char *shared = make_shared("shared");
	larder *a = open_host("a", shared, NULL);
	larder *b = open_host("b", shared, NULL);
	ASSERT_STR_EQ(larder_shared(b), shared);
	put(a, "k", "v", 300 * KiB, NULL);
	put(a, "small", "v", 3 * KiB, NULL);
	/* B's near has neither: shared answers, verified, and near gets a
	 * copy. */
	expect(b, "k", "v", 300 * KiB, NULL);
	expect(b, "small", "v", 3 * KiB, NULL);
	ASSERT_EQ(larder_counter(b, LARDER_CTR_SHARED_HITS), 2);
	ASSERT_EQ(larder_counter(b, LARDER_CTR_SHARED_COPIES), 2);
	expect(b, "k", "v", 300 * KiB, NULL);
	ASSERT_EQ(larder_counter(b, LARDER_CTR_NEAR_HITS), 1);
	/* Version-less: shared's head names v, and near's follows it. */
	expect(b, "small", NULL, 3 * KiB, "v");
	larder_close(a);
	larder_close(b);
	/* The shared tier gone: B's near serves what it copied. */
	ASSERT_EQ(test_sh("rm -rf '%s'", shared), 0);
	struct logbook lb;
	b = open_host("b", shared, &lb);
	expect(b, "k", "v", 300 * KiB, NULL);
	expect(b, "small", "v", 3 * KiB, NULL);
	ASSERT_EQ(larder_counter(b, LARDER_CTR_NEAR_HITS), 2);
	expect(b, "small", NULL, 3 * KiB, "v");
	larder_close(b);
	/* And near alone, opened without the tier, holds the copies. */
	b = open_host("b", "", NULL);
	ASSERT(larder_shared(b) == NULL);
	expect(b, "k", "v", 300 * KiB, NULL);
	larder_close(b);
}

TEST(get_many_reads_near_then_shared_and_copies_shared_hits_into_near)
{
	const char *shared = make_shared("shared");
	larder *a = open_host("a", shared, NULL);
	larder *b = open_host("b", shared, NULL);
	/* In B's near: k0 (its own put); in shared only: the rest. */
	const char *k[5] = {"k0", "k1", "k2", "k3", "nope"};
	size_t size[5] = {3 * KiB, 300 * KiB, 20 * KiB, 5 * KiB, 0};
	put(b, k[0], "v", size[0], NULL);
	for (int i = 1; i < 4; i++)
		put(a, k[i], "v", size[i], NULL);
	const void *keys[5], *vers[5];
	size_t klens[5], vlens[5];
	for (int i = 0; i < 5; i++) {
		keys[i] = k[i];
		klens[i] = strlen(k[i]);
		vers[i] = i == 3 ? NULL : "v"; /* k3: shared's head */
		vlens[i] = i == 3 ? 0 : 1;
	}
	for (int round = 0; round < 2; round++) {
		larder_entry *out[5];
		int rc[5];
		uint64_t near0 = larder_counter(b, LARDER_CTR_NEAR_HITS),
			 shared0 = larder_counter(b, LARDER_CTR_SHARED_HITS);
		ASSERT_RC(b,
			  larder_get_many(b, "default", 5, keys, klens, vers,
					  vlens, out, rc),
			  0);
		for (int i = 0; i < 5; i++) {
			ASSERT_EQ(rc[i], i == 4 ? LARDER_ENOTFOUND : 0);
			if (i == 4) {
				ASSERT(out[i] == NULL);
				continue;
			}
			ASSERT_EQ(larder_entry_size(out[i]), size[i]);
			uint8_t *want = pattern(size[i], k[i], "v");
			ASSERT_MEM_EQ(larder_entry_data(out[i]), want, size[i]);
			free(want);
			larder_entry_release(out[i]);
		}
		/* The first batch: k0 near, three from shared, copied into
		 * near; the second: all four near. */
		ASSERT_EQ(larder_counter(b, LARDER_CTR_NEAR_HITS) - near0,
			  round ? 4 : 1);
		ASSERT_EQ(larder_counter(b, LARDER_CTR_SHARED_HITS) - shared0,
			  round ? 0 : 3);
		ASSERT_EQ(larder_counter(b, LARDER_CTR_SHARED_COPIES), 3);
	}
	larder_close(a);
	larder_close(b);
}

TEST(a_put_goes_to_shared_and_near)
{
	dir_only();
	const char *shared = make_shared("shared");
	larder *a = open_host("a", shared, NULL);
	put(a, "k", "v", 5 * KiB, NULL);
	larder_close(a);
	/* Each tier alone holds it. */
	larder *s = open_store_at(shared, NULL);
	expect(s, "k", "v", 5 * KiB, NULL);
	larder_close(s);
	a = open_host("a", "", NULL);
	expect(a, "k", "v", 5 * KiB, NULL);
	larder_close(a);
}

TEST(a_name_shared_holds_already_is_what_near_gets)
{
	const char *shared = make_shared("shared");
	larder *a = open_host("a", shared, NULL);
	larder *b = open_host("b", shared, NULL);
	put(a, "k", "v", 4 * KiB, "first");
	/* B publishes other bytes under the same name: the shared entry
	 * stands, and it is the one B's near gets. */
	uint8_t *other = pattern(4 * KiB, "k", "second");
	ASSERT_EQ(
	    larder_put(b, "default", "k", 1, "v", 1, other, 4 * KiB, NULL),
	    LARDER_EXISTS);
	free(other);
	expect(b, "k", "v", 4 * KiB, "first");
	larder_close(a);
	larder_close(b);
	b = open_host("b", "", NULL);
	expect(b, "k", "v", 4 * KiB, "first");
	larder_close(b);
}

TEST(a_corrupt_shared_entry_is_never_served_and_is_loaded_again)
{
	dir_only();
	const char *shared = make_shared("shared");
	larder *a = open_host("a", shared, NULL);
	fill_loads = 0;
	ASSERT_EQ(fill_pattern(a, "k", 6 * KiB), LARDER_FILLED);
	larder_close(a);
	/* One byte of the shared entry's payload flipped behind larder's
	 * back. */
	ASSERT_EQ(test_sh("f=$(find '%s/ns/default/e' -type f) && "
			  "[ $(echo \"$f\" | wc -l) = 1 ] && chmod u+w \"$f\" "
			  "&& printf 'X' | dd of=\"$f\" bs=1 conv=notrunc "
			  "seek=$(($(stat -c %%s \"$f\") - 7)) 2>/dev/null",
			  shared),
		  0);
	larder *b = open_host("b", shared, NULL);
	larder_entry *e;
	ASSERT_EQ(larder_get(&e, b, "default", "k", 1, "v", 1),
		  LARDER_ENOTFOUND);
	ASSERT_EQ(larder_counter(b, LARDER_CTR_SHARED_COPIES), 0);
	/* Taken out of the shared tier (its quarantine), not just
	 * skipped. */
	larder *s = open_store_at(shared, NULL);
	ASSERT_EQ(larder_get(&e, s, "default", "k", 1, "v", 1),
		  LARDER_ENOTFOUND);
	larder_close(s);
	ASSERT_EQ(
	    test_sh("[ $(find '%s/quarantine' -type f | wc -l) = 1 ]", shared),
	    0);
	/* Taken out of the shared tier: the next fill loads again, and
	 * both tiers hold the good bytes. */
	ASSERT_EQ(fill_pattern(b, "k", 6 * KiB), LARDER_FILLED);
	ASSERT_EQ(fill_loads, 2);
	larder_close(b);
	s = open_store_at(shared, NULL);
	expect(s, "k", "v", 6 * KiB, NULL);
	larder_close(s);
}

TEST(version_less_gets_ask_the_shared_head)
{
	const char *shared = make_shared("shared");
	larder *a = open_host("a", shared, NULL);
	/* B asks shared every time (shared_head_age_ms 0). */
	larder *b0 = open_host("b", "", NULL);
	larder_close(b0);
	ASSERT_EQ(test_sh("printf 'shared_head_age_ms 0\\n' >> '%s/config' "
			  "&& chmod 600 '%s/config'",
			  test_path("b"), test_path("b")),
		  0);
	larder *b = open_host("b", shared, NULL);
	put(a, "k", "v1", 2 * KiB, NULL);
	expect(b, "k", NULL, 2 * KiB, "v1");
	put(a, "k", "v2", 2 * KiB, NULL);
	/* B's near head names v1 (it copied v1 in); shared's, v2. */
	expect(b, "k", NULL, 2 * KiB, "v2");
	ASSERT(larder_counter(b, LARDER_CTR_SHARED_HEAD_CHECKS) >= 2);
	larder_close(a);
	larder_close(b);
}

TEST(shared_tier_gone_near_only_with_one_warning_and_no_data_lost)
{
	dir_only();
	const char *shared = make_shared("shared");
	struct logbook lb;
	larder *a = open_host("a", shared, &lb);
	put(a, "before", "v", 2 * KiB, NULL);
	ASSERT_EQ(lb.warnings, 0);
	/* The shared directory goes while the handle is open. */
	ASSERT_EQ(test_sh("rm -rf '%s'", shared), 0);
	fill_loads = 0;
	for (int i = 0; i < 5; i++) {
		char key[16];
		snprintf(key, sizeof key, "k%d", i);
		/* Loaded, returned, and kept in near. */
		ASSERT_EQ(fill_pattern(a, key, 3 * KiB), LARDER_FILLED);
		ASSERT_EQ(fill_pattern(a, key, 3 * KiB), LARDER_HIT);
		put(a, key, "p", KiB, NULL);
	}
	ASSERT_EQ(fill_loads, 5);
	expect(a, "before", "v", 2 * KiB, NULL);
	/* One warning for the outage, naming the tier and the call. */
	ASSERT_EQ(lb.warnings, 1);
	ASSERT(strstr(lb.last, shared) != NULL);
	ASSERT(strstr(lb.last, "shared tier") != NULL);
	ASSERT(strstr(lb.last, "publish") != NULL);
	uint64_t errs = larder_counter(a, LARDER_CTR_SHARED_ERRORS);
	uint64_t skipped = larder_counter(a, LARDER_CTR_SHARED_SKIPPED);
	ASSERT(errs >= 1);
	ASSERT(errs + skipped >= 10);
	/* Each back-off ended (as if its time ran out), the tier is tried
	 * again, fails again: the back-off doubles up to 30 s, and the
	 * outage is still one warning. */
	unsigned want = 1000;
	for (int i = 0; i < 8; i++) {
		ASSERT_EQ(ldr_test_tier_retry_now(a), want);
		uint64_t e0 = larder_counter(a, LARDER_CTR_SHARED_ERRORS);
		char ver[8];
		snprintf(ver, sizeof ver, "v%d", i);
		put(a, "again", ver, KiB, NULL);
		ASSERT_EQ(larder_counter(a, LARDER_CTR_SHARED_ERRORS), e0 + 1);
		want = want * 2 > 30000 ? 30000 : want * 2;
	}
	ASSERT_EQ(ldr_test_tier_retry_now(a), 30000);
	ASSERT_EQ(lb.warnings, 1);
	larder_close(a);
}

TEST(shared_tier_back_after_an_outage_is_used_again)
{
	dir_only();
	struct logbook lb;
	const char *later = test_path("later");
	larder *a = open_host("a", later, &lb);
	/* Missing at open is seen at the first use: the put. */
	ASSERT_EQ(lb.warnings, 0);
	put(a, "k", "v", KiB, NULL);
	ASSERT_EQ(lb.warnings, 1);
	/* It comes up; at the end of the back-off it is used again. */
	const char *shared = make_shared("later");
	ASSERT_EQ(ldr_test_tier_retry_now(a), 1000);
	put(a, "k2", "v", KiB, NULL);
	ASSERT_EQ(ldr_test_tier_retry_now(a), 0);
	larder *s = open_store_at(shared, NULL);
	expect(s, "k2", "v", KiB, NULL);
	larder_close(s);
	ASSERT_EQ(lb.warnings, 1);
	larder_close(a);
}

TEST(shared_tier_missing_at_open_is_a_warning_at_first_use_not_a_failure)
{
	dir_only();
	struct logbook lb;
	larder *a = open_host("a", test_path("nowhere"), &lb);
	/* The open does not try it: its first use does, and says so. */
	ASSERT_EQ(lb.warnings, 0);
	ASSERT_EQ(larder_counter(a, LARDER_CTR_SHARED_ERRORS), 0);
	fill_loads = 0;
	ASSERT_EQ(fill_pattern(a, "k", 2 * KiB), LARDER_FILLED);
	ASSERT_EQ(lb.warnings, 1);
	ASSERT(strstr(lb.last, "open") != NULL);
	ASSERT(strstr(lb.last, test_path("nowhere")) != NULL);
	ASSERT_EQ(larder_counter(a, LARDER_CTR_SHARED_ERRORS), 1);
	ASSERT_EQ(fill_pattern(a, "k", 2 * KiB), LARDER_HIT);
	ASSERT_EQ(fill_loads, 1);
	ASSERT_EQ(lb.warnings, 1);
	larder_close(a);
}

/* A near hit of a given version is served without the shared tier, which
 * is not even opened: with it gone, a fresh handle's near hits (one by
 * one and in a batch) say nothing and count no error; the first near
 * miss is what tries it. */
TEST(near_hits_never_open_the_shared_tier)
{
	dir_only();
	const char *shared = make_shared("shared");
	larder *a = open_host("a", shared, NULL);
	put(a, "k", "v", 5 * KiB, NULL);
	put(a, "k2", "v", 2 * KiB, NULL);
	larder_close(a);
	ASSERT_EQ(test_sh("rm -rf '%s'", shared), 0);
	struct logbook lb;
	a = open_host("a", shared, &lb);
	expect(a, "k", "v", 5 * KiB, NULL);
	const void *keys[2] = {"k", "k2"}, *vers[2] = {"v", "v"};
	const size_t klens[2] = {1, 2}, vlens[2] = {1, 1};
	larder_entry *e[2];
	int rc[2];
	larder_get_many(a, "default", 2, keys, klens, vers, vlens, e, rc);
	ASSERT_EQ(rc[0], 0);
	ASSERT_EQ(rc[1], 0);
	ASSERT_EQ(larder_entry_size(e[1]), 2 * KiB);
	larder_entry_release(e[0]);
	larder_entry_release(e[1]);
	ASSERT_EQ(lb.warnings, 0);
	ASSERT_EQ(larder_counter(a, LARDER_CTR_SHARED_ERRORS), 0);
	ASSERT_EQ(larder_counter(a, LARDER_CTR_SHARED_SKIPPED), 0);
	/* A near miss needs the shared tier: now it is tried, and fails. */
	larder_entry *m;
	ASSERT_EQ(larder_get(&m, a, "default", "k", 1, "other", 5),
		  LARDER_ENOTFOUND);
	ASSERT_EQ(lb.warnings, 1);
	ASSERT(strstr(lb.last, "open") != NULL);
	ASSERT_EQ(larder_counter(a, LARDER_CTR_SHARED_ERRORS), 1);
	larder_close(a);
}

TEST(configuration_env_and_masking)
{
	dir_only();
	const char *shared = make_shared("shared");
	larder *a = open_host("a", "", NULL);
	/* Bad ones are refused, clearly. */
	ASSERT_EQ(larder_shared_set(a, "relative/dir"), LARDER_EINVAL);
	ASSERT(strstr(larder_errmsg(a), "absolute") != NULL);
	ASSERT_EQ(larder_shared_set(a, "redis://"), LARDER_EINVAL);
	ASSERT(strstr(larder_errmsg(a), "no host") != NULL);
	ASSERT_EQ(larder_shared_set(a, "ftp://h/x"), LARDER_EINVAL);
	ASSERT(strstr(larder_errmsg(a), "unknown scheme") != NULL);
	/* TLS: said so, rather than an unknown scheme. */
	ASSERT_EQ(larder_shared_set(a, "rediss://:pw@h:6380/0"), LARDER_EINVAL);
	ASSERT(strstr(larder_errmsg(a), "TLS") != NULL);
	ASSERT(strstr(larder_errmsg(a), "not supported") != NULL);
	ASSERT(strstr(larder_errmsg(a), "pw") == NULL);
	ASSERT_EQ(larder_shared_set(a, test_path("a")), LARDER_EINVAL);
	ASSERT_RC(a, larder_shared_set(a, shared), 0);
	larder_close(a);
	/* The store's setting. */
	a = open_host("a", NULL, NULL);
	ASSERT_STR_EQ(larder_shared(a), shared);
	larder_close(a);
	/* LARDER_SHARED overrides it; set and empty, no tier. */
	const char *other = make_shared("other");
	ASSERT_EQ(setenv("LARDER_SHARED", other, 1), 0);
	a = open_host("a", NULL, NULL);
	ASSERT_STR_EQ(larder_shared(a), other);
	larder_close(a);
	ASSERT_EQ(setenv("LARDER_SHARED", "", 1), 0);
	a = open_host("a", NULL, NULL);
	ASSERT(larder_shared(a) == NULL);
	larder_close(a);
	/* A command on the shared store itself, LARDER_SHARED naming it:
	 * no tier in front of it, and no failure. */
	ASSERT_EQ(setenv("LARDER_SHARED", shared, 1), 0);
	larder *s = open_store_at(shared, NULL);
	ASSERT(larder_shared(s) == NULL);
	larder_close(s);
	/* larder_opts.shared overrides both. */
	a = open_host("a", shared, NULL);
	ASSERT_STR_EQ(larder_shared(a), shared);
	larder_close(a);
	ASSERT_EQ(unsetenv("LARDER_SHARED"), 0);
	/* A password is never shown. */
	struct logbook lb;
	a = open_host("a", "redis://user:s3cret@127.0.0.1:1/0", &lb);
	ASSERT_STR_EQ(larder_shared(a), "redis://user:***@127.0.0.1:1/0");
	ASSERT(strstr(lb.last, "s3cret") == NULL);
	/* A URI is checked whole when set, by the Redis backend's parser:
	 * a misspelt or out-of-range setting is refused, naming it, rather
	 * than stored for a tier that would never open. (A build without
	 * Redis has no parser: it refuses such a tier when opening it.) */
	if (!strstr(lb.last, "without Redis")) {
		ASSERT_EQ(
		    larder_shared_set(a, "redis://127.0.0.1:1/0?timout_ms=5"),
		    LARDER_EINVAL);
		ASSERT(strstr(larder_errmsg(a), "'timout_ms'") != NULL);
		ASSERT_EQ(larder_shared_set(
			      a, "redis://u:pw@127.0.0.1:1/0?timeout_ms=0"),
			  LARDER_EINVAL);
		ASSERT(strstr(larder_errmsg(a), "timeout_ms must be") != NULL);
		ASSERT(strstr(larder_errmsg(a), "pw@") == NULL);
	}
	larder_close(a);
	a = open_host("a", "redis://u:p@ss@127.0.0.1:1/0?timeout_ms=5", NULL);
	ASSERT_STR_EQ(larder_shared(a),
		      "redis://u:***@127.0.0.1:1/0?timeout_ms=5");
	larder_close(a);
	/* A name alone before the '@' is a user (its password from
	 * LARDER_REDIS_PASSWORD), shown as the connection's messages show
	 * it. */
	a = open_host("a", "redis://larder@127.0.0.1:1", &lb);
	ASSERT_STR_EQ(larder_shared(a), "redis://larder@127.0.0.1:1");
	larder_entry *e;
	ASSERT_EQ(larder_get(&e, a, "default", "k", 1, "v", 1),
		  LARDER_ENOTFOUND); /* a near miss: the tier tried */
	ASSERT(strstr(lb.last, "'redis://larder@127.0.0.1:1'") != NULL);
	ASSERT_EQ(larder_shared_set(a, "redis://user:pw@"), LARDER_EINVAL);
	ASSERT_RC(a, larder_shared_set(a, "redis://:pw@127.0.0.1:1/0"), 0);
	larder_close(a);
	a = open_host("a", NULL, NULL);
	ASSERT_STR_EQ(larder_shared(a), "redis://:***@127.0.0.1:1/0");
	larder_close(a);
	/* Removed. */
	a = open_host("a", "", NULL);
	ASSERT_RC(a, larder_shared_set(a, ""), 0);
	larder_close(a);
	a = open_host("a", NULL, NULL);
	ASSERT(larder_shared(a) == NULL);
	larder_close(a);
}

/* ---------------------------------------------------------------------- */
/* Hosts in namespaces of their own                                        */

static int can_unshare(void)
{
	int st = system("unshare --pid --uts --fork --kill-child "
			"sh -c 'hostname larder-probe' >/dev/null 2>&1");
	return st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

TEST(herd_across_8_hosts_each_with_its_near_tier_loads_once)
{
	if (!can_unshare())
		test_skip("cannot run 'unshare --pid --uts --fork' and set a "
			  "hostname (needs root or user namespaces)");
	const char *shared = make_shared("shared");
	/* Every worker's larder_open takes the shared tier from here. */
	ASSERT_EQ(setenv("LARDER_SHARED", shared, 1), 0);
	static struct herd h;
	herd_init(&h, 8, 400000, 77);
	const size_t size = h.size;
	char host_name[8][32], near[8][4096];
	for (int i = 0; i < 8; i++) {
		snprintf(near[i], sizeof near[i], "%s", test_path("near%d", i));
		larder_close(open_host(strrchr(near[i], '/') + 1, "", NULL));
		snprintf(host_name[i], sizeof host_name[i], "tier-host-%d", i);
		struct wenv env = {host_name[i], NULL, 0};
		const char *more[] = {"--chunk",     "32768", "--lease", "1",
				      "--heartbeat", "0.1",   NULL};
		herd_start(&h, i, &env, near[i], more);
	}
	ASSERT_EQ(unsetenv("LARDER_SHARED"), 0);
	/* One loads while the 7 others wait, in the shared tier. */
	herd_run(&h, 20000);
	/* The shared tier holds it, and so does every host's near tier
	 * (the loader's by its publish, the others' by their copies). */
	larder *s = open_host("check", shared, NULL);
	larder_entry *e;
	ASSERT_RC(s, larder_get(&e, s, "default", "herd", 4, "v1", 2), 0);
	ASSERT_EQ(larder_entry_size(e), size);
	ASSERT_EQ(larder_counter(s, LARDER_CTR_SHARED_HITS), 1);
	larder_entry_release(e);
	larder_close(s);
	for (int i = 0; i < 8; i++) {
		larder *n = open_host(strrchr(near[i], '/') + 1, "", NULL);
		ASSERT_RC(n, larder_get(&e, n, "default", "herd", 4, "v1", 2),
			  0);
		ASSERT_EQ(larder_entry_size(e), size);
		larder_entry_release(e);
		larder_close(n);
	}
}

TEST(shared_tier_down_a_herd_on_one_host_loads_once_with_leases_in_near)
{
	dir_only();
	/* No shared tier where the setting points: every worker's near
	 * store is the same, and their leases meet there. */
	ASSERT_EQ(setenv("LARDER_SHARED", test_path("nowhere"), 1), 0);
	larder_close(open_host("near", "", NULL));
	char near[4096];
	snprintf(near, sizeof near, "%s", test_path("near"));
	static struct herd h;
	herd_init(&h, 4, 200000, 78);
	for (int i = 0; i < 4; i++) {
		struct wenv env = {NULL, NULL, 0};
		const char *more[] = {"--chunk",     "32768", "--lease", "1",
				      "--heartbeat", "0.1",   NULL};
		herd_start(&h, i, &env, near, more);
	}
	ASSERT_EQ(unsetenv("LARDER_SHARED"), 0);
	herd_run(&h, 20000);
}

/* Threads of one host: each fills and reads keys of its own and keys of
 * all, version-less too, through one handle; the shared tier is another
 * host's as well. Every answer's bytes are checked. */
static void tier_hammer(struct hammer *h)
{
	for (int i = 0; i < 40; i++) {
		char key[32], ver[16];
		snprintf(key, sizeof key, "t%d-%d", h->id, i % 10);
		snprintf(ver, sizeof ver, "v%d", i / 10);
		size_t n = 1000 + (size_t)i * 37;
		uint8_t *b = pattern(n, key, ver);
		int rc = larder_put(h->db, "default", key, strlen(key), ver,
				    strlen(ver), b, n, NULL);
		if (rc != 0 && rc != LARDER_EXISTS)
			h->bad++;
		larder_entry *e;
		if (larder_get(&e, h->db, "default", key, strlen(key), NULL,
			       0) != 0) {
			h->bad++;
		} else {
			/* The head names this version or a later one of
			 * this thread's: either way its own bytes. */
			size_t vl;
			const void *v = larder_entry_version(&vl, e);
			char got[16];
			snprintf(got, sizeof got, "%.*s", (int)vl,
				 (const char *)v);
			size_t gn = larder_entry_size(e);
			uint8_t *want = pattern(gn, key, got);
			if (memcmp(larder_entry_data(e), want, gn))
				h->bad++;
			free(want);
			larder_entry_release(e);
		}
		free(b);
		/* Another thread's key, by version, once it is there. */
		snprintf(key, sizeof key, "t%d-%d",
			 (h->id + 1) % HAMMER_THREADS, i % 10);
		if (larder_get(&e, h->db, "default", key, strlen(key), "v0",
			       2) == 0) {
			size_t gn = larder_entry_size(e);
			uint8_t *want = pattern(gn, key, "v0");
			if (memcmp(larder_entry_data(e), want, gn))
				h->bad++;
			free(want);
			larder_entry_release(e);
		}
	}
}

TEST(threads_of_one_host_through_the_tier_get_their_bytes)
{
	const char *shared = make_shared("shared");
	larder *a = open_host("a", shared, NULL);
	struct hammer h[HAMMER_THREADS];
	hammer_start(h, a, tier_hammer);
	hammer_join(h);
	larder_close(a);
	/* Another host sees every entry, from the shared tier. */
	larder *b = open_host("b", shared, NULL);
	for (int t = 0; t < HAMMER_THREADS; t++)
		for (int k = 0; k < 10; k++) {
			char key[32];
			snprintf(key, sizeof key, "t%d-%d", t, k);
			expect(b, key, "v3", 1000 + (size_t)(30 + k) * 37,
			       NULL);
		}
	larder_close(b);
}
