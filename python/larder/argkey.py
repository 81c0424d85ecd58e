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
import weakref

__all__ = ["func_id", "args_digest", "KeyMaker"]

# Arrays that are not contiguous are hashed in C-order slabs of this size.
_SLAB = 8 << 20

# Pieces of an encoding at least this long go to the hasher as they are;
# smaller ones are joined first (one hasher call for a call's plain values).
_BIG = 64 << 10

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


def _xxh3_128():
    global _xxh
    if _xxh is None:
        from larder._larder import xxh3_128 as _xxh
    return _xxh


_xxh = None


def _plain_digest():
    global _plain_digest_c
    if _plain_digest_c is None:
        from larder._larder import plain_digest as _plain_digest_c
    return _plain_digest_c


_plain_digest_c = None


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


class _Sink:
    """Where a call's encoding goes: small pieces are kept and joined, so
    that the hasher sees one update for the plain values of a call; a large
    buffer (an array's data) goes to the hasher as it is, never copied.
    Either way the hasher is fed the same bytes in the same order, so the
    digest does not depend on how they were cut."""

    def __init__(self, hasher, parts=None):
        self.factory = hasher
        self.h = None
        self.parts = [] if parts is None else parts

    def update(self, b):
        if len(b) < _BIG:
            self.parts.append(b)
            return
        self.flush()
        self.h.update(b)

    def flush(self):
        if self.h is None:
            self.h = (self.factory or _default_hasher)()
        if self.parts:
            self.h.update(b"".join(self.parts))
            self.parts.clear()

    def digest(self):
        if self.h is None and self.factory is None:
            # XXH3's one-shot and streaming forms give the same digest:
            # a call made only of small values is hashed in one go.
            return _xxh3_128()(b"".join(self.parts))
        self.flush()
        return self.h.digest()


def _plain(x):
    """The encoding of a value of a plain type in one piece (the same bytes
    as _Encoder.blob gives in two), or None for any other value or a long
    one. Most arguments are plain: they are encoded without an _Encoder."""
    t = type(x)
    if t is int:
        d = x.to_bytes((x.bit_length() + 8) // 8, "little", signed=True)
        return b"i" + _u64(len(d)) + d
    if t is str:
        d = x.encode("utf-8", "surrogatepass")
        return b"s" + _u64(len(d)) + d if len(d) < _BIG else None
    if x is None:
        return b"N"
    if t is float:
        return b"f" + _f64(x)
    if t is bool:
        return b"T" if x else b"F"
    if t is bytes or t is bytearray:
        if len(x) >= _BIG:
            return None
        return (b"b" if t is bytes else b"y") + _u64(len(x)) + x
    if t is complex:
        return b"c" + _f64(x.real) + _f64(x.imag)
    return None


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
        p = _plain(x)
        if p is not None:
            self.h.update(p)
            return
        t = type(x)
        h = self.h
        if t is str:
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


class KeyMaker:
    """The digest of calls of one function: its signature is read once,
    here, and each call is bound to it without building an
    inspect.BoundArguments (the same binding, so the same bytes, as
    Signature.bind and apply_defaults give; anything unusual is left to
    them)."""

    def __init__(self, func, ignore=()):
        self.read(func, ignore)

    def read(self, func, ignore):
        if inspect.ismethod(func):
            self.self_ = func.__self__
            func = func.__func__
        else:
            self.self_ = _NO_SELF
        self.func = func
        # Defaults replaced after this read make another signature: they
        # are compared by identity on each call (the tuple is the same
        # object until it is replaced).
        self.defaults = _defaults(func)
        self.sig = sig = inspect.signature(func)
        if isinstance(ignore, str):
            ignore = (ignore,)
        self.ignore = ignore = frozenset(ignore)
        unknown = ignore - set(sig.parameters)
        if unknown:
            name = getattr(func, "__qualname__", func)
            raise ValueError("ignore names no parameter of %s: %s" % (name, ", ".join(sorted(unknown))))
        P = inspect.Parameter
        params = list(sig.parameters.values())
        # One slot per parameter, in the signature's order (the order
        # BoundArguments.arguments has after apply_defaults).
        self.template = []
        self.npos = 0
        self.varpos = self.varkw = None
        self.by_name = {}
        self.required = []
        for i, p in enumerate(params):
            if p.kind == P.VAR_POSITIONAL:
                self.varpos = i
                self.template.append(())
                continue
            if p.kind == P.VAR_KEYWORD:
                self.varkw = i
                self.template.append(None)  # a fresh dict per call
                continue
            if p.kind in (P.POSITIONAL_ONLY, P.POSITIONAL_OR_KEYWORD):
                self.npos = i + 1
            if p.kind != P.POSITIONAL_ONLY:
                self.by_name[p.name] = i
            if p.default is P.empty:
                self.required.append(i)
                self.template.append(_MISSING)
            else:
                self.template.append(p.default)
        # The name of every parameter hashed, encoded once.
        self.names = []
        for i, p in enumerate(params):
            if p.name not in ignore:
                d = p.name.encode("utf-8", "surrogatepass")
                self.names.append((i, b"s" + _u64(len(d)) + d))
        self.name_bytes = tuple(enc for _, enc in self.names)
        # The values the digest takes are vals itself when none is ignored.
        self.all_named = len(self.names) == len(params)

    def bind(self, args, kwargs):
        """The parameters' values in order, or None where the call is one
        the fast binding leaves to inspect (an error, most often)."""
        n = len(args)
        npos = self.npos
        vals = self.template.copy()
        if n > npos:
            if self.varpos is None:
                return None
            vals[:npos] = args[:npos]
            vals[self.varpos] = tuple(args[npos:])
        else:
            vals[:n] = args
        if self.varkw is not None:
            vals[self.varkw] = extra = {}
        for k, v in kwargs.items():
            i = self.by_name.get(k)
            if i is None:
                if self.varkw is None:
                    return None
                extra[k] = v
            elif i < n and i < npos:
                return None  # given twice
            else:
                vals[i] = v
        for i in self.required:
            if vals[i] is _MISSING:
                return None
        return vals

    def slow_bind(self, args, kwargs):
        try:
            bound = self.sig.bind(*args, **kwargs)
        except TypeError as e:
            raise TypeError("%s: %s" % (getattr(self.func, "__qualname__", self.func), e)) from None
        bound.apply_defaults()
        return list(bound.arguments.values())

    def digest(self, args, kwargs, hasher=None):
        """Digest (bytes) of a call's arguments, bound and hashed by content."""
        if _defaults(self.func) != self.defaults:
            self.read(self.func if self.self_ is _NO_SELF else self.func.__get__(self.self_), self.ignore)
        if self.self_ is not _NO_SELF:
            args = (self.self_,) + tuple(args)
        vals = self.bind(args, kwargs)
        if vals is None:
            vals = self.slow_bind(args, kwargs)
        if hasher is None:
            # The extension encodes plain values as _plain does, and
            # hashes them (None: a value it leaves to the encoder here).
            d = _plain_digest()(self.name_bytes, vals if self.all_named else [vals[i] for i, _ in self.names])
            if d is not None:
                return d
        parts = []
        enc = None
        for i, name in self.names:
            parts.append(name)
            p = _plain(vals[i])
            if p is not None:
                parts.append(p)
                continue
            if enc is None:
                # Other values stream into the same pieces (a large
                # buffer straight to the hasher, after what precedes it).
                enc = _Encoder(_Sink(hasher, parts))
            enc.value(vals[i])
        if enc is not None:
            return enc.h.digest()
        if hasher is None:
            # XXH3's one-shot and streaming forms give the same digest.
            return _xxh3_128()(b"".join(parts))
        h = hasher()
        h.update(b"".join(parts))
        return h.digest()


_NO_SELF = object()
_MISSING = object()

# KeyMakers of functions args_digest has seen, while those functions live.
_makers = weakref.WeakKeyDictionary()


def args_digest(func, args, kwargs, ignore=(), hasher=None):
    """Digest (bytes) of func's arguments, bound and hashed by content."""
    if inspect.ismethod(func):
        args = (func.__self__,) + tuple(args)
        func = func.__func__
    if isinstance(ignore, str):
        ignore = (ignore,)
    ignore = frozenset(ignore)
    try:
        per_func = _makers.get(func)
    except TypeError:  # not weakly referable: not kept
        per_func = None
    maker = None if per_func is None else per_func.get(ignore)
    if maker is None:
        maker = KeyMaker(func, ignore)
        try:
            _makers.setdefault(func, {})[ignore] = maker
        except TypeError:
            pass
    return maker.digest(args, kwargs, hasher)


class _Same:
    """Compares by identity: a default that is an array is not compared
    by content (nor asked for a truth value)."""

    __slots__ = ("obj",)

    def __init__(self, obj):
        self.obj = obj

    def __eq__(self, other):
        return self.obj is other.obj


def _defaults(func):
    return _Same(getattr(func, "__defaults__", None)), _Same(getattr(func, "__kwdefaults__", None))
