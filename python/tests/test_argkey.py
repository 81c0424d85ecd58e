"""Memoize keys: what changes a key and what does not."""

import dataclasses
import hashlib
import importlib
import warnings

import pytest

from larder import argkey
from larder.argkey import args_digest, func_id

np = pytest.importorskip("numpy")
pd = pytest.importorskip("pandas")


def key(func, *args, **kwargs):
    # blake2b until larder._larder.Hasher (XXH3-128) is there to default to
    return args_digest(func, args, kwargs, hasher=hashlib.blake2b)


def one(x):
    return x


def f(a, b=2, *rest, c=3, **extra):
    return a


def g(data, verbose=False, workers=4):
    return data


@dataclasses.dataclass
class Box:
    w: int
    h: float


@dataclasses.dataclass
class Crate:
    w: int
    h: float


class Model:
    def __init__(self, depth):
        self.depth = depth

    def fit(self, x):
        return x * self.depth


class Opaque:
    def __init__(self, v):
        self.v = v


# --- function identity ---------------------------------------------------------


def test_func_id_names_module_and_qualname():
    assert func_id(f) == "%s:f" % __name__
    assert func_id(Model.fit) == "%s:Model.fit" % __name__
    assert func_id(Model(1).fit) == "%s:Model.fit" % __name__


def test_lambda_and_local_function_refused():
    def local(x):
        return x

    for bad in (lambda x: x, local):
        with pytest.raises(ValueError, match="module level"):
            func_id(bad)
    with pytest.raises(TypeError):
        func_id(object())


# --- binding -------------------------------------------------------------------------------


def test_binding_makes_one_key_for_one_call():
    k = key(f, 1)
    assert key(f, 1, 2) == k
    assert key(f, 1, b=2) == k
    assert key(f, a=1) == k
    assert key(f, 1, c=3) == k
    assert key(f, 1, 2, c=3) == k
    assert key(f, 1, 3) != k
    assert key(f, 1, c=4) != k
    assert key(f, 1, 2, 5) != k


def test_extra_kwargs_order_does_not_matter():
    assert key(f, 1, x=1, y=2) == key(f, 1, y=2, x=1)
    assert key(f, 1, x=1, y=2) != key(f, 1, x=2, y=1)


def test_ignore():
    kw = {"verbose": True, "workers": 8}
    base = args_digest(g, ("d",), kw, ignore=("verbose", "workers"), hasher=hashlib.blake2b)
    same = args_digest(g, ("d",), {}, ignore=("verbose", "workers"), hasher=hashlib.blake2b)
    assert base == same
    assert args_digest(g, ("e",), {}, ignore=("verbose",), hasher=hashlib.blake2b) != same
    assert key(g, "d", verbose=True) != key(g, "d")
    with pytest.raises(ValueError, match="nosuch"):
        args_digest(g, ("d",), {}, ignore=("nosuch",), hasher=hashlib.blake2b)


def test_bad_call_is_a_clear_type_error():
    with pytest.raises(TypeError, match="g"):
        key(g)
    with pytest.raises(TypeError):
        key(g, 1, nosuch=2)


def test_bound_method_hashes_self():
    assert args_digest(Model(2).fit, (3,), {}, hasher=hashlib.blake2b) == args_digest(
        Model(2).fit, (3,), {}, hasher=hashlib.blake2b
    )
    assert args_digest(Model(2).fit, (3,), {}, hasher=hashlib.blake2b) != args_digest(
        Model(5).fit, (3,), {}, hasher=hashlib.blake2b
    )


# --- canonical values -------------------------------------------------------------------


def test_type_tags_keep_lookalikes_apart():
    values = [1, 1.0, "1", b"1", True, (1,), [1], {1}, frozenset([1]), {1: None}]
    values += [bytearray(b"1"), None, 0, False, 1 + 0j]
    values += [np.int64(1), np.float64(1.0), np.array(1), np.array([1])]
    keys = [key(one, v) for v in values]
    assert len(set(keys)) == len(values)


def test_nesting_is_unambiguous():
    assert key(one, ("ab", "c")) != key(one, ("a", "bc"))
    assert key(one, [[1], 2]) != key(one, [1, [2]])
    assert key(one, {"a": (1, 2)}) != key(one, {"a": 1, 2: None})
    assert key(one, 0.0) != key(one, -0.0)
    assert key(one, 2**64) != key(one, 2**64 + 1)
    assert key(one, -1) != key(one, 255)


def test_same_content_in_another_object_keys_alike():
    s = "".join(["ab", "c"])
    assert key(one, s) == key(one, "abc")
    assert key(one, [1, [2, 3]]) == key(one, [1, [2] + [3]])
    assert key(one, {"a": 1, "b": 2}) == key(one, dict([("b", 2), ("a", 1)]))
    assert key(one, {3, 1, 2}) == key(one, {2, 3, 1})
    assert key(one, {"x", "yy", "zzz"}) == key(one, set(["zzz", "yy", "x"]))
    assert key(one, Box(1, 2.0)) == key(one, Box(1, 2.0))
    assert key(one, Box(1, 2.0)) != key(one, Box(1, 2.5))
    assert key(one, Box(1, 2.0)) != key(one, Crate(1, 2.0))
    assert key(one, Opaque([1, 2])) == key(one, Opaque([1, 2]))
    assert key(one, Opaque([1, 2])) != key(one, Opaque([1, 3]))


def test_mixed_type_dict_keys_and_sets():
    assert key(one, {1: "a", "1": "b"}) == key(one, {"1": "b", 1: "a"})
    assert key(one, {1, "1", None}) == key(one, {None, "1", 1})


# --- numpy --------------------------------------------------------------------------------


def test_array_keys_follow_content():
    a = np.arange(24, dtype="f8").reshape(4, 6)
    k = key(one, a)
    assert key(one, a.copy()) == k
    assert key(one, np.asfortranarray(a)) == k
    b = a.copy()
    b[3, 5] += 1
    assert key(one, b) != k
    assert key(one, a.astype("f4")) != k
    assert key(one, a.view("i8")) != k  # same bytes, other dtype
    assert key(one, a.reshape(6, 4)) != k
    assert key(one, a.reshape(-1)) != k
    assert key(one, a.astype(">f8")) != k


def test_noncontiguous_array_keys_like_its_copy(monkeypatch):
    monkeypatch.setattr(argkey, "_SLAB", 40)  # many slabs
    big = np.arange(600, dtype="i4").reshape(30, 20)
    view = big[::2, 3::4]
    assert not view.flags.c_contiguous
    assert key(one, view) == key(one, np.ascontiguousarray(view))
    assert key(one, big.T) == key(one, np.ascontiguousarray(big.T))


def test_array_is_not_pickled(monkeypatch):
    def no_pickle(obj):
        raise AssertionError("pickled %r" % type(obj))

    monkeypatch.setattr(argkey, "_pickle_fast", no_pickle)
    key(one, np.arange(10.0))
    key(one, np.zeros((0, 4)))
    key(one, np.array(2.5))
    key(one, np.arange(3).astype("M8[D]"))


def test_zero_d_empty_and_object_arrays():
    assert key(one, np.array(2.5)) != key(one, np.array([2.5]))
    assert key(one, np.zeros((0, 3))) != key(one, np.zeros((3, 0)))
    o1 = np.array(["a" + "b", None, 1], dtype=object)
    o2 = np.array(["ab", None, 1], dtype=object)
    assert key(one, o1) == key(one, o2)
    o2[2] = 2
    assert key(one, o1) != key(one, o2)


# --- pandas --------------------------------------------------------------------------------


def frame():
    return pd.DataFrame(
        {
            "f": np.arange(5, dtype="f8") / 3,
            "s": ["a", "b", None, "d", "e"],
            "t": pd.date_range("2024-01-01", periods=5),
            "c": pd.Categorical(["x", "y", "x", "z", "y"]),
        }
    )


def test_dataframe_keys_follow_content():
    df = frame()
    k = key(one, df)
    assert key(one, frame()) == k
    assert key(one, df.copy(deep=True)) == k
    changes = [
        df.assign(f=df["f"] + 1),
        df.assign(f=df["f"].astype("f4")),
        df.rename(columns={"f": "g"}),
        df.set_axis(range(1, 6)),
        df.iloc[:4],
        df[["s", "f", "t", "c"]],
        df.assign(s=["a", "b", None, "d", "E"]),
        df.assign(t=df["t"] + pd.Timedelta("1s")),
        df.assign(c=pd.Categorical(["x", "y", "x", "z", "x"])),
        df.assign(c=pd.Categorical(["x", "y", "x", "z", "y"], ordered=True)),
    ]
    keys = [key(one, c) for c in changes]
    assert k not in keys
    assert len(set(keys)) == len(keys)


def test_dataframe_object_column_by_content_not_identity():
    shared = "val"
    a = pd.DataFrame({"s": [shared, shared]})
    b = pd.DataFrame({"s": ["".join(["v", "al"]), "".join(["va", "l"])]})
    assert key(one, a) == key(one, b)


def test_series_and_index():
    s = pd.Series([1.0, 2.0, 3.0], name="x")
    assert key(one, s) == key(one, pd.Series([1.0, 2.0, 3.0], name="x"))
    assert key(one, s) != key(one, s.rename("y"))
    assert key(one, s) != key(one, s.set_axis([0, 1, 5]))
    assert key(one, s) != key(one, s.to_frame())
    assert key(one, pd.Index([1, 2])) != key(one, pd.Index([1, 3]))
    mi = pd.MultiIndex.from_product([["a", "b"], [1, 2]])
    assert key(one, pd.Series(range(4), index=mi)) != key(one, pd.Series(range(4)))


def test_default_hasher_is_larders():
    try:
        importlib.import_module("larder._larder")
    except ImportError:
        pytest.skip("larder._larder (the C extension) is not built in this tree")
    d = args_digest(one, (1,), {})
    assert isinstance(d, bytes) and len(d) == 16
    assert d == args_digest(one, (1,), {})


def test_no_warnings_for_plain_values():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        key(one, {"a": [1, 2.0, "x", None]})
