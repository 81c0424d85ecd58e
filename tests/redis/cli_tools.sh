#!/bin/sh
# cli_tools.sh LARDER — the tools on a store whose shared tier is Redis
# (docs/cli.md, "Tiers"): ls, inspect and verify on entries held in
# Redis only, in the near store only, and in both; a corrupt entry in
# Redis found by verify --tier shared and removed by --repair; the
# counters redis_lost_chunks and redis_wait_short moving in stat; gc
# saying what it leaves to Redis; a bad LARDER_SHARED failing the open
# with its message. Against a private Redis (redis.sh, stopped by pid at
# exit). Prints "N passed, N failed, N skipped"; exits 77 where Redis
# cannot run here.
set -u
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../cli/lib.sh" "$1"
. "$here/cli_redis.sh"
redis_up
PORT=$(sed -n 's/^REDIS_PORT=//p' "$T/env")
REDISCLI_AUTH=$PASSWORD
export REDISCLI_AUTH
rcli() {
	redis-cli -p "$PORT" "$@"
}

A=$T/hosta
B=$T/hostb
for h in "$A" "$B"; do
	expect_rc 0 "init --shared redis:// (${h##*/})" \
		"$LARDER" --dir "$h" init --mode private --shared "$URI"
done
printf 'in both tiers\n' >"$T/both"
printf 'in redis only\n' >"$T/shared"
printf 'in the near store only\n' >"$T/near"
# both: put on host a (Redis, then a's near); redis-only: put on host b;
# near-only: put on host a with the shared tier turned off for the run.
expect_rc 0 "put on host a" "$LARDER" --dir "$A" put --ns n both "$T/both"
expect_rc 0 "put on host b" "$LARDER" --dir "$B" put --ns n red "$T/shared"
expect_rc 0 "put on host a, near only" env LARDER_SHARED= \
	"$LARDER" --dir "$A" put --ns n loc "$T/near"

# The tier column of `ls` (both tiers by default on a tiered store).
tier_of() { # KEY: the TIER column of KEY's line in $T/out
	awk -F '\t' -v k="$1" '$1 == k { print $7 }' "$T/out"
}
expect_rc 0 "ls on host a" "$LARDER" --dir "$A" ls --ns n
check "three entries listed" test "$(wc -l <"$T/out")" = 3
check "'both' is in both tiers" test "$(tier_of both)" = both
check "'red' is in Redis only" test "$(tier_of red)" = shared
check "'loc' is in the near store only" test "$(tier_of loc)" = near
check "the password is nowhere" sh -c "! grep -q '$REDISCLI_AUTH' '$T/out' '$T/err'"
expect_rc 0 "ls --tier near" "$LARDER" --dir "$A" ls --ns n --tier near
check "near: both and loc, six columns" test \
	"$(cut -f1 "$T/out" | sort | tr '\n' ' ')$(awk -F '\t' '{print NF}' "$T/out" | sort -u)" = "both loc 6"
expect_rc 0 "ls --tier shared" "$LARDER" --dir "$A" ls --ns n --tier shared
check "shared: both and red, six columns" test \
	"$(cut -f1 "$T/out" | sort | tr '\n' ' ')$(awk -F '\t' '{print NF}' "$T/out" | sort -u)" = "both red 6"
expect_rc 0 "ls --json" "$LARDER" --dir "$A" ls --ns n --json
check "json: each entry's tier" test "$(json_get "$T/out" \
	'" ".join(sorted(e["key"] + ":" + e["tier"] for e in j))')" = \
	"both:both loc:near red:shared"
expect_rc 0 "ls --all-namespaces" "$LARDER" --dir "$A" ls --all-namespaces
check "NS first, TIER last" grep -q "^n	red	.*	shared\$" "$T/out"

# inspect: near, then the shared tier; or the tier asked for.
expect_rc 0 "inspect red on host a" "$LARDER" --dir "$A" inspect --ns n red
check "found in the shared tier" test "$(json_get "$T/out" 'j["tier"]')" = shared
check "its path names the Redis key" test "$(json_get "$T/out" \
	'j["path"].split(" ")[1].endswith("}:m")')" = True
REDKEY=$(json_get "$T/out" 'j["path"].split(" ")[1]')
expect_rc 1 "inspect red --tier near" "$LARDER" --dir "$A" inspect --ns n \
	red --tier near
expect_err "'red': not found in the near tier" "not found, naming the tier"
expect_rc 0 "inspect both --tier shared --verify" "$LARDER" --dir "$A" \
	inspect --ns n both --tier shared --verify
check "ok, from the shared tier" test "$(json_get "$T/out" \
	'j["state"] + " " + j["tier"] + " " + str(j["size"])')" = "ok shared 14"
expect_rc 0 "inspect both (near first)" "$LARDER" --dir "$A" inspect --ns n both
check "from the near tier" test "$(json_get "$T/out" 'j["tier"]')" = near
expect_rc 1 "inspect loc --tier shared" "$LARDER" --dir "$A" inspect --ns n \
	loc --tier shared

# verify: near by default; the shared tier when asked.
expect_rc 0 "verify --tier shared" "$LARDER" --dir "$A" verify --tier shared
expect_out "^2 entries checked, 2 ok, 0 corrupt" "both Redis entries hashed"
expect_rc 0 "verify --tier all" "$LARDER" --dir "$A" verify --tier all --json
check "four entries checked (two per tier)" test \
	"$(json_get "$T/out" 'j["checked"]')" = 4

# A payload byte changed behind larder's back, in Redis.
len=$(rcli STRLEN "$REDKEY")
rcli SETRANGE "$REDKEY" $((len - 2)) X >/dev/null
expect_rc 0 "verify (near) does not see Redis" "$LARDER" --dir "$A" verify
expect_rc 5 "verify --tier shared finds it" "$LARDER" --dir "$A" verify \
	--tier shared
expect_out "}:m: corrupt: payload checksum mismatch \\(ns n, key 'red'" \
	"the problem names the Redis key and the entry"
expect_out "1 corrupt, .* 1 problems remain\$" "counted, and remaining"
check "still in Redis" test "$(rcli EXISTS "$REDKEY")" = 1
expect_rc 0 "verify --tier shared --repair" "$LARDER" --dir "$A" verify \
	--tier shared --repair --json
check "removed there, none remain" test "$(json_get "$T/out" \
	'str(j["corrupt"]) + str(j["quarantined"]) + str(j["remaining"]) + str(j["problems"][0]["quarantined"])')" = 110True
check "gone from Redis" test "$(rcli EXISTS "$REDKEY")" = 0
expect_rc 0 "verify --tier shared after the repair" "$LARDER" --dir "$A" \
	verify --tier shared
expect_out "^1 entries checked, 1 ok" "one sound entry left"
expect_rc 0 "a get on host a misses it" sh -c \
	"'$LARDER' --dir '$A' get --ns n red; test \$? = 1"

# redis_lost_chunks: a chunk of an entry past the inline size evicted
# behind larder's back; host a (no near copy) reads it: a miss, counted.
head -c 600000 /dev/urandom >"$T/big"
expect_rc 0 "put a chunked entry on host b" "$LARDER" --dir "$B" put --ns n \
	big "$T/big"
expect_rc 0 "inspect it" "$LARDER" --dir "$B" inspect --ns n big --tier shared
tag=$(json_get "$T/out" 'j["path"].split(" ")[1][:-2]')
chunk=$(rcli --scan --pattern "$tag:c:*" | head -n 1)
check "it has chunks" test -n "$chunk"
rcli DEL "$chunk" >/dev/null
expect_rc 1 "get on host a: a miss" "$LARDER" --dir "$A" get --ns n big
expect_rc 0 "stat --json" "$LARDER" --dir "$A" stat --json
check "redis_lost_chunks 1" test \
	"$(json_get "$T/out" 'j["counters"]["redis_lost_chunks"]')" = 1
expect_rc 0 "stat" "$LARDER" --dir "$A" stat
expect_out "^  redis_lost_chunks +1\$" "in the text"
expect_rc 0 "stat --prometheus" "$LARDER" --dir "$A" stat --prometheus
expect_out '^larder_redis_lost_chunks_total\{store="[^"]*"\} 1$' \
	"in Prometheus's"

# redis_wait_short: WAIT for a replica this server does not have.
C=$T/hostc
expect_rc 0 "init a third store" "$LARDER" --dir "$C" init
expect_rc 0 "put asking for one replica" env \
	LARDER_SHARED="$URI?wait_replicas=1&wait_ms=10" "$LARDER" --dir "$C" \
	put --ns n w "$T/both"
expect_err "0 of 1 replicas acknowledged" "warned"
expect_rc 0 "stat --json" "$LARDER" --dir "$C" stat --json
check "redis_wait_short 1" test \
	"$(json_get "$T/out" 'j["counters"]["redis_wait_short"]')" = 1
expect_rc 0 "stat --prometheus" "$LARDER" --dir "$C" stat --prometheus
expect_out '^larder_redis_wait_short_total\{store="[^"]*"\} 1$' \
	"in Prometheus's"

# gc cleans near only, and says what becomes of Redis.
expect_rc 0 "gc on host a" "$LARDER" --dir "$A" gc
expect_out "^shared tier redis://:\*\*\*@127\.0\.0\.1:$PORT/0: not cleaned by gc; Redis removes entries by their TTLs and its maxmemory-policy\$" \
	"says Redis is not cleaned, and why"

# A misspelt setting in LARDER_SHARED fails the open, naming it.
expect_rc 3 "ls with a bad LARDER_SHARED" env \
	LARDER_SHARED="$URI?timout_ms=5" "$LARDER" --dir "$A" ls --ns n
expect_err "LARDER_SHARED: bad Redis URI .*unknown query item 'timout_ms'" \
	"names the setting and the item"
check "the password is not in the message" sh -c "! grep -q '$REDISCLI_AUTH' '$T/err'"
expect_rc 3 "get with a LARDER_SHARED of no host" env \
	LARDER_SHARED="redis://" "$LARDER" --dir "$A" get --ns n both
expect_err "LARDER_SHARED: bad shared tier 'redis://': no host" "says so"

# Redis gone: the default listing is near's, with a warning; the shared
# tier asked for by name fails the command.
sh "$redis" stop >/dev/null 2>&1
expect_rc 0 "ls with Redis stopped" "$LARDER" --dir "$A" ls --ns n
expect_err "the shared tier was not listed \\(.*\\): only the near tier's entries are" \
	"warned that only near is listed"
check "near's entries, marked near" test \
	"$(cut -f1,7 "$T/out" | sort | tr '\n\t' ' :')" = "both:near loc:near "
expect_rc 4 "ls --tier shared with Redis stopped" "$LARDER" --dir "$A" ls \
	--ns n --tier shared
expect_err "ls: cannot open the shared tier 'redis://:\\*\\*\\*@" "says why"
expect_rc 4 "verify --tier all with Redis stopped" "$LARDER" --dir "$A" \
	verify --tier all
finish
