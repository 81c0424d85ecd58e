"""Bad input gives clear exceptions, never a crash."""

import errno
import os

import pytest

import larder
from helpers import read_only_store


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
    with read_only_store(tmp_path / "ro") as path, larder.Store(str(path)) as s:
        data = bytearray(b"keep me")
        with pytest.warns(larder.NotStoredWarning):
            assert s.put("k", data, "v") is False
        assert data == b"keep me"


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


# A store made by another user, read-only for us: reads work, writes warn
# and hand the caller's data back, nothing raises but what must (remove).
# Run as `nobody` on a store root made, so that it runs where the tests
# run as root (where test_read_only_store_warns_and_keeps_data skips).
OTHER_USER = r'''
import os, sys, warnings
import larder

path = sys.argv[1]
warnings.simplefilter("error", larder.NotStoredWarning)
s = larder.Store(path)
assert bytes(s.get("there", "v")) == b"made by root"


def not_stored(call):
    with warnings.catch_warnings(record=True) as got:
        warnings.simplefilter("always")
        r = call()
    assert [w.category for w in got] == [larder.NotStoredWarning], got
    assert "Permission denied" in str(got[0].message), got[0].message
    return r


data = bytearray(b"keep me")
assert not_stored(lambda: s.put("k", data, "v")) is False
assert data == b"keep me"


def stream():
    with s.writer("w", "v") as w:
        w.write(b"abc")
        w.write(b"def")
    return w


w = not_stored(stream)
try:
    w.write(b"x")
    raise AssertionError("a committed writer took a write")
except ValueError:
    pass
e, o = not_stored(lambda: s.get_or_fill("f", "v", lambda: b"filled"))
assert o == "filled-uncached" and bytes(e) == b"filled", (o, bytes(e))
e, o = s.get_or_fill("there", "v", lambda: b"not called")
assert o == "hit" and bytes(e) == b"made by root"


def twice(x):
    return x * 2


twice.__module__, twice.__qualname__ = "other_user", "twice"
assert not_stored(lambda: s.memoize(twice)(21)) == 42
try:
    s.remove("there", "v")
    raise AssertionError("removed from a read-only store")
except larder.PermissionDeniedError as err:
    assert path in str(err), err
try:
    larder.Store(os.path.join(path, "sub"), create=True)
    raise AssertionError("made a store in a read-only directory")
except larder.PermissionDeniedError:
    pass
assert s.get("k", "v") is None and s.get("w", "v") is None
s.close()
print("ok")
'''


@pytest.mark.skipif(os.geteuid() != 0, reason="running as another user "
                    "needs root")
def test_store_of_another_user_is_read_only_for_us(tmp_path):
    import pwd
    import shutil
    import subprocess
    import sys
    import tempfile

    try:
        nobody = pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("no user nobody")
    # Not under tmp_path: nobody must reach the store.
    d = tempfile.mkdtemp(prefix="larder-other-user.")
    try:
        os.chmod(d, 0o755)
        with larder.Store(os.path.join(d, "s"), create=True, mode=0o644) as s:
            s.put("there", b"made by root", "v")
        script = os.path.join(d, "other_user.py")
        with open(script, "w") as f:
            f.write(OTHER_USER)
        os.chmod(script, 0o644)
        r = subprocess.run([sys.executable, script, os.path.join(d, "s")],
                           user=nobody.pw_uid, group=nobody.pw_gid,
                           extra_groups=[], cwd=d, capture_output=True,
                           text=True, timeout=120)
        if r.returncode != 0 and "No module named" in r.stderr:
            pytest.skip("user nobody cannot read the package: %s"
                        % r.stderr.strip().splitlines()[-1])
        assert (r.returncode, r.stdout.strip()) == (0, "ok"), r.stderr
    finally:
        shutil.rmtree(d)


def test_store_path_is_a_file(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    for create in (False, True):
        with pytest.raises(larder.NotAStoreError, match="not a directory"):
            larder.Store(str(f), create=create)
    with pytest.raises(larder.Error):
        larder.Store(str(f / "sub"), create=True)
    assert f.read_text() == "x"


def test_released_entry_keeps_views_taken_before(store):
    store.put("k", b"payload", "v")
    e = store.get("k", "v")
    view = memoryview(e)
    with e:
        pass
    assert e.released
    # The view taken before the release still reads the data; the entry
    # itself gives nothing more.
    assert bytes(view) == b"payload"
    for call in (lambda: len(e), lambda: e.version, lambda: e.created,
                 lambda: e.expires, lambda: e.mapped, lambda: e.__enter__()):
        with pytest.raises(ValueError, match="released"):
            call()
    with pytest.raises(BufferError, match="released"):
        memoryview(e)
    view.release()


@pytest.mark.parametrize("bad", [
    dict(version=5), dict(meta=5), dict(ttl="1"), dict(ttl=True),
    dict(ns=b"x")])
def test_wrong_argument_types_say_which(store, bad):
    name = next(iter(bad))
    with pytest.raises(TypeError, match=name):
        store.put("k", b"x", **bad)


def test_loader_returning_the_wrong_type(store):
    for loader, what in ((lambda: "text", "not str"),
                         (lambda: None, "None"),
                         (lambda: 12, "the loader returned int: return a bytes-like"),
                         (lambda: iter([b"a", 3]), "int")):
        with pytest.raises(TypeError, match=what):
            store.get_or_fill("k", "v", loader)
        # Nothing was published by the failed fill.
        assert store.get("k", "v") is None
    with pytest.raises(TypeError, match="version"):
        store.get_or_fill("k", lambda: 3, lambda: b"x")
