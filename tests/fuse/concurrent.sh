#!/bin/sh
# larder mount: 16 processes reading one 256 MiB entry at once through
# the mount (a cold start: the inode's first open races with the others)
# all get its bytes.
. "$(dirname "$0")/lib.sh" "$1"

L init >/dev/null || bail "cannot init"
size=$((256 * 1024 * 1024))
head -c $size /dev/urandom >"$T/src" || bail "cannot write src"
L put big --version v1 <"$T/src" || bail "cannot put"
fmount
[ "$rc" -eq 0 ] || bail "mount failed: $(cat "$T/err")"

i=0
pids=
while [ $i -lt 16 ]; do
	cmp -s "$M/head/default/big" "$T/src" >"$T/r.$i" 2>&1 &
	pids="$pids $!"
	track $!
	i=$((i + 1))
done
bad=0
for p in $pids; do
	wait "$p" || bad=$((bad + 1))
done
[ $bad -eq 0 ] && ok "16 concurrent readers of a 256 MiB entry all read it whole" ||
	not_ok "$bad of 16 concurrent readers read other bytes"
"$LARDER" umount "$M" 2>"$T/err" && ok "unmounted" || not_ok "umount: $(cat "$T/err")"
finish
