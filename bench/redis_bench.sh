#!/bin/sh
# The Redis backend against bare hiredis GET and SET (bench/bench_redis.c)
# on a private Redis started here (tests/redis/redis.sh) and stopped by
# pid on the way out, whatever the way out.
#
#   sh bench/redis_bench.sh [BUILD_DIR] [--quick] [--only SIZE] [--part put|fill|many|herd|near]
#   sh bench/redis_bench.sh [BUILD_DIR] --part put [--only SIZE] [--rounds N] [--redis-only]
#   sh bench/redis_bench.sh [BUILD_DIR] --put-loop N   (under strace -c or perf)
set -eu
BUILD=${1:-build}
[ $# -eq 0 ] || shift
BIN=$(cd "$BUILD" && pwd)/bench/bench_redis
[ -x "$BIN" ] || { echo "no $BIN: build first (make build)" >&2; exit 2; }
here=$(cd "$(dirname "$0")" && pwd)
T=$(mktemp -d "${TMPDIR:-/tmp}/larder-bench-redis.XXXXXX")
export LARDER_REDIS_BASE="$T/redis"
trap 'sh "$here/../tests/redis/redis.sh" stop >/dev/null 2>&1 || true; rm -rf "$T"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
sh "$here/../tests/redis/redis.sh" start >"$T/env"
val() { sed -n "s/^$1=//p" "$T/env"; }
REDIS_URI=$(val REDIS_URI) REDIS_PORT=$(val REDIS_PORT) \
	REDIS_PASSWORD=$(val REDIS_PASSWORD) "$BIN" "$@"
