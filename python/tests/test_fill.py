"""get_or_fill in one process: outcomes, loaders, exceptions."""

import pytest

import larder


def test_fill_then_hit(store):
    calls = []

    def load():
        calls.append(1)
        return b"loaded"

    e, o = store.get_or_fill("k", "v", load)
    assert (bytes(e), o) == (b"loaded", "filled")
    assert o is larder.Outcome.FILLED
    e, o = store.get_or_fill("k", "v", load)
    assert (bytes(e), o) == (b"loaded", "hit")
    assert calls == [1]


def test_loader_may_yield_chunks(store):
    def load():
        for i in range(10):
            yield bytes([i]) * 100000

    e, o = store.get_or_fill("k", "v", load, meta=b"m", ttl=60)
    assert bytes(e) == b"".join(bytes([i]) * 100000 for i in range(10))
    assert e.meta == b"m" and e.expires is not None


def test_exception_in_loader_caches_nothing(store):
    class Boom(Exception):
        pass

    err = Boom("from the loader")

    def load():
        raise err

    with pytest.raises(Boom) as info:
        store.get_or_fill("k", "v", load)
    assert info.value is err
    assert store.get("k", "v") is None
    e, o = store.get_or_fill("k", "v", lambda: b"ok")
    assert (bytes(e), o) == (b"ok", "filled")


def test_exception_midway_through_chunks_caches_nothing(store):
    def load():
        yield b"first"
        raise ValueError("midway")

    with pytest.raises(ValueError, match="midway"):
        store.get_or_fill("k", "v", load)
    assert store.get("k", "v") is None


def test_loader_returning_wrong_type(store):
    with pytest.raises(TypeError):
        store.get_or_fill("k", "v", lambda: None)
    with pytest.raises(TypeError):
        store.get_or_fill("k", "v", lambda: "text")
    with pytest.raises(TypeError):
        store.get_or_fill("k", "v", lambda: 42)
    assert store.get("k", "v") is None


def test_version_callable(store):
    state = {"v": "1"}
    e, o = store.get_or_fill("k", lambda: state["v"], lambda: b"a")
    assert e.version == b"1" and o == "filled"
    e, o = store.get_or_fill("k", lambda: state["v"], lambda: b"b")
    assert bytes(e) == b"a" and o == "hit"
    state["v"] = "2"
    e, o = store.get_or_fill("k", lambda: state["v"], lambda: b"b")
    assert bytes(e) == b"b" and e.version == b"2" and o == "filled"


def test_loader_may_use_the_store(store):
    store.put("other", b"inner", "v")

    def load():
        return bytes(store.get("other", "v")) + b"!"

    e, _ = store.get_or_fill("k", "v", load)
    assert bytes(e) == b"inner!"


def test_threads_share_a_store(store):
    import threading

    errors = []

    def work(i):
        try:
            for j in range(50):
                k = "k%d-%d" % (i, j)
                store.put(k, k.encode() * 100, "v")
                assert bytes(store.get(k, "v")) == k.encode() * 100
        except Exception as exc:  # reported below
            errors.append(exc)

    ts = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert errors == []
