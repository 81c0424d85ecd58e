#!/bin/sh
# --ttl: entries expire (and become misses); the TTL syntax is checked.
. "$(dirname "$0")/lib.sh" "$1"

L init >/dev/null 2>&1 || bail "cannot init"
printf 'short-lived' >"$T/p"

expect_rc 0 "put --ttl 1" L put k "$T/p" --ttl 1
run L inspect k
check "expires is 1 s after created" test "$(json_get "$T/out" 'j["expires_ns"] - j["created_ns"] == 10**9')" = True

# Poll until the entry expires; the bound (10 s) is far past the TTL so a
# slow machine does not fail the test, and a TTL that never fires does.
i=0
while L get k >/dev/null 2>&1 && [ $i -lt 100 ]; do
	sleep 0.1
	i=$((i + 1))
done
expect_rc 1 "get misses once the TTL has passed" L get k
expect_err "not found" "an expired get says not found"
expect_rc 0 "ls still lists the expired entry" L ls
expect_out "^k	.*	expired$" "ls shows it as expired"
expect_rc 0 "verify does not count expiry as a problem" L verify
expect_out "1 expired" "verify counts it as expired"

for t in 30 30s 2m 3h 4d never 36500d; do
	expect_rc 0 "--ttl $t is accepted" L put "k-$t" "$T/p" --ttl "$t"
done
run L inspect k-2m
check "--ttl 2m means 120 s" test "$(json_get "$T/out" 'j["expires_ns"] - j["created_ns"]')" = 120000000000
run L inspect k-4d
check "--ttl 4d means 345600 s" test "$(json_get "$T/out" 'j["expires_ns"] - j["created_ns"]')" = 345600000000000
run L inspect k-never
check "--ttl never: no expiry" test "$(json_get "$T/out" '"%s %d" % (j["expires"], j["expires_ns"])')" = "None 0"

for t in 0 -1 1x 1.5 '' s 10ms 36501d 99999999999999999999; do
	expect_rc 2 "--ttl '$t' is refused" L put bad "$T/p" --ttl "$t"
	expect_err "put: bad --ttl" "--ttl '$t' error names the option"
done
expect_rc 1 "nothing was stored by a refused put" L get bad

finish
