/*
 * lease.c — owns the lease protocol of docs/leases.md (see lease.h).
 *
 * The record is fixed-width text, so the heartbeat rewrites it in place
 * through the fd the holder kept from creating it: if a breaker renamed the
 * file away meanwhile, the heartbeat writes into that orphan, never into a
 * newer holder's lease.
 */
#include "lease.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fsutil.h"
#include "host.h"

struct ldr_lease {
	int dirfd; /* dup of the caller's */
	char name[128];
	int fd; /* the lease inode, for the heartbeat */
	ino_t ino;
	dev_t dev;
	struct ldr_self me;
	char nonce[33];
	uint64_t lease_ms, heartbeat_ms;
	uint64_t counter;
	pthread_t thread;
	int thread_started;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int stop;
	int lost; /* seen by the heartbeat: the file is no longer ours */
};

static uint64_t proc_start_time(const char *statpath, long *pid_out)
{
	char buf[1024];
	if (ldr_read_text(statpath, buf, sizeof buf) <= 0)
		return 0;
	if (pid_out)
		*pid_out = strtol(buf, NULL, 10);
	/* The command name may hold spaces and parentheses: fields count
	 * from the last ')'. starttime is field 22, the 20th after it. */
	char *p = strrchr(buf, ')');
	if (!p)
		return 0;
	p++;
	for (int field = 3; field < 22 && p; field++)
		p = strchr(p + 1, ' ');
	return p ? strtoull(p + 1, NULL, 10) : 0;
}

void ldr_self_get(struct ldr_self *me, const char *host)
{
	memset(me, 0, sizeof *me);
	snprintf(me->host, sizeof me->host, "%s", host);
	ldr_boot_id_text(me->boot);
	struct stat st;
	if (stat("/proc/self/ns/pid", &st) == 0)
		me->pidns = (uint64_t)st.st_ino;
	me->pid = (long)getpid();
	long procpid = 0;
	me->start = proc_start_time("/proc/self/stat", &procpid);
	/* In a PID namespace whose /proc was not remounted, /proc shows
	 * another namespace's numbers: then /proc/<pid> is not our pid's. */
	me->proc_ok = procpid == me->pid && me->start != 0;
}

#define REC_FMT                                                                \
	"larder-lease 1\nhost %-63.63s\nboot %-36.36s\npidns %020llu\n"        \
	"pid %020ld\nstart %020llu\nnonce %-32.32s\nlease_ms %020llu\n"        \
	"counter %020llu\n"

static int format_rec(char *buf, size_t len, const struct ldr_self *me,
		      const char *nonce, uint64_t lease_ms, uint64_t counter)
{
	return snprintf(buf, len, REC_FMT, me->host, me->boot,
			(unsigned long long)me->pidns, me->pid,
			(unsigned long long)me->start, nonce,
			(unsigned long long)lease_ms,
			(unsigned long long)counter);
}

static int parse_rec(const char *text, struct ldr_lease_rec *r)
{
	unsigned long long pidns, start, lease_ms, counter;
	long pid;
	char host[64], boot[40], nonce[33];
	if (sscanf(text,
		   "larder-lease 1\nhost %63s\nboot %39s\npidns %llu\npid %ld\n"
		   "start %llu\nnonce %32s\nlease_ms %llu\ncounter %llu",
		   host, boot, &pidns, &pid, &start, nonce, &lease_ms,
		   &counter) != 8)
		return -1;
	snprintf(r->host, sizeof r->host, "%s", host);
	snprintf(r->boot, sizeof r->boot, "%s", boot);
	snprintf(r->nonce, sizeof r->nonce, "%s", nonce);
	r->pidns = pidns;
	r->pid = pid;
	r->start = start;
	r->lease_ms = lease_ms;
	r->counter = counter;
	return 0;
}

/* The first bytes of the regular file at name (opened without following
 * a symlink, non-blocking: if a FIFO took its place since the stat, the
 * open cannot hang, and it is not read). 0 with *st the file read; 1 if it
 * could not be opened or read, or is no longer a regular file
 * (rec->garbage says why); -1 with errno if it is gone. */
static int read_text(int dirfd, const char *name, struct stat *st,
		     struct ldr_lease_rec *rec)
{
	int fd = ldr_open_beneath(dirfd, name, O_RDONLY | O_NONBLOCK, 0);
	if (fd < 0) {
		if (errno == ENOENT || errno == ESTALE)
			return -1;
		rec->garbage = "a file that cannot be opened";
		return 1;
	}
	struct stat fst;
	ssize_t n = -1;
	int e = 0;
	if (fstat(fd, &fst) != 0) {
		e = errno;
	} else if (!S_ISREG(fst.st_mode)) {
		*st = fst; /* replaced since the stat: this is what is there */
		rec->garbage = "not a regular file";
		ldr_close(fd);
		return 1;
	} else {
		*st = fst;
		n = ldr_pread_full(fd, rec->text, sizeof rec->text, 0);
		e = errno;
	}
	ldr_close(fd);
	if (n < 0) {
		if (e == ESTALE) {
			errno = e;
			return -1;
		}
		rec->garbage = "a file that cannot be read";
		return 1;
	}
	rec->len = (size_t)n;
	return 0;
}

static const char *garbage_kind(mode_t type)
{
	switch (type) {
	case S_IFDIR:
		return "a directory";
	case S_IFIFO:
		return "a FIFO";
	case S_IFLNK:
		return "a symbolic link";
	case S_IFSOCK:
		return "a socket";
	default:
		return "not a regular file";
	}
}

int ldr_lease_read(int dirfd, const char *name, struct ldr_lease_rec *rec)
{
	memset(rec, 0, sizeof *rec);
	struct stat st;
	if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0)
		return -1;
	/* Only a regular file is opened: a directory, FIFO, socket, device
	 * or symlink at a lease's name is garbage by its type alone. */
	if (!S_ISREG(st.st_mode))
		rec->garbage = garbage_kind(st.st_mode & S_IFMT);
	else if (read_text(dirfd, name, &st, rec) < 0)
		return -1;
	rec->ino = st.st_ino;
	rec->dev = st.st_dev;
	rec->type = st.st_mode & S_IFMT;
	rec->size = st.st_size;
	rec->mtime_ns =
	    (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
	if (rec->garbage)
		return 1;
	char text[LDR_LEASE_TEXT_MAX + 1];
	memcpy(text, rec->text, rec->len);
	text[rec->len] = '\0';
	struct ldr_lease_rec parsed;
	if (rec->len == 0)
		rec->garbage = "an empty file";
	else if (st.st_size > LDR_LEASE_TEXT_MAX || strlen(text) != rec->len ||
		 parse_rec(text, &parsed) != 0)
		rec->garbage = "not a lease record";
	else if (parsed.lease_ms < LDR_LEASE_MIN_MS ||
		 parsed.lease_ms > LDR_LEASE_MAX_MS)
		rec->garbage = "a lease of an implausible length";
	if (rec->garbage)
		return 1;
	memcpy(rec->host, parsed.host, sizeof rec->host);
	memcpy(rec->boot, parsed.boot, sizeof rec->boot);
	memcpy(rec->nonce, parsed.nonce, sizeof rec->nonce);
	rec->pidns = parsed.pidns;
	rec->pid = parsed.pid;
	rec->start = parsed.start;
	rec->lease_ms = parsed.lease_ms;
	rec->counter = parsed.counter;
	return 0;
}

int ldr_lease_same(const struct ldr_lease_rec *a, const struct ldr_lease_rec *b)
{
	return a->ino == b->ino && a->dev == b->dev && a->type == b->type &&
	       a->size == b->size && a->mtime_ns == b->mtime_ns &&
	       a->len == b->len && memcmp(a->text, b->text, a->len) == 0;
}

/* Remove everything in the directory open at fd, depth levels deep at
 * most. 0, or -1 with errno of the first failure. */
static int discard(int dfd, const char *name, int depth, int top);
static int empty_dir(int fd, int depth)
{
	DIR *d = fdopendir(fd);
	if (!d) {
		int e = errno;
		ldr_close(fd);
		errno = e;
		return -1;
	}
	int rc = 0, e = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (discard(dirfd(d), de->d_name, depth, 0) != 0 && !rc) {
			rc = -1;
			e = errno;
		}
	}
	closedir(d);
	errno = e;
	return rc;
}

/* Remove name in dfd whatever it is, depth levels deep at most. Inside a
 * directory being removed, what vanishes meanwhile is fine; at the top
 * (top != 0), ENOENT says someone else removed it. */
static int discard(int dfd, const char *name, int depth, int top)
{
	if (unlinkat(dfd, name, 0) == 0)
		return 0;
	if (errno == ENOENT)
		return top ? -1 : 0;
	if (errno != EISDIR && errno != EPERM)
		return -1;
	/* A directory, perhaps (Linux says EISDIR; POSIX allows EPERM). */
	int e = errno;
	if (depth <= 0) {
		errno = ENOTEMPTY; /* what is deeper stays */
		return -1;
	}
	/* Removing entries while reading a directory may make readdir miss
	 * some: a second pass takes what the first left. Opened without
	 * following a symlink and non-blocking: whatever took the name
	 * meanwhile cannot hang us. */
	for (int pass = 0; pass < 2; pass++) {
		int fd = openat(dfd, name,
				O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
				    O_NONBLOCK | O_CLOEXEC);
		if (fd < 0) {
			if (errno == ENOENT)
				return top ? -1 : 0;
			if (errno == ENOTDIR || errno == ELOOP)
				errno = e; /* not a directory: unlink said */
			return -1;
		}
		int rc = empty_dir(fd, depth - 1);
		e = errno;
		if (unlinkat(dfd, name, AT_REMOVEDIR) == 0)
			return 0;
		if (errno == ENOENT)
			return top ? -1 : 0;
		if (errno != ENOTEMPTY && errno != EEXIST)
			return -1;
		if (rc != 0) {
			errno = e;
			return -1;
		}
	}
	errno = ENOTEMPTY;
	return -1;
}

int ldr_lease_discard(int dirfd, const char *name)
{
	return discard(dirfd, name, LDR_LEASE_DISCARD_DEPTH, 1);
}

int ldr_lease_dead_here(const struct ldr_lease_rec *rec,
			const struct ldr_self *me)
{
	if (strcmp(rec->boot, me->boot) != 0 || rec->pidns != me->pidns ||
	    !me->pidns || rec->pid <= 0)
		return 0;
	if (kill((pid_t)rec->pid, 0) != 0 && errno == ESRCH)
		return 1;
	if (!me->proc_ok)
		return 0; /* cannot tell a reused pid: wait for staleness */
	char path[64];
	snprintf(path, sizeof path, "/proc/%ld/stat", rec->pid);
	uint64_t start = proc_start_time(path, NULL);
	return start != 0 && start != rec->start;
}

/* Whether `name` in dirfd is still the inode we created. */
static int still_ours(const ldr_lease *l)
{
	struct stat st;
	return fstatat(l->dirfd, l->name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	       st.st_ino == l->ino && st.st_dev == l->dev;
}

static void *heartbeat(void *arg)
{
	ldr_lease *l = arg;
	char rec[512];
	pthread_mutex_lock(&l->mu);
	while (!l->stop) {
		struct timespec until;
		clock_gettime(CLOCK_MONOTONIC, &until);
		uint64_t ns =
		    (uint64_t)until.tv_nsec + l->heartbeat_ms * 1000000;
		until.tv_sec += (time_t)(ns / 1000000000);
		until.tv_nsec = (long)(ns % 1000000000);
		while (!l->stop &&
		       pthread_cond_timedwait(&l->cv, &l->mu, &until) == 0)
			;
		if (l->stop)
			break;
		pthread_mutex_unlock(&l->mu);
		int ours = still_ours(l);
		if (ours) {
			l->counter++;
			int n = format_rec(rec, sizeof rec, &l->me, l->nonce,
					   l->lease_ms, l->counter);
			/* In place, through our own fd: a breaker that renamed
			 * the file away gets our beats in its orphan, never a
			 * newer holder's lease. fdatasync makes the beat
			 * visible to other clients of a network filesystem. */
			if (ldr_pwrite_full(l->fd, rec, (size_t)n, 0) == 0)
				ldr_fdatasync(l->fd);
		}
		pthread_mutex_lock(&l->mu);
		if (!ours) {
			l->lost = 1;
			break;
		}
	}
	pthread_mutex_unlock(&l->mu);
	return NULL;
}

int ldr_lease_acquire(int dirfd, const char *name, mode_t mode,
		      const struct ldr_self *me, uint64_t lease_ms,
		      uint64_t heartbeat_ms, ldr_lease **out,
		      struct ldr_lease_rec *holder)
{
	*out = NULL;
	ldr_lease *l = calloc(1, sizeof *l);
	if (!l) {
		errno = ENOMEM;
		return -1;
	}
	l->fd = -1;
	l->dirfd = fcntl(dirfd, F_DUPFD_CLOEXEC, 0);
	if (l->dirfd < 0) {
		free(l);
		return -1;
	}
	snprintf(l->name, sizeof l->name, "%s", name);
	l->me = *me;
	l->lease_ms = lease_ms;
	l->heartbeat_ms = heartbeat_ms ? heartbeat_ms : lease_ms / 4;
	uint8_t r[16];
	ldr_random(r, sizeof r);
	ldr_hex(r, sizeof r, l->nonce);

	/* The record is written before the name exists: the lease is never
	 * seen empty. */
	char tmp[128], rec[512];
	ldr_temp_name(tmp, sizeof tmp, me->host);
	int n = format_rec(rec, sizeof rec, me, l->nonce, lease_ms, 0);
	int rc = -1, e = 0;
	l->fd =
	    ldr_open_beneath(l->dirfd, tmp, O_RDWR | O_CREAT | O_EXCL, mode);
	if (l->fd < 0)
		goto out;
	struct stat st;
	/* Exactly `mode`, whatever the umask: waiters on other accounts
	 * must read the record to judge it. */
	if (fchmod(l->fd, mode) != 0 ||
	    ldr_pwrite_full(l->fd, rec, (size_t)n, 0) != 0 ||
	    fstat(l->fd, &st) != 0)
		goto out_unlink;
	l->ino = st.st_ino;
	l->dev = st.st_dev;
	if (linkat(l->dirfd, tmp, l->dirfd, name, 0) == 0) {
		rc = 0;
	} else if (errno == EEXIST) {
		/* Taken, unless the link worked and only its reply was lost
		 * (NFS): then the file there carries our nonce. (If it is
		 * unreadable or already gone, holder->ino is 0: the caller
		 * looks again.) */
		rc = ldr_lease_read(l->dirfd, name, holder) == 0 &&
			     strcmp(holder->nonce, l->nonce) == 0
			 ? 0
			 : 1;
	} else if (errno == EPERM || errno == ENOTSUP || errno == EMLINK ||
		   errno == ENOSYS) {
		/* No hard links here: create the name exclusively and fill
		 * it (a waiter that reads it empty sees "changed", never
		 * "stale"). */
		int fd = ldr_open_beneath(l->dirfd, name,
					  O_RDWR | O_CREAT | O_EXCL, mode);
		if (fd < 0) {
			if (errno == EEXIST) {
				ldr_lease_read(l->dirfd, name, holder);
				rc = 1;
			}
			goto out_unlink;
		}
		if (fchmod(fd, mode) != 0 ||
		    ldr_pwrite_full(fd, rec, (size_t)n, 0) != 0 ||
		    fstat(fd, &st) != 0) {
			e = errno;
			unlinkat(l->dirfd, name, 0);
			ldr_close(fd);
			errno = e;
			goto out_unlink;
		}
		ldr_close(l->fd);
		l->fd = fd;
		l->ino = st.st_ino;
		l->dev = st.st_dev;
		rc = 0;
	}
out_unlink:
	e = errno;
	unlinkat(l->dirfd, tmp, 0);
	errno = e;
out:
	if (rc != 0) {
		e = errno;
		ldr_close(l->fd);
		ldr_close(l->dirfd);
		free(l);
		errno = e;
		return rc;
	}
	pthread_mutex_init(&l->mu, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&l->cv, &ca);
	pthread_condattr_destroy(&ca);
	/* The heartbeat must not take signals meant for the program. */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	l->thread_started = pthread_create(&l->thread, NULL, heartbeat, l) == 0;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	*out = l;
	return 0;
}

int ldr_lease_held(ldr_lease *l)
{
	pthread_mutex_lock(&l->mu);
	int lost = l->lost;
	pthread_mutex_unlock(&l->mu);
	return !lost && still_ours(l);
}

void ldr_lease_release(ldr_lease *l)
{
	if (!l)
		return;
	pthread_mutex_lock(&l->mu);
	l->stop = 1;
	pthread_cond_signal(&l->cv);
	pthread_mutex_unlock(&l->mu);
	if (l->thread_started)
		pthread_join(l->thread, NULL);
	/* Remove the name only if it is still our inode. A lease known lost
	 * is not touched at all: even moving a successor's lease aside for
	 * an instant would let a third caller take the key and load again.
	 * Otherwise rename it aside, look, and give it back if a breaker's
	 * successor took it in the instant since the check. */
	char tmp[128];
	ldr_temp_name(tmp, sizeof tmp, l->me.host);
	if (!l->lost && still_ours(l) &&
	    renameat(l->dirfd, l->name, l->dirfd, tmp) == 0) {
		struct stat st;
		if (fstatat(l->dirfd, tmp, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		    (st.st_ino != l->ino || st.st_dev != l->dev))
			linkat(l->dirfd, tmp, l->dirfd, l->name, 0);
		unlinkat(l->dirfd, tmp, 0);
	}
	pthread_cond_destroy(&l->cv);
	pthread_mutex_destroy(&l->mu);
	ldr_close(l->fd);
	ldr_close(l->dirfd);
	free(l);
}

/* Take the breakers' turn on the lease judged stale: an exclusive flock
 * on its inode, held from the last look until the rename. Without it a
 * breaker held up between its last look and its rename renames away the
 * lease another breaker has just broken and taken in its place, and the
 * key is loaded twice. The fd (the lock) on success; -2 if another
 * breaker holds the turn; -3 if the name is no longer what was judged;
 * -1 if this filesystem or this kind of file has no such lock: the break
 * goes on without (docs/leases.md, "Breaking"). */
static int break_turn(int dirfd, const char *name,
		      const struct ldr_lease_rec *observed)
{
	int flags = O_RDONLY | O_NONBLOCK;
	if (observed->type == S_IFDIR)
		flags |= O_DIRECTORY;
	else if (observed->type != S_IFREG)
		return -1; /* a FIFO, socket or symlink: not opened */
	int fd = ldr_open_beneath(dirfd, name, flags, 0);
	if (fd < 0)
		return errno == ENOENT || errno == ESTALE || errno == ENOTDIR ||
			       errno == ELOOP
			   ? -3 /* gone or replaced since the last look */
			   : -1;
	struct stat st;
	if (fstat(fd, &st) != 0) {
		ldr_close(fd);
		return -1;
	}
	if (st.st_ino != observed->ino || st.st_dev != observed->dev) {
		ldr_close(fd);
		return -3;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
		int busy = errno == EWOULDBLOCK;
		ldr_close(fd);
		return busy ? -2 : -1;
	}
	return fd;
}

int ldr_lease_break(int dirfd, const char *name,
		    const struct ldr_lease_rec *observed, const char *host)
{
	int turn = break_turn(dirfd, name, observed);
	if (turn == -2)
		return LDR_LEASE_BREAKING;
	if (turn == -3)
		return 0;
	int rc = 0;
	struct ldr_lease_rec now;
	/* Look once more right before: a successor may have taken it. With
	 * the turn held, the name is still the inode locked. */
	if (ldr_lease_read(dirfd, name, &now) < 0 ||
	    !ldr_lease_same(&now, observed))
		goto out;
	char brk[160], rnd[17];
	uint8_t r[8];
	ldr_random(r, sizeof r);
	ldr_hex(r, sizeof r, rnd);
	snprintf(brk, sizeof brk, ".break.%.40s.%ld.%s", host, (long)getpid(),
		 rnd);
	/* rename() moves a directory, FIFO or symlink as it is, following
	 * nothing: the lease's name is free from here on. */
	if (renameat(dirfd, name, dirfd, brk) != 0)
		goto out; /* another breaker was first */
	/* What we moved must be the very thing judged stale; if not (only
	 * without the turn, or a live holder's release and a successor in
	 * between), it is not put back (its holder finds its lease lost and
	 * still publishes safely), and the caller starts over. */
	struct ldr_lease_rec moved;
	rc = ldr_lease_read(dirfd, brk, &moved) >= 0 &&
	     ldr_lease_same(&moved, observed);
	/* If this fails (a directory holding what we may not remove), the
	 * break name is the sweep's to remove. */
	ldr_lease_discard(dirfd, brk);
out:
	/* The turn is given up only now: a breaker that waited for it looks
	 * again and finds the name free or a successor's. */
	ldr_close(turn);
	return rc;
}
