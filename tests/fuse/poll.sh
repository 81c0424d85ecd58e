#!/bin/sh
# larder mount where no inotify event comes (a publish from another host
# of a network filesystem; here inotify_init1 fails, through the fault
# shim): the head watch says so and reads the heads every --poll
# interval, so a new open sees a publish long before the head dentry's
# 60 s timeout would have let it.
. "$(dirname "$0")/lib.sh" "$1"

if [ -z "${LARDER_FAULTSHIM:-}" ] || [ ! -f "$LARDER_FAULTSHIM" ]; then
	skip_all "LARDER_FAULTSHIM (tests/faultshim.c) not given"
fi
L init >/dev/null || bail "cannot init"
echo one | L put k --version v1 || bail "cannot put"
# Under ASan its runtime must come first in LD_PRELOAD.
pre=$LARDER_FAULTSHIM
asan=$(ldd "$LARDER" 2>/dev/null | awk '/libasan/ { print $3; exit }')
[ -n "$asan" ] && pre="$asan $pre"
fstart_env() {
	fmounts="$fmounts $M"
	env LD_PRELOAD="$pre" LARDER_FAULT_OP=inotify \
		LARDER_FAULT_NTH=1 LARDER_FAULT_PERSIST=1 LARDER_FAULT_ERRNO=ENOSYS \
		"$LARDER" mount --foreground --poll 0.3 "$S" "$M" 2>"$T/ferr" &
	fpid=$!
	track $fpid
	wait_until "the mount" mounted "$M"
}
fstart_env || bail "no mount: $(cat "$T/ferr")"
[ "$(cat "$M/head/default/k")" = one ] && ok "reads v1" || not_ok "v1 not read"
echo two | L put k --version v2 || bail "cannot put v2"
is_two() { [ "$(cat "$M/head/default/k")" = two ]; }
wait_until "v2 through head/" is_two &&
	ok "without inotify a publish is seen through the poll" ||
	not_ok "head/default/k never showed v2"
grep -q 'looked at every 300 ms only' "$T/ferr" &&
	ok "the daemon says it polls only" ||
	not_ok "no word of polling: $(cat "$T/ferr")"
kill -TERM "$fpid"
wait "$fpid" && not_mounted "$M" && ok "SIGTERM unmounts" || not_ok "SIGTERM"
finish
