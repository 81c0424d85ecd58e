"""Memoize keys are stored: these pin the exact digests of a set of calls,
with larder's XXH3-128 and with blake2b (any hasher sees the same bytes).
A change of the encoding fails here; it would orphan every memoized entry
users have (docs/python.md, "Memoize keys")."""

import hashlib

import pytest

from larder.argkey import args_digest

np = pytest.importorskip("numpy")


# Only their parameters count (their names are hashed): these must not
# change, whatever test_argkey's functions become.
def one(x):
    """One value."""


def f(a, b=2, *rest, c=3, **extra):
    """Every kind of parameter."""


def g(data, verbose=False, workers=4):
    """Parameters to ignore."""


CASES = {
    "none": (one, (None,), {}),
    "bools": (one, ((True, False),), {}),
    "ints": (one, ([0, 1, -1, 255, 256, -129, 2**63, 2**64 + 1, -(2**70)],), {}),
    "floats": (one, ([0.0, -0.0, 1.5, 1e300, float("inf"), -float("inf")],), {}),
    "complex": (one, (1 - 2j,), {}),
    "str": (one, ("héllo wörld \u2603",), {}),
    "str_surrogate": (one, ("a\udc80b",), {}),
    "empty": (one, (("", b"", (), [], {}, set(), frozenset()),), {}),
    "bytes": (one, (b"\x00\x01abc" * 3,), {}),
    "bytearray_memoryview": (one, ((bytearray(b"xy"), memoryview(b"zw")),), {}),
    "nested": (one, ((1, [2, (3, "4")], b"5"),), {}),
    "dict": (one, ({"b": 2, "a": [1], 3: None, "1": 1.0},), {}),
    "sets": (one, (({3, 1, "x"}, frozenset([b"y", 2])),), {}),
    "numpy": (
        one,
        ((np.arange(6, dtype="<f8").reshape(2, 3), np.int32(7), np.arange(6, dtype="<i4").reshape(2, 3)[:, ::2]),),
        {},
    ),
    "big_array": (one, (np.arange(40000, dtype="<f8"),), {}),
    "big_bytes": (one, ((b"q" * 300000, "r" * 70000),), {}),
    "defaults": (f, (1,), {}),
    "positional": (f, (1, "b", 5, 6), {"c": None}),
    "kwargs": (f, (), {"a": 1, "z": 2, "y": (3,)}),
    "ignore": (g, ("d",), {"verbose": True}),
}

IGNORE = {"ignore": ("verbose",)}

# (XXH3-128 digest, blake2b digest's first 16 bytes), measured before the
# encoder was made fast: the fast paths must give the same bytes.
PINNED = {
    "none": ("73388cc84f972bc4a4c9236351e12505", "71112d57f730089f5cc68e6dfc4aa920"),
    "bools": ("c05119cff55debce779265a1aa957406", "7124136c8fda21a6c61964f5c7380df2"),
    "ints": ("a93118d316d861122ce0631bc9af9bc8", "be03cafceb1a2287eae1e7a0da9fcdb0"),
    "floats": ("1ca3b9f119971f7ad6e7bcc7479555ac", "2c03c6ed4e172a94b32fc910ff50c338"),
    "complex": ("7cc17bf55aa61722d2264912b86fff98", "eb6551c6c4058d48990366c97901a40f"),
    "str": ("60ac0966b0f03072cef14a956da27e92", "7f7bca44aba09cda42389de779867912"),
    "str_surrogate": ("f7ab5cc9e2bc4a62fd4a9f8aeaea770b", "236eafedd189e891273cb9705c75419c"),
    "empty": ("3cc50062b200de0114ed68e19f0c570e", "f301663b2f0279ccac8b4e5886706625"),
    "bytes": ("4f9fba086a03431085c50d4577a8689e", "f6f0dae088e8441c13d8a3a9cae48931"),
    "bytearray_memoryview": ("9578401f5be72ab62d63403450224e2a", "465282ea76220adac7456cd125582e8e"),
    "nested": ("f6cd8c893738dc1d06c3b3b9c0f7cd87", "c50865553938fa541977d992e8956b1b"),
    "dict": ("a847e9b18f65dba3c8302b3b751ca7db", "29cee11d7a822fda21d255063e419207"),
    "sets": ("9d64618a4eea131561b49ed620687b65", "06b433e1e6271d573ed96ad4485f5960"),
    "numpy": ("385bbe15f1bfa3ad40b1651e69cc5aa9", "cf53f6dee4ee153267f68a62e6154133"),
    "big_array": ("2d77211e3f06afe11f4319b7456e21fb", "53cffb5ae29fd7a1452e8af66da699a2"),
    "big_bytes": ("8ae54bf13c7543c9966cc867edac69ae", "4ac18e6ab906194b5477eaedca16e3c0"),
    "defaults": ("41909de2661b703956c4b16682732523", "648e27fc493f19ce5de8fda1555305a6"),
    "positional": ("628dadccda2f7520264d6835eb266bf4", "6dc24e6273c88c1ec5cc3d5d109fee8a"),
    "kwargs": ("b790889a35c682cb68560635bc72b2a2", "aa198a0049b01ef9672d5a1d24fce1aa"),
    "ignore": ("892254f407aa6a7893b3265aba0e3c85", "c6161dd41f51b060529e8a5922040cf3"),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_digest_is_pinned(name):
    fn, args, kwargs = CASES[name]
    xxh, blake = PINNED[name]
    ignore = IGNORE.get(name, ())
    assert args_digest(fn, args, kwargs, ignore).hex() == xxh
    assert args_digest(fn, args, kwargs, ignore, hasher=hashlib.blake2b).hex()[:32] == blake


def test_digest_is_pinned_on_every_call():
    # The second call goes through what the first one kept per function.
    for name in sorted(CASES):
        fn, args, kwargs = CASES[name]
        for _ in range(3):
            assert args_digest(fn, args, kwargs, IGNORE.get(name, ())).hex() == PINNED[name][0], name


# --- the fast binding is inspect's -------------------------------------------------


def posonly(a, b=1, /, c=2, *, d, e=5):
    return a


def varargs(*args, **kwargs):
    return args


def kwonly(*, x, y=None):
    return x


CALLS = [
    (f, (1,), {}), (f, (1, 2, 3, 4), {"c": 5, "q": 6}), (f, (), {"a": 1, "b": 9}), (f, (1,), {"a": 2}),
    (f, (), {}), (f, (1,), {"rest": 2}), (posonly, (1,), {"d": 4}), (posonly, (1, 2, 3), {"d": 4, "e": 0}),
    (posonly, (1,), {"b": 2, "d": 4}), (posonly, (1, 2, 3, 4), {"d": 4}), (posonly, (1,), {}),
    (varargs, (), {}), (varargs, (1, 2), {"a": 1}), (kwonly, (), {"x": 1}), (kwonly, (1,), {}),
    (kwonly, (), {"y": 1}), (g, ("d",), {"workers": 1, "verbose": 0}), (g, ("d", 1, 2, 3), {}),
]


@pytest.mark.parametrize("i", range(len(CALLS)))
def test_fast_binding_is_inspects(i):
    from larder.argkey import KeyMaker

    fn, args, kwargs = CALLS[i]
    maker = KeyMaker(fn)
    fast = maker.bind(args, kwargs)
    try:
        slow = maker.slow_bind(args, kwargs)
    except TypeError:
        assert fast is None  # a bad call is left to inspect, which says why
        with pytest.raises(TypeError):
            maker.digest(args, kwargs)
        return
    assert fast == slow


def test_replaced_defaults_are_seen():
    def h(a, b=1):
        """Its default replaced below."""

    h.__qualname__ = "h"
    before = args_digest(h, (0,), {})
    h.__defaults__ = (2,)
    assert args_digest(h, (0,), {}) == args_digest(h, (0, 2), {}) != before
    h.__defaults__ = (np.arange(3),)  # compared by identity, not content
    assert args_digest(h, (0,), {}) == args_digest(h, (0, np.arange(3)), {})


# --- the extension's encoding of plain values is argkey's ----------------------------

EDGES = [0, 1, -1, 127, -127, 128, -128, 255, -255, 256, -256, 2**31, -(2**31), 2**63 - 1, -(2**63),
         2**63, -(2**63) - 1, 2**64, 10**30, True, False, None, 0.0, -0.0, 1.5, float("inf"), float("nan"),
         1 + 2j, -0.0j, "", "a", "héllo \u2603 \U0001f600", "a\udc80b", "x" * 65535, "x" * 65536, b"",
         b"\x00\xff", b"q" * 65535, b"q" * 65536, bytearray(b"yz"), bytearray(65536), (1,), [1], {1: 2},
         {1}, frozenset(), memoryview(b"m"), np.int64(1), np.float64(1.0), 2**200]


@pytest.mark.parametrize("i", range(len(EDGES)))
def test_extension_encodes_plain_values_as_argkey(i):
    from larder import _larder, argkey

    v = EDGES[i]
    name = b"s" + (1).to_bytes(8, "little") + b"x"  # one(x)
    got = _larder.plain_digest((name, name), [v, 7])
    want = argkey._plain(v)
    if got is None:
        # Left to argkey: what _plain does not take, a big int, a str
        # with lone surrogates, a long str or bytes.
        big_int = type(v) is int and not -(2**63) <= v < 2**63
        surrogate = type(v) is str and "\udc80" in v
        assert want is None or big_int or surrogate or len(want) >= argkey._BIG
    else:
        assert got == _larder.xxh3_128(name + want + name + argkey._plain(7))
    # Whichever encodes it, the digest is the one the encoder gives.
    ref = argkey._Collect()
    ref.update(name)
    argkey._Encoder(ref).value(v)
    assert argkey.KeyMaker(one).digest((v,), {}) == _larder.xxh3_128(ref.value())
