/*
 * testing.h — the one internal header for tests, benchmarks, fuzzers and
 * tools (linked with larder_static): the internals they may reach, and
 * ldr_test_* for what they may set on a handle. Nothing else of src/
 * is theirs to include, and no test writes a field of the handle
 * (docs/architecture.md).
 */
#ifndef LARDER_TESTING_H
#define LARDER_TESTING_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "backend.h"
#include "fmt.h"
#include "fsutil.h"
#include "larder.h"
#include "lease.h"
#include "naming.h"
#include "self.h"
#ifdef LARDER_WITH_REDIS
#include "redis_conn.h"
#endif
#include "slot.h"
#include "sql.h"
#include "sql_source.h"
#include "stats.h"
#include "sweep.h"

/* The host name the handle puts in temp and lease names. */
const char *ldr_test_host(const larder *db);
/* Set a counter (e.g. back to 0 between two steps of a test). */
void ldr_test_counter_set(larder *db, int counter, uint64_t value);
/* Take the store for a network filesystem (no mapping, and so on). */
void ldr_test_set_network(larder *db, int network);
/* How larder_get loads a verified payload from the map threshold up: 0
 * as measured (file.c), 1 always mapped, 2 always read (up to the read
 * ceiling; mapped past it), 3 always mapped with MAP_POPULATE. */
void ldr_test_set_load(larder *db, int how);
/* Make the handle believe it measured a verified load of `size` bytes at
 * map_ns mapped, read_ns read and populate_ns mapped with MAP_POPULATE
 * (enough loads of each to choose). */
void ldr_test_set_load_cost(larder *db, uint64_t size, uint64_t map_ns,
			    uint64_t read_ns, uint64_t populate_ns);
/* The widest mode a store may have that the umask allows (open.c). */
unsigned ldr_test_mode_for_umask(unsigned mask);
/* A writer for the library's own entries (publish.c). */
int ldr_test_writer_begin_internal(larder_writer **out, larder *db,
				   const char *ns, const void *key, size_t klen,
				   const void *ver, size_t vlen);
/* Make the namespaces' default TTLs the handle keeps ms older (config.c:
 * another process's change is read within a second). */
void ldr_test_ns_ttl_age(larder *db, int64_t ms);
/* Age the handle's memo of verified entries by `ms` milliseconds, as if
 * that much time had passed (memo.c: its checks and re-hashes fall due). */
void ldr_test_memo_age(larder *db, int64_t ms);
/* Make every entry directory the handle holds open due for its look
 * (file.c: compared with what its path opens now), as if a second had
 * passed; and how many it holds open and ready. */
void ldr_test_edirs_due(larder *db);
int ldr_test_edirs_held(larder *db);
/* How many reused read buffers the handle has made and not freed (lent
 * to entries or spare; file.c, "Reused buffers"), or -1 where it makes
 * none (AddressSanitizer, or out of memory at open). */
int ldr_test_bufs_made(larder *db);
/* Move the clock of the handle's head cache by `ms` milliseconds (head.c:
 * its checks fall due), and how many heads it holds. */
void ldr_test_head_cache_age(larder *db, int64_t ms);
size_t ldr_test_head_cache_size(larder *db);
/* The largest entry file whose head is a copy of it on a network
 * filesystem (head.c, LDR_HEAD_COPY_MAX). */
int64_t ldr_test_head_copy_max(void);
/* Write the head of (ns, key) naming ver as a hint file, the format 0.2
 * wrote (head.c), instead of a link to the entry. */
int ldr_test_head_write_hint(larder *db, const char *ns, const void *key,
			     size_t klen, const void *ver, size_t vlen);
/* How many entries, and bytes, the handle's memo holds now. */
void ldr_test_memo_usage(larder *db, size_t *entries, uint64_t *bytes);

/* The storage seam (src/store/backend.h, docs/backends.md), for the
 * conformance suite tests/test_backend.c: one backend's table, reached
 * by names rather than hashes. Each returns what the operation of the
 * table returns. */
struct ldr_backend;
struct ldr_be_lease;
struct ldr_be_wait;
struct ldr_be_holder;
/* Open the backend `where` names for db (NULL: db's own directory), as
 * larder_open does; its kind ("dir", "redis"). */
int ldr_test_be_open(struct ldr_backend **out, larder *db, const char *where);
void ldr_test_be_close(struct ldr_backend *be);
const char *ldr_test_be_kind(const struct ldr_backend *be);
/* Hang be on db as the seam get, put, remove and fill go through (not
 * db's own directory: the read and publish paths through the table);
 * db owns it from here. */
void ldr_test_be_hang(larder *db, struct ldr_backend *be);
/* A handle with a shared tier: end its back-off now, as if it had run
 * out; the back-off it was in, in ms (0: none). */
unsigned ldr_test_tier_retry_now(larder *db);
/* Publish (ns, key, ver) holding data through stage_begin, stage_write
 * in pieces of `piece` bytes (0: one), stage_commit with the entry's
 * header (flags: LDR_TEST_BE_NO_HEAD, LDR_TEST_BE_BAD_HEADER: a header
 * whose payload checksum is not the payload's). */
#define LDR_TEST_BE_NO_HEAD 0x1u
#define LDR_TEST_BE_BAD_HEADER 0x2u
int ldr_test_be_publish(struct ldr_backend *be, const char *ns, const char *key,
			const char *ver, const void *data, size_t len,
			size_t piece, unsigned flags, uint64_t token);
/* Begin a stage and drop it (stage_abort). */
int ldr_test_be_stage_abandon(struct ldr_backend *be, const char *ns,
			      const char *key, const char *ver,
			      const void *data, size_t len);
/* Read (ns, key, ver) and judge it with ldr_entry_check: 0 and its
 * larder_entry_state in *state, a malloc'ed copy of its payload in *data
 * (when OK); with `reject`, a bad one is handed to reject(). With
 * `keep`, the file read is kept in *keep (for remove-if-same; free with
 * ldr_test_be_kept_free). */
int ldr_test_be_read(struct ldr_backend *be, const char *ns, const char *key,
		     const char *ver, int *state, uint8_t **data, size_t *len,
		     int reject, void **keep);
/* reject() on an entry read (kept), as a reader that judged it bad. */
void ldr_test_be_reject(struct ldr_backend *be, const char *ns, const char *key,
			const char *ver, void *kept, const char *why);
void ldr_test_be_kept_free(void *kept);
/* remove(), if still the file kept (NULL: whatever is there; ver NULL:
 * the head's version). */
int ldr_test_be_remove(struct ldr_backend *be, const char *ns, const char *key,
		       const char *ver, void *kept);
/* Heads: get (*ver malloc'ed, NUL-terminated), set, drop. */
int ldr_test_be_head_get(struct ldr_backend *be, const char *ns,
			 const char *key, char **ver);
int ldr_test_be_head_set(struct ldr_backend *be, const char *ns,
			 const char *key, const char *ver, uint64_t token);
int ldr_test_be_head_drop(struct ldr_backend *be, const char *ns,
			  const char *key, const char *ver);
/* Leases of (ns, key). A holder seen is malloc'ed in *h (free()); its
 * pid and judgements by ldr_test_be_holder. */
int ldr_test_be_lease_acquire(struct ldr_backend *be, const char *ns,
			      const char *key, uint64_t lease_ms,
			      uint64_t renew_ms, struct ldr_be_lease **out,
			      uint64_t *token, struct ldr_be_holder **h);
int ldr_test_be_lease_held(struct ldr_be_lease *l);
int ldr_test_be_lease_observe(struct ldr_backend *be, const char *ns,
			      const char *key, struct ldr_be_holder **h);
int ldr_test_be_lease_break(struct ldr_backend *be, const char *ns,
			    const char *key, const struct ldr_be_holder *h);
void ldr_test_be_lease_release(struct ldr_be_lease *l);
void ldr_test_be_holder(const struct ldr_be_holder *h, long *pid, int *dead,
			int *blind);
/* Waiting for a publish of (ns, key, ver). */
int ldr_test_be_wait_begin(struct ldr_backend *be, const char *ns,
			   const char *key, const char *ver,
			   struct ldr_be_wait **out);
int ldr_test_be_wait(struct ldr_be_wait *w, uint64_t max_ms,
		     const volatile sig_atomic_t *cancel);
void ldr_test_be_wait_end(struct ldr_be_wait *w);
#define LDR_TEST_BE_WAIT_MORE 1 /* LDR_BE_WAIT_MORE */
/* Listing: the namespaces, the entries of one (hash, where). */
int ldr_test_be_list_ns(struct ldr_backend *be, larder_ns_fn cb, void *p);
int ldr_test_be_walk(struct ldr_backend *be, const char *ns,
		     int (*cb)(const uint8_t hash[16], const char *where,
			       void *p),
		     void *p);
int ldr_test_be_stats(struct ldr_backend *be, uint64_t *bytes,
		      uint64_t *entries, int *reachable);

#endif
