/*
 * fuzz_header.c — libFuzzer target for the entry header parser
 * (src/format/fmt.c).
 *
 * The header is the one place where larder parses bytes it did not write
 * itself in this process: another host, a torn write, a bit flip or a
 * hostile user may have put anything there. The parser must never read
 * outside the buffer it is given, and what it accepts must be exactly what
 * the encoder would have written.
 *
 * Each input is parsed twice:
 *
 *  1. as is: ldr_hdr_need + ldr_hdr_decode, then the payload check when the
 *     payload fits in the input;
 *  2. "fixed up": a copy whose payload hash and header checksum are
 *     recomputed first. Random mutations almost never get past a 128-bit
 *     checksum, so without this pass the fuzzer would only ever exercise the
 *     magic/format/length checks and never the field validation behind the
 *     checksum.
 *
 * The forward-compatibility contract (docs/format.md): a header claiming
 * a format newer than this build's is reported as newer (LARDER_EVERSION)
 * exactly when bytes 0-15 are sound (header length >= the fixed part and
 * within the input) and the header checksum at 88 matches, as computed
 * here independently; otherwise it is corrupt.
 *
 * Invariants checked when decode accepts a header:
 *  - hdr_len >= the fixed part, hdr_len <= len, hdr_len is 8-aligned, and
 *    the fixed part plus the variable fields fit inside hdr_len;
 *  - the ns/key/ver/meta pointers lie inside [buf + fixed, buf + hdr_len)
 *    and follow each other in that order;
 *  - ldr_hdr_need agrees on the length;
 *  - re-encoding the decoded header gives back the same bytes (nothing the
 *    decoder accepts is ambiguous);
 *  - the same bytes with one byte missing are refused.
 * Any violation aborts, which libFuzzer reports as a crash.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fmt.h"
#include "larder.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                            \
	do {                                                                   \
		if (!(cond)) {                                                 \
			fprintf(stderr, "fuzz_header: %s:%d: CHECK(%s)\n",     \
				__FILE__, __LINE__, #cond);                    \
			abort();                                               \
		}                                                              \
	} while (0)

static int inside(const uint8_t *p, size_t n, const uint8_t *lo,
		  const uint8_t *hi)
{
	return p >= lo && p <= hi && (size_t)(hi - p) >= n;
}

static uint32_t rd32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

static uint64_t rd64(const uint8_t *p)
{
	return (uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32;
}

/* Whether buf[0, len) keeps the forward-compatibility contract and claims
 * a newer format: computed from the contract's text, not with the
 * decoder's code. */
static int newer_by_contract(const uint8_t *buf, size_t len)
{
	if (len < LDR_HDR_FIXED || memcmp(buf, LDR_MAGIC, LDR_MAGIC_LEN) != 0)
		return 0;
	uint32_t format = rd32(buf + 8), hl = rd32(buf + 12);
	if (format <= LDR_FORMAT || hl < LDR_HDR_FIXED || hl > len)
		return 0;
	uint8_t *copy = malloc(hl);
	CHECK(copy != NULL);
	memcpy(copy, buf, hl);
	memset(copy + 88, 0, 16);
	uint8_t sum[16];
	ldr_xxh128(copy, hl, sum);
	free(copy);
	return memcmp(sum, buf + 88, 16) == 0;
}

/* Parse buf[0, len) and check every invariant. Returns 1 if the header was
 * accepted and its payload fits in buf and matches its hash. */
static int parse(const uint8_t *buf, size_t len)
{
	uint32_t need = 0;
	int nrc = ldr_hdr_need(buf, len, &need);
	CHECK(nrc == 0 || nrc == LARDER_ECORRUPT || nrc == LARDER_EVERSION);
	if (nrc == 0 || nrc == LARDER_EVERSION)
		CHECK(need >= LDR_HDR_FIXED && need == rd32(buf + 12));

	ldr_hdr h;
	const char *why = NULL;
	int rc = ldr_hdr_decode(&h, buf, len, &why);
	CHECK(rc == 0 || rc == LARDER_ECORRUPT || rc == LARDER_EVERSION);
	/* Newer exactly when the contract holds. */
	CHECK((rc == LARDER_EVERSION) == newer_by_contract(buf, len));
	if (rc != 0) {
		CHECK(why != NULL && why[0] != '\0');
		/* The decoder may refuse more than need does, never less; a
		 * newer format that breaks the contract is corrupt. */
		if (nrc == LARDER_ECORRUPT)
			CHECK(rc == LARDER_ECORRUPT);
		if (rc == LARDER_EVERSION)
			CHECK(nrc == LARDER_EVERSION);
		return 0;
	}

	CHECK(nrc == 0 && need == h.hdr_len);
	CHECK(h.format == LDR_FORMAT);
	CHECK(h.hdr_len >= LDR_HDR_FIXED && h.hdr_len <= len);
	CHECK(h.hdr_len % 8 == 0);
	CHECK(h.codec == LDR_CODEC_NONE || h.codec == LDR_CODEC_ZSTD);
	CHECK(h.ns_len <= LDR_MAX_NS && h.key_len <= LDR_MAX_KEY &&
	      h.ver_len <= LDR_MAX_VER && h.meta_len <= LDR_MAX_META);
	uint64_t min =
	    ldr_hdr_min_len(h.ns_len, h.key_len, h.ver_len, h.meta_len);
	CHECK(min <= h.hdr_len);
	if (h.codec == LDR_CODEC_NONE)
		CHECK(h.raw_len == h.stored_len);

	const uint8_t *lo = buf + LDR_HDR_FIXED, *hi = buf + h.hdr_len;
	CHECK(inside(h.ns, h.ns_len, lo, hi));
	CHECK(inside(h.key, h.key_len, lo, hi));
	CHECK(inside(h.ver, h.ver_len, lo, hi));
	CHECK(inside(h.meta, h.meta_len, lo, hi));
	CHECK(h.ns == lo && h.key == h.ns + h.ns_len &&
	      h.ver == h.key + h.key_len && h.meta == h.ver + h.ver_len);
	/* Touch every accepted byte so ASan sees any pointer that lies. */
	volatile uint8_t sink = 0;
	for (uint32_t i = 0; i < h.ns_len; i++)
		sink ^= h.ns[i];
	for (uint32_t i = 0; i < h.key_len; i++)
		sink ^= h.key[i];
	for (uint32_t i = 0; i < h.ver_len; i++)
		sink ^= h.ver[i];
	for (uint32_t i = 0; i < h.meta_len; i++)
		sink ^= h.meta[i];
	(void)sink;

	/* What was accepted is exactly what the encoder writes. */
	uint8_t *re = malloc(h.hdr_len);
	CHECK(re != NULL);
	ldr_hdr_encode(&h, re);
	CHECK(memcmp(re, buf, h.hdr_len) == 0);
	free(re);

	/* A header cut short by one byte is refused (a torn write). */
	ldr_hdr cut;
	CHECK(ldr_hdr_decode(&cut, buf, h.hdr_len - 1, NULL) ==
	      LARDER_ECORRUPT);

	if (h.stored_len > len - h.hdr_len)
		return 0;
	int vrc = ldr_payload_verify(&h, buf + h.hdr_len);
	CHECK(vrc == 0 || vrc == LARDER_ECORRUPT);
	return vrc == 0;
}

/* Recompute the payload hash (if the claimed payload fits) and the header
 * checksum of buf in place, as an honest writer would have. */
static void fix_up(uint8_t *buf, size_t len)
{
	if (len < LDR_HDR_FIXED)
		return;
	uint32_t hdr_len = rd32(buf + 12);
	if (hdr_len < LDR_HDR_FIXED || hdr_len > len)
		return;
	uint64_t stored = rd64(buf + 40);
	if (stored <= len - hdr_len)
		ldr_xxh128(buf + hdr_len, stored, buf + 72);
	/* The header checksum covers the header with its own field zeroed. */
	memset(buf + 88, 0, 16);
	uint8_t sum[16];
	ldr_xxh128(buf, hdr_len, sum);
	memcpy(buf + 88, sum, 16);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	parse(data, size);

	/* Its own exact-size allocation, so ASan catches a read one past. */
	uint8_t *copy = malloc(size ? size : 1);
	CHECK(copy != NULL);
	if (size)
		memcpy(copy, data, size);
	fix_up(copy, size);
	int ok = parse(copy, size);
	/* An accepted header whose payload fits had its hash just recomputed,
	 * so the payload must verify; a newer format whose length fits had
	 * its checksum recomputed, so it now keeps the contract. */
	if (size >= LDR_HDR_FIXED) {
		ldr_hdr h;
		int rc = ldr_hdr_decode(&h, copy, size, NULL);
		if (rc == 0 && h.stored_len <= size - h.hdr_len)
			CHECK(ok);
		uint32_t hl = rd32(copy + 12);
		if (memcmp(copy, LDR_MAGIC, LDR_MAGIC_LEN) == 0 &&
		    rd32(copy + 8) > LDR_FORMAT && hl >= LDR_HDR_FIXED &&
		    hl <= size)
			CHECK(rc == LARDER_EVERSION);
	}
	free(copy);
	return 0;
}
