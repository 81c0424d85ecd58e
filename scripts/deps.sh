#!/bin/sh
# Install the Debian packages larder needs to build and test, if missing.
set -e
pkgs="cmake make gcc clang clang-format pkg-config libxxhash-dev libzstd-dev
      libclang-rt-14-dev libsqlite3-dev libpq-dev sqlite3
      util-linux python3"
missing=""
for p in $pkgs; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
		missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != 0 ]; then
	echo "larder: missing packages:$missing (run as root, or install them)" >&2
	exit 1
fi
echo "larder: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends $missing >/dev/null
