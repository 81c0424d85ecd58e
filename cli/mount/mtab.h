/*
 * mtab.h — finding a mount in /proc/self/mountinfo, and who holds one:
 * what `larder mount` checks before mounting on a point and what
 * `larder umount` needs to unmount, abort or explain (docs/fuse.md,
 * "Stopping").
 */
#ifndef LARDER_MOUNT_MTAB_H
#define LARDER_MOUNT_MTAB_H

#include <stdio.h>

/* The filesystem type larder's mounts have ("fuse." + subtype). */
#define MOUNT_FSTYPE "fuse.larder"

struct mount_entry {
	unsigned major, minor; /* the connection is minor (major is 0) */
	char fstype[64];
	char source[4096];
};

/* The mount whose mount point is the absolute path mnt, the last one
 * mounted there. 1 and *out, 0 if none, -1 with errno if mountinfo
 * cannot be read. */
int mount_find(const char *mnt, struct mount_entry *out);

/* The absolute form of path without looking at its last component (a
 * dead FUSE mount answers ENOTCONN to stat), in out (PATH_MAX). 0 or -1
 * with errno. */
int mount_abspath(const char *path, char *out);

/* Print to f "  pid PID (COMMAND): WHAT" for each process that holds a
 * file, directory, mapping or working directory under mnt. Returns how
 * many processes. */
int mount_holders(const char *mnt, FILE *f);

#endif
