/*
 * fill_worker.c — one larder_get_or_fill in a process of its own, for the
 * fill tests that need participants the test cannot fork: a process in
 * another PID+UTS namespace ("another host") or under libfaketime ("another
 * clock"). The test starts it (through unshare, env, ...), reads its
 * progress on stdout, may SIGKILL it, and checks the bytes it got.
 *
 *   fill_worker STORE KEY VERSION --src FILE [options]
 *
 *   --src FILE      the source: the loader streams this file's bytes
 *   --chunk N       bytes per chunk (default 16384)
 *   --delay-ms MS   a slow source: sleep this long before each chunk
 *   --side FILE     the loader first appends one line to FILE (counts
 *                   loads across processes)
 *   --out FILE      write the payload get_or_fill returned to FILE
 *   --go FILE       after "ready", wait (bounded) until FILE exists
 *   --hold FILE     the loader, after "loading", waits (bounded) until FILE
 *                   exists (the test lets it go once it saw the others
 *                   wait)
 *   --hostname NAME set the hostname first (in a UTS namespace of our own)
 *   --lease S, --heartbeat S, --max-wait S   larder_fill_opts
 *   --redis URI     fill through the Redis backend at URI, hung on the
 *                   handle: the store directory is this "host"'s own, and
 *                   Redis is all the workers share
 *
 * stdout, one line each, flushed at once:
 *   ready <pid as /proc sees it> <hostname> <CLOCK_REALTIME s>
 *         <CLOCK_MONOTONIC s>
 *   waiting   (another holds the lease: on_wait's start)
 *   wait-end E  (the wait is over: E is its larder_wait_end, e.g. 2 taken
 *             over, 3 max_wait passed)
 *   loading   (the loader started: we hold the lease)
 *   result rc=.. outcome=.. size=.. fills=.. waits=.. breaks=.. lost=..
 *          changed=.. uncached=..
 * Exit status 0 when get_or_fill returned 0.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "larder.h"
#include "testing.h"

struct src {
	int fd;
	size_t chunk;
	long delay_ms;
	const char *side;
	const char *hold;
};

static void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* Wait until path exists, bounded (30 s) so that a lost test cannot
 * leave us behind forever; 0 if it appeared. */
static int wait_for(const char *path)
{
	for (int i = 0; access(path, F_OK) != 0; i++) {
		if (i > 30000)
			return -1;
		sleep_ms(1);
	}
	return 0;
}

static int load(larder_fill *fill, void *payload)
{
	struct src *s = payload;
	if (s->side) {
		char line[128], host[64] = "";
		gethostname(host, sizeof host - 1);
		int n = snprintf(line, sizeof line, "load %s %ld\n", host,
				 (long)getpid());
		int fd = open(s->side, O_WRONLY | O_APPEND | O_CREAT, 0644);
		if (fd < 0 || write(fd, line, (size_t)n) != n)
			return LARDER_EIO;
		close(fd);
	}
	printf("loading\n");
	fflush(stdout);
	if (s->hold && wait_for(s->hold) != 0)
		return LARDER_EIO;
	char *buf = malloc(s->chunk);
	if (!buf)
		return LARDER_ENOMEM;
	off_t off = 0;
	int rc = 0;
	for (;;) {
		if (s->delay_ms > 0)
			sleep_ms(s->delay_ms);
		ssize_t n = pread(s->fd, buf, s->chunk, off);
		if (n < 0) {
			rc = LARDER_EIO;
			break;
		}
		if (n == 0)
			break;
		off += n;
		if ((rc = larder_fill_write(fill, buf, (size_t)n)) != 0)
			break;
	}
	free(buf);
	return rc;
}

/* The wait's start, for tests that hold a load until the others are seen
 * waiting (the event itself, not a guessed delay). */
static void on_wait(const larder_wait_info *info, void *payload)
{
	(void)payload;
	if (info->event == LARDER_WAIT_START) {
		printf("waiting\n");
		fflush(stdout);
	} else if (info->event == LARDER_WAIT_END) {
		printf("wait-end %d\n", info->end);
		fflush(stdout);
	}
}

static int write_all(const char *path, const void *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0)
		return -1;
	const char *p = data;
	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			close(fd);
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return close(fd);
}

static __attribute__((noreturn)) void usage(const char *why)
{
	fprintf(stderr, "fill_worker: %s\n", why);
	exit(2);
}

int main(int argc, char **argv)
{
	if (argc < 4)
		usage("usage: fill_worker STORE KEY VERSION --src FILE ...");
	const char *store = argv[1], *key = argv[2], *ver = argv[3];
	const char *srcpath = NULL, *out = NULL, *go = NULL, *hostname = NULL;
	const char *redis = NULL;
	struct src s = {-1, 16384, 0, NULL, NULL};
	larder_fill_opts fo = LARDER_FILL_OPTS_INIT;
	fo.on_wait = on_wait;
	for (int i = 4; i < argc; i++) {
		const char *a = argv[i];
		if (i + 1 >= argc)
			usage("option without a value");
		const char *v = argv[++i];
		if (strcmp(a, "--src") == 0)
			srcpath = v;
		else if (strcmp(a, "--chunk") == 0)
			s.chunk = (size_t)strtoul(v, NULL, 10);
		else if (strcmp(a, "--delay-ms") == 0)
			s.delay_ms = strtol(v, NULL, 10);
		else if (strcmp(a, "--side") == 0)
			s.side = v;
		else if (strcmp(a, "--out") == 0)
			out = v;
		else if (strcmp(a, "--go") == 0)
			go = v;
		else if (strcmp(a, "--hold") == 0)
			s.hold = v;
		else if (strcmp(a, "--hostname") == 0)
			hostname = v;
		else if (strcmp(a, "--lease") == 0)
			fo.lease_seconds = strtod(v, NULL);
		else if (strcmp(a, "--heartbeat") == 0)
			fo.heartbeat_seconds = strtod(v, NULL);
		else if (strcmp(a, "--max-wait") == 0)
			fo.max_wait_seconds = strtod(v, NULL);
		else if (strcmp(a, "--redis") == 0)
			redis = v;
		else
			usage("unknown option");
	}
	if (!srcpath || s.chunk == 0)
		usage("--src is required and --chunk must be positive");
	if ((s.fd = open(srcpath, O_RDONLY)) < 0)
		usage("cannot open --src");
	if (hostname && sethostname(hostname, strlen(hostname)) != 0)
		usage("cannot set the hostname (not in a UTS namespace?)");

	/* Our pid as the test sees it: /proc is the test's (not remounted
	 * for our PID namespace), so /proc/self names our pid there. */
	char self[64] = "", host[64] = "";
	ssize_t n = readlink("/proc/self", self, sizeof self - 1);
	self[n > 0 ? n : 0] = '\0';
	gethostname(host, sizeof host - 1);
	struct timespec rt, mt;
	clock_gettime(CLOCK_REALTIME, &rt);
	clock_gettime(CLOCK_MONOTONIC, &mt);
	printf("ready %s %s %lld %lld\n", self[0] ? self : "0", host,
	       (long long)rt.tv_sec, (long long)mt.tv_sec);
	fflush(stdout);
	/* A start line for a herd. */
	if (go && wait_for(go) != 0)
		usage("--go file never appeared");

	larder *db;
	larder_opts o = LARDER_OPTS_INIT;
	o.fsync = LARDER_FSYNC_NONE;
	int rc = larder_open(&db, store, &o);
	if (rc) {
		printf("result rc=%d open: %s\n", rc, larder_errmsg(NULL));
		return 1;
	}
	if (redis) {
		struct ldr_backend *be;
		if ((rc = ldr_test_be_open(&be, db, redis)) != 0) {
			printf("result rc=%d redis: %s\n", rc,
			       larder_errmsg(db));
			return 1;
		}
		ldr_test_be_hang(db, be);
	}
	larder_entry *e = NULL;
	int outcome = 0;
	rc = larder_get_or_fill(&e, &outcome, db, "default", key, strlen(key),
				ver, strlen(ver), NULL, load, &s, &fo);
	size_t size = 0;
	if (rc == 0) {
		size = larder_entry_size(e);
		if (out && write_all(out, larder_entry_data(e), size) != 0)
			rc = LARDER_EIO;
	}
	printf(
	    "result rc=%d outcome=%d size=%zu fills=%llu waits=%llu "
	    "breaks=%llu lost=%llu changed=%llu uncached=%llu\n",
	    rc, outcome, size,
	    (unsigned long long)larder_counter(db, LARDER_CTR_FILLS),
	    (unsigned long long)larder_counter(db, LARDER_CTR_WAITS),
	    (unsigned long long)larder_counter(db, LARDER_CTR_LEASE_BREAKS),
	    (unsigned long long)larder_counter(db, LARDER_CTR_LEASE_LOST),
	    (unsigned long long)larder_counter(db, LARDER_CTR_SOURCE_CHANGED),
	    (unsigned long long)larder_counter(db, LARDER_CTR_UNCACHED));
	if (rc)
		printf("error %s\n", larder_errmsg(db));
	fflush(stdout);
	larder_entry_release(e);
	larder_close(db);
	close(s.fd);
	return rc ? 1 : 0;
}
