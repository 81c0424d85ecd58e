/*
 * store.h — the store handle and what store.c, read.c and publish.c share:
 * naming (hashes, fan-out paths), logging, counters, quarantine.
 *
 * On-disk layout (docs/format.md):
 *   DIR/larder-store                    marker: format, fsync policy, mode
 *   DIR/ns/<ns>/config                  namespace defaults (ttl)
 *   DIR/ns/<ns>/e/<h0h1>/<h2h3>/<hex32> entries, named by H(ns, key, ver)
 *   DIR/ns/<ns>/h/<h0h1>/<h2h3>/<hex32> head hints, named by H(ns, key)
 *   DIR/quarantine/                     entries that failed verification
 */
#ifndef LARDER_STORE_H
#define LARDER_STORE_H

#include <dirent.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/stat.h>

#include "err.h"
#include "fmt.h"
#include "larder.h"

#define LDR_MARKER "larder-store"
#define LDR_STORE_FORMAT 1
#define LDR_DEFAULT_MMAP (64u << 10)
#define LDR_DEFAULT_MAX_DECOMPRESSED ((uint64_t)1 << 30) /* larder.h */
#define LDR_REL_MAX 192
#define LDR_NS_SEEN 32 /* namespaces a handle remembers as checked */
#define LDR_HEAD_MAGIC                                                         \
	"\x89LDRHEAD" /* "ns/<64>/e/xx/yy/<32>" and temp names fit */

struct larder {
	char *dir;
	int rootfd;
	unsigned flags;
	int fsync; /* enum larder_fsync, never DEFAULT */
	/* The store's mode and what follows from it (docs/security.md):
	 * fmode the store's file bits, dmode its directories', topmode the
	 * top directory's, romode what never changes once published
	 * (entries, heads), ownmode the files of one writer (marker,
	 * config, leases). */
	mode_t fmode, dmode, topmode, romode, ownmode;
	uid_t owner; /* the store directory's owner (docs/security.md) */
	size_t mmap_threshold;
	/* larder_get() holds at most this many decompressed bytes */
	uint64_t max_in_memory;
	larder_log_fn log;
	void *log_payload;
	int log_level;
	int said_newer;	       /* "newer format" is logged once per handle */
	int said_unremembered; /* "cannot remember file hashes", once */
	int said_config;       /* "ignoring DIR/config", once */
	/* Namespaces whose directories were found safe (store.c): hashes
	 * of their names, 0 = free slot. */
	uint64_t ns_seen[LDR_NS_SEEN];
	unsigned ns_seen_next;
	int network; /* the store is on a network filesystem */
	char host[64];
	uint64_t ctr[LARDER_CTR_COUNT];
	struct ldr_stats *stats; /* stats.c: pending usage, flush state */
	struct ldr_gc *gc;	 /* limits, touches and cleaning (gc.c) */
	/* Idle PostgreSQL connections kept for the next calls (source_pg.c) */
	struct ldr_pg_pool *pg_pool;
};

static inline void ldr_count(larder *db, int c)
{
	__atomic_fetch_add(&db->ctr[c], 1, __ATOMIC_RELAXED);
}

void ldr_log(larder *db, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Whether mode is one of the five a store may have (0600, 0640, 0644,
 * 0660, 0664). */
int ldr_mode_valid(unsigned mode);
/* The widest of them that the umask `mask` allows. */
unsigned ldr_mode_for_umask(unsigned mask);

/* 0 if `ns` is a valid namespace name whose directories are safe to use:
 * else LARDER_EINVAL, or LARDER_EPERM for a symlink or a directory that
 * others may write (docs/security.md), recorded. Every call that takes a
 * namespace starts with it; the directories are looked at on the
 * handle's first use of the namespace only. */
int ldr_check_ns(larder *db, const char *ns);

/* The internal namespace where file versions remember content hashes
 * (version.c). Users cannot get or put there (names starting with '.'
 * are refused); walking and inspecting it by name is allowed. */
#define LDR_FILES_NS ".files"
/* As ldr_check_ns, and LDR_FILES_NS is accepted too. */
int ldr_check_ns_internal(larder *db, const char *ns);

/* larder_get for the library's own entries: any namespace that
 * ldr_check_ns_internal accepts, the payload always verified (even with
 * LARDER_OPEN_TRUST_LOCAL), and neither hits nor misses are counted (the
 * caller counts what the lookup means to it). Corrupt entries are still
 * counted and quarantined. */
int ldr_get_internal(larder_entry **out, larder *db, const char *ns,
		     const void *key, size_t klen, const void *ver,
		     size_t vlen);

/* larder_get that counts no request, hit or miss: for larder_get_or_fill,
 * which counts what the whole call amounted to (larder.h). */
int ldr_get_quiet(larder_entry **out, larder *db, const char *ns,
		  const void *key, size_t klen, const void *ver, size_t vlen);

/* A writer for the library's own entries (LDR_FILES_NS allowed), which
 * are caches of something the library can compute again: never fsync'ed
 * (a record lost or torn by a crash fails its checksum and is recomputed)
 * and never moving a head hint. */
int ldr_writer_begin_internal(larder_writer **out, larder *db, const char *ns,
			      const void *key, size_t klen, const void *ver,
			      size_t vlen);
/* The modification time of the writer's temp file, in ns since the epoch:
 * the store filesystem's clock at the moment the file was made. 0 and
 * the time, or -1 with errno. */
int ldr_writer_fs_now(larder_writer *w, int64_t *out);

/* Quarantine the published entry (ns, key, ver): one that passed its
 * checksum but whose content its reader rejects. Counts and logs. */
void ldr_quarantine_entry(larder *db, const char *ns, const void *key,
			  size_t klen, const void *ver, size_t vlen,
			  const char *why);

/* Entry and head names: XXH3-128 of length-prefixed fields, so no two
 * (ns, key, version) triples frame alike. */
void ldr_entry_hash(const char *ns, const void *key, size_t klen,
		    const void *ver, size_t vlen, uint8_t out[16]);
void ldr_head_hash(const char *ns, const void *key, size_t klen,
		   uint8_t out[16]);

/* "ns/<ns>/<kind>/h0h1/h2h3" and, with the file, "/<hex32>". */
void ldr_dir_rel(char *out, const char *ns, char kind, const char *hex);
void ldr_file_rel(char *out, const char *ns, char kind, const char *hex);

/* Move the entry at `rel` to quarantine/, if it is still the file (dev,
 * ino) that was found bad. Counts and logs; 1 if it moved it. */
int ldr_quarantine(larder *db, const char *rel, dev_t dev, ino_t ino,
		   const char *why);

/* Open the directory of rel beneath the root (no symlinks followed);
 * *base points at rel's last component. -1 with errno on failure. */
int ldr_open_parent(larder *db, const char *rel, const char **base);

/* lstat of rel beneath the root, following no symlink on the way. 0, or
 * -1 with errno (ELOOP: a symlinked directory on the way). */
int ldr_lstat(larder *db, const char *rel, struct stat *st);

/* Open directory rel beneath the root, creating it (and its parents) if
 * missing; bounded retries where a network filesystem lags behind
 * another client's mkdir. -1 with errno on failure. */
int ldr_open_dir(larder *db, const char *rel);

/* Remove the file at rel only if it is (dev, ino); 0 if it is gone (by
 * us or anyone), -1 with errno if it could not be removed. */
int ldr_remove_same(larder *db, const char *rel, dev_t dev, ino_t ino);
/* The same, saying who removed it: 1 this call, 0 it was gone already or
 * is another file now (left alone), -1 with errno if it could not be
 * removed. */
int ldr_remove_same_by_us(larder *db, const char *rel, dev_t dev, ino_t ino);

/* A whole entry file, read into memory or mapped. The fd stays open until
 * ldr_file_free() (or ldr_file_drop_fd()), so that the file's identity can
 * be taken when it turns out bad: a hit never pays for an fstat. */
struct ldr_file {
	uint8_t *p;
	size_t len;    /* bytes at p */
	uint64_t size; /* the whole file (more than len when partial) */
	int mapped;
	/* Only the header is at p; the payload is read from fd in chunks
	 * when needed (a large file that is not ours to map). */
	int partial;
	/* Only this user, root or the store's owner can change the file
	 * (docs/security.md): it may be mapped, and trusted by
	 * LARDER_OPEN_TRUST_LOCAL. Known only when have_ident. */
	int safe;
	/* Not a regular file (a FIFO, directory, socket, device or
	 * symlink): its S_IFMT type, and p is NULL. */
	unsigned ftype;
	int fd;
	int have_ident;
	dev_t dev;
	ino_t ino;
};
/* Load the file at rel (beneath the root) to judge an entry or a head
 * with bounded memory (walk, verify, publish, heads): a file larger than
 * the first read is never mapped nor read whole, only its header
 * (partial); ldr_entry_check then reads the payload in chunks. With
 * noatime, the file's access time does not change (looking is not using,
 * and the cleaning goes by it). Anything but a regular file loads as an
 * empty one with ftype set (the check calls it corrupt). Returns 0, or -1
 * with errno. (larder_get's own loading is read.c's.) */
int ldr_file_scan(larder *db, const char *rel, struct ldr_file *f, int noatime);
/* Fill f->dev and f->ino (before the fd is dropped). */
void ldr_file_ident(struct ldr_file *f);
void ldr_file_drop_fd(struct ldr_file *f);
void ldr_file_free(struct ldr_file *f);

/* What ldr_entry_check verifies besides the header */
#define LDR_CHECK_HASH 0x1u /* the payload checksum */
#define LDR_CHECK_ZSTD 0x2u /* a zstd payload decompresses to its length */

/* What a loaded entry file (at rel, for messages) is, checked against
 * what was asked for (key or ver NULL = do not compare). Fills h
 * (h->hdr_len is 0 unless the header decoded); returns a
 * larder_entry_state and a reason for anything but OK. `check` is
 * LDR_CHECK_* flags; a partial file's payload is read from its fd in
 * chunks (one that changes meanwhile is corrupt), and a failure to read
 * it is a negative LARDER_E* code, recorded. */
int ldr_entry_check(larder *db, const struct ldr_file *f, const char *rel,
		    const char *ns, const void *key, size_t klen,
		    const void *ver, size_t vlen, unsigned check, ldr_hdr *h,
		    const char **why);

/* Read the head hint of (ns, key): the version bytes, malloc'ed into *ver.
 * 0, LARDER_ENOTFOUND (absent or unreadable hint) or another code. */
int ldr_head_read(larder *db, const char *ns, const void *key, size_t klen,
		  uint8_t **ver, size_t *vlen);
/* The same, without touching its access time, and with the identity
 * (dev, ino) of the head file read in *id. */
int ldr_head_read_ident(larder *db, const char *ns, const void *key,
			size_t klen, uint8_t **ver, size_t *vlen,
			struct stat *id);
/* Remove the head hint of (ns, key) if it names ver: by dev/ino, so that
 * a head rewritten meanwhile stays. 1 if this call removed it. */
int ldr_head_drop(larder *db, const char *ns, const void *key, size_t klen,
		  const void *ver, size_t vlen);
/* Point the head hint of (ns, key) at ver (temp + rename). */
int ldr_head_write(larder *db, const char *ns, const void *key, size_t klen,
		   const void *ver, size_t vlen);

/* Fill-mode writers (for larder_get_or_fill): if the cache cannot keep
 * the data (a failing temp file, directory or link), the bytes move to
 * memory, and commit hands them back as an uncached entry in *uncached,
 * returning the cache's failure (negative) with its message. */
int ldr_writer_begin_fill(larder_writer **out, larder *db, const char *ns,
			  const void *key, size_t klen, const void *ver,
			  size_t vlen, const larder_put_opts *opts);
int ldr_writer_commit_fill(larder_writer *w, larder_entry **uncached);
/* Do not move the head hint on commit (a lost lease). */
void ldr_writer_no_head(larder_writer *w);

/* An entry from a whole entry file open at fd (checked and verified as a
 * read is), e.g. loaded data kept in memory. */
int ldr_entry_from_fd(larder *db, int fd, const char *ns, const void *key,
		      size_t klen, const void *ver, size_t vlen,
		      larder_entry **out);

/* The namespace's default TTL in seconds (0 = none). */
int64_t ldr_ns_ttl(larder *db, const char *ns);

/* Config files: DIR/config (dirrel "") and DIR/ns/<ns>/config (dirrel
 * "ns/<ns>"), text with one "name value" a line. */
#define LDR_CONFIG_MAX 4096
/* Read one into buf (NUL-terminated; "" if there is none). 0, or -1 with
 * errno. */
int ldr_config_read(larder *db, const char *dirrel, char *buf, size_t size);
/* Replace it atomically (temp + rename) with `lines` first, then every
 * old line whose name `lines` does not set. 0 or a recorded error. */
int ldr_config_replace(larder *db, const char *dirrel, const char *lines);

/* Open directory `name` in dirfd (its path beneath the root: rel) for a
 * walk: 0 and *out; 1 if it is to be skipped: gone meanwhile, or, after a
 * warning naming it, a symlink, not a directory, or writable by others
 * (docs/security.md); -1 with errno for another failure. */
int ldr_walk_dir(larder *db, int dirfd, const char *name, const char *rel,
		 DIR **out);

/* Call cb for each entry file of namespace ns: its path beneath the root
 * and the hash its name claims. A non-zero return stops the walk and is
 * returned. */
int ldr_walk_files(larder *db, const char *ns,
		   int (*cb)(const char *rel, const uint8_t hash[16],
			     void *payload),
		   void *payload);
/* The same for the entries whose first fan-out directory, as a number,
 * is in [lo, hi) (0..256: a slice of the namespace, the hashes being
 * uniform). */
int ldr_walk_slice(larder *db, const char *ns, int lo, int hi,
		   int (*cb)(const char *rel, const uint8_t hash[16],
			     void *payload),
		   void *payload);

#endif
