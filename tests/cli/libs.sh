#!/bin/sh
# The libraries a command loads: a `larder get` hit must not load libpq
# (and the twenty libraries it brings), which liblarder loads only when a
# call reaches PostgreSQL (src/sources/source_pg.c, "Loading libpq").
# With PostgreSQL built in ($LARDER_WITH_POSTGRESQL=1, set by CMake): a
# `larder sql` on a PostgreSQL connection string does load it, and a
# libpq.so.5 that cannot be loaded gives a message naming it.
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
if grep -q 'libpq\.so' "$T/maps"; then
	not_ok "a running get has libpq mapped: $(grep -m1 'libpq' "$T/maps")"
else
	ok "a running get has no libpq mapped"
fi

# 2. The dynamic linker's own account, start to exit.
LD_DEBUG=files "$LARDER" --dir "$S" get k >/dev/null 2>"$T/ld"
rc=$?
check "get k under LD_DEBUG hits (exit $rc)" test "$rc" -eq 0
check "LD_DEBUG lists what it loaded (liblarder)" \
	grep -q 'file=liblarder\.so' "$T/ld"
if grep -q 'file=libpq\.so' "$T/ld"; then
	not_ok "get loaded libpq: $(grep -m1 'file=libpq' "$T/ld")"
else
	ok "get loaded no libpq"
fi

if [ "${LARDER_WITH_POSTGRESQL:-0}" != 1 ]; then
	skip "built without PostgreSQL: no loading of libpq to see"
	finish
fi

# 3. PostgreSQL loads it, on the first use: a connection string whose
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

# 4. A libpq.so.5 that cannot be loaded (an empty file found first on
# LD_LIBRARY_PATH): the message names the library and its package.
mkdir "$T/badlib" && : >"$T/badlib/libpq.so.5" || bail "cannot make $T/badlib"
badlib="$T/badlib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
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

finish
