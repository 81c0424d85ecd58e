"""larder.compat.diskcache.Cache: diskcache-style code gives what
Debian's diskcache gives; keys by content; overwrites, expiry, clear and
memoize; what is not supported says so."""

import threading
import time

import pytest

import larder
from helpers import CALLS
from larder.compat import diskcache as ldiskcache

np = pytest.importorskip("numpy")
diskcache = pytest.importorskip("diskcache")


def both(tmp_path):
    return (diskcache.Cache(str(tmp_path / "diskcache")),
            ldiskcache.Cache(str(tmp_path / "larder")))


def fetch(url, retries=3):
    CALLS.append((url, retries))
    return {"url": url, "body": url.upper() * retries}


def run_typical(cache):
    """Typical diskcache-style code; what it returns."""
    out = []
    cache["a"] = 1
    cache[("user", 42)] = {"name": "x", "tags": ["p", "q"]}
    cache.set(b"raw", b"\x00\x01\x02")
    cache.set(7, [1.5, None, "s"], expire=3600)
    out.append([cache["a"], cache[("user", 42)], cache[b"raw"], cache[7]])
    out.append(["a" in cache, "zz" in cache, ("user", 42) in cache, ("user", 43) in cache])
    out.append([cache.get("zz"), cache.get("zz", "dflt"), cache.get("a", "dflt")])
    cache["a"] = 2  # overwrite
    out.append(cache["a"])
    out.append(len(cache))
    out.append([cache.add("a", 3), cache.add("new", 4), cache["a"], cache["new"]])
    out.append([cache.delete("new"), cache.delete("new"), "new" in cache])
    del cache[7]
    with pytest.raises(KeyError):
        del cache[7]
    with pytest.raises(KeyError):
        cache["gone"]
    out.append([cache.pop("a"), cache.pop("a"), cache.pop("a", "d")])
    v, exp = cache.get(b"raw", expire_time=True)
    out.append([v, exp])
    out.append(len(cache))
    out.append(cache.clear())
    out.append([len(cache), cache.get(("user", 42))])
    cache["after"] = "clear"
    out.append([cache["after"], len(cache)])
    return out


def test_typical_code_matches_diskcache(tmp_path):
    real, ours = both(tmp_path)
    with real, ours:
        assert run_typical(ours) == run_typical(real)


def test_equal_keys_are_one_entry_and_unequal_ones_are_not(tmp_path):
    with ldiskcache.Cache(str(tmp_path / "c")) as cache:
        cache[("k", 1, frozenset({1, 2}))] = "tuple"
        assert cache[("k", 1, frozenset({2, 1}))] == "tuple"
        cache[1] = "int"
        cache["1"] = "str"
        cache[b"1"] = "bytes"
        cache[1.0] = "float"
        assert [cache[1], cache["1"], cache[b"1"], cache[1.0]] == ["int", "str", "bytes", "float"]


def test_overwrites_replace_and_do_not_pile_up(tmp_path):
    path = str(tmp_path / "c")
    with ldiskcache.Cache(path) as cache:
        for i in range(20):
            cache["counter"] = i
        assert cache["counter"] == 19
        assert len(cache) == 1  # the replaced versions were removed
    # Another handle (as another process) reads the last value.
    with ldiskcache.Cache(path) as other:
        assert other["counter"] == 19


def test_expire(tmp_path):
    for cache in both(tmp_path):
        with cache:
            before = time.time()
            cache.set("long", "v", expire=3600)
            value, expires = cache.get("long", expire_time=True)
            assert value == "v"
            # larder keeps whole seconds: within a second or two of diskcache's.
            assert before + 3600 - 2 <= expires <= time.time() + 3600 + 2
            assert cache.get("never", expire_time=True) == (None, None)
            cache.set("short", "v", expire=1)
            cache.set("gone", "v", expire=0)
            assert cache.get("gone") is None
    # Past any rounding of the one second: expired for both.
    time.sleep(2.5)
    for cache in both(tmp_path):
        with cache:
            assert cache.get("short") is None
            assert cache.get("long") == "v"


def test_memoize_matches_diskcache(tmp_path):
    for cache in both(tmp_path):
        with cache:
            del CALLS[:]
            f = cache.memoize(expire=3600)(fetch)
            got = [f("a"), f("a"), f("b", retries=1), f("b", 1), f("a")]
            assert got == [{"url": u, "body": u.upper() * r} for u, r in
                           [("a", 3), ("a", 3), ("b", 1), ("b", 1), ("a", 3)]]
            assert f.__name__ == "fetch"
            with pytest.raises(TypeError, match="name cannot be callable"):
                cache.memoize(fetch)
            # diskcache's keys are by position and keyword: f("b", 1) and
            # f("b", retries=1) are two calls there, one call here (the
            # arguments are bound to the signature first).
            calls = sorted(set(CALLS))
            assert calls == [("a", 3), ("b", 1)]
    assert len(CALLS) == 2  # ours: once per distinct call


def test_memoize_ignore_and_expire(tmp_path):
    with ldiskcache.Cache(str(tmp_path / "c")) as cache:
        f = cache.memoize(ignore=("retries",))(fetch)
        assert f("a", retries=1) == f("a", retries=2)
        assert CALLS == [("a", 1)]
        with pytest.raises(ValueError, match="lambda"):
            cache.memoize()(lambda x: x)


def test_arrays_are_private_copies_unless_zero_copy(tmp_path):
    a = np.arange(1 << 18, dtype=np.float64)
    with ldiskcache.Cache(str(tmp_path / "c")) as cache:
        cache["a"] = a
        got = cache["a"]
        assert np.array_equal(got, a)
        got[0] = -1  # writable, as diskcache's
    with ldiskcache.Cache(str(tmp_path / "c"), zero_copy=True) as cache:
        got = cache["a"]
        assert np.array_equal(got, a)
        assert not got.flags.writeable and not got.flags.owndata


def test_bad_keys_and_unsupported_features_are_clear_errors(tmp_path):
    with ldiskcache.Cache(str(tmp_path / "c")) as cache:
        with pytest.raises(TypeError, match="not hashable"):
            cache[["a", "list"]] = 1
        with pytest.raises(TypeError, match="cannot use .* as a cache key"):
            cache[("lock", threading.Lock())] = 1
        with pytest.raises(TypeError, match="expire must be a number"):
            cache.set("k", 1, expire="soon")
        with pytest.raises(NotImplementedError, match="transactions"):
            cache.transact()
        with pytest.raises(NotImplementedError, match="atomic counters"):
            cache.incr("k")
        with pytest.raises(NotImplementedError, match="tag"):
            cache.set("k", 1, tag="t")
        with pytest.raises(NotImplementedError, match="iterating"):
            list(cache)
    with pytest.raises(ValueError, match="closed"):
        cache.get("k")


def test_a_store_handed_over_is_used_and_left_open(tmp_path):
    with larder.Store(str(tmp_path / "s"), create=True) as store:
        with ldiskcache.Cache(store) as cache:
            cache["k"] = "v"
            assert cache.directory == store.path
        assert not store.closed
        assert ldiskcache.Cache(store)["k"] == "v"
