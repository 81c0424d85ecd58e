/*
 * cmd_umount.c — `larder umount`: unmount what `larder mount` mounted.
 * A busy mount is left mounted and the processes holding it are named;
 * --force aborts the FUSE connection first (readers get ENOTCONN, the
 * daemon's loop ends) and detaches the mount, busy or not, which is also
 * how a mount whose daemon died (ENOTCONN) is cleared (docs/fuse.md,
 * "Stopping"). It returns once the daemon has let go of the store.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "mount/mtab.h"

#define FUSECTL "/sys/fs/fuse/connections"

/* Unmount mnt: umount2() as root, else the setuid helper fusermount3.
 * 0, or -1 with errno (EBUSY for a busy mount). */
static int do_unmount(const char *mnt, int detach)
{
	if (geteuid() == 0)
		return umount2(mnt, detach ? MNT_DETACH : 0);
	pid_t pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		int null = open("/dev/null", O_WRONLY | O_CLOEXEC);
		if (null >= 0)
			dup2(null, 2); /* its message is ours to word */
		if (detach)
			execlp("fusermount3", "fusermount3", "-u", "-z", "-q",
			       mnt, (char *)NULL);
		else
			execlp("fusermount3", "fusermount3", "-u", "-q", mnt,
			       (char *)NULL);
		_exit(127);
	}
	int st;
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return -1;
	if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
		return 0;
	/* fusermount3 says "Device or resource busy" and exits 1: the
	 * holders, listed next, tell whether that was it. */
	errno = WIFEXITED(st) && WEXITSTATUS(st) == 127 ? ENOENT : EBUSY;
	return -1;
}

/* Write "1" to the connection's abort file, mounting fusectl first if
 * nobody has. */
static int abort_conn(struct cli *c, unsigned conn)
{
	char path[64];
	int fd;

	snprintf(path, sizeof(path), FUSECTL "/%u/abort", conn);
	if (access(FUSECTL "/", F_OK) == 0 && access(path, F_OK) != 0 &&
	    errno == ENOENT &&
	    mount("fusectl", FUSECTL, "fusectl", 0, NULL) != 0 &&
	    errno != EBUSY)
		cli_err(c, "cannot mount fusectl on '%s': %s", FUSECTL,
			strerror(errno));
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0) {
		cli_err(c, "cannot open '%s': %s", path, strerror(errno));
		return -1;
	}
	if (write(fd, "1", 1) != 1) {
		cli_err(c, "cannot write '%s': %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

/* Wait until the connection is gone: the daemon has closed its device,
 * after closing the store (cmd_mount.c), so nothing of it writes there
 * any more. Bounded: a daemon that does not end is said, not waited
 * for. No event tells when a fusectl directory goes: look every 10 ms. */
static void wait_daemon(struct cli *c, const struct mount_entry *me,
			const char *mnt)
{
	char path[64];
	struct timespec tick = {0, 10 * 1000 * 1000};

	if (me->major != 0)
		return;
	snprintf(path, sizeof(path), FUSECTL "/%u", me->minor);
	for (int i = 0; i < 1000; i++) {
		if (access(path, F_OK) != 0)
			return;
		nanosleep(&tick, NULL);
	}
	cli_err(c,
		"'%s' is unmounted, but its daemon has not ended after 10 s "
		"(connection %u)",
		out_q(mnt), me->minor);
}

static int umount_opt(struct cli *c, int id, const char *arg, void *ctx)
{
	(void)arg;
	if (id == 256) {
		*(int *)ctx = 1;
		return CLI_CONTINUE;
	}
	return cli_usage_err(c, "unknown option");
}

static int run_umount(struct cli *c, int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"force", no_argument, NULL, 256},
	    {0},
	};
	struct mount_entry me;
	char mnt[PATH_MAX];
	int force = 0, first, rc, found;

	rc = cli_parse(c, &cli_cmd_umount, argc, argv, "", longopts, umount_opt,
		       &force, &first);
	if (rc != CLI_CONTINUE)
		return rc;
	rc = cli_positionals(c, argc, argv, first, 1, 1, "MOUNTPOINT");
	if (rc != CLI_CONTINUE)
		return rc;
	if (mount_abspath(argv[first], mnt) != 0) {
		cli_err(c, "cannot find '%s': %s", out_q(argv[first]),
			strerror(errno));
		return CLI_USAGE;
	}
	found = mount_find(mnt, &me);
	if (found < 0) {
		cli_err(c, "cannot read /proc/self/mountinfo: %s",
			strerror(errno));
		return CLI_IO;
	}
	if (!found || strcmp(me.fstype, MOUNT_FSTYPE) != 0) {
		cli_err(c, "'%s' is not a larder mount", out_q(mnt));
		return CLI_MISS;
	}
	if (force) {
		/* Aborting first ends every request in flight (ENOTCONN) and
		 * the daemon's loop, so nothing waits on the detach. A dead
		 * daemon's connection may be gone already: then only the
		 * mount is left to clear. */
		if (me.major == 0)
			abort_conn(c, me.minor);
		if (do_unmount(mnt, 1) != 0) {
			cli_err(c, "cannot unmount '%s': %s", out_q(mnt),
				strerror(errno));
			return CLI_IO;
		}
		wait_daemon(c, &me, mnt);
		return CLI_OK;
	}
	if (do_unmount(mnt, 0) == 0) {
		wait_daemon(c, &me, mnt);
		return CLI_OK;
	}
	if (errno != EBUSY) {
		cli_err(c, "cannot unmount '%s': %s", out_q(mnt),
			strerror(errno));
		return CLI_IO;
	}
	cli_err(c, "'%s' is busy; it stays mounted. Held by:", out_q(mnt));
	if (mount_holders(mnt, stderr) == 0)
		fprintf(stderr, "  (no process found: another mount inside "
				"it, or a process this user cannot see)\n");
	fprintf(stderr, "Stop those, or use --force (their reads then "
			"fail with ENOTCONN).\n");
	return CLI_IO;
}

const struct cli_cmd cli_cmd_umount = {
    .name = "umount",
    .run = run_umount,
    .summary = "unmount what 'larder mount' mounted",
    .usage = "[--force] MOUNTPOINT",
    .help = "Unmount a larder mount; its daemon then exits. If a process "
	    "holds a file\n"
	    "or directory in it, nothing is unmounted: the processes are "
	    "listed (pid,\n"
	    "command, what they hold) and the exit status is 4.\n\n"
	    "Options:\n"
	    "  --force   abort the FUSE connection (the abort file under\n"
	    "            /sys/fs/fuse/connections) and detach the mount even "
	    "if busy:\n"
	    "            its readers get ENOTCONN. Also clears a mount whose "
	    "daemon\n"
	    "            died.\n",
};
