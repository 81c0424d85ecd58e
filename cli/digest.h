/*
 * digest.h — the XXH3-128 content digest the tool computes itself: the
 * version `larder put` gives content without --version, and the 'h'
 * record of a `larder run` version (docs/cli.md). The only file of cli/
 * that includes xxhash is digest.c.
 */
#ifndef LARDER_CLI_DIGEST_H
#define LARDER_CLI_DIGEST_H

#include <stddef.h>

#define CLI_DIGEST_HEX 33 /* 32 hex digits and a NUL */

struct cli_digest; /* opaque */

/* A fresh digest, or NULL when out of memory. */
struct cli_digest *cli_digest_new(void);
void cli_digest_add(struct cli_digest *d, const void *buf, size_t len);
/* The digest of everything added so far, as 32 lowercase hex digits. */
void cli_digest_hex(struct cli_digest *d, char hex[CLI_DIGEST_HEX]);
void cli_digest_free(struct cli_digest *d); /* NULL is a no-op */

#endif
