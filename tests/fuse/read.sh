#!/bin/sh
# larder mount: what is read through the mount is the entry, byte for
# byte, by cat, cp and mmap, for small, middling and large entries; ls,
# stat and the xattrs describe it; keys a file name cannot hold are
# spelled as docs/fuse.md says and read back; every write is EROFS.
. "$(dirname "$0")/lib.sh" "$1"

L init >/dev/null || bail "cannot init"

# The large entry: 1 GiB where the disk has room for it three times
# (the source file, the entry, a copy), else 64 MiB.
big=$((1024 * 1024 * 1024))
avail=$(df -Pk "$T" | awk 'NR == 2 { print $4 }')
if [ "$avail" -lt $((3 * big / 1024 + 1048576)) ]; then
	big=$((64 * 1024 * 1024))
	skip "1 GiB entry: not enough room in $T; 64 MiB instead"
fi
for n in 4096 1048576 $big; do
	head -c "$n" /dev/urandom >"$T/src.$n" || bail "cannot write $T/src.$n"
	L put "p$n" --version v1 <"$T/src.$n" || bail "cannot put p$n"
done

fmount
[ "$rc" -eq 0 ] || bail "mount failed: $(cat "$T/err")"
mounted "$M" && ok "larder mount mounts and returns" ||
	not_ok "no mount at $M after larder mount"

for n in 4096 1048576 $big; do
	f=$M/head/default/p$n
	if cat "$f" | cmp -s - "$T/src.$n"; then
		ok "cat of a $n-byte entry gives its bytes"
	else
		not_ok "cat of a $n-byte entry differs"
	fi
	cp "$f" "$T/copy" 2>"$T/err" && cmp -s "$T/copy" "$T/src.$n" &&
		ok "cp of a $n-byte entry gives its bytes" ||
		not_ok "cp of a $n-byte entry differs"
	rm -f "$T/copy"
	run python3 -c '
import mmap, sys
with open(sys.argv[1], "rb") as a, open(sys.argv[2], "rb") as b:
    ma = mmap.mmap(a.fileno(), 0, prot=mmap.PROT_READ)
    mb = mmap.mmap(b.fileno(), 0, prot=mmap.PROT_READ)
    step = 1 << 24
    for off in range(0, len(mb), step):
        if ma[off:off + step] != mb[off:off + step]:
            sys.exit("differs at %d" % off)
    sys.exit(0 if len(ma) == len(mb) else "lengths differ")
' "$f" "$T/src.$n"
	[ "$rc" -eq 0 ] && ok "mmap of a $n-byte entry gives its bytes" ||
		not_ok "mmap of a $n-byte entry: $(cat "$T/err")"
	[ "$(stat -c %s "$f")" = "$n" ] && ok "stat: size $n" ||
		not_ok "stat: size $(stat -c %s "$f"), want $n"
	# The same entry by its version: the same inode, one page cache.
	[ "$(stat -c %i "$f")" = "$(stat -c %i "$M/@v1/default/p$n")" ] &&
		ok "head/ and @v1/ reach one inode" ||
		not_ok "head/ and @v1/ have different inodes"
done
rm -f "$T/src.$big"

# The entry's created time is the file's mtime.
created=$(L inspect p4096 | python3 -c '
import json, sys; print(json.load(sys.stdin)["created_ns"])' 2>/dev/null)
mtime=$(stat -c %.9Y "$M/head/default/p4096" | tr -d .)
if [ -n "$created" ] && [ "$created" = "$mtime" ]; then
	ok "stat: mtime is the entry's created time"
else
	not_ok "stat: mtime $mtime, entry created $created"
fi

# xattrs.
run getfattr --only-values -n user.larder.version "$M/head/default/p4096"
[ "$rc" -eq 0 ] && [ "$(cat "$T/out")" = v1 ] &&
	ok "xattr user.larder.version" || not_ok "xattr version: $(cat "$T/out")"
run getfattr --only-values -n user.larder.expires "$M/head/default/p4096"
[ "$(cat "$T/out")" = never ] && ok "xattr user.larder.expires: never" ||
	not_ok "xattr expires: $(cat "$T/out")"
run getfattr --only-values -n user.larder.checksum "$M/head/default/p4096"
# The payload checksum the header keeps (bytes 72..87 of the entry
# file: docs/format.md).
want=$(L inspect p4096 | python3 -c '
import json, sys
with open(json.load(sys.stdin)["path"], "rb") as f:
    print(f.read(88)[72:88].hex())')
if grep -Eq '^[0-9a-f]{32}$' "$T/out" && [ "$(cat "$T/out")" = "$want" ]; then
	ok "xattr user.larder.checksum: the header's payload checksum"
else
	not_ok "xattr checksum: '$(cat "$T/out")'"
fi

# ls lists the namespace, the keys and the versions.
ls "$M" >"$T/root" && grep -qx head "$T/root" && grep -qx @v1 "$T/root" &&
	ok "ls of the root: head and @v1" || not_ok "ls root: $(cat "$T/root")"
ls "$M/head" | grep -qx default && ok "ls head/: the namespace" ||
	not_ok "ls head/ lacks default"
[ "$(ls "$M/head/default" | wc -l)" -eq 3 ] &&
	ok "ls head/default: the three keys" ||
	not_ok "ls head/default: $(ls "$M/head/default")"

# Writes.
for what in "echo x >$M/head/default/p4096" "touch $M/head/default/new" \
	"mkdir $M/head/default/d" "rm -f $M/head/default/p4096" \
	"setfattr -n user.x -v 1 $M/head/default/p4096"; do
	run sh -c "$what"
	if [ "$rc" -ne 0 ] && grep -q 'Read-only file system' "$T/err"; then
		ok "EROFS: $what"
	else
		not_ok "not EROFS: $what (exit $rc)"
	fi
done
ino_before=$(stat -c %i "$M/head/default/p4096")
"$LARDER" umount "$M" 2>"$T/err" && ok "unmounted" || not_ok "umount failed"

# An inode number is the entry's identity: the same in the next mount.
fmount
[ "$rc" -eq 0 ] || bail "mount failed: $(cat "$T/err")"
[ "$(stat -c %i "$M/head/default/p4096")" = "$ino_before" ] &&
	ok "an entry's inode number is the same in another mount" ||
	not_ok "inode $(stat -c %i "$M/head/default/p4096"), was $ino_before"
"$LARDER" umount "$M" 2>"$T/err" && ok "unmounted" || not_ok "umount failed"

# Keys a file name cannot hold as they are.
nl='
'
bad=$(printf 'caf\351')
for key in "a/b" "with space" "new${nl}line" "$bad" "100%" "." ".." "/"; do
	printf '%s' "payload of $key" | L put "$key" --version "v/1" ||
		bail "cannot put the key"
done
fmount
[ "$rc" -eq 0 ] || bail "mount failed: $(cat "$T/err")"
check_name() { # KEY NAME
	if [ "$(cat "$M/head/default/$2")" = "payload of $1" ] &&
		[ "$(cat "$M/@v%2F1/default/$2")" = "payload of $1" ]; then
		ok "key '$2' reads back"
	else
		not_ok "key named '$2' does not read back"
	fi
}
check_name "a/b" "a%2Fb"
check_name "with space" "with space"
check_name "new${nl}line" "new${nl}line"
check_name "$bad" "$bad"
check_name "100%" "100%25"
check_name "." "%2E"
check_name ".." "%2E%2E"
check_name "/" "%2F"
[ -e "$M/head/default/%61%2Fb" ] && not_ok "a second spelling is accepted" ||
	ok "only one spelling of a key is a name"
ls "$M" | grep -qx '@v%2F1' && ok "the version's directory is listed encoded" ||
	not_ok "ls root: $(ls "$M")"
[ "$(stat -c %a "$M/head/default/a%2Fb")" = 444 ] &&
	[ "$(stat -c %a "$M/head/default")" = 555 ] &&
	ok "a store everyone reads: files 0444, directories 0555" ||
	not_ok "modes $(stat -c %a "$M/head/default/a%2Fb") $(stat -c %a "$M/head/default")"
"$LARDER" umount "$M" 2>"$T/err" && ok "unmounted" || not_ok "umount failed"

# A private store stays private: the files have its read bits only.
"$LARDER" --dir "$T/priv" init --mode private >/dev/null || bail "cannot init"
echo secret | "$LARDER" --dir "$T/priv" put k || bail "cannot put"
fmounts="$fmounts $M"
"$LARDER" mount "$T/priv" "$M" 2>"$T/err" || bail "mount: $(cat "$T/err")"
[ "$(stat -c %a "$M/head/default/k")" = 400 ] &&
	[ "$(stat -c %a "$M/head/default")" = 500 ] &&
	ok "a private store: files 0400, directories 0500" ||
	not_ok "private modes $(stat -c %a "$M/head/default/k") $(stat -c %a "$M/head/default")"
"$LARDER" umount "$M" 2>"$T/err" && ok "unmounted" || not_ok "umount failed"
finish
