#!/bin/sh
# swarm.sh LARDER_SWARM — small swarm runs (docs/swarm.md):
# each variant on a local store must end OK; each sabotage must make the
# verdict FAIL for its own reason (so the checks can fail); bad arguments,
# a client killed and a run out of time are reported. Prints
# "N passed, N failed, N skipped".
SWARM=$1
if [ -z "$SWARM" ] || [ ! -x "$SWARM" ]; then
	echo "usage: $0 path/to/larder-swarm" >&2
	exit 2
fi
T=$(mktemp -d "${TMPDIR:-/tmp}/larder-swarm-test.XXXXXX") || exit 2
trap 'rm -rf "$T"' EXIT
trap 'exit 130' INT TERM
export TMPDIR="$T"
. "$(dirname "$0")/../checks.sh"
# Under a failure: what the last run printed (its verdict is on stdout).
show_failure() {
	sed 's/^/    /' "$T/out" "$T/err" | head -n 20
}

# swarm WANT_RC DESC ARGS...: run it; the verdict line (the last line of
# stdout) goes to $T/verdict.
swarm() {
	want=$1
	desc=$2
	shift 2
	"$SWARM" "$@" >"$T/out" 2>"$T/err"
	rc=$?
	tail -n 1 "$T/out" >"$T/verdict"
	if [ "$rc" -eq "$want" ]; then
		ok "$desc (exit $want)"
	else
		not_ok "$desc: exit $rc, want $want"
	fi
}

# verdict PATTERN DESC: the last verdict matches PATTERN (grep -E).
verdict() {
	if grep -Eq -- "$1" "$T/verdict"; then
		ok "$2"
	else
		not_ok "$2: verdict does not match /$1/"
	fi
}

# stderr PATTERN DESC
stderr() {
	if grep -Eq -- "$1" "$T/err"; then
		ok "$2"
	else
		not_ok "$2: stderr does not match /$1/"
	fi
}

small="--clients 4 --waves 12 --generations 6"
clean=', 0 wrong, 0 stale, 0 errors;.*, 0 unexplained\); .* — OK$'

for v in file sql; do
	swarm 0 "$v: a small swarm is OK" --variant $v $small
	cat "$T/verdict"
	verdict "^swarm $v: 4 clients x 12 waves, 6 generations, seed [0-9]+: 48 reads .* 48 checked" \
		"$v: every read was checked"
	verdict "$clean" "$v: nothing wrong, stale or failed"
	verdict "[1-9][0-9]* kept for [1-9][0-9]* versions" "$v: loads were counted"
done
# The file rewritten in place only (every change a window of torn
# states), and with versions made by the swarm itself (the baseline).
swarm 0 "file: rewritten in place only" --variant file $small --rewrite inplace
verdict "$clean" "file in place: nothing wrong, stale or failed"
swarm 0 "file: own versions (baseline)" --variant file $small --file-version own
verdict "$clean" "file own versions: nothing wrong, stale or failed"
swarm 0 "sql: delete journal (readers meet a writer's locks)" --variant sql $small --journal delete
verdict "$clean" "sql delete journal: nothing wrong, stale or failed"

# Each sabotage must fail the verdict, for its reason.
for v in file sql; do
	swarm 1 "$v: --sabotage wrong fails" --variant $v $small --sabotage wrong
	verdict "FAIL.* [1-9][0-9]* wrong" "$v: wrong payloads are counted as wrong"
	stderr "wrong \(" "$v: a wrong read is described"
	swarm 1 "$v: --sabotage stale fails" --variant $v $small --sabotage stale
	verdict "FAIL.* [1-9][0-9]* (wrong|stale)" "$v: a version that never moves is caught"
	swarm 1 "$v: --sabotage herd fails" --variant $v $small --sabotage herd
	verdict "FAIL.* [1-9][0-9]* (unexplained )?repeat loads" "$v: waiters that load too are caught"
	stderr "loaded [0-9]+ times, [0-9]+ of them with no change of the source" \
		"$v: the repeated version is named"
done

# A client that dies is an error, and the others stop.
"$SWARM" --variant file --clients 3 --waves 50 --generations 2 \
	--load-ms 400 >"$T/out" 2>"$T/err" &
sp=$!
victim=
i=0
while [ -z "$victim" ] && [ $i -lt 100 ]; do
	victim=$(ps -o pid= --ppid $sp | head -n 1 | tr -d ' ')
	[ -n "$victim" ] || sleep 0.05
	i=$((i + 1))
done
[ -n "$victim" ] && kill -KILL "$victim"
wait $sp
rc=$?
tail -n 1 "$T/out" >"$T/verdict"
if [ -n "$victim" ] && [ $rc -eq 1 ]; then ok "a killed client fails the run (exit 1)"; else not_ok "a killed client: exit $rc, victim '$victim'"; fi
stderr "client [0-9]: killed by signal 9" "the killed client is named"
verdict "FAIL.*reads missing" "the reads it did not make are missing"

swarm 1 "a run out of time fails" --variant file --clients 2 --waves 20 \
	--generations 2 --load-ms 3000 --timeout 1
verdict "FAIL, timed out after 1 s" "the verdict says it timed out"

# Bad arguments: exit 2, a message naming the problem, no verdict.
swarm 2 "no --variant" --clients 2
stderr "--variant file\|sql is required" "no --variant: says it is required"
swarm 2 "--variant other" --variant nfs
stderr "neither file nor sql" "--variant other: named"
swarm 2 "--clients 0" --variant file --clients 0
stderr "--clients: '0' is not a number from 1" "--clients 0: named"
swarm 2 "--waves x" --variant file --waves x
stderr "--waves: 'x' is not a number" "--waves x: named"
swarm 2 "--lease -1" --variant file --lease -1
stderr "--lease: '-1' is not a number of seconds" "--lease -1: named"
swarm 2 "unknown option" --variant file --frobnicate 1
stderr "unknown option '--frobnicate'" "unknown option: named"
swarm 2 "option without value" --variant file --clients
stderr "--clients needs a value" "missing value: named"
swarm 2 "--source2 without --store2" --variant file --source2 /nonexistent
stderr "--source2 goes with --store2" "--source2 alone: named"
# (Failed runs above kept their scratch directories: count them.)
scratch() { find "$T" -maxdepth 1 -name 'larder-swarm.*' | wc -l; }
before=$(scratch)
swarm 2 "--store2 that is no store" --variant file --store2 "$T/none"
stderr "cannot open the store through --store2" "--store2: named"
check_no_new() {
	if [ "$(scratch)" -eq "$before" ]; then
		ok "a setup error leaves no scratch directory"
	else
		not_ok "a setup error left its scratch directory behind"
	fi
}
check_no_new
: >"$T/exists.db"
swarm 2 "sql: an existing database is not overwritten" --variant sql --source "$T/exists.db"
stderr "exists: the sql swarm makes its own database" "existing database: named"
swarm 2 "--source in a missing directory" --variant file --source "$T/no/such/src"
stderr "cannot create '$T/no/such/src.swarm-tmp'" "missing source directory: named"
swarm 0 "--help" --help
if grep -q -- "--sabotage" "$T/out"; then ok "--help lists the options"; else not_ok "--help lists the options"; fi

finish
