/*
 * version.c — owns file versions (docs/versions.md): the
 * version of files and directory trees, made from their contents, with
 * each file's content hash remembered in the store under the file's
 * fingerprint so that a warm call reads no byte of the sources.
 *
 * Remembered records are ordinary entries of the internal namespace
 * LDR_FILES_NS, with an empty version:
 *   file: key  "LDRFILE1" boot(16) dev ino size mnt mtime ctime btime
 *              (8 each, LE) absolute path
 *         data hash(16) size(8)
 *   tree: key  "LDRTREE1" boot(16) members(16) count(8) absolute path
 *         data digest(16) files(8) bytes(8)
 * where `members` hashes every member's relative path, type and
 * fingerprint (or link target), so the tree record stands for exactly
 * the tree that was walked.
 *
 * The safety of a record rests on three rules (docs/versions.md says why):
 * the key holds this kernel's boot id (device numbers mean nothing on
 * another host or after a reboot) and the path; a file is remembered only
 * when its timestamps are older than "now" by more than RACY_NS, on both
 * the local clock and the store filesystem's clock, sampled before the
 * first byte is read; and the fingerprint is taken again after the read.
 */
#include "publish.h"
#include "quarantine.h"
#include "read.h"
#include "store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "bytes.h"
#include "clock.h"
#include "fsutil.h"
#include "hash.h"
#include "host.h"

#ifndef STATX_MNT_ID
#define STATX_MNT_ID 0x1000U
#endif
#ifndef STATX_MNT_ID_UNIQUE
#define STATX_MNT_ID_UNIQUE 0x4000U /* Linux 6.8: never reused in a boot */
#endif

/* A file whose mtime or ctime is this close to "now" may change again
 * within its timestamp granularity without its fingerprint changing
 * (kernels stamp from a clock that ticks every few ms; some filesystems
 * keep whole seconds, FAT two). */
#define RACY_NS (2 * 1000000000LL)
#define READ_CHUNK (256u << 10)
/* Files smaller than this get no record of their own: reading one costs
 * about what looking a record up does (bench/bench_version), and writing
 * a record costs far more (a new fan-out directory, a temp file, a link).
 * A tree record still covers them. */
#define REMEMBER_MIN (64u << 10)
/* Reads of a file that changed while it was read, and walks of a tree
 * that changed under the walk, before giving up (LARDER_EBUSY). */
#define MAX_TRIES 5
/* Directories open at once while walking a tree. */
#define MAX_DEPTH 256

#define FILE_KEY_TAG "LDRFILE1"
#define TREE_KEY_TAG "LDRTREE1"
#define FILE_REC_LEN 24
#define TREE_REC_LEN 32

/* Internal returns (positive, apart from the LARDER_E* codes): the tree
 * changed under the walk, walk again; the file changed under the read,
 * read again. */
#define RESTART 1
#define CHANGED 2

struct fp {
	uint64_t dev, ino, size, mnt;
	int64_t mtime, ctime, btime;
	uint32_t mode;
	int trusty; /* the filesystem reported every field that matters */
};

struct fv {
	larder *db;
	int recall; /* look remembered hashes up */
	int keep;   /* remember new ones */
	uint8_t *chunk;
	char *cwd;
	/* This boot of this host (host.h): fingerprints mean something
	 * only inside it. */
	uint8_t boot[16];
	int have_boot;
	int have_store_id;
	dev_t store_dev;
	ino_t store_ino;
	struct ldr_buf key, path;
};

static int add(struct fv *v, struct ldr_buf *b, const void *p, size_t n)
{
	if (ldr_buf_add(b, p, n) != 0)
		return ldr_fail(v->db, LARDER_ENOMEM, ENOMEM, "out of memory");
	return 0;
}

static int add64(struct fv *v, struct ldr_buf *b, uint64_t x)
{
	uint8_t le[8];
	ldr_put64(le, x);
	return add(v, b, le, 8);
}

static int64_t ts_ns(const struct statx_timestamp *t)
{
	return (int64_t)t->tv_sec * 1000000000 + t->tv_nsec;
}

static int64_t now_ns(void)
{
	return ldr_now_ns();
}

/* ---------------------------------------------------------------------- */
/* Fingerprints                                                            */

#define FP_NEED                                                                \
	(STATX_TYPE | STATX_MODE | STATX_INO | STATX_SIZE | STATX_MTIME |      \
	 STATX_CTIME)

/* statx; 0 or -1 with errno. flags: AT_SYMLINK_NOFOLLOW, AT_EMPTY_PATH. */
static int fp_stat(int dirfd, const char *path, int flags, struct fp *f)
{
	struct statx sx;
	int r;
	do
		r = statx(dirfd, path, flags | AT_STATX_SYNC_AS_STAT,
			  STATX_BASIC_STATS | STATX_BTIME | STATX_MNT_ID_UNIQUE,
			  &sx);
	while (r != 0 && errno == EINTR);
	if (r != 0)
		return -1;
	memset(f, 0, sizeof *f);
	f->dev = makedev(sx.stx_dev_major, sx.stx_dev_minor);
	f->ino = sx.stx_ino;
	f->size = sx.stx_size;
	f->mode = sx.stx_mode;
	f->mtime = ts_ns(&sx.stx_mtime);
	f->ctime = ts_ns(&sx.stx_ctime);
	if (sx.stx_mask & STATX_BTIME)
		f->btime = ts_ns(&sx.stx_btime);
	if (sx.stx_mask & (STATX_MNT_ID | STATX_MNT_ID_UNIQUE))
		f->mnt = sx.stx_mnt_id;
	f->trusty = (sx.stx_mask & FP_NEED) == FP_NEED;
	return 0;
}

static int fp_same(const struct fp *a, const struct fp *b)
{
	return a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
	       a->mnt == b->mnt && a->mtime == b->mtime &&
	       a->ctime == b->ctime && a->btime == b->btime &&
	       a->mode == b->mode;
}

/* Changed so recently, by a clock whose "now" is `now`, that another
 * change in the same clock tick could leave the fingerprint as it is.
 * Timestamps in the future count too. */
static int fp_racy(const struct fp *f, int64_t now)
{
	return f->mtime > now - RACY_NS || f->ctime > now - RACY_NS;
}

/* Only the owner's execute bit of a file's mode counts (as in git): it
 * decides whether the file runs; other bits differ between checkouts. */
static uint8_t fp_exec(const struct fp *f)
{
	return (f->mode & S_IXUSR) ? 1 : 0;
}

/* ---------------------------------------------------------------------- */
/* Remembered records                                                      */

/* Say once per handle that hashes cannot be kept, and stop trying for
 * the rest of this call. The version is right anyway. */
static void cannot_keep(struct fv *v)
{
	larder *db = v->db;
	v->keep = 0;
	if (!__atomic_exchange_n(&db->said_unremembered, 1, __ATOMIC_RELAXED))
		ldr_log(db, LARDER_LOG_WARN,
			"cannot remember file hashes in '%s': %s; versions "
			"are still right, but each call reads the files "
			"again",
			db->dir, larder_errmsg(db));
}

/* The key of a file record into v->key. */
static int file_key(struct fv *v, const struct fp *f, const char *abspath)
{
	struct ldr_buf *k = &v->key;
	k->len = 0;
	int rc = add(v, k, FILE_KEY_TAG, 8);
	if (!rc)
		rc = add(v, k, v->boot, 16);
	if (rc)
		return rc;
	const uint64_t fields[7] = {f->dev,
				    f->ino,
				    f->size,
				    f->mnt,
				    (uint64_t)f->mtime,
				    (uint64_t)f->ctime,
				    (uint64_t)f->btime};
	for (int i = 0; i < 7 && !rc; i++)
		rc = add64(v, k, fields[i]);
	return rc ? rc : add(v, k, abspath, strlen(abspath));
}

/* Look the record with key v->key up; 0 and its data in rec (len bytes
 * exactly), or non-zero for anything else. A record that passed its
 * checksum but cannot be right (wrong length) is quarantined. */
static int recall(struct fv *v, uint8_t *rec, size_t len)
{
	larder_entry *e;
	if (ldr_get_internal(&e, v->db, LDR_FILES_NS, v->key.p, v->key.len, "",
			     0) != 0)
		return -1;
	int ok = larder_entry_size(e) == len;
	if (ok)
		memcpy(rec, larder_entry_data(e), len);
	larder_entry_release(e);
	if (!ok)
		ldr_quarantine_entry(v->db, LDR_FILES_NS, v->key.p, v->key.len,
				     "", 0,
				     "a remembered file hash of the "
				     "wrong length");
	return ok ? 0 : -1;
}

/* Begin a record under key v->key; NULL if the store will not take it. */
static larder_writer *record_begin(struct fv *v)
{
	larder_writer *w;
	if (ldr_writer_begin_internal(&w, v->db, LDR_FILES_NS, v->key.p,
				      v->key.len, "", 0) != 0) {
		cannot_keep(v);
		return NULL;
	}
	return w;
}

static void record_commit(struct fv *v, larder_writer *w, const uint8_t *rec,
			  size_t len)
{
	int rc = larder_writer_write(w, rec, len);
	if (rc) {
		larder_writer_abort(w);
	} else {
		rc = larder_writer_commit(w);
		if (rc == LARDER_EXISTS)
			rc = 0;
	}
	if (rc)
		cannot_keep(v);
}

/* ---------------------------------------------------------------------- */
/* One regular file                                                        */

struct content {
	uint8_t hash[16];
	uint64_t size;
	int settled; /* remembered, or hashed while not racy */
};

static void pause_ms(unsigned ms)
{
	struct timespec t = {0, (long)ms * 1000000};
	nanosleep(&t, NULL);
}

/* XXH3-128 of everything fd holds from offset 0 to its end. A short read
 * that ends exactly at `size` (the size the fingerprint says) is taken as
 * the end, saving a read: growth shows in the fingerprint taken after.
 * Files of size 0 (procfs: short reads that are not the end) are read
 * until a read returns nothing. */
static int hash_fd(struct fv *v, int fd, const char *path, uint64_t size,
		   uint8_t out[16], uint64_t *len)
{
	/* Made on first need: a warm call reads nothing. */
	if (!v->chunk && !(v->chunk = malloc(READ_CHUNK)))
		return ldr_fail(v->db, LARDER_ENOMEM, ENOMEM, "out of memory");
	struct ldr_hasher st;
	ldr_hasher_reset(&st);
	uint64_t off = 0;
	for (;;) {
		ssize_t n = pread(fd, v->chunk, READ_CHUNK, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			/* ESTALE as an open's: a network filesystem may
			 * open lazily (GlusterFS's open-behind) and find
			 * the name renamed over only at the first read, and
			 * larder_files_version starts again on it. */
			int e = errno;
			return ldr_fail(v->db,
					e == EACCES || e == EPERM ? LARDER_EPERM
					: e == ESTALE ? LARDER_ESTALE
						      : LARDER_EIO,
					e, "cannot read '%s': %s", path,
					strerror(e));
		}
		if (n == 0)
			break;
		ldr_hasher_update(&st, v->chunk, (size_t)n);
		off += (uint64_t)n;
		__atomic_fetch_add(&v->db->ctr[LARDER_CTR_FILES_HASHED_BYTES],
				   (uint64_t)n, __ATOMIC_RELAXED);
		if ((size_t)n < READ_CHUNK && off == size && size > 0)
			break;
	}
	ldr_hasher_digest(&st, out);
	*len = off;
	return 0;
}

/* The failure to open or stat a source, as a code and a message. */
static int source_fail(struct fv *v, int e, const char *what, const char *path)
{
	int rc = e == ENOENT || e == ENOTDIR ? LARDER_ENOTFOUND
		 : e == EACCES || e == EPERM ? LARDER_EPERM
		 : e == ENOMEM		     ? LARDER_ENOMEM
		 : e == ENAMETOOLONG	     ? LARDER_EINVAL
		 : e == ELOOP		     ? LARDER_EINVAL
		 : e == ESTALE		     ? LARDER_ESTALE
					     : LARDER_EIO;
	return ldr_fail(v->db, rc, e, "cannot %s '%s': %s", what, path,
			strerror(e));
}

/*
 * The content of the regular file `path` (relative to dirfd: a direct
 * input is opened following symlinks, a tree member beneath the tree's
 * root with none followed), whose fingerprint was seen as *f; abspath
 * names it in the key and in messages. On return *f is the fingerprint
 * of what was read.
 *
 * Returns 0, a negative code, or RESTART for a tree member that is gone
 * or no longer a regular file.
 */
static int file_content(struct fv *v, int dirfd, const char *path, int member,
			const char *abspath, struct fp *f, struct content *c)
{
	larder *db = v->db;
	for (unsigned attempt = 0;; attempt++) {
		if (attempt == MAX_TRIES)
			return ldr_fail(db, LARDER_EBUSY, 0,
					"'%s' changed while it was read, %d "
					"times in a row",
					abspath, MAX_TRIES);
		if (attempt)
			pause_ms(1u << attempt);
		uint8_t rec[FILE_REC_LEN];
		const int recordable = f->trusty && f->size >= REMEMBER_MIN;
		int rc = (v->recall || v->keep) && recordable
			     ? file_key(v, f, abspath)
			     : 0;
		if (rc)
			return rc;
		if (v->recall && recordable &&
		    recall(v, rec, sizeof rec) == 0) {
			if (ldr_get64(rec + 16) == f->size) {
				memcpy(c->hash, rec, 16);
				c->size = f->size;
				c->settled = 1;
				ldr_count(db, LARDER_CTR_FILES_REMEMBERED);
				return 0;
			}
			ldr_quarantine_entry(
			    db, LDR_FILES_NS, v->key.p, v->key.len, "", 0,
			    "a remembered file hash of another "
			    "size than its key's");
		}

		/* "Now" on each clock that may have stamped the file, taken
		 * before the first byte is read: a change after this moment
		 * gets a timestamp past it. The local clock stamps local
		 * filesystems; the store's stamps its own server's files. */
		int racy = fp_racy(f, now_ns());
		larder_writer *w = NULL;
		if (!racy && v->keep && recordable &&
		    (w = record_begin(v)) != NULL) {
			int64_t fs_now;
			racy = ldr_writer_fs_now(w, &fs_now) != 0 ||
			       fp_racy(f, fs_now);
		}

		int fd =
		    member
			? ldr_open_beneath(dirfd, path,
					   O_RDONLY | O_NONBLOCK | O_NOCTTY, 0)
			: openat(dirfd, path,
				 O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
		if (fd < 0) {
			int e = errno;
			larder_writer_abort(w);
			if (member && (e == ENOENT || e == ELOOP))
				return RESTART;
			return source_fail(v, e, "open", abspath);
		}
		struct fp f1, f2;
		if (fp_stat(fd, "", AT_EMPTY_PATH, &f1) != 0) {
			rc = source_fail(v, errno, "stat", abspath);
			goto out;
		}
		if (!S_ISREG(f1.mode)) {
			rc = member ? RESTART
				    : ldr_fail(db, LARDER_EBUSY, 0,
					       "'%s' stopped being a regular "
					       "file while it was read",
					       abspath);
			goto out;
		}
		if (!fp_same(&f1, f)) {
			/* Not the file that was looked up: look this one up. */
			*f = f1;
			rc = CHANGED;
			goto out;
		}
		if (f->size > READ_CHUNK)
			posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
		uint8_t h1[16], h2[16];
		uint64_t n1, n2;
		ldr_count(db, LARDER_CTR_FILES_HASHED);
		if ((rc = hash_fd(v, fd, abspath, f->size, h1, &n1)) != 0)
			goto out;
		rc = fp_stat(fd, "", AT_EMPTY_PATH, &f2) != 0
			 ? source_fail(v, errno, "stat", abspath)
			 : 0;
		if (rc)
			goto out;
		if (!fp_same(&f2, f)) {
			*f = f2;
			rc = CHANGED;
			goto out;
		}
		if (n1 != f->size) {
			/* The size does not describe the content (procfs,
			 * sysfs): neither do the timestamps. */
			f->trusty = 0;
			racy = 1;
		}
		/* A racy file can change under the read with its timestamps
		 * as they were: only a second read that agrees shows that
		 * the bytes are one state of the file, not a mix. */
		if (racy) {
			if ((rc = hash_fd(v, fd, abspath, f->size, h2, &n2)) !=
			    0)
				goto out;
			rc = fp_stat(fd, "", AT_EMPTY_PATH, &f2) != 0
				 ? source_fail(v, errno, "stat", abspath)
				 : 0;
			if (rc)
				goto out;
			if (!fp_same(&f2, f) || n2 != n1 ||
			    memcmp(h1, h2, 16) != 0) {
				*f = f2;
				rc = CHANGED;
				goto out;
			}
		}
		memcpy(c->hash, h1, 16);
		c->size = n1;
		c->settled = !racy && f->trusty;
		if (w && c->settled) {
			memcpy(rec, h1, 16);
			ldr_put64(rec + 16, n1);
			record_commit(v, w, rec, sizeof rec);
			w = NULL;
		}
	out:
		larder_writer_abort(w);
		ldr_close(fd);
		if (rc != CHANGED)
			return rc;
	}
}

/* ---------------------------------------------------------------------- */
/* Directory trees                                                         */

struct member {
	size_t rel;    /* offset of its relative path in the pool */
	size_t target; /* symbolic links: offset of the target */
	size_t tlen;
	char type; /* f regular, d directory, l symlink, p s c b: others */
	struct fp fp;
};

struct tree {
	struct member *m;
	size_t n, cap;
	struct ldr_buf pool; /* NUL-terminated relative paths and targets */
};

struct frame {
	DIR *d;
	char **names;
	size_t n, i;
	size_t rel; /* offset of the directory's relative path, or -1 */
};

static int by_bytes(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void frame_free(struct frame *fr)
{
	if (fr->d)
		closedir(fr->d);
	for (size_t i = 0; i < fr->n; i++)
		free(fr->names[i]);
	free(fr->names);
	memset(fr, 0, sizeof *fr);
}

/* Open directory fd as a frame: every name but . and .., sorted by
 * bytes. Takes fd. */
static int frame_open(struct fv *v, struct frame *fr, int fd,
		      const char *abspath)
{
	memset(fr, 0, sizeof *fr);
	fr->d = fdopendir(fd);
	if (!fr->d) {
		int e = errno;
		ldr_close(fd);
		return source_fail(v, e, "list", abspath);
	}
	size_t cap = 0;
	struct dirent *de;
	for (;;) {
		errno = 0;
		if (!(de = readdir(fr->d)))
			break;
		const char *nm = de->d_name;
		if (nm[0] == '.' && (!nm[1] || (nm[1] == '.' && !nm[2])))
			continue;
		if (fr->n == cap) {
			cap = cap ? cap * 2 : 16;
			char **p = realloc(fr->names, cap * sizeof *p);
			if (!p)
				goto nomem;
			fr->names = p;
		}
		if (!(fr->names[fr->n] = strdup(nm)))
			goto nomem;
		fr->n++;
	}
	if (errno)
		return source_fail(v, errno, "list", abspath);
	if (fr->n)
		qsort(fr->names, fr->n, sizeof *fr->names, by_bytes);
	return 0;
nomem:
	return ldr_fail(v->db, LARDER_ENOMEM, ENOMEM, "out of memory");
}

static int pool_add(struct fv *v, struct tree *t, const char *s, size_t n,
		    size_t *off)
{
	*off = t->pool.len;
	int rc = add(v, &t->pool, s, n);
	return rc ? rc : add(v, &t->pool, "", 1);
}

static const char *pool_str(const struct tree *t, size_t off)
{
	return (const char *)t->pool.p + off;
}

static char member_type(uint32_t mode)
{
	return S_ISREG(mode)	? 'f'
	       : S_ISDIR(mode)	? 'd'
	       : S_ISLNK(mode)	? 'l'
	       : S_ISFIFO(mode) ? 'p'
	       : S_ISSOCK(mode) ? 's'
	       : S_ISCHR(mode)	? 'c'
				: 'b';
}

/* "root/rel" into v->path (NUL-terminated). */
static int member_path(struct fv *v, const char *root, const char *rel)
{
	v->path.len = 0;
	int rc = add(v, &v->path, root, strlen(root));
	if (!rc && *rel)
		rc = add(v, &v->path, "/", 1);
	if (!rc)
		rc = add(v, &v->path, rel, strlen(rel) + 1);
	return rc;
}

/* List the tree under rootfd: every member, depth first, each directory's
 * names in byte order. The store itself is left out if it lies inside. */
static int walk(struct fv *v, int rootfd, const char *root, struct tree *t)
{
	struct frame st[MAX_DEPTH];
	int depth = 0, rc = 0;
	char *rel = NULL;
	size_t relcap = 0;
	/* A new open file description: a dup would share the offset that
	 * an earlier walk's readdir left at the end. */
	int fd = openat(rootfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return source_fail(v, errno, "open", root);
	if ((rc = frame_open(v, &st[0], fd, root)) != 0) {
		frame_free(&st[0]);
		return rc;
	}
	st[0].rel = (size_t)-1;
	depth = 1;
	while (depth > 0 && rc == 0) {
		struct frame *fr = &st[depth - 1];
		if (fr->i == fr->n) {
			frame_free(fr);
			depth--;
			continue;
		}
		const char *name = fr->names[fr->i++];
		const char *parent =
		    fr->rel == (size_t)-1 ? "" : pool_str(t, fr->rel);
		size_t need = strlen(parent) + strlen(name) + 2;
		if (need > relcap) {
			char *p = realloc(rel, need);
			if (!p) {
				rc = ldr_fail(v->db, LARDER_ENOMEM, ENOMEM,
					      "out of memory");
				break;
			}
			rel = p;
			relcap = need;
		}
		snprintf(rel, need, "%s%s%s", parent, *parent ? "/" : "", name);
		struct fp f;
		if (fp_stat(dirfd(fr->d), name, AT_SYMLINK_NOFOLLOW, &f) != 0) {
			if (errno == ENOENT)
				continue; /* removed since it was listed */
			int e = errno;
			if ((rc = member_path(v, root, rel)) == 0)
				rc = source_fail(v, e, "stat",
						 (char *)v->path.p);
			break;
		}
		if (S_ISDIR(f.mode) && v->have_store_id &&
		    f.dev == v->store_dev && f.ino == v->store_ino)
			continue; /* the store: it changes as we work */
		if (t->n == t->cap) {
			size_t cap = t->cap ? t->cap * 2 : 64;
			struct member *m = realloc(t->m, cap * sizeof *m);
			if (!m) {
				rc = ldr_fail(v->db, LARDER_ENOMEM, ENOMEM,
					      "out of memory");
				break;
			}
			t->m = m;
			t->cap = cap;
		}
		struct member *m = &t->m[t->n];
		memset(m, 0, sizeof *m);
		m->type = member_type(f.mode);
		m->fp = f;
		if ((rc = pool_add(v, t, rel, strlen(rel), &m->rel)) != 0)
			break;
		t->n++;
		if (m->type == 'l') {
			char target[4096];
			ssize_t n = readlinkat(dirfd(fr->d), name, target,
					       sizeof target);
			if (n < 0 && (errno == ENOENT || errno == EINVAL)) {
				rc = RESTART; /* replaced since its stat */
				break;
			}
			if (n < 0 || (size_t)n == sizeof target) {
				int e = n < 0 ? errno : ENAMETOOLONG;
				if ((rc = member_path(v, root, rel)) == 0)
					rc = source_fail(v, e, "read link",
							 (char *)v->path.p);
				break;
			}
			m->tlen = (size_t)n;
			rc = pool_add(v, t, target, (size_t)n, &m->target);
		} else if (m->type == 'd') {
			size_t at = m->rel;
			if ((rc = member_path(v, root, rel)) != 0)
				break;
			if (depth == MAX_DEPTH) {
				rc = ldr_fail(v->db, LARDER_EINVAL, 0,
					      "'%s' is deeper than %d "
					      "directories below its tree's "
					      "root",
					      (char *)v->path.p, MAX_DEPTH);
				break;
			}
			int dfd = openat(dirfd(fr->d), name,
					 O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
					     O_CLOEXEC);
			if (dfd < 0) {
				if (errno == ENOENT || errno == ELOOP ||
				    errno == ENOTDIR)
					rc = RESTART;
				else
					rc = source_fail(v, errno, "open",
							 (char *)v->path.p);
				break;
			}
			rc = frame_open(v, &st[depth], dfd, (char *)v->path.p);
			st[depth].rel = at;
			depth++;
		}
	}
	while (depth > 0)
		frame_free(&st[--depth]);
	free(rel);
	return rc;
}

/* The hash of what the walk saw: the tree record's key part. */
static void members_hash(const struct tree *t, uint8_t out[16])
{
	struct ldr_hasher st;
	ldr_hasher_reset(&st);
	for (size_t i = 0; i < t->n; i++) {
		const struct member *m = &t->m[i];
		const char *rel = pool_str(t, m->rel);
		ldr_hasher_update(&st, &m->type, 1);
		ldr_hasher_field(&st, rel, strlen(rel));
		if (m->type == 'f') {
			const struct fp *f = &m->fp;
			const uint64_t fields[8] = {
			    f->dev,
			    f->ino,
			    f->size,
			    f->mnt,
			    (uint64_t)f->mtime,
			    (uint64_t)f->ctime,
			    (uint64_t)f->btime,
			    f->mode | (uint64_t)f->trusty << 32};
			for (int j = 0; j < 8; j++)
				ldr_hasher_u64(&st, fields[j]);
		} else if (m->type == 'l') {
			ldr_hasher_field(&st, pool_str(t, m->target), m->tlen);
		}
	}
	ldr_hasher_digest(&st, out);
}

static int tree_key(struct fv *v, const struct tree *t, const char *root)
{
	uint8_t mh[16];
	members_hash(t, mh);
	struct ldr_buf *k = &v->key;
	k->len = 0;
	int rc = add(v, k, TREE_KEY_TAG, 8);
	if (!rc)
		rc = add(v, k, v->boot, 16);
	if (!rc)
		rc = add(v, k, mh, 16);
	if (!rc)
		rc = add64(v, k, t->n);
	if (!rc)
		rc = add(v, k, root, strlen(root));
	return rc;
}

/* One pass over the tree at rootfd (root: its absolute path): its
 * digest. RESTART if the tree changed in a way that needs a new walk. */
static int tree_once(struct fv *v, int rootfd, const char *root,
		     uint8_t out[16])
{
	larder *db = v->db;
	struct tree t;
	memset(&t, 0, sizeof t);
	int rc = walk(v, rootfd, root, &t);
	if (rc)
		goto out;
	int remember = (v->recall || v->keep) && v->have_boot;
	for (size_t i = 0; i < t.n && remember; i++)
		if (t.m[i].type == 'f' && !t.m[i].fp.trusty)
			remember = 0;
	uint8_t rec[TREE_REC_LEN];
	if (remember && (rc = tree_key(v, &t, root)) != 0)
		goto out;
	if (remember && v->recall && recall(v, rec, sizeof rec) == 0) {
		memcpy(out, rec, 16);
		__atomic_fetch_add(&db->ctr[LARDER_CTR_FILES_REMEMBERED],
				   ldr_get64(rec + 16), __ATOMIC_RELAXED);
		goto out;
	}

	struct ldr_hasher st;
	ldr_hasher_reset(&st);
	ldr_hasher_update(&st, "larder-tree-1", 14);
	uint64_t files = 0, bytes = 0;
	int settled = 1;
	for (size_t i = 0; i < t.n; i++) {
		struct member *m = &t.m[i];
		const char *rel = pool_str(&t, m->rel);
		ldr_hasher_update(&st, &m->type, 1);
		ldr_hasher_field(&st, rel, strlen(rel));
		if (m->type == 'l') {
			ldr_hasher_field(&st, pool_str(&t, m->target), m->tlen);
			continue;
		}
		if (m->type != 'f')
			continue;
		if ((rc = member_path(v, root, rel)) != 0)
			goto out;
		struct fp seen = m->fp;
		struct content c;
		rc = file_content(v, rootfd, rel, 1, (char *)v->path.p, &m->fp,
				  &c);
		if (rc)
			goto out;
		/* The record would stand for the walked fingerprints. */
		if (!c.settled || !fp_same(&seen, &m->fp))
			settled = 0;
		uint8_t x = fp_exec(&m->fp), le[8];
		ldr_put64(le, c.size);
		ldr_hasher_update(&st, &x, 1);
		ldr_hasher_update(&st, le, 8);
		ldr_hasher_update(&st, c.hash, 16);
		files++;
		bytes += c.size;
	}
	ldr_hasher_digest(&st, out);
	if (remember && settled && v->keep) {
		/* tree_key() again: file_content() used v->key. The
		 * fingerprints are the walked ones (settled). */
		if ((rc = tree_key(v, &t, root)) != 0)
			goto out;
		larder_writer *w = record_begin(v);
		if (w) {
			memcpy(rec, out, 16);
			ldr_put64(rec + 16, files);
			ldr_put64(rec + 24, bytes);
			record_commit(v, w, rec, sizeof rec);
		}
	}
out:
	free(t.m);
	free(t.pool.p);
	return rc;
}

static int tree_digest(struct fv *v, const char *path, const char *abspath,
		       uint8_t out[16])
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return source_fail(v, errno, "open", abspath);
	if (!v->have_store_id) {
		struct stat st;
		if (fstat(v->db->rootfd, &st) == 0) {
			v->have_store_id = 1;
			v->store_dev = st.st_dev;
			v->store_ino = st.st_ino;
		}
	}
	int rc = RESTART;
	for (unsigned attempt = 0; rc == RESTART; attempt++) {
		if (attempt == MAX_TRIES) {
			rc = ldr_fail(v->db, LARDER_EBUSY, 0,
				      "the tree '%s' changed while it was "
				      "read, %d times in a row",
				      abspath, MAX_TRIES);
			break;
		}
		if (attempt)
			pause_ms(1u << attempt);
		rc = tree_once(v, fd, abspath, out);
	}
	ldr_close(fd);
	return rc;
}

/* ---------------------------------------------------------------------- */

/* The path as given, made absolute with the working directory (no
 * symlink resolved: a name for the key, not a way to the file), into
 * v->path. */
static int absolute(struct fv *v, const char *path)
{
	v->path.len = 0;
	if (path[0] != '/') {
		if (!v->cwd && !(v->cwd = getcwd(NULL, 0)))
			return ldr_fail_errno(
			    v->db, errno,
			    "cannot get the working directory: %s",
			    strerror(errno));
		int rc = add(v, &v->path, v->cwd, strlen(v->cwd));
		if (!rc && strcmp(v->cwd, "/") != 0)
			rc = add(v, &v->path, "/", 1);
		if (rc)
			return rc;
	}
	return add(v, &v->path, path, strlen(path) + 1);
}

static const char *type_name(uint32_t mode)
{
	return S_ISFIFO(mode)	? "a FIFO"
	       : S_ISSOCK(mode) ? "a socket"
	       : S_ISCHR(mode)	? "a character device"
	       : S_ISBLK(mode)	? "a block device"
				: "not a regular file";
}

/* One input's part of the version. */
static int input(struct fv *v, const char *path, struct ldr_hasher *st)
{
	struct fp f;
	if (fp_stat(AT_FDCWD, path, 0, &f) != 0)
		return source_fail(v, errno, "stat", path);
	int rc = absolute(v, path);
	if (rc)
		return rc;
	char *abspath = strdup((char *)v->path.p);
	if (!abspath)
		return ldr_fail(v->db, LARDER_ENOMEM, ENOMEM, "out of memory");
	if (S_ISREG(f.mode)) {
		struct content c;
		rc = file_content(v, AT_FDCWD, path, 0, abspath, &f, &c);
		if (rc == 0) {
			uint8_t rec[26];
			rec[0] = 'f';
			rec[1] = fp_exec(&f);
			ldr_put64(rec + 2, c.size);
			memcpy(rec + 10, c.hash, 16);
			ldr_hasher_update(st, rec, sizeof rec);
		}
	} else if (S_ISDIR(f.mode)) {
		uint8_t rec[17];
		rec[0] = 'd';
		rc = tree_digest(v, path, abspath, rec + 1);
		if (rc == 0)
			ldr_hasher_update(st, rec, sizeof rec);
	} else {
		rc = ldr_fail(v->db, LARDER_EINVAL, 0,
			      "'%s' is %s: only regular files and directories "
			      "have versions",
			      path, type_name(f.mode));
	}
	free(abspath);
	return rc;
}

static int files_version(larder *db, const char *const *paths, size_t n,
			 unsigned flags, char *out)
{
	struct fv v;
	memset(&v, 0, sizeof v);
	v.db = db;
	v.have_boot = ldr_boot_id(v.boot) == 0;
	/* Fingerprints mean something only inside this boot of this host:
	 * without its id, nothing is remembered. */
	v.recall = v.keep = !(flags & LARDER_FILES_NO_REMEMBER);
	if (v.keep && !v.have_boot) {
		ldr_fail(db, LARDER_EIO, 0,
			 "no boot id in /proc/sys/kernel/random/boot_id");
		cannot_keep(&v);
		v.recall = 0;
	}
	struct ldr_hasher st;
	ldr_hasher_reset(&st);
	ldr_hasher_update(&st, "larder-files-1", 15);
	int rc = 0;
	for (size_t i = 0; i < n && rc == 0; i++)
		rc = input(&v, paths[i], &st);
	if (rc == 0) {
		uint8_t h[16];
		ldr_hasher_digest(&st, h);
		memcpy(out, "files/1 ", 8);
		ldr_hex(h, 16, out + 8);
		/* Lookups that missed are no failure of this call. */
		ldr_clear_error(db);
	}
	free(v.chunk);
	free(v.cwd);
	free(v.key.p);
	free(v.path.p);
	return rc;
}

/* How long a source that keeps giving ESTALE is retried: on a network
 * filesystem a name another client just renamed over stays stale for this
 * client for up to about a second (measured on GlusterFS). */
#define ESTALE_RETRY_MS 3000

int larder_files_version(char out[LARDER_FILES_VERSION_LEN + 1], larder *db,
			 const char *const *paths, size_t n, unsigned flags)
{
	if (out)
		out[0] = '\0';
	if (!db || !out || !paths || n == 0 ||
	    (flags & ~LARDER_FILES_NO_REMEMBER))
		return ldr_fail(db, LARDER_EINVAL, 0,
				"larder_files_version needs a store, at least "
				"one path and known flags");
	for (size_t i = 0; i < n; i++)
		if (!paths[i] || !*paths[i])
			return ldr_fail(db, LARDER_EINVAL, 0,
					"input %zu is an empty path", i + 1);
	/* A stale handle is the network filesystem catching up with another
	 * client's rename: the whole computation starts again (a version
	 * is all of one moment or nothing), bounded in time. */
	long slept = 0, pause = 10;
	for (;;) {
		int rc = files_version(db, paths, n, flags, out);
		if (rc != LARDER_ESTALE || slept >= ESTALE_RETRY_MS)
			return rc;
		ldr_count(db, LARDER_CTR_ESTALE_RETRIES);
		struct timespec ts = {0, pause * 1000000L};
		while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
			;
		slept += pause;
		pause = pause * 2 > 200 ? 200 : pause * 2;
	}
}
