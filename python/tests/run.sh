#!/bin/sh
# The Python tests under pytest, with Debian's /usr/bin/python3 (the
# `python3` first on PATH may be another interpreter that cannot import
# Debian's modules), against the build tree's package.
# Usage: run.sh BUILD_DIR SANITIZED(ON|OFF) [pytest args...]
build=$1
sanitized=$2
shift 2
here=$(cd "$(dirname "$0")" && pwd)
py=${LARDER_PYTHON:-/usr/bin/python3}
skip_all() {
	echo "skip - the Python tests: $1"
	echo "0 passed, 0 failed, 1 skipped"
	exit 77
}
[ -x "$py" ] || skip_all "no $py"
[ -d "$build/python/larder" ] || skip_all "the binding was not built (python3-dev missing?)"
"$py" -c 'import pytest' 2>/dev/null || skip_all "no pytest for $py (python3-pytest)"
# Under ASan the interpreter itself is not instrumented: the runtime
# would have to be preloaded into it, and CPython's own allocations then
# report leaks at exit that are not ours. The binding's C is exercised
# by the plain build's run.
[ "$sanitized" = ON ] && skip_all "not run under the sanitizer build (the interpreter is not instrumented)"
export PYTHONPATH="$build/python${PYTHONPATH:+:$PYTHONPATH}"
export LARDER_CLI="$build/cli/larder"
# Nothing written into the source tree.
export PYTHONDONTWRITEBYTECODE=1
unset LARDER_DIR XDG_CACHE_HOME
T=$(mktemp -d "${TMPDIR:-/tmp}/larder-py.XXXXXX") || exit 2
trap 'rm -rf "$T"' EXIT
cd "$T" || exit 2
"$py" -m pytest -q -p no:cacheprovider --rootdir "$here" \
	--basetemp "$T/pytest" "$here" "$@"
