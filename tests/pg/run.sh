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

# One server per base directory.
. "$here/../server_run.sh"
server_up PostgreSQL postgresql "$pg" "$base" 77 '^export '
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
