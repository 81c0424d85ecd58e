/*
 * duration.c — parsing the durations that options take: --ttl, --lease
 * and --max-wait.
 */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* Seconds, or a number with suffix s/m/h/d, or "never". */
/* A century: bounded so that created + ttl, in ns, cannot overflow int64. */
#define TTL_MAX_SECONDS (36500LL * 86400)

int cli_parse_seconds(const char *s, double min, double max, double *out)
{
	const char *p = s;
	double mult = 1, v;
	char num[32];
	size_t n;

	/* Plain decimals only: strtod() alone would also take hex ("0x10"),
	 * exponents ("1e-9"), "inf", "nan", signs and leading blanks. */
	while (isdigit((unsigned char)*p))
		p++;
	if (p == s)
		return -1;
	if (*p == '.') {
		const char *frac = ++p;

		while (isdigit((unsigned char)*p))
			p++;
		if (p == frac)
			return -1;
	}
	n = (size_t)(p - s);
	switch (*p) {
	case '\0':
		break;
	case 's':
		p++;
		break;
	case 'm':
		mult = 60;
		p++;
		break;
	case 'h':
		mult = 3600;
		p++;
		break;
	case 'd':
		mult = 86400;
		p++;
		break;
	default:
		return -1;
	}
	if (*p != '\0' || n >= sizeof(num))
		return -1;
	memcpy(num, s, n);
	num[n] = '\0';
	v = strtod(num, NULL) * mult;
	if (v < min || v <= 0 || v > max)
		return -1;
	*out = v;
	return 0;
}

/* The longest --max-wait: a year, so that its milliseconds fit. */
#define CLI_MAX_WAIT_SECONDS (366.0 * 86400)

int cli_wait_opt(struct cli *c, int is_lease, const char *arg, double *out)
{
	double min = is_lease ? LARDER_LEASE_MIN_SECONDS : CLI_MIN_WAIT_SECONDS;
	double max = is_lease ? LARDER_LEASE_MAX_SECONDS : CLI_MAX_WAIT_SECONDS;

	if (cli_parse_seconds(arg, min, max, out) == 0)
		return CLI_CONTINUE;
	return cli_usage_err(c,
			     "bad %s '%s' (want seconds from %g to %g: a plain "
			     "decimal like 30 or 2.5, or N with s/m/h/d)",
			     is_lease ? "--lease" : "--max-wait", out_q(arg),
			     min, max);
}

int cli_parse_ttl(const char *s, int64_t *out)
{
	unsigned long long v;
	long long mult = 1;
	char *end;

	if (strcmp(s, "never") == 0) {
		*out = LARDER_TTL_NEVER;
		return 0;
	}
	if (!isdigit((unsigned char)s[0]))
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno)
		return -1;
	switch (*end) {
	case '\0':
		break;
	case 's':
		end++;
		break;
	case 'm':
		mult = 60;
		end++;
		break;
	case 'h':
		mult = 3600;
		end++;
		break;
	case 'd':
		mult = 86400;
		end++;
		break;
	default:
		return -1;
	}
	if (*end != '\0' || v == 0 ||
	    v > (unsigned long long)(TTL_MAX_SECONDS / mult))
		return -1;
	*out = (int64_t)v * mult;
	return 0;
}
