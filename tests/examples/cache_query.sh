#!/bin/sh
# examples/cache_query.c does what its comment says: on a fresh store the
# first run computes the result ("filled") and keeps it, the second finds
# it ("hit") and prints the same bytes, another version is computed
# again, and a failure is reported with the library's message.
# Usage: cache_query.sh path/to/cache_query [path/to/larder]
prog=$1
larder=${2:-}
if [ -z "$prog" ] || [ ! -x "$prog" ]; then
	echo "usage: $0 path/to/cache_query [path/to/larder]" >&2
	exit 2
fi
T=$(mktemp -d "${TMPDIR:-/tmp}/larder-example.XXXXXX") || exit 2
trap 'rm -rf "$T"' EXIT
trap 'exit 130' INT TERM
. "$(dirname "$0")/../checks.sh"
# Under a failure: the stderr of each run.
show_failure() {
	show_files "$T"/err*
}

q='SELECT region, SUM(amount) FROM sales GROUP BY region'
"$prog" "$T/store" "$q" v1 >"$T/out1" 2>"$T/err1"
check "the first run exits 0 (exit $?)" test $? -eq 0
check "the first run on a fresh store fills" \
	grep -q '^cache_query: filled, [0-9]* bytes$' "$T/err1"
check "the first run prints the result" grep -q '^region,total$' "$T/out1"

"$prog" "$T/store" "$q" v1 >"$T/out2" 2>"$T/err2"
check "the second run exits 0 (exit $?)" test $? -eq 0
check "the second run hits" grep -q '^cache_query: hit, [0-9]* bytes$' "$T/err2"
check "the hit prints the bytes the fill printed" cmp -s "$T/out1" "$T/out2"

"$prog" "$T/store" "$q" v2 >"$T/out3" 2>"$T/err3"
check "another version of the source is computed again" \
	grep -q '^cache_query: filled' "$T/err3"

if [ -n "$larder" ]; then
	"$larder" --dir "$T/store" get "$q" --version v1 >"$T/out4" 2>"$T/err4"
	check "the larder tool reads what the example stored" \
		cmp -s "$T/out1" "$T/out4"
fi

: >"$T/file"
"$prog" "$T/file" "$q" >"$T/out5" 2>"$T/err5"
check "a store that cannot be opened exits 1 (exit $?)" test $? -eq 1
check "and the message names the path" grep -q "$T/file" "$T/err5"

finish
