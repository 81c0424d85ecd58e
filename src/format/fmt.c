/*
 * fmt.c — owns the entry header format v1: encode, decode, verify.
 *
 * Layout (little-endian; docs/format.md is the byte-by-byte reference):
 *
 *    0  8  magic "\x89LARDER\n"
 *    8  4  format version (1)
 *   12  4  header length = payload offset (8- or 4096-aligned)
 *   16  2  codec (0 none, 1 zstd)
 *   18  2  flags (0)
 *   20  4  namespace length
 *   24  4  key length
 *   28  4  version length
 *   32  4  meta length
 *   36  4  reserved (0)
 *   40  8  stored payload length
 *   48  8  raw payload length
 *   56  8  created, ns since epoch
 *   64  8  expires, ns since epoch (0 = never)
 *   72 16  XXH3-128 of the stored payload (canonical)
 *   88 16  XXH3-128 of the header bytes [0, header length) with this field
 *          zeroed
 *  104     namespace, key, version, meta; zero padding to header length
 *
 * Two hashes instead of one over header+payload: the payload is streamed
 * and hashed before its length (a header field) is known, and a reader can
 * reject a bad header without touching the payload.
 */
#include "fmt.h"

#include <string.h>

#include "bytes.h"
#include "err.h"
#include "hash.h"

uint64_t ldr_hdr_min_len(uint32_t ns_len, uint32_t key_len, uint32_t ver_len,
			 uint32_t meta_len)
{
	return (uint64_t)LDR_HDR_FIXED + ns_len + key_len + ver_len + meta_len;
}

uint64_t ldr_hdr_padded_len(uint64_t min_len, int aligned)
{
	uint64_t a = aligned ? LDR_PAGE : 8;
	return (min_len + a - 1) / a * a;
}

/* Header checksum: the header bytes with the checksum field taken as zero.
 * Hashed in three pieces so the buffer need not be modified. */
static void hdr_hash(const uint8_t *buf, uint32_t hdr_len, uint8_t out[16])
{
	static const uint8_t zero[16];
	uint8_t small[512];
	if (hdr_len <= sizeof small) {
		/* the common case, on every hit: one call on a copy */
		memcpy(small, buf, hdr_len);
		memset(small + 88, 0, 16);
		ldr_xxh128(small, hdr_len, out);
		return;
	}
	struct ldr_hasher st;
	ldr_hasher_reset(&st);
	ldr_hasher_update(&st, buf, 88);
	ldr_hasher_update(&st, zero, 16);
	ldr_hasher_update(&st, buf + 104, hdr_len - 104);
	ldr_hasher_digest(&st, out);
}

void ldr_hdr_encode(const ldr_hdr *h, uint8_t *buf)
{
	memset(buf, 0, h->hdr_len);
	memcpy(buf, LDR_MAGIC, LDR_MAGIC_LEN);
	ldr_put32(buf + 8, LDR_FORMAT);
	ldr_put32(buf + 12, h->hdr_len);
	ldr_put16(buf + 16, h->codec);
	ldr_put16(buf + 18, h->flags);
	ldr_put32(buf + 20, h->ns_len);
	ldr_put32(buf + 24, h->key_len);
	ldr_put32(buf + 28, h->ver_len);
	ldr_put32(buf + 32, h->meta_len);
	ldr_put64(buf + 40, h->stored_len);
	ldr_put64(buf + 48, h->raw_len);
	ldr_put64(buf + 56, (uint64_t)h->created);
	ldr_put64(buf + 64, (uint64_t)h->expires);
	memcpy(buf + 72, h->payload_hash, 16);
	uint8_t *p = buf + LDR_HDR_FIXED;
	if (h->ns_len)
		memcpy(p, h->ns, h->ns_len);
	p += h->ns_len;
	if (h->key_len)
		memcpy(p, h->key, h->key_len);
	p += h->key_len;
	if (h->ver_len)
		memcpy(p, h->ver, h->ver_len);
	p += h->ver_len;
	if (h->meta_len)
		memcpy(p, h->meta, h->meta_len);
	hdr_hash(buf, h->hdr_len, buf + 88);
}

int ldr_hdr_need(const uint8_t *buf, size_t len, uint32_t *need)
{
	if (len < LDR_HDR_FIXED || memcmp(buf, LDR_MAGIC, LDR_MAGIC_LEN) != 0)
		return LARDER_ECORRUPT;
	uint32_t format = ldr_get32(buf + 8), hdr_len = ldr_get32(buf + 12);
	/* Bytes 0-15 mean the same in every format (docs/format.md,
	 * "Forward compatibility"): a header shorter than the fixed part
	 * cannot be an entry of any format. */
	if (format == 0 || hdr_len < LDR_HDR_FIXED)
		return LARDER_ECORRUPT;
	*need = hdr_len;
	return format > LDR_FORMAT ? LARDER_EVERSION : 0;
}

static int bad(const char **why, const char *reason)
{
	if (why)
		*why = reason;
	return LARDER_ECORRUPT;
}

/* A header that claims a newer format: it is one only if it keeps what
 * every format promises (docs/format.md, "Forward compatibility"): the
 * whole header is in the file and its checksum, at the same place and
 * computed the same way, matches. Anything else (a flipped bit in the
 * format field of a v1 header, a stub with the magic and a large format)
 * cannot be an entry of any format. */
static int newer(const uint8_t *buf, size_t len, uint32_t need,
		 const char **why)
{
	if (need > len)
		return bad(why, "claims a newer format, but its header is "
				"longer than the file");
	uint8_t sum[16];
	hdr_hash(buf, need, sum);
	if (memcmp(sum, buf + 88, 16) != 0)
		return bad(why, "claims a newer format, but fails the header "
				"checksum every format keeps");
	if (why)
		*why = "written by a newer format";
	return LARDER_EVERSION;
}

int ldr_hdr_decode(ldr_hdr *out, const uint8_t *buf, size_t len,
		   const char **why)
{
	/* Zeroed first, whatever follows: a reader judging a file once
	 * (ldr_entry_check) zeroes it no more itself. */
	memset(out, 0, sizeof *out);
	uint32_t need;
	int rc = ldr_hdr_need(buf, len, &need);
	if (rc == LARDER_EVERSION)
		return newer(buf, len, need, why);
	if (rc)
		return bad(why, len < LDR_HDR_FIXED ? "shorter than a header"
				: memcmp(buf, LDR_MAGIC, LDR_MAGIC_LEN) != 0
				    ? "bad magic"
				    : "bad format or header length");
	if (need > len)
		return bad(why, "header longer than the file");

	out->format = ldr_get32(buf + 8);
	out->hdr_len = need;
	out->codec = ldr_get16(buf + 16);
	out->flags = ldr_get16(buf + 18);
	out->ns_len = ldr_get32(buf + 20);
	out->key_len = ldr_get32(buf + 24);
	out->ver_len = ldr_get32(buf + 28);
	out->meta_len = ldr_get32(buf + 32);
	out->stored_len = ldr_get64(buf + 40);
	out->raw_len = ldr_get64(buf + 48);
	out->created = (int64_t)ldr_get64(buf + 56);
	out->expires = (int64_t)ldr_get64(buf + 64);
	memcpy(out->payload_hash, buf + 72, 16);

	if (out->ns_len > LDR_MAX_NS || out->key_len > LDR_MAX_KEY ||
	    out->ver_len > LDR_MAX_VER || out->meta_len > LDR_MAX_META)
		return bad(why, "field length out of range");
	uint64_t min = ldr_hdr_min_len(out->ns_len, out->key_len, out->ver_len,
				       out->meta_len);
	if (need != ldr_hdr_padded_len(min, 0) &&
	    need != ldr_hdr_padded_len(min, 1))
		return bad(why, "header length does not match its fields");
	if (ldr_get32(buf + 36) != 0)
		return bad(why, "reserved field not zero");
	if (out->codec > LDR_CODEC_ZSTD)
		return bad(why, "unknown codec");
	if (out->flags != 0)
		return bad(why, "unknown flags");
	if (out->codec == LDR_CODEC_NONE && out->raw_len != out->stored_len)
		return bad(why, "raw and stored lengths differ");
	for (uint64_t i = min; i < need; i++)
		if (buf[i] != 0)
			return bad(why, "padding not zero");

	uint8_t sum[16];
	hdr_hash(buf, need, sum);
	if (memcmp(sum, buf + 88, 16) != 0)
		return bad(why, "header checksum mismatch");

	const uint8_t *p = buf + LDR_HDR_FIXED;
	out->ns = p;
	p += out->ns_len;
	out->key = p;
	p += out->key_len;
	out->ver = p;
	p += out->ver_len;
	out->meta = p;
	return 0;
}

int ldr_payload_verify(const ldr_hdr *h, const void *payload)
{
	uint8_t sum[16];
	ldr_xxh128(payload, h->stored_len, sum);
	return memcmp(sum, h->payload_hash, 16) == 0 ? 0 : LARDER_ECORRUPT;
}
