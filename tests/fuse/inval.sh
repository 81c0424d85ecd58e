#!/bin/sh
# larder mount, head dentries moved by the publish itself: with the poll
# made longer than the test (--poll 1h) and the head dentry's own timeout
# 60 s, a new open can see a local publish within the 20 s bound only
# because the publish's inotify event made the daemon drop the dentry;
# 20 publishes in a row are each seen so. An entry evicted by `larder gc`
# while open keeps serving its reader.
. "$(dirname "$0")/lib.sh" "$1"

L init >/dev/null || bail "cannot init"
printf v0 | L put k --version v0 || bail "cannot put v0"
fstart --poll 1h || bail "no mount: $(cat "$T/ferr")"
[ "$(cat "$M/head/default/k")" = v0 ] || bail "head/default/k is not v0"

seen=0
i=1
while [ $i -le 20 ]; do
	printf "v$i" | L put k --version "v$i" || bail "cannot put v$i"
	is_new() { [ "$(cat "$M/head/default/k")" = "v$i" ]; }
	wait_until "v$i through head/" is_new || break
	seen=$i
	i=$((i + 1))
done
[ $seen -eq 20 ] &&
	ok "each of 20 local publishes is seen by the next opens, the poll aside" ||
	not_ok "publish $((seen + 1)) never showed through head/ (dentry timeout 60 s, poll 1 h)"

# A key published after the mount, in head directories made after it.
printf fresh | L put fresh --version v1 || bail "cannot put fresh"
[ "$(cat "$M/head/default/fresh")" = fresh ] &&
	ok "a key published after the mount is found" ||
	not_ok "head/default/fresh: not found"

# Evicted while open: a cap of one entry and a cleaning remove the held
# version's file; its reader still reads it whole.
head -c 1048576 /dev/urandom >"$T/big" || bail "cannot write big"
L put big --version v1 <"$T/big" || bail "cannot put big"
path=$(L inspect big | python3 -c '
import json, sys; print(json.load(sys.stdin)["path"])') || bail "no path"
exec 3<"$M/head/default/big" || bail "cannot open big"
L config --max-entries 1 >/dev/null || bail "cannot set the cap"
printf later | L put later --version v1 || bail "cannot put later"
L gc >/dev/null 2>&1 || bail "gc failed"
[ ! -e "$path" ] || bail "gc kept the held entry's file: nothing to test"
cat <&3 >"$T/held"
exec 3<&-
cmp -s "$T/held" "$T/big" &&
	ok "an entry evicted while open keeps serving its reader" ||
	not_ok "the evicted entry's reader read $(wc -c <"$T/held") other bytes"
evicted() { [ ! -e "$M/head/default/big" ]; }
wait_until "big to leave head/" evicted && ok "and it leaves head/" ||
	not_ok "head/default/big is still there after its eviction"

kill -TERM "$fpid"
wait "$fpid" && not_mounted "$M" && ok "SIGTERM unmounts" || not_ok "SIGTERM"
finish
