/*
 * harness.h — larder's small test runner.
 *
 * A test file defines tests with TEST(name) { ... } and links harness.c,
 * which provides main(). Every test runs in its own forked child with a
 * timeout (LARDER_TEST_TIMEOUT seconds, default 120), so a crash, a hang or
 * a leaked lock fails one test, not the run. A test that cannot run here
 * (no root, no tool, no service) calls test_skip("why"): it is counted as
 * skipped, never as passed. The run ends with the line
 * "N passed, N failed, N skipped" and exits 1 on any failure, 77 if every
 * test that ran was skipped (CTest's SKIP_RETURN_CODE), 0 otherwise.
 *
 *   ./test_x            run every test
 *   ./test_x SUBSTR     run the tests whose name contains SUBSTR; a
 *                       SUBSTR that names no test is an error (exit 2)
 *
 * Each test gets a fresh scratch directory: test_dir(), removed afterwards
 * unless the test failed (then its path is printed).
 */
#ifndef LARDER_TEST_HARNESS_H
#define LARDER_TEST_HARNESS_H

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef void (*test_fn)(void);
void test_register(const char *name, test_fn fn);

#define TEST(name)                                                             \
	static void test_##name(void);                                         \
	__attribute__((constructor)) static void test_reg_##name(void)         \
	{                                                                      \
		test_register(#name, test_##name);                             \
	}                                                                      \
	static void test_##name(void)

/* The current test's scratch directory (absolute path). */
const char *test_dir(void);
/* A path inside test_dir(); returns a static buffer rotated over 8 slots. */
const char *test_path(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));

__attribute__((noreturn)) void test_fail(const char *file, int line,
					 const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Ends the current test as skipped, with the reason printed beside its
 * name ("skip - name: reason"). Call it from the test's own process. */
__attribute__((noreturn)) void test_skip(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));

/* Skips every test of the program, for a probe (a constructor) that finds
 * what the whole program needs missing: each test is then reported as
 * skipped with this reason and none runs. */
void test_skip_all(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The exit status of a program whose every test was skipped. */
#define TEST_SKIP_STATUS 77

#define ASSERT(cond)                                                           \
	do {                                                                   \
		if (!(cond))                                                   \
			test_fail(__FILE__, __LINE__, "ASSERT(%s)", #cond);    \
	} while (0)

#define ASSERT_EQ(a, b)                                                        \
	do {                                                                   \
		long long a_ = (long long)(a), b_ = (long long)(b);            \
		if (a_ != b_)                                                  \
			test_fail(__FILE__, __LINE__,                          \
				  "ASSERT_EQ(%s, %s): %lld != %lld", #a, #b,   \
				  a_, b_);                                     \
	} while (0)

#define ASSERT_NE(a, b)                                                        \
	do {                                                                   \
		long long a_ = (long long)(a), b_ = (long long)(b);            \
		if (a_ == b_)                                                  \
			test_fail(__FILE__, __LINE__,                          \
				  "ASSERT_NE(%s, %s): both %lld", #a, #b, a_); \
	} while (0)

#define ASSERT_STR_EQ(a, b)                                                    \
	do {                                                                   \
		const char *a_ = (a), *b_ = (b);                               \
		if (strcmp(a_, b_) != 0)                                       \
			test_fail(__FILE__, __LINE__,                          \
				  "ASSERT_STR_EQ(%s, %s): \"%s\" != \"%s\"",   \
				  #a, #b, a_, b_);                             \
	} while (0)

#define ASSERT_MEM_EQ(a, b, n)                                                 \
	do {                                                                   \
		size_t n_ = (n);                                               \
		if (memcmp((a), (b), n_) != 0)                                 \
			test_fail(__FILE__, __LINE__,                          \
				  "ASSERT_MEM_EQ(%s, %s, %zu) differ", #a, #b, \
				  n_);                                         \
	} while (0)

/* Asserts a larder call returned `want`; prints the handle's message. */
#define ASSERT_RC(db, call, want)                                              \
	do {                                                                   \
		int rc_ = (call);                                              \
		if (rc_ != (want))                                             \
			test_fail(__FILE__, __LINE__,                          \
				  "%s returned %d (%s), want %d: %s", #call,   \
				  rc_, larder_strerror(rc_), (want),           \
				  (db) ? larder_errmsg(db) : "");              \
	} while (0)

/* Deterministic pseudo-random bytes (xorshift), for payloads that every
 * reader can recompute and check byte for byte. */
void test_fill_pattern(void *buf, size_t len, uint64_t seed);
int test_check_pattern(const void *buf, size_t len, uint64_t seed);

/* Lines in a file (0 if it does not exist): loads counted by loaders
 * that append a line each. */
int test_count_lines(const char *path);

/* The libasan this binary runs with, if it is a dynamically linked ASan
 * build (it must come first in LD_PRELOAD, before any other preloaded
 * library); "" otherwise. */
void test_asan_runtime(char *out, size_t len);

/* Run a shell command; returns its exit status (or -1). */
int test_sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
