/* dl.c — loading a shared library on first use (dl.h). */
#include "dl.h"

#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

/* dlsym returns an object pointer; POSIX guarantees that a function
 * pointer has its size and representation, and memcpy converts without
 * the cast ISO C leaves undefined. */
_Static_assert(sizeof(void *) == sizeof(void (*)(void)),
	       "function pointers must fit dlsym's result");

void *ldr_dl_open(const char *soname, char *err, size_t errlen)
{
	void *h = dlopen(soname, RTLD_NOW | RTLD_LOCAL);
	if (!h) {
		const char *e = dlerror();
		snprintf(err, errlen, "%s", e ? e : "not found");
	}
	return h;
}

int ldr_dl_fn(void *h, const char *soname, const char *name, void *fn,
	      char *err, size_t errlen)
{
	void *sym = dlsym(h, name);
	if (!sym) {
		snprintf(err, errlen, "%s has no function %s (too old)", soname,
			 name);
		(void)dlclose(h); /* a failure leaves it mapped */
		return -1;
	}
	memcpy(fn, &sym, sizeof sym);
	return 0;
}
