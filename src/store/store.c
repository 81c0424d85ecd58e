/*
 * store.c — owns the store handle: open/init, the marker file, namespaces,
 * entry naming, quarantine, remove, and walking the store.
 */
#include "store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fsutil.h"
#include "hash.h"
#include "host.h"
#include "stats.h"
#include "gc.h"
#include "sql_source.h"

void ldr_log(larder *db, int level, const char *fmt, ...)
{
	if (!db->log || level > db->log_level)
		return;
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	db->log(level, msg, db->log_payload);
}

/* The first symlink on the way to rel (beneath the root): 1 and its path
 * in part, or 0 if there is none (any more). */
static int find_symlink(larder *db, const char *rel, char *part, size_t size)
{
	size_t n = strlen(rel);
	if (n >= size)
		n = size - 1;
	for (size_t i = 0; i <= n; i++) {
		if (i < n && rel[i] != '/')
			continue;
		memcpy(part, rel, i);
		part[i] = '\0';
		const char *base = strrchr(part, '/');
		struct stat st;
		int r;
		if (base) {
			part[base - part] = '\0';
			int dfd = ldr_open_beneath(db->rootfd, part,
						   O_RDONLY | O_DIRECTORY, 0);
			part[base - part] = '/';
			if (dfd < 0)
				return 0;
			r = fstatat(dfd, base + 1, &st, AT_SYMLINK_NOFOLLOW);
			ldr_close(dfd);
		} else {
			r = fstatat(db->rootfd, part, &st, AT_SYMLINK_NOFOLLOW);
		}
		if (r == 0 && S_ISLNK(st.st_mode))
			return 1;
	}
	return 0;
}

/* A symlink on the way to rel, refused with a message naming it:
 * LARDER_EPERM, recorded on db. */
static int refuse_symlink(larder *db, const char *rel)
{
	char part[LDR_REL_MAX + 64];
	if (find_symlink(db, rel, part, sizeof part))
		return ldr_fail(db, LARDER_EPERM, ELOOP,
				"'%s/%s' is a symbolic link: refusing (larder "
				"follows none inside a store)",
				db->dir, part);
	return ldr_fail(db, LARDER_EPERM, ELOOP,
			"a symbolic link on the way to '%s/%s': refusing",
			db->dir, rel);
}

/* The same as a warning, for a caller that reports its own failure (a
 * reader, a writer): the user learns which path to look at. errno is
 * kept. */
static void note_symlink(larder *db, const char *rel)
{
	char part[LDR_REL_MAX + 64];
	int e = errno;
	if (find_symlink(db, rel, part, sizeof part))
		ldr_log(db, LARDER_LOG_WARN,
			"'%s/%s' is a symbolic link: refusing (larder follows "
			"none inside a store)",
			db->dir, part);
	errno = e;
}

/* A directory of the store met by name in dirfd (NULL: dirfd itself),
 * whose path is rel: 0 if it is a directory that others cannot write
 * (docs/security.md) or is absent, else a recorded LARDER_E*. */
static int dir_safe(larder *db, int dirfd, const char *name, const char *rel)
{
	struct stat st;
	int r = name ? fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW)
		     : fstat(dirfd, &st);
	if (r != 0)
		return errno == ENOENT
			   ? 0
			   : ldr_fail_errno(db, errno,
					    "cannot stat '%s/%s': %s", db->dir,
					    rel, strerror(errno));
	if (S_ISLNK(st.st_mode))
		return ldr_fail(db, LARDER_EPERM, ELOOP,
				"'%s/%s' is a symbolic link: refusing (larder "
				"follows none inside a store)",
				db->dir, rel);
	if (!S_ISDIR(st.st_mode))
		return ldr_fail(db, LARDER_ENOTSTORE, ENOTDIR,
				"'%s/%s' is not a directory: refusing (move it "
				"out of the store)",
				db->dir, rel);
	if ((st.st_mode & S_IWOTH) &&
	    !(db->flags & LARDER_OPEN_ALLOW_UNSAFE_MODE))
		return ldr_fail(
		    db, LARDER_EPERM, 0,
		    "'%s/%s' is writable by every user (mode %04o): "
		    "anyone could plant entries; refusing (chmod "
		    "o-w '%s/%s', or allow unsafe mode)",
		    db->dir, rel, (unsigned)(st.st_mode & 07777), db->dir, rel);
	return 0;
}

/* The directories of namespace ns (ns/<ns>, its e/ and h/), looked at on
 * the handle's first use of it. The verdict is kept in a small table of
 * name hashes, so that a hit pays no syscall for it; a namespace not made
 * yet is looked at again on the next call. Nothing here is a lock: a
 * directory changed after the look is met by the walks, which check
 * every directory they open. */
static int ns_dirs_check(larder *db, const char *ns)
{
	uint64_t h = ldr_xxh64(ns, strlen(ns)) | 1;
	for (unsigned i = 0; i < LDR_NS_SEEN; i++)
		if (__atomic_load_n(&db->ns_seen[i], __ATOMIC_RELAXED) == h)
			return 0;
	char rel[LDR_REL_MAX], sub[LDR_REL_MAX + 8];
	snprintf(rel, sizeof rel, "ns/%s", ns);
	int fd = ldr_open_beneath(db->rootfd, rel, O_RDONLY | O_DIRECTORY, 0);
	if (fd < 0) {
		if (errno == ENOENT)
			return 0;
		if (errno == ELOOP)
			return refuse_symlink(db, rel);
		if (errno == ENOTDIR)
			return ldr_fail(db, LARDER_ENOTSTORE, ENOTDIR,
					"'%s/%s' is not a directory: refusing "
					"(move it out of the store)",
					db->dir, rel);
		return ldr_fail_errno(db, errno, "cannot open '%s/%s': %s",
				      db->dir, rel, strerror(errno));
	}
	int rc = dir_safe(db, fd, NULL, rel);
	snprintf(sub, sizeof sub, "%s/e", rel);
	if (rc == 0)
		rc = dir_safe(db, fd, "e", sub);
	snprintf(sub, sizeof sub, "%s/h", rel);
	if (rc == 0)
		rc = dir_safe(db, fd, "h", sub);
	ldr_close(fd);
	if (rc == 0) {
		unsigned i =
		    __atomic_fetch_add(&db->ns_seen_next, 1, __ATOMIC_RELAXED);
		__atomic_store_n(&db->ns_seen[i % LDR_NS_SEEN], h,
				 __ATOMIC_RELAXED);
	}
	return rc;
}

/* 0 if ns is a valid namespace name (internal: or the library's own),
 * else LARDER_EINVAL, recorded. */
static int check_ns_name(larder *db, const char *ns, int internal)
{
	if (internal && ns && strcmp(ns, LDR_FILES_NS) == 0)
		return 0;
	size_t n = ns ? strlen(ns) : 0;
	if (n == 0 || n > LARDER_NS_MAX || ns[0] == '.')
		goto bad;
	for (size_t i = 0; i < n; i++) {
		char c = ns[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '.' || c == '_' ||
		      c == '-'))
			goto bad;
	}
	return 0;
bad:
	return ldr_fail(db, LARDER_EINVAL, 0,
			"invalid namespace name '%s': want 1..%d of "
			"[A-Za-z0-9._-], not starting with '.'",
			ns ? ns : "(null)", LARDER_NS_MAX);
}

int ldr_check_ns_internal(larder *db, const char *ns)
{
	int rc = check_ns_name(db, ns, 1);
	return rc ? rc : ns_dirs_check(db, ns);
}

int ldr_check_ns(larder *db, const char *ns)
{
	int rc = check_ns_name(db, ns, 0);
	return rc ? rc : ns_dirs_check(db, ns);
}

/* XXH3-128 of the length-prefixed fields. Short names are framed in a
 * stack buffer and hashed in one call (this is on every hit, and the
 * streaming state costs several times more); both ways give the same
 * hash. */
static void hash_name(const char *tag, const char *ns, const void *key,
		      size_t klen, const void *ver, size_t vlen, int with_ver,
		      uint8_t out[16])
{
	size_t tlen = strlen(tag), nlen = strlen(ns);
	uint8_t small[512];
	if (32 + tlen + nlen + klen + vlen <= sizeof small) {
		uint8_t *p = ldr_put_field(small, tag, tlen);
		p = ldr_put_field(p, ns, nlen);
		p = ldr_put_field(p, key, klen);
		if (with_ver)
			p = ldr_put_field(p, ver, vlen);
		ldr_xxh128(small, (size_t)(p - small), out);
		return;
	}
	struct ldr_hasher st;
	ldr_hasher_reset(&st);
	ldr_hasher_field(&st, tag, tlen);
	ldr_hasher_field(&st, ns, nlen);
	ldr_hasher_field(&st, key, klen);
	if (with_ver)
		ldr_hasher_field(&st, ver, vlen);
	ldr_hasher_digest(&st, out);
}

void ldr_entry_hash(const char *ns, const void *key, size_t klen,
		    const void *ver, size_t vlen, uint8_t out[16])
{
	hash_name("larder-entry-1", ns, key, klen, ver, vlen, 1, out);
}

void ldr_head_hash(const char *ns, const void *key, size_t klen,
		   uint8_t out[16])
{
	hash_name("larder-head-1", ns, key, klen, NULL, 0, 0, out);
}

/* Built by hand: this is on the warm-hit path and snprintf costs more than
 * the rest of the name. */
static char *put_str(char *p, const char *s)
{
	while (*s)
		*p++ = *s++;
	return p;
}

void ldr_dir_rel(char *out, const char *ns, char kind, const char *hex)
{
	char *p = put_str(out, "ns/");
	p = put_str(p, ns);
	*p++ = '/';
	*p++ = kind;
	*p++ = '/';
	*p++ = hex[0];
	*p++ = hex[1];
	*p++ = '/';
	*p++ = hex[2];
	*p++ = hex[3];
	*p = '\0';
}

void ldr_file_rel(char *out, const char *ns, char kind, const char *hex)
{
	ldr_dir_rel(out, ns, kind, hex);
	char *p = out + strlen(out);
	*p++ = '/';
	memcpy(p, hex, 33);
}

/* Move dfd/name to tdfd/tname only if it is the file (dev, ino) that was
 * judged: rename first, then look at what moved, and put it back if it is
 * another one (a filler published a good entry since). Checking first and
 * renaming after would leave a window in which a good entry is moved.
 * Returns 1 if the judged file moved, 0 if it was gone or not it, -1 with
 * errno if the rename failed. */
static int take_away(int dfd, const char *name, dev_t dev, ino_t ino, int tdfd,
		     const char *tname)
{
	if (renameat(dfd, name, tdfd, tname) != 0)
		return errno == ENOENT ? 0 : -1;
	struct stat st;
	if (fstatat(tdfd, tname, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	    st.st_dev == dev && st.st_ino == ino)
		return 1;
	/* Not ours: give it back its name (EEXIST: yet another good one
	 * is there already), then drop our link to it. */
	linkat(tdfd, tname, dfd, name, 0);
	unlinkat(tdfd, tname, 0);
	return 0;
}

/* ldr_open_parent; `note`: warn naming a symlink met on the way. */
static int open_parent(larder *db, const char *rel, const char **base, int note)
{
	char dir[LDR_REL_MAX + 64];
	const char *slash = strrchr(rel, '/');
	if (!slash || (size_t)(slash - rel) >= sizeof dir) {
		errno = EINVAL;
		return -1;
	}
	memcpy(dir, rel, (size_t)(slash - rel));
	dir[slash - rel] = '\0';
	*base = slash + 1;
	int fd = ldr_open_beneath(db->rootfd, dir, O_RDONLY | O_DIRECTORY, 0);
	if (fd < 0 && errno == ELOOP && note)
		note_symlink(db, dir);
	return fd;
}

int ldr_open_parent(larder *db, const char *rel, const char **base)
{
	return open_parent(db, rel, base, 1);
}

int ldr_lstat(larder *db, const char *rel, struct stat *st)
{
	const char *base;
	int dfd = open_parent(db, rel, &base, 0);
	if (dfd < 0)
		return -1;
	int r = fstatat(dfd, base, st, AT_SYMLINK_NOFOLLOW);
	int e = errno;
	ldr_close(dfd);
	errno = e;
	return r;
}

/* One component of a directory path: open it beneath parent, making it
 * if missing. A network filesystem client can answer EEXIST to mkdir from
 * a stale entry while the directory is not there at all (GlusterFS 10,
 * two clients making the same directory while a third looks it up): then
 * the directory is made under a temp name and renamed into place, which
 * replaces the phantom. Bounded retries. */
static int open_component(larder *db, int parent, const char *name)
{
	for (unsigned ms = 5;; ms *= 2) {
		int fd =
		    ldr_open_beneath(parent, name, O_RDONLY | O_DIRECTORY, 0);
		if (fd >= 0 || errno != ENOENT || ms > 1280)
			return fd;
		if (ldr_mkdir_one(parent, name, db->dmode) == 0)
			continue;
		if (errno != EEXIST)
			return -1;
		fd = ldr_open_beneath(parent, name, O_RDONLY | O_DIRECTORY, 0);
		if (fd >= 0 || errno != ENOENT || ms > 640)
			return fd;
		char tmp[128];
		ldr_temp_name(tmp, sizeof tmp, db->host);
		if (ldr_mkdir_one(parent, tmp, db->dmode) == 0 &&
		    renameat(parent, tmp, parent, name) != 0)
			unlinkat(parent, tmp, AT_REMOVEDIR);
		struct timespec ts = {0, (long)ms * 1000000};
		nanosleep(&ts, NULL);
	}
}

int ldr_open_dir(larder *db, const char *rel)
{
	int fd = ldr_open_beneath(db->rootfd, rel, O_RDONLY | O_DIRECTORY, 0);
	if (fd < 0 && errno == ELOOP)
		note_symlink(db, rel);
	if (fd >= 0 || errno != ENOENT)
		return fd;
	if (ldr_mkdirs(db->rootfd, rel, db->dmode) == 0) {
		fd = ldr_open_beneath(db->rootfd, rel, O_RDONLY | O_DIRECTORY,
				      0);
		if (fd >= 0 || errno != ENOENT)
			return fd;
	}
	/* mkdir said it is there, yet it cannot be opened: walk it one
	 * component at a time. */
	char path[LDR_REL_MAX + 64];
	if (strlen(rel) >= sizeof path) {
		errno = ENAMETOOLONG;
		return -1;
	}
	snprintf(path, sizeof path, "%s", rel);
	int dir = fcntl(db->rootfd, F_DUPFD_CLOEXEC, 0);
	char *save = NULL;
	for (char *c = strtok_r(path, "/", &save); c && dir >= 0;
	     c = strtok_r(NULL, "/", &save)) {
		int next = open_component(db, dir, c);
		int e = errno;
		ldr_close(dir);
		errno = e;
		dir = next;
	}
	return dir;
}

int ldr_remove_same(larder *db, const char *rel, dev_t dev, ino_t ino)
{
	return ldr_remove_same_by_us(db, rel, dev, ino) < 0 ? -1 : 0;
}

int ldr_remove_same_by_us(larder *db, const char *rel, dev_t dev, ino_t ino)
{
	const char *base;
	char tname[128];
	int dfd = ldr_open_parent(db, rel, &base);
	if (dfd < 0)
		return -1;
	/* Renamed to a temp name first: the sweeper knows what to do with
	 * one left behind by a crash between the two steps. */
	ldr_temp_name(tname, sizeof tname, db->host);
	int r = take_away(dfd, base, dev, ino, dfd, tname);
	if (r == 1)
		unlinkat(dfd, tname, 0);
	int e = errno;
	ldr_close(dfd);
	errno = e;
	return r;
}

/* An entry file at rel ("ns/<ns>/e/...") of `bytes` left the store by our
 * hand: its namespace's usage shrinks. */
static void usage_gone(larder *db, const char *rel, int64_t bytes)
{
	char ns[LARDER_NS_MAX + 1];
	const char *p = rel + 3, *slash = strchr(p, '/');
	if (strncmp(rel, "ns/", 3) != 0 || !slash || slash[1] != 'e' ||
	    slash[2] != '/' || (size_t)(slash - p) > LARDER_NS_MAX)
		return;
	memcpy(ns, p, (size_t)(slash - p));
	ns[slash - p] = '\0';
	ldr_usage_add(db, ns, -bytes, -1);
}

int ldr_quarantine(larder *db, const char *rel, dev_t dev, ino_t ino,
		   const char *why)
{
	const char *base;
	char dst[128], rnd[17];
	uint8_t r[8];
	int dfd = ldr_open_parent(db, rel, &base);
	if (dfd < 0)
		return 0;
	int qfd = ldr_open_beneath(db->rootfd, "quarantine",
				   O_RDONLY | O_DIRECTORY, 0);
	if (qfd < 0 && errno == ENOENT &&
	    ldr_mkdirs(db->rootfd, "quarantine", db->dmode) == 0)
		qfd = ldr_open_beneath(db->rootfd, "quarantine",
				       O_RDONLY | O_DIRECTORY, 0);
	ldr_random(r, sizeof r);
	ldr_hex(r, sizeof r, rnd);
	snprintf(dst, sizeof dst, "%.40s.%s", base, rnd);
	/* Its size now, for usage: once moved it is no longer the store's. */
	struct stat st;
	int64_t bytes = fstatat(dfd, base, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
				st.st_dev == dev && st.st_ino == ino
			    ? (int64_t)st.st_size
			    : 0;
	int moved = qfd >= 0 ? take_away(dfd, base, dev, ino, qfd, dst) : -1;
	if (moved < 0) {
		/* Cannot keep it for inspection (no quarantine/, or a
		 * filesystem that will not rename across directories): at
		 * least stop serving attempts at it. Only a removal by this
		 * call counts as one: a file gone meanwhile was not moved. */
		int e = errno;
		moved = ldr_remove_same_by_us(db, rel, dev, ino) == 1;
		ldr_log(db, LARDER_LOG_WARN,
			"cannot move '%s/%s' to quarantine: %s%s", db->dir, rel,
			strerror(e), moved ? " (removed instead)" : "");
	}
	if (moved == 1) {
		usage_gone(db, rel, bytes);
		/* Its mtime becomes the time it was quarantined (the store
		 * filesystem's clock): the sweep keeps it that long. */
		if (qfd >= 0)
			utimensat(qfd, dst, NULL, AT_SYMLINK_NOFOLLOW);
		ldr_count(db, LARDER_CTR_QUARANTINED);
		ldr_log(db, LARDER_LOG_WARN, "quarantined '%s/%s': %s", db->dir,
			rel, why);
	}
	ldr_close(qfd);
	ldr_close(dfd);
	return moved == 1;
}

void ldr_quarantine_entry(larder *db, const char *ns, const void *key,
			  size_t klen, const void *ver, size_t vlen,
			  const char *why)
{
	uint8_t h[16];
	char hex[33], rel[LDR_REL_MAX];
	struct stat st;
	ldr_entry_hash(ns, key, klen, ver, vlen, h);
	ldr_hex(h, 16, hex);
	ldr_file_rel(rel, ns, 'e', hex);
	/* Another good entry may replace it between this look and the move:
	 * then that one goes to quarantine too, and costs a recomputation,
	 * nothing worse. */
	if (ldr_lstat(db, rel, &st) == 0) {
		ldr_count(db, LARDER_CTR_CHECKSUM_FAIL);
		ldr_quarantine(db, rel, st.st_dev, st.st_ino, why);
	}
}

/* ---------------------------------------------------------------------- */
/* The marker file                                                         */

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
	int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 022;
	ssize_t n = ldr_pread_full(fd, text, sizeof text - 1, 0);
	ldr_close(fd);
	if (n <= 0)
		return 022;
	text[n] = '\0';
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

static int dir_is_empty(int dirfd)
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
	int empty = 1;
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) {
			empty = 0;
			break;
		}
	closedir(d);
	return empty;
}

/* Create the store in the (empty) directory: subdirectories first, the
 * marker last and with link(), so a store is never seen half made and two
 * concurrent inits agree. */
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
	if (fchmod(db->rootfd, db->topmode) != 0)
		return ldr_fail_errno(NULL, errno, "cannot chmod '%s': %s",
				      db->dir, strerror(errno));
	if (ldr_mkdirs(db->rootfd, "ns", db->dmode) ||
	    ldr_mkdirs(db->rootfd, "quarantine", db->dmode))
		return ldr_fail_errno(NULL, errno,
				      "cannot create directories in '%s': %s",
				      db->dir, strerror(errno));
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
	if (rc == 0 && linkat(db->rootfd, tmp, db->rootfd, LDR_MARKER, 0) &&
	    errno != EEXIST)
		rc = ldr_fail_errno(NULL, errno, "cannot link '%s/%s': %s",
				    db->dir, LDR_MARKER, strerror(errno));
	unlinkat(db->rootfd, tmp, 0);
	if (rc == 0)
		ldr_fsync(db->rootfd);
	return rc;
}

int larder_open(larder **out, const char *dir, const larder_opts *opts)
{
	int rc;
	*out = NULL;
	if (!dir || !*dir)
		return ldr_fail(NULL, LARDER_EINVAL, 0, "no store directory");
	if (opts && (opts->version < 1 || opts->version > LARDER_OPTS_VERSION))
		return ldr_fail(NULL, LARDER_EINVAL, 0,
				"larder_opts version %u, this library "
				"understands 1 to %d",
				opts->version, LARDER_OPTS_VERSION);
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
	if (rc == 0)
		rc = check_top(db, &st);
	if (rc == 1) {
		if (!dir_is_empty(db->rootfd)) {
			rc = ldr_fail(NULL, LARDER_ENOTSTORE, 0,
				      "'%s' is not a larder store (no %s "
				      "file) and is not empty: refusing to "
				      "use it",
				      dir, LDR_MARKER);
			goto fail;
		}
		if (!create) {
			rc = ldr_fail(NULL, LARDER_ENOTFOUND, ENOENT,
				      "no store at '%s' (create it with init)",
				      dir);
			goto fail;
		}
		rc = init_store(db, opts);
		if (rc == 0 && (rc = read_marker(db)) == 1)
			rc = ldr_fail(NULL, LARDER_EIO, ENOENT,
				      "store marker '%s/%s' vanished after "
				      "init",
				      dir, LDR_MARKER);
	}
	if (rc < 0 || (rc = ldr_stats_init(db)) < 0 ||
	    (rc = ldr_gc_open(db)) < 0)
		goto fail;
	*out = db;
	return 0;
fail:
	larder_close(db);
	return rc;
}

void larder_close(larder *db)
{
	if (!db)
		return;
	ldr_gc_close(db);
	ldr_stats_fini(db); /* flushes: a failure is logged, not returned */
	ldr_pg_pool_free(db);
	ldr_close(db->rootfd);
	free(db->dir);
	free(db);
}

const char *larder_dir(const larder *db)
{
	return db->dir;
}

unsigned larder_mode(const larder *db)
{
	return (unsigned)db->fmode;
}

uint64_t larder_counter(const larder *db, int counter)
{
	if (counter < 0 || counter >= LARDER_CTR_COUNT)
		return 0;
	return __atomic_load_n(&db->ctr[counter], __ATOMIC_RELAXED);
}

const char *larder_counter_name(int counter)
{
	static const char *const names[LARDER_CTR_COUNT] = {
	    "hits",
	    "misses",
	    "published",
	    "publish_raced",
	    "checksum_fail",
	    "quarantined",
	    "estale_retries",
	    "write_failures",
	    "expired",
	    "newer_format",
	    "fills",
	    "waits",
	    "fill_wait_ms",
	    "lease_breaks",
	    "lease_lost",
	    "source_changed_during_load",
	    "uncached",
	    "files_hashed",
	    "files_hashed_bytes",
	    "files_remembered",
	    "requests",
	    "evictions",
	    "bytes_evicted",
	    "tmp_swept",
	    "gc_runs",
	    "publish_refused",
	    "touches",
	    "gc_failures",
	    "walk_skipped",
	};
	if (counter < 0 || counter >= LARDER_CTR_COUNT)
		return NULL;
	return names[counter];
}

/* ---------------------------------------------------------------------- */
/* Namespaces                                                              */

int64_t ldr_ns_ttl(larder *db, const char *ns)
{
	char rel[LDR_REL_MAX], text[64];
	snprintf(rel, sizeof rel, "ns/%s/config", ns);
	/* O_NONBLOCK: a FIFO planted there must not hang a put. */
	int fd = ldr_open_beneath(db->rootfd, rel, O_RDONLY | O_NONBLOCK, 0);
	if (fd < 0)
		return 0;
	ssize_t n = ldr_pread_full(fd, text, sizeof text - 1, 0);
	ldr_close(fd);
	long long ttl = 0;
	if (n > 0) {
		text[n] = '\0';
		if (sscanf(text, "ttl %lld", &ttl) != 1 || ttl < 0)
			ttl = 0;
	}
	return ttl;
}

int larder_ns_get_ttl(larder *db, const char *ns, int64_t *out)
{
	int rc = ldr_check_ns(db, ns);
	if (rc)
		return rc;
	*out = ldr_ns_ttl(db, ns);
	return 0;
}

int larder_ns_set_ttl(larder *db, const char *ns, int64_t ttl_seconds)
{
	int rc = ldr_check_ns(db, ns);
	if (rc)
		return rc;
	if (ttl_seconds < 0)
		return ldr_fail(db, LARDER_EINVAL, 0,
				"negative TTL %lld for namespace '%s'",
				(long long)ttl_seconds, ns);
	char dir[LDR_REL_MAX], text[64];
	snprintf(dir, sizeof dir, "ns/%s", ns);
	snprintf(text, sizeof text, "ttl %lld\n", (long long)ttl_seconds);
	return ldr_config_replace(db, dir, text);
}

/* The key of a config line: its first word. */
static size_t line_key(const char *line, size_t n)
{
	size_t k = 0;
	while (k < n && line[k] != ' ' && line[k] != '\n')
		k++;
	return k;
}

/* Whether `text` has a line whose key is line's. */
static int has_key(const char *text, const char *line, size_t k)
{
	for (const char *p = text; *p;) {
		const char *e = strchr(p, '\n');
		size_t n = e ? (size_t)(e - p) : strlen(p);
		if (line_key(p, n) == k && memcmp(p, line, k) == 0)
			return 1;
		p += n + (e ? 1 : 0);
	}
	return 0;
}

/* Whether the store's config open at fd may be used: like the marker, it
 * is its owner's and nobody else may write it (docs/security.md). One
 * its owner opens that others may write was made by an earlier larder:
 * fixed. Anything else is ignored, with a warning once per handle. */
static int config_trusted(larder *db, int fd, const char *rel)
{
	struct stat st;
	if (fstat(fd, &st) != 0)
		return 0;
	int owners = st.st_uid == db->owner;
	if (S_ISREG(st.st_mode) && owners && !(st.st_mode & 022))
		return 1;
	if (S_ISREG(st.st_mode) && owners && st.st_uid == geteuid() &&
	    fchmod(fd, st.st_mode & 07777 & ~(mode_t)022) == 0) {
		ldr_log(db, LARDER_LOG_INFO,
			"'%s/%s' was writable by group or others: now %04o",
			db->dir, rel, (unsigned)(st.st_mode & 07777 & ~022));
		return 1;
	}
	if (!__atomic_exchange_n(&db->said_config, 1, __ATOMIC_RELAXED))
		ldr_log(
		    db, LARDER_LOG_WARN,
		    "ignoring '%s/%s': %s (its owner can fix it: chmod go-w, "
		    "or set the caps again)",
		    db->dir, rel,
		    !S_ISREG(st.st_mode) ? "not a regular file"
		    : !owners		 ? "not owned by the store's owner"
					 : "writable by group or others");
	return 0;
}

int ldr_config_read(larder *db, const char *dirrel, char *buf, size_t size)
{
	char rel[LDR_REL_MAX + 16];
	snprintf(rel, sizeof rel, "%s%sconfig", dirrel, *dirrel ? "/" : "");
	buf[0] = '\0';
	/* O_NONBLOCK: a FIFO planted there must not hang us. */
	int fd = ldr_open_beneath(db->rootfd, rel, O_RDONLY | O_NONBLOCK, 0);
	if (fd < 0)
		return errno == ENOENT ? 0 : -1;
	if (!*dirrel && !config_trusted(db, fd, rel)) {
		ldr_close(fd);
		return 0;
	}
	ssize_t n = ldr_pread_full(fd, buf, size - 1, 0);
	int e = errno;
	ldr_close(fd);
	if (n < 0) {
		if (e == EAGAIN || e == EISDIR)
			return 0; /* not a file: no config */
		errno = e;
		return -1;
	}
	buf[n] = '\0';
	return 0;
}

int ldr_config_replace(larder *db, const char *dirrel, const char *lines)
{
	char rel[LDR_REL_MAX + 16], tmp[LDR_REL_MAX + 160], name[128];
	char old[LDR_CONFIG_MAX], *text = NULL;
	const char *sep = *dirrel ? "/" : "";
	snprintf(rel, sizeof rel, "%s%sconfig", dirrel, sep);
	ldr_temp_name(name, sizeof name, db->host);
	snprintf(tmp, sizeof tmp, "%s%s%s", dirrel, sep, name);
	/* Every step in the config's own directory, opened beneath the root:
	 * a rename or unlink by a path from the root would follow a
	 * symlinked ns/ or ns/<ns>. */
	/* The store's config is its owner's (docs/security.md): one made by
	 * anyone else would be ignored, so say so now. */
	if (!*dirrel && geteuid() != db->owner)
		return ldr_fail(db, LARDER_EPERM, EPERM,
				"cannot change '%s/config': only the store's "
				"owner (uid %u) may",
				db->dir, (unsigned)db->owner);
	int dfd = *dirrel ? ldr_open_dir(db, dirrel)
			  : fcntl(db->rootfd, F_DUPFD_CLOEXEC, 0);
	if (dfd < 0)
		return ldr_fail_errno(db, errno, "cannot open '%s/%s': %s",
				      db->dir, dirrel, strerror(errno));
	int rc = 0, fd;
	if (ldr_config_read(db, dirrel, old, sizeof old) != 0) {
		rc = ldr_fail_errno(db, errno, "cannot read '%s/%s': %s",
				    db->dir, rel, strerror(errno));
		goto out;
	}
	/* The new lines first (a namespace's ttl stays the first line, where
	 * older versions look for it), then every old line they do not
	 * replace, known to this version or not. */
	size_t len = strlen(lines), cap = len + strlen(old) + 2;
	if (!(text = malloc(cap))) {
		rc = ldr_fail(db, LARDER_ENOMEM, ENOMEM, "out of memory");
		goto out;
	}
	memcpy(text, lines, len);
	for (const char *p = old; *p;) {
		const char *e = strchr(p, '\n');
		size_t n = e ? (size_t)(e - p) : strlen(p);
		size_t k = line_key(p, n);
		if (n && !has_key(lines, p, k)) {
			memcpy(text + len, p, n);
			len += n;
			text[len++] = '\n';
		}
		p += n + (e ? 1 : 0);
	}
	/* One writer's file, replaced whole: nobody else writes into it. */
	fd = ldr_open_beneath(dfd, name, O_WRONLY | O_CREAT | O_EXCL,
			      db->ownmode);
	if (fd < 0) {
		rc = ldr_fail_errno(db, errno, "cannot create '%s/%s': %s",
				    db->dir, tmp, strerror(errno));
		goto out;
	}
	if (fchmod(fd, db->ownmode) != 0 ||
	    ldr_pwrite_full(fd, text, len, 0) != 0 ||
	    (db->fsync != LARDER_FSYNC_NONE && ldr_fdatasync(fd) != 0))
		rc = ldr_fail_errno(db, errno, "cannot write '%s/%s': %s",
				    db->dir, tmp, strerror(errno));
	ldr_close(fd);
	if (rc == 0 && renameat(dfd, name, dfd, "config") != 0)
		rc = ldr_fail_errno(db, errno,
				    "cannot rename '%s/%s' to '%s': %s",
				    db->dir, tmp, rel, strerror(errno));
	if (rc)
		unlinkat(dfd, name, 0);
out:
	ldr_close(dfd);
	free(text);
	return rc;
}

int ldr_walk_dir(larder *db, int dirfd, const char *name, const char *rel,
		 DIR **out)
{
	*out = NULL;
	int fd = ldr_open_beneath(dirfd, name, O_RDONLY | O_DIRECTORY, 0);
	if (fd < 0) {
		int e = errno;
		if (e == ENOENT || e == ESTALE)
			return 1; /* gone meanwhile */
		if (e == ELOOP || e == ENOTDIR) {
			ldr_count(db, LARDER_CTR_WALK_SKIPPED);
			ldr_log(db, LARDER_LOG_WARN,
				"'%s/%s' is %s: skipped (larder makes a "
				"directory there; move it out of the store)",
				db->dir, rel,
				e == ELOOP ? "a symbolic link"
					   : "not a directory");
			return 1;
		}
		errno = e;
		return -1;
	}
	struct stat st;
	if (fstat(fd, &st) != 0) {
		int e = errno;
		ldr_close(fd);
		errno = e;
		return -1;
	}
	if ((st.st_mode & S_IWOTH) &&
	    !(db->flags & LARDER_OPEN_ALLOW_UNSAFE_MODE)) {
		ldr_count(db, LARDER_CTR_WALK_SKIPPED);
		ldr_log(db, LARDER_LOG_WARN,
			"'%s/%s' is writable by every user (mode %04o): anyone "
			"could plant entries there; skipped (chmod o-w "
			"'%s/%s', or allow unsafe mode)",
			db->dir, rel, (unsigned)(st.st_mode & 07777), db->dir,
			rel);
		ldr_close(fd);
		return 1;
	}
	if (!(*out = fdopendir(fd))) {
		int e = errno;
		ldr_close(fd);
		errno = e;
		return -1;
	}
	return 0;
}

/* The type of the directory entry de in d, without following a symlink
 * (d_type where the filesystem fills it in). */
static unsigned entry_type(DIR *d, const struct dirent *de)
{
	if (de->d_type != DT_UNKNOWN)
		return de->d_type;
	struct stat st;
	if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0)
		return DT_UNKNOWN;
	return S_ISDIR(st.st_mode)   ? DT_DIR
	       : S_ISLNK(st.st_mode) ? DT_LNK
	       : S_ISREG(st.st_mode) ? DT_REG
				     : DT_UNKNOWN;
}

int larder_ns_foreach(larder *db, int (*cb)(const char *ns, void *payload),
		      void *payload)
{
	DIR *d;
	int rc = ldr_walk_dir(db, db->rootfd, "ns", "ns", &d);
	if (rc != 0)
		return rc > 0 ? 0
			      : ldr_fail_errno(db, errno,
					       "cannot list '%s/ns': %s",
					       db->dir, strerror(errno));
	struct dirent *de;
	while (rc == 0 && (de = readdir(d))) {
		const char *n = de->d_name;
		if (n[0] == '.')
			continue; /* ".", "..", the library's own, temps */
		/* Anything else larder did not make is reported and skipped:
		 * one stray file must not stop every walk (and the cleaning
		 * that keeps the caps) for the whole store. */
		unsigned t = entry_type(d, de);
		if (t != DT_DIR || strlen(n) > LARDER_NS_MAX) {
			ldr_count(db, LARDER_CTR_WALK_SKIPPED);
			ldr_log(db, LARDER_LOG_WARN,
				"'%s/ns/%s' is %s: skipped", db->dir, n,
				t == DT_LNK   ? "a symbolic link"
				: t != DT_DIR ? "not a directory"
					      : "not a namespace name");
			continue;
		}
		rc = cb(n, payload);
	}
	closedir(d);
	return rc;
}

/* ---------------------------------------------------------------------- */
/* Remove                                                                  */

int ldr_head_drop(larder *db, const char *ns, const void *key, size_t klen,
		  const void *ver, size_t vlen)
{
	uint8_t *hv = NULL, hash[16];
	size_t hl = 0;
	struct stat st;
	char hex[33], rel[LDR_REL_MAX];
	if (ldr_head_read_ident(db, ns, key, klen, &hv, &hl, &st) != 0)
		return 0;
	int same = hl == vlen && (!vlen || !memcmp(hv, ver, vlen));
	free(hv);
	if (!same)
		return 0;
	ldr_head_hash(ns, key, klen, hash);
	ldr_hex(hash, 16, hex);
	ldr_file_rel(rel, ns, 'h', hex);
	return ldr_remove_same_by_us(db, rel, st.st_dev, st.st_ino) == 1;
}

int larder_remove(larder *db, const char *ns, const void *key, size_t klen,
		  const void *ver, size_t vlen)
{
	int rc = ldr_check_ns(db, ns);
	if (rc)
		return rc;
	uint8_t h[16], *headver = NULL;
	size_t headlen = 0;
	char hex[33], rel[LDR_REL_MAX];
	int hrc = ldr_head_read(db, ns, key, klen, &headver, &headlen);
	if (!ver) {
		if (hrc)
			return hrc == LARDER_ENOTFOUND
				   ? ldr_fail(db, LARDER_ENOTFOUND, 0,
					      "no head version for that "
					      "key in namespace '%s'",
					      ns)
				   : hrc;
		ver = headver;
		vlen = headlen;
	}
	int removed = 0;
	ldr_entry_hash(ns, key, klen, ver, vlen, h);
	ldr_hex(h, 16, hex);
	ldr_file_rel(rel, ns, 'e', hex);
	/* In its directory opened beneath the root: unlinkat by a path from
	 * the root would follow a symlinked ns/<ns> or fan-out directory
	 * and remove a file outside the store. */
	struct stat st;
	const char *base;
	int dfd = open_parent(db, rel, &base, 0);
	if (dfd < 0) {
		if (errno == ELOOP)
			rc = refuse_symlink(db, rel);
		else if (errno != ENOENT)
			rc = ldr_fail_errno(db, errno,
					    "cannot open the directory of "
					    "'%s/%s': %s",
					    db->dir, rel, strerror(errno));
	} else {
		int64_t bytes =
		    fstatat(dfd, base, &st, AT_SYMLINK_NOFOLLOW) == 0
			? (int64_t)st.st_size
			: 0;
		if (unlinkat(dfd, base, 0) == 0) {
			removed = 1;
			usage_gone(db, rel, bytes);
		} else if (errno != ENOENT)
			rc = ldr_fail_errno(db, errno,
					    "cannot remove '%s/%s': %s",
					    db->dir, rel, strerror(errno));
		ldr_close(dfd);
	}
	/* The head goes too when it names the removed version, so that a
	 * version-less get does not chase a missing entry. */
	if (rc == 0 && hrc == 0 && ldr_head_drop(db, ns, key, klen, ver, vlen))
		removed = 1;
	free(headver);
	if (rc == 0 && !removed)
		rc = ldr_fail(db, LARDER_ENOTFOUND, 0,
			      "no such entry in namespace '%s'", ns);
	return rc;
}

/* ---------------------------------------------------------------------- */
/* Walk and inspect                                                        */

struct walk {
	larder *db;
	unsigned flags;
	int (*cb)(const larder_entry_info *, void *);
	void *payload;
	uint8_t want[16]; /* expected name hash, for MISPLACED */
};

/* Describe the entry file at rel and hand it to the callback; w->want is
 * the hash its file name claims. */
static int describe(struct walk *w, const char *ns, const char *rel)
{
	larder *db = w->db;
	char path[4400];
	snprintf(path, sizeof path, "%s/%s", db->dir, rel);
	larder_entry_info info;
	memset(&info, 0, sizeof info);
	info.ns = ns;
	info.path = path;

	/* Scanned, never mapped nor read whole: bounded memory, and a file
	 * someone truncates meanwhile is corrupt, not a SIGBUS. */
	struct ldr_file f;
	if (ldr_file_scan(db, rel, &f, 1) != 0) {
		if (errno == ENOENT || errno == ESTALE)
			return 0; /* removed under us */
		return ldr_fail_errno(db, errno, "cannot read '%s': %s", path,
				      strerror(errno));
	}
	info.file_size = f.size;
	ldr_hdr h;
	const char *why = NULL;
	/* Verifying also decompresses a zstd payload (streaming, bounded),
	 * so that one that passes its checksum but will not decompress to
	 * its length is not called ok. */
	int state = ldr_entry_check(db, &f, rel, ns, NULL, 0, NULL, 0,
				    (w->flags & LARDER_WALK_VERIFY)
					? LDR_CHECK_HASH | LDR_CHECK_ZSTD
					: 0,
				    &h, &why);
	if (state < 0) {
		ldr_file_free(&f);
		return state; /* could not read it: recorded */
	}
	if (h.hdr_len != 0) { /* the header itself decoded */
		info.key = h.key;
		info.klen = h.key_len;
		info.ver = h.ver;
		info.vlen = h.ver_len;
		info.meta = h.meta;
		info.meta_len = h.meta_len;
		info.size = h.raw_len;
		info.stored_size = h.stored_len;
		info.created = h.created;
		info.expires = h.expires;
		info.compressed = h.codec == LDR_CODEC_ZSTD;
		uint8_t named[16];
		ldr_entry_hash(ns, h.key, h.key_len, h.ver, h.ver_len, named);
		if (state == LARDER_STATE_OK && memcmp(named, w->want, 16)) {
			state = LARDER_STATE_MISPLACED;
			why = "header names another key, version or "
			      "namespace than the file name";
		}
	}
	info.state = state;
	info.problem = why;
	if ((w->flags & LARDER_WALK_REPAIR) &&
	    (state == LARDER_STATE_CORRUPT ||
	     state == LARDER_STATE_MISPLACED)) {
		ldr_file_ident(&f);
		info.quarantined = ldr_quarantine(db, rel, f.dev, f.ino, why);
	}
	int rc = w->cb(&info, w->payload);
	ldr_file_free(&f);
	return rc;
}

static int unhex(const char *s, uint8_t out[16])
{
	for (int i = 0; i < 32; i++) {
		char c = s[i];
		int v = c >= '0' && c <= '9'   ? c - '0'
			: c >= 'a' && c <= 'f' ? c - 'a' + 10
					       : -1;
		if (v < 0)
			return -1;
		if (i % 2 == 0)
			out[i / 2] = (uint8_t)(v << 4);
		else
			out[i / 2] |= (uint8_t)v;
	}
	return s[32] == '\0' ? 0 : -1;
}

static int is_hex_digit(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

/* A fan-out directory name: two lower-case hex digits. */
static int is_fan(const char *name)
{
	return is_hex_digit(name[0]) && is_hex_digit(name[1]) && !name[2];
}

int ldr_walk_files(larder *db, const char *ns,
		   int (*cb)(const char *rel, const uint8_t hash[16],
			     void *payload),
		   void *payload)
{
	return ldr_walk_slice(db, ns, 0, 256, cb, payload);
}

/* A name larder may have made beside the fan-out directories: its temp
 * files and directories (".tmp.", from open_component). */
static int is_ours_hidden(const char *name)
{
	return name[0] == '.';
}

int ldr_walk_slice(larder *db, const char *ns, int lo, int hi,
		   int (*cb)(const char *rel, const uint8_t hash[16],
			     void *payload),
		   void *payload)
{
	char rel[LDR_REL_MAX];
	uint8_t hash[16];
	DIR *d0, *d1;
	/* Each directory is opened by one name in its parent and checked
	 * (ldr_walk_dir): a symlink, a stray file or a directory others may
	 * write is reported and skipped, and the walk goes on. */
	snprintf(rel, sizeof rel, "ns/%s", ns);
	int rc = ldr_walk_dir(db, db->rootfd, rel, rel, &d0);
	if (rc == 0) {
		snprintf(rel, sizeof rel, "ns/%s/e", ns);
		rc = ldr_walk_dir(db, dirfd(d0), "e", rel, &d1);
		closedir(d0);
	}
	if (rc != 0)
		return rc > 0 ? 0
			      : ldr_fail_errno(db, errno,
					       "cannot list '%s/%s': %s",
					       db->dir, rel, strerror(errno));
	struct dirent *a;
	while (rc == 0 && (a = readdir(d1))) {
		if (!strcmp(a->d_name, ".") || !strcmp(a->d_name, ".."))
			continue;
		int fan =
		    is_fan(a->d_name) ? (int)strtol(a->d_name, NULL, 16) : -1;
		if (fan < 0 && lo == 0 && !is_ours_hidden(a->d_name)) {
			ldr_count(db, LARDER_CTR_WALK_SKIPPED);
			ldr_log(db, LARDER_LOG_WARN,
				"'%s/%s/%s' is not larder's: skipped", db->dir,
				rel, a->d_name);
		}
		if (fan < lo || fan >= hi)
			continue;
		char rel2[LDR_REL_MAX + 512];
		snprintf(rel2, sizeof rel2, "%s/%s", rel, a->d_name);
		DIR *d2;
		int r2 = ldr_walk_dir(db, dirfd(d1), a->d_name, rel2, &d2);
		if (r2 != 0) {
			if (r2 < 0) {
				ldr_count(db, LARDER_CTR_WALK_SKIPPED);
				ldr_log(db, LARDER_LOG_WARN,
					"cannot list '%s/%s': %s: skipped",
					db->dir, rel2, strerror(errno));
			}
			continue;
		}
		struct dirent *b;
		while (rc == 0 && (b = readdir(d2))) {
			if (!strcmp(b->d_name, ".") || !strcmp(b->d_name, ".."))
				continue;
			if (!is_fan(b->d_name)) {
				if (!is_ours_hidden(b->d_name)) {
					ldr_count(db, LARDER_CTR_WALK_SKIPPED);
					ldr_log(db, LARDER_LOG_WARN,
						"'%s/%s/%s' is not larder's: "
						"skipped",
						db->dir, rel2, b->d_name);
				}
				continue;
			}
			char rel3[LDR_REL_MAX + 1024];
			snprintf(rel3, sizeof rel3, "%s/%s", rel2, b->d_name);
			DIR *d3;
			int r3 =
			    ldr_walk_dir(db, dirfd(d2), b->d_name, rel3, &d3);
			if (r3 != 0) {
				if (r3 < 0) {
					ldr_count(db, LARDER_CTR_WALK_SKIPPED);
					ldr_log(db, LARDER_LOG_WARN,
						"cannot list '%s/%s': %s: "
						"skipped",
						db->dir, rel3, strerror(errno));
				}
				continue;
			}
			struct dirent *c;
			while (rc == 0 && (c = readdir(d3))) {
				if (unhex(c->d_name, hash) != 0)
					continue; /* temps, strays */
				char file[LDR_REL_MAX + 1536];
				snprintf(file, sizeof file, "%s/%s", rel3,
					 c->d_name);
				rc = cb(file, hash, payload);
			}
			closedir(d3);
		}
		closedir(d2);
	}
	closedir(d1);
	return rc;
}

struct walk_ns_ctx {
	struct walk *w;
	const char *ns;
};

static int describe_cb(const char *rel, const uint8_t hash[16], void *payload)
{
	struct walk_ns_ctx *x = payload;
	memcpy(x->w->want, hash, 16);
	return describe(x->w, x->ns, rel);
}

static int walk_ns(struct walk *w, const char *ns)
{
	struct walk_ns_ctx x = {w, ns};
	return ldr_walk_files(w->db, ns, describe_cb, &x);
}

static int walk_ns_cb(const char *ns, void *payload)
{
	return walk_ns(payload, ns);
}

int larder_walk(larder *db, const char *ns, unsigned flags,
		int (*cb)(const larder_entry_info *info, void *payload),
		void *payload)
{
	struct walk w = {db, flags, cb, payload, {0}};
	if (ns) {
		/* The name only: like any walk, this one reports and skips a
		 * directory it must not use. */
		int rc = check_ns_name(db, ns, 1);
		return rc ? rc : walk_ns(&w, ns);
	}
	return larder_ns_foreach(db, walk_ns_cb, &w);
}

int larder_inspect(larder *db, const char *ns, const void *key, size_t klen,
		   const void *ver, size_t vlen, unsigned flags,
		   int (*cb)(const larder_entry_info *info, void *payload),
		   void *payload)
{
	int rc = ldr_check_ns_internal(db, ns);
	if (rc)
		return rc;
	uint8_t *headver = NULL;
	if (!ver) {
		rc = ldr_head_read(db, ns, key, klen, &headver, &vlen);
		if (rc)
			return rc == LARDER_ENOTFOUND
				   ? ldr_fail(db, rc, 0,
					      "no head version for that "
					      "key in namespace '%s'",
					      ns)
				   : rc;
		ver = headver;
	}
	struct walk w = {db, flags, cb, payload, {0}};
	char hex[33], rel[LDR_REL_MAX];
	ldr_entry_hash(ns, key, klen, ver, vlen, w.want);
	ldr_hex(w.want, 16, hex);
	ldr_file_rel(rel, ns, 'e', hex);
	free(headver);
	struct stat st;
	if (ldr_lstat(db, rel, &st) != 0)
		return errno == ELOOP
			   ? refuse_symlink(db, rel)
			   : ldr_fail_errno(db, errno,
					    "no entry file '%s/%s': %s",
					    db->dir, rel, strerror(errno));
	return describe(&w, ns, rel);
}
