"""A drop-in for diskcache.Cache over a larder store (docs/python.md,
"Switching from joblib or diskcache").

    from larder.compat.diskcache import Cache   # was: from diskcache import Cache
    cache = Cache("/shared/cache")
    cache["k"] = value
    cache.set("k", value, expire=60)

    @cache.memoize(expire=3600)
    def fetch(url): ...

The mapping API, get/set/add/delete/pop/clear, expire and memoize; what
diskcache offers beyond that (tags, transactions, atomic counters, queues,
iteration, eviction policies) raises NotImplementedError saying so.
"""

import functools
import tempfile

import larder
from larder import argkey, compat

__all__ = ["Cache", "ENOVAL"]


class _Constant(str):
    def __repr__(self):
        return self


# diskcache's marker for "no value" (memoize's __cache_key__ aside).
ENOVAL = _Constant("ENOVAL")

_MISSING = object()
_MEMO_VERSION = "diskcache-memo/1"


def _key(key):
    """The entry key of a cache key: its content hash (larder.argkey),
    so that equal keys (by type and value) are one entry."""
    try:
        hash(key)
    except TypeError:
        raise TypeError("cache key %r is not hashable" % (key,)) from None
    h = larder.Hasher()
    try:
        argkey._Encoder(h).value(key)
    except Exception as e:
        raise TypeError("cannot use %r as a cache key: %s: %s" % (key, type(e).__name__, e)) from None
    return b"diskcache/1\0" + h.digest()


def _ttl(expire):
    if expire is None:
        return larder.NEVER
    if isinstance(expire, bool) or not isinstance(expire, (int, float)):
        raise TypeError("expire must be a number of seconds or None, not %r" % (expire,))
    return expire


def _unsupported(what):
    def method(self, *args, **kwargs):
        raise NotImplementedError(
            "larder.compat.diskcache.Cache does not support %s (docs/python.md, "
            "\"Switching from joblib or diskcache\")" % what
        )

    method.__name__ = what.split()[0]
    return method


class Cache:
    """diskcache.Cache over a larder store: directory is the store's
    directory (made if missing; a new temporary one if None) or a
    larder.Store. zero_copy=True returns numpy arrays as read-only views
    of the store's mapping instead of private copies."""

    def __init__(self, directory=None, timeout=60, disk=None, *, ns="diskcache", zero_copy=False, **settings):
        if disk is not None:
            raise NotImplementedError("disk= is not supported: values go through larder.serial")
        if directory is None:
            directory = tempfile.mkdtemp(prefix="larder-cache-")
        self._store, self._owned = compat.open_store(directory)
        self._gen = compat.Generation(self._store, ns)
        self._zero_copy = zero_copy
        self.timeout = timeout

    @property
    def directory(self):
        return self._store.path

    def _ns(self):
        if self._store.closed:
            raise ValueError("the cache is closed")
        return self._gen.ns()

    # --- reading -----------------------------------------------------------

    def get(self, key, default=None, read=False, expire_time=False, tag=False, retry=False):
        if read or tag:
            raise NotImplementedError("get(read=True) and get(tag=True) are not supported")
        e = self._store.get(_key(key), ns=self._ns())
        if e is None:
            return (default, None) if expire_time else default
        expires = e.expires
        value = compat.load(e, self._zero_copy)
        return (value, expires) if expire_time else value

    def __getitem__(self, key):
        value = self.get(key, _MISSING)
        if value is _MISSING:
            raise KeyError(key)
        return value

    def __contains__(self, key):
        e = self._store.get(_key(key), ns=self._ns())
        if e is None:
            return False
        e.release()
        return True

    def __len__(self):
        """Entries in the cache, expired ones not yet cleaned included
        (as diskcache counts them), from the store's usage counters."""
        usage = self._store.stats()["namespaces"].get(self._ns())
        return int(usage["entries"]) if usage else 0

    def __bool__(self):
        return True

    # --- writing -----------------------------------------------------------

    def set(self, key, value, expire=None, read=False, tag=None, retry=False):
        """Store value under key (replacing any); True."""
        if read or tag is not None:
            raise NotImplementedError("set(read=True) and set(tag=...) are not supported")
        k, ttl, ns = _key(key), _ttl(expire), self._ns()
        if ttl != larder.NEVER and ttl <= 0:
            # Expired at once, as diskcache's would be.
            self._store.remove(k, ns=ns)
            return True
        compat.replace(self._store, ns, k, value, ttl)
        return True

    def __setitem__(self, key, value):
        self.set(key, value)

    def add(self, key, value, expire=None, read=False, tag=None, retry=False):
        """Store value only if key has none; True if it was stored.

        Among processes adding at once, one wins: they all publish under
        one version, and an entry's first writer wins."""
        if read or tag is not None:
            raise NotImplementedError("add(read=True) and add(tag=...) are not supported")
        k, ttl, ns = _key(key), _ttl(expire), self._ns()
        if key in self:
            return False
        # commit() is True only for the writer that published the entry.
        return compat.write(self._store, ns, k, "add", value, ttl) is True

    def delete(self, key, retry=False):
        """Remove key; True if it was there."""
        return self._store.remove(_key(key), ns=self._ns())

    def __delitem__(self, key):
        if not self.delete(key):
            raise KeyError(key)

    def pop(self, key, default=None, expire_time=False, tag=False, retry=False):
        """The value of key, removed; default if none. Not atomic: two
        processes popping one key at once may both get its value."""
        if tag:
            raise NotImplementedError("pop(tag=True) is not supported")
        value = self.get(key, _MISSING, expire_time=expire_time)
        missing = (value[0] if expire_time else value) is _MISSING
        if missing:
            return (default, None) if expire_time else default
        self.delete(key)
        return value

    def clear(self, retry=False):
        """Empty the cache; the number of entries it held. Their files stay
        on disk until a cleaning (`larder gc`, caps)."""
        n = len(self)
        self._gen.bump()
        return n

    # --- memoize -----------------------------------------------------------

    def memoize(self, name=None, typed=False, expire=None, tag=None, ignore=()):
        """Decorator: cache func's results, filled once across processes
        and hosts. Keys are always typed (1 and 1.0 differ)."""
        if callable(name):
            raise TypeError("name cannot be callable: use @cache.memoize()")
        if tag is not None:
            raise NotImplementedError("memoize(tag=...) is not supported")
        if name is not None:
            raise NotImplementedError("memoize(name=...) is not supported: keys come from the function's module and name")
        ttl = _ttl(expire)
        ignore = tuple(ignore)

        def decorator(func):
            # Refused now rather than at the first call: a lambda or a
            # nested function has no name another process finds again.
            argkey.func_id(func)

            @functools.wraps(func)
            def wrapper(*args, **kwargs):
                entry, _, results = compat.call_once(
                    self._store, self._ns(), func, args, kwargs, ignore=ignore, version=_MEMO_VERSION, ttl=ttl
                )
                if results:
                    if entry is not None:  # None: not stored, with a warning
                        entry.release()
                    return results[0]
                return compat.load(entry, self._zero_copy)

            wrapper.__cache_key__ = lambda *a, **kw: compat.call_key(func, a, kw, ignore)
            return wrapper

        return decorator

    # --- the rest --------------------------------------------------------

    def close(self):
        if self._owned and not self._store.closed:
            self._store.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def __iter__(self):
        raise NotImplementedError("iterating over keys is not supported: larder keeps keys as hashes")

    transact = _unsupported("transact (transactions)")
    incr = _unsupported("incr (atomic counters)")
    decr = _unsupported("decr (atomic counters)")
    push = _unsupported("push (queues)")
    pull = _unsupported("pull (queues)")
    peek = _unsupported("peek (queues)")
    evict = _unsupported("evict (tags)")
    iterkeys = _unsupported("iterkeys (iteration)")
    cull = _unsupported("cull (larder cleans by its caps: `larder gc`)")
    expire = _unsupported("expire (larder removes expired entries in its cleanings: `larder gc`)")
    volume = _unsupported("volume (see Store.stats())")
