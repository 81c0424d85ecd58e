#!/bin/sh
# larder get: where -o writes (devices, FIFOs and sockets are written into,
# symlinks and directories never replaced), bounded memory for a zstd bomb,
# an entry changed while it is written out is never exit 0, and anything at
# an entry's name that is not a file is a miss that put clears.
. "$(dirname "$0")/lib.sh" "$1"

L init >/dev/null 2>&1 || bail "cannot init"
head -c 3000000 /dev/urandom >"$T/p"
L put k "$T/p" --version 1

# entry_path KEY: the entry file of KEY (its head's version).
entry_path() {
	L inspect "$1" >"$T/inspect.json" 2>/dev/null
	json_get "$T/inspect.json" 'j["path"]'
}

# --- -o into things that are not regular files ---------------------------
expect_rc 0 "get -o /dev/null" L get k -o /dev/null
check "/dev/null is still a character device" test -c /dev/null
if [ -c /dev/full ]; then
	expect_rc 4 "get -o /dev/full" L get k -o /dev/full
	expect_err "cannot write to '/dev/full': No space left on device" \
		"/dev/full: the error names the file and ENOSPC"
	check "/dev/full is still a character device" test -c /dev/full
fi

mkfifo "$T/fifo"
cat "$T/fifo" >"$T/from-fifo" &
cpid=$!
expect_rc 0 "get -o FIFO" L get k -o "$T/fifo"
wait $cpid
check "the FIFO's reader got the payload" cmp -s "$T/from-fifo" "$T/p"
check "the FIFO is still a FIFO" test -p "$T/fifo"

expect_rc 0 "get -o /dev/stdout into a pipe" sh -c '"$1" --dir "$2" get k -o /dev/stdout | cat' sh "$LARDER" "$S"
check "the pipe got the payload" cmp -s "$T/out" "$T/p"
echo "before" >"$T/appended"
L get k -o /dev/stdout >>"$T/appended"
check "get -o /dev/stdout >> FILE appends (the file is not replaced)" \
	test "$(head -n 1 "$T/appended")" = "before"
check "... and holds the payload after the old line" \
	sh -c 'tail -c +8 "$1" | cmp -s - "$2"' sh "$T/appended" "$T/p"

echo old >"$T/target"
ln -s target "$T/link"
expect_rc 0 "get -o a symlink to a file" L get k -o "$T/link"
check "the symlink is still a symlink" test -L "$T/link"
check "the file it points at holds the payload" cmp -s "$T/target" "$T/p"
ln -s /dev/null "$T/to-null"
expect_rc 0 "get -o a symlink to /dev/null" L get k -o "$T/to-null"
check "that symlink is still a symlink" test -L "$T/to-null"
ln -s "$T/nowhere" "$T/dangling"
expect_rc 2 "get -o a dangling symlink is refused" L get k -o "$T/dangling"
expect_err "symbolic link to nothing" "the refusal says why"
check "the dangling symlink is left as it was" test -L "$T/dangling"
check "nothing was created where it points" test ! -e "$T/nowhere"
mkdir "$T/dir"
expect_rc 2 "get -o a directory is refused" L get k -o "$T/dir"
expect_err "is a directory" "the refusal says it is a directory"
check "nothing was written into the directory" test -z "$(ls -A "$T/dir")"
expect_rc 1 "get -o of a miss" L get nothing -o "$T/miss"
check "a miss creates nothing" test ! -e "$T/miss"
check "... and leaves no temp file" test -z "$(ls "$T" | grep 'miss\.tmp')"

# The temp file cannot be renamed into place: nothing under the name.
if [ -n "$LARDER_FAULTSHIM" ] && [ -f "$LARDER_FAULTSHIM" ]; then
	pre=$LARDER_FAULTSHIM
	asan=$(ldd "$LARDER" 2>/dev/null | awk '/libasan/ { print $3; exit }')
	[ -n "$asan" ] && pre="$asan $pre"
	expect_rc 4 "get -o whose rename fails" env LD_PRELOAD="$pre" \
		LARDER_FAULT_OP=rename LARDER_FAULT_NTH=1 LARDER_FAULT_ERRNO=EIO \
		LARDER_FAULT_PATH="$T/failed.tmp" \
		"$LARDER" --dir "$S" get k -o "$T/failed"
	check "a failed get -o leaves nothing under the name" test ! -e "$T/failed"
	check "... and no temp file" test -z "$(ls "$T" | grep 'failed\.tmp')"
else
	skip "a failing write: LARDER_FAULTSHIM is not set"
fi

# --- a zstd bomb: 2 GiB of zeros in about 70 KB --------------------------
# Streamed with bounded memory, it goes through an address space limit far
# below its size. (Not under sanitizers: their shadow memory needs more.)
if ldd "$LARDER" 2>/dev/null | grep -q libasan; then
	skip "the zstd bomb under ulimit -v: sanitizer build"
else
	head -c 2147483648 /dev/zero | L put bomb - --zstd --version 1
	bsize=$(wc -c <"$(entry_path bomb)")
	check "the bomb is small on disk ($bsize bytes)" test "$bsize" -lt 200000
	expect_rc 0 "get of the bomb under ulimit -v 300 MB" \
		sh -c 'ulimit -v 300000 && "$1" --dir "$2" get bomb | wc -c' sh "$LARDER" "$S"
	expect_out "^ *2147483648$" "every byte of the bomb came out"
	expect_rc 0 "get -o of the bomb under ulimit -v 300 MB" \
		sh -c 'ulimit -v 300000 && "$1" --dir "$2" get bomb -o "$3"' sh "$LARDER" "$S" "$T/bomb"
	check "the file holds all of it" test "$(wc -c <"$T/bomb")" -eq 2147483648
	rm -f "$T/bomb"
	L rm bomb
fi

# --- an entry another user owns, changed while it is written out ---------
# Its owner (another uid) rewrites its last bytes after the first bytes
# went out: get must not exit 0. The pipe holds get back: it cannot have
# read the file's end before the test reads from the pipe.
head -c 8000000 /dev/urandom >"$T/p8"
L put theirs "$T/p8" --version 1
tpath=$(entry_path theirs)
chown 4242:4242 "$tpath"
mkfifo "$T/held"
L get theirs >"$T/held" 2>"$T/held.err" &
gpid=$!
exec 3<"$T/held"
dd bs=1 count=1 <&3 >/dev/null 2>&1
tsize=$(wc -c <"$tpath")
printf 'XXXXXXXXXXXXXXXX' | dd of="$tpath" bs=1 seek=$((tsize - 16)) conv=notrunc 2>/dev/null
cat <&3 >/dev/null
exec 3<&-
wait $gpid
grc=$?
check "a get whose entry changed meanwhile does not exit 0 (exit $grc)" test "$grc" -ne 0
check "... and says the bytes are not the entry" grep -q "not the entry" "$T/held.err"
check "... and quarantined the file" test ! -e "$tpath"

# --- a FIFO where an entry should be -------------------------------------
L put trap "$T/p" --version 1
fpath=$(entry_path trap)
rm -f "$fpath"
mkfifo "$fpath"
expect_rc 1 "get of a FIFO at an entry's name is a miss" L get trap
expect_rc 0 "put over a FIFO at an entry's name" L put trap "$T/p" --version 1
expect_rc 0 "get after the put" L get trap -o "$T/trap.out"
check "it is the payload" cmp -s "$T/trap.out" "$T/p"

finish
