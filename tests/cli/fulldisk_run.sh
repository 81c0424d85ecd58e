#!/bin/sh
# fulldisk_run.sh — `larder run` on a store that cannot keep the result:
# a 2 MiB tmpfs and a command that prints 4 MiB (ENOSPC while the output
# is written to the store), then a disk left with 16 KiB free and a
# 48 KiB output (ENOSPC at the commit). The command's output is printed
# whole, its exit status is run's, a warning says why nothing was kept,
# `-v` says `uncached`, nothing is cached and no temp file stays. The
# same for an fdatasync or link that fails (through the fault shim).
#
# The tmpfs is mounted in a mount namespace of its own (unshare -m, mounts
# private), so that it goes with the namespace however the test ends. The
# commands run in there; their results are checked out here.
. "$(dirname "$0")/lib.sh" "$1"

# The later failures of a publish, through the fault shim (no tmpfs
# needed): the fdatasync of the complete temp file (a disk that reports
# ENOSPC late, as NFS does) and the link to the final name. The output
# (200 KiB: past the mmap threshold, so it is in the temp file) is read
# back from there.
head -c 204800 /dev/urandom >"$T/mid" || bail "cannot make an output"
if [ -n "$LARDER_FAULTSHIM" ] && [ -f "$LARDER_FAULTSHIM" ]; then
	pre=$LARDER_FAULTSHIM
	# A sanitizer build needs its runtime first in LD_PRELOAD.
	asan=$(ldd "$LARDER" 2>/dev/null | awk '/libasan/ { print $3; exit }')
	[ -n "$asan" ] && pre="$asan $pre"
	L init >/dev/null 2>&1 || bail "cannot make a store"
	for op in fsync link; do
		expect_rc 0 "$op fails with ENOSPC: the command's status" \
			env LD_PRELOAD="$pre" LARDER_FAULT_OP=$op \
			LARDER_FAULT_NTH=1 LARDER_FAULT_PERSIST=1 \
			LARDER_FAULT_ERRNO=ENOSPC \
			LARDER_FAULT_PATH="$S/ns/default/e/" \
			"$LARDER" --dir "$S" run -v --key "$op" -- \
			env -u LD_PRELOAD cat "$T/mid"
		check "$op fails: the output is printed whole" \
			cmp -s "$T/mid" "$T/out"
		expect_err "not cached.*$op.*No space left on device" \
			"$op fails: a warning names the step and the cause"
		expect_err "^uncached in " "$op fails: -v says uncached"
		expect_rc 1 "$op failed: nothing was cached" L get "$op"
		check "$op failed: no temp file stays in the store" \
			test -z "$(find "$S" -name '*.tmp.*')"
	done
else
	skip "fsync and link failures: LARDER_FAULTSHIM is not set"
fi

M=$T/mnt
mkdir -p "$M"
if ! unshare -m sh -c 'mount --make-rprivate / && mount -t tmpfs -o size=2m tmpfs "$1"' - "$M" 2>/dev/null; then
	skip_all "no tmpfs in a private mount namespace (not root?)"
fi

# The expected outputs: the same bytes the commands print (4 MiB and
# 48 KiB of random bytes).
head -c 4194304 /dev/urandom >"$T/big" || bail "cannot make the big output"
head -c 49152 /dev/urandom >"$T/small" || bail "cannot make the small output"

unshare -m sh -s - "$LARDER" "$M" "$T" <<'NS' >"$T/ns.log" 2>&1
LARDER=$1 M=$2 T=$3
mount --make-rprivate / && mount -t tmpfs -o size=2m tmpfs "$M" || exit 1
L() { "$LARDER" --dir "$M/s" "$@"; }
L init >/dev/null || exit 1
# The disk really fills: no watermark refuses first.
L config --watermarks 0,0,0 >/dev/null || exit 1
# ENOSPC mid-write; the command's own status (3) is run's.
L -v run --cache-failures --key big -- sh -c 'cat "$1"; exit 3' - "$T/big" \
	>"$T/big.out" 2>"$T/big.err"
echo $? >"$T/big.rc"
L get big >/dev/null 2>&1
echo $? >"$T/big.get.rc"
find "$M/s" -name '*.tmp.*' >"$T/big.temps"
# ENOSPC at the commit: an output small enough to stay in memory until
# then, with room for a part of it only.
avail=$(df -k --output=avail "$M" | tail -1)
fallocate -l $(((avail - 16) * 1024)) "$M/ballast" || exit 1
L -v run --key small -- cat "$T/small" >"$T/small.out" 2>"$T/small.err"
echo $? >"$T/small.rc"
L get small >/dev/null 2>&1
echo $? >"$T/small.get.rc"
find "$M/s" -name '*.tmp.*' >"$T/small.temps"
NS
check "a store on a 2 MiB tmpfs in a private mount namespace" test $? -eq 0

for what in big small; do
	cp "$T/$what.err" "$T/err" 2>/dev/null
	want=0
	[ "$what" = big ] && want=3
	check "$what: run exits with the command's status ($want)" \
		test "$(cat "$T/$what.rc" 2>/dev/null)" = "$want"
	check "$what: the command's output is printed whole" \
		cmp -s "$T/$what" "$T/$what.out"
	expect_err "not cached.*No space left on device" \
		"$what: a warning says why the result was not cached"
	expect_err "^uncached in " "$what: -v says uncached"
	check "$what: nothing read back fails (no 'cannot read back')" \
		sh -c '! grep -q "cannot read back" "$1"' sh "$T/err"
	check "$what: nothing was cached (get exits 1)" \
		test "$(cat "$T/$what.get.rc" 2>/dev/null)" = 1
	check "$what: no temp file stays in the store" \
		test -f "$T/$what.temps" -a ! -s "$T/$what.temps"
done
check "the tmpfs is not mounted on the host" \
	sh -c '! grep -qF " $1 " /proc/self/mounts' sh "$M"
finish
