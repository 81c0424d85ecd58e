#!/usr/bin/python3
"""The Python side of `make bench-peers` (bench/peers/run.sh): a warm hit
through diskcache and joblib.Memory, and a plain open/read/close from
Python for scale, on the payloads bench_peers uses (4 KiB x 1000 keys,
1 MiB x 8, 256 MiB x 1), plus a diskcache set of 1 MiB.

    peers.py [--quick] DIR

Prints the same tab-separated lines as bench_peers:
    hit   SIZE METHOD N P50_US P99_US
    fill  METHOD N P50_US P99_US
Each hit returns a fresh bytes object (what these libraries hand out), so
there is nothing left to fault in: pages are not touched again.
"""
import os
import sys
import time

import diskcache
import joblib

sys.path.append(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from benchlib import interleaved, percentile  # noqa: E402

SIZES = [  # label, bytes, keys, iterations, quick iterations
    ("4KiB", 4096, 1000, 4000, 40),
    ("1MiB", 1 << 20, 8, 400, 8),
    ("256MiB", 256 << 20, 1, 12, 2),
]


def payload(size):
    return os.urandom(size)  # nothing here compresses or dedups


def stats(kind, size, name, t):
    cols = [kind] + ([size] if size else []) + [
        name, str(len(t)), f"{percentile(t, 0.5):.3f}", f"{percentile(t, 0.99):.3f}"]
    print("\t".join(cols), flush=True)


def main():
    args = sys.argv[1:]
    quick = bool(args) and args[0] == "--quick"
    if quick:
        args = args[1:]
    if len(args) != 1:
        raise SystemExit("usage: peers.py [--quick] DIR")
    top = args[0]
    cache = diskcache.Cache(os.path.join(top, "diskcache"))
    memory = joblib.Memory(os.path.join(top, "joblib"), verbose=0)
    current = {}

    # What joblib caches: a function of the key; while the cache is
    # filled it returns the payload, afterwards it is never called.
    def load(key):
        return current[key]

    cached = memory.cache(load)
    raw = os.path.join(top, "raw")
    os.mkdir(raw)

    def read_file(key):
        with open(os.path.join(raw, key), "rb") as f:
            return f.read()

    for label, size, nkeys, iters, quick_iters in SIZES:
        if quick and size > 1 << 20:
            continue  # as bench_peers --quick
        n = quick_iters if quick else iters
        keys = [f"{label}-{k:04d}" for k in range(nkeys)]
        for k, key in enumerate(keys):
            p = payload(size)
            cache.set(key, p)
            current[key] = p
            cached(key)
            with open(os.path.join(raw, key), "wb") as f:
                f.write(p)
        current.clear()
        methods = [("python-read", read_file), ("diskcache", cache.get),
                   ("joblib", cached)]
        # In rounds, in a fresh order each, as bench_peers does.
        results = interleaved(methods, keys, n)
        for name in ("python-read", "diskcache", "joblib"):
            stats("hit", label, name, results[name])

    p = payload(1 << 20)
    t = []
    for i in range(3 if quick else 50):
        t0 = time.perf_counter_ns()
        cache.set(f"fill-{i}", p)
        t.append((time.perf_counter_ns() - t0) / 1000)
    stats("fill", None, "diskcache-set", t)
    cache.close()


main()
