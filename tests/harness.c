/* harness.c — runs each registered test in a forked child with a timeout. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "harness.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
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

static int run_one(const struct test *t, int timeout_s)
{
	const char *base = getenv("TMPDIR");
	snprintf(scratch, sizeof scratch, "%s/larder-test-XXXXXX",
		 base && *base ? base : "/tmp");
	if (!mkdtemp(scratch)) {
		fprintf(stderr, "harness: mkdtemp: %s\n", strerror(errno));
		return 0;
	}
	double t0 = now_ms();
	fflush(stdout);
	fflush(stderr);
	pid_t pid = fork();
	if (pid < 0) {
		fprintf(stderr, "harness: fork: %s\n", strerror(errno));
		return 0;
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
	int ok = !timed_out && WIFEXITED(st) && WEXITSTATUS(st) == 0;
	if (ok) {
		printf("ok   %s (%.0f ms)\n", t->name, ms);
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
		else
			printf("FAIL %s (dir %s)\n", t->name, scratch);
	}
	fflush(stdout);
	return ok;
}

int main(int argc, char **argv)
{
	const char *filter = argc > 1 ? argv[1] : NULL;
	const char *to = getenv("LARDER_TEST_TIMEOUT");
	int timeout_s = to ? atoi(to) : 120;
	if (timeout_s <= 0)
		timeout_s = 120;
	signal(SIGPIPE, SIG_IGN);
	int passed = 0, failed = 0;
	for (int i = 0; i < ntests; i++) {
		if (filter && !strstr(tests[i].name, filter))
			continue;
		if (run_one(&tests[i], timeout_s))
			passed++;
		else
			failed++;
	}
	printf("%d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}
