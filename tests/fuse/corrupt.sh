#!/bin/sh
# larder mount: a damaged entry is never served: its first read fails with EIO,
# it is moved to quarantine/, and it stays EIO (no second chance for the
# same inode); a sound one beside it reads as usual.
. "$(dirname "$0")/lib.sh" "$1"

L init >/dev/null || bail "cannot init"
head -c 1048576 /dev/urandom >"$T/src" || bail "cannot write src"
L put bad --version v1 <"$T/src" || bail "cannot put bad"
L put good --version v1 <"$T/src" || bail "cannot put good"
damage_last_byte bad

fmount
[ "$rc" -eq 0 ] || bail "mount failed: $(cat "$T/err")"
[ "$(stat -c %s "$M/head/default/bad")" = 1048576 ] &&
	ok "the damaged entry is listed by its header" ||
	not_ok "stat of the damaged entry"
run cat "$M/head/default/bad"
[ "$rc" -ne 0 ] && [ ! -s "$T/out" ] && grep -q 'Input/output error' "$T/err" &&
	ok "reading a damaged entry is EIO, no byte served" ||
	not_ok "damaged entry: exit $rc, $(wc -c <"$T/out") bytes out"
[ -e "$path" ] && not_ok "the damaged entry is still at its name" ||
	ok "the damaged entry left its name"
[ "$(ls "$S/quarantine" | wc -l)" -ge 1 ] && ok "it is in quarantine/" ||
	not_ok "quarantine/ is empty"
# Quarantine takes the head along: a second open is EIO (the same
# inode) or ENOENT (the head's dentry was dropped), never bytes.
run cat "$M/head/default/bad"
[ "$rc" -ne 0 ] && [ ! -s "$T/out" ] &&
	ok "a second open serves nothing either" ||
	not_ok "second open: exit $rc, $(wc -c <"$T/out") bytes"
run cat "$M/@v1/default/bad"
[ "$rc" -ne 0 ] && [ ! -s "$T/out" ] &&
	ok "nor does its @v1 name" ||
	not_ok "@v1 open: exit $rc, $(wc -c <"$T/out") bytes"
cmp -s "$M/head/default/good" "$T/src" && ok "the sound entry reads whole" ||
	not_ok "the sound entry differs"
run L stat
grep -Eq '^ *quarantined +[1-9]' "$T/out" &&
	ok "larder stat counts the quarantine at once" ||
	not_ok "larder stat: $(grep quarantined "$T/out")"
"$LARDER" umount "$M" 2>"$T/err" && ok "unmounted" || not_ok "umount: $(cat "$T/err")"
finish
