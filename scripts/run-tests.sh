#!/bin/sh
# Run every test program in build dir $1 under CTest, then print one line
# "N passed, N failed, N skipped" that counts the individual test cases:
# every test program prints such a line of its own (a program or script
# that prints no "skipped" count skipped nothing), and CTest's log keeps
# them. Exits non-zero on any failure. Arguments after the build dir go to
# ctest (e.g. -R REGEX to run some of the programs).
build=${1:-build}
[ $# -gt 0 ] && shift
# The tests make files and stores with the modes a default umask gives;
# a caller's stricter umask must not change what they expect.
umask 022
log="$build/Testing/Temporary/LastTest.log"
# A log left by an earlier run must not be counted as this one's.
rm -f "$log"
ctest --test-dir "$build" --output-on-failure -j 2 --timeout 1200 "$@"
rc=$?
passed=0
failed=0
skipped=0
if [ -f "$log" ]; then
	set -- $(awk '/^[^ ]*:? ?[0-9]+ passed, [0-9]+ failed/ {
			for (i = 1; i <= NF; i++) {
				if ($(i+1) == "passed,") p += $i
				if ($(i+1) == "failed" || $(i+1) == "failed,") f += $i
				if ($(i+1) == "skipped") s += $i
			}
		}
		END { print p + 0, f + 0, s + 0 }' "$log")
	passed=$1
	failed=$2
	skipped=$3
fi
# A program that crashed before printing its line still fails the run.
if [ "$rc" -ne 0 ] && [ "$failed" -eq 0 ]; then
	failed=1
fi
echo "$passed passed, $failed failed, $skipped skipped"
if [ "$failed" -ne 0 ] && [ "$rc" -eq 0 ]; then
	rc=1
fi
exit $rc
