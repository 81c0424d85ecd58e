/*
 * bench_uring.c — what a small entry's three system calls (openat2 from a
 * held directory, pread, close) cost against one io_uring submission that
 * does the same: IORING_OP_OPENAT2 with the store's resolve flags into a
 * direct descriptor, a READ of that fixed file, a CLOSE of it, linked,
 * submitted and waited for in one io_uring_enter (docs/performance.md,
 * "Where a 4 KiB hit's time goes"). Both in one run, in rounds whose
 * order is shuffled, so that the machine's load falls on both alike.
 *
 *   bench_uring [--quick] [--size BYTES]
 *
 * Prints the p50 and p90 of each way per operation, the ring's setup
 * cost, and the difference (syscalls - ring): what the ring saves a hit.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <liburing.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "bench.h"

#define ROUNDS 41
#define SLOT 0 /* the direct descriptor the chain opens into */

static char dir[] = "/tmp/bench_uring.XXXXXX";
/* As an entry lies in a store: ns/<ns>/e/xx/yy/<32 hex>, the last three
 * components opened beneath the held "ns/<ns>/e". */
static const char *tail = "ab/cd/abcdef0123456789abcdef0123456789";

static void die(const char *what)
{
	fprintf(stderr, "bench_uring: %s: %s\n", what, strerror(errno));
	exit(1);
}

static int sys_openat2(int dfd, const char *path, struct open_how *how)
{
	return (int)syscall(SYS_openat2, dfd, path, how, sizeof *how);
}

/* The store's open of an entry file (src/base/fsutil.c): no symlink
 * followed; O_CLOEXEC there, which a direct descriptor refuses. */
static void entry_how(struct open_how *how, int cloexec)
{
	memset(how, 0, sizeof *how);
	how->flags = O_RDONLY | O_NONBLOCK | O_NOCTTY | O_NOFOLLOW |
		     (cloexec ? O_CLOEXEC : 0);
	how->resolve = RESOLVE_NO_SYMLINKS;
}

static ssize_t by_syscalls(int dfd, uint8_t *buf, size_t cap)
{
	struct open_how how;
	entry_how(&how, 1);
	int fd = sys_openat2(dfd, tail, &how);
	if (fd < 0)
		die("openat2");
	ssize_t n = pread(fd, buf, cap, 0);
	if (n < 0)
		die("pread");
	if (close(fd) != 0)
		die("close");
	return n;
}

static ssize_t by_ring(struct io_uring *ring, int dfd, uint8_t *buf, size_t cap)
{
	struct open_how how;
	entry_how(&how, 0);
	struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
	io_uring_prep_openat2_direct(sqe, dfd, tail, &how, SLOT);
	sqe->flags |= IOSQE_IO_LINK;
	sqe->user_data = 1;
	sqe = io_uring_get_sqe(ring);
	io_uring_prep_read(sqe, SLOT, buf, (unsigned)cap, 0);
	/* A hard link: a read shorter than asked (every small file's) must
	 * not cancel the close. */
	sqe->flags |= IOSQE_FIXED_FILE | IOSQE_IO_HARDLINK;
	sqe->user_data = 2;
	sqe = io_uring_get_sqe(ring);
	io_uring_prep_close_direct(sqe, SLOT);
	sqe->user_data = 3;
	int rc = io_uring_submit_and_wait(ring, 3);
	if (rc < 0) {
		errno = -rc;
		die("io_uring_submit_and_wait");
	}
	ssize_t n = -1;
	for (int i = 0; i < 3; i++) {
		struct io_uring_cqe *cqe;
		if ((rc = io_uring_wait_cqe(ring, &cqe)) < 0) {
			errno = -rc;
			die("io_uring_wait_cqe");
		}
		if (cqe->res < 0) {
			errno = -cqe->res;
			die(cqe->user_data == 1	  ? "ring openat2"
			    : cqe->user_data == 2 ? "ring read"
						  : "ring close");
		}
		if (cqe->user_data == 2)
			n = cqe->res;
		io_uring_cqe_seen(ring, cqe);
	}
	return n;
}

static int ring_setup(struct io_uring *ring, unsigned flags)
{
	int rc = io_uring_queue_init(4, ring, flags);
	if (rc < 0)
		return rc;
	rc = io_uring_register_files_sparse(ring, 1);
	if (rc < 0)
		io_uring_queue_exit(ring);
	return rc;
}

static void cleanup(void)
{
	char p[256];
	snprintf(p, sizeof p, "rm -rf '%s'", dir);
	if (system(p) != 0)
		fprintf(stderr, "bench_uring: could not remove %s\n", dir);
}

/* The ways timed: the three system calls, a ring set up plainly, and one
 * set up as a thread's own (IORING_SETUP_SINGLE_ISSUER |
 * IORING_SETUP_DEFER_TASKRUN: completions run when the thread waits,
 * the cheapest setup for a ring only its thread submits to), and a bare
 * getppid for what one system call costs on this machine. */
enum { SYS, RING, RING_OWN, GETPPID, WAYS };
static const char *way_name[WAYS] = {
    "openat2 + pread + close", "io_uring chain, plain ring",
    "io_uring chain, thread's own ring", "getppid (one bare syscall)"};
static const unsigned way_flags[WAYS] = {
    0, 0, IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN, 0};

int main(int argc, char **argv)
{
	int quick = 0;
	size_t size = 4208; /* a 4 KiB payload's entry file */
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--quick"))
			quick = 1;
		else if (!strcmp(argv[i], "--size") && i + 1 < argc)
			size = (size_t)strtoull(argv[++i], NULL, 10);
		else {
			fprintf(
			    stderr,
			    "usage: bench_uring [--quick] [--size BYTES]\n");
			return 2;
		}
	}
	if (!mkdtemp(dir))
		die("mkdtemp");
	atexit(cleanup);
	char p[512];
	snprintf(p, sizeof p, "mkdir -p '%s/ns/n/e/ab/cd'", dir);
	if (system(p) != 0)
		die("mkdir");
	snprintf(p, sizeof p, "%s/ns/n/e/%s", dir, tail);
	int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	uint8_t *data = malloc(size ? size : 1);
	if (fd < 0 || !data)
		die("create the file");
	memset(data, 'x', size);
	if (write(fd, data, size) != (ssize_t)size || close(fd) != 0)
		die("write the file");
	snprintf(p, sizeof p, "%s/ns/n/e", dir);
	int dfd = open(p, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		die("open the held directory");

	size_t cap = 16384; /* the store's first read */
	if (cap < size + 1)
		cap = size + 1;
	uint8_t *buf = malloc(cap);
	if (!buf)
		die("malloc");

	/* What a thread's first hit would pay for its ring: setups of each
	 * kind, the last one kept. */
	struct io_uring ring[WAYS];
	double setup[WAYS][5];
	for (int w = RING; w <= RING_OWN; w++) {
		for (int i = 0; i < 5; i++) {
			int64_t t = now_ns();
			int rc = ring_setup(&ring[w], way_flags[w]);
			setup[w][i] = (double)(now_ns() - t) / 1000;
			if (rc < 0) {
				printf("io_uring refused (%s): %s\n",
				       way_name[w], strerror(-rc));
				return 0;
			}
			if (i < 4)
				io_uring_queue_exit(&ring[w]);
		}
		qsort(setup[w], 5, sizeof(double), cmp_double);
		memset(buf, 0, cap);
		if (by_ring(&ring[w], dfd, buf, cap) != (ssize_t)size ||
		    memcmp(buf, data, size) != 0)
			die("the ring does not read the file's bytes");
	}
	if (by_syscalls(dfd, buf, cap) != (ssize_t)size)
		die("pread does not read the file's bytes");

	int rounds = quick ? 5 : ROUNDS, per = quick ? 2000 : 20000;
	double *t[WAYS], *saved[WAYS];
	for (int w = 0; w < WAYS; w++) {
		t[w] = malloc(sizeof(double) * (size_t)rounds);
		saved[w] = malloc(sizeof(double) * (size_t)rounds);
		if (!t[w] || !saved[w])
			die("malloc");
	}
	uint64_t rng = 0x9e3779b97f4a7c15u;
	for (int r = 0; r < rounds; r++) {
		int order[WAYS];
		shuffle_order(order, WAYS, &rng);
		for (int k = 0; k < WAYS; k++) {
			int w = order[k];
			int64_t t0 = now_ns();
			for (int i = 0; i < per; i++) {
				if (w == SYS)
					by_syscalls(dfd, buf, cap);
				else if (w == GETPPID)
					syscall(SYS_getppid);
				else
					by_ring(&ring[w], dfd, buf, cap);
			}
			t[w][r] = (double)(now_ns() - t0) / per / 1000;
		}
		for (int w = RING; w <= RING_OWN; w++)
			saved[w][r] = t[SYS][r] - t[w][r];
	}
	for (int w = 0; w < WAYS; w++) {
		qsort(t[w], (size_t)rounds, sizeof(double), cmp_double);
		qsort(saved[w], (size_t)rounds, sizeof(double), cmp_double);
	}
	printf("a file of %zu bytes beneath a held directory; %d rounds of "
	       "%d, in shuffled order\n",
	       size, rounds, per);
	printf("%-36s %7s %7s %9s %9s %9s\n", "", "p50 us", "p90 us",
	       "/ syscalls", "saved us", "setup us");
	for (int w = 0; w < WAYS; w++) {
		printf("%-36s %7.2f %7.2f", way_name[w], pct(t[w], rounds, 0.5),
		       pct(t[w], rounds, 0.9));
		if (w == RING || w == RING_OWN)
			printf(" %9.2fx %9.2f %9.1f",
			       pct(t[w], rounds, 0.5) /
				   pct(t[SYS], rounds, 0.5),
			       pct(saved[w], rounds, 0.5), setup[w][2]);
		printf("\n");
	}
	printf("(saved: the three syscalls' time less the ring's, paired by "
	       "round, p50; > 0 means the ring is quicker. setup: "
	       "io_uring_queue_init + a one-slot sparse file table, median of "
	       "5)\n");
	for (int w = RING; w <= RING_OWN; w++)
		io_uring_queue_exit(&ring[w]);
	close(dfd);
	free(buf);
	free(data);
	for (int w = 0; w < WAYS; w++) {
		free(t[w]);
		free(saved[w]);
	}
	return 0;
}
