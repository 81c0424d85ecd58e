# lib.sh — shared by the CLI test scripts (sourced, not run).
#
# Usage in a script:  . "$(dirname "$0")/lib.sh" "$1"
# Gives: $LARDER (the binary), $T (a scratch dir, removed at exit), $S (a
# store path inside it), L (larder on $S), run/expect helpers, and the
# counting of tests/checks.sh (ok, not_ok, check, skip, finish: prints
# "N passed, N failed, N skipped", exits). A script that cannot run at
# all here calls skip_all (exit 77, CTest's SKIP_RETURN_CODE); one that
# cannot even start calls bail. Background processes a script starts are
# handed to track, so that they end with the script however it ends.

LARDER=$1
if [ -z "$LARDER" ] || [ ! -x "$LARDER" ]; then
	echo "usage: $0 path/to/larder" >&2
	exit 2
fi
T=$(mktemp -d "${TMPDIR:-/tmp}/larder-cli.XXXXXX") || exit 2
S=$T/store
# The scripts that source this one live in tests/*/.
. "$(dirname "$0")/../checks.sh"
# Keep the test independent of the caller's environment.
unset LARDER_DIR XDG_CACHE_HOME
bgpids=
trap 'cleanup_bg; rm -rf "$T"' EXIT
trap 'exit 130' INT TERM HUP PIPE

# track PID: a background process of the test, killed at exit if it is
# still there (a holder blocked on a FIFO must not outlive a failed test).
track() {
	bgpids="$bgpids $1"
}

cleanup_bg() {
	for p in $bgpids; do
		kill -KILL "$p" 2>/dev/null
	done
}

# L ARGS...: larder on the test store.
L() {
	"$LARDER" --dir "$S" "$@"
}

# run CMD...: run it, stdout to $T/out, stderr to $T/err, status in $rc.
run() {
	"$@" >"$T/out" 2>"$T/err"
	rc=$?
}

# expect_rc WANT DESC CMD...: run CMD and check its exit status.
expect_rc() {
	want=$1
	desc=$2
	shift 2
	run "$@"
	if [ "$rc" -eq "$want" ]; then
		ok "$desc (exit $want)"
	else
		not_ok "$desc: exit $rc, want $want"
	fi
}

# expect_err PATTERN DESC: the last run's stderr matches PATTERN (grep -E).
expect_err() {
	if grep -Eq -- "$1" "$T/err"; then
		ok "$2"
	else
		not_ok "$2: stderr does not match /$1/"
	fi
}

# expect_out PATTERN DESC: the last run's stdout matches PATTERN (grep -E).
expect_out() {
	if grep -Eq -- "$1" "$T/out"; then
		ok "$2"
	else
		not_ok "$2: stdout does not match /$1/"
	fi
}

# json_ok FILE: FILE is valid JSON.
json_ok() {
	python3 -m json.tool "$1" >/dev/null 2>&1
}

# json_get FILE EXPR: evaluate a Python expression on the parsed JSON `j`.
json_get() {
	python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2" 2>/dev/null
}

finish() {
	summary
	[ "$fail" -eq 0 ]
	exit $?
}
