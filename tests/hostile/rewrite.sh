#!/bin/sh
# Promise 1 of docs/security.md: a member who rewrites or truncates an
# entry file in place while others read it can never make a reader hand
# out bytes that were not published whole. Member A publishes a 4 MiB
# entry (it owns the file), makes it writable again and keeps damaging and
# restoring it; member B gets it over and over, to stdout and with -o.
# Every get that exits 0 must have produced exactly the published bytes.
. "$(dirname "$0")/lib.sh" "$1"

mkstore 0664
check "a group-shared store is made" test -f "$S/larder-store"
payload "$T/good" 4194304 1
chmod a+r "$T/good"
cp "$T/good" "$P/good"
chmod a+r "$P/good"
LU "$MA" put k "$P/good" --version v1 >"$T/out" 2>"$T/err"
check "member A publishes the entry" test $? -eq 0
f=$(entry_path k)
check "the published entry is read-only to everyone" \
	sh -c "[ \$(( 0$(mode_of "$f") & 0222 )) -eq 0 ]"
check "member B cannot write into A's entry" \
	sh -c "! runuser -u $MB -- sh -c 'printf x >> \"$f\"' 2>/dev/null"

# The attacker: as A, in a loop until told to stop, make the entry file
# writable, then damage a random 64 KiB and put it back, or cut the file
# short and restore it; republish it when a reader has quarantined it.
cat >"$P/attack.py" <<'PY'
import os, random, subprocess, sys, time
store, larder, good_path, stop = sys.argv[1:5]
good = open(good_path, "rb").read()
r = random.Random(7)
rounds = 0
while not os.path.exists(stop):
    out = subprocess.run([larder, "--dir", store, "inspect", "k", "--version", "v1"],
                         capture_output=True, text=True).stdout
    path = None
    for line in out.splitlines():
        if '"path"' in line:
            path = line.split('"')[3]
    if not path or not os.path.exists(path):
        subprocess.run([larder, "--dir", store, "put", "k", good_path, "--version", "v1"],
                       capture_output=True)
        continue
    try:
        os.chmod(path, 0o644)
        fd = os.open(path, os.O_WRONLY)
    except OSError:
        continue
    # Intact for a while (a reader verifies it then), damaged for a
    # moment (while that reader copies it out), intact again.
    for _ in range(100):
        time.sleep(r.random() * 0.004)
        if r.random() < 0.2:
            os.ftruncate(fd, len(good) // 2)
            time.sleep(0.001)
            os.pwrite(fd, good[len(good) // 2 - 4096:], len(good) // 2 - 4096)
        else:
            off = r.randrange(0, len(good) - 65536)
            os.pwrite(fd, os.urandom(65536), off)
            time.sleep(0.001)
            os.pwrite(fd, good[off:off + 65536], off)
        rounds += 1
    os.close(fd)
print(rounds)
PY
chmod a+r "$P/attack.py"
as "$MA" /usr/bin/python3 "$P/attack.py" "$S" "$BIN/larder" "$P/good" "$P/stop" \
	>"$T/rounds" 2>"$T/attack.err" &
apid=$!

ok_runs=0
bad_runs=0
wrong=0
i=0
while [ $i -lt 300 ]; do
	i=$((i + 1))
	if [ $((i % 2)) -eq 0 ]; then
		rm -f "$P/o.$MB"
		LU "$MB" get k --version v1 -o "$P/o.$MB" 2>/dev/null
		rc=$?
		got="$P/o.$MB"
		if [ $rc -ne 0 ] && [ -e "$got" ]; then
			wrong=$((wrong + 1))
			echo "get -o failed (exit $rc) yet left a file behind"
		fi
	else
		LU "$MB" get k --version v1 >"$T/got" 2>/dev/null
		rc=$?
		got="$T/got"
	fi
	if [ $rc -eq 0 ]; then
		ok_runs=$((ok_runs + 1))
		if ! same "$got" "$T/good"; then
			wrong=$((wrong + 1))
			echo "get $i exited 0 with bytes that were never published"
		fi
	else
		bad_runs=$((bad_runs + 1))
	fi
done
as "$MA" touch "$P/stop"
wait $apid
echo "# $ok_runs gets succeeded, $bad_runs did not; attacker rounds: $(cat "$T/rounds")"
check "the attacker really rewrote the file while B read it" \
	test "$(cat "$T/rounds" 2>/dev/null || echo 0)" -gt 0
check "no get exited 0 with wrong bytes ($wrong of 300)" test "$wrong" -eq 0
finish
