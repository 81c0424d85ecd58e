#!/bin/sh
# run.sh TEST_PROGRAM [ARGS...] — start a private PostgreSQL (pg.sh), run
# the test program against it with the LARDER_PG_* variables set, and stop
# the server whatever happens (trap). Prints the program's
# "N passed, N failed" and exits with its status; where PostgreSQL cannot
# be installed or run, prints "SKIP: <reason>" and exits 77 (CTest's
# SKIP_RETURN_CODE).
set -eu

here=$(cd "$(dirname "$0")" && pwd)
prog=${1:?usage: run.sh TEST_PROGRAM [ARGS...]}
shift
pg="$here/pg.sh"
base=${LARDER_PG_BASE:-/tmp/larder-pg}
export LARDER_PG_BASE="$base"

# One server per base directory: concurrent runs, from other build
# directories too, wait for each other here.
lock=${base}.lock
exec 9>"$lock"
if command -v flock >/dev/null 2>&1; then
	flock -w 600 9 || {
		echo "FAIL: another PostgreSQL test run held $lock for 10 minutes" >&2
		exit 1
	}
fi

out=$(mktemp "${TMPDIR:-/tmp}/larder-pg-start.XXXXXX")
elapsed() {
	awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'
}
cleanup() {
	rm -f "$out"
	t0=$(date +%s.%N)
	if sh "$pg" stop 9>&-; then
		echo "postgresql stop: $(elapsed "$t0") s"
	else
		echo "FAIL: pg.sh stop left something behind" >&2
		exit 1
	fi
}

# The traps come before the start: a run killed while the server starts
# (a CTest timeout) still stops it, by the pid it recorded.
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
t0=$(date +%s.%N)
set +e
sh "$pg" start >"$out" 2>&1 9>&-
rc=$?
set -e
if [ $rc -eq 77 ]; then
	echo "SKIP: $(grep -v '^export ' "$out" | tail -1)"
	rm -f "$out"
	trap - EXIT
	echo "0 passed, 0 failed, 1 skipped"
	exit 77
fi
if [ $rc -ne 0 ]; then
	cat "$out" >&2
	echo "FAIL: pg.sh start exited $rc" >&2
	exit 1
fi
echo "postgresql start: $(elapsed "$t0") s"
eval "$(grep '^export LARDER_PG_' "$out")"

set +e
"$prog" "$@" 9>&-
rc=$?
set -e
if [ $rc -ne 0 ]; then
	# The server's view of what went wrong, before stop removes the log.
	echo "--- last lines of the PostgreSQL server's log" >&2
	tail -20 "$base/postgres.log" >&2 || true
fi
exit $rc
