"""The compat modules fill through memoize's path: a store that cannot
keep a result gives the caller the function's own result and a
NotStoredWarning pointing at the caller's line, as memoize does."""


import pytest

import larder
from larder.compat import diskcache as ldiskcache
from larder.compat import joblib as ljoblib


def big(n):
    return bytes([n]) * (4 << 20)


@pytest.mark.parametrize("mmap_mode", [None, "r"])
def test_joblib_full_store_returns_the_result_with_a_warning(small_fs, mmap_mode):
    mem = ljoblib.Memory(str(small_fs / "j"), verbose=0, mmap_mode=mmap_mode)
    f = mem.cache(big)
    with pytest.warns(larder.NotStoredWarning) as rec:
        assert f(7) == big(7)
    assert any(r.filename == __file__ for r in rec), [r.filename for r in rec]
    assert not f.check_call_in_cache(7)


def test_diskcache_full_store_returns_the_result_with_a_warning(small_fs):
    cache = ldiskcache.Cache(str(small_fs / "d"))
    f = cache.memoize()(big)
    with pytest.warns(larder.NotStoredWarning) as rec:
        assert f(5) == big(5)
    assert any(r.filename == __file__ for r in rec), [r.filename for r in rec]
    cache.close()
