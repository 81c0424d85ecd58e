#!/bin/sh
# gluster.sh start|stop|status — a private GlusterFS on this machine for
# larder's multi-client tests.
#
#   start   install glusterfs-server/-client and fuse3 if missing, start a
#           glusterd of our own (private working, run and log directories,
#           listening on 127.0.0.2 only), create and start a replica-2
#           volume on two brick directories, and mount it twice through
#           FUSE: two real network-filesystem clients, each with its own
#           kernel and GlusterFS caches. Prints "MNT_A=..." and "MNT_B=...".
#           Exit 0 ready, 77 when this machine cannot do it (no /dev/fuse,
#           FUSE mounts refused, not root: the reason is on stderr), any
#           other code a real failure.
#   stop    unmount both clients (lazily if busy), stop and delete the
#           volume, end glusterd, the bricks and the clients by pid, and
#           remove the base directory. Safe to run at any time, twice.
#   status  exit 0 and print the mounts if both are up, else exit 1.
#
# Environment:
#   LARDER_GLUSTER_BASE  base directory (default /tmp/larder-gluster)
#   LARDER_GLUSTER_ADDR  loopback address for glusterd and the bricks
#                        (default 127.0.0.2: the gluster CLI refuses bricks
#                        on 127.0.0.1, but any other 127/8 address is local)
#   LARDER_GLUSTER_VOL   volume name (default larder)
#
# Layout under the base directory:
#   glusterd.vol glusterd.pid glusterd.sock   our glusterd
#   lib/ run/ log/                            its working, run, log dirs
#   bricks/b1 bricks/b2                       the replica's two bricks
#   mnt/a mnt/b, client-a.pid client-b.pid    the two FUSE clients
#
# Client caching is GlusterFS's default, as a user would mount it: the
# kernel keeps attributes and directory entries for 1 s (attribute-timeout,
# entry-timeout), negative lookups are not cached (negative-timeout 0), and
# the client-side translators md-cache (metadata, 1 s), quick-read (small
# files' contents), open-behind (opens deferred to the first read) and
# write-behind (writes acknowledged before the bricks have them) are on.
# So each mount can see the other's renames late, and a name the other
# client replaced yields ESTALE — the behaviour larder must survive.
set -eu

BASE=${LARDER_GLUSTER_BASE:-/tmp/larder-gluster}
ADDR=${LARDER_GLUSTER_ADDR:-127.0.0.2}
VOL=${LARDER_GLUSTER_VOL:-larder}
PORT=24007
MNT_A=$BASE/mnt/a
MNT_B=$BASE/mnt/b
SKIP=77

say() { printf 'gluster.sh: %s\n' "$*" >&2; }
die() {
	say "$*"
	exit 1
}
skip() {
	say "cannot run GlusterFS here: $*"
	exit $SKIP
}

gcli() {
	gluster --mode=script --glusterd-sock="$BASE/glusterd.sock" "$@"
}

# The pid in file $1 if that process is alive, else nothing.
live_pid() {
	[ -s "$1" ] || return 0
	p=$(cat "$1" 2>/dev/null) || return 0
	case $p in '' | *[!0-9]*) return 0 ;; esac
	if kill -0 "$p" 2>/dev/null; then echo "$p"; fi
}

is_mounted() {
	# /proc/self/mountinfo field 5 is the mount point
	awk -v m="$1" '$5 == m { found = 1 } END { exit !found }' \
		/proc/self/mountinfo
}

. "$(dirname "$0")/../end_pids.sh"

install_packages() {
	need=
	command -v glusterd >/dev/null 2>&1 || need="$need glusterfs-server"
	command -v glusterfs >/dev/null 2>&1 || need="$need glusterfs-client"
	command -v fusermount3 >/dev/null 2>&1 || need="$need fuse3"
	[ -n "$need" ] || return 0
	command -v apt-get >/dev/null 2>&1 ||
		die "missing$need and no apt-get to install them"
	say "installing$need"
	export DEBIAN_FRONTEND=noninteractive
	# shellcheck disable=SC2086 # $need is a list of package names
	if ! apt-get update -q >"$BASE.apt.log" 2>&1 ||
		! apt-get install -y -q --no-install-recommends $need \
			>>"$BASE.apt.log" 2>&1; then
		die "could not install$need (see $BASE.apt.log)"
	fi
	rm -f "$BASE.apt.log"
}

# Why this machine cannot mount FUSE, or nothing.
fuse_unavailable() {
	[ "$(id -u)" -eq 0 ] || {
		echo "not root (glusterd and mounts need root)"
		return
	}
	[ -c /dev/fuse ] || {
		echo "/dev/fuse is missing"
		return
	}
	# Opening the device is what every FUSE client does first.
	if ! (: <>/dev/fuse) 2>/dev/null; then
		echo "/dev/fuse cannot be opened"
		return
	fi
	grep -qw fuse /proc/filesystems 2>/dev/null ||
		echo "the kernel has no fuse filesystem"
}

mount_one() {
	mnt=$1
	name=$2
	mkdir -p "$mnt"
	glusterfs --process-name=fuse --volfile-server="$ADDR" \
		--volfile-id="$VOL" --pid-file="$BASE/client-$name.pid" \
		--log-file="$BASE/log/client-$name.log" "$mnt" ||
		die "glusterfs client $name failed (see $BASE/log/client-$name.log)"
	# The client daemonizes before the volume graph is up: wait until
	# the mount answers for its root (inode 1), as mount.glusterfs does.
	i=0
	until is_mounted "$mnt" && [ "$(stat -c %i "$mnt" 2>/dev/null)" = 1 ]; do
		i=$((i + 1))
		if [ -z "$(live_pid "$BASE/client-$name.pid")" ]; then
			if grep -qiE 'fuse.*(permission|not permitted|mount failed|cannot open /dev/fuse)' \
				"$BASE/log/client-$name.log" 2>/dev/null; then
				tail -5 "$BASE/log/client-$name.log" >&2
				stop_all >/dev/null 2>&1 || true
				skip "the FUSE mount was refused"
			fi
			tail -20 "$BASE/log/client-$name.log" >&2 || true
			die "glusterfs client $name exited before mounting $mnt"
		fi
		[ $i -lt 300 ] || die "mount $mnt not ready after 30 s"
		sleep 0.1
	done
}

start_all() {
	why=$(fuse_unavailable)
	[ -z "$why" ] || skip "$why"
	if status_quiet; then
		print_mounts
		return 0
	fi
	# Leftovers of an earlier run (a crash, a kill): clear them first.
	[ ! -e "$BASE" ] || stop_all
	mkdir -p "$BASE"
	install_packages
	if ss -ltn 2>/dev/null | awk '{print $4}' |
		grep -qE "^(\\*|0\\.0\\.0\\.0|\\[::\\]|$ADDR):$PORT\$"; then
		die "port $PORT on $ADDR is taken (another glusterd?); stop it or set LARDER_GLUSTER_ADDR"
	fi
	mkdir -p "$BASE/lib" "$BASE/run" "$BASE/log" "$BASE/bricks/b1" \
		"$BASE/bricks/b2" "$MNT_A" "$MNT_B"
	cat >"$BASE/glusterd.vol" <<EOF
volume management
    type mgmt/glusterd
    option working-directory $BASE/lib
    option run-directory $BASE/run
    option glusterd-sockfile $BASE/glusterd.sock
    option transport-type socket
    option transport.socket.bind-address $ADDR
    option transport.socket.listen-port $PORT
    option ping-timeout 0
    option event-threads 1
end-volume
EOF
	glusterd -f "$BASE/glusterd.vol" -p "$BASE/glusterd.pid" \
		-l "$BASE/log/glusterd.log" ||
		die "glusterd failed to start (see $BASE/log/glusterd.log)"
	i=0
	until gcli pool list >/dev/null 2>&1; do
		i=$((i + 1))
		[ -n "$(live_pid "$BASE/glusterd.pid")" ] ||
			die "glusterd exited (see $BASE/log/glusterd.log)"
		[ $i -lt 300 ] || die "glusterd not answering after 30 s"
		sleep 0.1
	done
	gcli volume create "$VOL" replica 2 "$ADDR:$BASE/bricks/b1" \
		"$ADDR:$BASE/bricks/b2" force >/dev/null ||
		die "volume create failed (see $BASE/log/glusterd.log)"
	# No self-heal daemon: both bricks stay up, and it would only add a
	# process competing for two cores.
	gcli volume set "$VOL" cluster.self-heal-daemon off >/dev/null ||
		die "volume set failed"
	gcli volume start "$VOL" >/dev/null ||
		die "volume start failed (see $BASE/log/glusterd.log and /var/log/glusterfs/bricks/)"
	mount_one "$MNT_A" a
	mount_one "$MNT_B" b
	print_mounts
}

print_mounts() {
	echo "MNT_A=$MNT_A"
	echo "MNT_B=$MNT_B"
}

status_quiet() {
	[ -n "$(live_pid "$BASE/glusterd.pid")" ] &&
		is_mounted "$MNT_A" && is_mounted "$MNT_B" &&
		[ "$(stat -c %i "$MNT_A" 2>/dev/null)" = 1 ] &&
		[ "$(stat -c %i "$MNT_B" 2>/dev/null)" = 1 ]
}

# Brick log files glusterd writes outside our base directory, named after
# the brick paths (so they are ours to remove).
brick_logs() {
	for b in b1 b2; do
		n=$(printf '%s' "$BASE/bricks/$b" | sed 's|^/||; s|/|-|g')
		echo "/var/log/glusterfs/bricks/$n.log"
	done
}

stop_all() {
	rc=0
	for name in a b; do
		mnt=$BASE/mnt/$name
		if is_mounted "$mnt"; then
			umount "$mnt" 2>/dev/null || umount -l "$mnt" ||
				{
					say "cannot unmount $mnt"
					rc=1
				}
		fi
	done
	# The clients end on their own once unmounted; make sure of it while
	# the volume stops.
	clients="$(live_pid "$BASE/client-a.pid") $(live_pid "$BASE/client-b.pid")"
	kill -TERM $clients 2>/dev/null || true
	gd=$(live_pid "$BASE/glusterd.pid")
	if [ -n "$gd" ] && gcli volume info "$VOL" >/dev/null 2>&1; then
		gcli volume stop "$VOL" force >/dev/null 2>&1 || true
		gcli volume delete "$VOL" >/dev/null 2>&1 || true
	fi
	# glusterd, and whatever it started and left (bricks, the self-heal
	# daemon), which wrote its pid under our run directory.
	pids="$clients $gd"
	if [ -d "$BASE/run" ]; then
		pids="$pids $(find "$BASE/run" -name '*.pid' 2>/dev/null |
			while read -r f; do live_pid "$f"; done)"
	fi
	end_pids $pids || rc=1
	# Last resort, still by pid: gluster processes whose command line
	# names our base directory.
	pids=
	for d in /proc/[0-9]*; do
		case $(cat "$d/comm" 2>/dev/null) in
		glusterd | glusterfs | glusterfsd) ;;
		*) continue ;;
		esac
		if tr '\0' ' ' <"$d/cmdline" 2>/dev/null | grep -qF "$BASE/"; then
			pids="$pids ${d#/proc/}"
		fi
	done
	end_pids $pids || rc=1
	for name in a b; do
		if is_mounted "$BASE/mnt/$name"; then
			say "$BASE/mnt/$name is still mounted"
			rc=1
		fi
	done
	if [ $rc -eq 0 ]; then
		rm -rf "$BASE"
		brick_logs | while read -r f; do rm -f "$f"; done
	fi
	return $rc
}

case ${1:-} in
start)
	# A start that fails half way leaves nothing running.
	# (The logs go with the base directory: show their errors first.)
	trap 'rc=$?; if [ $rc -ne 0 ] && [ $rc -ne $SKIP ]; then
		grep -h "\] E \[" "$BASE"/log/*.log 2>/dev/null | tail -5 >&2
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
	print_mounts
	;;
*)
	echo "usage: $0 start|stop|status" >&2
	exit 2
	;;
esac
