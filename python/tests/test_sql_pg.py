"""sql() against a real PostgreSQL server: rows and DataFrames, NULLs,
a version_query, and a herd of processes that sends the query once.

The server is the SQL tests' private one (tests/pg/run.sh starts it and
sets LARDER_PG_*); the CTest test `python_pg` runs this file under it.
Without it (the plain `python` test) every test here skips."""

import multiprocessing
import os
import subprocess
import uuid

import pytest

import larder
from helpers import TIMEOUT, run_herd

URI = os.environ.get("LARDER_PG_URI")
ADMIN = os.environ.get("LARDER_PG_ADMIN")
BIN = os.environ.get("LARDER_PG_BIN")
BASE = os.environ.get("LARDER_PG_BASE")

pytestmark = pytest.mark.skipif(
    not (URI and ADMIN and BIN and BASE),
    reason="no PostgreSQL server (the python_pg test starts one: "
    "tests/pg/run.sh)")

CTX = multiprocessing.get_context("fork")


def admin(sql):
    """Run SQL as the cluster's superuser (over the unix socket)."""
    # Not with the sanitizer runtimes this interpreter may have preloaded
    # (python/tests/sanitized.sh): psql is not ours, and under them it hung.
    env = {k: v for k, v in os.environ.items()
           if k not in ("LD_PRELOAD", "ASAN_OPTIONS")}
    r = subprocess.run([os.path.join(BIN, "psql"), "-X", "-q", "-v",
                        "ON_ERROR_STOP=1", "-d", ADMIN, "-c", sql],
                       capture_output=True, text=True, env=env,
                       timeout=120)
    assert r.returncode == 0, "psql %r: %s" % (sql, r.stderr)


@pytest.fixture
def table():
    """A fresh table the role `larder` may read, with a NULL, an empty
    string and characters that need escaping."""
    name = "py_" + uuid.uuid4().hex[:12]
    admin("CREATE TABLE %s (id int, name text, note text);"
          "INSERT INTO %s VALUES (1, 'a', NULL), (2, E'tab\\there', "
          "E'line\\nbreak'), (3, E'back\\\\slash', ''), (4, NULL, NULL);"
          "GRANT SELECT ON %s TO larder" % (name, name, name))
    yield name
    admin("DROP TABLE IF EXISTS %s" % name)


def test_rows_with_nulls(store, table):
    rows = store.sql(URI, "SELECT id, name, note FROM %s ORDER BY id" % table,
                     version_query="SELECT count(*) FROM %s" % table)
    assert rows == [("1", "a", None), ("2", "tab\there", "line\nbreak"),
                    ("3", "back\\slash", ""), ("4", None, None)]


def test_as_frame(store, table):
    pd = pytest.importorskip("pandas")
    df = store.sql(URI, "SELECT id, name FROM %s ORDER BY id" % table,
                   ttl=60, as_frame=True)
    assert isinstance(df, pd.DataFrame)
    assert list(df.columns) == ["id", "name"]
    assert df["id"].tolist() == ["1", "2", "3", "4"]
    assert df["name"].tolist()[:3] == ["a", "tab\there", "back\\slash"]
    assert df["name"].isna().tolist() == [False, False, False, True]


def test_params_bound_as_text(store, table):
    q = "SELECT name FROM %s WHERE id = $1::int" % table
    assert store.sql(URI, q, ("2",), ttl=60) == [("tab\there",)]
    assert store.sql(URI, q, (3,), ttl=60) == [("back\\slash",)]
    assert store.sql(URI, q, (None,), ttl=60) == []


def test_version_query_change_runs_the_query_again(store, table):
    q = "SELECT count(*) FROM %s" % table
    vq = "SELECT max(id) FROM %s" % table
    assert store.sql(URI, q, version_query=vq) == [("4",)]
    before = store.stats()["handle"]["hits"]
    assert store.sql(URI, q, version_query=vq) == [("4",)]
    assert store.stats()["handle"]["hits"] == before + 1
    admin("INSERT INTO %s VALUES (5, 'e', 'f')" % table)
    # The version query's answer moved: a new version, the query again.
    assert store.sql(URI, q, version_query=vq) == [("5",)]


def test_bad_sql_and_bad_login(store, table):
    with pytest.raises(larder.Error):
        store.sql(URI, "SELECT nope FROM %s" % table, ttl=60)
    bad = URI.replace("larder:", "larder:wrong", 1)
    with pytest.raises(larder.Error):
        store.sql(bad, "SELECT 1", ttl=60)


def log_count(marker):
    with open(os.path.join(BASE, "postgres.log"), errors="replace") as f:
        return f.read().count(marker)


def herd_member(path, query, barrier, results):
    try:
        with larder.Store(path) as s:
            barrier.wait(TIMEOUT)
            rows = s.sql(URI, query, ttl=600)
            results.put(rows)
    except Exception as exc:  # reported to the parent
        results.put(("error", repr(exc)))


def test_herd_of_processes_sends_the_query_once(tmp_path, table):
    """Every statement of role larder is logged (log_statement = all, for
    new sessions); the query carries a marker of its own (a string
    literal: larder normalizes the query's text, comments go), so the log
    says how many times the server ran it."""
    admin("ALTER ROLE larder SET log_statement = 'all'")
    try:
        path = str(tmp_path / "store")
        larder.Store(path, create=True).close()
        # One query alone, first: how many log lines one run makes.
        mark1 = "'herd_one_%s'" % uuid.uuid4().hex
        with larder.Store(path) as s:
            rows = s.sql(URI, "SELECT %s AS m, id, name FROM %s ORDER BY id"
                         % (mark1, table), ttl=600)
        assert len(rows) == 4
        per_run = log_count(mark1)
        assert per_run >= 1

        mark = "'herd_%s'" % uuid.uuid4().hex
        query = "SELECT %s AS m, id, name FROM %s ORDER BY id" % (mark, table)
        n = 8
        got, codes = run_herd(CTX, n, herd_member, path, query)
        assert codes == [0] * n
        want = [(mark.strip("'"),) + row[1:] for row in rows]
        assert all(r == want for r in got), got
        assert log_count(mark) == per_run
    finally:
        admin("ALTER ROLE larder RESET log_statement")
