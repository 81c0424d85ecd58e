#!/bin/sh
# The progress line (docs/cli.md#progress): on a terminal only; a run
# waiting for another filler names it (host, pid) and its time; `larder
# sql` shows rows and bytes while it loads; a stalled run still shows its
# time moving. script(1) gives the command a terminal; what was drawn
# there is script's stdout.
. "$(dirname "$0")/lib.sh" "$1"
unset LARDER_LOG_LEVEL

L init >/dev/null 2>&1 || bail "cannot init"
if ! command -v script >/dev/null 2>&1; then
	echo "skip - no script(1): no terminal to test on"
	finish
fi
CR=$(printf '\r')

# await FILE PATTERN: until FILE holds PATTERN (grep -E), at most 20 s.
# Polls the condition itself; no sleep stands in for it.
await() {
	i=0
	while ! grep -aEq -- "$2" "$1" 2>/dev/null; do
		i=$((i + 1))
		[ $i -ge 2000 ] && return 1
		sleep 0.01
	done
}

# start_holder KEY: a `larder run` of KEY in the background whose command
# writes its pid to $T/KEY.marker once it runs (so the lease is held),
# then blocks until a line comes on the fifo $T/KEY.go, then prints
# `seq 1 200000`. Sets $holder (larder's pid).
start_holder() {
	rm -f "$T/$1.marker" "$T/$1.go"
	mkfifo "$T/$1.go"
	"$LARDER" --dir "$S" run --key "$1" -- sh -c \
		'echo $$ >"$1.tmp"; mv "$1.tmp" "$1"; read x <"$2"; seq 1 200000' \
		sh "$T/$1.marker" "$T/$1.go" >"$T/$1.holder.out" 2>"$T/$1.holder.err" </dev/null &
	holder=$!
	await "$T/$1.marker" . || not_ok "the holder of $1 never started"
}

# release KEY: let the holder of KEY go on, and wait for it.
release() {
	echo go >"$T/$1.go"
	wait "$holder"
	check "the holder of $1 exits 0" test $? -eq 0
}

seq 1 200000 >"$T/want"

# --- waiting on a terminal -----------------------------------------------
start_holder w1
script -qec "'$LARDER' --dir '$S' run --key w1 -- echo WRONG >'$T/w1.out'" /dev/null \
	>"$T/w1.tty" 2>&1 </dev/null &
waiter=$!
if await "$T/w1.tty" "waiting for another filler"; then
	ok "a waiting run says so on the terminal"
else
	not_ok "a waiting run says so on the terminal"
fi
check "the waiting line names the holder's host and pid" \
	grep -aEq "larder: waiting for another filler \(host [^,]+, pid $holder\): [0-9]+\.[0-9] s" "$T/w1.tty"
await "$T/w1.tty" "waiting for another filler \(.*\): (1\.[5-9]|[2-9]\.[0-9]) s" ||
	not_ok "the waiting line's time never reached 1.5 s"
release w1
wait "$waiter"
check "the waiting run exits 0" test $? -eq 0
check "the waiting run printed the holder's result, every byte" cmp -s "$T/want" "$T/w1.out"
check "the holder printed it too" cmp -s "$T/want" "$T/w1.holder.out"
check "the waiting line is redrawn with its time moving" python3 -c '
import re, sys
t = open(sys.argv[1], "rb").read()
secs = re.findall(rb"waiting for another filler \([^)]*\): ([0-9.]+) s", t)
assert len(set(secs)) >= 2, secs
' "$T/w1.tty"
check "the line is cleared when the wait ends" python3 -c '
import re, sys
t = open(sys.argv[1], "rb").read()
after = t[t.rindex(b"waiting for another filler"):]
assert re.search(rb"\r +\r", after), after[-120:]
assert re.search(rb"\r +\r$", t), t[-120:]
' "$T/w1.tty"

# --- waiting without a terminal --------------------------------------------
# The waiter gives up after --max-wait and runs the command itself: it
# waited 1.5 s (long enough for the line on a terminal) and says nothing.
start_holder w2
expect_rc 0 "a waiting run without a terminal" \
	L -v --log-level error run --key w2 --max-wait 1.5 -- seq 1 200000
check "it printed the result, every byte" cmp -s "$T/want" "$T/out"
check "no progress text on stderr, only the -v line" \
	grep -Eqx "filled in (1\.[5-9]|[2-9]\.[0-9])[0-9]* s \(exit 0\)" "$T/err"
check "stderr is that one line" test "$(wc -l <"$T/err")" -eq 1
if grep -aq "$CR" "$T/err"; then not_ok "no carriage return on stderr"; else ok "no carriage return on stderr"; fi
release w2

# --- a stalled run still shows its time ------------------------------------
# The command prints a byte, then nothing for 2 s (the work, not a wait).
expect_rc 0 "a stalling run on a terminal" \
	script -qec "'$LARDER' --dir '$S' run --key stall -- sh -c 'printf a; sleep 2; printf b' >'$T/stall.out'" /dev/null
check "the stalled run's output" test "$(cat "$T/stall.out")" = ab
check "its line is redrawn while no byte moves, the time going on" python3 -c '
import re, sys
t = open(sys.argv[1], "rb").read()
secs = re.findall(rb"larder: running: 1 B, [0-9.]+ B/s, ([0-9.]+) s", t)
assert len(set(secs)) >= 3, t[:300]
' "$T/out"

# --- larder sql ---------------------------------------------------------------
python3 -c 'import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); c.execute("create table t(x)"); c.commit()' "$T/db.sqlite"
# About 2 s of work: 4 M recursion steps, 40000 rows of about 110 bytes.
q="WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 4000000) SELECT x, printf('%.100c', 'a') AS pad FROM c WHERE x % 100 = 0"
expect_rc 0 "a long larder sql on a terminal" \
	script -qec "'$LARDER' --dir '$S' sql --db '$T/db.sqlite' --ttl 1h \"$q\" >'$T/sql1.out'" /dev/null
check "a progress line with rows, bytes, rate and time" \
	grep -aEq "${CR}larder: querying: [0-9]+ rows, [0-9.]+ (B|KiB|MiB), [0-9.]+ (B|KiB|MiB)/s, [0-9]+\.[0-9] s" "$T/out"
check "the line is cleared at the end" python3 -c '
import re, sys
t = open(sys.argv[1], "rb").read()
assert re.search(rb"\r +\r$", t), t[-80:]
' "$T/out"
check "the result: a header and 40000 rows" test "$(wc -l <"$T/sql1.out")" -eq 40001
expect_rc 0 "a long larder sql without a terminal" \
	L sql --db "$T/db.sqlite" --ttl 1h "$q AND x > 0"
check "nothing on stderr without a terminal" test ! -s "$T/err"
check "the same rows" cmp -s "$T/sql1.out" "$T/out"
expect_rc 0 "a hit on a terminal" \
	script -qec "'$LARDER' --dir '$S' sql --db '$T/db.sqlite' --ttl 1h \"$q\" >'$T/sql2.out'" /dev/null
check "no progress line for a hit" test ! -s "$T/out"
check "the hit gives the same bytes" cmp -s "$T/sql1.out" "$T/sql2.out"

finish
