#!/bin/sh
# The README's first command's walk-through (scripts/demo.sh) runs to the
# end from a build directory given relative to the repository, as `make
# demo` gives it, and tells its whole story. The demo checks each of its
# own claims (outcomes, bytes) and fails loudly otherwise.
. "$(dirname "$0")/lib.sh" "$1"
# A tree like the repository's, with the build directory as "b" in it.
mkdir -p "$T/top/scripts"
cp "$(dirname "$0")/../../scripts/demo.sh" "$T/top/scripts/"
ln -s "$(cd "$(dirname "$LARDER")/.." && pwd)" "$T/top/b"

expect_rc 0 "the demo runs to the end" sh -c 'cd "$1" && sh scripts/demo.sh b' sh "$T/top"
expect_out "^3\. Cold: ran the report" "a cold load of the file source"
expect_out "^4\. Warm: " "a warm hit"
expect_out "^6\. Stale entry detected: sales.csv's content changed" "the changed file is detected"
expect_out "^9\. Cold: ran the query" "a cold SQL load"
expect_out "^12\. Stale entry detected: the table's change counter moved" "the updated table is detected"
expect_out "^15\. The next read caught the bad checksum" "a damaged entry is caught"
expect_out "^Counters: 5 loads, 4 hits, 1 damaged entry caught" "the counters add up"
check "the demo leaves no temp directory" sh -c '! grep -o "/[^ ]*larder-demo\.[A-Za-z0-9]*" "$1" | head -1 | xargs -r test -e' sh "$T/out"
finish
