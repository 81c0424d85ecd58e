/*
 * buf.h — a growable byte string, NUL-terminated for text. A failed
 * growth sets oom and makes every later append a no-op, so a caller
 * checks once at the end.
 */
#ifndef LARDER_BUF_H
#define LARDER_BUF_H

#include <stddef.h>
#include <stdint.h>

struct ldr_buf {
	char *p; /* NULL until the first append */
	size_t len, cap;
	int oom;
};

/* Append n bytes: 0, or -1 (and oom set) without memory. */
int ldr_buf_add(struct ldr_buf *b, const void *p, size_t n);
/* Append printf-style text: 0 or -1 as above. */
int ldr_buf_printf(struct ldr_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void ldr_buf_free(struct ldr_buf *b);

#endif
