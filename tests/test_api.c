/*
 * test_api.c — the public API's own promises (include/larder.h): each
 * init function sets what its _INIT macro does, a version the library does
 * not know is refused, the error message is kept per handle and per
 * thread, and a callback's own failure is LARDER_EUSER, never taken for a
 * code of the library's.
 */
#include "harness.h"
#include "larder.h"
#include "store_util.h"

#include <pthread.h>
#include <signal.h>
#include <string.h>

static larder *open_at(const char *name)
{
	larder_opts o;
	larder_opts_init(&o);
	o.flags = LARDER_OPEN_CREATE;
	o.fsync = LARDER_FSYNC_NONE;
	o.create_fsync = LARDER_FSYNC_NONE;
	return open_store_at(test_path("%s", name), &o);
}

/* ---------------------------------------------------------------------- */
/* Init functions and versions                                             */

/* Each init function against its macro, field by field (padding may
 * differ, so no memcmp). The structs are first filled with garbage so that
 * a field the function forgets shows. */
#define GARBLE(x) memset(&(x), 0xa5, sizeof(x))

TEST(each_init_function_sets_what_its_macro_does)
{
	larder_opts o, om = LARDER_OPTS_INIT;
	GARBLE(o);
	larder_opts_init(&o);
	ASSERT_EQ(o.version, LARDER_OPTS_VERSION);
	ASSERT_EQ(o.version, om.version);
	ASSERT_EQ(o.flags, om.flags);
	ASSERT_EQ(o.fsync, om.fsync);
	ASSERT_EQ(o.create_mode, om.create_mode);
	ASSERT_EQ(o.create_fsync, om.create_fsync);
	ASSERT_EQ(o.mmap_threshold, om.mmap_threshold);
	ASSERT(o.log == om.log && o.log_payload == om.log_payload);
	ASSERT_EQ(o.log_level, om.log_level);
	ASSERT_EQ(o.max_in_memory, om.max_in_memory);

	larder_put_opts p, pm = LARDER_PUT_OPTS_INIT;
	GARBLE(p);
	larder_put_opts_init(&p);
	ASSERT_EQ(p.version, LARDER_PUT_OPTS_VERSION);
	ASSERT_EQ(p.flags, pm.flags);
	ASSERT_EQ(p.ttl_seconds, pm.ttl_seconds);
	ASSERT(p.meta == pm.meta);
	ASSERT_EQ(p.meta_len, pm.meta_len);
	ASSERT_EQ(p.zstd_level, pm.zstd_level);

	larder_fill_opts f, fm = LARDER_FILL_OPTS_INIT;
	GARBLE(f);
	larder_fill_opts_init(&f);
	ASSERT_EQ(f.version, LARDER_FILL_OPTS_VERSION);
	ASSERT_EQ(f.flags, fm.flags);
	ASSERT(f.lease_seconds == fm.lease_seconds);
	ASSERT(f.heartbeat_seconds == fm.heartbeat_seconds);
	ASSERT(f.max_wait_seconds == fm.max_wait_seconds);
	ASSERT_EQ(f.max_retries, fm.max_retries);
	ASSERT(f.put == fm.put && f.on_wait == fm.on_wait);
	ASSERT(f.on_wait_payload == fm.on_wait_payload);
	ASSERT(f.cancel == fm.cancel);

	larder_wait_info w, wm = LARDER_WAIT_INFO_INIT;
	GARBLE(w);
	larder_wait_info_init(&w);
	ASSERT_EQ(w.version, LARDER_WAIT_INFO_VERSION);
	ASSERT_EQ(w.event, wm.event);
	ASSERT_EQ(w.end, wm.end);
	ASSERT_EQ(w.waited_ms, wm.waited_ms);
	ASSERT(w.holder_host == wm.holder_host);
	ASSERT_EQ(w.holder_pid, wm.holder_pid);
	ASSERT_EQ(w.holder_alive, wm.holder_alive);
	ASSERT_EQ(w.holder_silent_ms, wm.holder_silent_ms);
	ASSERT_EQ(w.breaks, wm.breaks);

	larder_sql_opts q, qm = LARDER_SQL_OPTS_INIT;
	GARBLE(q);
	larder_sql_opts_init(&q);
	ASSERT_EQ(q.version, LARDER_SQL_OPTS_VERSION);
	ASSERT_EQ(q.flags, qm.flags);
	ASSERT_EQ(q.format, qm.format);
	ASSERT(q.params == qm.params);
	ASSERT_EQ(q.nparams, qm.nparams);
	ASSERT(q.version_query == qm.version_query && q.table == qm.table);
	ASSERT(q.fill == qm.fill && q.on_progress == qm.on_progress);
	ASSERT(q.on_progress_payload == qm.on_progress_payload);

	larder_entry_info e, em = LARDER_ENTRY_INFO_INIT;
	GARBLE(e);
	larder_entry_info_init(&e);
	ASSERT_EQ(e.version, LARDER_ENTRY_INFO_VERSION);
	ASSERT(e.ns == em.ns && e.path == em.path);
	ASSERT(e.key == em.key && e.ver == em.ver && e.meta == em.meta);
	ASSERT_EQ(e.klen, em.klen);
	ASSERT_EQ(e.vlen, em.vlen);
	ASSERT_EQ(e.meta_len, em.meta_len);
	ASSERT_EQ(e.size, em.size);
	ASSERT_EQ(e.stored_size, em.stored_size);
	ASSERT_EQ(e.file_size, em.file_size);
	ASSERT_EQ(e.created, em.created);
	ASSERT_EQ(e.expires, em.expires);
	ASSERT_EQ(e.compressed, em.compressed);
	ASSERT_EQ(e.state, em.state);
	ASSERT(e.problem == em.problem);
	ASSERT_EQ(e.quarantined, em.quarantined);

	larder_limits l, lm = LARDER_LIMITS_INIT;
	GARBLE(l);
	larder_limits_init(&l);
	ASSERT_EQ(l.version, LARDER_LIMITS_VERSION);
	ASSERT_EQ(l.max_bytes, lm.max_bytes);
	ASSERT_EQ(l.max_entries, lm.max_entries);
	ASSERT_EQ(l.wm_run, lm.wm_run);
	ASSERT_EQ(l.wm_cull, lm.wm_cull);
	ASSERT_EQ(l.wm_stop, lm.wm_stop);
	ASSERT_EQ(l.touch_interval, lm.touch_interval);
	ASSERT_EQ(l.touch_interval, LARDER_TOUCH_INTERVAL_DEFAULT);

	larder_gc_report g, gm = LARDER_GC_REPORT_INIT;
	GARBLE(g);
	larder_gc_report_init(&g);
	ASSERT_EQ(g.version, LARDER_GC_REPORT_VERSION);
	ASSERT_EQ(g.seen_entries, gm.seen_entries);
	ASSERT_EQ(g.seen_bytes, gm.seen_bytes);
	ASSERT_EQ(g.expired, gm.expired);
	ASSERT_EQ(g.superseded, gm.superseded);
	ASSERT_EQ(g.evicted, gm.evicted);
	ASSERT_EQ(g.bytes_freed, gm.bytes_freed);
	ASSERT_EQ(g.skipped, gm.skipped);
	ASSERT_EQ(g.passes, gm.passes);
	ASSERT_EQ(g.swept, gm.swept);
	ASSERT_EQ(g.swept_bytes, gm.swept_bytes);
	ASSERT_EQ(g.heads_removed, gm.heads_removed);

	larder_sweep_report s, sm = LARDER_SWEEP_REPORT_INIT;
	GARBLE(s);
	larder_sweep_report_init(&s);
	ASSERT_EQ(s.version, LARDER_SWEEP_REPORT_VERSION);
	ASSERT_EQ(s.temps_removed, sm.temps_removed);
	ASSERT_EQ(s.temps_kept, sm.temps_kept);
	ASSERT_EQ(s.leases_removed, sm.leases_removed);
	ASSERT_EQ(s.leases_kept, sm.leases_kept);
	ASSERT_EQ(s.breaks_removed, sm.breaks_removed);
	ASSERT_EQ(s.breaks_kept, sm.breaks_kept);
	ASSERT_EQ(s.quarantine_removed, sm.quarantine_removed);
	ASSERT_EQ(s.quarantine_kept, sm.quarantine_kept);
	ASSERT_EQ(s.bytes_removed, sm.bytes_removed);
}

TEST(reports_of_an_unknown_version_are_refused)
{
	larder *db = open_at("s");
	larder_gc_report g;
	larder_sweep_report s;
	larder_limits l;
	memset(&g, 0, sizeof g);
	memset(&s, 0, sizeof s);
	memset(&l, 0, sizeof l);
	ASSERT_EQ(larder_gc(&g, db, NULL, 0), LARDER_EINVAL);
	ASSERT(strstr(larder_errmsg(db), "larder_gc_report_init"));
	ASSERT_EQ(larder_sweep(&s, db, NULL, 0), LARDER_EINVAL);
	ASSERT_EQ(larder_limits_get(&l, db, NULL), LARDER_EINVAL);
	larder_gc_report_init(&g);
	larder_sweep_report_init(&s);
	larder_limits_init(&l);
	ASSERT_RC(db, larder_gc(&g, db, NULL, 0), 0);
	ASSERT_EQ(g.version, LARDER_GC_REPORT_VERSION);
	ASSERT_EQ(g.passes, 1);
	ASSERT_RC(db, larder_sweep(&s, db, NULL, 0), 0);
	ASSERT_EQ(s.version, LARDER_SWEEP_REPORT_VERSION);
	ASSERT_RC(db, larder_limits_get(&l, db, NULL), 0);
	ASSERT_EQ(l.touch_interval, LARDER_TOUCH_INTERVAL_DEFAULT);
	larder_close(db);
}

/* ---------------------------------------------------------------------- */
/* Error messages: per handle, per thread                                  */

/* Fail a call on db with a message that names `tag` (a bad namespace). */
static void fail_on(larder *db, const char *tag)
{
	larder_entry *e = NULL;
	ASSERT_EQ(larder_get(&e, db, tag, "k", 1, "v", 1), LARDER_EINVAL);
	ASSERT(strstr(larder_errmsg(db), tag));
}

TEST(a_failure_on_one_handle_keeps_another_handles_message)
{
	larder *a = open_at("a"), *b = open_at("b");
	fail_on(a, "bad/one");
	fail_on(b, "bad/two");
	ASSERT(strstr(larder_errmsg(a), "bad/one"));
	ASSERT(!strstr(larder_errmsg(a), "bad/two"));
	ASSERT(strstr(larder_errmsg(b), "bad/two"));
	/* A failed open keeps its own: neither handle's is touched. */
	larder *none = NULL;
	ASSERT_EQ(larder_open(&none, test_path("missing"), NULL),
		  LARDER_ENOTFOUND);
	ASSERT(none == NULL);
	ASSERT(strstr(larder_errmsg(NULL), test_path("missing")));
	ASSERT(strstr(larder_errmsg(a), "bad/one"));
	ASSERT(strstr(larder_errmsg(b), "bad/two"));
	/* And a failure on a handle leaves the open's. */
	fail_on(a, "bad/three");
	ASSERT(strstr(larder_errmsg(NULL), test_path("missing")));
	larder_close(a);
	larder_close(b);
}

TEST(a_thread_keeps_the_messages_of_its_last_eight_handles)
{
	larder *db[9];
	char tag[9][16];
	for (int i = 0; i < 9; i++)
		db[i] = open_at("s"); /* nine handles on one store */
	for (int i = 0; i < 9; i++) {
		snprintf(tag[i], sizeof tag[i], "bad/%d", i);
		fail_on(db[i], tag[i]);
	}
	/* The ninth took the slot of the first, failed on longest ago. */
	ASSERT_STR_EQ(larder_errmsg(db[0]), "");
	for (int i = 1; i < 9; i++)
		ASSERT(strstr(larder_errmsg(db[i]), tag[i]));
	for (int i = 0; i < 9; i++)
		larder_close(db[i]);
}

struct racer {
	larder *db;
	const char *tag;
	pthread_barrier_t *both_failed;
	int ok;
};

static void *racer_main(void *arg)
{
	struct racer *r = arg;
	larder_entry *e = NULL;
	int rc = larder_get(&e, r->db, r->tag, "k", 1, "v", 1);
	/* Neither reads its message before both have failed. */
	pthread_barrier_wait(r->both_failed);
	r->ok = rc == LARDER_EINVAL && strstr(larder_errmsg(r->db), r->tag);
	return NULL;
}

TEST(threads_sharing_a_handle_keep_their_own_messages)
{
	larder *db = open_at("s");
	pthread_barrier_t bar;
	ASSERT_EQ(pthread_barrier_init(&bar, NULL, 2), 0);
	struct racer r[2] = {{db, "bad/first", &bar, 0},
			     {db, "bad/second", &bar, 0}};
	pthread_t t[2];
	for (int i = 0; i < 2; i++)
		ASSERT_EQ(pthread_create(&t[i], NULL, racer_main, &r[i]), 0);
	for (int i = 0; i < 2; i++)
		ASSERT_EQ(pthread_join(t[i], NULL), 0);
	ASSERT(r[0].ok);
	ASSERT(r[1].ok);
	/* This thread failed on nothing. */
	ASSERT_STR_EQ(larder_errmsg(db), "");
	pthread_barrier_destroy(&bar);
	larder_close(db);
}

/* ---------------------------------------------------------------------- */
/* Callbacks: LARDER_EUSER                                                 */

struct cb {
	larder *db;    /* the handle of the call */
	larder *other; /* another handle */
	int ret;       /* what a callback returns */
	int mode;      /* see each callback */
	volatile sig_atomic_t cancel;
	int calls;
};

/* mode 0: return c->ret; 1: return what a larder_get of a missing key on
 * the same handle returned; 2: the same on another handle; 3: cancel and
 * return what larder_fill_write returned. */
static int run_mode(struct cb *c, larder_fill *f)
{
	larder_entry *e = NULL;
	c->calls++;
	switch (c->mode) {
	case 1:
		return larder_get(&e, c->db, "default", "nope", 4, "v", 1);
	case 2:
		return larder_get(&e, c->other, "default", "nope", 4, "v", 1);
	case 3:
		c->cancel = 1;
		return larder_fill_write(f, "x", 1);
	default:
		return c->ret;
	}
}

static int loader(larder_fill *f, void *payload)
{
	return run_mode(payload, f);
}

static int good_loader(larder_fill *f, void *payload)
{
	(void)payload;
	return larder_fill_write(f, "data", 4);
}

static int version_fn(larder_fill *f, void *payload)
{
	struct cb *c = payload;
	if (c->mode == 0 && c->ret == 0)
		return larder_fill_set_version(f, "v1", 2);
	return run_mode(c, f);
}

static int fill(struct cb *c, larder_version_fn vf, larder_loader_fn lf)
{
	larder_fill_opts o = LARDER_FILL_OPTS_INIT;
	o.cancel = &c->cancel;
	larder_entry *e = NULL;
	int outcome = 0;
	int rc = larder_get_or_fill(&e, &outcome, c->db, "default", "key", 3,
				    vf ? NULL : "v", vf ? 0 : 1, vf, lf, c, &o);
	larder_entry_release(e);
	return rc;
}

TEST(a_loaders_own_failure_is_euser_never_not_found)
{
	struct cb c = {open_at("s"), open_at("t"), 0, 0, 0, 0};
	/* -2 is LARDER_ENOTFOUND's number: the loader's own, it is not a
	 * miss. */
	c.ret = -2;
	ASSERT_EQ(fill(&c, NULL, loader), LARDER_EUSER);
	ASSERT(strstr(larder_errmsg(c.db), "loader failed (returned -2)"));
	c.ret = 7; /* a positive value fails a loader too */
	ASSERT_EQ(fill(&c, NULL, loader), LARDER_EUSER);
	c.ret = -1000;
	ASSERT_EQ(fill(&c, NULL, loader), LARDER_EUSER);
	/* A miss on another handle is the loader's business. */
	c.mode = 2;
	ASSERT_EQ(fill(&c, NULL, loader), LARDER_EUSER);
	/* The failure of a call on this handle passes on, message and
	 * all. */
	c.mode = 1;
	ASSERT_EQ(fill(&c, NULL, loader), LARDER_ENOTFOUND);
	c.mode = 3;
	ASSERT_EQ(fill(&c, NULL, loader), LARDER_ECANCELED);
	ASSERT(strstr(larder_errmsg(c.db), "cancel"));
	c.cancel = 0;
	/* Nothing was published by any of them. */
	larder_entry *e = NULL;
	ASSERT_EQ(larder_get(&e, c.db, "default", "key", 3, "v", 1),
		  LARDER_ENOTFOUND);
	ASSERT_EQ(c.calls, 6);
	larder_close(c.db);
	larder_close(c.other);
}

TEST(a_version_fns_own_failure_is_euser)
{
	struct cb c = {open_at("s"), NULL, -5, 0, 0, 0};
	ASSERT_EQ(fill(&c, version_fn, good_loader), LARDER_EUSER);
	ASSERT(strstr(larder_errmsg(c.db), "version_fn failed"));
	c.ret = 0; /* sets "v1": the fill goes through */
	ASSERT_RC(c.db, fill(&c, version_fn, good_loader), 0);
	larder_close(c.db);
}

static int sink(const void *buf, size_t len, void *payload)
{
	(void)buf;
	(void)len;
	return run_mode(payload, NULL);
}

TEST(a_sinks_negative_return_is_euser_its_positive_one_as_is)
{
	struct cb c = {open_at("s"), open_at("t"), 0, 0, 0, 0};
	ASSERT_RC(c.db,
		  larder_put(c.db, "default", "k", 1, "v", 1, "abc", 3, NULL),
		  0);
	c.ret = -2;
	ASSERT_EQ(larder_get_stream(c.db, "default", "k", 1, "v", 1, sink, &c),
		  LARDER_EUSER);
	ASSERT(strstr(larder_errmsg(c.db), "sink failed (returned -2)"));
	c.ret = 42;
	ASSERT_EQ(larder_get_stream(c.db, "default", "k", 1, "v", 1, sink, &c),
		  42);
	c.mode = 2;
	ASSERT_EQ(larder_get_stream(c.db, "default", "k", 1, "v", 1, sink, &c),
		  LARDER_EUSER);
	c.mode = 1;
	ASSERT_EQ(larder_get_stream(c.db, "default", "k", 1, "v", 1, sink, &c),
		  LARDER_ENOTFOUND);
	larder_close(c.db);
	larder_close(c.other);
}

static int walk_cb(const larder_entry_info *info, void *payload)
{
	struct cb *c = payload;
	if (info->version != LARDER_ENTRY_INFO_VERSION)
		return 99;
	return run_mode(c, NULL);
}

static int ns_cb(const char *ns, void *payload)
{
	(void)ns;
	return run_mode(payload, NULL);
}

TEST(walk_and_namespace_callbacks_stop_with_a_value_or_fail_with_euser)
{
	struct cb c = {open_at("s"), NULL, 0, 0, 0, 0};
	ASSERT_RC(c.db,
		  larder_put(c.db, "default", "k", 1, "v", 1, "abc", 3, NULL),
		  0);
	ASSERT_RC(c.db, larder_walk(c.db, NULL, 0, walk_cb, &c), 0);
	ASSERT_EQ(c.calls, 1);
	c.ret = 5;
	ASSERT_EQ(larder_walk(c.db, "default", 0, walk_cb, &c), 5);
	ASSERT_EQ(
	    larder_inspect(c.db, "default", "k", 1, "v", 1, 0, walk_cb, &c), 5);
	c.ret = -8;
	ASSERT_EQ(larder_walk(c.db, NULL, 0, walk_cb, &c), LARDER_EUSER);
	ASSERT(strstr(larder_errmsg(c.db), "returned -8"));
	ASSERT_EQ(larder_ns_foreach(c.db, ns_cb, &c), LARDER_EUSER);
	c.ret = 3;
	ASSERT_EQ(larder_ns_foreach(c.db, ns_cb, &c), 3);
	c.mode = 1;
	ASSERT_EQ(larder_ns_foreach(c.db, ns_cb, &c), LARDER_ENOTFOUND);
	larder_close(c.db);
}

TEST(euser_has_a_name)
{
	ASSERT_STR_EQ(larder_strerror(LARDER_EUSER), "a callback failed");
	ASSERT_STR_EQ(larder_strerror(LARDER_EXISTS),
		      "entry already published");
}
