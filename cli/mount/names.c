/*
 * names.c — the reversible spelling of keys and versions as file names
 * (names.h says which bytes are encoded, and why).
 */
#include <string.h>

#include "names.h"

static const char hexdig[] = "0123456789ABCDEF";

/* Bytes a name cannot hold, and '%', which introduces an escape. */
static int must_escape(unsigned char c)
{
	return c == '/' || c == '\0' || c == '%';
}

int mount_name_encode(char out[MOUNT_NAME_MAX + 1], const void *p, size_t len)
{
	const unsigned char *b = p;
	size_t n = 0;

	/* "", "." and ".." are taken by the directory itself: the empty
	 * key is "%" alone (no escape is a lone '%'), and the dots are
	 * written escaped. */
	if (len == 0) {
		out[0] = '%';
		out[1] = '\0';
		return 1;
	}
	int dots = (len == 1 && b[0] == '.') ||
		   (len == 2 && b[0] == '.' && b[1] == '.');
	for (size_t i = 0; i < len; i++) {
		if (must_escape(b[i]) || dots) {
			if (n + 3 > MOUNT_NAME_MAX)
				return -1;
			out[n++] = '%';
			out[n++] = hexdig[b[i] >> 4];
			out[n++] = hexdig[b[i] & 15];
		} else {
			if (n + 1 > MOUNT_NAME_MAX)
				return -1;
			out[n++] = (char)b[i];
		}
	}
	out[n] = '\0';
	return (int)n;
}

static int hexval(char c)
{
	const char *d = c ? strchr(hexdig, c) : NULL;
	return d ? (int)(d - hexdig) : -1;
}

int mount_name_decode(unsigned char *out, size_t *outlen, const char *name)
{
	char again[MOUNT_NAME_MAX + 1];
	size_t n = 0;

	if (strcmp(name, "%") == 0) {
		*outlen = 0;
		return 0;
	}
	for (const char *s = name; *s; s++) {
		if (*s != '%') {
			out[n++] = (unsigned char)*s;
			continue;
		}
		int hi = hexval(s[1]);
		int lo = hi < 0 ? -1 : hexval(s[2]);
		if (lo < 0)
			return -1;
		out[n++] = (unsigned char)(hi << 4 | lo);
		s += 2;
	}
	/* One name per byte string: "%41" for "A" is refused. */
	if (mount_name_encode(again, out, n) < 0 || strcmp(again, name) != 0)
		return -1;
	*outlen = n;
	return 0;
}
