/*
 * module.c — the module larder._larder: its exceptions (one table from
 * larder's codes), the argument helpers every method uses, the outcome
 * enum and run_key(), which needs no store.
 */
#include "pylarder.h"

#include <math.h>

PyObject *pyl_Error;
PyObject *pyl_NotStoredWarning;
PyObject *pyl_outcomes[6];

/* One exception per code, all under larder.Error; a bad argument is
 * also a ValueError and a failure of the system (full, permission, I/O)
 * also an OSError, so that generic handlers catch them. */
static struct {
	int rc;
	const char *name;
	int base; /* 0: Error only, 1: + ValueError, 2: + OSError */
	PyObject *type;
} errors[] = {
    {LARDER_EINVAL, "InvalidError", 1, NULL},
    {LARDER_ENOTFOUND, "NotFoundError", 0, NULL},
    {LARDER_EBUSY, "BusyError", 0, NULL},
    {LARDER_ETIMEOUT, "WaitTimeoutError", 0, NULL},
    {LARDER_ECORRUPT, "CorruptError", 0, NULL},
    {LARDER_EVERSION, "NewerFormatError", 0, NULL},
    {LARDER_EFULL, "FullError", 2, NULL},
    {LARDER_EPERM, "PermissionDeniedError", 2, NULL},
    {LARDER_ENOMEM, "NoMemoryError", 0, NULL},
    {LARDER_EIO, "IOFailureError", 2, NULL},
    {LARDER_ESTALE, "StaleError", 2, NULL},
    {LARDER_ENOTSTORE, "NotAStoreError", 0, NULL},
    {LARDER_ECANCELED, "CanceledError", 0, NULL},
    {LARDER_EUSER, "CallbackError", 0, NULL},
};
#define NERRORS (sizeof(errors) / sizeof(errors[0]))

static PyObject *error_type(int rc)
{
	for (size_t i = 0; i < NERRORS; i++)
		if (errors[i].rc == rc)
			return errors[i].type;
	return pyl_Error;
}

static PyObject *raise_with(int rc, const char *msg, int err)
{
	PyObject *type = error_type(rc);
	PyObject *exc = PyObject_CallFunction(type, "s", msg);
	if (!exc)
		return NULL;
	PyObject *code = PyLong_FromLong(rc);
	PyObject *eno = PyLong_FromLong(err);
	/* errno is also OSError's own attribute: set ours after. */
	if (!code || !eno || PyObject_SetAttrString(exc, "code", code) < 0 ||
	    PyObject_SetAttrString(exc, "errno", eno) < 0) {
		Py_XDECREF(code);
		Py_XDECREF(eno);
		Py_DECREF(exc);
		return NULL;
	}
	Py_DECREF(code);
	Py_DECREF(eno);
	PyErr_SetObject(type, exc);
	Py_DECREF(exc);
	return NULL;
}

PyObject *pyl_raise(const larder *db, int rc)
{
	const char *msg = larder_errmsg(db);
	if (!msg || !*msg)
		msg = larder_strerror(rc);
	return raise_with(rc, msg, larder_errno(db));
}

PyObject *pyl_raise_msg(int rc, const char *msg)
{
	return raise_with(rc, msg, 0);
}

int pyl_warn_not_stored(const larder *db, int stacklevel)
{
	return PyErr_WarnFormat(pyl_NotStoredWarning, stacklevel,
				"not stored: %s", larder_errmsg(db));
}

PyObject *pyl_published(const larder *db, int rc, int stacklevel)
{
	if (rc == LARDER_EFULL || rc == LARDER_EPERM) {
		if (pyl_warn_not_stored(db, stacklevel) < 0)
			return NULL;
		Py_RETURN_FALSE;
	}
	if (rc < 0)
		return pyl_raise(db, rc);
	return PyBool_FromLong(rc == 0);
}

PyObject *pyl_exit_false(PyObject *r)
{
	if (!r)
		return NULL;
	Py_DECREF(r);
	Py_RETURN_FALSE;
}

int pyl_bytes_get(pyl_bytes *out, PyObject *obj, const char *what, int none_ok)
{
	memset(out, 0, sizeof(*out));
	if (obj == NULL || obj == Py_None) {
		if (none_ok)
			return 0;
		PyErr_Format(PyExc_TypeError,
			     "%s must be str or bytes, not None", what);
		return -1;
	}
	if (PyUnicode_Check(obj)) {
		/* The UTF-8 form is cached in the str: valid while it is. */
		out->p = PyUnicode_AsUTF8AndSize(obj, &out->n);
		return out->p ? 0 : -1;
	}
	if (PyObject_CheckBuffer(obj)) {
		if (PyObject_GetBuffer(obj, &out->view, PyBUF_SIMPLE) < 0)
			return -1;
		out->has_view = 1;
		out->p = out->view.buf;
		out->n = out->view.len;
		return 0;
	}
	PyErr_Format(PyExc_TypeError, "%s must be str or bytes, not %.100s",
		     what, Py_TYPE(obj)->tp_name);
	return -1;
}

void pyl_bytes_release(pyl_bytes *b)
{
	if (b->has_view)
		PyBuffer_Release(&b->view);
	b->has_view = 0;
}

int pyl_ttl(int64_t *out, PyObject *obj)
{
	*out = 0;
	if (obj == NULL || obj == Py_None)
		return 0;
	if (PyBool_Check(obj) || !PyNumber_Check(obj)) {
		PyErr_Format(PyExc_TypeError,
			     "ttl must be a number of seconds, not %.100s",
			     Py_TYPE(obj)->tp_name);
		return -1;
	}
	double t = PyFloat_AsDouble(obj);
	if (t == -1.0 && PyErr_Occurred())
		return -1;
	if (t == LARDER_TTL_NEVER) {
		*out = LARDER_TTL_NEVER;
		return 0;
	}
	if (!(t > 0) || !isfinite(t) || t > 1e15) {
		PyErr_SetString(PyExc_ValueError,
				"ttl must be a positive number of seconds, "
				"None (the namespace's default) or "
				"larder.NEVER");
		return -1;
	}
	*out = (int64_t)ceil(t);
	return 0;
}

/* A list of str/PathLike, as NUL-terminated strings owned by `keep` (a
 * list of bytes objects). */
static int str_list(const char ***out, size_t *n, PyObject *seq, PyObject *keep,
		    const char *what, int fs)
{
	PyObject *fast = PySequence_Fast(seq, "");
	if (!fast) {
		PyErr_Format(PyExc_TypeError, "%s must be a sequence of str",
			     what);
		return -1;
	}
	Py_ssize_t len = PySequence_Fast_GET_SIZE(fast);
	const char **v = PyMem_Calloc((size_t)len + 1, sizeof(*v));
	if (!v) {
		Py_DECREF(fast);
		PyErr_NoMemory();
		return -1;
	}
	for (Py_ssize_t i = 0; i < len; i++) {
		PyObject *item = PySequence_Fast_GET_ITEM(fast, i);
		PyObject *b = NULL;
		if (fs) {
			if (!PyUnicode_FSConverter(item, &b))
				goto fail;
		} else if (PyUnicode_Check(item)) {
			b = PyUnicode_AsUTF8String(item);
		} else if (PyBytes_Check(item)) {
			b = Py_NewRef(item);
		} else {
			PyErr_Format(PyExc_TypeError,
				     "%s must hold str, not %.100s", what,
				     Py_TYPE(item)->tp_name);
			goto fail;
		}
		if (!b || PyList_Append(keep, b) < 0) {
			Py_XDECREF(b);
			goto fail;
		}
		Py_DECREF(b);
		if ((Py_ssize_t)strlen(PyBytes_AS_STRING(b)) !=
		    PyBytes_GET_SIZE(b)) {
			PyErr_Format(PyExc_ValueError, "%s: embedded NUL byte",
				     what);
			goto fail;
		}
		v[i] = PyBytes_AS_STRING(b);
	}
	Py_DECREF(fast);
	*out = v;
	*n = (size_t)len;
	return 0;
fail:
	Py_DECREF(fast);
	PyMem_Free(v);
	return -1;
}

PyObject *pyl_str_list_export(const char ***out, size_t *n, PyObject *seq,
			      const char *what, int fs)
{
	PyObject *keep = PyList_New(0);
	if (!keep)
		return NULL;
	if (str_list(out, n, seq, keep, what, fs) < 0) {
		Py_DECREF(keep);
		return NULL;
	}
	return keep;
}

PyObject *pyl_run_key(PyObject *mod, PyObject *args, PyObject *kw)
{
	static char *kwlist[] = {"argv",	   "key", "cwd",
				 "inputs",	   "env", "version_cmd",
				 "cache_failures", NULL};
	PyObject *argv = Py_None, *key = Py_None, *cwd = Py_None;
	PyObject *inputs = NULL, *env = NULL, *vcmd = Py_None;
	int cache_failures = 0;
	larder_run_spec spec = LARDER_RUN_SPEC_INIT;
	PyObject *keep = NULL, *cwd_b = NULL, *res = NULL;
	const char **av = NULL, **in = NULL, **ev = NULL;
	char *out = NULL;
	size_t outlen = 0;
	(void)mod;

	if (!PyArg_ParseTupleAndKeywords(args, kw, "|O$OOOOOp", kwlist, &argv,
					 &key, &cwd, &inputs, &env, &vcmd,
					 &cache_failures))
		return NULL;
	keep = PyList_New(0);
	if (!keep)
		return NULL;
	if (key != Py_None) {
		if (!PyUnicode_Check(key)) {
			PyErr_SetString(PyExc_TypeError, "key must be str");
			goto out;
		}
		spec.key = PyUnicode_AsUTF8(key);
		if (!spec.key)
			goto out;
	} else {
		if (argv == Py_None) {
			PyErr_SetString(PyExc_TypeError,
					"run_key() needs argv or key=");
			goto out;
		}
		if (str_list(&av, &spec.argc, argv, keep, "argv", 0) < 0)
			goto out;
		if (spec.argc == 0) {
			PyErr_SetString(PyExc_ValueError,
					"argv must not be empty");
			goto out;
		}
		spec.argv = av;
		/* `larder run` keys a command by the directory it runs in. */
		if (cwd == Py_None) {
			PyObject *os = PyImport_ImportModule("os");
			cwd =
			    os ? PyObject_CallMethod(os, "getcwd", NULL) : NULL;
			Py_XDECREF(os);
			if (!cwd)
				goto out;
		} else {
			Py_INCREF(cwd);
		}
		int ok = PyUnicode_FSConverter(cwd, &cwd_b);
		Py_DECREF(cwd);
		if (!ok)
			goto out;
		spec.cwd = PyBytes_AS_STRING(cwd_b);
	}
	if (inputs &&
	    str_list(&in, &spec.ninputs, inputs, keep, "inputs", 1) < 0)
		goto out;
	spec.inputs = in;
	if (env && str_list(&ev, &spec.nenv, env, keep, "env", 0) < 0)
		goto out;
	spec.env = ev;
	if (vcmd != Py_None) {
		if (!PyUnicode_Check(vcmd)) {
			PyErr_SetString(PyExc_TypeError,
					"version_cmd must be str");
			goto out;
		}
		spec.version_cmd = PyUnicode_AsUTF8(vcmd);
		if (!spec.version_cmd)
			goto out;
	}
	spec.cache_failures = cache_failures;
	int rc = larder_run_key(&out, &outlen, &spec);
	if (rc < 0) {
		pyl_raise_msg(rc, "cannot make the run's key");
		goto out;
	}
	res = PyBytes_FromStringAndSize(out, (Py_ssize_t)outlen);
out:
	larder_run_key_free(out);
	PyMem_Free(av);
	PyMem_Free(in);
	PyMem_Free(ev);
	Py_XDECREF(cwd_b);
	Py_XDECREF(keep);
	return res;
}

static PyObject *mod_version(PyObject *mod, PyObject *unused)
{
	(void)mod;
	(void)unused;
	return PyUnicode_FromString(larder_version());
}

static PyMethodDef module_methods[] = {
    {"run_key", (PyCFunction)(void (*)(void))pyl_run_key,
     METH_VARARGS | METH_KEYWORDS,
     "run_key(argv=None, *, key=None, cwd=None, inputs=(), env=(), "
     "version_cmd=None, cache_failures=False) -> bytes\n\n"
     "The key `larder run` gives this run (docs/cli.md)."},
    {"xxh3_128", pyl_xxh3_128, METH_O,
     "xxh3_128(buffer) -> bytes: the XXH3-128 digest (16 bytes, "
     "big-endian canonical form)."},
    {"plain_digest", pyl_plain_digest, METH_VARARGS,
     "plain_digest(names, values) -> bytes or None: XXH3-128 of each "
     "name (encoded) followed by its value's encoding, when every value "
     "is of a plain type (larder.argkey; None otherwise)."},
    {"library_version", mod_version, METH_NOARGS,
     "The version of the liblarder in use."},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    "larder._larder",
    "The C core of the larder binding, over include/larder.h.",
    -1,
    module_methods,
    NULL,
    NULL,
    NULL,
    NULL};

static int add_errors(PyObject *m)
{
	PyObject *dict =
	    Py_BuildValue("{s:O,s:O}", "code", Py_None, "errno", Py_None);
	if (!dict)
		return -1;
	pyl_Error = PyErr_NewExceptionWithDoc(
	    "larder.Error",
	    "Every larder failure: .code is larder's code, "
	    ".errno the OS errno behind it (0 if none).",
	    NULL, dict);
	Py_DECREF(dict);
	if (!pyl_Error || PyModule_AddObjectRef(m, "Error", pyl_Error) < 0)
		return -1;
	for (size_t i = 0; i < NERRORS; i++) {
		PyObject *bases;
		char name[64];
		if (errors[i].base == 1)
			bases = PyTuple_Pack(2, pyl_Error, PyExc_ValueError);
		else if (errors[i].base == 2)
			bases = PyTuple_Pack(2, pyl_Error, PyExc_OSError);
		else
			bases = PyTuple_Pack(1, pyl_Error);
		if (!bases)
			return -1;
		snprintf(name, sizeof(name), "larder.%s", errors[i].name);
		errors[i].type = PyErr_NewException(name, bases, NULL);
		Py_DECREF(bases);
		if (!errors[i].type ||
		    PyModule_AddObjectRef(m, errors[i].name, errors[i].type) <
			0)
			return -1;
	}
	pyl_NotStoredWarning = PyErr_NewExceptionWithDoc(
	    "larder.NotStoredWarning",
	    "The data could not be cached (disk full, read-only store); "
	    "the caller keeps it.",
	    PyExc_UserWarning, NULL);
	if (!pyl_NotStoredWarning ||
	    PyModule_AddObjectRef(m, "NotStoredWarning", pyl_NotStoredWarning) <
		0)
		return -1;
	return 0;
}

/* Outcome, a str enum: its members compare equal to "hit", ... */
static int add_outcomes(PyObject *m)
{
	static const char *const names[][2] = {
	    {NULL, NULL},	  {"HIT", "hit"},
	    {"FILLED", "filled"}, {"WAITED", "waited"},
	    {"STALE", "stale"},	  {"FILLED_UNCACHED", "filled-uncached"}};
	PyObject *enum_mod = PyImport_ImportModule("enum");
	PyObject *members = PyList_New(0), *cls = NULL;
	PyObject *args = NULL, *kw = NULL, *fn = NULL;
	int rc = -1;
	if (!enum_mod || !members)
		goto out;
	for (int i = 1; i < 6; i++) {
		PyObject *t = Py_BuildValue("(ss)", names[i][0], names[i][1]);
		if (!t || PyList_Append(members, t) < 0) {
			Py_XDECREF(t);
			goto out;
		}
		Py_DECREF(t);
	}
	/* StrEnum (3.11): str(outcome) is "hit", as in the CLI's output;
	 * before it, a str-mixed Enum (equal to "hit", printed otherwise). */
	args = Py_BuildValue("(sO)", "Outcome", members);
	fn = PyObject_GetAttrString(enum_mod, "StrEnum");
	if (fn) {
		kw = Py_BuildValue("{s:s,s:s}", "module", "larder", "qualname",
				   "Outcome");
	} else {
		PyErr_Clear();
		fn = PyObject_GetAttrString(enum_mod, "Enum");
		kw = Py_BuildValue("{s:O,s:s,s:s}", "type",
				   (PyObject *)&PyUnicode_Type, "module",
				   "larder", "qualname", "Outcome");
	}
	if (!fn || !args || !kw)
		goto out;
	cls = PyObject_Call(fn, args, kw);
	if (!cls)
		goto out;
	for (int i = 1; i < 6; i++) {
		pyl_outcomes[i] = PyObject_GetAttrString(cls, names[i][0]);
		if (!pyl_outcomes[i])
			goto out;
	}
	rc = PyModule_AddObjectRef(m, "Outcome", cls);
out:
	Py_XDECREF(enum_mod);
	Py_XDECREF(members);
	Py_XDECREF(fn);
	Py_XDECREF(args);
	Py_XDECREF(kw);
	Py_XDECREF(cls);
	return rc;
}

static int add_types(PyObject *m)
{
	static const struct {
		const char *name;
		PyTypeObject *type;
	} types[] = {{"Store", &Store_Type},
		     {"Entry", &Entry_Type},
		     {"Writer", &Writer_Type},
		     {"Hasher", &Hasher_Type}};
	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
		if (PyType_Ready(types[i].type) < 0 ||
		    PyModule_AddObjectRef(m, types[i].name,
					  (PyObject *)types[i].type) < 0)
			return -1;
	return 0;
}

PyMODINIT_FUNC PyInit__larder(void);
PyMODINIT_FUNC PyInit__larder(void)
{
	PyObject *m = PyModule_Create(&module_def);
	if (!m)
		return NULL;
	if (add_errors(m) < 0 || add_outcomes(m) < 0 || add_types(m) < 0 ||
	    PyModule_AddIntConstant(m, "NEVER", LARDER_TTL_NEVER) < 0 ||
	    PyModule_AddStringConstant(m, "RUN_FORMAT", LARDER_RUN_FORMAT) <
		0) {
		Py_DECREF(m);
		return NULL;
	}
	return m;
}
