#!/bin/sh
# gluster.sh LARDER_SWARM [SWARM OPTIONS...] — the file swarm across the
# two GlusterFS mounts that tests/gluster/run.sh sets up (it runs this
# script as its test program, with LARDER_GLUSTER_A and LARDER_GLUSTER_B
# set): the store and the source on the volume, the controller writing the
# source through mount A, half the clients on mount A and half on mount B.
# Extra options go to larder-swarm (they override the defaults below).
# Prints the verdict and "N passed, N failed".
#
#   sh tests/gluster/run.sh tests/swarm/gluster.sh build/cli/larder \
#       "build/tools/larder-swarm --clients 16 --waves 50 --generations 20"
SWARM=${1:?usage: gluster.sh LARDER_SWARM [OPTIONS...]}
shift
A=${LARDER_GLUSTER_A:?run through tests/gluster/run.sh}
B=${LARDER_GLUSTER_B:?run through tests/gluster/run.sh}
d=swarm-$$
mkdir "$A/$d" || exit 2
# --lag: mount B shows a change made through mount A about a second late
# (attribute and md-cache timeouts of 1 s, docs/testing.md); 3 s bounds it
# on a loaded machine.
# The source changes every way the swarm knows (in place, by rename, in
# the same clock tick): after a rename through mount A, mount B says ESTALE
# for about a second, which larder_files_version retries.
"$SWARM" --variant file --clients 6 --waves 12 --generations 6 \
	--store "$A/$d/store" --store2 "$B/$d/store" \
	--source "$A/$d/source.dat" --source2 "$B/$d/source.dat" \
	--lag 3 --lease 5 "$@"
rc=$?
rm -rf "${A:?}/$d"
if [ $rc -eq 0 ]; then echo "1 passed, 0 failed, 0 skipped"; else echo "0 passed, 1 failed, 0 skipped"; fi
exit $rc
