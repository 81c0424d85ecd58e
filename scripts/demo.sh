#!/bin/sh
# The walk-through behind `make demo`: what larder does, told in one plain
# line per step, on an embedded default — a temporary local store, a
# generated file and a SQLite database. Nothing outside a temporary
# directory is touched; it is removed at the end.
set -eu
build=${1:-build}
larder="$build/cli/larder"
[ -x "$larder" ] || { echo "demo: $larder is not built (run make)" >&2; exit 1; }
larder=$(cd "$(dirname "$larder")" && pwd)/larder # the demo works in a temp dir
command -v sqlite3 >/dev/null || { echo "demo: sqlite3 is missing (run scripts/deps.sh)" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/larder-demo.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM
store="$work/store"
export LARDER_DIR="$store"
cd "$work"

ms() { date +%s%N; }
elapsed() { # milliseconds since $1, as "1234 ms" or "1.23 s"
	e=$((($(ms) - $1) / 1000000))
	if [ "$e" -ge 1000 ]; then
		printf '%d.%02d s' $((e / 1000)) $((e % 1000 / 10))
	else
		printf '%d ms' "$e"
	fi
}
die() { echo "demo: $*" >&2; exit 1; }

# Outcomes seen, for the counters at the end.
loads=0 hits=0 caught=0 step=0
say() { step=$((step + 1)); echo "$step. $*"; }
# The outcome of a `larder run -v` / `larder sql -v`: the first word of its
# last line on stderr ("hit", "filled", ...).
outcome() { tail -n 1 "$1" | cut -d' ' -f1; }
count() {
	case $1 in
	hit) hits=$((hits + 1)) ;;
	filled) loads=$((loads + 1)) ;;
	*) die "unexpected outcome '$1'" ;;
	esac
}

echo "larder demo — a shared cache for expensive data"
echo "Every process (and every host sharing the directory) asks larder; the first"
echo "one loads, the others get the same bytes from the cache."
echo

"$larder" init
say "Started from an empty cache in $store."

# ---- A file and a slow report computed from it -------------------------
awk 'BEGIN { srand(7); for (i = 1; i <= 400000; i++)
	printf "%d,customer-%d,%.2f\n", i, int(rand() * 5000), rand() * 100 }' >sales.csv
say "Generated the source sales.csv: 400000 rows, $(wc -c <sales.csv) bytes."

# The "expensive load": total sales per customer, top 3. The shell command
# is memoized by larder run; --input names the file it depends on.
report() {
	"$larder" run -v --input sales.csv -- sh -c \
		'sort -t, -k2,2 sales.csv | awk -F, "{ s[\$2] += \$3 } END { for (c in s) printf \"%s %.2f\\n\", c, s[c] }" | sort -k2,2nr | head -3' \
		>"$1" 2>"$work/err"
}

t=$(ms)
report out1.txt
o=$(outcome "$work/err") && count "$o"
[ "$o" = filled ] || die "the first report was not a load ($o)"
say "Cold: ran the report on sales.csv in $(elapsed "$t") and cached its output (top customer: $(head -1 out1.txt))."

t=$(ms)
report out2.txt
o=$(outcome "$work/err") && count "$o"
[ "$o" = hit ] || die "the second report was not a hit ($o)"
cmp -s out1.txt out2.txt || die "the cached report differs"
say "Warm: the same report came from the cache in $(elapsed "$t"), byte for byte the same: sales.csv had not changed, so the report did not run."

# Change one row: customer 1's sale becomes huge.
sed -i '1s/.*/1,customer-1,99999.00/' sales.csv
say "Changed one row of sales.csv (customer-1 made a big sale)."

t=$(ms)
report out3.txt
o=$(outcome "$work/err") && count "$o"
[ "$o" = filled ] || die "the changed source was not reloaded ($o)"
cmp -s out1.txt out3.txt && die "the report did not change"
say "Stale entry detected: sales.csv's content changed, so the report ran again ($(elapsed "$t")); top customer now: $(head -1 out3.txt)."

t=$(ms)
report out4.txt
o=$(outcome "$work/err") && count "$o"
[ "$o" = hit ] || die "the new report was not a hit ($o)"
cmp -s out3.txt out4.txt || die "the cached report differs"
say "Warm again: the new report from the cache in $(elapsed "$t")."

# ---- A SQL table -------------------------------------------------------
sqlite3 shop.db <<'EOF'
CREATE TABLE orders(id INTEGER PRIMARY KEY, region TEXT, amount REAL);
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 300000)
INSERT INTO orders SELECT i, 'region-' || (i % 7), (i * 37 % 1000) / 10.0 FROM n;
EOF
"$larder" sql track --db shop.db orders
say "Created the SQLite database shop.db with 300000 orders; 'larder sql track' gave the table a change counter."

query="SELECT region, COUNT(*) AS orders, ROUND(SUM(amount), 2) AS total FROM orders GROUP BY region ORDER BY total DESC"
sql() { "$larder" sql -v --db shop.db --table orders "$query" >"$1" 2>"$work/err"; }

t=$(ms)
sql q1.csv
o=$(outcome "$work/err") && count "$o"
[ "$o" = filled ] || die "the first query was not a load ($o)"
say "Cold: ran the query in $(elapsed "$t") and cached its $(($(wc -l <q1.csv) - 1)) rows (CSV; the top region: $(sed -n 2p q1.csv | tr -d '\r'))."

t=$(ms)
sql q2.csv
o=$(outcome "$work/err") && count "$o"
[ "$o" = hit ] || die "the second query was not a hit ($o)"
cmp -s q1.csv q2.csv || die "the cached query result differs"
say "Warm: the same query from the cache in $(elapsed "$t"); the database only answered 'has the table changed?'."

sqlite3 shop.db "UPDATE orders SET amount = 100000 WHERE id = 1"
say "Updated one row in the orders table."

t=$(ms)
sql q3.csv
o=$(outcome "$work/err") && count "$o"
[ "$o" = filled ] || die "the changed table was not reloaded ($o)"
cmp -s q1.csv q3.csv && die "the query result did not change"
say "Stale entry detected: the table's change counter moved, so the query ran again ($(elapsed "$t")); the top region is now $(sed -n 2p q3.csv | tr -d '\r')."

t=$(ms)
sql q4.csv
o=$(outcome "$work/err") && count "$o"
[ "$o" = hit ] || die "the new result was not a hit ($o)"
cmp -s q3.csv q4.csv || die "the cached query result differs"
say "Warm again in $(elapsed "$t")."

# ---- Damage on disk ----------------------------------------------------
# The query's current entry: the newest one whose payload has q3.csv's
# size. The payload is the end of the file.
qsize=$(wc -c <q3.csv)
path=$("$larder" ls --json | grep "\"size\":$qsize," |
	sed -n 's/.*"created_ns":\([0-9]*\).*"path":"\([^"]*\)".*/\1 \2/p' |
	sort -n | tail -1 | cut -d' ' -f2)
[ -n "$path" ] || die "the query's entry was not found"
printf 'X' | dd of="$path" bs=1 seek=$(($(stat -c %s "$path") - qsize / 2)) \
	conv=notrunc status=none
say "Flipped one byte of the query's cached file on disk (as a failing disk or network might)."

t=$(ms)
sql q5.csv
o=$(outcome "$work/err") && count "$o"
[ "$o" = filled ] || die "the damaged entry was served ($o)"
caught=$(ls "$store/quarantine" | wc -l)
cmp -s q3.csv q5.csv || die "the reloaded result differs"
say "The next read caught the bad checksum, moved the file to quarantine/ and ran the query again ($(elapsed "$t")): damaged bytes are never returned."

"$larder" verify >/dev/null
say "'larder verify' checked every entry left in the cache: all good."

echo
echo "Counters: $loads loads, $hits hits, $caught damaged entry caught, 0 stale or wrong answers."
echo "Done. The cache was temporary and is removed now; see README.md for the tool and the C API."
