"""What the Python benchmarks under bench/ share (bench/python/bench_py.py,
bench/peers/peers.py, bench/peers/report.py): a call timed over keys,
methods timed in rounds of a fresh order each, percentiles, and
microseconds printed at a precision that fits them.

A script one directory below finds this module through the bench/
directory added to sys.path.
"""
import os
import random
import sys
import time


def percentile(t, q):
    """Nearest-rank q-quantile (0 <= q <= 1) of the timings t."""
    s = sorted(t)
    return s[int(q * (len(s) - 1) + 0.5)]


def fmt_us(us):
    if us >= 10000:
        return f"{us / 1000:.1f} ms"
    if us >= 100:
        return f"{us:.0f} us"
    return f"{us:.2f} us"


def empty(v):
    """No value: what a method that found nothing returns. A numpy array
    has no truth value of its own, so its length is asked instead."""
    return v is None or v is False or (hasattr(v, "__len__") and len(v) == 0)


def timed(fn, keys, iters):
    """Microseconds of each of iters calls of fn, on the keys in turn. A
    call that returns nothing stops the benchmark: it timed no hit."""
    t = []
    for i in range(iters):
        k = keys[i % len(keys)]
        t0 = time.perf_counter_ns()
        v = fn(k)
        t.append((time.perf_counter_ns() - t0) / 1000)
        if empty(v):
            raise SystemExit(f"{os.path.basename(sys.argv[0])}: no value for {k!r}")
        del v
    return t


def interleaved(methods, keys, n):
    """Each method's n iterations in ten rounds, a fresh random order each,
    so that the machine's noise falls on all of them alike; every key is
    asked once before (warm). Returns {name: timings}."""
    for _, fn in methods:
        timed(fn, keys, len(keys))
    results = {name: [] for name, _ in methods}
    order = list(methods)
    rounds = 10
    for r in range(rounds):
        random.shuffle(order)
        for name, fn in order:
            m = n * (r + 1) // rounds - n * r // rounds
            results[name] += timed(fn, keys, m)
    return results
