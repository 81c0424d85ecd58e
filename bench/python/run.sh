#!/bin/sh
# The Python benchmark (docs/performance.md, "Python"): larder's binding
# beside diskcache and joblib.Memory; `make bench-python` runs it.
#
#   bench/python/run.sh [--quick] BUILD [DIR]
#
# BUILD holds the built binding (BUILD/python/larder); the stores and
# files go to a fresh directory under DIR (default $TMPDIR, else /tmp;
# about 0.6 GB), removed at the end whatever happens. Installs Debian's
# python3-diskcache, python3-joblib and python3-numpy first if they are
# missing (as root; otherwise says which). --quick: a few iterations of
# each, a smoke run, not a measurement.
set -eu

quick=""
if [ "${1:-}" = --quick ]; then
	quick=--quick
	shift
fi
if [ $# -lt 1 ] || [ $# -gt 2 ]; then
	echo "usage: run.sh [--quick] BUILD [DIR]" >&2
	exit 2
fi
build=$1
base=${2:-${TMPDIR:-/tmp}}
here=$(cd "$(dirname "$0")" && pwd)
# Debian's interpreter, where Debian's python3-* modules live (the
# python3 first on PATH may be another one).
py=/usr/bin/python3

if [ ! -d "$build/python/larder" ]; then
	echo "run.sh: $build/python/larder missing (build with python3-dev installed: make deps-test build)" >&2
	exit 1
fi
missing=""
for p in python3-diskcache python3-joblib python3-numpy; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
		missing="$missing $p"
done
if [ -n "$missing" ]; then
	if [ "$(id -u)" != 0 ]; then
		echo "run.sh: missing packages:$missing (run as root, or install them)" >&2
		exit 1
	fi
	echo "run.sh: installing$missing" >&2
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	# shellcheck disable=SC2086 # one word per package
	apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

work=$(mktemp -d "$base/larder-pybench.XXXXXX")
child=""
# Stops the benchmark (by pid) if this script is interrupted, then
# removes its files; runs on every exit.
# shellcheck disable=SC2317 # run by the EXIT trap, not reached in line
cleanup() {
	for pid in $child; do
		kill "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM

machine=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
versions=$("$py" -c 'import sys, numpy, diskcache, joblib; print("Python %d.%d.%d, numpy %s, diskcache %s, joblib %s" % (sys.version_info[:3] + (numpy.__version__, diskcache.__version__, joblib.__version__)))')
echo "bench-python: $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs ($machine),\
 kernel $(uname -r), larder $(git -C "$here" rev-parse --short HEAD 2>/dev/null || echo '?'),\
 $versions, load average $(cut -d' ' -f1-3 /proc/loadavg)${quick:+ -- quick: not a measurement}"

# In the background and waited for: the shell runs a trap only once its
# foreground command ends, but interrupts a wait.
PYTHONPATH="$build/python${PYTHONPATH:+:$PYTHONPATH}" PYTHONDONTWRITEBYTECODE=1 \
	"$py" "$here/bench_py.py" $quick "$work" &
child=$!
status=0
wait "$child" || status=$?
child=""
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
exit "$status"
