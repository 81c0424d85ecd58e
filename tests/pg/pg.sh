#!/bin/sh
# pg.sh start|stop|status — a private PostgreSQL server on this machine for
# larder's SQL tests (issue 4; docs/testing.md "A PostgreSQL server").
#
#   start   install PostgreSQL if missing (without letting Debian create
#           or start its system cluster), initdb a cluster of our own in
#           the base directory, start it on 127.0.0.1 and a private port
#           with its unix socket in the base directory, create the test
#           role and database, and print `export LARDER_PG_...=...` lines
#           for eval. Exit 0 ready, 77 when this machine cannot do it
#           (PostgreSQL missing and not installable: the reason is on
#           stderr), any other code a real failure.
#   stop    fast shutdown (SIGINT) of the server by its pid, bounded wait,
#           then remove the base directory. Safe to run at any time, twice.
#   status  exit 0 and print the export lines if the server is up, else
#           exit 1.
#
# Environment:
#   LARDER_PG_BASE  base directory (default /tmp/larder-pg)
#   LARDER_PG_PORT  TCP port (default: the first free one from 54329 on)
#
# Layout under the base directory:
#   data/           the cluster (owned by the server's user, mode 0700)
#   sock/           the server's unix socket directory
#   postgres.log    the server's log
#   env             the export lines start printed (status prints them)
#
# Roles (cluster-wide, this cluster only):
#   larder_admin    superuser, trusted over the unix socket only: the tests'
#                   setup (tables, grants, other roles, killing backends)
#   larder          password login (scram-sha-256, a random password made at
#                   each start) over TCP and the socket; owns database
#                   "larder": the role the code under test connects as
# Any other role must log in with a password (scram-sha-256), so a wrong
# one fails authentication for real.
#
# The server refuses to run as root: when started by root it runs as the
# `postgres` user the Debian package creates (else as the caller).
set -eu

BASE=${LARDER_PG_BASE:-/tmp/larder-pg}
SKIP=77
PORT_FIRST=54329

say() { printf 'pg.sh: %s\n' "$*" >&2; }
die() {
	say "$*"
	exit 1
}
skip() {
	say "cannot run PostgreSQL here: $*"
	exit $SKIP
}

# The directory holding initdb, pg_ctl and postgres (newest version).
find_bindir() {
	for d in $(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V -r); do
		if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then
			echo "$d"
			return
		fi
	done
	if command -v pg_config >/dev/null 2>&1; then
		d=$(pg_config --bindir 2>/dev/null) || d=
		if [ -n "$d" ] && [ -x "$d/initdb" ]; then
			echo "$d"
			return
		fi
	fi
	d=$(command -v initdb 2>/dev/null) || return 0
	dirname "$d"
}

install_packages() {
	[ -z "$(find_bindir)" ] || return 0
	[ "$(id -u)" -eq 0 ] || skip "PostgreSQL is not installed and we are not root"
	command -v apt-get >/dev/null 2>&1 ||
		skip "PostgreSQL is not installed and there is no apt-get"
	# Debian's postgresql-common would create a cluster "main" on port
	# 5432 and start it: a system service these tests do not want.
	conf=/etc/postgresql-common/createcluster.conf
	if ! grep -qs '^[[:space:]]*create_main_cluster[[:space:]]*=[[:space:]]*false' "$conf"; then
		mkdir -p /etc/postgresql-common
		echo 'create_main_cluster = false' >>"$conf"
	fi
	say "installing postgresql (once; see $BASE.apt.log)"
	export DEBIAN_FRONTEND=noninteractive
	if ! apt-get update -q >"$BASE.apt.log" 2>&1 ||
		! apt-get install -y -q --no-install-recommends \
			-o Dpkg::Options::=--force-confold \
			-o Dpkg::Options::=--force-confdef \
			postgresql >>"$BASE.apt.log" 2>&1; then
		tail -5 "$BASE.apt.log" >&2 || true
		skip "apt-get could not install postgresql (see $BASE.apt.log)"
	fi
	rm -f "$BASE.apt.log"
	[ -n "$(find_bindir)" ] || die "postgresql installed but no initdb found"
}

# Who runs the server: never root.
server_user() {
	if [ "$(id -u)" -ne 0 ]; then
		id -un
	elif id postgres >/dev/null 2>&1; then
		echo postgres
	else
		die "running as root and there is no postgres user to run the server as"
	fi
}

# Run a command as the server's user.
as_server() {
	if [ "$(id -u)" -eq 0 ]; then
		runuser -u "$(server_user)" -- "$@"
	else
		"$@"
	fi
}

# The postmaster's pid if it is alive, else nothing.
live_pid() {
	f=$BASE/data/postmaster.pid
	[ -s "$f" ] || return 0
	p=$(head -1 "$f" 2>/dev/null) || return 0
	case $p in '' | *[!0-9]*) return 0 ;; esac
	if kill -0 "$p" 2>/dev/null; then echo "$p"; fi
}

port_taken() {
	ss -ltnH 2>/dev/null | awk '{print $4}' |
		grep -qE "^(\\*|0\\.0\\.0\\.0|\\[::\\]|\\[::1\\]|127\\.0\\.0\\.1):$1\$" ||
		[ -e "/tmp/.s.PGSQL.$1" ] || [ -e "/var/run/postgresql/.s.PGSQL.$1" ]
}

pick_port() {
	if [ -n "${LARDER_PG_PORT:-}" ]; then
		! port_taken "$LARDER_PG_PORT" ||
			die "port $LARDER_PG_PORT (LARDER_PG_PORT) is taken"
		echo "$LARDER_PG_PORT"
		return
	fi
	p=$PORT_FIRST
	while port_taken $p; do
		p=$((p + 1))
		[ $p -lt $((PORT_FIRST + 50)) ] ||
			die "no free port in $PORT_FIRST..$((PORT_FIRST + 49))"
	done
	echo $p
}

admin_psql() {
	"$BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$BASE/sock" -p "$PORT" \
		-U larder_admin "$@"
}

start_all() {
	if status_quiet; then
		cat "$BASE/env"
		return 0
	fi
	# Leftovers of an earlier run (a crash, a kill): clear them first.
	[ ! -e "$BASE" ] || stop_all
	install_packages
	mkdir -p "$BASE"
	BIN=$(find_bindir)
	user=$(server_user)
	PORT=$(pick_port)
	chmod 0755 "$BASE"
	mkdir -p "$BASE/data" "$BASE/sock"
	touch "$BASE/postgres.log"
	chown "$user" "$BASE/data" "$BASE/sock" "$BASE/postgres.log"
	chmod 0700 "$BASE/data"
	# Test data: no fsync, C locale, UTF-8.
	as_server "$BIN/initdb" -D "$BASE/data" -U larder_admin -A trust \
		-E UTF8 --no-locale --no-sync >"$BASE/initdb.log" 2>&1 || {
		cat "$BASE/initdb.log" >&2
		die "initdb failed"
	}
	cat >"$BASE/hba" <<EOF
# larder test cluster: the admin only over the socket, everyone else with
# a password.
local all larder_admin                trust
local all all                         scram-sha-256
host  all all         127.0.0.1/32    scram-sha-256
host  all all         ::1/128         scram-sha-256
EOF
	cat >>"$BASE/conf" <<EOF
listen_addresses = '127.0.0.1'
port = $PORT
unix_socket_directories = '$BASE/sock'
password_encryption = 'scram-sha-256'
max_connections = 50
shared_buffers = 32MB
fsync = off
synchronous_commit = off
full_page_writes = off
wal_level = minimal
max_wal_senders = 0
max_wal_size = 1GB
logging_collector = off
log_min_messages = warning
log_line_prefix = '%m [%p] %q%u@%d '
EOF
	as_server sh -c "cat '$BASE/hba' >'$BASE/data/pg_hba.conf' &&
		cat '$BASE/conf' >>'$BASE/data/postgresql.conf'"
	rm -f "$BASE/hba" "$BASE/conf" "$BASE/initdb.log"
	as_server "$BIN/pg_ctl" -D "$BASE/data" -l "$BASE/postgres.log" -w \
		-t 60 -s start || {
		tail -20 "$BASE/postgres.log" >&2 || true
		die "the server did not start (see $BASE/postgres.log)"
	}
	[ -n "$(live_pid)" ] || die "the server started but its pid is gone"
	password=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
	admin_psql -d postgres <<EOF
CREATE ROLE larder LOGIN PASSWORD '$password';
CREATE DATABASE larder OWNER larder;
EOF
	admin_psql -d larder -c "GRANT CREATE ON SCHEMA public TO larder" \
		>/dev/null
	cat >"$BASE/env" <<EOF
export LARDER_PG_BASE='$BASE'
export LARDER_PG_BIN='$BIN'
export LARDER_PG_HOST='127.0.0.1'
export LARDER_PG_PORT='$PORT'
export LARDER_PG_SOCKET='$BASE/sock'
export LARDER_PG_USER='larder'
export LARDER_PG_PASSWORD='$password'
export LARDER_PG_DB='larder'
export LARDER_PG_URI='postgresql://larder:$password@127.0.0.1:$PORT/larder'
export LARDER_PG_ADMIN='host=$BASE/sock port=$PORT user=larder_admin dbname=larder'
EOF
	chmod 0600 "$BASE/env"
	cat "$BASE/env"
}

status_quiet() {
	[ -n "$(live_pid)" ] && [ -s "$BASE/env" ] || return 1
	BIN=$(find_bindir)
	port=$(sed -n "s/^export LARDER_PG_PORT='\\(.*\\)'\$/\\1/p" "$BASE/env")
	"$BIN/pg_isready" -q -h "$BASE/sock" -p "$port" >/dev/null 2>&1
}

stop_all() {
	p=$(live_pid)
	if [ -n "$p" ]; then
		# SIGINT is PostgreSQL's fast shutdown: open sessions are
		# ended, the postmaster waits for its children and exits.
		kill -INT "$p" 2>/dev/null || true
		i=0
		while kill -0 "$p" 2>/dev/null; do
			i=$((i + 1))
			# SIGQUIT: immediate shutdown, still by the postmaster.
			if [ $i -eq 300 ]; then kill -QUIT "$p" 2>/dev/null || true; fi
			if [ $i -eq 400 ]; then kill -KILL "$p" 2>/dev/null || true; fi
			if [ $i -gt 450 ]; then
				say "server $p would not end"
				return 1
			fi
			sleep 0.1
		done
	fi
	# Backends outlive a killed postmaster only until they notice: wait
	# for any process still holding a file of ours open, by pid.
	i=0
	while :; do
		left=
		for d in /proc/[0-9]*; do
			[ "$(cat "$d/comm" 2>/dev/null)" = postgres ] || continue
			if [ "$(readlink "$d/cwd" 2>/dev/null)" = "$BASE/data" ]; then
				left="$left ${d#/proc/}"
			fi
		done
		[ -n "$left" ] || break
		i=$((i + 1))
		# shellcheck disable=SC2086 # $left is a list of pids
		if [ $i -eq 50 ]; then kill -KILL $left 2>/dev/null || true; fi
		if [ $i -gt 100 ]; then
			say "processes$left would not end"
			return 1
		fi
		sleep 0.1
	done
	# A postmaster that did not shut down cleanly (killed) leaves its
	# pid file, and in it (line 7: key, id) the small System V shared
	# memory segment it used as an interlock: remove it, if nothing is
	# attached to it any more.
	if [ -s "$BASE/data/postmaster.pid" ]; then
		shmid=$(sed -n 7p "$BASE/data/postmaster.pid" | awk '{print $2}')
		case $shmid in '' | *[!0-9]*) ;; *)
			if ipcs -m 2>/dev/null | awk -v id="$shmid" \
				'$2 == id && $6 == 0 { f = 1 } END { exit !f }'; then
				ipcrm -m "$shmid" 2>/dev/null || true
			fi
			;;
		esac
	fi
	rm -rf "$BASE"
}

case ${1:-} in
start)
	# A start that fails half way leaves nothing running.
	# shellcheck disable=SC2154 # rc is set inside the trap
	trap 'rc=$?; if [ $rc -ne 0 ] && [ $rc -ne $SKIP ]; then
		stop_all || true; fi' EXIT
	# A signal (a CTest timeout) ends the start through that trap too.
	trap 'exit 130' INT
	trap 'exit 143' TERM
	start_all
	trap - EXIT INT TERM
	;;
stop) stop_all || die "stop left something behind under $BASE" ;;
status)
	status_quiet || {
		echo "not running"
		exit 1
	}
	cat "$BASE/env"
	;;
*)
	echo "usage: $0 start|stop|status" >&2
	exit 2
	;;
esac
