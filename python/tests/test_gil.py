"""The GIL (docs/python.md, "Threads and fork"): released while
get_or_fill waits for another filler, while a read verifies a large
entry and while a put writes one; held, in the calling thread, while a
loader runs.

Each test fails if the GIL were held where it is said to be released,
and none measures how fast the machine is:
- the wait: the filler, in another process, finishes only when this
  process's main thread sets an Event, and the main thread does so only
  after seeing the waiting thread asleep inside the wait. Were the GIL
  held there, the main thread could not run, the filler would give up
  after BOUND seconds and the test would fail (not hang).
- verify and put: the main thread samples the calling thread's CPU clock
  all along the call. Were the GIL held during the call, the main thread
  could take no sample while the call runs in C, so one gap between two
  samples would hold nearly all the CPU time the call took; released,
  the gaps are what the scheduler makes them (microseconds on another
  core, a time slice on a shared one), far below half of the CPU time of
  checksumming or writing BIG bytes."""

import multiprocessing
import os
import threading
import time

import pytest

import larder

CTX = multiprocessing.get_context("fork")
# Generous bounds for a broken build to fail in, never reached otherwise.
BOUND = 30
# Large enough that checksumming or writing it takes far longer than the
# few bytecodes around the call (see gap_check).
BIG = 256 << 20

# The system calls the wait sleeps in (src/fill/fill.c, waiter_wait):
# poll on inotify, or nanosleep on a network filesystem (x86_64 and
# aarch64 numbers; aarch64 has ppoll and clock_nanosleep only).
WAIT_SYSCALLS = {
    "x86_64": {7, 271, 35, 230},
    "aarch64": {73, 101, 115},
}.get(os.uname().machine)

RELEASED = b"released by the waiting process's main thread"


def filler(path, started, release, results):
    try:
        with larder.Store(path) as s:

            def load():
                started.set()
                if release.wait(BOUND):
                    return RELEASED
                return b"the filler timed out"

            _, outcome = s.get_or_fill("k", "v", load, lease_seconds=30)
            results.put(str(outcome))
    except Exception as exc:  # reported to the parent
        results.put("error: %r" % exc)


def in_syscall(tid):
    """The number of the system call thread tid of this process is
    blocked in, or None (running, or not in a system call)."""
    try:
        with open("/proc/self/task/%d/syscall" % tid) as f:
            first = f.read().split()[0]
    except FileNotFoundError:  # the thread is gone
        return None
    return int(first) if first.lstrip("-").isdigit() and first != "-1" else None


def has_inotify_fd():
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink("/proc/self/fd/" + fd) == "anon_inode:inotify":
                return True
        except OSError:  # the listing's own descriptor, closed
            pass
    return False


def test_wait_for_another_filler_releases_the_gil(tmp_path):
    if not WAIT_SYSCALLS:
        pytest.skip("no system call numbers for " + os.uname().machine)
    try:
        with open("/proc/self/task/%d/syscall" % threading.get_native_id()) as f:
            f.read()
    except OSError as exc:
        pytest.skip("cannot see a thread's system call: %s" % exc)
    path = str(tmp_path / "store")
    larder.Store(path, create=True).close()
    started, release = CTX.Event(), CTX.Event()
    results = CTX.Queue()
    # Forked before this process starts any thread.
    p = CTX.Process(target=filler, args=(path, started, release, results))
    p.start()
    got = {}
    try:
        assert started.wait(BOUND), "the filler never started loading"
        with larder.Store(path) as s:

            def wait():
                e, outcome = s.get_or_fill(
                    "k", "v", lambda: b"loaded by the waiter",
                    lease_seconds=30, max_wait=4 * BOUND)
                got["outcome"] = str(outcome)
                got["data"] = bytes(e)

            t = threading.Thread(target=wait)
            t.start()
            try:
                # The waiting thread is inside the wait once it sleeps
                # in the wait's poll (nothing else in get_or_fill
                # polls), with the wait's inotify descriptor open. A
                # poll, not a sleep standing in for it: the condition
                # is checked each time.
                deadline = time.monotonic() + BOUND
                while in_syscall(t.native_id) not in WAIT_SYSCALLS:
                    assert t.is_alive(), \
                        "the call returned without waiting: %r" % got
                    # A thread that kept the GIL while it waits stops
                    # this one until the filler gives up.
                    assert time.monotonic() < deadline, \
                        "this thread could not see the other one wait " \
                        "in %d s: it held the GIL?" % BOUND
                    time.sleep(0.001)
                inotify = has_inotify_fd()
                # Python runs here while the other thread waits: only
                # possible if that thread let the GIL go.
                n = 0
                for i in range(100000):
                    n += i
                assert n == 99999 * 100000 // 2
            finally:
                release.set()
                t.join(2 * BOUND)
            assert not t.is_alive(), "the wait never ended"
        assert results.get(timeout=BOUND) == "filled"
        p.join(BOUND)
    finally:
        if p.is_alive():
            p.kill()
            p.join()
    assert p.exitcode == 0
    assert got == {"outcome": "waited", "data": RELEASED}, got
    # The store is on a local filesystem: the poll was the wait's, on
    # its inotify descriptor.
    assert inotify


def gap_check(call):
    """Run call() in a thread while this thread samples that thread's
    CPU clock. Returns (largest share of the call's CPU time between two
    consecutive samples, the call's result).

    Were the GIL held for the time call() is in C, this thread could
    take no sample from entering C to leaving it: one gap would hold all
    of it, that is all the call's CPU time but the few bytecodes between
    the thread's clock reads and the call (share close to 1)."""
    box = {}

    def body():
        t0 = time.thread_time_ns()
        r = call()
        t1 = time.thread_time_ns()
        box.update(t0=t0, t1=t1, r=r)

    t = threading.Thread(target=body)
    t.start()
    clk = time.pthread_getcpuclockid(t.ident)
    samples = [0]  # the thread's clock before it ran at all
    done = False
    while not done:
        done = not t.is_alive()  # then the next sample is its last
        try:
            samples.append(time.clock_gettime_ns(clk))
        except OSError:  # the thread has exited: its clock is gone
            break
    t.join()
    t0, t1 = box["t0"], box["t1"]
    samples.append(t1)  # the clock cannot go past t1 in the window
    worst = 0
    for a, b in zip(samples, samples[1:]):
        worst = max(worst, min(b, t1) - max(a, t0))
    return worst / (t1 - t0), box["r"]


def big_payload():
    block = bytes(range(256)) * 4096  # 1 MiB
    return b"".join(bytes([i & 0xFF]) + block[1:] for i in range(BIG >> 20))


def test_verifying_a_large_entry_releases_the_gil(tmp_path):
    path = str(tmp_path / "store")
    data = big_payload()
    with larder.Store(path, create=True) as s:
        s.put("big", data, "v")
    # A fresh handle: nothing memoised, the read checksums all of it.
    with larder.Store(path) as s:
        share, e = gap_check(lambda: s.get("big", "v"))
        try:
            assert e is not None and memoryview(e) == data
        finally:
            e.release()
        assert s.stats()["handle"]["hits"] == 1
        assert s.stats()["handle"]["memo_hits"] == 0
    assert share < 0.5, share


def test_a_large_put_releases_the_gil(tmp_path):
    path = str(tmp_path / "store")
    data = big_payload()
    with larder.Store(path, create=True) as s:
        share, _ = gap_check(lambda: s.put("big", data, "v"))
        e = s.get("big", "v")
        try:
            assert memoryview(e) == data
        finally:
            e.release()
    assert share < 0.5, share


def test_loader_runs_in_the_calling_thread_with_the_gil(store):
    seen = {}

    def call():
        def load():
            # Python objects made and changed: the GIL is held here.
            seen["loader"] = threading.get_ident()
            seen["items"] = [i * i for i in range(1000)]
            return b"x"

        seen["caller"] = threading.get_ident()
        _, outcome = store.get_or_fill("k", "v", load)
        seen["outcome"] = str(outcome)

    t = threading.Thread(target=call)
    t.start()
    t.join(BOUND)
    assert not t.is_alive()
    assert seen["outcome"] == "filled"
    assert seen["loader"] == seen["caller"] != threading.get_ident()
    assert seen["items"][999] == 999 * 999
