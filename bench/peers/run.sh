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

. "$(dirname "$0")/../common.sh"

for tool in "$build/bench/bench_peers" redis-server memcached gnuplot "$py"; do
	if ! command -v "$tool" >/dev/null 2>&1; then
		echo "run.sh: $tool missing (make bench-peers installs and builds it)" >&2
		exit 1
	fi
done

bench_workdir larder-peers

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
bench_track $!

memcached_port=$(free_port)
# memcached's items are at most 1 MiB unless -I says more, and -I may be at
# most half of -m: room for the 256 MiB payload.
user=""
[ "$(id -u)" = 0 ] && user="-u root"
# shellcheck disable=SC2086 # $user is zero or two words
memcached -l 127.0.0.1 -p "$memcached_port" -U 0 -m 1024 -I 300m -t 2 $user &
bench_track $!

header=$(bench_header)
echo "bench-peers: $header"

out="$build/bench-peers.tsv"
bench_run "$build/bench/bench_peers" $quick --redis "$redis_port" \
	--memcached "$memcached_port" "$work/c" >"$out.tmp"
bench_run "$py" "$here/peers.py" $quick "$work/py" >>"$out.tmp"
mv "$out.tmp" "$out"
bench_load_end
"$py" "$here/report.py" "$out" "$build/bench-peers.png" "$header"
