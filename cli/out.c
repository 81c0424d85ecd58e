/*
 * out.c — output that survives arbitrary bytes: keys, versions and
 * metadata are caller bytes (SQL text, NULs, invalid UTF-8, terminal escape
 * sequences), so they are escaped for terminals and JSON here; and writes
 * that survive short writes, EINTR and non-blocking descriptors.
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

int out_write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n < 0) {
			/* A non-blocking stdout (inherited from a parent)
			 * must not turn into a failed get. */
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				struct pollfd pfd = {.fd = fd,
						     .events = POLLOUT};

				if (poll(&pfd, 1, -1) < 0 && errno != EINTR)
					return errno;
				continue;
			}
			if (errno == EINTR)
				continue;
			return errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/*
 * Length of the valid UTF-8 sequence at p (1..4), or 0 if the bytes there
 * are not one: overlong forms, surrogates and code points past U+10FFFF
 * are invalid. *cp gets the code point.
 */
static size_t utf8_seq(const unsigned char *p, size_t n, uint32_t *cp)
{
	uint32_t c;
	size_t len;
	uint32_t min;

	if (p[0] < 0x80) {
		*cp = p[0];
		return 1;
	}
	if ((p[0] & 0xe0) == 0xc0) {
		len = 2;
		c = p[0] & 0x1f;
		min = 0x80;
	} else if ((p[0] & 0xf0) == 0xe0) {
		len = 3;
		c = p[0] & 0x0f;
		min = 0x800;
	} else if ((p[0] & 0xf8) == 0xf0) {
		len = 4;
		c = p[0] & 0x07;
		min = 0x10000;
	} else {
		return 0;
	}
	if (n < len)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		c = (c << 6) | (p[i] & 0x3f);
	}
	if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
		return 0;
	*cp = c;
	return len;
}

int out_is_utf8(const void *p, size_t len)
{
	const unsigned char *s = p;
	uint32_t cp;

	while (len > 0) {
		size_t n = utf8_seq(s, len, &cp);

		if (n == 0)
			return 0;
		s += n;
		len -= n;
	}
	return 1;
}

void out_text(FILE *f, const void *p, size_t len)
{
	const unsigned char *s = p;
	uint32_t cp;

	while (len > 0) {
		size_t n = utf8_seq(s, len, &cp);

		if (n == 1 && cp >= 0x20 && cp < 0x7f && cp != '\\') {
			fputc((int)cp, f);
		} else if (n > 1 && cp >= 0xa0) {
			/* C1 controls (U+0080..U+009F) are escaped: some
			 * terminals act on them. */
			fwrite(s, 1, n, f);
		} else if (n == 1 && cp == '\\') {
			fputs("\\\\", f);
		} else if (n == 1 && cp == '\t') {
			fputs("\\t", f);
		} else if (n == 1 && cp == '\n') {
			fputs("\\n", f);
		} else if (n == 1 && cp == '\r') {
			fputs("\\r", f);
		} else {
			/* One byte at a time: the rest may start a valid
			 * sequence. */
			fprintf(f, "\\x%02x", s[0]);
			n = 1;
		}
		s += n;
		len -= n;
	}
}

const char *out_q(const char *s)
{
	enum { SLOTS = 4, SLOT_SIZE = 200 };
	static char slots[SLOTS][SLOT_SIZE];
	static unsigned next;
	char *slot = slots[next++ % SLOTS];
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);

	if (!f)
		return s;
	out_text(f, s, strlen(s));
	if (fclose(f) != 0 || !text) {
		free(text);
		return s;
	}
	/* Keys can be whole SQL queries: a message shows the start. */
	if (len >= SLOT_SIZE)
		snprintf(slot, SLOT_SIZE, "%.*s...", SLOT_SIZE - 4, text);
	else
		memcpy(slot, text, len + 1);
	free(text);
	return slot;
}

static void json_char(FILE *f, uint32_t cp)
{
	switch (cp) {
	case '"':
		fputs("\\\"", f);
		return;
	case '\\':
		fputs("\\\\", f);
		return;
	case '\n':
		fputs("\\n", f);
		return;
	case '\r':
		fputs("\\r", f);
		return;
	case '\t':
		fputs("\\t", f);
		return;
	default:
		if (cp < 0x20 || cp == 0x7f)
			fprintf(f, "\\u%04x", (unsigned)cp);
		else
			fputc((int)cp, f);
	}
}

void out_json_str(FILE *f, const void *p, size_t len)
{
	const unsigned char *s = p;
	uint32_t cp;

	fputc('"', f);
	while (len > 0) {
		size_t n = utf8_seq(s, len, &cp);

		if (n == 0) {
			fputs("\\ufffd", f);
			n = 1;
		} else if (n == 1) {
			json_char(f, cp);
		} else if (cp >= 0x80 && cp < 0xa0) {
			fprintf(f, "\\u%04x", (unsigned)cp);
		} else {
			fwrite(s, 1, n, f);
		}
		s += n;
		len -= n;
	}
	fputc('"', f);
}

static void hex(FILE *f, const void *p, size_t len)
{
	const unsigned char *s = p;

	for (size_t i = 0; i < len; i++)
		fprintf(f, "%02x", s[i]);
}

void out_json_bytes_field(FILE *f, const char *name, const void *p, size_t len)
{
	fprintf(f, "\"%s\":", name);
	if (!p) {
		fputs("null", f);
		return;
	}
	out_json_str(f, p, len);
	if (!out_is_utf8(p, len)) {
		fprintf(f, ",\"%s_hex\":\"", name);
		hex(f, p, len);
		fputc('"', f);
	}
}

void out_iso_time(char *buf, size_t size, int64_t ns)
{
	/* Floor division, so times before 1970 land in the right second. */
	time_t secs = (time_t)(ns / 1000000000 - (ns % 1000000000 < 0));
	struct tm tm;

	if (!gmtime_r(&secs, &tm) ||
	    strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(buf, size, "@%lld", (long long)ns);
}

int out_finish(const struct cli *c, FILE *f)
{
	int err;

	errno = 0;
	if (fflush(f) == 0 && !ferror(f))
		return CLI_OK;
	err = errno;
	/* The reader closed the pipe (`larder ls | head`): not our
	 * failure, nothing to say. */
	if (err == EPIPE)
		return CLI_OK;
	cli_err(c, "cannot write output: %s", err ? strerror(err) : "error");
	return CLI_IO;
}

const char *out_state_name(int state)
{
	switch (state) {
	case LARDER_STATE_OK:
		return "ok";
	case LARDER_STATE_EXPIRED:
		return "expired";
	case LARDER_STATE_CORRUPT:
		return "corrupt";
	case LARDER_STATE_NEWER:
		return "newer";
	case LARDER_STATE_MISPLACED:
		return "misplaced";
	default:
		return "unknown";
	}
}
