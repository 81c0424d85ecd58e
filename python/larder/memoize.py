"""store.memoize: a function's results cached in a larder store, filled
once for a herd of threads, processes and hosts (docs/python.md, Memoize).

The key is the function's id and the digest of its arguments (argkey);
the version is made of the memoize format, the serializer, the content
version of the inputs and the result of version(); the fill is
Store.get_or_fill, and the result is serial.load over the entry.
"""

import functools
import inspect
import os
import warnings

from . import _larder, argkey, serial

__all__ = ["memoize", "run_once", "FORMAT"]

# The first word of every memoize version: a change of how versions or
# payloads are made changes it, so old entries are never misread.
FORMAT = "memo/1"

# A user version() result shorter than this, printable and without spaces,
# is put in the version as is (readable in `larder ls`); others are hashed.
_READABLE_MAX = 64


def _user_version(value, name):
    if isinstance(value, str):
        raw = value.encode("utf-8", "surrogatepass")
    elif isinstance(value, (bytes, bytearray, memoryview)):
        raw = bytes(value)
    else:
        raise TypeError("version() of memoized %s returned %s; it must return str or bytes"
                        % (name, type(value).__name__))
    if len(raw) <= _READABLE_MAX and raw.isascii() and raw.decode("ascii").isprintable() and b" " not in raw:
        return "v=" + raw.decode("ascii")
    # Hashed with its type, so b"x" and "x" stay apart like the readable form.
    tag = b"s" if isinstance(value, str) else b"b"
    return "vh=" + _larder.xxh3_128(tag + raw).hex()


def _check_ttl(ttl):
    if ttl is None or ttl == _larder.NEVER:
        return
    if isinstance(ttl, bool) or not isinstance(ttl, (int, float)) or not ttl > 0:
        raise ValueError("memoize: ttl must be a positive number of seconds, larder.NEVER or None, not %r" % (ttl,))


def run_once(store, key, version, func, args, kwargs, *, ttl=None, ns=None, zstd=False, serializer="auto",
             stacklevel=1):
    """func(*args, **kwargs) cached under (key, version) and run once for
    a herd: (entry, outcome, ran), where ran holds func's own return value
    when this call ran it (empty on a hit or a wait). entry is None when
    the function ran and the store failed after it: ran[0] is then the
    result, never lost, and a NotStoredWarning names the line stacklevel
    frames above run_once's caller.

    The one fill path of memoize and of the compat modules."""
    ran = []

    def load():
        result = func(*args, **kwargs)
        ran.append(result)
        # The buffers point into result (a large array is never joined
        # or copied): the binding streams them into the entry.
        _, buffers, _ = serial.dump(result, serializer)
        return buffers

    try:
        entry, outcome = store.get_or_fill(key, version, load, ttl=ttl, ns=ns, zstd=zstd, stacklevel=stacklevel + 1)
    except _larder.Error as e:
        if not ran:
            raise
        # The function ran and the store failed after it (a full disk
        # the library did not turn into a filled-uncached outcome): the
        # result is the caller's all the same.
        warnings.warn(
            _larder.NotStoredWarning("memoize: result of %s not stored: %s" % (argkey.func_id(func), e)),
            stacklevel=stacklevel + 1,
        )
        return None, _larder.Outcome.FILLED_UNCACHED, ran
    return entry, outcome, ran


def memoize(store, func=None, *, ttl=None, inputs=(), version=None, ignore=(), serializer="auto", ns=None):
    """Decorate func so that its results are cached in store.

    Used as @store.memoize or @store.memoize(ttl=..., ...): see
    docs/python.md, Memoize.
    """
    if func is None:
        return functools.partial(
            memoize, store, ttl=ttl, inputs=inputs, version=version, ignore=ignore, serializer=serializer, ns=ns
        )
    if not callable(func):
        raise TypeError("memoize decorates a function, not %s" % type(func).__name__)
    # A lambda or a nested function is refused here, at decoration time,
    # rather than at its first call.
    fid = argkey.func_id(func)
    if serializer not in serial.SERIALIZERS:
        raise ValueError("memoize: unknown serializer %r (one of %s)" % (serializer, ", ".join(serial.SERIALIZERS)))
    _check_ttl(ttl)
    if version is not None and not callable(version):
        raise TypeError("memoize: version= takes a callable returning str or bytes, not %s" % type(version).__name__)
    if isinstance(ignore, str):
        ignore = (ignore,)
    ignore = tuple(ignore)
    target = func.__func__ if inspect.ismethod(func) else func
    unknown = set(ignore) - set(inspect.signature(target).parameters)
    if unknown:
        raise ValueError("memoize: ignore names no parameter of %s: %s" % (fid, ", ".join(sorted(unknown))))
    # The signature is read once, here: a call is bound without it.
    keys = argkey.KeyMaker(func, ignore)
    if isinstance(inputs, (str, bytes, os.PathLike)):
        inputs = (inputs,)
    # Absolute now: a later chdir must not make the function depend on
    # other files (the version counts contents, not names, either way).
    inputs = tuple(os.path.abspath(os.fsdecode(p)) for p in inputs)
    # The serializer and the payload format are part of the version: an
    # entry written with another serializer is another version.
    fixed = "%s ser=%s.%d" % (FORMAT, serializer, serial.MAGIC[7])

    def version_of():
        parts = [fixed]
        if inputs:
            # "files/1 " and 32 hex digits: the hex digits are enough.
            parts.append("in=" + store.files_version(inputs).split(" ", 1)[1])
        if version is not None:
            parts.append(_user_version(version(), fid))
        return " ".join(parts)

    dynamic = bool(inputs) or version is not None

    def key_of(args, kwargs):
        digest = keys.digest(args, kwargs)
        # The function's id first, readable in `larder ls`; the digest of
        # the arguments after it.
        return "%s/%s" % (fid, digest.hex())

    def fill(key, args, kwargs):
        # A callable version is computed before the load and again after
        # it: inputs that changed during the call are loaded again. A
        # not-stored warning names the line that called the memoized
        # function: wrapper() -> fill() -> run_once().
        return run_once(store, key, version_of if dynamic else fixed, func, args, kwargs, ttl=ttl, ns=ns,
                        serializer=serializer, stacklevel=3)

    def fingerprint(entry):
        return entry.created, len(entry), bytes(memoryview(entry)[: serial.HEADER_SIZE])

    def drop_if_same(key, version, seen):
        # Entries are first-writer-wins: a fill under the bad entry's
        # version would return it again, so it is removed first -- but only
        # if it is still the entry we read, not one another process has
        # just put in its place.
        cur = store.get(key, version, ns=ns)
        if cur is None:
            return
        with cur:
            same = fingerprint(cur) == seen
        if same:
            store.remove(key, version, ns=ns)

    def result_of(entry, outcome, ran):
        if outcome == _larder.Outcome.FILLED_UNCACHED:
            # Not kept (the binding gave a NotStoredWarning): the function's
            # own result, never lost.
            return ran[0]
        # Arrays and numeric columns are views of the entry's mapping:
        # they keep it alive through their base chain after release().
        return serial.load(entry)

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        key = key_of(args, kwargs)
        entry, outcome, ran = fill(key, args, kwargs)
        if entry is None:
            return ran[0]
        with entry:
            try:
                return result_of(entry, outcome, ran)
            except serial.SerialError:
                # A damaged or undecodable entry is a miss (a class gone
                # since it was written, a format this larder does not
                # read): it is removed, the function runs again and its
                # result takes its place. A second failure is raised.
                bad_version, seen = entry.version, fingerprint(entry)
        drop_if_same(key, bad_version, seen)
        entry, outcome, ran = fill(key, args, kwargs)
        if entry is None:
            return ran[0]
        with entry:
            return result_of(entry, outcome, ran)

    def key(*args, **kwargs):
        """(key, version) under which this call's result is cached."""
        return key_of(args, kwargs), version_of()

    def forget(*args, **kwargs):
        """Remove this call's cached result; False if there was none."""
        k, v = key(*args, **kwargs)
        return store.remove(k, v, ns=ns)

    wrapper.key = key
    wrapper.forget = forget
    wrapper.store = store
    return wrapper
