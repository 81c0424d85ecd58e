"""Hasher and xxh3_128: XXH3-128, the hash larder checks entries with."""

import threading

import pytest

import larder

# XXH3-128 of b"" and b"abc" (xxHash's reference values, canonical form).
EMPTY = "99aa06d3014798d86001c324468d497f"
ABC = "06b05ab6733a618578af5f94892f3950"


def test_known_values():
    assert larder.xxh3_128(b"").hex() == EMPTY
    assert larder.xxh3_128(b"abc").hex() == ABC
    assert len(larder.xxh3_128(b"abc")) == 16


def test_streaming_equals_one_shot():
    data = bytes(range(256)) * 5000
    h = larder.Hasher()
    for i in range(0, len(data), 7777):
        h.update(memoryview(data)[i:i + 7777])
    assert h.digest() == larder.xxh3_128(data)
    assert h.hexdigest() == larder.xxh3_128(data).hex()
    assert larder.Hasher(b"abc").hexdigest() == ABC


def test_numpy_buffer_without_copy():
    np = pytest.importorskip("numpy")
    a = np.arange(1_000_000, dtype=np.int64)
    assert larder.xxh3_128(a) == larder.xxh3_128(a.tobytes())


def test_threads_hash_at_once():
    data = b"x" * (4 << 20)
    want = larder.xxh3_128(data)
    got = []

    def work():
        got.append(larder.xxh3_128(data))

    ts = [threading.Thread(target=work) for _ in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert got == [want] * 4


def test_bad_input():
    with pytest.raises(TypeError):
        larder.xxh3_128("text")
    with pytest.raises(TypeError):
        larder.Hasher().update(3)
