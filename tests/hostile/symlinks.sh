#!/bin/sh
# Promise 2 of docs/security.md: a member cannot make larder open, create,
# remove or rename anything outside the store. Member A plants symbolic
# links where larder expects directories and files of the shared store;
# member B's private store (S2) is the victim: every larder command B runs
# on the shared store must leave it exactly as it was.
. "$(dirname "$0")/lib.sh" "$1"

mkstore 0664
printf 'victim payload' >"$P/vdata"
chmod a+r "$P/vdata"
S2=$P/victim
as "$MB" "$BIN/larder" --dir "$S2" init --mode private >/dev/null 2>&1
for ns in default evil; do
	as "$MB" "$BIN/larder" --dir "$S2" --ns $ns put k "$P/vdata" \
		--version v1 >/dev/null 2>&1
done
check "B's private store holds the victim entries" test -d "$S2/ns/evil/e"
snap() {
	find "$S2" -printf '%p %y %m %s\n' | sort | md5sum
	find "$S2" -type f -exec md5sum {} + | sort | md5sum
}
before=$(snap)

# Where key k lives: B's private store names it the same way.
rel=$(as "$MB" "$BIN/larder" --dir "$S2" --ns default inspect k --version v1 |
	python3 -c 'import json,sys; print(json.load(sys.stdin)["path"])')
rel=${rel#"$S2"/}
fan1=$(echo "$rel" | cut -d/ -f4)
fan2=$(echo "$rel" | cut -d/ -f5)
hrel=$(find "$S2/ns/default/h" -type f | head -n 1)
hrel=${hrel#"$S2"/}
hfan1=$(echo "$hrel" | cut -d/ -f4)

# 1. A namespace directory that is a link into B's store.
as "$MA" mkdir -p "$S/ns" 2>/dev/null
as "$MA" ln -s "$S2/ns/evil" "$S/ns/evil"
check "member A could plant ns/evil as a link" test -L "$S/ns/evil"
LUT "$MB" --ns evil rm k --version v1 >"$T/out" 2>"$T/err"
check "rm through a linked namespace does not succeed" test $? -ne 0
LUT "$MB" --ns evil put k "$P/vdata" --version v2 >"$T/out" 2>"$T/err"
check "put through a linked namespace does not succeed" test $? -ne 0
LUT "$MB" --ns evil get k --version v1 >"$T/out" 2>"$T/err"
check "get through a linked namespace is not a hit" test $? -ne 0
LUT "$MB" --ns evil config --ttl 1h >"$T/out" 2>"$T/err"
check "config --ns through a linked namespace does not succeed" test $? -ne 0
LUT "$MB" --ns evil config --max-entries 1 >"$T/out" 2>"$T/err"
LUT "$MB" gc >"$T/out" 2>"$T/err"
check "gc carries on past a linked namespace (exit 0)" test $? -eq 0
LUT "$MB" verify --repair >"$T/out" 2>"$T/err"
LUT "$MB" ls --all-namespaces >"$T/out" 2>"$T/err"
check "ls --all-namespaces carries on past it (exit 0)" test $? -eq 0
check "the link stays a link (nothing was made through it)" test -L "$S/ns/evil"
check "B's private store is untouched after namespace links" test "$(snap)" = "$before"

# 2. A fan-out directory of the shared store's default namespace that is a
# link into B's store, before anyone published under it.
LUT "$MA" put other "$P/vdata" --version v1 >/dev/null 2>&1
as "$MA" mkdir -p "$S/ns/default/e" "$S/ns/default/h"
if [ ! -e "$S/ns/default/e/$fan1" ]; then
	as "$MA" ln -s "$S2/ns/default/e/$fan1" "$S/ns/default/e/$fan1"
fi
if [ ! -e "$S/ns/default/h/$hfan1" ]; then
	as "$MA" ln -s "$S2/ns/default/h/$hfan1" "$S/ns/default/h/$hfan1"
fi
LUT "$MB" rm k --version v1 >"$T/out" 2>"$T/err"
check "rm through a linked fan-out directory does not succeed" test $? -ne 0
LUT "$MB" put k "$P/vdata" --version v1 >"$T/out" 2>"$T/err"
LUT "$MB" put k "$P/vdata" --version v3 >"$T/out" 2>"$T/err"
LUT "$MB" get k >"$T/out" 2>"$T/err"
LUT "$MB" gc >"$T/out" 2>"$T/err"
check "gc carries on past a linked fan-out directory (exit 0)" test $? -eq 0
LUT "$MB" verify --repair >"$T/out" 2>"$T/err"
check "B's private store is untouched after fan-out links" test "$(snap)" = "$before"

# 3. Files at the top of the store that do not exist yet: gc.lock and
# config. A link there must not make B create or write B's files.
rm -f "$S/gc.lock"
as "$MA" ln -s "$P/victim-lock" "$S/gc.lock" 2>/dev/null
as "$MB" touch "$P/victim-config"
as "$MB" chmod 600 "$P/victim-config"
if [ ! -e "$S/config" ]; then
	as "$MA" ln -s "$P/victim-config" "$S/config"
fi
LUT "$MB" gc >"$T/out" 2>"$T/err"
LUT "$MB" put k4 "$P/vdata" >"$T/out" 2>"$T/err"
check "no file was created through a linked gc.lock" test ! -e "$P/victim-lock"
check "the linked config's target was not written" test ! -s "$P/victim-config"
check "B's private store is still untouched" test "$(snap)" = "$before"

# 4. A counter shard that is a link to B's file: flushing counters must
# not write through it.
as "$MB" sh -c "printf 'mine\n' > '$P/victim-shard'"
for n in 00 01 02 03 04 05 06 07 08 09 10 11 12 13 14 15; do
	as "$MA" rm -f "$S/stats/shard-$n" 2>/dev/null
	as "$MA" ln -s "$P/victim-shard" "$S/stats/shard-$n" 2>/dev/null
done
LUT "$MB" get k4 >"$T/out" 2>"$T/err"
LUT "$MB" stat >"$T/out" 2>"$T/err"
check "counter flushes do not write through linked shards" \
	test "$(cat "$P/victim-shard")" = mine

# 5. The store's own directories cannot be swapped for links: the top
# directory is sticky and ns/ and quarantine/ belong to the owner.
as "$MA" mv "$S/ns" "$S/ns.moved" 2>/dev/null
check "member A cannot move the owner's ns/ away" test -d "$S/ns" -a ! -L "$S/ns"
as "$MA" mv "$S/quarantine" "$S/q.moved" 2>/dev/null
check "member A cannot move the owner's quarantine/ away" \
	test -d "$S/quarantine" -a ! -L "$S/quarantine"
finish
