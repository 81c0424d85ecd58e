#!/bin/sh
# Heads on disk (docs/format.md "Head hint"): the head of a key is a hard
# link to its newest entry where the filesystem has hard links, and a hint
# file naming the version where it refuses them (here: link() failing
# with EPERM through the fault shim, as on a filesystem without links).
. "$(dirname "$0")/lib.sh" "$1"

L init >/dev/null 2>&1 || bail "cannot init"
printf 'first' >"$T/a"
printf 'second' >"$T/b"

# the single file under the store's h/ (the key's head)
head_file() {
	find "$S/ns/default/h" -type f ! -name '*.lease' ! -name '.*'
}
magic() {
	head -c 8 "$1" | od -An -c | tr -d ' \n'
}

expect_rc 0 "put v1" L put k "$T/a" --version v1
h=$(head_file)
e=$(find "$S/ns/default/e" -type f ! -name '.*')
check "one head, one entry" test -f "$h" -a -f "$e"
check "the head is a hard link to the entry" \
	test "$(stat -c %i "$h")" = "$(stat -c %i "$e")"
check "the entry has two names" test "$(stat -c %h "$e")" = 2
check "the head begins as an entry does" \
	test "$(magic "$h")" = "$(magic "$e")"
expect_rc 0 "get without a version" L get k
check "gives v1" cmp -s "$T/a" "$T/out"
expect_rc 0 "ls" L ls
check "ls lists the entry once" test "$(wc -l <"$T/out")" = 1

if [ -n "$LARDER_FAULTSHIM" ] && [ -f "$LARDER_FAULTSHIM" ]; then
	pre=$LARDER_FAULTSHIM
	asan=$(ldd "$LARDER" 2>/dev/null | awk '/libasan/ { print $3; exit }')
	[ -n "$asan" ] && pre="$asan $pre"
	expect_rc 0 "put v2 where link() is refused" env LD_PRELOAD="$pre" \
		LARDER_FAULT_OP=link LARDER_FAULT_NTH=1 LARDER_FAULT_PERSIST=1 \
		LARDER_FAULT_ERRNO=EPERM LARDER_FAULT_PATH="$S/ns/default/h/" \
		"$LARDER" --dir "$S" put k "$T/b" --version v2
	h=$(head_file)
	check "the head is a hint file" test "$(magic "$h")" = '211LDRHEAD'
	check "with one name" test "$(stat -c %h "$h")" = 1
	expect_rc 0 "get without a version follows the hint" L get k
	check "gives v2" cmp -s "$T/b" "$T/out"
	expect_rc 0 "rm without a version" L rm k
	check "the hint went with v2" test -z "$(head_file)"
	expect_rc 1 "get without a version misses" L get k
	expect_rc 0 "v1 stays" L get k --version v1
else
	skip "a filesystem without hard links: LARDER_FAULTSHIM is not set"
fi

finish
