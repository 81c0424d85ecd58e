/*
 * read.h — the read path's internal entry points (read.c): gets for the
 * library's own entries and for get_or_fill, and an entry from an open
 * file.
 */
#ifndef LARDER_READ_H
#define LARDER_READ_H

#include <stddef.h>
#include <stdint.h>

#include "store.h"

/* larder_get for the library's own entries: any namespace that
 * ldr_check_ns_internal accepts, the payload always verified (even with
 * LARDER_OPEN_TRUST_LOCAL), and neither hits nor misses are counted (the
 * caller counts what the lookup means to it). Corrupt entries are still
 * counted and quarantined. */
int ldr_get_internal(larder_entry **out, larder *db, const char *ns,
		     const void *key, size_t klen, const void *ver,
		     size_t vlen);

/* larder_get that counts no request, hit or miss: for larder_get_or_fill,
 * which counts what the whole call amounted to (larder.h). */
int ldr_get_quiet(larder_entry **out, larder *db, const char *ns,
		  const void *key, size_t klen, const void *ver, size_t vlen);

/* An entry from a whole entry file open at fd (checked and verified as a
 * read is), e.g. loaded data kept in memory. */
int ldr_entry_from_fd(larder *db, int fd, const char *ns, const void *key,
		      size_t klen, const void *ver, size_t vlen,
		      larder_entry **out);

#endif
