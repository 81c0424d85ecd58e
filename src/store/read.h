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

/* ldr_get_quiet of (ns, key, ver) whose read through db->be (a backend
 * other than the handle's own directory; with a near tier, near having
 * missed) is done already: f and rc are what its read gave (backend.h,
 * lease_acquire_read). f is taken over (left empty); the entry is
 * judged, verified and handed out, or rejected, as the get's would be. */
struct ldr_file;
/* ldr_get_quiet of a version in the near tier alone, for a handle whose
 * db->be is a tier in front of this directory (db->be_near): a near miss
 * is LARDER_ENOTFOUND, and the shared tier is not asked. */
int ldr_get_near(larder_entry **out, larder *db, const char *ns,
		 const void *key, size_t klen, const void *ver, size_t vlen);
/* The `pre` to read f with: room for the entry handle before its bytes. */
extern const size_t ldr_get_read_pre;
int ldr_get_read(larder_entry **out, larder *db, const char *ns,
		 const void *key, size_t klen, const void *ver, size_t vlen,
		 struct ldr_file *f, int rc);

/* An entry from a whole entry file open at fd (checked and verified as a
 * read is), e.g. loaded data kept in memory. */
int ldr_entry_from_fd(larder *db, int fd, const char *ns, const void *key,
		      size_t klen, const void *ver, size_t vlen,
		      larder_entry **out);

/* The same from an entry file's bytes in memory, the header's (hlen)
 * then the stored payload's (plen), copied. */
int ldr_entry_from_mem(larder *db, const void *hdr, size_t hlen,
		       const void *payload, size_t plen, const char *ns,
		       const void *key, size_t klen, const void *ver,
		       size_t vlen, larder_entry **out);

#endif
