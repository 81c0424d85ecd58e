/*
 * recency.c — the store's recency and room: the touch on a hit (an
 * entry's access time says when it was last used, throttled per handle
 * by the touch interval), the free-space state that a publish checks
 * before it writes (refused below the stop watermark), and the store's
 * limits in DIR/config that both read (docs/operations.md). Cleaning by
 * these figures is upkeep's (src/upkeep/gc.c), called through the hooks.
 */
#include "recency.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "bytes.h"
#include "clock.h"
#include "config.h"

#define RELOAD_S 2	 /* DIR/config re-read at most this often */
#define TOUCH_SLOTS 4096 /* per-handle table of recent touches */

struct ldr_recency {
	pthread_mutex_t mu;
	larder_limits store;	/* under mu */
	int64_t store_loaded;	/* monotonic s, atomic */
	int64_t touch_interval; /* atomic copy for the hit path */
	/* free space, looked at once a second */
	int64_t space_checked_ms;
	int space_state; /* 0 fine, 1 below cull, 2 below stop */
	double free_pct;
	int free_files; /* the figure that is low is the files' */
	/* (tag << 32 | monotonic s) of entries touched or checked */
	uint64_t touched[TOUCH_SLOTS];
};

static void parse_store(const char *text, larder_limits *l)
{
	larder_limits d = LARDER_LIMITS_INIT;
	long long v;
	int r, c, s;
	*l = d;
	l->max_bytes = ldr_conf_num(text, "max_bytes");
	l->max_entries = ldr_conf_num(text, "max_entries");
	if (sscanf(ldr_conf_val(text, "watermarks"), " %d %d %d", &r, &c, &s) ==
		3 &&
	    ((r > c && c > s && s >= 0 && r <= 100) || (!r && !c && !s))) {
		l->wm_run = r;
		l->wm_cull = c;
		l->wm_stop = s;
	}
	if (sscanf(ldr_conf_val(text, "touch_interval"), " %lld", &v) == 1 &&
	    v >= 0)
		l->touch_interval = v;
}

/* Re-read DIR/config if it is older than RELOAD_S; under r->mu. */
static void load_store(larder *db, int force)
{
	struct ldr_recency *g = db->recency;
	int64_t now = ldr_coarse_ms() / 1000 + 1; /* never 0 */
	if (!force && now - g->store_loaded < RELOAD_S)
		return;
	char text[LDR_CONFIG_MAX];
	if (ldr_config_read(db, "", text, sizeof text) != 0)
		return; /* keep what we had */
	parse_store(text, &g->store);
	__atomic_store_n(&g->touch_interval, g->store.touch_interval,
			 __ATOMIC_RELAXED);
	__atomic_store_n(&g->store_loaded, now, __ATOMIC_RELAXED);
}

/* The name's first 8 bytes, the first the most significant: one load,
 * not a loop of eight. */
static uint64_t first8(const uint8_t hash[16])
{
	return __builtin_bswap64(ldr_get64(hash));
}

int ldr_touch_due(larder *db, const uint8_t hash[16])
{
	return db->recency ? ldr_touch_due_at(db, hash, ldr_coarse_ms()) : 0;
}

int ldr_touch_due_at(larder *db, const uint8_t hash[16], int64_t now_ms)
{
	struct ldr_recency *g = db->recency;
	if (!g)
		return 0;
	int64_t now = now_ms / 1000 + 1;
	int64_t iv = __atomic_load_n(&g->touch_interval, __ATOMIC_RELAXED);
	uint64_t h = first8(hash);
	uint32_t tag = (uint32_t)(h >> 32) | 1;
	uint64_t s =
	    __atomic_load_n(&g->touched[h % TOUCH_SLOTS], __ATOMIC_RELAXED);
	return !((uint32_t)(s >> 32) == tag && now - (int64_t)(uint32_t)s < iv);
}

void ldr_touch(larder *db, int fd, const uint8_t hash[16])
{
	struct ldr_recency *g = db->recency;
	if (fd < 0 || !g)
		return;
	int64_t now = ldr_coarse_ms() / 1000 + 1;
	if (now - __atomic_load_n(&g->store_loaded, __ATOMIC_RELAXED) >=
	    RELOAD_S) {
		pthread_mutex_lock(&g->mu);
		load_store(db, 0);
		pthread_mutex_unlock(&g->mu);
	}
	int64_t iv = __atomic_load_n(&g->touch_interval, __ATOMIC_RELAXED);
	uint64_t h = first8(hash);
	uint32_t tag = (uint32_t)(h >> 32) | 1;
	uint64_t *slot = &g->touched[h % TOUCH_SLOTS];
	uint64_t s = __atomic_load_n(slot, __ATOMIC_RELAXED);
	if ((uint32_t)(s >> 32) == tag && now - (int64_t)(uint32_t)s < iv)
		return; /* this handle saw it recent within the interval */
	struct stat st;
	if (fstat(fd, &st) != 0)
		return;
	/* The atime is the filesystem's clock, compared with ours: a skew
	 * only makes touches a little more or less frequent. */
	int64_t age = (ldr_now_ns() - ((int64_t)st.st_atim.tv_sec * 1000000000 +
				       st.st_atim.tv_nsec)) /
		      1000000000;
	if (iv > 0 && age >= 0 && age < iv) {
		/* touched by someone else: look again when it is due */
		__atomic_store_n(slot,
				 (uint64_t)tag << 32 | (uint32_t)(now - age),
				 __ATOMIC_RELAXED);
		return;
	}
	/* The atime alone, which only the entry's owner may set (EPERM for
	 * anyone else). The one way left to a member of a group-shared store,
	 * futimens(fd, NULL), would move the mtime too and needs write access
	 * to an entry, which larder never grants: it is not tried. A member's
	 * reads still move the atime through the kernel's relatime, at most
	 * once a day (docs/operations.md, "Recency"). */
	struct timespec ts[2] = {{0, UTIME_NOW}, {0, UTIME_OMIT}};
	if (futimens(fd, ts) == 0)
		ldr_count(db, LARDER_CTR_TOUCHES);
	__atomic_store_n(slot, (uint64_t)tag << 32 | (uint32_t)now,
			 __ATOMIC_RELAXED);
}

int ldr_store_limits(larder *db, int force, larder_limits *out)
{
	struct ldr_recency *g = db->recency;
	pthread_mutex_lock(&g->mu);
	load_store(db, force);
	*out = g->store;
	pthread_mutex_unlock(&g->mu);
	return 0;
}

int ldr_recency_init(larder *db)
{
	struct ldr_recency *g = calloc(1, sizeof *g);
	if (!g)
		return ldr_fail(NULL, LARDER_ENOMEM, ENOMEM, "out of memory");
	pthread_mutex_init(&g->mu, NULL);
	db->recency = g;
	load_store(db, 1);
	return 0;
}

void ldr_recency_fini(larder *db)
{
	if (!db->recency)
		return;
	pthread_mutex_destroy(&db->recency->mu);
	free(db->recency);
	db->recency = NULL;
}

int ldr_space_get(larder *db, struct ldr_space *sp)
{
	struct statvfs v;
	if (fstatvfs(db->rootfd, &v) != 0)
		return -1;
	sp->total = (uint64_t)v.f_blocks * v.f_frsize;
	sp->avail = (uint64_t)v.f_bavail * v.f_frsize;
	sp->files = v.f_files;
	sp->favail = v.f_favail;
	return 0;
}

int ldr_space_below(const struct ldr_space *sp, const larder_limits *l,
		    double *pct, int *files)
{
	double pb =
	    sp->total ? 100.0 * (double)sp->avail / (double)sp->total : 100.0;
	double pf =
	    sp->files ? 100.0 * (double)sp->favail / (double)sp->files : 100.0;
	*files = pf < pb;
	*pct = pf < pb ? pf : pb;
	if (!l->wm_run)
		return 0;
	if (*pct < l->wm_stop)
		return 2;
	return *pct < l->wm_cull;
}

/* Refresh the space state at most once a second; returns it, and in
 * *fresh whether it was looked at just now. */
int ldr_space_state(larder *db, int *fresh)
{
	struct ldr_recency *g = db->recency;
	int64_t now = ldr_coarse_ms();
	pthread_mutex_lock(&g->mu);
	load_store(db, 0);
	*fresh = now - g->space_checked_ms >= 1000 || !g->space_checked_ms;
	if (*fresh) {
		struct ldr_space sp;
		g->space_checked_ms = now;
		g->space_state =
		    ldr_space_get(db, &sp) == 0
			? ldr_space_below(&sp, &g->store, &g->free_pct,
					  &g->free_files)
			: 0;
	}
	int st = g->space_state;
	pthread_mutex_unlock(&g->mu);
	return st;
}

void ldr_space_stale(larder *db)
{
	pthread_mutex_lock(&db->recency->mu);
	db->recency->space_checked_ms = 0;
	pthread_mutex_unlock(&db->recency->mu);
}

int ldr_space_check(larder *db)
{
	int fresh;
	if (ldr_space_state(db, &fresh) < 2)
		return 0;
	if (fresh) {
		/* Below stop and not cleaned since we looked: clean first
		 * (the cull watermark may have been passed by something
		 * else than publishes), then look again. */
		if (db->hooks.space_low)
			db->hooks.space_low(db);
		ldr_space_stale(db);
		if (ldr_space_state(db, &fresh) < 2)
			return 0;
	}
	struct ldr_recency *g = db->recency;
	ldr_count(db, LARDER_CTR_PUBLISH_REFUSED);
	return ldr_fail(db, LARDER_EFULL, ENOSPC,
			"publish refused: the filesystem of '%s' has %.1f%% of "
			"its %s free, below the stop watermark of %d%%; "
			"nothing was stored",
			db->dir, g->free_pct, g->free_files ? "files" : "space",
			g->store.wm_stop);
}
