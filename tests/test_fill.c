/*
 * test_fill.c — larder_get_or_fill across processes: a herd loads once,
 * a killed filler is taken over, a paused one loses its lease exactly
 * once, the source changing during a load, the caller's data surviving a
 * cache that cannot write, stale-while-revalidate.
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

#include "harness.h"
#include "larder.h"

static larder *open_store(void)
{
	larder *db = NULL;
	larder_opts o = LARDER_OPTS_INIT;
	o.flags = LARDER_OPEN_CREATE;
	o.fsync = LARDER_FSYNC_NONE;
	int rc = larder_open(&db, test_path("store"), &o);
	if (rc)
		test_fail(__FILE__, __LINE__, "open: %s", larder_open_errmsg());
	return db;
}

/* Appends one line per load to a side file, so loads can be counted
 * across processes; writes `size` pattern bytes for `seed`. */
struct job {
	const char *side; /* NULL: do not count */
	size_t size;
	uint64_t seed;
	int hold_fd; /* -1, or a pipe to block on before loading */
	double slow; /* seconds to sleep mid-load (a long load) */
};

static int count_lines(const char *path)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return 0;
	int n = 0, c;
	while ((c = fgetc(f)) != EOF)
		n += c == '\n';
	fclose(f);
	return n;
}

static int loader(larder_fill *fill, void *payload)
{
	struct job *j = payload;
	if (j->side) {
		int fd = open(j->side, O_WRONLY | O_APPEND | O_CREAT, 0644);
		if (fd < 0 || write(fd, "load\n", 5) != 5)
			return LARDER_EIO;
		close(fd);
	}
	if (j->hold_fd >= 0) {
		char c;
		if (read(j->hold_fd, &c, 1) < 0)
			return LARDER_EIO;
	}
	uint8_t *buf = malloc(j->size ? j->size : 1);
	test_fill_pattern(buf, j->size, j->seed);
	size_t half = j->size / 2;
	int rc = larder_fill_write(fill, buf, half);
	if (rc == 0 && j->slow > 0) {
		struct timespec ts = {(time_t)j->slow,
				      (long)((j->slow - (time_t)j->slow) * 1e9)};
		nanosleep(&ts, NULL);
	}
	if (rc == 0)
		rc = larder_fill_write(fill, buf + half, j->size - half);
	free(buf);
	return rc;
}

/* A barrier: children block reading a pipe the parent closes. */
struct gate {
	int fd[2];
};
static void gate_init(struct gate *g)
{
	ASSERT_EQ(pipe(g->fd), 0);
}
static void gate_wait(struct gate *g)
{
	char c;
	close(g->fd[1]);
	ASSERT_EQ(read(g->fd[0], &c, 1), 0);
}
static void gate_open(struct gate *g)
{
	close(g->fd[0]);
	close(g->fd[1]);
}

TEST(herd_of_16_loads_once)
{
	larder *db = open_store();
	larder_close(db);
	const char *side = test_path("loads");
	struct gate g;
	gate_init(&g);
	pid_t kids[16];
	for (int i = 0; i < 16; i++) {
		kids[i] = fork();
		ASSERT(kids[i] >= 0);
		if (kids[i] == 0) {
			gate_wait(&g);
			larder *d = open_store();
			struct job j = {side, 300000, 42, -1, 0.2};
			larder_fill_opts fo = LARDER_FILL_OPTS_INIT;
			fo.lease_seconds = 2;
			larder_entry *e;
			int how;
			int rc = larder_get_or_fill(&e, &how, d, "default",
						    "herd", 4, "v1", 2, NULL,
						    loader, &j, &fo);
			if (rc != 0)
				test_fail(__FILE__, __LINE__, "rc %d: %s", rc,
					  larder_errmsg(d));
			ASSERT_EQ(larder_entry_size(e), 300000);
			ASSERT(test_check_pattern(larder_entry_data(e),
						  300000, 42));
			ASSERT(how == LARDER_FILLED || how == LARDER_WAITED ||
			       how == LARDER_HIT);
			larder_entry_release(e);
			larder_close(d);
			_exit(how == LARDER_FILLED ? 10 : 0);
		}
	}
	gate_open(&g);
	int filled = 0;
	for (int i = 0; i < 16; i++) {
		int st;
		ASSERT_EQ(waitpid(kids[i], &st, 0), kids[i]);
		ASSERT(WIFEXITED(st));
		ASSERT(WEXITSTATUS(st) == 0 || WEXITSTATUS(st) == 10);
		filled += WEXITSTATUS(st) == 10;
	}
	ASSERT_EQ(count_lines(side), 1);
	ASSERT_EQ(filled, 1);
}
