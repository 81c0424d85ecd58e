#!/bin/sh
# Every C fragment of README.md (a ```c block) is a true excerpt of the
# example: its lines are the example's lines, in the example's order, and
# lines the example has between two of them are left out only where the
# fragment says so with a line `/* ... */` (or `/* ... what is left out
# */`, or `...`). Blank lines are free. So the fragment shows nothing the
# example does not do, and uses no name the example does not define.
# Usage: excerpt.sh README.md examples/cache_query.c
readme=$1
example=$2
if [ ! -r "$readme" ] || [ ! -r "$example" ]; then
	echo "usage: $0 README.md EXAMPLE.c" >&2
	exit 2
fi
awk -v ex="$example" -v exname="${example##*/}" '
function trim(s) {
	sub(/[ \t\r]+$/, "", s)
	return s
}
function blank(s) {
	return s ~ /^[ \t]*$/
}
BEGIN {
	n = 0
	while ((getline line < ex) > 0)
		src[++n] = trim(line)
	close(ex)
}
/^```c[ \t]*$/ {
	inblock = 1
	blocks++
	pos = 0     # the example line the last fragment line matched
	skip = 1    # whether the next line may come later than pos + 1
	lines = 0
	badblock = 0
	next
}
inblock && /^```/ {
	inblock = 0
	if (badblock)
		fail++
	else {
		pass++
		printf "ok - C fragment %d of README.md (%d lines) is an excerpt of %s\n", blocks, lines, exname
	}
	next
}
inblock {
	l = trim($0)
	if (blank(l))
		next
	if (l ~ /^[ \t]*(\/\* \.\.\.([ \t].*)?\*\/|\.\.\.)$/) {
		skip = 1
		next
	}
	found = 0
	if (skip) {
		for (i = pos + 1; i <= n; i++)
			if (src[i] == l) {
				found = i
				break
			}
	} else {
		for (i = pos + 1; i <= n && blank(src[i]); i++)
			;
		if (i <= n && src[i] == l)
			found = i
	}
	if (!found) {
		if (!badblock)
			printf "FAIL - C fragment %d of README.md: line %d is not %s of %s:\n    %s\n", blocks, NR, skip ? "a later line" : "the next line (mark a gap with /* ... */)", exname, l
		badblock = 1
		skip = 1
		next
	}
	pos = found
	skip = 0
	lines++
}
END {
	if (n == 0) {
		print "FAIL - cannot read " ex
		fail++
	}
	if (blocks == 0) {
		print "FAIL - README.md has no C fragment (```c block)"
		fail++
	}
	printf "%d passed, %d failed, 0 skipped\n", pass, fail
	exit fail != 0
}
' "$readme"
