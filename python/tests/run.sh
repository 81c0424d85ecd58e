#!/bin/sh
# The Python tests under pytest, with Debian's /usr/bin/python3 (the
# `python3` first on PATH may be another interpreter that cannot import
# Debian's modules), against the build tree's package.
# Usage: [LARDER_CC=compiler] [LARDER_PY_TESTS=files] run.sh BUILD_DIR
#        SANITIZED(ON|OFF) [pytest args...]
# (LARDER_PY_TESTS: test files of this directory to run instead of all of
# them; all of them leaves out test_sql_pg.py, which needs the PostgreSQL
# server tests/pg/run.sh starts: the CTest test python_pg runs it there.)
# (LARDER_CC: the build's compiler, whose sanitizer runtimes are preloaded
# under the sanitizer build.)
build=$1
sanitized=$2
cc=${LARDER_CC:-cc}
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
. "$here/sanitized.sh"
sanitized_python "$sanitized" "$cc" || skip_all "$sanitized_why"
export PYTHONPATH="$build/python${PYTHONPATH:+:$PYTHONPATH}"
export LARDER_CLI="$build/cli/larder"
# Nothing written into the source tree.
export PYTHONDONTWRITEBYTECODE=1
unset LARDER_DIR XDG_CACHE_HOME
T=$(mktemp -d "${TMPDIR:-/tmp}/larder-py.XXXXXX") || exit 2
trap 'rm -rf "$T"' EXIT
cd "$T" || exit 2
if [ -n "${LARDER_PY_TESTS:-}" ]; then
	set -- $(for f in $LARDER_PY_TESTS; do echo "$here/$f"; done) "$@"
else
	set -- "$here" --ignore="$here/test_sql_pg.py" "$@"
fi
"$py" -m pytest -q -p no:cacheprovider --rootdir "$here" \
	--basetemp "$T/pytest" "$@"
