/*
 * limits.c — the size and limit options (--max-bytes, --max-entries)
 * that `larder init` and `larder config` share, and setting them.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

int cli_parse_size(const char *s, int64_t *out)
{
	char *end;
	if (!isdigit((unsigned char)s[0]))
		return -1;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno)
		return -1;
	int shift = 0;
	switch (toupper((unsigned char)*end)) {
	case '\0':
		break;
	case 'K':
		shift = 10;
		break;
	case 'M':
		shift = 20;
		break;
	case 'G':
		shift = 30;
		break;
	case 'T':
		shift = 40;
		break;
	default:
		return -1;
	}
	if (shift) {
		end++;
		if (*end == 'i' || *end == 'B')
			end += *end == 'i' && end[1] == 'B' ? 2 : 1;
	}
	if (*end != '\0' || v > (unsigned long long)(INT64_MAX >> shift))
		return -1;
	*out = (int64_t)(v << shift);
	return 0;
}

/* A whole number >= 0 that fits int64. */
static int parse_count(const char *s, int64_t *out)
{
	char *end;
	if (!isdigit((unsigned char)s[0]))
		return -1;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || *end || v > INT64_MAX)
		return -1;
	*out = (int64_t)v;
	return 0;
}

/* A whole-number option into *dst, marking *given. */
static int count_opt(struct cli *c, const char *opt, const char *want,
		     const char *arg, int64_t *dst, int *given)
{
	if (parse_count(arg, dst) != 0)
		return cli_usage_err(c, "bad --%s '%s' (want %s)", opt, arg,
				     want);
	*given = 1;
	return CLI_CONTINUE;
}

int cli_limit_opt(struct cli *c, struct cli_limits *l, int id, const char *arg)
{
	int64_t v;
	if (id == CLI_OPT_MAX_BYTES) {
		if (cli_parse_size(arg, &v) != 0)
			return cli_usage_err(c,
					     "bad --max-bytes '%s' (want a "
					     "size such as 500M, 10G or 0 for "
					     "no cap)",
					     arg);
		l->lim.max_bytes = v;
		l->set_bytes = 1;
		return CLI_CONTINUE;
	}
	if (id == CLI_OPT_MAX_ENTRIES)
		return count_opt(c, "max-entries",
				 "a whole number, 0 for no cap", arg,
				 &l->lim.max_entries, &l->set_entries);
	return cli_usage_err(c, "unknown option");
}

int cli_limits_apply(struct cli *c, larder *db, const char *ns,
		     const struct cli_limits *l)
{
	larder_limits cur = LARDER_LIMITS_INIT;
	int rc = larder_limits_get(&cur, db, ns);
	if (rc == 0) {
		if (l->set_bytes)
			cur.max_bytes = l->lim.max_bytes;
		if (l->set_entries)
			cur.max_entries = l->lim.max_entries;
		if (l->set_wm) {
			cur.wm_run = l->lim.wm_run;
			cur.wm_cull = l->lim.wm_cull;
			cur.wm_stop = l->lim.wm_stop;
		}
		if (l->set_touch)
			cur.touch_interval = l->lim.touch_interval;
		rc = larder_limits_set(db, ns, &cur);
	}
	return rc ? cli_fail(c, db, rc) : CLI_OK;
}

/* A log callback that keeps the first warning (or worse) it is given. */
static void first_warning(int level, const char *msg, void *payload)
{
	char *said = payload;
	if (level <= LARDER_LOG_WARN && !*said)
		snprintf(said, 1024, "%s", msg);
}

/* Whether URI `where` carries a password: a userinfo (before the '@'
 * that ends it, in the authority) with a ':' and something after it. A
 * user alone ("redis://larder@host") takes the password from
 * LARDER_REDIS_PASSWORD at each run, and keeps none in DIR/config. */
static int has_password(const char *where)
{
	const char *auth = strstr(where, "://");
	if (!auth)
		return 0;
	auth += 3;
	size_t n = strcspn(auth, "/?#");
	const char *at = NULL;
	for (const char *p = auth; p < auth + n; p++)
		if (*p == '@')
			at = p;
	if (!at)
		return 0;
	const char *colon = memchr(auth, ':', (size_t)(at - auth));
	return colon && colon + 1 < at;
}

int cli_shared_apply(struct cli *c, larder *db, const char *where)
{
	if (*where && where[0] == '/') {
		/* A shared directory: made a store now, as init would, so
		 * that the first host's setting is enough. Opened without a
		 * shared tier of its own. */
		larder_opts o = LARDER_OPTS_INIT;
		o.flags = LARDER_OPEN_CREATE;
		o.create_mode = larder_mode(db);
		o.shared = "";
		larder *sdb;
		int rc = larder_open(&sdb, where, &o);
		if (rc) {
			cli_err(c, "cannot use '%s' as the shared tier: %s",
				out_q(where), larder_errmsg(NULL));
			return CLI_STORE;
		}
		larder_close(sdb);
	}
	int rc = larder_shared_set(db, where);
	if (rc)
		return cli_fail(c, db, rc);
	if (!*where)
		return CLI_OK;
	/* DIR/config is readable by whoever may read the store: a password
	 * in the URI is theirs too. */
	if (has_password(where) && (larder_mode(db) & 044))
		cli_err(
		    c,
		    "warning: the shared tier's password is in '%s/config', "
		    "which the store's mode (%04o) lets others read",
		    out_q(larder_dir(db)), larder_mode(db));
	/* Tried once now, so that a wrong address or password is told
	 * here rather than as a warning in some later run: the setting
	 * stands either way (the tier may simply be down). The open does
	 * not contact it (its first use does): larder_shared_try does. */
	char said[1024] = "";
	larder_opts o = LARDER_OPTS_INIT;
	o.shared = where;
	o.log = first_warning;
	o.log_payload = said;
	larder *probe;
	if (larder_open(&probe, larder_dir(db), &o) == 0) {
		if (larder_shared_try(probe) != 0 && !*said)
			snprintf(said, sizeof said, "%s", larder_errmsg(probe));
		larder_close(probe);
	}
	if (*said)
		cli_err(c, "warning: the shared tier is set, but: %s", said);
	return CLI_OK;
}
