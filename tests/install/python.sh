#!/bin/sh
# `make install` installs the Python package where Debian's python3 finds
# it, its extension linked against the installed liblarder.so.0.2:
# install into a staging root, then import it from there.
# Usage: python.sh BUILD_DIR [ON under the sanitizer build]
build=$1
sanitized=${2:-OFF}
py=/usr/bin/python3
T=$(mktemp -d "${TMPDIR:-/tmp}/larder-pyinstall.XXXXXX") || exit 2
trap 'rm -rf "$T"' EXIT
. "$(dirname "$0")/../checks.sh"
if [ ! -x "$py" ] || [ ! -d "$build/python-install" ]; then
	skip_all "the Python binding was not built (python3-dev missing?)"
fi

check_quiet "cmake --install into a staging root" \
	env DESTDIR="$T/root" cmake --install "$build" --prefix /usr/local
# Debian's python3 looks in /usr/local/lib/python3.X/dist-packages.
site=$("$py" -c 'import sys; print("/usr/local/lib/python%d.%d/dist-packages" % sys.version_info[:2])')
check_quiet "the package is installed in $site" \
	test -f "$T/root$site/larder/__init__.py"
check_quiet "... on Debian's python3 path" \
	sh -c '"$1" -c "import sys; sys.exit(0 if \"$2\" in sys.path else 1)"' \
	sh "$py" "$site"
so=$(ls "$T/root$site"/larder/_larder*.so 2>/dev/null | head -n 1)
check_quiet "the extension is installed" test -n "$so"
check_quiet "it links the installed liblarder.so.0.2" \
	sh -c 'env LD_LIBRARY_PATH="$1" ldd "$2" | grep -q "liblarder.so.0.2 => $1/"' \
	sh "$T/root/usr/local/lib" "$so"
if [ "$sanitized" = ON ]; then
	# The extension needs the ASan runtime loaded first, which the
	# interpreter does not have (docs/python.md, Tests).
	skip "import the installed package (sanitizer build)"
	finish
fi
check_quiet "/usr/bin/python3 -c 'import larder' from the install" \
	env LD_LIBRARY_PATH="$T/root/usr/local/lib" PYTHONPATH="$T/root$site" \
	"$py" -c 'import larder, sys
assert larder.__file__.startswith(sys.argv[1]), larder.__file__
s = larder.Store(sys.argv[2], create=True)
s.put("k", b"installed", "v")
assert bytes(s.get("k", "v")) == b"installed"
s.close()' "$T/root" "$T/store"
finish
