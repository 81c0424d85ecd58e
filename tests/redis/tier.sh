#!/bin/sh
# tier.sh LARDER TEST_BACKEND TEST_TIER — near stores in front of a private
# Redis (docs/backends.md, "Tiers"; docs/redis.md): the conformance suite
# on a near+Redis chain, the tier cases of test_tier (a herd of 8 hosts in
# PID+UTS namespaces of their own among them) with Redis as the shared
# tier, and, as a user meets them, two hosts' stores on one Redis and
# Redis failing under them: stopped (connection refused) and SIGSTOPped
# past the call timeout (every call bounded) — near-only service, one
# warning, nothing lost. Prints "N passed, N failed, N skipped"; exits 77
# where Redis cannot run here.
set -u
here=$(cd "$(dirname "$0")" && pwd)
TB=$2
TT=$3
. "$here/../cli/lib.sh" "$1"
. "$here/cli_redis.sh"
mpid=
redis_on_exit='kill -CONT $mpid 2>/dev/null'
redis_up
PW=$PASSWORD
mpid=$(cat "$LARDER_REDIS_BASE/master/redis.pid")

# The suites, on Redis. Their counts are this script's checks.
suite() {
	name=$1
	shift
	"$@" >"$T/suite" 2>&1
	src=$?
	line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$T/suite" | tail -n 1)
	if [ $src -eq 0 ] && [ -n "$line" ]; then
		ok "$name: $line"
	else
		not_ok "$name (exit $src): $(grep -E 'FAIL|: ' "$T/suite" | head -n 5)"
	fi
}
suite "the conformance suite on near+Redis" \
	env LARDER_TEST_BACKEND="tier:$URI" "$TB"
suite "test_tier with Redis as the shared tier" \
	env LARDER_TEST_SHARED="$URI" "$TT"

# Two hosts, as docs/redis.md sets them up.
A=$T/a
B=$T/b
expect_rc 0 "host a: init --shared redis://" "$LARDER" --dir "$A" init \
	--shared "$URI?timeout_ms=500"
expect_rc 0 "host b: init --shared redis://" "$LARDER" --dir "$B" init \
	--shared "$URI?timeout_ms=500"
expect_rc 0 "config" "$LARDER" --dir "$A" config
expect_out '^shared redis://[^ ]*\*\*\*@127\.0\.0\.1:' "the password masked"
check "nowhere in config's output" sh -c "! grep -qF '$PW' '$T/out' '$T/err'"
head -c 300000 /dev/urandom >"$T/in"
expect_rc 0 "put on host a" "$LARDER" --dir "$A" put --ns n k "$T/in"
expect_rc 0 "get on host b: from Redis" "$LARDER" --dir "$B" get --ns n k
check "host a's bytes" cmp -s "$T/out" "$T/in"
expect_rc 0 "stat --json on host b" "$LARDER" --dir "$B" stat --json
check "one shared hit, copied into near" test \
	"$(json_get "$T/out" 'j["counters"]["shared_hits"]')/$(json_get "$T/out" 'j["counters"]["shared_copies"]')" = 1/1

# A near hit of a given version never connects to Redis (docs/redis.md,
# section 9): told by the server's own count of the connections it
# received (redis-cli's INFO is one of them), and by the connect calls
# the process makes. Host c takes no timeout in its URI but a long one in
# its config, so that a connect to a hung server would show.
PORT=$(sed -n 's/^REDIS_PORT=//p' "$T/env")
conns() {
	REDISCLI_AUTH=$PW redis-cli -h 127.0.0.1 -p "$PORT" INFO stats |
		sed -n 's/^total_connections_received:\([0-9]*\).*/\1/p'
}
# connects FILE: the connect calls to Redis's port an strace log holds.
connects() {
	grep -c "sin_port=htons($PORT)" "$1"
}
C=$T/c
expect_rc 0 "host c: init --shared redis://" "$LARDER" --dir "$C" init \
	--shared "$URI"
printf 'shared_timeout_ms 30000\n' >>"$C/config"
head -c 70000 /dev/urandom >"$T/in1"
expect_rc 0 "put v1 on host a" "$LARDER" --dir "$A" put --ns n kv \
	--version v1 "$T/in1"
expect_rc 0 "get v1 on host c: from Redis, copied into near" \
	"$LARDER" --dir "$C" get --ns n kv --version v1
c0=$(conns)
expect_rc 0 "get v1 on host c again: a near hit" \
	"$LARDER" --dir "$C" get --ns n kv --version v1
check "its bytes" cmp -s "$T/out" "$T/in1"
c1=$(conns)
check "the near hit made no connection to Redis ($c0, then $c1)" \
	test "$c1" = "$((c0 + 1))"
expect_rc 1 "a near miss (another version): asks Redis" \
	"$LARDER" --dir "$C" get --ns n kv --version v0
c2=$(conns)
check "the near miss connected once ($c1, then $c2)" \
	test "$c2" = "$((c1 + 2))"
c3=$c2
st=
# A sanitizer build's leak check cannot run under ptrace: off under
# strace (the runs without it keep it).
nolsan="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"
if strace -f -qq -e trace=connect -o "$T/strace" true 2>/dev/null; then
	st=1
	# strace sees a connect to Redis's port when there is one.
	run env ASAN_OPTIONS="$nolsan" \
		strace -f -qq -e trace=connect -o "$T/strace" \
		"$LARDER" --dir "$C" get --ns n kv --version v0
	check "strace sees the near miss's connect" \
		test "$(connects "$T/strace")" -ge 1
	c3=$((c3 + 1))
else
	skip "strace cannot trace here: connects not counted"
fi

# Redis SIGSTOPped under a near hit: served from near without a connect,
# so without the 30 s a connect would wait; no warning, since the tier is
# never tried.
kill -STOP "$mpid"
if [ -n "$st" ]; then
	expect_rc 0 "a near hit with Redis stopped by SIGSTOP" timeout 60 \
		env ASAN_OPTIONS="$nolsan" \
		strace -f -qq -e trace=connect -o "$T/strace" \
		"$LARDER" --dir "$C" get --ns n kv --version v1
	check "no connect to Redis's port" \
		test "$(connects "$T/strace")" = 0
else
	expect_rc 0 "a near hit with Redis stopped by SIGSTOP" timeout 60 \
		"$LARDER" --dir "$C" get --ns n kv --version v1
fi
check "near's bytes" cmp -s "$T/out" "$T/in1"
check "no warning: the tier was not tried" test ! -s "$T/err"
kill -CONT "$mpid"
c4=$(conns)
check "and no connection from it reached Redis once it ran on ($c3, then $c4)" \
	test "$c4" = "$((c3 + 1))"

# Redis SIGSTOPped: every call is bounded by its timeout (500 ms here);
# the get is served from near, the put kept there, one warning each run.
kill -STOP "$mpid"
expect_rc 0 "get on host b with Redis stopped by SIGSTOP" \
	timeout 120 "$LARDER" --dir "$B" get --ns n k
check "near's copy" cmp -s "$T/out" "$T/in"
expect_err "shared tier 'redis://[^']*\\*\\*\\*@[^']*' failed" \
	"a warning names the tier, masked"
check "one warning" test "$(grep -c 'shared tier' "$T/err")" = 1
printf 'kept\n' >"$T/kept"
expect_rc 0 "a put with Redis stopped" \
	timeout 120 "$LARDER" --dir "$B" put --ns n k2 "$T/kept"
expect_rc 0 "kept in near" "$LARDER" --dir "$B" get --ns n k2
check "its bytes" cmp -s "$T/out" "$T/kept"
expect_rc 0 "a run (a fill) with Redis stopped" \
	timeout 120 "$LARDER" --dir "$B" run --ns r -- sh -c 'echo ran'
expect_out '^ran$' "the caller gets its data"
kill -CONT "$mpid"

# Redis gone: connection refused, the same.
kill -TERM "$mpid"
i=0
while kill -0 "$mpid" 2>/dev/null && [ $i -lt 600 ]; do
	sleep 0.1
	i=$((i + 1))
done
expect_rc 0 "get on host a with Redis gone" \
	timeout 120 "$LARDER" --dir "$A" get --ns n k
check "a's own copy" cmp -s "$T/out" "$T/in"
check "one warning" test "$(grep -c 'shared tier' "$T/err")" = 1
expect_rc 0 "a run with Redis gone" \
	timeout 120 "$LARDER" --dir "$A" run --ns r -- sh -c 'echo ran'
expect_out '^ran$' "the caller gets its data"
finish
