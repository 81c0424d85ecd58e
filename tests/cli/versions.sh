#!/bin/sh
# Versions and the head: a version-less get follows the newest put, older
# versions stay reachable by name, rm removes one version or the head's.
. "$(dirname "$0")/lib.sh" "$1"

L init >/dev/null 2>&1 || bail "cannot init"
printf 'first' >"$T/a"
printf 'second' >"$T/b"

expect_rc 0 "put v1" L put k "$T/a" --version v1
run L get k
check "get without a version gives v1 after one put" cmp -s "$T/a" "$T/out"
expect_rc 0 "put v2" L put k "$T/b" --version v2
expect_rc 0 "get without a version" L get k
check "get without a version gives v2, the newest" cmp -s "$T/b" "$T/out"
expect_rc 0 "get --version v1" L get k --version v1
check "v1 is still reachable by its version" cmp -s "$T/a" "$T/out"
expect_rc 0 "get --version v2" L get --version v2 k
check "v2 by its version" cmp -s "$T/b" "$T/out"
expect_rc 1 "get of an unknown version misses" L get k --version v3
expect_err "not found" "a miss says not found"

# Putting an existing version again makes it the head again.
expect_rc 0 "re-put of v1 succeeds" L put k "$T/a" --version v1
run L get k
check "re-put of v1 moves the head back to v1" cmp -s "$T/a" "$T/out"
expect_rc 0 "re-put of v2" L put k "$T/b" --version v2
run L get k
check "re-put of v2 moves the head to v2" cmp -s "$T/b" "$T/out"

# Namespaces are separate.
expect_rc 1 "another namespace does not see the key" L --ns other get k
expect_rc 0 "put in another namespace" L --ns other put k "$T/a" --version x
expect_rc 0 "get from that namespace" L get k --ns other
check "namespaced payload" cmp -s "$T/a" "$T/out"
expect_rc 2 "an invalid namespace name is a usage error" L --ns '../x' put k "$T/a"

# rm
expect_rc 0 "rm --version v1" L rm k --version v1
expect_rc 1 "get --version v1 misses after rm" L get k --version v1
expect_rc 0 "v2 survives rm of v1" L get k
check "v2 payload after rm of v1" cmp -s "$T/b" "$T/out"
expect_rc 0 "rm without a version removes the head's version" L rm k
expect_rc 1 "get without a version misses after rm" L get k
expect_rc 1 "get --version v2 misses after rm" L get k --version v2
expect_rc 1 "rm of a missing key" L rm k
expect_err "rm: 'k'.*not found" "rm of a missing key says so"
expect_rc 1 "rm of a missing version" L rm k --version nope
expect_rc 0 "the other namespace is untouched" L --ns other get k --version x

finish
