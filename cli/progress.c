/*
 * progress.c — the progress line on stderr for long work: what is being
 * done, bytes (and rows) so far, the rate and the time taken; or, while
 * waiting for another filler, who it is and for how long. Only on a
 * terminal. Redrawn at most 4 times a second, from the work itself and
 * from a ticker thread, so that work that stalls still shows its time
 * moving.
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

#define SHOW_AFTER 1.0	  /* seconds of work before the line appears */
#define REDRAW_EVERY 0.25 /* seconds between redraws */

/* The progress under way, for progress_pause(); its fields and the
 * terminal line are guarded by `mu` (the ticker draws too). */
static struct cli_progress *current;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t stop_cv;
static pthread_t ticker;
static int ticker_running, ticker_stop;

double progress_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Bytes with a binary unit: "512 B", "1.5 MiB". */
static void human(char *buf, size_t size, double v)
{
	static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
	size_t u = 0;

	while (v >= 1024 && u + 1 < sizeof(units) / sizeof(units[0])) {
		v /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(buf, size, "%.0f %s", v, units[u]);
	else
		snprintf(buf, size, "%.1f %s", v, units[u]);
}

/* Blank out what is on the line and go back to its start. */
static void wipe(struct cli_progress *p)
{
	char buf[200];
	size_t n = p->drawn < sizeof(buf) - 2 ? p->drawn : sizeof(buf) - 2;

	if (!p->drawn)
		return;
	buf[0] = '\r';
	memset(buf + 1, ' ', n);
	buf[n + 1] = '\r';
	(void)out_write_all(STDERR_FILENO, buf, n + 2);
	p->drawn = 0;
}

/* The text of the line (without '\r'). */
static int compose(const struct cli_progress *p, double now, char *line,
		   size_t size)
{
	char done[32], rate[32], rows[40] = "";
	double secs = now - p->phase_t0;

	if (p->waiting) {
		double waited = p->waited + (now - p->waited_at);

		return snprintf(
		    line, size,
		    "larder: waiting for another filler (host %s, "
		    "pid %ld%s): %.1f s",
		    p->holder_host[0] ? p->holder_host : "?", p->holder_pid,
		    p->holder_alive ? "" : ", not responding", waited);
	}
	human(done, sizeof(done), (double)p->bytes);
	human(rate, sizeof(rate), secs > 0 ? (double)p->bytes / secs : 0);
	if (p->has_rows)
		snprintf(rows, sizeof(rows), "%llu rows, ",
			 (unsigned long long)p->rows);
	return snprintf(line, size, "larder: %s: %s%s, %s/s, %.1f s", p->what,
			rows, done, rate, now - p->t0);
}

static void draw(struct cli_progress *p, double now)
{
	char line[200];
	int len;
	size_t n, pad;

	line[0] = '\r';
	len = compose(p, now, line + 1, sizeof(line) - 41);
	if (len < 0)
		return;
	n = (size_t)len < sizeof(line) - 42 ? (size_t)len : sizeof(line) - 42;
	/* Cover what is left of a longer previous line. */
	pad = p->drawn > n ? p->drawn - n : 0;
	if (pad > 39)
		pad = 39;
	memset(line + 1 + n, ' ', pad);
	(void)out_write_all(STDERR_FILENO, line, 1 + n + pad);
	p->drawn = n + pad;
	p->last = now;
}

/* Draw if there is something to show and it is time. Called locked. */
static void maybe_draw(struct cli_progress *p, double now)
{
	if (!(p->waiting || p->bytes_on) || now - p->t0 < SHOW_AFTER ||
	    now - p->last < REDRAW_EVERY)
		return;
	draw(p, now);
}

/* Redraw every REDRAW_EVERY even when nothing moves: a stall shows as
 * time going by. */
static void *tick(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&mu);
	while (!ticker_stop) {
		struct timespec until;

		clock_gettime(CLOCK_MONOTONIC, &until);
		until.tv_nsec += (long)(REDRAW_EVERY * 1e9);
		if (until.tv_nsec >= 1000000000) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&stop_cv, &mu, &until);
		if (!ticker_stop && current)
			maybe_draw(current, progress_now());
	}
	pthread_mutex_unlock(&mu);
	return NULL;
}

static void ticker_start(void)
{
	pthread_condattr_t ca;
	sigset_t all, old;

	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&stop_cv, &ca);
	pthread_condattr_destroy(&ca);
	ticker_stop = 0;
	/* Signals stay with the main thread (`larder run` forwards them to
	 * its command). */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	ticker_running = pthread_create(&ticker, NULL, tick, NULL) == 0;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (!ticker_running)
		pthread_cond_destroy(&stop_cv);
}

static void ticker_end(void)
{
	if (!ticker_running)
		return;
	pthread_mutex_lock(&mu);
	ticker_stop = 1;
	pthread_cond_signal(&stop_cv);
	pthread_mutex_unlock(&mu);
	pthread_join(ticker, NULL);
	pthread_cond_destroy(&stop_cv);
	ticker_running = 0;
}

void progress_start(struct cli_progress *p, const char *what,
		    int stdout_payload)
{
	memset(p, 0, sizeof(*p));
	p->what = what;
	p->on = isatty(STDERR_FILENO);
	p->bytes_on = p->on && !(stdout_payload && isatty(STDOUT_FILENO));
	p->t0 = p->phase_t0 = progress_now();
	if (!p->on)
		return;
	pthread_mutex_lock(&mu);
	current = p;
	pthread_mutex_unlock(&mu);
	ticker_start();
}

void progress_phase(struct cli_progress *p, const char *what)
{
	pthread_mutex_lock(&mu);
	p->what = what;
	p->bytes = 0;
	p->rows = 0;
	p->phase_t0 = progress_now();
	pthread_mutex_unlock(&mu);
}

void progress_add(struct cli_progress *p, size_t n)
{
	if (!p->on) {
		p->bytes += n;
		return;
	}
	pthread_mutex_lock(&mu);
	p->bytes += n;
	maybe_draw(p, progress_now());
	pthread_mutex_unlock(&mu);
}

void progress_set(struct cli_progress *p, uint64_t rows, uint64_t bytes)
{
	pthread_mutex_lock(&mu);
	p->has_rows = 1;
	p->rows = rows;
	p->bytes = bytes;
	if (p->on)
		maybe_draw(p, progress_now());
	pthread_mutex_unlock(&mu);
}

void progress_on_wait(const larder_wait_info *info, void *payload)
{
	struct cli_progress *p = payload;
	double now = progress_now();

	if (!p->on)
		return;
	pthread_mutex_lock(&mu);
	if (info->event == LARDER_WAIT_END) {
		/* Whatever comes next (a load, the output) starts afresh:
		 * the waiting line goes. */
		p->waiting = 0;
		wipe(p);
		p->bytes = 0;
		p->phase_t0 = now;
	} else {
		p->waiting = 1;
		p->waited = (double)info->waited_ms / 1000;
		p->waited_at = now;
		/* The lease file's word: anyone who can write the store
		 * wrote it. */
		out_text_buf(p->holder_host, sizeof(p->holder_host),
			     info->holder_host, strlen(info->holder_host));
		p->holder_pid = info->holder_pid;
		p->holder_alive = info->holder_alive;
		maybe_draw(p, now);
	}
	pthread_mutex_unlock(&mu);
}

void progress_end(struct cli_progress *p)
{
	if (!p->on)
		return;
	ticker_end();
	pthread_mutex_lock(&mu);
	wipe(p);
	p->on = 0;
	if (current == p)
		current = NULL;
	pthread_mutex_unlock(&mu);
}

void progress_pause(void)
{
	pthread_mutex_lock(&mu);
	if (current)
		wipe(current);
}

void progress_resume(void)
{
	pthread_mutex_unlock(&mu);
}
