"""Serializers: how a Python object becomes one larder entry and back.

docs/python.md, "Serializers", says what each serializer stores and how it
loads (zero-copy arrays and columns, read-only) and how "auto" chooses.
``dump(obj, serializer="auto")`` returns ``(tag, buffers, total_len)``,
the buffers pointing into obj (never a concatenated copy); ``load(buf)``
rebuilds the object from any buffer holding a whole entry, without a hint.
Offsets are counted from the entry's first byte: larder places a payload
of 64 KiB or more at a page boundary of its entry file (docs/format.md),
so in a mapped entry they are 64-byte aligned addresses too.

The tag rule
------------

A tagged entry starts with the 8-byte magic ``b"\\x89LDR\\r\\n\\x00\\x01"``:
a byte with the high bit set (not ASCII, and not a valid first byte of
UTF-8), the letters, CR LF (a transfer that rewrites line ends breaks
it), a NUL (no text has one) and the format version 1. Then a 64-byte
header (little-endian)::

    0   8  magic (the last byte is the format version)
    8   1  serializer: 1 pickle, 2 npy, 3 bytes, 4 arrow
    9   1  sub-kind (arrow: 0 pyarrow Table, 1 RecordBatch,
           2 polars DataFrame, 3 polars Series; else 0)
    10  2  reserved, 0
    12  4  number of out-of-band buffers N
    16  8  total length of the entry
    24  8  offset of the main part (pickle stream, .npy, bytes, Arrow)
    32  8  length of the main part
    40  4  CRC-32 of the main part (pickle, bytes), of the .npy
           header (npy: not of its data), or 0 (arrow)
    44  4  CRC-32 of bytes 0..63 and of the buffer table, this field 0
    48 16  reserved, 0
    64 16*N  buffer table: (offset, length) of each out-of-band buffer

then padding to a multiple of 64, the main part, and each buffer at the
next multiple of 64. ``load`` reads an entry as tagged exactly when it
starts with the magic's first 7 bytes (whatever its version byte, so that
an entry of a newer format is refused, not taken for bytes); a tagged
entry that does not check out (another format version, wrong CRC,
offsets or lengths outside the entry, unknown serializer, truncated)
raises ``SerialError`` -- which larder treats as a miss. Random bytes
start with those 7 bytes with a chance of 2**-56; a raw payload that
does start with them is not left to chance:
``dump(data, "bytes")`` wraps it in a tagged ``"bytes"`` entry (serializer
3), so every dump loads back as what was dumped.

The header, the pickle stream, the .npy header and wrapped bytes are
checksummed here, so a damaged one is refused rather than misread (and a
damaged pickle stream is never run); array data is not, so that loading a
large array stays zero-copy and touches none of its pages: larder
verifies the whole entry's checksum before ``load`` sees it.
"""

import importlib
import pickle
import struct
import sys
import zlib

__all__ = ["dump", "load", "SerialError", "MAGIC", "HEADER_SIZE", "ALIGN", "SERIALIZERS"]

MAGIC = b"\x89LDR\r\n\x00\x01"
_PREFIX = MAGIC[:7]
HEADER_SIZE = 64
ALIGN = 64
SERIALIZERS = ("auto", "bytes", "pickle", "npy", "arrow")

_PICKLE, _NPY, _BYTES, _ARROW = 1, 2, 3, 4
_NAMES = {_PICKLE: "pickle", _NPY: "npy", _BYTES: "bytes", _ARROW: "arrow"}
# magic, serializer, sub-kind, reserved, N, total, main offset, main length,
# main CRC, header CRC, reserved
_HEAD = struct.Struct("<8sBBHIQQQII16s")
_ENTRY = struct.Struct("<QQ")
_NPY_MAGIC = b"\x93NUMPY"
# A non-contiguous array is written in slabs of about this many bytes.
_SLAB = 8 << 20

assert _HEAD.size == HEADER_SIZE


class SerialError(ValueError):
    """A tagged entry that cannot be read: truncated, corrupt or unknown."""


def _pad(n):
    return -n % ALIGN


def _zeros(n):
    return bytes(n)


def _is_byteslike(obj):
    return isinstance(obj, (bytes, bytearray, memoryview))


def _numpy():
    # numpy is only imported when the caller already uses it (an object
    # cannot be an ndarray otherwise), so plain bytes and pickle do not pay
    # for the import.
    return sys.modules.get("numpy")


def _layout(kind, sub, main, main_crc, oob):
    """Header, main part and buffers laid out at multiples of ALIGN.

    main and every element of oob are bytes-like pieces (or, for main, a
    list of pieces); returns (buffers, total_len).
    """
    mains = main if isinstance(main, list) else [main]
    main_len = sum(memoryview(p).nbytes for p in mains)
    table_len = _ENTRY.size * len(oob)
    pos = HEADER_SIZE + table_len
    pos += _pad(pos)
    main_off = pos
    pos += main_len
    entries = []
    for b in oob:
        pos += _pad(pos)
        n = memoryview(b).nbytes
        entries.append((pos, n))
        pos += n
    total = pos
    table = b"".join(_ENTRY.pack(o, n) for o, n in entries)
    head = _HEAD.pack(MAGIC, kind, sub, 0, len(oob), total, main_off, main_len, main_crc, 0, bytes(16))
    crc = zlib.crc32(table, zlib.crc32(head))
    head = head[:44] + struct.pack("<I", crc) + head[48:]
    out = [head + table]
    if main_off > HEADER_SIZE + table_len:
        out.append(_zeros(main_off - HEADER_SIZE - table_len))
    out.extend(p for p in mains if memoryview(p).nbytes)
    at = main_off + main_len
    for b, (off, n) in zip(oob, entries):
        if off > at:
            out.append(_zeros(off - at))
        if n:
            out.append(b)
        at = off + n
    return out, total


# --- pickle ------------------------------------------------------------------


def _rebuild_datetime(buf, dtype, shape, order):
    """Rebuild a datetime64/timedelta64 array over an out-of-band buffer."""
    import numpy as np

    return np.frombuffer(buf, dtype=np.int64).view(dtype).reshape(shape, order=order)


class _Pickler(pickle.Pickler):
    # numpy cannot export datetime64 memory through the buffer protocol, so
    # its own reduction pickles such arrays in band (a copy on load); viewing
    # them as int64 lets them go out of band and load zero-copy like numbers.
    def reducer_override(self, obj):
        np = _numpy()
        if np is None or type(obj) is not np.ndarray or obj.dtype.kind not in "mM":
            return NotImplemented
        if obj.dtype.itemsize != 8 or obj.ndim == 0 or not obj.dtype.isnative:
            return NotImplemented
        if obj.flags.c_contiguous:
            order, flat = "C", obj.reshape(-1)
        elif obj.flags.f_contiguous:
            order, flat = "F", obj.T.reshape(-1)
        else:
            return NotImplemented
        return _rebuild_datetime, (pickle.PickleBuffer(flat.view(np.int64)), obj.dtype, obj.shape, order)


def _dump_pickle(obj):
    import io

    bufs = []
    stream = io.BytesIO()
    cls = _Pickler if _numpy() else pickle.Pickler
    cls(stream, protocol=5, buffer_callback=bufs.append).dump(obj)
    main = stream.getbuffer()
    oob = [b.raw() for b in bufs]
    return _layout(_PICKLE, 0, main, zlib.crc32(main), oob)


# --- npy ---------------------------------------------------------------------


def _npy_header(arr):
    from numpy.lib import format as npf

    if arr.flags.c_contiguous:
        fortran = False
    else:
        fortran = bool(arr.flags.f_contiguous)
    d = {"descr": npf.dtype_to_descr(arr.dtype), "fortran_order": fortran, "shape": arr.shape}
    text = repr(d).encode("latin1")
    for version, pre in ((1, 10), (2, 12)):
        # magic, version, header length, text, padding, newline
        n = pre + len(text) + 1
        n += _pad(n)
        hlen = n - pre
        if version == 1 and hlen > 0xFFFF:
            continue
        lenfield = struct.pack("<H" if version == 1 else "<I", hlen)
        body = text + b" " * (hlen - len(text) - 1) + b"\n"
        return _NPY_MAGIC + bytes([version, 0]) + lenfield + body, fortran
    raise SerialError("npy header too long")


def _array_pieces(arr, fortran):
    """The array's bytes in the order the .npy header says, as pieces."""
    np = _numpy()
    if arr.flags.c_contiguous and not fortran:
        return [memoryview(arr.reshape(-1).view(np.uint8))] if arr.size else []
    if fortran:
        return [memoryview(arr.T.reshape(-1).view(np.uint8))] if arr.size else []
    # Neither C- nor Fortran-contiguous: C order, one slab of rows at a time,
    # so a huge strided view is never copied whole.
    rows = max(1, _SLAB // max(1, arr[0].nbytes)) if arr.shape[0] else 1
    pieces = []
    for i in range(0, arr.shape[0], rows):
        slab = np.ascontiguousarray(arr[i : i + rows])
        pieces.append(memoryview(slab.reshape(-1).view(np.uint8)))
    return pieces


def _dump_npy(arr):
    np = _numpy()
    if np is None or not isinstance(arr, np.ndarray):
        raise TypeError("serializer 'npy' takes a numpy ndarray, not %s" % type(arr).__name__)
    if arr.dtype.hasobject:
        raise TypeError("serializer 'npy' cannot store an array of dtype object; use 'pickle'")
    head, fortran = _npy_header(arr)
    return _layout(_NPY, 0, [head] + _array_pieces(arr, fortran), zlib.crc32(head), [])


def _load_npy(mv, crc=None):
    """Zero-copy array over a .npy image held in the memoryview mv."""
    import io

    import numpy as np
    from numpy.lib import format as npf

    if mv[:6].tobytes() != _NPY_MAGIC or len(mv) < 10:
        raise SerialError("not a .npy image")
    version = mv[6]
    if version == 1:
        (hlen,) = struct.unpack("<H", mv[8:10])
        start = 10
    elif version in (2, 3):
        if len(mv) < 12:
            raise SerialError("truncated .npy header")
        (hlen,) = struct.unpack("<I", mv[8:12])
        start = 12
    else:
        raise SerialError("unknown .npy version %d" % version)
    if start + hlen > len(mv):
        raise SerialError("truncated .npy header")
    if crc is not None and zlib.crc32(mv[: start + hlen]) != crc:
        raise SerialError("tagged entry's .npy header is corrupt (CRC mismatch)")
    try:
        fp = io.BytesIO(mv[: start + hlen].tobytes())
        npf.read_magic(fp)
        if version == 1:
            shape, fortran, dtype = npf.read_array_header_1_0(fp)
        else:
            shape, fortran, dtype = npf.read_array_header_2_0(fp)
    except (ValueError, SyntaxError, TypeError) as e:
        raise SerialError("bad .npy header: %s" % e) from None
    if dtype.hasobject:
        raise SerialError(".npy of dtype object is not loaded (it would unpickle)")
    count = 1
    for d in shape:
        count *= d
    nbytes = count * dtype.itemsize
    data = start + hlen
    if len(mv) - data != nbytes:
        raise SerialError(".npy data is %d bytes, its header says %d" % (len(mv) - data, nbytes))
    # dtype=uint8 first: frombuffer refuses a zero-itemsize dtype and count 0.
    raw = np.frombuffer(mv, dtype=np.uint8, count=nbytes, offset=data)
    try:
        return raw.view(dtype).reshape(shape, order="F" if fortran else "C")
    except (ValueError, TypeError) as e:
        raise SerialError("cannot view .npy data as %s%r: %s" % (dtype, shape, e)) from None


# --- arrow (only when importable) ---------------------------------------------


# The frames stored as Arrow IPC, in the order of the header's sub-kind
# (0 to 3); looked up only in modules already imported: an object of a
# module not imported cannot be at hand.
_ARROW_KINDS = (("pyarrow", "Table"), ("pyarrow", "RecordBatch"),
                ("polars", "DataFrame"), ("polars", "Series"))


def _arrow_kind(obj):
    for kind, (module, name) in enumerate(_ARROW_KINDS):
        mod = sys.modules.get(module)
        if mod is not None and isinstance(obj, getattr(mod, name)):
            return kind
    return None


def _have_pyarrow():
    try:
        importlib.import_module("pyarrow")
    except ImportError:
        return False
    return True


def _dump_arrow(obj, sub):
    import pyarrow as pa

    if sub == 2:
        obj = obj.to_arrow()
    elif sub == 3:
        obj = obj.to_frame().to_arrow()
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, obj.schema) as w:
        w.write(obj)
    return _layout(_ARROW, sub, memoryview(sink.getvalue()), 0, [])


def _load_arrow(mv, sub):
    try:
        import pyarrow as pa
    except ImportError:
        raise SerialError("entry is an Arrow stream and pyarrow is not importable") from None
    table = pa.ipc.open_stream(pa.py_buffer(mv)).read_all()
    if sub == 1:
        batches = table.to_batches()
        return batches[0] if batches else pa.RecordBatch.from_pylist([], schema=table.schema)
    if sub in (2, 3):
        import polars as pl

        frame = pl.from_arrow(table)
        return frame.to_series(0) if sub == 3 else frame
    return table


# --- dump / load ---------------------------------------------------------------


def dump(obj, serializer="auto"):
    """Serialize obj: returns (tag, buffers, total_len).

    tag is the serializer used ("bytes", "pickle", "npy" or "arrow");
    buffers are bytes-like pieces to write in order (they may point into
    obj: write them before changing obj); total_len is their total size.
    """
    if serializer not in SERIALIZERS:
        raise ValueError("unknown serializer %r (one of %s)" % (serializer, ", ".join(SERIALIZERS)))
    if serializer == "auto":
        np = _numpy()
        if _is_byteslike(obj):
            serializer = "bytes"
        elif np is not None and type(obj) is np.ndarray and not obj.dtype.hasobject:
            serializer = "npy"
        elif _arrow_kind(obj) is not None and _have_pyarrow():
            serializer = "arrow"
        else:
            serializer = "pickle"
    if serializer == "bytes":
        if not _is_byteslike(obj):
            try:
                obj = memoryview(obj)
            except TypeError:
                raise TypeError("serializer 'bytes' takes a bytes-like object, not %s" % type(obj).__name__) from None
        mv = memoryview(obj)
        if not mv.c_contiguous:
            raise TypeError("serializer 'bytes' takes a contiguous buffer")
        mv = mv.cast("B") if mv.ndim != 1 or mv.format != "B" else mv
        if mv[: len(_PREFIX)].tobytes() == _PREFIX:
            # It would read as tagged: wrap it so it loads back as itself.
            bufs, total = _layout(_BYTES, 0, mv, zlib.crc32(mv), [])
            return "bytes", bufs, total
        return "bytes", [mv], mv.nbytes
    if serializer == "npy":
        bufs, total = _dump_npy(obj)
        return "npy", bufs, total
    if serializer == "arrow":
        sub = _arrow_kind(obj)
        if sub is None:
            raise TypeError("serializer 'arrow' takes a pyarrow Table or RecordBatch or a polars DataFrame or Series")
        bufs, total = _dump_arrow(obj, sub)
        return "arrow", bufs, total
    bufs, total = _dump_pickle(obj)
    return "pickle", bufs, total


def _header(mv):
    if len(mv) < HEADER_SIZE:
        raise SerialError("tagged entry truncated: %d bytes, the header alone is %d" % (len(mv), HEADER_SIZE))
    head = mv[:HEADER_SIZE].tobytes()
    magic, kind, sub, _, nbuf, total, moff, mlen, mcrc, hcrc, _ = _HEAD.unpack(head)
    if magic != MAGIC:
        raise SerialError("tagged entry of format version %d; this larder reads version %d" % (magic[7], MAGIC[7]))
    if total != len(mv):
        raise SerialError("tagged entry is %d bytes, its header says %d (truncated or padded)" % (len(mv), total))
    table_end = HEADER_SIZE + _ENTRY.size * nbuf
    if table_end > total:
        raise SerialError("tagged entry's buffer table runs past its end")
    table = mv[HEADER_SIZE:table_end].tobytes()
    crc = zlib.crc32(table, zlib.crc32(head[:44] + b"\0\0\0\0" + head[48:]))
    if crc != hcrc:
        raise SerialError("tagged entry's header is corrupt (CRC mismatch)")
    if kind not in _NAMES:
        raise SerialError("tagged entry has unknown serializer %d (written by a newer larder?)" % kind)
    if moff < table_end or moff + mlen > total:
        raise SerialError("tagged entry's main part lies outside it")
    bufs = []
    for i in range(nbuf):
        off, n = _ENTRY.unpack_from(table, i * _ENTRY.size)
        if off < moff + mlen or off + n > total or off % ALIGN:
            raise SerialError("tagged entry's buffer %d lies outside it or is misaligned" % i)
        bufs.append(mv[off : off + n])
    return kind, sub, mv[moff : moff + mlen], mcrc, bufs


def load(buf, serializer=None):
    """Rebuild the object held in buf (any buffer holding a whole entry).

    With no serializer, the entry says: tagged entries by their header,
    anything else is raw bytes. serializer="npy" also reads a plain .npy
    file stored as raw bytes; serializer="bytes" returns the raw bytes of
    any entry. Arrays and numeric columns point into buf (read-only when
    buf is) and keep it alive. Raises SerialError on a damaged entry.
    """
    mv = memoryview(buf)
    if mv.ndim != 1 or mv.format != "B":
        mv = mv.cast("B")
    tagged = mv[: len(_PREFIX)].tobytes() == _PREFIX
    if serializer == "bytes" and not tagged:
        return mv.tobytes()
    if serializer == "npy" and not tagged:
        return _load_npy(mv)
    if serializer is not None and serializer not in SERIALIZERS:
        raise ValueError("unknown serializer %r" % (serializer,))
    if not tagged:
        if serializer not in (None, "auto", "bytes"):
            raise SerialError("entry is raw bytes, not a %r entry" % serializer)
        return mv.tobytes()
    kind, sub, main, mcrc, bufs = _header(mv)
    if serializer not in (None, "auto") and _NAMES[kind] != serializer:
        if serializer == "bytes":
            return mv.tobytes()
        raise SerialError("entry is a %r entry, not %r" % (_NAMES[kind], serializer))
    if kind == _BYTES:
        if zlib.crc32(main) != mcrc:
            raise SerialError("tagged entry's bytes are corrupt (CRC mismatch)")
        return main.tobytes()
    if kind == _NPY:
        return _load_npy(main, mcrc)
    if kind == _ARROW:
        return _load_arrow(main, sub)
    if zlib.crc32(main) != mcrc:
        raise SerialError("tagged entry's pickle stream is corrupt (CRC mismatch)")
    try:
        return pickle.loads(main, buffers=bufs)
    except Exception as e:
        # The stream passed its CRC, so this is a class that is gone or
        # changed, or a stream from an incompatible library version.
        raise SerialError("cannot unpickle entry: %s: %s" % (type(e).__name__, e)) from e
