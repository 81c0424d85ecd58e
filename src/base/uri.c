/*
 * uri.c — a URI as messages and `larder config` show it: its password
 * masked (uri.h). In the base layer because the tier (tier.c) and the
 * Redis connection (redis_conn.c) both show URIs, and one must not call
 * the other.
 */
#include "uri.h"

#include <stdlib.h>
#include <string.h>

char *ldr_uri_masked(const char *where)
{
	char *s = strdup(where);
	if (!s || !strstr(s, "://"))
		return s;
	/* scheme://[user[:password]@]host...: the password becomes "***"
	 * and the user shows, as redis_conn.c's parser reads them (a lone
	 * name before the '@' is a user, its password from
	 * LARDER_REDIS_PASSWORD). The tier and the connection's messages
	 * both mask with this function, so that a tier reads the same
	 * everywhere. */
	char *auth = strstr(s, "://") + 3;
	/* The last '@' before the path: a password may hold an '@' of its
	 * own, and none of it may show. */
	size_t alen = strcspn(auth, "/?");
	char *at = NULL;
	for (char *p = auth; p < auth + alen; p++)
		if (*p == '@')
			at = p;
	if (!at)
		return s;
	char *colon = memchr(auth, ':', (size_t)(at - auth));
	if (!colon)
		return s;
	char *pw = colon + 1;
	size_t tail = strlen(at);
	if ((size_t)(at - pw) >= 3) {
		memcpy(pw, "***", 3);
		memmove(pw + 3, at, tail + 1);
	} else {
		char *m = malloc((size_t)(pw - s) + 3 + tail + 1);
		if (!m) {
			free(s);
			return NULL;
		}
		memcpy(m, s, (size_t)(pw - s));
		memcpy(m + (pw - s), "***", 3);
		memcpy(m + (pw - s) + 3, at, tail + 1);
		free(s);
		s = m;
	}
	return s;
}
