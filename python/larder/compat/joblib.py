"""A drop-in for joblib.Memory over a larder store (docs/python.md,
"Switching from joblib or diskcache").

    from larder.compat.joblib import Memory    # was: from joblib import Memory
    memory = Memory("/shared/cache", mmap_mode="r")

    @memory.cache(ignore=["verbose"])
    def features(path, verbose=False): ...

Unlike joblib, a herd of processes (on any host) missing the same call at
once runs it once; the others wait and load its result.
"""

import functools
import time

from larder import argkey, compat

__all__ = ["Memory", "MemorizedFunc", "NotMemorizedFunc"]

# Part of every entry's version: a change of how results are stored.
_FORMAT = "joblib/1"


def _check_mmap_mode(mmap_mode):
    if mmap_mode not in (None, "r"):
        raise ValueError(
            "mmap_mode=%r is not supported: larder's entries are read-only and "
            "shared; use None (private writable copies) or 'r' (read-only, zero-copy)" % (mmap_mode,)
        )
    return mmap_mode


class NotMemorizedFunc:
    """What Memory(None).cache returns: the function, uncached."""

    def __init__(self, func):
        self.func = func
        functools.update_wrapper(self, func)

    def __call__(self, *args, **kwargs):
        return self.func(*args, **kwargs)

    def call(self, *args, **kwargs):
        return self.func(*args, **kwargs), {}

    def check_call_in_cache(self, *args, **kwargs):
        return False

    def clear(self, warn=True):
        pass

    def __repr__(self):
        return "NotMemorizedFunc(func=%r)" % (self.func,)


class MemorizedFunc:
    """A function whose results are kept in the store, as joblib's."""

    def __init__(self, memory, func, ignore, mmap_mode):
        self.memory = memory
        self.func = func
        self.ignore = list(ignore or ())
        self.mmap_mode = mmap_mode
        # Checked now, as joblib does: a bad ignore= fails at decoration.
        import inspect

        unknown = set(self.ignore) - set(inspect.signature(func).parameters)
        if unknown:
            raise ValueError("ignore names no parameter of %s: %s" % (func.__qualname__, ", ".join(sorted(unknown))))
        self._gen_key = ("larder.compat.joblib func\0%s" % argkey.func_id(func)).encode()
        functools.update_wrapper(self, func)

    def _where(self):
        # The namespace (Memory.clear swaps it) and the version (this
        # function's clear swaps it).
        ns = self.memory._gen.ns()
        return ns, "%s %s" % (_FORMAT, self.memory._gen.token(self._gen_key))

    def __call__(self, *args, **kwargs):
        ns, version = self._where()
        entry, _, results = compat.call_once(
            self.memory._store, ns, self.func, args, kwargs, ignore=self.ignore, version=version, zstd=self.memory.compress
        )
        if entry is None:
            return results[0]  # not stored (a warning said so)
        if results and self.mmap_mode is None:
            # This call ran the function: its own result, as joblib gives.
            entry.release()
            return results[0]
        # joblib loads the stored result even after computing it when
        # mmap_mode is set, so that every call returns the same kind.
        return compat.load(entry, zero_copy=self.mmap_mode == "r")

    def call(self, *args, **kwargs):
        """Run the function and store its result, replacing any stored
        one; (result, metadata) as joblib's."""
        ns, version = self._where()
        key = compat.call_key(self.func, args, kwargs, self.ignore)
        start = time.time()
        out = self.func(*args, **kwargs)
        duration = time.time() - start
        # Entries are first-writer-wins per version: the stored result
        # goes first, then ours is published under the same version.
        self.memory._store.remove(key, version, ns=ns)
        compat.write(self.memory._store, ns, key, version, out, zstd=self.memory.compress)
        return out, {"duration": duration, "time": start}

    def check_call_in_cache(self, *args, **kwargs):
        ns, version = self._where()
        key = compat.call_key(self.func, args, kwargs, self.ignore)
        e = self.memory._store.get(key, version, ns=ns)
        if e is None:
            return False
        e.release()
        return True

    def clear(self, warn=True):
        """Forget this function's stored results (they stay on disk until
        a cleaning)."""
        self.memory._gen.bump(self._gen_key)

    def __repr__(self):
        return "MemorizedFunc(func=%r, location=%r)" % (self.func, self.memory.location)


class Memory:
    """joblib.Memory over a larder store: location is the store's
    directory (made if missing) or a larder.Store; None caches nothing."""

    def __init__(self, location=None, backend="local", mmap_mode=None, compress=False, verbose=0,
                 bytes_limit=None, backend_options=None, *, ns="joblib"):
        if backend != "local":
            raise ValueError("backend=%r is not supported: larder.compat.joblib stores in a larder store" % (backend,))
        self.mmap_mode = _check_mmap_mode(mmap_mode)
        self.compress = bool(compress)
        # Accepted for compatibility: larder prints nothing, and caps a
        # store with `larder config` (docs/cli.md), not per Memory.
        self.verbose = verbose
        self.bytes_limit = bytes_limit
        self.location = location
        self._store = None
        self._owned = False
        if location is not None:
            self._store, self._owned = compat.open_store(location)
            self._gen = compat.Generation(self._store, ns)

    def cache(self, func=None, ignore=None, verbose=None, mmap_mode=False):
        """Decorate func (as @memory.cache or @memory.cache(ignore=[...]))."""
        if func is None:
            return functools.partial(self.cache, ignore=ignore, verbose=verbose, mmap_mode=mmap_mode)
        if ignore is not None and (isinstance(ignore, str) or not all(isinstance(n, str) for n in ignore)):
            raise TypeError("ignore must be a list of parameter names, not %r" % (ignore,))
        mode = self.mmap_mode if mmap_mode is False else _check_mmap_mode(mmap_mode)
        if self._store is None:
            return NotMemorizedFunc(func)
        if isinstance(func, MemorizedFunc):
            func = func.func
        return MemorizedFunc(self, func, ignore, mode)

    def eval(self, func, *args, **kwargs):
        if self._store is None:
            return func(*args, **kwargs)
        return self.cache(func)(*args, **kwargs)

    def clear(self, warn=True):
        """Forget every stored result of this Memory (they stay on disk
        until a cleaning: `larder gc`, caps)."""
        if self._store is not None:
            self._gen.bump()

    def reduce_size(self, *args, **kwargs):
        """Nothing to do: larder's caps and cleanings bound a store."""

    def close(self):
        if self._owned and not self._store.closed:
            self._store.close()

    def __repr__(self):
        return "Memory(location=%r)" % (self.location,)
