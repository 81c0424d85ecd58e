/*
 * pylarder.h — what the files of the extension module larder._larder
 * share: the types, the exceptions and the argument helpers. The module
 * mirrors include/larder.h one object to one (docs/python.md).
 */
#ifndef PYLARDER_H
#define PYLARDER_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <larder.h>
#include <sys/types.h>

/* A store handle. A namespace view (Store.namespace()) is a Store whose
 * `owner` is the Store that opened the handle: it borrows owner->db. */
typedef struct {
	PyObject_HEAD larder *db;
	PyObject *owner; /* NULL for the opener; else the opener (a ref) */
	char ns[LARDER_NS_MAX + 1];
	/* Calls running with the GIL released: close() waits for none of
	 * them, it refuses while any runs, so no call ever uses a closed
	 * handle. */
	int busy;
	int closed;
	PyObject *weakrefs;
} StoreObject;

/* An entry: its payload is exported through the buffer protocol. The
 * C entry is released when the entry is released (or collected) *and*
 * the last export is gone, so that a memoryview or numpy array still
 * held keeps the mapping alive. */
typedef struct {
	PyObject_HEAD larder_entry *e;
	Py_ssize_t exports;
	int released;
} EntryObject;

typedef struct {
	PyObject_HEAD larder_writer *w;
	PyObject *store; /* keeps the handle open (a ref) */
	pid_t pid;	 /* the process that began it (see fork in larder.h) */
	int busy;
	/* A write found the store full or read-only: the writer was
	 * aborted with a warning, later writes are dropped and commit()
	 * says False (the caller's stream goes on). */
	int unstored;
} WriterObject;

extern PyTypeObject Store_Type;
extern PyTypeObject Entry_Type;
extern PyTypeObject Writer_Type;
extern PyTypeObject Hasher_Type;

extern PyObject *pyl_Error;
extern PyObject *pyl_NotStoredWarning;
extern PyObject *pyl_outcomes[6]; /* indexed by enum larder_outcome */

/* Raise the exception for code rc, with db's message for the calling
 * thread (db NULL: the last larder_open()'s). Returns NULL. */
PyObject *pyl_raise(const larder *db, int rc);
/* Raise InvalidError with a message of our own. */
PyObject *pyl_raise_msg(int rc, const char *msg);

/* Warn NotStoredWarning with db's message (the store could not keep an
 * entry: full, read-only); -1 if the warning was made an error. */
int pyl_warn_not_stored(const larder *db, int stacklevel);
/* What a publish returns to Python: True if this call published, False
 * if an equal entry was there or (with the warning) the store could not
 * keep it; NULL with the exception for any other failure. */
PyObject *pyl_published(const larder *db, int rc, int stacklevel);
/* __exit__ after close/commit/abort returned r: False (the exception
 * goes on), or NULL if r is. */
PyObject *pyl_exit_false(PyObject *r);

/* Run stmt with the GIL released (Py_BEGIN/END_ALLOW_THREADS as one
 * statement). */
#define NOGIL(stmt)                                                            \
	do {                                                                   \
		PyThreadState *nogil_save_ = PyEval_SaveThread();              \
		stmt;                                                          \
		PyEval_RestoreThread(nogil_save_);                             \
	} while (0)

/* A key, version or other byte string given as str (UTF-8) or a
 * bytes-like object; `none_ok` lets None through as NULL. */
typedef struct {
	const char *p;
	Py_ssize_t n;
	Py_buffer view;
	int has_view;
} pyl_bytes;
int pyl_bytes_get(pyl_bytes *out, PyObject *obj, const char *what, int none_ok);
void pyl_bytes_release(pyl_bytes *b);

/* A ttl argument: None (the namespace's default), a positive number of
 * seconds (rounded up) or larder.NEVER. */
int pyl_ttl(int64_t *out, PyObject *obj);

/* A sequence of str (or path-like, with fs) as a C array of strings in
 * *out (PyMem_Free it), n in *n; returns the list that owns the strings
 * (DECREF it after use), or NULL with an exception set. */
PyObject *pyl_str_list_export(const char ***out, size_t *n, PyObject *seq,
			      const char *what, int fs);

PyObject *pyl_entry_new(larder_entry *e);
PyObject *pyl_xxh3_128(PyObject *mod, PyObject *arg);
PyObject *pyl_plain_digest(PyObject *mod, PyObject *args);
PyObject *pyl_run_key(PyObject *mod, PyObject *args, PyObject *kw);

/* The handle behind a store or namespace view, or NULL with an
 * exception set when it (or its opener) is closed. */
larder *pyl_store_db(StoreObject *s);
StoreObject *pyl_store_root(StoreObject *s);

#endif
