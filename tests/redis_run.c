/*
 * redis_run.c — see redis_run.h.
 */
#include "redis_run.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "store_util.h"

void redis_env_val(const char *text, const char *name, char *out, size_t n)
{
	const char *p = strstr(text, name);
	out[0] = '\0';
	if (!p)
		return;
	p += strlen(name);
	size_t l = strcspn(p, "\n");
	snprintf(out, n, "%.*s", (int)(l < n ? l : n - 1), p);
}

int redis_run_start(struct redis_run *r, const char *sh, const char *args)
{
	memset(r, 0, sizeof *r);
	r->guardian = -1;
	snprintf(r->dir, sizeof r->dir, "/tmp/larder-redis-test.XXXXXX");
	if (!mkdtemp(r->dir)) {
		snprintf(r->env, sizeof r->env, "mkdtemp: %s", strerror(errno));
		fprintf(stderr, "redis_run_start: %s\n", r->env);
		return 1;
	}
	/* The guardian first: whatever happens from here on (a crash in
	 * this program included), the servers are stopped. */
	char b[128], cmd[1200], out[128], err[128];
	snprintf(b, sizeof b, "%s/redis", r->dir);
	setenv("LARDER_REDIS_BASE", b, 1);
	int p[2];
	if (pipe2(p, O_CLOEXEC) != 0) {
		perror("redis_run_start: pipe");
		exit(1);
	}
	r->guardian = fork();
	if (r->guardian < 0) {
		perror("redis_run_start: fork");
		exit(1);
	}
	if (r->guardian == 0) {
		/* Out of the test's process group, which the harness kills
		 * when the test ends. */
		setpgid(0, 0);
		close(p[1]);
		char c;
		while (read(p[0], &c, 1) < 0 && errno == EINTR)
			;
		execlp("sh", "sh", "-c", "sh \"$0\" stop; rm -rf \"$1\"", sh,
		       r->dir, (char *)NULL);
		_exit(127);
	}
	close(p[0]);
	r->fd = p[1];
	snprintf(out, sizeof out, "%s/env.out", r->dir);
	snprintf(err, sizeof err, "%s/err", r->dir);
	snprintf(cmd, sizeof cmd, "sh %s start %s >%s 2>%s", sh, args, out,
		 err);
	int st = system(cmd);
	int rc = WIFEXITED(st) ? WEXITSTATUS(st) : 1;
	size_t len = 0;
	uint8_t *text = read_file(rc == 0 ? out : err, &len);
	snprintf(r->env, sizeof r->env, "%.*s", text ? (int)len : 0,
		 text ? (char *)text : "");
	free(text);
	if (rc != 0) {
		if (rc != 77)
			fprintf(stderr, "redis.sh start %s: exit %d: %s\n",
				args, rc, r->env);
		redis_run_stop(r);
		return rc;
	}
	return 0;
}

void redis_run_stop(struct redis_run *r)
{
	if (r->guardian <= 0)
		return;
	close(r->fd);
	waitpid(r->guardian, NULL, 0);
	r->guardian = -1;
}

pid_t redis_run_pid(const struct redis_run *r, const char *role)
{
	char path[200];
	snprintf(path, sizeof path, "%s/redis/%s/redis.pid", r->dir, role);
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	long pid = -1;
	if (fscanf(f, "%ld", &pid) != 1)
		pid = -1;
	fclose(f);
	return pid > 1 ? (pid_t)pid : -1;
}

void redis_run_where(const struct redis_run *r, struct redis_where *w)
{
	char num[32];
	redis_env_val(r->env, "REDIS_URI=", w->uri, sizeof w->uri);
	redis_env_val(r->env, "REDIS_SENTINEL_URI=", w->sentinel_uri,
		      sizeof w->sentinel_uri);
	redis_env_val(r->env, "REDIS_PASSWORD=", w->password,
		      sizeof w->password);
	redis_env_val(r->env, "REDIS_PORT=", num, sizeof num);
	w->port = atoi(num);
	redis_env_val(r->env, "REDIS_REPLICA_PORT=", num, sizeof num);
	w->replica_port = atoi(num);
}

void redis_run_need(struct redis_run *r, const char *sh, const char *args,
		    struct redis_where *w)
{
	int rc = redis_run_start(r, sh, args);
	if (rc == 77)
		test_skip("redis.sh start%s%s: %s", *args ? " " : "", args,
			  r->env);
	ASSERT_EQ(rc, 0);
	redis_run_where(r, w);
}
