/*
 * make_corpus.c — writes the seed corpus of fuzz_header into a directory.
 *
 *   build/fuzz/make_corpus fuzz/corpus
 *
 * Seeds are entry files as larder writes them, made with ldr_hdr_encode so
 * that they follow the encoder whenever the format changes: valid headers of
 * varied shapes (empty and long fields, 8- and page-aligned, zstd codec,
 * expiry, binary metadata, with and without their payload), and broken ones
 * (truncated, bad magic, newer formats that break the format's contract,
 * flipped bits, bad padding, lengths that lie) so that the fuzzer starts
 * from every rejection path, plus newer-format entries that keep it. Output is
 * deterministic: rerunning it gives the same files.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testing.h"

static const char *outdir;
static int nfiles;

static void put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void write_seed(const char *name, const uint8_t *buf, size_t len)
{
	char path[4096];
	snprintf(path, sizeof path, "%s/%s", outdir, name);
	FILE *f = fopen(path, "wb");
	if (!f || (len && fwrite(buf, 1, len, f) != len) || fclose(f) != 0) {
		fprintf(stderr, "make_corpus: cannot write '%s': %s\n", path,
			strerror(errno));
		exit(1);
	}
	nfiles++;
}

/* The shape of one seed entry. */
struct shape {
	const char *name;
	const char *ns;
	size_t key_len, ver_len, meta_len; /* filled with a byte pattern */
	size_t payload_len;		   /* stored bytes */
	int aligned;			   /* page-aligned payload */
	int zstd;
	int64_t expires;
};

/* An entry file (header + payload) for a shape; *len gets its size and
 * *hdr_len the header's. The caller frees it. */
static uint8_t *build(const struct shape *s, size_t *len, uint32_t *hdr_len)
{
	uint8_t *key = malloc(s->key_len + 1), *ver = malloc(s->ver_len + 1),
		*meta = malloc(s->meta_len + 1),
		*payload = malloc(s->payload_len + 1);
	if (!key || !ver || !meta || !payload)
		abort();
	for (size_t i = 0; i < s->key_len; i++)
		key[i] = (uint8_t)("SELECT * FROM t WHERE id = ?"[i % 28]);
	for (size_t i = 0; i < s->ver_len; i++)
		ver[i] = (uint8_t)(i * 7 + 1);
	for (size_t i = 0; i < s->meta_len; i++)
		meta[i] = (uint8_t)(i % 5 == 0 ? 0 : 'a' + i % 26);
	for (size_t i = 0; i < s->payload_len; i++)
		payload[i] = (uint8_t)(i * 131 + 17);

	ldr_hdr h;
	memset(&h, 0, sizeof h);
	h.format = LDR_FORMAT;
	h.codec = s->zstd ? LDR_CODEC_ZSTD : LDR_CODEC_NONE;
	h.stored_len = s->payload_len;
	/* A zstd payload here is not real zstd: the header parser does not
	 * decompress, it only has to accept raw_len != stored_len. */
	h.raw_len = s->zstd ? s->payload_len * 3 + 1 : s->payload_len;
	h.created = 1700000000000000000LL;
	h.expires = s->expires;
	ldr_xxh128(payload, s->payload_len, h.payload_hash);
	h.ns = (const uint8_t *)s->ns;
	h.ns_len = (uint32_t)strlen(s->ns);
	h.key = key;
	h.key_len = (uint32_t)s->key_len;
	h.ver = ver;
	h.ver_len = (uint32_t)s->ver_len;
	h.meta = meta;
	h.meta_len = (uint32_t)s->meta_len;
	h.hdr_len = (uint32_t)ldr_hdr_padded_len(
	    ldr_hdr_min_len(h.ns_len, h.key_len, h.ver_len, h.meta_len),
	    s->aligned);

	*len = h.hdr_len + s->payload_len;
	*hdr_len = h.hdr_len;
	uint8_t *buf = malloc(*len);
	if (!buf)
		abort();
	ldr_hdr_encode(&h, buf);
	memcpy(buf + h.hdr_len, payload, s->payload_len);
	free(key);
	free(ver);
	free(meta);
	free(payload);
	return buf;
}

/* Recompute the header checksum after a deliberate change, so the seed
 * reaches the check behind the checksum. */
static void rehash(uint8_t *buf, uint32_t hdr_len)
{
	uint8_t sum[16];
	memset(buf + 88, 0, 16);
	ldr_xxh128(buf, hdr_len, sum);
	memcpy(buf + 88, sum, 16);
}

/* shapes[BASE] is the entry the broken seeds are made from. */
#define BASE 8
static const struct shape shapes[] = {
    {"valid-empty-fields", "", 0, 0, 0, 0, 0, 0, 0},
    {"valid-empty-payload", "default", 8, 2, 0, 0, 0, 0, 0},
    {"valid-tiny", "default", 5, 2, 0, 16, 0, 0, 0},
    {"valid-1-byte-fields", "a", 1, 1, 1, 1, 0, 0, 0},
    {"valid-pad-0", "ns", 6, 0, 0, 24, 0, 0, 0}, /* 104+8 = 112 */
    {"valid-pad-7", "ns", 7, 0, 0, 24, 0, 0, 0}, /* 7 bytes padding */
    {"valid-pad-1", "ns", 3, 0, 2, 24, 0, 0, 0}, /* 1 byte padding */
    {"valid-sql-key", "sql", 300, 16, 0, 200, 0, 0, 0},
    {"valid-meta", "reports", 40, 20, 120, 64, 0, 0, 0},
    {"valid-expires", "default", 12, 8, 0, 32, 0, 0, 1800000000000000000LL},
    {"valid-expires-negative", "default", 12, 8, 0, 32, 0, 0, -1},
    {"valid-zstd", "default", 10, 4, 0, 48, 0, 1, 0},
    {"valid-zstd-empty", "default", 10, 4, 0, 0, 0, 1, 0},
    {"valid-ns-max",
     "0123456789abcdef0123456789abcdef0123456789abcdef"
     "0123456789abcdef",
     3, 3, 3, 8, 0, 0, 0},
    {"valid-long-version", "v", 4, 1000, 0, 8, 0, 0, 0},
    {"valid-aligned-small", "big", 16, 8, 0, 64, 1, 0, 0},
    {"valid-aligned-exact", "big", 4096 - 104 - 3 - 8, 8, 0, 32, 1, 0, 0},
    {"valid-aligned-over", "big", 4096 - 104 - 3 - 7, 8, 0, 32, 1, 0, 0},
    {"valid-aligned-meta", "big", 32, 32, 512, 128, 1, 0, 0},
    {"valid-aligned-zstd", "big", 16, 8, 16, 100, 1, 1, 0},
    {"valid-payload-2k", "default", 20, 10, 10, 2048, 0, 0, 0},
};

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: make_corpus DIR\n");
		return 2;
	}
	outdir = argv[1];

	size_t n = sizeof shapes / sizeof shapes[0];
	for (size_t i = 0; i < n; i++) {
		size_t len;
		uint32_t hl;
		uint8_t *buf = build(&shapes[i], &len, &hl);
		write_seed(shapes[i].name, buf, len);
		free(buf);
	}

	/* Header alone, payload not read yet (what a reader sees first). */
	{
		size_t len;
		uint32_t hl;
		uint8_t *buf = build(&shapes[BASE], &len, &hl);
		write_seed("valid-header-only", buf, hl);
		/* Followed by more bytes than the payload claims. */
		uint8_t *more = malloc(len + 100);
		memcpy(more, buf, len);
		memset(more + len, 0xee, 100);
		write_seed("valid-trailing-bytes", more, len + 100);
		free(more);
		free(buf);
	}

	/* Broken seeds, each made from a valid entry. */
	size_t len;
	uint32_t hl;
	uint8_t *v = build(&shapes[BASE], &len, &hl);
	uint8_t *b = malloc(len);
	if (!b)
		abort();
#define BROKEN(name, ...)                                                      \
	do {                                                                   \
		memcpy(b, v, len);                                             \
		size_t blen = len;                                             \
		__VA_ARGS__;                                                   \
		write_seed(name, b, blen);                                     \
	} while (0)

	BROKEN("bad-empty", blen = 0);
	BROKEN("bad-magic-only", blen = LDR_MAGIC_LEN);
	BROKEN("bad-short-fixed", blen = LDR_HDR_FIXED - 1);
	BROKEN("bad-truncated-header", blen = hl - 1);
	BROKEN("bad-truncated-payload", blen = len - 1);
	BROKEN("bad-magic", b[1] ^= 0x20);
	/* Newer formats: one that keeps the forward-compatibility contract
	 * (docs/format.md), and ones that cannot be an entry of any. */
	BROKEN("newer-format", put32(b + 8, LDR_FORMAT + 1); rehash(b, hl));
	BROKEN("newer-format-other-layout", put32(b + 8, 7);
	       memset(b + 16, 0xa5, 72); rehash(b, hl));
	BROKEN("bad-format-newer-unsealed", put32(b + 8, LDR_FORMAT + 1));
	BROKEN("bad-format-bit-flip", b[10] ^= 0x40);
	BROKEN("bad-format-newer-stub", blen = LDR_HDR_FIXED;
	       memset(b + 8, 0, LDR_HDR_FIXED - 8); put32(b + 8, 2));
	BROKEN("bad-format-newer-hdr-len-small", put32(b + 8, 2);
	       put32(b + 12, 64); rehash(b, hl));
	BROKEN("bad-format-newer-hdr-past-file", put32(b + 8, 2);
	       put32(b + 12, (uint32_t)len + 8); rehash(b, hl));
	BROKEN("bad-format-zero", put32(b + 8, 0); rehash(b, hl));
	BROKEN("bad-hdr-len-huge", put32(b + 12, 0xfffffff8u));
	BROKEN("bad-hdr-len-small", put32(b + 12, 96));
	BROKEN("bad-hdr-checksum", b[95] ^= 1);
	BROKEN("bad-payload-bitflip", b[hl + 3] ^= 0x80);
	BROKEN("bad-payload-hash", b[72] ^= 1; rehash(b, hl));
	BROKEN("bad-key-flip", b[LDR_HDR_FIXED + 10] ^= 4);
	BROKEN("bad-codec", b[16] = 7; rehash(b, hl));
	BROKEN("bad-flags", b[18] = 1; rehash(b, hl));
	BROKEN("bad-reserved", b[36] = 1; rehash(b, hl));
	BROKEN("bad-raw-len", put64(b + 48, 1); rehash(b, hl));
	BROKEN("bad-stored-len-huge", put64(b + 40, UINT64_MAX);
	       put64(b + 48, UINT64_MAX); rehash(b, hl));
	BROKEN("bad-key-len-lies", put32(b + 24, 1000); rehash(b, hl));
	BROKEN("bad-meta-len-huge", put32(b + 32, 0xffffffffu); rehash(b, hl));
	BROKEN("bad-ns-len-over", put32(b + 20, LDR_MAX_NS + 1); rehash(b, hl));
	BROKEN("bad-padding", b[hl - 1] = 1; rehash(b, hl));
	BROKEN("bad-zeroed-header", memset(b, 0, hl));
	free(b);
	free(v);

	printf("make_corpus: %d files in %s\n", nfiles, outdir);
	return 0;
}
