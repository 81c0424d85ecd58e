#!/bin/sh
# scripts/check-layers.sh can fail: on a copy of the tree, each planted
# fault must make it exit 1 naming the file and the include. The faults:
# an upward include (store -> upkeep), a sibling include (fill -> upkeep),
# a circle between two store files, and an internal header in cli/.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM
fails=0

copy() {
	rm -rf "$tmp/t"
	mkdir -p "$tmp/t"
	for d in src cli tests bench tools fuzz scripts; do
		[ -d "$top/$d" ] && cp -R "$top/$d" "$tmp/t/$d"
	done
}

# plant FILE AFTER LINE: add LINE after the first line matching AFTER.
plant() {
	awk -v after="$2" -v line="$3" \
	    '{ print } !done && index($0, after) == 1 { print line; done = 1 }' \
	    "$tmp/t/$1" >"$tmp/x" && mv "$tmp/x" "$tmp/t/$1"
	grep -qF "$3" "$tmp/t/$1" || { echo "could not plant in $1"; exit 1; }
}

# expect WHAT PATTERN: the check fails and says PATTERN.
expect() {
	if out=$(sh "$tmp/t/scripts/check-layers.sh" 2>&1); then
		echo "FAIL $1: check-layers passed"
		fails=$((fails + 1))
	elif ! printf '%s\n' "$out" | grep -qE "$2"; then
		echo "FAIL $1: check-layers failed without saying '$2':"
		printf '%s\n' "$out"
		fails=$((fails + 1))
	else
		echo "ok   $1"
	fi
}

copy
if ! sh "$tmp/t/scripts/check-layers.sh" >/dev/null; then
	echo "FAIL the unplanted copy does not pass"
	exit 1
fi

copy
plant src/store/read.c '#include "read.h"' '#include "gc.h"'
expect "upward include" 'src/store/read.c: includes "gc.h" .*upkeep'

copy
plant src/fill/fill.c '#include "publish.h"' '#include "sweep.h"'
expect "sibling include" 'src/fill/fill.c: includes "sweep.h"'

copy
plant src/store/head.c '#include "head.h"' '#include "walk.h"'
expect "circle of includes" 'circle of includes: src/store/(head|walk) -> '

copy
plant cli/out.c '#include "cli.h"' '#include "store.h"'
expect "internal header in cli/" 'cli/out.c: includes "store.h"'

echo "$fails failed"
[ "$fails" -eq 0 ]
