/*
 * store_util.h — what the C tests do to a store besides calling the API:
 * open one in the test's scratch directory, make and check deterministic
 * payloads, find an entry's files, count files under a directory.
 *
 * Linked into every program registered with larder_test()
 * (tests/CMakeLists.txt). Every helper fails the current test itself
 * (test_fail), naming the path or the call, rather than return an error.
 */
#ifndef LARDER_TEST_STORE_UTIL_H
#define LARDER_TEST_STORE_UTIL_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "larder.h"

/* n bytes (at least one, so that a 0-byte payload has a buffer too). */
void *xmalloc(size_t n);

/* The test's store: test_path("store"). */
const char *store_dir(void);

/* Opens the store at dir with *o exactly as given (NULL: the defaults). */
larder *open_store_at(const char *dir, const larder_opts *o);

/* Opens store_dir() with *o, creating it, and without fsync, since
 * nothing a test writes has to survive a power cut. */
larder *open_store_opts(larder_opts *o);

/* open_store_opts() with the defaults otherwise. */
larder *open_store(void);

/* The pattern seed of a key: FNV-1a over its bytes. */
uint64_t seed_of(const char *key);

/* The pattern seed of a (key, version): FNV-1a over the key, a 0xFF
 * separator (no key or version byte is 0xFF in the tests, so "ab"+"c" and
 * "a"+"bc" differ) and the version. */
uint64_t seed_of_kv(const void *key, size_t klen, const void *ver, size_t vlen);

/* The warnings a handle logged: how many, and the last one's text. */
struct logbook {
	int warnings;
	char last[1024];
};

/* A host of a tier test: its near store test_path(name) (made if
 * missing, without fsync) with `shared` behind it, as larder_opts.shared
 * takes it ("" = none: near alone); with lb, its warnings kept there from
 * the open on. */
larder *open_host(const char *name, const char *shared, struct logbook *lb);

/* n pattern bytes seeded by seed (malloc'ed: free() them). */
uint8_t *pattern_new(size_t n, uint64_t seed);

/* larder_get_or_fill of ("default", key, "v") whose loader writes n
 * pattern bytes seeded by seed_of_kv(key, "v") and counts itself in
 * fill_loads (a test resets it and compares): the outcome (LARDER_FILLED,
 * LARDER_HIT, ...), the entry's bytes checked. */
extern int fill_loads;
int fill_pattern(larder *db, const char *key, size_t n);

/* Puts `size` pattern bytes seeded by seed_of(key) under
 * ("default", key, "v") with *po (NULL: the defaults); returns the put's
 * result. */
int put_pattern_po(larder *db, const char *key, size_t size,
		   const larder_put_opts *po);

/* The path in store_dir() of the file of ("default", key, "v"): kind 'e'
 * its entry file, 'h' its key's head. A static buffer, rotated like
 * test_path()'s. */
const char *file_path(const char *key, char kind);

/* The whole content of the file at path (*len bytes; free() it). */
uint8_t *read_file(const char *path, size_t *len);

/* Files under dir, recursively, whose name contains `part` (NULL: every
 * file that is not a directory); a missing dir counts 0. */
int count_files(const char *dir, const char *part);

/* The entries larder_walk(db, NULL, flags) reports (it must succeed). */
int walk_count(larder *db, unsigned flags);

/* Threads hammering one handle at once: each runs run(h) with its own h
 * (h->id from 0) and counts in h->bad the wrong answers it saw. */
#define HAMMER_THREADS 4
struct hammer {
	larder *db;
	int id, bad;
	void (*run)(struct hammer *h);
	pthread_t t;
};
/* Starts HAMMER_THREADS threads on db, each running run. */
void hammer_start(struct hammer h[HAMMER_THREADS], larder *db,
		  void (*run)(struct hammer *h));
/* Waits for them; fails the test if any saw a wrong answer. */
void hammer_join(struct hammer h[HAMMER_THREADS]);

#endif
