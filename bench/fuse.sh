#!/bin/sh
# `larder mount` against reading the entry file directly (docs/fuse.md,
# docs/performance.md), measured in one run, interleaved:
#  - sequential read of a large entry (1 GiB by default) through the
#    mount: the first read (verification included) and cached reads,
#    against reads of the entry file's payload; target: cached >= 0.8x;
#  - open + read + close of a 4 KiB entry, against the same on the entry
#    file, through a default mount (zero-message opens) and one with
#    --daemon-open (a round trip per open); target: <= 10x by default;
#  - the first stat (a lookup) of a 256 MiB entry through each mount:
#    both read its header only (the payload is verified at the first
#    read);
#  - the page cache: pages of the entry file and of the mounted file
#    (fincore) after the reads: one copy per entry is the target.
#
#   sh bench/fuse.sh [BUILD_DIR] [BIG_MIB] [SMALL_ROUNDS]
#       (defaults: build, 1024, 2000)
set -eu
BUILD=${1:-build}
BIG_MIB=${2:-1024}
ROUNDS=${3:-2000}
LARDER=$(cd "$BUILD" && pwd)/cli/larder
[ -x "$LARDER" ] || { echo "no $LARDER: build first (make build)" >&2; exit 2; }
[ -c /dev/fuse ] || { echo "no /dev/fuse here" >&2; exit 77; }
T=$(mktemp -d "${TMPDIR:-/tmp}/larder-bench-fuse.XXXXXX")
M=$T/mnt
F=$T/mnt-daemon
S=$T/store
mkdir "$M" "$F"
trap '"$LARDER" umount --force "$M" 2>/dev/null
"$LARDER" umount --force "$F" 2>/dev/null; rm -rf "$T"' EXIT
trap 'exit 130' INT TERM
"$LARDER" --dir "$S" init >/dev/null
head -c $((BIG_MIB * 1024 * 1024)) /dev/urandom | "$LARDER" --dir "$S" put big --version v1
head -c 4096 /dev/urandom | "$LARDER" --dir "$S" put small --version v1
head -c $((256 * 1024 * 1024)) /dev/urandom | "$LARDER" --dir "$S" put fresh --version v1
head -c $((256 * 1024 * 1024)) /dev/urandom | "$LARDER" --dir "$S" put probe --version v1
"$LARDER" mount "$S" "$M"
"$LARDER" mount --daemon-open "$S" "$F"

python3 - "$LARDER" "$S" "$M" "$ROUNDS" "$F" <<'PY'
import json, os, statistics, subprocess, sys, time
larder, store, mnt, rounds = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
fmnt = sys.argv[5]

def entry(key):
    info = json.loads(subprocess.run([larder, "--dir", store, "inspect", key],
                                     capture_output=True, check=True).stdout)
    return info["path"], info["file_size"] - info["stored_size"], info["size"]

def read_all(path, off, size):
    fd = os.open(path, os.O_RDONLY)
    try:
        t0 = time.perf_counter()
        pos, chunk = off, 1 << 20
        end = off + size
        while pos < end:
            n = len(os.pread(fd, min(chunk, end - pos), pos))
            if n == 0:
                sys.exit("short read of %s" % path)
            pos += n
        return time.perf_counter() - t0
    finally:
        os.close(fd)

big_path, big_off, big_size = entry("big")
small_path, small_off, small_size = entry("small")
mbig = os.path.join(mnt, "head", "default", "big")
msmall = os.path.join(mnt, "head", "default", "small")
fsmall = os.path.join(fmnt, "head", "default", "small")

read_all(big_path, big_off, big_size)          # the entry file, warm
first = read_all(mbig, 0, big_size)            # verification + first fill
direct, cached = [], []
for _ in range(5):
    direct.append(read_all(big_path, big_off, big_size))
    cached.append(read_all(mbig, 0, big_size))
mib = big_size / (1 << 20)
d, c = statistics.median(direct), statistics.median(cached)
print("sequential read of %d MiB (median of 5):" % mib)
print("  entry file directly   %8.0f MiB/s" % (mib / d))
print("  mount, first read     %8.0f MiB/s  (%.2fx direct; verifies first)"
      % (mib / first, d / first))
print("  mount, cached         %8.0f MiB/s  (%.2fx direct; target >= 0.8x)"
      % (mib / c, d / c))

def small_loop(path, off, n):
    t0 = time.perf_counter()
    for _ in range(n):
        fd = os.open(path, os.O_RDONLY)
        os.pread(fd, small_size, off)
        os.close(fd)
    return (time.perf_counter() - t0) / n

small_loop(msmall, 0, 100)
small_loop(fsmall, 0, 100)
small_loop(small_path, small_off, 100)
sd, sm, sf = [], [], []
for _ in range(11):
    sd.append(small_loop(small_path, small_off, rounds // 10))
    sm.append(small_loop(msmall, 0, rounds // 10))
    sf.append(small_loop(fsmall, 0, rounds // 10))
a, b, f = statistics.median(sd), statistics.median(sm), statistics.median(sf)
print("open+read+close of 4 KiB (median of 11 x %d):" % (rounds // 10))
print("  entry file directly   %8.2f us" % (a * 1e6))
print("  mount                 %8.2f us  (%.1fx direct; target <= 10x)"
      % (b * 1e6, b / a))
print("  mount --daemon-open   %8.2f us  (%.1fx direct)"
      % (f * 1e6, f / a))

def first_stat(path):
    t0 = time.perf_counter()
    os.stat(path)
    return time.perf_counter() - t0

probe_path = entry("probe")[0]
pd = first_stat(probe_path)
pm = first_stat(os.path.join(mnt, "head", "default", "probe"))
pf = first_stat(os.path.join(fmnt, "head", "default", "probe"))
print("first stat (lookup) of a 256 MiB entry:")
print("  entry file            %8.3f ms" % (pd * 1e3))
print("  mount                 %8.3f ms  (reads its header)" % (pm * 1e3))
print("  mount --daemon-open   %8.3f ms  (reads its header)" % (pf * 1e3))

def fincore(path):
    r = subprocess.run(["fincore", "--bytes", "--noheadings", "--output",
                        "RES", path], capture_output=True, text=True)
    return int(r.stdout.split()[0]) if r.returncode == 0 and r.stdout.split() else -1

# The large entry's file was read directly above, for the baseline: its
# pages are cached for that reason. A second entry, read only through the
# mount, shows what serving it leaves.
fresh = os.path.join(mnt, "head", "default", "fresh")
fresh_path, fresh_off, fresh_size = entry("fresh")
before = fincore(fresh_path)
read_all(fresh, 0, fresh_size)
fe, fm = fincore(fresh_path), fincore(fresh)
print("page cache, an entry of %d MiB read once through the mount (fincore):"
      % (fresh_size >> 20))
print("  entry file     %6.0f MiB  (%.0f MiB before the read: its publish)"
      % (fe / (1 << 20), before / (1 << 20)))
print("  mounted file   %6.0f MiB  (copies held: %d)"
      % (fm / (1 << 20), (fe > fresh_size // 2) + (fm > fresh_size // 2)))
PY
echo "load: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores"
