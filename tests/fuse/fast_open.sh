#!/bin/sh
# larder mount --fast-open: after the first open the kernel opens files
# without asking the daemon, so entries are verified, and held, when
# looked up; what is read is still the entry, byte for byte, also when it
# is removed between the open and the first read, and a damaged entry is
# still EIO, quarantined, no byte served.
. "$(dirname "$0")/lib.sh" "$1"

L init >/dev/null || bail "cannot init"
for n in 4096 1048576; do
	head -c $n /dev/urandom >"$T/src.$n" || bail "cannot write src"
	L put "p$n" --version v1 <"$T/src.$n" || bail "cannot put"
done
L put bad --version v1 <"$T/src.1048576" || bail "cannot put bad"
path=$(L inspect bad | python3 -c '
import json, sys; print(json.load(sys.stdin)["path"])') || bail "no path"
python3 - "$path" <<'PY' || bail "cannot damage the entry"
import os, sys
p = sys.argv[1]
os.chmod(p, 0o644)
with open(p, "r+b") as f:
    f.seek(-1, os.SEEK_END)
    b = f.read(1)
    f.seek(-1, os.SEEK_END)
    f.write(bytes([b[0] ^ 0xFF]))
os.chmod(p, 0o444)
PY

fmount --fast-open
[ "$rc" -eq 0 ] || bail "mount failed: $(cat "$T/err")"
for round in first second; do
	for n in 4096 1048576; do
		cmp -s "$M/head/default/p$n" "$T/src.$n" &&
			ok "$round read of a $n-byte entry gives its bytes" ||
			not_ok "$round read of a $n-byte entry differs"
	done
done
# Opened (no message to the daemon), then removed, then read: the
# payload held since the lookup serves it.
head -c 1048576 /dev/urandom >"$T/src.rm" || bail "cannot write src"
L put rm1 --version v1 <"$T/src.rm" || bail "cannot put rm1"
exec 3<"$M/head/default/rm1" || bail "cannot open rm1"
L rm rm1 >/dev/null 2>&1 || bail "cannot remove rm1"
cat <&3 >"$T/held.rm"
exec 3<&-
cmp -s "$T/held.rm" "$T/src.rm" &&
	ok "an entry removed between open and first read reads its bytes" ||
	not_ok "removed before its first read: $(wc -c <"$T/held.rm") bytes, not its own"
run cat "$M/head/default/bad"
[ "$rc" -ne 0 ] && [ ! -s "$T/out" ] && grep -q 'Input/output error' "$T/err" &&
	ok "a damaged entry is EIO at its lookup, no byte served" ||
	not_ok "damaged entry: exit $rc, $(wc -c <"$T/out") bytes out"
[ ! -e "$path" ] && [ "$(ls "$S/quarantine" | wc -l)" -ge 1 ] &&
	ok "and quarantined" || not_ok "the damaged entry was not quarantined"
run sh -c "echo x >>'$M/head/default/p4096'"
[ "$rc" -ne 0 ] && grep -q 'Read-only file system' "$T/err" &&
	ok "a write open is EROFS" || not_ok "write open: exit $rc"
"$LARDER" umount "$M" 2>"$T/err" && ok "unmounted" || not_ok "umount: $(cat "$T/err")"
finish
