/*
 * sweep.c — owns sweeping (see sweep.h): finding and removing the temp,
 * lease and break files that dead processes left in a store, and the
 * quarantined entries once they have been kept long enough.
 *
 * Nothing live is removed. The rules, in the order they are tried:
 *
 *  - A temp file (".tmp.<host>.<pid>.<random>", in any directory of the
 *    store): removed when older than LDR_SWEEP_TMP_MAX_S (24 h), whatever
 *    its host; or when its host part is this host, kill(pid, 0) says
 *    ESRCH, and it is older than LDR_SWEEP_TMP_DEAD_S (5 min). The pid in
 *    a temp name is not qualified by a PID namespace: containers that
 *    share this host name (UTS) but not our pids write temps whose pids
 *    mean nothing here, so ESRCH alone could be a live writer. The name
 *    has nothing stronger (no boot id, pidns or start time), so the age
 *    is the second witness: a live writer's temp either keeps changing
 *    (streamed payloads) or, for a small payload kept in memory until
 *    commit, is at most as old as its load. Five minutes covers every
 *    load of this kind we know of but an unusually slow one in such a
 *    container; and if that one loses its temp, its commit fails and a
 *    fill hands the caller its data uncached: work lost,
 *    nothing wrong. Crash debris on an ordinary host goes within minutes.
 *  - A lease ("<hex32>.lease" in a head directory): broken when its own
 *    record says it is held on this host — same boot id and PID namespace
 *    — by a process that is gone or whose pid now belongs to a process
 *    with another start time (ldr_lease_dead_here, the waiters' fast
 *    path); or when its file has not been rewritten for LDR_SWEEP_LEASE_MAX_S
 *    (1 h) or ten lease periods if that is longer: a live holder rewrites
 *    it every quarter period, so an hour of silence is 480 missed beats
 *    at the default 30 s lease. Garbage at a lease's name (not a record,
 *    or not a regular file: ldr_lease_read) goes when unchanged for
 *    LDR_SWEEP_LEASE_MAX_S. Either is broken the way a waiter breaks it
 *    (ldr_lease_break: rename to a break name, re-check the very thing
 *    judged, remove), never by a plain unlink.
 *  - A break file (".break.*"): exists between a breaker's rename and its
 *    removal, a few system calls; one older than LDR_SWEEP_BREAK_S (10
 *    min) was left by a breaker that died there, or is a directory it
 *    could not empty. No one else ever reads it; it goes whatever it is,
 *    a directory with what it holds (ldr_lease_discard).
 *  - A quarantined entry (quarantine/<hex32>.<random>): kept for
 *    inspection LDR_SWEEP_QUAR_MAX_S (7 days) from when it was moved there
 *    (ldr_quarantine stamps its mtime then).
 *
 * Entries, head hints, config files and the marker are never touched: the
 * walk only looks at names starting with ".tmp." or ".break." or ending in
 * ".lease", and only those cost a stat. Removal is by (dev, ino): a file
 * replaced under the same name since it was judged is left alone.
 */
#include "sweep.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "err.h"
#include "fsutil.h"
#include "lease.h"
#include "store.h"
#include "walk.h"

#define NS_PER_S 1000000000LL

struct sweep {
	larder *db;
	int dry;
	int64_t now; /* the store filesystem's clock, ns since the epoch */
	struct ldr_self me;
	larder_sweep_report *r;
	int rc; /* the first error met */
};

/* The levels of the store's tree, from the root down. */
enum level { L_ROOT, L_NSDIR, L_NS, L_KIND, L_FAN1, L_LEAF, L_QUAR };

/* Read "now" from the store filesystem: the mtime of a file made for it.
 * On a network filesystem the server stamps it, as it stamps every file
 * whose age is judged here. */
static int store_now(larder *db, int64_t *out)
{
	char name[128];
	struct stat st;
	ldr_temp_name(name, sizeof name, db->host);
	int fd = ldr_open_beneath(db->rootfd, name, O_RDWR | O_CREAT | O_EXCL,
				  db->romode);
	if (fd < 0)
		return ldr_fail_errno(db, errno,
				      "cannot read the store's clock: cannot "
				      "create '%s/%s': %s",
				      db->dir, name, strerror(errno));
	int ok = fstat(fd, &st) == 0;
	int e = errno;
	ldr_close(fd);
	unlinkat(db->rootfd, name, 0);
	if (!ok)
		return ldr_fail_errno(db, e, "cannot stat '%s/%s': %s", db->dir,
				      name, strerror(e));
	*out = (int64_t)st.st_mtim.tv_sec * NS_PER_S + st.st_mtim.tv_nsec;
	return 0;
}

static int64_t age_s(const struct sweep *s, const struct stat *st)
{
	int64_t m =
	    (int64_t)st->st_mtim.tv_sec * NS_PER_S + st->st_mtim.tv_nsec;
	return m >= s->now ? 0 : (s->now - m) / NS_PER_S;
}

static void fail_once(struct sweep *s, int e, const char *what, const char *rel)
{
	int rc = ldr_fail_errno(s->db, e, "sweep: cannot %s '%s/%s': %s", what,
				s->db->dir, rel, strerror(e));
	ldr_log(s->db, LARDER_LOG_WARN, "%s", larder_errmsg(s->db));
	if (!s->rc)
		s->rc = rc;
}

static void keep(struct sweep *s, uint64_t *kept, const char *rel,
		 const char *why, int64_t age)
{
	(*kept)++;
	ldr_log(s->db, LARDER_LOG_DEBUG, "sweep: kept '%s/%s' (%s, %lld s old)",
		s->db->dir, rel, why, (long long)age);
}

/* Count and log a removal (or, in a dry run, what would be removed). */
static void removed(struct sweep *s, uint64_t *n, const char *rel,
		    const char *why, int64_t age, off_t size)
{
	(*n)++;
	s->r->bytes_removed += (uint64_t)size;
	if (!s->dry)
		ldr_count(s->db, LARDER_CTR_TMP_SWEPT);
	ldr_log(s->db, LARDER_LOG_INFO, "sweep: %s '%s/%s' (%s, %lld s old)",
		s->dry ? "would remove" : "removed", s->db->dir, rel, why,
		(long long)age);
}

#define GONE 2 /* removed meanwhile by someone else: neither ours nor kept */

/* Remove rel if it is still (dev, ino). 1 removed, 0 replaced meanwhile
 * (kept), GONE, or -1 failed (recorded). */
static int remove_it(struct sweep *s, int dfd, const char *name,
		     const char *rel, const struct stat *st)
{
	if (s->dry)
		return 1;
	if (S_ISDIR(st->st_mode)) {
		/* A directory made under a temp name (store.c makes one
		 * when mkdir races on a network filesystem): empty, or it
		 * would not be debris; ENOTEMPTY leaves it. */
		if (unlinkat(dfd, name, AT_REMOVEDIR) == 0)
			return 1;
		if (errno == ENOENT || errno == ESTALE)
			return GONE;
		if (errno == ENOTEMPTY || errno == EEXIST)
			return 0;
		fail_once(s, errno, "remove directory", rel);
		return -1;
	}
	int r = ldr_remove_same_by_us(s->db, rel, st->st_dev, st->st_ino);
	if (r < 0) {
		if (errno == ENOENT || errno == ESTALE)
			return GONE;
		fail_once(s, errno, "remove", rel);
		return -1;
	}
	if (r == 1)
		return 1;
	/* Gone already (another sweeper), or another file has the name. */
	struct stat now;
	return fstatat(dfd, name, &now, AT_SYMLINK_NOFOLLOW) != 0 ? GONE : 0;
}

/* Parse ".tmp.<host>.<pid>.<16 hex>": host (as the name has it) and pid.
 * 0, or -1 for a name of another shape. */
static int temp_owner(const char *name, char *host, size_t hlen, long *pid)
{
	const char *h = name + 5, *dot = strchr(h, '.');
	if (!dot || (size_t)(dot - h) >= hlen || dot == h)
		return -1;
	memcpy(host, h, (size_t)(dot - h));
	host[dot - h] = '\0';
	char *end;
	errno = 0;
	*pid = strtol(dot + 1, &end, 10);
	if (errno || end == dot + 1 || *end != '.' || *pid <= 0 ||
	    *pid > INT_MAX)
		return -1;
	return strlen(end + 1) == 16 ? 0 : -1;
}

/* Stat a regular file (or, with dirs_too, a directory) found by the
 * walk. 0, or -1 to skip it (vanished, another kind, or an error
 * recorded). */
static int stat_found(struct sweep *s, int dfd, const char *name,
		      const char *rel, struct stat *st, int dirs_too)
{
	if (fstatat(dfd, name, st, AT_SYMLINK_NOFOLLOW) != 0) {
		if (errno != ENOENT && errno != ESTALE)
			fail_once(s, errno, "stat", rel);
		return -1;
	}
	return S_ISREG(st->st_mode) || (dirs_too && S_ISDIR(st->st_mode)) ? 0
									  : -1;
}

/* What became of a file judged stale: rc 1 removed, 0 kept because it
 * changed meanwhile, GONE or -1 (failed, recorded): not counted. */
static void settle(struct sweep *s, int rc, uint64_t *gone, uint64_t *kept,
		   const char *rel, const char *why, int64_t age, off_t size)
{
	if (rc == 1)
		removed(s, gone, rel, why, age, size);
	else if (rc == 0)
		keep(s, kept, rel,
		     "changed meanwhile, or a directory not empty", age);
}

static void sweep_temp(struct sweep *s, int dfd, const char *name,
		       const char *rel)
{
	struct stat st;
	if (stat_found(s, dfd, name, rel, &st, 1) != 0)
		return;
	int64_t age = age_s(s, &st);
	char host[64];
	long pid = 0;
	const char *why = NULL;
	int mine = temp_owner(name, host, sizeof host, &pid) == 0 &&
		   strcmp(host, s->db->host) == 0;
	if (age >= LDR_SWEEP_TMP_MAX_S)
		why = "older than the generous age";
	else if (mine && age >= LDR_SWEEP_TMP_DEAD_S &&
		 kill((pid_t)pid, 0) != 0 && errno == ESRCH)
		why = "this host, its process is gone";
	if (!why) {
		keep(s, &s->r->temps_kept, rel,
		     !mine ? "another host's, young"
		     : age < LDR_SWEEP_TMP_DEAD_S
			 ? "this host's, younger than the minimum age"
			 : "this host's, its process lives",
		     age);
		return;
	}
	settle(s, remove_it(s, dfd, name, rel, &st), &s->r->temps_removed,
	       &s->r->temps_kept, rel, why, age, st.st_size);
}

/* What goes by age alone and may be anything, not only a file: a break
 * file (whatever a breaker moved aside, docs/leases.md: a directory, FIFO
 * or symlink too) and a quarantined entry (whatever stood at an entry's
 * name, the same). Each name is unique to whoever moved it there, so
 * nothing new ever takes it: removed by name, a directory with what it
 * holds. */
static void sweep_moved(struct sweep *s, int dfd, const char *name,
			const char *rel, int64_t max_age, uint64_t *gone,
			uint64_t *kept, const char *young, const char *old)
{
	struct stat st;
	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
		if (errno != ENOENT && errno != ESTALE)
			fail_once(s, errno, "stat", rel);
		return;
	}
	int64_t age = age_s(s, &st);
	if (age < max_age) {
		keep(s, kept, rel, young, age);
		return;
	}
	if (!s->dry && ldr_lease_discard(dfd, name) != 0) {
		if (errno == ENOENT || errno == ESTALE)
			return; /* removed meanwhile by someone else */
		/* Debris that cannot go (a member's directory we may not
		 * empty, a tree too deep) is said and kept, never an error of
		 * the sweep: it must not stop cleaning. */
		ldr_log(s->db, LARDER_LOG_WARN,
			"sweep: cannot remove '%s/%s': %s; kept", s->db->dir,
			rel, strerror(errno));
		keep(s, kept, rel, "cannot be removed", age);
		return;
	}
	removed(s, gone, rel, old, age, S_ISREG(st.st_mode) ? st.st_size : 0);
}

static void sweep_lease(struct sweep *s, int dfd, const char *name,
			const char *rel)
{
	struct stat st;
	struct ldr_lease_rec rec;
	/* Whatever is at a lease's name is judged, not only a regular file:
	 * a directory or FIFO left there would hold the key's fills. */
	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
		if (errno != ENOENT && errno != ESTALE)
			fail_once(s, errno, "stat", rel);
		return;
	}
	int64_t age = age_s(s, &st);
	int got = ldr_lease_read(dfd, name, &rec);
	if (got < 0) {
		if (errno != ENOENT && errno != ESTALE)
			fail_once(s, errno, "read", rel);
		return; /* released or broken meanwhile */
	}
	if (rec.ino != st.st_ino || rec.dev != st.st_dev) {
		/* Replaced between the stat and the read: a new holder. */
		keep(s, &s->r->leases_kept, rel, "taken meanwhile", 0);
		return;
	}
	const int readable = got == 0;
	int64_t max_age = LDR_SWEEP_LEASE_MAX_S;
	if (readable && rec.lease_ms / 100 > (uint64_t)max_age)
		max_age = (int64_t)(rec.lease_ms / 100); /* ten periods */
	const char *why = NULL;
	if (readable && ldr_lease_dead_here(&rec, &s->me))
		why = "this host, its holder is gone";
	else if (age >= max_age)
		why = readable ? "no heartbeat for the generous age"
			       : "not a lease, unchanged for the generous age";
	if (!why) {
		keep(s, &s->r->leases_kept, rel,
		     !readable ? "not a lease, young (being rewritten?)"
		     : strcmp(rec.boot, s->me.boot) == 0 &&
			     rec.pidns == s->me.pidns
			 ? "this host, its holder lives"
			 : "another host's, heartbeat recent",
		     age);
		return;
	}
	int rc = 1;
	if (!s->dry) {
		/* Broken as waiters break it: the very thing judged (record
		 * or garbage, by its identity and bytes), or nothing. */
		rc = ldr_lease_break(dfd, name, &rec, s->db->host);
		if (rc == 0 &&
		    faccessat(dfd, name, F_OK, AT_SYMLINK_NOFOLLOW) != 0)
			rc = GONE; /* released, or broken by a waiter */
	}
	settle(s, rc, &s->r->leases_removed, &s->r->leases_kept, rel, why, age,
	       S_ISREG(st.st_mode) ? st.st_size : 0);
}

static int has_suffix(const char *s, const char *suf)
{
	size_t n = strlen(s), m = strlen(suf);
	return n > m && memcmp(s + n - m, suf, m) == 0;
}

static int is_fan(const char *n)
{
	return n[0] && n[1] && !n[2] && strchr("0123456789abcdef", n[0]) &&
	       strchr("0123456789abcdef", n[1]);
}

/* Which level a child name leads to, or -1 if it is not a directory of
 * the store's tree (entries, hints, config files: never looked at). */
static int child_level(enum level at, const char *name)
{
	switch (at) {
	case L_ROOT:
		return !strcmp(name, "ns")	     ? L_NSDIR
		       : !strcmp(name, "quarantine") ? L_QUAR
						     : -1;
	case L_NSDIR:
		/* Namespaces, and the library's own (".files"). */
		return name[0] != '.' || !strcmp(name, LDR_FILES_NS) ? L_NS
								     : -1;
	case L_NS:
		return !strcmp(name, "e") || !strcmp(name, "h") ? L_KIND : -1;
	case L_KIND:
		return is_fan(name) ? L_FAN1 : -1;
	case L_FAN1:
		return is_fan(name) ? L_LEAF : -1;
	default:
		return -1;
	}
}

static void sweep_dir(struct sweep *s, const char *rel, enum level at,
		      char kind)
{
	/* The root by ".": its own open file, so that reading it moves no
	 * offset shared with db->rootfd. A symlink, a stray file or a
	 * directory others may write is reported and skipped. */
	DIR *d;
	int r = ldr_walk_dir(s->db, s->db->rootfd, *rel ? rel : ".", rel, &d);
	if (r != 0) {
		if (r < 0 && errno != ENOENT && errno != ESTALE)
			fail_once(s, errno, "list", rel);
		return;
	}
	struct dirent *de;
	char path[LDR_REL_MAX + 512];
	while ((de = readdir(d))) {
		const char *n = de->d_name;
		if (!strcmp(n, ".") || !strcmp(n, ".."))
			continue;
		if (snprintf(path, sizeof path, "%s%s%s", rel, *rel ? "/" : "",
			     n) >= (int)sizeof path)
			continue; /* no name of ours is that long */
		if (!strncmp(n, ".tmp.", 5))
			sweep_temp(s, dirfd(d), n, path);
		else if (!strncmp(n, ".break.", 7))
			sweep_moved(s, dirfd(d), n, path, LDR_SWEEP_BREAK_S,
				    &s->r->breaks_removed, &s->r->breaks_kept,
				    "a break in progress",
				    "left by a dead breaker");
		else if (at == L_LEAF && kind == 'h' && has_suffix(n, ".lease"))
			sweep_lease(s, dirfd(d), n, path);
		else if (at == L_QUAR && n[0] != '.')
			sweep_moved(s, dirfd(d), n, path, LDR_SWEEP_QUAR_MAX_S,
				    &s->r->quarantine_removed,
				    &s->r->quarantine_kept,
				    "kept for inspection",
				    "kept long enough for inspection");
		else {
			int next = child_level(at, n);
			if (next >= 0 &&
			    (de->d_type == DT_DIR || de->d_type == DT_UNKNOWN))
				sweep_dir(s, path, (enum level)next,
					  at == L_NS ? n[0] : kind);
			else if (next >= 0)
				ldr_log(
				    s->db, LARDER_LOG_WARN,
				    "'%s/%s' is %s: skipped", s->db->dir, path,
				    de->d_type == DT_LNK ? "a symbolic link"
							 : "not a directory");
		}
	}
	closedir(d);
}

int ldr_sweep(larder *db, const char *ns, int dry_run, larder_sweep_report *r)
{
	memset(r, 0, sizeof *r);
	struct sweep s;
	memset(&s, 0, sizeof s);
	s.db = db;
	s.dry = dry_run;
	s.r = r;
	if (ns) {
		int rc = ldr_check_ns_internal(db, ns);
		if (rc)
			return rc;
	}
	int rc = store_now(db, &s.now);
	if (rc)
		return rc;
	ldr_self_get(&s.me, db->host);
	if (ns) {
		char rel[LDR_REL_MAX];
		snprintf(rel, sizeof rel, "ns/%s", ns);
		sweep_dir(&s, rel, L_NS, 0);
	} else {
		sweep_dir(&s, "", L_ROOT, 0);
	}
	ldr_log(db, LARDER_LOG_INFO,
		"sweep of '%s'%s%s%s: %s %llu temp, %llu lease, %llu break, "
		"%llu quarantined file(s) (%llu bytes); kept %llu, %llu, %llu, "
		"%llu",
		db->dir, ns ? " namespace '" : "", ns ? ns : "", ns ? "'" : "",
		dry_run ? "would remove" : "removed",
		(unsigned long long)r->temps_removed,
		(unsigned long long)r->leases_removed,
		(unsigned long long)r->breaks_removed,
		(unsigned long long)r->quarantine_removed,
		(unsigned long long)r->bytes_removed,
		(unsigned long long)r->temps_kept,
		(unsigned long long)r->leases_kept,
		(unsigned long long)r->breaks_kept,
		(unsigned long long)r->quarantine_kept);
	return s.rc;
}

int larder_sweep(larder_sweep_report *out, larder *db, const char *ns,
		 unsigned flags)
{
	larder_sweep_report r;
	if (out && ldr_check_version(db, "larder_sweep_report", out->version,
				     LARDER_SWEEP_REPORT_VERSION,
				     LARDER_SWEEP_REPORT_VERSION))
		return LARDER_EINVAL;
	if (flags & ~LARDER_SWEEP_DRY_RUN)
		return ldr_fail(db, LARDER_EINVAL, 0,
				"larder_sweep: unknown flags 0x%x", flags);
	int rc = ldr_sweep(db, ns, (flags & LARDER_SWEEP_DRY_RUN) != 0, &r);
	if (out) {
		/* ldr_sweep zeroed r, version included */
		r.version = LARDER_SWEEP_REPORT_VERSION;
		*out = r;
	}
	return rc;
}
