/*
 * fmt.h — entry header encode/decode/verify (format v1, docs/format.md).
 *
 * Depends on nothing but err.h. The decoder is the parser of untrusted bytes
 * and is fuzzed (fuzz/fuzz_header.c): it must never read outside the buffer
 * it is given, whatever the bytes say.
 */
#ifndef LARDER_FMT_H
#define LARDER_FMT_H

#include <stddef.h>
#include <stdint.h>

#include "hash.h" /* ldr_xxh128, for the format's users */

#define LDR_MAGIC "\x89LARDER\n"
#define LDR_MAGIC_LEN 8
#define LDR_FORMAT 1
#define LDR_HDR_FIXED 104 /* bytes before the variable fields */
#define LDR_PAGE 4096	  /* payload alignment for large payloads */

#define LDR_CODEC_NONE 0
#define LDR_CODEC_ZSTD 1

#define LDR_MAX_NS 64
#define LDR_MAX_KEY (64u << 20)
#define LDR_MAX_VER (64u << 20)
#define LDR_MAX_META (1u << 20)

/* A decoded header. The byte pointers point into the buffer given to
 * ldr_hdr_decode() and are valid as long as it is. */
typedef struct ldr_hdr {
	uint32_t format;
	uint32_t hdr_len; /* offset of the payload in the file */
	uint16_t codec;
	uint16_t flags;
	uint64_t stored_len;	  /* payload bytes in the file */
	uint64_t raw_len;	  /* payload bytes after decompression */
	int64_t created;	  /* ns since epoch */
	int64_t expires;	  /* ns since epoch, 0 = never */
	uint8_t payload_hash[16]; /* XXH3-128 canonical of the stored payload */
	const uint8_t *ns;
	uint32_t ns_len;
	const uint8_t *key;
	uint32_t key_len;
	const uint8_t *ver;
	uint32_t ver_len;
	const uint8_t *meta;
	uint32_t meta_len;
} ldr_hdr;

/* Bytes the fixed part plus the variable fields take, before padding. */
uint64_t ldr_hdr_min_len(uint32_t ns_len, uint32_t key_len, uint32_t ver_len,
			 uint32_t meta_len);
/* The padded header length: 8-aligned, or page-aligned if `aligned`. */
uint64_t ldr_hdr_padded_len(uint64_t min_len, int aligned);

/* Encode h (hdr_len set by the caller to a padded length) into buf of
 * exactly h->hdr_len bytes, including the header checksum. */
void ldr_hdr_encode(const ldr_hdr *h, uint8_t *buf);

/* How many bytes the header in buf claims, after checking what every
 * format keeps (magic, a non-zero format, header length >= LDR_HDR_FIXED):
 * lets a reader that read a prefix know how much more to read. Returns 0
 * and sets *need; LARDER_EVERSION and sets *need for a newer format (whose
 * header checksum is still to be checked, by ldr_hdr_decode); or
 * LARDER_ECORRUPT. buf must hold at least LDR_HDR_FIXED bytes, else
 * LARDER_ECORRUPT. */
int ldr_hdr_need(const uint8_t *buf, size_t len, uint32_t *need);

/* Decode and verify the header at the start of buf (len bytes available).
 * Checks magic, format, lengths, zero padding and the header checksum; the
 * payload is not looked at. Returns 0, LARDER_ECORRUPT or LARDER_EVERSION;
 * on failure `why` (if not NULL) gets a short reason. LARDER_EVERSION only
 * for a header that keeps the forward-compatibility contract
 * (docs/format.md): its whole header is within len and passes the header
 * checksum; out is then zeroed, as it is first in any case. */
int ldr_hdr_decode(ldr_hdr *out, const uint8_t *buf, size_t len,
		   const char **why);

/* Check that the payload bytes match the header's payload hash. */
int ldr_payload_verify(const ldr_hdr *h, const void *payload);

#endif
