/*
 * walk.c — walks the store: its directories (refusing unsafe ones), its
 * namespaces and entry files (whole or a slice of the fan-out), and on
 * top of that the near tier's larder_walk and larder_inspect
 * (walk_tier.c adds the shared tier's), and larder_remove.
 */
#include "walk.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backend.h"
#include "file.h"
#include "fsutil.h"
#include "head.h"
#include "quarantine.h"

/* ---------------------------------------------------------------------- */
/* Walking directories                                                     */

int ldr_walk_dir(larder *db, int dirfd, const char *name, const char *rel,
		 DIR **out)
{
	*out = NULL;
	int fd = ldr_open_beneath(dirfd, name, O_RDONLY | O_DIRECTORY, 0);
	if (fd < 0) {
		int e = errno;
		if (e == ENOENT || e == ESTALE)
			return 1; /* gone meanwhile */
		if (e == ELOOP || e == ENOTDIR) {
			ldr_count(db, LARDER_CTR_WALK_SKIPPED);
			ldr_log(db, LARDER_LOG_WARN,
				"'%s/%s' is %s: skipped (larder makes a "
				"directory there; move it out of the store)",
				db->dir, rel,
				e == ELOOP ? "a symbolic link"
					   : "not a directory");
			return 1;
		}
		errno = e;
		return -1;
	}
	struct stat st;
	if (fstat(fd, &st) != 0) {
		int e = errno;
		ldr_close(fd);
		errno = e;
		return -1;
	}
	if ((st.st_mode & S_IWOTH) &&
	    !(db->flags & LARDER_OPEN_ALLOW_UNSAFE_MODE)) {
		ldr_count(db, LARDER_CTR_WALK_SKIPPED);
		ldr_log(db, LARDER_LOG_WARN,
			"'%s/%s' is writable by every user (mode %04o): anyone "
			"could plant entries there; skipped (chmod o-w "
			"'%s/%s', or allow unsafe mode)",
			db->dir, rel, (unsigned)(st.st_mode & 07777), db->dir,
			rel);
		ldr_close(fd);
		return 1;
	}
	if (!(*out = fdopendir(fd))) {
		int e = errno;
		ldr_close(fd);
		errno = e;
		return -1;
	}
	return 0;
}

/* The type of the directory entry de in d, without following a symlink
 * (d_type where the filesystem fills it in). */
static unsigned entry_type(DIR *d, const struct dirent *de)
{
	if (de->d_type != DT_UNKNOWN)
		return de->d_type;
	struct stat st;
	if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0)
		return DT_UNKNOWN;
	return S_ISDIR(st.st_mode)   ? DT_DIR
	       : S_ISLNK(st.st_mode) ? DT_LNK
	       : S_ISREG(st.st_mode) ? DT_REG
				     : DT_UNKNOWN;
}

int ldr_ns_foreach(larder *db, larder_ns_fn cb, void *payload)
{
	DIR *d;
	int rc = ldr_walk_dir(db, db->rootfd, "ns", "ns", &d);
	if (rc != 0)
		return rc > 0 ? 0
			      : ldr_fail_errno(db, errno,
					       "cannot list '%s/ns': %s",
					       db->dir, strerror(errno));
	struct dirent *de;
	while (rc == 0 && (de = readdir(d))) {
		const char *n = de->d_name;
		if (n[0] == '.')
			continue; /* ".", "..", the library's own, temps */
		/* Anything else larder did not make is reported and skipped:
		 * one stray file must not stop every walk (and the cleaning
		 * that keeps the caps) for the whole store. */
		unsigned t = entry_type(d, de);
		if (t != DT_DIR || strlen(n) > LARDER_NS_MAX) {
			ldr_count(db, LARDER_CTR_WALK_SKIPPED);
			ldr_log(db, LARDER_LOG_WARN,
				"'%s/ns/%s' is %s: skipped", db->dir, n,
				t == DT_LNK   ? "a symbolic link"
				: t != DT_DIR ? "not a directory"
					      : "not a namespace name");
			continue;
		}
		rc = cb(n, payload);
	}
	closedir(d);
	return rc;
}

/* The caller's callback, whose failures are told from the library's
 * (larder.h, "Callbacks"). */
struct ns_user {
	larder *db;
	larder_ns_fn cb;
	void *payload;
};

static int ns_user_cb(const char *ns, void *payload)
{
	struct ns_user *u = payload;
	unsigned long mark = ldr_err_mark();
	return ldr_cb_rc(u->db, mark, u->cb(ns, u->payload), 1,
			 "the larder_ns_foreach callback");
}

int larder_ns_foreach(larder *db, larder_ns_fn cb, void *payload)
{
	struct ns_user u = {db, cb, payload};
	return ldr_ns_foreach(db, ns_user_cb, &u);
}

/* ---------------------------------------------------------------------- */
/* Remove                                                                  */

int larder_remove(larder *db, const char *ns, const void *key, size_t klen,
		  const void *ver, size_t vlen)
{
	int rc = ldr_check_ns(db, ns);
	if (rc)
		return rc;
	/* Through the seam: the entry, and its head when the head names
	 * it (docs/backends.md). */
	struct ldr_name n;
	ldr_name_init(&n, ns, key, klen, ver, vlen);
	rc = db->be->ops->remove(db->be, &n, NULL);
	if (rc == 0)
		rc = ldr_fail(db, LARDER_ENOTFOUND, 0,
			      "no such entry in namespace '%s'", ns);
	return rc < 0 ? rc : 0;
}

/* ---------------------------------------------------------------------- */
/* Walk and inspect                                                        */

/* (walk.h) Judge the entry loaded in f (at `at`, for messages) into info: its
 * header's fields, its state and the problem; w->want is the name hash
 * it is kept under. The state, or a negative code (recorded). */
int ldr_walk_judge(struct ldr_walk *w, const struct ldr_file *f, const char *at,
		   const char *ns, ldr_hdr *h, larder_entry_info *info)
{
	const char *why = NULL;
	/* Verifying also decompresses a zstd payload (streaming, bounded),
	 * so that one that passes its checksum but will not decompress to
	 * its length is not called ok. */
	int state = ldr_entry_check(w->db, f, at, ns, NULL, 0, NULL, 0,
				    (w->flags & LARDER_WALK_VERIFY)
					? LDR_CHECK_HASH | LDR_CHECK_ZSTD
					: 0,
				    h, &why);
	if (state < 0)
		return state;
	if (h->hdr_len != 0) { /* the header itself decoded */
		info->key = h->key;
		info->klen = h->key_len;
		info->ver = h->ver;
		info->vlen = h->ver_len;
		info->meta = h->meta;
		info->meta_len = h->meta_len;
		info->size = h->raw_len;
		info->stored_size = h->stored_len;
		info->created = h->created;
		info->expires = h->expires;
		info->compressed = h->codec == LDR_CODEC_ZSTD;
		memcpy(info->checksum, h->payload_hash, sizeof(info->checksum));
		uint8_t named[16];
		ldr_entry_hash(ns, h->key, h->key_len, h->ver, h->ver_len,
			       named);
		if (state == LARDER_STATE_OK && memcmp(named, w->want, 16)) {
			state = LARDER_STATE_MISPLACED;
			why = "header names another key, version or "
			      "namespace than the file name";
		}
	}
	info->state = state;
	info->problem = why;
	return state;
}

/* Describe the entry file at rel and hand it to the callback; w->want is
 * the hash its file name claims. */
static int describe(struct ldr_walk *w, const char *ns, const char *rel)
{
	larder *db = w->db;
	char path[4400];
	snprintf(path, sizeof path, "%s/%s", db->dir, rel);
	larder_entry_info info;
	memset(&info, 0, sizeof info);
	info.version = LARDER_ENTRY_INFO_VERSION;
	info.ns = ns;
	info.path = path;

	/* Scanned, never mapped nor read whole: bounded memory, and a file
	 * someone truncates meanwhile is corrupt, not a SIGBUS. */
	struct ldr_file f;
	if (ldr_file_scan(db, rel, &f, 1) != 0) {
		if (errno == ENOENT || errno == ESTALE)
			return 0; /* removed under us */
		return ldr_fail_errno(db, errno, "cannot read '%s': %s", path,
				      strerror(errno));
	}
	info.file_size = f.size;
	ldr_hdr h;
	int state = ldr_walk_judge(w, &f, rel, ns, &h, &info);
	if (state < 0) {
		ldr_file_free(&f);
		return state; /* could not read it: recorded */
	}
	const char *why = info.problem;
	if ((w->flags & LARDER_WALK_REPAIR) &&
	    (state == LARDER_STATE_CORRUPT ||
	     state == LARDER_STATE_MISPLACED)) {
		ldr_file_ident(&f);
		info.quarantined = ldr_quarantine(db, rel, f.dev, f.ino, why);
		/* Its key's head, if it is a link to this very file or a
		 * copy of it, goes too: else it would keep the damaged file's
		 * other name or bytes, to be judged and counted again. */
		if (info.quarantined && h.hdr_len != 0)
			ldr_head_drop_entry(db, ns, h.key, h.key_len, h.ver,
					    h.ver_len, f.dev, f.ino, NULL);
	}
	unsigned long mark = ldr_err_mark();
	int rc = ldr_cb_rc(db, mark, w->cb(&info, w->payload), 1,
			   "the walk callback");
	ldr_file_free(&f);
	return rc;
}

/* An entry file's name: exactly 32 hex digits, the hash it claims. */
static int unhex(const char *s, uint8_t out[16])
{
	return ldr_unhex(s, 16, out) == 0 && s[32] == '\0' ? 0 : -1;
}

static int is_hex_digit(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

/* A fan-out directory name: two lower-case hex digits. */
static int is_fan(const char *name)
{
	return is_hex_digit(name[0]) && is_hex_digit(name[1]) && !name[2];
}

int ldr_walk_files(larder *db, const char *ns,
		   int (*cb)(const char *rel, const uint8_t hash[16],
			     void *payload),
		   void *payload)
{
	return ldr_walk_slice(db, ns, 0, 256, cb, payload);
}

/* A name larder may have made beside the fan-out directories: its temp
 * files and directories (".tmp.", from open_component). */
static int is_ours_hidden(const char *name)
{
	return name[0] == '.';
}

/* The walk of ns/<ns>/<kind>/ ('e' entries, 'h' heads). */
static int walk_kind(larder *db, const char *ns, char kind, int lo, int hi,
		     int (*cb)(const char *rel, const uint8_t hash[16],
			       void *payload),
		     void *payload)
{
	char rel[LDR_REL_MAX], sub[2] = {kind, '\0'};
	uint8_t hash[16];
	DIR *d0, *d1;
	/* Each directory is opened by one name in its parent and checked
	 * (ldr_walk_dir): a symlink, a stray file or a directory others may
	 * write is reported and skipped, and the walk goes on. */
	snprintf(rel, sizeof rel, "ns/%s", ns);
	int rc = ldr_walk_dir(db, db->rootfd, rel, rel, &d0);
	if (rc == 0) {
		snprintf(rel, sizeof rel, "ns/%s/%s", ns, sub);
		rc = ldr_walk_dir(db, dirfd(d0), sub, rel, &d1);
		closedir(d0);
	}
	if (rc != 0)
		return rc > 0 ? 0
			      : ldr_fail_errno(db, errno,
					       "cannot list '%s/%s': %s",
					       db->dir, rel, strerror(errno));
	struct dirent *a;
	while (rc == 0 && (a = readdir(d1))) {
		if (!strcmp(a->d_name, ".") || !strcmp(a->d_name, ".."))
			continue;
		int fan =
		    is_fan(a->d_name) ? (int)strtol(a->d_name, NULL, 16) : -1;
		if (fan < 0 && lo == 0 && !is_ours_hidden(a->d_name)) {
			ldr_count(db, LARDER_CTR_WALK_SKIPPED);
			ldr_log(db, LARDER_LOG_WARN,
				"'%s/%s/%s' is not larder's: skipped", db->dir,
				rel, a->d_name);
		}
		if (fan < lo || fan >= hi)
			continue;
		char rel2[LDR_REL_MAX + 512];
		snprintf(rel2, sizeof rel2, "%s/%s", rel, a->d_name);
		DIR *d2;
		int r2 = ldr_walk_dir(db, dirfd(d1), a->d_name, rel2, &d2);
		if (r2 != 0) {
			if (r2 < 0) {
				ldr_count(db, LARDER_CTR_WALK_SKIPPED);
				ldr_log(db, LARDER_LOG_WARN,
					"cannot list '%s/%s': %s: skipped",
					db->dir, rel2, strerror(errno));
			}
			continue;
		}
		struct dirent *b;
		while (rc == 0 && (b = readdir(d2))) {
			if (!strcmp(b->d_name, ".") || !strcmp(b->d_name, ".."))
				continue;
			if (!is_fan(b->d_name)) {
				if (!is_ours_hidden(b->d_name)) {
					ldr_count(db, LARDER_CTR_WALK_SKIPPED);
					ldr_log(db, LARDER_LOG_WARN,
						"'%s/%s/%s' is not larder's: "
						"skipped",
						db->dir, rel2, b->d_name);
				}
				continue;
			}
			char rel3[LDR_REL_MAX + 1024];
			snprintf(rel3, sizeof rel3, "%s/%s", rel2, b->d_name);
			DIR *d3;
			int r3 =
			    ldr_walk_dir(db, dirfd(d2), b->d_name, rel3, &d3);
			if (r3 != 0) {
				if (r3 < 0) {
					ldr_count(db, LARDER_CTR_WALK_SKIPPED);
					ldr_log(db, LARDER_LOG_WARN,
						"cannot list '%s/%s': %s: "
						"skipped",
						db->dir, rel3, strerror(errno));
				}
				continue;
			}
			struct dirent *c;
			while (rc == 0 && (c = readdir(d3))) {
				if (unhex(c->d_name, hash) != 0)
					continue; /* temps, strays */
				char file[LDR_REL_MAX + 1536];
				snprintf(file, sizeof file, "%s/%s", rel3,
					 c->d_name);
				rc = cb(file, hash, payload);
			}
			closedir(d3);
		}
		closedir(d2);
	}
	closedir(d1);
	return rc;
}

struct walk_ns_ctx {
	struct ldr_walk *w;
	const char *ns;
};

static int describe_cb(const char *rel, const uint8_t hash[16], void *payload)
{
	struct walk_ns_ctx *x = payload;
	memcpy(x->w->want, hash, 16);
	return describe(x->w, x->ns, rel);
}

static int walk_ns(struct ldr_walk *w, const char *ns)
{
	struct walk_ns_ctx x = {w, ns};
	return ldr_walk_files(w->db, ns, describe_cb, &x);
}

static int walk_ns_cb(const char *ns, void *payload)
{
	return walk_ns(payload, ns);
}

int ldr_walk_near(larder *db, const char *ns, unsigned flags, larder_walk_fn cb,
		  void *payload)
{
	struct ldr_walk w = {db, flags, cb, payload, {0}};
	if (ns) {
		/* The name only: like any walk, this one reports and skips a
		 * directory it must not use. */
		int rc = ldr_check_ns_name(db, ns, 1);
		return rc ? rc : walk_ns(&w, ns);
	}
	return ldr_ns_foreach(db, walk_ns_cb, &w);
}

int larder_walk_slice(larder *db, const char *ns, int lo, int hi,
		      unsigned flags, larder_walk_fn cb, void *payload)
{
	if (!ns || lo < 0 || hi > LARDER_WALK_SLICES || lo >= hi)
		return ldr_fail(db, LARDER_EINVAL, EINVAL,
				"larder_walk_slice: bad namespace or slices "
				"[%d, %d)",
				lo, hi);
	if (flags & LARDER_WALK_SHARED)
		return ldr_fail(db, LARDER_EINVAL, EINVAL,
				"larder_walk_slice: the shared tier is walked "
				"whole (larder_walk)");
	int rc = ldr_check_ns_name(db, ns, 1);
	if (rc)
		return rc;
	struct ldr_walk w = {db, flags, cb, payload, {0}};
	struct walk_ns_ctx x = {&w, ns};
	return ldr_walk_slice(db, ns, lo, hi, describe_cb, &x);
}

int ldr_inspect_near(larder *db, const char *ns, const void *key, size_t klen,
		     const void *ver, size_t vlen, unsigned flags,
		     larder_walk_fn cb, void *payload)
{
	int rc = ldr_check_ns_internal(db, ns);
	if (rc)
		return rc;
	uint8_t *headver = NULL;
	if (!ver) {
		rc = ldr_head_read(db, ns, key, klen, &headver, &vlen);
		if (rc)
			return rc == LARDER_ENOTFOUND
				   ? ldr_fail(db, rc, 0,
					      "no head version for that "
					      "key in namespace '%s'",
					      ns)
				   : rc;
		ver = headver;
	}
	struct ldr_walk w = {db, flags, cb, payload, {0}};
	char hex[33], rel[LDR_REL_MAX];
	ldr_entry_hash(ns, key, klen, ver, vlen, w.want);
	ldr_hex(w.want, 16, hex);
	ldr_file_rel(rel, ns, 'e', hex);
	free(headver);
	struct stat st;
	if (ldr_lstat(db, rel, &st) != 0)
		return errno == ELOOP
			   ? ldr_refuse_symlink(db, rel)
			   : ldr_fail_errno(db, errno,
					    "no entry file '%s/%s': %s",
					    db->dir, rel, strerror(errno));
	return describe(&w, ns, rel);
}

int ldr_walk_slice(larder *db, const char *ns, int lo, int hi,
		   int (*cb)(const char *rel, const uint8_t hash[16],
			     void *payload),
		   void *payload)
{
	return walk_kind(db, ns, 'e', lo, hi, cb, payload);
}

int ldr_walk_heads(larder *db, const char *ns, int lo, int hi,
		   int (*cb)(const char *rel, const uint8_t hash[16],
			     void *payload),
		   void *payload)
{
	return walk_kind(db, ns, 'h', lo, hi, cb, payload);
}
