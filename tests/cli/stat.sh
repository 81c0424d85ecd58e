#!/bin/sh
# larder stat: store-wide counters and usage, for people, --json and
# --prometheus (checked against the text exposition format's grammar);
# bad arguments are usage errors.
. "$(dirname "$0")/lib.sh" "$1"

L init >/dev/null 2>&1 || bail "cannot init"
printf 'aaaa' | L put k1
printf 'bbbbbbbb' | L put k2
printf 'cc' | L --ns other put k3
L get k1 >/dev/null
L get nope >/dev/null 2>&1

expect_rc 0 "stat for people" L stat
expect_out "^counters$" "a counters heading"
# A hit writes nothing, counters included (docs/operations.md): the
# get that hit is not counted, the one that missed is.
expect_out "^  requests +1$" "one request counted: the miss's"
expect_out "^  hits +0$" "the one-shot hit is not counted"
expect_out "^  misses +1$" "the miss"
expect_out "^  published +3$" "three entries published"
expect_out "^usage$" "a usage heading"
expect_out " 2  default$" "two entries in default"
expect_out " 1  other$" "one entry in other"
expect_out " 3  \(total\)$" "three in all"

expect_rc 0 "stat --json" L stat --json
check "stat --json is valid JSON" json_ok "$T/out"
check "requests = hits + misses + waits" test "$(json_get "$T/out" 'j["counters"]["requests"] == j["counters"]["hits"] + j["counters"]["misses"] + j["counters"]["waits"]')" = True
check "--json usage per namespace" test "$(json_get "$T/out" '"%d %d" % (j["namespaces"]["default"]["entries"], j["namespaces"]["other"]["entries"])')" = "2 1"
# The bytes are the entry files', as a walk of the store finds them.
walked=$(find "$S/ns/default/e" -type f -name '????????????????????????????????' -printf '%s\n' | awk '{s += $1} END {print s}')
check "--json bytes equal the entry files' sizes" test "$(json_get "$T/out" 'j["namespaces"]["default"]["bytes"]')" = "$walked"
check "--json shards_bad is 0" test "$(json_get "$T/out" 'j["shards_bad"]')" = 0

expect_rc 0 "stat --ns other --json" L --ns other stat --json
check "--ns shows only that namespace" test "$(json_get "$T/out" '",".join(j["namespaces"])')" = other

# The exposition format: HELP and TYPE before a metric's samples, each
# metric once and contiguous, names and labels by the grammar, label
# values escaped (\\ \" \n only), values numbers. Prints the samples as
# "name|label=value,...|value" for the checks below.
cat >"$T/promcheck.py" <<'PY'
import re, sys
name = r'[a-zA-Z_:][a-zA-Z0-9_:]*'
lval = r'"(?:[^"\\\n]|\\\\|\\"|\\n)*"'
lpair = r'[a-zA-Z_][a-zA-Z0-9_]*=' + lval
sample = re.compile(r'^(' + name + r')(?:\{(' + lpair + r'(?:,' + lpair +
                    r')*)\})? (-?[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?'
                    r'|NaN|[+-]Inf)$')
label = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)=(' + lval + ')')
typed, helped, done, cur = {}, set(), set(), None
# The format is UTF-8: one bad byte makes a scrape fail.
try:
    text = sys.stdin.buffer.read().decode('utf-8')
except UnicodeDecodeError as e:
    sys.exit('not UTF-8: %s' % e)
sys.stdout.reconfigure(encoding='utf-8')
lines = text.split('\n')
if lines[-1] == '':
    lines.pop()
for n, line in enumerate(lines, 1):
    def bad(why):
        sys.exit('line %d: %s: %r' % (n, why, line))
    m = re.match(r'^# (HELP|TYPE) (' + name + r') (.+)$', line)
    if m:
        kind, metric, rest = m.groups()
        if kind == 'TYPE':
            if rest not in ('counter', 'gauge', 'untyped', 'summary',
                            'histogram'):
                bad('bad type')
            if metric in typed:
                bad('second TYPE')
            typed[metric] = rest
        else:
            if metric in helped:
                bad('second HELP')
            helped.add(metric)
        continue
    if line.startswith('#') or not line:
        bad('stray line')
    m = sample.match(line)
    if not m:
        bad('not a sample')
    metric, labels, value = m.groups()
    if metric not in typed:
        bad('sample before its TYPE')
    if typed[metric] == 'counter' and not metric.endswith('_total'):
        bad('counter without _total')
    if metric != cur:
        if metric in done:
            bad('metric not contiguous')
        if cur:
            done.add(cur)
        cur = metric
    lv = []
    for k, v in label.findall(labels or ''):
        v = re.sub(r'\\(.)', lambda x: {'n': '\n'}.get(x.group(1),
                                                       x.group(1)), v[1:-1])
        lv.append('%s=%s' % (k, v))
    print('%s|%s|%s' % (metric, ','.join(lv), value))
PY
promcheck() {
	python3 "$T/promcheck.py" <"$T/out" >"$T/samples"
}
expect_rc 0 "stat --prometheus" L stat --prometheus
real=$(cd "$S" && pwd -P)
check "--prometheus follows the exposition format" promcheck
check "a counter with its store label" grep -qxF "larder_misses_total|store=$real|1" "$T/samples"
check "requests as a counter" grep -qxF "larder_requests_total|store=$real|1" "$T/samples"
check "usage bytes gauge per namespace" grep -qxF "larder_usage_bytes|store=$real,ns=default|$walked" "$T/samples"
check "usage entries gauge per namespace" grep -qxF "larder_usage_entries|store=$real,ns=other|1" "$T/samples"
check "every sample has the store label" test "$(grep -vc '|store=' "$T/samples")" = 0
check "HELP and TYPE for counters" grep -qxF "# TYPE larder_hits_total counter" "$T/out"

# A store whose path needs escaping in a label value.
W="$T/we\"ird\\dir"
"$LARDER" --dir "$W" init >/dev/null 2>&1
printf x | "$LARDER" --dir "$W" put k
expect_rc 0 "stat --prometheus on an odd path" "$LARDER" --dir "$W" stat --prometheus
check "an odd path is escaped by the format" promcheck
wreal=$(cd "$W" && pwd -P)
check "the odd path reads back exactly" grep -qxF "larder_published_total|store=$wreal|1" "$T/samples"
check "the quote and backslash are escaped" grep -qF 'we\"ird\\dir"}' "$T/out"

# A store whose path is not UTF-8: each bad byte shows as U+FFFD, as a
# UTF-8 decoder would show it, and the output stays UTF-8.
B="$T/bad$(printf '\377\376')dir"
"$LARDER" --dir "$B" init >/dev/null 2>&1
printf x | "$LARDER" --dir "$B" put k
expect_rc 0 "stat --prometheus on a path that is not UTF-8" "$LARDER" --dir "$B" stat --prometheus
cp "$T/out" "$T/bad.prom"
check "a path that is not UTF-8 still gives the exposition format" promcheck
breal="$(cd "$T" && pwd -P)/bad$(printf '\357\277\275\357\277\275')dir"
check "its bad bytes read back as U+FFFD" grep -qxF "larder_published_total|store=$breal|1" "$T/samples"

# promtool (Debian package prometheus), where installed: the parser of
# Prometheus itself. It also lints names, and two of ours predate its
# rules (larder_counter_files_bad, larder_fill_wait_ms_total): lint
# findings (exit 3) are not failures, a parse error (exit 1) is.
promtool_ok() {
	promtool check metrics <"$1" >"$T/promtool" 2>&1
	prc=$?
	[ "$prc" -eq 0 ] || [ "$prc" -eq 3 ]
}
if command -v promtool >/dev/null 2>&1; then
	L stat --prometheus >"$T/store.prom" 2>/dev/null
	check "promtool parses stat --prometheus" promtool_ok "$T/store.prom"
	check "promtool parses it on a path that is not UTF-8" promtool_ok "$T/bad.prom"
else
	skip "promtool is not installed (apt-get install prometheus)"
fi

# Caps beside the usage. None yet: no cap columns, null in JSON, no
# limit samples.
nsbytes() { find "$S/ns/$1/e" -type f -name '????????????????????????????????' -printf '%s\n' | awk '{s += $1} END {print s + 0}'; }
ob=$(nsbytes other)
tb=$(find "$S/ns" -path '*/e/*' -type f -name '????????????????????????????????' -printf '%s\n' | awk '{s += $1} END {print s}')
expect_rc 0 "stat without caps" L stat
check "no cap columns without caps" test "$(grep -c 'max_' "$T/out")" = 0
check "no watermarks line while they are off" test "$(grep -c 'watermarks' "$T/out")" = 0
expect_rc 0 "stat --json without caps" L stat --json
check "--json: no store cap is null, watermarks off are null" test "$(json_get "$T/out" 'j["limits"] == {"max_bytes": None, "max_entries": None, "watermarks": None}')" = True
check "--json: no namespace cap is null" test "$(json_get "$T/out" 'j["namespaces"]["other"]["limits"] == {"max_bytes": None, "max_entries": None}')" = True
check "--json: the store's usage is the sum of the entry files" test "$(json_get "$T/out" '"%d %d" % (j["usage"]["bytes"], j["usage"]["entries"])')" = "$tb 3"
expect_rc 0 "stat --prometheus without caps" L stat --prometheus
check "--prometheus without caps follows the format" promcheck
check "no limit samples without caps" test "$(grep -c '^larder_limit_' "$T/samples")" = 0

expect_rc 0 "store caps" L config --max-bytes 1K --max-entries 4
expect_rc 0 "a namespace byte cap below its usage" L config --ns other --max-bytes 100
# Shares are cut to a tenth of a percent, not rounded.
pct() { echo "$(($1 * 1000 / $2 / 10)).$(($1 * 1000 / $2 % 10))%"; }
expect_rc 0 "stat with caps" L stat
expect_out "^ +bytes +max_bytes +used +entries +max_entries +used +namespace$" "cap columns in the heading"
expect_out "^ +[0-9]+ B +- +- +2 +- +- +default$" "an uncapped namespace shows -"
expect_out "^ +$ob B +100 B +$(pct "$ob" 100) +1 +- +- +other$" "a namespace over its byte cap, exactly"
expect_out "^ +$tb B +1.0 KiB +$(pct "$tb" 1024) +3 +4 +75.0% +\(total\)$" "the store's caps beside its total"
expect_rc 0 "stat --ns other with caps" L --ns other stat
expect_out "^ +bytes +max_bytes +used +entries +namespace$" "only the cap columns that its rows use"
check "no store total with --ns" test "$(grep -c 'total' "$T/out")" = 0

expect_rc 0 "stat --json with caps" L stat --json
check "--json store caps exactly" test "$(json_get "$T/out" 'j["limits"] == {"max_bytes": 1024, "max_entries": 4, "watermarks": None}')" = True
check "--json namespace caps exactly" test "$(json_get "$T/out" 'j["namespaces"]["other"]["limits"] == {"max_bytes": 100, "max_entries": None}')" = True
check "--json an uncapped namespace" test "$(json_get "$T/out" 'j["namespaces"]["default"]["limits"] == {"max_bytes": None, "max_entries": None}')" = True

expect_rc 0 "stat --prometheus with caps" L stat --prometheus
check "--prometheus with caps follows the exposition format" promcheck
check "the store's byte cap, without an ns label" grep -qxF "larder_limit_bytes|store=$real|1024" "$T/samples"
check "the store's entry cap, without an ns label" grep -qxF "larder_limit_entries|store=$real|4" "$T/samples"
check "a namespace's byte cap, with its ns label" grep -qxF "larder_limit_bytes|store=$real,ns=other|100" "$T/samples"
check "caps that are not set are not exported" test "$(grep -c '^larder_limit_' "$T/samples")" = 3
check "HELP for larder_limit_bytes" grep -q "^# HELP larder_limit_bytes ." "$T/out"
check "TYPE gauge for larder_limit_entries" grep -qxF "# TYPE larder_limit_entries gauge" "$T/out"
# usage / limit pairs by labels: the namespace's usage sample has the same
# label set as its cap.
check "a namespace's usage and cap share their labels" grep -qxF "larder_usage_bytes|store=$real,ns=other|$ob" "$T/samples"
expect_rc 0 "stat --ns default --prometheus" L --ns default stat --prometheus
check "--ns --prometheus follows the format" promcheck
check "--ns: the store's cap stays, other namespaces' go" test "$(grep '^larder_limit_' "$T/samples" | tr '\n' ' ')" = "larder_limit_bytes|store=$real|1024 larder_limit_entries|store=$real|4 "

expect_rc 0 "watermarks on" L config --watermarks 10,7,3
expect_rc 0 "stat with watermarks" L stat
expect_out "^free-space watermarks: run 10%, cull 7%, stop 3% of the filesystem$" "the watermarks are shown when set"
expect_rc 0 "stat --json with watermarks" L stat --json
check "--json watermarks" test "$(json_get "$T/out" 'j["limits"]["watermarks"] == {"run": 10, "cull": 7, "stop": 3}')" = True
expect_rc 0 "caps and watermarks off again" L config --max-bytes 0 --max-entries 0 --watermarks 0,0,0
expect_rc 0 "the namespace cap off again" L config --ns other --max-bytes 0

# A cap set at init shows at once.
I="$T/initcapped"
"$LARDER" --dir "$I" init --max-bytes 2M >/dev/null 2>&1
expect_rc 0 "stat --prometheus on a store capped at init" "$LARDER" --dir "$I" stat --prometheus
ireal=$(cd "$I" && pwd -P)
check "init --max-bytes 2M is exported exactly" grep -qxF "larder_limit_bytes{store=\"$ireal\"} 2097152" "$T/out"
expect_rc 0 "stat --json on it" "$LARDER" --dir "$I" stat --json
check "init --max-bytes 2M in --json" test "$(json_get "$T/out" 'j["limits"]["max_bytes"]')" = 2097152

# A damaged counter file is reported, not summed. Which shard a process
# writes depends on its pid, so take whichever holds published counts.
f=$(grep -l '^published [0-9]*$' "$S"/stats/shard-* | head -1)
v=$(sed -n 's/^published \([0-9]*\)$/\1/p' "$f")
check "a shard holds published counts" test -n "$f" -a -n "$v"
sed -i "s/^published $v\$/published $((v + 5))/" "$f"
expect_rc 0 "stat with a damaged counter file" L stat --json
check "shards_bad counts it" test "$(json_get "$T/out" 'j["shards_bad"]')" = 1
check "its counts are left out" test "$(json_get "$T/out" 'j["counters"]["published"]')" = $((3 - v))
expect_rc 0 "stat says so to people" L stat
expect_out "failed their check" "the human output says a file failed its check"

# A read-only store (a read-only bind mount in a private mount namespace,
# where this machine allows one): gets work, the failed counter flush is
# said at info only, and stat still reads.
ro() {
	unshare -m sh -c 'mount --bind "$1" "$1" && mount -o remount,ro,bind "$1" && shift && exec "$@"' - "$S" "$@"
}
if unshare -m sh -c 'mount --bind "$1" "$1" && mount -o remount,ro,bind "$1" && ! touch "$1/x"' - "$S" 2>/dev/null; then
	before=$(L stat --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["counters"]["requests"])')
	expect_rc 0 "a get on a read-only store" ro "$LARDER" --dir "$S" get k1
	check "its payload" test "$(cat "$T/out")" = aaaa
	check "no warning about the counters" test ! -s "$T/err"
	expect_rc 0 "the same with --log-level info" ro "$LARDER" --dir "$S" --log-level info get k1
	check "a hit does not even try to write counters" test ! -s "$T/err"
	expect_rc 1 "a miss with --log-level info" ro "$LARDER" --dir "$S" --log-level info get nope
	expect_err "cannot write counters.*(Read-only|read-only)" "info says why the counts are not kept"
	expect_rc 0 "stat on a read-only store" ro "$LARDER" --dir "$S" stat --json
	check "the read-only gets are not counted" test "$(json_get "$T/out" 'j["counters"]["requests"]')" = "$before"
else
	skip "a read-only store: no read-only bind mount here"
fi

expect_rc 2 "--json with --prometheus" L stat --json --prometheus
expect_err "exclude each other" "says why"
expect_rc 2 "an extra argument" L stat foo
expect_err "unexpected argument 'foo'" "names the argument"
expect_rc 2 "an unknown option" L stat --bogus
expect_rc 0 "stat --help" L stat --help
expect_out "prometheus" "the help names --prometheus"
expect_out "hits \+ misses \+ waits = requests" "the help states the identity"
finish
