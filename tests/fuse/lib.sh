# lib.sh — shared by the tests of `larder mount` (sourced, not run).
#
# Usage in a script:  . "$(dirname "$0")/lib.sh" "$1"
# Gives what tests/cli/lib.sh gives, and: $M (a mount point in $T),
# fmount (mount, remembered), fstart (mount in the foreground, in the
# background: its pid in $fpid), mounted/wait_mounted/wait_gone. Every
# mount a script made is unmounted at exit however the script ends
# (--force, so that a failed test never leaves one behind); the suite's
# last test (none_left.sh) checks that none is left.

. "$(dirname "$0")/../cli/lib.sh" "$1"

if [ ! -c /dev/fuse ]; then
	skip_all "no /dev/fuse here: FUSE mounts cannot be tested"
fi
if ! "$LARDER" help mount >/dev/null 2>&1; then
	skip_all "larder was built without LARDER_WITH_FUSE"
fi

M=$T/mnt
mkdir "$M" || bail "cannot make $M"
fmounts=

fuse_cleanup() {
	for m in $fmounts; do
		if mounted "$m"; then
			"$LARDER" umount --force "$m" 2>/dev/null ||
				echo "FAIL - cannot unmount $m at exit" >&2
		fi
	done
}
trap 'fuse_cleanup; cleanup_bg; rm -rf "$T"' EXIT

# mounted MNT: MNT is a larder mount now.
mounted() {
	awk -v m="$1" '$5 == m && $0 ~ / - fuse\.larder / { f = 1 }
		END { exit !f }' /proc/self/mountinfo
}

# wait_until DESC CMD...: CMD succeeds within 20 s (a bound on a
# condition, checked as it goes, not a pause); 1 if it never did.
wait_until() {
	_desc=$1
	shift
	_i=0
	while ! "$@"; do
		_i=$((_i + 1))
		if [ $_i -gt 2000 ]; then
			echo "gave up waiting: $_desc" >&2
			return 1
		fi
		sleep 0.01
	done
	return 0
}

not_mounted() {
	! mounted "$1"
}

# damage_last_byte KEY: flip the last byte of KEY's entry file (its
# payload's: the header stays sound, so only the payload checksum can
# tell), or bail; path is its path.
damage_last_byte() {
	path=$(L inspect "$1" | python3 -c '
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
}

# fmount [MNT] ARGS...: larder mount ARGS (the store is $S) on MNT
# (default $M), remembered for the cleanup; status in $rc.
fmount() {
	_m=$M
	case ${1:-} in /*) _m=$1 && shift ;; esac
	fmounts="$fmounts $_m"
	"$LARDER" mount "$@" "$S" "$_m" >"$T/out" 2>"$T/err"
	rc=$?
}

# fstart [MNT] ARGS...: larder mount --foreground in the background, its
# pid in $fpid, once mounted (0) or not within the bound (1).
fstart() {
	_m=$M
	case ${1:-} in /*) _m=$1 && shift ;; esac
	fmounts="$fmounts $_m"
	"$LARDER" mount --foreground "$@" "$S" "$_m" 2>"$T/ferr" &
	fpid=$!
	track $fpid
	wait_until "the mount on $_m" mounted "$_m"
}
