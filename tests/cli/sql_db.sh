#!/bin/sh
# larder sql --db: which database a string names (docs/sql.md#the-database).
# An SQLite path with '=' in it is SQLite; a libpq connection string is
# PostgreSQL; the prefixes decide when both could be meant.
. "$(dirname "$0")/lib.sh" "$1"
# A test below runs it from another directory.
case $LARDER in /*) ;; *) LARDER=$(pwd)/$LARDER ;; esac

if ! command -v sqlite3 >/dev/null 2>&1; then
	skip_all "no sqlite3 command"
fi
L init >/dev/null 2>&1 || bail "cannot init"
mkdir "$T/k=v"
sqlite3 "$T/k=v/a=b.db" "CREATE TABLE t(x); INSERT INTO t VALUES(7);"

# --- SQLite paths with '=' ----------------------------------------------------
expect_rc 0 "an absolute SQLite path with '=' in it" \
	L sql --db "$T/k=v/a=b.db" --ttl 1h "SELECT x FROM t"
check "... is read as SQLite" test "$(tr -d '\r' <"$T/out")" = "x
7"
expect_rc 0 "sql track on such a path" L sql track --db "$T/k=v/a=b.db" t
expect_rc 0 "... and a query by its change counter" \
	L sql --db "$T/k=v/a=b.db" --table t "SELECT x + 1 AS y FROM t"

# A file whose name libpq would also parse: it exists, so it is SQLite.
cp "$T/k=v/a=b.db" "$T/dbname=cache"
run sh -c 'cd "$1" && shift && "$@"' sh "$T" \
	"$LARDER" --dir "$S" sql --db "dbname=cache" --ttl 1h "SELECT x * 2 AS z FROM t"
check "a relative path that is also a connection string, and exists, is SQLite (exit 0)" \
	test "$rc" -eq 0
check "... and gives its rows" test "$(tr -d '\r' <"$T/out")" = "z
14"
expect_rc 0 "sqlite:PATH says SQLite explicitly" \
	L sql --db "sqlite:$T/dbname=cache" --ttl 1h "SELECT x * 3 AS w FROM t"

# --- connection strings ----------------------------------------------------
# No server listens on a socket in an empty directory: libpq fails at
# once, and the message shows which database was tried.
mkdir "$T/nosock"
expect_rc 4 "a connection string libpq parses is PostgreSQL" \
	L sql --db "host=$T/nosock dbname=nosuch connect_timeout=2" --ttl 1h "SELECT 1"
expect_err "^larder: sql: PostgreSQL: " "... and the message says PostgreSQL"

expect_rc 4 "a missing SQLite path with '=' in it" \
	L sql --db "$T/no=such.db" --ttl 1h "SELECT 1"
expect_err "no SQLite database at '$T/no=such.db'" "... is a missing SQLite file"
expect_err "libpq does not take it for a PostgreSQL connection string" \
	"... and the message says it is not a connection string either"

expect_rc 4 "a mistyped connection string" L sql --db "hostt=db1 dbname=x" --ttl 1h "SELECT 1"
expect_err "no SQLite database at 'hostt=db1 dbname=x', and libpq does not take it" \
	"... is neither, and says so"
expect_rc 4 "a mistyped connection string with a password" \
	L sql --db "hostt=db1 password=sekrit" --ttl 1h "SELECT 1"
check "... does not show the password" sh -c '! grep -q sekrit "$1"' sh "$T/err"

finish
