/*
 * bench_head.c — version-less lookups (the head hint) against versioned
 * ones on two clients of one filesystem, while the head changes.
 *
 *   bench_head [--rounds N] [--churn K] [--gap-ms G [--gap-each]] DIR_A DIR_B
 *
 * DIR_A and DIR_B are one directory seen through two mounts (the two
 * clients of tests/gluster/gluster.sh; the same path twice on a local
 * filesystem). A store is made under DIR_A; a writer there publishes a
 * 4 KiB entry of one key, and a new version of it (so a new head) every
 * K rounds (--churn, default 10; 0: never). Through DIR_B, each round, in
 * a random order, these are timed:
 *
 *   ver       larder_get(known version), a handle without the memo
 *             (LARDER_OPEN_VERIFY_ALWAYS): a first hit
 *   head      the same handle, version-less: the head read every time
 *   ver rep   larder_get(known version), a default handle (memo)
 *   head rep  version-less, another default handle (head cache and
 *             memo): each handle checks its own files, so that one's
 *             look at a name does not serve the other's check
 *   read      open + read + close of a plain 4 KiB file
 *
 * and p50/p90 with the ratios head/ver and head rep/ver rep against the
 * target (docs/performance.md, <= 1.5x). --gap-ms G sleeps G ms between
 * rounds (beyond a network client's 1 s attribute cache, every lookup
 * goes to the server); with --gap-each, before each timed lookup, so
 * that none finds the path components another one of its round just
 * looked up still cached (a versioned and a version-less lookup share
 * the kernel's cache of the store's directories). Exit 0 unless
 * something broke.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "larder.h"

#define NS "bench"
#define KEY "bench_head"
#define SIZE 4096

enum { M_VER, M_HEAD, M_VER_REP, M_HEAD_REP, M_READ, M_COUNT };
static const char *const names[M_COUNT] = {"ver", "head", "ver rep", "head rep",
					   "read"};

static void die(const char *fmt, ...)
    __attribute__((noreturn, format(printf, 1, 2)));

static void die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "bench_head: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
	exit(1);
}

static larder *open_at(const char *dir, unsigned flags)
{
	larder *db;
	larder_opts o = LARDER_OPTS_INIT;
	o.flags = flags;
	if (larder_open(&db, dir, &o))
		die("cannot open store '%s': %s", dir, larder_errmsg(NULL));
	return db;
}

static void get(larder *db, const char *ver)
{
	larder_entry *e;
	int rc = larder_get(&e, db, NS, KEY, strlen(KEY), ver,
			    ver ? strlen(ver) : 0);
	if (rc)
		die("larder_get(%s): %s: %s", ver ? ver : "NULL",
		    larder_strerror(rc), larder_errmsg(db));
	if (larder_entry_size(e) != SIZE)
		die("wrong size");
	larder_entry_release(e);
}

int main(int argc, char **argv)
{
	int rounds = 2000, churn = 10, gap_ms = 0, gap_each = 0;
	const char *dir[2] = {NULL, NULL};
	int nd = 0;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--rounds") && i + 1 < argc)
			rounds = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--churn") && i + 1 < argc)
			churn = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--gap-ms") && i + 1 < argc)
			gap_ms = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--gap-each"))
			gap_each = 1;
		else if (argv[i][0] != '-' && nd < 2)
			dir[nd++] = argv[i];
		else
			die("usage: bench_head [--rounds N] [--churn K] "
			    "[--gap-ms G [--gap-each]] DIR_A DIR_B");
	}
	if (nd != 2 || rounds < 1 || churn < 0 || gap_ms < 0)
		die("usage: bench_head [--rounds N] [--churn K] [--gap-ms G "
		    "[--gap-each]] DIR_A DIR_B");
	char name[64], sa[4200], sb[4200], raw_a[4300], raw_b[4300];
	snprintf(name, sizeof name, "larder-bench-head.%ld", (long)getpid());
	snprintf(sa, sizeof sa, "%s/%s", dir[0], name);
	snprintf(sb, sizeof sb, "%s/%s", dir[1], name);
	snprintf(raw_a, sizeof raw_a, "%s.raw", sa);
	snprintf(raw_b, sizeof raw_b, "%s.raw", sb);

	uint8_t buf[SIZE];
	for (size_t i = 0; i < SIZE; i++)
		buf[i] = (uint8_t)(i * 131 + 7);
	int fd = open(raw_a, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0 || write(fd, buf, SIZE) != SIZE || close(fd) != 0)
		die("cannot write '%s': %s", raw_a, strerror(errno));
	larder *w = open_at(sa, LARDER_OPEN_CREATE);
	larder *first = open_at(sb, LARDER_OPEN_VERIFY_ALWAYS);
	larder *rep = open_at(sb, 0), *rep_v = open_at(sb, 0);

	char ver[32] = "v0";
	int nver = 0;
	if (larder_put(w, NS, KEY, strlen(KEY), ver, strlen(ver), buf, SIZE,
		       NULL))
		die("larder_put: %s", larder_errmsg(w));
	double *t[M_COUNT];
	for (int m = 0; m < M_COUNT; m++)
		if (!(t[m] = malloc(sizeof(double) * (size_t)rounds)))
			die("out of memory");
	uint64_t rng = 0x2545F4914F6CDD1Dull;
	int warm = 20, stale = 0;
	for (int r = -warm; r < rounds; r++) {
		if (churn && r > 0 && r % churn == 0) {
			snprintf(ver, sizeof ver, "v%d", ++nver);
			buf[0] = (uint8_t)nver;
			if (larder_put(w, NS, KEY, strlen(KEY), ver,
				       strlen(ver), buf, SIZE, NULL))
				die("larder_put: %s", larder_errmsg(w));
		}
		if (gap_ms && !gap_each)
			usleep((useconds_t)gap_ms * 1000);
		int order[M_COUNT];
		shuffle_order(order, M_COUNT, &rng);
		for (int k = 0; k < M_COUNT; k++) {
			int m = order[k];
			if (gap_each)
				usleep((useconds_t)gap_ms * 1000);
			int64_t t0 = now_ns();
			if (m == M_VER)
				get(first, ver);
			else if (m == M_HEAD)
				get(first, NULL);
			else if (m == M_VER_REP)
				get(rep_v, ver);
			else if (m == M_HEAD_REP)
				get(rep, NULL);
			else {
				uint8_t in[SIZE];
				int f = open(raw_b, O_RDONLY | O_CLOEXEC);
				if (f < 0 || read(f, in, SIZE) != SIZE)
					die("cannot read '%s': %s", raw_b,
					    strerror(errno));
				close(f);
			}
			if (r >= 0)
				t[m][r] = (double)(now_ns() - t0);
		}
		/* How often the cached head lagged the writer (the bound). */
		larder_entry *e;
		if (r >= 0 &&
		    !larder_get(&e, rep, NS, KEY, strlen(KEY), NULL, 0)) {
			size_t vl;
			const void *v = larder_entry_version(&vl, e);
			stale += vl != strlen(ver) || memcmp(v, ver, vl) != 0;
			larder_entry_release(e);
		}
	}
	double p50[M_COUNT];
	double load[3] = {0, 0, 0};
	getloadavg(load, 3);
	printf("bench_head: larder %s, %d rounds, a new head every %d, "
	       "gap %d ms, load %.2f\nwriter %s\nreader %s\n",
	       larder_version(), rounds, churn, gap_ms, load[0], sa, sb);
	printf("%-10s %12s %12s\n", "method", "p50", "p90");
	for (int m = 0; m < M_COUNT; m++) {
		qsort(t[m], (size_t)rounds, sizeof(double), cmp_double);
		p50[m] = pct(t[m], rounds, 0.5);
		printf("%-10s %9.1f us %9.1f us\n", names[m], p50[m] / 1e3,
		       pct(t[m], rounds, 0.9) / 1e3);
		free(t[m]);
	}
	double rf = p50[M_HEAD] / p50[M_VER],
	       rr = p50[M_HEAD_REP] / p50[M_VER_REP];
	printf("head / ver         %6.2fx  (target <= 1.5x: %s)\n", rf,
	       rf <= 1.5 ? "PASS" : "MISS");
	printf("head rep / ver rep %6.2fx  (target <= 1.5x: %s)\n", rr,
	       rr <= 1.5 ? "PASS" : "MISS");
	printf("ver / read         %6.2fx\n", p50[M_VER] / p50[M_READ]);
	printf("rounds whose cached head lagged the writer: %d of %d\n", stale,
	       rounds);
	larder_close(rep);
	larder_close(rep_v);
	larder_close(first);
	larder_close(w);
	/* The store stays for a look; the plain file goes. */
	unlink(raw_a);
	return 0;
}
