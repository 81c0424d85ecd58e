#!/bin/sh
# larder mount verifies lazily: a lookup (stat, ls -l) reads an entry's
# header and holds its file; the payload is verified at the inode's first
# read, once, before any byte is served. So a stat of a damaged entry
# succeeds and reads nothing of it, its first read is EIO and quarantines
# it; an entry removed between an open and its first read still reads
# whole (held since the lookup); opens never reach the daemon (the kernel
# makes them), and `--fast-open`, which asked for that, is still accepted.
# The root's user.larder.verified counts the verifications.
. "$(dirname "$0")/lib.sh" "$1"

verified() {
	python3 -c 'import os, sys
print(os.getxattr(sys.argv[1], "user.larder.verified").decode())' "$M"
}

L init >/dev/null || bail "cannot init"
for n in 4096 1048576; do
	head -c $n /dev/urandom >"$T/src.$n" || bail "cannot write src"
	L put "p$n" --version v1 <"$T/src.$n" || bail "cannot put"
done
big=$((64 * 1024 * 1024))
head -c $big /dev/urandom | L put big --version v1 || bail "cannot put big"
damage_last_byte big

fmount
[ "$rc" -eq 0 ] || bail "mount failed: $(cat "$T/err")"
[ "$(verified)" = 0 ] && ok "nothing verified at the mount" ||
	not_ok "verified at the mount: $(verified)"

# A stat of the damaged entry: its header only.
[ "$(stat -c %s "$M/head/default/big")" = $big ] &&
	ok "a stat of a damaged 64 MiB entry succeeds" ||
	not_ok "stat of the damaged entry"
ls -l "$M/head/default" >/dev/null || not_ok "ls -l"
[ "$(verified)" = 0 ] && [ -e "$path" ] &&
	ok "stat and ls -l verify nothing: the entry is still at its name" ||
	not_ok "after stat: $(verified) verified, entry $( [ -e "$path" ] && echo there || echo gone)"
run cat "$M/head/default/big"
[ "$rc" -ne 0 ] && [ ! -s "$T/out" ] && grep -q 'Input/output error' "$T/err" &&
	ok "its first read is EIO, no byte served" ||
	not_ok "damaged entry: exit $rc, $(wc -c <"$T/out") bytes out"
[ ! -e "$path" ] && [ "$(ls "$S/quarantine" | wc -l)" -ge 1 ] &&
	ok "and quarantines it" || not_ok "the damaged entry was not quarantined"
run cat "$M/@v1/default/big"
[ "$rc" -ne 0 ] && [ ! -s "$T/out" ] &&
	ok "a second read of it serves nothing either" ||
	not_ok "second read: exit $rc, $(wc -c <"$T/out") bytes"
run L stat
grep -Eq '^ *quarantined +[1-9]' "$T/out" &&
	ok "larder stat counts the quarantine at once" ||
	not_ok "larder stat: $(grep quarantined "$T/out")"

# Sound entries read whole, each verified once however often it is read.
for round in first second; do
	for n in 4096 1048576; do
		cmp -s "$M/head/default/p$n" "$T/src.$n" &&
			ok "$round read of a $n-byte entry gives its bytes" ||
			not_ok "$round read of a $n-byte entry differs"
	done
done
[ "$(verified)" = 2 ] && ok "two entries read twice: two verifications" ||
	not_ok "two entries read twice: $(verified) verifications"

# Opened (no message to the daemon), then removed, then read: the file
# held since the lookup serves it, verified at that first read.
head -c 1048576 /dev/urandom >"$T/src.rm" || bail "cannot write src"
L put rm1 --version v1 <"$T/src.rm" || bail "cannot put rm1"
exec 3<"$M/head/default/rm1" || bail "cannot open rm1"
L rm rm1 >/dev/null 2>&1 || bail "cannot remove rm1"
cat <&3 >"$T/held.rm"
exec 3<&-
cmp -s "$T/held.rm" "$T/src.rm" &&
	ok "an entry removed between open and first read reads its bytes" ||
	not_ok "removed before its first read: $(wc -c <"$T/held.rm") bytes, not its own"
run sh -c "echo x >>'$M/head/default/p4096'"
[ "$rc" -ne 0 ] && grep -q 'Read-only file system' "$T/err" &&
	ok "a write open is EROFS" || not_ok "write open: exit $rc"
"$LARDER" umount "$M" 2>"$T/err" && ok "unmounted" || not_ok "umount: $(cat "$T/err")"

# --fast-open, which asked for zero-message opens, is still accepted.
fmount --fast-open
[ "$rc" -eq 0 ] && cmp -s "$M/head/default/p4096" "$T/src.4096" &&
	ok "--fast-open is accepted" || not_ok "--fast-open: exit $rc, $(cat "$T/err")"
"$LARDER" umount "$M" 2>"$T/err" && ok "unmounted" || not_ok "umount: $(cat "$T/err")"
finish
