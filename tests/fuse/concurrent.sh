#!/bin/sh
# larder mount: 16 processes reading one 256 MiB entry at once through
# the mount (a cold start: the inode's first read races with the others)
# all get its bytes, and the entry is verified once (the root's
# user.larder.verified): the readers that came meanwhile waited for it.
. "$(dirname "$0")/lib.sh" "$1"

L init >/dev/null || bail "cannot init"
size=$((256 * 1024 * 1024))
head -c $size /dev/urandom >"$T/src" || bail "cannot write src"
L put big --version v1 <"$T/src" || bail "cannot put"
fmount
[ "$rc" -eq 0 ] || bail "mount failed: $(cat "$T/err")"

# Each reader starts at a slice of its own (16 MiB apart), so that their
# first reads reach the daemon at once rather than waiting on one
# another's pages in the kernel; then it reads the whole entry.
i=0
while [ $i -lt 16 ]; do
	dd if="$T/src" bs=1M skip=$((i * 16)) count=16 2>/dev/null | md5sum >"$T/want.$i" ||
		bail "cannot checksum a slice"
	i=$((i + 1))
done
i=0
pids=
while [ $i -lt 16 ]; do
	sh -c 'dd if="$1" bs=1M skip=$(($3 * 16)) count=16 2>/dev/null | md5sum |
		cmp -s - "$4" && cmp -s "$1" "$2"' reader \
		"$M/head/default/big" "$T/src" $i "$T/want.$i" &
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
v=$(python3 -c 'import os, sys
print(os.getxattr(sys.argv[1], "user.larder.verified").decode())' "$M")
[ "$v" = 1 ] && ok "and it was verified once" ||
	not_ok "16 concurrent first readers: $v verifications"
"$LARDER" umount "$M" 2>"$T/err" && ok "unmounted" || not_ok "umount: $(cat "$T/err")"
finish
