/*
 * store.c — Store: a larder handle (or a view of it bound to another
 * namespace) and its methods: get, put, writer, remove, get_or_fill,
 * files_version, the SQL source's raw call, stats.
 *
 * The GIL is released around every call that may block (I/O, waits on
 * another filler, verifying); a loader or version callable runs with it
 * taken back, in the calling thread.
 */
#include "pylarder.h"

#include <stdlib.h>

StoreObject *pyl_store_root(StoreObject *s)
{
	return s->owner ? (StoreObject *)s->owner : s;
}

larder *pyl_store_db(StoreObject *s)
{
	StoreObject *root = pyl_store_root(s);
	if (s->closed || root->closed || !root->db) {
		PyErr_SetString(PyExc_ValueError, "the store is closed");
		return NULL;
	}
	return root->db;
}

/* Bracket a call made with the GIL released: close() refuses meanwhile. */
#define BUSY(s) (pyl_store_root(s)->busy++)
#define UNBUSY(s) (pyl_store_root(s)->busy--)

static int ns_arg(const char **out, StoreObject *s, PyObject *ns)
{
	if (!ns || ns == Py_None) {
		*out = s->ns;
		return 0;
	}
	if (!PyUnicode_Check(ns)) {
		PyErr_Format(PyExc_TypeError, "ns must be str, not %.100s",
			     Py_TYPE(ns)->tp_name);
		return -1;
	}
	*out = PyUnicode_AsUTF8(ns);
	return *out ? 0 : -1;
}

static int set_ns(char *dst, const char *ns)
{
	size_t n = strlen(ns);
	if (n == 0 || n > LARDER_NS_MAX) {
		PyErr_Format(PyExc_ValueError,
			     "namespace must be 1 to %d bytes", LARDER_NS_MAX);
		return -1;
	}
	memcpy(dst, ns, n + 1);
	return 0;
}

/* What most methods convert first: the handle, the namespace, the key
 * and the version. Zeroed before anything can fail, so call_end() is
 * right on every path. */
struct call {
	larder *db;
	const char *ns;
	pyl_bytes k, v, m;
	larder_put_opts po;
};

static int call_begin(struct call *c, StoreObject *s, PyObject *nso)
{
	memset(c, 0, sizeof(*c));
	if (!(c->db = pyl_store_db(s)))
		return -1;
	return ns_arg(&c->ns, s, nso);
}

/* ver NULL: the caller converts the version itself (get_or_fill). */
static int call_key(struct call *c, PyObject *key, PyObject *ver)
{
	if (pyl_bytes_get(&c->k, key, "key", 0) < 0)
		return -1;
	return ver ? pyl_bytes_get(&c->v, ver, "version", 1) : 0;
}

/* The put options shared by put(), writer(), get_or_fill(). */
static int call_put_opts(struct call *c, PyObject *ttl, PyObject *metao,
			 int zstd)
{
	larder_put_opts_init(&c->po);
	if (pyl_ttl(&c->po.ttl_seconds, ttl) < 0)
		return -1;
	if (pyl_bytes_get(&c->m, metao, "meta", 1) < 0)
		return -1;
	c->po.meta = c->m.p;
	c->po.meta_len = (size_t)c->m.n;
	if (zstd)
		c->po.flags |= LARDER_PUT_ZSTD;
	return 0;
}

static void call_end(struct call *c)
{
	pyl_bytes_release(&c->k);
	pyl_bytes_release(&c->v);
	pyl_bytes_release(&c->m);
}

/* (Entry, Outcome), what get_or_fill() and _sql() return; e is released
 * on failure. */
static PyObject *entry_outcome(larder_entry *e, int outcome)
{
	PyObject *eo = pyl_entry_new(e);
	if (!eo)
		return NULL;
	PyObject *oc =
	    (outcome >= 1 && outcome <= 5) ? pyl_outcomes[outcome] : Py_None;
	PyObject *res = PyTuple_Pack(2, eo, oc);
	Py_DECREF(eo);
	return res;
}

/* The store directory as the CLI finds it (docs/cli.md): $LARDER_DIR,
 * else $XDG_CACHE_HOME/larder (absolute only), else ~/.cache/larder. */
static PyObject *default_dir(void)
{
	const char *env = getenv("LARDER_DIR");
	if (env && *env)
		return PyUnicode_DecodeFSDefault(env);
	env = getenv("XDG_CACHE_HOME");
	if (env && env[0] == '/')
		return PyUnicode_FromFormat("%s/larder", env);
	env = getenv("HOME");
	if (!env || !*env) {
		PyErr_SetString(PyExc_ValueError,
				"no store directory: give a path or set "
				"LARDER_DIR");
		return NULL;
	}
	return PyUnicode_FromFormat("%s/.cache/larder", env);
}

static int store_init(StoreObject *s, PyObject *args, PyObject *kw)
{
	static char *kwlist[] = {
	    "path",	   "create",	    "ns",	   "mode",
	    "trust_local", "verify_always", "map_network", "allow_unsafe_mode",
	    NULL};
	PyObject *path = Py_None, *path_b = NULL;
	int create = 0, trust = 0, verify = 0, mapnet = 0, unsafe = 0;
	const char *ns = "default";
	unsigned mode = 0;
	larder_opts o = LARDER_OPTS_INIT;
	larder *db = NULL;
	int rc;

	if (s->db) {
		PyErr_SetString(PyExc_RuntimeError, "Store already open");
		return -1;
	}
	if (!PyArg_ParseTupleAndKeywords(args, kw, "|O$psIpppp", kwlist, &path,
					 &create, &ns, &mode, &trust, &verify,
					 &mapnet, &unsafe))
		return -1;
	if (set_ns(s->ns, ns) < 0)
		return -1;
	if (path == Py_None) {
		path = default_dir();
		if (!path)
			return -1;
	} else {
		Py_INCREF(path);
	}
	int ok = PyUnicode_FSConverter(path, &path_b);
	Py_DECREF(path);
	if (!ok)
		return -1;
	o.flags = (create ? LARDER_OPEN_CREATE : 0) |
		  (trust ? LARDER_OPEN_TRUST_LOCAL : 0) |
		  (verify ? LARDER_OPEN_VERIFY_ALWAYS : 0) |
		  (mapnet ? LARDER_OPEN_MAP_NETWORK : 0) |
		  (unsafe ? LARDER_OPEN_ALLOW_UNSAFE_MODE : 0);
	o.create_mode = mode;
	const char *dir = PyBytes_AS_STRING(path_b);
	NOGIL(rc = larder_open(&db, dir, &o));
	Py_DECREF(path_b);
	if (rc < 0) {
		pyl_raise(NULL, rc);
		return -1;
	}
	s->db = db;
	s->closed = 0;
	return 0;
}

static PyObject *store_close(StoreObject *s, PyObject *unused)
{
	(void)unused;
	if (s->owner) {
		/* A view closes itself only: the opener owns the handle. */
		s->closed = 1;
		Py_RETURN_NONE;
	}
	if (!s->db)
		Py_RETURN_NONE;
	if (s->busy) {
		PyErr_SetString(PyExc_RuntimeError,
				"the store is in use (a call in another "
				"thread, or an open writer)");
		return NULL;
	}
	larder *db = s->db;
	s->db = NULL;
	s->closed = 1;
	NOGIL(larder_close(db));
	Py_RETURN_NONE;
}

static void store_dealloc(StoreObject *s)
{
	PyObject_GC_UnTrack(s);
	if (s->weakrefs)
		PyObject_ClearWeakRefs((PyObject *)s);
	/* Nothing can be busy: every call and writer holds a reference. */
	if (!s->owner && s->db)
		larder_close(s->db);
	s->db = NULL;
	Py_CLEAR(s->owner);
	Py_TYPE(s)->tp_free((PyObject *)s);
}

static int store_traverse(StoreObject *s, visitproc visit, void *arg)
{
	Py_VISIT(s->owner);
	return 0;
}

static int store_clear(StoreObject *s)
{
	/* The opener must outlive its views: keep the owner reference. */
	(void)s;
	return 0;
}

static PyObject *store_enter(StoreObject *s, PyObject *unused)
{
	(void)unused;
	if (!pyl_store_db(s))
		return NULL;
	return Py_NewRef(s);
}

static PyObject *store_exit(StoreObject *s, PyObject *args)
{
	(void)args;
	return pyl_exit_false(store_close(s, NULL));
}

static PyObject *store_namespace(StoreObject *s, PyObject *arg)
{
	if (!pyl_store_db(s))
		return NULL;
	if (!PyUnicode_Check(arg)) {
		PyErr_SetString(PyExc_TypeError, "namespace name must be str");
		return NULL;
	}
	const char *ns = PyUnicode_AsUTF8(arg);
	if (!ns)
		return NULL;
	PyTypeObject *t = Py_TYPE(s);
	StoreObject *v = (StoreObject *)t->tp_alloc(t, 0);
	if (!v)
		return NULL;
	if (set_ns(v->ns, ns) < 0) {
		Py_DECREF(v);
		return NULL;
	}
	v->owner = Py_NewRef((PyObject *)pyl_store_root(s));
	return (PyObject *)v;
}

/* The arguments of get() and remove(): (key, version=None, *, ns=None). */
static int key_call(struct call *c, StoreObject *s, PyObject *args,
		    PyObject *kw)
{
	static char *kwlist[] = {"key", "version", "ns", NULL};
	PyObject *key, *ver = Py_None, *nso = Py_None;

	memset(c, 0, sizeof(*c));
	if (!PyArg_ParseTupleAndKeywords(args, kw, "O|O$O", kwlist, &key, &ver,
					 &nso))
		return -1;
	if (call_begin(c, s, nso) < 0 || call_key(c, key, ver) < 0) {
		call_end(c);
		return -1;
	}
	return 0;
}

static PyObject *store_get(StoreObject *s, PyObject *args, PyObject *kw)
{
	larder_entry *e = NULL;
	struct call c;
	int rc;

	if (key_call(&c, s, args, kw) < 0)
		return NULL;
	BUSY(s);
	NOGIL(rc = larder_get(&e, c.db, c.ns, c.k.p, (size_t)c.k.n, c.v.p,
			      (size_t)c.v.n));
	UNBUSY(s);
	call_end(&c);
	if (rc == LARDER_ENOTFOUND)
		Py_RETURN_NONE;
	if (rc < 0)
		return pyl_raise(c.db, rc);
	return pyl_entry_new(e);
}

static PyObject *store_put(StoreObject *s, PyObject *args, PyObject *kw)
{
	static char *kwlist[] = {"key",	 "data", "version", "ttl",
				 "meta", "ns",	 "zstd",    NULL};
	PyObject *key, *data, *ver = Py_None, *ttl = Py_None;
	PyObject *meta = Py_None, *nso = Py_None;
	int zstd = 0, rc;
	Py_buffer d = {0};
	struct call c;
	PyObject *res = NULL;

	if (!PyArg_ParseTupleAndKeywords(args, kw, "OO|OOO$Op", kwlist, &key,
					 &data, &ver, &ttl, &meta, &nso, &zstd))
		return NULL;
	if (call_begin(&c, s, nso) < 0)
		return NULL;
	if (PyUnicode_Check(data)) {
		PyErr_SetString(PyExc_TypeError,
				"data must be a bytes-like object, not str "
				"(encode it)");
		return NULL;
	}
	if (call_key(&c, key, ver) < 0 ||
	    call_put_opts(&c, ttl, meta, zstd) < 0)
		goto out;
	if (PyObject_GetBuffer(data, &d, PyBUF_SIMPLE) < 0)
		goto out;
	BUSY(s);
	NOGIL(rc = larder_put(c.db, c.ns, c.k.p, (size_t)c.k.n, c.v.p,
			      (size_t)c.v.n, d.buf, (size_t)d.len, &c.po));
	UNBUSY(s);
	PyBuffer_Release(&d);
	res = pyl_published(c.db, rc, 2);
out:
	call_end(&c);
	return res;
}

static PyObject *store_writer(StoreObject *s, PyObject *args, PyObject *kw)
{
	static char *kwlist[] = {"key", "version", "ttl", "meta",
				 "ns",	"zstd",	   NULL};
	PyObject *key, *ver = Py_None, *ttl = Py_None, *meta = Py_None;
	PyObject *nso = Py_None;
	int zstd = 0, rc;
	larder_writer *w = NULL;
	struct call c;
	WriterObject *wo = NULL;

	if (!PyArg_ParseTupleAndKeywords(args, kw, "O|OOO$Op", kwlist, &key,
					 &ver, &ttl, &meta, &nso, &zstd))
		return NULL;
	if (call_begin(&c, s, nso) < 0)
		return NULL;
	if (call_key(&c, key, ver) < 0 ||
	    call_put_opts(&c, ttl, meta, zstd) < 0)
		goto out;
	wo = PyObject_New(WriterObject, &Writer_Type);
	if (!wo)
		goto out;
	wo->w = NULL;
	wo->busy = 0;
	wo->unstored = 0;
	wo->pid = getpid();
	wo->store = Py_NewRef((PyObject *)pyl_store_root(s));
	BUSY(s);
	NOGIL(rc = larder_writer_begin(&w, c.db, c.ns, c.k.p, (size_t)c.k.n,
				       c.v.p, (size_t)c.v.n, &c.po));
	if (rc == LARDER_EFULL || rc == LARDER_EPERM) {
		/* A store that cannot keep the entry (full, read-only) is
		 * not an error for the caller's stream, as for put() and a
		 * write() that meets it: a warning, and a writer that drops
		 * what it is given and commits to False. */
		UNBUSY(s);
		wo->unstored = 1;
		if (pyl_warn_not_stored(c.db, 1) < 0)
			Py_CLEAR(wo);
		goto out;
	}
	if (rc < 0) {
		UNBUSY(s);
		Py_CLEAR(wo);
		pyl_raise(c.db, rc);
		goto out;
	}
	/* The writer keeps the store busy until it is committed or
	 * aborted: close() must not free the handle under it. */
	wo->w = w;
out:
	call_end(&c);
	return (PyObject *)wo;
}

static PyObject *store_remove(StoreObject *s, PyObject *args, PyObject *kw)
{
	struct call c;
	int rc;

	if (key_call(&c, s, args, kw) < 0)
		return NULL;
	BUSY(s);
	NOGIL(rc = larder_remove(c.db, c.ns, c.k.p, (size_t)c.k.n, c.v.p,
				 (size_t)c.v.n));
	UNBUSY(s);
	call_end(&c);
	if (rc == LARDER_ENOTFOUND)
		Py_RETURN_FALSE;
	if (rc < 0)
		return pyl_raise(c.db, rc);
	Py_RETURN_TRUE;
}

/* ---------------------------------------------------------------------- */
/* get_or_fill: the loader and version callables run in the calling
 * thread with the GIL taken back; an exception they raise is kept here
 * and raised again, unchanged, once the call returns. */

struct fill_ctx {
	PyThreadState *ts; /* saved while the library runs */
	PyObject *loader;
	PyObject *version_fn;
	/* The callable's exception (type, value, traceback). */
	PyObject *et, *ev, *etb;
	larder *db;
	/* Set when a signal handler raised (Ctrl-C) during a wait: the
	 * library then stops the call (larder_fill_opts.cancel). */
	volatile sig_atomic_t cancel;
};

/* What a callable returns to the library when it raised: not a larder
 * code, so never taken for one (include/larder.h, Callbacks). */
#define PY_RAISED (-1000)

static void exc_clear(struct fill_ctx *c)
{
	Py_CLEAR(c->et);
	Py_CLEAR(c->ev);
	Py_CLEAR(c->etb);
}

/* Keep the exception being raised, if any, for after the call. */
static int exc_keep(struct fill_ctx *c, int rc)
{
	if (!PyErr_Occurred())
		return rc;
	exc_clear(c);
	PyErr_Fetch(&c->et, &c->ev, &c->etb);
	return PY_RAISED;
}

static int fill_write_obj(larder_fill *f, struct fill_ctx *c, PyObject *obj)
{
	Py_buffer b;
	int rc;
	if (PyUnicode_Check(obj)) {
		PyErr_SetString(PyExc_TypeError,
				"the loader must return a bytes-like object "
				"or an iterable of them, not str");
		return PY_RAISED;
	}
	if (PyObject_GetBuffer(obj, &b, PyBUF_SIMPLE) < 0)
		return PY_RAISED;
	c->ts = PyEval_SaveThread();
	rc = larder_fill_write(f, b.buf, (size_t)b.len);
	PyEval_RestoreThread(c->ts);
	PyBuffer_Release(&b);
	return rc < 0 ? rc : 0;
}

static int fill_loader(larder_fill *f, void *payload)
{
	struct fill_ctx *c = payload;
	int rc = PY_RAISED;
	PyEval_RestoreThread(c->ts);
	/* A retried load (the source changed) must not see the previous
	 * attempt's exception. */
	exc_clear(c);
	PyObject *r = PyObject_CallNoArgs(c->loader);
	if (!r)
		goto out;
	if (PyObject_CheckBuffer(r)) {
		rc = fill_write_obj(f, c, r);
	} else if (r == Py_None) {
		PyErr_SetString(PyExc_TypeError,
				"the loader returned None: return a "
				"bytes-like object or an iterable of them");
	} else {
		/* An iterable of chunks: streamed, never joined in memory. */
		PyObject *it = PyObject_GetIter(r), *chunk;
		if (!it && PyErr_ExceptionMatches(PyExc_TypeError)) {
			PyErr_Clear();
			PyErr_Format(PyExc_TypeError,
				     "the loader returned %.200s: return a "
				     "bytes-like object or an iterable of them",
				     Py_TYPE(r)->tp_name);
		}
		if (it) {
			rc = 0;
			while (rc == 0 && (chunk = PyIter_Next(it))) {
				rc = fill_write_obj(f, c, chunk);
				Py_DECREF(chunk);
			}
			if (rc == 0 && PyErr_Occurred())
				rc = PY_RAISED;
			Py_DECREF(it);
		}
	}
	Py_DECREF(r);
out:
	rc = exc_keep(c, rc);
	c->ts = PyEval_SaveThread();
	return rc;
}

static int fill_version(larder_fill *f, void *payload)
{
	struct fill_ctx *c = payload;
	int rc = PY_RAISED;
	pyl_bytes v = {0};
	PyEval_RestoreThread(c->ts);
	exc_clear(c);
	PyObject *r = PyObject_CallNoArgs(c->version_fn);
	if (r &&
	    pyl_bytes_get(&v, r, "the version callable's result", 0) == 0) {
		rc = larder_fill_set_version(f, v.p, (size_t)v.n);
		pyl_bytes_release(&v);
	}
	Py_XDECREF(r);
	rc = exc_keep(c, rc);
	c->ts = PyEval_SaveThread();
	return rc;
}

/* Called about every 250 ms while the call waits for another filler:
 * run Python's signal handlers, so that Ctrl-C stops a long wait. */
static void fill_on_wait(const larder_wait_info *info, void *payload)
{
	struct fill_ctx *c = payload;
	(void)info;
	PyEval_RestoreThread(c->ts);
	if (PyErr_CheckSignals() < 0) {
		exc_keep(c, 0);
		c->cancel = 1;
	}
	c->ts = PyEval_SaveThread();
}

static PyObject *store_get_or_fill(StoreObject *s, PyObject *args, PyObject *kw)
{
	static char *kwlist[] = {"key",		"version",	 "loader",
				 "ttl",		"meta",		 "ns",
				 "allow_stale", "lease_seconds", "max_wait",
				 "zstd",	"stacklevel",	 NULL};
	PyObject *key, *ver, *loader, *ttl = Py_None, *meta = Py_None;
	PyObject *nso = Py_None;
	int stale = 0, zstd = 0, rc, outcome = 0, stacklevel = 1;
	double lease = 0, max_wait = 0;
	struct call a;
	larder_fill_opts fo = LARDER_FILL_OPTS_INIT;
	struct fill_ctx c = {0};
	larder_entry *e = NULL;
	PyObject *res = NULL;

	if (!PyArg_ParseTupleAndKeywords(
		args, kw, "OOO|$OOOpddpi", kwlist, &key, &ver, &loader, &ttl,
		&meta, &nso, &stale, &lease, &max_wait, &zstd, &stacklevel))
		return NULL;
	if (call_begin(&a, s, nso) < 0)
		return NULL;
	if (!PyCallable_Check(loader)) {
		PyErr_SetString(PyExc_TypeError, "loader must be callable");
		return NULL;
	}
	if (call_key(&a, key, NULL) < 0 ||
	    call_put_opts(&a, ttl, meta, zstd) < 0)
		goto out;
	if (PyCallable_Check(ver))
		c.version_fn = ver;
	else if (pyl_bytes_get(&a.v, ver, "version", 0) < 0)
		goto out;
	c.loader = loader;
	c.db = a.db;
	fo.flags = stale ? LARDER_FILL_ALLOW_STALE : 0;
	fo.lease_seconds = lease;
	fo.max_wait_seconds = max_wait;
	fo.put = &a.po;
	fo.on_wait = fill_on_wait;
	fo.on_wait_payload = &c;
	fo.cancel = &c.cancel;
	BUSY(s);
	c.ts = PyEval_SaveThread();
	rc = larder_get_or_fill(&e, &outcome, a.db, a.ns, a.k.p, (size_t)a.k.n,
				c.version_fn ? NULL : a.v.p, (size_t)a.v.n,
				c.version_fn ? fill_version : NULL, fill_loader,
				&c, &fo);
	PyEval_RestoreThread(c.ts);
	UNBUSY(s);
	if (rc < 0) {
		if (c.et) {
			/* The callable's own exception, unchanged. */
			PyErr_Restore(c.et, c.ev, c.etb);
			c.et = c.ev = c.etb = NULL;
		} else {
			pyl_raise(a.db, rc);
		}
		goto out;
	}
	if (outcome == LARDER_FILLED_UNCACHED &&
	    pyl_warn_not_stored(a.db, stacklevel) < 0) {
		larder_entry_release(e);
		goto out;
	}
	res = entry_outcome(e, outcome);
out:
	exc_clear(&c);
	call_end(&a);
	return res;
}

static PyObject *store_files_version(StoreObject *s, PyObject *args,
				     PyObject *kw)
{
	static char *kwlist[] = {"paths", "remember", NULL};
	PyObject *paths, *keep;
	int remember = 1, rc;
	const char **pv = NULL;
	size_t n = 0;
	char out[LARDER_FILES_VERSION_LEN + 1];
	larder *db;

	if (!PyArg_ParseTupleAndKeywords(args, kw, "O|$p", kwlist, &paths,
					 &remember))
		return NULL;
	if (!(db = pyl_store_db(s)))
		return NULL;
	if (PyUnicode_Check(paths) || PyBytes_Check(paths)) {
		PyErr_SetString(PyExc_TypeError,
				"paths must be a list of paths, not one");
		return NULL;
	}
	keep = pyl_str_list_export(&pv, &n, paths, "paths", 1);
	if (!keep)
		return NULL;
	BUSY(s);
	NOGIL(rc = larder_files_version(
		  out, db, pv, n, remember ? 0 : LARDER_FILES_NO_REMEMBER));
	UNBUSY(s);
	PyMem_Free(pv);
	Py_DECREF(keep);
	if (rc < 0)
		return pyl_raise(db, rc);
	return PyUnicode_FromString(out);
}

/* _sql(): larder_sql() in TSV with a header line; the package parses the
 * rows (larder/__init__.py). */
static PyObject *store_sql_raw(StoreObject *s, PyObject *args, PyObject *kw)
{
	static char *kwlist[] = {
	    "db",  "query", "params", "table", "version_query",
	    "ttl", "ns",    NULL};
	const char *dburi, *query, *table = NULL, *vq = NULL;
	PyObject *params = NULL, *ttl = Py_None, *nso = Py_None;
	PyObject *keep = NULL, *res = NULL, *fast = NULL;
	larder_sql_opts so = LARDER_SQL_OPTS_INIT;
	larder_fill_opts fo = LARDER_FILL_OPTS_INIT;
	const char **pv = NULL;
	larder_entry *e = NULL;
	int outcome = 0, rc;
	struct call a;

	if (!PyArg_ParseTupleAndKeywords(args, kw, "ss|O$zzOO", kwlist, &dburi,
					 &query, &params, &table, &vq, &ttl,
					 &nso))
		return NULL;
	if (call_begin(&a, s, nso) < 0)
		return NULL;
	larder_put_opts_init(&a.po);
	if (pyl_ttl(&a.po.ttl_seconds, ttl) < 0)
		return NULL;
	keep = PyList_New(0);
	if (!keep)
		return NULL;
	Py_ssize_t np = 0;
	if (params && params != Py_None) {
		fast = PySequence_Fast(params, "params must be a sequence");
		if (!fast)
			goto out;
		np = PySequence_Fast_GET_SIZE(fast);
		pv = PyMem_Calloc((size_t)np + 1, sizeof(*pv));
		if (!pv) {
			PyErr_NoMemory();
			goto out;
		}
		/* Bound as text; None binds SQL NULL. */
		for (Py_ssize_t i = 0; i < np; i++) {
			PyObject *it = PySequence_Fast_GET_ITEM(fast, i);
			if (it == Py_None)
				continue;
			PyObject *str = PyObject_Str(it);
			if (!str || PyList_Append(keep, str) < 0) {
				Py_XDECREF(str);
				goto out;
			}
			Py_DECREF(str);
			pv[i] = PyUnicode_AsUTF8(str);
			if (!pv[i])
				goto out;
		}
	}
	so.format = LARDER_SQL_TSV;
	so.params = pv;
	so.nparams = (size_t)np;
	so.table = table;
	so.version_query = vq;
	fo.put = &a.po;
	so.fill = &fo;
	BUSY(s);
	NOGIL(rc = larder_sql(&e, &outcome, a.db, a.ns, dburi, query, &so));
	UNBUSY(s);
	if (rc < 0) {
		pyl_raise(a.db, rc);
		goto out;
	}
	res = entry_outcome(e, outcome);
out:
	PyMem_Free(pv);
	Py_XDECREF(fast);
	Py_XDECREF(keep);
	return res;
}

static int dict_set_u64(PyObject *d, const char *k, uint64_t v)
{
	PyObject *o = PyLong_FromUnsignedLongLong(v);
	if (!o)
		return -1;
	int rc = PyDict_SetItemString(d, k, o);
	Py_DECREF(o);
	return rc;
}

static PyObject *store_stats(StoreObject *s, PyObject *unused)
{
	larder_stats *st = NULL;
	larder *db;
	int rc;
	unsigned bad = 0;
	PyObject *res = NULL, *ctr = NULL, *handle = NULL, *nss = NULL;
	(void)unused;

	if (!(db = pyl_store_db(s)))
		return NULL;
	BUSY(s);
	NOGIL(rc = larder_stats_read(&st, db));
	UNBUSY(s);
	if (rc < 0)
		return pyl_raise(db, rc);
	ctr = PyDict_New();
	handle = PyDict_New();
	nss = PyDict_New();
	if (!ctr || !handle || !nss)
		goto out;
	size_t n = larder_stats_counters(st);
	for (size_t i = 0; i < n; i++) {
		uint64_t val;
		const char *name = larder_stats_counter(&val, st, i);
		if (name && dict_set_u64(ctr, name, val) < 0)
			goto out;
	}
	for (int i = 0; i < LARDER_CTR_COUNT; i++)
		if (dict_set_u64(handle, larder_counter_name(i),
				 larder_counter(db, i)) < 0)
			goto out;
	n = larder_stats_namespaces(st);
	for (size_t i = 0; i < n; i++) {
		int64_t bytes, entries;
		const char *name = larder_stats_usage(&bytes, &entries, st, i);
		if (!name)
			continue;
		PyObject *u =
		    Py_BuildValue("{s:L,s:L}", "bytes", (long long)bytes,
				  "entries", (long long)entries);
		if (!u || PyDict_SetItemString(nss, name, u) < 0) {
			Py_XDECREF(u);
			goto out;
		}
		Py_DECREF(u);
	}
	unsigned shards = larder_stats_shards(&bad, st);
	res = Py_BuildValue("{s:O,s:O,s:O,s:I,s:I}", "counters", ctr, "handle",
			    handle, "namespaces", nss, "shards", shards,
			    "bad_shards", bad);
out:
	larder_stats_free(st);
	Py_XDECREF(ctr);
	Py_XDECREF(handle);
	Py_XDECREF(nss);
	return res;
}

static PyObject *store_get_path(StoreObject *s, void *c)
{
	(void)c;
	larder *db = pyl_store_db(s);
	if (!db)
		return NULL;
	return PyUnicode_DecodeFSDefault(larder_dir(db));
}

static PyObject *store_get_ns(StoreObject *s, void *c)
{
	(void)c;
	return PyUnicode_FromString(s->ns);
}

static PyObject *store_get_closed(StoreObject *s, void *c)
{
	(void)c;
	StoreObject *root = pyl_store_root(s);
	return PyBool_FromLong(s->closed || root->closed || !root->db);
}

static PyObject *store_repr(StoreObject *s)
{
	StoreObject *root = pyl_store_root(s);
	if (s->closed || root->closed || !root->db)
		return PyUnicode_FromFormat("<larder.Store closed ns=%s>",
					    s->ns);
	return PyUnicode_FromFormat("<larder.Store %s ns=%s>",
				    larder_dir(root->db), s->ns);
}

#define KW (METH_VARARGS | METH_KEYWORDS)
#define FN(f) (PyCFunction)(void (*)(void))(f)
static PyMethodDef store_methods[] = {
    {"close", (PyCFunction)store_close, METH_NOARGS,
     "Close the handle (a namespace view: only the view). Entries held "
     "stay valid."},
    {"__enter__", (PyCFunction)store_enter, METH_NOARGS, NULL},
    {"__exit__", (PyCFunction)store_exit, METH_VARARGS, NULL},
    {"namespace", (PyCFunction)store_namespace, METH_O,
     "namespace(name) -> Store: a view of this store bound to namespace "
     "name."},
    {"get", FN(store_get), KW,
     "get(key, version=None, *, ns=None) -> Entry | None"},
    {"put", FN(store_put), KW,
     "put(key, data, version=None, ttl=None, meta=None, *, ns=None, "
     "zstd=False) -> bool"},
    {"writer", FN(store_writer), KW,
     "writer(key, version=None, ttl=None, meta=None, *, ns=None, "
     "zstd=False) -> Writer"},
    {"remove", FN(store_remove), KW,
     "remove(key, version=None, *, ns=None) -> bool"},
    {"get_or_fill", FN(store_get_or_fill), KW,
     "get_or_fill(key, version, loader, *, ttl=None, meta=None, ns=None, "
     "allow_stale=False, lease_seconds=0, max_wait=0, zstd=False, "
     "stacklevel=1) -> (Entry, Outcome)"},
    {"files_version", FN(store_files_version), KW,
     "files_version(paths, *, remember=True) -> str"},
    {"_sql", FN(store_sql_raw), KW,
     "_sql(db, query, params=(), *, table=None, version_query=None, "
     "ttl=None, ns=None) -> (Entry, Outcome): the TSV result."},
    {"stats", (PyCFunction)store_stats, METH_NOARGS,
     "stats() -> dict: store-wide counters, this handle's, usage per "
     "namespace."},
    {NULL, NULL, 0, NULL}};

static PyGetSetDef store_getset[] = {
    {"path", (getter)store_get_path, NULL, "The store's directory.", NULL},
    {"ns", (getter)store_get_ns, NULL, "The default namespace.", NULL},
    {"closed", (getter)store_get_closed, NULL, "True once closed.", NULL},
    {NULL, NULL, NULL, NULL, NULL}};

PyTypeObject Store_Type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "larder._larder.Store",
    .tp_basicsize = sizeof(StoreObject),
    .tp_dealloc = (destructor)store_dealloc,
    .tp_repr = (reprfunc)store_repr,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "Store(path=None, *, create=False, ns='default', ...): a "
	      "larder store.",
    .tp_traverse = (traverseproc)store_traverse,
    .tp_clear = (inquiry)store_clear,
    .tp_weaklistoffset = offsetof(StoreObject, weakrefs),
    .tp_methods = store_methods,
    .tp_getset = store_getset,
    .tp_init = (initproc)store_init,
    .tp_new = PyType_GenericNew,
};
