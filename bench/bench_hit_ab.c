/*
 * bench_hit_ab — two builds of liblarder in one process, against each
 * other and a raw read, on a busy machine (docs/performance.md, "Where a
 * 4 KiB hit's time goes"). Runs of bench_hit one after another differ
 * by more than a small change to the hit path gains when other work
 * shares the machine; here batches of hits through build A, build B and
 * a raw open + pread + close alternate (in a shuffled order each round),
 * so that the load falls on all three alike, and the low quantiles of
 * the batches' means are compared.
 *
 *   bench_hit_ab [--repeat] [--head] [--size BYTES] [--rounds N]
 *                [--batch N] LIB_A LIB_B [DIR]
 *
 * LIB_A and LIB_B are paths of liblarder.so builds (copies in different
 * files: each is loaded apart, RTLD_LOCAL | RTLD_DEEPBIND). The store is
 * made under DIR (default $TMPDIR or /tmp) through A, one entry of BYTES
 * (4096), read through a handle of each opened with
 * LARDER_OPEN_VERIFY_ALWAYS (no memo: every hit is a first hit), and
 * removed at the end. With --repeat, the handles keep the memo (the
 * default) and the entry is read twice through each first: every hit
 * is a repeat hit, served from the memo. With --head, the gets name no
 * version (the key's head says it).
 */
#include <dlfcn.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"
#include "larder.h"

/* The part of the API used here, from one loaded build. */
struct api {
	int (*open)(larder **, const char *, const larder_opts *);
	void (*close)(larder *);
	int (*put)(larder *, const char *, const void *, size_t, const void *,
		   size_t, const void *, size_t, const larder_put_opts *);
	int (*get)(larder_entry **, larder *, const char *, const void *,
		   size_t, const void *, size_t);
	void (*release)(larder_entry *);
	const char *(*errmsg)(const larder *);
	larder *db;
};

static void die(const char *what, const char *a, const char *b)
{
	fprintf(stderr, "bench_hit_ab: %s '%s': %s\n", what, a, b);
	exit(1);
}

static void load(struct api *a, const char *path)
{
	void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
	if (!h)
		die("cannot load", path, dlerror());
#define SYM(f, n)                                                              \
	do {                                                                   \
		*(void **)&a->f = dlsym(h, n);                                 \
		if (!a->f)                                                     \
			die("no symbol in", path, n);                          \
	} while (0)
	SYM(open, "larder_open");
	SYM(close, "larder_close");
	SYM(put, "larder_put");
	SYM(get, "larder_get");
	SYM(release, "larder_entry_release");
	SYM(errmsg, "larder_errmsg");
#undef SYM
}

static int cmp_d(const void *x, const void *y)
{
	return cmp_double(x, y);
}

int main(int argc, char **argv)
{
	size_t size = 4096;
	int rounds = 300, batch = 400, repeat = 0, head = 0;
	const char *lib[2] = {NULL, NULL};
	const char *base = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
	int nl = 0;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--repeat"))
			repeat = 1;
		else if (!strcmp(argv[i], "--head"))
			head = 1;
		else if (!strcmp(argv[i], "--size") && i + 1 < argc)
			size = strtoull(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--rounds") && i + 1 < argc)
			rounds = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--batch") && i + 1 < argc)
			batch = atoi(argv[++i]);
		else if (argv[i][0] == '-')
			nl = 9;
		else if (nl < 2)
			lib[nl++] = argv[i];
		else
			base = argv[i];
	}
	if (nl != 2 || rounds < 1 || batch < 1) {
		fprintf(
		    stderr,
		    "usage: bench_hit_ab [--repeat] [--head] [--size BYTES] "
		    "[--rounds N] [--batch N] LIB_A LIB_B [DIR]\n");
		return 2;
	}
	struct api ab[2];
	load(&ab[0], lib[0]);
	load(&ab[1], lib[1]);

	char dir[4200], store[4300], raw[4300];
	snprintf(dir, sizeof dir, "%s/larder-hitab.XXXXXX", base);
	if (!mkdtemp(dir))
		die("cannot make a directory under", base, "mkdtemp");
	snprintf(store, sizeof store, "%s/store", dir);
	snprintf(raw, sizeof raw, "%s/raw", dir);
	char *payload = malloc(size ? size : 1);
	if (!payload)
		return 1;
	for (size_t i = 0; i < size; i++)
		payload[i] = (char)(i * 7 + 1);
	larder_opts o = LARDER_OPTS_INIT;
	o.flags = LARDER_OPEN_CREATE | (repeat ? 0 : LARDER_OPEN_VERIFY_ALWAYS);
	for (int k = 0; k < 2; k++) {
		if (ab[k].open(&ab[k].db, store, &o))
			die("cannot open", store, ab[k].errmsg(NULL));
		o.flags &= ~LARDER_OPEN_CREATE;
	}
	if (ab[0].put(ab[0].db, "bench", "k", 1, "v", 1, payload, size, NULL))
		die("cannot put into", store, ab[0].errmsg(ab[0].db));
	/* The memo takes an entry at its second read in a handle. */
	for (int k = 0; repeat && k < 2; k++)
		for (int r = 0; r < 2; r++) {
			larder_entry *e;
			if (ab[k].get(&e, ab[k].db, "bench", "k", 1,
				      head ? NULL : "v", head ? 0 : 1))
				die("cannot get from", store,
				    ab[k].errmsg(ab[k].db));
			ab[k].release(e);
		}
	int wfd = open(raw, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (wfd < 0 || write(wfd, payload, size) != (ssize_t)size ||
	    fsync(wfd) != 0 || close(wfd) != 0)
		die("cannot write", raw, "write");
	char *buf = malloc(size + 1);
	if (!buf)
		return 1;

	double *t[3];
	for (int m = 0; m < 3; m++)
		if (!(t[m] = malloc(sizeof(double) * (size_t)rounds)))
			return 1;
	uint64_t rng = 0x9E3779B97F4A7C15u;
	int order[3];
	for (int r = -rounds / 10; r < rounds; r++) { /* a tenth to warm */
		shuffle_order(order, 3, &rng);
		for (int j = 0; j < 3; j++) {
			int m = order[j];
			int64_t t0 = now_ns();
			for (int i = 0; i < batch; i++) {
				if (m == 2) {
					int fd = open(raw, O_RDONLY);
					if (fd < 0 || pread(fd, buf, size + 1,
							    0) != (ssize_t)size)
						die("cannot read", raw, "read");
					close(fd);
					continue;
				}
				larder_entry *e;
				if (ab[m].get(&e, ab[m].db, "bench", "k", 1,
					      head ? NULL : "v", head ? 0 : 1))
					die("cannot get from", store,
					    ab[m].errmsg(ab[m].db));
				ab[m].release(e);
			}
			if (r >= 0)
				t[m][r] = (double)(now_ns() - t0) / batch;
		}
	}
	static const char *name[3] = {"A", "B", "raw read"};
	double q[3][3];
	for (int m = 0; m < 3; m++) {
		qsort(t[m], (size_t)rounds, sizeof(double), cmp_d);
		q[m][0] = pct(t[m], rounds, 0.10);
		q[m][1] = pct(t[m], rounds, 0.25);
		q[m][2] = pct(t[m], rounds, 0.50);
	}
	double load[1] = {0};
	getloadavg(load, 1);
	printf("bench_hit_ab: %zu bytes, %d rounds of %d %s%s hits, load "
	       "%.2f\nA %s\nB %s\n",
	       size, rounds, batch, repeat ? "repeat" : "first",
	       head ? " version-less" : "", load[0], lib[0], lib[1]);
	printf("%-9s %9s %9s %9s   %s\n", "", "p10", "p25", "p50",
	       "/ raw read (p10 p25 p50)");
	for (int m = 0; m < 3; m++)
		printf("%-9s %6.3f us %6.3f us %6.3f us   %.3fx %.3fx %.3fx\n",
		       name[m], q[m][0] / 1e3, q[m][1] / 1e3, q[m][2] / 1e3,
		       q[m][0] / q[2][0], q[m][1] / q[2][1], q[m][2] / q[2][2]);
	printf("B / A: %.3fx %.3fx %.3fx\n", q[1][0] / q[0][0],
	       q[1][1] / q[0][1], q[1][2] / q[0][2]);
	for (int k = 0; k < 2; k++)
		ab[k].close(ab[k].db);
	char cmd[4400];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : 1;
}
