/*
 * test_faults.c — fault injection: the Nth open/write/fsync/link/rename/
 * mkdir (or read/mmap on the read side) fails with ENOSPC, EIO, EDQUOT or
 * ESTALE, for N = 1, 2, … until the operation completes without the fault
 * firing (SQLite's way of testing I/O errors).
 *
 * Each run happens in a worker: this very binary re-executed with the
 * fault shim (faultshim.c) in LD_PRELOAD and LARDER_FAULT_WORKER set, which
 * a constructor below notices before the harness's main() runs. The worker
 * does one put and the reads after it, and writes what the library
 * returned to a result file. The test, without the shim, then checks the
 * store: the put either worked or failed with the code of its errno class,
 * nothing corrupt or partial is visible, no temp file is left behind, and
 * the store takes a fault-free put afterwards.
 */
#include "harness.h"
#include "larder.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef LARDER_FAULTSHIM
#error "LARDER_FAULTSHIM must name the fault shim (tests/faults.cmake)"
#endif

#define SMALL (1024u)
#define LARGE (300u * 1024u)
#define NS "default"
#define KEY "fault-key"
#define VER "v1"
#define MAX_N 500
#define NOT_RUN 99 /* a worker result for a call never made */

static const char *const errno_labels[] = {"ENOSPC", "EIO", "EDQUOT", "ESTALE"};

/* ---------------------------------------------------------------------- */
/* The worker (runs under the shim)                                        */

static int env_int(const char *name, int dflt)
{
	const char *v = getenv(name);
	return v && *v ? atoi(v) : dflt;
}

/* 1 if e holds exactly `size` pattern bytes of `seed`. */
static int entry_is(const larder_entry *e, size_t size, uint64_t seed)
{
	return larder_entry_size(e) == size &&
	       test_check_pattern(larder_entry_data(e), size, seed);
}

static int worker_put(larder *db, size_t size, uint64_t seed)
{
	unsigned char *buf = malloc(size);
	if (!buf)
		return LARDER_ENOMEM;
	test_fill_pattern(buf, size, seed);
	int rc;
	if (size <= SMALL) {
		rc = larder_put(db, NS, KEY, strlen(KEY), VER, strlen(VER), buf,
				size, NULL);
	} else {
		/* Streamed in uneven chunks, so the writer's buffering and
		 * spilling meet chunk boundaries anywhere. */
		larder_writer *w = NULL;
		rc = larder_writer_begin(&w, db, NS, KEY, strlen(KEY), VER,
					 strlen(VER), NULL);
		for (size_t off = 0; rc == 0 && off < size;) {
			size_t n = size - off < 40000 ? size - off : 40000;
			rc = larder_writer_write(w, buf + off, n);
			off += n;
		}
		if (rc == 0)
			rc = larder_writer_commit(w);
		else
			larder_writer_abort(w);
	}
	free(buf);
	return rc;
}

/* Reads (key, VER) and the head hint; *ok is 1 for the exact bytes, 0 for
 * wrong ones, -1 if nothing was returned. */
static int worker_get(larder *db, const void *ver, size_t vlen, size_t size,
		      uint64_t seed, int *ok)
{
	larder_entry *e = NULL;
	int rc = larder_get(&e, db, NS, KEY, strlen(KEY), ver, vlen);
	*ok = -1;
	if (rc == 0) {
		size_t got_vlen = 0;
		const void *v = larder_entry_version(&got_vlen, e);
		*ok = entry_is(e, size, seed) && got_vlen == strlen(VER) &&
		      memcmp(v, VER, got_vlen) == 0;
		larder_entry_release(e);
	}
	return rc;
}

__attribute__((constructor)) static void worker_main(void)
{
	const char *mode = getenv("LARDER_FAULT_WORKER");
	if (!mode)
		return;
	const char *store = getenv("LFW_STORE");
	const char *result = getenv("LFW_RESULT");
	size_t size = (size_t)env_int("LFW_SIZE", SMALL);
	uint64_t seed = (uint64_t)env_int("LFW_SEED", 1);
	/* A library that loops forever on a fault is a failure too. */
	alarm(20);

	larder_opts o = LARDER_OPTS_INIT;
	o.fsync = env_int("LFW_FSYNC", 0);
	larder *db = NULL;
	int rc_open = larder_open(&db, store, &o);
	int rc_put = NOT_RUN, oserr = 0, rc_get = NOT_RUN, ok_get = -1,
	    rc_head = NOT_RUN, ok_head = -1, early = 0;
	char msg[512] = "";
	if (rc_open != 0) {
		snprintf(msg, sizeof msg, "%s", larder_errmsg(NULL));
	} else {
		if (strcmp(mode, "put") == 0) {
			rc_put = worker_put(db, size, seed);
			oserr = larder_errno(db);
			snprintf(msg, sizeof msg, "%s", larder_errmsg(db));
		}
		/* Did the fault fire before the reads below? */
		const char *rep = getenv("LARDER_FAULT_REPORT");
		early = rep && access(rep, F_OK) == 0;
		rc_get = worker_get(db, VER, strlen(VER), size, seed, &ok_get);
		if (!msg[0] && rc_get < 0 && rc_get != LARDER_ENOTFOUND) {
			oserr = larder_errno(db);
			snprintf(msg, sizeof msg, "%s", larder_errmsg(db));
		}
		rc_head = worker_get(db, NULL, 0, size, seed, &ok_head);
		larder_close(db);
	}
	for (char *p = msg; *p; p++)
		if (*p == '\n')
			*p = ' ';
	FILE *f = fopen(result, "w");
	if (!f)
		_exit(3);
	fprintf(f, "%d %d %d %d %d %d %d %d\n%s\n", rc_open, rc_put, oserr,
		rc_get, ok_get, rc_head, ok_head, early, msg);
	if (fclose(f) != 0)
		_exit(3);
	exit(0); /* exit, not _exit: the shim reports its count at exit */
}

/* ---------------------------------------------------------------------- */
/* The test side                                                           */

struct fault {
	const char *op;	  /* LARDER_FAULT_OP */
	const char *err;  /* LARDER_FAULT_ERRNO */
	long nth;	  /* LARDER_FAULT_NTH */
	int persist;	  /* LARDER_FAULT_PERSIST */
	int shortio;	  /* LARDER_FAULT_SHORT */
	int fsync;	  /* enum larder_fsync for the worker's handle */
	const char *mode; /* "put" or "get" */
	size_t size;	  /* payload bytes */
	uint64_t seed;	  /* payload pattern */
	const char *path; /* LARDER_FAULT_PATH; NULL = the whole store */
};

struct outcome {
	int fired;
	long injected; /* faults the shim injected (its "injected" line) */
	char fired_line[4200];
	int rc_open, rc_put, oserr, rc_get, ok_get, rc_head, ok_head;
	int early; /* the fault fired before the worker's reads */
	char msg[600];
};

static char store_dir[4096];

/* A fault of op with err in a "put" or "get" (mode) of size bytes of the
 * pattern seed; the caller sets the rest (nth, persist, ...). */
static struct fault fault_of(const char *mode, const char *op, const char *err,
			     size_t size, uint64_t seed)
{
	struct fault f = {0};
	f.op = op;
	f.err = err;
	f.mode = mode;
	f.size = size;
	f.seed = seed;
	return f;
}

static void describe(const struct fault *f, char *buf, size_t len)
{
	snprintf(buf, len, "%s %s%s%s N=%ld size=%zu fsync=%d %s", f->mode,
		 f->op, f->shortio ? " short" : " ", f->shortio ? "" : f->err,
		 f->nth, f->size, f->fsync, f->persist ? "persistent" : "once");
}

/* With LARDER_FAULT_KEEP_GOING=1 in the environment a failed check is
 * printed and the sweep goes on (to see every failure at once); the test
 * still fails at its end. */
static int failures;

#define CHECK(f, o, cond, ...)                                                 \
	do {                                                                   \
		if (!(cond))                                                   \
			check_fail(__LINE__, (f), (o), #cond, __VA_ARGS__);    \
	} while (0)

__attribute__((format(printf, 5, 6))) static void
check_fail(int line, const struct fault *f, const struct outcome *o,
	   const char *cond, const char *fmt, ...)
{
	char what[256], why[512], all[8192];
	describe(f, what, sizeof what);
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, sizeof why, fmt, ap);
	va_end(ap);
	snprintf(all, sizeof all,
		 "[%s] %s: %s\n      worker: open=%d put=%d (%s) errno=%d "
		 "get=%d ok=%d head=%d ok=%d\n      msg: %s\n      %s",
		 what, cond, why, o->rc_open, o->rc_put,
		 o->rc_put == NOT_RUN ? "not run" : larder_strerror(o->rc_put),
		 o->oserr, o->rc_get, o->ok_get, o->rc_head, o->ok_head, o->msg,
		 o->fired ? o->fired_line : "(fault did not fire)");
	const char *kg = getenv("LARDER_FAULT_KEEP_GOING");
	if (!kg || kg[0] != '1')
		test_fail(__FILE__, line, "%s", all);
	fprintf(stderr, "    %s:%d: %s\n", __FILE__, line, all);
	failures++;
}

static void no_failures(void)
{
	if (failures)
		test_fail(__FILE__, __LINE__, "%d checks failed", failures);
}

static int rm_one(const char *path, const struct stat *st, int type,
		  struct FTW *ftw)
{
	(void)st;
	(void)type;
	(void)ftw;
	remove(path);
	return 0;
}

static void rm_rf(const char *dir)
{
	nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* A fresh, empty store at store_dir (its real path: the shim matches the
 * names the kernel reports). */
static void fresh_store(void)
{
	char want[4096];
	snprintf(want, sizeof want, "%s", test_path("st0re"));
	rm_rf(want);
	larder_opts o = LARDER_OPTS_INIT;
	o.flags = LARDER_OPEN_CREATE;
	larder *db = NULL;
	int rc = larder_open(&db, want, &o);
	if (rc != 0)
		test_fail(__FILE__, __LINE__, "larder_open(create %s): %s: %s",
			  want, larder_strerror(rc), larder_errmsg(NULL));
	larder_close(db);
	if (!realpath(want, store_dir))
		test_fail(__FILE__, __LINE__, "realpath %s: %s", want,
			  strerror(errno));
}

static void run_worker(const struct fault *f, struct outcome *o)
{
	char result[4096], report[4096];
	snprintf(result, sizeof result, "%s", test_path("worker.result"));
	snprintf(report, sizeof report, "%s", test_path("shim.report"));
	unlink(result);
	unlink(report);
	memset(o, 0, sizeof *o);
	o->rc_open = o->rc_put = o->rc_get = o->rc_head = NOT_RUN;

	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0)
		test_fail(__FILE__, __LINE__, "fork: %s", strerror(errno));
	if (pid == 0) {
		char asan[4096], preload[8300], num[32];
		test_asan_runtime(asan, sizeof asan);
		snprintf(preload, sizeof preload, "%s%s%s", asan,
			 asan[0] ? ":" : "", LARDER_FAULTSHIM);
		setenv("LD_PRELOAD", preload, 1);
		const char *ao = getenv("ASAN_OPTIONS");
		char aopts[4096];
		snprintf(aopts, sizeof aopts, "%s%sverify_asan_link_order=0",
			 ao ? ao : "", ao && *ao ? ":" : "");
		setenv("ASAN_OPTIONS", aopts, 1);
		setenv("LARDER_FAULT_WORKER", f->mode, 1);
		setenv("LARDER_FAULT_OP", f->op, 1);
		setenv("LARDER_FAULT_ERRNO", f->err ? f->err : "EIO", 1);
		snprintf(num, sizeof num, "%ld", f->nth);
		setenv("LARDER_FAULT_NTH", num, 1);
		setenv("LARDER_FAULT_PATH", f->path ? f->path : store_dir, 1);
		setenv("LARDER_FAULT_PERSIST", f->persist ? "1" : "0", 1);
		setenv("LARDER_FAULT_SHORT", f->shortio ? "1" : "0", 1);
		setenv("LARDER_FAULT_REPORT", report, 1);
		setenv("LFW_STORE", store_dir, 1);
		setenv("LFW_RESULT", result, 1);
		snprintf(num, sizeof num, "%zu", f->size);
		setenv("LFW_SIZE", num, 1);
		snprintf(num, sizeof num, "%d", (int)f->seed);
		setenv("LFW_SEED", num, 1);
		snprintf(num, sizeof num, "%d", f->fsync);
		setenv("LFW_FSYNC", num, 1);
		char *argv[] = {"test_faults-worker", NULL};
		execv("/proc/self/exe", argv);
		_exit(127);
	}
	int st = 0;
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			test_fail(__FILE__, __LINE__, "waitpid: %s",
				  strerror(errno));

	FILE *r = fopen(report, "r");
	if (r) {
		char line[4200];
		while (fgets(line, sizeof line, r)) {
			if (strncmp(line, "fired ", 6) == 0 && !o->fired) {
				o->fired = 1;
				line[strcspn(line, "\n")] = '\0';
				snprintf(o->fired_line, sizeof o->fired_line,
					 "%s", line);
			}
			char cls[32];
			long n;
			if (sscanf(line, "injected %31s %ld", cls, &n) == 2)
				o->injected = n;
		}
		fclose(r);
	}
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		char what[256];
		describe(f, what, sizeof what);
		if (WIFSIGNALED(st))
			test_fail(__FILE__, __LINE__,
				  "[%s] worker killed by signal %d%s; %s", what,
				  WTERMSIG(st),
				  WTERMSIG(st) == SIGALRM ? " (hung)" : "",
				  o->fired ? o->fired_line : "not fired");
		test_fail(__FILE__, __LINE__, "[%s] worker exited %d; %s", what,
			  WEXITSTATUS(st),
			  o->fired ? o->fired_line : "not fired");
	}
	FILE *in = fopen(result, "r");
	if (!in || fscanf(in, "%d %d %d %d %d %d %d %d\n", &o->rc_open,
			  &o->rc_put, &o->oserr, &o->rc_get, &o->ok_get,
			  &o->rc_head, &o->ok_head, &o->early) != 8)
		test_fail(__FILE__, __LINE__, "bad worker result %s", result);
	if (!fgets(o->msg, sizeof o->msg, in))
		o->msg[0] = '\0';
	o->msg[strcspn(o->msg, "\n")] = '\0';
	fclose(in);
}

/* The worker under f in a fresh store. */
static void run_fresh(const struct fault *f, struct outcome *o)
{
	fresh_store();
	run_worker(f, o);
}

/* The LARDER_E* code an injected errno must surface as (0 if it may be
 * absorbed by a retry, as ESTALE and EINTR may). */
static int code_for(const char *err)
{
	if (!strcmp(err, "ENOSPC") || !strcmp(err, "EDQUOT") ||
	    !strcmp(err, "EFBIG"))
		return LARDER_EFULL;
	if (!strcmp(err, "ESTALE"))
		return LARDER_ESTALE;
	if (!strcmp(err, "ENOMEM"))
		return LARDER_ENOMEM;
	if (!strcmp(err, "EACCES"))
		return LARDER_EPERM;
	if (!strcmp(err, "EINTR"))
		return 0;
	return LARDER_EIO;
}

static int errno_for(const char *err)
{
	static const struct {
		const char *n;
		int e;
	} t[] = {{"ENOSPC", ENOSPC}, {"EIO", EIO},	{"EDQUOT", EDQUOT},
		 {"ESTALE", ESTALE}, {"EINTR", EINTR},	{"ENOMEM", ENOMEM},
		 {"EFBIG", EFBIG},   {"EACCES", EACCES}};
	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
		if (!strcmp(t[i].n, err))
			return t[i].e;
	return 0;
}

static int count_tmp_cb(const char *path, const struct stat *st, int type,
			struct FTW *ftw)
{
	(void)st;
	(void)type;
	return strstr(path + ftw->base, ".tmp.") != NULL;
}

/* Non-zero if a temp file is left anywhere in the store. */
static int temps_left(void)
{
	return nftw(store_dir, count_tmp_cb, 16, FTW_PHYS);
}

static int walk_cb(const larder_entry_info *info, void *payload)
{
	int *bad = payload;
	if (info->state != LARDER_STATE_OK)
		(*bad)++;
	return 0;
}

/* Reads without the shim: (key, ver) or the head hint; 1 exact, 0 wrong,
 * -1 none. Returns the rc. */
static int clean_get(larder *db, const void *ver, size_t vlen,
		     const struct fault *f, int *ok)
{
	return worker_get(db, ver, vlen, f->size, f->seed, ok);
}

/* Everything that must hold after one faulted put. */
static void check_put(const struct fault *f, const struct outcome *o)
{
	const int want = code_for(f->err ? f->err : "EIO");
	const int fault_errno = errno_for(f->err ? f->err : "EIO");

	if (!o->fired || f->shortio) {
		/* No fault (or only short transfers): plain success. */
		CHECK(f, o, o->rc_open == 0, "open must succeed");
		CHECK(f, o, o->rc_put == 0, "put must succeed");
	}
	if (o->rc_open != 0) {
		CHECK(f, o,
		      o->rc_open == want ||
			  (want == LARDER_ESTALE && o->rc_open == 0),
		      "open failed with %d, want %d", o->rc_open, want);
	} else if (o->rc_put != 0) {
		CHECK(f, o, o->rc_put == want, "put failed with %s, want %s",
		      larder_strerror(o->rc_put), larder_strerror(want));
		CHECK(f, o, o->oserr == fault_errno,
		      "larder_errno() is %d, want the injected %d", o->oserr,
		      fault_errno);
	}
	/* What the worker read: never wrong bytes. */
	CHECK(f, o, o->ok_get != 0, "get returned wrong bytes");
	CHECK(f, o, o->ok_head != 0, "head get returned wrong bytes");
	if (o->rc_open == 0 && o->rc_put == 0) {
		/* A fault that fires during the reads may fail them, with
		 * its own class or as a miss; otherwise they must work. */
		if ((!o->fired || o->early || f->shortio || want == 0) &&
		    !f->persist)
			CHECK(f, o, o->rc_get == 0 && o->ok_get == 1,
			      "a published entry must read back");
		else
			CHECK(f, o,
			      o->rc_get == 0 || o->rc_get == want ||
				  o->rc_get == LARDER_ENOTFOUND,
			      "get of a published entry under a read fault "
			      "returned %s",
			      larder_strerror(o->rc_get));
	}
	/* A failed fdatasync of the entry must not be followed by its link:
	 * retrying fsync after a failure reports success for lost data. */
	const int entry_fsync_failed =
	    o->fired && !f->shortio && want != 0 && !strcmp(f->op, "fsync") &&
	    strstr(o->fired_line, "/.tmp.") && strstr(o->fired_line, "/e/");
	if (entry_fsync_failed) {
		CHECK(f, o, o->rc_put < 0,
		      "put succeeded although the entry's fsync failed");
	}

	CHECK(f, o, temps_left() == 0, "a .tmp. file was left in the store");

	/* Without the shim: the entry is all there or not there at all. */
	larder *db = NULL;
	int rc = larder_open(&db, store_dir, NULL);
	CHECK(f, o, rc == 0, "clean open failed: %d %s", rc,
	      larder_errmsg(NULL));
	if (rc != 0)
		return;
	int ok = -1;
	rc = clean_get(db, VER, strlen(VER), f, &ok);
	CHECK(f, o, rc == 0 || rc == LARDER_ENOTFOUND,
	      "clean get returned %d (%s): %s", rc, larder_strerror(rc),
	      larder_errmsg(db));
	CHECK(f, o, ok != 0, "clean get returned wrong bytes");
	if (o->rc_open == 0 && o->rc_put == 0)
		CHECK(f, o, rc == 0, "put said 0 but the entry is missing");
	/* larder.h: "on failure nothing is left behind". */
	if (o->rc_open == 0 && o->rc_put < 0)
		CHECK(f, o, rc == LARDER_ENOTFOUND,
		      "put failed but its entry was published");
	if (entry_fsync_failed)
		CHECK(f, o, rc == LARDER_ENOTFOUND,
		      "entry visible although its fsync failed");
	const int published = rc == 0;
	rc = clean_get(db, NULL, 0, f, &ok);
	CHECK(f, o, rc == 0 || rc == LARDER_ENOTFOUND,
	      "clean head get returned %d (%s): %s", rc, larder_strerror(rc),
	      larder_errmsg(db));
	CHECK(f, o, ok != 0, "clean head get returned wrong bytes");
	int bad = 0;
	rc = larder_walk(db, NULL, LARDER_WALK_VERIFY, walk_cb, &bad);
	CHECK(f, o, rc == 0, "walk failed: %d %s", rc, larder_errmsg(db));
	CHECK(f, o, bad == 0, "%d entries are not OK after the fault", bad);

	/* And the store takes a fault-free put of the same entry. */
	unsigned char *buf = malloc(f->size);
	CHECK(f, o, buf != NULL, "malloc");
	test_fill_pattern(buf, f->size, f->seed);
	rc = larder_put(db, NS, KEY, strlen(KEY), VER, strlen(VER), buf,
			f->size, NULL);
	free(buf);
	CHECK(f, o, rc == 0 || (published && rc == LARDER_EXISTS),
	      "fault-free put after the fault returned %d (%s): %s", rc,
	      larder_strerror(rc), larder_errmsg(db));
	rc = clean_get(db, VER, strlen(VER), f, &ok);
	CHECK(f, o, rc == 0 && ok == 1, "entry unreadable after a clean put");
	larder_close(db);
	CHECK(f, o, temps_left() == 0, "a clean put left a .tmp. file");
}

/* Run the put under the fault for N = 1, 2, … until it no longer fires. */
static int sweep_put(struct fault f)
{
	for (f.nth = 1; f.nth <= MAX_N; f.nth++) {
		struct outcome o;
		run_fresh(&f, &o);
		/* The shim's own tally agrees with what fired: one fault,
		 * or (persistent) one or more, or none. */
		CHECK(&f, &o,
		      o.fired
			  ? o.injected >= 1 && (f.persist || o.injected == 1)
			  : o.injected == 0,
		      "the shim injected %ld faults", o.injected);
		check_put(&f, &o);
		if (!o.fired)
			return (int)f.nth - 1;
	}
	test_fail(__FILE__, __LINE__, "%s %s still firing at N=%d", f.op, f.err,
		  MAX_N);
}

/* Every errno of the list × both payload sizes; returns the total number
 * of faulted runs, which must be > 0 (the op was reached at all). */
static void sweep_op(const char *op, int nerr, int fsync)
{
	int total = 0;
	for (int e = 0; e < nerr; e++) {
		for (int s = 0; s < 2; s++) {
			struct fault f =
			    fault_of("put", op, errno_labels[e],
				     s ? LARGE : SMALL, 7 + (uint64_t)s);
			f.fsync = fsync;
			total += sweep_put(f);
		}
	}
	if (total == 0)
		test_fail(__FILE__, __LINE__,
			  "no %s call was ever seen inside the store", op);
	printf("     %s: %d faulted puts\n", op, total);
	fflush(stdout);
	no_failures();
}

TEST(fault_open_every_nth_fails_cleanly)
{
	sweep_op("open", 4, 0); /* ENOSPC EIO EDQUOT ESTALE */
}

TEST(fault_write_every_nth_fails_cleanly)
{
	sweep_op("write", 3, 0);
}

TEST(fault_fsync_every_nth_fails_cleanly)
{
	sweep_op("fsync", 3, 0);
}

TEST(fault_fsync_full_policy_every_nth_fails_cleanly)
{
	sweep_op("fsync", 3, LARDER_FSYNC_FULL);
}

TEST(fault_link_every_nth_fails_cleanly)
{
	sweep_op("link", 4, 0); /* ENOSPC EIO EDQUOT ESTALE */
}

TEST(fault_rename_every_nth_fails_cleanly)
{
	sweep_op("rename", 3, 0);
}

TEST(fault_mkdir_every_nth_fails_cleanly)
{
	sweep_op("mkdir", 3, 0);
}

/* A chmod that fails with EIO, every Nth: handled cleanly, and a new
 * directory of the entry that could not be given the store's mode is not
 * published into. On GlusterFS that EIO is the one sign that two clients
 * made the directory at once and its replicas disagree; an entry linked
 * into it was reported published while the other client's was too. */
TEST(fault_chmod_of_a_new_entry_directory_fails_the_put)
{
	int dir_faults = 0;
	for (int s = 0; s < 2; s++) {
		struct fault f =
		    fault_of("put", "chmod", "EIO", s ? LARGE : SMALL, 19);
		for (f.nth = 1; f.nth <= MAX_N; f.nth++) {
			struct outcome o;
			run_fresh(&f, &o);
			check_put(&f, &o);
			if (!o.fired)
				break;
			if (strstr(o.fired_line, "/e/") &&
			    !strstr(o.fired_line, "/.tmp.")) {
				dir_faults++;
				CHECK(&f, &o, o.rc_put == LARDER_EIO,
				      "a put into a directory whose chmod "
				      "failed returned %s",
				      larder_strerror(o.rc_put));
			}
		}
	}
	printf("     %d faults on the entry's new directories\n", dir_faults);
	ASSERT(dir_faults > 0);
	no_failures();
}

/* A disk that stays full from the Nth write on: the put fails with EFULL
 * however the writer retries, and cleans up after itself. */
TEST(fault_disk_stays_full_put_fails_efull)
{
	for (int s = 0; s < 2; s++) {
		struct fault f =
		    fault_of("put", "write", "ENOSPC", s ? LARGE : SMALL, 11);
		f.persist = 1;
		int n = sweep_put(f);
		ASSERT(n > 0);
	}
	no_failures();
}

/* EINTR never escapes the library: a single EINTR anywhere is retried.
 * Each op is reached by a put and its reads, so each must have had EINTRs
 * injected, one per run that fired. */
TEST(fault_eintr_is_retried_everywhere)
{
	static const char *const ops[] = {"open", "read", "write", "fsync"};
	for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
		for (int s = 0; s < 2; s++) {
			long injected = 0;
			struct fault f = fault_of("put", ops[i], "EINTR",
						  s ? LARGE : SMALL, 13);
			for (f.nth = 1; f.nth <= MAX_N; f.nth++) {
				struct outcome o;
				run_fresh(&f, &o);
				CHECK(&f, &o,
				      o.rc_open == 0 && o.rc_put == 0 &&
					  o.rc_get == 0 && o.ok_get == 1,
				      "EINTR escaped the library");
				CHECK(&f, &o, o.injected == (o.fired ? 1 : 0),
				      "the shim injected %ld EINTR",
				      o.injected);
				check_put(&f, &o);
				injected += o.injected;
				if (!o.fired)
					break;
			}
			if (injected == 0)
				test_fail(__FILE__, __LINE__,
					  "no EINTR was injected into %s "
					  "(size %zu)",
					  f.op, f.size);
		}
	}
	no_failures();
}

/* Short reads and writes are legal; the library must complete them. Each
 * case must have had transfers shortened: once per faulted run, and at
 * least twice when every transfer is (the rest of a shortened transfer of
 * an entry's header and payload is shortened again). */
TEST(fault_short_io_is_completed)
{
	static const char *const ops[] = {"write", "read"};
	for (size_t i = 0; i < 2; i++) {
		for (int s = 0; s < 2; s++) {
			for (int persist = 0; persist < 2; persist++) {
				struct fault f =
				    fault_of("put", ops[i], "EIO",
					     s ? LARGE : SMALL, 17);
				f.shortio = 1;
				f.persist = persist;
				if (persist) {
					/* every transfer halved */
					struct outcome o;
					f.nth = 1;
					run_fresh(&f, &o);
					check_put(&f, &o);
					CHECK(&f, &o,
					      o.rc_get == 0 && o.ok_get == 1,
					      "short transfers not completed");
					CHECK(&f, &o, o.injected >= 2,
					      "%ld transfers shortened",
					      o.injected);
				} else if (sweep_put(f) == 0) {
					test_fail(__FILE__, __LINE__,
						  "no %s was shortened (size "
						  "%zu)",
						  f.op, f.size);
				}
			}
		}
	}
	no_failures();
}

/* ---------------------------------------------------------------------- */
/* The read side                                                           */

static void publish_clean(const struct fault *f)
{
	larder *db = NULL;
	ASSERT_RC(db, larder_open(&db, store_dir, NULL), 0);
	unsigned char *buf = malloc(f->size);
	ASSERT(buf != NULL);
	test_fill_pattern(buf, f->size, f->seed);
	ASSERT_RC(db,
		  larder_put(db, NS, KEY, strlen(KEY), VER, strlen(VER), buf,
			     f->size, NULL),
		  0);
	free(buf);
	larder_close(db);
}

static void check_get(const struct fault *f, const struct outcome *o)
{
	const int want = code_for(f->err);
	CHECK(f, o, o->rc_open == 0 || o->rc_open == want,
	      "open failed with %d", o->rc_open);
	CHECK(f, o, o->ok_get != 0, "get returned wrong bytes");
	CHECK(f, o, o->ok_head != 0, "head get returned wrong bytes");
	if (o->rc_open == 0) {
		CHECK(f, o,
		      o->rc_get == 0 || o->rc_get == LARDER_ENOTFOUND ||
			  o->rc_get == want,
		      "get under fault returned %d (%s)", o->rc_get,
		      larder_strerror(o->rc_get));
		if (!o->fired || f->shortio || !strcmp(f->err, "EINTR"))
			CHECK(f, o, o->rc_get == 0 && o->ok_get == 1,
			      "get must succeed");
	}
	/* A failed read is not a corrupt entry: the good entry must still be
	 * there (not quarantined) and read back exactly. */
	larder *db = NULL;
	int rc = larder_open(&db, store_dir, NULL);
	CHECK(f, o, rc == 0, "clean open: %d", rc);
	if (rc != 0)
		return;
	int ok = -1;
	rc = clean_get(db, VER, strlen(VER), f, &ok);
	CHECK(f, o, rc == 0 && ok == 1,
	      "good entry lost after a read fault: get returned %d (%s): %s",
	      rc, larder_strerror(rc), larder_errmsg(db));
	larder_close(db);
	CHECK(f, o, temps_left() == 0, "a .tmp. file appeared on a read");
}

static int sweep_get(struct fault f)
{
	for (f.nth = 1; f.nth <= MAX_N; f.nth++) {
		struct outcome o;
		fresh_store();
		publish_clean(&f);
		run_worker(&f, &o);
		check_get(&f, &o);
		if (!o.fired)
			return (int)f.nth - 1;
		if (f.persist) /* it keeps failing: once is enough */
			return 1;
	}
	test_fail(__FILE__, __LINE__, "get: %s still firing at N=%d", f.op,
		  MAX_N);
}

static void sweep_get_op(const char *op, const char *const *errs, int nerr,
			 int persist)
{
	int total = 0;
	for (int e = 0; e < nerr; e++) {
		for (int s = 0; s < 2; s++) {
			struct fault f =
			    fault_of("get", op, errs[e], s ? LARGE : SMALL,
				     23 + (uint64_t)s);
			f.persist = persist;
			total += sweep_get(f);
		}
	}
	if (total == 0)
		test_fail(__FILE__, __LINE__,
			  "no %s call was ever seen on the read side", op);
	printf("     %s: %d faulted gets\n", op, total);
	fflush(stdout);
	no_failures();
}

TEST(fault_get_open_error_is_error_or_miss)
{
	static const char *const errs[] = {"EIO", "ESTALE", "EINTR"};
	sweep_get_op("open", errs, 3, 0);
}

TEST(fault_get_read_error_is_error_or_miss)
{
	static const char *const errs[] = {"EIO", "EINTR"};
	sweep_get_op("read", errs, 2, 0);
}

TEST(fault_get_any_call_eio_never_wrong_bytes)
{
	static const char *const errs[] = {"EIO"};
	sweep_get_op("any", errs, 1, 0);
}

/* Large payloads are mapped; a mapping that fails is an error or a
 * fallback to reading, never wrong bytes. */
TEST(fault_get_mmap_failure_is_error_or_read)
{
	static const char *const errs[] = {"ENOMEM", "EIO"};
	sweep_get_op("mmap", errs, 2, 0);
}

/* ESTALE that never stops: the lookup gives up (bounded), no hang. */
TEST(fault_get_estale_storm_is_bounded)
{
	static const char *const errs[] = {"ESTALE"};
	sweep_get_op("open", errs, 1, 1);
}

/* The store's marker file cannot be opened: larder_open says why, with
 * the code of the errno and a message naming the file. */
TEST(fault_unopenable_store_marker_reports_its_errno)
{
	static const char *const errs[] = {"EIO", "EACCES", "ENOSPC"};
	for (size_t i = 0; i < sizeof errs / sizeof errs[0]; i++) {
		fresh_store();
		char marker[4200];
		snprintf(marker, sizeof marker, "%s/larder-store", store_dir);
		struct fault f = fault_of("put", "open", errs[i], SMALL, 5);
		f.nth = 1;
		f.path = marker;
		struct outcome o;
		run_worker(&f, &o);
		ASSERT(o.fired);
		CHECK(&f, &o, o.rc_open == code_for(errs[i]),
		      "larder_open returned %d (%s), want %d (%s)", o.rc_open,
		      larder_strerror(o.rc_open), code_for(errs[i]),
		      larder_strerror(code_for(errs[i])));
		CHECK(&f, &o, strstr(o.msg, "larder-store") != NULL,
		      "the message does not name the marker file");
	}
	no_failures();
}

/* EINTR opening the store directory itself is retried like any other. */
TEST(fault_eintr_opening_the_store_is_retried)
{
	fresh_store();
	struct fault f = fault_of("put", "open", "EINTR", SMALL, 5);
	f.nth = 1;
	struct outcome o;
	run_worker(&f, &o);
	ASSERT(o.fired);
	CHECK(&f, &o, o.rc_open == 0 && o.rc_put == 0,
	      "EINTR on the store's open escaped larder_open");
	no_failures();
}

/* The shim itself: it fires on the Nth call of the class and only inside
 * the given path, so the sweeps above test what they claim. */
TEST(fault_shim_fires_on_the_nth_call_only)
{
	fresh_store();
	struct fault f = fault_of("put", "mkdir", "ENOSPC", SMALL, 3);
	f.nth = 1;
	struct outcome o;
	run_worker(&f, &o);
	ASSERT(o.fired);
	ASSERT(strstr(o.fired_line, "fired mkdir ") != NULL);
	ASSERT(strstr(o.fired_line, store_dir) != NULL);
	ASSERT(strstr(o.fired_line, "errno=ENOSPC") != NULL);
	f.nth = 100000;
	run_fresh(&f, &o);
	ASSERT(!o.fired);
	ASSERT_EQ(o.rc_put, 0);
}
