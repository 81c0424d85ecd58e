"""Bad input gives clear exceptions, never a crash."""

import errno
import os

import pytest

import larder


def test_missing_store(tmp_path):
    with pytest.raises(larder.NotFoundError) as info:
        larder.Store(str(tmp_path / "absent"))
    assert info.value.code == -2
    assert info.value.errno == errno.ENOENT
    assert "absent" in str(info.value)
    assert isinstance(info.value, larder.Error)


def test_not_a_store(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "file").write_text("x")
    with pytest.raises(larder.NotAStoreError):
        larder.Store(str(tmp_path / "d"))


@pytest.mark.parametrize("key", [None, 1, 1.5, ["k"], object()])
def test_wrong_key_types(store, key):
    with pytest.raises(TypeError, match="key must be str or bytes"):
        store.get(key)
    with pytest.raises(TypeError, match="key must be str or bytes"):
        store.put(key, b"x")


def test_wrong_data_types(store):
    with pytest.raises(TypeError, match="not str"):
        store.put("k", "text")
    with pytest.raises(TypeError):
        store.put("k", 12)
    with pytest.raises(TypeError):
        store.put("k", None)


def test_wrong_ttl(store):
    for ttl in (0, -5, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="ttl"):
            store.put("k", b"x", ttl=ttl)
    with pytest.raises(TypeError, match="ttl"):
        store.put("k", b"x", ttl="1h")


def test_wrong_namespace(store):
    with pytest.raises(larder.InvalidError) as info:
        store.put("k", b"x", ns="bad/name")
    assert isinstance(info.value, ValueError)
    with pytest.raises(ValueError):
        store.namespace("x" * 65)
    with pytest.raises(TypeError):
        store.get("k", ns=3)


def test_huge_key(store):
    key = b"k" * (64 * 1024 * 1024 + 1)
    with pytest.raises(larder.InvalidError):
        store.put(key, b"x")
    # A key no entry can have is a miss, as for the CLI.
    assert store.get(key) is None
    del key


def test_closed_store(store):
    store.close()
    assert store.closed
    for call in (lambda: store.get("k"), lambda: store.put("k", b"x"),
                 lambda: store.writer("k"), lambda: store.remove("k"),
                 lambda: store.get_or_fill("k", "v", lambda: b""),
                 lambda: store.stats(), lambda: store.namespace("n"),
                 lambda: store.files_version(["/"])):
        with pytest.raises(ValueError, match="closed"):
            call()
    store.close()  # twice is fine


def test_view_of_a_closed_store(store):
    view = store.namespace("n")
    store.close()
    with pytest.raises(ValueError, match="closed"):
        view.get("k")


def test_close_refused_while_a_writer_is_open(store):
    w = store.writer("k", "v")
    with pytest.raises(RuntimeError, match="in use"):
        store.close()
    w.abort()
    store.close()


def test_released_entry(store):
    store.put("k", b"x", "v")
    e = store.get("k", "v")
    e.release()
    e.release()
    with pytest.raises(ValueError, match="released"):
        e.meta
    with pytest.raises(BufferError):
        bytes(e)


def test_writer_after_commit(store):
    w = store.writer("k", "v")
    w.write(b"x")
    assert w.commit() is True
    with pytest.raises(ValueError, match="committed or aborted"):
        w.write(b"y")
    with pytest.raises(ValueError):
        w.commit()
    w.abort()


def test_loader_not_callable(store):
    with pytest.raises(TypeError, match="callable"):
        store.get_or_fill("k", "v", b"data")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere")
def test_read_only_store_warns_and_keeps_data(tmp_path):
    path = tmp_path / "ro"
    larder.Store(str(path), create=True).close()
    os.chmod(path / "ns", 0o555)
    try:
        with larder.Store(str(path)) as s:
            data = bytearray(b"keep me")
            with pytest.warns(larder.NotStoredWarning):
                assert s.put("k", data, "v") is False
            assert data == b"keep me"
    finally:
        os.chmod(path / "ns", 0o755)


def test_error_hierarchy():
    for name in ("InvalidError", "NotFoundError", "BusyError",
                 "WaitTimeoutError", "CorruptError", "NewerFormatError",
                 "FullError", "PermissionDeniedError", "NoMemoryError",
                 "IOFailureError", "StaleError", "NotAStoreError",
                 "CanceledError", "CallbackError"):
        assert issubclass(getattr(larder, name), larder.Error)
    assert issubclass(larder.FullError, OSError)
    assert issubclass(larder.InvalidError, ValueError)
    assert issubclass(larder.NotStoredWarning, UserWarning)


def test_full_disk_warns_and_keeps_data(small_fs):
    with larder.Store(str(small_fs / "s"), create=True) as s:
        data = bytearray(b"x" * (4 << 20))
        with pytest.warns(larder.NotStoredWarning, match="not stored"):
            assert s.put("k", data, "v") is False
        assert data == b"x" * (4 << 20)
        with pytest.warns(larder.NotStoredWarning):
            with s.writer("w", "v") as w:
                w.write(data)
        assert s.get("k", "v") is None
        assert s.get("w", "v") is None


def test_full_disk_fill_hands_the_data_over(small_fs):
    with larder.Store(str(small_fs / "s"), create=True) as s:
        data = b"x" * (4 << 20)
        with pytest.warns(larder.NotStoredWarning):
            e, o = s.get_or_fill("f", "v", lambda: data)
        assert o == "filled-uncached" and bytes(e) == data
