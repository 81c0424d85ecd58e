"""Entries are shared with the CLI both ways, `larder run` keys too."""

import os
import struct
import subprocess

import larder


def cli(larder_cli, store, *args, stdin=b""):
    return subprocess.run([larder_cli, "--dir", store.path, *args],
                          input=stdin, capture_output=True, check=True,
                          timeout=120).stdout


def test_cli_put_python_get(store, larder_cli):
    cli(larder_cli, store, "put", "k", "--version", "v1", "--meta", "m",
        stdin=b"from the CLI")
    e = store.get("k", "v1")
    assert bytes(e) == b"from the CLI" and e.meta == b"m"
    assert bytes(store.get("k")) == b"from the CLI"


def test_python_put_cli_get(store, larder_cli):
    store.put("k", b"from Python \x00\xff", "v1")
    assert cli(larder_cli, store, "get", "k", "--version", "v1") == \
        b"from Python \x00\xff"
    store.put("z", b"compressed " * 1000, "v", zstd=True)
    assert cli(larder_cli, store, "get", "z", "--version", "v") == \
        b"compressed " * 1000


def test_namespaces_match_the_cli(store, larder_cli):
    store.namespace("team").put("k", b"ns", "v")
    assert cli(larder_cli, store, "--ns", "team", "get", "k", "--version",
               "v") == b"ns"


def run_trailer(status=0, sig=0):
    return b"LRUNEXIT" + struct.pack("<ii", status, sig)


def test_python_reads_what_larder_run_stored(store, larder_cli, tmp_path):
    cwd = str(tmp_path)
    subprocess.run([larder_cli, "--dir", store.path, "run", "--", "echo",
                    "hello"], cwd=cwd, check=True, capture_output=True,
                   timeout=120)
    key = larder.run_key(["echo", "hello"], cwd=cwd)
    e = store.get(key)
    assert e is not None
    assert bytes(e) == b"hello\n" + run_trailer()
    assert e.meta == larder.RUN_FORMAT.encode()
    assert e.version == (larder.RUN_FORMAT + "\n").encode()


def test_larder_run_hits_what_python_stored(store, larder_cli, tmp_path):
    cwd = str(tmp_path)
    marker = tmp_path / "ran"
    argv = ["sh", "-c", "touch %s; echo computed" % marker]
    key = larder.run_key(argv, cwd=cwd)
    # The version of a run without inputs or a version command is the
    # format tag's line alone (docs/cli.md, "What is stored, byte by
    # byte").
    store.put(key, b"from python\n" + run_trailer(),
              larder.RUN_FORMAT + "\n", meta=larder.RUN_FORMAT.encode())
    out = subprocess.run([larder_cli, "--dir", store.path, "run", "--",
                          *argv], cwd=cwd, check=True, capture_output=True,
                         timeout=120).stdout
    assert out == b"from python\n"
    assert not marker.exists()


def test_run_key_with_key_and_inputs(tmp_path):
    k1 = larder.run_key(key="nightly")
    k2 = larder.run_key(key="nightly", inputs=["a.csv"])
    k3 = larder.run_key(["echo"], cwd="/x", env=["A=1", "B"])
    assert k1 != k2 and k1.startswith(b"larder-run/2\n")
    assert k3 != larder.run_key(["echo"], cwd="/x")
    assert larder.run_key(["echo"]) == larder.run_key(["echo"],
                                                       cwd=os.getcwd())
