/* digest.c — the tool's XXH3-128 content digest (digest.h). */
#include "digest.h"

#include <stdio.h>

#include <xxhash.h>
#if defined(__x86_64__) || defined(__i386__)
/* The runtime-dispatch entry points pick AVX2/AVX-512 when present; the
 * plain symbols were measured 3x slower here (docs/performance.md). Both
 * are exported by Debian's shared libxxhash. */
#include <xxh_x86dispatch.h>
#endif

struct cli_digest *cli_digest_new(void)
{
	XXH3_state_t *st = XXH3_createState();
	if (st)
		XXH3_128bits_reset(st);
	return (struct cli_digest *)st;
}

void cli_digest_add(struct cli_digest *d, const void *buf, size_t len)
{
	XXH3_128bits_update((XXH3_state_t *)d, buf, len);
}

void cli_digest_hex(struct cli_digest *d, char hex[CLI_DIGEST_HEX])
{
	XXH128_canonical_t canon;
	XXH128_canonicalFromHash(&canon,
				 XXH3_128bits_digest((XXH3_state_t *)d));
	for (size_t i = 0; i < sizeof canon.digest; i++)
		snprintf(hex + 2 * i, 3, "%02x", canon.digest[i]);
}

void cli_digest_free(struct cli_digest *d)
{
	XXH3_freeState((XXH3_state_t *)d);
}
