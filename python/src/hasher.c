/*
 * hasher.c — XXH3-128 for Python (Hasher, xxh3_128), the hash the
 * library checks entries with, for keys made from large buffers
 * (numpy arrays) without copying them.
 */
#include "pylarder.h"

#include <xxhash.h>

/* Below this a buffer is hashed with the GIL held: releasing it costs
 * more than hashing a few KiB. */
#define NOGIL_MIN ((Py_ssize_t)64 * 1024)

typedef struct {
	PyObject_HEAD XXH3_state_t *st;
	int busy;
} HasherObject;

static PyObject *digest_bytes(XXH128_hash_t h)
{
	XXH128_canonical_t c;
	XXH128_canonicalFromHash(&c, h);
	return PyBytes_FromStringAndSize((const char *)c.digest,
					 sizeof(c.digest));
}

PyObject *pyl_xxh3_128(PyObject *mod, PyObject *arg)
{
	Py_buffer b;
	XXH128_hash_t h;
	(void)mod;
	if (PyObject_GetBuffer(arg, &b, PyBUF_SIMPLE) < 0)
		return NULL;
	if (b.len >= NOGIL_MIN) {
		NOGIL(h = XXH3_128bits(b.buf, (size_t)b.len));
	} else {
		h = XXH3_128bits(b.buf, (size_t)b.len);
	}
	PyBuffer_Release(&b);
	return digest_bytes(h);
}

static int hasher_init(HasherObject *o, PyObject *args, PyObject *kw)
{
	static char *kwlist[] = {"data", NULL};
	PyObject *data = NULL;
	if (!PyArg_ParseTupleAndKeywords(args, kw, "|O", kwlist, &data))
		return -1;
	if (!o->st) {
		o->st = XXH3_createState();
		if (!o->st) {
			PyErr_NoMemory();
			return -1;
		}
	}
	if (XXH3_128bits_reset(o->st) == XXH_ERROR) {
		PyErr_SetString(PyExc_RuntimeError, "XXH3 reset failed");
		return -1;
	}
	if (data) {
		PyObject *r =
		    PyObject_CallMethod((PyObject *)o, "update", "O", data);
		if (!r)
			return -1;
		Py_DECREF(r);
	}
	return 0;
}

static PyObject *hasher_update(HasherObject *o, PyObject *arg)
{
	Py_buffer b;
	XXH_errorcode rc;
	if (!o->st) {
		PyErr_SetString(PyExc_ValueError, "Hasher not initialised");
		return NULL;
	}
	if (o->busy) {
		PyErr_SetString(PyExc_RuntimeError,
				"the Hasher is in use by another thread");
		return NULL;
	}
	if (PyObject_GetBuffer(arg, &b, PyBUF_SIMPLE) < 0)
		return NULL;
	if (b.len >= NOGIL_MIN) {
		o->busy = 1;
		NOGIL(rc = XXH3_128bits_update(o->st, b.buf, (size_t)b.len));
		o->busy = 0;
	} else {
		rc = XXH3_128bits_update(o->st, b.buf, (size_t)b.len);
	}
	PyBuffer_Release(&b);
	if (rc == XXH_ERROR) {
		PyErr_SetString(PyExc_RuntimeError, "XXH3 update failed");
		return NULL;
	}
	Py_RETURN_NONE;
}

static PyObject *hasher_digest(HasherObject *o, PyObject *unused)
{
	(void)unused;
	if (!o->st || o->busy) {
		PyErr_SetString(PyExc_RuntimeError,
				"the Hasher is not ready (in use?)");
		return NULL;
	}
	return digest_bytes(XXH3_128bits_digest(o->st));
}

static PyObject *hasher_hexdigest(HasherObject *o, PyObject *unused)
{
	PyObject *d = hasher_digest(o, unused);
	if (!d)
		return NULL;
	PyObject *h = PyObject_CallMethod(d, "hex", NULL);
	Py_DECREF(d);
	return h;
}

static void hasher_dealloc(HasherObject *o)
{
	if (o->st)
		XXH3_freeState(o->st);
	Py_TYPE(o)->tp_free((PyObject *)o);
}

static PyMethodDef hasher_methods[] = {
    {"update", (PyCFunction)hasher_update, METH_O,
     "update(buffer): hash more bytes (the GIL is released for large "
     "buffers)."},
    {"digest", (PyCFunction)hasher_digest, METH_NOARGS,
     "The XXH3-128 digest so far: 16 bytes (canonical, big-endian)."},
    {"hexdigest", (PyCFunction)hasher_hexdigest, METH_NOARGS,
     "The digest as 32 hex digits."},
    {NULL, NULL, 0, NULL}};

PyTypeObject Hasher_Type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "larder.Hasher",
    .tp_basicsize = sizeof(HasherObject),
    .tp_dealloc = (destructor)hasher_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Hasher(data=None): streaming XXH3-128.",
    .tp_methods = hasher_methods,
    .tp_init = (initproc)hasher_init,
    .tp_new = PyType_GenericNew,
};

int pyl_hasher_ready(PyObject *m)
{
	if (PyType_Ready(&Hasher_Type) < 0)
		return -1;
	return PyModule_AddObjectRef(m, "Hasher", (PyObject *)&Hasher_Type);
}
