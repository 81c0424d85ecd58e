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
