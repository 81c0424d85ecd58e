/* err.c — owns error codes, errno mapping and the error messages, kept per
 * handle and per thread. */
#include "err.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* The messages, as errno works: each thread keeps its own, so that threads
 * sharing a handle never overwrite each other's, and within a thread one
 * slot per handle, so that a failure on one handle leaves another's
 * message intact. A thread that fails on more handles than there are
 * slots loses the message of the one it failed on longest ago (its
 * larder_errmsg() is then ""). Thread-local storage needs no lock, and a
 * handle's close cannot reach into other threads' slots: a slot of a
 * closed handle is reused when a new handle at the same address is opened
 * by that thread (larder_open clears it) or fails there. */
#define SLOTS 8

struct slot {
	const larder *db;   /* NULL: larder_open, larder_sql_track(NULL) */
	unsigned long used; /* t.clock at the last failure; 0 = free */
	int oserr;
	char msg[1024];
};

static __thread struct {
	struct slot slot[SLOTS];
	/* Failures recorded by this thread so far: a mark taken before a
	 * callback runs tells whether the library failed inside it. */
	unsigned long clock;
	const larder *last_db; /* the latest failure's handle and code */
	int last_rc;
} t;

static const char *const messages[] = {
    "success",				      /* 0 */
    "invalid argument",			      /* -1 */
    "entry not found",			      /* -2 */
    "busy",				      /* -3 */
    "timed out",			      /* -4 */
    "corrupt data",			      /* -5 */
    "written by a newer format",	      /* -6 */
    "no space left or quota exceeded",	      /* -7 */
    "permission denied or unsafe mode",	      /* -8 */
    "out of memory",			      /* -9 */
    "I/O error",			      /* -10 */
    "stale file handle (network filesystem)", /* -11 */
    "not a larder store",		      /* -12 */
    "cancelled by the caller",		      /* -13 */
    "a callback failed",		      /* -14 */
};

const char *larder_strerror(int rc)
{
	if (rc == LARDER_EXISTS)
		return "entry already published";
	if (rc > 0 || -rc >= (int)(sizeof messages / sizeof messages[0]))
		return "unknown error";
	return messages[-rc];
}

int ldr_errno_code(int e)
{
	switch (e) {
	case 0:
		return LARDER_EIO;
	case ENOENT:
		return LARDER_ENOTFOUND;
	case ENOSPC:
	case EDQUOT:
	case EFBIG:
		return LARDER_EFULL;
	case EACCES:
	case EPERM:
	case EROFS:
	case ELOOP: /* a symlink inside the store: never followed */
		return LARDER_EPERM;
	case ENOMEM:
		return LARDER_ENOMEM;
	case ESTALE:
		return LARDER_ESTALE;
	case EINVAL:
	case ENAMETOOLONG:
		return LARDER_EINVAL;
	case EBUSY:
	case EWOULDBLOCK:
		return LARDER_EBUSY;
	case ETIMEDOUT:
		return LARDER_ETIMEOUT;
	default:
		return LARDER_EIO;
	}
}

static struct slot *find(const larder *db)
{
	for (int i = 0; i < SLOTS; i++)
		if (t.slot[i].used && t.slot[i].db == db)
			return &t.slot[i];
	return NULL;
}

int ldr_fail(const larder *db, int rc, int oserr, const char *fmt, ...)
{
	struct slot *s = find(db);
	if (!s) { /* a free slot, else the one failed on longest ago */
		s = &t.slot[0];
		for (int i = 1; i < SLOTS; i++)
			if (t.slot[i].used < s->used)
				s = &t.slot[i];
	}
	/* Formatted into a copy first: an argument may be this very
	 * message (a failure restated with more context). */
	char msg[sizeof s->msg];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	memcpy(s->msg, msg, sizeof msg);
	s->db = db;
	s->oserr = oserr;
	s->used = ++t.clock;
	t.last_db = db;
	t.last_rc = rc;
	return rc;
}

void ldr_clear_error(const larder *db)
{
	struct slot *s = find(db);
	if (s) {
		s->msg[0] = '\0';
		s->oserr = 0;
	}
}

void ldr_forget_errors(const larder *db)
{
	struct slot *s = find(db);
	if (s)
		memset(s, 0, sizeof *s);
}

int ldr_own_rc(const larder *db, int rc)
{
	if (rc < 0) {
		t.clock++;
		t.last_db = db;
		t.last_rc = rc;
	}
	return rc;
}

unsigned long ldr_err_mark(void)
{
	return t.clock;
}

int ldr_cb_rc(const larder *db, unsigned long mark, int rc, int stop_ok,
	      const char *what)
{
	if (rc == 0 || (rc > 0 && stop_ok))
		return rc;
	/* A library call on this handle that failed inside the callback,
	 * as the latest failure there: its code and message pass on. */
	if (rc < 0 && t.clock != mark && t.last_db == db && t.last_rc == rc)
		return rc;
	return ldr_fail(db, LARDER_EUSER, 0, "%s failed (returned %d)", what,
			rc);
}

const char *larder_errmsg(const larder *db)
{
	struct slot *s = find(db);
	return s ? s->msg : "";
}

int larder_errno(const larder *db)
{
	struct slot *s = find(db);
	return s ? s->oserr : 0;
}

const char *larder_version(void)
{
	return LARDER_VERSION_STRING;
}

int ldr_check_version(const larder *db, const char *what, unsigned got,
		      unsigned lo, unsigned hi)
{
	if (got >= lo && got <= hi)
		return 0;
	if (lo == hi)
		return ldr_fail(db, LARDER_EINVAL, 0,
				"%s version %u, this library understands %u "
				"(start from %s_init)",
				what, got, hi, what);
	return ldr_fail(db, LARDER_EINVAL, 0,
			"%s version %u, this library understands %u to %u "
			"(start from %s_init)",
			what, got, lo, hi, what);
}
