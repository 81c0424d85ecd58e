/*
 * testing.c — what tests may set or ask on a handle (testing.h), at the
 * top of the tree so that it may see every layer.
 */
#include "testing.h"

#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "self.h"
#include "clock.h"
#include "config.h"
#include "file.h"
#include "hash.h"
#include "head.h"
#include "memo.h"
#include "open.h"
#include "publish.h"
#include "store.h"
#include "tier.h"

const char *ldr_test_host(const larder *db)
{
	return db->host;
}

void ldr_test_counter_set(larder *db, int counter, uint64_t value)
{
	if (counter >= 0 && counter < LARDER_CTR_COUNT)
		__atomic_store_n(&db->ctr[counter], value, __ATOMIC_RELAXED);
}

void ldr_test_set_network(larder *db, int network)
{
	db->network = network;
}

void ldr_test_set_load(larder *db, int how)
{
	db->load_force = how;
}

void ldr_test_set_load_cost(larder *db, uint64_t size, uint64_t map_ns,
			    uint64_t read_ns, uint64_t populate_ns)
{
	ldr_file_set_cost(db, size, map_ns, read_ns, populate_ns);
}

unsigned ldr_test_mode_for_umask(unsigned mask)
{
	return ldr_mode_for_umask(mask);
}

int ldr_test_writer_begin_internal(larder_writer **out, larder *db,
				   const char *ns, const void *key, size_t klen,
				   const void *ver, size_t vlen)
{
	return ldr_writer_begin_internal(out, db, ns, key, klen, ver, vlen);
}

void ldr_test_ns_ttl_age(larder *db, int64_t ms)
{
	ldr_ns_ttl_age(db, ms);
}

void ldr_test_memo_age(larder *db, int64_t ms)
{
	ldr_memo_age(db, ms);
}

void ldr_test_edirs_due(larder *db)
{
	for (int i = 0; i < LDR_EDIRS; i++)
		__atomic_store_n(&db->edir[i].checked_ms, INT64_MIN / 2,
				 __ATOMIC_RELAXED);
}

int ldr_test_edirs_held(larder *db)
{
	int n = 0;
	for (int i = 0; i < LDR_EDIRS; i++)
		n += __atomic_load_n(&db->edir[i].state, __ATOMIC_ACQUIRE) ==
		     LDR_EDIR_READY;
	return n;
}

int ldr_test_bufs_made(larder *db)
{
	return ldr_bufs_made(db);
}

void ldr_test_memo_usage(larder *db, size_t *entries, uint64_t *bytes)
{
	ldr_memo_usage(db, entries, bytes);
}

void ldr_test_head_cache_age(larder *db, int64_t ms)
{
	ldr_head_cache_age(db, ms);
}

int ldr_test_head_write_hint(larder *db, const char *ns, const void *key,
			     size_t klen, const void *ver, size_t vlen)
{
	return ldr_head_write_hint(db, ns, key, klen, ver, vlen);
}

int64_t ldr_test_head_copy_max(void)
{
	return LDR_HEAD_COPY_MAX;
}

size_t ldr_test_head_cache_size(larder *db)
{
	return ldr_head_cache_size(db);
}

/* ---------------------------------------------------------------------- */
/* The storage seam (tests/test_backend.c)                                 */

int ldr_test_be_open(struct ldr_backend **out, larder *db, const char *where)
{
	/* "tier:WHERE": the handle's own directory in front of WHERE. */
	if (where && !strncmp(where, "tier:", 5))
		return ldr_be_tier_ops.open(out, db, where + 5);
	return ldr_backend_open(out, db, where);
}

void ldr_test_be_close(struct ldr_backend *be)
{
	ldr_backend_close(be);
}

const char *ldr_test_be_kind(const struct ldr_backend *be)
{
	return be->ops->kind;
}

unsigned ldr_test_tier_retry_now(larder *db)
{
	return ldr_tier_retry_now(db->be);
}

void ldr_test_be_hang(larder *db, struct ldr_backend *be)
{
	ldr_backend_close(db->be);
	db->be = be;
	db->be_own = 0;
}

static void name_of(struct ldr_name *n, const char *ns, const char *key,
		    const char *ver)
{
	ldr_name_init(n, ns, key, strlen(key), ver, ver ? strlen(ver) : 0);
}

/* The header a writer would give (ns, key, ver) holding data. */
static uint8_t *make_header(const char *ns, const char *key, const char *ver,
			    const void *data, size_t len, size_t *hlen, int bad)
{
	ldr_hdr h;
	memset(&h, 0, sizeof h);
	h.ns = (const uint8_t *)ns;
	h.ns_len = (uint32_t)strlen(ns);
	h.key = (const uint8_t *)key;
	h.key_len = (uint32_t)strlen(key);
	h.ver = (const uint8_t *)ver;
	h.ver_len = (uint32_t)strlen(ver);
	h.meta = (const uint8_t *)"";
	h.codec = LDR_CODEC_NONE;
	h.stored_len = h.raw_len = len;
	h.created = ldr_now_ns();
	ldr_xxh128(data, len, h.payload_hash);
	if (bad)
		h.payload_hash[0] ^= 1;
	/* Aligned past the mapping threshold, as a writer places it. */
	h.hdr_len = (uint32_t)ldr_hdr_padded_len(
	    ldr_hdr_min_len(h.ns_len, h.key_len, h.ver_len, 0),
	    len >= LDR_DEFAULT_MMAP);
	uint8_t *b = malloc(h.hdr_len);
	if (b)
		ldr_hdr_encode(&h, b);
	*hlen = h.hdr_len;
	return b;
}

int ldr_test_be_publish(struct ldr_backend *be, const char *ns, const char *key,
			const char *ver, const void *data, size_t len,
			size_t piece, unsigned flags, uint64_t token)
{
	struct ldr_name n;
	name_of(&n, ns, key, ver);
	size_t hlen;
	uint8_t *hdr = make_header(ns, key, ver, data, len, &hlen,
				   (flags & LDR_TEST_BE_BAD_HEADER) != 0);
	if (!hdr)
		return LARDER_ENOMEM;
	struct ldr_stage *s;
	int rc = be->ops->stage_begin(be, &n, NULL, &s);
	if (rc) {
		free(hdr);
		return rc;
	}
	if (!piece)
		piece = len ? len : 1;
	for (size_t off = 0; off < len; off += piece) {
		/* Two pieces an iovec, so that both paths are written. */
		size_t a = len - off < piece ? len - off : piece;
		struct iovec iov[2] = {
		    {(uint8_t *)data + off, a / 2},
		    {(uint8_t *)data + off + a / 2, a - a / 2}};
		if ((rc = be->ops->stage_write(s, iov, 2)) != 0) {
			be->ops->stage_abort(s);
			free(hdr);
			return rc;
		}
	}
	rc = be->ops->stage_commit(
	    s, hdr, hlen, (flags & LDR_TEST_BE_NO_HEAD) ? LDR_BE_NO_HEAD : 0,
	    token);
	free(hdr);
	return rc;
}

int ldr_test_be_stage_abandon(struct ldr_backend *be, const char *ns,
			      const char *key, const char *ver,
			      const void *data, size_t len)
{
	struct ldr_name n;
	name_of(&n, ns, key, ver);
	struct ldr_stage *s;
	int rc = be->ops->stage_begin(be, &n, NULL, &s);
	if (rc)
		return rc;
	struct iovec iov = {(void *)data, len};
	rc = be->ops->stage_write(s, &iov, 1);
	be->ops->stage_abort(s);
	return rc;
}

int ldr_test_be_read(struct ldr_backend *be, const char *ns, const char *key,
		     const char *ver, int *state, uint8_t **data, size_t *len,
		     int reject, void **keep)
{
	struct ldr_name n;
	name_of(&n, ns, key, ver);
	*state = -1;
	*data = NULL;
	*len = 0;
	if (keep)
		*keep = NULL;
	struct ldr_file *f = calloc(1, sizeof *f);
	if (!f)
		return LARDER_ENOMEM;
	int rc = be->ops->read(be, &n, LDR_LOAD_WHOLE, 0, f);
	if (rc) {
		free(f);
		return rc;
	}
	ldr_hdr h;
	const char *why = NULL;
	*state = ldr_entry_check(be->db, f, "(test)", ns, key, strlen(key), ver,
				 strlen(ver), LDR_CHECK_HASH, &h, &why);
	if (*state == LARDER_STATE_OK) {
		*len = (size_t)h.stored_len;
		*data = malloc(*len ? *len : 1);
		if (*data && !f->partial)
			memcpy(*data, f->p + h.hdr_len, *len);
	} else if (reject && *state > 0) {
		be->ops->reject(be, &n, f, why);
	}
	if (keep) {
		*keep = f;
	} else {
		ldr_file_free(f);
		free(f);
	}
	return *state < 0 ? *state : 0;
}

void ldr_test_be_reject(struct ldr_backend *be, const char *ns, const char *key,
			const char *ver, void *kept, const char *why)
{
	struct ldr_name n;
	name_of(&n, ns, key, ver);
	be->ops->reject(be, &n, kept, why);
}

void ldr_test_be_kept_free(void *kept)
{
	if (!kept)
		return;
	ldr_file_free(kept);
	free(kept);
}

int ldr_test_be_remove(struct ldr_backend *be, const char *ns, const char *key,
		       const char *ver, void *kept)
{
	struct ldr_name n;
	name_of(&n, ns, key, ver);
	return be->ops->remove(be, &n, kept);
}

int ldr_test_be_head_get(struct ldr_backend *be, const char *ns,
			 const char *key, char **ver)
{
	struct ldr_name n;
	name_of(&n, ns, key, NULL);
	uint8_t *v = NULL;
	size_t vlen = 0;
	*ver = NULL;
	int rc = be->ops->head_get(be, &n, &v, &vlen);
	if (rc)
		return rc;
	*ver = malloc(vlen + 1);
	if (*ver) {
		memcpy(*ver, v, vlen);
		(*ver)[vlen] = '\0';
	}
	free(v);
	return *ver ? 0 : LARDER_ENOMEM;
}

int ldr_test_be_head_set(struct ldr_backend *be, const char *ns,
			 const char *key, const char *ver, uint64_t token)
{
	struct ldr_name n;
	name_of(&n, ns, key, ver);
	return be->ops->head_set(be, &n, token);
}

int ldr_test_be_head_drop(struct ldr_backend *be, const char *ns,
			  const char *key, const char *ver)
{
	struct ldr_name n;
	name_of(&n, ns, key, ver);
	return be->ops->head_drop(be, &n);
}

int ldr_test_be_lease_acquire(struct ldr_backend *be, const char *ns,
			      const char *key, uint64_t lease_ms,
			      uint64_t renew_ms, struct ldr_be_lease **out,
			      uint64_t *token, struct ldr_be_holder **h)
{
	struct ldr_name n;
	name_of(&n, ns, key, NULL);
	struct ldr_self me;
	ldr_self_cached(&me, be->db);
	*h = calloc(1, sizeof **h);
	if (!*h)
		return LARDER_ENOMEM;
	return be->ops->lease_acquire(be, &n, &me, lease_ms, renew_ms, out,
				      token, *h);
}

int ldr_test_be_lease_held(struct ldr_be_lease *l)
{
	return l->be->ops->lease_held(l);
}

int ldr_test_be_lease_observe(struct ldr_backend *be, const char *ns,
			      const char *key, struct ldr_be_holder **h)
{
	struct ldr_name n;
	name_of(&n, ns, key, NULL);
	*h = calloc(1, sizeof **h);
	if (!*h)
		return LARDER_ENOMEM;
	return be->ops->lease_observe(be, &n, *h);
}

int ldr_test_be_lease_break(struct ldr_backend *be, const char *ns,
			    const char *key, const struct ldr_be_holder *h)
{
	struct ldr_name n;
	name_of(&n, ns, key, NULL);
	return be->ops->lease_break(be, &n, h);
}

void ldr_test_be_lease_release(struct ldr_be_lease *l)
{
	if (l)
		l->be->ops->lease_release(l);
}

void ldr_test_be_holder(const struct ldr_be_holder *h, long *pid, int *dead,
			int *blind)
{
	*pid = h->rec.pid;
	*dead = h->dead;
	*blind = h->blind;
}

int ldr_test_be_wait_begin(struct ldr_backend *be, const char *ns,
			   const char *key, const char *ver,
			   struct ldr_be_wait **out)
{
	struct ldr_name n;
	name_of(&n, ns, key, ver);
	return be->ops->wait_begin(be, &n, out);
}

int ldr_test_be_wait(struct ldr_be_wait *w, uint64_t max_ms,
		     const volatile sig_atomic_t *cancel)
{
	return w->be->ops->wait(w, max_ms, cancel);
}

void ldr_test_be_wait_end(struct ldr_be_wait *w)
{
	if (w)
		w->be->ops->wait_end(w);
}

int ldr_test_be_list_ns(struct ldr_backend *be, larder_ns_fn cb, void *p)
{
	return be->ops->list_ns(be, cb, p);
}

int ldr_test_be_walk(struct ldr_backend *be, const char *ns,
		     int (*cb)(const uint8_t hash[16], const char *where,
			       void *p),
		     void *p)
{
	return be->ops->walk(be, ns, cb, p);
}

int ldr_test_be_stats(struct ldr_backend *be, uint64_t *bytes,
		      uint64_t *entries, int *reachable)
{
	struct ldr_be_stats st;
	int rc = be->ops->stats(be, &st);
	*bytes = st.bytes;
	*entries = st.entries;
	*reachable = st.reachable;
	return rc;
}
