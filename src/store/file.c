/*
 * file.c — loads an entry or head file with bounded memory (read whole,
 * mapped when only trusted hands can change it, or only its header), runs
 * a payload's flow (hash, zstd, sink), and judges an entry file against
 * what was asked (ldr_entry_check). Used by the read path, publish, head
 * hints and the walk (file.h).
 */
#include "file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zstd_errors.h>

#include "bytes.h"
#include "clock.h"
#include "fsutil.h"
#include "hash.h"

/* Whether only trusted hands can change the file's bytes: its owner is
 * this user, root or the store's owner, and neither group nor others have
 * a write bit (with POSIX ACLs the group bits are the mask, so a named
 * user's write access shows there too). Anyone else who owns a file can
 * chmod it and write into it while a mapping of it is in use. The
 * store's owner is tried first: in most stores it owns every entry, and
 * geteuid() is a syscall. */
static int safe_file(const larder *db, const struct stat *st)
{
	if (st->st_mode & (S_IWGRP | S_IWOTH))
		return 0;
	return st->st_uid == db->owner || st->st_uid == 0 ||
	       st->st_uid == geteuid();
}

/* The reason a non-regular file at an entry's name is not an entry. */
static const char *not_a_file_why(unsigned type)
{
	switch (type) {
	case S_IFIFO:
		return "a FIFO, not a regular file";
	case S_IFDIR:
		return "a directory, not a regular file";
	case S_IFLNK:
		return "a symbolic link, not a regular file";
	case S_IFSOCK:
		return "a socket, not a regular file";
	case S_IFCHR:
	case S_IFBLK:
		return "a device, not a regular file";
	default:
		return "not a regular file";
	}
}

/* Opening rel failed with errno: if what is there is not a regular file
 * (a symlink, never followed; a socket; a FIFO or directory we may not
 * open), describe it with ftype, which the check calls corrupt, so that it
 * is quarantined and a refill can take its place. The parent is opened
 * without following symlinks, so nothing outside the store is ever looked
 * at. A regular file keeps the open's error. */
static int not_a_file(larder *db, const char *rel, struct ldr_file *f)
{
	int e = errno;
	const char *base;
	int dfd = ldr_open_parent(db, rel, &base);
	if (dfd < 0)
		return -1;
	struct stat st;
	int rc = fstatat(dfd, base, &st, AT_SYMLINK_NOFOLLOW);
	int se = errno;
	ldr_close(dfd);
	if (rc != 0) {
		errno = se;
		return -1;
	}
	if (S_ISREG(st.st_mode)) {
		errno = e;
		return -1;
	}
	f->ftype = (unsigned)(st.st_mode & S_IFMT);
	f->have_ident = 1;
	f->dev = st.st_dev;
	f->ino = st.st_ino;
	return 0;
}

/* Whether a file of `size` bytes, whose first bytes are in `head`, holds
 * a payload big enough to map: the threshold is about payloads, so look at
 * the header's stored length. */
static int worth_mapping(larder *db, const uint8_t *head, size_t n, size_t size)
{
	if (size < db->mmap_threshold)
		return 0;
	/* On a network filesystem a mapping can fault (SIGBUS) once another
	 * client removes the file: its pages may be dropped and there is
	 * nothing left to read them back from. A copy cannot. */
	if (db->network && !(db->flags & LARDER_OPEN_MAP_NETWORK))
		return 0;
	if (n < LDR_HDR_FIXED)
		return 1; /* let the header check judge the whole file */
	uint64_t stored = 0;
	for (int i = 7; i >= 0; i--)
		stored = stored << 8 | head[40 + i];
	return stored >= db->mmap_threshold || stored > size;
}

/* The file length the header at the start of buf claims, or 0 if there
 * is no plausible header of this format there. */
static uint64_t declared_len(const uint8_t *buf, size_t n)
{
	uint32_t need;
	if (ldr_hdr_need(buf, n, &need) != 0)
		return 0;
	uint64_t stored = ldr_get64(buf + 40);
	return stored > UINT64_MAX - need ? 0 : need + stored;
}

/* A first read this big usually holds the whole file of a small entry,
 * so a hit needs no fstat (a syscall costs over 1 µs on some machines). */
#define LDR_FIRST_READ (16u << 10)
/* Files up to this size are verified even by a handle that trusts safe
 * files (ldr_file_load): hashing them costs less than the fstat that
 * would tell whether they are safe. */
#define LDR_TRUST_HASH_MAX (8u << 10)

/* The largest window (log2) a zstd frame may ask of a stream: 27, zstd's
 * own ZSTD_WINDOWLOG_LIMIT_DEFAULT. Said here rather than taken from
 * zstd.h, where it sits in the part reserved for static linking. */
#define LDR_ZSTD_WINDOW_LOG 27

/* ---- Map or read ------------------------------------------------------
 * A verified payload above the map threshold can be mapped (no copy; the
 * checksum's walk faults its pages in), mapped with MAP_POPULATE (the
 * kernel maps every page up front, one call instead of a fault per
 * batch) or read into the heap (one pread copies it; the checksum then
 * runs over memory). Which is cheapest depends on the machine, not the
 * code: where page faults are cheap, mapping 1 MiB and walking it took
 * half the time of reading it; on VMs where a fault costs ten times
 * more, mapping was 10x slower than a copy (docs/performance.md, "Map
 * or read"). So a handle measures: per size class (powers of two), the
 * first LDR_LEARN loads of each way are timed from the decision to the
 * verified payload, and from then on the cheapest way is used, the
 * others tried again, in turn, one load in LDR_RELEARN so that a change
 * in the machine's load is followed. Two clock reads per load of at
 * least 64 KiB cost nothing measurable. A payload over LDR_READ_MAX is
 * never read: no heap copy of a large payload, whatever was measured;
 * it is mapped, populated or not. */
#define LDR_READ_MAX (8u << 20)
#define LDR_LEARN 4
#define LDR_RELEARN 64
enum { LDR_VIA_MAP = 1, LDR_VIA_READ = 2, LDR_VIA_POPULATE = 3 };

static int load_class(uint64_t size)
{
	int c = 0;
	while (c < LDR_LOAD_CLASSES - 1 && size >= ((uint64_t)128 << 10) << c)
		c++;
	return c;
}

/* How to load a safe, verified payload worth mapping: LDR_VIA_*, read
 * only if can_read. */
static int choose_via(larder *db, uint64_t size, int can_read)
{
	if (db->load_force)
		return db->load_force == LDR_VIA_READ && !can_read
			   ? LDR_VIA_MAP
			   : db->load_force;
	static const int ways[] = {LDR_VIA_MAP, LDR_VIA_POPULATE, LDR_VIA_READ};
	int n = can_read ? 3 : 2, c = load_class(size), best = LDR_VIA_MAP;
	uint64_t best_ns = UINT64_MAX;
	for (int i = 0; i < n; i++) {
		int k = ways[i] - 1;
		if (__atomic_load_n(&db->load_n[k][c], __ATOMIC_RELAXED) <
		    LDR_LEARN)
			return ways[i];
		uint64_t t =
		    __atomic_load_n(&db->load_ns[k][c], __ATOMIC_RELAXED);
		if (t < best_ns) {
			best_ns = t;
			best = ways[i];
		}
	}
	uint32_t tick = __atomic_fetch_add(&db->load_tick, 1, __ATOMIC_RELAXED);
	if (tick % LDR_RELEARN == LDR_RELEARN - 1)
		return ways[tick / LDR_RELEARN % (unsigned)n];
	return best;
}

void ldr_file_learn(larder *db, struct ldr_file *f)
{
	if (!f->via || db->load_force)
		return;
	int64_t d = ldr_mono_ns() - f->t0;
	int k = f->via - 1, c = load_class(f->size);
	f->via = 0;
	if (!f->t0 || d <= 0)
		return;
	/* The least of the first LDR_LEARN loads (the first of each kind
	 * may be cold: 4x the others, measured), then a moving average (1/4
	 * to the newest) of loads counted at most twice the average: a
	 * preempted load moves it little, and a lasting change wins in a
	 * few loads. */
	uint64_t old = __atomic_load_n(&db->load_ns[k][c], __ATOMIC_RELAXED);
	uint32_t n = __atomic_load_n(&db->load_n[k][c], __ATOMIC_RELAXED);
	uint64_t t = (uint64_t)d, now;
	if (n < LDR_LEARN || !old)
		now = old && old < t ? old : t;
	else
		now = old - old / 4 + (t < 2 * old ? t : 2 * old) / 4;
	__atomic_store_n(&db->load_ns[k][c], now, __ATOMIC_RELAXED);
	__atomic_fetch_add(&db->load_n[k][c], 1, __ATOMIC_RELAXED);
}

void ldr_file_set_cost(larder *db, uint64_t size, uint64_t map_ns,
		       uint64_t read_ns, uint64_t populate_ns)
{
	int c = load_class(size);
	db->load_ns[LDR_VIA_MAP - 1][c] = map_ns;
	db->load_ns[LDR_VIA_READ - 1][c] = read_ns;
	db->load_ns[LDR_VIA_POPULATE - 1][c] = populate_ns;
	for (int k = 0; k < LDR_LOAD_WAYS; k++)
		db->load_n[k][c] = LDR_LEARN;
	db->load_tick = 0;
}

int ldr_file_scan(larder *db, const char *rel, struct ldr_file *f, int noatime)
{
	return ldr_file_load(db, rel, f, noatime, LDR_LOAD_SCAN, 0);
}

/* Read the header of a large file whose first n bytes are in *buf (of
 * size >= n): the rest of it too when it claims more, up to the file's
 * size. The payload stays on disk. */
static int load_header(int fd, uint8_t **buf, ssize_t *n, uint64_t size)
{
	uint32_t need;
	int rc = ldr_hdr_need(*buf, (size_t)*n, &need);
	if ((rc != 0 && rc != LARDER_EVERSION) || need <= (size_t)*n ||
	    need > size)
		return 0; /* the header check judges what is there */
	uint8_t *b = realloc(*buf, need);
	if (!b) {
		errno = ENOMEM;
		return -1;
	}
	*buf = b;
	*n = ldr_pread_full(fd, b, need, 0);
	return *n < 0 ? -1 : 0;
}

/* ---- Reused buffers ---------------------------------------------------
 * A small entry's hit reads its file into one allocation of the caller's
 * prefix and LDR_FIRST_READ bytes. Allocating that (past the sizes glibc
 * keeps per thread), shrinking it to the file's size and freeing it
 * cost a 4 KiB hit about as much as the rest of its own work bar the
 * checksum (docs/performance.md, "Where a 4 KiB hit's time goes"). So a
 * handle makes up to LDR_BUFS_MAX buffers of one size: a hit takes a
 * spare one (or makes one, within the bound), the entry holds it
 * unshrunk (~12 KiB more than a 4 KiB file), and its release puts it
 * back for the next hit. Past the bound a hit allocates and shrinks as
 * before, so an application holding thousands of small entries holds
 * no more than their bytes. A hit and a release each make one locked
 * operation (where it made three allocator calls); threads share a handle,
 * and a forked child has its own copy of it all.
 *
 * Entries outlive their handle (larder.h): every buffer made counts as
 * a reference, and the structure goes with the last one. At close each
 * spare slot is exchanged for a mark (the structure's own address,
 * never a buffer's) and what was there freed; a release puts its buffer
 * only into an empty slot, with one compare-and-swap, so after close it
 * finds none and frees the buffer. It never touches the structure again
 * after the swap: the buffer it put there may already be freed by close,
 * and the structure with it.
 *
 * Under AddressSanitizer nothing is reused, so that it still sees a use
 * after release. */
#define LDR_BUFS_MAX 16
#define LDR_BUFS_SPARE 4
#define LDR_BUFS_SIZE (LDR_BUFS_PRE + LDR_FIRST_READ)
#if defined(__SANITIZE_ADDRESS__)
#define LDR_BUFS_ON 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define LDR_BUFS_ON 0
#endif
#endif
#ifndef LDR_BUFS_ON
#define LDR_BUFS_ON 1
#endif

struct ldr_bufs {
	/* NULL empty, a buffer, or the structure's address once closed */
	void *spare[LDR_BUFS_SPARE];
	unsigned refs; /* the handle's, and one a buffer made */
};

void ldr_bufs_open(larder *db)
{
	db->bufs = LDR_BUFS_ON ? calloc(1, sizeof *db->bufs) : NULL;
	if (db->bufs)
		db->bufs->refs = 1;
}

static void bufs_unref(struct ldr_bufs *b)
{
	if (__atomic_sub_fetch(&b->refs, 1, __ATOMIC_ACQ_REL) == 0)
		free(b);
}

void ldr_bufs_close(larder *db)
{
	struct ldr_bufs *b = db->bufs;
	if (!b)
		return;
	db->bufs = NULL;
	for (int i = 0; i < LDR_BUFS_SPARE; i++) {
		void *p = __atomic_exchange_n(&b->spare[i], (void *)b,
					      __ATOMIC_ACQ_REL);
		if (p) {
			free(p);
			bufs_unref(b);
		}
	}
	bufs_unref(b);
}

int ldr_bufs_made(const larder *db)
{
	return db->bufs
		   ? (int)__atomic_load_n(&db->bufs->refs, __ATOMIC_RELAXED) - 1
		   : -1;
}

/* A buffer of LDR_BUFS_SIZE bytes (a reference of b's), or NULL if all
 * that may be made are lent (or out of memory). */
static void *bufs_take(struct ldr_bufs *b)
{
	for (int i = 0; i < LDR_BUFS_SPARE; i++) {
		/* A plain look first: an empty slot costs no locked op. */
		if (!__atomic_load_n(&b->spare[i], __ATOMIC_RELAXED))
			continue;
		void *p =
		    __atomic_exchange_n(&b->spare[i], NULL, __ATOMIC_ACQUIRE);
		if (p)
			return p;
	}
	if (__atomic_load_n(&b->refs, __ATOMIC_RELAXED) > LDR_BUFS_MAX)
		return NULL;
	if (__atomic_add_fetch(&b->refs, 1, __ATOMIC_RELAXED) >
	    LDR_BUFS_MAX + 1) {
		bufs_unref(b);
		return NULL;
	}
	void *p = malloc(LDR_BUFS_SIZE);
	if (!p)
		bufs_unref(b);
	return p;
}

void ldr_file_free_alloc(const struct ldr_file *f)
{
	struct ldr_bufs *b = f->bufs;
	void *p = f->p - f->pre;
	if (!b) {
		free(p);
		return;
	}
	for (int i = 0; i < LDR_BUFS_SPARE; i++) {
		void *none = NULL;
		if (!__atomic_load_n(&b->spare[i], __ATOMIC_RELAXED) &&
		    __atomic_compare_exchange_n(&b->spare[i], &none, p, 0,
						__ATOMIC_RELEASE,
						__ATOMIC_RELAXED))
			return; /* back for the next hit (b is not ours now) */
	}
	free(p); /* no empty slot: more lent than hit, or closed */
	bufs_unref(b);
}

static int file_load_at(larder *db, int dirfd, const char *rel,
			struct ldr_file *f, int noatime, int how, size_t pre);

int ldr_file_load_fd(larder *db, int fd, struct ldr_file *f, int how)
{
	return file_load_at(db, fd, NULL, f, 0, how, 0);
}

int ldr_file_load(larder *db, const char *rel, struct ldr_file *f, int noatime,
		  int how, size_t pre)
{
	return file_load_at(db, db->rootfd, rel, f, noatime, how, pre);
}

/* ldr_file_load, rel beneath dirfd. Beneath another directory than the
 * root, a file that cannot be opened is -1 with errno and nothing more:
 * the caller looks again from the root, which judges what is there. With
 * rel NULL, dirfd is the file itself, open (ldr_file_load_fd): one
 * function rather than two, so that a hit's load stays one call. */
static int file_load_at(larder *db, int dirfd, const char *rel,
			struct ldr_file *f, int noatime, int how, size_t pre)
{
	/* Field by field: gcc zeroes a struct this size with `rep stos`,
	 * whose start-up cost a hit ~1% of its user time (perf annotate).
	 * A field added to struct ldr_file is set here too. */
	_Static_assert(sizeof(void *) != 8 || sizeof *f == 96,
		       "every field of struct ldr_file is set below");
	f->p = NULL;
	f->pre = 0;
	f->len = 0;
	f->size = 0;
	f->mapped = 0;
	f->partial = 0;
	f->safe = 0;
	f->ftype = 0;
	f->fd = -1;
	f->via = 0;
	f->t0 = 0;
	f->have_ident = 0;
	f->dev = 0;
	f->ino = 0;
	f->bufs = NULL;
	/* O_NONBLOCK: a FIFO planted at an entry path must not hang the
	 * reader (it has no effect on regular files); O_NOCTTY: nor may a
	 * terminal become ours. O_NOATIME needs the file's owner (or
	 * CAP_FOWNER): without it, open as anyone may. */
	const int fl = O_RDONLY | O_NONBLOCK | O_NOCTTY;
	int fd = dirfd;
	if (rel)
		fd = ldr_open_beneath(dirfd, rel,
				      fl | (noatime ? O_NOATIME : 0), 0);
	if (fd < 0 && noatime && errno == EPERM)
		fd = ldr_open_beneath(dirfd, rel, fl, 0);
	if (fd < 0 && dirfd != db->rootfd)
		return -1;
	if (fd < 0)
		return errno == ENOENT || errno == ESTALE
			   ? -1
			   : not_a_file(db, rel, f);
	f->fd = fd;
	size_t first = LDR_FIRST_READ < db->mmap_threshold ? LDR_FIRST_READ
							   : db->mmap_threshold;
	/* One pread, not a loop to EOF: a second syscall to see EOF would
	 * cost a small hit a third of its time. The header says how long
	 * the file must be; if the bytes read are exactly that, they are
	 * the whole file. Anything else takes the careful path below, and
	 * so does a handle that trusts safe files unverified, for a file
	 * over LDR_TRUST_HASH_MAX: it needs to know who could have changed
	 * this one. A smaller one is cheaper to hash than to ask about: the
	 * fstat (and the copy the careful path makes) cost a 4 KiB hit
	 * ~0.3 us, its checksum ~0.1 us (docs/performance.md), so it is left
	 * unsafe here, and verified as any handle verifies it.
	 *
	 * The read lands after the caller's prefix (the entry handle, for
	 * larder_get) in one buffer, copied nowhere: one the handle lends
	 * (see "Reused buffers"), or, past those, an allocation that a
	 * small file then shrinks in place to its exact size. (Reading onto
	 * the stack and copying cost a 4 KiB hit ~0.05 us more.) */
	struct ldr_bufs *bufs =
	    first == LDR_FIRST_READ && pre && pre <= LDR_BUFS_PRE ? db->bufs
								  : NULL;
	uint8_t *buf = bufs ? bufs_take(bufs) : NULL;
	if (!buf) {
		bufs = NULL;
		buf = malloc(pre + first);
	}
	if (!buf)
		goto nomem;
	ssize_t n;
	do
		n = pread(fd, buf + pre, first, 0);
	while (n < 0 && errno == EINTR);
	int rerr = errno;
	if (n > 0 && (size_t)n < first &&
	    (uint64_t)n == declared_len(buf + pre, (size_t)n) &&
	    (how >= LDR_LOAD_SCAN /* or LDR_LOAD_HEADER */ ||
	     !(db->flags & LARDER_OPEN_TRUST_LOCAL) ||
	     (size_t)n <= LDR_TRUST_HASH_MAX)) {
		if (bufs) {
			f->bufs = bufs; /* kept whole, to go back */
		} else {
			/* Shrinking never moves or fails in glibc; if it
			 * did, the larger block still holds the bytes. */
			uint8_t *b = realloc(buf, pre + (size_t)n);
			if (b)
				buf = b;
		}
		f->p = buf + pre;
		f->pre = pre;
		f->len = (size_t)n;
		f->size = (uint64_t)n;
		return 0;
	}
	if (bufs)
		bufs_unref(bufs); /* not a small entry's: freed as any */
	/* The careful path keeps the first read's bytes at the start of
	 * buf: all of the file, or the start that the rest joins. */
	if (pre && n > 0)
		memmove(buf, buf + pre, (size_t)n);
	struct stat st;
	if (fstat(fd, &st) != 0)
		goto fail;
	f->have_ident = 1;
	f->dev = st.st_dev;
	f->ino = st.st_ino;
	if (!S_ISREG(st.st_mode)) {
		/* A FIFO (pread: ESPIPE), a directory (EISDIR), a device:
		 * not an entry, whatever it reads as. */
		free(buf);
		f->ftype = (unsigned)(st.st_mode & S_IFMT);
		return 0;
	}
	if (n < 0) {
		errno = rerr;
		goto fail;
	}
	f->safe = safe_file(db, &st);
	size_t size = (size_t)st.st_size;
	if ((uint64_t)n == (uint64_t)st.st_size && n > 0) {
		uint8_t *b = realloc(buf, (size_t)n);
		if (b)
			buf = b;
	}
	if ((uint64_t)n == (uint64_t)st.st_size) {
		f->p = buf; /* the first read had it all */
		f->len = (size_t)n;
		f->size = (uint64_t)n;
		return 0;
	}
	/* Only a verified whole load is timed: a trusted one (no checksum)
	 * would time the mapping without its faults, which its reader pays
	 * later, and a stream never holds a heap copy. */
	int via = how != LDR_LOAD_SCAN && how != LDR_LOAD_HEADER && f->safe &&
			  worth_mapping(db, buf, (size_t)n, size)
		      ? LDR_VIA_MAP
		      : 0;
	if (via && how == LDR_LOAD_WHOLE &&
	    !(db->flags & LARDER_OPEN_TRUST_LOCAL)) {
		f->t0 = ldr_mono_ns();
		f->via = via = choose_via(db, size,
					  size <= LDR_READ_MAX &&
					      size <= db->max_in_memory);
	}
	if (via == LDR_VIA_MAP || via == LDR_VIA_POPULATE) {
		free(buf);
		buf = NULL;
		void *p = mmap(NULL, size, PROT_READ,
			       MAP_SHARED |
				   (via == LDR_VIA_POPULATE ? MAP_POPULATE : 0),
			       fd, 0);
		if (p == MAP_FAILED)
			goto fail;
		f->p = p;
		f->len = size;
		f->size = size;
		f->mapped = 1;
		return 0;
	}
	if (how == LDR_LOAD_HEADER ||
	    (how != LDR_LOAD_WHOLE &&
	     size > (db->mmap_threshold > LDR_CHUNK ? db->mmap_threshold
						    : LDR_CHUNK))) {
		/* Too big to hold for a look or a stream (or only its header
		 * was asked for): the payload is read in chunks, or loaded,
		 * when it is needed. */
		if (load_header(fd, &buf, &n, size) != 0)
			goto fail;
		f->p = buf;
		f->len = (size_t)n;
		f->size = size;
		f->partial = 1;
		return 0;
	}
	if (how == LDR_LOAD_WHOLE && size > db->max_in_memory) {
		/* A copy as big as whoever made the file chose (a sparse file
		 * costs them no disk): refused before allocating. */
		free(buf);
		ldr_close(fd);
		f->fd = -1;
		f->size = size;
		errno = EFBIG;
		return -1;
	}
	uint8_t *b = realloc(buf, size ? size : 1);
	if (!b)
		goto nomem;
	buf = b;
	/* Only the rest: the first read's bytes are already at buf (a
	 * file that shrank since is read again from the start). */
	size_t have = n > 0 && (size_t)n < size ? (size_t)n : 0;
	n = ldr_pread_full(fd, buf + have, size - have, (off_t)have);
	if (n < 0)
		goto fail; /* short: the header check catches it */
	f->p = buf;
	f->len = have + (size_t)n;
	f->size = f->len;
	return 0;
nomem:
	errno = ENOMEM;
fail:;
	int e = errno;
	free(buf);
	ldr_close(fd);
	f->fd = -1;
	errno = e;
	return -1;
}

void ldr_file_ident(struct ldr_file *f)
{
	struct stat st;
	if (f->have_ident || f->fd < 0 || fstat(f->fd, &st) != 0)
		return;
	f->have_ident = 1;
	f->dev = st.st_dev;
	f->ino = st.st_ino;
}

void ldr_file_drop_fd(struct ldr_file *f)
{
	if (f->fd >= 0)
		ldr_close(f->fd);
	f->fd = -1;
}

void ldr_file_free(struct ldr_file *f)
{
	ldr_file_drop_fd(f);
	if (!f->p)
		return;
	if (f->mapped)
		munmap(f->p, f->len);
	else
		ldr_file_free_alloc(f);
	f->p = NULL;
	f->pre = 0;
	f->bufs = NULL;
}

/* ---------------------------------------------------------------------- */
/* A payload's flow: its stored bytes, as they are read, are hashed (to be
 * checked against the header), decompressed (zstd) with bounded memory,
 * and handed to a sink, or only checked.                                  */

void ldr_flow_free(struct ldr_flow *fl)
{
	if (fl->st)
		ldr_hasher_free(fl->st);
	ZSTD_freeDCtx(fl->z);
	free(fl->zbuf);
}

int ldr_flow_begin(struct ldr_flow *fl, const ldr_hdr *h, int hash, int unzstd,
		   larder_sink_fn sink, void *payload)
{
	memset(fl, 0, sizeof *fl);
	fl->h = h;
	fl->sink = sink;
	fl->payload = payload;
	if (hash) {
		if (!(fl->st = ldr_hasher_new()))
			return LARDER_ENOMEM;
		ldr_hasher_reset(fl->st);
	}
	if (unzstd && h->codec == LDR_CODEC_ZSTD) {
		fl->z = ZSTD_createDCtx();
		fl->zcap = ZSTD_DStreamOutSize();
		fl->zbuf = malloc(fl->zcap);
		if (!fl->z || !fl->zbuf)
			return LARDER_ENOMEM;
		/* The window a frame may ask for is what memory it costs:
		 * zstd's own default limit (128 MiB), said here so that it
		 * stays the documented bound (larder.h, larder_get_stream). */
		if (ZSTD_isError(ZSTD_DCtx_setParameter(
			fl->z, ZSTD_d_windowLogMax, LDR_ZSTD_WINDOW_LOG)))
			return LARDER_ENOMEM;
	}
	return 0;
}

/* The bytes to hand on, never more than the header's raw length. */
static int flow_give(struct ldr_flow *fl, const void *p, size_t n)
{
	if (n == 0)
		return 0;
	uint64_t want = fl->z ? fl->h->raw_len : fl->h->stored_len;
	if (n > want - fl->out) {
		fl->why = "zstd payload decompresses to more than its header "
			  "says";
		return LARDER_ECORRUPT;
	}
	fl->out += n;
	if (fl->sink) {
		fl->sink_mark = ldr_err_mark();
		if ((fl->sink_rc = fl->sink(p, n, fl->payload)) != 0)
			return LDR_FLOW_SINK;
	}
	return 0;
}

int ldr_flow_feed(struct ldr_flow *fl, const uint8_t *p, size_t n)
{
	if (fl->st && n)
		ldr_hasher_update(fl->st, p, n);
	if (!fl->z)
		return flow_give(fl, p, n);
	if (n && fl->frame_done) {
		fl->why = "data after the zstd frame";
		return LARDER_ECORRUPT;
	}
	ZSTD_inBuffer in = {p, n, 0};
	ZSTD_outBuffer o;
	do {
		o.dst = fl->zbuf;
		o.size = fl->zcap;
		o.pos = 0;
		size_t r = ZSTD_decompressStream(fl->z, &o, &in);
		if (ZSTD_isError(r)) {
			if (ZSTD_getErrorCode(r) ==
			    ZSTD_error_memory_allocation)
				return LARDER_ENOMEM;
			fl->why = "zstd payload does not decompress";
			return LARDER_ECORRUPT;
		}
		int rc = flow_give(fl, fl->zbuf, o.pos);
		if (rc)
			return rc;
		if (r == 0) {
			fl->frame_done = 1;
			if (in.pos < in.size) {
				fl->why = "data after the zstd frame";
				return LARDER_ECORRUPT;
			}
			return 0;
		}
		/* A full output buffer may hide more output: go on until
		 * the input is used and the decoder has nothing left. */
	} while (in.pos < in.size || o.pos == o.size);
	return 0;
}

int ldr_flow_end(struct ldr_flow *fl)
{
	if (fl->z && !fl->frame_done) {
		fl->why = "zstd frame cut short";
		return LARDER_ECORRUPT;
	}
	if (fl->out != (fl->z ? fl->h->raw_len : fl->h->stored_len)) {
		fl->why = fl->z ? "zstd payload decompresses to less than "
				  "its header says"
				: "payload shorter than its header says";
		return LARDER_ECORRUPT;
	}
	if (fl->st) {
		uint8_t sum[16];
		ldr_hasher_digest(fl->st, sum);
		if (memcmp(sum, fl->h->payload_hash, 16) != 0) {
			fl->why = "payload checksum mismatch";
			return LARDER_ECORRUPT;
		}
	}
	return 0;
}

/* Feed the stored payload of a partial file to fl, read from its fd in
 * chunks. The file was fstat'ed at its full length: a short read means it
 * changed under us, which a published entry never does. Returns as flow_*
 * do, or a negative code (recorded) when it cannot be read. */
int ldr_feed_from_file(larder *db, const struct ldr_file *f, const char *rel,
		       struct ldr_flow *fl)
{
	const ldr_hdr *h = fl->h;
	size_t cap =
	    h->stored_len < LDR_CHUNK ? (size_t)h->stored_len : LDR_CHUNK;
	uint8_t *buf = malloc(cap ? cap : 1);
	if (!buf)
		return ldr_fail(db, LARDER_ENOMEM, ENOMEM, "out of memory");
	uint64_t off = h->hdr_len, left = h->stored_len;
	int rc = 0;
	while (left && rc == 0) {
		size_t want = left < cap ? (size_t)left : cap;
		ssize_t n = ldr_pread_full(f->fd, buf, want, (off_t)off);
		if (n < 0) {
			rc =
			    ldr_fail_errno(db, errno, "cannot read '%s/%s': %s",
					   db->dir, rel, strerror(errno));
			break;
		}
		if ((size_t)n < want) {
			fl->why = "file changed while it was read (shorter)";
			rc = LARDER_ECORRUPT;
			break;
		}
		rc = ldr_flow_feed(fl, buf, want);
		off += want;
		left -= want;
	}
	free(buf);
	return rc;
}

/* The payload checks of ldr_entry_check: LARDER_ECORRUPT (*why), 0, or a
 * negative code (recorded) when it cannot be read. */
static int payload_check(larder *db, const struct ldr_file *f, const char *rel,
			 const ldr_hdr *h, unsigned check, const char **why)
{
	int unzstd = (check & LDR_CHECK_ZSTD) && h->codec == LDR_CODEC_ZSTD;
	if (!f->partial) {
		if ((check & LDR_CHECK_HASH) &&
		    ldr_payload_verify(h, f->p + h->hdr_len) != 0) {
			*why = "payload checksum mismatch";
			return LARDER_ECORRUPT;
		}
		if (!unzstd)
			return 0;
	}
	struct ldr_flow fl;
	int rc = ldr_flow_begin(&fl, h, f->partial && (check & LDR_CHECK_HASH),
				unzstd, NULL, NULL);
	if (rc == 0)
		rc = f->partial ? ldr_feed_from_file(db, f, rel, &fl)
				: ldr_flow_feed(&fl, f->p + h->hdr_len,
						(size_t)h->stored_len);
	if (rc == 0)
		rc = ldr_flow_end(&fl);
	if (rc == LARDER_ECORRUPT)
		*why = fl.why;
	else if (rc == LARDER_ENOMEM)
		rc = ldr_fail(db, rc, ENOMEM, "out of memory");
	ldr_flow_free(&fl);
	return rc;
}

static int same(const void *a, size_t alen, const void *b, size_t blen)
{
	return alen == blen && (alen == 0 || memcmp(a, b, alen) == 0);
}

int ldr_entry_check(larder *db, const struct ldr_file *f, const char *rel,
		    const char *ns, const void *key, size_t klen,
		    const void *ver, size_t vlen, unsigned check, ldr_hdr *h,
		    const char **why)
{
	*why = NULL;
	if (f->ftype) {
		memset(h, 0, sizeof *h);
		*why = not_a_file_why(f->ftype);
		return LARDER_STATE_CORRUPT;
	}
	/* (It zeroes h first: once is enough on every hit.) */
	int rc = ldr_hdr_decode(h, f->p, f->len, why);
	if (rc)
		h->hdr_len = 0;
	if (rc == LARDER_EVERSION)
		return LARDER_STATE_NEWER;
	if (rc)
		return LARDER_STATE_CORRUPT;
	if (f->size - h->hdr_len != h->stored_len) {
		*why = f->size - h->hdr_len < h->stored_len
			   ? "file shorter than its header says (truncated)"
			   : "file longer than its header says";
		return LARDER_STATE_CORRUPT;
	}
	if (!same(h->ns, h->ns_len, ns, strlen(ns)) ||
	    (key && !same(h->key, h->key_len, key, klen)) ||
	    (ver && !same(h->ver, h->ver_len, ver, vlen))) {
		*why = "header names another key, version or namespace";
		return LARDER_STATE_MISPLACED;
	}
	if (check) {
		rc = payload_check(db, f, rel, h, check, why);
		if (rc == LARDER_ECORRUPT)
			return LARDER_STATE_CORRUPT;
		if (rc)
			return rc;
	}
	if (h->expires && ldr_now_ns() >= h->expires) {
		*why = "expired";
		return LARDER_STATE_EXPIRED;
	}
	return LARDER_STATE_OK;
}

/* The entry directories (struct ldr_edir), and the heads' ("ns/<ns>/h",
 * the same way). An entry's path is
 * "ns/<ns>/e/xx/yy/<32 hex>": opened from the root, the kernel walks six
 * components, which cost a 4 KiB hit ~0.1 us more than the last three
 * from "ns/<ns>/e" held open (docs/performance.md). What keeps this as
 * safe as the walk from the root (docs/security.md):
 *  - only in a store whose directories nobody but its owner can write
 *    (a private store): a held descriptor follows its directory wherever
 *    it is moved, and in a group or shared store a member could move one
 *    out of the store, which larder must never read from. In those
 *    stores every open walks from the root, as before;
 *  - the directory is opened beneath the root as every path is (no
 *    symlink followed), and the rest of the path beneath it the same way;
 *  - a file not found beneath it is looked for from the root before it
 *    is a miss: a namespace removed and made again behind the held
 *    directory (which then holds nothing: a directory is removed empty)
 *    never hides an entry, and a symlink planted in its place is refused
 *    by the walk from the root. A slot whose directory misses what the
 *    root has is retired;
 *  - once a second at most, the held directory is compared with what
 *    "ns/<ns>/e" opens from the root now (dev, inode), and retired if
 *    they differ: a directory moved away, or replaced by something the
 *    walk refuses, stops serving within a second;
 *  - a slot is filled once and never reused, and its fd is closed only
 *    by larder_close: a thread that found it ready may use it however
 *    long its open takes. A retired namespace takes a new slot; with all
 *    LDR_EDIRS slots taken, hits walk from the root as before. A forked
 *    child inherits the directories (O_CLOEXEC, not closed at fork) and
 *    the same checks. */
#define EDIR_TAIL 38	     /* "xx/yy/" and 32 hex digits */
#define EDIR_RECHECK_MS 1000 /* see above */

/* The length of rel's directory ("ns/<ns>/e", or "h" for a head), or 0
 * if rel is not an entry's or a head's path or its directory's is too
 * long to hold. */
static size_t edir_len(const char *rel, size_t len)
{
	if (len <= EDIR_TAIL + 4 || len - EDIR_TAIL - 1 >= LDR_EDIR_REL)
		return 0;
	const char *t = rel + len - EDIR_TAIL;
	if (t[-1] != '/' || (t[-2] != 'e' && t[-2] != 'h') || t[-3] != '/' ||
	    t[2] != '/' || t[5] != '/' || memcmp(rel, "ns/", 3) != 0)
		return 0;
	return len - EDIR_TAIL - 1;
}

static void edir_retire(struct ldr_edir *d)
{
	int ready = LDR_EDIR_READY;
	__atomic_compare_exchange_n(&d->state, &ready, LDR_EDIR_RETIRED, 0,
				    __ATOMIC_RELEASE, __ATOMIC_RELAXED);
}

/* Whether dir (n bytes) opens from the root as the directory (dev, ino). */
static int edir_same(larder *db, const char *dir, size_t n, dev_t dev,
		     ino_t ino)
{
	char rel[LDR_EDIR_REL];
	memcpy(rel, dir, n);
	rel[n] = '\0';
	int fd = ldr_open_beneath(db->rootfd, rel, O_RDONLY | O_DIRECTORY, 0);
	if (fd < 0)
		return 0;
	struct stat st;
	int same = fstat(fd, &st) == 0 && st.st_dev == dev && st.st_ino == ino;
	ldr_close(fd);
	return same;
}

/* The ready slot holding rel's entry directory (n bytes), or NULL. */
static struct ldr_edir *edir_find(larder *db, const char *rel, size_t n)
{
	for (int i = 0; i < LDR_EDIRS; i++) {
		struct ldr_edir *d = &db->edir[i];
		int st = __atomic_load_n(&d->state, __ATOMIC_ACQUIRE);
		if (st == LDR_EDIR_FREE)
			return NULL; /* slots fill in order */
		if (st != LDR_EDIR_READY || d->len != n ||
		    memcmp(d->rel, rel, n) != 0)
			continue;
		int64_t now = ldr_coarse_ms();
		int64_t was = __atomic_load_n(&d->checked_ms, __ATOMIC_RELAXED);
		if (now - was < EDIR_RECHECK_MS)
			return d;
		/* One thread looks; the others go on meanwhile. */
		if (!__atomic_compare_exchange_n(&d->checked_ms, &was, now, 0,
						 __ATOMIC_RELAXED,
						 __ATOMIC_RELAXED))
			return d;
		if (edir_same(db, rel, n, d->dev, d->ino))
			return d;
		edir_retire(d);
	}
	return NULL;
}

/* Hold rel's entry directory (n bytes) open in a free slot, if any:
 * called after an entry was found in it from the root. */
static void edir_fill(larder *db, const char *rel, size_t n)
{
	for (int i = 0; i < LDR_EDIRS; i++) {
		struct ldr_edir *d = &db->edir[i];
		int st = LDR_EDIR_FREE;
		if (!__atomic_compare_exchange_n(
			&d->state, &st, LDR_EDIR_FILLING, 0, __ATOMIC_ACQUIRE,
			__ATOMIC_RELAXED)) {
			if (st == LDR_EDIR_FILLING ||
			    (st == LDR_EDIR_READY && d->len == n &&
			     memcmp(d->rel, rel, n) == 0))
				return; /* another thread's, or held */
			continue;
		}
		memcpy(d->rel, rel, n);
		d->rel[n] = '\0';
		d->len = n;
		struct stat sb;
		d->fd = ldr_open_beneath(db->rootfd, d->rel,
					 O_RDONLY | O_DIRECTORY, 0);
		if (d->fd >= 0 && fstat(d->fd, &sb) != 0) {
			ldr_close(d->fd);
			d->fd = -1;
		}
		if (d->fd < 0) {
			/* Gone since, or refused: not held; the slot stays
			 * retired, so a namespace that cannot be opened
			 * costs at most one slot's attempts. */
			__atomic_store_n(&d->state, LDR_EDIR_RETIRED,
					 __ATOMIC_RELEASE);
			return;
		}
		d->dev = sb.st_dev;
		d->ino = sb.st_ino;
		__atomic_store_n(&d->checked_ms, ldr_coarse_ms(),
				 __ATOMIC_RELAXED);
		__atomic_store_n(&d->state, LDR_EDIR_READY, __ATOMIC_RELEASE);
		return;
	}
}

void ldr_edirs_close(larder *db)
{
	for (int i = 0; i < LDR_EDIRS; i++) {
		struct ldr_edir *d = &db->edir[i];
		int st = __atomic_load_n(&d->state, __ATOMIC_ACQUIRE);
		if ((st == LDR_EDIR_READY || st == LDR_EDIR_RETIRED) &&
		    d->fd >= 0)
			ldr_close(d->fd);
		d->fd = -1;
		d->state = LDR_EDIR_FREE;
	}
}

int ldr_file_load_held(larder *db, const char *rel, struct ldr_file *f, int how,
		       size_t pre, struct ldr_held *h)
{
	size_t len = strlen(rel);
	/* Only where nobody but the store's owner can move a directory of
	 * it (see above). */
	size_t n = db->dmode & (S_IWGRP | S_IWOTH) ? 0 : edir_len(rel, len);
	if (!h->tried) {
		h->tried = 1;
		h->d = n ? edir_find(db, rel, n) : NULL;
		if (h->d) {
			if (file_load_at(db, h->d->fd, rel + len - EDIR_TAIL, f,
					 0, how, pre) == 0)
				return 0;
			/* Not there: the caller's second look is from the
			 * root (a miss costs what it cost before). */
			h->gone = errno == ENOENT || errno == ESTALE;
			if (h->gone)
				return -1;
		}
	}
	if (ldr_file_load(db, rel, f, 0, how, pre) != 0)
		return -1;
	/* Found from the root: hold its directory, or retire the one that
	 * did not have it. (Anything else the held one failed on, a
	 * symlink planted at the file's name say, the root judged too.) */
	if (h->d && h->gone && !f->ftype)
		edir_retire(h->d);
	if (n && (!h->d || h->gone) && !f->ftype)
		edir_fill(db, rel, n);
	return 0;
}

int ldr_fail_too_big(larder *db, const char *rel, uint64_t size, int stream)
{
	return ldr_fail(db, LARDER_ENOMEM, 0,
			"entry file '%s/%s' is %llu bytes, more than this "
			"handle holds in memory (%llu: "
			"larder_opts.max_in_memory)%s",
			db->dir, rel, (unsigned long long)size,
			(unsigned long long)db->max_in_memory,
			stream ? "; read it with larder_get_stream(), which "
				 "needs no more"
			       : "");
}

int ldr_entry_load(larder *db, const char *rel, struct ldr_file *f, int how,
		   size_t pre)
{
	/* ENOENT and ESTALE mean "gone": look once more (a network
	 * filesystem may have replaced its handle), then miss. */
	struct ldr_held held = {NULL, 0, 0};
	for (int attempt = 0;; attempt++) {
		if (ldr_file_load_held(db, rel, f, how, pre, &held) == 0)
			return 0;
		int err = errno;
		if (err == EFBIG)
			return ldr_fail_too_big(db, rel, f->size, 1);
		if (err != ENOENT && err != ESTALE)
			return ldr_fail_errno(db, err,
					      "cannot read '%s/%s': %s",
					      db->dir, rel, strerror(err));
		if (attempt == 1)
			return LARDER_ENOTFOUND;
		if (err == ESTALE)
			ldr_count(db, LARDER_CTR_ESTALE_RETRIES);
	}
}
