/*
 * testing.c — what tests may set or ask on a handle (testing.h), at the
 * top of the tree so that it may see every layer.
 */
#include "testing.h"

#include "file.h"
#include "head.h"
#include "memo.h"
#include "open.h"
#include "publish.h"
#include "store.h"

const char *ldr_test_host(const larder *db)
{
	return db->host;
}

void ldr_test_counter_set(larder *db, int counter, uint64_t value)
{
	if (counter >= 0 && counter < LARDER_CTR_COUNT)
		__atomic_store_n(&db->ctr[counter], value, __ATOMIC_RELAXED);
}

void ldr_test_set_network(larder *db, int network)
{
	db->network = network;
}

void ldr_test_set_load(larder *db, int how)
{
	db->load_force = how;
}

void ldr_test_set_load_cost(larder *db, uint64_t size, uint64_t map_ns,
			    uint64_t read_ns, uint64_t populate_ns)
{
	ldr_file_set_cost(db, size, map_ns, read_ns, populate_ns);
}

unsigned ldr_test_mode_for_umask(unsigned mask)
{
	return ldr_mode_for_umask(mask);
}

int ldr_test_writer_begin_internal(larder_writer **out, larder *db,
				   const char *ns, const void *key, size_t klen,
				   const void *ver, size_t vlen)
{
	return ldr_writer_begin_internal(out, db, ns, key, klen, ver, vlen);
}

void ldr_test_memo_age(larder *db, int64_t ms)
{
	ldr_memo_age(db, ms);
}

void ldr_test_memo_usage(larder *db, size_t *entries, uint64_t *bytes)
{
	ldr_memo_usage(db, entries, bytes);
}

void ldr_test_head_cache_age(larder *db, int64_t ms)
{
	ldr_head_cache_age(db, ms);
}

int ldr_test_head_write_hint(larder *db, const char *ns, const void *key,
			     size_t klen, const void *ver, size_t vlen)
{
	return ldr_head_write_hint(db, ns, key, klen, ver, vlen);
}

int64_t ldr_test_head_copy_max(void)
{
	return LDR_HEAD_COPY_MAX;
}

size_t ldr_test_head_cache_size(larder *db)
{
	return ldr_head_cache_size(db);
}
