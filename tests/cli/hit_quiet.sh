#!/bin/sh
# A `larder get` hit, as a whole process from start to exit, changes
# nothing in the store: no file's content, size, mode, mtime or ctime,
# and no atime (the recency touch off: an interval of a year), no file
# made or removed. Misses and puts still write their counters.
. "$(dirname "$0")/lib.sh" "$1"

L init >/dev/null 2>&1 || bail "cannot init"
L config --touch-interval 31536000 >/dev/null 2>&1 ||
	bail "cannot set the touch interval"
head -c 4096 /dev/urandom >"$T/payload"
L put k <"$T/payload" || bail "cannot put"
L put --version v1 kv <"$T/payload" || bail "cannot put a version"
L get nope >/dev/null 2>&1 # a miss: the counters exist, as in use

# Every file's state (find's %A@ is the atime, %T@ the mtime, %C@ the
# ctime) and content. Reading the content is done with the atimes already
# past every ctime (below), so on a relatime mount it moves none.
state() {
	find "$S" -printf '%p %y %m %s a%A@ m%T@ c%C@\n' | sort
	find "$S" -type f -exec md5sum {} + | sort
}
# Let the clock pass the timestamps' granularity, then read everything
# once: relatime moves each atime past its ctime now, and a later read
# leaves it alone for a day. Any change after this is a write.
sleep 0.05
find "$S" -type f -exec cat {} + >/dev/null
ls -R "$S" >/dev/null
state >"$T/before"
# Where atimes move on every read (strictatime), only writes are looked at.
cat "$S/larder-store" >/dev/null
if [ "$(state)" != "$(cat "$T/before")" ]; then
	skip "atime: this mount moves it on every read"
	state() {
		find "$S" -printf '%p %y %m %s m%T@ c%C@\n' | sort
		find "$S" -type f -exec md5sum {} + | sort
	}
	state >"$T/before"
fi
sleep 0.05

expect_rc 0 "a get hit by the head" L get k -o "$T/got"
check "its payload" cmp -s "$T/got" "$T/payload"
expect_rc 0 "a get hit with a version" L get --version v1 kv
expect_rc 0 "a get hit to stdout" sh -c '"$1" --dir "$2" get k >/dev/null' - "$LARDER" "$S"
state >"$T/after"
check "the hits changed nothing in the store" cmp -s "$T/before" "$T/after"
[ -s "$T/before" ] && ! cmp -s "$T/before" "$T/after" &&
	diff "$T/before" "$T/after" >&2

# A miss still writes its counts (and the lookups that ride along).
expect_rc 1 "a miss" L get nope
state >"$T/after"
check "a miss writes its counters" sh -c '! cmp -s "$1" "$2"' - "$T/before" "$T/after"
expect_rc 0 "stat" L stat --json
check "both misses counted" test "$(json_get "$T/out" 'j["counters"]["misses"]')" = 2
check "the identity holds" test "$(json_get "$T/out" 'j["counters"]["requests"] == j["counters"]["hits"] + j["counters"]["misses"] + j["counters"]["waits"]')" = True
finish
