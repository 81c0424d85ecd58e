#!/bin/sh
# Modes, the marker, symlinks and stray files from the command line
# (docs/security.md): init's modes and parents, config --ns --ttl, every
# command through a symlink planted in the store, strays in ns/, and a
# group store used by a member and by another user (as root, with
# setpriv and numeric ids that need no account).
. "$(dirname "$0")/lib.sh" "$1"

mode() { stat -c %a "$1"; }
entries() { find "$S/ns" -path '*/e/*' -type f -name '????????????????????????????????' | wc -l; }
printf 'data' >"$T/p"

# --- init: modes and parents ----------------------------------------------
expect_rc 3 "init under a missing parent" "$LARDER" --dir "$T/typo/cache/s" init
expect_err "parent directory does not exist.*--parents" "the message says how"
check "and makes nothing" test ! -e "$T/typo"
expect_rc 0 "init --parents" "$LARDER" --dir "$T/typo/cache/s" init --parents
check "--parents made the tree" test -f "$T/typo/cache/s/larder-store"

for m in "077 700 private" "027 2750 group-read" "022 755 public" "007 3770 group" "002 3775 0664"; do
	set -- $m
	expect_rc 0 "init under umask $1" sh -c 'umask $1; "$2" --dir "$3" init' sh "$1" "$LARDER" "$T/u$1"
	check "umask $1 makes a $3 store (top $2)" test "$(mode "$T/u$1")" = "$2"
	expect_rc 0 "init --mode $3 on it again" "$LARDER" --dir "$T/u$1" init --mode "$3"
done
for m in private 0600 600 group-read 0640 public 0644 644 group 0660 0664 664; do
	expect_rc 0 "--mode $m" "$LARDER" --dir "$T/m$m" init --mode "$m"
done
check "--mode group is 0660" grep -qx 'mode 0660' "$T/mgroup/larder-store"
check "--mode 644 is 0644" grep -qx 'mode 0644' "$T/m644/larder-store"
for bad in 0666 0777 0700 world rw-r--r--; do
	expect_rc 2 "--mode $bad is refused" "$LARDER" --dir "$T/bad" init --mode "$bad"
done
check "a refused mode makes nothing" test ! -e "$T/bad"
expect_rc 3 "init --mode of another mode on an existing store" "$LARDER" --dir "$T/mpublic" init --mode group
expect_err "mode 0644 \(public\), not 0660.*Changing a store's mode" "the message names the store's mode and where to read how to change it"
check "and nothing changed" grep -qx 'mode 0644' "$T/mpublic/larder-store"

# --- config --ns --ttl ------------------------------------------------------
expect_rc 0 "init" L init --mode public
expect_rc 0 "config --ns x --ttl 1h" L --ns x config --ttl 1h
expect_rc 0 "config --ns x" L --ns x config
expect_out "^ttl 3600$" "the namespace's TTL is shown"
L --ns x put k "$T/p"
expect_rc 0 "inspect" L --ns x inspect k
check "a put there takes it" test "$(json_get "$T/out" "j['expires'] is not None")" = True
expect_rc 0 "config --ns x --ttl never" L --ns x config --ttl never
run L --ns x config
expect_out "^ttl 0 \(none\)$" "never is none"
expect_rc 2 "--ttl without --ns" L config --ttl 1h
expect_rc 2 "a bad --ttl" L --ns x config --ttl 1y

# --- symlinks planted in the store -----------------------------------------
# Each command through a symlink where larder keeps a directory: nothing
# outside the store changes, nothing outside is served.
snapshot() { (cd "$T/outside" && { find . -printf '%p %y %s %m\n'; find . -type f -exec md5sum {} +; } | sort); }
fresh() {
	rm -rf "$S" "$T/outside"
	L init --mode 0644 >/dev/null 2>&1
	for k in k1 k2 k3; do L --ns n put "$k" "$T/p" >/dev/null 2>&1; done
	mkdir "$T/outside"
}
# plant PLACE: move it outside, leave a symlink to it
plant() {
	case $1 in
	ns) rel=ns ;;
	nsdir) rel=ns/n ;;
	e) rel=ns/n/e ;;
	h) rel=ns/n/h ;;
	efan1) rel=$(dirname "$(dirname "${efile#"$S/"}")") ;;
	efan2) rel=$(dirname "${efile#"$S/"}") ;;
	hfan2) rel=$(dirname "$(find "$S/ns/n/h" -type f | head -1)"); rel=${rel#"$S/"} ;;
	esac
	mv "$S/$rel" "$T/outside/moved"
	ln -s "$T/outside/moved" "$S/$rel"
	find "$T/outside/moved" -type d -exec sh -c 'touch -d "3 days ago" "$1/.tmp.h.1.0123456789abcdef"' sh {} \;
}
U() { L --allow-unsafe-mode "$@"; }
for place in ns nsdir e h efan1 efan2 hfan2; do
	for cmd in "rm k1" "put k4" "put k1" "get k1" "config --ttl 1m" "gc" "verify --repair" "ls --all-namespaces"; do
		fresh
		L --ns n inspect k1 >"$T/k1.json"
		efile=$(json_get "$T/k1.json" "j['path']")
		ver=$(json_get "$T/k1.json" "j['version']")
		plant "$place"
		before=$(snapshot)
		# shellcheck disable=SC2086
		set -- $cmd
		case $1 in
		put) set -- "$@" "$T/p" ;;
		rm | get) set -- "$@" --version "$ver" ;; # the head is not needed
		esac
		# over a cap, gc would remove what it could reach
		if [ "$1" = gc ]; then U config --max-entries 1 2>/dev/null; fi
		case $1 in
		gc | verify | ls) run U "$@" ;; # the whole store: a walk
		config) U --ns m "$@" 2>/dev/null; run U --ns n "$@" ;; # a new namespace too
		*) run U --ns n "$@" ;;
		esac
		case "$place:$1" in
		h:verify | hfan2:verify) # heads are not entries: not walked
			if [ "$rc" -eq 0 ]; then ok "$cmd beside a symlinked $place: exit 0"; else not_ok "$cmd beside a symlinked $place: exit $rc"; fi ;;
		*:verify) # the link is reported as a problem that remains
			if [ "$rc" -eq 5 ]; then ok "$cmd through a symlinked $place: exit 5"; else not_ok "$cmd through a symlinked $place: exit $rc, want 5"; fi ;;
		*:gc | *:ls)
			if [ "$rc" -eq 0 ]; then ok "$cmd through a symlinked $place: exit 0"; else not_ok "$cmd through a symlinked $place: exit $rc"; fi ;;
		ns:get | nsdir:get | e:get | efan1:get | efan2:get)
			if [ "$rc" -ne 0 ]; then ok "$cmd through a symlinked $place: not served"; else not_ok "$cmd through a symlinked $place served what is outside"; fi ;;
		esac
		check "$cmd through a symlinked $place leaves the outside alone" test "$before" = "$(snapshot)"
	done
done
fresh
plant ns
expect_rc 3 "a symlinked ns/ is refused" L get k1
expect_err "ns' is a symbolic link: refusing" "the message names it"
fresh
plant nsdir
expect_rc 3 "a symlinked ns/<ns> is refused on its first use" L --ns n get k1
expect_err "ns/n' is a symbolic link: refusing" "the message names it"
fresh
L --ns n inspect k1 >"$T/k1.json"
efile=$(json_get "$T/k1.json" "j['path']")
plant efan2
expect_rc 3 "an entry under a symlinked fan-out directory is refused" L --ns n get k1 --version "$(json_get "$T/k1.json" "j['version']")"
expect_err "$(dirname "$efile")' is a symbolic link: refusing" "the message names the symlink"
rm -rf "$T/outside"

# --- strays -----------------------------------------------------------------
rm -rf "$S"
expect_rc 0 "init --max-entries 3" L init --max-entries 3
echo stray >"$S/ns/junk"
ln -s /etc "$S/ns/link"
i=0
while [ $i -lt 8 ]; do
	printf 'data %s' $i >"$T/p$i"
	expect_rc 0 "put $i beside a stray file and symlink in ns/" L put "k$i" "$T/p$i"
	i=$((i + 1))
done
check "the cap holds: at most 3 entries" test "$(entries)" -le 3
expect_rc 0 "gc" L gc
expect_err "ns/junk' is not a directory: skipped" "gc names the stray file"
expect_err "ns/link' is a symbolic link: skipped" "and the symlink"
expect_rc 5 "verify reports the strays as problems that remain" L verify
expect_rc 0 "ls --all-namespaces" L ls --all-namespaces
check "the strays are left where they are" test -f "$S/ns/junk" -a -L "$S/ns/link"

# --- others may write -------------------------------------------------------
rm -rf "$S"
L init --mode public
L --ns n put k "$T/p"
chmod o+w "$S/ns/n"
expect_rc 3 "a namespace directory writable by every user" L --ns n get k
expect_err "ns/n' is writable by every user.*chmod o-w" "the message says the fix"
expect_rc 0 "--allow-unsafe-mode uses it anyway" L --allow-unsafe-mode --ns n get k
expect_rc 0 "ls skips it" L ls --all-namespaces
expect_err "skipped" "and says so"
chmod o-w "$S/ns/n"

# --- the marker, and a group store shared for real --------------------------
if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null 2>&1; then
	G=4242 # a group id needs no entry in /etc/group
	member() { setpriv --reuid=65534 --regid=65534 --groups=$G sh -c 'umask 077; exec "$@"' sh "$LARDER" --dir "$S" "$@"; }
	other() { setpriv --reuid=65533 --regid=65533 --clear-groups "$LARDER" --dir "$S" "$@"; }
	chmod 711 "$T"
	rm -rf "$S"
	mkdir "$S"
	chgrp $G "$S"
	expect_rc 0 "init --mode group" L init --mode group
	check "the top directory is setgid and sticky" test "$(mode "$S")" = 3770
	check "the marker is the owner's" test "$(mode "$S/larder-store")" = 640
	L put rootk "$T/p"
	chmod 644 "$T/p"
	expect_rc 0 "a member (umask 077) publishes" member put memk "$T/p"
	f=$(L inspect memk | python3 -c 'import json,sys; print(json.load(sys.stdin)["path"])')
	check "the member's entry is read-only and the group's" test "$(stat -c '%a %g' "$f")" = "440 $G"
	expect_rc 0 "the owner reads the member's entry" L get memk
	expect_rc 0 "a member reads the owner's" member get rootk
	expect_rc 0 "a member sets a namespace's TTL" member --ns m config --ttl 1h
	expect_rc 3 "a member may not change the store's config" member config --max-bytes 1G
	run setpriv --reuid=65534 --regid=65534 --groups=$G rm -f "$S/larder-store"
	check "a member cannot remove the marker (sticky)" test -f "$S/larder-store"
	expect_rc 3 "another user may not read" other get rootk
	expect_rc 3 "nor write" other put x "$T/p"

	# The marker of a store its opener does not own (given to uid 65532).
	chown 65532 "$S" "$S/larder-store"
	chmod g+w "$S/larder-store"
	expect_rc 3 "a group-writable marker is refused to a non-owner" L get rootk
	expect_err "chmod go-w '$S/larder-store'" "the message gives the fix"
	expect_rc 3 "even to a member" member get rootk
	expect_rc 0 "its owner's open mends it (an earlier version's store)" setpriv --reuid=65532 --regid=65532 --groups=$G "$LARDER" --dir "$S" get rootk
	check "the marker is the owner's again" test "$(mode "$S/larder-store")" = 640
	expect_rc 0 "then everyone may use it" L get rootk
	sed -i 's/^mode .*/mode 0666/' "$S/larder-store"
	expect_rc 3 "a marker asking for 0666 is refused" L get rootk
	expect_err "mode larder never makes" "the message says why"
	chmod 700 "$T"
else
	skip "a group store shared for real: needs root and setpriv(1)"
fi

finish
