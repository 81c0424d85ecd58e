#!/bin/sh
# verify finds a damaged entry (exit 5), --repair quarantines it, and the
# damaged entry is never served again.
. "$(dirname "$0")/lib.sh" "$1"

L init >/dev/null 2>&1 || bail "cannot init"
head -c 100000 /dev/urandom >"$T/p"
L put good "$T/p" --version 1
L put bad "$T/p" --version 2
L put short "$T/p" --version 3 --ttl 1h
L --ns other put good2 "$T/p" --version 4

expect_rc 0 "verify on a clean store" L verify
expect_out "^4 entries checked, 4 ok, 0 corrupt, 0 expired" "clean summary line counts every namespace"
expect_rc 0 "verify --json on a clean store" L verify --json
check "verify --json is valid JSON" json_ok "$T/out"
check "verify --json counts" test "$(json_get "$T/out" '"%d %d %d" % (j["checked"], j["ok"], len(j["problems"]))')" = "4 4 0"
expect_rc 0 "verify limited to one namespace" L --ns other verify
expect_out "^1 entries checked, 1 ok" "verify --ns checks only that namespace"

run L inspect bad
path=$(json_get "$T/out" 'j["path"]')
check "found the entry file" test -f "$path"
# Flip one bit of the last payload byte.
python3 - "$path" <<'PY'
import os, sys
p = sys.argv[1]
os.chmod(p, 0o644)
with open(p, "r+b") as f:
    f.seek(-1, 2)
    b = f.read(1)
    f.seek(-1, 2)
    f.write(bytes([b[0] ^ 0x01]))
PY

expect_rc 5 "verify finds the flipped byte" L verify
expect_out "^4 entries checked, 3 ok, 1 corrupt, 0 expired" "summary counts the corrupt entry"
expect_out "1 problems remain$" "summary says the problem remains"
expect_out "corrupt" "the problem line names the state"
check "the problem line names the file" grep -qF "$path" "$T/out"
check "verify without --repair leaves the file" test -f "$path"
expect_rc 5 "verify --json finds it too" L verify --json
check "verify --json with a problem is valid JSON" json_ok "$T/out"
check "verify --json lists the problem" test "$(json_get "$T/out" 'j["problems"][0]["path"] + " " + j["problems"][0]["state"] + " " + str(j["remaining"])')" = "$path corrupt 1"
expect_rc 5 "inspect --verify reports the damage" L inspect bad --version 2 --verify
check "inspect --verify says corrupt" test "$(json_get "$T/out" 'j["state"]')" = corrupt

expect_rc 0 "verify --repair fixes the store" L verify --repair
expect_out "quarantined" "--repair says the entry was quarantined"
expect_out ", 1 quarantined, 0 problems remain$" "--repair summary"
check "the damaged file left its place" test ! -e "$path"
check "the damaged file is in quarantine/" sh -c 'ls "$1/quarantine" | grep -q .' sh "$S"
expect_rc 0 "verify after repair is clean" L verify
expect_out "^3 entries checked, 3 ok, 0 corrupt" "after repair 3 entries remain"
expect_rc 1 "get of the quarantined entry misses" L get bad --version 2
expect_rc 0 "other entries are still served" L get good
check "payload of an undamaged entry" cmp -s "$T/p" "$T/out"

# get itself never serves a damaged entry.
L put bad2 "$T/p" --version 5
run L inspect bad2
path=$(json_get "$T/out" 'j["path"]')
python3 -c 'import sys; f=open(sys.argv[1],"r+b"); f.seek(-10,2); f.write(b"XXXXXXXXXX")' "$path"
expect_rc 1 "get of a corrupt entry is a miss" L get bad2
check "a corrupt get prints no payload" test ! -s "$T/out"

# The library's remembered file hashes (namespace .files) are checked by a
# whole-store verify: a damaged one would give a wrong version.
S2="$T/s2"
head -c 200000 /dev/urandom >"$T/in"
touch -d '-1 hour' "$T/in"
# A record is kept only for an input whose ctime is 2 s old (racy files
# are hashed every time): wait for that property, then version it.
python3 -c 'import os,sys,time; c=os.stat(sys.argv[1]).st_ctime; time.sleep(max(0, c + 2.2 - time.time()))' "$T/in"
"$LARDER" --dir "$S2" init >/dev/null 2>&1
run "$LARDER" --dir "$S2" run --input "$T/in" -- true
rec=$(find "$S2/ns/.files" -type f | head -1)
check "a file hash was remembered" test -n "$rec"
expect_rc 0 "verify checks the remembered hashes" "$LARDER" --dir "$S2" verify
expect_out "^2 entries checked, 2 ok" "the record is counted"
python3 -c 'import sys; f=open(sys.argv[1],"r+b"); f.seek(-3,2); b=f.read(1); f.seek(-3,2); f.write(bytes([b[0]^1]))' "$rec"
expect_rc 5 "verify finds a damaged remembered hash" "$LARDER" --dir "$S2" verify
check "the problem names the record" grep -qF "$rec" "$T/out"
expect_rc 0 "verify --ns default leaves the records alone" "$LARDER" --dir "$S2" --ns default verify

# What the walk cannot check is a problem verify reports, never silence:
# a stray file and a symbolic link in ns/, a directory others may write.
S3="$T/s3"
"$LARDER" --dir "$S3" init >/dev/null 2>&1
printf 'x' | "$LARDER" --dir "$S3" put k >/dev/null 2>&1
expect_rc 0 "(setup) a clean store verifies" "$LARDER" --dir "$S3" verify
expect_out " 0 skipped, 0 quarantined, 0 problems remain$" "nothing skipped"
touch "$S3/ns/stray"
ln -s /tmp "$S3/ns/link"
expect_rc 5 "verify exits 5 for a stray file and a link in ns/" "$LARDER" --dir "$S3" verify
expect_out "^1 entries checked, 1 ok, .* 2 skipped, 0 quarantined, 2 problems remain$" "both are counted as skipped problems"
expect_err "ns/stray' is not a directory: skipped" "the stray file is named"
expect_err "ns/link' is a symbolic link: skipped" "the link is named"
expect_rc 5 "--repair leaves them to a person" "$LARDER" --dir "$S3" verify --repair
check "the stray file is still there" test -f "$S3/ns/stray"
run "$LARDER" --dir "$S3" verify --json
check "--json says skipped 2" test "$(json_get "$T/out" 'j["skipped"]')" = 2
rm "$S3/ns/stray" "$S3/ns/link"
chmod o+w "$S3/ns/default/e"
expect_rc 5 "a directory every user may write is skipped and reported" "$LARDER" --dir "$S3" verify
expect_out " 1 skipped," "... and counted"
chmod o-w "$S3/ns/default/e"
run "$LARDER" --dir "$S3" stat --json
check "walks count what they skipped (walk_skipped)" \
	test "$(json_get "$T/out" 'j["counters"]["walk_skipped"]')" -ge 3

finish
