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

. "$(dirname "$0")/../common.sh"

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

bench_workdir larder-pybench
versions=$("$py" -c 'import sys, numpy, diskcache, joblib; print("Python %d.%d.%d, numpy %s, diskcache %s, joblib %s" % (sys.version_info[:3] + (numpy.__version__, diskcache.__version__, joblib.__version__)))')
echo "bench-python: $(bench_header "$versions")"

status=0
bench_run env PYTHONPATH="$build/python${PYTHONPATH:+:$PYTHONPATH}" \
	PYTHONDONTWRITEBYTECODE=1 "$py" "$here/bench_py.py" $quick "$work" ||
	status=$?
bench_load_end
exit "$status"
