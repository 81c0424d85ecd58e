#!/bin/sh
# larder mount, listings: head/<ns> lists each key once, whatever number
# of versions it has, and only keys whose head is readable; @<v>/<ns>
# lists the keys that have version v; the listing of 300 keys spans many
# readdir calls (it is read a slice of the namespace at a time) and each
# key is in it once; namespaces are listed under head/ and @<v>/; --ns
# shows only the namespaces given.
. "$(dirname "$0")/lib.sh" "$1"

L init >/dev/null || bail "cannot init"
i=0
while [ $i -lt 300 ]; do
	echo "a$i" | L put "key-$i-with-a-longer-name" --version v1 || bail "put"
	if [ $((i % 3)) -eq 0 ]; then
		echo "b$i" | L put "key-$i-with-a-longer-name" --version v2 || bail "put"
	fi
	i=$((i + 1))
done
echo other | L --ns other put elsewhere --version v1 || bail "put"
# One head removed: the key stays in @v1/ but leaves head/.
L rm "key-7-with-a-longer-name" >/dev/null || bail "rm"

fmount
[ "$rc" -eq 0 ] || bail "mount failed: $(cat "$T/err")"
ls "$M/head/default" >"$T/head" || not_ok "ls head/default failed"
n=$(wc -l <"$T/head")
u=$(sort -u "$T/head" | wc -l)
[ "$n" -eq 299 ] && [ "$u" -eq 299 ] &&
	ok "head/default: 299 keys, each once (one head removed)" ||
	not_ok "head/default: $n names, $u distinct"
grep -qx 'key-7-with-a-longer-name' "$T/head" &&
	not_ok "a key without a head is listed in head/" ||
	ok "a key without a head is not in head/"
[ "$(ls "$M/@v2/default" | wc -l)" -eq 100 ] &&
	ok "@v2/default: the 100 keys with v2" ||
	not_ok "@v2/default: $(ls "$M/@v2/default" | wc -l) names"
[ "$(ls "$M/@v1/default" | wc -l)" -eq 299 ] &&
	ok "@v1/default: 299 keys (the removed head's v1 went with it)" ||
	not_ok "@v1/default: $(ls "$M/@v1/default" | wc -l) names"
[ "$(cat "$M/head/default/key-3-with-a-longer-name")" = b3 ] &&
	[ "$(cat "$M/head/default/key-4-with-a-longer-name")" = a4 ] &&
	ok "head/ serves each key's head version" || not_ok "head versions"
[ "$(ls "$M/head" | tr '\n' ' ')" = "default other " ] &&
	ok "head/ lists the namespaces" || not_ok "head/: $(ls "$M/head")"
"$LARDER" umount "$M" 2>"$T/err" && ok "unmounted" || not_ok "umount: $(cat "$T/err")"

fmount --ns other
[ "$rc" -eq 0 ] || bail "mount failed: $(cat "$T/err")"
[ "$(ls "$M/head")" = other ] && [ ! -e "$M/head/default" ] &&
	ok "--ns shows only the namespaces given" ||
	not_ok "--ns other: head/ has $(ls "$M/head")"
"$LARDER" umount "$M" 2>"$T/err" && ok "unmounted" || not_ok "umount: $(cat "$T/err")"
finish
