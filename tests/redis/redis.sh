#!/bin/sh
# redis.sh start [--replica] [--sentinel] [--persist] | stop | status —
# a private Redis 7 on this machine for larder's tests (docs/backends.md).
#
#   start   install redis-server (and, with --sentinel, redis-sentinel)
#           from Debian if missing, then start a master; with --replica a
#           replica of it (in sync when start returns); with --sentinel three sentinels watching the
#           master under the name "larder" (quorum 2). Everything listens
#           on 127.0.0.1 only, on free ports picked here (never fixed:
#           a port found taken when the server binds is dropped and
#           another picked), and works in a private directory. No
#           persistence (no RDB, no AOF) unless --persist. Every server
#           (sentinels too) asks for one password, made at random for
#           this start: a port is only ours while we run, and a server
#           of another run's sentinels that comes back on a port we took
#           (they keep calling a master they saw fail) must not be able
#           to make ours its replica. Prints REDIS_PORT=...,
#           REDIS_REPLICA_PORT=..., REDIS_SENTINEL_PORTS=
#           (comma-separated), REDIS_MASTER_NAME=, REDIS_PASSWORD=,
#           REDIS_URI=, REDIS_SENTINEL_URI= and REDIS_BASE= lines (also
#           kept in $BASE/env, mode 0600). redis-cli takes the password
#           from REDISCLI_AUTH. Exit 0 ready, 77 when this machine cannot do it
#           (the reason on stderr), any other code a real failure; a
#           start that fails half way leaves nothing running.
#   stop    end every server of the base directory by pid (TERM, then
#           KILL after 5 s) and remove the directory. Safe at any time:
#           twice, with nothing started, after a crash or a kill -9.
#   status  exit 0 and print the lines above if the master (or, after a
#           failover, any server of ours) is up, else exit 1.
#
# Environment:
#   LARDER_REDIS_BASE  the private directory (default /tmp/larder-redis);
#                      give each concurrent user its own (mktemp -d): the
#                      ports never collide, so nothing else is shared.
#
# Layout under the base directory:
#   master/ replica/ sentinel1/ sentinel2/ sentinel3/
#       each: redis.conf, redis.pid, redis.log, and the server's working
#       directory (dir): a process of ours is one whose cwd is in here,
#       which is how stop knows a pid file still names our process.
#   env     the lines start printed
set -eu

BASE=${LARDER_REDIS_BASE:-/tmp/larder-redis}
NAME=larder
SKIP=77
# Ports are picked below the kernel's ephemeral range (32768 and up by
# default), so that no outgoing connection holds the one we pick.
PORT_LO=20000
PORT_HI=32767

say() { printf 'redis.sh: %s\n' "$*" >&2; }
die() {
	say "$*"
	exit 1
}
skip() {
	say "cannot run Redis here: $*"
	exit $SKIP
}

# Whether process $1 works in our base directory (its cwd is beneath it):
# a pid file's pid that passes this is ours, not a recycled pid.
ours() {
	cwd=$(readlink "/proc/$1/cwd" 2>/dev/null) || return 1
	case $cwd in "$BASE"/*) return 0 ;; esac
	return 1
}

# The pid in file $1 if that process is alive and ours, else nothing.
live_pid() {
	[ -s "$1" ] || return 0
	p=$(cat "$1" 2>/dev/null) || return 0
	case $p in '' | *[!0-9]*) return 0 ;; esac
	if kill -0 "$p" 2>/dev/null && ours "$p"; then echo "$p"; fi
}

# Whether pid file $1 is whole ("<pid>\n": a file read while the daemon
# writes it may hold a part of its pid) and names a process that is gone.
pid_dead() {
	[ -s "$1" ] || return 1
	p=$(cat "$1" 2>/dev/null) || return 1
	case $p in '' | *[!0-9]*) return 1 ;; esac
	[ "$(wc -c <"$1")" -eq $((${#p} + 1)) ] || return 1
	! kill -0 "$p" 2>/dev/null
}

. "$(dirname "$0")/../end_pids.sh"

port_taken() {
	ss -Htln "sport = :$1" 2>/dev/null | grep -q .
}

# A port in [PORT_LO, PORT_HI] that nothing listens on now (the server's
# bind is the real test: see start_server).
pick_port() {
	n=0
	while :; do
		r=$(od -An -N2 -tu2 /dev/urandom | tr -d ' ')
		p=$((PORT_LO + r % (PORT_HI - PORT_LO + 1)))
		if ! port_taken "$p" && ! grep -qs "^port $p\$" \
			"$BASE"/*/redis.conf; then
			echo "$p"
			return 0
		fi
		n=$((n + 1))
		[ $n -lt 200 ] || die "no free port in $PORT_LO..$PORT_HI"
	done
}

# The services Debian's packages would start: pid files, to end a daemon
# our install started (and only one it started: see install_packages).
SERVICE_PIDS="/run/redis/redis-server.pid /run/sentinel/redis-sentinel.pid"

service_pids() {
	for f in $SERVICE_PIDS; do
		[ -s "$f" ] || continue
		p=$(cat "$f" 2>/dev/null) || continue
		case $p in '' | *[!0-9]*) continue ;; esac
		if kill -0 "$p" 2>/dev/null; then echo "$p"; fi
	done
}

install_packages() {
	need=
	command -v redis-server >/dev/null 2>&1 || need="$need redis-server"
	command -v redis-cli >/dev/null 2>&1 || need="$need redis-tools"
	if [ "$1" = 1 ] && ! command -v redis-sentinel >/dev/null 2>&1; then
		need="$need redis-sentinel"
	fi
	[ -n "$need" ] || return 0
	command -v apt-get >/dev/null 2>&1 ||
		skip "missing$need and no apt-get to install them"
	[ "$(id -u)" -eq 0 ] || skip "missing$need (install them, or run as root)"
	say "installing$need"
	before=$(service_pids)
	# Debian's packages start a system daemon on the usual port: keep
	# them from it (invoke-rc.d asks policy-rc.d; 101 = do not start).
	made_policy=
	if [ ! -e /usr/sbin/policy-rc.d ]; then
		printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d &&
			chmod 755 /usr/sbin/policy-rc.d && made_policy=1
	fi
	export DEBIAN_FRONTEND=noninteractive
	log="$BASE/apt.log"
	ok=1
	# shellcheck disable=SC2086 # $need is a list of package names
	if ! apt-get update -q >"$log" 2>&1 ||
		! apt-get install -y -q --no-install-recommends \
			-o Dpkg::Options::=--force-confold \
			-o Dpkg::Options::=--force-confdef $need >>"$log" 2>&1; then
		ok=
	fi
	[ -z "$made_policy" ] || rm -f /usr/sbin/policy-rc.d
	# A daemon that was not running before the install is the
	# package's, started despite the policy (systemd ignores it): end it.
	for p in $(service_pids); do
		case " $before " in *" $p "*) continue ;; esac
		say "ending the daemon the package started (pid $p)"
		end_pids "$p" || true
	done
	if [ -z "$ok" ]; then
		tail -5 "$log" >&2 || true
		skip "could not install$need (apt-get's log: $log)"
	fi
}

# start_server ROLE KIND EXTRA: write ROLE/redis.conf (KIND server or
# sentinel) with a free port and the lines of EXTRA, start the server, and
# wait until it answers as itself on that port. Prints the port. A port
# taken meanwhile (the server cannot bind it) is dropped and another one
# tried.
start_server() {
	role=$1
	kind=$2
	extra=$3
	d=$BASE/$role
	mkdir -p "$d"
	tries=0
	while :; do
		port=$(pick_port)
		rm -f "$d/redis.pid"
		: >"$d/redis.log"
		{
			echo "port $port"
			echo "bind 127.0.0.1"
			echo "daemonize yes"
			echo "pidfile $d/redis.pid"
			echo "logfile $d/redis.log"
			echo "dir $d"
			printf '%s\n' "$extra"
		} >"$d/redis.conf"
		if [ "$kind" = sentinel ]; then
			redis-sentinel "$d/redis.conf" ||
				die "$role: redis-sentinel failed (see $d/redis.log)"
		else
			redis-server "$d/redis.conf" ||
				die "$role: redis-server failed (see $d/redis.log)"
		fi
		# The daemon writes its pid file after the fork, then binds.
		i=0
		while :; do
			pid=$(live_pid "$d/redis.pid")
			if [ -n "$pid" ]; then
				me=$(REDISCLI_AUTH=$PASSWORD redis-cli -h 127.0.0.1 \
					-p "$port" info server \
					2>/dev/null | tr -d '\r' |
					sed -n 's/^process_id://p')
				if [ "$me" = "$pid" ]; then
					echo "$port"
					return 0
				fi
			elif pid_dead "$d/redis.pid" || grep -qs \
				'Could not create\|Address already in use\|Failed listening' \
				"$d/redis.log"; then
				break # the daemon ended: why is in its log
			fi
			i=$((i + 1))
			[ $i -lt 300 ] || die "$role on port $port not answering after 30 s (see $d/redis.log)"
			sleep 0.1
		done
		if grep -qs 'Address already in use' "$d/redis.log"; then
			tries=$((tries + 1))
			[ $tries -lt 10 ] || die "$role: every port tried was taken"
			say "$role: port $port was taken meanwhile; picking another"
			continue
		fi
		tail -5 "$d/redis.log" >&2 || true
		die "$role exited at start (see $d/redis.log)"
	done
}

print_env() {
	cat "$BASE/env"
}

start_all() {
	replica=0
	sentinel=0
	persist=0
	for a in "$@"; do
		case $a in
		--replica) replica=1 ;;
		--sentinel) sentinel=1 ;;
		--persist) persist=1 ;;
		*) die "unknown option $a (start [--replica] [--sentinel] [--persist])" ;;
		esac
	done
	command -v ss >/dev/null 2>&1 || skip "no ss (iproute2) to see free ports"
	[ -e /proc/self/cwd ] || skip "no /proc"
	# Leftovers of an earlier run (a crash, a kill): clear them first.
	[ ! -e "$BASE" ] || stop_all || die "could not clear $BASE"
	# Private: the configs hold the password.
	if ! mkdir -p "$BASE" || ! chmod 700 "$BASE"; then
		die "cannot make $BASE"
	fi
	install_packages $sentinel
	if [ $persist = 1 ]; then
		store='appendonly yes
appendfsync everysec'
	else
		# No RDB snapshots and no AOF: a test's data dies with it.
		store='save ""
appendonly no'
	fi
	# Loopback only, and a password (above).
	PASSWORD=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
	auth="requirepass $PASSWORD
masterauth $PASSWORD"
	common="$store
$auth
databases 16
loglevel notice"
	mport=$(start_server master server "$common")
	rport=
	if [ $replica = 1 ]; then
		rport=$(start_server replica server "$common
replicaof 127.0.0.1 $mport")
		# Ready means in sync: a replica still loading the master's
		# first snapshot acknowledges no WAIT, and a test that writes
		# at once would find its write missing there.
		i=0
		until REDISCLI_AUTH=$PASSWORD redis-cli -h 127.0.0.1 \
			-p "$rport" info replication 2>/dev/null | tr -d '\r' |
			grep -qx 'master_link_status:up'; do
			i=$((i + 1))
			[ $i -lt 600 ] || die "replica on port $rport not in sync with the master after 60 s (see $BASE/replica/redis.log)"
			sleep 0.1
		done
	fi
	sports=
	suri=
	if [ $sentinel = 1 ]; then
		for n in 1 2 3; do
			# Quick failure detection for tests: a master silent
			# for 1 s is subjectively down; a failover that stalls
			# is retried after 10 s.
			p=$(start_server "sentinel$n" sentinel "sentinel monitor $NAME 127.0.0.1 $mport 2
sentinel down-after-milliseconds $NAME 1000
sentinel failover-timeout $NAME 10000
sentinel parallel-syncs $NAME 1
sentinel auth-pass $NAME $PASSWORD
sentinel sentinel-pass $PASSWORD
requirepass $PASSWORD")
			sports="$sports${sports:+,}$p"
			suri="$suri${suri:+,}127.0.0.1:$p"
		done
	fi
	(umask 077 && : >"$BASE/env")
	{
		echo "REDIS_PORT=$mport"
		echo "REDIS_REPLICA_PORT=$rport"
		echo "REDIS_SENTINEL_PORTS=$sports"
		echo "REDIS_MASTER_NAME=$NAME"
		echo "REDIS_PASSWORD=$PASSWORD"
		echo "REDIS_URI=redis://:$PASSWORD@127.0.0.1:$mport/0"
		if [ -n "$suri" ]; then
			echo "REDIS_SENTINEL_URI=redis+sentinel://:$PASSWORD@$suri/$NAME"
		else
			echo "REDIS_SENTINEL_URI="
		fi
		echo "REDIS_BASE=$BASE"
	} >"$BASE/env"
	print_env
}

# Every live process of ours: the pid files' first, then (after a crash
# that lost a pid file) any process whose cwd is beneath the base.
our_pids() {
	for f in "$BASE"/*/redis.pid; do
		[ -e "$f" ] && live_pid "$f"
	done
	for d in /proc/[0-9]*; do
		p=${d#/proc/}
		case $(cat "$d/comm" 2>/dev/null) in redis-server | redis-sentinel | redis-check-rdb) ;; *) continue ;; esac
		if ours "$p"; then echo "$p"; fi
	done
}

stop_all() {
	[ -e "$BASE" ] || return 0
	# shellcheck disable=SC2046 # a list of pids
	end_pids $(our_pids | sort -u) || return 1
	left=$(our_pids)
	[ -z "$left" ] || {
		say "still running: $left"
		return 1
	}
	rm -rf "$BASE"
}

status_quiet() {
	[ -s "$BASE/env" ] || return 1
	for f in "$BASE"/*/redis.pid; do
		[ -z "$(live_pid "$f")" ] || return 0
	done
	return 1
}

cmd=${1:-}
[ $# -eq 0 ] || shift
case $cmd in
start)
	# A start that fails half way leaves nothing running.
	# shellcheck disable=SC2154 # rc is set inside the trap
	trap 'rc=$?; if [ $rc -ne 0 ] && [ $rc -ne $SKIP ]; then
		tail -n 3 "$BASE"/*/redis.log 2>/dev/null >&2
		stop_all || true; fi' EXIT
	# A signal (a CTest timeout) ends the start through that trap too.
	trap 'exit 130' INT
	trap 'exit 143' TERM
	start_all "$@"
	trap - EXIT INT TERM
	;;
stop) stop_all || die "stop left something behind under $BASE" ;;
status)
	status_quiet || {
		echo "not running"
		exit 1
	}
	print_env
	;;
*)
	echo "usage: $0 start [--replica] [--sentinel] [--persist] | stop | status" >&2
	exit 2
	;;
esac
