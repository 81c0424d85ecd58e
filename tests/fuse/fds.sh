#!/bin/sh
# larder mount, out of descriptors: a daemon allowed 64 descriptors (soft
# and hard, so that raising the soft limit at the start gains nothing)
# while a reader keeps 162 of its files open at once, every inode looked
# up and none read yet. Each open succeeds, each file then reads back
# whole, byte for byte (an inode the daemon could not hold an entry for
# at its lookup looks it up at its first read: docs/fuse.md, "Not yet"),
# and a damaged entry among them is still EIO, serving nothing: one
# opened first (held from its lookup), one opened last (held by nothing).
. "$(dirname "$0")/lib.sh" "$1"

command -v prlimit >/dev/null 2>&1 || skip_all "no prlimit here"
L init >/dev/null || bail "cannot init"

# 150 small entries, 10 of 2 MiB (held by their header only until read,
# then mapped), and two damaged ones.
python3 - "$T/src" <<'PY' || bail "cannot write the sources"
import os, sys
d = sys.argv[1]
os.mkdir(d)
for i in range(160):
    n = 2 * 1024 * 1024 + i if i >= 150 else 100 + 97 * i
    with open(os.path.join(d, "k%d" % i), "wb") as f:
        f.write(os.urandom(n))
for k in ("bad1", "bad2"):
    with open(os.path.join(d, k), "wb") as f:
        f.write(os.urandom(5000))
PY
for f in "$T"/src/*; do
	L put "${f##*/}" --version v1 <"$f" || bail "cannot put ${f##*/}"
done
damage_last_byte bad1
damage_last_byte bad2

fmounts="$fmounts $M"
prlimit --nofile=64:64 "$LARDER" mount --foreground "$S" "$M" 2>"$T/ferr" &
fpid=$!
track $fpid
wait_until "the mount" mounted "$M" || bail "no mount: $(cat "$T/ferr")"
grep -Eq '^Max open files +64 +64 ' "/proc/$fpid/limits" &&
	ok "the daemon may have 64 descriptors" ||
	not_ok "the daemon's limit: $(grep 'open files' "/proc/$fpid/limits")"

# A stat of each, as `ls -l` makes: every lookup answers, with the size.
run python3 - "$M" "$T/src" <<'PY'
import os, sys
m, src = sys.argv[1], sys.argv[2]
good = 0
for k in sorted(os.listdir(src)):
    try:
        if os.stat(os.path.join(m, "@v1", "default", k)).st_size == \
           os.path.getsize(os.path.join(src, k)):
            good += 1
    except OSError as e:
        print("stat %s: %s" % (k, e), file=sys.stderr)
print("stat", good)
PY
grep -qx 'stat 162' "$T/out" &&
	ok "a stat of each of the 162 gives its size" ||
	not_ok "stats: $(cat "$T/out"); $(head -3 "$T/err")"

# Every file opened first (half by head/, half by @v1/), all held open,
# then each read: the kernel keeps every inode while its file is open.
run python3 - "$M" "$T/src" <<'PY'
import errno, os, sys
m, src = sys.argv[1], sys.argv[2]
names = ["bad1"] + sorted(k for k in os.listdir(src) if k[0] == "k")
names.append("bad2")
fds, opened = {}, 0
for i, k in enumerate(names):
    view = "head" if i % 2 else "@v1"
    try:
        fds[k] = os.open(os.path.join(m, view, "default", k), os.O_RDONLY)
        opened += 1
    except OSError as e:
        print("open %s/%s: %s" % (view, k, e), file=sys.stderr)
print("opened", opened, "of", len(names))
same = 0
for k, fd in fds.items():
    with open(os.path.join(src, k), "rb") as f:
        want = f.read()
    try:
        got = b""
        while True:
            b = os.read(fd, 1 << 20)
            if not b:
                break
            got += b
    except OSError as e:
        print("read", k, e.errno == errno.EIO and "EIO" or str(e))
        continue
    if got == want:
        same += 1
    else:
        print("differs", k, len(got), len(want))
print("same", same)
PY
[ "$rc" -eq 0 ] || bail "the reader failed: $(cat "$T/err")"
grep -qx 'opened 162 of 162' "$T/out" &&
	ok "162 files open at once on a daemon with 64 descriptors" ||
	not_ok "opens: $(grep opened "$T/out"); $(head -3 "$T/err")"
grep -qx 'same 160' "$T/out" &&
	ok "every sound entry reads whole, byte for byte" ||
	not_ok "reads: $(grep -v opened "$T/out" | head -5)"
for k in bad1 bad2; do
	grep -qx "read $k EIO" "$T/out" &&
		ok "the damaged entry $k among them is EIO" ||
		not_ok "the damaged entry $k: $(grep $k "$T/out")"
done
# And again, now that nothing is held open: every entry is verified.
bad=0
for f in "$T"/src/k*; do
	cmp -s "$M/head/default/${f##*/}" "$f" || bad=$((bad + 1))
done
[ "$bad" = 0 ] && ok "read again, every sound entry is the same" ||
	not_ok "$bad entries differ when read again"
for k in bad1 bad2; do
	run cat "$M/@v1/default/$k"
	[ "$rc" -ne 0 ] && [ ! -s "$T/out" ] &&
		ok "the damaged entry $k stays unserved" ||
		not_ok "$k read again: exit $rc, $(wc -c <"$T/out") bytes"
done

kill -TERM "$fpid"
wait "$fpid" && not_mounted "$M" && ok "SIGTERM unmounts" || not_ok "SIGTERM"
finish
