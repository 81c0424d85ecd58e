#!/bin/sh
# Run every test program in build dir $1 under CTest, then print one line
# "N passed, N failed" that counts the individual test cases: every test
# program prints such a line of its own, and CTest's log keeps them.
build=${1:-build}
# The tests make files and stores with the modes a default umask gives;
# a caller's stricter umask must not change what they expect.
umask 022
ctest --test-dir "$build" --output-on-failure -j 2 --timeout 1200
rc=$?
log="$build/Testing/Temporary/LastTest.log"
passed=0
failed=0
if [ -f "$log" ]; then
	set -- $(awk '/^[^ ]*:? ?[0-9]+ passed, [0-9]+ failed/ {
			for (i = 1; i <= NF; i++) {
				if ($(i+1) == "passed,") p += $i
				if ($(i+1) == "failed" || $(i+1) == "failed,") f += $i
			}
		}
		END { print p + 0, f + 0 }' "$log")
	passed=$1
	failed=$2
fi
# A program that crashed before printing its line still fails the run.
if [ "$rc" -ne 0 ] && [ "$failed" -eq 0 ]; then
	failed=1
fi
echo "$passed passed, $failed failed"
exit $rc
