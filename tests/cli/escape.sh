#!/bin/sh
# Hostile strings: whatever a user types or a store holds, the tool never
# prints a control byte, a C1 control, a bidirectional control or invalid
# UTF-8 raw — not in `ls`, not in any message — and two different keys
# never print the same (docs/cli.md#escaping).
. "$(dirname "$0")/lib.sh" "$1"

ESC=$(printf '\033')
RLO=$(printf '\342\200\256')   # U+202E RIGHT-TO-LEFT OVERRIDE
LRI=$(printf '\342\201\246')   # U+2066 LEFT-TO-RIGHT ISOLATE
ZWSP=$(printf '\342\200\213')  # U+200B ZERO WIDTH SPACE
CSI8=$(printf '\302\233')      # U+009B, the 8-bit CSI (C1)
TAG=$(printf '\363\240\200\201') # U+E0001 LANGUAGE TAG

# raw FILE: FILE holds none of the bytes above, nor a lone 0x9b.
raw() {
	LC_ALL=C grep -q "$ESC\|$RLO\|$LRI\|$ZWSP\|$CSI8\|$TAG\|$(printf '\233')" "$1"
}
no_raw_out() { ! raw "$T/out"; }
no_raw_err() { ! raw "$T/err"; }

L init >/dev/null 2>&1 || bail "cannot init"
printf 'x' >"$T/p"

# --- messages ---------------------------------------------------------------
expect_rc 2 "an unknown command with an escape sequence" \
	"$LARDER" --dir "$S" "evil${ESC}]0;title$(printf '\007')"
check "the unknown command is not echoed raw" no_raw_err
expect_err "unknown command 'evil\\\\x1b\]0;title\\\\x07'" "the unknown command is shown escaped"

expect_rc 2 "an invalid --ns with an escape sequence" L --ns "a${ESC}[31mred" put k "$T/p"
check "the namespace is not echoed raw" no_raw_err
expect_err "'a\\\\x1b\[31mred'" "the namespace is shown escaped"

expect_rc 2 "an invalid --ns with a bidi override" L --ns "a${RLO}b" ls
check "the override is not echoed raw" no_raw_err
expect_err "'a\\\\u202eb'" "the override is shown as \\u202e"

expect_rc 2 "an unknown option with an escape sequence" L ls "--x${ESC}[2J"
check "the unknown option is not echoed raw" no_raw_err
expect_err "'--x\\\\x1b\[2J'" "the unknown option is shown escaped"

expect_rc 2 "an unexpected argument with a C1 control" L ls "a${CSI8}b"
check "the argument is not echoed raw" no_raw_err
expect_err "'a\\\\u009bb'" "a C1 control is shown as \\u009b"

expect_rc 2 "a bad --ttl with a bidi isolate" L put k "$T/p" --ttl "1${LRI}d"
check "the value is not echoed raw" no_raw_err

expect_rc 4 "put of a missing file with hostile bytes in its name" \
	L put k "$T/no${ESC}[1m${RLO}such"
check "the file name is not echoed raw" no_raw_err
expect_err "'$T/no\\\\x1b\[1m\\\\u202esuch'" "the file name is shown escaped"

expect_rc 3 "a store path with an escape sequence" \
	"$LARDER" --dir "$T/st${ESC}[5m" get k
check "the store path is not echoed raw" no_raw_err

expect_rc 1 "get of a missing key with a tag character" L get "k${TAG}"
check "the key is not echoed raw" no_raw_err
expect_err "'k\\\\U000e0001'" "a tag character is shown as \\U000e0001"

# --- ls -------------------------------------------------------------------
L put "${RLO}txt.exe" "$T/p" --version v1
L put "a${ZWSP}b" "$T/p" --version v1
L put "ab" "$T/p" --version v1
L put "c${CSI8}d" "$T/p" --version "v${LRI}2"
L put "e${ESC}f" "$T/p" --version v1
L put 'e\x1bf' "$T/p" --version v1
expect_rc 0 "ls" L ls
check "ls prints no control, C1, bidi or invisible character raw" no_raw_out
expect_out '^\\u202etxt\.exe	v1	' "ls shows a right-to-left override escaped"
expect_out '^a\\u200bb	v1	' "ls shows a zero-width space escaped"
expect_out '^ab	v1	' "... so 'a<ZWSP>b' and 'ab' print differently"
expect_out '^c\\u009bd	v\\u20662	' "ls escapes C1 and bidi controls in versions too"
expect_out '^e\\x1bf	v1	' "ls shows an escape byte as \\x1b"
expect_out '^e\\\\x1bf	v1	' "... and the key 'e\\x1bf' typed literally as e\\\\x1bf"
check "ls prints one line per entry" test "$(wc -l <"$T/out")" -eq 6

expect_rc 0 "ls --json" L ls --json
check "ls --json prints nothing raw" no_raw_out
check "ls --json is valid JSON" json_ok "$T/out"
check "ls --json keeps the exact key (the override, read back)" \
	test "$(json_get "$T/out" '[e["key"] for e in j if e["key"].endswith("txt.exe")][0] == "\u202etxt.exe"')" = True
check "ls --json keeps the exact keys (a zero-width space, read back)" \
	test "$(json_get "$T/out" 'sum(1 for e in j if e["key"] in ("a\u200bb", "ab"))')" = 2

finish
