/*
 * host.c — the host's name and boot id (host.h). File fingerprints and
 * leases mean something only inside one boot of one host (docs/format.md).
 */
#include "host.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "fsutil.h"

void ldr_hostname(char *buf, size_t len)
{
	if (gethostname(buf, len) != 0 || buf[0] == '\0')
		snprintf(buf, len, "unknown");
	buf[len - 1] = '\0';
	for (char *p = buf; *p; p++) {
		char c = *p;
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '-'))
			*p = '_';
	}
}

static pthread_once_t boot_once = PTHREAD_ONCE_INIT;
static uint8_t boot[16];
static int have_boot;

static void boot_read(void)
{
	char text[64];
	ssize_t n =
	    ldr_read_text("/proc/sys/kernel/random/boot_id", text, sizeof text);
	if (n < 36)
		return;
	int got = 0;
	for (ssize_t i = 0; i < n && got < 32; i++) {
		char c = text[i];
		int v = c >= '0' && c <= '9'   ? c - '0'
			: c >= 'a' && c <= 'f' ? c - 'a' + 10
			: c >= 'A' && c <= 'F' ? c - 'A' + 10
					       : -1;
		if (v < 0)
			continue;
		if (got % 2 == 0)
			boot[got / 2] = (uint8_t)(v << 4);
		else
			boot[got / 2] |= (uint8_t)v;
		got++;
	}
	have_boot = got == 32;
}

int ldr_boot_id(uint8_t out[16])
{
	pthread_once(&boot_once, boot_read);
	if (!have_boot)
		return -1;
	memcpy(out, boot, 16);
	return 0;
}

void ldr_boot_id_text(char out[37])
{
	uint8_t b[16];
	if (ldr_boot_id(b) != 0) {
		snprintf(out, 37, "unknown");
		return;
	}
	static const char digits[] = "0123456789abcdef";
	char *p = out;
	for (int i = 0; i < 16; i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10)
			*p++ = '-';
		*p++ = digits[b[i] >> 4];
		*p++ = digits[b[i] & 15];
	}
	*p = '\0';
}
