"""Shared fixtures of the Python tests, and the closing line the suite's
runner counts (scripts/run-tests.sh): "N passed, N failed, N skipped"."""

import os
import shutil
import subprocess

import pytest

import larder
from helpers import CALLS


@pytest.fixture
def tmp(tmp_path):
    return tmp_path


@pytest.fixture(autouse=True)
def _calls():
    # Each test starts with no calls recorded (helpers.CALLS).
    del CALLS[:]
    yield


@pytest.fixture
def store(tmp_path):
    s = larder.Store(str(tmp_path / "store"), create=True)
    yield s
    if not s.closed:
        try:
            s.close()
        except RuntimeError:
            pass


@pytest.fixture
def larder_cli():
    """The CLI of the build under test (LARDER_CLI, set by the CTest
    test), or a skip."""
    path = os.environ.get("LARDER_CLI") or shutil.which("larder")
    if not path or not os.access(path, os.X_OK):
        pytest.skip("no larder CLI: set LARDER_CLI")
    return path


@pytest.fixture
def small_fs(tmp_path):
    """A 2 MiB tmpfs (needs root), unmounted however the test ends: a
    store on it cannot keep a result of a few MiB."""
    d = tmp_path / "small"
    d.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(d)], capture_output=True)
    if r.returncode != 0:
        pytest.skip("cannot mount a tmpfs: %s" % r.stderr.decode().strip())
    try:
        yield d
    finally:
        # A failed test's traceback may still hold a mapping of the
        # store: then the mount is detached lazily, never left behind.
        if subprocess.run(["umount", str(d)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(d)], check=True)


def pytest_terminal_summary(terminalreporter):
    stats = terminalreporter.stats
    passed = len(stats.get("passed", []))
    failed = len(stats.get("failed", [])) + len(stats.get("error", []))
    # A known failure (xfail) is counted as skipped: it does not pass.
    skipped = len(stats.get("skipped", [])) + len(stats.get("xfailed", []))
    terminalreporter.write_line(
        "%d passed, %d failed, %d skipped" % (passed, failed, skipped))
