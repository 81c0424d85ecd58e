/*
 * publish.h — the writers the library uses itself (publish.c): internal
 * entries, fill mode, no head.
 */
#ifndef LARDER_PUBLISH_H
#define LARDER_PUBLISH_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "larder.h"
#include "store.h"

/* A writer for the library's own entries (LDR_FILES_NS allowed), which
 * are caches of something the library can compute again: never fsync'ed
 * (a record lost or torn by a crash fails its checksum and is recomputed)
 * and never moving a head hint. */
int ldr_writer_begin_internal(larder_writer **out, larder *db, const char *ns,
			      const void *key, size_t klen, const void *ver,
			      size_t vlen);

/* The modification time of the writer's temp file, in ns since the epoch:
 * the store filesystem's clock at the moment the file was made. 0 and
 * the time, or -1 with errno. */
int ldr_writer_fs_now(larder_writer *w, int64_t *out);

/* Fill-mode writers (for larder_get_or_fill): if the cache cannot keep
 * the data (a failing temp file, directory or link), the bytes move to
 * memory, and commit hands them back as an uncached entry in *uncached,
 * returning the cache's failure (negative) with its message. The caller
 * has checked ns with ldr_check_ns (only its name is checked again). */
int ldr_writer_begin_fill(larder_writer **out, larder *db, const char *ns,
			  const void *key, size_t klen, const void *ver,
			  size_t vlen, const larder_put_opts *opts);

/* own (may be NULL): when the commit published these very bytes through
 * a backend other than the handle's own directory, the entry made from
 * them in memory (checked as any), so that the fill need not read back
 * what it just sent; NULL when it did not (the caller reads). */
int ldr_writer_commit_fill(larder_writer *w, larder_entry **uncached,
			   larder_entry **own);

/* Do not move the head hint on commit (a lost lease). */
void ldr_writer_no_head(larder_writer *w);
/* The filler's fencing token (lease_acquire), with which the commit
 * moves the head (a backend refuses to move it back to a lower one). */
void ldr_writer_set_token(larder_writer *w, uint64_t token);
/* The filler's lease, settled by the commit itself where the backend can
 * (backend.h, stage_commit_lease): the head moves only if it is still
 * held then, and it is given back in the same step. */
struct ldr_be_lease;
void ldr_writer_set_lease(larder_writer *w, struct ldr_be_lease *l);

/* The directory backend's stage (be_dir.c, docs/backends.md): a writer
 * of the payload as stored (nothing compressed here, whatever opts
 * says), committed with the caller's header, which must describe what
 * was written under this name (else LARDER_EINVAL, nothing published).
 * Past the mapping threshold the payload is placed after a header of the
 * length this store's writer would give it; a header of another length
 * is refused then. commit frees w, as larder_writer_commit; abort with
 * larder_writer_abort. */
int ldr_writer_begin_stage(larder_writer **out, larder *db, const char *ns,
			   const void *key, size_t klen, const void *ver,
			   size_t vlen, const larder_put_opts *opts);
int ldr_writer_stage_write(larder_writer *w, const struct iovec *iov,
			   int iovcnt);
int ldr_writer_stage_commit(larder_writer *w, const void *hdr, size_t hlen,
			    int no_head);

#endif
