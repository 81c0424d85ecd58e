#!/bin/sh
# Run every test in build dir $1 with CTest, then print one summary line
# "N passed, N failed" counting the individual test cases of every program.
build=${1:-build}
log=$(mktemp)
ctest --test-dir "$build" --output-on-failure -j 2 2>&1 | tee "$log"
rc=$?
# Every harness program prints "N passed, N failed" as its last line.
awk '/^[0-9]+ passed, [0-9]+ failed/ { p += $1; f += $3 }
     END { if (p + f == 0) exit 0; printf "cases: %d passed, %d failed\n", p, f }' "$log"
ctest_line=$(grep -E 'tests passed, [0-9]+ tests failed out of' "$log" | tail -n 1)
rm -f "$log"
if [ -n "$ctest_line" ]; then
	# CTest's own line says how many test programs passed; say it plainly.
	total=$(echo "$ctest_line" | sed -E 's/.* out of ([0-9]+).*/\1/')
	failed=$(echo "$ctest_line" | sed -E 's/.*, ([0-9]+) tests failed.*/\1/')
	echo "$((total - failed)) passed, $failed failed"
fi
exit $rc
