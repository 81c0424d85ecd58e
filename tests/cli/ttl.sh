#!/bin/sh
# --ttl: entries expire (and become misses); the TTL syntax is checked.
. "$(dirname "$0")/lib.sh" "$1"

L init >/dev/null 2>&1 || bail "cannot init"
printf 'short-lived' >"$T/p"

now_ns() { date +%s%N; }

# Present before expiry, gone after, both judged by the entry's own
# timestamps rather than by how long anything took: a get that ended
# before expires_ns must hit (so a TTL that fired at once fails). If this
# machine was too slow for the get to end within the TTL, the put is
# tried again with twice the TTL (1, 2, 4, 8 s).
ttl=1
while :; do
	expect_rc 0 "put --ttl $ttl" L put k "$T/p" --ttl $ttl --version "v$ttl"
	run L inspect k
	cp "$T/out" "$T/inspect"
	created=$(json_get "$T/inspect" 'j["created_ns"]')
	expires=$(json_get "$T/inspect" 'j["expires_ns"]')
	check "expires is $ttl s after created" test "$((expires - created))" = "$((ttl * 1000000000))"
	run L get k
	grc=$rc
	ended=$(now_ns)
	if [ "$ended" -lt "$expires" ]; then
		check "a get that ended before the TTL passed hits (exit $grc)" test "$grc" -eq 0
		break
	fi
	[ "$ttl" -ge 8 ] && { not_ok "no get ended within an 8 s TTL"; break; }
	ttl=$((ttl * 2))
	L rm k >/dev/null 2>&1 # one version of k, for the checks below
done

# Then until the clock is past expires_ns: waiting for that time to
# come, which is what is under test.
while [ "$(now_ns)" -le "$expires" ]; do
	sleep 0.05
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
