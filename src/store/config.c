/*
 * config.c — the store's config files (DIR/config and DIR/ns/<ns>/config:
 * one "name value" a line), read only when trusted, replaced atomically;
 * and the namespace TTL kept there.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "clock.h"
#include "fsutil.h"

/* The namespace's config file's TTL, read now. */
static int64_t ns_ttl_read(larder *db, const char *ns)
{
	char rel[LDR_REL_MAX], text[64];
	snprintf(rel, sizeof rel, "ns/%s/config", ns);
	/* O_NONBLOCK: a FIFO planted there must not hang a put. */
	int fd = ldr_open_beneath(db->rootfd, rel, O_RDONLY | O_NONBLOCK, 0);
	if (fd < 0)
		return 0;
	ssize_t n = ldr_pread_full(fd, text, sizeof text - 1, 0);
	ldr_close(fd);
	long long ttl = 0;
	if (n > 0) {
		text[n] = '\0';
		if (sscanf(text, "ttl %lld", &ttl) != 1 || ttl < 0)
			ttl = 0;
	}
	return ttl;
}

/* The TTL is kept per handle and namespace for NS_TTL_MS: reading it
 * (an open, a read, a close) was a third of a small put's own work
 * through Redis. Another process's change is therefore applied by this
 * handle's puts within NS_TTL_MS (and a coarse clock's tick), as the
 * namespace's SADD to Redis's set of namespaces is sent; this handle's
 * own change (ldr_config_replace) drops what it kept at once. */
#define NS_TTL_MS 1000

int64_t ldr_ns_ttl(larder *db, const char *ns)
{
	int64_t now = ldr_coarse_ms();
	struct ldr_ns_ttl_memo *m = db->ttl_memo;
	pthread_mutex_lock(&db->ttl_mu);
	for (int i = 0; i < LDR_TTL_MEMO; i++)
		if (m[i].ns[0] && now - m[i].at_ms < NS_TTL_MS &&
		    strcmp(m[i].ns, ns) == 0) {
			int64_t ttl = m[i].ttl;
			pthread_mutex_unlock(&db->ttl_mu);
			return ttl;
		}
	uint64_t gen = db->ttl_gen;
	pthread_mutex_unlock(&db->ttl_mu);
	int64_t ttl = ns_ttl_read(db, ns);
	if (strlen(ns) > LARDER_NS_MAX)
		return ttl;
	pthread_mutex_lock(&db->ttl_mu);
	/* Kept only if this handle changed no config while it was read:
	 * a read from before the change must not stand for a second. */
	if (db->ttl_gen == gen) {
		int slot = -1;
		for (int i = 0; i < LDR_TTL_MEMO && slot < 0; i++)
			if (strcmp(m[i].ns, ns) == 0)
				slot = i;
		if (slot < 0)
			slot = (int)(db->ttl_next++ % LDR_TTL_MEMO);
		snprintf(m[slot].ns, sizeof m[slot].ns, "%s", ns);
		m[slot].ttl = ttl;
		m[slot].at_ms = now;
	}
	pthread_mutex_unlock(&db->ttl_mu);
	return ttl;
}

void ldr_ns_ttl_age(larder *db, int64_t ms)
{
	pthread_mutex_lock(&db->ttl_mu);
	for (int i = 0; i < LDR_TTL_MEMO; i++)
		db->ttl_memo[i].at_ms -= ms;
	pthread_mutex_unlock(&db->ttl_mu);
}

/* This handle changed a config: what ldr_ns_ttl kept is read again. */
static void ns_ttl_forget(larder *db)
{
	pthread_mutex_lock(&db->ttl_mu);
	db->ttl_gen++;
	for (int i = 0; i < LDR_TTL_MEMO; i++)
		db->ttl_memo[i].ns[0] = '\0';
	pthread_mutex_unlock(&db->ttl_mu);
}

int larder_ns_get_ttl(int64_t *out, larder *db, const char *ns)
{
	int rc = ldr_check_ns(db, ns);
	if (rc)
		return rc;
	*out = ns_ttl_read(db, ns); /* what the file says now */
	return 0;
}

int larder_ns_set_ttl(larder *db, const char *ns, int64_t ttl_seconds)
{
	int rc = ldr_check_ns(db, ns);
	if (rc)
		return rc;
	if (ttl_seconds < 0)
		return ldr_fail(db, LARDER_EINVAL, 0,
				"negative TTL %lld for namespace '%s'",
				(long long)ttl_seconds, ns);
	char dir[LDR_REL_MAX], text[64];
	snprintf(dir, sizeof dir, "ns/%s", ns);
	snprintf(text, sizeof text, "ttl %lld\n", (long long)ttl_seconds);
	return ldr_config_replace(db, dir, text);
}

/* The key of a config line: its first word. */
static size_t line_key(const char *line, size_t n)
{
	size_t k = 0;
	while (k < n && line[k] != ' ' && line[k] != '\n')
		k++;
	return k;
}

/* Whether `text` has a line whose key is line's. */
static int has_key(const char *text, const char *line, size_t k)
{
	for (const char *p = text; *p;) {
		const char *e = strchr(p, '\n');
		size_t n = e ? (size_t)(e - p) : strlen(p);
		if (line_key(p, n) == k && memcmp(p, line, k) == 0)
			return 1;
		p += n + (e ? 1 : 0);
	}
	return 0;
}

/* Whether the store's config open at fd may be used: like the marker, it
 * is its owner's and nobody else may write it (docs/security.md). One
 * its owner opens that others may write was made by an earlier larder:
 * fixed. Anything else is ignored, with a warning once per handle. */
static int config_trusted(larder *db, int fd, const char *rel)
{
	struct stat st;
	if (fstat(fd, &st) != 0)
		return 0;
	int owners = st.st_uid == db->owner;
	if (S_ISREG(st.st_mode) && owners && !(st.st_mode & 022))
		return 1;
	if (S_ISREG(st.st_mode) && owners && st.st_uid == geteuid() &&
	    fchmod(fd, st.st_mode & 07777 & ~(mode_t)022) == 0) {
		ldr_log(db, LARDER_LOG_INFO,
			"'%s/%s' was writable by group or others: now %04o",
			db->dir, rel, (unsigned)(st.st_mode & 07777 & ~022));
		return 1;
	}
	if (!__atomic_exchange_n(&db->said_config, 1, __ATOMIC_RELAXED))
		ldr_log(
		    db, LARDER_LOG_WARN,
		    "ignoring '%s/%s': %s (its owner can fix it: chmod go-w, "
		    "or set the caps again)",
		    db->dir, rel,
		    !S_ISREG(st.st_mode) ? "not a regular file"
		    : !owners		 ? "not owned by the store's owner"
					 : "writable by group or others");
	return 0;
}

int ldr_config_read(larder *db, const char *dirrel, char *buf, size_t size)
{
	char rel[LDR_REL_MAX + 16];
	snprintf(rel, sizeof rel, "%s%sconfig", dirrel, *dirrel ? "/" : "");
	buf[0] = '\0';
	/* O_NONBLOCK: a FIFO planted there must not hang us. */
	int fd = ldr_open_beneath(db->rootfd, rel, O_RDONLY | O_NONBLOCK, 0);
	if (fd < 0)
		return errno == ENOENT ? 0 : -1;
	if (!*dirrel && !config_trusted(db, fd, rel)) {
		ldr_close(fd);
		return 0;
	}
	ssize_t n = ldr_pread_full(fd, buf, size - 1, 0);
	int e = errno;
	ldr_close(fd);
	if (n < 0) {
		if (e == EAGAIN || e == EISDIR)
			return 0; /* not a file: no config */
		errno = e;
		return -1;
	}
	buf[n] = '\0';
	return 0;
}

int ldr_config_replace(larder *db, const char *dirrel, const char *lines)
{
	char rel[LDR_REL_MAX + 16], tmp[LDR_REL_MAX + 160], name[128];
	char old[LDR_CONFIG_MAX], *text = NULL;
	const char *sep = *dirrel ? "/" : "";
	snprintf(rel, sizeof rel, "%s%sconfig", dirrel, sep);
	ldr_temp_name(name, sizeof name, db->host);
	snprintf(tmp, sizeof tmp, "%s%s%s", dirrel, sep, name);
	/* Every step in the config's own directory, opened beneath the root:
	 * a rename or unlink by a path from the root would follow a
	 * symlinked ns/ or ns/<ns>. */
	/* The store's config is its owner's (docs/security.md): one made by
	 * anyone else would be ignored, so say so now. */
	if (!*dirrel && geteuid() != db->owner)
		return ldr_fail(db, LARDER_EPERM, EPERM,
				"cannot change '%s/config': only the store's "
				"owner (uid %u) may",
				db->dir, (unsigned)db->owner);
	int dfd = *dirrel ? ldr_open_dir(db, dirrel)
			  : fcntl(db->rootfd, F_DUPFD_CLOEXEC, 0);
	if (dfd < 0)
		return ldr_fail_errno(db, errno, "cannot open '%s/%s': %s",
				      db->dir, dirrel, strerror(errno));
	int rc = 0, fd;
	if (ldr_config_read(db, dirrel, old, sizeof old) != 0) {
		rc = ldr_fail_errno(db, errno, "cannot read '%s/%s': %s",
				    db->dir, rel, strerror(errno));
		goto out;
	}
	/* The new lines first (a namespace's ttl stays the first line, where
	 * older versions look for it), then every old line they do not
	 * replace, known to this version or not. */
	size_t len = strlen(lines), cap = len + strlen(old) + 2;
	if (!(text = malloc(cap))) {
		rc = ldr_fail(db, LARDER_ENOMEM, ENOMEM, "out of memory");
		goto out;
	}
	memcpy(text, lines, len);
	for (const char *p = old; *p;) {
		const char *e = strchr(p, '\n');
		size_t n = e ? (size_t)(e - p) : strlen(p);
		size_t k = line_key(p, n);
		if (n && !has_key(lines, p, k)) {
			memcpy(text + len, p, n);
			len += n;
			text[len++] = '\n';
		}
		p += n + (e ? 1 : 0);
	}
	/* One writer's file, replaced whole: nobody else writes into it. */
	fd = ldr_open_beneath(dfd, name, O_WRONLY | O_CREAT | O_EXCL,
			      db->ownmode);
	if (fd < 0) {
		rc = ldr_fail_errno(db, errno, "cannot create '%s/%s': %s",
				    db->dir, tmp, strerror(errno));
		goto out;
	}
	if (fchmod(fd, db->ownmode) != 0 ||
	    ldr_pwrite_full(fd, text, len, 0) != 0 ||
	    (db->fsync != LARDER_FSYNC_NONE && ldr_fdatasync(fd) != 0))
		rc = ldr_fail_errno(db, errno, "cannot write '%s/%s': %s",
				    db->dir, tmp, strerror(errno));
	ldr_close(fd);
	if (rc == 0 && renameat(dfd, name, dfd, "config") != 0)
		rc = ldr_fail_errno(db, errno,
				    "cannot rename '%s/%s' to '%s': %s",
				    db->dir, tmp, rel, strerror(errno));
	if (rc)
		unlinkat(dfd, name, 0);
	/* Forgotten whatever the outcome: a failed rename may still have
	 * happened. */
	ns_ttl_forget(db);
out:
	ldr_close(dfd);
	free(text);
	return rc;
}

/* What follows "name " on its line of text, or "" if there is none. */
const char *ldr_conf_val(const char *text, const char *name)
{
	size_t n = strlen(name);
	for (const char *p = text; p && *p;) {
		if (strncmp(p, name, n) == 0 && p[n] == ' ')
			return p + n;
		p = strchr(p, '\n');
		p = p ? p + 1 : p;
	}
	return "";
}

/* A "name N" line with N >= 0, else 0. */
int64_t ldr_conf_num(const char *text, const char *name)
{
	long long v;
	return sscanf(ldr_conf_val(text, name), " %lld", &v) == 1 && v >= 0 ? v
									    : 0;
}
