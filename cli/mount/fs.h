/*
 * fs.h — the filesystem `larder mount` serves (docs/fuse.md): its nodes
 * and libfuse's low-level operations over the public API (fs.c), and
 * the thread that tells the kernel when a head moved (watch.c).
 *
 * Threads: the operations run in libfuse's worker threads at once; the
 * node table has one mutex, never held across a call into the store or
 * a reply to the kernel. Each file node has a lock of its own, held
 * across the store calls that hold and verify its entry (never a reply),
 * so that readers of one inode wait for its one verification while
 * other inodes go on. The watch thread is the only one that sends
 * invalidations, so that a notification never waits behind a request
 * that waits for it.
 */
#ifndef LARDER_MOUNT_FS_H
#define LARDER_MOUNT_FS_H

#define FUSE_USE_VERSION 312
#include <fuse_lowlevel.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "larder.h"

struct mount_node;
struct mount_head;

struct mount_fs {
	larder *db;
	const char *dir; /* the store, an absolute path */
	/* The namespaces shown (--ns), or nns 0: every one the store has
	 * (but the library's own, which start with '.'). */
	char **ns;
	size_t nns;
	unsigned poll_ms; /* how often heads are looked at without inotify */
	/* --daemon-open: answer every open (FUSE_OPEN, and FUSE_RELEASE at
	 * the close) rather than ENOSYS, which lets the kernel open files
	 * itself: a dead daemon then fails every later open with ENOTCONN,
	 * also of a file whose pages the kernel holds. */
	int daemon_open;
	/* Entries verified since the mount (the root's user.larder.verified
	 * xattr); atomic. */
	uint64_t verified;
	/* File nodes holding an unverified entry (its file open), atomic,
	 * and how many may: half the descriptors the daemon may have
	 * (SIZE_MAX from mount_fs_init until the caller sets it), the other
	 * half left for the headers lookups read and the first reads. */
	size_t holding, hold_max;
	/* Who may read, as in the store: its directory's owner and group,
	 * and the read bits of its mode (the kernel checks them:
	 * default_permissions), so that --allow-other never shows a
	 * private store to others. */
	uid_t uid;
	gid_t gid;
	mode_t fmode, dmode;
	struct timespec started;

	pthread_mutex_t mu;
	struct mount_node **buckets; /* the nodes the kernel knows, by ino */
	size_t nbuckets;
	/* The head dentries the kernel may cache: each is invalidated when
	 * its key's head names another version (watch.c). */
	struct mount_head *heads;

	struct fuse_session *se;
	int stop_fd; /* an eventfd that ends the watch thread */
	pthread_t watch;
	int watching;
};

/* The operations: every write is EROFS. */
extern const struct fuse_lowlevel_ops mount_fs_ops;

/* Set up fs (its nodes: the root); LARDER_ENOMEM, LARDER_EIO (the store
 * directory cannot be looked at: errno) or 0. */
int mount_fs_init(struct mount_fs *fs, larder *db, const char *dir, char **ns,
		  size_t nns, unsigned poll_ms);
/* Free the nodes and the entries they hold (after the loop ended). */
void mount_fs_destroy(struct mount_fs *fs);

/* Whether ns is shown: a valid namespace name (not the library's own)
 * and, with --ns, one of those given. */
int mount_fs_ns_shown(const struct mount_fs *fs, const char *ns);

/* The watch thread (watch.c): start it once the session is mounted;
 * stop joins it. Returns 0 or an errno. */
int mount_watch_start(struct mount_fs *fs);
void mount_watch_stop(struct mount_fs *fs);

/* For watch.c: the head dentries to look at, and the fs's answer to a
 * moved head. */
struct mount_head {
	struct mount_head *next;
	fuse_ino_t parent; /* head/<ns>'s inode */
	char ns[LARDER_NS_MAX + 1];
	unsigned char *key;
	size_t klen;
	unsigned char *ver; /* the version the kernel was told */
	size_t vlen;
	char name[256]; /* the key's file name */
};

#endif
