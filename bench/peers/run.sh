#!/bin/sh
# A warm hit through larder beside the systems a user would pick instead
# (docs/performance.md, "Beside the peers"); `make bench-peers` runs it.
#
#   bench/peers/run.sh [--quick] BUILD [DIR]
#
# BUILD holds bench/bench_peers (configured with -DLARDER_BENCH_PEERS=ON);
# the data go to a fresh directory under DIR (default $TMPDIR, else /tmp;
# a full run needs about 2.5 GB), removed at the end. Redis and memcached
# are started here, on free ports of 127.0.0.1 with their files in that
# directory, and stopped by pid whatever happens. Prints the table
# (bench/peers/report.py) and writes BUILD/bench-peers.tsv (the raw
# figures) and BUILD/bench-peers.png (the chart).
# --quick: a few iterations of each, in seconds: a smoke test of the
# benchmark, not a measurement.
set -eu

quick=""
if [ "${1:-}" = --quick ]; then
	quick=--quick
	shift
fi
if [ $# -lt 1 ] || [ $# -gt 2 ]; then
	echo "usage: run.sh [--quick] BUILD [DIR]" >&2
	exit 2
fi
build=$1
base=${2:-${TMPDIR:-/tmp}}
here=$(cd "$(dirname "$0")" && pwd)
# Debian's interpreter, where python3-diskcache and python3-joblib live.
py=/usr/bin/python3

for tool in "$build/bench/bench_peers" redis-server memcached gnuplot "$py"; do
	if ! command -v "$tool" >/dev/null 2>&1; then
		echo "run.sh: $tool missing (make bench-peers installs and builds it)" >&2
		exit 1
	fi
done

work=$(mktemp -d "$base/larder-peers.XXXXXX")
redis_pid=""
memcached_pid=""
child=""
# Stops what this script started, by pid, then removes its files; runs on
# every exit, including an interrupt (the INT/TERM/HUP traps exit, which
# runs this).
cleanup() {
	for pid in $child $redis_pid $memcached_pid; do
		kill "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM

# Runs a measurement in the background and waits for it: the shell runs
# a trap only once its foreground command ends, but interrupts a wait.
run() {
	"$@" &
	child=$!
	status=0
	wait "$child" || status=$?
	child=""
	return "$status"
}

# A port nobody listens on now. Another program could take it before the
# server binds it; the server then fails to start and so does the run.
free_port() {
	"$py" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

mkdir "$work/redis" "$work/c" "$work/py"
redis_port=$(free_port)
# No persistence: Redis keeps the data in memory only, as a cache does.
redis-server --bind 127.0.0.1 --port "$redis_port" --save '' \
	--appendonly no --dir "$work/redis" --logfile "$work/redis/log" \
	--daemonize no --protected-mode no &
redis_pid=$!

memcached_port=$(free_port)
# memcached's items are at most 1 MiB unless -I says more, and -I may be at
# most half of -m: room for the 256 MiB payload.
user=""
[ "$(id -u)" = 0 ] && user="-u root"
# shellcheck disable=SC2086 # $user is zero or two words
memcached -l 127.0.0.1 -p "$memcached_port" -U 0 -m 1024 -I 300m -t 2 $user &
memcached_pid=$!

machine=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
header="$(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs ($machine), kernel $(uname -r),\
 larder $(git -C "$here" rev-parse --short HEAD 2>/dev/null || echo '?'),\
 load average $(cut -d' ' -f1-3 /proc/loadavg)${quick:+ -- quick: not a measurement}"
echo "bench-peers: $header"

out="$build/bench-peers.tsv"
run "$build/bench/bench_peers" $quick --redis "$redis_port" \
	--memcached "$memcached_port" "$work/c" >"$out.tmp"
run "$py" "$here/peers.py" $quick "$work/py" >>"$out.tmp"
mv "$out.tmp" "$out"
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
"$py" "$here/report.py" "$out" "$build/bench-peers.png" "$header"
