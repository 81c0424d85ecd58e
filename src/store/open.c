/*
 * open.c — opens a store: the top directory's checks, the marker file
 * (format, fsync policy, mode) and what follows from it, init of a new
 * store, and the handle's counters and recency. larder_open (src/larder.c)
 * calls ldr_store_open and then wires the layers above.
 */
#include "open.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backend.h"
#include "self.h"
#include "file.h"
#include "fsutil.h"
#include "head.h"
#include "host.h"
#include "memo.h"
#include "recency.h"
#include "stats.h"

static const char *fsync_name(int f)
{
	return f == LARDER_FSYNC_NONE	? "none"
	       : f == LARDER_FSYNC_FULL ? "full"
					: "data";
}

/* The modes a store may have (docs/security.md), widest first: the order
 * in which a umask is tried. */
static const unsigned store_modes[] = {0664, 0660, 0644, 0640, 0600};

int ldr_mode_valid(unsigned mode)
{
	for (size_t i = 0; i < sizeof store_modes / sizeof *store_modes; i++)
		if (mode == store_modes[i])
			return 1;
	return 0;
}

/* The calling process's umask, from /proc/self/status: umask() would
 * have to set it to read it, racing every other thread that creates a
 * file meanwhile. 022 if it cannot be read. */
static unsigned umask_now(void)
{
	char text[4096];
	if (ldr_read_text("/proc/self/status", text, sizeof text) <= 0)
		return 022;
	const char *p = strstr(text, "\nUmask:");
	unsigned mask;
	if (!p || sscanf(p + 7, " %o", &mask) != 1)
		return 022;
	return mask & 0777;
}

unsigned ldr_mode_for_umask(unsigned mask)
{
	/* The owner's own bits in a umask do not count: every mode needs
	 * them, and the store's files are the owner's to write. */
	for (size_t i = 0; i < sizeof store_modes / sizeof *store_modes; i++)
		if (!(store_modes[i] & mask & 066))
			return store_modes[i];
	return 0600;
}

/* Everything the handle derives from the store's mode (docs/security.md,
 * the table of modes). */
static void set_modes(larder *db, unsigned mode)
{
	db->fmode = (mode_t)mode;
	/* directories: x wherever r, and setgid whenever the group has
	 * access that others have not, so that new files take the store's
	 * group (a public store has no group of its own: 0755) */
	db->dmode = db->fmode | ((db->fmode & 0444) >> 2);
	if (((db->fmode >> 3) & 07) & ~(db->fmode & 07))
		db->dmode |= S_ISGID;
	/* the top directory of a group-writable store is sticky: members
	 * may add to it but not remove or replace the owner's files */
	db->topmode = db->dmode | ((db->fmode & 020) ? S_ISVTX : 0);
	db->romode = db->fmode & ~0222;
	db->ownmode = db->fmode & ~022;
}

/* A refusal that LARDER_OPEN_ALLOW_UNSAFE_MODE turns into a warning:
 * LARDER_EPERM (recorded for larder_open) or 0. */
static int unsafe(larder *db, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int unsafe(larder *db, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	if (db->flags & LARDER_OPEN_ALLOW_UNSAFE_MODE) {
		ldr_log(db, LARDER_LOG_WARN, "%s (allowed: unsafe mode)", msg);
		return 0;
	}
	return ldr_fail(NULL, LARDER_EPERM, 0, "%s", msg);
}

/* The value of a "name value" line, whole and alone: 0 and *out, or -1
 * if the line is not exactly that. */
static int marker_num(const char *v, int base, long *out)
{
	char *end;
	if (!(*v >= '0' && *v <= '9'))
		return -1;
	errno = 0;
	long x = strtol(v, &end, base);
	if (errno || (*end != '\n' && *end != '\0') || end - v > 9)
		return -1;
	*out = x;
	return 0;
}

static int parse_marker(larder *db, const char *text, const char *path)
{
	if (strncmp(text, LDR_MARKER "\n", sizeof LDR_MARKER) != 0)
		return ldr_fail(NULL, LARDER_ENOTSTORE, 0,
				"'%s' is not a larder store marker", path);
	long format = -1, mode = -1;
	int bad_format = 0, bad_mode = 0;
	char fs[16] = "data";
	/* Strict about the lines that decide what larder does (a garbled
	 * one must not pass for another value); unknown lines are a newer
	 * larder's and are skipped. */
	for (const char *line = text; line; line = strchr(line, '\n')) {
		if (*line == '\n')
			line++;
		size_t k = strcspn(line, " \n");
		long v;
		if (k == 6 && strncmp(line, "format", 6) == 0) {
			if (format >= 0 || line[6] != ' ' ||
			    marker_num(line + 7, 10, &v) != 0)
				bad_format = 1;
			else
				format = v;
		} else if (k == 4 && strncmp(line, "mode", 4) == 0) {
			if (mode >= 0 || line[4] != ' ' ||
			    marker_num(line + 5, 8, &v) != 0)
				bad_mode = 1;
			else
				mode = v;
		} else {
			sscanf(line, "fsync %15s", fs);
		}
	}
	if (!bad_format && format > LDR_STORE_FORMAT)
		return ldr_fail(NULL, LARDER_EVERSION, 0,
				"store '%s' has format %ld; this larder "
				"(%s) reads format %d",
				db->dir, format, LARDER_VERSION_STRING,
				LDR_STORE_FORMAT);
	int rc;
	if (bad_format || format < 1) {
		rc = unsafe(db,
			    "store marker '%s' has no valid format line: "
			    "refusing to guess the store's layout (its owner "
			    "can restore the line 'format %d')",
			    path, LDR_STORE_FORMAT);
		if (rc)
			return rc;
		format = LDR_STORE_FORMAT;
	}
	if (mode < 0 && !bad_mode)
		mode = 0644; /* the one mode before the line existed */
	if (bad_mode || !ldr_mode_valid((unsigned)mode)) {
		rc = unsafe(db,
			    "store marker '%s' asks for a mode larder never "
			    "makes (%s%04lo; want 0600, 0640, 0644, 0660 or "
			    "0664): refusing (its owner can set the 'mode' "
			    "line back)",
			    path, bad_mode ? "garbled, read as " : "",
			    mode < 0 ? 0 : (unsigned long)mode);
		if (rc)
			return rc;
		mode = mode < 0 ? 0644 : ((mode & 0666) | 0600);
	}
	if (db->fsync == LARDER_FSYNC_DEFAULT)
		db->fsync = !strcmp(fs, "none")	  ? LARDER_FSYNC_NONE
			    : !strcmp(fs, "full") ? LARDER_FSYNC_FULL
						  : LARDER_FSYNC_DATA;
	set_modes(db, (unsigned)mode);
	return 0;
}

/* Whether the marker open at fd may be trusted (docs/security.md): the
 * store directory's owner's, and writable by nobody else. A marker the
 * caller owns that others may write was made by an earlier larder (its
 * group stores had a group-writable marker): its mode is fixed. 0 or a
 * recorded LARDER_E*. */
static int check_marker(larder *db, int fd, const char *path)
{
	struct stat st;
	int rc;
	if (fstat(fd, &st) != 0)
		return ldr_fail_errno(NULL, errno, "cannot stat '%s': %s", path,
				      strerror(errno));
	if (!S_ISREG(st.st_mode))
		return ldr_fail(NULL, LARDER_ENOTSTORE, 0,
				"store marker '%s' is not a regular file: "
				"refusing",
				path);
	if (st.st_uid != db->owner) {
		rc = unsafe(db,
			    "store marker '%s' belongs to uid %u, not to the "
			    "store directory's owner (uid %u): someone may "
			    "have replaced it; refusing (if it is right, give "
			    "it to the owner: chown %u '%s')",
			    path, (unsigned)st.st_uid, (unsigned)db->owner,
			    (unsigned)db->owner, path);
		if (rc)
			return rc;
	}
	if (!(st.st_mode & 022))
		return 0;
	if (st.st_uid == geteuid()) {
		mode_t m = st.st_mode & 07777 & ~(mode_t)022;
		if (fchmod(fd, m) == 0) {
			ldr_log(db, LARDER_LOG_INFO,
				"store marker '%s' was writable by group or "
				"others: now %04o",
				path, (unsigned)m);
			return 0;
		}
		ldr_log(db, LARDER_LOG_WARN, "cannot chmod '%s': %s", path,
			strerror(errno));
	}
	return unsafe(db,
		      "store marker '%s' is writable by %s (mode %04o): they "
		      "could change the store's mode or lock everyone out; "
		      "refusing (its owner can fix it: chmod go-w '%s')",
		      path, (st.st_mode & 002) ? "every user" : "its group",
		      (unsigned)(st.st_mode & 07777), path);
}

/* 0 and the store's settings, 1 if there is no marker, or a LARDER_E*. */
static int read_marker(larder *db)
{
	char text[512], path[4200];
	snprintf(path, sizeof path, "%s/%s", db->dir, LDR_MARKER);
	/* O_NONBLOCK: a FIFO planted there must not hang the opener. */
	int fd =
	    ldr_open_beneath(db->rootfd, LDR_MARKER, O_RDONLY | O_NONBLOCK, 0);
	if (fd < 0) {
		if (errno == ENOENT)
			return 1;
		if (errno == ELOOP)
			return ldr_fail(NULL, LARDER_EPERM, ELOOP,
					"store marker '%s' is a symbolic link: "
					"refusing",
					path);
		return ldr_fail_errno(NULL, errno, "cannot open '%s': %s", path,
				      strerror(errno));
	}
	int rc = check_marker(db, fd, path);
	ssize_t n = rc ? 0 : ldr_pread_full(fd, text, sizeof text - 1, 0);
	int e = errno;
	ldr_close(fd);
	if (rc)
		return rc;
	if (n < 0)
		return ldr_fail_errno(NULL, e, "cannot read '%s': %s", path,
				      strerror(e));
	text[n] = '\0';
	return parse_marker(db, text, path);
}

/* One directory larder creates at the top of the store (ns/, quarantine/,
 * stats/): not a symlink, and not writable by others (docs/security.md).
 * 0 if it is fine or absent, or a recorded LARDER_E*. */
static int check_subdir(larder *db, const char *name)
{
	struct stat st;
	if (fstatat(db->rootfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0)
		return errno == ENOENT
			   ? 0
			   : ldr_fail_errno(NULL, errno,
					    "cannot stat '%s/%s': %s", db->dir,
					    name, strerror(errno));
	if (S_ISLNK(st.st_mode))
		return unsafe(db,
			      "'%s/%s' is a symbolic link: refusing (larder "
			      "never makes one, and follows none)",
			      db->dir, name);
	if (S_ISDIR(st.st_mode) && (st.st_mode & S_IWOTH))
		return unsafe(db,
			      "'%s/%s' is writable by every user (mode %04o): "
			      "anyone could plant files there; refusing "
			      "(chmod o-w '%s/%s', or allow unsafe mode)",
			      db->dir, name, (unsigned)(st.st_mode & 07777),
			      db->dir, name);
	return 0;
}

/* The store's top directory once its mode is known (st: its stat). A
 * group store made by an earlier larder has no sticky bit: its owner
 * adds it, so that members cannot remove or replace the marker and the
 * config. Then the directories below it. */
static int check_top(larder *db, const struct stat *st)
{
	if ((db->fmode & 020) && (st->st_mode & S_IWGRP) &&
	    !(st->st_mode & S_ISVTX) && st->st_uid == geteuid()) {
		mode_t m = (st->st_mode & 07777) | S_ISVTX;
		if (fchmod(db->rootfd, m) == 0)
			ldr_log(db, LARDER_LOG_INFO,
				"store '%s' is group-writable: made it sticky "
				"(%04o), so that only its owner may replace "
				"its marker and config",
				db->dir, (unsigned)m);
		else
			ldr_log(db, LARDER_LOG_WARN, "cannot chmod '%s': %s",
				db->dir, strerror(errno));
	}
	static const char *const subdirs[] = {"ns", "quarantine", "stats"};
	for (size_t i = 0; i < sizeof subdirs / sizeof *subdirs; i++) {
		int rc = check_subdir(db, subdirs[i]);
		if (rc)
			return rc;
	}
	return 0;
}

/* open(2) of the store directory, retrying EINTR. */
static int open_root(const char *dir)
{
	int fd;
	do
		fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	while (fd < 0 && errno == EINTR);
	return fd;
}

/* Whether name is one of our temp names, ".tmp.<host>.<pid>.<16 hex>"
 * (ldr_temp_name; the host has no '.'): all that a creator leaves in the
 * top directory before its marker is linked. */
static int is_temp_name(const char *name)
{
	if (strncmp(name, ".tmp.", 5) != 0)
		return 0;
	const char *p = name + 5;
	size_t host =
	    strspn(p, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstu"
		      "vwxyz0123456789-_");
	if (host == 0 || p[host] != '.')
		return 0;
	p += host + 1;
	size_t pid = strspn(p, "0123456789");
	if (pid == 0 || p[pid] != '.')
		return 0;
	p += pid + 1;
	return strspn(p, "0123456789abcdef") == 16 && p[16] == '\0';
}

/* Whether the directory is one a store may be created in: empty, or
 * holding only the temp names of creators whose marker is not linked yet
 * (or who died before linking it). Anything else is someone's: 0, as on
 * an error. */
static int dir_is_fresh(int dirfd)
{
	int fd = dup(dirfd);
	if (fd < 0)
		return 0;
	DIR *d = fdopendir(fd);
	if (!d) {
		ldr_close(fd);
		return 0;
	}
	rewinddir(d);
	struct dirent *de;
	int fresh = 1;
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..") &&
		    !is_temp_name(de->d_name)) {
			fresh = 0;
			break;
		}
	closedir(d);
	return fresh;
}

/* Create the store in the (fresh) directory. The marker is the commit
 * point and comes first: written under a temp name and linked into
 * place, so that of creators racing on one directory exactly one wins
 * (link() fails with EEXIST for the others, on network filesystems too)
 * and none ever meets a half-made directory without a marker, which it
 * would have to refuse as someone else's. The caller then reads the
 * marker that won, ours or not, and finish_store() does the rest. */
static int init_store(larder *db, const larder_opts *o)
{
	/* Without a mode: the widest the creator's umask allows, so that a
	 * user who keeps files private gets a private store. */
	unsigned mode = o && o->create_mode ? o->create_mode
					    : ldr_mode_for_umask(umask_now());
	int fs = o && o->create_fsync ? o->create_fsync : LARDER_FSYNC_DATA;
	/* The store's owner owns its directory (docs/security.md): a marker
	 * made by anyone else would be refused at every open. */
	if (geteuid() != db->owner)
		return ldr_fail(NULL, LARDER_EPERM, EPERM,
				"cannot make a store in '%s': the directory "
				"belongs to uid %u, and a store's owner must "
				"own its directory (run init as that user, or "
				"chown the directory first)",
				db->dir, (unsigned)db->owner);
	set_modes(db, mode);
	/* In a group's store the marker must take the directory's group, as
	 * everything made in it does: the directory is made setgid before
	 * the marker is created. That bit alone widens nobody's access, and
	 * finish_store() then sets the exact mode of the marker that won. */
	if (db->dmode & S_ISGID) {
		struct stat st;
		if (fstat(db->rootfd, &st) != 0)
			return ldr_fail_errno(NULL, errno,
					      "cannot stat '%s': %s", db->dir,
					      strerror(errno));
		if (!(st.st_mode & S_ISGID) &&
		    fchmod(db->rootfd, (st.st_mode & 07777) | S_ISGID) != 0)
			return ldr_fail_errno(NULL, errno,
					      "cannot chmod '%s': %s", db->dir,
					      strerror(errno));
	}
	char text[256], tmp[128];
	int n = snprintf(text, sizeof text,
			 LDR_MARKER "\nformat %d\nfsync %s\nmode %04o\n",
			 LDR_STORE_FORMAT, fsync_name(fs), mode);
	ldr_temp_name(tmp, sizeof tmp, db->host);
	/* The owner's alone: whoever may rewrite the marker decides the
	 * mode of everything made in the store. */
	int fd = ldr_open_beneath(db->rootfd, tmp, O_WRONLY | O_CREAT | O_EXCL,
				  db->ownmode);
	if (fd < 0)
		return ldr_fail_errno(NULL, errno, "cannot create '%s/%s': %s",
				      db->dir, tmp, strerror(errno));
	int rc = 0;
	if (fchmod(fd, db->ownmode) != 0 ||
	    ldr_pwrite_full(fd, text, (size_t)n, 0) != 0 || ldr_fsync(fd) != 0)
		rc = ldr_fail_errno(NULL, errno, "cannot write '%s/%s': %s",
				    db->dir, tmp, strerror(errno));
	ldr_close(fd);
	/* EEXIST: another creator's marker won (or ours did, and a network
	 * filesystem's retried link reports it); the caller reads and
	 * checks whichever it is. */
	if (rc == 0 && linkat(db->rootfd, tmp, db->rootfd, LDR_MARKER, 0) &&
	    errno != EEXIST)
		rc = ldr_fail_errno(NULL, errno, "cannot link '%s/%s': %s",
				    db->dir, LDR_MARKER, strerror(errno));
	if (unlinkat(db->rootfd, tmp, 0) != 0 && errno != ENOENT && rc == 0)
		rc = ldr_fail_errno(NULL, errno, "cannot remove '%s/%s': %s",
				    db->dir, tmp, strerror(errno));
	if (rc == 0)
		ldr_fsync(db->rootfd);
	return rc;
}

/* What a creation makes after its marker, from the marker that won (its
 * mode, set on db by read_marker): the top directory's mode, ns/ and
 * quarantine/. Every creator of a race does it, each step harmless when
 * another did it first, so that the store is whole when any of them
 * returns. */
static int finish_store(larder *db)
{
	struct stat st;
	if (fstat(db->rootfd, &st) != 0)
		return ldr_fail_errno(NULL, errno, "cannot stat '%s': %s",
				      db->dir, strerror(errno));
	if ((st.st_mode & 07777) != db->topmode &&
	    fchmod(db->rootfd, db->topmode) != 0)
		return ldr_fail_errno(NULL, errno, "cannot chmod '%s': %s",
				      db->dir, strerror(errno));
	if (ldr_mkdirs(db->rootfd, "ns", db->dmode) ||
	    ldr_mkdirs(db->rootfd, "quarantine", db->dmode))
		return ldr_fail_errno(NULL, errno,
				      "cannot create directories in '%s': %s",
				      db->dir, strerror(errno));
	return 0;
}

/* The store's directory has no marker (as read_marker found): create the
 * store if it is fresh and the caller asked, else refuse. 0 once the
 * marker is read, or a recorded LARDER_E*. */
static int no_marker(larder *db, const larder_opts *opts, int create)
{
	int rc;
	if (!dir_is_fresh(db->rootfd)) {
		/* A creator links its marker before it makes anything else:
		 * what is here now may be its work, done since we looked. */
		if ((rc = read_marker(db)) != 1)
			return rc;
		return ldr_fail(NULL, LARDER_ENOTSTORE, 0,
				"'%s' is not a larder store (no %s file) and "
				"is not empty: refusing to use it",
				db->dir, LDR_MARKER);
	}
	if (!create)
		return ldr_fail(NULL, LARDER_ENOTFOUND, ENOENT,
				"no store at '%s' (create it with init)",
				db->dir);
	rc = init_store(db, opts);
	if (rc == 0 && (rc = read_marker(db)) == 1)
		rc = ldr_fail(NULL, LARDER_EIO, ENOENT,
			      "store marker '%s/%s' vanished after init",
			      db->dir, LDR_MARKER);
	return rc ? rc : finish_store(db);
}

int ldr_store_open(larder **out, const char *dir, const larder_opts *opts)
{
	int rc;
	*out = NULL;
	if (!dir || !*dir)
		return ldr_fail(NULL, LARDER_EINVAL, 0, "no store directory");
	if (opts && ldr_check_version(NULL, "larder_opts", opts->version, 1,
				      LARDER_OPTS_VERSION))
		return LARDER_EINVAL;
	if (opts && (opts->flags & LARDER_OPEN_CREATE) && opts->create_mode &&
	    !ldr_mode_valid(opts->create_mode))
		return ldr_fail(NULL, LARDER_EINVAL, 0,
				"create_mode %04o for '%s': want 0600, 0640, "
				"0644, 0660 or 0664 (or 0 for what the umask "
				"allows)",
				opts->create_mode, dir);
	larder *db = calloc(1, sizeof *db);
	if (!db || !(db->dir = strdup(dir))) {
		free(db);
		return ldr_fail(NULL, LARDER_ENOMEM, ENOMEM, "out of memory");
	}
	db->rootfd = -1;
	pthread_mutex_init(&db->slot_mu, NULL);
	pthread_mutex_init(&db->ttl_mu, NULL);
	db->flags = opts ? opts->flags : 0;
	db->fsync = opts ? opts->fsync : 0;
	db->mmap_threshold = opts && opts->mmap_threshold ? opts->mmap_threshold
							  : LDR_DEFAULT_MMAP;
	db->max_in_memory = opts && opts->version >= 2 && opts->max_in_memory
				? opts->max_in_memory
				: LDR_DEFAULT_MAX_DECOMPRESSED;
	db->log = opts ? opts->log : NULL;
	db->log_payload = opts ? opts->log_payload : NULL;
	db->log_level =
	    opts && opts->log_level ? opts->log_level : LARDER_LOG_WARN;
	ldr_hostname(db->host, sizeof db->host);
	ldr_memo_open(db, opts);
	ldr_head_cache_open(db, opts);
	int create = (db->flags & LARDER_OPEN_CREATE) != 0;

	db->rootfd = open_root(dir);
	if (db->rootfd < 0 && errno == ENOENT && create) {
		/* The store's directory only, never its parents: a mistyped
		 * path must not grow a tree (the caller makes them). init
		 * sets its exact mode. */
		if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
			int e = errno;
			if (e == ENOENT)
				rc = ldr_fail(NULL, LARDER_ENOTFOUND, e,
					      "cannot create store '%s': its "
					      "parent directory does not exist "
					      "(create it first)",
					      dir);
			else
				rc = ldr_fail_errno(NULL, e,
						    "cannot create '%s': %s",
						    dir, strerror(e));
			goto fail;
		}
		db->rootfd = open_root(dir);
	}
	if (db->rootfd < 0) {
		int e = errno;
		if (e == ENOTDIR)
			rc = ldr_fail(NULL, LARDER_ENOTSTORE, e,
				      "'%s' is not a directory, so not a store",
				      dir);
		else
			rc = ldr_fail_errno(
			    NULL, e, "cannot open store '%s': %s%s", dir,
			    strerror(e),
			    e == ENOENT ? " (create it with init)" : "");
		goto fail;
	}

	struct stat st;
	if (fstat(db->rootfd, &st) != 0) {
		rc = ldr_fail_errno(NULL, errno, "cannot stat '%s': %s", dir,
				    strerror(errno));
		goto fail;
	}
	if ((st.st_mode & S_IWOTH) &&
	    !(db->flags & LARDER_OPEN_ALLOW_UNSAFE_MODE)) {
		rc = ldr_fail(NULL, LARDER_EPERM, 0,
			      "store '%s' is writable by every user (mode "
			      "%04o): anyone could plant entries; refusing "
			      "(chmod o-w, or allow unsafe mode)",
			      dir, (unsigned)(st.st_mode & 07777));
		goto fail;
	}

	db->owner = st.st_uid;
	db->network = ldr_is_network_fs(db->rootfd);
	rc = read_marker(db);
	if (rc == 1)
		rc = no_marker(db, opts, create);
	if (rc == 0)
		rc = check_top(db, &st);
	if (rc < 0 || (rc = ldr_stats_init(db)) < 0 ||
	    (rc = ldr_recency_init(db)) < 0)
		goto fail;
	ldr_bufs_open(db);
	*out = db;
	return 0;
fail:
	ldr_store_close(db);
	return rc;
}

void ldr_store_close(larder *db)
{
	if (!db)
		return;
	ldr_slots_clear(db);
	/* The seam, through its table (a tier may hold other backends). */
	if (db->be)
		db->be->ops->close(db->be);
	db->be = NULL;
	ldr_memo_close(db);
	ldr_head_cache_close(db);
	ldr_recency_fini(db);
	ldr_stats_fini(db); /* flushes: a failure is logged, not returned */
	pthread_mutex_destroy(&db->slot_mu);
	pthread_mutex_destroy(&db->ttl_mu);
	ldr_self_cached_free(db);
	ldr_edirs_close(db);
	ldr_bufs_close(db);
	ldr_close(db->rootfd);
	free(db->dir);
	ldr_forget_errors(db); /* a later handle may get this address */
	free(db);
}
