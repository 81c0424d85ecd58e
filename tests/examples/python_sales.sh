#!/bin/sh
# examples/python/sales_frame.py does what README.md says: the first run
# computes the slow query's result and keeps it, a second run (another
# process) reads it without running the query, a herd of processes runs
# it once, and a change to the orders computes it again. The README's
# Python fragment is an excerpt of the script, line for line.
# Usage: [LARDER_CC=compiler] python_sales.sh BUILD_DIR SOURCE_DIR
#        [SANITIZED(ON|OFF)]
# (under the sanitizer build the compiler's runtimes are preloaded into
# the interpreter, as for the Python tests: python/tests/sanitized.sh)
build=$1
src=$2
sanitized=${3:-OFF}
if [ ! -d "$build" ] || [ ! -f "$src/examples/python/sales_frame.py" ]; then
	echo "usage: $0 BUILD_DIR SOURCE_DIR [ON|OFF]" >&2
	exit 2
fi
# Debian's interpreter, where Debian's pandas lives (the python3 first on
# PATH may be another one).
py=/usr/bin/python3
larder=$build/cli/larder
example=$src/examples/python/sales_frame.py
. "$(dirname "$0")/../checks.sh"
[ -x "$py" ] || skip_all "the Python example: no $py"
[ -d "$build/python/larder" ] ||
	skip_all "the Python example: the binding was not built (python3-dev missing?)"
[ -x "$larder" ] || skip_all "the Python example: no $larder"
. "$src/python/tests/sanitized.sh"
sanitized_python "$sanitized" "${LARDER_CC:-cc}" ||
	skip_all "the Python example: $sanitized_why"
export PYTHONPATH="$build/python${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONDONTWRITEBYTECODE=1
"$py" -c 'import pandas' 2>/dev/null || skip_all "the Python example: no pandas for $py (python3-pandas)"
unset LARDER_DIR XDG_CACHE_HOME

T=$(mktemp -d "${TMPDIR:-/tmp}/larder-example-py.XXXXXX") || exit 2
pids=""
# Stops the herd's processes if the test is interrupted, then removes
# its files.
cleanup() {
	for pid in $pids; do
		kill "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
	rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
# Under a failure: the stderr of each run.
show_failure() {
	show_files "$T"/err*
}
# The store's count of loads run (a loaded SQL result is one fill).
fills() {
	"$larder" --dir "$1" stat --json | sed -n 's/.*"fills":\([0-9]*\).*/\1/p'
}

# 2000 orders keep the query short here; the README's run has 20000.
"$py" "$example" "$T/store" "$T/sales.db" 2000 >"$T/out1" 2>"$T/err1"
check "the first run exits 0 (exit $?)" test $? -eq 0
check "it prints the last days' running totals" \
	grep -q '^ *364 *2000 *[0-9.]*$' "$T/out1"
check "the first run loaded the result (fills: $(fills "$T/store"))" \
	test "$(fills "$T/store")" = 1

"$py" "$example" "$T/store" "$T/sales.db" >"$T/out2" 2>"$T/err2"
check "a second process exits 0 (exit $?)" test $? -eq 0
check "and prints the same frame" cmp -s "$T/out1" "$T/out2"
check "without running the query again (fills: $(fills "$T/store"))" \
	test "$(fills "$T/store")" = 1

# A herd on a new store: four processes at once create it, and load
# the result once.
for i in 1 2 3 4; do
	"$py" "$example" "$T/herd" "$T/sales.db" >"$T/herd$i" 2>"$T/errh$i" &
	pids="$pids $!"
done
status=0
for pid in $pids; do
	wait "$pid" || status=1
done
pids=""
check "a herd of four processes all exit 0" test "$status" -eq 0
same=0
for i in 1 2 3 4; do
	cmp -s "$T/out1" "$T/herd$i" && same=$((same + 1))
done
check "all four print the frame ($same of 4 do)" test "$same" -eq 4
check "the herd ran the query once (fills: $(fills "$T/herd"))" \
	test "$(fills "$T/herd")" = 1

"$py" -c 'import sqlite3, sys
con = sqlite3.connect(sys.argv[1])
with con:
    con.execute("INSERT INTO orders VALUES (364, ?, 10.0)", ("emea",))
con.close()' "$T/sales.db" 2>"$T/err3"
"$py" "$example" "$T/store" "$T/sales.db" >"$T/out3" 2>>"$T/err3"
check "after a new order the run exits 0 (exit $?)" test $? -eq 0
check "it computes the result again (fills: $(fills "$T/store"))" \
	test "$(fills "$T/store")" = 2
check "and the frame counts the new order" grep -q '^ *364 *2001 ' "$T/out3"

# README.md's ```python fragment: its lines are the script's, in order;
# "# ..." marks lines left out. Blank lines are free.
"$py" - "$src/README.md" "$example" >"$T/out4" 2>"$T/err4" <<'PY'
import sys
readme, example = open(sys.argv[1]).read(), open(sys.argv[2]).read()
src = [l.rstrip() for l in example.splitlines()]
blocks = readme.split("```python\n")[1:]
if not blocks:
    sys.exit("README.md has no ```python fragment")
for b in blocks:
    pos, gap = -1, True
    for line in b.split("```")[0].splitlines():
        line = line.rstrip()
        if not line.strip():
            continue
        if line.strip() == "# ...":
            gap = True
            continue
        later = [i for i in range(pos + 1, len(src)) if src[i] == line]
        nxt = pos + 1
        while nxt < len(src) and not src[nxt].strip():
            nxt += 1
        if gap and later:
            pos = later[0]
        elif not gap and nxt < len(src) and src[nxt] == line:
            pos = nxt
        else:
            sys.exit("README.md: not %s line of the example: %s"
                     % ("a later" if gap else "the next", line))
        gap = False
PY
check "README.md's Python fragment is an excerpt of the script" test $? -eq 0

finish
