/*
 * store_util.c — the store helpers the C tests share (store_util.h).
 */
#include "store_util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "testing.h"

#define FNV_OFFSET 1469598103934665603ull
#define FNV_PRIME 1099511628211ull

void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (p == NULL)
		test_fail(__FILE__, __LINE__, "malloc(%zu) failed", n);
	return p;
}

const char *store_dir(void)
{
	return test_path("store");
}

larder *open_store_at(const char *dir, const larder_opts *o)
{
	larder *db = NULL;
	int rc = larder_open(&db, dir, o);
	if (rc != 0)
		test_fail(__FILE__, __LINE__, "larder_open %s: %d (%s): %s",
			  dir, rc, larder_strerror(rc), larder_errmsg(NULL));
	ASSERT(db != NULL);
	return db;
}

larder *open_store_opts(larder_opts *o)
{
	o->flags |= LARDER_OPEN_CREATE;
	o->fsync = LARDER_FSYNC_NONE;
	o->create_fsync = LARDER_FSYNC_NONE;
	return open_store_at(store_dir(), o);
}

larder *open_store(void)
{
	larder_opts o = LARDER_OPTS_INIT;
	return open_store_opts(&o);
}

static uint64_t fnv(const void *p, size_t n, uint64_t h)
{
	const uint8_t *b = p;
	for (size_t i = 0; i < n; i++)
		h = (h ^ b[i]) * FNV_PRIME;
	return h;
}

uint64_t seed_of(const char *key)
{
	return fnv(key, strlen(key), FNV_OFFSET);
}

uint64_t seed_of_kv(const void *key, size_t klen, const void *ver, size_t vlen)
{
	uint64_t h = fnv(key, klen, FNV_OFFSET);
	h = (h ^ 0xFF) * FNV_PRIME;
	return fnv(ver, vlen, h);
}

static void logbook_cb(int level, const char *msg, void *payload)
{
	struct logbook *lb = payload;
	if (level <= LARDER_LOG_WARN) {
		lb->warnings++;
		snprintf(lb->last, sizeof lb->last, "%s", msg);
	}
}

larder *open_host(const char *name, const char *shared, struct logbook *lb)
{
	larder_opts o = LARDER_OPTS_INIT;
	o.flags = LARDER_OPEN_CREATE;
	o.fsync = LARDER_FSYNC_NONE;
	o.shared = shared;
	if (lb) {
		memset(lb, 0, sizeof *lb);
		o.log = logbook_cb;
		o.log_payload = lb;
	}
	larder *db;
	ASSERT_RC(NULL, larder_open(&db, test_path("%s", name), &o), 0);
	return db;
}

uint8_t *pattern_new(size_t n, uint64_t seed)
{
	uint8_t *b = xmalloc(n);
	test_fill_pattern(b, n, seed);
	return b;
}

int fill_loads;

struct pattern_load {
	const char *key;
	size_t n;
};

static uint64_t seed_of_v(const char *key)
{
	return seed_of_kv(key, strlen(key), "v", 1);
}

static int pattern_loader(larder_fill *f, void *payload)
{
	struct pattern_load *l = payload;
	fill_loads++;
	uint8_t *b = pattern_new(l->n, seed_of_v(l->key));
	int rc = larder_fill_write(f, b, l->n);
	free(b);
	return rc;
}

int fill_pattern(larder *db, const char *key, size_t n)
{
	struct pattern_load l = {key, n};
	larder_entry *e;
	int how;
	ASSERT_RC(db,
		  larder_get_or_fill(&e, &how, db, "default", key, strlen(key),
				     "v", 1, NULL, pattern_loader, &l, NULL),
		  0);
	ASSERT_EQ(larder_entry_size(e), n);
	ASSERT(test_check_pattern(larder_entry_data(e), n, seed_of_v(key)));
	larder_entry_release(e);
	return how;
}

int put_pattern_po(larder *db, const char *key, size_t size,
		   const larder_put_opts *po)
{
	uint8_t *buf = xmalloc(size);
	test_fill_pattern(buf, size, seed_of(key));
	int rc =
	    larder_put(db, "default", key, strlen(key), "v", 1, buf, size, po);
	free(buf);
	return rc;
}

const char *file_path(const char *key, char kind)
{
	uint8_t h[16];
	char hex[33], rel[LDR_REL_MAX];
	if (kind == 'h')
		ldr_head_hash("default", key, strlen(key), h);
	else
		ldr_entry_hash("default", key, strlen(key), "v", 1, h);
	ldr_hex(h, 16, hex);
	ldr_file_rel(rel, "default", kind, hex);
	return test_path("store/%s", rel);
}

uint8_t *read_file(const char *path, size_t *len)
{
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		test_fail(__FILE__, __LINE__, "open %s: %s", path,
			  strerror(errno));
	struct stat st;
	ASSERT_EQ(fstat(fd, &st), 0);
	uint8_t *buf = xmalloc((size_t)st.st_size);
	ASSERT_EQ(ldr_pread_full(fd, buf, (size_t)st.st_size, 0), st.st_size);
	close(fd);
	*len = (size_t)st.st_size;
	return buf;
}

int count_files(const char *dir, const char *part)
{
	DIR *d = opendir(dir);
	if (!d) {
		if (errno != ENOENT)
			test_fail(__FILE__, __LINE__, "opendir %s: %s", dir,
				  strerror(errno));
		return 0;
	}
	int n = 0;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		char sub[4096];
		int len = snprintf(sub, sizeof sub, "%s/%s", dir, de->d_name);
		ASSERT(len > 0 && (size_t)len < sizeof sub);
		struct stat st;
		if (lstat(sub, &st) != 0)
			test_fail(__FILE__, __LINE__, "lstat %s: %s", sub,
				  strerror(errno));
		if (S_ISDIR(st.st_mode))
			n += count_files(sub, part);
		else if (!part || strstr(de->d_name, part))
			n++;
	}
	closedir(d);
	return n;
}

static int count_walked(const larder_entry_info *info, void *payload)
{
	(void)info;
	(*(int *)payload)++;
	return 0;
}

int walk_count(larder *db, unsigned flags)
{
	int n = 0;
	int rc = larder_walk(db, NULL, flags, count_walked, &n);
	if (rc != 0)
		test_fail(__FILE__, __LINE__, "larder_walk: %d (%s): %s", rc,
			  larder_strerror(rc), larder_errmsg(db));
	return n;
}

static void *hammer_main(void *arg)
{
	struct hammer *h = arg;
	h->run(h);
	return NULL;
}

void hammer_start(struct hammer h[HAMMER_THREADS], larder *db,
		  void (*run)(struct hammer *h))
{
	for (int i = 0; i < HAMMER_THREADS; i++) {
		h[i] = (struct hammer){.db = db, .id = i, .run = run};
		int e = pthread_create(&h[i].t, NULL, hammer_main, &h[i]);
		if (e != 0)
			test_fail(__FILE__, __LINE__, "pthread_create: %s",
				  strerror(e));
	}
}

void hammer_join(struct hammer h[HAMMER_THREADS])
{
	for (int i = 0; i < HAMMER_THREADS; i++) {
		ASSERT_EQ(pthread_join(h[i].t, NULL), 0);
		ASSERT_EQ(h[i].bad, 0);
	}
}
