/*
 * test_sweep.c — sweeping (src/upkeep/sweep.c): the debris of killed writers
 * and fillers goes, once old enough by the store's clock; nothing live, and no
 * entry, head hint or config file, is ever removed.
 *
 * Ages are made with utimensat on the files: the sweeper reads a file's
 * age as its mtime against the store filesystem's "now", so a file whose
 * mtime is set an hour back is, to it, an hour old.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
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

/* Set path's mtime `secs` seconds into the past. */
static void age(const char *path, long secs)
{
	struct timespec t[2];
	clock_gettime(CLOCK_REALTIME, &t[0]);
	t[0].tv_sec -= secs;
	t[1] = t[0];
	if (utimensat(AT_FDCWD, path, t, AT_SYMLINK_NOFOLLOW) != 0)
		test_fail(__FILE__, __LINE__, "utimensat %s: %s", path,
			  strerror(errno));
}

static int exists(const char *path)
{
	struct stat st;
	return lstat(path, &st) == 0;
}

/* Files under the store whose name starts with a prefix (or ends with a
 * suffix), collected by nftw. */
static const char *want_prefix, *want_suffix;
static char found[16][4096];
static int n_found;
static int collect(const char *path, const struct stat *st, int flag,
		   struct FTW *ftw)
{
	(void)st;
	const char *base = path + ftw->base;
	size_t n = strlen(base);
	if (flag != FTW_F)
		return 0;
	if ((want_prefix && !strncmp(base, want_prefix, strlen(want_prefix))) ||
	    (want_suffix && n > strlen(want_suffix) &&
	     !strcmp(base + n - strlen(want_suffix), want_suffix))) {
		if (n_found < 16)
			snprintf(found[n_found], sizeof found[0], "%s", path);
		n_found++;
	}
	return 0;
}
static int find_files(const char *prefix, const char *suffix)
{
	want_prefix = prefix;
	want_suffix = suffix;
	n_found = 0;
	ASSERT_EQ(nftw(test_path("store"), collect, 16, FTW_PHYS), 0);
	return n_found;
}

static void note(int fd, char c)
{
	if (write(fd, &c, 1) != 1)
		_exit(90);
}

static void await(int fd, char want)
{
	char c = 0;
	ASSERT_EQ(read(fd, &c, 1), 1);
	ASSERT_EQ(c, want);
}

static void expect_exit0(pid_t pid)
{
	int st;
	ASSERT_EQ(waitpid(pid, &st, 0), pid);
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		test_fail(__FILE__, __LINE__, "child %ld: status 0x%x",
			  (long)pid, st);
}

static void kill9(pid_t pid)
{
	int st;
	ASSERT_EQ(kill(pid, SIGKILL), 0);
	ASSERT_EQ(waitpid(pid, &st, 0), pid);
	ASSERT(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
}

/* A pid that is certainly gone here: a child we have reaped. */
static long dead_pid(void)
{
	pid_t pid = fork();
	ASSERT(pid >= 0);
	if (pid == 0)
		_exit(0);
	expect_exit0(pid);
	return (long)pid;
}

static void expect_entry(larder *db, const char *key, size_t size,
			 uint64_t seed)
{
	larder_entry *e;
	ASSERT_RC(db, larder_get(&e, db, "default", key, strlen(key), "v1", 2),
		  0);
	ASSERT_EQ(larder_entry_size(e), size);
	ASSERT(test_check_pattern(larder_entry_data(e), size, seed));
	larder_entry_release(e);
}

/* Where key's entry (kind 'e', version "v1") or head hint (kind 'h') of
 * namespace ns lives: its directory into rel, or with file, the file;
 * its hex name into hex (33 bytes) unless NULL. */
static void rel_of(char *rel, const char *ns, const char *key, char kind,
		   int file, char *hex)
{
	uint8_t h[16];
	char x[33];
	if (kind == 'e')
		ldr_entry_hash(ns, key, strlen(key), "v1", 2, h);
	else
		ldr_head_hash(ns, key, strlen(key), h);
	ldr_hex(h, 16, x);
	if (file)
		ldr_file_rel(rel, ns, kind, x);
	else
		ldr_dir_rel(rel, ns, kind, x);
	if (hex)
		memcpy(hex, x, 33);
}

static larder_sweep_report sweep(larder *db, unsigned flags)
{
	larder_sweep_report r = LARDER_SWEEP_REPORT_INIT;
	ASSERT_RC(db, larder_sweep(&r, db, NULL, flags), 0);
	return r;
}

/* The file at path survives a sweep aged `young` seconds and goes aged
 * `old`; `gone` and `kept` pick the report's counts of its kind. */
#define KEPT_YOUNG_SWEPT_OLD(db, path, young, old, gone, kept)                 \
	do {                                                                   \
		age(path, young);                                              \
		larder_sweep_report r_ = sweep(db, 0);                         \
		ASSERT_EQ(r_.gone, 0);                                         \
		ASSERT_EQ(r_.kept, 1);                                         \
		ASSERT(exists(path));                                          \
		age(path, old);                                                \
		r_ = sweep(db, 0);                                             \
		ASSERT_EQ(r_.gone, 1);                                         \
		ASSERT_EQ(r_.kept, 0);                                         \
		ASSERT(!exists(path));                                         \
	} while (0)

/* A child running body(ready, go, arg): it speaks on ready and listens
 * on go; the parent gets the other ends. */
struct args {
	const char *key;
	size_t size;
	uint64_t seed;
};
static pid_t spawn(void (*body)(int, int, const struct args *),
		   const struct args *a, int *ready, int *go)
{
	int r[2], g[2];
	ASSERT_EQ(pipe(r), 0);
	ASSERT_EQ(pipe(g), 0);
	fflush(NULL);
	pid_t pid = fork();
	ASSERT(pid >= 0);
	if (pid == 0) {
		close(r[0]);
		close(g[1]);
		body(r[1], g[0], a);
		_exit(0);
	}
	close(r[1]);
	close(g[0]);
	*ready = r[0];
	*go = g[1];
	return pid;
}

/* Begin a writer for the key, write the first half of the pattern, say
 * 'W', wait for a byte on go, write the rest and commit (exit 0 if the
 * commit worked). */
static void write_held(int ready, int go, const struct args *a)
{
	larder *d = open_store();
	larder_writer *w;
	uint8_t *buf = malloc(a->size);
	test_fill_pattern(buf, a->size, a->seed);
	if (larder_writer_begin(&w, d, "default", a->key, strlen(a->key), "v1",
				2, NULL) != 0 ||
	    larder_writer_write(w, buf, a->size / 2) != 0)
		_exit(2);
	note(ready, 'W');
	char c;
	if (read(go, &c, 1) != 1)
		_exit(3);
	if (larder_writer_write(w, buf + a->size / 2, a->size - a->size / 2) !=
		0 ||
	    larder_writer_commit(w) != 0)
		_exit(4);
	larder_close(d);
}
static pid_t spawn_writer(const char *key, size_t size, uint64_t seed,
			  int *ready, int *go)
{
	struct args a = {key, size, seed};
	return spawn(write_held, &a, ready, go);
}

TEST(sigkilled_writers_temp_is_kept_while_young_and_swept_once_old)
{
	larder *db = open_store();
	int ready, go;
	pid_t pid = spawn_writer("k", 300000, 7, &ready, &go);
	await(ready, 'W');
	kill9(pid);
	ASSERT_EQ(find_files(".tmp.", NULL), 1);
	char tmp[4096];
	snprintf(tmp, sizeof tmp, "%s", found[0]);

	/* Its process is gone, but a pid alone is not proof enough (a
	 * container sharing our host name): it must be 5 minutes old. */
	larder_sweep_report r = sweep(db, 0);
	ASSERT_EQ(r.temps_removed, 0);
	ASSERT_EQ(r.temps_kept, 1);
	KEPT_YOUNG_SWEPT_OLD(db, tmp, 240, 360, temps_removed, temps_kept);
	ASSERT_EQ(find_files(".tmp.", NULL), 0);
	ASSERT_EQ(larder_counter(db, LARDER_CTR_TMP_SWEPT), 1);
	larder_close(db);
}

TEST(live_writers_temp_survives_and_its_commit_still_works)
{
	larder *db = open_store();
	int ready, go;
	pid_t pid = spawn_writer("k", 300000, 8, &ready, &go);
	await(ready, 'W');
	ASSERT_EQ(find_files(".tmp.", NULL), 1);
	char tmp[4096];
	snprintf(tmp, sizeof tmp, "%s", found[0]);
	/* Old enough for the dead-process rule, but its process lives. */
	age(tmp, 3600);
	larder_sweep_report r = sweep(db, 0);
	ASSERT_EQ(r.temps_removed, 0);
	ASSERT_EQ(r.temps_kept, 1);
	ASSERT(exists(tmp));
	note(go, 'g');
	expect_exit0(pid);
	expect_entry(db, "k", 300000, 8);
	ASSERT_EQ(find_files(".tmp.", NULL), 0);
	larder_close(db);
}

TEST(another_hosts_temp_is_kept_when_young_and_swept_past_a_day)
{
	larder *db = open_store();
	ASSERT_RC(db, larder_put(db, "default", "k", 1, "v1", 2, "x", 1, NULL),
		  0);
	/* Beside the entry, as a writer on another host would leave it;
	 * its pid is dead here, which says nothing about another host. */
	char rel[LDR_REL_MAX], tmp[4096];
	rel_of(rel, "default", "k", 'e', 0, NULL);
	snprintf(tmp, sizeof tmp, "%s/%s/.tmp.otherhost.%ld.0123456789abcdef",
		 test_path("store"), rel, dead_pid());
	ASSERT_EQ(test_sh("echo partial > '%s'", tmp), 0);

	KEPT_YOUNG_SWEPT_OLD(db, tmp, 23 * 3600, 25 * 3600, temps_removed,
			     temps_kept);
	larder_close(db);
}

/* A child whose get_or_fill of key loads: says 'L' on *ready, then waits
 * for a byte on *go and writes `size` pattern bytes. Exit 0 if the fill
 * returned the right bytes. */
struct hold {
	int go;
	int ready;
	size_t size;
	uint64_t seed;
};
static int held_loader(larder_fill *f, void *payload)
{
	struct hold *h = payload;
	note(h->ready, 'L');
	char c;
	if (read(h->go, &c, 1) != 1)
		return LARDER_EIO;
	uint8_t *buf = malloc(h->size);
	test_fill_pattern(buf, h->size, h->seed);
	int rc = larder_fill_write(f, buf, h->size);
	free(buf);
	return rc;
}
/* get_or_fill of the key with held_loader; exit 0 if it returned the
 * right bytes. */
static void fill_held(int ready, int go, const struct args *a)
{
	larder *d = open_store();
	struct hold h = {go, ready, a->size, a->seed};
	larder_fill_opts fo = LARDER_FILL_OPTS_INIT;
	fo.lease_seconds = 2;
	fo.heartbeat_seconds = 0.2;
	larder_entry *e = NULL;
	int outcome;
	int rc = larder_get_or_fill(&e, &outcome, d, "default", a->key,
				    strlen(a->key), "v1", 2, NULL, held_loader,
				    &h, &fo);
	if (rc != 0 || outcome != LARDER_FILLED ||
	    larder_entry_size(e) != a->size ||
	    !test_check_pattern(larder_entry_data(e), a->size, a->seed))
		_exit(5);
	larder_entry_release(e);
	larder_close(d);
}
static pid_t spawn_filler(const char *key, size_t size, uint64_t seed,
			  int *ready, int *go)
{
	struct args a = {key, size, seed};
	return spawn(fill_held, &a, ready, go);
}

static int must_load(larder_fill *f, void *payload)
{
	const struct hold *h = payload;
	uint8_t *buf = malloc(h->size);
	test_fill_pattern(buf, h->size, h->seed);
	int rc = larder_fill_write(f, buf, h->size);
	free(buf);
	return rc;
}

TEST(dead_same_host_lease_is_swept_and_the_next_fill_loads_at_once)
{
	larder *db = open_store();
	int ready, go;
	pid_t pid = spawn_filler("k", 5000, 9, &ready, &go);
	await(ready, 'L');
	kill9(pid);
	ASSERT_EQ(find_files(NULL, ".lease"), 1);
	char lease[4096];
	snprintf(lease, sizeof lease, "%s", found[0]);

	/* The record names this boot, this PID namespace, a dead pid: no
	 * age needed. */
	larder_sweep_report r = sweep(db, 0);
	ASSERT_EQ(r.leases_removed, 1);
	ASSERT_EQ(r.leases_kept, 0);
	ASSERT(!exists(lease));
	ASSERT_EQ(find_files(".break.", NULL), 0);

	/* With a long lease: the fill does not wait, nor break anything. */
	struct hold h = {-1, -1, 5000, 9};
	larder_fill_opts fo = LARDER_FILL_OPTS_INIT;
	fo.lease_seconds = 60;
	larder_entry *e;
	int outcome;
	ASSERT_RC(db,
		  larder_get_or_fill(&e, &outcome, db, "default", "k", 1, "v1",
				     2, NULL, must_load, &h, &fo),
		  0);
	ASSERT_EQ(outcome, LARDER_FILLED);
	ASSERT_EQ(larder_counter(db, LARDER_CTR_LEASE_BREAKS), 0);
	ASSERT_EQ(larder_counter(db, LARDER_CTR_WAITS), 0);
	ASSERT(test_check_pattern(larder_entry_data(e), 5000, 9));
	larder_entry_release(e);
	larder_close(db);
}

TEST(live_lease_survives_the_sweep_and_its_fill_completes)
{
	larder *db = open_store();
	int ready, go;
	pid_t pid = spawn_filler("k", 200000, 10, &ready, &go);
	await(ready, 'L');
	ASSERT_EQ(find_files(NULL, ".lease"), 1);
	char lease[4096];
	snprintf(lease, sizeof lease, "%s", found[0]);
	struct stat before, after;
	ASSERT_EQ(lstat(lease, &before), 0);
	larder_sweep_report r = sweep(db, 0);
	ASSERT_EQ(r.leases_removed, 0);
	ASSERT_EQ(r.leases_kept, 1);
	ASSERT_EQ(lstat(lease, &after), 0);
	ASSERT_EQ(after.st_ino, before.st_ino);

	note(go, 'g');
	expect_exit0(pid);
	expect_entry(db, "k", 200000, 10);
	ASSERT_EQ(find_files(NULL, ".lease"), 0);
	larder_close(db);
}

/* A lease record as a holder writes it (lease.c's format). */
static void write_lease(const char *path, const char *boot,
			unsigned long long pidns, long pid,
			unsigned long long start)
{
	FILE *f = fopen(path, "w");
	ASSERT(f);
	fprintf(f,
		"larder-lease 1\nhost %-63.63s\nboot %-36.36s\npidns %020llu\n"
		"pid %020ld\nstart %020llu\nnonce %-32.32s\nlease_ms %020llu\n"
		"counter %020llu\n",
		"somehost", boot, pidns, pid, start,
		"00112233445566778899aabbccddeeff", 30000ULL, 7ULL);
	ASSERT_EQ(fclose(f), 0);
}

/* As a holder on another machine writes it. */
static void foreign_lease(const char *path)
{
	write_lease(path, "0b0b0b0b-0000-4000-8000-000000000000", 4026531836ULL,
		    1L, 12345ULL);
}

/* The path of key k's lease in namespace "default" (the head directory
 * made by a put of k). */
static void lease_path(larder *db, char *out, size_t len)
{
	ASSERT_RC(db, larder_put(db, "default", "k", 1, "v1", 2, "x", 1, NULL),
		  0);
	char rel[LDR_REL_MAX];
	rel_of(rel, "default", "k", 'h', 1, NULL);
	snprintf(out, len, "%s/%s.lease", test_path("store"), rel);
}

TEST(another_hosts_lease_is_kept_while_it_beats_and_swept_after_an_hour)
{
	larder *db = open_store();
	char lease[4096];
	lease_path(db, lease, sizeof lease);
	foreign_lease(lease);

	KEPT_YOUNG_SWEPT_OLD(db, lease, 50 * 60, 61 * 60, leases_removed,
			     leases_kept);
	ASSERT_EQ(find_files(".break.", NULL), 0);
	/* The head hint beside it is untouched. */
	lease[strlen(lease) - 6] = '\0';
	ASSERT(exists(lease));
	larder_close(db);
}

TEST(container_lease_with_our_boot_but_another_pid_namespace_waits_an_hour)
{
	/* Containers on this machine share our boot id, not our pids: a
	 * pid that is dead here may be alive there. */
	larder *db = open_store();
	struct ldr_self me;
	ldr_self_get(&me, "h");
	ASSERT(me.pidns != 0);
	char lease[4096];
	lease_path(db, lease, sizeof lease);
	write_lease(lease, me.boot, (unsigned long long)me.pidns + 1,
		    dead_pid(), 12345ULL);
	KEPT_YOUNG_SWEPT_OLD(db, lease, 50 * 60, 61 * 60, leases_removed,
			     leases_kept);
	larder_close(db);
}

TEST(this_hosts_lease_whose_pid_now_runs_another_process_goes_at_once)
{
	larder *db = open_store();
	struct ldr_self me;
	ldr_self_get(&me, "h");
	ASSERT(me.proc_ok);
	char lease[4096];
	lease_path(db, lease, sizeof lease);
	/* Held by this very process: alive, kept. */
	write_lease(lease, me.boot, (unsigned long long)me.pidns, me.pid,
		    (unsigned long long)me.start);
	larder_sweep_report r = sweep(db, 0);
	ASSERT_EQ(r.leases_removed, 0);
	ASSERT_EQ(r.leases_kept, 1);
	/* Our pid, another start time: its holder died and the pid was
	 * reused. */
	write_lease(lease, me.boot, (unsigned long long)me.pidns, me.pid,
		    (unsigned long long)me.start + 1);
	r = sweep(db, 0);
	ASSERT_EQ(r.leases_removed, 1);
	ASSERT(!exists(lease));
	larder_close(db);
}

/* Garbage at a lease's name: what a crashed writer, a hand or another
 * program left where a lease should be (docs/leases.md). */
static void plant(const char *lease, int kind)
{
	switch (kind) {
	case 0: /* empty */
		ASSERT_EQ(test_sh(": > '%s'", lease), 0);
		break;
	case 1: /* bytes of no record */
		ASSERT_EQ(test_sh("head -c 200 /dev/urandom > '%s'", lease), 0);
		break;
	case 2: /* a record claiming a lease of 2^64-1 ms */
		ASSERT_EQ(test_sh("sed 's/^lease_ms .*/lease_ms "
				  "18446744073709551615/' '%s' > '%s.x' && "
				  "mv '%s.x' '%s'",
				  test_path("record"), lease, lease, lease),
			  0);
		break;
	case 3: /* a directory holding a tree, a FIFO and a way out */
		ASSERT_EQ(test_sh("mkdir -p '%s/a/b' && echo x > '%s/a/b/f' && "
				  "mkfifo '%s/a/p' && ln -s '%s' '%s/out'",
				  lease, lease, lease, test_path("outside"),
				  lease),
			  0);
		break;
	case 4:
		ASSERT_EQ(test_sh("mkfifo '%s'", lease), 0);
		break;
	case 5: /* a symlink out of the store */
		ASSERT_EQ(symlink(test_path("outside"), lease), 0);
		break;
	}
}

TEST(garbage_at_a_lease_name_is_kept_while_young_and_swept_after_an_hour)
{
	larder *db = open_store();
	char lease[4096];
	lease_path(db, lease, sizeof lease);
	foreign_lease(test_path("record"));
	ASSERT_EQ(test_sh("echo keep > '%s'", test_path("outside")), 0);
	for (int kind = 0; kind < 6; kind++) {
		plant(lease, kind);
		KEPT_YOUNG_SWEPT_OLD(db, lease, 50 * 60, 61 * 60,
				     leases_removed, leases_kept);
		/* Nothing left under a break name, directories included. */
		ASSERT_EQ(test_sh("test -z \"$(find '%s' -name '.break.*')\"",
				  test_path("store")),
			  0);
		struct stat st;
		ASSERT_EQ(lstat(test_path("outside"), &st), 0);
		ASSERT(S_ISREG(st.st_mode) && st.st_size == 5);
	}
	larder_close(db);
}

/* A break name beside the key's lease, as a breaker that died would
 * have left it. */
static void break_path(larder *db, char *brk, size_t size)
{
	char lease[4096];
	lease_path(db, lease, sizeof lease);
	snprintf(brk, size, "%s", lease);
	char *slash = strrchr(brk, '/');
	snprintf(slash, size - (size_t)(slash - brk),
		 "/.break.somehost.1.0011223344556677");
}

TEST(a_break_directory_of_a_dead_breaker_goes_after_ten_minutes)
{
	/* A breaker that moved a directory away and died before emptying
	 * it (or could not) leaves it under its break name. */
	larder *db = open_store();
	char brk[4200];
	break_path(db, brk, sizeof brk);
	ASSERT_EQ(test_sh("echo keep > '%s'", test_path("outside")), 0);
	plant(brk, 3);
	KEPT_YOUNG_SWEPT_OLD(db, brk, 9 * 60, 11 * 60, breaks_removed,
			     breaks_kept);
	struct stat st;
	ASSERT_EQ(lstat(test_path("outside"), &st), 0);
	plant(brk, 4); /* a FIFO moved away */
	KEPT_YOUNG_SWEPT_OLD(db, brk, 9 * 60, 11 * 60, breaks_removed,
			     breaks_kept);
	larder_close(db);
}

TEST(a_break_tree_too_deep_to_remove_is_kept_and_no_sweep_error)
{
	/* Deeper than a removal goes (16 levels): kept and said, never an
	 * error that would stop the cleaning. */
	larder *db = open_store();
	char brk[4200];
	break_path(db, brk, sizeof brk);
	ASSERT_EQ(test_sh("mkdir -p '%s'/1/2/3/4/5/6/7/8/9/10/11/12/13/14/15/"
			  "16/17/18",
			  brk),
		  0);
	age(brk, 11 * 60);
	larder_sweep_report r = sweep(db, 0);
	ASSERT_EQ(r.breaks_kept, 1);
	ASSERT(exists(brk));
	larder_close(db);
}

TEST(quarantined_entry_is_kept_a_week_from_its_quarantine)
{
	larder *db = open_store();
	char data[4096];
	test_fill_pattern(data, sizeof data, 3);
	ASSERT_RC(
	    db,
	    larder_put(db, "default", "k", 1, "v1", 2, data, sizeof data, NULL),
	    0);
	char hex[33], rel[LDR_REL_MAX];
	rel_of(rel, "default", "k", 'e', 1, hex);
	const char *entry = test_path("store/%s", rel);
	/* A month-old entry that goes bad today: its week counts from
	 * today. */
	ASSERT_EQ(test_sh("printf X | dd of='%s' bs=1 seek=200 conv=notrunc "
			  "2>/dev/null",
			  entry),
		  0);
	age(entry, 30 * 86400);
	larder_entry *e;
	ASSERT_RC(db, larder_get(&e, db, "default", "k", 1, "v1", 2),
		  LARDER_ENOTFOUND);
	ASSERT_EQ(larder_counter(db, LARDER_CTR_QUARANTINED), 1);
	ASSERT_EQ(find_files(hex, NULL), 1);
	char q[4096];
	snprintf(q, sizeof q, "%s", found[0]);
	ASSERT(strstr(q, "/quarantine/"));

	larder_sweep_report r = sweep(db, 0);
	ASSERT_EQ(r.quarantine_removed, 0);
	ASSERT_EQ(r.quarantine_kept, 1);
	KEPT_YOUNG_SWEPT_OLD(db, q, 6 * 86400, 8 * 86400, quarantine_removed,
			     quarantine_kept);
	larder_close(db);
}

TEST(quarantined_fifo_directory_or_link_goes_after_a_week_too)
{
	/* A reader quarantines whatever stood at an entry's name: a FIFO, a
	 * directory with a tree and a way out, a symlink. They are kept for
	 * inspection like a file, then go, without following anything. */
	larder *db = open_store();
	ASSERT_EQ(test_sh("echo keep > '%s'", test_path("outside")), 0);
	ASSERT_EQ(test_sh("mkdir -p '%s'", test_path("store/quarantine")), 0);
	const int kinds[] = {3, 4, 5};
	for (size_t i = 0; i < sizeof kinds / sizeof *kinds; i++) {
		const char *q = test_path(
		    "store/quarantine/00112233445566778899aabbccddeeff.%zu", i);
		plant(q, kinds[i]);
		KEPT_YOUNG_SWEPT_OLD(db, q, 6 * 86400, 8 * 86400,
				     quarantine_removed, quarantine_kept);
		struct stat st;
		ASSERT_EQ(lstat(test_path("outside"), &st), 0);
		ASSERT(S_ISREG(st.st_mode) && st.st_size == 5);
	}
	larder_close(db);
}

/* Every file of the store with its content, sorted, except the names
 * the sweep may take (which are listed in `gone`). */
static char listing[1 << 16];
static size_t listing_len;
static int list_one(const char *path, const struct stat *st, int flag,
		    struct FTW *ftw)
{
	(void)ftw;
	if (flag != FTW_F)
		return 0;
	const char *base = path + ftw->base;
	if (!strncmp(base, ".tmp.", 5) || !strncmp(base, ".break.", 7) ||
	    strstr(base, ".lease") || strstr(path, "/quarantine/"))
		return 0;
	char buf[8192];
	int fd = open(path, O_RDONLY);
	ssize_t n = fd >= 0 ? read(fd, buf, sizeof buf) : -1;
	if (fd >= 0)
		close(fd);
	uint64_t sum = 1469598103934665603ULL;
	for (ssize_t i = 0; i < n; i++)
		sum = (sum ^ (uint8_t)buf[i]) * 1099511628211ULL;
	listing_len += (size_t)snprintf(
	    listing + listing_len, sizeof listing - listing_len,
	    "%s %lld %llx %ld\n", path + strlen(test_path("store")),
	    (long long)st->st_size, (unsigned long long)sum,
	    (long)st->st_mtim.tv_sec);
	return 0;
}
static int cmp_lines(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}
static char *store_listing(void)
{
	listing_len = 0;
	ASSERT_EQ(nftw(test_path("store"), list_one, 16, FTW_PHYS), 0);
	char *lines[512], *save = NULL;
	int n = 0;
	char *copy = strdup(listing);
	for (char *l = strtok_r(copy, "\n", &save); l && n < 512;
	     l = strtok_r(NULL, "\n", &save))
		lines[n++] = l;
	qsort(lines, (size_t)n, sizeof *lines, cmp_lines);
	char *out = calloc(1, sizeof listing);
	for (int i = 0; i < n; i++) {
		strcat(out, lines[i]);
		strcat(out, "\n");
	}
	free(copy);
	return out;
}

/* Age every file and directory in the store by secs. */
static long age_all_by;
static int age_one(const char *path, const struct stat *st, int flag,
		   struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	age(path, age_all_by);
	return 0;
}

/* Debris of every kind, all old enough to go. */
static void make_debris(larder *db, char paths[4][4096])
{
	char hex[33], erel[LDR_REL_MAX], hrel[LDR_REL_MAX];
	rel_of(erel, "default", "k0", 'e', 0, NULL);
	rel_of(hrel, "default", "k0", 'h', 0, hex);
	snprintf(paths[0], 4096, "%s/%s/.tmp.%s.%ld.0123456789abcdef",
		 test_path("store"), erel, ldr_test_host(db), dead_pid());
	snprintf(paths[1], 4096, "%s/%s/%s.lease", test_path("store"), hrel,
		 hex);
	snprintf(paths[2], 4096, "%s/%s/.break.otherhost.1.0123456789abcdef",
		 test_path("store"), hrel);
	snprintf(paths[3], 4096, "%s/quarantine/%s.0123456789abcdef",
		 test_path("store"), hex);
	ASSERT_EQ(test_sh("mkdir -p '%s/%s' '%s/%s'", test_path("store"), erel,
			  test_path("store"), hrel),
		  0);
	for (int i = 0; i < 4; i++)
		if (i == 1)
			foreign_lease(paths[i]);
		else
			ASSERT_EQ(test_sh("echo debris > '%s'", paths[i]), 0);
	age(paths[0], 600);
	age(paths[1], 2 * 3600);
	age(paths[2], 3600);
	age(paths[3], 8 * 86400);
}

TEST(dry_run_reports_what_would_go_and_removes_nothing)
{
	larder *db = open_store();
	for (int i = 0; i < 3; i++) {
		char key[8];
		snprintf(key, sizeof key, "k%d", i);
		ASSERT_RC(db,
			  larder_put(db, "default", key, strlen(key), "v1", 2,
				     key, strlen(key), NULL),
			  0);
	}
	char debris[4][4096];
	make_debris(db, debris);
	larder_sweep_report r = sweep(db, LARDER_SWEEP_DRY_RUN);
	ASSERT_EQ(r.temps_removed, 1);
	ASSERT_EQ(r.leases_removed, 1);
	ASSERT_EQ(r.breaks_removed, 1);
	ASSERT_EQ(r.quarantine_removed, 1);
	uint64_t bytes = 0;
	for (int i = 0; i < 4; i++) {
		struct stat st;
		ASSERT_EQ(lstat(debris[i], &st), 0);
		bytes += (uint64_t)st.st_size;
	}
	ASSERT_EQ(r.bytes_removed, bytes);
	ASSERT_EQ(larder_counter(db, LARDER_CTR_TMP_SWEPT), 0);

	r = sweep(db, 0);
	ASSERT_EQ(r.temps_removed + r.leases_removed + r.breaks_removed +
		      r.quarantine_removed,
		  4);
	for (int i = 0; i < 4; i++)
		ASSERT(!exists(debris[i]));
	ASSERT_EQ(larder_counter(db, LARDER_CTR_TMP_SWEPT), 4);
	ASSERT_RC(db, larder_sweep(NULL, db, NULL, 0x80), LARDER_EINVAL);
	larder_close(db);
}

TEST(entries_heads_and_config_are_never_touched_however_old)
{
	larder *db = open_store();
	for (int i = 0; i < 20; i++) {
		char key[8];
		snprintf(key, sizeof key, "k%d", i);
		ASSERT_RC(db,
			  larder_put(db, i % 2 ? "default" : "other", key,
				     strlen(key), "v1", 2, key, strlen(key),
				     NULL),
			  0);
	}
	ASSERT_RC(db, larder_ns_set_ttl(db, "other", 3600), 0);
	char debris[4][4096];
	make_debris(db, debris);
	/* Everything a year old: entries, hints, config, the marker. */
	age_all_by = 365L * 86400;
	ASSERT_EQ(nftw(test_path("store"), age_one, 16, FTW_PHYS), 0);
	char *before = store_listing();
	ASSERT(strstr(before, "/config "));
	ASSERT(strstr(before, "/larder-store "));

	larder_sweep_report r = sweep(db, 0);
	ASSERT_EQ(r.temps_removed + r.leases_removed + r.breaks_removed +
		      r.quarantine_removed,
		  4);
	char *after = store_listing();
	ASSERT_STR_EQ(after, before);
	for (int i = 0; i < 20; i++) {
		char key[8];
		snprintf(key, sizeof key, "k%d", i);
		larder_entry *e;
		const char *ns = i % 2 ? "default" : "other";
		ASSERT_RC(db, larder_get(&e, db, ns, key, strlen(key), NULL, 0),
			  0);
		ASSERT_MEM_EQ(larder_entry_data(e), key, strlen(key));
		larder_entry_release(e);
	}
	free(before);
	free(after);
	larder_close(db);
}

TEST(sweeping_one_namespace_leaves_the_others_and_quarantine)
{
	larder *db = open_store();
	ASSERT_RC(db, larder_put(db, "other", "k", 1, "v1", 2, "x", 1, NULL),
		  0);
	char debris[4][4096];
	make_debris(db, debris);
	char rel[LDR_REL_MAX], tmp[4096];
	rel_of(rel, "other", "k", 'e', 0, NULL);
	snprintf(tmp, sizeof tmp, "%s/%s/.tmp.otherhost.1.0123456789abcdef",
		 test_path("store"), rel);
	ASSERT_EQ(test_sh("echo x > '%s'", tmp), 0);
	age(tmp, 2 * 86400);
	larder_sweep_report r = LARDER_SWEEP_REPORT_INIT;
	ASSERT_RC(db, larder_sweep(&r, db, "other", 0), 0);
	ASSERT_EQ(r.temps_removed, 1);
	ASSERT_EQ(r.leases_removed + r.breaks_removed + r.quarantine_removed,
		  0);
	ASSERT(!exists(tmp));
	for (int i = 0; i < 4; i++)
		ASSERT(exists(debris[i]));
	ASSERT_RC(db, larder_sweep(&r, db, "../x", 0), LARDER_EINVAL);
	larder_close(db);
}

TEST(empty_temp_directory_goes_past_a_day_and_a_full_one_stays)
{
	/* store.c makes a directory under a temp name when mkdir races on a
	 * network filesystem, then renames it into place. */
	larder *db = open_store();
	ASSERT_RC(db, larder_put(db, "default", "k", 1, "v1", 2, "x", 1, NULL),
		  0);
	const char *empty =
	    test_path("store/ns/default/e/.tmp.otherhost.1.0123456789abcdef");
	const char *full =
	    test_path("store/ns/default/h/.tmp.otherhost.2.0123456789abcdef");
	ASSERT_EQ(mkdir(empty, 0755), 0);
	ASSERT_EQ(mkdir(full, 0755), 0);
	ASSERT_EQ(test_sh("echo x > '%s/f'", full), 0);
	age(empty, 23 * 3600);
	age(full, 25 * 3600);
	larder_sweep_report r = sweep(db, 0);
	ASSERT_EQ(r.temps_removed, 0);
	ASSERT_EQ(r.temps_kept, 2);
	age(empty, 25 * 3600);
	r = sweep(db, 0);
	ASSERT_EQ(r.temps_removed, 1);
	ASSERT(!exists(empty));
	ASSERT(exists(full));
	larder_close(db);
}

/* A loader of 20,000 pattern bytes seeded by the key, in two writes. The
 * loader of the key HELD_KEY says 'L' on ready between them and waits
 * for a byte on go: the test sweeps while that fill is half written. */
#define HELD_KEY 20
struct load {
	uint64_t seed;
	int ready, go;
};

static int key_loader(larder_fill *f, void *payload)
{
	const struct load *l = payload;
	uint8_t buf[20000];
	test_fill_pattern(buf, sizeof buf, l->seed);
	int rc = larder_fill_write(f, buf, 10000);
	if (rc == 0 && l->seed == HELD_KEY + 1) {
		char c;
		note(l->ready, 'L');
		if (read(l->go, &c, 1) != 1)
			_exit(8);
	}
	return rc ? rc : larder_fill_write(f, buf + 10000, 10000);
}

/* Fill 40 keys shared with the other workers, put 40 of its own; every
 * byte checked. Exit 0 if all went right. */
static void work(int ready, int go, const struct args *a)
{
	larder *d = open_store();
	larder_fill_opts fo = LARDER_FILL_OPTS_INIT;
	fo.lease_seconds = 1;
	fo.heartbeat_seconds = 0.1;
	uint8_t buf[20000];
	for (uint64_t i = 0; i < 40; i++) {
		char key[32];
		struct load l = {i + 1, ready, go};
		snprintf(key, sizeof key, "shared-%" PRIu64, i);
		larder_entry *e;
		if (larder_get_or_fill(&e, NULL, d, "default", key, strlen(key),
				       "v1", 2, NULL, key_loader, &l,
				       &fo) != 0 ||
		    larder_entry_size(e) != sizeof buf ||
		    !test_check_pattern(larder_entry_data(e), sizeof buf,
					l.seed))
			_exit(6);
		larder_entry_release(e);
		snprintf(key, sizeof key, "own-%" PRIu64 "-%" PRIu64, a->seed,
			 i);
		test_fill_pattern(buf, sizeof buf, a->seed * 1000 + i);
		if (larder_put(d, "default", key, strlen(key), "v1", 2, buf,
			       sizeof buf, NULL) != 0)
			_exit(7);
	}
	larder_close(d);
}

TEST(sweeping_while_4_workers_fill_and_put_removes_nothing_and_breaks_nothing)
{
	larder *db = open_store();
	pid_t pids[4];
	int fds[8];
	for (int w = 0; w < 4; w++) {
		struct args a = {NULL, 0, (uint64_t)w + 1};
		pids[w] = spawn(work, &a, &fds[2 * w], &fds[2 * w + 1]);
		int fl = fcntl(fds[2 * w], F_GETFL);
		ASSERT(fl >= 0);
		ASSERT_EQ(fcntl(fds[2 * w], F_SETFL, fl | O_NONBLOCK), 0);
	}
	/* Sweeps run throughout; one of them, at least, while the fill of
	 * HELD_KEY is half written (its temp file and lease live, its
	 * other workers waiting on the lease), which must keep both. */
	int running = 4, sweeps = 0, held = 0;
	while (running > 0) {
		larder_sweep_report r = sweep(db, 0);
		ASSERT_EQ(r.temps_removed + r.leases_removed + r.breaks_removed,
			  0);
		sweeps++;
		for (int w = 0; w < 4; w++) {
			char c;
			if (!pids[w] || read(fds[2 * w], &c, 1) != 1)
				continue;
			ASSERT_EQ(c, 'L');
			r = sweep(db, 0);
			ASSERT_EQ(r.temps_removed + r.leases_removed +
				      r.breaks_removed,
				  0);
			ASSERT(r.temps_kept >= 1);
			ASSERT(r.leases_kept >= 1);
			held++;
			note(fds[2 * w + 1], 'g');
		}
		for (int w = 0; w < 4; w++) {
			int st;
			if (pids[w] &&
			    waitpid(pids[w], &st, WNOHANG) == pids[w]) {
				if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
					test_fail(__FILE__, __LINE__,
						  "worker %d: status 0x%x", w,
						  st);
				pids[w] = 0;
				running--;
			}
		}
	}
	/* Single flight: HELD_KEY was loaded once, so held once. */
	ASSERT_EQ(held, 1);
	printf("    %d sweeps while the workers ran\n", sweeps);
	for (uint64_t i = 0; i < 40; i++) {
		char key[32];
		snprintf(key, sizeof key, "shared-%" PRIu64, i);
		larder_entry *e;
		ASSERT_RC(
		    db,
		    larder_get(&e, db, "default", key, strlen(key), "v1", 2),
		    0);
		ASSERT(test_check_pattern(larder_entry_data(e), 20000, i + 1));
		larder_entry_release(e);
		for (uint64_t w = 1; w <= 4; w++) {
			snprintf(key, sizeof key, "own-%" PRIu64 "-%" PRIu64, w,
				 i);
			ASSERT_RC(db,
				  larder_get(&e, db, "default", key,
					     strlen(key), "v1", 2),
				  0);
			ASSERT(test_check_pattern(larder_entry_data(e), 20000,
						  w * 1000 + i));
			larder_entry_release(e);
		}
	}
	ASSERT_EQ(find_files(".tmp.", NULL), 0);
	ASSERT_EQ(find_files(NULL, ".lease"), 0);
	ASSERT_EQ(larder_counter(db, LARDER_CTR_TMP_SWEPT), 0);
	larder_close(db);
}

/* Wait for a byte on go, sweep, and write the report on ready. */
static void sweep_on_cue(int ready, int go, const struct args *a)
{
	(void)a;
	larder *d = open_store();
	char c;
	if (read(go, &c, 1) != 1)
		_exit(8);
	larder_sweep_report r = LARDER_SWEEP_REPORT_INIT;
	if (larder_sweep(&r, d, NULL, 0) != 0 ||
	    larder_counter(d, LARDER_CTR_TMP_SWEPT) != r.temps_removed)
		_exit(9);
	if (write(ready, &r, sizeof r) != (ssize_t)sizeof r)
		_exit(10);
	larder_close(d);
}

TEST(two_sweepers_at_once_remove_each_file_once_between_them)
{
	larder *db = open_store();
	ASSERT_RC(db, larder_put(db, "default", "k", 1, "v1", 2, "x", 1, NULL),
		  0);
	char rel[LDR_REL_MAX];
	rel_of(rel, "default", "k", 'e', 0, NULL);
	for (int i = 0; i < 200; i++) {
		const char *tmp = test_path(
		    "store/%s/.tmp.otherhost.%d.0123456789abcdef", rel, i + 1);
		ASSERT_EQ(test_sh("echo x > '%s'", tmp), 0);
		age(tmp, 2 * 86400);
	}
	int ready[2], go[2];
	pid_t pids[2];
	for (int k = 0; k < 2; k++)
		pids[k] = spawn(sweep_on_cue, NULL, &ready[k], &go[k]);
	for (int k = 0; k < 2; k++)
		note(go[k], 'g');
	uint64_t total = 0;
	for (int k = 0; k < 2; k++) {
		larder_sweep_report r = LARDER_SWEEP_REPORT_INIT;
		ASSERT_EQ(read(ready[k], &r, sizeof r), (ssize_t)sizeof r);
		expect_exit0(pids[k]);
		printf("    sweeper %d removed %" PRIu64 "\n", k,
		       r.temps_removed);
		total += r.temps_removed;
	}
	ASSERT_EQ(total, 200);
	ASSERT_EQ(find_files(".tmp.", NULL), 0);
	larder_close(db);
}
