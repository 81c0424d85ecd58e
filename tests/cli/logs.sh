#!/bin/sh
# The library's log on stderr (--log-level, --log-json, LARDER_LOG_LEVEL)
# and the progress line (only on a terminal).
. "$(dirname "$0")/lib.sh" "$1"
unset LARDER_LOG_LEVEL

L init >/dev/null 2>&1 || bail "cannot init"

# corrupt KEY: flip one bit of the last payload byte of KEY's entry.
corrupt() {
	run L inspect "$1"
	python3 - "$(json_get "$T/out" 'j["path"]')" <<'PY'
import os, sys
p = sys.argv[1]
os.chmod(p, 0o644)
with open(p, "r+b") as f:
    f.seek(-1, 2)
    b = f.read(1)
    f.seek(-1, 2)
    f.write(bytes([b[0] ^ 0x01]))
PY
}

# --- human form ----------------------------------------------------------
printf 'payload one\n' | L put k1
corrupt k1
expect_rc 1 "a corrupt entry is a miss" L get k1 --log-level info
expect_err "^larder: warn: quarantined '.*': payload checksum mismatch$" "--log-level info shows the quarantine"
check "the log line is on stderr, not stdout" test ! -s "$T/out"

printf 'payload two\n' | L put k2
corrupt k2
expect_rc 1 "default level: a corrupt entry" L get k2
expect_err "^larder: warn: quarantined " "the default level shows warnings"
printf 'payload three\n' | L put k3
corrupt k3
expect_rc 1 "--log-level error: a corrupt entry" L --log-level error get k3
if grep -q "quarantined" "$T/err"; then not_ok "--log-level error hides warnings"; else ok "--log-level error hides warnings"; fi
expect_err "not found" "the miss is still reported"

# --- JSON ----------------------------------------------------------------
printf 'payload four\n' | L put k4
corrupt k4
expect_rc 1 "--log-json: a corrupt entry" L get k4 --log-json --log-level debug
grep '^{' "$T/err" >"$T/json"
check "--log-json: one line per message" test "$(grep -c quarantined "$T/json")" -eq 1
check "every JSON line parses, with the fields" python3 -c '
import json, re, sys
n = 0
for line in open(sys.argv[1]):
    j = json.loads(line)
    assert set(j) == {"ts", "level", "msg", "cmd"}, j
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", j["ts"]), j
    assert j["level"] in ("error", "warn", "info", "debug"), j
    assert j["cmd"] == "get", j
    n += 1
assert n >= 1
' "$T/json"
check "the quarantine message in JSON" python3 -c '
import json, sys
j = [json.loads(l) for l in open(sys.argv[1]) if "quarantined" in l][0]
assert j["level"] == "warn" and "payload checksum mismatch" in j["msg"], j
' "$T/json"

# --- info: a stale lease broken ------------------------------------------
# A `larder run` killed mid-fill leaves its lease; the next run breaks it
# (its holder is gone on this host) and says so at level info.
# make_stale_lease KEY
make_stale_lease() {
	rm -f "$T/pid"
	"$LARDER" --dir "$S" run --key "$1" -- \
		sh -c 'echo $$ >"$1.tmp"; mv "$1.tmp" "$1"; exec sleep 60' sh "$T/pid" &
	lpid=$!
	i=0
	while [ ! -s "$T/pid" ] && [ $i -lt 1000 ]; do
		sleep 0.01
		i=$((i + 1))
	done
	kill -9 "$lpid"
	wait "$lpid" 2>/dev/null
	[ -s "$T/pid" ] && kill "$(cat "$T/pid")"
}

make_stale_lease lease1
expect_rc 0 "--log-level info: a run after a killed one" L --log-level info run --key lease1 -- echo filled
expect_out "^filled$" "the run filled"
expect_err "^larder: info: broke a stale lease of .* pid [0-9]+ in " "--log-level info shows the broken lease"

make_stale_lease lease2
expect_rc 0 "default level: a run after a killed one" L run --key lease2 -- echo filled
check "the default level hides info" test ! -s "$T/err"

make_stale_lease lease3
expect_rc 0 "LARDER_LOG_LEVEL=info" env LARDER_LOG_LEVEL=info "$LARDER" --dir "$S" run --key lease3 -- echo filled
expect_err "^larder: info: broke a stale lease" "LARDER_LOG_LEVEL sets the default"
make_stale_lease lease4
expect_rc 0 "--log-level over LARDER_LOG_LEVEL" env LARDER_LOG_LEVEL=info "$LARDER" --dir "$S" --log-level warn run --key lease4 -- echo filled
check "--log-level wins over LARDER_LOG_LEVEL" test ! -s "$T/err"

# --- bad values ------------------------------------------------------------
expect_rc 2 "a bad --log-level" L get k1 --log-level loud
expect_err "bad --log-level 'loud' \(error, warn, info or debug\)" "the message names the choices"
expect_rc 2 "--log-level without a value" L get k1 --log-level
expect_rc 2 "a bad --log-level before the command" L --log-level 3 ls
expect_rc 2 "a bad LARDER_LOG_LEVEL" env LARDER_LOG_LEVEL=verbose "$LARDER" --dir "$S" ls
expect_err "bad LARDER_LOG_LEVEL 'verbose'" "the message names the variable"
expect_rc 0 "the global options in a command's help" L get --help
expect_out "--log-level L" "get --help lists --log-level"

# --- progress ----------------------------------------------------------------
# 2 MiB through a pipe that stalls after the first MiB. On a terminal the
# stall lasts until the progress line is there (at most 60 s): the test
# sees the line, whatever the machine's speed. Without one it lasts 1.5 s,
# past the line's 1 s threshold, and nothing may be drawn.
# shellcheck disable=SC2016
stall_until='i=0; until grep -aq "larder: reading" "$1" || [ $i -ge 6000 ]; do sleep 0.01; i=$((i + 1)); done'
if command -v script >/dev/null 2>&1; then
	# script gives the command a terminal; what it printed there is in
	# its output ($T/out), which the stalled producer watches.
	slow="head -c 1048576 /dev/zero; $stall_until; head -c 1048576 /dev/zero"
	expect_rc 0 "a slow put on a terminal" script -qec "sh -c '$slow' sh '$T/out' | '$LARDER' --dir '$S' put slow1" /dev/null
	check "a progress line with bytes and rate" grep -aEq 'larder: (reading|storing|hashing): [0-9.]+ (B|KiB|MiB), [0-9.]+ (B|KiB|MiB)/s' "$T/out"
	check "drawn over with carriage returns" grep -aq "$(printf '\r')larder: reading" "$T/out"
	check "the line is cleared at the end" python3 -c '
import re, sys
t = open(sys.argv[1], "rb").read()
assert re.search(rb"\r +\r$", t), t[-80:]
' "$T/out"
	run L get slow1
	check "the slow put stored all 2 MiB" test "$(wc -c <"$T/out")" -eq 2097152
	expect_rc 0 "a fast put on a terminal" script -qec "printf small | '$LARDER' --dir '$S' put fast1" /dev/null
	check "no progress line for quick work" test ! -s "$T/out"
else
	skip "progress on a terminal: no script(1)"
fi
slow='head -c 1048576 /dev/zero; sleep 1.5; head -c 1048576 /dev/zero'
expect_rc 0 "a slow put without a terminal" sh -c "{ $slow; } | '$LARDER' --dir '$S' put slow2"
check "nothing on stderr without a terminal" test ! -s "$T/err"

finish
