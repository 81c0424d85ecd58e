# lib.sh — shared by the hostile-user tests (sourced, not run).
#
# Each test plays an attacker against one promise of docs/security.md with
# real Unix users that it creates and removes: the store's owner, two
# members of the store's group (A and B) and an outsider (X). It needs
# root (useradd, runuser); without it, the script counts one skip.
#
# Usage:  . "$(dirname "$0")/lib.sh" "$1"
# Gives, beyond tests/cli/lib.sh: $OWNER $MA $MB $OUT (user names), $GRP
# (the store's group), as USER CMD... (run as that user), LU USER ARGS...
# (larder on the store $S as that user), $BIN (a copy of the binary and
# its library that every user can run), mkstore MODE (init $S as $OWNER).

. "$(dirname "$0")/../cli/lib.sh" "$1"

skip_all() {
	echo "skip - $1"
	echo "0 passed, 0 failed, 1 skipped"
	exit 0
}

[ "$(id -u)" = 0 ] || skip_all "not root: cannot create test users"
for c in useradd userdel groupadd groupdel runuser; do
	command -v "$c" >/dev/null 2>&1 || skip_all "no $c"
done

# Names: a random tag, so that two runs (or a run that died without
# cleaning up) never meet.
tag=$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')
GRP=ldrg$tag
OWNER=ldro$tag
MA=ldra$tag
MB=ldrb$tag
OUT=ldrx$tag

cleanup_users() {
	for u in $OWNER $MA $MB $OUT; do
		id "$u" >/dev/null 2>&1 || continue
		# userdel refuses a user with processes: kill them and wait
		# (bounded) until they are gone, whatever state the test left.
		n=0
		while pkill -KILL -u "$u" 2>/dev/null && [ $n -lt 100 ]; do
			n=$((n + 1))
			sleep 0.05 # polls for the processes' end, bounded
		done
		userdel -f "$u" 2>/dev/null ||
			echo "# could not remove test user $u" >&2
	done
	groupdel "$GRP" 2>/dev/null
	rm -rf "$T"
}
trap cleanup_users EXIT

groupadd "$GRP" || skip_all "groupadd failed"
for u in $OWNER $MA $MB; do
	useradd -M -N -g users -G "$GRP" -s /bin/sh "$u" ||
		skip_all "useradd $u failed"
done
useradd -M -N -g users -s /bin/sh "$OUT" || skip_all "useradd $OUT failed"

# Every user must reach the binary and the scratch directory: copy the
# binary and its library out of the build tree (whose parents may be
# private) into $T, which is world-traversable but writable by root only.
chmod 0755 "$T"
BIN=$T/bin
mkdir "$BIN"
cp "$LARDER" "$BIN/larder"
lib=$(ldd "$LARDER" | awk '/liblarder/ {print $3}')
[ -n "$lib" ] && cp "$lib" "$BIN/"
chmod -R a+rX "$BIN"
# A directory where the store's parent lives: root-owned, sticky and
# world-writable like /tmp, so each user may make files of its own there.
P=$T/pub
mkdir "$P"
chmod 1777 "$P"
S=$P/store

# as USER CMD...: run CMD as USER with umask 022 (or $UMASK).
as() {
	u=$1
	shift
	runuser -u "$u" -- env LD_LIBRARY_PATH="$BIN" HOME="$P" \
		sh -c 'umask "$0"; exec "$@"' "${UMASK:-022}" "$@"
}

# LU USER ARGS...: larder on $S as USER.
LU() {
	u=$1
	shift
	as "$u" "$BIN/larder" --dir "$S" "$@"
}

# mkstore MODE: a fresh store at $S made by $OWNER, in group $GRP.
mkstore() {
	rm -rf "$S"
	as "$OWNER" mkdir "$S"
	chgrp "$GRP" "$S"
	LU "$OWNER" init --mode "$1" >"$T/out" 2>"$T/err"
}

# mode_of PATH: its permission bits in octal (4 digits).
mode_of() {
	stat -c %04a "$1"
}

# payload FILE N SEED: N bytes of deterministic, seed-dependent content.
payload() {
	python3 -c 'import sys, random
r = random.Random(int(sys.argv[2]))
sys.stdout.buffer.write(r.randbytes(int(sys.argv[1])))' "$2" "$3" >"$1"
}

# entry_path KEY [NS]: the file of KEY's head version, from `inspect`.
entry_path() {
	LU "$OWNER" --ns "${2:-default}" inspect "$1" 2>/dev/null |
		python3 -c 'import json,sys; print(json.load(sys.stdin)["path"])'
}

# LUT USER ARGS...: LU under a 120 s bound, for what could hang if a trap
# worked (a FIFO, a lease that is never judged stale).
LUT() {
	u=$1
	shift
	timeout 120 runuser -u "$u" -- env LD_LIBRARY_PATH="$BIN" HOME="$P" \
		sh -c 'umask "$0"; exec "$@"' "${UMASK:-022}" \
		"$BIN/larder" --dir "$S" "$@"
}

# same FILE1 FILE2: byte-identical.
same() {
	cmp -s "$1" "$2"
}
