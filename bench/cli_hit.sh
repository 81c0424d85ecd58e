#!/bin/sh
# A `larder get` hit of 4 KiB as a whole process against `cat` of the same
# bytes (docs/performance.md): both started the same way, one after the
# other, N rounds interleaved, wall time of each process from spawn to
# exit. Prints the medians and their ratio, by the head (what `larder get
# KEY` does) and with a known version (target <= 1.5x), and a `larder run`
# hit of a command whose output is those bytes (target <= 2x).
#
#   sh bench/cli_hit.sh [BUILD_DIR] [ROUNDS]    (defaults: build, 41)
#
# LARDER_BEFORE=/path/to/an/older/larder adds its head hit to the same
# rounds, to compare two builds under the same load.
set -eu
BUILD=${1:-build}
ROUNDS=${2:-41}
LARDER=$(cd "$BUILD" && pwd)/cli/larder
[ -x "$LARDER" ] || { echo "no $LARDER: build first (make build)" >&2; exit 2; }
T=$(mktemp -d "${TMPDIR:-/tmp}/larder-bench-cli.XXXXXX")
trap 'rm -rf "$T"' EXIT INT TERM
S=$T/store
"$LARDER" --dir "$S" init >/dev/null
head -c 4096 /dev/urandom >"$T/payload"
"$LARDER" --dir "$S" put k "$T/payload"
"$LARDER" --dir "$S" put --version v1 kv "$T/payload"
# The entry file itself, for cat: the same bytes from the same cache.
"$LARDER" --dir "$S" get k -o "$T/check"
cmp -s "$T/check" "$T/payload" || { echo "get returned other bytes" >&2; exit 1; }
# A `larder run` entry: the first run fills, the timed ones hit.
"$LARDER" --dir "$S" run -- cat "$T/payload" >"$T/check"
cmp -s "$T/check" "$T/payload" || { echo "run returned other bytes" >&2; exit 1; }

python3 - "$ROUNDS" "$LARDER" "$S" "$T/payload" "${LARDER_BEFORE:-}" <<'PY'
import os, shutil, statistics, sys, time
rounds, larder, store, payload, before = (int(sys.argv[1]), sys.argv[2],
                                          sys.argv[3], sys.argv[4],
                                          sys.argv[5])
null = os.open(os.devnull, os.O_WRONLY)
cmds = {
    "cat": [shutil.which("cat"), payload],
    "get (head)": [larder, "--dir", store, "get", "k"],
    "get --version": [larder, "--dir", store, "get", "--version", "v1", "kv"],
    "run (hit)": [larder, "--dir", store, "run", "--", "cat", payload],
}
if before:
    cmds["before (head)"] = [before, "--dir", store, "get", "k"]

def run(argv):
    t0 = time.perf_counter_ns()
    pid = os.posix_spawn(argv[0], argv, os.environ,
                         file_actions=[(os.POSIX_SPAWN_DUP2, null, 1)])
    _, st = os.waitpid(pid, 0)
    t1 = time.perf_counter_ns()
    if os.waitstatus_to_exitcode(st) != 0:
        sys.exit("%s failed" % " ".join(argv))
    return (t1 - t0) / 1e6

for argv in cmds.values():  # warm: page cache, dynamic loader's caches
    for _ in range(3):
        run(argv)
times = {k: [] for k in cmds}
for _ in range(rounds):
    for k, argv in cmds.items():
        times[k].append(run(argv))
med = {k: statistics.median(v) for k, v in times.items()}
print("whole processes, %d rounds interleaved, median wall ms (load %s)"
      % (rounds, open("/proc/loadavg").read().split()[0]))
for k in cmds:
    print("  %-14s %7.3f ms   p10 %7.3f  p90 %7.3f" % (
        k, med[k], statistics.quantiles(times[k], n=10)[0],
        statistics.quantiles(times[k], n=10)[-1]))
for k in [k for k in cmds if k != "cat"]:
    print("%s / cat: %.2fx (target <= %s)" % (
        k, med[k] / med["cat"], "2x" if k.startswith("run") else "1.5x"))
PY
