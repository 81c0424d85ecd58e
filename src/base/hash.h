/*
 * hash.h — XXH3 hashing: one-shot, streaming, and length-prefixed fields
 * (so that no two sequences of fields frame alike). The only file that
 * includes xxhash's headers is hash.c, which says why its use of them is
 * safe against the shared libxxhash.
 */
#ifndef LARDER_HASH_H
#define LARDER_HASH_H

#include <stddef.h>
#include <stdint.h>

/* XXH3-128 of p[0, n), canonical (big-endian) bytes. */
void ldr_xxh128(const void *p, size_t n, uint8_t out[16]);
/* XXH3-64 of p[0, n). */
uint64_t ldr_xxh64(const void *p, size_t n);

/* A streaming XXH3-128 state, kept on the caller's stack: room for
 * xxhash's XXH3_state_t, which hash.c checks at compile time. */
#define LDR_HASHER_SIZE 640
struct ldr_hasher {
	_Alignas(64) unsigned char opaque[LDR_HASHER_SIZE];
};

/* A state on the heap, for one kept in a long-lived object: NULL without
 * memory. */
struct ldr_hasher *ldr_hasher_new(void);
void ldr_hasher_free(struct ldr_hasher *h);
void ldr_hasher_reset(struct ldr_hasher *h);
void ldr_hasher_update(struct ldr_hasher *h, const void *p, size_t n);
/* A field: its length as 8 little-endian bytes, then its bytes. */
void ldr_hasher_field(struct ldr_hasher *h, const void *p, size_t n);
/* A number as 8 little-endian bytes. */
void ldr_hasher_u64(struct ldr_hasher *h, uint64_t x);
void ldr_hasher_digest(struct ldr_hasher *h, uint8_t out[16]);

/* Frame a field into p (as ldr_hasher_field hashes it); returns the end. */
uint8_t *ldr_put_field(uint8_t *p, const void *data, size_t n);

#endif
