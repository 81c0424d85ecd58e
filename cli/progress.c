/*
 * progress.c — the progress line on stderr for long transfers: what is
 * being done, bytes so far and the rate. Only on a terminal; redrawn at
 * most 4 times a second from the transfer itself (there is no timer, so
 * a transfer that stalls keeps its last line until bytes move again).
 */
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

#define SHOW_AFTER 1.0	  /* seconds of work before the line appears */
#define REDRAW_EVERY 0.25 /* seconds between redraws */

/* The progress under way, for progress_clear(). */
static struct cli_progress *current;

static double mono_now(void)
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
	char buf[160];
	size_t n = p->drawn < sizeof(buf) - 2 ? p->drawn : sizeof(buf) - 2;

	if (!p->drawn)
		return;
	buf[0] = '\r';
	memset(buf + 1, ' ', n);
	buf[n + 1] = '\r';
	(void)out_write_all(STDERR_FILENO, buf, n + 2);
	p->drawn = 0;
}

static void draw(struct cli_progress *p, double now)
{
	char line[160], done[32], rate[32];
	double secs = now - p->phase_t0;
	int len;
	size_t pad;

	human(done, sizeof(done), (double)p->bytes);
	human(rate, sizeof(rate), secs > 0 ? (double)p->bytes / secs : 0);
	len = snprintf(line, sizeof(line) - 40, "\rlarder: %s: %s, %s/s",
		       p->what, done, rate);
	if (len < 0)
		return;
	if ((size_t)len > sizeof(line) - 41)
		len = (int)sizeof(line) - 41;
	/* Cover what is left of a longer previous line. */
	pad = p->drawn > (size_t)len - 1 ? p->drawn - ((size_t)len - 1) : 0;
	if (pad > 38)
		pad = 38;
	memset(line + len, ' ', pad);
	(void)out_write_all(STDERR_FILENO, line, (size_t)len + pad);
	p->drawn = (size_t)len - 1 + pad;
	p->last = now;
}

void progress_start(struct cli_progress *p, const char *what,
		    int stdout_payload)
{
	memset(p, 0, sizeof(*p));
	p->what = what;
	p->on =
	    isatty(STDERR_FILENO) && !(stdout_payload && isatty(STDOUT_FILENO));
	p->t0 = p->phase_t0 = mono_now();
	if (p->on)
		current = p;
}

void progress_phase(struct cli_progress *p, const char *what)
{
	p->what = what;
	p->bytes = 0;
	p->phase_t0 = mono_now();
}

void progress_add(struct cli_progress *p, size_t n)
{
	double now;

	p->bytes += n;
	if (!p->on)
		return;
	now = mono_now();
	if (now - p->t0 >= SHOW_AFTER && now - p->last >= REDRAW_EVERY)
		draw(p, now);
}

void progress_end(struct cli_progress *p)
{
	if (!p->on)
		return;
	wipe(p);
	p->on = 0;
	if (current == p)
		current = NULL;
}

void progress_clear(void)
{
	if (current)
		wipe(current);
}
