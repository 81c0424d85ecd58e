#!/bin/sh
# ls and inspect describe entries; caller bytes never break the output
# (one line per entry in text, valid JSON always).
. "$(dirname "$0")/lib.sh" "$1"

L init >/dev/null 2>&1 || bail "cannot init"
printf 'payload-1' >"$T/p1"
printf 'payload-22' >"$T/p2"
L put alpha "$T/p1" --version v1
L put beta "$T/p2" --version v2 --ttl 1h
# A key with a tab, a newline, an escape sequence and an invalid UTF-8 byte.
nasty=$(printf 'n\tas\nty\033[31m\377')
L put "$nasty" "$T/p1" --version "$(printf 'ver\001')"
L put 'clé' "$T/p1" --version v
L --ns other put gamma "$T/p1" --version v3

expect_rc 0 "ls" L ls
check "ls prints one line per entry" test "$(wc -l <"$T/out")" -eq 4
expect_out "^alpha	v1	9	[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}Z	never	ok$" "ls line: key, version, size, created, expires, state"
expect_out "^beta	v2	10	.*	[0-9]{4}-.*Z	ok$" "ls shows an expiry time for a TTL entry"
expect_out '^n\\tas\\nty\\x1b\[31m\\xff	ver\\x01	' "ls escapes non-printable bytes in keys and versions"
expect_out '^clé	' "ls keeps valid UTF-8 as it is"
check "ls prints no raw escape byte" sh -c '! grep -q "$(printf "\033")" "$1"' sh "$T/out"
check "ls without --all-namespaces omits other namespaces" sh -c '! grep -q gamma "$1"' sh "$T/out"

expect_rc 0 "ls --all-namespaces" L ls --all-namespaces
expect_out "^other	gamma	v3	" "ls --all-namespaces shows the namespace first"
expect_out "^default	alpha	v1	" "ls --all-namespaces shows the default namespace"
check "ls --all-namespaces lists every entry" test "$(wc -l <"$T/out")" -eq 5

expect_rc 0 "ls --json" L ls --json
check "ls --json is valid JSON" json_ok "$T/out"
check "ls --json lists 4 entries" test "$(json_get "$T/out" 'len(j)')" = 4
check "ls --json carries exact non-UTF-8 bytes in key_hex" test "$(json_get "$T/out" '[e["key_hex"] for e in j if "key_hex" in e][0]')" = "6e0961730a74791b5b33316dff"
check "ls --json: size of alpha" test "$(json_get "$T/out" '[e["size"] for e in j if e["key"] == "alpha"][0]')" = 9
expect_rc 0 "ls --json on an empty namespace" L --ns empty ls --json
check "empty namespace gives an empty JSON array" test "$(json_get "$T/out" 'len(j)')" = 0

expect_rc 0 "inspect" L inspect beta
check "inspect prints valid JSON" json_ok "$T/out"
check "inspect: every documented field" test "$(json_get "$T/out" 'sorted(j.keys()) == sorted(["ns","key","version","meta","size","stored_size","file_size","created","created_ns","expires","expires_ns","codec","state","problem","path"])')" = True
check "inspect: key, version, ns" test "$(json_get "$T/out" 'j["key"] + " " + j["version"] + " " + j["ns"]')" = "beta v2 default"
check "inspect: size and state" test "$(json_get "$T/out" '"%d %s %s" % (j["size"], j["state"], j["codec"])')" = "10 ok none"
check "inspect: expires is about an hour after created" test "$(json_get "$T/out" 'abs(j["expires_ns"] - j["created_ns"] - 3600 * 10**9) < 5 * 10**9')" = True
check "inspect: ISO time matches the ns time" test "$(json_get "$T/out" '__import__("datetime").datetime.utcfromtimestamp(j["created_ns"] // 10**9).strftime("%Y-%m-%dT%H:%M:%SZ") == j["created"]')" = True
check "inspect: path is the entry file" test -f "$(json_get "$T/out" 'j["path"]')"
expect_rc 0 "inspect --verify" L inspect alpha --verify
check "inspect --verify: state ok, expires null" test "$(json_get "$T/out" '"%s %s" % (j["state"], j["expires"])')" = "ok None"
expect_rc 0 "inspect of a key with control and invalid bytes" L inspect "$nasty"
check "its JSON is valid" json_ok "$T/out"
check "its key round-trips through key_hex" test "$(json_get "$T/out" 'j["key_hex"]')" = "6e0961730a74791b5b33316dff"
check "its version escapes the control byte" test "$(json_get "$T/out" 'repr(j["version"])')" = "'ver\\x01'"
expect_rc 0 "inspect --version" L inspect alpha --version v1
expect_rc 1 "inspect of a missing key" L inspect nosuch
expect_rc 1 "inspect of a missing version" L inspect alpha --version nope

finish
