/* err.c — owns error codes, errno mapping and per-thread error messages. */
#include "err.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* One slot per thread: the handle it refers to, its message and errno. The
 * slot is per thread so that threads sharing a handle do not overwrite each
 * other's messages, as errno works. */
static __thread struct {
	const larder *db;
	int oserr;
	char msg[1024];
} last;

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

int ldr_fail(const larder *db, int rc, int oserr, const char *fmt, ...)
{
	va_list ap;
	last.db = db;
	last.oserr = oserr;
	va_start(ap, fmt);
	vsnprintf(last.msg, sizeof last.msg, fmt, ap);
	va_end(ap);
	return rc;
}

void ldr_clear_error(const larder *db)
{
	if (last.db == db) {
		last.msg[0] = '\0';
		last.oserr = 0;
	}
}

const char *larder_errmsg(const larder *db)
{
	return last.db == db ? last.msg : "";
}

int larder_errno(const larder *db)
{
	return last.db == db ? last.oserr : 0;
}

const char *larder_open_errmsg(void)
{
	return last.db == NULL ? last.msg : "";
}

const char *larder_version(void)
{
	return LARDER_VERSION_STRING;
}
