#!/bin/sh
# Promises 3 and 4 of docs/security.md, and the modes: a member cannot
# widen the store's permissions or lock others out through the marker;
# nothing larder creates is writable by others; a store's mode follows
# the creator's umask unless --mode says otherwise, and a member's own
# umask never narrows what the group can read.
. "$(dirname "$0")/lib.sh" "$1"

printf 'rows of a private table' >"$P/data"
chmod a+r "$P/data"

# --- the group-shared store's own files and directories ---
mkstore 0664
check "init --mode 0664 as the owner" test -f "$S/larder-store"
check "the top directory is setgid and sticky (3775)" test "$(mode_of "$S")" = 3775
check "the marker is the owner's: 0644" test "$(mode_of "$S/larder-store")" = 0644
check "the marker belongs to the owner" test "$(stat -c %U "$S/larder-store")" = "$OWNER"
UMASK=077 LU "$MA" put k "$P/data" >"$T/out" 2>"$T/err"
check "member A publishes with umask 077" test $? -eq 0
LU "$MB" get k >"$T/got" 2>"$T/err"
check "member B reads what A published under umask 077" same "$T/got" "$P/data"
f=$(entry_path k)
check "the entry is read-only to everyone (0444)" test "$(mode_of "$f")" = 0444
check "the entry's directory is setgid, group-writable (2775)" \
	test "$(mode_of "$(dirname "$f")")" = 2775
check "the entry is in the store's group" test "$(stat -c %G "$f")" = "$GRP"
LU "$MB" gc >"$T/out" 2>"$T/err"
LU "$MB" stat >"$T/out" 2>"$T/err"
find "$S" ! -type l -perm -o+w >"$T/ow"
check "nothing in the store is writable by others" test ! -s "$T/ow"

# --- the marker cannot be changed by a member ---
cp "$S/larder-store" "$T/marker.saved"
as "$MA" sh -c "printf 'larder-store\nformat 99\nfsync data\nmode 0666\n' > '$S/larder-store'" 2>/dev/null
check "member A cannot write the marker" same "$S/larder-store" "$T/marker.saved"
as "$MA" rm -f "$S/larder-store" 2>/dev/null
check "member A cannot remove the marker (sticky top directory)" test -f "$S/larder-store"
as "$MA" sh -c "printf 'larder-store\nformat 1\nfsync none\nmode 0666\n' > '$P/m' && mv -f '$P/m' '$S/larder-store'" 2>/dev/null
check "member A cannot replace the marker" same "$S/larder-store" "$T/marker.saved"
LU "$MB" get k >"$T/got" 2>"$T/err"
check "member B still reads the store" same "$T/got" "$P/data"

# --- a store from an earlier larder: marker 0664, no sticky bit ---
chmod 0664 "$S/larder-store"
chmod o-t "$S"
as "$MA" sh -c "printf 'larder-store\nformat 1\nfsync data\nmode 0666\n' > '$S/larder-store'"
check "(setup) member A rewrote a group-writable marker to mode 0666" \
	grep -q 'mode 0666' "$S/larder-store"
LU "$MB" put k2 "$P/data" >"$T/out" 2>"$T/err"
check "member B refuses a marker that members can write (exit 3)" test $? -eq 3
expect_err "larder-store" "the refusal names the marker"
LU "$OUT" put planted "$P/data" >"$T/out" 2>"$T/err"
check "the outsider cannot plant an entry" test $? -ne 0
LU "$OWNER" get k >"$T/out" 2>"$T/err"
check "the owner refuses a marker asking for mode 0666 (exit 3)" test $? -eq 3
expect_err "0666" "the refusal names the mode"
find "$S" ! -type l -perm -o+w >"$T/ow"
check "still nothing in the store is writable by others" test ! -s "$T/ow"
cp "$T/marker.saved" "$S/larder-store"
chown "$OWNER" "$S/larder-store"
chmod 0664 "$S/larder-store"
LU "$OWNER" get k >"$T/got" 2>"$T/err"
check "the owner's larder mends an old group-writable marker" \
	test "$(mode_of "$S/larder-store")" = 0644
check "... and gives the top directory its sticky bit" test "$(mode_of "$S")" = 3775
LU "$MB" get k >"$T/got" 2>"$T/err"
check "members use the mended store again" same "$T/got" "$P/data"

# --- a marker that is not the owner's ---
chown "$MA" "$S/larder-store"
chmod 0644 "$S/larder-store"
LU "$MB" get k >"$T/out" 2>"$T/err"
check "a marker owned by someone else than the store's owner is refused" test $? -eq 3
chown "$OWNER" "$S/larder-store"

# --- a directory inside the store made writable by others ---
LU "$MA" --ns mine put k "$P/data" >/dev/null 2>&1
as "$MA" chmod o+w "$S/ns/mine"
LU "$MB" --ns mine get k >"$T/out" 2>"$T/err"
check "a namespace directory writable by others is refused (exit 3)" test $? -eq 3
LU "$MB" --allow-unsafe-mode --ns mine get k >"$T/got" 2>"$T/err"
check "... unless the user insists" same "$T/got" "$P/data"
LU "$MB" verify >"$T/out" 2>"$T/err"
check "verify reports it" test $? -ne 0
as "$MA" chmod o-w "$S/ns/mine"

# --- the outsider writes nothing anywhere ---
n=0
for d in $(find "$S" -type d); do
	if runuser -u "$OUT" -- sh -c "touch '$d/x.$OUT'" 2>/dev/null; then
		n=$((n + 1))
		echo "# the outsider could create a file in $d"
	fi
done
check "the outsider can create nothing in a group store" test $n -eq 0

# --- modes from the umask, and the named modes ---
for case in "077 0600" "027 0640" "022 0644" "007 0660" "002 0664"; do
	set -- $case
	rm -rf "$S"
	UMASK=$1 LU "$OWNER" init >"$T/out" 2>"$T/err"
	check "init under umask $1 records mode $2" \
		grep -q "^mode $2\$" "$S/larder-store"
done
rm -rf "$S"
UMASK=077 LU "$OWNER" init >/dev/null 2>&1
UMASK=077 LU "$OWNER" put secret "$P/data" >/dev/null 2>&1
LU "$OUT" get secret >"$T/out" 2>"$T/err"
check "umask 077: another user cannot read the cached rows" test $? -ne 0 -a ! -s "$T/out"
LU "$MA" get secret >"$T/out" 2>"$T/err"
check "umask 077: not even a group member" test $? -ne 0 -a ! -s "$T/out"
f=$(find "$S/ns" -type f | head -n 1)
check "umask 077: the entry file is 0400" test "$(mode_of "$f")" = 0400

mkstore group-read
check "init --mode group-read records 0640" grep -q '^mode 0640$' "$S/larder-store"
LU "$OWNER" put k "$P/data" >/dev/null 2>&1
LU "$MA" get k >"$T/got" 2>"$T/err"
check "group-read: a member reads" same "$T/got" "$P/data"
LU "$MA" put k2 "$P/data" >"$T/out" 2>"$T/err"
check "group-read: a member cannot publish" test $? -ne 0
LU "$OUT" get k >"$T/out" 2>"$T/err"
check "group-read: the outsider cannot read" test $? -ne 0 -a ! -s "$T/out"

mkstore private
check "init --mode private records 0600" grep -q '^mode 0600$' "$S/larder-store"
mkstore group
check "init --mode group records 0660" grep -q '^mode 0660$' "$S/larder-store"
check "group: the top directory is 3770" test "$(mode_of "$S")" = 3770
mkstore 0666 
check "init --mode 0666 is refused" test ! -f "$S/larder-store"
finish
