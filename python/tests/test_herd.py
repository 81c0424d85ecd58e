"""Single flight across processes: a herd loads once; a killed filler
is taken over; every process gets every byte right."""

import functools
import hashlib
import multiprocessing
import os
import signal

import larder
from helpers import TIMEOUT, count_calls, gather, join_all, new_store, record_call, run_herd, start_all

CTX = multiprocessing.get_context("fork")
PAYLOAD_MB = 4


def payload():
    block = hashlib.sha256(b"larder").digest() * (1 << 15)  # 1 MiB
    return b"".join(bytes([i]) + block[1:] for i in range(PAYLOAD_MB))


def counting_loader(count_path):
    def load():
        record_call(count_path)
        return payload()

    return load


def herd_member(path, count_path, barrier, results):
    try:
        with larder.Store(path) as s:
            barrier.wait(TIMEOUT)
            e, outcome = s.get_or_fill("herd", "v1", counting_loader(count_path))
            ok = memoryview(e) == payload()
            results.put((str(outcome), ok))
    except Exception as exc:  # reported to the parent
        results.put(("error", repr(exc)))


def test_herd_of_16_processes_loads_once(tmp_path):
    path, count = new_store(tmp_path)
    n = 16
    got, codes = run_herd(CTX, n, herd_member, path, count)
    assert codes == [0] * n
    assert all(ok is True for _, ok in got), got
    outcomes = sorted(o for o, _ in got)
    assert outcomes.count("filled") == 1, outcomes
    assert set(outcomes) <= {"filled", "hit", "waited"}, outcomes
    assert count_calls(count) == 1


CREATORS = 16
CREATE_ROUNDS = 20


def creator(path, i, barrier, results):
    try:
        barrier.wait(TIMEOUT)
        # Modes that differ: the creator whose store wins decides.
        with larder.Store(path, create=True, mode=0o640 if i % 2 else 0o600) as s:
            key = "creator-%d" % i
            s.put(key, b"made by %d" % i, "v")
            results.put((i, bytes(s.get(key, "v"))))
    except Exception as exc:  # reported to the parent
        results.put((i, "error", repr(exc)))


def test_processes_creating_one_new_store_together_all_get_it(tmp_path):
    # A pool of workers given one fresh cache directory: none runs
    # `larder init` first, every one opens with create=True at once.
    for r in range(CREATE_ROUNDS):
        path = str(tmp_path / ("store-%d" % r))
        if r % 2:
            os.mkdir(path)  # there and empty, as a fresh volume
        barrier = CTX.Barrier(CREATORS)
        results = CTX.Queue()
        procs = [CTX.Process(target=creator, args=(path, i, barrier, results))
                 for i in range(CREATORS)]
        got, codes = gather(procs, results)
        got.sort()
        assert codes == [0] * CREATORS
        assert got == [(i, b"made by %d" % i) for i in range(CREATORS)], \
            "round %d: %r" % (r, got)
        names = sorted(os.listdir(path))
        assert names == ["larder-store", "ns", "quarantine", "stats"], names
        files = [os.path.join(d, f) for d, _, fs in os.walk(os.path.join(path, "ns")) for f in fs]
        assert not [f for f in files if os.path.basename(f).startswith(".tmp.")]
        # Every creator published with the one store's mode: entries
        # are its mode less w (docs/security.md).
        with open(os.path.join(path, "larder-store")) as f:
            mode = int(f.read().split("mode ")[1].split()[0], 8)
        assert {os.stat(f).st_mode & 0o777 for f in files} == {mode & ~0o222}


def stuck_filler(path, started):
    with larder.Store(path) as s:

        def load():
            started.set()
            # Never returns: the test kills this process here.
            CTX.Event().wait()
            return b""

        s.get_or_fill("k", "v", load, lease_seconds=30)


def waiter(path, count_path, entering, results):
    try:
        with larder.Store(path) as s:
            entering.release()
            e, outcome = s.get_or_fill("k", "v", counting_loader(count_path),
                                       lease_seconds=30)
            results.put((str(outcome), memoryview(e) == payload()))
    except Exception as exc:  # reported to the parent
        results.put(("error", repr(exc)))


def test_filler_killed_mid_load_is_taken_over(tmp_path):
    path, count = new_store(tmp_path)
    started = CTX.Event()
    filler = CTX.Process(target=stuck_filler, args=(path, started))
    filler.start()
    try:
        assert started.wait(TIMEOUT), "the filler never started loading"
        n = 4
        entering = CTX.Semaphore(0)
        results = CTX.Queue()
        procs = [CTX.Process(target=waiter,
                             args=(path, count, entering, results))
                 for _ in range(n)]
        start_all(procs)
        for _ in range(n):
            assert entering.acquire(timeout=TIMEOUT)
        os.kill(filler.pid, signal.SIGKILL)
        filler.join(TIMEOUT)
        got = [results.get(timeout=TIMEOUT) for _ in range(n)]
        assert join_all(procs) == [0] * n
    finally:
        if filler.is_alive():
            filler.kill()
            filler.join()
    assert filler.exitcode == -signal.SIGKILL
    assert all(ok is True for _, ok in got), got
    # The lease lasts 30 s: every waiter was answered long before a
    # lease period passed, so the dead filler was seen as dead at once.
    assert count_calls(count) == 1
    assert sorted(o for o, _ in got).count("filled") == 1, got


def forked_child(store, key, conn):
    try:
        e = store.get(key, "v")
        ok = e is not None and bytes(e) == b"parent's"
        store.put("from-child", b"child's", "v")
        e2, o = store.get_or_fill("filled-in-child", "v", lambda: b"c")
        conn.send((ok, str(o), bytes(e2)))
    except Exception as exc:
        conn.send(("error", repr(exc), b""))
    finally:
        conn.close()


def test_forked_child_uses_the_parents_store(store):
    store.put("k", b"parent's", "v")
    held = store.get("k", "v")
    parent, child = CTX.Pipe()
    p = CTX.Process(target=forked_child, args=(store, "k", child))
    p.start()
    got = parent.recv()
    p.join(TIMEOUT)
    assert p.exitcode == 0
    assert got == (True, "filled", b"c")
    assert bytes(store.get("from-child", "v")) == b"child's"
    assert bytes(held) == b"parent's"


def test_writer_begun_before_fork_is_the_parents(store):
    w = store.writer("w", "v")
    w.write(b"abc")
    parent, child = CTX.Pipe()

    def child_main(conn):
        try:
            w.commit()
            conn.send("committed")
        except RuntimeError as exc:
            conn.send("refused: %s" % exc)
        conn.close()

    p = CTX.Process(target=child_main, args=(child,))
    p.start()
    msg = parent.recv()
    p.join(TIMEOUT)
    assert msg.startswith("refused"), msg
    assert w.commit() is True
    assert bytes(store.get("w", "v")) == b"abc"


def test_threads_of_one_process_load_once(store):
    import threading

    n = 8
    barrier = threading.Barrier(n)
    calls = []
    results = []

    def load():
        calls.append(threading.get_ident())
        return payload()

    def member():
        barrier.wait(TIMEOUT)
        e, o = store.get_or_fill("threads", "v", load)
        results.append((str(o), memoryview(e) == payload()))

    ts = [threading.Thread(target=member) for _ in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(TIMEOUT)
    assert len(results) == n and all(ok for _, ok in results), results
    assert len(calls) == 1
    assert sorted(o for o, _ in results).count("filled") == 1


class Interrupted(Exception):
    pass


def test_a_signal_stops_a_wait_for_another_filler(tmp_path):
    import threading

    path = str(tmp_path / "store")
    larder.Store(path, create=True).close()
    started = CTX.Event()
    filler = CTX.Process(target=stuck_filler, args=(path, started))
    filler.start()
    state = {"waiting": False, "done": False}

    def handler(signum, frame):
        # Only once the call is under way: a signal before it proves
        # nothing about the wait.
        if state["waiting"]:
            raise Interrupted()

    def sender(done):
        # Repeats until the call returns: a signal that lands before
        # the wait began is ignored and the next one comes.
        while not done.wait(0.05):
            os.kill(os.getpid(), signal.SIGUSR1)

    old = signal.signal(signal.SIGUSR1, handler)
    done = threading.Event()
    t = threading.Thread(target=sender, args=(done,))
    try:
        assert started.wait(TIMEOUT)
        with larder.Store(path) as s:
            t.start()
            state["waiting"] = True
            try:
                # A loader of C (no bytecode runs in it, so no signal
                # handler either): had the wait run out, it would load
                # and publish.
                s.get_or_fill("k", "v", functools.partial(bytes, b"x"),
                              lease_seconds=30, max_wait=60)
                outcome = "returned"
            except Interrupted:
                outcome = "interrupted"
            state["waiting"] = False
            done.set()
            t.join()
            assert outcome == "interrupted"
            assert s.get("k", "v") is None
    finally:
        done.set()
        signal.signal(signal.SIGUSR1, old)
        filler.kill()
        filler.join()
