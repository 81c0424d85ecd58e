#!/bin/sh
# larder sql: output bytes per format, keys, versions (--table,
# --version-query, --ttl), track/untrack, and every error's exit code and
# one-line message; a failure caches nothing.
. "$(dirname "$0")/lib.sh" "$1"

if ! command -v sqlite3 >/dev/null 2>&1; then
	skip_all "no sqlite3 command"
fi
L init >/dev/null 2>&1 || bail "cannot init"
D=$T/app.db
sqlite3 "$D" "CREATE TABLE t(id INTEGER PRIMARY KEY, s TEXT, r REAL);
INSERT INTO t VALUES(1, 'a,b', 1.5), (2, NULL, NULL), (3, '', 2.0),
(4, 'q\"t' || char(10) || 'x' || char(9) || 'y\\z', -1);"

# entries: the number of entries in the store.
entries() {
	L ls 2>/dev/null | wc -l | tr -d ' '
}

# want FILE PRINTF-FORMAT: FILE holds exactly these bytes.
want() {
	printf "$2" >"$T/want"
	cmp -s "$T/want" "$1"
}

# --- formats --------------------------------------------------------------
Q="SELECT * FROM t ORDER BY id"
expect_rc 0 "csv (the default)" L sql --db "$D" --ttl 1h -v "$Q"
check "csv bytes: CRLF, quoted only when needed, NULL empty, '' quoted" \
	want "$T/out" 'id,s,r\r\n1,"a,b",1.5\r\n2,,\r\n3,"",2.0\r\n4,"q""t\nx\ty\\z",-1.0\r\n'
expect_err "^filled in [0-9]+\.[0-9]{3} s \(57 bytes\)$" "-v says filled, the time and the size"
check "-v prints one line" test "$(wc -l <"$T/err")" -eq 1
cp "$T/out" "$T/first.csv"
expect_rc 0 "the same query again" L sql --db "$D" --ttl 1h -v "$Q"
check "a hit gives the same bytes" cmp -s "$T/first.csv" "$T/out"
expect_err "^hit in [0-9]+\.[0-9]{3} s \(57 bytes\)$" "-v says hit"
expect_rc 0 "another spelling of the query" L sql -v --db "$D" --ttl 1h \
	"select  *   -- all of it
	 from T order BY ID;"
expect_err "^hit in" "whitespace, comments, case and ';' do not change the key"
run L sql --db "$D" --ttl 1h "$Q"
check "without -v nothing on stderr" test ! -s "$T/err"

expect_rc 0 "tsv" L sql --db "$D" --ttl 1h --format tsv "$Q"
check "tsv bytes: PostgreSQL text format, NULL is \\N" \
	want "$T/out" 'id\ts\tr\n1\ta,b\t1.5\n2\t\\N\t\\N\n3\t\t2.0\n4\tq"t\\nx\\ty\\\\z\t-1.0\n'
expect_rc 0 "jsonl" L sql --db "$D" --ttl 1h --format jsonl "$Q"
check "jsonl bytes" want "$T/out" \
	'{"id":1,"s":"a,b","r":1.5}\n{"id":2,"s":null,"r":null}\n{"id":3,"s":"","r":2.0}\n{"id":4,"s":"q\\"t\\nx\\ty\\\\z","r":-1.0}\n'
if command -v python3 >/dev/null 2>&1; then
	check "every jsonl line is a JSON object" python3 -c '
import json, sys
for line in open(sys.argv[1], "rb").read().decode().split("\n")[:-1]:
    assert isinstance(json.loads(line), dict)' "$T/out"
else
	skip "every jsonl line is a JSON object: no python3"
fi
expect_rc 0 "--no-header" L sql --db "$D" --ttl 1h --no-header "SELECT id FROM t WHERE id < 3"
check "no line of column names" want "$T/out" '1\r\n2\r\n'
expect_rc 0 "an empty result" L sql --db "$D" --ttl 1h "SELECT id FROM t WHERE 0"
check "an empty result is the header alone" want "$T/out" 'id\r\n'

# --- parameters -----------------------------------------------------------
expect_rc 0 "--param" L sql --db "$D" --ttl 1h --param 2 --param '' \
	"SELECT id, ?2 IS NULL AS n FROM t WHERE id = ?1"
check "parameters bind in order, as text" want "$T/out" 'id,n\r\n2,0\r\n'
expect_rc 0 "--null-param" L sql --db "$D" --ttl 1h --param 2 --null-param \
	"SELECT id, ?2 IS NULL AS n FROM t WHERE id = ?1"
check "--null-param binds NULL, another key than ''" want "$T/out" 'id,n\r\n2,1\r\n'
expect_rc 4 "too few parameters" L sql --db "$D" --ttl 1h "SELECT ?1, ?2" --param x
expect_err "^larder: sql: .*takes 2 parameters, 1 given$" "says how many"

# --- versions -------------------------------------------------------------
expect_rc 0 "track" L sql track --db "$D" t -v
expect_err "^tracking 't' in " "track -v says so"
expect_rc 0 "track again (idempotent)" L sql track --db "$D" t
C="SELECT count(*) AS n FROM t"
expect_rc 0 "--table" L sql --db "$D" --table t -v "$C"
check "--table: the result" want "$T/out" 'n\r\n4\r\n'
expect_err "^filled" "--table: filled"
expect_rc 0 "--table again" L sql --db "$D" --table t -v "$C"
expect_err "^hit" "--table: a hit while nothing changes"
sqlite3 "$D" "INSERT INTO t(s) VALUES('new')"
expect_rc 0 "--table after an INSERT" L sql --db "$D" --table t -v "$C"
check "the INSERT is seen" want "$T/out" 'n\r\n5\r\n'
expect_err "^filled" "an INSERT reloads"
sqlite3 "$D" "UPDATE t SET s = 'upd' WHERE id = 5"
expect_rc 0 "--table after an UPDATE" L sql --db "$D" --table t -v "SELECT s FROM t WHERE id = 5"
check "the UPDATE is seen" want "$T/out" 's\r\nupd\r\n'
sqlite3 "$D" "DELETE FROM t WHERE id = 5"
expect_rc 0 "--table after a DELETE" L sql --db "$D" --table t -v "$C"
check "the DELETE is seen" want "$T/out" 'n\r\n4\r\n'
expect_err "^filled" "a DELETE reloads"
expect_rc 0 "untrack" L sql untrack --db "$D" t
expect_rc 4 "--table on an untracked table" L sql --db "$D" --table t "$C"
expect_err "^larder: sql: .*not tracked \(run: larder sql track --db" "says how to track it"

V="SELECT count(*), max(id) FROM t"
expect_rc 0 "--version-query" L sql --db "$D" --version-query "$V" -v "$C"
expect_err "^filled" "--version-query: filled"
expect_rc 0 "--version-query again" L sql --db "$D" --version-query "$V" -v "$C"
expect_err "^hit" "--version-query: hit"
sqlite3 "$D" "INSERT INTO t(s) VALUES('v')"
expect_rc 0 "--version-query after a change" L sql --db "$D" --version-query "$V" -v "$C"
check "the change is seen" want "$T/out" 'n\r\n5\r\n'
expect_rc 0 "ls" L ls
expect_out '	1:5 1:5\\n	' "the version is the version query's result, readable"

expect_rc 0 "a query that starts with a comment, after --" L sql --db "$D" --ttl 1h -v -- "-- how many
SELECT count(*) AS n FROM t"
check "it runs" want "$T/out" 'n\r\n5\r\n'

# --- usage errors: exit 2, nothing touched --------------------------------
n0=$(entries)
expect_rc 2 "no --db" L sql --ttl 1h "SELECT 1"
expect_err "^larder: sql: missing --db URI$" "says --db is missing"
expect_rc 2 "no query" L sql --db "$D" --ttl 1h
expect_err "missing QUERY" "says the query is missing"
expect_rc 2 "two queries" L sql --db "$D" --ttl 1h "SELECT 1" "SELECT 2"
expect_rc 2 "--table and --version-query" L sql --db "$D" --table t --version-query "SELECT 1" "SELECT 1"
expect_err "not both" "says not both"
expect_rc 2 "a bad --format" L sql --db "$D" --ttl 1h --format xml "SELECT 1"
expect_err "bad --format 'xml'" "names the bad format"
expect_rc 2 "no version and no TTL" L sql --db "$D" "SELECT 1"
expect_err "needs a --ttl" "says a TTL is needed"
expect_rc 2 "--ttl never without a version" L sql --db "$D" --ttl never "SELECT 1"
expect_rc 2 "a bad --ttl" L sql --db "$D" --ttl soon "SELECT 1"
expect_rc 2 "a bad --lease" L sql --db "$D" --ttl 1h --lease 0 "SELECT 1"
expect_rc 2 "an unknown option" L sql --db "$D" --ttl 1h --bogus "SELECT 1"
expect_rc 2 "track without a table" L sql track --db "$D"
expect_rc 2 "track without --db" L sql track t
check "usage errors cache nothing" test "$(entries)" -eq "$n0"

# --- database errors: exit 4, one line, nothing cached --------------------
expect_rc 4 "bad SQL" L sql --db "$D" --ttl 1h "SELEC 1"
expect_err "^larder: sql: SQLite database '.*app.db': cannot prepare the query: near \"selec\": syntax error$" "the database's message, naming it"
check "an error is one line" test "$(wc -l <"$T/err")" -eq 1
check "nothing on stdout" test ! -s "$T/out"
expect_rc 4 "no such table" L sql --db "$D" --ttl 1h "SELECT * FROM nosuch"
expect_err "no such table: nosuch" "says which table"
expect_rc 4 "a missing database" L sql --db "$T/missing.db" --ttl 1h "SELECT 1"
expect_err "^larder: sql: no SQLite database at '$T/missing.db'$" "names the path"
check "a missing database is not created" test ! -e "$T/missing.db"
expect_rc 4 "sqlite: prefix, missing" L sql --db "sqlite:$T/missing.db" --ttl 1h "SELECT 1"
printf 'not a database\n%.0s' $(seq 100) >"$T/junk"
expect_rc 4 "not a database" L sql --db "$T/junk" --ttl 1h "SELECT 1"
expect_err "cannot read it: file is not a database$" "says it is not a database"
expect_rc 4 "a write" L sql --db "$D" --ttl 1h "DELETE FROM t"
expect_err "not a query that reads rows" "only queries that read rows"
expect_rc 4 "two statements" L sql --db "$D" --ttl 1h "SELECT 1; SELECT 2"
expect_rc 4 "track a missing table" L sql track --db "$D" nosuch
expect_err "no table 'nosuch'" "track names the table"
expect_rc 4 "track on a missing database" L sql track --db "$T/missing.db" t
check "track does not create a database" test ! -e "$T/missing.db"
check "database errors cache nothing" test "$(entries)" -eq "$n0"
sqlite3 "$D" "SELECT count(*) FROM t" >"$T/count"
check "the database was not changed by the failed write" grep -qx 5 "$T/count"

# --- the store ------------------------------------------------------------
expect_rc 3 "no store" "$LARDER" --dir "$T/nostore" sql --db "$D" --ttl 1h "SELECT 1"
expect_rc 0 "track needs no store" "$LARDER" --dir "$T/nostore" sql track --db "$D" t
check "and makes none" test ! -e "$T/nostore"

# A store that cannot be written (another user's) still gives the result.
if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null 2>&1; then
	chmod 755 "$T"
	chmod 644 "$D"
	nobody() {
		setpriv --reuid=65534 --regid=65534 --clear-groups "$LARDER" --dir "$S" "$@"
	}
	n1=$(entries)
	expect_rc 0 "a store that cannot be written: still the result" \
		nobody sql --db "$D" --ttl 1h -v "SELECT 40 + 2 AS answer"
	check "the rows reach stdout" want "$T/out" 'answer\r\n42\r\n'
	expect_err "^larder: warn: .*not cached.*Permission denied" "a warning says why"
	expect_err "^uncached in " "-v says uncached"
	check "one warning, one -v line" test "$(wc -l <"$T/err")" -eq 2
	check "nothing was cached" test "$(entries)" -eq "$n1"
	chmod 700 "$T"
else
	skip "a store that cannot be written: needs root and setpriv(1)"
fi

# --- output ---------------------------------------------------------------
("$LARDER" --dir "$S" sql --db "$D" --ttl 1h "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 200000) SELECT i FROM c" 2>"$T/err"; echo $? >"$T/rc") | head -c 3 >/dev/null
check "a reader that stops early: exit 0" test "$(cat "$T/rc")" -eq 0
check "a reader that stops early: no message" test ! -s "$T/err"
expect_rc 0 "--help" L sql --help
expect_out "^Examples:" "--help has examples"
expect_out "larder sql track --db URI TABLE" "--help shows track"
expect_rc 0 "help sql" "$LARDER" help sql
expect_rc 0 "sql is in the command list" "$LARDER" --help
expect_out "^  sql " "the main help lists sql"

finish
