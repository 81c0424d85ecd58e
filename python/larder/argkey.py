"""Memoize keys: a function's identity and its arguments, hashed by content.

docs/python.md, "Memoize keys", says how each type of value is hashed and
what makes two calls key alike. A memoized call's key is made of
``func_id(func)`` (``"module:qualified.name"``; a lambda or nested
function is refused) and ``args_digest(func, args, kwargs, ignore)``.
The hasher is any streaming object with ``update(buffer)`` and
``digest()``, made by the ``hasher`` factory; the default is larder's
XXH3-128 (``larder._larder.Hasher``), fast on large arrays.
"""

import dataclasses
import inspect
import os
import pickle
import struct
import sys

__all__ = ["func_id", "args_digest"]

# Arrays that are not contiguous are hashed in C-order slabs of this size.
_SLAB = 8 << 20

_u64 = struct.Struct("<Q").pack
_f64 = struct.Struct("<d").pack


def func_id(func):
    """'module:qualified.name' of a module-level function or method."""
    if inspect.ismethod(func):
        func = func.__func__
    module = getattr(func, "__module__", None)
    qualname = getattr(func, "__qualname__", None)
    if not isinstance(qualname, str) or not isinstance(module, str):
        raise TypeError("cannot name %r for a memoize key: it has no module and qualified name" % (func,))
    if "<lambda>" in qualname or "<locals>" in qualname:
        raise ValueError(
            "cannot memoize %s.%s: a lambda or a function defined inside another one "
            "has no name another process can find; define it at module level" % (module, qualname)
        )
    if module == "__main__":
        main = sys.modules.get("__main__")
        path = getattr(main, "__file__", None)
        if path:
            module = "__main__(%s)" % os.path.basename(path)
    return "%s:%s" % (module, qualname)


def _default_hasher():
    from larder._larder import Hasher

    return Hasher()


class _Collect:
    """A sink that keeps what is written, to sort encodings."""

    def __init__(self):
        self.parts = []

    def update(self, b):
        self.parts.append(bytes(b))

    def value(self):
        return b"".join(self.parts)


def _pickle_fast(obj):
    import io

    f = io.BytesIO()
    p = pickle.Pickler(f, protocol=5)
    # Without the memo, equal content pickles to equal bytes whether or
    # not its parts are shared objects; a cyclic object needs the memo.
    p.fast = True
    try:
        p.dump(obj)
    except (ValueError, RecursionError):
        return pickle.dumps(obj, protocol=5)
    return f.getvalue()


class _Encoder:
    def __init__(self, sink):
        self.h = sink
        self.np = sys.modules.get("numpy")
        self.pd = sys.modules.get("pandas")

    def blob(self, tag, data):
        self.h.update(tag + _u64(len(data)))
        if len(data):
            self.h.update(data)

    def text(self, s):
        self.blob(b"s", s.encode("utf-8", "surrogatepass"))

    def sorted_encodings(self, items):
        out = []
        for x in items:
            c = _Collect()
            _Encoder(c).value(x)
            out.append(c.value())
        out.sort()
        return out

    def value(self, x):
        t = type(x)
        h = self.h
        if x is None:
            h.update(b"N")
        elif t is bool:
            h.update(b"T" if x else b"F")
        elif t is int:
            self.blob(b"i", x.to_bytes((x.bit_length() + 8) // 8, "little", signed=True))
        elif t is float:
            h.update(b"f" + _f64(x))
        elif t is complex:
            h.update(b"c" + _f64(x.real) + _f64(x.imag))
        elif t is str:
            self.text(x)
        elif t is bytes:
            self.blob(b"b", x)
        elif t is bytearray:
            self.blob(b"y", x)
        elif t is memoryview:
            self.blob(b"m", x.tobytes())
        elif t is tuple or t is list:
            h.update((b"(" if t is tuple else b"[") + _u64(len(x)))
            for v in x:
                self.value(v)
        elif t is dict:
            keys = {}
            for k in x:
                c = _Collect()
                _Encoder(c).value(k)
                keys[c.value()] = k
            h.update(b"{" + _u64(len(x)))
            for enc in sorted(keys):
                h.update(enc)
                self.value(x[keys[enc]])
        elif t is set or t is frozenset:
            encs = self.sorted_encodings(x)
            h.update((b"S" if t is set else b"Z") + _u64(len(encs)))
            for e in encs:
                h.update(e)
        elif self.np is not None and isinstance(x, (self.np.ndarray, self.np.generic)):
            self.numpy(x)
        elif self.pd is not None and isinstance(x, (self.pd.DataFrame, self.pd.Series, self.pd.Index)):
            self.pandas(x)
        elif dataclasses.is_dataclass(x) and not isinstance(x, type):
            fields = dataclasses.fields(x)
            self.blob(b"D", _type_name(t).encode())
            h.update(_u64(len(fields)))
            for f in fields:
                self.text(f.name)
                self.value(getattr(x, f.name))
        else:
            self.blob(b"P", _type_name(t).encode())
            self.blob(b"p", _pickle_fast(x))

    def numpy(self, x):
        np = self.np
        if isinstance(x, np.generic):
            self.blob(b"a", _dtype_name(x.dtype))
            arr = np.asarray(x)
            if x.dtype.hasobject:
                self.blob(b"p", _pickle_fast(x))
            else:
                self.blob(b"r", arr.reshape(-1).view(np.uint8).tobytes())
            return
        if type(x) is not np.ndarray:
            # A subclass (a masked array, say) carries more than its data.
            self.blob(b"P", _type_name(type(x)).encode())
            self.blob(b"p", _pickle_fast(x))
            return
        self.array(x)

    def array(self, x):
        np = self.np
        h = self.h
        self.blob(b"A", _dtype_name(x.dtype))
        h.update(_u64(x.ndim) + b"".join(_u64(d) for d in x.shape))
        if x.dtype.hasobject:
            self.blob(b"p", _pickle_fast(x))
            return
        h.update(b"r" + _u64(x.nbytes))
        if x.size == 0:
            return
        if x.flags.c_contiguous:
            h.update(memoryview(x.reshape(-1).view(np.uint8)))
            return
        # C order, one slab of rows at a time: equal content keys alike
        # whatever the layout, and a strided view is never copied whole.
        rows = max(1, _SLAB // max(1, x[0].nbytes))
        for i in range(0, x.shape[0], rows):
            slab = np.ascontiguousarray(x[i : i + rows])
            h.update(memoryview(slab.reshape(-1).view(np.uint8)))

    def column(self, values):
        """A pandas column's values (an ndarray or an ExtensionArray)."""
        np, pd = self.np, self.pd
        if isinstance(values, np.ndarray):
            self.array(values)
        elif isinstance(values.dtype, np.dtype):
            # numpy-backed extension arrays (naive datetimes, timedeltas):
            # np.asarray is their ndarray, not a copy.
            self.array(np.asarray(values))
        elif isinstance(values, pd.Categorical):
            self.h.update(b"C" + (b"o" if values.ordered else b"u"))
            self.array(np.asarray(values.codes))
            self.index(values.categories)
        else:
            self.blob(b"E", str(values.dtype).encode())
            self.blob(b"p", _pickle_fast(values))

    def index(self, idx):
        pd = self.pd
        # By content, not class: a RangeIndex keys like the equal Int64Index.
        self.h.update(b"I")
        self.value(list(idx.names))
        if isinstance(idx, pd.MultiIndex):
            self.h.update(b"M" + _u64(idx.nlevels))
            for level, codes in zip(idx.levels, idx.codes):
                self.index(level)
                self.array(self.np.asarray(codes))
        else:
            self.column(idx._values)

    def pandas(self, x):
        pd = self.pd
        if isinstance(x, pd.Index):
            self.index(x)
        elif isinstance(x, pd.Series):
            self.blob(b"Q", _type_name(type(x)).encode())
            self.value(x.name)
            self.index(x.index)
            self.column(x.array if not isinstance(x.dtype, self.np.dtype) else x.to_numpy(copy=False))
        else:
            self.blob(b"F", _type_name(type(x)).encode())
            self.index(x.index)
            self.index(x.columns)
            for i in range(x.shape[1]):
                col = x.iloc[:, i]
                self.column(col.array if not isinstance(col.dtype, self.np.dtype) else col.to_numpy(copy=False))


def _type_name(t):
    return "%s.%s" % (t.__module__, t.__qualname__)


def _dtype_name(dt):
    from numpy.lib import format as npf

    return repr(npf.dtype_to_descr(dt)).encode()


def args_digest(func, args, kwargs, ignore=(), hasher=None):
    """Digest (bytes) of func's arguments, bound and hashed by content."""
    if inspect.ismethod(func):
        args = (func.__self__,) + tuple(args)
        func = func.__func__
    sig = inspect.signature(func)
    try:
        bound = sig.bind(*args, **kwargs)
    except TypeError as e:
        raise TypeError("%s: %s" % (getattr(func, "__qualname__", func), e)) from None
    bound.apply_defaults()
    if isinstance(ignore, str):
        ignore = (ignore,)
    ignore = frozenset(ignore)
    unknown = ignore - set(sig.parameters)
    if unknown:
        name = getattr(func, "__qualname__", func)
        raise ValueError("ignore names no parameter of %s: %s" % (name, ", ".join(sorted(unknown))))
    h = (hasher or _default_hasher)()
    enc = _Encoder(h)
    for name, value in bound.arguments.items():
        if name in ignore:
            continue
        enc.text(name)
        enc.value(value)
    return h.digest()
