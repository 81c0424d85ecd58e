#!/bin/sh
# larder get --many: keys from the arguments or from stdin, each hit's
# payload in a file of the -o directory named after its key (escaped),
# one report line per key, and the exit status the worst key's.
. "$(dirname "$0")/lib.sh" "$1"

L init >/dev/null 2>&1 || bail "cannot init"
head -c 300000 /dev/urandom >"$T/big"
printf 'small payload' >"$T/small"
head -c 5000 /dev/urandom >"$T/bad"
L put small "$T/small" || bail "put small"
L put 'a/b' "$T/big" || bail "put a/b"
L put .dot "$T/small" || bail "put .dot"
L put bad "$T/bad" || bail "put bad"

# A flipped payload byte in bad's entry file.
L inspect bad >"$T/inspect.json" 2>/dev/null
bad=$(json_get "$T/inspect.json" 'j["path"]')
[ -f "$bad" ] || bail "no entry file for bad"
python3 - "$bad" <<'PY' || bail "cannot flip a byte"
import os, sys
p = sys.argv[1]
os.chmod(p, 0o644)
with open(p, "r+b") as f:
    f.seek(-10, 2)
    b = f.read(1)
    f.seek(-10, 2)
    f.write(bytes([b[0] ^ 1]))
PY

expect_rc 1 "a miss and a corrupt entry among hits" \
	L get --many -o "$T/dir" small nope 'a/b' bad .dot
check "the small hit's file is its payload" cmp -s "$T/dir/small" "$T/small"
check "a key with a slash is one file, %2F" cmp -s "$T/dir/a%2Fb" "$T/big"
check "a leading dot is escaped" cmp -s "$T/dir/%2Edot" "$T/small"
check "nothing for the miss" test ! -e "$T/dir/nope"
check "nothing for the corrupt entry" test ! -e "$T/dir/bad"
printf 'hit\t13\tsmall\nmiss\t-\tnope\nhit\t300000\ta%%2Fb\nmiss\t-\tbad\nhit\t13\t%%2Edot\n' >"$T/want"
check "one line per key, in order" cmp -s "$T/out" "$T/want"
check "no temp file left" sh -c '! ls -A "$1" | grep -q larder-many' sh "$T/dir"

printf 'small\n\na/b\n' | L get --many -o "$T/in" >"$T/out" 2>"$T/err"
rc=$?
check "keys from stdin: every one a hit (exit 0)" test "$rc" -eq 0
check "from stdin: the files" sh -c 'cmp -s "$1/in/small" "$1/small" && cmp -s "$1/in/a%2Fb" "$1/big"' sh "$T"
check "an empty line names no key" test "$(wc -l <"$T/out")" -eq 2

expect_rc 2 "--many without -o DIR" L get --many small
expect_err "needs -o DIR" "says what it needs"
expect_rc 2 "--many with --version" L get --many -o "$T/dir" --version 1 small
: >"$T/file"
expect_rc 4 "-o naming a file" L get --many -o "$T/file" small
expect_err "cannot open directory" "names the directory"

finish
