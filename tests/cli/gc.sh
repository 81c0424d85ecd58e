#!/bin/sh
# Quotas, watermarks and cleaning from the command line: init and config
# set them (bad values are refused with exit 2), gc cleans (--dry-run
# removes nothing), a put over the cap cleans, and below the stop
# watermark a put stores nothing and says so.
. "$(dirname "$0")/lib.sh" "$1"

entries() { find "$S/ns" -path '*/e/*' -type f -name '????????????????????????????????' | wc -l; }

expect_rc 0 "init with caps" L init --max-bytes 10G --max-entries 100
expect_rc 0 "config prints" L config
expect_out "^max_bytes 10737418240$" "10G is 10 GiB"
expect_out "^max_entries 100$" "max_entries as set"
expect_out "^watermarks 0,0,0 \\(off\\)$" "watermarks are off by default"
expect_out "^touch_interval 60$" "default touch interval"

echo "future_knob 7" >>"$S/config"
expect_rc 0 "config --watermarks --touch-interval" L config --watermarks 20,15,5 --touch-interval 5
expect_rc 0 "config prints again" L config
expect_out "^watermarks 20,15,5$" "watermarks changed"
expect_out "^touch_interval 5$" "touch interval changed"
expect_out "^max_bytes 10737418240$" "max_bytes kept"
check "an unknown line in DIR/config is kept" grep -qx "future_knob 7" "$S/config"
expect_rc 0 "config --watermarks 0,0,0 turns them off" L config --watermarks 0,0,0
run L config
expect_out "^watermarks 0,0,0 \(off\)$" "off is shown"

expect_rc 0 "config --ns a --max-bytes 1M" L config --ns a --max-bytes 1M
run L config --ns a
expect_out "^max_bytes 1048576$" "namespace cap"
expect_out "^max_entries 0 \(none\)$" "namespace has no entry cap"

for bad in "--max-bytes 1X" "--max-bytes -1" "--max-bytes 99999999T" "--max-entries abc" \
	"--watermarks 5,6,7" "--watermarks 10,7" "--watermarks 10,7,3,1" "--watermarks 101,7,3" \
	"--touch-interval -5"; do
	# shellcheck disable=SC2086
	expect_rc 2 "config $bad is refused" L config $bad
	expect_err "config: bad --" "config $bad names the option"
done
expect_rc 2 "--watermarks with --ns is refused" L config --ns a --watermarks 20,15,5
expect_err "store-wide" "and says why"
expect_rc 2 "init --max-bytes 1Q is refused" L init --max-bytes 1Q

# gc: 5 entries, a cap of 3 -> down to 90% of 3 (2): 3 go
expect_rc 0 "remove the store cap" L config --max-bytes 0 --max-entries 0
printf 'payload' >"$T/p"
for i in 1 2 3 4 5; do L put "k$i" "$T/p" >/dev/null 2>&1; done
expect_rc 0 "config --max-entries 3" L config --max-entries 3
expect_rc 0 "gc --dry-run" L gc --dry-run
expect_out "^dry run: 5 entries .* would remove 0 expired, 0 superseded, 3 least recently used" "dry run says what would go"
expect_err "would remove" "and lists each"
check "dry run removed nothing" test "$(entries)" -eq 5
expect_rc 0 "gc" L gc
expect_out "removed 0 expired, 0 superseded, 3 least recently used" "gc reports what went"
check "gc removed 3" test "$(entries)" -eq 2
expect_rc 0 "gc --ns default" L gc --ns default

# gc sweeps the debris of crashed processes: a temp file two days old (any
# host's) goes, a fresh one (a writer at work) stays.
d=$(dirname "$(find "$S/ns/default/e" -type f | head -n 1)")
printf 'half' >"$d/.tmp.otherhost.12345.00112233aabbccdd"
touch -d '2 days ago' "$d/.tmp.otherhost.12345.00112233aabbccdd"
printf 'half' >"$d/.tmp.otherhost.12346.00112233aabbccde"
expect_rc 0 "gc with debris" L gc
expect_out "removed .* 1 stale files of crashed processes" "gc says it swept one file"
check "the old temp is gone" test ! -e "$d/.tmp.otherhost.12345.00112233aabbccdd"
check "the fresh temp stays" test -e "$d/.tmp.otherhost.12346.00112233aabbccde"
rm -f "$d/.tmp.otherhost.12346.00112233aabbccde"
expect_rc 2 "gc --ns with a bad name" L gc --ns ../x

# a put over the cap cleans
for i in 6 7 8 9 10 11; do L put "k$i" "$T/p" >/dev/null 2>&1; done
check "puts over the cap are cleaned (<= 3 left)" test "$(entries)" -le 3
expect_rc 0 "the newest stays" L get k11

# gc --ns cleans that namespace only: when the store as a whole stays
# over its cap, it says so on stderr and still exits 0. Namespace b holds
# one entry and default at least two, so that no cleaning of b alone can
# bring the store under a cap of 1 entry (or of 1 byte).
bytes() { find "$S/ns" -path '*/e/*' -type f -name '????????????????????????????????' -printf '%s\n' | awk '{s += $1} END {print s}'; }
expect_rc 0 "no store cap for now" L config --max-entries 0
L --ns b put b1 "$T/p" >/dev/null 2>&1
check "default holds at least two entries" test "$(find "$S/ns/default/e" -type f -name '????????????????????????????????' | wc -l)" -ge 2
expect_rc 0 "a store entry cap below its usage" L config --max-entries 1
expect_rc 0 "gc --ns b with the store over its cap" L --ns b gc
expect_err "^larder: warn: the store as a whole is over its cap of 1 entries \($(entries) stored\): run 'larder gc' without --ns$" "gc --ns says the store is over its entry cap, with the count"
expect_out "seen; removed" "and still reports its cleaning on stdout"
expect_rc 0 "gc --ns b --dry-run with the store over its cap" L --ns b gc --dry-run
expect_err "the store as a whole would still be over its cap of 1 entries" "a dry run says it would still be over"
expect_rc 0 "a store byte cap below its usage instead" L config --max-entries 0 --max-bytes 1
expect_rc 0 "gc --ns b with the store over its byte cap" L --ns b gc
expect_err "^larder: warn: the store as a whole is over its cap of 1 bytes \($(bytes) used\): run 'larder gc' without --ns$" "gc --ns names the byte cap and the bytes used"
expect_rc 0 "a store cap above its usage" L config --max-bytes 1G
expect_rc 0 "gc --ns b with the store under its cap" L --ns b gc
check "gc --ns says nothing when the store is under its cap" test ! -s "$T/err"
expect_rc 0 "no store cap" L config --max-bytes 0
expect_rc 0 "gc --ns b without a store cap" L --ns b gc
check "gc --ns says nothing without a store cap" test ! -s "$T/err"
expect_rc 0 "gc over the store cap, without --ns" L config --max-entries 1
expect_rc 0 "a whole gc" L gc
check "a gc without --ns gives no such note" test "$(grep -c 'as a whole' "$T/err")" = 0
check "a whole gc brings the store under its cap" test "$(entries)" -le 1

# below the stop watermark: nothing stored, and said so. On a 4 MiB tmpfs
# mounted in a mount namespace of its own (unshare -m, mounts private),
# so that it goes with the namespace however the test ends: nothing stays
# mounted on the host. The commands run in there; their results are
# checked out here.
M=$T/mnt
mkdir -p "$M"
if unshare -m sh -c 'mount --make-rprivate / && mount -t tmpfs -o size=4m tmpfs "$1"' - "$M" 2>/dev/null; then
	unshare -m sh -s - "$LARDER" "$M" "$T" <<'NS' >"$T/wm.log" 2>&1
LARDER=$1 M=$2 T=$3
mount --make-rprivate / && mount -t tmpfs -o size=4m tmpfs "$M" || exit 1
"$LARDER" --dir "$M/s" init >/dev/null || exit 1
"$LARDER" --dir "$M/s" config --watermarks 50,40,20 >/dev/null || exit 1
avail=$(df -k --output=avail "$M" | tail -1)
size=$(df -k --output=size "$M" | tail -1)
fallocate -l $(((avail - size / 10) * 1024)) "$M/ballast" || exit 1
"$LARDER" --dir "$M/s" put refused "$T/p" >"$T/wm.put.out" 2>"$T/wm.put.err"
echo $? >"$T/wm.put.rc"
"$LARDER" --dir "$M/s" get refused >"$T/wm.get.out" 2>"$T/wm.get.err"
echo $? >"$T/wm.get.rc"
NS
	check "a store below its stop watermark set up on a private tmpfs" test $? -eq 0
	cp "$T/wm.put.err" "$T/err" 2>/dev/null
	check "put below the stop watermark fails (exit 4)" test "$(cat "$T/wm.put.rc" 2>/dev/null)" = 4
	expect_err "stop watermark of 20%" "the message names the watermark"
	expect_err "nothing was stored" "and says nothing was stored"
	check "nothing was stored (get exits 1)" test "$(cat "$T/wm.get.rc" 2>/dev/null)" = 1
	check "the tmpfs is not mounted on the host" sh -c '! grep -qF " $1 " /proc/self/mounts' sh "$M"
else
	skip "the stop watermark: no tmpfs in a private mount namespace (not root?)"
fi
finish
