#!/bin/sh
# larder mount, stopping: a second mount on one point is refused; a busy
# mount stays mounted and its holders are named; SIGTERM and SIGINT
# unmount cleanly; after kill -9 of the daemon the mount answers ENOTCONN
# for whatever the kernel must ask about (any open by name, within the
# directories' 1 s attribute timeout; with --daemon-open, every open),
# never other bytes than the entry's, until `larder umount --force` clears
# it; --force also detaches a busy mount.
. "$(dirname "$0")/lib.sh" "$1"

L init >/dev/null || bail "cannot init"
echo hello | L put k --version v1 || bail "cannot put"
echo other | L put k2 --version v1 || bail "cannot put k2"

# A second mount on the same point.
fstart || bail "no mount: $(cat "$T/ferr")"
run "$LARDER" mount "$S" "$M"
[ "$rc" -ne 0 ] && grep -q 'larder mount already' "$T/err" &&
	ok "a second mount on the same point is refused" ||
	not_ok "second mount: exit $rc"
[ "$(grep -c " $M fuse.larder " /proc/self/mounts)" -eq 1 ] &&
	ok "one mount only" || not_ok "$(grep -c " $M " /proc/self/mounts) mounts"

# Busy: a process holds a file open.
mkfifo "$T/fifo"
sh -c 'exec 3<"$1"; read x <"$2"' holder "$M/head/default/k" "$T/fifo" &
holder=$!
track $holder
held() { ls -l "/proc/$holder/fd" 2>/dev/null | grep -q "$M/head"; }
wait_until "the holder to open its file" held || bail "holder never opened"
run "$LARDER" umount "$M"
[ "$rc" -eq 4 ] && ok "umount of a busy mount exits 4" || not_ok "busy umount: exit $rc"
grep -q "pid $holder (sh): open file" "$T/err" &&
	ok "the holder is named (pid, command, what)" ||
	not_ok "holder not named: $(cat "$T/err")"
mounted "$M" && ok "a busy mount stays mounted" || not_ok "the busy mount went"
echo go >"$T/fifo"
wait $holder

# SIGTERM unmounts, and the daemon exits 0.
kill -TERM "$fpid"
wait "$fpid"
st=$?
[ $st -eq 0 ] && ok "SIGTERM: the daemon exits 0" || not_ok "SIGTERM: exit $st"
not_mounted "$M" && ok "SIGTERM unmounts" || not_ok "still mounted after SIGTERM"

# SIGINT the same. A background job of a script starts with SIGINT
# ignored, which libfuse leaves as it is: the daemon gets it as from a
# terminal.
fmounts="$fmounts $M"
python3 -c 'import os, signal, sys
signal.signal(signal.SIGINT, signal.SIG_DFL)
os.execv(sys.argv[1], sys.argv[1:])' "$LARDER" mount --foreground "$S" "$M" \
	2>"$T/ferr" &
fpid=$!
track $fpid
wait_until "the mount" mounted "$M" || bail "no mount: $(cat "$T/ferr")"
kill -INT "$fpid"
wait "$fpid"
st=$?
[ $st -eq 0 ] && not_mounted "$M" && ok "SIGINT unmounts, exit 0" ||
	not_ok "SIGINT: exit $st"

# larder umount: the daemon (detached) exits.
fmount
[ "$rc" -eq 0 ] || bail "mount failed: $(cat "$T/err")"
cat "$M/head/default/k" >/dev/null
run "$LARDER" umount "$M"
[ "$rc" -eq 0 ] && not_mounted "$M" && ok "larder umount unmounts" ||
	not_ok "umount: exit $rc"
# It returns once the daemon has ended: no process serves $M any more.
daemons=0
for f in /proc/[0-9]*/cmdline; do
	tr '\0' ' ' <"$f" 2>/dev/null | grep -q "larder mount $S $M" &&
		daemons=$((daemons + 1))
done
[ $daemons -eq 0 ] && ok "the detached daemon has ended when umount returns" ||
	not_ok "$daemons daemon(s) still running after larder umount"
run "$LARDER" umount "$M"
[ "$rc" -eq 1 ] && grep -q 'not a larder mount' "$T/err" &&
	ok "umount of what is not a larder mount: exit 1, said" ||
	not_ok "umount of nothing: exit $rc"

# kill -9: ENOTCONN, then --force clears it. Opens do not reach the
# daemon (docs/fuse.md): a file whose name and pages the kernel holds
# may still read, its own bytes; anything the kernel must ask about
# fails.
fstart || bail "no mount: $(cat "$T/ferr")"
cat "$M/head/default/k" >/dev/null
# Even a process holding head/default (its working directory, here a
# descriptor) cannot open k for long once the daemon is dead: every
# lookup checks the permission of the directory it is made in, whose
# attributes the kernel keeps 1 s, and asks the dead daemon for them
# then. The daemon is killed from inside, with the directory held.
run python3 - "$M/head/default" "$fpid" <<'PY'
import errno, os, signal, sys, time
d = os.open(sys.argv[1], os.O_RDONLY | os.O_DIRECTORY)
fd = os.open("k", os.O_RDONLY, dir_fd=d)
os.close(fd)
os.kill(int(sys.argv[2]), signal.SIGKILL)
t0 = time.monotonic()
while time.monotonic() - t0 < 20:
    try:
        fd = os.open("k", os.O_RDONLY, dir_fd=d)
        os.close(fd)
    except OSError as e:
        if e.errno == errno.ENOTCONN:
            print("ENOTCONN after %.1f s" % (time.monotonic() - t0))
            sys.exit(0)
        raise
    time.sleep(0.01)
print("k still opened 20 s after the daemon died")
sys.exit(1)
PY
[ "$rc" -eq 0 ] &&
	ok "a dead daemon's head/ name fails within its directory's 1 s ($(cat "$T/out"))" ||
	not_ok "dead daemon, head/ name: $(cat "$T/out" "$T/err")"
wait "$fpid" 2>/dev/null
run cat "$M/head/default/k2"
[ "$rc" -ne 0 ] && grep -q 'Transport endpoint is not connected' "$T/err" &&
	ok "a dead daemon's mount answers ENOTCONN" ||
	not_ok "dead daemon: exit $rc, out '$(cat "$T/out")'"
run cat "$M/head/default/k"
{ [ "$rc" -eq 0 ] && [ "$(cat "$T/out")" = hello ]; } ||
	{ [ "$rc" -ne 0 ] && [ ! -s "$T/out" ]; } &&
	ok "a file read before the death reads its own bytes or nothing" ||
	not_ok "dead daemon, read before: exit $rc, out '$(cat "$T/out")'"
run "$LARDER" umount --force "$M"
[ "$rc" -eq 0 ] && not_mounted "$M" && ok "umount --force clears a dead mount" ||
	not_ok "umount --force: exit $rc"
# With --daemon-open every open asks: a dead daemon fails it, also for a
# file whose pages the kernel holds.
fstart --daemon-open || bail "no mount: $(cat "$T/ferr")"
cat "$M/head/default/k" >/dev/null
kill -KILL "$fpid"
wait "$fpid" 2>/dev/null
run cat "$M/head/default/k"
[ "$rc" -ne 0 ] && grep -q 'Transport endpoint is not connected' "$T/err" &&
	ok "--daemon-open: a dead daemon fails the open of a cached file" ||
	not_ok "--daemon-open, dead daemon: exit $rc, out '$(cat "$T/out")'"
run "$LARDER" umount --force "$M"
[ "$rc" -eq 0 ] && not_mounted "$M" && ok "umount --force clears it" ||
	not_ok "umount --force: exit $rc"

# --force on a busy, live mount: the holder gets ENOTCONN, the daemon
# ends.
fstart || bail "no mount: $(cat "$T/ferr")"
sh -c 'exec 3<"$1"; read x <"$2"; cat <&3' holder "$M/head/default/k" \
	"$T/fifo" >"$T/held" 2>"$T/held.err" &
holder=$!
track $holder
wait_until "the holder to open its file" held || bail "holder never opened"
run "$LARDER" umount --force "$M"
[ "$rc" -eq 0 ] && not_mounted "$M" && ok "umount --force detaches a busy mount" ||
	not_ok "umount --force busy: exit $rc"
wait "$fpid"
ok "the daemon ends after --force"
echo go >"$T/fifo"
wait $holder
[ ! -s "$T/held" ] && ok "the holder reads nothing after the abort" ||
	not_ok "the holder read '$(cat "$T/held")' after the abort"
finish
