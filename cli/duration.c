/*
 * duration.c — every option that takes a duration (--ttl, --lease,
 * --max-wait, --touch-interval) is parsed by one function, so that they
 * all read the same way and a bad value gets the same message shape:
 * "bad --OPT 'VALUE' (want ...)", with the option's range.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* A century: bounded so that created + ttl, in ns, cannot overflow
 * int64 (nor a touch interval in ns). */
#define CENTURY_SECONDS (36500.0 * 86400)

/* The longest --max-wait: a year, so that its milliseconds fit. */
#define MAX_WAIT_SECONDS (366.0 * 86400)

const struct cli_duration cli_dur_ttl = {"--ttl", 1, CENTURY_SECONDS,	   1,
					 1,	  0, "never for no expiry"};
const struct cli_duration cli_dur_ns_ttl = {"--ttl", 1, CENTURY_SECONDS,      1,
					    1,	     1, "0 or never for none"};
const struct cli_duration cli_dur_lease = {
    "--lease", LARDER_LEASE_MIN_SECONDS, LARDER_LEASE_MAX_SECONDS, 0, 0, 0,
    NULL};
const struct cli_duration cli_dur_max_wait = {
    "--max-wait", CLI_MIN_WAIT_SECONDS, MAX_WAIT_SECONDS, 0, 0, 0, NULL};
const struct cli_duration cli_dur_touch = {
    "--touch-interval", 0, CENTURY_SECONDS, 1, 0, 1, "0 for every hit"};

int cli_parse_duration(const struct cli_duration *d, const char *s, double *out)
{
	const char *p = s;
	double mult = 1, v;
	char num[32];
	size_t n;

	if (d->never && strcmp(s, "never") == 0) {
		*out = d->zero ? 0 : LARDER_TTL_NEVER;
		return 0;
	}
	/* Plain decimals only: strtod() alone would also take hex ("0x10"),
	 * exponents ("1e-9"), "inf", "nan", signs and leading blanks. */
	while (isdigit((unsigned char)*p))
		p++;
	if (p == s)
		return -1;
	if (*p == '.' && !d->whole) {
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
	/* Whole numbers up to a century of seconds are exact in a double. */
	v = strtod(num, NULL) * mult;
	if (v == 0 && d->zero) {
		*out = 0;
		return 0;
	}
	if (v <= 0 || v < d->min || v > d->max)
		return -1;
	*out = v;
	return 0;
}

/* A bound as the user would write it: whole days as "Nd". */
static void bound(char *buf, size_t size, double v)
{
	if (v >= 86400 && v == 86400 * (double)(long long)(v / 86400))
		snprintf(buf, size, "%gd", v / 86400);
	else
		snprintf(buf, size, "%g", v);
}

int cli_duration_opt(struct cli *c, const struct cli_duration *d,
		     const char *arg, double *out)
{
	char lo[32], hi[32];

	if (cli_parse_duration(d, arg, out) == 0)
		return CLI_CONTINUE;
	bound(lo, sizeof(lo), d->zero ? 0 : d->min);
	bound(hi, sizeof(hi), d->max);
	return cli_usage_err(c,
			     "bad %s '%s' (want seconds from %s to %s: %s, "
			     "or N with s/m/h/d%s%s)",
			     d->opt, out_q(arg), lo, hi,
			     d->whole ? "a whole number like 30"
				      : "a plain decimal like 30 or 2.5",
			     d->none ? "; " : "", d->none ? d->none : "");
}

int cli_duration_int(struct cli *c, const struct cli_duration *d,
		     const char *arg, int64_t *out)
{
	double v;
	int rc = cli_duration_opt(c, d, arg, &v);

	/* Whole and at most a century: exact in int64. */
	if (rc == CLI_CONTINUE)
		*out = (int64_t)v;
	return rc;
}
