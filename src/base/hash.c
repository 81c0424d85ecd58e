/*
 * hash.c — XXH3 hashing (hash.h); the one file that includes xxhash.
 *
 * Why XXH_STATIC_LINKING_ONLY is safe here, though the library links the
 * shared libxxhash (Debian 12: libxxhash0 0.8.1):
 *  - It is needed for one thing: the size of XXH3_state_t, so that a
 *    streaming state lives on the stack (struct ldr_hasher) instead of
 *    costing a malloc per hash. The state's layout is never touched here;
 *    only the library's functions read it, and they take a pointer.
 *  - The functions called are all exported by libxxhash.so.0 (checked
 *    with `nm -D`): XXH3_128bits_reset, XXH3_128bits_digest,
 *    XXH128_canonicalFromHash, and through xxh_x86dispatch.h the
 *    runtime-dispatch entry points XXH3_64bits_dispatch,
 *    XXH3_128bits_dispatch and XXH3_128bits_update_dispatch. The
 *    dispatching ones must stay: they pick the widest SIMD the CPU has,
 *    and the plain XXH3_128bits measured up to 18x slower on this hit
 *    path.
 *  - What an upgrade could break: a libxxhash whose XXH3_state_t grew
 *    past what this build reserved. The state is sized from the headers
 *    the build sees, and the static assertion below fails the build when
 *    the headers' state outgrows LDR_HASHER_SIZE; a newer .so with older
 *    headers cannot happen on one Debian release (libxxhash-dev and
 *    libxxhash0 come from one source package at one version). The .so's
 *    soname (libxxhash.so.0) changes if its ABI does, and the loader
 *    then refuses to start rather than misread a state.
 */
#include "hash.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "bytes.h"

#define XXH_STATIC_LINKING_ONLY /* sizeof (XXH3_state_t): see above */
#if defined(__x86_64__) || defined(__i386__)
#include <xxh_x86dispatch.h> /* runtime dispatch: see above */
#else
#include <xxhash.h>
#endif

static_assert(sizeof(XXH3_state_t) <= LDR_HASHER_SIZE,
	      "xxhash's XXH3_state_t outgrew struct ldr_hasher");
static_assert(_Alignof(XXH3_state_t) <= 64,
	      "xxhash's XXH3_state_t wants more alignment");

static XXH3_state_t *state(struct ldr_hasher *h)
{
	return (XXH3_state_t *)(void *)h->opaque;
}

/* Inputs up to this long are hashed by scalar code (XXH3's short path):
 * only longer ones reach the vector code. */
#define SHORT_INPUT 240

/* libxxhash 0.8.1's AVX2 and AVX-512 code returns with the upper halves
 * of the vector registers still in use (no vzeroupper before its ret:
 * objdump -d libxxhash.so.0.8.1). Until the next vzeroupper, every SSE
 * instruction after it, ours and libc's, runs in the slow mixed state:
 * on a verified 4 KiB hit that cost 0.35 us, a third of a raw read
 * (docs/performance.md). So the state is cleared after each call that
 * can take the vector path, where the CPU and the kernel have AVX (else
 * the dispatch never chose it, and vzeroupper would fault). */
static void vector_clear(void)
{
#if defined(__x86_64__) || defined(__i386__)
	static int avx = -1;
	int a = __atomic_load_n(&avx, __ATOMIC_RELAXED);
	if (a < 0) {
		/* Needed only before the library's constructors have run
		 * (ours may be called from another's); idempotent. */
		__builtin_cpu_init();
		a = __builtin_cpu_supports("avx") != 0;
		__atomic_store_n(&avx, a, __ATOMIC_RELAXED);
	}
	if (a)
		__asm__ volatile("vzeroupper");
#endif
}

void ldr_xxh128(const void *p, size_t n, uint8_t out[16])
{
	XXH128_canonicalFromHash((XXH128_canonical_t *)out, XXH3_128bits(p, n));
	if (n > SHORT_INPUT)
		vector_clear();
}

uint64_t ldr_xxh64(const void *p, size_t n)
{
	uint64_t h = XXH3_64bits(p, n);
	if (n > SHORT_INPUT)
		vector_clear();
	return h;
}

struct ldr_hasher *ldr_hasher_new(void)
{
	return aligned_alloc(_Alignof(struct ldr_hasher),
			     sizeof(struct ldr_hasher));
}

void ldr_hasher_free(struct ldr_hasher *h)
{
	free(h);
}

void ldr_hasher_reset(struct ldr_hasher *h)
{
	XXH3_128bits_reset(state(h));
}

void ldr_hasher_update(struct ldr_hasher *h, const void *p, size_t n)
{
	if (n) {
		XXH3_128bits_update(state(h), p, n);
		vector_clear();
	}
}

void ldr_hasher_u64(struct ldr_hasher *h, uint64_t x)
{
	uint8_t le[8];
	ldr_put64(le, x);
	XXH3_128bits_update(state(h), le, 8);
	vector_clear();
}

void ldr_hasher_field(struct ldr_hasher *h, const void *p, size_t n)
{
	ldr_hasher_u64(h, n);
	ldr_hasher_update(h, p, n);
}

void ldr_hasher_digest(struct ldr_hasher *h, uint8_t out[16])
{
	XXH128_canonicalFromHash((XXH128_canonical_t *)out,
				 XXH3_128bits_digest(state(h)));
	vector_clear();
}

uint8_t *ldr_put_field(uint8_t *p, const void *data, size_t n)
{
	ldr_put64(p, n);
	if (n)
		memcpy(p + 8, data, n);
	return p + 8 + n;
}
