/*
 * bench_version.c — what a file version costs (larder_files_version,
 * docs/versions.md), against the system calls it cannot avoid.
 *
 *   bench_version [--quick] [DIR]
 *
 * DIR (default $TMPDIR, else /tmp) holds the sources and the store, in a
 * scratch directory removed at the end. The sources are made, then the
 * benchmark waits until they are 2 s old (younger files are "racy": hashed
 * every time, never remembered).
 *
 *  - warm, 1 file: a small one (read each time: cheaper than a record)
 *    and one of 1 MiB (remembered: one stat, one record read), against one
 *    stat() of it;
 *  - a tree of 1000 small files in 10 directories: the first call (every
 *    file read, one record written for the tree); then warm, against a
 *    stat() of each file, and against a walk (readdir + fstatat of every
 *    entry), the least any tree version can do; and the same 1000 files
 *    given as 1000 inputs (no tree record: each file read);
 *  - the first version of a tree of 100 files of 64 KiB, which writes a
 *    record for each file: what remembering costs;
 *  - cold: hashing a 256 MiB file from the page cache (LARDER_FILES_NO_
 *    REMEMBER), against read() of it into a buffer.
 *
 * Times are medians of repeated runs (CLOCK_MONOTONIC); ratios are taken
 * within one run (this machine is shared and noisy).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "larder.h"

#define TREE_DIRS 10
#define TREE_FILES 1000
#define MID_FILES 100
#define MID_SIZE (64u << 10)

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what, larder *db, int rc)
{
	fprintf(stderr, "bench_version: %s: %s (%s)\n", what,
		larder_strerror(rc),
		db ? larder_errmsg(db) : larder_errmsg(NULL));
	exit(1);
}

static void die_errno(const char *what, const char *path)
{
	fprintf(stderr, "bench_version: %s '%s': %s\n", what, path,
		strerror(errno));
	exit(1);
}

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof *v, cmp_double);
	return v[n / 2];
}

static void write_file(const char *path, const void *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0 || write(fd, data, len) != (ssize_t)len || close(fd) != 0)
		die_errno("cannot write", path);
}

static void version(larder *db, const char *const *paths, size_t n,
		    unsigned flags)
{
	char out[LARDER_FILES_VERSION_LEN + 1];
	int rc = larder_files_version(out, db, paths, n, flags);
	if (rc)
		die("version", db, rc);
}

/* Every entry of a two-level tree: readdir + fstatat, what any tree
 * version must do at least. */
static void walk(const char *dir)
{
	DIR *d = opendir(dir);
	if (!d)
		die_errno("cannot open", dir);
	struct dirent *de;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		struct stat st;
		if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW))
			die_errno("cannot stat", de->d_name);
		if (S_ISDIR(st.st_mode)) {
			char sub[4096];
			snprintf(sub, sizeof sub, "%s/%s", dir, de->d_name);
			walk(sub);
		}
	}
	closedir(d);
}

int main(int argc, char **argv)
{
	int quick = argc > 1 && strcmp(argv[1], "--quick") == 0;
	const char *base =
	    argc > 1 + quick ? argv[1 + quick] : getenv("TMPDIR");
	if (!base || !*base)
		base = "/tmp";
	int reps = quick ? 5 : 201, tree_reps = quick ? 3 : 41;
	size_t big = quick ? (16u << 20) : (256u << 20);

	char root[4096], path[4400], store[4200];
	snprintf(root, sizeof root, "%s/bench-version.XXXXXX", base);
	if (!mkdtemp(root))
		die_errno("cannot make", root);
	snprintf(store, sizeof store, "%s/store", root);
	larder *db;
	larder_opts o = LARDER_OPTS_INIT;
	o.flags = LARDER_OPEN_CREATE;
	o.fsync = LARDER_FSYNC_NONE;
	int rc = larder_open(&db, store, &o);
	if (rc)
		die("open", NULL, rc);

	/* The sources. */
	char *buf = malloc(1u << 20);
	for (size_t i = 0; i < (1u << 20); i++)
		buf[i] = (char)(i * 2654435761u >> 24);
	char one[4200], mib[4200], tree[4200], mid[4200], bigf[4200];
	snprintf(one, sizeof one, "%s/one", root);
	write_file(one, "a small source file\n", 20);
	snprintf(mib, sizeof mib, "%s/mib", root);
	write_file(mib, buf, 1u << 20);
	snprintf(mid, sizeof mid, "%s/mid", root);
	if (mkdir(mid, 0755))
		die_errno("cannot make", mid);
	for (int i = 0; i < MID_FILES; i++) {
		snprintf(path, sizeof path, "%s/f%03d", mid, i);
		buf[0] = (char)i;
		write_file(path, buf, MID_SIZE);
	}
	snprintf(tree, sizeof tree, "%s/tree", root);
	if (mkdir(tree, 0755))
		die_errno("cannot make", tree);
	char **files = malloc(TREE_FILES * sizeof *files);
	for (int d = 0; d < TREE_DIRS; d++) {
		snprintf(path, sizeof path, "%s/d%02d", tree, d);
		if (mkdir(path, 0755))
			die_errno("cannot make", path);
	}
	for (int i = 0; i < TREE_FILES; i++) {
		char text[64];
		int n = snprintf(text, sizeof text, "file %d of the tree\n", i);
		snprintf(path, sizeof path, "%s/d%02d/f%04d", tree,
			 i % TREE_DIRS, i);
		write_file(path, text, (size_t)n);
		files[i] = strdup(path);
	}
	snprintf(bigf, sizeof bigf, "%s/big", root);
	int fd = open(bigf, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0)
		die_errno("cannot write", bigf);
	for (size_t done = 0; done < big; done += 1u << 20)
		if (write(fd, buf, 1u << 20) != 1 << 20)
			die_errno("cannot write", bigf);
	close(fd);

	/* Settled: older than the racy margin. */
	double until = now_s() + 2.2;
	while (now_s() < until)
		usleep(50000);

	const char *p1[1] = {one}, *pm[1] = {mib}, *pt[1] = {tree};
	const char *pd[1] = {mid}, *pb[1] = {bigf};
	double *t = malloc((size_t)reps * sizeof *t);
	double *u = malloc((size_t)reps * sizeof *u);

	/* 1 file: small, then 1 MiB */
	for (int which = 0; which < 2; which++) {
		const char *const *pp = which ? pm : p1;
		version(db, pp, 1, 0);
		for (int r = 0; r < reps; r++) {
			double t0 = now_s();
			version(db, pp, 1, 0);
			double t1 = now_s();
			struct stat st;
			if (stat(pp[0], &st))
				die_errno("cannot stat", pp[0]);
			u[r] = now_s() - t1;
			t[r] = t1 - t0;
		}
		double v1 = median(t, reps), s1 = median(u, reps);
		printf("warm version, 1 file of %s %8.1f us   stat() %6.1f "
		       "us   ratio %.1f\n",
		       which ? "1 MiB (remembered):" : "20 bytes (read):   ",
		       v1 * 1e6, s1 * 1e6, v1 / s1);
	}

	/* a tree of 1000 files: the first call reads them all and writes a
	 * record for each, and one for the tree */
	double c0 = now_s();
	version(db, pt, 1, 0);
	double cold_tree = now_s() - c0;
	version(db, (const char *const *)files, TREE_FILES, 0);
	double *w = malloc((size_t)tree_reps * sizeof *w);
	double *m = malloc((size_t)tree_reps * sizeof *m);
	for (int r = 0; r < tree_reps; r++) {
		double t0 = now_s();
		version(db, pt, 1, 0);
		double t1 = now_s();
		for (int i = 0; i < TREE_FILES; i++) {
			struct stat st;
			if (stat(files[i], &st))
				die_errno("cannot stat", files[i]);
		}
		double t2 = now_s();
		walk(tree);
		double t3 = now_s();
		version(db, (const char *const *)files, TREE_FILES, 0);
		double t4 = now_s();
		t[r] = t1 - t0;
		u[r] = t2 - t1;
		w[r] = t3 - t2;
		m[r] = t4 - t3;
	}
	double vt = median(t, tree_reps), st = median(u, tree_reps);
	double wt = median(w, tree_reps), mt = median(m, tree_reps);
	printf("warm version, tree of %d files: %8.2f ms   stat() of each "
	       "%5.2f ms   ratio %.1f\n",
	       TREE_FILES, vt * 1e3, st * 1e3, vt / st);
	printf("                                             walk (readdir + "
	       "stat) %5.2f ms   ratio %.1f\n",
	       wt * 1e3, vt / wt);
	printf("warm version, the %d files as %d inputs (each read): "
	       "%.2f ms   ratio to stat() %.1f\n",
	       TREE_FILES, TREE_FILES, mt * 1e3, mt / st);
	printf("first version of the tree (reads %d files, writes 1 "
	       "record): %.1f ms\n",
	       TREE_FILES, cold_tree * 1e3);
	c0 = now_s();
	version(db, pd, 1, 0);
	double cold_mid = now_s() - c0;
	printf("first version of a tree of %d files of %u KiB (writes %d "
	       "records): %.1f ms = %.2f ms a file\n",
	       MID_FILES, MID_SIZE >> 10, MID_FILES + 1, cold_mid * 1e3,
	       cold_mid * 1e3 / MID_FILES);

	/* hashing throughput, page cache warm */
	int big_reps = quick ? 2 : 7;
	version(db, pb, 1, LARDER_FILES_NO_REMEMBER);
	for (int r = 0; r < big_reps; r++) {
		double t0 = now_s();
		version(db, pb, 1, LARDER_FILES_NO_REMEMBER);
		double t1 = now_s();
		fd = open(bigf, O_RDONLY);
		ssize_t n;
		while ((n = read(fd, buf, 1u << 20)) > 0)
			;
		close(fd);
		u[r] = now_s() - t1;
		t[r] = t1 - t0;
	}
	double hb = median(t, big_reps), rb = median(u, big_reps);
	printf("cold version of %zu MiB (page cache): %6.1f ms = %.1f GB/s   "
	       "read() %.1f ms = %.1f GB/s\n",
	       big >> 20, hb * 1e3, (double)big / hb / 1e9, rb * 1e3,
	       (double)big / rb / 1e9);

	larder_close(db);
	for (int i = 0; i < TREE_FILES; i++)
		free(files[i]);
	free(files);
	free(buf);
	free(t);
	free(u);
	free(w);
	free(m);
	char cmd[4300];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
	if (system(cmd) != 0)
		fprintf(stderr, "bench_version: could not remove %s\n", root);
	return 0;
}
