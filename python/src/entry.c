/*
 * entry.c — Entry (a read-only, zero-copy buffer over a larder_entry)
 * and Writer (a streaming larder_writer).
 */
#include "pylarder.h"

#include <unistd.h>

PyObject *pyl_entry_new(larder_entry *e)
{
	EntryObject *o = PyObject_New(EntryObject, &Entry_Type);
	if (!o) {
		larder_entry_release(e);
		return NULL;
	}
	o->e = e;
	o->exports = 0;
	o->released = 0;
	return (PyObject *)o;
}

/* The C entry goes when the Python one is released and nothing exported
 * from it is held any more (a memoryview, a numpy array). */
static void entry_drop(EntryObject *o)
{
	if (o->released && o->exports == 0 && o->e) {
		larder_entry_release(o->e);
		o->e = NULL;
	}
}

static int entry_live(EntryObject *o)
{
	if (o->released) {
		PyErr_SetString(PyExc_ValueError, "the entry was released");
		return -1;
	}
	return 0;
}

static void entry_dealloc(EntryObject *o)
{
	/* No export can be held here: each holds a reference to us. */
	o->released = 1;
	entry_drop(o);
	PyObject_Free(o);
}

static int entry_getbuffer(EntryObject *o, Py_buffer *view, int flags)
{
	if (o->released) {
		PyErr_SetString(PyExc_BufferError, "the entry was released");
		view->obj = NULL;
		return -1;
	}
	/* Read-only: the payload may be a mapping of a file shared with
	 * every reader on the machine. PyBuffer_FillInfo refuses a
	 * writable request with BufferError. */
	if (PyBuffer_FillInfo(
		view, (PyObject *)o, (void *)larder_entry_data(o->e),
		(Py_ssize_t)larder_entry_size(o->e), 1, flags) < 0)
		return -1;
	o->exports++;
	return 0;
}

static void entry_releasebuffer(EntryObject *o, Py_buffer *view)
{
	(void)view;
	o->exports--;
	entry_drop(o);
}

static PyBufferProcs entry_as_buffer = {(getbufferproc)entry_getbuffer,
					(releasebufferproc)entry_releasebuffer};

static Py_ssize_t entry_len(EntryObject *o)
{
	if (entry_live(o) < 0)
		return -1;
	return (Py_ssize_t)larder_entry_size(o->e);
}

/* An entry is a hit, whatever its size: `if entry:` must not take an
 * empty payload for a miss (which is None). */
static int entry_bool(EntryObject *o)
{
	(void)o;
	return 1;
}

static PyNumberMethods entry_as_number = {.nb_bool = (inquiry)entry_bool};

static PySequenceMethods entry_as_sequence = {.sq_length = (lenfunc)entry_len};

static PyObject *entry_release(EntryObject *o, PyObject *unused)
{
	(void)unused;
	o->released = 1;
	entry_drop(o);
	Py_RETURN_NONE;
}

static PyObject *entry_enter(EntryObject *o, PyObject *unused)
{
	(void)unused;
	if (entry_live(o) < 0)
		return NULL;
	return Py_NewRef(o);
}

static PyObject *entry_exit(EntryObject *o, PyObject *args)
{
	(void)args;
	return entry_release(o, NULL);
}

static PyObject *entry_get_version(EntryObject *o, void *c)
{
	size_t n;
	(void)c;
	if (entry_live(o) < 0)
		return NULL;
	const void *v = larder_entry_version(&n, o->e);
	return PyBytes_FromStringAndSize(v, (Py_ssize_t)n);
}

static PyObject *entry_get_meta(EntryObject *o, void *c)
{
	size_t n;
	(void)c;
	if (entry_live(o) < 0)
		return NULL;
	const void *v = larder_entry_meta(&n, o->e);
	if (n == 0)
		Py_RETURN_NONE;
	return PyBytes_FromStringAndSize(v, (Py_ssize_t)n);
}

static PyObject *entry_get_created(EntryObject *o, void *c)
{
	(void)c;
	if (entry_live(o) < 0)
		return NULL;
	return PyFloat_FromDouble((double)larder_entry_created(o->e) / 1e9);
}

static PyObject *entry_get_expires(EntryObject *o, void *c)
{
	(void)c;
	if (entry_live(o) < 0)
		return NULL;
	int64_t t = larder_entry_expires(o->e);
	if (t == 0)
		Py_RETURN_NONE;
	return PyFloat_FromDouble((double)t / 1e9);
}

static PyObject *entry_get_mapped(EntryObject *o, void *c)
{
	(void)c;
	if (entry_live(o) < 0)
		return NULL;
	return PyBool_FromLong(larder_entry_is_mapped(o->e));
}

static PyObject *entry_get_released(EntryObject *o, void *c)
{
	(void)c;
	return PyBool_FromLong(o->released);
}

static PyObject *entry_repr(EntryObject *o)
{
	if (o->released)
		return PyUnicode_FromString("<larder.Entry released>");
	return PyUnicode_FromFormat(
	    "<larder.Entry %zu bytes%s>", larder_entry_size(o->e),
	    larder_entry_is_mapped(o->e) ? ", mapped" : "");
}

static PyMethodDef entry_methods[] = {
    {"release", (PyCFunction)entry_release, METH_NOARGS,
     "Release the entry. A memoryview or array still held keeps the data "
     "until it goes; no new one can be made."},
    {"__enter__", (PyCFunction)entry_enter, METH_NOARGS, NULL},
    {"__exit__", (PyCFunction)entry_exit, METH_VARARGS, NULL},
    {NULL, NULL, 0, NULL}};

static PyGetSetDef entry_getset[] = {
    {"version", (getter)entry_get_version, NULL, "The version (bytes).", NULL},
    {"meta", (getter)entry_get_meta, NULL,
     "The metadata given at write time (bytes), None if none.", NULL},
    {"created", (getter)entry_get_created, NULL,
     "When it was published (seconds since the epoch).", NULL},
    {"expires", (getter)entry_get_expires, NULL,
     "When it expires (seconds since the epoch), None if never.", NULL},
    {"mapped", (getter)entry_get_mapped, NULL,
     "True if the payload is a mapping of the entry's file.", NULL},
    {"released", (getter)entry_get_released, NULL,
     "True once release() was called.", NULL},
    {NULL, NULL, NULL, NULL, NULL}};

PyTypeObject Entry_Type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "larder.Entry",
    .tp_basicsize = sizeof(EntryObject),
    .tp_dealloc = (destructor)entry_dealloc,
    .tp_repr = (reprfunc)entry_repr,
    .tp_as_number = &entry_as_number,
    .tp_as_sequence = &entry_as_sequence,
    .tp_as_buffer = &entry_as_buffer,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "A cached entry: a read-only, zero-copy buffer over its "
	      "payload (memoryview(entry), bytes(entry)).",
    .tp_methods = entry_methods,
    .tp_getset = entry_getset,
};

/* ---------------------------------------------------------------------- */

static int writer_usable(WriterObject *w)
{
	if (!w->w && !w->unstored) {
		PyErr_SetString(PyExc_ValueError,
				"the writer was committed or aborted");
		return -1;
	}
	if (w->pid != getpid()) {
		PyErr_SetString(PyExc_RuntimeError,
				"the writer was begun by the parent process "
				"(before fork): it is the parent's");
		return -1;
	}
	if (w->busy) {
		PyErr_SetString(PyExc_RuntimeError,
				"the writer is in use by another thread");
		return -1;
	}
	return 0;
}

static larder *writer_db(WriterObject *w)
{
	return pyl_store_root((StoreObject *)w->store)->db;
}

/* The C writer is gone (committed or aborted): the store it kept busy
 * can close again. */
static void writer_gone(WriterObject *w)
{
	w->w = NULL;
	pyl_store_root((StoreObject *)w->store)->busy--;
}

static PyObject *writer_write(WriterObject *w, PyObject *arg)
{
	Py_buffer b;
	int rc;
	if (writer_usable(w) < 0)
		return NULL;
	if (PyObject_GetBuffer(arg, &b, PyBUF_SIMPLE) < 0)
		return NULL;
	if (w->unstored) {
		PyBuffer_Release(&b);
		Py_RETURN_NONE;
	}
	w->busy = 1;
	NOGIL(rc = larder_writer_write(w->w, b.buf, (size_t)b.len));
	w->busy = 0;
	PyBuffer_Release(&b);
	larder *db = writer_db(w);
	if (rc == LARDER_EFULL || rc == LARDER_EPERM) {
		/* Warn before aborting: the message is this thread's last
		 * failure on db only until the next call. */
		int wr = pyl_warn_not_stored(db, 1);
		larder_writer_abort(w->w);
		writer_gone(w);
		w->unstored = 1;
		if (wr < 0)
			return NULL;
		Py_RETURN_NONE;
	}
	if (rc < 0)
		return pyl_raise(db, rc);
	Py_RETURN_NONE;
}

static PyObject *writer_commit(WriterObject *w, PyObject *unused)
{
	int rc;
	(void)unused;
	if (writer_usable(w) < 0)
		return NULL;
	if (w->unstored) {
		w->unstored = 0; /* committed: later calls are refused */
		Py_RETURN_FALSE;
	}
	/* Taken first: no other call may use it while this one commits
	 * with the GIL released; the store stays busy until it is done. */
	larder_writer *lw = w->w;
	w->w = NULL;
	NOGIL(rc = larder_writer_commit(lw));
	writer_gone(w);
	return pyl_published(writer_db(w), rc, 1);
}

static PyObject *writer_abort(WriterObject *w, PyObject *unused)
{
	(void)unused;
	w->unstored = 0;
	if (!w->w)
		Py_RETURN_NONE;
	if (writer_usable(w) < 0)
		return NULL;
	larder_writer_abort(w->w);
	writer_gone(w);
	Py_RETURN_NONE;
}

static PyObject *writer_enter(WriterObject *w, PyObject *unused)
{
	(void)unused;
	if (writer_usable(w) < 0)
		return NULL;
	return Py_NewRef(w);
}

/* Committed on a clean exit, aborted when an exception leaves the block
 * (which then goes on unchanged). */
static PyObject *writer_exit(WriterObject *w, PyObject *args)
{
	PyObject *type =
	    PyTuple_GET_SIZE(args) > 0 ? PyTuple_GET_ITEM(args, 0) : Py_None;
	if (type != Py_None || (!w->w && !w->unstored))
		return pyl_exit_false(writer_abort(w, NULL));
	return pyl_exit_false(writer_commit(w, NULL));
}

static void writer_dealloc(WriterObject *w)
{
	if (w->w) {
		/* A writer inherited over fork() is the parent's: the
		 * child leaves its temp file alone. */
		if (w->pid == getpid())
			larder_writer_abort(w->w);
		writer_gone(w);
	}
	Py_XDECREF(w->store);
	PyObject_Free(w);
}

static PyMethodDef writer_methods[] = {
    {"write", (PyCFunction)writer_write, METH_O,
     "write(buffer): append bytes (any bytes-like object)."},
    {"commit", (PyCFunction)writer_commit, METH_NOARGS,
     "Publish: True if this call published, False if an equal entry was "
     "there or (with a NotStoredWarning) it could not be stored."},
    {"abort", (PyCFunction)writer_abort, METH_NOARGS,
     "Drop the entry being written."},
    {"__enter__", (PyCFunction)writer_enter, METH_NOARGS, NULL},
    {"__exit__", (PyCFunction)writer_exit, METH_VARARGS, NULL},
    {NULL, NULL, 0, NULL}};

PyTypeObject Writer_Type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "larder.Writer",
    .tp_basicsize = sizeof(WriterObject),
    .tp_dealloc = (destructor)writer_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "A streaming writer (Store.writer()): committed on a clean "
	      "exit of its with block, aborted on an exception.",
    .tp_methods = writer_methods,
};
