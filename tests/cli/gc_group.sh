#!/bin/sh
# A group-shared store keeps cleaning itself whoever cleaned first: two
# real users of one group, a store made with --mode 0664 under umask 022.
# gc.lock takes the store's mode, so the second member's puts keep the cap
# and its gc exits 0; a gc.lock left 0644 by an older larder does not stop
# them either (they clean without the lock, said once at info level), and
# its owner gives it the store's mode again. A user outside the group
# still cannot clean (it may not write the store). gc_failures is 0 from
# the members throughout, and `stat`, --json and --prometheus list it.
#
# Needs root (useradd, runuser); the users and the group are removed at
# exit, whether the test passed or not.
. "$(dirname "$0")/lib.sh" "$1"

if [ "$(id -u)" -ne 0 ]; then
	skip_all "not root (the test makes Unix users)"
fi
G=lgcg$$
U1=lgca$$
U2=lgcb$$
U3=lgcc$$
cleanup() {
	userdel "$U1" 2>/dev/null
	userdel "$U2" 2>/dev/null
	userdel "$U3" 2>/dev/null
	groupdel "$G" 2>/dev/null
	cleanup_bg
	rm -rf "$T"
}
trap cleanup EXIT
if ! { groupadd "$G" && useradd -M -N -g "$G" "$U1" &&
	useradd -M -N -g "$G" "$U2" && useradd -M -N "$U3"; }; then
	bail "cannot make the test's users"
fi

chmod 755 "$T"
mkdir "$S" && chown "$U1:$G" "$S" && chmod 2775 "$S"
printf 'payload' >"$T/p"
chmod 644 "$T/p"
# as USER, umask 022: larder on the store
as() {
	u=$1
	shift
	runuser -u "$u" -- sh -c 'umask 022; exec "$@"' sh "$LARDER" --dir "$S" "$@"
}
entries() { find "$S/ns" -path '*/e/*' -type f -name '????????????????????????????????' | wc -l; }
mode() { stat -c %a "$1"; }

expect_rc 0 "the first member makes a 0664 store capped at 1 entry" as "$U1" init --mode 0664 --max-entries 1
expect_rc 0 "the first member publishes" as "$U1" put a1 "$T/p"
expect_rc 0 "and publishes over the cap (cleans: makes gc.lock)" as "$U1" put a2 "$T/p"
check "gc.lock exists" test -f "$S/gc.lock"
check "gc.lock has the store's mode 664, not the umask's (has $(mode "$S/gc.lock"))" test "$(mode "$S/gc.lock")" = 664

for i in 1 2 3 4 5; do
	expect_rc 0 "the second member's put b$i" as "$U2" put "b$i" "$T/p"
	check "put b$i says nothing on stderr" test ! -s "$T/err"
	check "the cap holds after put b$i ($(entries) entries)" test "$(entries)" -le 1
done
expect_rc 0 "the newest entry is there" as "$U2" get b5
expect_rc 0 "the second member's gc" as "$U2" gc
check "gc says nothing on stderr" test ! -s "$T/err"
expect_out "seen; removed" "gc reports a cleaning"

# A store from before: gc.lock 0644, its owner the first member.
chmod 0644 "$S/gc.lock"
for i in 6 7; do
	expect_rc 0 "with a 0644 gc.lock of the other member, put b$i" as "$U2" put "b$i" "$T/p"
	check "put b$i warns of nothing" test ! -s "$T/err"
	check "the cap still holds after put b$i ($(entries) entries)" test "$(entries)" -le 1
done
expect_rc 0 "gc with the other member's 0644 gc.lock" as "$U2" --log-level info gc
expect_err "cannot open '.*/gc\.lock' for writing: Permission denied; cleaning without the lock" "says it cleans without the lock, at info level"
check "and says it once" test "$(grep -c 'without the lock' "$T/err")" -eq 1
check "no warning" test "$(grep -c 'warn' "$T/err")" -eq 0
expect_rc 3 "a user outside the group, who may not write the store, cannot clean it" as "$U3" gc
expect_err "cannot open '.*/gc\.lock': Permission denied" "and is told why"
check "and removed nothing" test "$(entries)" -eq 1
expect_rc 0 "the lock's owner cleans" as "$U1" gc
check "which gives gc.lock the store's mode again" test "$(mode "$S/gc.lock")" = 664

expect_rc 0 "stat" as "$U2" stat
expect_out "^  gc_failures +0$" "stat lists gc_failures, at 0"
expect_rc 0 "stat --json" as "$U2" stat --json
check "--json has gc_failures 0" test "$(json_get "$T/out" 'j["counters"]["gc_failures"]')" = 0
expect_rc 0 "stat --prometheus" as "$U2" stat --prometheus
expect_out '^larder_gc_failures_total\{store="[^"]*"\} 0$' "--prometheus has larder_gc_failures_total"
expect_out '^# HELP larder_gc_failures_total Cleanings that failed' "with its own HELP line"
finish
