"""An entry is a read-only view of the mapping, never a copy."""

import gc

import pytest

import larder

np = pytest.importorskip("numpy")

MB = 1 << 20


def rss_anon_kib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("RssAnon:"):
                return int(line.split()[1])
    pytest.skip("no RssAnon in /proc/self/status")


def chunk(i):
    return bytes([i % 251]) * MB


def test_memoryview_and_array_are_views_of_the_entry(store):
    store.put("k", bytes(range(256)) * 4096, "v")
    e = store.get("k", "v")
    m = memoryview(e)
    assert m.obj is e
    assert m.readonly
    a = np.frombuffer(e, dtype=np.uint8)
    assert a.base is not None and not a.flags.owndata
    assert not a.flags.writeable
    with pytest.raises(ValueError):
        a[0] = 1
    with pytest.raises(TypeError):
        m[0] = 1


def test_hundred_megabyte_get_grows_anonymous_memory_below_a_mebibyte(store):
    n = 100
    with store.writer("big", "v") as w:
        for i in range(n):
            w.write(chunk(i))
    gc.collect()
    before = rss_anon_kib()
    e = store.get("big", "v")
    assert e.mapped
    a = np.frombuffer(e, dtype=np.uint8)
    # Touch every page: a copy would show here, a mapping does not
    # (its pages are the file's, not anonymous memory).
    total = int(a.sum(dtype=np.uint64))
    grown = rss_anon_kib() - before
    assert grown < 1024, "anonymous memory grew by %d KiB" % grown
    assert total == sum((i % 251) * MB for i in range(n))
    assert len(e) == n * MB
    del a
    e.release()


def test_release_keeps_exports_alive(store):
    data = bytes(range(256)) * (64 * 1024)  # 16 MiB: mapped
    store.put("k", data, "v")
    e = store.get("k", "v")
    a = np.frombuffer(e, dtype=np.uint8)
    m = memoryview(e)
    e.release()
    assert e.released
    # What was exported before the release still reads the payload.
    assert a[12345] == data[12345] and bytes(m[:4]) == data[:4]
    with pytest.raises(BufferError):
        memoryview(e)
    with pytest.raises(ValueError):
        len(e)
    with pytest.raises(ValueError):
        e.version
    del m
    assert int(a[-1]) == data[-1]
    del a


def test_entry_outlives_its_store(tmp_path):
    s = larder.Store(str(tmp_path / "s"), create=True)
    s.put("k", b"kept", "v")
    e = s.get("k", "v")
    s.close()
    assert bytes(e) == b"kept"


def test_entry_context_manager_releases(store):
    store.put("k", b"x", "v")
    with store.get("k", "v") as e:
        assert bytes(e) == b"x"
    assert e.released
    with pytest.raises(BufferError):
        bytes(e)
