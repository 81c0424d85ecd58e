#!/bin/sh
# harness.sh — the private Redis of tests/redis/redis.sh works as the
# Redis tests need it to: a master, a replica that follows it and three
# sentinels that see it; the master killed (by pid), the sentinels promote
# the replica within a bound; stop ends every process (by pid) and frees
# every port, and is safe twice. Every wait polls with a bound; none is a
# fixed sleep standing in for an event. Prints "N passed, N failed, N
# skipped"; exits 77 where Redis cannot run here.
set -u

here=$(cd "$(dirname "$0")" && pwd)
. "$here/../checks.sh"

T=$(mktemp -d "${TMPDIR:-/tmp}/larder-redis-test.XXXXXX") || {
	echo "FAIL - mktemp"
	exit 1
}
export LARDER_REDIS_BASE="$T/redis"
redis="$here/redis.sh"
cleanup() {
	sh "$redis" stop >/dev/null 2>&1 || true
	rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# How long a failover may take: the sentinels call the master down after
# 1 s of silence (redis.sh), agree, elect a leader and promote; a few
# seconds in practice. The bound is generous for a loaded machine.
FAILOVER_S=60

cli() {
	p=$1
	shift
	redis-cli -h 127.0.0.1 -p "$p" "$@" 2>>"$T/err" | tr -d '\r'
}

# until_true SECONDS CMD...: poll CMD every 0.1 s until it succeeds (0)
# or SECONDS pass (1).
until_true() {
	end=$(($(date +%s) + $1))
	shift
	while ! "$@"; do
		[ "$(date +%s)" -lt "$end" ] || return 1
		sleep 0.1
	done
}

sh "$redis" start --replica --sentinel >"$T/env" 2>"$T/err"
rc=$?
[ $rc -ne 77 ] || skip_all "$(tail -n 1 "$T/err")"
[ $rc -eq 0 ] || bail "redis.sh start --replica --sentinel (exit $rc)"
ok "redis.sh start --replica --sentinel"

val() { sed -n "s/^$1=//p" "$T/env"; }
mport=$(val REDIS_PORT)
rport=$(val REDIS_REPLICA_PORT)
sports=$(val REDIS_SENTINEL_PORTS | tr , ' ')
name=$(val REDIS_MASTER_NAME)
REDISCLI_AUTH=$(val REDIS_PASSWORD)
export REDISCLI_AUTH
base=$(val REDIS_BASE)
nports=$(echo "$mport $rport $sports" | wc -w)
if [ "$nports" -eq 5 ] && [ "$base" = "$LARDER_REDIS_BASE" ]; then
	ok "five ports printed, all different: $mport $rport $sports"
else
	bail "start printed: $(tr '\n' ' ' <"$T/env")"
fi
distinct=$(echo "$mport $rport $sports" | tr ' ' '\n' | sort -u | wc -l)
check "the five ports differ" [ "$distinct" -eq 5 ]

# Every pid of ours, for the checks after stop.
pids=
for f in "$base"/*/redis.pid; do pids="$pids $(cat "$f")"; done
check "five pid files" [ "$(echo "$pids" | wc -w)" -eq 5 ]

check "status says running" sh "$redis" status >/dev/null
listens() { ss -Htln "sport = :$1" | grep -q .; }
all_listen=1
for p in $mport $rport $sports; do
	listens "$p" || all_listen=0
	ss -Htln "sport = :$p" | awk '{print $4}' |
		grep -qv '^127\.0\.0\.1:' && all_listen=0
done
check "every server listens, on 127.0.0.1 only" [ $all_listen = 1 ]

check "the master answers PING" [ "$(cli "$mport" ping)" = PONG ]
check "a client without the password is refused" \
	sh -c "REDISCLI_AUTH= redis-cli -h 127.0.0.1 -p $mport get x 2>&1 | grep -q NOAUTH"
check "no persistence: save is empty, appendonly off" \
	[ "$(cli "$mport" config get save | sed -n 2p)$(cli "$mport" config get appendonly | sed -n 2p)" = no ]

link_up() {
	cli "$rport" info replication | grep -q '^master_link_status:up$'
}
if until_true 30 link_up; then
	ok "the replica's link to the master is up"
else
	not_ok "the replica's link to the master is up"
fi
check "the replica follows the master's port" \
	[ "$(cli "$rport" info replication | sed -n 's/^master_port://p')" = "$mport" ]
check "the master takes a write" \
	[ "$(cli "$mport" set larder:probe replicated)" = OK ]
# WAIT: the write reached one replica (or 0 after 5 s).
check "WAIT 1: the replica acknowledged the write" \
	[ "$(cli "$mport" wait 1 5000)" = 1 ]
got=$(cli "$rport" get larder:probe)
if [ "$got" = replicated ]; then
	ok "the replica serves the master's write"
else
	not_ok "the replica serves the master's write (got '$got')"
	cli "$rport" info replication | sed 's/^/    /'
fi

# The sentinels must see the master, and each other (they meet through
# the master's hello channel every 2 s): ckquorum says both.
sentinels_ready() {
	for s in $sports; do
		cli "$s" sentinel ckquorum "$name" | grep -q '^OK' || return 1
	done
}
for s in $sports; do
	addr=$(cli "$s" sentinel get-master-addr-by-name "$name" | tr '\n' ' ')
	check "sentinel $s sees the master at 127.0.0.1:$mport" \
		[ "$addr" = "127.0.0.1 $mport " ]
done
if until_true 30 sentinels_ready; then
	ok "every sentinel has a quorum and a majority (ckquorum)"
else
	not_ok "every sentinel has a quorum and a majority (ckquorum)"
	cli "${sports%% *}" sentinel ckquorum "$name" | sed 's/^/    /'
fi

# A crash of the master: KILL by pid, no shutdown of its own.
mpid=$(cat "$base/master/redis.pid")
kill -KILL "$mpid"
promoted() {
	for s in $sports; do
		[ "$(cli "$s" sentinel get-master-addr-by-name "$name" | sed -n 2p)" = "$rport" ] || return 1
	done
	cli "$rport" role | head -n 1 | grep -qx master
}
if until_true $FAILOVER_S promoted; then
	ok "after the master's kill, the sentinels promoted the replica (within $FAILOVER_S s)"
else
	not_ok "after the master's kill, the sentinels promoted the replica (within $FAILOVER_S s)"
fi
check "the new master kept the write" \
	[ "$(cli "$rport" get larder:probe)" = replicated ]
check "the new master takes writes" \
	[ "$(cli "$rport" set larder:after failover)" = OK ]

check "stop (after a crash of the master)" sh "$redis" stop
alive=
for p in $pids; do kill -0 "$p" 2>/dev/null && alive="$alive $p"; done
check "no process of it is left (by pid)" [ -z "$alive" ]
open=
for p in $mport $rport $sports; do listens "$p" && open="$open $p"; done
check "no port of it still listens" [ -z "$open" ]
check "its directory is gone" [ ! -e "$base" ]
check "stop again is safe" sh "$redis" stop
if sh "$redis" status >/dev/null 2>&1; then
	not_ok "status says not running"
else
	ok "status says not running"
fi

finish
