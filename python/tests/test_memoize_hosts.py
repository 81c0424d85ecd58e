"""memoize's single flight across hosts: two "hosts", each a process in
PID and UTS namespaces of its own (unshare, as tests/test_fill_hosts.c
makes them) with its own hostname, share one store directory; a herd of
processes on both makes the same call and the function runs once.

In their own PID namespaces both hosts' processes have the same small
pids, so only the lease's host name tells them apart, as on two machines
sharing a network filesystem."""

import os
import subprocess
import sys
import textwrap

import pytest

import larder

TIMEOUT = 300
UNSHARE = ["unshare", "--fork", "--pid", "--uts", "--mount-proc"]

# One host: sets its hostname, forks PER_HOST members that wait at a
# barrier, says "ready" and waits for "go" on stdin (so both hosts' herds
# start together), then releases them. The memoized function records each
# call (host and pid) and, before returning, waits until every member of
# both hosts has entered its call, so that the herds overlap.
HOST = textwrap.dedent("""
    import multiprocessing
    import os
    import socket
    import sys
    import time

    import larder

    store_path, calls, entered, total, per_host, host = sys.argv[1:]
    total, per_host = int(total), int(per_host)
    socket.sethostname(host)
    store = larder.Store(store_path)
    EXPECTED = {"answer": 42, "data": bytes(range(256)) * 4096}


    def append(path, line):
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        try:
            os.write(fd, line.encode() + b"\\n")
        finally:
            os.close(fd)


    def count(path):
        try:
            with open(path) as f:
                return len(f.read().split("\\n")) - 1
        except FileNotFoundError:
            return 0


    @store.memoize
    def work(x):
        append(calls, "%s %d" % (socket.gethostname(), os.getpid()))
        deadline = time.monotonic() + 120
        while count(entered) < total:
            if time.monotonic() > deadline:
                raise RuntimeError("the herd never gathered")
            time.sleep(0.01)
        return {"answer": x, "data": bytes(range(256)) * 4096}


    def member(barrier):
        barrier.wait(300)
        append(entered, "%s %d" % (host, os.getpid()))
        assert work(42) == EXPECTED


    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(per_host + 1)
    procs = [ctx.Process(target=member, args=(barrier,))
             for _ in range(per_host)]
    for p in procs:
        p.start()
    print("ready", flush=True)
    if sys.stdin.readline().strip() != "go":
        sys.exit("no go")
    barrier.wait(300)
    for p in procs:
        p.join(300)
    codes = [p.exitcode for p in procs]
    print("exit codes", codes, flush=True)
    sys.exit(0 if codes == [0] * per_host else 1)
""")


@pytest.fixture(scope="module")
def can_unshare():
    r = subprocess.run(UNSHARE + ["sh", "-c", "hostname larder-probe"],
                       capture_output=True)
    if r.returncode != 0:
        pytest.skip("cannot run %r and set a hostname (needs root or user "
                    "namespaces, and util-linux): %s"
                    % (" ".join(UNSHARE), r.stderr.decode().strip()))


def test_herd_across_two_hosts_runs_once(tmp_path, can_unshare):
    store_path = str(tmp_path / "store")
    larder.Store(store_path, create=True).close()
    script = tmp_path / "host.py"
    script.write_text(HOST)
    calls = str(tmp_path / "calls")
    entered = str(tmp_path / "entered")
    per_host = 4
    hosts = []
    try:
        for name in ("host-a", "host-b"):
            hosts.append(subprocess.Popen(
                UNSHARE + [sys.executable, str(script), store_path, calls,
                           entered, str(2 * per_host), str(per_host), name],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True))
        for h in hosts:
            assert h.stdout.readline().strip() == "ready"
        for h in hosts:
            h.stdin.write("go\n")
            h.stdin.flush()
        outs = [h.communicate(timeout=TIMEOUT)[0] for h in hosts]
        assert [h.returncode for h in hosts] == [0, 0], outs
    finally:
        for h in hosts:
            if h.poll() is None:
                h.kill()
                h.wait()
    with open(calls) as f:
        made = f.read().split("\n")[:-1]
    # Exactly one call, on one of the two hosts.
    assert len(made) == 1, made
    assert made[0].split()[0] in ("host-a", "host-b")
    with open(entered) as f:
        assert len(f.read().split("\n")) - 1 == 2 * per_host
