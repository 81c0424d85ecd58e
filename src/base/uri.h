/*
 * uri.h — showing a URI without its password (uri.c).
 */
#ifndef LARDER_URI_H
#define LARDER_URI_H

/* A copy of where with any password replaced by "***": in
 * scheme://user:password@host..., the password (which may hold '@' and
 * ':' of its own); a user shows. Not a URI (no "://"): an unchanged
 * copy. malloc'ed; NULL when out of memory. */
char *ldr_uri_masked(const char *where);

#endif
