/*
 * watch.c — the thread that keeps head dentries true (docs/fuse.md,
 * "Isolation"): when a key's head names another version, the kernel is
 * told to drop head/<ns>/<key> (fuse_lowlevel_notify_inval_entry), so the
 * next open looks it up again and gets the new version's inode, while
 * files already open keep theirs.
 *
 * It wakes on inotify events under the shown namespaces' head
 * directories (the store layout of docs/format.md), which a local
 * publish makes at once, and every poll interval anyway, which is what
 * a network filesystem gets (inotify sees only this host's changes).
 * Either way it judges by reading each head the kernel holds, never by
 * the event: an event only says "look now".
 *
 * It runs apart from libfuse's workers because an invalidation waits for
 * the kernel, which may be waiting for a lookup a worker is answering.
 */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <unistd.h>

#include "fs.h"

/* Directory depths under DIR/ns: the ns/ directory itself, a namespace,
 * its h/, and the two fan-out levels of h/. Head files live in the last. */
enum { D_NSROOT, D_NS, D_H, D_FAN1, D_FAN2 };

struct wdir {
	int wd;
	int depth;
	char *path;
};

struct watcher {
	struct mount_fs *fs;
	int in;
	struct wdir *v;
	size_t n, cap;
	int full; /* the watch limit was met: polling alone from then */
};

static int want_child(const struct watcher *w, int depth, const char *name)
{
	if (name[0] == '.')
		return 0; /* temp files, and the library's namespaces */
	if (depth == D_NSROOT)
		return mount_fs_ns_shown(w->fs, name);
	if (depth == D_NS)
		return strcmp(name, "h") == 0;
	return depth < D_FAN2;
}

static void add_tree(struct watcher *w, const char *path, int depth);

static void add_children(struct watcher *w, const char *path, int depth)
{
	char sub[PATH_MAX];
	DIR *d = opendir(path);
	struct dirent *de;

	if (!d)
		return; /* gone, or not made yet: its parent's watch sees it */
	while ((de = readdir(d)) != NULL) {
		if (!want_child(w, depth, de->d_name))
			continue;
		if (snprintf(sub, sizeof(sub), "%s/%s", path, de->d_name) >=
		    (int)sizeof(sub))
			continue;
		add_tree(w, sub, depth + 1);
	}
	closedir(d);
}

/* Watch path (at depth) and what is below it that matters. A directory
 * made between the watch and the listing is seen by both: harmless. */
static void add_tree(struct watcher *w, const char *path, int depth)
{
	uint32_t mask = IN_CREATE | IN_MOVED_TO | IN_DELETE | IN_MOVED_FROM |
			IN_CLOSE_WRITE | IN_ONLYDIR;
	int wd;

	if (w->full)
		return;
	wd = inotify_add_watch(w->in, path, mask);
	if (wd < 0) {
		if (errno == ENOSPC) {
			fprintf(stderr,
				"larder: mount: cannot watch '%s': %s; heads "
				"are looked at every %u ms only\n",
				path, strerror(errno), w->fs->poll_ms);
			w->full = 1;
		}
		return;
	}
	if (w->n == w->cap) {
		size_t cap = w->cap ? 2 * w->cap : 64;
		struct wdir *v = realloc(w->v, cap * sizeof(*v));
		if (!v)
			return;
		w->v = v;
		w->cap = cap;
	}
	w->v[w->n].wd = wd;
	w->v[w->n].depth = depth;
	w->v[w->n].path = strdup(path);
	if (!w->v[w->n].path)
		return;
	w->n++;
	if (depth < D_FAN2)
		add_children(w, path, depth);
}

static const struct wdir *by_wd(const struct watcher *w, int wd)
{
	/* The last match: inotify gives a directory made again the same
	 * watch descriptor, and the newest record has its path. */
	for (size_t i = w->n; i-- > 0;)
		if (w->v[i].wd == wd)
			return &w->v[i];
	return NULL;
}

/* Read the pending events; watch new directories. 1 if any came. */
static int drain(struct watcher *w)
{
	char buf[16384]
	    __attribute__((aligned(__alignof__(struct inotify_event))));
	char sub[PATH_MAX];
	int any = 0;

	for (;;) {
		ssize_t len = read(w->in, buf, sizeof(buf));
		if (len <= 0)
			return any;
		any = 1;
		for (char *p = buf; p < buf + len;) {
			struct inotify_event *ev = (struct inotify_event *)p;
			p += sizeof(*ev) + ev->len;
			const struct wdir *d = by_wd(w, ev->wd);
			if (!d || !ev->len || !(ev->mask & IN_ISDIR) ||
			    !(ev->mask & (IN_CREATE | IN_MOVED_TO)) ||
			    !want_child(w, d->depth, ev->name))
				continue;
			if (snprintf(sub, sizeof(sub), "%s/%s", d->path,
				     ev->name) < (int)sizeof(sub))
				add_tree(w, sub, d->depth + 1);
		}
	}
}

struct seen {
	int found;
	unsigned char *ver;
	size_t vlen;
};

static int take_ver(const larder_entry_info *info, void *payload)
{
	struct seen *s = payload;
	if (!info->key || info->state != LARDER_STATE_OK)
		return 0;
	s->ver = malloc(info->vlen ? info->vlen : 1);
	if (!s->ver)
		return LARDER_ENOMEM;
	if (info->vlen)
		memcpy(s->ver, info->ver, info->vlen);
	s->vlen = info->vlen;
	s->found = 1;
	return 0;
}

/* Look at each head the kernel holds; drop those that moved. */
static void recheck(struct mount_fs *fs)
{
	struct mount_head *snap = NULL;

	/* A copy, so that no lock is held while the store is read or the
	 * kernel told. */
	pthread_mutex_lock(&fs->mu);
	for (struct mount_head *h = fs->heads; h; h = h->next) {
		struct mount_head *c = malloc(sizeof(*c));
		if (!c)
			break;
		*c = *h;
		c->key = malloc(h->klen ? h->klen : 1);
		c->ver = malloc(h->vlen ? h->vlen : 1);
		if (!c->key || !c->ver) {
			free(c->key);
			free(c->ver);
			free(c);
			break;
		}
		memcpy(c->key, h->key, h->klen);
		memcpy(c->ver, h->ver, h->vlen);
		c->next = snap;
		snap = c;
	}
	pthread_mutex_unlock(&fs->mu);

	while (snap) {
		struct mount_head *c = snap;
		struct seen s = {0, NULL, 0};
		snap = c->next;
		int rc = larder_inspect(fs->db, c->ns, c->key, c->klen, NULL, 0,
					0, take_ver, &s);
		int moved = rc == LARDER_ENOTFOUND ||
			    (rc == 0 && (!s.found || s.vlen != c->vlen ||
					 memcmp(s.ver, c->ver, c->vlen) != 0));
		if (moved) {
			/* Forget the record first: a lookup racing with
			 * this notes the new version after it. */
			pthread_mutex_lock(&fs->mu);
			for (struct mount_head **hp = &fs->heads; *hp;
			     hp = &(*hp)->next) {
				struct mount_head *h = *hp;
				if (h->parent == c->parent &&
				    strcmp(h->name, c->name) == 0 &&
				    h->vlen == c->vlen &&
				    memcmp(h->ver, c->ver, c->vlen) == 0) {
					*hp = h->next;
					free(h->key);
					free(h->ver);
					free(h);
					break;
				}
			}
			pthread_mutex_unlock(&fs->mu);
			/* ENOENT: the kernel had dropped it already. */
			fuse_lowlevel_notify_inval_entry(
			    fs->se, c->parent, c->name, strlen(c->name));
		}
		free(s.ver);
		free(c->key);
		free(c->ver);
		free(c);
	}
}

static void *watch_main(void *arg)
{
	struct mount_fs *fs = arg;
	struct watcher w = {fs, -1, NULL, 0, 0, 0};
	char path[PATH_MAX];

	w.in = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (w.in < 0)
		fprintf(stderr,
			"larder: mount: inotify_init1: %s; heads are looked at "
			"every %u ms only\n",
			strerror(errno), fs->poll_ms);
	else if (snprintf(path, sizeof(path), "%s/ns", fs->dir) <
		 (int)sizeof(path))
		add_tree(&w, path, D_NSROOT);

	for (;;) {
		struct pollfd p[2] = {{fs->stop_fd, POLLIN, 0},
				      {w.in, POLLIN, 0}};
		int n = poll(p, w.in >= 0 ? 2 : 1, (int)fs->poll_ms);
		if (n < 0 && errno != EINTR)
			break;
		if (p[0].revents)
			break;
		if (w.in >= 0 && p[1].revents)
			drain(&w);
		recheck(fs);
	}
	for (size_t i = 0; i < w.n; i++)
		free(w.v[i].path);
	free(w.v);
	if (w.in >= 0)
		close(w.in);
	return NULL;
}

int mount_watch_start(struct mount_fs *fs)
{
	int err;

	fs->stop_fd = eventfd(0, EFD_CLOEXEC);
	if (fs->stop_fd < 0)
		return errno;
	/* With every signal blocked, inherited by the thread: a SIGTERM
	 * must reach a thread of libfuse's loop, whose handler's flag the
	 * loop looks at when the signal interrupts it; taken by this
	 * thread, it would set the flag and wake nobody. */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	err = pthread_create(&fs->watch, NULL, watch_main, fs);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (err) {
		close(fs->stop_fd);
		fs->stop_fd = -1;
		return err;
	}
	fs->watching = 1;
	return 0;
}

void mount_watch_stop(struct mount_fs *fs)
{
	uint64_t one = 1;

	if (!fs->watching)
		return;
	if (write(fs->stop_fd, &one, sizeof(one)) != sizeof(one))
		perror("larder: mount: cannot stop the watch thread");
	else
		pthread_join(fs->watch, NULL);
	close(fs->stop_fd);
	fs->stop_fd = -1;
	fs->watching = 0;
}
