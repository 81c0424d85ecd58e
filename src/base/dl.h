/*
 * dl.h — loading a shared library on first use (dlopen), for the SQL
 * sources: a process that never reaches PostgreSQL or SQLite does not
 * load libpq or libsqlite3 (docs/architecture.md).
 */
#ifndef LARDER_DL_H
#define LARDER_DL_H

#include <stddef.h>

/* dlopen(soname, RTLD_NOW | RTLD_LOCAL): RTLD_LOCAL keeps the library's
 * symbols out of the global namespace, where they could satisfy another
 * library's lookups. The handle, or NULL with the reason in err. */
void *ldr_dl_open(const char *soname, char *err, size_t errlen);

/* Look up function `name` in h (opened as soname) into *fn, a function
 * pointer of any type. 0, or -1 with the reason in err and h closed (a
 * library without a function larder needs is too old to use). */
int ldr_dl_fn(void *h, const char *soname, const char *name, void *fn,
	      char *err, size_t errlen);

#endif
