"""larder.compat.joblib.Memory: joblib-style code gives what Debian's
joblib gives, with one call for a herd where joblib makes one per
process."""

import multiprocessing

import pytest

import larder
from helpers import CALLS, TIMEOUT, count_calls, gather, record_call
from larder.compat import joblib as ljoblib

np = pytest.importorskip("numpy")
joblib = pytest.importorskip("joblib")

CTX = multiprocessing.get_context("fork")


def features(n, scale=1.0, verbose=False):
    CALLS.append(("features", n, scale))
    return {"n": n, "values": np.arange(n, dtype=np.float64) * scale, "label": "f%d" % n}


def square(x):
    CALLS.append(("square", x))
    return x * x


def failing(x):
    CALLS.append(("failing", x))
    raise RuntimeError("no result for %r" % (x,))


def big(n):
    CALLS.append(("big", n))
    return np.arange(n, dtype=np.int64)


def both(tmp_path):
    """A real joblib.Memory and ours, each in its own directory."""
    return (joblib.Memory(str(tmp_path / "joblib"), verbose=0),
            ljoblib.Memory(str(tmp_path / "larder"), verbose=0))


def run_typical(memory):
    """Typical joblib-style code; what it returns, and the calls made."""
    del CALLS[:]
    f = memory.cache(features)
    g = memory.cache(ignore=["verbose"])(features)
    sq = memory.cache(square)
    out = []
    for n, scale in [(3, 1.0), (3, 1.0), (4, 2.0), (3, 1.0), (4, 2.0)]:
        r = f(n, scale=scale)
        out.append((r["n"], r["values"].tolist(), r["label"]))
    out.append(g(5, verbose=True)["values"].tolist())
    out.append(g(5, verbose=False)["values"].tolist())
    out.append([sq(x) for x in (2, 3, 2, 3, 4)])
    out.append(sq.check_call_in_cache(2))
    out.append(sq.check_call_in_cache(99))
    sq.clear(warn=False)
    out.append(sq.check_call_in_cache(2))
    out.append(sq(2))
    out.append(sq.call(2)[0])
    memory.clear(warn=False)
    out.append(f.check_call_in_cache(3, scale=1.0))
    out.append(f(3, scale=1.0)["label"])
    return out, list(CALLS)


def test_typical_code_matches_joblib(tmp_path):
    real, ours = both(tmp_path)
    got_real = run_typical(real)
    got_ours = run_typical(ours)
    assert got_ours == got_real
    # And the calls were really cached: features(3) ran once before the
    # clear, square(2) once before and once after sq.clear, once by call.
    assert got_ours[1].count(("features", 3, 1.0)) == 2
    assert got_ours[1].count(("features", 5, 1.0)) == 1
    assert got_ours[1].count(("square", 2)) == 3


def test_location_none_caches_nothing(tmp_path):
    for memory in (joblib.Memory(None, verbose=0), ljoblib.Memory(None)):
        del CALLS[:]
        sq = memory.cache(square)
        assert [sq(3), sq(3)] == [9, 9]
        assert CALLS == [("square", 3)] * 2
        assert sq.check_call_in_cache(3) is False


def test_exception_caches_nothing(tmp_path):
    for memory in both(tmp_path):
        del CALLS[:]
        f = memory.cache(failing)
        for _ in range(2):
            with pytest.raises(RuntimeError, match="no result for 7"):
                f(7)
        assert CALLS == [("failing", 7)] * 2
        assert f.check_call_in_cache(7) is False


def test_mmap_mode_r_arrays_are_readonly_and_zero_copy(tmp_path):
    memory = ljoblib.Memory(str(tmp_path / "s"), mmap_mode="r")
    f = memory.cache(big)
    n = 1 << 20  # 8 MiB: mapped, not copied
    first = f(n)
    again = f(n)
    assert CALLS == [("big", n)]
    for a in (first, again):
        assert np.array_equal(a, np.arange(n, dtype=np.int64))
        assert not a.flags.writeable
        assert not a.flags.owndata
        with pytest.raises(ValueError, match="read-only"):
            a[0] = 1
        # Its memory is the entry's: the chain of bases ends at a view of
        # a larder.Entry, and that entry is a mapping of its file.
        base = a
        while isinstance(base, np.ndarray):
            base = base.base
        assert isinstance(base, memoryview)
        assert isinstance(base.obj, larder.Entry)
        assert base.obj.mapped


def test_mmap_mode_none_gives_writable_arrays(tmp_path):
    for memory in both(tmp_path):
        f = memory.cache(big)
        for a in (f(1000), f(1000)):
            a[0] = 42  # a private copy, as joblib's
            assert a[0] == 42


def test_bad_arguments_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="mmap_mode='r\\+' is not supported"):
        ljoblib.Memory(str(tmp_path / "s"), mmap_mode="r+")
    with pytest.raises(ValueError, match="backend='s3'"):
        ljoblib.Memory(str(tmp_path / "s"), backend="s3")
    memory = ljoblib.Memory(str(tmp_path / "s"))
    with pytest.raises(ValueError, match="ignore names no parameter of features: nope"):
        memory.cache(features, ignore=["nope"])
    with pytest.raises(TypeError, match="list of parameter names"):
        memory.cache(features, ignore="verbose")
    with pytest.raises(ValueError, match="lambda"):
        memory.cache(lambda x: x)
    with pytest.raises(ValueError, match="mmap_mode='w\\+'"):
        memory.cache(features, mmap_mode="w+")


# --- a herd ------------------------------------------------------------------

# Set in each forked child before the call.
HERD = {}


def herd_func(x):
    record_call(HERD["count"])
    inside = HERD.get("inside")
    if inside is not None:
        # Real joblib: every process of the herd is in here at once,
        # which proves one call per process (a joblib that filled once
        # would leave this barrier broken by its timeout).
        inside.wait(TIMEOUT)
    return np.full(1000, x, dtype=np.int64)


def herd_member(kind, location, count, start, inside, results):
    try:
        HERD["count"] = count
        HERD["inside"] = inside
        start.wait(TIMEOUT)
        if kind == "joblib":
            memory = joblib.Memory(location, verbose=0)
        else:
            memory = ljoblib.Memory(location)
        f = memory.cache(herd_func)
        a = f(7)
        results.put(bool(np.array_equal(a, np.full(1000, 7))))
    except Exception as exc:  # reported to the parent
        start.abort()  # the others fail now, not at the timeout
        results.put(repr(exc))


def run_herd(kind, location, count, n=8):
    start = CTX.Barrier(n)
    inside = CTX.Barrier(n) if kind == "joblib" else None
    results = CTX.Queue()
    procs = [CTX.Process(target=herd_member, args=(kind, location, count, start, inside, results))
             for _ in range(n)]
    got, codes = gather(procs, results)
    assert codes == [0] * n
    assert got == [True] * n, got
    return count_calls(count)


def test_herd_of_8_calls_once_where_joblib_calls_8_times(tmp_path):
    # Nothing made first: the 8 Memory objects create the store at once.
    assert run_herd("joblib", str(tmp_path / "joblib"), str(tmp_path / "count-joblib")) == 8
    assert run_herd("larder", str(tmp_path / "larder"), str(tmp_path / "count-larder")) == 1
