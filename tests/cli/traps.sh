#!/bin/sh
# What sits at an entry's name and is not an entry of this format: a FIFO,
# a stub claiming a newer format, a format field with a flipped bit, a zstd
# payload that does not decompress, and a real newer-format entry. get
# misses, put stores (or, over a real newer entry, refuses), verify reports
# and --repair clears; and --repair counts only what it moved.
. "$(dirname "$0")/lib.sh" "$1"

L init >/dev/null 2>&1 || bail "cannot init"
head -c 100000 /dev/urandom >"$T/p"

# entry_path KEY: the entry file of KEY (its head's version).
entry_path() {
	L inspect "$1" >"$T/inspect.json" 2>/dev/null
	json_get "$T/inspect.json" 'j["path"]'
}

# edit FILE ACTION: rewrite an entry file (a new inode) as a careless or
# hostile writer would; checksums are XXH3-128 from the system's libxxhash.
cat >"$T/edit.py" <<'PY'
import ctypes, ctypes.util, os, struct, sys

lib = ctypes.CDLL(ctypes.util.find_library("xxhash"))


class H128(ctypes.Structure):
    _fields_ = [("low64", ctypes.c_uint64), ("high64", ctypes.c_uint64)]


lib.XXH3_128bits.restype = H128
lib.XXH3_128bits.argtypes = [ctypes.c_char_p, ctypes.c_size_t]


def xxh128(data):
    h = lib.XXH3_128bits(bytes(data), len(data))
    return struct.pack(">QQ", h.high64, h.low64)


path, action = sys.argv[1], sys.argv[2]
b = bytearray(open(path, "rb").read())
hl = struct.unpack_from("<I", b, 12)[0]


def seal_header():
    b[88:104] = bytes(16)
    b[88:104] = xxh128(b[:hl])


if action == "newer":  # a sound entry of format 2
    struct.pack_into("<I", b, 8, 2)
    seal_header()
elif action == "flip-format":  # one flipped bit in the format field
    b[8] ^= 4
elif action == "stub":  # the magic, format 2, and zeros
    b = bytearray(b[:8] + struct.pack("<I", 2) + bytes(92))
elif action == "bad-frame":  # checksummed bytes that are not zstd
    b[hl:] = b"\x42" * (len(b) - hl)
    b[72:88] = xxh128(b[hl:])
    seal_header()
else:
    sys.exit("unknown action " + action)
with open(path + ".new", "wb") as f:
    f.write(b)
os.replace(path + ".new", path)
PY
edit() {
	python3 "$T/edit.py" "$1" "$2"
}

# --- a FIFO --------------------------------------------------------------
L put fifo "$T/p" --version 1
fpath=$(entry_path fifo)
rm -f "$fpath" && mkfifo "$fpath"
expect_rc 5 "verify counts a FIFO at an entry's name as a problem" L verify
expect_out "a FIFO, not a regular file" "verify says what it is"
expect_out "1 problems remain$" "verify says it remains"
expect_rc 0 "verify --repair clears it" L verify --repair
expect_out "1 quarantined, 0 problems remain$" "repair counts it"
check "the FIFO is gone from the entry's name" test ! -e "$fpath"
mkfifo "$fpath"
expect_rc 1 "get of it is a miss" L get fifo
expect_rc 0 "put over it" L put fifo "$T/p" --version 1
expect_rc 0 "then verify is clean" L verify

# --- a stub claiming format 2 --------------------------------------------
L put stub "$T/p" --version 1
spath=$(entry_path stub)
edit "$spath" stub
expect_rc 5 "verify: a stub claiming a newer format is a problem" L verify
expect_out "0 newer format" "... not a newer entry"
expect_rc 0 "put over the stub" L -v put stub "$T/p" --version 1
expect_err "stored" "put stored it (not 'already stored')"
expect_rc 0 "get after it" L get stub -o "$T/stub.out"
check "the stub is replaced by the payload" cmp -s "$T/stub.out" "$T/p"

# --- a flipped bit in the format field ------------------------------------
L put flip "$T/p" --version 1
xpath=$(entry_path flip)
edit "$xpath" flip-format
expect_rc 1 "get: a flipped format bit is a miss" L get flip
check "... and the file is quarantined" test ! -e "$xpath"
expect_rc 0 "put then stores it" L put flip "$T/p" --version 1
expect_rc 0 "and get hits" L get flip -o /dev/null

# --- a zstd payload that does not decompress -------------------------------
L put zbad "$T/p" --version 1 --zstd
zpath=$(entry_path zbad)
edit "$zpath" bad-frame
expect_rc 5 "verify: a zstd payload that does not decompress is a problem" L verify
expect_out "zstd" "verify says it is the zstd payload"
expect_rc 1 "get of it is a miss" L get zbad
L verify --repair >/dev/null 2>&1

# --- a sound entry of a newer format ---------------------------------------
L put newer "$T/p" --version 1
npath=$(entry_path newer)
edit "$npath" newer
cp "$npath" "$T/newer.copy"
expect_rc 0 "verify: a newer-format entry is no problem" L verify
expect_out "1 newer format" "verify counts it"
expect_out "newer larder format \(left alone" "verify names it"
expect_rc 0 "verify --repair leaves it" L verify --repair
check "... the file is still there, unchanged" cmp -s "$npath" "$T/newer.copy"
expect_rc 1 "get of it is a miss" L get newer
expect_rc 3 "put over it fails" L put newer "$T/p" --version 1
expect_err "newer larder format" "put says why"
check "... the file is still there, unchanged" cmp -s "$npath" "$T/newer.copy"
expect_rc 0 "verify --json lists it" L verify --json
check "... under newer_paths" test "$(json_get "$T/out" 'j["newer_paths"][0]')" = "$npath"
rm -f "$npath"

# --- --repair counts only what it moved ------------------------------------
# A reader who cannot move files runs verify --repair on a corrupt entry;
# the store's owner removes the entry after the repair failed but before
# the report. The report must not call it quarantined. The test holds
# verify at the warning its failed repair writes to stderr: a full pipe.
L put gone "$T/p" --version 1
gpath=$(entry_path gone)
edit "$gpath" stub
chmod 755 "$T"
cat >"$T/held.py" <<'PY'
import fcntl, os, platform, subprocess, sys, time

larder, store, entry = sys.argv[1:4]
r, w = os.pipe()
flags = fcntl.fcntl(w, fcntl.F_GETFL)
fcntl.fcntl(w, fcntl.F_SETFL, flags | os.O_NONBLOCK)
for size in (65536, 4096, 1):  # fill the pipe to its last byte
    try:
        while True:
            os.write(w, b"x" * size)
    except BlockingIOError:
        pass
fcntl.fcntl(w, fcntl.F_SETFL, flags)
p = subprocess.Popen(
    ["setpriv", "--reuid=4343", "--regid=4343", "--clear-groups",
     larder, "--dir", store, "verify", "--repair"],
    stdout=subprocess.PIPE, stderr=w)
os.close(w)
# write(2) and writev(2) on fd 2: blocked on the full pipe.
calls = {"x86_64": ("1", "20"), "aarch64": ("64", "66")}[platform.machine()]
while True:
    try:
        with open("/proc/%d/syscall" % p.pid) as f:
            s = f.read().split()
    except FileNotFoundError:
        sys.exit("verify ended before it wrote to stderr")
    if len(s) > 1 and s[0] in calls and int(s[1], 16) == 2:
        break
    time.sleep(0.01)
os.unlink(entry)
with os.fdopen(r, "rb") as f:
    err = f.read()
out = p.stdout.read().decode()
print(out, end="")
sys.exit(p.wait())
PY
run python3 "$T/held.py" "$LARDER" "$S" "$gpath"
check "the held verify --repair ran (exit $rc)" test "$rc" -eq 0
expect_out "0 quarantined, 0 problems remain$" "an entry removed by another is not counted as quarantined"
expect_out "gone \(removed meanwhile, not by this repair\)" "the report says it went away"

finish
