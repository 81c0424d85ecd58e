/*
 * stats.h — the store's persistent counters and usage (src/store/stats.c), as
 * the rest of the library sees them.
 *
 * A handle counts in memory (db->ctr, ldr_count) and keeps usage deltas
 * (bytes and entries per namespace) in memory; ldr_stats_flush() adds what
 * is pending to one of the store's shared counter files (a shard) and
 * zeroes it. larder_close() flushes, unless only lookup counters (hits,
 * requests, touches...) are pending and the handle is younger than a
 * minute: a one-shot hit writes nothing. The store-wide figures are the sums
 * over the shards. A shard that fails its check is set aside and counted
 * from zero again, said once in the log; usage is recounted by the next
 * full cleaning walk (ldr_usage_set).
 *
 * Usage is what the cleaning (gc.c) compares with the quotas: the file
 * bytes and the number of entries of each namespace, "" meaning the whole
 * store. It is kept by deltas: a publish adds, a removal (rm, quarantine,
 * eviction) subtracts.
 */
#ifndef LARDER_STATS_H
#define LARDER_STATS_H

#include <stdint.h>

#include "larder.h"

/* Add n to counter c of this handle (in memory; thread-safe). */
void ldr_count_add(larder *db, int c, uint64_t n);

/* A change of usage in namespace ns by this handle: file bytes and entry
 * count (negative for removals). In memory until the next flush;
 * thread-safe. */
void ldr_usage_add(larder *db, const char *ns, int64_t bytes, int64_t entries);

/* Add this handle's pending counters and usage to its shard and zero
 * them. 0, or a larder error code (recorded; nothing pending is lost: it
 * stays for the next flush). */
int ldr_stats_flush(larder *db);

/* The store's usage of namespace ns (NULL = every namespace together):
 * the sum over the shards plus this handle's pending deltas. 0 or an
 * error code. Never negative: a sum below zero reads as 0. */
int ldr_usage_read(larder *db, const char *ns, int64_t *bytes,
		   int64_t *entries);

/* After a full walk found namespace ns to hold exactly `bytes` and
 * `entries`: add the correction that makes the sums equal them (changes
 * flushed by others during the walk may make it slightly off; the next
 * walk corrects again). */
int ldr_usage_set(larder *db, const char *ns, int64_t bytes, int64_t entries);

/* The handle's stats state: made by larder_open, flushed and freed by
 * larder_close (ldr_stats_fini). */
int ldr_stats_init(larder *db);
void ldr_stats_fini(larder *db);

/* Flush if the last flush is older than a minute (long-running
 * processes). Cheap when it is not: one coarse clock read. Called at
 * publish and fill time, never on the hit path. */
void ldr_stats_tick(larder *db);

/* For tests: make the last flush, and the handle, look `seconds` older. */
void ldr_stats_age(larder *db, int64_t seconds);

/* For tests: the steps this handle has taken parsing and merging counter
 * files (bytes looked at, comparisons, elements moved), to show that
 * reading them is linear in what they hold. */
uint64_t ldr_stats_work(larder *db);

#endif
