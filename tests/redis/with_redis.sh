#!/bin/sh
# with_redis.sh PROGRAM [ARG...] — run a test program against a private
# Redis (redis.sh): start one in a private directory, run PROGRAM with
# LARDER_TEST_BACKEND set to its URI, stop it by pid whatever happens.
# Exits with PROGRAM's status, or 77 (skipped) when redis.sh cannot run
# Redis on this machine.
set -u

here=$(cd "$(dirname "$0")" && pwd)
T=$(mktemp -d "${TMPDIR:-/tmp}/larder-redis-run.XXXXXX") || {
	echo "with_redis.sh: mktemp failed" >&2
	exit 1
}
export LARDER_REDIS_BASE="$T/redis"
cleanup() {
	sh "$here/redis.sh" stop >/dev/null 2>&1 || true
	rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

sh "$here/redis.sh" start >"$T/env" 2>"$T/err"
rc=$?
if [ $rc -ne 0 ]; then
	cat "$T/err" >&2
	if [ $rc -eq 77 ]; then
		echo "SKIP: $(tail -n 1 "$T/err")"
		echo "0 passed, 0 failed, 1 skipped"
		exit 77
	fi
	echo "with_redis.sh: redis.sh start failed ($rc)" >&2
	exit 1
fi
uri=$(sed -n 's/^REDIS_URI=//p' "$T/env")
[ -n "$uri" ] || {
	echo "with_redis.sh: redis.sh printed no REDIS_URI" >&2
	exit 1
}
LARDER_TEST_BACKEND=$uri "$@"
