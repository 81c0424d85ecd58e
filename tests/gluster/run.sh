#!/bin/sh
# run.sh TEST_PROGRAM LARDER_CLI [FILTER] — start GlusterFS (gluster.sh),
# run the cross-mount test program against its two mounts, and stop
# GlusterFS whatever happens (trap). Prints the program's
# "N passed, N failed" and exits with its status; where this machine cannot
# mount FUSE, prints "SKIP: <reason>" and exits 0 (CTest reports it
# skipped through SKIP_REGULAR_EXPRESSION).
set -eu

here=$(cd "$(dirname "$0")" && pwd)
prog=${1:?usage: run.sh TEST_PROGRAM LARDER_CLI [FILTER]}
cli=${2:?usage: run.sh TEST_PROGRAM LARDER_CLI [FILTER]}
filter=${3:-}
gl="$here/gluster.sh"
base=${LARDER_GLUSTER_BASE:-/tmp/larder-gluster}
export LARDER_GLUSTER_BASE="$base"

# One GlusterFS per machine (fixed port and base directory): concurrent
# runs, from other build directories too, wait for each other here.
lock=${base}.lock
exec 9>"$lock"
if command -v flock >/dev/null 2>&1; then
	flock -w 600 9 || {
		echo "FAIL: another GlusterFS test run held $lock for 10 minutes" >&2
		exit 1
	}
fi

out=$(mktemp "${TMPDIR:-/tmp}/larder-gluster-start.XXXXXX")
cleanup() {
	rm -f "$out"
	t0=$(date +%s.%N)
	if sh "$gl" stop 9>&-; then
		echo "gluster stop: $(elapsed "$t0") s"
	else
		echo "FAIL: gluster.sh stop left something behind" >&2
		exit 1
	fi
}
elapsed() {
	awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'
}

# The traps come before the start: a run killed while the server starts
# (a CTest timeout) still stops it, by the pid it recorded.
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
t0=$(date +%s.%N)
set +e
sh "$gl" start >"$out" 2>&1 9>&-
rc=$?
set -e
if [ $rc -eq 77 ]; then
	echo "SKIP: $(grep -v '^MNT_' "$out" | tail -1)"
	rm -f "$out"
	trap - EXIT
	echo "0 passed, 0 failed, 1 skipped"
	exit 0
fi
if [ $rc -ne 0 ]; then
	cat "$out" >&2
	echo "FAIL: gluster.sh start exited $rc" >&2
	exit 1
fi
echo "gluster start: $(elapsed "$t0") s"
LARDER_GLUSTER_A=$(sed -n 's/^MNT_A=//p' "$out")
LARDER_GLUSTER_B=$(sed -n 's/^MNT_B=//p' "$out")
LARDER_CLI=$cli
export LARDER_GLUSTER_A LARDER_GLUSTER_B LARDER_CLI

set +e
"$prog" $filter 9>&-
rc=$?
set -e
if [ $rc -ne 0 ]; then
	# The clients' view of what went wrong, before stop removes the logs.
	for c in a b; do
		echo "--- last lines of GlusterFS client $c's log" >&2
		grep -E '\] E \[' "$base/log/client-$c.log" 2>/dev/null |
			tail -10 >&2 || true
	done
fi
exit $rc
