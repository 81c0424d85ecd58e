#!/bin/sh
# cli_hosts.sh LARDER — docs/redis.md followed as a user follows it, in
# its order, through the larder tool: two "hosts", each a PID, UTS and
# mount namespace of its own (its hostname, its processes, its /proc) with
# its own near store, and one private Redis (redis.sh) that is all they
# share. Section 2: init --shared with the password in
# LARDER_REDIS_PASSWORD, config; a put on one host is a get on the other,
# and the next get there is a near hit (Redis reads nothing). Section 3: a
# herd of four `larder run`s on each host at once loads once, all eight
# print its bytes; runs again are near hits. Section 4: stat's per-tier
# counters, ls, inspect and verify --tier, gc's note. Section 9: Redis
# stopped, each host serves from its near store with one warning, a
# herd loads once per host, a put is kept in near. Everything started
# (Redis, the namespaces) is stopped by pid at exit, also on a signal.
# Prints "N passed, N failed, N skipped"; exits 77 where Redis cannot run
# here. Without namespaces (no privilege for unshare) the hosts are
# plain process groups, and that check is counted skipped.
set -u
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../cli/lib.sh" "$1"
. "$here/cli_redis.sh"
redis_up
# The hosts run it from their own directory.
case $LARDER in /*) ;; *) LARDER=$(pwd)/$LARDER ;; esac
PORT=$(sed -n 's/^REDIS_PORT=//p' "$T/env")

# The hosts. host_up NAME starts NAME's namespaces, held by a sleep that is
# their pid 1 (killing it ends every process in them; --kill-child ends it
# with unshare); on NAME CMD... runs CMD there, in $T/app.
if unshare -p -u -m --fork --mount-proc true 2>/dev/null; then
	spaces=1
else
	spaces=0
fi
host_up() {
	[ "$spaces" = 1 ] || return 0
	mkfifo "$T/ready.$1" || bail "mkfifo $T/ready.$1"
	unshare -p -u -m --kill-child --mount-proc sh -c \
		'hostname "$1" && echo up >"$2" && exec sleep 100000' \
		sh "$1" "$T/ready.$1" >/dev/null 2>"$T/ns.$1" &
	up=$!
	track "$up"
	read -r said <"$T/ready.$1"
	[ "$said" = up ] || bail "host $1: $(cat "$T/ns.$1")"
	inner=$(tr -d " " <"/proc/$up/task/$up/children")
	case $inner in '' | *[!0-9]*) bail "host $1: no pid 1 ($inner)" ;; esac
	track "$inner"
	eval "pid_$1=$inner"
}
on() {
	h=$1
	shift
	if [ "$spaces" = 1 ]; then
		eval "p=\$pid_$h"
		nsenter -t "$p" -p -u -m -- sh -c 'cd "$0" && exec "$@"' \
			"$T/app" "$@"
	else
		(cd "$T/app" && exec "$@")
	fi
}
mkdir "$T/app" || bail "mkdir $T/app"
host_up hosta
host_up hostb
if [ "$spaces" = 1 ]; then
	check "host a is a host of its own (hostname, pid namespace)" \
		test "$(on hosta hostname):$(on hostb hostname)" = hosta:hostb \
		-a "$(on hosta readlink /proc/self/ns/pid)" != \
		"$(readlink /proc/self/ns/pid)"
else
	skip "two hosts in namespaces of their own: unshare -p -u -m refused"
fi

# Redis's own count of key reads: a near hit adds none.
redis_reads() {
	REDISCLI_AUTH=$PASSWORD redis-cli -h 127.0.0.1 -p "$PORT" INFO stats |
		tr -d '\r' | awk -F: '/^keyspace_(hits|misses):/ { n += $2 }
			END { print n + 0 }'
}
# counter HOST NAME: NAME from HOST's `stat --json`.
counter() {
	on "$1" "$LARDER" --dir "$T/$1" stat --json >"$T/stat.json" 2>"$T/err"
	json_get "$T/stat.json" "j['counters']['$2']"
}

# Section 2: each host's store, the password in the environment.
export LARDER_REDIS_PASSWORD="$PASSWORD"
SHARED=redis://127.0.0.1:$PORT/0
for h in hosta hostb; do
	expect_rc 0 "init --mode private --shared redis:// ($h)" \
		on $h "$LARDER" --dir "$T/$h" init --mode private \
		--shared "$SHARED"
	check "no warning: the tier answers ($h)" test ! -s "$T/err"
	expect_rc 0 "config ($h)" on $h "$LARDER" --dir "$T/$h" config
	expect_out "^shared $SHARED\$" "config shows the tier ($h)"
done

# A put on one host is a get on the other, through Redis; the next get
# there reads its near copy: Redis is not read, and stat counts no
# second shared hit (a shared hit copies into near, which is counted).
head -c 1048576 /dev/urandom >"$T/app/report.csv"
expect_rc 0 "put on host a" on hosta "$LARDER" --dir "$T/hosta" put \
	report.csv ./report.csv --version 2026-11-21 --ttl 7d
expect_rc 0 "get on host b" on hostb "$LARDER" --dir "$T/hostb" get \
	report.csv --version 2026-11-21
check "host a's bytes on host b" cmp -s "$T/out" "$T/app/report.csv"
check "read from Redis on host b" test "$(counter hostb shared_hits)" = 1
check "and copied into its near store" \
	test "$(counter hostb shared_copies)" = 1
reads=$(redis_reads)
expect_rc 0 "get again on host b" on hostb "$LARDER" --dir "$T/hostb" get \
	report.csv --version 2026-11-21
check "the same bytes" cmp -s "$T/out" "$T/app/report.csv"
check "a near hit: Redis read no key" test "$(redis_reads)" = "$reads"
check "and no second shared hit" test "$(counter hostb shared_hits)" = 1

# Section 3: a herd, four runs on each host at once, in the same
# directory on both (the directory is part of the run's key). The
# report: 300 kB of fixed random bytes, and a line in $T/loads per run
# of it (O_APPEND: the count of loads across both hosts). The pause
# makes the eight callers overlap; the checks hold however they do.
head -c 300000 /dev/urandom >"$T/src"
cat >"$T/app/build-report.sh" <<EOS
#!/bin/sh
echo "load \$(hostname) \$\$ \$*" >>"$T/loads"
sleep 1
cat "$T/src"
EOS
chmod +x "$T/app/build-report.sh"
pids=
for i in 1 2 3 4; do
	for h in hosta hostb; do
		on $h "$LARDER" --dir "$T/$h" run --ns reports -- \
			./build-report.sh >"$T/out.$h.$i" 2>"$T/err.$h.$i" &
		track $!
		pids="$pids $!"
	done
done
bad=0
for p in $pids; do
	wait "$p" || bad=$((bad + 1))
done
check "eight runs on two hosts exit 0" test "$bad" = 0
same=0
for f in "$T"/out.host*; do
	cmp -s "$f" "$T/src" && same=$((same + 1))
done
check "all eight print the report's bytes" test "$same" = 8
check "the report ran once" test "$(wc -l <"$T/loads")" = 1
fills=$(counter hosta fills):$(counter hostb fills)
check "one fill across both hosts (stat's fills: $fills)" \
	sh -c 'test "$1" = 1:0 || test "$1" = 0:1' sh "$fills"

# Again on both hosts: near hits, Redis not read.
reads=$(redis_reads)
for h in hosta hostb; do
	expect_rc 0 "run again on $h" on $h "$LARDER" --dir "$T/$h" run \
		-v --ns reports -- ./build-report.sh
	check "its bytes ($h)" cmp -s "$T/out" "$T/src"
	expect_err "^hit in " "a hit ($h)"
done
check "still one load" test "$(wc -l <"$T/loads")" = 1
check "both hits near: Redis read no key" test "$(redis_reads)" = "$reads"

# Section 4: stat names the tier and counts per tier; ls, inspect and
# verify see both tiers; gc cleans the near store only, and says so.
expect_rc 0 "stat (hostb)" on hostb "$LARDER" --dir "$T/hostb" stat
expect_out "^shared tier $SHARED\$" "stat names the shared tier"
for c in near_hits shared_hits shared_copies shared_errors shared_refused; do
	expect_out "^  $c +[0-9]+\$" "stat shows $c"
done
expect_rc 0 "ls --tier all (hostb)" on hostb "$LARDER" --dir "$T/hostb" ls
check "report.csv in both tiers" grep -q \
	"^report\\.csv	2026-11-21	1048576	.*	ok	both\$" "$T/out"
expect_rc 0 "ls --tier shared" on hostb "$LARDER" --dir "$T/hostb" ls \
	--tier shared
check "report.csv in Redis" grep -q "^report\\.csv	" "$T/out"
expect_rc 0 "inspect --tier shared" on hostb "$LARDER" --dir "$T/hostb" \
	inspect report.csv --tier shared
check "its path is the manifest's key" test \
	"$(json_get "$T/out" 'j["path"].split(" ")[0]')" = "$SHARED"
expect_rc 0 "verify --tier shared" on hostb "$LARDER" --dir "$T/hostb" \
	verify --tier shared
expect_out " 0 problems remain\$" "Redis's entries are whole"
expect_rc 0 "gc" on hostb "$LARDER" --dir "$T/hostb" gc
expect_out "^shared tier $SHARED: not cleaned by gc" "gc says Redis is not its"

# Many keys at once on host b: report.csv (near), m1 and m2 (in Redis
# only, put on host a, one past the inline size) and a miss.
head -c 300000 /dev/urandom >"$T/app/m1"
printf 'small' >"$T/app/m2"
expect_rc 0 "put m1 on host a" on hosta "$LARDER" --dir "$T/hosta" put \
	--ns n m1 ./m1
expect_rc 0 "put m2 on host a" on hosta "$LARDER" --dir "$T/hosta" put \
	--ns n m2 ./m2
expect_rc 0 "put k on host a" on hosta "$LARDER" --dir "$T/hosta" put \
	--ns n k ./report.csv
printf 'k\nm1\nnone\nm2\n' >"$T/keys"
run on hostb "$LARDER" --dir "$T/hostb" get --ns n --many -o "$T/many" \
	<"$T/keys"
check "get --many on host b: a miss among hits (exit 1)" test "$rc" -eq 1
printf 'hit\t1048576\tk\nhit\t300000\tm1\nmiss\t-\tnone\nhit\t5\tm2\n' \
	>"$T/want"
check "one line per key" cmp -s "$T/out" "$T/want"
check "the bytes of each hit" sh -c 'cmp -s "$1/many/k" "$1/app/report.csv" &&
	cmp -s "$1/many/m1" "$1/app/m1" && cmp -s "$1/many/m2" "$1/app/m2"' sh "$T"

# Section 9: Redis stops. Each host serves what it holds: a near hit
# without a word (it never contacts Redis), a call that needs Redis with
# one warning per process naming the tier; a new herd loads once per
# host.
sh "$redis" stop >/dev/null 2>"$T/err" || not_ok "redis.sh stop"
expect_rc 0 "get on host b with Redis stopped" on hostb "$LARDER" \
	--dir "$T/hostb" get report.csv --version 2026-11-21
check "the near copy's bytes" cmp -s "$T/out" "$T/app/report.csv"
check "a near hit: no warning, Redis not tried" test ! -s "$T/err"
expect_rc 1 "a near miss on host b with Redis stopped: a miss" on hostb \
	"$LARDER" --dir "$T/hostb" get report.csv --version 1999-01-01
expect_err "^larder: warn: shared tier '$SHARED' failed \\(open: Redis connect to 127\\.0\\.0\\.1:$PORT \\($SHARED\\): Connection refused\\): serving from the near tier '$T/hostb' only" \
	"the warning of docs/redis.md, section 9"
check "one warning" test "$(grep -c 'shared tier' "$T/err")" = 1
: >"$T/loads"
pids=
for i in 1 2; do
	for h in hosta hostb; do
		on $h "$LARDER" --dir "$T/$h" run --ns reports -- \
			./build-report.sh --weekly >"$T/down.$h.$i" 2>/dev/null &
		track $!
		pids="$pids $!"
	done
done
bad=0
for p in $pids; do
	wait "$p" || bad=$((bad + 1))
done
check "four runs with Redis stopped exit 0" test "$bad" = 0
same=0
for f in "$T"/down.*; do
	cmp -s "$f" "$T/src" && same=$((same + 1))
done
check "all four print the report's bytes" test "$same" = 4
check "loaded twice, once per host" test "$(wc -l <"$T/loads")" = 2
[ "$spaces" = 0 ] || check "once on each host" test \
	"$(cut -d' ' -f2 "$T/loads" | sort | tr '\n' ' ')" = "hosta hostb "
printf 'kept\n' >"$T/app/kept"
expect_rc 0 "put on host a with Redis stopped" on hosta "$LARDER" \
	--dir "$T/hosta" put --ns n kept ./kept
expect_rc 0 "kept in host a's near store" on hosta "$LARDER" \
	--dir "$T/hosta" get --ns n kept
check "its bytes" cmp -s "$T/out" "$T/app/kept"
check "stat counts the failures (shared_errors)" \
	test "$(counter hosta shared_errors)" -ge 1
finish
