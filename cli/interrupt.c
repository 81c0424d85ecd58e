/*
 * interrupt.c — stopping cleanly on SIGINT, SIGTERM and SIGHUP while a
 * command writes into the store (put, run, sql).
 *
 * The library installs no signal handlers, so an interrupted writer would
 * leave its temp file in the store until a gc, and its lease until it went
 * stale. Here the handler only notes the signal (and passes it on to the
 * command `run` is running); the blocking call it interrupts returns (no
 * SA_RESTART); the command aborts its writer or fill (the library removes
 * the temp file and releases the lease: larder_fill_opts.cancel points at
 * the same flag); and the process then dies of the same signal, so that
 * whoever started it sees how it ended.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

volatile sig_atomic_t cli_stop_sig;

/* The command `run` is running, to pass SIGTERM and SIGHUP on to. */
static volatile sig_atomic_t child_pid;

static const int stop_sigs[] = {SIGINT, SIGTERM, SIGHUP};
#define NSIGS (sizeof(stop_sigs) / sizeof(stop_sigs[0]))

static struct sigaction saved[NSIGS];
static int installed[NSIGS];

static void on_stop(int sig)
{
	const int err = errno;

	cli_stop_sig = sig;
	/* SIGINT comes from the terminal to the whole process group, the
	 * command included (as with system()); the others were sent to us
	 * alone, and the command must not outlive us. */
	if (child_pid > 0 && sig != SIGINT)
		kill((pid_t)child_pid, sig);
	errno = err;
}

void cli_stop_begin(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_stop;
	/* No SA_RESTART: a read blocked on a pipe that never ends must
	 * return. Every signal is noted, a second one too: ending at once
	 * would leave the temp file behind (SIGQUIT, untouched, does). */
	sigemptyset(&sa.sa_mask);
	for (size_t i = 0; i < NSIGS; i++) {
		if (installed[i] || sigaction(stop_sigs[i], NULL, &saved[i]))
			continue;
		/* A signal our parent ignores (nohup, a background job)
		 * stays ignored: catching it would make us die of it. */
		if (saved[i].sa_handler == SIG_IGN)
			continue;
		installed[i] = sigaction(stop_sigs[i], &sa, NULL) == 0;
	}
}

void cli_stop_end(void)
{
	for (size_t i = 0; i < NSIGS; i++) {
		if (installed[i])
			sigaction(stop_sigs[i], &saved[i], NULL);
		installed[i] = 0;
	}
	if (cli_stop_sig) {
		const int sig = cli_stop_sig;
		sigset_t set;

		/* Die of it, so that a shell or a supervisor sees the
		 * signal, not an exit status. */
		signal(sig, SIG_DFL);
		sigemptyset(&set);
		sigaddset(&set, sig);
		sigprocmask(SIG_UNBLOCK, &set, NULL);
		raise(sig);
		_exit(128 + sig); /* not reached */
	}
}

void cli_stop_child(pid_t pid)
{
	sigset_t set, old;

	/* A signal that came before the command started (or while it was
	 * being registered) is passed on here, exactly once. */
	sigemptyset(&set);
	for (size_t i = 0; i < NSIGS; i++)
		sigaddset(&set, stop_sigs[i]);
	sigprocmask(SIG_BLOCK, &set, &old);
	child_pid = pid;
	if (pid > 0 && cli_stop_sig && cli_stop_sig != SIGINT)
		kill(pid, cli_stop_sig);
	sigprocmask(SIG_SETMASK, &old, NULL);
}

ssize_t cli_read(int fd, void *buf, size_t len)
{
	sigset_t set, old;
	ssize_t n;

	sigemptyset(&set);
	for (size_t i = 0; i < NSIGS; i++)
		sigaddset(&set, stop_sigs[i]);
	for (;;) {
		struct pollfd pfd = {.fd = fd, .events = POLLIN};
		int r, err;

		/* Checked with the signals blocked, then waited for with
		 * them let through by ppoll() at once: a signal that comes
		 * between the check and the wait cannot be missed, which a
		 * plain check-then-read() could (and block for good). */
		sigprocmask(SIG_BLOCK, &set, &old);
		if (cli_stop_sig) {
			sigprocmask(SIG_SETMASK, &old, NULL);
			return -EINTR;
		}
		r = ppoll(&pfd, 1, NULL, &old);
		err = errno;
		sigprocmask(SIG_SETMASK, &old, NULL);
		if (r < 0 && err == EINTR)
			continue;
		if (r < 0)
			return -err;
		/* A signal held back while the descriptor was ready came
		 * in as the mask was restored. */
		if (cli_stop_sig)
			return -EINTR;
		/* Ready (or at its end, or failed: read() says which). */
		n = read(fd, buf, len);
		if (n < 0 && errno == EINTR)
			continue;
		return n < 0 ? -errno : n;
	}
}
