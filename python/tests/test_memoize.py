"""@store.memoize: one call for a herd of threads and processes, keys
and versions, errors, zero-copy results."""

import functools
import multiprocessing
import os
import threading
import traceback
import warnings

import pytest

import larder
from helpers import TIMEOUT, count_calls, new_store, peak_allocated, read_only_store, record_call, run_herd
from larder import serial
from larder.memoize import memoize as memoize_in

np = pytest.importorskip("numpy")

N_ELEMS = 1 << 19  # a 4 MiB float64 array


# --- module-level functions: memoize refuses any other kind -------------------


def expected(seed):
    return {
        "arr": np.arange(N_ELEMS, dtype="f8") * seed + 0.5,
        "blob": bytes(range(256)) * 64 + bytes([seed % 256]),
        "seed": seed,
    }


def heavy(seed, count_path):
    """A slow computation's stand-in."""
    record_call(count_path)
    return expected(seed)


def equal(got, want):
    return (
        set(got) == set(want)
        and np.array_equal(got["arr"], want["arr"])
        and got["arr"].dtype == want["arr"].dtype
        and got["blob"] == want["blob"]
        and got["seed"] == want["seed"]
    )


def add(a, b=2, *, scale=1, verbose=False):
    return (a + b) * scale


def reads(path):
    with open(path, "rb") as f:
        return f.read()


def entry_of(obj):
    """The larder.Entry at the end of obj's base chain, or None."""
    seen = 0
    while obj is not None and seen < 64:
        if isinstance(obj, larder.Entry):
            return obj
        obj = obj.obj if isinstance(obj, memoryview) else getattr(obj, "base", None)
        seen += 1
    return None


# --- a herd of processes ---------------------------------------------------------


def herd_member(path, count_path, barrier, results):
    try:
        with larder.Store(path) as s:
            f = s.memoize(heavy, ignore=("count_path",))
            barrier.wait(TIMEOUT)
            got = f(7, count_path)
            results.put((equal(got, expected(7)), not got["arr"].flags.writeable))
    except Exception as exc:  # reported to the parent
        results.put(("error", traceback.format_exc() + repr(exc)))


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_herd_of_16_processes_calls_once(tmp_path, method):
    ctx = multiprocessing.get_context(method)
    path, count = new_store(tmp_path)
    n = 16
    got, codes = run_herd(ctx, n, herd_member, path, count)
    assert codes == [0] * n
    assert got == [(True, True)] * n, got
    assert count_calls(count) == 1


def test_eight_threads_call_once(store, tmp_path):
    count = str(tmp_path / "count")
    f = store.memoize(heavy, ignore="count_path")
    n = 8
    barrier = threading.Barrier(n)
    results = []

    def member():
        barrier.wait(TIMEOUT)
        results.append(equal(f(3, count), expected(3)))

    ts = [threading.Thread(target=member) for _ in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(TIMEOUT)
    assert results == [True] * n
    assert count_calls(count) == 1


def fill_in_child(path, count_path, conn):
    try:
        with larder.Store(path) as s:
            got = s.memoize(heavy, ignore=("count_path",))(11, count_path)
            conn.send(equal(got, expected(11)))
    except Exception as exc:  # reported to the parent
        conn.send(repr(exc))
    finally:
        conn.close()


def test_result_written_in_one_process_is_a_hit_in_another(tmp_path):
    ctx = multiprocessing.get_context("spawn")
    path = str(tmp_path / "store")
    count = str(tmp_path / "count")
    with larder.Store(path, create=True) as s:
        parent, child = ctx.Pipe()
        p = ctx.Process(target=fill_in_child, args=(path, count, child))
        p.start()
        assert parent.recv() is True
        p.join(TIMEOUT)
        assert p.exitcode == 0
        assert count_calls(count) == 1
        got = s.memoize(heavy, ignore=("count_path",))(11, count)
        assert equal(got, expected(11))
        assert count_calls(count) == 1


# --- keys and versions -------------------------------------------------------------


def test_key_names_the_function_and_changes_with_arguments(store):
    f = store.memoize(add)
    k, v = f.key(1)
    assert k.startswith("test_memoize:add/")
    assert len(k) == len("test_memoize:add/") + 32
    # Equal bindings give equal keys.
    assert f.key(1, 2) == (k, v)
    assert f.key(a=1, b=2) == (k, v)
    assert f.key(1, scale=1, verbose=False) == (k, v)
    # Any argument that changes gives another key, the same version.
    others = {f.key(2)[0], f.key(1, 3)[0], f.key(1, scale=2)[0], f.key(1, verbose=True)[0], f.key(1.0)[0]}
    assert k not in others and len(others) == 5
    assert all(f.key(*a)[1] == v for a in ((2,), (1, 3)))


def test_calls_run_once_per_distinct_arguments(store):
    ran = []

    def spy(*a, **kw):
        ran.append((a, kw))
        return add(*a, **kw)

    f = store.memoize(add)
    # Swap in the spy behind the memoized wrapper: the key stays add's.
    g = memoize_in(store, functools.wraps(add)(spy))
    assert g.key(1) == f.key(1)
    assert g(1) == 3 and g(1, 2) == 3 and g(b=2, a=1) == 3
    assert g(2) == 4 and g(1, scale=3) == 9
    assert len(ran) == 3


def test_ignore_leaves_an_argument_out(store):
    f = store.memoize(add, ignore=("verbose",))
    assert f.key(1, verbose=True) == f.key(1, verbose=False)
    assert f.key(1, scale=2) != f.key(1)
    with pytest.raises(ValueError, match="nope"):
        store.memoize(add, ignore=("nope",))


def test_inputs_version_changes_with_content_not_otherwise(store, tmp_path):
    data = tmp_path / "data.csv"
    data.write_bytes(b"a,b\n1,2\n")
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "x").write_bytes(b"x1")
    count = str(tmp_path / "count")

    def loaded():
        return count_calls(count)

    f = store.memoize(heavy, inputs=[str(data), tree], ignore="count_path")
    k, v1 = f.key(1, count)
    assert "in=" in v1
    f(1, count)
    assert loaded() == 1
    # Same content rewritten: same version, a hit.
    data.write_bytes(b"a,b\n1,2\n")
    assert f.key(1, count) == (k, v1)
    f(1, count)
    assert loaded() == 1
    # The file's content changes: same key, new version, a new call.
    data.write_bytes(b"a,b\n1,3\n")
    k2, v2 = f.key(1, count)
    assert k2 == k and v2 != v1
    f(1, count)
    assert loaded() == 2
    # A file inside the input tree changes.
    (tree / "x").write_bytes(b"x2")
    v3 = f.key(1, count)[1]
    assert v3 not in (v1, v2)
    f(1, count)
    assert loaded() == 3
    # Back to an earlier content: the earlier entry is a hit again.
    data.write_bytes(b"a,b\n1,2\n")
    (tree / "x").write_bytes(b"x1")
    assert f.key(1, count)[1] == v1
    f(1, count)
    assert loaded() == 3


def test_relative_inputs_are_fixed_at_decoration(store, tmp_path, monkeypatch):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "in").write_bytes(b"one")
    (tmp_path / "b" / "in").write_bytes(b"two")
    monkeypatch.chdir(tmp_path / "a")
    f = store.memoize(add, inputs="in")
    v = f.key(1)[1]
    assert v != store.memoize(add, inputs=tmp_path / "b" / "in").key(1)[1]
    monkeypatch.chdir(tmp_path / "b")
    assert f.key(1)[1] == v


def test_version_callable_changes_the_version(store):
    state = {"v": "2024-01"}
    f = store.memoize(add, version=lambda: state["v"])
    k, v1 = f.key(1)
    assert v1.endswith(" v=2024-01")
    assert f.key(1) == (k, v1)
    state["v"] = "2024-02"
    assert f.key(1) == (k, v1.replace("2024-01", "2024-02"))
    state["v"] = b"2024-02"
    v_bytes = f.key(1)[1]
    state["v"] = "with space " * 10
    v_long = f.key(1)[1]
    assert " vh=" in v_long and len(v_long) < 120
    assert len({v1, v_bytes, v_long, f.key(1)[1]}) == 3
    state["v"] = 42
    with pytest.raises(TypeError, match="str or bytes"):
        f.key(1)


def test_version_callable_result_is_cached_by_version(store, tmp_path):
    state = {"v": "1"}
    count = str(tmp_path / "count")
    f = store.memoize(heavy, version=lambda: state["v"], ignore="count_path")
    f(1, count)
    f(1, count)
    assert count_calls(count) == 1
    state["v"] = "2"
    f(1, count)
    assert count_calls(count) == 2


def test_serializer_is_part_of_the_version(store):
    versions = {store.memoize(add, serializer=s).key(1)[1] for s in serial.SERIALIZERS}
    assert len(versions) == len(serial.SERIALIZERS)
    k = {store.memoize(add, serializer=s).key(1)[0] for s in serial.SERIALIZERS}
    assert len(k) == 1


# --- ttl ------------------------------------------------------------------------------


def test_ttl_sets_the_entrys_expiry(store):
    f = store.memoize(add, ttl=120)
    f(1)
    e = store.get(*f.key(1))
    assert e is not None
    assert e.expires == pytest.approx(e.created + 120, abs=1.5)
    g = store.memoize(add)
    g(5)
    assert store.get(*g.key(5)).expires is None
    h = store.memoize(add, ttl=larder.NEVER)
    h(6)
    assert store.get(*h.key(6)).expires is None
    for bad in (0, -2, "60", True):
        with pytest.raises(ValueError, match="ttl"):
            store.memoize(add, ttl=bad)


def test_namespace(store):
    f = store.memoize(add, ns="memo")
    f(1)
    k, v = f.key(1)
    assert store.get(k, v) is None
    assert store.get(k, v, ns="memo") is not None


# --- errors ------------------------------------------------------------------------


class Boom(Exception):
    pass


def explode(x, count_path):
    record_call(count_path)
    raise Boom("no result for %r" % (x,))


def test_exception_caches_nothing_and_reaches_the_caller(store, tmp_path):
    count = str(tmp_path / "count")
    f = store.memoize(explode, ignore="count_path")
    with pytest.raises(Boom) as info:
        f(1, count)
    assert type(info.value) is Boom
    # The function's own frame is the innermost of the traceback.
    assert info.traceback[-1].name == "explode"
    assert store.get(*f.key(1, count)) is None
    with pytest.raises(Boom):
        f(1, count)
    assert count_calls(count) == 2


def failing_member(path, count_path, barrier, results):
    try:
        with larder.Store(path) as s:
            f = s.memoize(explode, ignore=("count_path",))
            barrier.wait(TIMEOUT)
            f(1, count_path)
            results.put("returned")
    except Boom:
        results.put("boom")
    except Exception as exc:  # reported to the parent
        results.put(repr(exc))


def test_exception_in_a_herd_reaches_every_process(tmp_path):
    # Nothing is cached for waiters to share: each process that waited
    # takes the load over in turn, runs the function and gets its own
    # exception (the rule of larder_get_or_fill for a failed load).
    ctx = multiprocessing.get_context("fork")
    path, count = new_store(tmp_path)
    n = 4
    got, _ = run_herd(ctx, n, failing_member, path, count)
    assert got == ["boom"] * n
    assert count_calls(count) == n
    with larder.Store(path) as s:
        assert s.get(*s.memoize(explode, ignore="count_path").key(1, count)) is None


def test_lambda_and_nested_function_are_refused(store):
    with pytest.raises(ValueError, match="module level"):
        store.memoize(lambda x: x)

    def inner(x):
        return x

    with pytest.raises(ValueError, match="module level"):
        store.memoize(inner)
    with pytest.raises(ValueError, match="unknown serializer"):
        store.memoize(add, serializer="json")
    with pytest.raises(TypeError, match="version"):
        store.memoize(add, version="v1")


def test_damaged_entry_is_a_miss_and_is_replaced(store, tmp_path):
    count = str(tmp_path / "count")
    f = store.memoize(heavy, ignore="count_path")
    k, v = f.key(2, count)
    # A tagged entry that does not check out (its header CRC is wrong):
    # valid for the store, undecodable for memoize.
    bad = serial.MAGIC + bytes(120)
    store.put(k, bad, v)
    with pytest.raises(serial.SerialError):
        serial.load(bad)
    got = f(2, count)
    assert equal(got, expected(2))
    assert count_calls(count) == 1
    assert bytes(store.get(k, v)) != bad
    assert equal(f(2, count), expected(2))
    assert count_calls(count) == 1


# --- results -----------------------------------------------------------------------------


def array_of(n):
    return np.arange(n, dtype="i8").reshape(-1, 4)


def test_numpy_result_loads_zero_copy(store):
    f = store.memoize(array_of)
    for _ in range(2):  # the filler's result and a hit
        a = f(1 << 18)
        assert np.array_equal(a, np.arange(1 << 18, dtype="i8").reshape(-1, 4))
        assert not a.flags.owndata and not a.flags.writeable
        assert entry_of(a) is not None
        with pytest.raises(ValueError):
            a[0, 0] = 1


def ramp(n):
    return np.arange(n, dtype="f8")


def test_large_result_is_streamed_not_joined(store):
    n = 8 << 20  # 64 MiB
    f = store.memoize(ramp)
    a, peak = peak_allocated(f, n)
    # The function's own array, and no second copy of it: neither a
    # joined payload on the way in nor a copy on the way out.
    assert peak < a.nbytes + (8 << 20), peak
    assert not a.flags.owndata and entry_of(a) is not None
    assert a[-1] == n - 1 and np.array_equal(a[:: 1 << 16], np.arange(0, n, 1 << 16, dtype="f8"))


def frame_of(n):
    import pandas as pd

    return pd.DataFrame({"f": np.arange(n) / 3.0, "i": np.arange(n, dtype="i8"), "s": ["x%d" % i for i in range(n)]})


def test_dataframe_result_loads_zero_copy(store):
    pd = pytest.importorskip("pandas")
    f = store.memoize(frame_of)
    for _ in range(2):
        df = f(1000)
        pd.testing.assert_frame_equal(df, frame_of(1000))
        for col in ("f", "i"):
            values = df[col].to_numpy()
            assert not values.flags.writeable
            assert entry_of(values) is not None, col


def identity(x):
    return x


@pytest.mark.parametrize(
    "serializer, value, kind",
    [
        ("auto", b"raw", None),
        ("auto", np.arange(10.0), 2),
        ("auto", {"a": 1}, 1),
        ("bytes", b"raw", None),
        ("pickle", np.arange(10.0), 1),
        ("npy", np.arange(10.0), 2),
        ("pickle", b"raw", 1),
    ],
)
def test_serializer_choices(store, serializer, value, kind):
    f = store.memoize(identity, serializer=serializer)
    got = f(value)
    if isinstance(value, np.ndarray):
        assert np.array_equal(got, value)
    else:
        assert got == value
    stored = bytes(store.get(*f.key(value)))
    if kind is None:
        assert stored == value
    else:
        assert stored[:8] == serial.MAGIC and stored[8] == kind


def test_serializer_that_does_not_fit_the_result(store):
    f = store.memoize(identity, serializer="npy")
    with pytest.raises(TypeError, match="npy"):
        f({"not": "an array"})
    assert store.get(*f.key({"not": "an array"})) is None


# --- the decorated function -----------------------------------------------------------------


def test_wraps_key_forget_store(store, tmp_path):
    count = str(tmp_path / "count")
    f = store.memoize(heavy, ignore="count_path")
    assert f.__name__ == "heavy" and f.__doc__ == heavy.__doc__
    assert f.__wrapped__ is heavy and f.__module__ == heavy.__module__
    assert f.store is store
    f(4, count)
    assert store.get(*f.key(4, count)) is not None
    assert f.forget(4, count) is True
    assert store.get(*f.key(4, count)) is None
    assert f.forget(4, count) is False
    f(4, count)
    assert count_calls(count) == 2


def test_bare_decorator_form(store):
    f = store.memoize(add)
    g = store.memoize()(add)
    assert f.key(1) == g.key(1)
    assert f(1) == g(1) == 3


class Scaler:
    def __init__(self, k):
        self.k = k

    def times(self, x):
        return self.k * x


def test_method_hashes_self(store):
    Scaler.memo_times = store.memoize(Scaler.times)
    try:
        assert Scaler(2).memo_times(5) == 10
        assert Scaler(3).memo_times(5) == 15
        k = Scaler.memo_times.key(Scaler(2), 5)[0]
        assert k.startswith("test_memoize:Scaler.times/")
        assert Scaler.memo_times.key(Scaler(3), 5)[0] != k
    finally:
        del Scaler.memo_times


# --- a store that cannot keep the result -----------------------------------------------------


def big(n):
    return bytes([n]) * (4 << 20)


def test_full_store_returns_the_result_with_a_warning(small_fs):
    with larder.Store(str(small_fs / "s"), create=True) as s:
        f = s.memoize(big)
        with pytest.warns(larder.NotStoredWarning) as rec:
            assert f(9) == big(9)
        # Pointed at the caller's line, not at memoize's insides.
        assert any(r.filename == __file__ for r in rec), [r.filename for r in rec]
        assert s.get(*f.key(9)) is None


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere")
def test_read_only_store_returns_the_result_with_a_warning(tmp_path):
    with read_only_store(tmp_path / "ro") as path, larder.Store(str(path)) as s:
        f = s.memoize(big)
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            assert f(3) == big(3)
        assert any(issubclass(x.category, larder.NotStoredWarning) for x in w)
