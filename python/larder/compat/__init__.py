"""Drop-ins for joblib.Memory and diskcache.Cache (docs/python.md,
"Switching from joblib or diskcache").

``larder.compat.joblib.Memory`` and ``larder.compat.diskcache.Cache``
cover the subset of those APIs most code uses, so that a project switches
by changing one import, and gains single flight across processes and
hosts and a store that is safe on NFS. This module holds what both share.
"""

import os

import larder
from larder import argkey, memoize, serial

__all__ = ["joblib", "diskcache"]


def open_store(location):
    """(store, owned): a Store given as is, or a path opened (and made)."""
    if isinstance(location, larder._larder.Store):
        return location, False
    return larder.Store(os.fspath(location), create=True), True


def new_version():
    """A version no other write uses: entries are first-writer-wins per
    (key, version), so a value that replaces another needs its own."""
    return os.urandom(12).hex()


def write(store, ns, key, version, obj, ttl=None, zstd=False):
    """Publish obj (through larder.serial) as (key, version); True if
    stored (False: the store could not keep it, with a warning)."""
    _, bufs, _ = serial.dump(obj)
    w = store.writer(key, version, ttl, ns=ns, zstd=zstd)
    try:
        for b in bufs:
            w.write(b)
    except BaseException:
        w.abort()
        raise
    return w.commit()


def replace(store, ns, key, obj, ttl=None, zstd=False):
    """Make obj the value of key: a new version that becomes the head.

    Why not remove-then-put under one version: between the two a reader
    would see a miss, and a concurrent writer's put could land in the gap
    and then lose to ours without either knowing. A version per write
    makes the swap one atomic move of the key's head; a reader gets the
    old value or the new one, each verified whole, never a torn one. The
    version the head named before is removed afterwards, so a key holds
    one entry, not one per write."""
    old = store.get(key, ns=ns)
    old_version = None
    if old is not None:
        old_version = old.version
        old.release()
    version = new_version()
    stored = write(store, ns, key, version, obj, ttl, zstd)
    if old_version is not None and old_version != version.encode():
        store.remove(key, old_version, ns=ns)
    return stored


def load(entry, zero_copy):
    """The object in entry. zero_copy: numpy arrays are read-only views of
    the mapping; else a private, writable copy (as joblib and diskcache
    give)."""
    if zero_copy:
        return serial.load(entry)
    with entry:
        data = bytearray(entry)
    return serial.load(data)


class Generation:
    """A namespace that can be emptied at once: its name carries a token
    kept under a pointer key in the base namespace; clearing swaps the
    token, and the old generation's entries are no longer reachable (they
    stay on disk until a cleaning: `larder gc`, caps)."""

    KEY = b"larder.compat generation"

    def __init__(self, store, base):
        if not isinstance(base, str) or not 1 <= len(base) <= 40:
            raise ValueError("ns must be a namespace name of 1..40 characters, not %r" % (base,))
        self.store = store
        self.base = base

    def token(self, key=KEY):
        e = self.store.get(key, ns=self.base)
        if e is None:
            return "0"
        with e:
            return bytes(e).decode("ascii")

    def ns(self):
        return "%s-%s" % (self.base, self.token())

    def bump(self, key=KEY):
        token = os.urandom(8).hex()
        replace(self.store, self.base, key, token.encode(), larder.NEVER)
        return token


def call_once(store, ns, func, args, kwargs, *, ignore=(), version, ttl=None, zstd=False):
    """func(*args, **kwargs), cached under its compat key and filled once
    across processes and hosts: (entry, outcome, results), where results
    holds func's own return value when this call ran it. entry is None
    when the function ran and the store could not keep its result (a
    NotStoredWarning names the line that called the cached function).

    memoize's fill (larder.memoize.run_once) under the compat modules' own
    keys, which entries already stored are found by."""
    key = call_key(func, args, kwargs, ignore)
    # call_once -> the compat wrapper -> the caller's line.
    return memoize.run_once(store, key, version, func, args, kwargs, ttl=ttl, ns=ns, zstd=zstd, stacklevel=3)


def call_key(func, args, kwargs, ignore=()):
    """The memoize key of a call (larder.argkey)."""
    return ("%s\0" % argkey.func_id(func)).encode() + argkey.args_digest(func, args, kwargs, ignore or ())
