#!/bin/sh
# Values a careless user types: seconds are plain decimals at least the
# documented minimum (a lease of 1e-9 s lost single flight), and a closed
# stdin is named as such.
. "$(dirname "$0")/lib.sh" "$1"

L init >/dev/null 2>&1 || bail "cannot init"

# --- --lease and --max-wait -------------------------------------------------
# ran: the command of a `run` below leaves a mark when it runs.
ran() { test -e "$T/ran"; }

for v in 1e-9 0x10 1e3 inf nan -1 +5 ' 5' '5 ' .5 5. 0.5 0.999 0 1x 1.5.2 3601 1.1h 1d 367d ''; do
	rm -f "$T/ran"
	expect_rc 2 "run --lease '$v' is refused" L run --lease "$v" -- touch "$T/ran"
	check "... and nothing ran" sh -c '! test -e "$1"' sh "$T/ran"
	expect_err "bad --lease" "... and the message says which option"
done
expect_err "from 1 to 3600" "the message gives the range"
for v in 1 2.5 30s 1.5m 1h 3600; do
	expect_rc 0 "run --lease '$v' is accepted" L run --lease "$v" -- echo "$v"
done

for v in 1e-9 0x10 inf nan -1 0 0.0001 1e2; do
	expect_rc 2 "run --max-wait '$v' is refused" L run --max-wait "$v" -- echo x
	expect_err "bad --max-wait" "... and the message says which option"
done
for v in 0.001 0.5 2 1m 366d; do
	expect_rc 0 "run --max-wait '$v' is accepted" L run --max-wait "$v" -- echo "$v"
done

# sql parses its options before it looks at the database.
for v in 1e-9 0x10 0.5 inf; do
	expect_rc 2 "sql --lease '$v' is refused" L sql --db "$T/none.db" --ttl 1h --lease "$v" "SELECT 1"
	expect_err "bad --lease" "... and the message says which option"
done
expect_rc 2 "sql --max-wait 1e-9 is refused" L sql --db "$T/none.db" --ttl 1h --max-wait 1e-9 "SELECT 1"

# --- a closed stdin ----------------------------------------------------------
expect_rc 4 "put KEY - with stdin closed" L put k - <&-
expect_err "^larder: put: no input: standard input is closed$" "... says stdin is closed"
check "... and nothing else" test "$(wc -l <"$T/err")" -eq 1
expect_rc 4 "put KEY (stdin by default) with stdin closed" L put k <&-
expect_err "no input: standard input is closed" "... says stdin is closed"
expect_rc 1 "nothing was stored" L get k
printf 'x' | L put k2
run sh -c '"$@" >&-' sh "$LARDER" --dir "$S" get k2
check "get with stdout closed fails (exit 4)" test "$rc" -eq 4
expect_err "cannot write to stdout: Bad file descriptor" "... as a write to a closed stdout"
expect_rc 0 "the store is sound afterwards" L verify

finish
