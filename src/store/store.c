/*
 * store.c — the store handle's own basics: its log, per-handle slots for
 * the layers above, the hooks they install, entry and head naming,
 * namespace checks, and walking paths beneath the root safely (no
 * symlink followed). Everything else of the store layer builds on this
 * file (docs/architecture.md).
 */
#include "store.h"

#include <dirent.h>
#include <pthread.h>
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
int ldr_refuse_symlink(larder *db, const char *rel)
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
static int ns_dirs_check(larder *db, const char *ns, size_t nlen)
{
	uint64_t h = ldr_xxh64(ns, nlen) | 1;
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
			return ldr_refuse_symlink(db, rel);
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
 * else LARDER_EINVAL, recorded; its length in *len (the hit path's other
 * checks need it: one strlen for all). */
static int check_name(larder *db, const char *ns, int internal, size_t *len)
{
	size_t n = ns ? strlen(ns) : 0;
	*len = n;
	if (internal && ns && strcmp(ns, LDR_FILES_NS) == 0)
		return 0;
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

int ldr_check_ns_name(larder *db, const char *ns, int internal)
{
	size_t n;
	return check_name(db, ns, internal, &n);
}

int ldr_check_ns_internal(larder *db, const char *ns)
{
	size_t n;
	int rc = check_name(db, ns, 1, &n);
	return rc ? rc : ns_dirs_check(db, ns, n);
}

int ldr_check_ns(larder *db, const char *ns)
{
	size_t n;
	int rc = check_name(db, ns, 0, &n);
	return rc ? rc : ns_dirs_check(db, ns, n);
}

/* XXH3-128 of the length-prefixed fields. Short names are framed in a
 * stack buffer and hashed in one call (this is on every hit, and the
 * streaming state costs several times more); both ways give the same
 * hash. */
static void hash_name(const char *tag, size_t tlen, const char *ns, size_t nlen,
		      const void *key, size_t klen, const void *ver,
		      size_t vlen, int with_ver, uint8_t out[16])
{
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
	ldr_entry_hash_n(ns, strlen(ns), key, klen, ver, vlen, out);
}

void ldr_entry_hash_n(const char *ns, size_t nslen, const void *key,
		      size_t klen, const void *ver, size_t vlen,
		      uint8_t out[16])
{
	static const char tag[] = "larder-entry-1";
	hash_name(tag, sizeof tag - 1, ns, nslen, key, klen, ver, vlen, 1, out);
}

void ldr_head_hash(const char *ns, const void *key, size_t klen,
		   uint8_t out[16])
{
	ldr_head_hash_n(ns, strlen(ns), key, klen, out);
}

void ldr_head_hash_n(const char *ns, size_t nslen, const void *key, size_t klen,
		     uint8_t out[16])
{
	static const char tag[] = "larder-head-1";
	hash_name(tag, sizeof tag - 1, ns, nslen, key, klen, NULL, 0, 0, out);
}

/* Built by hand: this is on the warm-hit path and snprintf costs more than
 * the rest of the name. */
static char *put_str(char *p, const char *s)
{
	while (*s)
		*p++ = *s++;
	return p;
}

/* ldr_dir_rel, returning the end of what it wrote. */
static char *dir_rel(char *out, const char *ns, char kind, const char *hex)
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
	return p;
}

void ldr_dir_rel(char *out, const char *ns, char kind, const char *hex)
{
	dir_rel(out, ns, kind, hex);
}

void ldr_file_rel(char *out, const char *ns, char kind, const char *hex)
{
	char *p = dir_rel(out, ns, kind, hex);
	*p++ = '/';
	memcpy(p, hex, 33);
}

/* ldr_open_parent; `note`: warn naming a symlink met on the way. */
int ldr_open_parent_as(larder *db, const char *rel, const char **base, int note)
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
	return ldr_open_parent_as(db, rel, base, 1);
}

int ldr_lstat(larder *db, const char *rel, struct stat *st)
{
	const char *base;
	int dfd = ldr_open_parent_as(db, rel, &base, 0);
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
	} else if (errno != ENOENT && errno != ESTALE) {
		/* A directory that could not be made (or set to the store's
		 * mode) is not walked into: on a replicated network
		 * filesystem an EIO here is the one sign that two clients
		 * made it at once and its replicas disagree, and an entry
		 * published into it is not the one other clients see
		 * (docs/format.md, "Publishing"). */
		return -1;
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

/* Move dfd/name to tdfd/tname only if it is the file (dev, ino) that was
 * judged: rename first, then look at what moved, and put it back if it is
 * another one (a filler published a good entry since). Checking first and
 * renaming after would leave a window in which a good entry is moved.
 * Returns 1 if the judged file moved, 0 if it was gone or not it, -1 with
 * errno if the rename failed. */
int ldr_take_away(int dfd, const char *name, dev_t dev, ino_t ino, int tdfd,
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
	int r = ldr_take_away(dfd, base, dev, ino, dfd, tname);
	/* Under its temp name the file keeps its old mtime, so a sweeper
	 * walking this directory meanwhile may take it as an old temp and
	 * remove it: then that sweeper removed it, not this call. */
	if (r == 1 && unlinkat(dfd, tname, 0) != 0)
		r = errno == ENOENT ? 0 : -1;
	int e = errno;
	ldr_close(dfd);
	errno = e;
	return r;
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
	    "memo_hits",
	    "near_hits",
	    "shared_hits",
	    "shared_copies",
	    "shared_head_checks",
	    "shared_errors",
	    "shared_skipped",
	    "shared_refused",
	    "redis_lost_chunks",
	    "redis_wait_short",
	};
	if (counter < 0 || counter >= LARDER_CTR_COUNT)
		return NULL;
	return names[counter];
}

/* ---------------------------------------------------------------------- */
/* Slots and hooks                                                         */

void *ldr_slot_get(larder *db, const void *key)
{
	void *ptr = NULL;
	pthread_mutex_lock(&db->slot_mu);
	for (unsigned i = 0; i < db->nslots; i++)
		if (db->slots[i].key == key)
			ptr = db->slots[i].ptr;
	pthread_mutex_unlock(&db->slot_mu);
	return ptr;
}

int ldr_slot_swap(larder *db, const void *key, void *old, void *ptr,
		  void (*destroy)(void *))
{
	int rc = 1;
	void *gone = NULL;
	void (*gone_destroy)(void *) = NULL;
	pthread_mutex_lock(&db->slot_mu);
	unsigned i = 0;
	while (i < db->nslots && db->slots[i].key != key)
		i++;
	if (i == db->nslots && i == LDR_SLOTS) {
		rc = -1;
	} else if ((i < db->nslots ? db->slots[i].ptr : NULL) == old) {
		if (i < db->nslots) {
			gone = db->slots[i].ptr;
			gone_destroy = db->slots[i].destroy;
		} else {
			db->nslots++;
		}
		db->slots[i].key = key;
		db->slots[i].ptr = ptr;
		db->slots[i].destroy = destroy;
		rc = 0;
	}
	pthread_mutex_unlock(&db->slot_mu);
	/* Outside the lock: a destructor may look at other slots. */
	if (gone && gone_destroy)
		gone_destroy(gone);
	return rc;
}

void ldr_slots_clear(larder *db)
{
	/* Last set, first destroyed: a layer's state may lean on what a
	 * lower layer hung there before it. */
	while (db->nslots) {
		struct ldr_slot s = db->slots[--db->nslots];
		if (s.ptr && s.destroy)
			s.destroy(s.ptr);
	}
}

void ldr_hooks_set(larder *db, const struct ldr_hooks *hooks)
{
	db->hooks = *hooks;
}

void ldr_name_init(struct ldr_name *n, const char *ns, const void *key,
		   size_t klen, const void *ver, size_t vlen)
{
	n->ns = ns;
	n->key = key;
	n->klen = klen;
	n->ver = ver;
	n->vlen = vlen;
	ldr_head_hash(ns, key, klen, n->khash);
	if (ver)
		ldr_entry_hash(ns, key, klen, ver, vlen, n->hash);
	else
		memset(n->hash, 0, sizeof n->hash);
}
