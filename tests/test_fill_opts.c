/*
 * test_fill_opts.c — what larder_get_or_fill() accepts: no lease shorter
 * than LARDER_LEASE_MIN_SECONDS (a shorter one cannot be kept alive and
 * single flight is lost), no wait below the millisecond, nothing that is
 * not a finite number of seconds up to a year.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "larder.h"

static larder *open_store(void)
{
	larder *db = NULL;
	larder_opts o = LARDER_OPTS_INIT;
	o.flags = LARDER_OPEN_CREATE;
	o.fsync = LARDER_FSYNC_NONE;
	int rc = larder_open(&db, test_path("store"), &o);
	if (rc)
		test_fail(__FILE__, __LINE__, "open: %s", larder_open_errmsg());
	return db;
}

/* Counts its runs; writes "data". */
static int count_loads(larder_fill *f, void *payload)
{
	(*(int *)payload)++;
	return larder_fill_write(f, "data", 4);
}

/* One get_or_fill of key k with fo; the loads it ran in *loads. */
static int fill(larder *db, const char *k, const larder_fill_opts *fo,
		int *loads)
{
	larder_entry *e = NULL;
	int how = 0;
	int rc = larder_get_or_fill(&e, &how, db, "default", k, strlen(k), "v",
				    1, NULL, count_loads, loads, fo);
	larder_entry_release(e);
	return rc;
}

TEST(a_lease_shorter_than_the_minimum_is_refused_before_loading)
{
	larder *db = open_store();
	const double bad[] = {
	    1e-9, 0.001,    0.5, LARDER_LEASE_MIN_SECONDS - 0.01,
	    NAN,  INFINITY, -1};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		larder_fill_opts fo = LARDER_FILL_OPTS_INIT;
		int loads = 0;
		fo.lease_seconds = bad[i];
		ASSERT_RC(db, fill(db, "k", &fo, &loads), LARDER_EINVAL);
		ASSERT_EQ(loads, 0);
	}
	larder_close(db);
}

TEST(the_minimum_lease_and_the_default_are_accepted)
{
	larder *db = open_store();
	larder_fill_opts fo = LARDER_FILL_OPTS_INIT;
	int loads = 0;
	fo.lease_seconds = LARDER_LEASE_MIN_SECONDS;
	ASSERT_RC(db, fill(db, "a", &fo, &loads), 0);
	fo.lease_seconds = 0; /* the default */
	ASSERT_RC(db, fill(db, "b", &fo, &loads), 0);
	ASSERT_RC(db, fill(db, "c", NULL, &loads), 0);
	ASSERT_EQ(loads, 3);
	larder_close(db);
}

TEST(a_wait_below_a_millisecond_or_past_a_year_is_refused)
{
	larder *db = open_store();
	const double bad[] = {1e-9, 0.0009, NAN, INFINITY, 367.0 * 86400};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		larder_fill_opts fo = LARDER_FILL_OPTS_INIT;
		int loads = 0;
		fo.max_wait_seconds = bad[i];
		ASSERT_RC(db, fill(db, "k", &fo, &loads), LARDER_EINVAL);
		ASSERT_EQ(loads, 0);
	}
	larder_fill_opts fo = LARDER_FILL_OPTS_INIT;
	int loads = 0;
	fo.max_wait_seconds = 0.001;
	ASSERT_RC(db, fill(db, "k", &fo, &loads), 0);
	ASSERT_EQ(loads, 1);
	larder_close(db);
}

TEST(a_heartbeat_that_is_not_finite_is_refused)
{
	larder *db = open_store();
	larder_fill_opts fo = LARDER_FILL_OPTS_INIT;
	int loads = 0;
	fo.heartbeat_seconds = NAN;
	ASSERT_RC(db, fill(db, "k", &fo, &loads), LARDER_EINVAL);
	fo.heartbeat_seconds = INFINITY;
	ASSERT_RC(db, fill(db, "k", &fo, &loads), LARDER_EINVAL);
	ASSERT_EQ(loads, 0);
	larder_close(db);
}
