#!/bin/sh
# Install the Debian packages larder needs, if missing:
#   deps.sh        to build it and run the demo
#   deps.sh test   also what the tests need (a PostgreSQL server; useradd
#                  and pkill for the tests that play other users; the
#                  Python binding's headers, pytest, numpy and pandas;
#                  joblib and diskcache, which larder.compat is tested
#                  against; promtool, from prometheus, to parse the
#                  metrics `larder stat --prometheus` writes)
#   deps.sh redis  also what the Redis tier is built and tested with:
#                  hiredis's headers, and redis-server and redis-sentinel,
#                  which the tests start themselves (tests/redis/redis.sh);
#                  `deps.sh test` installs these too
#   deps.sh fuse   also what `larder mount` is built with and tested on:
#                  libfuse3's headers and fuse3 (fusermount3, the
#                  unmounting helper); `deps.sh test` installs these too
#   deps.sh bench  also what `make bench-peers` compares larder with (LMDB,
#                  Redis, memcached, diskcache, joblib) and gnuplot for its
#                  chart; the benchmark starts the servers itself; and
#                  liburing's headers, for bench_uring
set -e
pkgs="cmake make gcc clang clang-format pkg-config libxxhash-dev libzstd-dev
      libclang-rt-14-dev libsqlite3-dev libpq-dev sqlite3 util-linux python3"
[ "${1:-}" = test ] && pkgs="$pkgs postgresql passwd procps python3-dev
      python3-pytest python3-numpy python3-pandas python3-joblib
      python3-diskcache prometheus"
case ${1:-} in test | redis) pkgs="$pkgs libhiredis-dev redis-server
      redis-sentinel redis-tools" ;;
esac
case ${1:-} in test | fuse) pkgs="$pkgs libfuse3-dev fuse3" ;;
esac
[ "${1:-}" = bench ] && pkgs="$pkgs liblmdb-dev redis-server memcached
      python3-diskcache python3-joblib gnuplot-nox liburing-dev"
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
# The tests run a PostgreSQL server of their own (tests/pg/pg.sh): keep
# Debian's package from creating and starting a system cluster on 5432.
case " $missing " in *" postgresql "*)
	conf=/etc/postgresql-common/createcluster.conf
	if ! grep -qs '^[[:space:]]*create_main_cluster[[:space:]]*=[[:space:]]*false' "$conf"; then
		mkdir -p /etc/postgresql-common
		echo 'create_main_cluster = false' >>"$conf"
	fi
	;;
esac
# The benchmark and the tests start Redis (and sentinels) and memcached
# on private ports and sockets and stop them, and only use prometheus'
# promtool: keep the packages from starting system daemons on the usual
# ports.
case " $missing " in *" redis-server "* | *" redis-sentinel "* | *" memcached "* | *" prometheus "*)
	if [ ! -e /usr/sbin/policy-rc.d ]; then
		printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
		chmod 755 /usr/sbin/policy-rc.d
		trap 'rm -f /usr/sbin/policy-rc.d' EXIT
	fi
	;;
esac
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends \
	-o Dpkg::Options::=--force-confold -o Dpkg::Options::=--force-confdef \
	$missing >/dev/null
