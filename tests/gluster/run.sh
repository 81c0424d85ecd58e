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

# One GlusterFS per machine (fixed port and base directory).
. "$here/../server_run.sh"
server_up GlusterFS gluster "$gl" "$base" 0 '^MNT_'
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
