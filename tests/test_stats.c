/*
 * test_stats.c — the store's persistent counters and usage (src/store/stats.c):
 * they add up across processes (hits + misses + waits = requests), usage
 * follows publishes and removals and equals a walk of the store, a flush
 * is bounded when counter files are locked, a damaged counter file is set
 * aside and counting resumes, counters of a newer larder survive, and a
 * store that cannot take counters still serves.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "testing.h"
#include "harness.h"
#include "larder.h"
#include "store_util.h"

static larder *open_store_log(larder_log_fn log, void *payload)
{
	larder_opts o = LARDER_OPTS_INIT;
	o.log = log;
	o.log_payload = payload;
	return open_store_opts(&o);
}

static double mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* The store-wide value of a counter (by name, so newer ones too). */
static uint64_t stat_of(larder *db, const char *name)
{
	larder_stats *s;
	ASSERT_RC(db, larder_stats_read(&s, db), 0);
	uint64_t v = 0, got;
	for (size_t i = 0; i < larder_stats_counters(s); i++)
		if (strcmp(larder_stats_counter(&got, s, i), name) == 0)
			v = got;
	larder_stats_free(s);
	return v;
}

static unsigned bad_shards(larder *db)
{
	larder_stats *s;
	unsigned bad;
	ASSERT_RC(db, larder_stats_read(&s, db), 0);
	larder_stats_shards(&bad, s);
	larder_stats_free(s);
	return bad;
}

struct walked {
	const char *ns;
	int64_t bytes, entries;
};

static int walk_cb(const larder_entry_info *info, void *payload)
{
	struct walked *w = payload;
	if (strcmp(info->ns, w->ns) == 0) {
		w->bytes += (int64_t)info->file_size;
		w->entries++;
	}
	return 0;
}

/* Usage as counted must equal what a walk of the namespace finds. */
static void expect_usage_is_walk(larder *db, const char *ns)
{
	struct walked w = {ns, 0, 0};
	ASSERT_RC(db, larder_walk(db, ns, 0, walk_cb, &w), 0);
	int64_t b, e;
	ASSERT_RC(db, ldr_usage_read(db, ns, &b, &e), 0);
	ASSERT_EQ(b, w.bytes);
	ASSERT_EQ(e, w.entries);
}

/* A loader: 4 KiB of the key's pattern, after some work (so that others
 * pile up waiting on it: a herd). */
static int slow_loader(larder_fill *f, void *payload)
{
	(void)payload;
	char buf[4096];
	struct timespec ts = {0, 20 * 1000000};
	nanosleep(&ts, NULL);
	test_fill_pattern(buf, sizeof buf, 7);
	return larder_fill_write(f, buf, sizeof buf);
}

/* ---------------------------------------------------------------------- */

/* What one worker did, as it saw it. */
struct tallies {
	uint64_t requests, hits, misses, waits, puts, filled;
};

#define WORKERS 8
#define KEYS 12
#define ROUNDS 36

static void worker(int id, int gate, int report)
{
	struct tallies t = {0};
	char c;
	if (read(gate, &c, 1) != 1)
		_exit(10);
	larder *db = open_store();
	larder_fill_opts fo = LARDER_FILL_OPTS_INIT;
	char buf[4096];
	test_fill_pattern(buf, sizeof buf, 7);
	for (int i = 0; i < ROUNDS; i++) {
		char key[32];
		snprintf(key, sizeof key, "k%d", (i / 3 + id) % KEYS);
		larder_entry *e = NULL;
		int how = 0, rc;
		switch (i % 3) {
		case 0: /* get_or_fill: the herd */
			rc = larder_get_or_fill(&e, &how, db, "herd", key,
						strlen(key), "v1", 2, NULL,
						slow_loader, NULL, &fo);
			if (rc != 0 || larder_entry_size(e) != 4096 ||
			    !test_check_pattern(larder_entry_data(e), 4096, 7))
				_exit(11);
			t.requests++;
			if (how == LARDER_HIT)
				t.hits++;
			else if (how == LARDER_WAITED)
				t.waits++;
			else
				t.misses++;
			t.filled += how == LARDER_FILLED;
			break;
		case 1: /* a plain get: hit or miss */
			rc = larder_get(&e, db, "herd", key, strlen(key), "v1",
					2);
			t.requests++;
			if (rc == 0 &&
			    !test_check_pattern(larder_entry_data(e), 4096, 7))
				_exit(12);
			if (rc == 0)
				t.hits++;
			else if (rc == LARDER_ENOTFOUND)
				t.misses++;
			else
				_exit(13);
			break;
		default: /* a put of this worker's own key */
			snprintf(key, sizeof key, "p%d-%d", id, i);
			if (larder_put(db, "own", key, strlen(key), "v", 1, buf,
				       (size_t)(i * 100), NULL) != 0)
				_exit(14);
			t.puts++;
		}
		larder_entry_release(e);
	}
	/* The counts this handle kept agree with what it saw... */
	if (larder_counter(db, LARDER_CTR_REQUESTS) != t.requests ||
	    larder_counter(db, LARDER_CTR_HITS) != t.hits ||
	    larder_counter(db, LARDER_CTR_WAITS) != t.waits ||
	    larder_counter(db, LARDER_CTR_MISSES) != t.misses)
		_exit(15);
	larder_close(db); /* ...and reach the store here */
	if (write(report, &t, sizeof t) != (ssize_t)sizeof t)
		_exit(16);
	_exit(0);
}

TEST(counters_add_up_after_eight_processes_with_herds)
{
	larder_close(open_store()); /* made before the workers start */
	int gate[2], rep[2];
	ASSERT(pipe(gate) == 0 && pipe(rep) == 0);
	pid_t pids[WORKERS];
	for (int i = 0; i < WORKERS; i++) {
		pids[i] = fork();
		ASSERT(pids[i] >= 0);
		if (pids[i] == 0) {
			close(gate[1]);
			close(rep[0]);
			worker(i, gate[0], rep[1]);
		}
	}
	close(gate[0]);
	close(rep[1]);
	char go[WORKERS];
	memset(go, 'g', sizeof go);
	ASSERT(write(gate[1], go, sizeof go) == (ssize_t)sizeof go);
	struct tallies sum = {0};
	for (int i = 0; i < WORKERS; i++) {
		struct tallies t;
		ASSERT(read(rep[0], &t, sizeof t) == (ssize_t)sizeof t);
		sum.requests += t.requests;
		sum.hits += t.hits;
		sum.misses += t.misses;
		sum.waits += t.waits;
		sum.puts += t.puts;
		sum.filled += t.filled;
	}
	for (int i = 0; i < WORKERS; i++) {
		int st;
		ASSERT(waitpid(pids[i], &st, 0) == pids[i]);
		ASSERT_EQ(WIFEXITED(st) ? WEXITSTATUS(st) : 100 + WTERMSIG(st),
			  0);
	}
	printf("    %llu requests: %llu hits, %llu misses, %llu waits\n",
	       (unsigned long long)sum.requests, (unsigned long long)sum.hits,
	       (unsigned long long)sum.misses, (unsigned long long)sum.waits);
	ASSERT_EQ(sum.requests, WORKERS * ROUNDS * 2 / 3);
	ASSERT(sum.waits > 0); /* there was a herd */

	larder *db = open_store();
	ASSERT_EQ(stat_of(db, "requests"), sum.requests);
	ASSERT_EQ(stat_of(db, "hits"), sum.hits);
	ASSERT_EQ(stat_of(db, "misses"), sum.misses);
	ASSERT_EQ(stat_of(db, "waits"), sum.waits);
	ASSERT_EQ(stat_of(db, "hits") + stat_of(db, "misses") +
		      stat_of(db, "waits"),
		  stat_of(db, "requests"));
	/* Every put and every filling load published once, or found its
	 * entry already there. */
	ASSERT_EQ(stat_of(db, "published") + stat_of(db, "publish_raced"),
		  sum.puts + sum.filled);
	ASSERT_EQ(stat_of(db, "published"), sum.puts + KEYS);
	ASSERT_EQ(bad_shards(db), 0);
	expect_usage_is_walk(db, "herd");
	expect_usage_is_walk(db, "own");
	larder_close(db);
}

TEST(a_forked_child_closing_the_inherited_handle_counts_nothing_twice)
{
	larder *db = open_store();
	larder_entry *e;
	ASSERT_RC(db, larder_put(db, "n", "k", 1, "v", 1, "x", 1, NULL), 0);
	for (int i = 0; i < 5; i++) {
		ASSERT_RC(db, larder_get(&e, db, "n", "k", 1, "v", 1), 0);
		larder_entry_release(e);
	}
	pid_t p = fork();
	ASSERT(p >= 0);
	if (p == 0) {
		larder_close(db); /* the parent's pending are not its own */
		_exit(0);
	}
	int st;
	ASSERT(waitpid(p, &st, 0) == p && WIFEXITED(st) &&
	       WEXITSTATUS(st) == 0);
	larder_close(db);
	db = open_store();
	ASSERT_EQ(stat_of(db, "hits"), 5);
	ASSERT_EQ(stat_of(db, "published"), 1);
	int64_t b, n;
	ASSERT_RC(db, ldr_usage_read(db, "n", &b, &n), 0);
	ASSERT_EQ(n, 1);
	larder_close(db);
}

TEST(usage_follows_publish_rm_and_quarantine)
{
	larder *db = open_store();
	char buf[10000];
	test_fill_pattern(buf, sizeof buf, 3);
	for (int i = 0; i < 5; i++) {
		char k[8];
		snprintf(k, sizeof k, "k%d", i);
		ASSERT_RC(db,
			  larder_put(db, "a", k, strlen(k), "v", 1, buf,
				     (size_t)(1000 * i), NULL),
			  0);
	}
	/* Published again: already there, counted once. */
	ASSERT_EQ(larder_put(db, "a", "k1", 2, "v", 1, buf, 1000, NULL),
		  LARDER_EXISTS);
	ASSERT_RC(db, larder_put(db, "b", "x", 1, "v", 1, buf, 10, NULL), 0);
	expect_usage_is_walk(db, "a");
	expect_usage_is_walk(db, "b");
	ASSERT_RC(db, larder_stats_flush(db), 0);
	expect_usage_is_walk(db, "a");

	ASSERT_RC(db, larder_remove(db, "a", "k2", 2, NULL, 0), 0);
	expect_usage_is_walk(db, "a");
	/* Removing what is gone changes nothing. */
	ASSERT_EQ(larder_remove(db, "a", "k2", 2, "v", 1), LARDER_ENOTFOUND);
	expect_usage_is_walk(db, "a");

	/* A damaged entry goes to quarantine on its next read. */
	char path[4200];
	snprintf(path, sizeof path, "%s/ns/a/e", store_dir());
	/* Flip a bit of the last payload byte of the largest entry. */
	ASSERT_EQ(test_sh("f=$(ls -S $(find '%s' -type f) | head -1) && "
			  "python3 -c 'import sys; f = open(sys.argv[1], "
			  "\"r+b\"); f.seek(-1, 2); b = f.read(1); "
			  "f.seek(-1, 2); f.write(bytes([b[0] ^ 1]))' \"$f\"",
			  path),
		  0);
	int found = 0;
	for (int i = 0; i < 5; i++) {
		char k[8];
		larder_entry *e;
		snprintf(k, sizeof k, "k%d", i);
		found += larder_get(&e, db, "a", k, strlen(k), "v", 1) == 0;
		larder_entry_release(e);
	}
	ASSERT_EQ(found, 3);
	ASSERT_EQ(larder_counter(db, LARDER_CTR_QUARANTINED), 1);
	expect_usage_is_walk(db, "a");
	int64_t b, n, tb, tn;
	ASSERT_RC(db, ldr_usage_read(db, NULL, &tb, &tn), 0);
	ASSERT_RC(db, ldr_usage_read(db, "b", &b, &n), 0);
	ASSERT_EQ(tn, 3 + n);

	/* A walk's correction makes the sums equal what it found. */
	ASSERT_RC(db, ldr_usage_set(db, "b", 12345, 7), 0);
	ASSERT_RC(db, ldr_usage_read(db, "b", &b, &n), 0);
	ASSERT_EQ(b, 12345);
	ASSERT_EQ(n, 7);
	larder_close(db);
	db = open_store();
	ASSERT_RC(db, ldr_usage_read(db, "b", &b, &n), 0);
	ASSERT_EQ(b, 12345);
	ASSERT_EQ(n, 7);
	expect_usage_is_walk(db, "a");
	larder_close(db);
}

/* ---------------------------------------------------------------------- */
/* Locked, damaged and foreign counter files                               */

/* A child that holds write locks on the shards in `mask`, until told. */
static pid_t hold_locks(unsigned mask, int *release)
{
	int ready[2], go[2];
	ASSERT(pipe(ready) == 0 && pipe(go) == 0);
	pid_t p = fork();
	ASSERT(p >= 0);
	if (p == 0) {
		close(ready[0]);
		close(go[1]); /* so that the parent's close is our EOF */
		char rel[256];
		for (int i = 0; i < 16; i++) {
			if (!(mask & (1u << i)))
				continue;
			snprintf(rel, sizeof rel, "%s/stats/shard-%02d",
				 store_dir(), i);
			int fd = open(rel, O_RDWR | O_CREAT, 0644);
			struct flock fl = {.l_type = F_WRLCK,
					   .l_whence = SEEK_SET};
			if (fd < 0 || fcntl(fd, F_SETLK, &fl) != 0)
				_exit(1);
		}
		char c = 'r';
		if (write(ready[1], &c, 1) != 1 || read(go[0], &c, 1) < 0)
			_exit(2);
		_exit(0);
	}
	close(ready[1]);
	close(go[0]);
	char c;
	ASSERT(read(ready[0], &c, 1) == 1);
	close(ready[0]);
	*release = go[1];
	return p;
}

static void release_locks(pid_t p, int release)
{
	close(release);
	int st;
	ASSERT(waitpid(p, &st, 0) == p && WIFEXITED(st) &&
	       WEXITSTATUS(st) == 0);
}

TEST(flush_is_bounded_when_every_counter_file_is_locked)
{
	larder *db = open_store();
	ASSERT(mkdir(test_path("store/stats"), 0755) == 0);
	ASSERT_RC(db, larder_put(db, "n", "k", 1, "v", 1, "x", 1, NULL), 0);
	int rel;
	pid_t p = hold_locks(0xffff, &rel);
	double t0 = mono_ms();
	ASSERT_EQ(larder_stats_flush(db), LARDER_EBUSY);
	double ms = mono_ms() - t0;
	printf("    gave up after %.0f ms\n", ms);
	ASSERT(ms >= 900 && ms < 3000);
	ASSERT(strstr(larder_errmsg(db), "locked") != NULL);
	release_locks(p, rel);
	/* Nothing was lost: it is flushed now, once. */
	ASSERT_RC(db, larder_stats_flush(db), 0);
	ASSERT_RC(db, larder_stats_flush(db), 0);
	larder_close(db);
	db = open_store();
	ASSERT_EQ(stat_of(db, "published"), 1);
	larder_close(db);
}

TEST(flush_takes_another_counter_file_when_its_own_is_locked)
{
	larder *db = open_store();
	ASSERT(mkdir(test_path("store/stats"), 0755) == 0);
	ASSERT_RC(db, larder_put(db, "n", "k", 1, "v", 1, "x", 1, NULL), 0);
	int rel;
	pid_t p = hold_locks(0x7fff, &rel); /* all but shard-15 */
	double t0 = mono_ms();
	ASSERT_RC(db, larder_stats_flush(db), 0);
	ASSERT(mono_ms() - t0 < 500);
	release_locks(p, rel);
	ASSERT_EQ(
	    test_sh("grep -q '^published 1$' '%s/stats/shard-15'", store_dir()),
	    0);
	ASSERT_EQ(stat_of(db, "published"), 1);
	larder_close(db);
}

struct logs {
	int warns;
	char last[512];
};

static void log_cb(int level, const char *msg, void *payload)
{
	struct logs *l = payload;
	if (level == LARDER_LOG_WARN) {
		l->warns++;
		snprintf(l->last, sizeof l->last, "%s", msg);
	}
}

/* The one shard that holds counts (this test's process flushes to it). */
static void the_shard(char *out, size_t len)
{
	out[0] = '\0';
	for (int i = 0; i < 16; i++) {
		struct stat st;
		const char *p = test_path("store/stats/shard-%02d", i);
		if (stat(p, &st) == 0 && st.st_size > 0) {
			ASSERT(out[0] == '\0');
			snprintf(out, len, "%s", p);
		}
	}
	ASSERT(out[0] != '\0');
}

static void damaged_shard_is_set_aside(const char *damage)
{
	struct logs lg = {0, ""};
	larder *db = open_store_log(log_cb, &lg);
	ASSERT_RC(db, larder_put(db, "n", "k", 1, "v", 1, "x", 1, NULL), 0);
	ASSERT_RC(db, larder_stats_flush(db), 0);
	char shard[512];
	the_shard(shard, sizeof shard);
	ASSERT_EQ(test_sh("f='%s'; %s", shard, damage), 0);
	ASSERT_EQ(bad_shards(db), 1);
	ASSERT_EQ(stat_of(db, "published"), 0); /* left out */
	ASSERT_EQ(lg.warns, 0); /* reading judges, only a flush sets aside */

	ASSERT_RC(db, larder_put(db, "n", "k2", 2, "v", 1, "y", 1, NULL), 0);
	ASSERT_RC(db, larder_stats_flush(db), 0);
	ASSERT_EQ(lg.warns, 1);
	ASSERT(strstr(lg.last, "failed its check") != NULL);
	ASSERT_EQ(bad_shards(db), 0);
	ASSERT_EQ(stat_of(db, "published"), 1); /* counting resumed */
	ASSERT_EQ(test_sh("ls '%s'/stats/bad-* >/dev/null", store_dir()), 0);
	/* Said once per handle. */
	ASSERT_EQ(test_sh("f='%s'; %s", shard, damage), 0);
	ASSERT_RC(db, larder_put(db, "n", "k3", 2, "v", 1, "y", 1, NULL), 0);
	ASSERT_RC(db, larder_stats_flush(db), 0);
	ASSERT_EQ(lg.warns, 1);
	larder_close(db);
}

TEST(edited_counter_file_is_set_aside_and_counting_resumes)
{
	damaged_shard_is_set_aside(
	    "sed -i 's/^published 1$/published 9/' \"$f\"");
}

TEST(truncated_counter_file_is_set_aside_and_counting_resumes)
{
	damaged_shard_is_set_aside("truncate -s 100 \"$f\"");
}

TEST(garbage_counter_file_is_set_aside_and_counting_resumes)
{
	damaged_shard_is_set_aside("head -c 3000 /dev/urandom > \"$f\"");
}

/* A shard as a newer larder might write it: a counter and a line shape
 * this build does not know, with a good checksum. */
static void write_foreign_shard(const char *path)
{
	const char *body = "larder-counters 1\n"
			   "hits 3\n"
			   "future_counter 42\n"
			   "usage n 100 2\n"
			   "frobnicate a b c\n";
	uint8_t sum[16];
	char hex[33];
	ldr_xxh128(body, strlen(body), sum);
	ldr_hex(sum, 16, hex);
	FILE *f = fopen(path, "w");
	ASSERT(f != NULL);
	fprintf(f, "%schecksum %s\n", body, hex);
	ASSERT(fclose(f) == 0);
}

TEST(unknown_counters_survive_a_rewrite)
{
	larder *db = open_store();
	ASSERT(mkdir(test_path("store/stats"), 0755) == 0);
	for (int i = 0; i < 16; i++)
		write_foreign_shard(test_path("store/stats/shard-%02d", i));
	ASSERT_EQ(stat_of(db, "future_counter"), 16 * 42);
	ASSERT_EQ(stat_of(db, "hits"), 16 * 3);
	int64_t b, n;
	ASSERT_RC(db, ldr_usage_read(db, "n", &b, &n), 0);
	ASSERT_EQ(b, 1600);
	ASSERT_EQ(n, 32);

	ASSERT_RC(db, larder_put(db, "n", "k", 1, "v", 1, "x", 1, NULL), 0);
	ASSERT_RC(db, larder_stats_flush(db), 0);
	ASSERT_EQ(bad_shards(db), 0);
	ASSERT_EQ(stat_of(db, "future_counter"), 16 * 42);
	ASSERT_EQ(stat_of(db, "published"), 1);
	ASSERT_RC(db, ldr_usage_read(db, "n", &b, &n), 0);
	ASSERT_EQ(n, 33);
	/* The rewritten file still has the lines it did not understand. */
	ASSERT_EQ(test_sh("cd '%s/stats' && f=$(grep -l '^published 1$' "
			  "shard-*) && grep -q '^future_counter 42$' $f && "
			  "grep -q '^frobnicate a b c$' $f",
			  store_dir()),
		  0);
	larder_close(db);
}

TEST(a_store_that_cannot_take_counters_still_serves)
{
	struct logs lg = {0, ""};
	larder *db = open_store_log(log_cb, &lg);
	/* stats/ is a file: nothing can be made beneath it. */
	ASSERT_EQ(test_sh("echo not-a-dir > '%s/stats'", store_dir()), 0);
	ASSERT_RC(db, larder_put(db, "n", "k", 1, "v", 1, "x", 1, NULL), 0);
	ASSERT(larder_stats_flush(db) < 0);
	ASSERT(larder_stats_flush(db) < 0);
	ASSERT_EQ(lg.warns, 1); /* logged once per handle */
	larder_entry *e;
	ASSERT_RC(db, larder_get(&e, db, "n", "k", 1, "v", 1), 0);
	ASSERT_EQ(larder_entry_size(e), 1);
	larder_entry_release(e);
	/* Still pending, so still counted when read. */
	ASSERT_EQ(stat_of(db, "published"), 1);
	ASSERT_EQ(stat_of(db, "hits"), 1);
	larder_close(db); /* its flush fails too, quietly to the caller */
	ASSERT_EQ(lg.warns, 1);
}

TEST(counter_files_that_are_symlinks_are_not_followed)
{
	larder *db = open_store();
	ASSERT(mkdir(test_path("store/stats"), 0755) == 0);
	ASSERT_EQ(test_sh("echo outside > '%s/victim'", test_dir()), 0);
	for (int i = 0; i < 16; i++)
		ASSERT(symlink(test_path("victim"),
			       test_path("store/stats/shard-%02d", i)) == 0);
	ASSERT_RC(db, larder_put(db, "n", "k", 1, "v", 1, "x", 1, NULL), 0);
	ASSERT(larder_stats_flush(db) < 0);
	ASSERT_EQ(test_sh("test \"$(cat '%s/victim')\" = outside", test_dir()),
		  0);
	larder_close(db);
}

TEST(counter_files_that_are_hard_links_or_fifos_are_never_written_or_waited_on)
{
	/* A hard link to a file outside the store (a member may make one
	 * where fs.protected_hardlinks is off) must not be written into by
	 * a flush; a FIFO must not hang a flush or a read. */
	larder *db = open_store();
	ASSERT(mkdir(test_path("store/stats"), 0755) == 0);
	ASSERT_EQ(test_sh("echo outside > '%s/victim'", test_dir()), 0);
	for (int i = 0; i < 16; i++) {
		const char *p = test_path("store/stats/shard-%02d", i);
		if (i % 2)
			ASSERT(link(test_path("victim"), p) == 0);
		else
			ASSERT(mkfifo(p, 0644) == 0);
	}
	ASSERT_RC(db, larder_put(db, "n", "k", 1, "v", 1, "x", 1, NULL), 0);
	ASSERT(larder_stats_flush(db) != 0);
	ASSERT_EQ(test_sh("test \"$(cat '%s/victim')\" = outside", test_dir()),
		  0);
	larder_stats *st = NULL;
	ASSERT_RC(db, larder_stats_read(&st, db), 0);
	unsigned bad = 0;
	ASSERT_EQ(larder_stats_shards(&bad, st), 16);
	ASSERT_EQ(bad, 16);
	larder_stats_free(st);
	struct stat sb;
	ASSERT(lstat(test_path("store/stats/shard-00"), &sb) == 0 &&
	       S_ISFIFO(sb.st_mode));
	larder_close(db);
	ASSERT_EQ(test_sh("test \"$(cat '%s/victim')\" = outside", test_dir()),
		  0);
}

TEST(counter_files_take_the_store_mode_of_a_group_shared_store)
{
	larder *db = NULL;
	larder_opts o = LARDER_OPTS_INIT;
	o.flags = LARDER_OPEN_CREATE;
	o.create_mode = 0664;
	mode_t old = umask(077);
	ASSERT_RC(NULL, larder_open(&db, store_dir(), &o), 0);
	ASSERT_RC(db, larder_put(db, "n", "k", 1, "v", 1, "x", 1, NULL), 0);
	larder_close(db);
	umask(old);
	char shard[512];
	the_shard(shard, sizeof shard);
	struct stat st;
	ASSERT(stat(shard, &st) == 0);
	ASSERT_EQ(st.st_mode & 0777, 0664);
	ASSERT(stat(test_path("store/stats"), &st) == 0);
	ASSERT_EQ(st.st_mode & 02777, 02775);
}

/* The published count in this process's counter file, read directly (the
 * API would add what is still pending). */
static int published_on_disk(void)
{
	return test_sh("cat '%s'/stats/shard-* 2>/dev/null | "
		       "awk '/^published / {s += $2} END {exit s}'",
		       store_dir());
}

TEST(a_long_running_process_flushes_at_publish_after_a_minute)
{
	larder *db = open_store();
	ASSERT_RC(db, larder_put(db, "n", "a", 1, "v", 1, "x", 1, NULL), 0);
	ASSERT_EQ(published_on_disk(), 0); /* not yet: within the minute */
	ldr_stats_age(db, 61);
	ASSERT_RC(db, larder_put(db, "n", "b", 1, "v", 1, "x", 1, NULL), 0);
	ASSERT_EQ(published_on_disk(), 2);
	/* Hits never flush (nothing on the warm path but counting). */
	ldr_stats_age(db, 61);
	larder_entry *e;
	ASSERT_RC(db, larder_get(&e, db, "n", "a", 1, "v", 1), 0);
	larder_entry_release(e);
	ASSERT_EQ(test_sh("grep -q '^hits 1$' '%s'/stats/shard-*", store_dir()),
		  1);
	/* A fill does. */
	larder_fill_opts fo = LARDER_FILL_OPTS_INIT;
	int how;
	ASSERT_RC(db,
		  larder_get_or_fill(&e, &how, db, "n", "a", 1, "v", 1, NULL,
				     slow_loader, NULL, &fo),
		  0);
	larder_entry_release(e);
	ASSERT_EQ(how, LARDER_HIT);
	ASSERT_EQ(test_sh("grep -q '^hits 2$' '%s'/stats/shard-*", store_dir()),
		  0);
	larder_close(db);
}

/* ---------------------------------------------------------------------- */
/* Crafted counter files: bounded, linear, no overflow                     */

/* A shard with a good checksum: the header, `body` (whole lines), then
 * `unknown` lines of unknown counters ("u<shard>_<n> 1"). */
static void write_crafted_shard(int shard, const char *body, long unknown)
{
	size_t cap = strlen(body) + (size_t)unknown * 24 + 64, len = 0;
	char *text = malloc(cap);
	ASSERT(text != NULL);
	len += (size_t)snprintf(text, cap, "larder-counters 1\n%s", body);
	for (long i = 0; i < unknown; i++)
		len += (size_t)snprintf(text + len, cap - len, "u%02d_%ld 1\n",
					shard, i);
	uint8_t sum[16];
	char hex[33];
	ldr_xxh128(text, len, sum);
	ldr_hex(sum, 16, hex);
	FILE *f = fopen(test_path("store/stats/shard-%02d", shard), "w");
	ASSERT(f != NULL);
	ASSERT_EQ(fwrite(text, 1, len, f), len);
	fprintf(f, "checksum %s\n", hex);
	ASSERT(fclose(f) == 0);
	free(text);
}

/* Every shard crafted the same way. */
static void craft_all(const char *body, long unknown)
{
	mkdir(test_path("store/stats"), 0755);
	for (int i = 0; i < 16; i++)
		write_crafted_shard(i, body, unknown);
}

/* The shard this process flushed to: the one whose "published" line
 * says 1 (the crafted ones have none). */
static void flushed_shard(char *out, size_t len)
{
	out[0] = '\0';
	for (int i = 0; i < 16; i++) {
		const char *p = test_path("store/stats/shard-%02d", i);
		if (test_sh("grep -q '^published 1$' '%s'", p) == 0) {
			ASSERT(out[0] == '\0');
			snprintf(out, len, "%s", p);
		}
	}
	ASSERT(out[0] != '\0');
}

TEST(a_flush_keeps_at_most_256_unknown_lines_of_a_crafted_shard_and_warns)
{
	struct logs lg = {0, ""};
	larder *db = open_store_log(log_cb, &lg);
	/* 50 000 unknown counters in each of the 16 shards (about 480 KiB
	 * each: under the size a shard may have, so they are read). */
	craft_all("hits 5\nusage n 100 2\nfrobnicate a b c\n", 50000);
	ASSERT_EQ(bad_shards(db), 0);
	ASSERT_EQ(stat_of(db, "hits"), 16 * 5);
	ASSERT_EQ(stat_of(db, "u00_0"), 1);	/* kept: within the cap */
	ASSERT_EQ(stat_of(db, "u00_49999"), 0); /* beyond it: not counted */

	ASSERT_RC(db, larder_put(db, "n", "k", 1, "v", 1, "x", 1, NULL), 0);
	ASSERT_RC(db, larder_stats_flush(db), 0);
	char shard[512];
	flushed_shard(shard, sizeof shard);
	struct stat st;
	ASSERT_EQ(stat(shard, &st), 0);
	/* What the rewrite kept: the known counters, the usage, and 256
	 * lines it does not know (the other shape first, then the first
	 * 255 unknown counters, in the order they came). */
	ASSERT(st.st_size < 16 * 1024);
	ASSERT_EQ(
	    test_sh("test $(grep -c '^u[0-9][0-9]_' '%s') -eq 255", shard), 0);
	ASSERT_EQ(test_sh("grep -q '^frobnicate a b c$' '%s'", shard), 0);
	ASSERT_EQ(test_sh("grep -q '^hits 5$' '%s'", shard), 0);
	ASSERT_EQ(lg.warns, 1);
	ASSERT(strstr(lg.last, "beyond what a counter file keeps") != NULL);
	ASSERT_EQ(bad_shards(db), 0);
	ASSERT_EQ(stat_of(db, "hits"), 16 * 5);
	int64_t b, n;
	ASSERT_RC(db, ldr_usage_read(db, "n", &b, &n), 0);
	ASSERT_EQ(n, 16 * 2 + 1);
	/* A second flush finds nothing more to drop: no second warning
	 * (and once per handle anyway). */
	ASSERT_RC(db, larder_put(db, "n", "k2", 2, "v", 1, "x", 1, NULL), 0);
	ASSERT_RC(db, larder_stats_flush(db), 0);
	ASSERT_EQ(lg.warns, 1);
	larder_close(db);
}

TEST(a_counter_file_larger_than_a_mebibyte_is_set_aside)
{
	larder *db = open_store();
	/* 100 000 lines of about 11 bytes: past 1 MiB. */
	craft_all("hits 5\n", 100000);
	ASSERT_EQ(bad_shards(db), 16);
	ASSERT_EQ(stat_of(db, "hits"), 0);
	ASSERT_RC(db, larder_put(db, "n", "k", 1, "v", 1, "x", 1, NULL), 0);
	ASSERT_RC(db, larder_stats_flush(db), 0);
	ASSERT_EQ(bad_shards(db), 15);
	larder_close(db);
}

/* The steps a fresh handle takes to read 16 shards of `lines` lines
 * each, a mix of every kind: unknown counters, known counters over and
 * over, lines of other shapes, and usage of many namespaces. */
static uint64_t work_to_read(long lines)
{
	char *body = malloc((size_t)lines * 40);
	ASSERT(body != NULL);
	size_t len = 0;
	body[0] = '\0';
	for (long i = 0; i < lines / 4; i++)
		len += (size_t)sprintf(
		    body + len, "hits 1\nusage ns%ld 10 1\nx y %ld\n", i, i);
	larder_close(open_store());
	craft_all(body, lines / 4);
	free(body);
	larder *db = open_store();
	uint64_t before = ldr_stats_work(db);
	larder_stats *s;
	ASSERT_RC(db, larder_stats_read(&s, db), 0);
	ASSERT_EQ(larder_stats_namespaces(s), (size_t)(lines / 4));
	larder_stats_free(s);
	uint64_t work = ldr_stats_work(db) - before;
	larder_close(db);
	printf("    %ld lines per shard: %llu steps\n", lines,
	       (unsigned long long)work);
	return work;
}

TEST(reading_counter_files_is_linear_in_their_lines)
{
	/* Counted steps (bytes looked at, comparisons, elements moved), not
	 * time: four times the lines may cost four times the steps and a
	 * little more for sorting (n log n), never sixteen (n squared). */
	uint64_t w1 = work_to_read(8000);
	uint64_t w4 = work_to_read(32000);
	ASSERT(w1 > 16 * 8000);
	if (w4 > 5 * w1)
		test_fail(__FILE__, __LINE__,
			  "4x the lines took %.1fx the steps", (double)w4 / w1);
}

TEST(usage_and_counter_sums_saturate_instead_of_overflowing)
{
	larder *db = open_store();
	/* Each shard near the top: summed over 16 they go far past it. */
	craft_all("hits 18446744073709551615\n"
		  "usage a 9223372036854775807 9223372036854775807\n"
		  "usage b 9223372036854775807 9223372036854775807\n"
		  "usage c -9223372036854775808 -9223372036854775808\n",
		  0);
	ASSERT_EQ(bad_shards(db), 0);
	uint64_t hits = stat_of(db, "hits");
	ASSERT(hits == UINT64_MAX);
	int64_t b, n;
	ASSERT_RC(db, ldr_usage_read(db, "a", &b, &n), 0);
	ASSERT_EQ(b, INT64_MAX);
	ASSERT_EQ(n, INT64_MAX);
	ASSERT_RC(db, ldr_usage_read(db, "c", &b, &n), 0);
	ASSERT_EQ(b, 0); /* below zero reads as 0 */
	ASSERT_RC(db, ldr_usage_read(db, NULL, &b, &n), 0);
	ASSERT_EQ(b, INT64_MAX);
	larder_stats *s;
	ASSERT_RC(db, larder_stats_read(&s, db), 0);
	for (size_t i = 0; i < larder_stats_namespaces(s); i++) {
		const char *ns = larder_stats_usage(&b, &n, s, i);
		ASSERT_EQ(b, strcmp(ns, "c") ? INT64_MAX : 0);
	}
	larder_stats_free(s);
	/* A flush adds to a shard at the top; setting usage after a walk
	 * subtracts from a sum at the bottom; cleaning reads them all. */
	ASSERT_RC(db, larder_put(db, "a", "k", 1, "v", 1, "x", 1, NULL), 0);
	ASSERT_RC(db, larder_stats_flush(db), 0);
	ASSERT_EQ(bad_shards(db), 0);
	ASSERT_RC(db, ldr_usage_set(db, "c", 100, 1), 0);
	ASSERT_RC(db, larder_stats_flush(db), 0);
	larder_gc_report r = LARDER_GC_REPORT_INIT;
	ASSERT_RC(db, larder_gc(&r, db, NULL, 0), 0);
	ASSERT_RC(db, ldr_usage_read(db, "a", &b, &n), 0);
	ASSERT(b >= 0 && n >= 0);
	larder_close(db);
}

TEST(stat_and_gc_commands_saturate_the_usage_of_crafted_counter_files)
{
#ifndef LARDER_CLI
	test_skip("this build has no larder command");
#else
	larder_close(open_store());
	craft_all("usage a 9223372036854775807 9223372036854775807\n"
		  "usage b 9223372036854775807 1\n",
		  0);
	const char *out = test_path("out.json");
	ASSERT_EQ(test_sh("'%s' --dir '%s' stat --json > '%s'", LARDER_CLI,
			  store_dir(), out),
		  0);
	ASSERT_EQ(test_sh("python3 -c 'import json, sys; j = "
			  "json.load(open(sys.argv[1]))[\"usage\"]; "
			  "sys.exit(j != {\"bytes\": 2**63 - 1, \"entries\": "
			  "2**63 - 1})' '%s'",
			  out),
		  0);
	ASSERT_EQ(test_sh("'%s' --dir '%s' stat > /dev/null && "
			  "'%s' --dir '%s' stat --prometheus > /dev/null",
			  LARDER_CLI, store_dir(), LARDER_CLI, store_dir()),
		  0);
	ASSERT_EQ(
	    test_sh("'%s' --dir '%s' gc > /dev/null", LARDER_CLI, store_dir()),
	    0);
#endif
}

TEST(stat_shows_no_counter_name_a_terminal_could_take_for_a_command)
{
#ifndef LARDER_CLI
	test_skip("this build has no larder command");
#else
	larder_close(open_store());
	/* A counter name with a terminal escape and a quote in it is a line
	 * of another shape (names are [a-z0-9_]): kept, never shown. */
	craft_all("odd\x1b[2J\"name 3\nfine_name 2\n", 0);
	const char *out = test_path("out.txt");
	ASSERT_EQ(test_sh("'%s' --dir '%s' stat > '%s'", LARDER_CLI,
			  store_dir(), out),
		  0);
	ASSERT_EQ(test_sh("grep -q \"$(printf '\\033')\" '%s'", out), 1);
	ASSERT_EQ(test_sh("grep -q '^  fine_name  *32$' '%s'", out), 0);
	ASSERT_EQ(test_sh("'%s' --dir '%s' stat --json > '%s'", LARDER_CLI,
			  store_dir(), out),
		  0);
	ASSERT_EQ(test_sh("python3 -c 'import json, sys; "
			  "c = json.load(open(sys.argv[1]))[\"counters\"]; "
			  "assert c[\"fine_name\"] == 32, c; "
			  "assert not [n for n in c if \"odd\" in n], c' '%s'",
			  out),
		  0);
#endif
}

TEST(stat_prometheus_is_utf8_whatever_the_counter_files_say)
{
#ifndef LARDER_CLI
	test_skip("this build has no larder command");
#else
	larder_close(open_store());
	/* A usage line whose namespace is bytes of no encoding, one with an
	 * escape sequence, an unknown counter, a line of another shape. */
	craft_all("usage \xff\xfe 1 1\n"
		  "usage a\x1b[2J 1 1\n"
		  "usage good 10 1\n"
		  "new_counter 5\n"
		  "\xc3\x28 \xe2\x82 1\n",
		  0);
	const char *out = test_path("out.prom");
	ASSERT_EQ(test_sh("'%s' --dir '%s' stat --prometheus > '%s'",
			  LARDER_CLI, store_dir(), out),
		  0);
	/* Strict UTF-8; the only namespace is the valid one; the unknown
	 * counter is there by its name. */
	ASSERT_EQ(test_sh("python3 -c 'import sys; "
			  "open(sys.argv[1], \"rb\").read().decode(\"utf-8\")' "
			  "'%s'",
			  out),
		  0);
	ASSERT_EQ(test_sh("test \"$(grep -o 'ns=\"[^\"]*\"' '%s' | sort -u)\" "
			  "= 'ns=\"good\"'",
			  out),
		  0);
	ASSERT_EQ(
	    test_sh("grep -q '^larder_new_counter_total{.*} 80$' '%s'", out),
	    0);
#endif
}
