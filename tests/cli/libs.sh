#!/bin/sh
# The libraries a command loads: a `larder get` hit must load neither
# libpq (and the twenty libraries it brings) nor libsqlite3, which
# liblarder loads only when a call reaches PostgreSQL or SQLite
# (src/sources/source_pg.c, source_sqlite.c: "Loading ..."). For each
# source built in ($LARDER_WITH_POSTGRESQL, $LARDER_WITH_SQLITE: 1 or 0,
# set by CMake): `larder sql` on such a database does load it, and a
# library that cannot be loaded gives a message naming it.
. "$(dirname "$0")/lib.sh" "$1"

L init >/dev/null 2>&1 || bail "cannot init"
# More than a pipe holds (64 KiB), so that the get below is still running,
# blocked writing, when its mappings are read.
head -c 1048576 /dev/urandom >"$T/p" || bail "cannot write $T/p"
L put k "$T/p" >/dev/null 2>&1 || bail "cannot put k"

# 1. The mappings of a running get. Its stdout is a FIFO: once a byte of
# the payload has come out, the get has done everything a hit does
# before writing (open, verify), and it waits for the reader with the
# rest of the payload.
mkfifo "$T/fifo" || bail "cannot mkfifo $T/fifo"
"$LARDER" --dir "$S" get k >"$T/fifo" 2>"$T/err" &
pid=$!
track "$pid"
exec 3<"$T/fifo"
dd bs=1 count=1 <&3 >"$T/got" 2>/dev/null
cp "/proc/$pid/maps" "$T/maps" 2>/dev/null
cat <&3 >>"$T/got"
exec 3<&-
wait "$pid"
rc=$?
check "get k hits (exit $rc)" test "$rc" -eq 0
check "get k wrote the payload" cmp -s "$T/got" "$T/p"
check "the maps read are the get's (liblarder in them)" \
	grep -q 'liblarder\.so' "$T/maps"
for lib in libpq libsqlite3; do
	if grep -q "$lib\\.so" "$T/maps"; then
		not_ok "a running get has $lib mapped: $(grep -m1 "$lib" "$T/maps")"
	else
		ok "a running get has no $lib mapped"
	fi
done

# 2. The dynamic linker's own account, start to exit.
LD_DEBUG=files "$LARDER" --dir "$S" get k >/dev/null 2>"$T/ld"
rc=$?
check "get k under LD_DEBUG hits (exit $rc)" test "$rc" -eq 0
check "LD_DEBUG lists what it loaded (liblarder)" \
	grep -q 'file=liblarder\.so' "$T/ld"
for lib in libpq libsqlite3; do
	if grep -q "file=$lib\\.so" "$T/ld"; then
		not_ok "get loaded $lib: $(grep -m1 "file=$lib" "$T/ld")"
	else
		ok "get loaded no $lib"
	fi
done

# An empty file, found first on LD_LIBRARY_PATH, stands for a library
# that cannot be loaded.
mkdir "$T/badlib" || bail "cannot make $T/badlib"
badlib="$T/badlib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

# 3. SQLite loads libsqlite3, on the first open.
if [ "${LARDER_WITH_SQLITE:-0}" = 1 ] && command -v sqlite3 >/dev/null; then
	sqlite3 "$T/a.db" 'create table t(x); insert into t values (42);' ||
		bail "cannot make $T/a.db"
	LD_DEBUG=files "$LARDER" --dir "$S" sql --db "$T/a.db" --ttl 1m \
		'select x from t' >"$T/out" 2>"$T/ld"
	rc=$?
	check "sql on SQLite works (exit $rc)" test "$rc" -eq 0
	check "sql on SQLite loaded libsqlite3" \
		grep -q 'file=libsqlite3\.so\.0 .*dynamically loaded' "$T/ld"
	: >"$T/badlib/libsqlite3.so.0"
	run env LD_LIBRARY_PATH="$badlib" "$LARDER" --dir "$S" sql --ttl 1m \
		--db "$T/a.db" 'select 2'
	check "without libsqlite3, sql fails (exit $rc, want 4)" \
		test "$rc" -eq 4
	expect_err 'SQLite support needs libsqlite3\.so\.0 \(apt-get install libsqlite3-0\)' \
		"without libsqlite3, the message names it and its package"
	expect_rc 0 "without libsqlite3, get k hits" \
		env LD_LIBRARY_PATH="$badlib" "$LARDER" --dir "$S" get k
else
	skip "built without SQLite, or no sqlite3 tool"
fi

if [ "${LARDER_WITH_POSTGRESQL:-0}" != 1 ]; then
	skip "built without PostgreSQL: no loading of libpq to see"
	finish
fi

# 4. PostgreSQL loads libpq, on the first use: a connection string whose
# socket directory does not exist fails to connect, after libpq is in.
nodb="host=$T/no-such-dir dbname=x connect_timeout=2"
LD_DEBUG=files "$LARDER" --dir "$S" sql --db "$nodb" --ttl 1m 'select 1' \
	>/dev/null 2>"$T/ld"
rc=$?
check "sql on an absent server fails (exit $rc, want 4)" test "$rc" -eq 4
check "sql loaded libpq" grep -q 'file=libpq\.so\.5 .*dynamically loaded' \
	"$T/ld"
check "and said libpq's connection failure" \
	grep -q 'PostgreSQL: cannot connect' "$T/ld"

# 5. A libpq.so.5 that cannot be loaded: the message names the library
# and its package.
: >"$T/badlib/libpq.so.5"
for db in "postgresql://localhost/x" "$nodb"; do
	run env LD_LIBRARY_PATH="$badlib" "$LARDER" --dir "$S" sql --ttl 1m \
		--db "$db" 'select 1'
	check "without libpq, sql --db '$db' fails (exit $rc, want 4)" \
		test "$rc" -eq 4
	expect_err 'PostgreSQL support needs libpq\.so\.5 \(apt-get install libpq5\)' \
		"without libpq, the message names libpq.so.5 and its package"
done
# ... and a get does not mind.
expect_rc 0 "without libpq, get k hits" \
	env LD_LIBRARY_PATH="$badlib" "$LARDER" --dir "$S" get k

# 6. A libpq.so.5 that loads but lacks the functions larder calls (too
# old, or not libpq at all): refused by name, nothing called.
if command -v cc >/dev/null 2>&1; then
	mkdir "$T/oldlib" || bail "cannot make $T/oldlib"
	printf 'int larder_test_not_libpq;\n' |
		cc -shared -fPIC -x c - -o "$T/oldlib/libpq.so.5" ||
		bail "cannot build $T/oldlib/libpq.so.5"
	run env LD_LIBRARY_PATH="$T/oldlib" "$LARDER" --dir "$S" sql \
		--ttl 1m --db "$nodb" 'select 1'
	check "with a libpq lacking its functions, sql fails (exit $rc, want 4)" \
		test "$rc" -eq 4
	expect_err 'PostgreSQL support needs libpq\.so\.5 .*libpq\.so\.5 has no function PQ[A-Za-z]+ \(too old\)' \
		"the message names the missing function"
else
	skip "no C compiler to build a libpq.so.5 without libpq's functions"
fi

finish
