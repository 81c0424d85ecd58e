#!/bin/sh
# Interrupted writers: SIGINT, SIGTERM or SIGHUP during a put, a run or a
# sql fill leaves no temp file (and no lease) in the store, and the process
# dies of that very signal. Each case waits for the temp file to appear in
# the store, then signals: what is checked never depends on timing.
. "$(dirname "$0")/lib.sh" "$1"

if ! command -v python3 >/dev/null 2>&1; then
	skip_all "no python3 (needed to see how a process ended)"
fi
L init >/dev/null 2>&1 || bail "cannot init"

# signal_at_tmp SIG HOW CMD...: start CMD with default dispositions for
# SIGINT, SIGTERM and SIGHUP (HOW=ignore-hup: SIGHUP ignored, as under
# nohup), wait until a temp file (.tmp.*) exists in the store, send SIG to
# CMD (HOW=group: to its process group, as a terminal sends Ctrl-C),
# then, if RELEASE names a FIFO, open and close it for writing (its
# reader sees the end), and wait for CMD. Prints "signal N", "exit N" or
# "no temp file" (CMD ended first, or 60 s passed: a failure either way).
signal_at_tmp() {
	python3 - "$S" "$@" <<'PY'
import os, signal, subprocess, sys, time
store, sig, how, cmd = sys.argv[1], getattr(signal, sys.argv[2]), sys.argv[3], sys.argv[4:]

def dispositions():
    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, signal.SIG_DFL)
    if how == "ignore-hup":
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
    if how == "group":
        os.setpgid(0, 0)

def temp_file():
    for d, _, files in os.walk(store):
        if any(f.startswith(".tmp.") for f in files):
            return True
    return False

p = subprocess.Popen(cmd, preexec_fn=dispositions, stdin=subprocess.DEVNULL,
                     stdout=subprocess.DEVNULL)
deadline = time.monotonic() + 60
def started():
    # UNTIL=FILE:N: also wait until FILE has N lines (the command has
    # begun), since the fill may make its temp file before the command
    # runs.
    until = os.environ.get("UNTIL")
    if not until:
        return True
    path, n = until.rsplit(":", 1)
    try:
        return len(open(path).read().splitlines()) >= int(n)
    except OSError:
        return False

while not (temp_file() and started()):
    if p.poll() is not None or time.monotonic() > deadline:
        p.kill()
        p.wait()
        print("no temp file")
        sys.exit(0)
    time.sleep(0.01)  # polling for the event, not waiting for it to happen
if how == "group":
    os.killpg(p.pid, sig)
else:
    p.send_signal(sig)
release = os.environ.get("RELEASE")
if release:
    os.close(os.open(release, os.O_WRONLY))
rc = p.wait()
print("signal %d" % -rc if rc < 0 else "exit %d" % rc)
PY
}

# signum NAME: the number of signal NAME.
signum() {
	case $1 in INT) echo 2 ;; TERM) echo 15 ;; HUP) echo 1 ;; esac
}

# leftovers: temp files and leases anywhere in the store.
leftovers() {
	find "$S" \( -name '.tmp.*' -o -name '*.lease' \) | wc -l | tr -d ' '
}

# fresh: no leftovers of an earlier case (there are none unless a case
# failed), so that each case waits for a temp file of its own.
fresh() {
	find "$S" \( -name '.tmp.*' -o -name '*.lease' \) -exec rm -f {} +
}

# A writer that keeps the FIFO open and never ends it: the put's read
# blocks for good, after the first bytes are in the temp file.
endless_fifo() {
	rm -f "$1"
	mkfifo "$1"
	{ printf 'first bytes'; exec sleep 600; } >"$1" &
	writer=$!
}

for sig in INT TERM HUP; do
	num=$(signum "$sig")
	fresh
	endless_fifo "$T/fifo"
	how=$(signal_at_tmp "SIG$sig" pid "$LARDER" --dir "$S" put "k$sig" "$T/fifo" --version v1)
	kill "$writer" 2>/dev/null
	check "put from an endless FIFO, SIG$sig: dies of SIG$sig ($how)" test "$how" = "signal $num"
	check "... and leaves no temp file in the store" test "$(leftovers)" -eq 0
	expect_rc 1 "... and stores nothing" L get "k$sig"
done

# The same on stdin (a pipe that never ends).
fresh
endless_fifo "$T/fifo"
how=$(signal_at_tmp SIGTERM pid sh -c 'exec "$@" <"$0"' "$T/fifo" "$LARDER" --dir "$S" put kpipe --version v1)
kill "$writer" 2>/dev/null
check "put from an endless pipe on stdin, SIGTERM: dies of it ($how)" test "$how" = "signal 15"
check "... and leaves no temp file in the store" test "$(leftovers)" -eq 0

# A signal ignored on entry (nohup) stays ignored: the put goes on and
# stores what it read once its input ends.
# Its input ends when the test opens and closes fifo2 (RELEASE).
fresh
rm -f "$T/fifo" "$T/fifo2"
mkfifo "$T/fifo" "$T/fifo2"
{ printf 'all of it'; exec cat "$T/fifo2"; } >"$T/fifo" &
writer=$!
how=$(RELEASE=$T/fifo2 signal_at_tmp SIGHUP ignore-hup "$LARDER" --dir "$S" put knohup "$T/fifo" --version v1)
wait "$writer" 2>/dev/null
check "put with SIGHUP ignored on entry: SIGHUP does not stop it ($how)" test "$how" = "exit 0"
expect_rc 0 "... and it stored its input" L get knohup
check "... all of it" test "$(cat "$T/out")" = "all of it"

# --- run ------------------------------------------------------------------
# The command prints a line (so the fill's temp file exists), then sleeps.
# SIGTERM and SIGHUP are passed on to it; Ctrl-C reaches it from the
# terminal (here: the process group).
side=$T/runs
: >"$side"
rcmd='echo run >>"$1"; echo partial; exec sleep 600'
for sig in TERM HUP INT; do
	num=$(signum "$sig")
	to=pid
	[ "$sig" = INT ] && to=group
	fresh
	n=$(($(wc -l <"$side") + 1))
	how=$(UNTIL="$side:$n" signal_at_tmp "SIG$sig" "$to" "$LARDER" --dir "$S" run --key "r$sig" -- sh -c "$rcmd" sh "$side")
	check "run, SIG$sig while the command runs: dies of SIG$sig ($how)" test "$how" = "signal $num"
	check "... and leaves no temp file or lease in the store" test "$(leftovers)" -eq 0
	expect_rc 0 "... and caches nothing: the next run runs the command" \
		L run --key "r$sig" -- sh -c 'echo run >>"$1"; echo whole' sh "$side"
	check "... (it ran)" test "$(cat "$T/out")" = whole
done
check "run: every command ran (3 interrupted, 3 complete)" test "$(wc -l <"$side" | tr -d ' ')" -eq 6
# --cache-failures keeps a command killed by a signal, but not one that
# was killed because larder itself was told to stop.
fresh
how=$(signal_at_tmp SIGTERM pid "$LARDER" --dir "$S" run --cache-failures --key rcf -- sh -c "$rcmd" sh "$side")
check "run --cache-failures, SIGTERM: dies of it ($how)" test "$how" = "signal 15"
check "... and leaves no temp file or lease in the store" test "$(leftovers)" -eq 0
expect_rc 0 "... and caches nothing, not even as a failure" \
	L run --cache-failures --key rcf -- sh -c 'echo run >>"$1"; echo whole' sh "$side"
check "... (the next run ran)" test "$(cat "$T/out")" = whole

# --- sql ------------------------------------------------------------------
# A query of many rows: the temp file appears with its first chunk, and
# the fill stops at the next one. Whenever the signal lands, no temp file
# or lease stays and the process dies of the signal.
if command -v sqlite3 >/dev/null 2>&1; then
	sqlite3 "$T/big.db" "CREATE TABLE t(x)"
	fresh
	q='WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 5000000) SELECT x FROM c'
	how=$(signal_at_tmp SIGTERM pid "$LARDER" --dir "$S" sql --db "$T/big.db" --ttl 1h "$q")
	check "sql, SIGTERM during a load: dies of it ($how)" test "$how" = "signal 15"
	check "... and leaves no temp file or lease in the store" test "$(leftovers)" -eq 0
else
	skip "sql, SIGTERM during a load: no sqlite3 command"
fi

finish
