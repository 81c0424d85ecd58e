# Sourced by the test servers' scripts (tests/gluster/gluster.sh,
# tests/redis/redis.sh), which define say().
# end_pids PID...: TERM the given pids, wait (bounded) until they are
# gone, KILL the stragglers after 5 s. Several at once: each may take a
# second or two to end, and they end in parallel.
end_pids() {
	[ $# -gt 0 ] || return 0
	kill -TERM "$@" 2>/dev/null || true
	i=0
	while :; do
		left=
		for p in "$@"; do
			if kill -0 "$p" 2>/dev/null; then left="$left $p"; fi
		done
		[ -n "$left" ] || return 0
		i=$((i + 1))
		# shellcheck disable=SC2086 # a list of pids
		if [ $i -eq 50 ]; then kill -KILL $left 2>/dev/null || true; fi
		if [ $i -gt 100 ]; then
			say "processes$left would not end"
			return 1
		fi
		sleep 0.1
	done
}
