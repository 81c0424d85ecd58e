"""Serializers: round trips, zero-copy loads, alignment, damaged entries."""

import dataclasses
import io
import mmap

import pytest

from helpers import peak_allocated
from larder import serial
from larder.serial import ALIGN, MAGIC, SerialError, dump, load

np = pytest.importorskip("numpy")
pd = pytest.importorskip("pandas")


@dataclasses.dataclass
class Point:
    x: int
    y: float


def write_mapped(bufs, total):
    """Write the pieces one by one into a fresh mapping, as a writer would.

    Returns a read-only memoryview over exactly the entry; the mapping
    starts on a page, so offsets in the entry are addresses modulo 64.
    """
    m = mmap.mmap(-1, max(total, 1))
    at = 0
    for b in bufs:
        n = memoryview(b).nbytes
        m[at : at + n] = b
        at += n
    assert at == total
    return memoryview(m)[:total].toreadonly()


def entry(obj, serializer="auto"):
    tag, bufs, total = dump(obj, serializer)
    return tag, write_mapped(bufs, total)


def roundtrip(obj, serializer="auto"):
    tag, mv = entry(obj, serializer)
    return tag, load(mv), mv


def addr(mv):
    return np.frombuffer(mv, dtype=np.uint8).__array_interface__["data"][0]


def assert_inside(arr, mv):
    """arr's data lies in mv (no copy) and is 64-byte aligned there."""
    start = addr(mv)
    a = arr.__array_interface__["data"][0]
    assert start <= a and a + arr.nbytes <= start + len(mv)
    assert (a - start) % ALIGN == 0
    assert not arr.flags.owndata
    assert not arr.flags.writeable


# --- plain values -------------------------------------------------------------


@pytest.mark.parametrize(
    "obj",
    [
        "text é",
        0,
        -(2**100),
        1.5,
        None,
        True,
        (1, "a", None),
        [1, [2, [3, {"k": (4, 5)}]]],
        {"a": 1, 2: [b"x"]},
        {1, 2, 3},
        Point(1, 2.0),
        b"",
    ],
)
def test_roundtrip_values(obj):
    tag, back, _ = roundtrip(obj)
    assert back == obj
    assert type(back) is type(obj)
    assert tag == ("bytes" if isinstance(obj, bytes) else "pickle")


def test_bytes_are_raw():
    data = b"written by the CLI"
    tag, bufs, total = dump(data)
    assert tag == "bytes" and total == len(data)
    assert b"".join(bytes(b) for b in bufs) == data
    assert load(data) == data
    # Any bytes-like goes in; what comes back is bytes.
    for like in (bytearray(data), memoryview(data)):
        tag, back, _ = roundtrip(like)
        assert tag == "bytes" and back == data and type(back) is bytes


@pytest.mark.parametrize("payload", [MAGIC, MAGIC + b"more", MAGIC[:7] + b"\x07 other version"])
def test_bytes_that_look_tagged_roundtrip(payload):
    tag, back, mv = roundtrip(payload)
    assert tag == "bytes" and back == payload
    assert len(mv) > len(payload)  # wrapped, not raw


def test_raw_bytes_never_need_a_hint():
    rng = np.random.default_rng(1)
    for n in (0, 1, 7, 8, 63, 64, 65, 1000):
        raw = rng.integers(0, 256, n, dtype=np.uint8).tobytes()
        assert load(raw) == raw


# --- numpy ---------------------------------------------------------------------

DTYPES = ["f8", "f4", "i1", "u2", ">i4", "i8", "c16", "?", "M8[ns]", "m8[s]", "U5", [("a", "i4"), ("b", "f8")]]


def sample(dtype, shape):
    n = int(np.prod(shape))
    base = np.arange(n) % 97
    dt = np.dtype(dtype)
    if dt.names:
        arr = np.zeros(n, dtype=dt)
        arr["a"] = base
        arr["b"] = base / 3
    elif dt.kind == "U":
        arr = base.astype(str).astype(dt)
    else:
        arr = base.astype(dt)
    return arr.reshape(shape)


@pytest.mark.parametrize("serializer", ["auto", "npy", "pickle"])
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_array_roundtrip_zero_copy(serializer, dtype):
    arr = sample(dtype, (6, 7))
    tag, back, mv = roundtrip(arr, serializer)
    assert tag == ("npy" if serializer == "auto" else serializer)
    assert back.dtype == arr.dtype and back.shape == arr.shape
    assert np.array_equal(back, arr)
    assert_inside(back, mv)


@pytest.mark.parametrize("serializer", ["auto", "pickle"])
@pytest.mark.parametrize(
    "make",
    [
        lambda: np.asfortranarray(sample("f8", (5, 4))),
        lambda: sample("i4", (6, 8))[::2, 1::3],
        lambda: sample("f8", (4, 5)).T[1:],
        lambda: np.array(3.25),
        lambda: np.zeros((0, 3)),
        lambda: np.zeros(0, dtype="M8[s]"),
        lambda: sample("f4", (2, 3, 4)),
    ],
    ids=["fortran", "strided", "transposed", "0-d", "empty", "empty-datetime", "3-d"],
)
def test_array_layouts(serializer, make):
    arr = make()
    _, back, mv = roundtrip(arr, serializer)
    assert back.shape == arr.shape and back.dtype == arr.dtype
    assert np.array_equal(back, arr)
    if arr.flags.f_contiguous and not arr.flags.c_contiguous:
        assert back.flags.f_contiguous
    if (arr.flags.c_contiguous or arr.flags.f_contiguous) and arr.size:
        assert_inside(back, mv)


def test_strided_array_written_in_slabs(monkeypatch):
    monkeypatch.setattr(serial, "_SLAB", 64)
    arr = sample("f8", (50, 9))[::3, ::2]
    tag, bufs, total = dump(arr)
    assert tag == "npy" and len(bufs) > 3
    back = load(write_mapped(bufs, total))
    assert np.array_equal(back, arr)


def test_object_array_goes_to_pickle():
    arr = np.array([1, "a", None], dtype=object)
    tag, back, _ = roundtrip(arr)
    assert tag == "pickle" and list(back) == list(arr)
    with pytest.raises(TypeError):
        dump(arr, "npy")


def test_npy_part_reads_with_np_load():
    arr = sample("f8", (3, 4))
    _, mv = entry(arr)
    got = np.load(io.BytesIO(mv[serial.HEADER_SIZE :].tobytes()))
    assert np.array_equal(got, arr)


def test_plain_npy_file_is_bytes_unless_asked():
    arr = sample("i8", (10,))
    f = io.BytesIO()
    np.save(f, arr)
    raw = f.getvalue()
    assert load(raw) == raw
    assert np.array_equal(load(raw, serializer="npy"), arr)


# --- pandas ---------------------------------------------------------------------


def frame():
    return pd.DataFrame(
        {
            "f": np.arange(6, dtype="f8") / 7,
            "i": np.arange(6, dtype="i8") * 3,
            "s": ["a", "bb", None, "d", "é", "f"],
            "t": pd.date_range("2024-01-01", periods=6, freq="h"),
            "c": pd.Categorical(["x", "y", "x", "z", "y", "x"]),
        },
        index=pd.Index(np.arange(10, 16), name="row"),
    )


def test_dataframe_roundtrip_numeric_columns_zero_copy():
    df = frame()
    tag, back, mv = roundtrip(df)
    assert tag == "pickle"
    pd.testing.assert_frame_equal(back, df)
    for col in ("f", "i", "t"):
        assert_inside(back[col].to_numpy(), mv)
    assert_inside(back["c"].cat.codes.to_numpy(), mv)


def test_series_roundtrip_zero_copy():
    s = pd.Series(np.linspace(0, 1, 11), name="ratio")
    _, back, mv = roundtrip(s)
    pd.testing.assert_series_equal(back, s)
    assert_inside(back.to_numpy(), mv)


def test_multiindex_and_string_series():
    idx = pd.MultiIndex.from_product([["a", "b"], [1, 2]], names=["k", "n"])
    s = pd.Series(["w", "x", "y", "z"], index=idx)
    _, back, _ = roundtrip(s)
    pd.testing.assert_series_equal(back, s)


# --- large arrays: no concatenation, no copy --------------------------------------------


def test_200mb_array_dumps_and_loads_without_copy():
    arr = np.arange(25_000_000, dtype="f8")  # 200 MB
    for serializer in ("auto", "pickle"):
        (tag, bufs, total), peak = peak_allocated(dump, arr, serializer)
        assert total >= arr.nbytes
        assert peak < 10 << 20, "%s dump allocated %d bytes" % (serializer, peak)
        mv = write_mapped(bufs, total)
        del bufs
        back, peak = peak_allocated(load, mv)
        assert peak < 1 << 20, "%s load allocated %d bytes" % (serializer, peak)
        assert_inside(back, mv)
        assert back[12345678] == 12345678.0 and back.shape == arr.shape
        del back, mv


# --- damaged entries ---------------------------------------------------------------------


def tagged_samples():
    return {
        "pickle": entry({"k": [1, 2, 3], "a": np.arange(20.0)})[1],
        "npy": entry(sample("f8", (4, 5)))[1],
        "bytes": entry(MAGIC + b"raw")[1],
    }


@pytest.mark.parametrize("kind", ["pickle", "npy", "bytes"])
def test_truncated_entry_raises(kind):
    mv = tagged_samples()[kind]
    for n in range(len(MAGIC) - 1, len(mv)):
        with pytest.raises(SerialError):
            load(mv[:n])
    # Shorter than the tag: that is raw bytes by the rule.
    assert load(mv[:6]) == mv[:6].tobytes()


@pytest.mark.parametrize("kind", ["pickle", "npy", "bytes"])
def test_corrupt_header_or_stream_raises(kind):
    mv = tagged_samples()[kind]
    # Every byte of the header, the buffer table, and the checksummed main
    # part (the pickle stream, the .npy header, the wrapped bytes).
    kind_, sub, main, crc, bufs = serial._header(mv)
    main_off = addr(main) - addr(mv)
    checked = main_off + (len(main) if kind != "npy" else len(main) - 4 * 5 * 8)
    for i in range(7, checked):
        if serial.HEADER_SIZE <= i < main_off and i >= serial.HEADER_SIZE + 16 * len(bufs):
            continue  # padding: not read
        bad = bytearray(mv)
        bad[i] ^= 0x41
        with pytest.raises(SerialError):
            load(bytes(bad))


def test_corrupt_array_data_is_not_a_crash():
    mv = tagged_samples()["npy"]
    bad = bytearray(mv)
    bad[-1] ^= 0xFF
    back = load(bytes(bad))  # the entry's own checksum is larder's job
    assert back.shape == (4, 5)


def test_newer_format_version_is_refused():
    _, mv = entry([1, 2])
    bad = bytearray(mv)
    bad[7] = 2
    with pytest.raises(SerialError, match="version 2"):
        load(bytes(bad))


def test_unpicklable_stream_raises_serial_error():
    # A valid layout around a stream naming a class that does not exist.
    import pickle
    import zlib

    stream = pickle.dumps(Point(1, 2.0), protocol=5).replace(b"Point", b"Pxint")
    bufs, total = serial._layout(serial._PICKLE, 0, stream, zlib.crc32(stream), [])
    with pytest.raises(SerialError, match="cannot unpickle"):
        load(write_mapped(bufs, total))


def test_bad_arguments():
    with pytest.raises(ValueError):
        dump(1, "yaml")
    with pytest.raises(TypeError):
        dump("not bytes", "bytes")
    with pytest.raises(TypeError):
        dump([1], "npy")
    with pytest.raises(SerialError):
        load(b"raw", serializer="pickle")


# --- optional engines ---------------------------------------------------------------------


def test_arrow_roundtrip():
    pa = pytest.importorskip("pyarrow", reason="pyarrow is not importable (Debian 12 does not package it)")
    t = pa.table({"a": [1, 2, 3], "b": ["x", "y", "z"]})
    tag, back, _ = roundtrip(t)
    assert tag == "arrow" and back.equals(t)


def test_polars_roundtrip():
    pytest.importorskip("pyarrow", reason="pyarrow is not importable (Debian 12 does not package it)")
    pl = pytest.importorskip("polars", reason="polars is not importable (Debian 12 does not package it)")
    df = pl.DataFrame({"a": [1, 2, 3]})
    tag, back, _ = roundtrip(df)
    assert tag == "arrow" and back.frame_equal(df)


def test_loaded_array_keeps_the_mapping_alive():
    m = mmap.mmap(-1, 4096 * 4)
    tag, bufs, total = dump(sample("f8", (8, 8)))
    at = 0
    for b in bufs:
        n = memoryview(b).nbytes
        m[at : at + n] = b
        at += n
    mv = memoryview(m)[:total].toreadonly()
    back = load(mv)
    del mv, bufs
    with pytest.raises(BufferError):
        m.close()  # the array still holds the mapping through its .base chain
    assert back[7, 7] == 63.0
    del back
    import gc

    gc.collect()
    m.close()


def test_damaged_plain_npy_raises():
    f = io.BytesIO()
    np.save(f, sample("f8", (5,)))
    raw = f.getvalue()
    for n in (0, 5, 9, 30, len(raw) - 1):
        with pytest.raises(SerialError):
            load(raw[:n], serializer="npy")
    bad = raw.replace(b"'<f8'", b"'<q8'")
    with pytest.raises(SerialError):
        load(bad, serializer="npy")
