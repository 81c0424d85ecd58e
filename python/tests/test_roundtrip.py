"""Round trips through put/get/writer/remove and the entry's fields."""

import time

import pytest

import larder


@pytest.mark.parametrize("key", ["k", b"k", "clé-ü", b"\x00\xff\x01"])
@pytest.mark.parametrize("version", [None, "v1", b"\x00v"])
def test_put_get_round_trip(store, key, version):
    data = bytes(range(256)) * 3
    assert store.put(key, data, version) is True
    e = store.get(key, version)
    assert e is not None
    assert bytes(e) == data
    assert len(e) == len(data)
    if version is not None:
        want = version.encode() if isinstance(version, str) else version
        assert e.version == want


def test_str_key_is_its_utf8_bytes(store):
    store.put("clé", b"x", "v")
    assert bytes(store.get("clé".encode(), b"v")) == b"x"


def test_second_equal_put_returns_false(store):
    assert store.put("k", b"x", "v") is True
    assert store.put("k", b"x", "v") is False


def test_meta_and_times(store):
    before = time.time()
    store.put("k", b"x", "v", ttl=100, meta=b"m\x00eta")
    e = store.get("k", "v")
    assert e.meta == b"m\x00eta"
    assert before - 1 <= e.created <= time.time() + 1
    assert e.expires == pytest.approx(e.created + 100, abs=1.5)
    store.put("n", b"x", "v")
    e = store.get("n", "v")
    assert e.meta is None
    assert e.expires is None


def test_ttl_never_overrides_namespace(store):
    store.put("k", b"x", "v", ttl=larder.NEVER)
    assert store.get("k", "v").expires is None


def test_empty_payload(store):
    assert store.put("e", b"", "v")
    e = store.get("e", "v")
    assert e is not None and len(e) == 0 and bytes(e) == b""
    assert e  # a hit, though empty: only a miss is falsy (None)
    assert memoryview(e).nbytes == 0


def test_ten_megabytes(store):
    data = (bytes(range(251)) * (10 * 1024 * 1024 // 251 + 1))[: 10 << 20]
    store.put("big", memoryview(data), "v")
    e = store.get("big", "v")
    assert len(e) == len(data)
    assert memoryview(e) == data


def test_any_bytes_like_data(store):
    import array

    a = array.array("i", range(1000))
    store.put("a", a, "v")
    assert bytes(store.get("a", "v")) == a.tobytes()
    store.put("b", bytearray(b"xyz"), "v")
    assert bytes(store.get("b", "v")) == b"xyz"


def test_versionless_get_takes_the_head(store):
    store.put("k", b"one", "1")
    store.put("k", b"two", "2")
    e = store.get("k")
    assert bytes(e) == b"two" and e.version == b"2"


def test_writer_streams_and_commits(store):
    with store.writer("w", "v", meta=b"m") as w:
        for i in range(100):
            w.write(bytes([i]) * 1000)
    e = store.get("w", "v")
    assert bytes(e) == b"".join(bytes([i]) * 1000 for i in range(100))
    assert e.meta == b"m"


def test_writer_aborts_on_exception(store):
    with pytest.raises(KeyError):
        with store.writer("w", "v") as w:
            w.write(b"partial")
            raise KeyError("boom")
    assert store.get("w", "v") is None
    with pytest.raises(ValueError):
        w.write(b"more")


def test_remove(store):
    store.put("k", b"x", "v")
    assert store.remove("k", "v") is True
    assert store.get("k", "v") is None
    assert store.remove("k", "v") is False


def test_namespaces(store):
    other = store.namespace("other")
    assert other.ns == "other"
    other.put("k", b"in-other", "v")
    assert store.get("k", "v") is None
    assert bytes(store.get("k", "v", ns="other")) == b"in-other"
    store.put("k", b"in-default", "v")
    assert bytes(other.get("k", "v")) == b"in-other"
    assert isinstance(other, larder.Store)


def test_store_default_ns(tmp_path):
    with larder.Store(str(tmp_path / "s"), create=True, ns="mine") as s:
        s.put("k", b"x")
        assert s.get("k", ns="default") is None
        assert bytes(s.namespace("mine").get("k")) == b"x"


def test_default_path_is_larder_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("LARDER_DIR", str(tmp_path / "env"))
    with larder.Store(create=True) as s:
        assert s.path == str(tmp_path / "env")


def test_default_path_is_xdg_then_home(tmp_path, monkeypatch):
    monkeypatch.delenv("LARDER_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    with larder.Store(create=True) as s:
        assert s.path == str(tmp_path / "larder")
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "h"))
    (tmp_path / "h" / ".cache").mkdir(parents=True)
    with larder.Store(create=True) as s:
        assert s.path == str(tmp_path / "h" / ".cache" / "larder")


def test_stats(store):
    store.put("k", b"x", "v")
    store.get("k", "v")
    store.get("nope", "v")
    st = store.stats()
    assert st["handle"]["hits"] == 1
    assert st["handle"]["misses"] == 1
    assert st["handle"]["published"] == 1
    assert "counters" in st and "namespaces" in st


def test_files_version(store, tmp_path):
    f = tmp_path / "in.txt"
    f.write_bytes(b"one")
    v1 = store.files_version([str(f)])
    assert v1.startswith("files/1 ") and len(v1) == 40
    assert store.files_version([f]) == v1
    f.write_bytes(b"two")
    assert store.files_version([str(f)]) != v1
    with pytest.raises(larder.NotFoundError):
        store.files_version([str(tmp_path / "missing")])
