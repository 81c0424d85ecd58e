/*
 * head.h — head hints: which version of a key was published last, so
 * that a get without a version finds it (head.c, docs/format.md).
 */
#ifndef LARDER_HEAD_H
#define LARDER_HEAD_H

#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#include "file.h"
#include "fmt.h"
#include "naming.h"
#include "store.h"

/* On a network filesystem the head of an entry file up to this many
 * bytes is a copy of it (docs/format.md "Head hint"), so that a
 * version-less lookup opens one file; a larger entry's head is a hint
 * file (there the second open is small against the read). */
#define LDR_HEAD_COPY_MAX ((int64_t)64 << 10)

/* Read the head hint of (ns, key): the version bytes, malloc'ed into *ver.
 * 0, LARDER_ENOTFOUND (absent or unreadable hint) or another code. */
int ldr_head_read(larder *db, const char *ns, const void *key, size_t klen,
		  uint8_t **ver, size_t *vlen);
/* The same, without touching its access time, and with the identity
 * (dev, ino) of the head file read in *id. */
int ldr_head_read_ident(larder *db, const char *ns, const void *key,
			size_t klen, uint8_t **ver, size_t *vlen,
			struct stat *id);
/* The version the head of (ns, key) names, through the handle's head
 * cache (head.c, docs/format.md "Head hints"): a repeat lookup takes
 * it from memory, and a head published by another process or handle is
 * seen after at most the cache's check interval (larder_opts'
 * memo_check_ms, 1 s by default); this handle's own writes and drops at
 * once. Without a cache (LARDER_OPEN_VERIFY_ALWAYS), as ldr_head_read.
 * For every reader that does not know the version (larder_get with ver
 * NULL, the FUSE head/ view). */
int ldr_head_get(larder *db, const char *ns, const void *key, size_t klen,
		 uint8_t **ver, size_t *vlen);
/* What ldr_head_find found besides the version (docs/format.md "Head
 * hint"): a head that is a hard link to the entry is that entry, loaded
 * through it, and judged as it would be at its own name. */
struct ldr_head_found {
	int how;		/* in: LDR_LOAD_* for the entry */
	size_t pre;		/* in: ldr_file_load's pre for the entry */
	int trust;		/* in: LARDER_OPEN_TRUST_LOCAL applies */
	struct ldr_file f;	/* out: with f.p, the entry, loaded */
	ldr_hdr h;		/* its header (pointing into f.p) */
	int state;		/* its larder_entry_state */
	const char *why;	/* why it is not OK */
	int copy;		/* out: the head is a copy of the entry, not
				 * a link: the entry's bytes came from hf->rel */
	char rel[LDR_REL_MAX];	/* the head's path */
	char erel[LDR_REL_MAX]; /* the entry's, if its header names the key */
	/* out: the version came from the head cache, which keeps the
	 * entry's name hash too (ldr_entry_hash of it): ehash. */
	int have_ehash;
	uint8_t ehash[16];
};
/* ldr_head_find: the entry through its head was judged not servable
 * (hf->state, hf->why; its file in hf->f). */
#define LDR_HEAD_BAD 2
/* As ldr_head_get, for a lookup that will load the entry: when the head
 * is read from disk and is a link to the entry, the entry comes with it
 * (hf->f.p set, verified as a versioned load is), else only the version.
 * LDR_HEAD_BAD: the entry through the head is not to be served (reject
 * it at hf->rel, then call ldr_head_rejected). The caller frees hf->f. */
int ldr_head_find(larder *db, const char *ns, const void *key, size_t klen,
		  struct ldr_head_found *hf, uint8_t **ver, size_t *vlen);
/* A damaged entry reached through its head was quarantined at the head's
 * name: its own name goes too, if it is the same file. */
void ldr_head_rejected(larder *db, const struct ldr_head_found *hf);
/* Make db->heads as opts says (NULL: off, or no memory), and drop it. */
void ldr_head_cache_open(larder *db, const larder_opts *opts);
void ldr_head_cache_close(larder *db);
/* For tests: move the head cache's clock by `ms`; its records held. */
void ldr_head_cache_age(larder *db, int64_t ms);
size_t ldr_head_cache_size(larder *db);
/* Remove the head hint of (ns, key) if it names ver: by dev/ino, so that
 * a head rewritten meanwhile stays. 1 if this call removed it. */
int ldr_head_drop(larder *db, const char *ns, const void *key, size_t klen,
		  const void *ver, size_t vlen);
/* Remove the head of (ns, key) if it is the file (dev, ino): a link to
 * an entry file that is leaving the store. 1 if this call removed it. */
int ldr_head_drop_file(larder *db, const char *ns, const void *key, size_t klen,
		       dev_t dev, ino_t ino);
/* The entry (ns, key, ver), the file (dev, ino), leaves the store
 * (removed, cleaned, quarantined): remove its key's head if it is that
 * file (a link), a copy of it (another file in the entry format naming
 * ver) or a hint naming ver. A copy's bytes leave the usage, and *freed
 * (NULL: not wanted) gets them. ver NULL: only the same file; ino 0:
 * the file is not known (then a copy is removed but not counted). 1 if
 * this call removed the head. */
int ldr_head_drop_entry(larder *db, const char *ns, const void *key,
			size_t klen, const void *ver, size_t vlen, dev_t dev,
			ino_t ino, int64_t *freed);
/* The bytes of the head file at rel if it is a copy of an entry (one
 * name, the entry's magic), else 0: what the cleaning counts of it. */
int64_t ldr_head_copy_bytes(larder *db, const char *rel);
/* Point the head of (ns, key) at ver (temp + rename): a hard link to the
 * published entry; on a network filesystem a copy of it up to
 * LDR_HEAD_COPY_MAX bytes; else (larger, or no hard links) a hint file. */
int ldr_head_write(larder *db, const char *ns, const void *key, size_t klen,
		   const void *ver, size_t vlen);
/* The same, always as a hint file (the format 0.2 wrote; tests). */
int ldr_head_write_hint(larder *db, const char *ns, const void *key,
			size_t klen, const void *ver, size_t vlen);

#endif
