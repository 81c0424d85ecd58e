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
			/* A stop signal (interrupt.c) ends a write that
			 * a stalled reader would block for good. */
			if (errno == EINTR && !cli_stop_sig)
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

/*
 * Valid UTF-8 that is still shown escaped: characters that are invisible
 * or change how the text around them is shown, so that two different
 * keys could look the same on a terminal, or a string could disguise
 * what follows it. The C1 controls (some terminals act on them); the
 * bidirectional controls (U+061C, U+200E, U+200F, U+202A..U+202E,
 * U+2066..U+2069: "Trojan Source"); the other invisible formatting
 * characters (soft hyphen, zero-width spaces and joiners, invisible
 * operators, the byte-order mark, interlinear annotations, tags); the
 * line and paragraph separators (U+2028, U+2029). docs/cli.md lists
 * them.
 */
static int cp_hidden(uint32_t cp)
{
	static const struct {
		uint32_t lo, hi;
	} hidden[] = {
	    {0x0080, 0x009f},	/* C1 controls */
	    {0x00ad, 0x00ad},	/* soft hyphen */
	    {0x061c, 0x061c},	/* Arabic letter mark */
	    {0x180e, 0x180e},	/* Mongolian vowel separator */
	    {0x200b, 0x200f},	/* zero-width space .. right-to-left mark */
	    {0x2028, 0x202e},	/* separators, embeddings, overrides */
	    {0x2060, 0x206f},	/* word joiner .. isolates, deprecated */
	    {0xfeff, 0xfeff},	/* byte-order mark */
	    {0xfff9, 0xfffb},	/* interlinear annotation */
	    {0xe0000, 0xe007f}, /* tags */
	};

	for (size_t i = 0; i < sizeof(hidden) / sizeof(hidden[0]); i++)
		if (cp >= hidden[i].lo && cp <= hidden[i].hi)
			return 1;
	return 0;
}

/*
 * The one escaping of bytes for a terminal (out_text, out_safe). `exact`:
 * a backslash is doubled, so that the text can be read back byte for
 * byte; without it, backslashes are left alone (for a message whose
 * parts were escaped exactly already: escaping it again changes none of
 * them).
 */
static void escape(FILE *f, const void *p, size_t len, int exact)
{
	const unsigned char *s = p;
	uint32_t cp;

	while (len > 0) {
		size_t n = utf8_seq(s, len, &cp);

		if (n == 1 && cp == '\\') {
			fputs(exact ? "\\\\" : "\\", f);
		} else if (n == 1 && cp >= 0x20 && cp < 0x7f) {
			fputc((int)cp, f);
		} else if (n > 1 && cp_hidden(cp)) {
			fprintf(f, cp > 0xffff ? "\\U%08x" : "\\u%04x",
				(unsigned)cp);
		} else if (n > 1) {
			fwrite(s, 1, n, f);
		} else if (n == 1 && cp == '\t') {
			fputs("\\t", f);
		} else if (n == 1 && cp == '\n') {
			fputs("\\n", f);
		} else if (n == 1 && cp == '\r') {
			fputs("\\r", f);
		} else {
			/* A control byte, DEL, or a byte that does not start
			 * valid UTF-8: one byte at a time, as the rest may
			 * start a valid sequence. */
			fprintf(f, "\\x%02x", s[0]);
			n = 1;
		}
		s += n;
		len -= n;
	}
}

void out_text(FILE *f, const void *p, size_t len)
{
	escape(f, p, len, 1);
}

void out_safe(FILE *f, const void *p, size_t len)
{
	escape(f, p, len, 0);
}

void out_text_buf(char *buf, size_t size, const void *p, size_t len)
{
	char *text = NULL;
	size_t tlen = 0;
	FILE *f;

	if (size == 0)
		return;
	buf[0] = '\0';
	f = open_memstream(&text, &tlen);
	if (!f)
		return;
	out_text(f, p, len);
	if (fclose(f) != 0 || !text) {
		free(text);
		return;
	}
	/* Keys can be whole SQL queries: a message shows the start. */
	if (tlen >= size && size > 4)
		snprintf(buf, size, "%.*s...", (int)(size - 4), text);
	else
		snprintf(buf, size, "%s", text);
	free(text);
}

const char *out_q(const char *s)
{
	enum { SLOTS = 4, SLOT_SIZE = 200 };
	static char slots[SLOTS][SLOT_SIZE];
	static unsigned next;
	char *slot = slots[next++ % SLOTS];

	out_text_buf(slot, SLOT_SIZE, s, strlen(s));
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
		} else if (cp > 0xffff && cp_hidden(cp)) {
			/* A JSON escape is UTF-16: a surrogate pair. */
			fprintf(f, "\\u%04x\\u%04x",
				0xd800 + ((unsigned)(cp - 0x10000) >> 10),
				0xdc00 + ((unsigned)(cp - 0x10000) & 0x3ff));
		} else if (cp_hidden(cp)) {
			/* The same bytes once parsed; shown escaped when the
			 * JSON itself lands on a terminal. */
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

/* Print an entry's description as a JSON object; `sep` goes between the
 * members (",\n  " for a pretty object, "," for a compact one). */
void print_info_json(FILE *f, const larder_entry_info *info, const char *sep,
		     const char *open, const char *close)
{
	char created[32], expires[32];

	out_iso_time(created, sizeof(created), info->created);
	out_iso_time(expires, sizeof(expires), info->expires);
	fputs(open, f);
	fputs("\"ns\":", f);
	out_json_str(f, info->ns, strlen(info->ns));
	fputs(sep, f);
	out_json_bytes_field(f, "key", info->key, info->klen);
	fputs(sep, f);
	out_json_bytes_field(f, "version", info->key ? info->ver : NULL,
			     info->vlen);
	fputs(sep, f);
	out_json_bytes_field(f, "meta", info->key ? info->meta : NULL,
			     info->meta_len);
	fprintf(f, "%s\"size\":%llu", sep, (unsigned long long)info->size);
	fprintf(f, "%s\"stored_size\":%llu", sep,
		(unsigned long long)info->stored_size);
	fprintf(f, "%s\"file_size\":%llu", sep,
		(unsigned long long)info->file_size);
	/* 0 means the library could not read the time from the header. */
	if (info->created)
		fprintf(f, "%s\"created\":\"%s\"", sep, created);
	else
		fprintf(f, "%s\"created\":null", sep);
	fprintf(f, "%s\"created_ns\":%lld", sep, (long long)info->created);
	if (info->expires)
		fprintf(f, "%s\"expires\":\"%s\"", sep, expires);
	else
		fprintf(f, "%s\"expires\":null", sep);
	fprintf(f, "%s\"expires_ns\":%lld", sep, (long long)info->expires);
	fprintf(f, "%s\"codec\":\"%s\"", sep,
		info->compressed ? "zstd" : "none");
	fprintf(f, "%s\"state\":\"%s\"", sep, out_state_name(info->state));
	fprintf(f, "%s\"problem\":", sep);
	if (info->state != LARDER_STATE_OK && info->problem)
		out_json_str(f, info->problem, strlen(info->problem));
	else
		fputs("null", f);
	fprintf(f, "%s\"path\":", sep);
	out_json_str(f, info->path, strlen(info->path));
	fputs(close, f);
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
