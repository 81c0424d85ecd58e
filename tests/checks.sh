# checks.sh — the counting every test script shares (sourced, not run).
#
# Usage:  . "$(dirname "$0")/../checks.sh"   (from a script in tests/*/)
# Gives: the counts pass, fail, skipped; ok, not_ok, skip, check and
# check_quiet, which count; summary (prints "N passed, N failed, N
# skipped", the line scripts/run-tests.sh adds up), finish (prints it and
# exits, non-zero if a check failed), skip_all (nothing more can run here:
# exit 77, CTest's SKIP_RETURN_CODE) and bail (cannot go on: one failure,
# and out). not_ok shows what went wrong through show_failure, which a
# script may define again; the default needs $T, the script's scratch
# directory. tests/cli/lib.sh builds the CLI tests' helpers on this.

pass=0
fail=0
skipped=0

ok() {
	pass=$((pass + 1))
	echo "ok - $1"
}

# show_failure: printed under a failed check. By default the first lines
# of $T/err, where a script keeps the stderr of what it ran last.
show_failure() {
	if [ -s "$T/err" ]; then
		sed 's/^/    stderr: /' "$T/err" | head -n 5
	fi
}

# show_files FILE...: the first lines of each file that is not empty,
# marked with its name (a show_failure for scripts that keep the stderr
# of each step in a file of its own).
show_files() {
	for f in "$@"; do
		[ -s "$f" ] && sed "s|^|    ${f##*/}: |" "$f" | head -n 5
	done
	return 0
}

not_ok() {
	fail=$((fail + 1))
	echo "FAIL - $1"
	show_failure
}

# skip DESC: a check that cannot run here (a tool not installed), counted.
skip() {
	skipped=$((skipped + 1))
	echo "skip - $1"
}

summary() {
	echo "$pass passed, $fail failed, $skipped skipped"
}

# skip_all REASON: nothing more of this script can run here. Counted as
# one skip; exit 77 (the tests' SKIP_RETURN_CODE) unless a check failed.
skip_all() {
	skipped=$((skipped + 1))
	echo "SKIP: $1"
	summary
	[ "$fail" -eq 0 ] || exit 1
	exit 77
}

# bail REASON: the script cannot go on (its store cannot be made): one
# failure, and out.
bail() {
	not_ok "$1"
	summary
	exit 1
}

# check DESC CMD...: passes if CMD succeeds.
check() {
	desc=$1
	shift
	if "$@"; then ok "$desc"; else not_ok "$desc"; fi
}

# check_quiet DESC CMD...: check, with CMD's output kept in $T/log and
# shown only if it fails (for commands that talk a lot, like cmake).
check_quiet() {
	desc=$1
	shift
	if "$@" >"$T/log" 2>&1; then
		ok "$desc"
	else
		fail=$((fail + 1))
		echo "FAIL - $desc"
		sed 's/^/    /' "$T/log" | head -n 10
	fi
}

finish() {
	summary
	[ "$fail" -eq 0 ]
	exit $?
}
