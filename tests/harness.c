/* harness.c — runs each registered test in a forked child with a timeout. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "harness.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

struct test {
	const char *name;
	test_fn fn;
};

static struct test tests[512];
static int ntests;
static char scratch[4096];

/* Why the running test skipped: written by the test's child into a page
 * shared with the parent (mapped before the fork), so the parent can print
 * the reason beside the name. Empty when the test did not skip. */
#define SKIP_REASON_MAX 4096
static char *skip_reason;
/* Set by test_skip_all(): every test of the program is skipped. */
static char skip_all_reason[SKIP_REASON_MAX];

void test_register(const char *name, test_fn fn)
{
	if (ntests == (int)(sizeof tests / sizeof tests[0])) {
		fprintf(stderr, "harness: too many tests\n");
		abort();
	}
	tests[ntests].name = name;
	tests[ntests].fn = fn;
	ntests++;
}

const char *test_dir(void)
{
	return scratch;
}

const char *test_path(const char *fmt, ...)
{
	static char bufs[8][4096];
	static int slot;
	char *b = bufs[slot++ % 8];
	int n = snprintf(b, sizeof bufs[0], "%s/", scratch);
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(b + n, sizeof bufs[0] - (size_t)n, fmt, ap);
	va_end(ap);
	return b;
}

void test_fail(const char *file, int line, const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "    %s:%d: ", file, line);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	fflush(stderr);
	_exit(1);
}

void test_skip(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	if (skip_reason)
		vsnprintf(skip_reason, SKIP_REASON_MAX, fmt, ap);
	va_end(ap);
	fflush(NULL);
	_exit(TEST_SKIP_STATUS);
}

void test_skip_all(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(skip_all_reason, sizeof skip_all_reason, fmt, ap);
	va_end(ap);
	if (!skip_all_reason[0])
		snprintf(skip_all_reason, sizeof skip_all_reason, "skipped");
}

void test_fill_pattern(void *buf, size_t len, uint64_t seed)
{
	uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
	unsigned char *p = buf;
	for (size_t i = 0; i < len; i++) {
		if ((i & 7) == 0) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
		}
		p[i] = (unsigned char)(x >> ((i & 7) * 8));
	}
}

int test_check_pattern(const void *buf, size_t len, uint64_t seed)
{
	uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
	const unsigned char *p = buf;
	for (size_t i = 0; i < len; i++) {
		if ((i & 7) == 0) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
		}
		if (p[i] != (unsigned char)(x >> ((i & 7) * 8)))
			return 0;
	}
	return 1;
}

int test_count_lines(const char *path)
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

void test_asan_runtime(char *out, size_t len)
{
	out[0] = '\0';
	FILE *m = fopen("/proc/self/maps", "r");
	if (!m)
		return;
	char line[4096];
	while (fgets(line, sizeof line, m)) {
		char *p = strstr(line, "/libasan.so");
		if (!p)
			continue;
		while (p > line && p[-1] != ' ')
			p--;
		line[strcspn(line, "\n")] = '\0';
		snprintf(out, len, "%s", p);
		break;
	}
	fclose(m);
}

int test_sh(const char *fmt, ...)
{
	char cmd[8192];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(cmd, sizeof cmd, fmt, ap);
	va_end(ap);
	int st = system(cmd);
	if (st == -1 || !WIFEXITED(st))
		return -1;
	return WEXITSTATUS(st);
}

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

enum outcome { PASSED, FAILED, SKIPPED };

static enum outcome run_one(const struct test *t, int timeout_s)
{
	const char *base = getenv("TMPDIR");
	snprintf(scratch, sizeof scratch, "%s/larder-test-XXXXXX",
		 base && *base ? base : "/tmp");
	if (!mkdtemp(scratch)) {
		fprintf(stderr, "harness: mkdtemp: %s\n", strerror(errno));
		return FAILED;
	}
	skip_reason[0] = '\0';
	double t0 = now_ms();
	fflush(stdout);
	fflush(stderr);
	pid_t pid = fork();
	if (pid < 0) {
		fprintf(stderr, "harness: fork: %s\n", strerror(errno));
		return FAILED;
	}
	if (pid == 0) {
		setpgid(0, 0); /* so a timeout kills the test's children too */
		t->fn();
		fflush(NULL);
		_exit(0);
	}
	int st = 0, timed_out = 0;
	for (;;) {
		pid_t r = waitpid(pid, &st, WNOHANG);
		if (r == pid)
			break;
		if (now_ms() - t0 > timeout_s * 1000.0) {
			kill(-pid, SIGKILL);
			kill(pid, SIGKILL);
			waitpid(pid, &st, 0);
			timed_out = 1;
			break;
		}
		struct timespec ts = {0, 2 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	kill(-pid, SIGKILL); /* stray grandchildren */
	double ms = now_ms() - t0;
	int exited = !timed_out && WIFEXITED(st);
	/* A skip is the status and a reason together: a test that exits 77
	 * by itself without saying why has failed. */
	enum outcome out = FAILED;
	if (exited && WEXITSTATUS(st) == 0)
		out = PASSED;
	else if (exited && WEXITSTATUS(st) == TEST_SKIP_STATUS &&
		 skip_reason[0])
		out = SKIPPED;
	if (out == PASSED)
		printf("ok   %s (%.0f ms)\n", t->name, ms);
	else if (out == SKIPPED)
		printf("skip - %s: %.*s\n", t->name, SKIP_REASON_MAX - 1,
		       skip_reason);
	if (out != FAILED) {
		char cmd[4200];
		snprintf(cmd, sizeof cmd, "rm -rf '%s'", scratch);
		if (system(cmd) != 0)
			fprintf(stderr, "harness: could not remove %s\n",
				scratch);
	} else {
		if (timed_out)
			printf("FAIL %s: timed out after %d s (dir %s)\n",
			       t->name, timeout_s, scratch);
		else if (WIFSIGNALED(st))
			printf("FAIL %s: killed by signal %d (dir %s)\n",
			       t->name, WTERMSIG(st), scratch);
		else if (WEXITSTATUS(st) == TEST_SKIP_STATUS)
			printf("FAIL %s: exited %d without test_skip() "
			       "(dir %s)\n",
			       t->name, TEST_SKIP_STATUS, scratch);
		else
			printf("FAIL %s (dir %s)\n", t->name, scratch);
	}
	fflush(stdout);
	return out;
}

int main(int argc, char **argv)
{
	const char *filter = argc > 1 ? argv[1] : NULL;
	const char *to = getenv("LARDER_TEST_TIMEOUT");
	int timeout_s = to ? atoi(to) : 120;
	if (timeout_s <= 0)
		timeout_s = 120;
	signal(SIGPIPE, SIG_IGN);
	int matched = 0;
	for (int i = 0; i < ntests; i++)
		matched += !filter || strstr(tests[i].name, filter) != NULL;
	if (matched == 0) {
		/* A mistyped filter must not look like a clean run. */
		fprintf(stderr, "%s: no test matches \"%s\"\n", argv[0],
			filter ? filter : "");
		return 2;
	}
	skip_reason = mmap(NULL, SKIP_REASON_MAX, PROT_READ | PROT_WRITE,
			   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (skip_reason == MAP_FAILED) {
		fprintf(stderr, "harness: mmap: %s\n", strerror(errno));
		return 1;
	}
	int passed = 0, failed = 0, skipped = 0;
	for (int i = 0; i < ntests; i++) {
		if (filter && !strstr(tests[i].name, filter))
			continue;
		if (skip_all_reason[0]) {
			printf("skip - %s: %s\n", tests[i].name,
			       skip_all_reason);
			skipped++;
			continue;
		}
		switch (run_one(&tests[i], timeout_s)) {
		case PASSED:
			passed++;
			break;
		case FAILED:
			failed++;
			break;
		case SKIPPED:
			skipped++;
			break;
		}
	}
	printf("%d passed, %d failed, %d skipped\n", passed, failed, skipped);
	if (failed)
		return 1;
	return passed == 0 ? TEST_SKIP_STATUS : 0;
}
