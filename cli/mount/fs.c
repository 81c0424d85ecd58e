/*
 * fs.c — the read-only filesystem of `larder mount` (docs/fuse.md), as
 * libfuse low-level operations over the public API:
 *
 *   /head/<ns>/<key>               the version the key's head names
 *   /@<version>/<ns>/<key>         a fixed version
 *
 * An entry's inode number is a hash of (namespace, key, version), the
 * entry's identity: it never changes, both paths to one entry reach one
 * inode, and what an inode holds never changes either, so the kernel may
 * keep its pages (keep_cache) for every reader. Only a head *dentry*
 * moves, from one inode to another, when a newer version is published;
 * watch.c tells the kernel. An entry is held from its inode's lookup
 * (larder_get_unverified: its file open, its header read) and verified
 * at the inode's first read (larder_entry_verify), before any byte is
 * served; the payload is kept until the kernel forgets the inode, so a
 * reader that opened a head keeps the version it opened whatever is
 * published or evicted meanwhile. Opens never reach the daemon: the
 * first is answered ENOSYS, and the kernel opens files itself from then
 * on (docs/fuse.md).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "digest.h"
#include "fs.h"
#include "names.h"

enum kind { K_ROOT, K_HEAD, K_VER, K_HEAD_NS, K_VER_NS, K_FILE };

struct mount_node {
	struct mount_node *next; /* in its bucket */
	fuse_ino_t ino;
	int kind;
	uint64_t nlookup; /* the kernel's references (lookups - forgets) */
	char ns[LARDER_NS_MAX + 1];
	unsigned char *key; /* K_FILE */
	size_t klen;
	unsigned char *ver; /* K_VER, K_VER_NS, K_FILE */
	size_t vlen;
	/* K_FILE: what the header says, and the entry, held from the
	 * lookup (unverified: its file open) until the kernel forgets the
	 * inode; verified at the first read, under vmu, which readers that
	 * come meanwhile wait on. entry is NULL only when it could not be
	 * held at the lookup (no descriptor left): the first read gets it. */
	uint64_t size;
	int64_t created, expires;
	uint8_t checksum[16];
	pthread_mutex_t vmu;
	larder_entry *entry;
	int verified; /* read without vmu (atomic): entry is then fixed */
	int bad;      /* failed its verification: EIO for good */
	int holding;  /* entry is unverified, its file open: counted in
			 fs->holding (under vmu, or when the node is freed) */
};

/* How long the kernel may keep what it was told, in seconds. Inodes
 * never change. Head dentries are invalidated by watch.c; the timeout
 * only bounds how long one stays should a change go unseen. */
#define TTL_FOREVER 86400.0
#define TTL_HEAD 60.0
/* Also the bound on how long a dead daemon's mount still opens a name:
 * every lookup checks its directory's permission (default_permissions),
 * from attributes kept this long (docs/fuse.md, "Stopping"). */
#define TTL_DIR 1.0

/* ---- inode numbers ---- */

static void digest_field(struct cli_digest *d, const void *p, size_t len)
{
	uint64_t n = len;
	unsigned char le[8];

	for (int i = 0; i < 8; i++)
		le[i] = (unsigned char)(n >> (8 * i));
	cli_digest_add(d, le, sizeof le);
	if (len)
		cli_digest_add(d, p, len);
}

/* Files take numbers with the top bit clear, directories with it set,
 * so that no directory ever shares a number with an entry. 0 is no
 * inode and 1 the root. */
static fuse_ino_t ino_of(int kind, const char *ns, const void *key, size_t klen,
			 const void *ver, size_t vlen)
{
	static const char *const tags[] = {"root",   "head",  "ver",
					   "headns", "verns", "entry"};
	char hex[CLI_DIGEST_HEX];
	struct cli_digest *d;
	uint64_t v = 0;

	if (kind == K_ROOT)
		return FUSE_ROOT_ID;
	d = cli_digest_new();
	if (!d)
		return 0;
	digest_field(d, "larder-mount-1", 14);
	digest_field(d, tags[kind], strlen(tags[kind]));
	digest_field(d, ns, ns ? strlen(ns) : 0);
	digest_field(d, key, key ? klen : 0);
	digest_field(d, ver, ver ? vlen : 0);
	cli_digest_hex(d, hex);
	cli_digest_free(d);
	for (int i = 0; i < 16; i++) {
		char ch = hex[i];
		v = v << 4 | (uint64_t)(ch <= '9' ? ch - '0' : ch - 'a' + 10);
	}
	if (kind == K_FILE)
		v &= ~(UINT64_C(1) << 63);
	else
		v |= UINT64_C(1) << 63;
	if (v <= FUSE_ROOT_ID)
		v += 2;
	return (fuse_ino_t)v;
}

/* ---- the node table ---- */

static size_t bucket_of(const struct mount_fs *fs, fuse_ino_t ino)
{
	return (size_t)(ino ^ (ino >> 29)) % fs->nbuckets;
}

static struct mount_node *find_locked(struct mount_fs *fs, fuse_ino_t ino)
{
	struct mount_node *n = fs->buckets[bucket_of(fs, ino)];
	while (n && n->ino != ino)
		n = n->next;
	return n;
}

static void node_free(struct mount_node *n)
{
	if (!n)
		return;
	pthread_mutex_destroy(&n->vmu);
	larder_entry_release(n->entry);
	free(n->key);
	free(n->ver);
	free(n);
}

static int same_bytes(const void *a, size_t alen, const void *b, size_t blen)
{
	return alen == blen && (alen == 0 || memcmp(a, b, alen) == 0);
}

static int same_node(const struct mount_node *a, const struct mount_node *b)
{
	return a->kind == b->kind && strcmp(a->ns, b->ns) == 0 &&
	       same_bytes(a->key, a->klen, b->key, b->klen) &&
	       same_bytes(a->ver, a->vlen, b->ver, b->vlen);
}

static unsigned char *dup_bytes(const void *p, size_t len)
{
	unsigned char *d = malloc(len ? len : 1);
	if (d && len)
		memcpy(d, p, len);
	return d;
}

/* The node like proto (its key and ver borrowed), made if new, with one
 * more lookup counted. NULL with *err set: ENOMEM, or EIO for two
 * identities that hash to one number (never seen; refused, not mixed). */
static struct mount_node *node_ref(struct mount_fs *fs,
				   const struct mount_node *proto, int *err)
{
	struct mount_node *n, *made = NULL;

	made = calloc(1, sizeof(*made));
	if (!made)
		goto nomem;
	*made = *proto;
	pthread_mutex_init(&made->vmu, NULL);
	made->next = NULL;
	made->entry = NULL;
	made->verified = 0;
	made->holding = 0;
	made->key = dup_bytes(proto->key, proto->klen);
	made->ver = dup_bytes(proto->ver, proto->vlen);
	if (!made->key || !made->ver)
		goto nomem;
	made->nlookup = 1;

	pthread_mutex_lock(&fs->mu);
	n = find_locked(fs, proto->ino);
	if (n) {
		int same = same_node(n, made);
		if (same)
			n->nlookup++;
		pthread_mutex_unlock(&fs->mu);
		node_free(made);
		if (!same) {
			*err = EIO;
			return NULL;
		}
		return n;
	}
	size_t b = bucket_of(fs, made->ino);
	made->next = fs->buckets[b];
	fs->buckets[b] = made;
	pthread_mutex_unlock(&fs->mu);
	return made;
nomem:
	node_free(made);
	*err = ENOMEM;
	return NULL;
}

static struct mount_node *node_get(struct mount_fs *fs, fuse_ino_t ino)
{
	pthread_mutex_lock(&fs->mu);
	struct mount_node *n = find_locked(fs, ino);
	pthread_mutex_unlock(&fs->mu);
	return n;
}

static void head_free(struct mount_head *h)
{
	if (!h)
		return;
	free(h->key);
	free(h->ver);
	free(h);
}

/* Drop the kernel's nlookup references to ino; the last one frees the
 * node, the payload it held and the head records naming it. */
static void node_unref(struct mount_fs *fs, fuse_ino_t ino, uint64_t nlookup)
{
	struct mount_node *n, **pp;
	struct mount_head *gone = NULL;

	if (ino == FUSE_ROOT_ID)
		return;
	pthread_mutex_lock(&fs->mu);
	pp = &fs->buckets[bucket_of(fs, ino)];
	while (*pp && (*pp)->ino != ino)
		pp = &(*pp)->next;
	n = *pp;
	if (!n || n->nlookup > nlookup) {
		if (n)
			n->nlookup -= nlookup;
		pthread_mutex_unlock(&fs->mu);
		return;
	}
	*pp = n->next;
	if (n->kind == K_FILE) {
		struct mount_head **hp = &fs->heads;
		while (*hp) {
			struct mount_head *h = *hp;
			if (strcmp(h->ns, n->ns) == 0 &&
			    same_bytes(h->key, h->klen, n->key, n->klen) &&
			    same_bytes(h->ver, h->vlen, n->ver, n->vlen)) {
				*hp = h->next;
				h->next = gone;
				gone = h;
			} else {
				hp = &h->next;
			}
		}
	}
	pthread_mutex_unlock(&fs->mu);
	if (n->holding)
		__atomic_sub_fetch(&fs->holding, 1, __ATOMIC_RELAXED);
	node_free(n);
	while (gone) {
		struct mount_head *h = gone;
		gone = h->next;
		head_free(h);
	}
}

/* Remember that the kernel now has head/<ns>/<name> pointing at
 * version ver, for watch.c to invalidate when the head moves. */
static void head_note(struct mount_fs *fs, fuse_ino_t parent,
		      const struct mount_node *f, const char *name)
{
	struct mount_head *h = calloc(1, sizeof(*h));

	if (!h || !(h->key = dup_bytes(f->key, f->klen)) ||
	    !(h->ver = dup_bytes(f->ver, f->vlen))) {
		/* The dentry then lives out TTL_HEAD: late, never wrong
		 * for a reader (its inode is a fixed version). */
		head_free(h);
		return;
	}
	h->parent = parent;
	snprintf(h->ns, sizeof(h->ns), "%s", f->ns);
	h->klen = f->klen;
	h->vlen = f->vlen;
	snprintf(h->name, sizeof(h->name), "%s", name);
	pthread_mutex_lock(&fs->mu);
	for (struct mount_head **hp = &fs->heads; *hp; hp = &(*hp)->next) {
		struct mount_head *o = *hp;
		if (o->parent == parent && strcmp(o->name, name) == 0) {
			*hp = o->next;
			head_free(o);
			break;
		}
	}
	h->next = fs->heads;
	fs->heads = h;
	pthread_mutex_unlock(&fs->mu);
}

/* ---- namespaces ---- */

static int valid_ns(const char *ns)
{
	size_t len = strlen(ns);
	if (len == 0 || len > LARDER_NS_MAX || ns[0] == '.')
		return 0;
	return strspn(ns, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
			  "0123456789._-") == len;
}

int mount_fs_ns_shown(const struct mount_fs *fs, const char *ns)
{
	if (!valid_ns(ns))
		return 0;
	if (fs->nns == 0)
		return 1;
	for (size_t i = 0; i < fs->nns; i++)
		if (strcmp(fs->ns[i], ns) == 0)
			return 1;
	return 0;
}

struct names {
	char **v;
	size_t n, cap;
};

static int names_add(struct names *l, const char *s)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? 2 * l->cap : 16;
		char **v = realloc(l->v, cap * sizeof(*v));
		if (!v)
			return -1;
		l->v = v;
		l->cap = cap;
	}
	if (!(l->v[l->n] = strdup(s)))
		return -1;
	l->n++;
	return 0;
}

static void names_free(struct names *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
	memset(l, 0, sizeof(*l));
}

static int collect_ns(const char *ns, void *payload)
{
	struct mount_fs **fsp = ((void **)payload)[0];
	struct names *l = ((void **)payload)[1];
	if (!mount_fs_ns_shown(*fsp, ns))
		return 0;
	return names_add(l, ns) ? LARDER_ENOMEM : 0;
}

/* The namespaces shown: those given, or those the store has. */
static int shown_ns(struct mount_fs *fs, struct names *out)
{
	if (fs->nns) {
		for (size_t i = 0; i < fs->nns; i++)
			if (names_add(out, fs->ns[i]))
				return ENOMEM;
		return 0;
	}
	void *payload[2] = {&fs, out};
	int rc = larder_ns_foreach(fs->db, collect_ns, payload);
	if (rc == LARDER_ENOTFOUND)
		return 0;
	return rc ? (rc == LARDER_ENOMEM ? ENOMEM : EIO) : 0;
}

static int ns_exists(struct mount_fs *fs, const char *ns)
{
	struct names l = {0};
	int found = 0;

	if (!mount_fs_ns_shown(fs, ns))
		return 0;
	if (fs->nns)
		return 1;
	if (shown_ns(fs, &l) == 0)
		for (size_t i = 0; i < l.n && !found; i++)
			found = strcmp(l.v[i], ns) == 0;
	names_free(&l);
	return found;
}

/* ---- one entry's header ---- */

struct found {
	int state;
	struct mount_node *f;
};

/* Copy what an entry's header says into the file node found->f. */
static int take_info(const larder_entry_info *info, void *payload)
{
	struct found *fd = payload;
	struct mount_node *f = fd->f;

	fd->state = info->key ? info->state : LARDER_STATE_CORRUPT;
	if (!info->key)
		return 0;
	f->ver = dup_bytes(info->ver, info->vlen);
	if (!f->ver)
		return LARDER_ENOMEM;
	f->vlen = info->vlen;
	f->size = info->size;
	f->created = info->created;
	f->expires = info->expires;
	if (info->version >= 2)
		memcpy(f->checksum, info->checksum, sizeof(f->checksum));
	return 0;
}

/* Look (ns, key, ver) up by its header alone (ver NULL: the head's
 * version) into the file node f, whose ver is then the caller's to
 * free. 0, or an errno: ENOENT for a miss or an expired entry, EIO for a
 * damaged header (a damaged payload is found when opened). */
static int find_entry(struct mount_fs *fs, struct mount_node *f, const char *ns,
		      const void *key, size_t klen, const void *ver,
		      size_t vlen)
{
	struct found fd = {-1, f};
	int rc;

	memset(f, 0, sizeof(*f));
	f->kind = K_FILE;
	snprintf(f->ns, sizeof(f->ns), "%s", ns);
	f->key = (unsigned char *)key;
	f->klen = klen;
	rc =
	    larder_inspect(fs->db, ns, key, klen, ver, vlen, 0, take_info, &fd);
	if (rc == LARDER_ENOTFOUND)
		return ENOENT;
	if (rc == LARDER_ENOMEM)
		return ENOMEM;
	if (rc != 0)
		return EIO;
	if (fd.state == LARDER_STATE_OK && f->ver) {
		f->ino = ino_of(K_FILE, ns, key, klen, f->ver, f->vlen);
		return f->ino ? 0 : ENOMEM;
	}
	free(f->ver);
	f->ver = NULL;
	f->vlen = 0;
	if (fd.state == LARDER_STATE_CORRUPT ||
	    fd.state == LARDER_STATE_MISPLACED)
		return EIO;
	return ENOENT; /* expired, newer format */
}

/* ---- attributes ---- */

static void fill_attr(const struct mount_fs *fs, const struct mount_node *n,
		      struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = n->ino;
	st->st_uid = fs->uid;
	st->st_gid = fs->gid;
	if (n->kind == K_FILE) {
		st->st_mode = S_IFREG | fs->fmode;
		st->st_nlink = 1;
		st->st_size = (off_t)n->size;
		st->st_blocks = (blkcnt_t)((n->size + 511) / 512);
		st->st_mtim.tv_sec = (time_t)(n->created / 1000000000);
		st->st_mtim.tv_nsec = (long)(n->created % 1000000000);
		st->st_ctim = st->st_mtim;
		st->st_atim = st->st_mtim;
	} else {
		/* Directories have no time of their own: the mount's. */
		st->st_mode = S_IFDIR | fs->dmode;
		st->st_nlink = 2;
		st->st_mtim = fs->started;
		st->st_ctim = fs->started;
		st->st_atim = fs->started;
	}
	st->st_blksize = 65536;
}

/* How long a file's dentry may be kept: until the entry expires, at most
 * ttl. */
static double entry_ttl(const struct mount_node *f, double ttl)
{
	if (f->expires > 0) {
		struct timespec now;
		clock_gettime(CLOCK_REALTIME, &now);
		double left =
		    (double)(f->expires -
			     ((int64_t)now.tv_sec * 1000000000 + now.tv_nsec)) /
		    1e9;
		if (left < ttl)
			ttl = left > 0 ? left : 0;
	}
	return ttl;
}

/* ---- operations ---- */

static int hold_once(struct mount_fs *fs, struct mount_node *n);

static void reply_node(fuse_req_t req, struct mount_fs *fs,
		       const struct mount_node *n, double entry_timeout)
{
	struct fuse_entry_param e;

	memset(&e, 0, sizeof(e));
	e.ino = n->ino;
	e.attr_timeout = n->kind == K_FILE ? TTL_FOREVER : TTL_DIR;
	e.entry_timeout = entry_timeout;
	fill_attr(fs, n, &e.attr);
	/* If the kernel is gone (interrupted), it will not forget what it
	 * never got: take the reference back. */
	if (fuse_reply_entry(req, &e) != 0)
		node_unref(fs, n->ino, 1);
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct mount_fs *fs = fuse_req_userdata(req);
	struct mount_node *p = node_get(fs, parent);
	struct mount_node proto, *n;
	unsigned char buf[MOUNT_NAME_MAX + 1];
	size_t len;
	double ttl = TTL_DIR;
	int err = 0;

	if (!p) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	memset(&proto, 0, sizeof(proto));
	switch (p->kind) {
	case K_ROOT:
		if (strcmp(name, "head") == 0) {
			proto.kind = K_HEAD;
		} else if (name[0] == '@' &&
			   mount_name_decode(buf, &len, name + 1) == 0) {
			/* Any version may be entered by name, also one
			 * published after the listing was read. */
			proto.kind = K_VER;
			proto.ver = buf;
			proto.vlen = len;
		} else {
			err = ENOENT;
		}
		break;
	case K_HEAD:
	case K_VER:
		if (!ns_exists(fs, name)) {
			err = ENOENT;
			break;
		}
		proto.kind = p->kind == K_HEAD ? K_HEAD_NS : K_VER_NS;
		snprintf(proto.ns, sizeof(proto.ns), "%s", name);
		proto.ver = p->ver;
		proto.vlen = p->vlen;
		break;
	case K_HEAD_NS:
	case K_VER_NS:
		if (mount_name_decode(buf, &len, name) != 0) {
			err = ENOENT;
			break;
		}
		if (p->kind == K_HEAD_NS)
			err = find_entry(fs, &proto, p->ns, buf, len, NULL, 0);
		else
			err = find_entry(fs, &proto, p->ns, buf, len, p->ver,
					 p->vlen);
		ttl = entry_ttl(&proto,
				p->kind == K_HEAD_NS ? TTL_HEAD : TTL_FOREVER);
		break;
	default:
		err = ENOTDIR;
	}
	if (err) {
		fuse_reply_err(req, err);
		return;
	}
	if (proto.kind != K_FILE)
		proto.ino = ino_of(proto.kind, proto.ns, NULL, 0, proto.ver,
				   proto.vlen);
	n = proto.ino ? node_ref(fs, &proto, &err) : NULL;
	if (!proto.ino)
		err = ENOMEM;
	if (proto.kind == K_FILE)
		free(proto.ver);
	if (!n) {
		fuse_reply_err(req, err);
		return;
	}
	if (n->kind == K_FILE) {
		/* The kernel will open this inode without asking: hold the
		 * entry from here, so that what a later open reads is the
		 * version looked up even if it is removed or evicted before
		 * the first read. */
		err = hold_once(fs, n);
		if (err) {
			node_unref(fs, n->ino, 1);
			fuse_reply_err(req, err);
			return;
		}
	}
	if (n->kind == K_FILE && p->kind == K_HEAD_NS)
		head_note(fs, parent, n, name);
	reply_node(req, fs, n, ttl);
}

static void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	node_unref(fuse_req_userdata(req), ino, nlookup);
	fuse_reply_none(req);
}

static void op_forget_multi(fuse_req_t req, size_t count,
			    struct fuse_forget_data *forgets)
{
	for (size_t i = 0; i < count; i++)
		node_unref(fuse_req_userdata(req), forgets[i].ino,
			   forgets[i].nlookup);
	fuse_reply_none(req);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino,
		       struct fuse_file_info *fi)
{
	struct mount_fs *fs = fuse_req_userdata(req);
	struct mount_node *n = node_get(fs, ino);
	struct stat st;

	(void)fi;
	if (!n) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	fill_attr(fs, n, &st);
	fuse_reply_attr(req, &st, n->kind == K_FILE ? TTL_FOREVER : TTL_DIR);
}

/* The entry behind file node n, as an errno: ENOENT (gone since its
 * header was read, or expired), ENOMEM, EIO. */
static int entry_err(int rc)
{
	return rc == LARDER_ENOTFOUND ? ENOENT
	       : rc == LARDER_ENOMEM  ? ENOMEM
				      : EIO;
}

/* n (under its vmu) holds an unverified entry, whose file is open, or
 * no longer does. */
static void set_holding(struct mount_fs *fs, struct mount_node *n, int on)
{
	if (n->holding == on)
		return;
	n->holding = on;
	if (on)
		__atomic_add_fetch(&fs->holding, 1, __ATOMIC_RELAXED);
	else
		__atomic_sub_fetch(&fs->holding, 1, __ATOMIC_RELAXED);
}

/* Hold the entry behind file node n from its lookup, once: its file
 * open, its payload not read (a stat costs its header). 0 or an errno.
 * Past hold_max entries held so, or out of descriptors anyway, the node
 * holds nothing and its first read looks the entry up then (docs/fuse.md,
 * "Not yet"): held to the last descriptor, the entries would leave none
 * for the header a lookup reads, and every later lookup would fail. */
static int hold_once(struct mount_fs *fs, struct mount_node *n)
{
	larder_entry *e = NULL;
	int rc = 0;

	pthread_mutex_lock(&n->vmu);
	if (n->entry || n->bad)
		goto out;
	if (__atomic_load_n(&fs->holding, __ATOMIC_RELAXED) >= fs->hold_max)
		goto out;
	rc = larder_get_unverified(&e, fs->db, n->ns, n->key, n->klen, n->ver,
				   n->vlen);
	if (rc != 0) {
		int oserr = larder_errno(fs->db);
		rc = oserr == EMFILE || oserr == ENFILE ? 0 : entry_err(rc);
		goto out;
	}
	if (larder_entry_size(e) != n->size) {
		larder_entry_release(e); /* not the header it was found by */
		rc = EIO;
		goto out;
	}
	n->entry = e;
	set_holding(fs, n, 1);
out:
	pthread_mutex_unlock(&n->vmu);
	return rc;
}

/* Verify the entry behind file node n before its first byte is served,
 * once: a reader that comes meanwhile waits on vmu for the one
 * verification. 0 (n->entry verified) or an errno; a damaged entry is
 * EIO for good (quarantined and counted by the library). */
static int verify_once(struct mount_fs *fs, struct mount_node *n)
{
	int rc = 0;

	if (__atomic_load_n(&n->verified, __ATOMIC_ACQUIRE))
		return 0;
	pthread_mutex_lock(&n->vmu);
	if (n->verified)
		goto out;
	if (n->bad) {
		rc = EIO;
		goto out;
	}
	if (!n->entry) {
		rc = larder_get_unverified(&n->entry, fs->db, n->ns, n->key,
					   n->klen, n->ver, n->vlen);
		if (rc != 0) {
			rc = entry_err(rc);
			goto out;
		}
		set_holding(fs, n, 1);
	}
	rc = larder_entry_verify(n->entry);
	if (rc == LARDER_ECORRUPT) {
		n->bad = 1;
		/* Counted store-wide now, not when the mount ends: `larder
		 * stat` is where an operator looks. Failing to is logged by
		 * the library and tried again at close. */
		larder_stats_flush(fs->db);
		rc = EIO;
		goto out;
	}
	if (rc != 0) {
		rc =
		    entry_err(rc); /* not verified: the next read tries again */
		goto out;
	}
	if (larder_entry_size(n->entry) != n->size) {
		n->bad = 1;
		rc = EIO;
		goto out;
	}
	set_holding(fs, n, 0); /* a verified entry keeps no descriptor */
	__atomic_add_fetch(&fs->verified, 1, __ATOMIC_RELAXED);
	__atomic_store_n(&n->verified, 1, __ATOMIC_RELEASE);
out:
	pthread_mutex_unlock(&n->vmu);
	return rc;
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct mount_fs *fs = fuse_req_userdata(req);
	struct mount_node *n = node_get(fs, ino);

	if (!n) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	if (n->kind != K_FILE) {
		fuse_reply_err(req, EISDIR);
		return;
	}
	if ((fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & O_TRUNC)) {
		fuse_reply_err(req, EROFS);
		return;
	}
	if (fs->daemon_open) {
		/* The inode's content never changes: its cached pages stay
		 * right for every later open. */
		fi->keep_cache = 1;
		fuse_reply_open(req, fi);
		return;
	}
	/* Zero-message opens: ENOSYS tells the kernel to open files itself
	 * from now on (keeping their cached pages, as keep_cache would), so
	 * that an open costs what it costs on a local file. Nothing is lost:
	 * the entry is held since its lookup and verified at its first read
	 * either way. */
	fuse_reply_err(req, ENOSYS);
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	struct mount_fs *fs = fuse_req_userdata(req);
	struct mount_node *n = node_get(fs, ino);
	larder_entry *e;
	int err;

	(void)fi;
	if (!n) {
		fuse_reply_err(req, EBADF);
		return;
	}
	/* The reply of the first read goes out only after the verification:
	 * no page of a damaged entry reaches the page cache. Held until
	 * forget, which comes after the last reader closed. */
	err = verify_once(fs, n);
	if (err) {
		fuse_reply_err(req, err);
		return;
	}
	e = n->entry;
	size_t total = larder_entry_size(e);
	if (off < 0 || (uint64_t)off >= total) {
		fuse_reply_buf(req, NULL, 0);
		return;
	}
	if (size > total - (size_t)off)
		size = total - (size_t)off;
	const char *data = larder_entry_data(e);
	fuse_reply_buf(req, data + off, size);
	/* The bytes now sit in this inode's page cache, which keep_cache
	 * keeps: the entry file's pages behind the mapping would be a second
	 * copy of them. Page them out (clean pages of a file: dropped, read
	 * again should the kernel ask again), whole pages inside the range
	 * only. Advice: a failure costs memory, never bytes. */
	if (larder_entry_is_mapped(e)) {
		uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
		uintptr_t lo =
		    ((uintptr_t)(data + off) + page - 1) & ~(page - 1);
		uintptr_t hi = (uintptr_t)(data + off + size);
		if ((uintptr_t)(data + off + size) == (uintptr_t)(data + total))
			hi = (hi + page - 1) & ~(page - 1); /* the tail page */
		else
			hi &= ~(page - 1);
		if (hi > lo)
			madvise((void *)lo, hi - lo, MADV_PAGEOUT);
	}
}

/* ---- directories ---- */

struct dent {
	char *name;
	fuse_ino_t ino;
	int dir;
};

/* (key, version) pairs found by a walk. */
struct pair {
	unsigned char *key, *ver;
	size_t klen, vlen;
};

struct pairs {
	struct pair *v;
	size_t n, cap;
	/* Filter: only this version (want_ver set), and only readable
	 * states. */
	const void *want_ver;
	size_t want_vlen;
	int want;
};

struct listing {
	struct dent *v;
	size_t n, cap;
	/* A namespace's keys are read a slice at a time, as readdir gets
	 * that far (larder_walk_slice): dir is the directory, next_slice
	 * the first slice not read yet. NULL for the listings read whole. */
	const struct mount_node *dir;
	int next_slice;
	/* The root's @<version> directories are read the same way, slice
	 * by slice of each shown namespace (ns, from ns_next on): seen
	 * holds the versions listed so far (as the pairs' keys, sorted),
	 * so that each is listed once. */
	int root;
	struct names ns;
	size_t ns_next;
	struct pairs seen;
};

static int list_add(struct listing *l, const char *name, fuse_ino_t ino,
		    int dir)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? 2 * l->cap : 32;
		struct dent *v = realloc(l->v, cap * sizeof(*v));
		if (!v)
			return ENOMEM;
		l->v = v;
		l->cap = cap;
	}
	if (!(l->v[l->n].name = strdup(name)))
		return ENOMEM;
	l->v[l->n].ino = ino;
	l->v[l->n].dir = dir;
	l->n++;
	return 0;
}

static void pairs_free(struct pairs *ps);

static void list_free(struct listing *l)
{
	if (!l)
		return;
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i].name);
	free(l->v);
	names_free(&l->ns);
	pairs_free(&l->seen);
	free(l);
}

static int collect_pair(const larder_entry_info *info, void *payload)
{
	struct pairs *ps = payload;

	if (!info->key || info->state != LARDER_STATE_OK)
		return 0;
	if (ps->want &&
	    !same_bytes(info->ver, info->vlen, ps->want_ver, ps->want_vlen))
		return 0;
	if (ps->n == ps->cap) {
		size_t cap = ps->cap ? 2 * ps->cap : 64;
		struct pair *v = realloc(ps->v, cap * sizeof(*v));
		if (!v)
			return LARDER_ENOMEM;
		ps->v = v;
		ps->cap = cap;
	}
	struct pair *p = &ps->v[ps->n];
	p->key = dup_bytes(info->key, info->klen);
	p->ver = dup_bytes(info->ver, info->vlen);
	if (!p->key || !p->ver) {
		free(p->key);
		free(p->ver);
		return LARDER_ENOMEM;
	}
	p->klen = info->klen;
	p->vlen = info->vlen;
	ps->n++;
	return 0;
}

static int cmp_bytes(const void *a, size_t alen, const void *b, size_t blen)
{
	size_t n = alen < blen ? alen : blen;
	int c = n ? memcmp(a, b, n) : 0; /* a and b may be NULL when empty */
	return c ? c : (alen > blen) - (alen < blen);
}

static int cmp_pair(const void *x, const void *y)
{
	const struct pair *a = x, *b = y;
	int c = cmp_bytes(a->key, a->klen, b->key, b->klen);
	return c ? c : cmp_bytes(a->ver, a->vlen, b->ver, b->vlen);
}

static void pairs_free(struct pairs *ps)
{
	for (size_t i = 0; i < ps->n; i++) {
		free(ps->v[i].key);
		free(ps->v[i].ver);
	}
	free(ps->v);
}

static int walk_rc(int rc)
{
	if (rc == LARDER_ENOTFOUND || rc == 0)
		return 0;
	return rc == LARDER_ENOMEM ? ENOMEM : EIO;
}

/* Keep each distinct pair once (sorted first). */
static void pairs_unique(struct pairs *ps)
{
	size_t w = 0;

	if (ps->n)
		qsort(ps->v, ps->n, sizeof(*ps->v), cmp_pair);
	for (size_t i = 0; i < ps->n; i++) {
		if (w && cmp_pair(&ps->v[w - 1], &ps->v[i]) == 0) {
			free(ps->v[i].key);
			free(ps->v[i].ver);
			continue;
		}
		ps->v[w++] = ps->v[i];
	}
	ps->n = w;
}

/* Append to l the versions of ps (read from one slice: its pairs) that
 * it has not listed yet, as @<version> directories, and keep them in
 * l->seen; ps is emptied. All of them or none (ps is then the caller's
 * to free): a retry reads the slice again. */
static int list_versions(struct listing *l, struct pairs *ps)
{
	char name[MOUNT_NAME_MAX + 2]; /* '@' and the version's name */
	size_t n0 = l->n, i = 0, j = 0, w = 0;
	struct pair *merged;
	int err = 0;

	/* Keep the versions alone (as the pairs' keys), each once. */
	for (size_t k = 0; k < ps->n; k++) {
		free(ps->v[k].key);
		ps->v[k].key = ps->v[k].ver;
		ps->v[k].klen = ps->v[k].vlen;
		ps->v[k].ver = NULL;
		ps->v[k].vlen = 0;
	}
	pairs_unique(ps);
	merged = malloc((l->seen.n + ps->n + 1) * sizeof(*merged));
	if (!merged)
		return ENOMEM;
	/* Both sorted: one merge finds the new ones and the union. */
	while (!err && (i < l->seen.n || j < ps->n)) {
		int c = i == l->seen.n ? 1
			: j == ps->n   ? -1
				       : cmp_pair(&l->seen.v[i], &ps->v[j]);
		if (c <= 0) {
			merged[w++] = l->seen.v[i++];
			if (c == 0) { /* listed before: the copy goes */
				free(ps->v[j].key);
				ps->v[j++].key = NULL;
			}
			continue;
		}
		struct pair *p = &ps->v[j++];
		merged[w++] = *p;
		name[0] = '@';
		if (mount_name_encode(name + 1, p->key, p->klen) < 0 ||
		    strlen(name) > MOUNT_NAME_MAX)
			continue; /* no name can hold it */
		err = list_add(l, name,
			       ino_of(K_VER, "", NULL, 0, p->key, p->klen), 1);
	}
	if (err) {
		while (l->n > n0)
			free(l->v[--l->n].name);
		free(merged);
		return err;
	}
	/* merged now owns the new versions' bytes and l->seen's. */
	free(ps->v);
	memset(ps, 0, sizeof(*ps));
	free(l->seen.v);
	l->seen.v = merged;
	l->seen.n = l->seen.cap = w;
	return 0;
}

/* Read the root listing's next slice of versions. */
static int list_root_slice(struct mount_fs *fs, struct listing *l)
{
	struct pairs ps = {0};
	int err = walk_rc(larder_walk_slice(fs->db, l->ns.v[l->ns_next],
					    l->next_slice, l->next_slice + 1, 0,
					    collect_pair, &ps));
	if (!err)
		err = list_versions(l, &ps);
	pairs_free(&ps);
	if (err)
		return err;
	if (++l->next_slice == LARDER_WALK_SLICES) {
		l->next_slice = 0;
		l->ns_next++;
	}
	return 0;
}

static int list_ns(struct mount_fs *fs, const struct mount_node *dir,
		   struct listing *l)
{
	struct names ns = {0};
	int kind = dir->kind == K_HEAD ? K_HEAD_NS : K_VER_NS;
	int err = shown_ns(fs, &ns);

	for (size_t i = 0; !err && i < ns.n; i++)
		err = list_add(
		    l, ns.v[i],
		    ino_of(kind, ns.v[i], NULL, 0, dir->ver, dir->vlen), 1);
	names_free(&ns);
	return err;
}

/* Append the keys of slice `slice` of dir's namespace to l, sorted. */
static int list_slice(struct mount_fs *fs, const struct mount_node *dir,
		      int slice, struct listing *l)
{
	struct pairs ps = {0};
	char name[MOUNT_NAME_MAX + 1];
	size_t n0 = l->n;
	int err;

	if (dir->kind == K_VER_NS) {
		ps.want = 1;
		ps.want_ver = dir->ver;
		ps.want_vlen = dir->vlen;
	}
	err = walk_rc(larder_walk_slice(fs->db, dir->ns, slice, slice + 1, 0,
					collect_pair, &ps));
	if (!err)
		pairs_unique(&ps); /* by key, then version */
	for (size_t i = 0; !err && i < ps.n; i++) {
		struct pair *p = &ps.v[i];
		struct mount_node f;
		if (mount_name_encode(name, p->key, p->klen) < 0)
			continue; /* no name can hold it */
		if (dir->kind == K_VER_NS) {
			err = list_add(l, name,
				       ino_of(K_FILE, dir->ns, p->key, p->klen,
					      p->ver, p->vlen),
				       0);
			continue;
		}
		/* head/: a key is listed from the slice that holds the
		 * version its head names (each entry is in one slice), so
		 * once in all, and only while that version is readable. */
		size_t end = i;
		while (end + 1 < ps.n &&
		       same_bytes(ps.v[end + 1].key, ps.v[end + 1].klen, p->key,
				  p->klen))
			end++;
		int rc = find_entry(fs, &f, dir->ns, p->key, p->klen, NULL, 0);
		if (rc == ENOMEM)
			err = rc;
		for (size_t k = i; rc == 0 && k <= end; k++) {
			if (same_bytes(ps.v[k].ver, ps.v[k].vlen, f.ver,
				       f.vlen)) {
				err = list_add(l, name, f.ino, 0);
				break;
			}
		}
		if (rc == 0)
			free(f.ver);
		i = end;
	}
	pairs_free(&ps);
	if (err) {
		/* All of the slice or none: a retry reads it again. */
		while (l->n > n0)
			free(l->v[--l->n].name);
	}
	return err;
}

/* Whether l has slices left to read. */
static int list_more(const struct listing *l)
{
	if (l->root)
		return l->ns_next < l->ns.n;
	return l->dir && l->next_slice < LARDER_WALK_SLICES;
}

/* Read l's next slice. */
static int list_next(struct mount_fs *fs, struct listing *l)
{
	int err;

	if (l->root)
		return list_root_slice(fs, l);
	err = list_slice(fs, l->dir, l->next_slice, l);
	if (!err)
		l->next_slice++;
	return err;
}

static void op_opendir(fuse_req_t req, fuse_ino_t ino,
		       struct fuse_file_info *fi)
{
	struct mount_fs *fs = fuse_req_userdata(req);
	struct mount_node *n = node_get(fs, ino);
	struct listing *l;
	int err;

	if (!n) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	if (n->kind == K_FILE) {
		fuse_reply_err(req, ENOTDIR);
		return;
	}
	l = calloc(1, sizeof(*l));
	if (!l) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	/* The listing is kept with the open directory and served from
	 * memory by offset, read as far as readdir needs (a slice of the
	 * store at a time, but for the short ones): a reader that resumes
	 * a listing gets the rest of the same one. */
	err = list_add(l, ".", n->ino, 1);
	if (!err)
		err = list_add(l, "..", FUSE_ROOT_ID, 1);
	if (!err) {
		switch (n->kind) {
		case K_ROOT:
			/* The versions as readdir goes: op_readdir. */
			err =
			    list_add(l, "head",
				     ino_of(K_HEAD, NULL, NULL, 0, NULL, 0), 1);
			if (!err)
				err = shown_ns(fs, &l->ns);
			l->root = 1;
			break;
		case K_HEAD:
		case K_VER:
			err = list_ns(fs, n, l);
			break;
		default:
			l->dir = n; /* read as readdir goes: op_readdir */
		}
	}
	if (err) {
		list_free(l);
		fuse_reply_err(req, err);
		return;
	}
	fi->fh = (uint64_t)(uintptr_t)l;
	if (fuse_reply_open(req, fi) != 0)
		list_free(l);
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	struct listing *l = (struct listing *)(uintptr_t)fi->fh;
	char *buf;
	size_t pos = 0;

	(void)ino;
	buf = malloc(size ? size : 1);
	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	for (size_t i = off < 0 ? 0 : (size_t)off;; i++) {
		struct stat st;
		/* The next slices, as far as this reply needs: a listing
		 * that is never read to its end never walks it all. */
		while (i >= l->n && list_more(l)) {
			int err = list_next(fuse_req_userdata(req), l);
			if (err) {
				free(buf);
				fuse_reply_err(req, err);
				return;
			}
		}
		if (i >= l->n)
			break;
		memset(&st, 0, sizeof(st));
		st.st_ino = l->v[i].ino;
		st.st_mode = l->v[i].dir ? S_IFDIR : S_IFREG;
		size_t want =
		    fuse_add_direntry(req, buf + pos, size - pos, l->v[i].name,
				      &st, (off_t)(i + 1));
		if (want > size - pos)
			break;
		pos += want;
	}
	fuse_reply_buf(req, buf, pos);
	free(buf);
}

static void op_releasedir(fuse_req_t req, fuse_ino_t ino,
			  struct fuse_file_info *fi)
{
	(void)ino;
	list_free((struct listing *)(uintptr_t)fi->fh);
	fuse_reply_err(req, 0);
}

/* ---- xattrs ---- */

static const char xattr_names[] =
    "user.larder.version\0user.larder.expires\0user.larder.checksum";

static void reply_value(fuse_req_t req, const void *v, size_t len, size_t size)
{
	if (size == 0)
		fuse_reply_xattr(req, len);
	else if (size < len)
		fuse_reply_err(req, ERANGE);
	else
		fuse_reply_buf(req, v, len);
}

/* The root's: how many entries this mount verified since it started
 * (docs/fuse.md). */
static const char root_xattr_names[] = "user.larder.verified";

static void op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	struct mount_node *n = node_get(fuse_req_userdata(req), ino);

	if (n && n->kind == K_ROOT)
		reply_value(req, root_xattr_names, sizeof(root_xattr_names),
			    size);
	else if (!n || n->kind != K_FILE)
		reply_value(req, "", 0, size);
	else
		reply_value(req, xattr_names, sizeof(xattr_names), size);
}

static void op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
			size_t size)
{
	struct mount_fs *fs = fuse_req_userdata(req);
	struct mount_node *n = node_get(fs, ino);
	char text[64];

	if (n && n->kind == K_ROOT &&
	    strcmp(name, "user.larder.verified") == 0) {
		snprintf(text, sizeof(text), "%llu",
			 (unsigned long long)__atomic_load_n(&fs->verified,
							     __ATOMIC_RELAXED));
		reply_value(req, text, strlen(text), size);
	} else if (!n || n->kind != K_FILE) {
		fuse_reply_err(req, ENODATA);
	} else if (strcmp(name, "user.larder.version") == 0) {
		reply_value(req, n->ver, n->vlen, size);
	} else if (strcmp(name, "user.larder.expires") == 0) {
		/* ISO-8601 UTC as `larder ls` prints it, or "never". */
		if (n->expires)
			out_iso_time(text, sizeof(text), n->expires);
		else
			snprintf(text, sizeof(text), "never");
		reply_value(req, text, strlen(text), size);
	} else if (strcmp(name, "user.larder.checksum") == 0) {
		for (int i = 0; i < 16; i++)
			snprintf(text + 2 * i, 3, "%02x", n->checksum[i]);
		reply_value(req, text, 32, size);
	} else {
		fuse_reply_err(req, ENODATA);
	}
}

/* ---- every write ---- */

static void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr,
		       int to_set, struct fuse_file_info *fi)
{
	(void)ino, (void)attr, (void)to_set, (void)fi;
	fuse_reply_err(req, EROFS);
}

static void op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name,
		     mode_t mode, dev_t rdev)
{
	(void)parent, (void)name, (void)mode, (void)rdev;
	fuse_reply_err(req, EROFS);
}

static void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name,
		     mode_t mode)
{
	(void)parent, (void)name, (void)mode;
	fuse_reply_err(req, EROFS);
}

static void op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	(void)parent, (void)name;
	fuse_reply_err(req, EROFS);
}

static void op_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
		      fuse_ino_t newparent, const char *newname,
		      unsigned int flags)
{
	(void)parent, (void)name, (void)newparent, (void)newname, (void)flags;
	fuse_reply_err(req, EROFS);
}

static void op_create(fuse_req_t req, fuse_ino_t parent, const char *name,
		      mode_t mode, struct fuse_file_info *fi)
{
	(void)parent, (void)name, (void)mode, (void)fi;
	fuse_reply_err(req, EROFS);
}

static void op_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
			const char *value, size_t size, int flags)
{
	(void)ino, (void)name, (void)value, (void)size, (void)flags;
	fuse_reply_err(req, EROFS);
}

static void op_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	(void)ino, (void)name;
	fuse_reply_err(req, EROFS);
}

const struct fuse_lowlevel_ops mount_fs_ops = {
    .lookup = op_lookup,
    .forget = op_forget,
    .forget_multi = op_forget_multi,
    .getattr = op_getattr,
    .open = op_open,
    .read = op_read,
    .opendir = op_opendir,
    .readdir = op_readdir,
    .releasedir = op_releasedir,
    .listxattr = op_listxattr,
    .getxattr = op_getxattr,
    .setattr = op_setattr,
    .mknod = op_mknod,
    .mkdir = op_mkdir,
    .unlink = op_unlink,
    .rmdir = op_unlink,
    .rename = op_rename,
    .create = op_create,
    .setxattr = op_setxattr,
    .removexattr = op_removexattr,
};

int mount_fs_init(struct mount_fs *fs, larder *db, const char *dir, char **ns,
		  size_t nns, unsigned poll_ms)
{
	struct mount_node *root;

	memset(fs, 0, sizeof(*fs));
	fs->db = db;
	fs->dir = dir;
	fs->ns = ns;
	fs->nns = nns;
	fs->poll_ms = poll_ms;
	fs->hold_max = SIZE_MAX;
	struct stat st;
	if (stat(dir, &st) != 0)
		return LARDER_EIO;
	fs->uid = st.st_uid;
	fs->gid = st.st_gid;
	fs->fmode = (mode_t)(larder_mode(db) & 0444);
	fs->dmode = fs->fmode | (fs->fmode >> 2); /* x where r */
	fs->stop_fd = -1;
	clock_gettime(CLOCK_REALTIME, &fs->started);
	fs->nbuckets = 4096;
	fs->buckets = calloc(fs->nbuckets, sizeof(*fs->buckets));
	root = calloc(1, sizeof(*root));
	if (root)
		pthread_mutex_init(&root->vmu, NULL);
	if (!fs->buckets || !root || !(root->key = dup_bytes(NULL, 0)) ||
	    !(root->ver = dup_bytes(NULL, 0))) {
		node_free(root);
		free(fs->buckets);
		return LARDER_ENOMEM;
	}
	root->ino = FUSE_ROOT_ID;
	root->kind = K_ROOT;
	root->nlookup = 1;
	fs->buckets[bucket_of(fs, root->ino)] = root;
	pthread_mutex_init(&fs->mu, NULL);
	return 0;
}

void mount_fs_destroy(struct mount_fs *fs)
{
	for (size_t b = 0; fs->buckets && b < fs->nbuckets; b++) {
		while (fs->buckets[b]) {
			struct mount_node *n = fs->buckets[b];
			fs->buckets[b] = n->next;
			node_free(n);
		}
	}
	free(fs->buckets);
	fs->buckets = NULL;
	while (fs->heads) {
		struct mount_head *h = fs->heads;
		fs->heads = h->next;
		head_free(h);
	}
	pthread_mutex_destroy(&fs->mu);
}
