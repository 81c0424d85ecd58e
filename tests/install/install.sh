#!/bin/sh
# `make install` delivers a usable library: install the build into a
# staging root, then build and run a program against it with pkg-config
# alone, and run the installed tool.
# Usage: install.sh BUILD_DIR [CFLAGS for the test program]
build=$1
app_cflags=${2:-}
T=$(mktemp -d "${TMPDIR:-/tmp}/larder-install.XXXXXX") || exit 2
trap 'rm -rf "$T"' EXIT
. "$(dirname "$0")/../checks.sh"

check_quiet "cmake --install into a staging root" \
	env DESTDIR="$T/root" cmake --install "$build" --prefix /usr/local
pc=$(find "$T/root" -name larder.pc | head -n 1)
check_quiet "larder.pc is installed" test -n "$pc"
check_quiet "larder.h is installed" test -f "$T/root/usr/local/include/larder.h"

cat >"$T/app.c" <<'C'
#include <larder.h>
#include <stdio.h>
#include <string.h>
int main(int argc, char **argv)
{
	larder *db;
	larder_opts o = LARDER_OPTS_INIT;
	larder_entry *e;
	o.flags = LARDER_OPEN_CREATE;
	if (argc < 2 || larder_open(&db, argv[1], &o) != 0)
		return 1;
	if (larder_put(db, "default", "k", 1, "v", 1, "hello", 5, NULL) != 0 ||
	    larder_get(&e, db, "default", "k", 1, "v", 1) != 0)
		return 2;
	int ok = larder_entry_size(e) == 5 &&
		 memcmp(larder_entry_data(e), "hello", 5) == 0;
	larder_entry_release(e);
	larder_close(db);
	printf("%s %s\n", larder_version(), ok ? "ok" : "wrong");
	return ok ? 0 : 3;
}
C
export PKG_CONFIG_SYSROOT_DIR="$T/root"
export PKG_CONFIG_PATH=$(dirname "$pc")
flags=$(pkg-config --cflags --libs larder)
check_quiet "a program builds with pkg-config --cflags --libs larder" \
	cc -Wall -Werror $app_cflags "$T/app.c" $flags -o "$T/app"
check_quiet "the program runs against the installed shared library" \
	env LD_LIBRARY_PATH="$T/root/usr/local/lib" "$T/app" "$T/store"
check_quiet "the installed tool reads what the program stored" \
	env LD_LIBRARY_PATH="$T/root/usr/local/lib" \
	"$T/root/usr/local/bin/larder" --dir "$T/store" get k --version v

# A real install runs ldconfig, so that the README's line gives a program
# that starts without LD_LIBRARY_PATH. Into a private prefix that a
# temporary /etc/ld.so.conf.d entry adds to the linker's search path (the
# test removes it and updates the cache again at exit), so as not to
# touch /usr/local; the entry is written before the install, and nothing
# but the install runs ldconfig in between.
if [ "$(id -u)" -ne 0 ] || ! command -v ldconfig >/dev/null 2>&1 ||
	[ ! -d /etc/ld.so.conf.d ]; then
	skip "a real install updates the linker cache (needs root and ldconfig)"
else
	sys=$T/sys
	conf=/etc/ld.so.conf.d/zz-larder-install-test-$$.conf
	trap 'rm -f "$conf"; ldconfig; rm -rf "$T"' EXIT
	echo "$sys/usr/local/lib" >"$conf"
	check_quiet "cmake --install as root into a prefix on the linker's path" \
		env -u DESTDIR cmake --install "$build" --prefix "$sys/usr/local"
	export PKG_CONFIG_SYSROOT_DIR="$sys"
	export PKG_CONFIG_PATH="$sys/usr/local/lib/pkgconfig"
	# The README's line: cc app.c $(pkg-config --cflags --libs larder)
	check_quiet "the README's build line builds the program" \
		sh -c 'cc $1 "$2" $(pkg-config --cflags --libs larder) -o "$3"' \
		sh "$app_cflags" "$T/app.c" "$T/app-sys"
	check_quiet "the program starts without LD_LIBRARY_PATH (ldconfig ran)" \
		env -u LD_LIBRARY_PATH "$T/app-sys" "$T/store-sys"
	check_quiet "... and uses the library just installed" \
		sh -c 'env -u LD_LIBRARY_PATH ldd "$1" | grep -q "liblarder.so.0.2 => $2/"' \
		sh "$T/app-sys" "$sys/usr/local/lib"
fi
finish
