#!/bin/sh
# larder mount, listings: head/<ns> lists each key once, whatever number
# of versions it has, and only keys whose head is readable; @<v>/<ns>
# lists the keys that have version v; the listing of 300 keys spans many
# readdir calls (it is read a slice of the namespace at a time) and each
# key is in it once; namespaces are listed under head/ and @<v>/; --ns
# shows only the namespaces given; the root lists each version once,
# whichever namespaces and slices hold it.
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
# 200 versions of one key, with names long enough that the root's
# listing spans several readdir calls; v1 is also in namespace other.
python3 - "$LARDER" "$S" <<'PY' || bail "cannot put the versions"
import subprocess, sys
for i in range(200):
    subprocess.run([sys.argv[1], "--dir", sys.argv[2], "put", "many",
                    "--version", "version-%03d-with-a-rather-long-name" % i],
                   input=b"m%d" % i, check=True)
PY
# One head removed: the key stays in @v1/ but leaves head/.
L rm "key-7-with-a-longer-name" >/dev/null || bail "rm"

fmount
[ "$rc" -eq 0 ] || bail "mount failed: $(cat "$T/err")"
ls "$M/head/default" >"$T/head" || not_ok "ls head/default failed"
n=$(wc -l <"$T/head")
u=$(sort -u "$T/head" | wc -l)
[ "$n" -eq 300 ] && [ "$u" -eq 300 ] &&
	ok "head/default: 300 keys, each once (one head removed, one with 200 versions)" ||
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
ls -a "$M" >"$T/root" || not_ok "ls of the root failed"
n=$(grep -c '^@version-[0-9]*-with-a-rather-long-name$' "$T/root")
u=$(grep '^@version-' "$T/root" | sort -u | wc -l)
[ "$n" -eq 200 ] && [ "$u" -eq 200 ] &&
	ok "the root lists 200 versions of one key, each once" ||
	not_ok "the root: $n version names, $u distinct"
[ "$(grep -cx '@v1' "$T/root")" -eq 1 ] && [ "$(grep -cx '@v2' "$T/root")" -eq 1 ] &&
	[ "$(grep -cx 'head' "$T/root")" -eq 1 ] &&
	[ "$(wc -l <"$T/root")" -eq 205 ] &&
	ok "the root: ., .., head, @v1 once (in two namespaces), @v2" ||
	not_ok "the root: $(grep -v '^@version-' "$T/root" | tr '\n' ' ')"
[ "$(cat "$M/@version-007-with-a-rather-long-name/default/many")" = m7 ] &&
	ok "a listed version's directory serves it" || not_ok "@version-007"
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
