# tiers.sh — a store with a shared tier behind it (docs/backends.md,
# "Tiers"), as a user sets one up: init --shared, config --shared,
# LARDER_SHARED, masking, stat's counters, two hosts' near stores on one
# shared directory, and the shared tier gone.
. "$(dirname "$0")/lib.sh" "$1"
unset LARDER_SHARED
umask 022
SH=$T/shared
A=$T/a
B=$T/b

expect_rc 0 "init --shared makes the shared directory a store" \
	"$LARDER" --dir "$A" init --shared "$SH"
check "the shared directory is a store" test -f "$SH/larder-store"
check "the setting is in the near store's config" \
	grep -qx "shared $SH" "$A/config"
expect_rc 0 "config shows it" "$LARDER" --dir "$A" config
expect_out "^shared $SH\$" "config names the shared tier"

expect_rc 0 "a second host's init" "$LARDER" --dir "$B" init --shared "$SH"
printf 'hello from a\n' >"$T/in"
expect_rc 0 "put on host a" "$LARDER" --dir "$A" put --ns n k "$T/in"
expect_rc 0 "get on host b" "$LARDER" --dir "$B" get --ns n k
check "host b read host a's bytes" cmp -s "$T/out" "$T/in"
expect_rc 0 "stat --json on host b" "$LARDER" --dir "$B" stat --json
check "stat --json names the shared tier" \
	test "$(json_get "$T/out" 'j["shared"]')" = "$SH"
check "b's shared hit was counted" \
	test "$(json_get "$T/out" 'j["counters"]["shared_hits"]')" = 1
check "and copied into b's near tier" \
	test "$(json_get "$T/out" 'j["counters"]["shared_copies"]')" = 1
# Again on host b: a near hit, which (as any hit) writes nothing, the
# counters included (docs/operations.md): the stats shards are as before.
snap() { find "$B/stats" -type f -printf '%p %s %T@ %C@\n' | sort; }
snap >"$T/stats.before"
expect_rc 0 "get again on host b" "$LARDER" --dir "$B" get --ns n k
check "its bytes" cmp -s "$T/out" "$T/in"
snap >"$T/stats.after"
check "a near hit writes no counters" cmp -s "$T/stats.before" "$T/stats.after"
expect_rc 0 "stat on host b" "$LARDER" --dir "$B" stat
expect_out "^shared tier $SH\$" "stat names the shared tier"
expect_out "^  near_hits +[0-9]+\$" "stat shows near hits"
expect_rc 0 "stat --prometheus on host b" "$LARDER" --dir "$B" stat --prometheus
expect_out '^larder_shared_copies_total\{store="[^"]*"\} 1$' \
	"prometheus shows the copies into near"

# The shared tier gone: host b serves its near copy, with a warning.
mv "$SH" "$T/shared.away"
expect_rc 0 "get on host b with the shared tier gone" \
	"$LARDER" --dir "$B" get --ns n k
check "the near copy's bytes" cmp -s "$T/out" "$T/in"
expect_err "shared tier '$SH' failed" "one warning names the tier"
check "only one" test "$(grep -c 'shared tier' "$T/err")" = 1
printf 'loaded\n' >"$T/loaded"
expect_rc 0 "a put with the shared tier gone still succeeds" \
	"$LARDER" --dir "$B" put --ns n k2 "$T/loaded"
expect_rc 0 "and is kept in near" "$LARDER" --dir "$B" get --ns n k2
check "its bytes" cmp -s "$T/out" "$T/loaded"
mv "$T/shared.away" "$SH"

# LARDER_SHARED overrides the setting for one run; empty: none.
expect_rc 0 "config with LARDER_SHARED" \
	env LARDER_SHARED="$T/other" "$LARDER" --dir "$A" config
expect_out "^shared $T/other \\(from LARDER_SHARED\\)\$" "the override shown"
expect_rc 0 "config with LARDER_SHARED empty" \
	env LARDER_SHARED= "$LARDER" --dir "$A" config
expect_out "^shared \\(none\\)" "no shared tier this run"
expect_rc 0 "get with LARDER_SHARED empty: a's near copy" \
	env LARDER_SHARED= "$LARDER" --dir "$A" get --ns n k

# A tier that cannot be reached now: set all the same, and said.
expect_rc 0 "config --shared naming a tier that is not there" \
	"$LARDER" --dir "$A" config --shared 'redis://user:s3cret@127.0.0.1:1/0'
expect_err "warning: the shared tier is set, but: cannot open the shared tier 'redis://user:\*\*\*@127\.0\.0\.1:1/0': Redis connect to 127\.0\.0\.1:1 .*Connection refused" \
	"init says it cannot be reached, and why"
check "and that others may read its password" grep -q \
	"password is in '$A/config', which the store's mode (0644) lets others" \
	"$T/err"

# A user alone (the password from LARDER_REDIS_PASSWORD, docs/redis.md):
# no password in DIR/config, no warning that others may read one.
expect_rc 0 "config --shared with a user and no password" \
	env -u LARDER_REDIS_PASSWORD "$LARDER" --dir "$A" config \
	--shared 'redis://user@127.0.0.1:1/0'
check "no warning about a password in DIR/config" \
	sh -c "! grep -q 'password is in' '$T/err'"
expect_rc 0 "nor with an empty password" "$LARDER" --dir "$A" config \
	--shared 'redis://user:@127.0.0.1:1/0'
check "no warning about it either" sh -c "! grep -q 'password is in' '$T/err'"

# A password never shown; a bad one refused at once.
expect_rc 0 "config --shared with a password" "$LARDER" --dir "$A" config \
	--shared 'redis://user:s3cret@127.0.0.1:1/0'
expect_rc 0 "config" "$LARDER" --dir "$A" config
expect_out '^shared redis://user:\*\*\*@127\.0\.0\.1:1/0$' "masked"
check "nowhere in the output" sh -c "! grep -q s3cret '$T/out' '$T/err'"
expect_rc 2 "init --shared with no host" "$LARDER" --dir "$A" init \
	--shared redis://
expect_err "bad shared tier 'redis://': no host" "says what is wrong"
expect_rc 2 "config --shared with a relative path" "$LARDER" --dir "$A" \
	config --shared rel/dir
expect_err "absolute path" "says what is wrong"
expect_rc 2 "config --shared rediss:// (TLS)" "$LARDER" --dir "$A" \
	config --shared 'rediss://:s3cret@127.0.0.1:6380/0'
expect_err "bad shared tier 'rediss://:\*\*\*@127\.0\.0\.1:6380/0': TLS \(rediss://\) is not supported" \
	"says TLS is not supported, not an unknown scheme"
check "the password nowhere" sh -c "! grep -q s3cret '$T/err'"
# A URI is checked whole when set (a build without Redis cannot parse it,
# and says so when it opens the tier).
if "$LARDER" --dir "$A" config 2>&1 | grep -q "without Redis"; then
	skip "this build has no Redis backend to check a URI's settings"
else
	expect_rc 2 "config --shared with a misspelt setting" "$LARDER" \
		--dir "$A" config --shared 'redis://127.0.0.1:1/0?timout_ms=5'
	expect_err "unknown query item 'timout_ms'" "names the setting"
	check "and the setting was kept" grep -qx \
		"shared redis://user:s3cret@127.0.0.1:1/0" "$A/config"
	expect_rc 2 "init --shared with a setting out of range" "$LARDER" \
		--dir "$T/c" init --shared 'redis://127.0.0.1:1/0?timeout_ms=0'
	expect_err "timeout_ms must be 1\.\.3600000" "names the setting"
fi
expect_rc 0 "config --shared '' removes it" "$LARDER" --dir "$A" config \
	--shared ''
expect_rc 0 "config" "$LARDER" --dir "$A" config
expect_out "^shared \\(none\\)\$" "gone"

# The tools on a shared directory (docs/cli.md, "Tiers"): an entry in
# both tiers, one in the shared tier only, one in near only.
SH2=$T/shared2
X=$T/x
expect_rc 0 "init --shared for the tools" "$LARDER" --dir "$X" init \
	--shared "$SH2"
printf 'both\n' >"$T/t1"
expect_rc 0 "put (both tiers)" "$LARDER" --dir "$X" put --ns t both "$T/t1"
expect_rc 0 "put on the shared store itself" "$LARDER" --dir "$SH2" put \
	--ns t sh "$T/t1"
expect_rc 0 "put with the tier off (near only)" env LARDER_SHARED= \
	"$LARDER" --dir "$X" put --ns t loc "$T/t1"
expect_rc 0 "ls lists both tiers" "$LARDER" --dir "$X" ls --ns t
check "each entry once, its tier last" test \
	"$(cut -f1,7 "$T/out" | sort | tr '\n\t' ' :')" = "both:both loc:near sh:shared "
expect_rc 0 "ls --tier shared --json" "$LARDER" --dir "$X" ls --ns t \
	--tier shared --json
check "the shared store's paths" test "$(json_get "$T/out" \
	'" ".join(sorted(e["key"] for e in j if e["path"].startswith("'"$SH2"'/ns/t/e/")))')" = "both sh"
expect_rc 0 "inspect sh (near, then shared)" "$LARDER" --dir "$X" inspect \
	--ns t sh
check "found in the shared tier" test "$(json_get "$T/out" 'j["tier"]')" = shared
SHFILE=$(json_get "$T/out" 'j["path"]')
printf 'X' | dd of="$SHFILE" bs=1 seek=$(($(stat -c %s "$SHFILE") - 2)) \
	conv=notrunc 2>/dev/null
expect_rc 0 "verify (near) passes" "$LARDER" --dir "$X" verify
expect_rc 5 "verify --tier shared finds the damage" "$LARDER" --dir "$X" \
	verify --tier shared
expect_out "^$SHFILE: corrupt: payload checksum mismatch" "names the file"
expect_rc 0 "verify --tier shared --repair" "$LARDER" --dir "$X" verify \
	--tier shared --repair
expect_out ": quarantined\$" "quarantined"
check "out of the shared store" test ! -e "$SHFILE"
check "into its quarantine/" sh -c 'ls "$1"/quarantine | grep -q .' sh "$SH2"
expect_rc 0 "gc" "$LARDER" --dir "$X" gc
expect_out "^shared tier $SH2: not cleaned by this gc; run 'larder --dir $SH2 gc' \\(on one host\\)\$" \
	"says the shared directory is cleaned on its own"
expect_rc 2 "ls --tier shared on a store without one" "$LARDER" --dir "$SH2" \
	ls --tier shared
expect_err "the store has no shared tier" "says so"
expect_rc 3 "a relative LARDER_SHARED fails the open" env \
	LARDER_SHARED=rel/dir "$LARDER" --dir "$X" ls
expect_err "LARDER_SHARED: bad shared tier 'rel/dir': a directory must be given by its absolute path" \
	"naming the setting"

# Only the owner changes it.
if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null; then
	chmod 755 "$T"
	expect_rc 3 "another user's config --shared" setpriv --reuid 65534 \
		--regid 65534 --clear-groups "$LARDER" --dir "$A" config \
		--shared "$SH"
	expect_err "only the store's owner" "refused, naming why"
else
	skip "the owner check needs root and setpriv"
fi
finish
