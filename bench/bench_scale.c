/*
 * bench_scale.c — a store of a million entries against one of a thousand
 * (docs/performance.md: a warm hit within 1.2× of a 1 k-entry store), and what
 * a full walk and a sweep of the big one cost in time and memory.
 *
 *   bench_scale [--n N] [--small M] [--iters K] [DIR]
 *
 * DIR (default $TMPDIR, else /tmp, + "/larder-scale") holds store-N and
 * store-M. A store is built once (N puts of 100-byte payloads, fsync none,
 * each with its head hint, as `larder put` makes them) and reused by later
 * runs: building a million takes minutes. A file store-N.built says it is
 * complete; delete the store to build it again.
 *
 * Then, in one run:
 *  - warm-hit latency: larder_get with the known version on random keys,
 *    a sample of them warmed first (pages, dentries, inodes), then timed in
 *    rounds that alternate the two stores in a random order, so that the
 *    machine's noise falls on both alike; p50 and p90 of each and the ratio
 *    of the p50s (target ≤ 1.2); then gets of random keys from all N,
 *    each met about once (no per-key warm-up);
 *  - the largest fan-out directory (files in it) and the store's size;
 *  - a full larder_walk (headers only) and a larder_sweep (and its dry
 *    run) over the big store, each in a fresh process (this program run
 *    again with --child), timed, with that process's peak RSS (VmHWM)
 *    next to an idle one's;
 *  - a larder_gc dry run under a cap of half the entries (a whole walk),
 *    and one publish that crosses a cap of N - 1 entries (the cleaning a
 *    publish does: one slice of the store), the evicted put back after.
 *
 * Exit status 0 whether the target is met or not: timings on a shared
 * machine are information; non-zero only if something broke.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "larder.h"

#define NS "bench"
#define VER "v1"
#define PAYLOAD 100

static void die(const char *fmt, ...)
    __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "bench_scale: ");
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

static int key_of(uint64_t i, char *key, size_t n)
{
	return snprintf(key, n, "key-%010" PRIu64, i);
}

static void payload_of(uint64_t i, uint8_t *p)
{
	uint64_t x = i * 0x9E3779B97F4A7C15ull + 1;
	for (int b = 0; b < PAYLOAD; b++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		p[b] = (uint8_t)x;
	}
}

static larder *open_store(const char *dir, int create)
{
	larder *db;
	larder_opts o = LARDER_OPTS_INIT;
	o.flags = create ? LARDER_OPEN_CREATE : 0;
	o.fsync = LARDER_FSYNC_NONE;
	if (larder_open(&db, dir, &o) != 0)
		die("cannot open '%s': %s", dir, larder_errmsg(NULL));
	return db;
}

/* Build store `dir` with n entries unless `dir`.built says it is done. */
static void build(const char *dir, uint64_t n)
{
	char done[4200];
	snprintf(done, sizeof done, "%s.built", dir);
	if (access(done, F_OK) == 0) {
		printf("reusing %s (%" PRIu64 " entries)\n", dir, n);
		return;
	}
	printf("building %s: %" PRIu64 " entries of %d bytes...\n", dir, n,
	       PAYLOAD);
	fflush(stdout);
	larder *db = open_store(dir, 1);
	uint8_t p[PAYLOAD];
	char key[32];
	int64_t t0 = now_ns(), last = t0;
	/* Puts are idempotent (EXISTS for an entry already there), so an
	 * interrupted build resumes by running again. */
	for (uint64_t i = 0; i < n; i++) {
		int klen = key_of(i, key, sizeof key);
		payload_of(i, p);
		int rc = larder_put(db, NS, key, (size_t)klen, VER, 2, p,
				    PAYLOAD, NULL);
		if (rc < 0)
			die("put %s: %s", key, larder_errmsg(db));
		if (now_ns() - last > 10000000000LL) {
			last = now_ns();
			printf("  %" PRIu64 " entries, %.0f s\n", i + 1,
			       (double)(last - t0) / 1e9);
			fflush(stdout);
		}
	}
	larder_close(db);
	printf("built in %.1f s\n", (double)(now_ns() - t0) / 1e9);
	int fd = open(done, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0)
		die("cannot create '%s': %s", done, strerror(errno));
	close(fd);
}

/* Sorts the samples first; the rank rounded down (bench.h's pct() is the
 * nearest rank of samples already sorted). */
static double sort_pct(double *v, int n, double p)
{
	qsort(v, (size_t)n, sizeof *v, cmp_double);
	return v[(int)(p * (n - 1))];
}

struct side {
	larder *db;
	uint64_t n;
	uint64_t *sample; /* key numbers */
	int ns;
	double *t; /* µs per timed get */
	int nt;
};

static double one_get(struct side *s, uint64_t i)
{
	char key[32];
	int klen = key_of(i, key, sizeof key);
	larder_entry *e;
	int64_t t0 = now_ns();
	int rc = larder_get(&e, s->db, NS, key, (size_t)klen, VER, 2);
	if (rc == 0) {
		volatile uint8_t b = ((const uint8_t *)larder_entry_data(e))[0];
		(void)b;
		larder_entry_release(e);
	}
	int64_t t1 = now_ns();
	if (rc != 0)
		die("get %s: %s", key, larder_errmsg(s->db));
	return (double)(t1 - t0) / 1e3;
}

static void hits(const char *big, uint64_t n, const char *small, uint64_t m,
		 int iters)
{
	struct side s[2] = {{open_store(big, 0), n, NULL, 0, NULL, 0},
			    {open_store(small, 0), m, NULL, 0, NULL, 0}};
	int sample = 10000;
	unsigned seed = 12345;
	for (int k = 0; k < 2; k++) {
		s[k].ns = sample;
		s[k].sample = malloc(sizeof *s[k].sample * (size_t)sample);
		s[k].t = malloc(sizeof *s[k].t * (size_t)iters);
		for (int i = 0; i < sample; i++)
			s[k].sample[i] = (((uint64_t)rand_r(&seed) << 31) ^
					  (uint64_t)rand_r(&seed)) %
					 s[k].n;
		for (int w = 0; w < 2; w++) /* warm: pages, dentries */
			for (int i = 0; i < sample; i++)
				one_get(&s[k], s[k].sample[i]);
	}
	/* Rounds of 100 gets on one store, then 100 on the other, in a
	 * random order per round pair. */
	for (int done = 0; done < iters;) {
		int first = rand_r(&seed) & 1;
		for (int k = 0; k < 2; k++) {
			struct side *x = &s[first ^ k];
			for (int j = 0; j < 100 && x->nt < iters; j++)
				x->t[x->nt++] = one_get(
				    x, x->sample[(unsigned)rand_r(&seed) %
						 (unsigned)x->ns]);
		}
		done = s[0].nt < s[1].nt ? s[0].nt : s[1].nt;
	}
	double p50[2], p90[2];
	for (int k = 0; k < 2; k++) {
		p50[k] = sort_pct(s[k].t, s[k].nt, 0.5);
		p90[k] = sort_pct(s[k].t, s[k].nt, 0.9);
	}
	printf("\nwarm hit, larder_get with the known version, %d random "
	       "keys of a %d-key warmed sample:\n",
	       iters, sample);
	printf("  %-10" PRIu64 " entries: p50 %6.2f us  p90 %6.2f us\n", n,
	       p50[0], p90[0]);
	printf("  %-10" PRIu64 " entries: p50 %6.2f us  p90 %6.2f us\n", m,
	       p50[1], p90[1]);
	double r = p50[0] / p50[1];
	printf("  ratio of p50s %" PRIu64 "/%" PRIu64
	       ": %.2f (target <= 1.2: %s)\n",
	       n, m, r, r <= 1.2 ? "PASS" : "MISS");
	/* Beyond the sample: any of the N keys, each met about once, so
	 * its directory entries and inode are not in the kernel's caches
	 * unless a walk or the build left them there (the page cache holds
	 * the whole store on this machine). */
	s[0].nt = 0;
	for (int j = 0; j < iters / 4; j++)
		s[0].t[s[0].nt++] =
		    one_get(&s[0], ((((uint64_t)rand_r(&seed) << 31) ^
				     (uint64_t)rand_r(&seed)) %
				    s[0].n));
	printf("  %-10" PRIu64 " entries, %d random keys of all, unwarmed: "
	       "p50 %6.2f us  p90 %6.2f us\n",
	       n, s[0].nt, sort_pct(s[0].t, s[0].nt, 0.5),
	       sort_pct(s[0].t, s[0].nt, 0.9));
	for (int k = 0; k < 2; k++) {
		free(s[k].sample);
		free(s[k].t);
		larder_close(s[k].db);
	}
}

/* Size of the store and its largest directory. */
static uint64_t st_bytes, st_files, st_dirs;
static int add_one(const char *path, const struct stat *st, int flag,
		   struct FTW *ftw)
{
	(void)path;
	(void)ftw;
	st_bytes += (uint64_t)st->st_blocks * 512;
	if (flag == FTW_F)
		st_files++;
	else if (flag == FTW_D)
		st_dirs++;
	return 0;
}

static long count_names(const char *path)
{
	DIR *d = opendir(path);
	if (!d)
		return -1;
	long n = 0;
	struct dirent *de;
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			n++;
	closedir(d);
	return n;
}

static void sizes(const char *dir)
{
	st_bytes = st_files = st_dirs = 0;
	int64_t t0 = now_ns();
	if (nftw(dir, add_one, 64, FTW_PHYS) != 0)
		die("cannot walk '%s': %s", dir, strerror(errno));
	printf("\n%s: %" PRIu64 " files, %" PRIu64
	       " directories, %.2f GiB on disk (du; nftw took %.1f s)\n",
	       dir, st_files, st_dirs, (double)st_bytes / (1 << 30),
	       (double)(now_ns() - t0) / 1e9);
	/* Fan-out: ns/<ns>/{e,h}/<2 hex>/<2 hex>/. */
	for (const char *kind = "eh"; *kind; kind++) {
		long max = 0, total = 0, dirs = 0;
		char maxpath[4400] = "";
		for (int a = 0; a < 256; a++)
			for (int b = 0; b < 256; b++) {
				char p[4400];
				snprintf(p, sizeof p, "%s/ns/%s/%c/%02x/%02x",
					 dir, NS, *kind, a, b);
				long c = count_names(p);
				if (c < 0)
					continue;
				dirs++;
				total += c;
				if (c > max) {
					max = c;
					snprintf(maxpath, sizeof maxpath, "%s",
						 p);
				}
			}
		printf("  %s: %ld leaf directories, %.1f files each on "
		       "average, largest %ld (%s)\n",
		       *kind == 'e' ? "entries" : "heads  ", dirs,
		       dirs ? (double)total / (double)dirs : 0.0, max, maxpath);
	}
}

/* --- the measured children ------------------------------------------- */

static long hwm_kb(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	long kb = -1;
	while (f && fgets(line, sizeof line, f))
		if (sscanf(line, "VmHWM: %ld kB", &kb) == 1)
			break;
	if (f)
		fclose(f);
	return kb;
}

static int count_cb(const larder_entry_info *info, void *payload)
{
	(void)info;
	(*(uint64_t *)payload)++;
	return 0;
}

/* In a fresh process: do `what` on the store and print
 * "<seconds> <VmHWM kB> <count>". */
static int child(const char *what, const char *dir)
{
	larder *db = open_store(dir, 0);
	uint64_t count = 0;
	int64_t t0 = now_ns(), end = 0;
	int rc = 0;
	if (!strcmp(what, "walk")) {
		rc = larder_walk(db, NULL, 0, count_cb, &count);
	} else if (!strcmp(what, "sweep") || !strcmp(what, "sweep-dry")) {
		larder_sweep_report r = LARDER_SWEEP_REPORT_INIT;
		rc = larder_sweep(&r, db, NULL,
				  what[5] ? LARDER_SWEEP_DRY_RUN : 0);
		count = r.temps_kept + r.leases_kept + r.breaks_kept +
			r.quarantine_kept + r.temps_removed + r.leases_removed +
			r.breaks_removed + r.quarantine_removed;
	} else if (!strcmp(what, "gc-dry")) {
		/* A dry run under a cap of half the entries: both walks
		 * (classify, then choose by age) and the choice of half a
		 * million to evict, nothing removed. The cap is set for the
		 * run and taken away after it. */
		larder_limits l, old = LARDER_LIMITS_INIT;
		if (larder_limits_get(&old, db, NULL) != 0)
			die("limits: %s", larder_errmsg(db));
		l = old;
		larder_gc_report r = LARDER_GC_REPORT_INIT;
		const char *n = getenv("BENCH_SCALE_N"); /* set by main */
		l.max_entries = n ? atoll(n) / 2 : 0;
		if ((rc = larder_limits_set(db, NULL, &l)) == 0) {
			rc = larder_gc(&r, db, NULL, LARDER_GC_DRY_RUN);
			count = r.evicted + r.expired + r.superseded;
			int rc2 = larder_limits_set(db, NULL, &old);
			rc = rc ? rc : rc2;
		}
	} else if (!strcmp(what, "publish-over")) {
		/* One publish that crosses a cap of N - 1 entries, timed
		 * alone: it cleans what is over (a slice of the store); the
		 * gc-dry line is what a walk of the whole store costs. Then
		 * the evicted entries are put back and the cap taken away,
		 * so the store stays whole for the next run. */
		larder_limits l, old = LARDER_LIMITS_INIT;
		const char *n = getenv("BENCH_SCALE_N");
		uint64_t total = n ? strtoull(n, NULL, 10) : 0;
		if (larder_limits_get(&old, db, NULL) != 0)
			die("limits: %s", larder_errmsg(db));
		l = old;
		l.max_entries = (int64_t)total - 1;
		if (larder_limits_set(db, NULL, &l) != 0)
			die("limits: %s", larder_errmsg(db));
		uint8_t p[PAYLOAD];
		payload_of(total, p);
		t0 = now_ns();
		rc = larder_put(db, "bench-extra", "k", 1, VER, 2, p, PAYLOAD,
				NULL);
		end = now_ns();
		count = larder_counter(db, LARDER_CTR_EVICTIONS);
		if (rc == 0)
			rc = larder_limits_set(db, NULL, &old);
		if (rc == 0)
			rc = larder_remove(db, "bench-extra", "k", 1, VER, 2);
		char key[32];
		for (uint64_t i = 0; rc == 0 && i < total; i++) {
			int klen = key_of(i, key, sizeof key);
			larder_entry *e;
			if (larder_get(&e, db, NS, key, (size_t)klen, VER, 2) ==
			    0) {
				larder_entry_release(e);
				continue;
			}
			payload_of(i, p);
			rc = larder_put(db, NS, key, (size_t)klen, VER, 2, p,
					PAYLOAD, NULL);
		}
	} else if (strcmp(what, "idle")) {
		die("unknown child task '%s'", what);
	}
	double secs = (double)((end ? end : now_ns()) - t0) / 1e9;
	if (rc)
		die("%s: %s", what, larder_errmsg(db));
	larder_close(db);
	printf("%.3f %ld %" PRIu64 "\n", secs, hwm_kb(), count);
	return 0;
}

static void measure(const char *self, const char *what, const char *dir,
		    const char *label)
{
	int p[2];
	if (pipe(p) != 0)
		die("pipe: %s", strerror(errno));
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0)
		die("fork: %s", strerror(errno));
	if (pid == 0) {
		dup2(p[1], 1);
		close(p[0]);
		close(p[1]);
		execl(self, self, "--child", what, dir, (char *)NULL);
		_exit(127);
	}
	close(p[1]);
	char buf[256];
	ssize_t n = read(p[0], buf, sizeof buf - 1);
	close(p[0]);
	int st;
	waitpid(pid, &st, 0);
	if (n <= 0 || !WIFEXITED(st) || WEXITSTATUS(st))
		die("child '%s' failed (status 0x%x)", what, st);
	buf[n] = '\0';
	double secs;
	long kb;
	unsigned long long count;
	if (sscanf(buf, "%lf %ld %llu", &secs, &kb, &count) != 3)
		die("child '%s' said '%s'", what, buf);
	printf("  %-34s %8.2f s   peak RSS %7.1f MiB   (%llu)\n", label, secs,
	       (double)kb / 1024, count);
}

int main(int argc, char **argv)
{
	uint64_t n = 1000000, m = 1000;
	int iters = 200000;
	const char *base = NULL;
	if (argc == 4 && !strcmp(argv[1], "--child"))
		return child(argv[2], argv[3]);
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--n") && i + 1 < argc)
			n = strtoull(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--small") && i + 1 < argc)
			m = strtoull(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--iters") && i + 1 < argc)
			iters = atoi(argv[++i]);
		else if (argv[i][0] == '-')
			die("usage: bench_scale [--n N] [--small M] "
			    "[--iters K] [DIR]");
		else
			base = argv[i];
	}
	if (n == 0 || m == 0 || iters <= 0)
		die("N, M and K must be positive");
	char dir[4096], big[4200], small[4200];
	if (base) {
		snprintf(dir, sizeof dir, "%s", base);
	} else {
		const char *t = getenv("TMPDIR");
		snprintf(dir, sizeof dir, "%s/larder-scale",
			 t && *t ? t : "/tmp");
	}
	if (mkdir(dir, 0755) != 0 && errno != EEXIST)
		die("cannot create '%s': %s", dir, strerror(errno));
	snprintf(big, sizeof big, "%s/store-%" PRIu64, dir, n);
	snprintf(small, sizeof small, "%s/store-%" PRIu64, dir, m);
	build(small, m);
	build(big, n);

	hits(big, n, small, m, iters);
	sizes(big);

	printf("\nfull passes over the %" PRIu64
	       "-entry store, each in a fresh process:\n",
	       n);
	char self[4096];
	ssize_t l = readlink("/proc/self/exe", self, sizeof self - 1);
	if (l <= 0)
		die("readlink /proc/self/exe: %s", strerror(errno));
	self[l] = '\0';
	measure(self, "idle", big, "idle process (open, close)");
	measure(self, "walk", big, "larder_walk, headers (entries)");
	measure(self, "sweep-dry", big, "larder_sweep dry run (files judged)");
	measure(self, "sweep", big, "larder_sweep (files judged)");
	char nbuf[32];
	snprintf(nbuf, sizeof nbuf, "%" PRIu64, n);
	setenv("BENCH_SCALE_N", nbuf, 1);
	measure(self, "gc-dry", big,
		"larder_gc dry run, cap of half (would evict)");
	measure(self, "publish-over", big,
		"a publish crossing a cap of N-1 (evicted)");
	return 0;
}
