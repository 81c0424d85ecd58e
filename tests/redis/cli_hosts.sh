#!/bin/sh
# cli_hosts.sh LARDER — docs/redis.md as a user follows it, end to end
# through the larder tool: two "hosts" (two near stores, each made with
# `init --mode private --shared redis://…`) and one private Redis
# (redis.sh, stopped by pid at exit). Eight `larder run`s of one command,
# four on each host at once: the command runs once, all eight print its
# bytes; runs again on both hosts are hits; a put on one host is a get on
# the other. Prints "N passed, N failed, N skipped"; exits 77 where Redis
# cannot run here.
set -u
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../cli/lib.sh" "$1"
. "$here/cli_redis.sh"
redis_up

A=$T/hosta
B=$T/hostb
for h in "$A" "$B"; do
	expect_rc 0 "init --mode private --shared redis:// (${h##*/})" \
		"$LARDER" --dir "$h" init --mode private --shared "$URI"
done

# The report: 300 kB of fixed random bytes, and a line in $T/loads per
# run of it (O_APPEND: the count of loads across both hosts). The pause
# makes the eight callers overlap; the checks hold however they do.
head -c 300000 /dev/urandom >"$T/src"
cat >"$T/report.sh" <<EOS
#!/bin/sh
echo "load \$\$" >>"$T/loads"
sleep 1
cat "$T/src"
EOS
chmod +x "$T/report.sh"

pids=
for i in 1 2 3 4; do
	for h in "$A" "$B"; do
		"$LARDER" --dir "$h" run --ns reports --key report -- \
			"$T/report.sh" >"$T/out.${h##*/}.$i" 2>"$T/err.${h##*/}.$i" &
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
for f in "$T"/out.*; do
	cmp -s "$f" "$T/src" && same=$((same + 1))
done
check "all eight print the report's bytes" test "$same" = 8
check "the report ran once" test "$(wc -l <"$T/loads")" = 1

# Again on both hosts: hits (each host's near store holds a copy).
for h in "$A" "$B"; do
	expect_rc 0 "run again on ${h##*/}" "$LARDER" --dir "$h" run \
		--ns reports --key report -- "$T/report.sh"
	check "its bytes (${h##*/})" cmp -s "$T/out" "$T/src"
done
check "still one load" test "$(wc -l <"$T/loads")" = 1
fills=0
for h in "$A" "$B"; do
	expect_rc 0 "stat --json (${h##*/})" "$LARDER" --dir "$h" stat --json
	n=$(json_get "$T/out" 'j["counters"]["fills"]')
	fills=$((fills + n))
	check "a near hit on ${h##*/}" test \
		"$(json_get "$T/out" 'j["counters"]["near_hits"]')" -ge 1
done
check "one fill across both hosts" test "$fills" = 1

# A put on one host is a get on the other, through Redis. (How many
# copies host b made before depends on which host's run loaded the
# report: a filler's own near store gets its entry by publishing.)
expect_rc 0 "stat --json (hostb) before" "$LARDER" --dir "$B" stat --json
copies0=$(json_get "$T/out" 'j["counters"]["shared_copies"]')
head -c 70000 /dev/urandom >"$T/in"
expect_rc 0 "put on host a" "$LARDER" --dir "$A" put --ns n k "$T/in"
expect_rc 0 "get on host b" "$LARDER" --dir "$B" get --ns n k
check "host a's bytes" cmp -s "$T/out" "$T/in"
expect_rc 0 "stat --json (hostb)" "$LARDER" --dir "$B" stat --json
check "read from Redis and copied into b's near" test \
	"$(json_get "$T/out" 'j["counters"]["shared_copies"]')" = $((copies0 + 1))

# Many keys at once on host b: k (in its near now), m1 and m2 (in Redis
# only, put on host a, one of them past the inline size), and a miss.
head -c 300000 /dev/urandom >"$T/m1"
printf 'small' >"$T/m2"
expect_rc 0 "put m1 on host a" "$LARDER" --dir "$A" put --ns n m1 "$T/m1"
expect_rc 0 "put m2 on host a" "$LARDER" --dir "$A" put --ns n m2 "$T/m2"
printf 'k\nm1\nnone\nm2\n' >"$T/keys"
run "$LARDER" --dir "$B" get --ns n --many -o "$T/many" <"$T/keys"
check "get --many on host b: a miss among hits (exit 1)" test "$rc" -eq 1
printf 'hit\t70000\tk\nhit\t300000\tm1\nmiss\t-\tnone\nhit\t5\tm2\n' >"$T/want"
check "one line per key" cmp -s "$T/out" "$T/want"
check "the bytes of each hit" sh -c 'cmp -s "$1/many/k" "$1/in" &&
	cmp -s "$1/many/m1" "$1/m1" && cmp -s "$1/many/m2" "$1/m2"' sh "$T"
finish
