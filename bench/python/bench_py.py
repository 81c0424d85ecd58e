#!/usr/bin/python3
"""The Python benchmark (docs/performance.md, "Python"): larder's binding
beside diskcache and joblib.Memory, in one run, with ratios to baselines
measured in the same run.

    bench_py.py [--quick] DIR

DIR: an empty directory for the stores and files (bench/python/run.sh
makes one and removes it). --quick: a few iterations of each, a smoke
run of the benchmark, not a measurement.

1. Warm hits of 4 KiB and 1 MiB bytes: larder (store.get, bytes(entry),
   a memoized call), diskcache Cache.get, a joblib.Memory cached call,
   and Python's open().read() of a plain file as the floor.
2. A 100 MB numpy array: larder (the npy serializer, zero copy) beside
   joblib.Memory(mmap_mode='r') and diskcache, each with the anonymous
   memory a process gains by taking the array and reading every page.
3. A cold herd of 8 processes asking at once for one slow result (a
   loader that computes, not one that sleeps): the loads are counted.

Methods run in rounds, each round in a fresh random order, so that the
machine's noise falls on all of them alike. Prints the table, then
MET/MISSED for each target; exits 0 either way (timings on a shared
machine are information), non-zero only if something broke.
"""
import hashlib
import multiprocessing
import os
import sys
import time

import diskcache
import joblib
import numpy as np

import larder
from larder import argkey, serial

sys.path.append(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from benchlib import fmt_us, interleaved, percentile  # noqa: E402

QUICK = False
VERSION = "v1"


def memoized(store, func):
    """func memoized in store: store.memoize when the binding has it, else
    the same thing by hand (the key from argkey, the value through serial,
    filled once by get_or_fill)."""
    if hasattr(store, "memoize"):
        return store.memoize()(func), "store.memoize"
    fid = argkey.func_id(func).encode()

    def call(*args, **kwargs):
        key = fid + b"\n" + argkey.args_digest(func, args, kwargs).hex().encode()

        def loader():
            return serial.dump(func(*args, **kwargs))[1]

        entry, _ = store.get_or_fill(key, VERSION, loader)
        try:
            return serial.load(entry)
        finally:
            entry.release()  # an array loaded from it keeps it alive

    return call, "get_or_fill + serial"


def rss_anon_kib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("RssAnon:"):
                return int(line.split()[1])
    raise SystemExit("bench_py.py: no RssAnon in /proc/self/status")


# --- 1. warm hits of bytes --------------------------------------------

# What joblib and the memoized call cache: a function of the key. While
# the caches are filled it returns the payload; on a hit it never runs.
_current = {}


def payload_of(key):
    return _current[key]


def warm_hits(top, store, report, targets):
    cache = diskcache.Cache(os.path.join(top, "diskcache"))
    memory = joblib.Memory(os.path.join(top, "joblib"), verbose=0)
    jl = memory.cache(payload_of)
    memo, how = memoized(store, payload_of)
    raw = os.path.join(top, "raw")
    os.mkdir(raw)

    def read_file(key):
        with open(os.path.join(raw, key), "rb") as f:
            return f.read()

    def get(key):
        e = store.get(key, VERSION)
        e.release()
        return True

    def get_bytes(key):
        e = store.get(key, VERSION)
        b = bytes(e)
        e.release()
        return b

    # Where a memoized call's time goes: the same get_or_fill and load
    # with the key made beforehand (the rest is making the key).
    memo_keys = {}

    def memo_store_part(key):
        entry, _ = store.get_or_fill(memo_keys[key], VERSION, lambda: b"")
        try:
            return serial.load(entry)
        finally:
            entry.release()

    sizes = [("4 KiB", 4096, 256, 40 if QUICK else 4000),
             ("1 MiB", 1 << 20, 8, 8 if QUICK else 400)]
    names = [("larder store.get", get), ("larder bytes(entry)", get_bytes),
             (f"larder memoized call ({how})", memo),
             ("diskcache Cache.get", cache.get), ("joblib.Memory call", jl),
             ("Python open().read()", read_file)]
    if how != "store.memoize":  # the key below is this file's own
        names.insert(3, ("  of which get_or_fill + serial.load", memo_store_part))
    for label, size, nkeys, n in sizes:
        keys = [f"{label.replace(' ', '')}-{k:04d}" for k in range(nkeys)]
        for key in keys:
            p = os.urandom(size)  # nothing here compresses or dedups
            _current[key] = p
            store.put(key, p, VERSION)
            cache.set(key, p)
            jl(key)
            memo(key)
            # The key as memoized() makes it.
            memo_keys[key] = (argkey.func_id(payload_of).encode() + b"\n"
                              + argkey.args_digest(payload_of, (key,), {}).hex().encode())
            with open(os.path.join(raw, key), "wb") as f:
                f.write(p)
        _current.clear()  # from here on a call that runs payload_of fails
        res = interleaved(names, keys, n)
        floor = percentile(res["Python open().read()"], 0.5)
        for name, _ in names:
            t = res[name]
            report.append((f"warm hit {label}", name, len(t), percentile(t, 0.5),
                           percentile(t, 0.99), f"{percentile(t, 0.5) / floor:.2f}x read"))
        if size == 4096:
            b = percentile(res["larder bytes(entry)"], 0.5)
            m = percentile(res[f"larder memoized call ({how})"], 0.5)
            d = percentile(res["diskcache Cache.get"], 0.5)
            j = percentile(res["joblib.Memory call"], 0.5)
            targets.append(("4 KiB: bytes(entry) >= 2x faster than diskcache Cache.get",
                            f"{d / b:.1f}x", d / b >= 2))
            targets.append(("4 KiB: memoized call >= 10x faster than a joblib.Memory call",
                            f"{j / m:.1f}x", j / m >= 10))
    cache.close()


# --- 2. a 100 MB numpy array ------------------------------------------

_array = None


def array_of(name):
    return _array


def in_child(fn):
    """fn() in a forked child: (RssAnon growth in KiB while holding the
    result with every page read, whether the result is writeable)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            before = rss_anon_kib()
            a = fn()
            flat = a.reshape(-1).view(np.uint8)
            int(flat[::4096].sum())  # touch every page
            grown = rss_anon_kib() - before
            os.write(w, f"{grown} {int(a.flags.writeable)}".encode())
            os._exit(0)
        except BaseException as e:  # noqa: BLE001 - report, never return
            os.write(w, f"error {e!r}".encode())
            os._exit(1)
    os.close(w)
    out = b""
    while True:
        chunk = os.read(r, 4096)
        if not chunk:
            break
        out += chunk
    os.close(r)
    _, status = os.waitpid(pid, 0)
    if status != 0 or out.startswith(b"error"):
        raise SystemExit(f"bench_py.py: the memory child failed: {out.decode()}")
    grown, wr = out.split()
    return int(grown), wr == b"1"


def big_array(top, store, report, targets):
    global _array
    size = 100 * 1000 * 1000
    _array = np.random.default_rng(1).random(size // 8)  # float64, 100 MB
    n = 3 if QUICK else 20
    key = "array-100MB"
    with store.writer(key, VERSION) as w:
        for b in serial.dump(_array, "npy")[1]:
            w.write(b)
    memo, how = memoized(store, array_of)
    memo(key)
    memory = joblib.Memory(os.path.join(top, "joblib-mm"), mmap_mode="r", verbose=0)
    jl = memory.cache(array_of)
    jl(key)
    cache = diskcache.Cache(os.path.join(top, "diskcache-np"))
    cache.set(key, _array)
    npy = os.path.join(top, "array.npy")
    np.save(npy, _array)
    _array = None  # from here on a call that runs array_of fails

    def get(k):
        with store.get(k, VERSION) as e:
            return serial.load(e)

    # A first hit: a handle that has not read the entry (opened
    # beforehand), so the payload's checksum is verified again.
    pool = []

    def first(k):
        with pool.pop().get(k, VERSION) as e:
            return serial.load(e)

    methods = [("larder store.get + serial.load (repeat hit)", get),
               ("larder first hit (fresh handle, verified)", first),
               (f"larder memoized call ({how})", memo),
               ("joblib.Memory(mmap_mode='r') call", jl),
               ("diskcache Cache.get", cache.get),
               ("numpy.load(.npy, mmap_mode='r')", lambda k: np.load(npy, mmap_mode="r"))]
    pool.extend(larder.Store(store.path) for _ in range(n + 1))
    res = interleaved(methods, [key], n)
    floor = percentile(res["numpy.load(.npy, mmap_mode='r')"], 0.5)
    mem = {}
    for name, fn in methods:
        if name.startswith("larder first"):
            pool.append(larder.Store(store.path))
        mem[name] = in_child(lambda: fn(key))
    for p in pool:
        p.close()
    for name, _ in methods:
        t = res[name]
        grown, wr = mem[name]
        note = f"{percentile(t, 0.5) / floor:.2f}x np.load mmap; anon +{grown / 1024:.1f} MiB"
        note += ", writeable" if wr else ", read-only"
        report.append(("100 MB array", name, len(t), percentile(t, 0.5), percentile(t, 0.99), note))
    p50 = percentile(res["larder store.get + serial.load (repeat hit)"], 0.5)
    grown = mem["larder store.get + serial.load (repeat hit)"][0]
    targets.append(("100 MB array: a warm hit < 1 ms", fmt_us(p50), p50 < 1000))
    targets.append(("100 MB array: no copy (anonymous memory grows < 1 MiB)",
                    f"+{grown} KiB", grown < 1024))
    cache.close()


# --- 3. a cold herd ---------------------------------------------------

_counter = None  # the file each load appends one byte to
ROUNDS = 2000000


def slow_result(seed):
    """Really computes (a chain of SHA-256): about a second of CPU here,
    so that every member of a herd starts before the first one is done."""
    fd = os.open(_counter, os.O_WRONLY | os.O_APPEND)
    try:
        os.write(fd, b".")
    finally:
        os.close(fd)
    h = hashlib.sha256(seed.encode()).digest()
    for _ in range(ROUNDS // 4 if QUICK else ROUNDS):
        h = hashlib.sha256(h).digest()
    return b"".join(hashlib.sha256(h + bytes([i])).digest() for i in range(256)) * 8


def herd_member(system, top, barrier, results):
    if system == "larder":
        s = larder.Store(os.path.join(top, "store"))
        fn = memoized(s, slow_result)[0]
    elif system == "joblib":
        fn = joblib.Memory(os.path.join(top, "joblib-herd"), verbose=0).cache(slow_result)
    else:
        fn = diskcache.Cache(os.path.join(top, "diskcache-herd")).memoize()(slow_result)
    barrier.wait()
    results.put(hashlib.sha256(fn("herd")).hexdigest())


def herd(top, report, targets):
    global _counter
    ctx = multiprocessing.get_context("fork")
    procs = 8
    loads = {}
    for system in ("larder", "joblib", "diskcache"):
        _counter = os.path.join(top, f"loads-{system}")
        open(_counter, "wb").close()
        barrier = ctx.Barrier(procs)
        results = ctx.Queue()
        members = [ctx.Process(target=herd_member, args=(system, top, barrier, results))
                   for _ in range(procs)]
        t0 = time.perf_counter()
        for p in members:
            p.start()
        digests = [results.get(timeout=600) for _ in members]
        wall = time.perf_counter() - t0
        for p in members:
            p.join()
            if p.exitcode != 0:
                raise SystemExit(f"bench_py.py: a {system} herd member exited {p.exitcode}")
        if len(set(digests)) != 1:
            raise SystemExit(f"bench_py.py: the {system} herd got different results")
        loads[system] = os.path.getsize(_counter)
        report.append(("cold herd of 8", system, procs, wall * 1e6, None,
                       f"{loads[system]} load(s), all 8 results equal"))
    targets.append(("herd of 8: larder loads once", f"{loads['larder']} load(s)", loads["larder"] == 1))
    targets.append(("herd of 8: joblib loads 8 times (counted)", f"{loads['joblib']} load(s)",
                    loads["joblib"] == 8))


def main():
    global QUICK
    args = sys.argv[1:]
    if args and args[0] == "--quick":
        QUICK = True
        args = args[1:]
    if len(args) != 1:
        raise SystemExit("usage: bench_py.py [--quick] DIR")
    top = args[0]
    report, targets = [], []
    with larder.Store(os.path.join(top, "store"), create=True) as store:
        warm_hits(top, store, report, targets)
        big_array(top, store, report, targets)
    herd(top, report, targets)

    print(f"{'case':<16} {'method':<52} {'n':>5} {'p50':>10} {'p99':>10}  ratio / note")
    last = None
    for case, name, n, p50, p99, note in report:
        if last is not None and case != last:
            print()
        last = case
        p99s = fmt_us(p99) if p99 is not None else "-"
        p50s = fmt_us(p50) if p99 is not None else f"{p50 / 1e6:.2f} s"
        print(f"{case:<16} {name:<52} {n:>5} {p50s:>10} {p99s:>10}  {note}")
    print()
    print("targets" + (" (--quick: not a measurement)" if QUICK else ""))
    for what, measured, met in targets:
        print(f"  {what:<62} {measured:>12}  {'MET' if met else 'MISSED'}")


if __name__ == "__main__":
    main()
