/*
 * test_head.c — the head cache (docs/format.md, "Head hints"): a repeat
 * version-less lookup takes the version from the handle's memory; a head
 * another handle published, replaced or removed is followed once the
 * cache's check falls due, and this handle's own at once; a removed
 * entry is a miss; the cache keeps to its bound and a forked child
 * starts without it.
 *
 * Time is driven through ldr_test_head_cache_age() and
 * ldr_test_memo_age(), never slept.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "testing.h"

/* A check interval no stall of the machine reaches between two calls,
 * so that "still served within it" does not depend on its speed. */
#define CHECK_MS 60000u

static larder *open_with(unsigned flags, unsigned entries)
{
	larder *db = NULL;
	larder_opts o = LARDER_OPTS_INIT;
	o.flags = LARDER_OPEN_CREATE | flags;
	o.fsync = LARDER_FSYNC_NONE;
	o.create_fsync = LARDER_FSYNC_NONE;
	o.memo_check_ms = CHECK_MS;
	o.memo_entries = entries;
	int rc = larder_open(&db, test_path("store"), &o);
	if (rc != 0)
		test_fail(__FILE__, __LINE__, "larder_open: %d (%s): %s", rc,
			  larder_strerror(rc), larder_errmsg(NULL));
	return db;
}

static larder *open_store(void)
{
	return open_with(0, 0);
}

static void put_at(int line, larder *db, const char *key, const char *ver)
{
	char payload[64];
	snprintf(payload, sizeof payload, "%s of %s", ver, key);
	int rc = larder_put(db, "default", key, strlen(key), ver, strlen(ver),
			    payload, strlen(payload), NULL);
	if (rc != 0)
		test_fail(__FILE__, line, "put(%s, %s): %d (%s): %s", key, ver,
			  rc, larder_strerror(rc), larder_errmsg(db));
}
#define PUT(db, key, ver) put_at(__LINE__, db, key, ver)

/* A version-less get of key that must hit `ver`, with its payload. */
static void head_is_at(int line, larder *db, const char *key, const char *ver)
{
	larder_entry *e = NULL;
	int rc = larder_get(&e, db, "default", key, strlen(key), NULL, 0);
	if (rc != 0)
		test_fail(__FILE__, line, "get(%s, NULL): %d (%s): %s, want %s",
			  key, rc, larder_strerror(rc), larder_errmsg(db), ver);
	size_t vlen;
	const void *v = larder_entry_version(&vlen, e);
	char payload[64];
	snprintf(payload, sizeof payload, "%s of %s", ver, key);
	if (vlen != strlen(ver) || memcmp(v, ver, vlen) != 0 ||
	    larder_entry_size(e) != strlen(payload) ||
	    memcmp(larder_entry_data(e), payload, strlen(payload)) != 0)
		test_fail(__FILE__, line,
			  "get(%s, NULL): got version '%.*s', "
			  "want '%s'",
			  key, (int)vlen, (const char *)v, ver);
	larder_entry_release(e);
}
#define HEAD_IS(db, key, ver) head_is_at(__LINE__, db, key, ver)

static void head_miss_at(int line, larder *db, const char *key)
{
	larder_entry *e = NULL;
	int rc = larder_get(&e, db, "default", key, strlen(key), NULL, 0);
	if (rc != LARDER_ENOTFOUND)
		test_fail(__FILE__, line, "get(%s, NULL): %d (%s), want a miss",
			  key, rc, larder_strerror(rc));
}
#define HEAD_MISS(db, key) head_miss_at(__LINE__, db, key)

static const char *head_path(const char *key)
{
	uint8_t h[16];
	char hex[33], rel[LDR_REL_MAX];
	ldr_head_hash("default", key, strlen(key), h);
	ldr_hex(h, 16, hex);
	ldr_file_rel(rel, "default", 'h', hex);
	return test_path("store/%s", rel);
}

/* Both of a handle's clocks: the head cache's check and the memo's
 * (which serves the entry a cached head names) fall due. */
static void age(larder *db, int64_t ms)
{
	ldr_test_head_cache_age(db, ms);
	ldr_test_memo_age(db, ms);
}

/* ---------------------------------------------------------------------- */

TEST(a_head_is_remembered_at_its_second_read)
{
	larder *db = open_store();
	PUT(db, "k", "v1");
	HEAD_IS(db, "k", "v1");
	ASSERT_EQ(ldr_test_head_cache_size(db), 0);
	HEAD_IS(db, "k", "v1");
	ASSERT_EQ(ldr_test_head_cache_size(db), 1);
	HEAD_IS(db, "k", "v1");
	ASSERT_EQ(ldr_test_head_cache_size(db), 1);
	larder_close(db);
}

TEST(a_newer_head_from_another_handle_is_seen_within_the_check_interval)
{
	larder *db = open_store(), *other = open_store();
	PUT(db, "k", "v1");
	HEAD_IS(db, "k", "v1");
	HEAD_IS(db, "k", "v1"); /* remembered */
	PUT(other, "k", "v2");
	/* Within the interval the remembered head may still be served (the
	 * documented lag): so the cache is what answers here. */
	HEAD_IS(db, "k", "v1");
	age(db, CHECK_MS);
	HEAD_IS(db, "k", "v2");
	/* and remembered again, followed again */
	HEAD_IS(db, "k", "v2");
	PUT(other, "k", "v3");
	age(db, CHECK_MS);
	HEAD_IS(db, "k", "v3");
	/* Remembered long after it was written: judged by its identity, and
	 * a replacement (a new file) is followed. */
	age(db, CHECK_MS);
	HEAD_IS(db, "k", "v3");
	PUT(other, "k", "v4");
	HEAD_IS(db, "k", "v3");
	age(db, CHECK_MS);
	HEAD_IS(db, "k", "v4");
	larder_close(other);
	larder_close(db);
}

TEST(this_handles_own_publish_is_seen_at_once)
{
	larder *db = open_store();
	PUT(db, "k", "v1");
	HEAD_IS(db, "k", "v1");
	HEAD_IS(db, "k", "v1");
	PUT(db, "k", "v2");
	HEAD_IS(db, "k", "v2");
	larder_close(db);
}

TEST(an_unchanged_head_stays_remembered_after_its_check)
{
	larder *db = open_store();
	PUT(db, "k", "v1");
	HEAD_IS(db, "k", "v1");
	HEAD_IS(db, "k", "v1");
	/* Past the racy window: judged by its identity from here on. */
	age(db, CHECK_MS);
	HEAD_IS(db, "k", "v1");
	ASSERT_EQ(ldr_test_head_cache_size(db), 1);
	HEAD_IS(db, "k", "v1");
	ASSERT_EQ(ldr_test_head_cache_size(db), 1);
	larder_close(db);
}

TEST(a_removed_head_is_a_miss_once_checked)
{
	larder *db = open_store();
	PUT(db, "k", "v1");
	HEAD_IS(db, "k", "v1");
	HEAD_IS(db, "k", "v1");
	age(db, CHECK_MS); /* past the racy window */
	HEAD_IS(db, "k", "v1");
	/* The head goes, the entry stays (as another process's sweep may
	 * leave it). */
	ASSERT_EQ(unlink(head_path("k")), 0);
	age(db, CHECK_MS);
	HEAD_MISS(db, "k");
	ASSERT_EQ(ldr_test_head_cache_size(db), 0);
	larder_close(db);
}

TEST(a_removed_entry_is_a_miss)
{
	larder *db = open_store(), *other = open_store();
	PUT(db, "k", "v1");
	HEAD_IS(db, "k", "v1");
	HEAD_IS(db, "k", "v1");
	ASSERT_RC(other, larder_remove(other, "default", "k", 1, NULL, 0), 0);
	age(db, CHECK_MS);
	HEAD_MISS(db, "k");
	/* by this handle's own hand: at once */
	PUT(db, "k", "v2");
	HEAD_IS(db, "k", "v2");
	HEAD_IS(db, "k", "v2");
	ASSERT_RC(db, larder_remove(db, "default", "k", 1, NULL, 0), 0);
	HEAD_MISS(db, "k");
	larder_close(other);
	larder_close(db);
}

TEST(the_cache_never_grows_past_its_bound)
{
	larder *db = open_with(0, 8);
	char key[16];
	for (int i = 0; i < 40; i++) {
		snprintf(key, sizeof key, "k%d", i);
		PUT(db, key, "v");
		HEAD_IS(db, key, "v");
		HEAD_IS(db, key, "v");
		ASSERT(ldr_test_head_cache_size(db) <= 8);
	}
	ASSERT_EQ(ldr_test_head_cache_size(db), 8);
	/* The most recent are the ones kept: still right. */
	HEAD_IS(db, "k39", "v");
	HEAD_IS(db, "k0", "v");
	larder_close(db);
}

TEST(verify_always_reads_every_head)
{
	larder *db = open_with(LARDER_OPEN_VERIFY_ALWAYS, 0),
	       *other = open_store();
	PUT(db, "k", "v1");
	HEAD_IS(db, "k", "v1");
	HEAD_IS(db, "k", "v1");
	ASSERT_EQ(ldr_test_head_cache_size(db), 0);
	PUT(other, "k", "v2");
	HEAD_IS(db, "k", "v2");
	larder_close(other);
	larder_close(db);
}

TEST(a_forked_child_starts_without_the_cache)
{
	larder *db = open_store(), *other = open_store();
	PUT(db, "k", "v1");
	HEAD_IS(db, "k", "v1");
	HEAD_IS(db, "k", "v1");
	PUT(other, "k", "v2");
	pid_t pid = fork();
	ASSERT(pid >= 0);
	if (pid == 0) {
		size_t n = ldr_test_head_cache_size(db);
		larder_entry *e = NULL;
		size_t vlen = 0;
		int rc = larder_get(&e, db, "default", "k", 1, NULL, 0);
		const void *v = rc ? NULL : larder_entry_version(&vlen, e);
		int ok = n == 0 && rc == 0 && vlen == 2 && !memcmp(v, "v2", 2);
		larder_entry_release(e);
		_exit(ok ? 0 : 1);
	}
	int st;
	ASSERT_EQ(waitpid(pid, &st, 0), pid);
	ASSERT(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	/* The parent's is its own still. */
	ASSERT_EQ(ldr_test_head_cache_size(db), 1);
	larder_close(other);
	larder_close(db);
}

#define THREADS 4

struct hammer {
	larder *db;
	int id, bad;
};

/* Version-less lookups of a few keys from several threads while one of
 * them ages the cache: every answer is one of the key's versions. */
static void *hammer_run(void *arg)
{
	struct hammer *h = arg;
	char key[16];
	for (int i = 0; i < 2000; i++) {
		snprintf(key, sizeof key, "t%d", (i + h->id) % 6);
		larder_entry *e = NULL;
		size_t vl = 0;
		if (larder_get(&e, h->db, "default", key, strlen(key), NULL,
			       0) != 0)
			h->bad++;
		else {
			const char *v = larder_entry_version(&vl, e);
			h->bad += vl != 2 || v[0] != 'v' ||
				  (v[1] != '1' && v[1] != '2');
		}
		larder_entry_release(e);
		if (h->id == 0 && i % 300 == 0)
			age(h->db, CHECK_MS);
	}
	return NULL;
}

TEST(threads_share_the_cache)
{
	larder *db = open_with(0, 4), *other = open_store();
	char key[16];
	for (int k = 0; k < 6; k++) {
		snprintf(key, sizeof key, "t%d", k);
		PUT(other, key, "v1");
	}
	struct hammer h[THREADS];
	pthread_t t[THREADS];
	for (int i = 0; i < THREADS; i++) {
		h[i] = (struct hammer){db, i, 0};
		ASSERT_EQ(pthread_create(&t[i], NULL, hammer_run, &h[i]), 0);
	}
	for (int k = 0; k < 6; k++) {
		snprintf(key, sizeof key, "t%d", k);
		PUT(other, key, "v2");
	}
	for (int i = 0; i < THREADS; i++) {
		ASSERT_EQ(pthread_join(t[i], NULL), 0);
		ASSERT_EQ(h[i].bad, 0);
	}
	ASSERT(ldr_test_head_cache_size(db) <= 4);
	age(db, CHECK_MS);
	HEAD_IS(db, "t0", "v2");
	larder_close(other);
	larder_close(db);
}
