"""What several test files share: a count of calls kept in a file (one
line per call, from any process), a herd of processes run to the end,
a store that cannot be written, the peak of Python's allocations."""

import contextlib
import os
import tracemalloc

import larder

# Calls made in this process, by cached function: conftest.py empties
# it before each test.
CALLS = []

# How long a herd's member, or a wait on one, may take before the test
# fails: far beyond any healthy run, it only stops a hung test.
TIMEOUT = 300


def new_store(tmp_path):
    """A new store in tmp_path, closed (each process of a herd opens
    its own handle), and a call count beside it: (store path, count
    path), as str."""
    path = str(tmp_path / "store")
    larder.Store(path, create=True).close()
    return path, str(tmp_path / "count")


def record_call(count_path):
    # O_APPEND: one line per call, whichever process or thread makes it.
    fd = os.open(count_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        os.write(fd, b"%d\n" % os.getpid())
    finally:
        os.close(fd)


def count_calls(count_path):
    """How many times record_call() was called on count_path."""
    try:
        with open(count_path) as f:
            return len(f.read().split())
    except FileNotFoundError:
        return 0


def start_all(procs):
    for p in procs:
        p.start()


def join_all(procs, timeout=TIMEOUT):
    """Join every process (one still alive after timeout is killed);
    returns their exit codes."""
    for p in procs:
        p.join(timeout)
    for p in procs:
        if p.is_alive():
            p.kill()
            p.join()
    return [p.exitcode for p in procs]


def gather(procs, results, timeout=TIMEOUT):
    """Start procs, take one result each from the queue results, and
    join them, also when a result never comes; returns (the results as
    they came, the exit codes)."""
    start_all(procs)
    try:
        got = [results.get(timeout=timeout) for _ in procs]
    finally:
        codes = join_all(procs, timeout)
    return got, codes


def run_herd(ctx, n, target, *args, timeout=TIMEOUT):
    """A herd: n processes of target(*args, barrier, results), where
    the barrier lets them go together and each puts one result on the
    queue results; returns what gather() returns."""
    barrier = ctx.Barrier(n)
    results = ctx.Queue()
    procs = [ctx.Process(target=target, args=args + (barrier, results)) for _ in range(n)]
    return gather(procs, results, timeout)


@contextlib.contextmanager
def read_only_store(path):
    """A new store at path (a pathlib.Path) whose namespaces the user
    cannot write (as a store shared read-only), made writable again
    however the block ends. Root writes anywhere: skip under root."""
    larder.Store(str(path), create=True).close()
    os.chmod(path / "ns", 0o555)
    try:
        yield path
    finally:
        os.chmod(path / "ns", 0o755)


def peak_allocated(fn, *args):
    """(fn(*args), the peak of Python's allocations while it ran)."""
    tracemalloc.start()
    try:
        result = fn(*args)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return result, peak
