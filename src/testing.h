/*
 * testing.h — the one internal header for tests, benchmarks, fuzzers and
 * tools (linked with larder_static): the internals they may reach, and
 * ldr_test_* for what they may set on a handle. Nothing else of src/
 * is theirs to include, and no test writes a field of the handle
 * (docs/architecture.md).
 */
#ifndef LARDER_TESTING_H
#define LARDER_TESTING_H

#include <stddef.h>
#include <stdint.h>

#include "backend.h"
#include "fmt.h"
#include "fsutil.h"
#include "larder.h"
#include "lease.h"
#include "naming.h"
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
/* Age the handle's memo of verified entries by `ms` milliseconds, as if
 * that much time had passed (memo.c: its checks and re-hashes fall due). */
void ldr_test_memo_age(larder *db, int64_t ms);
/* Move the clock of the handle's head cache by `ms` milliseconds (head.c:
 * its checks fall due), and how many heads it holds. */
void ldr_test_head_cache_age(larder *db, int64_t ms);
size_t ldr_test_head_cache_size(larder *db);
/* Write the head of (ns, key) naming ver as a hint file, the format 0.2
 * wrote (head.c), instead of a link to the entry. */
int ldr_test_head_write_hint(larder *db, const char *ns, const void *key,
			     size_t klen, const void *ver, size_t vlen);
/* How many entries, and bytes, the handle's memo holds now. */
void ldr_test_memo_usage(larder *db, size_t *entries, uint64_t *bytes);

#endif
