/* fill_spawn.c — see fill_spawn.h. */
#include "fill_spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "larder.h"

double spawn_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

const char *spawn_faketime_lib(const char **why)
{
	static char path[4096];
	glob_t g;
	const char *pats[] = {"/usr/lib/*/faketime/libfaketimeMT.so.1",
			      "/usr/lib/faketime/libfaketimeMT.so.1",
			      "/usr/local/lib/faketime/libfaketimeMT.so.1"};
	for (size_t i = 0; i < sizeof pats / sizeof pats[0]; i++) {
		if (glob(pats[i], 0, NULL, &g) == 0 && g.gl_pathc > 0) {
			snprintf(path, sizeof path, "%s", g.gl_pathv[0]);
			globfree(&g);
			return path;
		}
		globfree(&g);
	}
	*why = "libfaketimeMT.so.1 not found (Debian package faketime)";
	return NULL;
}

static void parse_line(struct worker *w, const char *line)
{
	double now = spawn_now_ms();
	if (strncmp(line, "ready ", 6) == 0) {
		w->ready = 1;
		w->t_ready = now;
		char host[64] = "";
		sscanf(line, "ready %ld %63s %lld %lld", &w->wpid, host,
		       &w->realtime, &w->monotonic);
	} else if (strcmp(line, "waiting") == 0) {
		w->waiting = 1;
		w->t_waiting = now;
	} else if (strncmp(line, "wait-end ", 9) == 0) {
		w->wait_end = atoi(line + 9);
	} else if (strcmp(line, "loading") == 0) {
		w->loading = 1;
		w->t_loading = now;
	} else if (strncmp(line, "result ", 7) == 0) {
		struct wres *r = &w->res;
		memset(r, 0, sizeof *r);
		r->rc = -999;
		sscanf(line,
		       "result rc=%d outcome=%d size=%llu fills=%llu "
		       "waits=%llu breaks=%llu lost=%llu changed=%llu "
		       "uncached=%llu",
		       &r->rc, &r->outcome, &r->size, &r->fills, &r->waits,
		       &r->breaks, &r->lost, &r->changed, &r->uncached);
		w->done = 1;
		w->t_done = now;
	} else if (strncmp(line, "error ", 6) == 0) {
		snprintf(w->last_error, sizeof w->last_error, "%s", line + 6);
	}
}

/* Take in whatever worker i has written. */
static void drain(struct worker *w)
{
	for (;;) {
		if (w->len == sizeof w->buf - 1)
			w->len = 0; /* a runaway line: drop it */
		ssize_t n =
		    read(w->fd, w->buf + w->len, sizeof w->buf - 1 - w->len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		if (n <= 0) {
			w->eof = 1;
			return;
		}
		w->len += (size_t)n;
		w->buf[w->len] = '\0';
		char *nl;
		while ((nl = memchr(w->buf, '\n', w->len)) != NULL) {
			*nl = '\0';
			parse_line(w, w->buf);
			size_t used = (size_t)(nl + 1 - w->buf);
			memmove(w->buf, nl + 1, w->len - used);
			w->len -= used;
		}
	}
}

static int said(const struct worker *w, const char *what)
{
	if (strcmp(what, "ready") == 0)
		return w->ready;
	if (strcmp(what, "waiting") == 0)
		return w->waiting;
	if (strcmp(what, "loading") == 0)
		return w->loading;
	if (strcmp(what, "result") == 0)
		return w->done;
	if (strcmp(what, "eof") == 0)
		return w->eof;
	return 0; /* "never": just take in lines until the timeout */
}

/* Wait at most timeout_ms for any worker to write, and take it in. */
static void poll_once(struct worker *ws, int n, double timeout_ms)
{
	struct pollfd pfd[64];
	if (n > 64)
		test_fail(__FILE__, __LINE__, "too many workers (%d)", n);
	int m = 0;
	for (int k = 0; k < n; k++)
		if (!ws[k].eof) {
			pfd[m].fd = ws[k].fd;
			pfd[m].events = POLLIN;
			pfd[m].revents = 0;
			m++;
		}
	int r = poll(pfd, (nfds_t)m, (int)timeout_ms + 1);
	if (r < 0 && errno != EINTR)
		test_fail(__FILE__, __LINE__, "poll: %s", strerror(errno));
	for (int k = 0; k < n; k++)
		if (!ws[k].eof)
			drain(&ws[k]);
}

int worker_wait(struct worker *ws, int n, int i, const char *what,
		double timeout_ms)
{
	double until = spawn_now_ms() + timeout_ms;
	for (;;) {
		if (said(&ws[i], what))
			return 1;
		if (ws[i].eof)
			return 0;
		double left = until - spawn_now_ms();
		if (left <= 0)
			return 0;
		poll_once(ws, n, left);
	}
}

int worker_wait_each(struct worker *ws, int n, const char *a, const char *b,
		     double timeout_ms)
{
	double until = spawn_now_ms() + timeout_ms;
	for (;;) {
		int k = 0;
		while (k < n && (said(&ws[k], a) || said(&ws[k], b)))
			k++;
		if (k == n)
			return 1;
		double left = until - spawn_now_ms();
		if (ws[k].eof || left <= 0)
			return 0;
		poll_once(ws, n, left);
	}
}

void worker_start(struct worker *w, const struct wenv *env, const char *store,
		  const char *key, const char *ver, const char *const *opts)
{
	memset(w, 0, sizeof *w);
	const char *argv[64];
	int a = 0;
	char preload[8300], asan[4096];
	char ftenv[64], monoenv[64], ldenv[8400], asanenv[4200];
	if (env && env->host) {
		argv[a++] = "unshare";
		argv[a++] = "--pid";
		argv[a++] = "--uts";
		argv[a++] = "--fork";
	}
	if (env && env->faketime) {
		/* Through env(1), so that only the worker (not unshare) runs
		 * under the fake clock. */
		const char *why = NULL, *lib = spawn_faketime_lib(&why);
		if (!lib)
			test_fail(__FILE__, __LINE__, "%s", why);
		test_asan_runtime(asan, sizeof asan);
		snprintf(preload, sizeof preload, "%s%s%s", asan,
			 asan[0] ? ":" : "", lib);
		snprintf(ldenv, sizeof ldenv, "LD_PRELOAD=%s", preload);
		snprintf(ftenv, sizeof ftenv, "FAKETIME=%s", env->faketime);
		snprintf(monoenv, sizeof monoenv,
			 "FAKETIME_DONT_FAKE_MONOTONIC=%d",
			 env->fake_mono ? 0 : 1);
		const char *ao = getenv("ASAN_OPTIONS");
		snprintf(asanenv, sizeof asanenv,
			 "ASAN_OPTIONS=%s%sverify_asan_link_order=0",
			 ao ? ao : "", ao && *ao ? ":" : "");
		argv[a++] = "env";
		argv[a++] = ldenv;
		argv[a++] = ftenv;
		argv[a++] = monoenv;
		argv[a++] = asanenv;
	}
	argv[a++] = LARDER_FILL_WORKER;
	argv[a++] = store;
	argv[a++] = key;
	argv[a++] = ver;
	if (env && env->host) {
		argv[a++] = "--hostname";
		argv[a++] = env->host;
	}
	for (int i = 0; opts && opts[i]; i++) {
		if (a >= 62)
			test_fail(__FILE__, __LINE__, "too many options");
		argv[a++] = opts[i];
	}
	argv[a] = NULL;

	int p[2];
	if (pipe(p) != 0)
		test_fail(__FILE__, __LINE__, "pipe: %s", strerror(errno));
	fflush(NULL);
	w->t_start = spawn_now_ms();
	w->pid = fork();
	if (w->pid < 0)
		test_fail(__FILE__, __LINE__, "fork: %s", strerror(errno));
	if (w->pid == 0) {
		dup2(p[1], 1);
		close(p[0]);
		close(p[1]);
		execvp(argv[0], (char *const *)argv);
		fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	close(p[1]);
	w->fd = p[0];
	fcntl(w->fd, F_SETFL, fcntl(w->fd, F_GETFL) | O_NONBLOCK);
	fcntl(w->fd, F_SETFD, FD_CLOEXEC);
	if (!worker_wait(w, 1, 0, "ready", 20000))
		test_fail(__FILE__, __LINE__, "worker (%s %s) never got ready",
			  env && env->host ? env->host : "here",
			  env && env->faketime ? env->faketime : "");
	if (w->wpid <= 0)
		test_fail(__FILE__, __LINE__, "worker did not say its pid");
}

int worker_one_loader(const struct worker *ws, int n)
{
	int loader = -1;
	for (int i = 0; i < n; i++) {
		if (!ws[i].loading)
			continue;
		if (loader >= 0)
			return -1;
		loader = i;
	}
	return loader;
}

void spawn_touch(const char *path)
{
	FILE *f = fopen(path, "w");
	if (!f || fclose(f) != 0)
		test_fail(__FILE__, __LINE__, "create %s: %s", path,
			  strerror(errno));
}

double worker_kill(struct worker *w)
{
	double t = spawn_now_ms();
	if (kill((pid_t)w->wpid, SIGKILL) != 0 && errno != ESRCH)
		test_fail(__FILE__, __LINE__, "kill %ld: %s", w->wpid,
			  strerror(errno));
	return t;
}

void worker_reap(struct worker *ws, int n, int i, double timeout_ms)
{
	struct worker *w = &ws[i];
	if (w->reaped)
		return;
	double until = spawn_now_ms() + timeout_ms;
	while (!w->eof) {
		double left = until - spawn_now_ms();
		if (left <= 0) {
			kill((pid_t)w->wpid, SIGKILL);
			test_fail(__FILE__, __LINE__,
				  "worker %ld did not finish in %.0f ms",
				  w->wpid, timeout_ms);
		}
		worker_wait(ws, n, i, "eof", left);
	}
	close(w->fd);
	w->fd = -1;
	/* Its output ended: it is gone or going (an unshare parent follows
	 * its child at once). */
	if (waitpid(w->pid, &w->status, 0) != w->pid)
		test_fail(__FILE__, __LINE__, "waitpid: %s", strerror(errno));
	w->reaped = 1;
}

void spawn_write_source(const char *path, size_t len, unsigned long long seed)
{
	char *b = malloc(len ? len : 1);
	if (!b)
		test_fail(__FILE__, __LINE__, "out of memory");
	test_fill_pattern(b, len, seed);
	FILE *f = fopen(path, "w");
	if (!f || fwrite(b, 1, len, f) != len || fclose(f) != 0)
		test_fail(__FILE__, __LINE__, "write %s: %s", path,
			  strerror(errno));
	free(b);
}

int spawn_check_file(const char *path, size_t len, unsigned long long seed)
{
	struct stat st;
	if (stat(path, &st) != 0 || (size_t)st.st_size != len)
		return 0;
	char *b = malloc(len ? len : 1);
	FILE *f = fopen(path, "r");
	int ok = b && f && fread(b, 1, len, f) == len &&
		 test_check_pattern(b, len, seed);
	if (f)
		fclose(f);
	free(b);
	return ok;
}

const char *spawn_make_store(void)
{
	static char dir[4096];
	snprintf(dir, sizeof dir, "%s", test_path("store"));
	larder *db = NULL;
	larder_opts o = LARDER_OPTS_INIT;
	o.flags = LARDER_OPEN_CREATE;
	if (larder_open(&db, dir, &o) != 0)
		test_fail(__FILE__, __LINE__, "open: %s", larder_errmsg(NULL));
	larder_close(db);
	return dir;
}

double spawn_lease_mtime_ms(const char *store, const char *host)
{
	char pat[4200], want[300];
	snprintf(pat, sizeof pat, "%s/ns/*/h/*/*/*.lease", store);
	snprintf(want, sizeof want, "\nhost %s", host);
	glob_t g;
	int rc = glob(pat, 0, NULL, &g);
	if (rc == GLOB_NOMATCH)
		return -1;
	if (rc != 0)
		test_fail(__FILE__, __LINE__, "glob %s: %d", pat, rc);
	double ms = -1;
	for (size_t i = 0; i < g.gl_pathc && ms < 0; i++) {
		/* A waiter may break it meanwhile: gone is not an error. */
		int fd = open(g.gl_pathv[i],
			      O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
		if (fd < 0 && errno == ENOENT)
			continue;
		if (fd < 0)
			test_fail(__FILE__, __LINE__, "open %s: %s",
				  g.gl_pathv[i], strerror(errno));
		char buf[1024];
		struct stat st;
		ssize_t n = read(fd, buf, sizeof buf - 1);
		if (n < 0 || fstat(fd, &st) != 0)
			test_fail(__FILE__, __LINE__, "read %s: %s",
				  g.gl_pathv[i], strerror(errno));
		close(fd);
		buf[n] = '\0';
		/* The name is padded with spaces to a fixed width. */
		const char *at = strstr(buf, want);
		if (!at ||
		    (at[strlen(want)] != ' ' && at[strlen(want)] != '\n'))
			continue;
		/* The file's clock is CLOCK_REALTIME: moved onto ours by
		 * the offset between the two now. */
		struct timespec rt;
		clock_gettime(CLOCK_REALTIME, &rt);
		double now = spawn_now_ms();
		ms = now - ((double)(rt.tv_sec - st.st_mtim.tv_sec) * 1e3 +
			    (double)(rt.tv_nsec - st.st_mtim.tv_nsec) / 1e6);
	}
	globfree(&g);
	return ms;
}

void herd_init(struct herd *h, int n, size_t size, unsigned long long seed)
{
	ASSERT(n > 0 && n <= HERD_MAX);
	memset(h, 0, sizeof *h);
	h->key = "herd";
	h->n = n;
	h->size = size;
	h->seed = seed;
	snprintf(h->src, sizeof h->src, "%s", test_path("src"));
	snprintf(h->side, sizeof h->side, "%s", test_path("loads"));
	snprintf(h->go, sizeof h->go, "%s", test_path("go"));
	snprintf(h->hold, sizeof h->hold, "%s", test_path("hold"));
	for (int i = 0; i < n; i++)
		snprintf(h->out[i], sizeof h->out[i], "%s",
			 test_path("out%d", i));
	spawn_write_source(h->src, size, seed);
}

void herd_start(struct herd *h, int i, const struct wenv *env,
		const char *store, const char *const *more)
{
	const char *opts[32] = {"--src",   h->src, "--side", h->side,  "--out",
				h->out[i], "--go", h->go,    "--hold", h->hold};
	size_t at = 10;
	while (*more && at < sizeof opts / sizeof *opts - 1)
		opts[at++] = *more++;
	ASSERT(*more == NULL);
	worker_start(&h->ws[i], env, store, h->key, "v1", opts);
}

int herd_run(struct herd *h, double timeout_ms)
{
	spawn_touch(h->go);
	/* One loads, and it holds the lease while the others wait: each of
	 * them must say so (on_wait) before the load may finish. */
	if (!worker_wait_each(h->ws, h->n, "loading", "waiting", timeout_ms))
		test_fail(__FILE__, __LINE__,
			  "not every worker loads or waits after %.0f ms",
			  timeout_ms);
	int loader = worker_one_loader(h->ws, h->n);
	ASSERT(loader >= 0);
	spawn_touch(h->hold);
	for (int i = 0; i < h->n; i++) {
		worker_reap(h->ws, h->n, i, timeout_ms);
		const struct wres *r = &h->ws[i].res;
		if (!h->ws[i].done || r->rc != 0)
			test_fail(__FILE__, __LINE__,
				  "worker %d: done %d rc %d: %s", i,
				  h->ws[i].done, r->rc, h->ws[i].last_error);
		ASSERT_EQ(r->outcome,
			  i == loader ? LARDER_FILLED : LARDER_WAITED);
		ASSERT_EQ(r->size, h->size);
		if (!spawn_check_file(h->out[i], h->size, h->seed))
			test_fail(__FILE__, __LINE__,
				  "worker %d read wrong bytes", i);
	}
	ASSERT_EQ(test_count_lines(h->side), 1);
	return loader;
}
