/*
 * err.h — error codes, errno mapping and the per-thread error message.
 *
 * The store handle keeps, for each thread, the message and OS errno of that
 * thread's last failure (like errno, but naming the path and operation).
 */
#ifndef LARDER_ERR_H
#define LARDER_ERR_H

#include "larder.h"

/* Map an errno from a failed syscall to a LARDER_E* code. */
int ldr_errno_code(int e);

/* Record a failure for the calling thread on `db` (NULL = larder_open) and
 * return rc. oserr is the errno behind it, 0 if none. */
int ldr_fail(const larder *db, int rc, int oserr, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Record a failed syscall: the code comes from errno. */
#define ldr_fail_errno(db, e, ...)                                             \
	ldr_fail((db), ldr_errno_code(e), (e), __VA_ARGS__)

/* Forget the calling thread's last failure on db. */
void ldr_clear_error(const larder *db);

#endif
