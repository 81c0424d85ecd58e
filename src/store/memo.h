/*
 * memo.h — a handle's memo of entries it has verified (memo.c): a repeat
 * hit of an immutable entry is served from the bytes an earlier hit
 * verified, neither read nor hashed again, while the entry's file keeps
 * its identity (docs/format.md, "The memo of verified entries").
 */
#ifndef LARDER_MEMO_H
#define LARDER_MEMO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#include "file.h"
#include "store.h"

/* Defaults of larder_opts' memo fields (larder.h). */
#define LDR_MEMO_ENTRIES 4096u
#define LDR_MEMO_BYTES ((uint64_t)256 << 20)
#define LDR_MEMO_CHECK_MS 1000u
#define LDR_MEMO_REHASH_MS 60000u

/* The verified bytes of an entry, shared by the memo and the entries it
 * handed out: the last reference frees them (unmaps a mapping). */
struct ldr_memo_blob;

/* What a memo hit hands out: pointers into b, valid while the caller
 * holds the reference it was given. */
struct ldr_memo_hit {
	struct ldr_memo_blob *b;
	const uint8_t *data;
	size_t size;
	const uint8_t *ver, *meta;
	size_t vlen, mlen;
	int64_t created, expires;
	int mapped; /* the payload is a mapping of the file */
	/* Set by a miss of ldr_memo_get: the entry was read before by this
	 * handle (held and let go, or seen once), so the read that follows
	 * may be memoised (ldr_memo_put's identify). */
	int again;
};

/* larder_opts' memo fields, their defaults where 0 or where opts is
 * older than version 3; the head cache takes its bound and check
 * interval from them too (head.c). */
struct ldr_memo_cfg {
	size_t entries;
	uint64_t bytes;
	int64_t check_ms, rehash_ms;
};
void ldr_memo_cfg(const larder_opts *opts, struct ldr_memo_cfg *cfg);

/* Make db->memo as opts says (NULL: off, or out of memory: a handle
 * without a memo only reads more). */
void ldr_memo_open(larder *db, const larder_opts *opts);
/* Drop the memo; entries handed out keep their bytes. */
void ldr_memo_close(larder *db);

/* A repeat hit of the entry named `hash`, asked as (ns of nslen bytes,
 * key, ver): 1 and *out (with a reference on out->b) if the memo holds
 * it, unexpired, its file seen unchanged within the check interval and
 * verified within the re-hash interval, and no touch of its recency is
 * due (ldr_touch_due: then the read goes to disk, so that a hot entry's
 * recency still moves for the cleaning); else 0 (the caller reads the
 * file). A miss says in out->again whether the read that follows counts
 * as a second one for admission. */
int ldr_memo_get(larder *db, const uint8_t hash[16], const char *ns,
		 size_t nslen, const void *key, size_t klen, const void *ver,
		 size_t vlen, struct ldr_memo_hit *out);

/* Remember an entry just verified from the file at rel, open at f->fd:
 * f's bytes and plain (the decompressed payload, or NULL) move into a
 * blob that the memo and the caller share; *hit is filled as a memo hit
 * would be (with the caller's reference), and the file's identity is
 * taken (fstat) for later checks. identify: the entry's memo miss said
 * `again` (a first read is not memoised). 0 if the memo took them, else
 * -1 (a first read, off, too large for its budget, or no memory: f and
 * plain stay the caller's). */
int ldr_memo_put(larder *db, const uint8_t hash[16], const char *rel,
		 struct ldr_file *f, uint8_t *plain, const ldr_hdr *h,
		 const uint8_t *data, int identify, struct ldr_memo_hit *hit);

/* The file at rel was just seen (st, by lstat) by another check (the
 * head cache's, of a copied head): if the memo holds the entry named hash
 * from that file, with that identity, it counts as the memo's check, so
 * that the file is not looked at twice. */
void ldr_memo_checked(larder *db, const uint8_t hash[16], const char *rel,
		      const struct stat *st);

/* Drop a reference taken by ldr_memo_get or ldr_memo_put. */
void ldr_memo_unref(struct ldr_memo_blob *b);

/* Forget the entry whose file is rel: it is gone by this handle's hand
 * (removed, quarantined), so the memo stops serving it at once. */
void ldr_memo_forget(larder *db, const char *rel);

/* For tests: age every memo record by `ms` milliseconds; the number of
 * records and bytes held. */
void ldr_memo_age(larder *db, int64_t ms);
void ldr_memo_usage(larder *db, size_t *entries, uint64_t *bytes);

#endif
