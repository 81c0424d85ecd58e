/*
 * bytes.h — little-endian integers in byte buffers (the on-disk formats
 * are little-endian whatever the host: docs/format.md).
 */
#ifndef LARDER_BYTES_H
#define LARDER_BYTES_H

#include <stdint.h>

static inline void ldr_put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

/* Written out byte by byte, not as a loop: gcc -O2 merges straight-line
 * byte stores into one store, but not a loop's (a name hash on every hit
 * frames four lengths with these). */
static inline void ldr_put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

static inline void ldr_put64(uint8_t *p, uint64_t v)
{
	ldr_put32(p, (uint32_t)v);
	ldr_put32(p + 4, (uint32_t)(v >> 32));
}

static inline uint16_t ldr_get16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static inline uint32_t ldr_get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

static inline uint64_t ldr_get64(const uint8_t *p)
{
	return (uint64_t)ldr_get32(p) | (uint64_t)ldr_get32(p + 4) << 32;
}

#endif
