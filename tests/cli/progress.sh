#!/bin/sh
# The progress line (docs/cli.md#progress): on a terminal only; a run
# waiting for another filler names it (host, pid) and its time; `larder
# sql` shows rows and bytes while it loads; a stalled run still shows its
# time moving. script(1) gives the command a terminal; what was drawn
# there is script's stdout.
. "$(dirname "$0")/lib.sh" "$1"
unset LARDER_LOG_LEVEL

L init >/dev/null 2>&1 || bail "cannot init"
# script(1) gives the command a terminal; without it only the checks
# without one run, and the others are counted as skipped.
tty=yes
command -v script >/dev/null 2>&1 || tty=
CR=$(printf '\r')

# Nothing here waits for an amount of time to pass or of work to be done:
# every long-running command blocks until the test has seen what it
# checks (the line drawn, its time moving), then the test lets it go.

# await FILE PATTERN: until FILE holds PATTERN (grep -E), at most 60 s.
# Polls the condition itself; no sleep stands in for it.
await() {
	i=0
	while ! grep -aEq -- "$2" "$1" 2>/dev/null; do
		i=$((i + 1))
		[ $i -ge 6000 ] && return 1
		sleep 0.01
	done
}

# await_times FILE REGEX N: until FILE holds N distinct values of REGEX's
# group 1 (the time shown on a redrawn line), at most 60 s.
await_times() {
	python3 - "$@" <<'PY'
import re, sys, time
path, pat, n = sys.argv[1], re.compile(sys.argv[2].encode()), int(sys.argv[3])
deadline = time.monotonic() + 60
while time.monotonic() < deadline:
    try:
        if len(set(pat.findall(open(path, "rb").read()))) >= n:
            sys.exit(0)
    except OSError:
        pass
    time.sleep(0.01)  # polling for the event, not waiting for it to happen
sys.exit(1)
PY
}

# go FIFO: let whatever reads FIFO go on. Bounded: if the reader died, the
# open would block for good, so it gives up after 60 s (and says so).
go() {
	timeout 60 sh -c 'echo go >"$1"' sh "$1" ||
		not_ok "nothing was reading $1 (its reader died?)"
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
	track "$holder"
	await "$T/$1.marker" . || not_ok "the holder of $1 never started"
}

# release KEY: let the holder of KEY go on, and wait for it.
release() {
	go "$T/$1.go"
	wait "$holder"
	check "the holder of $1 exits 0" test $? -eq 0
}

seq 1 200000 >"$T/want"

# --- waiting on a terminal -----------------------------------------------
# The holder holds until the waiter's line has been drawn with two
# different times.
if [ -n "$tty" ]; then
	start_holder w1
	script -qec "'$LARDER' --dir '$S' run --key w1 -- echo WRONG >'$T/w1.out'" /dev/null \
		>"$T/w1.tty" 2>&1 </dev/null &
	waiter=$!
	track "$waiter"
	if await "$T/w1.tty" "waiting for another filler"; then
		ok "a waiting run says so on the terminal"
	else
		not_ok "a waiting run says so on the terminal"
	fi
	check "the waiting line names the holder's host and pid" \
		grep -aEq "larder: waiting for another filler \(host [^,]+, pid $holder\): [0-9]+\.[0-9] s" "$T/w1.tty"
	check "the waiting line is redrawn with its time moving" \
		await_times "$T/w1.tty" 'waiting for another filler \([^)]*\): ([0-9.]+) s' 2
	release w1
	wait "$waiter"
	check "the waiting run exits 0" test $? -eq 0
	check "the waiting run printed the holder's result, every byte" cmp -s "$T/want" "$T/w1.out"
	check "the holder printed it too" cmp -s "$T/want" "$T/w1.holder.out"
	check "the line is cleared when the wait ends" python3 -c '
import re, sys
t = open(sys.argv[1], "rb").read()
after = t[t.rindex(b"waiting for another filler"):]
assert re.search(rb"\r +\r", after), after[-120:]
assert re.search(rb"\r +\r$", t), t[-120:]
' "$T/w1.tty"
else
	skip "a waiting run on a terminal: no script(1)"
fi

# --- waiting without a terminal --------------------------------------------
# The waiter gives up after --max-wait and runs the command itself: it
# waited at least 1.5 s (long enough for the line on a terminal) and says
# nothing. The holder holds until released, so the wait is --max-wait's.
start_holder w2
expect_rc 0 "a waiting run without a terminal" \
	L -v --log-level error run --key w2 --max-wait 1.5 -- seq 1 200000
check "it printed the result, every byte" cmp -s "$T/want" "$T/out"
check "no progress text on stderr, only the -v line" \
	grep -Eqx "filled in [0-9]+\.[0-9]+ s \(exit 0\)" "$T/err"
check "it waited --max-wait (1.5 s) before running the command" \
	awk '$1 == "filled" { exit !($3 >= 1.5) }' "$T/err"
check "stderr is that one line" test "$(wc -l <"$T/err")" -eq 1
if grep -aq "$CR" "$T/err"; then not_ok "no carriage return on stderr"; else ok "no carriage return on stderr"; fi
release w2

# --- a stalled run still shows its time ------------------------------------
# The command prints a byte, then nothing until the test has seen its
# line drawn with three different times (the work, not a wait).
if [ -n "$tty" ]; then
	mkfifo "$T/stall.go"
	script -qec "'$LARDER' --dir '$S' run --key stall -- sh -c 'printf a; read x <\"\$1\"; printf b' sh '$T/stall.go' >'$T/stall.out'" /dev/null \
		>"$T/stall.tty" 2>&1 </dev/null &
	staller=$!
	track "$staller"
	check "its line is redrawn while no byte moves, the time going on" \
		await_times "$T/stall.tty" 'larder: running: 1 B, [0-9.]+ B/s, ([0-9.]+) s' 3
	go "$T/stall.go"
	wait "$staller"
	check "a stalling run on a terminal exits 0" test $? -eq 0
	check "the stalled run's output" test "$(cat "$T/stall.out")" = ab
else
	skip "a stalled run on a terminal: no script(1)"
fi

# --- larder sql ---------------------------------------------------------------
# The query cannot start while the test holds the database's exclusive
# lock: larder's SQLite connection waits on its busy timeout (10 s), and
# the progress line shows that wait. The lock's holder lets go as soon as
# the line is on the terminal, so the query runs well inside the timeout
# whatever the machine's speed; if the holder dies, the lock goes with it.
# (The rows count joins the line once rows come; nothing in SQLite can
# hold a query between two rows, so no check here waits for that redraw.
# tests/test_sql_pg.c checks the count against PostgreSQL, which can.)
python3 -c 'import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); c.execute("create table t(x)"); c.commit()' "$T/db.sqlite"
# 40000 rows of about 110 bytes.
q="WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 40000) SELECT x, printf('%.100c', 'a') AS pad FROM c WHERE x > 0"
if [ -n "$tty" ]; then
	rm -f "$T/locked"
	python3 -c '
import re, sqlite3, sys, time
db, tty, marker = sys.argv[1:]
c = sqlite3.connect(db, isolation_level=None)
c.execute("BEGIN EXCLUSIVE")
open(marker, "w").write("locked\n")
deadline = time.monotonic() + 60
line = re.compile(rb"\rlarder: querying: ")
while time.monotonic() < deadline:
    try:
        if line.search(open(tty, "rb").read()):
            break
    except OSError:
        pass
    time.sleep(0.01)  # polling for the event, not waiting for it to happen
c.execute("COMMIT")
' "$T/db.sqlite" "$T/sql1.tty" "$T/locked" &
	locker=$!
	track "$locker"
	await "$T/locked" . || not_ok "the database was never locked"
	script -qec "'$LARDER' --dir '$S' sql --db '$T/db.sqlite' --ttl 1h \"$q\" >'$T/sql1.out'" /dev/null \
		>"$T/sql1.tty" 2>&1 </dev/null
	check "a larder sql kept waiting on a terminal exits 0" test $? -eq 0
	wait "$locker"
	check "a progress line with bytes, rate and time while the query waits" \
		grep -aEq "${CR}larder: querying: [0-9.]+ (B|KiB|MiB), [0-9.]+ (B|KiB|MiB)/s, [0-9]+\.[0-9] s" "$T/sql1.tty"
	check "the line is cleared at the end" python3 -c '
import re, sys
t = open(sys.argv[1], "rb").read()
assert re.search(rb"\r +\r$", t), t[-80:]
' "$T/sql1.tty"
	check "the result: a header and 40000 rows" test "$(wc -l <"$T/sql1.out")" -eq 40001

else
	skip "a long larder sql on a terminal: no script(1)"
	L sql --db "$T/db.sqlite" --ttl 1h "$q" >"$T/sql1.out" 2>/dev/null
fi
expect_rc 0 "a larder sql without a terminal" \
	L sql --db "$T/db.sqlite" --ttl 1h "$q AND x < 40001"
check "nothing on stderr without a terminal" test ! -s "$T/err"
check "the same rows" cmp -s "$T/sql1.out" "$T/out"
if [ -n "$tty" ]; then
	expect_rc 0 "a hit on a terminal" \
		script -qec "'$LARDER' --dir '$S' sql --db '$T/db.sqlite' --ttl 1h \"$q\" >'$T/sql2.out'" /dev/null
	check "no progress line for a hit" test ! -s "$T/out"
	check "the hit gives the same bytes" cmp -s "$T/sql1.out" "$T/sql2.out"
else
	skip "a hit on a terminal: no script(1)"
fi

finish
