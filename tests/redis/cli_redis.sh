# cli_redis.sh — for the CLI tests on a private Redis, sourced after
# tests/cli/lib.sh (which made $T): the server lives under $T/redis
# (tests/redis/redis.sh) and is stopped by its pid when the script exits,
# also on a signal (a CTest timeout, ^C: dash runs an EXIT trap on exit
# only, so INT, TERM and HUP are turned into exits). A script that must
# undo something first (a SIGSTOPped server) puts it in $redis_on_exit.
# redis_up starts the server, sets URI and PASSWORD, and skips the whole
# script (77) where Redis cannot run here.
redis="$here/redis.sh"
export LARDER_REDIS_BASE="$T/redis"
redis_on_exit=:
trap 'eval "$redis_on_exit"; sh "$redis" stop >/dev/null 2>&1; cleanup_bg; rm -rf "$T"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP
unset LARDER_SHARED

redis_up() {
	sh "$redis" start >"$T/env" 2>"$T/rerr"
	rc=$?
	[ $rc -ne 77 ] || skip_all "$(tail -n 1 "$T/rerr")"
	[ $rc -eq 0 ] ||
		bail "redis.sh start (exit $rc): $(tail -n 3 "$T/rerr")"
	URI=$(sed -n 's/^REDIS_URI=//p' "$T/env")
	PASSWORD=$(sed -n 's/^REDIS_PASSWORD=//p' "$T/env")
}
