/*
 * head.h — head hints: which version of a key was published last, so
 * that a get without a version finds it (head.c, docs/format.md).
 */
#ifndef LARDER_HEAD_H
#define LARDER_HEAD_H

#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#include "store.h"

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
/* Point the head hint of (ns, key) at ver (temp + rename). */
int ldr_head_write(larder *db, const char *ns, const void *key, size_t klen,
		   const void *ver, size_t vlen);

#endif
