/*
 * hasher.c — XXH3-128 for Python (Hasher, xxh3_128), the hash the
 * library checks entries with, for keys made from large buffers
 * (numpy arrays) without copying them.
 *
 * Through xxh_x86dispatch.h, XXH3_128bits and XXH3_128bits_update are
 * libxxhash's runtime-dispatch entry points, which pick the widest SIMD
 * the CPU has: the plain ones are SSE2, 3x slower on a 1 MiB buffer and
 * 2.4x on 4 KiB here (docs/performance.md, "Python"). The digests are
 * the same either way.
 */
#include "pylarder.h"

#if defined(__x86_64__) || defined(__i386__)
#include <xxh_x86dispatch.h> /* runtime dispatch: see above */
#endif
#include <xxhash.h>

/* Below this a buffer is hashed with the GIL held: releasing it costs
 * more than hashing a few KiB. */
#define NOGIL_MIN ((Py_ssize_t)64 * 1024)

/* Inputs up to this long are hashed by scalar code (XXH3's short path):
 * only longer ones reach the vector code. */
#define SHORT_INPUT 240

/* libxxhash 0.8.1's AVX2 and AVX-512 code returns with the upper halves
 * of the vector registers still in use (no vzeroupper before its ret).
 * Until the next vzeroupper every SSE instruction after it, the
 * interpreter's and libc's, may run in the slow mixed state: the library
 * measured a third of a raw read on a 4 KiB hit (docs/performance.md).
 * So the state is cleared after each call that can take the vector path,
 * where the CPU and the kernel have AVX (else the dispatch never chose
 * it, and vzeroupper would fault). The library does the same in its own
 * layer; the binding keeps a copy, as it uses only the public API. */
static void vector_clear(void)
{
#if defined(__x86_64__) || defined(__i386__)
	static int avx = -1;
	int a = __atomic_load_n(&avx, __ATOMIC_RELAXED);
	if (a < 0) {
		__builtin_cpu_init();
		a = __builtin_cpu_supports("avx") != 0;
		__atomic_store_n(&avx, a, __ATOMIC_RELAXED);
	}
	if (a)
		__asm__ volatile("vzeroupper");
#endif
}

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
	if (b.len > SHORT_INPUT)
		vector_clear();
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
	/* Even a short update may complete a buffered stripe. */
	if (b.len)
		vector_clear();
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
	XXH128_hash_t h = XXH3_128bits_digest(o->st);
	/* The digest may accumulate the last buffered stripe. */
	vector_clear();
	return digest_bytes(h);
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
