#!/bin/sh
# larder mount: a reader that opened head/<ns>/<key> keeps the version
# it opened while 20 newer ones are published, and its pages stay right;
# a new open after each publish gets the new version, through the head
# dentry's invalidation (far sooner than the dentry's 60 s timeout); an
# entry removed while open keeps serving its reader; a removed head
# and an expired entry leave head/.
. "$(dirname "$0")/lib.sh" "$1"

L init >/dev/null || bail "cannot init"
python3 -c 'import sys; sys.stdout.buffer.write(b"v0-" * 400000)' |
	L put k --version v0 || bail "cannot put v0"
fmount
[ "$rc" -eq 0 ] || bail "mount failed: $(cat "$T/err")"

run python3 - "$LARDER" "$S" "$M" <<'PY'
import os, subprocess, sys, time
larder, store, mnt = sys.argv[1:4]
head = os.path.join(mnt, "head", "default", "k")

def put(ver, data):
    subprocess.run([larder, "--dir", store, "put", "k", "--version", ver],
                   input=data, check=True)

def payload(i):
    return (b"v%d-" % i) * 400000

held = os.open(head, os.O_RDONLY)
first = os.pread(held, 4096, 0)          # pages cached now
assert first == payload(0)[:4096], "the first read is not v0"
worst = 0.0
fails = 0
for i in range(1, 21):
    put("v%d" % i, payload(i))
    t0 = time.monotonic()
    # Wait for the new head to show, bounded: the dentry's own timeout
    # is 60 s, so seeing it within 20 s is the invalidation at work.
    while True:
        with open(head, "rb") as f:
            now = f.read()
        if now == payload(i):
            break
        if now != payload(i - 1):
            print("FAIL - publish %d: a new open read neither v%d nor v%d"
                  % (i, i - 1, i))
            fails += 1
            break
        if time.monotonic() - t0 > 20:
            print("FAIL - publish %d: head still the old version after 20 s" % i)
            fails += 1
            break
        time.sleep(0.005)
    worst = max(worst, time.monotonic() - t0)
    whole = b""
    off = 0
    while True:
        b = os.pread(held, 1 << 20, off)
        if not b:
            break
        whole += b
        off += len(b)
    if whole != payload(0):
        print("FAIL - publish %d: the held reader no longer reads v0" % i)
        fails += 1
    xv = os.getxattr(head, "user.larder.version")
    if xv != b"v%d" % i:
        print("FAIL - publish %d: head's version xattr is %r" % (i, xv))
        fails += 1
    if fails:
        break
os.close(held)
print("worst time for a new open to see a publish: %.3f s" % worst)
sys.exit(1 if fails else 0)
PY
cat "$T/out"
[ "$rc" -eq 0 ] && ok "a held head keeps v0 through 20 publishes; new opens see each" ||
	not_ok "isolation: $(grep FAIL "$T/out" | head -3)"

# Removed while open: the reader keeps its bytes; the head leaves head/.
python3 -c 'import sys; sys.stdout.buffer.write(b"v20-" * 400000)' >"$T/v20"
exec 3<"$M/head/default/k"
L rm k >/dev/null 2>&1 || bail "cannot remove k"
[ ! -e "$(L inspect k --version v20 2>/dev/null | python3 -c '
import json, sys; print(json.load(sys.stdin)["path"])' 2>/dev/null)" ] ||
	not_ok "the entry file is still there after larder rm"
cat <&3 >"$T/held"
cmp -s "$T/held" "$T/v20" &&
	ok "an entry removed while open keeps serving its reader" ||
	not_ok "the removed entry's reader read other bytes"
exec 3<&-
gone() { [ ! -e "$M/head/default/k" ]; }
wait_until "k to leave head/" gone && ok "a removed head leaves head/" ||
	not_ok "head/default/k is still there"
# An entry that expires leaves head/ (its dentry lives no longer than
# the entry), while a reader that opened it before keeps its bytes.
echo short-lived | L put e --version v1 --ttl 1 || bail "cannot put e"
exec 3<"$M/head/default/e" || bail "cannot open e"
expired() { [ ! -e "$M/head/default/e" ]; }
wait_until "e to expire" expired && ok "an expired entry leaves head/" ||
	not_ok "head/default/e is still there after its TTL"
[ "$(cat <&3)" = short-lived ] && ok "its earlier reader still reads it" ||
	not_ok "the expired entry's reader read other bytes"
exec 3<&-
"$LARDER" umount "$M" 2>"$T/err" && ok "unmounted" || not_ok "umount: $(cat "$T/err")"
finish
