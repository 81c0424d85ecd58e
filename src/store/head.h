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
/* Remove the head hint of (ns, key) if it names ver: by dev/ino, so that
 * a head rewritten meanwhile stays. 1 if this call removed it. */
int ldr_head_drop(larder *db, const char *ns, const void *key, size_t klen,
		  const void *ver, size_t vlen);
/* Point the head hint of (ns, key) at ver (temp + rename). */
int ldr_head_write(larder *db, const char *ns, const void *key, size_t klen,
		   const void *ver, size_t vlen);

#endif
