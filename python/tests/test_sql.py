"""sql(): SQLite results as rows and DataFrames, cached."""

import sqlite3

import pytest

import larder


@pytest.fixture
def db(tmp_path):
    path = str(tmp_path / "data.db")
    con = sqlite3.connect(path)
    con.execute("create table t (id integer, name text, note text)")
    con.executemany("insert into t values (?, ?, ?)",
                    [(1, "a", None), (2, "tab\there", "line\nbreak"),
                     (3, "back\\slash", "")])
    con.commit()
    con.close()
    return path


def test_rows(store, db):
    rows = store.sql(db, "select id, name, note from t order by id",
                     version_query="select count(*) from t")
    assert rows == [("1", "a", None), ("2", "tab\there", "line\nbreak"),
                    ("3", "back\\slash", "")]


def test_params_and_cache(store, db):
    q = "select name from t where id = ?"
    assert store.sql(db, q, (2,), version_query="select 1") == \
        [("tab\there",)]
    before = store.stats()["handle"]["hits"]
    assert store.sql(db, q, (2,), version_query="select 1") == \
        [("tab\there",)]
    assert store.stats()["handle"]["hits"] == before + 1
    assert store.sql(db, q, [None], version_query="select 1") == []


def test_as_frame(store, db):
    pd = pytest.importorskip("pandas")
    df = store.sql(db, "select id, name from t order by id", ttl=60,
                   as_frame=True)
    assert isinstance(df, pd.DataFrame)
    assert list(df.columns) == ["id", "name"]
    assert df["name"].tolist() == ["a", "tab\there", "back\\slash"]


def test_bad_sql(store, db):
    with pytest.raises(larder.InvalidError):
        store.sql(db, "select nope from nowhere", ttl=60)


def test_needs_a_version_or_ttl(store, db):
    with pytest.raises(larder.Error):
        store.sql(db, "select 1")
