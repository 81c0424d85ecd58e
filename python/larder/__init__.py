"""larder: a shared cache for expensive data (docs/python.md).

The C core is larder._larder (over include/larder.h); this package
re-exports it and adds the parts written in Python. Import from here,
not from larder._larder.
"""

from . import _larder
from ._larder import (
    NEVER,
    RUN_FORMAT,
    BusyError,
    CallbackError,
    CanceledError,
    CorruptError,
    Entry,
    Error,
    FullError,
    Hasher,
    InvalidError,
    IOFailureError,
    NewerFormatError,
    NoMemoryError,
    NotAStoreError,
    NotFoundError,
    NotStoredWarning,
    Outcome,
    PermissionDeniedError,
    StaleError,
    WaitTimeoutError,
    Writer,
    library_version,
    run_key,
    xxh3_128,
)

__version__ = library_version()

__all__ = [
    "Store", "Entry", "Writer", "Outcome", "Hasher", "xxh3_128", "run_key",
    "files_version", "NEVER", "RUN_FORMAT", "library_version",
    "Error", "InvalidError", "NotFoundError", "BusyError",
    "WaitTimeoutError", "CorruptError", "NewerFormatError", "FullError",
    "PermissionDeniedError", "NoMemoryError", "IOFailureError",
    "StaleError", "NotAStoreError", "CanceledError", "CallbackError",
    "NotStoredWarning",
]


def _tsv_field(field):
    # larder_sql's TSV is PostgreSQL's text format: \N is NULL; \\, \t,
    # \n and \r are escaped (docs/sql.md).
    if field == "\\N":
        return None
    if "\\" not in field:
        return field
    out = []
    i = 0
    n = len(field)
    while i < n:
        c = field[i]
        if c == "\\" and i + 1 < n:
            nxt = field[i + 1]
            out.append({"t": "\t", "n": "\n", "r": "\r"}.get(nxt, nxt))
            i += 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


def _parse_tsv(buf):
    text = bytes(buf).decode("utf-8")
    if not text:
        return [], []
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    rows = [tuple(_tsv_field(f) for f in line.split("\t")) for line in lines]
    return list(rows[0]), rows[1:]


class Store(_larder.Store):
    """A larder store (docs/python.md).

    Store(path=None, *, create=False, ns="default", mode=0,
          trust_local=False, verify_always=False, map_network=False,
          allow_unsafe_mode=False)

    path defaults as the CLI's does: $LARDER_DIR, else
    $XDG_CACHE_HOME/larder, else ~/.cache/larder.
    """

    def memoize(self, func=None, *, ttl=None, inputs=(), version=None,
                ignore=(), serializer="auto", ns=None):
        """Cache func's results in this store, filled once for a herd
        (docs/python.md, Memoize). @store.memoize or
        @store.memoize(ttl=..., inputs=..., ...)."""
        from .memoize import memoize
        return memoize(self, func, ttl=ttl, inputs=inputs, version=version,
                       ignore=ignore, serializer=serializer, ns=ns)

    def sql(self, db, query, params=(), *, table=None, version_query=None,
            ttl=None, as_frame=False, ns=None):
        """The result of query on database db, cached (docs/sql.md).

        Rows as a list of tuples of str (None for SQL NULL), or with
        as_frame=True a pandas DataFrame (columns of str/None). SQLite
        needs no server: db is the file's path.
        """
        entry, _ = self._sql(db, query, params, table=table,
                             version_query=version_query, ttl=ttl, ns=ns)
        with entry:
            columns, rows = _parse_tsv(entry)
        if as_frame:
            import pandas
            return pandas.DataFrame.from_records(rows, columns=columns)
        return rows


def files_version(paths, *, store=None):
    """The content version of files and trees (include/larder.h,
    larder_files_version): "files/1 " and 32 hex digits. With no store,
    the default store remembers the hashes."""
    if store is not None:
        return store.files_version(paths)
    with Store() as s:
        return s.files_version(paths)
