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

/* A call's encoding (docs/python.md, "Memoize keys"), grown as needed. */
struct enc {
	unsigned char *p;
	size_t len, cap;
	unsigned char small[512];
};

static int enc_put(struct enc *e, const void *data, size_t n)
{
	if (e->len + n > e->cap) {
		size_t cap = e->cap * 2 > e->len + n ? e->cap * 2 : e->len + n;
		unsigned char *p = e->p == e->small ? PyMem_Malloc(cap)
						    : PyMem_Realloc(e->p, cap);
		if (!p) {
			PyErr_NoMemory();
			return -1;
		}
		if (e->p == e->small)
			memcpy(p, e->small, e->len);
		e->p = p;
		e->cap = cap;
	}
	memcpy(e->p + e->len, data, n);
	e->len += n;
	return 0;
}

/* tag, the length as 8 bytes little-endian, the data: argkey's blob(). */
static int enc_blob(struct enc *e, char tag, const void *data, size_t n)
{
	unsigned char head[9];
	head[0] = (unsigned char)tag;
	for (int i = 0; i < 8; i++)
		head[1 + i] = (unsigned char)((uint64_t)n >> (8 * i));
	if (enc_put(e, head, sizeof head) < 0)
		return -1;
	return enc_put(e, data, n);
}

static int enc_f64(struct enc *e, double d)
{
	uint64_t u;
	unsigned char le[8];
	memcpy(&u, &d, sizeof u);
	for (int i = 0; i < 8; i++)
		le[i] = (unsigned char)(u >> (8 * i));
	return enc_put(e, le, sizeof le);
}

/* Values at least this long are left to argkey, which streams them into
 * the hasher instead of copying them (its _BIG). */
#define PLAIN_MAX ((Py_ssize_t)64 * 1024)

/* 1 encoded, 0 not a plain value (argkey encodes it), -1 error. The
 * bytes are exactly argkey._plain's: test_argkey_pinned checks both. */
static int enc_plain(struct enc *e, PyObject *x)
{
	if (x == Py_None)
		return enc_put(e, "N", 1) < 0 ? -1 : 1;
	if (PyBool_Check(x))
		return enc_put(e, x == Py_True ? "T" : "F", 1) < 0 ? -1 : 1;
	if (PyLong_CheckExact(x)) {
		int overflow;
		long long v = PyLong_AsLongLongAndOverflow(x, &overflow);
		if (overflow)
			return 0; /* a big int: argkey's to_bytes */
		if (v == -1 && PyErr_Occurred())
			return -1;
		/* x.to_bytes((x.bit_length() + 8) // 8, "little", signed=True):
		 * bit_length is that of |x|. */
		unsigned long long mag = v < 0 ? 0ULL - (unsigned long long)v
					       : (unsigned long long)v;
		size_t bits = 0;
		while (bits < 64 && mag >> bits)
			bits++;
		size_t n = (bits + 8) / 8;
		unsigned char le[9];
		unsigned long long u = (unsigned long long)v;
		for (size_t i = 0; i < n; i++)
			le[i] = i < 8 ? (unsigned char)(u >> (8 * i))
				      : (v < 0 ? 0xff : 0);
		return enc_blob(e, 'i', le, n) < 0 ? -1 : 1;
	}
	if (PyUnicode_CheckExact(x)) {
		Py_ssize_t n;
		const char *s = PyUnicode_AsUTF8AndSize(x, &n);
		if (!s) {
			/* Lone surrogates: argkey's "surrogatepass" encoding.
			 */
			PyErr_Clear();
			return 0;
		}
		if (n >= PLAIN_MAX)
			return 0;
		return enc_blob(e, 's', s, (size_t)n) < 0 ? -1 : 1;
	}
	if (PyBytes_CheckExact(x) || PyByteArray_CheckExact(x)) {
		int bytes = PyBytes_CheckExact(x);
		Py_ssize_t n =
		    bytes ? PyBytes_GET_SIZE(x) : PyByteArray_GET_SIZE(x);
		if (n >= PLAIN_MAX)
			return 0;
		const char *s =
		    bytes ? PyBytes_AS_STRING(x) : PyByteArray_AS_STRING(x);
		return enc_blob(e, bytes ? 'b' : 'y', s, (size_t)n) < 0 ? -1
									: 1;
	}
	if (PyFloat_CheckExact(x)) {
		if (enc_put(e, "f", 1) < 0 ||
		    enc_f64(e, PyFloat_AS_DOUBLE(x)) < 0)
			return -1;
		return 1;
	}
	if (PyComplex_CheckExact(x)) {
		Py_complex c = PyComplex_AsCComplex(x);
		if (enc_put(e, "c", 1) < 0 || enc_f64(e, c.real) < 0 ||
		    enc_f64(e, c.imag) < 0)
			return -1;
		return 1;
	}
	return 0;
}

PyObject *pyl_plain_digest(PyObject *mod, PyObject *args)
{
	PyObject *names, *values, *out = NULL;
	struct enc e;
	(void)mod;
	if (!PyArg_ParseTuple(args, "O!O!", &PyTuple_Type, &names, &PyList_Type,
			      &values))
		return NULL;
	if (PyTuple_GET_SIZE(names) != PyList_GET_SIZE(values)) {
		PyErr_SetString(PyExc_ValueError,
				"plain_digest: one name per value");
		return NULL;
	}
	e.p = e.small;
	e.len = 0;
	e.cap = sizeof e.small;
	for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(names); i++) {
		char *name;
		Py_ssize_t n;
		if (PyBytes_AsStringAndSize(PyTuple_GET_ITEM(names, i), &name,
					    &n) < 0)
			goto out;
		if (enc_put(&e, name, (size_t)n) < 0)
			goto out;
		int r = enc_plain(&e, PyList_GET_ITEM(values, i));
		if (r < 0)
			goto out;
		if (r == 0) {
			out = Py_NewRef(Py_None);
			goto out;
		}
	}
	XXH128_hash_t h = XXH3_128bits(e.p, e.len);
	if (e.len > SHORT_INPUT)
		vector_clear();
	out = digest_bytes(h);
out:
	if (e.p != e.small)
		PyMem_Free(e.p);
	return out;
}
