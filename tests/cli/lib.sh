# lib.sh — shared by the CLI test scripts (sourced, not run).
#
# Usage in a script:  . "$(dirname "$0")/lib.sh" "$1"
# Gives: $LARDER (the binary), $T (a scratch dir, removed at exit), $S (a
# store path inside it), L (larder on $S), run/expect helpers that count
# passes and failures, and finish (prints "N passed, N failed", exits).

LARDER=$1
if [ -z "$LARDER" ] || [ ! -x "$LARDER" ]; then
	echo "usage: $0 path/to/larder" >&2
	exit 2
fi
T=$(mktemp -d "${TMPDIR:-/tmp}/larder-cli.XXXXXX") || exit 2
S=$T/store
pass=0
fail=0
skipped=0
# Keep the test independent of the caller's environment.
unset LARDER_DIR XDG_CACHE_HOME
trap 'rm -rf "$T"' EXIT
trap 'exit 130' INT TERM

ok() {
	pass=$((pass + 1))
	echo "ok - $1"
}

not_ok() {
	fail=$((fail + 1))
	echo "FAIL - $1"
	if [ -s "$T/err" ]; then
		sed 's/^/    stderr: /' "$T/err" | head -n 5
	fi
}

# skip DESC: a check that cannot run here (a tool not installed), counted.
skip() {
	skipped=$((skipped + 1))
	echo "skip - $1"
}

# check DESC CMD...: passes if CMD succeeds.
check() {
	desc=$1
	shift
	if "$@"; then ok "$desc"; else not_ok "$desc"; fi
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
	if [ "$skipped" -gt 0 ]; then
		echo "$pass passed, $fail failed, $skipped skipped"
	else
		echo "$pass passed, $fail failed"
	fi
	[ "$fail" -eq 0 ]
	exit $?
}
