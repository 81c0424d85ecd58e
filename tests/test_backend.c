/*
 * test_backend.c — the conformance suite of the storage seam
 * (docs/backends.md, "The seam"): what every backend's table promises,
 * checked through the table alone, so that the same cases run on any
 * backend.
 *
 * The backend is the one LARDER_TEST_BACKEND names: unset, the test
 * store's own directory (as larder_open serves it); "dir", a second
 * store directory opened by path; "tier:dir", the test store in front of
 * such a second directory (a near and a shared tier); anything else, a
 * `where` string as ldr_backend_open takes it (e.g. a redis:// URI of a
 * private server, or "tier:redis://..." in front of it).
 * The few cases that look behind a backend's back (a flipped byte on
 * disk, the quarantine) run on the directory backend only and say so.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testing.h"
#include "harness.h"
#include "larder.h"
#include "store_util.h"

#define KiB 1024u

struct env {
	larder *db;
	struct ldr_backend *be;
};

/* A URI (Redis) names one server for every case: each case gets its own
 * key prefix, named after its private directory, so that no case sees
 * another's entries. Other `where` strings are returned as they are. */
static const char *uri_of_case(const char *where)
{
	static char uri[1024];
	if (!where || !strstr(where, "://"))
		return where;
	char dir[512];
	snprintf(dir, sizeof dir, "%s", test_path("%s", ""));
	dir[strlen(dir) - 1] = '\0'; /* its trailing '/' */
	const char *base = strrchr(dir, '/');
	snprintf(uri, sizeof uri, "%s%sprefix=%s:", where,
		 strchr(where, '?') ? "&" : "?", base ? base + 1 : dir);
	return uri;
}

static struct env open_env(void)
{
	struct env e;
	e.db = open_store();
	const char *where = getenv("LARDER_TEST_BACKEND");
	if (where && !*where)
		where = NULL;
	static char tier[1100];
	if (where && (!strcmp(where, "dir") || !strcmp(where, "tier:dir"))) {
		/* A second store, made as larder init makes one. */
		const char *other = test_path("other");
		larder_opts o = LARDER_OPTS_INIT;
		o.flags = LARDER_OPEN_CREATE;
		larder_close(open_store_at(other, &o));
		snprintf(tier, sizeof tier, "%s%s",
			 strcmp(where, "dir") ? "tier:" : "", other);
		where = tier;
	}
	ASSERT_RC(e.db, ldr_test_be_open(&e.be, e.db, uri_of_case(where)), 0);
	return e;
}

static void close_env(struct env *e)
{
	ldr_test_be_close(e->be);
	larder_close(e->db);
}

static int is_dir(const struct env *e)
{
	return !strcmp(ldr_test_be_kind(e->be), "dir");
}

static uint8_t *pattern(size_t n, const char *key, const char *ver)
{
	uint8_t *b = xmalloc(n);
	test_fill_pattern(b, n, seed_of_kv(key, strlen(key), ver, strlen(ver)));
	return b;
}

/* Read (ns, key, ver) through the table and expect it verified and
 * holding the pattern of (key, ver, n) — or of `as`, when another
 * writer's bytes are the ones expected. */
static void expect_entry(struct env *e, const char *ns, const char *key,
			 const char *ver, size_t n, const char *as)
{
	int state;
	uint8_t *data;
	size_t len;
	ASSERT_RC(
	    e->db,
	    ldr_test_be_read(e->be, ns, key, ver, &state, &data, &len, 0, NULL),
	    0);
	ASSERT_EQ(state, LARDER_STATE_OK);
	ASSERT_EQ(len, n);
	uint8_t *want = pattern(n, key, as ? as : ver);
	ASSERT_MEM_EQ(data, want, n);
	free(want);
	free(data);
}

static void expect_missing(struct env *e, const char *ns, const char *key,
			   const char *ver)
{
	int state;
	uint8_t *data;
	size_t len;
	ASSERT_EQ(
	    ldr_test_be_read(e->be, ns, key, ver, &state, &data, &len, 0, NULL),
	    LARDER_ENOTFOUND);
	free(data);
}

static int publish(struct env *e, const char *ns, const char *key,
		   const char *ver, size_t n, const char *as, unsigned flags)
{
	uint8_t *b = pattern(n, key, as ? as : ver);
	int rc = ldr_test_be_publish(e->be, ns, key, ver, b, n, 1000, flags, 0);
	free(b);
	return rc;
}

/* ---------------------------------------------------------------------- */
/* Entries                                                                 */

TEST(publish_then_read_verifies_small_and_large)
{
	struct env e = open_env();
	/* Small (written with its header at once), and past the mapping
	 * threshold (the payload placed after an aligned header). */
	ASSERT_RC(e.db, publish(&e, "b", "k", "v1", 3 * KiB, NULL, 0), 0);
	ASSERT_RC(e.db, publish(&e, "b", "big", "v1", 300 * KiB, NULL, 0), 0);
	ASSERT_RC(e.db, publish(&e, "b", "empty", "v1", 0, NULL, 0), 0);
	expect_entry(&e, "b", "k", "v1", 3 * KiB, NULL);
	expect_entry(&e, "b", "big", "v1", 300 * KiB, NULL);
	expect_entry(&e, "b", "empty", "v1", 0, NULL);
	expect_missing(&e, "b", "k", "v2");
	expect_missing(&e, "b", "nokey", "v1");
	close_env(&e);
}

TEST(publish_first_writer_wins)
{
	struct env e = open_env();
	ASSERT_RC(e.db, publish(&e, "b", "k", "v", 4 * KiB, "first", 0), 0);
	/* Same name, other bytes: the first entry stands. */
	ASSERT_EQ(publish(&e, "b", "k", "v", 4 * KiB, "second", 0),
		  LARDER_EXISTS);
	expect_entry(&e, "b", "k", "v", 4 * KiB, "first");
	close_env(&e);
}

TEST(commit_refuses_a_header_that_does_not_describe_the_payload)
{
	struct env e = open_env();
	int rc =
	    publish(&e, "b", "k", "v", 2 * KiB, NULL, LDR_TEST_BE_BAD_HEADER);
	ASSERT(rc < 0);
	expect_missing(&e, "b", "k", "v");
	/* Nothing half-made stands in the way of a good publish. */
	ASSERT_RC(e.db, publish(&e, "b", "k", "v", 2 * KiB, NULL, 0), 0);
	expect_entry(&e, "b", "k", "v", 2 * KiB, NULL);
	close_env(&e);
}

TEST(abandoned_stage_leaves_nothing_visible)
{
	struct env e = open_env();
	uint8_t *b = pattern(8 * KiB, "k", "v");
	ASSERT_RC(e.db,
		  ldr_test_be_stage_abandon(e.be, "b", "k", "v", b, 8 * KiB),
		  0);
	free(b);
	expect_missing(&e, "b", "k", "v");
	close_env(&e);
}

TEST(reject_takes_the_entry_out_of_view)
{
	struct env e = open_env();
	ASSERT_RC(e.db, publish(&e, "b", "k", "v", 2 * KiB, NULL, 0), 0);
	int state;
	uint8_t *data;
	size_t len;
	void *kept;
	ASSERT_RC(e.db,
		  ldr_test_be_read(e.be, "b", "k", "v", &state, &data, &len, 0,
				   &kept),
		  0);
	free(data);
	/* A reader judged it bad (its content, say): gone for everyone. */
	ldr_test_be_reject(e.be, "b", "k", "v", kept, "judged bad by a test");
	ldr_test_be_kept_free(kept);
	if (!strcmp(ldr_test_be_kind(e.be), "tier")) {
		/* A tier: near's copy was read, and only it goes; the
		 * shared entry, verified again, is served and copied in.
		 * Read from shared and judged bad, it goes from both. */
		ASSERT_RC(e.db,
			  ldr_test_be_read(e.be, "b", "k", "v", &state, &data,
					   &len, 0, &kept),
			  0);
		free(data);
		ldr_test_be_reject(e.be, "b", "k", "v", kept, "bad again");
		ldr_test_be_kept_free(kept);
	}
	expect_missing(&e, "b", "k", "v");
	/* And the name is free for a good entry again. */
	ASSERT_RC(e.db, publish(&e, "b", "k", "v", 2 * KiB, NULL, 0), 0);
	expect_entry(&e, "b", "k", "v", 2 * KiB, NULL);
	close_env(&e);
}

/* The directory backend: where its file of (ns, key, ver) is. */
struct find {
	char where[512];
	int n;
};

static int find_cb(const uint8_t hash[16], const char *where, void *p)
{
	(void)hash;
	struct find *f = p;
	snprintf(f->where, sizeof f->where, "%s", where);
	f->n++;
	return 0;
}

TEST(dir_corrupt_entry_is_judged_bad_and_quarantined)
{
	struct env e = open_env();
	if (!is_dir(&e))
		test_skip("looks at a directory behind the backend's back");
	ASSERT_RC(e.db, publish(&e, "b", "k", "v", 4 * KiB, NULL, 0), 0);
	struct find f = {{0}, 0};
	ASSERT_RC(e.db, ldr_test_be_walk(e.be, "b", find_cb, &f), 0);
	ASSERT_EQ(f.n, 1);
	/* Where the backend's store is: the test store, or "other". */
	const char *top = getenv("LARDER_TEST_BACKEND") &&
				  !strcmp(getenv("LARDER_TEST_BACKEND"), "dir")
			      ? test_path("other")
			      : store_dir();
	char path[1024];
	snprintf(path, sizeof path, "%s/%s", top, f.where);
	struct stat st;
	ASSERT(stat(path, &st) == 0);
	ASSERT(chmod(path, 0644) == 0);
	int fd = open(path, O_RDWR);
	ASSERT(fd >= 0);
	uint8_t c;
	ASSERT_EQ(pread(fd, &c, 1, st.st_size - 1), 1);
	c ^= 0x40;
	ASSERT_EQ(pwrite(fd, &c, 1, st.st_size - 1), 1);
	close(fd);
	int state;
	uint8_t *data;
	size_t len;
	ASSERT_RC(
	    e.db,
	    ldr_test_be_read(e.be, "b", "k", "v", &state, &data, &len, 1, NULL),
	    0);
	ASSERT_EQ(state, LARDER_STATE_CORRUPT);
	ASSERT(data == NULL);
	expect_missing(&e, "b", "k", "v");
	char q[1024];
	snprintf(q, sizeof q, "%s/quarantine", top);
	ASSERT_EQ(count_files(q, NULL), 1);
	close_env(&e);
}

TEST(remove_only_if_still_the_same_entry)
{
	struct env e = open_env();
	ASSERT_RC(e.db, publish(&e, "b", "k", "v", 2 * KiB, "one", 0), 0);
	int state;
	uint8_t *data;
	size_t len;
	void *first;
	ASSERT_RC(e.db,
		  ldr_test_be_read(e.be, "b", "k", "v", &state, &data, &len, 0,
				   &first),
		  0);
	free(data);
	/* Removed and published again meanwhile: another entry now. */
	ASSERT_EQ(ldr_test_be_remove(e.be, "b", "k", "v", NULL), 1);
	ASSERT_RC(e.db, publish(&e, "b", "k", "v", 2 * KiB, "two", 0), 0);
	ASSERT_EQ(ldr_test_be_remove(e.be, "b", "k", "v", first), 0);
	ldr_test_be_kept_free(first);
	expect_entry(&e, "b", "k", "v", 2 * KiB, "two");
	/* The very entry read: removed, its head with it. */
	void *second;
	ASSERT_RC(e.db,
		  ldr_test_be_read(e.be, "b", "k", "v", &state, &data, &len, 0,
				   &second),
		  0);
	free(data);
	ASSERT_EQ(ldr_test_be_remove(e.be, "b", "k", "v", second), 1);
	ldr_test_be_kept_free(second);
	expect_missing(&e, "b", "k", "v");
	char *hv;
	ASSERT_EQ(ldr_test_be_head_get(e.be, "b", "k", &hv), LARDER_ENOTFOUND);
	/* Nothing there: nothing removed. */
	ASSERT_EQ(ldr_test_be_remove(e.be, "b", "k", "v", NULL), 0);
	close_env(&e);
}

TEST(remove_without_version_takes_the_heads)
{
	struct env e = open_env();
	ASSERT_RC(e.db, publish(&e, "b", "k", "v1", KiB, NULL, 0), 0);
	ASSERT_RC(e.db, publish(&e, "b", "k", "v2", KiB, NULL, 0), 0);
	ASSERT_EQ(ldr_test_be_remove(e.be, "b", "k", NULL, NULL), 1);
	expect_missing(&e, "b", "k", "v2");
	expect_entry(&e, "b", "k", "v1", KiB, NULL);
	close_env(&e);
}

/* ---------------------------------------------------------------------- */
/* Heads                                                                   */

static void expect_head(struct env *e, const char *key, const char *want)
{
	char *v = NULL;
	int rc = ldr_test_be_head_get(e->be, "b", key, &v);
	if (!want) {
		ASSERT_EQ(rc, LARDER_ENOTFOUND);
		return;
	}
	ASSERT_RC(e->db, rc, 0);
	ASSERT_STR_EQ(v, want);
	free(v);
}

TEST(head_moves_with_publishes_and_set_and_drop)
{
	struct env e = open_env();
	expect_head(&e, "k", NULL);
	/* A publish without its head (a filler that lost its lease). */
	ASSERT_RC(e.db,
		  publish(&e, "b", "k", "v1", KiB, NULL, LDR_TEST_BE_NO_HEAD),
		  0);
	expect_head(&e, "k", NULL);
	ASSERT_RC(e.db, ldr_test_be_head_set(e.be, "b", "k", "v1", 0), 0);
	expect_head(&e, "k", "v1");
	ASSERT_RC(e.db, publish(&e, "b", "k", "v2", KiB, NULL, 0), 0);
	expect_head(&e, "k", "v2");
	/* Dropping a version the head does not name leaves it. */
	ASSERT_EQ(ldr_test_be_head_drop(e.be, "b", "k", "v1"), 0);
	expect_head(&e, "k", "v2");
	ASSERT_EQ(ldr_test_be_head_drop(e.be, "b", "k", "v2"), 1);
	expect_head(&e, "k", NULL);
	/* The entries stay: a head is only a hint. */
	expect_entry(&e, "b", "k", "v2", KiB, NULL);
	close_env(&e);
}

/* ---------------------------------------------------------------------- */
/* Leases                                                                  */

TEST(lease_acquire_held_observe_release)
{
	struct env e = open_env();
	struct ldr_be_lease *l = NULL, *l2 = NULL;
	struct ldr_be_holder *h;
	uint64_t token = 99;
	ASSERT_RC(e.db,
		  ldr_test_be_lease_acquire(e.be, "b", "k", 30000, 7500, &l,
					    &token, &h),
		  0);
	free(h);
	ASSERT(l != NULL);
	if (is_dir(&e))
		ASSERT_EQ(token, 0); /* the directory has no fencing token */
	ASSERT_EQ(ldr_test_be_lease_held(l), 1);
	/* A second taker sees the holder: us. */
	ASSERT_EQ(ldr_test_be_lease_acquire(e.be, "b", "k", 30000, 7500, &l2,
					    &token, &h),
		  1);
	ASSERT(l2 == NULL);
	long pid;
	int dead, blind;
	ldr_test_be_holder(h, &pid, &dead, &blind);
	free(h);
	ASSERT_EQ(pid, getpid());
	ASSERT_EQ(dead, 0);
	ASSERT_EQ(blind, 0);
	ASSERT_RC(e.db, ldr_test_be_lease_observe(e.be, "b", "k", &h), 0);
	ldr_test_be_holder(h, &pid, &dead, &blind);
	free(h);
	ASSERT_EQ(pid, getpid());
	/* Another key is free. */
	ASSERT_EQ(ldr_test_be_lease_observe(e.be, "b", "k2", &h),
		  LARDER_ENOTFOUND);
	free(h);
	ldr_test_be_lease_release(l);
	ASSERT_EQ(ldr_test_be_lease_observe(e.be, "b", "k", &h),
		  LARDER_ENOTFOUND);
	free(h);
	close_env(&e);
}

TEST(lease_break_frees_only_the_holder_observed)
{
	struct env e = open_env();
	struct ldr_be_lease *a = NULL, *b = NULL;
	struct ldr_be_holder *h, *seen;
	uint64_t token;
	ASSERT_RC(e.db,
		  ldr_test_be_lease_acquire(e.be, "b", "k", 30000, 7500, &a,
					    &token, &h),
		  0);
	free(h);
	ASSERT_RC(e.db, ldr_test_be_lease_observe(e.be, "b", "k", &seen), 0);
	/* The holder seen leaves and another takes the key: breaking what
	 * was seen must not free the new holder's lease. */
	ldr_test_be_lease_release(a);
	ASSERT_RC(e.db,
		  ldr_test_be_lease_acquire(e.be, "b", "k", 30000, 7500, &b,
					    &token, &h),
		  0);
	free(h);
	ASSERT_EQ(ldr_test_be_lease_break(e.be, "b", "k", seen), 0);
	free(seen);
	ASSERT_EQ(ldr_test_be_lease_held(b), 1);
	/* Breaking the holder as it is now frees it; its holder sees the
	 * loss before publishing. */
	ASSERT_RC(e.db, ldr_test_be_lease_observe(e.be, "b", "k", &seen), 0);
	ASSERT_EQ(ldr_test_be_lease_break(e.be, "b", "k", seen), 1);
	free(seen);
	ASSERT_EQ(ldr_test_be_lease_held(b), 0);
	ASSERT_EQ(ldr_test_be_lease_observe(e.be, "b", "k", &seen),
		  LARDER_ENOTFOUND);
	free(seen);
	ldr_test_be_lease_release(b);
	close_env(&e);
}

TEST(lease_of_a_dead_process_on_this_host_is_dead)
{
	struct env e = open_env();
	int p[2];
	ASSERT(pipe(p) == 0);
	pid_t pid = fork();
	ASSERT(pid >= 0);
	if (pid == 0) {
		/* Take the lease and die without giving it back. */
		struct ldr_backend *be;
		larder *db = open_store();
		const char *where = getenv("LARDER_TEST_BACKEND");
		int ok = 0;
		if (!where || !*where || !strcmp(where, "dir") ||
		    !strcmp(where, "tier:dir"))
			be = e.be; /* the same store, opened before the fork */
		else if (ldr_test_be_open(&be, db, uri_of_case(where)) != 0)
			be = NULL;
		struct ldr_be_lease *l;
		struct ldr_be_holder *h;
		uint64_t token;
		if (be && ldr_test_be_lease_acquire(be, "b", "k", 30000, 7500,
						    &l, &token, &h) == 0)
			ok = 1;
		ssize_t w = write(p[1], &ok, sizeof ok);
		_exit(w == sizeof ok ? 0 : 1);
	}
	close(p[1]);
	int ok = 0;
	ASSERT_EQ(read(p[0], &ok, sizeof ok), (long)sizeof ok);
	close(p[0]);
	ASSERT_EQ(ok, 1);
	int status;
	ASSERT_EQ(waitpid(pid, &status, 0), pid);
	struct ldr_be_holder *h;
	ASSERT_RC(e.db, ldr_test_be_lease_observe(e.be, "b", "k", &h), 0);
	long hpid;
	int dead, blind;
	ldr_test_be_holder(h, &hpid, &dead, &blind);
	ASSERT_EQ(hpid, pid);
	ASSERT_EQ(dead, 1);
	ASSERT_EQ(ldr_test_be_lease_break(e.be, "b", "k", h), 1);
	free(h);
	close_env(&e);
}

/* ---------------------------------------------------------------------- */
/* Waiting                                                                 */

TEST(wait_is_woken_by_a_publish)
{
	struct env e = open_env();
	struct ldr_be_wait *w = NULL;
	ASSERT_RC(e.db, ldr_test_be_wait_begin(e.be, "b", "k", "v", &w), 0);
	expect_missing(&e, "b", "k", "v");
	/* Another process publishes while we are armed, without moving
	 * the head (as a filler that lost its lease does): the entry
	 * itself wakes the wait. */
	pid_t pid = fork();
	ASSERT(pid >= 0);
	if (pid == 0)
		_exit(publish(&e, "b", "k", "v", KiB, NULL,
			      LDR_TEST_BE_NO_HEAD) == 0
			  ? 0
			  : 1);
	int status;
	ASSERT_EQ(waitpid(pid, &status, 0), pid);
	ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	/* The publish is already known: the wait ends now, within a budget
	 * shorter than the backend's own pace of looking, and the look
	 * finds the entry. */
	ASSERT_EQ(ldr_test_be_wait(w, 50, NULL), 0);
	expect_entry(&e, "b", "k", "v", KiB, NULL);
	ldr_test_be_wait_end(w);
	close_env(&e);
}

TEST(wait_is_bounded_and_cancellable)
{
	struct env e = open_env();
	struct ldr_be_wait *w = NULL;
	ASSERT_RC(e.db, ldr_test_be_wait_begin(e.be, "b", "k", "v", &w), 0);
	/* Nothing happens: each call returns within its bound. */
	for (int i = 0; i < 3; i++) {
		int rc = ldr_test_be_wait(w, 1, NULL);
		ASSERT(rc == 0 || rc == LDR_TEST_BE_WAIT_MORE);
	}
	/* A cancel flag set ends a wait of a minute at the backend's next
	 * look. */
	volatile sig_atomic_t cancel = 1;
	ASSERT_EQ(ldr_test_be_wait(w, 60000, &cancel), LARDER_ECANCELED);
	ldr_test_be_wait_end(w);
	close_env(&e);
}

/* ---------------------------------------------------------------------- */
/* Listing, stats                                                          */

struct names {
	int a, b, other;
};

static int ns_cb(const char *ns, void *p)
{
	struct names *n = p;
	if (!strcmp(ns, "a"))
		n->a++;
	else if (!strcmp(ns, "b"))
		n->b++;
	else
		n->other++;
	return 0;
}

struct hashes {
	uint8_t want[3][16];
	int seen[3], stray;
};

static int hash_cb(const uint8_t hash[16], const char *where, void *p)
{
	struct hashes *h = p;
	ASSERT(where && *where);
	for (int i = 0; i < 3; i++)
		if (!memcmp(hash, h->want[i], 16)) {
			h->seen[i]++;
			return 0;
		}
	h->stray++;
	return 0;
}

static int stop_cb(const uint8_t hash[16], const char *where, void *p)
{
	(void)hash;
	(void)where;
	++*(int *)p;
	return 7;
}

TEST(list_namespaces_and_walk_entries)
{
	struct env e = open_env();
	const char *vers[3] = {"v1", "v2", "v3"};
	struct hashes h;
	memset(&h, 0, sizeof h);
	for (int i = 0; i < 3; i++) {
		ASSERT_RC(e.db, publish(&e, "a", "k", vers[i], KiB, NULL, 0),
			  0);
		ldr_entry_hash("a", "k", 1, vers[i], 2, h.want[i]);
	}
	ASSERT_RC(e.db, publish(&e, "b", "k", "v1", KiB, NULL, 0), 0);
	struct names n = {0, 0, 0};
	ASSERT_RC(e.db, ldr_test_be_list_ns(e.be, ns_cb, &n), 0);
	ASSERT_EQ(n.a, 1);
	ASSERT_EQ(n.b, 1);
	ASSERT_RC(e.db, ldr_test_be_walk(e.be, "a", hash_cb, &h), 0);
	for (int i = 0; i < 3; i++)
		ASSERT_EQ(h.seen[i], 1);
	ASSERT_EQ(h.stray, 0);
	/* A callback's non-zero return stops the walk and is returned. */
	int calls = 0;
	ASSERT_EQ(ldr_test_be_walk(e.be, "a", stop_cb, &calls), 7);
	ASSERT_EQ(calls, 1);
	close_env(&e);
}

TEST(stats_count_what_was_published)
{
	struct env e = open_env();
	ASSERT_RC(e.db, publish(&e, "b", "k1", "v", 10 * KiB, NULL, 0), 0);
	ASSERT_RC(e.db, publish(&e, "b", "k2", "v", 10 * KiB, NULL, 0), 0);
	uint64_t bytes, entries;
	int reachable;
	ASSERT_RC(e.db, ldr_test_be_stats(e.be, &bytes, &entries, &reachable),
		  0);
	ASSERT_EQ(reachable, 1);
	ASSERT_EQ(entries, 2);
	ASSERT(bytes >= 20 * KiB);
	close_env(&e);
}

/* ---------------------------------------------------------------------- */
/* The public API through a backend hung on the handle                     */

struct sink {
	uint8_t *p;
	size_t n;
};

static int sink_cb(const void *data, size_t len, void *payload)
{
	struct sink *s = payload;
	s->p = realloc(s->p, s->n + len + 1);
	ASSERT(s->p != NULL);
	memcpy(s->p + s->n, data, len);
	s->n += len;
	return 0;
}

static int loads;

static int loader(larder_fill *f, void *payload)
{
	(void)payload;
	loads++;
	uint8_t *b = pattern(5 * KiB, "filled", "v");
	int rc = larder_fill_write(f, b, 5 * KiB);
	free(b);
	return rc;
}

static void expect_get(larder *db, const char *key, const char *ver, size_t n)
{
	larder_entry *en;
	ASSERT_RC(db,
		  larder_get(&en, db, "f", key, strlen(key), ver, strlen(ver)),
		  0);
	ASSERT_EQ(larder_entry_size(en), n);
	uint8_t *want = pattern(n, key, ver);
	ASSERT_MEM_EQ(larder_entry_data(en), want, n);
	free(want);
	larder_entry_release(en);
}

TEST(public_api_goes_through_the_hung_backend)
{
	struct env e = open_env();
	/* From here the handle reaches storage only through this backend
	 * (not as its own directory: the table's read and stage). */
	ldr_test_be_hang(e.db, e.be);
	for (int i = 0; i < 2; i++) {
		const char *key = i ? "large" : "small";
		size_t n = i ? 300 * KiB : 3 * KiB;
		uint8_t *b = pattern(n, key, "v1");
		ASSERT_RC(e.db,
			  larder_put(e.db, "f", key, strlen(key), "v1", 2, b, n,
				     NULL),
			  0);
		ASSERT_EQ(larder_put(e.db, "f", key, strlen(key), "v1", 2, b, n,
				     NULL),
			  LARDER_EXISTS);
		free(b);
		expect_get(e.db, key, "v1", n);
		/* The backend holds it, verified through its own read. */
		expect_entry(&e, "f", key, "v1", n, NULL);
		/* Without a version: the backend's head. */
		larder_entry *en;
		ASSERT_RC(e.db,
			  larder_get(&en, e.db, "f", key, strlen(key), NULL, 0),
			  0);
		ASSERT_EQ(larder_entry_size(en), n);
		larder_entry_release(en);
		struct sink s = {NULL, 0};
		ASSERT_RC(e.db,
			  larder_get_stream(e.db, "f", key, strlen(key), "v1",
					    2, sink_cb, &s),
			  0);
		ASSERT_EQ(s.n, n);
		free(s.p);
	}
	/* A fill: loads once, publishes there, and the next call hits. */
	larder_entry *en;
	int how;
	loads = 0;
	for (int i = 0; i < 2; i++) {
		ASSERT_RC(e.db,
			  larder_get_or_fill(&en, &how, e.db, "f", "filled", 6,
					     "v", 1, NULL, loader, NULL, NULL),
			  0);
		ASSERT_EQ(how, i ? LARDER_HIT : LARDER_FILLED);
		ASSERT_EQ(larder_entry_size(en), 5 * KiB);
		larder_entry_release(en);
	}
	ASSERT_EQ(loads, 1);
	expect_entry(&e, "f", "filled", "v", 5 * KiB, NULL);
	/* Remove, through the same backend. */
	ASSERT_RC(e.db, larder_remove(e.db, "f", "small", 5, "v1", 2), 0);
	expect_missing(&e, "f", "small", "v1");
	ASSERT_EQ(larder_get(&en, e.db, "f", "small", 5, "v1", 2),
		  LARDER_ENOTFOUND);
	const char *where = getenv("LARDER_TEST_BACKEND");
	larder_close(e.db); /* closes the backend hung on it */
	if (where && !strcmp(where, "dir")) {
		/* Nothing of it went to the handle's own directory. */
		larder *own = open_store();
		ASSERT_EQ(larder_get(&en, own, "f", "large", 5, "v1", 2),
			  LARDER_ENOTFOUND);
		larder_close(own);
	}
}

TEST(dir_public_api_through_the_hung_backend_never_serves_bad_bytes)
{
	struct env e = open_env();
	if (!is_dir(&e))
		test_skip("looks at a directory behind the backend's back");
	ldr_test_be_hang(e.db, e.be);
	uint8_t *b = pattern(4 * KiB, "k", "v");
	ASSERT_RC(e.db, larder_put(e.db, "f", "k", 1, "v", 1, b, 4 * KiB, NULL),
		  0);
	free(b);
	struct find f = {{0}, 0};
	ASSERT_RC(e.db, ldr_test_be_walk(e.be, "f", find_cb, &f), 0);
	ASSERT_EQ(f.n, 1);
	const char *top = getenv("LARDER_TEST_BACKEND") &&
				  !strcmp(getenv("LARDER_TEST_BACKEND"), "dir")
			      ? test_path("other")
			      : store_dir();
	char path[1024];
	snprintf(path, sizeof path, "%s/%s", top, f.where);
	ASSERT(chmod(path, 0644) == 0);
	int fd = open(path, O_RDWR);
	ASSERT(fd >= 0);
	uint8_t c = 0;
	struct stat st;
	ASSERT(fstat(fd, &st) == 0);
	ASSERT_EQ(pread(fd, &c, 1, st.st_size - 1), 1);
	c ^= 0x40;
	ASSERT_EQ(pwrite(fd, &c, 1, st.st_size - 1), 1);
	close(fd);
	/* Even with TRUST_LOCAL's promise out of reach: always hashed. */
	larder_entry *en;
	ASSERT_EQ(larder_get(&en, e.db, "f", "k", 1, "v", 1), LARDER_ENOTFOUND);
	char q[1024];
	snprintf(q, sizeof q, "%s/quarantine", top);
	ASSERT_EQ(count_files(q, NULL), 1);
	larder_close(e.db);
}

TEST(get_many_and_put_many_through_the_hung_backend)
{
	struct env e = open_env();
	ldr_test_be_hang(e.db, e.be);
	/* 40 entries put in one batch: small ones, and every tenth past
	 * 256 KiB (in chunks on Redis). */
	enum { N = 40, ASK = N + 2 };
	char kb[ASK][16];
	const void *keys[ASK], *vers[ASK], *data[N];
	size_t klens[ASK], vlens[ASK], lens[N];
	for (int i = 0; i < ASK; i++) {
		snprintf(kb[i], sizeof kb[i], i < N ? "k%d" : "absent%d", i);
		keys[i] = kb[i];
		klens[i] = strlen(kb[i]);
		vers[i] = "v1";
		vlens[i] = 2;
	}
	for (int i = 0; i < N; i++) {
		lens[i] =
		    i % 10 == 3 ? 300 * KiB + (size_t)i : 100u * (size_t)i;
		data[i] = pattern(lens[i], kb[i], "v1");
	}
	int rc[ASK];
	ASSERT_RC(e.db,
		  larder_put_many(e.db, "f", N, keys, klens, vers, vlens, data,
				  lens, NULL, rc),
		  0);
	for (int i = 0; i < N; i++)
		ASSERT_EQ(rc[i], 0);
	/* Again: each key its own LARDER_EXISTS. */
	ASSERT_RC(e.db,
		  larder_put_many(e.db, "f", N, keys, klens, vers, vlens, data,
				  lens, NULL, rc),
		  0);
	for (int i = 0; i < N; i++)
		ASSERT_EQ(rc[i], LARDER_EXISTS);
	/* Every key, two that are not there, and every fifth without a
	 * version (its head's). */
	for (int i = 0; i < N; i += 5)
		vers[i] = NULL;
	larder_entry *out[ASK];
	ASSERT_RC(
	    e.db,
	    larder_get_many(e.db, "f", ASK, keys, klens, vers, vlens, out, rc),
	    0);
	for (int i = 0; i < ASK; i++) {
		if (i >= N) {
			ASSERT_EQ(rc[i], LARDER_ENOTFOUND);
			ASSERT(out[i] == NULL);
			continue;
		}
		ASSERT_EQ(rc[i], 0);
		ASSERT_EQ(larder_entry_size(out[i]), lens[i]);
		ASSERT_MEM_EQ(larder_entry_data(out[i]), data[i], lens[i]);
		size_t vl;
		const void *v = larder_entry_version(&vl, out[i]);
		ASSERT_EQ(vl, 2);
		ASSERT_MEM_EQ(v, "v1", 2);
		larder_entry_release(out[i]);
	}
	/* Whatever one batch read, a single get reads the same. */
	expect_get(e.db, "k13", "v1", lens[13]);
	for (int i = 0; i < N; i++)
		free((void *)data[i]);
	larder_close(e.db); /* closes the backend hung on it */
}
