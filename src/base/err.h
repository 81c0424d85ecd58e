/*
 * err.h — error codes, errno mapping and the error messages.
 *
 * Each thread keeps, for each handle it used, the message and OS errno of
 * its last failure on that handle (like errno, but naming the path and
 * operation, and one per handle).
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

/* 0 if the version field of a caller's struct (`what`, e.g.
 * "larder_fill_opts") is one this library understands, lo to hi; else
 * LARDER_EINVAL, recorded with a message that names the struct's init
 * function (docs/api.md, "Options and reports"). */
int ldr_check_version(const larder *db, const char *what, unsigned got,
		      unsigned lo, unsigned hi);

/* Forget the calling thread's last failure on db (its message is ""). */
void ldr_clear_error(const larder *db);

/* Free the calling thread's slot of db (a handle opened or closed: a new
 * one at the same address must not show the old one's message). */
void ldr_forget_errors(const larder *db);

/* A user callback's return as a larder code (larder.h, "Callbacks"). Take
 * mark with ldr_err_mark() just before calling it. 0 stays 0; a positive
 * value stays as is where stop_ok (a callback that stops a walk), else is
 * a failure; a negative code passes on when it is the latest failure that
 * a library call on db recorded inside the callback (its message stays);
 * anything else is LARDER_EUSER, with a message naming `what`. */
unsigned long ldr_err_mark(void);
/* What a callback of the library's own (larder_sql's loader) returns: a
 * failure code is marked as db's latest, its message left as it is, so
 * that ldr_cb_rc passes it on whether or not it was recorded. */
int ldr_own_rc(const larder *db, int rc);
int ldr_cb_rc(const larder *db, unsigned long mark, int rc, int stop_ok,
	      const char *what);

#endif
